"""Tool failures for the failure scenario: a gateway whose upstream drops some calls."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from agentmesh.errors import TransientError
from agentmesh.tools import ToolGateway

if TYPE_CHECKING:
    import random
    from collections.abc import Mapping

    from langchain_core.tools import BaseTool

__all__ = ["FlakyToolGateway"]


class FlakyToolGateway(ToolGateway):
    """A `ToolGateway` where each permitted call attempt fails with probability ``rate``.

    A failed attempt raises `TransientError` before the tool runs (the tool's
    service answered 503), so the run's retry policy and breakers see it as they
    would see a real outage, and the tool has no side effect. Thread-safe.

    Args:
        rate: Probability that one attempt fails (0 never, 1 always).
        rng: Random source (seed it for reproducible runs).

    Attributes:
        injected: Attempts failed so far.
    """

    def __init__(self, *, rate: float, rng: random.Random) -> None:
        super().__init__()
        self.rate = rate
        self.injected = 0
        self._rng = rng
        self._lock = threading.Lock()

    def execute(
        self,
        name: str,
        args: Mapping[str, Any],
        *,
        agent: str,
        allowed: Mapping[str, BaseTool],
        run_id: str | None = None,
    ) -> Any:
        """Fail this attempt with probability ``rate``, else run the tool."""
        if name in allowed:
            with self._lock:
                fail = self._rng.random() < self.rate
                self.injected += fail
            if fail:
                raise TransientError(
                    f"tool '{name}': upstream answered 503 (injected)", target=f"tool:{name}"
                )
        return super().execute(name, args, agent=agent, allowed=allowed, run_id=run_id)
