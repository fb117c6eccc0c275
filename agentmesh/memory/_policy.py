"""The memory policy: maximum age per data type, what to do with stale items, relevance floor.

A policy file (``memory/policy.toml``, or the same structure as JSON)::

    [retrieval]
    k = 5                     # hits per query
    min_score = 0.2           # below this a hit is not relevant enough
    [retrieval.min_score_by_embedder]
    minilm = 0.4              # per embedder family (a prefix of the embedder's name)

    [freshness]               # the rule for data types not listed below
    max_age = "365d"
    on_stale = "flag"         # "exclude" (never returned) or "flag" (returned, marked stale)

    [freshness.types.fx_rates]
    max_age = "1d"
    on_stale = "exclude"

    [sources]                 # source pattern -> data type (when the source does not say)
    "vendors.json" = "vendor_master"

Durations are numbers of seconds or strings with a unit: ``"90s"``, ``"15m"``, ``"12h"``,
``"30d"``, ``"2w"``.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from agentmesh.errors import ConfigError
from agentmesh.memory._filter import ItemFilter, Window

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agentmesh.memory._items import MemoryItem

__all__ = ["FreshnessRule", "MemoryPolicy", "StaleAction", "format_duration", "parse_duration"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


class StaleAction(StrEnum):
    """What retrieval does with an item older than its data type allows (or expired)."""

    EXCLUDE = "exclude"
    FLAG = "flag"


@dataclass(frozen=True, kw_only=True)
class FreshnessRule:
    """The freshness rule for one data type.

    Attributes:
        max_age_s: Oldest an item may be, in seconds; ``None`` means no age limit
            (an expired item is still stale).
        on_stale: Exclude stale items in the store query, or return them flagged.
    """

    max_age_s: float | None = None
    on_stale: StaleAction = StaleAction.EXCLUDE

    def __post_init__(self) -> None:
        if self.max_age_s is not None and self.max_age_s <= 0:
            raise ConfigError(f"max_age must be positive, got {self.max_age_s}")

    def window(self, now: float) -> Window:
        """The store-level bounds this rule puts on a query made at ``now``."""
        if self.on_stale is StaleAction.FLAG:
            return Window()
        since = None if self.max_age_s is None else now - self.max_age_s
        return Window(ingested_since=since, live_at=now)


@dataclass(frozen=True, kw_only=True)
class MemoryPolicy:
    """Freshness rules per data type, and how much relevance retrieval demands.

    Attributes:
        rules: The rule for each named data type.
        default: The rule for every other data type.
        k: Hits per query.
        min_score: Similarity below which a hit is not relevant enough.
        min_score_by_embedder: ``min_score`` per embedder family (a prefix of the
            embedder's name); similarity scales differ between embedders.
        source_types: Source pattern (matched from the right, like ``PurePath.match``)
            to data type, for sources that do not declare their type.
    """

    rules: Mapping[str, FreshnessRule] = field(default_factory=dict)
    default: FreshnessRule = FreshnessRule()
    k: int = 5
    min_score: float = 0.2
    min_score_by_embedder: Mapping[str, float] = field(default_factory=dict)
    source_types: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("rules", "min_score_by_embedder", "source_types"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        if self.k < 1:
            raise ConfigError(f"k must be at least 1, got {self.k}")

    def rule(self, data_type: str) -> FreshnessRule:
        """The rule that applies to ``data_type``."""
        return self.rules.get(data_type, self.default)

    def min_score_for(self, embedder: str) -> float:
        """The relevance floor for an embedder (longest matching family prefix wins)."""
        matches = [p for p in self.min_score_by_embedder if embedder.startswith(p)]
        return self.min_score_by_embedder[max(matches, key=len)] if matches else self.min_score

    def data_type_for(self, source: str) -> str | None:
        """The data type ``source_types`` assigns to ``source``, if any."""
        path = PurePosixPath(source)
        for pattern, data_type in self.source_types.items():
            if path.match(pattern):
                return data_type
        return None

    def item_filter(self, now: float, data_types: Sequence[str] | None = None) -> ItemFilter:
        """The store filter enforcing this policy at ``now``, optionally for some types only."""
        if data_types is not None:
            return ItemFilter(types={t: self.rule(t).window(now) for t in data_types}, others=None)
        others = self.default.window(now)
        types = {t: r.window(now) for t, r in self.rules.items()}
        return ItemFilter(types={t: w for t, w in types.items() if w != others}, others=others)

    def stale_reason(self, item: MemoryItem, now: float) -> str | None:
        """Why ``item`` is stale at ``now``, or ``None`` when it is fresh."""
        return self.staleness(
            item.data_type, ingested_at=item.ingested_at, expires_at=item.expires_at, now=now
        )

    def staleness(
        self, data_type: str, *, ingested_at: float, expires_at: float | None, now: float
    ) -> str | None:
        """Why content of ``data_type`` with these timestamps is stale at ``now``, or ``None``."""
        if expires_at is not None and expires_at <= now:
            when = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
            return f"expired at {when}"
        limit = self.rule(data_type).max_age_s
        age = max(0.0, now - ingested_at)
        if limit is not None and age > limit:
            return (
                f"{format_duration(age)} old; {data_type} may be at most {format_duration(limit)}"
            )
        return None

    @classmethod
    def load(cls, path: Path) -> MemoryPolicy:
        """Read a policy file (``.toml`` or ``.json``).

        Raises:
            ConfigError: The file is missing, unreadable or invalid (names file and key).
        """
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read memory policy ({exc.strerror})") from exc
        try:
            data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{path}: not valid {path.suffix.lstrip('.') or 'toml'}: {exc}"
            ) from exc
        return cls.from_dict(data, where=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "memory policy") -> MemoryPolicy:
        """Build a policy from the policy file's structure (see the module docstring)."""
        _only(data, {"retrieval", "freshness", "sources"}, where)
        retrieval = _table(data, "retrieval", where)
        _only(retrieval, {"k", "min_score", "min_score_by_embedder"}, f"{where}: [retrieval]")
        freshness = dict(_table(data, "freshness", where))
        types = _table(freshness, "types", f"{where}: [freshness]")
        freshness.pop("types", None)
        by_embedder = _table(retrieval, "min_score_by_embedder", f"{where}: [retrieval]")
        sources = _table(data, "sources", where)
        rules = {
            name: _rule(body, f"{where}: [freshness.types.{name}]") for name, body in types.items()
        }
        default = _rule(freshness, f"{where}: [freshness]")
        try:
            return cls(
                rules=rules,
                default=default,
                k=int(retrieval.get("k", 5)),
                min_score=float(retrieval.get("min_score", 0.2)),
                min_score_by_embedder={str(k): float(v) for k, v in by_embedder.items()},
                source_types={str(k): str(v) for k, v in sources.items()},
            )
        except (TypeError, ValueError, ConfigError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc


def parse_duration(value: object, *, where: str = "duration") -> float:
    """Seconds in ``value``: a number of seconds or a string such as ``"30d"``.

    Raises:
        ConfigError: ``value`` is not a positive duration.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a duration such as '30d', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ConfigError(f"{where}: expected a duration such as '30d', got {value!r}")
        seconds = float(match[1]) * _UNITS[match[2]]
    if seconds <= 0:
        raise ConfigError(f"{where}: a duration must be positive, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """A short human form: ``45s``, ``12m``, ``5.0h``, ``3.2d``."""
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _rule(body: Mapping[str, Any], where: str) -> FreshnessRule:
    _only(body, {"max_age", "on_stale"}, where)
    max_age = body.get("max_age")
    on_stale = str(body.get("on_stale", StaleAction.EXCLUDE))
    if on_stale not in set(StaleAction):
        raise ConfigError(f"{where}: on_stale must be 'exclude' or 'flag', got {on_stale!r}")
    return FreshnessRule(
        max_age_s=None if max_age is None else parse_duration(max_age, where=f"{where} max_age"),
        on_stale=StaleAction(on_stale),
    )


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: '{key}' must be a table")
    return value


def _only(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
