"""The ``agentmesh`` command line."""

from __future__ import annotations

from agentmesh.cli._app import app, main

__all__ = ["app", "main"]
