"""Episodic memory: finished runs as episodes, recall above a floor by outcome, corrections.

Every behaviour runs against the in-memory reference store and embedded Chroma.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _external_support import DAY, NOW, Clock
from langchain_core.messages import BaseMessage
from pydantic import BaseModel, TypeAdapter

import agentmesh as am
from agentmesh import memory as memory_api
from agentmesh._runtime.context import RunContext, use_context
from agentmesh.errors import ConfigError
from agentmesh.memory import (
    ChromaStore,
    Correction,
    Episode,
    EpisodeRecall,
    EpisodicMemory,
    InMemoryStore,
    MemoryStore,
    NoEpisodes,
    RecalledEpisodes,
    episodic,
    examples_text,
)
from agentmesh.messages import GateDecision, ResultMessage
from agentmesh.settings import Settings
from agentmesh.testing import RecordingTracer, ScriptedChatModel
from agentmesh.tools import ToolGateway
from agentmesh.tracing import SpanKind
from agentmesh.types import GateAction, ResultStatus, RunStatus


class Expense(BaseModel):
    vendor: str
    description: str


class Booking(BaseModel):
    vendor: str
    category: str


TASKS = {
    "cloud": Expense(vendor="Bleu Cloud", description="cloud hosting and database backups"),
    "cloud2": Expense(vendor="Bleu Cloud", description="cloud hosting for the staging servers"),
    "taxi": Expense(vendor="City Cabs", description="taxi ride from the airport to the hotel"),
    "paper": Expense(vendor="Papeterie", description="printer paper and toner cartridges"),
}


@pytest.fixture(params=["memory", "chroma"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MemoryStore]:
    if request.param == "memory":
        yield InMemoryStore()
    else:
        yield ChromaStore(path=tmp_path / "data" / "chroma", collection="episodes")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def memory(store: MemoryStore, clock: Clock) -> EpisodicMemory:
    return EpisodicMemory(store, clock=clock)


def _run(
    run_id: str,
    category: str = "office",
    *,
    status: RunStatus = RunStatus.COMPLETED,
    vendor: str = "Bleu Cloud",
) -> am.RunResult[Any]:
    output = Booking(vendor=vendor, category=category)
    result: ResultMessage[Any] = ResultMessage(
        task_id="t-" + run_id,
        agent="books",
        status=ResultStatus.OK if status is RunStatus.COMPLETED else ResultStatus.ESCALATED,
        output=output.model_dump(),
        evidence=["intake completed: read ok, match ok", "booking completed: categorize ok"],
        summary="books completed: intake ok, booking ok",
    )
    gate = GateDecision(
        gate="gate:booking", stage="booking", action=GateAction.RETRY, reasons=["no category"]
    )
    return am.RunResult(
        run_id=run_id,
        thread_id=run_id,
        status=status,
        reason=status.value,
        output=output if status is RunStatus.COMPLETED else None,
        result=result,
        gates=[gate],
    )


def _record(memory: EpisodicMemory, name: str, **kwargs: Any) -> Episode:
    task = TASKS[name]
    return memory.record(_run(name, **kwargs), task, subject=task.vendor)


def test_the_public_surface() -> None:
    assert sorted(episodic.__all__) == [
        "Correction",
        "Episode",
        "EpisodeAction",
        "EpisodeOutcome",
        "EpisodeRecall",
        "EpisodicMemory",
        "NoEpisodes",
        "RecalledEpisode",
        "RecalledEpisodes",
        "build_episodic_memory",
        "examples_text",
    ]
    assert set(episodic.__all__) <= set(memory_api.__all__)
    assert all(getattr(memory_api, n) is getattr(episodic, n) for n in episodic.__all__)


def test_build_episodic_memory_keeps_episodes_in_embedded_chroma(tmp_path: Path) -> None:
    built = memory_api.build_episodic_memory(data_dir=tmp_path / "data")
    assert isinstance(built.store, ChromaStore)
    assert built.store.collection_name == "episodes-hashing-v1-512"
    built.record(_run("r1"), TASKS["cloud"])
    again = memory_api.build_episodic_memory(data_dir=tmp_path / "data")
    assert again.get("r1") is not None


# -- recording ------------------------------------------------------------------------------


def test_a_finished_run_becomes_an_episode_with_its_steps(memory: EpisodicMemory) -> None:
    episode = memory.record(_run("r1", "software"), TASKS["cloud"], goal="book the expense")

    assert (episode.id, episode.workflow, episode.goal) == ("r1", "books", "book the expense")
    assert episode.outcome.status is RunStatus.COMPLETED
    assert episode.input_summary == (
        "vendor: Bleu Cloud; description: cloud hosting and database backups"
    )
    assert episode.output == {"vendor": "Bleu Cloud", "category": "software"}
    assert [(a.agent, a.status) for a in episode.actions] == [
        ("books/intake", "completed"),
        ("books/booking", "completed"),
        ("books", "ok"),
        ("books/booking", "gate:retry"),
    ]
    assert episode.actions[1].summary == "categorize ok"
    assert episode.created_at == NOW
    assert memory.get("r1") == episode


def test_recording_the_same_run_again_replaces_its_episode(
    memory: EpisodicMemory, store: MemoryStore
) -> None:
    _record(memory, "cloud")
    again = _record(memory, "cloud", category="software")
    assert store.count() == 1
    assert memory.get("cloud") == again


def test_a_run_awaiting_a_human_is_not_an_episode_yet(memory: EpisodicMemory) -> None:
    paused = am.RunResult(
        run_id="p", thread_id="p", status=RunStatus.AWAITING_HUMAN, reason="1 question"
    )
    with pytest.raises(ConfigError, match="awaiting a human"):
        memory.record(paused, TASKS["cloud"])
    assert memory.get("p") is None


def test_a_stopped_run_is_named_by_its_partial_results(memory: EpisodicMemory) -> None:
    partial = ResultMessage(task_id="x", agent="read", status=ResultStatus.OK, summary="read 3")
    killed = am.RunResult(
        run_id="k",
        thread_id="k",
        status=RunStatus.KILLED,
        reason="kill switch",
        partial={"books/intake/read": partial},
    )
    episode = memory.record(killed, TASKS["taxi"])
    assert episode.workflow == "books"
    assert [(a.agent, a.status, a.summary) for a in episode.actions] == [
        ("books/intake/read", "ok", "read 3")
    ]
    assert episode.outcome.reason == "kill switch"


# -- recall ---------------------------------------------------------------------------------


def test_recall_returns_only_episodes_above_the_relevance_floor(memory: EpisodicMemory) -> None:
    for name in ("cloud", "taxi", "paper"):
        _record(memory, name)

    found = memory.recall(TASKS["cloud2"], workflow="books", k=3)

    assert isinstance(found, RecalledEpisodes)
    assert [r.episode.id for r in found.episodes] == ["cloud"]
    assert found.episodes[0].score >= found.min_relevance == 0.3
    loose = memory.recall(TASKS["cloud2"], workflow="books", k=3, min_relevance=-1.0)
    assert len(loose.episodes) == 3
    assert loose.episodes[0].episode.id == "cloud"


def test_nothing_relevant_enough_is_a_typed_empty_result(memory: EpisodicMemory) -> None:
    _record(memory, "taxi")

    found = memory.recall(TASKS["cloud2"], workflow="books", min_relevance=0.9)

    assert isinstance(found, NoEpisodes)
    assert found.episodes == []
    assert found.best_score is not None and found.best_score < 0.9
    assert "below 0.90" in found.reason
    parsed = TypeAdapter(EpisodeRecall).validate_json(found.model_dump_json())
    assert parsed == found


def test_an_empty_memory_recalls_nothing(memory: EpisodicMemory) -> None:
    found = memory.recall("anything at all")
    assert isinstance(found, NoEpisodes)
    assert found.best_score is None
    assert found.reason == "no episodes ended completed"


def test_recall_filters_by_outcome(memory: EpisodicMemory) -> None:
    _record(memory, "cloud", status=RunStatus.ESCALATED)
    _record(memory, "cloud2", status=RunStatus.COMPLETED)

    default = memory.recall(TASKS["cloud"], workflow="books", k=5)
    escalated = memory.recall(TASKS["cloud"], workflow="books", k=5, outcomes=[RunStatus.ESCALATED])
    both = memory.recall(TASKS["cloud"], k=5, outcomes=[RunStatus.ESCALATED, RunStatus.COMPLETED])

    assert [r.episode.id for r in default.episodes] == ["cloud2"]
    assert [r.episode.id for r in escalated.episodes] == ["cloud"]
    assert [r.episode.outcome.status for r in escalated.episodes] == [RunStatus.ESCALATED]
    assert [r.episode.id for r in both.episodes] == ["cloud", "cloud2"]
    assert isinstance(memory.recall(TASKS["cloud"], outcomes=[RunStatus.KILLED]), NoEpisodes)


def test_recall_filters_by_workflow_and_age(memory: EpisodicMemory, clock: Clock) -> None:
    memory.record(_run("old"), TASKS["cloud"])
    clock.advance(DAY)
    memory.record(_run("other"), TASKS["cloud"], workflow="payroll")

    assert [r.episode.id for r in memory.recall(TASKS["cloud2"], workflow="books").episodes] == [
        "old"
    ]
    anywhere = memory.recall(TASKS["cloud2"], k=5)
    assert sorted(r.episode.id for r in anywhere.episodes) == ["old", "other"]
    recent = memory.recall(TASKS["cloud2"], k=5, since=NOW + 1)
    assert [r.episode.id for r in recent.episodes] == ["other"]


def test_every_recall_is_traced(memory: EpisodicMemory) -> None:
    _record(memory, "cloud")
    tracer = RecordingTracer()
    ctx = RunContext(settings=Settings(), tracer=tracer, gateway=ToolGateway(), run_id="run-9")

    with use_context(ctx):
        memory.recall(TASKS["cloud2"], workflow="books")
        memory.recall(TASKS["taxi"], workflow="books", min_relevance=0.95)

    hit, miss = tracer.of_kind(SpanKind.RETRIEVAL)
    assert (hit.name, hit.run_id, hit.status, hit.output) == (
        "memory.recall_episodes",
        "run-9",
        "ok",
        ["cloud"],
    )
    assert hit.input == "vendor: Bleu Cloud; description: cloud hosting for the staging servers"
    assert hit.attributes["hit_ids"] == ["episode/cloud"]
    assert hit.attributes["outcomes"] == ["completed"]
    assert hit.attributes["result"] == "episodes"
    assert (miss.status, miss.attributes["result"]) == ("no_episodes", "no_episodes")
    assert "below 0.95" in miss.output


# -- corrections ----------------------------------------------------------------------------


def test_corrections_land_on_the_episode_and_persist(
    memory: EpisodicMemory, store: MemoryStore, clock: Clock, tmp_path: Path
) -> None:
    for name in ("cloud", "taxi", "paper"):
        _record(memory, name)
    clock.advance(60)

    corrected = memory.correct(
        "cloud", Correction(field="category", new="software", reviewer="alice", note="SaaS")
    )

    (fix,) = corrected.corrections
    assert (fix.old, fix.new, fix.reviewer, fix.at) == ("office", "software", "alice", NOW + 60)
    assert corrected.corrected_output == {"vendor": "Bleu Cloud", "category": "software"}
    assert corrected.latest_correction("category") == fix
    assert corrected.latest_correction("vendor") is None
    if isinstance(store, ChromaStore):
        store = ChromaStore(path=tmp_path / "data" / "chroma", collection="episodes")
    reopened = EpisodicMemory(store)
    assert reopened.get("cloud") == corrected
    (recalled,) = reopened.recall(TASKS["cloud2"], workflow="books").episodes
    assert recalled.episode.corrections == [fix]


def test_later_corrections_stack_and_the_latest_wins(memory: EpisodicMemory) -> None:
    _record(memory, "cloud")
    memory.correct("cloud", Correction(field="category", new="software", reviewer="alice"))
    second = memory.correct(
        "cloud", Correction(field="category", new="hosting", old="software", reviewer="bob")
    )
    assert [c.new for c in second.corrections] == ["software", "hosting"]
    assert second.corrected_output is not None
    assert second.corrected_output["category"] == "hosting"


def test_concurrent_corrections_are_all_kept(memory: EpisodicMemory) -> None:
    _record(memory, "cloud")
    _record(memory, "taxi")

    def review(reviewer: str) -> None:
        for n in range(4):
            memory.correct("cloud", Correction(field="note", new=n, reviewer=reviewer))

    threads = [threading.Thread(target=review, args=(f"r{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    episode = memory.get("cloud")
    assert episode is not None
    assert sorted((c.reviewer, c.new) for c in episode.corrections) == [
        (f"r{r}", n) for r in range(4) for n in range(4)
    ]


def test_correcting_an_unknown_episode_is_an_error(memory: EpisodicMemory) -> None:
    _record(memory, "cloud")
    with pytest.raises(ConfigError, match="no episode 'nope'"):
        memory.correct("nope", Correction(field="category", new="x", reviewer="alice"))
    with pytest.raises(ConfigError, match="at least one"):
        memory.correct("cloud")


def test_forget_removes_one_episode(memory: EpisodicMemory, store: MemoryStore) -> None:
    _record(memory, "cloud")
    _record(memory, "taxi")
    assert memory.forget("cloud") is True
    assert memory.forget("cloud") is False
    assert memory.get("cloud") is None
    assert store.count() == 1


def test_corrected_lists_the_corrected_episodes_latest_first(
    memory: EpisodicMemory, store: MemoryStore, clock: Clock
) -> None:
    for name in ("cloud", "cloud2", "taxi", "paper"):
        _record(memory, name)
    memory.add(_record(memory, "taxi").model_copy(update={"id": "other", "workflow": "travel"}))
    memory.correct("taxi", Correction(field="category", new="travel", reviewer="alice"))
    clock.advance(60)
    memory.correct("cloud", Correction(field="category", new="software", reviewer="bob"))
    memory.correct("other", Correction(field="category", new="x", reviewer="bob"))

    found = memory.corrected(workflow="books")

    assert [(e.id, e.subject) for e in found] == [("cloud", "Bleu Cloud"), ("taxi", "City Cabs")]
    assert [e.corrections[-1].new for e in found] == ["software", "travel"]
    assert [e.id for e in memory.corrected(workflow="travel")] == ["other"]
    assert memory.corrected(workflow="nothing") == []
    # Recall is unchanged: one hit per episode, never the listing's copy.
    recalled = memory.recall(TASKS["cloud"], workflow="books", k=5, min_relevance=-1.0)
    assert isinstance(recalled, RecalledEpisodes)
    assert sorted(r.episode.id for r in recalled.episodes) == ["cloud", "cloud2", "paper", "taxi"]


def test_recording_again_or_forgetting_unlists_a_corrected_episode(
    memory: EpisodicMemory,
) -> None:
    _record(memory, "cloud")
    _record(memory, "taxi")
    memory.correct("cloud", Correction(field="category", new="software", reviewer="bob"))
    memory.correct("taxi", Correction(field="category", new="travel", reviewer="bob"))

    _record(memory, "cloud")  # recorded again: its corrections are gone
    assert memory.forget("taxi") is True

    assert memory.corrected(workflow="books") == []
    assert memory.get("cloud").corrections == []  # type: ignore[union-attr]


def test_listing_corrected_episodes_is_traced(memory: EpisodicMemory) -> None:
    _record(memory, "cloud")
    memory.correct("cloud", Correction(field="category", new="software", reviewer="bob"))
    tracer = RecordingTracer()
    ctx = RunContext(settings=Settings(), tracer=tracer, gateway=ToolGateway(), run_id="run-9")
    with use_context(ctx):
        memory.corrected(workflow="books")
    (listed,) = tracer.of_kind(SpanKind.RETRIEVAL)
    assert (listed.name, listed.run_id, listed.output, listed.status) == (
        "memory.corrected_episodes",
        "run-9",
        ["cloud"],
        "ok",
    )


def test_examples_show_the_corrected_output(memory: EpisodicMemory) -> None:
    _record(memory, "cloud")
    _record(memory, "cloud2", category="software")
    memory.correct("cloud", Correction(field="category", new="software", reviewer="alice"))

    found = memory.recall(TASKS["cloud2"], workflow="books", k=2)
    text = examples_text(found)

    assert text.count("Example ") == 2
    assert "- category: 'office' -> 'software' (alice)" in text
    assert "Correct output: vendor: Bleu Cloud; category: software" in text
    assert "Output: vendor: Bleu Cloud; category: software" in text
    assert examples_text(found, max_chars=10) == ""
    assert examples_text(NoEpisodes(query="q", reason="none", min_relevance=0.3)) == ""


# -- corrections change later behaviour ------------------------------------------------------


def _follows_examples(messages: list[BaseMessage], tools: list[dict[str, Any]]) -> Booking:
    """A model that books like the corrected examples in its prompt, else as office spend."""
    prompt = str(messages[-1].content)
    category = "software" if "-> 'software'" in prompt else "office"
    return Booking(vendor="Bleu Cloud", category=category)


def test_a_correction_changes_what_a_model_specialist_answers_next(
    memory: EpisodicMemory,
) -> None:
    model = ScriptedChatModel(respond=_follows_examples)
    books = am.Specialist(
        name="books",
        input=Expense,
        output=Booking,
        layer="small_model",
        model=model,
        prompt="Book the expense. Follow the examples in the constraints.",
    ).compile()

    def book(name: str) -> am.RunResult[Any]:
        examples = examples_text(memory.recall(TASKS[name], workflow="books"))
        return am.run(
            books,
            TASKS[name],
            thread_id=name,
            checkpointer=None,
            constraints={"examples": examples},
        )

    first = book("cloud")
    memory.record(first, TASKS["cloud"], subject="Bleu Cloud")
    before = book("cloud2")
    memory.correct("cloud", Correction(field="category", new="software", reviewer="alice"))
    after = book("cloud2")

    assert (first.output.category, before.output.category) == ("office", "office")
    assert after.output.category == "software"
    assert "category: 'office' -> 'software' (alice)" in str(model.requests[-1][-1].content)


def test_the_invoice_workflow_learns_a_vendor_from_a_reviewer_correction() -> None:
    """An unknown vendor goes to a human; once a reviewer names the vendor on that
    episode, the next invoice printed with the same name is matched and auto-approved."""
    from graphs.invoice_memory import episodes, remember
    from graphs.invoice_schemas import InvoiceDoc
    from graphs.invoices import graph

    lines = "support et maintenance 214,82 | licence annuelle 159,23"
    first_raw = f'Bleu Cloud Services,K-2026-0375,16 juillet 2026,EUR,"374,05",,"{lines}"'
    next_raw = 'Bleu Cloud Services,K-2026-0410,20 juillet 2026,EUR,"310,00",,"licence 310,00"'

    paused = am.run(graph, InvoiceDoc(id="inv-a", raw=first_raw, source_format="csv_row"))
    (request,) = paused.human_requests
    assert request.value["payload"]["signals"] == ["vendor not in master data"]
    done = am.resume(graph, paused.thread_id, {"approved": True, "approver": "alice"})
    assert (done.output.decision, done.output.vendor_id) == ("human_review", None)
    episode = remember(done, first_raw)
    assert episode.subject == "Bleu Cloud Services"

    before = am.run(graph, InvoiceDoc(id="inv-b", raw=next_raw, source_format="csv_row"))
    assert before.status is RunStatus.AWAITING_HUMAN  # an episode alone teaches nothing

    episodes().correct(
        episode.id,
        Correction(field="vendor_id", new="V003", reviewer="alice", note="Logiciel Bleu's brand"),
    )
    after = am.run(graph, InvoiceDoc(id="inv-c", raw=next_raw, source_format="csv_row"))

    assert after.status is RunStatus.COMPLETED, after.reason
    assert (after.output.vendor_id, after.output.decision) == ("V003", "approve")


def test_a_vendor_correction_is_found_among_many_closer_episodes() -> None:
    """The lookup lists corrected episodes: ten later invoices of other vendors with
    the very text of the new invoice (closer than the corrected one) do not hide it."""
    from graphs.invoice_memory import episodes, remember, vendor_from_corrections
    from graphs.invoice_schemas import InvoiceDoc
    from graphs.invoices import graph

    first_raw = 'Bleu Cloud Services,K-2026-0375,16 juillet 2026,EUR,"374,05",,"licence 374,05"'
    next_raw = 'Bleu Cloud Services,K-2026-0410,20 juillet 2026,EUR,"310,00",,"licence 310,00"'
    paused = am.run(graph, InvoiceDoc(id="inv-a", raw=first_raw, source_format="csv_row"))
    done = am.resume(graph, paused.thread_id, {"approved": True, "approver": "alice"})
    episode = remember(done, first_raw)
    memory = episodes()
    for n in range(10):
        memory.add(
            episode.model_copy(
                update={"id": f"look-alike-{n}", "subject": f"Other {n}", "task_text": next_raw}
            )
        )
        memory.correct(f"look-alike-{n}", Correction(field="vendor_id", new="V001", reviewer="bob"))
    memory.correct(episode.id, Correction(field="vendor_id", new="V003", reviewer="alice"))

    recalled = memory.recall(next_raw, workflow="back_office", k=5)
    assert isinstance(recalled, RecalledEpisodes)
    assert episode.id not in [r.episode.id for r in recalled.episodes]  # ranking alone misses it
    assert vendor_from_corrections("BLEU CLOUD services") == "V003"
    assert vendor_from_corrections("Other 3") == "V001"
    assert vendor_from_corrections("Nobody") is None
