"""Progressive summarization of the steps a working context compresses.

A :class:`Summarizer` folds newly compressed steps into the running summary and
returns the new summary within a token limit. :class:`ExtractiveSummarizer` (the
default) is deterministic and offline: one line per step, and when the lines no
longer fit, the oldest are rolled up into counts. :class:`ModelSummarizer` asks
any LangChain chat model and falls back to the extractive one if the model fails.
Both keep each step's pointer so the model can ``recall_step`` it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.errors import GraphBubbleUp

from agentmesh.errors import RunStopped
from agentmesh.memory._steps import (
    CHARS_PER_TOKEN,
    Step,
    content_text,
    estimate_text_tokens,
    message_text,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from langchain_core.language_models import BaseChatModel

__all__ = ["ExtractiveSummarizer", "ModelSummarizer", "Summarizer", "clip_text"]

ELLIPSIS = "…"


@runtime_checkable
class Summarizer(Protocol):
    """Folds compressed steps into a running summary."""

    def summarize(self, summary: str, steps: Sequence[Step], *, max_tokens: int) -> str:
        """The new summary: ``summary`` updated with ``steps``.

        Args:
            summary: The running summary so far (``""`` at first).
            steps: Steps leaving the context now, oldest first.
            max_tokens: The most tokens the returned text may take (offline estimate).
        """
        ...


def clip_text(text: str, max_tokens: int) -> str:
    """``text`` cut to ``max_tokens`` by the offline estimate, marked with an ellipsis."""
    limit = max(0, max_tokens * CHARS_PER_TOKEN)
    return text if len(text) <= limit else text[: max(0, limit - 1)] + ELLIPSIS


# -- extractive --------------------------------------------------------------------------

_LINE = re.compile(r"^- #(\d+) \[([^\]]*)\] ")
_ROLLUP = re.compile(
    r"^Steps (\d+)-(\d+) \[(\S*) \.\. (\S*)\] condensed: (.*?); (\d+) errors?(?: at (.*))?\.$"
)
_COUNT = re.compile(r"(\w+) x(\d+)")
_CALL = re.compile(r"(?:^|; )(\w+)\(")
ERRORS_LISTED = 5


@dataclass(kw_only=True)
class _Rollup:
    """The oldest steps as one line: their range, tool-call counts and where errors were."""

    first: int = 0
    last: int = 0
    first_pointer: str = ""
    last_pointer: str = ""
    tools: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    error_pointers: list[str] = field(default_factory=list)

    def text(self) -> str:
        tools = ", ".join(f"{n} x{c}" for n, c in sorted(self.tools.items())) or "no tool calls"
        noun = "error" if self.errors == 1 else "errors"
        listed = self.error_pointers[-ERRORS_LISTED:]
        where = f" at {', '.join(f'[{p}]' for p in listed)}" if listed else ""
        return (
            f"Steps {self.first}-{self.last} [{self.first_pointer} .. {self.last_pointer}] "
            f"condensed: {tools}; {self.errors} {noun}{where}."
        )

    def absorb(self, line: str) -> None:
        index, pointer = _index(line), _pointer(line)
        if not self.first or index < self.first:
            self.first, self.first_pointer = index, pointer
        if index > self.last:
            self.last, self.last_pointer = index, pointer
        self.tools.update(_CALL.findall(line.split("] ", 1)[-1]))
        if " -> ERROR" in line:
            self.errors += 1
            self.error_pointers.append(pointer)

    @classmethod
    def parse(cls, line: str) -> _Rollup | None:
        match = _ROLLUP.match(line)
        if match is None:
            return None
        first, last, first_pointer, last_pointer, tools, errors, listed = match.groups()
        return cls(
            first=int(first),
            last=int(last),
            first_pointer=first_pointer,
            last_pointer=last_pointer,
            tools=Counter({n: int(c) for n, c in _COUNT.findall(tools)}),
            errors=int(errors),
            error_pointers=re.findall(r"\[([^\]]*)\]", listed or ""),
        )


@dataclass(frozen=True, kw_only=True)
class ExtractiveSummarizer:
    """Deterministic, offline summaries: one line per step, oldest lines rolled up.

    Each step becomes ``- #<index> [<pointer>] <tool>(<args>) -> <result digest>``.
    A result digest lists a JSON object's scalar fields and the sizes of its
    lists, or the start of plain text; errors are marked ``ERROR``. When the lines
    exceed the limit, the oldest are folded into one line that counts tool calls
    and errors (progressive: older steps get coarser, the newest stay detailed).

    Attributes:
        line_chars: The longest a step line may be.
    """

    line_chars: int = 200

    def summarize(self, summary: str, steps: Sequence[Step], *, max_tokens: int) -> str:
        """The new summary with ``steps`` folded in, within ``max_tokens``."""
        rollup: _Rollup | None = None
        lines: list[str] = []
        for line in summary.splitlines():
            parsed = _Rollup.parse(line)
            if parsed is not None:
                rollup = parsed
            elif _LINE.match(line):
                lines.append(line)
        lines.extend(self._line(step) for step in steps)
        lines.sort(key=_index)
        while lines and estimate_text_tokens(_join(rollup, lines)) > max_tokens:
            rollup = rollup or _Rollup()
            rollup.absorb(lines.pop(0))
        return clip_text(_join(rollup, lines), max_tokens)

    def _line(self, step: Step) -> str:
        parts: list[str] = []
        results = {m.tool_call_id: m for m in step.messages if isinstance(m, ToolMessage)}
        for m in step.messages:
            if isinstance(m, AIMessage):
                text = content_text(m.content).strip()
                if text:
                    parts.append(f"said: {_squash(text, 80)}")
                for call in m.tool_calls:
                    args = ",".join(f"{k}={_scalar(v)}" for k, v in call["args"].items())
                    reply = results.get(call["id"] or "")
                    parts.append(f"{call['name']}({_squash(args, 60)})" + _digest(reply))
            elif not isinstance(m, ToolMessage):
                parts.append(f"{m.type}: {_squash(content_text(m.content), 100)}")
        line = f"- #{step.index} [{step.pointer}] " + "; ".join(parts)
        return line if len(line) <= self.line_chars else line[: self.line_chars - 1] + ELLIPSIS


def _index(line: str) -> int:
    match = _LINE.match(line)
    return int(match.group(1)) if match else 0


def _pointer(line: str) -> str:
    match = _LINE.match(line)
    return match.group(2) if match else ""


def _join(rollup: _Rollup | None, lines: list[str]) -> str:
    return "\n".join(([rollup.text()] if rollup else []) + lines)


def _squash(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + ELLIPSIS


def _scalar(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _digest(reply: ToolMessage | None) -> str:
    if reply is None:
        return ""
    text = content_text(reply.content)
    if reply.status == "error" or text.lstrip().lower().startswith("error"):
        return f" -> ERROR {_squash(text, 80)}"
    try:
        data = json.loads(text)
    except ValueError:
        return f" -> {_squash(text, 80)}"
    if isinstance(data, dict):
        fields = [
            f"{k}={_squash(_scalar(v), 24)}"
            if not isinstance(v, dict | list)
            else f"{k}:{len(v)} items"
            for k, v in data.items()
        ]
        return f" -> {{{_squash(', '.join(fields), 110)}}}"
    if isinstance(data, list):
        return f" -> [{len(data)} items]"
    return f" -> {_squash(_scalar(data), 80)}"


# -- model-backed ------------------------------------------------------------------------

INSTRUCTIONS = (
    "You maintain the running summary of an agent's earlier working steps. Merge the new "
    "steps into the current summary. Keep what the agent may need to finish its goal: "
    "numbers, ids, errors, decisions and open questions. Quote each kept step's pointer "
    "in square brackets, e.g. [step:1a2b3c4d:12], so the agent can read it back in full. "
    "Answer with the summary text only."
)


@dataclass(frozen=True, kw_only=True)
class ModelSummarizer:
    """Summaries written by a chat model, clipped to the limit.

    Attributes:
        model: Any LangChain chat model.
        fallback: Used when the model call fails (``None``: the error propagates).
            Run-stopping errors (budget, kill switch) and LangGraph interrupts
            always propagate.
        step_chars: The most characters of one step shown to the model.
        on_response: Called with every answer (e.g. to count its tokens in the
            agent's usage).
    """

    model: BaseChatModel
    fallback: Summarizer | None = field(default_factory=ExtractiveSummarizer)
    step_chars: int = 1200
    on_response: Callable[[AIMessage], None] | None = None

    def summarize(self, summary: str, steps: Sequence[Step], *, max_tokens: int) -> str:
        """Ask the model to fold ``steps`` into ``summary``; at most ``max_tokens``."""
        shown = "\n".join(
            f"[{s.pointer}] #{s.index}\n"
            + _squash(" | ".join(message_text(m) for m in s.messages), self.step_chars)
            for s in steps
        )
        request = [
            SystemMessage(INSTRUCTIONS),
            HumanMessage(
                f"Current summary:\n{summary or '(none yet)'}\n\nNew steps:\n{shown}\n\n"
                f"Write the updated summary in at most {max_tokens} tokens "
                f"(about {max_tokens * CHARS_PER_TOKEN} characters)."
            ),
        ]
        try:
            answer = self.model.invoke(request)
        except (RunStopped, GraphBubbleUp):
            raise
        except Exception:
            if self.fallback is None:
                raise
            return self.fallback.summarize(summary, steps, max_tokens=max_tokens)
        if self.on_response is not None and isinstance(answer, AIMessage):
            self.on_response(answer)
        return clip_text(content_text(answer.content).strip(), max_tokens)
