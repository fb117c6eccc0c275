"""Response cache: keys, message round trips, and one conformance suite for every backend."""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import BaseModel

from agentmesh.controls.cache import (
    MemoryCache,
    RedisCache,
    ResponseCache,
    SQLiteCache,
    build_response_cache,
    cache_key,
    dump_message,
    load_message,
)
from agentmesh.errors import ConfigError

from .test_killswitch_redis import UNREACHABLE, redis_url_or_skip


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Backend:
    cache: ResponseCache
    advance: Callable[[float], None]  # moves the cache's time forward


@pytest.fixture(params=["memory", "sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        clock = FakeClock()
        yield Backend(MemoryCache(clock=clock), clock.advance)
    elif request.param == "sqlite":
        clock = FakeClock()
        cache = SQLiteCache(tmp_path / "cache.sqlite", clock=clock)
        yield Backend(cache, clock.advance)
        cache.close()
    else:
        import redis

        client = redis.Redis.from_url(redis_url_or_skip())
        prefix = f"agentmesh-test:{uuid.uuid4().hex}"
        # Redis expires keys on its own clock, so time passes for real here (briefly).
        yield Backend(RedisCache(client, prefix=prefix), time.sleep)
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


# -- conformance -----------------------------------------------------------------------------


def test_is_a_response_cache(backend: Backend) -> None:
    assert isinstance(backend.cache, ResponseCache)


def test_miss_then_hit(backend: Backend) -> None:
    assert backend.cache.get("k") is None
    backend.cache.set("k", '{"text": "naïve ✓"}', 60)
    assert backend.cache.get("k") == '{"text": "naïve ✓"}'
    assert backend.cache.get("other") is None


def test_set_again_replaces(backend: Backend) -> None:
    backend.cache.set("k", "one", 60)
    backend.cache.set("k", "two", 60)
    assert backend.cache.get("k") == "two"


def test_entries_expire_after_ttl(backend: Backend) -> None:
    backend.cache.set("short", "v", 0.3)
    backend.cache.set("long", "v", 60)
    backend.cache.set("forever", "v", None)
    assert backend.cache.get("short") == "v"
    backend.advance(0.4)
    assert backend.cache.get("short") is None
    assert backend.cache.get("long") == "v"
    assert backend.cache.get("forever") == "v"


@pytest.mark.parametrize("ttl_s", [0, -1.0])
def test_ttl_must_be_positive(backend: Backend, ttl_s: float) -> None:
    with pytest.raises(ConfigError, match="ttl_s"):
        backend.cache.set("k", "v", ttl_s)


def test_threads_share_it_safely(backend: Backend) -> None:
    errors: list[str] = []

    def work(n: int) -> None:
        for i in range(20):
            backend.cache.set(f"{n}-{i}", f"value {n}-{i}", 60)
            if backend.cache.get(f"{n}-{i}") != f"value {n}-{i}":
                errors.append(f"{n}-{i}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_a_cached_answer_comes_back_whole(backend: Backend) -> None:
    answer = AIMessage(
        content="total is 42",
        tool_calls=[{"name": "lookup", "args": {"id": 7}, "id": "call_x"}],
        usage_metadata={"input_tokens": 10, "output_tokens": 3, "total_tokens": 13},
    )
    key = cache_key("openai:gpt-4o-mini", [HumanMessage("sum it")], {"temperature": 0})
    backend.cache.set(key, dump_message(answer), 60)
    cached = backend.cache.get(key)
    assert cached is not None
    assert load_message(cached) == answer


# -- backend specifics -----------------------------------------------------------------------


def test_memory_cache_drops_the_least_recently_used() -> None:
    cache = MemoryCache(max_items=2)
    cache.set("a", "1", None)
    cache.set("b", "2", None)
    assert cache.get("a") == "1"
    cache.set("c", "3", None)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("1", None, "3")
    assert len(cache) == 2
    with pytest.raises(ConfigError):
        MemoryCache(max_items=0)


def test_memory_cache_hit_until_the_last_moment() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    cache.set("k", "v", 10)
    clock.advance(9.999)
    assert cache.get("k") == "v"
    clock.advance(0.001)
    assert cache.get("k") is None


def _rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM responses").fetchone()[0])


def test_sqlite_cache_purges_expired_rows(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    clock = FakeClock()
    cache = SQLiteCache(path, clock=clock, purge_every=5)
    cache.set("read-after-expiry", "v", 1)
    cache.set("never-read", "v", 1)
    cache.set("kept", "v", 100)
    clock.advance(2)
    assert cache.get("read-after-expiry") is None
    assert _rows(path) == 2
    cache.set("x", "v", 100)
    cache.set("y", "v", 100)  # fifth write: the purge runs
    assert _rows(path) == 3
    clock.advance(200)
    assert cache.purge() == 3
    assert _rows(path) == 0
    cache.close()


def _write_from_another_process(path: str) -> None:
    SQLiteCache(path).set("from-child", "hello from another process", 60)


def test_sqlite_cache_is_shared_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "cache.sqlite"
    here = SQLiteCache(path)
    here.set("from-parent", "hi", 60)
    # A forked child: its own process and connection, without re-importing everything.
    child = multiprocessing.get_context("fork").Process(
        target=_write_from_another_process, args=(str(path),)
    )
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert here.get("from-child") == "hello from another process"
    assert SQLiteCache(path).get("from-parent") == "hi"
    here.close()


def test_sqlite_cache_that_breaks_answers_a_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = SQLiteCache(tmp_path / "cache.sqlite")
    cache.set("k", "v", 60)
    with sqlite3.connect(tmp_path / "cache.sqlite") as conn:
        conn.execute("DROP TABLE responses")
    with caplog.at_level(logging.WARNING):
        assert cache.get("k") is None
        cache.set("k", "v", 60)
    assert "response cache" in caplog.text
    cache.close()


def test_unreachable_redis_answers_a_miss(caplog: pytest.LogCaptureFixture) -> None:
    cache = RedisCache(UNREACHABLE)
    with caplog.at_level(logging.WARNING):
        cache.set("k", "v", 60)
        assert cache.get("k") is None
    assert "unreachable" in caplog.text


def test_build_response_cache(tmp_path: Path) -> None:
    assert build_response_cache(None, data_dir=tmp_path) is None
    assert build_response_cache("off", data_dir=tmp_path) is None
    assert isinstance(build_response_cache("memory", data_dir=tmp_path), MemoryCache)
    sqlite_cache = build_response_cache("sqlite", data_dir=tmp_path)
    assert isinstance(sqlite_cache, SQLiteCache)
    assert sqlite_cache.path == tmp_path / "response_cache.sqlite"
    sqlite_cache.close()
    assert isinstance(
        build_response_cache("redis://127.0.0.1:6379/0", data_dir=tmp_path), RedisCache
    )
    with pytest.raises(ConfigError, match="expected off, memory, sqlite"):
        build_response_cache("memcached://x", data_dir=tmp_path)


# -- keys ------------------------------------------------------------------------------------

PROMPT = [SystemMessage("You total invoices."), HumanMessage("Invoice 7: 40 + 2")]


def test_key_is_stable_and_pinned() -> None:
    key = cache_key("openai:gpt-4o-mini", PROMPT, {"temperature": 0, "max_tokens": 100})
    assert key == cache_key(
        "openai:gpt-4o-mini", list(PROMPT), {"max_tokens": 100, "temperature": 0}
    )
    # Pinned: a new key means every cached answer misses after an upgrade; make it deliberate.
    assert key == "669e36c9a5b46228fdf8e3bfbe7a6739cd92dcd5178dbcff343fe58c8dbaad05"


@pytest.mark.parametrize(
    ("model", "messages", "params"),
    [
        ("openai:gpt-4o", PROMPT, {"temperature": 0}),
        ("openai:gpt-4o-mini", PROMPT, {"temperature": 0.7}),
        ("openai:gpt-4o-mini", PROMPT, {"temperature": 0, "seed": 1}),
        ("openai:gpt-4o-mini", [PROMPT[0], HumanMessage("Invoice 7: 40 + 3")], {"temperature": 0}),
        (
            "openai:gpt-4o-mini",
            [HumanMessage("You total invoices."), PROMPT[1]],
            {"temperature": 0},
        ),
        ("openai:gpt-4o-mini", PROMPT[1:], {"temperature": 0}),
    ],
)
def test_key_changes_with_model_prompt_or_parameters(
    model: str, messages: list[HumanMessage], params: dict[str, object]
) -> None:
    assert cache_key(model, messages, params) != cache_key(
        "openai:gpt-4o-mini", PROMPT, {"temperature": 0}
    )


def _tool_turn(ids: tuple[str, str], results: tuple[str, str], msg_id: str) -> list[object]:
    return [
        HumanMessage("look both up"),
        AIMessage(
            "",
            id=msg_id,
            response_metadata={"finish_reason": "tool_calls", "created": msg_id},
            usage_metadata={"input_tokens": 5, "output_tokens": 9, "total_tokens": 14},
            tool_calls=[
                {"name": "lookup", "args": {"id": 1}, "id": ids[0]},
                {"name": "lookup", "args": {"id": 2}, "id": ids[1]},
            ],
        ),
        ToolMessage(results[0], tool_call_id=ids[0]),
        ToolMessage(results[1], tool_call_id=ids[1]),
    ]


def test_key_ignores_ids_and_metadata_providers_mint() -> None:
    first = _tool_turn(("call_aaa", "call_bbb"), ("one", "two"), "run-1")
    second = _tool_turn(("call_zzz", "call_yyy"), ("one", "two"), "run-2")
    assert cache_key("m", first, {}) == cache_key("m", second, {})  # type: ignore[arg-type]


def test_key_keeps_which_result_answers_which_call() -> None:
    straight = _tool_turn(("a", "b"), ("one", "two"), "x")
    swapped = _tool_turn(("a", "b"), ("one", "two"), "x")
    swapped[2], swapped[3] = swapped[3], swapped[2]
    assert cache_key("m", straight, {}) != cache_key("m", swapped, {})  # type: ignore[arg-type]


class Total(BaseModel):
    amount: float


class Other(BaseModel):
    label: str


def test_key_takes_pydantic_schemas_and_rejects_opaque_values() -> None:
    with_total = cache_key("m", PROMPT, {"response_format": Total})
    assert with_total == cache_key("m", PROMPT, {"response_format": Total})
    assert with_total != cache_key("m", PROMPT, {"response_format": Other})
    assert cache_key("m", PROMPT, {"example": Total(amount=1)}) != cache_key("m", PROMPT, {})
    with pytest.raises(ConfigError, match="object"):
        cache_key("m", PROMPT, {"callback": object()})


# -- messages --------------------------------------------------------------------------------


def test_load_message_treats_foreign_text_as_a_miss() -> None:
    assert load_message("{not json") is None
    assert load_message('{"type": "nope", "data": {}}') is None
    assert load_message('{"type": "human", "data": {"content": "hi"}}') is None
    assert load_message(dump_message(AIMessage("hi")).encode()) == AIMessage("hi")
