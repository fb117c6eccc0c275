"""Alert sinks: log, callback, webhook (against a local receiver), fan-out."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agentmesh.controls.alerts import (
    Alert,
    AlertSink,
    CallbackSink,
    LogSink,
    WebhookSink,
    fanout,
)

ALERT = Alert(
    kind="period_threshold",
    scope="period:day",
    message="50% of the day's cost_usd cap used",
    value=0.5,
    at=1_700_000_000.0,
    details={"cap": 10.0, "total": 5.0},
)


class Receiver:
    """An HTTP server on 127.0.0.1 that records JSON bodies and answers ``status``."""

    def __init__(self, status: int = 200, delay_s: float = 0.0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                outer.bodies.append(json.loads(self.rfile.read(length)))
                outer.headers.append(dict(self.headers))
                time.sleep(delay_s)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_every_sink_is_an_alert_sink() -> None:
    for sink in (LogSink(), CallbackSink(print), WebhookSink(url="http://127.0.0.1:9"), fanout()):
        assert isinstance(sink, AlertSink)


def test_webhook_posts_the_alert_as_json(receiver: Receiver) -> None:
    WebhookSink(url=receiver.url, headers={"Authorization": "Bearer t"}).send(ALERT)
    assert receiver.bodies == [
        {
            "kind": "period_threshold",
            "scope": "period:day",
            "message": "50% of the day's cost_usd cap used",
            "value": 0.5,
            "at": 1_700_000_000.0,
            "details": {"cap": 10.0, "total": 5.0},
        }
    ]
    assert receiver.headers[0]["Content-Type"] == "application/json"
    assert receiver.headers[0]["Authorization"] == "Bearer t"


def test_webhook_failures_are_logged_and_dropped(caplog: pytest.LogCaptureFixture) -> None:
    failing = Receiver(status=500)
    slow = Receiver(delay_s=0.6)
    try:
        WebhookSink(url=failing.url).send(ALERT)
        started = time.monotonic()
        WebhookSink(url=slow.url, timeout_s=0.2).send(ALERT)
        assert time.monotonic() - started < 0.5
        closed = Receiver()
        closed.close()
        WebhookSink(url=closed.url, timeout_s=0.5).send(ALERT)
    finally:
        failing.close()
        slow.close()
    assert len(failing.bodies) == 1
    assert caplog.text.count("alert webhook") == 3
    assert "500" in caplog.text


def test_log_sink_writes_kind_scope_and_message(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="agentmesh.alerts"):
        LogSink(level=logging.INFO).send(ALERT)
    record = caplog.records[-1]
    assert record.levelno == logging.INFO
    assert (
        record.getMessage() == "[period_threshold] period:day: 50% of the day's cost_usd cap used"
    )
    assert record.alert is ALERT  # type: ignore[attr-defined]


def test_fanout_reaches_every_sink_even_when_one_raises(
    caplog: pytest.LogCaptureFixture, receiver: Receiver
) -> None:
    first: list[Alert] = []
    last: list[Alert] = []

    def broken(alert: Alert) -> None:
        raise RuntimeError("sink down")

    sink = fanout(CallbackSink(first.append), CallbackSink(broken), WebhookSink(url=receiver.url))
    sink.send(ALERT)
    fanout(sink, CallbackSink(last.append)).send(ALERT)
    assert first == [ALERT, ALERT]
    assert last == [ALERT]
    assert len(receiver.bodies) == 2
    assert [r.exc_info[1].args for r in caplog.records if r.exc_info] == [("sink down",)] * 2


def test_alert_to_dict_is_json_ready() -> None:
    assert json.loads(json.dumps(ALERT.to_dict())) == ALERT.to_dict()
    assert Alert(kind="k", scope="s", message="m", value=1.0).at == pytest.approx(
        time.time(), abs=5
    )
