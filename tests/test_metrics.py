"""Run metrics on hand-made series whose answers are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mmsim.metrics import (
    autocorrelation,
    bipower_vol,
    max_drawdown,
    pin_metrics,
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
    assert m["desk.pnl_vol"] == pytest.approx(expected, rel=1e-12)  # one desk: the total


def test_bipower_vol_ignores_a_jump_that_realized_vol_counts():
    """Pure diffusion: bipower vol equals realized vol (50,000 returns: relative standard
    error ~0.5% for realized, ~0.6% for bipower; allow 3%) and the jump share is ~0
    (< 0.03). One 6% jump added (vs 0.02% diffusive steps): realized vol grows by > 1.5x,
    bipower vol moves by < 3% and the jump share is the jump's part of the variance
    (within 0.03)."""
    for seed, sigma in ((0, 0.15), (1, 0.40)):  # two vols, none shipped
        rng = np.random.default_rng(seed)
        dt = 10.0
        r = rng.normal(0.0, sigma * math.sqrt(dt / YEAR), 50_000)
        prices = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(r)]))
        vol, share = bipower_vol(prices, dt, YEAR)
        assert vol == pytest.approx(realized_vol(prices, dt, YEAR), rel=0.03)
        assert share < 0.03
        jump = 0.06 * sigma / 0.15
        r[25_000] += jump
        jumped = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(r)]))
        vol_j, share_j = bipower_vol(jumped, dt, YEAR)
        assert realized_vol(jumped, dt, YEAR) > 1.5 * realized_vol(prices, dt, YEAR)
        assert vol_j == pytest.approx(vol, rel=0.03)
        assert share_j == pytest.approx(jump**2 / np.sum(r * r), abs=0.03)
    assert bipower_vol(np.array([100.0, 101.0]), 10.0, YEAR) == (0.0, 0.0)
    assert bipower_vol(np.full(10, 100.0), 10.0, YEAR) == (0.0, 0.0)


def test_pin_distance_is_the_close_minus_the_largest_open_interest_strike():
    s = pd.DataFrame({"t": [0.0, 100.0, 200.0, 300.0], "price": [99.0, 100.4, 101.2, 103.0]})
    lines = pd.DataFrame(
        {
            "strike": [100.0, 100.0, 105.0, 101.0, 110.0],
            "expiry": [200.0, 200.0, 200.0, 300.0, 900.0],  # 900: after the run
            "qty": [3000.0, -2500.0, 4000.0, 10.0, 1e6],  # |qty| adds up: 5,500 at 100
        }
    )
    m = pin_metrics(s, lines, session_seconds=100.0, end=300.0)
    assert m["expiry2.pin_strike"] == 100.0
    assert m["expiry2.pin_distance"] == pytest.approx(1.2)  # the close at t = 200
    assert m["expiry3.pin_distance"] == pytest.approx(2.0)
    assert (m["pin_strike"], m["pin_distance"]) == (101.0, pytest.approx(2.0))
    assert not any("expiry9" in k for k in m)
    assert pin_metrics(s, lines[lines["expiry"] > 300], 100.0, 300.0) == {}


def test_pin_strike_is_the_largest_open_interest_near_the_open_of_the_expirys_session():
    """Sessions of 100 s; price 200 at t = 0, 220 from the second session's open on. The
    largest open interest of each expiry is far out of the money (a 150 put, as real
    chains' largest OI often is) and is passed over for the largest within 2% of the open
    of the expiry's own last session: 200 for the first close (S0), 220 for an expiry at
    the second close and one mid-session (t = 150 s), not 200 (S0) nor the close's 221.
    A strike exactly 2% away is in; with no strike in the window, the largest of all,
    and ``pin_in_window`` says so."""
    t = np.arange(0.0, 301.0, 10.0)
    price = np.where(t < 100.0, 200.0, 220.0)
    price[t > 250.0] = 221.0
    s = pd.DataFrame({"t": t, "price": price})
    lines = pd.DataFrame(
        {  # (strike, expiry s, qty): the 150 line has the most contracts of each expiry
            "strike": [150.0, 200.0, 215.0, 150.0, 200.0, 215.6, 224.4, 150.0, 220.0, 150.0],
            "expiry": [100.0, 100.0, 100.0, 200.0, 200.0, 200.0, 200.0, 150.0, 150.0, 300.0],
            "qty": [-9e4, 300.0, 1e3, -9e4, 5e3, 40.0, -60.0, 9e4, 1.0, -7.0],
        }
    )
    m = pin_metrics(s, lines, session_seconds=100.0, end=300.0)
    assert m["expiry1.pin_strike"] == 200.0, "S0's window: 196-204 (215 is out)"
    assert m["expiry2.pin_strike"] == 224.4, "220's window 215.6-224.4, ends in: 60 > 40"
    assert m["expiry2.pin_distance"] == pytest.approx(220.0 - 224.4)
    assert m["expiry1.5.pin_strike"] == 220.0, "mid-session: its own session's open"
    assert m["expiry1.pin_in_window"] == m["expiry2.pin_in_window"] == 1.0
    assert (m["expiry3.pin_strike"], m["expiry3.pin_in_window"]) == (150.0, 0.0)
    assert m["expiry3.pin_distance"] == pytest.approx(221.0 - 150.0), "the close at 300 s"
    assert (m["pin_strike"], m["pin_in_window"]) == (150.0, 0.0), "the last expiry's"


EXPIRY_MID_RUN = {
    "name": "expiry_mid_run",
    "clock": {"days": 2, "session_seconds": 1200},
    "market": {"S0": 100.0, "impact": {"lam": 2e-6}},
    "vol": {"atm": 0.2},
    "news": {"vol": 0.3, "dt": 1.0},
    "dealers": [
        {
            "name": "a",
            "band": 50,
            "positions": [
                {"type": "call", "strike": 100, "expiry_days": 1, "qty": 3000},
                {"type": "put", "strike": 100, "expiry_days": 2, "qty": 3000},
            ],
        },
        {
            "name": "b",
            "band": 500,
            "positions": [{"type": "put", "strike": 99, "expiry_days": 1, "qty": -2000}],
        },
    ],
    "record": {"every": 10.0, "levels_every": 100.0},
}


@pytest.mark.parametrize("seed", [3, 4])
def test_each_desks_pnl_in_the_last_series_row_is_its_metric(seed):
    """Two desks, expiries mid-run (t = 1,200 s) and at the end (2,400 s). The last row is
    the close, before the closing instant's settlement and hedge unwinds: it used to value
    the expiring lines at 0 (expired) without their settlement cash, so metrics (after the
    close) and the last row differed by up to the intrinsic value. Now they agree to float
    rounding (1e-6 $), and the sampled P&L has no hole at the mid-run expiry: its step into
    the expiry's sample is within 5x the largest step elsewhere (it was the whole intrinsic
    value). The step after it is real: the hedge unwind's impact cost."""
    import mmsim

    res = mmsim.run(EXPIRY_MID_RUN, seed=seed)
    last = res.series.iloc[-1]
    for name in ("a", "b"):
        assert res.metrics[f"{name}.pnl"] == pytest.approx(last[f"{name}.pnl"], abs=1e-6)
        steps = np.abs(np.diff(res.series[f"{name}.pnl"].to_numpy()))
        at = int(np.searchsorted(res.series["t"].to_numpy(), 1200.0))  # row at the expiry
        into = steps[at - 1]  # last sample before the expiry -> the sample at it
        elsewhere = np.delete(steps, [at - 1, at]).max()  # at -> at + 1: the unwind's impact
        assert into <= 5 * elsewhere, (name, into, elsewhere)
    total = sum(res.metrics[f"{n}.pnl"] for n in ("a", "b"))
    assert res.metrics["dealer_pnl"] == pytest.approx(total, abs=1e-6)
    assert "a.pnl_after_close" in res.metrics
