"""Alerts about spend, and the sinks that deliver them.

An :class:`Alert` is a small value; an :class:`AlertSink` is anything with
``send(alert)``. Sinks shipped here: :class:`LogSink` (the ``logging``
module), :class:`CallbackSink` (a plain function) and :class:`WebhookSink`
(an HTTP POST of the alert as JSON). :func:`fanout` sends to several sinks and
keeps one failing sink from stopping the others or the run.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["Alert", "AlertSink", "CallbackSink", "LogSink", "WebhookSink", "fanout"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Alert:
    """Something about spend that a person should know.

    Attributes:
        kind: ``"period_threshold"``, ``"period_exhausted"`` or ``"cost_deviation"``.
        scope: What it is about: ``"period:day"``, ``"agent:intake"``, ...
        message: One line for a human.
        value: The measured figure: the fraction of a cap used, or a run's
            cost as a multiple of its baseline.
        at: Unix time the alert was raised.
        details: Extra figures (cap, spent, baseline, ...), JSON-serializable.
    """

    kind: str
    scope: str
    message: str
    value: float
    at: float = field(default_factory=time.time)
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The alert as plain JSON-ready data."""
        data = asdict(self)
        data["details"] = dict(self.details)
        return data


@runtime_checkable
class AlertSink(Protocol):
    """Where alerts go. ``send`` should return quickly; it runs on the run's thread."""

    def send(self, alert: Alert) -> None:
        """Deliver one alert."""
        ...


@dataclass(frozen=True, kw_only=True)
class LogSink:
    """Writes each alert to a logger (``agentmesh.alerts`` by default) at ``level``."""

    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("agentmesh.alerts"))
    level: int = logging.WARNING

    def send(self, alert: Alert) -> None:
        """Log the alert's message with its kind and scope."""
        self.logger.log(
            self.level,
            "[%s] %s: %s",
            alert.kind,
            alert.scope,
            alert.message,
            extra={"alert": alert},
        )


@dataclass(frozen=True)
class CallbackSink:
    """Calls ``fn(alert)`` for each alert."""

    fn: Callable[[Alert], object]

    def send(self, alert: Alert) -> None:
        """Pass the alert to the function."""
        self.fn(alert)


@dataclass(frozen=True, kw_only=True)
class WebhookSink:
    """POSTs each alert as a JSON object to ``url``.

    Delivery is best effort: a refused connection, a timeout or an error status
    is logged and the alert dropped; it never raises into the run.

    Attributes:
        url: The endpoint (``http://`` or ``https://``).
        timeout_s: The longest one delivery may block the run.
        headers: Extra request headers, e.g. an authorization token.
    """

    url: str
    timeout_s: float = 2.0
    headers: Mapping[str, str] = field(default_factory=dict)

    def send(self, alert: Alert) -> None:
        """Deliver the alert, or log why it could not be delivered."""
        body = json.dumps(alert.to_dict(), default=str).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", **self.headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
        except Exception as exc:
            logger.warning("alert webhook %s failed, alert dropped: %s", self.url, exc)


@dataclass(frozen=True)
class _Fanout:
    sinks: tuple[AlertSink, ...]

    def send(self, alert: Alert) -> None:
        for sink in self.sinks:
            try:
                sink.send(alert)
            except Exception:
                logger.exception("alert sink %r failed; alert %s dropped for it", sink, alert.kind)


def fanout(*sinks: AlertSink) -> AlertSink:
    """One sink that sends to every sink given, in order.

    A sink that raises is logged and skipped; the others still get the alert
    and the caller never sees the error.
    """
    return _Fanout(sinks)
