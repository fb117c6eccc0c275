"""Vendor policies the compliance check reads from external memory, freshness enforced.

A vendor's policy is its entry in the ``vendor_risk`` knowledge sources (the vendor
risk register in ``memory/sources``), retrieved through ``agentmesh.memory`` with the
freshness rules of ``memory/policy.toml``. A stale copy is never used: the store
excludes it from the query, and :func:`vendor_policy` reports which source was left out
and how old it is, so the invoice goes to a human instead of being cleared on an
outdated register.

The knowledge sources are ingested once per process, on first use, into an in-memory
store with the hashing embedder (offline, no model download); lookups are cached per
vendor for a few minutes so a large batch pays for about one retrieval per vendor.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from agentmesh.memory import ExternalMemory, HashingEmbedder, InMemoryStore, MemoryPolicy, Retrieved
from graphs.invoice_rules import PROJECT_ROOT

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "POLICY_DATA_TYPE",
    "VendorPolicy",
    "build_knowledge",
    "knowledge",
    "use_knowledge",
    "vendor_policy",
]

POLICY_DATA_TYPE: Final = "vendor_risk"
SOURCES: Final = PROJECT_ROOT / "memory" / "sources"
POLICY_FILE: Final = PROJECT_ROOT / "memory" / "policy.toml"
_CACHE_TTL_S: Final = 300.0

_lock = threading.Lock()
_memory: ExternalMemory | None = None
_clock: Callable[[], float] = time.time
_cache: dict[str, tuple[float, VendorPolicy]] = {}


@dataclass(frozen=True, kw_only=True)
class VendorPolicy:
    """What fresh knowledge says about one vendor.

    Attributes:
        vendor_id: The vendor.
        source: The id of the fresh knowledge item that names the vendor, if any.
        text: That item's text.
        stale: One report per stale policy source that was not used, e.g.
            ``"stale vendor policy memory/sources/vendor_risk_register.md
            (age 45d > max 30d) not used"``; non-empty means the vendor's standing
            cannot be confirmed from fresh knowledge.
    """

    vendor_id: str
    source: str | None = None
    text: str | None = None
    stale: tuple[str, ...] = field(default_factory=tuple)

    @property
    def evidence(self) -> list[str]:
        """Evidence lines for the compliance verdict."""
        if self.stale:
            return list(self.stale)
        if self.source is not None:
            return [f"vendor policy {self.source}"]
        return [f"no entry for {self.vendor_id} in the fresh vendor policies"]


def build_knowledge(*, clock: Callable[[], float] = time.time) -> ExternalMemory:
    """External memory with the workspace's knowledge sources ingested now.

    Args:
        clock: Epoch seconds now (injectable for tests: ingest, then move it on).
    """
    memory = ExternalMemory(
        store=InMemoryStore(),
        embedder=HashingEmbedder(),
        policy=MemoryPolicy.load(POLICY_FILE),
        clock=clock,
        root=PROJECT_ROOT,
    )
    memory.ingest([SOURCES])
    return memory


def knowledge() -> ExternalMemory:
    """The process-wide knowledge memory (built and ingested on first use)."""
    global _memory
    with _lock:
        if _memory is None:
            _memory = build_knowledge()
        return _memory


def use_knowledge(memory: ExternalMemory | None, *, clock: Callable[[], float] = time.time) -> None:
    """Use ``memory`` for vendor policies from now on (``None``: the default, rebuilt lazily).

    Also forgets cached lookups, so a test can move the memory's clock and look again.

    Args:
        memory: The knowledge memory to read vendor policies from.
        clock: The same clock ``memory`` was built with (ages in reports are told by it).
    """
    global _memory, _clock
    with _lock:
        _memory = memory
        _clock = clock
        _cache.clear()


def vendor_policy(vendor_id: str, vendor_name: str | None = None) -> VendorPolicy:
    """The vendor's policy entry from fresh knowledge, or why it cannot be used.

    Args:
        vendor_id: The vendor's master-data id (the register names it as ``(V018)``).
        vendor_name: The vendor's name, to sharpen the retrieval.
    """
    now = time.monotonic()
    with _lock:
        cached = _cache.get(vendor_id)
    if cached is not None and now - cached[0] < _CACHE_TTL_S:
        return cached[1]
    found = _look_up(knowledge(), vendor_id, vendor_name, now=_clock())
    with _lock:
        _cache[vendor_id] = (now, found)
    return found


def _look_up(
    memory: ExternalMemory, vendor_id: str, vendor_name: str | None, *, now: float
) -> VendorPolicy:
    query = f"{vendor_name or ''} ({vendor_id}) vendor risk".strip()
    result = memory.retrieve(query, data_types=[POLICY_DATA_TYPE])
    if isinstance(result, Retrieved):
        for hit in result.fresh:
            if f"({vendor_id})" in f"{hit.item.title} {hit.item.text}":
                return VendorPolicy(vendor_id=vendor_id, source=hit.item.id, text=hit.item.text)
    return VendorPolicy(vendor_id=vendor_id, stale=_stale_sources(memory, now))


def _stale_sources(memory: ExternalMemory, now: float) -> tuple[str, ...]:
    # Stale items are excluded inside the store query, so they never show up as hits;
    # the source summary is where their age is still visible.
    limit = memory.policy.rule(POLICY_DATA_TYPE).max_age_s
    reports = []
    for name, info in sorted(memory.store.sources().items()):
        if info.data_type != POLICY_DATA_TYPE:
            continue
        reason = memory.policy.staleness(
            info.data_type, ingested_at=info.ingested_at, expires_at=info.expires_at, now=now
        )
        if reason is None:
            continue
        age = max(0.0, now - info.ingested_at)
        expired = limit is None or age <= limit
        why = reason if expired else f"age {_days(age)} > max {_days(limit)}"
        reports.append(f"stale vendor policy {name} ({why}) not used")
    return tuple(reports)


def _days(seconds: float | None) -> str:
    return f"{(seconds or 0.0) / 86400:.0f}d"
