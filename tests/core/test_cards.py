"""Agent cards: the repo's cards load; broken cards name the file and the field."""

import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

import agentmesh as am

ROOT = Path(__file__).resolve().parents[2]
AGENTS = ROOT / "agents"
SCHEMA = "agentmesh.resolution:ReconcileInput"  # any importable pydantic model


# -- the repo's cards ----------------------------------------------------------------------


def test_load_cards_on_the_repo_agents_folder() -> None:
    cards = am.load_cards(AGENTS)
    files = sorted(AGENTS.glob("*.toml"))
    assert len(cards) == len(files) >= 10
    for path in files:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        card = cards[raw["name"]]
        assert cards.path(card.name) == path
        assert card.role == raw["role"]
        assert card.layer == raw.get("layer", "code")
        assert card.owner == raw["owner"]
        assert isinstance(cards.output_schema(card.name), type)
        assert issubclass(cards.output_schema(card.name), BaseModel)
        if card.layer in (am.Layer.SMALL_MODEL, am.Layer.FRONTIER_MODEL):
            assert cards.prompt(card.name).strip(), f"{card.name} has an empty prompt"


def test_repo_cards_have_the_expected_roles_and_layers() -> None:
    cards = am.load_cards(AGENTS)
    roles = {name: cards[name].role for name in cards}
    assert [n for n, r in roles.items() if r is am.RoleKind.META] == ["back_office"]
    assert {"intake", "finance", "compliance"} <= {
        n for n, r in roles.items() if r is am.RoleKind.LEAD
    }
    assert cards["risk_critic"].layer is am.Layer.SMALL_MODEL
    assert cards["policy_checker"].layer is am.Layer.CODE
    assert cards["human_approval"].layer is am.Layer.HUMAN
    assert cards["human_approval"].autonomy is am.Autonomy.ACT_WITH_REVIEW
    assert cards["validate_vendor"].tools == ["ledger_check"]
    assert isinstance(cards["back_office"], am.AgentCard)


# -- broken cards --------------------------------------------------------------------------

VALID = {
    "name": "checker",
    "version": "1.0.0",
    "owner": "team@example.com",
    "role": "specialist",
    "layer": "code",
    "description": "Checks things.",
    "output": SCHEMA,
    "tools": [],
    "autonomy": "autonomous",
}


def toml_value(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return f'"{value}"'


def write_card(folder: Path, filename: str = "checker.toml", **changes: object) -> Path:
    data = {**VALID, **changes}
    lines = [f"{k} = {toml_value(v)}" for k, v in data.items() if v is not None]
    path = folder / filename
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def card_error(folder: Path) -> am.CardError:
    with pytest.raises(am.CardError) as info:
        am.load_cards(folder)
    return info.value


def test_a_valid_card_loads(tmp_path: Path) -> None:
    write_card(tmp_path)
    cards = am.load_cards(tmp_path)
    assert list(cards) == ["checker"]
    assert cards["checker"].owner == "team@example.com"
    assert cards.output_schema("checker") is am.ReconcileInput


def test_missing_owner(tmp_path: Path) -> None:
    path = write_card(tmp_path, owner=None)
    err = card_error(tmp_path)
    assert err.path == str(path)
    assert err.field == "owner"
    assert str(path) in str(err)
    assert "field 'owner'" in str(err)
    assert "is required" in str(err)


def test_bad_layer_value(tmp_path: Path) -> None:
    path = write_card(tmp_path, layer="gpu")
    err = card_error(tmp_path)
    assert (err.path, err.field) == (str(path), "layer")
    assert "'gpu'" in str(err)


def test_unknown_extra_field(tmp_path: Path) -> None:
    path = write_card(tmp_path, colour="blue")
    err = card_error(tmp_path)
    assert (err.path, err.field) == (str(path), "colour")
    assert "is not a card field" in str(err)


def test_bad_model_reference(tmp_path: Path) -> None:
    path = write_card(tmp_path, model="gpt4")
    err = card_error(tmp_path)
    assert (err.path, err.field) == (str(path), "model")
    assert "provider:model" in str(err)


def test_prompt_file_missing(tmp_path: Path) -> None:
    path = write_card(tmp_path, layer="small_model", prompt="prompts/missing.md")
    err = card_error(tmp_path)
    assert (err.path, err.field) == (str(path), "prompt")
    assert "prompts/missing.md" in str(err)
    assert "does not exist" in str(err)


def test_model_layer_without_a_prompt(tmp_path: Path) -> None:
    path = write_card(tmp_path, layer="small_model")
    err = card_error(tmp_path)
    assert (err.path, err.field) == (str(path), "prompt")
    assert "needs a prompt file" in str(err)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nomodule:X", "cannot import 'nomodule:X'"),
        ("agentmesh.resolution:Nope", "cannot import"),
        ("agentmesh.resolution", "expected 'module:Class'"),
        ("agentmesh.resolution:disagreements", "is not a pydantic model"),
    ],
)
def test_bad_output_reference(tmp_path: Path, ref: str, message: str) -> None:
    path = write_card(tmp_path, output=ref)
    err = card_error(tmp_path)
    assert (err.path, err.field) == (str(path), "output")
    assert message in str(err)


def test_duplicate_names(tmp_path: Path) -> None:
    first = write_card(tmp_path, filename="a.toml")
    second = write_card(tmp_path, filename="b.toml")
    err = card_error(tmp_path)
    assert (err.path, err.field) == (str(second), "name")
    assert str(first) in str(err)


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('name = "broken\nowner = ', encoding="utf-8")
    err = card_error(tmp_path)
    assert err.path == str(path)
    assert err.field is None
    assert "is not valid TOML" in str(err)
    assert str(path) in str(err)


def test_bad_name_pattern(tmp_path: Path) -> None:
    path = write_card(tmp_path, name="Bad-Name")
    err = card_error(tmp_path)
    assert (err.path, err.field) == (str(path), "name")


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(am.CardError, match="not a folder"):
        am.load_cards(tmp_path / "nope")


def test_card_error_is_a_config_error() -> None:
    assert issubclass(am.CardError, am.ConfigError)


# -- building agents from cards ------------------------------------------------------------


def lookup(word: str) -> str:
    """Look a word up."""
    return word


def delete_all(confirm: bool) -> str:
    """Delete every record."""
    return "gone"


class In(BaseModel):
    text: str


def test_card_specialist_gets_only_the_listed_tools(tmp_path: Path) -> None:
    write_card(tmp_path, tools=["lookup"])
    cards = am.load_cards(tmp_path)
    spec = cards.specialist(
        "checker",
        input=In,
        fn=lambda i: am.ReconcileInput(candidates={}),
        tools={"lookup": lookup, "delete_all": delete_all},
    )
    assert set(spec.allowed_tools) == {"lookup"}
    assert spec.output is am.ReconcileInput
    assert spec.version == "1.0.0"
    assert spec.description == "Checks things."


def test_card_specialist_with_an_unknown_tool_raises(tmp_path: Path) -> None:
    path = write_card(tmp_path, tools=["lookup", "teleport"])
    cards = am.load_cards(tmp_path)
    with pytest.raises(am.CardError) as info:
        cards.specialist("checker", input=In, fn=lambda i: i, tools={"lookup": lookup})
    assert (info.value.path, info.value.field) == (str(path), "tools")
    assert "teleport" in str(info.value)


def test_card_specialist_reads_its_prompt_and_model(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "checker.md").write_text("Check carefully.", encoding="utf-8")
    write_card(
        tmp_path, layer="small_model", prompt="prompts/checker.md", model="openai:gpt-4o-mini"
    )
    cards = am.load_cards(tmp_path)
    spec = cards.specialist(
        "checker", input=In, fallback=lambda i: am.ReconcileInput(candidates={})
    )
    assert spec.prompt == "Check carefully."
    assert spec.model == "openai:gpt-4o-mini"
    assert spec.layer is am.Layer.SMALL_MODEL


def test_using_a_card_in_the_wrong_role_raises(tmp_path: Path) -> None:
    path = write_card(tmp_path)
    cards = am.load_cards(tmp_path)
    with pytest.raises(am.CardError) as info:
        cards.lead("checker", input=In, stages=[])
    assert (info.value.path, info.value.field) == (str(path), "role")
    with pytest.raises(am.CardError, match="no card named 'ghost'"):
        cards.specialist("ghost", input=In, fn=lambda i: i)
