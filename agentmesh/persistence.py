"""Checkpointers: persistent SQLite in the project data folder by default,
in-memory, or PostgreSQL by configuration."""

from __future__ import annotations

import sqlite3
import threading
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.memory import InMemorySaver

from agentmesh.errors import ConfigError, MissingExtraError

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver

    from agentmesh.settings import Settings

__all__ = ["build_checkpointer"]

_cache: dict[str, BaseCheckpointSaver[Any]] = {}
_lock = threading.Lock()


def build_checkpointer(settings: Settings) -> BaseCheckpointSaver[Any]:
    """The checkpointer named by ``settings.checkpointer``, opened once per process.

    ``sqlite`` (default) keeps checkpoints in ``<data_dir>/checkpoints.sqlite``;
    ``memory`` keeps them in this process; a ``postgresql://`` URL uses Postgres
    (``pip install 'agentmesh[postgres]'``).
    """
    spec = settings.checkpointer
    key = f"{spec}|{settings.data_dir.resolve()}" if spec == "sqlite" else spec
    with _lock:
        if key not in _cache:
            _cache[key] = _open(spec, settings)
        return _cache[key]


def _open(spec: str, settings: Settings) -> BaseCheckpointSaver[Any]:
    if spec == "memory":
        return InMemorySaver()
    if spec == "sqlite":
        from langgraph.checkpoint.sqlite import SqliteSaver

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(settings.data_dir / "checkpoints.sqlite", check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        saver = SqliteSaver(conn)
        saver.setup()
        return saver
    if spec.startswith(("postgres://", "postgresql://")):
        return _postgres(spec)
    raise ConfigError(
        f"AGENTMESH_CHECKPOINTER={spec!r}: expected 'sqlite', 'memory' or a postgresql:// URL"
    )


def _postgres(url: str) -> BaseCheckpointSaver[Any]:
    try:
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg import Connection
        from psycopg.rows import dict_row
    except ImportError as exc:
        raise MissingExtraError(
            "PostgreSQL checkpoints", "postgres", "langgraph-checkpoint-postgres"
        ) from exc
    conn = Connection.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row)
    saver = PostgresSaver(conn)
    saver.setup()
    return saver
