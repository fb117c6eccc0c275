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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``AGENTMESH_*``, ``OPENAI_*`` and ``LANGFUSE_*`` variables."""
        e = os.environ if env is None else env
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
        )

    @property
    def tracing_enabled(self) -> bool:
        """Whether Langfuse settings are present."""
        return bool(self.langfuse_public_key and self.langfuse_secret_key)
