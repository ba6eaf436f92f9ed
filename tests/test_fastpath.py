"""The compiled fast path (``engine.fast_path``) against the simpy agents, its oracle.

Every supported scenario must give the *same* run on both paths, bit for bit: series,
trades (times, sizes, prices), ledger and metrics, on many seeds, shipped and
non-shipped parameters (several dealers, square-root impact, short gamma, partial
hedges, band 0, edge targets, per-notional bands, a pension's child orders, gaps and vol
shifts that wake the dealers from a discrete event, a short-dated line that expires
mid-run). Divergence stops both paths with the same message.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmsim.engine import Simulation
from mmsim.errors import InstabilityError, ScenarioError
from mmsim.hotloop import fast_path_enabled
from mmsim.scenario import load_scenario

BASE = {
    "seed": 7,
    "clock": {"days": 0.1},
    "market": {"S0": 100.0, "impact": {"model": "linear", "lam": 1.0e-4}, "half_spread": 0.005},
    "vol": {"atm": 0.20},
    "news": {"vol": 0.16, "dt": 1.0},
    "noise": {"rate": 0.05, "mean_size": 100},
    "dealers": [
        {
            "name": "desk",
            "band": 50,
            "trigger": "price",
            "positions": [{"type": "call", "strike": 100, "expiry_days": 252, "qty": 2000}],
        }
    ],
}


def _dealer(name: str, qty: float, **kw) -> dict:
    pos = [{"type": "call", "strike": 100, "expiry_days": 252, "qty": qty}]
    return {"name": name, "trigger": "price", "positions": pos, **kw}


CASES = {
    "long_gamma": {},
    "short_gamma": {"dealers": [_dealer("desk", -2000, band=50)]},
    "band0_half_hedges": {"dealers": [_dealer("desk", 2000, band=0, hedge_fraction=0.5)]},
    "three_dealers_sqrt": {
        "market": {
            "S0": 100.0,
            "impact": {"model": "sqrt", "Y": 0.5, "daily_vol": 0.01, "adv": 2.0e8},
            "half_spread": 0.01,
        },
        "noise": {"rate": 0.3, "mean_size": 400},
        "dealers": [
            _dealer("a", 3000, band=20),
            _dealer("b", -1500, band=5, target="edge"),
            _dealer("c", 2500, band=3e7, band_unit="per_notional", hedge_fraction=0.7),
        ],
    },
    "strong_long_gamma_solve": {  # lam * G well above 1: hedges are solved
        "market": {"S0": 100.0, "impact": {"lam": 2.0e-4}, "half_spread": 0.0},
        "dealers": [
            _dealer("desk", 5000, band=5),
            {
                "name": "odte",
                "trigger": "price",
                "band": 0,
                "positions": [{"type": "put", "strike": 100, "expiry_days": 0.05, "qty": 20}],
            },
        ],
    },
    "discrete_events": {  # a pension, a gap and a vol shift wake the dealers
        "news": {"vol": 0.16, "dt": 0.5, "phase": 0.25, "stop": 2000.0},
        "noise": {"rate": 0.2, "mean_size": 200, "stop": 2200.0},
        "dealers": [
            _dealer("a", 2000, band=30, panic={"iv_jump": 0.03, "band_factor": 0.2}),
            _dealer("b", -800, band=0.02, band_unit="delta_per_contract"),
        ],
        "pensions": [
            {"side": "sell", "shares": 40000, "start": 300, "duration": 1800, "child_interval": 37}
        ],
        "events": [
            {"at": 700.0, "kind": "gap", "gap": -0.01},
            {"at": 1200.0, "kind": "vol_shift", "d_atm": 0.05},
        ],
    },
    "discrete_on_ticks": {  # discrete events landing exactly on news ticks, scheduled
        # more than a step before them: they come first on both paths
        "vol": {"atm": 0.2, "follow_realized": {"weight": 1.0, "half_life": 600, "every": 3}},
        "pensions": [
            {"side": "buy", "shares": 9000, "start": 10, "duration": 900, "child_interval": 1.5}
        ],
        "events": [
            {"at": 500.0, "kind": "gap", "gap": 0.004},
            {"at": 500.0, "kind": "vol_shift", "d_atm": 0.02},  # same instant: exact too
            {"at": 502.0, "kind": "gap", "gap": -0.004},
        ],
    },
    "lagged_mixed": {  # lagged checks at x.3 / x.7 s, rechecks during cascades, beside an
        # instant dealer; the 0.5 s lag's rechecks land on news ticks (ties, in eid order)
        "market": {"S0": 100.0, "impact": {"lam": 1.5e-4}, "half_spread": 0.005},
        "noise": {"rate": 0.2, "mean_size": 300},
        "dealers": [
            _dealer("a", 3000, band=5, latency=0.3),
            _dealer("b", -1500, band=10, latency=1.7, target="edge"),
            _dealer("c", 2500, band=20),
            _dealer("d", 2000, band=0, latency=0.5, hedge_fraction=0.7),
            _dealer("e", -800, band=3, latency=1.0),  # rechecks tie with every tick
        ],
    },
    "scheduled_capacity": {  # scheduled checks on grids that tie with the ticks (phase 0,
        # interval 45 s and 1 s = news.dt) and off them, a capacity limit that binds
        "market": {"S0": 100.0, "impact": {"lam": 1.5e-4}, "half_spread": 0.005},
        "noise": {"rate": 0.2, "mean_size": 300},
        "dealers": [
            _dealer("s45", 3000, band=5, trigger="schedule", interval=45.0),
            _dealer("s1", -900, band=2, trigger="schedule", interval=1.0),
            _dealer(
                "s600",
                -3000,
                band=0,
                trigger="schedule",
                interval=600.0,
                phase=13.5,
                capacity=150,
                capacity_window=120,
                target="edge",
            ),
            _dealer(
                "cap",
                2500,
                band=0,
                trigger="schedule",
                interval=7.5,
                phase=2.0,
                capacity=40,
                capacity_window=30,
            ),
            _dealer("lag", 2000, band=10, latency=0.5),
            _dealer("inst", 1500, band=15),
        ],
    },
    "price_capacity": {  # price-triggered desks whose capacity binds sleep until their
        # window rolls (on 60 s and 45 s grids: ties with the ticks), instant and lagged
        "market": {"S0": 100.0, "impact": {"lam": 1.5e-4}, "half_spread": 0.005},
        "noise": {"rate": 0.2, "mean_size": 300},
        "dealers": [
            _dealer("i60", 3000, band=0, capacity=60, capacity_window=60),
            _dealer("l45", -2000, band=2, latency=0.5, capacity=90, capacity_window=45),
            _dealer("l17", 2000, band=5, latency=1.7, capacity=400, capacity_window=30),
            _dealer("free", 1500, band=15),
        ],
    },
    "pension_on_the_dealers_grid": {  # pension children every 60 s from 300 s, as far
        # ahead as a capacity window and a schedule: they tie with window rolls, scheduled
        # checks and ticks, and come first on both paths
        "pensions": [
            {"side": "buy", "shares": 30000, "start": 300, "duration": 1500, "child_interval": 60}
        ],
        "events": [{"at": 960.0, "kind": "gap", "gap": 0.003}],
        "dealers": [
            _dealer("cap", 3000, band=5, capacity=300, capacity_window=60),
            _dealer("s60", -1000, band=5, trigger="schedule", interval=60.0),
            _dealer("lag", 1500, band=10, latency=1.0),
        ],
    },
    "skew_shift": {  # a vol_shift of the skew alone: the kernel reloads the surface
        "dealers": [
            {
                "name": "desk",
                "band": 5,
                "trigger": "price",
                "positions": [{"type": "put", "strike": 95, "expiry_days": 20, "qty": 3000}],
            }
        ],
        "events": [{"at": 300.0, "kind": "vol_shift", "d_skew": -0.5}],
    },
    "customers_then_tables": {  # the book grows to a tabulated one: the kernel reads
        # the dealers' delta tables, built and refreshed where the simpy agents would
        "noise": {"rate": 0.3, "mean_size": 200},
        "dealers": [_dealer("a", 2000, band=20), _dealer("b", -500, band=10)],
        "customers": [
            {"segment": "retail_call_buyers", "rate": 0.02, "expiry_days": [5, 21]},
            {"segment": "put_sellers", "rate": 0.01, "expiry_days": [21]},
        ],
        "engine": {"delta_table": "auto", "delta_table_min_lines": 12},
    },
    "customers_contract_bands": {  # bands that scale with the holder's gross contracts
        # (a customer trade changes them: the kernel's D_BAND is reloaded for that dealer
        # alone) and a panic factor a vol shift turns on (every dealer's band reloaded)
        "noise": {"rate": 0.3, "mean_size": 200},
        "dealers": [
            _dealer(
                "a",
                2000,
                band=0.01,
                band_unit="delta_per_contract",
                panic={"iv_jump": 0.03, "band_factor": 0.3},
            ),
            _dealer("b", -500, band=2e6, band_unit="per_notional"),
            _dealer("c", 800, band=10, panic={"iv_jump": 0.03, "band_factor": 0.5}),
        ],
        "customers": [
            {"segment": "retail_call_buyers", "rate": 0.03, "expiry_days": [5, 21]},
            {"segment": "put_sellers", "rate": 0.02, "expiry_days": [21]},
        ],
        "events": [{"at": 1100.0, "kind": "vol_shift", "d_atm": 0.05}],
        "engine": {"delta_table": "auto", "delta_table_min_lines": 12},
    },
}


def _scenario(case: str, mode: str, seed: int):
    case = CASES[case]
    data = {**BASE, **case, "seed": seed, "engine": {**case.get("engine", {}), "fast_path": mode}}
    return load_scenario(data)


def _run(case: str, mode: str, seed: int):
    sim = Simulation(_scenario(case, mode, seed), seed)
    assert (sim.hot is not None) == (mode == "on"), "the path asked for is the path run"
    return sim.run(), sim


def _assert_same(a, b, what: str) -> None:
    for name in ("series", "trades", "accounts", "option_trades"):
        pd.testing.assert_frame_equal(
            getattr(a, name), getattr(b, name), check_exact=True, obj=f"{what}: {name}"
        )
    assert a.metrics.keys() == b.metrics.keys()
    for k, x in a.metrics.items():
        y = b.metrics[k]
        assert x == y or (np.isnan(x) and np.isnan(y)), f"{what}: metric {k} {x!r} != {y!r}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_path_is_bit_identical_to_the_simpy_agents(case):
    """0.1-day runs (2,340 s), seeds 0-19 for the one-dealer cases, 0-3 for the
    tabulated book, 0-7 for the others: series, trades, option trades, ledger and
    metrics equal exactly (no tolerance)."""
    seeds = {"long_gamma": range(20), "short_gamma": range(20), "customers_then_tables": range(4),
             "customers_contract_bands": range(4)}  # fmt: skip
    seeds = seeds.get(case, range(8))
    hedged = tabulated = capped = 0
    for seed in seeds:
        (off, _), (on, sim_on) = _run(case, "off", seed), _run(case, "on", seed)
        _assert_same(off, on, f"{case} seed {seed}")
        capped += any(
            d.config.capacity is not None and d._window_used == d.config.capacity
            for d in sim_on.dealers
        )
        hedged += int((on.trades["kind"] == "dealer").sum())
        # the book was tabulated and the kernel read its tables (no simpy agents)
        tabulated += sim_on.book.table_builds > 0 and sim_on.hot.table_loads > 0
    if case == "customers_then_tables":
        assert tabulated == len(seeds), "every seed's book grew to a tabulated one"
    if case in ("scheduled_capacity", "price_capacity"):
        assert capped == len(seeds), "a capacity limit bound (a window used up) on every seed"
    assert hedged > 10 * len(seeds), f"{case}: dealers traded ({hedged} fills): a real test"


def test_divergence_stops_both_paths_with_the_same_message():
    """Short gamma at lam * G = -1.3 (1-year ATM calls, 13,000 short): both paths raise
    InstabilityError with the same text (time, price, sizes)."""
    case = {"dealers": [_dealer("desk", -13000, band=10)]}
    msgs = []
    for mode in ("off", "on"):
        sc = load_scenario({**BASE, **case, "engine": {"fast_path": mode}})
        with pytest.raises(InstabilityError) as err:
            Simulation(sc, 3).run()
        msgs.append(str(err.value))
    assert msgs[0] == msgs[1]
    assert "diverged" in msgs[0] or "ran away" in msgs[0], msgs[0]


@pytest.mark.parametrize(
    ("dealers", "lam", "expect"),
    [
        # lagged long gamma at lam * G ~ 2: two over-correcting fills in a row
        ([_dealer("desk", 5000, band=5, latency=0.5)], 2.0e-4, "over-correcting"),
        # two scheduled short-gamma desks at lam * G ~ -0.6 each, checking at the same
        # instants: each one's own fills settle, together (-1.2) their rehedges grow
        (
            [
                _dealer("a", -3000, band=5, trigger="schedule", interval=30.0),
                _dealer("b", -3000, band=5, trigger="schedule", interval=30.0),
            ],
            1.0e-4,
            "ran away",
        ),
    ],
)
def test_lagged_and_scheduled_divergence_same_message_on_both_paths(dealers, lam, expect):
    """A lagged long-gamma desk over-correcting its own impact, and scheduled desks whose
    combined feedback diverges: both paths raise InstabilityError with the same text
    (time, price, sizes; 0.1 day, seed 3)."""
    msgs = []
    for mode in ("off", "on"):
        market = {"S0": 100.0, "impact": {"lam": lam}, "half_spread": 0.0}
        sc = load_scenario({**BASE, "market": market, "dealers": dealers,
                            "engine": {"fast_path": mode}})  # fmt: skip
        with pytest.raises(InstabilityError) as err:
            Simulation(sc, 3).run()
        msgs.append(str(err.value))
    assert msgs[0] == msgs[1]
    assert expect in msgs[0], msgs[0]


def test_fast_path_on_refuses_what_it_does_not_run():
    """``engine.fast_path: on`` with transient impact: one-line ScenarioError naming the
    field; ``auto`` falls back to the simpy agents."""
    data = {**BASE, "market": {**BASE["market"], "transient": {"fraction": 0.5}}}
    with pytest.raises(ScenarioError, match=r"engine.fast_path is on but market.transient"):
        load_scenario({**data, "engine": {"fast_path": "on"}})
    assert not fast_path_enabled(load_scenario({**data, "engine": {"fast_path": "auto"}}))
    assert fast_path_enabled(load_scenario(BASE)), "the shipped long_gamma set-up is supported"


def test_runs_advanced_in_chunks_are_the_same_run():
    """``run(keep_partial=True)`` advances the loop in 100 chunks (the progress bar's)
    and ``advance(t)`` stops mid-segment: the fast path ends each chunk where the simpy
    path does (samples at a chunk's end taken, ticks at it not), so the runs are equal
    (one seed, 0.1 day, the discrete-events case), and the state after ``advance(700)``
    (a gap and a sample due at 700 s, neither taken yet) and then ``advance(1000)``
    matches too (price, ledger and the series exactly)."""
    whole = _run("discrete_events", "off", 5)[0]
    sim = Simulation(_scenario("discrete_events", "on", 5), 5)
    _assert_same(whole, sim.run(keep_partial=True), "chunked fast path")
    sims = [Simulation(_scenario("discrete_events", m, 5), 5) for m in ("off", "on")]
    (a, b) = sims
    for until in (700.0, 1000.0):
        for s in sims:
            s.advance(until)
        assert a.market.mid == b.market.mid, until
        assert a.recorder.filled == b.recorder.filled == until / 10, until
        assert np.array_equal(a.ledger.shares, b.ledger.shares)
        assert np.array_equal(a.ledger.cash, b.ledger.cash)
        assert np.array_equal(a.recorder.data, b.recorder.data, equal_nan=True)


def test_bare_yaml_switches_and_the_command_line_refusal(tmp_path, capsys):
    """YAML reads a bare ``on`` as true: ``fast_path: on`` / ``delta_table: off`` mean what
    they say; ``mmsim validate`` of an unsupported scenario with the fast path on exits 2
    with one line naming the file and the field."""
    from mmsim.cli import main

    good = tmp_path / "good.yaml"
    good.write_text("engine: {fast_path: on, delta_table: off}\nnoise: {rate: 0.1}\n")
    sc = load_scenario(good)
    assert (sc.engine.fast_path, sc.engine.delta_table) == ("on", "off")
    bad = tmp_path / "bad.yaml"
    bad.write_text("engine: {fast_path: on}\nmarket: {transient: {fraction: 0.5}}\n")
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "market.transient" in err[0], err


def test_warm_sweep_workers_load_both_the_fast_path_and_the_simpy_agents(monkeypatch):
    """A fork server's warm-up runs one scenario on each path, so forked workers find the
    fast path's kernels loaded too (one simpy-only warm run left them cold)."""
    import mmsim.engine
    from mmsim import executors

    paths = []

    def run(scenario, seed):
        paths.append(Simulation(load_scenario(scenario), seed=seed).hot is not None)

    monkeypatch.setattr(mmsim.engine, "run", run)
    executors._warm()
    assert sorted(paths) == [False, True], paths


def _synthetic_book(n_lines: int, band: float, seed: int, days: float) -> dict:
    """One dealer holding ``n_lines`` random lines (strikes $80-120, expiries 5-252 days,
    calls and puts, two thirds long, 2,000 contracts gross): the books benchmark's book."""
    rng = np.random.default_rng(seed)
    size = 2000.0 / n_lines
    positions = [
        {
            "type": "call" if rng.random() < 0.5 else "put",
            "strike": round(float(rng.uniform(80, 120)), 2),
            "expiry_days": float(rng.uniform(5, 252)),
            "qty": size * (1.0 if i % 3 else -1.0),
        }
        for i in range(n_lines)
    ]
    return {
        **BASE,
        "seed": seed,
        "clock": {"days": days},
        "vol": {"atm": 0.20, "skew": -0.1},
        "dealers": [{"name": "desk", "band": band, "trigger": "price", "positions": positions}],
        "events": [{"at": min(4000.0, days * 11700.0), "kind": "vol_shift", "d_atm": 0.01}],
    }


@pytest.mark.parametrize("band", [0.0, 100.0])
def test_tabulated_books_are_bit_identical_on_both_paths(band):
    """A 1,000-line book (tabulated: ``delta_table`` auto from 64 lines), 1.2 days
    (a vol shift at 4,000 s rebuilds the table; the day's table runs out and is rolled
    on), seeds 0-2: the kernel reads the same tables, built at the same spot and clock,
    as the simpy agents, so the runs are equal exactly."""
    for seed in range(3):
        runs = []
        for mode in ("off", "on"):
            data = _synthetic_book(1_000, band, seed, 1.2)
            sim = Simulation(load_scenario({**data, "engine": {"fast_path": mode}}), seed)
            runs.append((sim.run(), sim))
        (off, sim_off), (on, sim_on) = runs
        _assert_same(off, on, f"1,000 lines band {band} seed {seed}")
        assert sim_on.book.table_builds == sim_off.book.table_builds >= 3, "rebuilt"
        assert sim_on.book.table_rolls >= 1, "a table ran out and was rolled on"
        assert sim_on.hot.table_loads >= 2, "the kernel read the tables"
        assert int((on.trades["kind"] == "dealer").sum()) > 50, "the dealer hedged"


def test_tables_rebuilt_mid_check_resume_the_same_check(monkeypatch):
    """A spot grid of +-0.05% (``HALF_WIDTH``): tables are rebuilt every few cents, often
    between a check's first evaluation and its solve or post-fill evaluation; the kernel
    stops there, the book builds the table at that spot, and the check resumes with its
    earlier evaluations replayed: the run equals the simpy agents' (300-line book, band 0,
    0.05 day, two seeds)."""
    from mmsim import delta_table

    monkeypatch.setattr(delta_table, "HALF_WIDTH", 0.0005)
    resumed = 0
    for seed in range(2):
        data = _synthetic_book(300, 0.0, seed, 0.05)
        data["market"] = {**data["market"], "impact": {"lam": 3.0e-4}}
        runs = []
        for mode in ("off", "on"):
            sim = Simulation(load_scenario({**data, "engine": {"fast_path": mode}}), seed)
            runs.append((sim.run(), sim))
        (off, sim_off), (on, sim_on) = runs
        _assert_same(off, on, f"narrow grid seed {seed}")
        assert sim_on.book.table_builds == sim_off.book.table_builds > 20, "rebuilt often"
        resumed += sim_on.hot.resumed_checks
    assert resumed > 0, "some checks stopped after their first evaluation and resumed"
