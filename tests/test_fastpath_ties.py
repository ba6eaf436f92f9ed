"""Ties between the kernel's events and discrete ones, on the fast path and the simpy agents.

simpy plays the events of one instant in the order they were scheduled (event ids). A
pension's child order, a scheduled event or an expiry landing exactly on a news tick, a
noise order, a lagged or scheduled dealer's timeout or a window roll comes before it or
after it depending on which was scheduled first; the kernel numbers its timeouts from
simpy's counter and stops at the discrete event's id (:mod:`mmsim.hotloop`). Every case
here has such ties (child intervals equal to ``news.dt``, multiples and halves of it,
starts on a tick, lagged rechecks and scheduled checks on the tick grid, a news phase,
both market models, chunked runs) and must give the same run bit for bit; a kernel that
breaks the ties either way round (all discrete events first, as before, or all the
kernel's first) must not.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from test_fastpath import _assert_same as _assert_same_runs

from mmsim.engine import Simulation
from mmsim.errors import InstabilityError
from mmsim.hotloop import _LAST, HotLoop, fast_path_enabled
from mmsim.scenario import load_scenario


def _dealer(name: str, qty: float, **kw) -> dict:
    pos = [{"type": "call", "strike": 100, "expiry_days": 252, "qty": qty}]
    return {"name": name, "trigger": "price", "positions": pos, **kw}


def _pension(start: float, interval: float, shares: float = 20000, n: int = 40) -> dict:
    side = "buy" if shares > 0 else "sell"
    return {"side": side, "shares": abs(shares), "start": start, "duration": n * interval,
            "child_interval": interval}  # fmt: skip


# a linear-impact market with news every second and three dealers whose timeouts sit on
# the tick grid (an instant one, a lag of one step, a schedule of two steps)
IMPACT = {
    "seed": 7,
    "clock": {"days": 0.03},  # 702 s
    "market": {"S0": 100.0, "impact": {"model": "linear", "lam": 1.0e-4}, "half_spread": 0.005},
    "vol": {"atm": 0.20},
    "news": {"vol": 0.16, "dt": 1.0},
    "noise": {"rate": 0.05, "mean_size": 100},
    "dealers": [
        _dealer("inst", 2000, band=30),
        _dealer("lag", -1500, band=10, latency=1.0),
        _dealer("sched", 2500, band=5, trigger="schedule", interval=2.0),
    ],
}

# liquidity_dry_out's thin book (news every hour, a desk checking every quarter hour)
DRY = "scenarios/liquidity_dry_out.yaml"

IMPACT_CASES = {
    # child orders on every tick from a tick on (scheduled one step ahead, as the tick)
    "child_every_tick": {"pensions": [_pension(100.0, 1.0)]},
    # every third tick, and half a step: on every other tick, scheduled after it
    "child_every_third_tick": {"pensions": [_pension(50.0, 3.0, -30000)]},
    "child_half_tick": {"pensions": [_pension(20.0, 0.5, 15000, 200)]},
    # what the kernel used to refuse: a follower updating inside a step, events half a
    # step apart, a news phase with lagged and scheduled dealers and children on it
    "follower_events_phase": {
        "news": {"vol": 0.16, "dt": 1.0, "phase": 0.5},
        "vol": {"atm": 0.2, "follow_realized": {"weight": 1.0, "half_life": 300, "every": 0.5}},
        "events": [
            {"at": 99.5, "kind": "gap", "gap": 0.01},
            {"at": 100.0, "kind": "gap", "gap": -0.01},
            {"at": 300.5, "kind": "vol_shift", "d_atm": 0.03},
        ],
        "pensions": [_pension(10.5, 1.0, 20000)],
        "dealers": [
            _dealer("lag", -1500, band=10, latency=0.5),
            _dealer("sched", 2500, band=5, trigger="schedule", interval=1.5, phase=0.5),
            _dealer("cap", 2000, band=0, capacity=200, capacity_window=30),
        ],
    },
}

DRY_CASES = {
    # the shipped pair: children every quarter from the first tick, on the desk's grid
    "shipped": {},
    "shipped_control": {"market.book.size_max": 4.0},
    # children every tick (= news.dt), every other tick, half-hourly from a tick
    "child_every_tick": {"pensions": [{"side": "sell", "shares": 60, "start": 3600,
                                       "duration": 21600, "child_interval": 3600}]},
    "child_two_ticks": {"pensions": [{"side": "buy", "shares": 30, "start": 7200,
                                      "duration": 21600, "child_interval": 7200}]},
    # price-triggered desks, instant (band 0) and lagged a quarter (on the ticks)
    "price_and_lagged": {
        "pensions": [{"side": "sell", "shares": 40, "start": 3600, "duration": 14400,
                      "child_interval": 1800}],
        "dealers": [
            {"name": "inst", "trigger": "price", "band": 0,
             "positions": [{"type": "put", "strike": 4.95, "expiry_days": 2, "qty": -60,
                            "multiplier": 1}]},
            {"name": "lag", "trigger": "price", "band": 1, "latency": 900.0,
             "positions": [{"type": "put", "strike": 5.05, "expiry_days": 2, "qty": 50,
                            "multiplier": 1}]},
        ],
    },
}  # fmt: skip


def _impact(case: str, mode: str) -> object:
    data = {**copy.deepcopy(IMPACT), **copy.deepcopy(IMPACT_CASES[case])}
    return load_scenario({**data, "engine": {"fast_path": mode}})


def _dry(case: str, mode: str) -> object:
    over = copy.deepcopy(DRY_CASES[case])
    return load_scenario(DRY, overrides={**over, "engine.fast_path": mode})


def _outcome(sc, seed: int, partial: bool = False):
    """The run's result tables and metrics, or the InstabilityError's text."""
    sim = Simulation(sc, seed)
    assert (sim.hot is not None) == (sc.engine.fast_path == "on"), "the path asked for"
    try:
        return sim.run(keep_partial=partial)
    except InstabilityError as err:
        return str(err)


def _same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    for name in ("series", "trades", "accounts", "option_trades"):
        x, y = getattr(a, name), getattr(b, name)
        if x.shape != y.shape or not x.equals(y):
            return False
    return all(
        x == b.metrics[k] or (np.isnan(x) and np.isnan(b.metrics[k])) for k, x in a.metrics.items()
    )


def _assert_same(a, b, what: str) -> None:
    """Two runs equal exactly, or two runs that stopped with the same message."""
    if isinstance(a, str) or isinstance(b, str):
        assert a == b, f"{what}: {a!r} != {b!r}"
        return
    _assert_same_runs(a, b, what)


RUNS = [("impact", c, s) for c in IMPACT_CASES for s in range(3)] + [
    ("book", c, s) for c in DRY_CASES for s in (11, 0, 1, 2, 5)
]


def _scenario(market: str, case: str, mode: str):
    return (_impact if market == "impact" else _dry)(case, mode)


@pytest.mark.parametrize("market", ["impact", "book"])
def test_ties_with_discrete_events_are_bit_identical_to_the_simpy_agents(market):
    """Every tie case (0.03-day impact runs, seeds 0-2; 1-session dry-out books, seeds
    11, 0, 1, 2, 5) runs on the fast path (``auto`` picks it) and gives the simpy agents'
    run exactly: series, trades, ledger, metrics, or the same InstabilityError text
    (the dry-out desk diverges at its wall on seed 5)."""
    traded = 0
    for kind, case, seed in RUNS:
        if kind != market:
            continue
        assert fast_path_enabled(_scenario(kind, case, "auto")), f"{case} runs in the kernel"
        off = _outcome(_scenario(kind, case, "off"), seed)
        on = _outcome(_scenario(kind, case, "on"), seed)
        _assert_same(off, on, f"{kind} {case} seed {seed}")
        traded += 0 if isinstance(on, str) else int((on.trades["kind"] == "dealer").sum())
    assert traded > 50, f"{market}: the dealers traded ({traded} fills): a real test"


def _mutated(monkeypatch, order: str) -> None:
    """A kernel that breaks ties at a discrete event's instant one way round: every
    discrete event first (``discrete``, the order it used to assume) or every kernel
    event first (``kernel``)."""
    advance = HotLoop._advance

    def wrong(self, now, horizon, inclusive, sample_at, hseq, *look):
        return advance(self, now, horizon, inclusive, sample_at,
                       -1 if order == "discrete" else _LAST, *look)  # fmt: skip

    monkeypatch.setattr(HotLoop, "_advance", wrong)


@pytest.mark.parametrize("order", ["discrete", "kernel"])
def test_a_kernel_that_breaks_the_ties_one_way_round_gives_another_run(monkeypatch, order):
    """The cases above have teeth: with the ties broken all one way (discrete events
    first, or the kernel's first) the fast path's run differs from the simpy agents' on
    most impact runs, on some seed of every impact case, and on the shipped dry-out
    scenario and its control (seed 11)."""
    reference = {
        (k, c, s): _outcome(_scenario(k, c, "off"), s)
        for k, c, s in RUNS
        if k == "impact" or (c.startswith("shipped") and s == 11)
    }
    _mutated(monkeypatch, order)
    differ = {key for key, ref in reference.items()
              if not _same(ref, _outcome(_scenario(key[0], key[1], "on"), key[2]))}  # fmt: skip
    impact = [key for key in reference if key[0] == "impact"]
    hit = sum(key in differ for key in impact)
    assert hit > len(impact) / 2, f"{order} first: {hit} of {len(impact)} impact runs differ"
    cases = {c for k, c, _ in differ if k == "impact"}
    assert cases == set(IMPACT_CASES), f"{order} first: every impact case differs ({cases})"
    shipped = {c for k, c, _ in differ if k == "book"}
    assert shipped == {"shipped", "shipped_control"}, f"{order} first: dry-out pair {shipped}"


@pytest.mark.parametrize(("kind", "case"), [("impact", "child_every_tick"), ("book", "shipped")])
def test_chunked_runs_with_ties_are_the_same_run(kind, case):
    """``run(keep_partial=True)`` stops the loop at 100 chunk ends (urgent stops at
    instants the ties share): the chunked fast path equals the chunked simpy run (seed
    1), and, with an impact market, the whole simpy run."""
    off = _outcome(_scenario(kind, case, "off"), 1, partial=True)
    on = _outcome(_scenario(kind, case, "on"), 1, partial=True)
    _assert_same(off, on, f"chunked {kind} {case}")
    if kind == "impact":
        _assert_same(_outcome(_scenario(kind, case, "off"), 1), on, f"whole {case}")


def test_a_chain_book_with_scheduled_checks_on_the_pension_grid():
    """The SPX chain scenario (its book loaded from the chain, expiries from it) with
    the street desk checking every 60 s from t = 0: its checks tie with the news ticks
    and the pension's child orders (every 60 s from 16,200 s); one day, seed 1, the same
    run exactly on both paths (once refused: a chain's expiries with a scheduled desk)."""
    over = {"dealers": [{"name": "street", "band": 300000, "trigger": "schedule",
                         "interval": 60.0}]}  # fmt: skip
    path = "scenarios/spx_2022-02-07.yaml"
    scs = [load_scenario(path, overrides={**over, "engine.fast_path": m}) for m in ("off", "on")]
    runs = [_outcome(sc, 1) for sc in scs]
    _assert_same(runs[0], runs[1], "spx chain, scheduled desk")
    assert (runs[1].trades["kind"] == "dealer").sum() > 20, "the desk hedged: a real test"
