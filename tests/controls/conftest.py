"""Redis fixtures shared by the controls tests (skip without Redis, fail on CI)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

REDIS_URL = os.environ.get("AGENTMESH_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"


def in_ci() -> bool:
    """Whether this is a CI run, where server-backed tests must run, not skip."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture
def redis_client() -> Iterator[Any]:
    try:
        import redis
    except ImportError:
        if in_ci():
            pytest.fail("CI is set, so the Redis tests must run: pip install 'agentmesh[redis]'")
        pytest.skip("redis is not installed: pip install 'agentmesh[redis]'")
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=3, socket_connect_timeout=3)
    try:
        client.ping()
    except Exception as exc:
        message = f"Redis at {REDIS_URL} is not reachable ({type(exc).__name__}: {exc})"
        if in_ci():
            pytest.fail(f"CI is set, so the Redis tests must run: {message}")
        pytest.skip(f"{message}; set AGENTMESH_TEST_REDIS_URL or start a server (required on CI)")
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client: Any) -> Iterator[str]:
    """A key prefix no other test (or test run) uses; its keys are deleted afterwards."""
    value = f"agentmesh-test:{uuid.uuid4().hex}:"
    yield value
    keys = list(redis_client.scan_iter(match=value + "*"))
    if keys:
        redis_client.delete(*keys)
