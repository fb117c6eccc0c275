"""The kill switch against live runs: 50 at once, by workflow, by agent and for all.

The 50 concurrent runs share one ``InMemorySaver``; the others use the default
persistent checkpointer (SQLite in the test's data folder). Each run's first
specialist waits on an event, so the switch is set while every run is inside a
step; when the event is released each run must stop before its next step, end
``killed`` with the reason, and once the switch is cleared resume from its checkpoint
and complete without redoing the step it had finished.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import BaseModel

import agentmesh as am
from agentmesh.bench._kill import run_kill_bench
from agentmesh.cli._app import main
from agentmesh.controls import KillSwitch

pytestmark = pytest.mark.timeout(120)

RUNS = 50
WAIT_S = 30.0  # only reached if something is broken


class Job(BaseModel):
    key: str


class Picked(BaseModel):
    key: str
    picked: int


class Packed(BaseModel):
    key: str
    packed: int


class Shipped(BaseModel):
    shipped: str


@dataclass(kw_only=True)
class Floor:
    """Where specialists report what they ran and wait to be let go."""

    release: threading.Event = field(default_factory=threading.Event)
    ran: Counter[tuple[str, str]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    waiting: int = 0
    all_waiting: threading.Condition = field(default_factory=threading.Condition)

    def mark(self, agent: str, key: str) -> None:
        with self.lock:
            self.ran[agent, key] += 1

    def hold(self) -> None:
        """Block the calling step until ``release`` is set."""
        with self.all_waiting:
            self.waiting += 1
            self.all_waiting.notify_all()
        assert self.release.wait(WAIT_S), "never released"

    def wait_for(self, n: int) -> None:
        with self.all_waiting:
            assert self.all_waiting.wait_for(lambda: self.waiting >= n, WAIT_S), self.waiting

    def count(self, agent: str) -> int:
        with self.lock:
            return sum(n for (a, _), n in self.ran.items() if a == agent)


def line(floor: Floor, *, workflow: str, lead: str, prefix: str) -> Any:
    """meta ``workflow`` -> lead ``lead`` -> pick (waits) -> pack -> ship."""

    def pick(job: Job) -> Picked:
        floor.mark(f"{prefix}pick", job.key)
        floor.hold()
        return Picked(key=job.key, picked=1)

    def pack(item: Picked) -> Packed:
        floor.mark(f"{prefix}pack", item.key)
        return Packed(key=item.key, packed=item.picked + 1)

    def ship(box: Packed) -> Shipped:
        floor.mark(f"{prefix}ship", box.key)
        return Shipped(shipped=f"{box.key}:{box.packed}")

    stages = [
        am.Specialist(name=f"{prefix}pick", input=Job, output=Picked, fn=pick),
        am.Specialist(name=f"{prefix}pack", input=Picked, output=Packed, fn=pack),
        am.Specialist(name=f"{prefix}ship", input=Packed, output=Shipped, fn=ship),
    ]
    inner = am.Lead(name=lead, input=Job, output=Shipped, stages=stages)
    return am.Meta(name=workflow, input=Job, output=Shipped, stages=[inner]).compile()


def run_all(
    graph: Any, keys: list[str], *, resume: bool = False, checkpointer: Any = "default"
) -> dict[str, am.RunResult[Any]]:
    def one(key: str) -> am.RunResult[Any]:
        job = None if resume else Job(key=key)
        return am.run(graph, job, thread_id=key, checkpointer=checkpointer)

    with ThreadPoolExecutor(max_workers=len(keys)) as pool:
        return dict(zip(keys, pool.map(one, keys), strict=True))


@pytest.fixture
def switch() -> Iterator[KillSwitch]:
    """The switch of this test's data folder: the one the runs check."""
    switch = KillSwitch()
    yield switch
    for record in switch.active():
        switch.store.clear(record.scope)


def start(
    graph: Any, keys: list[str], floor: Floor, checkpointer: Any = "default"
) -> tuple[Callable[[], dict[str, am.RunResult[Any]]], ThreadPoolExecutor]:
    """Start the runs in threads and return once every one of them waits inside ``pick``."""
    with floor.all_waiting:
        already = floor.waiting
    pool = ThreadPoolExecutor(max_workers=len(keys))
    futures = {
        k: pool.submit(am.run, graph, Job(key=k), thread_id=k, checkpointer=checkpointer)
        for k in keys
    }
    floor.wait_for(already + len(keys))
    return lambda: {k: f.result(timeout=WAIT_S) for k, f in futures.items()}, pool


# -- 50 runs of one workflow ---------------------------------------------------------------------


def test_fifty_concurrent_runs_stop_before_their_next_step_and_resume(
    switch: KillSwitch,
) -> None:
    floor = Floor()
    graph = line(floor, workflow="fleet", lead="ops", prefix="")
    keys = [f"run-{i:02d}" for i in range(RUNS)]
    saver = InMemorySaver()
    collect, pool = start(graph, keys, floor, saver)  # every run is inside its first step

    switch.kill(workflow="fleet", reason="incident 42: bad deploy")
    floor.release.set()
    stopped = collect()
    pool.shutdown()

    for key, result in stopped.items():
        assert result.status is am.RunStatus.KILLED, (key, result.reason)
        assert result.reason == "kill switch 'workflow:fleet' is set: incident 42: bad deploy"
        assert result.output is None
        assert result.partial["ops/pick"].output == {"key": key, "picked": 1}
    assert floor.count("pick") == RUNS
    assert floor.count("pack") == 0, "a killed run took another step"

    assert switch.clear(workflow="fleet")
    resumed = run_all(graph, keys, resume=True, checkpointer=saver)

    for key, result in resumed.items():
        assert result.status is am.RunStatus.COMPLETED, (key, result.reason)
        assert result.output == Shipped(shipped=f"{key}:2")
    # Each run picked once (the step finished before the kill is not redone), then went on.
    assert all(floor.ran["pick", k] == 1 for k in keys), floor.ran
    assert floor.count("pack") == floor.count("ship") == RUNS


# -- by agent: a lead's name stops its specialists -----------------------------------------------


def test_killing_a_lead_stops_its_specialists_and_nothing_else(switch: KillSwitch) -> None:
    floor = Floor()
    fleet = line(floor, workflow="fleet", lead="ops", prefix="")
    other = line(floor, workflow="depot", lead="yard", prefix="yard_")
    keys = [f"ops-{i}" for i in range(5)]
    collect, pool = start(fleet, keys, floor)

    switch.kill(agent="ops", reason="ops is misbehaving")  # the runs wait inside ops/pick
    floor.release.set()
    # A run of another workflow, none of whose agents is under "ops", is not stopped.
    untouched = am.run(other, Job(key="depot-1"), thread_id="depot-1")
    stopped = collect()
    pool.shutdown()

    assert untouched.status is am.RunStatus.COMPLETED, untouched.reason
    for result in stopped.values():
        assert result.status is am.RunStatus.KILLED
        assert result.reason == "kill switch 'agent:ops' is set: ops is misbehaving"
    assert floor.count("pack") == 0

    switch.clear(agent="ops")
    for key, result in run_all(fleet, keys, resume=True).items():
        assert result.output == Shipped(shipped=f"{key}:2")


def test_killing_a_specialist_stops_runs_when_they_reach_it(switch: KillSwitch) -> None:
    floor = Floor()
    fleet = line(floor, workflow="fleet", lead="ops", prefix="")
    collect, pool = start(fleet, ["k-1", "k-2"], floor)

    switch.kill(agent="ship", reason="carrier down")
    floor.release.set()
    stopped = collect()
    pool.shutdown()

    for key, result in stopped.items():
        assert result.status is am.RunStatus.KILLED
        assert "carrier down" in result.reason
        assert sorted(result.partial) == ["ops/pack", "ops/pick"]
        assert result.partial["ops/pack"].output == {"key": key, "packed": 2}
    assert floor.count("ship") == 0


# -- all -----------------------------------------------------------------------------------------


def test_kill_all_stops_every_workflow(switch: KillSwitch) -> None:
    floor = Floor()
    fleet = line(floor, workflow="fleet", lead="ops", prefix="")
    depot = line(floor, workflow="depot", lead="yard", prefix="yard_")
    collect_fleet, fleet_pool = start(fleet, ["f-1", "f-2", "f-3"], floor)
    collect_depot, depot_pool = start(depot, ["d-1", "d-2", "d-3"], floor)

    switch.kill(all=True, reason="stop the world")
    floor.release.set()
    stopped = {**collect_fleet(), **collect_depot()}
    fleet_pool.shutdown()
    depot_pool.shutdown()

    assert {r.status for r in stopped.values()} == {am.RunStatus.KILLED}
    assert {r.reason for r in stopped.values()} == {"kill switch 'all' is set: stop the world"}
    assert floor.count("pack") == floor.count("yard_pack") == 0

    # While it is set, nothing starts either.
    blocked = am.run(fleet, Job(key="late"), thread_id="late")
    assert blocked.status is am.RunStatus.KILLED
    assert floor.ran["pick", "late"] == 0

    switch.clear(all=True)
    assert run_all(fleet, ["f-1", "f-2", "f-3", "late"], resume=True)["late"].status is (
        am.RunStatus.COMPLETED
    )
    assert {r.status for r in run_all(depot, ["d-1", "d-2", "d-3"], resume=True).values()} == {
        am.RunStatus.COMPLETED
    }


# -- agentmesh bench kill ------------------------------------------------------------------------


def test_the_kill_bench_times_how_fast_runs_stop() -> None:
    report = run_kill_bench(6, stages=20, step_s=0.002, settings=am.Settings.from_env())

    assert report["statuses"] == {"killed": 6}
    assert report["killed"] == report["runs"] == 6
    latency = report["stop_latency_ms"]
    assert 0 < latency["min"] <= latency["p50"] <= latency["p95"] <= latency["max"]
    assert latency["max"] < 5_000
    assert report["store"] == "FileKillStore"
    assert report["check_us"]["nothing_set"] > 0 and report["check_us"]["other_workflow_set"] > 0
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    # It ran in this test's data folder and left no switch set there.
    assert KillSwitch().active() == []


def test_the_kill_bench_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        run_kill_bench(0)


def test_cli_bench_kill_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["bench", "kill", "--runs", "3", "--json"])
    out, err = capsys.readouterr()
    assert exited.value.code in (0, None), err
    report = json.loads(out)
    assert report["runs"] == report["killed"] == 3
    assert set(report["stop_latency_ms"]) == {"p50", "p95", "max", "min"}
