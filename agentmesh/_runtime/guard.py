"""The controls of one run, applied where work happens.

A `RunGuard` is created per run by ``agentmesh.run`` and reached through the run
context. The runtime calls it at three places only:

- ``at_node``: before every node runs (kill switch, step caps, wall clock);
- ``call_model``: around every model call (cache, breaker, budget reservation,
  timeout, retries with backoff, settlement);
- ``call_tool``: around every tool call (breaker, timeout, retries).

Process-wide services (kill switch, breakers, response cache) are built once per
settings and shared by every run of the process, or by a fleet through Redis.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from agentmesh.controls._config import Controls
from agentmesh.controls.alerts import Alert, AlertSink, LogSink, WebhookSink, fanout
from agentmesh.controls.breaker import (
    BreakerConfig,
    Breakers,
    InMemoryBreakerStore,
    RedisBreakerStore,
)
from agentmesh.controls.budget import Envelope
from agentmesh.controls.cache import build_response_cache, cache_key, dump_message, load_message
from agentmesh.controls.killswitch import KillSwitch
from agentmesh.controls.period import PeriodBudget, PeriodGuard, RedisSpendLedger
from agentmesh.controls.retry import RetryStormGuard, call_with_retry
from agentmesh.controls.timeouts import Deadline, call_with_timeout
from agentmesh.controls.tokens import TokenCount, prompt_tokens_upper_bound, usage_or_estimate
from agentmesh.errors import BudgetExhaustedError, RunawayError
from agentmesh.messages import ResultMessage
from agentmesh.pricing import cost_usd, worst_case_cost

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from langchain_core.messages import AIMessage, BaseMessage

    from agentmesh.controls.budget import Reservation
    from agentmesh.controls.cache import ResponseCache
    from agentmesh.controls.period import PeriodReservation
    from agentmesh.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Services:
    """What runs of one process share: kill switch, breakers, response cache."""

    kill: KillSwitch
    breakers: Breakers
    cache: ResponseCache | None
    alerts: AlertSink

    def breakers_for(self, config: BreakerConfig) -> Breakers:
        """The breakers with ``config``; all configs share one state store."""
        if config == self.breakers.config:
            return self.breakers
        with _SERVICES_LOCK:
            found = _BY_CONFIG.get((id(self), config))
            if found is None:
                found = Breakers(
                    config=config, store=self.breakers.store, clock=self.breakers.clock
                )
                _BY_CONFIG[(id(self), config)] = found
            return found


_BY_CONFIG: dict[tuple[int, BreakerConfig], Breakers] = {}


_SERVICES: dict[Settings, Services] = {}
_SERVICES_LOCK = threading.RLock()


def services_for(settings: Settings) -> Services:
    """The shared services for ``settings`` (built on first use)."""
    with _SERVICES_LOCK:
        found = _SERVICES.get(settings)
        if found is None:
            store = (
                RedisBreakerStore(settings.redis_url)
                if settings.redis_url
                else InMemoryBreakerStore()
            )
            sinks: list[AlertSink] = [LogSink()]
            if settings.alert_webhook_url:
                sinks.append(WebhookSink(url=settings.alert_webhook_url))
            found = Services(
                kill=KillSwitch.from_settings(settings),
                breakers=Breakers(store=store),
                cache=build_response_cache(settings.response_cache, data_dir=settings.data_dir),
                alerts=fanout(*sinks),
            )
            _SERVICES[settings] = found
        return found


@dataclass(frozen=True, kw_only=True)
class ModelCall:
    """What one model call cost (zero on a cache hit)."""

    message: AIMessage
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cache_hit: bool
    estimated: bool


class RunGuard:
    """The controls of one run: a budget envelope tree, a deadline, storm guards."""

    def __init__(
        self,
        *,
        controls: Controls,
        settings: Settings,
        run_id: str,
        workflow: str,
        services: Services | None = None,
    ) -> None:
        self.controls = controls
        self.settings = settings
        self.run_id = run_id
        self.workflow = workflow
        self.services = services or services_for(settings)
        self.envelope = (
            Envelope(controls.budget, scope="run", run_id=run_id) if controls.budget else None
        )
        self.deadline = Deadline(controls.timeouts.run_s, scope="run")
        self.storm = RetryStormGuard(max_retries=controls.max_retries_per_run, run_id=run_id)
        self.max_output_tokens = controls.max_output_tokens or settings.max_output_tokens
        self.alerts = controls.alerts or self.services.alerts
        self.period = _period_guard(controls, settings, self.alerts)
        self._finished: dict[str, Mapping[str, Any]] = {}
        self.agent_cost: dict[str, float] = {}
        self._replans = 0
        self._lock = threading.Lock()
        self._breakers = self.services.breakers_for(controls.breaker)

    # -- node boundaries ----------------------------------------------------------------

    def at_node(self, *, agent: str, scope: str) -> None:
        """Before a node runs: stop on a kill switch, a step cap or the wall clock.

        Raises:
            RunKilledError: A kill switch covers the workflow or an agent on ``scope``.
            BudgetExhaustedError: A steps or wall-clock cap would be passed.
        """
        self.services.kill.check(
            workflow=self.workflow,
            agents=(self.workflow, *_parts(scope), agent),
            run_id=self.run_id,
        )
        if self.deadline.expired():
            raise BudgetExhaustedError(
                f"run {self.run_id}: run timeout of {self.controls.timeouts.run_s}s reached",
                scope="run",
                limit="wall_clock_s",
                cap=float(self.controls.timeouts.run_s or 0),
                needed=float(self.controls.timeouts.run_s or 0),
                run_id=self.run_id,
                agent=agent,
            )
        envelope = self.envelope_for(scope)
        if envelope is not None:
            envelope.step(agent)

    def check_kill(self, *, agent: str, scope: str) -> None:
        """The kill switch alone (coordinator bookkeeping nodes: plan, join)."""
        self.services.kill.check(
            workflow=self.workflow,
            agents=(self.workflow, *_parts(scope), agent),
            run_id=self.run_id,
        )

    def agent_deadline(self, agent: str) -> Deadline:
        """The clock of one agent's task: its own timeout, never past the run's."""
        return self.deadline.child(self.controls.timeouts.agent_s, scope=f"agent:{agent}")

    def on_replan(self, role: str) -> None:
        """Count a re-plan anywhere in the run; too many is a re-plan storm."""
        with self._lock:
            self._replans += 1
            replans = self._replans
        if replans > self.controls.max_replans_per_run:
            raise RunawayError(
                f"re-plan storm: {replans} re-plans in run {self.run_id} (last by {role}; "
                f"limit {self.controls.max_replans_per_run})",
                kind="replan_storm",
                run_id=self.run_id,
            )

    def record(self, path: str, envelope: Mapping[str, Any]) -> None:
        """Keep a finished task's result envelope (JSON form): a stopped run's partial results.

        The envelope is the one written to graph state; it is validated only when
        a stopped run reports it, so a run that finishes holds no extra objects.
        """
        self._finished[path] = envelope

    @property
    def partial(self) -> dict[str, ResultMessage[Any]]:
        """The results recorded so far, by agent path."""
        return {p: ResultMessage.model_validate(e) for p, e in self._finished.items()}

    def envelope_for(self, scope: str) -> Envelope | None:
        """The budget envelope of the agent at ``scope`` (``""`` is the run)."""
        envelope = self.envelope
        if envelope is None:
            return None
        for part in _parts(scope):
            envelope = envelope.child(part)
        return envelope

    def should_degrade(self, scope: str) -> bool:
        """Whether budget pressure says to use a cheaper model layer."""
        envelope = self.envelope_for(scope)
        threshold = self.controls.degrade_at
        return envelope is not None and threshold is not None and envelope.pressure() >= threshold

    # -- model calls ----------------------------------------------------------------------

    def call_model(
        self,
        *,
        agent: str,
        scope: str,
        model: Any,
        name: str,
        invoke: Callable[[], AIMessage],
        messages: Sequence[BaseMessage],
        tools: Sequence[Any],
        deadline: Deadline | None = None,
    ) -> ModelCall:
        """Make one model call under every control; a cap is never passed.

        Raises:
            BudgetExhaustedError: The call's worst case cannot be reserved.
            CircuitOpenError: The endpoint's breaker is open (nothing was sent).
            TransientError: The call kept failing transiently (retries exhausted).
            RunawayError: Retries across the run passed the retry-storm limit.
        """
        cache = self.services.cache if self.controls.cache else None
        key = None
        if cache is not None:
            key = cache_key(name, messages, {"tools": [_schema(t) for t in tools]})
            hit = cache.get(key)
            message = load_message(hit) if hit is not None else None
            if message is not None:
                return ModelCall(
                    message=message,
                    input_tokens=0,
                    output_tokens=0,
                    cost_usd=0.0,
                    cache_hit=True,
                    estimated=False,
                )
        envelope = self.envelope_for(scope)
        held: Reservation | None = None
        period_held: PeriodReservation | None = None
        tokens, worst = 0, 0.0
        if envelope is not None or self.period is not None:
            # The worst case is reserved before the call, so no cap can be passed.
            out_cap = int(getattr(model, "max_tokens", None) or self.max_output_tokens)
            prompt_bound = prompt_tokens_upper_bound(_texts(messages, tools), model=name)
            tokens = prompt_bound + out_cap
            worst = worst_case_cost(name, prompt_tokens=prompt_bound, max_tokens=out_cap)
        if envelope is not None:
            held = envelope.reserve(tokens=tokens, cost_usd=worst, agent=agent)
        try:
            if self.period is not None:
                period_held = self.period.reserve(
                    tokens=tokens, cost_usd=worst, run_id=self.run_id, agent=agent
                )
            target = _target(model, name)
            clock = deadline or self.deadline
            limit = clock.cap(self.controls.timeouts.model_call_s)
            bounded = _hard_timeout(model, limit)
            message = call_with_retry(
                (lambda: call_with_timeout(invoke, limit, target=target)) if bounded else invoke,
                target=target,
                policy=self.controls.retry,
                deadline=clock,
                on_retry=self.storm.on_retry,
                breaker=self._breakers.get(target),
            )
        except BaseException:
            if held is not None and envelope is not None:
                envelope.release(held)
            if period_held is not None and self.period is not None:
                self.period.release(period_held)
            raise
        count = _tokens(message, messages, tools, name)
        cost = cost_usd(name, count.input_tokens, count.output_tokens)
        tokens = count.input_tokens + count.output_tokens
        if held is not None and envelope is not None:
            envelope.settle(held, tokens=tokens, cost_usd=cost)
        if period_held is not None and self.period is not None:
            self.period.settle(period_held, tokens=tokens, cost_usd=cost)
        with self._lock:
            self.agent_cost[agent] = self.agent_cost.get(agent, 0.0) + cost
        if cache is not None and key is not None:
            cache.set(key, dump_message(message), self.settings.response_cache_ttl_s)
        return ModelCall(
            message=message,
            input_tokens=count.input_tokens,
            output_tokens=count.output_tokens,
            cost_usd=cost,
            cache_hit=False,
            estimated=count.estimated,
        )

    # -- tool calls -----------------------------------------------------------------------

    def call_tool(self, *, name: str, call: Callable[[], T], deadline: Deadline | None = None) -> T:
        """Run one tool call under its breaker, timeout and retry policy."""
        target = f"tool:{name}"
        clock = deadline or self.deadline
        limit = clock.cap(self.controls.timeouts.tool_call_s)
        return call_with_retry(
            lambda: call_with_timeout(call, limit, target=target),
            target=target,
            policy=self.controls.retry,
            deadline=clock,
            on_retry=self.storm.on_retry,
            breaker=self._breakers.get(target),
        )

    # -- the end of the run ---------------------------------------------------------------

    def finish(self) -> list[Alert]:
        """After the run: feed per-agent cost baselines; return the alerts raised."""
        alerts: list[Alert] = []
        baseline = self.controls.baseline
        if baseline is not None:
            for agent, cost in sorted(self.agent_cost.items()):
                alert = baseline.observe(agent, cost)
                if alert is not None:
                    alerts.append(alert)
        return alerts

    def snapshot(self) -> dict[str, Any]:
        """Budget spent per scope (empty without a budget)."""
        return self.envelope.snapshot() if self.envelope is not None else {}


_SERVED: OrderedDict[str, RunGuard] = OrderedDict()
_SERVED_MAX = 1024


def served_guard(run_id: str, *, workflow: str | None, settings: Settings) -> RunGuard:
    """The guard of a run that did not start through ``agentmesh.run``.

    LangGraph's own server invokes compiled graphs directly; its runs still get
    the default controls (kill switch, breakers, retries, timeouts), one guard
    per thread, made by the first node that runs (the top role's).
    """
    with _SERVICES_LOCK:
        guard = _SERVED.get(run_id)
        if guard is None:
            guard = RunGuard(
                controls=Controls(), settings=settings, run_id=run_id, workflow=workflow or ""
            )
            _SERVED[run_id] = guard
            while len(_SERVED) > _SERVED_MAX:
                _SERVED.popitem(last=False)
        else:
            _SERVED.move_to_end(run_id)
        return guard


def find_served_guard(run_id: str | None) -> RunGuard | None:
    """The served run's guard, if its first node made one."""
    if run_id is None:
        return None
    with _SERVICES_LOCK:
        return _SERVED.get(run_id)


_TARGETS: dict[tuple[int, str], tuple[Any, str]] = {}


def _target(model: Any, name: str) -> str:
    """The model's breaker key (looked up once per model object).

    One breaker per endpoint: the same model behind another base URL is another upstream.
    """
    entry = _TARGETS.get((id(model), name))
    if entry is None or entry[0] is not model:
        endpoint = getattr(model, "openai_api_base", None)
        entry = (model, f"model:{name}@{endpoint}" if endpoint else f"model:{name}")
        if len(_TARGETS) >= 1024:
            _TARGETS.clear()  # models are few; a process making many just looks them up again
        _TARGETS[(id(model), name)] = entry
    return entry[1]


def _texts(messages: Sequence[BaseMessage], tools: Sequence[Any]) -> list[str]:
    """Every text the provider receives: the messages and the bound tools' schemas."""
    return [_text(m) for m in messages] + [_schema_text(t) for t in tools]


def _tokens(
    message: AIMessage, messages: Sequence[BaseMessage], tools: Sequence[Any], model: str
) -> TokenCount:
    """The call's tokens as the provider reported them, or estimated from the texts."""
    usage = message.usage_metadata
    if usage and "input_tokens" in usage and "output_tokens" in usage:
        return TokenCount(
            input_tokens=int(usage["input_tokens"]), output_tokens=int(usage["output_tokens"])
        )
    return usage_or_estimate(
        None, prompt=_texts(messages, tools), output=_text(message), model=model
    )


def _parts(scope: str) -> list[str]:
    return scope.split("/") if scope else []


def _text(message: BaseMessage) -> str:
    content = message.content if isinstance(message.content, str) else json.dumps(message.content)
    calls = getattr(message, "tool_calls", None)
    return content + (json.dumps(calls, default=str) if calls else "")


_SCHEMAS: dict[int, tuple[Any, Any, str]] = {}


def _schema(tool: Any) -> Any:
    """A bound tool's schema (what the provider is sent), computed once per tool."""
    return _schema_entry(tool)[1]


def _schema_text(tool: Any) -> str:
    return _schema_entry(tool)[2]


def _schema_entry(tool: Any) -> tuple[Any, Any, str]:
    entry = _SCHEMAS.get(id(tool))
    if entry is None or entry[0] is not tool:
        if isinstance(tool, type) and hasattr(tool, "model_json_schema"):
            schema: Any = tool.model_json_schema()
        elif hasattr(getattr(tool, "args_schema", None), "model_json_schema"):
            schema = {"name": tool.name, "args": tool.args_schema.model_json_schema()}
        else:
            schema = {"name": getattr(tool, "name", str(tool))}
        entry = (tool, schema, json.dumps(schema))
        _SCHEMAS[id(tool)] = entry
    return entry


def _hard_timeout(model: Any, limit: float | None) -> bool:
    """Whether a call needs the watchdog thread to be bounded by ``limit``.

    A client whose own request timeout (``ChatOpenAI(timeout=...)``, which agentmesh
    sets from settings) fires no later than ``limit`` bounds itself; in-process
    models that cannot block on I/O declare ``agentmesh_in_process = True``.
    Anything else runs under the watchdog.
    """
    if limit is None or getattr(model, "agentmesh_in_process", False):
        return False
    own = getattr(model, "request_timeout", None)
    if own is None:
        own = getattr(model, "timeout", None)
    return not (isinstance(own, int | float) and 0 < own <= limit)


def _period_guard(controls: Controls, settings: Settings, sink: AlertSink) -> PeriodGuard | None:
    budgets = list(controls.period) if controls.period is not None else []
    if controls.period is None:
        if settings.daily_cost_usd is not None:
            budgets.append(PeriodBudget(period="day", cost_usd=settings.daily_cost_usd))
        if settings.weekly_cost_usd is not None:
            budgets.append(PeriodBudget(period="week", cost_usd=settings.weekly_cost_usd))
    if not budgets:
        return None
    ledger = RedisSpendLedger(settings.redis_url) if settings.redis_url else None
    if ledger is None:
        from agentmesh.controls.period import SQLiteSpendLedger

        return PeriodGuard(
            budgets, ledger=SQLiteSpendLedger(settings.data_dir / "controls.sqlite"), sink=sink
        )
    return PeriodGuard(budgets, ledger=ledger, sink=sink)


__all__ = [
    "ModelCall",
    "RunGuard",
    "Services",
    "find_served_guard",
    "served_guard",
    "services_for",
]
