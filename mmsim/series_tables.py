"""The series sampler's tabulated rows in compiled batches.

:meth:`~mmsim.book.OptionBook.series_greeks_many` splits the samples of one fast-path
kernel call into runs over which each holder's answer does not change kind (its delta
table stays valid, or it is evaluated exactly); :func:`holder_rows` fills one holder's
greeks over one run in one pass, ending the run at the first sample outside its table's
window (clock span, spot grid), and :func:`sum_gex` adds the GEX parts of every holder
in the order of the row-by-row :meth:`~mmsim.book.OptionBook.series_greeks`, so the rows
equal its, bit for bit (``tests/test_series_tables.py``).

Units: greeks rows as :func:`~mmsim.book_kernels.reduce_lines` (share delta, share gamma
per $1, charm per year, vanna per 1.00 of vol, value $); GEX $ per 1% move.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mmsim.book_kernels import GEX_PER_PCT, reduce_lines
from mmsim.delta_table import table_sample

__all__ = ["holder_rows", "sum_gex"]


@njit(cache=True)
def holder_rows(j0, j1, times, mids, h, tabulated, coef, scoef, center, half, t0, H,
                year_seconds, lines, n, near, near_n, changes, changes_n, level, skew, floor,
                r, q, w_lo, w_hi, w_center, w_half, greeks, parts, present):  # fmt: skip
    """Holder ``h``'s greeks ``greeks[j, :, h]`` and GEX parts for samples ``j0 <= j < end``
    at spot ``mids[j]`` ($) and clock ``times[j]`` (s); returns ``end``: ``j1``, or the
    first sample after ``j0`` outside the window ``w_lo <= t <= w_hi`` (s) and
    ``|S - w_center| <= w_half`` ($), where the holder's answer may change kind (its
    table no longer valid: the caller asks the book there).

    ``tabulated``: from the table (``coef``, ``scoef`` over ``center +- half`` $, from
    ``t0`` for ``H`` s; :func:`~mmsim.delta_table.table_sample`) plus the exact sums of
    its ``near`` lines and ``changes``; otherwise the exact sums of the holder's ``lines``
    (holder row 0). ``parts[j, h, k]`` (true, visible GEX) of the table or exact sum
    (``k = 0``), the near lines (1) and the changes (2), flagged in ``present``."""
    one = greeks[0, :, :1].copy()
    span = H / year_seconds
    for j in range(j0, j1):
        S = mids[j]
        t = times[j]
        if j > j0 and not (w_lo <= t <= w_hi and abs(S - w_center) <= w_half):
            return j
        if not tabulated:
            gt, gv = reduce_lines(S, t, year_seconds, lines, n, level, skew, floor, r, q,
                                  np.bool_(True), one)  # fmt: skip
            for row in range(5):
                greeks[j, row, h] = one[row, 0]
            parts[j, h, 0, 0] = gt
            parts[j, h, 0, 1] = gv
            present[j, h, 0] = True
            continue
        x = (S - center) / half
        u = (t - t0) / H
        d, g, c, va, v, vis = table_sample(coef, scoef, x, u, span)
        greeks[j, 0, h] = d
        greeks[j, 1, h] = g
        greeks[j, 2, h] = c
        greeks[j, 3, h] = va
        greeks[j, 4, h] = v
        scale = S * S * GEX_PER_PCT
        parts[j, h, 0, 0] = g * scale
        parts[j, h, 0, 1] = vis * scale
        present[j, h, 0] = True
        for k in range(1, 3):
            extra = near if k == 1 else changes
            m = near_n if k == 1 else changes_n
            if m:
                gt, gv = reduce_lines(S, t, year_seconds, extra, m, level, skew, floor, r, q,
                                      np.bool_(True), one)  # fmt: skip
                for row in range(5):
                    greeks[j, row, h] += one[row, 0]
                parts[j, h, k, 0] = gt
                parts[j, h, k, 1] = gv
                present[j, h, k] = True
    return j1


@njit(cache=True)
def sum_gex(j0, j1, parts, present, gex):
    """``gex[j]`` (true, visible; $ per 1%) = the present ``parts[j]`` summed holder by
    holder, each holder's table (or exact) part, near lines and changes in that order."""
    for j in range(j0, j1):
        acc_true = 0.0
        acc_vis = 0.0
        for h in range(parts.shape[1]):
            for k in range(3):
                if present[j, h, k]:
                    acc_true += parts[j, h, k, 0]
                    acc_vis += parts[j, h, k, 1]
        gex[j, 0] = acc_true
        gex[j, 1] = acc_vis
