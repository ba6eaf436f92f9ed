"""Run metrics on hand-made series whose answers are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mmsim.metrics import (
    autocorrelation,
    max_drawdown,
    realized_vol,
    regime_metrics,
    summarize,
    wall_metrics,
)

YEAR = 252 * 23_400.0  # s


def test_realized_vol_recovers_the_vol_of_a_simulated_gbm():
    """200,000 ten-second log returns of 20% vol: the sample std's relative standard
    error is 1/sqrt(2n) = 0.16%; allow 1%."""
    rng = np.random.default_rng(0)
    dt, sigma = 10.0, 0.20
    r = rng.normal(0.0, sigma * math.sqrt(dt / YEAR), 200_000)
    prices = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(r)]))
    assert realized_vol(prices, dt, YEAR) == pytest.approx(sigma, rel=0.01)
    # over 10 x longer horizons the same process has the same annualized vol (3% tol:
    # 20,000 returns)
    assert realized_vol(prices, dt, YEAR, step=10) == pytest.approx(sigma, rel=0.03)


def test_autocorrelation_of_an_ar1_is_its_coefficient():
    rng = np.random.default_rng(1)
    e = rng.normal(size=100_000)
    x = np.empty_like(e)
    x[0] = e[0]
    for i in range(1, e.size):
        x[i] = -0.4 * x[i - 1] + e[i]
    # Bartlett standard errors at n = 1e5: 0.0029 at lag 1, 0.0035 at lag 2; allow 4 se
    assert autocorrelation(x, 1) == pytest.approx(-0.4, abs=0.015)
    assert autocorrelation(x, 2) == pytest.approx(0.16, abs=0.015)  # (-0.4)^2


def test_max_drawdown_by_hand():
    assert max_drawdown(np.array([100.0, 120.0, 90.0, 110.0, 60.0, 130.0])) == 0.5  # 120->60
    assert max_drawdown(np.array([1.0, 2.0, 3.0])) == 0.0


def series(price, regime=None, call=None, put=None, pnl=None) -> pd.DataFrame:
    n = len(price)
    nan = np.full(n, np.nan)
    return pd.DataFrame(
        {
            "t": np.arange(n) * 10.0,
            "price": price,
            "regime": regime if regime is not None else np.zeros(n),
            "call_wall": call if call is not None else nan,
            "put_wall": put if put is not None else nan,
            "call_wall_visible": nan,
            "put_wall_visible": np.full(n, 99.0),
            "desk.pnl": pnl if pnl is not None else np.zeros(n),
        }
    )


def test_regime_metrics_split_returns_by_the_regime_at_their_start():
    price = np.array([100.0, 101.0, 100.0, 102.0, 98.0])
    s = series(price, regime=np.array([1.0, 1.0, -1.0, -1.0, -1.0]))
    m = regime_metrics(s, 10.0, YEAR)
    r = np.diff(np.log(price))
    assert m["time_above_flip"] == 0.5 and m["time_below_flip"] == 0.5
    scale = math.sqrt(YEAR / 10.0)
    assert m["realized_vol_above_flip"] == pytest.approx(np.std(r[:2], ddof=1) * scale)
    assert m["realized_vol_below_flip"] == pytest.approx(np.std(r[2:], ddof=1) * scale)


def test_time_beyond_walls_counts_samples_past_each_wall_and_none_without_one():
    price = np.array([100.0, 103.0, 104.0, 97.0, 96.0])
    s = series(price, call=np.full(5, 102.0), put=np.array([np.nan, 98.0, 98.0, 98.0, 95.0]))
    m = wall_metrics(s)
    assert m["time_beyond_call_wall"] == 2 / 5  # 103, 104 above 102
    assert m["time_beyond_put_wall"] == 1 / 5  # 97 below 98; 96 is above 95
    assert m["time_beyond_call_wall_visible"] == 0.0  # no visible call wall at all
    assert m["time_beyond_put_wall_visible"] == 2 / 5  # 97, 96 below 99


def test_dealer_pnl_vol_is_the_annualized_std_of_pnl_changes():
    pnl = np.array([0.0, 100.0, -50.0, 25.0, 25.0])
    s = series(np.full(5, 100.0), pnl=pnl)
    trades = pd.DataFrame({"kind": pd.Series(dtype=str), "qty": pd.Series(dtype=float)})
    stats = {"desk": {"pnl": 25.0, "hedge_volume": 0.0, "hedge_cost": 0.0, "n_rehedges": 0.0}}
    m = summarize(s, trades, stats, every=10.0, year_seconds=YEAR)
    expected = np.std(np.diff(pnl), ddof=1) * math.sqrt(YEAR / 10.0)
    assert m["dealer_pnl_vol"] == pytest.approx(expected, rel=1e-12)
    assert m["dealer_pnl"] == 25.0 and m["realized_vol"] == 0.0
