"""The engine end to end: reproducibility, conservation, the Result contract, agents."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mmsim
from mmsim.agents.pension import schedule_weights
from mmsim.engine import Simulation
from mmsim.scenario import load_scenario

SHORT = {"clock.days": 0.05, "record.every": 10.0, "record.levels_every": 120.0}


def base(**extra) -> dict:
    """A small one-dealer scenario; ``extra`` replaces top-level blocks."""
    sc = {
        "name": "t",
        "clock": {"days": 0.05},
        "market": {"S0": 100.0, "impact": {"lam": 1e-5}, "half_spread": 0.01},
        "news": {"vol": 0.2},
        "noise": {"rate": 0.5, "mean_size": 200},
        "dealers": [
            {
                "band": 50,
                "positions": [{"type": "call", "strike": 100, "expiry_days": 21, "qty": -500}],
            }
        ],
        "record": {"every": 10.0, "levels_every": 120.0},
    }
    sc.update(extra)
    return sc


@pytest.fixture(scope="module")
def multi():
    return mmsim.run("scenarios/multi_dealer_bands.yaml", seed=5, overrides=SHORT)


def test_same_seed_gives_identical_results_and_different_seeds_differ():
    a, b = mmsim.run(base(), seed=1), mmsim.run(base(), seed=1)
    assert a.equals(b)
    assert a.series.equals(b.series) and a.trades.equals(b.trades)
    c = mmsim.run(base(), seed=2)
    assert not np.array_equal(a.series["price"], c.series["price"])


def test_fresh_entropy_is_saved_and_reproduces_the_run():
    a = mmsim.run(base())  # no seed anywhere: fresh entropy
    again = mmsim.run(base(), seed=a.entropy)
    assert a.series.equals(again.series) and a.trades.equals(again.trades)


def test_each_agent_has_its_own_stream_so_adding_one_leaves_the_others_unchanged():
    """Adding a customer segment must not change the news draws: the price path up to the
    first customer trade is identical."""
    plain = mmsim.run(base(noise=None), seed=4)
    flow = [{"segment": "retail_call_buyers", "rate": 0.01, "expiry_days": [21]}]
    more = mmsim.run(base(noise=None, customers=flow), seed=4)
    first = more.option_trades["t"].min()
    before = plain.series["t"] < first
    assert before.sum() > 10
    assert np.array_equal(plain.series["price"][before], more.series["price"][before])


def test_shares_and_cash_are_conserved_across_all_agents_and_the_pool(multi):
    """Three dealers, three customer segments, noise traders and the pool."""
    totals = multi.accounts[["shares", "cash"]].sum()
    assert totals["shares"] == 0.0  # whole shares and whole contracts: exact
    # ~10^8 $ of gross cash flow summed in floats: rounding only
    assert abs(totals["cash"]) < 1e-4


def test_result_round_trips_through_save_and_load(multi, tmp_path):
    path = multi.save(tmp_path / "run")
    loaded = mmsim.load_result(path)
    assert loaded.equals(multi)
    assert loaded.metrics == multi.metrics and loaded.scenario == multi.scenario
    for name in ("series", "trades", "option_trades", "episodes", "accounts"):
        pd.testing.assert_frame_equal(getattr(loaded, name), getattr(multi, name))
    multi.save(path)  # replacing an existing result works and leaves no staging dirs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_result_contract(multi):
    assert {"t", "price"} <= set(multi.series.columns)
    for key in ("realized_vol", "hedge_volume", "n_rehedges"):
        assert isinstance(multi.metrics[key], float)
    assert list(multi.trades.columns) == [
        "t",
        "agent",
        "kind",
        "qty",
        "price_before",
        "price_after",
        "exec_price",
        "cost",
    ]
    state = ["price", "iv", "dealer_delta", "dealer_gamma", "dealer_shares", "gex_true"]
    assert np.isfinite(multi.series[state].to_numpy()).all()


def test_customer_buying_calls_makes_dealers_short_and_customers_pay_premium():
    flow = [{"segment": "retail_call_buyers", "rate": 0.05, "expiry_days": [5, 21]}]
    sim = Simulation(load_scenario(base(customers=flow)), 3)
    result = sim.run()
    opt = result.option_trades
    assert len(opt) > 20 and (opt["qty"] > 0).all() and opt["is_call"].all()
    lines = sim.book.lines()
    customer_lines = lines[lines["expiry"].isin(opt["expiry"].unique())]
    assert customer_lines["qty"].sum() == pytest.approx(-500 - opt["qty"].sum() + 500 * 0)
    acct = result.accounts.set_index("account")
    paid = (opt["qty"] * 100 * opt["premium"]).sum()
    assert acct.loc["retail_call_buyers0", "cash"] == pytest.approx(-paid, rel=1e-9)


def test_otc_trades_are_invisible_to_the_exchange_view():
    flow = [{"segment": "retail_call_buyers", "rate": 0.05, "otc_fraction": 1.0}]
    result = mmsim.run(base(customers=flow, dealers=[{"band": 50}]), seed=3)
    late = result.series.iloc[-5:]
    assert (late["gex_visible"] == 0.0).all() and (late["gex_true"] < 0.0).all()


def test_tighter_band_rehedges_more_often_in_smaller_clips():
    position = [{"type": "call", "strike": 100, "expiry_days": 21, "qty": -500}]
    dealers = [
        {"name": "tight", "band": 20, "positions": position},
        {"name": "wide", "band": 400, "positions": position},
    ]
    m = mmsim.run(base(dealers=dealers), seed=6).metrics
    assert m["tight.n_rehedges"] > 3 * m["wide.n_rehedges"] > 0
    clip_tight = m["tight.hedge_volume"] / m["tight.n_rehedges"]
    clip_wide = m["wide.hedge_volume"] / m["wide.n_rehedges"]
    assert clip_tight < clip_wide


def test_band_units_convert_to_shares():
    position = [{"type": "call", "strike": 100, "expiry_days": 21, "qty": -500}]
    sc = base(
        dealers=[
            {"band": 0.01, "band_unit": "delta_per_contract", "positions": position},
            {"band": 500, "band_unit": "per_notional", "positions": position},
        ]
    )
    sim = Simulation(load_scenario(sc), 1)
    assert sim.dealers[0].band_shares() == pytest.approx(0.01 * 100 * 500, rel=1e-12)
    # 500 shares per $100M of notional; notional = 500 contracts x 100 x $100 = $5M
    assert sim.dealers[1].band_shares() == pytest.approx(500 * 5e6 / 1e8, rel=1e-12)


def test_edge_target_stops_at_the_band_and_center_at_zero():
    for target, expected in (("edge", 100.0), ("center", 0.0)):
        dealer = {
            "band": 100,
            "target": target,
            "positions": [{"type": "call", "strike": 100, "expiry_days": 21, "qty": -2000}],
        }
        sim = Simulation(
            load_scenario(base(dealers=[dealer], market={"S0": 100.0, "impact": {"lam": 0.0}})), 1
        )
        sim.market.move(1.0)  # short calls: the dealer is now short delta
        assert sim.dealers[0].net_delta() < -100
        sim.dealers[0].check()
        # whole-share rounding of the order: within half a share
        assert sim.dealers[0].net_delta() == pytest.approx(-expected, abs=0.5)


def test_capacity_limits_dealer_volume_per_window():
    dealer = {
        "band": 0,
        "capacity": 300,
        "capacity_window": 60,
        "positions": [{"type": "call", "strike": 100, "expiry_days": 2, "qty": -3000}],
    }
    result = mmsim.run(base(dealers=[dealer], noise={"rate": 2.0, "mean_size": 500}), seed=2)
    dealer_trades = result.trades[result.trades["kind"] == "dealer"]
    per_window = dealer_trades["qty"].abs().groupby(dealer_trades["t"] // 60).sum()
    assert per_window.max() <= 300
    assert per_window.max() == 300  # the limit binds in this set-up


@pytest.mark.parametrize("schedule", ["twap", "front_loaded", "u_shaped"])
def test_pension_parent_fills_exactly_on_its_schedule(schedule):
    order = {
        "side": "sell",
        "shares": 100_000,
        "start": 300,
        "duration": 600,
        "child_interval": 60,
        "schedule": schedule,
    }
    result = mmsim.run(base(pensions=[order], dealers=[], noise=None), seed=1)
    kids = result.trades[result.trades["kind"] == "pension"]
    assert kids["qty"].sum() == -100_000
    assert kids["t"].min() == 300 and kids["t"].max() < 900
    weights = schedule_weights(schedule, 10)
    assert np.allclose(-kids["qty"].to_numpy() / 100_000, weights, atol=1e-5)  # 1 share


def test_pension_outside_the_run_is_rejected():
    with pytest.raises(mmsim.ScenarioError, match="pensions"):
        load_scenario(base(pensions=[{"side": "buy", "shares": 1, "start": 1e6, "duration": 10}]))


@pytest.mark.parametrize("settlement", ["cash", "physical"])
def test_expiring_lines_settle_and_the_dealer_ends_flat(settlement):
    dealer = {
        "band": 10,
        "positions": [{"type": "put", "strike": 101, "expiry_days": 0.04, "qty": 200}],
    }
    sc = base(
        dealers=[dealer],
        noise=None,
        market={"S0": 100.0, "impact": {"lam": 1e-6}, "settlement": settlement},
    )
    result = mmsim.run(sc, seed=1)
    acct = result.accounts.set_index("account")
    assert acct.loc["dealer0", "shares"] == pytest.approx(0.0, abs=10)  # within the band
    assert result.accounts[["shares", "cash"]].sum()["shares"] == 0.0
    assert acct.loc["clearing", "cash"] != 0.0  # the put was in the money


def test_vol_shift_event_moves_implied_vol():
    events = [{"at": 60, "kind": "vol_shift", "d_atm": 0.1}]
    s = mmsim.run(base(events=events), seed=1).series
    assert (s.loc[s["t"] <= 60, "iv"] == 0.2).all()
    assert np.allclose(s.loc[s["t"] > 60, "iv"], 0.3, rtol=1e-12)


def test_runaway_short_gamma_raises_instead_of_returning_nan():
    dealer = {
        "band": 0,
        "positions": [{"type": "call", "strike": 100, "expiry_days": 252, "qty": -10_000}],
    }
    with pytest.raises(mmsim.InstabilityError, match="lam \\* G"):
        mmsim.run(base(dealers=[dealer], market={"S0": 100.0, "impact": {"lam": 1e-4}}), seed=1)


def test_hedge_flow_decomposition_explains_delta_changes():
    """With a fixed book and no events, the gamma, charm and vanna parts explain the
    dealer's option-delta changes (the rest is second-order: under 0.1% of the gross);
    a vol shift shows up in the vanna part with the sign vanna x d(vol) predicts."""
    dealer = {
        "band": 0,
        "positions": [{"type": "call", "strike": 102, "expiry_days": 2, "qty": -1000}],
    }
    calm = mmsim.run(base(dealers=[dealer], noise=None), seed=3)
    s = calm.series
    parts = s[["dealer0.flow_gamma", "dealer0.flow_charm", "dealer0.flow_vanna"]].diff().abs()
    other = s["dealer0.flow_other"].diff().abs().sum()
    assert other < 1e-3 * parts.to_numpy()[1:].sum()
    assert (s["dealer0.flow_vanna"] == 0.0).all()  # no vol change, no vanna flow

    shocked = mmsim.run(
        base(dealers=[dealer], noise=None, events=[{"at": 600, "kind": "vol_shift", "d_atm": 0.1}]),
        seed=3,
    )
    v = shocked.series["dealer0.flow_vanna"]
    # short an OTM call (K > S): vanna > 0 per option, so the dealer's delta falls by
    # ~1000 x 100 x vanna x 0.1 when vol rises; hedge demand (minus delta change) > 0.
    assert v.iloc[-1] > 100.0
    assert shocked.metrics["hedge_flow_vanna"] > 0.0 == calm.metrics["hedge_flow_vanna"]
