"""The agentmesh exception tree.

Usage errors (a mistake in how a graph, card or setting is written) are raised
when the graph is *built*, before any run starts. Run errors are raised while a
run executes and carry the run id and the object that failed.

```
AgentMeshError
├── ConfigError                  a mistake in code, cards or settings (build time)
│   ├── SchemaMismatchError      a producer's output cannot feed its consumer
│   ├── CardError                an agent card file is invalid (names file and field)
│   ├── ModelConfigError         a model reference cannot be resolved
│   ├── WorkspaceError           a graph module cannot be loaded
│   └── MissingExtraError        an optional dependency is not installed
└── RunError                     something failed while a run executed
    ├── ModelOutputError         a model kept answering outside its output schema
    ├── ModelUnavailableError    no model could answer (offline, provider down)
    ├── ToolError                a tool call failed or was refused
    │   └── ToolPermissionError  an agent proposed a tool it is not allowed to use
    └── HumanInputError          a human's answer did not match the expected schema
```
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AgentMeshError",
    "CardError",
    "ConfigError",
    "HumanInputError",
    "MissingExtraError",
    "ModelConfigError",
    "ModelOutputError",
    "ModelUnavailableError",
    "RunError",
    "SchemaMismatchError",
    "ToolError",
    "ToolPermissionError",
    "WorkspaceError",
]


class AgentMeshError(Exception):
    """Root of every error agentmesh raises."""


class ConfigError(AgentMeshError):
    """A mistake in how a graph, card or setting is written; raised at build time."""


class SchemaMismatchError(ConfigError):
    """A producer's output schema cannot feed its consumer's input schema.

    Attributes:
        producer: Name of the stage (or input) that produces the data.
        consumer: Name of the stage that consumes it.
        problems: One line per missing or incompatible field.
    """

    def __init__(self, *, producer: str, consumer: str, problems: list[str]) -> None:
        self.producer = producer
        self.consumer = consumer
        self.problems = problems
        detail = "; ".join(problems)
        source = "no earlier stage" if producer == "nothing" else producer
        super().__init__(f"{source} cannot feed {consumer}: {detail}")


class CardError(ConfigError):
    """An agent card is invalid.

    Attributes:
        path: The card file.
        field: The offending field (dotted), or ``None`` for file-level errors.
    """

    def __init__(self, path: str, field: str | None, message: str) -> None:
        self.path = path
        self.field = field
        where = f"{path}: field '{field}'" if field else path
        super().__init__(f"{where}: {message}")


class ModelConfigError(ConfigError):
    """A model reference (such as ``openai:gpt-4o-mini``) cannot be resolved."""


class WorkspaceError(ConfigError):
    """A workspace module (for example ``graphs/invoices.py``) cannot be loaded."""


class MissingExtraError(ConfigError):
    """An optional feature needs a package that is not installed.

    The message names the ``pip install`` command that adds it.
    """

    def __init__(self, feature: str, extra: str, package: str) -> None:
        self.feature = feature
        self.extra = extra
        super().__init__(
            f"{feature} needs the '{package}' package: pip install 'agentmesh[{extra}]'"
        )


class RunError(AgentMeshError):
    """Something failed while a run executed.

    Attributes:
        run_id: The run (thread) in which it failed, when known.
        agent: The agent that failed, when known.
    """

    def __init__(self, message: str, *, run_id: str | None = None, agent: str | None = None):
        self.run_id = run_id
        self.agent = agent
        super().__init__(message)


class ModelOutputError(RunError):
    """A model kept answering outside its output schema after bounded retries.

    Attributes:
        attempts: How many answers were tried.
        last_error: The last validation error, as text.
    """

    def __init__(
        self, message: str, *, attempts: int, last_error: str, agent: str | None = None
    ) -> None:
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(message, agent=agent)


class ModelUnavailableError(RunError):
    """No model could answer: none is configured (offline) or the provider failed."""


class ToolError(RunError):
    """A tool call failed or was refused by the gateway.

    Attributes:
        tool: The tool's name.
        details: Structured data about the failure.
    """

    def __init__(
        self,
        message: str,
        *,
        tool: str,
        agent: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.tool = tool
        self.details = details or {}
        super().__init__(message, agent=agent)


class ToolPermissionError(ToolError):
    """An agent proposed a tool call it is not allowed to make."""


class HumanInputError(RunError):
    """A human's resume value did not validate against the expected schema."""
