"""Per-agent cost baselines, and an alert when a run's cost strays far from its baseline.

An agent's baseline is the mean cost of its last ``window`` observed runs.
Once at least ``min_samples`` runs are known, a run costing more than
``factor`` times the baseline (or less than the baseline divided by
``factor``) raises a ``cost_deviation`` alert. Samples live in a
:class:`BaselineStore`: :class:`SQLiteBaselineStore` (the default, the same
``controls.sqlite`` file as the spend ledger) or :class:`InMemoryBaselineStore`.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from agentmesh.controls.alerts import Alert, AlertSink, LogSink, fanout
from agentmesh.controls.period import _default_db_path, _open_db
from agentmesh.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "BaselineConfig",
    "BaselineStore",
    "CostBaseline",
    "InMemoryBaselineStore",
    "SQLiteBaselineStore",
]


@runtime_checkable
class BaselineStore(Protocol):
    """Cost samples per agent, safe to share between threads."""

    def append(self, agent: str, cost_usd: float, at: float) -> None:
        """Store one run's cost."""
        ...

    def recent(self, agent: str, limit: int) -> list[float]:
        """The costs of the agent's last ``limit`` runs, newest first."""
        ...


class InMemoryBaselineStore:
    """Samples kept in this process; the reference implementation.

    Args:
        keep: Samples kept per agent (older ones are dropped).
    """

    def __init__(self, keep: int = 1000) -> None:
        self._samples: defaultdict[str, deque[float]] = defaultdict(lambda: deque(maxlen=keep))
        self._lock = threading.Lock()

    def append(self, agent: str, cost_usd: float, at: float) -> None:
        """Store one run's cost."""
        with self._lock:
            self._samples[agent].append(cost_usd)

    def recent(self, agent: str, limit: int) -> list[float]:
        """The last ``limit`` costs, newest first."""
        with self._lock:
            samples = self._samples.get(agent, deque())
            return list(reversed(samples))[:limit]


class SQLiteBaselineStore:
    """Samples in a SQLite file, shared by every process on the machine.

    Args:
        path: The database file; by default ``controls.sqlite`` in the data folder.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else _default_db_path()
        self._conn = _open_db(self.path)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS agentmesh_cost_samples ("
                " id INTEGER PRIMARY KEY AUTOINCREMENT, agent TEXT NOT NULL,"
                " cost_usd REAL NOT NULL, at REAL NOT NULL)"
            )
            self._conn.execute(
                "CREATE INDEX IF NOT EXISTS agentmesh_cost_samples_agent"
                " ON agentmesh_cost_samples (agent, id)"
            )

    def append(self, agent: str, cost_usd: float, at: float) -> None:
        """Store one run's cost."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO agentmesh_cost_samples (agent, cost_usd, at) VALUES (?, ?, ?)",
                (agent, cost_usd, at),
            )

    def recent(self, agent: str, limit: int) -> list[float]:
        """The last ``limit`` costs, newest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT cost_usd FROM agentmesh_cost_samples WHERE agent = ?"
                " ORDER BY id DESC LIMIT ?",
                (agent, limit),
            ).fetchall()
        return [float(row[0]) for row in rows]

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()


@dataclass(frozen=True, kw_only=True)
class BaselineConfig:
    """When a run's cost counts as a deviation.

    Attributes:
        window: Runs averaged into the baseline.
        min_samples: Runs needed before any alert.
        factor: How many times above (or below) the baseline a run must be.

    Raises:
        ConfigError: ``window`` or ``min_samples`` below 1, ``min_samples`` above
            ``window``, or ``factor`` not above 1.
    """

    window: int = 20
    min_samples: int = 5
    factor: float = 3.0

    def __post_init__(self) -> None:
        if not 1 <= self.min_samples <= self.window:
            raise ConfigError(
                f"BaselineConfig needs 1 <= min_samples <= window, got {self.min_samples}"
                f" and {self.window}"
            )
        if not self.factor > 1:
            raise ConfigError(f"BaselineConfig.factor must be above 1, got {self.factor!r}")


class CostBaseline:
    """Learns each agent's usual run cost and alerts on runs far from it.

    Args:
        config: Window, minimum samples and deviation factor.
        store: Where samples live; by default :class:`SQLiteBaselineStore`.
        sink: Where alerts go (besides being returned); by default a log sink.
        clock: Unix time, stored with each sample.
    """

    def __init__(
        self,
        config: BaselineConfig | None = None,
        *,
        store: BaselineStore | None = None,
        sink: AlertSink | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config if config is not None else BaselineConfig()
        self._store = store if store is not None else SQLiteBaselineStore()
        self._sink = fanout(sink if sink is not None else LogSink())
        self._clock = clock

    def baseline(self, agent: str) -> float | None:
        """The agent's mean cost over its last runs, or ``None`` before ``min_samples`` runs."""
        samples = self._store.recent(agent, self.config.window)
        if len(samples) < self.config.min_samples:
            return None
        return sum(samples) / len(samples)

    def observe(self, agent: str, cost_usd: float) -> Alert | None:
        """Compare one finished run with the baseline, then add it to the samples.

        Returns:
            The ``cost_deviation`` alert sent, or ``None``. No alert is raised while
            the baseline is zero (a free agent has no meaningful ratio).
        """
        if cost_usd < 0:
            raise ValueError("a run's cost cannot be negative")
        base = self.baseline(agent)
        now = self._clock()
        self._store.append(agent, cost_usd, now)
        if not base:
            return None
        ratio = cost_usd / base
        factor = self.config.factor
        if 1 / factor <= ratio <= factor:
            return None
        direction = "above" if ratio > factor else "below"
        alert = Alert(
            kind="cost_deviation",
            scope=f"agent:{agent}",
            message=f"run cost ${cost_usd:.6g} is {ratio:.3g}x the baseline of ${base:.6g}"
            f" ({direction} the {factor:g}x band)",
            value=ratio,
            at=now,
            details={"agent": agent, "cost_usd": cost_usd, "baseline_usd": base, "factor": factor},
        )
        self._sink.send(alert)
        return alert
