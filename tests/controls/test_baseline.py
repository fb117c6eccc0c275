"""Per-agent cost baselines: stores (in memory, SQLite) and the deviation alert."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentmesh.controls.alerts import Alert, CallbackSink
from agentmesh.controls.baseline import (
    BaselineConfig,
    BaselineStore,
    CostBaseline,
    InMemoryBaselineStore,
    SQLiteBaselineStore,
)
from agentmesh.controls.period import SQLiteSpendLedger
from agentmesh.errors import ConfigError


class BaselineStoreContract:
    """What every BaselineStore backend must do."""

    @pytest.fixture
    def store(self) -> BaselineStore:
        raise NotImplementedError

    def test_is_a_baseline_store(self, store: BaselineStore) -> None:
        assert isinstance(store, BaselineStore)

    def test_recent_is_newest_first_and_per_agent(self, store: BaselineStore) -> None:
        assert store.recent("a", 5) == []
        for i, cost in enumerate([0.1, 0.2, 0.3]):
            store.append("a", cost, float(i))
        store.append("b", 9.0, 3.0)
        assert store.recent("a", 2) == [0.3, 0.2]
        assert store.recent("a", 10) == [0.3, 0.2, 0.1]
        assert store.recent("b", 10) == [9.0]


class TestInMemoryStore(BaselineStoreContract):
    @pytest.fixture
    def store(self) -> BaselineStore:
        return InMemoryBaselineStore()

    def test_keeps_a_bounded_history(self) -> None:
        store = InMemoryBaselineStore(keep=3)
        for i in range(5):
            store.append("a", float(i), 0.0)
        assert store.recent("a", 10) == [4.0, 3.0, 2.0]


class TestSQLiteStore(BaselineStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[BaselineStore]:
        store = SQLiteBaselineStore(tmp_path / "b.sqlite")
        yield store
        store.close()

    def test_samples_persist_in_the_ledger_file(self) -> None:
        ledger = SQLiteSpendLedger()  # the same default file holds both
        ledger.add("k", 1, 1)
        first = SQLiteBaselineStore()
        assert first.path == Path(os.environ["AGENTMESH_DATA_DIR"]) / "controls.sqlite"
        first.append("intake", 0.5, 1.0)
        first.close()
        again = SQLiteBaselineStore()
        assert again.recent("intake", 5) == [0.5]
        assert ledger.total("k", 1) == 1
        again.close()
        ledger.close()


def baseline(alerts: list[Alert], **config: float) -> CostBaseline:
    return CostBaseline(
        BaselineConfig(**config),  # type: ignore[arg-type]
        store=InMemoryBaselineStore(),
        sink=CallbackSink(alerts.append),
        clock=lambda: 42.0,
    )


def test_no_alert_before_the_minimum_samples() -> None:
    alerts: list[Alert] = []
    b = baseline(alerts, window=10, min_samples=3)
    for cost in (0.01, 0.01):
        assert b.observe("intake", cost) is None
    assert b.baseline("intake") is None
    assert b.observe("intake", 5.0) is None  # a third sample, but only two to compare with
    assert alerts == []


def test_a_run_above_three_times_the_baseline_alerts() -> None:
    alerts: list[Alert] = []
    b = baseline(alerts, window=10, min_samples=3)
    for cost in (0.01, 0.02, 0.03):
        b.observe("intake", cost)
    assert b.baseline("intake") == pytest.approx(0.02)
    assert b.observe("intake", 0.06) is None  # exactly 3x is within the band
    # The baseline is now (0.01 + 0.02 + 0.03 + 0.06) / 4 = 0.03.
    alert = b.observe("intake", 0.1)
    assert alert is not None and alerts == [alert]
    assert (alert.kind, alert.scope, alert.at) == ("cost_deviation", "agent:intake", 42.0)
    assert alert.value == pytest.approx(0.1 / 0.03)
    assert alert.details["baseline_usd"] == pytest.approx(0.03)
    assert "above" in alert.message
    assert b.observe("billing", 10.0) is None  # another agent has its own baseline


def test_a_run_far_below_the_baseline_alerts_too() -> None:
    alerts: list[Alert] = []
    b = baseline(alerts, window=5, min_samples=2)
    b.observe("a", 1.0)
    b.observe("a", 1.0)
    alert = b.observe("a", 0.2)
    assert alert is not None and "below" in alert.message
    assert alert.value == pytest.approx(0.2)


def test_the_baseline_rolls_over_the_last_window_runs() -> None:
    alerts: list[Alert] = []
    b = baseline(alerts, window=3, min_samples=3, factor=3.0)
    for cost in (1.0, 1.0, 1.0, 5.0, 5.0, 5.0):
        b.observe("a", cost)
    assert b.baseline("a") == 5.0
    assert [a.value for a in alerts] == [5.0]  # the first 5.0 only; then it is the norm
    assert b.observe("a", 9.0) is None
    assert b.observe("a", 20.0) is not None


def test_a_free_agent_raises_no_ratio_alert() -> None:
    alerts: list[Alert] = []
    b = baseline(alerts, min_samples=1, window=5)
    b.observe("a", 0.0)
    assert b.observe("a", 1.0) is None


def test_config_validation() -> None:
    for bad in ({"window": 0}, {"min_samples": 5, "window": 3}, {"factor": 1.0}):
        with pytest.raises(ConfigError):
            BaselineConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        CostBaseline(store=InMemoryBaselineStore()).observe("a", -1.0)
