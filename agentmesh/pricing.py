"""Model prices and the cost of a model call.

Prices are USD per million tokens (input, output). The table covers common
models and is overridable per process with :func:`set_price`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Price", "cost_usd", "price_for", "set_price"]


@dataclass(frozen=True, kw_only=True)
class Price:
    """USD per one million input and output tokens."""

    input_per_mtok: float
    output_per_mtok: float


_PRICES: dict[str, Price] = {
    "gpt-4o-mini": Price(input_per_mtok=0.15, output_per_mtok=0.60),
    "gpt-4o": Price(input_per_mtok=2.50, output_per_mtok=10.00),
    "gpt-4.1": Price(input_per_mtok=2.00, output_per_mtok=8.00),
    "gpt-4.1-mini": Price(input_per_mtok=0.40, output_per_mtok=1.60),
    "gpt-4.1-nano": Price(input_per_mtok=0.10, output_per_mtok=0.40),
    "o4-mini": Price(input_per_mtok=1.10, output_per_mtok=4.40),
    "claude-3-5-haiku": Price(input_per_mtok=0.80, output_per_mtok=4.00),
    "claude-sonnet-4": Price(input_per_mtok=3.00, output_per_mtok=15.00),
    "claude-opus-4": Price(input_per_mtok=15.00, output_per_mtok=75.00),
    "gemini-2.0-flash": Price(input_per_mtok=0.10, output_per_mtok=0.40),
}


def set_price(model: str, price: Price) -> None:
    """Add or override the price of ``model``."""
    _PRICES[model] = price


def price_for(model: str) -> Price | None:
    """The price of ``model``; provider prefixes and dated suffixes are ignored."""
    name = model.split(":", 1)[-1]
    if name in _PRICES:
        return _PRICES[name]
    # Dated snapshots ("gpt-4o-mini-2024-07-18") price like their family.
    family = max((k for k in _PRICES if name.startswith(k)), key=len, default=None)
    return _PRICES[family] if family else None


def cost_usd(model: str, input_tokens: int, output_tokens: int) -> float:
    """Cost of one call; 0.0 for a model with no known price."""
    price = price_for(model)
    if price is None:
        return 0.0
    return (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1e6
