"""``agentmesh kill``: set, lift and list kill switches."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agentmesh.controls.killswitch import KillRecord, KillSwitch, kill_scope
from agentmesh.errors import AgentMeshError
from agentmesh.settings import Settings

__all__ = ["kill_cmd"]

_DEFAULT_REASON = "set from the command line"


def kill_cmd(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Every run of every workflow.")] = False,
    workflow: Annotated[
        str | None, typer.Option("--workflow", metavar="NAME", help="Runs of one workflow.")
    ] = None,
    agent: Annotated[
        str | None, typer.Option("--agent", metavar="NAME", help="Steps of one agent.")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Lift the switch instead.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="Show the switches that are set.")] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", metavar="TEXT", help="Why (shown to runs).")
    ] = None,
) -> None:
    """Stop runs before their next step: all of them, one workflow's or one agent's."""
    scopes = sum((all_, workflow is not None, agent is not None))
    if list_:
        if scopes or clear or reason is not None:
            ctx.fail("--list takes no other option")
    elif scopes != 1:
        ctx.fail("give exactly one of --all, --workflow NAME, --agent NAME (or --list)")
    elif clear and reason is not None:
        ctx.fail("--reason applies when setting a switch, not with --clear")
    for name, value in (("--workflow", workflow), ("--agent", agent)):
        if value is not None and not value.strip():
            ctx.fail(f"{name} needs a non-empty NAME")
    try:
        switch = KillSwitch.from_settings(Settings.from_env())
        if list_:
            _print_active(switch.active())
        elif clear:
            scope = kill_scope(all=all_, workflow=workflow, agent=agent)
            lifted = switch.clear(all=all_, workflow=workflow, agent=agent)
            print(
                f"kill switch cleared: {scope}" if lifted else f"kill switch was not set: {scope}"
            )
        else:
            why = reason or _DEFAULT_REASON
            scope = switch.kill(all=all_, workflow=workflow, agent=agent, reason=why)
            print(f"kill switch set: {scope} ({why})")
    except (AgentMeshError, OSError) as exc:
        Console(stderr=True).print(
            f"agentmesh kill: error: {exc}", highlight=False, markup=False, soft_wrap=True
        )
        raise typer.Exit(1) from exc


def _print_active(records: list[KillRecord]) -> None:
    if not records:
        print("no kill switch is set")
        return
    table = Table(title="Kill switches", header_style="bold")
    table.add_column("scope")
    table.add_column("reason")
    table.add_column("set at (UTC)")
    for record in records:
        at = datetime.fromtimestamp(record.at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(record.scope, record.reason, at)
    Console().print(table)
