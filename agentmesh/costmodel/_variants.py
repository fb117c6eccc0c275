"""Controls on and controls off, and the workflow rewrites they need.

*On* is what agentmesh gives a run that asks for nothing more than a per-run
cost cap: ``Controls()`` (bounded retries with backoff, a breaker per model
endpoint and tool that opens and fails fast into the agent's fallback, retry
and re-plan storm guards) and the workflow exactly as written.

*Off* is what an unprotected pilot does when something fails. Each choice
is one a team makes on its own for a good local reason; nothing bounds their
product:

- every failed call is retried up to 10 times (no breaker, no retry budget);
- a model step whose call still fails has no deterministic fallback: the step fails;
- a failed or escalated step is retried up to 3 times with the error fed back,
  then its coordinator re-plans (up to 3 times per coordinator);
- no cost cap, no storm guards, no response cache.

What stays on in both, because it is how agentmesh runs any graph and not a
control: code routing (no model call decides the next hop), step caps per
coordinator and the detector of identical-state (no-progress) loops.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from agentmesh.controls._config import Controls
from agentmesh.controls.breaker import BreakerConfig
from agentmesh.controls.retry import DEFAULT_RETRY
from agentmesh.gates import DEFAULT_GATE, Gate
from agentmesh.lead import Lead
from agentmesh.specialist import Specialist
from agentmesh.stages import Parallel, Step
from agentmesh.types import GateAction

if TYPE_CHECKING:
    from collections.abc import Callable

    from langgraph.types import RetryPolicy

__all__ = [
    "CONTROLS_OFF",
    "CONTROLS_ON",
    "NEVER_OPENS",
    "Protection",
    "map_agents",
    "model_agents",
    "unprotected",
    "with_model",
]

NEVER_OPENS = BreakerConfig(failure_rate=1.0, window=100_000, min_calls=100_000)
"""A breaker that never trusts its window enough to open: no breaker at all."""


def _fast(policy: RetryPolicy) -> RetryPolicy:
    # Simulated time: the pauses are scaled down ~500x; cost, not time, is measured.
    return policy._replace(initial_interval=0.0001, max_interval=0.0005)


@dataclass(frozen=True, kw_only=True)
class Protection:
    """How a simulated run is protected.

    Attributes:
        name: ``on`` or ``off``.
        description: What the mode is, for reports.
        controls: The run's controls (without a budget; see ``budget_multiple``).
        budget_multiple: Per-run cost cap as a multiple of the expected scenario's
            mean cost per run (``None``: no cap).
        strip_fallbacks: Remove deterministic fallbacks from model-backed agents.
        gate_retries: Retries of a failed stage before its coordinator re-plans
            (``None``: the workflow's own gates).
        replans: Re-plans per coordinator (``None``: the workflow's own limits).
    """

    name: str
    description: str
    controls: Controls = field(default_factory=Controls)
    budget_multiple: float | None = None
    strip_fallbacks: bool = False
    gate_retries: int | None = None
    replans: int | None = None

    def workflow(self, role: Any) -> Any:
        """``role`` as this mode runs it."""
        if not self.strip_fallbacks and self.gate_retries is None and self.replans is None:
            return role
        return unprotected(
            role,
            strip_fallbacks=self.strip_fallbacks,
            gate_retries=self.gate_retries,
            replans=self.replans,
        )


CONTROLS_ON = Protection(
    name="on",
    description=(
        "agentmesh defaults: Controls() (3 attempts with backoff, breakers that open and "
        "fail fast into fallbacks, retry and re-plan storm guards), the workflow as written, "
        "and a per-run cost cap of 5x the expected cost"
    ),
    controls=Controls(retry=_fast(DEFAULT_RETRY)),
    budget_multiple=5.0,
)
CONTROLS_OFF = Protection(
    name="off",
    description=(
        "an unprotected pilot: 10 attempts per call and no breaker, no fallbacks, a failed "
        "step retried 3 times then re-planned (3 re-plans per coordinator), no cost cap, "
        "no storm guards, no response cache"
    ),
    controls=Controls(
        retry=_fast(DEFAULT_RETRY._replace(max_attempts=10)),
        breaker=NEVER_OPENS,
        max_retries_per_run=1_000_000,
        max_replans_per_run=1_000_000,
        degrade_at=None,
        cache=False,
    ),
    strip_fallbacks=True,
    gate_retries=3,
    replans=3,
)


# -- the agent tree ---------------------------------------------------------------------------


def model_agents(role: Any) -> list[Specialist[Any, Any]]:
    """The model-backed specialists of ``role``, in the order its stages run."""
    found: list[Specialist[Any, Any]] = []

    def visit(spec: Specialist[Any, Any]) -> Specialist[Any, Any]:
        if spec.execution_layer.uses_model:
            found.append(spec)
        return spec

    map_agents(role, specialist=visit)
    return found


def map_agents(
    role: Any,
    *,
    specialist: Callable[[Specialist[Any, Any]], Specialist[Any, Any]] = lambda s: s,
    lead: Callable[[Lead[Any, Any]], Lead[Any, Any]] = lambda c: c,
    group: Callable[[Parallel], Parallel] = lambda p: p,
    step: Callable[[Step], Step] = lambda s: s,
) -> Any:
    """A copy of ``role`` with each specialist, coordinator, group and step mapped by a function.

    Children are rebuilt before their parent, so a coordinator is checked again
    (field wiring) with its new stages. The functions get fresh copies and may
    change them in place.
    """
    hooks = _Hooks(specialist=specialist, lead=lead, group=group, step=step)
    return hooks.role(role)


@dataclass(frozen=True, kw_only=True)
class _Hooks:
    specialist: Callable[[Specialist[Any, Any]], Specialist[Any, Any]]
    lead: Callable[[Lead[Any, Any]], Lead[Any, Any]]
    group: Callable[[Parallel], Parallel]
    step: Callable[[Step], Step]

    def role(self, role: Any) -> Any:
        if isinstance(role, Specialist):
            return self.specialist(role)
        if isinstance(role, Lead):
            return self.lead(replace(role, stages=[self.stage(s) for s in role.stages]))
        raise TypeError(f"not an agentmesh role: {role!r}")

    def stage(self, stage: Any) -> Any:
        if isinstance(stage, Step):
            return self.step(replace(stage, agent=self.stage(stage.agent)))
        if isinstance(stage, Parallel):
            members = [self.role(m) for m in stage.members]
            return self.group(
                Parallel(*members, name=stage.name, resolver=stage.resolver, gate=stage.gate)
            )
        return self.role(stage)


def with_model(role: Any, agent: str, model: Any) -> Any:
    """``role`` with specialist ``agent`` calling ``model`` (a chat model or reference)."""
    return map_agents(role, specialist=lambda s: replace(s, model=model) if s.name == agent else s)


def unprotected(
    role: Any,
    *,
    strip_fallbacks: bool = True,
    gate_retries: int | None = 3,
    replans: int | None = 3,
) -> Any:
    """``role`` with the failure handling of an unprotected pilot (see the module docs).

    Args:
        role: The workflow's top role.
        strip_fallbacks: Remove the fallbacks of model-backed agents.
        gate_retries: Every gate retries a failed or escalated stage this many
            times, then re-plans (``None``: gates unchanged).
        replans: Re-plans each coordinator may make (``None``: unchanged).
    """

    def loosen(gate: Gate | None) -> Gate | None:
        if gate_retries is None:
            return gate
        return replace(
            gate or DEFAULT_GATE,
            max_retries=gate_retries,
            on_failed=GateAction.RETRY,
            on_escalated=GateAction.RETRY,
            on_exhausted=GateAction.REPLAN,
        )

    def spec(s: Specialist[Any, Any]) -> Specialist[Any, Any]:
        fallback = None if strip_fallbacks and s.execution_layer.uses_model else s.fallback
        return replace(s, fallback=fallback, gate=loosen(s.gate))

    def coordinator(c: Lead[Any, Any]) -> Lead[Any, Any]:
        limit = c.max_replans if replans is None else max(c.max_replans, replans)
        return replace(c, gate=loosen(c.gate), max_replans=limit)

    def parallel(p: Parallel) -> Parallel:
        p.gate = loosen(p.gate)
        return p

    def conditional(s: Step) -> Step:
        return replace(s, gate=loosen(s.gate)) if s.gate is not None else s

    return map_agents(role, specialist=spec, lead=coordinator, group=parallel, step=conditional)
