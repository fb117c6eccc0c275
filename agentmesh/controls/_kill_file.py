"""The file kill switch store: switches shared by the processes of one machine.

Switches live in one JSON file. Writers take an exclusive ``flock`` on
``<path>.lock``, write a temporary file and ``os.replace`` it, so readers never see
a half-written file; then they add one to a counter held in the first 8 bytes of
the lock file.

Why a check makes no system call: the runtime checks before every node of every
run. A ``stat()`` costs only microseconds, but it releases the GIL, and in a run
with parallel branches every release hands the interpreter to another thread:
LangGraph then starts a second worker thread where one would do, and the run pays
for the thread switches. So readers map the lock file into memory and a check
reads the 8-byte counter from shared memory. A write by any process on the machine
is seen by the very next check.

Once every ``recheck_s`` (1 s) a reader also ``stat()``\\ s the JSON file and the lock
file, so a JSON file edited by hand, or a lock file removed and made again, is
noticed within a second. Where no lock file can be made or mapped (a read-only
folder), every check falls back to one ``stat()`` of the JSON file.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agentmesh.controls._kill_records import KillRecord, parse_records
from agentmesh.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterator

__all__ = ["FileKillStore"]

_COUNTER = struct.Struct("<Q")


@dataclass(frozen=True)
class _View:
    """What a reader last learnt from disk; replaced as a whole, so readers need no lock."""

    recheck_at: float
    counter: mmap.mmap | None  # the lock file's first 8 bytes, mapped; None: stat() per check
    file_stat: Hashable
    lock_id: tuple[int, int] | None


class FileKillStore:
    """Switches in one JSON file, for the processes of one machine (see the module docstring).

    Each write also gives the JSON file a strictly later modification time, so its
    ``(inode, mtime_ns, size)`` changes on every write too (the fallback version).
    Needs a local file system (on network file systems shared maps and attribute
    caching delay checks: use Redis there).

    Args:
        path: The JSON file; its folder is created on the first write or check.
        recheck_s: How often a reader looks at the files themselves.
        clock: Monotonic clock for ``recheck_s`` (inject a fake one in tests).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        recheck_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.recheck_s = recheck_s
        self._clock = clock
        self._stat_path = str(self.path)  # stat() on a str skips the Path conversion
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._refreshing = threading.Lock()
        self._view = _View(float("-inf"), None, None, None)

    def version(self) -> Hashable:
        """Return a token that changes on every write (no system call on most checks)."""
        view = self._view
        if self._clock() >= view.recheck_at:
            view = self._refresh()
        if view.counter is None:
            return (None, _file_stat(self._stat_path))
        return (view.counter[:8], view.file_stat)

    def active(self) -> dict[str, KillRecord]:
        """Return the switches in the file.

        Raises:
            ConfigError: The file is not one this store wrote.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        return {r.scope: r for r in parse_records(text, where=str(self.path))}

    def set(self, scope: str, reason: str, at: float) -> None:
        """Set (or replace) the switch for ``scope``."""
        with self._locked() as lock_fd:
            records = self.active()
            records[scope] = KillRecord(scope=scope, reason=reason, at=at)
            self._write(records, lock_fd)

    def clear(self, scope: str) -> bool:
        """Lift the switch for ``scope``; return whether it was set."""
        with self._locked() as lock_fd:
            records = self.active()
            if records.pop(scope, None) is None:
                return False
            self._write(records, lock_fd)
            return True

    # -- readers --------------------------------------------------------------------------

    def _refresh(self) -> _View:
        if not self._refreshing.acquire(blocking=False):
            return self._view  # another thread is looking: its answer is a moment away
        try:
            view = self._view
            counter, lock_id = view.counter, _identity(self._lock_path)
            if counter is None or lock_id != view.lock_id:
                counter, lock_id = self._map()
            stat = _file_stat(self._stat_path)
            view = _View(self._clock() + self.recheck_s, counter, stat, lock_id)
            self._view = view
            return view
        finally:
            self._refreshing.release()

    def _map(self) -> tuple[mmap.mmap | None, tuple[int, int] | None]:
        """Map the lock file's counter (making the file if needed), or ``None`` if it can't be."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            try:  # a folder this account cannot write: map the file if a writer made it
                fd = os.open(self._lock_path, os.O_RDONLY)
            except OSError:
                return None, None
        try:
            st = os.fstat(fd)
            if st.st_size < _COUNTER.size:
                # Zeros; a writer that got there first has already made it this long.
                os.ftruncate(fd, _COUNTER.size)
            return mmap.mmap(fd, _COUNTER.size, access=mmap.ACCESS_READ), (st.st_dev, st.st_ino)
        except (OSError, ValueError):
            return None, None
        finally:
            os.close(fd)

    # -- writers --------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[int]:
        if sys.platform == "win32":  # pragma: no cover - POSIX only
            raise ConfigError("FileKillStore needs POSIX file locks; use RedisKillStore")
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)

    def _write(self, records: dict[str, KillRecord], lock_fd: int) -> None:
        previous = _file_stat(self._stat_path)
        body = json.dumps(
            {"switches": {s: {"reason": r.reason, "at": r.at} for s, r in records.items()}},
            indent=2,
            sort_keys=True,
        )
        fd, tmp = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(body + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)  # readable by runs under other accounts, like the file it replaces
            # The kernel's file clock ticks every few milliseconds and inodes are
            # reused, so two quick writes could leave the same (inode, mtime, size).
            mtime = time.time_ns()
            if previous is not None:
                mtime = max(mtime, previous[1] + 1)
            os.utime(tmp, ns=(mtime, mtime))
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        # After the file: a reader that sees the new count reads the new file.
        raw = os.pread(lock_fd, _COUNTER.size, 0)
        count = _COUNTER.unpack(raw)[0] if len(raw) == _COUNTER.size else 0
        os.pwrite(lock_fd, _COUNTER.pack(count + 1), 0)


def _file_stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)
