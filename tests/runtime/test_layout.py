"""Threads checkpointed by an earlier coordinator state layout are refused on resume."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

import agentmesh as am

from ._graphs import Approval, Doc, approval_graph


def _to_legacy_layout(saver: InMemorySaver, thread: str) -> int:
    """Rewrite each paused coordinator's latest checkpoint as the earlier layout wrote it:
    board, gates and spent in channels of their own, not in ``ctl``."""
    rewritten = 0
    latest: dict[str, Any] = {}
    for saved in saver.list({"configurable": {"thread_id": thread}}):
        latest.setdefault(saved.config["configurable"]["checkpoint_ns"], saved)
    for saved in latest.values():
        checkpoint = saved.checkpoint
        ctl = dict(checkpoint["channel_values"].get("ctl") or {})
        if "board" not in ctl:
            continue
        moved = {key: ctl.pop(key) for key in ("board", "gates", "spent") if key in ctl}
        values = {**checkpoint["channel_values"], **moved, "ctl": ctl}
        versions = {**checkpoint["channel_versions"], **dict.fromkeys(moved, 1)}
        legacy = {**checkpoint, "channel_values": values, "channel_versions": versions}
        saver.put(saved.parent_config or saved.config, legacy, saved.metadata, versions)
        rewritten += 1
    return rewritten


def test_a_paused_thread_of_the_earlier_layout_is_refused_with_its_thread() -> None:
    saver = InMemorySaver()
    graph = approval_graph()
    paused = am.run(graph, Doc(text="pay it"), thread_id="legacy", checkpointer=saver)
    assert paused.status is am.RunStatus.AWAITING_HUMAN
    assert _to_legacy_layout(saver, "legacy") >= 1

    with pytest.raises(am.CheckpointLayoutError) as info:
        am.resume(graph, "legacy", {"approved": True, "approver": "ana"}, checkpointer=saver)

    assert info.value.thread_id == "legacy"
    assert "board" in info.value.channels
    assert "earlier agentmesh state layout" in str(info.value)
    assert isinstance(info.value, am.RunError)
    with pytest.raises(am.CheckpointLayoutError):
        am.run(graph, None, thread_id="legacy", checkpointer=saver)


def test_a_paused_thread_of_this_layout_resumes() -> None:
    saver = InMemorySaver()
    graph = approval_graph()
    am.run(graph, Doc(text="pay it"), thread_id="current", checkpointer=saver)

    done = am.resume(graph, "current", {"approved": True, "approver": "ana"}, checkpointer=saver)

    assert done.status is am.RunStatus.COMPLETED, done.reason
    assert done.output == Approval(approved=True, approver="ana")
    assert [g.stage for g in done.gates] == ["review"]
