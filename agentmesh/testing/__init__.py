"""Test doubles for agentmesh users: scripted models, a recording tracer, a fake
OpenAI-compatible server with fault injection, and a network guard."""

from __future__ import annotations

from agentmesh.testing._recording import NetworkBlockedError, RecordingTracer, block_network
from agentmesh.testing._scripted import ScriptedChatModel, ScriptExhaustedError, tool_call
from agentmesh.testing.openai_server import FakeOpenAIServer, Fault, RecordedRequest, Reply

__all__ = [
    "FakeOpenAIServer",
    "Fault",
    "RecordedRequest",
    "Reply",
    "NetworkBlockedError",
    "RecordingTracer",
    "ScriptExhaustedError",
    "ScriptedChatModel",
    "block_network",
    "tool_call",
]
