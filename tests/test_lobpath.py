"""The limit order book (``market.model: book``) on the compiled fast path, against the
simpy agents, its oracle.

The kernel plays the book's liquidity flow as its simpy process does (a block of orders
up to the next event of the queue, then ``after_change``: the dry-out check and the
dealers woken when the mid moved), dealers' market orders walk the book, news moves the
fundamental. Every case must give the *same* run bit for bit: series (book columns
included), trades, ledger, metrics and episodes (dry-outs), on several seeds and
non-shipped parameters (tick sizes, window sizes, shallow and deep books, bands 0 / 50 /
1,000, price-triggered, lagged and scheduled dealers together, noise, a pension, dry-outs
that continue or stop the run, a spread limit, hedgers posting limit orders up a price
ladder and repositioning every session as in Buis et al.).
"""

from __future__ import annotations

import pandas as pd
import pytest
from test_fastpath import _assert_same as _assert_same_runs

from mmsim.engine import Simulation
from mmsim.errors import InstabilityError, ScenarioError
from mmsim.hotloop import fast_path_enabled, unsupported
from mmsim.scenario import load_scenario

# Buis et al.'s hedgers (scenarios/buis2024.yaml): straddles, limit orders every quarter,
# a fresh straddle every session; more market orders (Panel A's 0.4) and a smaller
# position, so some paths dry out (and stop) within the 8 sessions
BUIS = {
    "seed": 2024,
    "clock": {"days": 8, "session_seconds": 36000, "year_days": 1},
    "market": {
        "S0": 5.0,
        "model": "book",
        "book": {"preset": "buis2024", "p_market": 0.4, "on_dry_out": "stop"},
    },
    "vol": {"atm": 0.0178},
    "news": {"vol": 0.00632, "dt": 3600.0},
    "dealers": [
        {
            "name": "hedger",
            "trigger": "schedule",
            "interval": 900.0,
            "order": "limit",
            "reposition_days": 1,
            "positions": [
                {"type": t, "strike": 5.0, "expiry_days": 2, "qty": -40, "multiplier": 1}
                for t in ("call", "put")
            ],
        }
    ],
    "record": {"every": 900.0, "levels_every": 36000.0},
}

# Buis et al.'s book (40 orders a quarter, 10-hour sessions): a short-put desk's
# quarterly hedges drain it (liquidity_dry_out's desk, without its pension: its child
# orders' ties with the news ticks: tests/test_fastpath_ties.py)
THIN = {
    "seed": 11,
    "clock": {"days": 1, "session_seconds": 36000, "year_days": 1},
    "market": {
        "S0": 5.0,
        "model": "book",
        "book": {
            "preset": "buis2024",
            "rate": 0.0444,
            "informed_market": False,
            "on_dry_out": "continue",
        },
    },
    "vol": {"atm": 0.089},
    "news": {"vol": 0.00632, "dt": 3600.0},
    "dealers": [
        {
            "name": "desk",
            "trigger": "schedule",
            "interval": 900.0,
            "positions": [
                {"type": "put", "strike": 4.95, "expiry_days": 2, "qty": -100, "multiplier": 1}
            ],
        }
    ],
    "record": {"every": 300.0, "levels_every": 3600.0},
}


# a continuous-time book (40 orders a second, SPY-like quotes) with three dealers of
# every trigger and bands 0 / 50 / 1,000, noise and informed flow
def _zi_dealer(name: str, qty: float, strike: float, **kw) -> dict:
    pos = [{"type": "call", "strike": strike, "expiry_days": 5, "qty": qty}]
    return {"name": name, "positions": pos, **kw}


ZI = {
    "seed": 3,
    "clock": {"days": 0.02},
    "market": {
        "S0": 100.0,
        "model": "book",
        "book": {"preset": "zi_spx", "p_informed": 0.2, "on_dry_out": "continue"},
    },
    "vol": {"atm": 0.2},
    "news": {"vol": 0.16, "dt": 1.0},
    "noise": {"rate": 0.2, "mean_size": 300},
    "dealers": [
        _zi_dealer("a", 300, 100, trigger="price", band=0),
        _zi_dealer("b", 150, 99, trigger="price", band=50, latency=0.5),
        _zi_dealer("c", -400, 101, trigger="schedule", interval=60, band=1000),
    ],
    "record": {"every": 10.0, "levels_every": 300.0},
}


def _thin(**book) -> dict:
    return {**THIN, "market": {**THIN["market"], "book": {**THIN["market"]["book"], **book}}}


CASES = {
    # the desk empties a side and the book refills: dry-outs recorded, the run goes on
    "thin_scheduled": (THIN, range(4)),
    # a coarser tick, a small window (recentred often), a shallow opening book, a spread
    # limit, and a pension whose child orders do not tie with the ticks
    "coarse_tick_window": (
        {
            **_thin(tick=0.02, levels=128, init_volume=3.0, init_levels=2, max_spread=0.1),
            "pensions": [
                {
                    "side": "sell",
                    "shares": 40,
                    "start": 3700,
                    "duration": 11100,
                    "child_interval": 3700,
                }
            ],
        },
        range(3),
    ),
    # Buis et al.'s failure: the first dry-out stops the run (status failed)
    "dry_stop": (_thin(on_dry_out="stop"), range(4)),
    # two desks of opposite positions on one schedule: on seeds 0-2 'a' empties a side
    # and the run stops there; 'b' traded at that instant on the simpy agents (its check
    # was queued before the dry-out's failure: one trade more than the kernel) before the
    # dry-out was made urgent (mmsim.run_env.stop_now)
    "dry_stop_same_instant": (
        {
            **_thin(on_dry_out="stop"),
            "dealers": [
                {**THIN["dealers"][0], "name": x, "trigger": "schedule", "interval": 900.0}
                | (
                    {"positions": [{**THIN["dealers"][0]["positions"][0], "qty": 100}]}
                    if x == "b"
                    else {}
                )
                for x in "ab"
            ],
        },
        range(3),
    ),
    # an instant band-0 desk woken by every mid change, and noise orders
    "price_band0_noise": (
        {
            **THIN,
            "noise": {"rate": 0.01, "mean_size": 3},
            "dealers": [{**THIN["dealers"][0], "trigger": "price", "band": 0}],
        },
        range(3),
    ),
    "zi_three_dealers": (ZI, range(3)),
    # limit orders: Buis et al.'s scheduled hedgers, an instant one, and two of the
    # three continuous-book dealers (lagged and scheduled) posting
    "buis_limit_hedgers": (BUIS, range(4)),
    "limit_price_dealer": (
        {
            **THIN,
            "dealers": [{**THIN["dealers"][0], "trigger": "price", "band": 5, "order": "limit"}],
        },
        range(3),
    ),
    "zi_limit_dealers": (
        {
            **ZI,
            "clock": {"days": 0.01},
            "dealers": [ZI["dealers"][0]] + [{**d, "order": "limit"} for d in ZI["dealers"][1:]],
        },
        range(2),
    ),
}


def _run(data: dict, mode: str, seed: int):
    sim = Simulation(load_scenario({**data, "engine": {"fast_path": mode}}), seed)
    assert (sim.hot is not None) == (mode == "on"), "the path asked for is the path run"
    return sim.run(), sim


def _assert_same(a, b, what: str) -> None:
    """test_fastpath's exact comparison, plus the episodes (dry-outs) and the status."""
    _assert_same_runs(a, b, what)
    pd.testing.assert_frame_equal(a.episodes, b.episodes, check_exact=True, obj=f"{what}: episodes")
    assert a.meta.get("status") == b.meta.get("status"), what


@pytest.mark.parametrize("case", sorted(CASES))
def test_book_on_the_fast_path_is_bit_identical_to_the_simpy_agents(case):
    """Each case on its seeds (a session of 10 h for Buis et al.'s book, 468 s of
    the continuous one): series (book columns too), trades, ledger, metrics, episodes
    (dry-outs with their evidence) and the run's status equal exactly (no tolerance)."""
    data, seeds = CASES[case]
    hedged = dry = failed = 0
    for seed in seeds:
        (off, _), (on, sim_on) = _run(data, "off", seed), _run(data, "on", seed)
        _assert_same(off, on, f"{case} seed {seed}")
        hedged += int((on.trades["kind"] == "dealer").sum())
        dry += int(sim_on.market.n_dry_outs)
        failed += sim_on.failed is not None
        assert sim_on.liquidity.n_events > 0, "the flow ran in the kernel"
    assert hedged > 5 * len(seeds), f"{case}: dealers traded ({hedged} fills): a real test"
    if case in ("thin_scheduled", "coarse_tick_window", "price_band0_noise"):
        assert dry > 0, f"{case}: a side ran dry on some seed (the dry-out path is tested)"
    if case in ("dry_stop", "buis_limit_hedgers"):
        assert 0 < failed < len(seeds), "some runs stopped at a dry-out, some did not"


def test_book_divergence_stops_both_paths_with_the_same_message():
    """A lone instant short-gamma desk on the continuous book, chasing its own impact:
    both paths raise InstabilityError with the same text (time, price, sizes, the book's
    measured lam at the stop; 468 s, seed 0)."""
    data = {**ZI, "dealers": [_zi_dealer("b", -2000, 99, trigger="price", band=50)]}
    msgs = []
    for mode in ("off", "on"):
        with pytest.raises(InstabilityError) as err:
            Simulation(load_scenario({**data, "engine": {"fast_path": mode}}), 0).run()
        msgs.append(str(err.value))
    assert msgs[0] == msgs[1]
    assert "book impact x G" in msgs[0], msgs[0]


def test_auto_runs_book_scenarios_in_the_kernel_and_refuses_worked_orders():
    """``fast_path: auto`` picks the kernel for a book, with market or limit orders;
    limit orders worked over time (``market.book.work``) stay on the simpy agents, and
    ``on`` refuses them with a one-line error naming the field."""
    for data in (THIN, ZI, BUIS):
        assert fast_path_enabled(load_scenario(data))
    worked = {
        **BUIS,
        "market": {**BUIS["market"], "book": {**BUIS["market"]["book"], "work": 3600}},
    }
    assert not fast_path_enabled(load_scenario(worked))
    with pytest.raises(ScenarioError, match=r"engine.fast_path is on but market.book.work"):
        load_scenario({**worked, "engine": {"fast_path": "on"}})


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("buis2024", None),
        ("buis2024_panel_a", None),
        ("buis2024_panel_c", None),
        ("liquidity_dry_out", None),
        ("liquidity_dry_out_control", None),
    ],
)
def test_shipped_book_scenarios_run_in_the_kernel_or_say_why_not(name, why):
    """Buis et al.'s scenarios and the dry-out pair (whose pension's child orders tie
    with the news ticks: tests/test_fastpath_ties.py) run in the kernel."""
    reason = unsupported(load_scenario(f"scenarios/{name}.yaml"))
    if why is None:
        assert reason is None, reason
    else:
        assert reason is not None and reason.startswith(why), reason
