"""A tabulated dealer's check reads its delta table through one loop of six Chebyshev
recurrences side by side (:func:`mmsim.delta_table._clenshaw6`; the sampler's eight
rows, :func:`~mmsim.delta_table._clenshaw8`): the same floats, bit for bit, as summing
each row alone (:func:`~mmsim.delta_table._clenshaw`), so runs hash as before."""

from __future__ import annotations

import numpy as np

from mmsim import delta_table as dt

YEAR = 252 * 23_400.0


def test_fused_rows_equal_each_row_summed_alone_bit_for_bit():
    """Random coefficients of 1, 2, 16, 32 and 64 nodes (1: no recurrence step) at 300
    points of the grid, its ends and 0: every row of ``_clenshaw6`` / ``_clenshaw8``
    equals ``_clenshaw`` of that row, compared as floats."""
    rng = np.random.default_rng(11)
    for n in (1, 2, 16, 32, 64):
        coef = rng.normal(0.0, 100.0, (8, n)) * rng.uniform(0.0, 1.0, n) ** 3
        xs = np.concatenate([rng.uniform(-1.0, 1.0, 300), [-1.0, 0.0, 1.0]])
        for x in xs:
            want = [dt._clenshaw(coef, r, x) for r in range(8)]
            assert list(dt._clenshaw8(coef, x)) == want, f"{n} nodes, x = {x!r}"
            assert list(dt._clenshaw6(coef[:6], x)) == want[:6], f"{n} nodes, x = {x!r}"


def test_a_checks_table_eval_is_the_hermite_of_the_delta_rows_and_linear_gamma():
    """``table_eval`` (every check of a tabulated dealer) equals, bit for bit, the cubic
    Hermite in time of the delta rows (``_hermite``: delta at ``t0`` and ``t0 + H``,
    charm as slopes) and gamma linear in time, each row summed alone, at 200 random
    points of grid and time and at the window's corners, 16 and 32 nodes."""
    rng = np.random.default_rng(5)
    span = 2_400.0 / YEAR
    for n in (16, 32):
        coef = rng.normal(0.0, 100.0, (6, n))
        pts = np.vstack([rng.uniform([-1.0, 0.0], [1.0, 1.0], (200, 2)),
                         [[-1.0, 0.0], [1.0, 1.0], [-1.0, 1.0], [1.0, 0.0]]])  # fmt: skip
        for x, u in pts:
            d = dt._hermite(coef, 0, 3, 2, 5, x, u, span)
            g = (1.0 - u) * dt._clenshaw(coef, 1, x) + u * dt._clenshaw(coef, 4, x)
            assert dt.table_eval(coef, x, u, span) == (d, g), f"{n} nodes at {x}, {u}"
