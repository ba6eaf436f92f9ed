"""Multi-day runs with a calendar of expiries: a daily 0DTE and a monthly.

Customers trade every listed expiry that is still alive; each day's close settles the
lines expiring then (cash: intrinsic value; physical: shares at the strike), the dealer
unwinds the hedge of what expired, and nothing is created or lost on the way.
"""

from __future__ import annotations

import numpy as np
import pytest

from mmsim.engine import Simulation
from mmsim.scenario import load_scenario

SESSION = 23_400.0  # s
DAYS = 3
BAND = 200.0  # shares


def calendar_scenario(settlement: str) -> dict:
    """Three sessions; retail buys calls and hedgers buy puts on a daily 0DTE calendar
    (expiries at each close) and a monthly (21 sessions)."""
    return {
        "name": "calendar",
        "clock": {"days": DAYS},
        "market": {
            "S0": 100.0,
            "impact": {"lam": 2e-6},
            "half_spread": 0.01,
            "settlement": settlement,
        },
        "news": {"vol": 0.2},
        "noise": {"rate": 0.2, "mean_size": 200},
        "dealers": [{"band": BAND, "positions": []}],
        "customers": [
            {
                "segment": "retail_call_buyers",
                "rate": 0.01,
                "moneyness": [-0.01, 0.01],
                "expiry_days": [1, 2, 3, 21],
                "size": {"mean": 20},
            },
            {
                "segment": "put_hedgers",
                "rate": 0.005,
                "moneyness": [-0.02, 0.0],
                "expiry_days": [1, 2, 3, 21],
                "size": {"mean": 30},
            },
        ],
        "record": {"every": 60.0, "levels_every": 1800.0},
    }


@pytest.fixture(scope="module", params=["cash", "physical"])
def calendar_run(request):
    """The run stopped just after each close (book snapshots), then to the end."""
    sim = Simulation(load_scenario(calendar_scenario(request.param)), 5)
    snapshots = []
    for day in range(1, DAYS):
        sim.advance(day * SESSION + 1.0)  # one second after the day's expiry
        snapshots.append((day, sim.book.lines(), sim.dealers[0].net_delta()))
    return request.param, sim, snapshots, sim.run()


def test_every_daily_expiry_is_traded_then_closed_at_its_close(calendar_run):
    _, _, snapshots, result = calendar_run
    trades = result.option_trades
    expiry_days = set(np.round(trades["expiry"] / SESSION, 9))
    assert {1.0, 2.0, 3.0, 21.0} <= expiry_days  # every listed expiry was traded
    for day, lines, _ in snapshots:
        due = lines[np.isclose(lines["expiry"], day * SESSION)]
        assert len(due) > 0 and (due["qty"] == 0.0).all()  # all of that day's OI is gone
        later = lines[lines["expiry"] > day * SESSION]
        assert (later["qty"] != 0.0).any()  # the later expiries are still open


def test_no_customer_trade_is_written_on_an_expired_date(calendar_run):
    trades = calendar_run[3].option_trades
    assert (trades["expiry"] > trades["t"]).all()


def test_the_dealer_unwinds_the_hedge_of_what_expired(calendar_run):
    """Right after each close the dealer is back inside its band: the shares that
    hedged the expired options were traded away (or delivered, when physical)."""
    for _, _, net_delta in calendar_run[2]:
        assert abs(net_delta) <= BAND


def test_settlement_pays_intrinsic_value_and_conserves_shares_and_cash(calendar_run):
    settlement, sim, _, result = calendar_run
    accounts = result.accounts.set_index("account")
    # every account, the liquidity pool and the clearing house included, nets to zero
    assert accounts["shares"].sum() == pytest.approx(0.0, abs=1e-6)  # whole shares
    # cash: float64 rounding only, ~1e-16 per booking of a balance; the bound of 1e-14
    # of the gross notional traded allows ~100x that over the run's thousands of fills
    gross = (result.trades["qty"].abs() * result.trades["exec_price"]).sum()
    assert abs(accounts["cash"].sum()) < 1e-14 * gross
    assert sim.expiration.settled_contracts > 0
    if settlement == "cash":
        assert accounts.loc["clearing", "shares"] == 0.0
        assert accounts.loc["clearing", "cash"] == pytest.approx(-sim.expiration.settled_cash)
    else:
        assert sim.expiration.settled_cash == 0.0  # delivery at the strike, no cash leg
