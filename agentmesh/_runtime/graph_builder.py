"""Compiling roles into LangGraph graphs.

A coordinator (lead or meta) compiles to::

    START -> plan -> stage -> stage -> ... -> END
    (plan or a stage) -> Send -> member, member -> join_<group> -> next stage

Each stage node runs its agent, passes the result through the stage's gate and
routes to the next hop itself with ``Command``: one superstep per stage. The
routing is plain code; nothing downstream runs until the stage's gate passes,
and the last gate builds the coordinator's result on the way to END. Parallel
members receive their task envelope through ``Send``; their join node resolves
and gates the group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Overwrite, Send

from agentmesh._runtime import coordinator_steps as steps
from agentmesh._runtime import validated
from agentmesh._runtime.context import current_context
from agentmesh._runtime.dataflow import members, unwrap
from agentmesh._runtime.guard import RunGuard, served_guard
from agentmesh._runtime.specialist_run import run_specialist, run_specialist_json
from agentmesh.messages import ResultMessage, TaskMessage
from agentmesh.models import resolve_model
from agentmesh.settings import Settings
from agentmesh.specialist import Specialist
from agentmesh.stages import Parallel

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from langchain_core.language_models import BaseChatModel
    from langchain_core.runnables import RunnableConfig
    from pydantic import BaseModel

    from agentmesh.lead import Lead

Compiled = CompiledStateGraph[Any, Any, Any, Any]


def _merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    return {**(left or {}), **(right or {})}


class ChildCoordinatorState(TypedDict, total=False):
    """Graph state of a coordinator run as a child. Envelopes are JSON-mode dicts (see messages.py).

    The coordinator's own bookkeeping (the board of known fields, plan, cursor,
    attempts, loop fingerprints, pending tasks, gate decisions, usage spent,
    outcome, ...) lives in one ``ctl`` channel: LangGraph's per-step cost grows
    with the number of channels, and these change together (one writer per step,
    which appends to ``gates`` and ``spent`` in code). ``results`` is the one
    channel parallel members write at once (a reducer). A parent writes only
    ``task`` and reads only ``result``.
    """

    task: dict[str, Any]
    results: Annotated[dict[str, Any], _merge]
    ctl: dict[str, Any]
    result: dict[str, Any]


class CoordinatorState(ChildCoordinatorState, total=False):
    """Graph state of a compiled role: a child's, plus what a direct caller uses.

    A caller may give a bare ``input`` instead of a task envelope. The finishing
    step publishes the gate decisions, the usage spent and the outcome as channels
    of their own, for callers that invoke the graph directly (``agentmesh.run``
    reads them from ``ctl``).
    """

    input: dict[str, Any]
    gates: list[dict[str, Any]]
    spent: list[dict[str, Any]]
    outcome: dict[str, Any]


# Keys the coordinator steps read and write as if they were channels; stored in ``ctl``.
_CTL = frozenset(
    {
        "board",
        "plan",
        "cursor",
        "attempts",
        "feedback",
        "replans",
        "steps",
        "fingerprints",
        "history",
        "pending",
        "retry_members",
        "next",
        "started",
        "gates",
        "spent",
        "outcome",
    }
)


def _flat(state: Mapping[str, Any]) -> dict[str, Any]:
    """The state as the coordinator steps see it: ``ctl`` keys at the top level."""
    ctl = state.get("ctl")
    if not ctl:
        return dict(state)
    # Copying a whole dict is one block copy; ``{**state, **ctl}`` inserts ctl's
    # keys one by one. The bookkeeping wins over channels a finished run published.
    flat = dict(ctl)
    flat.update(state)
    if "outcome" in state or "gates" in state or "spent" in state:
        flat.update((key, ctl[key]) for key in _PUBLISHED if key in ctl)
    return flat


def _pack(state: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``update`` with its bookkeeping keys folded into one new ``ctl`` value."""
    out: dict[str, Any] = {}
    changed: dict[str, Any] = {}
    for key, value in update.items():
        if key in _APPENDED:
            prior = () if isinstance(value, Overwrite) else state.get(key, ())
            changed[key] = [*prior, *(value.value if isinstance(value, Overwrite) else value)]
        elif key in _CTL:
            changed[key] = value.value if isinstance(value, Overwrite) else value
        else:
            out[key] = value
    if changed:
        # ``state`` is flat: its own ``ctl`` holds the same values as its ``_CTL`` keys.
        prior = state.get("ctl")
        ctl = dict(prior) if prior else {k: state[k] for k in _CTL if k in state}
        ctl.update(changed)
        out["ctl"] = ctl
    return out


class SpecialistState(TypedDict, total=False):
    """Graph state of a specialist compiled on its own."""

    input: dict[str, Any]
    task: dict[str, Any]
    result: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class _Wiring:
    """How a compiled coordinator routes, and what its final state shows."""

    sent: frozenset[str]  # members of parallel groups, reached through Send
    publish: bool  # gates, spent and outcome as channels of their own once finished


def compile_coordinator(
    role: Lead[Any, Any],
    *,
    checkpointer: Any = None,
    settings: Settings | None = None,
    name: str | None = None,
    child: bool = False,
) -> Compiled:
    """Build and compile ``role``'s graph (children are compiled as subgraphs).

    A ``child`` graph is one a parent coordinator runs: it has no channels that
    only a direct caller would read.
    """
    settings = settings or Settings.from_env()
    schema = ChildCoordinatorState if child else CoordinatorState
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(schema)
    sent: set[str] = set()
    hops: list[str] = ["plan"]
    for stage in role.stages:
        agent, _ = unwrap(stage)
        if isinstance(agent, Parallel):
            sent.update(m.name for m in agent.members)
            hops.extend(m.name for m in agent.members)
        else:
            hops.append(agent.name)
    wiring = _Wiring(sent=frozenset(sent), publish=not child)
    destinations = (*hops, END)
    stage_nodes: list[str] = []
    first_is_stage = bool(role.stages) and not isinstance(unwrap(role.stages[0])[0], Parallel)
    builder.add_node("plan", _bind_plan(role, wiring), destinations=destinations)
    for stage in role.stages:
        agent, _ = unwrap(stage)
        if isinstance(agent, Parallel):
            join = f"join_{agent.name}"
            builder.add_node(
                join, _bind_join(role, stage, settings, wiring), destinations=destinations
            )
            for member in agent.members:
                builder.add_node(member.name, _member_node(member, settings, role.name))
                builder.add_edge(member.name, join)
        else:
            node = _stage_node(role, stage, settings, wiring)
            builder.add_node(agent.name, node, destinations=destinations)
            stage_nodes.append(agent.name)
    # A sequential first stage plans inline (no superstep of its own); the plan
    # node is visited to re-plan, or first when the first stage fans out.
    builder.add_edge(START, stage_nodes[0] if first_is_stage else "plan")
    compiled = builder.compile(checkpointer=checkpointer, name=name or role.name)
    return _with_limits(compiled, role)


def _with_limits(compiled: Compiled, role: Lead[Any, Any]) -> Compiled:
    compiled.config = {**(compiled.config or {}), "recursion_limit": _recursion_limit(role)}
    register_role(compiled, role)
    return compiled


def _recursion_limit(role: Lead[Any, Any]) -> int:
    """LangGraph's step limit for ``role``'s graph: never below a child coordinator's.

    Step caps and loop detection end a run with a reason long before this
    limit; it is set high enough that LangGraph's own limit never fires first.
    A parent's limit covers its children's, so a child runs on the config its
    parent's node was given (no per-call copy to restore its own limit).
    """
    stages = sum(len(members(s)) + 2 for s in role.stages)
    limit = 4 * role.max_steps + (role.max_replans + 1) * stages + 20
    for stage in role.stages:
        for agent in members(stage):
            if not isinstance(agent, Specialist):
                limit = max(limit, _recursion_limit(agent))
    return limit


_ROLES: dict[int, Any] = {}


def register_role(graph: Any, role: Any) -> None:
    """Remember which role a compiled graph was built from (for typed results)."""
    _ROLES[id(graph)] = (graph, role)


def role_of(graph: Any) -> Any:
    """The role ``graph`` was compiled from, or ``None``."""
    entry = _ROLES.get(id(graph))
    return entry[1] if entry and entry[0] is graph else None


# Each stage node runs its agent, passes the result through the stage's gate
# and routes to the next hop itself (Command): one superstep per stage, no
# separate gate, router or finish nodes.

_APPENDED = ("gates", "spent")
# Bookkeeping written to channels of their own once, when the coordinator finishes.
_PUBLISHED = ("gates", "spent", "outcome")


def _apply(state: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` as it will be once LangGraph applies ``update`` with our reducers."""
    view = dict(state)
    for key, value in update.items():
        if isinstance(value, Overwrite):
            view[key] = value.value
        elif key == "results":
            view[key] = {**(state.get(key) or {}), **value}
        elif key in _APPENDED:
            view[key] = [*(state.get(key) or []), *value]
        else:
            view[key] = value
    return view


def _combine(first: Mapping[str, Any], then: Mapping[str, Any]) -> dict[str, Any]:
    """One update equal to applying ``first`` and then ``then``."""
    if not first:
        return dict(then)
    if first.keys().isdisjoint(then):
        return {**first, **then}
    out = dict(first)
    for key, value in then.items():
        prior: Any = out.get(key)
        if key not in out or isinstance(value, Overwrite):
            out[key] = value
        elif isinstance(prior, Overwrite):
            out[key] = Overwrite(_combine({key: prior.value}, {key: value})[key])
        elif key == "results":
            out[key] = {**prior, **value}
        elif key in _APPENDED:
            out[key] = [*prior, *value]
        else:
            out[key] = value
    return out


def _advance(
    role: Lead[Any, Any], state: Mapping[str, Any], update: dict[str, Any], wiring: _Wiring
) -> Command[Any]:
    # Routing reads two bookkeeping keys; only finishing needs the whole new state.
    nxt = update["next"] if "next" in update else state.get("next", "finish")
    if nxt == "finish":
        view = _apply(state, update)
        packed = _pack(state, _combine(update, steps.finish(role, view)))
        if wiring.publish:
            ctl = packed["ctl"]
            packed.update((key, ctl[key]) for key in _PUBLISHED if key in ctl)
        return Command(update=packed, goto=END)
    packed = _pack(state, update)
    if nxt == "plan":
        return Command(update=packed, goto="plan")
    pending: list[dict[str, Any]] = update["pending"] if "pending" in update else state["pending"]
    if pending and pending[0]["node"] in wiring.sent:
        return Command(update=packed, goto=[Send(p["node"], {"task": p["task"]}) for p in pending])
    return Command(update=packed, goto=pending[0]["node"])


def _bind_plan(role: Lead[Any, Any], wiring: _Wiring) -> Callable[..., Command[Any]]:
    def plan(state: CoordinatorState) -> Command[Any]:
        flat = _flat(state)
        _kill_check(role.name, flat.get("task") or {})
        return _advance(role, flat, steps.plan(role, flat, None), wiring)

    return plan


def _bind_join(
    role: Lead[Any, Any], stage: Any, settings: Settings, wiring: _Wiring
) -> Callable[..., Command[Any]]:
    group, _ = unwrap(stage)
    runner = _agent_runner(settings)

    def join(raw: CoordinatorState) -> Command[Any]:
        state = _flat(raw)
        _kill_check(group.name, state.get("task") or {})
        # Members write only their results (at once); their usage is counted here.
        ran = [p["node"] for p in state.get("pending") or []]
        results = state.get("results") or {}
        fresh: dict[str, Any] = {"spent": [results[n]["usage"] for n in ran if n in results]}
        if group.resolver is None:
            judged = steps.gate(role, stage, _apply(state, fresh))
            return _advance(role, state, _combine(fresh, judged), wiring)
        # The group's result and output are gated as the objects the join built.
        joined = steps.join(group, state, runner)
        fresh = _combine(fresh, joined.update)
        judged = steps.gate(role, stage, _apply(state, fresh), {group.name: joined.output})
        return _advance(role, state, _combine(fresh, judged), wiring)

    return join


def _stage_node(
    role: Lead[Any, Any], stage: Any, settings: Settings, wiring: _Wiring
) -> Callable[..., Command[Any]]:
    """The node that runs one sequential stage, gates its result and routes on."""
    agent, _ = unwrap(stage)
    run_agent = _agent_call(agent, settings)

    def run_stage(raw: Mapping[str, Any], config: RunnableConfig | None) -> Command[Any]:
        state: Mapping[str, Any] = _flat(raw)
        before: dict[str, Any] = {}
        if "plan" not in state or state.get("result") is not None:
            # Entered from START on a new task: plan here, and hand over if the
            # plan does not start with this stage.
            before = steps.plan(role, state, None)
            view = _apply(state, before)
            pending = view.get("pending") or []
            if view.get("next") != "dispatch" or pending[0]["node"] != agent.name:
                return _advance(role, state, before, wiring)
            state = view
        task = state["pending"][0]["task"]
        _at_node(agent.name, task, role.name)
        typed, envelope = run_agent(task, config)
        _record(task, envelope)
        # The envelope's usage is the stage's spending: one dict in both places.
        fresh = {"results": {agent.name: envelope}, "spent": [envelope["usage"]]}
        judged = steps.gate(role, stage, _apply(state, fresh), {agent.name: typed})
        return _advance(role, state, _combine(before, _combine(fresh, judged)), wiring)

    if isinstance(agent, Specialist):
        # Leaf nodes take no config parameter: LangGraph skips per-call
        # callback/config set-up for them.
        def leaf(state: CoordinatorState) -> Command[Any]:
            return run_stage(state, None)

        return leaf

    def node(state: CoordinatorState, config: RunnableConfig) -> Command[Any]:
        return run_stage(state, config)

    return node


def _member_node(agent: Any, settings: Settings, coordinator: str) -> Callable[..., dict[str, Any]]:
    """A parallel member: runs on the task it was sent; its join gates the group."""
    run_agent = _agent_call(agent, settings)
    if isinstance(agent, Specialist):

        def leaf(payload: dict[str, Any]) -> dict[str, Any]:
            _at_node(agent.name, payload["task"], coordinator)
            envelope = run_agent(payload["task"], None)[1]
            _record(payload["task"], envelope)
            return {"results": {agent.name: envelope}}

        return leaf

    def node(payload: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        _at_node(agent.name, payload["task"], coordinator)
        envelope = run_agent(payload["task"], config)[1]
        _record(payload["task"], envelope)
        return {"results": {agent.name: envelope}}

    return node


Ran = tuple["BaseModel | None", dict[str, Any]]


def _agent_call(agent: Any, settings: Settings) -> Callable[[Any, RunnableConfig | None], Ran]:
    """A function running ``agent`` on a task envelope: a specialist, or a child graph.

    It returns the result's output as the object validated against the agent's
    output schema (``None`` when there is none), and the result in JSON form:
    the one form results take in state, where gates judge them.
    """
    if isinstance(agent, Specialist):
        model = _model_for(agent, settings)

        def run_leaf(task_json: Any, config: RunnableConfig | None) -> Ran:
            task: TaskMessage[Any] = _task_from(task_json)
            return run_specialist_json(agent, task, model=model, ctx=current_context())

        return run_leaf
    child = compile_coordinator(agent, settings=settings, child=True)
    # The child's own limit (sized from its step cap) must not be replaced by
    # the parent's, or a deep lead would hit LangGraph's limit before its cap.
    limit = (child.config or {}).get("recursion_limit", 25)

    def run_child(task_json: Any, config: RunnableConfig | None) -> Ran:
        # The parent reads only the result envelope. "v2" streams values alone (v1
        # also builds every step's updates, to find interrupts; a child's interrupt
        # reaches the parent as an exception either way).
        if config is None or config.get("recursion_limit", 0) < limit:
            # A caller's own lower limit must not replace the child's.
            config = {**(config or {}), "recursion_limit": limit}
        out = child.invoke({"task": task_json}, config, output_keys=["result"], version="v2")
        # The child built its envelope in JSON form: it is kept as it came. Its
        # output is the object the child validated, when this is that very envelope.
        envelope: dict[str, Any] = out.value["result"]
        return validated.claim(envelope), envelope

    return run_child


def _guard(task: Mapping[str, Any], coordinator: str | None = None) -> RunGuard | None:
    """The run's guard: ``agentmesh.run``'s, or one per thread for a served run."""
    ctx = current_context()
    if ctx.guard is not None:
        return ctx.guard
    run_id = task.get("run_id")
    if not run_id:
        return None
    scope = task.get("scope") or ""
    # The top role's own nodes dispatch tasks one level deep: they name the workflow.
    top = coordinator if "/" not in scope else None
    return served_guard(str(run_id), workflow=top, settings=ctx.settings)


def _at_node(agent: str, task: Mapping[str, Any], coordinator: str) -> None:
    """The run's controls before an agent's node runs (kill switch, step caps, clock)."""
    guard = _guard(task, coordinator)
    if guard is not None:
        guard.at_node(agent=agent, scope=task.get("scope") or "")


def _kill_check(name: str, task: Mapping[str, Any]) -> None:
    guard = _guard(task)
    if guard is not None:
        guard.check_kill(agent=name, scope=task.get("scope") or "")


def _record(task: Mapping[str, Any], envelope: Mapping[str, Any]) -> None:
    """Keep a finished task's result envelope for the run's partial results."""
    guard = _guard(task)
    if guard is not None:
        guard.record(task.get("scope") or envelope["agent"], envelope)


def _task_from(task_json: Mapping[str, Any]) -> TaskMessage[Any]:
    """The envelope a coordinator dispatched.

    Validated, not ``model_construct``-ed: pydantic-core validates a small model
    faster than ``model_construct`` (a Python loop over the fields) builds it.
    """
    return TaskMessage.model_validate(task_json)


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
