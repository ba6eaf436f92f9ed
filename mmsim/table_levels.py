"""A levels row of a tabulated book read from its tables in one compiled call.

With ``engine.levels_hold: table`` a levels sample of a book that tabulates reads the
flips from the profile table (:func:`~mmsim.profile_table.table_flips`), the walls from
the strikes of a proven spot x time box (:func:`~mmsim.wall_hold.levels_row_held`) and
the GEX at the visible walls from the profile table again
(:func:`~mmsim.profile_table.table_gex`). :meth:`mmsim.sampler.Sampler.update_levels`
finds those tables and checks that they answer, then calls the three kernels one by
one. :func:`levels_from_tables` is the same three calls in one, for a sample whose
tables are the last sample's and still answer (the book, the surface and the live
lines unchanged; spot and clock inside the box and the profile table's range): the
same row, bit for bit, without the per-sample lookups around each kernel (on the
synthetic 10,000-line book of ``benchmarks.books``, ~25 of the ~40 us of a levels
sample).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mmsim.profile_table import table_flips, table_gex
from mmsim.wall_hold import levels_row_held

__all__ = ["levels_from_tables"]


@njit(cache=True)
def levels_from_tables(frac, i0, S, t, u, center, half, coef, eps, extra, n_extra, year_seconds,
                       lines, n, level, skew, floor, r, q, tol, log_k, inv_t, st, hct, hpt, inv_v,
                       sv, hcv, hpv, mask_t, mask_v, idx_t, idx_v, cand_t, cand_v, has, scratch,
                       out):  # fmt: skip
    """Fill the 12 ``LEVEL_COLUMNS`` of ``out`` at spot ``S`` ($), clock ``t`` (s) as
    ``update_levels`` does for a tabulated book with ``levels_hold: table`` and a wall
    box: the flips by :func:`~mmsim.profile_table.table_flips` on the grid ``S * frac``
    (``frac[i0] == 1``) with interpolation tolerance ``tol`` (NaN for none), the walls
    and strike GEX by :func:`~mmsim.wall_hold.levels_row_held` (the box's arrays, from
    ``mask_t`` on), the GEX at the visible walls by
    :func:`~mmsim.profile_table.table_gex`. The profile table: ``center``, ``half`` ($),
    ``coef``, ``eps``, its ``extra`` lines, ``u`` the time fraction of ``t`` in its span.

    Returns ``False`` when the table cannot answer (a sign it got wrong, or a wall
    outside its fitted range): ``out`` is then partly written and the caller computes
    the row the long way, which handles both."""
    ft, xt, fv, xv, bad = table_flips(S * frac, i0, S, t, u, center, half, coef, eps, extra,
                                      n_extra, year_seconds, lines, n, level, skew, floor, r, q,
                                      tol)  # fmt: skip
    if bad:
        return False
    levels_row_held(S, t, year_seconds, lines, n, level, skew, floor, r, q, False, 2, log_k,
                    inv_t, st, hct, hpt, inv_v, sv, hcv, hpv, mask_t, mask_v, idx_t, idx_v,
                    cand_t, cand_v, has, scratch, out)  # fmt: skip
    if not table_gex(out[4:6], t, u, center, half, coef, extra, n_extra, year_seconds, level,
                     skew, floor, r, q, out[6:10]):  # fmt: skip
        return False
    out[0] = xt if ft else np.nan
    out[1] = xv if fv else np.nan
    return True
