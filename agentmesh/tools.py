"""The tool gateway: agents propose tool calls, one gateway executes them.

Keeping execution in one place is what lets permissions, rate limits and the
audit trail be enforced once instead of in every agent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.tools import BaseTool
from langchain_core.tools import tool as as_tool
from langgraph.errors import GraphBubbleUp

from agentmesh._runtime.context import span
from agentmesh.controls.classify import classify
from agentmesh.errors import RunStopped, ToolError, ToolPermissionError
from agentmesh.tracing._base import SpanKind

__all__ = ["ToolCallRecord", "ToolGateway", "to_tool"]

ToolLike = BaseTool | Callable[..., Any]


def to_tool(obj: ToolLike) -> BaseTool:
    """A LangChain tool from a tool or a plain typed, documented function."""
    return obj if isinstance(obj, BaseTool) else as_tool(obj)


@dataclass(frozen=True, kw_only=True)
class ToolCallRecord:
    """One executed (or refused) tool call, kept by the gateway."""

    agent: str
    tool: str
    args: Mapping[str, Any]
    ok: bool
    latency_s: float
    error: str | None = None


class ToolGateway:
    """Executes every tool call of a run.

    The gateway checks that the calling agent declared the tool, runs it,
    traces it, and keeps a record of the call.
    """

    def __init__(self, tools: Iterable[ToolLike] = ()) -> None:
        self._tools: dict[str, BaseTool] = {}
        self.calls: list[ToolCallRecord] = []
        for t in tools:
            self.register(t)

    def register(self, tool: ToolLike) -> BaseTool:
        """Make ``tool`` executable through this gateway; returns it as a BaseTool."""
        converted = to_tool(tool)
        self._tools[converted.name] = converted
        return converted

    def execute(
        self,
        name: str,
        args: Mapping[str, Any],
        *,
        agent: str,
        allowed: Mapping[str, BaseTool],
        run_id: str | None = None,
    ) -> Any:
        """Run tool ``name`` with ``args`` on behalf of ``agent``.

        Args:
            name: The tool the agent proposed.
            args: Its arguments.
            agent: The proposing agent.
            allowed: The tools the agent declared (least privilege).
            run_id: The run, for tracing.

        Raises:
            ToolPermissionError: ``agent`` did not declare ``name``.
            TransientError: The tool failed in a way worth retrying.
            ToolError: The tool raised.
        """
        started = time.perf_counter()
        tool = allowed.get(name)
        if tool is None:
            self._remember(agent, name, args, started, error="not permitted")
            permitted = sorted(allowed) or "none"
            raise ToolPermissionError(
                f"agent '{agent}' may not call tool '{name}' (allowed: {permitted})",
                tool=name,
                agent=agent,
            )
        with span(
            SpanKind.TOOL, name, run_id=run_id, input=dict(args), attributes={"agent": agent}
        ) as sp:
            try:
                result = tool.invoke(dict(args))
            except (GraphBubbleUp, RunStopped):
                raise  # interrupts and run stops are control flow, not tool failures
            except Exception as exc:
                self._remember(agent, name, args, started, error=str(exc))
                transient = classify(exc, target=f"tool:{name}")
                if transient is exc:
                    raise
                if transient is not None:
                    # Worth retrying (timeout, dropped connection, 5xx): say so, so
                    # the run's retry policy and the tool's breaker see it.
                    raise transient from exc
                raise ToolError(
                    f"tool '{name}' failed: {exc}", tool=name, agent=agent, details={"args": args}
                ) from exc
            sp.output = result
        self._remember(agent, name, args, started)
        return result

    def _remember(
        self,
        agent: str,
        name: str,
        args: Mapping[str, Any],
        started: float,
        error: str | None = None,
    ) -> None:
        self.calls.append(
            ToolCallRecord(
                agent=agent,
                tool=name,
                args=dict(args),
                ok=error is None,
                latency_s=time.perf_counter() - started,
                error=error,
            )
        )
