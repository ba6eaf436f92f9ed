"""``python -m benchmarks.compiles [SCENARIO] [--mmsim DIR] [--repeat N] [--top N] [--check]``:
the first run after an install, with numba's disk cache empty.

Runs ``mmsim run SCENARIO --no-plot`` (default ``long_gamma``) in a fresh process with a
fresh ``NUMBA_CACHE_DIR``, so numba compiles every kernel the run needs, and prints the
process's CPU (``getrusage``: user and system s), the number of compilations, the
functions that took longest (CPU s, those of the compilations they set off excluded:
:class:`mmsim.numba_boot.CompileLog`) and every function compiled with more than one
signature (mmsim's). ``--mmsim DIR`` measures the ``mmsim`` package in DIR (another checkout) too,
alternated with this one, ``--repeat`` times each (least CPU shown). ``--check`` also
runs the scenario a second time on the cache the first run left, and exits 1 if this
checkout compiled one of its kernels with two signatures or compiled anything in the warm
run (tests/test_compiles.py checks ``long_gamma``; this covers the costlier scenarios,
such as ``spx_2022-02-07`` and ``multi_dealer_bands``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from benchmarks.cases import SCENARIOS

BOOT = Path(__file__).resolve().parents[1] / "mmsim" / "numba_boot.py"

# the child loads CompileLog from this checkout's file, so it can watch any mmsim package.
# "screen": no -q, stderr a terminal (what a user sees: mmsim's first-run notice).
CHILD = r"""
import dataclasses, importlib.util, io, json, resource, sys
spec = importlib.util.spec_from_file_location("_compile_log", sys.argv[1])
log_mod = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = log_mod
spec.loader.exec_module(log_mod)
out, screen = sys.argv[2], sys.argv[5] == "screen"
sys.argv = ["mmsim", "run", sys.argv[3], "--no-plot", "-o", sys.argv[4]]
sys.argv += [] if screen else ["-q"]
class Terminal(io.StringIO):
    def isatty(self):
        return True
if screen:
    sys.stderr = Terminal()
from mmsim.cli import main
with log_mod.CompileLog() as log:
    rc = main()
ru = resource.getrusage(resource.RUSAGE_SELF)
with open(out, "w") as f:
    json.dump({"rc": rc, "user": ru.ru_utime, "sys": ru.ru_stime,
               "stderr": sys.stderr.getvalue() if screen else None,
               "compiles": [dataclasses.asdict(c) for c in log.compiles]}, f)
"""


def cold_run(
    scenario: Path, mmsim_dir: Path, *, then_warm: bool = False, screen: bool = False
) -> dict:
    """One ``mmsim run --no-plot`` of ``scenario`` with the package in ``mmsim_dir`` and an
    empty numba cache: ``{"rc", "user", "sys", "stderr", "compiles": [Compile as a dict,
    ...]}``. ``then_warm``: a second run in a new process on the cache the first one left,
    as ``rec["warm"]`` (the same keys). ``screen``: without ``-q``, stderr a terminal
    (``stderr`` holds what it showed; None otherwise)."""
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(mmsim_dir), "NUMBA_CACHE_DIR": str(t / "nb")}
        mode = "screen" if screen else "quiet"

        def one(name: str) -> dict:
            args = [sys.executable, "-c", CHILD, str(BOOT), str(t / f"{name}.json"), str(scenario)]
            subprocess.run([*args, str(t / name), mode], env=env, cwd=tmp, check=True)
            return json.loads((t / f"{name}.json").read_text())

        rec = one("cold")
        if then_warm:
            rec["warm"] = one("warm")
        return rec


def repeated(rec: dict) -> dict[str, list[tuple[str, ...]]]:
    """mmsim's functions the record compiled with more than one signature (numba's own,
    such as ``np.empty`` per dtype, left out), each with its signatures."""
    sigs: dict[str, set] = defaultdict(set)
    for c in rec["compiles"]:
        if c["function"].startswith("mmsim."):
            sigs[c["function"]].add(tuple(c["signature"]))
    return {f: sorted(s) for f, s in sigs.items() if len(s) > 1}


def summary(rec: dict, top: int) -> str:
    """The record's CPU, compilation count, top functions and repeated signatures."""
    by: dict[str, list[dict]] = defaultdict(list)
    for c in rec["compiles"]:
        by[c["function"]].append(c)
    total = sum(c["seconds"] for c in rec["compiles"])
    lines = [
        f"CPU {rec['user']:.2f} s user + {rec['sys']:.2f} s system; "
        f"{len(rec['compiles'])} compilations, {total:.2f} s of CPU in them"
    ]
    ranked = sorted(by.items(), key=lambda kv: -sum(c["seconds"] for c in kv[1]))
    for name, cs in ranked[:top]:
        lines.append(f"  {sum(c['seconds'] for c in cs):6.2f} s  {len(cs)}x  {name}")
    for name in repeated(rec):
        lines.append(f"  {len(by[name])} signatures: {name}")
        lines.extend(
            f"      {c['seconds']:5.2f} s  ({', '.join(c['signature'])})" for c in by[name]
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compiles", description=__doc__)
    p.add_argument("scenario", nargs="?", default=str(SCENARIOS / "long_gamma.yaml"))
    p.add_argument("--mmsim", type=Path, help="another checkout's mmsim, measured too")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--check", action="store_true", help="exit 1 on a repeated signature or "
                   "a compile in a second (warm) run")  # fmt: skip
    args = p.parse_args(argv)
    dirs = {"this": BOOT.parents[1]}
    if args.mmsim is not None:
        dirs["base"] = args.mmsim.resolve()
    scenario = Path(args.scenario).resolve()
    best: dict[str, dict] = {}
    for _ in range(args.repeat):
        for key, d in reversed(dirs.items()):  # the base first in each round
            rec = cold_run(scenario, d, then_warm=args.check)
            if key not in best or rec["user"] + rec["sys"] < best[key]["user"] + best[key]["sys"]:
                best[key] = rec
    for key, d in dirs.items():
        print(f"== {key}: {d}\n{summary(best[key], args.top)}")
        if "warm" in best[key]:
            w = best[key]["warm"]
            print(f"  then warm: CPU {w['user']:.2f} s user + {w['sys']:.2f} s system; "
                  f"{len(w['compiles'])} compilations")  # fmt: skip
    if args.check:
        this = best["this"]
        bad = [f"{f}: {len(s)} signatures" for f, s in repeated(this).items()]
        bad += [f"warm run compiled {c['function']}" for c in this["warm"]["compiles"]]
        print(
            "check: "
            + ("; ".join(bad) if bad else "one signature per kernel, a warm run compiles nothing")
        )
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
