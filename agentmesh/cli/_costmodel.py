"""``agentmesh costmodel``: price a workflow's expected, edge and failure scenarios."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path  # noqa: TC003 (typer reads the annotations at run time)
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agentmesh.errors import AgentMeshError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from agentmesh.costmodel import CostModelConfig, CostReport

__all__ = ["costmodel_cmd"]

_err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    _err.print(
        f"agentmesh costmodel: error: {message}", highlight=False, markup=False, soft_wrap=True
    )
    return typer.Exit(code)


def costmodel_cmd(
    workflow: Annotated[Path, typer.Argument(help="Workflow module, e.g. graphs/invoices.py.")],
    input: Annotated[
        Path | None,
        typer.Option("--input", help="JSONL inputs like the test set (default: the SAMPLE)."),
    ] = None,
    runs: Annotated[int, typer.Option("--runs", min=1, help="Runs per scenario and mode.")] = 40,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random choice.")] = 1,
    down_agent: Annotated[
        str | None,
        typer.Option(
            "--down-agent",
            metavar="NAME",
            help="Agent whose model endpoint is down in the failure scenario (default: the "
            "last model-backed agent to run).",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when the ratio target is not met.")
    ] = False,
) -> None:
    """Simulate cost per run: expected, edge (10% unusual) and failure (tools and an upstream fail).

    Costs are simulated with scripted answers at real token counts and real prices;
    the failure-to-expected ratio is reported with agentmesh's controls on and off.
    """
    from agentmesh.batch import read_items
    from agentmesh.costmodel import CostModelConfig, model_agents
    from agentmesh.workspace import load_workflow

    if not workflow.is_file():
        raise _fail(f"{workflow}: no such workflow file", 2)
    try:
        wf = load_workflow(workflow)
        source = input or wf.sample
        if source is None:
            raise _fail(f"{workflow} declares no SAMPLE; pass --input FILE.jsonl", 2)
        if not source.is_file():
            raise _fail(f"--input {source}: no such file", 2)
        items = list(read_items(source))
        agents = [a.name for a in model_agents(wf.role)]
        if down_agent is not None and down_agent not in agents:
            known = ", ".join(agents) or "none"
            raise _fail(f"--down-agent {down_agent}: not a model-backed agent (known: {known})", 2)
        config = CostModelConfig(runs=runs, seed=seed, down_agent=down_agent)
        with _quiet_breakers():
            report = _simulate(wf.role, items, config)
    except AgentMeshError as exc:
        raise _fail(str(exc)) from exc
    if json_out:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        _print_report(report)
    if check and not report.target_met:
        raise _fail(
            f"failure_to_expected_ratio {report.failure_to_expected_ratio:.3f} is over the "
            f"target {report.target_ratio}"
        )


@contextlib.contextmanager
def _quiet_breakers() -> Iterator[None]:
    """Breakers opening on the down endpoint is the scenario, not news: keep them quiet."""
    logger = logging.getLogger("agentmesh.controls.breaker")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _simulate(role: Any, items: list[dict[str, Any]], config: CostModelConfig) -> CostReport:
    from agentmesh.costmodel import simulate_costs

    modes = 1 + (config.off is not None)
    total = modes * len(config.scenarios) * config.runs
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_err,
        transient=True,
    ) as bar:
        task = bar.add_task(f"simulating {role.name}", total=total)

        def advance(mode: str, scenario: str, done: int) -> None:
            bar.update(task, advance=1, description=f"controls {mode}: {scenario}")

        return simulate_costs(role, items, config, progress=advance)


def _print_report(report: CostReport) -> None:
    out = Console()
    data = report.as_dict()
    off = report.off
    table = Table(title=f"Cost model: {report.workflow} (simulated)", header_style="bold")
    table.add_column("scenario")
    table.add_column("USD/run", justify="right")
    table.add_column("p95", justify="right")
    table.add_column("calls/run", justify="right")
    table.add_column("x expected", justify="right")
    table.add_column("x expected, controls off", justify="right")
    for name, result in report.on.scenarios.items():
        table.add_row(
            name,
            f"{result.cost_per_run_usd:.6f}",
            f"{result.p95_cost_usd:.6f}",
            f"{result.model_calls_per_run:.2f}",
            f"{report.on.ratio(name):.2f}",
            "-" if off is None else f"{off.ratio(name):.2f}",
        )
    out.print(table)
    for name, result in report.on.scenarios.items():
        ended = ", ".join(f"{k} {v}" for k, v in sorted(result.statuses.items()))
        out.print(f"{name}: {ended}", highlight=False)
    verdict = "[green]met[/green]" if report.target_met else "[red]not met[/red]"
    out.print(
        f"failure_to_expected_ratio {data['failure_to_expected_ratio']} "
        f"(target <= {report.target_ratio}: {verdict}); controls off: "
        f"{data['failure_to_expected_ratio_controls_off']}",
        highlight=False,
    )
    exposure = f"risk exposure per 1,000 runs: ${data['risk_exposure_per_1000_runs_usd']:.4f}"
    if off is not None:
        exposure += f" (controls off: ${data['risk_exposure_per_1000_runs_usd_controls_off']:.4f})"
    out.print(exposure, highlight=False)
    out.print(f"  = {data['risk_exposure_definition']}", highlight=False)
    out.print(f"failure scenario: {report.down_agent}'s model endpoint is down", highlight=False)
    out.print(f"[yellow]simulated:[/yellow] {data['method']}", highlight=False)
