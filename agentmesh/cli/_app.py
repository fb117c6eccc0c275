"""Typer application: ``run``, ``graph show``, ``bench`` (``bench context``) and ``--version``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agentmesh import __version__
from agentmesh.batch import BatchSummary, read_items, run_batch
from agentmesh.cli._costmodel import costmodel_cmd
from agentmesh.cli._kill import kill_cmd
from agentmesh.cli._memory import memory_app
from agentmesh.errors import AgentMeshError
from agentmesh.render import to_mermaid
from agentmesh.settings import Settings
from agentmesh.workspace import Workflow, load_workflow

app = typer.Typer(
    name="agentmesh",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Run, inspect and benchmark agentmesh workflows.",
)
graph_app = typer.Typer(no_args_is_help=True, help="Inspect a workflow's hierarchy.")
app.add_typer(graph_app, name="graph")
app.add_typer(memory_app, name="memory")
app.command("kill")(kill_cmd)
app.command("costmodel")(costmodel_cmd)
err = Console(stderr=True)
out = Console()


def _version(value: bool) -> None:
    if value:
        print(f"agentmesh {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """agentmesh: production multi-agent workflows on LangGraph."""


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"agentmesh: error: {message}", highlight=False, markup=False, soft_wrap=True)
    return typer.Exit(code)


def _load(workflow: Path) -> Workflow:
    if not workflow.is_file():
        raise _fail(f"{workflow}: no such workflow file", 2)
    try:
        return load_workflow(workflow)
    except AgentMeshError as exc:
        raise _fail(str(exc)) from exc


@app.command("run")
def run_cmd(
    workflow: Annotated[Path, typer.Argument(help="Workflow module, e.g. graphs/invoices.py.")],
    input: Annotated[
        Path | None, typer.Option("--input", help="JSONL items (default: the workflow's sample).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="JSONL results; re-run to resume.")
    ] = None,
    json_summary: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON.")
    ] = False,
    budget_usd: Annotated[
        float | None,
        typer.Option(
            "--budget-usd",
            min=0,
            help="Cost cap for the whole batch (spend already in --out counts); items not "
            "run are reported as skipped.",
        ),
    ] = None,
    episodes: Annotated[
        bool,
        typer.Option(
            "--episodes/--no-episodes",
            help="Record every finished item as an episode in episodic memory (the data "
            "folder's Chroma, or AGENTMESH_CHROMA_URL).",
        ),
    ] = True,
) -> None:
    """Process a batch: one result line per item, written as soon as it finishes."""
    wf = _load(workflow)
    try:
        source = input or wf.sample
        if source is None:
            raise _fail(f"{workflow} declares no SAMPLE; pass --input FILE.jsonl", 2)
        if not source.is_file():
            raise _fail(f"--input {source}: no such file", 2)
        items = list(read_items(source))
        target = out or Path(f"{Settings.from_env().data_dir}/runs/{workflow.stem}.jsonl")
        settings = Settings.from_env()
        evaluate = getattr(wf.module, "evaluate", None)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        ) as bar:
            task = bar.add_task(f"{wf.role.name}", total=len(items))
            summary = run_batch(
                wf.graph,
                wf.role,
                items,
                target,
                settings=settings,
                evaluate=evaluate,
                on_item=lambda _line: bar.advance(task),
                budget_usd=budget_usd,
                episodes=episodes,
            )
            bar.update(task, completed=len(items))
    except AgentMeshError as exc:
        raise _fail(str(exc)) from exc
    if json_summary:
        print(json.dumps({**summary.as_dict(), "out": str(target)}, indent=2))
    else:
        _print_summary(summary, target, offline=_offline(settings), episodes=episodes)


def _offline(settings: Settings) -> bool:
    return settings.small_model is None and settings.frontier_model is None


def _print_summary(
    summary: BatchSummary, target: Path, *, offline: bool, episodes: bool = False
) -> None:
    table = Table(title="Batch summary", show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    figures = summary.as_dict()
    table.add_row("items", str(summary.items))
    if summary.skipped:
        table.add_row("already done (skipped)", str(summary.skipped))
    if summary.budget_usd is not None:
        table.add_row(
            "batch budget (USD): spent / cap", f"{summary.spent_usd:.4f} / {summary.budget_usd:.4f}"
        )
        table.add_row("skipped: batch budget exhausted", str(summary.skipped_budget))
    for status, count in sorted(summary.statuses.items()):
        table.add_row(f"  {status}", str(count))
    table.add_row("escalation rate", f"{summary.escalation_rate:.1%}")
    for name, acc in sorted(summary.accuracy().items()):
        table.add_row(f"accuracy: {name}", f"{acc:.1%}")
    table.add_row("model calls", str(summary.model_calls))
    table.add_row("tokens in / out", f"{summary.input_tokens:,} / {summary.output_tokens:,}")
    table.add_row("cost (USD)", f"{summary.cost_usd:.4f}")
    table.add_row(
        "latency p50 / p95", f"{figures['latency_p50_s']:.3f}s / {figures['latency_p95_s']:.3f}s"
    )
    table.add_row("answered by fallback", f"{summary.degraded} of {summary.items}")
    if episodes:
        failed = f" ({summary.episodes_failed} failed)" if summary.episodes_failed else ""
        table.add_row("episodes recorded", f"{summary.episodes}{failed}")
    out.print(table)
    if offline:
        out.print(
            "[yellow]offline mode:[/yellow] no model configured (AGENTMESH_SMALL_MODEL); "
            "model-layer agents answered through their deterministic fallbacks."
        )
    out.print(f"results: {target}")


@graph_app.command("show")
def graph_show(
    workflow: Annotated[Path, typer.Argument(help="Workflow module, e.g. graphs/invoices.py.")],
    png: Annotated[
        Path | None, typer.Option("--png", help="Also render the picture to this PNG file.")
    ] = None,
) -> None:
    """Print the hierarchy as Mermaid (and render it to PNG with --png)."""
    wf = _load(workflow)
    print(to_mermaid(wf.role), end="")
    if png is not None:
        try:
            from agentmesh.render_png import render_png
        except ImportError as exc:
            raise _fail(f"--png needs Pillow: pip install 'agentmesh[png]' ({exc})") from exc
        try:
            render_png(wf.role, png)
        except AgentMeshError as exc:
            raise _fail(str(exc)) from exc
        err.print(f"wrote {png}")


bench_app = typer.Typer()
app.add_typer(bench_app, name="bench")


@bench_app.callback(invoke_without_command=True)
def bench_cmd(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    tasks: Annotated[int, typer.Option(min=1, help="Tasks per measurement.")] = 200,
    repeats: Annotated[int, typer.Option(min=1, help="Measurements (median is reported).")] = 5,
) -> None:
    """Measure agentmesh's overhead against raw LangGraph and langgraph-supervisor."""
    if ctx.invoked_subcommand is not None:
        return
    from agentmesh.bench import run_benchmark

    _print_bench(run_benchmark(tasks=tasks, repeats=repeats), json_out, "agentmesh bench")


@bench_app.command("context")
def bench_context_cmd(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    steps: Annotated[int, typer.Option(min=1, help="Tool rounds of the agent.")] = 200,
    max_tokens: Annotated[int, typer.Option(min=200, help="The context's token budget.")] = 4000,
) -> None:
    """Prompt tokens per step of a long tool loop, with and without a context budget."""
    from agentmesh.bench._context import run_context_bench
    from agentmesh.memory.context import ContextBudget

    result = run_context_bench(steps, budget=ContextBudget(max_tokens=max_tokens))
    if not json_out:
        result.pop("curves")
    _print_bench(result, json_out, "agentmesh bench context")


@bench_app.command("kill")
def bench_kill_cmd(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    runs: Annotated[int, typer.Option(min=1, help="Concurrent runs to kill.")] = 50,
) -> None:
    """Kill switch stop latency across concurrent runs, and the cost of one node's check."""
    from agentmesh.bench._kill import run_kill_bench

    _print_bench(run_kill_bench(runs), json_out, "agentmesh bench kill")


def _print_bench(result: dict[str, Any], json_out: bool, title: str) -> None:
    if json_out:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
    out.print(table)


# Typer vendors its own Click; its UsageError is public only as BadParameter's base.
_USAGE_ERROR: type[Exception] = typer.BadParameter.__mro__[1]


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: usage errors exit 2 with one line."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="agentmesh", standalone_mode=False)
    except _USAGE_ERROR as exc:
        ctx = getattr(exc, "ctx", None)
        name = getattr(ctx, "info_name", None)
        where = f" {name}" if name and name != "agentmesh" else ""
        print(f"agentmesh{where}: error: {exc.format_message()}", file=sys.stderr)  # type: ignore[attr-defined]
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
