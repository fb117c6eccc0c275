"""The Redis breaker store: the store contract, and one breaker shared by real processes."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentmesh.controls.breaker import (
    BreakerConfig,
    BreakerStore,
    CircuitBreaker,
    RedisBreakerStore,
)
from agentmesh.errors import CircuitOpenError

from .conftest import REDIS_URL
from .test_breaker import BreakerStoreContract

pytestmark = pytest.mark.timeout(60)


class TestRedisStore(BreakerStoreContract):
    @pytest.fixture
    def store(self, redis_client: Any, prefix: str) -> Iterator[BreakerStore]:
        yield RedisBreakerStore(client=redis_client, prefix=prefix)


def test_records_expire_and_stay_under_the_prefix(redis_client: Any, prefix: str) -> None:
    store = RedisBreakerStore(REDIS_URL, prefix=prefix, ttl_s=120)
    CircuitBreaker("tool:search", BreakerConfig(), store=store).record_failure()
    assert redis_client.exists(prefix + "tool:search")
    assert 0 < redis_client.ttl(prefix + "tool:search") <= 120


# -- two real processes -------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import sys, time
    from agentmesh.controls.breaker import BreakerConfig, CircuitBreaker, RedisBreakerStore
    from agentmesh.errors import CircuitOpenError

    url, prefix, action, count, rate, window, peers = sys.argv[1:8]
    config = BreakerConfig(
        failure_rate=float(rate), window=int(window), min_calls=int(window), cooldown_s=30.0
    )
    store = RedisBreakerStore(url, prefix=prefix)
    breaker = CircuitBreaker("model:shared", config, store=store)
    store.client.incr(prefix + "ready")  # start together, so that the updates really race
    deadline = time.monotonic() + 30
    while int(store.client.get(prefix + "ready")) < int(peers) and time.monotonic() < deadline:
        time.sleep(0.005)
    refused = 0
    for _ in range(int(count)):
        try:
            breaker.allow()
        except CircuitOpenError:
            refused += 1
            continue
        breaker.record_failure() if action == "fail" else breaker.record_success()
    print(breaker.state, refused)
    """
)


def _spawn(
    tmp_path: Path, prefix: str, count: int, *, rate: float, window: int, peers: int = 1
) -> subprocess.Popen[str]:
    script = tmp_path / "breaker_worker.py"
    script.write_text(WORKER)
    args = [REDIS_URL, prefix, "fail", str(count), str(rate), str(window), str(peers)]
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> list[str]:
    out, err = proc.communicate(timeout=45)
    assert proc.returncode == 0, err
    return out.split()


def test_one_process_opens_the_breaker_for_another(
    redis_client: Any, prefix: str, tmp_path: Path
) -> None:
    worker = _spawn(tmp_path, prefix, 5, rate=0.5, window=5)
    assert _finish(worker) == ["open", "0"]

    config = BreakerConfig(failure_rate=0.5, window=5, min_calls=5, cooldown_s=30.0)
    store = RedisBreakerStore(REDIS_URL, prefix=prefix)
    here = CircuitBreaker("model:shared", config, store=store)
    with pytest.raises(CircuitOpenError) as info:
        here.allow()
    assert 25 < info.value.retry_in_s <= 30.0

    # The cool-down is counted in wall-clock time, which both processes share; a process
    # whose clock reads 30 s later sees it over and takes the half-open trial.
    later = CircuitBreaker("model:shared", config, store=store, clock=lambda: time.time() + 30)
    later.allow()
    with pytest.raises(CircuitOpenError):
        here.allow()  # the trial permit is taken
    later.record_success()
    assert here.state == "closed"
    here.allow()


def test_concurrent_processes_lose_no_outcome(
    redis_client: Any, prefix: str, tmp_path: Path
) -> None:
    # failure_rate=1.0 over a window of 1000 never opens, so every outcome must be counted.
    workers = [_spawn(tmp_path, prefix, 200, rate=1.0, window=1000, peers=2) for _ in range(2)]
    for worker in workers:
        assert _finish(worker) == ["closed", "0"]
    config = BreakerConfig(failure_rate=1.0, window=1000, min_calls=1000)
    store = RedisBreakerStore(client=redis_client, prefix=prefix)
    assert CircuitBreaker("model:shared", config, store=store).snapshot().failures == 400


def test_an_unreachable_redis_fails_open_quickly(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("redis")
    breaker = CircuitBreaker("model:x", store=RedisBreakerStore("redis://127.0.0.1:1/0"))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="agentmesh.controls.breaker"):
        for _ in range(20):
            breaker.allow()
            breaker.record_failure()
    assert time.monotonic() - started < 2.0
    assert any("unreachable" in r.getMessage() for r in caplog.records)
