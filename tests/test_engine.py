"""The engine end to end, through ``mmsim.run`` and ``mmsim.engine.Simulation``.

Reproducibility and per-agent random streams, conservation of shares and cash, the
Result contract and its save/load round trip, dealers (bands, band units, targets,
capacity), customer option flow, divergence, and what the series may hold.
Runs are cut to a few minutes of trading time so the whole file takes seconds.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmsim
from mmsim.agents.pension import schedule_weights
from mmsim.engine import DEALER_COLUMNS, LEVEL_COLUMNS, STATE_COLUMNS, Simulation
from mmsim.greeks import bsm_greeks
from mmsim.metrics import BOOKING_KINDS
from mmsim.scenario import load_scenario

MULTI = "scenarios/multi_dealer_bands.yaml"
SHORT = {"clock.days": 0.05, "record.every": 10.0, "record.levels_every": 120.0}
"""Cuts a shipped scenario to 1,170 s of trading time."""
YEAR_SECONDS = 252 * 23_400.0


def base(**extra) -> dict:
    """A small one-dealer scenario (short 500 21-day ATM calls, lam * G ~ -0.035);
    ``extra`` replaces top-level blocks."""
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


def one_year_calls(qty: float, band: float = 0.0, lam: float = 1e-4) -> dict:
    """A dealer holding ``qty`` one-year ATM calls; share gamma ~1.985 per contract, so
    ``lam * G ~ lam * qty * 1.985``."""
    dealer = {
        "band": band,
        "positions": [{"type": "call", "strike": 100, "expiry_days": 252, "qty": qty}],
    }
    return base(dealers=[dealer], market={"S0": 100.0, "impact": {"lam": lam}})


def run_guarded(sim: Simulation, max_same_instant: int = 200_000) -> mmsim.Result:
    """``sim.run()``, but a process that loops with zero delays fails the test instead of
    hanging it: more than ``max_same_instant`` events at one instant means the clock has
    stopped (a legitimate same-instant hedging cascade stops at MAX_CASCADE = 20,000)."""
    sim.advance(0.0)  # registers the processes, runs nothing
    env, end = sim.env, sim.scenario.clock.duration
    last, same = None, 0
    while env.peek() < end:
        t = env.peek()
        same = same + 1 if t == last else 0
        last = t
        assert same <= max_same_instant, f"the clock stopped at t={t:g} s"
        env.step()
    return sim.run()  # the closing instant and the Result


@pytest.fixture(scope="module")
def multi():
    """scenarios/multi_dealer_bands.yaml (3 dealers, 3 customer segments, noise), shortened."""
    return mmsim.run(MULTI, seed=5, overrides=SHORT)


# -- reproducibility and random streams ----------------------------------------------------
def test_same_seed_gives_identical_results_and_different_seeds_give_different_prices():
    a, b = mmsim.run(base(), seed=1), mmsim.run(base(), seed=1)
    assert a.equals(b)
    assert a.series.equals(b.series) and a.trades.equals(b.trades)
    assert a.metrics == b.metrics
    c = mmsim.run(base(), seed=2)
    assert not c.equals(a)
    assert not np.array_equal(a.series["price"], c.series["price"])


def test_run_in_chunks_equals_one_run():
    """``advance`` in many steps (the progress bar's path) changes nothing."""
    sc = load_scenario(MULTI, overrides=SHORT)
    assert Simulation(sc, 5).run().equals(Simulation(sc, 5).run(progress=True))


def test_no_seed_draws_fresh_entropy_that_reproduces_the_run():
    sc = load_scenario(base())  # the scenario has no seed either
    one, two = Simulation(sc, seed=None), Simulation(sc, seed=None)
    assert isinstance(one.entropy, int) and one.entropy != two.entropy
    fresh = mmsim.run(sc)
    assert fresh.seed is None and isinstance(fresh.entropy, int)
    again = mmsim.run(sc, seed=fresh.entropy)
    assert again.equals(fresh)  # equals compares entropy, tables, metrics, scenario
    assert again.series.equals(fresh.series) and again.trades.equals(fresh.trades)


def test_the_scenario_seed_is_the_default_seed():
    by_scenario = mmsim.run(base(seed=9))
    by_argument = mmsim.run(base(), seed=9)
    assert by_scenario.seed == 9
    assert by_scenario.series.equals(by_argument.series)


def test_adding_a_customer_segment_leaves_the_news_draws_unchanged():
    """News draws from its own stream: the price path up to the first customer trade is
    identical with and without an extra customer segment (a shared generator would shift
    every news draw from t=0 on)."""
    plain = mmsim.run(base(noise=None), seed=4)
    flow = [{"segment": "retail_call_buyers", "rate": 0.01, "expiry_days": [21]}]
    more = mmsim.run(base(noise=None, customers=flow), seed=4)
    first = more.option_trades["t"].min()
    before = plain.series["t"] < first
    assert before.sum() > 10  # the check covers more than a handful of samples
    assert np.array_equal(plain.series["price"][before], more.series["price"][before])
    assert not np.array_equal(plain.series["price"], more.series["price"])  # flow matters


def test_noise_orders_come_from_their_own_stream():
    """Noise arrival times and sizes never depend on the price, so adding a customer
    segment leaves every noise order of the run unchanged, and removing the noise leaves
    every customer arrival time unchanged."""
    flow = [{"segment": "put_hedgers", "rate": 0.05, "expiry_days": [21]}]
    plain, more = mmsim.run(base(), seed=8), mmsim.run(base(customers=flow), seed=8)
    cols = ["t", "qty"]
    noise_plain = plain.trades.loc[plain.trades["kind"] == "noise", cols].reset_index(drop=True)
    noise_more = more.trades.loc[more.trades["kind"] == "noise", cols].reset_index(drop=True)
    assert len(noise_plain) > 100
    pd.testing.assert_frame_equal(noise_plain, noise_more)
    quiet = mmsim.run(base(customers=flow, noise=None), seed=8)
    assert len(quiet.option_trades) > 20
    assert np.array_equal(quiet.option_trades["t"], more.option_trades["t"])


# -- conservation ------------------------------------------------------------------------
def test_shares_and_cash_are_conserved_across_all_agents_and_the_pool(multi):
    """Three dealers, three customer segments, noise traders, the opening and clearing
    accounts and the pool."""
    assert {"pool", "tight", "normal", "wide", "noise"} <= set(multi.accounts["account"])
    assert len(multi.option_trades) > 5 and (multi.trades["kind"] == "dealer").any()
    totals = multi.accounts[["shares", "cash"]].sum()
    assert totals["shares"] == 0.0  # whole shares and whole contracts: exact in float64
    # cash: ~1e8 $ of gross flow summed in float64 (eps 1e-16 x 1e8 x few hundred terms)
    assert abs(totals["cash"]) < 1e-4


# -- save / load -------------------------------------------------------------------------
def test_result_round_trips_through_save_and_load(multi, tmp_path):
    path = multi.save(tmp_path / "run")
    loaded = mmsim.load_result(path)
    assert loaded.equals(multi)
    assert loaded.metrics == multi.metrics and loaded.scenario == multi.scenario
    assert (loaded.seed, loaded.entropy) == (multi.seed, multi.entropy)
    for name in ("series", "trades", "option_trades", "episodes", "accounts"):
        pd.testing.assert_frame_equal(getattr(loaded, name), getattr(multi, name))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging dirs left


def test_saving_over_an_existing_result_replaces_it(multi, tmp_path):
    other = mmsim.run(base(), seed=1)
    path = other.save(tmp_path / "run")
    (path / "stray.txt").write_text("left from before")
    multi.save(path)
    assert mmsim.load_result(path).equals(multi)
    assert (path / "stray.txt").read_text() == "left from before"  # not mmsim's: kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_load_result_of_a_non_result_directory_raises(tmp_path):
    with pytest.raises(mmsim.ResultError, match="not a result directory"):
        mmsim.load_result(tmp_path)


# -- the Result contract -----------------------------------------------------------------
def test_result_has_the_documented_tables_and_metrics(multi):
    sc = multi.scenario
    assert {"t", "price"} <= set(multi.series.columns)
    t = multi.series["t"].to_numpy()
    # the clock in seconds: a sample every record.every s from 0 to the end, inclusive
    # (rel 1e-12: the grid is k x every in float64, the end days x session_seconds)
    assert t[0] == 0.0 and np.allclose(np.diff(t), sc.record.every, rtol=1e-12)
    assert t[-1] == pytest.approx(sc.clock.duration, rel=1e-12)
    for key in ("realized_vol", "hedge_volume", "n_rehedges"):
        assert isinstance(multi.metrics[key], float)
    assert all(isinstance(v, float) for v in multi.metrics.values())
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
    for name in sc.dealer_names():
        assert {f"{name}.{c}" for c in DEALER_COLUMNS} <= set(multi.series.columns)


def test_hedge_metrics_agree_with_the_trade_log(multi):
    dealer = multi.trades[multi.trades["kind"] == "dealer"]
    m = multi.metrics
    assert m["n_rehedges"] == len(dealer) > 0
    assert m["hedge_volume"] == dealer["qty"].abs().sum()  # whole shares: exact
    for name in multi.scenario.dealer_names():
        mine = dealer[dealer["agent"] == name]
        assert m[f"{name}.n_rehedges"] == len(mine)
        assert m[f"{name}.hedge_volume"] == mine["qty"].abs().sum()
    # the last sample (the close) sees every trade
    assert multi.series["hedge_volume"].iloc[-1] == m["hedge_volume"]
    # market orders of everyone else (opening hedges, settlements, deliveries are bookings)
    others = multi.trades[~multi.trades["kind"].isin(["dealer", *BOOKING_KINDS])]
    assert m["exogenous_volume"] == others["qty"].abs().sum()


def test_dealer_pnl_starts_at_zero(multi):
    """Options open at BSM value and the hedge at S0 without impact: nothing is made or
    lost before the first event; 1e-6 $ allows float rounding of ~1e7 $ cash balances."""
    first = multi.series.iloc[0]
    for name in multi.scenario.dealer_names():
        assert first[f"{name}.pnl"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("qty", [-700, 700])
def test_a_price_triggered_dealer_is_inside_its_band_at_every_sample(qty):
    """With latency 0 a dealer rehedges in the same instant as the move (cascading until
    inside the band), and the recorder samples at the start of an instant, after every
    earlier event. So each sample sees the dealer inside its band; the only drift since
    its last check is time decay (charm) over at most one news tick (dt = 1 s), bounded
    below from the book's charm at the extreme prices of the run."""
    band = 50.0
    dealer = {
        "band": band,
        "positions": [{"type": "call", "strike": 100, "expiry_days": 21, "qty": qty}],
    }
    # lam * G ~ 5e-5 x 700 x 6.9 ~ 0.24 in size: a real cascade after every move
    sc = base(
        dealers=[dealer],
        market={"S0": 100.0, "impact": {"lam": 5e-5}, "half_spread": 0.01},
        record={"every": 1.0, "levels_every": 600.0},
    )
    result = mmsim.run(sc, seed=3)
    s = result.series
    assert result.metrics["n_rehedges"] > 100
    prices = np.linspace(s["price"].min(), s["price"].max(), 50)
    charm = bsm_greeks(prices, 100.0, 21 / 252, 0.2).charm  # per share, per year
    tol = np.abs(qty * 100 * charm).max() * 1.0 / YEAR_SECONDS  # shares over 1 s
    assert tol < 0.01  # the tolerance is small next to the band
    assert s["dealer0.delta"].abs().max() <= band + tol
    assert s["dealer_delta"].equals(s["dealer0.delta"])  # one dealer: aggregate = its own


# -- customer option flow ---------------------------------------------------------------
def test_retail_call_buyers_make_the_dealer_short_calls_and_pay_premium():
    flow = [{"segment": "retail_call_buyers", "rate": 0.05, "expiry_days": [5, 21]}]
    dealer = {  # a one-year line keeps the customers' lines apart in the book
        "band": 50,
        "positions": [{"type": "call", "strike": 100, "expiry_days": 252, "qty": 100}],
    }
    sim = Simulation(load_scenario(base(customers=flow, dealers=[dealer])), 3)
    result = sim.run()
    opt = result.option_trades
    assert len(opt) > 20 and (opt["qty"] > 0).all() and opt["is_call"].all()
    lines = sim.book.lines()
    customer = lines[lines["expiry"] < 252 * 23_400]
    assert (customer["qty"] < 0).all() and customer["is_call"].all()
    # each option trade is booked as the dealer's opposite line
    keys = ["holder", "strike", "expiry", "is_call", "visible"]
    booked = -opt.rename(columns={"dealer": "holder"}).groupby(keys)["qty"].sum()
    pd.testing.assert_series_equal(
        booked.sort_index(), customer.set_index(keys)["qty"].sort_index(), check_names=False
    )
    acct = result.accounts.set_index("account")
    paid = (opt["qty"] * 100 * opt["premium"]).sum()
    assert acct.loc["retail_call_buyers0", "cash"] < 0.0
    # the same premiums summed in another order: rounding only
    assert acct.loc["retail_call_buyers0", "cash"] == pytest.approx(-paid, rel=1e-9)
    assert acct.loc["retail_call_buyers0", "shares"] == 0.0


def test_otc_trades_are_invisible_to_the_exchange_view():
    flow = [{"segment": "retail_call_buyers", "rate": 0.05, "otc_fraction": 1.0}]
    result = mmsim.run(base(customers=flow, dealers=[{"band": 50}]), seed=3)
    assert len(result.option_trades) > 20 and not result.option_trades["visible"].any()
    late = result.series.iloc[-5:]
    assert (late["gex_visible"] == 0.0).all() and (late["gex_true"] < 0.0).all()


# -- dealers -----------------------------------------------------------------------------
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
    """schema.Dealer.band_unit: delta_per_contract = band x multiplier x gross contracts;
    per_notional = shares per $100M of gross notional (contracts x multiplier x spot)."""
    sc = base(
        dealers=[
            {
                "band": 0.01,
                "band_unit": "delta_per_contract",
                "positions": [{"type": "call", "strike": 100, "expiry_days": 21, "qty": -500}],
            },
            {
                "band": 500,
                "band_unit": "per_notional",
                "positions": [
                    {"type": "call", "strike": 100, "expiry_days": 21, "qty": 600},
                    {"type": "put", "strike": 95, "expiry_days": 21, "qty": -400},
                ],
            },
            {"band": 123, "positions": []},
        ]
    )
    sim = Simulation(load_scenario(sc), 1)
    first, second, third = sim.dealers
    # rel 1e-12 below: a product of three or four floats, rounding only
    assert first.band_shares() == pytest.approx(0.01 * 100 * 500, rel=1e-12)
    # gross 1,000 contracts x 100 x $100 = $10M of notional: 500 x 10M / 100M = 50 shares
    assert second.band_shares() == pytest.approx(500 * 1e7 / 1e8, rel=1e-12)
    assert third.band_shares() == 123.0
    sim.market.move(10.0)  # notional follows spot
    assert second.band_shares() == pytest.approx(500 * 1.1e7 / 1e8, rel=1e-12)
    sim.book.add(110.0, 21 * 23_400.0, True, -300, 0)  # a new line widens the band
    assert first.band_shares() == pytest.approx(0.01 * 100 * 800, rel=1e-12)


@pytest.mark.parametrize(("target", "expected"), [("edge", 100.0), ("center", 0.0)])
def test_target_edge_stops_at_the_band_and_center_at_zero(target, expected):
    dealer = {
        "band": 100,
        "target": target,
        "positions": [{"type": "call", "strike": 100, "expiry_days": 21, "qty": -2000}],
    }
    # lam = 0: the hedge does not move the price, so one check lands on its goal
    sc = base(dealers=[dealer], market={"S0": 100.0, "impact": {"lam": 0.0}})
    sim = Simulation(load_scenario(sc), 1)
    d = sim.dealers[0]
    assert abs(d.net_delta()) <= 0.5  # starts hedged (whole shares)
    sim.market.move(1.0)  # short calls: the dealer is now short delta
    assert d.net_delta() < -100
    traded = d.check()
    assert traded > 0 and d.n_rehedges == 1
    # whole shares rounded toward the goal, never past it: within one share, short side
    assert -expected - 1.0 < d.net_delta() <= -expected
    assert d.check() == 0.0  # inside the band now: no further trade


def test_capacity_caps_dealer_volume_in_every_window():
    cap = 300
    dealer = {
        "band": 0,
        "capacity": cap,
        "capacity_window": 60,
        "positions": [{"type": "call", "strike": 100, "expiry_days": 2, "qty": -3000}],
    }
    result = mmsim.run(base(dealers=[dealer], noise={"rate": 2.0, "mean_size": 500}), seed=2)
    dealer_trades = result.trades[result.trades["kind"] == "dealer"]
    # windows are [k x 60, (k + 1) x 60) s on the clock
    per_window = dealer_trades["qty"].abs().groupby(dealer_trades["t"] // 60).sum()
    assert per_window.max() <= cap
    assert per_window.max() == cap  # the limit binds in this set-up, so the check bites


def test_a_capacity_limited_dealer_lets_the_clock_advance():
    dealer = {
        "band": 100,
        "capacity": 50,
        "capacity_window": 60,
        "positions": [{"type": "call", "strike": 100, "expiry_days": 21, "qty": -2000}],
    }
    sc = base(dealers=[dealer], news=None, noise=None, market={"S0": 100.0, "impact": {"lam": 0}})
    sim = Simulation(load_scenario(sc), 1)
    sim.advance(1.0)
    sim.market.move(1.0)  # net delta ~ -13,800 shares: far outside the band
    sim.advance(2.0)
    d = sim.dealers[0]
    assert d.hedge_volume == 50 and d.capacity_exhausted()  # the capacity binds
    sim.market.move(-1.0)  # back inside the band: nothing left to do
    sim.advance(3.0)
    assert abs(d.net_delta()) <= 100
    run_guarded(sim)  # the window ends at t = 60 s; the run must go on to the close


# -- divergence --------------------------------------------------------------------------
@pytest.mark.parametrize("qty", [-10_000, -6_000, -30_000])
def test_runaway_short_gamma_raises_instability_instead_of_returning_nan(qty):
    """lam * G = 1e-4 x qty x 1.985: -1.99, -1.19, -5.95, all <= -1."""
    sim = Simulation(load_scenario(one_year_calls(qty)), 1)
    assert sim.initial_share_gamma() * 1e-4 <= -1.0
    with pytest.raises(mmsim.InstabilityError, match=r"lam \* G"):
        sim.run()


def test_stable_short_gamma_runs_with_finite_prices():
    sc = one_year_calls(-2_519)
    sim = Simulation(load_scenario(sc), 1)
    # 1e-4 x -2,519 x 1.985 = -0.50 (to 3 digits)
    assert sim.initial_share_gamma() * 1e-4 == pytest.approx(-0.5, abs=1e-3)
    result = sim.run()
    assert np.isfinite(result.series["price"]).all() and (result.series["price"] > 0).all()
    assert result.metrics["n_rehedges"] > 100 and math.isfinite(result.metrics["realized_vol"])


def test_stable_long_gamma_with_a_zero_band_runs():
    sc = one_year_calls(3_023, band=0.0)  # lam * G = +0.60: dampening, stable
    result = mmsim.run(sc, seed=1)
    assert np.isfinite(result.series["price"]).all()


def test_a_long_gamma_rehedge_cascade_settles():
    sc = one_year_calls(3_023, band=0.0)
    sc["news"], sc["noise"] = None, None
    sim = Simulation(load_scenario(sc), 1)
    d = sim.dealers[0]
    sim.market.move(1.6 / 6_000)  # G ~ 6,000 shares/$: +1.6 shares of net delta
    # a stable cascade shrinks by lam * G = 0.6 a round: settled well within 50 rounds
    rounds = 0
    while d.check() != 0.0 and rounds < 50:
        rounds += 1
    assert abs(d.net_delta()) <= 1.0  # MIN_ORDER: under one share off is flat


# -- what the series may hold --------------------------------------------------------------
def test_state_and_dealer_columns_are_never_nan(multi):
    names = multi.scenario.dealer_names()
    cols = [*STATE_COLUMNS, *(f"{n}.{c}" for n in names for c in DEALER_COLUMNS)]
    assert np.isfinite(multi.series[cols].to_numpy()).all()


def test_flip_and_walls_are_nan_only_when_undefined():
    """Re-run the same seed step by step to every level sample and ask the book: each
    level column is NaN exactly when the book has no such level at that state."""
    sc = load_scenario(MULTI, overrides=SHORT)
    series = Simulation(sc, 5).run().series.set_index("t")
    stride = round(sc.record.levels_every / sc.record.every)
    sim = Simulation(sc, 5)
    n_none = 0
    for t in series.index[::stride]:
        sim.advance(t)
        S, book, vol = sim.market.mid, sim.book, sim.vol
        row = series.loc[t]
        assert row["price"] == sim.market.price  # the same state as the sample
        cw, pw = book.walls(S, t, vol, "true")
        cwv, pwv = book.walls(S, t, vol, "visible")
        expected = {
            "flip_true": book.flip(S, t, vol, "true"),
            "flip_visible": book.flip(S, t, vol, "visible"),
            "call_wall": cw,
            "put_wall": pw,
            "call_wall_visible": cwv,
            "put_wall_visible": pwv,
        }
        for col, level in expected.items():
            if level is None:
                n_none += 1
                assert math.isnan(row[col]), (t, col)
            else:
                assert row[col] == level, (t, col)
    assert n_none > 0  # the true flip is undefined part of the time in this run


def test_levels_without_puts_or_a_crossing_are_nan_and_the_rest_finite():
    """Short calls only: no put wall; GEX < 0 at every spot, so no flip; but the call
    wall and every state column are defined."""
    result = mmsim.run(one_year_calls(-2_519, band=50.0), seed=1)
    s = result.series
    for col in ("flip_true", "flip_visible", "put_wall", "put_wall_visible"):
        assert s[col].isna().all(), col
    for col in ("call_wall", "call_wall_visible", "call_wall_gex_true"):
        assert np.isfinite(s[col]).all(), col
    assert (s["call_wall"] == 100.0).all()
    state = [*STATE_COLUMNS, *(f"dealer0.{c}" for c in DEALER_COLUMNS)]
    assert np.isfinite(s[state].to_numpy()).all()
    assert set(LEVEL_COLUMNS) <= set(s.columns)


# -- every shipped scenario ------------------------------------------------------------
SCENARIOS = sorted(Path(__file__).resolve().parents[1].glob("scenarios/*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_shipped_scenario_runs_shortened_with_finite_state(path):
    """Each scenario, cut to 0.05 day (events and pensions past the cut dropped) with a
    fixed seed, runs to the end with a positive price and finite state columns."""
    scenario = load_scenario(path)
    days = min(scenario.clock.days, 0.05)
    end = days * scenario.clock.session_seconds
    dump = scenario.model_dump()
    overrides = {
        "clock.days": days,
        "record.every": 30.0,
        "events": [e for e in dump["events"] if e["at"] <= end],
        "pensions": [p for p in dump["pensions"] if p["start"] + p["duration"] <= end],
    }
    result = run_guarded(Simulation(load_scenario(scenario, overrides=overrides), 1))
    s = result.series
    assert len(s) > 2 and s["t"].iloc[-1] == pytest.approx(end, rel=1e-12)  # rounding only
    assert (s["price"] > 0).all() and np.isfinite(s[STATE_COLUMNS].to_numpy()).all()


# -- other agents --------------------------------------------------------------------------
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
    # children are whole shares: each weight within one share of 100,000 (1e-5)
    assert np.allclose(-kids["qty"].to_numpy() / 100_000, weights, atol=1e-5)


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
    assert np.allclose(s.loc[s["t"] > 60, "iv"], 0.3, rtol=1e-12)  # 0.2 + 0.1 in floats


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
    assert other < 1e-3 * parts.to_numpy()[1:].sum()  # trapezoid error is O(dS^3)
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
