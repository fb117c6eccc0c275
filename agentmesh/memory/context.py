"""In-context memory with a token budget: what an agent's model is sent at each step.

A :class:`WorkingContext` holds an agent's working messages: the pinned ones
(prompt, goal, input, constraints) and the steps of its tool loop. While the
messages fit :attr:`ContextBudget.max_tokens` they are sent unchanged. When they
would not, the context shrinks to ``compact_to`` of the budget:

1. older steps (outside the ``keep_recent`` window) leave first, oldest first,
   except the ``retain_top`` highest-scoring ones (errors, feedback, decisions,
   goal numbers; see ``agentmesh.memory._step_score``), which leave last;
2. steps that leave are *externalized*: their full record goes to a
   :class:`~agentmesh.memory._step_store.StepStore` under a pointer, and a
   :class:`~agentmesh.memory._summarize.Summarizer` folds them into one running
   summary that quotes the pointers (progressive summarization);
3. only when the budget itself is at stake do recent steps leave too; the latest
   step always stays (it is the latest state), and if it alone does not fit, its
   content is clipped in what is sent, with a pointer to the full record.

Pinned messages are never summarized, and a step is a model turn with all its
tool results, so what is sent never splits a tool call from its result.

The model reads a step back with the ``recall_step`` tool (:meth:`WorkingContext.recall_tool`).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from agentmesh.errors import ConfigError
from agentmesh.memory._step_score import goal_terms, score_step
from agentmesh.memory._step_store import (
    RECALL_TOOL_NAME,
    InMemoryStepStore,
    SQLiteStepStore,
    StepStore,
    build_recall_tool,
)
from agentmesh.memory._steps import Step, clip_step, estimate_text_tokens, estimate_tokens
from agentmesh.memory._summarize import (
    ExtractiveSummarizer,
    ModelSummarizer,
    Summarizer,
    clip_text,
)

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

__all__ = [
    # the working context
    "SUMMARY_HEADER",
    "ContextBudget",
    "ContextStats",
    "TokenCounter",
    "WorkingContext",
    "estimate_tokens",
    # steps and where they are externalized
    "RECALL_TOOL_NAME",
    "InMemoryStepStore",
    "SQLiteStepStore",
    "Step",
    "StepStore",
    "build_recall_tool",
    # summarizers
    "ExtractiveSummarizer",
    "ModelSummarizer",
    "Summarizer",
]

TokenCounter = Callable[[Sequence[BaseMessage]], int]

SUMMARY_HEADER = (
    "Earlier steps, condensed to fit the context budget "
    "(call recall_step with a [pointer] to read a step in full):\n"
)


@dataclass(frozen=True, kw_only=True)
class ContextBudget:
    """How many tokens an agent's working context may take, and how it shrinks.

    Attributes:
        max_tokens: The most prompt tokens sent to the model per call (messages
            only; tool schemas are not counted).
        keep_recent: Steps at the end always sent verbatim while the budget allows.
        retain_top: Older steps kept verbatim by retention score.
        summary_tokens: The running summary's limit; default ``max_tokens // 8``.
        compact_to: When the budget is exceeded, shrink to this fraction of it,
            so compression (and a model summarizer's call) is not needed every step.

    Raises:
        ConfigError: A value is out of range.
    """

    max_tokens: int
    keep_recent: int = 4
    retain_top: int = 4
    summary_tokens: int | None = None
    compact_to: float = 0.75

    def __post_init__(self) -> None:
        problems = [
            text
            for bad, text in (
                (self.max_tokens < 1, "max_tokens must be >= 1"),
                (self.keep_recent < 1, "keep_recent must be >= 1"),
                (self.retain_top < 0, "retain_top must be >= 0"),
                (not 0 < self.compact_to <= 1, "compact_to must be in (0, 1]"),
                (
                    self.summary_tokens is not None
                    and not 0 < self.summary_tokens < self.max_tokens,
                    "summary_tokens must be between 1 and max_tokens - 1",
                ),
            )
            if bad
        ]
        if problems:
            raise ConfigError(f"ContextBudget: {'; '.join(problems)}")

    @property
    def summary_limit(self) -> int:
        """The running summary's limit in tokens."""
        return self.summary_tokens or max(1, self.max_tokens // 8)


@dataclass(frozen=True, kw_only=True)
class ContextStats:
    """Where a working context stands.

    Attributes:
        tokens: What :meth:`WorkingContext.messages` costs now.
        steps: Steps added so far.
        live: Steps sent verbatim (recent and retained).
        compressed: Steps folded into the summary.
        externalized: Step records written to the store.
        clipped: Live steps sent with their content cut.
        summaries: Summarizer calls made.
        over_budget: ``tokens`` exceeds the budget (the pinned messages alone do).
    """

    tokens: int
    steps: int
    live: int
    compressed: int
    externalized: int
    clipped: int
    summaries: int
    over_budget: bool


@dataclass(kw_only=True, eq=False)
class _Slot:
    index: int
    pointer: str
    messages: list[BaseMessage]
    pending: set[str] = field(default_factory=set)
    relevance: float | None = None
    tokens: int = 0
    score: float | None = None
    view: list[BaseMessage] | None = None
    live: bool = True
    stored: bool = False


class WorkingContext:
    """An agent's working messages, kept within a token budget.

    Thread-safe; meant for one agent's tool loop: pin the prompt and task, then
    ``add`` each model turn and its tool results and send ``messages()``.

    Args:
        budget: The token budget and how to shrink.
        pinned: Messages always sent first and never summarized (prompt, goal,
            input, constraints).
        store: Where compressed steps are externalized; default in memory.
        summarizer: Folds compressed steps into the summary; default extractive.
        count_tokens: Token counter; must add up over messages. Default: the
            offline estimate :func:`~agentmesh.memory._steps.estimate_tokens`.
        context_id: Makes pointers unique in a shared store; default random.
    """

    def __init__(
        self,
        budget: ContextBudget,
        *,
        pinned: Sequence[BaseMessage],
        store: StepStore | None = None,
        summarizer: Summarizer | None = None,
        count_tokens: TokenCounter = estimate_tokens,
        context_id: str | None = None,
    ) -> None:
        self.budget = budget
        self._pinned = list(pinned)
        self._store: StepStore = store if store is not None else InMemoryStepStore()
        self._summarizer: Summarizer = summarizer or ExtractiveSummarizer()
        self._count = count_tokens
        self._id = context_id or uuid.uuid4().hex[:8]
        self._terms = goal_terms(self._pinned)
        self._pinned_tokens = count_tokens(self._pinned)
        self._header_tokens = count_tokens([HumanMessage(SUMMARY_HEADER)])
        self._slots: list[_Slot] = []
        self._summary = ""
        self._summary_message: HumanMessage | None = None
        self._summary_tokens = 0
        self._summaries = 0
        self._lock = threading.RLock()

    # -- public ----------------------------------------------------------------------

    def add(self, *messages: BaseMessage, relevance: float | None = None) -> None:
        """Add messages in order, then shrink if the budget is exceeded.

        An ``AIMessage`` or any non-tool message starts a new step; a
        ``ToolMessage`` joins the latest step, whose tool call it must answer.

        Args:
            messages: The messages, in the order the loop produced them.
            relevance: Explicit relevance (``0..1``) of the steps these messages
                start or join; raises their retention score.

        Raises:
            ValueError: ``relevance`` is outside ``0..1``, or a ``ToolMessage``
                answers no open tool call of the latest step.
        """
        if relevance is not None and not 0 <= relevance <= 1:
            raise ValueError(f"relevance must be between 0 and 1, got {relevance}")
        with self._lock:
            touched: list[_Slot] = []
            for message in messages:
                slot = self._place(message)
                if slot not in touched:
                    touched.append(slot)
            for slot in touched:
                if relevance is not None:
                    slot.relevance = max(slot.relevance or 0.0, relevance)
                slot.tokens = self._count(slot.messages)
                slot.score = slot.view = None
                slot.stored = False
            self._fit()

    def messages(self) -> list[BaseMessage]:
        """What to send the model now: pinned, summary, then live steps in order."""
        with self._lock:
            out = list(self._pinned)
            if self._summary_message is not None:
                out.append(self._summary_message)
            for slot in self._slots:
                if slot.live:
                    out.extend(slot.view if slot.view is not None else slot.messages)
            return out

    def get(self, pointer: str) -> list[BaseMessage] | None:
        """The full messages of the step at ``pointer``, or ``None``."""
        with self._lock:
            slot = self._own(pointer)
            if slot is not None and not slot.stored:
                return list(slot.messages)
        return self._store.get(pointer)

    def deref(self, pointer: str) -> list[BaseMessage]:
        """The full messages of the step at ``pointer`` (as they were added).

        Raises:
            KeyError: No step is recorded under ``pointer``.
        """
        messages = self.get(pointer)
        if messages is None:
            raise KeyError(f"no step recorded under pointer {pointer!r}")
        return messages

    def recall_tool(self) -> BaseTool:
        """A ``recall_step(pointer)`` tool over this context, to offer the model."""
        return build_recall_tool(self.get)

    @property
    def summary(self) -> str:
        """The running summary of compressed steps (``""`` before any compression)."""
        return self._summary

    @property
    def stats(self) -> ContextStats:
        """Token count and step counts now."""
        with self._lock:
            live = [s for s in self._slots if s.live]
            tokens = self._count(self.messages())
            return ContextStats(
                tokens=tokens,
                steps=len(self._slots),
                live=len(live),
                compressed=len(self._slots) - len(live),
                externalized=sum(s.stored for s in self._slots),
                clipped=sum(s.view is not None for s in live),
                summaries=self._summaries,
                over_budget=tokens > self.budget.max_tokens,
            )

    # -- steps -----------------------------------------------------------------------

    def _place(self, message: BaseMessage) -> _Slot:
        if isinstance(message, ToolMessage):
            last = self._slots[-1] if self._slots else None
            if last is None or message.tool_call_id not in last.pending:
                raise ValueError(
                    f"ToolMessage for call {message.tool_call_id!r} answers no open tool call "
                    "of the latest step"
                )
            last.pending.discard(message.tool_call_id)
            last.messages.append(message)
            return last
        index = len(self._slots) + 1
        calls = message.tool_calls if isinstance(message, AIMessage) else []
        slot = _Slot(
            index=index,
            pointer=f"step:{self._id}:{index}",
            messages=[message],
            pending={c["id"] or "" for c in calls},
        )
        self._slots.append(slot)
        return slot

    def _own(self, pointer: str) -> _Slot | None:
        prefix, _, number = pointer.rpartition(":")
        if prefix != f"step:{self._id}" or not number.isdigit():
            return None
        index = int(number)
        return self._slots[index - 1] if 0 < index <= len(self._slots) else None

    def _score(self, slot: _Slot) -> float:
        if slot.score is None:
            slot.score = score_step(slot.messages, terms=self._terms, relevance=slot.relevance)
        return slot.score

    def _total(self) -> int:
        live = sum(s.tokens for s in self._slots if s.live)
        return self._pinned_tokens + self._summary_tokens + live

    # -- shrinking -------------------------------------------------------------------

    def _fit(self) -> None:
        if self._total() <= self.budget.max_tokens:
            return
        evicted = self._evict([s for s in self._slots if s.live])
        if evicted:
            self._fold(evicted)
        if self._total() > self.budget.max_tokens:
            self._clip(self._slots[-1])

    def _evict(self, live: list[_Slot]) -> list[_Slot]:
        """Take steps out of the context until the estimate fits; returns them by index."""
        b = self.budget
        target = int(b.max_tokens * b.compact_to)
        recent, older = live[-b.keep_recent :], live[: -b.keep_recent]
        ranked = sorted(older, key=lambda s: (self._score(s), s.index), reverse=True)
        kept = ranked[: b.retain_top]
        order = [(s, target) for s in older if s not in kept]
        order += [(s, target) for s in reversed(kept)]
        order += [(s, b.max_tokens) for s in recent[:-1]]
        estimate = self._pinned_tokens + self._header_tokens + b.summary_limit
        estimate += sum(s.tokens for s in live)
        evicted: list[_Slot] = []
        for slot, limit in order:
            if estimate <= limit:
                break
            slot.live = False
            estimate -= slot.tokens
            evicted.append(slot)
        return sorted(evicted, key=lambda s: s.index)

    def _fold(self, evicted: list[_Slot]) -> None:
        steps = []
        for slot in evicted:
            self._externalize(slot)
            steps.append(
                Step(
                    index=slot.index,
                    pointer=slot.pointer,
                    messages=tuple(slot.messages),
                    score=self._score(slot),
                    tokens=self._count(slot.messages),
                )
            )
            slot.messages, slot.view = [], None  # the store has them now
        limit = self.budget.summary_limit
        text = self._summarizer.summarize(self._summary, steps, max_tokens=limit)
        self._summaries += 1
        reserve = self._header_tokens + limit
        while True:
            message = HumanMessage(SUMMARY_HEADER + text)
            tokens = self._count([message])
            if tokens <= reserve or not text:
                break
            # strictly shorter each round, whatever the token counter
            keep = min(limit - (tokens - reserve), estimate_text_tokens(text)) - 1
            text = clip_text(text, keep) if keep > 0 else ""
        self._summary = text
        self._summary_message = message if text else None
        self._summary_tokens = tokens if text else 0

    def _externalize(self, slot: _Slot) -> None:
        if not slot.stored:
            self._store.put(slot.pointer, slot.messages)
            slot.stored = True

    def _clip(self, slot: _Slot) -> None:
        """Send the latest step with its content cut to what the budget leaves."""
        allowance = self.budget.max_tokens - (self._total() - slot.tokens)
        self._externalize(slot)
        slot.view = clip_step(slot.messages, allowance, pointer=slot.pointer, count=self._count)
        slot.tokens = self._count(slot.view)
