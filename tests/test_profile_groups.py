"""The flips' profile table fits its wide lines apart with fewer nodes
(``profile_table.WIDE_GROUPS``): a table so built still bounds the exact GEX profile by
its ``eps`` everywhere it answers, and the flips read from it are the full walk-out's,
bit for bit, on books (30 seeds, not a shipped scenario) whose lines span all the groups."""

from __future__ import annotations

import numpy as np
import pytest

from mmsim import profile_table
from mmsim.book import _FLIP_GRID, _FLIP_MID, OptionBook
from mmsim.book_kernels import gamma_pair_at, nearest_flips
from mmsim.vol import VolSurface

DAY = 23_400.0


def _wide_book(seed: int, n: int) -> tuple[OptionBook, VolSurface]:
    """``n`` lines struck $70-130 (to the dime), 4-500 sessions out (widths
    ``sigma sqrt(T)`` ~0.02-0.6), +-4 vol points of offset, 60% listed, two holders, on a
    skewed surface with a floor (level 0.15-0.35)."""
    rng = np.random.default_rng(900 + seed)
    book = OptionBook(2, delta_table="on")
    book.add_many(np.round(rng.uniform(70, 130, n), 1), rng.uniform(4, 500, n) * DAY,
                  rng.random(n) < 0.5, rng.uniform(-1, 1, n) * 10.0, rng.integers(0, 2, n),
                  visible=rng.random(n) < 0.6, iv_offset=rng.uniform(-0.04, 0.04, n))  # fmt: skip
    return book, VolSurface(0.15 + 0.2 * rng.random(), -0.3 * rng.random(), 0.03)


def test_wide_groups_are_fitted_with_fewer_nodes_and_the_table_bounds_the_exact_profile():
    """30 books of 400 lines: each build fits at least one wide group with fewer nodes
    than the narrow lines' 64 (counted at ``profile_table._fit``), and at 3 spots within
    the table's 5% and 4 clocks over its span, the table plus its exact near lines is
    within ``eps`` (shares per $1, both views) of the exact profile at every point of the
    241-point flip grid, and the flips read from it equal
    :func:`~mmsim.book_kernels.nearest_flips` bit for bit (None where it is None)."""
    fits: list[int] = []
    fit = profile_table._fit

    def counted(lines, nodes, *args):
        fits.append(nodes)
        return fit(lines, nodes, *args)

    mp = pytest.MonkeyPatch()
    mp.setattr(profile_table, "_fit", counted)
    try:
        for seed in range(30):
            book, vol = _wide_book(seed, 400)
            surface = book._surface(vol)
            fits.clear()
            S0 = 100.0
            book.flips(S0, 0.0, vol)
            tab = book.profile_table(S0, 0.0, surface)
            assert tab is not None and book.profile_builds == 1, f"seed {seed}: no table"
            assert min(fits) < 64, f"seed {seed}: every group at 64 nodes ({fits})"
            lines, n = book._live_lines(0.0)
            for S in (0.96 * S0, S0, 1.04 * S0):
                grid = S * _FLIP_GRID
                for t in (0.0, 0.3 * tab.H, 0.7 * tab.H, tab.H):
                    est = np.zeros((2, grid.size))
                    profile_table.gamma_pair(grid, t, book.year_seconds, tab.near,
                                             tab.near.shape[1], *surface, est)  # fmt: skip
                    profile_table._add_table(tab.coef, t / tab.H, (grid - tab.center) / tab.half,
                                             est)  # fmt: skip
                    exact = np.array([gamma_pair_at(x, t, book.year_seconds, lines, n, *surface)
                                      for x in grid]).T  # fmt: skip
                    err = np.abs(est - exact).max(axis=1)
                    where = f"seed {seed}, S={S:.1f}, t={t:.0f}"
                    assert np.all(err <= tab.eps), f"{where}: error {err} > eps {tab.eps}"
                    ft, xt, fv, xv = nearest_flips(grid, _FLIP_MID, S, t, book.year_seconds,
                                                   lines, n, *surface)  # fmt: skip
                    want = (float(xt) if ft else None), (float(xv) if fv else None)
                    assert book.flips(S, t, vol) == want, f"{where}: flips"
            assert book.profile_misses == 0, f"seed {seed}: the table's bound failed"
    finally:
        mp.undo()


def test_a_group_fitted_no_better_than_the_narrow_lines_allow_is_refitted_with_their_nodes():
    """``GROUP_SHARE``: with it at 0 (no wide group's error is small enough) every group
    is fitted with the attempt's nodes, and the table's coefficients equal, up to
    rounding, those of one fit of all the far lines (gamma is linear in the weights)."""
    book, vol = _wide_book(0, 300)
    surface = (*book._surface(vol),)
    lines, n = book._live_lines(0.0)
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(profile_table, "GROUP_SHARE", 0.0)
        mp.setattr(profile_table, "GROUP_FLOOR", 0.0)
        grouped = profile_table.build_profile(lines, n, 100.0, 0.0, book.year_seconds, surface)
        mp.setattr(profile_table, "WIDE_GROUPS", ())
        whole = profile_table.build_profile(lines, n, 100.0, 0.0, book.year_seconds, surface)
    finally:
        mp.undo()
    assert grouped is not None and whole is not None
    scale = np.abs(whole.coef).max()
    gap = np.abs(grouped.coef - whole.coef).max()
    assert gap <= 1e-12 * scale, f"refitted groups off the single fit by {gap / scale:.1e}"


def test_short_dated_wide_lines_stay_with_the_narrow_ones():
    """Lines as wide as the widest group (``sigma sqrt(T)`` 0.13-0.2: vol 100-150%, 4-10
    sessions out) but expiring within ``WIDE_MIN_SPANS`` table spans: their gamma moves in
    time as fast as a narrow line's, so they are fitted with the attempt's nodes (every
    ``_fit`` at 64 here), not apart."""
    rng = np.random.default_rng(5)
    n = 300
    book = OptionBook(1, delta_table="on")
    book.add_many(np.round(rng.uniform(80, 120, n), 1), rng.uniform(4, 10, n) * DAY,
                  rng.random(n) < 0.5, rng.uniform(-1, 1, n) * 10.0, 0,
                  iv_offset=rng.uniform(0.0, 0.5, n))  # fmt: skip
    vol = VolSurface(1.0, 0.0, 0.0)
    surface = book._surface(vol)
    lines, n = book._live_lines(0.0)
    width = profile_table._widths(lines[:, :n], 0.0, book.year_seconds, surface)
    assert width.min() >= 0.12, f"every line as wide as the widest group: {width.min():.3f}"
    fits: list[int] = []
    fit = profile_table._fit
    mp = pytest.MonkeyPatch()
    mp.setattr(
        profile_table, "_fit", lambda lines, nodes, *a: fits.append(nodes) or fit(lines, nodes, *a)
    )
    try:
        tab = profile_table.build_profile(lines, n, 100.0, 0.0, book.year_seconds, surface)
    finally:
        mp.undo()
    assert tab is not None and set(fits) == {64}, f"fits at {fits} nodes"
