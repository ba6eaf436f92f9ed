"""``mmsim.table_load.load_table_row``: a dealer's delta table into the fast path's arrays
in one compiled call, value for value what ``HotLoop``'s Python writes put there."""

from __future__ import annotations

import numpy as np

from mmsim import fastpath as fp
from mmsim.table_load import load_table_row


def _python_load(dl, i, nxt, t0, H, center, half, coef, coefs, c0, near, near_n, changes,
                 changes_n, xlines, x0):  # fmt: skip
    """The writes of ``HotLoop._set_evaluation`` (a table) and ``_pack_one``, in Python."""
    row = dl[i]
    row[fp.D_WIN] = 0.0
    row[fp.D_TEXP] = nxt
    row[fp.D_TMODE] = fp.TM_TABLE
    row[fp.D_T0], row[fp.D_T1] = t0, t0 + H
    row[fp.D_CENTER_S], row[fp.D_HALF], row[fp.D_H] = center, half, H
    cn = coef.shape[1]
    coefs[:, c0 : c0 + cn] = coef
    row[fp.D_COFF], row[fp.D_CN] = c0, cn
    for col, lines, k in ((fp.D_NOFF, near, near_n), (fp.D_XOFF, changes, changes_n)):
        if k:
            xlines[:, x0 : x0 + k] = lines[:, :k]
        row[col], row[col + 1] = x0, k
        x0 += k


def test_a_table_loads_into_the_dealers_row_and_slots_as_the_python_writes_do():
    """Random tables (8-64 nodes, 0-5 near and 0-4 changed lines, of which only the
    counted columns are packed) into dealer 1 of 3, slots at random offsets: the dealer
    rows, coefficient and line arrays equal, bit for bit, those the Python writes give
    (``t0 + H`` too); the other dealers' rows and every column outside the slots keep
    their values (NaN)."""
    rng = np.random.default_rng(11)
    for _ in range(40):
        n, k_near, k_ch = (
            int(rng.choice([8, 16, 32, 64])),
            int(rng.integers(6)),
            int(rng.integers(5)),
        )
        coef = rng.normal(size=(6, n))
        near = rng.normal(size=(7, k_near + int(rng.integers(3))))  # spare columns unread
        changes = rng.normal(size=(7, max(k_ch, 1)))
        args = (float(rng.uniform(0, 1e6)), float(rng.uniform(0, 1e6)),
                float(rng.choice([300.0, 2400.0, 7200.0, 23400.0])) + rng.random(),
                float(rng.uniform(50, 500)), float(rng.uniform(1, 20)))  # fmt: skip
        c0, x0 = int(rng.integers(0, 40)), int(rng.integers(0, 30))
        got = [np.full((3, fp.D_SIZE), np.nan), np.full((6, 200), np.nan), np.full((7, 60), np.nan)]
        want = [a.copy() for a in got]
        load_table_row(got[0], 1, *args, coef, got[1], c0, near, k_near, changes, k_ch, got[2],
                       x0)  # fmt: skip
        _python_load(want[0], 1, *args, coef, want[1], c0, near, k_near, changes, k_ch,
                     want[2], x0)  # fmt: skip
        for g, w in zip(got, want, strict=True):
            assert np.array_equal(g, w, equal_nan=True)
        assert np.isnan(got[0][[0, 2]]).all(), "another dealer's row written"
