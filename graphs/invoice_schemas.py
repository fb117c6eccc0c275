"""Typed messages of the back-office invoice workflow."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

Category = Literal[
    "software",
    "hardware",
    "travel",
    "office_supplies",
    "consulting",
    "utilities",
    "marketing",
    "logistics",
]
Currency = Literal["EUR", "USD", "GBP", "CHF", "JPY"]
Decision = Literal["approve", "manager_review", "human_review", "reject"]


class InvoiceDoc(BaseModel):
    """An invoice as received."""

    id: str
    raw: str
    source_format: str = "plain_text"
    received_at: date | None = None


class ParsedInvoice(BaseModel):
    id: str
    text: str
    source_format: str


class LineItem(BaseModel):
    description: str
    amount: float


class InvoiceFields(BaseModel):
    """Fields read off the invoice; a field the invoice does not show is None."""

    vendor_name: str | None = None
    invoice_number: str | None = None
    invoice_date: date | None = None
    currency: Currency | None = None
    total: float | None = Field(default=None, ge=0)
    iban: str | None = None
    line_items: list[LineItem] = Field(default_factory=list)


class VendorCheckInput(BaseModel):
    id: str
    text: str
    vendor_name: str | None
    invoice_number: str | None
    invoice_date: date | None
    currency: Currency | None
    total: float | None
    iban: str | None


class VendorCheck(BaseModel):
    vendor_id: str | None
    vendor_status: Literal["active", "blocked", "unknown"]
    iban_matches: bool | None
    missing_fields: list[str]
    duplicate_of: str | None
    total_eur: float | None
    typical_max_eur: float | None
    default_category: Category | None


class Invoice(InvoiceFields, VendorCheck):
    """The intake lead's result: what the invoice says and what master data says about it."""

    id: str
    text: str


class CategorizeInput(BaseModel):
    text: str
    line_items: list[LineItem]
    default_category: Category | None


class Categorized(BaseModel):
    category: Category


class FraudRuleInput(BaseModel):
    id: str
    vendor_id: str | None
    vendor_status: Literal["active", "blocked", "unknown"]
    iban_matches: bool | None
    invoice_date: date | None
    total_eur: float | None
    typical_max_eur: float | None


class FraudSignals(BaseModel):
    rule_score: float = Field(ge=0, le=1)
    signals: list[str]


class FraudReviewInput(BaseModel):
    text: str
    rule_score: float
    signals: list[str]


class FraudAssessment(BaseModel):
    fraud_risk: float = Field(ge=0, le=1)
    fraud_suspected: bool


class ComplianceVerdict(BaseModel):
    """A compliance peer's verdict (peers are compared field by field)."""

    compliance_action: Literal["clear", "review", "reject"]
    compliance_risk: Literal["low", "medium", "high"]


class RoutingInput(BaseModel):
    total_eur: float | None
    missing_fields: list[str]
    duplicate_of: str | None
    vendor_status: Literal["active", "blocked", "unknown"]
    fraud_suspected: bool
    compliance_action: Literal["clear", "review", "reject"]


class Routing(BaseModel):
    decision: Decision
    reason: str


class ApprovalRequest(BaseModel):
    id: str
    vendor_name: str | None
    total_eur: float | None
    decision: Decision
    reason: str
    signals: list[str]


class ApprovalDecision(BaseModel):
    approved: bool
    approver: str
    note: str = ""


class FinanceResult(BaseModel):
    category: Category
    fraud_risk: float
    fraud_suspected: bool
    signals: list[str]
    decision: Decision
    reason: str
    approved: bool | None = None
    approver: str | None = None


class InvoiceOutcome(BaseModel):
    """The workflow's final, typed result for one invoice."""

    id: str
    decision: Decision
    reason: str
    vendor_id: str | None
    vendor_name: str | None
    invoice_number: str | None
    invoice_date: date | None
    currency: Currency | None
    total: float | None
    total_eur: float | None
    category: Category
    fraud_risk: float
    fraud_suspected: bool
    compliance_action: Literal["clear", "review", "reject"]
    approved: bool | None = None
    approver: str | None = None


class FinanceInput(Invoice):
    compliance_action: Literal["clear", "review", "reject"]
