"""``Controls``: the production controls one run executes under."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agentmesh.controls.breaker import BreakerConfig
from agentmesh.controls.retry import DEFAULT_RETRY
from agentmesh.controls.timeouts import Timeouts
from agentmesh.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langgraph.types import RetryPolicy

    from agentmesh.controls.alerts import AlertSink
    from agentmesh.controls.baseline import CostBaseline
    from agentmesh.controls.budget import Budget
    from agentmesh.controls.period import PeriodBudget

__all__ = ["Controls"]


@dataclass(frozen=True, kw_only=True)
class Controls:
    """What protects a run: caps, timeouts, retries, breakers, caching and alerts.

    Every field has a safe default, so ``Controls()`` is what a run gets when it
    asks for nothing: transient failures retried with backoff, per-call timeouts,
    breakers per model endpoint and tool, the kill switch checked at every node.
    Caps are opt-in (``budget``), because only the caller knows what a run may cost.

    Attributes:
        budget: Hard caps for the run (tokens, USD, model calls, steps, wall clock),
            split into sub-budgets for leads and specialists by ``Budget.shares``.
        timeouts: Per model call, per tool call, per agent and per run.
        retry: Backoff for transient failures (LangGraph's ``RetryPolicy``).
        breaker: Failure-rate window and cool-down of each breaker.
        max_output_tokens: Output tokens reserved per model call when the model
            sets no ``max_tokens`` (``None``: from settings).
        max_retries_per_run: Transport retries one run may make before it is
            stopped as a retry storm.
        max_replans_per_run: Re-plans (at all levels together) before the run is
            stopped as a re-plan storm.
        degrade_at: Budget pressure (0..1) above which frontier-model tasks run on
            the small model layer (``None``: never degrade).
        cache: Reuse identical model responses (the response cache from settings).
        period: Day/week budgets across runs (``None``: from settings).
        alerts: Where budget and cost alerts go (``None``: log, plus the webhook
            from settings).
        baseline: Per-agent cost baselines; a run costing 3x off its agent's
            baseline raises an alert.
    """

    budget: Budget | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = DEFAULT_RETRY
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    max_output_tokens: int | None = None
    max_retries_per_run: int = 20
    max_replans_per_run: int = 10
    degrade_at: float | None = 0.8
    cache: bool = True
    period: Sequence[PeriodBudget] | None = None
    alerts: AlertSink | None = None
    baseline: CostBaseline | None = None

    def __post_init__(self) -> None:
        if self.max_output_tokens is not None and self.max_output_tokens < 1:
            raise ConfigError("Controls.max_output_tokens: expected a positive number")
        if self.max_retries_per_run < 0 or self.max_replans_per_run < 0:
            raise ConfigError("Controls: retry and re-plan limits must be >= 0")
        if self.degrade_at is not None and not 0 < self.degrade_at <= 1:
            raise ConfigError("Controls.degrade_at: expected a fraction in (0, 1]")
