"""Kill switch: stop every run, one workflow's runs or one agent's runs before their next step.

A switch is set for a *scope*: ``"all"``, ``"workflow:NAME"`` or ``"agent:NAME"``.
The runtime calls :meth:`KillSwitch.check` at every node boundary; when a switch
covering the run is set it raises :class:`~agentmesh.errors.RunKilledError`, the run
ends ``killed``, and it can be resumed once the switch is cleared.

State is shared across processes through a :class:`KillStore`:

- :class:`FileKillStore` (default): a JSON file in the data folder, replaced
  atomically. A check is one ``stat()`` while nothing changes, and a switch set
  by any process on the same machine is seen by the very next check.
- :class:`RedisKillStore`: for fleets. A check reads a local copy that is at
  most ``ttl_s`` old (default 50 ms), so a switch is seen within ``ttl_s``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from agentmesh.errors import ConfigError, MissingExtraError, RunKilledError, TransientError

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterator, Sequence

    from agentmesh.settings import Settings

__all__ = [
    # switch
    "KillSwitch",
    "KillRecord",
    "kill_scope",
    # stores
    "KillStore",
    "FileKillStore",
    "RedisKillStore",
]

_log = logging.getLogger(__name__)

ALL = "all"
_FILE_NAME = "kill_switch.json"
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True, kw_only=True)
class KillRecord:
    """One switch that is set.

    Attributes:
        scope: ``"all"``, ``"workflow:NAME"`` or ``"agent:NAME"``.
        reason: Why it was set, as given by whoever set it.
        at: When it was set, in seconds since the epoch.
    """

    scope: str
    reason: str
    at: float


@runtime_checkable
class KillStore(Protocol):
    """Where switches live, shared by every process that must obey them.

    Implementations must be safe to use from several threads and processes.
    """

    def set(self, scope: str, reason: str, at: float) -> None:
        """Set (or replace) the switch for ``scope``."""
        ...

    def clear(self, scope: str) -> bool:
        """Lift the switch for ``scope``; return whether it was set."""
        ...

    def active(self) -> dict[str, KillRecord]:
        """Return the switches that are set, by scope."""
        ...

    def version(self) -> Hashable:
        """Return a cheap token that changes whenever the switches change.

        It is called at every node of every run, so it must cost microseconds.
        A token read *before* :meth:`active` never hides a later change.
        """
        ...


def kill_scope(*, all: bool = False, workflow: str | None = None, agent: str | None = None) -> str:
    """Return the scope string for exactly one of ``all``, ``workflow`` or ``agent``.

    Raises:
        ConfigError: None or several were given, or a name is blank.
    """
    chosen = [flag for flag in (all, workflow is not None, agent is not None) if flag]
    if len(chosen) != 1:
        raise ConfigError("a kill switch covers exactly one of: all, workflow=NAME, agent=NAME")
    if all:
        return ALL
    kind, name = ("workflow", workflow) if workflow is not None else ("agent", agent)
    if name is None or not name.strip():
        raise ConfigError(f"a kill switch for one {kind} needs its name")
    return f"{kind}:{name.strip()}"


class KillSwitch:
    """Sets, lifts and checks kill switches; thread-safe.

    Args:
        store: Where switches live. Default: a :class:`FileKillStore` in the
            data folder (``AGENTMESH_DATA_DIR``).
        clock: Wall clock for the time a switch is set.
    """

    def __init__(self, store: KillStore | None = None, *, clock: Callable[[], float] = time.time):
        if store is None:
            from agentmesh.settings import Settings

            store = FileKillStore(Settings.from_env().data_dir / _FILE_NAME)
        self.store = store
        self._clock = clock
        self._seen: tuple[Hashable, dict[str, KillRecord]] = (_UNSEEN, {})

    @classmethod
    def from_settings(cls, settings: Settings, *, url: str | None = None) -> KillSwitch:
        """Build the switch a deployment shares.

        Args:
            settings: Runtime settings; the file store lives in ``settings.data_dir``.
            url: ``redis://...`` (or ``rediss://``, ``unix://``) for a fleet-wide
                store; ``None`` or ``""`` for the local file. Defaults to
                ``settings.kill_switch`` when settings carry that field.

        Raises:
            ConfigError: ``url`` is neither empty nor a Redis URL.
        """
        if url is None:
            configured = getattr(settings, "kill_switch", None)
            url = configured if isinstance(configured, str) else None
        if not url:
            return cls(FileKillStore(settings.data_dir / _FILE_NAME))
        if url.startswith(_REDIS_SCHEMES):
            return cls(RedisKillStore(url))
        raise ConfigError(f"kill switch store {url!r}: expected a redis:// URL or nothing")

    def kill(
        self,
        *,
        all: bool = False,
        workflow: str | None = None,
        agent: str | None = None,
        reason: str,
    ) -> str:
        """Set a switch for exactly one scope and return the scope string.

        Raises:
            ConfigError: The scope is not exactly one of ``all``, ``workflow``, ``agent``.
        """
        scope = kill_scope(all=all, workflow=workflow, agent=agent)
        self.store.set(scope, reason, self._clock())
        return scope

    def clear(
        self, *, all: bool = False, workflow: str | None = None, agent: str | None = None
    ) -> bool:
        """Lift the switch for exactly one scope; return whether it was set."""
        return self.store.clear(kill_scope(all=all, workflow=workflow, agent=agent))

    def active(self) -> list[KillRecord]:
        """Return the switches that are set, oldest first."""
        return sorted(self.store.active().values(), key=lambda r: (r.at, r.scope))

    def check(
        self,
        *,
        workflow: str | None,
        agent: str | None = None,
        agents: Sequence[str] = (),
        run_id: str | None = None,
    ) -> None:
        """Raise if a switch covers this step; costs microseconds when nothing changed.

        Scopes are checked broadest first: ``all``, then the workflow, then the agent
        (and each of ``agents``: the roles above the step, so killing a lead stops
        the specialists it runs).

        Raises:
            RunKilledError: A switch covering ``workflow`` or ``agent`` is set.
        """
        token = self.store.version()
        seen, records = self._seen
        if token != seen:
            # The token is read before the records, so a change racing this read
            # shows up as a new token on the next check instead of being missed.
            records = self.store.active()
            self._seen = (token, records)
        if not records:
            return
        for scope in _covering(workflow, agent, agents):
            record = records.get(scope)
            if record is not None:
                raise RunKilledError(
                    f"kill switch '{scope}' is set: {record.reason}",
                    scope=scope,
                    reason=record.reason,
                    run_id=run_id,
                )


class _Unseen:
    """A version no store returns, so the first check always reads the records."""


_UNSEEN = _Unseen()


def _covering(workflow: str | None, agent: str | None, agents: Sequence[str]) -> Iterator[str]:
    yield ALL
    if workflow is not None:
        yield f"workflow:{workflow}"
    if agent is not None:
        yield f"agent:{agent}"
    for name in agents:
        yield f"agent:{name}"


# -- file store ----------------------------------------------------------------------------


class FileKillStore:
    """Switches in one JSON file, for the processes of one machine.

    Writers take an exclusive ``flock`` on ``<path>.lock``, write a temporary file
    and ``os.replace`` it, so readers never see a half-written file. Each write
    gives the file a strictly later modification time, so ``(inode, mtime_ns,
    size)`` from one ``stat()`` is a version that changes on every write. Needs a
    local file system that keeps nanosecond times (ext4, XFS, btrfs, APFS, tmpfs);
    on network file systems attribute caching delays checks: use Redis there.

    Args:
        path: The JSON file; its folder is created on the first write.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._stat_path = str(self.path)  # stat() on a str skips the Path conversion per check
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    def version(self) -> Hashable:
        """Return ``(inode, mtime_ns, size)`` of the file, or ``None`` when there is none."""
        try:
            st = os.stat(self._stat_path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def active(self) -> dict[str, KillRecord]:
        """Return the switches in the file.

        Raises:
            ConfigError: The file is not one this store wrote.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        return {r.scope: r for r in _parse(text, where=str(self.path))}

    def set(self, scope: str, reason: str, at: float) -> None:
        """Set (or replace) the switch for ``scope``."""
        with self._locked():
            records = self.active()
            records[scope] = KillRecord(scope=scope, reason=reason, at=at)
            self._write(records)

    def clear(self, scope: str) -> bool:
        """Lift the switch for ``scope``; return whether it was set."""
        with self._locked():
            records = self.active()
            if records.pop(scope, None) is None:
                return False
            self._write(records)
            return True

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if sys.platform == "win32":  # pragma: no cover - POSIX only
            raise ConfigError("FileKillStore needs POSIX file locks; use RedisKillStore")
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, records: dict[str, KillRecord]) -> None:
        previous = self.version()
        body = json.dumps(
            {"switches": {s: {"reason": r.reason, "at": r.at} for s, r in records.items()}},
            indent=2,
            sort_keys=True,
        )
        fd, tmp = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(body + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)  # readable by runs under other accounts, like the file it replaces
            # The kernel's file clock ticks every few milliseconds and inodes are
            # reused, so two quick writes could leave the same (inode, mtime, size).
            mtime = time.time_ns()
            if isinstance(previous, tuple):
                mtime = max(mtime, previous[1] + 1)
            os.utime(tmp, ns=(mtime, mtime))
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _parse(text: str, *, where: str) -> list[KillRecord]:
    try:
        switches = json.loads(text)["switches"]
        return [
            KillRecord(scope=scope, reason=str(data["reason"]), at=float(data["at"]))
            for scope, data in switches.items()
        ]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{where}: not a kill switch file ({exc})") from exc


# -- Redis store ---------------------------------------------------------------------------


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
        self._state: tuple[float, Hashable, dict[str, KillRecord]] = (float("-inf"), _UNSEEN, {})
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
    return {r.scope: r for r in _parse(json.dumps({"switches": switches}), where=where)}


def _redis_client(url_or_client: str | Any, *, feature: str) -> Any:
    try:
        import redis
    except ImportError as exc:
        raise MissingExtraError(feature, "redis", "redis") from exc
    if isinstance(url_or_client, str):
        return redis.Redis.from_url(url_or_client, socket_timeout=1.0, socket_connect_timeout=1.0)
    return url_or_client
