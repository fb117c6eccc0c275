"""Finished runs recorded as episodes by ``agentmesh.run`` and ``agentmesh.resume``.

Recording is best effort: the run's result is the caller's whatever happens to its
episode. A store that fails (or cannot be opened) is logged as a warning and
reported on the result as an ``episode_not_recorded`` alert; a recorded run carries
its ``episode_id`` (the run id, so recording a run again replaces its episode).

The episode's ``subject`` is what the role's ``episode_subject`` says about the run's
typed input and output (none when the role declares nothing). It is asked only here,
once the run is being recorded: runs without episodes never pay for it.

The episodic memory of a :class:`~agentmesh.settings.Settings` (``AGENTMESH_EPISODES=on``)
is opened once per data folder, Chroma URL and embedder, and shared by every run of
the process.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from agentmesh.controls.alerts import Alert
from agentmesh.memory.episodic import EpisodicMemory, build_episodic_memory
from agentmesh.types import RunStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from agentmesh.run import RunResult
    from agentmesh.settings import Settings

__all__ = ["NOT_RECORDED", "record_finished", "settings_episodes"]

NOT_RECORDED = "episode_not_recorded"
"""Alert kind of a finished run whose episode could not be recorded."""

logger = logging.getLogger(__name__)

_MEMORIES: dict[tuple[Path, str | None, str], EpisodicMemory] = {}
_LOCK = threading.Lock()


def settings_episodes(settings: Settings) -> EpisodicMemory:
    """The episodic memory ``settings`` name, opened on first use and then shared.

    Raises:
        ConfigError: A bad embedder spec or Chroma location.
        MissingExtraError: An embedder that needs an extra which is not installed.
    """
    key = (settings.data_dir.resolve(), settings.chroma_url, settings.embeddings)
    with _LOCK:
        found = _MEMORIES.get(key)
        if found is None:
            found = build_episodic_memory(
                data_dir=key[0], chroma_url=settings.chroma_url, embedder=settings.embeddings
            )
            _MEMORIES[key] = found
        return found


def record_finished(
    result: RunResult[Any],
    episodes: EpisodicMemory | None,
    task: Callable[[], Mapping[str, Any] | None],
    *,
    workflow: str | None,
    settings: Settings,
    role: Any = None,
) -> RunResult[Any]:
    """``result`` with its episode recorded (``episode_id`` set), or with an alert saying why not.

    A run still awaiting a human is returned as it is: it is recorded once it finishes.

    Args:
        result: The run's result.
        episodes: Where to record; ``None`` for the memory of ``settings``.
        task: Reads the run's task envelope (its payload is the episode's input).
        workflow: The top-level agent's name.
        settings: The run's settings.
        role: The role the graph was compiled from; its ``episode_subject`` (if any)
            names the episode's subject.
    """
    if result.status is RunStatus.AWAITING_HUMAN:
        return result
    try:
        memory = episodes if episodes is not None else settings_episodes(settings)
        envelope = task() or {}
        payload = envelope.get("payload") or {}
        episode = memory.record(
            result,
            payload,
            workflow=workflow,
            goal=envelope.get("goal") or "",
            subject=_subject(role, payload, result),
        )
    except Exception as exc:
        message = f"run {result.run_id} was not recorded as an episode: {type(exc).__name__}: {exc}"
        logger.warning("%s", message)
        alert = Alert(
            kind=NOT_RECORDED,
            scope="memory:episodes",
            message=message,
            value=0.0,
            details={"episode_id": result.run_id, "error": type(exc).__name__},
        )
        return replace(result, alerts=[*result.alerts, alert])
    return replace(result, episode_id=episode.id)


def _subject(role: Any, payload: Mapping[str, Any], result: RunResult[Any]) -> str | None:
    """What the role's ``episode_subject`` says the run was about, if it says."""
    describe = getattr(role, "episode_subject", None)
    if describe is None:
        return None
    subject = describe(role.input.model_validate(payload), result.output)
    if subject is not None and not isinstance(subject, str):
        raise TypeError(
            f"{role.name}.episode_subject returned {type(subject).__name__}, not str or None"
        )
    return subject
