"""mmsim: an agent-based simulator of how options dealers' delta hedging moves the underlying.

Public API (DESIGN.md section 3)::

    scenario = mmsim.load_scenario("scenarios/long_vs_short_gamma.yaml")
    result = mmsim.run(scenario, seed=7, overrides={"dealers.0.band": 2000})
    result.series, result.trades, result.metrics["realized_vol"]
    result.save("runs/x"); mmsim.load_result("runs/x")

Names are imported on first use (PEP 562), so ``import mmsim`` and ``mmsim --help``
do not pay for numba, pandas or pydantic until something needs them.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import TYPE_CHECKING, Any

from mmsim.errors import (
    BudgetError,
    ClusterLostError,
    InstabilityError,
    OutputError,
    ResultError,
    ScenarioError,
    SimulationError,
)

if TYPE_CHECKING:
    from mmsim import greeks
    from mmsim.chains import book_from_chain
    from mmsim.engine import run
    from mmsim.result import Result, load_result
    from mmsim.scenario import load_scenario
    from mmsim.schema import Scenario
    from mmsim.sweep import sweep

__version__ = "0.1.0"

_LAZY = {
    "book_from_chain": ("mmsim.chains", "book_from_chain"),
    "greeks": ("mmsim.greeks", None),
    "run": ("mmsim.engine", "run"),
    "Result": ("mmsim.result", "Result"),
    "load_result": ("mmsim.result", "load_result"),
    "load_scenario": ("mmsim.scenario", "load_scenario"),
    "Scenario": ("mmsim.schema", "Scenario"),
    "sweep": ("mmsim.sweep", "sweep"),
}

__all__ = [
    "BudgetError",
    "ClusterLostError",
    "InstabilityError",
    "OutputError",
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


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        if importlib.util.find_spec(f"mmsim.{name}") is None:  # e.g. mmsim.engine
            raise AttributeError(f"module 'mmsim' has no attribute {name!r}")
        return importlib.import_module(f"mmsim.{name}")
    module, attr = _LAZY[name]
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """Keeps ``mmsim.sweep`` the function when the submodule of the same name is imported
    (the import system then sets the package attribute to the module), as the eager
    ``from mmsim.sweep import sweep`` used to."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "sweep" and isinstance(value, types.ModuleType):
            value = value.sweep
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
