"""What one run of a sweep costs, estimated from its scenario before anything runs.

A sweep uses the estimate to choose between running serially and starting workers
(``executor="auto"``), to size dask tasks and to decide how a cold process warms up
before it forks. It counts the events of :func:`mmsim.budget.estimate` by kind, since a
compiled fast-path run (:func:`mmsim.hotloop.fast_path_enabled`) pays very different
prices for them: news ticks, noise orders and dealer checks are a fraction of a
microsecond each in the kernel, a customer's option trade is booked in Python (tables
refreshed), and the recorder's samples and the levels cost little beside the run's
fixed part (building it, its metrics). The simpy agents pay about the same per event.

Coefficients: least squares (relative error) over the shipped scenarios at 0.25 and 1
day, warm process, ``tables=False`` as a sweep runs them, CPU time. The fast-path
estimate is within 0.45-1.5x of the measured CPU for all of them but two: ``pinning``
(0.3x) and the SPX chain day (0.43x: a chain book's customer trades cost about 0.8 ms
each, not 0.3). The event count alone (4 us per event, 8 ms a run, the rule before)
read 5-45x too high for fast-path runs (band_sweep: 0.059 s a run for 0.011 s measured).
"""

from __future__ import annotations

from mmsim.budget import Estimate, estimate
from mmsim.schema import Scenario

__all__ = ["run_seconds"]

FAST_FIXED = 6.5e-3
"""CPU seconds of a fast-path run besides its events (building it, its metrics)."""
KERNEL_EVENT = 2.0e-7
"""CPU seconds per news tick, noise order or dealer check in the compiled kernel."""
CUSTOMER_TRADE = 3.0e-4
"""CPU seconds per customer option trade on the fast path (a small book; a chain of
thousands of lines about 8e-4)."""
PENSION_ORDER = 2.0e-5
"""CPU seconds per pension child order on the fast path."""
SIMPY_FIXED = 8.0e-3
"""CPU seconds of a simpy-path run besides its events."""
SIMPY_EVENT = 4.0e-6
"""CPU seconds per event of :func:`mmsim.budget.estimate` on the simpy path (runs with
price-triggered dealers that rehedge often take up to 3x more)."""

_KERNEL_DRIVERS = ("news.dt", "noise.rate", "dealers[")


def run_seconds(scenario: Scenario, est: Estimate | None = None) -> float:
    """Estimated CPU seconds of one run of ``scenario`` in a sweep (see the module
    docstring); ``est``: its :func:`mmsim.budget.estimate`, if already made."""
    from mmsim.hotloop import fast_path_enabled  # the kernels' module: loaded by runs anyway

    est = est if est is not None else estimate(scenario)
    if not fast_path_enabled(scenario):
        return SIMPY_FIXED + SIMPY_EVENT * est.events
    cost = FAST_FIXED
    for field, n, _ in est.drivers:
        if field.startswith(_KERNEL_DRIVERS):
            cost += KERNEL_EVENT * n
        elif field.startswith("customers["):
            cost += CUSTOMER_TRADE * n
        elif field.startswith("pensions["):
            cost += PENSION_ORDER * n
    return cost
