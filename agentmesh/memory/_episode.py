"""What episodic memory keeps: an episode per finished run, with reviewers' corrections."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from agentmesh.errors import ConfigError
from agentmesh.types import RunStatus

if TYPE_CHECKING:
    from agentmesh.messages import GateDecision, ResultMessage
    from agentmesh.run import RunResult

__all__ = [
    "Correction",
    "Episode",
    "EpisodeAction",
    "EpisodeOutcome",
    "episode_from_run",
    "summarize",
    "task_text",
]

_SPACE = re.compile(r"\s+")
_EVIDENCE = re.compile(r"^(?P<agent>[\w.-]+) (?P<status>[a-z_]+): (?P<summary>.*)$", re.DOTALL)


class Correction(BaseModel):
    """A reviewer's correction of one field of a run's output.

    Attributes:
        field: The output field corrected (``vendor_id``, ``category``, ...).
        new: The right value.
        old: The value the run produced; filled from the episode's output when omitted.
        reviewer: Who corrected it.
        note: Why, in the reviewer's words.
        at: Epoch seconds; set by :meth:`~agentmesh.memory.EpisodicMemory.correct` when
            omitted.
    """

    model_config = ConfigDict(frozen=True)

    field: str
    new: JsonValue
    old: JsonValue = None
    reviewer: str
    note: str = ""
    at: float | None = None


class EpisodeAction(BaseModel):
    """One step of a run, as its result and gates reported it.

    Attributes:
        agent: The agent path (``back_office/intake``); gate steps name the stage gated.
        status: ``ok``, ``escalated``, ``completed``..., or ``gate:<action>`` for a gate.
        summary: What the step reported.
    """

    model_config = ConfigDict(frozen=True)

    agent: str
    status: str
    summary: str = ""


class EpisodeOutcome(BaseModel):
    """How the run ended."""

    model_config = ConfigDict(frozen=True)

    status: RunStatus
    reason: str


class Episode(BaseModel):
    """One finished run: what was asked, what was done, how it ended, what a human fixed.

    Attributes:
        id: The episode id (the run id by default).
        workflow: The top-level agent's name.
        goal: The task's goal text.
        subject: What the run was about (a vendor, a customer...), if the caller (or,
            for runs recorded by ``agentmesh.run``, the role's ``episode_subject``) says;
            semantic memory distills facts per subject.
        input_summary: The task input, flattened and shortened.
        actions: The steps the run reported, in order.
        outcome: Terminal status and reason.
        output: The typed output in JSON form, when the run produced one.
        output_summary: The output (or the result summary), flattened and shortened.
        corrections: Reviewers' corrections, oldest first.
        created_at: Epoch seconds when the episode was recorded.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    workflow: str
    goal: str = ""
    subject: str | None = None
    input_summary: str
    actions: list[EpisodeAction] = Field(default_factory=list)
    outcome: EpisodeOutcome
    output: dict[str, JsonValue] | None = None
    output_summary: str = ""
    corrections: list[Correction] = Field(default_factory=list)
    created_at: float

    @property
    def task_text(self) -> str:
        """The text the episode is recalled by: goal and input summary."""
        return "\n".join(t for t in (self.goal, self.input_summary) if t)

    @property
    def corrected_output(self) -> dict[str, JsonValue] | None:
        """The output with every correction applied (the latest per field wins)."""
        if self.output is None and not self.corrections:
            return None
        fixed = dict(self.output or {})
        fixed.update({c.field: c.new for c in self.corrections})
        return fixed

    def latest_correction(self, field: str) -> Correction | None:
        """The newest correction of ``field``, if any."""
        return next((c for c in reversed(self.corrections) if c.field == field), None)


def summarize(value: Any, limit: int) -> str:
    """``value`` as one line of ``key: value`` pairs (or text), at most ``limit`` characters."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, Mapping):
        text = "; ".join(f"{k}: {_flat(v)}" for k, v in value.items() if v not in (None, "", []))
    else:
        text = _flat(value)
    return text if len(text) <= limit else text[: max(0, limit - 3)].rstrip() + "..."


def task_text(task: Any, *, goal: str = "", limit: int = 1000) -> str:
    """The text an episode for ``task`` is recalled by (as :attr:`Episode.task_text`)."""
    return "\n".join(t for t in (goal, summarize(task, limit)) if t)


def episode_from_run(
    run: RunResult[Any],
    task: Any,
    *,
    workflow: str | None,
    goal: str,
    subject: str | None,
    episode_id: str | None,
    created_at: float,
    limit: int,
) -> Episode:
    """The episode of a finished run (see :meth:`~agentmesh.memory.EpisodicMemory.record`).

    Raises:
        ConfigError: The run is still awaiting a human, or its workflow cannot be told.
    """
    if run.status is RunStatus.AWAITING_HUMAN:
        raise ConfigError(f"run {run.run_id!r} is awaiting a human: record it once it has finished")
    name = workflow or _workflow_of(run)
    output = run.output.model_dump(mode="json") if run.output is not None else None
    if output is None and run.result is not None and isinstance(run.result.output, Mapping):
        output = json.loads(json.dumps(run.result.output, default=str))
    if output is not None:
        output_summary = summarize(output, limit)
    else:
        output_summary = summarize(run.result.summary if run.result else run.reason, limit)
    return Episode(
        id=episode_id or run.run_id,
        workflow=name,
        goal=goal,
        subject=subject,
        input_summary=summarize(task, limit),
        actions=_actions(run, name),
        outcome=EpisodeOutcome(status=run.status, reason=run.reason),
        output=output,
        output_summary=output_summary,
        created_at=created_at,
    )


def _workflow_of(run: RunResult[Any]) -> str:
    if run.result is not None:
        return run.result.agent
    if run.partial:
        return min(run.partial).split("/")[0]
    raise ConfigError(f"run {run.run_id!r} has no result to name its workflow: give workflow=")


def _actions(run: RunResult[Any], workflow: str) -> list[EpisodeAction]:
    actions = [_partial_action(path, msg) for path, msg in sorted(run.partial.items())]
    if run.result is not None:
        actions += [_evidence_action(workflow, line) for line in run.result.evidence]
        actions.append(
            EpisodeAction(
                agent=run.result.agent,
                status=run.result.status.value,
                summary=_flat(run.result.summary),
            )
        )
    actions += [_gate_action(workflow, g) for g in run.gates]
    return actions


def _partial_action(path: str, msg: ResultMessage[Any]) -> EpisodeAction:
    return EpisodeAction(agent=path, status=msg.status.value, summary=_flat(msg.summary))


def _evidence_action(workflow: str, line: str) -> EpisodeAction:
    # A coordinator's evidence lines are its children's summaries, "<agent> <status>: ...".
    match = _EVIDENCE.match(line)
    if match is None:
        return EpisodeAction(agent=workflow, status="evidence", summary=_flat(line))
    return EpisodeAction(
        agent=f"{workflow}/{match['agent']}",
        status=match["status"],
        summary=_flat(match["summary"]),
    )


def _gate_action(workflow: str, gate: GateDecision) -> EpisodeAction:
    return EpisodeAction(
        agent=f"{workflow}/{gate.stage}",
        status=f"gate:{gate.action.value}",
        summary="; ".join(gate.reasons),
    )


def _flat(value: Any) -> str:
    if isinstance(value, str):
        return _SPACE.sub(" ", value).strip()
    return json.dumps(value, default=str, ensure_ascii=False)
