"""Seeded synthetic back-office invoices with ground truth.

Each record is one inbound invoice as an accounts-payable inbox would see it (an
email, a CSV export row, plain text, or text extracted from a PDF) together with
the ground truth an extraction and approval graph should recover: the canonical
field values, duplicate and fraud labels, and the decision that
``memory/approval_policy.json`` demands given the vendor master data in
``memory/vendors.json``.

Usage::

    python -m graphs.invoices_data --n 40 --seed 7 > invoices.jsonl

Output is fully determined by ``(n, seed)``: a single ``random.Random(seed)``
drives every choice and all dates derive from ``REFERENCE_DATE``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import random
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final, Literal, NoReturn, TextIO

SourceFormat = Literal["email", "csv_row", "plain_text", "pdf_text"]
FraudPattern = Literal["unknown_vendor", "bank_change", "inflated_amount", "threshold_splitting"]
Decision = Literal["approve", "manager_review", "human_review", "reject"]
MissingField = Literal["invoice_number", "invoice_date", "total"]
Lang = Literal["en", "de", "fr"]
DateFormat = Literal["iso", "dmy_slash", "dmy_dot", "mdy_en", "fr_long"]
NumberStyle = Literal["us", "eu", "space", "ch", "plain"]
Placement = Literal["code_prefix", "code_suffix", "symbol_prefix", "symbol_suffix"]
_Description = tuple[str, str, str]  # the same line item in (en, de, fr)
_Kind = Literal["normal", "duplicate", "split", "unknown_vendor", "bank_change", "inflated_amount"]

PROJECT_ROOT: Final = Path(__file__).resolve().parents[1]
VENDORS_PATH: Final = PROJECT_ROOT / "memory" / "vendors.json"
POLICY_PATH: Final = PROJECT_ROOT / "memory" / "approval_policy.json"
REFERENCE_DATE: Final = date(2026, 11, 1)

CATEGORIES: Final = (
    "software",
    "hardware",
    "travel",
    "office_supplies",
    "consulting",
    "utilities",
    "marketing",
    "logistics",
)
SOURCE_FORMATS: Final[tuple[SourceFormat, ...]] = ("email", "csv_row", "plain_text", "pdf_text")
FRAUD_PATTERNS: Final[tuple[FraudPattern, ...]] = (
    "unknown_vendor",
    "bank_change",
    "inflated_amount",
    "threshold_splitting",
)
MISSABLE_FIELDS: Final[tuple[MissingField, ...]] = ("invoice_number", "invoice_date", "total")

# Per-draw probabilities; a "split" draw yields 2-3 invoices, so the item-level
# fraud rate lands near 9%, duplicates near 6% and missing fields near 8%.
_KIND_WEIGHTS: Final[dict[_Kind, float]] = {
    "normal": 0.828,
    "duplicate": 0.06,
    "split": 0.012,
    "unknown_vendor": 0.02,
    "bank_change": 0.02,
    "inflated_amount": 0.02,
}
_P_MISSING: Final = 0.10
_P_TWO_MISSING: Final = 0.15
_P_NO_IBAN: Final = 0.15
_P_OFF_CATEGORY: Final = 0.10
_P_REMINDER: Final = 0.4
_BLOCKED_WEIGHT: Final = 0.4
_HISTORY_DAYS: Final = 90
_MAX_INVOICE_AGE_DAYS: Final = 21
_DUPLICATE_LOOKBACK: Final = 150
_SPLIT_BAND_EUR: Final = (955.0, 995.0)
_INFLATION_RANGE: Final = (3.2, 6.0)
_BUYER: Final = "Agentmesh Demo Corp, Friedrichstr. 1, 10117 Berlin"
_AP_MAILBOX: Final = "ap@agentmesh-demo.example"

_COUNTRY_CURRENCY: Final = {
    "DE": "EUR",
    "FR": "EUR",
    "NL": "EUR",
    "ES": "EUR",
    "IT": "EUR",
    "US": "USD",
    "GB": "GBP",
    "CH": "CHF",
    "JP": "JPY",
}
# (bank-code letters, digit count) of the fake BBAN after the 4-char IBAN head.
_IBAN_LAYOUT: Final = {
    "DE": (0, 18),
    "FR": (0, 23),
    "GB": (4, 14),
    "CH": (0, 17),
    "NL": (4, 10),
    "ES": (0, 20),
    "IT": (1, 22),
    "US": (0, 20),
    "JP": (0, 18),
}
_COUNTRY_LANGS: Final[dict[str, tuple[Lang, ...]]] = {
    "DE": ("de", "de", "de", "en"),
    "CH": ("de", "fr", "en"),
    "FR": ("fr", "fr", "fr", "en"),
}
_COUNTRY_TLD: Final = {
    "DE": "de",
    "FR": "fr",
    "NL": "nl",
    "ES": "es",
    "IT": "it",
    "US": "com",
    "GB": "co.uk",
    "CH": "ch",
    "JP": "co.jp",
}
_CURRENCY_SYMBOL: Final = {"EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF", "JPY": "¥"}
_CATEGORY_TYPICAL_EUR: Final = {
    "software": 5000.0,
    "hardware": 12000.0,
    "travel": 3000.0,
    "office_supplies": 800.0,
    "consulting": 20000.0,
    "utilities": 3500.0,
    "marketing": 15000.0,
    "logistics": 9000.0,
}
# Translated up front so a re-sent invoice can switch language and keep its items.
_LINE_ITEMS: Final[dict[str, tuple[_Description, ...]]] = {
    "software": (
        ("annual license", "Jahreslizenz", "licence annuelle"),
        (
            "SaaS subscription (12 months)",
            "SaaS-Abonnement (12 Monate)",
            "abonnement SaaS (12 mois)",
        ),
        (
            "additional user seats",
            "zusätzliche Benutzerlizenzen",
            "postes utilisateurs supplémentaires",
        ),
        ("support & maintenance", "Support & Wartung", "support et maintenance"),
        ("cloud hosting", "Cloud-Hosting", "hébergement cloud"),
    ),
    "hardware": (
        ("laptop", "Notebook", "ordinateur portable"),
        ("docking station", "Dockingstation", "station d'accueil"),
        ('monitor 27"', 'Monitor 27"', 'écran 27"'),
        ("server rack", "Serverschrank", "baie serveur"),
        ("keyboard and mouse set", "Tastatur-Maus-Set", "ensemble clavier et souris"),
    ),
    "travel": (
        ("flight", "Flug", "vol"),
        ("hotel (2 nights)", "Hotel (2 Nächte)", "hôtel (2 nuits)"),
        ("train ticket", "Bahnticket", "billet de train"),
        ("rental car", "Mietwagen", "voiture de location"),
        ("travel insurance", "Reiseversicherung", "assurance voyage"),
    ),
    "office_supplies": (
        (
            "printer paper (10 reams)",
            "Druckerpapier (10 Pakete)",
            "papier imprimante (10 ramettes)",
        ),
        ("toner cartridge", "Tonerkartusche", "cartouche de toner"),
        ("pens and notebooks", "Stifte und Notizbücher", "stylos et carnets"),
        ("desk organizer", "Schreibtisch-Organizer", "organiseur de bureau"),
        ("office supplies", "Büromaterial", "fournitures de bureau"),
    ),
    "consulting": (
        ("consulting hours", "Beratungsstunden", "heures de conseil"),
        ("workshop facilitation", "Workshop-Moderation", "animation d'atelier"),
        ("advisory retainer", "Beratungspauschale", "forfait de conseil"),
        ("project management", "Projektmanagement", "gestion de projet"),
    ),
    "utilities": (
        ("electricity", "Strom", "électricité"),
        ("water", "Wasser", "eau"),
        ("gas", "Gas", "gaz"),
        ("internet line", "Internetanschluss", "ligne internet"),
        ("waste collection", "Müllabfuhr", "collecte des déchets"),
    ),
    "marketing": (
        ("ad campaign", "Werbekampagne", "campagne publicitaire"),
        ("social media management", "Social-Media-Betreuung", "gestion des réseaux sociaux"),
        ("trade fair booth", "Messestand", "stand de salon"),
        ("print brochures", "Druck Broschüren", "impression de brochures"),
    ),
    "logistics": (
        ("freight", "Fracht", "fret"),
        ("courier delivery", "Kurierzustellung", "livraison express"),
        ("warehousing", "Lagerung", "entreposage"),
        ("customs clearance", "Zollabfertigung", "dédouanement"),
    ),
}
_LANG_INDEX: Final[dict[Lang, int]] = {"en": 0, "de": 1, "fr": 2}
_UNKNOWN_NAME_HEADS: Final = (
    "Nordlicht",
    "Bluepeak",
    "Quantora",
    "Solvex",
    "Veridian",
    "Kestrel",
    "Lumora",
    "Axiom",
    "Brightwave",
    "Corvane",
    "Zenith Point",
    "Obsidian",
)
_UNKNOWN_NAME_TAILS: Final = ("Solutions", "Services", "Trading", "Supplies", "Digital", "Global")
_LEGAL_FORMS: Final = {
    "DE": "GmbH",
    "FR": "SARL",
    "NL": "B.V.",
    "ES": "S.L.",
    "IT": "S.r.l.",
    "US": "LLC",
    "GB": "Ltd",
    "CH": "AG",
    "JP": "K.K.",
}
_NUMBER_TEMPLATES: Final = (
    "{letter}-{{year}}-{{seq:04d}}",
    "INV-{{seq:05d}}",
    "RE-{{year}}/{{seq:03d}}",
    "F{{year}}-{{seq:05d}}",
    "{{year}}{{seq:06d}}",
    "{initials}{{seq:06d}}",
)
_EN_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
_FR_MONTHS: Final = (
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
_EN_WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DATE_FORMATS: Final[dict[Lang, tuple[DateFormat, ...]]] = {
    "en": ("iso", "mdy_en", "dmy_slash"),
    "de": ("dmy_dot", "dmy_dot", "iso"),
    "fr": ("dmy_slash", "fr_long", "iso"),
}
_LABELS: Final[dict[Lang, dict[str, tuple[str, ...]]]] = {
    "en": {
        "title": ("INVOICE",),
        "number": ("Invoice #", "Invoice No.", "Invoice number"),
        "date": ("Invoice date", "Date"),
        "total": ("Total", "Amount due", "Total due"),
        "iban": ("IBAN", "Bank account (IBAN)"),
        "currency": ("Currency",),
        "bill_to": ("Bill to",),
        "items": ("Description",),
        "greeting": ("Hello,", "Dear Accounts Payable team,"),
        "intro": ("Please find our invoice below.", "Our invoice for recent services follows."),
        "closing": ("Best regards,", "Kind regards,"),
        "terms": ("Payment terms: 30 days net.", "Please pay within 14 days."),
        "bank_note": ("Please note our new bank details below.",),
        "subject": ("Invoice {number}",),
        "subject_nonum": ("Invoice from {name}",),
        "reminder": ("Reminder: ", "Resent: "),
        "page": ("Page 1 of 1",),
    },
    "de": {
        "title": ("RECHNUNG",),
        "number": ("Rechnungsnummer", "Rechnung Nr."),
        "date": ("Rechnungsdatum", "Datum"),
        "total": ("Gesamtbetrag", "Summe"),
        "iban": ("IBAN", "Bankverbindung"),
        "currency": ("Währung",),
        "bill_to": ("Rechnungsempfänger",),
        "items": ("Leistung", "Beschreibung"),
        "greeting": ("Sehr geehrte Damen und Herren,",),
        "intro": ("anbei erhalten Sie unsere Rechnung.",),
        "closing": ("Mit freundlichen Grüßen",),
        "terms": ("Zahlbar innerhalb von 14 Tagen ohne Abzug.",),
        "bank_note": ("Bitte beachten Sie unsere neue Bankverbindung.",),
        "subject": ("Rechnung {number}",),
        "subject_nonum": ("Ihre Rechnung von {name}",),
        "reminder": ("Zahlungserinnerung: ",),
        "page": ("Seite 1 von 1",),
    },
    "fr": {
        "title": ("FACTURE",),
        "number": ("Facture N°", "N° de facture"),
        "date": ("Date de facture", "Date"),
        "total": ("Montant TTC", "Total TTC"),
        "iban": ("IBAN", "Coordonnées bancaires"),
        "currency": ("Devise",),
        "bill_to": ("Facturé à",),
        "items": ("Désignation",),
        "greeting": ("Bonjour,",),
        "intro": ("Veuillez trouver ci-joint notre facture.",),
        "closing": ("Cordialement,",),
        "terms": ("Paiement à 30 jours.",),
        "bank_note": ("Veuillez noter nos nouvelles coordonnées bancaires.",),
        "subject": ("Facture {number}",),
        "subject_nonum": ("Votre facture {name}",),
        "reminder": ("Relance : ",),
        "page": ("Page 1 sur 1",),
    },
}


@dataclass(frozen=True)
class Vendor:
    """One row of the vendor master data (``memory/vendors.json``)."""

    vendor_id: str
    name: str
    aliases: tuple[str, ...]
    country: str
    currency: str
    iban: str
    default_category: str
    typical_max: float
    status: Literal["active", "blocked"]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Vendor:
        """Build a vendor from its JSON object.

        Args:
            raw: One entry of ``vendors.json``.

        Returns:
            The parsed vendor.
        """
        return cls(
            vendor_id=raw["vendor_id"],
            name=raw["name"],
            aliases=tuple(raw["aliases"]),
            country=raw["country"],
            currency=raw["currency"],
            iban=raw["iban"],
            default_category=raw["default_category"],
            typical_max=float(raw["typical_max"]),
            status=raw["status"],
        )


@dataclass(frozen=True)
class Policy:
    """The approval policy (``memory/approval_policy.json``)."""

    auto_approve_max_eur: float
    manager_max_eur: float
    fx_to_eur: dict[str, float]
    required_fields: tuple[str, ...]

    def to_eur(self, amount: float, currency: str) -> float:
        """Convert an amount to EUR with the policy's fixed rates.

        Args:
            amount: Amount in ``currency``.
            currency: ISO currency code present in ``fx_to_eur``.

        Returns:
            The EUR equivalent.
        """
        return amount * self.fx_to_eur[currency]


def load_vendors(path: Path = VENDORS_PATH) -> list[Vendor]:
    """Load the vendor master data.

    Args:
        path: Location of ``vendors.json``.

    Returns:
        All vendors in file order.
    """
    return [Vendor.from_dict(row) for row in json.loads(path.read_text(encoding="utf-8"))]


def load_policy(path: Path = POLICY_PATH) -> Policy:
    """Load the approval policy.

    Args:
        path: Location of ``approval_policy.json``.

    Returns:
        The parsed policy.
    """
    raw = json.loads(path.read_text(encoding="utf-8"))
    return Policy(
        auto_approve_max_eur=float(raw["auto_approve_max_eur"]),
        manager_max_eur=float(raw["manager_max_eur"]),
        fx_to_eur={code: float(rate) for code, rate in raw["fx_to_eur"].items()},
        required_fields=tuple(raw["required_fields"]),
    )


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class _Draft:
    """Everything about one invoice before it is rendered to text."""

    vendor: Vendor | None
    vendor_name: str
    country: str
    currency: str
    category: str
    invoice_number: str
    invoice_date: date
    received_at: date
    lines: tuple[tuple[_Description, int], ...]
    iban: str | None
    missing: tuple[MissingField, ...] = ()
    fraud_pattern: FraudPattern | None = None
    duplicate_of: int | None = None

    @property
    def total_minor(self) -> int:
        """Invoice total in minor currency units (cents, or yen)."""
        return sum(amount for _, amount in self.lines)


@dataclass
class _Numbering:
    """A vendor's invoice-number scheme and its running sequence."""

    template: str
    next_seq: int

    def issue(self, rng: random.Random, year: int) -> str:
        number = self.template.format(year=year, seq=self.next_seq)
        # Gaps mimic numbers consumed by invoices sent to other customers.
        self.next_seq += rng.randint(1, 3)
        return number


def _decimals(currency: str) -> int:
    return 0 if currency == "JPY" else 2


def _minor_per_unit(currency: str) -> int:
    return 1 if currency == "JPY" else 100


def _to_minor(amount: float, currency: str) -> int:
    return round(amount * _minor_per_unit(currency))


def _from_minor(minor: int, currency: str) -> float:
    return round(minor / _minor_per_unit(currency), 2)


def _fake_iban(rng: random.Random, country: str) -> str:
    letters, digits = _IBAN_LAYOUT[country]
    bban = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(letters))
    bban += "".join(rng.choice("0123456789") for _ in range(digits))
    # ISO 13616 check digits, so the fakes survive a checksum validator.
    numeric = "".join(str(int(ch, 36)) for ch in f"{bban}{country}00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def _new_numbering(rng: random.Random, name: str) -> _Numbering:
    words = [w for w in name.replace("&", " ").split() if w[0].isalpha()]
    initials = "".join(w[0] for w in words[:2]).upper().ljust(2, "X")
    letter = rng.choice("ABCDEFGHKLMRS")
    template = rng.choice(_NUMBER_TEMPLATES).format(letter=letter, initials=initials)
    return _Numbering(template=template, next_seq=rng.randint(1, 900))


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _split_lines(
    rng: random.Random, category: str, total_minor: int
) -> tuple[tuple[_Description, int], ...]:
    count = rng.randint(1, 4) if total_minor >= 400 else 1
    descriptions = rng.sample(_LINE_ITEMS[category], count)
    weights = [rng.uniform(1.0, 4.0) for _ in range(count)]
    scale = total_minor / sum(weights)
    amounts = [math.floor(w * scale) for w in weights[:-1]]
    amounts.append(total_minor - sum(amounts))
    return tuple(zip(descriptions, amounts, strict=True))


class _Planner:
    """Decides, invoice by invoice, what each record is before any text exists."""

    def __init__(self, rng: random.Random, vendors: list[Vendor], policy: Policy, n: int) -> None:
        self.rng = rng
        self.policy = policy
        self.n = n
        self.vendors = vendors
        self.active = [v for v in vendors if v.status == "active"]
        self.drafts: list[_Draft] = []
        self.numbering = {v.vendor_id: _new_numbering(rng, v.name) for v in vendors}
        self.known_names = {name.casefold() for v in vendors for name in (v.name, *v.aliases)}

    def plan(self) -> list[_Draft]:
        while len(self.drafts) < self.n:
            kind = self.rng.choices(list(_KIND_WEIGHTS), weights=list(_KIND_WEIGHTS.values()))[0]
            self.drafts.extend(self._make(kind))
        return self.drafts

    def _make(self, kind: _Kind) -> list[_Draft]:
        if kind == "duplicate":
            duplicate = self._duplicate()
            return [duplicate] if duplicate else [self._normal()]
        if kind == "split":
            return self._split_group() if self.n - len(self.drafts) >= 2 else [self._normal()]
        if kind == "unknown_vendor":
            return [self._unknown_vendor()]
        if kind == "bank_change":
            return [self._bank_change()]
        if kind == "inflated_amount":
            return [self._inflated()]
        return [self._normal()]

    def _received_at(self, offset: int = 0) -> date:
        index = len(self.drafts) + offset
        start = REFERENCE_DATE - timedelta(days=_HISTORY_DAYS)
        return start + timedelta(days=index * _HISTORY_DAYS // self.n)

    def _invoice_date(self, received_at: date) -> date:
        return received_at - timedelta(days=self.rng.randint(0, _MAX_INVOICE_AGE_DAYS))

    def _category(self, vendor: Vendor) -> str:
        if self.rng.random() < _P_OFF_CATEGORY:
            return self.rng.choice(CATEGORIES)
        return vendor.default_category

    def _known(
        self,
        vendor: Vendor,
        total: float,
        *,
        iban: str | None = None,
        invoice_date: date | None = None,
        offset: int = 0,
        fraud_pattern: FraudPattern | None = None,
    ) -> _Draft:
        received_at = self._received_at(offset)
        issued = invoice_date or self._invoice_date(received_at)
        category = self._category(vendor)
        return _Draft(
            vendor=vendor,
            vendor_name=vendor.name,
            country=vendor.country,
            currency=vendor.currency,
            category=category,
            invoice_number=self.numbering[vendor.vendor_id].issue(self.rng, issued.year),
            invoice_date=issued,
            received_at=received_at,
            lines=_split_lines(self.rng, category, _to_minor(total, vendor.currency)),
            iban=iban,
            fraud_pattern=fraud_pattern,
        )

    def _usual_total(self, vendor: Vendor) -> float:
        return _log_uniform(self.rng, vendor.typical_max * 0.02, vendor.typical_max)

    def _normal(self) -> _Draft:
        weights = [_BLOCKED_WEIGHT if v.status == "blocked" else 1.0 for v in self.vendors]
        vendor = self.rng.choices(self.vendors, weights=weights)[0]
        iban = None if self.rng.random() < _P_NO_IBAN else vendor.iban
        draft = self._known(vendor, self._usual_total(vendor), iban=iban)
        if self.rng.random() >= _P_MISSING:
            return draft
        count = 2 if self.rng.random() < _P_TWO_MISSING else 1
        picked = set(self.rng.sample(MISSABLE_FIELDS, count))
        return replace(draft, missing=tuple(f for f in MISSABLE_FIELDS if f in picked))

    def _duplicate(self) -> _Draft | None:
        candidates = [
            i
            for i, d in enumerate(self.drafts)
            if d.duplicate_of is None and d.fraud_pattern is None and not d.missing
        ]
        if not candidates:
            return None
        original = self.rng.choice(candidates[-_DUPLICATE_LOOKBACK:])
        return replace(
            self.drafts[original], received_at=self._received_at(), duplicate_of=original
        )

    def _bank_change(self) -> _Draft:
        vendor = self.rng.choice(self.active)
        country = vendor.country if self.rng.random() < 0.5 else self.rng.choice(list(_IBAN_LAYOUT))
        iban = vendor.iban
        while iban == vendor.iban:
            iban = _fake_iban(self.rng, country)
        return self._known(
            vendor, self._usual_total(vendor), iban=iban, fraud_pattern="bank_change"
        )

    def _inflated(self) -> _Draft:
        vendor = self.rng.choice(self.active)
        total = vendor.typical_max * self.rng.uniform(*_INFLATION_RANGE)
        return self._known(vendor, total, iban=vendor.iban, fraud_pattern="inflated_amount")

    def _split_group(self) -> list[_Draft]:
        vendor = self.rng.choice(self.active)
        size = min(self.rng.choice((2, 3)), self.n - len(self.drafts))
        issued = self._invoice_date(self._received_at())
        rate = self.policy.fx_to_eur[vendor.currency]
        group = []
        for offset in range(size):
            total = _from_minor(
                _to_minor(self.rng.uniform(*_SPLIT_BAND_EUR) / rate, vendor.currency),
                vendor.currency,
            )
            group.append(
                self._known(
                    vendor,
                    total,
                    iban=vendor.iban,
                    invoice_date=issued,
                    offset=offset,
                    fraud_pattern="threshold_splitting",
                )
            )
        return group

    def _unknown_vendor(self) -> _Draft:
        country = self.rng.choice(list(_COUNTRY_CURRENCY))
        name = ""
        while not name or name.casefold() in self.known_names:
            head = self.rng.choice(_UNKNOWN_NAME_HEADS)
            tail = self.rng.choice(_UNKNOWN_NAME_TAILS)
            name = f"{head} {tail} {_LEGAL_FORMS[country]}"
        currency = _COUNTRY_CURRENCY[country]
        category = self.rng.choice(CATEGORIES)
        typical = _CATEGORY_TYPICAL_EUR[category] / self.policy.fx_to_eur[currency]
        received_at = self._received_at()
        issued = self._invoice_date(received_at)
        total_minor = _to_minor(_log_uniform(self.rng, typical * 0.05, typical), currency)
        return _Draft(
            vendor=None,
            vendor_name=name,
            country=country,
            currency=currency,
            category=category,
            invoice_number=_new_numbering(self.rng, name).issue(self.rng, issued.year),
            invoice_date=issued,
            received_at=received_at,
            lines=_split_lines(self.rng, category, total_minor),
            iban=_fake_iban(self.rng, country),
            fraud_pattern="unknown_vendor",
        )


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class _Style:
    """Per-invoice presentation choices."""

    lang: Lang
    date_format: DateFormat
    number_style: NumberStyle
    placement: Placement
    shown_name: str
    group_iban: bool
    reminder: bool
    bank_note: bool


def format_date(value: date, fmt: DateFormat) -> str:
    """Render a date in one of the formats seen on real invoices.

    Args:
        value: The date.
        fmt: Which convention to use.

    Returns:
        E.g. ``2026-09-30``, ``30/09/2026``, ``30.09.2026``, ``Sep 30, 2026``
        or ``30 septembre 2026``.
    """
    if fmt == "dmy_slash":
        return value.strftime("%d/%m/%Y")
    if fmt == "dmy_dot":
        return value.strftime("%d.%m.%Y")
    if fmt == "mdy_en":
        return f"{_EN_MONTHS[value.month - 1]} {value.day}, {value.year}"
    if fmt == "fr_long":
        return f"{value.day} {_FR_MONTHS[value.month - 1]} {value.year}"
    return value.isoformat()


def format_number(minor: int, decimals: int, style: NumberStyle) -> str:
    """Render an amount given in minor units with a regional number style.

    Args:
        minor: Amount in minor units (cents; yen when ``decimals`` is 0).
        decimals: Digits after the decimal mark.
        style: ``us`` 1,234.50 / ``eu`` 1.234,50 / ``space`` 1 234,50 /
            ``ch`` 1'234.50 / ``plain`` 1234.5 (no grouping, trailing zeros dropped).

    Returns:
        The formatted number without any currency marker.
    """
    units, fraction = divmod(minor, 10**decimals)
    grouping, mark = {
        "us": (",", "."),
        "eu": (".", ","),
        "space": (" ", ","),
        "ch": ("'", "."),
        "plain": ("", "."),
    }[style]
    integer = f"{units:,}".replace(",", grouping)
    digits = f"{fraction:0{decimals}d}" if decimals else ""
    if style == "plain":
        digits = digits.rstrip("0")
    return f"{integer}{mark}{digits}" if digits else integer


def format_amount(minor: int, currency: str, style: NumberStyle, placement: Placement) -> str:
    """Render an amount with its currency marker.

    Args:
        minor: Amount in minor units of ``currency``.
        currency: ISO currency code.
        style: Number style, see :func:`format_number`.
        placement: Where the code or symbol goes.

    Returns:
        E.g. ``$1,234.50``, ``1.234,50 EUR``, ``EUR 1234.5`` or ``1 234,50 €``.
    """
    number = format_number(minor, _decimals(currency), style)
    symbol = _CURRENCY_SYMBOL[currency]
    if placement == "code_prefix":
        return f"{currency} {number}"
    if placement == "code_suffix":
        return f"{number} {currency}"
    if placement == "symbol_prefix":
        return f"{symbol} {number}" if symbol.isalpha() else f"{symbol}{number}"
    return f"{number} {symbol}"


def _amount_style(rng: random.Random, lang: Lang, currency: str) -> tuple[NumberStyle, Placement]:
    options: tuple[tuple[NumberStyle, Placement], ...]
    if currency == "JPY":
        options = (("us", "symbol_prefix"), ("plain", "code_prefix"), ("us", "code_suffix"))
    elif currency == "CHF":
        options = (("ch", "code_prefix"), ("us", "code_suffix"), ("eu", "code_suffix"))
    elif lang == "de":
        options = (("eu", "code_suffix"), ("eu", "symbol_suffix"), ("plain", "code_prefix"))
    elif lang == "fr":
        options = (("space", "symbol_suffix"), ("space", "code_suffix"), ("eu", "symbol_suffix"))
    else:
        options = (("us", "symbol_prefix"), ("us", "code_suffix"), ("plain", "code_prefix"))
    return rng.choice(options)


def _pick_style(rng: random.Random, draft: _Draft) -> _Style:
    lang = rng.choice(_COUNTRY_LANGS.get(draft.country, ("en",)))
    number_style, placement = _amount_style(rng, lang, draft.currency)
    names = [draft.vendor_name, draft.vendor_name.upper()]
    if draft.vendor:
        names.extend(draft.vendor.aliases)
    return _Style(
        lang=lang,
        date_format=rng.choice(_DATE_FORMATS[lang]),
        number_style=number_style,
        placement=placement,
        shown_name=rng.choice(names),
        group_iban=rng.random() < 0.5,
        reminder=draft.duplicate_of is not None and rng.random() < _P_REMINDER,
        bank_note=draft.fraud_pattern == "bank_change" and rng.random() < 0.5,
    )


def _label(rng: random.Random, style: _Style, key: str) -> str:
    return rng.choice(_LABELS[style.lang][key])


def _field(rng: random.Random, style: _Style, key: str, value: str) -> str:
    # French typography puts a space before the colon.
    separator = " : " if style.lang == "fr" else ": "
    return f"{_label(rng, style, key)}{separator}{value}"


def _iban_text(iban: str, grouped: bool) -> str:
    if not grouped:
        return iban
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def _amount(draft: _Draft, style: _Style, minor: int) -> str:
    return format_amount(minor, draft.currency, style.number_style, style.placement)


def _document_lines(rng: random.Random, draft: _Draft, style: _Style) -> list[str]:
    """Invoice body shared by the email, plain-text and PDF renderings."""
    header: list[str] = []
    if "invoice_number" not in draft.missing:
        header.append(_field(rng, style, "number", draft.invoice_number))
    if "invoice_date" not in draft.missing:
        header.append(
            _field(rng, style, "date", format_date(draft.invoice_date, style.date_format))
        )
    rng.shuffle(header)
    lines = [*header, _field(rng, style, "bill_to", _BUYER), "", _label(rng, style, "items")]
    show_amounts = "total" not in draft.missing
    for item, minor in draft.lines:
        description = item[_LANG_INDEX[style.lang]]
        if show_amounts:
            lines.append(f"  {description:<36}{_amount(draft, style, minor):>18}")
        else:
            lines.append(f"  - {description}")
    lines.append("")
    if show_amounts:
        lines.append(_field(rng, style, "total", _amount(draft, style, draft.total_minor)))
    if not show_amounts or rng.random() < 0.3:
        # Without a total line nothing else would carry the currency.
        lines.append(_field(rng, style, "currency", draft.currency))
    if draft.iban:
        if style.bank_note:
            lines.append(_label(rng, style, "bank_note"))
        lines.append(_field(rng, style, "iban", _iban_text(draft.iban, style.group_iban)))
    lines.append(_label(rng, style, "terms"))
    return lines


def _mail_domain(draft: _Draft, rng: random.Random) -> str:
    ascii_name = unicodedata.normalize("NFKD", draft.vendor_name).encode("ascii", "ignore")
    words = [w for w in ascii_name.decode().lower().split() if w.isalpha()]
    slug = "-".join(words[:2]) or "billing"
    if draft.fraud_pattern == "bank_change" and rng.random() < 0.5:
        # Look-alike sender domains are the usual vehicle for bank-change fraud.
        slug += rng.choice(("-payments", "-invoicing", "-finance"))
    return f"{slug}.{_COUNTRY_TLD[draft.country]}"


def _render_email(rng: random.Random, draft: _Draft, style: _Style) -> str:
    if "invoice_number" in draft.missing:
        subject = _label(rng, style, "subject_nonum").format(name=style.shown_name)
    else:
        subject = _label(rng, style, "subject").format(number=draft.invoice_number)
    if style.reminder:
        subject = _label(rng, style, "reminder") + subject
    sent = draft.received_at
    mailbox = rng.choice(("billing", "invoices", "accounting", "noreply"))
    headers = [
        f"From: {style.shown_name} <{mailbox}@{_mail_domain(draft, rng)}>",
        f"To: {_AP_MAILBOX}",
        f"Subject: {subject}",
        f"Date: {_EN_WEEKDAYS[sent.weekday()]}, {sent.day:02d} {_EN_MONTHS[sent.month - 1]} "
        f"{sent.year} {rng.randint(7, 18):02d}:{rng.randint(0, 59):02d}:00 +0000",
    ]
    body = [
        _label(rng, style, "greeting"),
        "",
        _label(rng, style, "intro"),
        "",
        *_document_lines(rng, draft, style),
        "",
        _label(rng, style, "closing"),
        style.shown_name,
    ]
    return "\n".join([*headers, "", *body])


def _render_plain(rng: random.Random, draft: _Draft, style: _Style) -> str:
    return "\n".join(_plain_lines(rng, draft, style))


def _plain_lines(rng: random.Random, draft: _Draft, style: _Style) -> list[str]:
    title = _label(rng, style, "title")
    return [style.shown_name, "", title, "", *_document_lines(rng, draft, style)]


def _render_pdf(rng: random.Random, draft: _Draft, style: _Style) -> str:
    """Plain layout run through the damage a PDF-to-text extractor does."""
    out: list[str] = []
    for line in _plain_lines(rng, draft, style):
        if not line.strip():
            out.extend([""] * rng.randint(0, 2))
            continue
        words = line.split()
        text = "".join(word + " " * rng.choice((1, 1, 2, 3, 6)) for word in words).rstrip()
        if len(words) > 1 and rng.random() < 0.3:
            cut = rng.randint(1, len(words) - 1)
            head, tail = " ".join(words[:cut]), " ".join(words[cut:])
            out.extend([head, " " * rng.randint(0, 12) + tail])
        else:
            out.append(" " * rng.randint(0, 8) + text + " " * rng.randint(0, 3))
    out.extend(["", " " * rng.randint(20, 40) + _label(rng, style, "page"), "\f"])
    return "\n".join(out)


def _render_csv_row(rng: random.Random, draft: _Draft, style: _Style) -> str:
    show_total = "total" not in draft.missing
    decimals = _decimals(draft.currency)
    descriptions = [item[_LANG_INDEX[style.lang]] for item, _ in draft.lines]
    amounts = [format_number(minor, decimals, style.number_style) for _, minor in draft.lines]
    items = " | ".join(
        f"{desc} {amount}" if show_total else desc
        for desc, amount in zip(descriptions, amounts, strict=True)
    )
    values: dict[str, str | None] = {
        "vendor": style.shown_name,
        "invoice_no": None if "invoice_number" in draft.missing else draft.invoice_number,
        "invoice_date": None
        if "invoice_date" in draft.missing
        else format_date(draft.invoice_date, style.date_format),
        "currency": draft.currency,
        "total": format_number(draft.total_minor, decimals, style.number_style)
        if show_total
        else None,
        "iban": draft.iban,
        "items": items,
    }
    if rng.random() < 0.5:
        return ";".join(f"{key}={value}" for key, value in values.items() if value is not None)
    # Headerless export: position is the only label the reader gets.
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=rng.choice((",", ";")), lineterminator="")
    writer.writerow(value or "" for value in values.values())
    return buffer.getvalue()


_RENDERERS: Final = {
    "email": _render_email,
    "csv_row": _render_csv_row,
    "plain_text": _render_plain,
    "pdf_text": _render_pdf,
}
_FORMAT_WEIGHTS: Final = (0.3, 0.2, 0.25, 0.25)


# --------------------------------------------------------------------------- ground truth


def _decide(truth: dict[str, Any], vendor: Vendor | None, policy: Policy) -> tuple[Decision, str]:
    if truth["is_duplicate"]:
        return "reject", f"duplicate of {truth['duplicate_of']}"
    if vendor is not None and vendor.status == "blocked":
        return "reject", f"vendor {vendor.vendor_id} is blocked"
    if truth["missing_fields"]:
        return "human_review", "missing required fields: " + ", ".join(truth["missing_fields"])
    if truth["fraud"]:
        return "human_review", f"suspected fraud: {truth['fraud_pattern']}"
    eur = policy.to_eur(truth["total"], truth["currency"])
    if eur > policy.manager_max_eur:
        return "human_review", f"EUR {eur:,.2f} exceeds manager limit {policy.manager_max_eur:g}"
    if eur > policy.auto_approve_max_eur:
        limit = policy.auto_approve_max_eur
        return "manager_review", f"EUR {eur:,.2f} exceeds auto-approve limit {limit:g}"
    return "approve", f"EUR {eur:,.2f} within auto-approve limit {policy.auto_approve_max_eur:g}"


def _record_id(index: int) -> str:
    return f"inv-{index + 1:06d}"


def _truth(draft: _Draft, policy: Policy) -> dict[str, Any]:
    missing = draft.missing
    truth: dict[str, Any] = {
        "vendor_id": draft.vendor.vendor_id if draft.vendor else None,
        "vendor_name": draft.vendor_name,
        "invoice_number": None if "invoice_number" in missing else draft.invoice_number,
        "invoice_date": None if "invoice_date" in missing else draft.invoice_date.isoformat(),
        "currency": draft.currency,
        "total": None if "total" in missing else _from_minor(draft.total_minor, draft.currency),
        "iban": draft.iban,
        "category": draft.category,
        "is_duplicate": draft.duplicate_of is not None,
        "duplicate_of": None if draft.duplicate_of is None else _record_id(draft.duplicate_of),
        "fraud": draft.fraud_pattern is not None,
        "fraud_pattern": draft.fraud_pattern,
        "missing_fields": list(missing),
    }
    decision, reason = _decide(truth, draft.vendor, policy)
    truth["expected_decision"] = decision
    truth["decision_reason"] = reason
    return truth


def generate(
    n: int,
    seed: int,
    *,
    vendors: list[Vendor] | None = None,
    policy: Policy | None = None,
) -> list[dict[str, Any]]:
    """Generate ``n`` synthetic invoices with ground truth.

    Args:
        n: Number of records, at least 1.
        seed: Seed for the private random generator; same seed, same output.
        vendors: Vendor master data; defaults to ``memory/vendors.json``.
        policy: Approval policy; defaults to ``memory/approval_policy.json``.

    Returns:
        Records ``{"id", "source_format", "received_at", "raw", "truth"}`` in
        arrival order (``received_at`` never decreases).

    Raises:
        ValueError: If ``n`` is smaller than 1.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    vendors = load_vendors() if vendors is None else vendors
    policy = load_policy() if policy is None else policy
    rng = random.Random(seed)
    drafts = _Planner(rng, vendors, policy, n).plan()
    records = []
    for index, draft in enumerate(drafts):
        source_format = rng.choices(SOURCE_FORMATS, weights=_FORMAT_WEIGHTS)[0]
        raw = _RENDERERS[source_format](rng, draft, _pick_style(rng, draft))
        records.append(
            {
                "id": _record_id(index),
                "source_format": source_format,
                "received_at": draft.received_at.isoformat(),
                "raw": raw,
                "truth": _truth(draft, policy),
            }
        )
    return records


# --------------------------------------------------------------------------- CLI


class _UsageError(Exception):
    """Raised instead of argparse's print-usage-and-exit."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def _build_parser() -> _Parser:
    parser = _Parser(
        prog="python -m graphs.invoices_data",
        description="Write seeded synthetic invoices with ground truth as JSONL to stdout.",
    )
    parser.add_argument(
        "--n", type=_positive_int, default=40, help="number of invoices (default: 40)"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    return parser


def _write_jsonl(records: list[dict[str, Any]], stream: TextIO) -> None:
    for record in records:
        stream.write(json.dumps(record, ensure_ascii=False) + "\n")
    stream.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point.

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns:
        0 on success, 2 on a usage error (reported as one line on stderr).
    """
    try:
        args = _build_parser().parse_args(argv)
    except _UsageError as exc:
        print(f"invoices_data: error: {exc}", file=sys.stderr)
        return 2
    if isinstance(sys.stdout, io.TextIOWrapper):
        # Raw text carries €, £, ¥ and accents; don't depend on the locale.
        sys.stdout.reconfigure(encoding="utf-8")
    try:
        _write_jsonl(generate(args.n, args.seed), sys.stdout)
    except BrokenPipeError:
        # The reader (e.g. `head`) left early; stop the interpreter's final flush from failing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
