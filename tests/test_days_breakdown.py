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


def test_work_counts_add_up_to_the_runs(report):
    """The per-day rehedges and trade-log rows sum to the run's own totals at its end
    (every dealer's ``n_rehedges``, the trade log's rows): no day's work is lost or
    counted twice."""
    rows = report["days"]
    assert all(r["reh"] >= 0 and r["trades"] > 0 for r in rows), rows
    assert sum(r["reh"] for r in rows) == report["run_rehedges"]
    assert sum(r["trades"] for r in rows) == report["run_trades"]


def _rows(n: int, near: set[int]) -> list[dict]:
    """Synthetic per-day rows: the kernel 10 ms + 0.5 us per rehedge, rehedges growing
    1,000 a day, the rest of the day 100 ms, and 80 ms more on the ``near`` days."""
    rows = []
    for d in range(1, n + 1):
        reh = 1_000.0 * d
        kernel = 0.010 + 0.5e-6 * reh
        near_day = d in near
        rows.append({"day": d, "reh": reh, "kernel": kernel,
                     "total": kernel + 0.100 + (0.080 if near_day else 0.0),
                     "xs": 50.0 if near_day else 0.0, "near": 0.0})  # fmt: skip
    return rows


def test_attribution_finds_the_cost_per_rehedge_and_the_growth_each_part_adds():
    """On synthetic days whose kernel costs 10 ms + 0.5 us per rehedge and whose days
    near an expiry cost 80 ms more: the fit over the calm days gives 10 ms and 0.5 us
    (within 1e-9), the exponent measured is over 1, at day 1's rehedges it is lower but
    still over 1 (the near days), and without the near days it is 1 (within 1e-9): every
    day then costs what day 1 costs."""
    att = days.attribution(_rows(20, near={4, 5, 19, 20}))
    ms, us, r2 = att["kernel"]
    assert abs(ms - 10.0) < 1e-9 and abs(us - 0.5) < 1e-9 and r2 > 1 - 1e-12, att
    e = att["exponents"]
    assert e["measured"] > e["rehedges"] > 1.0 + 1e-3, e
    assert abs(e["expiries"] - 1.0) < 1e-9, e
    assert days.attribution(_rows(3, near=set())) is None, "too short to fit 1, 5, 20 days"


def test_excess_splits_the_growth_over_the_one_day_run_by_part_and_kind_of_day():
    """``excess`` of synthetic days against a 1-day run's day: each part's excess is the
    sum over the run's days of its CPU less the 1-day day's, split into kinds of day that
    partition the days (near an expiry: exact holder-samples or near lines; short tables:
    over 1.5x the 1-day builds; calm: the rest), ``other`` the total less the top parts;
    work counts summed; per-unit costs the parts' CPU over their counts."""
    one = {"day": 1, "total": 0.100, "kernel": 0.020, "sampler": 0.040, "customers": 0.010,
           "folds": 0.005, "builds": 0.004, "xs": 10.0, "near": 0.0, "nb": 10.0, "nf": 100.0,
           "reh": 100.0, "trades": 1_000.0, "changes": 0.0}  # fmt: skip
    rows = []
    for d in range(1, 11):
        near, short = d in (4, 5), d in (8, 9)
        rows.append({**one, "day": d, "xs": 10.0 if d == 1 else 0.0,
                     "near": 20.0 if near else 0.0, "nb": 30.0 if short else 10.0,
                     "nf": 300.0, "folds": 0.009, "customers": 0.015,
                     "sampler": 0.040 + (0.030 if near else 0.0),
                     "total": 0.106 + (0.030 if near else 0.0) + (0.001 if short else 0.0),
                     })  # fmt: skip
    ex = days.excess(one, rows)
    g = ex["days"]
    assert g["near"] == [4, 5] and g["tables"] == [8, 9] and g["calm"] == [2, 3, 6, 7, 10]
    assert (
        sorted(g["day 1"] + g["near"] + g["tables"] + g["calm"]) == g["all"] == list(range(1, 11))
    )
    p = ex["parts"]
    assert abs(p["total"]["all"] - (10 * 0.006 + 2 * 0.030 + 2 * 0.001)) < 1e-12, p["total"]
    assert abs(p["sampler"]["near"] - 2 * 0.030) < 1e-12 and abs(p["sampler"]["calm"]) < 1e-12
    assert abs(p["folds"]["all"] - 10 * 0.004) < 1e-12, p["folds"]
    # other = total - kernel - sampler - customers - builds: 0.001 a day more, +0.001 short
    assert abs(p["other"]["all"] - (10 * 0.001 + 2 * 0.001)) < 1e-12, p["other"]
    for label, by in p.items():
        split = sum(by[k] for k in ("day 1", "near", "tables", "calm"))
        assert abs(split - by["all"]) < 1e-12, (label, by)
    assert ex["work"]["nf"] == 3_000 and ex["days x"]["nf"] == 1_000
    assert (
        abs(ex["unit"]["fold"] - 0.009 / 300) < 1e-15
        and abs(ex["unit"]["build"] - 10 * 0.004 / (8 * 10 + 2 * 30)) < 1e-15
    )
