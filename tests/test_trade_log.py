"""The trade log audits a run: every share a dealer holds and every settlement is a row.

Market orders carry their account's kind (dealer, noise, customer, pension); bookings
that are not orders have their own kind: ``opening_hedge`` (shares endowed at S0),
``settlement`` (cash paid at expiry, qty 0) and ``delivery`` (shares at the strike).
"""

from __future__ import annotations

import numpy as np
import pytest

import mmsim


def expiring(settlement: str) -> dict:
    """A dealer long 10 calls struck at 100, spot 105, expiring at the close of a
    compressed 600 s session; it starts hedged and rehedges every price change."""
    return {
        "name": "audit",
        "clock": {"days": 1, "session_seconds": 600},
        "market": {"S0": 105.0, "impact": {"lam": 1.0e-5}, "settlement": settlement},
        "vol": {"atm": 0.20},
        "news": {"vol": 0.2, "dt": 1.0},
        "noise": {"rate": 0.05, "mean_size": 50},
        "record": {"every": 30.0, "levels_every": 1.0e9},
        "dealers": [
            {
                "name": "desk",
                "band": 5,
                "positions": [{"type": "call", "strike": 100, "expiry_days": 1, "qty": 10}],
            }
        ],
    }


@pytest.mark.parametrize("settlement", ["cash", "physical"])
def test_every_share_and_settlement_of_the_dealer_is_in_the_trade_log(settlement):
    result = mmsim.run(expiring(settlement), seed=4)
    trades, accounts = result.trades, result.accounts.set_index("account")
    desk = trades[trades["agent"] == "desk"]
    opening = desk[desk["kind"] == "opening_hedge"]
    # 10 deep ITM calls (delta ~1 with 600 s left): about -1,000 shares at S0, no impact
    assert len(opening) == 1 and opening["t"].iloc[0] == 0.0
    assert opening["qty"].iloc[0] == pytest.approx(-1000.0, abs=5.0)
    assert (opening[["price_before", "price_after", "exec_price"]] == 105.0).all(axis=None)
    # shares held = the sum of every row of the desk: orders, opening hedge, delivery
    assert desk["qty"].sum() == accounts.loc["desk", "shares"]
    close = result.series["mid"].iloc[-1]
    intrinsic = 10 * 100 * (close - 100.0)
    if settlement == "cash":
        rows = desk[desk["kind"] == "settlement"]
        assert len(rows) == 1 and rows["qty"].iloc[0] == 0.0
        # cost = cash paid by the holder: it receives the intrinsic value, to 1e-9 $
        assert rows["cost"].iloc[0] == pytest.approx(-intrinsic, abs=1e-9)
        assert not (desk["kind"] == "delivery").any()
    else:
        rows = desk[desk["kind"] == "delivery"]
        assert len(rows) == 1 and rows["qty"].iloc[0] == 1000.0  # 10 calls x 100 shares
        assert rows["exec_price"].iloc[0] == pytest.approx(100.0, rel=1e-12)
        assert not (desk["kind"] == "settlement").any()
    # the opening and clearing accounts have their own kinds
    assert accounts.loc["opening", "kind"] == "opening"
    assert accounts.loc["clearing", "kind"] == "clearing"
    # bookings are not market orders: the rehedge count and volume ignore them
    orders = desk[desk["kind"] == "dealer"]
    assert result.metrics["n_rehedges"] == len(orders)
    assert result.metrics["hedge_volume"] == orders["qty"].abs().sum()


def test_the_series_records_the_unrounded_mid_beside_the_tick_rounded_price():
    sc = expiring("cash") | {"market": {"S0": 105.0, "impact": {"lam": 1.0e-5}, "tick": 0.05}}
    s = mmsim.run(sc, seed=1).series
    ticks = s["price"].to_numpy() / 0.05
    assert np.allclose(ticks, np.round(ticks), atol=1e-9)  # published on the tick grid
    assert (np.abs(s["price"] - s["mid"]) <= 0.025 + 1e-12).all()  # half a tick at most
    assert (s["price"] != s["mid"]).any()
