"""The compiled levels pass (``mmsim.level_kernels``) with its strike grouping kept
across samples: the same 12 level columns, bit for bit, as grouping afresh each time
(``levels_row``, itself checked against the book's numpy methods in test_sampler.py).

Settings are not shipped ones: random books of 1-300 lines (a $5 strike grid and
strikes off it, OTC lines, both signs), lines expiring between samples, lines booked
between samples, spots 0.8-1.2 x the strike centre, clocks over 3 days.
"""

from __future__ import annotations

import numpy as np
import pytest

from mmsim.book import _FLIP_GRID, _FLIP_MID, OptionBook
from mmsim.level_kernels import StrikeGroups, levels_row, levels_row_grouped
from mmsim.vol import VolSurface


def _add(book: OptionBook, rng: np.random.Generator, n: int, t: float) -> None:
    strikes = np.where(rng.random(n) < 0.7, 5.0 * rng.integers(16, 25, n), rng.uniform(80, 120, n))
    qty = rng.integers(1, 500, n) * rng.choice([-1.0, 1.0], n)
    expiry = t + 23_400.0 * rng.uniform(0.01, 3.0, n)
    book.add_many(strikes, expiry, rng.random(n) < 0.5, qty, rng.integers(0, 2, n),
                  rng.random(n) < 0.8)  # fmt: skip


@pytest.mark.parametrize("seed", range(10))
def test_kept_strike_groups_give_the_fresh_levels_bit_for_bit(seed):
    rng = np.random.default_rng(100 + seed)
    book = OptionBook(2, delta_table="off")
    vol = VolSurface(0.15 + 0.2 * rng.random(), skew=-0.3 * rng.random())
    _add(book, rng, int(rng.integers(1, 300)), 0.0)
    groups = StrikeGroups()
    kept = rebuilt = 0
    for t in np.sort(rng.uniform(0.0, 3 * 23_400.0, 40)):
        if rng.random() < 0.15:  # booked between samples: the version moves
            _add(book, rng, int(rng.integers(1, 5)), float(t))
        S = float(100.0 * rng.uniform(0.8, 1.2))
        lines, n = book._live_lines(float(t))
        before = groups._key
        got, want = np.full(12, -7.0), np.full(12, -7.0)
        flips = bool(rng.random() < 0.5)
        levels_row_grouped(S, float(t), book.year_seconds, lines, n, *book._surface(vol),
                           _FLIP_GRID, _FLIP_MID, flips, False,
                           *groups.of(lines, n, book.version),
                           got)  # fmt: skip
        levels_row(S, float(t), book.year_seconds, lines, n, *book._surface(vol), _FLIP_GRID,
                   _FLIP_MID, flips, want)  # fmt: skip
        same = (got == want) | (np.isnan(got) & np.isnan(want))
        assert same.all(), f"seed {seed}, S={S}, t={t}: kept groups {got} != fresh {want}"
        kept += groups._key is before
        rebuilt += groups._key is not before
    assert kept > 0 and rebuilt > 1, f"groups kept {kept}, rebuilt {rebuilt}: nothing tested"


@pytest.mark.parametrize("seed", range(4))
def test_strike_groups_from_any_argsort_equal_numpy_unique(seed):
    """``strike_groups_sorted`` (both views' groupings from one numpy argsort of all the
    lines' strikes, as ``StrikeGroups`` computes them) against ``np.unique`` of each
    view's weighted strikes: the same strikes, line indices (-1 without weight) and
    call/put flags, whatever the order among equal strikes (quicksort, stable, and the
    equal strikes' lines reversed); so is ``strike_groups``. Books of 1-2,000 lines on a
    $1 grid (many lines per strike), weights zero in one view only or in both."""
    from mmsim.book_kernels import ROW_IS_CALL, ROW_STRIKE, ROW_UNITS, ROW_VIS_W
    from mmsim.level_kernels import strike_groups, strike_groups_sorted

    rng = np.random.default_rng(300 + seed)
    n = int(rng.integers(1, 2_000))
    lines = np.zeros((max(ROW_STRIKE, ROW_IS_CALL, ROW_UNITS, ROW_VIS_W) + 1, n))
    lines[ROW_STRIKE] = rng.integers(80, 121, n).astype(float)
    lines[ROW_IS_CALL] = rng.random(n) < 0.5
    lines[ROW_UNITS] = np.where(rng.random(n) < 0.2, 0.0, rng.normal(0.0, 100.0, n))
    lines[ROW_VIS_W] = np.where(rng.random(n) < 0.3, 0.0, lines[ROW_UNITS])
    k = lines[ROW_STRIKE]
    orders = (np.argsort(k), np.argsort(k, kind="stable"), np.lexsort((-np.arange(n), k)))
    for row in (ROW_UNITS, ROW_VIS_W):
        live = lines[row] != 0.0
        strikes, inv = np.unique(k[live], return_inverse=True)
        want_inv = np.full(n, -1)
        want_inv[live] = inv
        calls = lines[ROW_IS_CALL, live] != 0.0
        has_call = np.bincount(inv, weights=calls, minlength=strikes.size) > 0
        has_put = np.bincount(inv, weights=~calls, minlength=strikes.size) > 0
        for order in (*orders, None):
            got = (strike_groups(lines, n, row) if order is None
                   else strike_groups_sorted(lines, n, row, order))  # fmt: skip
            assert np.array_equal(got[0], want_inv), f"seed {seed}, row {row}: line indices"
            assert np.array_equal(got[1], strikes), f"seed {seed}, row {row}: strikes"
            assert np.array_equal(got[2], has_call), f"seed {seed}, row {row}: has_call"
            assert np.array_equal(got[3], has_put), f"seed {seed}, row {row}: has_put"


@pytest.mark.parametrize("seed", range(6))
def test_the_profile_fit_gamma_equals_the_exact_gamma_sums_up_to_rounding(seed):
    """``profile_table.gamma_pair_fit`` (the fit's nodes) against ``gamma_pair`` (exact,
    what the fit is validated against): within 1e-12 of the gross gamma sum (shares per
    $1) at every spot; rates and dividends, skew 0 or not, a floor, vol offsets, expiries
    1-250 days away (the fit takes only lines 3 days or more from expiry; nearer ones are
    summed exactly beside it), spots 0.5-2 x the strikes' centre."""
    from mmsim.book_kernels import ROW_UNITS, ROW_VIS_W
    from mmsim.profile_table import gamma_pair, gamma_pair_fit

    rng = np.random.default_rng(200 + seed)
    book = OptionBook(2, delta_table="off")
    n, t0 = 400, 300.0 * seed
    book.add_many(rng.uniform(50, 150, n), t0 + 23_400.0 * 10.0 ** rng.uniform(0.0, 2.4, n),
                  rng.random(n) < 0.5, rng.integers(1, 50, n) * rng.choice([-1.0, 1.0], n),
                  rng.integers(0, 2, n), rng.random(n) < 0.8,
                  iv_offset=rng.normal(0.0, 0.05, n))  # fmt: skip
    skew = 0.0 if seed % 3 == 0 else -0.4 * rng.random()
    surface = (0.05 + 0.4 * rng.random(), skew, 0.01 * (seed % 2), 0.05 * rng.random(),
               0.03 * rng.random() * (seed % 2))  # fmt: skip
    lines = np.ascontiguousarray(book._packed[:, : book._n])
    spots = np.sort(rng.uniform(50.0, 200.0, 97))
    exact, fit, gross = np.zeros((2, 97)), np.zeros((2, 97)), np.zeros((2, 97))
    gamma_pair(spots, t0, book.year_seconds, lines, n, *surface, exact)
    gamma_pair_fit(spots, t0, book.year_seconds, lines, n, *surface, fit)
    absolute = lines.copy()
    absolute[ROW_UNITS] = np.abs(lines[ROW_UNITS])
    absolute[ROW_VIS_W] = np.abs(lines[ROW_VIS_W])
    gamma_pair(spots, t0, book.year_seconds, absolute, n, *surface, gross)
    assert np.all(gross > 0.0), "a spot without gamma: nothing compared"
    err = np.abs(fit - exact) / gross
    assert err.max() <= 1e-12, f"seed {seed}: fit gamma off by {err.max():.2e} of gross"


def _walls_oracle(book: OptionBook, S: float, t: float, vol: VolSurface) -> np.ndarray:
    """Level columns 2-11 from the book's numpy methods (every line priced exactly)."""

    def f(x):
        return np.nan if x is None else float(x)

    cw, pw = book.walls(S, t, vol, "true")
    cwv, pwv = book.walls(S, t, vol, "visible")
    row = [f(cw), f(pw), f(cwv), f(pwv)]
    strike = []
    for wall in (cwv, pwv):
        row += [np.nan, np.nan] if wall is None else list(book.gex_views_at(wall, t, vol))
        strike.append(np.nan if wall is None else book.strike_gex(S, t, vol, wall, "true"))
    return np.array(row + strike)


@pytest.mark.parametrize("seed", range(8))
def test_fast_walls_equal_exact_pricing_bit_for_bit_with_near_ties_and_near_expiry(seed):
    """The walls come from a fast pricing checked exactly where it could decide
    (``_view_walls``): on books of 300-3,000 lines (dozens of lines per strike, dividends,
    vol offsets, lines minutes from expiry) with two strikes made to tie within a few
    ulps of their GEX (so the check must decide), the walls, the GEX at them and the
    strike GEX equal the book's exact methods bit for bit, at spots 0.9-1.1 x, clocks
    over a day."""
    rng = np.random.default_rng(300 + seed)
    book = OptionBook(2, q=0.02 * (seed % 2), r=0.03, delta_table="off")
    n = int(rng.integers(300, 3000))
    strikes = 2.5 * rng.integers(32, 49, n)  # $80-120 on a $2.5 grid: ~20-180 per strike
    expiry = 23_400.0 * np.where(rng.random(n) < 0.1, rng.uniform(0.001, 0.05, n),
                                 rng.uniform(0.05, 60.0, n))  # fmt: skip
    book.add_many(strikes, expiry, rng.random(n) < 0.5, rng.integers(1, 50, n) *
                  rng.choice([-1.0, 1.0], n), rng.integers(0, 2, n), rng.random(n) < 0.8,
                  iv_offset=rng.normal(0.0, 0.02, n))  # fmt: skip
    vol = VolSurface(0.15 + 0.1 * rng.random(), skew=-0.3 * rng.random())
    S0, t0 = 100.0 * (0.9 + 0.2 * rng.random()), 0.0
    # two fresh strikes tying within ulps, far above the rest: the call wall must be decided
    lines, k = book._live_lines(t0)
    unit = np.empty(2)
    pair = np.zeros((7, 2))
    pair[0] = (S0 * 1.003, S0 * 0.997)
    pair[1] = 23_400.0 * 30.0
    pair[2] = 1.0
    pair[3] = 1.0
    pair[5] = 1.0
    from mmsim.book_kernels import line_gamma

    line_gamma(S0, t0, book.year_seconds, pair, 2, *book._surface(vol), unit)
    big = 40.0 * np.abs(lines[3, :k]).max()
    book.add_many(pair[0], pair[1], np.ones(2, bool), np.array([big, big * unit[0] / unit[1]])
                  / 100.0, np.zeros(2, np.int64), np.ones(2, bool))  # fmt: skip
    ties = 0
    for S, t in [
        (S0, t0),
        *((S0 * rng.uniform(0.9, 1.1), rng.uniform(0, 23_400)) for _ in range(6)),
    ]:
        lines, k = book._live_lines(t)
        out = np.full(12, -7.0)
        levels_row(S, t, book.year_seconds, lines, k, *book._surface(vol), _FLIP_GRID,
                   _FLIP_MID, False, out)  # fmt: skip
        want = _walls_oracle(book, S, t, vol)
        same = (out[2:] == want) | (np.isnan(out[2:]) & np.isnan(want))
        assert same.all(), f"seed {seed} S={S:.3f} t={t:.0f}: {out[2:]} != {want}"
        _, call, *_ = book._by_strike(S, t, vol, "true")
        top = np.sort(np.abs(call))[-2:]
        ties += bool(top[1] - top[0] <= 1e-13 * top[1])
    assert ties >= 1, "the tied pair did not tie: the check was not exercised"


@pytest.mark.parametrize("seed", range(6))
def test_strike_groups_are_reused_when_a_trade_leaves_the_strikes_as_they_were(seed):
    """Trades on existing lines (the book's version moves, a new live table is built)
    keep the grouping unless a line's weight goes to or from zero (it leaves or joins
    its strike): the kept groups equal fresh ones, element for element, and are
    computed afresh only when the strikes changed (40 trades over one 6.5 h day)."""
    from mmsim.book_kernels import ROW_IS_CALL, ROW_STRIKE, ROW_UNITS, ROW_VIS_W
    from mmsim.level_kernels import strike_groups, strike_logs

    rng = np.random.default_rng(300 + seed)
    book = OptionBook(2, delta_table="off")
    _add(book, rng, int(rng.integers(20, 200)), 0.0)
    groups = StrikeGroups()
    changed = 0
    for t in np.sort(rng.uniform(0.0, 23_000.0, 40)):
        lines0, n0 = book._live_lines(float(t))
        groups.of(lines0, n0, book.version)  # lines expired since: new groups
        i = int(rng.integers(0, book._n))
        zero = rng.random() < 0.2  # close the line out (its weight goes to zero)
        qty = -book._qty[i] if zero else float(rng.integers(1, 50))
        book.add(book._strike[i], book._expiry[i], book._is_call[i], qty, book._holder[i],
                 visible=book._visible[i], multiplier=book._mult[i])  # fmt: skip
        lines, n = book._live_lines(float(t))
        assert lines is not lines0, "a trade must give a new live table"
        before = groups.computed
        got = groups.of(lines, n, book.version)
        want = (*strike_groups(lines, n, ROW_UNITS), *strike_groups(lines, n, ROW_VIS_W),
                strike_logs(lines, n))  # fmt: skip
        for g, w in zip(got, want, strict=True):
            assert np.array_equal(g, w), f"seed {seed}, t={t}: kept groups differ from fresh"
        ids, weights = [ROW_STRIKE, ROW_IS_CALL], [ROW_UNITS, ROW_VIS_W]
        moved = n != n0 or not (
            np.array_equal(lines0[ids], lines[ids])
            and np.array_equal(lines0[weights] != 0.0, lines[weights] != 0.0)
        )
        changed += moved
        assert groups.computed - before == moved, (
            f"seed {seed}, t={t}: groups computed {groups.computed - before} times, "
            f"strikes changed: {moved}"
        )
    assert changed < 40 and changed > 0, f"computed {groups.computed}, changed {changed}"
