"""What a cost simulation found: cost per run per scenario, ratios and risk exposure."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from agentmesh.costmodel._variants import Protection

__all__ = ["CostReport", "ModeResult", "ScenarioResult", "percentile"]

METHOD = (
    "Costs are simulated with scripted answers at real token counts and real prices: every "
    "model-backed agent is called over HTTP through the real OpenAI client against a local "
    "OpenAI-compatible server, which answers what the agent's deterministic fallback computes "
    "from the same input. Tokens are counted on the real prompts (system prompt, task, "
    "feedback and tool definitions included) and priced at the list prices of the priced "
    "models. Requests answered with an error are not billed. Retry pauses are scaled down "
    "(cost, not time, is measured)."
)
RISK_EXPOSURE = (
    "extra spend over the expected scenario of 1,000 runs made while the failure scenario "
    "lasts: max(0, failure - expected mean cost per run) x 1,000"
)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of ``values`` (0.0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, kw_only=True)
class ScenarioResult:
    """The runs of one scenario under one protection mode.

    Attributes:
        scenario: The scenario's name.
        costs_usd: Billed cost of each run, in run order.
        model_calls: Billed model calls of each run.
        failed_requests: Model requests answered with an error (not billed).
        tool_failures: Tool call attempts that failed (injected).
        statuses: How many runs ended in each terminal state.
    """

    scenario: str
    costs_usd: tuple[float, ...]
    model_calls: tuple[int, ...]
    failed_requests: int = 0
    tool_failures: int = 0
    statuses: Mapping[str, int] = field(default_factory=dict)

    @property
    def runs(self) -> int:
        """Runs simulated."""
        return len(self.costs_usd)

    @property
    def cost_per_run_usd(self) -> float:
        """Mean cost per run."""
        return statistics.fmean(self.costs_usd) if self.costs_usd else 0.0

    @property
    def p95_cost_usd(self) -> float:
        """95th-percentile cost of one run."""
        return percentile(self.costs_usd, 95)

    @property
    def model_calls_per_run(self) -> float:
        """Mean billed model calls per run."""
        return statistics.fmean(self.model_calls) if self.model_calls else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able figures."""
        return {
            "runs": self.runs,
            "cost_per_run_usd": round(self.cost_per_run_usd, 8),
            "p95_cost_usd": round(self.p95_cost_usd, 8),
            "max_cost_usd": round(max(self.costs_usd, default=0.0), 8),
            "cost_per_1000_runs_usd": round(1000 * self.cost_per_run_usd, 4),
            "model_calls_per_run": round(self.model_calls_per_run, 3),
            "failed_model_requests": self.failed_requests,
            "tool_failures_injected": self.tool_failures,
            "statuses": dict(sorted(self.statuses.items())),
        }


@dataclass(frozen=True, kw_only=True)
class ModeResult:
    """Every scenario under one protection mode.

    Attributes:
        protection: The mode.
        budget_usd_per_run: The per-run cost cap applied to the edge and failure
            scenarios (``None``: uncapped).
        scenarios: Results by scenario name.
    """

    protection: Protection
    budget_usd_per_run: float | None
    scenarios: Mapping[str, ScenarioResult]

    def ratio(self, scenario: str, baseline: str = "expected") -> float:
        """Mean cost per run of ``scenario`` over that of ``baseline`` (``inf`` over zero)."""
        base = self.scenarios[baseline].cost_per_run_usd
        cost = self.scenarios[scenario].cost_per_run_usd
        if base == 0:
            return 0.0 if cost == 0 else math.inf
        return cost / base

    def risk_exposure_per_1000_runs_usd(self, scenario: str = "failure") -> float:
        """Extra spend of 1,000 runs under ``scenario`` over 1,000 expected runs (>= 0)."""
        extra = (
            self.scenarios[scenario].cost_per_run_usd - self.scenarios["expected"].cost_per_run_usd
        )
        return max(0.0, extra) * 1000

    def as_dict(self) -> dict[str, Any]:
        """JSON-able figures."""
        out: dict[str, Any] = {
            "description": self.protection.description,
            "budget_usd_per_run": None
            if self.budget_usd_per_run is None
            else round(self.budget_usd_per_run, 8),
            "scenarios": {name: r.as_dict() for name, r in self.scenarios.items()},
        }
        if "expected" in self.scenarios:
            out["ratios_to_expected"] = {
                name: _rounded(self.ratio(name)) for name in self.scenarios if name != "expected"
            }
        return out


@dataclass(frozen=True, kw_only=True)
class CostReport:
    """The cost model of one workflow: scenarios priced with the controls on and off.

    Attributes:
        workflow: The top role's name.
        seed: Seed of every random choice.
        down_agent: The agent whose model endpoint is down in the failure scenario.
        models: Priced model by layer (and the down agent's own deployment).
        token_counter: How tokens were counted.
        scenarios: Each scenario's description, by name.
        on: Results with agentmesh's controls.
        off: Results without them.
        target_ratio: The failure-to-expected ratio not to exceed with the controls on.
    """

    workflow: str
    seed: int
    down_agent: str
    models: Mapping[str, str]
    token_counter: str
    scenarios: Mapping[str, str]
    on: ModeResult
    off: ModeResult | None = None
    target_ratio: float = 1.5

    @property
    def failure_to_expected_ratio(self) -> float:
        """Mean cost per failure-scenario run over mean cost per expected run, controls on."""
        return self.on.ratio("failure")

    @property
    def failure_to_expected_ratio_controls_off(self) -> float | None:
        """The same ratio with the controls off (``None`` when not simulated)."""
        return self.off.ratio("failure") if self.off is not None else None

    @property
    def target_met(self) -> bool:
        """Whether the controls-on ratio is within the target."""
        return self.failure_to_expected_ratio <= self.target_ratio

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-able data (``agentmesh costmodel --json``)."""
        off = self.off
        return {
            "workflow": self.workflow,
            "runs_per_scenario": self.on.scenarios["expected"].runs,
            "seed": self.seed,
            "simulated": True,
            "method": METHOD,
            "models": dict(self.models),
            "token_counter": self.token_counter,
            "scenarios": dict(self.scenarios),
            "down_agent": self.down_agent,
            "cost_per_run_usd": {
                name: round(r.cost_per_run_usd, 8) for name, r in self.on.scenarios.items()
            },
            "failure_to_expected_ratio": _rounded(self.failure_to_expected_ratio),
            "failure_to_expected_ratio_controls_off": None
            if off is None
            else _rounded(off.ratio("failure")),
            "target_failure_to_expected_ratio": self.target_ratio,
            "target_met": self.target_met,
            "risk_exposure_per_1000_runs_usd": round(self.on.risk_exposure_per_1000_runs_usd(), 6),
            "risk_exposure_per_1000_runs_usd_controls_off": None
            if off is None
            else round(off.risk_exposure_per_1000_runs_usd(), 6),
            "risk_exposure_definition": RISK_EXPOSURE,
            "controls_on": self.on.as_dict(),
            "controls_off": None if off is None else off.as_dict(),
        }


def _rounded(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 3)
