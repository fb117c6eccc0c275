"""Retries for transient failures: exponential backoff with jitter, ``Retry-After`` honoured.

The policy type is LangGraph's own `langgraph.types.RetryPolicy`, so one value
configures both agentmesh's call retries and LangGraph node retries:

```python
policy = RetryPolicy(initial_interval=0.5, backoff_factor=2.0, max_interval=20.0, max_attempts=4)
answer = call_with_retry(
    lambda: call_with_timeout(lambda: llm.invoke(messages), deadline.cap(60), target=target),
    policy=policy, target=target, deadline=deadline, breaker=breakers.get(target),
    on_retry=storm_guard.on_retry,
)
```

Only failures that `classify` finds transient are retried (429, 5xx, timeouts,
dropped connections); anything else is re-raised at once, unchanged. A policy's
``retry_on`` narrows that further, except LangGraph's default ``retry_on``, which is
ignored here because it would retry 400s and skip ``TimeoutError``.

`RetryStormGuard` counts a run's retries across all its calls and stops the run
(`RunawayError`, ``kind="retry_storm"``) when there are too many in a short window.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

from langgraph.types import RetryPolicy

from agentmesh.controls.classify import classify, is_transient
from agentmesh.errors import CircuitOpenError, ConfigError, RunawayError, TransientError

if TYPE_CHECKING:
    from agentmesh.controls.breaker import CircuitBreaker
    from agentmesh.controls.timeouts import Deadline

__all__ = [
    "DEFAULT_RETRY",
    "RetryPolicy",
    "RetryStormGuard",
    "backoff_delays",
    "call_with_retry",
]

T = TypeVar("T")

DEFAULT_RETRY = RetryPolicy(
    initial_interval=0.5,
    backoff_factor=2.0,
    max_interval=30.0,
    max_attempts=3,
    jitter=True,
    retry_on=is_transient,
)
"""Three attempts, 0.5 s then 1 s apart (jittered), never more than 30 s."""

_LANGGRAPH_DEFAULT_RETRY_ON = RetryPolicy._field_defaults["retry_on"]


def backoff_delays(policy: RetryPolicy, *, rng: random.Random | None = None) -> Iterator[float]:
    """The delays before each retry: ``policy.max_attempts - 1`` of them.

    The n-th delay (from 0) is ``initial_interval * backoff_factor ** n``, capped at
    ``max_interval``. With ``jitter`` it is then scaled by a random factor in
    ``[0.5, 1.0]`` ("equal jitter"), so clients that failed together spread out but
    never wait longer than the policy allows.

    Args:
        policy: The retry policy.
        rng: Random source for the jitter (seed one in tests).
    """
    uniform = rng.uniform if rng is not None else random.uniform
    for n in range(max(policy.max_attempts - 1, 0)):
        delay = min(policy.max_interval, policy.initial_interval * policy.backoff_factor**n)
        yield delay * uniform(0.5, 1.0) if policy.jitter else delay


def call_with_retry(
    fn: Callable[[], T],
    *,
    target: str,
    policy: RetryPolicy = DEFAULT_RETRY,
    sleep: Callable[[float], None] = time.sleep,
    deadline: Deadline | None = None,
    on_retry: Callable[[int, TransientError, float], None] | None = None,
    breaker: CircuitBreaker | None = None,
    rng: random.Random | None = None,
) -> T:
    """Call ``fn()``, retrying transient failures as ``policy`` says.

    The server's ``Retry-After`` replaces the computed delay (still capped at
    ``policy.max_interval``). A retry whose delay would reach past ``deadline`` is not
    made: the last error is raised instead of sleeping in vain. With a ``breaker``,
    each attempt first asks it (an open breaker raises `CircuitOpenError` at once) and
    then reports the outcome to it; a failure that opens the breaker raises
    `CircuitOpenError` (caused by that failure) without waiting for a retry.

    Args:
        fn: The call; wrap it in `call_with_timeout` to bound each attempt.
        target: The model endpoint or tool called, named in errors.
        policy: Backoff and attempt limits (`DEFAULT_RETRY` by default).
        sleep: Sleeps between attempts (inject one that records, in tests).
        deadline: The agent's or run's deadline, if any.
        on_retry: Called as ``on_retry(attempt, error, delay)`` before each sleep;
            whatever it raises (e.g. `RunawayError` from `RetryStormGuard.on_retry`)
            ends the call.
        breaker: The target's circuit breaker, if any.
        rng: Random source for the jitter.

    Returns:
        What ``fn`` returned.

    Raises:
        TransientError: The last transient failure, once attempts or time ran out.
        CircuitOpenError: The breaker is open.
        CallTimeoutError: ``deadline`` had already passed before the first attempt.
        Exception: A permanent failure, re-raised unchanged on the attempt it happened.
    """
    if policy.max_attempts < 1:
        raise ConfigError(f"RetryPolicy.max_attempts must be >= 1, got {policy.max_attempts}")
    if deadline is not None:
        deadline.check()
    delays = backoff_delays(policy, rng=rng)
    attempt = 0
    while True:
        attempt += 1
        if breaker is not None:
            breaker.allow()
        try:
            result = fn()
        except Exception as exc:
            error, opened = _settle_failure(exc, target=target, policy=policy, breaker=breaker)
            delay = None if error is None else _next_delay(error, delays, policy, deadline)
            if error is None or delay is None:
                if error is None or error is exc:
                    raise
                raise error from exc
            if opened and breaker is not None:  # fail fast now, not after a pause
                raise CircuitOpenError(
                    f"circuit for {breaker.target} opened after: {error}",
                    target=breaker.target,
                    retry_in_s=breaker.config.cooldown_s,
                ) from exc
            if on_retry is not None:
                on_retry(attempt, error, delay)
            sleep(delay)
            continue
        except BaseException:
            if breaker is not None:
                breaker.release()
            raise
        if breaker is not None:
            breaker.record_success()
        return result


def _settle_failure(
    exc: Exception, *, target: str, policy: RetryPolicy, breaker: CircuitBreaker | None
) -> tuple[TransientError | None, bool]:
    """Tell the breaker how the attempt went.

    Returns:
        The error to retry (``None``: re-raise ``exc``), and whether this failure
        opened the breaker.
    """
    error = classify(exc, target=target)
    opened = False
    if breaker is not None:
        if error is None:
            breaker.release()
        else:
            opened = breaker.record_failure() == "open"
    return (error if error is not None and _retry_on(policy, exc) else None), opened


def _next_delay(
    error: TransientError,
    delays: Iterator[float],
    policy: RetryPolicy,
    deadline: Deadline | None,
) -> float | None:
    """The pause before the next attempt, or ``None`` when there is none to make."""
    computed = next(delays, None)
    if computed is None:
        return None
    delay = computed
    if error.retry_after_s is not None:
        delay = min(error.retry_after_s, policy.max_interval)
    left = deadline.remaining() if deadline is not None else None
    if left is not None and delay >= left:
        return None
    return delay


def _retry_on(policy: RetryPolicy, exc: Exception) -> bool:
    retry_on = policy.retry_on
    if retry_on is _LANGGRAPH_DEFAULT_RETRY_ON:
        return True
    if isinstance(retry_on, type):
        return isinstance(exc, retry_on)
    if isinstance(retry_on, Sequence):
        return isinstance(exc, tuple(retry_on))
    return bool(retry_on(exc))


class RetryStormGuard:
    """Stops a run whose calls retry too often: a sign of a broken dependency or a loop.

    Make one per run and share it between all its calls (it is thread-safe); pass
    ``on_retry=guard.on_retry`` to `call_with_retry`.

    Args:
        max_retries: Retries allowed within ``window_s``; one more raises.
        window_s: The sliding window, in seconds.
        run_id: The run, named in the error.
        clock: Monotonic clock (inject a fake one in tests).

    Raises:
        ConfigError: ``max_retries`` is negative or ``window_s`` is not positive.
    """

    def __init__(
        self,
        *,
        max_retries: int = 20,
        window_s: float = 60.0,
        run_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_retries < 0 or window_s <= 0:
            raise ConfigError(
                f"RetryStormGuard: max_retries must be >= 0 and window_s > 0, "
                f"got {max_retries!r} and {window_s!r}"
            )
        self.max_retries = max_retries
        self.window_s = window_s
        self.run_id = run_id
        self.clock = clock
        self._lock = threading.Lock()
        self._retries: deque[tuple[float, str]] = deque()

    @property
    def count(self) -> int:
        """Retries recorded within the window."""
        with self._lock:
            self._forget_old(self.clock())
            return len(self._retries)

    def record(self, target: str) -> None:
        """Count one retry of a call to ``target``.

        Raises:
            RunawayError: More than ``max_retries`` retries within ``window_s``
                (``kind="retry_storm"``).
        """
        with self._lock:
            now = self.clock()
            self._forget_old(now)
            self._retries.append((now, target))
            if len(self._retries) <= self.max_retries:
                return
            top = Counter(t for _, t in self._retries).most_common(3)
            count = len(self._retries)
        worst = ", ".join(f"{name} x{n}" for name, n in top)
        raise RunawayError(
            f"retry storm: {count} retries within {self.window_s:g}s ({worst})",
            kind="retry_storm",
            run_id=self.run_id,
        )

    def on_retry(self, attempt: int, error: TransientError, delay: float) -> None:
        """`call_with_retry`'s ``on_retry`` hook: records a retry of ``error.target``."""
        self.record(error.target)

    def _forget_old(self, now: float) -> None:
        while self._retries and now - self._retries[0][0] >= self.window_s:
            self._retries.popleft()
