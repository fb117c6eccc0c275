"""The workspace graphs served by `langgraph dev`, called through ``langgraph_sdk``.

One ``langgraph dev`` process serves the graphs of the project's ``langgraph.json``
for the whole module. It is started with every telemetry and remote call of
langgraph-cli, langgraph-api and langsmith switched off (see ``_server_env``),
and a ``sitecustomize`` guard in the server process refuses and records any
connection or name lookup outside loopback, so the suite's network block holds
for the subprocess too.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import agentmesh as am
from graphs.quickstart import EXAMPLE, Note, Report, graph

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "langgraph.json"
LANGGRAPH = Path(sys.executable).parent / "langgraph"
STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
SAMPLE = ROOT / "graphs" / "data" / "invoices_sample.jsonl"
INSTALL_HINT = "pip install 'agentmesh[serve]'"

served = pytest.mark.served


def _missing_server_packages() -> str | None:
    if not LANGGRAPH.is_file():
        return f"the `langgraph` CLI is not installed next to {sys.executable}: {INSTALL_HINT}"
    for module in ("langgraph_api", "langgraph_runtime_inmem", "langgraph_sdk"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (`langgraph dev` needs it): {INSTALL_HINT}"
    return None


# -- the subprocess environment -------------------------------------------------------------

# Dropped from the inherited environment: API keys, licence keys and endpoints that
# would switch on LangSmith tracing, the licence/metadata beacon, OTLP or Datadog
# exporters, Langfuse, or a real model.
_DROP_PREFIXES = (
    "LANGSMITH_",
    "LANGCHAIN_",
    "LANGGRAPH_",
    "LANGFUSE_",
    "OTEL_",
    "LSD_",
    "CUSTOM_LSD_",
    "DD_",
    "OPENAI_",
    "ANTHROPIC_",
    "AGENTMESH_",
)
_DROP = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"}

# Set explicitly. Where each is read (installed sources):
_QUIET = {
    # langgraph_cli/analytics.py: log_command posts every CLI command to Supabase unless "1".
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    # langgraph_api/cli.py: run_server starts a PyPI version check unless "true"/"1".
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    # langgraph_api/config: TRACING; langsmith: tracing_is_enabled() (also gates the studio
    # origin / organisation lookups in langgraph_api/cli.py).
    "LANGSMITH_TRACING": "false",
    "LANGSMITH_TRACING_V2": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGCHAIN_TRACING": "false",
    # langgraph_api/config: OTEL_ENABLED (otel_context, route tracing) and OTLP metrics.
    "OTEL_ENABLED": "false",
    "OTEL_SDK_DISABLED": "true",
    "LANGGRAPH_METRICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "NO_PROXY": "127.0.0.1,localhost,::1",
    "no_proxy": "127.0.0.1,localhost,::1",
    "PYTHONUNBUFFERED": "1",
}
# Not set, hence off: LANGGRAPH_CLOUD_LICENSE_KEY / LANGSMITH_API_KEY /
# LANGSMITH_CONTROL_PLANE_API_KEY (langgraph_api/metadata.py skips its beacon loop
# without them), LSD_DD_API_KEY (Datadog exporter), the `ui` and `webhooks` config
# (npx bundler, webhook calls), --tunnel (cloudflared) and the browser (--no-browser).

_GUARD = textwrap.dedent(
    '''
    """Served-test guard: refuse and record any network use outside loopback."""
    import ipaddress
    import os
    import socket
    import sys

    # asyncio's own loop connects through socket.socket (which is guarded below);
    # uvloop would connect in C, out of the guard's sight. uvicorn falls back to asyncio.
    sys.modules["uvloop"] = None

    _LOG = os.environ["AGENTMESH_NETGUARD_LOG"]
    _HOSTNAME = socket.gethostname()


    def _local(host):
        if isinstance(host, bytes):
            host = host.decode()
        if host in (None, "", "localhost", _HOSTNAME):
            return True
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False


    def _refuse(what):
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(f"pid {os.getpid()}: {what}\\n")
        raise ConnectionRefusedError(f"served-test guard: {what} is not loopback")


    _connect = socket.socket.connect
    _connect_ex = socket.socket.connect_ex
    _getaddrinfo = socket.getaddrinfo


    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            _refuse(f"connect {address!r}")
        return _connect(self, address)


    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            _refuse(f"connect {address!r}")
        return _connect_ex(self, address)


    def getaddrinfo(host, *args, **kwargs):
        if not _local(host):
            _refuse(f"resolve {host!r}")
        return _getaddrinfo(host, *args, **kwargs)


    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo
    '''
)


def _server_env(workdir: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(_DROP_PREFIXES) and k not in _DROP
    }
    env.update(_QUIET)
    guard = workdir / "guard"
    guard.mkdir(exist_ok=True)
    (guard / "sitecustomize.py").write_text(_GUARD, encoding="utf-8")
    env["PYTHONPATH"] = str(guard)
    env["AGENTMESH_NETGUARD_LOG"] = str(workdir / "outbound.log")
    env["AGENTMESH_DATA_DIR"] = str(workdir / "data")
    return env


# -- the served configuration -----------------------------------------------------------------


def _import_problem(module: str, env: dict[str, str]) -> str | None:
    """Why ``module`` does not import (and export ``graph``) in a fresh interpreter."""
    probe = f"import {module} as m; assert hasattr(m, 'graph'), 'no graph exported'"
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode == 0:
        return None
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit code {proc.returncode}"


def _served_config(workdir: Path, env: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """The project's langgraph.json with its paths made absolute, minus graphs that fail to import.

    The server runs in ``workdir`` rather than the project root so the in-memory
    runtime's ``.langgraph_api/`` state never lands in (or is reloaded from) the
    working tree. One graph that fails to import would stop the whole server, so
    such graphs are left out and reported.
    """
    raw: dict[str, Any] = json.loads(CONFIG.read_text(encoding="utf-8"))
    graphs: dict[str, str] = {}
    dropped: dict[str, str] = {}
    for graph_id, spec in raw["graphs"].items():
        path, variable = spec.rsplit(":", 1)
        module = ".".join(Path(path).with_suffix("").parts)
        problem = _import_problem(module, env)
        if problem is None:
            graphs[graph_id] = f"{(ROOT / path).resolve()}:{variable}"
        else:
            dropped[graph_id] = f"{path} does not import cleanly: {problem}"
    config = {
        **raw,
        "dependencies": [str((ROOT / dep).resolve()) for dep in raw["dependencies"]],
        "graphs": graphs,
    }
    target = workdir / "langgraph.json"
    target.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return target, dropped


# -- the server -------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    log: Path
    outbound: Path
    dropped: dict[str, str] = field(default_factory=dict)

    def client(self) -> Any:
        from langgraph_sdk import get_sync_client

        return get_sync_client(url=self.url, api_key=None, timeout=60.0)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def assert_loopback_only(self) -> None:
        attempts = self.outbound.read_text(encoding="utf-8") if self.outbound.exists() else ""
        assert not attempts, f"the server tried to reach the network:\n{attempts}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_API_URL = re.compile(r"API:\s*(?:\x1b\[[0-9;]*m)?(http://127\.0\.0\.1:\d+)")


def _healthy(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/ok", timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    missing = _missing_server_packages()
    if missing:
        pytest.skip(missing)
    workdir = tmp_path_factory.mktemp("langgraph_dev")
    env = _server_env(workdir)
    config, dropped = _served_config(workdir, env)
    if "quickstart" in dropped:
        pytest.fail(dropped["quickstart"])
    port = _free_port()
    log = workdir / "server.log"
    # --no-reload: the reloader would watch a tree other people edit and restart mid-test.
    cmd = [
        str(LANGGRAPH),
        "dev",
        "--no-browser",
        "--no-reload",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--config",
        str(config),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    srv = Server(
        url=f"http://127.0.0.1:{port}", log=log, outbound=workdir / "outbound.log", dropped=dropped
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"`langgraph dev` exited with {proc.returncode}:\n{srv.log_tail()}")
            # The server silently moves to another port when ours was taken meanwhile.
            found = _API_URL.search(log.read_text(encoding="utf-8", errors="replace"))
            if found:
                srv.url = found.group(1)
            if _healthy(srv.url):
                break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"`langgraph dev` not healthy after {STARTUP_TIMEOUT_S:.0f}s:\n{srv.log_tail()}"
                )
            time.sleep(0.25)
        yield srv
    finally:
        _stop(proc)
    srv.assert_loopback_only()


# -- tests ------------------------------------------------------------------------------------


def test_langgraph_json_is_valid_for_the_cli() -> None:
    config_mod = pytest.importorskip("langgraph_cli.config", reason=INSTALL_HINT)
    raw = json.loads(CONFIG.read_text(encoding="utf-8"))
    assert config_mod.get_unknown_keys(raw) == []
    config = config_mod.validate_config_file(CONFIG)
    assert config["python_version"] == "3.11"
    assert set(config["graphs"]) == {"invoices", "quickstart"}
    for spec in config["graphs"].values():
        path, variable = spec.rsplit(":", 1)
        assert (ROOT / path).is_file(), spec
        assert variable == "graph"


@served
def test_quickstart_graph_served(server: Server) -> None:
    client = server.client()
    assert any(a["graph_id"] == "quickstart" for a in client.assistants.search(limit=50))
    thread = client.threads.create()
    state = client.runs.wait(
        thread["thread_id"], "quickstart", input={"input": EXAMPLE.model_dump(mode="json")}
    )

    assert state["outcome"] == {"status": "completed", "reason": "completed"}
    result = am.ResultMessage[Report].model_validate(state["result"])
    assert result.status is am.ResultStatus.OK
    assert result.agent == "quickstart"
    assert result.output == Report(
        count=22,
        longest="onboarding",
        tone="positive",
        headline="Positive: The team shipped the new…",
    )
    assert [(g["stage"], g["action"]) for g in state["gates"]] == [
        ("reading", "pass"),
        ("review", "pass"),
    ]
    # The run is on the server's own checkpointer: the thread keeps the final state.
    saved = client.threads.get_state(thread["thread_id"])
    assert saved["values"]["outcome"]["status"] == "completed"
    server.assert_loopback_only()


@served
def test_served_run_matches_local_run_with_task_envelope(server: Server) -> None:
    note = Note(text="Slow start. The build was broken and late, and the bugs made users angry!")
    local = am.run(graph, note, checkpointer=None)
    task = am.TaskMessage(sender="caller", recipient="quickstart", payload=note.model_dump())

    client = server.client()
    thread = client.threads.create()
    state = client.runs.wait(
        thread["thread_id"], "quickstart", input={"task": task.model_dump(mode="json")}
    )

    assert state["outcome"]["status"] == local.status.value == "completed"
    served_report = Report.model_validate(state["result"]["output"])
    assert served_report == local.output
    assert served_report.tone == "negative"
    server.assert_loopback_only()


@served
def test_invoices_graph_served(server: Server) -> None:
    if "invoices" in server.dropped:
        pytest.skip(f"invoices graph not served: {server.dropped['invoices']}")
    items = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line]
    item = next(i for i in items if i["truth"]["expected_decision"] == "approve")
    truth = item.pop("truth")

    client = server.client()
    thread = client.threads.create()
    state = client.runs.wait(thread["thread_id"], "invoices", input={"input": item})

    assert state["outcome"]["status"] == "completed", state["outcome"]
    output = state["result"]["output"]
    assert output["decision"] == "approve"
    assert output["vendor_id"] == truth["vendor_id"]
    assert output["total"] == pytest.approx(truth["total"])
    server.assert_loopback_only()
