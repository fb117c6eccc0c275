"""The store-level item filter: which data types, ingested since when, live at what time.

Every :class:`~agentmesh.memory.MemoryStore` applies an :class:`ItemFilter` inside its
query (the Chroma store turns it into a ``where`` filter on numeric timestamps).
:meth:`ItemFilter.matches` is the reference meaning every backend must agree with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from agentmesh.memory._items import MemoryItem

__all__ = ["ItemFilter", "Window"]


@dataclass(frozen=True, kw_only=True)
class Window:
    """Time bounds an item must meet.

    Attributes:
        ingested_since: Keep only items ingested at or after this epoch second.
        live_at: Keep only items that have not expired at this epoch second
            (items without an expiry always qualify).
    """

    ingested_since: float | None = None
    live_at: float | None = None

    @property
    def unbounded(self) -> bool:
        """Whether the window lets every item through."""
        return self.ingested_since is None and self.live_at is None

    def admits(self, item: MemoryItem) -> bool:
        """Whether ``item`` falls inside the window."""
        return self.admits_stamps(item.ingested_at, item.expires_at)

    def admits_stamps(self, ingested_at: float, expires_at: float | None) -> bool:
        """Whether an item with these timestamps falls inside the window."""
        if self.ingested_since is not None and ingested_at < self.ingested_since:
            return False
        return not (
            self.live_at is not None and expires_at is not None and expires_at <= self.live_at
        )


@dataclass(frozen=True, kw_only=True)
class ItemFilter:
    """Which items a query may return.

    Attributes:
        types: Data types named explicitly, each with its own window.
        others: The window for every data type not in ``types``; ``None`` excludes them.
    """

    types: Mapping[str, Window] = field(default_factory=dict)
    others: Window | None = Window()

    def __post_init__(self) -> None:
        object.__setattr__(self, "types", MappingProxyType(dict(self.types)))

    @property
    def admits_all(self) -> bool:
        """Whether the filter lets every item through (so a backend may skip it)."""
        return (
            self.others is not None
            and self.others.unbounded
            and all(w.unbounded for w in self.types.values())
        )

    @property
    def admits_none(self) -> bool:
        """Whether no item can pass (no data type is admitted)."""
        return self.others is None and not self.types

    def matches(self, item: MemoryItem) -> bool:
        """Whether ``item`` passes the filter."""
        return self.matches_fields(item.data_type, item.ingested_at, item.expires_at)

    def matches_fields(self, data_type: str, ingested_at: float, expires_at: float | None) -> bool:
        """Whether an item with these fields passes (checks a row before an item is built)."""
        window = self.types.get(data_type, self.others)
        return window is not None and window.admits_stamps(ingested_at, expires_at)
