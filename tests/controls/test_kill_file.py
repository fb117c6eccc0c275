"""The file kill switch store's read path: no system call per check, yet no change missed."""

from __future__ import annotations

import json
import os
import threading
from typing import TYPE_CHECKING, Any

import pytest

from agentmesh.controls.killswitch import FileKillStore, KillSwitch
from agentmesh.errors import RunKilledError

if TYPE_CHECKING:
    from pathlib import Path


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def syscalls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every os.stat/os.open/os.fstat the code under test makes, by name."""
    seen: list[str] = []
    for name in ("stat", "open", "fstat"):
        real = getattr(os, name)

        def counted(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            seen.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(os, name, counted)
    return seen


def test_checks_make_no_system_call_while_nothing_changes(
    tmp_path: Path, syscalls: list[str]
) -> None:
    """A stat() per check releases the GIL and costs parallel runs a thread switch."""
    clock = FakeClock()
    switch = KillSwitch(FileKillStore(tmp_path / "kill.json", clock=clock))
    switch.check(workflow="w", agent="a")  # maps the counter
    syscalls.clear()
    for _ in range(1000):
        switch.check(workflow="w", agent="a", agents=("lead",))
    assert syscalls == []


def test_a_write_by_another_store_is_seen_by_the_very_next_check(tmp_path: Path) -> None:
    clock = FakeClock()  # never moves: only the shared counter can tell the reader
    reader = KillSwitch(FileKillStore(tmp_path / "kill.json", clock=clock))
    writer = KillSwitch(FileKillStore(tmp_path / "kill.json"))
    reader.check(workflow="w")
    for n in range(20):
        writer.kill(workflow="w", reason=f"stop {n}")
        with pytest.raises(RunKilledError, match=f"stop {n}"):
            reader.check(workflow="w")
        writer.clear(workflow="w")
        reader.check(workflow="w")


def test_a_writer_thread_and_reader_threads_agree(tmp_path: Path) -> None:
    store = FileKillStore(tmp_path / "kill.json")
    switch = KillSwitch(store)
    switch.check(workflow="w")
    stop = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        while not stop.is_set():
            try:
                switch.check(workflow="other")
            except BaseException as exc:  # pragma: no cover - the assertion shows it
                errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    writer = KillSwitch(FileKillStore(tmp_path / "kill.json"))
    for _ in range(30):
        writer.kill(workflow="w", reason="x")
        with pytest.raises(RunKilledError):
            switch.check(workflow="w")
        writer.clear(workflow="w")
        switch.check(workflow="w")
    stop.set()
    for t in readers:
        t.join()
    assert errors == []


def test_a_hand_edited_file_is_seen_after_recheck_s(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "kill.json"
    switch = KillSwitch(FileKillStore(path, clock=clock, recheck_s=1.0))
    switch.check(workflow="w")
    path.write_text(json.dumps({"switches": {"all": {"reason": "by hand", "at": 1.0}}}))
    clock.now += 0.5
    switch.check(workflow="w")  # not yet: no writer bumped the counter
    clock.now += 0.6
    with pytest.raises(RunKilledError, match="by hand"):
        switch.check(workflow="w")


def test_a_lock_file_made_again_is_mapped_again(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "kill.json"
    reader = KillSwitch(FileKillStore(path, clock=clock))
    reader.check(workflow="w")
    (tmp_path / "kill.json.lock").unlink()  # e.g. someone cleaned the data folder
    KillSwitch(FileKillStore(path)).kill(all=True, reason="after the clean-up")
    clock.now += 1.5
    with pytest.raises(RunKilledError, match="after the clean-up"):
        reader.check(workflow="w")
    KillSwitch(FileKillStore(path)).clear(all=True)
    reader.check(workflow="w")  # and the new map follows later writes at once


def test_where_no_counter_can_be_mapped_each_check_stats_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kill.json"
    real_open = os.open

    def no_lock_file(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if str(file).endswith(".lock"):
            raise PermissionError(13, "read-only folder", str(file))
        return real_open(file, flags, *args, **kwargs)

    reader = FileKillStore(path)
    monkeypatch.setattr(os, "open", no_lock_file)
    switch = KillSwitch(reader)
    switch.check(workflow="w")
    monkeypatch.setattr(os, "open", real_open)
    KillSwitch(FileKillStore(path)).kill(workflow="w", reason="seen through stat")
    with pytest.raises(RunKilledError, match="seen through stat"):
        switch.check(workflow="w")
