"""External memory on a real Chroma server (``chroma run`` on 127.0.0.1, started here).

Skips with the reason when the ``chroma`` binary is missing or cannot start, except on
CI (``CI`` set), where it must run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _external_support import ROOT, chroma_server
from _store_conformance import StoreConformance

from agentmesh.errors import ConfigError
from agentmesh.memory import (
    ChromaStore,
    ExternalMemory,
    InsufficientContext,
    MemoryStore,
    Retrieved,
    build_external_memory,
)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with chroma_server(tmp_path_factory.mktemp("chroma-server")) as url:
        yield url


class TestChromaServerStore(StoreConformance):
    @pytest.fixture
    def store(self, server_url: str, request: pytest.FixtureRequest) -> Iterator[MemoryStore]:
        name = f"conformance-{abs(hash(request.node.nodeid)) % 10**9}"
        store = ChromaStore(url=server_url, collection=name)
        yield store
        store.client.delete_collection(name)


def test_external_memory_on_a_server_survives_a_new_client(server_url: str, tmp_path: Path) -> None:
    def memory() -> ExternalMemory:
        return build_external_memory(
            data_dir=tmp_path / "unused",
            chroma_url=server_url,
            policy=ROOT / "memory" / "policy.toml",
            collection="e2e-knowledge",
            root=ROOT,
        )

    first = memory()
    report = first.ingest([ROOT / "memory"])
    assert sum(c.chunks for c in report.changes) == first.store.count() > 40
    assert not (tmp_path / "unused").exists()  # nothing embedded: all on the server

    second = memory()  # a new client finds the same collection on the server
    assert second.check_sources([ROOT / "memory"]).ok
    result = second.retrieve("Which currency does Sakura Soft invoice in?")
    assert isinstance(result, Retrieved)
    assert "memory/vendors.json#V005" in [h.item.id for h in result.hits]
    assert isinstance(second.retrieve("How many moons does Jupiter have?"), InsufficientContext)


def test_unreachable_server_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"127\.0\.0\.1:9"):
        ChromaStore(url="http://127.0.0.1:9", collection="nothing-here")
