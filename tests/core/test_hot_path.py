"""Shortcuts on the per-hop hot path must mean exactly what the slow path means."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import agentmesh as am
import agentmesh.settings as settings_module
from agentmesh.gates import Check, Gate
from agentmesh.messages import (
    EscalationMessage,
    GateDecision,
    ResultMessage,
    Usage,
    decision_json,
    new_id,
    result_json,
    usage_json,
)
from agentmesh.settings import ENV_NAMES, Settings
from agentmesh.types import GateAction, Layer, ResultStatus


class Out(BaseModel):
    total: float
    vendor: str


RESULTS: list[ResultMessage[Any]] = [
    ResultMessage(task_id="t1", agent="a", status=ResultStatus.OK, output={"total": 1.5}),
    ResultMessage(
        task_id="t2",
        agent="b",
        status=ResultStatus.ESCALATED,
        confidence=0.25,
        evidence=["x", "y"],
        usage=Usage(input_tokens=3, output_tokens=4, model_calls=1, cost_usd=0.01, latency_s=2),
        summary="s",
        layer=Layer.SMALL_MODEL,
        served_by="openai:gpt-4o-mini",
        degraded=True,
        escalation=EscalationMessage(reason="r", decision_point="p", options=["o"], data={"k": 1}),
    ),
    ResultMessage(task_id="t3", agent="c", status=ResultStatus.FAILED, error="boom"),
    ResultMessage(task_id="t4", agent="d", status=ResultStatus.OK, output=[1, 2]),
]


@pytest.mark.parametrize("result", RESULTS, ids=lambda r: r.task_id)
def test_result_json_is_model_dump_json_mode(result: ResultMessage[Any]) -> None:
    assert result_json(result) == result.model_dump(mode="json")
    assert usage_json(result.usage) == result.usage.model_dump(mode="json")


@pytest.mark.parametrize("task_id", [None, "t9"])
def test_decision_json_is_model_dump_json_mode(task_id: str | None) -> None:
    decision = GateDecision(
        gate="g",
        stage="s",
        action=GateAction.ESCALATE,
        reasons=["a", "b"],
        attempt=2,
        task_id=task_id,
    )
    assert decision_json(decision) == decision.model_dump(mode="json")


def test_ids_differ_in_a_forked_child() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    assert child != new_id()
    assert re.fullmatch(r"[0-9a-f]{16}", child)
    assert len({new_id() for _ in range(10_000)}) == 10_000


def test_settings_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    first = Settings.from_env()
    assert Settings.from_env() is first  # built once per set of values
    monkeypatch.setenv("AGENTMESH_SMALL_MODEL", "openai:gpt-4o-mini")
    monkeypatch.setenv("AGENTMESH_MODEL_TIMEOUT_S", "7")
    changed = Settings.from_env()
    assert (changed.small_model, changed.model_timeout_s) == ("openai:gpt-4o-mini", 7.0)
    monkeypatch.delenv("AGENTMESH_SMALL_MODEL")
    assert Settings.from_env().small_model is None


def test_every_variable_settings_read_is_part_of_the_key() -> None:
    source = Path(settings_module.__file__).read_text()
    read = set(re.findall(r'"((?:AGENTMESH|OPENAI|LANGFUSE)_[A-Z_]+)"', source))
    assert read == set(ENV_NAMES)


def test_settings_work_when_os_environ_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "environ", {"AGENTMESH_FRONTIER_MODEL": "openai:gpt-4o"})
    assert Settings.from_env().frontier_model == "openai:gpt-4o"


def _gate_verdicts(gate: Gate, result: ResultMessage[Any], typed: BaseModel | None) -> Any:
    decision, out = gate.evaluate(
        stage="s", result=result, schema=Out, board={}, attempt=1, typed_output=typed
    )
    return decision, out


def test_a_gate_trusts_a_typed_output_of_its_schema_instead_of_revalidating() -> None:
    # The JSON output would fail validation; the typed object given is what passes.
    result: ResultMessage[Any] = ResultMessage(
        task_id="t", agent="a", status=ResultStatus.OK, output={"total": "not a number"}
    )
    typed = Out(total=2, vendor="acme")
    decision, out = _gate_verdicts(Gate(), result, typed)
    assert decision.action is GateAction.PASS and out is typed
    decision, out = _gate_verdicts(Gate(), result, None)
    assert decision.action is GateAction.RETRY and out is None


def test_a_gate_reuses_a_typed_output_of_its_schema_and_still_runs_its_checks() -> None:
    gate = Gate(checks=[Check(name="positive", fn=lambda o, b: o.total > 0, on_fail="escalate")])
    typed = Out(total=-1, vendor="acme")
    result: ResultMessage[Any] = ResultMessage(
        task_id="t", agent="a", status=ResultStatus.OK, output=typed.model_dump(mode="json")
    )
    decision, out = _gate_verdicts(gate, result, typed)
    assert decision.action is GateAction.ESCALATE and out is None
    assert isinstance(decision, GateDecision)


def test_a_gate_validates_when_the_typed_output_is_of_another_schema() -> None:
    class Other(BaseModel):
        total: float

    result: ResultMessage[Any] = ResultMessage(
        task_id="t", agent="a", status=ResultStatus.OK, output={"total": 1}
    )
    decision, out = _gate_verdicts(Gate(), result, Other(total=1))
    assert decision.action is GateAction.RETRY  # 'vendor' is missing: validated, not trusted
    assert out is None


def test_graphs_run_outside_agentmesh_run_follow_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentmesh._runtime.context import default_context

    monkeypatch.setenv("AGENTMESH_DATA_DIR", str(tmp_path / "a"))
    first = default_context()
    assert first.settings.data_dir == tmp_path / "a"
    assert default_context() is first
    monkeypatch.setenv("AGENTMESH_DATA_DIR", str(tmp_path / "b"))
    assert default_context().settings.data_dir == tmp_path / "b"


def test_prices_resolved_once_still_follow_set_price(monkeypatch: pytest.MonkeyPatch) -> None:
    import agentmesh.pricing as pricing

    monkeypatch.setattr(pricing, "_PRICES", dict(pricing._PRICES))
    assert pricing.price_for("acme:house-model-2") is None
    pricing.set_price("house-model", pricing.Price(input_per_mtok=1.0, output_per_mtok=2.0))
    assert pricing.cost_usd("acme:house-model-2", 1_000_000, 0) == 1.0
    monkeypatch.setattr(pricing, "_PRICES", {})  # a swapped table is not served from memory
    assert pricing.price_for("acme:house-model-2") is None


def test_loop_fingerprints_are_the_same_in_another_process() -> None:
    """Fingerprints are checkpointed: a resumed run in a new process must compare equal."""
    import subprocess
    import sys

    from agentmesh._runtime.coordinator_steps import _fingerprint

    code = (
        "from agentmesh._runtime.coordinator_steps import _fingerprint\n"
        "pending = [{'task': {'payload': {'words': ['a', 'é'], 'n': 2, 'x': 1.5, 'k': None}}}]\n"
        "print(_fingerprint('stage', pending, 'retry: too low', {'output': {'total': 3}}))\n"
    )
    pending = [{"task": {"payload": {"words": ["a", "é"], "n": 2, "x": 1.5, "k": None}}}]
    here = _fingerprint("stage", pending, "retry: too low", {"output": {"total": 3}})
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()
    assert there == here
    assert here != _fingerprint("stage", pending, "retry: too low", {"output": {"total": 4}})


class Text(BaseModel):
    text: str


class Split(BaseModel):
    words: list[str]


class Count(BaseModel):
    n: int


class Approval(BaseModel):
    approved: bool


def _split(doc: Text) -> Split:
    return Split(words=doc.text.split())


def _count(words: Split) -> Count:
    return Count(n=len(words.words))


def _two_leads(second: Any) -> Any:
    code = am.specialist()
    words = am.Lead(name="words", input=Text, output=Split, stages=[code(_split)])
    last = am.Lead(name="last", input=Split, output=second.output, stages=[second])
    return am.Meta(name="top", input=Text, output=second.output, stages=[words, last]).compile()


def test_a_finished_graph_publishes_its_gates_spending_and_outcome() -> None:
    graph = _two_leads(am.specialist()(_count))

    state = graph.invoke({"input": {"text": "one two three"}})
    run = am.run(graph, Text(text="one two three"), checkpointer=None)

    # Children keep them in their bookkeeping; the graph a caller invokes shows them.
    assert state["outcome"] == {"status": "completed", "reason": "completed"}
    assert [(g["stage"], g["action"]) for g in state["gates"]] == [
        ("words", "pass"),
        ("last", "pass"),
    ]
    assert len(state["spent"]) == 2
    assert state["result"]["output"] == {"n": 3}
    assert run.status is am.RunStatus.COMPLETED
    assert [(g.stage, g.action) for g in run.gates] == [
        ("words", am.GateAction.PASS),
        ("last", am.GateAction.PASS),
    ]
    assert run.output == Count(n=3)


def test_a_paused_run_reports_the_gates_and_spending_of_its_finished_stages() -> None:
    ask = am.Specialist(name="ask", input=Split, output=Approval, layer="human")
    graph = _two_leads(ask)

    paused = am.run(graph, Text(text="pay it"), thread_id=f"paused-{new_id()}")

    assert paused.status is am.RunStatus.AWAITING_HUMAN
    assert [(g.stage, g.action) for g in paused.gates] == [("words", am.GateAction.PASS)]
    assert paused.usage.latency_s > 0


class _Doc(BaseModel):
    text: str


class _Words(BaseModel):
    words: list[str]


def _split(doc: _Doc) -> _Words:
    return _Words(words=doc.text.split())


def test_a_parent_graph_limit_covers_a_deeper_childs_so_children_share_its_config() -> None:
    code = am.specialist()
    deep = am.Lead(name="deep", input=_Doc, output=_Words, stages=[code(_split)], max_steps=200)
    meta = am.Meta(name="top", input=_Doc, output=_Words, stages=[deep], max_steps=2)
    child_only = am.Lead(
        name="deep", input=_Doc, output=_Words, stages=[code(_split)], max_steps=200
    ).compile()

    top_limit = meta.compile().config["recursion_limit"]

    assert top_limit >= child_only.config["recursion_limit"] >= 4 * 200
    low = am.run(meta.compile(), _Doc(text="a b"), checkpointer=None)
    assert low.status is am.RunStatus.COMPLETED, low.reason


def test_runs_without_controls_share_one_default_that_a_budget_never_changes() -> None:
    from agentmesh.run import _controls

    default = _controls(None, None)
    capped = am.run(
        _two_leads(am.specialist()(_count)), Text(text="a b"), budget=am.Budget(steps=1)
    )

    assert _controls(None, None) is default
    assert default == am.Controls() and default.budget is None
    assert capped.status is am.RunStatus.BUDGET_EXHAUSTED
    assert am.run(_two_leads(am.specialist()(_count)), Text(text="a b")).output == Count(n=2)


def test_a_specialist_named_by_its_layer_string_reports_the_layer_enum() -> None:
    spec = am.Specialist(name="count", input=Split, output=Count, layer="code", fn=_count)

    run = am.run(spec.compile(), Split(words=["a", "b"]), checkpointer=None)

    assert run.result is not None
    assert run.result.layer is am.Layer.CODE
    assert run.result.output == {"n": 2}


GATED: list[ResultMessage[Any]] = [
    *RESULTS,
    ResultMessage(
        task_id="t5", agent="e", status=ResultStatus.OK, output={"total": -2, "vendor": "v"}
    ),
    ResultMessage(
        task_id="t6",
        agent="f",
        status=ResultStatus.OK,
        output={"total": 9, "vendor": "v"},
        confidence=0.1,
    ),
    ResultMessage(task_id="t7", agent="g", status=ResultStatus.HALTED, error="stop"),
    ResultMessage(
        task_id="t8",
        agent="h",
        status=ResultStatus.ESCALATED,
        escalation=EscalationMessage(reason="", decision_point="p"),
    ),
    ResultMessage(task_id="t9", agent="i", status=ResultStatus.ESCALATED),
]
GATES = [
    Gate(),
    Gate(name="strict", max_retries=0, min_confidence=0.5, on_exhausted=GateAction.HALT),
    Gate(
        checks=[
            Check(name="positive", fn=lambda o, b: o.total > 0, on_fail="replan"),
            Check(name="soft", fn=lambda o, b: "always", on_fail="pass"),
        ]
    ),
]


@pytest.mark.parametrize("gate", GATES, ids=["default", "strict", "checks"])
@pytest.mark.parametrize("result", GATED, ids=lambda r: r.task_id)
@pytest.mark.parametrize("attempt", [1, 3])
def test_a_gate_judges_a_json_envelope_as_it_judges_the_result(
    gate: Gate, result: ResultMessage[Any], attempt: int
) -> None:
    # Coordinators gate envelopes in their JSON form; the verdict must be the same.
    kwargs: dict[str, Any] = {"stage": "s", "schema": Out, "board": {}, "attempt": attempt}
    decision, typed = gate.evaluate(result=result, **kwargs)
    as_json, typed_json = gate.evaluate_json(result=result_json(result), **kwargs)

    assert as_json == decision.model_dump(mode="json")
    assert typed_json == typed


def _answer(data: Split) -> am.Answer[Count]:
    return am.Answer(Count(n=len(data.words)), confidence=0.75, evidence=["counted"], summary="n")


def _int_confidence(data: Split) -> am.Answer[Count]:
    return am.Answer(Count(n=1), confidence=1)


def _odd_evidence(data: Split) -> am.Answer[Count]:
    return am.Answer(Count(n=1), evidence=[3])  # type: ignore[list-item]


def _bad_output(data: Split) -> dict[str, Any]:
    return {"n": "many"}


@pytest.mark.parametrize("fn", [_count, _answer, _int_confidence, _odd_evidence, _bad_output])
def test_a_specialist_builds_the_json_envelope_its_result_would_dump_to(fn: Any) -> None:
    from agentmesh._runtime.context import RunContext
    from agentmesh._runtime.specialist_run import run_specialist_json, run_specialist_typed
    from agentmesh.messages import TaskMessage
    from agentmesh.tools import ToolGateway
    from agentmesh.tracing import NullTracer

    spec = am.Specialist(name="count", input=Split, output=Count, layer="code", fn=fn)
    task: TaskMessage[Any] = TaskMessage(sender="t", recipient="count", payload={"words": ["a"]})
    ctx = RunContext(settings=Settings(), tracer=NullTracer(), gateway=ToolGateway(), run_id="r")

    result, typed = run_specialist_typed(spec, task, model=None, ctx=ctx)
    typed_json, envelope = run_specialist_json(spec, task, model=None, ctx=ctx)

    expected = result.model_dump(mode="json")
    assert envelope["usage"].pop("latency_s") >= 0 and expected["usage"].pop("latency_s") >= 0
    assert envelope == expected
    assert typed_json == typed
