"""The bench behind ``agentmesh bench context``: prompt tokens per step, with and without a budget.

A scripted agent (:class:`~agentmesh.testing.ScriptedChatModel`, instant answers)
works through ``steps`` tool rounds: each round it looks up one invoice and the
tool answers with a realistic JSON record (about 1.3 KB; every 23rd lookup
fails). Late in the run the agent reads one condensed step back with
``recall_step``. Then it gives its final answer.

The same agent runs twice: sending a plain growing message list, and sending a
:class:`~agentmesh.memory.context.WorkingContext`'s messages. Prompt tokens are
counted on the messages the model actually received (its ``requests``), with the
offline estimate the budget itself uses.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import StructuredTool
from pydantic import BaseModel

from agentmesh.errors import ToolError
from agentmesh.memory._step_store import RECALL_TOOL_NAME
from agentmesh.memory._steps import estimate_tokens
from agentmesh.memory.context import ContextBudget, WorkingContext
from agentmesh.testing import ScriptedChatModel, tool_call

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

__all__ = ["DEFAULT_BUDGET", "FLAT_RULE", "run_context_bench"]

DEFAULT_BUDGET = ContextBudget(max_tokens=4000)
FLAT_TOLERANCE = 1.1
FLAT_RULE = (
    "tokens_last <= max_tokens and the largest prompt over the last half of the steps "
    f"<= {FLAT_TOLERANCE} x max_tokens"
)
FAIL_EVERY = 23
CUSTOMER = "C-4711"
PROMPT = "You reconcile a customer's invoices. Look each one up, then report the total."
TASK = (
    f"Goal: total the open invoices of customer {CUSTOMER}.\n\n"
    'Input:\n{"customer": "C-4711", "period": "2024-Q3"}\n\n'
    'Constraints:\n{"currency": "EUR", "max_total": 250000}'
)
ITEMS = (
    "Cloud compute, reserved",
    "Support plan, business tier",
    "Storage, cold tier",
    "Data egress, EU region",
    "Professional services, onboarding",
)
_POINTER = re.compile(r"\[(step:[^\]\s]+)\]")


class InvoiceTotal(BaseModel):
    """The agent's final answer."""

    customer: str
    invoices: int


def run_context_bench(
    steps: int = 200, *, budget: ContextBudget | None = None, seed: int = 0
) -> dict[str, Any]:
    """Run the agent with and without a working-context budget; report prompt tokens.

    Args:
        steps: Tool rounds before the final answer (model calls: ``steps + 1``).
        budget: The working context's budget; default ``max_tokens=4000``.
        seed: Seeds the invoice records.

    Returns:
        ``tokens_first``, ``tokens_last`` (with the budget) and
        ``tokens_first_uncompressed``, ``tokens_last_uncompressed`` (without),
        ``flat`` judged by ``flat_rule``, totals over the run, the context's final
        ``stats``, the ``recall`` check, and under ``curves`` the prompt tokens of
        every model call (``compressed`` and ``uncompressed``).

    Raises:
        ValueError: ``steps`` is below 1.
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    budget = budget or DEFAULT_BUDGET
    started = time.perf_counter()
    pinned: list[BaseMessage] = [SystemMessage(PROMPT), HumanMessage(TASK)]
    plain = _History(pinned)
    plain_model = _run_agent(steps, plain, seed)
    context = WorkingContext(budget, pinned=pinned, context_id="bench")
    model = _run_agent(steps, context, seed)
    curve = [estimate_tokens(r) for r in model.requests]
    uncompressed = [estimate_tokens(r) for r in plain_model.requests]
    half = curve[len(curve) // 2 :]
    return {
        "steps": steps,
        "model_calls": len(curve),
        "budget": asdict(budget) | {"summary_tokens": budget.summary_limit},
        "token_counter": "offline estimate: characters / 4 + 4 per message",
        "tokens_first": curve[0],
        "tokens_last": curve[-1],
        "tokens_max": max(curve),
        "tokens_first_uncompressed": uncompressed[0],
        "tokens_last_uncompressed": uncompressed[-1],
        "flat": curve[-1] <= budget.max_tokens and max(half) <= FLAT_TOLERANCE * budget.max_tokens,
        "flat_rule": FLAT_RULE,
        "prompt_tokens_total": sum(curve),
        "prompt_tokens_total_uncompressed": sum(uncompressed),
        "stats": asdict(context.stats),
        "recall": _check_recall(model, context, seed),
        "seconds": round(time.perf_counter() - started, 3),
        "curves": {"compressed": curve, "uncompressed": uncompressed},
    }


class _History:
    """The baseline: every message kept and sent."""

    def __init__(self, pinned: list[BaseMessage]) -> None:
        self._messages = list(pinned)

    def add(self, *messages: BaseMessage) -> None:
        self._messages.extend(messages)

    def messages(self) -> list[BaseMessage]:
        return list(self._messages)


def invoice_record(number: int, seed: int = 0) -> str:
    """The lookup tool's answer for invoice ``number``: a realistic JSON record (~1.3 KB)."""
    rng = random.Random(seed * 1_000_003 + number)
    lines: list[dict[str, Any]] = []
    for _ in range(7):
        quantity, price = rng.randrange(1, 40), round(rng.uniform(5, 900), 2)
        lines.append(
            {
                "sku": f"SKU-{rng.randrange(10_000, 99_999)}",
                "description": rng.choice(ITEMS),
                "quantity": quantity,
                "unit_price": price,
                "amount": round(quantity * price, 2),
            }
        )
    return json.dumps(
        {
            "invoice_id": f"INV-{number:05d}",
            "customer": {"id": CUSTOMER, "name": "Northwind Traders GmbH", "vat_id": "DE812345678"},
            "billing_address": {"street": "Hafenstrasse 12", "city": "Hamburg", "zip": "20457"},
            "issued": f"2024-{7 + number % 3:02d}-{1 + number % 28:02d}",
            "status": rng.choice(["open", "open", "paid", "disputed"]),
            "currency": "EUR",
            "lines": lines,
            "total": round(sum(x["amount"] for x in lines), 2),
            "payment": {
                "terms": "net 30",
                "method": "SEPA transfer",
                "reference": f"RF{number:08d}",
            },
            "notes": "Reverse charge applies; quote the invoice id on payment.",
        }
    )


def _lookup_tool(seed: int) -> BaseTool:
    def lookup_invoice(invoice_id: str) -> str:
        number = int(invoice_id.rsplit("-", 1)[-1])
        if number % FAIL_EVERY == 0:
            raise ToolError(f"billing service timed out on {invoice_id}", tool="lookup_invoice")
        return invoice_record(number, seed)

    return StructuredTool.from_function(
        lookup_invoice, description="Fetch one invoice record by id, as JSON."
    )


def _responder(steps: int) -> Any:
    calls = 0
    recall_at = steps * 3 // 4 if steps >= 8 else 0

    def respond(messages: list[BaseMessage], tools: list[dict[str, Any]]) -> Any:
        nonlocal calls
        calls += 1
        if calls > steps:
            return InvoiceTotal(customer=CUSTOMER, invoices=steps)
        if calls == recall_at:
            pointers = [p for m in messages for p in _POINTER.findall(str(m.content))]
            if pointers:
                return tool_call(RECALL_TOOL_NAME, pointer=pointers[-1])
        return tool_call("lookup_invoice", invoice_id=f"INV-{calls:05d}")

    return respond


def _run_agent(steps: int, context: _History | WorkingContext, seed: int) -> ScriptedChatModel:
    """The tool loop of a model-backed specialist, on ``context``."""
    model = ScriptedChatModel(respond=_responder(steps))
    tools = {t.name: t for t in [_lookup_tool(seed)]}
    if isinstance(context, WorkingContext):
        recall = context.recall_tool()
        tools[recall.name] = recall
    bound = model.bind_tools([InvoiceTotal, *tools.values()], tool_choice="any")
    for _ in range(steps):
        ai = bound.invoke(context.messages())
        assert isinstance(ai, AIMessage)
        replies = []
        for call in ai.tool_calls:
            try:
                content = str(tools[call["name"]].invoke(call["args"]))
                replies.append(ToolMessage(content, tool_call_id=call["id"] or ""))
            except ToolError as exc:
                replies.append(
                    ToolMessage(f"error: {exc}", tool_call_id=call["id"] or "", status="error")
                )
        context.add(ai, *replies)
    bound.invoke(context.messages())
    return model


def _check_recall(model: ScriptedChatModel, context: WorkingContext, seed: int) -> dict[str, Any]:
    """Did the agent's ``recall_step`` call return the full record of the step it named?"""
    for request in model.requests:
        for message, reply in itertools.pairwise(request):
            calls = getattr(message, "tool_calls", None) or []
            call = next((c for c in calls if c["name"] == RECALL_TOOL_NAME), None)
            if call is None:
                continue
            pointer = call["args"]["pointer"]
            number = int(pointer.rsplit(":", 1)[-1])
            rows = json.loads(str(reply.content))
            full = context.deref(pointer)
            ok = rows[-1]["content"] == full[-1].content and (
                number % FAIL_EVERY == 0 or full[-1].content == invoice_record(number, seed)
            )
            return {"pointer": pointer, "step": number, "ok": ok}
    return {"pointer": None, "step": None, "ok": False}
