"""mmsim: an agent-based simulator of how options dealers' delta hedging moves the underlying.

Public API (DESIGN.md section 3)::

    scenario = mmsim.load_scenario("scenarios/long_vs_short_gamma.yaml")
    result = mmsim.run(scenario, seed=7, overrides={"dealers.0.band": 2000})
    result.series, result.trades, result.metrics["realized_vol"]
    result.save("runs/x"); mmsim.load_result("runs/x")
"""

from mmsim import greeks
from mmsim.chains import book_from_chain
from mmsim.engine import run
from mmsim.errors import InstabilityError, ResultError, ScenarioError, SimulationError
from mmsim.result import Result, load_result
from mmsim.scenario import load_scenario
from mmsim.schema import Scenario
from mmsim.sweep import sweep

__version__ = "0.1.0"

__all__ = [
    "InstabilityError",
    "Result",
    "ResultError",
    "Scenario",
    "ScenarioError",
    "SimulationError",
    "__version__",
    "book_from_chain",
    "greeks",
    "load_result",
    "load_scenario",
    "run",
    "sweep",
]
