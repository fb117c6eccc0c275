"""Steps of an agent's working context, and the offline token estimate they are measured with.

A *step* is the unit the context compresses: one model turn (an ``AIMessage``)
together with the ``ToolMessage`` replies to its tool calls, or one other message
(for example feedback the runtime adds after a malformed answer). A step is kept,
summarized or externalized whole, so a tool call is never separated from its
result (OpenAI-compatible APIs reject a request where that happens).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "CHARS_PER_TOKEN",
    "MESSAGE_OVERHEAD_TOKENS",
    "Step",
    "clip_step",
    "content_text",
    "estimate_text_tokens",
    "estimate_tokens",
    "message_text",
]

#: The usual rule of thumb for English and JSON with BPE tokenizers.
CHARS_PER_TOKEN = 4
#: Role and separator tokens a chat API adds around each message.
MESSAGE_OVERHEAD_TOKENS = 4


@dataclass(frozen=True, kw_only=True)
class Step:
    """One step of a working context, as handed to a summarizer.

    Attributes:
        index: Position in the context, from 1.
        pointer: Where the full record is kept (``recall_step(pointer)``).
        messages: The step's messages, in order.
        score: Its retention score (see ``agentmesh.memory._step_score``).
        tokens: Its size by the context's token counter.
    """

    index: int
    pointer: str
    messages: tuple[BaseMessage, ...]
    score: float
    tokens: int


def content_text(content: Any) -> str:
    """A message's content as plain text (text parts of multi-part content joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            p if isinstance(p, str) else str(p.get("text", "")) if isinstance(p, dict) else str(p)
            for p in content
        ]
        return "".join(parts)
    return str(content)


def _calls_text(message: BaseMessage) -> str:
    if not isinstance(message, AIMessage) or not message.tool_calls:
        return ""
    return "".join(
        c["name"] + json.dumps(c["args"], separators=(",", ":"), default=str)
        for c in message.tool_calls
    )


def estimate_text_tokens(text: str) -> int:
    """Tokens in ``text`` by the offline estimate (characters / 4, rounded up)."""
    return -(-len(text) // CHARS_PER_TOKEN)


def estimate_tokens(messages: Iterable[BaseMessage]) -> int:
    """Offline estimate of the prompt tokens ``messages`` cost.

    Content and tool-call names and arguments count at four characters a token,
    plus a fixed overhead per message. No tokenizer download is involved; the same
    estimate sizes the budget and the ``agentmesh bench context`` figures.
    """
    return sum(
        MESSAGE_OVERHEAD_TOKENS + estimate_text_tokens(content_text(m.content) + _calls_text(m))
        for m in messages
    )


def message_text(message: BaseMessage) -> str:
    """The message as one line of text for summaries and scoring: role, tool calls, content."""
    text = content_text(message.content)
    if isinstance(message, AIMessage) and message.tool_calls:
        calls = "; ".join(
            f"{c['name']}({json.dumps(c['args'], separators=(',', ':'), default=str)})"
            for c in message.tool_calls
        )
        text = f"{calls} {text}".strip()
    return f"{message.type}: {text}"


def clip_step(
    messages: Sequence[BaseMessage],
    allowance: int,
    *,
    pointer: str,
    count: Callable[[Sequence[BaseMessage]], int],
) -> list[BaseMessage]:
    """The step's messages with their content cut to fit ``allowance`` tokens.

    Tool calls and tool-call ids are kept, so the step stays valid to send;
    each cut content ends with a marker naming the pointer of the full record.
    If even the markers do not fit, all content is cut to the marker.
    """
    marker = f" ...[clipped; full step: recall_step('{pointer}')]"
    pairs = [(m, content_text(m.content)) for m in messages]
    bare = [m.model_copy(update={"content": marker if t else ""}) for m, t in pairs]
    share = (
        max(0, allowance - count(bare)) * CHARS_PER_TOKEN // max(1, sum(bool(t) for _, t in pairs))
    )
    while True:
        view = [
            m if len(t) <= share else m.model_copy(update={"content": t[:share] + marker})
            for m, t in pairs
        ]
        if share == 0 or count(view) <= allowance:
            return view
        share //= 2
