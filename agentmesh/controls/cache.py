"""Response cache: a model's answer reused for the same model, prompt and parameters.

:func:`cache_key` hashes what a provider sees; :func:`dump_message` and
:func:`load_message` turn an ``AIMessage`` into the JSON text a
:class:`ResponseCache` stores. Backends: :class:`MemoryCache` (default, one
process), :class:`SQLiteCache` (one machine) and :class:`RedisCache` (a fleet).

A cache is an optimisation, never a point of failure: backends log an
unreachable store and answer as a miss.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from langchain_core.messages import AIMessage, messages_from_dict, messages_to_dict
from pydantic import BaseModel

from agentmesh.errors import ConfigError, MissingExtraError

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Mapping, Sequence

    from langchain_core.messages import BaseMessage

__all__ = [
    # keys and values
    "cache_key",
    "dump_message",
    "load_message",
    # backends
    "ResponseCache",
    "MemoryCache",
    "SQLiteCache",
    "RedisCache",
    "build_response_cache",
]

_log = logging.getLogger(__name__)

_KEY_FORMAT = 1


@runtime_checkable
class ResponseCache(Protocol):
    """Where cached answers live. Implementations are thread-safe.

    ``get`` and ``set`` never raise because the store is unreachable: they log
    it, and ``get`` answers ``None`` (a miss).
    """

    def get(self, key: str) -> str | None:
        """Return the value stored under ``key``, or ``None`` if absent or expired."""
        ...

    def set(self, key: str, value: str, ttl_s: float | None) -> None:
        """Store ``value`` under ``key`` for ``ttl_s`` seconds (``None``: no expiry)."""
        ...


# -- keys and values -----------------------------------------------------------------------


def cache_key(model: str, messages: Sequence[BaseMessage], params: Mapping[str, Any]) -> str:
    """Return a stable SHA-256 hex key for one model request.

    The key covers what a provider sees: each message's type, content, name,
    tool calls, tool call id and extra fields. Message ids and response or
    usage metadata are left out, and tool call ids are renumbered in order of
    first appearance, because providers mint them at random.

    Args:
        model: The model reference, e.g. ``openai:gpt-4o-mini``.
        messages: The prompt.
        params: Request parameters (temperature, tools, output schema...). Values
            must be JSON data, pydantic models or pydantic model classes.

    Raises:
        ConfigError: A parameter value cannot be put into a key.
    """
    ids: dict[str, str] = {}
    payload = {
        "format": _KEY_FORMAT,
        "model": model,
        "messages": [_canonical(m, ids) for m in messages],
        "params": dict(params),
    }
    text = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _canonical(message: BaseMessage, ids: dict[str, str]) -> dict[str, Any]:
    def renumber(call_id: object) -> object:
        if not isinstance(call_id, str):
            return call_id
        return ids.setdefault(call_id, f"call_{len(ids)}")

    data: dict[str, Any] = {
        "type": message.type,
        "content": message.content,
        "name": message.name,
        "extra": {k: v for k, v in message.additional_kwargs.items() if k != "tool_calls"},
    }
    calls = getattr(message, "tool_calls", None)
    if calls:
        data["tool_calls"] = [
            {"name": c["name"], "args": c["args"], "id": renumber(c.get("id"))} for c in calls
        ]
    call_id = getattr(message, "tool_call_id", None)
    if call_id is not None:
        data["tool_call_id"] = renumber(call_id)
    return data


def _jsonable(value: object) -> object:
    if isinstance(value, type) and issubclass(value, BaseModel):
        return {"pydantic_model": value.__name__, "schema": value.model_json_schema()}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise ConfigError(f"cannot build a cache key from a parameter of type {type(value).__name__}")


def dump_message(message: AIMessage) -> str:
    """Serialize ``message`` (content, tool calls, metadata) to JSON text for a cache."""
    return json.dumps(messages_to_dict([message])[0], ensure_ascii=False)


def load_message(text: str | bytes) -> AIMessage | None:
    """Rebuild the message :func:`dump_message` wrote; ``None`` if ``text`` is not one.

    An unreadable entry (another version's format, a foreign value) is a miss, not an error.
    """
    try:
        message = messages_from_dict([json.loads(text)])[0]
    except (ValueError, KeyError, TypeError):
        return None
    return message if isinstance(message, AIMessage) else None


def _check_ttl(ttl_s: float | None) -> None:
    if ttl_s is not None and not ttl_s > 0:
        raise ConfigError(f"cache ttl_s must be positive or None, not {ttl_s!r}")


# -- backends ------------------------------------------------------------------------------


class MemoryCache:
    """In-process cache: least recently used entries go first, and entries expire.

    Args:
        max_items: The most entries kept.
        clock: Monotonic clock (seconds).
    """

    def __init__(
        self, *, max_items: int = 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_items < 1:
            raise ConfigError(f"MemoryCache max_items must be at least 1, not {max_items}")
        self.max_items = max_items
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[str, float | None]] = OrderedDict()

    def get(self, key: str) -> str | None:
        """Return the value under ``key``, or ``None`` if absent or expired."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            value, expires = entry
            if expires is not None and self._clock() >= expires:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def set(self, key: str, value: str, ttl_s: float | None) -> None:
        """Store ``value`` for ``ttl_s`` seconds, evicting the least recently used."""
        _check_ttl(ttl_s)
        expires = None if ttl_s is None else self._clock() + ttl_s
        with self._lock:
            self._entries[key] = (value, expires)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_items:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class SQLiteCache:
    """Cache in one SQLite file, shared by the threads and processes of one machine.

    Expiry is checked on every read; expired rows are deleted when read and
    every ``purge_every`` writes.

    Args:
        path: The database file; its folder is created.
        clock: Wall clock (seconds since the epoch), shared by every process.
        purge_every: Writes between two purges of expired rows.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        purge_every: int = 256,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._purge_every = purge_every
        self._writes = 0
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False)
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses "
                "(key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL)"
            )

    def get(self, key: str) -> str | None:
        """Return the value under ``key``, or ``None`` if absent, expired or unreadable."""
        now = self._clock()
        try:
            with self._lock, self._db:
                row = self._db.execute(
                    "SELECT value, expires_at FROM responses WHERE key = ?", (key,)
                ).fetchone()
                if row is None:
                    return None
                if row[1] is not None and row[1] <= now:
                    self._db.execute(
                        "DELETE FROM responses WHERE key = ? AND expires_at <= ?", (key, now)
                    )
                    return None
                return str(row[0])
        except sqlite3.Error as exc:
            _log.warning("response cache %s unreadable, answering a miss: %s", self.path, exc)
            return None

    def set(self, key: str, value: str, ttl_s: float | None) -> None:
        """Store ``value`` for ``ttl_s`` seconds."""
        _check_ttl(ttl_s)
        now = self._clock()
        expires = None if ttl_s is None else now + ttl_s
        try:
            with self._lock, self._db:
                self._db.execute(
                    "INSERT OR REPLACE INTO responses (key, value, expires_at) VALUES (?, ?, ?)",
                    (key, value, expires),
                )
                self._writes += 1
                if self._writes % self._purge_every == 0:
                    self._db.execute("DELETE FROM responses WHERE expires_at <= ?", (now,))
        except sqlite3.Error as exc:
            _log.warning("response cache %s unwritable, entry dropped: %s", self.path, exc)

    def purge(self) -> int:
        """Delete every expired row now; return how many there were."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "DELETE FROM responses WHERE expires_at <= ?", (self._clock(),)
            )
            return cursor.rowcount

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()


class RedisCache:
    """Cache in Redis, shared by a fleet; Redis expires entries itself (``SET PX``).

    Args:
        url_or_client: A ``redis://`` URL or a ``redis.Redis`` client.
        prefix: Key prefix; entries are stored as ``<prefix>:<key>``.

    Raises:
        MissingExtraError: The ``redis`` package is not installed.
    """

    def __init__(self, url_or_client: str | Any, *, prefix: str = "agentmesh:cache") -> None:
        self._redis = _redis_client(url_or_client)
        self._prefix = prefix

    def get(self, key: str) -> str | None:
        """Return the value under ``key``, or ``None`` if absent, expired or unreachable."""
        from redis.exceptions import RedisError

        try:
            value = self._redis.get(f"{self._prefix}:{key}")
        except RedisError as exc:
            _log.warning("response cache unreachable, answering a miss: %s", exc)
            return None
        if value is None:
            return None
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    def set(self, key: str, value: str, ttl_s: float | None) -> None:
        """Store ``value`` for ``ttl_s`` seconds (rounded up to the millisecond)."""
        from redis.exceptions import RedisError

        _check_ttl(ttl_s)
        px = None if ttl_s is None else max(1, math.ceil(ttl_s * 1000))
        try:
            self._redis.set(f"{self._prefix}:{key}", value, px=px)
        except RedisError as exc:
            _log.warning("response cache unreachable, entry dropped: %s", exc)


def _redis_client(url_or_client: str | Any) -> Any:
    try:
        import redis
    except ImportError as exc:
        raise MissingExtraError("The Redis response cache", "redis", "redis") from exc
    if isinstance(url_or_client, str):
        return redis.Redis.from_url(url_or_client, socket_timeout=1.0, socket_connect_timeout=1.0)
    return url_or_client


def build_response_cache(spec: str | None, *, data_dir: Path) -> ResponseCache | None:
    """Build the cache a setting names.

    Args:
        spec: ``None``, ``""`` or ``"off"``: no cache; ``"memory"``; ``"sqlite"``
            (``<data_dir>/response_cache.sqlite``); a ``redis://`` URL.
        data_dir: The data folder.

    Raises:
        ConfigError: ``spec`` names no backend.
    """
    if not spec or spec == "off":
        return None
    if spec == "memory":
        return MemoryCache()
    if spec == "sqlite":
        return SQLiteCache(data_dir / "response_cache.sqlite")
    if spec.startswith(("redis://", "rediss://", "unix://")):
        return RedisCache(spec)
    raise ConfigError(f"response cache {spec!r}: expected off, memory, sqlite or a redis:// URL")
