"""Running compiled graphs: typed terminal states, human answers and resumption."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from langgraph.types import Command, Interrupt
from pydantic import BaseModel

from agentmesh._runtime import validated
from agentmesh._runtime.context import RunContext, use_context
from agentmesh._runtime.graph_builder import role_of
from agentmesh._runtime.guard import RunGuard
from agentmesh._runtime.layout import check_layout
from agentmesh.controls._config import Controls
from agentmesh.errors import (
    BudgetExhaustedError,
    ConfigError,
    RunError,
    RunKilledError,
    RunStopped,
)
from agentmesh.messages import (
    EscalationMessage,
    GateDecision,
    ResultMessage,
    TaskMessage,
    Usage,
    new_id,
)
from agentmesh.persistence import build_checkpointer
from agentmesh.settings import Settings
from agentmesh.tools import ToolGateway
from agentmesh.tracing import Tracer, build_tracer
from agentmesh.types import RunStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

    from agentmesh.controls.alerts import Alert
    from agentmesh.controls.budget import Budget
    from agentmesh.memory.episodic import EpisodicMemory

__all__ = ["HumanRequest", "RunResult", "resume", "run"]

OutT = TypeVar("OutT", bound=BaseModel)


@dataclass(frozen=True, kw_only=True)
class HumanRequest:
    """A pending question for a human, raised by ``interrupt()`` anywhere in the hierarchy."""

    id: str
    value: Any


@dataclass(frozen=True, kw_only=True)
class RunResult(Generic[OutT]):
    """How a run ended, with its typed output and everything needed to audit it.

    Attributes:
        status: The terminal state (or ``awaiting_human`` while paused).
        reason: Why it ended that way.
        output: The typed output (when completed).
        result: The top-level result envelope.
        escalation: What a human must decide (when escalated).
        human_requests: Pending interrupts (when awaiting a human).
        gates: Every gate decision of the top-level role.
        usage: Tokens, calls, cost and latency, children included.
        partial: Results of the tasks that finished, by agent path (``lead/specialist``);
            what a killed or budget-exhausted run had done before it stopped.
        budget: Spent and caps per budget scope (when the run had a budget).
        alerts: Alerts the run raised: cost (period thresholds, baseline deviations),
            and ``episode_not_recorded`` when its episode could not be recorded.
        episode_id: The episode the finished run was recorded as, when episodic
            memory recorded it (``episodes=`` or ``AGENTMESH_EPISODES=on``).
    """

    run_id: str
    thread_id: str
    status: RunStatus
    reason: str
    output: OutT | None = None
    result: ResultMessage[Any] | None = None
    escalation: EscalationMessage | None = None
    human_requests: list[HumanRequest] = field(default_factory=list)
    gates: list[GateDecision] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    partial: dict[str, ResultMessage[Any]] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    episode_id: str | None = None


def run(
    graph: Any,
    input: BaseModel | Mapping[str, Any] | None,
    *,
    thread_id: str | None = None,
    goal: str = "",
    constraints: Mapping[str, Any] | None = None,
    checkpointer: Any = "default",
    settings: Settings | None = None,
    tracer: Tracer | None = None,
    tools: ToolGateway | None = None,
    controls: Controls | None = None,
    budget: Budget | None = None,
    episodes: EpisodicMemory | bool | None = None,
) -> RunResult[Any]:
    """Run a compiled agentmesh graph to a terminal state.

    Args:
        graph: A graph compiled from a ``Meta``, ``Lead`` or ``Specialist``.
        input: The typed task payload; ``None`` resumes ``thread_id`` from its
            last checkpoint (after a crash).
        thread_id: Identifies the run for checkpoints and resumption.
        goal: Goal text carried in the task envelope.
        constraints: Constraints carried to every task of the run (for example a batch id).
        checkpointer: ``"default"`` (from settings: persistent SQLite), a LangGraph
            checkpointer, or ``None`` to keep the graph's own.
        settings: Defaults to the environment.
        tracer: Defaults to Langfuse when configured.
        tools: The tool gateway; defaults to a fresh one.
        controls: Budgets, timeouts, retries, breakers, caching and alerts;
            ``Controls()`` (safe defaults, no caps) when omitted.
        budget: Shorthand for ``Controls(budget=...)`` (hard caps for this run).
        episodes: Record the run as an episode once it ends in a terminal state (not
            while it awaits a human): into this memory, into the settings' memory
            (``True``), or not at all (``False``). ``None`` follows
            ``AGENTMESH_EPISODES`` (off by default). The episode id is the thread id;
            a recording error never fails the run (see ``RunResult.alerts``).
    """
    thread = thread_id or new_id()
    if input is None:
        graph_input: Any = None
    else:
        payload = input.model_dump(mode="json") if isinstance(input, BaseModel) else dict(input)
        role = role_of(graph)
        task: TaskMessage[Any] = TaskMessage(
            sender="caller",
            recipient=getattr(role, "name", "graph"),
            goal=goal,
            payload=payload,
            run_id=thread,
            constraints=dict(constraints or {}),
        )
        envelope = task.model_dump(mode="json")
        validated.remember(envelope, task)  # the first node reads it as this object
        graph_input = {"task": envelope}
    controls = _controls(controls, budget)
    return _invoke(
        graph, graph_input, thread, checkpointer, settings, tracer, tools, controls, episodes
    )


def resume(
    graph: Any,
    thread_id: str,
    answer: Any = None,
    *,
    answers: Mapping[str, Any] | None = None,
    checkpointer: Any = "default",
    settings: Settings | None = None,
    tracer: Tracer | None = None,
    tools: ToolGateway | None = None,
    controls: Controls | None = None,
    budget: Budget | None = None,
    episodes: EpisodicMemory | bool | None = None,
) -> RunResult[Any]:
    """Continue a paused run with a human's ``answer`` (or ``answers`` by request id).

    A run that was killed or stopped for its budget resumes with
    ``run(graph, None, thread_id=...)`` once the switch is cleared. ``episodes`` is
    as for :func:`run`: the run is recorded when it finishes, with the task it was
    first given.
    """
    command: Command[Any] = Command(resume=dict(answers) if answers is not None else answer)
    controls = _controls(controls, budget)
    return _invoke(
        graph, command, thread_id, checkpointer, settings, tracer, tools, controls, episodes
    )


# Controls are frozen all the way down (breakers are found by config equality),
# so runs that ask for nothing share one default instead of building it per run.
_DEFAULT_CONTROLS = Controls()


def _controls(controls: Controls | None, budget: Budget | None) -> Controls:
    if budget is None:
        return controls or _DEFAULT_CONTROLS
    if controls is not None and controls.budget is not None:
        raise ConfigError("give the budget once: as budget= or in Controls(budget=...)")
    return replace(controls or _DEFAULT_CONTROLS, budget=budget)


def _invoke(
    graph: Any,
    graph_input: Any,
    thread: str,
    checkpointer: Any,
    settings: Settings | None,
    tracer: Tracer | None,
    tools: ToolGateway | None,
    controls: Controls,
    episodes: EpisodicMemory | bool | None,
) -> RunResult[Any]:
    settings = settings or Settings.from_env()
    role = role_of(graph)
    if checkpointer == "default":
        checkpointer = build_checkpointer(settings)
    if checkpointer is not None:
        graph = graph.copy(update={"checkpointer": checkpointer})
    guard = RunGuard(
        controls=controls,
        settings=settings,
        run_id=thread,
        workflow=getattr(role, "name", "graph"),
    )
    ctx = RunContext(
        settings=settings,
        tracer=tracer or build_tracer(settings),
        gateway=tools or ToolGateway(),
        run_id=thread,
        guard=guard,
    )
    config = {"configurable": {"thread_id": thread}}
    if not isinstance(graph_input, dict):
        check_layout(graph.checkpointer, config, thread)  # a resume: read the checkpoint once
    record = episodes if episodes is not None else settings.episodes
    if graph_input is None or isinstance(graph_input, Command):
        before = graph.get_state(config)
        if not before.values:
            raise RunError(f"thread '{thread}' has no checkpoint to resume", run_id=thread)
        if isinstance(graph_input, Command) and not before.next:
            raise RunError(
                f"thread '{thread}' has finished: it is not waiting for an answer",
                run_id=thread,
            )
        # A thread that had already finished does no work when invoked again; its
        # episode (reviewers' corrections included) is left as it is.
        record = record if before.next or not before.values else False
    state: Mapping[str, Any] | None = None
    with use_context(ctx):
        # "sync" writes each checkpoint before the next step starts, so a hard
        # crash never loses a finished step (the default "async" can).
        durability = "sync" if graph.checkpointer is not None else None
        try:
            out = graph.invoke(
                graph_input,
                config,
                durability=durability,
                output_keys=_output_keys(graph),
                version="v2",  # values only: v1 also builds every step's updates
            )
            state = out.value if isinstance(out.value, dict) else {}
            if out.interrupts:
                state = {**state, "__interrupt__": list(out.interrupts)}
        except RunStopped as stop:
            result = _stopped(thread, stop, guard)
    if state is not None:
        result = _result(role, thread, state)
        alerts = guard.finish()
        if guard.envelope is not None or alerts:
            result = replace(result, budget=guard.snapshot(), alerts=alerts)
    if record is False:
        return result
    from agentmesh.memory._episode_runs import record_finished

    return record_finished(
        result,
        None if record is True else record,
        lambda: _task_of(graph, config, graph_input, state),
        workflow=getattr(role, "name", None),
        settings=settings,
        role=role,
    )


_RUN_OUTPUT = ("task", "result", "ctl")


def _output_keys(graph: Any) -> list[str]:
    """The channels a run's result is read from (LangGraph assembles only these)."""
    channels = getattr(graph, "channels", None) or {}
    return [key for key in _RUN_OUTPUT if key in channels]


def _task_of(
    graph: Any, config: Any, graph_input: Any, state: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The run's task envelope: as given, else from its state (a resumed or stopped run)."""
    if isinstance(graph_input, dict):
        task: Mapping[str, Any] | None = graph_input["task"]
        return task
    if state is None:
        state = graph.get_state(config).values
    return state.get("task")


def _stopped(thread: str, stop: RunStopped, guard: RunGuard) -> RunResult[Any]:
    """The typed end of a run that a control stopped, with what it had done."""
    if isinstance(stop, BudgetExhaustedError):
        status = RunStatus.BUDGET_EXHAUSTED
    elif isinstance(stop, RunKilledError):
        status = RunStatus.KILLED
    else:
        status = RunStatus.HALTED
    partial = dict(guard.partial)
    # A finished lead's usage already includes its specialists': count each once.
    tops = [p for p in partial if not any(p.startswith(f"{q}/") for q in partial if q != p)]
    usage = sum((partial[p].usage for p in tops), Usage())
    return RunResult(
        run_id=thread,
        thread_id=thread,
        status=status,
        reason=str(stop),
        partial=partial,
        usage=usage,
        budget=guard.snapshot(),
        alerts=guard.finish(),
    )


def _result(role: Any, thread: str, state: Mapping[str, Any]) -> RunResult[Any]:
    interrupts: list[Interrupt] = list(state.get("__interrupt__", []))
    # A coordinator keeps its gates, spending and outcome in its bookkeeping channel
    # until it finishes (a paused run has them there only).
    ctl: Mapping[str, Any] = state.get("ctl") or {}
    gates = [GateDecision.model_validate(g) for g in ctl.get("gates", [])]
    raw = state.get("result")
    result: ResultMessage[Any] | None = ResultMessage.model_validate(raw) if raw else None
    # A paused run has no result yet: its usage is what its finished stages spent.
    usage = (
        result.usage
        if result
        else sum((Usage.model_validate(u) for u in ctl.get("spent", [])), Usage())
    )
    if interrupts:
        return RunResult(
            run_id=thread,
            thread_id=thread,
            status=RunStatus.AWAITING_HUMAN,
            reason=f"{len(interrupts)} question(s) for a human",
            human_requests=[HumanRequest(id=i.id, value=i.value) for i in interrupts],
            gates=gates,
            usage=usage,
        )
    outcome = ctl.get("outcome") or _specialist_outcome(result)
    output = None
    if result is not None and result.output is not None and role is not None:
        # The object the role validated when it finished, if ``raw`` is that very envelope.
        built = validated.claim(raw or {})
        output = built if type(built) is role.output else role.output.model_validate(result.output)
    return RunResult(
        run_id=thread,
        thread_id=thread,
        status=RunStatus(outcome["status"]),
        reason=outcome["reason"],
        output=output,
        result=result,
        escalation=result.escalation if result else None,
        gates=gates,
        usage=usage,
    )


def _specialist_outcome(result: ResultMessage[Any] | None) -> dict[str, Any]:
    if result is None:
        return {"status": RunStatus.HALTED.value, "reason": "the graph returned no result"}
    status = {"ok": RunStatus.COMPLETED, "escalated": RunStatus.ESCALATED}.get(
        result.status.value, RunStatus.HALTED
    )
    return {"status": status.value, "reason": result.error or result.summary}
