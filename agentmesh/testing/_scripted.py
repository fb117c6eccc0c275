"""A scripted chat model: deterministic answers, tool calls and structured output."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field, PrivateAttr

if TYPE_CHECKING:
    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.runnables import Runnable
    from langchain_core.tools import BaseTool

__all__ = ["ScriptExhaustedError", "ScriptedChatModel", "tool_call"]

# What a script entry may be: an AIMessage, a pydantic instance (answered as a
# call to the tool of that class's name), text, a tool-call dict, or an exception.
Scripted = AIMessage | BaseModel | str | dict[str, Any] | BaseException
Responder = Callable[[list[BaseMessage], list[dict[str, Any]]], Scripted]


class ScriptExhaustedError(AssertionError):
    """The model was called more times than its script has answers."""


def tool_call(name: str, **args: Any) -> dict[str, Any]:
    """A script entry that answers with one call to tool ``name``."""
    return {"name": name, "args": args}


class ScriptedChatModel(BaseChatModel):
    """A chat model that answers from a script and counts calls and tokens.

    Attributes:
        script: Answers given in order.
        respond: Called when the script is empty: ``respond(messages, tools)``.
        price_as: Reference model whose prices apply to the counted tokens.
        tokens_per_answer: Output tokens reported per answer (``None``: estimate).
    """

    # Answers come from memory, never from I/O, so calls run inline without the
    # watchdog thread that bounds clients lacking a timeout of their own (see
    # agentmesh._runtime.guard). Hang tests use FakeOpenAIServer and ChatOpenAI.
    agentmesh_in_process: ClassVar[bool] = True
    script: list[Any] = Field(default_factory=list)
    respond: Responder | None = None
    price_as: str = "gpt-4o-mini"
    tokens_per_answer: int | None = None
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _calls: int = PrivateAttr(default=0)
    _input_tokens: int = PrivateAttr(default=0)
    _output_tokens: int = PrivateAttr(default=0)
    _requests: list[list[BaseMessage]] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "agentmesh-scripted"

    @property
    def calls(self) -> int:
        """How many times the model was called."""
        return self._calls

    @property
    def input_tokens(self) -> int:
        """Input tokens reported across all calls."""
        return self._input_tokens

    @property
    def output_tokens(self) -> int:
        """Output tokens reported across all calls."""
        return self._output_tokens

    @property
    def requests(self) -> list[list[BaseMessage]]:
        """The messages of every call, in order."""
        return self._requests

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Record the tools offered, as a real provider integration would send them."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        tools: list[dict[str, Any]] = kwargs.get("tools") or []
        with self._lock:
            entry: Any = self.script.pop(0) if self.script else None
            n = self._calls = self._calls + 1
            self._requests.append(list(messages))
        if entry is None:
            if self.respond is None:
                raise ScriptExhaustedError(f"scripted model called {n} times; script is empty")
            entry = self.respond(messages, tools)
        if isinstance(entry, BaseException):
            raise entry
        message = _to_message(entry, n)
        tokens_in = max(1, sum(len(str(m.content)) for m in messages) // 4)
        tokens_out = self.tokens_per_answer or max(
            1, len(str(message.content) + str(message.tool_calls)) // 4
        )
        message.usage_metadata = {
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
        }
        with self._lock:
            self._input_tokens += tokens_in
            self._output_tokens += tokens_out
        return ChatResult(generations=[ChatGeneration(message=message)])


def _to_message(entry: Any, n: int) -> AIMessage:
    if isinstance(entry, AIMessage):
        return entry.model_copy()
    if isinstance(entry, BaseModel):
        entry = tool_call(type(entry).__name__, **entry.model_dump(mode="json"))
    if isinstance(entry, dict):
        calls = entry.get("calls", [entry])
        return AIMessage(
            content="",
            tool_calls=[
                {"name": c["name"], "args": c["args"], "id": f"call_{n}_{i}", "type": "tool_call"}
                for i, c in enumerate(calls)
            ],
        )
    return AIMessage(content=str(entry))
