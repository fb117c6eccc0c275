"""Agent memory: the working context kept within a token budget."""

from __future__ import annotations

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
]
