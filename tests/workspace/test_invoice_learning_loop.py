"""The invoice learning loop closed on episodes the batch CLI records by itself.

A role names what its runs are about (``episode_subject``); the invoice meta names the
vendor printed on the invoice. So when a reviewer corrects the vendor on an episode the
batch recorded, the next invoice printed with that name is matched to the vendor
instead of going to a human.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

import agentmesh as am
from agentmesh.cli._app import app
from agentmesh.errors import ConfigError
from agentmesh.memory import Correction, EpisodicMemory, InMemoryStore
from agentmesh.memory._episode_runs import NOT_RECORDED

ROOT = Path(__file__).resolve().parents[2]
LINES = "support et maintenance 214,82 | licence annuelle 159,23"
FIRST_RAW = f'Bleu Cloud Services,K-2026-0375,16 juillet 2026,EUR,"374,05",,"{LINES}"'
NEXT_RAW = 'Bleu Cloud Services,K-2026-0410,20 juillet 2026,EUR,"310,00",,"licence 310,00"'
KNOWN = ("inv-000010", "inv-000011")


def _items(path: Path, *unknown: tuple[str, str]) -> Path:
    """Sample invoices of known vendors, then hand-written ones as ``(id, raw)``."""
    sample = (ROOT / "graphs" / "data" / "invoices_sample.jsonl").read_text().splitlines()
    lines = [line for line in sample if json.loads(line)["id"] in KNOWN]
    lines += [json.dumps({"id": i, "raw": raw, "source_format": "csv_row"}) for i, raw in unknown]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _batch(items: Path, out: Path) -> dict[str, dict[str, Any]]:
    """``agentmesh run`` with its defaults (episodes recorded); result lines by item id."""
    done = CliRunner().invoke(
        app, ["run", "graphs/invoices.py", "--input", str(items), "--out", str(out), "--json"]
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["episodes_not_recorded"] == 0
    return {line["id"]: line for line in map(json.loads, out.read_text().splitlines())}


def test_a_correction_on_a_batch_recorded_episode_changes_the_next_batch(
    tmp_path: Path,
) -> None:
    from graphs.invoice_memory import episodes
    from graphs.invoices import graph

    first = _batch(_items(tmp_path / "a.jsonl", ("bleu-1", FIRST_RAW)), tmp_path / "a.out")

    paused = first["bleu-1"]
    assert paused["status"] == "awaiting_human"
    (request,) = paused["human_requests"]
    assert request["value"]["payload"]["signals"] == ["vendor not in master data"]
    for known in KNOWN:  # recorded by the batch, about the vendor printed on the invoice
        recorded = episodes().get(first[known]["episode_id"])
        assert recorded is not None
        assert recorded.subject == first[known]["output"]["vendor_name"]

    # The approver answers; the finished run is recorded into the batch's memory.
    answer = {"approved": True, "approver": "alice"}
    done = am.resume(graph, paused["thread_id"], answer, episodes=True)
    assert done.status is am.RunStatus.COMPLETED, done.reason
    assert (done.output.decision, done.output.vendor_id) == ("human_review", None)
    assert done.episode_id == paused["thread_id"]
    episode = episodes().get(done.episode_id)
    assert episode is not None
    assert episode.subject == "Bleu Cloud Services"

    before = _batch(_items(tmp_path / "b.jsonl", ("bleu-2", NEXT_RAW)), tmp_path / "b.out")
    assert before["bleu-2"]["status"] == "awaiting_human"  # an episode alone teaches nothing

    episodes().correct(
        episode.id,
        Correction(field="vendor_id", new="V003", reviewer="alice", note="Logiciel Bleu's brand"),
    )
    after = _batch(_items(tmp_path / "c.jsonl", ("bleu-3", NEXT_RAW)), tmp_path / "c.out")

    line = after["bleu-3"]
    assert line["status"] == "completed", line["reason"]
    assert "human_requests" not in line
    assert (line["output"]["vendor_id"], line["output"]["decision"]) == ("V003", "approve")


def test_an_invoice_run_is_about_the_vendor_printed_on_it() -> None:
    from graphs.invoice_memory import invoice_subject
    from graphs.invoice_schemas import InvoiceDoc, InvoiceOutcome
    from graphs.invoices import back_office

    doc = InvoiceDoc(id="inv-x", raw=FIRST_RAW, source_format="csv_row")
    read = InvoiceOutcome(
        id="inv-x",
        decision="human_review",
        reason="fraud risk",
        vendor_id=None,
        vendor_name="Bleu Cloud SAS",
        invoice_number=None,
        invoice_date=None,
        currency="EUR",
        total=374.05,
        total_eur=374.05,
        category="software",
        fraud_risk=0.6,
        fraud_suspected=True,
        compliance_action="review",
    )

    assert back_office.episode_subject is invoice_subject
    assert invoice_subject(doc, read) == "Bleu Cloud SAS"  # what intake read wins
    assert invoice_subject(doc, None) == "Bleu Cloud Services"  # no outcome: the raw invoice
    assert invoice_subject(InvoiceDoc(id="inv-y", raw=""), None) is None


# -- the framework's part: any role may name its episodes' subject ----------------------------


class Doc(BaseModel):
    text: str


class Tally(BaseModel):
    first: str
    count: int


def _tally(doc: Doc) -> Tally:
    words = doc.text.split()
    return Tally(first=words[0], count=len(words))


def _meta(subject: Any) -> Any:
    count = am.Specialist(name="count", input=Doc, output=Tally, fn=_tally)
    lead = am.Lead(name="counting", input=Doc, output=Tally, stages=[count])
    return am.Meta(
        name="pipeline", input=Doc, output=Tally, stages=[lead], episode_subject=subject
    ).compile()


def test_a_recorded_run_carries_the_subject_its_role_names() -> None:
    memory = EpisodicMemory(InMemoryStore())
    seen: list[tuple[Any, Any]] = []

    def first_word(doc: Doc, out: Tally | None) -> str | None:
        seen.append((doc, out))
        return out.first if out else None

    result = am.run(_meta(first_word), Doc(text="alpha beta"), thread_id="t-1", episodes=memory)

    episode = memory.get("t-1")
    assert episode is not None and result.episode_id == "t-1"
    assert episode.subject == "alpha"
    assert seen == [(Doc(text="alpha beta"), Tally(first="alpha", count=2))]


def test_a_specialist_run_alone_names_its_subject_too() -> None:
    memory = EpisodicMemory(InMemoryStore())
    count = am.Specialist(
        name="count",
        input=Doc,
        output=Tally,
        fn=_tally,
        episode_subject=lambda doc, out: doc.text.upper(),
    )

    am.run(count.compile(), Doc(text="x y"), thread_id="t-s", episodes=memory)

    episode = memory.get("t-s")
    assert episode is not None and episode.subject == "X Y"


def test_the_subject_is_never_asked_while_episodes_are_off() -> None:
    def refuse(doc: Doc, out: Tally | None) -> str:
        raise AssertionError("episode_subject called without episodes")

    result = am.run(_meta(refuse), Doc(text="alpha"), thread_id="t-off", episodes=False)

    assert result.status is am.RunStatus.COMPLETED
    assert result.episode_id is None and not result.alerts


@pytest.mark.parametrize("subject", [lambda doc, out: 42, lambda doc, out: 1 / 0])
def test_a_broken_subject_is_reported_and_the_run_kept(subject: Any) -> None:
    memory = EpisodicMemory(InMemoryStore())

    result = am.run(_meta(subject), Doc(text="alpha"), thread_id="t-bad", episodes=memory)

    assert result.status is am.RunStatus.COMPLETED
    assert result.output == Tally(first="alpha", count=1)
    assert result.episode_id is None
    assert [a.kind for a in result.alerts] == [NOT_RECORDED]
    assert memory.get("t-bad") is None


def test_a_subject_that_is_not_callable_fails_at_build_time() -> None:
    count = am.Specialist(name="count", input=Doc, output=Tally, fn=_tally)

    with pytest.raises(ConfigError, match="episode_subject must be callable"):
        am.Lead(name="l", input=Doc, output=Tally, stages=[count], episode_subject="vendor")
    with pytest.raises(ConfigError, match="episode_subject must be callable"):
        am.Specialist(name="s", input=Doc, output=Tally, fn=_tally, episode_subject="vendor")
