"""Tabulated dealer delta (``engine.delta_table``): precision against exact evaluation,
and the same statistics of whole runs over many seeds.

Where results differ bit-wise: with a table a check's delta is within 3/4 of a share of
exact, so the whole-share hedge a dealer rounds to can differ by one share at times;
a run then follows a different (equally valid) path. Books below
``delta_table_min_lines`` (``auto``) and ``off`` are bit-identical to exact evaluation.
"""

from __future__ import annotations

import numpy as np
import pytest

import mmsim
from mmsim.book import OptionBook
from mmsim.delta_table import recorded_tol, value_tol
from mmsim.greeks import bsm_scalar
from mmsim.vol import VolSurface

DAY = 23_400.0


def synthetic_positions(n: int, seed: int, gross: float = 2_000.0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {
            "type": "call" if rng.random() < 0.5 else "put",
            "strike": round(float(rng.uniform(85, 115)), 1),
            "expiry_days": float(rng.uniform(2, 120)),
            "qty": gross / n * (1.0 if i % 3 else -1.0),
        }
        for i in range(n)
    ]


def test_table_delta_within_three_quarters_of_a_share_of_exact():
    """3,000 checks on a 5,000-line book (2,500 contracts gross, expiries from 2 hours to
    60 days, skewed and offset vols) as spot wanders +-2.5 $ and the clock runs 4 hours:
    |delta error| <= 0.75 share (TOL_DELTA + TOL_VOL) with at most 20 builds (exact
    evaluation would cost 5,000 BSM evaluations per check); |gamma error| <= 1% of the
    book's largest |gamma| (the validation's bound)."""
    rng = np.random.default_rng(5)
    n = 5_000
    args = (
        np.round(rng.uniform(80, 120, n), 1), rng.uniform(2 / 6.5, 60, n) * DAY,
        rng.random(n) < 0.5, rng.uniform(-1, 1, n), 0,
    )  # fmt: skip
    kw = {"iv_offset": rng.uniform(-0.03, 0.03, n)}
    tab, exact = OptionBook(1, delta_table="on"), OptionBook(1, delta_table="off")
    tab.add_many(*args, **kw)
    exact.add_many(*args, **kw)
    vol = VolSurface(0.2, -0.2, 0.02)
    err_d, err_g, scale = [], [], []
    for k in range(3_000):
        S, t = 100.0 + 2.5 * np.sin(k / 150.0), 4.8 * k
        if k == 1_500:
            vol.apply_shift(1e-6)  # a small level move: kept while the vanna bound allows
        d, g = tab.holder_delta_gamma(0, S, t, vol)
        de, ge = exact.holder_delta_gamma(0, S, t, vol)
        err_d.append(abs(d - de))
        err_g.append(abs(g - ge))
        scale.append(abs(ge))
    assert max(err_d) <= 0.75, f"max |delta error| {max(err_d):.3f} shares > 0.75"
    assert max(err_g) <= 1e-2 * max(scale), "gamma error above 1% of the book's gamma"
    assert 1 <= tab.table_builds <= 20, f"{tab.table_builds} builds for 4 hours of checks"


def test_auto_below_threshold_and_off_are_bit_identical_to_exact():
    book = OptionBook(1, delta_table="auto", table_min_lines=50)
    for p in synthetic_positions(40, 1):
        book.add(p["strike"], p["expiry_days"] * DAY, p["type"] == "call", p["qty"], 0)
    vol = VolSurface(0.2, -0.1, 0.01)
    for S in (95.0, 100.0, 104.0):
        delta, gamma = book.net_delta_gamma(S, 10.0, vol)
        assert book.holder_delta_gamma(0, S, 10.0, vol) == (delta[0], gamma[0])
    assert book.table_builds == 0


def _scenario(n_lines: int, seed: int) -> dict:
    return {
        "name": "table_stats",
        "clock": {"days": 0.05},
        "market": {"S0": 100.0, "impact": {"lam": 1.0e-4}, "half_spread": 0.005},
        "vol": {"atm": 0.2, "skew": -0.1},
        "news": {"vol": 0.16, "dt": 1.0},
        "noise": {"rate": 0.05, "mean_size": 100},
        "dealers": [
            {"band": 20, "trigger": "price", "positions": synthetic_positions(n_lines, seed)}
        ],
        "record": {"every": 60.0, "levels_every": 1_170.0},
    }


@pytest.mark.parametrize("metric", ["realized_vol", "hedge_volume", "n_rehedges"])
def test_tabulated_runs_match_exact_runs_over_30_seeds(metric, table_runs):
    """30 seeds, a 300-line book (gross 2,000 contracts, lam * G ~ 0.1), band 20 shares,
    0.05 day each, same seed with table on and off (paired: same news and noise). The
    paired mean difference of each metric is within 3 standard errors of 0, and within
    2% of the metric's mean (sampling error of 30 pairs is far below that)."""
    on, off = (np.array([m[metric] for m in table_runs[mode]]) for mode in ("on", "off"))
    diff = on - off
    se = diff.std(ddof=1) / np.sqrt(diff.size) + 1e-12
    assert abs(diff.mean()) <= 3 * se + 0.02 * abs(off.mean()), (
        f"{metric}: paired mean difference {diff.mean():.4g}, 3 s.e. {3 * se:.4g}, "
        f"mean exact {off.mean():.4g}"
    )


@pytest.fixture(scope="module")
def table_runs():
    runs = {"on": [], "off": []}
    for seed in range(30):
        sc = mmsim.load_scenario(_scenario(300, seed))
        for mode in ("on", "off"):
            res = mmsim.run(sc, seed=seed, overrides={"engine.delta_table": mode})
            runs[mode].append(res.metrics)
    return runs


def test_lines_booked_after_the_build_are_added_exactly_until_a_rebuild():
    """After the build, 150 trades (new lines, additions to tabulated lines, a line
    closed to zero) each followed by a check: within 0.75 share of exact throughout,
    with changes evaluated beside the table (far fewer builds than trades)."""
    rng = np.random.default_rng(11)
    n = 2_000
    cols = (np.round(rng.uniform(80, 120, n), 1), rng.uniform(1, 60, n) * DAY,
            rng.random(n) < 0.5, rng.uniform(-1, 1, n), 0)  # fmt: skip
    tab, exact = OptionBook(1, delta_table="on"), OptionBook(1, delta_table="off")
    tab.add_many(*cols)
    exact.add_many(*cols)
    vol = VolSurface(0.2, -0.1, 0.01)
    tab.holder_delta_gamma(0, 100.0, 0.0, vol)
    builds = tab.table_builds
    worst = 0.0
    for k in range(150):
        if k % 3 == 0:  # add to a tabulated line (or close it out)
            j = int(rng.integers(n))
            trade = (cols[0][j], cols[1][j], bool(cols[2][j]), -cols[3][j] if k % 2 else 0.5, 0)
        else:  # a new line
            trade = (round(float(rng.uniform(90, 110)), 1), float(rng.uniform(1, 30)) * DAY,
                     bool(rng.random() < 0.5), float(rng.uniform(-5, 5)), 0)  # fmt: skip
        for book in (tab, exact):
            book.add(*trade)
        S, t = 100.0 + 0.01 * k, 10.0 * k
        d = tab.holder_delta_gamma(0, S, t, vol)[0]
        worst = max(worst, abs(d - exact.holder_delta_gamma(0, S, t, vol)[0]))
    assert worst <= 0.75, f"max |delta error| {worst:.3f} shares with booked changes"
    assert tab.table_builds - builds <= 150 // 64 + 1, "changes were not evaluated beside"


def test_booked_lines_fold_into_the_fit_without_rebuilds_within_tolerance():
    """A 2,000-line book (expiries 1-60 days) tabulated once, then 200 customer trades
    inside one table's window (new lines expiring in 2-30 days, additions to tabulated
    lines, one line closed out), each followed by a check as spot wanders +-1.5% over
    the table's window: every check within 3/4 share of exact and gamma within 1% of the book's,
    with no rebuild (the trades are folded into the fit, O(nodes) each; before, every
    64 trades cost a rebuild of all 2,000 lines) and nothing left beside the table; the
    sampler reads the folded table within its stated tolerance (value 1 cent: the book's
    ``value_tol``, its gross value under $10M; delta 3/4 share). A trade expiring within
    the table's near window is evaluated exactly beside it instead."""
    from mmsim.delta_table import TOL_VALUE

    rng = np.random.default_rng(21)
    n = 2_000
    cols = (np.round(rng.uniform(80, 120, n), 1), rng.uniform(1, 60, n) * DAY,
            rng.random(n) < 0.5, rng.uniform(-1, 1, n), 0)  # fmt: skip
    tab, exact = OptionBook(1, delta_table="on"), OptionBook(1, delta_table="off")
    tab.add_many(*cols)
    exact.add_many(*cols)
    vol = VolSurface(0.2, -0.1, 0.01)
    tab.holder_delta_gamma(0, 100.0, 0.0, vol)
    assert tab.table_builds == 1
    step = 0.99 * tab._tables[0].H / 200  # s between trades: all inside the table's window
    worst_d = worst_g = scale_g = 0.0
    for k in range(200):
        if k % 4 == 0:  # add to a tabulated line; k == 100 closes one out
            j = int(rng.integers(n))
            qty = -cols[3][j] if k == 100 else float(rng.uniform(-3, 3))
            trade = (cols[0][j], cols[1][j], bool(cols[2][j]), qty, 0)
        else:  # a new line
            trade = (round(float(rng.uniform(90, 110)), 1), float(rng.uniform(2, 30)) * DAY,
                     bool(rng.random() < 0.5), float(rng.uniform(-5, 5)), 0)  # fmt: skip
        for book in (tab, exact):
            book.add(*trade)
        S, t = 100.0 + 1.5 * np.sin(k / 20.0), step * k
        d, g = tab.holder_delta_gamma(0, S, t, vol)
        de, ge = exact.holder_delta_gamma(0, S, t, vol)
        worst_d, worst_g = max(worst_d, abs(d - de)), max(worst_g, abs(g - ge))
        scale_g = max(scale_g, abs(ge))
    table = tab._tables[0]
    assert worst_d <= 0.75, f"max |delta error| {worst_d:.3f} shares with folded trades"
    assert worst_g <= 1e-2 * scale_g, f"gamma error {worst_g:.3g} > 1% of {scale_g:.3g}"
    assert tab.table_builds == 1, f"{tab.table_builds - 1} rebuilds for 200 trades"
    assert table.folded >= 150 and table.changes_n == 0, (table.folded, table.changes_n)
    got, want = np.zeros((5, 1)), np.zeros((5, 1))
    S, t = 100.8, step * 200
    tab.series_greeks(S, t, vol, got)
    exact.sample_greeks(S, t, vol, want)
    assert tab.table_samples == 1, "the sampler did not read the folded table"
    assert table.tol_value == TOL_VALUE, f"value tolerance {table.tol_value} $ on a small book"
    assert abs(got[0, 0] - want[0, 0]) <= 0.75 and abs(got[4, 0] - want[4, 0]) <= TOL_VALUE
    near = (100.0, 0.2 * DAY, True, 10.0, 0)  # expires inside the table's near window
    for book in (tab, exact):
        book.add(*near)
    d = tab.holder_delta_gamma(0, 100.0, t, vol)[0]
    assert table.changes_n == 1 and tab.table_builds == 1
    assert abs(d - exact.holder_delta_gamma(0, 100.0, t, vol)[0]) <= 0.75


def _lagged_scenario(seed: int) -> dict:
    """Not a shipped setting: a lagged price-triggered dealer (120 lines) and a scheduled
    one (90 lines) under square-root impact, with customers booking calls into their
    books (the shape of ``multi_dealer_bands``), a quarter of a day."""
    return {
        "name": "table_stats_lagged",
        "clock": {"days": 0.25},
        "market": {
            "S0": 100.0,
            "impact": {"model": "sqrt", "Y": 0.6, "daily_vol": 0.015, "adv": 3.0e6},
            "half_spread": 0.005,
        },
        "vol": {"atm": 0.2, "skew": -0.2},
        "news": {"vol": 0.16, "dt": 1.0},
        "noise": {"rate": 0.05, "mean_size": 100},
        "dealers": [
            {
                "band": 20,
                "trigger": "price",
                "latency": 0.5,
                "positions": synthetic_positions(120, seed),
            },
            {
                "band": 50,
                "trigger": "schedule",
                "interval": 30,
                "positions": synthetic_positions(90, seed + 1_000),
            },
        ],
        "customers": [
            {
                "segment": "retail_call_buyers",
                "rate": 0.01,
                "expiry_days": [5, 21],
                "size": {"mean": 20},
            },
        ],
        "record": {"every": 60.0, "levels_every": 1_170.0},
    }


@pytest.fixture(scope="module")
def lagged_runs():
    from mmsim.engine import Simulation

    runs = {"auto": [], "off": []}
    for seed in range(30):
        sc = mmsim.load_scenario(_lagged_scenario(seed))
        for mode in ("auto", "off"):
            engine = sc.engine.model_copy(update={"delta_table": mode})
            sim = Simulation(sc.model_copy(update={"engine": engine}), seed)
            res = sim.run()
            runs[mode].append({**res.metrics, "table_builds": sim.book.table_builds})
    return runs


@pytest.mark.parametrize("metric", ["realized_vol", "hedge_volume", "n_rehedges"])
def test_default_tabulates_lagged_dealers_and_matches_exact_runs_over_30_seeds(metric, lagged_runs):
    """30 seeds of :func:`_lagged_scenario`, the engine's default (``auto``, simpy path:
    from 64 live lines) against exact evaluation, same seed (paired): every default run
    read its dealers' deltas from tables (the books hold 90-150 lines), and the paired
    mean difference of realized vol, hedge volume and
    rehedge count is within 3 standard errors plus 1% of the exact mean."""
    assert all(m["table_builds"] >= 2 for m in lagged_runs["auto"]), "default did not tabulate"
    assert all(m["table_builds"] == 0 for m in lagged_runs["off"])
    on, off = (np.array([m[metric] for m in lagged_runs[mode]]) for mode in ("auto", "off"))
    diff = on - off
    se = diff.std(ddof=1) / np.sqrt(diff.size) + 1e-12
    assert abs(diff.mean()) <= 3 * se + 0.01 * abs(off.mean()), (
        f"{metric}: paired mean difference {diff.mean():.4g}, 3 s.e. {3 * se:.4g}, "
        f"mean exact {off.mean():.4g}"
    )


def _node_gap(spots, t, year_seconds, lines, n, surface) -> tuple[np.ndarray, np.ndarray]:
    """``node_greeks`` of the lines and its largest gap per row to summing ``bsm_scalar``
    of each live line at each spot (what it computed before vectorizing), as a fraction
    of that row's gross sum (sum of |terms|)."""
    from mmsim.book_kernels import (
        ROW_EXPIRY,
        ROW_IS_CALL,
        ROW_IV_OFF,
        ROW_STRIKE,
        ROW_UNITS,
        ROW_VIS_W,
        line_sigma,
    )
    from mmsim.delta_table import node_greeks
    from mmsim.greeks import bsm_scalar

    level, skew, floor, r, q = surface
    got = np.zeros((7, spots.size))
    node_greeks(spots, t, year_seconds, lines, n, *surface, got)
    want, gross = np.zeros_like(got), np.zeros_like(got)
    for i in range(n):
        K, units, w_vis = lines[ROW_STRIKE, i], lines[ROW_UNITS, i], lines[ROW_VIS_W, i]
        if lines[ROW_EXPIRY, i] <= t or units == 0.0:
            continue
        T = (lines[ROW_EXPIRY, i] - t) / year_seconds
        for j, S in enumerate(spots):
            sigma = line_sigma(K, S, level, skew, floor, lines[ROW_IV_OFF, i])
            g = bsm_scalar(S, K, T, sigma, r, q, lines[ROW_IS_CALL, i] != 0.0)
            terms = (units * g[1], units * g[2], units * g[6], units * g[5], units * g[0],
                     units * g[4], w_vis * g[2])  # fmt: skip
            for row, x in enumerate(terms):
                want[row, j] += x
                gross[row, j] += abs(x)
    return got, np.abs(got - want) / np.maximum(gross, 1e-300)


@pytest.mark.parametrize("seed", range(6))
def test_node_greeks_equal_summed_bsm_per_line_up_to_rounding(seed):
    """``node_greeks`` (the table builds' node values: vectorized, its normal CDF from
    ``mmsim.fastnorm``) against summing ``bsm_scalar`` of each line at each spot: every
    row within 1e-11 of that row's gross sum (charm near expiry loses most, ~2e-12 over
    60 seeds, the other rows less), on books of 400 lines with rates and dividends, skew 0
    or not, a floor, vol offsets, expiries from a quarter of a day (builds sum nearer
    lines exactly, ``NEAR_MIN_YEARS``) to a year, spots 0.7-1.4 x the strikes' centre."""
    rng = np.random.default_rng(500 + seed)
    book = OptionBook(1, delta_table="off")
    n, t = 400, 600.0 * seed
    expiry = t + 23_400.0 * np.where(rng.random(n) < 0.1, rng.uniform(0.25, 1.0, n),
                                     rng.uniform(1.0, 252.0, n))  # fmt: skip
    book.add_many(rng.uniform(60, 140, n), expiry, rng.random(n) < 0.5,
                  rng.integers(1, 50, n) * rng.choice([-1.0, 1.0], n), np.zeros(n, np.int64),
                  rng.random(n) < 0.8, iv_offset=rng.normal(0.0, 0.03, n))  # fmt: skip
    skew = 0.0 if seed % 3 == 0 else -0.4 * rng.random()
    surface = (0.05 + 0.4 * rng.random(), skew, 0.01 * (seed % 2), 0.05 * rng.random(),
               0.03 * rng.random() * (seed % 2))  # fmt: skip
    lines = np.ascontiguousarray(book._packed[:, : book._n])
    spots = np.sort(rng.uniform(70.0, 140.0, 23))
    _, gap = _node_gap(spots, t, book.year_seconds, lines, n, surface)
    assert gap.max() <= 1e-11, f"seed {seed}: {gap.max():.2e} of the gross (rows {gap.max(1)})"


@pytest.mark.parametrize("zero_vol", [False, True])
def test_node_greeks_finite_and_exact_at_zero_vol_and_in_the_last_seconds(zero_vol):
    """Lines from 1 second to a day from expiry, some expired or netted to 0 contracts
    between them, over more than two of ``node_greeks``' blocks of lines, at spots from
    deep out of to deep in the money (``d`` up to ~1e3, where the vectorized CDF must
    give exactly 0 or 1 and the density 0), and at zero vol (surface and floor 0: every
    term ``bsm_scalar``'s intrinsic one): every value finite and every row within 1e-11
    of its gross sum of ``bsm_scalar`` per line."""
    from mmsim.delta_table import NODE_BLOCK

    rng = np.random.default_rng(7)
    book = OptionBook(1, delta_table="off")
    n, t = 2 * NODE_BLOCK + 37, 1_000.0
    left = np.where(rng.random(n) < 0.5, rng.uniform(1.0, 60.0, n), rng.uniform(60.0, 23_400.0, n))
    left[rng.random(n) < 0.05] = -5.0  # expired: skipped
    units = rng.integers(1, 50, n) * rng.choice([-1.0, 1.0], n)
    units[rng.random(n) < 0.05] = 0.0  # netted out: skipped
    book.add_many(rng.uniform(90, 110, n), t + left, rng.random(n) < 0.5, units,
                  np.zeros(n, np.int64), rng.random(n) < 0.8)  # fmt: skip
    surface = (0.0, 0.0, 0.0, 0.02, 0.01) if zero_vol else (0.2, -0.3, 0.05, 0.02, 0.01)
    lines = np.ascontiguousarray(book._packed[:, : book._n])
    spots = np.array([60.0, 95.0, 99.99, 100.0, 100.01, 105.0, 160.0])
    got, gap = _node_gap(spots, t, book.year_seconds, lines, n, surface)
    assert np.all(np.isfinite(got)), f"zero_vol={zero_vol}: non-finite node values {got}"
    assert gap.max() <= 1e-11, f"zero_vol={zero_vol}: {gap.max():.2e} of the gross"


def test_shortest_expiries_is_the_head_of_unique_with_counts():
    """``shortest_expiries(e, k)`` (the split's expiries, one pass) equals the first
    ``k`` of ``np.unique(e, return_counts=True)``, exactly, on books with many ties,
    all-distinct expiries, fewer distinct values than ``k``, one value and none."""
    from mmsim.delta_table import shortest_expiries

    rng = np.random.default_rng(11)
    cases = [
        np.round(rng.uniform(5, 252, 10_000)) * 86_400.0,  # many lines per expiry
        rng.uniform(5, 252, 2_000) * 86_400.0,  # all distinct, unsorted
        np.repeat([3.0e6, 1.0e6, 2.0e6], [5, 1, 7]),  # fewer distinct than k
        np.full(4, 7.0e5),
        np.zeros(0),
    ]
    for e in cases:
        for k in (1, 3, 9, 20):
            cuts, counts = shortest_expiries(e, k)
            u, c = np.unique(e, return_counts=True)
            assert np.array_equal(cuts, u[:k]), f"k={k}, {e.size} lines: expiries differ"
            assert np.array_equal(counts, c[:k]), f"k={k}, {e.size} lines: counts differ"


def _one_expiry_args(seed: int, n: int = 200) -> tuple:
    """``n`` lines of one expiry 1.4 sessions out, strikes 420-480 around spot 450, long
    and short 5-50 contracts: a book no sampler split can help (one expiry to take off)."""
    rng = np.random.default_rng(seed)
    return (
        np.round(rng.uniform(420, 480, n), 0), np.full(n, 1.4 * DAY), rng.random(n) < 0.5,
        rng.choice([-1.0, 1.0], n) * rng.uniform(5, 50, n), 0,
    )  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1])
def test_one_expiry_book_sampled_from_its_table_within_the_recorded_tolerance(seed):
    """A 200-line book of one expiry 1.4 sessions out, sampled every 10 s for 3 1/3 hours
    as spot wanders +-3 $: its tables pass for checks but not the sampler's cent (the
    cubic in time misses it), and no split exists (one expiry); the sampler then reads
    the table's own rows (``recorded_ok``) instead of pricing the 200 lines at each
    sample, the value within ``recorded_tol`` ($, 1e-7 of the gross) of exact at every
    sample read so, the other greeks within their usual bounds."""
    args = _one_expiry_args(seed)
    tab, exact = OptionBook(1, delta_table="on"), OptionBook(1, delta_table="off")
    tab.add_many(*args)
    exact.add_many(*args)
    vol = VolSurface(0.18, -0.25, 0.02)
    out, ref = np.zeros((5, 1)), np.zeros((5, 1))
    read, worst, worst_delta = 0, 0.0, 0.0
    for k in range(1_200):
        S, t = 450.0 + 3.0 * np.sin(k / 97.0), 10.0 * k
        tab.series_greeks(S, t, vol, out)
        exact.series_greeks(S, t, vol, ref)
        table = tab._tables[0]
        if (
            table is not None
            and table.samples(S, t, *vol.params())
            and table.sample_table() is table
            and not table.sample_ok
        ):
            read += 1
            worst = max(worst, abs(out[4, 0] - ref[4, 0]) / recorded_tol(table.gross))
            worst_delta = max(worst_delta, abs(out[0, 0] - ref[0, 0]))
            assert recorded_tol(table.gross) > value_tol(table.gross), "a wider tolerance"
    assert read >= 200, f"{read} of 1,200 samples read the table's rows past the cent"
    assert worst <= 1.0, f"value error {worst:.3f} x recorded_tol at the samples read so"
    assert worst_delta <= 0.75, f"delta error {worst_delta:.3f} shares > 0.75"


def _recorded_scenario(seed: int) -> dict:
    """Not shipped: spot 100, one price-triggered dealer (band 200 shares) holding 120
    lines of one expiry 1.4 sessions out (20-200 contracts long or short, strikes 92-108),
    customers buying calls of that expiry, 0.4 session, samples every 10 s."""
    rng = np.random.default_rng(seed)
    positions = [
        {
            "type": "call" if rng.random() < 0.5 else "put",
            "strike": float(np.round(rng.uniform(92, 108))),
            "expiry_days": 1.4,
            "qty": float(rng.choice([-1.0, 1.0]) * rng.uniform(20, 200)),
        }
        for _ in range(120)
    ]
    return {
        "name": "recorded_tol",
        "clock": {"days": 0.4},
        "market": {"S0": 100.0, "impact": {"lam": 1.0e-5}, "half_spread": 0.005},
        "vol": {"atm": 0.22, "skew": -0.15},
        "news": {"vol": 0.18, "dt": 1.0},
        "noise": {"rate": 0.05, "mean_size": 100},
        "dealers": [{"band": 200, "trigger": "price", "positions": positions}],
        "customers": [
            {
                "segment": "retail_call_buyers",
                "rate": 0.003,
                "expiry_days": [1.4],
                "size": {"mean": 20},
            },
        ],
        "record": {"every": 10.0, "levels_every": 600.0},
    }


def _gross(spec: dict) -> float:
    """$, the scenario's book's gross option value at the start (flat ATM vol)."""
    S, sigma = spec["market"]["S0"], spec["vol"]["atm"]
    T = spec["dealers"][0]["positions"][0]["expiry_days"] / 252.0
    return sum(
        abs(p["qty"])
        * 100.0
        * bsm_scalar(S, p["strike"], T, sigma, 0.0, 0.0, p["type"] == "call")[0]
        for p in spec["dealers"][0]["positions"]
    )


def test_recorded_tolerance_changes_only_the_recorded_pnl_within_its_bound(monkeypatch):
    """30 seeds of :func:`_recorded_scenario`, each run with the recorded tolerance and
    without it (``TOL_VALUE_REL_RECORDED = 0``: the holder sampled exactly past the cent,
    as before): trades and option trades identical bit for bit; the dealer's recorded
    P&L within ``recorded_tol`` of the book's gross value at the start (1e-7 of it, tens
    of cents) at every sample, and it differs on some samples (the path is taken); the
    fast path equals ``engine.fast_path: off`` with it (seed 0)."""
    from mmsim import delta_table

    changed, worst = 0, 0.0
    for seed in range(30):
        spec = _recorded_scenario(seed)
        sc = mmsim.load_scenario(spec)
        on = {"engine.delta_table": "on"}
        new = mmsim.run(sc, seed=seed, overrides=on)
        with monkeypatch.context() as m:
            m.setattr(delta_table, "TOL_VALUE_REL_RECORDED", 0.0)
            old = mmsim.run(sc, seed=seed, overrides=on)
        assert new.trades.equals(old.trades), f"seed {seed}: trades differ"
        assert new.option_trades.equals(old.option_trades), f"seed {seed}: option trades"
        gap = (new.series["dealer0.pnl"] - old.series["dealer0.pnl"]).abs()
        changed += int((gap > 0).sum())
        worst = max(worst, float(gap.max()) / recorded_tol(_gross(spec)))
        if seed == 0:
            slow = mmsim.run(sc, seed=seed, overrides={**on, "engine.fast_path": "off"})
            assert slow.series.equals(new.series), "fast path and simpy agents differ"
    assert changed > 1_000, f"{changed} samples read past the cent over 30 seeds"
    assert worst <= 1.0, f"recorded P&L error {worst:.3f} x recorded_tol(gross at start)"
