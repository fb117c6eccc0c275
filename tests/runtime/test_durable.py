"""Durable runs: persistent default checkpoints, resuming after a hard crash, PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

import agentmesh as am

from . import _graphs as cg

Doc, Approval, approval_graph = cg.Doc, cg.Approval, cg.approval_graph


@pytest.fixture
def data_dir() -> Path:
    return Path(os.environ["AGENTMESH_DATA_DIR"])


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "marks"
    folder.mkdir()
    monkeypatch.setenv(cg.MARKS, str(folder))
    return folder


def _sqlite_threads(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT DISTINCT thread_id FROM checkpoints")}
    finally:
        conn.close()


# -- default checkpointer ------------------------------------------------------------------


def test_default_checkpointer_is_sqlite_file_in_data_dir(data_dir: Path) -> None:
    graph = approval_graph()
    paused = am.run(graph, Doc(text="ship it"), thread_id="sqlite-default")
    assert paused.status is am.RunStatus.AWAITING_HUMAN

    db = data_dir / "checkpoints.sqlite"
    assert db.is_file(), f"no checkpoint database under AGENTMESH_DATA_DIR={data_dir}"
    # Read through a connection of our own: the paused thread is on disk, not only in memory.
    assert "sqlite-default" in _sqlite_threads(db)

    # A different graph instance finds the paused run through the default checkpointer.
    done = am.resume(approval_graph(), "sqlite-default", {"approved": True, "approver": "kim"})
    assert done.status is am.RunStatus.COMPLETED
    assert done.output == Approval(approved=True, approver="kim")


def test_paused_run_survives_the_process_that_started_it() -> None:
    """Interrupt in one process, answer in another: the pause lives in the data folder."""
    child = cg.run_child(
        "import _graphs as cg, agentmesh as am\n"
        "r = am.run(cg.approval_graph(), cg.Doc(text='ship it now'), thread_id='cross-process')\n"
        "print(r.status.value, r.human_requests[0].value['agent'])\n",
        env={},
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["awaiting_human", "approve"]

    done = am.resume(approval_graph(), "cross-process", {"approved": False, "approver": "lee"})
    assert done.status is am.RunStatus.COMPLETED
    assert done.output == Approval(approved=False, approver="lee")


# -- crash and resume ------------------------------------------------------------------------

CRASH_CODE = """
import _graphs as cg
import agentmesh as am
meta, graph = cg.build()
am.run(graph, cg.Doc(text="alpha beta gamma"), thread_id={thread!r})
print("the run survived: the crash did not happen")
"""


def test_crashed_run_resumes_from_its_thread_without_redoing_finished_work(
    marks: Path, data_dir: Path
) -> None:
    # ``count`` (the later specialist) dies on its first execution. It waits a moment
    # first so LangGraph's background checkpoint writes of the earlier steps land;
    # without that wait see the slowed-checkpoint crash test below.
    child = cg.run_child(
        CRASH_CODE.format(thread="crash-1"),
        env={cg.CRASH_ON: "alpha", cg.SETTLE: "1"},
    )
    assert child.returncode == cg.CRASH_EXIT, child.stdout + child.stderr
    assert cg.executions(marks, "split") == ["alpha"]
    assert cg.executions(marks, "count") == ["alpha"]
    assert (data_dir / "checkpoints.sqlite").is_file()

    _, graph = cg.build()
    result = am.run(graph, None, thread_id="crash-1")

    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert result.output == cg.Tally(first="alpha", count=3)
    assert cg.executions(marks, "count") == ["alpha", "alpha"]  # the crashed step ran again
    assert cg.executions(marks, "split") == ["alpha"]  # the finished one did not


SLOW_STORAGE_CRASH_CODE = (
    """
import time
from langgraph.checkpoint.sqlite import SqliteSaver

_put = SqliteSaver.put


def slow_put(self, *args, **kwargs):
    time.sleep(0.15)  # checkpoint storage with some latency (a busy disk, a remote database)
    return _put(self, *args, **kwargs)


SqliteSaver.put = slow_put
"""
    + CRASH_CODE
)


def test_crash_right_after_finished_steps_does_not_lose_them(marks: Path) -> None:
    child = cg.run_child(
        SLOW_STORAGE_CRASH_CODE.format(thread="crash-slow"), env={cg.CRASH_ON: "alpha"}
    )
    assert child.returncode == cg.CRASH_EXIT, child.stdout + child.stderr
    assert cg.executions(marks, "split") == ["alpha"]

    _, graph = cg.build()
    result = am.run(graph, None, thread_id="crash-slow")

    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert cg.executions(marks, "split") == ["alpha"], "split finished before the crash"


def test_resuming_an_unknown_thread_raises_an_agentmesh_error() -> None:
    _, graph = cg.build()
    with pytest.raises(am.AgentMeshError, match="no-such-thread"):
        am.run(graph, None, thread_id="no-such-thread")


class Text(BaseModel):
    text: str


class Length(BaseModel):
    length: int


@am.specialist()
def measure(doc: Text) -> Length:
    """Count the words."""
    return Length(length=len(doc.text.split()))


def test_new_input_on_a_finished_thread_is_answered_for_that_input() -> None:
    graph = am.Lead(name="measuring", input=Text, output=Length, stages=[measure]).compile()
    first = am.run(graph, Text(text="a b"), thread_id="reused")
    assert first.output == Length(length=2)

    second = am.run(graph, Text(text="c d e f"), thread_id="reused")

    assert second.status is am.RunStatus.COMPLETED
    assert second.output == Length(length=4)
    assert len(second.gates) == 1


# -- PostgreSQL --------------------------------------------------------------------------------

PG_URL = (
    os.environ.get("AGENTMESH_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _with_param(url: str, key: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{key}={value}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    try:
        import psycopg
    except ImportError:
        if _in_ci():
            pytest.fail(
                "CI is set, so the PostgreSQL test must run: pip install 'agentmesh[postgres]'"
            )
        pytest.skip("psycopg is not installed: pip install 'agentmesh[postgres]'")
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except Exception as exc:
        message = f"PostgreSQL at {PG_URL} is not reachable ({type(exc).__name__}: {exc})"
        if _in_ci():
            pytest.fail(f"CI is set, so the PostgreSQL test must run: {message}")
        pytest.skip(
            f"{message}; set AGENTMESH_TEST_POSTGRES_URL or start a server (required on CI)"
        )
    yield PG_URL


def _pg_checkpoints(url: str, thread: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM checkpoints WHERE thread_id = %s", (thread,)
        ).fetchone()
    return int(row[0]) if row else 0


def _pg_forget(url: str, thread: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("checkpoint_writes", "checkpoint_blobs", "checkpoints"):
            conn.execute(f"DELETE FROM {table} WHERE thread_id = %s", (thread,))


@pytest.mark.postgres
def test_postgres_checkpointer_interrupt_and_resume_across_instances(
    postgres_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    thread = f"agentmesh-test-{uuid.uuid4().hex}"
    # Two URLs for the same database: two settings, two checkpointers, two connections.
    first_url = _with_param(postgres_url, "application_name", "agentmesh-test-run")
    second_url = _with_param(postgres_url, "application_name", "agentmesh-test-resume")
    try:
        monkeypatch.setenv("AGENTMESH_CHECKPOINTER", first_url)
        assert am.Settings.from_env().checkpointer == first_url
        paused = am.run(approval_graph(), Doc(text="pay the invoice"), thread_id=thread)

        assert paused.status is am.RunStatus.AWAITING_HUMAN
        (request,) = paused.human_requests
        assert request.value["agent"] == "approve"
        assert request.value["payload"] == {"words": ["pay", "the", "invoice"]}
        assert _pg_checkpoints(postgres_url, thread) > 0, "the pause is not stored in PostgreSQL"
        assert not (data_dir / "checkpoints.sqlite").exists(), "checkpoints went to SQLite"

        monkeypatch.setenv("AGENTMESH_CHECKPOINTER", second_url)
        done = am.resume(approval_graph(), thread, {"approved": True, "approver": "ana"})

        assert done.status is am.RunStatus.COMPLETED, done.reason
        assert done.output == Approval(approved=True, approver="ana")
    finally:
        _pg_forget(postgres_url, thread)
