"""Retention scores: which older steps a working context keeps word for word.

When a context must shrink, the steps outside the recent window with the
highest scores stay verbatim (up to ``ContextBudget.retain_top``); the rest are
summarized first. The score is a deterministic sum of these rules:

* **error, +3**: a tool result with ``status="error"``, or text that starts with
  ``error`` or reports a traceback or a failed validation ("does not match");
* **feedback, +2**: a human or system message added mid-loop (the runtime adds
  these for rejected or malformed answers);
* **decision, +1 or +2**: model text (+1), +1 more when it states a decision
  ("decide", "conclude", "because", "approve", ...);
* **goal match, +1 each, at most +3**: a number or id (``4711``, ``INV-0042``,
  ``12.5``) the step shares with the pinned goal, input and constraints;
* **explicit relevance, +4 x r**: the step was added with ``relevance=r``
  (``0 <= r <= 1``).

Ties go to the more recent step.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from agentmesh.memory._steps import content_text, message_text

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["goal_terms", "score_step"]

ERROR_POINTS = 3.0
FEEDBACK_POINTS = 2.0
TEXT_POINTS = 1.0
DECISION_POINTS = 1.0
GOAL_TERM_POINTS = 1.0
MAX_GOAL_TERMS = 3
RELEVANCE_POINTS = 4.0

# Numbers of two or more digits, optionally with an alphabetic prefix: 4711, INV-0042, 12.5.
_TERM = re.compile(r"\b(?:[A-Za-z]+[-_])?\d[\d.]*\d\b|\b[A-Za-z]+[-_]?\d{2,}\b")
_DECISION = re.compile(
    r"\b(decid\w*|decision|conclu\w*|cho(?:o)?se|chosen|approv\w*|reject\w*|because|therefore)\b",
    re.IGNORECASE,
)
_ERROR_TEXT = re.compile(r"^\s*error\b|traceback|does not match", re.IGNORECASE)


def goal_terms(messages: Iterable[BaseMessage]) -> frozenset[str]:
    """The numbers and ids in ``messages`` (the pinned goal, input and constraints)."""
    return frozenset(t.lower() for m in messages for t in _TERM.findall(content_text(m.content)))


def score_step(
    messages: Iterable[BaseMessage], *, terms: frozenset[str], relevance: float | None = None
) -> float:
    """The retention score of one step (rules in this module's docstring).

    Args:
        messages: The step's messages.
        terms: Goal terms from :func:`goal_terms`.
        relevance: Explicit relevance given when the step was added, in ``[0, 1]``.
    """
    points = RELEVANCE_POINTS * relevance if relevance is not None else 0.0
    error = feedback = False
    texts: list[str] = []
    for m in messages:
        text = content_text(m.content)
        if isinstance(m, ToolMessage):
            error = error or m.status == "error" or bool(_ERROR_TEXT.search(text[:200]))
        elif isinstance(m, AIMessage):
            if text.strip():
                points += TEXT_POINTS + (DECISION_POINTS if _DECISION.search(text) else 0.0)
        else:
            feedback = True
            error = error or bool(_ERROR_TEXT.search(text[:200]))
        texts.append(message_text(m))
    points += (ERROR_POINTS if error else 0.0) + (FEEDBACK_POINTS if feedback else 0.0)
    if terms:
        found = {t.lower() for t in _TERM.findall(" ".join(texts))} & terms
        points += GOAL_TERM_POINTS * min(MAX_GOAL_TERMS, len(found))
    return points
