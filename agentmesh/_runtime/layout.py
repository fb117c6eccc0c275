"""Refusing checkpoints written by an earlier coordinator state layout.

Before agentmesh kept a coordinator's bookkeeping in its ``ctl`` channel, the
board of known fields (and, earlier still, the gate decisions, usage spent and
outcome) had channels of their own. LangGraph restores only the channels a
graph declares, so such a thread resumed by this version would run on without
its board: stages re-run, or the result is built from nothing. It is refused
instead, once, when a run resumes from a checkpoint (never per step).
"""

from __future__ import annotations

from typing import Any

from agentmesh.errors import CheckpointLayoutError

# Channels only the earlier layouts had. ``board`` was a channel in every earlier
# layout and is never one now; ``gates``, ``spent`` and ``outcome`` are channels
# again (published) once a top-level run finishes, so they are reported, not tested.
_LEGACY = ("board", "gates", "spent", "outcome")


def check_layout(checkpointer: Any, config: Any, thread_id: str) -> None:
    """Raise if ``thread_id`` is an unfinished run checkpointed by an earlier layout.

    The top-level checkpoint settles it when the coordinator has planned (its
    board is in ``ctl``) or finished; otherwise (paused inside its first stage)
    the latest checkpoint of each subgraph is read too.

    Raises:
        CheckpointLayoutError: A ``board`` channel in a checkpoint with no result yet.
    """
    if checkpointer is None:
        return
    top = checkpointer.get_tuple(config)
    if top is None:
        return
    values: dict[str, Any] = top.checkpoint.get("channel_values") or {}
    if values.get("result") is not None or "board" in (values.get("ctl") or {}):
        return  # finished (a next task starts afresh), or this layout
    latest: dict[str, dict[str, Any]] = {}
    for saved in checkpointer.list(config):  # newest first in each namespace
        ns = saved.config["configurable"].get("checkpoint_ns", "")
        latest.setdefault(ns, saved.checkpoint.get("channel_values") or {})
    for channels in latest.values():
        if "board" in channels and channels.get("result") is None:
            found = tuple(c for c in _LEGACY if c in channels)
            raise CheckpointLayoutError(
                f"thread '{thread_id}' was checkpointed by an earlier agentmesh state "
                f"layout (channels {', '.join(found)}); resuming it with this version "
                "would lose its board of known fields. Finish it with the agentmesh "
                "version that started it.",
                thread_id=thread_id,
                channels=found,
            )
