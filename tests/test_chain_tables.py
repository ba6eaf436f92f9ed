"""The series sampler on a chain-like book (issue 11, the real SPX chain). Its value
tolerance scales with the book (:func:`mmsim.delta_table.value_tol`: 1e-9 of the gross
option value, ~$47 on this $47bn book): the table's own sampler rows pass and the
sampler reads them at every sample. Under the 1-cent rule (a book under $10M;
``TOL_VALUE_REL`` patched to 0 here) a table whose sampler rows fail validation (the
value of lines a day or two from expiry) gets a sampler split
(:func:`mmsim.delta_table._sampler_split`): the sampler reads a fit of the longer-dated
lines and evaluates only the shortest-dated ones exactly, within the stated tolerances
of exact evaluation. What checks read is unchanged. Builds give up early the fits the
0DTE lines make hopeless, and still build the same table.
"""

from __future__ import annotations

import numpy as np

import mmsim.delta_table as dt
from mmsim.book import OptionBook
from mmsim.delta_table import TOL_DELTA, TOL_REL, TOL_VALUE, TOL_VOL, value_tol
from mmsim.greeks import bsm_greeks
from mmsim.vol import VolSurface

DAY = 23_400.0
S0 = 4_500.0


def _chain_book(mode: str, seed: int = 3) -> tuple[OptionBook, tuple, dict]:
    """An SPX-like book: strikes 3,600-4,950 every 25 $, calls and puts at expiries from
    the first close (1 session) to 40 sessions, naive positioning (long calls, short puts)
    of 100-5,000 contracts, each line with its own smile offset (+-2 vol points)."""
    rng = np.random.default_rng(seed)
    strikes = np.arange(3_600.0, 4_975.0, 25.0)
    expiries = np.array([1.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0]) * DAY
    K, E, C = (a.ravel() for a in np.meshgrid(strikes, expiries, [True, False], indexing="ij"))
    oi = rng.uniform(100.0, 5_000.0, K.size)
    qty = np.where(C, oi, -oi)
    kw = {"iv_offset": rng.uniform(-0.02, 0.02, K.size)}
    book = OptionBook(1, delta_table=mode)
    book.add_many(K, E, C, qty, 0, **kw)
    return book, (K, E, C, qty, 0), kw


def _tabulated_and_exact() -> tuple[OptionBook, OptionBook, VolSurface]:
    """The chain-like book tabulated, the same lines priced exactly, and their surface
    (ATM 21.1%, no skew, 1% floor)."""
    tab, cols, kw = _chain_book("on")
    exact = OptionBook(1, delta_table="off")
    exact.add_many(*cols, **kw)
    return tab, exact, VolSurface(0.211, 0.0, 0.01)


def _gross(book: OptionBook, S: float, t: float, vol: VolSurface) -> float:
    """The book's gross option value ($): sum of ``|qty x multiplier x BSM price|`` of
    its live lines at spot ``S`` ($), clock ``t`` (s), priced by
    :func:`~mmsim.greeks.bsm_greeks` at the surface's iv plus each line's offset."""
    df = book.lines(iv_offset=True)
    live = df[df.expiry > t]
    K = live.strike.to_numpy()
    sigma = np.maximum(vol.iv(K, S) + live.iv_offset.to_numpy(), vol.floor)
    T = (live.expiry.to_numpy() - t) / book.year_seconds
    price = bsm_greeks(S, K, T, sigma, 0.0, 0.0, live.is_call.to_numpy()).price
    return float(np.abs(live.qty.to_numpy() * live.multiplier.to_numpy() * price).sum())


def test_sampler_reads_the_tables_own_rows_within_the_relative_value_tolerance():
    """80 samples every 60 s (80 minutes from the open, across a rebuild) of the ~$47bn
    chain-like book, spot wandering +-40 $: the value tolerance is 1e-9 of the gross
    option value (priced here line by line), so every table's own sampler rows pass and
    the sampler reads them at every sample, pricing no line exactly (under the 1-cent
    rule the first build's rows failed and a split priced the shortest expiries exactly);
    |value error| <= value_tol(least gross over the samples), more than a cent (the cent
    would fail), delta within 3/4 share, gamma, charm, vanna within 1% of their scale."""
    tab, exact, vol = _tabulated_and_exact()
    got, want = np.zeros((5, 1)), np.zeros((5, 1))
    err, scale = np.zeros(5), np.zeros(5)
    gross, exact_lines, n = np.inf, 0, 80
    for k in range(n):
        S, t = S0 + 40.0 * np.sin(k / 30.0), 60.0 * k
        tab.series_greeks(S, t, vol, got)
        exact.sample_greeks(S, t, vol, want)
        table = tab._tables[0]
        assert table is not None and table.sample_table() is table, f"split at t={t}"
        exact_lines = max(exact_lines, table.near_n + table.changes_n)
        gross = min(gross, _gross(exact, S, t, vol))
        err = np.maximum(err, np.abs(got - want).max(axis=1))
        scale = np.maximum(scale, np.abs(want).max(axis=1))
    bound = value_tol(gross)
    assert gross > 1e10 and bound > 100 * TOL_VALUE, f"gross {gross:.3g} $: not a big book"
    assert tab.table_samples == n and exact_lines == 0, (tab.table_samples, exact_lines)
    assert TOL_VALUE < err[4] <= bound, f"value {err[4]:.3g} $ vs {bound:.3g} over 80 min"
    assert err[0] <= TOL_DELTA + TOL_VOL, f"delta {err[0]:.3g} shares > 0.75 over 80 min"
    for row, name in ((1, "gamma"), (2, "charm"), (3, "vanna")):
        assert err[row] <= TOL_REL * scale[row], f"{name} error {err[row] / scale[row]:.2%}"


def test_sampler_reads_a_split_table_on_a_chain_book_within_tolerance(monkeypatch):
    """Under the 1-cent rule (``TOL_VALUE_REL`` 0): 160 samples every 60 s (2.7 hours
    from the open) of a 1,000-line SPX-like book (0DTE to 40 sessions), spot wandering
    +-40 $, a customer trade on a 1-10 session line every 8 samples (folded into the
    table and its split): |delta error| <= 3/4 share, |value error| <= 1 cent, gamma,
    charm, vanna and the GEX at spot within 1% of their scale; at least 3/4 of the
    samples read from the table (before the split none did: its value check failed at
    every build)."""
    monkeypatch.setattr(dt, "TOL_VALUE_REL", 0.0)
    rng = np.random.default_rng(7)
    tab, exact, vol = _tabulated_and_exact()
    got, want = np.zeros((5, 1)), np.zeros((5, 1))
    err, scale = np.zeros(7), np.zeros(7)
    splits = 0
    n = 160
    for k in range(n):
        S, t = S0 + 40.0 * np.sin(k / 30.0), 60.0 * k
        if k % 8 == 3:
            trade = (float(rng.choice(np.arange(4_300.0, 4_700.0, 5.0))),
                     float(rng.choice([1.0, 3.0, 5.0, 10.0])) * DAY, bool(rng.random() < 0.5),
                     float(rng.uniform(-50, 50)), 0)  # fmt: skip
            tab.add(*trade)
            exact.add(*trade)
        gex = tab.series_greeks(S, t, vol, got)
        gex_exact = exact.sample_greeks(S, t, vol, want)
        table = tab._tables[0]
        splits += table is not None and table.sampler is not None
        diff = np.r_[np.abs(got - want).max(axis=1), np.abs(np.subtract(gex, gex_exact))]
        err = np.maximum(err, diff)
        scale = np.maximum(scale, np.r_[np.abs(want).max(axis=1), np.abs(gex_exact)])
    assert err[0] <= TOL_DELTA + TOL_VOL, f"delta {err[0]:.3g} shares > 0.75 over 2.7 h"
    assert err[4] <= TOL_VALUE, f"value {err[4]:.3g} $ > {TOL_VALUE} over 2.7 h"
    for row, name in ((1, "gamma"), (2, "charm"), (3, "vanna"), (5, "gex_true")):
        assert err[row] <= TOL_REL * scale[row], f"{name} error {err[row] / scale[row]:.2%}"
    assert tab.table_samples >= 0.75 * n, f"{tab.table_samples} of {n} samples tabulated"
    assert splits > 0, "no sampler split: the table's own rows passed (the test tests nothing)"


def test_a_split_leaves_the_checks_table_unchanged(monkeypatch):
    """The split is the sampler's alone: with and without it (the same build, under the
    1-cent rule), the table checks read has the same coefficients, near lines and
    window, bit for bit."""
    monkeypatch.setattr(dt, "TOL_VALUE_REL", 0.0)
    book, _, _ = _chain_book("on")
    vol = VolSurface(0.211, 0.0, 0.01)
    book.holder_delta_gamma(0, S0, 0.0, vol)
    with_split = book._tables[0]
    assert with_split is not None and with_split.sampler is not None
    saved = dt._sampler_split
    dt._sampler_split = lambda *a: None
    try:
        other, _, _ = _chain_book("on")
        other.holder_delta_gamma(0, S0, 0.0, vol)
    finally:
        dt._sampler_split = saved
    plain = other._tables[0]
    assert plain.sampler is None
    assert np.array_equal(with_split.coef, plain.coef)
    assert (with_split.t0, with_split.H, with_split.near_n) == (plain.t0, plain.H, plain.near_n)


def test_hopeless_fits_are_given_up_early_and_the_same_table_is_built():
    """On the chain-like book at the open, mid-session and near the 0DTE close, a build
    that gives up fits whose shortest-dated lines alone miss the delta by 10 x TOL_DELTA
    (:data:`~mmsim.delta_table.HOPELESS`) before pricing the rest returns the table a
    build trying every fit in full does (same fit, window and coefficients, bit for bit),
    and gives up at least one fit somewhere (else the test tests nothing)."""
    import math

    from mmsim.book_kernels import N_ROWS

    book, _, _ = _chain_book("off")
    lines, n = book._hot_lines(0, 0.0)
    lines = np.ascontiguousarray(lines[:N_ROWS, :n])
    given_up = 0

    saved = dt.HOPELESS
    for t in (0.0, 9_000.0, 16_000.0, 19_000.0):
        args = (lines, n, 1, S0, t, book.year_seconds, 0.211, 0.0, 0.01, 0.0, 0.0)
        calls = []
        orig = dt._far_nodes

        def spy(*a, _orig=orig, _calls=calls):
            got = _orig(*a)
            _calls.append(got is None)
            return got

        dt._far_nodes = spy
        try:
            fast = dt.build_table(*args)
            dt.HOPELESS = math.inf
            full = dt.build_table(*args)
        finally:
            dt.HOPELESS = saved
            dt._far_nodes = orig
        given_up += sum(calls)
        assert (fast is None) == (full is None), f"t={t}: one build passed, one did not"
        if fast is not None:
            assert (fast.H, fast.coef.shape) == (full.H, full.coef.shape), f"t={t}"
            assert np.array_equal(fast.coef, full.coef), f"t={t}: coefficients differ"
    assert given_up > 0, "no fit given up early on a book with 0DTE lines"


def test_a_session_of_checks_with_0dte_lines_needs_few_builds_within_tolerance():
    """Checks every 60 s over a whole session (390 checks) of the chain-like book, spot
    wandering +-40 $, a customer trade on a 0DTE line every 10 checks (left beside the
    table: exact): every check within 3/4 share of exact, and at most 16 table builds
    (13 now; 30 when only lines within a quarter session were exact): lines within half
    a session of expiry are evaluated exactly, so the 0DTE lines never force the 300 s
    fits a whole book rebuilt every 5 minutes would need; rolls carry the 0DTE trades
    beside them."""
    rng = np.random.default_rng(11)
    tab, exact, vol = _tabulated_and_exact()
    worst = 0.0
    for k in range(390):
        S, t = S0 + 40.0 * np.sin(k / 50.0), 60.0 * k
        if k % 10 == 5:
            trade = (float(rng.choice(np.arange(4_400.0, 4_600.0, 5.0))), DAY,
                     bool(rng.random() < 0.5), float(rng.uniform(-50, 50)), 0)  # fmt: skip
            tab.add(*trade)
            exact.add(*trade)
        d = tab.holder_delta_gamma(0, S, t, vol)[0]
        worst = max(worst, abs(d - exact.holder_delta_gamma(0, S, t, vol)[0]))
    assert worst <= TOL_DELTA + TOL_VOL, f"max |delta error| {worst:.3f} shares > 0.75"
    assert tab.table_builds <= 16, f"{tab.table_builds} builds over one session (30 before)"
