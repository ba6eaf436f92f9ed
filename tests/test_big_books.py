"""Big books at a cost that does not follow their size (issue 11): the series sampler
from per-holder tables, flips from a tabulated profile, live lines found without
scanning every line ever booked.

Where results differ bit-wise: a tabulated holder's sampled greeks (``dealer_delta``,
``dealer_gamma``, ``gex_*``, ``<dealer>.pnl``, ``flow_*``) are within the tolerances of
:mod:`mmsim.delta_table` of exact evaluation (delta 3/4 of a share, value
:func:`~mmsim.delta_table.value_tol`: 1 cent on these books, under $10M of gross option
value; gamma, vanna and charm 1% of their scale, the visible GEX 1% of the larger of its
scale and the true GEX's). Flips are bit-identical.
Books below ``delta_table_min_lines`` (``auto``) sample exactly, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_chain_tables import _gross

import mmsim
from mmsim.book import _FLIP_GRID, _FLIP_MID, OptionBook
from mmsim.book_kernels import nearest_flips
from mmsim.delta_table import (
    HALF_WIDTH,
    TOL_DELTA,
    TOL_REL,
    TOL_VALUE,
    TOL_VOL,
    build_table,
    value_tol,
)
from mmsim.engine import Simulation
from mmsim.vol import VolSurface

DAY = 23_400.0


def _random_book(seed: int, n: int, holders: int, mode: str, near: float = 0.02) -> tuple:
    """Lines with strikes $80-120, expiries from ``near`` days (a few minutes) to 60
    days, skew-priced with +-3 vol points of offset, 70% exchange-listed."""
    rng = np.random.default_rng(seed)
    cols = (
        np.round(rng.uniform(80, 120, n), 1), rng.uniform(near, 60, n) * DAY,
        rng.random(n) < 0.5, rng.uniform(-1, 1, n) + 0.2, rng.integers(0, holders, n),
    )  # fmt: skip
    kw = {"iv_offset": rng.uniform(-0.03, 0.03, n), "visible": rng.random(n) < 0.7}
    book = OptionBook(holders, delta_table=mode)
    book.add_many(*cols, **kw)
    return book, cols, kw


def _value_bound(book: OptionBook, S: float, t: float, vol: VolSurface) -> float:
    """The stated value tolerance ($) of ``book`` at spot ``S`` ($), clock ``t`` (s):
    :func:`~mmsim.delta_table.value_tol` of its gross option value (``_gross``)."""
    return value_tol(_gross(book, S, t, vol))


def _assert_relative(err: np.ndarray, scale: np.ndarray) -> None:
    """Rows 1-3 (gamma, charm, vanna) and 5 (true GEX) within ``TOL_REL`` of their scale;
    row 6 (visible GEX) of the larger of its scale and the true GEX's."""
    bound = scale.copy()
    bound[6] = max(scale[5], scale[6])
    for row, name in ((1, "gamma"), (2, "charm"), (3, "vanna"), (5, "gex_true"),
                      (6, "gex_visible")):  # fmt: skip
        assert err[row] <= TOL_REL * bound[row], f"{name} error {err[row] / bound[row]:.2%}"


@pytest.mark.parametrize("seed", [0, 1])
def test_tabulated_sampler_within_stated_tolerance_of_exact(seed):
    """600 samples of a 4,000-line, 3-holder book over 1.6 days (lines expire during it;
    spot wanders +-4 $; trades booked after the table builds): per holder |delta error|
    <= 3/4 share, |value error| <= 1 cent (the book's ``value_tol``: its gross value is
    under $10M), gamma, vanna and the GEX at spot within 1% and
    charm within 1% of the book's largest value (the visible GEX: of the larger of its and
    the true GEX's); at least half the samples from tables (else the
    test would test nothing)."""
    rng = np.random.default_rng(100 + seed)
    tab, cols, kw = _random_book(seed, 4_000, 3, "on")
    exact = OptionBook(3, delta_table="off")
    exact.add_many(*cols, **kw)
    vol = VolSurface(0.2, -0.2, 0.02)
    got, want = np.zeros((5, 3)), np.zeros((5, 3))
    err, scale = np.zeros(7), np.zeros(7)
    for k in range(600):
        S, t = 100.0 + 4.0 * np.sin(k / 40.0), 60.0 * k
        if k % 25 == 7:  # a customer trade after the build
            trade = (round(float(rng.uniform(90, 110)), 1), float(rng.uniform(0.1, 20)) * DAY,
                     bool(rng.random() < 0.5), float(rng.uniform(-20, 20)), int(k % 3))  # fmt: skip
            tab.add(*trade)
            exact.add(*trade)
        gex = tab.series_greeks(S, t, vol, got)
        gex_exact = exact.sample_greeks(S, t, vol, want)
        assert np.isfinite(got).all() and np.isfinite(gex).all()
        diff = np.r_[np.abs(got - want).max(axis=1), np.abs(np.subtract(gex, gex_exact))]
        err = np.maximum(err, diff)
        scale = np.maximum(scale, np.r_[np.abs(want).max(axis=1), np.abs(gex_exact)])
    assert err[0] <= TOL_DELTA + TOL_VOL, f"delta {err[0]:.3g} shares > 0.75"
    assert _value_bound(exact, 100.0, 0.0, vol) == TOL_VALUE, "not a small book"
    assert err[4] <= TOL_VALUE, f"value {err[4]:.3g} $ > {TOL_VALUE}"
    _assert_relative(err, scale)
    assert tab.table_samples >= 3 * 300, f"only {tab.table_samples} holder-samples tabulated"


def test_a_table_whose_clock_ran_out_rolls_on_from_its_end_within_tolerance():
    """Checks every minute for 7 hours on an unchanged 2,000-line book, spot within
    +-0.5%: tables are rebuilt as their clock runs out, reusing the previous table's node
    values at its end, and every check is within 3/4 of a share of exact."""
    tab, cols, kw = _random_book(5, 2_000, 1, "on", near=0.5)
    exact = OptionBook(1, delta_table="off")
    exact.add_many(*cols, **kw)
    vol = VolSurface(0.2, -0.1, 0.01)
    worst = 0.0
    for k in range(420):
        S, t = 100.0 + 0.5 * np.sin(k / 30.0), 60.0 * k
        d = tab.holder_delta_gamma(0, S, t, vol)[0]
        worst = max(worst, abs(d - exact.holder_delta_gamma(0, S, t, vol)[0]))
    assert worst <= TOL_DELTA + TOL_VOL, f"max |delta error| {worst:.3f} shares"
    assert tab.table_rolls >= 2, f"{tab.table_rolls} of {tab.table_builds} builds rolled on"


def test_sampler_at_zero_vol_and_at_expiry_is_finite_and_exact_when_no_table_validates():
    """Vol level 0 (the 1e-6 floor: deltas are steps) and lines expiring at the sampled
    instants: every value finite, and equal to exact evaluation wherever no table passes
    its validation."""
    tab, cols, kw = _random_book(3, 600, 2, "on", near=0.0)
    exact = OptionBook(2, delta_table="off")
    exact.add_many(*cols, **kw)
    vol = VolSurface(0.0, 0.0, 1e-6)
    got, want = np.zeros((5, 2)), np.zeros((5, 2))
    expiries = np.sort(cols[1])[:50]
    for k, t in enumerate(np.r_[expiries, expiries - 1e-3]):
        S = 100.0 + 0.5 * np.cos(k)
        gex = tab.series_greeks(S, t, vol, got)
        exact.sample_greeks(S, t, vol, want)
        assert np.isfinite(got).all() and np.isfinite(gex).all(), f"non-finite at t={t}"
        assert np.abs(got[0] - want[0]).max() <= TOL_DELTA + TOL_VOL
        assert np.abs(got[4] - want[4]).max() <= TOL_VALUE


def test_auto_books_below_the_threshold_sample_exactly_bit_for_bit():
    book, _, _ = _random_book(4, 80, 2, "auto")  # ~40 lines a holder, under 64
    assert max(np.bincount(book.lines()["holder"].astype(int))) < book.table_min_lines
    vol = VolSurface(0.2, -0.1, 0.01)
    a, b = np.zeros((5, 2)), np.zeros((5, 2))
    for S, t in ((95.0, 0.0), (101.0, 3_000.0)):
        assert book.series_greeks(S, t, vol, a) == book.sample_greeks(S, t, vol, b)
        np.testing.assert_array_equal(a, b)
    assert book.table_builds == 0 and book.table_samples == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_table_flips_equal_the_full_walk_out_bit_for_bit(seed):
    """60 flips of a 1,000-line book (2 holders, expiries from minutes to 60 days; a
    trade booked every 10 flips) as spot wanders +-6% and the clock runs 1.2 days: each
    equals :func:`~mmsim.book_kernels.nearest_flips` on the live book bit for bit (None
    where it is None), and nearly all come from the profile table."""
    rng = np.random.default_rng(seed)
    book, _, _ = _random_book(seed, 1_000, 2, "on")
    vol = VolSurface(0.2, -0.2, 0.02)
    for k in range(60):
        S, t = 100.0 + 6.0 * np.sin(k / 5.0), 480.0 * k
        if k % 10 == 3:
            book.add(round(float(rng.uniform(90, 110)), 1), float(rng.uniform(0.2, 30)) * DAY,
                     bool(rng.random() < 0.5), float(rng.uniform(-30, 30)), k % 2)  # fmt: skip
        lines, n = book._live_lines(t)
        ft, xt, fv, xv = nearest_flips(S * _FLIP_GRID, _FLIP_MID, S, t, book.year_seconds,
                                       lines, n, *book._surface(vol))  # fmt: skip
        want = (float(xt) if ft else None), (float(xv) if fv else None)
        assert book.flips(S, t, vol) == want, f"flip {k} at S={S:.2f}, t={t:.0f}"
    assert book.profile_flips >= 55, f"{book.profile_flips} of 60 flips from the table"
    assert book.profile_misses == 0, "the table's bound failed"
    assert book.profile_builds <= 10, f"{book.profile_builds} profile builds"


def _crossing_books():
    """``(seed, book, surface, lines, m, table)`` for six 2,000-line books (seeds 3-8:
    strikes $80-120, expiries 5-252 days, two thirds long) and their profile tables at
    spot $100, clock 0."""
    from mmsim.profile_table import build_profile

    for seed in range(3, 9):
        rng = np.random.default_rng(seed)
        n = 2_000
        book = OptionBook(1, delta_table="off")
        qty = np.where(np.arange(n) % 3 == 0, -1.0, 1.0)
        book.add_many(np.round(rng.uniform(80, 120, n), 2), rng.uniform(5, 252, n) * DAY,
                      rng.random(n) < 0.5, qty, np.zeros(n, np.int64))  # fmt: skip
        surface = book._surface(VolSurface(0.2, -0.1))
        lines, m = book._live_lines(0.0)
        tab = build_profile(lines, m, 100.0, 0.0, book.year_seconds, surface)
        assert tab is not None, f"seed {seed}: no profile table on a 2,000-line book"
        yield seed, book, surface, lines, m, tab


def test_table_flips_price_only_the_nearest_crossing_when_both_sides_cross():
    """The table's walks out from spot take turns by distance, so a crossing farther
    than one already priced on the other side is not priced (two full-book sums, ~0.3
    ms each on 10k lines, of the ~1.2 ms a table flip cost when the walk went right to
    its end first). On six 2,000-line books like the 10k benchmark's (strikes $80-120,
    expiries 5-252 days, two thirds long; three of them cross in the visible view on
    both sides of spot, as the 10k book does near $86 and $119), at 12 spots and clocks
    over a day each: the flips equal ``nearest_flips`` bit for bit, the profile is
    priced at most at the two points around each view's nearest crossing plus the
    points the table leaves in doubt, and in at least 24 of the 72 cases (36 when
    written) an exact crossing on the far side goes unpriced."""
    from mmsim.profile_table import _add_table, gamma_pair, walk_flips

    spared = 0
    for seed, book, surface, lines, m, tab in _crossing_books():
        for k in range(12):
            S, t = 100.0 + 2.0 * np.sin(k), 1_950.0 * k
            grid = S * _FLIP_GRID
            got = walk_flips(grid, _FLIP_MID, S, t, t / tab.H, tab.center, tab.half, tab.coef,
                             tab.eps, tab.near, 0, book.year_seconds, lines, m,
                             *surface)  # fmt: skip
            want = nearest_flips(grid, _FLIP_MID, S, t, book.year_seconds, lines, m, *surface)
            case = f"seed {seed}, S={S:.2f}, t={t:.0f}"
            assert got[:4] == tuple(want) and not got[4], f"{case}: {got[:5]} != {want}"
            est = np.zeros((2, grid.size))
            _add_table(tab.coef, t / tab.H, (grid - tab.center) / tab.half, est)
            doubt = int(np.count_nonzero((np.abs(est) <= tab.eps[:, None]).any(axis=0)))
            assert got[5] <= 2 * (want[0] + want[2]) + doubt, f"{case}: priced {got[5]} points"
            exact = np.zeros((2, grid.size))
            gamma_pair(grid, t, book.year_seconds, lines, m, *surface, exact)
            cells = np.flatnonzero(np.sign(exact[1, :-1]) * np.sign(exact[1, 1:]) < 0)
            near = abs(want[3] - S) if want[2] else np.inf
            spared += any(min(abs(grid[c] - S), abs(grid[c + 1] - S)) > near + 0.3 for c in cells)
    assert spared >= 24, f"a farther visible crossing left unpriced in {spared} of 72 cases"


def test_live_lines_follow_the_live_book_not_every_line_ever_booked():
    """2,000 lines expire; the lines looked at afterwards are only the live ones (and the
    hot tables equal a scan of the whole table, through expiries, changes and a clock
    going back)."""
    book = OptionBook(2)
    rng = np.random.default_rng(7)
    book.add_many(rng.uniform(90, 110, 2_000), 100.0, True, 1.0, rng.integers(0, 2, 2_000))
    book.add(100.0, 5 * DAY, False, -3.0, 1)
    book.add(101.0, 6 * DAY, True, 2.0, 0)
    vol = VolSurface(0.2, -0.1, 0.01)
    for t in (0.0, 50.0, 200.0, 300.0, 20.0, 400.0):
        for h in range(2):
            lines, n = book._hot_lines(h, t)
            mask = (book.holder == h) & (book.qty != 0) & (book.expiry > t)
            np.testing.assert_array_equal(lines[0, :n], book.strike[mask])
        if t == 300.0:
            book.add(101.0, 6 * DAY, True, -2.0, 0)  # netted to zero
            book.add(99.0, 7 * DAY, True, 1.0, 0)
        book.net_delta_gamma(100.0, t, vol)
    assert book._cand[0][0].size == 2, "the candidates still hold expired or netted lines"


def _stats_scenario(seed: int) -> dict:
    """A non-shipped setting: S0 = 250, vol 30% with skew -0.3, sqrt impact, a 400-line
    book (strikes 200-300, expiries 1-90 days) over two dealers."""
    rng = np.random.default_rng(seed)
    positions = [
        [
            {
                "type": "call" if rng.random() < 0.5 else "put",
                "strike": round(float(rng.uniform(200, 300)), 1),
                "expiry_days": float(rng.uniform(1, 90)),
                "qty": float(rng.uniform(-8, 10)),
            }
            for _ in range(200)
        ]
        for _ in range(2)
    ]
    return {
        "name": "big_book_stats",
        "clock": {"days": 0.04},
        "market": {
            "S0": 250.0,
            "impact": {"model": "sqrt", "Y": 0.6, "daily_vol": 0.015, "adv": 5.0e6},
        },
        "vol": {"atm": 0.3, "skew": -0.3},
        "news": {"vol": 0.2, "dt": 1.0},
        "noise": {"rate": 0.1, "mean_size": 300},
        "dealers": [
            {"band": 50, "trigger": "price", "positions": positions[0]},
            {"band": 200, "trigger": "schedule", "interval": 30, "positions": positions[1]},
        ],
        "record": {"every": 30.0, "levels_every": 300.0},
        "engine": {"delta_table": "on"},
    }


class _SamplerProbe(Simulation):
    """At every sample, the tabulated greeks beside exact evaluation of the same state."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.worst = np.zeros(7)
        self.scale = np.zeros(7)

    def _sample(self, t: float, row: np.ndarray) -> None:
        S, out = self.market.mid, np.zeros((5, self.book.n_holders))
        gex = self.book.series_greeks(S, t, self.vol, out)
        exact = np.zeros_like(out)
        gex_exact = self.book.sample_greeks(S, t, self.vol, exact)
        diff = np.r_[np.abs(out - exact).max(axis=1), np.abs(np.subtract(gex, gex_exact))]
        self.worst = np.maximum(self.worst, diff)
        self.scale = np.maximum(self.scale, np.r_[np.abs(exact).max(axis=1), np.abs(gex_exact)])
        super()._sample(t, row)


def test_sampled_series_within_tolerance_of_exact_over_20_seeds():
    """20 seeds of a non-shipped setting (see ``_stats_scenario``), tabulated: at every
    sample of every run the recorded greeks are within the stated tolerance of exact
    evaluation of the same state (delta 3/4 share, value 1 cent: books under $10M of
    gross value, gamma and the GEX at spot 1%, charm 1%), and every series value is finite."""
    worst, scale = np.zeros(7), np.zeros(7)
    tabulated = 0
    for seed in range(20):
        sc = mmsim.load_scenario(_stats_scenario(seed))
        sim = _SamplerProbe(sc, seed)
        res = sim.run()
        assert np.isfinite(res.series.drop(columns=["flip_true", "flip_visible"]).to_numpy(
            dtype=float, na_value=0.0)).all()  # fmt: skip
        tabulated += sim.book.table_samples
        worst, scale = np.maximum(worst, sim.worst), np.maximum(scale, sim.scale)
    # 32 samples x 2 holders a run: at least half of them from tables
    assert tabulated >= 20 * 32, f"{tabulated} of {20 * 64} holder-samples tabulated"
    assert worst[0] <= TOL_DELTA + TOL_VOL and worst[4] <= TOL_VALUE, worst
    _assert_relative(worst, scale)


@pytest.mark.parametrize("seed", [0, 1])
def test_sampler_reads_a_table_when_the_first_fit_misses_only_the_value(seed):
    """A customer book near expiry (130 lines, strikes $430-470 around spot 450,
    expiries 1.5, 3 and 19 days): the first fit (32 nodes, 2 hours) passes for checks
    but misses the value by far more than the sampler's 1 cent (its ``value_tol``: gross
    value under $10M; the value's curvature in time);
    the build tries the next fit, which passes both, so the sampler reads the table
    (O(1) per sample instead of every line) within its stated tolerance over 40 minutes
    of samples: delta 3/4 share, value 1 cent."""
    rng = np.random.default_rng(seed)
    n = 130
    cols = (np.round(rng.uniform(430, 470, n)), rng.choice([1.5, 3.0, 19.0], n) * DAY,
            rng.random(n) < 0.5, rng.uniform(-60, 60, n), 0)  # fmt: skip
    tab, exact = OptionBook(1, delta_table="on"), OptionBook(1, delta_table="off")
    tab.add_many(*cols)
    exact.add_many(*cols)
    vol = VolSurface(0.18, -0.25, 0.01)
    assert _value_bound(exact, 450.0, 0.0, vol) == TOL_VALUE, "not a small book"
    lines, k = tab._hot_lines(0, 0.0)
    first = build_table(lines, k, 0, 450.0, 0.0, tab.year_seconds, *vol.params(), 0.0, 0.0,
                        attempts=((32, 7_200.0),))  # fmt: skip
    assert first is not None and not first.sample_ok and first.sample_error > 10 * TOL_VALUE
    got, want = np.zeros((5, 1)), np.zeros((5, 1))
    err_d = err_v = 0.0
    for j in range(80):
        S, t = 450.0 + 3.0 * np.sin(j / 9.0), 30.0 * j
        tab.series_greeks(S, t, vol, got)
        exact.sample_greeks(S, t, vol, want)
        err_d = max(err_d, abs(got[0, 0] - want[0, 0]))
        err_v = max(err_v, abs(got[4, 0] - want[4, 0]))
    assert tab._tables[0].sample_ok and tab.table_samples == 80, tab.table_samples
    assert err_d <= TOL_DELTA + TOL_VOL and err_v <= TOL_VALUE, (err_d, err_v)


def test_the_sampler_retry_never_takes_a_fit_too_short_to_pay():
    """The book of the test above (its first fit misses only the value): offered a
    64-node, 20-minute fit as the next attempt, the build keeps the first fit (checks
    read it; the sampler evaluates the lines exactly, or reads it within the recorded
    tolerance, ``delta_table.recorded_tol``): rebuilt every 20 minutes at
    3 x 64 BSM evaluations per line, it would cost more than exact samples every 10 s
    (``SAMPLER_MIN_H``)."""
    from mmsim.delta_table import SAMPLER_MIN_H

    rng = np.random.default_rng(0)
    n = 130
    cols = (np.round(rng.uniform(430, 470, n)), rng.choice([1.5, 3.0, 19.0], n) * DAY,
            rng.random(n) < 0.5, rng.uniform(-60, 60, n), 0)  # fmt: skip
    book = OptionBook(1, delta_table="on")
    book.add_many(*cols)
    lines, k = book._hot_lines(0, 0.0)
    args = (lines, k, 0, 450.0, 0.0, book.year_seconds, 0.18, -0.25, 0.01, 0.0, 0.0)
    short = build_table(*args, attempts=((64, 1_200.0),))
    assert short is not None and short.sample_ok  # the short fit would serve the sampler
    got = build_table(*args, attempts=((32, 7_200.0), (64, 1_200.0)))
    assert 1_200.0 < SAMPLER_MIN_H and (got.H, got.sample_ok) == (7_200.0, False)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_sampler_retry_goes_past_a_fit_that_fails_the_checks(seed):
    """The book of the tests above (its 32-node, 2-hour fit passes for checks but misses
    the value by > 10 cents): when the next attempt (8 nodes, 80 minutes) fails even the
    checks, the build still tries the one after it (32 nodes, 40 minutes, at least
    ``SAMPLER_MIN_H``), which passes both: the sampler gets that table (the same
    coefficients as a build of that fit alone) instead of evaluating every line exactly
    for 2 hours. A fit shorter than ``SAMPLER_MIN_H`` after the failure is still never
    taken (the 2-hour table is kept)."""
    from mmsim.delta_table import SAMPLER_MIN_H

    rng = np.random.default_rng(seed)
    n = 130
    cols = (np.round(rng.uniform(430, 470, n)), rng.choice([1.5, 3.0, 19.0], n) * DAY,
            rng.random(n) < 0.5, rng.uniform(-60, 60, n), 0)  # fmt: skip
    book = OptionBook(1, delta_table="on")
    book.add_many(*cols)
    lines, k = book._hot_lines(0, 0.0)
    args = (lines, k, 0, 450.0, 0.0, book.year_seconds, 0.18, -0.25, 0.01, 0.0, 0.0)
    first = build_table(*args, attempts=((32, 7_200.0),))
    assert first is not None and not first.sample_ok and first.sample_error > 10 * TOL_VALUE
    assert build_table(*args, attempts=((8, 4_800.0),)) is None  # fails the checks
    alone = build_table(*args, attempts=((32, 2_400.0),))
    assert alone is not None and alone.sample_ok and alone.sample_error <= 0.5 * TOL_VALUE
    got = build_table(*args, attempts=((32, 7_200.0), (8, 4_800.0), (32, 2_400.0)))
    assert (got.H, got.sample_ok) == (2_400.0, True), "sampler retry stopped at a failed fit"
    assert np.array_equal(got.coef, alone.coef) and np.array_equal(got.scoef, alone.scoef)
    kept = build_table(*args, attempts=((32, 7_200.0), (8, 4_800.0), (64, 1_200.0)))
    assert 1_200.0 < SAMPLER_MIN_H and (kept.H, kept.sample_ok) == (7_200.0, False)


def _book_trades(book: OptionBook, rng: np.random.Generator, k: int, t: float) -> None:
    """``k`` trades at clock ``t``: half resize existing lines (the same strike, expiry and
    type booked again), half open new ones 2-60 days out (after any table's near cut)."""
    for j in range(k):
        if j % 2 and book.n:
            i = int(rng.integers(0, book.n))
            K, E = float(book._packed[0, i]), float(book._packed[1, i])
            if E <= t + 4 * DAY:
                continue
            call = bool(book._packed[2, i] != 0.0)
        else:
            K, E, call = round(float(rng.uniform(85, 115)), 1), t + rng.uniform(4, 60) * DAY, True
        book.add(K, E, call, float(rng.uniform(-20, 20)), int(rng.integers(0, 2)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_profile_table_with_trades_folded_in_bounds_the_exact_profile_like_a_rebuilt_one(
    seed,
):
    """Trades folded into the flips' profile table (``profile_table.fold_profile``: gamma
    is linear in the weights) instead of a rebuild, 3 x 90 trades on a 1,000-line book
    over half a day: the folded table (plus its exact near lines) is within its ``eps``
    of the exact profile at every point of the flip grid at 5 clocks, within the two
    tables' ``eps`` of a table rebuilt from the same book at the same clock and spot,
    its ``eps`` within ``MAX_EPS`` of the scale, and its flips equal the full walk-out
    bit for bit, with no build after the first."""
    from mmsim.book_kernels import gamma_pair_at
    from mmsim.profile_table import MAX_EPS, _add_table, build_profile, gamma_pair

    rng = np.random.default_rng(40 + seed)
    book, _, _ = _random_book(seed, 1_000, 2, "on", near=0.5)
    vol = VolSurface(0.2, -0.2 * (seed % 2), 0.02)
    surface = book._surface(vol)
    S0 = 100.0
    book.flips(S0, 0.0, vol)
    assert book.profile_builds == 1 and book._profile is not None
    for step in range(1, 4):
        t = 3_600.0 * step
        _book_trades(book, rng, 90, t)
        S = S0 * (1.0 + 0.01 * rng.normal())
        lines, n = book._live_lines(t)
        ft, xt, fv, xv = nearest_flips(S * _FLIP_GRID, _FLIP_MID, S, t, book.year_seconds,
                                       lines, n, *surface)  # fmt: skip
        want = (float(xt) if ft else None), (float(xv) if fv else None)
        assert book.flips(S, t, vol) == want, f"seed {seed} step {step}: flips off"
        assert book.profile_folds == step and book.profile_builds == 1, "folded, not rebuilt"
        tab = book.profile_table(S, t, surface)
        assert tab is not None and tab.t0 == 0.0
        for t_eval in (t, t + 2_000.0, tab.t0 + 0.5 * tab.H, tab.t0 + tab.H - 1.0, tab.t0):
            if t_eval < t:
                continue  # the book's live lines at t: no earlier clock
            grid = S * _FLIP_GRID
            est = np.zeros((2, grid.size))
            gamma_pair(grid, t_eval, book.year_seconds, tab.extra, tab.n_extra, *surface, est)
            _add_table(tab.coef, (t_eval - tab.t0) / tab.H, (grid - tab.center) / tab.half, est)
            exact = np.array([gamma_pair_at(x, t_eval, book.year_seconds, lines, n, *surface)
                              for x in grid]).T  # fmt: skip
            err = np.abs(est - exact).max(axis=1)
            assert np.all(err <= tab.eps), f"seed {seed} step {step}: {err} > eps {tab.eps}"
            fresh = build_profile(lines, n, tab.spot, tab.t0, book.year_seconds, surface)
            assert fresh is not None and fresh.H == tab.H  # (its nodes: the first that pass)
            fr = np.zeros((2, grid.size))
            gamma_pair(grid, t_eval, book.year_seconds, fresh.near, fresh.near.shape[1],
                       *surface, fr)  # fmt: skip
            _add_table(fresh.coef, (t_eval - tab.t0) / tab.H, (grid - tab.center) / tab.half, fr)
            gap = np.abs(est - fr).max(axis=1)
            assert np.all(gap <= tab.eps + fresh.eps), f"seed {seed}: folded vs rebuilt {gap}"
        scale = np.abs(tab.slices).max(axis=(0, 2))
        assert np.all(tab.eps <= MAX_EPS * scale + 1e-9), "eps grew past MAX_EPS"


@pytest.mark.parametrize("seed", [1, 3])
def test_a_profile_table_tabulates_lines_two_and_a_half_sessions_out_within_eps(seed):
    """A 300-line book of one expiry 2.5 sessions out (strikes $90-110 around spot 100):
    the flips' profile table tabulates it (no near lines summed exactly at every grid
    point; ``NEAR_MIN_SECONDS`` a session, not three) and its profile is within ``eps``
    of the exact one at every point of the flip grid, at 7 clocks over its span and 3
    spots."""
    from mmsim.book_kernels import gamma_pair_at
    from mmsim.profile_table import _add_table, build_profile

    rng = np.random.default_rng(seed)
    n = 300
    book = OptionBook(1, delta_table="on")
    book.add_many(np.round(rng.uniform(90, 110, n)), np.full(n, 2.5 * DAY), rng.random(n) < 0.5,
                  rng.uniform(-60, 60, n), 0)  # fmt: skip
    surface = book._surface(VolSurface(0.2, -0.2, 0.02))
    lines, m = book._live_lines(0.0)
    tab = build_profile(lines, m, 100.0, 0.0, book.year_seconds, surface)
    assert tab is not None and tab.near.shape[1] == 0, "the 2.5-session lines tabulated"
    for t in np.linspace(0.0, tab.H, 7):
        for S in (98.0, 100.0, 103.0):
            grid = S * _FLIP_GRID
            est = np.zeros((2, grid.size))
            _add_table(tab.coef, t / tab.H, (grid - tab.center) / tab.half, est)
            exact = np.array([gamma_pair_at(x, t, book.year_seconds, lines, m, *surface)
                              for x in grid]).T  # fmt: skip
            err = np.abs(est - exact).max(axis=1)
            assert np.all(err <= tab.eps), f"t {t:.0f} s, S {S}: error {err} > eps {tab.eps}"


def _walk_reach(grid: np.ndarray, S: float, found: bool, x: float) -> np.ndarray:
    """The grid points a view's walk out from ``S`` must know the sign of: those no
    farther from ``S`` than its nearest crossing ``x`` (plus a grid step: the point past
    it), or the whole grid when it has none."""
    if not found:
        return np.ones(grid.size, bool)
    return np.abs(grid - S) <= abs(x - S) + (grid[1] - grid[0]) + 1e-9


def test_table_flips_leave_a_point_unpriced_that_only_the_other_view_doubts():
    """A view's walk prices a grid point only where *its own* table sign is in doubt
    (or at its crossing): a point the table leaves in doubt only in the other view, which
    that view's walk never reaches, goes unpriced (~0.3 ms a full-book sum on 10k lines;
    on the synthetic 10,000-line book of ``benchmarks.books`` the true view, with no
    crossing, walks the whole grid while the visible view's near-zero point at ~$119 lies
    beyond its crossing at ~$86: 3 full-book sums a day, now none). On the six 2,000-line
    books of the test above at 12 spots and clocks each, and their tables at ``eps``
    grown 30x (more points in doubt), the flips equal ``nearest_flips`` bit for bit and
    the points priced are at most each view's points in doubt within its own walk's
    reach (:func:`_walk_reach`) plus the two points around each crossing; with the sign
    of every point in doubt taken in both views at once (the walk before), that bound
    fails in several cases."""
    from mmsim.profile_table import _add_table, walk_flips

    tight = 0
    for seed, book, surface, lines, m, tab in _crossing_books():
        eps = 30.0 * tab.eps  # a looser (still valid) bound: more points in doubt
        for k in range(12):
            S, t = 100.0 + 2.0 * np.sin(k), 1_950.0 * k
            grid = S * _FLIP_GRID
            got = walk_flips(grid, _FLIP_MID, S, t, t / tab.H, tab.center, tab.half, tab.coef,
                             eps, tab.near, 0, book.year_seconds, lines, m,
                             *surface)  # fmt: skip
            want = nearest_flips(grid, _FLIP_MID, S, t, book.year_seconds, lines, m, *surface)
            case = f"seed {seed}, S={S:.2f}, t={t:.0f}"
            assert got[:4] == tuple(want) and not got[4], f"{case}: {got[:5]} != {want}"
            est = np.zeros((2, grid.size))
            _add_table(tab.coef, t / tab.H, (grid - tab.center) / tab.half, est)
            doubt = np.abs(est) <= eps[:, None]
            own = doubt[0] & _walk_reach(grid, S, want[0], want[1])
            own |= doubt[1] & _walk_reach(grid, S, want[2], want[3])
            bound = int(np.count_nonzero(own)) + 2 * (want[0] + want[2])
            assert got[5] <= bound, f"{case}: priced {got[5]} points, bound {bound}"
            tight += int(np.count_nonzero(doubt.any(axis=0))) + 2 * (want[0] + want[2]) > bound
    assert tight >= 6, f"only {tight} of 72 cases have a point in doubt beyond its view's walk"


def test_close_values_read_an_up_to_date_table_within_its_value_tolerance():
    """``OptionBook.close_values`` (the result's ``pnl_after_close``) on a 2,000-line,
    3-holder book (``_random_book``) over 40 points of a day (spot +-4 $): a holder whose
    table is up to date and samples there is valued from it, within its ``tol_value``
    (1 cent on this book) of :meth:`value`'s exact pricing and not its bits (the table
    answered, no line priced); a holder without such a table is priced exactly, bit for
    bit, and so is every holder of the same book with ``delta_table:
    off`` and every holder at a spot off its table's grid (no table is built there)."""
    tab, cols, kw = _random_book(5, 2_000, 3, "on")
    exact = OptionBook(3, delta_table="off")
    exact.add_many(*cols, **kw)
    vol = VolSurface(0.2, -0.2, 0.02)
    scratch = np.zeros((5, 3))
    from_table = 0
    for k in range(40):
        S, t = 100.0 + 4.0 * np.sin(k / 7.0), 500.0 * k
        tab.series_greeks(S, t, vol, scratch)  # what builds and refreshes the tables
        got, want = tab.close_values(S, t, vol), tab.value(S, t, vol)
        for h in range(3):
            table = tab._tables[h]
            if table is not None and table.samples(S, t, *vol.params()):
                tol = table.sample_table().tol_value
                assert abs(got[h] - want[h]) <= tol, f"k={k}, holder {h}: {got[h] - want[h]:.3g} $"
                from_table += got[h] != want[h]
            else:
                assert got[h] == want[h], f"k={k}, holder {h}: exact holder not bit for bit"
        off = exact.close_values(S, t, vol)
        assert np.array_equal(off, exact.value(S, t, vol)), f"k={k}: delta_table off"
    assert from_table >= 60, f"only {from_table} of 120 holder values read from a table"
    S, t = 100.0 * (1.0 + 2.0 * HALF_WIDTH), 20_000.0  # off every table's spot grid
    got, want = tab.close_values(S, t, vol), tab.value(S, t, vol)
    assert np.array_equal(got, want), "holders whose tables cannot answer: exact, bit for bit"
