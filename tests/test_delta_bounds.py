"""Proven delta bounds (:func:`mmsim.delta_bounds.delta_box`) and the fast path's skipped
checks built on them.

The bound must hold at every point of its box, as the kernels compute the delta (else a
skipped check could have traded and the fast path would leave the simpy run); it must
also be tight (else checks are evaluated for nothing). The fast path skipping checks
must stay bit-identical to the simpy agents at any band, near expiry, with rates and
dividends, with a skew, and for a tabulated dealer whose near-expiry lines are summed
exactly beside its table (its window bounds those lines; the table is read at the check).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmsim import fastpath as fp
from mmsim.book_kernels import N_ROWS, holder_sum
from mmsim.delta_bounds import MIN_STDEV, delta_box
from mmsim.engine import Simulation
from mmsim.scenario import load_scenario

YEAR = 252 * 23_400.0  # s
DAY = 23_400.0


def _lines(rng, n, sign=None):
    """``n`` random lines: strikes 70-130 $, expiries 0.02-300 days, calls and puts,
    units of either sign (or ``sign``), iv offsets."""
    lines = np.zeros((N_ROWS, n))
    lines[0] = rng.uniform(70.0, 130.0, n)
    lines[1] = DAY * np.exp(rng.uniform(np.log(0.02), np.log(300.0), n))
    lines[2] = rng.random(n) < 0.5
    units = rng.uniform(1e3, 2e5, n)
    lines[3] = units * (sign if sign is not None else rng.choice([-1.0, 1.0], n))
    lines[6] = rng.uniform(-0.05, 0.05, n)
    return lines


def _extremes(lines, a, b, t0, t1, level, floor, r, q):
    """Least and greatest delta ``holder_sum`` computes over a grid of the box (both
    ends of each side, 41 spots x 41 clocks, plus each line's stationary clock of d1)."""
    n = lines.shape[1]
    out = np.zeros((5, 1))
    times = list(np.linspace(t0, t1, 41))
    for i in range(n):  # the clock where d1 = A / s + B s turns, per line and spot end
        sigma = max(max(level, floor) + lines[6, i], floor)
        B = (r - q) / sigma + 0.5 * sigma
        for S in (a, b):
            A = math.log(S / lines[0, i]) / sigma
            if A * B > 0.0:
                t = lines[1, i] - (A / B) * YEAR
                if t0 < t < t1:
                    times.append(t)
    lo, hi = math.inf, -math.inf
    for S in np.linspace(a, b, 41):
        for t in times:
            d, _ = holder_sum(S, t, YEAR, lines, n, level, 0.0, floor, r, q, out)
            lo, hi = min(lo, d), max(hi, d)
    return lo, hi


@pytest.mark.parametrize("seed", range(6))
def test_the_box_bounds_every_delta_in_it_and_is_tight_for_one_line(seed):
    """Random books (1 line, 1-sign and mixed 8 lines), boxes of 0.01-5% of spot and
    1-3,000 s, rates and dividends of -5% to 10%: every delta on a 41 x 41 grid (and at
    d1's turning clocks) lies within the bound. For one line the bound is attained up to
    1e-8 of its units (the margin is 1e-9; plus the discount factor's spread with a
    dividend, bounded apart from d1): a looser bound fails here."""
    rng = np.random.default_rng(seed)
    checked = 0
    for trial in range(40):
        kind = trial % 3
        lines = _lines(rng, 1 if kind == 0 else 8, sign=1.0 if kind == 1 else None)
        S0 = rng.uniform(80.0, 120.0)
        a = S0 * (1.0 - rng.uniform(1e-4, 0.05))
        b = S0 * (1.0 + rng.uniform(1e-4, 0.05))
        t0 = rng.uniform(0.0, 0.01 * DAY)
        t1 = t0 + rng.uniform(1.0, 3000.0)
        level, floor = rng.uniform(0.05, 0.6), 0.01
        r, q = rng.uniform(-0.05, 0.1), rng.uniform(-0.05, 0.1)
        args = (YEAR, lines, lines.shape[1], level, 0.0, floor, r, q)
        ok, lo, hi = delta_box(a, b, t0, t1, *args)
        if not ok:  # a line expiring in the box or too close to expiry: checked below
            continue
        checked += 1
        got_lo, got_hi = _extremes(lines, a, b, t0, t1, level, floor, r, q)
        assert lo <= got_lo and got_hi <= hi, (
            f"seed {seed} trial {trial}: delta {got_lo}..{got_hi} outside {lo}..{hi}"
        )
        if kind == 0:  # + the discount factor's spread over the clocks (bounded apart)
            tol = (1e-8 + abs(q) * (t1 - t0) / YEAR) * abs(lines[3, 0])
            assert got_lo - lo <= tol and hi - got_hi <= tol, (
                f"one line, bound not tight within 1e-8 of units: {lo}..{hi} vs {got_lo}..{got_hi}"
            )
    assert checked >= 15, f"{checked} of 40 random boxes boundable (lines live past t1)"


def _skewed_extremes(lines, a, b, t0, t1, level, skew, floor, r, q):
    """Least and greatest delta ``holder_sum`` computes on a skewed surface over 61 spots
    x 31 clocks of the box, plus each line's stationary clock of d1 at every spot (its
    vol there fixed: ``d1 = A / s + B s`` in ``s = sqrt(T)``)."""
    n = lines.shape[1]
    out = np.zeros((5, 1))
    lo, hi = math.inf, -math.inf
    for S in np.linspace(a, b, 61):
        times = list(np.linspace(t0, t1, 31))
        for i in range(n):
            iv = max(level + skew * math.log(lines[0, i] / S), floor)
            sigma = max(iv + lines[6, i], floor)
            B = (r - q) / sigma + 0.5 * sigma
            A = math.log(S / lines[0, i]) / sigma
            if A * B > 0.0:
                t = lines[1, i] - (A / B) * YEAR
                if t0 < t < t1:
                    times.append(t)
        for t in times:
            d, _ = holder_sum(S, t, YEAR, lines, n, level, skew, floor, r, q, out)
            lo, hi = min(lo, d), max(hi, d)
    return lo, hi


@pytest.mark.parametrize("seed", range(4))
def test_a_skewed_box_bounds_every_delta_near_expiry_and_is_tight(seed):
    """Skewed surfaces (skew -0.6 to +0.6, some lines' vol at the floor), books near
    expiry (lines 0.005-3 days out: a fast path's near lines; 1 line, 1-sign and mixed 6
    lines), boxes of 0.005-1% of spot and 1-600 s, rates and dividends: every delta
    ``holder_sum`` computes on a 61 x 31 grid of the box (and at d1's turning clocks) is
    within the bound; a skip decided on a bound that misses one would skip a check that
    trades. For one line the bound's spread is within 1.5x the sampled spread plus 1e-7
    of its units (the interval arithmetic's loss over a box this small): a looser bound
    skips nothing and fails here."""
    rng = np.random.default_rng(100 + seed)
    checked = 0
    for trial in range(40):
        kind = trial % 3
        lines = _lines(rng, 1 if kind == 0 else 6, sign=1.0 if kind == 1 else None)
        lines[1] = DAY * np.exp(rng.uniform(np.log(0.005), np.log(3.0), lines.shape[1]))
        S0 = rng.uniform(90.0, 110.0)
        a = S0 * (1.0 - rng.uniform(5e-5, 0.01))
        b = S0 * (1.0 + rng.uniform(5e-5, 0.01))
        t0 = rng.uniform(0.0, 0.002 * DAY)
        t1 = t0 + rng.uniform(1.0, 600.0)
        skew = rng.uniform(-0.6, 0.6)
        level = rng.uniform(0.08, 0.4)
        floor = 0.12 if trial % 4 == 0 else 0.01  # some lines clamped at the floor
        r, q = rng.uniform(-0.02, 0.08), rng.uniform(-0.02, 0.08)
        ok, lo, hi = delta_box(a, b, t0, t1, YEAR, lines, lines.shape[1], level, skew, floor, r, q)
        if not ok:
            continue
        checked += 1
        got_lo, got_hi = _skewed_extremes(lines, a, b, t0, t1, level, skew, floor, r, q)
        assert lo <= got_lo and got_hi <= hi, (
            f"seed {seed} trial {trial} skew {skew:.3f}: delta {got_lo}..{got_hi} outside "
            f"the bound {lo}..{hi}"
        )
        if kind == 0:
            slack = 1.5 * (got_hi - got_lo) + 1e-7 * abs(lines[3, 0])
            assert hi - lo <= slack, (
                f"one line, skew {skew:.3f}: bound {lo}..{hi} looser than 1.5x the sampled "
                f"{got_lo}..{got_hi} + 1e-7 of its units"
            )
    assert checked >= 20, f"{checked} of 40 random skewed boxes boundable (none expiring)"


def test_no_bound_where_none_holds():
    """A line expiring inside the box, sigma * sqrt(T) under MIN_STDEV (1e-4; near
    expiry or zero vol, flat or skewed), an empty or reversed box: not ok. Expired lines
    and lines of zero units are left out, as the kernels leave them."""
    lines = np.zeros((N_ROWS, 1))
    lines[:4, 0] = 100.0, 10 * DAY, 1.0, 1e5
    base = (99.0, 101.0, 0.0, 100.0, YEAR, lines, 1, 0.2, 0.0, 0.01, 0.0, 0.0)
    assert delta_box(*base)[0], "a plain box is bounded"
    skewed = (*base[:8], -0.1, *base[9:])
    assert delta_box(*skewed)[0], "a skewed box is bounded"
    for i, v in ((2, 500.0), (0, -1.0), (3, -1.0)):  # reversed, S <= 0, t
        args = list(base)
        args[i] = v
        assert not delta_box(*args)[0], f"argument {i} = {v}: no bound"
    expiring = (*base[:3], 10 * DAY, *base[4:])
    assert not delta_box(*expiring)[0], "a line expiring at the box's end: no bound"
    t_tiny = 10 * DAY - (MIN_STDEV / 0.2) ** 2 * YEAR * 0.5  # sigma sqrt(T) = 0.7e-4
    assert not delta_box(99.0, 101.0, 0.0, t_tiny, *base[4:])[0], "near expiry: no bound"
    assert not delta_box(99.0, 101.0, 0.0, t_tiny, *skewed[4:])[0], "skewed near expiry"
    zero_vol = (*base[:7], 0.0, 0.0, 0.0, *base[10:])
    assert not delta_box(*zero_vol)[0], "zero vol: no bound"
    gone = (*base[:2], 10 * DAY, 10 * DAY + 5.0, *base[4:])
    assert delta_box(*gone) == (True, 0.0, 0.0), "an expired line adds nothing"


BASE = {
    "clock": {"days": 0.1},
    "market": {"S0": 100.0, "impact": {"model": "linear", "lam": 1.0e-4}, "half_spread": 0.005},
    "vol": {"atm": 0.20},
    "news": {"vol": 0.16, "dt": 1.0},
    "noise": {"rate": 0.05, "mean_size": 100},
}


def _pos(qty, expiry_days=252.0, kind="call", strike=100.0):
    return {"type": kind, "strike": strike, "expiry_days": expiry_days, "qty": qty}


SKIP_CASES = {
    # long gamma at non-shipped bands (0 and 1: windows too thin to be set)
    "band0": ([{"band": 0, "positions": [_pos(2000)]}], {}),
    "band1": ([{"band": 1, "positions": [_pos(2000)]}], {}),
    "band7_short": ([{"band": 7, "positions": [_pos(-1200)]}], {}),
    "band50": ([{"band": 50, "positions": [_pos(2000)]}], {}),
    "band3000": ([{"band": 3000, "positions": [_pos(2000)]}], {}),
    # a long 0DTE strangle expiring mid-run (1,400 s): windows shrink to nothing near expiry
    "near_expiry": (
        [{"band": 20, "positions": [_pos(300, 0.06), _pos(300, 0.06, "put", 100.5)]}],
        {},
    ),
    # mixed lines, rates and dividends, two dealers (one per-notional)
    "mixed_rates": (
        [
            {"band": 40, "positions": [_pos(1500, 30), _pos(-900, 5, "put", 97.0)]},
            {"band": 2e7, "band_unit": "per_notional", "positions": [_pos(-700, 60, "put")]},
        ],
        {"market": {**BASE["market"], "r": 0.08, "q": 0.03}},
    ),
    # a skew: the vol moves with spot, the windows bound it
    "skew": ([{"band": 50, "positions": [_pos(2000)]}], {"vol": {"atm": 0.2, "skew": -0.2}}),
    # a tabulated dealer on a skewed surface: 40 far lines in its table, a strangle 0.3
    # days out (near expiry: summed exactly beside it); windows bound the strangle and
    # read the table at each check
    "skew_table_near": (
        [
            {
                "band": 250,
                "positions": [
                    *(
                        _pos(q, 20 + i % 5, k, 90.0 + i)
                        for i, (q, k) in enumerate(
                            [(60, "call"), (-50, "put"), (40, "put"), (-30, "call")] * 10
                        )
                    ),
                    _pos(40, 0.3),
                    _pos(-30, 0.3, "put", 99.0),
                ],
            }
        ],
        {"vol": {"atm": 0.2, "skew": 0.3}, "engine": {"delta_table": "on"}},
    ),
    # tabulated dealers with no line beside the table (all far from expiry): WIN_TABLE
    # windows bound the table's own delta (mmsim.table_bounds), long and short gamma
    "table_alone": (
        [
            {
                "band": 100,
                "positions": [
                    _pos(q, 20 + 7 * (i % 9), k, 88.0 + 0.6 * i)
                    for i, (q, k) in enumerate([(70, "call"), (-40, "put"), (50, "put")] * 14)
                ],
            }
        ],
        {"vol": {"atm": 0.2, "skew": -0.15}, "engine": {"delta_table": "on"}},
    ),
    "table_alone_short": (
        [
            {
                "band": 60,
                "positions": [
                    _pos(-q, 10 + 11 * (i % 7), k, 92.0 + 0.4 * i)
                    for i, (q, k) in enumerate([(40, "call"), (30, "put")] * 20)
                ],
            }
        ],
        {
            "market": {**BASE["market"], "r": 0.05, "q": 0.02},
            "engine": {"delta_table": "on"},
        },
    ),
}


@pytest.mark.parametrize("case", sorted(SKIP_CASES))
def test_skipped_checks_keep_the_fast_path_bit_identical(case):
    """0.1-day runs, seeds 0-3: series, trades, ledger and metrics equal the simpy
    agents' exactly while the kernel skips checks in its windows (most of them at bands
    50 and 3,000; with a skew too, and beside a delta table)."""
    dealers, extra = SKIP_CASES[case]
    skipped = hedges = ticks = 0
    for seed in range(4):
        ds = [{"name": f"d{i}", "trigger": "price", **d} for i, d in enumerate(dealers)]
        data = {**BASE, **extra, "seed": seed, "dealers": ds}
        runs = []
        for mode in ("off", "on"):
            engine = {**data.get("engine", {}), "fast_path": mode}
            sim = Simulation(load_scenario({**data, "engine": engine}), seed)
            runs.append((sim.run(), sim))
        (off, _), (on, sim_on) = runs
        for name in ("series", "trades", "accounts"):
            a, b = getattr(off, name), getattr(on, name)
            assert a.equals(b), f"{case} seed {seed}: {name} differ between the paths"
        assert off.metrics.keys() == on.metrics.keys()
        assert all(
            x == on.metrics[k] or (np.isnan(x) and np.isnan(on.metrics[k]))
            for k, x in off.metrics.items()
        ), f"{case} seed {seed}: metrics differ"
        skipped += sim_on.hot.skipped_checks
        hedges += int((on.trades["kind"] == "dealer").sum())
        ticks += 2340
    if case in ("band50", "band3000"):
        assert skipped > 0.6 * ticks, f"{case}: {skipped} checks skipped of ~{ticks}"
    if case == "skew_table_near":
        assert sim_on.hot.dl[0, fp.D_TMODE] == fp.TM_TABLE and sim_on.hot.dl[0, fp.D_NN] == 2, (
            "the dealer reads its table, its strangle beside it (near expiry)"
        )
    if case in ("table_alone", "table_alone_short"):
        row = sim_on.hot.dl[0]
        assert row[fp.D_TMODE] == fp.TM_TABLE and row[fp.D_NN] == row[fp.D_NN + 2] == 0, (
            "the dealer reads its table alone (no near or changed lines beside it)"
        )
        least = 0.5 if case == "table_alone" else 0.2  # short gamma: thinner windows
        assert skipped > least * ticks, f"{case}: table windows skipped {skipped} of ~{ticks}"
    if case in ("near_expiry", "mixed_rates", "band7_short", "skew", "skew_table_near"):
        assert skipped > 0.1 * ticks, f"{case}: windows were set ({skipped} skipped)"
    if case != "band3000":
        assert hedges > 40, f"{case}: the dealers hedged ({hedges} fills): a real test"
