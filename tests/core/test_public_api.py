"""The public surface: ``agentmesh.__all__`` and the exception tree."""

import importlib
import inspect

import agentmesh
import agentmesh.errors as errors

EXPECTED_ALL = {
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
}


def test_all_is_exactly_the_expected_public_names() -> None:
    assert len(agentmesh.__all__) == len(set(agentmesh.__all__)), "duplicates in __all__"
    assert set(agentmesh.__all__) == EXPECTED_ALL


def test_every_public_name_is_importable() -> None:
    module = importlib.import_module("agentmesh")
    for name in agentmesh.__all__:
        assert getattr(module, name, None) is not None, name
    namespace: dict[str, object] = {}
    exec("from agentmesh import *", namespace)
    assert set(namespace) | {"__version__"} >= EXPECTED_ALL
    assert isinstance(agentmesh.__version__, str)
    assert agentmesh.__version__


def test_every_error_class_subclasses_agentmesh_error() -> None:
    classes = [
        obj
        for obj in vars(errors).values()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == errors.__name__
    ]
    assert len(classes) >= 13
    for cls in classes:
        assert issubclass(cls, errors.AgentMeshError), cls
        assert cls.__name__ in errors.__all__, cls
        assert getattr(agentmesh, cls.__name__) is cls


def test_error_tree_shape() -> None:
    config = {
        errors.SchemaMismatchError,
        errors.CardError,
        errors.ModelConfigError,
        errors.WorkspaceError,
        errors.MissingExtraError,
    }
    run = {
        errors.ModelOutputError,
        errors.ModelUnavailableError,
        errors.ToolError,
        errors.HumanInputError,
        errors.CheckpointLayoutError,
    }
    assert all(issubclass(c, errors.ConfigError) for c in config)
    assert all(issubclass(c, errors.RunError) for c in run)
    assert not any(issubclass(c, errors.RunError) for c in config)
    assert not any(issubclass(c, errors.ConfigError) for c in run)
    assert issubclass(errors.ToolPermissionError, errors.ToolError)


def test_errors_carry_their_details() -> None:
    err = errors.SchemaMismatchError(producer="a", consumer="lead/b", problems=["x", "y"])
    assert str(err) == "a cannot feed lead/b: x; y"
    card = errors.CardError("agents/x.toml", "owner", "is required")
    assert str(card) == "agents/x.toml: field 'owner': is required"
    extra = errors.MissingExtraError("tracing", "langfuse", "langfuse")
    assert "pip install 'agentmesh[langfuse]'" in str(extra)
    out = errors.ModelOutputError("bad", attempts=3, last_error="count", agent="judge")
    assert (out.attempts, out.last_error, out.agent) == (3, "count", "judge")
