"""What a coordinator's nodes do: plan, dispatch, gate, join and finish.

Every function here is plain code: routing that code can decide never costs a
model call. Each returns a LangGraph state update.
"""

from __future__ import annotations

import contextlib
import hashlib
import operator
import pickle
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from langgraph.config import get_config, get_stream_writer
from langgraph.types import Overwrite
from pydantic import BaseModel, ValidationError

from agentmesh._runtime import validated
from agentmesh._runtime.context import current_context, record_span, span, tracing
from agentmesh._runtime.dataflow import members, produced_fields, stage_name, unwrap
from agentmesh.gates import DEFAULT_GATE, Gate
from agentmesh.messages import (
    EscalationMessage,
    ResultMessage,
    TaskMessage,
    Usage,
    new_id,
    result_json,
    usage_json,
)
from agentmesh.resolution import PeerOutcome
from agentmesh.stages import Parallel, Results
from agentmesh.tracing._base import SpanKind, SpanRecord
from agentmesh.types import GateAction, ResultStatus, RunStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from agentmesh.lead import Lead

PING_PONG_CYCLES = 3
_SEVERITY = operator.attrgetter("severity")
_TASK_KEYS = TaskMessage.model_fields.keys()
# Enum values read on every hop (an enum's ``.value`` is a property lookup).
_OK = ResultStatus.OK.value
_COMPLETED = RunStatus.COMPLETED.value
# Empty bookkeeping lists (no pending tasks, no members to retry): one shared,
# immutable value instead of a new list per step.
_NONE: tuple[Any, ...] = ()
_RESULT_STATUS = {
    RunStatus.COMPLETED.value: ResultStatus.OK,
    RunStatus.ESCALATED.value: ResultStatus.ESCALATED,
    RunStatus.HALTED.value: ResultStatus.HALTED,
}


def coerce_task(recipient: str, state: Mapping[str, Any], config: Any) -> TaskMessage[Any]:
    """The task envelope from state: given as ``task``, or built from a bare ``input``."""
    raw = state.get("task")
    if raw is not None:
        built = validated.claim(raw) if isinstance(raw, dict) else None
        task: TaskMessage[Any] = (
            built if type(built) is TaskMessage else TaskMessage.model_validate(raw)
        )
    else:
        task = TaskMessage(sender="caller", recipient=recipient, payload=state.get("input") or {})
    if task.run_id is None:
        if config is None:
            with contextlib.suppress(RuntimeError):  # outside a graph there is no config
                config = get_config()
        configurable = (config or {}).get("configurable", {})
        run_id = configurable.get("thread_id") or (config or {}).get("run_id") or new_id()
        task = task.model_copy(update={"run_id": str(run_id)})
    return task


# -- plan ---------------------------------------------------------------------------------


def plan(role: Lead[Any, Any], state: Mapping[str, Any], config: Any) -> dict[str, Any]:
    """Validate the task, make (or remake) the plan and dispatch its first stage."""
    task = coerce_task(role.name, state, config)
    raw = state.get("task")
    # A valid envelope already in its JSON form (run id set, no deadline to
    # normalize) is kept as it came; anything else is written in JSON form.
    keep = (
        isinstance(raw, dict)
        and raw.keys() == _TASK_KEYS
        and raw["run_id"]
        and raw["deadline"] is None
    )
    update: dict[str, Any] = {"task": raw if keep else task.model_dump(mode="json")}
    if state.get("result") is not None:
        # A new task on a thread whose last run finished starts from scratch;
        # Overwrite bypasses the accumulating reducers.
        state = {"task": update["task"]}
        update.update(_fresh_run())
    if "started" not in state:
        update["started"] = time.time()
        try:
            payload = role.input.model_validate(task.payload)
        except ValidationError as exc:
            return {
                **update,
                **_end(RunStatus.HALTED, f"input is not a valid {role.input.__name__}: {exc}"),
            }
        fields = payload.model_dump(mode="json")
        update["board"] = {**fields, "input": fields}
    replan_reason = state.get("feedback", {}).get("__plan__")
    names = _stage_names(role)
    chosen = list(role.planner(task, replan_reason)) if role.planner else names
    unknown = [n for n in chosen if n not in names]
    if unknown or not chosen:
        reason = (
            f"plan names unknown stages {unknown} (known: {names})" if unknown else "empty plan"
        )
        return {**update, **_end(RunStatus.ESCALATED, reason, decision_point=f"{role.name}/plan")}
    plain = {k: v.value if isinstance(v, Overwrite) else v for k, v in update.items()}
    view = {**state, **plain, "plan": chosen, "cursor": 0}
    return {**update, "plan": chosen, "cursor": 0, **dispatch(role, view)}


def _fresh_run() -> dict[str, Any]:
    return {
        "results": Overwrite({}),
        "gates": Overwrite([]),
        "spent": Overwrite([]),
        "attempts": {},
        "feedback": {},
        "replans": 0,
        "steps": 0,
        "fingerprints": [],
        "history": [],
        "retry_members": [],
        "outcome": None,
        "result": None,
    }


class _StageInfo(NamedTuple):
    """What the hot path reads of a stage, looked up once per stage object."""

    agent: Any
    step: Any
    name: str
    members: tuple[Any, ...]
    gate: Gate


_INFO: dict[int, tuple[Any, _StageInfo]] = {}


def _info(stage: Any) -> _StageInfo:
    entry = _INFO.get(id(stage))
    if entry is None or entry[0] is not stage:
        agent, step = unwrap(stage)
        gate = (step.gate if step else None) or agent.gate or DEFAULT_GATE
        entry = (stage, _StageInfo(agent, step, stage_name(stage), members(stage), gate))
        _INFO[id(stage)] = entry
    return entry[1]


_BY_NAME: dict[int, tuple[Any, dict[str, Any]]] = {}


def _stages(role: Lead[Any, Any]) -> dict[str, Any]:
    """The role's stages by name, in order (built once per role)."""
    entry = _BY_NAME.get(id(role))
    if entry is None or entry[0] is not role:
        entry = (role, {stage_name(s): s for s in role.stages})
        _BY_NAME[id(role)] = entry
    return entry[1]


def _stage_names(role: Lead[Any, Any]) -> list[str]:
    return list(_stages(role))


def _stage(role: Lead[Any, Any], name: str) -> Any:
    return _stages(role)[name]


# -- dispatch -----------------------------------------------------------------------------


def dispatch(role: Lead[Any, Any], state: Mapping[str, Any]) -> dict[str, Any]:
    """Prepare the tasks of the stage at ``cursor`` (skipping stages whose condition fails).

    Enforces the step cap and detects no-progress loops before anything runs.
    """
    plan_names: list[str] = state["plan"]
    cursor: int = state.get("cursor", 0)
    board: dict[str, Any] = state["board"]
    while cursor < len(plan_names):
        info = _info(_stage(role, plan_names[cursor]))
        step = info.step
        if step is None or step.when is None or step.when(board):
            break
        cursor += 1
    if cursor >= len(plan_names):
        return {"cursor": cursor, "next": "finish", "pending": _NONE}
    name = plan_names[cursor]
    steps_taken = state.get("steps", 0) + 1
    if steps_taken > role.max_steps:
        return _end(
            RunStatus.ESCALATED,
            f"step cap: {role.name} reached max_steps={role.max_steps}",
            decision_point=f"{role.name}/{name}",
        )
    parent: Mapping[str, Any] = state["task"]
    scope: str = parent.get("scope") or ""
    feedback = state.get("feedback", {}).get(name)
    attempts = dict(state.get("attempts", {}))
    attempts[name] = attempts.get(name, 0) + 1
    retry_only = state.get("retry_members") or ()
    pending = []
    for agent in info.members:
        if retry_only and agent.name not in retry_only:
            continue
        # The envelope in its JSON form (TaskMessage's fields, in order): the
        # parent's fields are already valid, so nothing here needs validating.
        task = {
            "task_id": new_id(),
            "parent_id": parent["task_id"],
            "run_id": parent.get("run_id"),
            "sender": role.name,
            "recipient": agent.name,
            "goal": (step.goal if step else "") or agent.description or parent.get("goal", ""),
            "payload": _input_for(agent.input, board),
            # Shared with the parent's envelope (envelopes are never mutated).
            "constraints": _constraints(parent),
            "deadline": parent.get("deadline"),
            "feedback": feedback,
            "attempt": attempts[name],
            "scope": f"{scope}/{agent.name}" if scope else agent.name,
        }
        pending.append({"node": agent.name, "task": task})
    fingerprint = _fingerprint(name, pending, feedback, state.get("results", {}).get(name))
    fingerprints: list[str] = state.get("fingerprints") or []
    if fingerprint in fingerprints:
        return _end(
            RunStatus.ESCALATED,
            f"no-progress loop: stage '{name}' re-issued with an identical state",
            decision_point=f"{role.name}/{name}",
        )
    history = [*state.get("history", []), name]
    pong = _ping_pong(history)
    if pong:
        return _end(
            RunStatus.ESCALATED,
            f"ping-pong loop between '{pong[0]}' and '{pong[1]}'",
            decision_point=f"{role.name}/{name}",
        )
    return {
        "cursor": cursor,
        "next": "dispatch",
        "pending": pending,
        "steps": steps_taken,
        "attempts": attempts,
        "fingerprints": [*fingerprints, fingerprint],
        "history": history,
    }


def _constraints(parent: Mapping[str, Any]) -> dict[str, Any]:
    constraints: dict[str, Any] | None = parent.get("constraints")
    return {} if constraints is None else constraints


def _input_for(schema: type[BaseModel], board: Mapping[str, Any]) -> dict[str, Any]:
    return {f: board[f] for f in _field_names(schema) if f in board}


_FIELDS: dict[type[BaseModel], tuple[str, ...]] = {}


def _field_names(schema: type[BaseModel]) -> tuple[str, ...]:
    """The schema's field names (``model_fields`` is a computed property: read it once)."""
    names = _FIELDS.get(schema)
    if names is None:
        names = _FIELDS[schema] = tuple(schema.model_fields)
    return names


def _fingerprint(name: str, pending: list[dict[str, Any]], feedback: str | None, last: Any) -> str:
    payloads = [p["task"]["payload"] for p in pending]
    previous = last.get("output") if isinstance(last, dict) else None
    # Payloads are JSON values built from schemas in field order, so their pickle
    # is the same in every process (unlike hash()) and cheaper than repr() or JSON.
    blob = pickle.dumps((name, payloads, feedback, previous), protocol=5)
    return hashlib.blake2b(blob, digest_size=10).hexdigest()


def _ping_pong(history: list[str]) -> tuple[str, str] | None:
    n = 2 * PING_PONG_CYCLES
    tail = history[-n:]
    if len(tail) < n:
        return None
    a, b = tail[0], tail[1]
    if a != b and all(x == (a if i % 2 == 0 else b) for i, x in enumerate(tail)):
        return a, b
    return None


def _end(
    status: RunStatus,
    reason: str,
    *,
    decision_point: str = "",
    escalation: EscalationMessage | None = None,
) -> dict[str, Any]:
    outcome: dict[str, Any] = {"status": status._value_, "reason": reason}
    if status is RunStatus.ESCALATED:
        esc = escalation or EscalationMessage(
            reason=reason,
            decision_point=decision_point,
            options=["retry with guidance", "override the result", "reject"],
        )
        outcome["escalation"] = esc.model_dump(mode="json")
    return {"outcome": outcome, "next": "finish", "pending": _NONE}


# -- gate ---------------------------------------------------------------------------------


def gate(
    role: Lead[Any, Any],
    stage: Any,
    state: Mapping[str, Any],
    validated: Mapping[str, BaseModel | None] | None = None,
) -> dict[str, Any]:
    """Judge the stage that just ran and decide the next hop.

    Results are judged in their JSON form, as they are in state; ``validated``
    holds outputs (by agent name) as the objects validated against the agent's
    output schema when the results were built, so they are not validated again.
    """
    info = _info(stage)
    agent, name, the_gate = info.agent, info.name, info.gate
    attempt = state.get("attempts", {}).get(name, 1)
    results: dict[str, Any] = state.get("results", {})
    judged = _judged(agent, results)
    board = dict(state["board"])
    actions: list[GateAction] = []
    reasons: list[str] = []
    failing: list[str] = []
    dumped: list[dict[str, Any]] = []
    passed: dict[str, dict[str, Any]] = {}
    for judged_name, schema, raw in judged:
        # The output as the object this process validated when it built the result.
        mine = validated.get(judged_name) if validated else None
        decision, typed = the_gate.evaluate_json(
            stage=judged_name,
            result=raw,
            schema=schema,
            board=board,
            attempt=attempt,
            typed_output=mine,
        )
        action = GateAction(decision["action"])
        actions.append(action)
        if decision["reasons"]:
            reasons.extend(decision["reasons"])
        if action is not GateAction.PASS:
            failing.append(judged_name)
        if typed is not None:
            # The result's output is already ``typed`` in JSON form when it was reused.
            out = raw["output"]
            passed[judged_name] = (
                out if typed is mine and isinstance(out, dict) else typed.model_dump(mode="json")
            )
        dumped.append(decision)
        _trace_gate(decision, action, raw, state)
    action = max(actions, key=_SEVERITY)
    update: dict[str, Any] = {"gates": dumped}
    feedback: dict[str, Any] = state.get("feedback") or {}
    if action is GateAction.PASS:
        # Same precedence as the build-time check: fields win over whole-output aliases.
        outputs = passed
        board.update(outputs)
        for output in outputs.values():
            board.update(output)
        if name in feedback:
            feedback = {k: v for k, v in feedback.items() if k != name}
        view = {
            **state,
            "board": board,
            "feedback": feedback,
            "cursor": state["cursor"] + 1,
            "retry_members": _NONE,
        }
        return {
            **update,
            "board": board,
            "feedback": feedback,
            "retry_members": _NONE,
            "cursor": state["cursor"] + 1,
            **dispatch(role, view),
        }
    # Bookkeeping dicts are replaced, never changed in place: earlier states share them.
    feedback = dict(feedback)
    if action is GateAction.RETRY:
        feedback[name] = "; ".join(reasons)
        only = failing if isinstance(agent, Parallel) and agent.resolver is None else []
        view = {**state, "feedback": feedback, "retry_members": only}
        return {**update, "feedback": feedback, "retry_members": only, **dispatch(role, view)}
    if action is GateAction.REPLAN:
        if state.get("replans", 0) >= role.max_replans:
            return {
                **update,
                **_end(
                    RunStatus.ESCALATED,
                    f"re-plan limit ({role.max_replans}) reached: {'; '.join(reasons)}",
                    decision_point=f"{role.name}/{name}",
                ),
            }
        guard = current_context().guard
        if guard is not None:
            guard.on_replan(role.name)
        feedback["__plan__"] = f"stage '{name}' failed its gate: {'; '.join(reasons)}"
        return {
            **update,
            "feedback": feedback,
            "replans": state.get("replans", 0) + 1,
            "next": "plan",
            "pending": [],
        }
    if action is GateAction.HALT:
        return {
            **update,
            **_end(RunStatus.HALTED, f"gate halted {role.name} at '{name}': {'; '.join(reasons)}"),
        }
    child = _child_escalation(judged, results)
    return {
        **update,
        **_end(
            RunStatus.ESCALATED,
            "; ".join(reasons),
            decision_point=f"{role.name}/{name}",
            escalation=_escalation(role, name, reasons, board, child),
        ),
    }


def _judged(agent: Any, results: Mapping[str, Any]) -> list[tuple[str, type[BaseModel], Any]]:
    if isinstance(agent, Parallel) and agent.resolver is None:
        return [(m.name, m.output, results[m.name]) for m in agent.members if m.name in results]
    return [(agent.name, agent.output, results[agent.name])]


def _child_escalation(
    judged: list[tuple[str, type[BaseModel], Any]], results: Mapping[str, Any]
) -> EscalationMessage | None:
    for judged_name, _, _ in judged:
        esc = results.get(judged_name, {}).get("escalation")
        if esc:
            return EscalationMessage.model_validate(esc)
    return None


def _escalation(
    role: Lead[Any, Any],
    stage: str,
    reasons: list[str],
    board: Mapping[str, Any],
    child: EscalationMessage | None,
) -> EscalationMessage:
    point = f"{role.name}/{child.decision_point}" if child else f"{role.name}/{stage}"
    known = ", ".join(k for k in board if k != "input")
    return EscalationMessage(
        reason="; ".join(reasons),
        decision_point=point,
        context_summary=(child.context_summary + " | " if child and child.context_summary else "")
        + f"{role.name} stopped at '{stage}'; known so far: {known}",
        options=(
            child.options
            if child and child.options
            else ["retry with guidance", "override", "reject"]
        ),
        data=child.data if child else {},
    )


def _trace_gate(
    payload: dict[str, Any],
    action: GateAction,
    result: Mapping[str, Any],
    state: Mapping[str, Any],
) -> None:
    if tracing():
        _gate_span(payload, action, result, state)
    # Outside a graph stream (a node called directly) there is no writer. A plain
    # try, not contextlib.suppress: no context manager object per gate.
    try:
        get_stream_writer()({"gate": payload})
    except RuntimeError:
        return


def _gate_span(
    payload: dict[str, Any],
    action: GateAction,
    result: Mapping[str, Any],
    state: Mapping[str, Any],
) -> None:
    task = state.get("task") or {}
    with span(
        SpanKind.GATE,
        payload["gate"],
        run_id=task.get("run_id"),
        parent_id=task.get("task_id"),
        input={"stage": payload["stage"], "status": ResultStatus(result["status"])},
        attributes={
            "gate_action": action,
            "stage": payload["stage"],
            "attempt": payload["attempt"],
        },
    ) as sp:
        sp.output = payload


# -- join ---------------------------------------------------------------------------------


def join(
    group: Parallel,
    state: Mapping[str, Any],
    runner: Callable[[Any, BaseModel, TaskMessage[Any]], ResultMessage[Any]],
) -> Joined:
    """Resolve parallel peers into one result for the group."""
    assert group.resolver is not None
    task: Mapping[str, Any] = state["task"]
    peers: list[PeerOutcome] = []
    spent: list[Mapping[str, Any]] = []
    for m in group.members:
        raw = state.get("results", {}).get(m.name)
        if raw is None:
            continue
        spent.append(raw["usage"])
        output = None
        if raw["status"] == _OK:
            try:
                output = m.output.model_validate(raw["output"])
            except ValidationError:
                output = None
        peers.append(PeerOutcome(agent=m.name, output=output, confidence=raw["confidence"]))

    def reconcile(agent: Any, payload: BaseModel) -> ResultMessage[Any]:
        return runner(agent, payload, TaskMessage.model_validate(task))

    with span(
        SpanKind.RESOLUTION,
        f"join_{group.name}",
        run_id=task.get("run_id"),
        parent_id=task.get("task_id"),
        input=[p.agent for p in peers],
        attributes={"strategy": group.resolver.name},
    ) as sp:
        resolution = group.resolver.resolve(peers, group.output, reconcile)
        sp.output = {
            "rationale": resolution.rationale,
            "disagreements": dict(resolution.disagreements),
        }
        sp.attributes.update(escalated=resolution.escalated, confidence=resolution.confidence)
    evidence = [f"{resolution.strategy}: {resolution.rationale}"]
    evidence += [f"disagreement on {f}: {v}" for f, v in resolution.disagreements.items()]
    spent.append(usage_json(resolution.usage))
    result: ResultMessage[Any] = ResultMessage(
        task_id=new_id(),
        agent=group.name,
        usage=_summed(spent),
        evidence=evidence,
        confidence=resolution.confidence,
        status=ResultStatus.ESCALATED if resolution.escalated else ResultStatus.OK,
        output=None if resolution.output is None else resolution.output.model_dump(mode="json"),
        summary=f"{group.name}: {resolution.strategy} — {resolution.rationale}"[:240],
        escalation=EscalationMessage(
            reason=resolution.rationale,
            decision_point=group.name,
            context_summary="; ".join(evidence)[:500],
            options=[p.agent for p in peers if p.output is not None],
            data={"disagreements": dict(resolution.disagreements)},
        )
        if resolution.escalated
        else None,
    )
    # Peers' usage was counted by their own nodes; only the resolver's is new.
    update = {"results": {group.name: result_json(result)}, "spent": [spent[-1]]}
    return Joined(update, result, resolution.output)


class Joined(NamedTuple):
    """A join's state update, with its result and output as the objects it built."""

    update: dict[str, Any]
    result: ResultMessage[Any]
    output: BaseModel | None


def _summed(items: list[Mapping[str, Any]]) -> Usage:
    """``Usage() + Usage(**a) + Usage(**b) + ...`` for usage dicts, building one ``Usage``."""
    ints = dict.fromkeys(_USAGE_FIELDS[:4], 0)
    cost = latency = 0.0
    for item in items:
        for key in ints:
            ints[key] += item.get(key, 0)
        cost = round(cost + item.get("cost_usd", 0.0), 8)  # rounded at each step, as ``+`` is
        latency += item.get("latency_s", 0.0)
    return Usage(**ints, cost_usd=cost, latency_s=latency)


# -- finish -------------------------------------------------------------------------------


def finish(role: Lead[Any, Any], state: Mapping[str, Any]) -> dict[str, Any]:
    """Build the coordinator's result envelope and its terminal outcome.

    Children's results are read in their JSON form (they were validated when
    they were gated); the envelope is built in JSON form too.
    """
    task = state.get("task") or {}
    outcome = dict(state.get("outcome") or {"status": _COMPLETED, "reason": "completed"})
    children: list[Mapping[str, Any]] = list(state.get("results", {}).values())
    output: Any = None
    typed: BaseModel | None = None
    if outcome["status"] == _COMPLETED:
        try:
            typed = _build_output(role, state)
            output = typed.model_dump(mode="json")
        except Exception as exc:
            typed = None
            outcome = {
                "status": RunStatus.HALTED.value,
                "reason": f"could not build {role.output.__name__}: {exc}",
            }
    status = _RESULT_STATUS.get(outcome["status"], ResultStatus.FAILED)
    started = state.get("started") or time.time()
    usage = _total_usage(state.get("spent", []), latency_s=time.time() - started)
    escalation = outcome.get("escalation")
    ok = _OK
    result: dict[str, Any] = {
        "task_id": task.get("task_id") or new_id(),
        "agent": role.name,
        "status": status._value_,
        "output": output,
        "confidence": min((c["confidence"] for c in children if c["status"] == ok), default=1.0),
        "evidence": [c["summary"] for c in children if c.get("summary")][:20],
        "usage": usage,
        "summary": _summary(role, outcome, children),
        "layer": None,
        "served_by": "",
        "degraded": any(c.get("degraded") for c in children),
        "error": outcome["reason"]
        if status in (ResultStatus.FAILED, ResultStatus.HALTED)
        else None,
        "escalation": EscalationMessage.model_validate(escalation).model_dump(mode="json")
        if escalation
        else None,
    }
    if typed is not None:
        validated.remember(result, typed)
    _trace_role(role, state, result, started)
    return {"result": result, "outcome": outcome}


_USAGE_FIELDS = ("input_tokens", "output_tokens", "model_calls", "tool_calls", "cost_usd")


def _total_usage(spent: list[Mapping[str, Any]], *, latency_s: float) -> dict[str, Any]:
    """The sum of ``spent`` usage dicts, in ``Usage``'s JSON form."""
    total: dict[str, Any] = dict.fromkeys(_USAGE_FIELDS, 0)
    for item in spent:
        for key in _USAGE_FIELDS:
            total[key] += item.get(key, 0)
    total["cost_usd"] = round(float(total["cost_usd"]), 8)
    total["latency_s"] = latency_s
    return total


def _build_output(role: Lead[Any, Any], state: Mapping[str, Any]) -> BaseModel:
    board: dict[str, Any] = state["board"]
    schema: type[BaseModel] = role.output
    if role.synthesize is None:
        return schema.model_validate(_input_for(schema, board))
    outputs: dict[str, BaseModel] = {}
    for stage in role.stages:
        for name, (schema, producer) in produced_fields(stage).items():
            if name == producer and name in board and isinstance(board[name], dict):
                outputs[name] = schema.model_validate(board[name])
    typed_input: BaseModel = role.input.model_validate(board["input"])
    return schema.model_validate(role.synthesize(Results(typed_input, outputs, board)))


def _summary(
    role: Lead[Any, Any], outcome: Mapping[str, Any], children: list[Mapping[str, Any]]
) -> str:
    parts = [
        f"{c['agent']} {c['status']}{' (degraded)' if c.get('degraded') else ''}" for c in children
    ]
    head = f"{role.name} {outcome['status']}"
    if outcome["status"] != _COMPLETED:
        head += f" ({outcome['reason']})"
    return f"{head}: {', '.join(parts)}"[:400]


def _trace_role(
    role: Lead[Any, Any], state: Mapping[str, Any], result: Mapping[str, Any], started: float
) -> None:
    if not tracing():
        return
    task = state.get("task") or {}
    usage = result["usage"]
    record_span(
        SpanRecord(
            span_id=result["task_id"],
            parent_id=task.get("parent_id"),
            run_id=task.get("run_id") or "unknown",
            kind=SpanKind.RUN if task.get("parent_id") is None else SpanKind.ROLE,
            name=role.name,
            start=started,
            end=time.time(),
            input=task.get("payload"),
            output=result["output"],
            status="ok" if result["status"] == _OK else "error",
            error=result["error"],
            attributes={
                "agent": role.name,
                "role": role.kind,
                "status": ResultStatus(result["status"]),
                "confidence": result["confidence"],
                "input_tokens": usage["input_tokens"],
                "output_tokens": usage["output_tokens"],
                "cost_usd": usage["cost_usd"],
            },
        )
    )


__all__ = ["Joined", "coerce_task", "dispatch", "finish", "gate", "join", "plan"]
