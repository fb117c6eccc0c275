"""Scripted answers for the fake OpenAI server, metered at real token counts and prices.

There is no model offline, so the cost model answers each model-backed agent's
chat request with what its deterministic fallback computes from the same typed
input (the answer a reliable model would give), as a tool call to the agent's
output schema. Every request arrives over real HTTP through the real OpenAI
client, so prompts are exactly what production would send; the responder counts
their tokens (tool definitions included) and prices them with
:mod:`agentmesh.pricing`.
"""

from __future__ import annotations

import inspect
import json
import math
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from agentmesh.controls.tokens import tokenizer_for
from agentmesh.errors import ConfigError
from agentmesh.messages import TaskMessage
from agentmesh.pricing import cost_usd
from agentmesh.specialist import AgentContext, Answer, Specialist
from agentmesh.testing.openai_server import Fault, RecordedRequest, Reply

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["CallMeter", "ScriptedResponder", "token_counter_name"]

# OpenAI's chat format: a few tokens per message for role markers, a few to prime the reply.
_PER_MESSAGE = 3
_PRIMING = 3
_CHARS_PER_TOKEN = 4
_INPUT_MARK = "Input:\n"
_RETRY_MARKS = ("A previous answer was rejected", "Your answer does not match")


@dataclass(kw_only=True)
class CallMeter:
    """What the provider would bill: answered calls, their tokens and cost. Thread-safe.

    Failed requests (HTTP errors) are counted but cost nothing: providers do not
    bill a request they answered with an error.
    """

    calls: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def bill(self, model: str, input_tokens: int, output_tokens: int) -> None:
        """Count one answered call of ``model``, priced from the price table."""
        cost = cost_usd(model, input_tokens, output_tokens)
        with self._lock:
            self.calls += 1
            self.input_tokens += input_tokens
            self.output_tokens += output_tokens
            self.cost_usd += cost

    def fail(self) -> None:
        """Count one request answered with an error."""
        with self._lock:
            self.failed += 1


def token_counter_name(model: str) -> str:
    """How tokens are counted for ``model``: its tiktoken encoding when cached locally."""
    encoding = tokenizer_for(model)
    name = getattr(encoding, "name", None)
    return f"tiktoken {name}" if encoding is not None else "estimate (4 characters per token)"


def _tokens(text: str, model: str) -> int:
    encoding = tokenizer_for(model)
    if encoding is not None:
        return len(encoding.encode(text, disallowed_special=()))
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


class ScriptedResponder:
    """A ``FakeOpenAIServer`` responder for the model-backed agents of one workflow.

    One responder serves one endpoint; several may share a meter. Runs are
    simulated one at a time: call `start_run` before each.

    Args:
        agents: The workflow's model-backed specialists, with their fallbacks.
        meter: Where billed calls are counted (shared by the endpoints of a simulation).

    Raises:
        ConfigError: An agent has no fallback to compute its answers from.

    Attributes:
        down: When ``True`` every request is answered HTTP 500, each with its own
            request id in the message as OpenAI sends it.
        problems: Requests it could not answer (answered HTTP 400), described; a
            simulation with problems is not to be trusted.
    """

    def __init__(self, agents: Sequence[Specialist[Any, Any]], *, meter: CallMeter) -> None:
        for spec in agents:
            if spec.fallback is None:
                raise ConfigError(
                    f"costmodel: agent '{spec.name}' has no fallback; the simulation answers "
                    "each model-backed agent with its deterministic fallback"
                )
        self._by_output: dict[str, list[Specialist[Any, Any]]] = {}
        for spec in agents:
            self._by_output.setdefault(spec.output.__name__, []).append(spec)
        self.meter = meter
        self.down = False
        self.unusual = False
        self.problems: list[str] = []

    def start_run(self, *, unusual: bool) -> None:
        """Before a run: whether its input is unusual (first answers get rejected)."""
        self.unusual = unusual

    def __call__(self, request: RecordedRequest) -> Reply | Fault:
        """Answer one chat request (called by the server on its handler thread)."""
        if self.down:
            self.meter.fail()
            return _server_error()
        spec = self._agent_for(request)
        try:
            if spec is None:
                raise LookupError("no model-backed agent has these tools")
            good = _answer(spec, _payload(request))
        except Exception as exc:
            self.meter.fail()
            agent = spec.name if spec is not None else "an unknown agent"
            self.problems.append(f"request for {agent}: {type(exc).__name__}: {exc}")
            return Fault.status(400)
        retried = _is_retry(request)
        args = good if retried or not self.unusual else _misread(spec, good)
        return self._bill(request, spec.output.__name__, args)

    def _agent_for(self, request: RecordedRequest) -> Specialist[Any, Any] | None:
        names = [str((t.get("function") or {}).get("name")) for t in request.tools]
        system = next(
            (str(m.get("content") or "") for m in request.messages if m.get("role") == "system"),
            "",
        )
        for name in names:
            found = self._by_output.get(name, [])
            if len(found) == 1:
                return found[0]
            for spec in found:
                if spec.prompt.strip() and spec.prompt.strip() in system:
                    return spec
        return None

    def _bill(self, request: RecordedRequest, tool: str, args: dict[str, Any]) -> Reply:
        model = request.model or "gpt-4o-mini"
        prompt = _prompt_tokens(request, model)
        output = _tokens(tool + json.dumps(args), model) + _PER_MESSAGE
        self.meter.bill(model, prompt, output)
        return Reply.tool_call(tool, args, input_tokens=prompt, output_tokens=output)


def _server_error() -> Fault:
    request_id = f"req_{uuid.uuid4().hex}"
    message = (
        "The server had an error while processing your request. Sorry about that! "
        f"You can retry your request. (Please include the request ID {request_id}.)"
    )
    body = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    return Fault.status(500, body=body)


def _prompt_tokens(request: RecordedRequest, model: str) -> int:
    total = _PRIMING
    for message in request.messages:
        text = str(message.get("content") or "")
        calls = message.get("tool_calls")
        if calls:
            text += json.dumps(calls)
        total += _PER_MESSAGE + _tokens(text, model)
    if request.tools:
        total += _tokens(json.dumps(request.tools), model)
    return total


def _payload(request: RecordedRequest) -> str:
    """The task's typed input, as the agent's first user message carries it."""
    for message in request.messages:
        if message.get("role") != "user":
            continue
        text = str(message.get("content") or "")
        start = text.find(_INPUT_MARK)
        if start >= 0:
            return text[start + len(_INPUT_MARK) :].split("\n\n", 1)[0]
    return "{}"


def _is_retry(request: RecordedRequest) -> bool:
    return any(
        mark in str(m.get("content") or "") for m in request.messages for mark in _RETRY_MARKS
    )


def _answer(spec: Specialist[Any, Any], payload: str) -> dict[str, Any]:
    """What the agent's fallback answers for this input, as tool-call arguments."""
    assert spec.fallback is not None
    typed = spec.input.model_validate_json(payload)
    fallback = spec.fallback
    if len(inspect.signature(fallback).parameters) > 1:
        value = fallback(typed, _context(spec, typed))
    else:
        value = fallback(typed)
    if isinstance(value, Answer):
        value = value.value
    out: BaseModel = spec.output.model_validate(value)
    answer: dict[str, Any] = out.model_dump(mode="json")
    return answer


def _context(spec: Specialist[Any, Any], typed: BaseModel) -> AgentContext:
    def no_tools(name: str, args: dict[str, Any]) -> Any:
        raise ConfigError(f"costmodel: {spec.name}'s fallback called tool '{name}'")

    task: TaskMessage[Any] = TaskMessage(
        sender="costmodel", recipient=spec.name, payload=typed.model_dump(mode="json")
    )
    return AgentContext(task=task, agent=spec.name, feedback=None, _call_tool=no_tools)


def _misread(spec: Specialist[Any, Any], good: dict[str, Any]) -> dict[str, Any]:
    """A first answer on an unusual input: one the agent's gate rejects, else its schema does.

    Tried in order: a list missing its last item, a flipped flag, a number read ten
    times too large. A candidate that still validates but fails a gate check is used
    (the gate retries the stage with the reason); failing that, an unreadable answer
    that the output schema rejects (the agent is asked again).
    """
    for candidate in _candidates(good):
        try:
            typed = spec.output.model_validate(candidate)
        except ValidationError:
            continue
        if _gate_rejects(spec, typed):
            return candidate
    unreadable = {name: {"unreadable": True} for name in good}
    try:
        spec.output.model_validate(unreadable)
    except ValidationError:
        return unreadable
    return good


def _candidates(good: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, value in good.items():
        if isinstance(value, list) and value:
            out.append({**good, name: value[:-1]})
    for name, value in good.items():
        if isinstance(value, bool):
            out.append({**good, name: not value})
    for name, value in good.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and value:
            out.append({**good, name: value * 10})
    return out


def _gate_rejects(spec: Specialist[Any, Any], typed: BaseModel) -> bool:
    if spec.gate is None:
        return False
    for check in spec.gate.checks:
        try:
            if check.run(typed, {}) is not None:
                return True
        except Exception:  # a check that needs the parent's fields cannot judge here
            continue
    return False
