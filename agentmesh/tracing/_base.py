"""The tracer extension point: a span record and the protocol every tracer meets."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

__all__ = ["NullTracer", "SpanKind", "SpanRecord", "Tracer"]


class SpanKind(StrEnum):
    """What a span measures."""

    RUN = "run"
    ROLE = "role"
    GATE = "gate"
    RESOLUTION = "resolution"
    MODEL = "model"
    TOOL = "tool"
    RETRIEVAL = "retrieval"


@dataclass(kw_only=True)
class SpanRecord:
    """One finished span. Times are epoch seconds.

    ``attributes`` carries the agent metadata a reader filters on: ``agent``,
    ``role``, ``layer``, ``model``, ``input_tokens``, ``output_tokens``,
    ``cost_usd``, ``confidence``, ``gate_action`` and so on.
    """

    span_id: str
    parent_id: str | None
    run_id: str
    kind: SpanKind
    name: str
    start: float
    end: float
    input: Any = None
    output: Any = None
    status: str = "ok"
    error: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Tracer(Protocol):
    """Receives finished spans.

    Implementations must never block the caller for I/O and never raise:
    tracing must not slow or fail a run.
    """

    def record(self, span: SpanRecord) -> None:
        """Accept one finished span (queue it; do not send it inline)."""
        ...

    def flush(self, timeout: float = 1.0) -> None:
        """Send what is queued, waiting at most ``timeout`` seconds."""
        ...

    def shutdown(self, timeout: float = 1.0) -> None:
        """Flush and stop, waiting at most ``timeout`` seconds."""
        ...


class NullTracer:
    """A tracer that drops everything (used when no tracing is configured)."""

    def record(self, span: SpanRecord) -> None:
        """Drop the span."""

    def flush(self, timeout: float = 1.0) -> None:
        """Nothing to flush."""

    def shutdown(self, timeout: float = 1.0) -> None:
        """Nothing to stop."""
