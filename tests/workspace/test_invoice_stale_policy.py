"""The invoice workflow's vendor policy comes from fresh knowledge only (agentmesh issue 4).

The compliance check retrieves the vendor's entry in the vendor risk register through
external memory. Fresh, it is cited and the invoice is decided as usual; once the
register's copy is older than ``vendor_risk`` may be (30 days in memory/policy.toml),
the store leaves it out, the checker reports which source it did not use and how old it
is, and the invoice goes to a human instead of being decided on an outdated policy.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import agentmesh as am  # noqa: E402
from agentmesh.testing import RecordingTracer  # noqa: E402
from agentmesh.tracing import SpanKind  # noqa: E402
from graphs import invoice_knowledge as knowledge  # noqa: E402
from graphs import invoices  # noqa: E402
from graphs.invoice_schemas import Invoice  # noqa: E402
from graphs.invoices_data import generate  # noqa: E402

DAY = 86_400.0
T0 = 1_750_000_000.0
REGISTER = "memory/sources/vendor_risk_register.md"
DESKLINE = f"{REGISTER}#deskline-supplies-llc-v018-blocked"
STALE_REPORT = f"stale vendor policy {REGISTER} (age 45d > max 30d) not used"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Iterator[Clock]:
    """Knowledge ingested at T0 on a clock the test moves; the default is restored after."""
    at = Clock()
    knowledge.use_knowledge(knowledge.build_knowledge(clock=at), clock=at)
    yield at
    knowledge.use_knowledge(None)


def later(clock: Clock, days: float) -> None:
    clock.now = T0 + days * DAY
    knowledge.use_knowledge(knowledge.knowledge(), clock=clock)  # forget cached lookups


@pytest.fixture(scope="module")
def records() -> dict[str, dict[str, Any]]:
    batch = generate(200, seed=123)
    blocked = next(
        r for r in batch if r["truth"]["vendor_id"] == "V018" and not r["truth"]["is_duplicate"]
    )
    clean = next(r for r in batch if r["truth"]["expected_decision"] == "approve")
    return {"blocked": blocked, "clean": clean}


def deskline(**changes: Any) -> Invoice:
    fields: dict[str, Any] = {
        "id": "inv-1",
        "text": "Deskline Supplies LLC invoice",
        "vendor_name": "Deskline Supplies LLC",
        "vendor_id": "V018",
        "vendor_status": "blocked",
        "iban_matches": True,
        "missing_fields": [],
        "duplicate_of": None,
        "total_eur": 120.0,
        "typical_max_eur": 800.0,
        "default_category": None,
    }
    return Invoice.model_validate(fields | changes)


def run(record: dict[str, Any]) -> tuple[am.RunResult[Any], RecordingTracer]:
    tracer = RecordingTracer()
    doc = {k: record[k] for k in ("id", "raw", "source_format")}
    return am.run(invoices.graph, input=doc, tracer=tracer), tracer


def test_fresh_vendor_policy_is_cited_and_the_invoice_decided_as_usual(
    clock: Clock, records: dict[str, dict[str, Any]]
) -> None:
    later(clock, 29)
    verdict = invoices.policy_check(deskline())
    assert verdict.value.compliance_action == "reject"
    assert f"vendor policy {DESKLINE}" in verdict.evidence

    later(clock, 29)  # the run retrieves (and traces) on its own
    result, tracer = run(records["blocked"])
    assert result.status == "completed"
    assert result.output is not None and result.output.decision == "reject"
    retrievals = tracer.of_kind(SpanKind.RETRIEVAL)
    assert retrievals and all(s.status == "ok" for s in retrievals)
    assert DESKLINE in retrievals[0].output

    result, _ = run(records["clean"])
    assert result.output is not None and result.output.decision == "approve"


def test_stale_vendor_policy_is_not_used_and_is_reported(
    clock: Clock, records: dict[str, dict[str, Any]]
) -> None:
    later(clock, 45)
    verdict = invoices.policy_check(deskline())
    assert verdict.value.compliance_action == "review"
    assert list(verdict.evidence) == [STALE_REPORT]  # the register's reason is not used

    later(clock, 45)
    for name in ("blocked", "clean"):
        later(clock, 45)
        result, tracer = run(records[name])
        assert result.status == "awaiting_human", name
        [request] = result.human_requests
        assert request.value["payload"]["decision"] == "human_review"
        assert request.value["payload"]["reason"] == "compliance review"
        retrievals = tracer.of_kind(SpanKind.RETRIEVAL)
        assert retrievals and all(s.status == "insufficient_context" for s in retrievals)


def test_re_ingesting_the_register_makes_the_policy_usable_again(clock: Clock) -> None:
    later(clock, 45)
    knowledge.knowledge().ingest([knowledge.SOURCES])  # re-read now: fresh again
    later(clock, 45)
    verdict = invoices.policy_check(deskline())
    assert verdict.value.compliance_action == "reject"
    assert f"vendor policy {DESKLINE}" in verdict.evidence


def test_duplicates_are_rejected_whatever_the_policy_age(clock: Clock) -> None:
    later(clock, 45)
    verdict = invoices.policy_check(deskline(duplicate_of="inv-0"))
    assert verdict.value.compliance_action == "reject"
    assert verdict.evidence == ["duplicate of inv-0"]


def test_default_knowledge_is_built_once_per_process() -> None:
    knowledge.use_knowledge(None)
    try:
        first = knowledge.knowledge()
        assert knowledge.knowledge() is first
        assert knowledge.vendor_policy("V018", "Deskline Supplies LLC").source == DESKLINE
        assert knowledge.vendor_policy("V001", "Acme Software GmbH").source is None
    finally:
        knowledge.use_knowledge(None)
