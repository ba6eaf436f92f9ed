"""Price formation: impact models, execution prices, transient decay, ticks, the ledger."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from mmsim import InstabilityError
from mmsim.ledger import POOL, Ledger
from mmsim.market import LinearImpact, Market, SqrtImpact


def make_market(impact=None, **kw) -> Market:
    return Market(simpy.Environment(), 100.0, impact or LinearImpact(1e-4), Ledger(), **kw)


def test_linear_impact_moves_price_by_lambda_times_shares():
    m = make_market()
    acct = m.ledger.register("a")
    fill = m.submit(acct, 5_000)
    assert fill.price_after - fill.price_before == pytest.approx(0.5, rel=1e-12)  # 1e-4 x 5000
    assert m.mid == pytest.approx(100.5, rel=1e-12)


def test_depth_means_shares_per_basis_point():
    impact = LinearImpact.from_depth(20_000, S0=100.0)
    assert impact.impact(20_000, 100.0) == pytest.approx(100.0 * 1e-4, rel=1e-12)


def test_sqrt_impact_value_and_concavity():
    law = SqrtImpact(Y=0.5, daily_vol=0.02, adv=1e6)
    assert law.impact(10_000, 100.0) == pytest.approx(0.5 * 0.02 * 100.0 * 0.1, rel=1e-12)
    assert law.impact(40_000, 100.0) == pytest.approx(2 * law.impact(10_000, 100.0), rel=1e-12)
    assert law.impact(-10_000, 100.0) == -law.impact(10_000, 100.0)


def test_execution_price_is_mid_plus_half_spread_plus_half_impact():
    m = make_market(half_spread=0.02)
    acct = m.ledger.register("a")
    buy = m.submit(acct, 1_000)  # impact 0.1
    assert buy.exec_price == pytest.approx(100.0 + 0.02 + 0.05, rel=1e-12)
    assert buy.cost == pytest.approx((0.02 + 0.05) * 1_000, rel=1e-12)
    sell = m.submit(acct, -1_000)
    assert sell.exec_price == pytest.approx(buy.price_after - 0.02 - 0.05, rel=1e-12)
    assert sell.cost == pytest.approx(0.07 * 1_000, rel=1e-9)  # a seller pays too
    assert m.volume == 2_000


def test_transient_impact_halves_after_one_half_life_and_permanent_part_stays():
    m = make_market(transient_fraction=0.6, transient_half_life=30.0)
    acct = m.ledger.register("a")
    m.submit(acct, 10_000)  # impact $1: 0.4 permanent + 0.6 transient
    assert m.mid == pytest.approx(101.0, rel=1e-12)
    m.env.run(until=30.0)
    assert m.mid == pytest.approx(100.4 + 0.3, rel=1e-12)
    m.env.run(until=3_000.0)
    assert m.mid == pytest.approx(100.4, abs=1e-12)  # 100 half-lives: transient gone


def test_tick_rounds_the_published_price_not_the_mid():
    m = make_market(tick=0.05)
    acct = m.ledger.register("a")
    m.submit(acct, 330)  # +0.033
    assert m.mid == pytest.approx(100.033, rel=1e-12)
    assert m.price == pytest.approx(100.05, rel=1e-12)


def test_shares_and_cash_are_conserved_over_random_orders():
    m = make_market(half_spread=0.01, transient_fraction=0.3)
    accounts = [m.ledger.register(f"a{i}") for i in range(4)]
    rng = np.random.default_rng(3)
    for _ in range(2_000):
        m.submit(int(rng.choice(accounts)), float(rng.integers(-500, 500)))
    m.ledger.pay(accounts[0], accounts[1], 1_234.5)
    shares, cash = m.ledger.totals()
    assert shares == 0.0  # whole shares: exact
    # cash is a sum of ~4,000 products of $100 x hundreds of shares: float rounding only
    assert abs(cash) < 1e-6
    assert m.ledger.shares[POOL] == -m.ledger.shares[1:].sum()


def test_changed_wakes_waiters_with_the_new_price_and_rearms():
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
    assert m.changed is not first and not m.changed.triggered
    m.notify()  # a book change: wake without a move
    m.env.run(until=3.0)
    assert len(seen) == 2 and seen[1][1] == pytest.approx(100.01, rel=1e-12)


def test_listeners_get_every_fill():
    m = make_market()
    acct = m.ledger.register("a")
    fills = []
    m.listeners.append(fills.append)
    for q in (100, -50, 25):
        m.submit(acct, q)
    assert [f.qty for f in fills] == [100, -50, 25]


def test_news_move_changes_price_without_volume():
    m = make_market()
    m.move(-1.5)
    assert m.mid == 98.5 and m.volume == 0.0


def test_price_at_or_below_zero_is_an_instability_not_nan():
    m = make_market()
    with pytest.raises(InstabilityError, match="diverged"):
        m.move(-100.0)
    m2 = make_market()
    with pytest.raises(InstabilityError):
        m2.move(math.inf)


def test_ledger_rejects_duplicate_accounts():
    ledger = Ledger()
    ledger.register("x")
    with pytest.raises(ValueError, match="already exists"):
        ledger.register("x")
