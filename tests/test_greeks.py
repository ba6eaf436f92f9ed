"""Tests for ``mmsim.greeks``: Black-Scholes-Merton prices and greeks.

Conventions under test (module docstring and DESIGN.md "Greeks" / "Public contract"):
per-share values, ``T`` in years, vega per 1.00 of vol, theta and charm per **year**
of passage of time (``-d/dT``), correct step limits at ``T -> 0`` and ``sigma -> 0``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from mmsim.greeks import TINY_STDEV, Greeks, bsm_greeks, bsm_scalar, delta_gamma_scalar

FIELDS = ("price", "delta", "gamma", "vega", "theta", "vanna", "charm")


def _grid(**axes):
    """Cartesian product of the given axes as flat float/bool arrays, one per name."""
    rows = list(itertools.product(*axes.values()))
    return {name: np.array([row[i] for row in rows]) for i, name in enumerate(axes)}


def _scipy_bsm(S, K, T, sigma, r, q, call):
    """Textbook BSM (Hull) written independently with scipy.stats.norm."""
    sq = math.sqrt(T)
    d1 = (math.log(S / K) + (r - q + sigma**2 / 2) * T) / (sigma * sq)
    d2 = d1 - sigma * sq
    eq, er = math.exp(-q * T), math.exp(-r * T)
    pdf = norm.pdf(d1)
    gamma = eq * pdf / (S * sigma * sq)
    vega = S * eq * pdf * sq
    vanna = -eq * pdf * d2 / sigma
    charm_diff = -eq * pdf * (2 * (r - q) * T - d2 * sigma * sq) / (2 * T * sigma * sq)
    if call:
        price = S * eq * norm.cdf(d1) - K * er * norm.cdf(d2)
        delta = eq * norm.cdf(d1)
        theta = (
            -S * eq * pdf * sigma / (2 * sq) - r * K * er * norm.cdf(d2) + q * S * eq * norm.cdf(d1)
        )
        charm = q * eq * norm.cdf(d1) + charm_diff
    else:
        price = K * er * norm.cdf(-d2) - S * eq * norm.cdf(-d1)
        delta = -eq * norm.cdf(-d1)
        theta = (
            -S * eq * pdf * sigma / (2 * sq)
            + r * K * er * norm.cdf(-d2)
            - q * S * eq * norm.cdf(-d1)
        )
        charm = -q * eq * norm.cdf(-d1) + charm_diff
    return price, delta, gamma, vega, theta, vanna, charm


# ---------------------------------------------------------------------------
# 1. Textbook values and closed form
# ---------------------------------------------------------------------------


def test_hull_example_call_476_put_081():
    call = bsm_greeks(42.0, 40.0, 0.5, 0.20, r=0.10, call=True)
    put = bsm_greeks(42.0, 40.0, 0.5, 0.20, r=0.10, call=False)
    # Hull quotes the prices to the cent.
    assert round(float(call.price), 2) == 4.76
    assert round(float(put.price), 2) == 0.81


def test_hull_greek_letters_example_delta_gamma_vega_theta_per_year():
    # Hull, "The Greek Letters": S=49, K=50, r=5%, sigma=20%, 20 weeks.
    g = bsm_greeks(49.0, 50.0, 20 / 52, 0.20, r=0.05)
    # Hull quotes delta 0.522, gamma 0.066, vega 12.1 (per 1.00 of vol),
    # theta -4.31 per year; compare at the digits he prints.
    assert round(float(g.price), 2) == 2.40
    assert round(float(g.delta), 3) == 0.522
    assert round(float(g.gamma), 3) == 0.066
    assert round(float(g.vega), 1) == 12.1
    assert round(float(g.theta), 2) == -4.31


@pytest.mark.parametrize(
    ("S", "K", "T", "sigma", "r", "q"),
    [
        (100.0, 100.0, 1.0, 0.25, 0.05, 0.02),
        (42.0, 40.0, 0.5, 0.20, 0.10, 0.03),
        (80.0, 110.0, 0.1, 0.60, -0.01, 0.04),
        (250.0, 180.0, 3.0, 0.15, 0.07, 0.09),
    ],
)
@pytest.mark.parametrize("call", [True, False])
def test_all_greeks_equal_independent_scipy_closed_form_with_r_and_q(S, K, T, sigma, r, q, call):
    got = bsm_greeks(S, K, T, sigma, r=r, q=q, call=call)
    want = _scipy_bsm(S, K, T, sigma, r, q, call)
    for name, g, w in zip(FIELDS, got, want, strict=True):
        # Same formulas, different erfc implementations: only rounding differs,
        # amplified at most by the S*N(d1) - K*N(d2) cancellation in the price.
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, err_msg=name)


# ---------------------------------------------------------------------------
# 2. Parity
# ---------------------------------------------------------------------------

PARITY_GRID = _grid(
    S=[50.0, 90.0, 100.0, 110.0, 200.0],
    K=[100.0],
    T=[0.01, 0.25, 1.0, 3.0],
    sigma=[0.0, 0.05, 0.2, 0.6, 1.5],
    r=[-0.01, 0.03, 0.10],
    q=[0.0, 0.02, 0.08],
)


def _call_put(grid):
    c = bsm_greeks(**grid, call=True)
    p = bsm_greeks(**grid, call=False)
    return c, p


def test_put_call_parity_price_on_grid_with_rates_and_dividends():
    g = PARITY_GRID
    c, p = _call_put(g)
    S, K, T, r, q = g["S"], g["K"], g["T"], g["r"], g["q"]
    want = S * np.exp(-q * T) - K * np.exp(-r * T)
    # Prices are sums of terms <= 200 (ulp ~3e-14): allow ~30 ulps of rounding.
    np.testing.assert_allclose(c.price - p.price, want, rtol=0, atol=1e-12)


def test_delta_parity_call_minus_put_is_exp_minus_qT():
    g = PARITY_GRID
    c, p = _call_put(g)
    # N(d1) + N(-d1) = 1 up to the rounding of two erfc values (~1e-16 each).
    np.testing.assert_allclose(c.delta - p.delta, np.exp(-g["q"] * g["T"]), rtol=0, atol=1e-14)


def test_gamma_vega_vanna_identical_for_calls_and_puts():
    c, p = _call_put(PARITY_GRID)
    # Same expression evaluated for both: exact equality.
    np.testing.assert_array_equal(c.gamma, p.gamma)
    np.testing.assert_array_equal(c.vega, p.vega)
    np.testing.assert_array_equal(c.vanna, p.vanna)


def test_theta_and_charm_parity_follow_from_price_parity():
    g = PARITY_GRID
    c, p = _call_put(g)
    S, K, T, r, q = g["S"], g["K"], g["T"], g["r"], g["q"]
    # -d/dT of S e^{-qT} - K e^{-rT}, and of e^{-qT}.
    # Tolerance: ~200 ulps of the largest theta term (|theta| <~ 3e2 on this grid).
    np.testing.assert_allclose(
        c.theta - p.theta, q * S * np.exp(-q * T) - r * K * np.exp(-r * T), rtol=0, atol=1e-11
    )
    # The shared diffusion term cancels exactly; the rest is O(1): allow ~50 ulps.
    np.testing.assert_allclose(c.charm - p.charm, q * np.exp(-q * T), rtol=0, atol=1e-14)


def test_parity_holds_for_expired_options():
    g = _grid(
        S=[80.0, 100.0, 120.0], K=[100.0], T=[-1.0, 0.0], sigma=[0.0, 0.3], r=[0.05], q=[0.02]
    )
    c, p = _call_put(g)
    # Intrinsic values are exact differences of the inputs.
    np.testing.assert_allclose(c.price - p.price, g["S"] - g["K"], rtol=0, atol=1e-13)
    np.testing.assert_array_equal(c.delta - p.delta, 1.0)


# ---------------------------------------------------------------------------
# 3. Every greek is the derivative it claims to be (central differences)
# ---------------------------------------------------------------------------

# T >= 0.05 keeps the FD stencil away from the expiry kink.
FD_GRID = _grid(
    S=[70.0, 95.0, 100.0, 130.0],
    K=[100.0],
    T=[0.05, 0.5, 2.0],
    sigma=[0.1, 0.35, 1.0],
    r=[-0.01, 0.06],
    q=[0.0, 0.04],
    call=[True, False],
)
FD_REL_STEP = 1e-5  # bump = 1e-5 x the argument: truncation O(h^2) ~ rounding eps/h.


def _central_difference(of, wrt, grid=FD_GRID):
    h = FD_REL_STEP * grid[wrt]
    up, down = dict(grid), dict(grid)
    up[wrt] = grid[wrt] + h
    down[wrt] = grid[wrt] - h
    return (getattr(bsm_greeks(**up), of) - getattr(bsm_greeks(**down), of)) / (2 * h)


def _assert_fd(analytic, fd):
    # Measured FD error on this grid is <= 2e-7 relative (theta/vega) and a few
    # 1e-9 absolute for near-zero values; 1e-6 relative plus 1e-7 of the greek's
    # scale leaves margin yet is far below any missing BSM term (>= 1e-3 of scale).
    scale = np.max(np.abs(analytic))
    np.testing.assert_allclose(analytic, fd, rtol=1e-6, atol=1e-7 * scale)


def test_delta_is_dprice_dspot():
    _assert_fd(bsm_greeks(**FD_GRID).delta, _central_difference("price", "S"))


def test_gamma_is_ddelta_dspot():
    _assert_fd(bsm_greeks(**FD_GRID).gamma, _central_difference("delta", "S"))


def test_vega_is_dprice_dsigma_per_unit_vol():
    _assert_fd(bsm_greeks(**FD_GRID).vega, _central_difference("price", "sigma"))


def test_theta_is_minus_dprice_dT_per_year():
    _assert_fd(bsm_greeks(**FD_GRID).theta, -_central_difference("price", "T"))


def test_vanna_is_ddelta_dsigma():
    _assert_fd(bsm_greeks(**FD_GRID).vanna, _central_difference("delta", "sigma"))


def test_charm_is_minus_ddelta_dT_per_year():
    _assert_fd(bsm_greeks(**FD_GRID).charm, -_central_difference("delta", "T"))


def test_long_atm_call_theta_is_negative():
    # Sign convention: theta is the value change per year of passage of time.
    g = bsm_greeks(100.0, 100.0, 0.25, 0.2, r=0.03, q=0.01)
    assert float(g.theta) < 0


def test_zero_vol_theta_and_charm_are_time_derivatives_of_forward_payoff():
    # sigma = 0: price is the discounted forward intrinsic, smooth in T away from
    # the forward strike (S=70/130 vs K=100 are far from it).
    grid = _grid(
        S=[70.0, 130.0],
        K=[100.0],
        T=[0.1, 1.0],
        sigma=[0.0],
        r=[-0.01, 0.06],
        q=[0.0, 0.04],
        call=[True, False],
    )
    g = bsm_greeks(**grid)
    # Price is linear in exponentials of T: FD error is O(h^2) ~ 1e-10 relative.
    np.testing.assert_allclose(g.theta, -_central_difference("price", "T", grid), atol=1e-8)
    np.testing.assert_allclose(g.charm, -_central_difference("delta", "T", grid), atol=1e-8)


# ---------------------------------------------------------------------------
# 4. Finiteness and limits near expiry and at zero vol
# ---------------------------------------------------------------------------

EXTREME_GRID = _grid(
    S=[100.0],
    K=[1.0, 50.0, 99.9999, 100.0, 100.0001, 200.0, 1e4],
    T=[-1.0, 0.0, 1e-9, 1e-6, 1 / 252, 1.0],
    sigma=[0.0, 1e-6, 0.2, 3.0],
    r=[-0.02, 0.05],
    q=[0.0, 0.03],
    call=[True, False],
)


def test_no_nan_or_inf_on_extreme_grid():
    g = bsm_greeks(**EXTREME_GRID)
    for name in FIELDS:
        assert np.all(np.isfinite(getattr(g, name))), name


def test_no_nan_or_inf_around_the_deterministic_threshold():
    # sigma*sqrt(T) at 0.5x, 1x and 2x TINY_STDEV, at and around the forward strike.
    T = np.array([1e-8, 1e-4, 1.0])
    sd = np.array([0.5, 1.0, 2.0]) * TINY_STDEV
    grid = _grid(T=T, sd=sd, K=[99.0, 100.0, 101.0], call=[True, False])
    for r, q in [(0.0, 0.0), (0.05, 0.02)]:
        g = bsm_greeks(
            100.0, grid["K"], grid["T"], grid["sd"] / np.sqrt(grid["T"]), r, q, grid["call"]
        )
        for name in FIELDS:
            assert np.all(np.isfinite(getattr(g, name))), name


def test_bounds_hold_on_extreme_grid():
    e = EXTREME_GRID
    g = bsm_greeks(**e)
    call = e["call"]
    dq = np.exp(-e["q"] * np.maximum(e["T"], 0.0))
    # Exact inequalities: erfc is in [0, 2], so N(.) in [0, 1] after rounding.
    assert np.all(g.price >= 0)
    assert np.all(g.gamma >= 0)
    assert np.all(g.vega >= 0)
    assert np.all((g.delta[call] >= 0) & (g.delta[call] <= dq[call]))
    assert np.all((g.delta[~call] <= 0) & (g.delta[~call] >= -dq[~call]))


def test_delta_is_step_and_gamma_vanishes_away_from_strike_as_T_or_sigma_to_zero():
    e = EXTREME_GRID
    T = e["T"]
    sd = e["sigma"] * np.sqrt(np.maximum(T, 0.0))
    deep = (e["K"] <= 50.0) | (e["K"] >= 200.0)  # |log(S/K)| >= 0.69
    limit = (T > 0) & (sd <= 3e-3) & deep  # so |d1| >= (0.69 - 0.07) / 3e-3 > 200
    assert limit.sum() > 50  # the selection is not vacuous
    g = bsm_greeks(**e)
    dq, dr = np.exp(-e["q"] * T), np.exp(-e["r"] * T)
    itm_call = e["S"] * dq > e["K"] * dr
    sign = np.where(e["call"], 1.0, -1.0)
    itm = np.where(e["call"], itm_call, ~itm_call)
    step = sign * dq * itm
    # |d1| > 200: N(-|d1|) and pdf(d1) underflow to exactly 0 in float64.
    np.testing.assert_array_equal(g.delta[limit], step[limit])
    np.testing.assert_array_equal(g.gamma[limit], 0.0)
    np.testing.assert_array_equal(g.vega[limit], 0.0)
    np.testing.assert_array_equal(g.vanna[limit], 0.0)
    # Price -> discounted forward intrinsic; rounding of S*dq - K*dr (<= 1e4).
    fwd_intrinsic = np.maximum(sign * (e["S"] * dq - e["K"] * dr), 0.0)
    np.testing.assert_allclose(g.price[limit], fwd_intrinsic[limit], rtol=0, atol=1e-11)
    # Textbook reading of the step: ITM call 1, OTM call 0, ITM put -1 (e^{-qT} ~ 1
    # when T <= 1e-6: off by at most q*T = 3e-8).
    short = limit & (T <= 1e-6)
    np.testing.assert_allclose(g.delta[short], (sign * itm)[short], rtol=0, atol=1e-7)


def test_atm_gamma_grows_as_expiry_nears_but_stays_finite():
    T = np.array([1.0, 1 / 12, 1 / 252, 1e-6, 1e-9])
    g = bsm_greeks(100.0, 100.0, T, 0.2, r=0.03, q=0.01)
    assert np.all(np.diff(g.gamma) > 0)
    assert np.all(np.isfinite(g.gamma))


def test_price_is_continuous_across_the_deterministic_threshold():
    sd = np.array([0.999, 1.001]) * TINY_STDEV  # just below / above the branch switch
    for K in (90.0, 100.0, 110.0):
        for call in (True, False):
            g = bsm_greeks(100.0, K, 1.0, sd, r=0.05, q=0.02, call=call)
            # Option time value is ~ S * sd * 0.4 ~ 4e-11 at most; rounding of ~1e2.
            np.testing.assert_allclose(g.price[0], g.price[1], rtol=0, atol=1e-9)


def test_huge_finite_vol_prices_at_the_upper_bound_without_nan():
    # sigma**2 would overflow for sigma >~ 1e154; such a sigma is still "valid".
    sigma = np.array([1e3, 1e10, 1e155, 1e300])
    T, r, q = 1.0, 0.05, 0.02
    c = bsm_greeks(100.0, 100.0, T, sigma, r=r, q=q, call=True)
    p = bsm_greeks(100.0, 100.0, T, sigma, r=r, q=q, call=False)
    for g in (c, p):
        for name in FIELDS:
            assert np.all(np.isfinite(getattr(g, name))), name
    # Infinite variance: N(d1) = 1, N(d2) = 0 exactly, so the bounds are hit to
    # the rounding of S e^{-qT} and K e^{-rT} (~1e-14).
    np.testing.assert_allclose(c.price, 100.0 * math.exp(-q * T), rtol=1e-14)
    np.testing.assert_allclose(p.price, 100.0 * math.exp(-r * T), rtol=1e-14)


@pytest.mark.parametrize("T", [0.0, -0.5])
def test_expired_option_is_intrinsic_with_zero_gamma_vega_theta_vanna_charm(T):
    K = np.array([80.0, 100.0, 120.0])
    for call, sign in ((True, 1.0), (False, -1.0)):
        g = bsm_greeks(100.0, K, T, 0.3, r=0.05, q=0.02, call=call)
        # Intrinsic is an exact difference of inputs.
        np.testing.assert_array_equal(g.price, np.maximum(sign * (100.0 - K), 0.0))
        # Step delta: ITM +-1, OTM 0, half a step exactly at the strike.
        want_delta = sign * np.array([1.0, 0.5, 0.0] if call else [0.0, 0.5, 1.0])
        np.testing.assert_array_equal(g.delta, want_delta)
        for name in ("gamma", "vega", "theta", "vanna", "charm"):
            np.testing.assert_array_equal(getattr(g, name), 0.0, err_msg=name)


# ---------------------------------------------------------------------------
# 5. Broadcasting and return type
# ---------------------------------------------------------------------------


def test_returns_greeks_namedtuple_with_the_seven_fields():
    g = bsm_greeks(100.0, 100.0, 0.5, 0.2)
    assert isinstance(g, Greeks)
    assert isinstance(g, tuple)
    assert g._fields == FIELDS
    price, delta, *_ = g
    assert price is g.price and delta is g.delta


def test_scalar_inputs_give_zero_dimensional_float_arrays():
    g = bsm_greeks(100, 100, 1, 0.2, 0, 0, True)  # ints accepted
    for name in FIELDS:
        v = getattr(g, name)
        assert isinstance(v, np.ndarray), name
        assert v.shape == (), name
        assert v.dtype == np.float64, name


def test_array_and_scalar_arguments_broadcast_to_common_shape():
    S = np.linspace(80.0, 120.0, 3).reshape(3, 1)
    K = np.array([90.0, 100.0, 110.0, 120.0])
    call = np.array([True, False, True, False])
    g = bsm_greeks(S, K, 0.5, 0.25, r=0.03, q=0.01, call=call)
    for name in FIELDS:
        assert getattr(g, name).shape == (3, 4), name
    for i, j in itertools.product(range(3), range(4)):
        want = bsm_scalar(S[i, 0], K[j], 0.5, 0.25, 0.03, 0.01, call[j])
        for k, name in enumerate(FIELDS):
            assert getattr(g, name)[i, j] == want[k], (name, i, j)


def test_call_flag_list_broadcasts_against_scalar_spot():
    g = bsm_greeks(100.0, 100.0, 1.0, 0.2, r=0.05, q=0.0, call=[True, False, 1, 0])
    assert g.price.shape == (4,)
    assert g.delta[0] > 0 and g.delta[1] < 0
    np.testing.assert_array_equal(g.price[[0, 1]], g.price[[2, 3]])


def test_array_rates_dividends_and_times_broadcast():
    r = np.array([0.0, 0.05])[:, None, None]
    q = np.array([0.0, 0.02, 0.04])[None, :, None]
    T = np.array([0.1, 1.0, 2.0, 5.0, 0.0])
    g = bsm_greeks(100.0, 105.0, T, 0.3, r=r, q=q)
    assert g.charm.shape == (2, 3, 5)
    assert g.theta[1, 2, 3] == bsm_scalar(100.0, 105.0, 5.0, 0.3, 0.05, 0.04, True)[4]


def test_non_contiguous_inputs_are_handled():
    S = np.linspace(50.0, 150.0, 20)[::2]  # strided view
    g = bsm_greeks(S, 100.0, 1.0, 0.2)
    want = [bsm_scalar(s, 100.0, 1.0, 0.2, 0.0, 0.0, True)[1] for s in S]
    np.testing.assert_array_equal(g.delta, want)


# ---------------------------------------------------------------------------
# 6. Hot-path kernel agrees with the full kernel
# ---------------------------------------------------------------------------


def test_delta_gamma_scalar_equals_bsm_scalar_exactly_on_random_inputs():
    rng = np.random.default_rng(20240611)
    n = 2000
    S = rng.uniform(1.0, 500.0, n)
    K = S * np.exp(rng.normal(0.0, 0.5, n))
    T = rng.choice([-0.1, 0.0, 1e-12, 1e-9, 1e-6, 1 / 252, 0.5, 3.0], n) * rng.uniform(0.5, 1, n)
    sigma = rng.choice([0.0, 1e-9, 1e-6, 0.2, 1.0, 3.0], n) * rng.uniform(0.5, 1, n)
    r = rng.uniform(-0.02, 0.15, n)
    q = rng.uniform(0.0, 0.1, n)
    call = rng.random(n) < 0.5
    for i in range(n):
        args = (S[i], K[i], T[i], sigma[i], r[i], q[i], bool(call[i]))
        full = bsm_scalar(*args)
        delta, gamma = delta_gamma_scalar(*args)
        # Same arithmetic in both kernels (no fastmath): bit-for-bit equal.
        assert delta == full[1], args
        assert gamma == full[2], args


# ---------------------------------------------------------------------------
# 7. Property test: no-arbitrage bounds
# ---------------------------------------------------------------------------


@settings(
    max_examples=150,
    deadline=None,  # first call may compile the numba kernels
    database=None,  # no .hypothesis/ directory in the tree
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    S=st.floats(1.0, 1e4),
    log_moneyness=st.floats(-3.0, 3.0),
    T=st.floats(0.0, 5.0),
    sigma=st.floats(0.0, 3.0),
    r=st.floats(-0.05, 0.25),
    q=st.floats(0.0, 0.2),
)
def test_prices_and_greeks_respect_no_arbitrage_bounds(S, log_moneyness, T, sigma, r, q):
    K = S * math.exp(log_moneyness)
    dq, dr = math.exp(-q * T), math.exp(-r * T)
    c = bsm_greeks(S, K, T, sigma, r=r, q=q, call=True)
    p = bsm_greeks(S, K, T, sigma, r=r, q=q, call=False)
    for g in (c, p):
        for name in FIELDS:
            assert math.isfinite(float(getattr(g, name))), name
    # Prices are differences of terms of size <= S + K: allow a few ulps of that.
    tol = 1e-13 * (S + K)
    call_price, put_price = float(c.price), float(p.price)
    assert max(S * dq - K * dr, 0.0) - tol <= call_price <= S * dq + tol
    assert max(K * dr - S * dq, 0.0) - tol <= put_price <= K * dr + tol
    # N(.) in [0, 1] exactly after rounding, so these hold without tolerance.
    assert 0.0 <= float(c.delta) <= dq
    assert -dq <= float(p.delta) <= 0.0
    assert float(c.gamma) >= 0.0
    assert float(c.vega) >= 0.0


# ---------------------------------------------------------------------------
# 8. Invalid input
# ---------------------------------------------------------------------------


INVALID_INPUTS = [
    ({"S": 0.0}, "S and K"),
    ({"S": -1.0}, "S and K"),
    ({"K": 0.0}, "S and K"),
    ({"K": -5.0}, "S and K"),
    ({"S": np.array([100.0, 0.0, 90.0])}, "S and K"),
    ({"sigma": -0.01}, "sigma"),
    ({"sigma": np.nan}, "sigma"),
    ({"sigma": np.inf}, "sigma"),
    ({"sigma": np.array([0.2, -1e-9])}, "sigma"),
    # Non-finite inputs would otherwise propagate NaN into every greek.
    ({"S": np.nan}, "S and K"),
    ({"S": np.inf}, "S and K"),
    ({"K": np.nan}, "S and K"),
    ({"K": np.array([100.0, np.inf])}, "S and K"),
    ({"T": np.nan}, "T must"),
    ({"T": np.inf}, "T must"),
    ({"r": np.nan}, "r and q"),
    ({"q": np.inf}, "r and q"),
]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    INVALID_INPUTS,
    ids=[
        ",".join(f"{k}={np.asarray(v).tolist()}" for k, v in kw.items()) for kw, _ in INVALID_INPUTS
    ],
)
def test_invalid_inputs_raise_value_error(kwargs, match):
    args = {"S": 100.0, "K": 100.0, "T": 1.0, "sigma": 0.2, "r": 0.0, "q": 0.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        bsm_greeks(**args)


def test_minus_infinite_T_is_accepted_as_expired():
    g = bsm_greeks(110.0, 100.0, -np.inf, 0.2, r=0.05, q=0.02)
    assert float(g.price) == 10.0 and float(g.delta) == 1.0 and float(g.gamma) == 0.0


def test_gamma_scalar_is_delta_gamma_scalars_gamma_bit_for_bit():
    """The GEX kernels' gamma-only evaluator: equal to ``delta_gamma_scalar``'s gamma
    exactly (no tolerance) over 20,000 random options, with T = 0, sigma = 0, deep ITM/OTM
    and negative rates among them."""
    from mmsim.greeks import gamma_scalar

    rng = np.random.default_rng(5)
    for _ in range(20_000):
        S, K = rng.uniform(1.0, 300.0, 2)
        T = 0.0 if rng.random() < 0.05 else float(rng.uniform(0.0, 3.0))
        sigma = 0.0 if rng.random() < 0.05 else float(rng.uniform(0.0, 2.0))
        r, q = rng.uniform(-0.02, 0.08, 2)
        is_call = bool(rng.random() < 0.5)
        want = delta_gamma_scalar(S, K, T, sigma, r, q, is_call)[1]
        got = gamma_scalar(S, K, T, sigma, r, q)
        assert got == want, (S, K, T, sigma, r, q, got, want)
