"""Pictures of a hierarchy: Mermaid text and the Pillow PNG."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import agentmesh as am
from agentmesh.render import to_mermaid
from graphs.quickstart import quickstart, reading, review


def _agents(role: Any) -> list[str]:
    """Every agent and parallel group name below ``role`` (itself included)."""
    names = [role.name]
    for stage in getattr(role, "stages", ()):
        inner = stage.agent if isinstance(stage, am.Step) else stage
        if isinstance(inner, am.Parallel):
            names.append(inner.name)
            for member in inner.members:
                names += _agents(member)
        else:
            names += _agents(inner)
    return names


def test_quickstart_is_three_levels_with_a_vote() -> None:
    assert quickstart.kind is am.RoleKind.META
    assert [s.name for s in quickstart.stages] == ["reading", "review"]
    group = review.stages[0]
    assert isinstance(group, am.Parallel)
    assert isinstance(group.resolver, am.Vote)
    every = [*reading.stages, *group.members, review.stages[1]]
    assert all(isinstance(s, am.Specialist) and s.layer is am.Layer.CODE for s in every)


def test_mermaid_names_every_agent_and_subgraph() -> None:
    text = to_mermaid(quickstart)
    assert text.startswith("flowchart TD\n")
    for coordinator in (quickstart, reading, review):
        assert f'subgraph {coordinator.name}["{coordinator.kind}: {coordinator.name}"]' in text
    for name in _agents(quickstart):
        assert name in text
    for specialist in (
        "split",
        "measure",
        "tone_lexicon",
        "tone_marks",
        "tone_cautious",
        "headline",
    ):
        assert f'{specialist}["{specialist}<br/><i>code</i>"]:::code' in text
    assert '{{"join: vote"}}' in text
    lines = [line.strip() for line in text.splitlines()]
    assert sum(line.startswith("subgraph ") for line in lines) == 3
    assert lines.count("end") == 3


# -- PNG --------------------------------------------------------------------------------------


def test_png_of_the_quickstart_hierarchy(tmp_path: Path) -> None:
    image_mod = pytest.importorskip("PIL.Image", reason="pip install 'agentmesh[png]'")
    from agentmesh.render_png import render_png

    target = tmp_path / "pictures" / "quickstart.png"
    render_png(quickstart, target)

    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with image_mod.open(target) as image:
        image.verify()
    with image_mod.open(target) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width > 200 and height > 200
        assert width < 8000 and height < 4000  # a picture, not a poster
        # Drawn, not blank: the code-layer fill (#e8f5e9) and anti-aliased text are present.
        colours = {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 20) or []}
        assert (0xE8, 0xF5, 0xE9) in colours
        assert len(colours) > 20


class _In(BaseModel):
    text: str


class _Out(BaseModel):
    label: str


def test_png_draws_every_layer_step_and_nested_lead(tmp_path: Path) -> None:
    image_mod = pytest.importorskip("PIL.Image", reason="pip install 'agentmesh[png]'")
    from agentmesh.render_png import LAYER_COLOURS, render_png

    def rules(x: _In) -> _Out:
        return _Out(label="rules")

    small = am.Specialist(
        name="classify", input=_In, output=_Out, layer="small_model", fallback=rules
    )
    frontier = am.Specialist(name="judge", input=_In, output=_Out, layer="frontier_model")
    human = am.Specialist(name="approve", input=_In, output=_Out, layer="human")

    @am.specialist()
    def label(x: _In) -> _Out:
        return _Out(label="code")

    inner = am.Lead(name="inner", input=_In, output=_Out, stages=[label])
    lead = am.Lead(
        name="work",
        input=_In,
        output=_Out,
        stages=[
            am.Parallel(small, frontier, inner, name="peers", resolver=am.Vote()),
            am.Step(agent=human, when=lambda fields: True),
        ],
    )
    meta = am.Meta(name="top", input=_In, output=_Out, stages=[lead])

    target = tmp_path / "all.png"
    render_png(meta, target)
    with image_mod.open(target) as image:
        colours = {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 20) or []}
    for fill, _stroke in LAYER_COLOURS.values():
        rgb = tuple(int(fill[i : i + 2], 16) for i in (1, 3, 5))
        assert rgb in colours, f"no box filled with {fill}"


def test_png_of_a_lone_specialist(tmp_path: Path) -> None:
    pytest.importorskip("PIL.Image", reason="pip install 'agentmesh[png]'")
    from agentmesh.render_png import render_png

    @am.specialist()
    def only(x: _In) -> _Out:
        return _Out(label=x.text)

    render_png(only, tmp_path / "one.png")
    assert (tmp_path / "one.png").stat().st_size > 0


def test_png_without_pillow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentmesh.render_png import render_png

    real_import = builtins.__import__

    def no_pil(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pil)
    with pytest.raises(am.MissingExtraError, match=r"pip install 'agentmesh\[png\]'"):
        render_png(quickstart, tmp_path / "never.png")
    assert not (tmp_path / "never.png").exists()
