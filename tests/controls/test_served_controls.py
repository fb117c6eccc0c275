"""Graphs invoked directly (as LangGraph's server does) still run under the controls."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

import agentmesh as am
from agentmesh.controls import KillSwitch


class Ask(BaseModel):
    text: str


class Echo(BaseModel):
    text: str


def test_the_kill_switch_stops_a_graph_invoked_without_agentmesh_run() -> None:
    ran: list[str] = []

    @am.specialist()
    def echo(a: Ask) -> Echo:
        """Echo."""
        ran.append(a.text)
        return Echo(text=a.text)

    graph = am.Lead(name="served_desk", input=Ask, output=Echo, stages=[echo]).compile()
    config = {"configurable": {"thread_id": "served-1"}}
    assert graph.invoke({"input": {"text": "a"}}, config)["result"]["status"] == "ok"

    switch = KillSwitch()
    switch.kill(workflow="served_desk", reason="incident 42")
    try:
        with pytest.raises(am.RunKilledError, match="incident 42"):
            graph.invoke({"input": {"text": "b"}}, {"configurable": {"thread_id": "served-2"}})
    finally:
        switch.clear(workflow="served_desk")
    assert ran == ["a"]
