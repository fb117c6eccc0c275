"""Model prices and the cost of a model call.

Prices are USD per million tokens (input, output). The table covers common
models and is overridable per process with :func:`set_price`. Cached-input
discounts are ignored: every input token is charged at the full rate, so a
computed cost is never below what the provider bills.

A model whose name is not in the table costs ``0.0`` (cost caps cannot see
it; token and call caps still apply). Give it a price with :func:`set_price`,
or let a scripted or offline model declare ``price_as`` to be priced as a
reference model (see :func:`agentmesh.models.model_name`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Price",
    "cost_usd",
    "price_for",
    "price_table",
    "set_price",
    "worst_case_cost",
]


@dataclass(frozen=True, kw_only=True)
class Price:
    """USD per one million input and output tokens."""

    input_per_mtok: float
    output_per_mtok: float


def _p(input_per_mtok: float, output_per_mtok: float) -> Price:
    return Price(input_per_mtok=input_per_mtok, output_per_mtok=output_per_mtok)


_PRICES: dict[str, Price] = {
    # OpenAI
    "gpt-5": _p(1.25, 10.00),
    "gpt-5-mini": _p(0.25, 2.00),
    "gpt-5-nano": _p(0.05, 0.40),
    "gpt-5-pro": _p(15.00, 120.00),
    "gpt-4.5": _p(75.00, 150.00),
    "gpt-4.1": _p(2.00, 8.00),
    "gpt-4.1-mini": _p(0.40, 1.60),
    "gpt-4.1-nano": _p(0.10, 0.40),
    "gpt-4o": _p(2.50, 10.00),
    "gpt-4o-mini": _p(0.15, 0.60),
    "gpt-4-turbo": _p(10.00, 30.00),
    "gpt-4": _p(30.00, 60.00),
    "gpt-3.5-turbo": _p(0.50, 1.50),
    "o1": _p(15.00, 60.00),
    "o1-mini": _p(1.10, 4.40),
    "o1-pro": _p(150.00, 600.00),
    "o3": _p(2.00, 8.00),
    "o3-mini": _p(1.10, 4.40),
    "o3-pro": _p(20.00, 80.00),
    "o4-mini": _p(1.10, 4.40),
    # Anthropic
    "claude-opus-4": _p(15.00, 75.00),
    "claude-opus-4-5": _p(5.00, 25.00),
    "claude-sonnet-4": _p(3.00, 15.00),
    "claude-haiku-4-5": _p(1.00, 5.00),
    "claude-3-7-sonnet": _p(3.00, 15.00),
    "claude-3-5-sonnet": _p(3.00, 15.00),
    "claude-3-5-haiku": _p(0.80, 4.00),
    "claude-3-opus": _p(15.00, 75.00),
    "claude-3-haiku": _p(0.25, 1.25),
    # Google
    "gemini-2.5-pro": _p(1.25, 10.00),
    "gemini-2.5-flash": _p(0.30, 2.50),
    "gemini-2.5-flash-lite": _p(0.10, 0.40),
    "gemini-2.0-flash": _p(0.10, 0.40),
    "gemini-2.0-flash-lite": _p(0.075, 0.30),
    "gemini-1.5-pro": _p(1.25, 5.00),
    "gemini-1.5-flash": _p(0.075, 0.30),
    # Mistral
    "mistral-large": _p(2.00, 6.00),
    "mistral-small": _p(0.10, 0.30),
}
_LOCK = threading.Lock()


def set_price(model: str, price: Price) -> None:
    """Add or override the price of ``model`` (a bare name such as ``gpt-4o-mini``)."""
    with _LOCK:
        _PRICES[model] = price
        _RESOLVED[:] = [None, {}]


def price_table() -> dict[str, Price]:
    """A copy of the current price table, overrides included."""
    with _LOCK:
        return dict(_PRICES)


def price_for(model: str) -> Price | None:
    """The price of ``model``; provider prefixes and dated suffixes are ignored."""
    table, resolved = _RESOLVED
    if table is _PRICES and model in resolved:  # after every model call: resolve names once
        known: Price | None = resolved[model]
        return known
    name = model.split(":", 1)[-1].removeprefix("models/")
    with _LOCK:
        if name in _PRICES:
            found: Price | None = _PRICES[name]
        else:
            # Dated snapshots ("gpt-4o-mini-2024-07-18") price like their family.
            family = max((k for k in _PRICES if name.startswith(k)), key=len, default=None)
            found = _PRICES[family] if family else None
        table, resolved = _RESOLVED
        if table is not _PRICES or len(resolved) >= 1024:
            resolved = {}
            _RESOLVED[:] = [_PRICES, resolved]
        resolved[model] = found
        return found


# [the table the names were resolved against, {model: price}]
_RESOLVED: list[Any] = [None, {}]


def cost_usd(model: str, input_tokens: int, output_tokens: int) -> float:
    """Cost of one call; 0.0 for a model with no known price."""
    price = price_for(model)
    if price is None:
        return 0.0
    return (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1e6


def worst_case_cost(model: str, *, prompt_tokens: int, max_tokens: int) -> float:
    """The most one call can cost: every prompt token plus a full ``max_tokens`` answer.

    ``prompt_tokens`` should itself be an upper bound (see
    :func:`agentmesh.controls.tokens.prompt_tokens_upper_bound`); ``max_tokens`` is
    the output limit sent to the provider, which bounds the billed output
    (reasoning tokens included). Reserve this amount before the call.

    Raises:
        ValueError: A token count is negative.
    """
    if prompt_tokens < 0 or max_tokens < 0:
        raise ValueError("token counts cannot be negative")
    return cost_usd(model, prompt_tokens, max_tokens)
