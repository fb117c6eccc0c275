"""The human layer: interrupts from deep in a hierarchy, answers, retries and parallel asks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import BaseModel

import agentmesh as am


class Doc(BaseModel):
    text: str


class Words(BaseModel):
    words: list[str]


class Approval(BaseModel):
    approved: bool
    approver: str


class Review(BaseModel):
    words: list[str]
    approved: bool | None = None
    approver: str | None = None


@am.specialist()
def split(doc: Doc) -> Words:
    """Split the text into words."""
    return Words(words=doc.text.split())


def _approval_graph() -> Any:
    """meta ``top`` -> lead ``desk`` -> split (code), ask (human)."""
    ask = am.Specialist(name="ask", input=Words, output=Approval, layer="human")
    lead = am.Lead(name="desk", input=Doc, output=Approval, stages=[split, ask])
    return am.Meta(name="top", input=Doc, output=Approval, stages=[lead]).compile()


def _only_request(result: am.RunResult[Any]) -> am.HumanRequest:
    assert result.status is am.RunStatus.AWAITING_HUMAN, result.reason
    assert len(result.human_requests) == 1, result.human_requests
    return result.human_requests[0]


def test_interrupt_two_levels_down_reaches_the_caller_with_its_request() -> None:
    graph = _approval_graph()

    paused = am.run(graph, Doc(text="pay the invoice"), thread_id="deep")

    request = _only_request(paused)
    assert paused.output is None
    assert request.id
    assert request.value["agent"] == "ask"
    assert request.value["payload"] == {"words": ["pay", "the", "invoice"]}
    assert request.value["feedback"] is None
    schema = request.value["output_schema"]
    assert schema == Approval.model_json_schema()
    assert set(schema["required"]) == {"approved", "approver"}


def test_resume_completes_with_the_typed_human_answer() -> None:
    graph = _approval_graph()
    _only_request(am.run(graph, Doc(text="pay the invoice"), thread_id="answer"))

    done = am.resume(graph, "answer", {"approved": True, "approver": "kim"})

    assert done.status is am.RunStatus.COMPLETED, done.reason
    assert done.human_requests == []
    assert isinstance(done.output, Approval)
    assert done.output == Approval(approved=True, approver="kim")
    assert done.result is not None
    assert done.result.agent == "top"
    assert [g.action for g in done.gates] == [am.GateAction.PASS]


def test_resuming_a_finished_or_unknown_thread_is_a_run_error() -> None:
    graph = _approval_graph()
    _only_request(am.run(graph, Doc(text="pay the invoice"), thread_id="twice"))
    am.resume(graph, "twice", {"approved": True, "approver": "kim"})

    with pytest.raises(am.RunError, match="'twice' has finished: it is not waiting"):
        am.resume(graph, "twice", {"approved": True, "approver": "kim"})
    with pytest.raises(am.RunError, match="'never-ran' has no checkpoint to resume"):
        am.resume(graph, "never-ran", {"approved": True, "approver": "kim"})


def test_invalid_human_answer_is_asked_again_with_feedback() -> None:
    graph = _approval_graph()
    first = _only_request(am.run(graph, Doc(text="pay it"), thread_id="invalid"))

    # Wrong type for ``approved`` and no ``approver``: the gate retries, it does not crash.
    again = am.resume(graph, "invalid", {"approved": "maybe"})

    second = _only_request(again)
    assert second.id != first.id, "a new question, not the old one replayed"
    assert second.value["agent"] == "ask"
    assert second.value["payload"] == {"words": ["pay", "it"]}
    feedback = second.value["feedback"]
    assert feedback, "the second question must say what was wrong with the first answer"
    assert "approver" in feedback
    assert "approved" in feedback

    done = am.resume(graph, "invalid", {"approved": False, "approver": "lee"})
    assert done.status is am.RunStatus.COMPLETED, done.reason
    assert done.output == Approval(approved=False, approver="lee")


def _peer_graph() -> Any:
    legal = am.Specialist(name="legal", input=Words, output=Approval, layer="human")
    finance = am.Specialist(name="finance", input=Words, output=Approval, layer="human")
    group = am.Parallel(legal, finance, name="signoff", resolver=am.EscalateOnDisagreement())
    lead = am.Lead(name="desk", input=Doc, output=Approval, stages=[split, group])
    return am.Meta(name="top", input=Doc, output=Approval, stages=[lead]).compile()


def test_parallel_human_peers_raise_two_interrupts_resumed_together() -> None:
    graph = _peer_graph()

    paused = am.run(graph, Doc(text="buy servers"), thread_id="peers")

    assert paused.status is am.RunStatus.AWAITING_HUMAN, paused.reason
    by_agent = {r.value["agent"]: r for r in paused.human_requests}
    assert sorted(by_agent) == ["finance", "legal"]
    assert len({r.id for r in paused.human_requests}) == 2
    assert all(r.value["payload"] == {"words": ["buy", "servers"]} for r in paused.human_requests)

    answer = {"approved": True, "approver": "board"}
    done = am.resume(graph, "peers", answers={r.id: answer for r in paused.human_requests})

    assert done.status is am.RunStatus.COMPLETED, done.reason
    assert done.human_requests == []
    assert done.output == Approval(approved=True, approver="board")


def test_parallel_human_peers_that_disagree_escalate() -> None:
    graph = _peer_graph()
    paused = am.run(graph, Doc(text="buy servers"), thread_id="peers-disagree")
    answers: dict[str, Mapping[str, Any]] = {
        r.id: {"approved": r.value["agent"] == "legal", "approver": r.value["agent"]}
        for r in paused.human_requests
    }

    done = am.resume(graph, "peers-disagree", answers=answers)

    assert done.status is am.RunStatus.ESCALATED, done.reason
    assert done.output is None
    assert done.escalation is not None


def _conditional_graph() -> Any:
    ask = am.Specialist(name="ask", input=Words, output=Approval, layer="human")
    long_only = am.Step(agent=ask, when=lambda fields: len(fields["words"]) > 3)
    lead = am.Lead(name="desk", input=Doc, output=Review, stages=[split, long_only])
    return am.Meta(name="top", input=Doc, output=Review, stages=[lead]).compile()


def test_conditional_human_step_is_skipped_when_its_condition_is_false() -> None:
    graph = _conditional_graph()

    done = am.run(graph, Doc(text="short text"), thread_id="skip")

    assert done.status is am.RunStatus.COMPLETED, done.reason
    assert done.human_requests == []
    assert done.output == Review(words=["short", "text"])


def test_conditional_human_step_asks_when_its_condition_is_true() -> None:
    graph = _conditional_graph()

    paused = am.run(graph, Doc(text="a much longer text here"), thread_id="ask")
    assert _only_request(paused).value["agent"] == "ask"

    done = am.resume(graph, "ask", {"approved": True, "approver": "kim"})
    assert done.status is am.RunStatus.COMPLETED, done.reason
    assert done.output == Review(
        words=["a", "much", "longer", "text", "here"], approved=True, approver="kim"
    )
