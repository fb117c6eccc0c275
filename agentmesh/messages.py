"""Envelopes exchanged on every hop: task, result, escalation and gate decision.

Envelopes are pydantic models because they cross boundaries (between agents,
into checkpoints, over the LangGraph server). Inside graph state they are kept
as JSON-mode dicts so any checkpointer can persist them; each node re-validates
what it reads.
"""

from __future__ import annotations

import os
import random
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from agentmesh.types import GateAction, Layer, ResultStatus

__all__ = [
    "EscalationMessage",
    "GateDecision",
    "ResultMessage",
    "TaskMessage",
    "Usage",
    "decision_json",
    "new_id",
    "result_json",
    "usage_json",
]

PayloadT = TypeVar("PayloadT")
OutputT = TypeVar("OutputT")


# Ids need to be unique, not secret. os.urandom() is a system call that releases the
# GIL, and a release inside a run's parallel branches costs a thread switch; a PRNG
# seeded from it is not. A forked child gets a new seed, so processes never share ids.
_IDS = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _IDS.seed(os.urandom(32)))


def new_id() -> str:
    """A short random id for tasks and runs (64 random bits, in hex)."""
    # Big-endian bytes in hex: the same 16 digits as ``f"{bits:016x}"``, faster.
    return _IDS.getrandbits(64).to_bytes(8, "big").hex()


class Usage(BaseModel):
    """Tokens, calls, cost and time spent on a task (children included)."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            model_calls=self.model_calls + other.model_calls,
            tool_calls=self.tool_calls + other.tool_calls,
            cost_usd=round(self.cost_usd + other.cost_usd, 8),
            latency_s=self.latency_s + other.latency_s,
        )


class TaskMessage(BaseModel, Generic[PayloadT]):
    """A unit of delegated work, sent from a parent to one agent."""

    task_id: str = Field(default_factory=new_id)
    parent_id: str | None = None
    run_id: str | None = None
    sender: str
    recipient: str
    goal: str = ""
    payload: PayloadT
    constraints: dict[str, Any] = Field(default_factory=dict)
    deadline: datetime | None = None
    feedback: str | None = Field(
        default=None, description="Why a previous attempt was rejected (set on retries)."
    )
    attempt: int = 1
    scope: str = Field(
        default="",
        description="Path of agents from the top role to the recipient ('' for the top "
        "role): names the budget envelope and the kill-switch scopes that cover the task.",
    )


class EscalationMessage(BaseModel):
    """A decision handed to a human (or a parent) instead of being guessed."""

    reason: str
    decision_point: str = Field(description="The agent/stage where the decision is needed.")
    context_summary: str = ""
    options: list[str] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)


class ResultMessage(BaseModel, Generic[OutputT]):
    """What an agent returns for one task: typed output plus how it got there."""

    task_id: str
    agent: str
    status: ResultStatus
    output: OutputT | None = None
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)
    evidence: list[str] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    summary: str = ""
    layer: Layer | None = None
    served_by: str = Field(
        default="", description="What produced the output: code, a model name, 'fallback:<fn>'."
    )
    degraded: bool = Field(
        default=False, description="True when a fallback or offline mode produced the output."
    )
    error: str | None = None
    escalation: EscalationMessage | None = None


def result_json(result: ResultMessage[Any]) -> dict[str, Any]:
    """``result.model_dump(mode="json")`` for an output already in JSON form.

    Results are written to graph state at every hop; this skips pydantic's
    serializer for them. An output that is not a dict (or ``None``), or an
    escalation, is serialized the usual way.
    """
    output = result.output
    if output is not None and not isinstance(output, dict):
        return result.model_dump(mode="json")
    usage = result.usage
    return {
        "task_id": result.task_id,
        "agent": result.agent,
        "status": result.status._value_,
        "output": output,
        "confidence": result.confidence,
        "evidence": list(result.evidence),
        "usage": usage_json(usage),
        "summary": result.summary,
        "layer": None if result.layer is None else result.layer._value_,
        "served_by": result.served_by,
        "degraded": result.degraded,
        "error": result.error,
        "escalation": None
        if result.escalation is None
        else result.escalation.model_dump(mode="json"),
    }


def usage_json(usage: Usage) -> dict[str, Any]:
    """``usage.model_dump(mode="json")``, without pydantic's serializer (a hot path)."""
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "model_calls": usage.model_calls,
        "tool_calls": usage.tool_calls,
        "cost_usd": usage.cost_usd,
        "latency_s": usage.latency_s,
    }


class GateDecision(BaseModel):
    """One validation gate's verdict on one stage's result."""

    gate: str
    stage: str
    action: GateAction
    reasons: list[str] = Field(default_factory=list)
    attempt: int = 1
    task_id: str | None = None


def decision_json(decision: GateDecision) -> dict[str, Any]:
    """``decision.model_dump(mode="json")``, without pydantic's serializer (a hot path)."""
    return {
        "gate": decision.gate,
        "stage": decision.stage,
        "action": decision.action._value_,
        "reasons": list(decision.reasons),
        "attempt": decision.attempt,
        "task_id": decision.task_id,
    }
