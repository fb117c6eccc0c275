"""Controls shared through Redis by two real processes, each running ``agentmesh.run``.

In each test one run happens in a child process and the other in the test's own
process; both get ``AGENTMESH_REDIS_URL`` and a data folder of their own, so what
one sees of the other went through Redis: a kill switch set by one stops the
other's run, a breaker opened by one fails fast in the other, and a day's budget
spent by one refuses the other's run.

The switch, breaker and spend keys a run uses have fixed names (``agentmesh:kill``,
``agentmesh:breaker:<target>``, ``agentmesh:spend:all:...``), so these tests use a
logical database of their own (``REDIS_DB``), unique workflow and model names, and
delete the keys they wrote. Needs Redis (``AGENTMESH_TEST_REDIS_URL`` or
127.0.0.1:6379): skipped when it is absent, except on CI (``CI`` set).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from agentmesh.controls import KillSwitch, RedisKillStore
from agentmesh.testing import FakeOpenAIServer, Fault, Reply

pytestmark = pytest.mark.timeout(120)

BASE_URL = os.environ.get("AGENTMESH_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"
REDIS_DB = 13


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _own_db(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{REDIS_DB}"))


@dataclass(frozen=True)
class RedisDB:
    url: str
    client: Any

    def delete(self, pattern: str) -> None:
        keys = list(self.client.scan_iter(match=pattern))
        if keys:
            self.client.delete(*keys)


@pytest.fixture
def redis_db() -> Iterator[RedisDB]:
    """This module's own database; skips (fails on CI) without Redis."""
    try:
        import redis
    except ImportError:
        if _in_ci():
            pytest.fail("CI is set, so the Redis tests must run: pip install 'agentmesh[redis]'")
        pytest.skip("redis is not installed: pip install 'agentmesh[redis]'")
    url = _own_db(BASE_URL)
    client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
    try:
        client.ping()
    except Exception as exc:
        message = f"Redis at {url} is not reachable ({type(exc).__name__}: {exc})"
        if _in_ci():
            pytest.fail(f"CI is set, so the Redis tests must run: {message}")
        pytest.skip(f"{message}; set AGENTMESH_TEST_REDIS_URL or start a server (required on CI)")
    yield RedisDB(url=url, client=client)
    client.close()


# -- the runs, in a module both processes load ---------------------------------------------------

RUNS = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from pydantic import BaseModel
    from langchain_openai import ChatOpenAI
    import agentmesh as am
    from agentmesh.controls import RetryPolicy

    class Job(BaseModel):
        key: str

    class Picked(BaseModel):
        picked: str

    class Packed(BaseModel):
        packed: str

    class Verdict(BaseModel):
        label: str

    def report(result):
        inner = result.result
        return {
            "status": result.status.value,
            "reason": result.reason,
            "partial": sorted(result.partial),
            "output": result.output.model_dump() if result.output is not None else None,
            "served_by": inner.served_by if inner is not None else None,
            "evidence": inner.evidence if inner is not None else [],
        }

    def kill_run(args):
        \"\"\"meta <workflow> -> lead ops -> pick (waits for the go file), pack.\"\"\"
        def pick(job: Job) -> Picked:
            print("waiting", flush=True)
            go = Path(args["go"])
            deadline = time.monotonic() + 30
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            return Picked(picked=job.key)

        def pack(item: Picked) -> Packed:
            return Packed(packed=item.picked)

        lead = am.Lead(name="ops", input=Job, output=Packed, stages=[
            am.Specialist(name="pick", input=Job, output=Picked, fn=pick),
            am.Specialist(name="pack", input=Picked, output=Packed, fn=pack),
        ])
        graph = am.Meta(name=args["workflow"], input=Job, output=Packed, stages=[lead]).compile()
        return report(am.run(graph, Job(key="k1"), thread_id="k1"))

    def model_run(args):
        \"\"\"One specialist on ChatOpenAI against the test's fake server.\"\"\"
        def rules(job: Job) -> Verdict:
            return Verdict(label="by rules")

        llm = ChatOpenAI(model=args["model"], base_url=args["base_url"], api_key="x",
                         max_retries=0, timeout=5.0, max_tokens=args.get("max_tokens"))
        judge = am.Specialist(name="judge", input=Job, output=Verdict, layer="small_model",
                              model=llm, fallback=rules if args["fallback"] else None)
        retry = RetryPolicy(initial_interval=0.01, max_interval=0.05, max_attempts=5, jitter=False)
        return report(am.run(judge.compile(), Job(key="k1"), controls=am.Controls(retry=retry)))

    if __name__ == "__main__":
        run = globals()[sys.argv[1]]
        print(json.dumps(run(json.loads(sys.argv[2]))), flush=True)
    """
)


def load_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The runs module, loaded in this process from the file the child runs."""
    script = tmp_path / "runs.py"
    script.write_text(RUNS, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"runs_{uuid.uuid4().hex}", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def spawn(
    tmp_path: Path, run: str, args: dict[str, Any], env: dict[str, str]
) -> subprocess.Popen[str]:
    script = tmp_path / "runs.py"
    script.write_text(RUNS, encoding="utf-8")
    data = tmp_path / "child-data"  # a folder of its own: nothing is shared through files
    return subprocess.Popen(
        [sys.executable, str(script), run, json.dumps(args)],
        env={**os.environ, "AGENTMESH_DATA_DIR": str(data), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report


def in_this_process(
    tmp_path: Path,
    run: str,
    args: dict[str, Any],
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    report: dict[str, Any] = getattr(load_runs(tmp_path, monkeypatch), run)(args)
    return report


def chats(srv: FakeOpenAIServer) -> int:
    return sum(r.path.endswith("/chat/completions") for r in srv.requests)


# -- kill switch ---------------------------------------------------------------------------------


def test_a_kill_switch_set_in_one_process_stops_the_run_in_another(
    redis_db: RedisDB, tmp_path: Path
) -> None:
    workflow = f"fleet_{uuid.uuid4().hex[:10]}"
    go = tmp_path / "go"
    child = spawn(
        tmp_path,
        "kill_run",
        {"workflow": workflow, "go": str(go)},
        {"AGENTMESH_REDIS_URL": redis_db.url},
    )
    switch = KillSwitch(RedisKillStore(redis_db.url))
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "waiting"  # the run is inside ops/pick
        switch.kill(workflow=workflow, reason="stopped from another process")
        # A Redis store's checks reuse what they read for up to ttl_s (50 ms): a switch is
        # seen within that, so let it pass before the run reaches its next step.
        time.sleep(0.2)
        go.touch()
        result = finish(child)
    finally:
        child.kill()
        switch.clear(workflow=workflow)

    assert result["status"] == "killed", result
    assert (
        result["reason"]
        == f"kill switch 'workflow:{workflow}' is set: stopped from another process"
    )
    assert result["partial"] == ["ops/pick"]  # pack never ran


# -- circuit breaker -----------------------------------------------------------------------------


def test_a_breaker_opened_by_one_process_fails_fast_in_another(
    redis_db: RedisDB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = f"gpt-4o-mini-{uuid.uuid4().hex[:10]}"  # a breaker of its own
    env = {"AGENTMESH_REDIS_URL": redis_db.url}
    try:
        with FakeOpenAIServer(default=Fault.status(500)) as srv:
            key = f"agentmesh:breaker:model:{model}@{srv.base_url}"
            args = {"model": model, "base_url": srv.base_url, "fallback": True}
            # Five failing attempts: the default breaker opens at 5 failures of 5 calls.
            first = finish(spawn(tmp_path, "model_run", args, env))
            assert chats(srv) == 5
            assert json.loads(redis_db.client.get(key))[0] == "open"

            srv.default = Reply.tool_call("Verdict", {"label": "from the model"})
            second = in_this_process(tmp_path, "model_run", args, env, monkeypatch)
            assert chats(srv) == 5, "this process must not reach the endpoint"
    finally:
        redis_db.client.delete(key)

    for result in (first, second):
        assert result["status"] == "completed", result
        assert result["output"] == {"label": "by rules"}
        assert result["served_by"] == "fallback:rules"
    assert any("CircuitOpenError" in e for e in second["evidence"]), second["evidence"]


# -- period budget -------------------------------------------------------------------------------


def test_a_days_budget_spent_by_one_process_refuses_the_other(
    redis_db: RedisDB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_db.delete("agentmesh:spend:*")  # only this module uses this database's spend keys
    model = f"gpt-4o-mini-{uuid.uuid4().hex[:10]}"  # priced as gpt-4o-mini; its own breaker
    # A call reserves its prompt bound plus max_tokens=500 (about $0.0003-0.0004 at
    # gpt-4o-mini prices) and spends $0.00036: one call fits in $0.0005, two do not.
    env = {"AGENTMESH_REDIS_URL": redis_db.url, "AGENTMESH_DAILY_COST_USD": "0.0005"}
    answer = Reply.tool_call("Verdict", {"label": "paid"}, input_tokens=400, output_tokens=500)
    try:
        with FakeOpenAIServer(default=answer) as srv:
            args = {"model": model, "base_url": srv.base_url, "fallback": False, "max_tokens": 500}
            first = finish(spawn(tmp_path, "model_run", args, env))
            second = in_this_process(tmp_path, "model_run", args, env, monkeypatch)
            assert chats(srv) == 1
        day = list(redis_db.client.scan_iter(match="agentmesh:spend:all:day:cost_usd:spent:*"))
        assert len(day) == 1 and int(redis_db.client.get(day[0])) == 360_000  # nano-dollars
    finally:
        redis_db.delete("agentmesh:spend:*")
        redis_db.delete(f"agentmesh:breaker:model:{model}*")

    assert first["status"] == "completed", first
    assert first["output"] == {"label": "paid"}
    assert second["status"] == "budget_exhausted", second
    assert second["reason"].startswith("period:day budget exhausted: cost_usd would reach")
    assert second["reason"].endswith("of 0.0005")
    assert second["partial"] == []
