"""Orchestration internals. Nothing here is public API."""
