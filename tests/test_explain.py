"""Counterfactual replay (mmsim.explain) and the episodes table it rewrites.

Removing one agent must leave every other agent's random draws untouched (each draws
from its own SeedSequence child), the removals must do exactly what they say, the
Shapley shares must satisfy their axioms, and an explanation must be saved, reloaded and
recomputed identically on every executor.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmsim
from mmsim.cli import main
from mmsim.engine import Simulation
from mmsim.episodes import BACKGROUND_CAUSES, CAUSES, clock_time, episode_lines
from mmsim.explain import (
    Removal,
    _primary,
    candidates,
    explain,
    explain_dir,
    occurs,
    shapley,
    truncated,
    without,
)

ROOT = Path(__file__).resolve().parents[1]

# Every kind of candidate in one small scenario (1,170 s of trading time).
BASE = {
    "name": "streams",
    "clock": {"days": 0.05},
    "market": {"S0": 100.0, "impact": {"lam": 1.0e-5}},
    "news": {"vol": 0.2},
    "noise": {"rate": 0.5, "mean_size": 100},
    "dealers": [
        {
            "band": 100,
            "positions": [
                {"type": "call", "strike": 101, "expiry_days": 0.05, "qty": -300},
                {"type": "put", "strike": 95, "expiry_days": 5, "qty": 200, "visible": False},
            ],
        }
    ],
    "customers": [
        {"segment": "retail_call_buyers", "rate": 0.05, "expiry_days": [0.05, 5]},
        {"segment": "put_hedgers", "rate": 0.05, "expiry_days": [5]},
    ],
    "pensions": [{"side": "buy", "shares": 20000, "start": 100, "duration": 600}],
    "events": [
        {"at": 300, "kind": "vol_shift", "d_atm": 0.05},
        {"at": 400, "kind": "gap", "gap": 0.01},
    ],
}
SEED = 5


@pytest.fixture(scope="module")
def scenario():
    return mmsim.load_scenario(BASE)


def removal(scenario, key: str) -> Removal:
    found = {r.key: r for r in candidates(scenario, 500.0)}
    return found[key]


def test_every_candidate_of_an_episode_is_offered_with_its_cause(scenario):
    found = {r.key: r.cause for r in candidates(scenario, 500.0)}
    assert found == {
        "pension:0": "overwhelming_flow",
        "customers:0": "customer_flow",
        "customers:1": "customer_flow",
        "otc": "otc_offset",
        "event:0": "vol_regime_shift",
        "event:1": "gap",
        "expiry:1170": "expiration_melt",
        "news@0": "news",  # the window starts before the open: clipped to 0
        "noise@0": "news",
    }
    # an episode confirmed (10 s after its start) before the events and the pension
    quick = mmsim.load_scenario({**BASE, "record": {"episodes": {"duration": 10}}})
    early = {r.key for r in candidates(quick, 0.0)}
    assert not early & {"pension:0", "event:0", "event:1"}
    assert set(CAUSES) >= set(found.values()) and BACKGROUND_CAUSES == ("news",)


@pytest.mark.parametrize("key", ["customers:0", "pension:0", "otc", "event:1", "news@0"])
def test_removing_one_agent_leaves_every_other_stream_untouched(scenario, key):
    """Generator states at construction, and what the others drew over a whole run:
    the put hedgers' arrival times and the noise orders are the same to the bit."""
    ref = Simulation(scenario, SEED)
    alt = Simulation(without(scenario, [removal(scenario, key)]), SEED)
    state = lambda g: g.bit_generator.state  # noqa: E731
    assert state(ref.noise.rng) == state(alt.noise.rng)
    assert state(ref.customers[1].rng) == state(alt.customers[1].rng)
    if key != "news@0":
        assert state(ref.news.rng) == state(alt.news.rng)
    a, b = ref.run(), alt.run()
    hedgers = [
        r.option_trades.loc[r.option_trades["segment"] == "put_hedgers1", "t"] for r in (a, b)
    ]
    assert len(hedgers[0]) > 0
    np.testing.assert_array_equal(hedgers[0].to_numpy(), hedgers[1].to_numpy())
    noise = [r.trades.loc[r.trades["agent"] == "noise", ["t", "qty"]] for r in (a, b)]
    assert len(noise[0]) > 100
    np.testing.assert_array_equal(noise[0].to_numpy(), noise[1].to_numpy())


def test_news_and_noise_stop_leave_the_path_before_them_unchanged():
    """Only news and noise move price: with both stopped at 600 s the path is the same up
    to 600 s and flat after it (the removal the replay of an episode uses)."""
    only = {"name": "walk", "clock": {"days": 0.05}, "news": {"vol": 0.3}, "noise": {"rate": 0.5}}
    full = mmsim.run(only, seed=SEED).series
    cut = mmsim.run(
        {**only, "news": {"vol": 0.3, "stop": 600}, "noise": {"rate": 0.5, "stop": 600}}, seed=SEED
    ).series
    before = full["t"] <= 600
    pd.testing.assert_series_equal(full.loc[before, "price"], cut.loc[before, "price"])
    after = cut.loc[cut["t"] > 600, "price"]
    assert after.nunique() == 1 and full.loc[~before, "price"].nunique() > 10


def test_removals_do_what_they_say(scenario):
    def drop(*keys):
        return without(scenario, [removal(scenario, k) for k in keys])

    assert drop("pension:0").pensions == []
    gone = drop("customers:0").customers
    assert [c.rate for c in gone] == [0.0, 0.05]  # index kept: streams do not move
    assert [p.visible for p in drop("otc").dealers[0].positions] == [True]
    assert [e.kind for e in drop("event:0").events] == ["gap"]
    assert [e.kind for e in drop("event:1").events] == ["vol_shift"]
    rolled = drop("expiry:1170")
    assert rolled.dealers[0].positions[0].expiry_days == pytest.approx(1.05)
    assert rolled.customers[0].expiry_days == pytest.approx([1.05, 5])
    assert drop("news@0").news.stop == 0.0 and drop("noise@0").noise.stop == 0.0
    both = drop("pension:0", "event:1", "otc")
    assert both.pensions == [] and [e.kind for e in both.events] == ["vol_shift"]
    assert scenario.pensions and len(scenario.events) == 2  # the input is unchanged


def test_rolling_an_expiry_onto_a_listed_one_keeps_the_list_valid():
    sc = mmsim.load_scenario(
        {**BASE, "customers": [{"segment": "put_hedgers", "rate": 0.05, "expiry_days": [1, 2]}]}
    )
    rolled = without(sc, [Removal("expiry:23400", "expiration_melt", "")])
    assert rolled.customers[0].expiry_days == [2.0]


def test_truncated_replays_stop_only_where_nothing_changes(scenario):
    # the pension runs to 700 s: cutting before it would re-slice its child orders
    assert truncated(scenario, 500.0) == scenario
    short = truncated(scenario, 705.0)
    assert short.clock.duration == pytest.approx(720.0)  # next sample, plus one
    a = mmsim.run(scenario, seed=SEED).series
    b = mmsim.run(short, seed=SEED).series
    pd.testing.assert_frame_equal(a.iloc[: len(b) - 1], b.iloc[:-1])


def test_occurs_needs_the_level_held_for_the_duration_near_the_window():
    t = np.arange(0.0, 1000.0, 10.0)
    price = np.full(t.size, 100.0)
    price[(t >= 400) & (t < 700)] = 101.0  # beyond 100.5 for 290 s (samples 400..690)
    args = (100.0, 1.0, 0.005)
    assert occurs(t, price, *args, 290.0, (0.0, 1000.0))
    assert not occurs(t, price, *args, 300.0, (0.0, 1000.0))  # not held long enough
    assert not occurs(t, price, *args, 290.0, (800.0, 1000.0))  # outside the window
    assert not occurs(t, price, 100.0, -1.0, 0.005, 10.0, (0.0, 1000.0))  # other side
    assert not occurs(t, price, 100.7, 1.0, 0.005, 10.0, (0.0, 1000.0))  # not far enough


def test_shapley_values_are_exact_on_known_games():
    # both needed (a push and a weak wall): half each; a dummy gets nothing
    both = shapley(["a", "b", "c"], lambda s: float({"a", "b"} <= s))
    assert both == pytest.approx({"a": 0.5, "b": 0.5, "c": 0.0}, abs=1e-12)
    # either suffices (over-determined): half each again, efficiency v(all) = 1
    either = shapley(["a", "b"], lambda s: float(bool(s)))
    assert either == pytest.approx({"a": 0.5, "b": 0.5}, abs=1e-12)
    # additive games: the value is each player's own weight, exact even when sampled
    weights = {f"p{i}": 0.1 * (i + 1) for i in range(8)}  # 8 > MAX_EXACT: sampled
    additive = shapley(list(weights), lambda s: sum(weights[p] for p in s))
    assert additive == pytest.approx(weights, abs=1e-12)


def test_primary_is_the_largest_share_with_wall_changes_winning_ties():
    r = {
        "otc": Removal("otc", "otc_offset", ""),
        "event:0": Removal("event:0", "gap", ""),
        "news@0": Removal("news@0", "news", ""),
        "noise@0": Removal("noise@0", "news", ""),
    }
    assert _primary({"otc": 0.5, "event:0": 0.5}, r).key == "otc"  # each necessary
    assert _primary({"otc": 0.2, "event:0": 0.8}, r).key == "event:0"
    # the random walk is the cause only when nothing scripted has a share; news and
    # noise orders are one cause together
    assert _primary({"event:0": 0.1, "news@0": 0.5, "noise@0": 0.4}, r).key == "event:0"
    assert _primary({"news@0": 0.5, "noise@0": 0.5}, r).cause == "news"
    assert _primary({"otc": 0.0}, r) is None


def test_session_clock_times():
    assert clock_time(0.0, 23_400.0) == "d1 09:30:00"
    assert clock_time(16_210.0, 23_400.0) == "d1 14:00:10"
    assert clock_time(23_400.0, 23_400.0) == "d2 09:30:00"
    assert clock_time(23_400.0, 23_400.0, closing=True) == "d1 16:00:00"
    assert clock_time(3_600.0, 3_600.0, closing=True) == "d1 10:30:00"  # a 1-hour session


@pytest.fixture(scope="module")
def pension_run(tmp_path_factory):
    """pension_overwhelm up to its first break's replay window, saved."""
    result = mmsim.run(ROOT / "scenarios/pension_overwhelm.yaml", overrides={"clock.days": 0.47})
    return result, result.save(tmp_path_factory.mktemp("runs") / "pension")


def test_a_break_seen_in_both_views_is_one_episode(pension_run):
    e = pension_run[0].episodes
    assert len(e) >= 1
    row = e.iloc[0]
    assert row["views"] == "true+visible"
    assert (row["level_true"], row["level_visible"], row["level"]) == (102.0, 102.0, 102.0)
    assert not e.duplicated(["kind", "start"]).any()


def test_explain_saves_reloads_and_is_the_same_on_every_executor(
    pension_run, tmp_path, monkeypatch
):
    result, path = pension_run
    monkeypatch.setattr(mmsim.explain, "POOL_FROM", 1)  # 3 replays: use the pool anyway
    serial = explain(result, executor="serial")
    _, saved = explain_dir(path, executor="processes", workers=2)
    pd.testing.assert_frame_equal(serial.table, saved.table)
    assert (serial.table.groupby("episode")["primary"].sum() == 1).all()
    again = mmsim.load_result(path)
    assert again.episodes.equals(saved.episodes)
    assert set(again.episodes["cause_source"]) == {"counterfactual"}
    assert again.metrics["episodes.overwhelming_flow"] == float(
        (again.episodes["primary_cause"] == "overwhelming_flow").sum()
    )
    report = json.loads((path / "explain.json").read_text())
    assert report["episodes"][0]["primary_cause"] == "overwhelming_flow"
    assert report["episodes"][0]["evidence_cause"] == "overwhelming_flow"
    assert pd.read_parquet(path / "explain.parquet").equals(saved.table)
    mode = 0o666 & ~mmsim.paths._umask()  # as open() would (mkstemp's 0600 before)
    for name in ("explain.parquet", "explain.json", "episodes.parquet", "metrics.json"):
        assert stat.S_IMODE((path / name).stat().st_mode) == mode, name
    assert not [p.name for p in path.iterdir() if p.name.endswith(".tmp")]
    # the whole result, explained episodes included, still round-trips exactly
    assert mmsim.load_result(again.save(tmp_path / "copy")).equals(again)


def test_summary_lines_use_clock_times_and_say_what_causes_mean(pension_run):
    result = pension_run[0]
    text = "\n".join(episode_lines(result.episodes, result.scenario))
    start = clock_time(result.episodes["start"].iloc[0], 23_400.0)
    assert start.startswith("d1 11:") and start in text
    assert "102.00" in text and "mmsim explain" in text
    walk = result.episodes.assign(primary_cause="news")
    assert "random walk" in "\n".join(episode_lines(walk, result.scenario))


def test_cli_explain_prints_the_table_and_bad_input_is_one_line(pension_run, capsys, tmp_path):
    _, path = pension_run
    assert main(["explain", str(path), "--executor", "serial", "-q"]) == 0
    assert main(["explain", str(path), "--executor", "serial"]) == 0
    out = capsys.readouterr().out
    assert "primary cause: overwhelming_flow" in out and "rebalance" in out
    assert main(["explain", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a result directory" in err[0]
    assert main(["explain", str(path), "--workers", "0"]) == 2
    assert "--workers 0" in capsys.readouterr().err


def test_cli_run_explain_writes_the_explanation(tmp_path, capsys):
    gap = tmp_path / "gap.yaml"
    gap.write_text(
        "name: gap\nclock: {days: 0.06}\nnews: {vol: 0.05}\n"
        "market: {S0: 100, impact: {lam: 1.0e-6}}\n"
        "dealers:\n  - band: 100\n    positions:\n"
        "      - {type: call, strike: 101, expiry_days: 21, qty: 5000}\n"
        "events:\n  - {at: 300, kind: gap, gap: 0.02}\n"
    )
    out = tmp_path / "run"
    assert main(["run", str(gap), "-o", str(out), "--no-plot", "--explain", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert "call_wall_break" in text and "primary cause: gap" in text
    assert "d1 09:35:" in text  # the break, on the session clock
    assert (out / "explain.json").is_file() and (out / "explain.parquet").is_file()
    assert mmsim.load_result(out).episodes["primary_cause"].iloc[0] == "gap"


def test_a_run_without_a_seed_replays_from_its_saved_entropy():
    """Replays use ``Result.entropy``: for a run drawn from fresh entropy (no seed), the
    same entropy rebuilds every stream, so the replay with nothing removed is the run."""
    sc = mmsim.load_scenario(ROOT / "scenarios/long_gamma.yaml", overrides={"clock.days": 0.05})
    first = Simulation(sc, None).run()
    again = Simulation(sc, first.entropy).run()
    assert first.seed is None
    pd.testing.assert_frame_equal(first.series, again.series)
