"""A tracer that sends finished spans to Langfuse through the official Langfuse SDK.

Why exit stays bounded: the SDK registers ``atexit`` hooks that flush without a time
limit (its resource manager's ``shutdown``; the OpenTelemetry provider's ``shutdown``,
which joins the batch exporter for up to 30 s), and every export against a dead endpoint
retries until the exporter timeout (5 s by default). So the tracer gives the SDK a
private provider created with ``shutdown_on_exit=False``, unregisters the SDK's hook,
and registers its own, which runs first (``atexit`` is LIFO) and does the SDK's flush in
a daemon thread it stops waiting for after ``flush_timeout_s``. Abandoned daemon threads
do not hold up interpreter exit, so the exporter timeout never bounds anything of ours.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Final, Literal

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
# Baggage key the SDK uses to say "this trace already has its application root"
# (langfuse._client.propagation). Children carry it so that only the run's root span is
# marked as the trace's root, although its parent is never a live span here.
_ROOT_CLAIM_KEY: Final = "langfuse_trace_id"


class _NextIds:
    """The ids the next OpenTelemetry span receives.

    Only the worker thread starts spans on the tracer's private provider, so setting
    these just before ``start_span`` is race free.
    """

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
    # Same derivation as the SDK's observation ids from a seed: a parent's id is known
    # from its name alone, so children can be sent before their parent finishes.
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") or 1


def _ns(epoch_s: float) -> int:
    return round(epoch_s * 1_000_000_000)


def _level(span: SpanRecord) -> Literal["ERROR", "WARNING"] | None:
    if span.error is not None or span.status == "error":
        return "ERROR"
    return None if span.status == "ok" else "WARNING"


def _metadata(span: SpanRecord) -> dict[str, Any]:
    return {
        **span.attributes,
        "kind": str(span.kind),
        "status": span.status,
        "error": span.error,
        "run_id": span.run_id,
        "span_id": span.span_id,
        "parent_id": span.parent_id,
    }


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _generation(span: SpanRecord) -> dict[str, Any]:
    attrs = span.attributes
    usage = {
        key: int(n)
        for key, attr in (("input", "input_tokens"), ("output", "output_tokens"))
        if (n := _number(attrs.get(attr))) is not None
    }
    if len(usage) == 2:
        usage["total"] = usage["input"] + usage["output"]
    cost = _number(attrs.get("cost_usd"))
    return {
        "model": None if attrs.get("model") is None else str(attrs["model"]),
        "usage_details": usage or None,
        "cost_details": None if cost is None else {"total": cost},
    }


def _start_daemon(target: Callable[[], None], name: str) -> threading.Thread | None:
    thread = threading.Thread(target=target, name=name, daemon=True)
    try:
        thread.start()
    except RuntimeError:  # Python refuses new threads late in interpreter shutdown.
        return None
    return thread


class LangfuseTracer:
    """Sends agentmesh spans to Langfuse; never blocks or fails the run.

    ``record`` only enqueues. A daemon worker turns each record into a Langfuse
    observation with the record's own ids and times: ``MODEL`` spans become
    generations (model, token usage, cost), ``TOOL`` spans tool observations, the rest
    spans. All spans of one ``run_id`` form one trace whose id is derived from it.

    Attributes:
        dropped: Records not handed to the SDK: queue full, tracer shut down, or a
            record the SDK could not take.
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
        """Create the Langfuse client and start the worker.

        Args:
            public_key: Langfuse public key.
            secret_key: Langfuse secret key.
            base_url: Langfuse server URL.
            flush_timeout_s: Default wait for ``flush``/``shutdown`` and at process exit.
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
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._flusher: threading.Thread | None = None
        self._ids = _NextIds()
        # A private provider: no global OpenTelemetry state, and no OTel atexit hook.
        self._provider: TracerProvider = TracerProvider(
            id_generator=_preset_id_generator(self._ids), shutdown_on_exit=False
        )
        # The SDK keeps one resource manager per public key and hands it to every later
        # client, ignoring base_url and tracer_provider. Construct ours with the registry
        # slot empty and give the slot back, so this client is dedicated and a tracer
        # created after this one shut down does not inherit a dead manager.
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
            A tracer for the configured Langfuse server (Langfuse Cloud by default).

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
                self._count_drop()
            else:
                self._queue.put(span)
        except Exception:
            _log.debug("dropped a span", exc_info=True)

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
            # One SDK flush at a time: against a hanging endpoint, repeated flushes
            # must not pile up blocked threads.
            if self._flusher is None or not self._flusher.is_alive():
                self._flusher = _start_daemon(self._sdk_flush, "agentmesh-langfuse-flush")
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

        def close() -> None:
            try:
                self._client.flush()
            except Exception:
                _log.debug("Langfuse flush failed", exc_info=True)
            flushed.set()
            try:  # Stops the SDK's threads; may take a second, nobody waits for it.
                self._client.shutdown()
                self._provider.shutdown()
                if self._client._resources is not None:
                    self._client._resources.prompt_cache._task_manager.shutdown()
            except Exception:
                _log.debug("Langfuse shutdown failed", exc_info=True)

        if _start_daemon(close, "agentmesh-langfuse-shutdown") is not None:
            flushed.wait(max(0.0, deadline - time.monotonic()))

    def _shutdown_at_exit(self) -> None:
        self.shutdown(self._flush_timeout_s)

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self._flush_timeout_s if timeout is None else timeout)

    def _count_drop(self) -> None:
        with self._lock:
            self.dropped += 1

    def _sdk_flush(self) -> None:
        try:
            self._client.flush()
        except Exception:
            _log.debug("Langfuse flush failed", exc_info=True)

    def _work(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            if isinstance(item, threading.Event):
                item.set()
            elif isinstance(item, SpanRecord):
                try:
                    self._emit(item)
                except Exception:
                    _log.debug("could not convert span %s", item.span_id, exc_info=True)
                    self._count_drop()

    def _emit(self, span: SpanRecord) -> None:
        from langfuse import LangfuseGeneration, LangfuseSpan, LangfuseTool
        from opentelemetry import baggage, context, trace

        trace_id = int(self._client.create_trace_id(seed=span.run_id), 16)
        ctx = context.Context()  # empty: a span without parent_id starts the trace
        if span.parent_id is not None:
            parent = trace.SpanContext(
                trace_id=trace_id,
                span_id=_span_id(span.parent_id),
                is_remote=False,
                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
            )
            ctx = trace.set_span_in_context(trace.NonRecordingSpan(parent), ctx)
            ctx = baggage.set_baggage(_ROOT_CLAIM_KEY, f"{trace_id:032x}", ctx)
        fields: dict[str, Any] = {
            "langfuse_client": self._client,
            "input": span.input,
            "output": span.output,
            "metadata": _metadata(span),
            "level": _level(span),
            "status_message": span.error,
        }
        observation: type[LangfuseSpan | LangfuseGeneration | LangfuseTool] = LangfuseSpan
        if span.kind is SpanKind.MODEL:
            observation = LangfuseGeneration
            fields.update(_generation(span))
        elif span.kind is SpanKind.TOOL:
            observation = LangfuseTool
        self._ids.trace_id, self._ids.span_id = trace_id, _span_id(span.span_id)
        otel_span = self._client._otel_tracer.start_span(
            span.name, context=ctx, start_time=_ns(span.start)
        )
        try:
            observation(otel_span=otel_span, **fields)
        finally:
            otel_span.end(end_time=_ns(span.end))
