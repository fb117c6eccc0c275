"""Agent cards: one TOML file per agent with its owner, version, role, layer,
prompt, model, output schema, tools and autonomy level.

Cards are the reviewed source of truth for *what* an agent is; code supplies
*how* (functions, fallbacks, stages). A broken card fails when it is loaded,
naming the file and the field.
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentmesh.errors import CardError
from agentmesh.lead import Lead, Meta
from agentmesh.specialist import Specialist
from agentmesh.tools import ToolLike, to_tool
from agentmesh.types import Autonomy, Layer, RoleKind

__all__ = ["AgentCard", "CardSet", "load_cards"]

CoordT = TypeVar("CoordT", bound=Lead[Any, Any])


class AgentCard(BaseModel):
    """The validated content of one card file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    role: RoleKind
    layer: Layer = Layer.CODE
    description: str = ""
    prompt: str | None = Field(default=None, description="Prompt file, relative to the card.")
    model: str | None = None
    output: str = Field(description="Output schema as 'module:Class'.")
    tools: list[str] = Field(default_factory=list)
    autonomy: Autonomy = Autonomy.AUTONOMOUS

    @field_validator("model")
    @classmethod
    def _model_ref(cls, value: str | None) -> str | None:
        if value and ":" not in value:
            raise ValueError("expected 'provider:model', for example 'openai:gpt-4o-mini'")
        return value or None


class CardSet(Mapping[str, AgentCard]):
    """Cards loaded from a folder, by agent name, with builders for their agents."""

    def __init__(self, cards: Mapping[str, tuple[AgentCard, Path]]) -> None:
        self._cards = dict(cards)

    def __getitem__(self, name: str) -> AgentCard:
        return self._cards[name][0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._cards)

    def __len__(self) -> int:
        return len(self._cards)

    def path(self, name: str) -> Path:
        """The card file of agent ``name``."""
        return self._cards[name][1]

    def prompt(self, name: str) -> str:
        """The text of the agent's prompt file ('' when it has none)."""
        card, path = self._cards[name]
        return (path.parent / card.prompt).read_text(encoding="utf-8") if card.prompt else ""

    def output_schema(self, name: str) -> type[BaseModel]:
        """The output schema class the card names."""
        card, path = self._cards[name]
        return _import_schema(card.output, path)

    def specialist(
        self,
        name: str,
        *,
        input: type[BaseModel],
        fn: Callable[..., Any] | None = None,
        fallback: Callable[..., Any] | None = None,
        tools: Mapping[str, ToolLike] | None = None,
        **options: Any,
    ) -> Specialist[Any, Any]:
        """Build the specialist described by card ``name``.

        Args:
            name: The agent's card.
            input: Its input schema.
            fn: The function, for the ``code`` layer.
            fallback: Deterministic fallback, for model layers.
            tools: Tools available in the workspace, by name; the agent gets
                exactly the ones its card lists.
            **options: Other :class:`Specialist` fields (gate, max_output_retries, ...).
        """
        card, path = self._require(name, RoleKind.SPECIALIST)
        granted = self._grant_tools(card, path, tools or {})
        return Specialist(
            name=card.name,
            input=input,
            output=self.output_schema(name),
            layer=card.layer,
            fn=fn,
            fallback=fallback,
            prompt=self.prompt(name),
            model=card.model,
            tools=granted,
            autonomy=card.autonomy,
            version=card.version,
            description=card.description,
            **options,
        )

    def lead(
        self, name: str, *, input: type[BaseModel], stages: Sequence[Any], **options: Any
    ) -> Lead[Any, Any]:
        """Build the lead described by card ``name``."""
        return self._coordinator(Lead, name, input, stages, options)

    def meta(
        self, name: str, *, input: type[BaseModel], stages: Sequence[Any], **options: Any
    ) -> Meta[Any, Any]:
        """Build the meta agent described by card ``name``."""
        return self._coordinator(Meta, name, input, stages, options)

    def _coordinator(
        self,
        cls: type[CoordT],
        name: str,
        input: type[BaseModel],
        stages: Sequence[Any],
        options: Mapping[str, Any],
    ) -> CoordT:
        card, _ = self._require(name, cls.kind)
        return cls(
            name=card.name,
            input=input,
            output=self.output_schema(name),
            stages=stages,
            version=card.version,
            description=card.description,
            **options,
        )

    def _require(self, name: str, role: RoleKind) -> tuple[AgentCard, Path]:
        if name not in self._cards:
            raise CardError(name, None, f"no card named '{name}' (have: {sorted(self._cards)})")
        card, path = self._cards[name]
        if card.role is not role:
            raise CardError(str(path), "role", f"is '{card.role}', but it is used as a {role}")
        return card, path

    @staticmethod
    def _grant_tools(card: AgentCard, path: Path, tools: Mapping[str, ToolLike]) -> list[ToolLike]:
        missing = [t for t in card.tools if t not in tools]
        if missing:
            raise CardError(
                str(path), "tools", f"unknown tool(s) {missing} (available: {sorted(tools)})"
            )
        return [to_tool(tools[t]) for t in card.tools]


def load_cards(folder: str | Path) -> CardSet:
    """Load and validate every ``*.toml`` card in ``folder``.

    Raises:
        CardError: A card is unreadable, invalid, names a missing prompt file
            or schema, or two cards share a name.
    """
    root = Path(folder)
    if not root.is_dir():
        raise CardError(str(root), None, "is not a folder of agent cards")
    cards: dict[str, tuple[AgentCard, Path]] = {}
    for path in sorted(root.glob("*.toml")):
        card = _load_card(path)
        if card.name in cards:
            raise CardError(
                str(path), "name", f"'{card.name}' is also defined in {cards[card.name][1]}"
            )
        if card.prompt and not (path.parent / card.prompt).is_file():
            raise CardError(str(path), "prompt", f"file '{card.prompt}' does not exist")
        if card.layer.uses_model and not card.prompt:
            raise CardError(str(path), "prompt", f"layer '{card.layer}' needs a prompt file")
        _import_schema(card.output, path)
        cards[card.name] = (card, path)
    return CardSet(cards)


def _load_card(path: Path) -> AgentCard:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CardError(str(path), None, f"is not valid TOML: {exc}") from exc
    try:
        return AgentCard.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        message = err["msg"] if err["type"] != "missing" else "is required"
        if err["type"] == "extra_forbidden":
            message = "is not a card field"
        if err["type"] == "enum":
            message = f"{err['msg']} (got {err.get('input')!r})"
        raise CardError(str(path), field, message) from exc


def _import_schema(ref: str, path: Path) -> type[BaseModel]:
    module_name, sep, attr = ref.partition(":")
    if not sep:
        raise CardError(str(path), "output", f"'{ref}': expected 'module:Class'")
    try:
        schema = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise CardError(str(path), "output", f"cannot import '{ref}': {exc}") from exc
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        raise CardError(str(path), "output", f"'{ref}' is not a pydantic model")
    return schema
