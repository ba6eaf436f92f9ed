"""``python -m benchmarks.scheduled_watch``: false alarms and detection of the scheduled
dealers' divergence watch (:func:`mmsim.hedge_rules.scheduled_watch`).

Several dealers on schedules can diverge together (combined ``lam * G <= -1``) while
each one's own fills settle; the watch stops such a run from the growth of each
dealer's rehedges. A stopped stable run is a wrong answer, a diverging run that goes on
is one too. Two parts, both calling the very function both engine paths call:

- **model**: two desks at ``lam * G`` = ``k * split`` and ``k * (1 - split)``, hedging
  to zero on one schedule (in turn at each instant) or staggered (half a step apart),
  whole shares, bands 5 and 60 shares, Gaussian or Student-t(3) moves, and changes of
  the flow that a stable pair must ride out: the exogenous vol x10 from a random round,
  three random jumps (x10, x0.1 or x3), five bursts of 1-20 rounds at x10, three ramps
  of x1.5 a round for 6 rounds, or every desk's gamma x10 at a random round (from
  ``k / 10`` to ``k``). One-day runs (4,680 rounds of 5 s) at combined
  ``k`` = -0.95, -0.9, -0.7, +0.9, +0.95; detection runs (3,000 rounds) at -1.05 to -2.
- **engine**: whole runs (compiled fast path, bit-identical to the simpy agents) of 2 or 3
  scheduled desks short (or long) 1-year ATM calls, non-shipped parameters drawn per run:
  combined ``lam * G`` at the start, split, lam, interval (5, 10, 30 s) and phases, band,
  news vol, noise orders, a 3% gap, or new positions raising every desk's gamma x5
  mid-run. Reports runs stopped by combined ``lam * G``, and for diverging pairs when
  they stopped and how far the price had gone.

``--model-seeds N`` (default 100: 48,000 one-day model runs), ``--engine-runs N``
(default 2,000 stable engine runs of half a day), ``--detect-runs N`` (default 60 per
diverging level). CPU: ~1 min for the model, ~2-4 min for the engine on one core.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
import zlib

import numpy as np
from numba import njit

from mmsim.hedge_rules import WATCH_QUIET, scheduled_watch

STABLE = (-0.95, -0.9, -0.7, 0.9, 0.95)
DIVERGING = (-1.05, -1.1, -1.2, -1.6, -2.0)
KINDS = ("const", "jump10", "jumps", "gamma10", "burst", "ramp")


@njit(cache=True)
def _model(xa, xb, staggered, sig, z, band, gamma_at, gamma_x):
    """Two desks at ``lam * G`` ``xa`` and ``xb`` (lam 1e-4 $/share), moves
    ``sig[t] * z`` ($; two draws a round), each desk's gamma x ``gamma_x`` from round
    ``gamma_at``: the 1-based round at which the watch stops a desk, else 0."""
    lam = 1.0e-4
    g = np.array([xa / lam, xb / lam])
    spot = 0.0
    ref = np.zeros(2)  # spot at which each desk's net delta is zero ($)
    state = np.zeros((2, 4))
    feed = np.zeros(2)  # lam * G measured on each desk's last fill of 10 shares or more
    for t in range(sig.size):
        if t == gamma_at:
            for i in range(2):  # delta unchanged, gamma x gamma_x
                d = g[i] * (spot - ref[i])
                g[i] *= gamma_x
                ref[i] = spot - d / g[i]
        for i in range(2):
            if staggered or i == 0:
                spot += sig[t] * z[2 * t + i] * (math.sqrt(0.5) if staggered else 1.0)
            delta = g[i] * (spot - ref[i])
            qty = 0.0 if abs(delta) <= band else float(math.trunc(-delta))
            ref[i] = spot - (delta + qty) / g[i]
            spot += lam * qty
            if abs(qty) >= 10.0:
                feed[i] = lam * g[i]
            s, last, typ, growth, verdict = scheduled_watch(
                qty, state[i, 0], state[i, 1], state[i, 2], state[i, 3], feed[0] + feed[1]
            )
            state[i, 0], state[i, 1], state[i, 2], state[i, 3] = s, last, typ, growth
            if verdict != WATCH_QUIET:
                return t + 1
    return 0


def _flow(kind: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int, float]:
    """The move scale per round ($) and a gamma jump (round, factor) for ``kind``."""
    sig = np.full(n, 0.015)
    if kind == "jump10":
        sig[rng.integers(10, n - 10) :] *= 10.0
    elif kind == "jumps":
        for _ in range(3):
            sig[rng.integers(10, n - 10) :] *= rng.choice([10.0, 0.1, 3.0])
    elif kind == "burst":
        for _ in range(5):
            a = rng.integers(10, n - 30)
            sig[a : a + rng.integers(1, 20)] *= 10.0
    elif kind == "ramp":
        for _ in range(3):
            a = rng.integers(10, n - 30)
            for j in range(6):
                sig[a + j :] *= 1.5
    elif kind == "gamma10":
        return sig, int(rng.integers(10, n - 10)), 10.0
    return sig, -1, 1.0


def _cases():
    for split in (0.5, 0.75):
        for staggered in (False, True):
            for dist in ("gauss", "t3"):
                for band in (5.0, 60.0):
                    yield split, staggered, dist, band


def _draws(dist: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if dist == "gauss":
        return rng.standard_normal(2 * n)
    return rng.standard_t(3, 2 * n) / math.sqrt(3.0)


def model_false_alarms(seeds: int, n: int = 4_680) -> tuple[int, int, dict]:
    """(runs stopped, runs, stopped runs by case) at the stable levels."""
    stopped, runs, where = 0, 0, {}
    for k in STABLE:
        for kind in KINDS:
            for split, staggered, dist, band in _cases():
                case = (k, kind, split, staggered, dist, band)
                rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
                for _ in range(seeds):
                    sig, at, x = _flow(kind, n, rng)
                    z = _draws(dist, n, rng)
                    xa, xb = k * split, k * (1.0 - split)
                    if kind == "gamma10":
                        xa, xb = xa / 10.0, xb / 10.0
                    runs += 1
                    if _model(xa, xb, staggered, sig, z, band, at, x):
                        stopped += 1
                        where[case] = where.get(case, 0) + 1
    return stopped, runs, where


def model_detection(seeds: int, n: int = 3_000) -> dict:
    """Per diverging level: (runs, missed, median, 99th percentile, max rounds)."""
    out = {}
    for k in DIVERGING:
        rounds = []
        for split, staggered, dist, band in _cases():
            rng = np.random.default_rng(
                zlib.crc32(repr((k, split, staggered, dist, band)).encode())
            )
            for _ in range(seeds):
                z = _draws(dist, n, rng)
                sig = np.full(n, 0.015)
                rounds.append(_model(k * split, k * (1 - split), staggered, sig, z, band, -1, 1.0))
        r = np.array(rounds)
        hit = r[r > 0]
        out[k] = (
            r.size,
            int((r == 0).sum()),
            *(int(v) for v in np.percentile(hit, [50, 99])),
            int(hit.max()),
        )
    return out


def _gamma_per_contract(S0: float = 100.0, vol: float = 0.2) -> float:
    """Share gamma of one 1-year ATM call contract (x100), shares per $1."""
    from mmsim.greeks import bsm_greeks

    return 100.0 * float(bsm_greeks(S0, S0, 1.0, vol).gamma)


def engine_case(kappa: float, rng: np.random.Generator, days: float, changes: bool = True) -> dict:
    """A scenario of 2-3 scheduled desks at combined ``lam * G`` ``kappa`` at the start,
    other parameters drawn from ``rng`` (see the module docstring); ``changes``: with a
    chance of a gap or of new positions mid-run (the whole ``kappa`` from then on)."""
    n = int(rng.choice([2, 3]))
    split = rng.dirichlet(np.full(n, 2.0))
    lam = float(rng.choice([5.0e-5, 1.0e-4, 2.0e-4]))
    shared = bool(rng.random() < 0.5)
    interval = float(rng.choice([5.0, 10.0, 30.0]))
    band = float(rng.choice([0.0, 5.0, 50.0]))
    jump = rng.random()
    gex = _gamma_per_contract()
    ramp = changes and jump < 0.25  # new positions: every desk's gamma x5 mid-run
    dealers, events = [], []
    for i in range(n):
        qty = kappa * split[i] / (lam * gex)
        first = qty / 5.0 if ramp else qty
        dealers.append(
            {
                "name": f"d{i}",
                "trigger": "schedule",
                "interval": interval if shared else float(rng.choice([5.0, 10.0, 30.0])),
                "phase": 0.0 if shared else float(rng.uniform(0.0, 5.0)),
                "band": band,
                "positions": [{"type": "call", "strike": 100, "expiry_days": 252, "qty": first}],
            }
        )
        if ramp:
            pos = [{"type": "call", "strike": 100, "expiry_days": 252, "qty": qty - first}]
            at = 600.0 + 60.0 * i
            events.append({"at": at, "kind": "positions", "dealer": i, "positions": pos})
    if changes and 0.25 <= jump < 0.5:
        events.append(
            {"at": float(rng.uniform(600, 3000)), "kind": "gap", "gap": 0.03 * rng.choice([-1, 1])}
        )
    return {
        "name": "watch",
        "clock": {"days": days},
        "market": {"S0": 100.0, "impact": {"model": "linear", "lam": lam}, "half_spread": 0.0},
        "vol": {"atm": 0.20},
        "news": {"vol": float(rng.choice([0.08, 0.16, 0.32])), "dt": 1.0},
        "noise": {
            "rate": float(rng.choice([0.0, 0.2, 1.0])),
            "mean_size": float(rng.choice([100, 1000])),
        },
        "dealers": dealers,
        "events": events,
    }


def engine_run(case: dict, seed: int) -> tuple[str | None, float, float]:
    """(the InstabilityError's text or None, clock at the end (s), price at the end $)."""
    from mmsim.engine import Simulation
    from mmsim.errors import InstabilityError
    from mmsim.scenario import load_scenario

    sim = Simulation(load_scenario(case), seed)
    try:
        sim.run(tables=False)
    except InstabilityError as err:
        return str(err), float(sim.env.now), float(sim.market.mid)
    return None, float(sim.env.now), float(sim.market.mid)


def engine_false_alarms(runs: int, days: float = 0.5) -> tuple[dict, list]:
    """Runs stopped / runs per stable level, and the stopped runs' messages."""
    counts, stops = {}, []
    for i in range(runs):
        rng = np.random.default_rng([20_261_127, i])
        kappa = STABLE[i % len(STABLE)]
        case = engine_case(kappa, rng, days)
        msg, _, _ = engine_run(case, i)
        hit, total = counts.get(kappa, (0, 0))
        counts[kappa] = (hit + (msg is not None), total + 1)
        if msg is not None:
            stops.append((kappa, i, msg))
    return counts, stops


def engine_detection(runs: int, days: float = 1.0) -> dict:
    """Per diverging level: (runs, ran to the end, median / max stop time s, median /
    max |price / 100 - 1| at the stop, the rules' words)."""
    out = {}
    for kappa in (-1.05, -1.2, -1.6):
        ended, times, moves, kinds = 0, [], [], {}
        for i in range(runs):
            rng = np.random.default_rng([20_261_128, i, int(-kappa * 100)])
            case = engine_case(kappa, rng, days, changes=False)
            msg, t, mid = engine_run(case, i)
            if msg is None:
                ended += 1
                continue
            times.append(t)
            moves.append(abs(mid / 100.0 - 1.0))
            word = re.search(r"(ran away|diverged|price (?:left|reached))", msg)
            key = word.group(1) if word else msg[:40]
            kinds[key] = kinds.get(key, 0) + 1
        t, m = np.array(times or [math.nan]), np.array(moves or [math.nan])
        out[kappa] = (runs, ended, np.median(t), t.max(), np.median(m), m.max(), kinds)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.scheduled_watch", description=__doc__.split("\n")[0]
    )
    p.add_argument("--model-seeds", type=int, default=100)
    p.add_argument("--engine-runs", type=int, default=2000)
    p.add_argument("--detect-runs", type=int, default=60)
    a = p.parse_args(argv)
    if a.model_seeds:
        start = time.process_time()
        stopped, runs, where = model_false_alarms(a.model_seeds)
        print(f"model, combined lam*G in {STABLE}: {stopped} of {runs} one-day runs stopped")
        for case, c in sorted(where.items(), key=lambda kv: -kv[1])[:8]:
            print(f"  {c} x {case}")
        print("model detection (runs, ran on, median / p99 / max rounds to the stop):")
        for k, row in model_detection(max(a.model_seeds // 2, 5)).items():
            print(f"  {k:+.2f}: {row}")
        print(f"  ({time.process_time() - start:.0f} s CPU)")
    if a.engine_runs:
        start = time.process_time()
        counts, stops = engine_false_alarms(a.engine_runs)
        total = sum(c[0] for c in counts.values())
        print(f"engine, half-day runs: {total} of {a.engine_runs} stopped; by lam*G {counts}")
        for kappa, i, msg in stops[:8]:
            print(f"  {kappa:+.2f} run {i}: {msg}")
        print(f"  ({time.process_time() - start:.0f} s CPU)")
    if a.detect_runs:
        start = time.process_time()
        print(
            "engine detection, one-day runs (runs, ran to the end, median / max stop s, "
            "median / max price move, rules):"
        )
        for k, row in engine_detection(a.detect_runs).items():
            runs, ended, tm, tx, mm, mx, kinds = row
            print(
                f"  {k:+.2f}: {runs} runs, {ended} ran on, stop at {tm:.0f} / {tx:.0f} s, "
                f"price moved {mm:.1%} / {mx:.1%}, {kinds}"
            )
        print(f"  ({time.process_time() - start:.0f} s CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
