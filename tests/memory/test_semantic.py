"""Semantic memory: facts distilled from corrected episodes, with provenance, confidence,
validity windows, and pruning of contradicted and expired facts.

Every behaviour runs against the in-memory reference store and embedded Chroma.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _external_support import DAY, NOW, Clock

from agentmesh import memory as memory_api
from agentmesh._runtime.context import RunContext, use_context
from agentmesh.errors import ConfigError
from agentmesh.memory import (
    ChromaStore,
    Correction,
    DistillPolicy,
    Episode,
    EpisodeOutcome,
    EpisodicMemory,
    Fact,
    InMemoryStore,
    MemoryStore,
    SemanticMemory,
)
from agentmesh.memory import semantic as semantic_module
from agentmesh.settings import Settings
from agentmesh.testing import RecordingTracer
from agentmesh.tools import ToolGateway
from agentmesh.tracing import SpanKind
from agentmesh.types import RunStatus

VENDOR = "Bleu Cloud Services"


@pytest.fixture(params=["memory", "chroma"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, MemoryStore]]:
    if request.param == "memory":
        yield {"episodes": InMemoryStore(), "facts": InMemoryStore()}
    else:
        path = tmp_path / "data" / "chroma"
        yield {name: ChromaStore(path=path, collection=name) for name in ("episodes", "facts")}


@pytest.fixture
def store(stores: dict[str, MemoryStore]) -> MemoryStore:
    return stores["facts"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def semantic(store: MemoryStore, clock: Clock) -> SemanticMemory:
    return SemanticMemory(store, clock=clock)


def _episode(
    episode_id: str, *fixes: tuple[str, object, float], subject: str | None = VENDOR
) -> Episode:
    """An episode whose reviewer set ``field`` to ``value`` at ``NOW + offset`` days."""
    return Episode(
        id=episode_id,
        workflow="back_office",
        subject=subject,
        input_summary=f"invoice {episode_id}",
        outcome=EpisodeOutcome(status=RunStatus.COMPLETED, reason="completed"),
        output={"vendor_id": None},
        corrections=[
            Correction(field=f, new=v, reviewer="alice", at=NOW + d * DAY) for f, v, d in fixes
        ],
        created_at=NOW,
    )


def _vendor(episode_id: str, vendor_id: str, day: float) -> Episode:
    return _episode(episode_id, ("vendor_id", vendor_id, day))


def _values(facts: list[Fact]) -> list[tuple[object, float, int]]:
    return [(f.value, f.confidence, f.support) for f in facts]


def test_the_public_surface() -> None:
    assert sorted(semantic_module.__all__) == [
        "DistillPolicy",
        "Fact",
        "PruneReport",
        "SemanticMemory",
        "build_semantic_memory",
    ]
    assert all(
        getattr(memory_api, n) is getattr(semantic_module, n) for n in semantic_module.__all__
    )


def test_build_semantic_memory_keeps_facts_in_embedded_chroma(tmp_path: Path) -> None:
    built = memory_api.build_semantic_memory(
        data_dir=tmp_path / "data", policy=DistillPolicy(min_support=1)
    )
    assert isinstance(built.store, ChromaStore)
    assert built.store.collection_name == "facts-hashing-v1-512"
    assert [f.value for f in built.distill([_vendor("e1", "V003", 0)])] == ["V003"]


# -- distillation ---------------------------------------------------------------------------


def test_repeated_corrections_become_a_fact_with_provenance(semantic: SemanticMemory) -> None:
    assert semantic.distill([_vendor("e1", "V003", 0)]) == []
    assert semantic.facts(VENDOR) == []
    (candidate,) = semantic.facts(VENDOR, candidates=True)
    assert (candidate.value, candidate.confidence, candidate.provenance) == ("V003", 0.5, ["e1"])

    (fact,) = semantic.distill([_vendor("e2", "V003", 2)])

    assert (fact.subject, fact.predicate, fact.value) == (VENDOR, "vendor_id", "V003")
    assert fact.provenance == ["e1", "e2"]
    assert fact.evidence_at == [NOW, NOW + 2 * DAY]
    assert (fact.confidence, fact.valid_from, fact.updated_at) == (0.75, NOW, NOW + 2 * DAY)
    assert fact.valid_until is None
    assert semantic.facts(VENDOR, at=NOW + 3 * DAY) == [fact]


def test_agreement_raises_confidence(semantic: SemanticMemory) -> None:
    semantic.distill([_vendor("e1", "V003", 0), _vendor("e2", "V003", 1)])
    (fact,) = semantic.distill([_vendor("e3", "V003", 2)])
    assert (fact.confidence, fact.support) == (0.875, 3)


def test_distilling_the_same_episodes_again_changes_nothing(
    semantic: SemanticMemory, store: MemoryStore
) -> None:
    episodes = [_vendor("e1", "V003", 0), _vendor("e2", "V003", 1)]
    first = semantic.distill(episodes)
    again = semantic.distill(episodes)
    assert first == again
    assert store.count() == 1


def test_only_episodes_with_a_subject_and_chosen_fields_count(store: MemoryStore) -> None:
    semantic = SemanticMemory(store, policy=DistillPolicy(min_support=1, predicates={"vendor_id"}))
    facts = semantic.distill(
        [
            _episode("e1", ("vendor_id", "V003", 0), subject=None),
            _episode("e2", ("category", "software", 0)),
        ]
    )
    assert facts == []
    assert store.count() == 0


def test_a_newer_contradiction_lowers_confidence_and_prune_removes_the_loser(
    semantic: SemanticMemory, clock: Clock
) -> None:
    semantic.distill([_vendor("e1", "V003", 0), _vendor("e2", "V003", 1)])
    semantic.distill([_vendor("e3", "V004", 5), _vendor("e4", "V004", 6)])
    clock.advance(7 * DAY)

    both = semantic.facts(VENDOR)
    assert _values(both) == [("V004", 0.75, 2), ("V003", 0.0, 2)]
    assert semantic.value(VENDOR, "vendor_id") == both[0]

    report = semantic.prune()

    assert [f.value for f in report.contradicted] == ["V003"]
    assert (report.expired, report.removed) == ((), 1)
    assert _values(semantic.facts(VENDOR, candidates=True)) == [("V004", 0.75, 2)]


def test_one_newer_contradiction_does_not_overturn_a_well_supported_fact(
    semantic: SemanticMemory,
) -> None:
    semantic.distill([_vendor(f"e{n}", "V003", n) for n in range(3)])
    semantic.distill([_vendor("late", "V004", 9)])

    facts = semantic.facts(VENDOR, at=NOW + 10 * DAY, candidates=True)
    assert _values(facts) == [("V003", 0.75, 3), ("V004", 0.5, 1)]
    assert semantic.prune(NOW + 10 * DAY).removed == 0
    assert semantic.value(VENDOR, "vendor_id", at=NOW + 10 * DAY).value == "V003"


def test_a_re_corrected_episode_backs_only_its_latest_value(semantic: SemanticMemory) -> None:
    semantic.distill([_vendor("e1", "V003", 0), _vendor("e2", "V003", 1)])
    fixed = _episode("e2", ("vendor_id", "V003", 1), ("vendor_id", "V004", 2))

    semantic.distill([fixed])

    facts = semantic.facts(VENDOR, at=NOW + 3 * DAY, candidates=True)
    assert [(f.value, f.provenance) for f in facts] == [("V004", ["e2"]), ("V003", ["e1"])]


# -- validity windows and expiry ------------------------------------------------------------


def test_facts_hold_only_inside_their_validity_window(store: MemoryStore) -> None:
    policy = DistillPolicy(valid_for_s=30 * DAY, valid_for={"iban": 10 * DAY})
    semantic = SemanticMemory(store, policy=policy)
    semantic.distill(
        [
            _episode("e1", ("vendor_id", "V003", 1), ("iban", "FR76", 1)),
            _episode("e2", ("vendor_id", "V003", 2), ("iban", "FR76", 2)),
        ]
    )

    iban = semantic.value(VENDOR, "iban", at=NOW + 5 * DAY)
    assert iban is not None
    assert (iban.valid_from, iban.valid_until) == (NOW + DAY, NOW + 12 * DAY)
    assert semantic.facts(VENDOR, at=NOW) == []  # before the first evidence
    assert [f.predicate for f in semantic.facts(VENDOR, at=NOW + 11 * DAY)] == ["iban", "vendor_id"]
    assert [f.predicate for f in semantic.facts(VENDOR, at=NOW + 12 * DAY)] == ["vendor_id"]
    assert semantic.facts(VENDOR, at=NOW + 32 * DAY) == []


def test_new_agreement_extends_validity(store: MemoryStore) -> None:
    semantic = SemanticMemory(store, policy=DistillPolicy(min_support=1, valid_for_s=10 * DAY))
    semantic.distill([_vendor("e1", "V003", 0)])
    (fact,) = semantic.distill([_vendor("e2", "V003", 8)])
    assert fact.valid_until == NOW + 18 * DAY


def test_prune_removes_expired_facts(store: MemoryStore) -> None:
    policy = DistillPolicy(min_support=1, valid_for={"iban": 10 * DAY})
    semantic = SemanticMemory(store, policy=policy)
    semantic.distill([_episode("e1", ("vendor_id", "V003", 0), ("iban", "FR76", 0))])

    assert semantic.prune(NOW + 9 * DAY).removed == 0
    report = semantic.prune(NOW + 10 * DAY)

    assert [(f.predicate, f.value) for f in report.expired] == [("iban", "FR76")]
    assert report.contradicted == ()
    assert store.count() == 1
    assert [f.predicate for f in semantic.facts(at=NOW + 100 * DAY)] == ["vendor_id"]


# -- persistence, listing, tracing ----------------------------------------------------------


def test_facts_persist_and_list_across_subjects(
    semantic: SemanticMemory, store: MemoryStore, tmp_path: Path
) -> None:
    semantic.distill(
        [
            _vendor("e1", "V003", 0),
            _vendor("e2", "V003", 1),
            _episode("e3", ("vendor_id", "V011", 0), subject="SkyRoute"),
            _episode("e4", ("vendor_id", "V011", 1), subject="SkyRoute"),
        ]
    )
    if isinstance(store, ChromaStore):
        store = ChromaStore(path=tmp_path / "data" / "chroma", collection="facts")
    reopened = SemanticMemory(store)

    everything = reopened.facts(at=NOW + 2 * DAY)
    assert [(f.subject, f.value) for f in everything] == [(VENDOR, "V003"), ("SkyRoute", "V011")]
    assert [f.value for f in reopened.facts("SkyRoute", at=NOW + 2 * DAY)] == ["V011"]
    assert reopened.facts("nobody", at=NOW + 2 * DAY) == []
    assert reopened.facts(at=NOW + 2 * DAY, min_confidence=0.8) == []


def test_every_facts_lookup_is_traced(semantic: SemanticMemory) -> None:
    semantic.distill([_vendor("e1", "V003", 0), _vendor("e2", "V003", 1)])
    tracer = RecordingTracer()
    ctx = RunContext(settings=Settings(), tracer=tracer, gateway=ToolGateway(), run_id="run-3")

    with use_context(ctx):
        semantic.value(VENDOR, "vendor_id", at=NOW + DAY)
        semantic.facts("nobody", at=NOW + DAY)

    found, missing = tracer.of_kind(SpanKind.RETRIEVAL)
    assert (found.name, found.run_id, found.input, found.status) == (
        "memory.facts",
        "run-3",
        VENDOR,
        "ok",
    )
    assert found.output == [f"{VENDOR} vendor_id = 'V003'"]
    assert found.attributes["predicate"] == "vendor_id"
    assert (missing.status, missing.output) == ("no_facts", [])


def test_distilled_from_recorded_episodes(stores: dict[str, MemoryStore], clock: Clock) -> None:
    """Reviewers correct recorded episodes; the corrections become facts."""
    episodic = EpisodicMemory(stores["episodes"], clock=clock)
    semantic = SemanticMemory(stores["facts"], clock=clock)
    for n in range(2):
        episodic.add(_episode(f"run-{n}"))
        clock.advance(DAY)
        episodic.correct(f"run-{n}", Correction(field="vendor_id", new="V003", reviewer="bob"))

    (fact,) = semantic.distill(e for n in range(2) if (e := episodic.get(f"run-{n}")))

    assert (fact.value, fact.provenance, fact.confidence) == ("V003", ["run-0", "run-1"], 0.75)
    assert fact.evidence_at == [NOW + DAY, NOW + 2 * DAY]
    assert semantic.value(VENDOR, "vendor_id") == fact


def test_policy_mistakes_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="min_support"):
        DistillPolicy(min_support=0)
    with pytest.raises(ConfigError, match="agreement"):
        DistillPolicy(agreement=1.0)
    with pytest.raises(ConfigError, match="positive"):
        DistillPolicy(valid_for={"iban": 0})
