"""Back-office invoice workflow: meta `back_office` -> leads `intake`, `compliance`, `finance`.

Every task sits on the cheapest layer that does it reliably: parsing, master-data
checks and approval routing are code; reading fields, categorising and weighing
fraud are small-model tasks with rule-based fallbacks (used offline); high-risk
or high-value approvals go to a human.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import agentmesh as am
from graphs import invoice_rules as rules
from graphs.invoice_knowledge import vendor_policy
from graphs.invoice_ledger import TOOLS
from graphs.invoice_memory import invoice_subject, vendor_from_corrections
from graphs.invoice_schemas import (
    ApprovalRequest,
    Categorized,
    CategorizeInput,
    ComplianceVerdict,
    FinanceInput,
    FraudAssessment,
    FraudReviewInput,
    FraudRuleInput,
    FraudSignals,
    Invoice,
    InvoiceDoc,
    InvoiceFields,
    ParsedInvoice,
    Routing,
    RoutingInput,
    VendorCheck,
    VendorCheckInput,
)

cards = am.load_cards(Path(__file__).resolve().parents[1] / "agents")
POLICY = rules.load_policy()
REQUIRED = ("vendor_name", "invoice_number", "invoice_date", "total", "currency")


# -- intake ---------------------------------------------------------------------------------


def parse_invoice(doc: InvoiceDoc) -> ParsedInvoice:
    return ParsedInvoice(id=doc.id, text=rules.normalize(doc.raw), source_format=doc.source_format)


def extract_by_rules(parsed: ParsedInvoice) -> am.Answer[InvoiceFields]:
    fields = InvoiceFields.model_validate(rules.extract(parsed.text))
    return am.Answer(value=fields, confidence=0.85, evidence=["rule-based extraction"])


def learned_vendor(inv: VendorCheckInput) -> dict[str, Any] | None:
    """The vendor a reviewer assigned to earlier invoices printed with this name, if any."""
    vendor_id = vendor_from_corrections(inv.vendor_name) if inv.vendor_name else None
    return next((v for v in rules.load_vendors() if v["vendor_id"] == vendor_id), None)


def validate_vendor(inv: VendorCheckInput, ctx: am.AgentContext) -> VendorCheck:
    vendor = rules.match_vendor(inv.vendor_name, inv.text) or learned_vendor(inv)
    missing = [f for f in REQUIRED if getattr(inv, f) is None]
    total_eur = (
        rules.to_eur(inv.total, inv.currency) if inv.total is not None and inv.currency else None
    )
    duplicate_of = ctx.call_tool(
        "ledger_check",
        batch=str(ctx.task.constraints.get("batch", "default")),
        invoice_id=inv.id,
        vendor=vendor["vendor_id"] if vendor else (inv.vendor_name or ""),
        invoice_number=inv.invoice_number,
        total=inv.total,
        invoice_date=inv.invoice_date.isoformat() if inv.invoice_date else None,
        total_eur=total_eur,
    )
    return VendorCheck(
        vendor_id=vendor["vendor_id"] if vendor else None,
        vendor_status=vendor["status"] if vendor else "unknown",
        iban_matches=(inv.iban == vendor["iban"]) if vendor and inv.iban else None,
        missing_fields=missing,
        duplicate_of=duplicate_of,
        total_eur=total_eur,
        typical_max_eur=rules.to_eur(vendor["typical_max"], vendor["currency"]) if vendor else None,
        default_category=vendor["default_category"] if vendor else None,
    )


@am.check(on_fail="retry")
def lines_add_up(fields: InvoiceFields) -> str | None:
    if fields.total is None or not fields.line_items:
        return None
    gap = abs(sum(i.amount for i in fields.line_items) - fields.total)
    return f"line items sum differs from total by {gap:.2f}" if gap > 0.05 else None


intake = cards.lead(
    "intake",
    input=InvoiceDoc,
    stages=[
        cards.specialist("parse_invoice", input=InvoiceDoc, fn=parse_invoice),
        cards.specialist(
            "extract_fields",
            input=ParsedInvoice,
            fallback=extract_by_rules,
            gate=am.Gate(checks=[lines_add_up, am.in_range("total", min=0)]),
        ),
        cards.specialist(
            "validate_vendor", input=VendorCheckInput, fn=validate_vendor, tools=TOOLS
        ),
    ],
)


# -- compliance: two peers joined by a resolution node ---------------------------------------


def policy_check(inv: Invoice) -> am.Answer[ComplianceVerdict]:
    if inv.duplicate_of:
        return am.Answer(
            value=ComplianceVerdict(compliance_action="reject", compliance_risk="high"),
            confidence=0.95,
            evidence=[f"duplicate of {inv.duplicate_of}"],
        )
    # The vendor's policy counts only when fresh; on a stale copy a human decides.
    policy = vendor_policy(inv.vendor_id, inv.vendor_name) if inv.vendor_id else None
    if policy is not None and policy.stale:
        return am.Answer(
            value=ComplianceVerdict(compliance_action="review", compliance_risk="high"),
            confidence=0.95,
            evidence=policy.evidence,
        )
    cited = policy.evidence if policy is not None else []
    if inv.vendor_status == "blocked":
        return am.Answer(
            value=ComplianceVerdict(compliance_action="reject", compliance_risk="high"),
            confidence=0.95,
            evidence=["vendor is blocked", *cited],
        )
    if inv.vendor_status == "unknown" or inv.iban_matches is False:
        return am.Answer(
            value=ComplianceVerdict(compliance_action="review", compliance_risk="high"),
            confidence=0.9,
            evidence=["vendor or bank account not in master data"],
        )
    return am.Answer(
        value=ComplianceVerdict(compliance_action="clear", compliance_risk="low"),
        confidence=0.9,
        evidence=cited,
    )


def critic_by_rules(inv: Invoice) -> am.Answer[ComplianceVerdict]:
    verdict = policy_check(inv).value
    over = (
        inv.total_eur is not None
        and inv.typical_max_eur is not None
        and (inv.total_eur > 3 * inv.typical_max_eur)
    )
    if verdict.compliance_action == "clear" and (over or inv.missing_fields):
        verdict = ComplianceVerdict(compliance_action="review", compliance_risk="medium")
    return am.Answer(value=verdict, confidence=0.7, evidence=["rule-based critique"])


compliance = cards.lead(
    "compliance",
    input=Invoice,
    stages=[
        am.Parallel(
            cards.specialist("policy_checker", input=Invoice, fn=policy_check),
            cards.specialist("risk_critic", input=Invoice, fallback=critic_by_rules),
            name="compliance_review",
            resolver=am.ConfidenceWeighted(fallback=am.Priority(order=["policy_checker"])),
        ),
    ],
)


# -- finance ----------------------------------------------------------------------------------


def categorize_by_rules(item: CategorizeInput) -> am.Answer[Categorized]:
    vendor = {"default_category": item.default_category} if item.default_category else None
    lines = [i.model_dump() for i in item.line_items]
    category, confidence = rules.categorize(item.text, lines, vendor)
    return am.Answer(value=Categorized(category=category), confidence=confidence)


def fraud_rules(inv: FraudRuleInput, ctx: am.AgentContext) -> FraudSignals:
    signals: list[str] = []
    if inv.vendor_status == "unknown":
        signals.append("vendor not in master data")
    if inv.iban_matches is False:
        signals.append("bank account differs from master data")
    if inv.total_eur and inv.typical_max_eur and inv.total_eur > 3 * inv.typical_max_eur:
        signals.append(f"amount {inv.total_eur:.0f} EUR > 3x usual maximum")
    limit = POLICY["auto_approve_max_eur"]
    if (
        inv.total_eur
        and 0.9 * limit <= inv.total_eur < limit
        and inv.invoice_date
        and inv.vendor_id
    ):
        same_day = ctx.call_tool(
            "ledger_same_day",
            batch=str(ctx.task.constraints.get("batch", "default")),
            invoice_id=inv.id,
            vendor=inv.vendor_id,
            invoice_date=inv.invoice_date.isoformat(),
        )
        if any(0.9 * limit <= t < limit for t in same_day):
            signals.append("split invoices just under the approval limit")
    return FraudSignals(rule_score=min(1.0, 0.6 * len(signals)), signals=signals)


def fraud_by_rules(item: FraudReviewInput) -> am.Answer[FraudAssessment]:
    return am.Answer(
        value=FraudAssessment(fraud_risk=item.rule_score, fraud_suspected=item.rule_score >= 0.5),
        confidence=0.8,
        evidence=item.signals,
    )


def route_approval(r: RoutingInput) -> Routing:
    if r.duplicate_of or r.compliance_action == "reject":
        return Routing(
            decision="reject",
            reason=f"duplicate of {r.duplicate_of}"
            if r.duplicate_of
            else f"compliance rejects (vendor {r.vendor_status})",
        )
    if r.missing_fields:
        return Routing(decision="human_review", reason=f"missing {', '.join(r.missing_fields)}")
    if r.fraud_suspected or r.compliance_action == "review":
        why = "fraud risk" if r.fraud_suspected else "compliance review"
        return Routing(decision="human_review", reason=why)
    assert r.total_eur is not None  # no missing fields
    if r.total_eur > POLICY["manager_max_eur"]:
        return Routing(decision="human_review", reason=f"{r.total_eur:,.2f} EUR over manager limit")
    if r.total_eur > POLICY["auto_approve_max_eur"]:
        return Routing(
            decision="manager_review", reason=f"{r.total_eur:,.2f} EUR over auto-approve limit"
        )
    return Routing(decision="approve", reason=f"{r.total_eur:,.2f} EUR within auto-approve limit")


def needs_human(fields: Any) -> bool:
    return bool(fields.get("decision") == "human_review")


finance = cards.lead(
    "finance",
    input=FinanceInput,
    stages=[
        cards.specialist("categorize", input=CategorizeInput, fallback=categorize_by_rules),
        cards.specialist("fraud_rules", input=FraudRuleInput, fn=fraud_rules, tools=TOOLS),
        cards.specialist(
            "fraud_review",
            input=FraudReviewInput,
            fallback=fraud_by_rules,
            gate=am.Gate(
                checks=[
                    am.consistent(
                        lambda a: a.fraud_suspected == (a.fraud_risk >= 0.5),
                        "fraud_suspected must agree with fraud_risk >= 0.5",
                    )
                ]
            ),
        ),
        cards.specialist("route_approval", input=RoutingInput, fn=route_approval),
        am.Step(
            agent=cards.specialist("human_approval", input=ApprovalRequest),
            when=needs_human,
            goal="approve or reject this invoice",
        ),
    ],
)

back_office = cards.meta(
    "back_office",
    input=InvoiceDoc,
    stages=[intake, compliance, finance],
    goal="decide every incoming invoice correctly and on record",
    # Episodes are about the vendor as printed: a reviewer's vendor correction on one
    # teaches validate_vendor (through vendor_from_corrections) for later invoices.
    episode_subject=invoice_subject,
)

graph = back_office.compile()

SAMPLE = Path(__file__).resolve().parent / "data" / "invoices_sample.jsonl"


def evaluate(line: Any, truth: Any) -> dict[str, bool]:
    """Score one result line against the generator's ground truth (used by `agentmesh run`)."""
    out = line.get("output") or {}
    decision = out.get("decision")
    for request in line.get("human_requests") or []:
        decision = decision or request["value"]["payload"].get("decision")
    scores = {"decision": decision == truth["expected_decision"]}
    if out:
        scores["vendor"] = out.get("vendor_id") == truth["vendor_id"]
        scores["total"] = (out.get("total") is None) == (truth["total"] is None) and (
            truth["total"] is None or abs(out["total"] - truth["total"]) < 0.01
        )
        scores["category"] = out.get("category") == truth["category"]
        scores["fraud_flag"] = bool(out.get("fraud_suspected")) == bool(truth["fraud"])
    return scores
