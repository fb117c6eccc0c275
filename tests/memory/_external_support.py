"""Shared helpers for the external-memory tests: items, vectors, a clock, a Chroma server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from agentmesh.memory import MemoryItem

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400.0
NOW = 1_750_000_000.0  # a fixed "now" for tests that use a fake clock


class Clock:
    """A settable clock: ``clock()`` returns ``now``."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def item(
    item_id: str,
    *,
    source: str = "src/a.md",
    data_type: str = "doc",
    ingested_at: float = NOW,
    version: str = "v1",
    expires_at: float | None = None,
    text: str | None = None,
) -> MemoryItem:
    return MemoryItem(
        id=item_id,
        text=text or f"text of {item_id}",
        source=source,
        data_type=data_type,
        ingested_at=ingested_at,
        source_version=version,
        expires_at=expires_at,
        title=f"title {item_id}",
    )


def basis(index: int, dim: int = 8) -> np.ndarray:
    """A unit vector along axis ``index``."""
    v = np.zeros(dim, dtype=np.float32)
    v[index] = 1.0
    return v


def toward(index: int, closeness: float, dim: int = 8) -> np.ndarray:
    """A unit vector with cosine ``closeness`` to axis ``index`` (the rest on the last axis)."""
    v = np.zeros(dim, dtype=np.float32)
    v[index] = closeness
    v[dim - 1] = float(np.sqrt(max(0.0, 1 - closeness**2)))
    return v


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def chroma_server(folder: Path) -> Iterator[str]:
    """Run ``chroma run`` on a free 127.0.0.1 port; yield its URL.

    Skips (or fails on CI) when the ``chroma`` binary is missing or does not start.
    """
    binary = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    if binary is None:
        message = "the `chroma` CLI is not installed (it ships with `pip install chromadb`)"
        if in_ci():
            pytest.fail(f"CI is set, so the Chroma server test must run: {message}")
        pytest.skip(message)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (folder / "chroma.log").open("w")
    proc = subprocess.Popen(
        [binary, "run", "--path", str(folder / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    try:
        deadline = time.monotonic() + 30
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while True:
            try:
                with direct.open(f"{url}/api/v2/heartbeat", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    message = (
                        f"`chroma run` did not start: {(folder / 'chroma.log').read_text()[-500:]}"
                    )
                    if in_ci():
                        pytest.fail(message)
                    pytest.skip(message)
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
