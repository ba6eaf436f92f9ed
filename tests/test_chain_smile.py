"""Customer option flow on a chain-started run trades at the chain's smile (issue 12).

The run's vol model is :class:`mmsim.vol.Smile` (surface + per-expiry offsets from the
chain, interpolated in log-strike): the customer's premium is the dealer's own model value
of the line it books (plus the edge), so the dealer's P&L does not jump at a trade.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mmsim
from mmsim.book_kernels import line_sigma
from mmsim.greeks import bsm_scalar
from mmsim.vol import Smile, VolSurface

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios/spx_2022-02-07.yaml"
EDGE = {"call_buy": 0.05, "put_buy": 0.10, "put_sell": 0.07, "call_sell": 0.0}
# expiry_days 1, 3, 5, 10 are listed in the 2022-02-04 chain (Mon 7, Wed 9, Fri 11, Fri 18
# Feb); 2 and 4 (Tue, Thu) are not: they take the nearest listed expiry's smile.
CUSTOMERS = [
    {"segment": "retail_call_buyers", "rate": 0.15, "strike_step": 5, "expiry_days": [1, 3],
     "size": {"mean": 20}, "edge": EDGE["call_buy"]},
    {"segment": "put_hedgers", "rate": 0.15, "strike_step": 25, "expiry_days": [1, 10],
     "size": {"mean": 50}, "edge": EDGE["put_buy"], "otc_fraction": 0.3},
    {"segment": "put_sellers", "rate": 0.1, "strike_step": 1, "expiry_days": [2, 4],
     "size": {"mean": 20}, "edge": EDGE["put_sell"]},
    {"segment": "custom", "type": "call", "side": "sell", "moneyness": [-0.02, 0.04],
     "rate": 0.1, "strike_step": 7, "expiry_days": [5], "size": {"mean": 10},
     "edge": EDGE["call_sell"]},
]  # fmt: skip
HORIZON = 900.0  # s of trading time


def _instrumented_run(seed: int, smile: bool = True) -> tuple[mmsim.engine.Simulation, list]:
    """A 15-minute run from a +-8%, 10-session slice of the SPX chain with four customer
    segments; every trade is recorded with the dealer's book just before and after it."""
    over = {
        "clock.days": HORIZON / 23_400.0,
        "pensions": [],
        "customers": CUSTOMERS,
        "book.expiries_within": 10,
        "book.moneyness": [-0.08, 0.08],
        "record.levels_every": 600,
    }
    sim = mmsim.engine.Simulation(mmsim.load_scenario(SCENARIO, overrides=over), seed=seed)
    assert sim.smile is not None and len(sim.smile) == len(sim.chain_lines)
    book, ledger, vol = sim.book, sim.ledger, sim.vol
    trades: list[dict] = []
    for c in sim.customers:
        if not smile:
            c.smile = None  # the flat-surface pricing this fix replaces
        execute = c.execute

        def wrapped(tr, execute=execute, c=c):
            S, t = sim.market.mid, sim.env.now
            acct = sim.dealers[tr.dealer].account
            key = (tr.strike, tr.expiry, tr.is_call, tr.visible)
            lines = book.lines(iv_offset=True)
            old = lines[
                (lines.holder == tr.dealer) & (lines.strike == tr.strike)
                & (lines.expiry == tr.expiry) & (lines.is_call == tr.is_call)
                & (lines.visible == tr.visible) & (lines.multiplier == c.config.multiplier)
            ]  # fmt: skip
            before = ledger.cash[acct] + book.value(S, t, vol)[tr.dealer]
            execute(tr)
            after = ledger.cash[acct] + book.value(S, t, vol)[tr.dealer]
            lines = book.lines(iv_offset=True)
            new = lines.loc[old.index[0]] if len(old) else lines.iloc[-1]
            assert (new.strike, new.expiry, new.is_call, new.visible) == key
            trades.append(
                {"trade": tr, "S": S, "t": t, "jump": after - before, "edge": c.config.edge,
                 "mult": c.config.multiplier, "existing": len(old) > 0,
                 "old_offset": float(old.iv_offset.iloc[0]) if len(old) else None,
                 "offset": float(new.iv_offset)}
            )  # fmt: skip

        c.execute = wrapped
    sim.run()
    return sim, trades


@pytest.fixture(scope="module")
def runs():
    return {seed: _instrumented_run(seed) for seed in (3, 11)}


def test_premium_is_the_books_value_of_the_line(runs):
    """(a) Every customer trade's premium = BSM value of the line it books at the book's vol
    (surface + the line's iv_offset, the kernels' own sigma) at that instant, +- the edge,
    within 1e-9 $/share; on 2 seeds, 15 min, chain lines, new strikes and unlisted expiries."""
    for seed, (sim, trades) in runs.items():
        assert len(trades) > 200, f"seed {seed}: {len(trades)} trades in {HORIZON} s"
        level, skew, floor = sim.vol.params()
        worst = 0.0
        for rec in trades:
            tr = rec["trade"]
            sigma = line_sigma(tr.strike, rec["S"], level, skew, floor, rec["offset"])
            years = (tr.expiry - rec["t"]) / sim.book.year_seconds
            value = bsm_scalar(rec["S"], tr.strike, years, sigma, sim.book.r, sim.book.q,
                               tr.is_call)[0]  # fmt: skip
            want = max(value + np.sign(tr.qty) * rec["edge"], 0.0)
            worst = max(worst, abs(tr.premium - want))
        assert worst <= 1e-9, f"seed {seed}: premium vs line value off by {worst} $/share"


def test_trade_on_a_chain_line_keeps_its_offset(runs):
    """(b) A trade landing on an existing line (same holder, strike, expiry, type,
    visibility, multiplier) leaves its iv_offset unchanged, bit for bit; some of those lines
    carry a real smile offset (not 0), and some trades open new lines."""
    for seed, (_, trades) in runs.items():
        on = [r for r in trades if r["existing"]]
        assert len(on) > 20 and len(on) < len(trades), f"seed {seed}: {len(on)} on lines"
        assert all(r["offset"] == r["old_offset"] for r in on), f"seed {seed}: offset moved"
        assert max(abs(r["old_offset"]) for r in on) > 0.005, "chain offsets are non-trivial"


def test_new_strike_between_chain_strikes_gets_offset_between_theirs(runs):
    """(c) A trade at a strike the chain does not list gets, in a listed expiry, an offset
    between those of the neighbouring chain strikes of that expiry (and, in an unlisted
    expiry, the offset the nearest listed expiry's smile gives)."""
    sim, trades = runs[3]
    lines = sim.chain_lines
    secs = sim.scenario.clock.session_seconds
    checked = 0
    for rec in trades:
        tr = rec["trade"]
        listed = sim.smile.listed(tr.expiry)
        smile = lines[lines.sessions * secs == listed]
        ks = np.sort(smile.strike.unique())
        if tr.strike in ks or not ks[0] < tr.strike < ks[-1]:
            continue
        i = np.searchsorted(ks, tr.strike)
        off = {k: sim.smile.offset(k, listed, tr.is_call) for k in (ks[i - 1], ks[i])}
        lo, hi = sorted(off.values())
        assert lo - 1e-15 <= rec["offset"] <= hi + 1e-15, (
            f"K={tr.strike} between {ks[i - 1]} and {ks[i]}: {rec['offset']} not in [{lo}, {hi}]"
        )
        checked += 1
    unlisted = [r for r in trades if r["trade"].expiry / secs in (2.0, 4.0)]
    assert checked > 50 and unlisted, f"{checked} new strikes, {len(unlisted)} unlisted"


def test_smile_interpolates_in_log_strike_flat_outside_nearest_expiry():
    """(c) on a tiny smile: exact nodes, linear in log K between them, flat beyond the ends,
    an unlisted expiry on the nearest listed one's smile (earlier on a tie); iv = surface +
    offset floored, and an empty smile is the flat surface."""
    vol = VolSurface(atm=0.2, skew=-0.1, floor=0.05)
    sm = Smile(vol, [10.0, 10.0, 30.0], [90.0, 110.0, 100.0], [False, True, True],
               [0.04, -0.02, 0.01])  # fmt: skip
    assert sm.offset(90.0, 10.0, False) == 0.04 and sm.offset(110.0, 10.0, True) == -0.02
    w = np.log(100.0 / 90.0) / np.log(110.0 / 90.0)
    assert sm.offset(100.0, 10.0, True) == pytest.approx(0.04 + w * (-0.06), abs=1e-15)
    assert sm.offset(50.0, 10.0, True) == 0.04 and sm.offset(500.0, 10.0, False) == -0.02
    assert sm.offset(100.0, 14.0, True) == sm.offset(100.0, 10.0, True), "nearest: 10"
    assert sm.offset(100.0, 20.0, True) == sm.offset(100.0, 10.0, True), "tie: earlier"
    assert sm.offset(123.0, 29.0, False) == 0.01, "nearest: 30"
    assert sm.iv(90.0, 10.0, 100.0, False) == pytest.approx(
        0.2 - 0.1 * np.log(0.9) + 0.04, abs=1e-15
    )
    vol.shift = -0.3  # the floor binds
    assert sm.iv(110.0, 10.0, 100.0, True) == 0.05
    empty = Smile(vol, [], [], [], [])
    assert empty.offset(100.0, 5.0, True) == 0.0


def test_dealer_pnl_is_continuous_across_trades(runs):
    """(d) At each trade the dealer's P&L (cash + option book at model value; shares do not
    move inside the trade) changes by exactly edge x size (within $0.01 on books of ~$1e9),
    and on the flat-surface pricing this fix replaces it jumps by far more."""
    for seed, (_, trades) in runs.items():
        err = [abs(r["jump"] - abs(r["trade"].qty) * r["mult"] * r["edge"]) for r in trades]
        assert max(err) < 0.01, f"seed {seed}: P&L jump off edge x size by ${max(err):.4f}"
    _, flat = _instrumented_run(3, smile=False)
    err = [abs(r["jump"] - abs(r["trade"].qty) * r["mult"] * r["edge"]) for r in flat]
    assert max(err) > 1e3, f"control: flat pricing jumps by ${max(err):.0f} at most"


def test_runs_without_a_chain_have_no_smile():
    """Scenarios without a chain keep the flat surface: no smile, customers book offset 0."""
    sc = mmsim.load_scenario(ROOT / "scenarios/long_gamma.yaml")
    sim = mmsim.engine.Simulation(sc, seed=1)
    assert sim.smile is None and all(c.smile is None for c in sim.customers)
