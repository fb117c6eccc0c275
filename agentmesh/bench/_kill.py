"""The bench behind ``agentmesh bench kill``: how fast a kill switch stops live runs.

``runs`` runs of one workflow (meta -> lead -> ``stages`` code specialists that each
sleep ``step_s``) are started in threads and let go together; a few steps later the
workflow's switch is set; the bench reports, per run, the time from the call to
:meth:`~agentmesh.controls.KillSwitch.kill` until ``agentmesh.run`` returned the
run's ``killed`` result (p50, p95, max). A run is
inside a step when the switch is set, so the latency is at most the rest of that
step plus the unwinding; ``step_ms`` is reported with the figures.

It also times the check every node makes (:meth:`~agentmesh.controls.KillSwitch.check`)
with no switch file, and with a switch set for another workflow.
"""

from __future__ import annotations

import math
import os
import platform
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.memory import InMemorySaver
from pydantic import BaseModel

from agentmesh.controls.killswitch import KillSwitch
from agentmesh.lead import Lead, Meta
from agentmesh.run import run
from agentmesh.settings import Settings
from agentmesh.specialist import Specialist
from agentmesh.types import RunStatus

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["run_kill_bench"]

_WAIT_S = 60.0
_CHECKS = 20_000


class Work(BaseModel):
    """The payload every stage reads and writes."""

    key: str
    n: int


def run_kill_bench(
    runs: int = 50,
    *,
    stages: int = 40,
    step_s: float = 0.005,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Start ``runs`` runs, kill their workflow mid-run and time how fast each stops.

    Args:
        runs: Concurrent runs (one thread each).
        stages: Specialists per run; enough that no run finishes before the kill.
        step_s: How long each specialist works (sleeps).
        settings: Where the kill switch lives; default: a file store in a fresh
            temporary folder (pass settings with ``kill_switch`` set to time Redis).

    Returns:
        ``stop_latency_ms`` (``p50``, ``p95``, ``max``, ``min``), ``killed`` and the
        ``statuses`` of all runs, ``steps_started_after_kill``, ``check_us`` (the
        cost of one node's check), and the set-up: ``runs``, ``stages``,
        ``step_ms``, ``store``, ``python``, ``machine``.

    Raises:
        ValueError: ``runs`` or ``stages`` is below 1, or ``step_s`` is negative.
    """
    if runs < 1 or stages < 1 or step_s < 0:
        raise ValueError("runs and stages must be >= 1 and step_s >= 0")
    if settings is not None:
        return _measure(runs, stages, step_s, settings)
    with tempfile.TemporaryDirectory(prefix="agentmesh-bench-kill-") as folder:
        return _measure(runs, stages, step_s, Settings(data_dir=Path(folder)))


class _Floor:
    """What the specialists report: which runs have started, and steps begun after the kill."""

    def __init__(self) -> None:
        self.go = threading.Event()  # first steps wait for it: every run is in flight at once
        self.started: set[str] = set()
        self.killed_at = math.inf
        self.late_steps = 0
        self.changed = threading.Condition()

    def step(self, key: str) -> None:
        now = time.perf_counter()
        with self.changed:
            self.late_steps += now > self.killed_at
            if key not in self.started:
                self.started.add(key)
                self.changed.notify_all()

    def wait_started(self, runs: int) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.started) >= runs, _WAIT_S):
                raise RuntimeError(f"only {len(self.started)} of {runs} runs started")


def _measure(runs: int, stages: int, step_s: float, settings: Settings) -> dict[str, Any]:
    workflow = f"bench-kill-{uuid.uuid4().hex[:8]}"
    switch = KillSwitch.from_settings(settings)
    check_us = _check_costs(switch, workflow)
    floor = _Floor()
    graph = _graph(workflow, stages, step_s, floor)
    saver = InMemorySaver()
    ended: dict[str, float] = {}

    def one(key: str) -> RunStatus:
        result = run(
            graph, Work(key=key, n=0), thread_id=key, settings=settings, checkpointer=saver
        )
        ended[key] = time.perf_counter()
        return result.status

    keys = [f"{workflow}-{i}" for i in range(runs)]
    try:
        with ThreadPoolExecutor(max_workers=runs) as pool:
            futures = [pool.submit(one, key) for key in keys]
            floor.wait_started(runs)
            floor.go.set()
            time.sleep(5 * step_s)  # a few steps into every run
            with floor.changed:
                kill_called = time.perf_counter()
                switch.kill(workflow=workflow, reason="agentmesh bench kill")
                floor.killed_at = time.perf_counter()
            statuses = Counter(f.result(timeout=_WAIT_S).value for f in futures)
    finally:
        switch.clear(workflow=workflow)
    latencies = sorted((ended[k] - kill_called) * 1000 for k in keys)
    return {
        "runs": runs,
        "stages": stages,
        "step_ms": round(step_s * 1000, 3),
        "store": type(switch.store).__name__,
        "killed": statuses.get(RunStatus.KILLED.value, 0),
        "statuses": dict(statuses),
        "stop_latency_ms": {
            "p50": _rounded(_percentile(latencies, 0.50)),
            "p95": _rounded(_percentile(latencies, 0.95)),
            "max": _rounded(latencies[-1]),
            "min": _rounded(latencies[0]),
        },
        "steps_started_after_kill": floor.late_steps,
        "check_us": check_us,
        "python": platform.python_version(),
        "machine": f"{os.cpu_count() or 1} cores",
    }


def _graph(workflow: str, stages: int, step_s: float, floor: _Floor) -> Any:
    def work(payload: Work) -> Work:
        floor.step(payload.key)
        if payload.n == 0 and not floor.go.wait(_WAIT_S):
            raise RuntimeError("the bench never let the runs go")
        time.sleep(step_s)
        return Work(key=payload.key, n=payload.n + 1)

    steps = [Specialist(name=f"step_{i}", input=Work, output=Work, fn=work) for i in range(stages)]
    lead = Lead(name="work", input=Work, output=Work, stages=steps, max_steps=stages + 1)
    return Meta(name=workflow, input=Work, output=Work, stages=[lead]).compile()


def _check_costs(switch: KillSwitch, workflow: str) -> dict[str, float]:
    """Microseconds per check as a node makes it: nothing set, then another workflow's switch."""
    agents = ("work", "step_1")

    def check() -> None:
        switch.check(workflow=workflow, agents=agents, run_id="bench")

    quiet = _time_us(check)
    other = f"{workflow}-other"
    switch.kill(workflow=other, reason="agentmesh bench kill: unrelated")
    try:
        unrelated = _time_us(check)
    finally:
        switch.clear(workflow=other)
    return {"nothing_set": quiet, "other_workflow_set": unrelated}


def _time_us(fn: Callable[[], None]) -> float:
    fn()  # the first check reads the store; time the steady state
    started = time.perf_counter()
    for _ in range(_CHECKS):
        fn()
    return _rounded((time.perf_counter() - started) / _CHECKS * 1e6)


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _rounded(value: float) -> float:
    return round(value, 3)
