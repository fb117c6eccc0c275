"""Tests for the synthetic invoice generator (graphs/invoices_data.py).

Ground truth is re-derived here from the brief's rules, vendors.json and
approval_policy.json rather than from the generator's own helpers, so a bug in
the generator cannot hide behind the same bug in the test.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import pytest
from pydantic import BaseModel, ConfigDict, StringConstraints

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from graphs import invoices_data  # noqa: E402

SAMPLE_PATH = ROOT / "graphs" / "data" / "invoices_sample.jsonl"
REFERENCE_DATE = date(2026, 11, 1)
BATCH_SIZE = 1000

IsoDate = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")]
InvoiceId = Annotated[str, StringConstraints(pattern=r"^inv-\d{6}$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]
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
FraudPattern = Literal["unknown_vendor", "bank_change", "inflated_amount", "threshold_splitting"]
RequiredField = Literal["vendor_name", "invoice_number", "invoice_date", "total", "currency"]

EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
FR_MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
CURRENCY_MARKERS = {
    "EUR": ("EUR", "€"),
    "USD": ("USD", "$"),
    "GBP": ("GBP", "£"),
    "CHF": ("CHF",),
    "JPY": ("JPY", "¥"),
}
NUMBER_LABELS = (
    "invoice #",
    "invoice no",
    "invoice number",
    "invoice_no",
    "rechnungsnummer",
    "rechnung nr",
    "facture n°",
    "n° de facture",
)
TOTAL_LABELS = ("total", "amount due", "gesamtbetrag", "summe", "montant")


class Truth(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    vendor_id: Annotated[str, StringConstraints(pattern=r"^V\d{3}$")] | None
    vendor_name: NonEmpty
    invoice_number: NonEmpty | None
    invoice_date: IsoDate | None
    currency: Literal["EUR", "USD", "GBP", "CHF", "JPY"]
    total: float | None
    iban: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}\d{2}[A-Z0-9]{10,30}$")] | None
    category: Category
    is_duplicate: bool
    duplicate_of: InvoiceId | None
    fraud: bool
    fraud_pattern: FraudPattern | None
    missing_fields: list[RequiredField]
    expected_decision: Literal["approve", "manager_review", "human_review", "reject"]
    decision_reason: NonEmpty


class InvoiceRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: InvoiceId
    source_format: Literal["email", "csv_row", "plain_text", "pdf_text"]
    received_at: IsoDate
    raw: NonEmpty
    truth: Truth


# --------------------------------------------------------------------------- helpers


def squash(text: str) -> str:
    """Drop all whitespace and case so PDF line breaks and casing don't matter."""
    return re.sub(r"\s+", "", text).casefold()


def date_variants(iso: str) -> set[str]:
    day = date.fromisoformat(iso)
    return {
        squash(variant)
        for variant in (
            iso,
            day.strftime("%d/%m/%Y"),
            day.strftime("%d.%m.%Y"),
            f"{EN_MONTHS[day.month - 1]} {day.day}, {day.year}",
            f"{day.day} {FR_MONTHS[day.month - 1]} {day.year}",
        )
    }


def amount_variants(total: float) -> set[str]:
    fixed = f"{total:.2f}"
    whole, cents = fixed.split(".")
    grouped = f"{int(whole):,}"
    swiss = grouped.replace(",", "'")
    variants = {
        f"{grouped}.{cents}",
        f"{grouped.replace(',', '.')},{cents}",
        f"{swiss}.{cents}",
        f"{whole}.{cents}",
        f"{whole},{cents}",
        fixed.rstrip("0").rstrip("."),
    }
    if cents == "00":
        variants |= {grouped, grouped.replace(",", "."), swiss}
    return {squash(v) for v in variants}


def expected_decision(
    truth: dict[str, Any], vendors: dict[str, dict[str, Any]], policy: dict[str, Any]
) -> str:
    vendor = vendors.get(truth["vendor_id"])
    if truth["is_duplicate"]:
        return "reject"
    if vendor is not None and vendor["status"] == "blocked":
        return "reject"
    if truth["missing_fields"]:
        return "human_review"
    if truth["fraud"]:
        return "human_review"
    eur = truth["total"] * policy["fx_to_eur"][truth["currency"]]
    if eur > policy["manager_max_eur"]:
        return "human_review"
    if eur > policy["auto_approve_max_eur"]:
        return "manager_review"
    return "approve"


def to_eur(truth: dict[str, Any], policy: dict[str, Any]) -> float:
    return float(truth["total"]) * policy["fx_to_eur"][truth["currency"]]


def share(records: list[dict[str, Any]], predicate: Callable[[dict[str, Any]], bool]) -> float:
    return sum(1 for r in records if predicate(r["truth"])) / len(records)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def vendors() -> dict[str, dict[str, Any]]:
    rows = json.loads((ROOT / "memory" / "vendors.json").read_text(encoding="utf-8"))
    return {row["vendor_id"]: row for row in rows}


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    return json.loads((ROOT / "memory" / "approval_policy.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def batch() -> list[dict[str, Any]]:
    return invoices_data.generate(BATCH_SIZE, 0)


@pytest.fixture(scope="module")
def known_names(vendors: dict[str, dict[str, Any]]) -> set[str]:
    return {squash(n) for v in vendors.values() for n in (v["name"], *v["aliases"])}


# --------------------------------------------------------------------------- master data


def test_vendor_master_data_is_well_formed(vendors: dict[str, dict[str, Any]]) -> None:
    rows = list(vendors.values())
    assert 35 <= len(rows) <= 45
    assert {v["country"] for v in rows} == {"DE", "FR", "US", "GB", "CH", "NL", "JP", "ES", "IT"}
    assert {v["currency"] for v in rows} == {"EUR", "USD", "GBP", "CHF", "JPY"}
    assert {v["default_category"] for v in rows} == set(get_args(Category))
    assert sum(v["status"] == "blocked" for v in rows) == 3
    assert {v["status"] for v in rows} == {"active", "blocked"}
    assert len({v["iban"] for v in rows}) == len(rows)
    names = [squash(n) for v in rows for n in (v["name"], *v["aliases"])]
    assert len(names) == len(set(names)), "a name or alias is shared by two vendors"
    for v in rows:
        assert re.fullmatch(r"V\d{3}", v["vendor_id"])
        assert v["iban"].startswith(v["country"])
        assert isinstance(v["typical_max"], float)
        assert v["typical_max"] > 0


def test_policy_file(policy: dict[str, Any]) -> None:
    assert policy == {
        "auto_approve_max_eur": 1000,
        "manager_max_eur": 10000,
        "fx_to_eur": {"EUR": 1.0, "USD": 0.92, "GBP": 1.17, "CHF": 1.04, "JPY": 0.0062},
        "required_fields": ["vendor_name", "invoice_number", "invoice_date", "total", "currency"],
    }


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_output() -> None:
    random.seed(1)
    first = invoices_data.generate(60, 3)
    random.seed(2)  # the generator must not touch the global RNG
    assert invoices_data.generate(60, 3) == first


def test_different_seed_different_output() -> None:
    assert invoices_data.generate(60, 3) != invoices_data.generate(60, 4)


def test_rejects_non_positive_n() -> None:
    with pytest.raises(ValueError, match="n must be >= 1"):
        invoices_data.generate(0, 1)


# --------------------------------------------------------------------------- schema


def test_every_record_matches_schema(batch: list[dict[str, Any]]) -> None:
    for record in batch:
        InvoiceRecord.model_validate(record)


def test_records_are_internally_consistent(batch: list[dict[str, Any]]) -> None:
    assert [r["id"] for r in batch] == [f"inv-{i:06d}" for i in range(1, BATCH_SIZE + 1)]
    received = [r["received_at"] for r in batch]
    assert received == sorted(received)
    assert received[-1] <= REFERENCE_DATE.isoformat()
    for record in batch:
        truth = record["truth"]
        missing = set(truth["missing_fields"])
        assert missing <= {"invoice_number", "invoice_date", "total"}
        for name in ("invoice_number", "invoice_date", "total"):
            assert (truth[name] is None) == (name in missing), (record["id"], name)
        assert truth["is_duplicate"] == (truth["duplicate_of"] is not None)
        assert truth["fraud"] == (truth["fraud_pattern"] is not None)
        if truth["total"] is not None:
            assert truth["total"] > 0
            assert round(truth["total"], 2) == truth["total"]
        if truth["invoice_date"] is not None:
            assert truth["invoice_date"] <= record["received_at"]
        if record["source_format"] == "csv_row":
            assert "\n" not in record["raw"]


# --------------------------------------------------------------------------- rates


def test_pattern_rates(batch: list[dict[str, Any]]) -> None:
    truths = [r["truth"] for r in batch]
    assert 0.05 <= share(batch, lambda t: t["fraud"]) <= 0.15
    assert 0.03 <= share(batch, lambda t: t["is_duplicate"]) <= 0.10
    assert 0.05 <= share(batch, lambda t: bool(t["missing_fields"])) <= 0.15

    patterns = Counter(t["fraud_pattern"] for t in truths if t["fraud"])
    for pattern in get_args(FraudPattern):
        assert patterns[pattern] >= 5, patterns

    missing = Counter(f for t in truths for f in t["missing_fields"])
    for name in ("invoice_number", "invoice_date", "total"):
        assert missing[name] >= 5, missing

    formats = Counter(r["source_format"] for r in batch)
    for source_format in ("email", "csv_row", "plain_text", "pdf_text"):
        assert formats[source_format] >= 0.1 * BATCH_SIZE, formats

    currencies = Counter(t["currency"] for t in truths)
    assert sum(n for c, n in currencies.items() if c != "EUR") >= 0.2 * BATCH_SIZE
    for currency in ("USD", "GBP", "CHF", "JPY"):
        assert currencies[currency] >= 0.02 * BATCH_SIZE, currencies

    decisions = Counter(t["expected_decision"] for t in truths)
    for decision in ("approve", "manager_review", "human_review", "reject"):
        assert decisions[decision] >= 0.03 * BATCH_SIZE, decisions


def test_blocked_vendors_appear_occasionally(
    batch: list[dict[str, Any]], vendors: dict[str, dict[str, Any]]
) -> None:
    def blocked(t: dict[str, Any]) -> bool:
        return t["vendor_id"] is not None and vendors[t["vendor_id"]]["status"] == "blocked"

    assert 0.005 <= share(batch, blocked) <= 0.06
    assert not any(blocked(r["truth"]) and r["truth"]["fraud"] for r in batch)


# --------------------------------------------------------------------------- ground truth


def test_expected_decision_follows_policy(
    batch: list[dict[str, Any]], vendors: dict[str, dict[str, Any]], policy: dict[str, Any]
) -> None:
    for record in batch:
        truth = record["truth"]
        assert truth["expected_decision"] == expected_decision(truth, vendors, policy), record
        if truth["is_duplicate"]:
            assert truth["duplicate_of"] in truth["decision_reason"]


def test_known_vendor_fields_match_master(
    batch: list[dict[str, Any]], vendors: dict[str, dict[str, Any]]
) -> None:
    for record in batch:
        truth = record["truth"]
        if truth["vendor_id"] is None:
            continue
        vendor = vendors[truth["vendor_id"]]
        assert truth["vendor_name"] == vendor["name"]
        assert truth["currency"] == vendor["currency"]
        if truth["fraud_pattern"] != "bank_change":
            assert truth["iban"] in (None, vendor["iban"]), record["id"]
        if not truth["fraud"] and truth["total"] is not None:
            assert truth["total"] <= 3 * vendor["typical_max"], record["id"]


def test_fraud_patterns_are_what_they_claim(
    batch: list[dict[str, Any]],
    vendors: dict[str, dict[str, Any]],
    policy: dict[str, Any],
    known_names: set[str],
) -> None:
    truths = [r["truth"] for r in batch]
    split_groups = Counter(
        (t["vendor_id"], t["invoice_date"])
        for t in truths
        if t["fraud_pattern"] == "threshold_splitting"
    )
    for truth in truths:
        pattern = truth["fraud_pattern"]
        assert (truth["vendor_id"] is None) == (pattern == "unknown_vendor")
        if pattern == "unknown_vendor":
            assert squash(truth["vendor_name"]) not in known_names
        elif pattern == "bank_change":
            assert truth["iban"] is not None
            assert truth["iban"] != vendors[truth["vendor_id"]]["iban"]
        elif pattern == "inflated_amount":
            assert truth["total"] > 3 * vendors[truth["vendor_id"]]["typical_max"]
        elif pattern == "threshold_splitting":
            assert 950 <= to_eur(truth, policy) < policy["auto_approve_max_eur"]
            assert split_groups[(truth["vendor_id"], truth["invoice_date"])] >= 2


def test_duplicates_resend_an_earlier_invoice(batch: list[dict[str, Any]]) -> None:
    position = {r["id"]: i for i, r in enumerate(batch)}
    resent_in_other_format = 0
    for index, record in enumerate(batch):
        truth = record["truth"]
        if not truth["is_duplicate"]:
            continue
        original = batch[position[truth["duplicate_of"]]]
        assert position[truth["duplicate_of"]] < index
        assert not original["truth"]["is_duplicate"]
        for name in ("vendor_id", "vendor_name", "invoice_number", "total", "currency"):
            assert truth[name] == original["truth"][name], (record["id"], name)
        assert truth["invoice_number"] is not None
        assert truth["total"] is not None
        resent_in_other_format += record["source_format"] != original["source_format"]
    assert resent_in_other_format > 0


def test_invoice_numbers_unique_per_vendor_except_duplicates(batch: list[dict[str, Any]]) -> None:
    keys = [
        (r["truth"]["vendor_name"], r["truth"]["invoice_number"])
        for r in batch
        if not r["truth"]["is_duplicate"] and r["truth"]["invoice_number"] is not None
    ]
    assert len(keys) == len(set(keys))


# --------------------------------------------------------------------------- raw text


def test_raw_contains_truth_values(
    batch: list[dict[str, Any]], vendors: dict[str, dict[str, Any]]
) -> None:
    for record in batch:
        truth, raw = record["truth"], squash(record["raw"])
        rid = record["id"]
        names = [truth["vendor_name"]]
        if truth["vendor_id"] is not None:
            names.extend(vendors[truth["vendor_id"]]["aliases"])
        assert any(squash(name) in raw for name in names), rid
        if truth["invoice_number"] is not None:
            assert squash(truth["invoice_number"]) in raw, rid
        if truth["invoice_date"] is not None:
            assert any(v in raw for v in date_variants(truth["invoice_date"])), rid
        if truth["total"] is not None:
            assert any(v in raw for v in amount_variants(truth["total"])), rid
        if truth["iban"] is not None:
            assert squash(truth["iban"]) in raw, rid
        assert any(m.casefold() in raw for m in CURRENCY_MARKERS[truth["currency"]]), rid


def test_raw_omits_missing_fields(batch: list[dict[str, Any]]) -> None:
    for record in batch:
        truth, raw = record["truth"], squash(record["raw"])
        if "invoice_number" in truth["missing_fields"]:
            assert not [label for label in NUMBER_LABELS if squash(label) in raw], record["id"]
        if "total" in truth["missing_fields"]:
            assert not [label for label in TOTAL_LABELS if squash(label) in raw], record["id"]


def test_raw_text_is_messy_in_all_the_expected_ways(
    batch: list[dict[str, Any]], vendors: dict[str, dict[str, Any]]
) -> None:
    everything = "\n".join(r["raw"] for r in batch)
    flat = squash(everything)
    labels = (
        "Invoice #",
        "Invoice No.",
        "Rechnungsnummer",
        "Rechnung Nr.",
        "Facture N°",
        "Total",
        "Gesamtbetrag",
        "Montant TTC",
        "Amount due",
        "IBAN:",
        "Bankverbindung:",
    )
    for label in labels:
        assert squash(label) in flat, label
    for marker in ("$", "€", "£", "¥", "CHF", "EUR "):
        assert marker in everything, marker
    # One of each date style: ISO, 30/09/2026, 30.09.2026, Sep 30, 2026, 30 septembre 2026.
    patterns = (
        r"\b\d{4}-\d{2}-\d{2}\b",
        r"\b\d{2}/\d{2}/\d{4}\b",
        r"\b\d{2}\.\d{2}\.\d{4}\b",
        r"\b[A-Z][a-z]{2} \d{1,2}, \d{4}\b",
        r"\b\d{1,2} (?:" + "|".join(FR_MONTHS) + r") \d{4}\b",
    )
    for pattern in patterns:
        assert re.search(pattern, everything), pattern
    # Amount styles: 1,234.50 / 1.234,50 / 1 234,50 / EUR 1234.5.
    for pattern in (r"\d,\d{3}\.\d{2}", r"\d\.\d{3},\d{2}", r"\d \d{3},\d{2}", r"EUR \d+\.\d\b"):
        assert re.search(pattern, everything), pattern

    by_format: dict[str, list[str]] = {}
    for record in batch:
        by_format.setdefault(record["source_format"], []).append(record["raw"])
    assert all(raw.startswith("From:") and "\nSubject:" in raw for raw in by_format["email"])
    pdfs = by_format["pdf_text"]
    assert all(re.search(r"^ {2,}\S", raw, re.MULTILINE) for raw in pdfs)
    assert sum(bool(re.search(r"\S {3,}\S", raw)) for raw in pdfs) >= 0.9 * len(pdfs)
    assert any("=" in raw for raw in by_format["csv_row"])
    assert any("=" not in raw for raw in by_format["csv_row"])

    def shows_alias_only(record: dict[str, Any]) -> bool:
        vendor = vendors.get(record["truth"]["vendor_id"] or "")
        return vendor is not None and squash(vendor["name"]) not in squash(record["raw"])

    assert any(shows_alias_only(r) for r in batch)
    assert any(r["truth"]["vendor_name"].upper() in r["raw"] for r in batch)


# --------------------------------------------------------------------------- CLI and sample


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphs.invoices_data", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )


def test_cli_writes_jsonl() -> None:
    result = run_cli("--n", "5", "--seed", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    assert [json.loads(line) for line in lines] == invoices_data.generate(5, 1)


@pytest.mark.parametrize("value", ["0", "-3", "abc"])
def test_cli_rejects_bad_n(value: str) -> None:
    result = run_cli("--n", value)
    assert result.returncode == 2
    assert result.stdout == ""
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1
    assert "--n" in errors[0]


def test_main_returns_2_on_bad_seed(capsys: pytest.CaptureFixture[str]) -> None:
    assert invoices_data.main(["--n", "3", "--seed", "x"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert "--seed" in captured.err


def test_shipped_sample_matches_generator() -> None:
    lines = SAMPLE_PATH.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 40
    assert [json.loads(line) for line in lines] == invoices_data.generate(40, 7)
