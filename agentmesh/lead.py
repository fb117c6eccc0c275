"""Coordinators: leads run specialists, metas run leads. Both compile to LangGraph graphs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from agentmesh.errors import ConfigError
from agentmesh.messages import TaskMessage
from agentmesh.types import RoleKind

if TYPE_CHECKING:
    from typing import TypeAlias

    from langgraph.graph.state import CompiledStateGraph

    from agentmesh.gates import Gate
    from agentmesh.settings import Settings
    from agentmesh.specialist import Specialist
    from agentmesh.stages import Parallel, Results, Step

    Stage: TypeAlias = "Specialist[Any, Any] | Lead[Any, Any] | Parallel | Step"

__all__ = ["Lead", "Meta", "Planner"]

InT = TypeVar("InT", bound=BaseModel)
OutT = TypeVar("OutT", bound=BaseModel)

# A planner returns the names of the stages to run, in order. It sees the task
# and, when re-planning, why the previous plan was rejected.
Planner = Callable[[TaskMessage[Any], str | None], Sequence[str]]


@dataclass(frozen=True, kw_only=True)
class Lead(Generic[InT, OutT]):
    """Decomposes a goal into tasks for its stages and returns one typed result.

    Data flows by field name: a stage's input is assembled from the lead's input
    and the outputs of earlier stages (a stage's whole output is also available
    under the stage's name). Every required input field must be produced by an
    earlier stage with a compatible type, or building the graph fails.

    Attributes:
        name: Unique agent name.
        input: Pydantic model of the lead's task payload.
        output: Pydantic model of its result.
        stages: Specialists, leads, ``Parallel`` groups or ``Step`` wrappers, in order.
        planner: Chooses the stages to run (code or model); default: all, in order.
        synthesize: Builds the output from the typed stage results; default: the
            output's fields are taken by name from what the stages produced.
        gate: Gate on this lead's output, applied by its parent.
        max_steps: Stage executions (retries included) before it escalates.
        max_replans: Re-plans before it escalates.
        goal: Default goal text for its tasks.
        description: One line for pictures and plans.
        episode_subject: What a run was about (a vendor, a customer...), recorded as
            its episode's ``subject`` when episodic memory records the run: called with
            the typed input and the output (``None`` when the run ended without one).
            Learning loops and semantic memory group episodes by it. Never called
            while episodes are off.
    """

    name: str
    input: type[InT]
    output: type[OutT]
    stages: Sequence[Stage]
    planner: Planner | None = None
    synthesize: Callable[[Results], OutT] | None = None
    gate: Gate | None = None
    max_steps: int = 40
    max_replans: int = 2
    goal: str = ""
    version: str = "0"
    description: str = ""
    episode_subject: Callable[[InT, OutT | None], str | None] | None = None

    kind: ClassVar[RoleKind] = RoleKind.LEAD

    def __post_init__(self) -> None:
        if not self.stages:
            raise ConfigError(f"{self.kind} '{self.name}': needs at least one stage")
        if self.max_steps < 1:
            raise ConfigError(f"{self.kind} '{self.name}': max_steps must be >= 1")
        if self.episode_subject is not None and not callable(self.episode_subject):
            raise ConfigError(f"{self.kind} '{self.name}': episode_subject must be callable")
        from agentmesh._runtime.dataflow import check_coordinator

        check_coordinator(self)

    def compile(
        self,
        *,
        checkpointer: Any = None,
        settings: Settings | None = None,
        name: str | None = None,
    ) -> CompiledStateGraph[Any, Any, Any, Any]:
        """Compile to a LangGraph graph, usable alone or as a subgraph of a parent.

        Args:
            checkpointer: Any LangGraph checkpointer. Leave ``None`` for graphs
                served by LangGraph's server (it brings its own) or run through
                :func:`agentmesh.run` (which attaches the persistent default).
            settings: Model and tracing settings; default: from the environment.
            name: Graph name; default: the agent's name.
        """
        from agentmesh._runtime.graph_builder import compile_coordinator

        return compile_coordinator(self, checkpointer=checkpointer, settings=settings, name=name)


@dataclass(frozen=True, kw_only=True)
class Meta(Lead[InT, OutT]):
    """Holds the business goal, delegates to leads and synthesizes the final result."""

    kind: ClassVar[RoleKind] = RoleKind.META
    max_steps: int = 20
