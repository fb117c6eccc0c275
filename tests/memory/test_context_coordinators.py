"""Leads and metas hold specialists' summaries and typed results, never their transcripts."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import BaseMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import BaseModel

import agentmesh as am
from agentmesh.testing import ScriptedChatModel, tool_call

MARKER = "RAW-TRANSCRIPT-ROW"


class Brief(BaseModel):
    customer: str


class Findings(BaseModel):
    invoices: int
    total: float


class Report(BaseModel):
    text: str


def fetch_invoices(customer: str) -> str:
    """Fetch every invoice row of a customer."""
    return json.dumps([{"row": f"{MARKER}-{i}", "amount": 10.0} for i in range(200)])


def research_answer(messages: list[BaseMessage], tools: list[dict[str, Any]]) -> Any:
    if isinstance(messages[-1], ToolMessage):
        rows = json.loads(json.loads(str(messages[-1].content)))
        return Findings(invoices=len(rows), total=sum(r["amount"] for r in rows))
    return tool_call("fetch_invoices", customer="C-4711")


def write_report(f: Findings) -> Report:
    return Report(text=f"{f.invoices} invoices, {f.total:.2f} EUR")


def test_coordinator_state_holds_summaries_and_typed_results_not_transcripts() -> None:
    model = ScriptedChatModel(respond=research_answer)
    research = am.Specialist(
        name="research",
        input=Brief,
        output=Findings,
        layer="small_model",
        model=model,
        prompt="Total the customer's invoices.",
        tools=[fetch_invoices],
    )
    report = am.Specialist(name="report", input=Findings, output=Report, fn=write_report)
    lead = am.Lead(name="billing", input=Brief, output=Report, stages=[research, report])
    meta = am.Meta(name="office", input=Brief, output=Report, stages=[lead])
    saver = InMemorySaver()

    r = am.run(meta.compile(), Brief(customer="C-4711"), checkpointer=saver)

    assert r.status is am.RunStatus.COMPLETED
    assert r.output == Report(text="200 invoices, 2000.00 EUR")
    # the specialist's model did see the transcript (the tool result) ...
    assert MARKER in str(model.requests[-1][-1].content)
    # ... but no coordinator state, at any level, ever held it
    checkpoints = list(saver.list(None))
    assert {c.config["configurable"]["checkpoint_ns"] for c in checkpoints} != {""}  # nested
    for saved in checkpoints:
        assert MARKER not in json.dumps(saved.checkpoint["channel_values"], default=str)
    assert r.result is not None and MARKER not in r.result.model_dump_json()
    # what they hold instead: each child's typed output and one-line summary
    lead_state = next(
        c.checkpoint["channel_values"]
        for c in checkpoints
        if c.config["configurable"]["checkpoint_ns"]
        and "research" in c.checkpoint["channel_values"].get("results", {})
    )
    held = lead_state["results"]["research"]
    assert held["output"] == {"invoices": 200, "total": 2000.0}
    assert held["summary"] == 'research: {"invoices":200,"total":2000.0}'
    assert set(held) >= {"output", "summary", "evidence", "usage", "status"}
    assert "messages" not in held
    assert r.result.evidence[0].startswith("billing completed")
