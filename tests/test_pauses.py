"""Progress pauses: a run with a progress bar (or ``keep_partial``) is the run without.

``Simulation.run`` stops the loop 100 times for its bar; the book's liquidity flow ends
its blocks at the next event in simpy's queue, so before :mod:`mmsim.pauses` a paused
run of Buis et al.'s hedgers was another run (361 vs 406 trades on seed 1), and
``mmsim run`` (always paused: Ctrl-C keeps the partial run) disagreed with ``mmsim.run``.
"""

from __future__ import annotations

import math

import pytest
import simpy
from simpy.core import URGENT
from test_lobpath import BUIS, ZI, _assert_same

from mmsim.engine import Simulation
from mmsim.pauses import next_event, schedule_pause
from mmsim.scenario import load_scenario


def test_next_event_looks_past_a_pause_and_nothing_else():
    env = simpy.Environment()
    assert next_event(env) == math.inf
    env.timeout(5.0)
    env.timeout(4.0)
    schedule_pause(env, 3.0)
    assert env.peek() == 3.0 and next_event(env) == 4.0
    stop = simpy.Event(env)  # env.run(until=2.0)'s own stop: the model sees it
    stop._ok, stop._value = True, None
    env.schedule(stop, URGENT, 2.0)
    assert next_event(env) == 2.0
    lone = simpy.Environment()
    schedule_pause(lone, 1.0)
    assert next_event(lone) == math.inf


def test_a_pause_stops_the_loop_where_a_plain_stop_does():
    """Urgent, like ``env.run(until=t)``'s stop: events already due at ``t`` stay
    unplayed, the clock is ``t``."""
    env = simpy.Environment()
    played = []
    env.timeout(2.0).callbacks.append(lambda e: played.append(env.now))
    env.run(until=schedule_pause(env, 2.0))
    assert env.now == 2.0 and played == []
    env.run(until=3.0)
    assert played == [2.0]


@pytest.mark.parametrize(
    ("case", "data", "seeds"),
    [("Buis et al.'s hedgers", BUIS, (1, 2)), ("continuous book", ZI, (1,))],
)
@pytest.mark.parametrize("path", ["off", "on"])
def test_a_paused_book_run_is_the_whole_run(case, data, seeds, path):
    """Series, trades, ledger, option trades, episodes, metrics and status equal exactly
    (no tolerance) with and without the 100 pauses of ``keep_partial``, on the simpy
    agents and in the kernel (8 sessions of Buis et al.'s book; 468 s of the continuous
    one). Without pauses the stops end the flow's blocks: seed 1 of Buis et al.'s case
    gives 406 trades paused, 361 whole."""
    sc = load_scenario({**data, "engine": {"fast_path": path}})
    for seed in seeds:
        whole = Simulation(sc, seed).run()
        paused = Simulation(sc, seed).run(keep_partial=True)
        _assert_same(whole, paused, f"{case}, fast_path {path}, seed {seed}")


def test_a_paused_dry_out_run_is_the_whole_run():
    """The shipped dry-out desk (the book, a pension's child orders, dry-outs), both
    paths it may take, paused and whole: equal exactly."""
    sc = load_scenario("scenarios/liquidity_dry_out.yaml")
    whole = Simulation(sc, 3).run()
    paused = Simulation(sc, 3).run(progress=True)
    _assert_same(whole, paused, "liquidity_dry_out seed 3")
