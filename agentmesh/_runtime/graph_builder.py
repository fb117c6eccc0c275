"""Compiling roles into LangGraph graphs.

A coordinator (lead or meta) compiles to::

    START -> plan -> (Send) stage nodes -> [join_<group>] -> gate_<stage> -> ... -> finish -> END

``plan`` and every gate decide the next hop in code and write it to state; the
conditional edge after them only reads it. Stage nodes receive their task
envelope through ``Send`` and write a result envelope; nothing downstream runs
until the stage's gate passes.
"""

from __future__ import annotations

import operator
import time
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Send

from agentmesh._runtime import coordinator_steps as steps
from agentmesh._runtime.context import current_context
from agentmesh._runtime.dataflow import members, stage_name, unwrap
from agentmesh._runtime.specialist_run import run_specialist
from agentmesh.messages import ResultMessage, TaskMessage
from agentmesh.models import resolve_model
from agentmesh.settings import Settings
from agentmesh.specialist import Specialist
from agentmesh.stages import Parallel

if TYPE_CHECKING:
    from collections.abc import Callable

    from langchain_core.language_models import BaseChatModel
    from langchain_core.runnables import RunnableConfig
    from pydantic import BaseModel

    from agentmesh.lead import Lead

Compiled = CompiledStateGraph[Any, Any, Any, Any]


def _merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    return {**(left or {}), **(right or {})}


class CoordinatorState(TypedDict, total=False):
    """Graph state of a coordinator. Envelopes are JSON-mode dicts (see messages.py)."""

    input: dict[str, Any]
    task: dict[str, Any]
    plan: list[str]
    cursor: int
    board: dict[str, Any]
    results: Annotated[dict[str, Any], _merge]
    gates: Annotated[list[dict[str, Any]], operator.add]
    spent: Annotated[list[dict[str, Any]], operator.add]
    attempts: dict[str, int]
    feedback: dict[str, str]
    replans: int
    steps: int
    fingerprints: list[str]
    history: list[str]
    pending: list[dict[str, Any]]
    retry_members: list[str]
    next: str
    outcome: dict[str, Any]
    result: dict[str, Any]
    started: float


class SpecialistState(TypedDict, total=False):
    """Graph state of a specialist compiled on its own."""

    input: dict[str, Any]
    task: dict[str, Any]
    result: dict[str, Any]


def compile_coordinator(
    role: Lead[Any, Any],
    *,
    checkpointer: Any = None,
    settings: Settings | None = None,
    name: str | None = None,
) -> Compiled:
    """Build and compile ``role``'s graph (children are compiled as subgraphs)."""
    settings = settings or Settings.from_env()
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(CoordinatorState)
    builder.add_node("plan", _bind_plan(role))
    destinations: list[str] = ["plan", "finish"]
    for stage in role.stages:
        agent, _ = unwrap(stage)
        gate_node = f"gate_{stage_name(stage)}"
        builder.add_node(gate_node, _bind_gate(role, stage))
        for member in members(stage):
            builder.add_node(member.name, _stage_node(member, settings))
            destinations.append(member.name)
        if isinstance(agent, Parallel) and agent.resolver is not None:
            join = f"join_{agent.name}"
            builder.add_node(join, _bind_join(agent, settings))
            for member in agent.members:
                builder.add_edge(member.name, join)
            builder.add_edge(join, gate_node)
        else:
            for member in members(stage):
                builder.add_edge(member.name, gate_node)
        builder.add_conditional_edges(gate_node, _route, destinations)
    builder.add_conditional_edges("plan", _route, destinations)
    builder.add_node("finish", lambda state: steps.finish(role, state))
    builder.add_edge(START, "plan")
    builder.add_edge("finish", END)
    compiled = builder.compile(checkpointer=checkpointer, name=name or role.name)
    return _with_limits(compiled, role)


def _with_limits(compiled: Compiled, role: Lead[Any, Any]) -> Compiled:
    # Step caps and loop detection end a run with a reason long before this
    # limit; it is set high enough that LangGraph's own limit never fires first.
    stages = sum(len(members(s)) + 2 for s in role.stages)
    limit = 4 * role.max_steps + (role.max_replans + 1) * stages + 20
    compiled.config = {**(compiled.config or {}), "recursion_limit": limit}
    register_role(compiled, role)
    return compiled


_ROLES: dict[int, Any] = {}


def register_role(graph: Any, role: Any) -> None:
    """Remember which role a compiled graph was built from (for typed results)."""
    _ROLES[id(graph)] = (graph, role)


def role_of(graph: Any) -> Any:
    """The role ``graph`` was compiled from, or ``None``."""
    entry = _ROLES.get(id(graph))
    return entry[1] if entry and entry[0] is graph else None


def _route(state: CoordinatorState) -> Any:
    nxt = state.get("next", "finish")
    if nxt != "dispatch":
        return nxt
    return [Send(p["node"], {"task": p["task"]}) for p in state.get("pending", [])]


def _bind_plan(role: Lead[Any, Any]) -> Callable[..., dict[str, Any]]:
    def plan(state: CoordinatorState, config: RunnableConfig) -> dict[str, Any]:
        return steps.plan(role, state, config)

    return plan


def _bind_gate(role: Lead[Any, Any], stage: Any) -> Callable[..., dict[str, Any]]:
    return lambda state: steps.gate(role, stage, state)


def _bind_join(group: Parallel, settings: Settings) -> Callable[..., dict[str, Any]]:
    runner = _agent_runner(settings)
    return lambda state: steps.join(group, state, runner)


def _stage_node(agent: Any, settings: Settings) -> Callable[..., dict[str, Any]]:
    """The node that runs one agent on the task envelope it was sent."""
    if isinstance(agent, Specialist):
        model = _model_for(agent, settings)

        def run_leaf(payload: dict[str, Any]) -> dict[str, Any]:
            task: TaskMessage[Any] = TaskMessage.model_validate(payload["task"])
            result = run_specialist(agent, task, model=model, ctx=current_context())
            return _result_update(agent.name, result)

        return run_leaf
    child = compile_coordinator(agent, settings=settings)

    def run_child(payload: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        # The child's own limit (sized from its step cap) must not be replaced by
        # the parent's, or a deep lead would hit LangGraph's limit before its cap.
        limit = (child.config or {}).get("recursion_limit", 25)
        out = child.invoke({"task": payload["task"]}, {**config, "recursion_limit": limit})
        result: ResultMessage[Any] = ResultMessage.model_validate(out["result"])
        return _result_update(agent.name, result)

    return run_child


def _result_update(name: str, result: ResultMessage[Any]) -> dict[str, Any]:
    return {
        "results": {name: result.model_dump(mode="json")},
        "spent": [result.usage.model_dump()],
    }


def _model_for(agent: Specialist[Any, Any], settings: Settings) -> BaseChatModel | None:
    return (
        resolve_model(agent.model, layer=agent.execution_layer, settings=settings)
        if agent.execution_layer.uses_model
        else None
    )


def _agent_runner(
    settings: Settings,
) -> Callable[[Specialist[Any, Any], BaseModel, TaskMessage[Any]], ResultMessage[Any]]:
    def run(
        agent: Specialist[Any, Any], payload: BaseModel, parent: TaskMessage[Any]
    ) -> ResultMessage[Any]:
        task: TaskMessage[Any] = TaskMessage(
            sender=parent.recipient,
            recipient=agent.name,
            parent_id=parent.task_id,
            run_id=parent.run_id,
            goal=f"reconcile peers for {parent.recipient}",
            payload=payload.model_dump(mode="json"),
        )
        return run_specialist(agent, task, model=_model_for(agent, settings), ctx=current_context())

    return run


def compile_specialist(
    spec: Specialist[Any, Any], *, checkpointer: Any = None, settings: Settings | None = None
) -> Compiled:
    """A one-node graph running ``spec``: input ``{"task": ...}`` or ``{"input": ...}``."""
    settings = settings or Settings.from_env()
    model = _model_for(spec, settings)

    def node(state: SpecialistState, config: RunnableConfig) -> dict[str, Any]:
        task = steps.coerce_task(spec.name, state, config)
        result = run_specialist(spec, task, model=model, ctx=current_context())
        return {"task": task.model_dump(mode="json"), "result": result.model_dump(mode="json")}

    builder: StateGraph[Any, Any, Any, Any] = StateGraph(SpecialistState)
    builder.add_node(spec.name, node)
    builder.add_edge(START, spec.name)
    builder.add_edge(spec.name, END)
    compiled = builder.compile(checkpointer=checkpointer, name=spec.name)
    register_role(compiled, spec)
    return compiled


def elapsed_since(started: float | None) -> float:
    """Seconds since ``started`` (epoch), 0 when unknown."""
    return time.time() - started if started else 0.0
