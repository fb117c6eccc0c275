"""Hard hierarchical budgets: caps at every level, holds, overruns, pressure; token counts."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from agentmesh.controls import tokens as tk
from agentmesh.controls.budget import Budget, Envelope
from agentmesh.errors import BudgetExhaustedError, ConfigError
from agentmesh.pricing import Price, cost_usd, price_for, price_table, worst_case_cost


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tree() -> Envelope:
    return Envelope(
        Budget(
            tokens=1000,
            cost_usd=1.0,
            model_calls=10,
            steps=20,
            shares={
                "back_office": Budget(
                    tokens=600, cost_usd=0.5, shares={"intake": 0.5, "billing": 0.25}
                ),
                "front": 0.3,
            },
        )
    )


# -- caps ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("budget", "ask", "limit"),
    [
        (Budget(tokens=100), {"tokens": 101, "cost_usd": 0.0}, "tokens"),
        (Budget(cost_usd=0.01), {"tokens": 1, "cost_usd": 0.0101}, "cost_usd"),
        (Budget(model_calls=2), {"tokens": 1, "cost_usd": 0.0, "model_calls": 3}, "model_calls"),
    ],
)
def test_each_cap_refuses_a_reservation_that_would_pass_it(
    budget: Budget, ask: dict[str, float], limit: str
) -> None:
    env = Envelope(budget, run_id="r1")
    with pytest.raises(BudgetExhaustedError) as info:
        env.reserve(**ask, agent="intake")  # type: ignore[arg-type]
    err = info.value
    assert (err.scope, err.limit, err.run_id, err.agent) == ("run", limit, "r1", "intake")
    assert err.needed > err.cap == getattr(budget, limit)
    assert env.snapshot()["reserved"] == {"tokens": 0, "cost_usd": 0.0, "model_calls": 0}


def test_reservations_fill_a_cap_exactly_and_not_one_more() -> None:
    env = Envelope(Budget(tokens=100, cost_usd=0.3))
    held = [env.reserve(tokens=25, cost_usd=0.1) for _ in range(3)]  # 0.1 * 3 != 0.3 in floats
    env.reserve(tokens=25, cost_usd=0.0)
    with pytest.raises(BudgetExhaustedError) as info:
        env.reserve(tokens=1, cost_usd=0.0)
    assert info.value.limit == "tokens"
    with pytest.raises(BudgetExhaustedError):
        env.reserve(tokens=0, cost_usd=1e-9)
    for r in held:
        env.settle(r, tokens=25, cost_usd=0.1)
    assert env.spent.cost_usd == pytest.approx(0.3)
    assert env.spent.tokens == 75


def test_steps_cap() -> None:
    env = Envelope(Budget(steps=2))
    env.step()
    env.step()
    with pytest.raises(BudgetExhaustedError) as info:
        env.step(agent="a")
    assert (info.value.limit, info.value.cap, info.value.needed, info.value.agent) == (
        "steps",
        2,
        3,
        "a",
    )
    assert env.spent.steps == 2


def test_wall_clock_cap_stops_steps_reservations_and_checks() -> None:
    clock = FakeClock()
    env = Envelope(Budget(wall_clock_s=10.0), clock=clock)
    env.step()
    env.check_clock()
    clock.now += 9.5
    assert env.pressure() == pytest.approx(0.95)
    clock.now += 0.5
    for attempt in (env.step, env.check_clock, lambda: env.reserve(tokens=1, cost_usd=0.0)):
        with pytest.raises(BudgetExhaustedError) as info:
            attempt()
        assert (info.value.limit, info.value.cap, info.value.needed) == ("wall_clock_s", 10.0, 10.0)
    assert env.spent.elapsed_s == 10.0


# -- hierarchy ----------------------------------------------------------------------------------


def test_child_shares_are_fractions_or_explicit_budgets_and_children_are_reused() -> None:
    run = tree()
    intake = run.child("back_office").child("intake")
    assert intake is run.child("back_office").child("intake")
    assert intake.scope == "run/back_office/intake"
    assert intake.budget == Budget(tokens=300, cost_usd=0.25)
    assert run.child("front").budget == Budget(tokens=300, cost_usd=0.3, model_calls=3, steps=6)
    assert run.child("back_office").child("billing").budget.tokens == 150


def test_a_child_is_refused_at_its_own_cap_and_names_its_scope() -> None:
    intake = tree().child("back_office").child("intake")
    intake.reserve(tokens=300, cost_usd=0.0)
    with pytest.raises(BudgetExhaustedError) as info:
        intake.reserve(tokens=1, cost_usd=0.0)
    assert (info.value.scope, info.value.limit, info.value.cap) == (
        "run/back_office/intake",
        "tokens",
        300,
    )


def test_a_child_can_never_spend_beyond_its_parent() -> None:
    run = tree()
    office = run.child("back_office")
    office.child("billing").reserve(tokens=150, cost_usd=0.0)
    intake = office.child("intake")
    intake.reserve(tokens=300, cost_usd=0.0)
    # The on-demand child has no caps of its own, so the lead's cap refuses it.
    with pytest.raises(BudgetExhaustedError) as info:
        office.child("adhoc").reserve(tokens=151, cost_usd=0.0)
    assert (info.value.scope, info.value.cap, info.value.needed) == ("run/back_office", 600, 601)
    # ... and the run's cap refuses a sibling whose own share still has room.
    run.reserve(tokens=399, cost_usd=0.0)
    run.child("front").reserve(tokens=150, cost_usd=0.0)
    with pytest.raises(BudgetExhaustedError) as info:
        run.child("front").reserve(tokens=2, cost_usd=0.0)
    assert (info.value.scope, info.value.needed) == ("run", 1001)


def test_the_nearest_refusing_level_is_named() -> None:
    intake = tree().child("back_office").child("intake")
    with pytest.raises(BudgetExhaustedError) as info:
        intake.reserve(tokens=5000, cost_usd=0.0)  # every level refuses
    assert info.value.scope == "run/back_office/intake"


def test_spend_and_steps_are_charged_at_every_level() -> None:
    run = tree()
    intake = run.child("back_office").child("intake")
    r = intake.reserve(tokens=100, cost_usd=0.05)
    intake.settle(r, tokens=40, cost_usd=0.02)
    intake.step()
    for env in (run, run.child("back_office"), intake):
        assert (env.spent.tokens, env.spent.cost_usd, env.spent.model_calls, env.spent.steps) == (
            40,
            0.02,
            1,
            1,
        )
    assert run.child("front").spent.tokens == 0


# -- reserve / settle / release -----------------------------------------------------------------


def test_release_gives_the_hold_back_and_is_idempotent() -> None:
    env = Envelope(Budget(tokens=100))
    r = env.reserve(tokens=100, cost_usd=0.0)
    env.release(r)
    env.release(r)
    assert env.spent.model_calls == 0
    env.reserve(tokens=100, cost_usd=0.0)


def test_settle_twice_or_in_another_run_is_an_error() -> None:
    env = Envelope(Budget())
    r = env.reserve(tokens=1, cost_usd=0.0)
    with pytest.raises(ValueError, match="not open"):
        Envelope(Budget()).settle(r, tokens=1, cost_usd=0.0)
    env.child("x").settle(r, tokens=1, cost_usd=0.0)  # any envelope of the same tree
    with pytest.raises(ValueError, match="not open"):
        env.settle(r, tokens=1, cost_usd=0.0)
    with pytest.raises(ValueError, match="negative"):
        env.reserve(tokens=-1, cost_usd=0.0)


def test_an_overrun_that_passes_a_cap_is_recorded_and_blocks_the_next_reservation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = Envelope(Budget(tokens=100, steps=10))
    intake = run.child("intake")
    r = intake.reserve(tokens=60, cost_usd=0.0)
    intake.settle(r, tokens=120, cost_usd=0.0)  # the provider used more than the bound
    assert "more than" in caplog.text
    snap = run.snapshot()
    assert snap["overruns"] == 1
    assert snap["children"]["intake"]["overruns"] == 1
    assert run.spent.tokens == 120
    with pytest.raises(BudgetExhaustedError) as info:
        intake.reserve(tokens=0, cost_usd=0.0)
    assert (info.value.scope, info.value.limit, info.value.needed) == ("run", "tokens", 120)
    with pytest.raises(BudgetExhaustedError):
        run.step()


def test_an_overrun_within_the_caps_is_recorded_and_spending_goes_on() -> None:
    env = Envelope(Budget(tokens=1000))
    env.settle(env.reserve(tokens=10, cost_usd=0.0), tokens=20, cost_usd=0.0)
    assert env.snapshot()["overruns"] == 1
    env.reserve(tokens=980, cost_usd=0.0)
    with pytest.raises(BudgetExhaustedError):
        env.reserve(tokens=1, cost_usd=0.0)


def test_concurrent_branches_never_take_more_than_the_shared_cap() -> None:
    run = Envelope(Budget(tokens=1000, model_calls=500))
    granted: list[int] = []
    refused: list[BudgetExhaustedError] = []
    barrier = threading.Barrier(8)

    def branch(name: str) -> None:
        env = run.child(name)
        barrier.wait()
        for _ in range(100):
            try:
                r = env.reserve(tokens=7, cost_usd=0.0)
            except BudgetExhaustedError as exc:
                refused.append(exc)
                continue
            env.settle(r, tokens=7, cost_usd=0.0)
            granted.append(7)

    threads = [threading.Thread(target=branch, args=(f"b{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert run.spent.tokens == sum(granted) == 994  # 142 calls of 7
    assert {e.scope for e in refused} == {"run"}
    assert len(refused) == 800 - 142


# -- pressure, degrade, snapshot ----------------------------------------------------------------


def test_pressure_is_the_tightest_cap_at_any_level_counting_holds() -> None:
    run = Envelope(Budget(tokens=1000, cost_usd=1.0, degrade_at=0.5, shares={"a": 0.5}))
    a = run.child("a")
    assert a.pressure() == 0.0
    held = a.reserve(tokens=100, cost_usd=0.2)
    assert a.pressure() == pytest.approx(0.4)  # cost: 0.2 of its 0.5
    assert run.pressure() == pytest.approx(0.2)
    assert not a.should_degrade()
    a.settle(held, tokens=100, cost_usd=0.25)
    assert a.pressure() == pytest.approx(0.5)
    assert a.should_degrade()
    assert not run.should_degrade()
    run.reserve(tokens=0, cost_usd=0.75)
    assert run.pressure() == 1.0
    assert Envelope(Budget()).pressure() == 0.0
    assert Envelope(Budget(tokens=0)).pressure() == 1.0


def test_snapshot_shows_the_tree() -> None:
    clock = FakeClock()
    run = Envelope(Budget(tokens=100, wall_clock_s=60, shares={"a": 0.5}), clock=clock)
    a = run.child("a")
    a.settle(a.reserve(tokens=10, cost_usd=0.001), tokens=8, cost_usd=0.0005)
    a.reserve(tokens=5, cost_usd=0.0)
    clock.now += 6
    snap = run.snapshot()
    assert snap["caps"] == {"tokens": 100, "wall_clock_s": 60}
    assert snap["spent"] == {
        "tokens": 8,
        "cost_usd": 0.0005,
        "model_calls": 1,
        "steps": 0,
        "elapsed_s": 6.0,
    }
    assert snap["reserved"] == {"tokens": 5, "cost_usd": 0.0, "model_calls": 1}
    assert snap["pressure"] == pytest.approx(0.13)
    child = snap["children"]["a"]
    assert (child["scope"], child["caps"], child["pressure"]) == ("run/a", {"tokens": 50}, 0.26)


def test_budget_validation() -> None:
    for bad in (
        {"tokens": -1},
        {"degrade_at": 0},
        {"degrade_at": 1.5},
        {"shares": {"a": 0.6, "b": 0.5}},
        {"shares": {"a": 0.0}},
        {"shares": {"a/b": 0.1}},
    ):
        with pytest.raises(ConfigError):
            Budget(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Envelope(Budget()).child("")
    Budget(shares={"a": 0.5, "b": 0.5, "c": Budget(tokens=10**9)})


# -- pricing ------------------------------------------------------------------------------------


def test_worst_case_cost_prices_the_prompt_and_a_full_answer() -> None:
    assert worst_case_cost("openai:gpt-4o-mini", prompt_tokens=1000, max_tokens=500) == (
        pytest.approx((1000 * 0.15 + 500 * 0.60) / 1e6)
    )
    assert worst_case_cost("gpt-4o-mini-2024-07-18", prompt_tokens=1, max_tokens=0) == (
        cost_usd("gpt-4o-mini", 1, 0)
    )
    assert worst_case_cost("my-local-model", prompt_tokens=10, max_tokens=10) == 0.0
    with pytest.raises(ValueError, match="negative"):
        worst_case_cost("gpt-4o", prompt_tokens=-1, max_tokens=1)


def test_price_table_is_overridable(monkeypatch: pytest.MonkeyPatch) -> None:
    import agentmesh.pricing as pricing

    monkeypatch.setattr(pricing, "_PRICES", dict(pricing._PRICES))
    pricing.set_price("house-model", Price(input_per_mtok=1.0, output_per_mtok=2.0))
    assert price_for("acme:house-model-v2") == Price(input_per_mtok=1.0, output_per_mtok=2.0)
    assert cost_usd("house-model", 1_000_000, 1_000_000) == 3.0
    assert "house-model" in price_table()
    assert price_for("claude-opus-4-5-20251101") == Price(input_per_mtok=5.0, output_per_mtok=25.0)
    assert price_for("claude-opus-4-1") == Price(input_per_mtok=15.0, output_per_mtok=75.0)


# -- tokens ---------------------------------------------------------------------------------------


@pytest.fixture
def empty_tiktoken_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken"))
    monkeypatch.setattr(tk, "_LOADED", {})
    return tmp_path / "tiktoken"


def test_without_a_cached_encoding_the_bound_is_the_byte_count(empty_tiktoken_cache: Path) -> None:
    text = "Invoice 42: déjà vu ✓ 税"
    assert tk.tokenizer_for("gpt-4o-mini") is None
    assert tk.tokens_upper_bound(text, model="gpt-4o-mini") == len(text.encode())
    assert tk.estimate_tokens(text, model="gpt-4o-mini") == -(-len(text.encode()) // 3)
    bound = tk.prompt_tokens_upper_bound(["system prompt", text], model="gpt-4o")
    assert bound == 13 + len(text.encode()) + 2 * tk.MESSAGE_OVERHEAD_TOKENS + 16


def test_a_damaged_cache_file_is_ignored_rather_than_downloaded(
    empty_tiktoken_cache: Path,
) -> None:
    # tiktoken would re-download a file whose hash does not match; the network fixture
    # makes that fail, and the count falls back to the heuristic instead of raising.
    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    empty_tiktoken_cache.mkdir()
    (empty_tiktoken_cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"garbage")
    assert tk.tokenizer_for("gpt-4o") is None
    assert tk.tokens_upper_bound("abcd", model="gpt-4o") == 4


def test_a_cached_encoding_counts_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    class Words:
        def encode(self, text: str, *, disallowed_special: object = ()) -> list[int]:
            return [0] * len(text.split())

    monkeypatch.setattr(tk, "_LOADED", {"o200k_base": Words()})
    assert tk.tokens_upper_bound("three short words", model="openai:gpt-4.1-mini") == 3
    assert tk.estimate_tokens("three short words", model="gpt-4o") == 3
    # Not an OpenAI model: its tokenizer is unknown, so the byte bound applies.
    assert tk.tokens_upper_bound("three short words", model="claude-sonnet-4") == 17


def test_usage_comes_from_the_provider_or_is_estimated(empty_tiktoken_cache: Path) -> None:
    reported = tk.usage_or_estimate(
        {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15}, prompt=["x"], output="y"
    )
    assert reported == tk.TokenCount(input_tokens=12, output_tokens=3)
    guessed = tk.usage_or_estimate(None, prompt=["a" * 30, "b" * 3], output="c" * 7)
    assert guessed == tk.TokenCount(input_tokens=11, output_tokens=3, estimated=True)
