"""Knowledge sources: reading files into versioned, chunked documents.

Supported files: Markdown and text (chunked by heading, long sections by paragraph),
JSON (a list of records, one chunk each; an object, one chunk or one per key) and
JSON Lines (one record per line). A Markdown file may start with front matter::

    ---
    title: Vendor payment terms
    data_type: procurement_policy
    expires: 2026-12-31
    ---

A source's data type comes from its front matter, else the policy's ``[sources]``
table, else its file name. Its version is a hash of its bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Final

from agentmesh.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from pathlib import Path

    from agentmesh.memory._policy import MemoryPolicy

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Chunk",
    "SourceDocument",
    "discover_sources",
    "read_source",
    "source_name",
    "source_version",
]

SUPPORTED_SUFFIXES: Final = frozenset({".md", ".markdown", ".txt", ".json", ".jsonl"})
_MAX_CHARS: Final = 1200
_RECORD_KEYS: Final = ("id", "key", "code", "name")
_HEADING: Final = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True, kw_only=True)
class Chunk:
    """One piece of a source.

    Attributes:
        anchor: Unique within the source; the item id is ``<source>#<anchor>``.
        title: Heading shown with the chunk (and embedded with it).
        text: The chunk's text.
    """

    anchor: str
    title: str
    text: str


@dataclass(frozen=True, kw_only=True)
class SourceDocument:
    """A source read and chunked, ready to ingest.

    Attributes:
        source: The source's name (a path relative to the ingest root, or any label).
        data_type: The data type of all its chunks.
        version: A content hash; a changed source has a different version.
        chunks: Its chunks, in order.
        expires_at: When its content stops being valid (epoch seconds), if it says.
    """

    source: str
    data_type: str
    version: str
    chunks: tuple[Chunk, ...]
    expires_at: float | None = None


def source_version(content: bytes) -> str:
    """The version of a source with this content."""
    return hashlib.sha256(content).hexdigest()[:16]


def source_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX form), or absolute when outside it."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def discover_sources(paths: Iterable[Path]) -> list[Path]:
    """The supported files at or under ``paths``, sorted.

    Policy files (``policy.*``) and names starting with ``.`` or ``_`` are skipped.

    Raises:
        ConfigError: A path does not exist.
    """
    found: set[Path] = set()
    for path in paths:
        if path.is_file():
            found.add(path)
        elif path.is_dir():
            found.update(p for p in path.rglob("*") if p.is_file() and _wanted(p, path))
        else:
            raise ConfigError(f"{path}: no such file or directory")
    return sorted(found)


def _wanted(path: Path, top: Path) -> bool:
    parts = path.relative_to(top).parts
    hidden = any(p.startswith((".", "_")) for p in parts)
    return path.suffix in SUPPORTED_SUFFIXES and path.stem != "policy" and not hidden


def read_source(path: Path, *, name: str, policy: MemoryPolicy) -> SourceDocument:
    """Read and chunk one file.

    Raises:
        ConfigError: The file cannot be read or parsed (names the file).
    """
    try:
        content = path.read_bytes()
        text = content.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read knowledge source ({exc})") from exc
    meta: dict[str, str] = {}
    if path.suffix in (".json", ".jsonl"):
        chunks = _json_chunks(path, text, _title_of(path))
    else:
        meta, body = _front_matter(text)
        title = meta.get("title") or _first_h1(body) or _title_of(path)
        chunks = _markdown_chunks(body, title)
    if not chunks:
        raise ConfigError(f"{path}: no text to ingest")
    return SourceDocument(
        source=name,
        data_type=meta.get("data_type") or policy.data_type_for(name) or _slug(path.stem, "_"),
        version=source_version(content),
        chunks=tuple(chunks),
        expires_at=_expiry(meta["expires"], path) if meta.get("expires") else None,
    )


def _title_of(path: Path) -> str:
    return path.stem.replace("_", " ").replace("-", " ").strip().capitalize()


def _slug(text: str, sep: str = "-") -> str:
    return re.sub(r"[^a-z0-9]+", sep, text.lower()).strip(sep) or "section"


def _front_matter(text: str) -> tuple[dict[str, str], str]:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}, text
    for end, line in enumerate(lines[1:], start=1):
        if line.strip() == "---":
            pairs = (ln.split(":", 1) for ln in lines[1:end] if ":" in ln)
            meta = {k.strip().lower(): v.strip().strip("'\"") for k, v in pairs}
            return meta, "\n".join(lines[end + 1 :])
    return {}, text


def _expiry(value: str, path: Path) -> float:
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"{path}: front matter 'expires': not an ISO date ({value!r})") from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _first_h1(body: str) -> str | None:
    for line in body.splitlines():
        match = _HEADING.match(line)
        if match and len(match[1]) == 1:
            return match[2]
    return None


def _sections(body: str) -> Iterator[tuple[str, str]]:
    heading, lines = "", list[str]()
    for line in body.splitlines():
        match = _HEADING.match(line)
        if match:
            yield heading, "\n".join(lines).strip()
            heading, lines = match[2], []
        else:
            lines.append(line)
    yield heading, "\n".join(lines).strip()


def _markdown_chunks(body: str, doc_title: str) -> list[Chunk]:
    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    for heading, text in _sections(body):
        if not text:
            continue
        if heading == doc_title or not heading:
            title, base = doc_title, "overview"
        else:
            title, base = f"{doc_title} > {heading}", _slug(heading)
        seen[base] = seen.get(base, 0) + 1
        anchor = base if seen[base] == 1 else f"{base}-{seen[base]}"
        parts = _split(text)
        chunks.extend(
            Chunk(anchor=anchor if n == 1 else f"{anchor}~{n}", title=title, text=part)
            for n, part in enumerate(parts, start=1)
        )
    return chunks


def _split(text: str) -> list[str]:
    if len(text) <= _MAX_CHARS:
        return [text]
    parts, current = [], ""
    for para in re.split(r"\n\s*\n", text):
        if current and len(current) + len(para) + 2 > _MAX_CHARS:
            parts.append(current)
            current = para
        else:
            current = f"{current}\n\n{para}" if current else para
    return [*parts, current] if current else parts


def _json_chunks(path: Path, text: str, doc_title: str) -> list[Chunk]:
    try:
        if path.suffix == ".jsonl":
            data: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from exc
    if isinstance(data, list):
        return _record_chunks(data, doc_title)
    if isinstance(data, dict):
        whole = _render(data)
        if len(whole) <= _MAX_CHARS:
            return [Chunk(anchor=_slug(path.stem), title=doc_title, text=whole)]
        return [
            Chunk(anchor=_slug(str(key)), title=f"{doc_title} > {key}", text=_render({key: value}))
            for key, value in data.items()
        ]
    return [Chunk(anchor=_slug(path.stem), title=doc_title, text=str(data))]


def _record_chunks(records: Sequence[Any], doc_title: str) -> list[Chunk]:
    chunks: list[Chunk] = []
    seen: set[str] = set()
    for n, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            chunks.append(Chunk(anchor=str(n), title=doc_title, text=str(record)))
            continue
        key = _record_key(record) or str(n)
        anchor = key if key not in seen else f"{key}-{n}"
        seen.add(anchor)
        label = record.get("name") or key
        chunks.append(Chunk(anchor=anchor, title=f"{doc_title} > {label}", text=_render(record)))
    return chunks


def _record_key(record: dict[str, Any]) -> str | None:
    ids = [k for k in record if k.endswith("_id")] + [k for k in _RECORD_KEYS if k in record]
    for key in ids:
        value = record[key]
        if isinstance(value, str | int) and not isinstance(value, bool):
            return re.sub(r"[^A-Za-z0-9._-]+", "-", str(value)).strip("-") or None
    return None


def _render(data: dict[str, Any]) -> str:
    return "\n".join(f"{key}: {_value(value)}" for key, value in data.items())


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_value(v)}" for k, v in value.items())
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
