"""A dealer's delta table into the compiled fast path's arrays, in one compiled call.

:class:`mmsim.hotloop.HotLoop` loads a dealer's table (``TM_TABLE``) whenever the book
has one up to date for it: after every customer trade folded into it (a 20-day
``multi_dealer_bands`` run: ~8,600 loads, ~60 per simulated day on later days against
~150 in its first, untabulated, day). A load writes the table's window and grid into the
dealer's row (``D_*`` of :mod:`mmsim.kernel_layout`), its coefficients into ``coefs`` and
its near and changed lines into ``xlines``: some twenty numpy element and slice writes
from Python, ~4 us, here one call of ~1 us (the same values in the same places).

Units: clocks and ``H`` in s, spot center and half-width in $ (the table's).
"""

from __future__ import annotations

from numba import njit

from mmsim.kernel_layout import (
    D_CENTER_S,
    D_CN,
    D_COFF,
    D_H,
    D_HALF,
    D_NOFF,
    D_T0,
    D_T1,
    D_TEXP,
    D_TMODE,
    D_WIN,
    D_XOFF,
    TM_TABLE,
)

__all__ = ["load_table_row", "pack_table"]


@njit(cache=True)
def load_table_row(dl, i, nxt, t0, H, center, half, coef, coefs, c0, near, near_n, changes,
                   changes_n, xlines, x0):  # fmt: skip
    """Dealer ``i`` reads its table until ``nxt`` (s, its lines' next expiry): no skip
    window (``D_WIN`` 0: a window bounds the evaluation it was set on), mode ``TM_TABLE``,
    the window ``t0 .. t0 + H`` (s), spot ``center`` +- ``half`` ($), ``H``; its
    coefficients ``coef`` into ``coefs`` from column ``c0``, its first ``near_n`` near and
    ``changes_n`` changed lines into ``xlines`` from column ``x0`` (one after the other),
    and those columns (first, count) into its row (:func:`pack_table`)."""
    row = dl[i]
    row[D_WIN] = 0.0
    row[D_TEXP] = nxt
    row[D_TMODE] = TM_TABLE
    row[D_T0] = t0
    row[D_T1] = t0 + H
    row[D_CENTER_S] = center
    row[D_HALF] = half
    row[D_H] = H
    pack_table(row, coef, coefs, c0, near, near_n, changes, changes_n, xlines, x0)


@njit(cache=True)
def pack_table(row, coef, coefs, c0, near, near_n, changes, changes_n, xlines, x0):
    """A table's coefficients ``coef`` into ``coefs`` from column ``c0``, its first
    ``near_n`` near and ``changes_n`` changed lines into ``xlines`` from column ``x0`` (one
    after the other), and those columns (first, count) into the dealer's ``row``."""
    cn = coef.shape[1]
    coefs[:, c0 : c0 + cn] = coef
    row[D_COFF] = c0
    row[D_CN] = cn
    for j in range(2):
        lines = near if j == 0 else changes
        k = near_n if j == 0 else changes_n
        col = D_NOFF if j == 0 else D_XOFF
        if k:
            xlines[:, x0 : x0 + k] = lines[:, :k]
        row[col] = x0
        row[col + 1] = k
        x0 += k
