"""Build-time wiring: schema checks at construction, hierarchies, direct LangGraph use."""

import pytest
from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel

import agentmesh as am
from agentmesh.testing import ScriptedChatModel

# -- schemas -------------------------------------------------------------------------------


class Doc(BaseModel):
    text: str


class Words(BaseModel):
    words: list[str]


class Count(BaseModel):
    count: int


class CountAsText(BaseModel):
    count: str


class MaybeCount(BaseModel):
    count: int | None = None


class Ratio(BaseModel):
    count: float


class Needs(BaseModel):
    words: list[str]
    language: str


class Verdict(BaseModel):
    count: int
    long: bool


class Animal(BaseModel):
    name: str


class Dog(Animal):
    breed: str


class PetOut(BaseModel):
    pet: Dog


class PetIn(BaseModel):
    pet: Animal


class PetName(BaseModel):
    name: str


class WholeWords(BaseModel):
    split: Words


class CountOrText(BaseModel):
    count: int | str


class Summary(BaseModel):
    summary: str


# -- stages --------------------------------------------------------------------------------


@am.specialist()
def split(doc: Doc) -> Words:
    return Words(words=doc.text.split())


@am.specialist()
def count(w: Words) -> Count:
    return Count(count=len(w.words))


@am.specialist()
def count_text(w: Words) -> CountAsText:
    return CountAsText(count=str(len(w.words)))


@am.specialist()
def maybe_count(w: Words) -> MaybeCount:
    return MaybeCount(count=len(w.words))


@am.specialist()
def needs_language(n: Needs) -> Count:
    return Count(count=len(n.words))


@am.specialist()
def judge(c: Count) -> Verdict:
    return Verdict(count=c.count, long=c.count > 3)


@am.specialist()
def ratio(c: Ratio) -> Summary:
    return Summary(summary=f"{c.count:.1f}")


@am.specialist()
def adopt(d: Doc) -> PetOut:
    return PetOut(pet=Dog(name=d.text, breed="collie"))


@am.specialist()
def greet(p: PetIn) -> PetName:
    return PetName(name=p.pet.name.upper())


@am.specialist()
def whole(w: WholeWords) -> Count:
    return Count(count=len(w.split.words))


@am.specialist()
def either(c: CountOrText) -> Summary:
    return Summary(summary=f"{type(c.count).__name__}:{c.count}")


def run_lead(lead: am.Lead, payload: BaseModel) -> am.RunResult:
    return am.run(lead.compile(), payload, checkpointer=None)


# -- schema mismatches ---------------------------------------------------------------------


def test_missing_field_raises_at_lead_construction_naming_consumer_field_and_producer() -> None:
    with pytest.raises(am.SchemaMismatchError) as info:
        am.Lead(name="words", input=Doc, output=Count, stages=[split, needs_language])
    err = info.value
    message = str(err)
    assert "words/needs_language" in message
    assert "'language'" in message
    assert "produced by no earlier stage" in message
    # words came from split; language from nowhere
    assert err.producer == "split"
    assert err.consumer.startswith("words/needs_language")
    assert any("language" in p for p in err.problems)
    assert isinstance(err, am.ConfigError)


def test_incompatible_type_str_to_int_raises_naming_field_types_and_producer() -> None:
    with pytest.raises(am.SchemaMismatchError) as info:
        am.Lead(name="words", input=Doc, output=Verdict, stages=[split, count_text, judge])
    message = str(info.value)
    assert "words/judge" in message
    assert "field 'count' is str from 'count_text', expected int" in message
    assert info.value.producer == "count_text"


def test_optional_to_required_raises() -> None:
    with pytest.raises(am.SchemaMismatchError) as info:
        am.Lead(name="words", input=Doc, output=Verdict, stages=[split, maybe_count, judge])
    message = str(info.value)
    assert "words/judge" in message
    assert "'count'" in message
    assert "maybe_count" in message
    assert "None" in message


def test_lead_output_that_no_stage_produces_raises() -> None:
    with pytest.raises(am.SchemaMismatchError) as info:
        am.Lead(name="words", input=Doc, output=Verdict, stages=[split, count])
    assert "words output" in str(info.value)
    assert "'long'" in str(info.value)


# -- compatible wiring builds and runs -----------------------------------------------------


def test_int_feeds_float() -> None:
    lead = am.Lead(name="words", input=Doc, output=Summary, stages=[split, count, ratio])
    r = run_lead(lead, Doc(text="a b c"))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == Summary(summary="3.0")


def test_subclass_feeds_base_class() -> None:
    lead = am.Lead(name="pets", input=Doc, output=PetName, stages=[adopt, greet])
    r = run_lead(lead, Doc(text="rex"))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == PetName(name="REX")


def test_whole_output_is_available_under_the_stage_name() -> None:
    lead = am.Lead(name="words", input=Doc, output=Count, stages=[split, whole])
    r = run_lead(lead, Doc(text="one two three four"))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == Count(count=4)


def test_union_arm_accepts_a_member_type() -> None:
    lead = am.Lead(name="words", input=Doc, output=Summary, stages=[split, count, either])
    r = run_lead(lead, Doc(text="x y"))
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == Summary(summary="int:2")


def test_compatible_helper_on_unions() -> None:
    from agentmesh._runtime.dataflow import compatible

    assert compatible(int, int | str)
    assert compatible(int | str, int | str | None)
    assert compatible(int, float)
    assert not compatible(int | None, int)
    assert not compatible(str, int)
    assert not compatible(int | str, int)


# -- other build-time errors ---------------------------------------------------------------


class VerdictB(BaseModel):
    count: int
    long: bool
    note: str = ""


def test_parallel_resolver_over_different_output_schemas_raises_config_error() -> None:
    a = am.Specialist(
        name="a", input=Count, output=Verdict, fn=lambda c: Verdict(count=1, long=False)
    )
    b = am.Specialist(
        name="b", input=Count, output=VerdictB, fn=lambda c: VerdictB(count=1, long=False)
    )
    with pytest.raises(am.ConfigError) as info:
        am.Parallel(a, b, name="peers", resolver=am.Vote())
    assert "peers" in str(info.value)
    assert "a->Verdict" in str(info.value)
    assert "b->VerdictB" in str(info.value)
    # without a resolver the members are independent and may differ
    assert am.Parallel(a, b, name="independent").members == (a, b)


def test_duplicate_stage_names_raise() -> None:
    other_split = am.Specialist(name="split", input=Doc, output=Words, fn=split.fn)
    with pytest.raises(am.ConfigError, match="duplicate stage or agent name 'split'"):
        am.Lead(name="words", input=Doc, output=Words, stages=[split, other_split])


def test_duplicate_name_inside_parallel_raises() -> None:
    a = am.Specialist(name="count", input=Words, output=Count, fn=count.fn)
    with pytest.raises(am.ConfigError, match="duplicate stage or agent name 'count'"):
        am.Lead(
            name="words",
            input=Doc,
            output=Count,
            stages=[split, count, am.Parallel(a, judge, name="group")],
        )


def test_stage_named_like_its_lead_raises() -> None:
    with pytest.raises(am.ConfigError, match="duplicate"):
        am.Lead(name="split", input=Doc, output=Words, stages=[split])


def test_specialist_decorator_without_annotations_raises() -> None:
    with pytest.raises(am.ConfigError, match="annotate"):

        @am.specialist()
        def untyped(doc):  # type: ignore[no-untyped-def]
            return doc

    with pytest.raises(am.ConfigError, match="annotate"):

        @am.specialist(name="no_return")
        def no_return(doc: Doc):  # type: ignore[no-untyped-def]
            return doc


def test_code_specialist_without_fn_raises() -> None:
    with pytest.raises(am.ConfigError, match="layer 'code' needs fn="):
        am.Specialist(name="x", input=Doc, output=Words, layer="code")


def test_empty_lead_raises() -> None:
    with pytest.raises(am.ConfigError, match="at least one stage"):
        am.Lead(name="empty", input=Doc, output=Words, stages=[])


# -- hierarchies ---------------------------------------------------------------------------


def test_three_level_hierarchy_runs() -> None:
    model = ScriptedChatModel(respond=lambda m, t: Verdict(count=3, long=False))
    llm_judge = am.Specialist(
        name="llm_judge", input=Words, output=Verdict, layer="small_model", model=model
    )
    lead = am.Lead(name="words", input=Doc, output=Verdict, stages=[split, llm_judge])
    top = am.Meta(name="top", input=Doc, output=Verdict, stages=[lead])
    r = am.run(top.compile(), Doc(text="a b c"), checkpointer=None)
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == Verdict(count=3, long=False)
    assert [g.stage for g in r.gates] == ["words"]
    assert r.usage.model_calls == 1 == model.calls


def test_four_level_hierarchy_runs() -> None:
    inner = am.Lead(name="inner", input=Words, output=Verdict, stages=[count, judge])
    outer = am.Lead(name="outer", input=Doc, output=Verdict, stages=[split, inner])
    top = am.Meta(name="top", input=Doc, output=Verdict, stages=[outer])
    r = am.run(top.compile(), Doc(text="a b c d e"), checkpointer=None)
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == Verdict(count=5, long=True)
    assert r.result is not None
    assert r.result.evidence == ["outer completed: split ok, inner ok"]


def test_compiled_graph_is_a_langgraph_graph_usable_with_invoke() -> None:
    lead = am.Lead(name="words", input=Doc, output=Verdict, stages=[split, count, judge])
    top = am.Meta(name="top", input=Doc, output=Verdict, stages=[lead])
    graph = top.compile()
    assert isinstance(graph, CompiledStateGraph)
    state = graph.invoke({"input": {"text": "one two"}})
    assert state["outcome"]["status"] == "completed"
    assert state["result"]["status"] == "ok"
    assert state["result"]["output"] == {"count": 2, "long": False}
    assert [g["action"] for g in state["gates"]] == ["pass"]


def test_compiled_lead_invoke_with_invalid_input_halts() -> None:
    lead = am.Lead(name="words", input=Doc, output=Words, stages=[split])
    state = lead.compile().invoke({"input": {"wrong": 1}})
    assert state["outcome"]["status"] == "halted"
    assert "input is not a valid Doc" in state["outcome"]["reason"]


# -- conditional steps ---------------------------------------------------------------------


class Flag(BaseModel):
    text: str
    shout: bool


class Shouted(BaseModel):
    loud: str


@am.specialist()
def loud(f: Flag) -> Shouted:
    return Shouted(loud=f.text.upper())


@am.specialist()
def split_loud(s: Shouted) -> Words:
    return Words(words=s.loud.split())


def test_a_step_whose_condition_is_false_is_skipped() -> None:
    ran: list[str] = []

    @am.specialist(name="shouter")
    def shouter(f: Flag) -> Words:
        ran.append(f.text)
        return Words(words=[f.text.upper()])

    @am.specialist(name="plain")
    def plain(f: Flag) -> Words:
        return Words(words=[f.text])

    lead = am.Lead(
        name="echo",
        input=Flag,
        output=Words,
        stages=[am.Step(agent=plain), am.Step(agent=shouter, when=lambda fields: fields["shout"])],
    )
    r = am.run(lead.compile(), Flag(text="hi", shout=False), checkpointer=None)
    assert r.status is am.RunStatus.COMPLETED
    assert r.output == Words(words=["hi"])
    assert ran == []
    r = am.run(lead.compile(), Flag(text="hi", shout=True), checkpointer=None)
    assert r.output == Words(words=["HI"])
    assert ran == ["hi"]


def test_consumer_of_a_skipped_conditional_stage_ends_typed_not_crashing() -> None:
    # Build-time wiring counts a conditional stage's fields as available; when the
    # stage is skipped the consumer's input is incomplete and the run escalates.
    lead = am.Lead(
        name="echo",
        input=Flag,
        output=Words,
        stages=[am.Step(agent=loud, when=lambda fields: fields["shout"]), split_loud],
    )
    r = am.run(lead.compile(), Flag(text="hi there", shout=True), checkpointer=None)
    assert r.output == Words(words=["HI", "THERE"])
    r = am.run(lead.compile(), Flag(text="hi there", shout=False), checkpointer=None)
    assert r.status is am.RunStatus.ESCALATED
    assert "split_loud failed: input does not match Shouted" in r.reason
    assert "loud: Field required" in r.reason
