"""Stage wrappers used inside a coordinator's plan: parallel peers and conditional steps."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentmesh.errors import ConfigError

if TYPE_CHECKING:
    from typing import TypeAlias

    from pydantic import BaseModel

    from agentmesh.gates import Gate
    from agentmesh.lead import Lead
    from agentmesh.resolution import Resolver
    from agentmesh.specialist import Specialist

    Agent: TypeAlias = Specialist[Any, Any] | Lead[Any, Any]

__all__ = ["Parallel", "Results", "Step"]


class Parallel:
    """Agents run at the same time (LangGraph ``Send``), then joined.

    With a ``resolver`` the members are *peers*: they answer the same task with
    the same output schema and the resolver turns their answers into one. Without
    one, they are independent and all their outputs are kept.

    Example:
        ```python
        Parallel(policy_checker, risk_critic, name="review", resolver=Vote())
        ```
    """

    def __init__(
        self,
        *members: Agent,
        name: str,
        resolver: Resolver | None = None,
        gate: Gate | None = None,
    ) -> None:
        if len(members) < 2:
            raise ConfigError(f"parallel '{name}': needs at least two members")
        self.members: tuple[Agent, ...] = members
        self.name = name
        self.resolver = resolver
        self.gate = gate
        if resolver is not None:
            schemas = {m.output for m in members}
            if len(schemas) > 1:
                names = ", ".join(f"{m.name}->{m.output.__name__}" for m in members)
                raise ConfigError(
                    f"parallel '{name}': peers joined by a resolver must share one output "
                    f"schema ({names})"
                )

    @property
    def output(self) -> type[BaseModel]:
        """The peers' shared output schema (only meaningful with a resolver)."""
        return self.members[0].output

    def __repr__(self) -> str:
        return f"Parallel({', '.join(m.name for m in self.members)}, name={self.name!r})"


@dataclass(frozen=True, kw_only=True)
class Step:
    """A stage with a condition, a goal or a gate of its own.

    Attributes:
        agent: The agent (or parallel group) to run.
        when: Run only if ``when(fields)`` is true; ``fields`` are the values
            produced so far. Routing that code can decide never goes to a model.
        goal: The goal sent in the task message.
        gate: Overrides the agent's own gate for this stage.
    """

    agent: Agent | Parallel
    when: Callable[[Mapping[str, Any]], bool] | None = None
    goal: str = ""
    gate: Gate | None = None

    @property
    def name(self) -> str:
        """The stage name (the agent's)."""
        return self.agent.name


class Results(Mapping[str, Any]):
    """Typed stage outputs handed to a coordinator's ``synthesize`` function.

    ``results["extract"]`` is the typed output of stage ``extract``;
    ``results.input`` is the coordinator's typed input; ``results.fields`` are
    all field values produced so far.
    """

    def __init__(
        self, input: BaseModel, outputs: Mapping[str, BaseModel], fields: Mapping[str, Any]
    ) -> None:
        self.input = input
        self._outputs = dict(outputs)
        self.fields = dict(fields)

    def __getitem__(self, name: str) -> Any:
        return self._outputs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._outputs)

    def __len__(self) -> int:
        return len(self._outputs)
