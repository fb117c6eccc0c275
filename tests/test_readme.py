"""The README's three-level example runs as printed and stays short."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _example() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("```python", text.index("## A three-level hierarchy")) + len("```python")
    return text[start : text.index("```", start)]


def test_readme_hierarchy_example_runs_and_prints_the_documented_result() -> None:
    code = _example()
    lines = [ln for ln in code.splitlines() if ln.strip()]
    assert len(lines) < 40
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    assert out.getvalue().strip() == "completed urgent=True team='oncall'"
