"""Batch runs: one JSON line per item, written as soon as the item finishes.

A batch is resumable. Items already in the output file are skipped; an item
whose run was cut off mid-way resumes from its checkpointed thread. No item is
lost and none is processed twice.

A batch may have a cost cap (``budget_usd``). Each item runs with what is left
of it as its own hard budget, so the batch never spends more than the cap. Once
the cap is reached (nothing left, or an item's run stopped for lack of budget),
every remaining item gets a line with status ``skipped`` and reason
``batch budget exhausted``; the item the cap stopped keeps its
``budget_exhausted`` line, marked with the cap (``batch_budget_usd``). Spend
already recorded in the output file counts toward the cap, so a re-run with the
same cap changes nothing; re-run with a higher cap (or none) to continue: items
skipped for budget then run, and the stopped item resumes from its checkpoint.

Every item whose run finishes can be recorded as an episode (``episodes=``, as for
``agentmesh.run``), under its thread id; items finished by an earlier run of the
batch are skipped, so they are not recorded again. An item's line carries its
``episode_id``, or ``episode_error`` when its episode could not be recorded.
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

from agentmesh.controls.budget import Budget
from agentmesh.errors import ConfigError
from agentmesh.persistence import build_checkpointer
from agentmesh.run import RunResult, run
from agentmesh.types import RunStatus

if TYPE_CHECKING:
    from pathlib import Path

    from agentmesh.memory.episodic import EpisodicMemory
    from agentmesh.settings import Settings

__all__ = ["SKIPPED", "BatchSummary", "read_items", "run_batch"]

SKIPPED = "skipped"
"""Status of an item the batch did not run because its cost cap was reached."""
_BUDGET_REASON = "batch budget exhausted"

Evaluator = Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, bool]]


@dataclass(kw_only=True)
class BatchSummary:
    """Figures over the items of a batch (including those finished by earlier runs).

    ``skipped`` counts items finished by an earlier run of the batch;
    ``skipped_budget`` counts items not run because the cost cap was reached;
    ``episodes`` and ``episodes_failed`` count the items this run of the batch
    recorded as episodes, and those whose recording failed.
    """

    items: int = 0
    skipped: int = 0
    skipped_budget: int = 0
    budget_usd: float | None = None
    spent_usd: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0
    cost_usd: float = 0.0
    latencies: list[float] = field(default_factory=list)
    degraded: int = 0
    checks: dict[str, list[bool]] = field(default_factory=dict)
    episodes: int = 0
    episodes_failed: int = 0

    def add(self, line: Mapping[str, Any], evaluation: Mapping[str, bool]) -> None:
        """Count one output line."""
        self.items += 1
        self.statuses[line["status"]] = self.statuses.get(line["status"], 0) + 1
        if line["status"] == SKIPPED:
            self.skipped_budget += 1
            return
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
            "budget_usd": self.budget_usd,
            "budget_spent_usd": round(self.spent_usd, 8),
            "skipped_for_budget": self.skipped_budget,
            "episodes_recorded": self.episodes,
            "episodes_not_recorded": self.episodes_failed,
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
    budget_usd: float | None = None,
    episodes: EpisodicMemory | bool | None = None,
) -> BatchSummary:
    """Run every item not yet in ``out`` and append its line as soon as it is done.

    Args:
        graph: The compiled workflow.
        role: The role it was compiled from.
        items: Input objects, each with an ``id``.
        out: The JSONL results file (appended to; re-run to resume).
        settings: Checkpointer and model settings.
        evaluate: Scores a line against the item's ``truth``.
        on_item: Called with each line as it is written (or counted, when skipped).
        budget_usd: Cost cap for the whole batch, spend recorded in ``out`` included
            (see the module docs); ``None`` for no cap.
        episodes: Record each finished item as an episode (as ``agentmesh.run``'s
            ``episodes``; ``None`` follows ``AGENTMESH_EPISODES``).

    Raises:
        ConfigError: ``budget_usd`` is negative.
    """
    if budget_usd is not None and not budget_usd >= 0:
        raise ConfigError(f"batch budget must be zero or more, got {budget_usd!r}")
    batch = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:12]
    _mend_tail(out)
    previous = _finished(out)
    done = {key: line for key, line in previous.items() if not _rerun(line)}
    summary = BatchSummary(budget_usd=budget_usd, spent_usd=_spent(out))
    checkpointer = build_checkpointer(settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    truths = {str(i["id"]): i.get("truth") for i in items}
    for line in done.values():
        summary.add(line, _evaluate(evaluate, line, truths.get(str(line["id"]))))
    summary.skipped = len(done)
    exhausted = budget_usd is not None and (
        summary.spent_usd >= budget_usd
        or any(line.get("batch_budget_usd", -1.0) >= budget_usd for line in previous.values())
    )
    with out.open("a", encoding="utf-8") as fh:
        for item in items:
            key = str(item["id"])
            if key in done:
                continue
            if exhausted and key in previous:
                line = previous[key]  # already skipped or stopped for budget: keep that line
            else:
                if exhausted:
                    line = {"id": item["id"], "status": SKIPPED, "reason": _BUDGET_REASON}
                else:
                    budget = None
                    if budget_usd is not None:
                        budget = Budget(cost_usd=budget_usd - summary.spent_usd)
                    line = _run_item(
                        graph,
                        role,
                        item,
                        f"{batch}:{key}",
                        batch,
                        checkpointer,
                        settings,
                        budget,
                        episodes,
                    )
                    summary.episodes += "episode_id" in line
                    summary.episodes_failed += "episode_error" in line
                    summary.spent_usd += float(line.get("spent_usd", 0.0))
                    if budget is not None and line["status"] == RunStatus.BUDGET_EXHAUSTED.value:
                        line["batch_budget_usd"] = budget_usd  # the cap that stopped it
                    exhausted = budget_usd is not None and (
                        "batch_budget_usd" in line or summary.spent_usd >= budget_usd
                    )
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
    budget: Budget | None = None,
    episodes: EpisodicMemory | bool | None = None,
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
        budget=budget,
        episodes=episodes,
    )
    line = _line(item["id"], result, time.perf_counter() - started, resumed=resume)
    if budget is not None:
        # What this invocation spent, from its budget envelope: unlike usage, it
        # includes runs paused for a human and is not cumulative over a resume.
        line["spent_usd"] = float((result.budget.get("spent") or {}).get("cost_usd", 0.0))
    return line


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
    if result.episode_id is not None:
        line["episode_id"] = result.episode_id
    if result.alerts:
        from agentmesh.memory._episode_runs import NOT_RECORDED

        failed = [a.message for a in result.alerts if a.kind == NOT_RECORDED]
        if failed:
            line["episode_error"] = failed[0]
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


def _rerun(line: Mapping[str, Any]) -> bool:
    """Whether a line is for an item the batch's cost cap kept from finishing."""
    return line["status"] == SKIPPED or "batch_budget_usd" in line


def _spent(out: Path) -> float:
    """What the batch has spent so far: every invocation's line counts, resumed ones too."""
    if not out.exists():
        return 0.0
    total = 0.0
    with out.open(encoding="utf-8") as fh:
        for text in fh:
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                continue
            spent = line.get("spent_usd")
            if spent is None:
                spent = (line.get("usage") or {}).get("cost_usd", 0.0)
            total += float(spent)
    return total


def _evaluate(
    evaluate: Evaluator | None, line: Mapping[str, Any], truth: Mapping[str, Any] | None
) -> Mapping[str, bool]:
    if not truth or evaluate is None or line["status"] == SKIPPED:
        return {}
    return evaluate(line, truth)
