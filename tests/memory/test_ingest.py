"""Ingesting knowledge files and detecting sources that changed under the index."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _external_support import DAY, NOW, ROOT, Clock

from agentmesh.errors import ConfigError
from agentmesh.memory import (
    ChromaStore,
    Chunk,
    DriftStatus,
    ExternalMemory,
    HashingEmbedder,
    IngestStatus,
    InMemoryStore,
    MemoryPolicy,
    MemoryStore,
    Retrieved,
    SourceDocument,
    read_source,
)

GUIDE = """---
title: Refund guide
data_type: procedure
expires: 2030-01-01
---
# Refund guide

## Refund window

Customers may ask for a refund within 14 days of delivery.

## Damaged goods

Damaged goods are replaced free of charge after a photo is sent.
"""


@pytest.fixture(params=["inmemory", "chroma"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MemoryStore:
    if request.param == "inmemory":
        return InMemoryStore()
    return ChromaStore(path=tmp_path / "chroma")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "ws" / "memory"
    (folder / "sources").mkdir(parents=True)
    (folder / "sources" / "refunds.md").write_text(GUIDE)
    shutil.copy(ROOT / "memory" / "vendors.json", folder / "vendors.json")
    return folder


def _memory(store: MemoryStore, workspace: Path, clock: Clock) -> ExternalMemory:
    policy = MemoryPolicy(source_types={"vendors.json": "vendor_master"}, min_score=0.05)
    return ExternalMemory(
        store=store,
        embedder=HashingEmbedder(),
        policy=policy,
        clock=clock,
        root=workspace.parent,
    )


def _texts(memory: ExternalMemory, query: str) -> list[str]:
    return [h.item.text for h in memory.search(query, k=10)]


def test_ingest_reads_markdown_sections_and_json_records(
    store: MemoryStore, workspace: Path
) -> None:
    memory = _memory(store, workspace, Clock())
    report = memory.ingest([workspace])
    assert {c.source: c.status for c in report.changes} == {
        "memory/sources/refunds.md": IngestStatus.ADDED,
        "memory/vendors.json": IngestStatus.ADDED,
    }
    assert store.count() == 2 + 40
    hit = memory.search("refund within how many days", k=1)[0]
    assert hit.item.id == "memory/sources/refunds.md#refund-window"
    assert hit.item.data_type == "procedure"
    assert hit.item.title == "Refund guide > Refund window"
    assert hit.item.expires_at == pytest.approx(1893456000.0)  # 2030-01-01T00:00Z
    vendor = memory.search("Bytecraft IBAN", k=1)[0].item
    assert (vendor.id, vendor.data_type) == ("memory/vendors.json#V004", "vendor_master")
    assert "iban: GB98BARC97377238024686" in vendor.text


def test_reingesting_an_unchanged_source_only_restamps_it(
    store: MemoryStore, workspace: Path
) -> None:
    clock = Clock()
    memory = _memory(store, workspace, clock)
    memory.ingest([workspace])
    clock.advance(10 * DAY)
    report = memory.ingest([workspace])
    assert report.count(IngestStatus.UNCHANGED) == 2
    assert store.count() == 42
    assert {i.ingested_at for i in store.sources().values()} == {NOW + 10 * DAY}


def test_a_changed_source_replaces_its_old_chunks(store: MemoryStore, workspace: Path) -> None:
    memory = _memory(store, workspace, Clock())
    memory.ingest([workspace])
    guide = workspace / "sources" / "refunds.md"
    damaged = GUIDE[GUIDE.index("## Damaged goods") :]
    credit = "## Store credit\n\nRefunds above 500 EUR are paid as store credit.\n"
    guide.write_text(GUIDE.replace("within 14 days", "within 30 days").replace(damaged, credit))
    report = memory.ingest([guide])
    (change,) = report.changes
    assert (change.status, change.chunks, change.removed) == (IngestStatus.REPLACED, 2, 1)
    assert change.previous_version != change.version
    texts = _texts(memory, "refund damaged goods store credit days")
    assert "Customers may ask for a refund within 30 days of delivery." in texts
    assert not any("14 days" in t or "Damaged" in t for t in texts)
    assert store.sources()["memory/sources/refunds.md"].chunks == 2


def test_drift_report_names_changed_new_and_missing_sources(
    store: MemoryStore, workspace: Path
) -> None:
    memory = _memory(store, workspace, Clock())
    memory.ingest([workspace])
    assert memory.check_sources([workspace]).ok

    guide = workspace / "sources" / "refunds.md"
    guide.write_text(GUIDE + "\n## Exchanges\n\nExchanges are free.\n")
    (workspace / "sources" / "new.md").write_text("# New\n\nSomething new.\n")
    (workspace / "vendors.json").unlink()

    report = memory.check_sources([workspace])
    statuses = {e.source: e.status for e in report.entries}
    assert statuses == {
        "memory/sources/refunds.md": DriftStatus.CHANGED,
        "memory/sources/new.md": DriftStatus.NOT_INDEXED,
        "memory/vendors.json": DriftStatus.MISSING,
    }
    changed = next(e for e in report.drifted if e.status is DriftStatus.CHANGED)
    assert changed.indexed_version != changed.current_version
    assert changed.indexed_at == NOW

    memory.ingest([workspace])
    assert [e.status for e in memory.check_sources([workspace]).drifted] == [DriftStatus.MISSING]


def test_ingest_documents_for_knowledge_outside_files(store: MemoryStore) -> None:
    memory = ExternalMemory(store=store, embedder=HashingEmbedder(), clock=Clock())
    doc = SourceDocument(
        source="crm:accounts",
        data_type="crm",
        version="2025-05-01",
        chunks=(Chunk(anchor="acme", title="Acme account", text="Acme pays by card."),),
    )
    assert memory.ingest_documents([doc]).changes[0].status is IngestStatus.ADDED
    result = memory.retrieve("how does Acme pay")
    assert isinstance(result, Retrieved)
    assert result.hits[0].item.id == "crm:accounts#acme"


def test_long_sections_are_split_by_paragraph(tmp_path: Path) -> None:
    paragraph = "Word " * 150
    path = tmp_path / "long.md"
    path.write_text(f"# Long\n\n## Part\n\n{paragraph}\n\n{paragraph}\n\n{paragraph}\n")
    doc = read_source(path, name="long.md", policy=MemoryPolicy())
    assert [c.anchor for c in doc.chunks] == ["part", "part~2", "part~3"]
    assert doc.data_type == "long"


def test_unreadable_sources_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"id": 1},\n{oops}]')
    with pytest.raises(ConfigError, match=r"bad\.json:2"):
        read_source(bad, name="bad.json", policy=MemoryPolicy())
    memory = ExternalMemory(store=InMemoryStore(), embedder=HashingEmbedder())
    with pytest.raises(ConfigError, match="no such file"):
        memory.ingest([tmp_path / "missing"])


def test_discovery_skips_policy_hidden_and_unsupported_files(tmp_path: Path) -> None:
    (tmp_path / "policy.toml").write_text("[retrieval]\n")
    (tmp_path / "_drafts").mkdir()
    (tmp_path / "_drafts" / "wip.md").write_text("# WIP\n\ndraft\n")
    (tmp_path / "notes.md").write_text("# Notes\n\nkept\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / "records.jsonl").write_text(json.dumps({"code": "A1", "x": 1}) + "\n")
    memory = ExternalMemory(store=InMemoryStore(), embedder=HashingEmbedder(), root=tmp_path)
    report = memory.ingest([tmp_path])
    assert sorted(c.source for c in report.changes) == ["notes.md", "records.jsonl"]
    assert "records.jsonl#A1" in {i.id for i in _all(memory)}


def _all(memory: ExternalMemory) -> list:
    return [h.item for h in memory.search("kept x A1", k=50)]
