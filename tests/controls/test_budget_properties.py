"""Property tests: random budget trees, random (concurrent) spending; caps always hold."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentmesh.controls.budget import Budget, Envelope, Reservation
from agentmesh.errors import BudgetExhaustedError

PICO = 10**12
HELD = ("tokens", "cost_usd", "model_calls")


def caps_of(budget: Budget) -> dict[str, int]:
    """A budget's caps in the envelope's units (cost in picodollars)."""
    caps = {
        "tokens": budget.tokens,
        "cost_usd": None if budget.cost_usd is None else round(budget.cost_usd * PICO),
        "model_calls": budget.model_calls,
        "steps": budget.steps,
    }
    return {k: v for k, v in caps.items() if v is not None}


# -- strategies -----------------------------------------------------------------------------------

maybe = st.one_of


@st.composite
def budgets(draw: st.DrawFn, *, leaf: bool) -> Budget:
    cost_micro = draw(maybe(st.none(), st.integers(0, 3000)))
    shares: dict[str, float | Budget] = {}
    if not leaf:
        names = draw(st.lists(st.sampled_from(["s0", "s1", "s2"]), unique=True, max_size=3))
        room = 1.0
        for name in names:
            if draw(st.booleans()):
                shares[name] = draw(budgets(leaf=True))
            else:
                fraction = draw(st.floats(0.05, 1.0))
                if fraction <= room:
                    shares[name] = fraction
                    room -= fraction
    return Budget(
        tokens=draw(maybe(st.none(), st.integers(0, 3000))),
        cost_usd=None if cost_micro is None else cost_micro / 1e6,
        model_calls=draw(maybe(st.none(), st.integers(0, 30))),
        steps=draw(maybe(st.none(), st.integers(0, 30))),
        shares=shares,
    )


@st.composite
def meta_budgets(draw: st.DrawFn) -> Budget:
    base = draw(budgets(leaf=True))
    shares: dict[str, float | Budget] = {}
    room = 1.0
    for lead in draw(st.lists(st.sampled_from(["l0", "l1", "l2"]), unique=True, max_size=3)):
        if draw(st.booleans()):
            shares[lead] = draw(budgets(leaf=False))
        else:
            fraction = draw(st.floats(0.05, 1.0))
            if fraction <= room:
                shares[lead] = fraction
                room -= fraction
    return Budget(
        tokens=base.tokens,
        cost_usd=base.cost_usd,
        model_calls=base.model_calls,
        steps=base.steps,
        shares=shares,
    )


PATHS = [
    (),
    *[(f"l{i}",) for i in range(3)],
    *[(f"l{i}", f"s{j}") for i in range(3) for j in range(3)],
]

ops = st.one_of(
    st.tuples(
        st.just("reserve"),
        st.sampled_from(PATHS),
        st.integers(0, 400),  # tokens
        st.integers(0, 400),  # cost in micro-dollars
        st.integers(0, 2),  # model calls
    ),
    st.tuples(st.just("settle"), st.floats(0, 1), st.floats(0, 1)),
    st.tuples(st.just("release")),
    st.tuples(st.just("step"), st.sampled_from(PATHS)),
)


def chain(root: Envelope, env: Envelope) -> list[Envelope]:
    """``env`` and every envelope above it, nearest first (rebuilt from its scope)."""
    names = env.scope.split("/")
    return [envelope_at(root, tuple(names[1:n])) for n in range(len(names), 0, -1)]


def envelope_at(root: Envelope, path: tuple[str, ...]) -> Envelope:
    env = root
    for name in path:
        env = env.child(name)
    return env


def all_nodes(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [snapshot]
    for kid in snapshot["children"].values():
        nodes.extend(all_nodes(kid))
    return nodes


def assert_within_caps(root: Envelope) -> None:
    for node in all_nodes(root.snapshot()):
        caps, spent, held = node["caps"], node["spent"], node["reserved"]
        for limit, cap in caps.items():
            used = spent[limit] + held.get(limit, 0)
            slack = 1e-12 * max(cap, 1.0) if limit == "cost_usd" else 0
            assert used <= cap + slack, f"{node['scope']} {limit}: {used} > cap {cap}"


def refusing_limits(env: Envelope, ask: dict[str, int], model: Model) -> list[str]:
    state = model.nodes[env.scope]
    return [
        limit
        for limit, cap in caps_of(env.budget).items()
        if state.spent[limit] + state.held.get(limit, 0) + ask.get(limit, 0) > cap
    ]


# -- a model of one run, for the sequential check -------------------------------------------------


@dataclass
class NodeState:
    spent: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*HELD, "steps"), 0))
    held: dict[str, int] = field(default_factory=lambda: dict.fromkeys(HELD, 0))


@dataclass
class Model:
    root: Envelope
    nodes: dict[str, NodeState] = field(default_factory=dict)

    def path(self, env: Envelope) -> list[Envelope]:
        nodes = chain(self.root, env)
        for node in nodes:
            self.nodes.setdefault(node.scope, NodeState())
        return nodes


def expected_refusal(
    model: Model, env: Envelope, ask: dict[str, int]
) -> tuple[str, list[str]] | None:
    for node in model.path(env):
        limits = refusing_limits(node, ask, model)
        if limits:
            return node.scope, limits
    return None


def ask_of(tokens: int, cost_micro: int, calls: int) -> dict[str, int]:
    return {"tokens": tokens, "cost_usd": cost_micro * 10**6, "model_calls": calls}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meta=meta_budgets(), sequence=st.lists(ops, max_size=60))
def test_sequential_spending_matches_a_model_and_refusals_name_the_nearest_scope(
    meta: Budget, sequence: list[Any]
) -> None:
    root = Envelope(meta, scope="meta")
    model = Model(root)
    open_: list[tuple[Reservation, Envelope, dict[str, int]]] = []
    for op in sequence:
        if op[0] == "reserve":
            _, path, tokens, cost_micro, calls = op
            env = envelope_at(root, path)
            ask = ask_of(tokens, cost_micro, calls)
            expected = expected_refusal(model, env, ask)
            try:
                r = env.reserve(tokens=tokens, cost_usd=cost_micro / 1e6, model_calls=calls)
            except BudgetExhaustedError as exc:
                assert expected is not None, f"refused by {exc.scope} but within every cap"
                assert exc.scope == expected[0]
                assert exc.limit in expected[1]
                assert exc.needed > exc.cap
                continue
            assert expected is None, f"{expected[0]} should have refused {ask}"
            for node in model.path(env):
                for limit in HELD:
                    model.nodes[node.scope].held[limit] += ask[limit]
            open_.append((r, env, ask))
        elif op[0] in ("settle", "release") and open_:
            r, env, held = open_.pop(0)
            if op[0] == "settle":
                tokens = math.floor(held["tokens"] * op[1])
                cost_micro = math.floor(held["cost_usd"] // 10**6 * op[2])
                root.settle(r, tokens=tokens, cost_usd=cost_micro / 1e6)
                used = ask_of(tokens, cost_micro, held["model_calls"])
            else:
                root.release(r)
                used = dict.fromkeys(HELD, 0)
            for node in model.path(env):
                for limit in HELD:
                    model.nodes[node.scope].held[limit] -= held[limit]
                    model.nodes[node.scope].spent[limit] += used[limit]
        elif op[0] == "step":
            env = envelope_at(root, op[1])
            expected = expected_refusal(model, env, {"steps": 1})
            try:
                env.step()
            except BudgetExhaustedError as exc:
                assert expected is not None and (exc.scope, exc.limit) == (expected[0], "steps")
                continue
            assert expected is None
            for node in model.path(env):
                model.nodes[node.scope].spent["steps"] += 1
        assert_within_caps(root)
    for figures in all_nodes(root.snapshot()):
        state = model.nodes.get(figures["scope"], NodeState())
        assert figures["spent"]["tokens"] == state.spent["tokens"]
        assert figures["spent"]["steps"] == state.spent["steps"]
        assert round(figures["spent"]["cost_usd"] * PICO) == state.spent["cost_usd"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meta=meta_budgets(), workloads=st.lists(st.lists(ops, max_size=40), min_size=2, max_size=4))
def test_concurrent_spending_never_passes_a_cap_at_any_level(
    meta: Budget, workloads: list[list[Any]]
) -> None:
    root = Envelope(meta, scope="meta")
    start = threading.Barrier(len(workloads))
    failures: list[BaseException] = []

    def worker(sequence: list[Any]) -> None:
        open_: list[tuple[Reservation, int, int]] = []
        start.wait()
        try:
            for op in sequence:
                if op[0] == "reserve":
                    _, path, tokens, cost_micro, calls = op
                    env = envelope_at(root, path)
                    try:
                        r = env.reserve(tokens=tokens, cost_usd=cost_micro / 1e6, model_calls=calls)
                        open_.append((r, tokens, cost_micro))
                    except BudgetExhaustedError as exc:
                        check_refusal(exc, root, env)
                elif op[0] in ("settle", "release") and open_:
                    r, tokens, cost_micro = open_.pop(0)
                    if op[0] == "settle":
                        root.settle(
                            r,
                            tokens=math.floor(tokens * op[1]),
                            cost_usd=math.floor(cost_micro * op[2]) / 1e6,
                        )
                    else:
                        root.release(r)
                elif op[0] == "step":
                    env = envelope_at(root, op[1])
                    try:
                        env.step()
                    except BudgetExhaustedError as exc:
                        check_refusal(exc, root, env)
                        assert exc.limit == "steps"
                assert_within_caps(root)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in workloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    assert_within_caps(root)


def check_refusal(exc: BudgetExhaustedError, root: Envelope, env: Envelope) -> None:
    """The refusing scope is on the caller's path, and the figures are that scope's cap."""
    above = {node.scope: node for node in chain(root, env)}
    assert exc.scope in above, f"{exc.scope} is not above {env.scope}"
    cap = caps_of(above[exc.scope].budget)[exc.limit]
    assert exc.cap == (cap / PICO if exc.limit == "cost_usd" else cap)
    assert exc.needed > exc.cap
