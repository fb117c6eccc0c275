"""Kill switch: the store conformance suite, checks, the file store across processes."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path

import pytest

from agentmesh.controls.killswitch import (
    FileKillStore,
    KillRecord,
    KillStore,
    KillSwitch,
    RedisKillStore,
    kill_scope,
)
from agentmesh.errors import ConfigError, RunKilledError
from agentmesh.settings import Settings

MakeStore = Callable[[], KillStore]


class KillStoreConformance:
    """What every KillStore must do. Subclasses provide ``make_store``: stores on one location."""

    @pytest.fixture
    def store(self, make_store: MakeStore) -> KillStore:
        return make_store()

    def test_is_a_kill_store(self, store: KillStore) -> None:
        assert isinstance(store, KillStore)

    def test_starts_empty(self, store: KillStore) -> None:
        assert store.active() == {}

    def test_set_records_scope_reason_and_time(self, store: KillStore) -> None:
        store.set("workflow:invoices", "bad deploy", 1700000000.5)
        assert store.active() == {
            "workflow:invoices": KillRecord(
                scope="workflow:invoices", reason="bad deploy", at=1700000000.5
            )
        }

    def test_set_again_replaces_the_reason(self, store: KillStore) -> None:
        store.set("all", "first", 1.0)
        store.set("all", "second", 2.0)
        assert store.active() == {"all": KillRecord(scope="all", reason="second", at=2.0)}

    def test_clear_lifts_one_scope_and_says_whether_it_was_set(self, store: KillStore) -> None:
        store.set("all", "x", 1.0)
        store.set("agent:intake", "y", 2.0)
        assert store.clear("all") is True
        assert store.clear("all") is False
        assert list(store.active()) == ["agent:intake"]

    def test_version_is_stable_while_nothing_changes(self, store: KillStore) -> None:
        store.set("all", "x", 1.0)
        assert store.version() == store.version()

    def test_version_changes_on_every_write_even_back_to_the_same_state(
        self, store: KillStore
    ) -> None:
        seen: list[Hashable] = [store.version()]
        for _ in range(30):
            store.set("all", "same", 1.0)
            seen.append(store.version())
            store.clear("all")
            seen.append(store.version())
        assert all(a != b for a, b in itertools.pairwise(seen)), seen

    def test_another_instance_sees_the_writes(self, make_store: MakeStore) -> None:
        writer, reader = make_store(), make_store()
        assert reader.active() == {}
        writer.set("agent:pay", "fraud spike", 3.0)
        assert reader.active()["agent:pay"].reason == "fraud spike"
        writer.clear("agent:pay")
        assert reader.active() == {}

    def test_concurrent_writers_lose_no_switch(self, make_store: MakeStore) -> None:
        def write(n: int) -> None:
            mine = make_store()
            for i in range(5):
                mine.set(f"agent:a{n}-{i}", "x", float(i))

        threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(make_store().active()) == 30

    # -- the switch over this store --

    def test_check_raises_for_each_covering_scope(self, make_store: MakeStore) -> None:
        switch = KillSwitch(make_store())
        switch.check(workflow="invoices", agent="intake")
        for kwargs, scope in [
            ({"workflow": "invoices"}, "workflow:invoices"),
            ({"agent": "intake"}, "agent:intake"),
            ({"all": True}, "all"),
        ]:
            assert switch.kill(**kwargs, reason=f"stop {scope}") == scope
            with pytest.raises(RunKilledError) as caught:
                switch.check(workflow="invoices", agent="intake", run_id="run-7")
            assert (caught.value.scope, caught.value.reason) == (scope, f"stop {scope}")
            assert caught.value.run_id == "run-7"
            assert scope in str(caught.value) and f"stop {scope}" in str(caught.value)
            assert switch.clear(**kwargs) is True
            switch.check(workflow="invoices", agent="intake")

    def test_check_ignores_other_workflows_and_agents(self, make_store: MakeStore) -> None:
        switch = KillSwitch(make_store())
        switch.kill(workflow="invoices", reason="x")
        switch.kill(agent="intake", reason="y")
        switch.check(workflow="claims", agent="triage")
        switch.check(workflow=None, agent="triage")
        with pytest.raises(RunKilledError):
            switch.check(workflow=None, agent="intake")

    def test_broadest_scope_is_reported_first(self, make_store: MakeStore) -> None:
        switch = KillSwitch(make_store())
        switch.kill(agent="intake", reason="agent")
        switch.kill(workflow="invoices", reason="workflow")
        with pytest.raises(RunKilledError) as caught:
            switch.check(workflow="invoices", agent="intake")
        assert caught.value.scope == "workflow:invoices"
        switch.kill(all=True, reason="everything")
        with pytest.raises(RunKilledError) as caught:
            switch.check(workflow="invoices", agent="intake")
        assert caught.value.scope == "all"

    def test_a_switch_set_elsewhere_stops_checks_here(self, make_store: MakeStore) -> None:
        here, elsewhere = KillSwitch(make_store()), KillSwitch(make_store())
        here.check(workflow="invoices")
        elsewhere.kill(workflow="invoices", reason="from another process")
        with pytest.raises(RunKilledError, match="from another process"):
            here.check(workflow="invoices")
        elsewhere.clear(workflow="invoices")
        here.check(workflow="invoices")

    def test_active_lists_oldest_first(self, make_store: MakeStore) -> None:
        clock = iter([20.0, 10.0]).__next__
        switch = KillSwitch(make_store(), clock=clock)
        switch.kill(all=True, reason="later")
        switch.kill(agent="a", reason="earlier")
        assert [r.scope for r in switch.active()] == ["agent:a", "all"]


class TestFileKillStore(KillStoreConformance):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> MakeStore:
        return lambda: FileKillStore(tmp_path / "switches" / "kill.json")


# -- scopes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"all": True, "agent": "a"}, {"workflow": "w", "agent": "a"}, {"workflow": "  "}],
)
def test_scope_must_be_exactly_one_named_thing(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        kill_scope(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        KillSwitch(FileKillStore(Path("unused.json"))).kill(**kwargs, reason="x")  # type: ignore[arg-type]


def test_scope_strings() -> None:
    assert kill_scope(all=True) == "all"
    assert kill_scope(workflow="invoices") == "workflow:invoices"
    assert kill_scope(agent=" intake ") == "agent:intake"


# -- file store specifics --------------------------------------------------------------------


class CountingStore(FileKillStore):
    reads = 0

    def active(self) -> dict[str, KillRecord]:
        self.reads += 1
        return super().active()


def test_check_reads_the_file_only_after_it_changed(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "kill.json")
    switch = KillSwitch(store)
    for _ in range(100):
        switch.check(workflow="w", agent="a")
    assert store.reads == 1
    FileKillStore(tmp_path / "kill.json").set("agent:other", "x", 1.0)
    for _ in range(100):
        switch.check(workflow="w", agent="a")
    assert store.reads == 2


def test_default_store_is_a_file_in_the_data_folder() -> None:
    data_dir = Settings.from_env().data_dir
    switch = KillSwitch()
    assert isinstance(switch.store, FileKillStore)
    switch.kill(all=True, reason="x")
    assert (data_dir / "kill_switch.json").is_file()
    assert KillSwitch.from_settings(Settings(data_dir=data_dir)).active()[0].scope == "all"


def test_from_settings_picks_the_store_from_the_url(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert isinstance(KillSwitch.from_settings(settings).store, FileKillStore)
    assert isinstance(KillSwitch.from_settings(settings, url="").store, FileKillStore)
    redis_switch = KillSwitch.from_settings(settings, url="redis://127.0.0.1:6379/0")
    assert isinstance(redis_switch.store, RedisKillStore)
    with pytest.raises(ConfigError, match="expected a redis:// URL"):
        KillSwitch.from_settings(settings, url="postgresql://db/kill")


def test_a_damaged_file_is_reported_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "kill.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=str(path)):
        KillSwitch(FileKillStore(path)).check(workflow="w")


def test_each_write_moves_the_file_time_forward_even_past_the_clock(tmp_path: Path) -> None:
    """Two writes in one tick of the file clock, on a reused inode, must still differ."""
    path = tmp_path / "kill.json"
    store = FileKillStore(path)
    store.set("all", "x", 1.0)
    ahead = time.time_ns() + 3600 * 10**9
    os.utime(path, ns=(ahead, ahead))
    store.clear("all")
    store.set("all", "x", 1.0)
    assert path.stat().st_mtime_ns == ahead + 2


def test_written_file_is_readable_by_other_accounts(tmp_path: Path) -> None:
    store = FileKillStore(tmp_path / "kill.json")
    store.set("all", "x", 1.0)
    assert (tmp_path / "kill.json").stat().st_mode & 0o044 == 0o044
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


# -- across processes --------------------------------------------------------------------------

WATCHER = """
import sys, time
from agentmesh.controls.killswitch import KillSwitch
from agentmesh.errors import RunKilledError
switch = KillSwitch(STORE)
last_ok = 0.0
print("ready", flush=True)
deadline = time.time() + 20
while time.time() < deadline:
    started = time.time()
    try:
        switch.check(workflow="invoices", agent="intake", run_id="r1")
    except RunKilledError as exc:
        print(repr(last_ok), repr(started), exc.scope, exc.reason, sep="|", flush=True)
        break
    last_ok = started
    time.sleep(0.001)
else:
    print("never stopped", flush=True)
"""


def watch_in_child(store_expr: str, imports: str, kill: Callable[[], None]) -> tuple[float, float]:
    """Start a child that checks in a loop, set the switch here, return (last_ok, done)."""
    code = imports + WATCHER.replace("STORE", store_expr)
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert child.stdout is not None
        ready = child.stdout.readline()
        assert ready.strip() == "ready", ready + child.stderr.read() if child.stderr else ready
        time.sleep(0.05)  # let it pass a few checks first
        kill()
        done = time.time()
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0, err
    last_ok, started, scope, reason = out.strip().split("|")
    assert (scope, reason) == ("workflow:invoices", "halt from the parent")
    assert float(started) > done - 1.0
    return float(last_ok), done


def test_a_switch_set_in_one_process_stops_the_next_check_in_another(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "kill.json"
    switch = KillSwitch(FileKillStore(path))
    last_ok, done = watch_in_child(
        f"FileKillStore({str(path)!r})",
        "from agentmesh.controls.killswitch import FileKillStore\n",
        lambda: switch.kill(workflow="invoices", reason="halt from the parent"),
    )
    # Documented latency: none. Every check that began after the write finished raised.
    assert last_ok < done


# -- cost ------------------------------------------------------------------------------------


def measure_check_us(switch: KillSwitch, n: int = 20000) -> float:
    start = time.perf_counter()
    for _ in range(n):
        switch.check(workflow="invoices", agent="intake")
    return (time.perf_counter() - start) / n * 1e6


def test_check_cost_file_store(tmp_path: Path) -> None:
    """Prints the cost of a check (run with -s); asserts only that checks still work."""
    store = FileKillStore(tmp_path / "kill.json")
    switch = KillSwitch(store)
    no_file = measure_check_us(switch)
    store.set("workflow:claims", "x", 1.0)
    store.set("agent:triage", "y", 1.0)
    unrelated = measure_check_us(switch)
    print(f"\nFileKillStore check(): {no_file:.2f} us (no file), {unrelated:.2f} us (2 switches)")
    store.set("all", "z", 1.0)
    with pytest.raises(RunKilledError):
        switch.check(workflow="invoices")
