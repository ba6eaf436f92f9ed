"""Sweep executors: serial vs the warm process pool, as a user meets them.

``python -m benchmarks.sweeps [--quick]`` prints a table and writes
``benchmarks/results/sweeps.json``:

1. ``band_sweep`` as shipped (40 runs): the command ``mmsim sweep`` in a fresh process,
   ``--executor serial`` vs ``--executor processes --workers 2`` (worker start-up
   included); wall time, min and median of repeats, and the speedup of the minima.
2. A 200-run sweep (``band_sweep`` at 0.25 day per run) in one process after a warm-up:
   1 worker vs 2 workers; parallel efficiency ``T1 / (2 * T2)``.

Wall time, because parallel speedup is about wall time. The machine's load average is
printed: on a shared 2-core machine, other processes take cores from the pool and lower
both ratios (at a load average of 10, no parallel speedup is measurable).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BAND_SWEEP = ROOT / "scenarios/band_sweep.yaml"


def _command(executor: str, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mmsim.cli",
        "sweep",
        str(BAND_SWEEP),
        "--executor",
        executor,
        "--workers",
        "2",
        "--no-plot",
        "-q",
        "-o",
        str(out),
    ]


def bench_command(repeat: int) -> dict:
    """``mmsim sweep band_sweep.yaml`` serial vs 2 workers, fresh processes."""
    times: dict[str, list[float]] = {"serial": [], "processes": []}
    for _ in range(repeat):
        for executor in ("serial", "processes"):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                subprocess.run(_command(executor, Path(tmp) / "sw"), check=True)
                times[executor].append(time.perf_counter() - start)
    return {
        "runs": 40,
        **{f"{k}_wall_min_s": min(v) for k, v in times.items()},
        **{f"{k}_wall_median_s": statistics.median(v) for k, v in times.items()},
        "speedup": min(times["serial"]) / min(times["processes"]),
    }


def bench_200(n_runs: int, run_days: float, repeat: int) -> dict:
    """A sweep of ``n_runs`` runs on 1 and 2 warm workers in this process."""
    import mmsim

    scenario = mmsim.load_scenario(BAND_SWEEP, overrides={"clock.days": run_days})
    grid = {"dealers.0.band": [0, 100, 300, 1000, 3000], "dealers.0.positions.0.qty": [2000, -2000]}
    seeds = n_runs // 10
    mmsim.sweep(scenario, {"dealers.0.band": [0, 1]}, seeds=2, executor="processes", workers=2)
    times: dict[int, list[float]] = {1: [], 2: []}
    tables = {}
    for _ in range(repeat):
        for workers in (1, 2):
            start = time.perf_counter()
            tables[workers] = mmsim.sweep(
                scenario, grid, seeds=seeds, executor="processes", workers=workers, progress=False
            )
            times[workers].append(time.perf_counter() - start)
    serial = mmsim.sweep(scenario, grid, seeds=seeds, executor="serial", progress=False)
    assert serial.equals(tables[1]) and serial.equals(tables[2]), "rows differ by executor"
    return {
        "runs": len(serial),
        "run_days": run_days,
        "workers_1_min_s": min(times[1]),
        "workers_2_min_s": min(times[2]),
        "efficiency": min(times[1]) / (2 * min(times[2])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweeps")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and runs")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    command = bench_command(1 if args.quick else 3)
    big = bench_200(40 if args.quick else 200, 0.05 if args.quick else 0.25, 1 if args.quick else 2)
    print(f"load average at start: {load:.1f} on {os.cpu_count()} cores")
    print(
        f"{'band_sweep (40 runs), mmsim sweep, serial':<52}{command['serial_wall_min_s']:>8.2f} s"
    )
    print(
        f"{'band_sweep, --executor processes --workers 2':<52}"
        f"{command['processes_wall_min_s']:>8.2f} s  speedup {command['speedup']:.2f}x"
    )
    label = f"{big['runs']} runs x {big['run_days']:g} day, 1 warm worker"
    print(f"{label:<52}{big['workers_1_min_s']:>8.2f} s")
    print(
        f"{'same, 2 warm workers':<52}{big['workers_2_min_s']:>8.2f} s  "
        f"efficiency {big['efficiency']:.0%}"
    )
    out = ROOT / "benchmarks/results/sweeps.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"load": load, "command": command, "pool": big}, indent=1))


if __name__ == "__main__":
    main()
