"""``agentmesh memory``: ingest knowledge sources, query them, check drift, stats, bench."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agentmesh.errors import AgentMeshError
from agentmesh.settings import Settings

if TYPE_CHECKING:
    from agentmesh.memory import ExternalMemory, Hit, InsufficientContext, Retrieved

memory_app = typer.Typer(
    no_args_is_help=True,
    help="External memory: ingest knowledge sources, query them with freshness enforced.",
)
_err = Console(stderr=True)
_out = Console()
_WORKSPACE = Path("memory")

ChromaUrl = Annotated[
    str | None,
    typer.Option("--chroma-url", help="A Chroma server (default: embedded, in the data folder)."),
]
EmbedderSpec = Annotated[
    str | None,
    typer.Option(
        "--embedder",
        help="hashing, hashing:DIM, minilm, or package.module:EmbeddingsClass "
        "(default: AGENTMESH_EMBEDDINGS, else hashing).",
    ),
]
PolicyFile = Annotated[
    Path | None,
    typer.Option("--policy", help="Policy file (default: memory/policy.toml when present)."),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    _err.print(f"agentmesh memory: error: {message}", highlight=False, markup=False, soft_wrap=True)
    return typer.Exit(code)


def _open(chroma_url: str | None, embedder: str | None, policy: Path | None) -> ExternalMemory:
    from agentmesh.memory import build_external_memory

    settings = Settings.from_env()
    if policy is not None and not policy.is_file():
        raise _fail(f"--policy {policy}: no such file", 2)
    policy = policy or settings.memory_policy
    default = _WORKSPACE / "policy.toml"
    try:
        return build_external_memory(
            data_dir=settings.data_dir,
            chroma_url=chroma_url or settings.chroma_url,
            embedder=embedder or settings.embeddings,
            policy=policy or (default if default.is_file() else None),
        )
    except AgentMeshError as exc:
        raise _fail(str(exc)) from exc


def _age(seconds: float) -> str:
    from agentmesh.memory._policy import format_duration

    return format_duration(seconds)


@memory_app.command("ingest")
def ingest_cmd(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders (default: memory/).")
    ] = None,
    chroma_url: ChromaUrl = None,
    embedder: EmbedderSpec = None,
    policy: PolicyFile = None,
    json_out: JsonOut = False,
) -> None:
    """Ingest knowledge files; a changed file replaces its old chunks."""
    targets = paths or [_WORKSPACE]
    for path in targets:
        if not path.exists():
            raise _fail(f"{path}: no such file or directory", 2)
    memory = _open(chroma_url, embedder, policy)
    try:
        report = memory.ingest(targets)
    except AgentMeshError as exc:
        raise _fail(str(exc)) from exc
    if json_out:
        print(json.dumps([asdict(c) for c in report.changes], indent=2))
        return
    table = Table(title="memory ingest", header_style="bold")
    for column in ("source", "status", "chunks", "removed"):
        table.add_column(column, justify="right" if column in ("chunks", "removed") else "left")
    for change in report.changes:
        table.add_row(change.source, change.status, str(change.chunks), str(change.removed))
    _out.print(table)


@memory_app.command("check")
def check_cmd(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders (default: memory/).")
    ] = None,
    chroma_url: ChromaUrl = None,
    embedder: EmbedderSpec = None,
    policy: PolicyFile = None,
    json_out: JsonOut = False,
) -> None:
    """Report sources whose content changed but whose index did not (exit 1 on drift)."""
    memory = _open(chroma_url, embedder, policy)
    try:
        report = memory.check_sources(paths or [_WORKSPACE])
    except AgentMeshError as exc:
        raise _fail(str(exc)) from exc
    if json_out:
        print(json.dumps([asdict(e) for e in report.entries], indent=2))
    else:
        table = Table(title="memory check", header_style="bold")
        for column in ("source", "status", "indexed", "on disk"):
            table.add_column(column)
        for e in report.entries:
            table.add_row(e.source, e.status, e.indexed_version or "-", e.current_version or "-")
        _out.print(table)
    if not report.ok:
        raise typer.Exit(1)


@memory_app.command("query")
def query_cmd(
    text: Annotated[str, typer.Argument(help="What to look up.")],
    data_type: Annotated[
        list[str] | None, typer.Option("--type", help="Only this data type (repeatable).")
    ] = None,
    k: Annotated[int | None, typer.Option("--k", min=1, help="Hits (default: policy's k).")] = None,
    chroma_url: ChromaUrl = None,
    embedder: EmbedderSpec = None,
    policy: PolicyFile = None,
    json_out: JsonOut = False,
) -> None:
    """Retrieve fresh, relevant context: each hit with its score, age and stale flag."""
    memory = _open(chroma_url, embedder, policy)
    try:
        result = memory.retrieve(text, k=k, data_types=data_type or None)
    except AgentMeshError as exc:
        raise _fail(str(exc)) from exc
    if json_out:
        print(json.dumps(_result_json(result), indent=2))
    else:
        _print_result(result)


def _hit_json(hit: Hit) -> dict[str, Any]:
    return {
        "id": hit.item.id,
        "score": round(hit.score, 4),
        "age_s": round(hit.age_s, 1),
        "stale": hit.stale,
        "stale_reason": hit.stale_reason,
        "source": hit.item.source,
        "data_type": hit.item.data_type,
        "source_version": hit.item.source_version,
        "title": hit.item.title,
        "text": hit.item.text,
    }


def _result_json(result: Retrieved | InsufficientContext) -> dict[str, Any]:
    common = {"kind": result.kind, "query": result.query, "min_score": result.min_score}
    if result.kind == "retrieved":
        return {**common, "hits": [_hit_json(h) for h in result.hits]}
    return {
        **common,
        "reason": result.reason,
        "best_score": result.best_score,
        "hits": [_hit_json(h) for h in result.stale_hits],
    }


def _print_result(result: Retrieved | InsufficientContext) -> None:
    hits = result.hits if result.kind == "retrieved" else result.stale_hits
    if result.kind == "insufficient_context":
        _out.print(f"[yellow]insufficient context:[/yellow] {result.reason}; escalate.")
    if not hits:
        return
    table = Table(header_style="bold", show_lines=True)
    for column in ("score", "age", "stale", "id", "text"):
        table.add_column(column, overflow="fold")
    for h in hits:
        stale = f"yes: {h.stale_reason}" if h.stale else "no"
        snippet = h.item.text if len(h.item.text) < 240 else h.item.text[:237] + "..."
        table.add_row(f"{h.score:.3f}", _age(h.age_s), stale, h.item.id, snippet)
    _out.print(table)


@memory_app.command("stats")
def stats_cmd(
    chroma_url: ChromaUrl = None,
    embedder: EmbedderSpec = None,
    policy: PolicyFile = None,
    json_out: JsonOut = False,
) -> None:
    """Items, sources and stale items per data type."""
    memory = _open(chroma_url, embedder, policy)
    stats = memory.stats()
    if json_out:
        print(json.dumps(asdict(stats), indent=2))
        return
    table = Table(
        title=f"memory stats ({stats.store}, {stats.embedder})",
        header_style="bold",
        caption=f"{stats.items} items, {stats.sources} sources, {stats.stale_items} stale",
    )
    for column in ("data type", "sources", "items", "stale", "max age", "stale items are"):
        table.add_column(column)
    for t in stats.by_type:
        max_age = "-" if t.max_age_s is None else _age(t.max_age_s)
        table.add_row(
            t.data_type, str(t.sources), str(t.items), str(t.stale_items), max_age, t.on_stale
        )
    _out.print(table)


@memory_app.command("bench")
def bench_cmd(
    n: Annotated[int, typer.Option("--n", min=1, help="Items to load.")] = 100_000,
    queries: Annotated[int, typer.Option(min=1, help="Queries timed per path.")] = 200,
    where_queries: Annotated[
        int, typer.Option(min=0, help="Queries also timed as plain where queries.")
    ] = 20,
    k: Annotated[int, typer.Option("--k", min=1, help="Hits per query.")] = 5,
    json_out: JsonOut = False,
) -> None:
    """Query latency with and without the freshness policy, against raw Chroma."""
    from agentmesh.memory._bench import run_memory_bench

    folder = Settings.from_env().data_dir / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]loading"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_err,
    ) as bar:
        task = bar.add_task("load", total=n)
        result = run_memory_bench(
            n=n,
            queries=queries,
            where_queries=where_queries,
            k=k,
            folder=folder,
            on_progress=lambda done, _total: bar.update(task, completed=done),
        )
    result["total_s"] = round(time.perf_counter() - started, 1)
    if json_out:
        print(json.dumps(result, indent=2))
        return
    table = Table(title="agentmesh memory bench", header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, str(value))
    _out.print(table)


@memory_app.command("eval")
def eval_cmd(
    queries: Annotated[Path, typer.Argument(help="Labelled queries (JSON Lines).")],
    corpus: Annotated[
        list[Path] | None,
        typer.Option("--corpus", help="Files or folders to search (default: memory/)."),
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="Hits considered.")] = 5,
    embedder: EmbedderSpec = None,
    policy: PolicyFile = None,
    json_out: JsonOut = False,
) -> None:
    """Recall@k and abstention of an embedder on a labelled query set (in memory)."""
    from agentmesh.memory import ExternalMemory, InMemoryStore, MemoryPolicy, build_embedder
    from agentmesh.memory._recall import evaluate_recall, load_labelled_queries

    if not queries.is_file():
        raise _fail(f"{queries}: no such file", 2)
    try:
        loaded = MemoryPolicy.load(policy) if policy else _default_policy()
        # Recall measures ranking, so ages do not matter here; relevance floors do.
        scoring = MemoryPolicy(
            k=k,
            min_score=loaded.min_score,
            min_score_by_embedder=loaded.min_score_by_embedder,
            source_types=loaded.source_types,
        )
        memory = ExternalMemory(
            store=InMemoryStore(),
            embedder=build_embedder(embedder or Settings.from_env().embeddings),
            policy=scoring,
        )
        memory.ingest(corpus or [_WORKSPACE])
        report = evaluate_recall(memory, load_labelled_queries(queries), k=k)
    except AgentMeshError as exc:
        raise _fail(str(exc)) from exc
    if json_out:
        print(json.dumps(asdict(report), indent=2))
        return
    table = Table(title=f"memory eval ({report.embedder})", header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in asdict(report).items():
        if key != "misses":
            table.add_row(key, str(value))
    _out.print(table)
    for miss in report.misses:
        _out.print(f"  missed: {miss}", highlight=False)


def _default_policy() -> Any:
    from agentmesh.memory import MemoryPolicy

    default = _WORKSPACE / "policy.toml"
    return MemoryPolicy.load(default) if default.is_file() else MemoryPolicy()
