"""Build-time wiring checks: every stage input is fed by a compatible producer.

Data moves by field name. A coordinator's input fields (and the whole input,
as ``input``) are available first; after each stage its output fields, and the
whole output under the stage's name, become available to later stages.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

from pydantic import BaseModel

from agentmesh.errors import ConfigError, SchemaMismatchError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import TypeAlias

    from agentmesh.lead import Lead
    from agentmesh.specialist import Specialist

    Agent: TypeAlias = Specialist[Any, Any] | Lead[Any, Any]

Available = dict[str, tuple[Any, str]]  # field -> (annotation, producer)


_STEP: list[Any] = []  # agentmesh.stages.Step, imported on first use (stages imports us)


def unwrap(stage: Any) -> tuple[Any, Any]:
    """``(agent_or_parallel, step_or_None)`` for any stage entry."""
    if not _STEP:
        from agentmesh.stages import Step

        _STEP.append(Step)
    return (stage.agent, stage) if type(stage) is _STEP[0] else (stage, None)


def members(stage: Any) -> tuple[Agent, ...]:
    """The agents a stage runs."""
    agent, _ = unwrap(stage)
    group: tuple[Agent, ...] | None = getattr(agent, "members", None)  # a Parallel group
    return group if group is not None else (agent,)


def stage_name(stage: Any) -> str:
    """The stage's name (agent or group)."""
    agent, _ = unwrap(stage)
    return str(agent.name)


def initial_fields(schema: type[BaseModel]) -> Available:
    """Fields available at a coordinator's start: its input's."""
    available: Available = {n: (f.annotation, "input") for n, f in schema.model_fields.items()}
    available["input"] = (schema, "input")
    return available


def produced_fields(stage: Any) -> Available:
    """Fields a stage adds once it passes its gate."""
    from agentmesh.stages import Parallel

    agent, _ = unwrap(stage)
    out: Available = {}
    if isinstance(agent, Parallel) and agent.resolver is None:
        for m in agent.members:
            out[m.name] = (m.output, m.name)
        for m in agent.members:
            out.update(_fields_of(m.output, m.name))
        return out
    # A field of the same name wins over the whole-output alias.
    out[agent.name] = (agent.output, agent.name)
    out.update(_fields_of(agent.output, agent.name))
    return out


def _fields_of(schema: type[BaseModel], producer: str) -> Available:
    return {n: (f.annotation, producer) for n, f in schema.model_fields.items()}


def check_coordinator(role: Lead[Any, Any]) -> None:
    """Raise if any stage of ``role`` cannot be fed, or its output cannot be built."""
    seen: set[str] = set()
    available = initial_fields(role.input)
    for stage in role.stages:
        for name in _names(stage):
            if name in seen or name == role.name:
                raise ConfigError(
                    f"{role.kind} '{role.name}': duplicate stage or agent name '{name}'"
                )
            seen.add(name)
        for agent in members(stage):
            check_feeds(available, agent.input, consumer=f"{role.name}/{agent.name}")
        available.update(produced_fields(stage))
    if role.synthesize is None:
        check_feeds(available, role.output, consumer=f"{role.name} output")


def _names(stage: Any) -> Iterator[str]:
    from agentmesh.stages import Parallel

    agent, _ = unwrap(stage)
    if isinstance(agent, Parallel):
        yield agent.name
        yield from (m.name for m in agent.members)
    else:
        yield agent.name


def check_feeds(available: Available, consumer_schema: type[BaseModel], *, consumer: str) -> None:
    """Raise :class:`SchemaMismatchError` if ``consumer_schema`` cannot be built."""
    problems: list[str] = []
    producers: set[str] = set()
    for name, info in consumer_schema.model_fields.items():
        if name not in available:
            if info.is_required():
                problems.append(
                    f"field '{name}' ({_show(info.annotation)}) is produced by no earlier stage"
                )
            continue
        annotation, producer = available[name]
        producers.add(producer)
        if not compatible(annotation, info.annotation):
            problems.append(
                f"field '{name}' is {_show(annotation)} from '{producer}', "
                f"expected {_show(info.annotation)}"
            )
    if problems:
        raise SchemaMismatchError(
            producer=", ".join(sorted(producers)) or "nothing",
            consumer=f"{consumer} ({consumer_schema.__name__})",
            problems=problems,
        )


def compatible(produced: Any, expected: Any) -> bool:
    """Whether a value typed ``produced`` always validates as ``expected``."""
    if expected is Any or produced == expected or expected is object:
        return True
    if _is_union(expected):
        arms = get_args(expected)
        return all(any(compatible(p, e) for e in arms) for p in _arms(produced))
    if _is_union(produced):
        return all(compatible(p, expected) for p in get_args(produced))
    if produced is int and expected is float:
        return True
    p_origin, e_origin = get_origin(produced), get_origin(expected)
    if p_origin is not None or e_origin is not None:
        if (p_origin or produced) != (e_origin or expected):
            return False
        p_args, e_args = get_args(produced), get_args(expected)
        return not e_args or (len(p_args) == len(e_args) and all(map(compatible, p_args, e_args)))
    if isinstance(produced, type) and isinstance(expected, type):
        if issubclass(produced, expected):
            return True
        if issubclass(produced, BaseModel) and issubclass(expected, BaseModel):
            return _structurally_compatible(produced, expected)
    return False


def _structurally_compatible(produced: type[BaseModel], expected: type[BaseModel]) -> bool:
    have = produced.model_fields
    for name, info in expected.model_fields.items():
        if name not in have:
            if info.is_required():
                return False
            continue
        if not compatible(have[name].annotation, info.annotation):
            return False
    return True


def _is_union(t: Any) -> bool:
    return get_origin(t) in (Union, types.UnionType)


def _arms(t: Any) -> Iterable[Any]:
    return get_args(t) if _is_union(t) else (t,)


def _show(t: Any) -> str:
    if isinstance(t, type) and get_origin(t) is None:
        return t.__name__
    return str(t).replace("typing.", "")
