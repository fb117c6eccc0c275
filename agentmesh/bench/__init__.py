"""The benchmark behind ``agentmesh bench``: framework overhead and supervisor comparison.

Two measurements, both offline and deterministic in their work (models are
:class:`~agentmesh.testing.ScriptedChatModel` instances that answer instantly):

* **overhead** — the same meta -> 2 leads -> 3 specialists hierarchy built with
  agentmesh and hand-wired in raw LangGraph, timed on the same inputs;
* **supervisor** — a research -> compute -> write task done by a
  ``langgraph_supervisor`` team and by an agentmesh lead, counting model calls
  and input tokens (needs the ``bench`` extra).
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from agentmesh.bench._overhead import (
    build_agentmesh,
    build_langgraph,
    new_models,
    ratio,
    run_agentmesh,
    run_langgraph,
    sample_tickets,
)
from agentmesh.bench._supervisor import compare_supervisor

if TYPE_CHECKING:
    from collections.abc import Callable

    from agentmesh.bench._overhead import Outcome, Ticket

__all__ = ["measure_overhead", "run_benchmark"]

OVERHEAD_TARGET = 1.25
#: Counts are deterministic per task, so the supervisor comparison needs few tasks.
SUPERVISOR_TASKS = 20


def run_benchmark(*, tasks: int = 200, repeats: int = 5) -> dict[str, Any]:
    """Run both benchmarks and return a JSON-serializable report.

    Args:
        tasks: Inputs per timed repeat of the overhead benchmark (the supervisor
            comparison runs ``min(tasks, 20)`` tasks: its counts do not vary by run).
        repeats: Timed repeats; per-task means are reported as their median.

    Returns:
        ``{"tasks", "repeats", "python", "langgraph_version", "machine",
        "overhead": {...}, "supervisor": {...}}``. ``overhead`` holds
        ``agentmesh_ms_per_task``, ``langgraph_ms_per_task`` and
        ``overhead_ratio_vs_langgraph``; ``supervisor`` holds
        ``model_calls_ratio_vs_supervisor``, ``input_tokens_ratio_vs_supervisor``
        and the raw counts, or ``{"skipped": ...}`` without the ``bench`` extra.

    Raises:
        ValueError: ``tasks`` or ``repeats`` is below 1.
    """
    if tasks < 1 or repeats < 1:
        raise ValueError("tasks and repeats must be >= 1")
    return {
        "tasks": tasks,
        "repeats": repeats,
        "python": platform.python_version(),
        "langgraph_version": _version("langgraph"),
        "machine": f"{os.cpu_count() or 1} cores",
        "overhead": measure_overhead(tasks=tasks, repeats=repeats),
        "supervisor": compare_supervisor(tasks=min(tasks, SUPERVISOR_TASKS)),
    }


def measure_overhead(*, tasks: int, repeats: int, warmup: int = 20) -> dict[str, Any]:
    """Time the agentmesh and hand-wired LangGraph builds on the same tickets.

    Both builds run without a checkpointer (agentmesh through ``agentmesh.run``
    with a null tracer). Repeats alternate between the builds so drift on a
    shared machine hits both alike.

    Args:
        tasks: Tickets per timed repeat.
        repeats: Timed repeats; the median of the per-task means is reported.
        warmup: Untimed tickets run through each build first; their outputs are
            compared (``same_outputs``).

    Returns:
        Wall-clock and process-CPU milliseconds per task for each build, their
        ratios (agentmesh / LangGraph), every repeat's wall time, and the model
        calls each build made per task.
    """
    tickets = sample_tickets(tasks)
    am_models, lg_models = new_models(), new_models()
    am_graph, lg_graph = build_agentmesh(am_models), build_langgraph(lg_models)
    warm = sample_tickets(warmup)
    same = [run_agentmesh(am_graph, t) == run_langgraph(lg_graph, t) for t in warm]
    am_runs: list[tuple[float, float]] = []
    lg_runs: list[tuple[float, float]] = []
    for _ in range(repeats):
        am_runs.append(_per_task(run_agentmesh, am_graph, tickets))
        lg_runs.append(_per_task(run_langgraph, lg_graph, tickets))
    am_ms, am_cpu = (statistics.median(r[i] for r in am_runs) for i in (0, 1))
    lg_ms, lg_cpu = (statistics.median(r[i] for r in lg_runs) for i in (0, 1))
    overhead = ratio(am_ms, lg_ms, 3)
    runs = len(warm) + tasks * repeats
    return {
        "agentmesh_ms_per_task": round(am_ms, 3),
        "langgraph_ms_per_task": round(lg_ms, 3),
        "overhead_ratio_vs_langgraph": overhead,
        "target_ratio": OVERHEAD_TARGET,
        "within_target": overhead <= OVERHEAD_TARGET,
        "agentmesh_cpu_ms_per_task": round(am_cpu, 3),
        "langgraph_cpu_ms_per_task": round(lg_cpu, 3),
        "cpu_overhead_ratio_vs_langgraph": ratio(am_cpu, lg_cpu, 3),
        "agentmesh_repeats_ms": [round(r[0], 3) for r in am_runs],
        "langgraph_repeats_ms": [round(r[0], 3) for r in lg_runs],
        "same_outputs": all(same),
        "model_calls_per_task": {
            "agentmesh": ratio(sum(m.calls for m in am_models.values()), runs, 3),
            "langgraph": ratio(sum(m.calls for m in lg_models.values()), runs, 3),
        },
    }


def _per_task(
    run: Callable[[Any, Ticket], Outcome], graph: Any, tickets: list[Ticket]
) -> tuple[float, float]:
    """Wall-clock and process-CPU milliseconds per ticket."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    for ticket in tickets:
        run(graph, ticket)
    n = len(tickets)
    return (time.perf_counter() - wall) * 1000 / n, (time.process_time() - cpu) * 1000 / n


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"
