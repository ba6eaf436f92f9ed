"""Proven bounds on a book's option delta over a box of spots and clocks.

:func:`delta_box` bounds ``sum(units * delta)`` of a line table (as
:func:`mmsim.book_kernels.holder_sum` computes it, floating-point rounding included) for
every spot ``S`` in ``[a, b]`` ($) and clock ``t`` in ``[t0, t1]`` (s). The compiled fast
path uses it to skip a dealer's check whose delta cannot have left the band
(:mod:`mmsim.fastpath`): a bound, not an estimate, so no check that would trade is
skipped and the run stays bit-identical.

Why it holds, for a flat surface (``skew == 0``: each line's vol does not depend on spot):
with ``x = log(S / K)``, ``s = sqrt(T)`` (``T`` in years),
``d1 = x / (sigma * s) + B * s``, ``B = (r - q) / sigma + sigma / 2``. ``d1`` increases
with ``x``; in ``s`` it is ``A / s + B s`` (``A = x / sigma``), convex when ``A > 0`` (its
maximum on ``[s1, s2]`` at an end, its minimum at an end or at ``sqrt(A / B)``) and concave
when ``A < 0``. So the lowest ``d1`` over the box is at ``S = a``, the highest at ``S = b``,
each at an end of the time range or the stationary point. A call's delta
``e^{-qT} N(d1)`` and a put's ``-e^{-qT} N(-d1)`` then lie between the products of the
extreme discount factors and the normal CDF at the extreme ``d1``; the units' signs give
the book's bounds. The computed values differ from the exact ones by a few ulps; margins
of ``1e-9`` relative (in ``d1`` and in shares) cover that by orders of magnitude.

With a skew (``skew != 0``) a line's vol ``sigma = max(max(level + skew log(K / S),
floor) + offset, floor)`` is monotone in ``x`` (each step is), so over ``[a, b]`` it lies
between its values at ``a`` and ``b``; ``d1 = x / (sigma s) + (r - q) s / sigma + sigma s / 2``
is then bounded term by term over the intervals of ``x``, ``sigma`` and ``s`` (interval
arithmetic: each term's extremes are at the intervals' ends, by the signs of ``x`` and
``r - q``), with the relative margin taken of the terms' sizes (the computed ``d1`` sums
them). Looser than the flat surface's bound by ``|x| / (sigma s) x d sigma / sigma`` in
``d1``: small over a skip window's box (a spot range of a fraction of a percent).

Not bounded (the caller must not skip): a line expiring inside the box, or
``sigma * sqrt(T)`` below ``MIN_STDEV`` anywhere in the box (near expiry, zero vol: the
delta is a step there).
"""

from __future__ import annotations

import math

from numba import njit

from mmsim.book_kernels import (
    ROW_EXPIRY,
    ROW_IS_CALL,
    ROW_IV_OFF,
    ROW_STRIKE,
    ROW_UNITS,
    line_sigma,
)
from mmsim.greeks import norm_cdf

__all__ = ["MIN_STDEV", "delta_box"]

MIN_STDEV = 1e-4
"""Smallest ``sigma * sqrt(T)`` a box may reach (vol x sqrt(years)); below it: no bound."""
_REL = 1e-9  # relative margin on d1 and on the bounds (computed values are ~1e-15 off)


@njit(cache=True)
def _d1_min(A, B, s1, s2):
    """Least ``A / s + B s`` over ``s`` in ``[s1, s2]`` (``0 < s1 <= s2``)."""
    lo = min(A / s1 + B * s1, A / s2 + B * s2)
    if A > 0.0 and B > 0.0:
        s = math.sqrt(A / B)
        if s1 < s < s2:
            lo = min(lo, 2.0 * math.sqrt(A * B))
    return lo


@njit(cache=True)
def _d1_max(A, B, s1, s2):
    """Greatest ``A / s + B s`` over ``s`` in ``[s1, s2]``."""
    hi = max(A / s1 + B * s1, A / s2 + B * s2)
    if A < 0.0 and B < 0.0:
        s = math.sqrt(A / B)
        if s1 < s < s2:
            hi = max(hi, -2.0 * math.sqrt(A * B))
    return hi


@njit(cache=True)
def _d1_skewed(a, b, K, s1, s2, mu, level, skew, floor, off):
    """Bounds ``(ok, lo, hi)`` on ``d1`` of a line of strike ``K`` ($) and vol offset
    ``off`` on a skewed surface over spots ``[a, b]`` ($) and ``s = sqrt(T)`` in ``[s1,
    s2]`` (sqrt of years; ``mu = r - q``), margins included; not ``ok`` when ``sigma s``
    reaches under :data:`MIN_STDEV` (module docstring)."""
    sa = line_sigma(K, a, level, skew, floor, off)
    sb = line_sigma(K, b, level, skew, floor, off)
    v_lo = min(sa, sb) * (1.0 - _REL)
    v_hi = max(sa, sb) * (1.0 + _REL)
    if not v_lo * s1 >= MIN_STDEV:
        return False, 0.0, 0.0
    xa = math.log(a / K)
    xb = math.log(b / K)
    # x / (sigma s): least at the least x over the largest |denominator| when x >= 0
    lo1 = xa / (v_hi * s2) if xa >= 0.0 else xa / (v_lo * s1)
    hi1 = xb / (v_lo * s1) if xb >= 0.0 else xb / (v_hi * s2)
    lo2 = mu * s1 / v_hi if mu >= 0.0 else mu * s2 / v_lo  # mu s / sigma
    hi2 = mu * s2 / v_lo if mu >= 0.0 else mu * s1 / v_hi
    lo3 = 0.5 * v_lo * s1  # sigma s / 2
    hi3 = 0.5 * v_hi * s2
    size = 1.0 + max(abs(lo1), abs(hi1)) + max(abs(lo2), abs(hi2)) + hi3
    return True, lo1 + lo2 + lo3 - _REL * size, hi1 + hi2 + hi3 + _REL * size


@njit(cache=True)
def delta_box(a, b, t0, t1, year_seconds, lines, n, level, skew, floor, r, q):
    """Bounds ``(ok, lo, hi)`` (shares) on the option delta of the first ``n`` lines of
    ``lines`` at every spot in ``[a, b]`` ($, ``0 < a <= b``) and clock in ``[t0, t1]``
    (s): as the kernels compute it, with lines expired at ``t0`` (or of zero units) left
    out as they do; on a flat or a skewed surface. Not ``ok`` when no bound is given
    (module docstring)."""
    if not 0.0 < a <= b or not t0 <= t1:
        return False, 0.0, 0.0
    lo = 0.0
    hi = 0.0
    gross = 0.0
    mu = r - q
    for i in range(n):
        units = lines[ROW_UNITS, i]
        E = lines[ROW_EXPIRY, i]
        if E <= t0 or units == 0.0:
            continue
        if E <= t1:
            return False, 0.0, 0.0
        K = lines[ROW_STRIKE, i]
        T1 = (E - t1) / year_seconds
        T2 = (E - t0) / year_seconds
        s1 = math.sqrt(T1)
        s2 = math.sqrt(T2)
        off = lines[ROW_IV_OFF, i]
        if skew == 0.0:
            sigma = line_sigma(K, a, level, skew, floor, off)
            if not sigma * s1 >= MIN_STDEV:
                return False, 0.0, 0.0
            B = mu / sigma + 0.5 * sigma
            d_lo = _d1_min(math.log(a / K) / sigma, B, s1, s2)
            d_hi = _d1_max(math.log(b / K) / sigma, B, s1, s2)
            d_lo -= _REL * (1.0 + abs(d_lo))
            d_hi += _REL * (1.0 + abs(d_hi))
        else:
            ok, d_lo, d_hi = _d1_skewed(a, b, K, s1, s2, mu, level, skew, floor, off)
            if not ok:
                return False, 0.0, 0.0
        if q == 0.0:
            dq_lo = dq_hi = 1.0
        else:
            e1 = math.exp(-q * T1)
            e2 = math.exp(-q * T2)
            dq_lo = min(e1, e2) * (1.0 - _REL)
            dq_hi = max(e1, e2) * (1.0 + _REL)
        if lines[ROW_IS_CALL, i] != 0.0:
            x_lo = dq_lo * norm_cdf(d_lo)
            x_hi = dq_hi * norm_cdf(d_hi)
        else:
            x_lo = -dq_hi * norm_cdf(-d_lo)
            x_hi = -dq_lo * norm_cdf(-d_hi)
        if units > 0.0:
            lo += units * x_lo
            hi += units * x_hi
        else:
            lo += units * x_hi
            hi += units * x_lo
        gross += abs(units)
    margin = _REL * gross
    return True, lo - margin, hi + margin
