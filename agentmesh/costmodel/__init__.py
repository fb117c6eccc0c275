"""The cost model: what a workflow costs per run when inputs are usual, unusual, or upstreams fail.

```python
from agentmesh.costmodel import simulate_costs

report = simulate_costs(back_office, items)        # items like the test set
report.failure_to_expected_ratio                   # target: <= 1.5 with agentmesh's controls
report.failure_to_expected_ratio_controls_off      # the same workflow, unprotected
```

Three scenarios are priced (`SCENARIOS`): *expected* (inputs like the test set),
*edge* (10% unusual inputs whose first model answers fail a gate or schema and
are retried) and *failure* (15% of tool call attempts fail, one model endpoint
stays down). Each runs with the controls on (`CONTROLS_ON`) and off
(`CONTROLS_OFF`). Costs are simulated: model-backed agents are answered over
real HTTP by a local OpenAI-compatible server with scripted answers (their
fallbacks' answers), metered at real token counts and real prices.
"""

from __future__ import annotations

from agentmesh.costmodel._faults import FlakyToolGateway
from agentmesh.costmodel._report import CostReport, ModeResult, ScenarioResult
from agentmesh.costmodel._responder import CallMeter, ScriptedResponder
from agentmesh.costmodel._scenarios import EDGE, EXPECTED, FAILURE, SCENARIOS, Scenario
from agentmesh.costmodel._simulate import CostModelConfig, simulate_costs
from agentmesh.costmodel._variants import (
    CONTROLS_OFF,
    CONTROLS_ON,
    NEVER_OPENS,
    Protection,
    map_agents,
    model_agents,
    unprotected,
    with_model,
)

__all__ = [
    # simulating
    "CostModelConfig",
    "simulate_costs",
    # scenarios
    "EDGE",
    "EXPECTED",
    "FAILURE",
    "SCENARIOS",
    "Scenario",
    # protection modes
    "CONTROLS_OFF",
    "CONTROLS_ON",
    "NEVER_OPENS",
    "Protection",
    "map_agents",
    "model_agents",
    "unprotected",
    "with_model",
    # results
    "CostReport",
    "ModeResult",
    "ScenarioResult",
    # building blocks
    "CallMeter",
    "FlakyToolGateway",
    "ScriptedResponder",
]
