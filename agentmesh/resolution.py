"""Joining parallel peers: field-by-field disagreement and resolution strategies.

Peers answer the same task with the same output schema. A resolver compares
their typed outputs field by field and returns one output, or escalates.
Every strategy ends in a terminal fallback (escalation by default), so a join
can never wait forever or loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field, ValidationError

from agentmesh.messages import Usage

if TYPE_CHECKING:
    from agentmesh.messages import ResultMessage
    from agentmesh.specialist import Specialist

__all__ = [
    "ConfidenceWeighted",
    "EscalateOnDisagreement",
    "PeerOutcome",
    "Priority",
    "Reconcile",
    "ReconcileInput",
    "Resolution",
    "Resolver",
    "Vote",
    "disagreements",
]


@dataclass(frozen=True, kw_only=True)
class PeerOutcome:
    """One peer's typed answer (``output`` is ``None`` when it did not succeed)."""

    agent: str
    output: BaseModel | None
    confidence: float


@dataclass(frozen=True, kw_only=True)
class Resolution:
    """A join's verdict: the resolved output, or an escalation, with the reason."""

    output: BaseModel | None
    rationale: str
    strategy: str
    disagreements: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    confidence: float = 1.0
    usage: Usage = field(default_factory=Usage)

    @property
    def escalated(self) -> bool:
        """True when no output could be resolved."""
        return self.output is None


class ReconcileInput(BaseModel):
    """What a reconciliation agent sees: every peer's output and where they differ."""

    candidates: dict[str, dict[str, Any]]
    disagreements: dict[str, dict[str, Any]] = Field(default_factory=dict)


# Runs a specialist on a payload and returns its result (given by the runtime).
AgentRunner = Callable[["Specialist[Any, Any]", BaseModel], "ResultMessage[Any]"]


@runtime_checkable
class Resolver(Protocol):
    """Turns peers' outputs into one output or an escalation."""

    @property
    def name(self) -> str:
        """Shown in traces and rationales."""
        ...

    def resolve(
        self, peers: Sequence[PeerOutcome], schema: type[BaseModel], run_agent: AgentRunner
    ) -> Resolution:
        """Resolve ``peers`` (all answering with ``schema``)."""
        ...


def disagreements(peers: Sequence[PeerOutcome]) -> dict[str, dict[str, Any]]:
    """Fields on which successful peers differ: ``{field: {agent: value}}``."""
    answered = [p for p in peers if p.output is not None]
    if len(answered) < 2:
        return {}
    dumps = {p.agent: p.output.model_dump(mode="json") for p in answered if p.output is not None}
    fields = {f for d in dumps.values() for f in d}
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(fields):
        values = {agent: d.get(name) for agent, d in dumps.items()}
        if len({_key(v) for v in values.values()}) > 1:
            out[name] = values
    return out


def _key(value: Any) -> Hashable:
    """Equal for values equal as JSON (``1`` and ``1.0`` differ, as do ``1`` and ``true``)."""
    if value is None or isinstance(value, str | bool | int):
        return (type(value), value)
    if isinstance(value, float):
        return (float, repr(value))
    return (dict, json.dumps(value, sort_keys=True, default=str))


def _escalate(peers: Sequence[PeerOutcome], why: str, strategy: str) -> Resolution:
    return Resolution(
        output=None,
        rationale=why,
        strategy=strategy,
        disagreements=disagreements(peers),
        confidence=0.0,
    )


def _trivial(
    peers: Sequence[PeerOutcome], strategy: str, split: Mapping[str, Any] | None = None
) -> Resolution | None:
    """Resolve the cases every strategy handles alike: none or one answer, or agreement.

    ``split`` is the peers' disagreements when the caller already has them.
    """
    answered = [p for p in peers if p.output is not None]
    if not answered:
        return _escalate(peers, "no peer produced an answer", strategy)
    if len(answered) == 1:
        only = answered[0]
        return Resolution(
            output=only.output,
            strategy=strategy,
            confidence=only.confidence * 0.8,
            rationale=f"only {only.agent} answered",
        )
    if not (disagreements(answered) if split is None else split):
        return Resolution(
            output=answered[0].output,
            strategy=strategy,
            rationale="peers agree",
            confidence=min(p.confidence for p in answered),
        )
    return None


@dataclass(frozen=True, kw_only=True)
class EscalateOnDisagreement:
    """Escalate whenever peers disagree on any field. The terminal fallback."""

    name: str = "escalate_on_disagreement"

    def resolve(
        self, peers: Sequence[PeerOutcome], schema: type[BaseModel], run_agent: AgentRunner
    ) -> Resolution:
        """Agreement resolves; any disagreement escalates."""
        trivial = _trivial(peers, self.name)
        if trivial is not None:
            return trivial
        fields = ", ".join(disagreements(peers))
        return _escalate(peers, f"peers disagree on {fields}", self.name)


_TERMINAL = EscalateOnDisagreement()


@dataclass(frozen=True, kw_only=True)
class Vote:
    """Per-field vote; weights by agent (majority when no weights are given).

    A tie on any field, or a winning combination that fails the schema, goes to
    ``fallback``.
    """

    weights: Mapping[str, float] = field(default_factory=dict)
    fallback: Resolver = _TERMINAL
    name: str = "vote"

    def weight(self, peer: PeerOutcome) -> float:
        """The weight of one peer's vote."""
        return self.weights.get(peer.agent, 1.0)

    def resolve(
        self, peers: Sequence[PeerOutcome], schema: type[BaseModel], run_agent: AgentRunner
    ) -> Resolution:
        """Pick each disputed field's value with the most weight behind it."""
        answered = [p for p in peers if p.output is not None]
        split = disagreements(answered)
        trivial = _trivial(peers, self.name, split)
        if trivial is not None:
            return trivial
        merged = answered[0].output.model_dump(mode="json") if answered[0].output else {}
        notes: list[str] = []
        for name, values in split.items():
            tally: dict[Hashable, float] = {}
            value_of: dict[Hashable, Any] = {}
            for p in answered:
                key = _key(values[p.agent])
                tally[key] = tally.get(key, 0.0) + self.weight(p)
                value_of[key] = values[p.agent]
            ranked = sorted(tally.items(), key=lambda kv: kv[1], reverse=True)
            if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
                return self._fall_back(peers, schema, run_agent, f"tie on {name}")
            winner = value_of[ranked[0][0]]
            merged[name] = winner
            shown = json.dumps(winner, sort_keys=True, default=str)
            notes.append(f"{name}={shown} ({ranked[0][1]:g} of {sum(tally.values()):g})")
        try:
            output = schema.model_validate(merged)
        except ValidationError as exc:
            return self._fall_back(peers, schema, run_agent, f"voted result invalid: {exc}")
        total = sum(self.weight(p) for p in answered)
        agree = sum(self.weight(p) for p in answered if p.output == output)
        return Resolution(
            output=output,
            strategy=self.name,
            disagreements=split,
            rationale="; ".join(notes),
            confidence=round(agree / total if total else 0.0, 3),
        )

    def _fall_back(
        self,
        peers: Sequence[PeerOutcome],
        schema: type[BaseModel],
        run_agent: AgentRunner,
        why: str,
    ) -> Resolution:
        res = self.fallback.resolve(peers, schema, run_agent)
        return Resolution(
            output=res.output,
            strategy=f"{self.name}->{res.strategy}",
            disagreements=res.disagreements,
            rationale=f"{why}; {res.rationale}",
            confidence=res.confidence,
            usage=res.usage,
        )


@dataclass(frozen=True, kw_only=True)
class ConfidenceWeighted(Vote):
    """Per-field vote weighted by each peer's reported confidence."""

    name: str = "confidence_weighted"

    def weight(self, peer: PeerOutcome) -> float:
        """A peer's confidence is its vote."""
        return peer.confidence


@dataclass(frozen=True, kw_only=True)
class Priority:
    """The first peer in ``order`` that answered wins."""

    order: Sequence[str]
    fallback: Resolver = _TERMINAL
    name: str = "priority"

    def resolve(
        self, peers: Sequence[PeerOutcome], schema: type[BaseModel], run_agent: AgentRunner
    ) -> Resolution:
        """Take the highest-priority answer."""
        by_name = {p.agent: p for p in peers if p.output is not None}
        for agent in self.order:
            if agent in by_name:
                winner = by_name[agent]
                return Resolution(
                    output=winner.output,
                    strategy=self.name,
                    disagreements=disagreements(peers),
                    rationale=f"{agent} has priority",
                    confidence=winner.confidence,
                )
        return self.fallback.resolve(peers, schema, run_agent)


@dataclass(frozen=True, kw_only=True)
class Reconcile:
    """A reconciliation agent sees all typed outputs and returns a resolved one.

    The agent's input must be :class:`ReconcileInput` and its output the peers'
    schema; its summary and evidence become the rationale.
    """

    agent: Specialist[Any, Any]
    fallback: Resolver = _TERMINAL
    name: str = "reconcile"

    def resolve(
        self, peers: Sequence[PeerOutcome], schema: type[BaseModel], run_agent: AgentRunner
    ) -> Resolution:
        """Agreement resolves directly; disagreement goes to the reconciliation agent."""
        trivial = _trivial(peers, self.name)
        if trivial is not None:
            return trivial
        split = disagreements(peers)
        payload = ReconcileInput(
            candidates={
                p.agent: p.output.model_dump(mode="json") for p in peers if p.output is not None
            },
            disagreements=split,
        )
        result = run_agent(self.agent, payload)
        if result.output is None:
            res = self.fallback.resolve(peers, schema, run_agent)
            return Resolution(
                output=res.output,
                strategy=f"{self.name}->{res.strategy}",
                disagreements=split,
                rationale=f"reconciler failed ({result.error}); {res.rationale}",
                confidence=res.confidence,
                usage=result.usage + res.usage,
            )
        rationale = "; ".join([result.summary, *result.evidence]).strip("; ")
        return Resolution(
            output=schema.model_validate(result.output),
            strategy=self.name,
            disagreements=split,
            rationale=rationale or "reconciled",
            confidence=result.confidence,
            usage=result.usage,
        )
