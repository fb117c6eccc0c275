"""Tracing: every run, role, gate, model call and tool call becomes a span.

With ``LANGFUSE_*`` settings present spans go to Langfuse through the official
SDK; otherwise they are dropped. A tracer never blocks or fails a run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentmesh.tracing._base import NullTracer, SpanKind, SpanRecord, Tracer

if TYPE_CHECKING:
    from agentmesh.settings import Settings
    from agentmesh.tracing.langfuse import LangfuseTracer

__all__ = ["LangfuseTracer", "NullTracer", "SpanKind", "SpanRecord", "Tracer", "build_tracer"]

_tracers: dict[tuple[str | None, ...], Tracer] = {}


def build_tracer(settings: Settings) -> Tracer:
    """The tracer for ``settings``: Langfuse when configured, else a null tracer.

    One tracer is kept per Langfuse configuration so every run in a process
    shares its background sender.
    """
    if not settings.tracing_enabled:
        return NullTracer()
    key = (settings.langfuse_public_key, settings.langfuse_secret_key, settings.langfuse_base_url)
    if key not in _tracers:
        from agentmesh.tracing.langfuse import LangfuseTracer

        _tracers[key] = LangfuseTracer.from_settings(settings)
    return _tracers[key]


def __getattr__(name: str) -> object:
    if name == "LangfuseTracer":
        from agentmesh.tracing.langfuse import LangfuseTracer

        return LangfuseTracer
    raise AttributeError(name)
