"""Kill switch: stop every run, one workflow's runs or one agent's runs before their next step.

A switch is set for a *scope*: ``"all"``, ``"workflow:NAME"`` or ``"agent:NAME"``.
The runtime calls :meth:`KillSwitch.check` at every node boundary; when a switch
covering the run is set it raises :class:`~agentmesh.errors.RunKilledError`, the run
ends ``killed``, and it can be resumed once the switch is cleared.

State is shared across processes through a :class:`KillStore`:

- :class:`FileKillStore` (default): a JSON file in the data folder, replaced
  atomically, and a write counter that readers map into memory. A check makes
  no system call while nothing changes, and a switch set by any process on the
  same machine is seen by the very next check.
- :class:`RedisKillStore`: for fleets. A check reads a local copy that is at
  most ``ttl_s`` old (default 50 ms), so a switch is seen within ``ttl_s``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from agentmesh.controls._kill_file import FileKillStore
from agentmesh.controls._kill_records import ALL, UNSEEN, KillRecord, KillStore
from agentmesh.controls._kill_redis import RedisKillStore
from agentmesh.errors import ConfigError, RunKilledError

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

_FILE_NAME = "kill_switch.json"
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


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
        self._seen: tuple[Hashable, dict[str, KillRecord]] = (UNSEEN, {})

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


def _covering(workflow: str | None, agent: str | None, agents: Sequence[str]) -> Iterator[str]:
    yield ALL
    if workflow is not None:
        yield f"workflow:{workflow}"
    if agent is not None:
        yield f"agent:{agent}"
    for name in agents:
        yield f"agent:{name}"
