"""A tracer that keeps every span in memory, and a guard against real network use."""

from __future__ import annotations

import ipaddress
import socket
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agentmesh.tracing._base import SpanKind, SpanRecord

__all__ = ["NetworkBlockedError", "RecordingTracer", "block_network"]


class RecordingTracer:
    """Keeps finished spans in ``spans`` (thread-safe)."""

    def __init__(self) -> None:
        self.spans: list[SpanRecord] = []
        self._lock = threading.Lock()

    def record(self, span: SpanRecord) -> None:
        """Keep the span."""
        with self._lock:
            self.spans.append(span)

    def flush(self, timeout: float = 1.0) -> None:
        """Nothing to send."""

    def shutdown(self, timeout: float = 1.0) -> None:
        """Nothing to stop."""

    def of_kind(self, kind: SpanKind) -> list[SpanRecord]:
        """Spans of one kind, in the order they finished."""
        return [s for s in self.spans if s.kind is kind]

    def named(self, name: str) -> list[SpanRecord]:
        """Spans with this name."""
        return [s for s in self.spans if s.name == name]


class NetworkBlockedError(RuntimeError):
    """A test tried to reach an address outside this machine."""


def _is_local(address: Any) -> bool:
    if isinstance(address, str):  # AF_UNIX socket path
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@contextmanager
def block_network() -> Iterator[None]:
    """Fail any connection to a non-loopback address (so no test reaches a real model)."""
    original = socket.socket.connect
    original_ex = socket.socket.connect_ex

    def guarded(self: socket.socket, address: Any) -> Any:
        if not _is_local(address):
            raise NetworkBlockedError(f"test tried to reach {address!r}: only 127.0.0.1 is allowed")
        return original(self, address)

    def guarded_ex(self: socket.socket, address: Any) -> Any:
        if not _is_local(address):
            raise NetworkBlockedError(f"test tried to reach {address!r}: only 127.0.0.1 is allowed")
        return original_ex(self, address)

    socket.socket.connect = guarded  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = guarded_ex  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]
        socket.socket.connect_ex = original_ex  # type: ignore[method-assign]
