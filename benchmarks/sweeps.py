"""Sweep executors: serial, the warm process pool and dask, as a user meets them.

``python -m benchmarks.sweeps [--quick]`` prints a table and writes
``benchmarks/results/sweeps.json``:

1. ``band_sweep`` as shipped (40 runs): the command ``mmsim sweep`` in a fresh process,
   ``--executor serial`` vs ``--executor processes --workers 2`` (fork server start-up
   included). Wall time (min and median of repeats) and the CPU time of the whole process
   tree (the command, its fork server and workers, reaped by a subreaper wrapper).
2. ``band_sweep`` as shipped in a warm process (a notebook or script that has run a
   simulation: mmsim imported, kernels loaded): ``mmsim.sweep`` serial vs the process
   pool with 2 workers, on new workers (forked from this process where it can be:
   worker start-up included) and on the workers the last sweep kept
   (:mod:`mmsim.kept_pool`). Wall time, min and median of repeats.
3. A 200-run sweep (``band_sweep``'s grid, 20 seeds, 0.25 day per run) in one process
   after a warm-up (fork server running; a dask ``LocalCluster`` of 2 workers started and
   used once outside the timing): serial, the process pool with 1 and 2 workers, and the
   running dask cluster. Wall time, and the CPU of this process and all its descendants
   (``/proc``) during each sweep.

``--mmsim DIR`` measures the ``mmsim`` package in DIR (another checkout, e.g. main) as
the baseline of 1. and 2. in the same run, interleaved with this one (base serial, base
workers, this serial, this workers, repeated), so both see the same load.
``--phases`` prints where a fresh ``mmsim sweep`` spends its time (:func:`phases`):
imports, the first run (numba's kernels loaded from the cache), the other runs, the
table, wall and CPU each, and the Amdahl bound those give a fresh command on 2 workers.

Two efficiencies: by wall time, ``T(1 worker) / (2 x T(2 workers))`` (what the user
sees; on a shared machine other processes take cores from the pool and lower it, so the
load average is printed), and by CPU, ``CPU(serial) / CPU(2 workers)`` (the share of
the parallel sweep's CPU spent on runs rather than on start-up, pickling and IPC). For
3., also the wall efficiency with each sweep's wall time less the mean run-queue wait of
its threads that ran runs (``/proc/PID/task/TID/schedstat``: time runnable while other
processes held the cores), an estimate of the wall efficiency on idle cores, and the
same estimate of dask's wall over the pool's (the dask workers' run-queue waits taken
off, not its scheduler's or client's: an upper bound on dask's side). For 2.,
besides wall time, "busiest process": serial CPU over the CPU of the busier of the two
processes that run runs (the sweep's own and its forked worker), medians: what two idle
cores would give if neither ever waited for the other, a figure other processes' load
does not move. Linux only (``/proc``, ``prctl``).
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


def _command(executor: str, out: Path, plot: bool = False, days: float | None = None) -> list[str]:
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
        *([] if plot else ["--no-plot"]),
        *([] if days is None else ["--set", f"clock.days={days:g}"]),
        "-q",
        "-o",
        str(out),
    ]


def _this_mmsim() -> Path:
    """The directory holding the ``mmsim`` package this process imported."""
    import mmsim

    return Path(mmsim.__file__).resolve().parents[1]


_PYC = Path(tempfile.gettempdir()) / "mmsim-benchmarks-pycache"


def _env(mmsim_dir: Path) -> dict:
    """Environment of a child that imports the ``mmsim`` in ``mmsim_dir`` (run it in
    another directory: ``-c`` and ``-m`` put the current one first on ``sys.path``).
    Bytecode is cached as for an installed package (a pycache prefix, even where
    ``PYTHONDONTWRITEBYTECODE`` is set: compiling mmsim's sources in every fresh
    command would add 0.1-0.2 s to its fixed part that no installed copy pays)."""
    pyc = {"PYTHONPYCACHEPREFIX": str(_PYC), "PYTHONDONTWRITEBYTECODE": ""}
    return {**os.environ, "PYTHONPATH": str(mmsim_dir), **pyc}


def bench_command(repeat: int, base: Path | None = None, plot: bool = False) -> dict:
    """``mmsim sweep band_sweep.yaml`` serial vs 2 workers, fresh processes, ``--no-plot``
    unless ``plot`` (the command as shipped, its three figures drawn); with ``base`` (a
    checkout), its ``mmsim`` too, interleaved (key ``base``)."""
    dirs = {"this": _this_mmsim(), **({"base": base} if base is not None else {})}
    wall = {k: {"serial": [], "processes": []} for k in dirs}
    cpu = {k: {"serial": [], "processes": []} for k in dirs}
    for _ in range(repeat):
        for key, mmsim_dir in reversed(dirs.items()):  # the base first in each round
            for executor in ("serial", "processes"):
                with tempfile.TemporaryDirectory() as tmp:
                    rec = _fresh(_command(executor, Path(tmp) / "sw", plot), mmsim_dir)
                    wall[key][executor].append(rec["wall"])
                    cpu[key][executor].append(rec["cpu"])
    out = {k: _command_summary(wall[k], cpu[k]) for k in dirs}
    return {**out.pop("this"), **({"base": out["base"]} if "base" in out else {})}


def _fresh(command: list[str], mmsim_dir: Path) -> dict:
    """Run ``command`` (a fresh ``mmsim sweep``) under the subreaper wrapper in a
    temporary directory: its wall time and the CPU of its whole process tree."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-c", _SUBREAPER, *command]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp,
                              env=_env(mmsim_dir), check=True)  # fmt: skip
    rec = json.loads(done.stdout)
    if rec["rc"] != 0:
        raise RuntimeError(f"{' '.join(command[3:])}: {rec['stderr']}")
    return rec


_AUTO_CHILD = """
import json, sys
from mmsim.budget import check
from mmsim.scenario import load_scenario
from mmsim.sweep import SweepSpec, _auto, _cores
from mmsim.sweep_cost import run_seconds
base = load_scenario(sys.argv[1], overrides={"clock.days": float(sys.argv[2])})
block = base.sweep
points = SweepSpec(dict(block.grid), dict(block.zip), list(range(block.seeds))).points()
cost = [run_seconds(s, check(s)) for s in (load_scenario(base, overrides=o) for o in points)]
runs = len(points) * block.seeds
seconds = sum(cost) / len(cost) * runs
print(json.dumps({"runs": runs, "estimate_s": seconds,
                  "auto": _auto(seconds, runs, int(sys.argv[3]), None)}))
"""


def auto_choice(days: float, workers: int = 2, mmsim_dir: Path | None = None) -> dict:
    """What ``executor: auto`` picks for ``band_sweep`` at ``clock.days=days`` on
    ``workers`` in a fresh process (as ``mmsim sweep`` does: no kept pool, nothing but
    the main thread alive), with the runs' estimated CPU (:mod:`mmsim.sweep_cost`):
    ``{"runs", "estimate_s", "auto"}``."""
    mmsim_dir = mmsim_dir or _this_mmsim()
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-c", _AUTO_CHILD, str(BAND_SWEEP), str(days), str(workers)]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp,
                              env=_env(mmsim_dir), check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


TARGET_SPEEDUP = 1.7
"""The speedup 2 workers are to give ``band_sweep`` (issue 11, target 5)."""


def bench_work(days: list[float], repeat: int, base: Path | None = None) -> dict:
    """The fresh command ``mmsim sweep band_sweep.yaml --no-plot --set clock.days=D`` for
    each ``D`` of ``days`` (the sweep's work grows with D; its fixed part, a fresh
    process's imports and kernel loads, does not): ``--executor serial``, ``processes
    --workers 2`` (both through :func:`phases`) and ``auto --workers 2``, min of
    ``repeat`` wall times each, interleaved (with ``base``, that checkout's command too,
    first in each round). Per D: the wall speedup of 2 workers over serial; the CPU of
    the busier process that runs runs (the command's own or its forked worker, median
    of repeats) and serial's over it (``cpu_path_speedup``: the speedup two idle cores
    would give if neither process waited for the other, a figure other processes' load
    moves little); what ``auto`` picks (:func:`auto_choice`) and its wall over the
    faster of the two; and the work at which 2 workers reach :data:`TARGET_SPEEDUP`
    (:func:`crossover`, on wall times and on the CPU path)."""
    dirs = {"this": _this_mmsim(), **({"base": base} if base is not None else {})}
    kinds = ("serial", "processes", "auto")
    wall = {k: {d: {x: [] for x in kinds} for d in days} for k in dirs}
    path = {k: {d: {x: [] for x in kinds[:2]} for d in days} for k in dirs}
    for _ in range(repeat):
        for d in days:
            for key, mmsim_dir in reversed(dirs.items()):
                for executor in kinds[:2]:  # the command's own CPU and its worker's
                    rec = phases(executor, mmsim_dir, days=d)
                    wall[key][d][executor].append(rec["wall_s"])
                    own = rec["marks"][-1][2]
                    path[key][d][executor].append(max(own, rec["children_cpu"]))
                rec = _fresh(_command("auto", Path("sw"), days=d), mmsim_dir)
                wall[key][d]["auto"].append(rec["wall"])
    out = {}
    for key, mmsim_dir in dirs.items():
        rows = []
        for d in days:
            w = {x: min(wall[key][d][x]) for x in kinds}
            busiest = {x: statistics.median(path[key][d][x]) for x in kinds[:2]}
            choice = auto_choice(d, 2, mmsim_dir)
            rows.append({"days": d, **{f"{x}_wall_s": w[x] for x in kinds},
                         **{f"{x}_busiest_cpu_s": busiest[x] for x in kinds[:2]},
                         "speedup": w["serial"] / w["processes"],
                         "cpu_path_speedup": busiest["serial"] / busiest["processes"], **choice,
                         "auto_vs_best": w["auto"] / min(w["serial"], w["processes"]),
                         "auto_right": choice["auto"] == min(("serial", "processes"),
                                                             key=w.__getitem__)})  # fmt: skip
        out[key] = {"rows": rows, **crossover(rows)}
    return {**out.pop("this"), **({"base": out["base"]} if "base" in out else {})}


def crossover(rows: list[dict], target: float = TARGET_SPEEDUP) -> dict:
    """:func:`crossover_of` the wall times (``fit``, ...) and of the CPU paths
    (``cpu_path``: the same keys)."""
    return {**crossover_of(rows, "wall_s", target),
            "cpu_path": crossover_of(rows, "busiest_cpu_s", target)}  # fmt: skip


def crossover_of(rows: list[dict], what: str, target: float = TARGET_SPEEDUP) -> dict:
    """Where 2 workers reach ``target`` over serial: a line fitted to each executor's
    ``what`` (``wall_s``, ``busiest_cpu_s``) against the days (``T = fixed + per_day x
    days``, least squares; a fresh command's fixed part and the runs' part), then
    ``serial(D) = target x 2 workers(D)`` solved for D (``inf`` if 2 workers' per-day
    cost is not below ``1 / target`` of serial's, so the ratio never gets there); also
    the serial wall at that D, and D where the two lines cross (2 workers as fast as
    serial)."""
    import numpy as np

    days = np.array([r["days"] for r in rows], dtype=float)
    fits = {}
    for kind in ("serial", "processes"):
        per_day, fixed = np.polyfit(days, [r[f"{kind}_{what}"] for r in rows], 1)
        fits[kind] = (float(fixed), float(per_day))
    (a1, k1), (a2, k2) = fits["serial"], fits["processes"]

    def solve(ratio: float) -> float:
        return (ratio * a2 - a1) / (k1 - ratio * k2) if k1 > ratio * k2 else float("inf")

    at = solve(target)
    return {"fit": fits, "target": target, "target_days": at,
            "target_serial_s": a1 + k1 * at if np.isfinite(at) else float("inf"),
            "break_even_days": solve(1.0)}  # fmt: skip


def _print_work(work: dict, tag: str) -> None:
    print(f"fresh mmsim sweep band_sweep.yaml --no-plot --set clock.days=D, 2 workers vs"
          f" serial{tag} (wall s, min of repeats; CPU path: CPU s of the busier process"
          f" that runs runs, median):")  # fmt: skip
    print(f"  {'D':>5} {'runs est.':>9} {'serial':>7} {'2 workers':>9} {'speedup':>8}"
          f" {'CPU path':>9} {'speedup':>8} {'auto picks':>11} {'auto wall':>9}"
          f" {'auto/best':>9}")  # fmt: skip
    for r in work["rows"]:
        mark = "" if r["auto_right"] else "  <- not the faster"
        print(f"  {r['days']:>5g} {r['estimate_s']:>8.2f}s {r['serial_wall_s']:>7.2f}"
              f" {r['processes_wall_s']:>9.2f} {r['speedup']:>7.2f}x"
              f" {r['processes_busiest_cpu_s']:>9.2f} {r['cpu_path_speedup']:>7.2f}x"
              f" {r['auto']:>11} {r['auto_wall_s']:>9.2f}"
              f" {r['auto_vs_best']:>9.2f}{mark}")  # fmt: skip
    for name, c in (("wall", work), ("CPU path", work["cpu_path"])):
        (a1, k1), (a2, k2) = c["fit"]["serial"], c["fit"]["processes"]
        print(f"  {name} fit: serial {a1:.2f} + {k1:.3f} D s, 2 workers {a2:.2f} + {k2:.3f} D;"
              f" 2 workers reach {c['target']:.1f}x at D = {c['target_days']:.2f} days"
              f" (serial {c['target_serial_s']:.1f} s); as fast as serial at D ="
              f" {c['break_even_days']:.3f}")  # fmt: skip


def _command_summary(wall: dict, cpu: dict) -> dict:
    return {
        "runs": 40,
        **{f"{k}_wall_min_s": min(v) for k, v in wall.items()},
        **{f"{k}_wall_median_s": statistics.median(v) for k, v in wall.items()},
        **{f"{k}_cpu_min_s": min(v) for k, v in cpu.items()},
        "speedup": min(wall["serial"]) / min(wall["processes"]),
        "speedup_median": statistics.median(wall["serial"]) / statistics.median(wall["processes"]),
        "cpu_ratio": min(cpu["processes"]) / min(cpu["serial"]),
    }


_PHASES = """
import inspect, json, os, resource, sys, time
w0, c0 = time.perf_counter(), time.process_time()
marks = []
def mark(name):
    marks.append((name, time.perf_counter() - w0, time.process_time() - c0))
import mmsim.cli
# what the command imports, as it imports it (gc paused, SciPy's BLAS probe skipped
# where its _cmd_sweep does so), so its functions can be wrapped
source = inspect.getsource(mmsim.cli._cmd_sweep)
if "loading(" in source:
    from mmsim.lifetime import loading
    if "lean_kernel_loads" in source:  # cached kernels loaded without numba's compiler
        from mmsim.kernel_loads import lean_kernel_loads as boot
    else:
        from mmsim.numba_boot import skip_scipy_blas_probe as boot
    with loading(True):
        boot()
        import mmsim.executors, mmsim.sweep
else:
    import mmsim.executors, mmsim.sweep
mark("imports")
ex, sw = sys.modules["mmsim.executors"], sys.modules["mmsim.sweep"]  # mmsim.sweep: a function
PID = os.getpid()
real_run, real_save, real_pool = ex._run_one, sw._save_table, ex._Pool.__init__
def run_one(*a, **k):
    out = real_run(*a, **k)
    if os.getpid() == PID and not any(m[0] == "first run" for m in marks):
        mark("first run")
    return out
def save(*a, **k):
    mark("runs")
    real_save(*a, **k)
    mark("table")
def pool(self, *a, **k):
    mark("pool made")
    real_pool(self, *a, **k)
ex._run_one, sw._save_table, ex._Pool.__init__ = run_one, save, pool
real_import_plots = mmsim.cli._import_plots
def import_plots(*a, **k):
    real_import_plots(*a, **k)
    if any(m[0] == "plots imported" for m in marks):
        return
    mark("plots imported")
    try:  # the figures on two processes (mmsim.sweep_figures), else in mmsim.plots
        import mmsim.sweep_figures as plots
        name = "save_sweep_figures"
    except ImportError:
        plots, name = sys.modules["mmsim.plots"], "save_sweep_plots"
    real_figures = getattr(plots, name)
    def figures(*a, **k):
        out = real_figures(*a, **k)
        mark("figures")
        return out
    setattr(plots, name, figures)
mmsim.cli._import_plots = import_plots
sys.argv = ["mmsim", *sys.argv[1:]]
try:
    mmsim.cli.main()
finally:
    mark("end")
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"marks": marks, "children_cpu": u.ru_utime + u.ru_stime}), file=sys.stderr)
"""


def phases(
    executor: str, mmsim_dir: Path | None = None, plot: bool = False, days: float | None = None
) -> dict:
    """Where a fresh ``mmsim sweep band_sweep.yaml`` spends its time: wall and CPU (s,
    this process) at the end of each phase, from the interpreter's start: ``imports``,
    ``first run`` (the scenario's checks and the first run, which loads numba's
    kernels; on forked workers the run this process does before forking, or without it
    the pool's own warm-up, in ``pool made``), ``runs`` (the others), ``table``
    (results.parquet), ``end``; and the CPU of the workers (``children_cpu``). The
    wrapped functions are the command's own, imported as it imports them. ``days``:
    ``--set clock.days=days``."""
    mmsim_dir = mmsim_dir or _this_mmsim()
    with tempfile.TemporaryDirectory() as tmp:
        command = _command(executor, Path(tmp) / "sw", plot, days)[
            3:
        ]  # after "python -m mmsim.cli"
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _PHASES, *command], capture_output=True,
                              text=True, cwd=tmp, env=_env(mmsim_dir), check=True)  # fmt: skip
        total = time.perf_counter() - t0
    rec = json.loads(done.stderr.strip().splitlines()[-1])
    return {"executor": executor, "wall_s": total, **rec}


def amdahl(serial: dict) -> dict:
    """From a serial :func:`phases`: the fixed part (s of CPU: imports, the checks and the
    first run, which loads the kernels every process that runs runs needs, the table),
    the parallel part (runs 2..n) and the best speedup 2 workers can give the command.
    With figures (``--plot``), what 2 workers overlap: the figures' imports run in the
    command's process while its worker runs runs (``sweep(meanwhile=...)``), and the
    figures are drawn on two processes (:mod:`mmsim.sweep_figures`; taken as halved).
    ``best_speedup_2_no_overlap``: the same bound without those overlaps."""
    at = {name: (w, c) for name, w, c in serial["marks"]}
    total = at["end"][1]
    parallel = at["runs"][1] - at["first run"][1]
    imports = figures = 0.0
    if "figures" in at:
        imports = at["plots imported"][1] - at["table"][1]
        figures = at["figures"][1] - at["plots imported"][1]
    fixed = total - parallel - imports - figures
    two = fixed + max((parallel + imports) / 2, imports) + figures / 2
    return {"fixed_cpu_s": fixed, "parallel_cpu_s": parallel, "plot_imports_cpu_s": imports,
            "figures_cpu_s": figures, "best_speedup_2": total / two,
            "best_speedup_2_no_overlap": total / (total - parallel / 2)}  # fmt: skip


def bench_warm(repeat: int) -> dict:
    """``band_sweep`` as shipped (its grid and seeds), serial vs 2 workers, in this
    process once it has run a simulation: wall time, and the CPU of this process and
    its workers (``cpu_ratio``: 2 workers' CPU over serial's, the share of the parallel
    sweep spent on forking, copied pages and IPC rather than on runs).

    Where sweeps keep their workers (:mod:`mmsim.kept_pool`), each round is a serial
    sweep, a sweep on the workers the last one kept (``processes``), and one on new
    workers (``fresh``: the kept ones closed first; it keeps its own for the next
    round); the first round's ``processes`` sweep starts new workers and counts as fresh.
    Elsewhere (a version before kept pools) every sweep starts new workers."""
    import mmsim

    try:
        from mmsim.workers import can_fork
    except ImportError:  # a version before forked workers (a before/after comparison)
        can_fork = bool
    try:
        from mmsim.kept_pool import close_workers
    except ImportError:  # a version before kept workers
        close_workers = None
    scenario = mmsim.load_scenario(BAND_SWEEP)
    block = scenario.sweep
    mmsim.run(BAND_SWEEP, seed=1, overrides={"clock.days": 0.01})  # warm: kernels loaded
    forked = can_fork()  # no thread alive yet (a kept pool's threads are, later)
    wall: dict[str, list[float]] = {"serial": [], "processes": [], "fresh": []}
    cpu: dict[str, list[float]] = {"serial": [], "processes": [], "fresh": []}
    busiest: dict[str, list[float]] = {"serial": [], "processes": [], "fresh": []}
    tables = {}
    for i in range(repeat):
        for kind in ("serial", "processes", "fresh"):
            if kind == "fresh":
                if close_workers is None:
                    continue
                close_workers()
            executor = "serial" if kind == "serial" else "processes"
            own = time.process_time()
            w, c, tables[kind] = _timed(
                lambda executor=executor: mmsim.sweep(
                    scenario, block.grid, seeds=block.seeds, sweep_seed=block.seed,
                    executor=executor, workers=2, progress=False,
                )
            )  # fmt: skip
            own = time.process_time() - own  # this process's share of c
            first = kind == "processes" and i == 0 and close_workers is not None
            wall["fresh" if first else kind].append(w)
            cpu["fresh" if first else kind].append(c)
            busiest["fresh" if first else kind].append(max(own, c - own))
    for kind in ("processes", "fresh"):
        if kind in tables:
            assert tables["serial"].equals(tables[kind]), f"rows differ: {kind} vs serial"
    if close_workers is None:  # every sweep started its workers
        wall["fresh"], cpu["fresh"] = wall["processes"], cpu["processes"]
        busiest["fresh"] = busiest["processes"]
    return {
        "runs": len(tables["serial"]),
        "forked": forked,
        "kept": close_workers is not None,
        **_warm_summary(wall, cpu, busiest),
        "wall": wall,
        "cpu": cpu,
        "busiest": busiest,
    }


def _warm_summary(wall: dict, cpu: dict, busiest: dict) -> dict:
    """Min and median wall, min CPU of each kind, and 2 workers' speedups over serial
    (min over min, median over median) on kept (``speedup``) and new (``fresh_``)
    workers; ``cpu_path_speedup``: serial CPU over the CPU of the busier of the sweep's
    process and its worker (medians), the speedup the sweep would have on two idle
    cores if neither process ever waited for the other (a load-independent bound)."""
    out = {
        **{f"{k}_wall_min_s": min(v) for k, v in wall.items()},
        **{f"{k}_wall_median_s": statistics.median(v) for k, v in wall.items()},
        **{f"{k}_cpu_min_s": min(v) for k, v in cpu.items()},
    }
    for tag, kind in (("", "processes"), ("fresh_", "fresh")):
        out[f"{tag}speedup"] = min(wall["serial"]) / min(wall[kind])
        out[f"{tag}speedup_median"] = statistics.median(wall["serial"]) / statistics.median(
            wall[kind]
        )
        out[f"{tag}cpu_ratio"] = min(cpu[kind]) / min(cpu["serial"])
        out[f"{tag}cpu_path_speedup"] = statistics.median(cpu["serial"]) / statistics.median(
            busiest[kind]
        )
    return out


_WARM_CHILD = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("bench_sweeps", sys.argv[1])
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
print(json.dumps(bench.bench_warm(int(sys.argv[2]))))
"""


def warm_in_child(mmsim_dir: Path, repeat: int) -> dict:
    """:func:`bench_warm` in a new process importing the ``mmsim`` of ``mmsim_dir``
    (this file loaded by path, so the benchmark is the same for every version)."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-c", _WARM_CHILD, __file__, str(repeat)]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp,
                              env=_env(mmsim_dir), check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_warm_pair(repeat: int, base: Path, rounds: int = 2) -> dict:
    """:func:`bench_warm` of this ``mmsim`` and of ``base``, each in its own process,
    alternated ``rounds`` times (``repeat`` sweeps of each kind per process)."""
    runs: dict[str, list[dict]] = {"this": [], "base": []}
    for _ in range(rounds):
        runs["base"].append(warm_in_child(base, repeat))
        runs["this"].append(warm_in_child(_this_mmsim(), repeat))
    out = {}
    for key, recs in runs.items():
        wall = {k: [x for r in recs for x in r["wall"][k]] for k in recs[0]["wall"]}
        cpu = {k: [x for r in recs for x in r["cpu"][k]] for k in recs[0]["cpu"]}
        busiest = {k: [x for r in recs for x in r["busiest"][k]] for k in recs[0]["busiest"]}
        out[key] = {
            "runs": recs[0]["runs"],
            "forked": recs[0]["forked"],
            "kept": recs[0].get("kept", False),
            **_warm_summary(wall, cpu, busiest),
        }
    return {**out["this"], "base": out["base"]}


def _children(pid: int) -> list[int]:
    """Child pids of every thread of ``pid``."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _run_waits(cluster: int | None = None) -> dict[int, tuple[float, float]]:
    """``{thread id: (CPU s, run-queue wait s)}`` of the threads of this process, of its
    children running this same command line (forked pool workers) and of the
    ``cluster`` process's children (dask workers), from ``/proc/PID/task/TID/schedstat``
    (time on a CPU, time runnable but waiting for one)."""
    me = os.getpid()
    cmd = Path(f"/proc/{me}/cmdline").read_bytes()
    pids = [me]
    for c in _children(me):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{c}/cmdline").read_bytes() == cmd:
                pids.append(c)
    if cluster is not None:
        pids += _children(cluster)
    out = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():  # dask runs runs in a thread
                with contextlib.suppress(OSError, ValueError):
                    on, wait, _ = (task / "schedstat").read_text().split()
                    out[int(task.name)] = (int(on) / 1e9, int(wait) / 1e9)
    return out


def _unloaded(wall: float, before: dict, after: dict) -> float:
    """``wall`` less the mean run-queue wait (s) of the threads that ran runs in it
    (on a CPU for at least 5% of it: not a process that only collects outcomes, not a
    dask scheduler's or worker's event loop), an estimate of the wall time on idle
    cores, which other processes' load moves little. For dask, the waits of its
    scheduler and client, also on the way of each task, are not taken off."""
    waits = [
        after[p][1] - before[p][1]
        for p in after
        if p in before and after[p][0] - before[p][0] > 0.05 * wall
    ]
    return wall - (sum(waits) / len(waits) if waits else 0.0)


def _timed(fn) -> tuple[float, float, object]:
    """(wall s, CPU s of this process tree, result) of ``fn()``."""
    cpu0, t0 = tree_cpu(), time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    time.sleep(0.2)  # let exited workers be reaped, so their CPU is counted
    return wall, tree_cpu() - cpu0, out


def bench_200(seeds: int, run_days: float, repeat: int, dask: bool = True, pairs: int = 1) -> dict:
    """``len(GRID points) x seeds`` runs: serial, 1 and 2 warm workers, a running dask
    cluster of 2 workers, each kind once per round, ``repeat`` rounds (so every kind
    sees the same load); with ``pairs``, 2 workers and dask alternated that many times
    in each round, in turn first (their min over more sweeps: a ratio of two
    half-second sweeps on a shared machine moves by 10% from one sweep to the next;
    also the median ratio of each dask sweep to the pool sweep next to it). Both
    parallel executors are warm before the first timed sweep: the process pool ran a
    sweep (its kept workers forked from this warm process), and the dask cluster
    (:func:`mmsim.sweep.local_cluster`, run by a process of its own, as a cluster one
    started elsewhere: its scheduler's event loop then takes no turns from this
    process's runs) ran one sweep, after which every one of its workers is checked to
    have warmed up (mmsim imported, kernels loaded). The cluster's process is a child of
    this one: its scheduler's and workers' CPU count."""
    import mmsim

    scenario = mmsim.load_scenario(BAND_SWEEP, overrides={"clock.days": run_days})
    warm = {"dealers.0.band": [0, 1]}
    mmsim.sweep(scenario, warm, seeds=2, executor="processes", workers=2, progress=False)
    runs: dict[str, dict] = {}
    tables = {}
    tasks: list[int] = []

    def sweep(name: str, **kw) -> None:
        before = _run_waits(cluster_pid)
        wall, cpu, table = _timed(
            lambda: mmsim.sweep(scenario, GRID, seeds=seeds, progress=False, **kw)
        )
        after = _run_waits(cluster_pid)  # workers (kept) alive; 0.2 s later: no runs since
        tables[name] = table
        slot = runs.setdefault(name, {"wall": [], "cpu": [], "unloaded": []})
        slot["wall"].append(wall)
        slot["cpu"].append(cpu)
        slot["unloaded"].append(_unloaded(wall, before, after))

    cluster = cluster_pid = None
    kinds = [("serial", {"executor": "serial"}),
             ("workers_1", {"executor": "processes", "workers": 1}),
             ("workers_2", {"executor": "processes", "workers": 2})]  # fmt: skip
    try:
        if dask:
            cluster, address = _cluster_process(2)
            cluster_pid = cluster.pid
            mmsim.sweep(scenario, warm, seeds=4, executor="dask", dask_address=address,
                        progress=False)  # fmt: skip
            tasks = _dask_warm_and_tasks(address, scenario, seeds)
            kinds.append(("dask_2", {"executor": "dask", "dask_address": address}))
        for r in range(repeat):
            for name, kw in kinds[:2]:
                sweep(name, **kw)
            for k in range(max(1, pairs) if dask else 1):
                # pool then dask, dask then pool, ...: neither always goes first
                pair = kinds[2:] if (r * max(1, pairs) + k) % 2 == 0 else kinds[:1:-1]
                for name, kw in pair:
                    sweep(name, **kw)
    finally:
        if cluster is not None:
            from mmsim.sweep import close_workers

            close_workers()  # and the dask client kept for the next sweep (since dask9)
            cluster.stdin.close()  # its process closes the cluster and exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                cluster.wait(timeout=30)
    for name, table in tables.items():
        assert table.equals(tables["serial"]), f"rows differ: {name} vs serial"
    best = {k: {"wall_min_s": min(v["wall"]), "wall_median_s": statistics.median(v["wall"]),
                "cpu_min_s": min(v["cpu"]), "cpu_median_s": statistics.median(v["cpu"]),
                "unloaded_min_s": min(v["unloaded"])}
            for k, v in runs.items()}  # fmt: skip
    out = {
        "runs": len(tables["serial"]),
        "run_days": run_days,
        **best,
        "wall_efficiency": best["workers_1"]["wall_min_s"] / (2 * best["workers_2"]["wall_min_s"]),
        "unloaded_efficiency": best["workers_1"]["unloaded_min_s"]
        / (2 * best["workers_2"]["unloaded_min_s"]),
        "wall_efficiency_vs_serial": best["serial"]["wall_min_s"]
        / (2 * best["workers_2"]["wall_min_s"]),
        "cpu_efficiency": best["serial"]["cpu_min_s"] / best["workers_2"]["cpu_min_s"],
    }
    if dask:
        d, p = best["dask_2"], best["workers_2"]
        out["dask_tasks"] = tasks
        out["dask_vs_pool_wall"] = d["wall_min_s"] / p["wall_min_s"]
        out["dask_vs_pool_wall_median"] = d["wall_median_s"] / p["wall_median_s"]
        # each dask sweep over the pool sweep run next to it (the same load, about)
        pair = zip(runs["dask_2"]["wall"], runs["workers_2"]["wall"], strict=True)
        out["dask_vs_pool_wall_pairs"] = statistics.median(a / b for a, b in pair)
        out["dask_vs_pool_cpu"] = d["cpu_min_s"] / p["cpu_min_s"]
        out["dask_vs_pool_unloaded"] = d["unloaded_min_s"] / p["unloaded_min_s"]
    return out


_CLUSTER = """
import sys
from mmsim.sweep import local_cluster
cluster = local_cluster(int(sys.argv[1]))
print(cluster.scheduler_address, flush=True)
sys.stdin.read()  # until the benchmark closes it
cluster.close()
"""


def _cluster_process(workers: int) -> tuple[subprocess.Popen, str]:
    """A process running :func:`mmsim.sweep.local_cluster` (``workers``) and its
    scheduler's address; closing its stdin closes the cluster."""
    proc = subprocess.Popen([sys.executable, "-c", _CLUSTER, str(workers)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    address = proc.stdout.readline().strip()
    if not address:
        raise RuntimeError("the dask cluster's process did not start")
    return proc, address


def _dask_warm_and_tasks(address: str, scenario, seeds: int) -> list[int] | str:
    """Check that every worker of the cluster at ``address`` has run mmsim (imports and
    kernels loaded) and return the sizes of the tasks a sweep of ``seeds`` x GRID sends
    it (any version of mmsim: a dask task is one ``submit``), or ``"cN"``: N tasks that
    claim runs one at a time (:mod:`mmsim.dask_claims`)."""
    from dask.distributed import Client

    from mmsim import executors

    def warm() -> bool:
        from mmsim import workers

        return bool(getattr(workers, "_DASK_WARM", False) or workers.is_warm())

    with Client(address) as client:
        cold = [w for w, ok in client.run(warm).items() if not ok]
    assert not cold, f"dask workers not warm before timing: {cold}"
    sizes: list[int] = []
    real, real_all = executors._Pool.submit, getattr(executors._Pool, "submit_all", None)

    def spy(self, *args):
        if self.kind == "dask":
            sizes.append(len(args[1]))
        return real(self, *args)

    def spy_all(self, args):  # every task at once (since dask9)
        if self.kind == "dask":
            sizes.extend(len(a[1]) for a in args)
        return real_all(self, args)

    real_tasks = getattr(executors._Pool, "submit_tasks", None)
    claiming = [0]

    def spy_tasks(self, task, args, *more):  # tasks claiming runs (since dask13)
        if self.kind == "dask":
            claiming[0] += len(args)
        return real_tasks(self, task, args, *more)

    executors._Pool.submit = spy
    if real_all is not None:
        executors._Pool.submit_all = spy_all
    if real_tasks is not None:
        executors._Pool.submit_tasks = spy_tasks
    try:
        import mmsim

        mmsim.sweep(scenario, GRID, seeds=seeds, executor="dask", dask_address=address,
                    progress=False)  # fmt: skip
    finally:
        executors._Pool.submit = real
        if real_all is not None:
            executors._Pool.submit_all = real_all
        if real_tasks is not None:
            executors._Pool.submit_tasks = real_tasks
    return f"c{claiming[0]}" if claiming[0] and not sizes else sizes


_POOL_CHILD = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("bench_sweeps", sys.argv[1])
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
print(json.dumps(bench.bench_200(*json.loads(sys.argv[2]))))
"""


def pool_in_child(mmsim_dir: Path, args: list) -> dict:
    """:func:`bench_200` (``args``) in a new process importing the ``mmsim`` of
    ``mmsim_dir`` (this file loaded by path: the same benchmark for every version)."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-c", _POOL_CHILD, __file__, json.dumps(args)]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp,
                              env=_env(mmsim_dir), check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _print_command(c: dict, tag: str, plot: bool = False) -> None:
    how = "with figures" if plot else "--no-plot"
    head = f"band_sweep (40 runs), mmsim sweep {how}, serial{tag}"
    print(f"{head:<56}{c['serial_wall_min_s']:>7.2f} s wall (median"
          f" {c['serial_wall_median_s']:.2f}){c['serial_cpu_min_s']:>7.2f} s CPU")  # fmt: skip
    head = f"same, --executor processes --workers 2{tag}"
    print(f"{head:<56}{c['processes_wall_min_s']:>7.2f} s wall (median"
          f" {c['processes_wall_median_s']:.2f}){c['processes_cpu_min_s']:>7.2f} s CPU"
          f"  speedup {c['speedup']:.2f}x (medians {c['speedup_median']:.2f}x),"
          f" CPU x{c['cpu_ratio']:.2f}")  # fmt: skip


def _print_warm(w: dict, tag: str) -> None:
    how = "forked" if w["forked"] else "fork server"
    head = f"band_sweep (40 runs), warm process, serial{tag}"
    print(f"{head:<56}{w['serial_wall_min_s']:>7.2f} s wall (median"
          f" {w['serial_wall_median_s']:.2f}){w['serial_cpu_min_s']:>7.2f} s CPU")  # fmt: skip
    kinds = [("processes", "workers kept by the last sweep", "")] if w.get("kept") else []
    kinds.append(("fresh", "new workers", "fresh_"))
    for kind, what, key in kinds:
        head = f"same, 2 {what} ({how}){tag}"
        print(f"{head:<56}{w[f'{kind}_wall_min_s']:>7.2f} s wall (median"
              f" {w[f'{kind}_wall_median_s']:.2f}){w[f'{kind}_cpu_min_s']:>7.2f} s CPU"
              f"  speedup {w[f'{key}speedup']:.2f}x (medians {w[f'{key}speedup_median']:.2f}x),"
              f" CPU x{w[f'{key}cpu_ratio']:.2f}, busiest process"
              f" {w[f'{key}cpu_path_speedup']:.2f}x")  # fmt: skip


def _print_phases(rec: dict, tag: str) -> None:
    marks = " | ".join(f"{name} {w:.2f}/{c:.2f}" for name, w, c in rec["marks"])
    print(f"{rec['executor']}{tag}: wall/CPU s at the end of each phase: {marks};"
          f" workers' CPU {rec['children_cpu']:.2f}")  # fmt: skip


def _print_big(big: dict, tag: str) -> None:
    label = f"{big['runs']} runs x {big['run_days']:g} day"
    names = {"serial": "serial", "workers_1": "1 warm worker", "workers_2": "2 warm workers",
             "dask_2": "running dask, 2 workers"}  # fmt: skip
    for name, what in names.items():
        if name in big:
            b = big[name]
            head = f"{label}, {what}{tag}"
            print(f"{head:<56}{b['wall_min_s']:>7.2f} s wall (median {b['wall_median_s']:.2f})"
                  f"{b['cpu_min_s']:>7.2f} s CPU")  # fmt: skip
    if "unloaded_efficiency" in big:
        u1, u2 = big["workers_1"]["unloaded_min_s"], big["workers_2"]["unloaded_min_s"]
        print(f"wall less run-queue waits{tag}: 1 worker {u1:.2f} s, 2 workers {u2:.2f} s,"
              f" T1/(2 T2) {big['unloaded_efficiency']:.0%}")  # fmt: skip
    print(
        f"efficiency{tag}, wall T1/(2 T2) {big['wall_efficiency']:.0%}, "
        f"wall Tserial/(2 T2) {big['wall_efficiency_vs_serial']:.0%}, "
        f"CPU serial/2 workers {big['cpu_efficiency']:.0%}"
    )
    if "dask_vs_pool_wall" in big:
        tasks = big.get("dask_tasks", "?")
        tasks = f"{tasks[1:]} claiming runs" if str(tasks).startswith("c") else f"of {tasks} runs"
        print(f"dask / process pool{tag}: wall {big['dask_vs_pool_wall']:.2f} (medians"
              f" {big.get('dask_vs_pool_wall_median', float('nan')):.2f}, median of"
              f" adjacent pairs {big.get('dask_vs_pool_wall_pairs', float('nan')):.2f}),"
              f" CPU {big['dask_vs_pool_cpu']:.2f}; dask tasks {tasks}")  # fmt: skip
        u = big["dask_2"]["unloaded_min_s"]
        print(f"dask / process pool{tag}, wall less run-queue waits: {u:.2f} s,"
              f" {big['dask_vs_pool_unloaded']:.2f}")  # fmt: skip


def _pool_only(big_args: list, base: Path | None, load: float, rounds: int = 2) -> None:
    """Only :func:`bench_200`: in this process, or with ``base`` in child processes of
    this version and the base alternated ``rounds`` times (each line its own run)."""
    if base is None:
        _print_big(bench_200(*big_args), "")
    else:
        for _ in range(rounds):
            for tag, mmsim_dir in ((" [base]", base), ("", _this_mmsim())):
                _print_big(pool_in_child(mmsim_dir, big_args), tag)
                print(f"  load average (1 min) {_load():.1f}", flush=True)
    print(f"load average (1 min) at start {load:.1f}, at end {_load():.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweeps")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and runs")
    parser.add_argument("--no-dask", action="store_true", help="skip the dask cluster")
    parser.add_argument("--mmsim", type=Path, help="baseline: the mmsim package in this directory")
    parser.add_argument("--phases", action="store_true", help="only the phases of a command")
    parser.add_argument("--plot", action="store_true", help="--phases of the command with figures")
    parser.add_argument(
        "--pool-only", action="store_true", help="only the 200-run sweep (3.), with --mmsim too"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="--pool-only with --mmsim: alternated rounds"
    )
    parser.add_argument(
        "--run-days", type=float, help="days of each run of the 200-run sweep (3.; 0.25)"
    )
    parser.add_argument(
        "--pairs", type=int, default=3, help="2 workers and dask alternated per round (3.)"
    )
    parser.add_argument(
        "--work",
        metavar="D1,D2,...",
        help="only the fresh command's 2-worker speedup at these clock.days (and --repeat)",
    )
    parser.add_argument("--repeat", type=int, default=2, help="--work: repeats of each")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/sweeps.json")
    args = parser.parse_args()
    load = _load()
    dirs = {"": None, **({" [base]": args.mmsim} if args.mmsim else {})}
    if args.work:
        work = bench_work([float(d) for d in args.work.split(",")], args.repeat, args.mmsim)
        for tag in dirs:
            _print_work(work["base"] if tag else work, tag)
        print(f"load average (1 min) at start {load:.1f}, at end {_load():.1f}")
        return
    if args.phases:
        for _ in range(1 if args.quick else 3):
            for tag, mmsim_dir in reversed(dirs.items()):
                serial = phases("serial", mmsim_dir, args.plot)
                _print_phases(serial, tag)
                forked = phases("processes", mmsim_dir, args.plot)
                _print_phases(forked, tag)
                own, kids = forked["marks"][-1][2], forked["children_cpu"]
                print(f"  CPU of the command's process, serial / 2 workers:"
                      f" {serial['marks'][-1][2] / own:.2f}x (its forks' CPU {kids:.2f} s:"
                      f" the wall speedup on 2 idle cores, unless they took longer)")  # fmt: skip
                a = amdahl(serial)
                print(f"  fixed {a['fixed_cpu_s']:.2f} s CPU, runs 2-40 {a['parallel_cpu_s']:.2f}"
                      f" s, figures' imports {a['plot_imports_cpu_s']:.2f} s, figures"
                      f" {a['figures_cpu_s']:.2f} s: 2 workers give the command at most"
                      f" {a['best_speedup_2']:.2f}x ({a['best_speedup_2_no_overlap']:.2f}x"
                      " sharing only the runs)")  # fmt: skip
        print(f"load average (1 min) at start {load:.1f}, at end {_load():.1f}")
        return
    run_days = args.run_days or (0.05 if args.quick else 0.25)
    big_args = [4 if args.quick else 20, run_days, 1 if args.quick else 2,
                not args.no_dask, 1 if args.quick else args.pairs]  # fmt: skip
    if args.pool_only:
        _pool_only(big_args, args.mmsim, load, args.rounds)
        return
    command = bench_command(1 if args.quick else 3, args.mmsim)
    figures = bench_command(1 if args.quick else 3, args.mmsim, plot=True)
    repeat = 2 if args.quick else 5
    warm = bench_warm_pair(repeat, args.mmsim) if args.mmsim else bench_warm(repeat)
    big = bench_200(*big_args)
    load_end = _load()
    print(
        f"load average (1 min) at start {load:.1f}, at end {load_end:.1f}, {os.cpu_count()} cores"
    )
    for tag in dirs:
        _print_command(command["base"] if tag else command, tag)
    for tag in dirs:
        _print_command(figures["base"] if tag else figures, tag, plot=True)
    for tag in dirs:
        _print_warm(warm["base"] if tag else warm, tag)
    _print_big(big, "")
    out = args.json
    out.parent.mkdir(parents=True, exist_ok=True)
    warm = {k: v for k, v in warm.items() if k not in ("wall", "cpu", "busiest")}
    report = {"load": load, "load_end": load_end, "command": command,
              "command_figures": figures, "warm": warm, "pool": big}  # fmt: skip
    out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
