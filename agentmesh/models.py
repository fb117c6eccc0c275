"""Resolving chat models for the model layers.

A specialist names a model as a LangChain chat model instance or a string
reference (``openai:gpt-4o-mini``) resolved with LangChain's own
``init_chat_model``. With neither, the layer's model comes from settings; with
no setting either, the layer is *offline* and specialists answer through their
deterministic fallbacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel

from agentmesh.errors import ModelConfigError
from agentmesh.types import Layer

if TYPE_CHECKING:
    from agentmesh.settings import Settings

__all__ = ["ModelRef", "model_name", "resolve_model"]

ModelRef = str | BaseChatModel


def resolve_model(
    ref: ModelRef | None, *, layer: Layer, settings: Settings
) -> BaseChatModel | None:
    """The chat model for a specialist, or ``None`` when its layer is offline.

    Raises:
        ModelConfigError: ``ref`` is not a valid ``provider:model`` reference or
            the provider's integration package is not installed.
    """
    if isinstance(ref, BaseChatModel):
        return ref
    if ref is None:
        ref = settings.frontier_model if layer is Layer.FRONTIER_MODEL else settings.small_model
    if ref is None:
        return None
    return _init_model(ref, settings)


def _init_model(ref: str, settings: Settings) -> BaseChatModel:
    provider, sep, name = ref.partition(":")
    if not sep or not provider or not name:
        raise ModelConfigError(
            f"model reference {ref!r}: expected 'provider:model', for example 'openai:gpt-4o-mini'"
        )
    # agentmesh retries transient failures itself (backoff, Retry-After, breakers,
    # budgets); an SDK retrying underneath would hide failures from the breaker.
    kwargs: dict[str, Any] = {"timeout": settings.model_timeout_s, "max_retries": 0}
    if provider == "openai":
        if settings.openai_base_url:
            kwargs["base_url"] = settings.openai_base_url
        if settings.openai_api_key:
            kwargs["api_key"] = settings.openai_api_key
    try:
        from langchain.chat_models import init_chat_model

        model: BaseChatModel = init_chat_model(ref, **kwargs)
        return model
    except ImportError as exc:
        raise ModelConfigError(
            f"model reference {ref!r}: the provider package is not installed ({exc})"
        ) from exc
    except Exception as exc:
        raise ModelConfigError(f"model reference {ref!r}: {exc}") from exc


def model_name(model: BaseChatModel) -> str:
    """The name used for pricing and tracing.

    A model may declare ``price_as`` (the scripted test models do) to be priced
    as a reference model.
    """
    for attr in ("price_as", "model_name", "model"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__
