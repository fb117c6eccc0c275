"""Validated objects reused by the identity of the dict written; anything else validated."""

from __future__ import annotations

import copy
import random

import pytest
from pydantic import BaseModel, ValidationError

import agentmesh as am
from agentmesh._runtime import validated
from agentmesh._runtime.coordinator_steps import _summed
from agentmesh._runtime.graph_builder import role_of
from agentmesh.messages import Usage, usage_json
from agentmesh.run import _result


class Text(BaseModel):
    text: str


class Words(BaseModel):
    words: list[str]


class Count(BaseModel):
    n: int


def _split(doc: Text) -> Words:
    return Words(words=doc.text.split())


def _count(data: Words) -> Count:
    return Count(n=len(data.words))


def test_only_the_very_envelope_built_gives_its_typed_output_back_once() -> None:
    envelope = {"output": {"n": 3}}
    typed = Count(n=3)
    validated.remember(envelope, typed)

    assert validated.claim(dict(envelope)) is None  # an equal copy (a checkpoint read)
    assert validated.claim(envelope) is typed
    assert validated.claim(envelope) is None


def test_a_parent_gate_sees_its_childs_output_typed() -> None:
    seen: list[object] = []
    code = am.specialist()
    words = am.Lead(name="words", input=Text, output=Words, stages=[code(_split)])
    spy = am.Gate(checks=[am.Check(name="spy", fn=lambda o, b: seen.append(o))])
    meta = am.Meta(
        name="top", input=Text, output=Count, stages=[am.Step(agent=words, gate=spy), code(_count)]
    )

    run = am.run(meta.compile(), Text(text="a b c"), checkpointer=None)

    assert run.status is am.RunStatus.COMPLETED, run.reason
    assert run.output == Count(n=3)
    assert seen == [Words(words=["a", "b", "c"])]


def test_a_result_envelope_that_was_copied_is_validated_again() -> None:
    code = am.specialist()
    graph = am.Lead(name="count", input=Text, output=Count, stages=[code(_count_text)]).compile()
    state = graph.invoke({"input": {"text": "a b"}})
    read_back = copy.deepcopy(state)  # what a checkpointer or another process hands back
    read_back["result"]["output"] = {"n": "many"}

    assert _result(role_of(graph), "t", state).output == Count(n=2)
    with pytest.raises(ValidationError):
        _result(role_of(graph), "t", read_back)


def _count_text(doc: Text) -> Count:
    return Count(n=len(doc.text.split()))


def test_summed_usage_equals_adding_usage_models() -> None:
    rng = random.Random(7)
    for _ in range(200):
        parts = [
            Usage(
                input_tokens=rng.randrange(1000),
                output_tokens=rng.randrange(1000),
                model_calls=rng.randrange(3),
                tool_calls=rng.randrange(3),
                cost_usd=round(rng.random() / 1000, 8),
                latency_s=rng.random(),
            )
            for _ in range(rng.randrange(1, 5))
        ]
        added = sum(parts, Usage())
        assert _summed([usage_json(p) for p in parts]) == added


def test_a_task_envelope_a_caller_hands_to_the_graph_is_still_validated() -> None:
    code = am.specialist()
    graph = am.Lead(name="count", input=Text, output=Count, stages=[code(_count_text)]).compile()
    task = {"sender": "caller", "recipient": "count", "payload": {"text": "a b"}, "run_id": "r"}

    assert graph.invoke({"task": task})["result"]["output"] == {"n": 2}
    with pytest.raises(ValidationError):
        graph.invoke({"task": {**task, "attempt": "twice"}})


def test_am_run_validates_its_arguments_into_the_task_envelope() -> None:
    code = am.specialist()
    graph = am.Lead(name="count", input=Text, output=Count, stages=[code(_count_text)]).compile()

    with pytest.raises(ValidationError):
        am.run(graph, Text(text="a"), goal=3, checkpointer=None)  # type: ignore[arg-type]
    assert am.run(graph, Text(text="a b"), checkpointer=None).output == Count(n=2)
