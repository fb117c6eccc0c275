"""A BERT encoder forward pass in NumPy, for sentence-transformers models without torch.

Reads a model folder as sentence-transformers saves it (``config.json``,
``tokenizer.json``, ``model.safetensors``, ``sentence_bert_config.json``,
``1_Pooling/config.json``) and computes mean-pooled, L2-normalised sentence
embeddings, as the ``Transformer -> Pooling(mean) -> Normalize`` pipeline of models
such as all-MiniLM-L6-v2 does; other pooling modes are refused.
"""

from __future__ import annotations

import json
import math
import struct
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from agentmesh.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import numpy.typing as npt

__all__ = ["NumpyBertEncoder"]

_DTYPES: Final = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
Array = Any  # numpy arrays of several dtypes flow through; the public result is typed


def _load_safetensors(path: Path) -> dict[str, Array]:
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    tensors = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        data = np.frombuffer(
            raw,
            dtype=_DTYPES[spec["dtype"]],
            offset=8 + size + start,
            count=(end - start) // np.dtype(_DTYPES[spec["dtype"]]).itemsize,
        )
        tensors[name] = data.reshape(spec["shape"]).astype(np.float32, copy=False)
    return tensors


def _layer_norm(x: Array, weight: Array, bias: Array, eps: float) -> Array:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _erf(x: Array) -> Array:
    # Abramowitz & Stegun 7.1.26: absolute error below 1.5e-7, float32's resolution.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: Array) -> Array:
    # BERT's exact (erf) GELU, not the tanh approximation.
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


class NumpyBertEncoder:
    """Sentence embeddings from a BERT sentence-transformers folder, in NumPy."""

    def __init__(self, folder: Path, *, max_length: int | None = None) -> None:
        """Load the tokenizer and weights from ``folder``.

        Raises:
            ConfigError: The folder is not a BERT sentence-transformers model.
        """
        from tokenizers import Tokenizer

        try:
            config = json.loads((folder / "config.json").read_text())
            self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            self._w = _load_safetensors(folder / "model.safetensors")
            st_config = json.loads((folder / "sentence_bert_config.json").read_text())
            pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(
                f"{folder}: not a readable sentence-transformers model ({exc})"
            ) from exc
        if config.get("model_type") != "bert":
            raise ConfigError(f"{folder}: model_type {config.get('model_type')!r} is not bert")
        if not pooling.get("pooling_mode_mean_tokens"):
            raise ConfigError(f"{folder}: only mean pooling is supported")
        self._layers = int(config["num_hidden_layers"])
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config.get("layer_norm_eps", 1e-12))
        self.max_length = max_length or int(st_config.get("max_seq_length", 256))
        self.dim = int(config["hidden_size"])
        # tokenizer.json pads every text to 128 tokens; sentence-transformers pads per batch.
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_length)

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> npt.NDArray[np.float32]:
        """Unit-length embeddings, one row per text."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            out[batch] = self._encode_batch([texts[i] for i in batch])
        return out

    def _encode_batch(self, texts: list[str]) -> Array:
        encodings = self._tokenizer.encode_batch(texts)
        length = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), length), dtype=np.int64)
        mask = np.zeros((len(texts), length), dtype=np.float32)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1.0
        hidden = self._forward(ids, mask)
        pooled = (hidden * mask[..., None]).sum(1) / np.clip(mask.sum(1, keepdims=True), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None)

    def _forward(self, ids: Array, mask: Array) -> Array:
        w, eps = self._w, self._eps
        positions = np.arange(ids.shape[1])
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][positions][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        for n in range(self._layers):
            x = self._layer(x, bias, f"encoder.layer.{n}.")
        return x

    def _layer(self, x: Array, bias: Array, p: str) -> Array:
        w, eps = self._w, self._eps
        batch, length, dim = x.shape
        head = dim // self._heads

        def proj(name: str, inp: Array) -> Array:
            return inp @ w[f"{p}{name}.weight"].T + w[f"{p}{name}.bias"]

        def split(t: Array) -> Array:
            return t.reshape(batch, length, self._heads, head).transpose(0, 2, 1, 3)

        q = split(proj("attention.self.query", x))
        k = split(proj("attention.self.key", x))
        v = split(proj("attention.self.value", x))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attn = scores / scores.sum(-1, keepdims=True)
        ctx = (attn @ v).transpose(0, 2, 1, 3).reshape(batch, length, dim)
        x = _layer_norm(
            x + proj("attention.output.dense", ctx),
            w[f"{p}attention.output.LayerNorm.weight"],
            w[f"{p}attention.output.LayerNorm.bias"],
            eps,
        )
        inner = _gelu(proj("intermediate.dense", x))
        return _layer_norm(
            x + proj("output.dense", inner),
            w[f"{p}output.LayerNorm.weight"],
            w[f"{p}output.LayerNorm.bias"],
            eps,
        )
