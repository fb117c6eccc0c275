"""Sorting failures into transient (worth retrying) and permanent (not).

A call that failed in a way a second try can fix becomes a `TransientError`:

- HTTP 429 and 408, and every 5xx, from the ``openai`` SDK (and so from
  ``langchain-openai``, whose errors subclass the SDK's) or from ``httpx``'s
  ``raise_for_status()``; the server's ``retry-after-ms`` / ``Retry-After`` hint
  (seconds or an HTTP date) is kept as ``retry_after_s``;
- timeouts and dropped connections: ``openai.APITimeoutError`` /
  ``APIConnectionError``, ``httpx.TimeoutException`` / ``NetworkError`` /
  ``RemoteProtocolError``, the built-in ``TimeoutError`` / ``ConnectionError``, and
  agentmesh's own `CallTimeoutError`.

Everything else is permanent and is never retried: other 4xx (400, 401, 403, 404,
409, 422: the request itself is wrong), validation errors, and a *malformed answer*
(a 200 whose body is not JSON or lacks ``choices``). Retrying a broken upstream's
garbage would burn budget for the same garbage, so it goes straight to the fallback.
Other agentmesh errors keep their meaning: `RunStopped`, `CircuitOpenError`,
`ToolError` and the rest are permanent; a `TransientError` stays transient.

An exception that is none of these is looked up through its explicit cause chain
(``raise ToolException(...) from httpx.ConnectError(...)``), so a wrapper that
kept its cause is still classified by what actually went wrong.
"""

from __future__ import annotations

import email.utils
import sys
import time
from typing import TYPE_CHECKING, Any

from agentmesh.errors import AgentMeshError, TransientError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["classify", "is_transient", "parse_retry_after"]

_RETRYABLE_STATUS = frozenset({408, 429})
_MAX_CAUSES = 8  # a cause chain longer than this is a bug elsewhere; stop looking


def classify(exc: BaseException, *, target: str) -> TransientError | None:
    """Classify a failure: a `TransientError` when retrying may help, else ``None``.

    Args:
        exc: The exception a model or tool call raised.
        target: The model endpoint or tool that was called, kept on the result.

    Returns:
        ``exc`` itself when it already is a `TransientError`; a new `TransientError`
        (with ``retry_after_s`` from the server's hint, when it sent one) for a
        transient failure; ``None`` for a permanent one.
    """
    seen: BaseException | None = exc
    for _ in range(_MAX_CAUSES):
        if seen is None:
            return None
        if isinstance(seen, TransientError):
            return seen
        if isinstance(seen, AgentMeshError):
            return None
        verdict = _classify_one(seen)
        if verdict is not None:
            transient, retry_after = verdict
            if not transient:
                return None
            error = TransientError(_describe(exc, target), target=target, retry_after_s=retry_after)
            error.__cause__ = exc
            return error
        seen = seen.__cause__
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether `classify` finds ``exc`` transient; usable as ``RetryPolicy(retry_on=...)``."""
    return classify(exc, target="") is not None


def parse_retry_after(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """Seconds a server asked the client to wait, or ``None`` if it did not say.

    ``retry-after-ms`` (OpenAI's precise form) wins over ``Retry-After``, which may be
    a number of seconds or an HTTP date. Negative or unparseable values are ignored.

    Args:
        headers: Response headers (case-insensitive lookup for ``httpx.Headers``;
            a plain mapping should use lower-case names).
        now: Wall-clock time used to turn an HTTP date into seconds (default: now).
    """
    if not headers:
        return None
    millis = _header(headers, "retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = -1.0
        if value >= 0:
            return value
    raw = _header(headers, "retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
        seconds = max(seconds, 0.0)
    return seconds if seconds >= 0 else None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.title())
    return None if value is None else str(value).strip()


def _classify_one(exc: BaseException) -> tuple[bool, float | None] | None:
    """``(transient, retry_after_s)`` when this exception alone decides, else ``None``."""
    verdict = _classify_openai(exc)
    if verdict is None:
        verdict = _classify_httpx(exc)
    if verdict is None and isinstance(exc, TimeoutError | ConnectionError):
        verdict = (True, None)
    return verdict


def _classify_openai(exc: BaseException) -> tuple[bool, float | None] | None:
    if "openai" not in sys.modules:  # an openai error cannot exist before its module is loaded
        return None
    import openai

    if isinstance(exc, openai.APIStatusError):
        return _from_status(exc.status_code, exc.response.headers)
    if isinstance(exc, openai.APIConnectionError):  # APITimeoutError included
        return (True, None)
    if isinstance(exc, openai.OpenAIError):  # bad response shape, length/filter finish...
        return (False, None)
    return None


def _classify_httpx(exc: BaseException) -> tuple[bool, float | None] | None:
    if "httpx" not in sys.modules:
        return None
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        return _from_status(exc.response.status_code, exc.response.headers)
    if isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
        return (True, None)
    if isinstance(exc, httpx.HTTPError):
        return (False, None)
    return None


def _from_status(status: int, headers: Any) -> tuple[bool, float | None]:
    if status in _RETRYABLE_STATUS or status >= 500:
        return (True, parse_retry_after(headers))
    return (False, None)


def _describe(exc: BaseException, target: str) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    kind = type(exc).__name__
    return f"{target}: {kind}: {text}" if text else f"{target}: {kind}"
