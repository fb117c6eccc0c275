"""What retrieval returns: hits with score, age and a stale flag, or insufficient context.

``retrieve`` returns :class:`Retrieved` only when at least one hit is both fresh and
relevant enough; otherwise :class:`InsufficientContext`, which the calling agent must
escalate on (:meth:`InsufficientContext.to_escalation`), never answer through.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentmesh.memory._items import MemoryItem
from agentmesh.messages import EscalationMessage

__all__ = ["Hit", "InsufficientContext", "Retrieval", "Retrieved"]


class Hit(BaseModel):
    """One retrieved item.

    Attributes:
        item: The item, with its provenance.
        score: Cosine similarity to the query (higher is closer).
        age_s: Seconds since the item was ingested, at retrieval time.
        stale: Whether the item is older than its data type allows, or expired; only
            data types whose policy says ``flag`` return stale items.
        stale_reason: Why it is stale.
    """

    model_config = ConfigDict(frozen=True)

    item: MemoryItem
    score: float
    age_s: float
    stale: bool = False
    stale_reason: str | None = None


class Retrieved(BaseModel):
    """Fresh, relevant context was found.

    Attributes:
        query: The query text.
        hits: Hits at or above the relevance floor, best first; stale ones are flagged.
        min_score: The relevance floor that applied.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["retrieved"] = "retrieved"
    query: str
    hits: list[Hit]
    min_score: float

    @property
    def fresh(self) -> list[Hit]:
        """The hits that are not stale."""
        return [h for h in self.hits if not h.stale]

    @property
    def stale_count(self) -> int:
        """How many hits are flagged stale."""
        return sum(h.stale for h in self.hits)


class InsufficientContext(BaseModel):
    """Nothing fresh and relevant enough was found: escalate, do not answer.

    Attributes:
        query: The query text.
        reason: What was missing, in one sentence.
        min_score: The relevance floor that applied.
        best_score: The best similarity seen among admitted items, if any.
        stale_hits: Relevant hits that were returned only flagged as stale.
        data_types: The data types the query was limited to, if any.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["insufficient_context"] = "insufficient_context"
    query: str
    reason: str
    min_score: float
    best_score: float | None = None
    stale_hits: list[Hit] = Field(default_factory=list)
    data_types: list[str] | None = None

    def to_escalation(self, decision_point: str) -> EscalationMessage:
        """The escalation the calling agent should raise instead of answering."""
        stale = [f"{h.item.id} ({h.stale_reason})" for h in self.stale_hits]
        return EscalationMessage(
            reason=f"insufficient context: {self.reason}",
            decision_point=decision_point,
            context_summary=f"query: {self.query}",
            options=["refresh the knowledge source and retry", "answer by hand"],
            data={
                "query": self.query,
                "best_score": self.best_score,
                "min_score": self.min_score,
                "stale_hits": stale,
                "data_types": self.data_types,
            },
        )


Retrieval = Annotated[Retrieved | InsufficientContext, Field(discriminator="kind")]
"""Either result, as a pydantic type (tagged by ``kind``)."""
