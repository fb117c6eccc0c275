"""How many unfiltered candidates a filtered vector query should try first.

A backend whose filtered search is slow (Chroma lists every row a ``where`` admits)
can first take the ``m`` nearest items without a filter and keep those that pass. If
at least ``k`` pass, they are the filtered top ``k``. ``m`` is the smallest number for
which ``k`` passes are likely (a 95% one-sided binomial bound) given the share of
candidates that passed filters of the same shape before; each try refines that share.
A short try is followed by one asking for just enough more candidates for the passes
still missing; after ``TRIES`` tries the backend runs its filtered query.

Why 95%: a short try costs a second query that reads all its candidates again.
Measured on Chroma at 100,000 items (``k=5``, 57-60% passing), a 90% bound (13
candidates against 14-15) made the median filtered query 1-2% faster but its mean
and 95th percentile slower.

The share is the pass rate over recent candidates (decayed counts), not an average of
per-query rates: every candidate weighs the same, so ``m`` stays steady from one query
to the next instead of following the noise of the last few.
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
_PRIOR_CANDIDATES: Final = 10.0  # how many candidates' worth the prior counts for
_DECAY: Final = 0.98  # per query: the last ~50 queries make the estimate
_FLOOR: Final = 0.01
_START: Final = (_PRIOR * _PRIOR_CANDIDATES, _PRIOR_CANDIDATES)


class CandidatePlanner:
    """Learns, per filter shape, the share of nearest items that pass (thread-safe).

    The shape of a filter is which data types it names and whether it admits others;
    its time bounds move with the clock and do not change the shape.
    """

    def __init__(self, *, limit: int) -> None:
        """Plan at most ``limit`` candidates per try (``0`` disables planning)."""
        self.limit = limit
        # Per shape: decayed (passed, tried) counts, starting from the prior.
        self._counts: dict[tuple[tuple[str, ...], bool], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def first(self, where: ItemFilter, k: int) -> int:
        """Candidates for the first try; ``0`` means run the filtered query instead."""
        return self._within(needed(k, self.share(where)))

    def more(self, where: ItemFilter, k: int, *, tried: int, passed: int) -> int:
        """Candidates for the next try after ``passed`` of ``tried`` passed (``0``: stop)."""
        return self._within(tried + needed(k - passed, self.share(where)))

    def _within(self, m: int) -> int:
        return m if m <= self.limit else 0

    def share(self, where: ItemFilter) -> float:
        """The estimated share of nearest candidates that pass filters shaped like ``where``."""
        with self._lock:
            passed, tried = self._counts.get(_shape(where), _START)
        return passed / tried

    def observe(self, where: ItemFilter, passed: int, tried: int) -> None:
        """Record that ``passed`` of ``tried`` candidates passed ``where``."""
        if tried == 0:
            return
        key = _shape(where)
        with self._lock:
            old_passed, old_tried = self._counts.get(key, _START)
            self._counts[key] = (_DECAY * old_passed + passed, _DECAY * old_tried + tried)


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
