"""A tracer that sends finished spans to Langfuse through the official Langfuse SDK.

Why exit stays bounded: the SDK registers ``atexit`` hooks that flush without a time
limit (its resource manager's ``shutdown``; the OpenTelemetry provider's ``shutdown``,
which joins the batch exporter for up to 30 s), and each export to a dead endpoint
retries until the exporter timeout (5 s by default). So the tracer gives the SDK a
private provider created with ``shutdown_on_exit=False``, unregisters the SDK's hook,
and registers its own, which runs first (``atexit`` is LIFO) and runs the SDK's flush in
a daemon thread that it stops waiting for after ``flush_timeout_s``. Abandoned daemon
threads do not hold up interpreter exit, so no SDK timeout bounds any wait of ours.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Final

from agentmesh.errors import ConfigError, MissingExtraError
from agentmesh.tracing._base import SpanKind, SpanRecord

if TYPE_CHECKING:
    from collections.abc import Callable

    from langfuse import Langfuse
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    from agentmesh.settings import Settings

__all__ = ["LangfuseTracer"]

_log = logging.getLogger(__name__)

_STOP: Final = object()
_DEFAULT_BASE_URL: Final = "https://cloud.langfuse.com"
# The SDK's baggage key for "this trace already has its application root"
# (langfuse._client.propagation). Children carry it: their parents are never live spans
# here, and without it the SDK would mark every child as a root of the trace.
_ROOT_CLAIM_KEY: Final = "langfuse_trace_id"
_RECORD_FIELDS: Final = ("status", "error", "run_id", "span_id", "parent_id")


class _NextIds:
    # Only the worker thread starts spans on the private provider, so it can set the
    # ids of the next span just before starting it.
    trace_id: int = 0
    span_id: int = 0


def _preset_id_generator(ids: _NextIds) -> IdGenerator:
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    class _Preset(IdGenerator):
        def generate_span_id(self) -> int:
            return ids.span_id

        def generate_trace_id(self) -> int:
            return ids.trace_id

    return _Preset()


def _span_id(key: str) -> int:
    # Derived like the SDK's seeded observation ids. A parent's id follows from its
    # record id alone, so children can be sent before their parent has finished.
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") or 1


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _fields(span: SpanRecord) -> dict[str, Any]:
    """Keyword arguments for the SDK observation class of ``span``."""
    failed = span.error is not None or span.status == "error"
    metadata = {**span.attributes, "kind": str(span.kind)}
    metadata.update((name, getattr(span, name)) for name in _RECORD_FIELDS)
    fields: dict[str, Any] = {
        "input": span.input,
        "output": span.output,
        "metadata": metadata,
        "level": "ERROR" if failed else (None if span.status == "ok" else "WARNING"),
        "status_message": span.error,
    }
    if span.kind is SpanKind.MODEL:
        attrs = span.attributes
        tokens = {key: _number(attrs.get(f"{key}_tokens")) for key in ("input", "output")}
        usage = {key: int(n) for key, n in tokens.items() if n is not None}
        if len(usage) == 2:
            usage["total"] = usage["input"] + usage["output"]
        cost = _number(attrs.get("cost_usd"))
        fields["model"] = None if attrs.get("model") is None else str(attrs["model"])
        fields["usage_details"] = usage or None
        fields["cost_details"] = None if cost is None else {"total": cost}
    return fields


def _quietly(*steps: Callable[[], object]) -> None:
    for step in steps:
        try:
            step()
        except Exception:
            _log.debug("Langfuse SDK call failed", exc_info=True)


def _start_daemon(target: Callable[[], None], name: str) -> threading.Thread | None:
    thread = threading.Thread(target=target, name=name, daemon=True)
    try:
        thread.start()
    except RuntimeError:  # Python may refuse new threads late in interpreter shutdown.
        return None
    return thread


class LangfuseTracer:
    """Sends agentmesh spans to Langfuse; never blocks or fails the run.

    ``record`` only enqueues. A daemon worker turns each record into a Langfuse
    observation with the record's own ids and times: ``MODEL`` spans become
    generations (model, token usage, cost), ``TOOL`` spans tool observations, the rest
    spans. All spans of one ``run_id`` form one trace whose id is derived from it.

    Attributes:
        dropped: Records never handed to the SDK: the queue was full, the tracer was
            shut down, or the SDK rejected the record.
    """

    def __init__(
        self,
        *,
        public_key: str,
        secret_key: str,
        base_url: str,
        flush_timeout_s: float = 0.5,
        max_queue: int = 10_000,
    ) -> None:
        """Create a dedicated Langfuse client and start the worker.

        Args:
            public_key: Langfuse public key.
            secret_key: Langfuse secret key.
            base_url: Langfuse server URL.
            flush_timeout_s: Default wait of ``flush``/``shutdown``, and the wait at exit.
            max_queue: Records held before new ones are dropped.

        Raises:
            MissingExtraError: The ``langfuse`` package is not installed.
        """
        try:
            from langfuse import Langfuse
            from langfuse._client.resource_manager import LangfuseResourceManager
            from opentelemetry.sdk.trace import TracerProvider
        except ImportError as exc:
            raise MissingExtraError("Langfuse tracing", "langfuse", "langfuse") from exc

        self.dropped = 0
        self._flush_timeout_s = flush_timeout_s
        self._max_queue = max_queue
        # Unbounded so control items never block; record() enforces max_queue.
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._flusher: threading.Thread | None = None
        self._ids = _NextIds()
        self._provider: TracerProvider = TracerProvider(
            id_generator=_preset_id_generator(self._ids), shutdown_on_exit=False
        )
        # The SDK keeps one resource manager per public key and hands it to every later
        # client, ignoring its base_url and tracer_provider. Building ours while the slot
        # is empty, then restoring the slot, keeps this client dedicated, and a tracer
        # created after another one shut down does not inherit a dead manager.
        with LangfuseResourceManager._lock:
            previous = LangfuseResourceManager._instances.pop(public_key, None)
            try:
                self._client: Langfuse = Langfuse(
                    public_key=public_key,
                    secret_key=secret_key,
                    base_url=base_url,
                    tracer_provider=self._provider,
                )
            finally:
                LangfuseResourceManager._instances.pop(public_key, None)
                if previous is not None:
                    LangfuseResourceManager._instances[public_key] = previous
        if self._client._resources is not None:
            atexit.unregister(self._client._resources.shutdown)
        self._worker = threading.Thread(target=self._work, name="agentmesh-langfuse", daemon=True)
        self._worker.start()
        atexit.register(self._shutdown_at_exit)

    @classmethod
    def from_settings(cls, settings: Settings) -> LangfuseTracer:
        """Build a tracer from ``settings``.

        Args:
            settings: Runtime settings with both Langfuse keys set.

        Returns:
            A tracer for the configured server (Langfuse Cloud when no URL is set).

        Raises:
            ConfigError: A Langfuse key is missing.
            MissingExtraError: The ``langfuse`` package is not installed.
        """
        if not (settings.langfuse_public_key and settings.langfuse_secret_key):
            raise ConfigError("Langfuse tracing needs LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY")
        return cls(
            public_key=settings.langfuse_public_key,
            secret_key=settings.langfuse_secret_key,
            base_url=settings.langfuse_base_url or _DEFAULT_BASE_URL,
            flush_timeout_s=settings.trace_flush_timeout_s,
        )

    def record(self, span: SpanRecord) -> None:
        """Queue one finished span; drop it (counted in ``dropped``) if the queue is full."""
        try:
            if self._closed or self._queue.qsize() >= self._max_queue:
                with self._lock:
                    self.dropped += 1
            else:
                self._queue.put(span)
        except Exception:
            _log.debug("could not queue a span", exc_info=True)

    def flush(self, timeout: float | None = None) -> None:
        """Send what is queued, waiting at most ``timeout`` seconds.

        Args:
            timeout: Longest wait in seconds; ``None`` means ``flush_timeout_s``.
        """
        if self._closed:
            return
        deadline = self._deadline(timeout)
        drained = threading.Event()
        self._queue.put(drained)
        drained.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            # One SDK flush at a time, so flushes against a hanging endpoint do not
            # pile up blocked threads.
            if self._flusher is None or not self._flusher.is_alive():
                flush = self._client.flush
                self._flusher = _start_daemon(lambda: _quietly(flush), "agentmesh-langfuse-flush")
            flusher = self._flusher
        if flusher is not None:
            flusher.join(max(0.0, deadline - time.monotonic()))

    def shutdown(self, timeout: float | None = None) -> None:
        """Flush and stop, waiting at most ``timeout`` seconds; later records are dropped.

        Args:
            timeout: Longest wait in seconds; ``None`` means ``flush_timeout_s``.
        """
        deadline = self._deadline(timeout)
        with self._lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self._shutdown_at_exit)
        self._queue.put(_STOP)
        self._worker.join(max(0.0, deadline - time.monotonic()))
        flushed = threading.Event()
        client, resources = self._client, self._client._resources

        def close() -> None:
            _quietly(client.flush)
            flushed.set()
            # Stopping the SDK's threads can take a second; nobody waits for it.
            _quietly(client.shutdown, self._provider.shutdown)
            if resources is not None:
                _quietly(resources.prompt_cache._task_manager.shutdown)

        if _start_daemon(close, "agentmesh-langfuse-shutdown") is not None:
            flushed.wait(max(0.0, deadline - time.monotonic()))

    def _shutdown_at_exit(self) -> None:
        self.shutdown(self._flush_timeout_s)

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self._flush_timeout_s if timeout is None else timeout)

    def _work(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            if isinstance(item, threading.Event):
                item.set()
            elif isinstance(item, SpanRecord):
                try:
                    self._emit(item)
                except Exception:
                    _log.debug("Langfuse rejected span %s", item.span_id, exc_info=True)
                    with self._lock:
                        self.dropped += 1

    def _emit(self, span: SpanRecord) -> None:
        from langfuse import LangfuseGeneration, LangfuseSpan, LangfuseTool
        from opentelemetry import baggage, context, trace

        fields = _fields(span)
        trace_id = int(self._client.create_trace_id(seed=span.run_id), 16)
        ctx = context.Context()  # empty, so a span without parent_id starts the trace
        if span.parent_id is not None:
            sampled = trace.TraceFlags(trace.TraceFlags.SAMPLED)
            parent = trace.SpanContext(trace_id, _span_id(span.parent_id), False, sampled)
            ctx = trace.set_span_in_context(trace.NonRecordingSpan(parent), ctx)
            ctx = baggage.set_baggage(_ROOT_CLAIM_KEY, f"{trace_id:032x}", ctx)
        observation: type[LangfuseSpan | LangfuseGeneration | LangfuseTool] = {
            SpanKind.MODEL: LangfuseGeneration,
            SpanKind.TOOL: LangfuseTool,
        }.get(span.kind, LangfuseSpan)
        self._ids.trace_id, self._ids.span_id = trace_id, _span_id(span.span_id)
        otel_span = self._client._otel_tracer.start_span(
            span.name, context=ctx, start_time=round(span.start * 1e9)
        )
        try:
            observation(otel_span=otel_span, langfuse_client=self._client, **fields)
        finally:
            otel_span.end(end_time=round(span.end * 1e9))
