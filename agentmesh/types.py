"""Value types shared across agentmesh: layers, statuses and gate actions."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

__all__ = [
    "Autonomy",
    "GateAction",
    "Layer",
    "LayerName",
    "ResultStatus",
    "RoleKind",
    "RunStatus",
]

LayerName = Literal["code", "small_model", "frontier_model", "human"]


class Layer(StrEnum):
    """The cheapest execution layer that can do a task reliably.

    Ordered from cheapest to most expensive; routing never picks a model where
    code can decide.
    """

    CODE = "code"
    SMALL_MODEL = "small_model"
    FRONTIER_MODEL = "frontier_model"
    HUMAN = "human"

    @property
    def uses_model(self) -> bool:
        """Whether the layer calls a chat model."""
        return self in (Layer.SMALL_MODEL, Layer.FRONTIER_MODEL)


class RoleKind(StrEnum):
    """Where an agent sits in a hierarchy."""

    META = "meta"
    LEAD = "lead"
    SPECIALIST = "specialist"


class Autonomy(StrEnum):
    """How much an agent may do without a human (from its card)."""

    SUGGEST = "suggest"
    ACT_WITH_REVIEW = "act_with_review"
    AUTONOMOUS = "autonomous"


class ResultStatus(StrEnum):
    """Status of one task's result."""

    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"
    ESCALATED = "escalated"
    HALTED = "halted"


class RunStatus(StrEnum):
    """How a run ended. Every run ends in exactly one of these, with a reason.

    ``AWAITING_HUMAN`` is the one non-terminal state: the run is paused on an
    interrupt and resumes from its thread.
    """

    COMPLETED = "completed"
    ESCALATED = "escalated"
    HALTED = "halted"
    KILLED = "killed"
    BUDGET_EXHAUSTED = "budget_exhausted"
    AWAITING_HUMAN = "awaiting_human"


class GateAction(StrEnum):
    """What a validation gate decides for the stage behind it."""

    PASS = "pass"
    RETRY = "retry"
    REPLAN = "replan"
    ESCALATE = "escalate"
    HALT = "halt"

    @property
    def severity(self) -> int:
        """Rank used to combine several failed checks: the strictest wins."""
        return _SEVERITY[self]


_SEVERITY = {
    GateAction.PASS: 0,
    GateAction.RETRY: 1,
    GateAction.REPLAN: 2,
    GateAction.ESCALATE: 3,
    GateAction.HALT: 4,
}
