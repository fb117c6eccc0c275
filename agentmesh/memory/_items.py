"""What external memory holds: items with provenance, and a summary of each source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["MemoryItem", "SourceInfo", "summarize_sources"]


class MemoryItem(BaseModel):
    """One retrievable chunk of knowledge and where it came from.

    Attributes:
        id: Stable id: ``<source>#<anchor>`` (a section slug or a record key).
        text: The chunk's text, as embedded and returned to agents.
        source: The source it was read from, e.g. ``memory/vendors.json``.
        data_type: What kind of knowledge it is (``vendor_master``, ``fx_rates``, ...);
            the freshness policy sets a maximum age per data type.
        ingested_at: Epoch seconds when the content was last read from its source
            (re-ingesting an unchanged source re-stamps it).
        source_version: Content hash of the source when it was read.
        expires_at: Epoch seconds after which the content is no longer valid, if the
            source says so.
        title: A human-readable heading for the chunk (document and section).
    """

    model_config = ConfigDict(frozen=True)

    id: str
    text: str
    source: str
    data_type: str
    ingested_at: float
    source_version: str
    expires_at: float | None = None
    title: str = Field(default="")

    def age_s(self, now: float) -> float:
        """Seconds since the item was ingested (never negative)."""
        return max(0.0, now - self.ingested_at)


@dataclass(frozen=True, kw_only=True)
class SourceInfo:
    """What a store holds for one source.

    Attributes:
        source: The source name.
        version: Content hash of the indexed version.
        data_type: The data type of its items.
        chunks: How many items it has in the store.
        ingested_at: When it was last ingested (epoch seconds).
        expires_at: The earliest expiry among its items, if any.
    """

    source: str
    version: str
    data_type: str
    chunks: int
    ingested_at: float
    expires_at: float | None = None


def summarize_sources(items: Iterable[MemoryItem]) -> dict[str, SourceInfo]:
    """Group items by source into :class:`SourceInfo` records."""
    grouped: dict[str, list[MemoryItem]] = {}
    for item in items:
        grouped.setdefault(item.source, []).append(item)
    infos = {}
    for source, group in grouped.items():
        expiries = [i.expires_at for i in group if i.expires_at is not None]
        newest = max(group, key=lambda i: i.ingested_at)
        infos[source] = SourceInfo(
            source=source,
            version=newest.source_version,
            data_type=newest.data_type,
            chunks=len(group),
            ingested_at=newest.ingested_at,
            expires_at=min(expiries) if expiries else None,
        )
    return infos
