"""The series sampler's tabulated rows in batches (:meth:`OptionBook.series_greeks_many`,
:mod:`mmsim.series_tables`) equal, bit for bit, :meth:`OptionBook.series_greeks` called
row by row (the oracle): greeks, GEX and the side effects (tables built, rolled and
sampled at the same samples), on books of 1,000 lines over several holders (one below the
table threshold), batches crossing a table's end, spot leaving its grid, a vol level the
table does not sample at, lines expiring mid-batch, changes booked between batches and a
holder growing past the threshold; and whole runs (fast path, band 0 and 100, several
seeds) give the same series with either sampler."""

from __future__ import annotations

import numpy as np
import pytest

from mmsim.book import OptionBook
from mmsim.engine import Simulation
from mmsim.scenario import load_scenario
from mmsim.vol import VolSurface

DAY = 23_400.0


def _book(seed: int, n: int = 1_000) -> OptionBook:
    """Holders 0 and 1 get most lines; holder 2 starts with 200 (below 256: exact)."""
    rng = np.random.default_rng(seed)
    book = OptionBook(3, delta_table="auto", capacity=16)
    holder = np.where(np.arange(n) < 200, 2, rng.integers(0, 2, n))
    expiry = rng.uniform(0.2, 60.0, n) * DAY
    expiry[:5] = [1_000.0, 2_500.0, 5_000.0, 9_000.0, 20_000.0]  # expire mid-run
    book.add_many(np.round(rng.uniform(85, 115, n), 1), expiry, rng.random(n) < 0.5,
                  np.round(rng.normal(0, 30, n)), holder, rng.random(n) < 0.8, 100.0,
                  rng.normal(0, 0.01, n))  # fmt: skip
    return book


def _batches(seed: int):
    """(times, mids, level shift, lines to book after) of consecutive sampler batches."""
    rng = np.random.default_rng(1_000 + seed)
    t, S = 0.0, 100.0
    for b in range(14):
        m = int(rng.integers(1, 120))
        times = t + np.cumsum(rng.choice([0.0, 5.0, 10.0], m, p=[0.1, 0.6, 0.3]))
        mids = S * np.exp(np.cumsum(rng.normal(0, 0.0003 if b % 4 else 0.006, m)))
        t, S = float(times[-1]) + 7.0, float(mids[-1])
        shift = 0.01 if b == 6 else (-0.01 if b == 7 else 0.0)
        yield times, mids, shift, int(rng.integers(0, 3)) if b < 10 else 60


@pytest.mark.parametrize("fail", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_batch_equals_row_by_row(seed: int, fail: bool, monkeypatch) -> None:
    if fail:  # builds fail in some minutes: exact samples until the retry mark
        import mmsim.book

        build = mmsim.book.build_table

        def flaky(lines, n, version, S, t, *args, **kw):
            return None if int(t // 60) % 3 == 0 else build(lines, n, version, S, t, *args, **kw)

        monkeypatch.setattr(mmsim.book, "build_table", flaky)
    row_book, batch_book = _book(seed), _book(seed)
    vols = (VolSurface(0.2, -0.1), VolSurface(0.2, -0.1))
    rng = np.random.default_rng(seed)
    n_rows = 0
    for times, mids, shift, new in _batches(seed):
        m = times.size
        for vol in vols:
            vol.apply_shift(shift)
        want_g, want_x = np.zeros((m, 5, 3)), np.zeros((m, 2))
        for j in range(m):
            want_x[j] = row_book.series_greeks(mids[j], times[j], vols[0], want_g[j])
        got_g, got_x = np.full((m, 5, 3), np.nan), np.full((m, 2), np.nan)
        batch_book.series_greeks_many(times, mids, vols[1], got_g, got_x)
        assert got_g.tobytes() == want_g.tobytes(), f"seed {seed}: greeks differ at t {times[0]}"
        assert got_x.tobytes() == want_x.tobytes(), f"seed {seed}: GEX differs at t {times[0]}"
        counts = [(b.table_builds, b.table_rolls, b.table_samples) for b in (row_book, batch_book)]
        assert counts[0] == counts[1], f"seed {seed}: builds/rolls/samples {counts}"
        K = np.round(rng.uniform(90, 110, new), 1)
        for b in (row_book, batch_book):  # changes beside the tables; holder 2 grows
            b.add_many(K, times[-1] + 30 * DAY, True, 5.0, 2 if new > 5 else 0)
        n_rows += m
    assert row_book.table_samples > (0 if fail else n_rows / 4), "tables must answer samples"
    if fail:
        failed = [r for r in row_book._retry if r[0] >= 0]
        assert failed, "a failed build must have set a retry mark"
    assert batch_book._tables[2] is not None, "holder 2 must have grown into a table"


def _scenario(seed: int, band: float) -> dict:
    from benchmarks.cases import book_scenario

    sc = book_scenario(1_000, band, 0.15, seed=seed)
    sc["record"] = {"every": 5.0}
    sc["engine"] = {"fast_path": "on", "delta_table": "auto"}
    return sc


def _row_by_row(book, times, mids, vol, greeks, gex) -> None:
    for j in range(times.size):
        gex[j] = book.series_greeks(float(mids[j]), float(times[j]), vol, greeks[j])


@pytest.mark.parametrize("band", [0.0, 100.0])
@pytest.mark.parametrize("seed", [1, 2])
def test_runs_equal_row_by_row(seed: int, band: float, monkeypatch) -> None:
    sc = load_scenario(_scenario(seed, band))
    sim = Simulation(sc, seed)
    got = sim.run()
    assert sim.hot is not None and sim.book.table_samples > 500, "tabulated fast-path samples"
    monkeypatch.setattr(OptionBook, "series_greeks_many", _row_by_row)
    want = Simulation(sc, seed).run()
    a, b = got.series, want.series
    assert list(a.columns) == list(b.columns) and len(a) == len(b) > 500
    assert a.to_numpy().tobytes() == b.to_numpy().tobytes(), (
        f"seed {seed}, band {band}: series differ over {sc.clock.days} day"
    )
