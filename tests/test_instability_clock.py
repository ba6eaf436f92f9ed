"""Where a diverged run stopped: the error's time, simpy's clock and the run so far.

The compiled kernel runs ahead of simpy's clock within a segment (up to the next
discrete event). When it detects divergence (``1 + lam * G <= 0.01``, a runaway, a price
leaving its domain) the simpy clock must be moved to where it stopped, as the simpy
agents' path leaves it: else a result of the run so far values the book at the
segment's start, not at the divergence (the P&L after the last fill differs).
"""

from __future__ import annotations

import re

import pytest
import simpy
from test_fastpath import BASE, _assert_same, _dealer

from mmsim.engine import Simulation
from mmsim.errors import InstabilityError
from mmsim.run_env import stop_now
from mmsim.scenario import load_scenario

CASES = {  # (scenario changes over test_fastpath's BASE, seed); all diverge
    "short gamma, lam G = -2.6, first second": ({"dealers": [_dealer("d", -13000, band=10)]}, 3),
    "short gamma, band 2,000, mid-run": ({"dealers": [_dealer("d", -9000, band=2000)]}, 1),
    "lagged long gamma over-correcting": (
        {
            "market": {"S0": 100.0, "impact": {"lam": 2.0e-4}, "half_spread": 0.0},
            "dealers": [_dealer("d", 5000, band=5, latency=0.5)],
        },
        3,
    ),
    "short gamma, day 1 of 2": (
        {"clock": {"days": 2}, "dealers": [_dealer("d", -11000, band=10)]},
        3,
    ),
    # two desks rehedging at the same instants, -0.6 each: 'a' runs away first; simpy's
    # event order had 'b' trade after it (one trade more than the kernel) before the fix
    "two scheduled desks, same instants": (
        {
            "market": {"S0": 100.0, "impact": {"lam": 1.0e-4}, "half_spread": 0.0},
            "dealers": [_dealer(x, -3000, band=5, trigger="schedule", interval=30.0) for x in "ab"],
        },
        3,
    ),
}


def _diverge(case: dict, seed: int, mode: str) -> tuple[Simulation, str]:
    sim = Simulation(load_scenario({**BASE, **case, "engine": {"fast_path": mode}}), seed)
    with pytest.raises(InstabilityError) as err:
        sim.run()
    return sim, str(err.value)


@pytest.mark.parametrize("name", sorted(CASES))
def test_clock_message_and_partial_result_agree_on_both_paths(name):
    """Same seed on the simpy agents and on the compiled kernel (0.1 or 2 days): the same
    message; simpy's clock is the time the message gives (the kernel's stop, not the
    start of its segment); the last sample is at or before it; the result of the run so
    far (sampled up to the last sample, the book valued at the clock) is identical,
    exactly (no tolerance: the kernel is bit-identical to its oracle)."""
    case, seed = CASES[name]
    runs = [_diverge(case, seed, mode) for mode in ("off", "on")]
    (off, msg_off), (on, msg_on) = runs
    assert msg_off == msg_on, name
    t = float(re.search(r"at t=([\d.]+)s", msg_on).group(1))
    for sim, mode in ((off, "off"), (on, "on")):
        assert sim.env.now == pytest.approx(t, abs=1e-3), f"{name}, fast path {mode}: clock"
        rec = sim.recorder
        assert rec.times[rec.filled - 1] <= sim.env.now, f"{name}, {mode}: last sample"
    assert off.hot is None and on.hot is not None and on.hot.clock == on.env.now
    end = float(on.recorder.times[on.recorder.filled - 1])
    _assert_same(off._result(end=end), on._result(end=end), f"{name}: the run so far")


def test_a_stop_now_error_ends_its_instant_and_is_raised_once():
    """Two processes due at t = 1 s: the first fails through ``stop_now``, so the second
    never runs at that instant (without it, simpy runs the second first: its failure is
    queued behind the instant's normal events); stepping on after the error does not
    raise it a second time (the process's own failure is defused)."""
    ran = []

    def failing(env):
        yield env.timeout(1.0)
        raise stop_now(env, InstabilityError("diverged"))

    def other(env):
        yield env.timeout(1.0)
        ran.append(env.now)

    env = simpy.Environment()
    env.process(failing(env))
    env.process(other(env))
    with pytest.raises(InstabilityError, match="diverged"):
        env.run()
    assert ran == [] and env.now == 1.0, "a second process acted at the failed instant"
    env.run()  # the defused failure and the rest of the run: no second raise
    assert ran == [1.0]


def test_the_event_loop_pays_nothing_for_divergence():
    """The run's loop is simpy's own ``schedule`` (a per-event check for failed
    processes made the simpy agents ~11% slower): the urgency is at the raise sites."""
    sim = Simulation(load_scenario({**BASE, "engine": {"fast_path": "off"}}), 1)
    assert type(sim.env).schedule is simpy.Environment.schedule
