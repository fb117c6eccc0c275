"""The cost model's parts: metering, unusual answers, the down endpoint, the unprotected rewrite."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import tool
from pydantic import BaseModel

import agentmesh as am
from agentmesh.costmodel import (
    CONTROLS_OFF,
    CallMeter,
    CostModelConfig,
    FlakyToolGateway,
    Scenario,
    ScriptedResponder,
    simulate_costs,
    unprotected,
    with_model,
)
from agentmesh.costmodel._report import percentile
from agentmesh.testing import FakeOpenAIServer, RecordedRequest

pytestmark = pytest.mark.timeout(60)


class Doc(BaseModel):
    text: str


class Fields(BaseModel):
    items: list[float]
    total: float


class Label(BaseModel):
    label: str


def read_by_rules(doc: Doc) -> Fields:
    numbers = [float(w) for w in doc.text.split()]
    return Fields(items=numbers, total=sum(numbers))


def label_by_rules(fields: Fields) -> am.Answer[Label]:
    return am.Answer(value=Label(label="big" if fields.total > 10 else "small"), confidence=0.7)


@am.check(on_fail="retry")
def adds_up(fields: Fields) -> str | None:
    gap = abs(sum(fields.items) - fields.total)
    return f"items differ from the total by {gap:.2f}" if gap > 0.01 else None


def _desk(*, reader_fallback: Any = read_by_rules) -> am.Lead[Any, Any]:
    reader = am.Specialist(
        name="reader", input=Doc, output=Fields, layer="small_model", prompt="Read the numbers.",
        fallback=reader_fallback, gate=am.Gate(checks=[adds_up]),
    )  # fmt: skip
    labeler = am.Specialist(
        name="labeler", input=Fields, output=Label, layer="small_model", prompt="Label the total.",
        fallback=label_by_rules,
    )  # fmt: skip
    return am.Lead(name="desk", input=Doc, output=Label, stages=[reader, labeler])


@pytest.fixture
def meter() -> CallMeter:
    return CallMeter()


@pytest.fixture
def responder(meter: CallMeter) -> ScriptedResponder:
    desk = _desk()
    return ScriptedResponder([s for s in desk.stages if isinstance(s, am.Specialist)], meter=meter)


@pytest.fixture
def settings(responder: ScriptedResponder) -> Iterator[am.Settings]:
    with FakeOpenAIServer(default=responder) as srv:
        yield am.Settings(
            data_dir=Path(os.environ["AGENTMESH_DATA_DIR"]),
            small_model="openai:gpt-4o-mini",
            openai_base_url=srv.base_url,
            openai_api_key="test",
            checkpointer="memory",
        )


def test_metered_cost_is_what_agentmesh_accounts(settings: am.Settings, meter: CallMeter) -> None:
    result = am.run(_desk().compile(settings=settings), Doc(text="4 5 6"), settings=settings)

    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert result.output == Label(label="big")
    assert result.result is not None and not result.result.degraded, "the model answered"
    assert meter.calls == result.usage.model_calls == 2
    assert meter.input_tokens == result.usage.input_tokens
    assert meter.output_tokens == result.usage.output_tokens
    assert meter.cost_usd == pytest.approx(result.usage.cost_usd)
    assert meter.cost_usd > 0


def test_unusual_input_is_misread_once_then_answered_right(
    settings: am.Settings, responder: ScriptedResponder, meter: CallMeter
) -> None:
    responder.start_run(unusual=True)

    result = am.run(_desk().compile(settings=settings), Doc(text="4 5 6"), settings=settings)

    assert result.status is am.RunStatus.COMPLETED, result.reason
    assert result.output == Label(label="big")
    reader_gates = [g for g in result.gates if g.stage == "reader"]
    assert [g.action for g in reader_gates] == ["retry", "pass"], "the gate caught the misread"
    assert "items differ from the total" in reader_gates[0].reasons[0]
    assert meter.calls == 4, "reader: gate retry; labeler: schema retry"


def test_a_down_endpoint_answers_500_with_a_fresh_request_id(
    responder: ScriptedResponder, meter: CallMeter
) -> None:
    responder.down = True
    request = RecordedRequest(
        method="POST", path="/v1/chat/completions", headers={}, body={}, model="gpt-4o-mini",
        messages=[], tools=[], stream=False, status=None, timestamp=0.0,
    )  # fmt: skip

    first, second = responder(request), responder(request)

    assert isinstance(first, am.testing.Fault) and first.status_code == 500  # type: ignore[attr-defined]
    assert first.body != second.body  # type: ignore[union-attr]
    assert "request ID req_" in str(first.body)  # type: ignore[union-attr]
    assert meter.failed == 2 and meter.calls == 0 and meter.cost_usd == 0


def test_an_agent_without_fallback_cannot_be_scripted(meter: CallMeter) -> None:
    desk = _desk(reader_fallback=None)
    with pytest.raises(am.ConfigError, match="reader"):
        ScriptedResponder([s for s in desk.stages if isinstance(s, am.Specialist)], meter=meter)


def test_unprotected_strips_fallbacks_and_loosens_gates_on_a_copy() -> None:
    desk = _desk()

    loose = unprotected(desk, gate_retries=3, replans=3)

    reader, labeler = loose.stages
    assert reader.fallback is None and labeler.fallback is None
    assert reader.gate.max_retries == 3 and list(reader.gate.checks) == [adds_up]
    assert reader.gate.on_exhausted == "replan" and reader.gate.on_failed == "retry"
    assert labeler.gate.on_escalated == "retry"
    assert loose.max_replans == 3
    assert desk.stages[0].fallback is read_by_rules, "the original is untouched"
    assert desk.stages[0].gate.max_retries == 1
    loose.compile()


def test_off_mode_is_the_unprotected_rewrite() -> None:
    desk = _desk()
    off = CONTROLS_OFF.workflow(desk)
    assert all(s.fallback is None for s in off.stages)
    assert CONTROLS_OFF.controls.retry.max_attempts == 10
    assert CONTROLS_OFF.controls.budget is None


def test_with_model_changes_one_agent_only() -> None:
    desk = _desk()
    changed = with_model(desk, "labeler", "openai:gpt-4o")
    assert [s.model for s in changed.stages] == [None, "openai:gpt-4o"]


def test_flaky_gateway_fails_permitted_calls_at_its_rate() -> None:
    @tool
    def lookup(key: str) -> str:
        """Look a key up."""
        return key.upper()

    allowed = {"lookup": lookup}
    always = FlakyToolGateway(rate=1.0, rng=random.Random(1))
    with pytest.raises(am.TransientError, match="503"):
        always.execute("lookup", {"key": "a"}, agent="a", allowed=allowed)
    with pytest.raises(am.ToolPermissionError):
        always.execute("other", {}, agent="a", allowed=allowed)
    assert always.injected == 1
    never = FlakyToolGateway(rate=0.0, rng=random.Random(1))
    assert never.execute("lookup", {"key": "a"}, agent="a", allowed=allowed) == "A"
    some = FlakyToolGateway(rate=0.15, rng=random.Random(7))
    for _ in range(1000):
        with contextlib.suppress(am.TransientError):
            some.execute("lookup", {"key": "a"}, agent="a", allowed=allowed)
    assert 100 < some.injected < 200


def test_simulation_refuses_what_it_cannot_price(monkeypatch: pytest.MonkeyPatch) -> None:
    @am.specialist()
    def echo(doc: Doc) -> Label:
        return Label(label=doc.text)

    items = [{"id": "1", "text": "1 2"}]
    with pytest.raises(am.ConfigError, match="no model-backed agent"):
        simulate_costs(am.Lead(name="codeonly", input=Doc, output=Label, stages=[echo]), items)
    with pytest.raises(am.ConfigError, match="not a model-backed agent"):
        simulate_costs(_desk(), items, CostModelConfig(down_agent="nobody"))
    with pytest.raises(am.ConfigError, match="no inputs"):
        simulate_costs(_desk(), [])
    with pytest.raises(am.ConfigError, match="input 'x' is not a valid Doc"):
        simulate_costs(_desk(), [{"id": "x"}])
    with pytest.raises(am.ConfigError, match="expected"):
        CostModelConfig(scenarios=(Scenario(name="edge", description="x"),))
    with pytest.raises(am.ConfigError, match="runs"):
        CostModelConfig(runs=0)
    with pytest.raises(am.ConfigError, match="tool_failure_rate"):
        Scenario(name="x", description="x", tool_failure_rate=1.5)


def test_small_workflow_simulation_end_to_end() -> None:
    items = [{"id": str(i), "text": f"{i} {i + 1} 3"} for i in range(5)]

    report = simulate_costs(_desk(), items, CostModelConfig(runs=5, seed=2))

    assert report.down_agent == "labeler"
    assert report.on.scenarios["expected"].model_calls == (2,) * 5
    assert report.target_met
    # The labeler is last: its fallback answers for free with the controls on; off, the
    # desk re-runs the reader before the loop detector stops it.
    assert report.failure_to_expected_ratio < 1.0
    assert report.failure_to_expected_ratio_controls_off is not None
    assert report.failure_to_expected_ratio_controls_off > 1.0


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 95) == 0.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0
    assert percentile([1.0, 9.0], 95) == 9.0


def test_a_request_the_script_cannot_answer_fails_the_simulation() -> None:
    def broken(doc: Doc) -> Fields:
        raise ValueError("cannot read this")

    items = [{"id": "1", "text": "1 2"}]
    with pytest.raises(am.ConfigError, match="could not answer: request for reader"):
        simulate_costs(_desk(reader_fallback=broken), items, CostModelConfig(runs=1, off=None))
