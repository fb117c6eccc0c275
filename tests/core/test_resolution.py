"""Joining parallel peers: each resolution strategy on real disagreement."""

import threading
from typing import Any

import pytest
from pydantic import BaseModel

import agentmesh as am
from agentmesh.resolution import PeerOutcome, disagreements
from agentmesh.testing import ScriptedChatModel


class Claim(BaseModel):
    claim_id: str


class Assessment(BaseModel):
    risk: str
    amount: int


def peer(name: str, value: Assessment, confidence: float = 1.0) -> am.Specialist:
    def answer(c: Claim) -> am.Answer[Assessment]:
        return am.Answer(value=value, confidence=confidence, evidence=[f"{name} looked"])

    return am.Specialist(name=name, input=Claim, output=Assessment, fn=answer)


def review(resolver: am.Resolver, *peers: am.Specialist) -> am.Lead:
    group = am.Parallel(*peers, name="review", resolver=resolver)
    return am.Lead(name="claims", input=Claim, output=Assessment, stages=[group])


def run_review(resolver: am.Resolver, *peers: am.Specialist) -> am.RunResult:
    return am.run(review(resolver, *peers).compile(), Claim(claim_id="c1"), checkpointer=None)


LOW_10 = Assessment(risk="low", amount=10)
LOW_20 = Assessment(risk="low", amount=20)
HIGH_20 = Assessment(risk="high", amount=20)
HIGH_30 = Assessment(risk="high", amount=30)


def evidence(r: am.RunResult) -> str:
    assert r.result is not None
    return " | ".join(r.result.evidence)


# -- strategies ----------------------------------------------------------------------------


def test_vote_majority_picks_the_majority_value_per_field() -> None:
    # risk: low, low, high -> low ; amount: 10, 20, 20 -> 20
    r = run_review(am.Vote(), peer("a", LOW_10), peer("b", LOW_20), peer("c", HIGH_20))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == Assessment(risk="low", amount=20)
    text = evidence(r)
    assert "review: vote" in text
    assert 'risk="low" (2 of 3)' in text
    assert "amount=20 (2 of 3)" in text


def test_weighted_vote_lets_a_heavy_peer_win() -> None:
    peers = (peer("a", LOW_10), peer("b", LOW_10), peer("expert", HIGH_30))
    r = run_review(am.Vote(weights={"expert": 5.0}), *peers)
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == HIGH_30
    # the same peers without weights: majority wins
    r = run_review(am.Vote(), *peers)
    assert r.output == LOW_10


def test_confidence_weighted_uses_answer_confidences() -> None:
    peers = (peer("a", LOW_10, 0.2), peer("b", LOW_10, 0.3), peer("c", HIGH_30, 0.9))
    r = run_review(am.ConfidenceWeighted(), *peers)
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == HIGH_30
    assert "review: confidence_weighted" in evidence(r)
    # flip the confidences: the pair wins
    peers = (peer("a", LOW_10, 0.9), peer("b", LOW_10, 0.8), peer("c", HIGH_30, 0.9))
    assert run_review(am.ConfidenceWeighted(), *peers).output == LOW_10


def test_priority_picks_by_order() -> None:
    peers = (peer("a", LOW_10), peer("b", HIGH_20), peer("c", HIGH_30))
    r = run_review(am.Priority(order=["c", "a", "b"]), *peers)
    assert r.output == HIGH_30
    assert "c has priority" in evidence(r)
    r = run_review(am.Priority(order=["b", "c"]), *peers)
    assert r.output == HIGH_20


def test_priority_skips_a_failed_peer() -> None:
    def broken(c: Claim) -> Assessment:
        raise RuntimeError("down")

    dead = am.Specialist(name="dead", input=Claim, output=Assessment, fn=broken)
    r = run_review(am.Priority(order=["dead", "b"]), dead, peer("b", HIGH_20))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == HIGH_20


def test_reconcile_runs_the_reconciler_and_its_rationale_is_kept() -> None:
    received: list[am.ReconcileInput] = []

    def reconcile(inp: am.ReconcileInput) -> am.Answer[Assessment]:
        received.append(inp)
        return am.Answer(
            value=Assessment(risk="medium", amount=25),
            confidence=0.7,
            summary="split the difference",
            evidence=["both peers are credible"],
        )

    reconciler = am.Specialist(
        name="reconciler", input=am.ReconcileInput, output=Assessment, fn=reconcile
    )
    r = run_review(am.Reconcile(agent=reconciler), peer("a", LOW_20), peer("b", HIGH_30))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == Assessment(risk="medium", amount=25)
    assert len(received) == 1
    assert received[0].candidates == {
        "a": {"risk": "low", "amount": 20},
        "b": {"risk": "high", "amount": 30},
    }
    assert received[0].disagreements == {
        "amount": {"a": 20, "b": 30},
        "risk": {"a": "low", "b": "high"},
    }
    text = evidence(r)
    assert "review: reconcile" in text
    assert "split the difference" in text
    assert "both peers are credible" in text


def test_reconcile_is_not_called_when_peers_agree() -> None:
    received: list[Any] = []

    def reconcile(inp: am.ReconcileInput) -> Assessment:
        received.append(inp)
        return LOW_10

    reconciler = am.Specialist(
        name="reconciler", input=am.ReconcileInput, output=Assessment, fn=reconcile
    )
    r = run_review(am.Reconcile(agent=reconciler), peer("a", HIGH_20), peer("b", HIGH_20))
    assert r.output == HIGH_20
    assert received == []


def test_reconciler_model_calls_count_in_usage() -> None:
    model = ScriptedChatModel(script=[Assessment(risk="medium", amount=25)])
    reconciler = am.Specialist(
        name="reconciler",
        input=am.ReconcileInput,
        output=Assessment,
        layer="small_model",
        model=model,
    )
    r = run_review(am.Reconcile(agent=reconciler), peer("a", LOW_20), peer("b", HIGH_30))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == Assessment(risk="medium", amount=25)
    assert model.calls == 1
    assert r.usage.model_calls == 1
    assert r.usage.input_tokens == model.input_tokens


def test_escalate_on_disagreement_lists_the_fields() -> None:
    r = run_review(am.EscalateOnDisagreement(), peer("a", LOW_20), peer("b", HIGH_20))
    assert r.status is am.RunStatus.ESCALATED
    assert "peers disagree on risk" in r.reason
    assert "amount" not in r.reason
    assert r.escalation is not None
    assert r.escalation.decision_point == "claims/review"
    assert r.escalation.data == {"disagreements": {"risk": {"a": "low", "b": "high"}}}
    assert sorted(r.escalation.options) == ["a", "b"]


def test_escalate_on_disagreement_resolves_agreement() -> None:
    r = run_review(am.EscalateOnDisagreement(), peer("a", LOW_20), peer("b", LOW_20))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == LOW_20


def test_vote_tie_uses_the_fallback() -> None:
    resolver = am.Vote(fallback=am.Priority(order=["b", "a"]))
    r = run_review(resolver, peer("a", LOW_20), peer("b", HIGH_20))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == HIGH_20
    text = evidence(r)
    assert "vote->priority" in text
    assert "tie on risk" in text


def test_vote_tie_without_fallback_escalates() -> None:
    r = run_review(am.Vote(), peer("a", LOW_20), peer("b", HIGH_20))
    assert r.status is am.RunStatus.ESCALATED
    assert "tie on risk" in r.reason
    assert "peers disagree on risk" in r.reason


def test_all_peers_failed_escalates_and_never_hangs() -> None:
    def broken(c: Claim) -> Assessment:
        raise RuntimeError("offline")

    a = am.Specialist(name="a", input=Claim, output=Assessment, fn=broken)
    b = am.Specialist(name="b", input=Claim, output=Assessment, fn=broken)
    box: dict[str, Any] = {}

    def go() -> None:
        box["r"] = run_review(am.Vote(), a, b)

    worker = threading.Thread(target=go, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "the join hung"
    r = box["r"]
    assert r.status is am.RunStatus.ESCALATED
    assert "no peer produced an answer" in r.reason
    assert r.output is None


def test_one_failed_peer_lets_the_other_answer_with_less_confidence() -> None:
    def broken(c: Claim) -> Assessment:
        raise RuntimeError("offline")

    dead = am.Specialist(name="dead", input=Claim, output=Assessment, fn=broken)
    r = run_review(am.Vote(), dead, peer("b", HIGH_20, 1.0))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == HIGH_20
    assert "only b answered" in evidence(r)
    assert r.result is not None
    assert r.result.confidence == pytest.approx(0.8)


# -- field-by-field disagreement -----------------------------------------------------------


def outcome(agent: str, value: Assessment | None, confidence: float = 1.0) -> PeerOutcome:
    return PeerOutcome(agent=agent, output=value, confidence=confidence)


def test_disagreements_are_field_by_field() -> None:
    high_10 = Assessment(risk="high", amount=10)
    split = disagreements([outcome("a", LOW_10), outcome("b", high_10)])
    assert split == {"risk": {"a": "low", "b": "high"}}
    split = disagreements([outcome("a", LOW_10), outcome("b", high_10), outcome("c", HIGH_20)])
    assert split == {
        "amount": {"a": 10, "b": 10, "c": 20},
        "risk": {"a": "low", "b": "high", "c": "high"},
    }


def test_disagreements_ignore_failed_peers_and_agreement() -> None:
    assert disagreements([outcome("a", LOW_10), outcome("b", LOW_10)]) == {}
    assert disagreements([outcome("a", LOW_10), outcome("b", None)]) == {}
    assert disagreements([outcome("a", LOW_10), outcome("b", LOW_20), outcome("c", None)]) == {
        "amount": {"a": 10, "b": 20}
    }


def test_resolver_unit_vote_and_priority() -> None:
    peers = [outcome("a", LOW_10), outcome("b", LOW_20), outcome("c", HIGH_20)]
    res = am.Vote().resolve(peers, Assessment, run_agent=lambda *a: pytest.fail("no agent"))
    assert res.output == Assessment(risk="low", amount=20)
    assert res.strategy == "vote"
    assert set(res.disagreements) == {"risk", "amount"}
    assert res.confidence == pytest.approx(0.333, abs=1e-3)  # only b gave exactly (low, 20)
    res = am.Priority(order=["c"]).resolve(peers, Assessment, run_agent=lambda *a: None)
    assert res.output == HIGH_20
    res = am.Priority(order=["zzz"]).resolve(peers, Assessment, run_agent=lambda *a: None)
    assert res.escalated
    assert res.strategy == "escalate_on_disagreement"


def test_a_failing_reconciler_goes_to_the_fallback() -> None:
    def broken(inp: am.ReconcileInput) -> Assessment:
        raise RuntimeError("reconciler crashed")

    reconciler = am.Specialist(
        name="reconciler", input=am.ReconcileInput, output=Assessment, fn=broken
    )
    resolver = am.Reconcile(agent=reconciler, fallback=am.Priority(order=["b"]))
    r = run_review(resolver, peer("a", LOW_20), peer("b", HIGH_30))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == HIGH_30
    text = evidence(r)
    assert "reconcile->priority" in text
    assert "reconciler failed (RuntimeError: reconciler crashed)" in text
    # with the default (terminal) fallback it escalates
    r = run_review(am.Reconcile(agent=reconciler), peer("a", LOW_20), peer("b", HIGH_30))
    assert r.status is am.RunStatus.ESCALATED
    assert "reconciler failed" in r.reason
