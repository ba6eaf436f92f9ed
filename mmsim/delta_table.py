"""Tabulated option delta: a dealer's check in O(1) whatever the size of its book.

Between two changes of its book a dealer's option share delta is a smooth function of
spot, time and implied vol. :class:`DeltaTable` fits it (and share gamma) with Chebyshev
polynomials in spot on a grid around the spot of the build, at two times ``t0`` and
``t0 + H``, and interpolates in time with cubic Hermite polynomials (delta and its time
derivative, charm, at both ends; gamma linearly); a check then costs one Clenshaw
evaluation instead of one BSM evaluation per line.

Precision, whole shares (what a dealer trades in):

- The build is *validated*: the exact delta at ``t0 + H/2`` (where interpolation in time
  errs most) on the ``N - 1`` spots half-way between the nodes (where the fit
  errs most) must be within ``TOL_DELTA`` shares of the table; otherwise a finer fit
  (more nodes, shorter ``H``) is tried, and the holder falls back to exact evaluation
  when none passes.
- Lines expiring within ``NEAR_FACTOR * H`` or half a trading day of the build
  are not tabulated: they are evaluated exactly at every check (their delta turns into a
  step near expiry).
- Implied vol: a change of the surface level is allowed while ``|d level| x 2 max|vanna|``
  stays under ``TOL_VOL`` shares (the table ignores it; max over the nodes, doubled as a
  margin); any change of skew or floor rebuilds.
- Lines booked after the build are evaluated exactly beside the table (as unit
  differences; delta is linear in units) until there are too many; the table is rebuilt
  then, or when the clock leaves ``[t0, t0 + H]`` or spot leaves the grid.

So a tabulated check is within ``TOL_DELTA + TOL_VOL`` (3/4 of a share) of the exact one
at validated points. Results then differ bit-wise from exact evaluation; see
``tests/test_delta_table.py`` for the statistics that agree.

The same build serves the **series sampler** (``OptionBook.series_greeks``): the node
values carry the book's value and theta (Hermite in time, like delta), vanna and the
visible-view gamma (linear in time); charm is the time derivative of the delta's Hermite
cubic. They are validated at the same points with a margin of 2: value within half the
value tolerance ``max(TOL_VALUE, TOL_VALUE_REL x gross)`` ($, :func:`value_tol`; gross:
the tabulated lines' ``sum |units x value|`` at the build), charm and vanna within
``TOL_REL / 2`` of their largest value, the visible gamma within ``TOL_REL / 2`` of the
larger of its and the true gamma's. A table whose sampler rows fail (``sample_ok``
False) still serves checks; the sampler then reads its *split* (``DeltaTable.sampler``,
:func:`_sampler_split`) if one passes: a fit on the same grid and window of the far
lines less the shortest-dated expiries (the value of a line a day or two from expiry
curves in time more than the cubic follows to a cent), those evaluated exactly beside
it (at most :data:`SPLIT_MAX_SHARE` of the far lines; a book over $10M of gross value
rarely needs one, its value tolerance is relative); else it reads the table's own rows
if their value passes within half the *recorded* tolerance (:func:`recorded_tol`,
``TOL_VALUE_REL_RECORDED`` = 1e-7 of the gross: 10 cents per $1M of premium; the other
rows as above; a one-expiry book a day or two out, which no split helps); else it
evaluates that holder exactly, and also whenever the surface level differs from the
build's (value moves by vega x d level, which the table does not carry). Stated
tolerance of a sampled holder: delta 3/4 share, value :func:`value_tol` (1 cent, or
``TOL_VALUE_REL`` = 1e-9 of the gross value of its tabulated lines at the build when
larger: a book over $10M; :func:`recorded_tol` when read as the last resort), gamma,
charm, vanna ``TOL_REL`` (1%) of scale (``tests/test_big_books.py``,
``tests/test_chain_tables.py``, ``tests/test_delta_table.py``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from mmsim.book_kernels import (
    N_ROWS,
    ROW_EXPIRY,
    ROW_HOLDER,
    ROW_IS_CALL,
    ROW_IV_OFF,
    ROW_STRIKE,
    ROW_UNITS,
    ROW_VIS_W,
    take_lines,
)
from mmsim.fastexp import exp_array
from mmsim.fastnorm import erfc_array
from mmsim.fold_points import d_column, fold_point_greeks
from mmsim.greeks import _INV_SQRT_2PI, TINY_STDEV, bsm_scalar

__all__ = ["DeltaTable", "build_table", "fold_lines", "table_sample"]

TOL_DELTA = 0.25  # shares: validated fit + time-interpolation error of the delta
TOL_VOL = 0.5  # shares: most a level change may move delta before a rebuild
TOL_VALUE = 0.01  # $: validated error of the tabulated value (the series sampler's P&L)
TOL_VALUE_REL = 1e-9
"""... or this fraction of the book's gross option value (:func:`value_tol`) when larger:
$1 per $1bn of premium. A cent is ~1e-11 of the SPX chain book's gross value (billions
of $), finer than the cubic in time follows its shortest expiries; 1e-9 of it is a few
$ on a dealer P&L whose sampled changes are thousands of $ and its P&L vol (summary)
millions, so the recorded P&L moves by < 1e-6 of its vol. Books under $10M of gross
value keep the cent (and their bits)."""
TOL_REL = 1e-2  # gamma, charm, vanna: validated within 1% of their scale; the visible
# gamma within 1% of the larger of its scale and the true gamma's
HALF_WIDTH = 0.03  # half-width of the spot grid, fraction of the build's spot
NEAR_FACTOR = 2.0  # lines expiring within NEAR_FACTOR * H are evaluated exactly,
NEAR_MIN_YEARS = 1.0 / 504.0
"""... and so are lines within half a trading day: a 0DTE line's delta turns so fast in
its last hours that a table holding it must be short (on the SPX chain, 64 nodes and
300 s from 4 1/2 to 1 1/2 hours before the close: a build every 5 minutes of the whole
book), while evaluating it exactly costs one BSM evaluation per check (a quarter of a
day: 22 builds on the SPX day; half a day: 13, the kernel 0.08 s dearer)."""
ATTEMPTS = (
    (8, 23400.0), (16, 23400.0), (32, 7200.0), (32, 2400.0), (64, 1200.0), (64, 300.0),
    (128, 120.0),
)  # fmt: skip
"""(nodes, H seconds) tried in order until the validation passes. The first two, a whole
session on 8 then 16 nodes (a build per simulated day; 23 or 47 node evaluations per
line instead of 95 + 3 x 63 for four 2-hour tables), are tried only when they leave no
more lines to exact evaluation at every check than the first shorter fit would
(``NEAR_FACTOR * H``). 8 nodes pass on books whose lines all lie days from expiry (the
10,000-line benchmark book: delta within 4e-4 shares, value within 7e-4 $ at the
validation points; a session's time interpolation, not the spot fit, sets the error);
a book with lines a day or two out fails them (on the SPX chain, most often at the
:data:`HOPELESS` check of its shortest expiries, before its other lines are priced)."""
COARSE_SHARE = 0.5
"""A fit followed by a finer one of the same span (the 8-node whole-session fit of
:data:`ATTEMPTS`) is kept only within this share of every tolerance: a table rolled on
from it (:meth:`mmsim.book.OptionBook._table`, the same fit a session later, its lines
nearer expiry) then passes as the 16-node table's does, instead of failing and costing a
roll and a rebuild (on the 1,000-line test book, seed 2: value error 0.0029 $ at the
build, 0.0058 $ rolled on, against 0.005 $)."""
SPLIT_MAX_SHARE = 0.5
"""Most a sampler split (:func:`_sampler_split`) evaluates exactly: this share of the
table's far lines (beyond it exact sampling of the whole book costs little more)."""
HOPELESS = 10.0
"""A fit whose shortest-dated lines alone miss the delta by this many times ``TOL_DELTA``
is given up before the other lines are priced (:func:`_far_nodes`)."""
SPLIT_MAX_GROUPS = 8
"""... and at most this many expiries (each is summed apart at every build)."""
TOL_VALUE_REL_RECORDED = 1e-7
"""The series sampler's last resort, the *recorded* value tolerance (:func:`recorded_tol`),
a fraction of the tabulated lines' gross option value ($10 per $100M of premium, 10 cents
per $1M): when neither a table's sampler rows nor a split of its shortest expiries
(:func:`_sampler_split`) pass the value within :func:`value_tol`, the sampler reads the
table's own rows if their value passes within half of this (and gamma, charm, vanna and
visible gamma within their ``TOL_REL``, as always) instead of pricing every line of the
holder at every sample. The case: a book of one expiry a day or two out, where no split
can take an expiry off and the cubic in time misses the cent by cents to dimes on a
$1-10M book (``multi_dealer_bands``' last days: 6,456 exact holder-samples on day 20, ~90
ms). Only recorded columns read it (the dealers' option value and P&L; the sampler's
greeks and GEX within their usual tolerance): checks read the table's delta rows, which
this does not touch, so trades and hedges keep their bits. ``engine.delta_table: off``
samples exactly (``tests/test_delta_table.py``: the recorded error against exact sampling
over 30 seeds, within the bound, trades identical)."""
SAMPLER_MIN_H = 2400.0
"""Shortest ``H`` (s) a build tries only so the series sampler can read the table: a
build costs ~3 x nodes x lines BSM evaluations every ``H``, an exact sample ~lines, so
at a sample every 10 s a 32-node table pays from ``H`` ~2,000 s, a 64-node one from
~4,000 s."""


def recorded_tol(gross: float) -> float:
    """The recorded-value tolerance ($) of a whole sampler split of a table whose tabulated
    lines' gross option value is ``gross`` ($): ``max(value_tol(gross),
    TOL_VALUE_REL_RECORDED * gross)`` (:data:`TOL_VALUE_REL_RECORDED`)."""
    return max(value_tol(gross), TOL_VALUE_REL_RECORDED * gross)


def value_tol(gross: float) -> float:
    """The validated value tolerance ($) of a table whose tabulated lines' gross option
    value (sum of ``|units x value per unit|`` at the build) is ``gross`` ($):
    ``max(TOL_VALUE, TOL_VALUE_REL * gross)``."""
    return max(TOL_VALUE, TOL_VALUE_REL * gross)


NODE_BLOCK = 256
"""Lines per block of :func:`node_greeks` and :func:`line_values` (their per-line terms
at one spot in arrays that stay in the first-level cache)."""
_B_ROWS = 20
"""Rows of a block's scratch (:func:`_next_block`, :func:`_block_d`)."""


@njit(cache=True)
def _next_block(lines, n, i, t, after, year_seconds, r, q, w, idx):
    """The next :data:`NODE_BLOCK` live lines (expiring after ``after``, a clock at or
    after ``t``, s; units non-zero) from line ``i`` on, in line order, into the rows of
    ``w``: strike, log strike, ``T`` (years), ``sqrt T``, ``1 / (2 T)``,
    ``1 / (2 sqrt T)``, the dividend and rate discounts, the drift ``(r - q) T``, the
    vol offset, the units, the visible weight and the sign ``s`` (+1 call, -1 put:
    ``erfc(-s d / sqrt 2) / 2 = N(s d)``); their line numbers into ``idx``. Returns
    ``(next i, lines in the block)``."""
    b = 0
    while i < n and b < w.shape[1]:
        units = lines[ROW_UNITS, i]
        if lines[ROW_EXPIRY, i] > after and units != 0.0:
            K = lines[ROW_STRIKE, i]
            T = (lines[ROW_EXPIRY, i] - t) / year_seconds
            root_t = math.sqrt(T)
            w[0, b], w[1, b], w[2, b], w[3, b] = K, math.log(K), T, root_t
            w[4, b], w[5, b] = 0.5 / T, 0.5 / root_t
            w[6, b] = math.exp(-q * T) if q != 0.0 else 1.0
            w[7, b] = math.exp(-r * T) if r != 0.0 else 1.0
            w[8, b] = (r - q) * T
            w[9, b], w[10, b], w[11, b] = lines[ROW_IV_OFF, i], units, lines[ROW_VIS_W, i]
            w[12, b] = 1.0 if lines[ROW_IS_CALL, i] != 0.0 else -1.0
            idx[b] = i
            b += 1
        i += 1
    return i, b


@njit(cache=True, error_model="numpy")
def _block_d(log_s, b, level, skew, floor, w, ea):
    """For the ``b`` lines of a block (:func:`_next_block`) at spot ``exp(log_s)``: rows
    13-18 of ``w`` get ``sigma sqrt T``, ``sigma`` (:func:`~mmsim.book_kernels.line_sigma_at`'s
    rule), ``1 / (sigma sqrt T)``, ``d2`` and ``-d1^2 / 2``; ``ea`` the arguments of
    ``erfc`` giving ``2 N(s d1)`` (first ``b``) and ``2 N(s d2)`` (next ``b``). A loop
    the compiler vectorizes (selects, no branches; infinities where ``sigma sqrt T``
    is 0, for the caller to replace)."""
    for c in range(b):
        d_column(w, c, log_s, level, skew, floor, ea, b)


@njit(cache=True, error_model="numpy")
def line_values(lines, n, S, t, year_seconds, level, skew, floor, r, q):
    """``|units x BSM value per unit|`` ($) of each of the ``n`` lines at spot ``S`` ($)
    and clock ``t`` (s), 0 for expired lines; each line's iv by
    :func:`~mmsim.book_kernels.line_sigma`'s rule (surface, skew, offset, floor). Blocks
    of lines as in :func:`node_greeks` (within a few ulps of
    :func:`~mmsim.greeks.bsm_scalar`'s value; its own at zero vol)."""
    out = np.zeros(n)
    w = np.empty((_B_ROWS, NODE_BLOCK))
    idx = np.empty(NODE_BLOCK, np.int64)
    e2 = np.empty((5, 2 * NODE_BLOCK))
    ea, en, sy, se, stmp = e2[0], e2[1], e2[2], e2[3], e2[4]
    log_s = math.log(S)
    i = np.int64(0)  # typed, not a literal: one compiled _next_block
    while i < n:
        i, b = _next_block(lines, n, i, t, t, year_seconds, r, q, w, idx)
        _block_d(log_s, b, level, skew, floor, w, ea)
        erfc_array(ea, en, sy, se, stmp, 2 * b)
        for c in range(b):
            s, K, dq, dr = w[12, c], w[0, c], w[6, c], w[7, c]
            price = s * (S * dq * (0.5 * en[c]) - K * dr * (0.5 * en[b + c]))
            if w[13, c] < TINY_STDEV:  # zero vol: bsm_scalar's intrinsic value
                price = bsm_scalar(S, K, w[2, c], w[14, c], r, q, s > 0.0)[0]
            out[idx[c]] = abs(w[10, c] * price)
    return out


@njit(cache=True)
def node_greeks(spots, t, year_seconds, lines, n, level, skew, floor, r, q, out):
    """:func:`node_greeks_after` of every line live at ``t``."""
    node_greeks_after(spots, t, t, year_seconds, lines, n, level, skew, floor, r, q, out)


@njit(cache=True, error_model="numpy")
def node_greeks_after(spots, t, after, year_seconds, lines, n, level, skew, floor, r, q, out):
    """All the series sampler needs of the lines (one holder) at each spot ``spots[j]``
    ($): ``out[0..6, j]`` = share delta, share gamma (per $1), charm (shares per year),
    vanna (shares per 1.00 of vol), value ($), theta ($ per year of passage of time) and
    the visible-view gamma (``ROW_VIS_W``-weighted), each spot's sums in line order,
    over the lines expiring after ``after`` (s, at or after ``t``: the lines live at
    ``t`` less the shorter-dated ones a caller sums apart; the same sums as over a copy
    of those lines, without the copy).

    :func:`~mmsim.greeks.bsm_scalar`'s formulas, vectorized: the live lines taken
    :data:`NODE_BLOCK` at a time (:func:`_next_block`: what every spot shares once per
    line, ``log K``, ``sqrt(T)``, the discount factors), and per spot each block's terms
    in loops the compiler vectorizes (:func:`_block_d`; divisions without branches,
    ``error_model="numpy"``; the normal CDF from :func:`~mmsim.fastnorm.erfc_array` and
    the density from :func:`~mmsim.fastexp.exp_array`, within a few ulps of ``math``'s),
    then added in line order (one running sum per row and spot). Terms at ``sigma
    sqrt(T) < TINY_STDEV`` (zero vol) are :func:`~mmsim.greeks.bsm_scalar`'s. Within
    rounding (1e-11 of the gross sums, ``tests/test_delta_table.py``) of summing
    :func:`~mmsim.greeks.bsm_scalar` per line, at ~1/3 of its cost; not its bits (the
    tables are validated fits)."""
    m = spots.size
    out[:7, :m] = 0.0
    w = np.empty((_B_ROWS, NODE_BLOCK))
    idx = np.empty(NODE_BLOCK, np.int64)
    pdf = np.empty(NODE_BLOCK)
    e2 = np.empty((5, 2 * NODE_BLOCK))  # erfc's arguments, values and scratch
    ea, en, sy, se, stmp = e2[0], e2[1], e2[2], e2[3], e2[4]
    terms = np.empty((6, NODE_BLOCK))
    i = np.int64(0)  # typed, not a literal: one compiled _next_block
    while i < n:
        i, b = _next_block(lines, n, i, t, after, year_seconds, r, q, w, idx)
        for j in range(m):
            S = spots[j]
            inv_s = 1.0 / S
            _block_d(math.log(S), b, level, skew, floor, w, ea)
            erfc_array(ea, en, sy, se, stmp, 2 * b)
            exp_array(w[17], pdf, stmp, b)
            for c in range(b):
                s, dq, dr = w[12, c], w[6, c], w[7, c]
                p1 = dq * _INV_SQRT_2PI * pdf[c]  # dq x the density at d1
                c1 = 0.5 * en[c]  # N(s d1)
                c2 = 0.5 * en[b + c]  # N(s d2)
                kdr = w[0, c] * dr * c2
                sdq = S * dq * c1
                isd, d2, sigma = w[15, c], w[16, c], w[14, c]
                terms[0, c] = s * dq * c1  # delta
                terms[1, c] = p1 * inv_s * isd  # gamma
                terms[2, c] = s * q * dq * c1 - p1 * ((r - q) * isd - d2 * w[4, c])  # charm
                terms[3, c] = -p1 * d2 / sigma  # vanna
                terms[4, c] = s * (sdq - kdr)  # value
                terms[5, c] = -S * p1 * sigma * w[5, c] + s * (q * sdq - r * kdr)  # theta
            for c in range(b):
                if w[13, c] < TINY_STDEV:  # zero vol: bsm_scalar's intrinsic terms
                    g = bsm_scalar(S, w[0, c], w[2, c], w[14, c], r, q, w[12, c] > 0.0)
                    terms[0, c], terms[1, c], terms[2, c] = g[1], g[2], g[6]
                    terms[3, c], terms[4, c], terms[5, c] = g[5], g[0], g[4]
            t0, t1, t2, t3 = out[0, j], out[1, j], out[2, j], out[3, j]
            t4, t5, t6 = out[4, j], out[5, j], out[6, j]
            for c in range(b):  # each row's sum in line order
                u = w[10, c]
                t0 += u * terms[0, c]
                t1 += u * terms[1, c]
                t2 += u * terms[2, c]
                t3 += u * terms[3, c]
                t4 += u * terms[4, c]
                t5 += u * terms[5, c]
                t6 += w[11, c] * terms[1, c]
            out[0, j], out[1, j], out[2, j], out[3, j] = t0, t1, t2, t3
            out[4, j], out[5, j], out[6, j] = t4, t5, t6


@njit(cache=True)
def _cheb(c, x):
    """The Chebyshev series of coefficients ``c`` (one row of a table) at ``x``
    (Clenshaw). A row, not a row number: one compiled function for every row (a
    constant row number would compile one per number)."""
    b1 = 0.0
    b2 = 0.0
    for j in range(c.size - 1, 0, -1):
        b0 = 2.0 * x * b1 - b2 + c[j]
        b2 = b1
        b1 = b0
    return x * b1 - b2 + c[0]


@njit(cache=True)
def _clenshaw(coef, row, x):
    """:func:`_cheb` of row ``row`` of ``coef``."""
    return _cheb(coef[row], x)


@njit(cache=True)
def hermite_weights(u):
    """``(h00, h10, h01, h11)``: the cubic Hermite basis at time fraction ``u`` in [0, 1]
    (values at 0 and 1 weighted by ``h00``, ``h01``; slopes by ``h10``, ``h11``)."""
    u2 = u * u
    u3 = u2 * u
    return 2.0 * u3 - 3.0 * u2 + 1.0, u3 - 2.0 * u2 + u, -2.0 * u3 + 3.0 * u2, u3 - u2


@njit(cache=True)
def _hermite(coef, v0, v1, s0, s1, x, u, span):
    """Cubic Hermite in time at time fraction ``u`` in [0, 1] of the series at grid
    coordinate ``x``: values from rows ``v0`` (at ``t0``) and ``v1`` (at ``t0 + H``),
    slopes per year from rows ``s0`` and ``s1``; ``span`` is ``H`` in years."""
    h00, h10, h01, h11 = hermite_weights(u)
    out = h00 * _cheb(coef[v0], x) + h01 * _cheb(coef[v1], x)
    out += span * (h10 * _cheb(coef[s0], x) + h11 * _cheb(coef[s1], x))
    return out


@njit(cache=True)
def _clenshaw6(coef, x):
    """:func:`_clenshaw` of rows 0-5 of ``coef`` at ``x``, the six recurrences run side by
    side in one loop: each row's the same operations in the same order (the same
    floats), at about a third of six loops' time (one loop's steps wait on each other;
    six independent ones overlap)."""
    a0 = a1 = a2 = a3 = a4 = a5 = 0.0  # b1 of each row
    b0 = b1 = b2 = b3 = b4 = b5 = 0.0  # b2 of each row
    for j in range(coef.shape[1] - 1, 0, -1):
        n0 = 2.0 * x * a0 - b0 + coef[0, j]
        n1 = 2.0 * x * a1 - b1 + coef[1, j]
        n2 = 2.0 * x * a2 - b2 + coef[2, j]
        n3 = 2.0 * x * a3 - b3 + coef[3, j]
        n4 = 2.0 * x * a4 - b4 + coef[4, j]
        n5 = 2.0 * x * a5 - b5 + coef[5, j]
        b0, b1, b2, b3, b4, b5 = a0, a1, a2, a3, a4, a5
        a0, a1, a2, a3, a4, a5 = n0, n1, n2, n3, n4, n5
    return (
        x * a0 - b0 + coef[0, 0],
        x * a1 - b1 + coef[1, 0],
        x * a2 - b2 + coef[2, 0],
        x * a3 - b3 + coef[3, 0],
        x * a4 - b4 + coef[4, 0],
        x * a5 - b5 + coef[5, 0],
    )


@njit(cache=True)
def _clenshaw8(coef, x):
    """:func:`_clenshaw` of rows 0-7 of ``coef`` at ``x``: :func:`_clenshaw6` of rows
    0-5 and rows 6-7 beside them, the same floats."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = 0.0
    for j in range(coef.shape[1] - 1, 0, -1):
        n0 = 2.0 * x * a0 - b0 + coef[0, j]
        n1 = 2.0 * x * a1 - b1 + coef[1, j]
        n2 = 2.0 * x * a2 - b2 + coef[2, j]
        n3 = 2.0 * x * a3 - b3 + coef[3, j]
        n4 = 2.0 * x * a4 - b4 + coef[4, j]
        n5 = 2.0 * x * a5 - b5 + coef[5, j]
        n6 = 2.0 * x * a6 - b6 + coef[6, j]
        n7 = 2.0 * x * a7 - b7 + coef[7, j]
        b0, b1, b2, b3, b4, b5, b6, b7 = a0, a1, a2, a3, a4, a5, a6, a7
        a0, a1, a2, a3, a4, a5, a6, a7 = n0, n1, n2, n3, n4, n5, n6, n7
    return (
        x * a0 - b0 + coef[0, 0],
        x * a1 - b1 + coef[1, 0],
        x * a2 - b2 + coef[2, 0],
        x * a3 - b3 + coef[3, 0],
        x * a4 - b4 + coef[4, 0],
        x * a5 - b5 + coef[5, 0],
        x * a6 - b6 + coef[6, 0],
        x * a7 - b7 + coef[7, 0],
    )


@njit(cache=True)
def table_eval(coef, x, u, span):
    """Delta and gamma from the coefficient rows (delta, gamma, charm at ``t0``; the same
    at ``t0 + H``) at grid coordinate ``x`` in [-1, 1] and time fraction ``u`` in [0, 1];
    ``span`` is ``H`` in years (charm is per year). :func:`_hermite` of the delta rows and
    gamma linear in time, bit for bit, each row's Chebyshev sum run side by side
    (:func:`_clenshaw6`): what every check of a tabulated dealer reads."""
    c0, c1, c2, c3, c4, c5 = _clenshaw6(coef, x)
    h00, h10, h01, h11 = hermite_weights(u)
    d = h00 * c0 + h01 * c3
    d += span * (h10 * c2 + h11 * c5)
    g = (1.0 - u) * c1 + u * c4
    return d, g


@njit(cache=True)
def table_sample(coef, scoef, x, u, span):
    """The series sampler's greeks from a table at grid coordinate ``x`` in [-1, 1] and
    time fraction ``u`` in [0, 1] (``span`` = ``H`` in years): share delta and value
    cubic Hermite in time (with charm and theta, their time derivatives), gamma, charm,
    vanna and visible gamma linear. Returns ``(delta, gamma, charm, vanna, value,
    visible gamma)`` in the units of :func:`node_greeks`. Each row's Chebyshev sum once
    (the delta's and the charm's share theirs): :func:`table_eval` and :func:`_hermite`'s
    arithmetic, bit for bit."""
    # an 'A'-layout view, as kernel_checks._eval's column slice: one compiled _clenshaw6
    c0, c1, c2, c3, c4, c5 = _clenshaw6(coef[:, 0 : coef.shape[1]], x)
    s0, s1, s2, s3, s4, s5, s6, s7 = _clenshaw8(scoef, x)
    h00, h10, h01, h11 = hermite_weights(u)
    d = h00 * c0 + h01 * c3
    d += span * (h10 * c2 + h11 * c5)
    g = (1.0 - u) * c1 + u * c4
    v = h00 * s0 + h01 * s2
    v += span * (h10 * s1 + h11 * s3)
    # charm: the time derivative of the delta's Hermite cubic (one order better than
    # linear in time between the two charms)
    u2 = u * u
    charm = (6.0 * u - 6.0 * u2) * (c3 - c0) / span
    charm += (3.0 * u2 - 4.0 * u + 1.0) * c2
    charm += (3.0 * u2 - 2.0 * u) * c5
    w = 1.0 - u
    vanna = w * s4 + u * s5
    vis = w * s6 + u * s7
    return d, g, charm, vanna, v, vis


@functools.cache
def _basis(n: int) -> np.ndarray:
    """``cos(pi j (k + 1/2) / n)``, shape ``(j, k)`` (read-only: shared)."""
    k = np.arange(n) + 0.5
    basis = np.cos(np.pi * np.outer(np.arange(n), k) / n)
    basis.flags.writeable = False
    return basis


@functools.cache
def _midpoints(n: int) -> np.ndarray:
    """``cos(pi j / n)``, ``j = 1 .. n - 1``: half-way between the ``n`` nodes
    (read-only: shared)."""
    xm = np.cos(np.pi * np.arange(1, n) / n)
    xm.flags.writeable = False
    return xm


def _cheb_coefficients(values: np.ndarray) -> np.ndarray:
    """Chebyshev coefficients (first one halved, for Clenshaw) of values at the
    first-kind nodes ``cos(pi (k + 1/2) / N)``, one series per row (numpy; the profile
    table's fit, :mod:`mmsim.profile_table`)."""
    n = values.shape[-1]
    coef = 2.0 / n * values @ _basis(n).T
    coef[..., 0] *= 0.5
    return coef


@functools.cache
def _nodes(n: int) -> np.ndarray:
    """The ``n`` first-kind Chebyshev nodes ``cos(pi (k + 1/2) / n)`` (read-only: shared)."""
    x = np.cos(np.pi * (np.arange(n) + 0.5) / n)
    x.flags.writeable = False
    return x


@functools.cache
def _basis_t(n: int) -> np.ndarray:
    """``_basis(n)`` transposed, contiguous: ``cos(pi j (k + 1/2) / n)`` at ``[k, j]``."""
    out = np.ascontiguousarray(_basis(n).T)
    out.flags.writeable = False
    return out


@functools.cache
def _mid_t(n: int) -> np.ndarray:
    """``T_m`` at the validation points ``cos(pi j / n)``, ``j = 1 .. n - 1``:
    ``cos(pi m j / n)`` at ``[m, j - 1]`` (read-only: shared)."""
    out = np.cos(np.pi * np.outer(np.arange(n), np.arange(1, n)) / n)
    out.flags.writeable = False
    return out


@njit(cache=True)
def _cheb_rows(v0, v1, which, basis_t, out):
    """Chebyshev coefficients (first one halved, for Clenshaw) of the series at the
    first-kind nodes ``cos(pi (k + 1/2) / N)`` in row ``which[r, 1]`` of ``v0``
    (``which[r, 0] == 0``) or ``v1``, into ``out[r]`` for every row ``r`` of ``out``
    (length ``N``); ``basis_t``: :func:`_basis_t`. Summed in node order."""
    n = basis_t.shape[0]
    c = 2.0 / n
    out[:, :] = 0.0
    for r in range(out.shape[0]):
        src = v0 if which[r, 0] == 0 else v1
        row = which[r, 1]
        o = out[r]
        for k in range(n):
            a = c * src[row, k]
            b = basis_t[k]
            for j in range(n):
                o[j] += a * b[j]
        o[0] *= 0.5


@njit(cache=True)
def _at_points(coef, mid_t, out):
    """Each row's Chebyshev series (``coef``, first coefficient halved: the sum of
    :func:`_clenshaw`) at the points ``mid_t`` tabulates (``T_m`` there, ``T_0 = 1``):
    ``out[row, j]``."""
    out[:, :] = 0.0
    for r in range(coef.shape[0]):
        o = out[r]
        for m in range(coef.shape[1]):
            a = coef[r, m]
            b = mid_t[m]
            for j in range(out.shape[1]):
                o[j] += a * b[j]


_COEF_ROWS = ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2))
"""Rows of a table's ``coef``: (0 = at t0, 1 = at t0 + H; row of :func:`node_greeks`):
delta, gamma, charm at t0, then at t0 + H."""
_SCOEF_ROWS = ((0, 4), (0, 5), (1, 4), (1, 5), (0, 3), (1, 3), (0, 6), (1, 6))
"""Rows of its ``scoef``: value and theta at t0, at t0 + H; vanna at both; visible gamma
at both."""
_COEF_ROWS_A = np.array(_COEF_ROWS, dtype=np.int64)  # as arrays, for the kernels
_SCOEF_ROWS_A = np.array(_SCOEF_ROWS, dtype=np.int64)


@njit(cache=True)
def fit_nodes(v0, v1, exact, basis_t, mid_t, span, coef, scoef, err, scale):
    """The Chebyshev fit of node values ``v0`` (at ``t0``) and ``v1`` (at ``t0 + H``),
    rows of :func:`node_greeks`, into ``coef`` (6 rows) and ``scoef`` (8 rows)
    (``_COEF_ROWS``, ``_SCOEF_ROWS``; ``basis_t``: :func:`_basis_t`); into ``err`` the
    largest ``|table - exact|`` per row of :func:`node_greeks` (theta, row 5, not
    checked) at the validation points, half-way between the nodes (``mid_t``:
    :func:`_mid_t`) at time fraction 1/2 (``span``: ``H`` in years), as
    :func:`table_sample` reads the table there; into ``scale`` the largest ``|value|``
    per row of ``v0`` and ``v1``."""
    _cheb_rows(v0, v1, _COEF_ROWS_A, basis_t, coef)
    _cheb_rows(v0, v1, _SCOEF_ROWS_A, basis_t, scoef)
    m = mid_t.shape[1]
    p, s = np.empty((6, m)), np.empty((8, m))
    _at_points(coef, mid_t, p)
    _at_points(scoef, mid_t, s)
    # table_sample at u = 1/2: Hermite weights h00 = h01 = 1/2, h10 = -h11 = 1/8
    err[:] = 0.0
    got = np.empty(7)
    for j in range(m):
        got[0] = 0.5 * p[0, j] + 0.5 * p[3, j] + span * (0.125 * p[2, j] - 0.125 * p[5, j])
        got[1] = 0.5 * p[1, j] + 0.5 * p[4, j]
        got[2] = 1.5 * (p[3, j] - p[0, j]) / span - 0.25 * p[2, j] - 0.25 * p[5, j]
        got[3] = 0.5 * s[4, j] + 0.5 * s[5, j]
        got[4] = 0.5 * s[0, j] + 0.5 * s[2, j] + span * (0.125 * s[1, j] - 0.125 * s[3, j])
        got[6] = 0.5 * s[6, j] + 0.5 * s[7, j]
        for r in (0, 1, 2, 3, 4, 6):
            e = abs(got[r] - exact[r, j])
            if e > err[r]:
                err[r] = e
    for r in range(7):
        top = 0.0
        for k in range(v0.shape[1]):
            top = max(top, abs(v0[r, k]), abs(v1[r, k]))
        scale[r] = top


@njit(cache=True)
def fold_nodes(lines, k, spots, mids, t0, H, year_seconds, level, skew, floor, r, q, v_start,
               v_end, v_mid, v0, v1, exact):  # fmt: skip
    """Node values of a table plus ``k`` lines: ``v0 = v_start + `` the lines' values
    at ``spots`` and ``t0``, ``v1 = v_end + `` theirs at ``t0 + H``, ``exact = v_mid + ``
    theirs at ``mids`` and ``t0 + H / 2`` (rows of :func:`node_greeks`; s, $). The
    lines' values: :func:`~mmsim.fold_points.fold_point_greeks`, the three
    :func:`node_greeks` sums in one pass over the points (a fold prices a line or two)."""
    add0, add1 = np.empty((7, spots.size)), np.empty((7, spots.size))
    add_mid = np.empty((7, mids.size))
    fold_point_greeks(lines, k, spots, mids, t0, H, year_seconds, level, skew, floor, r, q,
                      add0, add1, add_mid)  # fmt: skip
    v0[:] = v_start + add0
    v1[:] = v_end + add1
    exact[:] = v_mid + add_mid


@dataclass
class DeltaTable:
    """One holder's tabulated delta; see the module docstring."""

    version: int
    t0: float
    H: float
    center: float
    half: float
    level: float
    skew: float
    floor: float
    vanna_max: float  # shares per 1.00 of vol, doubled as a margin
    coef: np.ndarray  # (6, N): delta, gamma, charm at t0, then at t0 + H
    near: np.ndarray  # line table of the lines evaluated exactly
    near_n: int
    error: float  # shares, the validated delta error
    # the series sampler's extra rows (value, theta at t0 and t0 + H; vanna, visible
    # gamma at both), usable when their validation passed (``sample_ok``)
    scoef: np.ndarray = field(default_factory=lambda: np.zeros((8, 1)))
    sample_ok: bool = False
    sample_error: float = math.inf  # $, the validated value error
    # $, the value tolerance of the sampler's validation (:func:`value_tol` of the gross
    # value of the tabulated lines at the build; a split keeps its table's)
    tol_value: float = TOL_VALUE
    gross: float = 0.0  # $, the tabulated lines' gross option value at the build
    # the sampler rows pass within the recorded tolerance (:func:`recorded_tol` of
    # ``gross``): the sampler's last resort (:meth:`sample_table`)
    recorded_ok: bool = False
    # set by the book: units of every line at the build, and the changes booked since
    # (a line table of unit differences, evaluated exactly)
    snap: np.ndarray = field(default_factory=lambda: np.zeros(0))
    changes: np.ndarray = field(default_factory=lambda: np.zeros((N_ROWS, 1)))
    changes_n: int = 0
    snap_vis: np.ndarray = field(default_factory=lambda: np.zeros(0))  # visible weights
    # node values at t0 + H of the far lines (their count), and the holder version of the
    # build: the next table of the same lines starts from them (``build_table(start=)``)
    v_end: np.ndarray = field(default_factory=lambda: np.zeros((7, 0)))
    far_n: int = -1
    built_version: int = -1
    # node values at t0 and at the validation points (t0 + H / 2, half-way between the
    # nodes), and the clock up to which lines count as near (evaluated exactly): what
    # ``fold_lines`` adds booked lines to; ``folded`` counts the lines it added
    v_start: np.ndarray = field(default_factory=lambda: np.zeros((7, 0)))
    v_mid: np.ndarray = field(default_factory=lambda: np.zeros((7, 0)))
    near_cut: float = math.inf
    folded: int = 0
    # clock (s) of the build that tried every fit, which this table rolled on from
    # (the book's ``_table``; NaN: this table's own build)
    chain_t0: float = math.nan
    # the series sampler's own table when this one's sampler rows failed validation: a fit
    # of the far lines less the shortest-dated ones on the same grid and window, those
    # evaluated exactly beside it (its ``near``; :func:`_sampler_split`)
    sampler: DeltaTable | None = None
    # what :func:`fold_booked` reads besides the lines, made at the table's first fold:
    # the book's ``(year_seconds, r, q)``, the scalars for them (:func:`_fold_scalars`),
    # scratch for one line, whether the table has node values, its grid, its node count
    fold_sc: tuple | None = None

    def sample_table(self) -> DeltaTable | None:
        """The table whose rows the series sampler reads (``coef``, ``scoef``, ``near``;
        the changes are this one's): this one when its sampler rows passed validation,
        else its :attr:`sampler` split, else this one when its sampler rows pass within
        the recorded tolerance (:attr:`recorded_ok`, :func:`recorded_tol`), else ``None``
        (exact evaluation)."""
        if self.sample_ok:
            return self
        split = self.sampler
        if split is not None and split.sample_ok:
            return split
        return self if self.recorded_ok else None

    def samples(self, S: float, t: float, level: float, skew: float, floor: float) -> bool:
        """Whether the series sampler may read this table: it is valid, its sampler rows
        (or its :attr:`sampler` split's) passed validation and the surface level is the
        build's (a level change moves the value by vega x d level, which the table does not
        carry)."""
        return (
            self.sample_table() is not None
            and level == self.level
            and self.valid(S, t, level, skew, floor)
        )

    def valid(self, S: float, t: float, level: float, skew: float, floor: float) -> bool:
        """Whether the table may answer at spot ``S``, clock ``t`` and this surface."""
        return (
            self.t0 <= t <= self.t0 + self.H
            and abs(S - self.center) <= self.half
            and self.fits_surface(level, skew, floor)
        )

    def fits_surface(self, level: float, skew: float, floor: float) -> bool:
        """Whether the table may answer on this surface: its skew and floor, and a level
        within ``TOL_VOL`` shares of delta of its own (through ``vanna_max``)."""
        return (
            skew == self.skew
            and floor == self.floor
            and abs(level - self.level) * self.vanna_max <= TOL_VOL
        )


def _fit(v0: np.ndarray, v1: np.ndarray, exact: np.ndarray, span: float) -> tuple:
    """Chebyshev fit of the node values ``v0`` (at ``t0``) and ``v1`` (at ``t0 + H``),
    rows of :func:`node_greeks`, validated against ``exact``, the same rows at the
    ``N - 1`` spots half-way between the nodes at ``t0 + H / 2`` (``span``: ``H`` in
    years). Returns ``(coef, scoef, err, scale)``: the delta table's and the sampler's
    coefficients, the largest error per row and the largest |value| per row."""
    n = v0.shape[1]
    coef, scoef = np.empty((6, n)), np.empty((8, n))
    err = np.zeros(7)  # delta, gamma, charm, vanna, value, (theta), visible gamma
    scale = np.zeros(7)
    fit_nodes(v0, v1, exact, _basis_t(n), _mid_t(n), span, coef, scoef, err, scale)
    return coef, scoef, err, scale


@njit(cache=True)
def passes(err, scale, tol_value):
    """``(checks may read it, the sampler may read it)`` for a fit's errors and scales:
    delta within ``TOL_DELTA`` shares and gamma ``TOL_REL`` of its scale; the sampler's
    rows with a margin of 2 (value ``tol_value / 2`` $, :func:`value_tol`; charm and
    vanna ``TOL_REL / 2`` of their scale, the visible gamma of the larger of its and the
    true gamma's)."""
    ok = err[0] <= TOL_DELTA and err[1] <= TOL_REL * scale[1] + 1e-9
    half_tol = 0.5 * TOL_REL
    sample_ok = (
        err[4] <= 0.5 * tol_value
        and err[2] <= half_tol * scale[2] + 1e-9
        and err[3] <= half_tol * scale[3] + 1e-9
        and err[6] <= half_tol * max(scale[6], scale[1]) + 1e-9
    )
    return ok, sample_ok


def _passes(err: np.ndarray, scale: np.ndarray, tol_value: float) -> tuple[bool, bool]:
    """:func:`passes` as Python bools."""
    ok, sample_ok = passes(err, scale, tol_value)
    return bool(ok), bool(sample_ok)


def _recorded_ok(sample_ok: bool, err: np.ndarray, scale: np.ndarray, gross: float) -> bool:
    """Whether a fit's sampler rows pass within the recorded tolerance (:func:`passes`
    with :func:`recorded_tol` of ``gross`` $): at once when they passed the table's own
    (``sample_ok``: the recorded tolerance is no narrower; no compiled call per fold)."""
    return bool(sample_ok) or _passes(err, scale, recorded_tol(gross))[1]


def near_cut(t: float, H: float, year_seconds: float) -> float:
    """Clock (s) up to which a table built at ``t`` (s) with span ``H`` (s) leaves lines to
    exact evaluation: ``NEAR_FACTOR * H`` or ``NEAR_MIN_YEARS`` after ``t``."""
    return t + max(NEAR_FACTOR * H, NEAR_MIN_YEARS * year_seconds)


def build_table(
    lines: np.ndarray,
    n: int,
    version: int,
    S: float,
    t: float,
    year_seconds: float,
    level: float,
    skew: float,
    floor: float,
    r: float,
    q: float,
    start: DeltaTable | None = None,
    attempts: tuple = ATTEMPTS,
) -> DeltaTable | None:
    """Fit and validate a table for the ``n`` lines of ``lines`` (one holder, holder row 0)
    around spot ``S`` ($) at clock ``t`` (s); ``None`` when no attempt passes.

    A fit that passes for checks but not for the series sampler (typically the value,
    whose curvature in time grows as lines near expiry) is kept aside while the shorter
    attempts whose ``H`` is at least :data:`SAMPLER_MIN_H` are tried, whether or not the
    ones between fail the checks (the fits differ in nodes, window and validation
    points: one may fail where a longer one passed): the first that passes
    both is kept, else the first that passes for checks (the sampler then evaluates this
    holder's lines exactly, O(lines) per sample, until the next build).

    ``start``: a table of the same lines and surface that ends at ``t`` on the same grid
    (``S`` its center): its node values at its end are this table's at ``t`` (the same
    numbers, computed once) when its fit (nodes, ``H``) is tried and its far lines are
    still all far. ``attempts``: the (nodes, ``H`` s) fits tried, :data:`ATTEMPTS`."""
    expiry = lines[ROW_EXPIRY, :n]
    surf = (level, skew, floor, r, q)
    half = S * HALF_WIDTH
    first = None  # the first fit that passes for checks but not for the sampler
    worth = line_values(lines, n, S, t, year_seconds, *surf)  # $, |units x value|
    longest = attempts[0][1]
    shorter = [h for _, h in attempts if h < longest]
    short_near = (
        int(np.count_nonzero(expiry <= near_cut(t, shorter[0], year_seconds))) if shorter else n
    )  # the lines the first shorter fit leaves to exact evaluation
    finest: dict[float, int] = {}  # the most nodes tried at each span
    for nodes, H in attempts:
        finest[H] = max(finest.get(H, 0), nodes)
    for nodes, H in attempts:
        if first is not None and H < SAMPLER_MIN_H:
            break  # a fit this short would cost more in builds than the sampler saves
        cut = near_cut(t, H, year_seconds)
        near_mask = expiry <= cut
        if H == longest and np.count_nonzero(near_mask) > short_near:
            continue  # the whole-session fits: only if they leave no more near lines
        if lines.shape[1] == n and not near_mask.any():
            far, near = lines, np.zeros((N_ROWS, 0))  # no copy of a whole book
        else:
            far, near = take_lines(lines, ~near_mask), take_lines(lines, near_mask)
        m = far.shape[1]
        x = _nodes(nodes)
        xm = _midpoints(nodes)  # half-way between the nodes
        rolled = (
            start is not None
            and start.v_end.shape == (7, nodes)
            and start.H == H
            and start.far_n == m
        )  # the same far lines, nodes, surface and time: its end is this table's start
        got = _far_nodes(far, S + half * x, S + half * xm, t, H, year_seconds, surf, rolled)
        if got is None:
            continue  # hopeless: a shorter fit may pass
        v0, v1, exact, groups = got
        if rolled:
            v0[:] = start.v_end
        coef, scoef, err, scale = _fit(v0, v1, exact, H / year_seconds)
        gross = float(worth[~near_mask].sum())  # the tabulated lines'
        tol_value = value_tol(gross)
        coarse = nodes < finest.get(H, nodes)  # a finer fit of the same span follows
        ok, sample_ok = _passes(err / COARSE_SHARE if coarse else err, scale, tol_value)
        recorded_ok = _recorded_ok(sample_ok, err / COARSE_SHARE if coarse else err, scale, gross)
        if not ok:
            continue  # a shorter fit may still pass (for the sampler too, if ``first``)
        table = DeltaTable(
            version, t, H, S, half, level, skew, floor, 2.0 * float(scale[3]), coef,
            near if near.shape[1] else np.zeros((N_ROWS, 1)), near.shape[1], err[0],
            scoef=scoef, sample_ok=sample_ok, sample_error=float(err[4]), tol_value=tol_value,
            gross=gross, recorded_ok=recorded_ok, v_end=v1, far_n=m, built_version=version,
            v_start=v0, v_mid=exact, near_cut=cut,
        )  # fmt: skip
        if sample_ok:
            return table
        if first is None:
            first = table  # checks may read it; a shorter attempt may serve the sampler too
            first_far, first_groups = far, groups
    if first is not None:
        first.sampler = _sampler_split(
            first,
            first_far,
            first_groups,
            year_seconds,
            surf,
            start.sampler if start is not None else None,
        )
    return first


@njit(cache=True)
def shortest_expiries(expiry, k):
    """The ``k`` smallest distinct values of ``expiry`` (s), ascending, and how many
    times each occurs: the first ``k`` of ``np.unique(expiry, return_counts=True)``,
    in one pass (a book's expiries: a few per line, the split needs the first few)."""
    cuts = np.empty(k)
    counts = np.zeros(k, np.int64)
    got = 0
    for e in expiry:
        j = got  # where ``e`` goes among the kept values
        while j > 0 and e < cuts[j - 1]:
            j -= 1
        if j > 0 and e == cuts[j - 1]:
            counts[j - 1] += 1
            continue
        if j == k:
            continue  # beyond the k smallest
        last = min(got, k - 1)
        for i in range(last, j, -1):
            cuts[i] = cuts[i - 1]
            counts[i] = counts[i - 1]
        cuts[j] = e
        counts[j] = 1
        got = min(got + 1, k)
    return cuts[:got].copy(), counts[:got].copy()


def _far_nodes(far: np.ndarray, spots: np.ndarray, mids: np.ndarray, t: float, H: float,
               year_seconds: float, surf: tuple, rolled: bool) -> tuple | None:  # fmt: skip
    """Node values (rows of :func:`node_greeks`) of the lines ``far`` at ``spots`` at
    ``t`` and ``t + H`` and at ``mids`` at ``t + H / 2`` (s, $): ``(v0, v1, exact,
    groups)``. The lines of the shortest expiries (up to :data:`SPLIT_MAX_SHARE` of them,
    at most :data:`SPLIT_MAX_GROUPS` expiries) are summed apart, one expiry at a time,
    first; the others' sums then have theirs added in expiry order. ``groups`` lists them
    (expiry, their three node values), what a sampler split (:func:`_sampler_split`) takes
    off. ``rolled``: ``v0`` is the caller's (the last table's end), not computed, nor are
    the groups' (``None``).

    ``None`` (the fit fails) without pricing the other lines when the groups' own fit
    misses the delta by more than :data:`HOPELESS` x ``TOL_DELTA``: the shortest-dated
    lines' error in time, which the smooth longer-dated lines cannot take back."""
    m = far.shape[1]
    nodes = spots.size
    expiry = far[ROW_EXPIRY, :m]
    cuts, counts = shortest_expiries(expiry, SPLIT_MAX_GROUPS + 1)
    take = int(np.searchsorted(np.cumsum(counts), SPLIT_MAX_SHARE * m, side="right"))
    cuts = cuts[: min(take, SPLIT_MAX_GROUPS)] if cuts.size > 1 else cuts[:0]
    cut = float(cuts[-1]) if cuts.size else -math.inf  # the rest expire after it
    shapes = ((7, nodes), (7, nodes), (7, nodes - 1))
    when = ((spots, t), (spots, t + H), (mids, t + 0.5 * H))
    groups = []
    short = np.flatnonzero(expiry <= cut)  # the groups' lines: one pass over the book
    for e in cuts:
        group = take_lines(far, short[expiry[short] == e])
        vals = [None if (i == 0 and rolled) else np.zeros(shape) for i, shape in enumerate(shapes)]
        for v, (at, clock) in zip(vals, when, strict=True):
            if v is not None:  # (a rolled table's at t: only if a split needs them)
                node_greeks(at, clock, year_seconds, group, group.shape[1], *surf, v)
        groups.append((float(e), *vals))
    if groups and not rolled:
        sums = [sum(g[i] for g in groups) for i in (1, 2, 3)]
        err = _fit(*sums, H / year_seconds)[2]
        if err[0] > HOPELESS * TOL_DELTA:
            return None
    v0, v1, exact = (np.zeros(shape) for shape in shapes)
    for i, (out, (at, clock)) in enumerate(zip((v0, v1, exact), when, strict=True)):
        if i == 0 and rolled:
            continue  # the rest: far's lines expiring after the groups' (no copy of them)
        node_greeks_after(at, clock, max(clock, cut), year_seconds, far, m, *surf, out)
        for g in groups:
            out += g[1 + i]
    return v0, v1, exact, groups


def _sampler_split(table: DeltaTable, far: np.ndarray, groups: list, year_seconds: float,
                   surf: tuple, last: DeltaTable | None = None) -> DeltaTable | None:  # fmt: skip
    """A table for the series sampler when ``table``'s sampler rows fail validation
    (typically the value of lines a day or two from expiry, whose curvature in time the
    cubic in time cannot follow to a cent): the same grid, window and validation over
    ``table``'s far lines ``far`` less the shortest-dated ones, their expiries (``groups``
    of :func:`_far_nodes`: their node values) taken off one by one from the shortest until
    the fit passes for checks and for the sampler (:func:`passes`, its own scales, as any
    table's). Those lines join ``table``'s near lines in the split's ``near`` (evaluated
    exactly at each sample). ``table`` itself (what checks read) is unchanged. ``None``
    when no split within :data:`SPLIT_MAX_SHARE` of the far lines passes."""
    m = far.shape[1]
    expiry = far[ROW_EXPIRY, :m]
    t0, H = table.t0, table.H
    v0, v1, exact = table.v_start.copy(), table.v_end.copy(), table.v_mid.copy()
    spots = table.center + table.half * _nodes(table.coef.shape[1])

    def candidates():
        """(cut, long lines' node values): the last split's cut first, from its end (a
        rolled table's groups have no values at t0), then the groups taken off one by one."""
        if last is not None and last.v_end.shape == v0.shape and last.H == H:
            at = [k for k, g in enumerate(groups) if g[0] == last.near_cut]
            if at:
                w1, wm = v1.copy(), exact.copy()
                for g in groups[: at[0] + 1]:
                    w1 -= g[2]
                    wm -= g[3]
                yield last.near_cut, last.v_end.copy(), w1, wm
        for cut, g0, g1, gm in groups:
            if g0 is None:  # a rolled table: the group's values at t0 (only now needed)
                g0 = np.zeros_like(v0)
                group = take_lines(far, expiry == cut)
                node_greeks(spots, t0, year_seconds, group, group.shape[1], *surf, g0)
            v0[:] -= g0
            v1[:] -= g1
            exact[:] -= gm
            yield cut, v0.copy(), v1.copy(), exact.copy()

    for cut, w0, w1, wm in candidates():
        coef, scoef, err, scale = _fit(w0, w1, wm, H / year_seconds)
        ok, sample_ok = _passes(err, scale, table.tol_value)
        if ok and sample_ok:
            keep = expiry > cut
            near = np.ascontiguousarray(
                np.hstack([table.near[:, : table.near_n], far[:, ~keep]])
            )  # fmt: skip
            return DeltaTable(
                table.version, t0, H, table.center, table.half, table.level, table.skew,
                table.floor, 2.0 * float(scale[3]), coef, near, near.shape[1], err[0],
                scoef=scoef, sample_ok=True, sample_error=float(err[4]),
                tol_value=table.tol_value, gross=table.gross, v_end=w1,
                far_n=int(np.count_nonzero(keep)), built_version=table.version, v_start=w0,
                v_mid=wm, near_cut=cut,
            )  # fmt: skip
    return None


@njit(cache=True)
def _fold_fit(lines, k, center, half, t0, H, year_seconds, level, skew, floor, r, q, x, xm,
              basis_t, mid_t, v_start, v_end, v_mid, v0, v1, exact, coef, scoef, err,
              scale, tol_value):  # fmt: skip
    """A table's node values plus those of ``k`` lines (:func:`fold_nodes`; grid
    ``center + half * x``, validation points ``center + half * xm``), refitted
    (:func:`fit_nodes`) into ``v0``, ``v1``, ``exact``, ``coef``, ``scoef``, ``err`` and
    ``scale``; returns :func:`passes` of the refit (value tolerance ``tol_value`` $)."""
    spots = center + half * x
    mids = center + half * xm
    fold_nodes(lines, k, spots, mids, t0, H, year_seconds, level, skew, floor, r, q, v_start,
               v_end, v_mid, v0, v1, exact)  # fmt: skip
    fit_nodes(v0, v1, exact, basis_t, mid_t, H / year_seconds, coef, scoef, err, scale)
    return passes(err, scale, tol_value)


@njit(cache=True)
def _refit(lines, k, sc, x, xm, basis_t, mid_t, v_start, v_end, v_mid, v0, v1, exact, coef,
           scoef):  # fmt: skip
    """A table's fold of ``k`` lines in one call: :func:`_fold_fit` into ``v0``, ``v1``,
    ``exact`` and scratch coefficients (``sc``: the table's scalars,
    :func:`_fold_scalars`) and, when the refit passes, the coefficients copied into the
    table's ``coef`` and ``scoef``. Returns ``(ok, sample_ok, recorded_ok, vanna_max,
    error, sample_error)``: the rest of the table's new state (:func:`_commit`)."""
    n = coef.shape[1]
    c, s = np.empty((6, n)), np.empty((8, n))
    err, scale = np.zeros(7), np.zeros(7)
    ok, sample_ok = _fold_fit(lines, k, sc[1], sc[2], sc[3], sc[4], sc[5], sc[6], sc[7], sc[8],
                              sc[9], sc[10], x, xm, basis_t, mid_t, v_start, v_end, v_mid, v0,
                              v1, exact, c, s, err, scale, sc[11])  # fmt: skip
    if not ok:
        return False, False, False, 0.0, 0.0, 0.0
    coef[:] = c
    scoef[:] = s
    recorded_ok = sample_ok or passes(err, scale, sc[12])[1]
    return True, sample_ok, recorded_ok, 2.0 * scale[3], err[0], err[4]


def _node_scratch(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """New node values of an ``n``-node table (at ``t0``, ``t0 + H``, the validation
    points): a fold's, which become the table's when it commits."""
    return np.empty((7, n)), np.empty((7, n)), np.empty((7, n - 1))


def _commit(table: DeltaTable, nodes: tuple, k: int, far_delta: int | None, fit: tuple) -> None:
    """Make a passing refit the table's (its coefficients are already, :func:`_refit`):
    node values ``nodes``, ``fit`` ``(sample_ok, recorded_ok, vanna_max, error,
    sample_error)``, ``k`` lines folded (``far_delta``: see :func:`fold_lines`)."""
    table.v_start, table.v_end, table.v_mid = nodes
    table.sample_ok, table.recorded_ok, table.vanna_max, table.error, table.sample_error = fit
    if far_delta is None or table.far_n < 0:
        table.far_n = -1  # node values of lines not counted: never rolled on
    else:
        table.far_n += far_delta
    table.folded += k


def _has_nodes(table: DeltaTable) -> bool:
    nodes = table.coef.shape[1]
    return table.v_start.shape == (7, nodes) and table.v_mid.shape == (7, nodes - 1)


def fold_lines(table: DeltaTable, lines: np.ndarray, k: int, year_seconds: float, r: float,
               q: float, far_delta: int | None = None) -> bool:  # fmt: skip
    """Add the ``k`` lines of ``lines`` (holder row 0; typically unit *differences* of
    lines booked since the build, all expiring after ``table.near_cut``) into the table:
    their node values at ``t0``, ``t0 + H`` and the validation points are added to the
    table's (delta, gamma, ... are linear in units), and the fit and its validation are
    redone from them. Cost O(k x nodes) BSM evaluations plus O(nodes^2) for the fit,
    whatever the size of the book (a rebuild costs O(lines x nodes)).

    ``far_delta``: how many lines the fold adds to the table's far lines (new live lines,
    less those netted out to 0 contracts); the table's node values at its end are then
    those of its far lines, ``far_n`` of them, and the next table of the same lines
    may start from them (``build_table(start=)``). ``None`` (not known): never rolled on.

    Returns False, leaving the table unchanged, when the refit fails the build's
    validation (e.g. a new strike the fit cannot follow): the caller rebuilds. The
    coefficient arrays are updated in place (``coef``, ``scoef`` keep their shapes)."""
    if not _has_nodes(table):
        return False  # a table without its node values (not from build_table)
    if k == 0:
        return True
    lines = np.ascontiguousarray(lines[:, :k])
    nodes = _node_scratch(table.coef.shape[1])
    ok, *fit = _refit(lines, k, _fold_scalars(table, year_seconds, r, q),
                      *_grid(table.coef.shape[1]), table.v_start, table.v_end, table.v_mid,
                      *nodes, table.coef, table.scoef)  # fmt: skip
    if not ok:
        return False
    _commit(table, nodes, k, far_delta, fit)
    if table.sampler is not None:
        _fold_split(table, lines, year_seconds, r, q)
    return True


@njit(cache=True)
def _split_changes(idx, packed, snap, snap_vis, near_cut, fold, rest, rest_idx):
    """The lines ``idx`` of the book's line table ``packed`` as unit (and visible-weight)
    differences from the table's snapshots, holder row 0: those expiring after
    ``near_cut`` into ``fold``, the others into ``rest`` (their indices ``rest_idx``).
    Returns ``(folded, rest, far lines added less those netted out)``."""
    a = b = far = 0
    for j in range(idx.size):
        i = idx[j]
        far_line = packed[ROW_EXPIRY, i] > near_cut
        out = fold if far_line else rest
        col = a if far_line else b
        for row in range(N_ROWS):
            out[row, col] = packed[row, i]
        out[ROW_UNITS, col] = packed[ROW_UNITS, i] - snap[i]
        out[ROW_VIS_W, col] = packed[ROW_VIS_W, i] - snap_vis[i]
        out[ROW_HOLDER, col] = 0.0
        if far_line:
            was, now = snap[i] != 0.0, packed[ROW_UNITS, i] != 0.0
            far += int(now and not was) - int(was and not now)
            a += 1
        else:
            rest_idx[b] = i
            b += 1
    return a, b, far


@njit(cache=True)
def _mark_folded(idx, packed, near_cut, snap, snap_vis):
    """The snapshots of the lines ``idx`` expiring after ``near_cut``: their units now."""
    for i in idx:
        if packed[ROW_EXPIRY, i] > near_cut:
            snap[i] = packed[ROW_UNITS, i]
            snap_vis[i] = packed[ROW_VIS_W, i]


@njit(cache=True)
def _fold_booked(idx, packed, snap, snap_vis, can_fit, sc, x, xm, basis_t, mid_t, v_start,
                 v_end, v_mid, v0, v1, exact, coef, scoef, fold, rest, rest_idx):  # fmt: skip
    """:func:`fold_booked` in one call: :func:`_split_changes`, then (lines to fold and
    ``can_fit``: the table has its node values) :func:`_refit` and, when it passes,
    :func:`_mark_folded`. Returns ``(folded, rest, far lines added, ok, sample_ok,
    recorded_ok, vanna_max, error, sample_error)``; ``ok`` True with nothing to fold."""
    k, b, far = _split_changes(idx, packed, snap, snap_vis, sc[0], fold, rest, rest_idx)
    if k == 0 or not can_fit:
        return k, b, far, k == 0, False, False, 0.0, 0.0, 0.0
    ok, sample_ok, recorded_ok, vanna_max, error, sample_error = _refit(
        fold, k, sc, x, xm, basis_t, mid_t, v_start, v_end, v_mid, v0, v1, exact, coef, scoef
    )  # fmt: skip
    if ok:
        _mark_folded(idx, packed, sc[0], snap, snap_vis)
    return k, b, far, ok, sample_ok, recorded_ok, vanna_max, error, sample_error


@functools.cache
def _grid(n: int) -> tuple:
    """An ``n``-node table's grid, validation points and Chebyshev bases: the read-only
    arrays :func:`_fold_fit` reads (``x``, ``xm``, ``basis_t``, ``mid_t``)."""
    return _nodes(n), _midpoints(n), _basis_t(n), _mid_t(n)


def _fold_scalars(table: DeltaTable, year_seconds: float, r: float, q: float) -> np.ndarray:
    """The scalars :func:`_fold_booked` reads, in one array (one argument, not 13): the
    near cut, center, half-width, ``t0``, ``H``, ``year_seconds``, the surface, ``r``,
    ``q``, the value tolerance and the recorded one (:func:`recorded_tol`)."""
    return np.array((table.near_cut, table.center, table.half, table.t0, table.H,
                     year_seconds, table.level, table.skew, table.floor, r, q,
                     table.tol_value, recorded_tol(table.gross)))  # fmt: skip


def fold_booked(table: DeltaTable, idx: np.ndarray, packed: np.ndarray, year_seconds: float,
                r: float, q: float) -> tuple[bool, np.ndarray, np.ndarray]:  # fmt: skip
    """Bring ``table`` up to date with the book's lines ``idx`` (sorted, unique, one
    holder's, changed since the build), read from the book's line table ``packed`` as
    unit differences from the table's snapshots (``snap``, ``snap_vis``: at least as
    long as the book): those expiring after ``near_cut`` folded into the fit
    (:func:`fold_lines`, far lines counted) and their snapshots moved on, the others
    returned to be evaluated exactly beside it. Returns ``(ok, rest, rest_idx)``: not
    ``ok`` (the table unchanged) when the refit fails validation; ``rest`` the line
    table of the other changes (holder row 0), ``rest_idx`` their lines. One compiled
    call (:func:`_fold_booked`: split, refit, validation and the coefficients' commit),
    few arguments and allocations: a customer trade is folded in at booking, so this
    runs once per trade of a tabulated holder."""
    sc = table.fold_sc
    if sc is None or sc[0] != (year_seconds, r, q):  # a table's scalars never change
        n = table.coef.shape[1]  # nor its nodes' shapes (``_commit`` keeps them)
        sc = table.fold_sc = ((year_seconds, r, q), _fold_scalars(table, year_seconds, r, q),
                              _fold_scratch(1), _has_nodes(table), _grid(n), n)  # fmt: skip
    _, scalars, one, can_fit, (x, xm, basis_t, mid_t), n = sc
    fold, rest, rest_idx = one if idx.size == 1 else _fold_scratch(idx.size)
    nodes = (np.empty((7, n)), np.empty((7, n)), np.empty((7, n - 1)))  # _node_scratch
    out = _fold_booked(
        idx, packed, table.snap, table.snap_vis, can_fit, scalars, x, xm, basis_t, mid_t,
        table.v_start, table.v_end, table.v_mid, nodes[0], nodes[1], nodes[2], table.coef,
        table.scoef, fold, rest, rest_idx,
    )  # fmt: skip
    k, b = out[0], out[1]
    # the other changes out of the scratch (most folds have none: shared empties)
    rest, rest_idx = (rest[:, :b].copy(), rest_idx[:b].copy()) if b else _NO_REST
    if not out[3]:
        return False, rest, rest_idx
    if k:
        _commit(table, nodes, k, out[2], out[4:])
        if table.sampler is not None:
            _fold_split(table, fold[:, :k], year_seconds, r, q)
    return True, rest, rest_idx


_NO_REST = (np.zeros((N_ROWS, 1)), np.zeros(0, dtype=np.int64))
""":func:`fold_booked`'s ``(rest, rest_idx)`` with no other changes: shared, never
written (a table's ``changes`` are read up to ``changes_n``)."""


def _fold_scratch(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scratch of :func:`fold_booked` for ``m`` changed lines: the lines to fold and the
    other changes (line tables; :func:`_fold_booked` writes the columns up to the counts
    it returns) and the other changes' line numbers. Read within the call only (the
    other changes leave it as copies): a table keeps one for a line (most folds)."""
    return np.zeros((N_ROWS, max(m, 1))), np.zeros((N_ROWS, max(m, 1))), np.zeros(m, np.int64)


def _fold_split(table: DeltaTable, lines: np.ndarray, year_seconds: float, r: float,
                q: float) -> None:  # fmt: skip
    """Bring ``table``'s sampler split up to date with ``lines`` (unit differences just
    folded into ``table``): those expiring by the split's cut join its exact lines, the
    others are folded into its fit (:func:`fold_lines`); the split is dropped (the sampler
    then evaluates the holder exactly) when that refit fails validation or fails the
    sampler's."""
    split = table.sampler
    short = lines[ROW_EXPIRY] <= split.near_cut
    if short.any():
        split.near = np.ascontiguousarray(
            np.hstack([split.near[:, : split.near_n], lines[:, short]])
        )  # fmt: skip
        split.near_n = split.near.shape[1]
    far = take_lines(lines, ~short)
    if far.shape[1] and not fold_lines(split, far, far.shape[1], year_seconds, r, q):
        table.sampler = None
    elif not split.sample_ok:
        table.sampler = None
    split.version = table.version


def retry_after(t: float) -> float:
    """When a holder whose table failed validation at ``t`` tries again (s)."""
    return t + 60.0 if math.isfinite(t) else t
