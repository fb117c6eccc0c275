"""Hierarchies shared by the runtime tests and the child processes they start.

Imported by the tests (as ``runtime._graphs``) and by child processes (as ``_graphs``,
with this folder on ``sys.path``). ``build()`` is a hierarchy whose later specialist can
hard-kill the process; ``approval_graph()`` pauses for a human. Everything a
specialist needs is read from the environment when it runs, so both imports build
the same graph:

* ``AGENTMESH_TEST_MARKS``: folder where every specialist execution appends a line
  (``split.log``, ``count.log``) and where the one-time crash marker is kept;
* ``AGENTMESH_TEST_CRASH_ON``: the first word of the input on which ``count`` kills
  the process with ``os._exit`` -- only on its first execution for that word;
* ``AGENTMESH_TEST_SETTLE_S``: seconds ``count`` waits before dying (see the tests).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import agentmesh as am

HERE = Path(__file__).resolve().parent
CRASH_EXIT = 75
MARKS = "AGENTMESH_TEST_MARKS"
CRASH_ON = "AGENTMESH_TEST_CRASH_ON"
SETTLE = "AGENTMESH_TEST_SETTLE_S"


class Doc(BaseModel):
    text: str


class Words(BaseModel):
    words: list[str]


class Tally(BaseModel):
    first: str
    count: int


def _marks() -> Path:
    return Path(os.environ[MARKS])


def _log(agent: str, key: str) -> None:
    with (_marks() / f"{agent}.log").open("a", encoding="utf-8") as fh:
        fh.write(key + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def executions(marks: Path, agent: str) -> list[str]:
    """The first word of every input ``agent`` ran on, in order (one line per execution)."""
    path = marks / f"{agent}.log"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


@am.specialist()
def split(doc: Doc) -> Words:
    """Split the text into words."""
    words = doc.text.split()
    _log("split", words[0])
    return Words(words=words)


@am.specialist()
def count(words: Words) -> Tally:
    """Count the words; dies once on the word named by AGENTMESH_TEST_CRASH_ON."""
    key = words.words[0]
    _log("count", key)
    marker = _marks() / f"crashed-{key}"
    if key == os.environ.get(CRASH_ON) and not marker.exists():
        marker.write_text("crashed once\n", encoding="utf-8")
        time.sleep(float(os.environ.get(SETTLE, "0")))
        os._exit(CRASH_EXIT)  # a hard kill: no exception handling, no cleanup
    return Tally(first=key, count=len(words.words))


def build() -> tuple[Any, Any]:
    """``(meta, compiled graph)``: meta ``pipeline`` -> lead ``counting`` -> split, count."""
    lead = am.Lead(name="counting", input=Doc, output=Tally, stages=[split, count])
    meta = am.Meta(name="pipeline", input=Doc, output=Tally, stages=[lead])
    return meta, meta.compile()


class Approval(BaseModel):
    approved: bool
    approver: str


@am.specialist()
def tokenize(doc: Doc) -> Words:
    """Split the text into words (no logging)."""
    return Words(words=doc.text.split())


def approval_graph() -> Any:
    """meta ``desk`` -> lead ``review`` -> tokenize, approve (human); a fresh graph each call."""
    ask = am.Specialist(name="approve", input=Words, output=Approval, layer="human")
    lead = am.Lead(name="review", input=Doc, output=Approval, stages=[tokenize, ask])
    return am.Meta(name="desk", input=Doc, output=Approval, stages=[lead]).compile()


def run_child(
    code: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that can ``import _graphs``."""
    prelude = f"import sys\nsys.path.insert(0, {str(HERE)!r})\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
