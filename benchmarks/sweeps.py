"""Sweep executors: serial, the warm process pool and dask, as a user meets them.

``python -m benchmarks.sweeps [--quick]`` prints a table and writes
``benchmarks/results/sweeps.json``:

1. ``band_sweep`` as shipped (40 runs): the command ``mmsim sweep`` in a fresh process,
   ``--executor serial`` vs ``--executor processes --workers 2`` (fork server start-up
   included). Wall time (min and median of repeats) and the CPU time of the whole process
   tree (the command, its fork server and workers, reaped by a subreaper wrapper).
2. ``band_sweep`` as shipped in a warm process (a notebook or script that has run a
   simulation: mmsim imported, kernels loaded): ``mmsim.sweep`` serial vs the process
   pool with 2 workers (forked from this process where it can be: worker start-up
   included). Wall time, min and median of repeats.
3. A 200-run sweep (``band_sweep``'s grid, 20 seeds, 0.25 day per run) in one process
   after a warm-up (fork server running; a dask ``LocalCluster`` of 2 workers started and
   used once outside the timing): serial, the process pool with 1 and 2 workers, and the
   running dask cluster. Wall time, and the CPU of this process and all its descendants
   (``/proc``) during each sweep.

Two efficiencies: by wall time, ``T(1 worker) / (2 x T(2 workers))`` (what the user
sees; on a shared machine other processes take cores from the pool and lower it, so the
load average is printed), and by CPU, ``CPU(serial) / CPU(2 workers)`` (the share of
the parallel sweep's CPU spent on runs rather than on start-up, pickling and IPC; what
the wall efficiency would be on idle cores). Linux only (``/proc``, ``prctl``).
"""

from __future__ import annotations

import argparse
import contextlib
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
GRID = {"dealers.0.band": [0, 100, 300, 1000, 3000], "dealers.0.positions.0.qty": [2000, -2000]}

_SUBREAPER = (
    "import ctypes, json, os, resource, subprocess, sys, time\n"
    "ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER\n"
    "t = time.perf_counter()\n"
    "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "while True:  # orphans (a fork server, its workers) are reaped here: their CPU counts\n"
    "    try:\n"
    "        os.wait()\n"
    "    except ChildProcessError:\n"
    "        break\n"
    "wall = time.perf_counter() - t\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(json.dumps({'rc': p.returncode, 'wall': wall, 'cpu': u.ru_utime + u.ru_stime,"
    " 'stderr': p.stderr.decode()[-400:]}))\n"
)


def tree_cpu(pid: int | None = None) -> float:
    """CPU seconds of process ``pid`` (default this one) and all its descendants, live
    or reaped (``/proc``: own utime + stime, plus cutime + cstime of reaped children)."""
    pid = os.getpid() if pid is None else pid
    tick = os.sysconf("SC_CLK_TCK")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = set()  # of every thread: dask's event-loop thread starts its workers
        for task in Path(f"/proc/{pid}/task").iterdir():
            children.update((task / "children").read_text().split())
    except OSError:  # it exited meanwhile: its parent's cutime has it
        return 0.0
    own = sum(int(x) for x in fields[11:15]) / tick
    return own + sum(tree_cpu(int(c)) for c in children)


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
    wall: dict[str, list[float]] = {"serial": [], "processes": []}
    cpu: dict[str, list[float]] = {"serial": [], "processes": []}
    import mmsim  # the commands run the same mmsim as this process

    env = {**os.environ, "PYTHONPATH": str(Path(mmsim.__file__).resolve().parents[1])}
    for _ in range(repeat):
        for executor in ("serial", "processes"):
            with tempfile.TemporaryDirectory() as tmp:
                argv = [sys.executable, "-c", _SUBREAPER, *_command(executor, Path(tmp) / "sw")]
                rec = json.loads(subprocess.run(argv, capture_output=True, text=True, env=env,
                                                check=True).stdout)  # fmt: skip
                if rec["rc"] != 0:
                    raise RuntimeError(f"mmsim sweep --executor {executor}: {rec['stderr']}")
                wall[executor].append(rec["wall"])
                cpu[executor].append(rec["cpu"])
    return {
        "runs": 40,
        **{f"{k}_wall_min_s": min(v) for k, v in wall.items()},
        **{f"{k}_wall_median_s": statistics.median(v) for k, v in wall.items()},
        **{f"{k}_cpu_min_s": min(v) for k, v in cpu.items()},
        "speedup": min(wall["serial"]) / min(wall["processes"]),
        "cpu_ratio": min(cpu["processes"]) / min(cpu["serial"]),
    }


def bench_warm(repeat: int) -> dict:
    """``band_sweep`` as shipped (its grid and seeds), serial vs 2 workers, in this
    process once it has run a simulation."""
    import mmsim

    try:
        from mmsim.workers import can_fork
    except ImportError:  # a version before forked workers (a before/after comparison)
        can_fork = bool
    scenario = mmsim.load_scenario(BAND_SWEEP)
    block = scenario.sweep
    mmsim.run(BAND_SWEEP, seed=1, overrides={"clock.days": 0.01})  # warm: kernels loaded
    wall: dict[str, list[float]] = {"serial": [], "processes": []}
    tables = {}
    for _ in range(repeat):
        for executor in wall:
            t0 = time.perf_counter()
            tables[executor] = mmsim.sweep(scenario, block.grid, seeds=block.seeds,
                                           sweep_seed=block.seed, executor=executor,
                                           workers=2, progress=False)  # fmt: skip
            wall[executor].append(time.perf_counter() - t0)
    assert tables["serial"].equals(tables["processes"]), "rows differ: processes vs serial"
    return {
        "runs": len(tables["serial"]),
        "forked": can_fork(),
        **{f"{k}_wall_min_s": min(v) for k, v in wall.items()},
        **{f"{k}_wall_median_s": statistics.median(v) for k, v in wall.items()},
        "speedup": min(wall["serial"]) / min(wall["processes"]),
        "speedup_median": statistics.median(wall["serial"]) / statistics.median(wall["processes"]),
    }


def _timed(fn) -> tuple[float, float, object]:
    """(wall s, CPU s of this process tree, result) of ``fn()``."""
    cpu0, t0 = tree_cpu(), time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    time.sleep(0.2)  # let exited workers be reaped, so their CPU is counted
    return wall, tree_cpu() - cpu0, out


def bench_200(seeds: int, run_days: float, repeat: int, dask: bool = True) -> dict:
    """``len(GRID points) x seeds`` runs: serial, 1 and 2 warm workers, a running dask
    cluster of 2 workers (started and warmed outside the timing)."""
    import mmsim
    from mmsim.sweep import local_cluster

    scenario = mmsim.load_scenario(BAND_SWEEP, overrides={"clock.days": run_days})
    warm = {"dealers.0.band": [0, 1]}
    mmsim.sweep(scenario, warm, seeds=2, executor="processes", workers=2, progress=False)
    runs: dict[str, dict] = {}
    tables = {}

    def sweep(name: str, **kw) -> None:
        wall, cpu, table = _timed(
            lambda: mmsim.sweep(scenario, GRID, seeds=seeds, progress=False, **kw)
        )
        tables[name] = table
        slot = runs.setdefault(name, {"wall": [], "cpu": []})
        slot["wall"].append(wall)
        slot["cpu"].append(cpu)

    for _ in range(repeat):
        sweep("serial", executor="serial")
        sweep("workers_1", executor="processes", workers=1)
        sweep("workers_2", executor="processes", workers=2)
    if dask:  # after the others: the scheduler's event loop runs in this process
        cluster = local_cluster(2)
        try:
            address = cluster.scheduler_address
            mmsim.sweep(scenario, warm, seeds=4, executor="dask", dask_address=address,
                        progress=False)  # fmt: skip
            for _ in range(repeat):
                sweep("dask_2", executor="dask", dask_address=address)
        finally:
            with contextlib.suppress(TimeoutError):  # a loaded machine: timings are taken
                cluster.close()
    for name, table in tables.items():
        assert table.equals(tables["serial"]), f"rows differ: {name} vs serial"
    best = {k: {"wall_min_s": min(v["wall"]), "wall_median_s": statistics.median(v["wall"]),
                "cpu_min_s": min(v["cpu"])} for k, v in runs.items()}  # fmt: skip
    out = {
        "runs": len(tables["serial"]),
        "run_days": run_days,
        **best,
        "wall_efficiency": best["workers_1"]["wall_min_s"] / (2 * best["workers_2"]["wall_min_s"]),
        "wall_efficiency_vs_serial": best["serial"]["wall_min_s"]
        / (2 * best["workers_2"]["wall_min_s"]),
        "cpu_efficiency": best["serial"]["cpu_min_s"] / best["workers_2"]["cpu_min_s"],
    }
    if dask:
        out["dask_vs_pool_wall"] = best["dask_2"]["wall_min_s"] / best["workers_2"]["wall_min_s"]
        out["dask_vs_pool_cpu"] = best["dask_2"]["cpu_min_s"] / best["workers_2"]["cpu_min_s"]
    return out


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweeps")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and runs")
    parser.add_argument("--no-dask", action="store_true", help="skip the dask cluster")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/sweeps.json")
    args = parser.parse_args()
    load = _load()
    command = bench_command(1 if args.quick else 3)
    warm = bench_warm(2 if args.quick else 5)
    big = bench_200(4 if args.quick else 20, 0.05 if args.quick else 0.25,
                    1 if args.quick else 2, dask=not args.no_dask)  # fmt: skip
    load_end = _load()
    print(
        f"load average (1 min) at start {load:.1f}, at end {load_end:.1f}, {os.cpu_count()} cores"
    )
    c = command
    print(f"{'band_sweep (40 runs), mmsim sweep, serial':<50}{c['serial_wall_min_s']:>7.2f} s wall"
          f"{c['serial_cpu_min_s']:>7.2f} s CPU")  # fmt: skip
    print(f"{'same, --executor processes --workers 2':<50}{c['processes_wall_min_s']:>7.2f} s wall"
          f"{c['processes_cpu_min_s']:>7.2f} s CPU  speedup {c['speedup']:.2f}x,"
          f" CPU x{c['cpu_ratio']:.2f}")  # fmt: skip
    w, how = warm, "forked" if warm["forked"] else "fork server"
    print(f"{'band_sweep (40 runs), warm process, serial':<50}{w['serial_wall_min_s']:>7.2f} s wall"
          f" (median {w['serial_wall_median_s']:.2f})")  # fmt: skip
    print(f"{f'same, 2 workers ({how})':<50}{w['processes_wall_min_s']:>7.2f} s wall"
          f" (median {w['processes_wall_median_s']:.2f})  speedup {w['speedup']:.2f}x"
          f" (medians {w['speedup_median']:.2f}x)")  # fmt: skip
    label = f"{big['runs']} runs x {big['run_days']:g} day"
    names = {"serial": "serial", "workers_1": "1 warm worker", "workers_2": "2 warm workers",
             "dask_2": "running dask, 2 workers"}  # fmt: skip
    for name, what in names.items():
        if name in big:
            b = big[name]
            head = f"{label}, {what}"
            print(f"{head:<50}{b['wall_min_s']:>7.2f} s wall{b['cpu_min_s']:>7.2f} s CPU")
    print(
        f"efficiency, wall T1/(2 T2) {big['wall_efficiency']:.0%}, "
        f"wall Tserial/(2 T2) {big['wall_efficiency_vs_serial']:.0%}, "
        f"CPU serial/2 workers {big['cpu_efficiency']:.0%}"
    )
    if "dask_vs_pool_wall" in big:
        ratio = big["dask_vs_pool_wall"], big["dask_vs_pool_cpu"]
        print(f"dask / process pool: wall {ratio[0]:.2f}, CPU {ratio[1]:.2f}")
    out = args.json
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"load": load, "load_end": load_end, "command": command, "warm": warm, "pool": big}
    out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
