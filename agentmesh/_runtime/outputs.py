"""Typed outputs this process built, found again by the result envelope carrying them.

A coordinator validates its output when it finishes and writes its result
envelope to state in JSON form; the parent's gate (or ``agentmesh.run``) needs
that output as a typed object again. When the envelope read back is the very
dict the finishing step built (the same object: it crossed no checkpoint, no
serializer and no process), the object validated then is reused. Any other
envelope (read from a checkpoint, sent by another process) is validated again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pydantic import BaseModel

__all__ = ["claim", "remember"]

# Envelopes nobody claims (a graph invoked directly) are forgotten in bulk past
# this many: a miss only costs a validation.
_LIMIT = 256
_BUILT: dict[int, tuple[Mapping[str, Any], BaseModel]] = {}


def remember(envelope: Mapping[str, Any], output: BaseModel) -> None:
    """Note that ``envelope["output"]`` is ``output`` dumped in JSON form."""
    if len(_BUILT) >= _LIMIT:
        _BUILT.clear()
    # The entry keeps the envelope alive, so its id is not reused meanwhile.
    _BUILT[id(envelope)] = (envelope, output)


def claim(envelope: Mapping[str, Any]) -> BaseModel | None:
    """The typed output behind ``envelope`` if this process built that very dict, once."""
    entry = _BUILT.pop(id(envelope), None)
    return entry[1] if entry is not None and entry[0] is envelope else None
