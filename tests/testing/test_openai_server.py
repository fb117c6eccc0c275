"""FakeOpenAIServer driven through the real openai / langchain-openai client path."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from agentmesh.testing.openai_server import FakeOpenAIServer, Fault, RecordedRequest, Reply

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def srv() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def chat(srv: FakeOpenAIServer, **kwargs: Any) -> ChatOpenAI:
    options: dict[str, Any] = {"max_retries": 0, "timeout": 5.0} | kwargs
    return ChatOpenAI(model="gpt-4o-mini", base_url=srv.base_url, api_key="test-key", **options)


@tool
def get_weather(city: str) -> str:
    """Return the weather for a city."""
    return f"sunny in {city}"


class Verdict(BaseModel):
    approved: bool
    reason: str


def test_base_url_is_loopback(srv: FakeOpenAIServer) -> None:
    assert srv.base_url.startswith("http://127.0.0.1:")
    assert srv.base_url.endswith("/v1")


def test_text_reply_content_and_usage(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Reply.text("Hello there", input_tokens=11, output_tokens=7))
    msg = chat(srv).invoke("hi")
    assert isinstance(msg, AIMessage)
    assert msg.content == "Hello there"
    assert msg.usage_metadata is not None
    assert msg.usage_metadata["input_tokens"] == 11
    assert msg.usage_metadata["output_tokens"] == 7
    assert msg.usage_metadata["total_tokens"] == 18
    assert msg.response_metadata["finish_reason"] == "stop"
    assert msg.response_metadata["model_name"] == "gpt-4o-mini"


def test_usage_is_estimated_when_not_given(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Reply.text("x" * 9))  # ceil(9 / 4) == 3
    msg = chat(srv).invoke([HumanMessage("y" * 5)])  # ceil(5 / 4) == 2
    assert msg.usage_metadata is not None
    assert msg.usage_metadata["input_tokens"] == 2
    assert msg.usage_metadata["output_tokens"] == 3


def test_tool_call_via_bind_tools_and_recorded_request(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Reply.tool_call("get_weather", {"city": "Paris"}))
    msg = chat(srv).bind_tools([get_weather]).invoke("weather in Paris?")
    assert isinstance(msg, AIMessage)
    assert len(msg.tool_calls) == 1
    call = msg.tool_calls[0]
    assert call["name"] == "get_weather"
    assert call["args"] == {"city": "Paris"}
    assert call["id"] is not None and call["id"].startswith("call_")
    assert msg.response_metadata["finish_reason"] == "tool_calls"

    (req,) = srv.requests
    assert srv.request_count == 1
    assert req.method == "POST"
    assert req.path == "/v1/chat/completions"
    assert req.status == 200
    assert req.model == "gpt-4o-mini"
    assert req.messages == [{"role": "user", "content": "weather in Paris?"}]
    assert [t["function"]["name"] for t in req.tools] == ["get_weather"]
    assert req.tools[0]["function"]["parameters"]["properties"]["city"]["type"] == "string"
    assert req.headers["authorization"] == "Bearer test-key"
    assert req.stream is False
    assert req.timestamp <= time.time()


def test_several_tool_calls(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Reply.tool_calls([("a", {"x": 1}), ("b", {"y": [1, 2]})]))
    msg = chat(srv).invoke("go")
    assert isinstance(msg, AIMessage)
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [
        ("a", {"x": 1}),
        ("b", {"y": [1, 2]}),
    ]
    assert len({c["id"] for c in msg.tool_calls}) == 2


def test_raw_body_is_a_faithful_chat_completion(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Reply.tool_call("f", {"k": "v"}, input_tokens=3, output_tokens=4))
    payload = {"model": "my-model", "messages": [{"role": "user", "content": "hi"}]}
    request = urllib.request.Request(
        srv.base_url + "/chat/completions",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        body = json.loads(resp.read())
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "my-model"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["function"] == {"name": "f", "arguments": '{"k": "v"}'}
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_models_endpoint(srv: FakeOpenAIServer) -> None:
    client = openai.OpenAI(base_url=srv.base_url, api_key="test-key", max_retries=0)
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini"]
    assert srv.requests[0].method == "GET"


def test_rate_limit_raises_with_retry_after(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Fault.status(429, retry_after=2))
    with pytest.raises(openai.RateLimitError) as info:
        chat(srv).invoke("hi")
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "2"
    assert srv.requests[0].status == 429


def test_rate_limit_is_retried_then_succeeds(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Fault.status(429, retry_after=0.05), Reply.text("after retry"))
    msg = chat(srv, max_retries=1).invoke("hi")
    assert msg.content == "after retry"
    assert srv.request_count == 2
    assert [r.status for r in srv.requests] == [429, 200]


def test_server_error_raises_internal_server_error(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Fault.status(500))
    with pytest.raises(openai.InternalServerError) as info:
        chat(srv).invoke("hi")
    assert info.value.status_code == 500


def test_bad_request_with_custom_body(srv: FakeOpenAIServer) -> None:
    body = {"error": {"message": "context too long", "type": "invalid_request_error"}}
    srv.enqueue(Fault.status(400, body=body))
    with pytest.raises(openai.BadRequestError, match="context too long"):
        chat(srv).invoke("hi")


def test_hang_past_client_timeout_raises_timeout_quickly(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Fault.hang(30))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        chat(srv, timeout=0.5).invoke("hi")
    assert time.monotonic() - started < 3
    assert srv.requests[0].status is None


def test_malformed_body_raises_json_decode_error(srv: FakeOpenAIServer) -> None:
    # openai's client does not wrap the decode failure: json.JSONDecodeError propagates.
    srv.enqueue(Fault.malformed())
    with pytest.raises(json.JSONDecodeError):
        chat(srv).invoke("hi")


def test_bad_shape_raises_type_error(srv: FakeOpenAIServer) -> None:
    # The openai client builds a ChatCompletion with choices=None; langchain-openai rejects it.
    srv.enqueue(Fault.bad_shape())
    with pytest.raises(TypeError, match="null value for 'choices'"):
        chat(srv).invoke("hi")


def test_down_switch_answers_503_and_keeps_the_queue(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Reply.text("kept"))
    srv.down = True
    with pytest.raises(openai.InternalServerError) as info:
        chat(srv).invoke("hi")
    assert info.value.status_code == 503
    srv.down = False
    assert chat(srv).invoke("hi").content == "kept"


def test_fail_next_goes_ahead_of_the_queue(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Reply.text("finally"))
    srv.fail_next(2, Fault.status(503))
    llm = chat(srv)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            llm.invoke("hi")
    assert llm.invoke("hi").content == "finally"
    assert [r.status for r in srv.requests] == [503, 503, 200]


def test_default_reply_and_callable_responder() -> None:
    with FakeOpenAIServer() as plain:
        assert chat(plain).invoke("hi").content == "ok"

    def echo(request: RecordedRequest) -> Reply:
        return Reply.text(f"echo: {request.messages[-1]['content']}")

    with FakeOpenAIServer(default=echo) as server:
        assert chat(server).invoke("ping").content == "echo: ping"


def test_streaming_text(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Reply.text("a streamed reply of some length", input_tokens=5, output_tokens=6))
    chunks = list(chat(srv, streaming=True, stream_usage=True).stream("hi"))
    assert len(chunks) > 2
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    assert isinstance(merged, AIMessageChunk)
    assert merged.content == "a streamed reply of some length"
    assert merged.usage_metadata is not None
    assert merged.usage_metadata["input_tokens"] == 5
    assert merged.usage_metadata["output_tokens"] == 6
    assert srv.requests[0].stream is True


def test_streaming_tool_call_via_invoke(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Reply.tool_call("get_weather", {"city": "Oslo"}))
    msg = chat(srv, streaming=True).bind_tools([get_weather]).invoke("weather?")
    assert isinstance(msg, AIMessage)
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [("get_weather", {"city": "Oslo"})]


def test_structured_output_through_tool_call(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Reply.tool_call("Verdict", {"approved": True, "reason": "looks fine"}))
    llm = chat(srv).with_structured_output(Verdict, method="function_calling")
    result = llm.invoke("review this")
    assert result == Verdict(approved=True, reason="looks fine")
    assert srv.requests[0].tools[0]["function"]["name"] == "Verdict"


def test_structured_output_through_json_schema(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Reply.text(json.dumps({"approved": False, "reason": "no"})))
    result = chat(srv).with_structured_output(Verdict).invoke("review this")
    assert result == Verdict(approved=False, reason="no")
    assert srv.requests[0].body["response_format"]["type"] == "json_schema"


def test_stop_returns_promptly_during_a_hang() -> None:
    server = FakeOpenAIServer(default=Fault.hang(30)).start()
    host, port = server.base_url.removeprefix("http://").removesuffix("/v1").split(":")
    errors: list[BaseException] = []

    def call() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request("POST", "/v1/chat/completions", body=b"{}")
            conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            errors.append(exc)
        finally:
            conn.close()

    client = threading.Thread(target=call)
    client.start()
    deadline = time.monotonic() + 3
    while server.request_count == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.request_count == 1
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1
    client.join(timeout=3)
    assert not client.is_alive()
    assert errors  # the connection was closed without an answer
