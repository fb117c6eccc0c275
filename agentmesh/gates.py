"""Validation gates: every stage's result passes one before anything uses it.

A gate validates the result against the stage's output schema, then runs user
checks (completeness, value ranges, cross-field consistency, freshness). Each
failed check names an action; the strictest one wins:
``pass < retry < replan < escalate < halt``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from agentmesh.errors import ConfigError
from agentmesh.messages import GateDecision, ResultMessage
from agentmesh.types import GateAction, ResultStatus

__all__ = [
    "Check",
    "Gate",
    "check",
    "consistent",
    "fresh",
    "in_range",
    "require",
]

# A check returns None/True to pass, or False/a reason string to fail. It sees
# the stage's typed output and the fields produced so far in its parent.
CheckFn = Callable[[Any, Mapping[str, Any]], bool | str | None]


@dataclass(frozen=True, kw_only=True)
class Check:
    """One named predicate and the action taken when it fails."""

    name: str
    fn: CheckFn
    on_fail: GateAction | str = GateAction.RETRY

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "on_fail", GateAction(self.on_fail))
        except ValueError:
            choices = ", ".join(a.value for a in GateAction)
            raise ConfigError(
                f"check {self.name!r}: on_fail={self.on_fail!r}, expected one of {choices}"
            ) from None

    def run(self, output: BaseModel, board: Mapping[str, Any]) -> str | None:
        """The failure reason, or ``None`` when the check passes."""
        verdict = self.fn(output, board)
        if verdict is None or verdict is True:
            return None
        return f"{self.name}: {verdict}" if isinstance(verdict, str) else f"{self.name} failed"


def check(
    *, on_fail: GateAction | str = GateAction.RETRY, name: str | None = None
) -> Callable[[Callable[..., bool | str | None]], Check]:
    """Decorate a predicate ``fn(output)`` or ``fn(output, board)`` as a :class:`Check`."""

    def wrap(fn: Callable[..., bool | str | None]) -> Check:
        nargs = fn.__code__.co_argcount
        call: CheckFn = (fn) if nargs > 1 else (lambda o, b: fn(o))
        return Check(name=name or fn.__name__, fn=call, on_fail=GateAction(on_fail))

    return wrap


def require(*fields: str, on_fail: GateAction | str = GateAction.RETRY) -> Check:
    """Completeness: each field is present and not empty."""

    def fn(output: Any, board: Mapping[str, Any]) -> str | None:
        missing = [f for f in fields if getattr(output, f, None) in (None, "", [], {})]
        return f"missing {', '.join(missing)}" if missing else None

    return Check(name="require", fn=fn, on_fail=GateAction(on_fail))


def in_range(
    field_name: str,
    *,
    min: float | None = None,
    max: float | None = None,
    on_fail: GateAction | str = GateAction.RETRY,
) -> Check:
    """Value range: ``min <= output.field <= max`` (a missing value passes; use require)."""

    def fn(output: Any, board: Mapping[str, Any]) -> str | None:
        value = getattr(output, field_name, None)
        if value is None:
            return None
        if (min is not None and value < min) or (max is not None and value > max):
            return f"{field_name}={value} outside [{min}, {max}]"
        return None

    return Check(name=f"in_range({field_name})", fn=fn, on_fail=GateAction(on_fail))


def consistent(
    predicate: Callable[[Any], bool], message: str, *, on_fail: GateAction | str = GateAction.RETRY
) -> Check:
    """Cross-field consistency: ``predicate(output)`` must hold."""
    return Check(
        name="consistent",
        fn=lambda o, b: None if predicate(o) else message,
        on_fail=GateAction(on_fail),
    )


def fresh(
    field_name: str,
    *,
    max_age: timedelta,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_fail: GateAction | str = GateAction.ESCALATE,
) -> Check:
    """Data freshness: the date/datetime in ``field_name`` is at most ``max_age`` old."""

    def fn(output: Any, board: Mapping[str, Any]) -> str | None:
        value = getattr(output, field_name, None)
        if value is None:
            return None
        if isinstance(value, datetime):
            stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        elif isinstance(value, date):
            stamp = datetime(value.year, value.month, value.day, tzinfo=UTC)
        else:
            return f"{field_name} is not a date"
        age = now() - stamp
        return (
            f"{field_name} is {age.days} days old (max {max_age.days})" if age > max_age else None
        )

    return Check(name=f"fresh({field_name})", fn=fn, on_fail=GateAction(on_fail))


@dataclass(frozen=True, kw_only=True)
class Gate:
    """The validation gate behind a stage.

    Attributes:
        checks: User predicates run on the typed output.
        max_retries: Retries of the same agent (reason fed back) before ``on_exhausted``.
        on_failed: Action when the stage's result is ``failed``.
        on_escalated: Action when the stage escalated.
        on_exhausted: Action when retries run out.
        min_confidence: Results below this confidence take ``on_low_confidence``.
        on_low_confidence: Action for low-confidence results.
        name: Shown in traces and decision logs (defaults to ``gate:<stage>``).
    """

    checks: Sequence[Check] = ()
    max_retries: int = 1
    on_failed: GateAction = GateAction.RETRY
    on_escalated: GateAction = GateAction.ESCALATE
    on_exhausted: GateAction = GateAction.ESCALATE
    min_confidence: float = 0.0
    on_low_confidence: GateAction = GateAction.ESCALATE
    name: str | None = None

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConfigError(f"gate {self.name or ''}: max_retries must be >= 0")
        if self.on_exhausted is GateAction.RETRY:
            raise ConfigError(f"gate {self.name or ''}: on_exhausted cannot be 'retry'")

    def evaluate(
        self,
        *,
        stage: str,
        result: ResultMessage[Any],
        schema: type[BaseModel],
        board: Mapping[str, Any],
        attempt: int,
        typed_output: BaseModel | None = None,
    ) -> tuple[GateDecision, BaseModel | None]:
        """Judge one stage result; returns the decision and the typed output if it passed.

        ``typed_output`` is ``result.output`` as an instance of exactly ``schema``,
        when the caller already validated it (so it is not validated twice).
        """
        escalation = result.escalation
        action, reasons, typed = self._verdict(
            stage=stage,
            status=result.status,
            output=result.output,
            confidence=result.confidence,
            error=result.error,
            escalation_reason=escalation.reason if escalation else None,
            schema=schema,
            board=board,
            attempt=attempt,
            typed_output=typed_output,
        )
        decision = GateDecision(
            gate=self.name or f"gate:{stage}",
            stage=stage,
            action=action,
            reasons=reasons,
            attempt=attempt,
            task_id=result.task_id,
        )
        return decision, typed

    def evaluate_json(
        self,
        *,
        stage: str,
        result: Mapping[str, Any],
        schema: type[BaseModel],
        board: Mapping[str, Any],
        attempt: int,
        typed_output: BaseModel | None = None,
    ) -> tuple[dict[str, Any], BaseModel | None]:
        """`evaluate` for a result envelope in JSON form; the decision in JSON form too.

        This is how coordinators gate every hop: results live in graph state as
        JSON, and neither the result nor the decision is built as a model object.
        """
        escalation = result.get("escalation")
        action, reasons, typed = self._verdict(
            stage=stage,
            status=result["status"],
            output=result["output"],
            confidence=result["confidence"],
            error=result.get("error"),
            escalation_reason=escalation.get("reason") if escalation else None,
            schema=schema,
            board=board,
            attempt=attempt,
            typed_output=typed_output,
        )
        decision = {
            "gate": self.name or f"gate:{stage}",
            "stage": stage,
            "action": action._value_,
            "reasons": reasons,
            "attempt": attempt,
            "task_id": result.get("task_id"),
        }
        return decision, typed

    def _verdict(
        self,
        *,
        stage: str,
        status: ResultStatus | str,
        output: Any,
        confidence: float,
        error: str | None,
        escalation_reason: str | None,
        schema: type[BaseModel],
        board: Mapping[str, Any],
        attempt: int,
        typed_output: BaseModel | None = None,
    ) -> tuple[GateAction, list[str], BaseModel | None]:
        """The action, its reasons, and the typed output when the action is ``pass``."""
        failures: list[tuple[GateAction, str]] = []
        typed: BaseModel | None = None
        if status == ResultStatus.HALTED:
            # A halt below halts everything above: re-running a halted child
            # would repeat the side effects the halt was meant to stop.
            failures.append((GateAction.HALT, f"{stage} halted: {error}"))
        elif status == ResultStatus.ESCALATED:
            reason = "escalated" if escalation_reason is None else escalation_reason
            failures.append((self.on_escalated, f"{stage} escalated: {reason}"))
        elif status == ResultStatus.FAILED:
            failures.append((self.on_failed, f"{stage} failed: {error}"))
        else:
            try:
                typed = (
                    typed_output if type(typed_output) is schema else schema.model_validate(output)
                )
            except ValidationError as exc:
                failures.append(
                    (GateAction.RETRY, f"output is not a valid {schema.__name__}: {exc}")
                )
            if typed is not None:
                if confidence < self.min_confidence:
                    failures.append(
                        (
                            self.on_low_confidence,
                            f"confidence {confidence:.2f} < {self.min_confidence:.2f}",
                        )
                    )
                if self.checks:
                    failures.extend(self._run_checks(typed, board))
        if not failures:
            return GateAction.PASS, [], typed
        action = max((a for a, _ in failures), key=_severity)
        reasons = [r for _, r in failures]
        if action is GateAction.RETRY and attempt > self.max_retries:
            action = self.on_exhausted
            reasons.append(f"retries exhausted after {attempt} attempts")
        return action, reasons, typed if action is GateAction.PASS else None

    def _run_checks(
        self, typed: BaseModel, board: Mapping[str, Any]
    ) -> list[tuple[GateAction, str]]:
        failed: list[tuple[GateAction, str]] = []
        for c in self.checks:
            try:
                reason = c.run(typed, board)
            except Exception as exc:
                reason = f"{c.name} raised {type(exc).__name__}: {exc}"
            if reason is not None:
                failed.append((GateAction(c.on_fail), reason))
        return failed


DEFAULT_GATE = Gate()


def _severity(action: GateAction) -> int:
    return action.severity
