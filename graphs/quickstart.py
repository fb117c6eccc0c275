"""Quickstart workflow: meta `quickstart` -> leads `reading`, `review` -> code specialists.

A three-level hierarchy small enough to read in one sitting and to run without
any model, key or network:

- ``reading`` splits a note into words and measures them.
- ``review`` asks three tone checkers in parallel and lets them vote
  (``am.Vote()``), then drafts a headline behind a gate that sends an
  over-long draft back once with the reason.
- ``quickstart`` (the meta) joins both into one typed ``Report``.

Every specialist is plain code, so the results are deterministic. Used by
``notebooks/quickstart.ipynb`` and served as the ``quickstart`` graph in
``langgraph.json``.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

import agentmesh as am

__all__ = [
    "EXAMPLE",
    "HEADLINE_MAX",
    "Headline",
    "HeadlineInput",
    "Note",
    "Reading",
    "Report",
    "Review",
    "ReviewInput",
    "Tone",
    "Words",
    "graph",
    "quickstart",
    "reading",
    "review",
]

HEADLINE_MAX = 40
POSITIVE = {"great", "good", "love", "loved", "fast", "happy", "win", "won", "excellent", "smooth"}
NEGATIVE = {"bad", "slow", "broken", "late", "angry", "fail", "failed", "poor", "bug", "bugs"}


# -- schemas --------------------------------------------------------------------------------


class Note(BaseModel):
    """The task payload: a short piece of text."""

    text: str = Field(min_length=1)


class Words(BaseModel):
    words: list[str]


class Reading(BaseModel):
    """What the `reading` lead returns."""

    count: int = Field(ge=0)
    longest: str


class Tone(BaseModel):
    """One tone checker's answer (the three peers share this schema)."""

    tone: str


class HeadlineInput(BaseModel):
    text: str
    tone: str


class Headline(BaseModel):
    headline: str


class ReviewInput(BaseModel):
    text: str
    count: int


class Review(BaseModel):
    """What the `review` lead returns."""

    tone: str
    headline: str


class Report(BaseModel):
    """The final result of the hierarchy."""

    count: int
    longest: str
    tone: str
    headline: str


# -- lead `reading` --------------------------------------------------------------------------


@am.specialist()
def split(note: Note) -> Words:
    """Split the text into words (punctuation stripped)."""
    return Words(words=re.findall(r"[A-Za-z0-9']+", note.text))


@am.specialist()
def measure(words: Words) -> Reading:
    """Count the words and find the longest one."""
    return Reading(count=len(words.words), longest=max(words.words, key=len, default=""))


reading = am.Lead(
    name="reading",
    input=Note,
    output=Reading,
    stages=[split, measure],
    description="Split and measure the text",
)


# -- lead `review` ---------------------------------------------------------------------------


def _lexicon_score(text: str) -> int:
    words = [w.lower() for w in re.findall(r"[A-Za-z']+", text)]
    return sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)


@am.specialist()
def tone_lexicon(note: Note) -> Tone:
    """Tone from a small word list."""
    score = _lexicon_score(note.text)
    return Tone(tone="positive" if score > 0 else "negative" if score < 0 else "neutral")


@am.specialist()
def tone_marks(note: Note) -> Tone:
    """Tone from punctuation: exclamation marks read as enthusiasm."""
    if "!" in note.text:
        return Tone(tone="positive" if _lexicon_score(note.text) >= 0 else "negative")
    return Tone(tone="neutral")


@am.specialist()
def tone_cautious(note: Note) -> Tone:
    """A deliberately cautious peer: only strong signals move it off neutral."""
    score = _lexicon_score(note.text)
    return Tone(tone="positive" if score >= 3 else "negative" if score <= -3 else "neutral")


@am.check(on_fail="retry")
def short_headline(h: Headline) -> str | None:
    """A headline must fit in HEADLINE_MAX characters."""
    if len(h.headline) > HEADLINE_MAX:
        return f"headline has {len(h.headline)} characters, the limit is {HEADLINE_MAX}"
    return None


def _draft_headline(payload: HeadlineInput, ctx: am.AgentContext) -> Headline:
    """Draft a headline; when the gate sent it back, shorten it to fit."""
    first = re.split(r"(?<=[.!?])\s+", payload.text.strip())[0].rstrip(".!?")
    draft = f"{payload.tone.capitalize()}: {first}"
    if ctx.feedback is None:
        return Headline(headline=draft)  # first attempt: no length discipline yet
    words: list[str] = []
    for word in draft.split():
        if len(" ".join([*words, word])) + 1 > HEADLINE_MAX:
            break
        words.append(word)
    return Headline(headline=" ".join(words) + "…")


headline = am.Specialist(
    name="headline",
    input=HeadlineInput,
    output=Headline,
    fn=_draft_headline,
    gate=am.Gate(checks=[short_headline], max_retries=1),
    description="Draft a headline (gated on length)",
)

review = am.Lead(
    name="review",
    input=ReviewInput,
    output=Review,
    stages=[
        am.Parallel(tone_lexicon, tone_marks, tone_cautious, name="tone_vote", resolver=am.Vote()),
        headline,
    ],
    description="Vote on the tone, then write a headline",
)


# -- meta ----------------------------------------------------------------------------------

quickstart = am.Meta(
    name="quickstart",
    input=Note,
    output=Report,
    stages=[reading, review],
    goal="Summarise a short note",
    description="Read a note and report on it",
)

# A note whose first sentence is too long for a headline (the gate sends the first draft
# back once) and on whose tone the three checkers disagree (the vote settles it 2 to 1).
EXAMPLE = Note(
    text="The team shipped the new onboarding flow two days early and customers love it! "
    "Support tickets are down and reviews are great."
)

# No checkpointer: `langgraph dev` brings its own; am.run attaches the default one.
graph = quickstart.compile()
