"""Agent memory: the working context kept within a token budget, and external memory
(knowledge on Chroma with freshness enforced at retrieval)."""

from __future__ import annotations

from agentmesh.memory._chroma import ChromaStore
from agentmesh.memory._embedders import Embedder, LangChainEmbedder, build_embedder
from agentmesh.memory._external import (
    ExternalMemory,
    MemoryStats,
    TypeStats,
    build_external_memory,
)
from agentmesh.memory._filter import ItemFilter, Window
from agentmesh.memory._hashing import HashingEmbedder
from agentmesh.memory._ingest import (
    DriftReport,
    DriftStatus,
    IngestReport,
    IngestStatus,
    SourceChange,
    SourceDrift,
)
from agentmesh.memory._inmemory import InMemoryStore
from agentmesh.memory._items import MemoryItem, SourceInfo
from agentmesh.memory._minilm import MiniLMEmbedder
from agentmesh.memory._policy import FreshnessRule, MemoryPolicy, StaleAction
from agentmesh.memory._retrieval import Hit, InsufficientContext, Retrieval, Retrieved
from agentmesh.memory._sources import Chunk, SourceDocument, read_source
from agentmesh.memory._store import MemoryStore, ScoredItem
from agentmesh.memory.context import (
    RECALL_TOOL_NAME,
    ContextBudget,
    ContextStats,
    ExtractiveSummarizer,
    InMemoryStepStore,
    ModelSummarizer,
    SQLiteStepStore,
    Step,
    StepStore,
    Summarizer,
    WorkingContext,
    build_recall_tool,
)
from agentmesh.memory.episodic import (
    Correction,
    Episode,
    EpisodeAction,
    EpisodeOutcome,
    EpisodeRecall,
    EpisodicMemory,
    NoEpisodes,
    RecalledEpisode,
    RecalledEpisodes,
    build_episodic_memory,
    examples_text,
)
from agentmesh.memory.semantic import (
    DistillPolicy,
    Fact,
    PruneReport,
    SemanticMemory,
    build_semantic_memory,
)

__all__ = [
    # working context (in-context memory with a token budget)
    "ContextBudget",
    "ContextStats",
    "ExtractiveSummarizer",
    "InMemoryStepStore",
    "ModelSummarizer",
    "RECALL_TOOL_NAME",
    "SQLiteStepStore",
    "Step",
    "StepStore",
    "Summarizer",
    "WorkingContext",
    "build_recall_tool",
    # external memory (knowledge on Chroma, freshness enforced at retrieval)
    "ChromaStore",
    "Chunk",
    "DriftReport",
    "DriftStatus",
    "Embedder",
    "ExternalMemory",
    "FreshnessRule",
    "HashingEmbedder",
    "Hit",
    "InMemoryStore",
    "IngestReport",
    "IngestStatus",
    "InsufficientContext",
    "ItemFilter",
    "LangChainEmbedder",
    "MemoryItem",
    "MemoryPolicy",
    "MemoryStats",
    "MemoryStore",
    "MiniLMEmbedder",
    "Retrieval",
    "Retrieved",
    "ScoredItem",
    "SourceChange",
    "SourceDocument",
    "SourceDrift",
    "SourceInfo",
    "StaleAction",
    "TypeStats",
    "Window",
    "build_embedder",
    "build_external_memory",
    "read_source",
    # episodic memory (finished runs as episodes, reviewers' corrections)
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
    # semantic memory (facts distilled from episodes)
    "DistillPolicy",
    "Fact",
    "PruneReport",
    "SemanticMemory",
    "build_semantic_memory",
]
