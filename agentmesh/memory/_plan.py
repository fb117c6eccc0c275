"""How many unfiltered candidates a filtered vector query should try first.

A backend whose filtered search is slow (Chroma lists every row a ``where`` admits)
can first take the ``m`` nearest items without a filter and keep those that pass. If
at least ``k`` pass, they are the filtered top ``k``. ``m`` is the smallest number for
which ``k`` passes are likely (a 95% one-sided binomial bound) given the share of
candidates that passed filters of the same shape before; each try refines that share.
A short try is followed by one asking for just enough more candidates for the passes
still missing; after ``TRIES`` tries the backend runs its filtered query.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from agentmesh.memory._filter import ItemFilter

__all__ = ["TRIES", "CandidatePlanner", "needed"]

TRIES: Final = 3

_Z: Final = 1.645  # one-sided 95%
_PRIOR: Final = 0.5
_WEIGHT: Final = 0.2
_FLOOR: Final = 0.01


class CandidatePlanner:
    """Learns, per filter shape, the share of nearest items that pass (thread-safe).

    The shape of a filter is which data types it names and whether it admits others;
    its time bounds move with the clock and do not change the shape.
    """

    def __init__(self, *, limit: int) -> None:
        """Plan at most ``limit`` candidates per try (``0`` disables planning)."""
        self.limit = limit
        self._share: dict[tuple[tuple[str, ...], bool], float] = {}
        self._lock = threading.Lock()

    def first(self, where: ItemFilter, k: int) -> int:
        """Candidates for the first try; ``0`` means run the filtered query instead."""
        return self._within(needed(k, self._estimate(where)))

    def more(self, where: ItemFilter, k: int, *, tried: int, passed: int) -> int:
        """Candidates for the next try after ``passed`` of ``tried`` passed (``0``: stop)."""
        return self._within(tried + needed(k - passed, self._estimate(where)))

    def _within(self, m: int) -> int:
        return m if m <= self.limit else 0

    def _estimate(self, where: ItemFilter) -> float:
        with self._lock:
            return self._share.get(_shape(where), _PRIOR)

    def observe(self, where: ItemFilter, passed: int, tried: int) -> None:
        """Record that ``passed`` of ``tried`` candidates passed ``where``."""
        if tried == 0:
            return
        key = _shape(where)
        with self._lock:
            old = self._share.get(key, _PRIOR)
            self._share[key] = (1 - _WEIGHT) * old + _WEIGHT * (passed / tried)


def needed(k: int, share: float) -> int:
    """The fewest candidates ``m`` with ``m*p - z*sqrt(m*p*(1-p)) >= k``, ``p = share``."""
    p = min(max(share, _FLOOR), 1.0)
    if p >= 1.0:
        return k
    # Solve for x = sqrt(m*p): x^2 - z*sqrt(1-p)*x - k = 0.
    b = _Z * math.sqrt(1 - p)
    x = (b + math.sqrt(b * b + 4 * k)) / 2
    return max(k, math.ceil(x * x / p))


def _shape(where: ItemFilter) -> tuple[tuple[str, ...], bool]:
    return tuple(sorted(where.types)), where.others is not None
