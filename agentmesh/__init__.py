"""agentmesh: production multi-agent systems on LangGraph.

Meta, lead and specialist agents compile to LangGraph graphs that exchange
pydantic-typed envelopes, pass validation gates between stages, resolve peer
conflicts in code, and end every run in a typed terminal state.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from agentmesh.cards import AgentCard, CardSet, load_cards
from agentmesh.controls import Budget, Controls
from agentmesh.errors import (
    AgentMeshError,
    BudgetExhaustedError,
    CallTimeoutError,
    CardError,
    CheckpointLayoutError,
    CircuitOpenError,
    ConfigError,
    HumanInputError,
    MissingExtraError,
    ModelConfigError,
    ModelOutputError,
    ModelUnavailableError,
    RunawayError,
    RunError,
    RunKilledError,
    RunStopped,
    SchemaMismatchError,
    ToolError,
    ToolPermissionError,
    TransientError,
    WorkspaceError,
)
from agentmesh.gates import Check, Gate, check, consistent, fresh, in_range, require
from agentmesh.lead import Lead, Meta, Planner
from agentmesh.messages import EscalationMessage, GateDecision, ResultMessage, TaskMessage, Usage
from agentmesh.resolution import (
    ConfidenceWeighted,
    EscalateOnDisagreement,
    PeerOutcome,
    Priority,
    Reconcile,
    ReconcileInput,
    Resolution,
    Resolver,
    Vote,
)
from agentmesh.run import HumanRequest, RunResult, resume, run
from agentmesh.settings import Settings
from agentmesh.specialist import AgentContext, Answer, Specialist, specialist
from agentmesh.stages import Parallel, Results, Step
from agentmesh.tools import ToolGateway
from agentmesh.types import Autonomy, GateAction, Layer, ResultStatus, RoleKind, RunStatus

try:
    __version__ = version("agentmesh")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    # roles
    "AgentContext",
    "Answer",
    "Lead",
    "Meta",
    "Parallel",
    "Planner",
    "Results",
    "Specialist",
    "Step",
    "specialist",
    # agent cards
    "AgentCard",
    "CardSet",
    "load_cards",
    # messages and value types
    "Autonomy",
    "EscalationMessage",
    "GateAction",
    "GateDecision",
    "Layer",
    "ResultMessage",
    "ResultStatus",
    "RoleKind",
    "RunStatus",
    "TaskMessage",
    "Usage",
    # gates
    "Check",
    "Gate",
    "check",
    "consistent",
    "fresh",
    "in_range",
    "require",
    # resolution
    "ConfidenceWeighted",
    "EscalateOnDisagreement",
    "PeerOutcome",
    "Priority",
    "Reconcile",
    "ReconcileInput",
    "Resolution",
    "Resolver",
    "Vote",
    # running
    "Budget",
    "Controls",
    "HumanRequest",
    "RunResult",
    "Settings",
    "ToolGateway",
    "resume",
    "run",
    # errors
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
    "__version__",
]
