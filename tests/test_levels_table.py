"""``engine.levels_hold: table``: the flips and the GEX at the walls read from the profile
table (:mod:`mmsim.profile_table`), within stated bounds of the exact levels.

- a flip's crossing interpolated from the table's values is within ``FLIP_TOL`` of a grid
  step of the exact values' interpolation (:func:`~mmsim.profile_table._interp_bound`),
  and the crossing is the exact one's;
- the GEX at a visible wall is within ``eps x wall**2 x 0.01`` of pricing every line;
- the levels are recorded only: the same trades and non-level columns bit for bit, on the
  compiled kernel as on the simpy agents.

The large validation (30 seeds, five non-shipped cases) is ``python -m
benchmarks.levels_table``.
"""

from __future__ import annotations

import numpy as np

import mmsim
from mmsim.book import _FLIP_GRID, _FLIP_MID, OptionBook
from mmsim.book_kernels import nearest_flips
from mmsim.engine import Simulation
from mmsim.profile_table import (
    FLIP_TOL,
    _interp_bound,
    build_profile,
    gamma_pair_fit,
    gamma_pair_fit_many,
    walk_flips,
)
from mmsim.vol import VolSurface

DAY = 23_400.0
STEP = 0.6 / 240.0  # the flip grid's step, a fraction of spot


def test_the_interpolation_bound_holds_for_any_values_within_their_errors():
    """:func:`_interp_bound`: for values ``pa``, ``pb`` of opposite signs each within
    ``ea``, ``eb`` of exact ones (20,000 random cases, the errors up to 90% of the values,
    the worst corners included), the exact crossing's fraction of the cell differs from
    the estimate's by at most the bound (relative rounding 1e-12). It is not loose where
    the walk uses it (``ea``, ``eb`` within 2% of each other, as ``eps x S**2`` at two
    neighbouring grid points, and at most 10% of the values): a corner reaches at least
    half of it."""
    rng = np.random.default_rng(5)
    for case in range(20_000):
        A, B = rng.uniform(0.01, 10.0, 2)
        if case % 2:  # as in the walk: errors alike at the two points, small
            ea = min(A, B) * rng.uniform(0, 0.1)
            eb = ea * rng.uniform(0.98, 1.02)
        else:
            ea, eb = A * rng.uniform(0, 0.9), B * rng.uniform(0, 0.9)
        sign = rng.choice([-1.0, 1.0])
        pa, pb = sign * A, -sign * B
        bound = _interp_bound(pa, pb, ea, eb)
        f = pa / (pa - pb)
        corners = [(da, db) for da in (-ea, ea) for db in (-eb, eb)]
        inside = [tuple(rng.uniform(-1, 1, 2) * (ea, eb)) for _ in range(3)]
        worst = 0.0
        for da, db in corners + inside:
            qa, qb = pa + sign * da, pb - sign * db  # exact values, same signs
            worst = max(worst, abs(qa / (qa - qb) - f))
        assert worst <= bound * (1 + 1e-12) + 1e-15, f"{worst} > bound {bound}"
        if case % 2:
            assert worst >= 0.5 * bound, f"bound {bound} loose: the corners reach {worst}"


def test_the_many_clocks_fit_prices_each_clock_as_one_call_bit_for_bit():
    """:func:`gamma_pair_fit_many` (all of a fit's clocks in one pass over the lines)
    against :func:`gamma_pair_fit` called per clock, on a 400-line book with lines
    expiring between the clocks (0.2-3 sessions) and zero weights: equal bit for bit,
    the gross rows from ``gross_from`` on too."""
    rng = np.random.default_rng(17)
    n = 400
    book = OptionBook(1, delta_table="off")
    book.add_many(np.round(rng.uniform(80, 125, n), 2), rng.uniform(0.2, 3.0, n) * DAY,
                  rng.random(n) < 0.5, rng.integers(-30, 30, n).astype(float),
                  np.zeros(n, np.int64), visible=rng.random(n) < 0.7)  # fmt: skip
    lines, m = book._live_lines(0.0)
    surface = book._surface(VolSurface(0.23, -0.18, 0.02))
    spots = [np.linspace(70, 130, 20), np.linspace(75, 128, 19), np.linspace(90, 110, 7)]
    times = np.array([0.0, 0.8 * DAY, 1.7 * DAY])
    allp = np.concatenate(spots)
    seg = np.cumsum([0] + [s.size for s in spots])
    got = np.zeros((4, allp.size))
    gamma_pair_fit_many(allp, seg, times, book.year_seconds, lines, m, *surface, 20, got)
    for k, s in enumerate(spots):
        want = np.zeros((4, s.size))
        gamma_pair_fit(s, times[k], book.year_seconds, lines, m, *surface, want)
        np.testing.assert_array_equal(got[:2, seg[k] : seg[k + 1]], want[:2], f"clock {k}")
        if k >= 1:
            np.testing.assert_array_equal(got[2:, seg[k] : seg[k + 1]], want[2:])


def test_table_flips_are_within_their_tolerance_even_when_the_table_errs_by_eps():
    """``walk_flips`` with ``tol = FLIP_TOL`` on five 1,500-line books (strikes $80-125,
    expiries 5-252 sessions, long and short, skew -0.2) at 10 spots and clocks each,
    against ``nearest_flips`` (every line priced): the same None, and each flip within
    ``FLIP_TOL`` of a grid step (2.5e-5 x spot). The table is made to err on purpose: a
    constant of up to its bound ``eps`` added to each view (and ``eps`` doubled, still a
    valid bound), so a check that ignored the error (or got the bound wrong) would put
    crossings outside it. Some crossings must come from the table (other bits than the
    exact values'), and ``tol = 0`` gives ``nearest_flips`` bit for bit."""
    from_table = 0
    for seed in range(5):
        rng = np.random.default_rng(40 + seed)
        n = 1_500
        book = OptionBook(1, delta_table="off")
        qty = np.where(rng.random(n) < 0.4, -1.0, 1.0) * rng.integers(1, 20, n)
        book.add_many(np.round(rng.uniform(80, 125, n), 2), rng.uniform(5, 252, n) * DAY,
                      rng.random(n) < 0.5, qty, np.zeros(n, np.int64),
                      visible=rng.random(n) < 0.75)  # fmt: skip
        surface = book._surface(VolSurface(0.22, -0.2, 0.02))
        lines, m = book._live_lines(0.0)
        tab = build_profile(lines, m, 100.0, 0.0, book.year_seconds, surface)
        assert tab is not None
        coef = tab.coef.copy()
        shift = rng.uniform(-1, 1, 2) * tab.eps  # an error of up to eps, both views
        coef[0::2, 0] += shift[0]  # the constant term of the true view, each time slice
        coef[1::2, 0] += shift[1]
        eps = 2.0 * tab.eps
        for k in range(10):
            S, t = 100.0 * (1.0 + 0.03 * np.sin(1.7 * k + seed)), 2_000.0 * k
            grid = S * _FLIP_GRID
            args = (grid, _FLIP_MID, S, t, t / tab.H, tab.center, tab.half, coef, eps,
                    tab.near, tab.near.shape[1], book.year_seconds, lines, m, *surface)  # fmt: skip
            want = nearest_flips(grid, _FLIP_MID, S, t, book.year_seconds, lines, m, *surface)
            exact = walk_flips(*args, 0.0)
            assert exact[:4] == tuple(want), f"seed {seed}, k {k}: tol 0 is not exact"
            got = walk_flips(*args, FLIP_TOL)
            for v in range(2):
                assert got[2 * v] == want[2 * v], f"seed {seed}, k {k}, view {v}: None"
                if want[2 * v]:
                    gap = abs(got[2 * v + 1] - want[2 * v + 1]) / S
                    assert gap <= FLIP_TOL * STEP * (1 + 1e-9), (
                        f"seed {seed}, k {k}, view {v}: flip {gap:.2e} x spot from the exact "
                        f"one (bound FLIP_TOL x step = {FLIP_TOL * STEP:.2e} x spot)"
                    )
            from_table += got[:4] != exact[:4]  # not the exact values' bits: the table's
    assert from_table >= 10, f"only {from_table} of 50 states read a flip from the table"


def _book(n: int, band: float, seed: int) -> dict:
    from benchmarks import cases

    sc = cases.book_scenario(n, band, 1.0, seed=seed)
    sc["vol"] = {"atm": 0.24, "skew": -0.18}
    sc["news"] = {"vol": 0.21, "dt": 1.0}
    return sc


def test_levels_from_the_table_trade_alike_and_stay_within_their_bounds():
    """A 1,200-line book on non-shipped parameters (vol 24%, skew -0.18, news 21%,
    band 60), one day, seeds 1-2, ``levels_hold: table`` against ``off`` (every level
    exact at every sample): the same trades and non-level columns bit for bit (levels are
    recorded only), the walls equal, and at every levels sample each flip within
    ``FLIP_TOL`` of a grid step of the exact one and the GEX at the visible walls within
    the table's ``eps x wall**2 x 0.01``; the GEX read from the table at >= 90% of them."""
    from benchmarks.levels_table import compare

    for seed in (1, 2):
        row = compare(_book(1_200, 60.0, 30 + seed), {}, seed)
        case = f"seed {seed}"
        assert row["same_trades"] and row["same_state"], f"{case}: recorded levels moved a trade"
        assert row["same_samples"] and row["nan_mismatch"] == 0, case
        assert row["walls_differ"] == 0, f"{case}: the walls are exact in both"
        assert row["flip_ratio_max"] <= 1.0, f"{case}: flip {row['flip_ratio_max']:.2f} x bound"
        assert row["gex_ratio_max"] <= 1.0, f"{case}: GEX {row['gex_ratio_max']:.2f} x bound"
        assert row["gex_table"] >= 0.9 * row["samples"], f"{case}: {row['gex_table']} from table"


def test_the_compiled_kernel_and_the_simpy_agents_record_the_same_table_levels():
    """``levels_hold: table`` on a 400-line book (the walls from boxes, the GEX from the
    table), 0.4 day: ``fast_path: on`` and ``off`` give the same series, trades and
    episodes bit for bit."""
    runs = []
    for fast in ("on", "off"):
        sc = mmsim.load_scenario(
            _book(400, 40.0, 9), overrides={"clock.days": 0.4, "engine.fast_path": fast}
        )
        sim = Simulation(sc, 5)
        runs.append((sim, sim.run()))
    (sim, a), (_, b) = runs
    assert sim.sampler.gex_table > 0, "nothing read from the table: the test would not test it"
    assert a.series.equals(b.series) and a.trades.equals(b.trades)
    assert a.episodes.equals(b.episodes)
