"""Divergence always stops, hedges always settle: the edges of the feedback theory.

DESIGN.md: whenever ``lam * G <= -1`` (any trigger: price, schedule, latency) the run
stops with ``InstabilityError``; long gamma dampens by ``1 / (1 + lam * G)`` however large
``lam * G`` is, when the dealer hedges at once (it solves for its own impact), and
over-corrects in growing swings when its hedges lag and ``lam * G >= 1``. The books here
are ones no shipped scenario uses (other spots, strikes, expiries and impacts), each
sized so that ``lam * G`` at the start is the value under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import mmsim
from mmsim.agents.dealer import (
    CHASING,
    OVERCORRECTING,
    SETTLING,
    bracket_probe,
    fill_outcome,
)
from mmsim.engine import Simulation
from mmsim.scenario import load_scenario

# name -> (S0 $, lam $/share, option type, strike $, expiry in sessions)
BOOKS = {
    "one_year_atm_calls": (100.0, 1.0e-4, "call", 100.0, 252),
    "30d_puts_2.5pct_otm_S0_40": (40.0, 1.2e-5, "put", 39.0, 30),
    "9d_calls_2pct_otm_S0_137": (137.0, 4.0e-6, "call", 139.74, 9),
}


def scenario(book: str, qty: float, *, days: float = 0.05, **dealer) -> dict:
    S0, lam, kind, strike, expiry = BOOKS[book]
    return {
        "clock": {"days": days},
        "market": {"S0": S0, "impact": {"lam": lam}},
        "vol": {"atm": 0.20},
        "news": {"vol": 0.16, "dt": 1.0},
        "record": {"every": 10.0, "levels_every": 1.0e9},
        "dealers": [
            {
                "band": 0.0,
                **dealer,
                "positions": [{"type": kind, "strike": strike, "expiry_days": expiry, "qty": qty}],
            }
        ],
    }


def sized(book: str, kappa: float, **kw) -> Simulation:
    """A simulation whose ``lam * G`` at S0 and t = 0 is ``kappa`` (short when < 0)."""
    lam = BOOKS[book][1]
    per_contract = Simulation(load_scenario(scenario(book, 1.0, **kw)), 0).initial_share_gamma()
    sim = Simulation(load_scenario(scenario(book, kappa / (lam * per_contract), **kw)), 0)
    assert lam * sim.initial_share_gamma() == pytest.approx(kappa, rel=1e-9)
    return sim


def run_seed(book: str, kappa: float, seed: int, **kw) -> mmsim.Result:
    sim = sized(book, kappa, **kw)
    return Simulation(sim.scenario, seed).run()


# -- the rules, as pure functions --------------------------------------------------------
def test_fill_outcome_names_settling_chasing_and_over_correcting():
    """Net delta before / after a hedge of ``qty`` toward 0 (shares): the response
    (after - before) / qty is 1 + lam G; at or below 0.01 the hedge chases; past the
    goal by more than it started from it over-corrects; otherwise it settles."""
    assert fill_outcome(100.0, 40.0, 0.0, -100.0) == SETTLING  # lam G = -0.4 (stable short)
    assert fill_outcome(100.0, -60.0, 0.0, -100.0) == SETTLING  # lam G = +0.6 (stable long)
    assert fill_outcome(100.0, 2.0, 0.0, -100.0) == SETTLING  # lam G = -0.02
    assert fill_outcome(100.0, 100.0, 0.0, -100.0) == CHASING  # lam G = -1: no longer shrinks
    assert fill_outcome(100.0, 99.5, 0.0, -100.0) == CHASING  # lam G = -0.995
    assert fill_outcome(-100.0, -330.0, 0.0, 100.0) == CHASING  # lam G = -3.3
    assert fill_outcome(100.0, 130.0, 0.0, -10.0) == CHASING  # capacity-clipped, lam G = -4
    assert fill_outcome(100.0, -130.0, 0.0, -100.0) == OVERCORRECTING  # lam G = +1.3
    assert fill_outcome(100.0, -90.0, 0.0, -100.0) == SETTLING  # lam G = +0.9
    assert fill_outcome(150.0, 90.0, 50.0, -100.0) == SETTLING  # goal at a band edge of 50


def test_bracket_probe_stays_strictly_inside_the_bracket_on_whole_shares():
    assert bracket_probe(0.0, 10.0, -100.0, -30.0) == -25.0  # the false-position root
    assert bracket_probe(0.0, 1e-9, -100.0, -1e9) == -1.0  # clamped inside, never an end
    assert bracket_probe(0.0, 1e9, 100.0, -1e-9) == 99.0
    assert bracket_probe(5.0, 3.0, 7.0, -3.0) == 6.0
    assert float(bracket_probe(0.0, 1.0, 10.0, -2.0)).is_integer()


# -- short gamma: every lam * G <= -1 stops ----------------------------------------------
@pytest.mark.parametrize("book", list(BOOKS))
@pytest.mark.parametrize("kappa", [-1.0, -1.5, -3.3, -6.0, -10.0])
def test_short_gamma_at_or_beyond_minus_one_always_stops(book, kappa):
    """Zero band, price trigger, no latency, 6 seeds: every run stops, and the message
    names the lam * G measured on the dealer's own fill (within 2% of the start value,
    or <= -1 at the edge), the time and the price. (On main the put and OTM-call books
    ran to $21 / $113 with no error.)"""
    for seed in range(6):
        with pytest.raises(mmsim.InstabilityError) as err:
            run_seed(book, kappa, seed)
        msg = str(err.value)
        assert "short gamma chasing its own impact" in msg and "t=" in msg and "price" in msg
        measured = float(msg.split("measured lam * G = ")[1].split(" ")[0])
        assert measured <= -1.0 or measured == pytest.approx(kappa, abs=0.02), msg
        assert measured == pytest.approx(kappa, rel=0.02, abs=0.02), msg


@pytest.mark.parametrize(
    ("book", "kappa"), [(b, -0.5) for b in BOOKS] + [(next(iter(BOOKS)), -0.9)]
)
def test_stable_short_gamma_never_trips_the_divergence_rule(book, kappa):
    """lam * G > -1 amplifies but settles: 20 minutes run, 2 seeds. (-0.9 only on the
    one-year ATM book, whose gamma barely moves with spot: an OTM book's lam * G
    reaches -1 once price drifts toward its strike, and then it rightly stops.)"""
    for seed in range(2):
        result = run_seed(book, kappa, seed)
        assert np.isfinite(result.series["price"]).all()
        assert result.metrics["capacity_bound"] == 0.0


@pytest.mark.parametrize(
    ("kappa", "dealer", "why"),
    [
        (
            1.3,
            {"trigger": "schedule", "interval": 5.0},
            "long gamma over-correcting hedges on a 5 s",
        ),
        (-1.25, {"trigger": "schedule", "interval": 5.0}, "short gamma chasing"),
        (1.3, {"latency": 1.0}, "long gamma over-correcting hedges that lag by 1 s"),
        (-1.25, {"latency": 1.0}, "short gamma chasing"),
        (2.5, {"trigger": "schedule", "interval": 1.0}, "alternating rehedges growing"),
    ],
)
def test_scheduled_and_lagged_dealers_stop_and_say_which_way(kappa, dealer, why):
    """A dealer checking every 5 s at lam * G = +1.3 swung price $33 <-> $154 on main and
    at -1.25 drifted $250 -> $90, both ending "fine". Now: stopped within the first
    minute, naming the sign (alternating = long, same-sign = short), 4 seeds."""
    for seed in range(4):
        with pytest.raises(mmsim.InstabilityError, match=why) as err:
            run_seed("one_year_atm_calls", kappa, seed, days=0.2, **dealer)
        t = float(str(err.value).split("at t=")[1].split("s")[0])
        assert t < 60.0, str(err.value)


@pytest.mark.parametrize("kappa", [0.5, 0.9, -0.5, -0.9])
def test_lagged_and_scheduled_hedging_inside_minus_one_to_one_runs(kappa):
    """|lam * G| < 1: the lagged AR(1) feedback is stable; no false alarm over an hour."""
    for dealer in ({"trigger": "schedule", "interval": 5.0}, {"latency": 1.0}):
        result = run_seed("one_year_atm_calls", kappa, 3, days=1 / 6.5, **dealer)
        assert result.metrics["capacity_bound"] == 0.0


def test_a_capacity_limit_may_bound_the_cascade_and_the_metrics_say_so():
    """Scheduled short gamma at lam * G = -1.25 with a 2,000-share limit per 60 s window:
    the run goes on, price drifts at most lam x capacity x (1 + |lam G|) = $0.45 per
    window plus news, and ``capacity_bound`` is 1.0."""
    result = run_seed(
        "one_year_atm_calls",
        -1.25,
        1,
        days=0.1,
        trigger="schedule",
        interval=5.0,
        capacity=2000,
        capacity_window=60,
    )
    assert result.metrics["capacity_bound"] == 1.0
    price = result.series.set_index("t")["price"]
    per_window = price.groupby(price.index // 60).agg(lambda p: p.max() - p.min())
    # 0.45 $ of dealer-driven drift per window plus a generous 4-sigma news band
    news = 100.0 * 0.16 * math.sqrt(60.0 / (252 * 23_400.0)) * 4
    assert per_window.max() <= 1e-4 * 2000 * 2.25 + news


def test_a_sweep_keeps_divergent_runs_as_failed_rows():
    """Issue 10 item 8: ``short_gamma --set market.impact.lam=1e-3`` (lam * G = -3.97) on
    50 seeds plus the one that exited 0 on main: every row failed, with the message."""
    rows = mmsim.sweep(
        "scenarios/short_gamma.yaml",
        {"market.impact.lam": [1e-3]},
        seeds=[*range(50), 2968811710],
        executor="serial",
        progress=False,
    )
    assert len(rows) == 51
    assert (rows["status"] == "error").all(), rows.loc[rows["status"] != "error", "seed"]
    assert rows["error"].str.contains("short gamma chasing its own impact").all()


# -- long gamma: instant hedges always settle --------------------------------------------
@pytest.mark.slow
def test_long_straddle_into_the_close_never_dies_with_instant_hedging():
    """scenarios/pinning.yaml with ``hedge_fraction`` 1 (the whole excess at once), a
    20-share band and no latency: 60 seeds, none stops (on main 7 of 60 died 1-4 s before
    expiry in a 4-cycle of +/-300k-500k share hedges), and each closes with net delta
    back inside the band after the last hedge."""
    sc = load_scenario(
        "scenarios/pinning.yaml",
        overrides={
            "dealers.0.hedge_fraction": 1.0,
            "record.every": 60.0,
            "record.levels_every": 1.0e9,
        },
    )
    for seed in range(60):
        result = Simulation(sc, seed).run()
        assert np.isfinite(result.series["price"]).all(), seed


def zero_dte_straddle(lam: float = 1.0e-6, fraction: float = 1.0) -> Simulation:
    """A dealer long 5,000 100-strike straddles 30 s before expiry at S = 100, 20-share
    band: share gamma ~3.8e6 shares/$, so lam * G ~ 3.8 at lam = 1e-6 $/share."""
    sc = {
        "clock": {"days": 1, "session_seconds": 3600},
        "market": {"S0": 100.0, "impact": {"lam": lam}},
        "vol": {"atm": 0.20},
        "news": None,
        "record": {"every": 60.0, "levels_every": 1.0e9},
        "dealers": [
            {
                "band": 20,
                "hedge_fraction": fraction,
                "positions": [
                    {"type": "call", "strike": 100, "expiry_days": 1, "qty": 5000},
                    {"type": "put", "strike": 100, "expiry_days": 1, "qty": 5000},
                ],
            }
        ],
    }
    sim = Simulation(load_scenario(sc), 1)
    sim.advance(3570.0)
    return sim


def root_neighbours(dealer) -> tuple[float, float]:
    """The two whole-share hedges around the root of post-impact net delta, by plain
    integer bisection (an oracle independent of the dealer's false-position solve)."""
    lo, hi = -1.0e7, 1.0e7  # net delta after: < 0 at lo, > 0 at hi (long gamma)
    while hi - lo > 1.0:
        mid = math.floor(0.5 * (lo + hi))
        if dealer.net_delta_after(mid) > 0.0:
            hi = mid
        else:
            lo = mid
    return lo, hi


@pytest.mark.parametrize("lam", [1.0e-6, 5.0e-6, 3.0e-5])
@pytest.mark.parametrize("move", [0.01, -0.03, 0.2])
def test_a_strong_long_gamma_hedge_is_solved_in_one_order_onto_the_root(lam, move):
    """At a 0DTE strike lam * G is 3.8 to 110: trading the whole excess would overshoot
    the dealer's own impact. One check trades once, the whole share next to the root
    of its post-impact net delta (the integer-bisection oracle), which lies inside the
    20-share band whenever a whole share can (1 + lam G <= 40); the next check then has
    nothing to do."""
    sim = zero_dte_straddle(lam)
    d = sim.dealers[0]
    lam_g = lam * d.option_delta_gamma()[1]
    assert lam_g > 3.0
    sim.market.move(move)
    assert abs(d.net_delta()) > 20
    lo, hi = root_neighbours(d)
    best = min(abs(d.net_delta_after(lo)), abs(d.net_delta_after(hi)))
    qty = d.check()
    assert d.n_rehedges == 1 and qty in (lo, hi), (lam_g, qty, lo, hi)
    after = d.net_delta()
    assert abs(after) <= 20.0 or abs(after) == pytest.approx(best, abs=1e-6)
    if best <= 20.0:
        assert d.check() == 0.0 and d.n_rehedges == 1


@pytest.mark.parametrize("move", [0.03, -0.1])
def test_the_solve_lands_on_the_stable_cascades_fixed_point(move):
    """Permanent linear impact: net delta after hedges totalling Q depends only on Q. The
    solved single hedge (hedge_fraction 1, lam * G ~ 3.8) and a step-by-step cascade of
    quarter hedges (0.25 x 4.8 = 1.2 < 1.5: no solve) both end inside the 20-share band,
    their totals within 2 x 20 / (1 + lam G) + 1 shares of each other."""
    ends = []
    for fraction in (1.0, 0.25):
        sim = zero_dte_straddle(fraction=fraction)
        d = sim.dealers[0]
        start = d.shares
        sim.market.move(move)
        rounds = 0
        while d.check() != 0.0:
            rounds += 1
            assert rounds < 200
        assert abs(d.net_delta()) <= 20.0
        ends.append((d.shares - start, rounds, 1.0 + 1e-6 * d.option_delta_gamma()[1]))
    (q_solve, r_solve, resp), (q_cascade, r_cascade, _) = ends
    assert r_solve == 1 and r_cascade > 3  # one order against a real cascade
    assert abs(q_solve - q_cascade) <= 2 * 20.0 / resp + 1.0


# -- what the exit-3 message blames --------------------------------------------------------
def test_exit_3_names_what_moved_the_price_when_no_dealer_hedges(tmp_path, capsys):
    """No dealer: a pension selling 3M shares on day 2 of 2 (30 child orders of 100,000
    shares at lam 1e-4, $10 each) drives the price through 0. Exit 3, one line naming the
    order, the seller and the day; nothing about hedging or lam * G; no output left."""
    from mmsim.cli import main

    path = tmp_path / "dump.yaml"
    path.write_text(
        "name: dump\nclock: {days: 2}\nmarket: {S0: 100, impact: {lam: 1.0e-4}}\n"
        "news: {vol: 0.1, dt: 10}\n"
        "pensions:\n  - {name: seller, side: sell, shares: 3.0e6, start: 23460,"
        " duration: 1800, child_interval: 60}\n"
    )
    out = tmp_path / "out"
    assert main(["run", str(path), "-o", str(out), "-q"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "order of -100,000 shares by 'seller'" in err and "day 2 of 2" in err, err
    assert "hedg" not in err and "lam * G" not in err, err
    assert not out.exists()


def test_a_dealer_divergence_on_a_multi_day_run_names_the_day():
    """Short gamma at lam * G = -3 on a 3-day run stops in its first seconds: day 1 of 3."""
    sim = sized("one_year_atm_calls", -3.0, days=3)
    with pytest.raises(mmsim.InstabilityError, match=r"day 1 of 3; lam \* G at start = -3"):
        sim.run()


# -- a band that makes a dealer inert --------------------------------------------------------
@pytest.mark.parametrize(("band", "warns"), [(0.05, False), (0.5, True)])
def test_a_delta_per_contract_band_wider_than_the_books_swing_warns_in_one_line(
    band, warns, tmp_path, monkeypatch
):
    """20,000 one-year ATM calls: gross 2M shares, option delta moves ~+-0.095 per share
    for spot +-5% (190k shares). A 0.05 band (100k shares) can be reached; a 0.5 band
    (1M shares) is wider than the whole swing: one warning line naming the field."""
    import warnings

    from mmsim.cli import main

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main sets it
    path = tmp_path / "inert.yaml"
    path.write_text(
        "name: inert\nclock: {days: 0.001}\nmarket: {S0: 100, impact: {lam: 1.0e-9}}\n"
        f"dealers:\n  - band: {band}\n    band_unit: delta_per_contract\n"
        "    positions: [{type: call, strike: 100, expiry_days: 252, qty: 20000}]\n"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["run", str(path), "-o", str(tmp_path / "out"), "-q", "--no-plot"]) == 0
    mine = [w for w in caught if "delta per contract" in str(w.message)]
    assert len(mine) == int(warns), [str(w.message) for w in caught]
    if warns:
        line = warnings.formatwarning(mine[0].message, UserWarning, "x.py", 1)
        assert line.startswith("mmsim: warning: dealers[0].band: 0.5 delta per contract")
        assert "+- 5%" in line and line.count("\n") == 1, line


def test_a_dealer_whose_capacity_is_used_up_sleeps_until_its_window_rolls():
    """Capacity 50 shares per 60 s window, news moving price every second: once the
    window's 50 shares are traded (t = 1 s) the dealer does not wake on the 58 price
    changes left in the window; at t = 60 s it checks again and trades the next 50."""
    sc = {
        "clock": {"days": 0.01},
        "market": {"S0": 100.0, "impact": {"lam": 0.0}},
        "news": {"vol": 0.2, "dt": 1.0},
        "record": {"every": 10.0, "levels_every": 1.0e9},
        "engine": {"fast_path": "off"},  # counts the simpy agent's checks (the kernel's
        # sleep is bit-identical to it: tests/test_fastpath.py, price_capacity)
        "dealers": [
            {
                "band": 10,
                "capacity": 50,
                "capacity_window": 60,
                "start_hedged": False,  # 2,000 short calls unhedged: far outside the band
                "positions": [{"type": "call", "strike": 100, "expiry_days": 21, "qty": -2000}],
            }
        ],
    }
    sim = Simulation(load_scenario(sc), 1)
    d = sim.dealers[0]
    checks: list[float] = []
    check = d.check
    d.check = lambda: checks.append(sim.env.now) or check()  # type: ignore[method-assign]
    sim.advance(125.0)
    assert d.hedge_volume == 150  # three windows: [0, 60), [60, 120), [120, ...)
    woken = np.array(checks)
    assert not ((woken > 1.0) & (woken < 60.0)).any(), woken  # only t = 1 s, then 60 s
    assert (woken == 60.0).any() and (woken == 120.0).any()


@pytest.mark.parametrize(
    ("dealer", "expected"),
    [
        ({}, "long gamma, rehedges not settling"),
        ({"latency": 0.5}, "hedges that lag by 0.5 s"),
        ({"trigger": "schedule", "interval": 5.0}, "hedges on a 5 s schedule"),
    ],
)
def test_a_runaway_message_mentions_a_lag_only_when_there_is_one(dealer, expected):
    """On main an instant long-gamma dealer was told its 'hedges lag by 0 s'."""
    sim = sized("one_year_atm_calls", 0.5, **dealer)
    msg = sim.dealers[0]._runaway_message(8)
    assert expected in msg
    if not dealer:
        assert "lag" not in msg and "schedule" not in msg


def two_scheduled_dealers(kappa_each: float, seed: int) -> mmsim.Result:
    """Two dealers, each short (or long) one-year ATM calls sized to ``kappa_each``,
    both rehedging on the same 5 s schedule."""
    per = 1.0e-4 * 100 * 0.019848  # lam x share gamma of one contract (BSM, S = K = 100)
    positions = [{"type": "call", "strike": 100, "expiry_days": 252, "qty": kappa_each / per}]
    dealer = {"band": 0, "trigger": "schedule", "interval": 5.0, "positions": positions}
    sc = {
        "clock": {"days": 0.1},
        "market": {"S0": 100.0, "impact": {"lam": 1.0e-4}},
        "news": {"vol": 0.16, "dt": 1.0},
        "record": {"every": 10.0, "levels_every": 1.0e9},
        "dealers": [{"name": "a", **dealer}, {"name": "b", **dealer}],
    }
    return mmsim.run(sc, seed=seed)


def test_dealers_that_diverge_together_stop_though_each_ones_fills_settle():
    """Each dealer at lam * G = -0.6 (its own fills settle), -1.2 together: on main the
    price ran 100 -> 70 in two minutes and the run ended "fine". Now the dealers' lam * G
    measured on their fills, summed (-1.2), and two same-sign growing rehedges stop it,
    3 seeds, within the first minute."""
    for seed in range(3):
        with pytest.raises(mmsim.InstabilityError, match=r"own fills is -1.2 <= -1") as err:
            two_scheduled_dealers(-0.6, seed)
        assert float(str(err.value).split("at t=")[1].split("s")[0]) < 60.0


@pytest.mark.parametrize("kappa_each", [-0.3, 0.3])
def test_dealers_stable_together_are_not_stopped(kappa_each):
    """-0.6 / +0.6 combined: stable AR(1) feedback, 2,340 s, 2 seeds, no alarm."""
    for seed in range(2):
        assert np.isfinite(two_scheduled_dealers(kappa_each, seed).series["price"]).all()
