"""Pictures of a hierarchy as PNG, drawn with Pillow (``pip install 'agentmesh[png]'``).

The picture is a tree: the meta at the top, its leads below it, each lead's
specialists below the lead. Stages are numbered in the order the plan runs
them; boxes are coloured by execution layer with the same palette as the
Mermaid picture (:func:`agentmesh.render.to_mermaid`). A parallel group is a
dashed frame around its members with a ``join: <strategy>`` hexagon below them,
and the small diamond on a stage is the validation gate its result passes
(stages with checks of their own list them).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agentmesh.errors import MissingExtraError
from agentmesh.lead import Lead
from agentmesh.specialist import Specialist
from agentmesh.stages import Parallel, Step
from agentmesh.types import Layer

if TYPE_CHECKING:
    from collections.abc import Sequence

    from PIL import ImageDraw, ImageFont

    from agentmesh.gates import Gate

    _Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

__all__ = ["render_png"]

Style = Literal["title", "body", "small"]
Shape = Literal["rect", "round", "hex"]
Point = tuple[float, float]

# (fill, stroke) -- the layer colours match the classDefs in agentmesh.render.
LAYER_COLOURS: dict[Layer, tuple[str, str]] = {
    Layer.CODE: ("#e8f5e9", "#2e7d32"),
    Layer.SMALL_MODEL: ("#e3f2fd", "#1565c0"),
    Layer.FRONTIER_MODEL: ("#ede7f6", "#4527a0"),
    Layer.HUMAN: ("#fff3e0", "#e65100"),
}
GATE_COLOURS = ("#fffde7", "#f9a825")
JOIN_COLOURS = ("#fafafa", "#616161")
ROLE_COLOURS = {"meta": ("#eceff1", "#263238"), "lead": ("#f5f5f5", "#607d8b")}
EDGE = "#78909c"
TEXT = "#212121"
MUTED = "#616161"
BACKGROUND = "#ffffff"

_REGULAR = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "Arial.ttf")
_BOLD = ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf", "Arial Bold.ttf")
_WRAP = 30  # characters per description line
_DESCRIPTION_LINES = 2


def render_png(
    role: Lead[Any, Any] | Specialist[Any, Any], path: Path, *, scale: float = 2.0
) -> None:
    """Draw ``role`` and everything below it as a PNG at ``path``.

    Args:
        role: A ``Meta``, ``Lead`` or ``Specialist``.
        path: The PNG file to write (parent folders are created).
        scale: Pixel density; 2 gives crisp text on high-resolution screens.

    Raises:
        MissingExtraError: Pillow is not installed.
    """
    try:
        from PIL import Image, ImageDraw
    except ImportError as exc:
        raise MissingExtraError("PNG rendering", "png", "pillow") from exc

    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    pen = _Pen(measure, scale)
    tree = _agent(role, pen)
    legend = _Legend(pen)
    margin = pen.u(24)
    width = max(tree.width, legend.width) + 2 * margin
    height = tree.height + pen.u(28) + legend.height + 2 * margin
    image = Image.new("RGB", (round(width), round(height)), BACKGROUND)
    pen.draw = ImageDraw.Draw(image)
    tree.place(margin + (width - 2 * margin - tree.width) / 2, margin)
    tree.paint(pen)
    legend.paint(pen, margin, margin + tree.height + pen.u(28))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")


# -- drawing primitives ---------------------------------------------------------------------


class _Pen:
    """Fonts, scale and the ImageDraw target shared by every element."""

    def __init__(self, draw: ImageDraw.ImageDraw, scale: float) -> None:
        self.draw = draw
        self.scale = scale
        self.fonts: dict[Style, _Font] = {
            "title": _load_font(_BOLD, round(14 * scale)),
            "body": _load_font(_REGULAR, round(12 * scale)),
            "small": _load_font(_REGULAR, round(10.5 * scale)),
        }

    def u(self, value: float) -> float:
        """``value`` layout units in pixels."""
        return value * self.scale

    def text_size(self, text: str, style: Style) -> tuple[float, float]:
        font = self.fonts[style]
        left, _top, right, bottom = self.draw.textbbox((0, 0), text or " ", font=font)
        ascent = self.draw.textbbox((0, 0), "Ag", font=font)[3]
        return float(right - left), float(max(bottom, ascent)) + self.u(3)

    def text(self, xy: Point, text: str, style: Style, colour: str = TEXT) -> None:
        self.draw.text(xy, text, fill=colour, font=self.fonts[style])

    def line(self, points: Sequence[Point], colour: str = EDGE, width: float = 1.5) -> None:
        self.draw.line(list(points), fill=colour, width=max(1, round(self.u(width))))

    def dashed(self, start: Point, end: Point, colour: str, dash: float = 6) -> None:
        (x0, y0), (x1, y1) = start, end
        length = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5
        step = self.u(dash)
        if length == 0:
            return
        done = 0.0
        while done < length:
            end_at = min(done + step, length)
            a, b = done / length, end_at / length
            self.line(
                [
                    (x0 + (x1 - x0) * a, y0 + (y1 - y0) * a),
                    (x0 + (x1 - x0) * b, y0 + (y1 - y0) * b),
                ],
                colour,
                width=1.2,
            )
            done += 2 * step

    def arrow(self, points: Sequence[Point]) -> None:
        """A polyline ending in an arrowhead pointing down at its last point."""
        self.line(points)
        x, y = points[-1]
        size = self.u(5)
        self.draw.polygon(
            [(x, y), (x - size, y - 1.6 * size), (x + size, y - 1.6 * size)], fill=EDGE
        )

    def hexagon(
        self, box: tuple[float, float, float, float], colours: tuple[str, str], cut: float
    ) -> None:
        x0, y0, x1, y1 = box
        ym = (y0 + y1) / 2
        self.draw.polygon(
            [(x0, ym), (x0 + cut, y0), (x1 - cut, y0), (x1, ym), (x1 - cut, y1), (x0 + cut, y1)],
            fill=colours[0],
            outline=colours[1],
            width=max(1, round(self.u(1.5))),
        )

    def diamond(self, centre: Point, colours: tuple[str, str], radius: float = 7) -> None:
        x, y = centre
        r = self.u(radius)
        self.draw.polygon(
            [(x, y - r), (x + r, y), (x, y + r), (x - r, y)],
            fill=colours[0],
            outline=colours[1],
            width=max(1, round(self.u(1.5))),
        )


def _load_font(names: Sequence[str], size: int) -> _Font:
    from PIL import ImageFont

    for name in names:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


# -- layout elements ------------------------------------------------------------------------


@dataclass
class _Box:
    """One box: a role header, a specialist or a join."""

    lines: list[tuple[str, Style]]
    colours: tuple[str, str]
    shape: Shape = "round"
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0

    def measure(self, pen: _Pen) -> None:
        sizes = [pen.text_size(text, style) for text, style in self.lines]
        pad_x = pen.u(22 if self.shape == "hex" else 12)
        self.w = max(pen.u(120), max(w for w, _ in sizes) + 2 * pad_x)
        self.h = sum(h for _, h in sizes) + 2 * pen.u(8)

    @property
    def width(self) -> float:
        return self.w

    @property
    def height(self) -> float:
        return self.h

    def place(self, x: float, y: float) -> None:
        self.x, self.y = x, y

    def top(self) -> Point:
        return (self.x + self.w / 2, self.y)

    def bottom(self) -> Point:
        return (self.x + self.w / 2, self.y + self.h)

    def header(self) -> _Box:
        return self

    def paint(self, pen: _Pen) -> None:
        fill, stroke = self.colours
        x0, y0, x1, y1 = self.x, self.y, self.x + self.w, self.y + self.h
        outline = max(1, round(pen.u(1.5)))
        if self.shape == "hex":
            pen.hexagon((x0, y0, x1, y1), self.colours, cut=pen.u(14))
        else:
            radius = pen.u(10 if self.shape == "round" else 3)
            pen.draw.rounded_rectangle(
                (x0, y0, x1, y1), radius=radius, fill=fill, outline=stroke, width=outline
            )
        y = y0 + pen.u(8)
        for text, style in self.lines:
            tw, th = pen.text_size(text, style)
            pen.text((x0 + (self.w - tw) / 2, y), text, style, TEXT if style == "title" else MUTED)
            y += th


@dataclass
class _Tree:
    """A coordinator: its header box with its stages in a row below."""

    head: _Box
    stages: list[_Element]
    labels: list[str]
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0
    height: float = 0.0
    gap_x: float = 0.0
    gap_y: float = 0.0

    def measure(self, pen: _Pen) -> None:
        self.gap_x, self.gap_y = pen.u(22), pen.u(46)
        row = sum(s.width for s in self.stages) + self.gap_x * (len(self.stages) - 1)
        self.width = max(self.head.width, row)
        self.height = self.head.height + self.gap_y + max(s.height for s in self.stages)

    def place(self, x: float, y: float) -> None:
        self.x, self.y = x, y
        self.head.place(x + (self.width - self.head.width) / 2, y)
        row = sum(s.width for s in self.stages) + self.gap_x * (len(self.stages) - 1)
        cx = x + (self.width - row) / 2
        for stage in self.stages:
            stage.place(cx, y + self.head.height + self.gap_y)
            cx += stage.width + self.gap_x

    def top(self) -> Point:
        return self.head.top()

    def bottom(self) -> Point:
        return (self.head.bottom()[0], self.y + self.height)

    def header(self) -> _Box:
        return self.head

    def paint(self, pen: _Pen) -> None:
        sx, sy = self.head.bottom()
        bus = sy + self.gap_y * 0.45
        tops = [s.top() for s in self.stages]
        xs = [sx, *(t[0] for t in tops)]
        pen.line([(sx, sy), (sx, bus)])
        pen.line([(min(xs), bus), (max(xs), bus)])
        for (tx, ty), label in zip(tops, self.labels, strict=True):
            pen.arrow([(tx, bus), (tx, ty)])
            pen.text((tx + pen.u(5), bus + pen.u(2)), label, "small", MUTED)
        self.head.paint(pen)
        for stage in self.stages:
            stage.paint(pen)
        for stage in self.stages:  # every stage's result passes a gate before it is used
            box = stage.header()
            pen.diamond((box.x + box.w, box.y + box.h), GATE_COLOURS)


@dataclass
class _Group:
    """A parallel group: its members side by side, joined below (dashed frame)."""

    title: str
    members: list[_Element]
    join: _Box | None
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0
    height: float = 0.0
    pad: float = 0.0
    title_h: float = 0.0
    gap: float = 0.0

    def measure(self, pen: _Pen) -> None:
        self.pad, self.gap = pen.u(12), pen.u(16)
        title_w, self.title_h = pen.text_size(self.title, "small")
        row = sum(m.width for m in self.members) + self.gap * (len(self.members) - 1)
        join_w = self.join.width if self.join else 0.0
        self.width = max(row, join_w, title_w) + 2 * self.pad
        self.height = self.pad + self.title_h + max(m.height for m in self.members) + self.pad
        if self.join is not None:
            self.height += pen.u(30) + self.join.height

    def place(self, x: float, y: float) -> None:
        self.x, self.y = x, y
        row = sum(m.width for m in self.members) + self.gap * (len(self.members) - 1)
        cx = x + (self.width - row) / 2
        top = y + self.pad + self.title_h
        for member in self.members:
            member.place(cx, top)
            cx += member.width + self.gap
        if self.join is not None:
            self.join.place(
                x + (self.width - self.join.width) / 2,
                y + self.height - self.pad - self.join.height,
            )

    def top(self) -> Point:
        return (self.x + self.width / 2, self.y)

    def bottom(self) -> Point:
        return (self.x + self.width / 2, self.y + self.height)

    def header(self) -> _Box:
        return self.join if self.join is not None else self.members[-1].header()

    def paint(self, pen: _Pen) -> None:
        x0, y0, x1, y1 = self.x, self.y, self.x + self.width, self.y + self.height
        for a, b in (
            ((x0, y0), (x1, y0)),
            ((x1, y0), (x1, y1)),
            ((x1, y1), (x0, y1)),
            ((x0, y1), (x0, y0)),
        ):
            pen.dashed(a, b, JOIN_COLOURS[1])
        pen.text((x0 + pen.u(6), y0 + pen.u(4)), self.title, "small", MUTED)
        if self.join is not None:
            jx, jy = self.join.top()
            for member in self.members:
                mx, my = member.bottom()
                pen.arrow([(mx, my), (mx, my + pen.u(10)), (jx, jy - pen.u(8)), (jx, jy)])
            self.join.paint(pen)
        for member in self.members:
            member.paint(pen)


_Element = _Box | _Tree | _Group


# -- from roles to elements -----------------------------------------------------------------


def _description(text: str) -> list[tuple[str, Style]]:
    lines = textwrap.wrap(text, _WRAP, max_lines=_DESCRIPTION_LINES, placeholder=" …")
    return [(line, "small") for line in lines]


def _gate_lines(gate: Gate | None) -> list[tuple[str, Style]]:
    if gate is None or not gate.checks:
        return []
    names = ", ".join(c.name for c in gate.checks)
    return [
        (line, "small")
        for line in textwrap.wrap(f"gate: {names}", _WRAP, max_lines=2, placeholder=" …")
    ]


def _agent(agent: Any, pen: _Pen, gate: Gate | None = None) -> _Element:
    """The element for a specialist or a coordinator (recursively)."""
    if isinstance(agent, Specialist):
        lines: list[tuple[str, Style]] = [(agent.name, "title"), (str(agent.layer), "body")]
        if agent.fallback is not None:
            lines.append(("fallback: rules", "small"))
        lines += _description(agent.description)
        lines += _gate_lines(gate if gate is not None else agent.gate)
        box = _Box(lines, LAYER_COLOURS[Layer(agent.layer)], shape="rect")
        box.measure(pen)
        return box
    if isinstance(agent, Lead):
        kind = str(agent.kind)
        head_lines: list[tuple[str, Style]] = [(f"{kind}: {agent.name}", "title")]
        head_lines += _description(agent.description)
        head_lines += _gate_lines(gate if gate is not None else agent.gate)
        head = _Box(head_lines, ROLE_COLOURS.get(kind, ROLE_COLOURS["lead"]), shape="round")
        head.measure(pen)
        stages: list[_Element] = []
        labels: list[str] = []
        for number, stage in enumerate(agent.stages, start=1):
            inner, step = (stage.agent, stage) if isinstance(stage, Step) else (stage, None)
            conditional = step is not None and step.when is not None
            stages.append(_stage(inner, pen, step.gate if step is not None else None))
            labels.append(f"{number}{' when' if conditional else ''}")
        tree = _Tree(head, stages, labels)
        tree.measure(pen)
        return tree
    raise TypeError(f"cannot draw {agent!r}: expected a Specialist, Lead or Meta")


def _stage(stage: Any, pen: _Pen, gate: Gate | None) -> _Element:
    if isinstance(stage, Parallel):
        members = [_agent(m, pen) for m in stage.members]
        strategy = stage.resolver.name if stage.resolver is not None else "merge"
        join_lines: list[tuple[str, Style]] = [(f"join: {strategy}", "body")]
        join_lines += _gate_lines(gate if gate is not None else stage.gate)
        join = _Box(join_lines, JOIN_COLOURS, shape="hex")
        join.measure(pen)
        group = _Group(f"parallel: {stage.name}", members, join)
        group.measure(pen)
        return group
    return _agent(stage, pen, gate)


# -- legend ---------------------------------------------------------------------------------


class _Legend:
    """One row of swatches explaining colours and shapes."""

    def __init__(self, pen: _Pen) -> None:
        self.items: list[tuple[str, tuple[str, str], str]] = [
            (str(layer), colours, "rect") for layer, colours in LAYER_COLOURS.items()
        ]
        self.items += [
            ("meta / lead", ROLE_COLOURS["lead"], "round"),
            ("parallel join", JOIN_COLOURS, "hex"),
            ("validation gate", GATE_COLOURS, "diamond"),
        ]
        self.swatch = pen.u(16)
        self.gap = pen.u(18)
        self.widths = [
            self.swatch + pen.u(6) + pen.text_size(t, "small")[0] for t, _, _ in self.items
        ]
        self.width = sum(self.widths) + self.gap * (len(self.items) - 1)
        self.height = max(self.swatch, pen.text_size("Ag", "small")[1])

    def paint(self, pen: _Pen, x: float, y: float) -> None:
        for (text, (fill, stroke), shape), width in zip(self.items, self.widths, strict=True):
            s = self.swatch
            if shape == "diamond":
                pen.diamond((x + s / 2, y + s / 2), (fill, stroke), radius=s / 2 / pen.scale)
            elif shape == "hex":
                pen.hexagon((x - pen.u(2), y, x + s + pen.u(2), y + s), (fill, stroke), cut=s / 3)
            else:
                pen.draw.rounded_rectangle(
                    (x, y, x + s, y + s),
                    radius=pen.u(3 if shape == "rect" else 6),
                    fill=fill,
                    outline=stroke,
                    width=max(1, round(pen.u(1.5))),
                )
            pen.text(
                (x + s + pen.u(6), y + (s - pen.text_size(text, "small")[1]) / 2 + pen.u(1)),
                text,
                "small",
                MUTED,
            )
            x += width + self.gap
