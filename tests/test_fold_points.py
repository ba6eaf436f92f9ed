"""A fold's pricing of booked lines at a delta table's points (mmsim.fold_points)."""

from __future__ import annotations

import numpy as np
import pytest

from mmsim.book_kernels import (
    N_ROWS,
    ROW_EXPIRY,
    ROW_IS_CALL,
    ROW_IV_OFF,
    ROW_STRIKE,
    ROW_UNITS,
    ROW_VIS_W,
)
from mmsim.delta_table import _midpoints, _nodes, node_greeks
from mmsim.fold_points import fold_point_greeks

YEAR = 252 * 23_400.0


def _lines(rng, k: int, t0: float, H: float, near: bool) -> np.ndarray:
    """``k`` lines (holder row 0): some netted to 0 contracts, some OTC, vol offsets;
    ``near``: expiries from before ``t0`` to ``3 H`` after it (expired at some of the
    three clocks), else days to a month out."""
    lines = np.zeros((N_ROWS, k))
    left = rng.uniform(-100.0, 3.0 * H, k) if near else rng.uniform(2.0 * H, 30 * 23_400.0, k)
    lines[ROW_EXPIRY] = t0 + left
    lines[ROW_STRIKE] = rng.uniform(380.0, 520.0, k)
    lines[ROW_UNITS] = rng.normal(0.0, 3_000.0, k) * (rng.random(k) > 0.2)
    lines[ROW_IS_CALL] = rng.random(k) < 0.5
    lines[ROW_VIS_W] = lines[ROW_UNITS] * (rng.random(k) < 0.7)
    lines[ROW_IV_OFF] = rng.normal(0.0, 0.02, k) * (rng.random(k) < 0.5)
    return lines


@pytest.mark.parametrize("seed", range(4))
def test_fold_point_greeks_equal_three_node_greeks_calls_bit_for_bit(seed):
    """``fold_point_greeks`` (one pass over a table's points, a line at a time) against
    the three ``node_greeks`` calls it replaces in ``fold_nodes`` (spots at ``t0`` and
    ``t0 + H``, validation points at ``t0 + H / 2``): the same 64-bit floats in every
    row and point, tolerance 0, over 60 draws per seed of 1-5 lines, 8-128 nodes, skew
    0 or not, rates and dividends or none, zero vol (surface and floor 0), and lines
    expired at some of the three clocks."""
    rng = np.random.default_rng(900 + seed)
    for draw in range(60):
        k, n = int(rng.integers(1, 6)), int(rng.choice([8, 16, 32, 64, 128]))
        t0, H = rng.uniform(0.0, 1e5), float(rng.choice([300.0, 2_400.0, 23_400.0]))
        lines = _lines(rng, k, t0, H, near=draw % 3 == 0)
        if draw % 7 == 0:
            surface = (0.0, 0.0, 0.0)  # zero vol: bsm_scalar's intrinsic terms
        else:
            surface = (rng.uniform(0.05, 0.5), -0.5 * rng.random() * (draw % 2), 0.01)
        r, q = (0.03, 0.01) if draw % 2 else (0.0, 0.0)
        S = rng.uniform(400.0, 500.0)
        spots, mids = S + 0.03 * S * _nodes(n), S + 0.03 * S * _midpoints(n)
        want = [np.zeros((7, n)), np.zeros((7, n)), np.zeros((7, n - 1))]
        clocks = (t0, t0 + H, t0 + 0.5 * H)
        for out, at, clock in zip(want, (spots, spots, mids), clocks, strict=True):
            node_greeks(at, clock, YEAR, lines, k, *surface, r, q, out)
        got = [np.full((7, n), np.nan), np.full((7, n), np.nan), np.full((7, n - 1), np.nan)]
        fold_point_greeks(lines, k, spots, mids, t0, H, YEAR, *surface, r, q, *got)
        for name, a, b in zip(("t0", "t0 + H", "mid"), want, got, strict=True):
            same = a.view(np.int64) == b.view(np.int64)
            assert same.all(), (
                f"seed {seed} draw {draw} ({k} lines, {n} nodes), {name}: "
                f"{np.count_nonzero(~same)} values differ, largest {np.nanmax(abs(a - b)):.3g}"
            )
