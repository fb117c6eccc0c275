"""``python -m agentmesh.cli``."""

from agentmesh.cli._app import main

main()
