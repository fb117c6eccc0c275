"""The per-run context (tracer, tool gateway, settings) and span recording.

Span parenting follows the envelopes, not the call stack: a role's span id is
its task id, so a child's span names ``task.parent_id`` as its parent even when
LangGraph runs the two in different nodes, threads or processes.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentmesh.messages import new_id
from agentmesh.settings import Settings
from agentmesh.tracing._base import NullTracer, SpanKind, SpanRecord, Tracer

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agentmesh._runtime.guard import RunGuard
    from agentmesh.tools import ToolGateway


@dataclass(kw_only=True)
class RunContext:
    """Services shared by every node of one run."""

    settings: Settings
    tracer: Tracer
    gateway: ToolGateway
    run_id: str | None = None
    notes: list[str] = field(default_factory=list)
    guard: RunGuard | None = None


_current: ContextVar[RunContext | None] = ContextVar("agentmesh_run", default=None)
_span_parent: ContextVar[str | None] = ContextVar("agentmesh_span", default=None)
_default: RunContext | None = None


def default_context() -> RunContext:
    """The process-wide context used when a graph runs outside ``agentmesh.run``.

    That is the case when LangGraph's own server invokes a compiled graph.
    """
    global _default
    settings = Settings.from_env()  # the same object while the environment is unchanged
    found = _default
    if found is None or found.settings is not settings:
        from agentmesh.tools import ToolGateway
        from agentmesh.tracing import build_tracer

        found = RunContext(settings=settings, tracer=build_tracer(settings), gateway=ToolGateway())
        _default = found
    return found


def current_context() -> RunContext:
    """The context of the run executing in this thread."""
    return _current.get() or default_context()


@contextmanager
def use_context(ctx: RunContext) -> Iterator[RunContext]:
    """Make ``ctx`` the current run context for the enclosed block."""
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


@contextmanager
def parent_span(span_id: str) -> Iterator[None]:
    """Make ``span_id`` the parent of spans opened in the enclosed block."""
    token = _span_parent.set(span_id)
    try:
        yield
    finally:
        _span_parent.reset(token)


@dataclass(kw_only=True)
class OpenSpan:
    """A span being measured; fill ``output``/``attributes`` before it closes."""

    span_id: str
    output: Any = None
    status: str = "ok"
    error: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@contextmanager
def span(
    kind: SpanKind,
    name: str,
    *,
    run_id: str | None,
    input: Any = None,
    span_id: str | None = None,
    parent_id: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> Iterator[OpenSpan]:
    """Measure the enclosed block and hand the finished span to the run's tracer."""
    if isinstance(current_context().tracer, NullTracer):
        # Tracing is off: nothing to time, parent or record on the hot path.
        yield OpenSpan(
            span_id=span_id or "", attributes=attributes if attributes is not None else {}
        )
        return
    # The caller's dict is kept (not copied) so it can add attributes it only
    # knows once the block has run (tokens, cost, status).
    opened = OpenSpan(
        span_id=span_id or new_id(), attributes=attributes if attributes is not None else {}
    )
    parent = parent_id if parent_id is not None else _span_parent.get()
    start = time.time()
    token = _span_parent.set(opened.span_id)
    try:
        yield opened
    except BaseException as exc:
        opened.status, opened.error = "error", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        _span_parent.reset(token)
        record_span(
            SpanRecord(
                span_id=opened.span_id,
                parent_id=parent,
                run_id=run_id or "unknown",
                kind=kind,
                name=name,
                start=start,
                end=time.time(),
                input=input,
                output=opened.output,
                status=opened.status,
                error=opened.error,
                attributes=opened.attributes,
            )
        )


def tracing() -> bool:
    """Whether the current run records spans (skip building them when it does not)."""
    return not isinstance(current_context().tracer, NullTracer)


def record_span(record: SpanRecord) -> None:
    """Send a finished span to the current tracer; tracing never fails a run."""
    tracer = current_context().tracer
    if isinstance(tracer, NullTracer):
        return
    try:
        tracer.record(record)
    except Exception:
        return
