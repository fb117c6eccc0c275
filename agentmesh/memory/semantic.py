"""Semantic memory: facts distilled from corrected episodes, with provenance and validity.

:meth:`SemanticMemory.distill` turns reviewers' corrections on episodes into
:class:`Fact` s ``(subject, predicate, value)``: agreement raises a fact's
confidence, newer contradicting evidence lowers it, and each fact keeps the episodes
it came from and the window in which it holds. :meth:`SemanticMemory.prune` removes
expired and contradicted facts. The rules are deterministic and distilling the same
episodes twice changes nothing (see ``agentmesh/memory/_fact.py`` for the rules).

Facts persist through any :class:`~agentmesh.memory.MemoryStore`, one item each, of
data type ``fact/<subject>``; give them a store (or Chroma collection) of their own.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from agentmesh._runtime.context import current_context, span
from agentmesh.memory._embedders import Embedder, build_embedder
from agentmesh.memory._episode_store import Record, RecordStore, collection_name
from agentmesh.memory._fact import (
    DistillPolicy,
    Evidence,
    Fact,
    contradicted,
    evidence_of,
    merge_group,
)
from agentmesh.tracing._base import SpanKind

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from agentmesh.memory._episode import Episode
    from agentmesh.memory._store import MemoryStore

__all__ = ["DistillPolicy", "Fact", "PruneReport", "SemanticMemory", "build_semantic_memory"]

_KIND: Final = "fact/"


@dataclass(frozen=True, kw_only=True)
class PruneReport:
    """What :meth:`SemanticMemory.prune` removed.

    Attributes:
        expired: Facts whose validity ended.
        contradicted: Facts outweighed by a newer, at least as confident, other value.
    """

    expired: tuple[Fact, ...] = ()
    contradicted: tuple[Fact, ...] = ()

    @property
    def removed(self) -> int:
        """How many facts were removed."""
        return len(self.expired) + len(self.contradicted)


class SemanticMemory:
    """Facts about subjects, distilled from episodes (thread-safe within this object).

    Every :meth:`facts` lookup is traced as a ``retrieval`` span.

    Attributes:
        store: Where facts live.
        embedder: Embeds ``subject predicate value`` texts.
        policy: The distillation rules.
    """

    def __init__(
        self,
        store: MemoryStore,
        *,
        embedder: Embedder | None = None,
        policy: DistillPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Keep facts in ``store``.

        Args:
            store: The memory store (its own store or Chroma collection).
            embedder: The offline hashing embedder by default.
            policy: Distillation rules; ``DistillPolicy()`` by default.
            clock: Epoch seconds now (injectable for tests).
        """
        self.store = store
        self.embedder = embedder or build_embedder("hashing")
        self.policy = policy or DistillPolicy()
        self._records = RecordStore(store, self.embedder)
        self._clock = clock
        self._lock = threading.Lock()

    def distill(self, episodes: Iterable[Episode]) -> list[Fact]:
        """Fold the corrections in ``episodes`` into the stored facts.

        Only episodes with a subject count. Idempotent: an episode backs a value once.

        Returns:
            The established facts (support at least ``min_support``) of every subject
            and predicate the episodes touched, as stored now.
        """
        groups: dict[tuple[str, str], list[Evidence]] = {}
        for ev in evidence_of(episodes, self.policy):
            groups.setdefault((ev.subject, ev.predicate), []).append(ev)
        if not groups:
            return []
        before: list[Fact] = []
        after: list[Fact] = []
        with self._lock:
            held = self._stored(sorted({s for s, _ in groups}))
            for (subject, predicate), evidence in sorted(groups.items()):
                old = [f for f in held if (f.subject, f.predicate) == (subject, predicate)]
                before += old
                after += merge_group(old, evidence, self.policy)
            self._replace(before, after)
        return _ordered(f for f in after if f.support >= self.policy.min_support)

    def facts(
        self,
        subject: str | None = None,
        *,
        predicate: str | None = None,
        at: float | None = None,
        min_confidence: float = 0.0,
        candidates: bool = False,
    ) -> list[Fact]:
        """The facts that hold at ``at`` (default now), most confident first per predicate.

        Args:
            subject: Only this subject's facts (without it, reads which subjects exist).
            predicate: Only this predicate.
            at: The epoch second the facts must hold at.
            min_confidence: Leave out less confident facts.
            candidates: Include values with less support than ``min_support``.
        """
        when = self._clock() if at is None else at
        attrs: dict[str, Any] = {
            "subject": subject,
            "predicate": predicate,
            "at": when,
            "min_confidence": min_confidence,
            "store": type(self.store).__name__,
        }
        run_id = current_context().run_id
        with span(
            SpanKind.RETRIEVAL, "memory.facts", run_id=run_id, input=subject, attributes=attrs
        ) as opened:
            found = [
                f
                for f in self._stored(None if subject is None else [subject], live_at=when)
                if f.valid_at(when)
                and (predicate is None or f.predicate == predicate)
                and f.confidence >= min_confidence
                and (candidates or f.support >= self.policy.min_support)
            ]
            result = _ordered(found)
            attrs["fact_ids"] = [f.id for f in result]
            opened.output = [f"{f.subject} {f.predicate} = {f.value!r}" for f in result]
            opened.status = "ok" if result else "no_facts"
        return result

    def value(self, subject: str, predicate: str, *, at: float | None = None) -> Fact | None:
        """The most confident established fact for ``subject`` and ``predicate`` at ``at``."""
        found = self.facts(subject, predicate=predicate, at=at)
        return found[0] if found else None

    def prune(self, now: float | None = None) -> PruneReport:
        """Remove expired facts and contradicted ones (candidates included)."""
        when = self._clock() if now is None else now
        with self._lock:
            held = self._stored(None)
            expired = [f for f in held if f.valid_until is not None and f.valid_until <= when]
            groups: dict[tuple[str, str], list[Fact]] = {}
            for f in held:
                if f.valid_until is None or f.valid_until > when:
                    groups.setdefault((f.subject, f.predicate), []).append(f)
            beaten = [f for group in groups.values() for f in group if contradicted(f, group)]
            for fact in (*expired, *beaten):
                self._records.delete(fact.id)
        return PruneReport(expired=tuple(_ordered(expired)), contradicted=tuple(_ordered(beaten)))

    def _stored(self, subjects: list[str] | None, *, live_at: float | None = None) -> list[Fact]:
        types = (
            [f"{_KIND}{s}" for s in subjects]
            if subjects is not None
            else sorted(self._records.data_types(_KIND))
        )
        items = self._records.listing(types, live_at=live_at)
        return [Fact.model_validate_json(i.text) for i in items]

    def _replace(self, before: list[Fact], after: list[Fact]) -> None:
        kept = {f.id for f in after}
        for gone in before:
            if gone.id not in kept:
                self._records.delete(gone.id)
        old = {f.id: f for f in before}
        # One write for every changed fact: a backend's write has a fixed cost.
        self._records.put([_record(f) for f in after if old.get(f.id) != f])


def build_semantic_memory(
    *,
    data_dir: Path,
    chroma_url: str | None = None,
    embedder: str | Embedder = "hashing",
    collection: str | None = None,
    policy: DistillPolicy | None = None,
) -> SemanticMemory:
    """Semantic memory on Chroma: embedded under ``data_dir/chroma``, or a server.

    Args:
        data_dir: The project data folder (``Settings.data_dir``).
        chroma_url: A Chroma server URL; ``None`` uses embedded Chroma.
        embedder: An embedder or a :func:`~agentmesh.memory.build_embedder` spec.
        collection: The collection (default ``facts-<embedder name>``).
        policy: Distillation rules.

    Raises:
        ConfigError: A bad embedder spec or Chroma location.
        MissingExtraError: An embedder that needs an extra which is not installed.
    """
    from agentmesh.memory._chroma import ChromaStore

    made = build_embedder(embedder) if isinstance(embedder, str) else embedder
    name = collection or collection_name("facts", made.name)
    store = (
        ChromaStore(url=chroma_url, collection=name)
        if chroma_url
        else ChromaStore(path=Path(data_dir) / "chroma", collection=name)
    )
    return SemanticMemory(store, embedder=made, policy=policy)


def _record(fact: Fact) -> Record:
    return Record(
        id=fact.id,
        data_type=f"{_KIND}{fact.subject}",
        payload=fact.model_dump_json(),
        title=f"{fact.subject} {fact.predicate} = {fact.value!r}",
        embed_text=f"{fact.subject} {fact.predicate} {fact.value}",
        stored_at=fact.updated_at,
        expires_at=fact.valid_until,
    )


def _ordered(facts: Iterable[Fact]) -> list[Fact]:
    return sorted(facts, key=lambda f: (f.subject, f.predicate, -f.confidence, -f.updated_at))
