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
    ├── HumanInputError          a human's answer did not match the expected schema
    ├── TransientError           a call failed in a way worth retrying (429, 5xx, timeout)
    │   └── CallTimeoutError     a model or tool call ran past its timeout
    ├── CircuitOpenError         a breaker is open: the call failed fast, not made
    ├── CheckpointLayoutError    a thread was checkpointed by an earlier state layout
    └── RunStopped               the run must stop now (not an agent failure)
        ├── BudgetExhaustedError a hard budget cap would be exceeded
        ├── RunKilledError       a kill switch covering this run is set
        └── RunawayError         a retry storm, re-plan storm or stale loop was detected
```

``RunStopped`` and its subclasses are control flow: the runtime never turns
them into a failed result or a fallback; they end the run in the matching
typed state (``budget_exhausted``, ``killed``, ``halted``) with its partial
results, and a killed run can be resumed from its thread.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AgentMeshError",
    "BudgetExhaustedError",
    "CallTimeoutError",
    "CardError",
    "CheckpointLayoutError",
    "CircuitOpenError",
    "ConfigError",
    "HumanInputError",
    "MissingExtraError",
    "ModelConfigError",
    "ModelOutputError",
    "ModelUnavailableError",
    "RunError",
    "RunKilledError",
    "RunStopped",
    "RunawayError",
    "SchemaMismatchError",
    "ToolError",
    "ToolPermissionError",
    "TransientError",
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


class TransientError(RunError):
    """A call failed in a way that is worth retrying: 429, 5xx, a timeout, a dropped connection.

    Attributes:
        target: The model endpoint or tool that failed.
        retry_after_s: The server's ``Retry-After`` hint in seconds, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        target: str,
        retry_after_s: float | None = None,
        agent: str | None = None,
    ) -> None:
        self.target = target
        self.retry_after_s = retry_after_s
        super().__init__(message, agent=agent)


class CallTimeoutError(TransientError):
    """A model or tool call ran past its timeout."""


class CircuitOpenError(RunError):
    """The breaker for ``target`` is open: the call failed fast and was not made.

    Attributes:
        target: The model endpoint or tool whose breaker is open.
        retry_in_s: Seconds until the breaker lets a trial call through.
    """

    def __init__(self, message: str, *, target: str, retry_in_s: float) -> None:
        self.target = target
        self.retry_in_s = retry_in_s
        super().__init__(message)


class CheckpointLayoutError(RunError):
    """A thread's checkpoint was written by an earlier agentmesh state layout.

    Resuming it with this version would lose what the coordinator already knew
    (its board of fields, gate decisions, usage), so it is refused before any
    step runs. Finish the thread with the agentmesh version that started it.

    Attributes:
        thread_id: The thread whose checkpoint was refused.
        channels: The earlier layout's channels found in the checkpoint.
    """

    def __init__(self, message: str, *, thread_id: str, channels: tuple[str, ...]) -> None:
        self.thread_id = thread_id
        self.channels = channels
        super().__init__(message, run_id=thread_id)


class RunStopped(RunError):
    """The run must stop now; control flow, never turned into a failed result or fallback."""


class BudgetExhaustedError(RunStopped):
    """A hard cap would be exceeded, so the step or call was not started.

    Attributes:
        scope: The envelope that refused (for example ``"run"`` or ``"run/intake"``).
        limit: Which cap: ``tokens``, ``cost_usd``, ``model_calls``, ``steps`` or ``wall_clock_s``.
        cap: The cap's value.
        needed: What the refused step or call would have brought the total to.
    """

    def __init__(
        self,
        message: str,
        *,
        scope: str,
        limit: str,
        cap: float,
        needed: float,
        run_id: str | None = None,
        agent: str | None = None,
    ) -> None:
        self.scope = scope
        self.limit = limit
        self.cap = cap
        self.needed = needed
        super().__init__(message, run_id=run_id, agent=agent)


class RunKilledError(RunStopped):
    """A kill switch covering this run is set.

    Attributes:
        scope: What the switch covers: ``"all"``, ``"workflow:NAME"`` or ``"agent:NAME"``.
        reason: The reason given when the switch was set.
    """

    def __init__(self, message: str, *, scope: str, reason: str, run_id: str | None = None):
        self.scope = scope
        self.reason = reason
        super().__init__(message, run_id=run_id)


class RunawayError(RunStopped):
    """A retry storm, re-plan storm or stale-condition loop was detected.

    Attributes:
        kind: ``"retry_storm"``, ``"replan_storm"`` or ``"stale_loop"``.
    """

    def __init__(self, message: str, *, kind: str, run_id: str | None = None):
        self.kind = kind
        super().__init__(message, run_id=run_id)
