"""The option book's numba kernels: one line evaluator, one per-holder reduction.

Every kernel reads a *line table*: a float64 array of shape ``(N_ROWS, capacity)`` whose
rows are ``ROW_*`` below and whose first ``n`` columns are lines (see
:class:`mmsim.book.OptionBook` for units). A line with ``expiry <= t`` or zero units
contributes nothing. Each line is priced at
``sigma = max(surface_iv(K, S, level, skew, floor) + iv_offset, floor)`` (with a zero
offset this is ``surface_iv`` exactly, bit for bit).

:func:`reduce_lines` is the one kernel behind the dealer's check, the series sampler
and ``net_delta_gamma``; :func:`gamma_sum` (and the profile and per-line variants built
on it) serves the GEX views. All are allocation-free.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mmsim.greeks import bsm_scalar, delta_gamma_scalar, gamma_scalar
from mmsim.npsum import np_sum
from mmsim.vol import surface_iv, surface_iv_at

__all__ = [
    "GEX_PER_PCT",
    "N_ROWS",
    "gamma_sum",
    "holder_cols",
    "holder_gross",
    "holder_sum",
    "line_gamma",
    "profile_gamma",
    "reduce_lines",
    "take_lines",
]

GEX_PER_PCT = 0.01
"""GEX unit: dollars of delta change per 1% move, ``gamma * S**2 * 0.01`` per share."""

# rows of a line table
ROW_STRIKE, ROW_EXPIRY, ROW_IS_CALL, ROW_UNITS, ROW_HOLDER, ROW_VIS_W, ROW_IV_OFF = range(7)
N_ROWS = 7


def take_lines(lines: np.ndarray, which: np.ndarray) -> np.ndarray:
    """``lines[:, which]`` as a new row-major line table: the columns (lines) where the
    boolean mask ``which`` is true (a mask over the first ``which.size`` lines), or those
    at the indices ``which``, in their order. ``np.take`` along the columns: the same
    values as boolean or fancy indexing followed by ``np.ascontiguousarray``, 10-40x
    faster (a 10,000-line table in ~0.05 ms instead of ~1.5 ms: numpy's indexing of the
    second axis walks the table column by column, then the copy transposes it)."""
    idx = np.flatnonzero(which) if which.dtype == np.bool_ else which
    return np.take(lines, idx, axis=1)


@njit(cache=True)
def holder_gross(holder, qty, mult, n, h):
    """Sum of ``|qty * mult|`` over the first ``n`` lines whose ``holder`` is ``h`` (every
    line booked, live or not; shares), bit for bit numpy's
    ``np.abs(qty[:n][m] * mult[:n][m]).sum()`` with ``m = holder[:n] == h``
    (:func:`~mmsim.npsum.np_sum` of the gathered values), in one pass without numpy's
    four temporary arrays."""
    out = np.empty(n)
    k = 0
    for i in range(n):
        if holder[i] == h:
            out[k] = abs(qty[i] * mult[i])
            k += 1
    return np_sum(out, k)


@njit(cache=True, forceinline=False)  # not _check's: see kernel_checks._check
def line_sigma(K, S, level, skew, floor, offset):
    """Implied vol of a line at strike ``K`` ($), spot ``S`` ($): the surface plus the
    line's offset (vol units), never below ``floor``."""
    return max(surface_iv(K, S, level, skew, floor) + offset, floor)


@njit(cache=True, forceinline=False)  # not _check's: see kernel_checks._check
def line_sigma_at(x, level, skew, floor, offset):
    """:func:`line_sigma` at log-moneyness ``x = log(K / S)`` (for loops holding ``log K``
    and ``log S``; vol units)."""
    return max(surface_iv_at(x, level, skew, floor) + offset, floor)


@njit(cache=True)
def reduce_lines(S, t, year_seconds, lines, n, level, skew, floor, r, q, full, out):
    """Per-holder sums over the first ``n`` lines at spot ``S`` ($), clock ``t`` (s).

    Rows of ``out`` (shape ``(5, n_holders)``, zeroed here): 0 share delta (shares),
    1 share gamma (shares per $1) and, when ``full``, 2 charm (shares per year),
    3 vanna (shares per 1.00 of vol), 4 value ($). Returns the true and visible GEX at
    ``S`` ($ per 1% move) when ``full``, else ``(0.0, 0.0)``.
    """
    out[:, :] = 0.0
    acc_true = 0.0
    acc_vis = 0.0
    for i in range(n):
        units = lines[ROW_UNITS, i]
        if lines[ROW_EXPIRY, i] <= t or units == 0.0:
            continue
        K = lines[ROW_STRIKE, i]
        T = (lines[ROW_EXPIRY, i] - t) / year_seconds
        sigma = line_sigma(K, S, level, skew, floor, lines[ROW_IV_OFF, i])
        is_call = lines[ROW_IS_CALL, i] != 0.0
        h = int(lines[ROW_HOLDER, i])
        if full:
            g = bsm_scalar(S, K, T, sigma, r, q, is_call)
            out[0, h] += units * g[1]
            out[1, h] += units * g[2]
            out[2, h] += units * g[6]
            out[3, h] += units * g[5]
            out[4, h] += units * g[0]
            acc_true += units * g[2]
            w_vis = lines[ROW_VIS_W, i]
            if w_vis != 0.0:
                acc_vis += w_vis * g[2]
        else:
            d, gam = delta_gamma_scalar(S, K, T, sigma, r, q, is_call)
            out[0, h] += units * d
            out[1, h] += units * gam
    return acc_true * S * S * GEX_PER_PCT, acc_vis * S * S * GEX_PER_PCT


@njit(cache=True, forceinline=True)
def holder_cols(S, t, year_seconds, lines, first, n, level, skew, floor, r, q):
    """Share delta (shares) and gamma (shares per $1) summed over the ``n`` lines from
    column ``first`` of ``lines``: :func:`reduce_lines`' delta and gamma sums for one
    holder, the same terms in the same order (so the same floats), without its scratch
    array or a slice of the table; inlined (by LLVM) into the fast path's check."""
    delta = 0.0
    gamma = 0.0
    for i in range(first, first + n):
        units = lines[ROW_UNITS, i]
        if lines[ROW_EXPIRY, i] <= t or units == 0.0:
            continue
        K = lines[ROW_STRIKE, i]
        T = (lines[ROW_EXPIRY, i] - t) / year_seconds
        sigma = line_sigma(K, S, level, skew, floor, lines[ROW_IV_OFF, i])
        d, gam = delta_gamma_scalar(S, K, T, sigma, r, q, lines[ROW_IS_CALL, i] != 0.0)
        delta += units * d
        gamma += units * gam
    return delta, gamma


@njit(cache=True)
def holder_sum(S, t, year_seconds, lines, n, level, skew, floor, r, q, out):
    """Share delta and gamma of a one-holder line table (holder row 0): :func:`reduce_lines`
    without the extra greeks, returned as floats (``out`` is ``(5, 1)`` scratch)."""
    # np.bool_: typed, not a literal, so one reduce_lines serves every caller
    reduce_lines(S, t, year_seconds, lines, n, level, skew, floor, r, q, np.bool_(False), out)
    return out[0, 0], out[1, 0]


@njit(cache=True)
def gamma_sum(S, t, year_seconds, lines, n, row, level, skew, floor, r, q):
    """``sum(weight * gamma)`` over live lines, weight = row ``row`` of ``lines`` (units
    for the true view, ``ROW_VIS_W`` for the visible one), shares per $1."""
    acc = 0.0
    for i in range(n):
        w = lines[row, i]
        if lines[ROW_EXPIRY, i] <= t or w == 0.0:
            continue
        K = lines[ROW_STRIKE, i]
        T = (lines[ROW_EXPIRY, i] - t) / year_seconds
        sigma = line_sigma(K, S, level, skew, floor, lines[ROW_IV_OFF, i])
        acc += w * gamma_scalar(S, K, T, sigma, r, q)
    return acc


@njit(cache=True)
def profile_gamma(spots, t, year_seconds, lines, n, row, level, skew, floor, r, q, out):
    """GEX ($ per 1% move) re-priced at each spot of ``spots`` into ``out``."""
    for j in range(spots.size):
        S = spots[j]
        acc = gamma_sum(S, t, year_seconds, lines, n, row, level, skew, floor, r, q)
        out[j] = acc * S * S * GEX_PER_PCT


@njit(cache=True)
def line_gamma(S, t, year_seconds, lines, n, level, skew, floor, r, q, out):
    """Gamma of one unit of each line at spot ``S`` (shares per $1) into ``out[:n]``; 0
    when expired or when both its weights (``ROW_UNITS``, ``ROW_VIS_W``) are 0. A view's
    GEX per line is ``weight * out * S**2 * GEX_PER_PCT`` (both views from one pricing)."""
    for i in range(n):
        out[i] = 0.0
        if lines[ROW_EXPIRY, i] <= t or (lines[ROW_UNITS, i] == 0.0 and lines[ROW_VIS_W, i] == 0.0):
            continue
        K = lines[ROW_STRIKE, i]
        T = (lines[ROW_EXPIRY, i] - t) / year_seconds
        sigma = line_sigma(K, S, level, skew, floor, lines[ROW_IV_OFF, i])
        out[i] = gamma_scalar(S, K, T, sigma, r, q)


@njit(cache=True)
def gamma_pair_at(S, t, year_seconds, lines, n, level, skew, floor, r, q):
    """True and visible gamma sums (shares per $1: ``ROW_UNITS`` and ``ROW_VIS_W``
    weights) of the lines at spot ``S`` ($); one gamma per line serves both views, each
    view summing exactly what :func:`gamma_sum` sums, in the same order."""
    acc_true = 0.0
    acc_vis = 0.0
    for i in range(n):
        w_true = lines[ROW_UNITS, i]
        w_vis = lines[ROW_VIS_W, i]
        if lines[ROW_EXPIRY, i] <= t or (w_true == 0.0 and w_vis == 0.0):
            continue
        K = lines[ROW_STRIKE, i]
        T = (lines[ROW_EXPIRY, i] - t) / year_seconds
        sigma = line_sigma(K, S, level, skew, floor, lines[ROW_IV_OFF, i])
        g = gamma_scalar(S, K, T, sigma, r, q)
        if w_true != 0.0:
            acc_true += w_true * g
        if w_vis != 0.0:
            acc_vis += w_vis * g
    return acc_true, acc_vis


@njit(cache=True)
def _profile_at(vals, grid, j, t, year_seconds, lines, n, level, skew, floor, r, q):
    """``vals[:, j]``: the true and visible GEX profiles at ``grid[j]`` ($ per 1%), computed
    once (NaN = not yet) from :func:`gamma_pair_at`."""
    if vals[0, j] != vals[0, j]:
        S = grid[j]
        acc_true, acc_vis = gamma_pair_at(S, t, year_seconds, lines, n, level, skew, floor, r, q)
        vals[0, j] = acc_true * S * S * GEX_PER_PCT
        vals[1, j] = acc_vis * S * S * GEX_PER_PCT
    return vals[0, j], vals[1, j]


@njit(cache=True)
def _value(vals, grid, j, v, t, year_seconds, lines, n, level, skew, floor, r, q):
    """View ``v`` (0 true, 1 visible) of the profile at ``grid[j]``."""
    pair = _profile_at(vals, grid, j, t, year_seconds, lines, n, level, skew, floor, r, q)
    return pair[v]


@njit(cache=True)
def _walk(vals, v, grid, i0, S, t, year_seconds, lines, n, level, skew, floor, r, q):
    """Nearest crossing of view ``v`` to ``S``, walking out from ``grid[i0]``."""
    m = grid.size
    a = (t, year_seconds, lines, n, level, skew, floor, r, q)
    best = np.inf
    best_x = 0.0
    # walk right over consecutive non-zero values, from the last non-zero at or left of i0
    start = i0
    while start > 0 and _value(vals, grid, start, v, *a) == 0.0:
        start -= 1
    prev = start
    pv = _value(vals, grid, prev, v, *a)
    j = start + 1
    while j < m and grid[prev] - S <= best:
        x_v = _value(vals, grid, j, v, *a)
        if x_v != 0.0:
            if pv != 0.0 and (x_v > 0.0) != (pv > 0.0):
                x = grid[prev] - pv * (grid[j] - grid[prev]) / (x_v - pv)
                dist = abs(x - S)
                if dist < best or (dist == best and x < best_x):
                    best, best_x = dist, x
            prev, pv = j, x_v
        j += 1
    # walk left, from the first non-zero at or right of i0
    start = i0
    while start < m - 1 and _value(vals, grid, start, v, *a) == 0.0:
        start += 1
    nxt = start
    nv = _value(vals, grid, nxt, v, *a)
    j = start - 1
    while j >= 0 and S - grid[nxt] <= best:
        x_v = _value(vals, grid, j, v, *a)
        if x_v != 0.0:
            if nv != 0.0 and (x_v > 0.0) != (nv > 0.0):
                x = grid[j] - x_v * (grid[nxt] - grid[j]) / (nv - x_v)
                dist = abs(x - S)
                if dist < best or (dist == best and x < best_x):
                    best, best_x = dist, x
            nxt, nv = j, x_v
        j -= 1
    return best < np.inf, best_x


@njit(cache=True)
def nearest_flips(grid, i0, S, t, year_seconds, lines, n, level, skew, floor, r, q):
    """The zero crossings of the true and the visible GEX profiles over ``grid`` nearest
    to ``S`` (``grid[i0]`` is the grid point at ``S``), evaluating the profiles only from
    ``S`` outwards until no farther crossing can be nearer, both views from one gamma per
    line: the same crossings, interpolated by the same formula, as the full profiles
    (``mmsim.book._nearest_crossing``). Returns ``(found_true, x_true, found_visible,
    x_visible)``."""
    vals = np.full((2, grid.size), np.nan)
    a = (t, year_seconds, lines, n, level, skew, floor, r, q)
    found_t, x_t = _walk(vals, 0, grid, i0, S, *a)
    found_v, x_v = _walk(vals, 1, grid, i0, S, *a)
    return found_t, x_t, found_v, x_v
