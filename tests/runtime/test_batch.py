"""Batch runs: one JSON line per item, resumable after a crash, nothing lost or done twice."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import agentmesh as am
from agentmesh.batch import read_items, run_batch
from agentmesh.testing import ScriptedChatModel

from . import _graphs as cg


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "marks"
    folder.mkdir()
    monkeypatch.setenv(cg.MARKS, str(folder))
    return folder


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "results" / "out.jsonl"


def _items(n: int) -> list[dict[str, Any]]:
    # The first word names the item, so the specialists' logs say which item they ran on.
    return [{"id": f"item-{i}", "text": f"w{i} " + "x " * i} for i in range(1, n + 1)]


def _lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n"), "every line must be complete"
    return [json.loads(line) for line in text.splitlines()]


def _settings() -> am.Settings:
    return am.Settings.from_env()


# -- a model-layer batch, to see usage in the lines ------------------------------------------------


class Doc(BaseModel):
    text: str


class Verdict(BaseModel):
    label: str


def _model_batch() -> tuple[Any, Any, ScriptedChatModel]:
    model = ScriptedChatModel(respond=lambda msgs, tools: Verdict(label="ok"), tokens_per_answer=5)
    label = am.Specialist(name="label", input=Doc, output=Verdict, layer="small_model", model=model)
    lead = am.Lead(name="labelling", input=Doc, output=Verdict, stages=[label])
    return lead, lead.compile(), model


def test_one_line_per_item_with_id_status_output_and_usage(out: Path) -> None:
    lead, graph, model = _model_batch()
    items = _items(3)

    summary = run_batch(graph, lead, items, out, settings=_settings())

    lines = _lines(out)
    assert [line["id"] for line in lines] == ["item-1", "item-2", "item-3"]
    for line in lines:
        assert line["status"] == "completed"
        assert line["output"] == {"label": "ok"}
        assert line["usage"]["model_calls"] == 1
        assert line["usage"]["output_tokens"] == 5
        assert line["usage"]["input_tokens"] > 0
    assert sum(line["usage"]["input_tokens"] for line in lines) == model.input_tokens
    assert summary.items == 3
    assert summary.skipped == 0
    assert summary.statuses == {"completed": 3}
    assert summary.model_calls == model.calls == 3


def test_rerun_with_the_same_out_path_skips_finished_items(out: Path) -> None:
    lead, graph, model = _model_batch()
    items = _items(3)
    run_batch(graph, lead, items, out, settings=_settings())
    before = out.read_bytes()

    summary = run_batch(graph, lead, items, out, settings=_settings())

    assert model.calls == 3, "no finished item may run again"
    assert out.read_bytes() == before
    assert summary.skipped == 3
    assert summary.items == 3
    assert summary.statuses == {"completed": 3}


# -- crash and resume ----------------------------------------------------------------------------

BATCH_CODE = """
from pathlib import Path
import _graphs as cg
import agentmesh as am
from agentmesh.batch import run_batch
meta, graph = cg.build()
run_batch(graph, meta, {items!r}, Path({out!r}), settings=am.Settings.from_env())
print("the batch survived: the crash did not happen")
"""


def test_batch_killed_mid_item_resumes_without_loss_or_repeats(marks: Path, out: Path) -> None:
    items = _items(6)
    # ``count`` dies the first time it sees item 4 (after a short pause that lets the
    # background checkpoint writes of its earlier steps land; see test_durable.py).
    child = cg.run_child(
        BATCH_CODE.format(items=items, out=str(out)), env={cg.CRASH_ON: "w4", cg.SETTLE: "1"}
    )
    assert child.returncode == cg.CRASH_EXIT, child.stdout + child.stderr
    assert [line["id"] for line in _lines(out)] == ["item-1", "item-2", "item-3"]

    meta, graph = cg.build()
    summary = run_batch(graph, meta, items, out, settings=_settings())

    lines = _lines(out)
    assert len(lines) == 6
    ids = [line["id"] for line in lines]
    assert len(set(ids)) == 6
    assert sorted(ids) == sorted(item["id"] for item in items)
    assert all(line["status"] == "completed" for line in lines)
    by_id = {line["id"]: line for line in lines}
    assert by_id["item-4"]["output"] == {"first": "w4", "count": 5}
    assert by_id["item-4"].get("resumed") is True, "item 4 continues its checkpointed thread"
    assert not any(by_id[f"item-{i}"].get("resumed") for i in (1, 2, 3, 5, 6))
    # Items 1-3 were not processed again; item 4's finished split step was not redone.
    assert cg.executions(marks, "split") == ["w1", "w2", "w3", "w4", "w5", "w6"]
    assert cg.executions(marks, "count") == ["w1", "w2", "w3", "w4", "w4", "w5", "w6"]
    assert summary.skipped == 3
    assert summary.items == 6


def test_torn_last_line_is_redone_not_lost_or_duplicated(marks: Path, out: Path) -> None:
    meta, graph = cg.build()
    items = _items(3)
    run_batch(graph, meta, items, out, settings=_settings())
    whole = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(whole[:2]) + whole[2][: len(whole[2]) // 2], encoding="utf-8")

    summary = run_batch(graph, meta, items, out, settings=_settings())

    lines = _lines(out)
    assert [line["id"] for line in lines] == ["item-1", "item-2", "item-3"]
    assert lines[2]["status"] == "completed"
    assert lines[2]["output"] == {"first": "w3", "count": 4}
    assert cg.executions(marks, "count") == ["w1", "w2", "w3", "w3"]  # only item 3 redone
    assert summary.skipped == 2
    assert summary.items == 3


def test_last_line_missing_only_its_newline_is_not_lost(marks: Path, out: Path) -> None:
    meta, graph = cg.build()
    items = _items(3)
    run_batch(graph, meta, items, out, settings=_settings())
    out.write_text(out.read_text(encoding="utf-8").rstrip("\n"), encoding="utf-8")

    run_batch(graph, meta, items, out, settings=_settings())

    assert [line["id"] for line in _lines(out)] == ["item-1", "item-2", "item-3"]


def test_redone_item_reports_the_usage_of_one_run(out: Path) -> None:
    lead, graph, _ = _model_batch()
    items = _items(2)
    run_batch(graph, lead, items, out, settings=_settings())
    first, second = _lines(out)
    out.write_text(json.dumps(first) + "\n" + json.dumps(second)[:20], encoding="utf-8")

    run_batch(graph, lead, items, out, settings=_settings())

    redone = _lines(out)[1]
    assert redone["id"] == "item-2"
    assert redone["usage"]["model_calls"] == 1
    assert redone["usage"]["input_tokens"] == second["usage"]["input_tokens"]


# -- input files ---------------------------------------------------------------------------------


def test_malformed_input_line_raises_config_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": 1, "text": "ok"}\n\n{"id": 2, "text": "broken"\n', encoding="utf-8")

    with pytest.raises(am.ConfigError) as caught:
        list(read_items(path))

    assert f"{path}:3" in str(caught.value)
    assert "not valid JSON" in str(caught.value)


def test_input_line_without_id_raises_config_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": 1, "text": "ok"}\n{"text": "no id"}\n', encoding="utf-8")

    with pytest.raises(am.ConfigError, match=re.escape(f"{path.name}:2")):
        list(read_items(path))
