"""Loading workflow modules from a workspace (``graphs/invoices.py`` and the like)."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentmesh._runtime.graph_builder import role_of
from agentmesh.errors import WorkspaceError

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["Workflow", "load_workflow"]


@dataclass(frozen=True, kw_only=True)
class Workflow:
    """A loaded workflow module.

    Attributes:
        module: The imported module.
        graph: Its compiled ``graph``.
        role: The agentmesh role the graph was compiled from.
        sample: The module's ``SAMPLE`` input file, if it declares one.
    """

    module: ModuleType
    graph: Any
    role: Any
    sample: Path | None


def load_workflow(path: str | Path) -> Workflow:
    """Import the workflow module at ``path`` and return its compiled ``graph``.

    The folder holding the module's top package is put on ``sys.path`` so the
    module can import its workspace siblings (``graphs.invoice_schemas`` ...).

    Raises:
        WorkspaceError: The file is missing, fails to import, or exports no
            agentmesh ``graph``.
    """
    file = Path(path).resolve()
    if not file.is_file() or file.suffix != ".py":
        raise WorkspaceError(f"{path}: expected an existing .py workflow module")
    root, dotted = _module_name(file)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(dotted)
    except Exception as exc:
        raise WorkspaceError(f"{path}: import failed: {type(exc).__name__}: {exc}") from exc
    graph = getattr(module, "graph", None)
    role = role_of(graph) if graph is not None else None
    if role is None:
        raise WorkspaceError(
            f"{path}: exports no 'graph' compiled by agentmesh (build one with .compile())"
        )
    sample = getattr(module, "SAMPLE", None)
    return Workflow(module=module, graph=graph, role=role, sample=Path(sample) if sample else None)


def _module_name(file: Path) -> tuple[Path, str]:
    parts = [file.stem]
    folder = file.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return folder, ".".join(parts)
