"""What reviewers taught the invoice workflow: vendor corrections kept in episodic memory.

Finished invoice runs are recorded as episodes, with the vendor name as printed on the
invoice as their subject (``invoice_subject``, which the ``back_office`` meta declares
as its ``episode_subject``): automatically by ``agentmesh.run`` and the batch CLI when
episodes are on, or by hand with ``remember``. When a reviewer corrects an episode's
``vendor_id`` (``EpisodicMemory.correct``), later invoices printed with the same
vendor name are matched to that vendor by ``validate_vendor`` (which asks
``vendor_from_corrections`` when master data has no match), instead of going to a
human as an unknown vendor. The lookup lists the corrected episodes
(``EpisodicMemory.corrected``), not the nearest ones, so it holds however many
invoices were recorded.

Episodes live where the settings put them (``AGENTMESH_EPISODES`` records into the same
memory): embedded Chroma under the data folder (``Settings.data_dir``) unless a Chroma
server is configured; until one is recorded there, the lookup answers without opening it.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import agentmesh as am
from agentmesh.memory import Episode, EpisodicMemory, build_episodic_memory
from graphs import invoice_rules as rules
from graphs.invoice_schemas import InvoiceDoc, InvoiceOutcome

WORKFLOW = "back_office"
_lock = threading.Lock()
_memories: dict[tuple[Path, str | None, str], EpisodicMemory] = {}


def episodes() -> EpisodicMemory:
    """The invoice workflow's episodic memory: the one the settings record runs into."""
    settings = am.Settings.from_env()
    key = (settings.data_dir.resolve(), settings.chroma_url, settings.embeddings)
    with _lock:
        if key not in _memories:
            _memories[key] = build_episodic_memory(
                data_dir=key[0], chroma_url=key[1], embedder=key[2]
            )
        return _memories[key]


def _existing() -> EpisodicMemory | None:
    # Invoices of known vendors never get here; unknown ones pay for opening embedded
    # Chroma only once something was recorded.
    settings = am.Settings.from_env()
    if settings.chroma_url is None and not (settings.data_dir / "chroma").is_dir():
        return None
    return episodes()


def invoice_subject(doc: InvoiceDoc, outcome: InvoiceOutcome | None) -> str | None:
    """What an invoice run is about: the vendor name as printed on the invoice.

    The name intake read (the outcome's ``vendor_name``); for a run that ended without
    an outcome (escalated, halted), the name the rules read from the raw invoice, if any.
    """
    if outcome is not None and outcome.vendor_name:
        return outcome.vendor_name
    return rules.extract(doc.raw)["vendor_name"]


def remember(result: am.RunResult[Any], raw: str) -> Episode:
    """Record a finished invoice run; ``raw`` is the invoice text it was given."""
    subject = invoice_subject(InvoiceDoc(id=result.run_id, raw=raw), result.output)
    return episodes().record(result, rules.normalize(raw), workflow=WORKFLOW, subject=subject)


def _key(name: str | None) -> str:
    return re.sub(r"[^a-z0-9]", "", (name or "").lower())


def vendor_from_corrections(vendor_name: str) -> str | None:
    """The vendor id a reviewer last gave an invoice printed with this vendor name.

    Reads the workflow's corrected episodes only (traced as a ``retrieval`` span of
    the run that asks), so the answer does not depend on how many invoices were seen.
    """
    memory = _existing()
    if memory is None:
        return None
    wanted = _key(vendor_name)
    for episode in memory.corrected(workflow=WORKFLOW):
        correction = episode.latest_correction("vendor_id")
        if correction is not None and _key(episode.subject) == wanted:
            return str(correction.new) if correction.new is not None else None
    return None
