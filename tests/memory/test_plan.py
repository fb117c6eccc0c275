"""The candidate planner: how many unfiltered candidates a filtered query tries first."""

from __future__ import annotations

import math
import random

import pytest
from _external_support import DAY, NOW

from agentmesh.memory import ItemFilter, Window
from agentmesh.memory._plan import CandidatePlanner, needed

FRESH = ItemFilter(types={"fx_rates": Window(ingested_since=NOW - DAY)}, others=Window())


def _short(m: int, share: float, k: int) -> float:
    """The chance that fewer than ``k`` of ``m`` candidates pass, each with ``share``."""
    return sum(math.comb(m, i) * share**i * (1 - share) ** (m - i) for i in range(k))


def test_planned_candidates_fall_short_at_most_one_time_in_twenty() -> None:
    for k in range(1, 21):
        for share in [s / 100 for s in range(2, 100, 3)]:
            assert _short(needed(k, share), share, k) <= 0.05, (k, share)


def test_plan_for_the_usual_query() -> None:
    # k=5 with 57% passing (the bench's policy): 15 candidates; 13 would fall short
    # more than one time in twenty.
    assert needed(5, 0.57) == 15
    assert _short(15, 0.57, 5) <= 0.05 < _short(13, 0.57, 5)


def test_everything_passing_needs_exactly_k() -> None:
    assert needed(5, 1.0) == 5
    assert needed(1, 0.0) == needed(1, 0.01)  # a floor keeps a share of 0 finite


def test_share_weighs_every_candidate_the_same() -> None:
    planner = CandidatePlanner(limit=256)
    for _ in range(50):
        planner.observe(FRESH, passed=1, tried=1)
        planner.observe(FRESH, passed=0, tried=99)
    # 50 of 5,000 candidates passed: an average of per-query rates would say 50%.
    assert planner.share(FRESH) == pytest.approx(0.01, abs=0.005)


def test_first_try_stays_steady_while_the_share_does_not_change() -> None:
    planner = CandidatePlanner(limit=256)
    rng = random.Random(3)
    sizes = []
    for n in range(300):
        m = planner.first(FRESH, 5)
        planner.observe(FRESH, sum(rng.random() < 0.6 for _ in range(m)), m)
        if n >= 100:
            sizes.append(m)
    assert max(sizes) - min(sizes) <= 1
    assert min(sizes) >= needed(5, 0.65) and max(sizes) <= needed(5, 0.55)


def test_shapes_learn_apart_and_time_bounds_do_not_change_the_shape() -> None:
    planner = CandidatePlanner(limit=256)
    for _ in range(100):
        planner.observe(FRESH, passed=1, tried=10)
    later = ItemFilter(types={"fx_rates": Window(ingested_since=NOW)}, others=Window())
    only_fx = ItemFilter(types={"fx_rates": Window()}, others=None)
    assert planner.share(later) == planner.share(FRESH) < 0.15
    assert planner.share(only_fx) == 0.5  # the prior: nothing seen for this shape
    assert planner.first(later, 5) > planner.first(only_fx, 5)


def test_limit_caps_every_try() -> None:
    planner = CandidatePlanner(limit=20)
    assert planner.first(FRESH, 5) == needed(5, 0.5) <= 20
    assert planner.more(FRESH, 5, tried=needed(5, 0.5), passed=0) == 0
    assert CandidatePlanner(limit=0).first(FRESH, 1) == 0
