"""Production controls: budgets, retries, breakers, timeouts, kill switch, caching, alerts.

A run gets them through ``agentmesh.run(..., controls=Controls(...))`` (or
``budget=Budget(...)``); the runtime applies them at every node, model call and
tool call. The pieces are usable on their own as well.
"""

from __future__ import annotations

from agentmesh.controls._config import Controls
from agentmesh.controls.alerts import Alert, AlertSink, CallbackSink, LogSink, WebhookSink, fanout
from agentmesh.controls.baseline import BaselineConfig, CostBaseline
from agentmesh.controls.breaker import (
    BreakerConfig,
    Breakers,
    CircuitBreaker,
    InMemoryBreakerStore,
    RedisBreakerStore,
)
from agentmesh.controls.budget import Budget, Envelope, Spend
from agentmesh.controls.cache import MemoryCache, RedisCache, ResponseCache, SQLiteCache
from agentmesh.controls.killswitch import FileKillStore, KillSwitch, RedisKillStore
from agentmesh.controls.period import PeriodBudget, PeriodGuard
from agentmesh.controls.retry import DEFAULT_RETRY, RetryPolicy
from agentmesh.controls.timeouts import Timeouts

__all__ = [
    # the run's controls
    "Controls",
    # budgets
    "Budget",
    "Envelope",
    "PeriodBudget",
    "PeriodGuard",
    "Spend",
    # retries, timeouts, breakers
    "DEFAULT_RETRY",
    "BreakerConfig",
    "Breakers",
    "CircuitBreaker",
    "InMemoryBreakerStore",
    "RedisBreakerStore",
    "RetryPolicy",
    "Timeouts",
    # kill switch
    "FileKillStore",
    "KillSwitch",
    "RedisKillStore",
    # response cache
    "MemoryCache",
    "RedisCache",
    "ResponseCache",
    "SQLiteCache",
    # alerts and baselines
    "Alert",
    "AlertSink",
    "BaselineConfig",
    "CallbackSink",
    "CostBaseline",
    "LogSink",
    "WebhookSink",
    "fanout",
]
