"""`agentmesh kill`: set, list and clear switches the runs of this data folder obey."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentmesh.cli import main
from agentmesh.controls.killswitch import KillSwitch
from agentmesh.errors import RunKilledError

ROOT = Path(__file__).resolve().parents[2]


def kill(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``agentmesh kill ARGS`` in this process; return (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as done:
        main(["kill", *args])
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def test_set_list_and_clear(capsys: pytest.CaptureFixture[str]) -> None:
    switch = KillSwitch()
    assert kill("--list", capsys=capsys) == (0, "no kill switch is set\n", "")

    code, out, _ = kill("--workflow", "invoices", "--reason", "bad deploy", capsys=capsys)
    assert (code, out) == (0, "kill switch set: workflow:invoices (bad deploy)\n")
    with pytest.raises(RunKilledError) as caught:
        switch.check(workflow="invoices", agent="intake")
    assert (caught.value.scope, caught.value.reason) == ("workflow:invoices", "bad deploy")

    assert kill("--agent", "pay", capsys=capsys)[0] == 0
    code, out, _ = kill("--list", capsys=capsys)
    assert code == 0
    rows = [line for line in out.splitlines() if "workflow:invoices" in line or "agent:pay" in line]
    assert len(rows) == 2
    assert "bad deploy" in rows[0] and "set from the command line" in rows[1]

    code, out, _ = kill("--clear", "--workflow", "invoices", capsys=capsys)
    assert (code, out) == (0, "kill switch cleared: workflow:invoices\n")
    switch.check(workflow="invoices", agent="intake")
    code, out, _ = kill("--clear", "--workflow", "invoices", capsys=capsys)
    assert (code, out) == (0, "kill switch was not set: workflow:invoices\n")
    with pytest.raises(RunKilledError):
        switch.check(workflow="claims", agent="pay")


def test_all_stops_every_workflow(capsys: pytest.CaptureFixture[str]) -> None:
    assert kill("--all", "--reason", "incident 42", capsys=capsys)[0] == 0
    with pytest.raises(RunKilledError, match="incident 42"):
        KillSwitch().check(workflow="anything")
    assert kill("--clear", "--all", capsys=capsys)[0] == 0
    KillSwitch().check(workflow="anything")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "exactly one of --all, --workflow NAME, --agent NAME"),
        (["--all", "--agent", "pay"], "exactly one of"),
        (["--workflow", "a", "--workflow", "b", "--agent", "c"], "exactly one of"),
        (["--clear"], "exactly one of"),
        (["--list", "--all"], "--list takes no other option"),
        (["--list", "--clear"], "--list takes no other option"),
        (["--clear", "--all", "--reason", "x"], "--reason applies when setting"),
        (["--agent", " "], "--agent needs a non-empty NAME"),
        (["--workflow"], "requires an argument"),
    ],
)
def test_bad_usage_exits_2_with_one_line(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = kill(*args, capsys=capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("agentmesh") and ": error: " in lines[0], lines[0]
    assert needle in lines[0], lines[0]
    assert out == ""
    assert KillSwitch().active() == []


def test_a_store_it_cannot_read_fails_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    data = Path(os.environ["AGENTMESH_DATA_DIR"])
    data.mkdir(parents=True)
    (data / "kill_switch.json").write_text("[]")
    code, _, err = kill("--list", capsys=capsys)
    assert code == 1
    assert err.count("\n") == 1 and "kill_switch.json" in err


def test_the_installed_command_sets_a_switch_this_process_obeys(tmp_path: Path) -> None:
    env = {**os.environ, "AGENTMESH_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "120"}
    done = subprocess.run(
        [sys.executable, "-m", "agentmesh.cli", "kill", "--agent", "pay", "--reason", "fraud"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "kill switch set: agent:pay (fraud)\n"
    from agentmesh.controls.killswitch import FileKillStore

    switch = KillSwitch(FileKillStore(tmp_path / "data" / "kill_switch.json"))
    with pytest.raises(RunKilledError, match="fraud"):
        switch.check(workflow="invoices", agent="pay")
