"""The offline default embedder: feature hashing over words, word pairs and character n-grams.

Nothing to download and fully deterministic (the same text gives the same vector in
every process). Text is folded (accents stripped, lower case, thousands separators
dropped), split into words, and stop words removed. Each remaining word contributes

- its light stem (``invoices`` and ``invoice`` meet), weight 1;
- its character 3- to 5-grams with word boundaries (fastText style), which match
  spelling variants, compounds and partial words; they share a total weight of
  ``char_weight`` per word;
- with its neighbour, a word pair (``bank details``), weight ``pair_weight``.

Repeated features grow logarithmically (``1 + ln(count)``), each feature is hashed
(CRC-32) to a signed bucket, and the vector is scaled to unit length.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
import zlib
from collections import Counter
from functools import lru_cache
from typing import TYPE_CHECKING, Final

import numpy as np

from agentmesh.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

    from agentmesh.memory._store import Vector, Vectors

__all__ = ["HashingEmbedder"]

_WORD: Final = re.compile(r"[a-z0-9]+")
_THOUSANDS: Final = re.compile(r"(?<=\d)[,.' ](?=\d{3}(?!\d))")
_STOP_WORDS: Final = """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    also may might must shall us per via etc e g ie eg whether"""
_STOP: Final = frozenset(_STOP_WORDS.split())


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _THOUSANDS.sub("", plain.lower().replace("ß", "ss"))


def _stem(word: str) -> str:
    if len(word) <= 3 or not word.isalpha():
        return word
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                return word
            if suffix == "es" and not word.endswith(("ses", "xes", "zes", "ches", "shes")):
                continue
            return word[: len(word) - len(suffix)] + keep
    return word


class HashingEmbedder:
    """Deterministic, offline text embeddings by feature hashing (see the module docstring).

    Attributes:
        name: Identifies the embedding space, e.g. ``hashing-v1-512``.
        dim: Vector length.
    """

    def __init__(
        self,
        *,
        dim: int = 512,
        char_ngrams: tuple[int, int] = (3, 5),
        char_weight: float = 0.6,
        pair_weight: float = 0.5,
    ) -> None:
        """Configure the feature set.

        Args:
            dim: Vector length (more buckets, fewer collisions).
            char_ngrams: Smallest and largest character n-gram length.
            char_weight: Total weight of one word's character n-grams.
            pair_weight: Weight of a pair of neighbouring words.

        Raises:
            ConfigError: A parameter is out of range.
        """
        low, high = char_ngrams
        if dim < 8 or not 1 <= low <= high or char_weight < 0 or pair_weight < 0:
            raise ConfigError(
                f"HashingEmbedder: invalid dim={dim}, char_ngrams={char_ngrams}, "
                f"char_weight={char_weight} or pair_weight={pair_weight}"
            )
        self.dim = dim
        self.name = f"hashing-v1-{dim}"
        self._ngrams = (low, high)
        self._char_weight = char_weight
        self._pair_weight = pair_weight
        self._word = lru_cache(maxsize=65536)(self._word_features)
        self._pair = lru_cache(maxsize=65536)(self._pair_feature)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """One unit-length row per text."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = self._embed(text)
        return out

    def embed_query(self, text: str) -> Vector:
        """The vector of one query."""
        return self._embed(text)

    def _embed(self, text: str) -> Vector:
        words = [w for w in _WORD.findall(_fold(text)) if w not in _STOP]
        vec = np.zeros(self.dim, dtype=np.float64)
        for word, count in Counter(words).items():
            index, value = self._word(word)
            np.add.at(vec, index, value * (1.0 + math.log(count)))
        if self._pair_weight and len(words) > 1:
            pairs = Counter(itertools.pairwise(words))
            for (left, right), count in pairs.items():
                bucket, sign = self._pair(left, right)
                vec[bucket] += sign * self._pair_weight * (1.0 + math.log(count))
        norm = float(np.linalg.norm(vec))
        return (vec / norm if norm else vec).astype(np.float32)

    def _word_features(self, word: str) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
        features = [(f"w|{_stem(word)}", 1.0)]
        marked = f"<{word}>"
        low, high = self._ngrams
        grams = [
            marked[i : i + n] for n in range(low, high + 1) for i in range(len(marked) - n + 1)
        ]
        if grams and self._char_weight:
            weight = self._char_weight / math.sqrt(len(grams))
            features.extend((f"c|{g}", weight) for g in grams)
        hashed = [self._bucket(f) for f, _ in features]
        index = np.array([b for b, _ in hashed], dtype=np.intp)
        value = np.array([s * w for (_, s), (_, w) in zip(hashed, features, strict=True)])
        return index, value

    def _pair_feature(self, left: str, right: str) -> tuple[int, float]:
        return self._bucket(f"p|{_stem(left)} {_stem(right)}")

    def _bucket(self, feature: str) -> tuple[int, float]:
        h = zlib.crc32(feature.encode())
        return h % self.dim, (1.0 if h & 0x80000000 else -1.0)
