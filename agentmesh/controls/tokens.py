"""Token counts for budgeting: provider usage first, then a local tokenizer, then a heuristic.

Two kinds of figure are produced:

* an *estimate*, used to settle a call whose provider reported no usage: the
  model's own tiktoken encoding when it is cached locally, otherwise
  ``ceil(utf8_bytes / 3)``, which is above the usual 4 characters per token;
* an *upper bound*, used to reserve a call before it is made: the exact count
  under the model's own encoding (plus chat formatting overhead) when it is
  cached locally, otherwise the number of UTF-8 bytes. A byte-level BPE token
  (OpenAI, Anthropic, Llama, ...) always covers at least one byte, and so does a
  SentencePiece piece with byte fallback, so the byte count is never below the
  real count.

tiktoken downloads its encoding files from the internet on first use. Nothing
here ever triggers that download: an encoding is used only when its file is
already in tiktoken's local cache (``TIKTOKEN_CACHE_DIR``, ``DATA_GYM_CACHE_DIR``
or ``<tmp>/data-gym-cache``, the folders tiktoken itself looks in).
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "CHARS_PER_TOKEN_ESTIMATE",
    "MESSAGE_OVERHEAD_TOKENS",
    "PROMPT_OVERHEAD_TOKENS",
    "TokenCount",
    "estimate_tokens",
    "prompt_tokens_upper_bound",
    "tokenizer_for",
    "tokens_upper_bound",
    "usage_or_estimate",
]

CHARS_PER_TOKEN_ESTIMATE = 3
"""UTF-8 bytes per token assumed by the heuristic estimate (real text averages about 4)."""

MESSAGE_OVERHEAD_TOKENS = 8
"""Tokens allowed per message for chat formatting (role markers, separators; OpenAI uses 3-4)."""

PROMPT_OVERHEAD_TOKENS = 16
"""Tokens allowed once per prompt for reply priming and tool-call framing."""


class _Encoding(Protocol):
    def encode(self, text: str, *, disallowed_special: Any = ...) -> list[int]: ...


@dataclass(frozen=True, kw_only=True)
class TokenCount:
    """Tokens of one model call.

    Attributes:
        input_tokens: Prompt tokens.
        output_tokens: Answer tokens.
        estimated: ``True`` when the provider reported no usage and the figures are estimates.
    """

    input_tokens: int
    output_tokens: int
    estimated: bool = False


_ENCODING_FILES = {
    "o200k_base": "o200k_base",
    "o200k_harmony": "o200k_base",
    "cl100k_base": "cl100k_base",
    "p50k_base": "p50k_base",
    "p50k_edit": "p50k_base",
    "r50k_base": "r50k_base",
}
_BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
_LOADED: dict[str, _Encoding | None] = {}
_LOCK = threading.Lock()


def tokenizer_for(model: str | None) -> _Encoding | None:
    """The tiktoken encoding of ``model`` if tiktoken knows the model and its file is cached.

    Returns ``None`` for non-OpenAI models, when tiktoken is not installed, or
    when the encoding was never downloaded on this machine.
    """
    if not model:
        return None
    if model in _NAME_FOR:
        name = _NAME_FOR[model]
    else:
        try:
            from tiktoken.model import encoding_name_for_model
        except ImportError:
            return None
        try:
            name = encoding_name_for_model(model.split(":", 1)[-1])
        except KeyError:
            name = None
        _NAME_FOR[model] = name  # looked up before every model call: once per model
    return _cached_encoding(name) if name is not None else None


_NAME_FOR: dict[str, str | None] = {}


def _cached_encoding(name: str) -> _Encoding | None:
    with _LOCK:
        if name in _LOADED:
            return _LOADED[name]
        # A miss is remembered too: this runs before every model call.
        _LOADED[name] = None
        file = _ENCODING_FILES.get(name)
        cache = _tiktoken_cache_dir()
        if file is None or cache is None:
            return None
        url = _BLOB_URL.format(file)
        if not (cache / hashlib.sha1(url.encode()).hexdigest()).is_file():
            return None
        try:
            import tiktoken

            encoding: _Encoding = tiktoken.get_encoding(name)
        except Exception:
            # A damaged cache file would make tiktoken try to download it again; never wait on that.
            return None
        _LOADED[name] = encoding
        return encoding


def _tiktoken_cache_dir() -> Path | None:
    # tiktoken's own lookup (tiktoken.load.read_file_cached); an empty value disables its cache.
    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if variable in os.environ:
            value = os.environ[variable]
            return Path(value) if value else None
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def _count(encoding: _Encoding, text: str) -> int:
    return len(encoding.encode(text, disallowed_special=()))


def estimate_tokens(text: str, *, model: str | None = None) -> int:
    """A conservative estimate of the tokens in ``text`` (for a call with no reported usage).

    Args:
        text: The text.
        model: The model whose tokenizer to use, when it is cached locally.
    """
    encoding = tokenizer_for(model)
    if encoding is not None:
        return _count(encoding, text)
    return math.ceil(len(text.encode("utf-8")) / CHARS_PER_TOKEN_ESTIMATE)


def tokens_upper_bound(text: str, *, model: str | None = None) -> int:
    """A count never below the tokens ``model`` will see in ``text``.

    Args:
        text: The text.
        model: The model; its own encoding gives an exact count when cached locally.
    """
    encoding = tokenizer_for(model)
    if encoding is not None:
        return _count(encoding, text)
    return len(text.encode("utf-8"))


def prompt_tokens_upper_bound(parts: Iterable[str], *, model: str | None = None) -> int:
    """An upper bound on the prompt tokens of a call, for reserving it.

    Args:
        parts: Every text the provider receives: each message's content and the
            JSON schema of each bound tool or structured-output format.
        model: The model that will be called.
    """
    texts = list(parts)
    body = sum(tokens_upper_bound(text, model=model) for text in texts)
    return body + MESSAGE_OVERHEAD_TOKENS * len(texts) + PROMPT_OVERHEAD_TOKENS


def usage_or_estimate(
    usage: Mapping[str, Any] | None,
    *,
    prompt: Iterable[str],
    output: str,
    model: str | None = None,
) -> TokenCount:
    """Tokens of a finished call: the provider's usage metadata, or an estimate when absent.

    Args:
        usage: LangChain ``AIMessage.usage_metadata`` (``input_tokens``/``output_tokens``).
        prompt: The prompt's texts (used only when ``usage`` is missing).
        output: The answer's text (used only when ``usage`` is missing).
        model: The model called.
    """
    if usage and "input_tokens" in usage and "output_tokens" in usage:
        return TokenCount(
            input_tokens=int(usage["input_tokens"]), output_tokens=int(usage["output_tokens"])
        )
    texts = list(prompt)
    return TokenCount(
        input_tokens=sum(estimate_tokens(t, model=model) for t in texts),
        output_tokens=estimate_tokens(output, model=model),
        estimated=True,
    )
