"""What reviewers taught the invoice workflow: vendor corrections kept in episodic memory.

Finished invoice runs are recorded as episodes (``remember``), with the vendor name as
printed on the invoice as their subject. When a reviewer corrects an episode's
``vendor_id`` (``EpisodicMemory.correct``), later invoices printed with the same
vendor name are matched to that vendor by ``validate_vendor`` (which asks
``vendor_from_corrections`` when master data has no match), instead of going to a
human as an unknown vendor.

Episodes live in embedded Chroma under the data folder (``Settings.data_dir``); until
one is recorded, the lookup answers without opening it.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import agentmesh as am
from agentmesh.memory import Episode, EpisodicMemory, build_episodic_memory
from graphs import invoice_rules as rules

WORKFLOW = "back_office"
_lock = threading.Lock()
_memories: dict[Path, EpisodicMemory] = {}


def episodes() -> EpisodicMemory:
    """The invoice workflow's episodic memory (opened once per data folder)."""
    data_dir = am.Settings.from_env().data_dir.resolve()
    with _lock:
        if data_dir not in _memories:
            _memories[data_dir] = build_episodic_memory(data_dir=data_dir)
        return _memories[data_dir]


def _existing() -> EpisodicMemory | None:
    # Invoices of known vendors never get here; unknown ones pay for opening Chroma
    # only once something was recorded.
    if not (am.Settings.from_env().data_dir / "chroma").is_dir():
        return None
    return episodes()


def remember(result: am.RunResult[Any], raw: str) -> Episode:
    """Record a finished invoice run; ``raw`` is the invoice text it was given."""
    output = result.output
    subject = getattr(output, "vendor_name", None)
    return episodes().record(result, rules.normalize(raw), workflow=WORKFLOW, subject=subject)


def _key(name: str | None) -> str:
    return re.sub(r"[^a-z0-9]", "", (name or "").lower())


def vendor_from_corrections(vendor_name: str, text: str) -> str | None:
    """The vendor id a reviewer gave earlier, similar invoices printed with this vendor name.

    The recall is traced as a ``retrieval`` span of the run that asks.
    """
    memory = _existing()
    if memory is None:
        return None
    recalled = memory.recall(text, workflow=WORKFLOW, k=5)
    for hit in recalled.episodes:
        correction = hit.episode.latest_correction("vendor_id")
        if correction is not None and _key(hit.episode.subject) == _key(vendor_name):
            return str(correction.new) if correction.new is not None else None
    return None
