"""Episodic memory: every finished run kept as an episode, recalled as examples for new tasks.

An :class:`Episode` records what a run was asked, the steps it reported, how it ended
and what it produced. Reviewers' :class:`Correction` s land on the episode
(:meth:`EpisodicMemory.correct`) and travel with it whenever it is recalled, so a
human fix changes what later runs see: :func:`examples_text` renders recalled
episodes as few-shot examples showing the corrected output, and code agents can read
:meth:`Episode.latest_correction` directly.

Episodes persist through any :class:`~agentmesh.memory.MemoryStore` (in memory,
Chroma). Each is one item of data type ``episode/<workflow>/<status>``, so recall
filters by workflow and outcome inside the store query. A corrected episode is also
kept as an item of data type ``episode-corrected/<workflow>``, so
:meth:`EpisodicMemory.corrected` lists what reviewers taught a workflow (a few items)
without ranking every episode by similarity. Give episodes a store (or Chroma
collection) of their own, apart from knowledge: an unfiltered knowledge search would
otherwise see them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from agentmesh._runtime.context import current_context, span
from agentmesh.errors import ConfigError
from agentmesh.memory._embedders import Embedder, build_embedder
from agentmesh.memory._episode import (
    Correction,
    Episode,
    EpisodeAction,
    EpisodeOutcome,
    episode_from_run,
    task_text,
)
from agentmesh.memory._episode_recall import (
    EpisodeRecall,
    NoEpisodes,
    RecalledEpisode,
    RecalledEpisodes,
    examples_text,
    judge,
)
from agentmesh.memory._episode_store import Record, RecordStore, collection_name
from agentmesh.tracing._base import SpanKind
from agentmesh.types import RunStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from agentmesh.memory._store import MemoryStore
    from agentmesh.run import RunResult

__all__ = [
    "Correction",
    "Episode",
    "EpisodeAction",
    "EpisodeOutcome",
    "EpisodeRecall",
    "EpisodicMemory",
    "NoEpisodes",
    "RecalledEpisode",
    "RecalledEpisodes",
    "build_episodic_memory",
    "examples_text",
]

_KIND: Final = "episode/"
_CORRECTED: Final = "episode-corrected/"


class EpisodicMemory:
    """Finished runs as episodes; recall of relevant ones; reviewers' corrections.

    Thread-safe. Every recall is traced as a ``retrieval`` span. Corrections are a
    read-modify-write of one episode, serialized within this object (not across
    processes).

    Attributes:
        store: Where episodes live.
        embedder: How task texts become vectors.
        min_relevance: The default relevance floor of :meth:`recall`.
    """

    def __init__(
        self,
        store: MemoryStore,
        *,
        embedder: Embedder | None = None,
        min_relevance: float = 0.3,
        summary_chars: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Keep episodes in ``store``.

        Args:
            store: The memory store (its own store or Chroma collection, see the module).
            embedder: Embeds task texts; the offline hashing embedder by default.
            min_relevance: Default relevance floor for :meth:`recall` (cosine similarity;
                its scale depends on the embedder).
            summary_chars: Longest input and output summary kept per episode.
            clock: Epoch seconds now (injectable for tests).
        """
        if summary_chars < 20:
            raise ConfigError(f"summary_chars must be at least 20, got {summary_chars}")
        self.store = store
        self.embedder = embedder or build_embedder("hashing")
        self.min_relevance = min_relevance
        self._records = RecordStore(store, self.embedder)
        self._limit = summary_chars
        self._clock = clock
        self._lock = threading.Lock()

    def record(
        self,
        run: RunResult[Any],
        input: Any,
        *,
        workflow: str | None = None,
        goal: str = "",
        subject: str | None = None,
        episode_id: str | None = None,
    ) -> Episode:
        """Store a finished run as an episode.

        Recording the same episode id again replaces the episode, corrections included
        (it does not read the old one back: that costs a scan, see :meth:`get`), and
        drops it from :meth:`corrected`.

        Args:
            run: The run's result (any terminal status).
            input: The task input the run was given (a pydantic model, a mapping or text).
            workflow: The workflow name; defaults to the top-level agent's name.
            goal: The goal text the run was given.
            subject: What the run was about (for example the vendor), if meaningful.
                Runs recorded by ``agentmesh.run`` take it from their role's
                ``episode_subject``.
            episode_id: The episode id; defaults to the run id.

        Raises:
            ConfigError: The run is still awaiting a human, or its workflow cannot be told.
        """
        episode = episode_from_run(
            run,
            input,
            workflow=workflow,
            goal=goal,
            subject=subject,
            episode_id=episode_id,
            created_at=self._clock(),
            limit=self._limit,
        )
        self._replace(episode)
        return episode

    def add(self, episode: Episode) -> None:
        """Store an episode built elsewhere (imported history, tests); replaces by id."""
        self._replace(episode)

    def get(self, episode_id: str) -> Episode | None:
        """The episode with this id, or ``None``.

        The store Protocol has no lookup by id: this reads the summary of every stored
        item, then lists the episodes of the same workflow and outcome recorded since.
        """
        item = self._records.get(_record_id(episode_id))
        return Episode.model_validate_json(item.text) if item is not None else None

    def correct(self, episode_id: str, *corrections: Correction) -> Episode:
        """Add reviewers' corrections to an episode; later recalls carry them.

        A correction without ``old`` takes the field's value from the episode's output;
        one without ``at`` is stamped now.

        Raises:
            ConfigError: No episode has this id, or no correction was given.
        """
        if not corrections:
            raise ConfigError("correct() needs at least one Correction")
        with self._lock:
            episode = self.get(episode_id)
            if episode is None:
                raise ConfigError(f"no episode {episode_id!r} to correct")
            now = self._clock()
            filled = [_filled(c, episode, now) for c in corrections]
            updated = episode.model_copy(update={"corrections": [*episode.corrections, *filled]})
            self._save(updated)
        return updated

    def corrected(self, *, workflow: str) -> list[Episode]:
        """Every episode of ``workflow`` a reviewer corrected, latest correction first.

        Reads the corrected episodes only (one filtered store query), however many
        episodes the workflow has; traced as a ``retrieval`` span.
        """
        attrs: dict[str, Any] = {"workflow": workflow, "store": type(self.store).__name__}
        with span(
            SpanKind.RETRIEVAL,
            "memory.corrected_episodes",
            run_id=current_context().run_id,
            input=workflow,
            attributes=attrs,
        ) as opened:
            items = self._records.listing([f"{_CORRECTED}{workflow}"])
            found = [Episode.model_validate_json(i.text) for i in items]
            found.sort(key=_last_corrected, reverse=True)
            attrs["episode_ids"] = [e.id for e in found]
            opened.output = [e.id for e in found]
            opened.status = "ok" if found else "no_episodes"
        return found

    def forget(self, episode_id: str) -> bool:
        """Delete an episode; whether it existed."""
        self._records.delete(_corrected_id(episode_id))
        return self._records.delete(_record_id(episode_id))

    def recall(
        self,
        task: Any,
        *,
        goal: str = "",
        k: int = 3,
        min_relevance: float | None = None,
        outcomes: Collection[RunStatus] = (RunStatus.COMPLETED,),
        workflow: str | None = None,
        since: float | None = None,
    ) -> RecalledEpisodes | NoEpisodes:
        """Past episodes relevant to a new task, as examples.

        Args:
            task: The new task's input (summarized as episodes are) or its text.
            goal: The new task's goal text.
            k: Most episodes to return.
            min_relevance: Relevance floor (default: the memory's).
            outcomes: Only episodes that ended in one of these statuses.
            workflow: Only episodes of this workflow (without it, recall first reads
                which workflows the store holds).
            since: Only episodes recorded at or after this epoch second.

        Returns:
            :class:`RecalledEpisodes`, or :class:`NoEpisodes` when none passes the floor.
        """
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        floor = self.min_relevance if min_relevance is None else min_relevance
        query = task if isinstance(task, str) else task_text(task, goal=goal, limit=self._limit)
        wanted = sorted({RunStatus(s) for s in outcomes})
        attrs: dict[str, Any] = {
            "k": k,
            "min_relevance": floor,
            "outcomes": [s.value for s in wanted],
            "workflow": workflow,
            "embedder": self.embedder.name,
            "store": type(self.store).__name__,
        }
        run_id = current_context().run_id
        with span(
            SpanKind.RETRIEVAL,
            "memory.recall_episodes",
            run_id=run_id,
            input=query,
            attributes=attrs,
        ) as opened:
            found = self._records.search(query, self._types(wanted, workflow), k=k, since=since)
            result = judge(query, found, floor, wanted, workflow)
            attrs.update(
                scores=[round(s.score, 4) for s in found],
                hit_ids=[s.item.id for s in found],
                result=result.kind,
            )
            if isinstance(result, RecalledEpisodes):
                opened.output = [r.episode.id for r in result.episodes]
            else:
                opened.output, opened.status = result.reason, "no_episodes"
        return result

    def _types(self, outcomes: list[RunStatus], workflow: str | None) -> list[str]:
        if workflow is not None:
            return [_data_type(workflow, s) for s in outcomes]
        held = self._records.data_types(_KIND)
        return sorted(t for t in held if t.rsplit("/", 1)[-1] in outcomes)

    def _replace(self, episode: Episode) -> None:
        # A corrected episode recorded again loses its corrections: unlist it first.
        if not episode.corrections:
            self._records.delete(_corrected_id(episode.id))
        self._save(episode)

    def _save(self, episode: Episode) -> None:
        payload, title = episode.model_dump_json(), _title(episode)
        records = [
            Record(
                id=_record_id(episode.id),
                data_type=_data_type(episode.workflow, episode.outcome.status),
                payload=payload,
                title=title,
                embed_text=episode.task_text,
                stored_at=episode.created_at,
            )
        ]
        if episode.corrections:
            records.append(
                Record(
                    id=_corrected_id(episode.id),
                    data_type=f"{_CORRECTED}{episode.workflow}",
                    payload=payload,
                    title=title,
                    embed_text=episode.subject or episode.task_text,
                    stored_at=episode.created_at,
                )
            )
        self._records.put(records)


def build_episodic_memory(
    *,
    data_dir: Path,
    chroma_url: str | None = None,
    embedder: str | Embedder = "hashing",
    collection: str | None = None,
    min_relevance: float = 0.3,
) -> EpisodicMemory:
    """Episodic memory on Chroma: embedded under ``data_dir/chroma``, or a server.

    Args:
        data_dir: The project data folder (``Settings.data_dir``).
        chroma_url: A Chroma server URL; ``None`` uses embedded Chroma.
        embedder: An embedder or a :func:`~agentmesh.memory.build_embedder` spec.
        collection: The collection (default ``episodes-<embedder name>``).
        min_relevance: Default relevance floor of :meth:`EpisodicMemory.recall`.

    Raises:
        ConfigError: A bad embedder spec or Chroma location.
        MissingExtraError: An embedder that needs an extra which is not installed.
    """
    from agentmesh.memory._chroma import ChromaStore

    made = build_embedder(embedder) if isinstance(embedder, str) else embedder
    name = collection or collection_name("episodes", made.name)
    store = (
        ChromaStore(url=chroma_url, collection=name)
        if chroma_url
        else ChromaStore(path=Path(data_dir) / "chroma", collection=name)
    )
    return EpisodicMemory(store, embedder=made, min_relevance=min_relevance)


def _filled(correction: Correction, episode: Episode, now: float) -> Correction:
    update: dict[str, Any] = {}
    if "old" not in correction.model_fields_set and episode.output is not None:
        update["old"] = episode.output.get(correction.field)
    if correction.at is None:
        update["at"] = now
    return correction.model_copy(update=update) if update else correction


def _record_id(episode_id: str) -> str:
    return f"{_KIND}{episode_id}"


def _corrected_id(episode_id: str) -> str:
    return f"{_CORRECTED}{episode_id}"


def _last_corrected(episode: Episode) -> float:
    return max((c.at or 0.0 for c in episode.corrections), default=0.0)


def _data_type(workflow: str, status: RunStatus) -> str:
    return f"{_KIND}{workflow}/{status.value}"


def _title(episode: Episode) -> str:
    about = f" about {episode.subject}" if episode.subject else ""
    return f"{episode.workflow} run {episode.id}{about}: {episode.outcome.status.value}"
