"""Timeouts per model call, per tool call, per agent and per run.

`Timeouts` is the policy (how long each kind of work may take); `Deadline` is one
running clock (an agent's or a run's) that call timeouts are capped by; and
`call_with_timeout` enforces a bound on a blocking call:

```python
run = Deadline(timeouts.run_s, scope="run")
agent = run.child(timeouts.agent_s, scope="agent:triage")
answer = call_with_timeout(
    lambda: model.invoke(messages), agent.cap(timeouts.model_call_s), target="model:gpt-4o-mini"
)
```

Python cannot kill a thread: a call that runs past its timeout is *abandoned* (its
daemon worker thread finishes or hangs in the background, its result discarded),
not stopped. So give clients their own socket timeout too (``ChatOpenAI(timeout=...)``)
and treat `call_with_timeout` as the hard bound on top of it.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from agentmesh.errors import CallTimeoutError, ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Deadline", "Timeouts", "call_with_timeout"]

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Timeouts:
    """How long each kind of work may take, in seconds; ``None`` means unbounded.

    Attributes:
        model_call_s: One model request (one attempt; retries get their own).
        tool_call_s: One tool call (one attempt).
        agent_s: One agent's whole step, retries and fallbacks included.
        run_s: A whole run.

    Raises:
        ConfigError: A value is zero or negative.
    """

    model_call_s: float | None = 60.0
    tool_call_s: float | None = 30.0
    agent_s: float | None = None
    run_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("model_call_s", "tool_call_s", "agent_s", "run_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"Timeouts.{name} must be positive or None, got {value!r}")


class Deadline:
    """A point in (monotonic) time by which some work must be done.

    Args:
        seconds: Time allowed from now; ``None`` for a deadline that never expires.
        scope: What is bounded, e.g. ``"run"`` or ``"agent:triage"``; named in errors.
        clock: Monotonic clock (inject a fake one in tests).

    Thread-safe: a deadline never changes after it is made.
    """

    __slots__ = ("at", "clock", "scope", "seconds")

    def __init__(
        self,
        seconds: float | None,
        *,
        scope: str = "run",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if seconds is not None and seconds < 0:
            raise ConfigError(f"deadline for {scope}: seconds must be >= 0, got {seconds!r}")
        self.seconds = seconds
        self.scope = scope
        self.clock = clock
        self.at: float | None = None if seconds is None else clock() + seconds

    def __repr__(self) -> str:
        return f"Deadline(scope={self.scope!r}, remaining={self.remaining()!r})"

    def remaining(self) -> float | None:
        """Seconds left (never negative), or ``None`` when unbounded."""
        return None if self.at is None else max(0.0, self.at - self.clock())

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.at is not None and self.clock() >= self.at

    def cap(self, timeout_s: float | None) -> float | None:
        """The smaller of ``timeout_s`` and the time left; ``None`` if both are unbounded."""
        left = self.remaining()
        if left is None:
            return timeout_s
        return left if timeout_s is None else min(timeout_s, left)

    def child(self, seconds: float | None, *, scope: str) -> Deadline:
        """A deadline for part of this work: ``seconds`` from now, but never later than this one.

        Args:
            seconds: Time the part may take; ``None`` to inherit this deadline.
            scope: What the part is, e.g. ``"agent:triage"``.
        """
        return Deadline(self.cap(seconds), scope=scope, clock=self.clock)

    def check(self) -> None:
        """Raise if the deadline has passed.

        Raises:
            CallTimeoutError: The deadline has passed (``target`` is the scope).
        """
        if self.expired():
            raise CallTimeoutError(
                f"{self.scope} ran past its {self.seconds:g}s deadline", target=self.scope
            )


class _Workers:
    """Reusable daemon threads: a new thread per call costs ~150 us, a handoff ~20 us.

    A worker whose call hangs is simply never returned to the idle list (it is
    abandoned with its call); a new worker is started whenever none is idle, so a
    hung call can never delay another one. Idle workers exit after ``idle_s``.
    """

    def __init__(self, idle_s: float = 60.0) -> None:
        self._idle: list[queue.SimpleQueue[Callable[[], None]]] = []
        self._lock = threading.Lock()
        self._idle_s = idle_s

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is None:
            inbox = queue.SimpleQueue()
            threading.Thread(
                target=self._serve, args=(inbox,), name="agentmesh-call", daemon=True
            ).start()
        inbox.put(job)

    def _serve(self, inbox: queue.SimpleQueue[Callable[[], None]]) -> None:
        while True:
            try:
                job = inbox.get(timeout=self._idle_s)
            except queue.Empty:
                with self._lock:
                    if inbox in self._idle:
                        self._idle.remove(inbox)
                        return
                continue  # handed a job while timing out: serve it
            job()
            with self._lock:
                self._idle.append(inbox)


_WORKERS = _Workers()


class _Outcome(Generic[T]):
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: T | None = None
        self.error: BaseException | None = None


def call_with_timeout(fn: Callable[[], T], timeout_s: float | None, *, target: str) -> T:
    """Call ``fn()``, giving up after ``timeout_s`` seconds.

    ``fn`` runs in a new daemon thread under a copy of the caller's context, so
    context variables (LangGraph's config, tracing spans) are seen as in the caller.
    Whatever ``fn`` raises (a LangGraph interrupt included) is re-raised unchanged.
    On timeout the worker is abandoned, not killed (see the module docstring).

    Args:
        fn: The blocking call.
        timeout_s: Seconds allowed; ``None`` calls ``fn`` inline with no bound.
        target: The model endpoint or tool called, named in the error.

    Raises:
        CallTimeoutError: ``fn`` did not finish within ``timeout_s``.
    """
    if timeout_s is None:
        return fn()
    if timeout_s <= 0:
        raise CallTimeoutError(f"{target}: no time left for the call", target=target)
    outcome: _Outcome[T] = _Outcome()
    context = contextvars.copy_context()

    def work() -> None:
        try:
            outcome.value = context.run(fn)
        except BaseException as exc:  # handed to the caller, who re-raises it
            outcome.error = exc
        finally:
            outcome.done.set()

    _WORKERS.submit(work)
    if not outcome.done.wait(timeout_s):
        raise CallTimeoutError(f"{target} did not answer within {timeout_s:g}s", target=target)
    if outcome.error is not None:
        error, outcome.error = outcome.error, None  # no frame -> outcome -> error cycle
        raise error
    return cast("T", outcome.value)
