"""The `agentmesh` command as a user runs it: a real process, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "graphs" / "data" / "invoices_sample.jsonl"


def agentmesh(*args: str, data: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENTMESH_DATA_DIR": str(data), "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "agentmesh.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_version(tmp_path: Path) -> None:
    done = agentmesh("--version", data=tmp_path)
    assert done.returncode == 0
    assert done.stdout.startswith("agentmesh ")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run"], "Missing argument"),
        (["frobnicate"], "No such command"),
        (["bench", "--tasks", "0"], "--tasks"),
        (["run", "graphs/nope.py"], "no such workflow file"),
        (["run", "graphs/invoices.py", "--input", "missing.jsonl"], "no such file"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    done = agentmesh(*args, data=tmp_path)
    assert done.returncode == 2
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("agentmesh") and needle in lines[0]


def test_malformed_input_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "raw": "x"}\n{not json\n')
    done = agentmesh("run", "graphs/invoices.py", "--input", str(bad), data=tmp_path / "d")
    assert done.returncode == 1
    assert f"{bad}:2" in done.stderr


def test_run_sample_writes_lines_summary_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    done = agentmesh("run", "graphs/invoices.py", "--out", str(out), data=tmp_path / "d")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    sample_ids = [json.loads(x)["id"] for x in SAMPLE.read_text().splitlines()]
    assert [x["id"] for x in lines] == sample_ids
    assert {x["status"] for x in lines} <= {"completed", "awaiting_human", "escalated"}
    completed = [x for x in lines if x["status"] == "completed"]
    assert completed and all(x["output"]["decision"] for x in completed)
    assert all({"usage", "latency_s"} <= set(x) for x in lines)
    assert "accuracy: decision" in done.stdout
    assert "offline mode" in done.stdout  # no model configured: the output says so

    again = agentmesh("run", "graphs/invoices.py", "--out", str(out), "--json", data=tmp_path / "d")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["skipped_already_done"] == len(sample_ids)
    assert len(out.read_text().splitlines()) == len(sample_ids)  # nothing processed twice
    assert summary["accuracy"]["decision"] >= 0.9


def test_graph_show_prints_mermaid_and_png(tmp_path: Path) -> None:
    png = tmp_path / "h.png"
    done = agentmesh("graph", "show", "graphs/invoices.py", "--png", str(png), data=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("flowchart TD")
    for agent in (
        "back_office",
        "intake",
        "extract_fields",
        "compliance_review",
        "risk_critic",
        "route_approval",
        "human_approval",
    ):
        assert agent in done.stdout
    if "Pillow" not in done.stderr:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
