"""The invoice ledger: what this batch has already seen (duplicates, split invoices).

Exposed to agents only as tools, so every lookup goes through the tool gateway.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path

from langchain_core.tools import tool

import agentmesh as am

_lock = threading.Lock()
_conns: dict[Path, sqlite3.Connection] = {}


def _db() -> sqlite3.Connection:
    path = am.Settings.from_env().data_dir.resolve() / "invoice_ledger.sqlite"
    with _lock:
        if path not in _conns:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            conn.execute(
                "CREATE TABLE IF NOT EXISTS seen (batch TEXT, invoice_id TEXT, vendor TEXT,"
                " number TEXT, total REAL, day TEXT, total_eur REAL,"
                " PRIMARY KEY (batch, invoice_id))"
            )
            _conns[path] = conn
        return _conns[path]


def _key(text: str | None) -> str:
    return re.sub(r"[^a-z0-9]", "", (text or "").lower())


@tool
def ledger_check(
    batch: str,
    invoice_id: str,
    vendor: str,
    invoice_number: str | None,
    total: float | None,
    invoice_date: str | None,
    total_eur: float | None,
) -> str | None:
    """Record an invoice in the batch ledger; return the id of an earlier copy, if any."""
    conn = _db()
    with _lock:
        row = conn.execute(
            "SELECT invoice_id FROM seen WHERE batch=? AND vendor=? AND number=? AND total IS ?"
            " AND invoice_id<>? ORDER BY invoice_id LIMIT 1",
            (batch, _key(vendor), _key(invoice_number), total, invoice_id),
        ).fetchone()
        if invoice_number is None:
            row = None
        conn.execute(
            "INSERT OR REPLACE INTO seen VALUES (?,?,?,?,?,?,?)",
            (batch, invoice_id, _key(vendor), _key(invoice_number), total, invoice_date, total_eur),
        )
    return str(row[0]) if row else None


@tool
def ledger_same_day(batch: str, invoice_id: str, vendor: str, invoice_date: str) -> list[float]:
    """EUR totals of the vendor's other invoices dated the same day in this batch."""
    conn = _db()
    with _lock:
        rows = conn.execute(
            "SELECT total_eur FROM seen WHERE batch=? AND vendor=? AND day=? AND invoice_id<>?"
            " AND total_eur IS NOT NULL",
            (batch, _key(vendor), invoice_date, invoice_id),
        ).fetchall()
    return [float(r[0]) for r in rows]


TOOLS = {"ledger_check": ledger_check, "ledger_same_day": ledger_same_day}
