"""Tests of the option book against a hand-computed book.

Every expected number is computed here, line by line, from ``mmsim.greeks.bsm_greeks``
and the surface formula ``max(atm + skew * log(K / S), floor)`` written out by hand,
never through the book. Unless stated, the tolerance is ``rtol=1e-10``: the book and
the hand computation evaluate the same closed forms, so they differ only by floating
point summation order (~1e-15 relative); 1e-10 leaves room without hiding a wrong term.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from mmsim.book import GEX_PER_PCT, OptionBook, VisibleConvention
from mmsim.greeks import bsm_greeks
from mmsim.vol import VolSurface

DAY = 23_400.0  # trading seconds per session
YEAR = 252 * DAY  # trading seconds per year (the book's default)
S0 = 100.0
T0 = 1_000.0  # "now" on the clock, seconds
R, Q = 0.03, 0.01
ATM, SKEW, FLOOR = 0.20, -0.15, 0.05
RTOL = 1e-10  # same formulas, different summation order (see module docstring)

# (strike, expiry s, is_call, qty, holder, visible, multiplier); qty from the dealer's view.
LINES = [
    (105.0, 5 * DAY, True, -100.0, 0, True, 100.0),
    (110.0, 20 * DAY, True, -50.0, 0, True, 100.0),  # booked as -20 then -30 (aggregation)
    (95.0, 5 * DAY, False, 80.0, 0, True, 100.0),
    (90.0, 20 * DAY, False, -40.0, 1, True, 100.0),
    (105.0, 5 * DAY, True, -30.0, 1, False, 100.0),  # OTC
    (100.0, T0 - 500.0, True, 1_000.0, 1, True, 100.0),  # expired 500 s ago
    (100.0, 20 * DAY, True, 25.0, 1, True, 10.0),  # mini contracts
]


def surface() -> VolSurface:
    return VolSurface(atm=ATM, skew=SKEW, floor=FLOOR)


def hand_iv(K: float, S: float) -> float:
    return max(ATM + SKEW * math.log(K / S), FLOOR)


def hand_greeks(line, S: float = S0, t: float = T0):
    """Per-share BSM greeks of one line at its own strike's IV, or None once expired."""
    K, expiry, is_call = line[0], line[1], line[2]
    if expiry <= t:
        return None
    return bsm_greeks(S, K, (expiry - t) / YEAR, hand_iv(K, S), R, Q, is_call)


def make_book(lines=LINES, **kw) -> OptionBook:
    book = OptionBook(2, r=R, q=Q, **kw)
    for K, expiry, is_call, qty, holder, visible, mult in lines:
        if K == 110.0:  # the same line in two trades: must aggregate
            book.add(K, expiry, is_call, -20.0, holder, visible=visible, multiplier=mult)
            qty += 20.0
        book.add(K, expiry, is_call, qty, holder, visible=visible, multiplier=mult)
    return book


def hand_gex_lines(lines=LINES, S=S0, t=T0, view="true"):
    """[(strike, is_call, gex $ per 1%)] of the live lines, by hand."""
    out = []
    for line in lines:
        K, _, is_call, qty, _, visible, mult = line
        g = hand_greeks(line, S, t)
        if g is None or (view == "visible" and not visible):
            continue
        w = qty if view == "true" else (1.0 if is_call else -1.0) * abs(qty)  # SqueezeMetrics
        out.append((K, is_call, w * mult * float(g.gamma) * S**2 * 0.01))
    return out


# -- per-holder delta, gamma, value ---------------------------------------------------------
def test_net_delta_gamma_matches_hand_computed_book():
    exp_d, exp_g = np.zeros(2), np.zeros(2)
    for line in LINES:
        g = hand_greeks(line)
        if g is not None:
            exp_d[line[4]] += line[3] * line[6] * float(g.delta)
            exp_g[line[4]] += line[3] * line[6] * float(g.gamma)
    delta, gamma = make_book().net_delta_gamma(S0, T0, surface())
    np.testing.assert_allclose(delta, exp_d, rtol=RTOL)
    np.testing.assert_allclose(gamma, exp_g, rtol=RTOL)
    assert delta.shape == gamma.shape == (2,)


def test_value_matches_hand_and_expired_is_worth_nothing():
    expected = np.zeros(2)
    for line in LINES:
        g = hand_greeks(line)
        if g is not None:
            expected[line[4]] += line[3] * line[6] * float(g.price)
    np.testing.assert_allclose(make_book().value(S0, T0, surface()), expected, rtol=RTOL)
    expired_only = make_book([LINES[5]])
    np.testing.assert_array_equal(expired_only.value(S0, T0, surface()), 0.0)


def test_identical_lines_aggregate_and_others_do_not():
    book = OptionBook(2)
    book.add(105.0, DAY, True, -20.0, 0)
    book.add(105.0, DAY, True, -30.0, 0)
    assert book.n == 1 and book.qty[0] == -50.0
    v = book.version
    # any differing key field appends a new line
    book.add(105.0, DAY, True, -1.0, 0, visible=False)
    book.add(105.0, DAY, True, -1.0, 1)
    book.add(105.0, DAY, False, -1.0, 0)
    book.add(105.0, 2 * DAY, True, -1.0, 0)
    book.add(106.0, DAY, True, -1.0, 0)
    book.add(105.0, DAY, True, -1.0, 0, multiplier=10.0)
    assert book.n == 7 and book.version == v + 6
    # the fixture book: 7 distinct lines although 8 trades were booked
    b = make_book()
    assert b.n == len(LINES) and b.qty[1] == -50.0 and b.version == len(LINES) + 1


def test_expired_lines_contribute_nothing():
    book = OptionBook(1)
    book.add(100.0, T0, True, 1_000.0, 0)  # expires exactly now: expiry <= t is expired
    book.add(100.0, T0 - 1.0, False, -1_000.0, 0)
    delta, gamma = book.net_delta_gamma(S0, T0, surface())
    assert delta[0] == 0.0 and gamma[0] == 0.0
    assert book.gex_at(S0, T0, surface()) == 0.0
    assert book.gex_by_strike(S0, T0, surface()).empty
    assert book.walls(S0, T0, surface()) == (None, None)


def test_near_expiry_uses_true_time_left_no_one_day_floor():
    flat = VolSurface(atm=0.2, skew=0.0)

    def atm_gamma(seconds_left: float) -> float:
        book = OptionBook(1)
        book.add(S0, T0 + seconds_left, True, 1.0, 0, multiplier=1.0)
        return float(book.net_delta_gamma(S0, T0, flat)[1][0])

    g1s, g60, gday = atm_gamma(1.0), atm_gamma(60.0), atm_gamma(DAY)
    for seconds, g in ((1.0, g1s), (60.0, g60), (DAY, gday)):
        assert g == pytest.approx(float(bsm_greeks(S0, S0, seconds / YEAR, 0.2).gamma), rel=RTOL)
    # ATM gamma ~ 1/sqrt(T): 60 s vs one day is sqrt(390) ~ 19.7x; a 1-day floor would give 1x
    assert g60 > 15.0 * gday
    assert math.isfinite(g1s) and g1s > g60


def test_each_line_uses_its_own_strike_iv():
    book = OptionBook(1)
    book.add(90.0, 20 * DAY, False, 1.0, 0, multiplier=1.0)
    gamma = float(book.net_delta_gamma(S0, 0.0, surface())[1][0])
    T = 20 * DAY / YEAR
    own = float(bsm_greeks(S0, 90.0, T, ATM - SKEW * math.log(S0 / 90.0)).gamma)
    at_atm = float(bsm_greeks(S0, 90.0, T, ATM).gamma)
    assert gamma == pytest.approx(own, rel=RTOL)
    assert abs(gamma / at_atm - 1.0) > 0.05  # the skew matters: not priced at ATM vol


def test_years_to_expiry():
    book = make_book()
    np.testing.assert_allclose(
        book.years_to_expiry(T0), [(line[1] - T0) / YEAR for line in LINES], rtol=RTOL
    )


# -- GEX: true and visible views ------------------------------------------------------------
def _by_strike(rows):
    strikes = sorted({k for k, _, _ in rows})
    call = [sum(g for k, c, g in rows if k == s and c) for s in strikes]
    put = [sum(g for k, c, g in rows if k == s and not c) for s in strikes]
    return np.array(strikes), np.array(call), np.array(put)


@pytest.mark.parametrize("view", ["true", "visible"])
def test_gex_by_strike_matches_hand(view):
    table = make_book().gex_by_strike(S0, T0, surface(), view)
    strikes, call, put = _by_strike(hand_gex_lines(view=view))
    assert list(table.columns) == ["strike", "call_gex", "put_gex", "net_gex"]
    np.testing.assert_array_equal(table["strike"], strikes)  # sorted, one row per strike
    np.testing.assert_allclose(table["call_gex"], call, rtol=RTOL)
    np.testing.assert_allclose(table["put_gex"], put, rtol=RTOL)
    np.testing.assert_allclose(table["net_gex"], call + put, rtol=RTOL)
    total = sum(g for _, _, g in hand_gex_lines(view=view))
    assert make_book().gex_at(S0, T0, surface(), view) == pytest.approx(total, rel=RTOL)


def test_visible_view_uses_abs_open_interest_convention_signs_and_excludes_otc():
    book = OptionBook(2)
    book.add(105.0, 20 * DAY, True, -100.0, 0)  # dealer 0 short 100 calls
    book.add(105.0, 20 * DAY, True, 40.0, 1)  # dealer 1 long 40 of the same contract
    book.add(95.0, 20 * DAY, False, 70.0, 0)  # dealer long puts: the convention says short
    book.add(105.0, 20 * DAY, True, -5_000.0, 1, visible=False)  # OTC: invisible
    T, vol = 20 * DAY / YEAR, surface()
    gc = float(bsm_greeks(S0, 105.0, T, hand_iv(105.0, S0)).gamma) * 100 * S0**2 * GEX_PER_PCT
    gp = float(bsm_greeks(S0, 95.0, T, hand_iv(95.0, S0)).gamma) * 100 * S0**2 * GEX_PER_PCT
    table = book.gex_by_strike(S0, 0.0, vol, "visible").set_index("strike")
    assert table.loc[105.0, "call_gex"] == pytest.approx(+140.0 * gc, rel=RTOL)  # OI 100 + 40
    assert table.loc[95.0, "put_gex"] == pytest.approx(-70.0 * gp, rel=RTOL)
    true = book.gex_by_strike(S0, 0.0, vol, "true").set_index("strike")
    assert true.loc[105.0, "call_gex"] == pytest.approx(-5_060.0 * gc, rel=RTOL)
    assert true.loc[95.0, "put_gex"] == pytest.approx(+70.0 * gp, rel=RTOL)
    # a configurable convention: the opposite assumption flips every visible sign
    other = OptionBook(2, convention=VisibleConvention(call_sign=-1.0, put_sign=1.0))
    for K, exp, c, qty, h, vis, m in book.lines().itertuples(index=False):
        other.add(K, exp, c, qty, h, visible=vis, multiplier=m)
    assert other.gex_at(S0, 0.0, vol, "visible") == pytest.approx(
        -book.gex_at(S0, 0.0, vol, "visible"), rel=RTOL
    )


def test_true_and_visible_gex_have_opposite_signs_when_dealers_are_short_calls():
    book = OptionBook(2)
    for K, qty, h in ((100.0, -300.0, 0), (105.0, -500.0, 1), (110.0, -200.0, 0)):
        book.add(K, 10 * DAY, True, qty, h)
    true, visible = book.gex_at(S0, 0.0, surface()), book.gex_at(S0, 0.0, surface(), "visible")
    assert true < 0.0 < visible
    assert visible == pytest.approx(-true, rel=RTOL)  # every line short: |qty| = -qty


# -- profile and flip ---------------------------------------------------------------------
@pytest.mark.parametrize("view", ["true", "visible"])
def test_profile_at_spot_equals_gex_at_and_reprices_with_fixed_surface(view):
    book, vol = make_book(), surface()
    profile = book.gex_profile(np.array([96.0, S0, 104.0]), T0, vol, view)
    assert profile[1] == pytest.approx(book.gex_at(S0, T0, vol, view), rel=1e-14)
    # hypothetical spot 104: each line at surface_iv(K, 104), scaled by 104**2
    expected = sum(g for _, _, g in hand_gex_lines(S=104.0, view=view))
    assert profile[2] == pytest.approx(expected, rel=RTOL)


def _collar_book() -> OptionBook:
    """Dealers long puts low and short calls high: long gamma below ~100, short above."""
    book = OptionBook(1)
    book.add(90.0, 20 * DAY, False, 200.0, 0)
    book.add(110.0, 20 * DAY, True, -200.0, 0)
    return book


def test_flip_is_interpolated_zero_crossing_between_grid_points():
    book, vol = _collar_book(), VolSurface(atm=0.2)
    grid = S0 * np.linspace(0.7, 1.3, 241)  # the documented default grid
    profile = book.gex_profile(grid, 0.0, vol)
    assert profile[0] > 0.0 > profile[-1]
    flip = book.flip(S0, 0.0, vol)
    assert flip is not None and 90.0 < flip < 110.0
    i = np.searchsorted(grid, flip)
    assert grid[i - 1] <= flip <= grid[i] and profile[i - 1] * profile[i] < 0.0
    scale = np.abs(profile).max()
    assert abs(np.interp(flip, grid, profile)) < 1e-9 * scale  # exact up to rounding
    # the true profile at the interpolated flip: small vs the profile's range (grid 0.25%)
    assert abs(book.gex_profile([flip], 0.0, vol)[0]) < 1e-2 * scale


def test_flip_picks_the_crossing_nearest_to_spot():
    book, vol = OptionBook(1), VolSurface(atm=0.2)
    book.add(90.0, 20 * DAY, False, 200.0, 0)  # long gamma low
    book.add(100.0, 20 * DAY, True, -200.0, 0)  # short gamma in the middle
    book.add(112.0, 20 * DAY, True, 400.0, 0)  # long gamma high
    grid = S0 * np.linspace(0.7, 1.3, 241)
    p = book.gex_profile(grid, 0.0, vol)
    idx = np.flatnonzero(np.sign(p[:-1]) != np.sign(p[1:]))
    assert idx.size == 2  # two crossings, by construction
    low, high = (grid[i] - p[i] * (grid[i + 1] - grid[i]) / (p[i + 1] - p[i]) for i in idx)
    assert book.flip(low - 1.0, 0.0, vol, spots=grid) == pytest.approx(low, rel=RTOL)
    assert book.flip(high + 1.0, 0.0, vol, spots=grid) == pytest.approx(high, rel=RTOL)


def test_flip_none_when_gamma_has_one_sign():
    vol = surface()
    assert OptionBook(1).flip(S0, 0.0, vol) is None  # empty book: profile all zero
    book = OptionBook(1)
    book.add(95.0, 20 * DAY, True, 100.0, 0)
    book.add(105.0, 20 * DAY, False, 100.0, 0)
    assert book.flip(S0, 0.0, vol) is None  # dealers long everything
    assert book.flip(S0, 0.0, vol, "visible") is not None  # analyst: +calls, -puts
    calls_only = OptionBook(1)
    calls_only.add(100.0, 20 * DAY, True, -100.0, 0)
    assert calls_only.flip(S0, 0.0, vol, "visible") is None


# -- walls ----------------------------------------------------------------------------------
def test_walls_are_largest_abs_gex_strikes_not_largest_oi():
    book, vol = OptionBook(1), surface()
    lines = [
        (102.0, True, -300.0, True),  # the call wall: largest call GEX
        (108.0, True, -200.0, True),
        (130.0, True, -3_000.0, True),  # largest call OI, but far OTM: small gamma
        (104.0, True, -20_000.0, False),  # OTC: the true call wall, invisible to analysts
        (95.0, False, 150.0, True),
        (90.0, False, 1_500.0, True),  # the put wall: 10x the OI of 95
    ]
    for K, is_call, qty, visible in lines:
        book.add(K, 20 * DAY, is_call, qty, 0, visible=visible)
    book.add(101.0, T0 - 1.0, True, -1e7, 0)  # expired: ignored whatever its size
    book.add(99.0, T0 - 1.0, False, 1e7, 0)
    assert book.walls(S0, T0, vol, "visible") == (102.0, 90.0)
    assert book.walls(S0, T0, vol, "true") == (104.0, 90.0)  # |.| finds the short calls
    # hand check of the visible call wall: argmax of |call GEX| over the visible calls
    hand = {
        K: abs(q) * float(hand_greeks((K, 20 * DAY, True))[2]) for K, c, q, v in lines if c and v
    }
    assert max(hand, key=hand.get) == 102.0 and hand[130.0] < hand[102.0]
    calls_only = OptionBook(1)
    calls_only.add(105.0, DAY, True, -10.0, 0)
    assert calls_only.walls(S0, 0.0, vol) == (105.0, None)


# -- mechanics ------------------------------------------------------------------------------
def test_out_arrays_are_filled_in_place_without_allocation():
    book, vol = make_book(), surface()
    fresh_d, fresh_g = book.net_delta_gamma(S0, T0, vol)
    out_d, out_g = np.full(2, np.nan), np.full(2, np.nan)
    got_d, got_g = book.net_delta_gamma(S0, T0, vol, out_d, out_g)
    assert got_d is out_d and got_g is out_g
    np.testing.assert_array_equal(out_d, fresh_d)  # same kernel, bit-identical
    np.testing.assert_array_equal(out_g, fresh_g)
    out_v = np.full(2, np.nan)
    assert book.value(S0, T0, vol, out_v) is out_v
    with pytest.raises(ValueError, match="shape"):  # numba does not bounds-check: refuse
        book.net_delta_gamma(S0, T0, vol, np.zeros(1), np.zeros(1))


def _traced_peak(call, n: int = 200, repeats: int = 3) -> int:
    """The least, over ``repeats``, of tracemalloc's peak (bytes) over ``n`` calls of
    ``call(k)``. tracemalloc sees every thread (pytest-xdist's message thread too), so one
    measurement may catch someone else's allocation; an allocation of the call itself is
    in every repeat, so the least cannot hide it."""
    peaks = []
    for _ in range(repeats):
        tracemalloc.start()
        try:
            for k in range(n):
                call(k)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    return min(peaks)


def test_out_arrays_are_never_reallocated_on_a_wide_book():
    """numpy reports its data buffers to tracemalloc. On a book of 4,096 holders each
    per-holder array is 32 KiB, so a call that allocated its outputs (or any per-holder
    array) would peak at >= 32 KiB, far above Python's transient floats and tuples (a few
    hundred bytes) and other threads' noise; the instrument is checked to see that
    allocation on the same book (the calls without out arrays)."""
    holders = 4096
    book, vol = OptionBook(holders, r=R, q=Q), surface()
    for i, (K, expiry, is_call, qty, holder, visible, mult) in enumerate(LINES):
        book.add(K, expiry, is_call, qty, (997 * holder + i) % holders, visible=visible,
                 multiplier=mult)  # fmt: skip
    array = holders * 8  # bytes of one per-holder float64 array
    fresh_d, fresh_g = book.net_delta_gamma(S0, T0, vol)  # compiled, tables built
    out_d, out_g = np.full(holders, np.nan), np.full(holders, np.nan)
    book.net_delta_gamma(S0, T0, vol, out_d, out_g)
    np.testing.assert_array_equal(out_d, fresh_d)  # same kernel, bit-identical
    np.testing.assert_array_equal(out_g, fresh_g)
    allocating = _traced_peak(lambda k: book.net_delta_gamma(S0 + 1e-3 * k, T0, vol))
    assert allocating >= 2 * array, f"the instrument sees two fresh {array} B arrays: {allocating}"
    in_place = _traced_peak(lambda k: book.net_delta_gamma(S0 + 1e-3 * k, T0, vol, out_d, out_g))
    assert in_place < array // 2, f"peak {in_place} B over 200 calls: < half an array ({array} B)"
    assert np.array_equal(out_d, book.net_delta_gamma(S0 + 0.199, T0, vol)[0]), "last call's"


def test_the_event_loop_kernels_equal_the_reference_methods_bit_for_bit():
    """The engine's fused per-sample pass and the dealer's per-holder kernel use the same
    formulas in the same order as flow_greeks, value, gex_at and net_delta_gamma, so the
    results are equal to the last bit (a recorded run must not depend on which is used)."""
    book, vol = make_book(), surface()
    for S in (S0, 0.9 * S0, 1.07 * S0):
        fused = np.full((5, book.n_holders), np.nan)
        gex_true, gex_visible = book.sample_greeks(S, T0, vol, fused)
        flow = book.flow_greeks(S, T0, vol, np.full((4, book.n_holders), np.nan))
        np.testing.assert_array_equal(fused[:4], flow)
        np.testing.assert_array_equal(fused[4], book.value(S, T0, vol))
        assert gex_true == book.gex_at(S, T0, vol, "true")
        assert gex_visible == book.gex_at(S, T0, vol, "visible")
        delta, gamma = book.net_delta_gamma(S, T0, vol)
        for holder in range(book.n_holders):
            assert book.holder_delta_gamma(holder, S, T0, vol) == (delta[holder], gamma[holder])


def test_growth_past_capacity_keeps_old_lines():
    lines = [(80.0 + 5 * i, (i + 1) * DAY, i % 2 == 0, float(i - 4), i % 2, i != 3, 100.0)
             for i in range(9)]  # fmt: skip
    book = OptionBook(2, r=R, q=Q, capacity=2)
    for K, expiry, is_call, qty, holder, visible, mult in lines:
        book.add(K, expiry, is_call, qty, holder, visible=visible, multiplier=mult)
    table = book.lines()
    assert book.n == len(table) == 9
    for col, values in zip(table.columns, zip(*lines, strict=True), strict=True):
        np.testing.assert_array_equal(table[col], values)
    exp_g = np.zeros(2)
    for line in lines:
        exp_g[line[4]] += line[3] * line[6] * float(hand_greeks(line, t=0.0).gamma)
    np.testing.assert_allclose(book.net_delta_gamma(S0, 0.0, surface())[1], exp_g, rtol=RTOL)


def test_public_arrays_are_read_only_views():
    book = make_book()
    assert book.strike.shape == (book.n,) and book.holder.dtype == np.int64
    with pytest.raises(ValueError):
        book.qty[0] = 0.0


@pytest.mark.parametrize(
    "kwargs",
    [{"holder": -1}, {"holder": 2}, {"strike": 0.0}, {"multiplier": 0.0}, {"qty": math.nan}],
)
def test_add_validates(kwargs):
    args = {"strike": 100.0, "expiry": DAY, "is_call": True, "qty": 1.0, "holder": 0} | kwargs
    multiplier = args.pop("multiplier", 100.0)
    with pytest.raises(ValueError):
        OptionBook(2).add(**args, multiplier=multiplier)


def test_unknown_view_is_rejected():
    with pytest.raises(ValueError, match="view"):
        make_book().gex_at(S0, T0, surface(), "dealer")


def test_gex_by_strike_both_views_from_one_pricing_equal_a_per_view_pricing():
    """300 random lines, some invisible, strikes shared: each view's per-strike GEX (one
    gamma per line serves both views) equals, bit for bit, weight x gamma x S^2 x 1% per
    line from ``delta_gamma_scalar`` summed per strike in booking order; ``gex_views_at``
    equals ``gex_profile`` at that spot in each view."""
    from mmsim.book_kernels import ROW_IS_CALL, ROW_STRIKE, line_sigma
    from mmsim.greeks import delta_gamma_scalar

    rng = np.random.default_rng(11)
    book = OptionBook(3)
    for _ in range(300):
        book.add(float(rng.choice(np.arange(80.0, 121.0, 2.5))), float(rng.uniform(1, 60)) * DAY,
                 bool(rng.random() < 0.5), float(rng.uniform(-50, 50)), int(rng.integers(3)),
                 visible=bool(rng.random() < 0.7))  # fmt: skip
    vol = VolSurface(0.2, -0.1, 0.01)
    S, t = 101.3, 3.0 * DAY
    lines, n = book._live_lines(t)
    level, skew, floor, r, q = book._surface(vol)
    for view in ("visible", "true", "visible"):  # the second visible call reads the cache
        w = lines[book._row(view), :n]
        want = {}
        for i in range(n):
            K = lines[ROW_STRIKE, i]
            T = (lines[1, i] - t) / book.year_seconds
            sigma = line_sigma(K, S, level, skew, floor, 0.0)
            g = delta_gamma_scalar(S, K, T, sigma, r, q, lines[ROW_IS_CALL, i] != 0.0)[1]
            if w[i] != 0.0:
                key = (K, bool(lines[ROW_IS_CALL, i]))
                want[key] = want.get(key, 0.0) + w[i] * g * (S * S * GEX_PER_PCT)
        table = book.gex_by_strike(S, t, vol, view).set_index("strike")
        for (K, is_call), gex in want.items():
            assert table.loc[K, "call_gex" if is_call else "put_gex"] == gex, (view, K)
    # and the GEX at a wall, both views from one pricing (lines outside in the kernel)
    views = tuple(float(book.gex_profile([S], t, vol, v)[0]) for v in ("true", "visible"))
    assert book.gex_views_at(S, t, vol) == views


@pytest.mark.parametrize("lines", [0, 5, 130, 1_500])
def test_holder_gross_units_bit_for_bit_numpy(lines):
    """A dealer's band in contracts scales with the gross units of every line its holder
    ever booked: ``holder_gross_units`` (one compiled pass) must equal numpy's
    ``np.abs(qty[m] * multiplier[m]).sum()`` bit for bit (the hedges depend on it), on a
    book of ``lines`` random lines over 3 holders, some netted to 0 and some expired."""
    rng = np.random.default_rng(lines)
    book = OptionBook(n_holders=3)
    for _ in range(lines):
        book.add(float(rng.uniform(50, 150)), float(rng.uniform(0, 5) * DAY),
                 bool(rng.integers(2)), float(rng.integers(-500, 500) * rng.uniform(0.5, 2)),
                 int(rng.integers(3)), multiplier=float(rng.choice([10.0, 100.0])))  # fmt: skip
    for h in range(3):
        mine = book.holder == h
        want = float(np.abs(book.qty[mine] * book.multiplier[mine]).sum())
        got = book.holder_gross_units(h)
        assert got == want, f"holder {h} of {book.n} lines: {got!r} != numpy's {want!r}"
