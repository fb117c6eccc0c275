"""The three scenarios every team should price before scaling a workflow."""

from __future__ import annotations

from dataclasses import dataclass

from agentmesh.errors import ConfigError

__all__ = ["EDGE", "EXPECTED", "FAILURE", "SCENARIOS", "Scenario"]


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """The conditions one simulated batch of runs meets.

    Attributes:
        name: Short name (``expected``, ``edge``, ``failure``).
        description: One line for reports.
        unusual_share: Share of inputs that are unusual: on them, the first answer of
            each model-backed agent is one its gate (or its output schema) rejects, as a
            model misreading an odd layout would; the answer after the feedback is right.
        tool_failure_rate: Probability that one tool call attempt fails with a
            transient error (an upstream 503), independently per attempt.
        upstream_down: Whether one model endpoint (the *down agent's*) answers
            HTTP 500 to every request for the whole scenario.

    Raises:
        ConfigError: A share or rate is outside [0, 1].
    """

    name: str
    description: str
    unusual_share: float = 0.0
    tool_failure_rate: float = 0.0
    upstream_down: bool = False

    def __post_init__(self) -> None:
        for field in ("unusual_share", "tool_failure_rate"):
            value = getattr(self, field)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"Scenario.{field} must be within [0, 1], got {value!r}")


EXPECTED = Scenario(
    name="expected",
    description="inputs like the test set; every upstream healthy",
)
EDGE = Scenario(
    name="edge",
    description=(
        "10% unusual inputs: each model-backed agent's first answer on them fails its gate "
        "or schema and is retried with the reason fed back"
    ),
    unusual_share=0.10,
)
FAILURE = Scenario(
    name="failure",
    description=(
        "15% of tool call attempts fail (transient 503) and one model endpoint stays down "
        "(HTTP 500 to every request) for the whole scenario"
    ),
    tool_failure_rate=0.15,
    upstream_down=True,
)
SCENARIOS = (EXPECTED, EDGE, FAILURE)
"""Expected, edge and failure, in that order."""
