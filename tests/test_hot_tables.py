"""The fast path's delta tables under customer flow (``mmsim.hotloop``): a customer trade
reloads only the trading dealer's evaluation, and the run stays the simpy agents' run,
bit for bit, with several tabulated dealers, lines expiring mid-run and books that grow
all run long."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmsim import fastpath as fp
from mmsim.engine import Simulation
from mmsim.scenario import load_scenario


def _desk(name: str, qty: float, **kw) -> dict:
    pos = [{"type": "call", "strike": 100, "expiry_days": 252, "qty": qty}]
    return {"name": name, "trigger": "price", "positions": pos, **kw}


FLOW = {
    "seed": 3,
    "clock": {"days": 0.25},
    "market": {"S0": 100.0, "impact": {"lam": 2.0e-5}, "half_spread": 0.005},
    "vol": {"atm": 0.20, "skew": -0.1},
    "news": {"vol": 0.16, "dt": 1.0},
    "noise": {"rate": 0.3, "mean_size": 200},
    "dealers": [
        _desk("a", 2000, band=20),
        _desk("b", -500, band=10),
        {**_desk("c", 1500, band=30), "trigger": "schedule", "interval": 120.0},
    ],
    "customers": [  # 0.1-day lines expire mid-run (at 2,340 s) while the books are tabulated
        {"segment": "retail_call_buyers", "rate": 0.03, "expiry_days": [0.1, 5, 21]},
        {"segment": "put_sellers", "rate": 0.015, "expiry_days": [0.1, 21]},
        {"segment": "put_hedgers", "rate": 0.01, "expiry_days": [5], "dealer": 2},
    ],
    "engine": {"delta_table": "auto", "delta_table_min_lines": 12},
}


def _sim(mode: str, seed: int, **extra) -> Simulation:
    data = {**FLOW, **extra, "seed": seed}
    data["engine"] = {**FLOW["engine"], "fast_path": mode}
    return Simulation(load_scenario(data), seed)


def _assert_same(a, b, what: str) -> None:
    for name in ("series", "trades", "accounts", "option_trades"):
        pd.testing.assert_frame_equal(
            getattr(a, name), getattr(b, name), check_exact=True, obj=f"{what}: {name}"
        )
    for k, x in a.metrics.items():
        y = b.metrics[k]
        assert x == y or (np.isnan(x) and np.isnan(y)), f"{what}: metric {k} {x!r} != {y!r}"


@pytest.mark.parametrize("seed", range(3))
def test_three_tabulated_dealers_with_expiring_lines_match_the_simpy_agents(seed):
    """0.25-day runs (5,850 s), seeds 0-2: three dealers whose books grow past the table
    threshold (12 lines) under customer flow, customer lines expiring at 2,340 s; the
    fast path's series, trades, option trades, ledger and metrics equal the simpy
    agents' exactly (no tolerance)."""
    off = _sim("off", seed)
    on = _sim("on", seed)
    a, b = off.run(), on.run()
    _assert_same(a, b, f"seed {seed}")
    assert on.book.table_builds > 0 and on.hot.table_loads > 0, "the kernel read tables"
    expired = on.book.expiry < on.scenario.clock.duration
    assert expired.sum() >= 2, "customer lines expired mid-run (a real test of roll-off)"


def test_a_trade_keeps_the_other_tables_and_loads_the_traders_folded_one():
    """After a customer trade (a change of the book), a tabulated dealer whose own lines
    and table did not change keeps its loaded table, and the trading dealer's table,
    into which the book folded the trade when booking it (or put it beside the table,
    for a line expiring within the table's near window), is loaded as it stands: the
    kernel does not stop to ask the book (the simpy agents' checks change nothing in the
    book there either). A new vol level makes every dealer ask again."""
    sim = _sim("on", 0)
    hot, book = sim.hot, sim.book
    sim.advance(3000.0)
    dl = hot.dl
    assert (dl[:, fp.D_TMODE] == fp.TM_TABLE).all(), "all three dealers read a table"
    now = sim.env.now
    kept = [hot._tabs[1], hot._tabs[2]]
    h = sim.dealers[0].index
    table = book._tables[h]
    folded = table.folded
    book.add(101.0, 21 * 23_400.0, True, -10.0, h)  # far: folded into the fit
    assert table.folded == folded + 1 and table.version == book._holder_version[h]
    hot._load(now)
    assert (dl[:, fp.D_TMODE] == fp.TM_TABLE).all(), "no dealer asks the book again"
    assert hot._tabs[1:] == kept, "the other dealers keep theirs"
    c0, cn = int(dl[0, fp.D_COFF]), int(dl[0, fp.D_CN])
    assert np.array_equal(hot.coefs[:, c0 : c0 + cn], table.coef), "the folded fit is loaded"
    beside = table.changes_n
    book.add(99.0, now + 600.0, False, 5.0, h)  # near: evaluated exactly beside the table
    k = table.changes_n
    assert k == beside + 1
    hot._load(now)
    assert dl[0, fp.D_TMODE] == fp.TM_TABLE and dl[0, fp.D_XN] == k
    x0 = int(dl[0, fp.D_XOFF])
    loaded = hot.xlines[:, x0 : x0 + k]
    assert np.array_equal(loaded, table.changes[:, :k]), "the changes are loaded"
    assert dl[0, fp.D_TEXP] == now + 600.0, "the kernel asks again at the new line's expiry"
    sim.vol.apply_shift(0.05)  # a vol level change: every loaded table is asked again
    hot._load(now)
    assert (dl[:, fp.D_TMODE] == fp.TM_UNKNOWN).all(), "a new vol level: every dealer asks"


def test_customer_trades_cost_one_table_load_each_not_one_per_dealer():
    """Over a 0.25-day run with three tabulated dealers, the kernel's table loads
    (``NEED_TABLE`` answered) number about one per customer trade booked while tables
    were on, not three (one per dealer, the cost before): fewer than 1.6 loads per
    trade, table builds, windows that ran out and expiries included."""
    sim = _sim("on", 1)
    res = sim.run()
    trades = len(res.option_trades)
    assert trades > 300, f"{trades} customer trades: enough to count"
    assert sim.hot.table_loads < 1.6 * trades, (sim.hot.table_loads, trades)
