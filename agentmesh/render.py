"""Pictures of a hierarchy: roles, stages, gates, parallel joins and layers, as Mermaid."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentmesh._runtime.dataflow import members, unwrap
from agentmesh.specialist import Specialist
from agentmesh.stages import Parallel

if TYPE_CHECKING:
    from agentmesh.lead import Lead

__all__ = ["to_mermaid"]

_LAYER_CLASS = {
    "code": "code",
    "small_model": "small",
    "frontier_model": "frontier",
    "human": "human",
}


def to_mermaid(role: Lead[Any, Any] | Specialist[Any, Any]) -> str:
    """A Mermaid flowchart of ``role`` and everything below it."""
    lines = ["flowchart TD"]
    _emit(role, lines, indent="  ")
    lines += [
        "  classDef code fill:#e8f5e9,stroke:#2e7d32",
        "  classDef small fill:#e3f2fd,stroke:#1565c0",
        "  classDef frontier fill:#ede7f6,stroke:#4527a0",
        "  classDef human fill:#fff3e0,stroke:#e65100",
        "  classDef gate fill:#fffde7,stroke:#f9a825",
    ]
    return "\n".join(lines) + "\n"


def _emit(role: Any, lines: list[str], indent: str) -> str:
    if isinstance(role, Specialist):
        label = f"{role.name}<br/><i>{role.layer}</i>"
        if role.fallback is not None:
            label += "<br/>fallback: rules"
        lines.append(f'{indent}{role.name}["{label}"]:::{_LAYER_CLASS[role.layer]}')
        return role.name
    lines.append(f'{indent}subgraph {role.name}["{role.kind}: {role.name}"]')
    inner = indent + "  "
    lines.append(f'{inner}{role.name}_plan(["plan"])')
    previous = f"{role.name}_plan"
    for stage in role.stages:
        agent, step = unwrap(stage)
        gate = f"{role.name}_gate_{agent.name}"
        if isinstance(agent, Parallel):
            targets = [_emit(m, lines, inner) for m in members(stage)]
            join = f"{role.name}_join_{agent.name}"
            strategy = agent.resolver.name if agent.resolver else "merge"
            lines.append(f'{inner}{join}{{{{"join: {strategy}"}}}}')
            for t in targets:
                lines.append(f"{inner}{previous} -->|Send| {t}")
                lines.append(f"{inner}{t} --> {join}")
            lines.append(f"{inner}{join} --> {gate}")
        else:
            target = _emit(agent, lines, inner)
            condition = "|when|" if step is not None and step.when is not None else ""
            lines.append(f"{inner}{previous} -->{condition} {target}")
            lines.append(f"{inner}{target} --> {gate}")
        lines.append(f'{inner}{gate}{{"gate"}}:::gate')
        previous = gate
    lines.append(f'{inner}{role.name}_finish(["finish"])')
    lines.append(f"{inner}{previous} -->|pass| {role.name}_finish")
    lines.append(f"{indent}end")
    return str(role.name)
