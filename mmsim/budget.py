"""How big a run will be, estimated from its scenario before it starts.

A validated scenario can still ask for a run that never finishes or exhausts memory
(``clock.days: 1e6``, ``record.every: 1e-6``, ``noise.rate: 1e40``). :func:`estimate`
counts the events a run schedules and the rows it records, from rates and intervals
alone (expected values: Poisson arrivals at their rate), and :func:`check` refuses a
run above a limit with one line naming the field that drives the estimate.

Counts (``T`` the run length in seconds):

- news ticks ``T / news.dt``; noise orders ``noise.rate * T``; customer trades
  ``rate * T`` per segment; pension child orders ``duration / child_interval``;
  scheduled dealer checks ``T / interval``; series samples ``T / record.every``;
  level computations ``T / record.levels_every`` (each revalues the book on a
  2 x 241-point spot grid: counted as 500 events); realized-vol updates
  ``T / vol.follow_realized.every``.
- price-triggered dealers check after every price change: (news ticks + orders) each.

Memory (bytes, an upper estimate: pandas and numpy buffers at about 3x their raw size):
8 bytes per cell of the series (``23 + 8 * dealers`` columns per sample), the trade log
(8 columns; at most one hedge per dealer check) and the option trade log (10 columns).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from mmsim.errors import BudgetError
from mmsim.schema import Scenario

__all__ = ["DEFAULT_MAX_EVENTS", "Estimate", "check", "default_max_memory", "estimate"]

DEFAULT_MAX_EVENTS = 5.0e8
"""Events per run refused by default (about half an hour at ~4 us per event)."""

LEVELS_COST = 500.0
"""Events one flip/walls computation is worth (2 x 241 spot points of the book)."""

OVERHEAD = 3.0
"""Peak memory of a table over its raw cells (building, copying, writing parquet)."""


def default_max_memory() -> float:
    """Half the machine's physical memory, at most 16 GiB; bytes."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        physical = 8 << 30
    return float(min(physical / 2, 16 << 30))


@dataclass(frozen=True)
class Estimate:
    """Expected size of one run.

    Attributes
    ----------
    events : events the run schedules (ticks, orders, checks, samples), count.
    memory : peak bytes of its recorded tables, estimated.
    drivers : ``(field, events, what)`` per contributor, largest first.
    memory_driver : the field that drives ``memory``.
    """

    events: float
    memory: float
    drivers: list[tuple[str, float, str]]
    memory_driver: str


def estimate(scenario: Scenario) -> Estimate:
    """Events and memory of a run of ``scenario`` (see the module docstring)."""
    sc = scenario
    T = sc.clock.duration
    drivers: list[tuple[str, float, str]] = []
    price_events = 0.0
    if sc.news is not None:
        n = T / sc.news.dt
        drivers.append(("news.dt", n, f"news ticks every {sc.news.dt:g} s"))
        price_events += n
    if sc.noise is not None:
        n = sc.noise.rate * T
        drivers.append(("noise.rate", n, f"noise orders at {sc.noise.rate:g}/s"))
        price_events += n
    customer_trades = 0.0
    for i, c in enumerate(sc.customers):
        n = c.rate * T
        customer_trades += n
        drivers.append((f"customers[{i}].rate", n, f"option trades at {c.rate:g}/s"))
    pension_orders = 0.0
    for i, p in enumerate(sc.pensions):
        n = p.duration / p.child_interval
        pension_orders += n
        drivers.append((f"pensions[{i}].child_interval", n, "child orders"))
    price_events += pension_orders + customer_trades
    checks = 0.0
    for i, d in enumerate(sc.dealers):
        if d.trigger == "schedule":
            n = T / d.interval
            drivers.append((f"dealers[{i}].interval", n, f"checks every {d.interval:g} s"))
        else:
            n = price_events
            drivers.append((f"dealers[{i}].trigger", n, "checks after every price change"))
        checks += n
    samples = T / sc.record.every
    drivers.append(("record.every", samples, f"samples every {sc.record.every:g} s"))
    if sc.dealers or sc.customers:
        n = T / sc.record.levels_every * LEVELS_COST
        drivers.append(("record.levels_every", n, "flip and wall computations"))
    if sc.vol.follow_realized is not None:
        every = sc.vol.follow_realized.every
        drivers.append(("vol.follow_realized.every", T / every, "realized-vol updates"))
    drivers.sort(key=lambda d: -d[1])
    events = math.fsum(n for _, n, _ in drivers) + len(sc.events)
    orders = price_events + checks
    cells: dict[str, float] = {"record.every": samples * (23 + 8 * len(sc.dealers))}
    order_driver = next((d[0] for d in drivers if not d[0].endswith(".trigger")), "clock.days")
    cells[order_driver] = cells.get(order_driver, 0.0) + orders * 8
    cells["customers"] = cells.get("customers", 0.0) + customer_trades * 10
    memory = 8.0 * OVERHEAD * math.fsum(cells.values())
    memory_driver = max(cells, key=lambda k: cells[k])
    return Estimate(events, memory, drivers, memory_driver)


def check(
    scenario: Scenario,
    *,
    max_events: float | None = None,
    max_memory: float | None = None,
    source: str = "",
) -> Estimate:
    """Refuse a run whose estimate exceeds ``max_events`` (default
    :data:`DEFAULT_MAX_EVENTS`) or ``max_memory`` bytes (default
    :func:`default_max_memory`) with a one-line :class:`~mmsim.errors.BudgetError`
    naming ``source``, the field that drives the estimate, and both numbers."""
    est = estimate(scenario)
    max_events = DEFAULT_MAX_EVENTS if max_events is None else max_events
    max_memory = default_max_memory() if max_memory is None else max_memory
    days = scenario.clock.days
    where = f"{source}: " if source else ""
    if not est.events <= max_events:
        # the field to change: the run length when a day alone fits, else the largest
        # source of events (dealer checks follow from the price changes that drive them)
        own = [d for d in est.drivers if not d[0].endswith(".trigger")] or est.drivers
        field, n, what = own[0]
        if est.events / max(days, 1.0) <= max_events:
            field = "clock.days"
        raise BudgetError(
            f"{where}{field}: the run would need about {est.events:.3g} events over "
            f"{days:g} day(s) (largest part: {n:.3g} {what}), above the limit of "
            f"{max_events:.3g} (--max-events)"
        )
    if not est.memory <= max_memory:
        raise BudgetError(
            f"{where}{est.memory_driver}: the run would need about {est.memory / 2**30:.3g} GiB "
            f"of memory over {days:g} day(s), above the limit of {max_memory / 2**30:.3g} GiB "
            f"(--max-memory)"
        )
    return est
