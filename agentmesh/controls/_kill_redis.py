"""The Redis kill switch store: switches shared by a fleet, seen within ``ttl_s``."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from agentmesh.controls._kill_records import UNSEEN, KillRecord, parse_records
from agentmesh.errors import ConfigError, MissingExtraError, TransientError

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

__all__ = ["RedisKillStore"]

_log = logging.getLogger("agentmesh.controls.killswitch")


class RedisKillStore:
    """Switches in Redis, for a fleet: a hash of switches and a version counter.

    Every write bumps the counter in the same transaction. Reads fetch counter and
    hash together and keep them for ``ttl_s``, so :meth:`version` is a clock read
    on most checks and **a switch is seen at most ``ttl_s`` after it is set**
    (plus one network round trip). If Redis cannot be reached, checks keep the
    last state they saw (logged as a warning) and try again after ``retry_s``, so
    an outage stalls a check at most once per ``retry_s`` by the socket timeout
    (1 s for a URL); writes and listings raise
    :class:`~agentmesh.errors.TransientError`.

    Args:
        url_or_client: A ``redis://`` URL or a ``redis.Redis`` client.
        prefix: Key prefix; the store uses ``<prefix>:switches`` and ``<prefix>:version``.
        ttl_s: How long a fetched state is reused by checks.
        retry_s: How long checks keep the last state after Redis could not be reached.
        clock: Monotonic clock (seconds).

    Raises:
        MissingExtraError: The ``redis`` package is not installed.
    """

    def __init__(
        self,
        url_or_client: str | Any,
        *,
        prefix: str = "agentmesh:kill",
        ttl_s: float = 0.05,
        retry_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = _redis_client(url_or_client, feature="The Redis kill switch")
        self._switches = f"{prefix}:switches"
        self._counter = f"{prefix}:version"
        self.ttl_s = ttl_s
        self.retry_s = retry_s
        self._clock = clock
        self._fetching = threading.Lock()
        # (fresh until, version, switches), replaced as a whole so readers need no lock.
        self._state: tuple[float, Hashable, dict[str, KillRecord]] = (float("-inf"), UNSEEN, {})
        self._retry_at = float("-inf")

    def version(self) -> Hashable:
        """Return the counter as last fetched, fetching again when older than ``ttl_s``."""
        fresh_until, token, _ = self._state
        now = self._clock()
        if now < fresh_until or now < self._retry_at:
            return token
        if not self._fetching.acquire(blocking=False):
            return token  # another thread is fetching: its answer is at most one round trip away
        try:
            return self._fetch(strict=False)[0]
        finally:
            self._fetching.release()

    def active(self) -> dict[str, KillRecord]:
        """Return the switches, as fetched within the last ``ttl_s``.

        Raises:
            TransientError: Redis cannot be reached.
        """
        fresh_until, _, records = self._state
        if self._clock() < fresh_until:
            return dict(records)
        with self._fetching:
            return dict(self._fetch(strict=True)[1])

    def set(self, scope: str, reason: str, at: float) -> None:
        """Set (or replace) the switch for ``scope``.

        Raises:
            TransientError: Redis cannot be reached.
        """
        value = json.dumps({"reason": reason, "at": at})
        self._write(lambda pipe: pipe.hset(self._switches, scope, value))

    def clear(self, scope: str) -> bool:
        """Lift the switch for ``scope``; return whether it was set.

        Raises:
            TransientError: Redis cannot be reached.
        """
        return bool(self._write(lambda pipe: pipe.hdel(self._switches, scope)))

    def _write(self, change: Callable[[Any], object]) -> object:
        from redis.exceptions import RedisError

        try:
            with self._redis.pipeline(transaction=True) as pipe:
                change(pipe)
                pipe.incr(self._counter)
                result = pipe.execute()[0]
        except RedisError as exc:
            raise TransientError(
                f"kill switch store unreachable: {exc}", target=self._counter
            ) from exc
        _, token, records = self._state
        self._state = (float("-inf"), token, records)  # this process sees its own write at once
        return result

    def _fetch(self, *, strict: bool) -> tuple[Hashable, dict[str, KillRecord]]:
        from redis.exceptions import RedisError

        started = self._clock()
        fresh_until, token, records = self._state
        if started < fresh_until:  # fetched by another thread while this one waited
            return token, records
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(self._counter).hgetall(self._switches)
                counter, raw = pipe.execute()
        except RedisError as exc:
            if strict:
                raise TransientError(
                    f"kill switch store unreachable: {exc}", target=self._counter
                ) from exc
            _log.warning("kill switch store unreachable, keeping the last state: %s", exc)
            self._retry_at = self._clock() + self.retry_s
            return token, records
        token, records = _decode(counter), _records(raw, where=self._switches)
        # Counted from when the fetch started: the data is at least that fresh.
        self._state = (started + self.ttl_s, token, records)
        return token, records


def _decode(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _records(raw: dict[Any, Any], *, where: str) -> dict[str, KillRecord]:
    try:
        switches = {_decode(scope): json.loads(data) for scope, data in raw.items()}
    except ValueError as exc:
        raise ConfigError(f"{where}: not a kill switch hash ({exc})") from exc
    return {r.scope: r for r in parse_records(json.dumps({"switches": switches}), where=where)}


def _redis_client(url_or_client: str | Any, *, feature: str) -> Any:
    try:
        import redis
    except ImportError as exc:
        raise MissingExtraError(feature, "redis", "redis") from exc
    if isinstance(url_or_client, str):
        return redis.Redis.from_url(url_or_client, socket_timeout=1.0, socket_connect_timeout=1.0)
    return url_or_client
