"""Black-Scholes-Merton prices and greeks, compiled with numba.

Units, everywhere in this module:

- ``S``, ``K``: dollars per share.
- ``T``: time to expiry in **years** (trading time, see ``DESIGN.md``).
- ``sigma``: annualized volatility (0.20 = 20%); ``r``, ``q``: continuously
  compounded rate and dividend yield per year.
- Results are **per share** (multiply by contracts x multiplier for a position).
- ``vega``: dollars per 1.00 of vol (divide by 100 for "per vol point").
- ``theta``: dollars per year of *passage of time* (``-dV/dT``; a long call's
  theta is usually negative). Divide by 252 for "per trading day".
- ``vanna``: d(delta)/d(sigma), per 1.00 of vol.
- ``charm``: d(delta)/d(passage of time), per year (``-d delta / dT``).

Limits: when ``sigma * sqrt(T)`` is below ``TINY_STDEV`` the option is priced on its
deterministic forward: delta is the step ``e^{-qT} 1{S e^{-qT} > K e^{-rT}}`` (half a
step exactly at the money), and gamma, vega, vanna and charm's diffusion part are 0.
At ``T <= 0`` the option has expired: price is intrinsic, delta the step, the rest 0.
No input in the valid domain (``S, K > 0``, ``sigma >= 0``) produces NaN or inf.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

__all__ = [
    "TINY_STDEV",
    "Greeks",
    "bsm_greeks",
    "bsm_scalar",
    "delta_gamma_scalar",
    "gamma_scalar",
    "norm_cdf",
    "norm_pdf",
]

TINY_STDEV = 1e-12
"""Below this total standard deviation ``sigma*sqrt(T)`` the forward is deterministic."""

_INV_SQRT_2PI = 0.3989422804014327
_INV_SQRT_2 = 0.7071067811865476


class Greeks(NamedTuple):
    """Per-share BSM values; see the module docstring for units."""

    price: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    vega: np.ndarray
    theta: np.ndarray
    vanna: np.ndarray
    charm: np.ndarray


@njit(cache=True, fastmath=False)
def norm_pdf(x: float) -> float:
    """Standard normal density."""
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


@njit(cache=True, fastmath=False)
def norm_cdf(x: float) -> float:
    """Standard normal distribution function (accurate in both tails)."""
    return 0.5 * math.erfc(-x * _INV_SQRT_2)


@njit(cache=True)
def _discount(rate, T):
    """``exp(-rate * T)`` for a rate per year and ``T`` > 0 years; exactly 1.0 without a
    call to ``exp`` when ``rate == 0`` (the same value: ``exp(-0.0) == 1.0``)."""
    if rate == 0.0:
        return 1.0
    return math.exp(-rate * T)


@njit(cache=True)
def _deterministic(S, K, T, r, q, is_call):
    """Price, delta, theta, charm when the forward is certain (sigma*sqrt(T) ~ 0)."""
    tt = max(T, 0.0)
    dq = math.exp(-q * tt)
    dr = math.exp(-r * tt)
    fwd = S * dq - K * dr  # discounted forward minus discounted strike, $
    if is_call:
        sign = 1.0
    else:
        sign = -1.0
    m = sign * fwd
    if m > 0.0:
        itm = 1.0
    elif m == 0.0:
        itm = 0.5
    else:
        itm = 0.0
    price = max(m, 0.0)
    delta = sign * dq * itm
    if T > 0.0:
        theta = sign * (q * S * dq - r * K * dr) * itm
        charm = sign * q * dq * itm
    else:
        theta = 0.0
        charm = 0.0
    return price, delta, theta, charm


@njit(cache=True)
def bsm_scalar(S, K, T, sigma, r, q, is_call):
    """All seven BSM values for one option, per share.

    Returns ``(price, delta, gamma, vega, theta, vanna, charm)`` with the units of
    the module docstring (theta and charm per year of passage of time).
    """
    sd = sigma * math.sqrt(T) if T > 0.0 else 0.0
    if sd < TINY_STDEV:
        price, delta, theta, charm = _deterministic(S, K, T, r, q, is_call)
        return price, delta, 0.0, 0.0, theta, 0.0, charm
    sqrt_t = math.sqrt(T)
    dq = _discount(q, T)
    dr = _discount(r, T)
    # Written with sd (not sigma**2 * T) so a huge but finite sigma cannot overflow.
    d1 = (math.log(S / K) + (r - q) * T) / sd + 0.5 * sd
    d2 = d1 - sd
    pdf1 = norm_pdf(d1)
    gamma = dq * pdf1 / (S * sd)
    vega = S * dq * pdf1 * sqrt_t
    vanna = -dq * pdf1 * d2 / sigma
    decay = -S * dq * pdf1 * sigma / (2.0 * sqrt_t)
    charm_common = -dq * pdf1 * ((r - q) / sd - d2 / (2.0 * T))
    if is_call:
        n1 = norm_cdf(d1)
        n2 = norm_cdf(d2)
        price = S * dq * n1 - K * dr * n2
        delta = dq * n1
        theta = decay - r * K * dr * n2 + q * S * dq * n1
        charm = q * dq * n1 + charm_common
    else:
        m1 = norm_cdf(-d1)
        m2 = norm_cdf(-d2)
        price = K * dr * m2 - S * dq * m1
        delta = -dq * m1
        theta = decay + r * K * dr * m2 - q * S * dq * m1
        charm = -q * dq * m1 + charm_common
    return price, delta, gamma, vega, theta, vanna, charm


@njit(cache=True, forceinline=False)  # not _check's: see kernel_checks._check
def delta_gamma_scalar(S, K, T, sigma, r, q, is_call):
    """Delta (per share) and gamma (per share per $1) of one option; the hot path."""
    sd = sigma * math.sqrt(T) if T > 0.0 else 0.0
    if sd < TINY_STDEV:
        _, delta, _, _ = _deterministic(S, K, T, r, q, is_call)
        return delta, 0.0
    dq = _discount(q, T)
    # Written with sd (not sigma**2 * T) so a huge but finite sigma cannot overflow.
    d1 = (math.log(S / K) + (r - q) * T) / sd + 0.5 * sd
    gamma = dq * norm_pdf(d1) / (S * sd)
    if is_call:
        return dq * norm_cdf(d1), gamma
    return -dq * norm_cdf(-d1), gamma


@njit(cache=True)
def gamma_scalar(S, K, T, sigma, r, q):
    """Gamma (per share per $1) of one option, equal bit for bit to
    :func:`delta_gamma_scalar`'s; without the delta's normal CDF (the GEX kernels need
    only gamma: about 40% less per line)."""
    sd = sigma * math.sqrt(T) if T > 0.0 else 0.0
    if sd < TINY_STDEV:
        return 0.0
    dq = _discount(q, T)
    d1 = (math.log(S / K) + (r - q) * T) / sd + 0.5 * sd
    return dq * norm_pdf(d1) / (S * sd)


@njit(cache=True)
def _fill_greeks(S, K, T, sigma, r, q, is_call, out):
    for i in range(S.size):
        v = bsm_scalar(S[i], K[i], T[i], sigma[i], r[i], q[i], is_call[i])
        for j in range(7):
            out[j, i] = v[j]


def bsm_greeks(S, K, T, sigma, r=0.0, q=0.0, call=True) -> Greeks:
    """Black-Scholes-Merton price and greeks, broadcasting over all arguments.

    Parameters
    ----------
    S, K : spot and strike, $ per share (> 0, finite).
    T : time to expiry, years (<= 0 means expired: intrinsic value, step delta;
        not NaN or +inf).
    sigma : annualized volatility (>= 0, finite).
    r, q : continuously compounded rate and dividend yield, per year (finite).
    call : True for calls, False for puts (broadcasts too).

    Returns
    -------
    Greeks
        Named tuple of arrays ``price, delta, gamma, vega, theta, vanna, charm`` per
        share; vega per 1.00 of vol; theta and charm per **year** of passage of time.

    Raises
    ------
    ValueError
        If any input is outside the ranges above.

    Examples
    --------
    >>> g = bsm_greeks(42.0, 40.0, 0.5, 0.2, r=0.10)
    >>> round(float(g.price), 2)
    4.76
    """
    arrays = np.broadcast_arrays(
        np.asarray(S, dtype=np.float64),
        np.asarray(K, dtype=np.float64),
        np.asarray(T, dtype=np.float64),
        np.asarray(sigma, dtype=np.float64),
        np.asarray(r, dtype=np.float64),
        np.asarray(q, dtype=np.float64),
        np.asarray(call, dtype=np.bool_),
    )
    shape = arrays[0].shape
    S_, K_, T_, sig_, r_, q_, c_ = (np.ascontiguousarray(a).ravel() for a in arrays)
    if not (np.all((S_ > 0) & np.isfinite(S_)) and np.all((K_ > 0) & np.isfinite(K_))):
        raise ValueError("S and K must be positive, finite dollars")
    if np.any(np.isnan(T_) | (T_ == np.inf)):
        raise ValueError("T must be a number of years (not NaN or +inf; <= 0 means expired)")
    if not (np.all(np.isfinite(r_)) and np.all(np.isfinite(q_))):
        raise ValueError("r and q must be finite annual rates")
    if np.any(sig_ < 0) or not np.all(np.isfinite(sig_)):
        raise ValueError("sigma must be a finite, non-negative annualized volatility")
    out = np.empty((7, S_.size))
    _fill_greeks(S_, K_, T_, sig_, r_, q_, c_, out)
    return Greeks(*(row.reshape(shape) for row in out))
