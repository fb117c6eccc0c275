"""Runaway runs: a retry storm or a re-plan storm ends the run ``halted``, with the reason."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

import agentmesh as am
from agentmesh._runtime import guard
from agentmesh.controls import RetryPolicy
from agentmesh.testing import FakeOpenAIServer, Fault

pytestmark = pytest.mark.timeout(60)

QUICK = RetryPolicy(initial_interval=0.001, max_interval=0.01, max_attempts=10, jitter=False)


class Doc(BaseModel):
    text: str


class Note(BaseModel):
    note: str


class Other(BaseModel):
    other: str


class Both(BaseModel):
    note: str
    other: str


@pytest.fixture(autouse=True)
def _fresh_services() -> Iterator[None]:
    """Breakers are shared per process and settings: no test sees another's."""
    guard._SERVICES.clear()
    yield
    guard._SERVICES.clear()


@pytest.fixture
def failing() -> Iterator[FakeOpenAIServer]:
    """A model endpoint that answers every request with HTTP 500."""
    with FakeOpenAIServer(default=Fault.status(500)) as server:
        yield server


def llm(srv: FakeOpenAIServer) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini", base_url=srv.base_url, api_key="x", max_retries=0, timeout=5.0
    )


def chats(srv: FakeOpenAIServer) -> int:
    return sum(r.path.endswith("/chat/completions") for r in srv.requests)


def model_agent(name: str, srv: FakeOpenAIServer, output: type[BaseModel]) -> am.Specialist:
    def rules(doc: Doc) -> BaseModel:
        return output(**dict.fromkeys(output.model_fields, "by rules"))

    return am.Specialist(
        name=name, input=Doc, output=output, layer="small_model", model=llm(srv), fallback=rules
    )


# -- retry storm ---------------------------------------------------------------------------------


def test_a_model_that_always_500s_is_stopped_as_a_retry_storm(failing: FakeOpenAIServer) -> None:
    agent = model_agent("writer", failing, Note)
    graph = am.Lead(name="desk", input=Doc, output=Note, stages=[agent]).compile()

    result = am.run(
        graph,
        Doc(text="x"),
        checkpointer=None,
        controls=am.Controls(retry=QUICK, max_retries_per_run=3),
    )

    # Even with a fallback: a storm says something is broken, so the run stops.
    assert result.status is am.RunStatus.HALTED
    assert result.reason.startswith("retry storm: 4 retries within")
    assert re.search(r"model:gpt-4o-mini@\S+ x4", result.reason), result.reason
    assert chats(failing) == 4  # the first attempt and three retries; the fourth is refused
    assert result.output is None


def test_the_retry_storm_limit_counts_retries_across_the_whole_run(
    failing: FakeOpenAIServer,
) -> None:
    first, second = model_agent("drafter", failing, Note), model_agent("checker", failing, Other)
    graph = am.Lead(name="desk", input=Doc, output=Both, stages=[first, second]).compile()

    result = am.run(
        graph,
        Doc(text="x"),
        checkpointer=None,
        controls=am.Controls(retry=QUICK._replace(max_attempts=3), max_retries_per_run=2),
    )

    # drafter used its three attempts (two retries) and answered by rules; checker's
    # first retry is the run's third: the storm guard stops the run there.
    assert result.status is am.RunStatus.HALTED
    assert result.reason.startswith("retry storm: 3 retries")
    assert chats(failing) == 4
    assert result.partial["drafter"].output == {"note": "by rules"}
    assert "checker" not in result.partial


# -- re-plan storm -------------------------------------------------------------------------------


def never_good() -> am.Gate:
    return am.Gate(
        checks=[
            am.Check(
                name="never good",
                fn=lambda out, board: "try another plan",
                on_fail=am.GateAction.REPLAN,
            )
        ]
    )


def counting_agent(name: str, output: type[BaseModel], runs: list[str]) -> am.Specialist:
    counter = itertools.count(1)

    def work(doc: Doc) -> BaseModel:
        runs.append(name)
        # A different answer each time, so the loop detector does not stop it first.
        return output(**dict.fromkeys(output.model_fields, f"{name} #{next(counter)}"))

    work.__name__ = name
    return am.Specialist(name=name, input=Doc, output=output, fn=work, gate=never_good())


def test_a_gate_that_always_says_replan_is_stopped_as_a_replan_storm() -> None:
    runs: list[str] = []
    lead = am.Lead(
        name="planner",
        input=Doc,
        output=Note,
        stages=[counting_agent("drafter", Note, runs)],
        max_replans=50,  # the lead's own limit would escalate; the run's limit comes first
    )
    result = am.run(
        lead.compile(),
        Doc(text="x"),
        checkpointer=None,
        controls=am.Controls(max_replans_per_run=2),
    )

    assert result.status is am.RunStatus.HALTED
    assert result.reason.startswith("re-plan storm: 3 re-plans in run")
    assert "last by planner; limit 2" in result.reason
    assert runs == ["drafter"] * 3


def test_replans_are_counted_across_every_level_of_the_run() -> None:
    runs: list[str] = []
    leads = [
        am.Lead(
            name=f"lead_{i}",
            input=Doc,
            output=output,
            stages=[counting_agent(f"agent_{i}", output, runs)],
            max_replans=50,
        )
        for i, output in ((1, Note), (2, Other))
    ]
    meta = am.Meta(name="top", input=Doc, output=Both, stages=leads)

    result = am.run(
        meta.compile(),
        Doc(text="x"),
        checkpointer=None,
        controls=am.Controls(max_replans_per_run=1),
    )

    assert result.status is am.RunStatus.HALTED
    assert "re-plan storm: 2 re-plans" in result.reason
    assert "last by lead_1" in result.reason
    assert runs == ["agent_1", "agent_1"]


def test_without_a_storm_the_leads_own_replan_limit_escalates() -> None:
    runs: list[str] = []
    lead = am.Lead(
        name="planner",
        input=Doc,
        output=Note,
        stages=[counting_agent("drafter", Note, runs)],
        max_replans=2,
    )
    result = am.run(
        lead.compile(),
        Doc(text="x"),
        checkpointer=None,
        controls=am.Controls(max_replans_per_run=10),
    )
    assert result.status is am.RunStatus.ESCALATED
    assert "re-plan limit (2) reached" in result.reason
