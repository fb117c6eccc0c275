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

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from agentmesh.bench._overhead import measure_overhead
from agentmesh.bench._supervisor import compare_supervisor

__all__ = ["run_benchmark"]

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


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"
