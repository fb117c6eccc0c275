"""Suite-wide guards: no real model request, no stray project data."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentmesh.testing import block_network

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    """Any connection outside 127.0.0.1 fails the test (so no real model is ever called)."""
    with block_network():
        yield


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own data folder and no provider or tracing settings."""
    monkeypatch.setenv("AGENTMESH_DATA_DIR", str(tmp_path / "data"))
    for name in (
        "AGENTMESH_SMALL_MODEL",
        "AGENTMESH_FRONTIER_MODEL",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "LANGFUSE_PUBLIC_KEY",
        "LANGFUSE_SECRET_KEY",
        "LANGFUSE_BASE_URL",
        "LANGFUSE_HOST",
        "AGENTMESH_CHECKPOINTER",
        "AGENTMESH_REDIS_URL",
        "AGENTMESH_KILL_SWITCH",
        "AGENTMESH_RESPONSE_CACHE",
        "AGENTMESH_DAILY_COST_USD",
        "AGENTMESH_WEEKLY_COST_USD",
        "AGENTMESH_ALERT_WEBHOOK_URL",
        "AGENTMESH_CHROMA_URL",
        "AGENTMESH_EMBEDDINGS",
        "AGENTMESH_MEMORY_POLICY",
        "AGENTMESH_EPISODES",
    ):
        monkeypatch.delenv(name, raising=False)
