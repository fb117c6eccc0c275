"""``agentmesh costmodel`` as a user runs it: output, JSON and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import agentmesh.costmodel as costmodel
from agentmesh.cli._app import app
from agentmesh.costmodel import CONTROLS_ON, CostReport, ModeResult, ScenarioResult

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]


def agentmesh(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENTMESH_DATA_DIR": str(data), "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "agentmesh.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )


def test_json_report() -> None:
    done = CliRunner().invoke(app, ["costmodel", "graphs/invoices.py", "--runs", "1", "--json"])

    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert data["runs_per_scenario"] == 1
    assert data["simulated"] is True
    assert set(data["cost_per_run_usd"]) == {"expected", "edge", "failure"}
    assert data["failure_to_expected_ratio"] <= data["target_failure_to_expected_ratio"] == 1.5
    assert data["failure_to_expected_ratio_controls_off"] is not None
    assert data["target_met"] is True
    assert isinstance(data["risk_exposure_per_1000_runs_usd"], float)


def test_table_report_says_it_is_simulated(tmp_path: Path) -> None:
    done = agentmesh("costmodel", "graphs/invoices.py", "--runs", "1", data=tmp_path)

    assert done.returncode == 0, done.stderr
    assert "Cost model: back_office (simulated)" in done.stdout
    assert "failure_to_expected_ratio" in done.stdout
    assert "controls off" in done.stdout
    assert "scripted answers at real token counts and real prices" in done.stdout
    assert "closed -> open" not in done.stderr, "an expected breaker opening is not news"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["costmodel", "graphs/nope.py"], "no such workflow file"),
        (["costmodel", "graphs/invoices.py", "--runs", "0"], "--runs"),
        (["costmodel", "graphs/invoices.py", "--input", "missing.jsonl"], "no such file"),
        (["costmodel", "graphs/invoices.py", "--down-agent", "nobody"], "not a model-backed"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    done = agentmesh(*args, data=tmp_path)

    assert done.returncode == 2, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("agentmesh") and needle in lines[0]


def _report(failure_cost: float) -> CostReport:
    def result(name: str, cost: float) -> ScenarioResult:
        return ScenarioResult(scenario=name, costs_usd=(cost,), model_calls=(4,))

    on = ModeResult(
        protection=CONTROLS_ON,
        budget_usd_per_run=None,
        scenarios={"expected": result("expected", 1.0), "failure": result("failure", failure_cost)},
    )
    return CostReport(
        workflow="back_office",
        seed=1,
        down_agent="fraud_review",
        models={},
        token_counter="estimate",
        scenarios={},
        on=on,
    )


@pytest.mark.parametrize(("failure_cost", "code"), [(2.0, 1), (1.2, 0)])
def test_check_exits_1_when_the_target_is_missed(
    monkeypatch: pytest.MonkeyPatch, failure_cost: float, code: int
) -> None:
    def fake(role: Any, items: Any, config: Any, *, progress: Any = None) -> CostReport:
        return _report(failure_cost)

    monkeypatch.setattr(costmodel, "simulate_costs", fake)

    done = CliRunner().invoke(app, ["costmodel", "graphs/invoices.py", "--check", "--json"])

    assert done.exit_code == code, done.output
    assert json.loads(done.stdout)["target_met"] is (code == 0)
