"""Batch runs: one JSON line per item, written as soon as the item finishes.

A batch is resumable. Items already in the output file are skipped; an item
whose run was cut off mid-way resumes from its checkpointed thread. No item is
lost and none is processed twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from agentmesh.errors import ConfigError
from agentmesh.persistence import build_checkpointer
from agentmesh.run import RunResult, run
from agentmesh.types import RunStatus

if TYPE_CHECKING:
    from pathlib import Path

    from agentmesh.settings import Settings

__all__ = ["BatchSummary", "read_items", "run_batch"]

Evaluator = Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, bool]]


@dataclass(kw_only=True)
class BatchSummary:
    """Figures over the items of a batch (including those finished by earlier runs)."""

    items: int = 0
    skipped: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0
    cost_usd: float = 0.0
    latencies: list[float] = field(default_factory=list)
    degraded: int = 0
    checks: dict[str, list[bool]] = field(default_factory=dict)

    def add(self, line: Mapping[str, Any], evaluation: Mapping[str, bool]) -> None:
        """Count one output line."""
        self.items += 1
        self.statuses[line["status"]] = self.statuses.get(line["status"], 0) + 1
        usage = line.get("usage") or {}
        self.input_tokens += usage.get("input_tokens", 0)
        self.output_tokens += usage.get("output_tokens", 0)
        self.model_calls += usage.get("model_calls", 0)
        self.cost_usd += usage.get("cost_usd", 0.0)
        self.latencies.append(float(line.get("latency_s", 0.0)))
        self.degraded += bool(line.get("degraded"))
        for name, ok in evaluation.items():
            self.checks.setdefault(name, []).append(bool(ok))

    @property
    def escalation_rate(self) -> float:
        """Share of items that ended escalated or waiting for a human."""
        esc = self.statuses.get("escalated", 0) + self.statuses.get("awaiting_human", 0)
        return esc / self.items if self.items else 0.0

    def accuracy(self) -> dict[str, float]:
        """Per-check accuracy against ground truth."""
        return {k: sum(v) / len(v) for k, v in self.checks.items() if v}

    def percentile(self, q: float) -> float:
        """Latency percentile ``q`` (0-100), nearest-rank."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
        return ordered[rank]

    def as_dict(self) -> dict[str, Any]:
        """JSON-able figures."""
        return {
            "items": self.items,
            "skipped_already_done": self.skipped,
            "statuses": self.statuses,
            "escalation_rate": round(self.escalation_rate, 4),
            "accuracy": self.accuracy(),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "model_calls": self.model_calls,
            "cost_usd": round(self.cost_usd, 6),
            "latency_p50_s": round(self.percentile(50), 4),
            "latency_p95_s": round(self.percentile(95), 4),
            "degraded": self.degraded,
        }


def read_items(path: Path) -> Iterator[dict[str, Any]]:
    """Items of a JSONL input file; a bad line raises naming file and line."""
    with path.open(encoding="utf-8") as fh:
        for number, text in enumerate(fh, 1):
            if not text.strip():
                continue
            try:
                item = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(item, dict) or "id" not in item:
                raise ConfigError(f"{path}:{number}: expected a JSON object with an 'id' field")
            yield item


def run_batch(
    graph: Any,
    role: Any,
    items: list[dict[str, Any]],
    out: Path,
    *,
    settings: Settings,
    evaluate: Evaluator | None = None,
    on_item: Callable[[dict[str, Any]], None] | None = None,
) -> BatchSummary:
    """Run every item not yet in ``out`` and append its line as soon as it is done."""
    batch = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:12]
    _mend_tail(out)
    done = _finished(out)
    summary = BatchSummary()
    checkpointer = build_checkpointer(settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    truths = {str(i["id"]): i.get("truth") for i in items}
    for line in done.values():
        summary.add(line, _evaluate(evaluate, line, truths.get(str(line["id"]))))
    summary.skipped = len(done)
    with out.open("a", encoding="utf-8") as fh:
        for item in items:
            key = str(item["id"])
            if key in done:
                continue
            line = _run_item(graph, role, item, f"{batch}:{key}", batch, checkpointer, settings)
            fh.write(json.dumps(line, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            done[key] = line
            summary.add(line, _evaluate(evaluate, line, item.get("truth")))
            if on_item:
                on_item(line)
    return summary


def _run_item(
    graph: Any,
    role: Any,
    item: dict[str, Any],
    thread: str,
    batch: str,
    checkpointer: Any,
    settings: Settings,
) -> dict[str, Any]:
    started = time.perf_counter()
    payload = {k: v for k, v in item.items() if k != "truth"}
    try:
        typed = role.input.model_validate(payload)
    except ValidationError as exc:
        return {
            "id": item["id"],
            "status": RunStatus.HALTED.value,
            "reason": f"input is not a valid {role.input.__name__}: {exc.errors()[0]['msg']}",
            "latency_s": 0.0,
        }
    unfinished = graph.copy(update={"checkpointer": checkpointer}).get_state(
        {"configurable": {"thread_id": thread}}
    )
    resume = bool(unfinished.values) and bool(unfinished.next)
    result = run(
        graph,
        None if resume else typed,
        thread_id=thread,
        constraints={"batch": batch},
        checkpointer=checkpointer,
        settings=settings,
    )
    return _line(item["id"], result, time.perf_counter() - started, resumed=resume)


def _line(item_id: Any, result: RunResult[Any], latency: float, *, resumed: bool) -> dict[str, Any]:
    line: dict[str, Any] = {
        "id": item_id,
        "status": result.status.value,
        "reason": result.reason,
        "output": result.output.model_dump(mode="json") if result.output is not None else None,
        "usage": result.usage.model_dump(),
        "latency_s": round(latency, 4),
        "degraded": bool(result.result and result.result.degraded),
        "thread_id": result.thread_id,
    }
    if resumed:
        line["resumed"] = True
    if result.escalation is not None:
        line["escalation"] = result.escalation.model_dump(mode="json")
    if result.human_requests:
        line["human_requests"] = [{"id": h.id, "value": h.value} for h in result.human_requests]
    return line


def _mend_tail(out: Path) -> None:
    """Make the file end on a line break before anything is appended.

    A last line that is whole JSON but lost its newline is kept; one left
    half-written by a crash is cut, and its item is redone.
    """
    if not out.exists():
        return
    data = out.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    start = data.rfind(b"\n") + 1
    try:
        json.loads(data[start:])
    except ValueError:
        with out.open("r+b") as fh:
            fh.truncate(start)
        return
    with out.open("ab") as fh:
        fh.write(b"\n")


def _finished(out: Path) -> dict[str, dict[str, Any]]:
    if not out.exists():
        return {}
    done: dict[str, dict[str, Any]] = {}
    with out.open(encoding="utf-8") as fh:
        for text in fh:
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                continue  # a line torn by a crash is redone, not trusted
            done[str(line["id"])] = line
    return done


def _evaluate(
    evaluate: Evaluator | None, line: Mapping[str, Any], truth: Mapping[str, Any] | None
) -> Mapping[str, bool]:
    if not truth or evaluate is None:
        return {}
    return evaluate(line, truth)
