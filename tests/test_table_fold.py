"""The delta table's compiled fit and fold (``mmsim.delta_table.fit_nodes``,
``fold_lines``): the fit's coefficients and validation errors are those of the
definitions (numpy's Chebyshev transform, ``table_sample`` at the validation points), and
a folded table equals a table built from scratch on the same lines."""

from __future__ import annotations

import numpy as np

from mmsim import delta_table as dt
from mmsim.book import OptionBook
from mmsim.vol import VolSurface

DAY = 23_400.0


def test_fit_coefficients_and_errors_equal_their_definitions():
    """Random node values (16 and 32 nodes, 3 draws each): coefficients within 1e-13 of
    numpy's Chebyshev transform (``_cheb_coefficients``, a matrix product), and the
    validation errors within 1e-12 (relative) of ``|table_sample - exact|`` evaluated
    by Clenshaw at the points half-way between the nodes, time fraction 1/2, row by row."""
    rng = np.random.default_rng(4)
    for n in (16, 32):
        for _ in range(3):
            v0 = rng.normal(size=(7, n)) * rng.uniform(1, 1e4, size=(7, 1))
            v1 = v0 + 0.1 * rng.normal(size=(7, n)) * np.abs(v0).max()
            exact = rng.normal(size=(7, n - 1))
            span = float(rng.uniform(1e-4, 1e-2))
            coef, scoef, err, scale = dt._fit(v0, v1, exact, span)
            want = dt._cheb_coefficients(np.vstack([v0[:3], v1[:3]]))
            assert np.abs(coef - want).max() <= 1e-13 * np.abs(want).max()
            rows = (v0[4], v0[5], v1[4], v1[5], v0[3], v1[3], v0[6], v1[6])
            swant = dt._cheb_coefficients(np.vstack(rows))
            assert np.abs(scoef - swant).max() <= 1e-13 * np.abs(swant).max()
            ref = np.zeros(7)
            for j, x in enumerate(dt._midpoints(n)):
                got = dt.table_sample(coef, scoef, x, 0.5, span)
                for value, row in zip(got, (0, 1, 2, 3, 4, 6), strict=True):
                    ref[row] = max(ref[row], abs(value - exact[row, j]))
            assert np.allclose(err, ref, rtol=1e-12, atol=0.0), (err, ref)
            assert np.array_equal(scale, np.maximum(np.abs(v0).max(1), np.abs(v1).max(1)))


def _book(seed: int, n: int) -> tuple[OptionBook, tuple]:
    rng = np.random.default_rng(seed)
    cols = (np.round(rng.uniform(90, 110, n), 1), rng.uniform(3, 40, n) * DAY,
            rng.random(n) < 0.5, rng.uniform(-5, 5, n), 0)  # fmt: skip
    book = OptionBook(1, delta_table="on")
    book.add_many(*cols)
    return book, cols


def test_a_folded_table_equals_one_built_on_the_same_lines():
    """A 300-line table, then 40 trades folded into it (new far lines and additions to
    tabulated ones): its node values equal, to 1e-9 of their scale, those of a table
    built at the same spot, clock and fit on the book after the trades, and so do its
    coefficients; its validated errors pass the build's tolerances."""
    book, cols = _book(8, 300)
    vol = VolSurface(0.2, -0.1, 0.01)
    book.holder_delta_gamma(0, 100.0, 0.0, vol)
    table = book._tables[0]
    rng = np.random.default_rng(9)
    for k in range(40):
        if k % 3 == 0:
            j = int(rng.integers(300))
            book.add(cols[0][j], cols[1][j], bool(cols[2][j]), 2.0, 0)
        else:
            book.add(round(float(rng.uniform(92, 108)), 1), float(rng.uniform(10, 40)) * DAY,
                     bool(rng.random() < 0.5), float(rng.uniform(-5, 5)), 0)  # fmt: skip
        book.holder_delta_gamma(0, 100.0 + 0.01 * k, 1.0 + k, vol)
    assert book._tables[0] is table and table.folded == 40 and book.table_builds == 1
    lines, n = book._hot_lines(0, table.t0)
    fresh = dt.build_table(lines, n, 0, table.center, table.t0, book.year_seconds, *vol.params(),
                           0.0, 0.0, attempts=((table.coef.shape[1], table.H),))  # fmt: skip
    assert fresh is not None and fresh.near_n == table.near_n == 0
    for got, want in ((table.v_start, fresh.v_start), (table.v_end, fresh.v_end),
                      (table.v_mid, fresh.v_mid), (table.coef, fresh.coef)):  # fmt: skip
        scale = np.abs(want).max(axis=1, keepdims=True) + 1e-300
        assert (np.abs(got - want) / scale).max() <= 1e-9
    assert table.error <= dt.TOL_DELTA


def test_a_table_with_folded_trades_rolls_on_within_tolerance_and_restarts_daily():
    """A 300-line book checked every minute for 1.3 trading days, spot within +-0.5%,
    a customer trade every 5 minutes (folded into the table): every check within 3/4
    share of exact; tables whose clock ran out roll on from their end (their folded node
    values reused, their own fit) instead of a build trying every fit, and a build that
    tries every fit comes at least once a trading day (no table of a chain of rolls
    starting more than a day plus one window after it). Before, any fold stopped a
    table from rolling on."""
    book, cols = _book(12, 300)
    exact = OptionBook(1, delta_table="off")
    exact.add_many(*cols)
    vol = VolSurface(0.2, -0.1, 0.01)
    rng = np.random.default_rng(13)
    worst = oldest = 0.0
    for k in range(int(1.3 * DAY / 60.0)):
        S, t = 100.0 + 0.5 * np.sin(k / 40.0), 60.0 * k
        if k % 5 == 4:
            trade = (round(float(rng.uniform(95, 105)), 1), float(rng.uniform(10, 40)) * DAY,
                     bool(rng.random() < 0.5), float(rng.uniform(-5, 5)), 0)  # fmt: skip
            book.add(*trade)
            exact.add(*trade)
        d = book.holder_delta_gamma(0, S, t, vol)[0]
        worst = max(worst, abs(d - exact.holder_delta_gamma(0, S, t, vol)[0]))
        table = book._tables[0]
        first = table.t0 if np.isnan(table.chain_t0) else table.chain_t0
        oldest = max(oldest, table.t0 - first - table.H)
    assert worst <= dt.TOL_DELTA + dt.TOL_VOL, f"max |delta error| {worst:.3f} shares"
    assert book.table_rolls >= 3, f"{book.table_rolls} of {book.table_builds} builds rolled on"
    assert book._tables[0].folded > 0, "trades were folded into the current table"
    assert oldest <= DAY, f"a chain of rolls {oldest:.0f} s longer than a day"


def test_folds_leave_each_tables_changes_its_own():
    """``fold_booked`` works in scratch a table keeps (its scalars made once per table):
    12 trades into a 300-line table, every other one a line expiring within its near cut
    (kept beside the fit, in ``changes``): each ``changes`` handed to the table keeps its
    values through every later fold (none is the scratch), the last holds the 6 near
    lines' unit differences (300 shares each, their strikes), the cached scalars are
    ``_fold_scalars``' own, bit for bit, and two folds of one near line each return
    their own line (the second does not overwrite the first's answer)."""
    book, _ = _book(8, 300)
    vol = VolSurface(0.2, -0.1, 0.01)
    book.holder_delta_gamma(0, 100.0, 0.0, vol)
    table = book._tables[0]
    near = 0.5 * (table.t0 + table.near_cut)
    seen, strikes = [], []
    for k in range(12):
        if k % 2 == 0:
            strikes.append(95.05 + k)
            book.add(strikes[-1], near, True, 3.0, 0)
        else:
            book.add(101.05 + k, 30 * DAY, False, -2.0, 0)
        assert book._tables[0] is table
        seen.append((table.changes, table.changes[:, : table.changes_n].copy()))
    for arr, values in seen:
        assert np.array_equal(arr[:, : values.shape[1]], values)
    assert table.changes_n == 6 and table.folded == 6
    got = table.changes[:, :6]
    assert np.array_equal(got[dt.ROW_STRIKE], strikes)
    assert np.array_equal(got[dt.ROW_UNITS], np.full(6, 300.0))
    key = (book.year_seconds, book.r, book.q)
    assert table.fold_sc[0] == key
    assert np.array_equal(table.fold_sc[1], dt._fold_scalars(table, *key))
    # one near line at a time (the scratch's case): each answer outlives the next call
    first, second = (book._index[(0, k, near, True, True, 100.0)] for k in strikes[:2])
    answers = [dt.fold_booked(table, np.array([i]), book._packed, *key) for i in (first, second)]
    for (ok, rest, idx), i, strike in zip(answers, (first, second), strikes, strict=False):
        assert ok and list(idx) == [i] and rest.shape[1] == 1
        assert rest[dt.ROW_STRIKE, 0] == strike and rest[dt.ROW_UNITS, 0] == 300.0
