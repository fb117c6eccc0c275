"""What recall returns: relevant past episodes or a typed "none", and their example text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentmesh.memory._episode import Episode
from agentmesh.types import RunStatus

if TYPE_CHECKING:
    from collections.abc import Iterable

    from agentmesh.memory._store import ScoredItem

__all__ = [
    "EpisodeRecall",
    "NoEpisodes",
    "RecalledEpisode",
    "RecalledEpisodes",
    "examples_text",
    "judge",
]


class RecalledEpisode(BaseModel):
    """A past episode and how relevant it is to the new task.

    Attributes:
        episode: The episode, with its corrections.
        score: Cosine similarity of its task to the new one (higher is closer).
    """

    model_config = ConfigDict(frozen=True)

    episode: Episode
    score: float


class RecalledEpisodes(BaseModel):
    """Past episodes relevant enough to serve as examples.

    Attributes:
        query: The new task's text.
        episodes: Episodes at or above the relevance floor, best first.
        min_relevance: The floor that applied.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["episodes"] = "episodes"
    query: str
    episodes: list[RecalledEpisode]
    min_relevance: float


class NoEpisodes(BaseModel):
    """No past episode was relevant enough: work the task without examples.

    Attributes:
        query: The new task's text.
        reason: Why, in one sentence.
        min_relevance: The floor that applied.
        best_score: The best similarity among admitted episodes, if any.
        outcomes: The outcomes recall was limited to.
        workflow: The workflow recall was limited to, if any.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["no_episodes"] = "no_episodes"
    query: str
    reason: str
    min_relevance: float
    best_score: float | None = None
    outcomes: list[RunStatus] = Field(default_factory=list)
    workflow: str | None = None

    @property
    def episodes(self) -> list[RecalledEpisode]:
        """Always empty (so callers can iterate either result the same way)."""
        return []


EpisodeRecall = Annotated[RecalledEpisodes | NoEpisodes, Field(discriminator="kind")]
"""Either recall result, as a pydantic type (tagged by ``kind``)."""


def examples_text(
    episodes: RecalledEpisodes | NoEpisodes | Iterable[Episode | RecalledEpisode],
    *,
    max_chars: int = 4000,
) -> str:
    """Recalled episodes as few-shot examples for a prompt (empty text when there are none).

    Each example shows the task, how the run ended and the output a reviewer would
    accept: the corrected output when there are corrections, which are listed too.
    Examples that would pass ``max_chars`` are left out.
    """
    items = episodes.episodes if isinstance(episodes, RecalledEpisodes | NoEpisodes) else episodes
    blocks: list[str] = []
    used = 0
    for n, entry in enumerate(items, start=1):
        block = _example(n, entry)
        if used + len(block) > max_chars:
            break
        blocks.append(block)
        used += len(block) + 2
    return "\n\n".join(blocks)


def judge(
    query: str,
    found: list[ScoredItem],
    floor: float,
    outcomes: list[RunStatus],
    workflow: str | None,
) -> RecalledEpisodes | NoEpisodes:
    """The episodes of ``found`` at or above ``floor``, or why there are none."""
    relevant = [
        RecalledEpisode(episode=Episode.model_validate_json(s.item.text), score=s.score)
        for s in found
        if s.score >= floor
    ]
    if relevant:
        return RecalledEpisodes(query=query, episodes=relevant, min_relevance=floor)
    best = max((s.score for s in found), default=None)
    where = f"{workflow} episodes" if workflow else "episodes"
    shown = ", ".join(s.value for s in outcomes) or "no outcome"
    reason = (
        f"no {where} ended {shown}"
        if best is None
        else f"the closest of the {where} scored {best:.2f}, below {floor:.2f}"
    )
    return NoEpisodes(
        query=query,
        reason=reason,
        min_relevance=floor,
        best_score=best,
        outcomes=outcomes,
        workflow=workflow,
    )


def _example(n: int, entry: Episode | RecalledEpisode) -> str:
    episode = entry.episode if isinstance(entry, RecalledEpisode) else entry
    relevance = f", relevance {entry.score:.2f}" if isinstance(entry, RecalledEpisode) else ""
    lines = [
        f"Example {n} ({episode.workflow}, {episode.outcome.status.value}{relevance})",
        f"Task: {episode.task_text}",
    ]
    fixed = episode.corrected_output
    if episode.corrections:
        lines.append("Reviewer corrections:")
        lines += [
            f"- {c.field}: {c.old!r} -> {c.new!r} ({c.reviewer}{': ' + c.note if c.note else ''})"
            for c in episode.corrections
        ]
        lines.append(f"Correct output: {_compact(fixed)}")
    else:
        lines.append(f"Output: {episode.output_summary or episode.outcome.reason}")
    return "\n".join(lines)


def _compact(output: dict[str, Any] | None) -> str:
    if not output:
        return "{}"
    return "; ".join(f"{k}: {v}" for k, v in output.items() if v not in (None, "", []))
