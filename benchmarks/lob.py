"""Order book speed: LOB events per second and the wall time of one buis2024 cell.

    python -m benchmarks.lob [--paths 100] [--out benchmarks/results/lob.json]

- ``kernel``: the compiled liquidity flow alone (buis2024 flow, 2 million orders, one
  call), events per second.
- ``engine``: a full ``mmsim.run`` of the zi_spx preset without dealers (0.25 session:
  the flow advances in blocks between the simpy samples), events per second.
- ``buis2024_cell``: ``--paths`` runs of scenarios/buis2024.yaml at position -80
  (20 sessions each, stopped at a dry-out as in the paper) and at 0, serial, seconds.

Yardstick: ABIDES' RMSC04 full day runs at 17-20k messages per second; the target is
20x that per event (>= 400k LOB events per second).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import simpy

import mmsim
from mmsim.agents.liquidity import LiquidityFlow
from mmsim.ledger import Ledger
from mmsim.lob import BookMarket

ROOT = Path(__file__).resolve().parents[1]


def kernel_rate(n_orders: int = 2_000_000) -> float:
    """Orders per second of the compiled flow alone (buis2024 flow, no stop)."""
    m = BookMarket(simpy.Environment(), 5.0, Ledger(), xi=0.05, on_dry_out="continue")
    flow = LiquidityFlow(
        m,
        np.random.default_rng(0),
        rate=1.0,
        p_market=0.3,
        p_informed=0.3,
        offset_mean=-0.1,
        offset_sd=0.1,
        size_min=0.0,
        size_max=1.0,
    )
    flow.advance(1000.0)  # compile / warm
    n0, t0 = flow.n_events, time.perf_counter()
    flow.advance(1000.0 + n_orders)
    return (flow.n_events - n0) / (time.perf_counter() - t0)


def engine_rate() -> float:
    """Orders per second of a whole zi_spx run (no dealers), engine overhead included."""
    sc = {
        "name": "bench",
        "clock": {"days": 0.25},
        "market": {
            "S0": 100.0,
            "model": "book",
            "book": {"preset": "zi_spx", "on_dry_out": "continue"},
        },
        "news": None,
        "record": {"every": 60.0, "levels_every": 3600.0},
    }
    mmsim.run({**sc, "clock": {"days": 0.01}}, seed=0)  # warm
    t0 = time.perf_counter()
    r = mmsim.run(sc, seed=1)
    return r.metrics["lob_events"] / (time.perf_counter() - t0)


def buis_cell(paths: int, position: float) -> tuple[float, float]:
    """Wall time (s) of ``paths`` buis2024 runs at ``position`` and their failure rate."""
    over = {"dealers.0.positions.0.qty": position, "dealers.0.positions.1.qty": position}
    mmsim.run(ROOT / "scenarios" / "buis2024.yaml", seed=0, overrides={**over, "clock.days": 1})
    t0 = time.perf_counter()
    failed = [
        mmsim.run(ROOT / "scenarios" / "buis2024.yaml", seed=s, overrides=over).metrics["failed"]
        for s in range(paths)
    ]
    return time.perf_counter() - t0, float(np.mean(failed))


def main(argv: list[str] | None = None) -> None:
    """Run the three measurements, print them and write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--paths", type=int, default=100)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "lob.json")
    args = ap.parse_args(argv)
    out = {"kernel_events_per_s": kernel_rate(), "engine_events_per_s": engine_rate()}
    for pos in (-80.0, 0.0):
        wall, rate = buis_cell(args.paths, pos)
        out[f"buis2024_cell_{int(pos)}_s"] = wall
        out[f"buis2024_cell_{int(pos)}_failure_rate"] = rate
    out["paths"] = args.paths
    out["abides_ratio_kernel"] = out["kernel_events_per_s"] / 18_500.0
    for k, v in out.items():
        print(f"{k:34s} {v:,.3f}" if isinstance(v, float) else f"{k:34s} {v}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
