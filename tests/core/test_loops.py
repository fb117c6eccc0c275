"""Loop guards: step caps, no-progress loops and ping-pong end a run with a reason."""

import itertools

import pytest
from pydantic import BaseModel

import agentmesh as am

LOOP_REASONS = ("no-progress loop", "ping-pong loop", "step cap")


class Ticket(BaseModel):
    text: str


class Draft(BaseModel):
    body: str
    version: int


never_ok = am.consistent(lambda o: False, "not good enough")


def drafter(
    name: str, *, vary: bool, calls: list[int], gate: am.Gate | None = None
) -> am.Specialist:
    """A stage whose output changes on every call (``vary``) or is always the same."""
    counter = itertools.count(1)

    def draft(t: Ticket) -> Draft:
        n = next(counter)
        calls.append(n)
        return Draft(body=f"{name} draft", version=n if vary else 1)

    return am.Specialist(name=name, input=Ticket, output=Draft, fn=draft, gate=gate)


def run_lead(lead: am.Lead) -> am.RunResult:
    return am.run(lead.compile(), Ticket(text="help"), checkpointer=None)


def test_step_cap_escalates_with_a_reason_not_a_recursion_error() -> None:
    calls: list[int] = []
    stage = drafter("w", vary=True, calls=calls, gate=am.Gate(checks=[never_ok], max_retries=1000))
    lead = am.Lead(name="support", input=Ticket, output=Draft, stages=[stage], max_steps=5)
    r = run_lead(lead)
    assert r.status is am.RunStatus.ESCALATED
    assert "step cap" in r.reason
    assert "max_steps=5" in r.reason
    assert len(calls) == 5
    assert r.escalation is not None
    assert r.escalation.decision_point == "support/w"


def test_step_cap_with_a_large_budget_still_ends_with_a_reason() -> None:
    calls: list[int] = []
    stage = drafter("w", vary=True, calls=calls, gate=am.Gate(checks=[never_ok], max_retries=1000))
    lead = am.Lead(name="support", input=Ticket, output=Draft, stages=[stage], max_steps=60)
    r = run_lead(lead)
    assert r.status is am.RunStatus.ESCALATED
    assert "step cap" in r.reason
    assert len(calls) == 60


def test_step_cap_of_a_nested_lead_escalates_instead_of_recursion_error() -> None:
    calls: list[int] = []
    stage = drafter("w", vary=True, calls=calls, gate=am.Gate(checks=[never_ok], max_retries=1000))
    lead = am.Lead(name="support", input=Ticket, output=Draft, stages=[stage], max_steps=60)
    top = am.Meta(name="top", input=Ticket, output=Draft, stages=[lead])
    r = am.run(top.compile(), Ticket(text="help"), checkpointer=None)
    assert r.status is am.RunStatus.ESCALATED
    assert "step cap" in r.reason


def test_meta_step_cap_counts_child_reruns() -> None:
    calls: list[int] = []
    stage = drafter("w", vary=True, calls=calls)
    lead = am.Lead(name="support", input=Ticket, output=Draft, stages=[stage])
    # the meta's gate on the lead never passes and would retry many times
    top = am.Meta(
        name="top",
        input=Ticket,
        output=Draft,
        stages=[
            am.Step(agent=lead, gate=am.Gate(checks=[never_ok], max_retries=100)),
        ],
        max_steps=3,
    )
    r = am.run(top.compile(), Ticket(text="help"), checkpointer=None)
    assert r.status is am.RunStatus.ESCALATED
    assert "step cap: top reached max_steps=3" in r.reason
    assert len(calls) == 3


def test_identical_output_on_retry_is_a_no_progress_loop_before_the_cap() -> None:
    calls: list[int] = []
    stage = drafter("w", vary=False, calls=calls, gate=am.Gate(checks=[never_ok], max_retries=50))
    lead = am.Lead(name="support", input=Ticket, output=Draft, stages=[stage], max_steps=40)
    r = run_lead(lead)
    assert r.status is am.RunStatus.ESCALATED
    assert "no-progress loop" in r.reason
    assert "'w'" in r.reason
    assert len(calls) == 2  # the second identical answer is the last one
    assert [g.action for g in r.gates] == [am.GateAction.RETRY, am.GateAction.RETRY]


def alternating_planner(task: am.TaskMessage, reason: str | None) -> list[str]:
    if reason is None:
        return ["a"]
    return ["b"] if "'a'" in reason else ["a"]


@pytest.mark.parametrize("vary", [True, False], ids=["changing-output", "same-output"])
def test_ping_pong_between_two_stages_is_detected(vary: bool) -> None:
    calls_a: list[int] = []
    calls_b: list[int] = []
    replan = am.consistent(lambda o: False, "try the other one", on_fail="replan")
    a = drafter("a", vary=vary, calls=calls_a, gate=am.Gate(checks=[replan]))
    b = drafter("b", vary=vary, calls=calls_b, gate=am.Gate(checks=[replan]))
    lead = am.Lead(
        name="support",
        input=Ticket,
        output=Draft,
        stages=[a, b],
        planner=alternating_planner,
        max_replans=50,
        max_steps=40,
    )
    r = run_lead(lead)
    assert r.status is am.RunStatus.ESCALATED
    assert r.reason.startswith(LOOP_REASONS[:2]), r.reason
    total = len(calls_a) + len(calls_b)
    assert total <= 6
    assert abs(len(calls_a) - len(calls_b)) <= 1
    if vary:
        # every answer differs, so only the alternation itself gives the loop away
        assert r.reason == "ping-pong loop between 'a' and 'b'"
        assert (len(calls_a), len(calls_b)) == (3, 2)
    else:
        assert "no-progress loop" in r.reason
