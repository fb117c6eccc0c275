"""Validation gates between stages: retry, escalate, halt, replan, built-in checks."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

import agentmesh as am
from agentmesh.testing import RecordingTracer
from agentmesh.tracing._base import SpanKind


class Order(BaseModel):
    amount: int


class Priced(BaseModel):
    total: int
    currency: str


class Filed(BaseModel):
    filed: bool


class Invoice(BaseModel):
    vendor: str
    amount: float
    net: float
    tax: float
    issued: date


positive = am.consistent(lambda o: o.total > 0, "total must be positive")


def run_lead(lead: am.Lead, payload: BaseModel, **kw: Any) -> am.RunResult:
    return am.run(lead.compile(), payload, checkpointer=None, **kw)


class Calls:
    """Counts and records calls of a stage function."""

    def __init__(self) -> None:
        self.feedback: list[str | None] = []

    @property
    def n(self) -> int:
        return len(self.feedback)


def make_filer(calls: Calls) -> am.Specialist:
    def file_it(p: Priced) -> Filed:
        calls.feedback.append(None)
        return Filed(filed=True)

    return am.Specialist(name="file_it", input=Priced, output=Filed, fn=file_it)


def make_pricer(
    calls: Calls, totals: list[int], *, gate: am.Gate | None = None, name: str = "price"
) -> am.Specialist:
    """A code specialist returning ``totals`` one after the other (the last one repeats)."""

    def price(order: Order, ctx: am.AgentContext) -> Priced:
        calls.feedback.append(ctx.feedback)
        total = totals[min(len(calls.feedback), len(totals)) - 1]
        return Priced(total=total, currency="EUR")

    return am.Specialist(name=name, input=Order, output=Priced, fn=price, gate=gate)


# -- retry ---------------------------------------------------------------------------------


def test_retry_feeds_the_reason_back_and_the_fixed_output_passes() -> None:
    calls = Calls()
    pricer = make_pricer(calls, [-5, 42], gate=am.Gate(checks=[positive], max_retries=2))
    lead = am.Lead(name="billing", input=Order, output=Priced, stages=[pricer])
    r = run_lead(lead, Order(amount=1))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == Priced(total=42, currency="EUR")
    assert calls.feedback[0] is None
    assert calls.feedback[1] is not None
    assert "total must be positive" in calls.feedback[1]
    assert [(g.stage, g.action, g.attempt) for g in r.gates] == [
        ("price", am.GateAction.RETRY, 1),
        ("price", am.GateAction.PASS, 2),
    ]
    assert r.gates[0].reasons == ["consistent: total must be positive"]


def test_retry_exhaustion_escalates_with_the_reason() -> None:
    calls = Calls()
    pricer = make_pricer(calls, [-1, -2, -3], gate=am.Gate(checks=[positive], max_retries=1))
    lead = am.Lead(name="billing", input=Order, output=Priced, stages=[pricer])
    r = run_lead(lead, Order(amount=1))
    assert r.status is am.RunStatus.ESCALATED
    assert "total must be positive" in r.reason
    assert "retries exhausted after 2 attempts" in r.reason
    assert calls.n == 2
    assert [g.action for g in r.gates] == [am.GateAction.RETRY, am.GateAction.ESCALATE]
    assert r.output is None


def test_on_fail_escalate_escalates_at_once_naming_lead_and_stage() -> None:
    calls = Calls()
    check = am.consistent(lambda o: o.total > 0, "negative total", on_fail="escalate")
    pricer = make_pricer(calls, [-1], gate=am.Gate(checks=[check]))
    lead = am.Lead(name="billing", input=Order, output=Priced, stages=[pricer])
    r = run_lead(lead, Order(amount=1))
    assert r.status is am.RunStatus.ESCALATED
    assert calls.n == 1
    assert r.escalation is not None
    assert r.escalation.decision_point == "billing/price"
    assert "negative total" in r.escalation.reason
    assert "negative total" in r.reason


def test_escalation_in_a_nested_lead_names_the_full_decision_path() -> None:
    calls = Calls()
    check = am.consistent(lambda o: o.total > 0, "negative total", on_fail="escalate")
    pricer = make_pricer(calls, [-1], gate=am.Gate(checks=[check]))
    lead = am.Lead(name="billing", input=Order, output=Priced, stages=[pricer])
    top = am.Meta(name="top", input=Order, output=Priced, stages=[lead])
    r = am.run(top.compile(), Order(amount=1), checkpointer=None)
    assert r.status is am.RunStatus.ESCALATED
    assert r.escalation is not None
    assert r.escalation.decision_point == "top/billing/price"
    assert "negative total" in r.escalation.reason


def test_on_fail_halt_halts() -> None:
    calls = Calls()
    check = am.consistent(lambda o: o.total > 0, "fraud suspected", on_fail="halt")
    pricer = make_pricer(calls, [-1], gate=am.Gate(checks=[check]))
    lead = am.Lead(name="billing", input=Order, output=Priced, stages=[pricer])
    r = run_lead(lead, Order(amount=1))
    assert r.status is am.RunStatus.HALTED
    assert "gate halted billing at 'price'" in r.reason
    assert "fraud suspected" in r.reason
    assert calls.n == 1
    assert r.gates[-1].action is am.GateAction.HALT


def test_on_fail_halt_in_nested_lead_halts_the_whole_run_without_rerunning() -> None:
    calls = Calls()
    check = am.consistent(lambda o: o.total > 0, "fraud suspected", on_fail="halt")
    pricer = make_pricer(calls, [-1], gate=am.Gate(checks=[check]))
    lead = am.Lead(name="billing", input=Order, output=Priced, stages=[pricer])
    top = am.Meta(name="top", input=Order, output=Priced, stages=[lead])
    r = am.run(top.compile(), Order(amount=1), checkpointer=None)
    assert calls.n == 1
    assert r.status is am.RunStatus.HALTED


def test_nothing_downstream_runs_after_a_failed_gate() -> None:
    price_calls, file_calls = Calls(), Calls()
    check = am.consistent(lambda o: o.total > 0, "negative", on_fail="escalate")
    pricer = make_pricer(price_calls, [-1], gate=am.Gate(checks=[check]))
    lead = am.Lead(
        name="billing", input=Order, output=Filed, stages=[pricer, make_filer(file_calls)]
    )
    r = run_lead(lead, Order(amount=1))
    assert r.status is am.RunStatus.ESCALATED
    assert price_calls.n == 1
    assert file_calls.n == 0
    assert [g.stage for g in r.gates] == ["price"]


def test_downstream_runs_once_the_gate_passes() -> None:
    price_calls, file_calls = Calls(), Calls()
    pricer = make_pricer(price_calls, [-1, 5], gate=am.Gate(checks=[positive]))
    lead = am.Lead(
        name="billing", input=Order, output=Filed, stages=[pricer, make_filer(file_calls)]
    )
    r = run_lead(lead, Order(amount=1))
    assert r.status is am.RunStatus.COMPLETED
    assert (price_calls.n, file_calls.n) == (2, 1)
    assert r.output == Filed(filed=True)


def test_failing_code_stage_is_retried_then_escalated() -> None:
    calls = Calls()

    def boom(o: Order) -> Priced:
        calls.feedback.append(None)
        raise ValueError("database down")

    stage = am.Specialist(name="boom", input=Order, output=Priced, fn=boom)
    lead = am.Lead(name="billing", input=Order, output=Priced, stages=[stage])
    r = run_lead(lead, Order(amount=1))
    assert r.status is am.RunStatus.ESCALATED
    assert "ValueError: database down" in r.reason
    assert calls.n == 2  # default gate: one retry


# -- replan --------------------------------------------------------------------------------


def test_replan_picks_a_different_stage_and_the_planner_sees_the_reason() -> None:
    seen: list[str | None] = []

    def planner(task: am.TaskMessage, reason: str | None) -> list[str]:
        seen.append(reason)
        return ["primary"] if reason is None else ["backup"]

    primary_calls, backup_calls = Calls(), Calls()
    replan = am.consistent(lambda o: o.total > 0, "primary quote invalid", on_fail="replan")
    primary = make_pricer(primary_calls, [-1], gate=am.Gate(checks=[replan]), name="primary")
    backup = make_pricer(backup_calls, [77], name="backup")
    lead = am.Lead(
        name="billing", input=Order, output=Priced, stages=[primary, backup], planner=planner
    )
    r = run_lead(lead, Order(amount=1))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == Priced(total=77, currency="EUR")
    assert seen[0] is None
    assert seen[1] is not None
    assert "primary" in seen[1]
    assert "primary quote invalid" in seen[1]
    assert (primary_calls.n, backup_calls.n) == (1, 1)
    assert [(g.stage, g.action) for g in r.gates] == [
        ("primary", am.GateAction.REPLAN),
        ("backup", am.GateAction.PASS),
    ]


def test_replan_limit_escalates() -> None:
    calls = Calls()
    replan = am.consistent(lambda o: o.total > 0, "still bad", on_fail="replan")
    primary = make_pricer(calls, [-1, -2, -3, -4], gate=am.Gate(checks=[replan]), name="primary")
    lead = am.Lead(
        name="billing",
        input=Order,
        output=Priced,
        stages=[primary],
        planner=lambda task, reason: ["primary"],
        max_replans=1,
    )
    r = run_lead(lead, Order(amount=1))
    assert r.status is am.RunStatus.ESCALATED
    assert "re-plan limit (1) reached" in r.reason
    assert "still bad" in r.reason
    assert calls.n == 2


def test_planner_naming_an_unknown_stage_escalates() -> None:
    lead = am.Lead(
        name="billing",
        input=Order,
        output=Priced,
        stages=[make_pricer(Calls(), [1])],
        planner=lambda task, reason: ["nope"],
    )
    r = run_lead(lead, Order(amount=1))
    assert r.status is am.RunStatus.ESCALATED
    assert "unknown stages ['nope']" in r.reason
    assert r.escalation is not None
    assert r.escalation.decision_point == "billing/plan"


# -- observability -------------------------------------------------------------------------


def test_gate_decisions_appear_in_the_langgraph_custom_stream() -> None:
    calls = Calls()
    pricer = make_pricer(calls, [-5, 42], gate=am.Gate(checks=[positive]))
    lead = am.Lead(name="billing", input=Order, output=Priced, stages=[pricer])
    graph = lead.compile()
    events = list(graph.stream({"input": {"amount": 1}}, stream_mode="custom"))
    gates = [e["gate"] for e in events if isinstance(e, dict) and "gate" in e]
    assert [(g["stage"], g["action"]) for g in gates] == [("price", "retry"), ("price", "pass")]
    assert gates[0]["reasons"] == ["consistent: total must be positive"]
    assert gates[0]["gate"] == "gate:price"


def test_gate_decisions_are_traced_as_gate_spans() -> None:
    calls = Calls()
    pricer = make_pricer(calls, [-5, 42], gate=am.Gate(checks=[positive], name="price_gate"))
    lead = am.Lead(name="billing", input=Order, output=Priced, stages=[pricer])
    tracer = RecordingTracer()
    r = run_lead(lead, Order(amount=1), tracer=tracer)
    assert r.status is am.RunStatus.COMPLETED
    spans = tracer.of_kind(SpanKind.GATE)
    assert [s.name for s in spans] == ["price_gate", "price_gate"]
    assert [s.attributes["gate_action"] for s in spans] == ["retry", "pass"]
    assert [s.attributes["attempt"] for s in spans] == [1, 2]
    assert all(s.run_id == r.run_id for s in spans)


# -- built-in checks -----------------------------------------------------------------------

NOW = datetime(2026, 11, 1, tzinfo=UTC)
GOOD = Invoice(vendor="acme", amount=110.0, net=100.0, tax=10.0, issued=date(2026, 10, 20))

CHECKS: dict[str, tuple[am.Check, dict[str, Any], str]] = {
    "require": (
        am.require("vendor", on_fail="escalate"),
        {"vendor": ""},
        "require: missing vendor",
    ),
    "in_range": (
        am.in_range("amount", min=0, max=1000, on_fail="escalate"),
        {"amount": 5000.0, "net": 4990.0},
        "in_range(amount): amount=5000.0 outside [0, 1000]",
    ),
    "consistent": (
        am.consistent(
            lambda o: o.net + o.tax == o.amount, "net + tax != amount", on_fail="escalate"
        ),
        {"tax": 99.0},
        "consistent: net + tax != amount",
    ),
    "fresh": (
        am.fresh("issued", max_age=timedelta(days=30), now=lambda: NOW),
        {"issued": date(2026, 1, 1)},
        "fresh(issued): issued is 304 days old (max 30)",
    ),
}


def invoice_lead(check: am.Check, invoice: Invoice) -> am.Lead:
    stage = am.Specialist(
        name="read", input=Order, output=Invoice, fn=lambda o: invoice, gate=am.Gate(checks=[check])
    )
    return am.Lead(name="ap", input=Order, output=Invoice, stages=[stage])


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_builtin_check_triggers(name: str) -> None:
    check, change, reason = CHECKS[name]
    r = run_lead(invoice_lead(check, GOOD.model_copy(update=change)), Order(amount=1))
    assert r.status is am.RunStatus.ESCALATED
    assert r.gates[-1].reasons == [reason]
    assert reason in r.reason


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_builtin_check_passes_good_data(name: str) -> None:
    check, _, _ = CHECKS[name]
    r = run_lead(invoice_lead(check, GOOD), Order(amount=1))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == GOOD


def test_check_decorator_sees_output_and_board() -> None:
    @am.check(on_fail="escalate")
    def under_order(out: Invoice, board: dict[str, Any]) -> str | None:
        return None if out.amount <= board["amount"] * 100 else "more than ordered"

    r = run_lead(invoice_lead(under_order, GOOD), Order(amount=1))
    assert r.status is am.RunStatus.ESCALATED
    assert r.gates[-1].reasons == ["under_order: more than ordered"]
    r = run_lead(invoice_lead(under_order, GOOD), Order(amount=2))
    assert r.status is am.RunStatus.COMPLETED


def test_a_crashing_check_is_a_failed_check() -> None:
    crash = am.Check(name="crash", fn=lambda o, b: 1 / 0, on_fail=am.GateAction.ESCALATE)
    r = run_lead(invoice_lead(crash, GOOD), Order(amount=1))
    assert r.status is am.RunStatus.ESCALATED
    assert "crash raised ZeroDivisionError" in r.reason


def test_min_confidence_escalates_a_low_confidence_answer() -> None:
    def unsure(o: Order) -> am.Answer[Priced]:
        return am.Answer(value=Priced(total=3, currency="EUR"), confidence=0.3, evidence=["guess"])

    stage = am.Specialist(
        name="unsure", input=Order, output=Priced, fn=unsure, gate=am.Gate(min_confidence=0.5)
    )
    lead = am.Lead(name="billing", input=Order, output=Priced, stages=[stage])
    r = run_lead(lead, Order(amount=1))
    assert r.status is am.RunStatus.ESCALATED
    assert "confidence 0.30 < 0.50" in r.reason
    assert r.escalation is not None
    assert r.escalation.decision_point == "billing/unsure"


def test_min_confidence_passes_a_confident_answer() -> None:
    def sure(o: Order) -> am.Answer[Priced]:
        return am.Answer(value=Priced(total=3, currency="EUR"), confidence=0.9)

    stage = am.Specialist(
        name="sure", input=Order, output=Priced, fn=sure, gate=am.Gate(min_confidence=0.5)
    )
    lead = am.Lead(name="billing", input=Order, output=Priced, stages=[stage])
    r = run_lead(lead, Order(amount=1))
    assert r.status is am.RunStatus.COMPLETED
    assert r.result is not None
    assert r.result.confidence == pytest.approx(0.9)


def test_step_gate_overrides_the_agent_gate() -> None:
    calls = Calls()
    pricer = make_pricer(calls, [-1], gate=am.Gate(checks=[positive]))
    halt = am.consistent(lambda o: o.total > 0, "stop", on_fail="halt")
    lead = am.Lead(
        name="billing",
        input=Order,
        output=Priced,
        stages=[am.Step(agent=pricer, gate=am.Gate(checks=[halt]))],
    )
    r = run_lead(lead, Order(amount=1))
    assert r.status is am.RunStatus.HALTED
    assert calls.n == 1


def test_an_out_of_range_answer_confidence_fails_the_task_instead_of_crashing_the_run() -> None:
    def overconfident(o: Order) -> am.Answer[Priced]:
        return am.Answer(value=Priced(total=3, currency="EUR"), confidence=1.5)

    stage = am.Specialist(name="sure", input=Order, output=Priced, fn=overconfident)
    lead = am.Lead(name="billing", input=Order, output=Priced, stages=[stage])
    r = run_lead(lead, Order(amount=1))
    assert r.status is am.RunStatus.ESCALATED
    assert "confidence" in r.reason


def test_a_check_takes_its_action_by_name_and_refuses_unknown_ones() -> None:
    check = am.Check(name="c", fn=lambda out, board: None, on_fail="replan")
    assert check.on_fail is am.GateAction.REPLAN
    with pytest.raises(am.ConfigError, match="on_fail"):
        am.Check(name="c", fn=lambda out, board: None, on_fail="explode")
