"""The cost model on the shipped invoice workflow: the figures it publishes hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentmesh.batch import read_items
from agentmesh.costmodel import CostModelConfig, CostReport, model_agents, simulate_costs
from agentmesh.workspace import load_workflow

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)

RUNS = 10


@pytest.fixture(scope="module")
def invoices() -> tuple[Any, list[dict[str, Any]]]:
    wf = load_workflow(ROOT / "graphs" / "invoices.py")
    assert wf.sample is not None
    return wf.role, list(read_items(wf.sample))


@pytest.fixture(scope="module")
def report(
    invoices: tuple[Any, list[dict[str, Any]]], tmp_path_factory: pytest.TempPathFactory
) -> CostReport:
    role, items = invoices
    # The ledger tools keep their state in the data folder of the environment.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AGENTMESH_DATA_DIR", str(tmp_path_factory.mktemp("data")))
        return simulate_costs(role, items, CostModelConfig(runs=RUNS, seed=3))


def test_failure_ratio_meets_the_target_with_the_controls_on(report: CostReport) -> None:
    assert report.down_agent == "fraud_review", "the last model-backed agent by default"
    assert report.failure_to_expected_ratio <= 1.5
    assert report.target_met
    assert report.on.risk_exposure_per_1000_runs_usd() == 0.0


def test_without_the_controls_the_failure_scenario_costs_more(report: CostReport) -> None:
    off = report.failure_to_expected_ratio_controls_off
    assert off is not None
    assert off > 1.2
    assert off > report.failure_to_expected_ratio + 0.3
    assert report.off is not None
    assert report.off.risk_exposure_per_1000_runs_usd() > 0


def test_expected_runs_call_every_model_agent_once(report: CostReport) -> None:
    expected = report.on.scenarios["expected"]
    assert expected.model_calls == (4,) * RUNS
    assert expected.failed_requests == 0
    assert all(cost > 0 for cost in expected.costs_usd)
    assert expected.p95_cost_usd >= expected.cost_per_run_usd
    assert set(expected.statuses) <= {"completed", "awaiting_human"}


def test_an_unusual_input_costs_one_more_call_per_model_agent(report: CostReport) -> None:
    expected, edge = report.on.scenarios["expected"], report.on.scenarios["edge"]
    extra = [e - x for e, x in zip(edge.model_calls, expected.model_calls, strict=True)]
    assert sorted(extra) == [0] * (RUNS - 1) + [4], "10% of 10 runs: one unusual input"
    assert 1.0 < report.on.ratio("edge") < 1.5
    assert edge.statuses == expected.statuses, "the retries with feedback recover"


def test_breakers_and_fallbacks_absorb_the_failures(report: CostReport) -> None:
    on, off = report.on.scenarios["failure"], report.off.scenarios["failure"]  # type: ignore[union-attr]
    assert on.statuses == report.on.scenarios["expected"].statuses
    assert on.model_calls == (3,) * RUNS, "the down agent's fallback answered, for free"
    # The breaker opens once failures outweigh the healthy calls in its window; after
    # that the dead endpoint is not called at all.
    assert 0 < on.failed_requests <= 2 * RUNS
    assert off.failed_requests >= 10 * RUNS, "without a breaker every run hits the dead endpoint"
    assert on.failed_requests < off.failed_requests / 10
    assert off.statuses == {"escalated": RUNS}
    assert on.tool_failures > 0


def test_the_cap_is_sized_from_the_expected_cost(report: CostReport) -> None:
    cap = report.on.budget_usd_per_run
    assert cap == pytest.approx(5 * report.on.scenarios["expected"].cost_per_run_usd)
    assert report.off is not None and report.off.budget_usd_per_run is None
    assert max(report.on.scenarios["failure"].costs_usd) <= cap


def test_json_has_every_published_field(report: CostReport) -> None:
    data = report.as_dict()
    for key in (
        "failure_to_expected_ratio",
        "failure_to_expected_ratio_controls_off",
        "target_failure_to_expected_ratio",
        "target_met",
        "risk_exposure_per_1000_runs_usd",
        "risk_exposure_per_1000_runs_usd_controls_off",
        "risk_exposure_definition",
        "method",
        "models",
        "token_counter",
    ):
        assert key in data, key
    assert data["simulated"] is True
    assert "scripted answers at real token counts and real prices" in data["method"]
    assert data["models"]["small_model"] == "gpt-4o-mini"
    for mode in ("controls_on", "controls_off"):
        for name in ("expected", "edge", "failure"):
            figures = data[mode]["scenarios"][name]
            assert figures["runs"] == RUNS
            for field in ("cost_per_run_usd", "p95_cost_usd", "model_calls_per_run", "statuses"):
                assert field in figures, (mode, name, field)


def test_the_simulation_is_reproducible(invoices: tuple[Any, list[dict[str, Any]]]) -> None:
    role, items = invoices
    config = CostModelConfig(runs=3, seed=5, off=None)
    first = simulate_costs(role, items, config)
    second = simulate_costs(role, items, config)
    assert first.on.scenarios["edge"].costs_usd == second.on.scenarios["edge"].costs_usd
    assert first.off is None and first.as_dict()["controls_off"] is None


def test_model_agents_are_listed_in_run_order(invoices: tuple[Any, list[dict[str, Any]]]) -> None:
    role, _ = invoices
    assert [a.name for a in model_agents(role)] == [
        "extract_fields",
        "risk_critic",
        "categorize",
        "fraud_review",
    ]
