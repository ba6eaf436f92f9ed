"""The limit order book on the fast path: CPU of book runs, kernel vs simpy agents.

    python -m benchmarks.lob_fastpath [--repeat 3]

Per case, one run of the simulation loop (``Simulation.run``, imports and numba cache
loads excluded: a warm-up run first) with ``engine.fast_path: off`` (the simpy agents,
what main ran for every book) and ``on`` (the kernel), CPU seconds (``process_time``),
min and median of ``--repeat`` runs, and the ratio of the minima. The shipped book
scenarios the kernel does not run (limit-order hedgers, a pension tied with the news
ticks) are listed with their reason. Cases (the tests' set-ups, ``tests/test_lobpath.py``):

- ``thin_scheduled``: Buis et al.'s book (40 orders a quarter), a short-put desk hedging
  every 15 min, one 10-hour session;
- ``price_band0_noise``: the same desk instant at band 0, with noise orders;
- ``zi_three_dealers_1h``: the continuous zi_spx book (40 orders/s), three dealers (price
  band 0, lagged band 50, scheduled band 1,000), noise, 1 hour;
- ``buis2024``: the shipped scenario (20 sessions, limit-order hedgers at -80 straddles).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cases() -> dict[str, dict | Path]:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_lobpath import CASES, ZI  # the tests' set-ups, one source

    return {
        "thin_scheduled": CASES["thin_scheduled"][0],
        "price_band0_noise": CASES["price_band0_noise"][0],
        "zi_three_dealers_1h": {**ZI, "clock": {"days": 3600.0 / 23400.0}},
        "buis2024": ROOT / "scenarios" / "buis2024.yaml",
    }


def _cpu(data: dict | Path, mode: str, seed: int = 0) -> float:
    from mmsim.engine import Simulation
    from mmsim.scenario import load_scenario

    sim = Simulation(load_scenario(data, overrides={"engine.fast_path": mode}), seed)
    t0 = time.process_time()
    sim.run()
    return time.process_time() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    from mmsim.hotloop import unsupported
    from mmsim.scenario import load_scenario

    print(f"{'case':<22} {'simpy min/med s':>16} {'kernel min/med s':>17} {'ratio':>6}")
    for name, data in _cases().items():
        row = {}
        for mode in ("off", "on"):
            _cpu(data, mode)  # warm: numba caches, first-run allocations
            xs = [_cpu(data, mode) for _ in range(args.repeat)]
            row[mode] = (min(xs), statistics.median(xs))
        (a, am), (b, bm) = row["off"], row["on"]
        print(f"{name:<22} {a:8.3f}/{am:<7.3f} {b:8.3f}/{bm:<8.3f} {a / b:6.1f}x")
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        sc = load_scenario(path)
        if sc.market.model == "book":
            print(f"{path.stem:<26} simpy agents: {unsupported(sc) or 'runs in the kernel'}")


if __name__ == "__main__":
    main()
