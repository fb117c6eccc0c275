"""Specialists: leaf agents that do one well-scoped, typed task."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar, get_type_hints

from pydantic import BaseModel

from agentmesh.errors import ConfigError
from agentmesh.tools import ToolLike, to_tool
from agentmesh.types import Autonomy, Layer, LayerName, RoleKind

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.tools import BaseTool
    from langgraph.graph.state import CompiledStateGraph

    from agentmesh.gates import Gate
    from agentmesh.memory.context import ContextBudget
    from agentmesh.messages import TaskMessage
    from agentmesh.settings import Settings

__all__ = ["AgentContext", "Answer", "Specialist", "specialist"]

InT = TypeVar("InT", bound=BaseModel)
OutT = TypeVar("OutT", bound=BaseModel)


@dataclass(kw_only=True)
class AgentContext:
    """What a code function (or fallback) may use besides its typed input.

    Attributes:
        task: The task envelope being worked on.
        agent: The agent's name.
        feedback: Why the previous attempt was rejected, on a retry.
    """

    task: TaskMessage[Any]
    agent: str
    feedback: str | None
    _call_tool: Callable[[str, dict[str, Any]], Any]

    def call_tool(self, name: str, **args: Any) -> Any:
        """Run a declared tool through the run's tool gateway."""
        return self._call_tool(name, args)


@dataclass(frozen=True, kw_only=True)
class Answer(Generic[OutT]):
    """A code function's output with the confidence and evidence behind it."""

    value: OutT
    confidence: float = 1.0
    evidence: Sequence[str] = ()
    summary: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"Answer confidence must be within 0..1, got {self.confidence}")


# A code function takes the typed input (and optionally the context) and
# returns the typed output, or an Answer around it.
CodeFn = Callable[..., Any]


@dataclass(frozen=True, kw_only=True)
class Specialist(Generic[InT, OutT]):
    """A leaf agent with typed input and output and one execution layer.

    Attributes:
        name: Unique agent name.
        input: Pydantic model of the task payload.
        output: Pydantic model of the result; model answers are validated against it.
        layer: The cheapest layer that does the task reliably.
        fn: The function run by the ``code`` layer.
        prompt: System prompt for the model layers.
        model: Chat model or ``provider:model`` reference; defaults to the layer's
            model from settings, or offline when none is configured.
        fallback: Deterministic function used when the model is unavailable,
            offline, or keeps answering outside the schema.
        tools: Tools the agent may propose (least privilege: nothing else).
        max_output_retries: Extra attempts after an answer fails validation.
        max_tool_rounds: Model/tool round trips before the task fails.
        confidence: Confidence assigned to model answers (0-1).
        gate: Validation gate on this agent's output (used by its parent).
        autonomy: From the agent's card.
        version: From the agent's card.
        description: One line shown in pictures and plans.
        fallback_models: Other models or providers tried in order when the model
            fails (after its retries, or with its breaker open), before ``fallback``.
        context_budget: Token budget of a model agent's working context: older
            tool rounds are summarized and externalized (``recall_step`` fetches
            them back) while the goal and task stay pinned. ``None``: unbounded.
        cache_ttl_s: For a deterministic ``code`` agent that calls no tools: reuse
            its answer to the same input (and version) for this many seconds
            (LangGraph's node cache, per process). ``None``: always run.
        episode_subject: What a run of this agent was about (a vendor, a customer...),
            recorded as its episode's ``subject`` when episodic memory records the run:
            called with the typed input and the output (``None`` when the run ended
            without one). Never called while episodes are off.
    """

    name: str
    input: type[InT]
    output: type[OutT]
    layer: Layer | LayerName = Layer.CODE
    fn: CodeFn | None = None
    prompt: str = ""
    model: str | BaseChatModel | None = None
    fallback: CodeFn | None = None
    tools: Sequence[ToolLike] = ()
    max_output_retries: int = 2
    max_tool_rounds: int = 4
    confidence: float = 0.8
    gate: Gate | None = None
    autonomy: Autonomy = Autonomy.AUTONOMOUS
    version: str = "0"
    description: str = ""
    fallback_models: Sequence[str | BaseChatModel] = ()
    context_budget: ContextBudget | None = None
    cache_ttl_s: float | None = None
    episode_subject: Callable[[InT, OutT | None], str | None] | None = None
    _tools: dict[str, BaseTool] = field(init=False, repr=False, compare=False)

    kind = RoleKind.SPECIALIST

    def __post_init__(self) -> None:
        object.__setattr__(self, "layer", Layer(self.layer))
        where = f"specialist '{self.name}'"
        for attr in ("input", "output"):
            schema = getattr(self, attr)
            if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
                raise ConfigError(
                    f"{where}: '{attr}' must be a pydantic model class, got {schema!r}"
                )
        if self.layer is Layer.CODE and self.fn is None:
            raise ConfigError(f"{where}: layer 'code' needs fn=")
        if self.layer is not Layer.CODE and self.fn is not None:
            raise ConfigError(f"{where}: fn= is only for layer 'code'; use fallback= for models")
        if not 0.0 <= self.confidence <= 1.0:
            raise ConfigError(f"{where}: confidence must be within 0..1, got {self.confidence}")
        if self.max_output_retries < 0 or self.max_tool_rounds < 1:
            raise ConfigError(f"{where}: max_output_retries >= 0 and max_tool_rounds >= 1 required")
        if self.episode_subject is not None and not callable(self.episode_subject):
            raise ConfigError(f"{where}: episode_subject must be callable")
        tools = {t.name: t for t in (to_tool(t) for t in self.tools)}
        object.__setattr__(self, "_tools", tools)
        if self.fallback_models and not self.execution_layer.uses_model:
            raise ConfigError(f"{where}: fallback_models is for model agents")
        if self.context_budget is not None and self.layer is Layer.CODE:
            raise ConfigError(f"{where}: context_budget is for model agents")
        if self.cache_ttl_s is not None and (
            self.layer is not Layer.CODE or tools or self.cache_ttl_s <= 0
        ):
            raise ConfigError(
                f"{where}: cache_ttl_s is for deterministic code agents without tools, "
                "and must be > 0"
            )

    @property
    def execution_layer(self) -> Layer:
        """The layer as the enum (``layer`` also accepts its string name)."""
        return Layer(self.layer)

    @property
    def allowed_tools(self) -> dict[str, BaseTool]:
        """The tools this agent declared, by name."""
        return self._tools

    def compile(
        self, *, checkpointer: Any = None, settings: Settings | None = None
    ) -> CompiledStateGraph[Any, Any, Any, Any]:
        """Compile this specialist on its own into a one-node LangGraph graph."""
        from agentmesh._runtime.graph_builder import compile_specialist

        return compile_specialist(self, checkpointer=checkpointer, settings=settings)


def specialist(
    *,
    name: str | None = None,
    layer: Layer | LayerName = Layer.CODE,
    gate: Gate | None = None,
    tools: Sequence[ToolLike] = (),
    description: str = "",
    cache_ttl_s: float | None = None,
) -> Callable[[CodeFn], Specialist[Any, Any]]:
    """Turn a typed function into a ``code``-layer specialist.

    The input and output schemas come from the function's annotations: its
    first parameter and its return type must be pydantic models.

    Example:
        ```python
        @specialist()
        def parse(raw: RawInvoice) -> ParsedInvoice: ...
        ```
    """

    def wrap(fn: CodeFn) -> Specialist[Any, Any]:
        hints = get_type_hints(fn)
        params = list(inspect.signature(fn).parameters)
        agent = name or fn.__name__
        if not params or params[0] not in hints or "return" not in hints:
            raise ConfigError(
                f"specialist '{agent}': annotate the first parameter and the return type "
                "with pydantic models"
            )
        return Specialist(
            name=agent,
            input=hints[params[0]],
            output=hints["return"],
            layer=Layer(layer),
            fn=fn,
            gate=gate,
            tools=tools,
            description=description or (inspect.getdoc(fn) or "").split("\n")[0],
            cache_ttl_s=cache_ttl_s,
        )

    return wrap
