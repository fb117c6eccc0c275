"""External memory's public names, and that importing them stays light."""

from __future__ import annotations

import subprocess
import sys

from _external_support import ROOT

import agentmesh.memory as memory

EXTERNAL = {
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
}


def test_external_memory_names_are_exported() -> None:
    assert set(memory.__all__) >= EXTERNAL
    assert len(memory.__all__) == len(set(memory.__all__))
    assert all(hasattr(memory, name) for name in EXTERNAL)


def test_importing_memory_loads_no_vector_database_or_model() -> None:
    code = (
        "import sys, agentmesh.memory, agentmesh.cli;"
        "print(sorted(m for m in ('chromadb', 'torch', 'tokenizers', 'sentence_transformers')"
        " if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"
