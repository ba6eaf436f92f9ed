"""Where the CPU of a fresh ``mmsim`` command goes, part by part.

``python -m benchmarks.fixed_cost [--mmsim DIR] [--repeat N] [--cases run_no_plot,run,sweep]``

Each case is the command as a user types it, in a fresh interpreter, with bytecode
cached as for an installed package (a temporary ``PYTHONPYCACHEPREFIX``, even where
``PYTHONDONTWRITEBYTECODE`` is set: compiling mmsim's sources would add ~0.1-0.2 s that
no installed copy pays) and numba's kernels already in their disk cache (one untimed
run first):

- ``run_no_plot``: ``mmsim run scenarios/long_gamma.yaml --no-plot``
- ``run``: the same with default flags (the overview figures)
- ``sweep``: ``mmsim sweep scenarios/band_sweep.yaml --no-plot --executor serial``
  (its 40 runs in the command's own process: the fixed part is what every process that
  runs runs pays, the runs are what workers share)

A small boot script (:data:`_BOOT`) runs the command's ``main()`` in that process and
splits its CPU (``process_time``) into exclusive parts: the interpreter's start, imports
by top-level package (CPU spent executing each module's own code, nested imports
counted where they belong), numba's kernel loads (``Dispatcher.compile``: loading a
cached kernel, or compiling one on a cache miss; imports inside them counted as
imports), the runs (``Simulation`` built and run, less the loads and imports inside), the figures,
the rest of the command (scenario checks, result tables and files), and the exit
(``getrusage`` of the process less its CPU when ``atexit`` ran). The parts add up to
the process's total CPU. Min and median of ``--repeat`` fresh processes per case;
``--mmsim DIR`` measures that package (another checkout) the same way, interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
CASES = ("run_no_plot", "run", "sweep")
PACKAGES = ("numpy", "numba", "llvmlite", "pandas", "pyarrow", "pydantic", "matplotlib",
            "simpy", "yaml", "mmsim")  # fmt: skip

_BOOT = r"""
import atexit, json, sys, time
T0 = time.process_time()
parts, stack = {}, []  # stack: [part, start CPU, CPU of nested frames]

def _enter(part):
    stack.append([part, time.process_time(), 0.0])

def _leave():
    part, start, nested = stack.pop()
    spent = time.process_time() - start
    if stack:
        stack[-1][2] += spent
    parts[part] = parts.get(part, 0.0) + spent - nested

def timed(part, fn):
    def wrapper(*a, **k):
        _enter(part)
        try:
            return fn(*a, **k)
        finally:
            _leave()
    wrapper.__wrapped__ = fn
    return wrapper

PATCHES = {  # module: [(owner attribute path, part)]: wrapped right after the module loads
    "numba.core.dispatcher": [("Dispatcher.compile", "kernel loads")],
    "mmsim.engine": [("Simulation.__init__", "runs"), ("Simulation.run", "runs")],
    "mmsim.plots": [("save_run_plots", "figures")],
    "mmsim.sweep_figures": [("save_sweep_figures", "figures")],
}
loads = []

def _patch(name, module):
    for path, part in PATCHES.get(name, ()):
        *owner_path, attr = path.split(".")
        owner = module
        for p in owner_path:
            owner = getattr(owner, p, None)
        if owner is not None and hasattr(owner, attr):
            fn = getattr(owner, attr)
            if part == "kernel loads":
                inner = fn
                def fn(self, sig, _inner=inner):
                    loads.append(1)
                    return _inner(self, sig)
            setattr(owner, attr, timed(part, fn))

import importlib._bootstrap as boot
_real = boot._find_and_load

def _find_and_load(name, import_):
    top = name.partition(".")[0]
    _enter("import " + top)
    try:
        module = _real(name, import_)
    finally:
        _leave()
    if name in PATCHES:
        _patch(name, module)
    return module

boot._find_and_load = _find_and_load

def report():  # registered first, so it runs after every later atexit handler
    rec = {"start": T0, "parts": parts, "loads": len(loads), "at_exit": time.process_time()}
    sys.stderr.write("FIXED_COST " + json.dumps(rec) + "\n")

atexit.register(report)

import mmsim.cli
sys.argv = ["mmsim", *sys.argv[1:]]
sys.exit(mmsim.cli.main())
"""

# The parent reads the child's total CPU with getrusage(RUSAGE_CHILDREN) (exit included).
_WRAP = (
    "import json, resource, subprocess, sys\n"
    "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(json.dumps({'rc': p.returncode, 'cpu': u.ru_utime + u.ru_stime,"
    " 'stderr': p.stderr.decode()[-200000:]}))\n"
)


def _argv(case: str, out: Path) -> list[str]:
    lg, bs = str(SCENARIOS / "long_gamma.yaml"), str(SCENARIOS / "band_sweep.yaml")
    return {
        "run_no_plot": ["run", lg, "-o", str(out), "--no-plot", "-q"],
        "run": ["run", lg, "-o", str(out)],
        "sweep": ["sweep", bs, "-o", str(out), "--no-plot", "-q", "--executor", "serial"],
    }[case]


def measure(case: str, mmsim_dir: Path, tmp: Path, pyc: Path, k: str) -> dict:
    """One fresh process of ``case`` with the ``mmsim`` of ``mmsim_dir``: its parts (CPU
    s, exclusive; they add up to ``total``)."""
    env = {**os.environ, "PYTHONPATH": str(mmsim_dir), "PYTHONPYCACHEPREFIX": str(pyc),
           "PYTHONDONTWRITEBYTECODE": ""}  # fmt: skip
    out = tmp / f"{case}-{k}"
    argv = [sys.executable, "-c", _BOOT, *_argv(case, out)]
    done = subprocess.run([sys.executable, "-c", _WRAP, *argv], capture_output=True,
                          text=True, env=env, cwd=tmp, check=True)  # fmt: skip
    rec = json.loads(done.stdout)
    if rec["rc"] != 0:
        raise RuntimeError(f"{case} ({mmsim_dir}) exited {rec['rc']}: {rec['stderr']}")
    line = [x for x in rec["stderr"].splitlines() if x.startswith("FIXED_COST ")][-1]
    child = json.loads(line.removeprefix("FIXED_COST "))
    parts = {"interpreter": child["start"]}
    imports = {p: 0.0 for p in PACKAGES}
    other_imports = 0.0
    for name, s in child["parts"].items():
        if name.startswith("import "):
            top = name.removeprefix("import ")
            if top in imports:
                imports[top] += s
            else:
                other_imports += s
        else:
            parts[name] = parts.get(name, 0.0) + s
    for p, s in imports.items():
        parts[f"import {p}"] = s
    parts["import other"] = other_imports
    parts.setdefault("kernel loads", 0.0)
    parts.setdefault("runs", 0.0)
    parts.setdefault("figures", 0.0)
    accounted = sum(parts.values())
    parts["rest of the command"] = child["at_exit"] - accounted
    parts["exit"] = rec["cpu"] - child["at_exit"]
    parts["total"] = rec["cpu"]
    parts["kernels loaded"] = child["loads"]
    return parts


def bench(cases: list[str], repeat: int, dirs: dict[str, Path]) -> dict:
    """``{case: {label: {part: {"min", "median"}}}}`` over ``repeat`` fresh processes per
    case and package, packages interleaved within each repeat."""
    samples: dict = {c: {label: [] for label in dirs} for c in cases}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        pyc = tmp / "pycache"
        for label, d in dirs.items():  # warm: bytecode and numba's cache
            for c in cases:
                measure(c, d, tmp, pyc, f"warm-{label}")
        for k in range(repeat):
            for c in cases:
                for label, d in dirs.items():
                    samples[c][label].append(measure(c, d, tmp, pyc, f"{k}-{label}"))
    out: dict = {}
    for c, by in samples.items():
        out[c] = {}
        for label, runs in by.items():
            keys = runs[0].keys()
            out[c][label] = {
                key: {
                    "min": min(r[key] for r in runs),
                    "median": statistics.median(r[key] for r in runs),
                }
                for key in keys
            }
    return out


def table(result: dict) -> str:
    """Markdown: one row per part, a column per case and package, ``min (median)``."""
    cols = [(c, label) for c, by in result.items() for label in by]
    head = "| part, CPU s min (median) | " + " | ".join(f"{c} {lab}" for c, lab in cols) + " |"
    lines = [head, "|---|" + "---:|" * len(cols)]
    keys: list[str] = []
    for c, lab in cols:
        keys += [k for k in result[c][lab] if k not in keys]
    for key in keys:
        cells = []
        for c, lab in cols:
            v = result[c][lab].get(key)
            if v is None:
                cells.append("")
            elif key == "kernels loaded":
                cells.append(f"{v['min']:.0f}")
            else:
                cells.append(f"{v['min']:.3f} ({v['median']:.3f})")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fixed_cost")
    parser.add_argument("--mmsim", type=Path, help="baseline: the mmsim package in this directory")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES)
    )
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    dirs = {"this": ROOT}
    if args.mmsim is not None:
        dirs = {"base": args.mmsim.resolve(), **dirs}
    load0 = os.getloadavg()[0]
    result = bench(cases, args.repeat, dirs)
    print(table(result))
    print(f"{args.repeat} fresh processes per cell; load average (1 min) {load0:.1f} -> "
          f"{os.getloadavg()[0]:.1f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
