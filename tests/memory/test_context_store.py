"""Step stores: one conformance suite for every backend, plus what only SQLite does."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from agentmesh.memory._step_store import (
    STEPS_FILE,
    InMemoryStepStore,
    SQLiteStepStore,
    StepStore,
    build_recall_tool,
)
from agentmesh.memory.context import ContextBudget, WorkingContext
from agentmesh.settings import Settings

STEP: list[BaseMessage] = [
    AIMessage(
        "checking both",
        tool_calls=[
            {
                "name": "lookup",
                "args": {"id": "INV-1", "deep": True},
                "id": "c1",
                "type": "tool_call",
            },
            {"name": "fetch", "args": {"n": 2}, "id": "c2", "type": "tool_call"},
        ],
    ),
    ToolMessage('{"total": 12.5}', tool_call_id="c1"),
    ToolMessage("error: upstream timed out", tool_call_id="c2", status="error"),
]


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], StepStore]]:
    opened: list[SQLiteStepStore] = []

    def make() -> StepStore:
        if request.param == "memory":
            return InMemoryStepStore()
        store = SQLiteStepStore(tmp_path / "nested" / "steps.sqlite")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


# -- conformance: every backend ----------------------------------------------------------


def test_is_a_step_store(make_store: Callable[[], StepStore]) -> None:
    assert isinstance(make_store(), StepStore)


def test_round_trip_keeps_tool_calls_ids_and_status(make_store: Callable[[], StepStore]) -> None:
    store = make_store()
    store.put("p1", STEP)
    back = store.get("p1")
    assert back == STEP
    assert back is not None
    assert isinstance(back[0], AIMessage) and back[0].tool_calls[1]["args"] == {"n": 2}
    assert isinstance(back[2], ToolMessage) and back[2].status == "error"


def test_unknown_pointer_is_none(make_store: Callable[[], StepStore]) -> None:
    assert make_store().get("nowhere") is None


def test_put_replaces_and_stored_records_do_not_alias(make_store: Callable[[], StepStore]) -> None:
    store = make_store()
    messages: list[BaseMessage] = [HumanMessage("first")]
    store.put("p", messages)
    messages.append(HumanMessage("mutated after put"))
    assert store.get("p") == [HumanMessage("first")]
    store.put("p", [HumanMessage("second")])
    assert store.get("p") == [HumanMessage("second")]


def test_concurrent_puts_and_gets(make_store: Callable[[], StepStore]) -> None:
    store = make_store()
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(25):
                store.put(f"t{t}:{i}", [HumanMessage(f"{t}-{i}")])
                assert store.get(f"t{t}:{i}") == [HumanMessage(f"{t}-{i}")]
        except BaseException as exc:  # surfaced below: threads swallow failures
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert all(store.get(f"t{t}:24") == [HumanMessage(f"{t}-24")] for t in range(8))


def test_recall_tool_over_a_store(make_store: Callable[[], StepStore]) -> None:
    store = make_store()
    store.put("step:x:1", STEP)
    rows = json.loads(build_recall_tool(store.get).invoke({"pointer": "step:x:1"}))
    assert [r["role"] for r in rows] == ["ai", "tool", "tool"]
    assert rows[0]["tool_calls"][0] == {"name": "lookup", "args": {"id": "INV-1", "deep": True}}
    assert rows[2] == {
        "role": "tool",
        "content": "error: upstream timed out",
        "tool_call_id": "c2",
        "status": "error",
    }


def test_working_context_externalizes_to_the_store(make_store: Callable[[], StepStore]) -> None:
    store = make_store()
    ctx = WorkingContext(
        ContextBudget(max_tokens=600), pinned=[HumanMessage("goal")], store=store, context_id="w"
    )
    for n in range(1, 15):
        ai = AIMessage("", tool_calls=[{"name": "f", "args": {"n": n}, "id": f"c{n}"}])
        ctx.add(ai, ToolMessage("r" * 400, tool_call_id=f"c{n}"))
    compressed = ctx.stats.compressed
    assert compressed > 5
    for n in range(1, compressed + 1):
        back = store.get(f"step:w:{n}")
        assert back is not None and back[0].tool_calls[0]["args"] == {"n": n}  # type: ignore[attr-defined]


# -- SQLite only -------------------------------------------------------------------------


def test_sqlite_records_outlive_the_connection(tmp_path: Path) -> None:
    path = tmp_path / "steps.sqlite"
    with SQLiteStepStore(path) as store:
        store.put("p", STEP)
    with SQLiteStepStore(path) as again:
        assert again.get("p") == STEP


def test_sqlite_store_lives_under_the_data_folder() -> None:
    data_dir = Settings.from_env().data_dir  # a temporary folder (tests/conftest.py)
    with SQLiteStepStore.in_data_dir(data_dir) as store:
        store.put("p", [HumanMessage("x")])
        assert store.path == data_dir / STEPS_FILE
    assert (data_dir / "context" / "steps.sqlite").is_file()
