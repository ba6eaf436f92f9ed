"""Node values of a few lines at all of a delta table's points at once (a fold's pricing).

A customer trade booked into a tabulated holder is folded into its delta table
(:func:`mmsim.delta_table.fold_nodes`): the trade's line (a unit difference) is priced at
the table's ``N`` nodes at ``t0`` and at ``t0 + H`` and at its ``N - 1`` validation points
at ``t0 + H / 2``. :func:`~mmsim.delta_table.node_greeks` is laid out for many lines at a
few spots (a block of lines per spot); for one line its per-spot set-up is most of the
work (three calls, ~5 us each at 32 nodes). :func:`fold_point_greeks` turns the layout
around: one line at a time, every point of the three sets in one vectorized pass, with
the same operations on the same operands for each (line, point) term, so its sums are
those of the three :func:`~mmsim.delta_table.node_greeks` calls, bit for bit
(``tests/test_fold_points.py``).

Units: $ for spots and strikes, s for clocks; rows of the outputs as
:func:`~mmsim.delta_table.node_greeks`: share delta, share gamma (per $1), charm (shares
per year), vanna (shares per 1.00 of vol), value ($), theta ($ per year), visible gamma.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from mmsim.book_kernels import (
    ROW_EXPIRY,
    ROW_IS_CALL,
    ROW_IV_OFF,
    ROW_STRIKE,
    ROW_UNITS,
    ROW_VIS_W,
    line_sigma_at,
)
from mmsim.fastexp import exp_array
from mmsim.fastnorm import erfc_array
from mmsim.greeks import _INV_SQRT_2, _INV_SQRT_2PI, TINY_STDEV, bsm_scalar

__all__ = ["d_column", "fold_point_greeks"]


@njit(cache=True, error_model="numpy")
def d_column(w, col, log_s, level, skew, floor, ea, half):
    """Column ``col`` of a block's scratch ``w`` (the layout of
    :func:`mmsim.delta_table._next_block`: rows 0-12 filled) at spot ``exp(log_s)`` ($):
    rows 13-17 get ``sigma sqrt T``, ``sigma`` (:func:`~mmsim.book_kernels.line_sigma_at`'s
    rule), ``1 / (sigma sqrt T)``, ``d2`` and ``-d1^2 / 2``; ``ea[col]`` and
    ``ea[half + col]`` the arguments of ``erfc`` giving ``2 N(s d1)`` and ``2 N(s d2)``.
    No branch (infinities where ``sigma sqrt T`` is 0, for the caller to replace), so the
    callers' loops vectorize; the one formula of :func:`mmsim.delta_table._block_d` and
    :func:`fold_point_greeks`."""
    x = w[1, col] - log_s  # log(K / S)
    sigma = line_sigma_at(x, level, skew, floor, w[9, col])  # level at skew 0 (x finite)
    sd = sigma * w[3, col]
    inv_sd = 1.0 / sd
    d1 = (w[8, col] - x) * inv_sd + 0.5 * sd
    d2 = d1 - sd
    ea[col] = -w[12, col] * d1 * _INV_SQRT_2
    ea[half + col] = -w[12, col] * d2 * _INV_SQRT_2
    w[13, col], w[14, col], w[15, col], w[16, col], w[17, col] = (
        sd,
        sigma,
        inv_sd,
        d2,
        -0.5 * d1 * d1,
    )


@njit(cache=True, error_model="numpy")
def _line_at(lines, i, t, year_seconds, r, q, p0, p1, c):
    """Line ``i``'s terms at clock ``t`` (s) that every spot shares, as
    :func:`mmsim.delta_table._next_block` computes them, into columns ``p0 .. p1 - 1`` of
    ``c`` (rows 0-12 of its block layout); False (nothing written) when the line has
    expired by ``t``."""
    if not lines[ROW_EXPIRY, i] > t:
        return False
    K = lines[ROW_STRIKE, i]
    T = (lines[ROW_EXPIRY, i] - t) / year_seconds
    root_t = math.sqrt(T)
    log_k = math.log(K)
    a4, a5 = 0.5 / T, 0.5 / root_t
    dq = math.exp(-q * T) if q != 0.0 else 1.0
    dr = math.exp(-r * T) if r != 0.0 else 1.0
    drift = (r - q) * T
    off, units, vis = lines[ROW_IV_OFF, i], lines[ROW_UNITS, i], lines[ROW_VIS_W, i]
    s = 1.0 if lines[ROW_IS_CALL, i] != 0.0 else -1.0
    for p in range(p0, p1):
        c[0, p], c[1, p], c[2, p], c[3, p] = K, log_k, T, root_t
        c[4, p], c[5, p], c[6, p], c[7, p] = a4, a5, dq, dr
        c[8, p], c[9, p], c[10, p], c[11, p], c[12, p] = drift, off, units, vis, s
    return True


@njit(cache=True, error_model="numpy")
def fold_point_greeks(lines, k, spots, mids, t0, H, year_seconds, level, skew, floor, r, q,
                      add0, add1, add_mid):  # fmt: skip
    """Node values of the first ``k`` lines of ``lines`` (holder row 0): at ``spots`` ($)
    and ``t0`` (s) into ``add0``, at ``spots`` and ``t0 + H`` into ``add1``, at ``mids``
    and ``t0 + H / 2`` into ``add_mid`` (each ``(7, points)``, zeroed here; rows of
    :func:`~mmsim.delta_table.node_greeks`). Equal, bit for bit, to
    ``node_greeks(spots, t0, ...)``, ``node_greeks(spots, t0 + H, ...)`` and
    ``node_greeks(mids, t0 + H / 2, ...)``: each term the same expression of the same
    operands, each sum in line order from 0. Cost O(k x points), vectorized over points."""
    n, nm = spots.size, mids.size
    m = 2 * n + nm  # points: spots at t0, spots at t0 + H, mids at t0 + H / 2
    add0[:7, :n] = 0.0
    add1[:7, :n] = 0.0
    add_mid[:7, :nm] = 0.0
    at = np.empty(m)
    for j in range(n):
        at[j] = spots[j]
        at[n + j] = spots[j]
    for j in range(nm):
        at[2 * n + j] = mids[j]
    log_at = np.empty(m)
    inv_at = np.empty(m)
    for p in range(m):
        log_at[p] = math.log(at[p])
        inv_at[p] = 1.0 / at[p]
    c = np.empty((18, m))
    live = np.empty(m, np.bool_)
    e2 = np.empty((5, 2 * m))  # erfc's arguments, values and scratch
    ea, en, sy, se, stmp = e2[0], e2[1], e2[2], e2[3], e2[4]
    pdf, ptmp = np.empty(m), np.empty(m)
    terms = np.empty((6, m))
    for i in range(k):
        if lines[ROW_UNITS, i] == 0.0:
            continue
        ok0 = _line_at(lines, i, t0, year_seconds, r, q, 0, n, c)
        ok1 = _line_at(lines, i, t0 + H, year_seconds, r, q, n, 2 * n, c)
        ok2 = _line_at(lines, i, t0 + 0.5 * H, year_seconds, r, q, 2 * n, m, c)
        if not (ok0 or ok1 or ok2):
            continue
        for p in range(m):  # a set the line expired by: priced anywhere, added nowhere
            live[p] = ok0 if p < n else (ok1 if p < 2 * n else ok2)
            if not live[p]:
                for row in range(13):
                    c[row, p] = 1.0
        for p in range(m):  # each point at its own spot
            d_column(c, p, log_at[p], level, skew, floor, ea, m)
        erfc_array(ea, en, sy, se, stmp, 2 * m)
        exp_array(c[17], pdf, ptmp, m)
        for p in range(m):  # node_greeks' terms
            S = at[p]
            s, dq, dr = c[12, p], c[6, p], c[7, p]
            p1 = dq * _INV_SQRT_2PI * pdf[p]
            c1 = 0.5 * en[p]
            c2 = 0.5 * en[m + p]
            kdr = c[0, p] * dr * c2
            sdq = S * dq * c1
            isd, d2, sigma = c[15, p], c[16, p], c[14, p]
            terms[0, p] = s * dq * c1
            terms[1, p] = p1 * inv_at[p] * isd
            terms[2, p] = s * q * dq * c1 - p1 * ((r - q) * isd - d2 * c[4, p])
            terms[3, p] = -p1 * d2 / sigma
            terms[4, p] = s * (sdq - kdr)
            terms[5, p] = -S * p1 * sigma * c[5, p] + s * (q * sdq - r * kdr)
        for p in range(m):
            if live[p] and c[13, p] < TINY_STDEV:  # zero vol: bsm_scalar's intrinsic terms
                g = bsm_scalar(at[p], c[0, p], c[2, p], c[14, p], r, q, c[12, p] > 0.0)
                terms[0, p], terms[1, p], terms[2, p] = g[1], g[2], g[6]
                terms[3, p], terms[4, p], terms[5, p] = g[5], g[0], g[4]
        for out, ok, p0, size in ((add0, ok0, 0, n), (add1, ok1, n, n), (add_mid, ok2, 2 * n, nm)):
            if ok:  # each row's sum in line order
                _accumulate(out, terms, c, p0, size)


@njit(cache=True)
def _accumulate(out, terms, c, p0, size):
    """``out[:, j] += `` the line's terms at point ``p0 + j`` (units x terms, the visible
    weight x gamma in row 6), as :func:`~mmsim.delta_table.node_greeks` adds them."""
    for j in range(size):
        p = p0 + j
        u = c[10, p]
        for row in range(6):
            out[row, j] += u * terms[row, p]
        out[6, j] += c[11, p] * terms[1, p]
