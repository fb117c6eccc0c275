"""Model specialists: output retries, fallbacks, offline mode, tools and usage."""

import json

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from pydantic import BaseModel

import agentmesh as am
from agentmesh.pricing import cost_usd
from agentmesh.testing import ScriptedChatModel, tool_call


class Words(BaseModel):
    words: list[str]


class Verdict(BaseModel):
    count: int
    long: bool


GOOD = Verdict(count=3, long=False)
WORDS = Words(words=["a", "b", "c"])


def rule_fallback(w: Words) -> Verdict:
    return Verdict(count=len(w.words), long=len(w.words) > 10)


def judge(model: ScriptedChatModel | None, **kw: object) -> am.Specialist:
    return am.Specialist(
        name="judge",
        input=Words,
        output=Verdict,
        layer="small_model",
        model=model,
        prompt="Judge the words.",
        **kw,  # type: ignore[arg-type]
    )


def run_alone(spec: am.Specialist, **kw: object) -> am.RunResult:
    return am.run(spec.compile(), WORDS, checkpointer=None, **kw)  # type: ignore[arg-type]


def run_in_lead(spec: am.Specialist, **kw: object) -> am.RunResult:
    lead = am.Lead(name="review", input=Words, output=Verdict, stages=[spec])
    return am.run(lead.compile(), WORDS, checkpointer=None, **kw)  # type: ignore[arg-type]


# -- structured output ---------------------------------------------------------------------


def test_a_valid_answer_completes_and_is_served_by_the_model() -> None:
    model = ScriptedChatModel(script=[GOOD])
    r = run_alone(judge(model))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == GOOD
    assert r.result is not None
    assert r.result.served_by == "gpt-4o-mini"
    assert r.result.degraded is False
    assert r.result.confidence == pytest.approx(0.8)
    # the model was offered the output schema as a tool, with the prompt and input
    system, human = model.requests[0][:2]
    assert "Judge the words." in str(system.content)
    assert "Verdict" in str(system.content)
    assert '"words":["a","b","c"]' in str(human.content)


def test_a_malformed_answer_is_retried_with_the_validation_error() -> None:
    model = ScriptedChatModel(script=[tool_call("Verdict", count="many", long=False), GOOD])
    r = run_alone(judge(model))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == GOOD
    assert model.calls == 2
    second = model.requests[1]
    assert isinstance(second[-2], AIMessage)
    feedback = second[-1]
    assert isinstance(feedback, ToolMessage)
    assert feedback.tool_call_id == second[-2].tool_calls[0]["id"]
    assert "does not match Verdict" in str(feedback.content)
    assert "count" in str(feedback.content)
    assert "valid integer" in str(feedback.content)


def test_a_json_text_answer_is_accepted() -> None:
    model = ScriptedChatModel(script=['Here: {"count": 3, "long": false}'])
    r = run_alone(judge(model))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == GOOD


def test_repeated_malformed_answers_fail_after_max_output_retries() -> None:
    bad = tool_call("Verdict", count="many", long=False)
    model = ScriptedChatModel(respond=lambda m, t: bad)
    r = run_alone(judge(model, max_output_retries=2))
    assert model.calls == 3
    assert r.result is not None
    assert r.result.status is am.ResultStatus.FAILED
    assert r.result.error is not None
    assert "ModelOutputError" in r.result.error
    assert "3 answers failed Verdict validation" in r.result.error
    assert r.status is not am.RunStatus.COMPLETED
    assert r.output is None


def test_repeated_malformed_answers_in_a_lead_are_retried_then_escalated() -> None:
    bad = tool_call("Verdict", long="maybe")
    model = ScriptedChatModel(respond=lambda m, t: bad)
    r = run_in_lead(judge(model, max_output_retries=1))
    assert r.status is am.RunStatus.ESCALATED
    assert "ModelOutputError" in r.reason
    assert model.calls == 4  # 2 answers per attempt, 2 attempts
    assert r.usage.model_calls == 4


def test_repeated_malformed_answers_go_to_the_fallback() -> None:
    bad = tool_call("Verdict", count="many", long=False)
    model = ScriptedChatModel(respond=lambda m, t: bad)
    r = run_in_lead(judge(model, fallback=rule_fallback, max_output_retries=1))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == GOOD
    assert model.calls == 2
    assert r.result is not None
    assert r.result.degraded is True
    alone = run_alone(judge(ScriptedChatModel(respond=lambda m, t: bad), fallback=rule_fallback))
    assert alone.result is not None
    assert alone.result.degraded is True
    assert alone.result.served_by.startswith("fallback:")
    assert alone.result.served_by == "fallback:rule_fallback"
    assert any("ModelOutputError" in e for e in alone.result.evidence)


def test_a_raising_model_goes_to_the_fallback() -> None:
    model = ScriptedChatModel(script=[RuntimeError("provider returned 500")])
    r = run_alone(judge(model, fallback=rule_fallback))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == GOOD
    assert r.result is not None
    assert r.result.degraded is True
    assert r.result.served_by == "fallback:rule_fallback"
    assert "model failed (RuntimeError: provider returned 500)" in r.result.evidence


def test_a_raising_model_without_fallback_fails_the_task() -> None:
    model = ScriptedChatModel(script=[RuntimeError("provider returned 500")])
    r = run_alone(judge(model))
    assert r.result is not None
    assert r.result.status is am.ResultStatus.FAILED
    assert "provider returned 500" in (r.result.error or "")


# -- offline -------------------------------------------------------------------------------


def test_offline_with_a_fallback_completes_degraded() -> None:
    r = run_in_lead(judge(None, fallback=rule_fallback))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == GOOD
    assert r.result is not None
    assert r.result.degraded is True
    assert r.usage.model_calls == 0
    alone = run_alone(judge(None, fallback=rule_fallback))
    assert alone.result is not None
    assert alone.result.served_by.startswith("fallback:rule_fallback")
    assert "offline" in alone.result.served_by
    assert alone.result.degraded is True


def test_offline_without_a_fallback_escalates() -> None:
    r = run_in_lead(judge(None))
    assert r.status is am.RunStatus.ESCALATED
    assert "offline" in r.reason
    assert r.escalation is not None
    assert r.escalation.decision_point == "review/judge"
    alone = run_alone(judge(None))
    assert alone.status is am.RunStatus.ESCALATED
    assert "offline" in alone.reason


# -- tools ---------------------------------------------------------------------------------


def lookup(word: str) -> str:
    """Look a word up in the dictionary."""
    return f"{word}: a letter"


def delete_everything(confirm: bool) -> str:
    """Delete all records."""
    raise AssertionError("must never run")


def answer_after_tool(messages: list, tools: list) -> object:
    if isinstance(messages[-1], ToolMessage):
        return GOOD
    raise AssertionError("unexpected call")


def test_a_declared_tool_runs_through_the_gateway_and_its_result_goes_back() -> None:
    offered: list[list[str]] = []

    def respond(messages: list, tools: list) -> object:
        offered.append(sorted(t["function"]["name"] for t in tools))
        if isinstance(messages[-1], ToolMessage):
            return GOOD
        return tool_call("lookup", word="a")

    model = ScriptedChatModel(respond=respond)
    gateway = am.ToolGateway()
    r = run_in_lead(judge(model, tools=[lookup]), tools=gateway)
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == GOOD
    assert [(c.agent, c.tool, dict(c.args), c.ok) for c in gateway.calls] == [
        ("judge", "lookup", {"word": "a"}, True)
    ]
    reply = model.requests[1][-1]
    assert isinstance(reply, ToolMessage)
    assert json.loads(str(reply.content)) == "a: a letter"
    assert r.usage.tool_calls == 1
    assert r.usage.model_calls == 2
    # the declared tool and the output schema are offered, nothing else
    assert offered == [["Verdict", "lookup"], ["Verdict", "lookup"]]


def test_an_undeclared_tool_is_refused_and_the_run_still_completes() -> None:
    model = ScriptedChatModel(
        script=[tool_call("delete_everything", confirm=True)], respond=answer_after_tool
    )
    gateway = am.ToolGateway([delete_everything])
    r = run_in_lead(judge(model, tools=[lookup]), tools=gateway)
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == GOOD
    assert len(gateway.calls) == 1
    refused = gateway.calls[0]
    assert (refused.tool, refused.ok, refused.error) == (
        "delete_everything",
        False,
        "not permitted",
    )
    reply = model.requests[1][-1]
    assert isinstance(reply, ToolMessage)
    assert reply.status == "error"
    assert "may not call tool 'delete_everything'" in str(reply.content)
    assert "lookup" in str(reply.content)


def test_tool_permission_error_names_agent_and_tool() -> None:
    gateway = am.ToolGateway()
    with pytest.raises(am.ToolPermissionError) as info:
        gateway.execute("rm", {}, agent="judge", allowed={})
    assert info.value.tool == "rm"
    assert info.value.agent == "judge"
    assert isinstance(info.value, am.ToolError)


# -- usage ---------------------------------------------------------------------------------


def test_usage_tokens_and_cost_add_up() -> None:
    small = ScriptedChatModel(script=[tool_call("Verdict", count="x", long=False), GOOD])

    class Note(BaseModel):
        note: str

    class Pair(BaseModel):
        count: int
        long: bool
        note: str

    writer_model = ScriptedChatModel(script=[Note(note="fine")])
    writer = am.Specialist(
        name="writer",
        input=Verdict,
        output=Note,
        layer="frontier_model",
        model=writer_model,
    )
    lead = am.Lead(name="review", input=Words, output=Pair, stages=[judge(small), writer])
    top = am.Meta(name="top", input=Words, output=Pair, stages=[lead])
    r = am.run(top.compile(), WORDS, checkpointer=None)
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == Pair(count=3, long=False, note="fine")
    models = (small, writer_model)
    assert r.usage.model_calls == small.calls + writer_model.calls == 3
    assert r.usage.input_tokens == sum(m.input_tokens for m in models)
    assert r.usage.output_tokens == sum(m.output_tokens for m in models)
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    expected = cost_usd("gpt-4o-mini", r.usage.input_tokens, r.usage.output_tokens)
    assert expected > 0
    assert r.usage.cost_usd == pytest.approx(expected, rel=1e-6)
