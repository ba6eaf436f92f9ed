"""What a growing, tabulated book costs per simulated day (issue 11, "linear in days"):
the series sampler's run of samples per holder ends inside the compiled pass
(:func:`mmsim.series_tables.holder_rows`), a dealer's gross units (its
``delta_per_contract`` band) are recomputed only when its own lines change, and the
delta table's fit (:func:`mmsim.delta_table.fit_nodes`, every build and every trade
folded in) sums in one pass what the row-by-row fit summed, bit for bit."""

from __future__ import annotations

import numpy as np

from mmsim import delta_table as dt
from mmsim.book_kernels import N_ROWS
from mmsim.engine import Simulation
from mmsim.scenario import load_scenario
from mmsim.series_tables import holder_rows

YEAR = 252 * 23_400.0


def _rows(times, mids, window, tabulated=True):
    """``holder_rows`` of holder 0 of a 2-holder batch from sample 0, a table centred at
    100 $ from clock 0 for 600 s and one exact line; returns (end, greeks, present)."""
    m = times.size
    greeks, parts = np.full((m, 5, 2), np.nan), np.zeros((m, 2, 3, 2))
    present = np.zeros((m, 2, 3), dtype=np.bool_)
    coef, scoef = np.zeros((6, 8)), np.zeros((8, 8))
    coef[0, 0] = coef[3, 0] = 50.0  # delta 50 shares at t0 and t0 + H, at every spot
    lines = np.zeros((N_ROWS, 1))
    lines[:, 0] = (100.0, 30 * 23_400.0, 1.0, 100.0, 0.0, 100.0, 0.0)
    none = np.zeros((N_ROWS, 1))
    end = holder_rows(0, m, times, mids, 0, tabulated, coef, scoef, 100.0, 3.0, 0.0, 600.0,
                      YEAR, lines, 1, none, 0, none, 0, 0.2, 0.0, 0.01, 0.0, 0.0, *window,
                      greeks, parts, present)  # fmt: skip
    return end, greeks, present


def test_a_sampler_run_ends_at_the_first_sample_outside_the_tables_window():
    """Samples every 100 s at spot 100 $: the run stops at the first sample past the
    table's last clock (600 s), or off its spot grid (100 +- 3 $), and fills nothing
    from there; the first sample is the caller's (the book answered there) and always
    filled. Without a window (infinite) the whole batch is one run."""
    times = np.arange(10) * 100.0
    mids = np.full(10, 100.0)
    window = (0.0, 600.0, 100.0, 3.0)
    end, greeks, present = _rows(times, mids, window)
    assert end == 7, f"run ended at sample {end}, want 7 (clock 700 s > 0 + 600 s)"
    assert np.all(greeks[:7, 0, 0] == 50.0), "the tabulated delta in the run's rows"
    assert np.isnan(greeks[7:, :, 0]).all() and not present[7:].any(), "rows past the run"
    off_grid = mids.copy()
    off_grid[3] = 103.5  # 3.5 $ from the centre: off the grid
    assert _rows(times, off_grid, window)[0] == 3, "the run did not stop off the grid"
    first_off = off_grid.copy()
    first_off[0] = 200.0
    assert _rows(times, first_off, window)[0] == 3, "the first sample is the caller's"
    always = (-np.inf, np.inf, 0.0, np.inf)
    end, greeks, _ = _rows(times, mids, always, tabulated=False)
    assert end == 10 and np.isfinite(greeks[:, :, 0]).all(), "an exact run without a window"


def _multi_dealer(days: float = 0.05) -> Simulation:
    sc = load_scenario(
        "scenarios/multi_dealer_bands.yaml",
        overrides={"clock.days": days, "market.impact.adv": 2.0e8},
    )
    return Simulation(sc, 1)


def test_a_delta_per_contract_band_recomputes_gross_units_only_on_its_own_trades(monkeypatch):
    """multi_dealer_bands' "normal" desk sizes its band per contract held: another desk's
    customer trade leaves its gross units (no pass over the book's lines); its own
    trade moves them by exactly |qty| x 100 shares, equal to a fresh sum."""
    sim = _multi_dealer()
    normal = next(d for d in sim.dealers if d.config.band_unit == "delta_per_contract")
    other = next(d for d in sim.dealers if d is not normal)
    book = sim.book
    band = normal.band_shares()
    gross = normal._gross_units
    assert gross == 80_000.0, f"800 contracts x 100 = 80,000 shares, got {gross}"
    reads = []  # passes over the book's lines (OptionBook.holder_gross_units)
    gross_of = type(book).holder_gross_units
    monkeypatch.setattr(
        type(book), "holder_gross_units", lambda b, h: reads.append(1) or gross_of(b, h)
    )
    book.add(455.0, 5 * 23_400.0, True, -20.0, other.index)
    assert normal.band_shares() == band and reads == [], "another desk's trade was summed"
    book.add(455.0, 5 * 23_400.0, True, -20.0, normal.index)
    assert normal.band_shares() == normal.config.band * (gross + 2_000.0) and reads == [1]
    assert normal.band_shares() == normal.config.band * (gross + 2_000.0) and reads == [1]


def _fit_row_by_row(v0, v1, exact, n, span):
    """The fit as it was written before (one Chebyshev row at a time, numpy scalars in
    the same order): coef, scoef, err, scale."""
    basis_t, mid_t = dt._basis_t(n), dt._mid_t(n)
    coef, scoef = np.zeros((6, n)), np.zeros((8, n))
    for rows, out in ((dt._COEF_ROWS, coef), (dt._SCOEF_ROWS, scoef)):
        for r, (which, row) in enumerate(rows):
            values = (v0 if which == 0 else v1)[row]
            for k in range(n):
                a = 2.0 / n * values[k]
                for j in range(n):
                    out[r, j] += a * basis_t[k, j]
            out[r, 0] *= 0.5
    p, s = np.zeros((6, n - 1)), np.zeros((8, n - 1))
    for c, out in ((coef, p), (scoef, s)):
        for r in range(c.shape[0]):
            for m in range(n):
                for j in range(n - 1):
                    out[r, j] += c[r, m] * mid_t[m, j]
    return coef, scoef, p, s


def test_the_one_pass_fit_sums_as_the_row_by_row_fit_did():
    """Random node values, 16 and 32 nodes: the coefficients equal those of the
    row-by-row Chebyshev sums bit for bit, and the validation error of the delta row is
    the largest |Hermite at u = 1/2 - exact| at the validation points."""
    rng = np.random.default_rng(7)
    for n in (16, 32):
        v0, v1 = rng.normal(0, 1e4, (7, n)), rng.normal(0, 1e4, (7, n))
        exact = rng.normal(0, 1e4, (7, n - 1))
        span = 2_400.0 / YEAR
        coef, scoef, err, scale = dt._fit(v0, v1, exact, span)
        want_c, want_s, p, _ = _fit_row_by_row(v0, v1, exact, n, span)
        assert coef.tobytes() == want_c.tobytes(), f"{n} nodes: delta-table coefficients"
        assert scoef.tobytes() == want_s.tobytes(), f"{n} nodes: sampler coefficients"
        got0 = 0.5 * p[0] + 0.5 * p[3] + span * (0.125 * p[2] - 0.125 * p[5])
        assert err[0] == np.abs(got0 - exact[0]).max(), f"{n} nodes: delta validation"
        assert scale[0] == max(np.abs(v0[0]).max(), np.abs(v1[0]).max())


def test_a_tables_sample_reads_each_series_once_and_equals_its_parts():
    """``table_sample`` (each Chebyshev row summed once) equals, bit for bit, the delta
    and gamma of ``table_eval`` (what a check reads), the value's cubic Hermite in time
    and charm as the time derivative of the delta's, at 200 random points of grid and
    time on random coefficients of 16 and 32 nodes."""
    rng = np.random.default_rng(3)
    for n in (16, 32):
        coef, scoef = rng.normal(0, 100.0, (6, n)), rng.normal(0, 100.0, (8, n))
        span = 2_400.0 / YEAR
        for x, u in rng.uniform([-1.0, 0.0], [1.0, 1.0], (100, 2)):
            d, g, charm, vanna, v, vis = dt.table_sample(coef, scoef, x, u, span)
            assert (d, g) == dt.table_eval(coef, x, u, span), f"delta, gamma at {x}, {u}"
            assert v == dt._hermite(scoef, 0, 2, 1, 3, x, u, span), f"value at {x}, {u}"
            c = [dt._clenshaw(coef, r, x) for r in range(6)]
            u2 = u * u
            want = (6.0 * u - 6.0 * u2) * (c[3] - c[0]) / span
            want += (3.0 * u2 - 4.0 * u + 1.0) * c[2]
            want += (3.0 * u2 - 2.0 * u) * c[5]
            assert charm == want, f"charm at {x}, {u}"
            s = [dt._clenshaw(scoef, r, x) for r in range(4, 8)]
            assert (vanna, vis) == ((1.0 - u) * s[0] + u * s[1], (1.0 - u) * s[2] + u * s[3])
