"""Deterministic, rule-based invoice extraction and categorization (no model, no network).

Offline fallbacks of the model-layer invoice agents for emails, CSV rows, plain text and
PDF-extracted text in English, German and French. Fields an invoice does not state come
back as ``None``; nothing is guessed.
"""

from __future__ import annotations

import csv
import difflib
import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, TypedDict

PROJECT_ROOT: Final = Path(__file__).resolve().parents[1]
CURRENCIES: Final[tuple[str, ...]] = ("EUR", "USD", "GBP", "CHF", "JPY")


class LineItem(TypedDict):
    """One invoice line; ``amount`` is 0.0 when the invoice prints no line amounts."""

    description: str
    amount: float


class Extraction(TypedDict):
    """Fields recovered from one raw invoice (``None`` where the invoice lacks them)."""

    vendor_name: str | None
    invoice_number: str | None
    invoice_date: str | None
    currency: str | None
    total: float | None
    iban: str | None
    line_items: list[LineItem]


_SYMBOLS: Final = {"€": "EUR", "$": "USD", "£": "GBP", "¥": "JPY"}
_CUR: Final = r"(?:\b(?:EUR|USD|GBP|CHF|JPY)\b|[€$£¥])"
_NUM: Final = (
    r"(?<![\d.,])(?:\d{1,3}(?:[,.' \u2019]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?)(?!\d)"
)
_AMOUNT: Final = re.compile(rf"(?:(?P<pre>{_CUR}) ?)?(?P<num>{_NUM})(?: ?(?P<suf>{_CUR}))?")
_NUMBER_F: Final = re.compile(
    r"(?:Invoice\s?(?:number|No\.?|Nr\.?|#)|Rechnungs?\s?-?(?:nummer|Nr\.?)|Facture\s?N[°o]\.?"
    r"|N[°o]\.?\s?de\s?facture|Num[ée]ro\s?de\s?facture)\s?:\s?",
    re.I,
)
_DATE_F: Final = re.compile(
    r"(?<!due )\b(?:Invoice\s?date|Date\s?de\s?facture|Rechnungsdatum|Datum|Date)\s?:\s?", re.I
)
_TOTAL_F: Final = re.compile(
    r"(?<![\w-])(?:Total\s?(?:due|TTC|amount)?|Amount\s?due|Montant\s?(?:TTC|total|d[ûu])"
    r"|Gesamtbetrag|Rechnungsbetrag|Endbetrag|Summe|Grand\s?total)\s?:\s?",
    re.I,
)
_CURRENCY_F: Final = re.compile(r"\b(?:Currency|W[äa]hrung|Devise)\s?:\s?", re.I)
_IBAN_F: Final = re.compile(
    r"\b(?:IBAN|Bank\saccount(?:\s\(IBAN\))?|Bankverbindung|Coordonn[ée]es\sbancaires)\s?:\s?", re.I
)
_STOP_F: Final = re.compile("|".join(f.pattern for f in (_TOTAL_F, _CURRENCY_F, _IBAN_F)), re.I)
_ITEMS_HEADER: Final = re.compile(
    r"\b(?:Description|Beschreibung|Leistung(?:en)?|Bezeichnung|D[ée]signation|Libell[ée])\b"
)
_IBAN_RUN: Final = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]+\b)+")
_TITLES: Final = frozenset({"invoice", "tax invoice", "rechnung", "facture", "bill"})
_CSV_COLUMNS: Final = ("vendor", "invoice_no", "invoice_date", "currency", "total", "iban", "items")
_CSV_KEYS: Final = {"vendor_name": "vendor", "invoice_number": "invoice_no", "date": "invoice_date"}
_MONTHS: Final = {
    name: index + 1
    for names in (
        "jan feb mar apr may jun jul aug sep oct nov dec",
        "january february march april may june july august september october november december",
        "janvier fevrier mars avril mai juin juillet aout septembre octobre novembre decembre",
        "januar februar marz april mai juni juli august september oktober november dezember",
    )
    for index, name in enumerate(names.split())
} | {"sept": 9, "maerz": 3}
_DATE_PATTERNS: Final = (  # (pattern over folded text, order of the year/month/day groups)
    (re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})\b"), "ymd"),
    (re.compile(r"(\d{1,2})[./-](\d{1,2})[./-](\d{4})\b"), "dmy"),
    (re.compile(r"([a-z]{3,9})\.? (\d{1,2}),? (\d{4})\b"), "mdy"),
    (re.compile(r"(\d{1,2})\.? ([a-z]{3,9})\.? (\d{4})\b"), "dmy"),
)
# Keyword stems per category, matched on accent-free casefolded text (EN / DE / FR).
_KEYWORDS: Final = {
    "software": r"licen[cs]|lizenz|subscription|abonnement|saas|software|logiciel|\bseats?\b"
    r"|benutzer|utilisateur|support|wartung|maintenance|hosting|hebergement|\bcloud",
    "hardware": r"laptop|\bnotebook\b|ordinateur|docking|station d.accueil|monitor\b|ecran"
    r"|server|serveur|keyboard|\bmouse|tastatur|\bmaus\b|clavier|souris|hardware",
    "travel": r"flight|\bflug|\bvol\b|hotel|\bnights?\b|nachte|\bnuits?\b|\btrain\b|bahn"
    r"|billet|rental car|mietwagen|voiture|travel|reise|voyage|airfare|taxi",
    "office_supplies": r"paper|papier|\breams?\b|ramette|toner|cartridge|kartusche|cartouche"
    r"|\bpens?\b|stifte|\bstylos?\b|notebooks|notizbu|carnet|\bdesk|schreibtisch|organi[sz]e"
    r"|office supplies|buromaterial|fournitures|stationery|stapler",
    "consulting": r"consult|beratung|conseil|advisory|retainer|workshop|atelier|moderation"
    r"|project management|projektmanagement|gestion de projet|\bhours\b|stunden|heures",
    "utilities": r"electricity|\bstrom\b|electricite|\bwater\b|wasser|\beau\b|\bgas\b|\bgaz\b"
    r"|internet|broadband|waste|\bmull|dechets|utilit|energ|heating|heizung|chauffage",
    "marketing": r"\bads?\b|advertis|campaign|kampagne|campagne|publicit|\bwerb|social.media"
    r"|reseaux sociaux|trade fair|\bmesse|\bsalon\b|\bbooth\b|\bstand\b|brochure|broschur"
    r"|marketing|flyer",
    "logistics": r"freight|fracht|\bfret\b|courier|kurier|delivery|livraison|zustellung"
    r"|warehous|lagerung|entreposage|customs|\bzoll|dedouanement|shipping|shipment"
    r"|spedition|transport|logisti",
}
CATEGORIES: Final[tuple[str, ...]] = tuple(_KEYWORDS)
_KEYWORD_RES: Final = {cat: re.compile(pattern) for cat, pattern in _KEYWORDS.items()}
_PRIOR_WEIGHT: Final = 0.5
_LEGAL_FORMS: Final = frozenset(
    re.findall(
        r"\w+", "gmbh ag kg sa sas sarl bv nv inc llc llp ltd plc co kk sl srl spa b v k l s r p a"
    )
)


@lru_cache(maxsize=16)
def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def load_vendors(path: Path | None = None) -> list[dict[str, Any]]:
    """Load the vendor master data (cached; treat the result as read-only).

    Args:
        path: ``vendors.json``; defaults to ``<project root>/memory/vendors.json``.

    Returns:
        The vendor records in file order.
    """
    rows: list[dict[str, Any]] = _read_json(path or PROJECT_ROOT / "memory" / "vendors.json")
    return rows


def load_policy(path: Path | None = None) -> dict[str, Any]:
    """Load the approval policy (cached; treat the result as read-only).

    Args:
        path: ``approval_policy.json``; defaults to the one in ``<project root>/memory``.

    Returns:
        The policy object, including ``fx_to_eur``.
    """
    policy: dict[str, Any] = _read_json(path or PROJECT_ROOT / "memory" / "approval_policy.json")
    return policy


def normalize(raw: str) -> str:
    """Tidy raw invoice text while keeping its line structure.

    Args:
        raw: Text as received (email, CSV row, plain text or PDF extraction).

    Returns:
        The text without form feeds or CRs, each line stripped with runs of spaces
        collapsed, and runs of blank lines reduced to one.
    """
    text = re.sub(r"\r\n?|\f", "\n", raw).replace("\u00a0", " ").replace("\u202f", " ")
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return decomposed.encode("ascii", "ignore").decode("ascii")


def _number(text: str) -> float:
    """A final ``.``/``,`` with 1-2 digits after it is the decimal mark; others group."""
    compact = re.sub(r"[\s'\u2019]", "", text)
    cut = max(compact.rfind("."), compact.rfind(","))
    whole, fraction = compact, "0"
    if cut >= 0 and len(compact) - cut - 1 in (1, 2):
        whole, fraction = compact[:cut], compact[cut + 1 :]
    return float(f"{re.sub(r'[.,]', '', whole)}.{fraction}")


def _currency(code: str | None) -> str | None:
    code = _SYMBOLS.get(code or "", (code or "").strip().upper())
    return code if code in CURRENCIES else None


def parse_amount(text: str) -> tuple[float, str | None] | None:
    """Parse the first amount in ``text``, e.g. ``$1,234.50``, ``1.234,50 EUR``, ``¥123,400``.

    Args:
        text: Text containing an amount in US, EU, space- or apostrophe-grouped style.

    Returns:
        ``(value, ISO currency or None)``, or ``None`` if there is no amount.
    """
    match = _AMOUNT.search(text)
    return (_number(match["num"]), _currency(match["pre"] or match["suf"])) if match else None


def parse_date(text: str) -> str | None:
    """Parse the date that starts ``text`` into ISO ``YYYY-MM-DD``.

    Args:
        text: E.g. ``2026-09-30``, ``30/09/2026``, ``30.09.2026``, ``Sep 30, 2026`` or
            ``30 septembre 2026`` (slashed dates are day-first unless that is invalid).

    Returns:
        The ISO date, or ``None`` if no valid date starts ``text``.
    """
    folded = _fold(text.strip())
    for pattern, order in _DATE_PATTERNS:
        match = pattern.match(folded)
        if match is None:
            continue
        parts = dict(zip(order, match.groups(), strict=True))
        month = int(parts["m"]) if parts["m"].isdigit() else _MONTHS.get(parts["m"], 0)
        candidates = [
            (int(parts["y"]), month, int(parts["d"])),
            (int(parts["y"]), int(parts["d"]), month),
        ]
        for year, month_, day in candidates[: 2 if match[0].count("/") == 2 else 1]:
            try:
                return date(year, month_, day).isoformat()
            except ValueError:
                continue
    return None


def _find_iban(text: str) -> str | None:
    """Longest checksum-valid IBAN in ``text``; else the unvalidated one after a label."""
    for match in _IBAN_RUN.finditer(text):
        compact = match.group().replace(" ", "")
        for end in range(min(len(compact), 34), 14, -1):
            head, tail = compact[:4], compact[4:end]
            if int("".join(str(int(ch, 36)) for ch in tail + head)) % 97 == 1:
                return compact[:end]
    label = _IBAN_F.search(text)
    run = _IBAN_RUN.match(text, label.end()) if label else None
    compact = run.group().replace(" ", "") if run else ""
    return compact if 15 <= len(compact) <= 34 else None


def _items(text: str) -> list[LineItem]:
    """Items after the items header: ``desc AMOUNT ...`` (marker required), else bare lines."""
    header = _ITEMS_HEADER.search(text)
    stop = _STOP_F.search(text, header.end()) if header else None
    lines = text[header.end() : stop.start() if stop else None] if header else ""
    region = " ".join(lines.split())  # PDF extraction breaks lines anywhere between words
    items: list[LineItem] = []
    start = 0
    for match in _AMOUNT.finditer(region):
        if not (match["pre"] or match["suf"]):
            continue  # a bare number inside a description, e.g. "hotel (2 nights)"
        description = region[start : match.start()].strip(" -|:")
        if description:
            items.append({"description": description, "amount": _number(match["num"])})
        start = match.end()
    bullet = r"(?:^|\s)[-*•]\s"
    parts = re.split(bullet, region) if re.match(bullet, region) else lines.split("\n")
    return items or [{"description": p.strip(), "amount": 0.0} for p in parts if p.strip()]


def _parse_id(text: str) -> str | None:
    match = re.match(r"[^\W_][\w\-/.]*", text)
    return match[0].rstrip(".") if match and re.search(r"\d", match[0]) else None


def _labeled(flat: str, label: re.Pattern[str], parse: Callable[[str], str | None]) -> str | None:
    values = (parse(flat[m.end() : m.end() + 40]) for m in label.finditer(flat))
    return next((value for value in values if value), None)


def _document(body: str, vendor_name: str | None) -> Extraction:
    flat = " ".join(body.split())
    total_label = _TOTAL_F.search(flat)
    total = _AMOUNT.match(flat, total_label.end()) if total_label else None
    markers = [m["pre"] or m["suf"] for m in [total, *_AMOUNT.finditer(flat)] if m]
    currencies = [
        _labeled(flat, _CURRENCY_F, lambda text: _currency(text.split(" ")[0])),
        *map(_currency, markers),
    ]
    return {
        "vendor_name": vendor_name,
        "invoice_number": _labeled(flat, _NUMBER_F, _parse_id),
        "invoice_date": _labeled(flat, _DATE_F, parse_date),
        "currency": next((code for code in currencies if code), None),
        "total": _number(total["num"]) if total else None,
        "iban": _find_iban(flat),
        "line_items": _items(body),
    }


def _csv(line: str) -> Extraction:
    fields: dict[str, str]
    if re.match(r"\s*\w+\s*=", line):  # key=value;key=value
        pairs = (part.partition("=") for part in line.split(";"))
        keyed = (
            (_CSV_KEYS.get(k.strip().casefold(), k.strip().casefold()), v) for k, _, v in pairs
        )
        fields = {key: value.strip() for key, value in keyed if key in _CSV_COLUMNS}
    else:  # headerless export: the column position is the only label
        row = next(csv.reader([line], delimiter=";"))
        if len(row) < len(_CSV_COLUMNS):
            row = next(csv.reader([line], delimiter=","))
        fields = dict(zip(_CSV_COLUMNS, (cell.strip() for cell in row), strict=False))
    total = parse_amount(fields.get("total", ""))
    iban = re.sub(r"\s", "", fields.get("iban", "")).upper()
    items: list[LineItem] = []
    for part in filter(None, (p.strip() for p in fields.get("items", "").split("|"))):
        priced = re.fullmatch(rf"(.*?)\s+({_NUM})", part)
        description, amount = (priced[1], _number(priced[2])) if priced else (part, 0.0)
        items.append({"description": description, "amount": amount})
    return {
        "vendor_name": fields.get("vendor") or None,
        "invoice_number": fields.get("invoice_no") or None,
        "invoice_date": parse_date(fields.get("invoice_date", "")),
        "currency": _currency(fields.get("currency")) or (total[1] if total else None),
        "total": total[0] if total else None,
        "iban": iban if 15 <= len(iban) <= 34 else None,
        "line_items": items,
    }


def extract(raw: str) -> Extraction:
    """Extract invoice fields from raw text in any supported format.

    Args:
        raw: An email, a CSV row (``key=value;`` or positional ``,``/``;``), plain text,
            or PDF-extracted text, in English, German or French.

    Returns:
        ``vendor_name`` as printed, ``invoice_number``, ``invoice_date`` (ISO),
        ``currency`` (ISO), ``total``, ``iban`` (compact, upper case) and ``line_items``.
        Fields the invoice does not state are ``None``.
    """
    text = normalize(raw)
    if "\n" not in text and re.search(r"[;,]", text):
        return _csv(text)
    lines = text.split("\n")
    if re.match(r"(?i)(?:from|to|subject|date):", text):  # email: From display name, else signature
        headers, _, body = text.partition("\n\n")
        sender = re.search(r"(?im)^from:\s*\"?([^\"<\n]*?)\"?\s*<", headers)
        last = body.rstrip().rsplit("\n", 1)[-1]
        signature = last if ":" not in last else ""
        return _document(body, (sender[1] if sender else "") or signature or None)
    titles = [i for i, line in enumerate(lines) if _fold(line).strip(" :") in _TITLES]
    head = " ".join(line for line in lines[: titles[0]] if line) if titles else lines[0]
    return _document(text, head or None)  # the letterhead above the INVOICE title


def _keys(name: str) -> tuple[str, str]:
    """Comparison keys: all name tokens, and without trailing legal forms."""
    tokens = re.findall(r"[a-z0-9]+", _fold(name.replace("&", " and ")))
    full = "".join(tokens)
    while len(tokens) > 1 and tokens[-1] in _LEGAL_FORMS:
        tokens.pop()
    return full, "".join(tokens)


@lru_cache(maxsize=1)
def _vendor_keys() -> tuple[dict[str, int], dict[str, int]]:
    full: dict[str, int] = {}
    core: dict[str, int] = {}
    for index, vendor in enumerate(load_vendors()):
        for name in (vendor["name"], *vendor.get("aliases", ())):
            full_key, core_key = _keys(name)
            full.setdefault(full_key, index)
            core.setdefault(core_key, index)
    return full, core


def match_vendor(vendor_name: str | None, raw: str) -> dict[str, Any] | None:
    """Find the master-data record of an invoice's vendor.

    Names and aliases match ignoring case, accents, punctuation, spacing and trailing legal
    forms, then by a strict fuzzy match; failing that, by the invoice IBAN equal to a
    master IBAN, or (only when no name was extracted) by a known name printed in ``raw``.

    Args:
        vendor_name: The name as printed on the invoice, if extracted.
        raw: The raw invoice text.

    Returns:
        The ``vendors.json`` record, or ``None`` for a vendor not in the master data.
    """
    vendors = load_vendors()
    full, core = _vendor_keys()
    if vendor_name:
        full_key, core_key = _keys(vendor_name)
        close = difflib.get_close_matches(core_key, core, n=1, cutoff=0.9)
        if full_key in full or close:
            return vendors[full[full_key] if full_key in full else core[close[0]]]
    iban = _find_iban(" ".join(raw.split()))
    matches = [vendor for vendor in vendors if iban and vendor.get("iban") == iban]
    if vendor_name is None and not matches:
        text = " ".join(re.findall(r"[a-z0-9]+", _fold(raw)))
        names = ((n, v) for v in vendors for n in (v["name"], *v.get("aliases", ())))
        spelled = ((" ".join(re.findall(r"[a-z0-9]+", _fold(n))), v) for n, v in names)
        hits = sorted(
            (-len(k), i, v) for i, (k, v) in enumerate(spelled) if f" {k} " in f" {text} "
        )
        matches = [hit[2] for hit in hits]
    return matches[0] if matches else None


def _keyword_scores(texts: Sequence[str], weight: float = 1.0) -> dict[str, float]:
    scores = dict.fromkeys(CATEGORIES, 0.0)
    for text in texts:
        for category, pattern in _KEYWORD_RES.items():
            scores[category] += weight * len(pattern.findall(_fold(text)))
    return scores


def categorize(
    raw: str, line_items: Sequence[Mapping[str, Any]], vendor: Mapping[str, Any] | None
) -> tuple[str, float]:
    """Categorize spend from EN/DE/FR keywords in the line items, with a vendor prior.

    Each keyword hit in an item description scores 1 (the raw text at half weight when
    items say nothing); the vendor's ``default_category`` adds 0.5, so it decides only
    when the items are silent or tied.

    Args:
        raw: The raw invoice text.
        line_items: Extracted items; their ``description`` is used.
        vendor: The matched ``vendors.json`` record, if any.

    Returns:
        ``(category, confidence)``: the winner's share of the evidence, discounted when
        evidence is thin; confidence 0.0 means there was no evidence at all.
    """
    scores = _keyword_scores([str(item.get("description", "")) for item in line_items])
    if not any(scores.values()):
        scores = _keyword_scores([raw], weight=0.5)
    prior = vendor.get("default_category") if vendor else None
    if prior in scores:
        scores[str(prior)] += _PRIOR_WEIGHT
    evidence = sum(scores.values())
    best = max(CATEGORIES, key=lambda cat: (scores[cat], cat == prior))
    if evidence == 0:
        return "consulting", 0.0
    strength = scores[best] / (scores[best] + _PRIOR_WEIGHT)
    return best, round(scores[best] / evidence * strength, 2)


def to_eur(total: float, currency: str) -> float:
    """Convert an amount to EUR with the policy's fixed rates.

    Args:
        total: Amount in ``currency``.
        currency: ISO code present in the policy's ``fx_to_eur``.

    Returns:
        The EUR amount rounded to cents.

    Raises:
        ValueError: If the policy has no rate for ``currency``.
    """
    rates: Mapping[str, float] = load_policy()["fx_to_eur"]
    if currency not in rates:
        raise ValueError(f"no EUR rate for currency {currency!r}")
    return round(total * float(rates[currency]), 2)
