"""Price formation (mmsim.market) and the books of shares and cash (mmsim.ledger).

Impact models, execution prices and costs, transient decay on the simpy clock, tick
rounding, conservation, the ``changed`` wake-up event, fill listeners, and the
InstabilityError a price outside (0, inf) raises.

Tolerances: ``rel=1e-12`` wherever a value comes from a handful of float operations on
~$100 prices (float64 rounding is ~1e-16 per operation, so 1e-12 is rounding only and
still catches any formula error); wider ones say why where they appear.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from mmsim import InstabilityError
from mmsim.ledger import POOL, Ledger
from mmsim.market import Fill, LinearImpact, Market, SqrtImpact


def make_market(impact=None, S0: float = 100.0, **kw) -> Market:
    """A fresh market on its own simpy clock; linear impact 1e-4 $/share by default."""
    return Market(simpy.Environment(), S0, impact or LinearImpact(1e-4), Ledger(), **kw)


# -- impact models ------------------------------------------------------------------------
def test_linear_impact_moves_price_by_lambda_times_shares():
    m = make_market()
    acct = m.ledger.register("a")
    buy = m.submit(acct, 5_000)
    # dS = lam * q = 1e-4 x 5,000 = $0.5; rel 1e-12: one float addition to 100
    assert buy.price_after - buy.price_before == pytest.approx(0.5, rel=1e-12)
    assert m.mid == pytest.approx(100.5, rel=1e-12)
    sell = m.submit(acct, -2_000)
    assert sell.price_after - sell.price_before == pytest.approx(-0.2, rel=1e-12)
    assert LinearImpact(3e-5).impact(-7_000, 55.0) == pytest.approx(-0.21, rel=1e-12)


def test_linear_impact_from_depth_moves_S0_by_one_basis_point_per_depth():
    impact = LinearImpact.from_depth(20_000, S0=250.0)
    assert impact.lam == pytest.approx(250.0 * 1e-4 / 20_000, rel=1e-12)
    m = make_market(impact, S0=250.0)
    m.submit(m.ledger.register("a"), 20_000)
    # 20,000 shares of depth per bp: the order moves S0 by exactly 1 bp (float rounding)
    assert m.mid / 250.0 - 1.0 == pytest.approx(1e-4, rel=1e-9)


def test_negative_lambda_is_rejected():
    with pytest.raises(ValueError, match="lam"):
        LinearImpact(-1e-4)


def test_sqrt_impact_value_and_concavity():
    law = SqrtImpact(Y=0.5, daily_vol=0.02, adv=1e6)
    # Y sigma_d S sqrt(q / ADV) = 0.5 x 0.02 x 100 x sqrt(0.01) = $0.1
    assert law.impact(10_000, 100.0) == pytest.approx(0.1, rel=1e-12)
    # square-root law: 4x the size, 2x the impact (exact up to sqrt rounding)
    assert law.impact(40_000, 100.0) == pytest.approx(2 * law.impact(10_000, 100.0), rel=1e-12)
    assert law.impact(-10_000, 100.0) == -law.impact(10_000, 100.0)  # odd in q
    assert law.impact(10_000, 200.0) == pytest.approx(2 * law.impact(10_000, 100.0), rel=1e-12)
    # concave: the marginal impact per share falls with size
    sizes = np.array([1e2, 1e3, 1e4, 1e5])
    per_share = np.array([law.impact(q, 100.0) / q for q in sizes])
    assert np.all(np.diff(per_share) < 0)


def test_sqrt_impact_in_a_market_moves_the_price_by_the_law():
    law = SqrtImpact(Y=0.7, daily_vol=0.012, adv=2e6)
    m = make_market(law, S0=450.0)
    fill = m.submit(m.ledger.register("a"), -80_000)
    expected = -0.7 * 0.012 * 450.0 * math.sqrt(80_000 / 2e6)
    assert fill.price_after - fill.price_before == pytest.approx(expected, rel=1e-12)


# -- execution price and cost ------------------------------------------------------------
def test_execution_price_is_mid_plus_half_spread_plus_half_impact():
    m = make_market(half_spread=0.02)
    acct = m.ledger.register("a")
    buy = m.submit(acct, 1_000)  # impact +0.1
    assert buy.exec_price == pytest.approx(100.0 + 0.02 + 0.05, rel=1e-12)
    assert buy.cost == pytest.approx((buy.exec_price - buy.price_before) * 1_000, rel=1e-12)
    assert buy.cost == pytest.approx(0.07 * 1_000, rel=1e-9)  # $0.07 x 1,000 above the mid
    sell = m.submit(acct, -1_000)  # impact -0.1
    assert sell.exec_price == pytest.approx(buy.price_after - 0.02 - 0.05, rel=1e-12)
    # a seller pays too: (exec - before) < 0 times qty < 0; rel 1e-9 (difference of ~100s)
    assert sell.cost == pytest.approx(0.07 * 1_000, rel=1e-9)
    assert m.volume == 2_000


def test_every_fill_obeys_the_execution_price_and_cost_formulas():
    law = SqrtImpact(Y=1.0, daily_vol=0.015, adv=1e6)
    m = make_market(law, half_spread=0.01, transient_fraction=0.4, transient_half_life=20.0)
    acct = m.ledger.register("a")
    rng = np.random.default_rng(11)
    for k in range(200):
        m.env.run(until=k + 1.0)
        q = float(rng.integers(-3_000, 3_000))
        if q == 0.0:
            continue
        f = m.submit(acct, q)
        impact = law.impact(q, f.price_before)
        assert f.price_after - f.price_before == pytest.approx(impact, rel=1e-9, abs=1e-12)
        # mid before + sign x half spread + half the impact; abs 1e-12 $: float rounding
        expected = f.price_before + math.copysign(0.01, q) + 0.5 * impact
        assert f.exec_price == pytest.approx(expected, abs=1e-12)
        assert f.cost == (f.exec_price - f.price_before) * q
        assert f.cost > 0.0  # taking liquidity always costs something


def test_zero_order_is_a_no_op():
    m = make_market(half_spread=0.05)
    fill = m.submit(m.ledger.register("a"), 0.0)
    assert fill.qty == 0.0 and fill.cost == 0.0 and fill.exec_price == 100.0
    assert m.mid == 100.0 and m.volume == 0.0 and m.ledger.totals() == (0.0, 0.0)


# -- transient impact --------------------------------------------------------------------
def test_transient_impact_halves_after_one_half_life_and_permanent_part_stays():
    m = make_market(transient_fraction=0.6, transient_half_life=30.0)
    acct = m.ledger.register("a")
    m.submit(acct, 10_000)  # impact $1: 0.4 permanent + 0.6 transient
    assert m.mid == pytest.approx(101.0, rel=1e-12)
    m.env.run(until=30.0)
    # exp(-ln2 / 30 x 30) = 1/2 up to exp's rounding
    assert m.mid == pytest.approx(100.4 + 0.3, rel=1e-12)
    m.env.run(until=60.0)
    assert m.mid == pytest.approx(100.4 + 0.15, rel=1e-12)
    m.env.run(until=3_000.0)
    # 100 half-lives: 0.6 x 2^-100 ~ 5e-31 left, below any float difference at $100
    assert m.mid == pytest.approx(100.4, abs=1e-12)


def test_transient_parts_of_successive_orders_decay_independently():
    m = make_market(transient_fraction=1.0, transient_half_life=10.0)
    acct = m.ledger.register("a")
    m.submit(acct, 10_000)  # +$1 transient at t=0
    m.env.run(until=10.0)
    m.submit(acct, -4_000)  # -$0.4 transient at t=10
    m.env.run(until=20.0)
    # two half-lives of the first, one of the second (propagator superposition)
    assert m.mid == pytest.approx(100.0 + 1.0 / 4 - 0.4 / 2, rel=1e-12)


def test_reading_the_price_does_not_change_the_decay():
    a = make_market(transient_fraction=0.5, transient_half_life=15.0)
    b = make_market(transient_fraction=0.5, transient_half_life=15.0)
    for m in (a, b):
        m.submit(m.ledger.register("a"), 8_000)
    for k in range(1, 40):  # a is read every second, b only at the end
        a.env.run(until=float(k))
        _ = a.mid
    b.env.run(until=39.0)
    # a's 39 multiplicative steps vs b's one: float rounding only
    assert a.mid == pytest.approx(b.mid, rel=1e-13)


# -- ticks -------------------------------------------------------------------------------
def test_tick_rounds_the_published_price_not_the_mid():
    m = make_market(tick=0.05)
    acct = m.ledger.register("a")
    m.submit(acct, 330)  # +0.033
    assert m.mid == pytest.approx(100.033, rel=1e-12)
    assert m.price == pytest.approx(100.05, rel=1e-12)
    m.submit(acct, -240)  # -0.024 -> 100.009
    assert m.mid == pytest.approx(100.009, rel=1e-12)
    assert m.price == pytest.approx(100.0, rel=1e-12)
    # the published price is on the tick grid (up to the float multiplication)
    assert m.price / 0.05 == pytest.approx(round(m.price / 0.05), abs=1e-9)


def test_no_tick_publishes_the_mid_unchanged():
    m = make_market()
    m.submit(m.ledger.register("a"), 333)
    assert m.price == m.mid == pytest.approx(100.0333, rel=1e-12)


# -- conservation ------------------------------------------------------------------------
def test_shares_and_cash_are_conserved_over_random_orders():
    m = make_market(
        SqrtImpact(Y=0.8, daily_vol=0.02, adv=5e5), half_spread=0.01, transient_fraction=0.3
    )
    accounts = [m.ledger.register(f"a{i}") for i in range(4)]
    rng = np.random.default_rng(3)
    gross = 0.0
    for k in range(2_000):
        if k % 50 == 0:
            m.env.run(until=k / 10 + 1.0)
        q = float(rng.integers(-500, 500))
        m.submit(int(rng.choice(accounts)), q)
        gross += abs(q)
    m.ledger.pay(accounts[0], accounts[1], 1_234.5)
    m.ledger.endow(accounts[2], 77.0, 99.5)
    shares, cash = m.ledger.totals()
    assert shares == 0.0  # whole shares: sums of integers are exact in float64
    # cash: ~4,000 products of ~$100 x hundreds of shares (~1e5 each); float rounding
    # of the running sums is ~1e-16 x 1e5 x sqrt(4e3) ~ 1e-9: 1e-6 $ leaves room
    assert abs(cash) < 1e-6
    assert m.ledger.shares[POOL] == -m.ledger.shares[1:].sum()
    assert m.volume == gross  # whole shares: exact


def test_ledger_trade_moves_shares_and_cash_between_two_accounts():
    ledger = Ledger()
    a, b = ledger.register("a"), ledger.register("b")
    ledger.trade_shares(a, 10.0, 50.0, b)
    assert (ledger.shares_of(a), ledger.shares_of(b)) == (10.0, -10.0)
    assert ledger.cash[a] == -500.0 and ledger.cash[b] == 500.0
    assert ledger.shares_of(POOL) == 0.0 and ledger.totals() == (0.0, 0.0)


def test_ledger_grows_past_its_initial_capacity():
    ledger = Ledger()
    ids = [ledger.register(f"x{i}") for i in range(40)]
    assert ids == list(range(1, 41)) and ledger.names[0] == "pool"
    ledger.trade_shares(ids[-1], 5.0, 10.0)
    assert ledger.shares.size == 41 and ledger.shares_of(ids[-1]) == 5.0
    assert ledger.totals() == (0.0, 0.0)


def test_ledger_rejects_duplicate_account_names():
    ledger = Ledger()
    ledger.register("x")
    with pytest.raises(ValueError, match="already exists"):
        ledger.register("x")
    with pytest.raises(ValueError):
        ledger.register("pool")  # the liquidity pool's name is taken from the start


# -- waking agents -------------------------------------------------------------------------
def test_changed_wakes_a_waiting_process_with_the_new_mid_and_rearms():
    m = make_market()
    acct = m.ledger.register("a")
    seen = []

    def waiter(env):
        while True:
            value = yield m.changed
            seen.append((env.now, value))

    m.env.process(waiter(m.env))
    m.env.run(until=1.0)
    first = m.changed
    m.submit(acct, 100)
    m.env.run(until=2.0)
    assert seen == [(1.0, pytest.approx(100.01, rel=1e-12))]
    assert m.changed is not first and not m.changed.triggered  # a fresh event is armed
    m.move(-0.5)
    m.env.run(until=3.0)
    assert seen[1] == (2.0, pytest.approx(99.51, rel=1e-12))


def test_notify_wakes_waiters_without_a_price_move():
    m = make_market()
    seen = []

    def waiter(env):
        seen.append((yield m.changed))

    m.env.process(waiter(m.env))
    m.env.process(waiter(m.env))
    m.env.run(until=1.0)
    m.notify()  # e.g. a book change
    m.env.run(until=2.0)
    assert seen == [100.0, 100.0] and m.mid == 100.0  # both waiters, unchanged price


def test_listeners_get_every_fill():
    m = make_market()
    acct = m.ledger.register("a")
    fills: list[Fill] = []
    m.listeners.append(fills.append)
    returned = [m.submit(acct, q) for q in (100, -50, 25)]
    assert fills == returned and [f.qty for f in fills] == [100, -50, 25]
    m.move(1.0)  # a news move is not a fill
    assert len(fills) == 3


def test_move_changes_price_without_volume_or_ledger_entries():
    m = make_market()
    m.ledger.register("a")
    m.move(-1.5)
    assert m.mid == 98.5 and m.volume == 0.0
    assert not m.ledger.shares.any() and not m.ledger.cash.any()
    m.move(0.0)
    assert m.mid == 98.5


# -- instability ------------------------------------------------------------------------
@pytest.mark.parametrize("dS", [-100.0, -250.0, -math.inf, math.inf, math.nan])
def test_a_move_out_of_the_positive_reals_raises_instability(dS):
    """The message names what moved the price, never blames hedging for news."""
    m = make_market()
    with pytest.raises(InstabilityError, match=r"left \(0, inf\).*news") as err:
        m.move(dS, cause="news")
    assert "hedg" not in str(err.value)


def test_an_order_that_pushes_the_price_below_zero_raises_instability():
    m = make_market(LinearImpact(1e-3))
    with pytest.raises(InstabilityError, match=r"order of -200,000 shares by 'a'"):
        m.submit(m.ledger.register("a"), -200_000)  # -$200 from $100


@pytest.mark.parametrize("model", [LinearImpact(1e-4), SqrtImpact(0.5, 0.02, 1e6)])
@pytest.mark.parametrize("transient", [0.0, 0.6])
@pytest.mark.parametrize("qty", [-5_000.0, 1.0, 30_000.0])
def test_preview_is_the_mid_right_after_the_order_and_changes_nothing(model, transient, qty):
    """``preview(q)`` equals the mid ``submit(q)`` leaves at that instant ($, to 1e-12),
    for every impact model, and leaves price, volume and ledger untouched."""
    m = make_market(model, transient_fraction=transient)
    account = m.ledger.register("a")
    expected = m.preview(qty)
    assert m.mid == 100.0 and m.volume == 0.0 and not m.ledger.shares.any()
    m.submit(account, qty)
    assert m.mid == pytest.approx(expected, rel=1e-12, abs=0.0)
    assert m.preview(0.0) == m.mid
