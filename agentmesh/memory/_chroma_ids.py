"""Chroma row ids that carry the fields a freshness filter reads and name the row's content.

A Chroma query that returns only ids and distances costs about the same for 5 rows
as for 40, while every row whose metadata or document it returns costs about as much
again as a sixth of the whole query (measured at 100,000 items: 1.8-1.9 ms for ids
and distances, plus 60-80 microseconds per row read back). A freshness-filtered query
looks at more candidates than it returns, so the fields the filter needs (data type,
ingestion time, expiry) are written into each row's id, next to the item's own id:

    <item id> US <data type> US <ingested_at> US <expires_at or empty> US <digest>

(``US`` is the ASCII unit separator, ``\\x1f``; the digest covers the text, source,
version and title). Candidates are checked on their ids and only the kept rows are
read back (see :mod:`agentmesh.memory._row_cache`). The id is what Chroma stores, so
every process and client sees the same fields; a write that changes anything about an
item (a re-ingest, a re-stamp) gives its row a new id and removes the old one. The
same fields stay in the row's metadata for Chroma ``where`` filters; metadata edited
by hand, outside :class:`~agentmesh.memory.ChromaStore`, is not seen by planned
queries.

Timestamps are kept to the millisecond (:func:`stamp`) in both places: Chroma's
metadata does not give every float back exactly (measured: about 1 in 8 came back one
unit in the last place off), and a row whose id and metadata disagreed at a window's
edge would pass one kind of query and fail the other. A millisecond timestamp has 13
significant digits, which any conversion to 15 or more digits gives back unchanged.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Final, NamedTuple

from agentmesh.errors import ConfigError

if TYPE_CHECKING:
    from agentmesh.memory._items import MemoryItem

__all__ = ["ID_SCHEME", "ID_SCHEME_KEY", "RowFields", "row_fields", "row_id", "stamp"]

ID_SCHEME_KEY: Final = "agentmesh:row_ids"
"""Collection metadata key naming the row-id scheme its rows follow."""
ID_SCHEME: Final = "fields-digest-1"
_SEP: Final = "\x1f"
_DIGEST: Final = 20  # hex digits: 80 bits


class RowFields(NamedTuple):
    """What a row id says about its item."""

    item_id: str
    data_type: str
    ingested_at: float
    expires_at: float | None
    digest: str


def stamp(seconds: float) -> float:
    """``seconds`` to the millisecond, as Chroma rows keep timestamps."""
    return round(float(seconds), 3)


def row_id(item: MemoryItem) -> str:
    """The Chroma id of ``item``'s row.

    Raises:
        ConfigError: The data type contains the separator (``\\x1f``).
    """
    if _SEP in item.data_type:
        raise ConfigError(f"item {item.id!r}: data_type must not contain the unit separator \\x1f")
    expires = "" if item.expires_at is None else repr(stamp(item.expires_at))
    content = _SEP.join((item.text, item.source, item.source_version, item.title))
    digest = hashlib.sha256(content.encode()).hexdigest()[:_DIGEST]
    return _SEP.join((item.id, item.data_type, repr(stamp(item.ingested_at)), expires, digest))


def row_fields(rid: str) -> RowFields | None:
    """The fields in a row id, or ``None`` for an id not written by :func:`row_id`."""
    parts = rid.rsplit(_SEP, 4)
    if len(parts) != 5 or len(parts[4]) != _DIGEST:
        return None
    item_id, data_type, ingested, expires, digest = parts
    try:
        return RowFields(
            item_id, data_type, float(ingested), float(expires) if expires else None, digest
        )
    except ValueError:
        return None
