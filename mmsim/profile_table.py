"""Gamma flips of a big book without pricing it 241 times: a tabulated GEX profile that
tells the *sign* of the profile at each grid point, and exact evaluation only where the
sign is in doubt and at the two grid points around the crossing.

The flip (``OptionBook.flips``) is the zero crossing nearest to spot of the GEX profile
on the grid ``S * linspace(0.7, 1.3, 241)``, linearly interpolated between the two
non-zero grid values around it. Its position needs the profile's exact values only at
those two points; everywhere else only the sign matters. :class:`ProfileTable` fits the
true and the visible gamma sums (shares per $1; GEX has their sign) with Chebyshev
polynomials in spot over ``[0.665, 1.365] x`` the build's spot, at the build time ``t0``,
at ``t0 + H / 2`` and at ``t0 + H`` (quadratic in time between; the nodes priced by
:func:`gamma_pair_fit`), and validates the fit against the exact sums
(:func:`gamma_pair`): the largest error at the ``N - 1`` spots half-way between the
nodes at the time fractions ``VALIDATE_AT`` (where the fit and the interpolation in time
err most; computed as the nodes are, plus ``ROUNDING`` x the gross gamma for what that
arithmetic may differ from the exact sums), times ``SAFETY``, is the bound ``eps``. A grid value
of the table farther than ``eps`` from 0 has the sign of the exact profile; a value
within ``eps`` is evaluated exactly. The crossing found, and its interpolation, are then
those of the full computation (:func:`mmsim.book_kernels.nearest_flips`), bit for bit,
as long as the validated bound holds (``tests/test_big_books.py`` checks it against
the full computation at random books, spots and times, near expiry too).
Far lines whose gamma is wide in spot (``WIDE_GROUPS``: ``sigma sqrt(T)`` of 0.08 or
more, at least ``WIDE_MIN_SPANS`` spans from expiry) are fitted apart with fewer nodes,
each group validated as a fit of its own and its error added to ``eps``
(:func:`_fit_grouped`): the same bound from 45% of the pricings on the synthetic
10,000-line book of ``benchmarks.books``.

Lines expiring within ``NEAR_FACTOR * H`` (at least a session) of the build are not
tabulated but summed exactly at every grid point, and so are the lines booked after the
build (as unit differences, up to ``MAX_CHANGES`` of them). Beyond that the table does
not answer; the flips' computation (:meth:`mmsim.book.OptionBook.profile_table` with
``fold``) then folds the changed lines that expire after the near cut into it
(:func:`fold_profile`: gamma is linear in the weights, so their own validated fit is
added to the coefficients and their error to ``eps``) instead of rebuilding, and starts
the count anew; it rebuilds only when ``eps`` would grow past ``MAX_EPS`` of the scale
or more than ``MAX_CHANGES`` near lines changed. The table answers while spot stays
within 5% of the build's (the grid then lies inside the fitted range), the clock within
``[t0, t0 + H]`` and the surface unchanged.

With ``engine.levels_hold: table`` (the default) the recorder reads the levels from the
table at every levels sample instead of holding exact ones: a flip's crossing (always the
exact one's cell) is interpolated from the table's values, no whole-book pricing, where
:func:`_interp_bound` proves it within :data:`FLIP_TOL` of a grid step of the exact
interpolation (``walk_flips`` with ``tol``), and the true and visible GEX at the visible
walls come from :func:`table_gex` (within ``eps x wall**2 x 0.01``). Stated bounds, checked
at every levels sample of 30 seeds on five non-shipped cases by ``python -m
benchmarks.levels_table`` (largest error 0.35 of its bound) and in
``tests/test_levels_table.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from mmsim.book_kernels import (
    GEX_PER_PCT,
    N_ROWS,
    ROW_EXPIRY,
    ROW_IV_OFF,
    ROW_STRIKE,
    ROW_UNITS,
    ROW_VIS_W,
    _profile_at,
    line_sigma,
    take_lines,
)
from mmsim.delta_table import _basis, _cheb_coefficients
from mmsim.fastexp import exp_array
from mmsim.greeks import _INV_SQRT_2PI, TINY_STDEV, gamma_scalar

__all__ = [
    "FLIP_TOL",
    "ProfileTable",
    "build_profile",
    "flips_certain",
    "fold_profile",
    "table_flips",
    "table_gex",
]

LO, HI = 0.7 * 0.95, 1.3 * 1.05  # fitted range, fractions of the build's spot
MOVE = 0.05  # the table answers while spot is within 5% of the build's
SAFETY = 4.0  # eps = SAFETY x the validated error
MAX_EPS = 0.05  # a build whose eps exceeds 5% of the profile's scale is refused
NEAR_FACTOR = 1.5
NEAR_MIN_SECONDS = 23400.0
"""... and at least this long (s, a session): lines expiring sooner after the build are
summed exactly at every grid point the flips' walk visits. It was three sessions
(70,200 s); a line two or three sessions out fits within ``eps`` as any other (its
validated error is in ``eps``; ``tests/test_big_books.py``), and summing a
one-expiry book exactly for its last three sessions cost ``multi_dealer_bands`` (20
days, ~600 live lines) 20-30 ms a day on days 3-4 and 18-19 (a 20-day run 2.71 -> 2.58 s
CPU, the SPX chain day unchanged). Levels are recorded only; with ``engine.levels_hold:
table`` the flips and walls' GEX read from the table keep their stated bounds
(``python -m benchmarks.levels_table``)."""
MAX_CHANGES = 64
FLIP_TOL = 0.01
"""``engine.levels_hold: table``: a flip's crossing is interpolated from the table's
values at its two grid points (no whole-book pricing) when that is proven within this
fraction of a grid step of the exact values' interpolation (:func:`_interp_bound`):
``0.01 x 0.0025 x spot``, 2.5e-5 of spot."""
ROUNDING = 1e-12
"""Most :func:`gamma_pair_fit` differs from :func:`gamma_pair` (the exact sums the signs
must agree with), as a fraction of the gross gamma ``sum |weight| x gamma``; the build
validates against :func:`gamma_pair_fit` and adds ``ROUNDING`` x the largest gross sum
(times ``SAFETY``) to ``eps``."""
VALIDATE_AT = (0.21, 0.79)  # time fractions where the quadratic in time errs most
ATTEMPTS = ((64, 23400.0), (128, 23400.0), (192, 7200.0))
"""(nodes, H seconds) tried in order until ``eps`` is small enough."""
WIDE_GROUPS = ((0.12, 20), (0.06, 32))
"""(least width, nodes), widest first: the far lines whose gamma is at least this wide at
the build (``sigma sqrt(T)``: the line's vol at its own strike times the root of its
years to expiry) are fitted apart with these nodes when the attempt has more. A wide
line's gamma is smooth in spot: a few nodes fit it as closely as the attempt's fit the
narrow lines (on the synthetic 10,000-line book of ``benchmarks.books``, widths
0.03-0.2: 8,559 of its 10,000 lines, the build 8.7 -> 5.9 ms, ``eps`` 3% larger; on
the SPX chain, whose short-dated lines stay narrow (``WIDE_MIN_SPANS``), 4.6 -> 4.3
ms, ``eps`` 1% larger; the second group from 0.06 instead of 0.08, with all five clocks
in one pass, :func:`gamma_pair_fit_many`: 10,000 lines 4.6 -> 4.2 ms, SPX 4.1 -> 3.9 ms,
``eps`` 3% / 0.3% larger). Each group's fit is validated at its own midpoints, as any fit
(:func:`_fit`), and its error added to the narrow lines' (the error of a sum is at
most the sum of the errors, as :func:`fold_profile` adds lines)."""
WIDE_MIN_SPANS = 20.0
"""Lines expiring within this many table spans ``H`` of the build stay with the narrow
lines whatever their width: their gamma changes in time too fast for few nodes to help
(the quadratic in time errs as much)."""
GROUP_SHARE = 1.0 / 16.0
GROUP_FLOOR = 1e-6
"""A wide group whose validated error exceeds ``GROUP_SHARE`` x the narrow lines' plus
``GROUP_FLOOR`` x its own scale is fitted with the attempt's nodes instead (``eps``
then grows by at most about that share per group)."""


@njit(cache=True)
def gamma_pair(spots, t, year_seconds, lines, n, level, skew, floor, r, q, out):
    """``out[0, j]`` = true and ``out[1, j]`` = visible gamma sum (shares per $1:
    ``ROW_UNITS`` and ``ROW_VIS_W`` weights) of the lines at spot ``spots[j]`` ($): the
    sums of :func:`~mmsim.book_kernels.gamma_pair_at`, bit for bit (lines outside, each
    spot's sums still in line order)."""
    m = spots.size
    out[:2, :m] = 0.0
    for i in range(n):
        w_true = lines[ROW_UNITS, i]
        w_vis = lines[ROW_VIS_W, i]
        if lines[ROW_EXPIRY, i] <= t or (w_true == 0.0 and w_vis == 0.0):
            continue
        K = lines[ROW_STRIKE, i]
        T = (lines[ROW_EXPIRY, i] - t) / year_seconds
        offset = lines[ROW_IV_OFF, i]
        for j in range(m):
            S = spots[j]
            g = gamma_scalar(S, K, T, line_sigma(K, S, level, skew, floor, offset), r, q)
            if w_true != 0.0:
                out[0, j] += w_true * g
            if w_vis != 0.0:
                out[1, j] += w_vis * g


@njit(cache=True, error_model="numpy")
def gamma_pair_fit(spots, t, year_seconds, lines, n, level, skew, floor, r, q, out):
    """:func:`gamma_pair` for the fit's nodes and its validation, re-using per line what
    the spots share: ``log(K / S)`` as ``log K - log S`` (each log once), ``sqrt(T)`` and
    the dividend discount once per line, and per line and spot one division and the
    normal density from :func:`~mmsim.fastexp.exp_array` (each line's spots in loops
    the compiler vectorizes; ``error_model="numpy"`` so that a division is no branch).
    The same formula, differing from :func:`gamma_pair` only in rounding (within
    ``ROUNDING`` x the gross gamma, ``tests/test_level_kernels.py``; terms below
    ``exp(EXP_MIN)`` of a line's peak are dropped). With four rows, ``out[2:4]`` gets
    the gross sums (``|weight| x gamma``) that bound this rounding."""
    m = spots.size
    gross = out.shape[0] >= 4
    out[: 4 if gross else 2, :m] = 0.0
    log_s = np.empty(m)
    inv_s = np.empty(m)
    for j in range(m):
        log_s[j] = math.log(spots[j])
        inv_s[j] = _INV_SQRT_2PI / spots[j]
    y = np.empty(m)  # per line: -d1^2 / 2, the density's factor and the density
    c = np.empty(m)
    g = np.empty(m)
    tmp = np.empty(m)
    for i in range(n):
        w_true = lines[ROW_UNITS, i]
        w_vis = lines[ROW_VIS_W, i]
        if lines[ROW_EXPIRY, i] <= t or (w_true == 0.0 and w_vis == 0.0):
            continue
        K = lines[ROW_STRIKE, i]
        T = (lines[ROW_EXPIRY, i] - t) / year_seconds
        offset = lines[ROW_IV_OFF, i]
        root_t = math.sqrt(T)
        log_k = math.log(K)
        dq = math.exp(-q * T) if q != 0.0 else 1.0
        drift = (r - q) * T
        for j in range(m):  # branch-free: selects, not jumps
            x = log_k - log_s[j]  # log(K / S)
            iv = level + skew * x  # level itself at skew 0 (x is finite)
            iv = iv if iv > floor else floor
            sigma = iv + offset
            sd = (sigma if sigma > floor else floor) * root_t
            inv_sd = 1.0 / sd
            d1 = (drift - x) * inv_sd + 0.5 * sd
            ok = sd >= TINY_STDEV
            y[j] = -0.5 * d1 * d1 if ok else 0.0
            c[j] = dq * inv_s[j] * inv_sd if ok else 0.0
        exp_array(y, g, tmp, m)
        for j in range(m):
            g[j] *= c[j]
        for j in range(m):
            out[0, j] += w_true * g[j]
            out[1, j] += w_vis * g[j]
        if gross:
            a_true, a_vis = abs(w_true), abs(w_vis)
            for j in range(m):
                out[2, j] += a_true * g[j]
                out[3, j] += a_vis * g[j]


@njit(cache=True, error_model="numpy")
def gamma_pair_fit_many(spots, seg, times, year_seconds, lines, n, level, skew, floor, r, q,
                        gross_from, out):  # fmt: skip
    """:func:`gamma_pair_fit` at several clocks in one pass over the lines: ``spots[seg[k]
    : seg[k + 1]]`` at clock ``times[k]`` (s); ``out`` rows 0-1 the true and visible sums
    at every spot, rows 2-3 the gross sums from ``spots[gross_from]`` on. Each value bit
    for bit :func:`gamma_pair_fit`'s (the same arithmetic per line and spot, the same line
    order; a line expired at a clock adds an exact zero there instead of nothing), the
    per-line work (loads, ``log K``, the density's call) shared by all clocks: on short
    node sets (20-32 nodes) that per-line work was most of the cost."""
    m = spots.size
    out[:, :m] = 0.0
    log_s = np.empty(m)
    inv_s = np.empty(m)
    for j in range(m):
        log_s[j] = math.log(spots[j])
        inv_s[j] = _INV_SQRT_2PI / spots[j]
    y = np.empty(m)
    c = np.empty(m)
    g = np.empty(m)
    tmp = np.empty(m)
    rt = np.empty(m)  # per spot: the line's sqrt(T), drift and dividend discount at its clock
    dft = np.empty(m)
    dqs = np.empty(m)
    for i in range(n):
        w_true = lines[ROW_UNITS, i]
        w_vis = lines[ROW_VIS_W, i]
        if w_true == 0.0 and w_vis == 0.0:
            continue
        K = lines[ROW_STRIKE, i]
        expiry = lines[ROW_EXPIRY, i]
        offset = lines[ROW_IV_OFF, i]
        log_k = math.log(K)
        live = False
        for k in range(times.size):
            if expiry <= times[k]:  # expired at this clock: an exact zero (c = 0)
                root_t, drift, dq = 1.0, 0.0, 0.0
            else:
                live = True
                T = (expiry - times[k]) / year_seconds
                root_t = math.sqrt(T)
                dq = math.exp(-q * T) if q != 0.0 else 1.0
                drift = (r - q) * T
            rt[seg[k] : seg[k + 1]] = root_t
            dft[seg[k] : seg[k + 1]] = drift
            dqs[seg[k] : seg[k + 1]] = dq
        for j in range(m):  # branch-free: selects, not jumps
            x = log_k - log_s[j]  # log(K / S)
            iv = level + skew * x  # level itself at skew 0 (x is finite)
            iv = iv if iv > floor else floor
            sigma = iv + offset
            sd = (sigma if sigma > floor else floor) * rt[j]
            inv_sd = 1.0 / sd
            d1 = (dft[j] - x) * inv_sd + 0.5 * sd
            ok = sd >= TINY_STDEV
            y[j] = -0.5 * d1 * d1 if ok else 0.0
            c[j] = dqs[j] * inv_s[j] * inv_sd if ok else 0.0
        if not live:
            continue
        exp_array(y, g, tmp, m)
        for j in range(m):
            g[j] *= c[j]
        for j in range(m):
            out[0, j] += w_true * g[j]
            out[1, j] += w_vis * g[j]
        a_true, a_vis = abs(w_true), abs(w_vis)
        for j in range(gross_from, m):
            out[2, j] += a_true * g[j]
            out[3, j] += a_vis * g[j]


@njit(cache=True)
def _sign(sign, vals, ests, j, v, grid, tv, eps, extra, n_extra, seen, tmp, t, year_seconds,
          lines, n, level, skew, floor, r, q):  # fmt: skip
    """Fill ``sign[v, j]`` (+1, -1, 0 for an exact zero), the sign view ``v``'s walk needs
    at grid point ``j``. On the point's first visit (``seen``) both views' table
    estimates (``tv``: the table's series at every grid point at this time fraction,
    :func:`_add_table`; the ``extra`` lines' exact sums added into it here; ``tmp``: (2, 1)
    scratch) give each view's sign where they are farther than ``eps`` from 0, the
    estimate (shares per $1) then kept in ``ests``. Where view ``v``'s is not, the exact
    profile (``vals``) gives its sign, and the other view's too if that is still in
    doubt (the one pricing gives both). A point in doubt only in the view not walking is
    left unpriced: its own walk may never reach it (the visible view's near-zero point
    beyond its nearest crossing, say, while the true view walks the whole grid)."""
    if not seen[j]:
        seen[j] = True
        if n_extra:
            tmp[:, 0] = 0.0
            gamma_pair(grid[j : j + 1], t, year_seconds, extra, n_extra, level, skew, floor, r,
                       q, tmp)  # fmt: skip
            tv[0, j] += tmp[0, 0]
            tv[1, j] += tmp[1, 0]
        for w in range(2):
            if sign[w, j] != 2:
                continue
            est = tv[w, j]
            if est > eps[w]:
                sign[w, j] = 1
                ests[w, j] = est
            elif est < -eps[w]:
                sign[w, j] = -1
                ests[w, j] = est
    if sign[v, j] != 2:
        return
    pair = _profile_at(vals, grid, j, t, year_seconds, lines, n, level, skew, floor, r, q)
    for w in range(2):
        if sign[w, j] == 2:
            p = pair[w]
            sign[w, j] = 1 if p > 0.0 else (-1 if p < 0.0 else 0)


@njit(cache=True)
def _interp_bound(pa, pb, ea, eb):
    """Most the crossing's fraction of its cell ``pa / (pa - pb)`` from two values of
    opposite signs ``pa``, ``pb`` (each within ``ea``, ``eb`` of the exact ones, which
    then have the same signs) may differ from the exact values' fraction:
    ``|A d_b - B d_a| / ((A + B)(A_e + B_e)) <= max(ea, eb) / (A + B - ea - eb)`` with
    ``A = |pa|``, ``B = |pb|`` (``A_e + B_e >= A + B - ea - eb``); ``inf`` when the
    values do not exceed their errors."""
    room = abs(pa) + abs(pb) - ea - eb
    return max(ea, eb) / room if room > 0.0 else np.inf


@njit(cache=True)
def _interp_ends(ests, vals, v, lo, hi, grid, eps_v, tol):
    """The GEX profile ($ per 1%) of view ``v`` at ``grid[lo]``, ``grid[hi]`` for the
    crossing's interpolation: at each point the table's value (``ests``, shares per $1,
    error ``eps_v``) or the exact one where the point was priced for its sign (``vals``,
    no error), when :func:`_interp_bound` keeps the interpolated crossing within ``tol``
    of a grid step of the exact values' one; with that bound (a fraction of the step).
    ``(0, 0, 0)`` otherwise, or when both are exact (the caller prices the book there:
    the exact values, from ``vals`` where known)."""
    if not tol > 0.0:
        return 0.0, 0.0, 0.0
    ends = np.zeros(4)  # value and error at lo, then at hi
    for k in range(2):
        j = lo if k == 0 else hi
        scale = grid[j] * grid[j] * GEX_PER_PCT
        if ests[v, j] == ests[v, j]:
            ends[2 * k], ends[2 * k + 1] = ests[v, j] * scale, eps_v * scale
        elif vals[v, j] == vals[v, j]:
            ends[2 * k] = vals[v, j]
        else:
            return 0.0, 0.0, 0.0
    if ends[1] == 0.0 and ends[3] == 0.0:
        return 0.0, 0.0, 0.0
    frac = _interp_bound(ends[0], ends[2], ends[1], ends[3])
    if frac > tol:
        return 0.0, 0.0, 0.0
    return ends[0], ends[2], frac


@njit(cache=True)
def table_flips(grid, i0, S, t, u, center, half, coef, eps, extra, n_extra, year_seconds,
                lines, n, level, skew, floor, r, q, tol=0.0):  # fmt: skip
    """:func:`walk_flips` without its count of exact pricings."""
    ft, xt, fv, xv, bad, _ = walk_flips(grid, i0, S, t, u, center, half, coef, eps, extra,
                                        n_extra, year_seconds, lines, n, level, skew, floor,
                                        r, q, tol)  # fmt: skip
    return ft, xt, fv, xv, bad


@njit(cache=True)
def walk_flips(grid, i0, S, t, u, center, half, coef, eps, extra, n_extra, year_seconds,
               lines, n, level, skew, floor, r, q, tol=0.0):  # fmt: skip
    """:func:`_walk_flips_once` with ``tol``, and once more with ``tol = 0`` when two
    crossings were as near within their errors (the exact values decide). A loop, not a
    recursive call: numba's on-disk cache cannot load a self-recursive function (it
    crashes the process, numba issue #6061), and this one recursed exactly then."""
    a = (grid, i0, S, t, u, center, half, coef, eps, extra, n_extra, year_seconds, lines, n,
         level, skew, floor, r, q)  # fmt: skip
    got = _walk_flips_once(*a, tol)
    if got[6]:
        got = _walk_flips_once(*a, 0.0)
    return got[0], got[1], got[2], got[3], got[4], got[5]


@njit(cache=True)
def _walk_flips_once(grid, i0, S, t, u, center, half, coef, eps, extra, n_extra, year_seconds,
                     lines, n, level, skew, floor, r, q, tol):  # fmt: skip
    """``(found_true, x_true, found_visible, x_visible, bad, priced, ambiguous)``: the
    crossings of :func:`mmsim.book_kernels.nearest_flips` on ``grid`` (``grid[i0]`` the point at
    ``S``), by its walk out from ``S``, with the profile's signs from the table where
    they are certain (``|table| > eps``) and the exact profile elsewhere and at the two
    points of each crossing. ``coef`` rows: true and visible at ``t0``, ``t0 + H / 2``
    and ``t0 + H``; ``u`` the time fraction; ``extra`` the lines summed exactly beside the
    table (near expiry, booked since); ``lines`` the whole live book (exact values).
    ``bad``: the exact values around a crossing the signs showed have the same sign (the
    table's bound failed there); the caller then computes the flips in full. ``priced``:
    how many grid points the whole book was priced at (a full-book sum each).

    Each view walks right (``d = 1``) over consecutive non-zero values from the last
    non-zero at or left of ``i0``, and left (``d = -1``) from the first non-zero at or
    right of it, each as far as a crossing could still be nearer than the best so far; a
    crossing between grid points ``lo < hi`` is interpolated from ``lo``. The two walks
    take turns by distance from ``S`` (the nearer next point first, right on a tie), so
    a crossing farther than one already priced on the other side is never priced (the
    same answer as walking right then left: the best is the least ``(distance, x)`` of
    the crossings priced, and a walk only stops where no crossing beyond could be
    nearer).

    ``tol > 0`` (a fraction of the grid step): a crossing is interpolated from the
    table's values at its two points (the exact value at a point priced for its sign)
    when :func:`_interp_bound` proves that within ``tol`` of a grid step of the exact
    values' interpolation (no whole-book pricing there); else, and with ``tol = 0``, from
    the exact values (bit for bit :func:`~mmsim.book_kernels.nearest_flips`). A walk then goes on
    while a crossing could be nearer than the best one within its error, and when two
    crossings are as near within their errors ``ambiguous`` is set (:func:`walk_flips`
    then walks again with ``tol = 0``): the crossing is always the exact one's, its
    position within ``tol`` of a step."""
    m = grid.size
    vals = np.full((2, m), np.nan)
    ests = np.full((2, m), np.nan)  # the table's values where it gave the sign
    sign = np.full((2, m), 2, np.int64)  # 2: not yet known
    tmp = np.zeros((2, 1))
    a = (t, year_seconds, lines, n, level, skew, floor, r, q)
    tv = np.zeros((2, m))  # the table at every grid point: one vectorized pass
    _add_table(coef, u, (grid - center) / half, tv)
    if n_extra == 0:  # the table's signs where it is certain, at once
        for v in range(2):
            for j in range(m):
                x = tv[v, j]
                if x > eps[v] or x < -eps[v]:
                    sign[v, j] = 1 if x > 0.0 else -1
                    ests[v, j] = x
    seen = np.zeros(m, np.bool_)  # points whose table estimates _sign has read
    b = (grid, tv, eps, extra, n_extra, seen, tmp, *a)
    found = np.zeros(2, np.bool_)
    xs = np.zeros(2)
    bad = False
    last = np.zeros(2, np.int64)  # per walk (0: right, 1: left): the last non-zero value
    nxt = np.zeros(2, np.int64)  # ... and the next point
    ambiguous = False
    for v in range(2):
        best = np.inf
        best_x = 0.0
        best_err = 0.0  # $: most best_x may be off the exact values' crossing (tol > 0)
        for w in range(2):
            d = 1 if w == 0 else -1
            start = i0
            if sign[v, start] == 2:
                _sign(sign, vals, ests, start, v, *b)
            while (start > 0 if d == 1 else start < m - 1) and sign[v, start] == 0:
                start -= d
                if sign[v, start] == 2:
                    _sign(sign, vals, ests, start, v, *b)
            last[w], nxt[w] = start, start + d
        while True:
            go = -1  # the walk to step: the nearer next point of those that go on
            for w in range(2):
                d = 1 if w == 0 else -1
                j = nxt[w]
                if 0 <= j < m and d * (grid[last[w]] - S) <= best + best_err:
                    if go < 0 or abs(grid[j] - S) < abs(grid[nxt[go]] - S):
                        go = w
            if go < 0:
                break
            d = 1 if go == 0 else -1
            j = nxt[go]
            if sign[v, j] == 2:
                _sign(sign, vals, ests, j, v, *b)
            if sign[v, j] != 0:
                k = last[go]
                if sign[v, k] != 0 and sign[v, j] != sign[v, k]:
                    lo, hi = (k, j) if d == 1 else (j, k)
                    pa, pb, frac = _interp_ends(ests, vals, v, lo, hi, grid, eps[v], tol)
                    if pa == 0.0:  # not proven within tol: the exact values
                        pa = _profile_at(vals, grid, lo, *a)[v]
                        pb = _profile_at(vals, grid, hi, *a)[v]
                    if pa == 0.0 or pb == 0.0 or (pa > 0.0) == (pb > 0.0):
                        bad = True  # a table sign was wrong: the bound did not hold
                    x = grid[lo] - pa * (grid[hi] - grid[lo]) / (pb - pa)
                    dist = abs(x - S)
                    err = frac * (grid[hi] - grid[lo])  # $: most x is off the exact one's
                    if (
                        best < np.inf
                        and abs(dist - best) <= err + best_err
                        and err + best_err > 0.0
                    ):
                        ambiguous = True  # which is nearer may differ from the exact values'
                    if dist < best or (dist == best and x < best_x):
                        best, best_x, best_err = dist, x, err
                last[go] = j
            nxt[go] = j + d
        found[v] = best < np.inf
        xs[v] = best_x
    priced = 0
    for j in range(m):
        priced += vals[0, j] == vals[0, j]
    return found[0], xs[0], found[1], xs[1], bad, priced, ambiguous


@njit(cache=True)
def _add_table(coef, u, z, out):
    """Add both views of the table at grid coordinates ``z`` and time fraction ``u`` to
    ``out[0]`` (true) and ``out[1]`` (visible): the quadratic in time (Lagrange) through
    the slices at ``t0``, ``t0 + H / 2`` and ``t0 + H`` folded into one series per view,
    then Clenshaw's recurrence run for all points at once (independent chains, not one
    latency-bound chain per point). Equal to evaluating each slice's series and then
    the quadratic up to rounding (a few ulps of the coefficients' sums, far inside
    ``eps``)."""
    la = 2.0 * (u - 0.5) * (u - 1.0)
    lb = -4.0 * u * (u - 1.0)
    lc = 2.0 * u * (u - 0.5)
    nc, m = coef.shape[1], z.size
    z2 = 2.0 * z
    for v in range(2):
        c = la * coef[v] + lb * coef[2 + v] + lc * coef[4 + v]
        b1 = np.zeros(m)
        b2 = np.zeros(m)
        for j in range(nc - 1, 0, -1):
            cj = c[j]
            for p in range(m):  # b2 takes the new term, then the two swap names
                b2[p] = z2[p] * b1[p] - b2[p] + cj
            b1, b2 = b2, b1
        for p in range(m):
            out[v, p] += z[p] * b1[p] - b2[p] + c[0]


@njit(cache=True)
def _certain_sign(est, vals, v, j, a, grid, eps, t, year_seconds, lines, n, level, skew, floor,
                  r, q):  # fmt: skip
    """Sign of view ``v`` of the exact profile at ``grid[j]``: the table's (``est[v, j - a]``)
    where it is farther than ``eps`` from 0, else the exact profile's (``vals``, as
    :func:`table_flips` does); 0 for an exact zero."""
    x = est[v, j - a]
    if x > eps[v]:
        return 1
    if x < -eps[v]:
        return -1
    p = _profile_at(vals, grid, j, t, year_seconds, lines, n, level, skew, floor, r, q)[v]
    return 1 if p > 0.0 else (-1 if p < 0.0 else 0)


@njit(cache=True)
def flips_certain(grid, i0, S, t, held, none, u, center, half, coef, eps, extra, n_extra,
                  year_seconds, lines, n, level, skew, floor, r, q):  # fmt: skip
    """Whether the exact flips at spot ``S`` ($, ``grid[i0]``) and clock ``t`` lie in the
    grid cells of ``held`` (true, visible; NaN = no flip), i.e. within one grid step of
    them; arguments as :func:`table_flips`. ``none[v]``: view ``v`` has no flip (its
    weights have one sign), whatever the table says.

    For a held flip in the cell ``[grid[k], grid[k + 1]]`` and ``D`` the farther of its
    two points from ``S``: over every point within ``D`` of ``S`` and the first point
    beyond ``D`` on each side, the profile's non-zero values up to ``k`` have one sign
    and those from ``k + 1`` the other, with ``k``, ``k + 1`` and those two outer points
    non-zero (zeros carry no sign: a crossing is between consecutive non-zero values).
    Then the profile changes sign in that cell and nowhere else nearer (a crossing
    outside those points lies beyond ``D``), so the exact flip
    (:func:`mmsim.book_kernels.nearest_flips`, interpolated inside the cell) is in the
    cell too. No held flip: the non-zero values of the whole grid of one sign. The
    signs come from the table where it is farther than ``eps`` from 0 (evaluated for
    all those points at once), else from the exact profile, as in :func:`table_flips`;
    unlike it, no exact values at the crossing, where the table is certain."""
    m = grid.size
    los = np.full(2, m, np.int64)  # per view: the points to check, none for ``none``
    his = np.full(2, -1, np.int64)
    ks = np.full(2, -1, np.int64)  # the held flip's cell, -1: no held flip
    for v in range(2):
        x = held[v]
        found = x == x
        if none[v]:
            if found:
                return False
            continue
        los[v], his[v] = 0, m - 1
        if found:
            if not grid[0] <= x <= grid[m - 1]:
                return False
            k = min(np.searchsorted(grid, x, side="right") - 1, m - 2)
            far = max(abs(grid[k] - S), abs(grid[k + 1] - S))
            lo = hi = i0
            while lo > 0 and S - grid[lo] <= far:
                lo -= 1
            while hi < m - 1 and grid[hi] - S <= far:
                hi += 1
            los[v], his[v], ks[v] = lo, hi, k
    a, b = los.min(), his.max()
    if b < a:
        return True  # both views without a flip, as held
    pts = grid[a : b + 1]
    est = np.zeros((2, pts.size))
    if n_extra:
        gamma_pair(pts, t, year_seconds, extra, n_extra, level, skew, floor, r, q, est)
    _add_table(coef, u, (pts - center) / half, est)
    vals = np.full((2, m), np.nan)  # exact values where the table is in doubt
    c = (a, grid, eps, t, year_seconds, lines, n, level, skew, floor, r, q)
    for v in range(2):
        k, lo, hi = ks[v], los[v], his[v]
        if lo > hi:
            continue
        s = 0  # the sign up to the cell (no held flip: everywhere); zeros carry none
        if k >= 0:
            s = _certain_sign(est, vals, v, k, *c)
            if s == 0 or _certain_sign(est, vals, v, k + 1, *c) != -s:
                return False
            # a crossing beyond the checked points must start there: non-zero ends
            if lo > 0 and _certain_sign(est, vals, v, lo, *c) == 0:
                return False
            if hi < m - 1 and _certain_sign(est, vals, v, hi, *c) == 0:
                return False
        for j in range(lo, hi + 1):
            sj = _certain_sign(est, vals, v, j, *c)
            if sj == 0:
                continue
            want = s if k < 0 or j <= k else -s
            if want == 0:
                s = sj  # no held flip: the first non-zero sign sets it
            elif sj != want:
                return False
    return True


@dataclass
class ProfileTable:
    """The whole book's tabulated gamma profile, both views; see the module docstring.
    Units: spot and ``center``, ``half`` in $, times in clock seconds, ``eps`` and the
    coefficients in shares per $1."""

    t0: float
    H: float
    spot: float  # the build's spot
    center: float
    half: float
    surface: tuple
    coef: np.ndarray  # (6, N): true, visible at t0, t0 + H / 2, t0 + H
    eps: np.ndarray  # (2,)
    near: np.ndarray
    snap_units: np.ndarray = field(default_factory=lambda: np.zeros(0))
    snap_vis: np.ndarray = field(default_factory=lambda: np.zeros(0))
    extra: np.ndarray = field(default_factory=lambda: np.zeros((N_ROWS, 1)))
    n_extra: int = 0
    book_version: int = -1  # the book version ``extra`` is up to date with
    near_cut: float = np.inf  # lines expiring at or before this (s) are summed exactly
    slices: np.ndarray = field(default_factory=lambda: np.zeros((3, 2, 0)))  # the nodes' sums
    gross: np.ndarray = field(default_factory=lambda: np.zeros(2))  # largest gross sums
    folds: int = 0  # lines folded in since the build (:func:`fold_profile`)
    mark: int = 0  # the book's changed-line list up to here was folded in or is near

    def valid(self, S: float, t: float, surface: tuple) -> bool:
        """Whether the table may answer at spot ``S`` ($), clock ``t`` (s), ``surface``."""
        return (
            self.t0 <= t <= self.t0 + self.H
            and abs(S - self.spot) <= MOVE * self.spot
            and surface == self.surface
        )


def _fit(
    lines: np.ndarray,
    nodes: int,
    H: float,
    t: float,
    center: float,
    half: float,
    year_seconds: float,
    surface: tuple,
) -> tuple:
    """``(slices, coef, err, gross)``: the gamma sums of ``lines`` (all of them) at the
    ``nodes`` Chebyshev nodes of ``[center - half, center + half]`` ($) at clocks ``t``,
    ``t + H / 2``, ``t + H`` (s), their coefficients, and per view the largest error of
    the fit at the midpoints at ``VALIDATE_AT`` and the largest gross sum there."""
    x = np.cos(np.pi * (np.arange(nodes) + 0.5) / nodes)
    xm = np.cos(np.pi * np.arange(1, nodes) / nodes)
    # one pass over the lines: the nodes at t, t + H / 2, t + H, then the midpoints at
    # each of VALIDATE_AT (gamma_pair_fit_many: the values of one call per clock)
    at = (center + half * x, center + half * xm)
    spots = np.concatenate([at[0]] * 3 + [at[1]] * len(VALIDATE_AT))
    times = np.array([t + 0.5 * k * H for k in range(3)] + [t + u * H for u in VALIDATE_AT])
    seg = np.cumsum(np.array([0] + [nodes] * 3 + [nodes - 1] * len(VALIDATE_AT)))
    vals = np.zeros((4, spots.size))
    gamma_pair_fit_many(spots, seg, times, year_seconds, lines, lines.shape[1], *surface,
                        3 * nodes, vals)  # fmt: skip
    slices = vals[:2, : 3 * nodes].reshape(2, 3, nodes).transpose(1, 0, 2).copy()
    coef = _cheb_coefficients(slices.reshape(6, nodes))
    err = np.zeros(2)
    gross = np.zeros(2)
    for k, u in enumerate(VALIDATE_AT):
        exact = vals[:, seg[3 + k] : seg[4 + k]]
        gross = np.maximum(gross, exact[2:].max(axis=1))
        fit = np.zeros((2, nodes - 1))
        _add_table(coef, u, xm, fit)  # _in_time at every midpoint, in one call
        err = np.maximum(err, np.abs(fit - exact[:2]).max(axis=1))
    return slices, coef, err, gross


def _widths(lines: np.ndarray, t: float, year_seconds: float, surface: tuple) -> np.ndarray:
    """``sigma sqrt(T)`` of each line of ``lines`` at clock ``t`` (s): its vol at its own
    strike (the surface's level, floored, plus its offset, floored) times the root of
    its years to expiry (0 once expired)."""
    level, _, floor = surface[:3]
    sigma = np.maximum(max(level, floor) + lines[ROW_IV_OFF], floor)
    return sigma * np.sqrt(np.maximum(lines[ROW_EXPIRY] - t, 0.0) / year_seconds)


def _fit_grouped(
    lines: np.ndarray,
    nodes: int,
    H: float,
    t: float,
    center: float,
    half: float,
    year_seconds: float,
    surface: tuple,
) -> tuple:
    """:func:`_fit` of ``lines`` with the ``WIDE_GROUPS`` fitted apart with fewer nodes:
    the narrow lines' fit, plus each group's coefficients (zero beyond its own nodes: the
    same polynomial), its series' values at the ``nodes`` nodes in ``slices``, its
    validated error added to ``err`` and its largest gross sums to ``gross`` (a bound of
    the whole's). A group fitted no better than ``GROUP_SHARE`` of the narrow lines' error
    (plus ``GROUP_FLOOR`` of its scale) is fitted with ``nodes`` like them."""
    groups = [g for g in WIDE_GROUPS if g[1] < nodes]
    if not groups or not lines.shape[1]:
        return _fit(lines, nodes, H, t, center, half, year_seconds, surface)
    width = _widths(lines, t, year_seconds, surface)
    width[lines[ROW_EXPIRY] - t < WIDE_MIN_SPANS * H] = 0.0  # their gamma moves in time
    narrow = width < groups[-1][0]
    slices, coef, err, gross = _fit(take_lines(lines, narrow), nodes, H, t, center,
                                    half, year_seconds, surface)  # fmt: skip
    upper = np.inf
    basis = _basis(nodes)  # T_k at the nodes: [k, node]
    for least, few in groups:
        mask = (width >= least) & (width < upper)
        upper = least
        if not mask.any():
            continue
        part = take_lines(lines, mask)
        s_g, c_g, e_g, g_g = _fit(part, few, H, t, center, half, year_seconds, surface)
        if np.any(e_g > GROUP_SHARE * err + GROUP_FLOOR * np.abs(s_g).max(axis=(0, 2))):
            s_g, c_g, e_g, g_g = _fit(part, nodes, H, t, center, half, year_seconds, surface)
        else:
            c_g = np.concatenate([c_g, np.zeros((c_g.shape[0], nodes - few))], axis=1)
            s_g = (c_g @ basis).reshape(3, 2, nodes)  # its series at the nodes
        slices = slices + s_g
        coef = coef + c_g
        err = err + e_g
        gross = gross + g_g
    return slices, coef, err, gross


def build_profile(
    lines: np.ndarray, n: int, S: float, t: float, year_seconds: float, surface: tuple
) -> ProfileTable | None:
    """Fit and validate the profile table of the live ``lines`` (``n`` of them, all
    holders) around spot ``S`` ($) at clock ``t`` (s); ``surface`` is ``(level, skew,
    floor, r, q)``. ``None`` when no attempt is precise enough."""
    lo, hi = LO * S, HI * S
    center, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    expiry = lines[ROW_EXPIRY, :n]
    for nodes, H in ATTEMPTS:
        cut = t + max(NEAR_FACTOR * H, NEAR_MIN_SECONDS)
        near_mask = expiry <= cut
        if lines.shape[1] == n and not near_mask.any():
            far, near = lines, np.zeros((N_ROWS, 0))  # no copy of a whole book
        else:
            far, near = take_lines(lines, ~near_mask), take_lines(lines, near_mask)
        slices, coef, err, gross = _fit_grouped(far, nodes, H, t, center, half, year_seconds,
                                                surface)  # fmt: skip
        scale = np.abs(slices).max(axis=(0, 2))
        eps = SAFETY * (err + ROUNDING * gross) + 1e-12 * (scale + 1.0)
        if np.all(eps <= MAX_EPS * scale + 1e-9):
            return ProfileTable(t, H, S, center, half, tuple(surface), coef, eps, near,
                                near_cut=cut, slices=slices, gross=gross)  # fmt: skip
    return None


def fold_profile(tab: ProfileTable, changes: np.ndarray, year_seconds: float) -> bool:
    """Add lines to the table: ``changes`` (a line table, every line expiring after
    ``tab.near_cut``; typically the unit differences of lines booked since the build)
    fitted at the table's nodes and clocks like a build (:func:`_fit`), their
    coefficients added to the table's (gamma is linear in the weights), and ``eps``
    grown by their own validated error, times ``SAFETY``, plus ``ROUNDING`` x the gross
    sums of both (what splitting the exact sum in two may round differently): the
    error of a sum is at most the sum of the errors, so the table then bounds the sum
    of the old and the new lines as a build over both would. Returns ``False`` (the
    table unchanged) when the grown ``eps`` would exceed ``MAX_EPS`` of the profile's
    scale; then the caller builds anew."""
    nodes = tab.coef.shape[1]
    slices, coef, err, gross = _fit(changes, nodes, tab.H, tab.t0, tab.center, tab.half,
                                    year_seconds, tab.surface)  # fmt: skip
    both = tab.slices + slices
    scale = np.abs(both).max(axis=(0, 2))
    grown = tab.gross + gross
    eps = (
        tab.eps
        + SAFETY * (err + ROUNDING * grown)
        + 1e-12 * (np.abs(slices).max(axis=(0, 2)) + 1.0)
    )
    if not np.all(eps <= MAX_EPS * scale + 1e-9):
        return False
    tab.coef = tab.coef + coef
    tab.slices = both
    tab.eps = eps
    tab.gross = grown
    tab.folds += changes.shape[1]
    return True


@njit(cache=True)
def table_gex(walls, t, u, center, half, coef, extra, n_extra, year_seconds, level, skew, floor,
              r, q, out):  # fmt: skip
    """The true and visible GEX of the whole book ($ per 1%) at each spot of ``walls`` ($;
    NaN = none, NaN out) from the table (``coef`` at time fraction ``u``, plus its
    ``extra`` lines summed exactly at clock ``t``, s): ``out[2 w]`` true, ``out[2 w + 1]``
    visible of wall ``w``, each within ``eps x wall**2 x GEX_PER_PCT`` of the exact
    pricing (the table's validated bound). ``False``, nothing written, when a wall lies
    outside the fitted range ``[center - half, center + half]``."""
    w = walls.size
    ok = np.zeros(w, np.bool_)
    for j in range(w):
        x = walls[j]
        if x == x:
            if not abs(x - center) <= half:
                return False
            ok[j] = True
    spots = walls[ok]
    vals = np.zeros((2, spots.size))
    if n_extra:
        gamma_pair(spots, t, year_seconds, extra, n_extra, level, skew, floor, r, q, vals)
    _add_table(coef, u, (spots - center) / half, vals)
    k = 0
    for j in range(w):
        if ok[j]:
            scale = walls[j] * walls[j] * GEX_PER_PCT
            out[2 * j] = vals[0, k] * scale
            out[2 * j + 1] = vals[1, k] * scale
            k += 1
        else:
            out[2 * j] = np.nan
            out[2 * j + 1] = np.nan
    return True
