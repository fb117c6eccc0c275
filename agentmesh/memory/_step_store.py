"""Where externalized steps live, and the ``recall_step`` tool that reads them back.

A :class:`StepStore` keeps the full record of every step a working context
compressed, under a pointer the summary quotes. Two methods make a store;
:class:`InMemoryStepStore` is the reference implementation and
:class:`SQLiteStepStore` keeps records in a file under the data folder so they
outlive the process. Both are thread-safe.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from langchain_core.messages import BaseMessage, messages_from_dict, messages_to_dict
from langchain_core.tools import StructuredTool

from agentmesh.errors import ToolError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType

    from langchain_core.tools import BaseTool

__all__ = [
    "RECALL_TOOL_NAME",
    "STEPS_FILE",
    "InMemoryStepStore",
    "SQLiteStepStore",
    "StepStore",
    "build_recall_tool",
    "render_step",
]

RECALL_TOOL_NAME = "recall_step"
#: Where :meth:`SQLiteStepStore.in_data_dir` keeps its file, relative to the data folder.
STEPS_FILE = Path("context") / "steps.sqlite"


@runtime_checkable
class StepStore(Protocol):
    """Keeps full step records by pointer.

    Implementations must be thread-safe, and ``get`` must return messages equal
    to the ones ``put`` received (tool calls, tool-call ids and statuses included).
    """

    def put(self, pointer: str, messages: Sequence[BaseMessage]) -> None:
        """Keep ``messages`` under ``pointer``, replacing any earlier record."""
        ...

    def get(self, pointer: str) -> list[BaseMessage] | None:
        """The messages kept under ``pointer``, or ``None``."""
        ...


def _dump(messages: Sequence[BaseMessage]) -> str:
    return json.dumps(messages_to_dict(list(messages)), default=str)


def _load(data: str) -> list[BaseMessage]:
    return messages_from_dict(json.loads(data))


class InMemoryStepStore:
    """The reference :class:`StepStore`: records in a dict, serialized as SQLite would."""

    def __init__(self) -> None:
        self._records: dict[str, str] = {}
        self._lock = threading.Lock()

    def put(self, pointer: str, messages: Sequence[BaseMessage]) -> None:
        """Keep ``messages`` under ``pointer``."""
        data = _dump(messages)
        with self._lock:
            self._records[pointer] = data

    def get(self, pointer: str) -> list[BaseMessage] | None:
        """The messages under ``pointer``, or ``None``."""
        with self._lock:
            data = self._records.get(pointer)
        return None if data is None else _load(data)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


class SQLiteStepStore:
    """A :class:`StepStore` in one SQLite file; records survive the process.

    Args:
        path: The database file; its folder is created if missing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        # WAL without a sync per commit: a step written per compression must not cost an fsync;
        # a power cut may lose the last records, never corrupt the file.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS steps ("
                "pointer TEXT PRIMARY KEY, messages TEXT NOT NULL, created REAL NOT NULL)"
            )

    @classmethod
    def in_data_dir(cls, data_dir: str | Path) -> SQLiteStepStore:
        """The store kept at ``<data_dir>/context/steps.sqlite``.

        Pass ``Settings.from_env().data_dir`` to use the project's data folder.
        """
        return cls(Path(data_dir) / STEPS_FILE)

    def put(self, pointer: str, messages: Sequence[BaseMessage]) -> None:
        """Keep ``messages`` under ``pointer``."""
        data = _dump(messages)
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO steps (pointer, messages, created) VALUES (?, ?, ?)",
                (pointer, data, time.time()),
            )

    def get(self, pointer: str) -> list[BaseMessage] | None:
        """The messages under ``pointer``, or ``None``."""
        with self._lock:
            row = self._db.execute(
                "SELECT messages FROM steps WHERE pointer = ?", (pointer,)
            ).fetchone()
        return None if row is None else _load(row[0])

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> SQLiteStepStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def render_step(messages: Sequence[BaseMessage]) -> str:
    """A step as JSON a model can read: role, content, tool calls and tool-call ids."""
    rows: list[dict[str, Any]] = []
    for m in messages:
        row: dict[str, Any] = {"role": m.type, "content": m.content}
        calls = getattr(m, "tool_calls", None)
        if calls:
            row["tool_calls"] = [{"name": c["name"], "args": c["args"]} for c in calls]
        call_id = getattr(m, "tool_call_id", None)
        if call_id:
            row["tool_call_id"] = call_id
        if getattr(m, "status", "success") == "error":
            row["status"] = "error"
        rows.append(row)
    return json.dumps(rows, default=str)


def build_recall_tool(lookup: Callable[[str], Sequence[BaseMessage] | None]) -> BaseTool:
    """The ``recall_step(pointer)`` tool: the model reads back a step its context condensed.

    Args:
        lookup: Finds a step's messages by pointer, e.g. ``store.get`` or
            :meth:`WorkingContext.get <agentmesh.memory.context.WorkingContext.get>`.

    Returns:
        A LangChain tool answering with the step as JSON; an unknown pointer raises
        :class:`~agentmesh.errors.ToolError` (the runtime turns it into an
        ``error:`` tool result for the model).
    """

    def recall_step(pointer: str) -> str:
        messages = lookup(pointer)
        if messages is None:
            raise ToolError(f"no recorded step under pointer {pointer!r}", tool=RECALL_TOOL_NAME)
        return render_step(messages)

    return StructuredTool.from_function(
        recall_step,
        name=RECALL_TOOL_NAME,
        description=(
            "Read back the full record of an earlier step that was condensed in the context "
            "summary. `pointer` is the id shown in square brackets, e.g. 'step:1a2b3c4d:12'."
        ),
    )
