"""``benchmarks.days``, the per-day breakdown of a long ``multi_dealer_bands`` run (issue
11, target 3): its rows are the run's days, its parts nest in their day, its counts are
the book's work of that day, and ``--steady`` moves every expiry past a 20-day run."""

from __future__ import annotations

import pytest

from benchmarks import cases, days
from mmsim.scenario import load_scenario

SCENARIO = cases.SCENARIOS / "multi_dealer_bands.yaml"


def test_steady_moves_every_listed_expiry_and_position_past_a_20_day_run():
    """Every customer expiry and every dealer position of the shipped scenario is at 40
    sessions or more under ``STEADY`` (a position or segment added to the scenario and
    not to ``STEADY`` fails here), so no day of a 20-day control nears an expiry."""
    shipped = load_scenario(SCENARIO)
    sc = load_scenario(SCENARIO, overrides={**cases.DAYS_OVERRIDES, **days.STEADY})
    listed = [e for c in sc.customers for e in c.expiry_days]
    held = [p.expiry_days for d in sc.dealers for p in d.positions]
    assert len(held) == sum(len(d.positions) for d in shipped.dealers)
    shipped_listed = [e for c in shipped.customers for e in c.expiry_days]
    assert min(shipped_listed) < 20.0, "the shipped scenario has an expiry within 20 days"
    assert min(listed + held) >= 40.0, f"an expiry within 40 sessions: {listed}, {held}"


@pytest.fixture(scope="module")
def report() -> dict:
    return days.per_day(1.5, 1, 1, dict(cases.DAYS_OVERRIDES))


def test_rows_are_the_runs_days_with_the_book_work_of_each(report):
    """A 1.5-day run has two rows (its end instant counts on its last day). Day 1 starts
    with 4 lines, under the book's ``table_min_lines`` (64): holders are summed line by
    line at samples (exact holder-samples) and only later in the day tabulated; day 2 is
    tabulated all day: no exact holder-sample, a customer trade folded into its holder's
    table at booking (folds, one per trade of a tabulated holder) and tables built."""
    rows = report["days"]
    assert [r["day"] for r in rows] == [1, 2], "one row per simulated day"
    first, second = rows
    assert first["xs"] > 0 and first["nb"] > 0, "day 1: exact samples, then the first tables"
    assert second["xs"] == 0, f"day 2 is tabulated: {second['xs']} exact holder-samples"
    assert second["nf"] > first["nf"] > 0, "folds: day 2 (all day tabulated) over day 1"
    assert second["nb"] > 0, "tables are built or rolled on day 2"


def test_parts_nest_inside_their_day(report):
    """Inclusive CPU of nested wrappers: the exact holders inside the greeks, inside the
    sampler; folds inside the customer trades; the kernel, the sampler and the customer
    trades inside the day's simpy steps (1 ms of process-clock slack)."""
    for r in report["days"]:
        assert r["exact holders"] <= r["greeks"] <= r["sampler"] + 1e-3, r
        assert r["flips"] <= r["levels"] <= r["sampler"] + 1e-3, r
        assert r["folds"] <= r["customers"] + 1e-3, r
        assert r["kernel"] + r["sampler"] + r["customers"] <= r["total"] + 1e-3, r
    assert sum(r["total"] for r in report["days"]) <= report["total"] + 1e-3
