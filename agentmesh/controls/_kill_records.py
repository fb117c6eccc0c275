"""What a kill switch store holds and promises: records, the store protocol, the file format."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from agentmesh.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Hashable

__all__ = ["ALL", "UNSEEN", "KillRecord", "KillStore", "parse_records"]

ALL = "all"


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


class _Unseen:
    """A version no store returns, so the first check always reads the records."""


UNSEEN = _Unseen()


def parse_records(text: str, *, where: str) -> list[KillRecord]:
    try:
        switches = json.loads(text)["switches"]
        return [
            KillRecord(scope=scope, reason=str(data["reason"]), at=float(data["at"]))
            for scope, data in switches.items()
        ]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{where}: not a kill switch file ({exc})") from exc
