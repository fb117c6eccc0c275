"""The benchmark behind ``agentmesh bench``: its report, and that it compares equal work."""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

import pytest

from agentmesh import bench
from agentmesh.bench import _overhead as overhead
from agentmesh.bench import _supervisor as supervisor

pytestmark = pytest.mark.timeout(60)

needs_supervisor = pytest.mark.skipif(
    not supervisor.supervisor_available(), reason="needs the bench extra (langgraph-supervisor)"
)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return bench.run_benchmark(tasks=3, repeats=3)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_report_header_and_json(report: dict[str, Any]) -> None:
    assert report["tasks"] == 3
    assert report["repeats"] == 3
    assert report["python"].count(".") == 2
    assert report["langgraph_version"] != "unknown"
    assert report["machine"].endswith(" cores")
    json.loads(json.dumps(report, allow_nan=False))


def test_overhead_keys_are_numbers_and_ratio_math(report: dict[str, Any]) -> None:
    o = report["overhead"]
    for key in (
        "agentmesh_ms_per_task",
        "langgraph_ms_per_task",
        "overhead_ratio_vs_langgraph",
        "agentmesh_cpu_ms_per_task",
        "langgraph_cpu_ms_per_task",
        "cpu_overhead_ratio_vs_langgraph",
    ):
        assert _is_number(o[key]) and o[key] > 0, key
    assert o["overhead_ratio_vs_langgraph"] == pytest.approx(
        o["agentmesh_ms_per_task"] / o["langgraph_ms_per_task"], rel=1e-3, abs=1e-3
    )
    assert o["cpu_overhead_ratio_vs_langgraph"] == pytest.approx(
        o["agentmesh_cpu_ms_per_task"] / o["langgraph_cpu_ms_per_task"], rel=1e-3, abs=1e-3
    )
    assert o["within_target"] is (o["overhead_ratio_vs_langgraph"] <= o["target_ratio"])
    for system in ("agentmesh", "langgraph"):
        repeats = o[f"{system}_repeats_ms"]
        assert len(repeats) == 3 and all(_is_number(x) for x in repeats)
        assert o[f"{system}_ms_per_task"] == pytest.approx(statistics.median(repeats), abs=2e-3)
    assert o["same_outputs"] is True
    assert o["model_calls_per_task"] == {"agentmesh": 3.0, "langgraph": 3.0}


@needs_supervisor
def test_supervisor_keys_counts_and_ratio_math(report: dict[str, Any]) -> None:
    s = report["supervisor"]
    sup, mesh = s["supervisor"], s["agentmesh"]
    assert s["tasks"] == 3
    assert s["same_outputs"] is True
    for counts in (sup, mesh):
        assert counts["model_calls"] > 0 and counts["input_tokens"] > 0
    # The supervisor pattern's minimum: 4 routing calls (3 handoffs + the reply) and 3 workers.
    assert sup["model_calls"] == 7 * 3
    assert sup["by_model"]["supervisor"]["calls"] == 4 * 3
    assert mesh["model_calls"] == 3 * 3 < sup["model_calls"]
    assert mesh["input_tokens"] < sup["input_tokens"]
    assert s["model_calls_ratio_vs_supervisor"] == round(
        mesh["model_calls"] / sup["model_calls"], 4
    )
    assert s["input_tokens_ratio_vs_supervisor"] == round(
        mesh["input_tokens"] / sup["input_tokens"], 4
    )
    assert s["within_targets"] is (
        s["model_calls_ratio_vs_supervisor"] <= 0.6 and s["input_tokens_ratio_vs_supervisor"] <= 0.4
    )


def test_both_builds_produce_the_same_outcomes() -> None:
    am_models, lg_models = overhead.new_models(), overhead.new_models()
    am_graph = overhead.build_agentmesh(am_models)
    lg_graph = overhead.build_langgraph(lg_models)
    outcomes = []
    for ticket in overhead.sample_tickets(12):
        mine = overhead.run_agentmesh(am_graph, ticket)
        assert mine == overhead.run_langgraph(lg_graph, ticket)
        outcomes.append(mine)
    # The inputs exercise every branch, including the vote that overrules critic_b.
    assert {o.category for o in outcomes} == {"billing", "technical", "general"}
    assert {o.tone for o in outcomes} == {"friendly"}
    assert len({o.priority for o in outcomes}) > 1
    for models in (am_models, lg_models):
        assert {name: m.calls for name, m in models.items()} == {
            "classify": 12,
            "critic_a": 12,
            "critic_b": 12,
        }
    assert any("billing" in str(r[-1].content) for r in lg_models["critic_b"].requests)


@needs_supervisor
def test_supervisor_and_lead_give_the_same_answer_from_the_source() -> None:
    team, lead = supervisor.build_supervisor(), supervisor.build_agentmesh()
    for i in range(3):
        brief = supervisor.make_brief(i)
        assert 300 <= len(brief.source.split()) <= 500
        answer = supervisor.run_supervisor(team, brief)
        assert answer == supervisor.run_agentmesh(lead, brief)
        findings = supervisor.research(brief.source)
        assert f"${findings.revenue_2023} million in 2023" in answer


@needs_supervisor
def test_supervisor_workers_receive_the_conversation_lead_specialists_do_not() -> None:
    team, lead = supervisor.build_supervisor(), supervisor.build_agentmesh()
    brief = supervisor.make_brief(7)
    supervisor.run_supervisor(team, brief)
    supervisor.run_agentmesh(lead, brief)
    snippet = brief.source[-200:]

    def sent(model: Any) -> str:
        return "\n".join(str(m.content) for m in model.requests[0])

    for worker in supervisor.WORKERS:  # langgraph-supervisor passes the whole history
        assert snippet in sent(team.models[worker])
    assert snippet in sent(lead.models["research"])
    for worker in ("compute", "write"):  # typed inputs: a summary, not the transcript
        assert snippet not in sent(lead.models[worker])
        assert "revenue_2023" in sent(lead.models[worker])


def test_supervisor_part_is_skipped_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "supervisor_available", lambda: False)
    assert supervisor.compare_supervisor(tasks=1) == {"skipped": "pip install 'agentmesh[bench]'"}


def test_ratio_helper_and_argument_checks() -> None:
    assert overhead.ratio(3, 7) == 0.4286
    assert overhead.ratio(1, 3, 2) == 0.33
    assert overhead.ratio(1, 0) == math.inf
    with pytest.raises(ValueError, match="tasks and repeats"):
        bench.run_benchmark(tasks=0)


def test_the_builds_take_turns_within_each_repeat(monkeypatch: pytest.MonkeyPatch) -> None:
    # Both builds see the same spells of machine speed: they alternate every
    # BLOCK tickets, and who goes first alternates too.
    order: list[str] = []
    real_am, real_lg = bench.run_agentmesh, bench.run_langgraph

    def am_run(graph: Any, ticket: Any) -> Any:
        order.append("am")
        return real_am(graph, ticket)

    def lg_run(graph: Any, ticket: Any) -> Any:
        order.append("lg")
        return real_lg(graph, ticket)

    monkeypatch.setattr(bench, "run_agentmesh", am_run)
    monkeypatch.setattr(bench, "run_langgraph", lg_run)
    monkeypatch.setattr(bench, "BLOCK", 2)

    report = bench.measure_overhead(tasks=5, repeats=1, warmup=0)

    assert order == ["am", "am", "lg", "lg", "lg", "lg", "am", "am", "am", "lg"]
    assert report["turn_tickets"] == 2
