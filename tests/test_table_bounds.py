"""Bounds on a delta table's delta over a spot x time box (mmsim.table_bounds): every
value a check computes inside the box lies within them, on tables built from random
books (skew, rates, expiries days to a year) and on random coefficient tables; and they
are tight enough to skip checks (a band-sized window)."""

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
from mmsim.delta_table import build_table, table_eval
from mmsim.table_bounds import table_delta_box

YEAR = 252 * 23400.0


def _book(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random lines of one holder: strikes $85-115, expiries 3-250 sessions, calls
    and puts, long and short, small vol offsets."""
    lines = np.zeros((N_ROWS, n))
    lines[ROW_STRIKE] = rng.uniform(85.0, 115.0, n)
    lines[ROW_EXPIRY] = rng.uniform(3.0, 250.0, n) * 23400.0
    lines[ROW_UNITS] = rng.choice([-1.0, 1.0], n) * rng.uniform(10.0, 500.0, n)
    lines[ROW_IS_CALL] = rng.random(n) < 0.5
    lines[ROW_IV_OFF] = rng.uniform(-0.02, 0.02, n)
    lines[ROW_VIS_W] = lines[ROW_UNITS]
    return lines


@pytest.mark.parametrize("seed", range(6))
def test_the_box_bounds_every_delta_a_check_computes_in_it(seed):
    """A table of a random 200-line book (skew -0.3 to 0.3, rates 0-6%); boxes of random
    width (up to the whole grid) and length (up to the whole span) around random points:
    ``table_eval``'s delta at 300 random points of each box, its corners and its center
    lie within the bounds (no tolerance), and a box of 1% of the grid and 2% of the span
    is within 5x the delta's spread there plus 0.01 share."""
    rng = np.random.default_rng(seed)
    lines = _book(rng, 200)
    skew, r, q = rng.uniform(-0.3, 0.3), rng.uniform(0.0, 0.06), rng.uniform(0.0, 0.03)
    tab = build_table(lines, 200, 0, 100.0, 0.0, YEAR, 0.2, skew, 0.01, r, q)
    assert tab is not None, "the book is tabulated"
    span = tab.H / YEAR
    for _ in range(40):
        x0, u0 = rng.uniform(-1.0, 1.0), rng.uniform(0.0, 1.0)
        small = rng.random() < 0.5
        wide = 0.01 if small else rng.uniform(0.0, 2.0)
        long = 0.02 if small else rng.uniform(0.0, 1.0)
        xlo, xhi = max(x0 - wide * rng.random(), -1.0), min(x0 + wide * rng.random(), 1.0)
        u1 = min(u0 + long, 1.0)
        ok, lo, hi = table_delta_box(tab.coef, x0, xlo, xhi, u0, u1, span)
        assert ok, "a box inside the table's grid and span is bounded"
        xs = np.concatenate([rng.uniform(xlo, xhi, 300), [xlo, xlo, xhi, xhi, x0]])
        us = np.concatenate([rng.uniform(u0, u1, 300), [u0, u1, u0, u1, u0]])
        d = np.array([table_eval(tab.coef, x, u, span)[0] for x, u in zip(xs, us, strict=True)])
        assert lo <= d.min() and d.max() <= hi, (
            f"seed {seed}: delta {d.min()}..{d.max()} outside the bounds {lo}..{hi}"
        )
        if small:
            assert hi - lo <= 5.0 * (d.max() - d.min()) + 0.01, (
                f"seed {seed}: bounds {hi - lo} shares wide, the delta spreads {np.ptp(d)}"
            )


def test_random_series_and_the_boxes_it_refuses():
    """Random coefficient tables (2-20 terms, decaying or not, span up to 0.1 year): the
    bounds hold at 200 random points of 500 random boxes; a box outside [-1, 1] x [0, 1]
    or not holding its own point gets none."""
    rng = np.random.default_rng(11)
    for _ in range(500):
        n = int(rng.integers(2, 21))
        decay = rng.uniform(0.3, 1.0) ** np.arange(n)
        coef = rng.normal(size=(6, n)) * decay * rng.uniform(1.0, 1e4)
        span = rng.uniform(0.0, 0.1)
        x0 = rng.uniform(-1.0, 1.0)
        xlo, xhi = rng.uniform(-1.0, x0), rng.uniform(x0, 1.0)
        u0 = rng.uniform(0.0, 1.0)
        u1 = rng.uniform(u0, 1.0)
        ok, lo, hi = table_delta_box(coef, x0, xlo, xhi, u0, u1, span)
        assert ok
        for x, u in zip(rng.uniform(xlo, xhi, 200), rng.uniform(u0, u1, 200), strict=True):
            assert lo <= table_eval(coef, x, u, span)[0] <= hi
    coef = np.ones((6, 4))
    for box in ((0.0, -1.1, 0.5, 0.0, 0.5), (0.0, -0.5, 1.1, 0.0, 0.5),
                (0.0, -0.5, 0.5, -0.1, 0.5), (0.0, -0.5, 0.5, 0.2, 1.2),
                (0.6, -0.5, 0.5, 0.0, 0.5), (0.0, -0.5, 0.5, 0.6, 0.5)):  # fmt: skip
        assert not table_delta_box(coef, *box, 0.01)[0], f"box {box}: no bound"
