"""Proven bounds on a delta table's delta over a spot x time box: the skip windows of a
tabulated dealer whose check reads its table alone (:mod:`mmsim.skip_windows`).

A tabulated check's option delta is :func:`mmsim.delta_table.table_eval`'s, a polynomial
``D(x, u)``: Chebyshev series ``A, B`` (delta at ``t0``, ``t0 + H``) and ``C, E``
(charm, per year) in the grid coordinate ``x`` in [-1, 1], cubic Hermite in the time
fraction ``u`` in [0, 1]: ``D = h00 A + h01 B + span (h10 C + h11 E)`` (``span`` = ``H``
in years). Over ``x`` in ``[xlo, xhi]`` (holding ``x0``) and ``u`` in ``[u0, u1]``:

- in spot, at ``u0``: ``D(x, u0) = P(x)``, one Chebyshev series; by Taylor,
  ``|P(x) - P(x0) - P'(x0)(x - x0)| <= M2 (x - x0)**2 / 2`` with
  ``M2 = sum |p_k| k**2 (k**2 - 1) / 3 >= max |P''|`` (Markov: ``|T_k''| <= T_k''(1)``
  on [-1, 1]);
- in time, at any ``x``: ``dD/du = h00' (A - B) + span (h10' C + h11' E)`` (``h01' =
  -h00'``) and ``|T_k| <= 1``: ``|D(x, u) - D(x, u0)| <= (w00 sum |a_k - b_k| + span
  w1 sum (|c_k| + |e_k|)) (u - u0)``, ``w00`` the largest ``|h00'|`` on ``[u0, u1]``
  (3/2 at most), ``w1`` the largest ``|h10'|``, ``|h11'|`` there (1 at most);
- plus :data:`ROUND_REL` x ``n**2`` x the sum of the series' ``|coefficients|`` for what
  rounding may move the check's computed delta (and this bound's own arithmetic) from
  the polynomial's value (Clenshaw's error is ``O(n**2)`` ulps of that sum).

The bounds hold for the check's floats, so a check inside the box whose delta plus the
shares held lies within the band by them finds it so, as the evaluation would: skipping
it changes nothing in the run (the trades are bit for bit the same). Units: the table's
(shares), ``span`` years.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mmsim.delta_table import hermite_weights

__all__ = ["ROUND_REL", "table_delta_box"]

ROUND_REL = 1e-9
"""Rounding allowance, a fraction of ``n**2`` x the sum of the delta series' absolute
coefficients (``n`` coefficients a row): ~1e7 times Clenshaw's rounding bound, still
~1e-3 shares on the 10,000-line benchmark book (8 coefficients, sums ~2e4 shares)."""


@njit(cache=True)
def _most(a, b, c, u0, u1):
    """``max |a u**2 + b u + c|`` over ``u`` in ``[u0, u1]``: at an end or the vertex."""
    m = max(abs((a * u0 + b) * u0 + c), abs((a * u1 + b) * u1 + c))
    v = -b / (2.0 * a)
    if u0 < v < u1:
        m = max(m, abs((a * v + b) * v + c))
    return m * (1.0 + 1e-12)


@njit(cache=True)
def table_delta_box(coef, x0, xlo, xhi, u0, u1, span):
    """``(ok, lo, hi)``: bounds (shares) on the delta of the table rows ``coef`` (the
    layout :func:`~mmsim.delta_table.table_eval` reads: delta, gamma, charm at ``t0``,
    the same at ``t0 + H``) over grid coordinates ``[xlo, xhi]`` (within [-1, 1],
    holding ``x0``) and time fractions ``[u0, u1]`` (within [0, 1]); ``span`` is ``H`` in
    years. Not ``ok`` outside those ranges or where a bound is not finite."""
    if not (-1.0 <= xlo <= x0 <= xhi <= 1.0 and 0.0 <= u0 <= u1 <= 1.0):
        return False, 0.0, 0.0
    n = coef.shape[1]
    h00, h10, h01, h11 = hermite_weights(u0)
    # one pass, no scratch: T_k(x0) and T_k'(x0) = k U_{k-1}(x0) by their recurrences
    p0 = 0.0  # P(x0)
    p1 = 0.0  # P'(x0)
    m2 = 0.0  # bounds max |P''| on [-1, 1]
    drift = 0.0  # sum |a_k - b_k|
    charm = 0.0  # sum |c_k| + |e_k|
    gross = 0.0  # sum of the series' |coefficients|
    t_prev, t_k = 1.0, 1.0  # T_{k-1}, T_k (T_{-1} unused)
    u_prev, u_k = 0.0, 1.0  # U_{k-2}, U_{k-1}
    for k in range(n):
        a, c, b, e = coef[0, k], coef[2, k], coef[3, k], coef[5, k]
        pk = h00 * a + h01 * b + span * (h10 * c + h11 * e)
        if k == 0:
            t_k = 1.0
        elif k == 1:
            t_prev, t_k = 1.0, x0
        else:
            t_prev, t_k = t_k, 2.0 * x0 * t_k - t_prev
            u_prev, u_k = u_k, 2.0 * x0 * u_k - u_prev
        p0 += pk * t_k
        if k >= 1:
            p1 += pk * (k * u_k)
        m2 += abs(pk) * (k * k * (k * k - 1.0) / 3.0)
        drift += abs(a - b)
        charm += abs(c) + abs(e)
        gross += abs(a) + abs(b) + span * (abs(c) + abs(e))
    r_up = xhi - x0
    r_dn = x0 - xlo
    r = max(r_up, r_dn)
    slack = 0.5 * m2 * r * r
    w00 = _most(6.0, -6.0, 0.0, u0, u1)  # max |h00'| on [u0, u1]
    w1 = max(_most(3.0, -4.0, 1.0, u0, u1), _most(3.0, -2.0, 0.0, u0, u1))  # h10', h11'
    slack += (w00 * drift + span * w1 * charm) * (u1 - u0)
    slack += ROUND_REL * (n * n) * gross
    hi = p0 + max(p1 * r_up, -p1 * r_dn) + slack
    lo = p0 + min(p1 * r_up, -p1 * r_dn) - slack
    ok = np.isfinite(lo) and np.isfinite(hi)
    return ok, lo, hi
