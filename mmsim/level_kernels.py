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
    ROW_IV_OFF,
    ROW_STRIKE,
    ROW_UNITS,
    ROW_VIS_W,
    gamma_pair_at,
    line_sigma,
    nearest_flips,
)
from mmsim.greeks import _INV_SQRT_2PI, gamma_scalar
from mmsim.npsum import np_sum

__all__ = [
    "StrikeGroups",
    "levels_row",
    "levels_row_grouped",
    "same_grouping",
    "strike_groups",
    "strike_groups_sorted",
]


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
    return strike_groups_sorted(lines, n, row, np.argsort(lines[ROW_STRIKE, :n]))


@njit(cache=True)
def strike_groups_sorted(lines, n, row, order):
    """:func:`strike_groups` from ``order``, an argsort of the ``n`` lines' strikes (any
    order among equal strikes: the same grouping), e.g. numpy's (a third of numba's
    cost on 10,000 lines), one for both views. Lines without weight in ``row`` skipped."""
    inv = np.full(n, -1, np.int64)
    strikes = np.empty(n)
    has_call = np.zeros(n, np.bool_)
    has_put = np.zeros(n, np.bool_)
    u = 0
    for j in range(n):
        i = order[j]
        if lines[row, i] == 0.0:
            continue
        k = lines[ROW_STRIKE, i]
        if u == 0 or k != strikes[u - 1]:
            strikes[u] = k
            u += 1
        inv[i] = u - 1
        if lines[ROW_IS_CALL, i] != 0.0:
            has_call[u - 1] = True
        else:
            has_put[u - 1] = True
    return inv, strikes[:u].copy(), has_call[:u].copy(), has_put[:u].copy()


SD_EXACT = 1e-3
"""Lines whose ``sigma * sqrt(T)`` is below this are priced exactly by
:func:`_fast_units` (near expiry the bound on its rounding would be loose)."""


@njit(cache=True)
def strike_logs(lines, n):
    """``log K`` of the first ``n`` lines (kept with the strike groups)."""
    out = np.empty(max(n, 1))
    for i in range(n):
        out[i] = math.log(lines[ROW_STRIKE, i])
    return out


@njit(cache=True)
def _exact_gamma(S, t, year_seconds, lines, i, level, skew, floor, r, q):
    """Gamma of one unit of line ``i`` at spot ``S``: what
    :func:`~mmsim.book_kernels.line_gamma` computes, bit for bit."""
    K = lines[ROW_STRIKE, i]
    T = (lines[ROW_EXPIRY, i] - t) / year_seconds
    sigma = line_sigma(K, S, level, skew, floor, lines[ROW_IV_OFF, i])
    return gamma_scalar(S, K, T, sigma, r, q)


@njit(cache=True)
def _fast_units(S, t, year_seconds, lines, n, level, skew, floor, r, q, log_k, unit, rel):
    """Gamma of one unit of each line at spot ``S`` (shares per $1) into ``unit[:n]``, as
    :func:`~mmsim.book_kernels.line_gamma` (0 where it gives 0) but from ``log K - log S``
    and one ``exp`` per line, and into ``rel[:n]`` a bound on its relative difference from
    that exact value: the rounding of ``log(K / S)`` (a few ulps of ``|log K| + |log S|``)
    moves ``d1`` by that over ``sigma * sqrt(T)`` (and sigma through the skew), and gamma
    by ``|d1|`` times that; doubled, plus 1e-13 for the rest. Lines with
    ``sigma * sqrt(T) < SD_EXACT`` are priced exactly (``rel`` 0)."""
    log_s = math.log(S)
    dx = 2e-15 * (abs(log_s) + 1.0)
    inv_s = _INV_SQRT_2PI / S
    for i in range(n):
        unit[i] = 0.0
        rel[i] = 0.0
        if lines[ROW_EXPIRY, i] <= t or (lines[ROW_UNITS, i] == 0.0 and lines[ROW_VIS_W, i] == 0.0):
            continue
        T = (lines[ROW_EXPIRY, i] - t) / year_seconds
        x = log_k[i] - log_s  # log(K / S)
        iv = max(level if skew == 0.0 else level + skew * x, floor)
        sigma = max(iv + lines[ROW_IV_OFF, i], floor)
        root_t = math.sqrt(T)
        sd = sigma * root_t
        if sd < SD_EXACT:
            unit[i] = _exact_gamma(S, t, year_seconds, lines, i, level, skew, floor, r, q)
            continue
        inv_sd = 1.0 / sd
        d1 = ((r - q) * T - x) * inv_sd + 0.5 * sd
        dq = math.exp(-q * T) if q != 0.0 else 1.0
        unit[i] = dq * inv_s * inv_sd * math.exp(-0.5 * d1 * d1)
        err_x = dx + 2e-15 * abs(log_k[i])
        rel[i] = 1e-13 + 2.0 * (abs(d1) + 1.0) * err_x * (inv_sd + abs(skew) / sigma) * 4.0


@njit(cache=True)
def _by_strike_tol(S, lines, n, row, unit, rel, inv, u):
    """Call and put GEX at spot ``S`` ($ per 1%: weight x ``unit`` gamma x
    ``S**2 * GEX_PER_PCT``) of the ``u`` strikes of :func:`strike_groups` (``inv``), each
    strike's lines summed in line order, as ``np.bincount``; from the fast unit gammas,
    with per strike the bound on how far each sum may be from the exact one
    (``sum |weight x unit| x rel``, plus the rounding of the sums themselves)."""
    scale = S * S * GEX_PER_PCT
    call = np.zeros(u)
    put = np.zeros(u)
    tol_c = np.zeros(u)
    tol_p = np.zeros(u)
    count = np.zeros(u)
    for i in range(n):
        k = inv[i]
        if k < 0:
            continue
        gi = lines[row, i] * unit[i] * scale
        e = abs(gi) * (rel[i] + 1e-13) + 1e-300
        count[k] += 1.0
        if lines[ROW_IS_CALL, i] != 0.0:
            call[k] += gi
            tol_c[k] += e
        else:
            put[k] += gi
            tol_p[k] += e
    for k in range(u):  # and the sums' own rounding, both: m terms, m ulps of the gross
        tol_c[k] *= 1.0 + 5e-3 * count[k]
        tol_p[k] *= 1.0 + 5e-3 * count[k]
    return call, put, tol_c, tol_p


@njit(cache=True)
def _candidates(gex, tol, has, mask):
    """Mark in ``mask`` the strikes (with ``has``) whose exact ``|GEX|`` may be the largest
    given the fast values ``gex`` within ``tol``; returns how many."""
    best = -1.0
    for k in range(gex.size):
        if has[k]:
            best = max(best, abs(gex[k]) - tol[k])
    c = 0
    for k in range(gex.size):
        if has[k] and abs(gex[k]) + tol[k] >= best:
            mask[k] = True
            c += 1
    return c


@njit(cache=True)
def _exact_strikes(S, t, year_seconds, lines, n, row, level, skew, floor, r, q, inv, mask,
                   call, put):  # fmt: skip
    """Overwrite ``call[k]``, ``put[k]`` of the strikes in ``mask`` with the exact sums of
    :func:`_by_strike_tol` (the lines' exact gammas, in line order, the same operations)."""
    scale = S * S * GEX_PER_PCT
    for k in range(mask.size):
        if mask[k]:
            call[k] = 0.0
            put[k] = 0.0
    for i in range(n):
        k = inv[i]
        if k >= 0 and mask[k]:
            _add_exact(S, t, year_seconds, lines, i, k, row, level, skew, floor, r, q, scale,
                       call, put)  # fmt: skip


@njit(cache=True)
def _add_exact(S, t, year_seconds, lines, i, k, row, level, skew, floor, r, q, scale, call,
               put):  # fmt: skip
    """Add line ``i``'s exact GEX (weight row ``row``, ``scale`` = S^2 x GEX_PER_PCT) to
    strike ``k`` of ``call`` or ``put`` (and 0.0 to the other: the same operations for
    every caller, so that sums agree bit for bit)."""
    g = _exact_gamma(S, t, year_seconds, lines, i, level, skew, floor, r, q)
    add_unit(lines, i, k, row, g, scale, call, put)


@njit(cache=True)
def add_unit(lines, i, k, row, g, scale, call, put):
    """:func:`_add_exact` with line ``i``'s unit gamma ``g`` (1/$ per contract) given:
    weight row ``row`` x ``g`` x ``scale`` added to strike ``k`` of ``call`` or ``put``,
    and 0.0 to the other, so that every caller's sums agree bit for bit."""
    gi = lines[row, i] * g
    gi *= scale
    if lines[ROW_IS_CALL, i] != 0.0:
        call[k] += gi
        put[k] += 0.0
    else:
        call[k] += 0.0
        put[k] += gi


@njit(cache=True)
def _view_walls(S, t, year_seconds, lines, n, row, level, skew, floor, r, q, unit, rel, inv,
                strikes, has_call, has_put, near):  # fmt: skip
    """Call and put wall of view ``row`` at spot ``S`` (:func:`_pick` of the exact
    per-strike GEX, bit for bit) from the fast unit gammas: exact sums only for the
    strikes that may be the largest, and for those within 1e-9 of the walls in ``near``
    (NaN for none). Returns the walls and the per-strike call and put GEX (exact at
    those strikes, fast elsewhere)."""
    u = strikes.size
    call, put, tol_c, tol_p = _by_strike_tol(S, lines, n, row, unit, rel, inv, u)
    mask = np.zeros(u, np.bool_)
    _candidates(call, tol_c, has_call, mask)
    _candidates(put, tol_p, has_put, mask)
    for w in near:
        if not math.isnan(w):
            for k in range(u):
                if abs(strikes[k] - w) <= 1e-9:
                    mask[k] = True
    _exact_strikes(S, t, year_seconds, lines, n, row, level, skew, floor, r, q, inv, mask,
                   call, put)  # fmt: skip
    only_c = np.logical_and(has_call, mask)
    only_p = np.logical_and(has_put, mask)
    return _pick(strikes, call, only_c, has_call), _pick(strikes, put, only_p, has_put), call, put


@njit(cache=True)
def _pick(strikes, gex, has, any_of):
    """The strike of the largest ``|gex|`` among those with ``has`` (``np.argmax`` of
    ``where(has, |gex|, -1)``: the first maximum, the first NaN); NaN if none of
    ``any_of`` has (``has`` may leave out strikes known to be smaller)."""
    best, best_v, any_has = 0, -1.0, False
    for k in range(strikes.size):
        v = abs(gex[k]) if has[k] else -1.0
        any_has = any_has or any_of[k]
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
    strike = _strike_gex(wall, strikes, call, put)
    return gt * wall * wall * GEX_PER_PCT, gv * wall * wall * GEX_PER_PCT, strike


@njit(cache=True)
def _strike_gex(wall, strikes, call, put):
    """True GEX at spot ($ per 1%) of the lines struck within 1e-9 of ``wall`` (call and
    put GEX per strike of the true view); NaN without a wall."""
    if math.isnan(wall):
        return np.nan
    hit_c = np.empty(strikes.size)
    hit_p = np.empty(strikes.size)
    h = np.int64(0)  # typed, not a literal 0: numba would also compile np_sum(a, 0)
    for k in range(strikes.size):
        if abs(strikes[k] - wall) <= 1e-9:
            hit_c[h] = call[k]
            hit_p[h] = put[k]
            h += 1
    return np_sum(hit_c, h) + np_sum(hit_p, h)


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
                       False, *gt, *gv, strike_logs(lines, n), out)  # fmt: skip


@njit(cache=True)
def _same(a, b):
    """Equal walls ($), NaN (no wall) equal to NaN."""
    return a == b or (math.isnan(a) and math.isnan(b))


@njit(cache=True)
def levels_row_grouped(S, t, year_seconds, lines, n, level, skew, floor, r, q, grid, i0, flips,
                       hold_gex, inv_t, st, hct, hpt, inv_v, sv, hcv, hpv, log_k, out):  # fmt: skip
    """:func:`levels_row` given both views' :func:`strike_groups` of ``lines`` (true:
    ``inv_t, st, hct, hpt``; visible: ``inv_v, sv, hcv, hpv``) and its :func:`strike_logs`
    ``log_k``. The walls come from one fast pricing of the lines (:func:`_fast_units`),
    checked exactly where it could matter (:func:`_view_walls`): the same walls and
    GEX as pricing every line exactly, bit for bit. With ``hold_gex``, the
    GEX of the book re-priced at the visible walls (``out[6:10]``) is kept when both
    visible walls are those already in ``out[4:6]`` (it depends on the wall, the book,
    the surface and the clock, not on spot: the caller vouches for the rest). Returns
    whether it was kept."""
    units, vis = np.int64(ROW_UNITS), np.int64(ROW_VIS_W)  # typed rows: one _one_sign
    if flips and _one_sign(lines, n, units, t) and _one_sign(lines, n, vis, t):
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
    rel = np.empty(max(n, 1))
    _fast_units(S, t, year_seconds, lines, n, level, skew, floor, r, q, log_k, unit, rel)
    none = np.full(2, np.nan)
    cwv, pwv, _, _ = _view_walls(S, *a, ROW_VIS_W, *s, unit, rel, inv_v, sv, hcv, hpv, none)
    near = np.array([cwv, pwv])  # the true GEX of the lines struck there: exact too
    cw, pw, ct, pt = _view_walls(S, *a, ROW_UNITS, *s, unit, rel, inv_t, st, hct, hpt, near)
    keep = hold_gex and _same(cwv, out[4]) and _same(pwv, out[5])
    out[2] = cw
    out[3] = pw
    out[4] = cwv
    out[5] = pwv
    if keep:
        out[10] = _strike_gex(cwv, st, ct, pt)
        out[11] = _strike_gex(pwv, st, ct, pt)
        return True
    out[6], out[7], out[10] = _at_wall(cwv, S, *a, *s, st, ct, pt)
    out[8], out[9], out[11] = _at_wall(pwv, S, *a, *s, st, ct, pt)
    return False


@njit(cache=True)
def same_grouping(a, b, n):
    """Whether the first ``n`` lines of line tables ``a`` and ``b`` (each at least ``n``
    lines) have the same :func:`strike_groups` in both views and the same
    :func:`strike_logs`: the same strike ($) and type of each line, and the same lines
    with a non-zero true and visible weight (the weights themselves may differ)."""
    for i in range(n):
        if (
            a[ROW_STRIKE, i] != b[ROW_STRIKE, i]
            or a[ROW_IS_CALL, i] != b[ROW_IS_CALL, i]
            or (a[ROW_UNITS, i] != 0.0) != (b[ROW_UNITS, i] != 0.0)
            or (a[ROW_VIS_W, i] != 0.0) != (b[ROW_VIS_W, i] != 0.0)
        ):
            return False
    return True


class StrikeGroups:
    """Both views' :func:`strike_groups` of the last line table asked for, kept while the
    caller passes the same table object with the same ``n`` and ``version`` (the book's:
    it rebuilds its live table on any change, and counts changes), and kept too for a new
    table whose lines group the same (:func:`same_grouping`: a trade that changes the
    size of existing lines, as most do once a book has grown, leaves the strikes as they
    were). ``computed`` counts the groupings computed afresh."""

    def __init__(self) -> None:
        self._key: tuple = ()
        self._groups: tuple = ()
        self.computed = 0

    def of(self, lines: np.ndarray, n: int, version: int) -> tuple:
        """``(*true, *visible, log_k)``: groups and :func:`strike_logs` of the first ``n``
        lines of ``lines``."""
        key = self._key
        if key and key[0] is lines and key[1] == n and key[2] == version:
            return self._groups
        if not key or key[1] != n or not same_grouping(key[0], lines, n):
            order = np.argsort(lines[ROW_STRIKE, :n])  # numpy's: once for both views
            self._groups = (*strike_groups_sorted(lines, n, ROW_UNITS, order),
                            *strike_groups_sorted(lines, n, ROW_VIS_W, order),
                            strike_logs(lines, n))  # fmt: skip
            self.computed += 1
        self._key = (lines, n, version)
        return self._groups
