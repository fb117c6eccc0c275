"""The simulator: run a workflow's scenarios against scripted model endpoints and meter them."""

from __future__ import annotations

import hashlib
import random
import socket
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.memory import InMemorySaver
from pydantic import ValidationError

from agentmesh.controls.budget import Budget
from agentmesh.costmodel._faults import FlakyToolGateway
from agentmesh.costmodel._report import CostReport, ModeResult, ScenarioResult
from agentmesh.costmodel._responder import CallMeter, ScriptedResponder, token_counter_name
from agentmesh.costmodel._scenarios import SCENARIOS, Scenario
from agentmesh.costmodel._variants import CONTROLS_OFF, CONTROLS_ON, Protection, model_agents
from agentmesh.costmodel._variants import with_model as _with_model
from agentmesh.errors import ConfigError
from agentmesh.models import resolve_model
from agentmesh.run import run
from agentmesh.settings import Settings
from agentmesh.testing.openai_server import FakeOpenAIServer
from agentmesh.types import Layer

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from agentmesh.specialist import Specialist

__all__ = ["CostModelConfig", "simulate_costs"]

# A pinned snapshot is how a team gives one agent its own deployment; priced like its family.
_SNAPSHOTS = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-08-06"}

Progress = Callable[[str, str, int], None]
"""Called after each simulated run as ``progress(mode, scenario, runs_done)``."""


@dataclass(frozen=True, kw_only=True)
class CostModelConfig:
    """What to simulate.

    Attributes:
        runs: Runs per scenario and mode (inputs are reused in order when there
            are fewer; each pass is its own batch).
        seed: Seeds every random choice (unusual inputs, failing tool calls).
        small_model: Model that prices the ``small_model`` layer (an OpenAI name).
        frontier_model: Model that prices the ``frontier_model`` layer.
        down_agent: The model-backed agent whose endpoint is down in the failure
            scenario; default: the last one to run.
        scenarios: What to simulate; must include one named ``expected``.
        on: The protected mode.
        off: The unprotected mode (``None``: not simulated).
        target_ratio: Failure-to-expected cost ratio not to exceed with controls on.

    Raises:
        ConfigError: ``runs`` is below 1, or there is no ``expected`` scenario.
    """

    runs: int = 40
    seed: int = 1
    small_model: str = "gpt-4o-mini"
    frontier_model: str = "gpt-4o"
    down_agent: str | None = None
    scenarios: Sequence[Scenario] = SCENARIOS
    on: Protection = CONTROLS_ON
    off: Protection | None = CONTROLS_OFF
    target_ratio: float = 1.5

    def __post_init__(self) -> None:
        if self.runs < 1:
            raise ConfigError(f"CostModelConfig.runs must be >= 1, got {self.runs}")
        names = [s.name for s in self.scenarios]
        if "expected" not in names or len(set(names)) != len(names):
            raise ConfigError("CostModelConfig.scenarios: need unique names, one 'expected'")


def simulate_costs(
    role: Any,
    items: Sequence[Mapping[str, Any]],
    config: CostModelConfig | None = None,
    *,
    progress: Progress | None = None,
) -> CostReport:
    """Price ``role``'s runs in every scenario, with the controls on and off.

    Runs are simulated one at a time against two local OpenAI-compatible
    servers (one is the down agent's own deployment); nothing leaves 127.0.0.1.

    Args:
        role: The workflow's top role (a ``Meta``, ``Lead`` or ``Specialist``).
        items: Inputs like the test set (JSON objects; a ``truth`` key is ignored).
        config: What to simulate.
        progress: Called after each run.

    Raises:
        ConfigError: No inputs, no model-backed agent, an unknown ``down_agent``,
            a model-backed agent without a fallback, or a request the scripted
            model could not answer (its figures would be wrong).
    """
    config = config or CostModelConfig()
    agents = model_agents(role)
    if not agents:
        raise ConfigError(f"costmodel: '{role.name}' has no model-backed agent; nothing to price")
    if not items:
        raise ConfigError("costmodel: no inputs to simulate")
    down = _down_agent(agents, config.down_agent)
    typed = _inputs(role, items)
    meter = CallMeter()
    main = ScriptedResponder(agents, meter=meter)
    dedicated = ScriptedResponder(agents, meter=meter)
    base = (
        config.small_model if down.execution_layer is Layer.SMALL_MODEL else config.frontier_model
    )
    down_model = _SNAPSHOTS.get(base, f"{base}-dedicated")
    with (
        FakeOpenAIServer(default=main, models=(config.small_model, config.frontier_model)) as srv,
        FakeOpenAIServer(default=dedicated, models=(down_model,)) as down_srv,
        tempfile.TemporaryDirectory(prefix="agentmesh-costmodel-") as tmp,
    ):
        _no_delay(srv)
        _no_delay(down_srv)
        sim = _Simulation(
            role=role,
            inputs=typed,
            config=config,
            meter=meter,
            responders=(main, dedicated),
            down=down.name,
            down_ref=f"openai:{down_model}",
            down_url=down_srv.base_url,
            settings=_settings(Path(tmp), config, srv.base_url),
            progress=progress,
        )
        on = sim.mode(config.on)
        off = sim.mode(config.off) if config.off is not None else None
    problems = main.problems + dedicated.problems
    if problems:
        raise ConfigError(f"costmodel: the scripted model could not answer: {problems[0]}")
    return CostReport(
        workflow=role.name,
        seed=config.seed,
        down_agent=down.name,
        models={
            "small_model": config.small_model,
            "frontier_model": config.frontier_model,
            down.name: down_model,
        },
        token_counter=token_counter_name(config.small_model),
        scenarios={s.name: s.description for s in config.scenarios},
        on=on,
        off=off,
        target_ratio=config.target_ratio,
    )


def _inputs(role: Any, items: Sequence[Mapping[str, Any]]) -> list[Any]:
    typed = []
    for item in items:
        try:
            typed.append(role.input.model_validate({k: v for k, v in item.items() if k != "truth"}))
        except ValidationError as exc:
            raise ConfigError(
                f"costmodel: input {item.get('id', '?')!r} is not a valid "
                f"{role.input.__name__}: {exc.errors()[0]['msg']}"
            ) from exc
    return typed


def _settings(data_dir: Path, config: CostModelConfig, base_url: str) -> Settings:
    """Settings of the simulated runs: nothing shared with real runs (no Redis, no
    tracing, no period budgets, no response cache), checkpoints in memory."""
    return Settings(
        data_dir=data_dir,
        small_model=f"openai:{config.small_model}",
        frontier_model=f"openai:{config.frontier_model}",
        openai_base_url=base_url,
        openai_api_key="sk-costmodel-simulation",
        checkpointer="memory",
        model_timeout_s=10.0,
    )


def _no_delay(server: FakeOpenAIServer) -> None:
    """Answer without Nagle's delay: ~1.5 ms per request instead of ~50 ms.

    The server writes headers and body separately, so the body waits for the
    client's delayed ACK. Remove once ``FakeOpenAIServer`` sets ``TCP_NODELAY`` itself.
    """
    http = server._server
    if http is None:
        return
    accept = http.get_request

    def get_request() -> tuple[socket.socket, Any]:
        conn, addr = accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr

    http.get_request = get_request  # type: ignore[method-assign]


def _down_agent(agents: Sequence[Specialist[Any, Any]], name: str | None) -> Specialist[Any, Any]:
    if name is None:
        return agents[-1]
    for spec in agents:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in agents)
    raise ConfigError(f"costmodel: '{name}' is not a model-backed agent (known: {known})")


@dataclass(kw_only=True)
class _Simulation:
    role: Any
    inputs: Sequence[Any]
    config: CostModelConfig
    meter: CallMeter
    responders: tuple[ScriptedResponder, ScriptedResponder]
    down: str
    down_ref: str
    down_url: str
    settings: Settings
    progress: Progress | None
    batch: str = field(default_factory=lambda: f"costmodel-{uuid.uuid4().hex[:8]}")

    def mode(self, protection: Protection) -> ModeResult:
        """Every scenario under ``protection``; the expected one first, to size the cap."""
        settings = replace(self.settings, data_dir=self.settings.data_dir / protection.name)
        dedicated = resolve_model(
            self.down_ref,
            layer=Layer.SMALL_MODEL,
            settings=replace(settings, openai_base_url=self.down_url),
        )
        workflow = _with_model(protection.workflow(self.role), self.down, dedicated)
        graph = workflow.compile(settings=settings)
        ordered = sorted(self.config.scenarios, key=lambda s: s.name != "expected")
        results: dict[str, ScenarioResult] = {}
        cap: float | None = None
        for scenario in ordered:
            results[scenario.name] = self._scenario(graph, settings, protection, scenario, cap)
            if scenario.name == "expected" and protection.budget_multiple is not None:
                cap = protection.budget_multiple * results["expected"].cost_per_run_usd
        return ModeResult(
            protection=protection,
            budget_usd_per_run=cap,
            scenarios={s.name: results[s.name] for s in self.config.scenarios},
        )

    def _scenario(
        self,
        graph: Any,
        settings: Settings,
        protection: Protection,
        scenario: Scenario,
        cap: float | None,
    ) -> ScenarioResult:
        runs = self.config.runs
        rng = random.Random(f"{self.config.seed}:{scenario.name}")
        unusual = set(rng.sample(range(runs), round(scenario.unusual_share * runs)))
        gateway = FlakyToolGateway(rate=scenario.tool_failure_rate, rng=rng)
        controls = protection.controls
        if cap is not None:
            controls = replace(controls, budget=Budget(cost_usd=cap))
        for responder in self.responders:
            responder.down = False
        self.responders[1].down = scenario.upstream_down
        saver = InMemorySaver()
        costs: list[float] = []
        calls: list[int] = []
        statuses: Counter[str] = Counter()
        failed_before = self.meter.failed
        for i in range(runs):
            for responder in self.responders:
                responder.start_run(unusual=i in unusual)
            cost, count = self.meter.cost_usd, self.meter.calls
            cycle = f"{self.batch}:{protection.name}:{scenario.name}:{i // len(self.inputs)}"
            result = run(
                graph,
                self.inputs[i % len(self.inputs)],
                thread_id=f"{self.batch}-{protection.name}-{scenario.name}-{i}",
                # Like `agentmesh run`'s batch ids (same length, so the same prompt tokens).
                constraints={"batch": hashlib.sha256(cycle.encode()).hexdigest()[:12]},
                checkpointer=saver,
                settings=settings,
                tools=gateway,
                controls=controls,
            )
            costs.append(self.meter.cost_usd - cost)
            calls.append(self.meter.calls - count)
            statuses[result.status.value] += 1
            if self.progress is not None:
                self.progress(protection.name, scenario.name, i + 1)
        return ScenarioResult(
            scenario=scenario.name,
            costs_usd=tuple(costs),
            model_calls=tuple(calls),
            failed_requests=self.meter.failed - failed_before,
            tool_failures=gateway.injected,
            statuses=dict(statuses),
        )
