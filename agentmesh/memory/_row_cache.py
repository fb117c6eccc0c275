"""A content-addressed copy of Chroma rows, so a filtered query reads ids only from Chroma.

Every call into Chroma's embedded engine costs about 0.45 ms before it does any work
(measured: a ``get`` of one id by primary key), and every row whose document and
metadata a query returns costs 25-80 microseconds more. A filtered query looks at more
candidates than it returns, so it asks Chroma for ids and distances only and reads the
kept rows from here: a SQLite table of the items, keyed by row id.

Why a copy cannot be stale: a row id names the row's content. It carries the item id,
the filter fields and a digest of the text, source, version and title
(:func:`agentmesh.memory._chroma_ids.row_id`), so any change to an item gives its row
a new id, and an id found here always has this content. A row Chroma returns that is
not here (written by a store without this copy, say another client of a Chroma
server) is read from Chroma and kept. Rows removed from Chroma are removed here too;
one left behind (removed by another tool) is never asked for, since only ids Chroma
has just returned are looked up.

The table lives in the embedded Chroma folder (``agentmesh-rows.sqlite3``), in WAL
mode, so every process using the folder shares it.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import TYPE_CHECKING, Final

from agentmesh.memory._items import MemoryItem

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

__all__ = ["FILE_NAME", "RowCache"]

FILE_NAME: Final = "agentmesh-rows.sqlite3"
_COLUMNS: Final = (
    "row_id, item_id, text, source, data_type, ingested_at, source_version, expires_at, title"
)
_CHUNK: Final = 500  # ids per statement (SQLite's variable limit is 32,766)


class RowCache:
    """Items by Chroma row id, in a SQLite file (thread-safe, shared between processes)."""

    def __init__(self, path: Path, *, collection: str) -> None:
        """Open (or create) the table of ``collection``'s rows in the file at ``path``."""
        self.path = path
        self._table = '"rows_' + collection.replace('"', '""') + '"'
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30.0)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} (row_id TEXT PRIMARY KEY, "
                "item_id TEXT, text TEXT, source TEXT, data_type TEXT, ingested_at REAL, "
                "source_version TEXT, expires_at REAL, title TEXT) WITHOUT ROWID"
            )
            self._db.commit()

    def get(self, row_ids: Sequence[str]) -> dict[str, MemoryItem]:
        """The items of those ``row_ids`` this copy has."""
        found: dict[str, MemoryItem] = {}
        with self._lock:
            for start in range(0, len(row_ids), _CHUNK):
                chunk = row_ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                cursor = self._db.execute(
                    f"SELECT {_COLUMNS} FROM {self._table} WHERE row_id IN ({marks})", chunk
                )
                for rid, *fields in cursor:
                    found[rid] = _item(fields)
        return found

    def put(self, rows: Mapping[str, MemoryItem]) -> None:
        """Keep ``rows`` (row id to item)."""
        if not rows:
            return
        values = [
            (
                rid,
                i.id,
                i.text,
                i.source,
                i.data_type,
                i.ingested_at,
                i.source_version,
                i.expires_at,
                i.title,
            )
            for rid, i in rows.items()
        ]
        with self._lock, self._db:
            self._db.executemany(
                f"INSERT OR REPLACE INTO {self._table} ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                values,
            )

    def delete(self, row_ids: Iterable[str]) -> None:
        """Forget ``row_ids``."""
        ids = list(row_ids)
        with self._lock, self._db:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                self._db.execute(f"DELETE FROM {self._table} WHERE row_id IN ({marks})", chunk)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()


def _item(fields: list[object]) -> MemoryItem:
    item_id, text, source, data_type, ingested_at, version, expires_at, title = fields
    return MemoryItem(
        id=item_id,
        text=text,
        source=source,
        data_type=data_type,
        ingested_at=ingested_at,
        source_version=version,
        expires_at=expires_at,
        title=title,
    )
