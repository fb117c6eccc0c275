"""Finished runs recorded as episodes by ``am.run`` / ``am.resume`` and the batch CLI.

A run that ends in a terminal state is recorded under its thread id; a run awaiting a
human is recorded once it finishes; a failing store never fails the run; without
``episodes=`` (and ``AGENTMESH_EPISODES`` off) episodic memory is never touched.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import BaseModel
from typer.testing import CliRunner

import agentmesh as am
from agentmesh.cli._app import app
from agentmesh.controls import KillSwitch
from agentmesh.errors import ConfigError
from agentmesh.memory import (
    Correction,
    EpisodicMemory,
    InMemoryStore,
    MemoryItem,
    RecalledEpisodes,
    build_episodic_memory,
)
from agentmesh.memory import _episode_runs as episode_runs
from agentmesh.memory._store import Vectors

ROOT = Path(__file__).resolve().parents[2]


class Doc(BaseModel):
    text: str


class Words(BaseModel):
    words: list[str]


class Tally(BaseModel):
    first: str
    count: int


class Approval(BaseModel):
    approved: bool
    approver: str


@am.specialist()
def split(doc: Doc) -> Words:
    """Split the text into words."""
    return Words(words=doc.text.split())


@am.specialist()
def count(words: Words) -> Tally:
    """Count the words."""
    return Tally(first=words.words[0], count=len(words.words))


def counting(*, escalate_on: str | None = None) -> Any:
    """meta ``pipeline`` -> lead ``counting`` -> split, count (escalates on a first word)."""
    gate = am.Gate(
        checks=[am.Check(name="known", fn=lambda o, b: o.first != escalate_on, on_fail="escalate")]
    )
    tally = am.Specialist(name="count", input=Words, output=Tally, fn=count.fn, gate=gate)
    lead = am.Lead(name="counting", input=Doc, output=Tally, stages=[split, tally])
    return am.Meta(name="pipeline", input=Doc, output=Tally, stages=[lead]).compile()


def approval() -> Any:
    """meta ``desk`` -> lead ``review`` -> split, approve (a human)."""
    ask = am.Specialist(name="approve", input=Words, output=Approval, layer="human")
    lead = am.Lead(name="review", input=Doc, output=Approval, stages=[split, ask])
    return am.Meta(name="desk", input=Doc, output=Approval, stages=[lead]).compile()


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def memory(store: InMemoryStore) -> EpisodicMemory:
    return EpisodicMemory(store)


# -- am.run / am.resume with episodes= -------------------------------------------------------


def test_a_completed_run_is_recorded_under_its_thread_id(
    memory: EpisodicMemory, store: InMemoryStore
) -> None:
    result = am.run(
        counting(), Doc(text="alpha beta gamma"), thread_id="t-1", goal="count", episodes=memory
    )

    assert result.status is am.RunStatus.COMPLETED
    assert result.episode_id == "t-1"
    episode = memory.get("t-1")
    assert episode is not None
    assert episode.outcome.status is am.RunStatus.COMPLETED
    assert (episode.workflow, episode.goal) == ("pipeline", "count")
    assert episode.input_summary == "text: alpha beta gamma"
    assert episode.output == {"first": "alpha", "count": 3}
    assert [a.agent for a in episode.actions][:1] == ["pipeline/counting"]
    assert store.count() == 1
    recalled = memory.recall(Doc(text="alpha beta gamma"), goal="count")
    assert isinstance(recalled, RecalledEpisodes)
    assert recalled.episodes[0].episode.id == "t-1"


def test_an_escalated_run_is_recorded_as_escalated(memory: EpisodicMemory) -> None:
    result = am.run(
        counting(escalate_on="stop"), Doc(text="stop here"), thread_id="t-esc", episodes=memory
    )

    assert result.status is am.RunStatus.ESCALATED
    episode = memory.get("t-esc")
    assert episode is not None and result.episode_id == "t-esc"
    assert episode.outcome.status is am.RunStatus.ESCALATED
    assert episode.outcome.reason == result.reason


def test_a_run_stopped_by_its_budget_is_recorded_with_what_it_had_done(
    memory: EpisodicMemory,
) -> None:
    budget = am.Budget(steps=2)
    result = am.run(counting(), Doc(text="a b"), thread_id="t-b", budget=budget, episodes=memory)

    assert result.status is am.RunStatus.BUDGET_EXHAUSTED
    episode = memory.get("t-b")
    assert episode is not None
    assert episode.outcome.status is am.RunStatus.BUDGET_EXHAUSTED
    assert episode.input_summary == "text: a b"


def test_a_killed_run_is_recorded_then_replaced_when_it_resumes_and_completes(
    memory: EpisodicMemory, store: InMemoryStore
) -> None:
    graph, saver, switch = counting(), InMemorySaver(), KillSwitch()
    switch.kill(workflow="pipeline", reason="incident 7")
    try:
        killed = am.run(
            graph, Doc(text="x y z"), thread_id="t-kill", checkpointer=saver, episodes=memory
        )
    finally:
        switch.clear(workflow="pipeline")

    assert killed.status is am.RunStatus.KILLED
    episode = memory.get("t-kill")
    assert episode is not None and killed.episode_id == "t-kill"
    assert (episode.workflow, episode.outcome.status) == ("pipeline", am.RunStatus.KILLED)
    assert episode.input_summary == "text: x y z"  # read back from the checkpoint

    resumed = am.run(graph, None, thread_id="t-kill", checkpointer=saver, episodes=memory)

    assert resumed.status is am.RunStatus.COMPLETED
    episode = memory.get("t-kill")
    assert episode is not None and resumed.episode_id == "t-kill"
    assert episode.outcome.status is am.RunStatus.COMPLETED
    assert episode.input_summary == "text: x y z"
    assert store.count() == 1


def test_a_run_awaiting_a_human_is_recorded_once_resumed_to_completion(
    memory: EpisodicMemory, store: InMemoryStore
) -> None:
    graph, saver = approval(), InMemorySaver()
    paused = am.run(
        graph,
        Doc(text="buy ten chairs"),
        thread_id="t-human",
        goal="approve the purchase",
        checkpointer=saver,
        episodes=memory,
    )

    assert paused.status is am.RunStatus.AWAITING_HUMAN
    assert paused.episode_id is None and paused.alerts == []
    assert store.count() == 0

    done = am.resume(
        graph,
        "t-human",
        {"approved": True, "approver": "kim"},
        checkpointer=saver,
        episodes=memory,
    )

    assert done.status is am.RunStatus.COMPLETED
    assert done.episode_id == "t-human"
    episode = memory.get("t-human")
    assert episode is not None
    assert episode.input_summary == "text: buy ten chairs"  # the task it was first given
    assert episode.goal == "approve the purchase"
    assert episode.output == {"approved": True, "approver": "kim"}
    assert store.count() == 1


def test_a_thread_that_had_finished_is_not_recorded_again(memory: EpisodicMemory) -> None:
    graph, saver = counting(), InMemorySaver()
    am.run(graph, Doc(text="one two"), thread_id="t-done", checkpointer=saver, episodes=memory)
    fix = Correction(field="count", new=3, reviewer="ann")
    memory.correct("t-done", fix)

    again = am.run(graph, None, thread_id="t-done", checkpointer=saver, episodes=memory)

    assert again.status is am.RunStatus.COMPLETED
    assert again.episode_id is None
    episode = memory.get("t-done")
    assert episode is not None
    assert [c.new for c in episode.corrections] == [3]  # the reviewer's fix survives


class FailingStore(InMemoryStore):
    def add(self, items: list[MemoryItem], vectors: Vectors) -> None:  # type: ignore[override]
        raise RuntimeError("disk full")


def test_a_failing_store_does_not_fail_the_run_and_is_visible_on_the_result(
    caplog: pytest.LogCaptureFixture,
) -> None:
    memory = EpisodicMemory(FailingStore())
    with caplog.at_level(logging.WARNING):
        result = am.run(counting(), Doc(text="p q"), thread_id="t-fail", episodes=memory)

    assert result.status is am.RunStatus.COMPLETED
    assert result.output == Tally(first="p", count=2)
    assert result.episode_id is None
    [alert] = result.alerts
    assert alert.kind == "episode_not_recorded"
    assert "t-fail" in alert.message and "disk full" in alert.message
    assert any(
        r.levelno == logging.WARNING and "disk full" in r.getMessage() for r in caplog.records
    )


def test_settings_memory_that_cannot_be_opened_does_not_fail_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTMESH_EPISODES", "on")
    monkeypatch.setenv("AGENTMESH_EMBEDDINGS", "no_such_package.embed:Nothing")

    result = am.run(counting(), Doc(text="p q"), thread_id="t-bad")

    assert result.status is am.RunStatus.COMPLETED
    assert result.episode_id is None
    assert [a.kind for a in result.alerts] == ["episode_not_recorded"]


# -- AGENTMESH_EPISODES ----------------------------------------------------------------------------


def test_episodes_on_records_into_the_data_folders_chroma(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMESH_EPISODES", "on")
    settings = am.Settings.from_env()
    assert settings.episodes is True

    first = am.run(counting(), Doc(text="invoice from bleu cloud hosting"), thread_id="t-env1")
    second = am.run(counting(), Doc(text="taxi from the airport"), thread_id="t-env2")

    assert (first.episode_id, second.episode_id) == ("t-env1", "t-env2")
    assert episode_runs.settings_episodes(settings) is episode_runs.settings_episodes(settings)
    assert (settings.data_dir / "chroma").is_dir()
    reopened = build_episodic_memory(data_dir=settings.data_dir)  # another process would
    recalled = reopened.recall("bleu cloud hosting invoice", workflow="pipeline")
    assert isinstance(recalled, RecalledEpisodes)
    assert recalled.episodes[0].episode.id == "t-env1"
    assert recalled.episodes[0].episode.output == {"first": "invoice", "count": 5}

    off = am.run(counting(), Doc(text="not this one"), thread_id="t-env3", episodes=False)
    assert off.episode_id is None and reopened.get("t-env3") is None


def test_episodes_setting_accepts_on_and_off_only() -> None:
    assert am.Settings.from_env({"AGENTMESH_EPISODES": "ON"}).episodes is True
    assert am.Settings.from_env({"AGENTMESH_EPISODES": "off"}).episodes is False
    assert am.Settings.from_env({}).episodes is False
    with pytest.raises(ConfigError, match="AGENTMESH_EPISODES"):
        am.Settings.from_env({"AGENTMESH_EPISODES": "yes"})


def test_a_run_without_episodes_never_touches_episodic_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("episodic memory was touched")

    monkeypatch.setattr(episode_runs, "record_finished", refuse)
    monkeypatch.setattr(episode_runs, "build_episodic_memory", refuse)
    graph, saver = approval(), InMemorySaver()

    assert am.run(counting(), Doc(text="a b c"), thread_id="t-off").episode_id is None
    paused = am.run(graph, Doc(text="a b"), thread_id="t-h", checkpointer=saver)
    done = am.resume(graph, "t-h", {"approved": False, "approver": "x"}, checkpointer=saver)
    assert (paused.status, done.status) == (am.RunStatus.AWAITING_HUMAN, am.RunStatus.COMPLETED)
    assert done.alerts == [] and done.episode_id is None


def test_a_run_without_episodes_imports_no_memory_module(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pydantic import BaseModel\n"
        "import agentmesh as am\n"
        "class Doc(BaseModel):\n    text: str\n"
        "@am.specialist()\n"
        "def echo(doc: Doc) -> Doc:\n    return doc\n"
        "r = am.run(echo.compile(), Doc(text='hi'))\n"
        "print(r.status.value, r.episode_id, sorted(m for m in sys.modules\n"
        "    if m == 'chromadb' or m.startswith('agentmesh.memory')))\n"
    )
    env = {**os.environ, "AGENTMESH_DATA_DIR": str(tmp_path / "child")}
    env.pop("AGENTMESH_EPISODES", None)
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "completed None []"


# -- the batch CLI ---------------------------------------------------------------------------------


def _sample(tmp_path: Path, ids: set[str]) -> Path:
    lines = (ROOT / "graphs" / "data" / "invoices_sample.jsonl").read_text().splitlines()
    picked = [line for line in lines if json.loads(line)["id"] in ids]
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(picked) + "\n", encoding="utf-8")
    return path


def _batch(items: Path, out: Path, *flags: str) -> dict[str, Any]:
    done = CliRunner().invoke(
        app, ["run", "graphs/invoices.py", "--input", str(items), "--out", str(out), *flags]
    )
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout) if "--json" in flags else {"text": done.stdout}


def test_the_batch_cli_records_finished_items_once(tmp_path: Path) -> None:
    # inv-000012 waits for a human approver: not finished, so not recorded.
    items = _sample(tmp_path, {"inv-000010", "inv-000011", "inv-000012", "inv-000013"})
    out = tmp_path / "out.jsonl"

    summary = _batch(items, out, "--json")

    lines = [json.loads(t) for t in out.read_text().splitlines()]
    finished = [line for line in lines if line["status"] != "awaiting_human"]
    assert [line["id"] for line in lines if line not in finished] == ["inv-000012"]
    assert summary["episodes_recorded"] == len(finished) == 3
    assert summary["episodes_not_recorded"] == 0
    assert all(line["episode_id"] == line["thread_id"] for line in finished)
    assert all("episode_id" not in line for line in lines if line not in finished)
    memory = build_episodic_memory(data_dir=am.Settings.from_env().data_dir)
    stamps = {}
    for line in finished:
        episode = memory.get(line["episode_id"])
        assert episode is not None and episode.workflow == "back_office"
        assert episode.outcome.status.value == line["status"]
        assert line["id"] in episode.input_summary
        stamps[episode.id] = episode.created_at
    assert memory.store.count() == 3

    again = _batch(items, out, "--json")

    assert again["skipped_already_done"] == 4
    assert again["episodes_recorded"] == 0
    assert memory.store.count() == 3
    assert {e: memory.get(e).created_at for e in stamps} == stamps  # type: ignore[union-attr]


def test_the_batch_cli_prints_the_episodes_it_recorded(tmp_path: Path) -> None:
    items = _sample(tmp_path, {"inv-000010", "inv-000011"})

    text = _batch(items, tmp_path / "out.jsonl")["text"]

    assert "episodes recorded" in text
    row = next(r for r in text.splitlines() if "episodes recorded" in r)
    assert row.replace("│", " ").split()[-1] == "2"


def test_no_episodes_switches_recording_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("episodic memory was touched")

    monkeypatch.setenv("AGENTMESH_EPISODES", "on")  # the flag wins over the environment
    monkeypatch.setattr(episode_runs, "settings_episodes", refuse)
    items = _sample(tmp_path, {"inv-000010", "inv-000011"})
    out = tmp_path / "out.jsonl"

    summary = _batch(items, out, "--no-episodes", "--json")
    text = _batch(items, tmp_path / "other.jsonl", "--no-episodes")["text"]

    assert summary["episodes_recorded"] == summary["episodes_not_recorded"] == 0
    lines = [json.loads(t) for t in out.read_text().splitlines()]
    assert [line["status"] for line in lines] == ["completed", "completed"]
    assert all("episode_id" not in line and "episode_error" not in line for line in lines)
    assert "episodes recorded" not in text
