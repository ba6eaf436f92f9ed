"""The series' flips and walls in one compiled pass (``LEVEL_COLUMNS`` of the sampler).

:func:`levels_row` computes, from a live line table (:mod:`mmsim.book_kernels`), what
:class:`~mmsim.book.OptionBook` answers through :meth:`~mmsim.book.OptionBook.walls`,
:meth:`~mmsim.book.OptionBook.gex_views_at`, :meth:`~mmsim.book.OptionBook.strike_gex`
and (exactly evaluated books) :meth:`~mmsim.book.OptionBook.flips`, with the same sums
in the same order, bit for bit, without a Python call per quantity: the recorder asks
for them every ``record.levels_every`` s.

Conventions (DESIGN): GEX in $ per 1% move; a wall is the strike with the largest
``|call GEX|`` (``|put GEX|``) in a view, ties to the lowest strike, NaN without a call
(put) line; the flip is the interpolated zero crossing of the GEX profile nearest spot.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from mmsim.book_kernels import (
    GEX_PER_PCT,
    ROW_EXPIRY,
    ROW_IS_CALL,
    ROW_STRIKE,
    ROW_UNITS,
    ROW_VIS_W,
    gamma_pair_at,
    line_gamma,
    nearest_flips,
)
from mmsim.npsum import np_sum

__all__ = ["StrikeGroups", "levels_row", "levels_row_grouped", "strike_groups"]


@njit(cache=True)
def _one_sign(lines, n, row, t):
    """Whether the weights in row ``row`` of the lines live at ``t`` are all >= 0 or all
    <= 0. Then that view's GEX profile has no zero crossing, so no flip: every line's
    gamma is >= 0 (BSM, its limits included), each profile value sums terms of one sign
    (rounding keeps the sign, and a zero or -0.0 carries none), and a crossing needs two
    non-zero values of opposite signs (:func:`~mmsim.book_kernels.nearest_flips`)."""
    pos = False
    neg = False
    for i in range(n):
        if lines[ROW_EXPIRY, i] <= t:
            continue
        w = lines[row, i]
        pos = pos or w > 0.0
        neg = neg or w < 0.0
    return not (pos and neg)


@njit(cache=True)
def strike_groups(lines, n, row):
    """The grouping of the first ``n`` lines by strike for view row ``row``: ``inv[i]``
    the index in ``strikes`` (unique, ascending, $) of line ``i`` if its weight is
    non-zero, else -1; whether each strike has a call, a put line. It depends only on
    the line table, so a caller keeps it for as long as the table lasts."""
    inv = np.full(n, -1, np.int64)
    m = 0
    for i in range(n):
        if lines[row, i] != 0.0:
            m += 1
    ks = np.empty(m)
    m = 0
    for i in range(n):
        if lines[row, i] != 0.0:
            ks[m] = lines[ROW_STRIKE, i]
            m += 1
    srt = np.sort(ks)
    strikes = np.empty(m)
    u = 0
    for j in range(m):
        if u == 0 or srt[j] != strikes[u - 1]:
            strikes[u] = srt[j]
            u += 1
    strikes = strikes[:u]
    has_call = np.zeros(u, np.bool_)
    has_put = np.zeros(u, np.bool_)
    for i in range(n):
        if lines[row, i] != 0.0:
            k = np.searchsorted(strikes, lines[ROW_STRIKE, i])
            inv[i] = k
            if lines[ROW_IS_CALL, i] != 0.0:
                has_call[k] = True
            else:
                has_put[k] = True
    return inv, strikes, has_call, has_put


@njit(cache=True)
def _by_strike(S, lines, n, row, unit, inv, u):
    """Call and put GEX at spot ``S`` ($ per 1%: weight x ``unit`` gamma x
    ``S**2 * GEX_PER_PCT``) of the ``u`` strikes of :func:`strike_groups` (``inv``),
    each strike's lines summed in line order, as ``np.bincount``."""
    scale = S * S * GEX_PER_PCT
    call = np.zeros(u)
    put = np.zeros(u)
    for i in range(n):
        k = inv[i]
        if k < 0:
            continue
        gi = lines[row, i] * unit[i] * scale
        if lines[ROW_IS_CALL, i] != 0.0:
            call[k] += gi
            put[k] += 0.0
        else:
            call[k] += 0.0
            put[k] += gi
    return call, put


@njit(cache=True)
def _pick(strikes, gex, has):
    """The strike of the largest ``|gex|`` among those with ``has`` (``np.argmax`` of
    ``where(has, |gex|, -1)``: the first maximum, the first NaN); NaN if none has."""
    best, best_v, any_has = 0, -1.0, False
    for k in range(strikes.size):
        v = abs(gex[k]) if has[k] else -1.0
        any_has = any_has or has[k]
        if math.isnan(v):
            if not math.isnan(best_v):
                best, best_v = k, v
            break
        if k == 0 or v > best_v:
            best, best_v = k, v
    return strikes[best] if any_has else np.nan


@njit(cache=True)
def _at_wall(wall, S, t, year_seconds, lines, n, level, skew, floor, r, q, strikes, call, put):
    """True and visible GEX of the whole book re-priced at spot ``wall`` ($ per 1%), and
    the true GEX at spot ``S`` of the lines struck within 1e-9 of ``wall``; NaN x 3
    without a wall."""
    if math.isnan(wall):
        return np.nan, np.nan, np.nan
    gt, gv = gamma_pair_at(wall, t, year_seconds, lines, n, level, skew, floor, r, q)
    hit_c = np.empty(strikes.size)
    hit_p = np.empty(strikes.size)
    h = 0
    for k in range(strikes.size):
        if abs(strikes[k] - wall) <= 1e-9:
            hit_c[h] = call[k]
            hit_p[h] = put[k]
            h += 1
    strike = np_sum(hit_c, h) + np_sum(hit_p, h)
    return gt * wall * wall * GEX_PER_PCT, gv * wall * wall * GEX_PER_PCT, strike


@njit(cache=True)
def levels_row(S, t, year_seconds, lines, n, level, skew, floor, r, q, grid, i0, flips, out):
    """Fill ``out`` (the 12 ``LEVEL_COLUMNS``) at spot ``S`` ($), clock ``t`` (s) from the
    first ``n`` lines of ``lines``: with ``flips``, the true and visible flips on
    ``S * grid`` (``grid[i0] == 1``; NaN when none), else ``out[:2]`` is left as it is;
    the call and put walls of the true and the visible view; the true and visible GEX
    at the visible call wall and put wall; the true GEX of the lines struck at each.
    :func:`levels_row_grouped` with the strike grouping computed here."""
    gt = strike_groups(lines, n, ROW_UNITS)
    gv = strike_groups(lines, n, ROW_VIS_W)
    levels_row_grouped(S, t, year_seconds, lines, n, level, skew, floor, r, q, grid, i0, flips,
                       *gt, *gv, out)  # fmt: skip


@njit(cache=True)
def levels_row_grouped(S, t, year_seconds, lines, n, level, skew, floor, r, q, grid, i0, flips,
                       inv_t, st, hct, hpt, inv_v, sv, hcv, hpv, out):  # fmt: skip
    """:func:`levels_row` given both views' :func:`strike_groups` of ``lines`` (true:
    ``inv_t, st, hct, hpt``; visible: ``inv_v, sv, hcv, hpv``)."""
    if flips and _one_sign(lines, n, ROW_UNITS, t) and _one_sign(lines, n, ROW_VIS_W, t):
        out[0] = np.nan  # no crossing in either view: nothing to walk
        out[1] = np.nan
    elif flips:
        ft, xt, fv, xv = nearest_flips(S * grid, i0, S, t, year_seconds, lines, n, level,
                                       skew, floor, r, q)  # fmt: skip
        out[0] = xt if ft else np.nan
        out[1] = xv if fv else np.nan
    a = (t, year_seconds, lines, n)
    s = (level, skew, floor, r, q)
    unit = np.empty(max(n, 1))  # one pricing of each line serves both views
    line_gamma(S, t, year_seconds, lines, n, level, skew, floor, r, q, unit)
    ct, pt = _by_strike(S, lines, n, ROW_UNITS, unit, inv_t, st.size)
    cv, pv = _by_strike(S, lines, n, ROW_VIS_W, unit, inv_v, sv.size)
    cwv, pwv = _pick(sv, cv, hcv), _pick(sv, pv, hpv)
    out[2] = _pick(st, ct, hct)
    out[3] = _pick(st, pt, hpt)
    out[4] = cwv
    out[5] = pwv
    out[6], out[7], out[10] = _at_wall(cwv, S, *a, *s, st, ct, pt)
    out[8], out[9], out[11] = _at_wall(pwv, S, *a, *s, st, ct, pt)


class StrikeGroups:
    """Both views' :func:`strike_groups` of the last line table asked for, kept while the
    caller passes the same table object with the same ``n`` and ``version`` (the book's:
    it rebuilds its live table on any change, and counts changes)."""

    def __init__(self) -> None:
        self._key: tuple = ()
        self._groups: tuple = ()

    def of(self, lines: np.ndarray, n: int, version: int) -> tuple:
        """``(*true, *visible)`` groups of the first ``n`` lines of ``lines``."""
        key = self._key
        if not key or key[0] is not lines or key[1] != n or key[2] != version:
            self._groups = (*strike_groups(lines, n, ROW_UNITS),
                            *strike_groups(lines, n, ROW_VIS_W))  # fmt: skip
            self._key = (lines, n, version)
        return self._groups
