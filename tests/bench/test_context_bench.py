"""``agentmesh bench context``: prompt tokens stay flat with a context budget, grow without."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from agentmesh.bench._context import FLAT_RULE, invoice_record, run_context_bench
from agentmesh.cli._app import main
from agentmesh.memory._steps import estimate_tokens
from agentmesh.memory.context import ContextBudget

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return run_context_bench(200)


def test_200_steps_stay_flat_with_a_budget(report: dict[str, Any]) -> None:
    budget = report["budget"]["max_tokens"]
    curve, plain = report["curves"]["compressed"], report["curves"]["uncompressed"]
    assert len(curve) == len(plain) == report["model_calls"] == 201
    assert report["tokens_first"] == curve[0] == plain[0] == report["tokens_first_uncompressed"]
    assert report["tokens_last"] == curve[-1] <= budget
    assert max(curve) == report["tokens_max"] <= budget
    assert report["flat"] is True
    assert report["flat_rule"] == FLAT_RULE
    # without the budget the prompt grows with every step, to >10x the budget
    assert report["tokens_last_uncompressed"] == plain[-1] > 10 * budget
    assert all(b > a for a, b in itertools.pairwise(plain))
    assert report["prompt_tokens_total_uncompressed"] > 5 * report["prompt_tokens_total"]
    stats = report["stats"]
    assert stats["steps"] == 200 and stats["compressed"] > 150 and not stats["over_budget"]
    json.loads(json.dumps(report, allow_nan=False))


def test_agent_recalled_a_condensed_step_in_full(report: dict[str, Any]) -> None:
    recall = report["recall"]
    assert recall["ok"] is True
    assert recall["pointer"] == f"step:bench:{recall['step']}"
    assert recall["step"] < 150  # read back from the summary, not from the live window


def test_flat_is_judged_by_the_stated_rule() -> None:
    # a budget smaller than one step: the latest step is clipped to fit
    tight = run_context_bench(12, budget=ContextBudget(max_tokens=300, summary_tokens=50))
    assert tight["flat"] is True and tight["tokens_last"] <= 300
    assert tight["stats"]["clipped"] == 1
    # a budget the pinned task and the latest step cannot fit in: not flat, and said so
    hopeless = run_context_bench(12, budget=ContextBudget(max_tokens=100, summary_tokens=10))
    assert hopeless["tokens_last"] > 100
    assert hopeless["flat"] is False and hopeless["stats"]["over_budget"] is True


def test_prompt_tokens_are_counted_on_what_the_model_received() -> None:
    small = run_context_bench(3, budget=ContextBudget(max_tokens=100_000))
    # with room to spare, both runs send the same messages
    assert small["curves"]["compressed"] == small["curves"]["uncompressed"]
    record = invoice_record(1)
    assert 1000 < len(record) < 2000 and json.loads(record)["invoice_id"] == "INV-00001"
    assert (
        small["curves"]["compressed"][1] - small["curves"]["compressed"][0]
        >= estimate_tokens([]) + len(record) // 4
    )
    with pytest.raises(ValueError, match="steps"):
        run_context_bench(0)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_cli_bench_context_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "bench", "context", "--steps", "40", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["steps"] == 40
    assert {"tokens_first", "tokens_last", "tokens_last_uncompressed", "flat"} <= set(report)
    assert len(report["curves"]["compressed"]) == 41
    assert report["tokens_last"] < report["tokens_last_uncompressed"]


def test_cli_bench_context_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "bench", "context", "--steps", "10", "--max-tokens", "2000")
    assert code == 0
    assert "agentmesh bench context" in out and "tokens_last_uncompressed" in out
    assert "curves" not in out


def test_cli_bench_context_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "bench", "context", "--steps", "0")
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("agentmesh context: error:")
    assert "--steps" in lines[0]
