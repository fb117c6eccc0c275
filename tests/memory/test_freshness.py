"""Freshness is enforced by retrieval itself: the policy, its filter and stale flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _external_support import DAY, NOW, ROOT, Clock, basis, item

from agentmesh.errors import ConfigError
from agentmesh.memory import (
    ChromaStore,
    ExternalMemory,
    FreshnessRule,
    InMemoryStore,
    ItemFilter,
    MemoryItem,
    MemoryPolicy,
    MemoryStore,
    Retrieved,
    ScoredItem,
    StaleAction,
    Window,
)
from agentmesh.memory._policy import parse_duration

POLICY = MemoryPolicy(
    rules={
        "fx_rates": FreshnessRule(max_age_s=DAY),
        "manual": FreshnessRule(max_age_s=30 * DAY, on_stale=StaleAction.FLAG),
    },
    default=FreshnessRule(max_age_s=365 * DAY, on_stale=StaleAction.FLAG),
    min_score=0.1,
)


class FixedEmbedder:
    """Every text embeds to axis 0, so every item matches every query equally."""

    name = "fixed"

    def embed_documents(self, texts: Any) -> np.ndarray:
        return np.stack([basis(0)] * len(texts))

    def embed_query(self, text: str) -> np.ndarray:
        return basis(0)


class SpyStore:
    """Wraps a store and records the filter of every query."""

    def __init__(self, inner: MemoryStore) -> None:
        self.inner = inner
        self.wheres: list[ItemFilter | None] = []

    def add(self, items: Any, vectors: Any) -> None:
        self.inner.add(items, vectors)

    def query(self, vector: Any, *, k: int, where: ItemFilter | None = None) -> list[ScoredItem]:
        self.wheres.append(where)
        return self.inner.query(vector, k=k, where=where)

    def delete_source(self, source: str, *, keep_version: str | None = None) -> int:
        return self.inner.delete_source(source, keep_version=keep_version)

    def restamp_source(self, source: str, ingested_at: float) -> int:
        return self.inner.restamp_source(source, ingested_at)

    def sources(self) -> Any:
        return self.inner.sources()

    def count(self) -> int:
        return self.inner.count()


def _memory(store: MemoryStore, items: list[MemoryItem], clock: Clock) -> ExternalMemory:
    store.add(items, np.stack([basis(0)] * len(items)))
    return ExternalMemory(store=store, embedder=FixedEmbedder(), policy=POLICY, clock=clock)


@pytest.fixture(params=["inmemory", "chroma"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MemoryStore:
    if request.param == "inmemory":
        return InMemoryStore()
    return ChromaStore(path=tmp_path / "chroma")


def test_stale_items_of_an_exclude_type_are_never_returned(store: MemoryStore) -> None:
    clock = Clock()
    memory = _memory(
        store,
        [
            item("fx-old", data_type="fx_rates", ingested_at=NOW - 2 * DAY),
            item("fx-new", data_type="fx_rates", ingested_at=NOW - 3600),
        ],
        clock,
    )
    assert [h.item.id for h in memory.search("rate", k=5)] == ["fx-new"]
    clock.advance(DAY)  # now the newer one is too old as well
    assert memory.search("rate", k=5) == []


def test_stale_items_of_a_flag_type_come_back_flagged_with_a_reason(store: MemoryStore) -> None:
    memory = _memory(
        store,
        [
            item("manual-old", data_type="manual", ingested_at=NOW - 40 * DAY),
            item("manual-new", data_type="manual", ingested_at=NOW - DAY),
        ],
        Clock(),
    )
    hits = {h.item.id: h for h in memory.search("how to", k=5)}
    assert hits["manual-old"].stale and not hits["manual-new"].stale
    assert "manual may be at most 30.0d" in (hits["manual-old"].stale_reason or "")
    assert hits["manual-old"].age_s == pytest.approx(40 * DAY)


def test_expired_items_are_stale_whatever_their_age(store: MemoryStore) -> None:
    memory = _memory(
        store,
        [
            item("fx-expired", data_type="fx_rates", expires_at=NOW - 1),
            item("manual-expired", data_type="manual", expires_at=NOW - 1),
            item("manual-valid", data_type="manual", expires_at=NOW + DAY),
        ],
        Clock(),
    )
    hits = {h.item.id: h for h in memory.search("x", k=5)}
    assert set(hits) == {"manual-expired", "manual-valid"}
    assert hits["manual-expired"].stale_reason.startswith("expired at")
    assert not hits["manual-valid"].stale


@pytest.mark.parametrize(
    ("data_type", "ingested_at", "expires_at", "passes"),
    [
        ("fx_rates", NOW - DAY, None, True),  # the age bound is inclusive
        ("fx_rates", NOW - DAY - 1, None, False),
        ("fx_rates", NOW, NOW, False),  # expiring now is expired
        ("fx_rates", NOW, NOW + 1, True),
        ("manual", NOW - 400 * DAY, NOW - 1, True),  # flagged types are not filtered
        ("other", NOW - 400 * DAY, None, True),
    ],
)
def test_a_row_is_checked_on_its_fields_as_its_item_would_be(
    data_type: str, ingested_at: float, expires_at: float | None, passes: bool
) -> None:
    where = ItemFilter(
        types={"fx_rates": Window(ingested_since=NOW - DAY, live_at=NOW)}, others=Window()
    )
    it = item("x", data_type=data_type, ingested_at=ingested_at, expires_at=expires_at)
    assert where.matches_fields(data_type, ingested_at, expires_at) is passes
    assert where.matches(it) is passes
    assert POLICY.item_filter(NOW).matches(it) is passes


def test_retrieval_hands_the_policy_filter_to_the_store_query() -> None:
    spy = SpyStore(InMemoryStore())
    memory = _memory(spy, [item("a")], Clock())
    memory.retrieve("anything")
    (where,) = spy.wheres
    assert where == ItemFilter(
        types={"fx_rates": Window(ingested_since=NOW - DAY, live_at=NOW)}, others=Window()
    )


def test_limiting_to_data_types_filters_in_the_store(store: MemoryStore) -> None:
    memory = _memory(
        store,
        [item("fx", data_type="fx_rates"), item("man", data_type="manual")],
        Clock(),
    )
    assert [h.item.id for h in memory.search("x", data_types=["manual"])] == ["man"]
    assert memory.search("x", data_types=["nothing-of-this-type"]) == []


def test_retrieved_counts_stale_hits(store: MemoryStore) -> None:
    memory = _memory(
        store,
        [
            item("fresh", data_type="manual"),
            item("old", data_type="manual", ingested_at=NOW - 31 * DAY),
        ],
        Clock(),
    )
    result = memory.retrieve("x")
    assert isinstance(result, Retrieved)
    assert result.stale_count == 1
    assert [h.item.id for h in result.fresh] == ["fresh"]


# -- the policy file ---------------------------------------------------------------------


def test_shipped_policy_file_loads() -> None:
    policy = MemoryPolicy.load(ROOT / "memory" / "policy.toml")
    assert policy.rule("fx_rates") == FreshnessRule(max_age_s=DAY, on_stale=StaleAction.EXCLUDE)
    assert policy.rule("vendor_master").max_age_s == 30 * DAY
    assert policy.rule("something-else").on_stale is StaleAction.FLAG
    assert policy.data_type_for("memory/vendors.json") == "vendor_master"
    assert policy.min_score_for("minilm-l6-v2") != policy.min_score_for("hashing-v1-512")


def test_policy_as_json_is_the_same(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(
        '{"retrieval": {"k": 3, "min_score": 0.4},'
        ' "freshness": {"max_age": "2w", "types": {"a": {"max_age": 60, "on_stale": "flag"}}}}'
    )
    policy = MemoryPolicy.load(path)
    assert (policy.k, policy.min_score) == (3, 0.4)
    assert policy.default == FreshnessRule(max_age_s=14 * DAY)
    assert policy.rule("a") == FreshnessRule(max_age_s=60, on_stale=StaleAction.FLAG)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[freshness.types.a]\nmax_age = 'soon'\n", "[freshness.types.a] max_age"),
        ("[freshness.types.a]\non_stale = 'ignore'\n", "on_stale must be"),
        ("[freshness]\nmaxage = '1d'\n", "unknown key(s) maxage"),
        ("[retrieval]\nk = 0\n", "k must be at least 1"),
        ("[retrieval\n", "not valid toml"),
    ],
)
def test_invalid_policy_names_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        MemoryPolicy.load(path)
    assert str(path) in str(caught.value) and needle in str(caught.value)


@pytest.mark.parametrize(
    ("value", "seconds"), [(90, 90.0), ("90s", 90.0), ("15m", 900.0), ("1.5h", 5400.0)]
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["0d", -5, "5y", True])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ConfigError):
        parse_duration(value)
