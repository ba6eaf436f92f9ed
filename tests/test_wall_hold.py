"""Walls from a proven spot x time box (``mmsim.wall_hold``): the same level row, bit for
bit, as the full pass (``level_kernels.levels_row_grouped``) at every point of the box,
and the same series as ``engine.levels_hold: off`` in whole runs.

Settings are not shipped ones: random books of 300-3,000 lines (strikes on a $1 grid
and to the cent, so top strikes nearly tie, OTC lines, both signs, 0.6-60 day
expiries, some within the box's span), skews 0 to -0.4, vol 12-40%, dividends.
"""

from __future__ import annotations

import numpy as np
import pytest

import mmsim
from benchmarks import cases
from mmsim.book import _FLIP_GRID, _FLIP_MID, OptionBook
from mmsim.book_kernels import ROW_EXPIRY, ROW_STRIKE, ROW_UNITS, ROW_VIS_W
from mmsim.engine import Simulation
from mmsim.level_kernels import StrikeGroups, _at_wall, levels_row_grouped
from mmsim.vol import VolSurface
from mmsim.wall_hold import (
    BOXES,
    WIDE_BOX,
    WallBox,
    _at_walls_fast,
    levels_row_held,
    row_scratch,
    wall_box,
)

SPAN_DAY = 23_400.0


def _book(rng: np.random.Generator, n: int) -> OptionBook:
    book = OptionBook(2, delta_table="off", q=0.02 * rng.random())
    strikes = np.where(rng.random(n) < 0.5, np.round(rng.uniform(85, 115, n)),
                       np.round(rng.uniform(85, 115, n), 2))  # fmt: skip
    qty = rng.integers(1, 50, n) * rng.choice([-1.0, 1.0], n, p=[0.35, 0.65])
    expiry = SPAN_DAY * rng.uniform(0.6, 60.0, n)
    book.add_many(strikes, expiry, rng.random(n) < 0.5, qty, rng.integers(0, 2, n),
                  rng.random(n) < 0.8)  # fmt: skip
    return book


def _rows(book, vol, S0, t0, box, points, rng, masks=None):
    """(worst mismatch count, points compared, candidate lines): the held row against
    the full pass at ``points`` random (S, t) of ``box`` = (move, span) around (S0, t0);
    ``masks`` overrides the box's candidate strikes."""
    move, span = box
    lines, n = book._live_lines(t0)
    if move == 0.0:  # time alone: up to the next expiry (the sampler's box ends there)
        span = min(span, float(lines[ROW_EXPIRY, :n].min()) - t0 - 1.0)
    groups = StrikeGroups().of(lines, n, book.version)
    surface = book._surface(vol)
    s_lo, s_hi, t_hi = S0 * (1 - move), S0 * (1 + move), t0 + span
    *held, count = wall_box(s_lo, s_hi, t0, t_hi, book.year_seconds, lines, n, *surface,
                            groups[8], *groups[:8])  # fmt: skip
    if masks is not None:
        held = masks
    has, scratch = row_scratch(groups)  # one scratch for every row, as a box's
    bad = 0
    for k in range(points):
        # the corners and edges too: that is where gamma moves most
        S = [s_lo, s_hi, S0][k] if k < 3 else float(rng.uniform(s_lo, s_hi))
        t = [t0, t_hi][k % 2] if k < 6 else float(rng.uniform(t0, t_hi))
        if lines is not book._live_lines(t)[0]:
            continue  # a line expired inside the span: the sampler's box ends there
        want, got = np.full(12, -7.0), np.full(12, -7.0)
        levels_row_grouped(S, t, book.year_seconds, lines, n, *surface, _FLIP_GRID, _FLIP_MID,
                           False, False, *groups, want)  # fmt: skip
        levels_row_held(S, t, book.year_seconds, lines, n, *surface, False, False, groups[8],
                        *groups[:8], *held, has, scratch, got)  # fmt: skip
        same = (got == want) | (np.isnan(got) & np.isnan(want))
        bad += int(not same[2:].all())
        assert not scratch.any(), f"S={S}, t={t}: the held row left its scratch non-zero"
    return bad, count, held


@pytest.mark.parametrize("seed", range(6))
def test_held_walls_equal_the_full_pass_bit_for_bit_anywhere_in_the_box(seed):
    """At 60 points of each of :data:`~mmsim.wall_hold.BOXES`, of
    :data:`~mmsim.wall_hold.WIDE_BOX` and of a box over two days
    at a fixed spot (corners included) the
    held row's walls, strike GEX and GEX at the walls equal the full pass bit for bit;
    the candidates are few (the check is not vacuous: at most half the lines). With
    the candidates of a zero-size box at the centre (what a bound ignoring the spot and
    clock moves would give), some point of the box has other walls: the test can fail."""
    rng = np.random.default_rng(500 + seed)
    n = int(rng.integers(300, 3_000))
    book = _book(rng, n)
    vol = VolSurface(0.12 + 0.28 * rng.random(), skew=-0.4 * rng.random() * (seed % 3 != 0))
    wrong_with_point_box = 0
    for box in (*BOXES, WIDE_BOX, (0.0, 2 * SPAN_DAY)):  # and one over time alone
        for _ in range(3):
            S0 = float(100.0 * rng.uniform(0.92, 1.08))
            t0 = float(rng.uniform(0.0, 2 * SPAN_DAY))
            bad, count, _ = _rows(book, vol, S0, t0, box, 60, rng)
            assert bad == 0, f"seed {seed}, box {box}, S0={S0:.3f}, t0={t0:.0f}: {bad} rows differ"
            assert count <= n, f"seed {seed}: {count} candidate lines of {2 * n} (both views)"
            point = _rows(book, vol, S0, t0, (0.0, 0.0), 0, rng)[2]
            wrong_with_point_box += _rows(book, vol, S0, t0, (box[0] * 4, box[1] * 4), 60, rng,
                                          masks=point)[0]  # fmt: skip
    assert wrong_with_point_box > 0, "a point box's candidates never failed: no test power"


@pytest.mark.parametrize("lines", [400, 3_000])
def test_walls_from_boxes_give_the_series_of_levels_hold_off(lines):
    """Whole one-day runs of a synthetic book (tabulated, band 50, non-shipped vol and
    skew), ``levels_hold: flips`` (boxes on, GEX recomputed) against ``off`` (every
    level recomputed), 3 seeds: the walls and the strike GEX and the GEX at the walls
    equal bit for bit at every sample, most levels samples served from a box."""
    sc = cases.book_scenario(lines, 50.0, 1.0, seed=lines)
    sc["vol"] = {"atm": 0.27, "skew": -0.25}
    sc["record"] = {"levels_every": 120.0}
    cols = ["call_wall", "put_wall", "call_wall_visible", "put_wall_visible",
            "call_wall_gex_true", "call_wall_gex_visible", "put_wall_gex_true",
            "put_wall_gex_visible", "call_wall_strike_gex", "put_wall_strike_gex"]  # fmt: skip
    for seed in (1, 2, 3):
        runs = {}
        for hold in ("flips", "off"):
            over = {"engine.delta_table": "on", "engine.levels_hold": hold}
            sim = Simulation(mmsim.load_scenario(sc, overrides=over), seed)
            runs[hold] = (sim, sim.run())
        (sim, a), (_, b) = runs["flips"], runs["off"]
        assert sim.sampler.wall_box.held >= 100, f"seed {seed}: {sim.sampler.wall_box.held} held"
        assert a.trades.equals(b.trades)
        assert a.series[cols].equals(b.series[cols]), f"seed {seed}: walls differ from off"


@pytest.mark.parametrize("seed", range(4))
def test_fast_gex_at_the_walls_is_within_1e_12_of_the_gross_of_exact_pricing(seed):
    """:func:`~mmsim.wall_hold._at_walls_fast` (``levels_hold: all``) against exact pricing
    (``level_kernels._at_wall``) at 20 wall spots $80-120 and clocks over 2 days, lines
    up to 5 min from expiry (priced exactly below ``SD_EXACT``): each view's GEX within
    1e-12 x its gross (the same sum with |weights|), and not the same bits everywhere
    (the check compares two different computations)."""
    rng = np.random.default_rng(900 + seed)
    book = _book(rng, int(rng.integers(300, 2_000)))
    soon = 2 * SPAN_DAY + rng.uniform(300, 3_000, 40)  # expiring minutes after the 2 days
    book.add_many(np.round(rng.uniform(95, 105, 40), 1), soon, rng.random(40) < 0.5,
                  rng.choice([-5.0, 5.0], 40), np.zeros(40, np.int64))  # fmt: skip
    vol = VolSurface(0.1 + 0.3 * rng.random(), skew=-0.3 * rng.random())
    surface = book._surface(vol)
    differ = 0
    for k in range(20):
        t = float(rng.uniform(0.0, 2 * SPAN_DAY) if k % 2 else 2 * SPAN_DAY + rng.uniform(0, 250))
        lines, n = book._live_lines(t)
        gross_lines = lines.copy()
        gross_lines[[ROW_UNITS, ROW_VIS_W]] = np.abs(gross_lines[[ROW_UNITS, ROW_VIS_W]])
        log_k = np.log(lines[ROW_STRIKE, :n])
        wall, none = float(rng.uniform(80, 120)), np.zeros(1)
        args = (t, book.year_seconds, lines, n, *surface)
        fast = _at_walls_fast(np.array([wall, np.nan]), *args, log_k)
        assert np.isnan(fast[:, 1]).all(), "no wall: NaN"
        fast = fast[:, 0]
        exact = np.array(_at_wall(wall, wall, *args, none, none, none)[:2])
        gross = np.array(_at_wall(wall, wall, t, book.year_seconds, gross_lines, n, *surface,
                                  none, none, none)[:2])  # fmt: skip
        gap = np.abs(fast - exact) / gross
        assert gap.max() <= 1e-12, f"seed {seed}, wall {wall:.2f}, t {t:.0f}: {gap} of gross"
        differ += int((fast != exact).any())
    assert differ > 0, "fast and exact pricing gave the same bits everywhere: nothing compared"


@pytest.mark.parametrize("seed", range(4))
def test_line_bounds_hold_every_line_at_every_point_of_the_box(seed):
    """``wall_hold.line_bounds`` (vectorized, densities from ``fastexp.exp_array``) against
    each line's exact unit GEX ``S**2 x gamma x GEX_PER_PCT`` (``level_kernels._exact_gamma``)
    at the box's corners and 40 random points: ``lo <= exact <= hi`` for every line, no
    tolerance; dividends, skew, a floor, lines expiring inside the box (``hi = inf``), deep
    OTM short-dated lines whose density underflows (``hi`` must stay > 0 where exact is)."""
    from mmsim.book_kernels import GEX_PER_PCT
    from mmsim.level_kernels import _exact_gamma, strike_logs
    from mmsim.wall_hold import line_bounds

    rng = np.random.default_rng(900 + seed)
    book = _book(rng, 800)
    book.add_many(rng.uniform(40, 200, 200), SPAN_DAY * rng.uniform(0.02, 0.5, 200),
                  rng.random(200) < 0.5, rng.integers(1, 50, 200) * 1.0, rng.integers(0, 2, 200),
                  rng.random(200) < 0.8)  # fmt: skip
    vol = VolSurface(atm=0.12 + 0.28 * rng.random(), skew=-0.4 * rng.random() * (seed % 2),
                     floor=0.05 * (seed % 2))  # fmt: skip
    surface = book._surface(vol)
    S0, t0 = 100.0, 0.0
    lines, n = book._live_lines(t0)
    log_k = strike_logs(lines, n)
    for move, span in (*BOXES, (0.03, 3 * SPAN_DAY)):
        s_lo, s_hi, t_hi = S0 * (1 - move), S0 * (1 + move), t0 + span
        lo, hi = np.empty(n), np.empty(n)
        line_bounds(s_lo, s_hi, t0, t_hi, book.year_seconds, lines, n, *surface, log_k, lo, hi)
        pts = [(S, t) for S in (s_lo, s_hi) for t in (t0, t_hi)]
        pts += [(float(rng.uniform(s_lo, s_hi)), float(rng.uniform(t0, t_hi))) for _ in range(40)]
        for S, t in pts:
            live = lines[ROW_EXPIRY, :n] > t
            unit = [_exact_gamma(S, t, book.year_seconds, lines, i, *surface) if live[i] else 0.0
                    for i in range(n)]  # fmt: skip
            exact = np.array(unit) * S * S * GEX_PER_PCT
            assert np.all(lo <= exact), f"box {move, span} at {S, t}: a lower bound above exact"
            assert np.all(exact <= hi), f"box {move, span} at {S, t}: an upper bound below exact"
        assert np.isinf(hi).any() and (np.isfinite(hi) & (lo > 0)).sum() > n // 2, "cases missing"


def test_a_box_left_by_spot_on_an_unchanged_book_is_followed_by_the_wide_box():
    """:class:`~mmsim.wall_hold.WallBox`: the run's first box is
    :data:`~mmsim.wall_hold.WIDE_BOX` (1% of spot, a session) if it holds few enough
    candidates; once spot leaves a box with the book unchanged, the next is the wide box
    again; after a trade (a new table) the first of the narrow ``BOXES`` that holds few
    candidates (spot in $, clock in s)."""
    rng = np.random.default_rng(77)
    book = OptionBook(1, delta_table="off")
    n = 2_000  # strikes to the cent, 2-60 sessions out: none expires within the session
    book.add_many(np.round(rng.uniform(85, 115, n), 2), SPAN_DAY * rng.uniform(2.0, 60.0, n),
                  rng.random(n) < 0.5, rng.integers(1, 50, n) * rng.choice([-1.0, 1.0], n),
                  0, rng.random(n) < 0.8)  # fmt: skip
    vol = VolSurface(0.2, skew=-0.1)
    surface = book._surface(vol)
    wb = WallBox()

    def build(S, t):
        lines, n = book._live_lines(t)
        groups = StrikeGroups().of(lines, n, book.version)
        key = (lines, n, book.version, surface)
        assert not wb.covers(S, t, *key), "a build only where no box covers"
        assert wb.build(S, t, book.year_seconds, *key, groups), "no box held few candidates"
        s_lo, s_hi, t_lo, t_hi = wb._box
        return round((s_hi - s_lo) / (2 * S), 6), t_hi - t_lo

    assert build(100.0, 0.0) == WIDE_BOX, "the run's first box: the wide one"
    assert build(101.5, 600.0) == WIDE_BOX, "left by spot, same table: the wide box"
    assert build(98.0, 1_200.0) == WIDE_BOX, "and again"
    book.add(101.0, 20 * SPAN_DAY, True, 5.0, 0)
    assert build(98.0, 1_300.0) == BOXES[0], "a new table: the narrow box again"


def test_a_wide_box_that_held_too_many_candidates_is_not_tried_again_for_that_table():
    """A book with lines expiring within the session (their strikes stay candidates over
    a session-long box): the wide box is tried once, for the run's first box, held too
    many candidates, and is not tried again for the same table when spot leaves a box
    (each try is a pass over every line), while the narrow ``BOXES`` keep serving it."""
    from mmsim import wall_hold

    rng = np.random.default_rng(500)
    book = _book(rng, 2_000)  # expiries from 0.6 sessions: some within the wide box
    vol = VolSurface(0.2, skew=-0.1)
    surface = book._surface(vol)
    wb = WallBox()
    tried = []
    mp = pytest.MonkeyPatch()
    real = wall_hold.wall_box

    def counted(s_lo, s_hi, t_lo, t_hi, *args):
        tried.append(round(t_hi - t_lo))
        return real(s_lo, s_hi, t_lo, t_hi, *args)

    mp.setattr(wall_hold, "wall_box", counted)
    try:
        for k, S in enumerate((100.0, 100.8, 99.6, 100.9)):
            t = 300.0 * k
            lines, n = book._live_lines(t)
            key = (lines, n, book.version, surface)
            assert not wb.covers(S, t, *key)
            groups = StrikeGroups().of(lines, n, book.version)
            assert wb.build(S, t, book.year_seconds, *key, groups), f"build {k}: no box"
    finally:
        mp.undo()
    assert tried.count(round(WIDE_BOX[1])) == 1, f"the wide box tried once: {tried}"
    assert tried[:2] == [round(WIDE_BOX[1]), round(BOXES[0][1])], f"order: {tried}"
