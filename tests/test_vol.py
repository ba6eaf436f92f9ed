"""The implied-vol surface: its formula, event shifts, and IV that follows realized vol."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mmsim.vol import RealizedVolFollower, VolSurface

YEAR = 252 * 23_400.0  # s


def test_skewed_surface_formula_and_floor():
    vol = VolSurface(atm=0.20, skew=-0.25, floor=0.05)
    K = np.array([80.0, 100.0, 125.0, 1e6])
    expected = np.maximum(0.20 - 0.25 * np.log(K / 100.0), 0.05)
    assert np.allclose(vol.iv(K, 100.0), expected, rtol=1e-15)
    assert vol.iv(1e6, 100.0) == 0.05  # deep OTM call wing on the floor


def test_event_shifts_add_to_the_level_and_skew():
    vol = VolSurface(atm=0.20, skew=-0.1)
    vol.apply_shift(d_level=0.10, d_skew=-0.2)
    assert vol.level == pytest.approx(0.30, abs=1e-15)
    assert vol.skew == pytest.approx(-0.3, abs=1e-15)


def gbm(sigma: float, every: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0, sigma * math.sqrt(every / YEAR), n)
    return 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(r)]))


@pytest.mark.parametrize("weight", [1.0, 0.5])
def test_the_level_follows_realized_vol_with_its_weight(weight):
    """Prices with 40% vol, quoted at 20%: after many half-lives the EWMA estimate is
    0.40 within its sampling error (an EWMA over ~half_life / every / ln 2 = 260
    effective returns: relative se of the vol ~ 1 / sqrt(2 * 260) = 4.4%; allow 3 se)."""
    vol = VolSurface(atm=0.20)
    every, half_life = 10.0, 1800.0
    follower = RealizedVolFollower(
        vol, lambda: 100.0, weight=weight, half_life=half_life, every=every, year_seconds=YEAR
    )
    assert vol.level == 0.20  # the estimate starts at the quoted vol
    prices = gbm(0.40, every, 20 * 180, seed=2)  # 20 half-lives
    for last, now in itertools.pairwise(prices):
        follower.update(last, now)
    assert vol.realized == pytest.approx(0.40, rel=0.13)
    assert vol.level == pytest.approx((1 - weight) * 0.20 + weight * vol.realized, rel=1e-12)
    vol.apply_shift(d_level=0.05)  # events still shift the level on top
    assert vol.level == pytest.approx((1 - weight) * 0.20 + weight * vol.realized + 0.05)


def test_the_estimate_halves_its_memory_every_half_life():
    """No price change for one half-life: the variance estimate halves exactly."""
    vol = VolSurface(atm=0.30)
    follower = RealizedVolFollower(
        vol, lambda: 100.0, weight=1.0, half_life=600.0, every=10.0, year_seconds=YEAR
    )
    for _ in range(60):  # 60 x 10 s = one half-life
        follower.update(100.0, 100.0)
    assert follower.variance == pytest.approx(0.30**2 / 2, rel=1e-12)
    assert vol.level == pytest.approx(0.30 / math.sqrt(2), rel=1e-12)


def test_in_a_run_iv_climbs_to_realized_vol_and_the_greeks_follow():
    """Quoted at 20% while news runs at 40%: with follow_realized the ATM level climbs to
    the run's realized vol (over the second half of the day, within 15%: the EWMA's
    sampling error is ~4% and the dealers' long gamma lowers realized vol as it goes),
    and the dealer's ATM gamma, ~1/vol, ends well below that of the fixed-vol run."""
    import mmsim

    scenario = {
        "clock": {"days": 1},
        "market": {"S0": 100.0, "impact": {"lam": 1e-5}},
        "vol": {"atm": 0.20, "follow_realized": {"half_life": 1800, "every": 10}},
        "news": {"vol": 0.40},
        "dealers": [
            {
                "band": 0,
                "positions": [{"type": "call", "strike": 100, "expiry_days": 21, "qty": 1000}],
            }
        ],
        "record": {"every": 10.0, "levels_every": 1e9},
    }
    following = mmsim.run(scenario, seed=1)
    fixed = mmsim.run({**scenario, "vol": {"atm": 0.20}}, seed=1)
    iv = following.series["iv"].to_numpy()
    assert iv[0] == 0.20 and (fixed.series["iv"] == 0.20).all()
    late = iv[iv.size // 2 :]
    assert late.mean() == pytest.approx(following.metrics["realized_vol"], rel=0.15)
    gamma_ratio = following.series["dealer_gamma"].iloc[-1] / fixed.series["dealer_gamma"].iloc[-1]
    assert gamma_ratio < 0.75
