"""A cost cap for a whole batch: never passed, the rest reported skipped, resumable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import agentmesh as am
from agentmesh.batch import SKIPPED, run_batch
from agentmesh.testing import ScriptedChatModel

ROOT = Path(__file__).resolve().parents[2]
CLI = (sys.executable, "-m", "agentmesh.cli")
# Answers as long as the output reserve: a call's worst case is then close to its cost,
# so a cap of N item costs lets about N items run.
ANSWER_TOKENS = 1000


class Doc(BaseModel):
    text: str


class Verdict(BaseModel):
    label: str


class Approval(BaseModel):
    approved: bool


def _model() -> ScriptedChatModel:
    return ScriptedChatModel(
        respond=lambda msgs, tools: Verdict(label="ok"), tokens_per_answer=ANSWER_TOKENS
    )


def _batch(model: ScriptedChatModel, *, human: bool = False) -> tuple[Any, Any]:
    label = am.Specialist(name="label", input=Doc, output=Verdict, layer="small_model", model=model)
    stages: list[Any] = [label]
    if human:
        stages.append(am.Specialist(name="approve", input=Verdict, output=Approval, layer="human"))
    lead = am.Lead(name="labelling", input=Doc, output=Verdict, stages=stages)
    return lead, lead.compile()


def _settings() -> am.Settings:
    return replace(am.Settings.from_env(), max_output_tokens=ANSWER_TOKENS)


def _items(n: int) -> list[dict[str, Any]]:
    return [{"id": f"item-{i}", "text": "the same words for every item"} for i in range(1, n + 1)]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def item_cost(tmp_path: Path) -> float:
    """What one item costs, from a batch without a cap."""
    lead, graph = _batch(_model())
    probe = tmp_path / "probe.jsonl"
    run_batch(graph, lead, _items(1), probe, settings=_settings())
    cost = float(_lines(probe)[0]["usage"]["cost_usd"])
    assert cost > 0
    return cost


def test_cap_is_never_passed_and_the_rest_is_skipped(tmp_path: Path, item_cost: float) -> None:
    model = _model()
    lead, graph = _batch(model)
    out = tmp_path / "out.jsonl"
    cap = 2.5 * item_cost

    summary = run_batch(graph, lead, _items(5), out, settings=_settings(), budget_usd=cap)

    lines = _lines(out)
    assert [line["status"] for line in lines] == [
        "completed",
        "completed",
        "budget_exhausted",
        SKIPPED,
        SKIPPED,
    ]
    assert model.calls == 2, "the third item's call could not be afforded, so it was not made"
    assert lines[2]["batch_budget_usd"] == cap
    assert all(line["reason"] == "batch budget exhausted" for line in lines[3:])
    spent = sum(line.get("spent_usd", 0.0) for line in lines)
    assert spent == pytest.approx(2 * item_cost)
    assert spent <= cap
    assert summary.skipped_budget == 2
    assert summary.statuses == {"completed": 2, "budget_exhausted": 1, SKIPPED: 2}
    assert summary.as_dict()["skipped_for_budget"] == 2
    assert summary.as_dict()["budget_spent_usd"] == pytest.approx(spent, abs=1e-8)


def test_rerun_with_the_same_cap_changes_nothing(tmp_path: Path, item_cost: float) -> None:
    model = _model()
    lead, graph = _batch(model)
    out = tmp_path / "out.jsonl"
    cap = 2.5 * item_cost
    run_batch(graph, lead, _items(5), out, settings=_settings(), budget_usd=cap)
    before = out.read_bytes()

    summary = run_batch(graph, lead, _items(5), out, settings=_settings(), budget_usd=cap)

    assert out.read_bytes() == before, "the spend in the file still fills the cap"
    assert model.calls == 2
    assert summary.skipped == 2, "the two completed items are done"
    assert summary.skipped_budget == 2
    assert summary.statuses == {"completed": 2, "budget_exhausted": 1, SKIPPED: 2}


def test_rerun_with_a_higher_cap_resumes_the_stopped_item_and_runs_the_skipped(
    tmp_path: Path, item_cost: float
) -> None:
    model = _model()
    lead, graph = _batch(model)
    out = tmp_path / "out.jsonl"
    run_batch(graph, lead, _items(5), out, settings=_settings(), budget_usd=2.5 * item_cost)

    summary = run_batch(
        graph, lead, _items(5), out, settings=_settings(), budget_usd=10 * item_cost
    )

    latest = {line["id"]: line for line in _lines(out)}
    assert [latest[f"item-{i}"]["status"] for i in range(1, 6)] == ["completed"] * 5
    assert latest["item-3"].get("resumed") is True, "item 3 continues its checkpointed thread"
    assert model.calls == 5, "every item's model call was made exactly once"
    assert summary.statuses == {"completed": 5}
    assert summary.skipped_budget == 0
    assert summary.spent_usd == pytest.approx(5 * item_cost)


def test_without_a_cap_nothing_is_skipped_and_lines_carry_no_budget_fields(
    tmp_path: Path,
) -> None:
    lead, graph = _batch(_model())
    out = tmp_path / "out.jsonl"

    summary = run_batch(graph, lead, _items(3), out, settings=_settings())

    assert all("spent_usd" not in line for line in _lines(out))
    assert summary.as_dict()["budget_usd"] is None
    assert summary.skipped_budget == 0


def test_zero_cap_runs_nothing(tmp_path: Path) -> None:
    model = _model()
    lead, graph = _batch(model)
    out = tmp_path / "out.jsonl"

    summary = run_batch(graph, lead, _items(3), out, settings=_settings(), budget_usd=0.0)

    assert [line["status"] for line in _lines(out)] == [SKIPPED] * 3
    assert model.calls == 0
    assert summary.skipped_budget == 3


def test_negative_cap_is_a_config_error(tmp_path: Path) -> None:
    lead, graph = _batch(_model())
    with pytest.raises(am.ConfigError, match="batch budget"):
        run_batch(graph, lead, _items(1), tmp_path / "o.jsonl", settings=_settings(), budget_usd=-1)


def test_spend_of_a_run_paused_for_a_human_counts(tmp_path: Path, item_cost: float) -> None:
    lead, graph = _batch(_model(), human=True)
    out = tmp_path / "out.jsonl"

    summary = run_batch(
        graph, lead, _items(2), out, settings=_settings(), budget_usd=10 * item_cost
    )

    lines = _lines(out)
    assert [line["status"] for line in lines] == ["awaiting_human"] * 2
    assert [line["spent_usd"] for line in lines] == pytest.approx([item_cost] * 2)
    assert summary.spent_usd == pytest.approx(2 * item_cost)


def test_cli_budget_usd_reports_skipped_items(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "AGENTMESH_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "120"}
    done = subprocess.run(
        [*CLI, "run", "graphs/invoices.py", "--out", str(out), "--budget-usd", "0", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    lines = _lines(out)
    assert {line["status"] for line in lines} == {SKIPPED}
    assert summary["skipped_for_budget"] == len(lines) == summary["items"]
    assert summary["budget_usd"] == 0.0
    assert summary["accuracy"] == {}, "skipped items are not scored"


def test_cli_rejects_a_negative_budget(tmp_path: Path) -> None:
    env = {**os.environ, "AGENTMESH_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [*CLI, "run", "graphs/invoices.py", "--budget-usd", "-1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 2
    assert "--budget-usd" in done.stderr
