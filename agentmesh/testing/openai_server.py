"""A local OpenAI-compatible chat-completions server that can inject faults.

`FakeOpenAIServer` binds 127.0.0.1 on a free port and speaks enough of the OpenAI HTTP
API (``POST /v1/chat/completions``, streaming included, and ``GET /v1/models``) for the
real ``openai`` / ``langchain-openai`` client path to run against it in tests:

```python
with FakeOpenAIServer() as srv:
    srv.enqueue(Fault.status(429, retry_after=0.05), Reply.text("hi"))
    llm = ChatOpenAI(model="gpt-4o-mini", base_url=srv.base_url, api_key="k")
    assert llm.invoke("hello").content == "hi"
    assert srv.request_count == 2
```
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self

__all__ = ["Fault", "FakeOpenAIServer", "RecordedRequest", "Reply", "Responder"]


@dataclass(frozen=True, kw_only=True)
class Reply:
    """A successful chat completion: text, or one or more tool calls.

    Attributes:
        content: Assistant text (``None`` when the reply is only tool calls).
        calls: ``(name, arguments)`` pairs, one per tool call.
        input_tokens: ``usage.prompt_tokens``; estimated from the prompt when ``None``.
        output_tokens: ``usage.completion_tokens``; estimated from the reply when ``None``.
    """

    content: str | None = None
    calls: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    input_tokens: int | None = None
    output_tokens: int | None = None

    @classmethod
    def text(
        cls, content: str, *, input_tokens: int | None = None, output_tokens: int | None = None
    ) -> Reply:
        """A plain assistant message with ``finish_reason="stop"``."""
        return cls(content=content, input_tokens=input_tokens, output_tokens=output_tokens)

    @classmethod
    def tool_call(
        cls,
        name: str,
        arguments: Mapping[str, Any],
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> Reply:
        """A single tool call with ``finish_reason="tool_calls"``."""
        return cls.tool_calls(
            [(name, arguments)], input_tokens=input_tokens, output_tokens=output_tokens
        )

    @classmethod
    def tool_calls(
        cls,
        calls: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> Reply:
        """Several parallel tool calls, given as ``(name, arguments)`` pairs."""
        return cls(calls=tuple(calls), input_tokens=input_tokens, output_tokens=output_tokens)


@dataclass(frozen=True, kw_only=True)
class Fault:
    """A failure to inject instead of a successful completion.

    Attributes:
        kind: ``"status"``, ``"hang"``, ``"malformed"`` or ``"bad_shape"``.
        status_code: HTTP status for ``kind="status"``.
        retry_after: Seconds sent as ``Retry-After`` (and ``retry-after-ms``), if any.
        body: JSON error body; an OpenAI-style ``{"error": {...}}`` when ``None``.
        seconds: How long a ``hang`` keeps the connection open without answering.
    """

    kind: Literal["status", "hang", "malformed", "bad_shape"]
    status_code: int = 500
    retry_after: float | None = None
    body: dict[str, Any] | None = None
    seconds: float = 0.0

    @classmethod
    def status(
        cls, code: int, *, retry_after: float | None = None, body: dict[str, Any] | None = None
    ) -> Fault:
        """Answer with HTTP ``code`` (e.g. 400, 429, 500, 503) and an error body."""
        return cls(kind="status", status_code=code, retry_after=retry_after, body=body)

    @classmethod
    def hang(cls, seconds: float) -> Fault:
        """Accept the request, send nothing for ``seconds``, then close the connection."""
        return cls(kind="hang", seconds=seconds)

    @classmethod
    def malformed(cls) -> Fault:
        """Answer 200 with a body that is not valid JSON."""
        return cls(kind="malformed", status_code=200)

    @classmethod
    def bad_shape(cls) -> Fault:
        """Answer 200 with valid JSON that lacks ``choices``."""
        return cls(kind="bad_shape", status_code=200)


@dataclass(frozen=True, kw_only=True)
class RecordedRequest:
    """One HTTP request the server received.

    Attributes:
        method: HTTP method.
        path: Request path, e.g. ``/v1/chat/completions``.
        headers: Request headers with lower-cased names.
        body: Parsed JSON body (``None`` if absent or not JSON).
        model: ``body["model"]`` if present.
        messages: ``body["messages"]`` (empty if absent).
        tools: ``body["tools"]`` (empty if absent).
        stream: Whether the client asked for a streamed answer.
        status: HTTP status answered; ``None`` while undecided or for a hang.
        timestamp: ``time.time()`` when the request arrived.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    model: str | None
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    stream: bool
    status: int | None
    timestamp: float


Responder = Reply | Fault | Callable[[RecordedRequest], Reply | Fault]
"""What answers when the script queue is empty: a fixed reply/fault or a callable."""


def _tokens(*texts: str) -> int:
    return math.ceil(sum(len(t) for t in texts) / 4)


def _message_texts(messages: list[dict[str, Any]]) -> Iterator[str]:
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            yield from (str(p.get("text", "")) for p in content if isinstance(p, dict))


def _error_body(code: int) -> dict[str, Any]:
    kind = "server_error" if code >= 500 else "invalid_request_error"
    kind, err = ("requests", "rate_limit_exceeded") if code == 429 else (kind, None)
    message = f"FakeOpenAIServer injected HTTP {code}"
    return {"error": {"message": message, "type": kind, "param": None, "code": err}}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: FakeOpenAIServer, port: int) -> None:
        self.owner = owner
        self.stopping = threading.Event()  # hang faults wait on this, so stop() is prompt
        self.conns: set[socket.socket] = set()
        super().__init__(("127.0.0.1", port), _Handler)

    def close_connections(self) -> None:
        for conn in list(self.conns):  # wakes handler threads idling on keep-alive reads
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Small replies must not wait ~40 ms for Nagle's algorithm.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.conns.add(self.connection)

    def finish(self) -> None:
        self.server.conns.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        self.server.owner._handle(self, "GET")

    def do_POST(self) -> None:
        self.server.owner._handle(self, "POST")

    def send_json(self, status: int, payload: Any, headers: Mapping[str, str] = {}) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:24]}")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def send_sse(self, events: Iterable[Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")  # the body ends when the connection closes
        self.end_headers()
        self.close_connection = True
        for event in [*events, "[DONE]"]:
            data = event if isinstance(event, str) else json.dumps(event)
            self.wfile.write(f"data: {data}\n\n".encode())
            self.wfile.flush()


class FakeOpenAIServer:
    """An in-process OpenAI-compatible server scripted with `Reply` and `Fault` items.

    Each chat request takes the next scripted item; when the queue is empty the
    ``default`` responder answers. Use it as a context manager or call `start` / `stop`.

    Args:
        default: Answer when the queue is empty: a `Reply`, a `Fault`, or a callable
            ``responder(request) -> Reply | Fault``. Defaults to ``Reply.text("ok")``.
        models: Model ids listed by ``GET /v1/models``.
        port: Port to bind on 127.0.0.1 (``0`` picks a free one).

    Attributes:
        down: When ``True`` every request is answered 503 and the queue is left alone.
    """

    def __init__(
        self,
        *,
        default: Responder | None = None,
        models: Sequence[str] = ("gpt-4o-mini",),
        port: int = 0,
    ) -> None:
        self.default: Responder = default if default is not None else Reply.text("ok")
        self.models = tuple(models)
        self.down = False
        self._port = port
        self._lock = threading.Lock()
        self._queue: deque[Reply | Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Bind and serve in a background daemon thread; returns ``self``."""
        if self._server is None:
            self._server = server = _HTTPServer(self, self._port)
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; returns promptly even while a hang fault is in progress."""
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is not None and thread is not None:
            server.stopping.set()
            server.shutdown()
            server.close_connections()
            server.server_close()
            thread.join(timeout=2)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, for ``ChatOpenAI(base_url=...)``."""
        if self._server is None:
            raise RuntimeError("FakeOpenAIServer is not running; call start() first")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def enqueue(self, *replies: Reply | Fault) -> None:
        """Append replies/faults that answer the next chat requests, in order."""
        with self._lock:
            self._queue.extend(replies)

    def fail_next(self, n: int, fault: Fault) -> None:
        """Answer the next ``n`` chat requests with ``fault``, ahead of the queue."""
        with self._lock:
            self._queue.extendleft([fault] * n)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far (any path), oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        """How many requests have been received (any path)."""
        with self._lock:
            return len(self._requests)

    def _handle(self, h: _Handler, method: str) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        obj: dict[str, Any] = body if isinstance(body, dict) else {}
        record = RecordedRequest(
            method=method,
            path=h.path.split("?", 1)[0],
            headers={k.lower(): v for k, v in h.headers.items()},
            body=body,
            model=obj.get("model"),
            messages=list(obj.get("messages") or []),
            tools=list(obj.get("tools") or []),
            stream=bool(obj.get("stream")),
            status=None,
            timestamp=time.time(),
        )
        route = (method, record.path.removesuffix("/"))
        answer: Reply | Fault | None = None
        if self.down:
            answer = Fault.status(503)
        elif route == ("GET", "/v1/models"):
            answer = Reply()
        elif route != ("POST", "/v1/chat/completions"):
            answer = Fault.status(404)
        elif not isinstance(body, dict):
            answer = Fault.status(400)
        else:
            with self._lock:
                answer = self._queue.popleft() if self._queue else None
        if answer is None:  # queue empty: ask the default responder
            answer = self.default(record) if callable(self.default) else self.default
        status: int | None = 200
        if isinstance(answer, Fault) and answer.kind in ("status", "hang"):
            status = answer.status_code if answer.kind == "status" else None
        with self._lock:
            self._requests.append(replace(record, status=status))
        if route == ("GET", "/v1/models") and status == 200:
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "agentmesh"}
                for m in self.models
            ]
            h.send_json(200, {"object": "list", "data": data})
        elif isinstance(answer, Fault):
            self._send_fault(h, answer, record)
        else:
            self._send_reply(h, answer, record)

    @staticmethod
    def _send_fault(h: _Handler, fault: Fault, record: RecordedRequest) -> None:
        if fault.kind == "hang":
            h.server.stopping.wait(fault.seconds)
            h.close_connection = True  # close without ever answering
            return
        if fault.kind in ("malformed", "bad_shape"):
            payload: Any = '{"id": "chatcmpl-broken", "choices": [ <<not json'
            if fault.kind == "bad_shape":
                payload = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion"}
            if record.stream:
                h.send_sse([payload])
            else:
                h.send_json(200, payload.encode() if isinstance(payload, str) else payload)
            return
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            seconds = float(fault.retry_after)
            headers["Retry-After"] = str(int(seconds)) if seconds.is_integer() else str(seconds)
            headers["retry-after-ms"] = str(round(seconds * 1000))
        body = fault.body if fault.body is not None else _error_body(fault.status_code)
        h.send_json(fault.status_code, body, headers)

    @staticmethod
    def _send_reply(h: _Handler, reply: Reply, record: RecordedRequest) -> None:
        calls = [
            {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(dict(args))},
            }
            for name, args in reply.calls
        ]
        texts = [name + json.dumps(dict(args)) for name, args in reply.calls]
        prompt = reply.input_tokens
        prompt = _tokens(*_message_texts(record.messages)) if prompt is None else prompt
        output = reply.output_tokens
        output = _tokens(reply.content or "", *texts) if output is None else output
        usage = dict(prompt_tokens=prompt, completion_tokens=output, total_tokens=prompt + output)
        finish = "tool_calls" if calls else "stop"
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "created": int(time.time()),
            "model": record.model or "gpt-4o-mini",
            "system_fingerprint": "fp_agentmesh",
        }
        if not record.stream:
            message: dict[str, Any] = {"role": "assistant", "content": reply.content}
            message |= {"tool_calls": calls} if calls else {}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            body = {"object": "chat.completion", "choices": [choice], "usage": usage}
            h.send_json(200, base | body)
            return

        def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
            return base | {"object": "chat.completion.chunk", "choices": [choice]}

        text = reply.content or ""
        events = [chunk({"role": "assistant", "content": None if reply.content is None else ""})]
        events += [chunk({"content": text[i : i + 8]}) for i in range(0, len(text), 8)]
        events += [chunk({"tool_calls": [c | {"index": i}]}) for i, c in enumerate(calls)]
        events.append(chunk({}, finish))
        if (record.body.get("stream_options") or {}).get("include_usage"):
            events.append(base | {"object": "chat.completion.chunk", "choices": [], "usage": usage})
        h.send_sse(events)
