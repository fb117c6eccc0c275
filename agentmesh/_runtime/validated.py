"""Objects this process validated, found again by the JSON dict they were written as.

Graph state holds envelopes in JSON form, and the next node needs them as typed
objects again: a coordinator's output (validated when it finished) at its
parent's gate and in ``agentmesh.run``; the task envelope ``agentmesh.run``
validated at the meta role's first node. When the dict read back is the very
dict written (the same object: it crossed no checkpoint, no serializer and no
process), the object validated then is reused. Any other dict (read from a
checkpoint, sent by another process, given by a caller) is validated again.
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


def remember(envelope: Mapping[str, Any], typed: BaseModel) -> None:
    """Note that ``typed`` (validated) is what ``envelope`` (or its output) was dumped from."""
    if len(_BUILT) >= _LIMIT:
        _BUILT.clear()
    # The entry keeps the envelope alive, so its id is not reused meanwhile.
    _BUILT[id(envelope)] = (envelope, typed)


def claim(envelope: Mapping[str, Any]) -> BaseModel | None:
    """The object noted for ``envelope`` if this process wrote that very dict, once."""
    entry = _BUILT.pop(id(envelope), None)
    return entry[1] if entry is not None and entry[0] is envelope else None
