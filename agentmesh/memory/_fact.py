"""Facts and the deterministic rules that distill them from corrected episodes.

Evidence is a reviewer's correction on an episode that has a subject: it says
``(subject, field) = new value``. Each episode counts once per subject and field (its
latest correction of that field). For every value seen for a subject and field:

- support: how many episodes back it (its provenance);
- confidence: ``1 - (1 - agreement) ** n``, where ``n`` is the support minus the
  episodes backing *other* values that are newer than this value's newest evidence
  (each newer contradiction cancels one agreement; ``n`` is never below 0);
- validity: from its first evidence, until its newest evidence plus the predicate's
  validity period (none: open-ended).

A fact is *contradicted* when another value of the same subject and predicate has
at least its confidence and newer evidence; pruning removes contradicted and
expired facts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from agentmesh.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping

    from agentmesh.memory._episode import Episode

__all__ = ["DistillPolicy", "Evidence", "Fact", "contradicted", "evidence_of", "merge_group"]


@dataclass(frozen=True, kw_only=True)
class DistillPolicy:
    """How facts are distilled from episodes.

    Attributes:
        min_support: Episodes that must agree before a value is an established fact;
            below it, it is kept as a candidate (hidden unless asked for).
        agreement: Confidence one agreeing episode gives (0-1, exclusive).
        valid_for_s: How long a fact stays valid after its newest evidence
            (``None``: until contradicted).
        valid_for: ``valid_for_s`` per predicate.
        predicates: Only corrections of these fields become facts (``None``: all).
    """

    min_support: int = 2
    agreement: float = 0.5
    valid_for_s: float | None = None
    valid_for: Mapping[str, float] = field(default_factory=dict)
    predicates: Collection[str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "valid_for", MappingProxyType(dict(self.valid_for)))
        if self.predicates is not None:
            object.__setattr__(self, "predicates", frozenset(self.predicates))
        if self.min_support < 1:
            raise ConfigError(f"min_support must be at least 1, got {self.min_support}")
        if not 0.0 < self.agreement < 1.0:
            raise ConfigError(f"agreement must be within (0, 1), got {self.agreement}")
        periods = [self.valid_for_s, *self.valid_for.values()]
        if any(p is not None and p <= 0 for p in periods):
            raise ConfigError("validity periods must be positive")

    def period(self, predicate: str) -> float | None:
        """How long facts of ``predicate`` stay valid after their newest evidence."""
        return self.valid_for.get(predicate, self.valid_for_s)


class Fact(BaseModel):
    """Something believed about a subject, with where it came from and when it holds.

    Attributes:
        subject: What the fact is about (an episode's subject).
        predicate: The attribute (a corrected field's name).
        value: The value believed.
        confidence: 0-1, from agreeing and contradicting episodes (module docstring).
        provenance: Ids of the episodes backing it, oldest evidence first.
        evidence_at: When each of those episodes gave its evidence (same order).
        valid_from: Epoch seconds of its first evidence.
        valid_until: Epoch seconds when it stops holding (``None``: open-ended).
        updated_at: Epoch seconds of its newest evidence.
    """

    model_config = ConfigDict(frozen=True)

    subject: str
    predicate: str
    value: JsonValue
    confidence: float = Field(ge=0.0, le=1.0)
    provenance: list[str]
    evidence_at: list[float]
    valid_from: float
    valid_until: float | None = None
    updated_at: float

    @model_validator(mode="after")
    def _aligned(self) -> Fact:
        if len(self.provenance) != len(self.evidence_at) or not self.provenance:
            raise ValueError("provenance and evidence_at must be non-empty and the same length")
        return self

    @property
    def id(self) -> str:
        """A stable id from subject, predicate and value."""
        digest = hashlib.sha256(_value_key(self.value).encode()).hexdigest()[:16]
        return f"fact/{self.subject}/{self.predicate}/{digest}"

    @property
    def support(self) -> int:
        """How many episodes back the fact."""
        return len(self.provenance)

    def valid_at(self, at: float) -> bool:
        """Whether the fact holds at epoch second ``at``."""
        return self.valid_from <= at and (self.valid_until is None or at < self.valid_until)


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """One episode's latest correction of one field, for a subject."""

    subject: str
    predicate: str
    value: JsonValue
    episode_id: str
    at: float


def evidence_of(episodes: Iterable[Episode], policy: DistillPolicy) -> list[Evidence]:
    """The evidence in ``episodes``: per episode with a subject, its latest correction per field."""
    found: dict[tuple[str, str, str], Evidence] = {}
    for episode in episodes:
        if not episode.subject:
            continue
        for c in episode.corrections:
            if policy.predicates is not None and c.field not in policy.predicates:
                continue
            at = c.at if c.at is not None else episode.created_at
            key = (episode.subject, c.field, episode.id)
            if key not in found or found[key].at <= at:
                found[key] = Evidence(
                    subject=episode.subject,
                    predicate=c.field,
                    value=c.new,
                    episode_id=episode.id,
                    at=at,
                )
    return sorted(found.values(), key=lambda e: (e.subject, e.predicate, e.at, e.episode_id))


@dataclass(kw_only=True)
class _Tally:
    value: JsonValue
    seen: dict[str, float]  # episode id -> evidence time


def merge_group(
    existing: Iterable[Fact], evidence: Iterable[Evidence], policy: DistillPolicy
) -> list[Fact]:
    """The facts of one subject and predicate after adding ``evidence`` (idempotent).

    An episode backs one value only: new evidence from an episode moves its support
    away from any other value. Values left without support are dropped.
    """
    tallies: dict[str, _Tally] = {}
    subject = predicate = ""
    for fact in existing:
        subject, predicate = fact.subject, fact.predicate
        seen = dict(zip(fact.provenance, fact.evidence_at, strict=True))
        tallies[_value_key(fact.value)] = _Tally(value=fact.value, seen=seen)
    for ev in evidence:
        subject, predicate = ev.subject, ev.predicate
        for tally in tallies.values():
            tally.seen.pop(ev.episode_id, None)
        tally = tallies.setdefault(_value_key(ev.value), _Tally(value=ev.value, seen={}))
        tally.seen[ev.episode_id] = ev.at
    live = [t for t in tallies.values() if t.seen]
    return [_fact(subject, predicate, t, live, policy) for t in live]


def contradicted(fact: Fact, group: Iterable[Fact]) -> Fact | None:
    """The fact of ``group`` that contradicts ``fact`` (module docstring), if any."""
    key = _value_key(fact.value)
    rivals = [
        f
        for f in group
        if _value_key(f.value) != key
        and f.confidence >= fact.confidence
        and f.updated_at > fact.updated_at
    ]
    return max(rivals, key=lambda f: (f.confidence, f.updated_at), default=None)


def _fact(
    subject: str, predicate: str, tally: _Tally, group: list[_Tally], policy: DistillPolicy
) -> Fact:
    newest = max(tally.seen.values())
    newer_against = sum(
        1 for other in group if other is not tally for at in other.seen.values() if at > newest
    )
    support = max(0, len(tally.seen) - newer_against)
    period = policy.period(predicate)
    ordered = sorted(tally.seen.items(), key=lambda kv: (kv[1], kv[0]))
    return Fact(
        subject=subject,
        predicate=predicate,
        value=tally.value,
        confidence=round(1.0 - (1.0 - policy.agreement) ** support, 6),
        provenance=[e for e, _ in ordered],
        evidence_at=[at for _, at in ordered],
        valid_from=ordered[0][1],
        valid_until=None if period is None else newest + period,
        updated_at=newest,
    )


def _value_key(value: JsonValue) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
