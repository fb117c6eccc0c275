"""Running one specialist task on its layer: code, model (+ fallback) or human."""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.cache.memory import InMemoryCache
from langgraph.errors import GraphBubbleUp
from langgraph.types import interrupt
from pydantic import BaseModel, ValidationError

from agentmesh._runtime.context import RunContext, span, tracing
from agentmesh._runtime.guard import find_served_guard
from agentmesh.errors import AgentMeshError, BudgetExhaustedError, ModelOutputError, RunStopped
from agentmesh.messages import EscalationMessage, ResultMessage, TaskMessage, Usage, result_json
from agentmesh.models import model_name
from agentmesh.pricing import cost_usd
from agentmesh.specialist import AgentContext, Answer, Specialist
from agentmesh.tracing._base import SpanKind
from agentmesh.types import Layer, ResultStatus, RoleKind

if TYPE_CHECKING:
    from collections.abc import Callable

    from langchain_core.language_models import BaseChatModel

    from agentmesh._runtime.guard import RunGuard
    from agentmesh.controls.timeouts import Deadline
    from agentmesh.memory.context import WorkingContext

HUMAN_REQUEST = "agentmesh.human_input"
_OK = ResultStatus.OK._value_


@dataclass(kw_only=True)
class _Produced:
    output: BaseModel
    served_by: str
    confidence: float
    evidence: list[str]
    summary: str = ""
    degraded: bool = False


def run_specialist(
    spec: Specialist[Any, Any],
    task: TaskMessage[Any],
    *,
    model: BaseChatModel | None,
    ctx: RunContext,
) -> ResultMessage[Any]:
    """Do ``task`` with ``spec`` and return a typed result; never raises for run failures."""
    return run_specialist_typed(spec, task, model=model, ctx=ctx)[0]


def run_specialist_typed(
    spec: Specialist[Any, Any],
    task: TaskMessage[Any],
    *,
    model: BaseChatModel | None,
    ctx: RunContext,
) -> tuple[ResultMessage[Any], BaseModel | None]:
    """`run_specialist`, plus the output as the object validated against ``spec.output``.

    The stage's gate reuses that object instead of validating the output again.
    """
    started = time.perf_counter()
    ctx, usage = _start(spec, task, ctx)
    if not tracing():
        result, typed = _attempt(spec, task, model=model, ctx=ctx, usage=usage)
        # The envelope is ours and not yet shared: set the last fields in place.
        result.usage = usage.total(time.perf_counter() - started)
        result.layer = _layer(spec)
        return result, typed
    attrs: dict[str, Any] = {"agent": spec.name, "role": RoleKind.SPECIALIST, "layer": spec.layer}
    with span(
        SpanKind.ROLE,
        spec.name,
        run_id=task.run_id,
        span_id=task.task_id,
        parent_id=task.parent_id,
        input=task.payload,
        attributes=attrs,
    ) as sp:
        result, typed = _attempt(spec, task, model=model, ctx=ctx, usage=usage)
        result.usage = usage.total(time.perf_counter() - started)
        result.layer = _layer(spec)
        sp.output = result.output
        sp.status = "ok" if result.status is ResultStatus.OK else "error"
        sp.error = result.error
        attrs.update(
            status=result.status,
            confidence=result.confidence,
            served_by=result.served_by,
            degraded=result.degraded,
            evidence=result.evidence[:10],
            input_tokens=result.usage.input_tokens,
            output_tokens=result.usage.output_tokens,
            cost_usd=result.usage.cost_usd,
        )
    return result, typed


def run_specialist_json(
    spec: Specialist[Any, Any],
    task: TaskMessage[Any],
    *,
    model: BaseChatModel | None,
    ctx: RunContext,
) -> tuple[BaseModel | None, dict[str, Any]]:
    """`run_specialist_typed` with the result in its JSON form, as coordinators keep it.

    A result that succeeded is built as JSON directly (no ``ResultMessage`` object
    to build and then dump) when its fields are of the types the envelope holds;
    anything else takes the validated path, so both give the same envelope.
    """
    if tracing():
        result, typed = run_specialist_typed(spec, task, model=model, ctx=ctx)
        return typed, result_json(result)
    started = time.perf_counter()
    ctx, usage = _start(spec, task, ctx)
    produced = _produce(spec, task, model=model, ctx=ctx, usage=usage)
    if not isinstance(produced, ResultMessage):
        envelope = _ok_json(spec, task, produced)
        if envelope is not None:
            envelope["usage"] = usage.total_json(time.perf_counter() - started)
            return produced.output, envelope
    result, typed = _finished(spec, task, produced)
    result.usage = usage.total(time.perf_counter() - started)
    result.layer = _layer(spec)
    return typed, result_json(result)


def _start(
    spec: Specialist[Any, Any], task: TaskMessage[Any], ctx: RunContext
) -> tuple[RunContext, _UsageMeter]:
    """The run context (a served run's guard found) and a meter for the task's usage."""
    if ctx.guard is None:
        served = find_served_guard(task.run_id)  # a run LangGraph's server started
        if served is not None:
            ctx = replace(ctx, guard=served)
    usage = _UsageMeter()
    usage.guard = ctx.guard
    if ctx.guard is not None and ctx.guard.controls.timeouts.agent_s is not None:
        usage.deadline = ctx.guard.agent_deadline(spec.name)
    return ctx, usage


def _attempt(
    spec: Specialist[Any, Any],
    task: TaskMessage[Any],
    *,
    model: BaseChatModel | None,
    ctx: RunContext,
    usage: _UsageMeter,
) -> tuple[ResultMessage[Any], BaseModel | None]:
    return _finished(spec, task, _produce(spec, task, model=model, ctx=ctx, usage=usage))


def _finished(
    spec: Specialist[Any, Any], task: TaskMessage[Any], produced: _Produced | ResultMessage[Any]
) -> tuple[ResultMessage[Any], BaseModel | None]:
    """The result of what ``_produce`` returned, and its output when it succeeded."""
    if isinstance(produced, ResultMessage):
        return produced, None
    try:
        result: ResultMessage[Any] = ResultMessage(
            task_id=task.task_id,
            agent=spec.name,
            status=ResultStatus.OK,
            output=produced.output.model_dump(mode="json"),
            confidence=produced.confidence,
            evidence=produced.evidence,
            summary=produced.summary or f"{spec.name}: {_describe(produced.output)}",
            served_by=produced.served_by,
            degraded=produced.degraded,
        )
    except Exception as exc:
        return _failed(spec, task, f"{type(exc).__name__}: {exc}")
    return result, produced.output


def _ok_json(
    spec: Specialist[Any, Any], task: TaskMessage[Any], produced: _Produced
) -> dict[str, Any] | None:
    """The JSON envelope ``_finished`` would build (usage aside), or ``None`` to take its path.

    ``None`` when a field is not already of the type the envelope holds (say an
    int confidence, or evidence that is not all strings): validation decides those.
    """
    confidence = produced.confidence
    evidence = produced.evidence
    if (
        type(confidence) is not float
        or not 0.0 <= confidence <= 1.0
        or type(evidence) is not list
        or not all(type(e) is str for e in evidence)
        or type(produced.summary) is not str
        or type(produced.served_by) is not str
        or type(produced.degraded) is not bool
    ):
        return None
    output = produced.output
    try:
        dumped = output.model_dump(mode="json")
        summary = produced.summary or f"{spec.name}: {_describe(output)}"
    except Exception:
        return None
    return {
        "task_id": task.task_id,
        "agent": spec.name,
        "status": _OK,
        "output": dumped,
        "confidence": confidence,
        "evidence": list(evidence),
        "usage": None,
        "summary": summary,
        "layer": _layer(spec)._value_,
        "served_by": produced.served_by,
        "degraded": produced.degraded,
        "error": None,
        "escalation": None,
    }


def _produce(
    spec: Specialist[Any, Any],
    task: TaskMessage[Any],
    *,
    model: BaseChatModel | None,
    ctx: RunContext,
    usage: _UsageMeter,
) -> _Produced | ResultMessage[Any]:
    """The specialist's typed output and how it got it, or the result of a task that failed."""
    # No closures here: a function and its cells per task are objects the cyclic
    # collector counts towards its next collection.
    try:
        payload = spec.input.model_validate(task.payload)
    except ValidationError as exc:
        return _failed(spec, task, f"input does not match {spec.input.__name__}: {_short(exc)}")[0]
    actx = AgentContext(
        task=task,
        agent=spec.name,
        feedback=task.feedback,
        _call_tool=_ToolCaller(spec, ctx, task, usage),
    )
    try:
        if spec.layer is Layer.CODE:
            assert spec.fn is not None
            if spec.cache_ttl_s is not None:
                return _from_cached_code(spec, payload, actx)
            return _from_code(spec.fn, payload, actx, spec.output, served_by="code")
        if spec.layer is Layer.HUMAN:
            return _ask_human(spec, task, payload)
        if model is None:
            if spec.fallback is None:
                return _offline_escalation(spec, task)
            produced = _from_code(
                spec.fallback,
                payload,
                actx,
                spec.output,
                served_by=f"fallback:{_fn_name(spec.fallback)} (offline)",
            )
            produced.degraded = True
            produced.evidence.append(f"offline: no model configured for layer {spec.layer}")
            return produced
        return _from_model_or_fallback(spec, model, payload, task, actx, ctx, usage)
    except (GraphBubbleUp, RunStopped):
        raise  # interrupts, kill switches and exhausted budgets end the run, not the task
    except Exception as exc:
        return _failed(spec, task, f"{type(exc).__name__}: {exc}")[0]


def _layer(spec: Specialist[Any, Any]) -> Layer:
    # A specialist's layer is a Layer from construction on; calling the enum costs a lookup.
    layer = spec.layer
    return layer if isinstance(layer, Layer) else Layer(layer)


def _failed(
    spec: Specialist[Any, Any], task: TaskMessage[Any], error: str
) -> tuple[ResultMessage[Any], None]:
    result: ResultMessage[Any] = ResultMessage(
        task_id=task.task_id,
        agent=spec.name,
        status=ResultStatus.FAILED,
        error=error,
        summary=f"{spec.name} failed: {error}"[:200],
    )
    return result, None


class _ToolCaller:
    """``AgentContext.call_tool``'s target: one object instead of a closure and its cells."""

    __slots__ = ("ctx", "spec", "task", "usage")

    def __init__(
        self,
        spec: Specialist[Any, Any],
        ctx: RunContext,
        task: TaskMessage[Any],
        usage: _UsageMeter,
    ) -> None:
        self.spec, self.ctx, self.task, self.usage = spec, ctx, task, usage

    def __call__(self, name: str, args: dict[str, Any]) -> Any:
        return _call_tool(self.spec, name, args, self.ctx, self.task, self.usage)


_TAKES_CTX: dict[Any, bool] = {}


def _takes_ctx(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` accepts the agent context as a second argument (looked up once)."""
    takes = _TAKES_CTX.get(fn)
    if takes is None:
        takes = _TAKES_CTX[fn] = len(inspect.signature(fn).parameters) > 1
    return takes


def _degraded_model(ctx: RunContext, task: TaskMessage[Any]) -> BaseChatModel | None:
    """The small-layer model to use instead, when the budget is under pressure."""
    assert ctx.guard is not None
    if not ctx.guard.should_degrade(task.scope):
        return None
    from agentmesh.models import resolve_model

    return resolve_model(None, layer=Layer.SMALL_MODEL, settings=ctx.settings)


# Deterministic code agents (``cache_ttl_s``) share LangGraph's node cache.
_NODE_CACHE: InMemoryCache[Any] = InMemoryCache()


def _from_cached_code(
    spec: Specialist[Any, Any], payload: BaseModel, actx: AgentContext
) -> _Produced:
    """A deterministic agent's answer, reused for the same input and version."""
    assert spec.fn is not None and spec.cache_ttl_s is not None
    digest = hashlib.sha256(payload.model_dump_json().encode()).hexdigest()
    key = (("agentmesh", spec.name, spec.version), digest)
    hit = _NODE_CACHE.get([key]).get(key)
    if hit is not None:
        return _Produced(
            output=spec.output.model_validate(hit["output"]),
            served_by="code (cache)",
            confidence=hit["confidence"],
            evidence=[*hit["evidence"], "node cache hit"],
            summary=hit["summary"],
        )
    produced = _from_code(spec.fn, payload, actx, spec.output, served_by="code")
    entry = {
        "output": produced.output.model_dump(mode="json"),
        "confidence": produced.confidence,
        "evidence": list(produced.evidence),
        "summary": produced.summary,
    }
    _NODE_CACHE.set({key: (entry, max(1, round(spec.cache_ttl_s)))})
    return produced


def _offline_escalation(spec: Specialist[Any, Any], task: TaskMessage[Any]) -> ResultMessage[Any]:
    reason = f"offline: no model configured for layer '{spec.layer}' and no fallback"
    return ResultMessage(
        task_id=task.task_id,
        agent=spec.name,
        status=ResultStatus.ESCALATED,
        summary=f"{spec.name} escalated: {reason}",
        escalation=EscalationMessage(
            reason=reason,
            decision_point=spec.name,
            context_summary=task.goal,
            options=[f"configure a model for {spec.layer}", "answer by hand"],
        ),
        degraded=True,
    )


def _from_code(
    fn: Callable[..., Any],
    payload: BaseModel,
    actx: AgentContext,
    output: type[BaseModel],
    *,
    served_by: str,
) -> _Produced:
    value = fn(payload, actx) if _takes_ctx(fn) else fn(payload)
    if isinstance(value, Answer):
        return _Produced(
            output=output.model_validate(value.value),
            served_by=served_by,
            confidence=value.confidence,
            evidence=list(value.evidence),
            summary=value.summary,
        )
    return _Produced(
        output=output.model_validate(value), served_by=served_by, confidence=1.0, evidence=[]
    )


def _from_model_or_fallback(
    spec: Specialist[Any, Any],
    model: BaseChatModel,
    payload: BaseModel,
    task: TaskMessage[Any],
    actx: AgentContext,
    ctx: RunContext,
    usage: _UsageMeter,
) -> _Produced:
    evidence: list[str] = []
    if ctx.guard is not None and spec.layer == Layer.FRONTIER_MODEL:
        cheaper = _degraded_model(ctx, task)
        if cheaper is not None:
            model = cheaper
            evidence.append("budget pressure: routed to the small model layer")
    chain = [model, *_fallback_models(spec, ctx)]
    try:
        for i, candidate in enumerate(chain):
            try:
                output = _ask_model(spec, candidate, payload, task, ctx, usage)
            except (GraphBubbleUp, RunStopped):
                raise
            except Exception as exc:
                if i == len(chain) - 1:
                    raise
                evidence.append(
                    f"model {model_name(candidate)} failed ({type(exc).__name__}: {_short(exc)})"
                )
                continue
            return _Produced(
                output=output,
                served_by=model_name(candidate),
                confidence=spec.confidence,
                evidence=evidence,
                degraded=bool(evidence),
            )
        raise AssertionError("unreachable: the chain is never empty")
    except GraphBubbleUp:
        raise
    except RunStopped as exc:
        # A model call that cannot be afforded is not made; a deterministic
        # fallback costs nothing, so it may still answer. Kills end the run.
        if spec.fallback is None or not isinstance(exc, BudgetExhaustedError):
            raise
        return _fall_back(spec, payload, actx, f"over budget ({exc.scope}: {exc.limit})")
    except Exception as exc:
        if spec.fallback is None:
            raise
        return _fall_back(
            spec, payload, actx, f"model failed ({type(exc).__name__}: {_short(exc)})"
        )


_FALLBACK_MODELS: dict[int, tuple[Specialist[Any, Any], list[BaseChatModel]]] = {}


def _fallback_models(spec: Specialist[Any, Any], ctx: RunContext) -> list[BaseChatModel]:
    """The agent's fallback models (another model or provider), resolved once."""
    if not spec.fallback_models:
        return []
    entry = _FALLBACK_MODELS.get(id(spec))
    if entry is None or entry[0] is not spec:
        from agentmesh.models import resolve_model

        models = [
            m
            for m in (
                resolve_model(ref, layer=spec.execution_layer, settings=ctx.settings)
                for ref in spec.fallback_models
            )
            if m is not None
        ]
        entry = (spec, models)
        _FALLBACK_MODELS[id(spec)] = entry
    return entry[1]


def _fall_back(
    spec: Specialist[Any, Any], payload: BaseModel, actx: AgentContext, why: str
) -> _Produced:
    """The deterministic fallback's answer, marked degraded with why it was used."""
    assert spec.fallback is not None
    produced = _from_code(
        spec.fallback, payload, actx, spec.output, served_by=f"fallback:{_fn_name(spec.fallback)}"
    )
    produced.degraded = True
    produced.evidence.append(why)
    return produced


def _ask_model(
    spec: Specialist[Any, Any],
    model: BaseChatModel,
    payload: BaseModel,
    task: TaskMessage[Any],
    ctx: RunContext,
    usage: _UsageMeter,
) -> BaseModel:
    out_name = spec.output.__name__
    bound = _bound(spec, model)
    messages: list[BaseMessage] = [_system(spec), HumanMessage(_task_text(task, payload))]
    window = _working_context(spec, task, messages)
    invalid = 0
    for _ in range(spec.max_tool_rounds + spec.max_output_retries):
        if usage.deadline is not None:
            usage.deadline.check()  # the agent's own timeout, between rounds
        prompt = window.messages() if window is not None else messages
        ai = _invoke(bound, prompt, model, spec, task, usage)
        final = next((c for c in ai.tool_calls if c["name"] == out_name), None)
        others = [c for c in ai.tool_calls if c["name"] != out_name]
        replies = [_tool_reply(spec, call, ctx, task, usage, window) for call in others]
        messages.extend([ai, *replies])
        if window is not None:
            window.add(ai, *replies)
        if final is None and others:
            continue
        candidate = final["args"] if final is not None else _json_from(ai.content)
        schema: type[BaseModel] = spec.output
        try:
            return schema.model_validate(candidate)
        except ValidationError as exc:
            invalid += 1
            error = f"Your answer does not match {out_name}: {_short(exc)}. Call {out_name} again."
            if invalid > spec.max_output_retries:
                raise ModelOutputError(
                    f"{spec.name}: {invalid} answers failed {out_name} validation",
                    attempts=invalid,
                    last_error=_short(exc),
                    agent=spec.name,
                ) from exc
            feedback = (
                ToolMessage(error, tool_call_id=final["id"] or "")
                if final is not None
                else HumanMessage(error)
            )
            messages.append(feedback)
            if window is not None:
                window.add(feedback)
    raise ModelOutputError(
        f"{spec.name}: no final answer within {spec.max_tool_rounds} tool rounds",
        attempts=invalid,
        last_error="tool rounds exhausted",
        agent=spec.name,
    )


RECALL_TOOL = "recall_step"  # agentmesh.memory.context.RECALL_TOOL_NAME


def _working_context(
    spec: Specialist[Any, Any], task: TaskMessage[Any], pinned: list[BaseMessage]
) -> WorkingContext | None:
    """The agent's token-budgeted context: goal and task pinned, older steps compressed."""
    if spec.context_budget is None:
        return None
    from agentmesh.memory.context import WorkingContext

    return WorkingContext(spec.context_budget, pinned=pinned, context_id=task.task_id)


_BOUND: dict[tuple[int, str], tuple[BaseChatModel, Any]] = {}
_SYSTEM: dict[int, tuple[Specialist[Any, Any], SystemMessage]] = {}


def _system(spec: Specialist[Any, Any]) -> SystemMessage:
    """The agent's system message, built once per agent (messages are never mutated)."""
    entry = _SYSTEM.get(id(spec))
    if entry is None or entry[0] is not spec:
        tool = spec.output.__name__
        text = f"{spec.prompt}\n\nGive your final answer by calling the tool '{tool}'."
        entry = (spec, SystemMessage(text.strip()))
        _SYSTEM[id(spec)] = entry
    return entry[1]


def _bound(spec: Specialist[Any, Any], model: BaseChatModel) -> Any:
    """The model with the agent's tools bound, built once per (model, agent)."""
    key = (id(model), spec.name)
    entry = _BOUND.get(key)
    if entry is None or entry[0] is not model:
        tools: list[Any] = [spec.output, *spec.allowed_tools.values()]
        if spec.context_budget is not None:
            from agentmesh.memory.context import build_recall_tool

            tools.append(build_recall_tool(lambda pointer: None))  # schema only
        entry = (model, model.bind_tools(tools, tool_choice="any"))
        _BOUND[key] = entry
    return entry[1]


def _invoke(
    bound: Any,
    messages: list[BaseMessage],
    model: BaseChatModel,
    spec: Specialist[Any, Any],
    task: TaskMessage[Any],
    usage: _UsageMeter,
) -> AIMessage:
    name = model_name(model)
    if not tracing():
        return _call(bound, messages, model, name, spec, task, usage)[0]
    attrs: dict[str, Any] = {"agent": spec.name, "model": name, "layer": spec.layer}
    with span(
        SpanKind.MODEL,
        f"{spec.name}.model",
        run_id=task.run_id,
        input=[m.content for m in messages],
        attributes=attrs,
    ) as sp:
        ai, tokens_in, tokens_out, cost, cache_hit = _call(
            bound, messages, model, name, spec, task, usage
        )
        if cache_hit is not None:
            attrs["cache_hit"] = cache_hit
        sp.output = ai.tool_calls or ai.content
        attrs.update(input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=cost)
    return ai


def _call(
    bound: Any,
    messages: list[BaseMessage],
    model: BaseChatModel,
    name: str,
    spec: Specialist[Any, Any],
    task: TaskMessage[Any],
    usage: _UsageMeter,
) -> tuple[AIMessage, int, int, float, bool | None]:
    """One model call, under the run's controls when it has any; its usage is counted."""
    guard = usage.guard
    cache_hit: bool | None = None
    if guard is None:
        ai = _invoke_model(bound, messages, name)
        meta = ai.usage_metadata
        tokens_in = meta["input_tokens"] if meta else _estimate(messages)
        tokens_out = meta["output_tokens"] if meta else _estimate([ai])
        cost = cost_usd(name, tokens_in, tokens_out)
    else:
        call = guard.call_model(
            agent=spec.name,
            scope=task.scope,
            model=model,
            name=name,
            invoke=partial(_invoke_model, bound, messages, name),
            messages=messages,
            tools=[spec.output, *spec.allowed_tools.values()],
            deadline=usage.deadline,
        )
        ai, tokens_in, tokens_out, cost = (
            call.message,
            call.input_tokens,
            call.output_tokens,
            call.cost_usd,
        )
        cache_hit = call.cache_hit
    if tokens_in or tokens_out or cost or guard is None:
        usage.add_call(tokens_in, tokens_out, cost)
    return ai, tokens_in, tokens_out, cost, cache_hit


def _invoke_model(bound: Any, messages: list[BaseMessage], name: str) -> AIMessage:
    ai = bound.invoke(messages)
    if not isinstance(ai, AIMessage):
        raise AgentMeshError(f"model {name} returned {type(ai).__name__}, not AIMessage")
    return ai


def _tool_reply(
    spec: Specialist[Any, Any],
    call: Any,
    ctx: RunContext,
    task: TaskMessage[Any],
    usage: _UsageMeter,
    window: WorkingContext | None = None,
) -> ToolMessage:
    if window is not None and call["name"] == RECALL_TOOL:
        # Dereferencing the agent's own externalized steps: memory, not a tool.
        found = window.get(str(call["args"].get("pointer", "")))
        text = (
            "\n".join(str(m.content) for m in found if m.content)
            if found is not None
            else f"error: no step {call['args'].get('pointer')!r}"
        )
        return ToolMessage(text, tool_call_id=call["id"] or "")
    try:
        content = _call_tool(spec, call["name"], call["args"], ctx, task, usage)
        return ToolMessage(json.dumps(content, default=str), tool_call_id=call["id"] or "")
    except AgentMeshError as exc:
        return ToolMessage(f"error: {exc}", tool_call_id=call["id"] or "", status="error")


def _call_tool(
    spec: Specialist[Any, Any],
    name: str,
    args: dict[str, Any],
    ctx: RunContext,
    task: TaskMessage[Any],
    usage: _UsageMeter,
) -> Any:
    usage.tool_calls += 1

    def execute() -> Any:
        return ctx.gateway.execute(
            name, args, agent=spec.name, allowed=spec.allowed_tools, run_id=task.run_id
        )

    if ctx.guard is None or name not in spec.allowed_tools:
        return execute()  # a refused tool is refused at once, never retried
    return ctx.guard.call_tool(name=name, call=execute, deadline=usage.deadline)


def _ask_human(spec: Specialist[Any, Any], task: TaskMessage[Any], payload: BaseModel) -> _Produced:
    answer = interrupt(
        {
            "type": HUMAN_REQUEST,
            "agent": spec.name,
            "task_id": task.task_id,
            "goal": task.goal,
            "payload": payload.model_dump(mode="json"),
            "feedback": task.feedback,
            "output_schema": spec.output.model_json_schema(),
        }
    )
    output = spec.output.model_validate(answer)
    return _Produced(output=output, served_by="human", confidence=1.0, evidence=["human answer"])


class _UsageMeter:
    __slots__ = (
        "cost",
        "deadline",
        "guard",
        "input_tokens",
        "model_calls",
        "output_tokens",
        "tool_calls",
    )

    def __init__(self) -> None:
        self.input_tokens = self.output_tokens = self.model_calls = self.tool_calls = 0
        self.cost = 0.0
        self.deadline: Deadline | None = None  # the agent's timeout, when it has one
        self.guard: RunGuard | None = None  # the run's controls

    def add_call(self, tokens_in: int, tokens_out: int, cost: float) -> None:
        self.input_tokens += tokens_in
        self.output_tokens += tokens_out
        self.model_calls += 1
        self.cost += cost

    def total_json(self, latency_s: float) -> dict[str, Any]:
        """``usage_json(self.total(latency_s))``, without building the ``Usage``."""
        return {
            "input_tokens": int(self.input_tokens),
            "output_tokens": int(self.output_tokens),
            "model_calls": self.model_calls,
            "tool_calls": self.tool_calls,
            "cost_usd": round(float(self.cost), 8),
            "latency_s": latency_s,
        }

    def total(self, latency_s: float) -> Usage:
        return Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            model_calls=self.model_calls,
            tool_calls=self.tool_calls,
            cost_usd=round(self.cost, 8),
            latency_s=latency_s,
        )


def _task_text(task: TaskMessage[Any], payload: BaseModel) -> str:
    parts = [f"Goal: {task.goal}"] if task.goal else []
    parts.append("Input:\n" + payload.model_dump_json())
    if task.constraints:
        parts.append("Constraints:\n" + json.dumps(task.constraints, default=str))
    if task.feedback:
        parts.append(f"A previous answer was rejected: {task.feedback}")
    return "\n\n".join(parts)


def _json_from(content: Any) -> Any:
    text = content if isinstance(content, str) else json.dumps(content)
    start, end = text.find("{"), text.rfind("}")
    try:
        return json.loads(text[start : end + 1]) if start >= 0 else {}
    except json.JSONDecodeError:
        return {}


def _estimate(messages: list[BaseMessage]) -> int:
    # ~4 characters per token: the usual estimate when a provider reports no usage.
    return max(1, sum(len(str(m.content)) for m in messages) // 4)


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )[:500]
    return str(exc)[:500]


def _describe(output: BaseModel) -> str:
    text = output.model_dump_json()
    return text if len(text) <= 160 else text[:157] + "..."


def _fn_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", type(fn).__name__)
