"""``python -m benchmarks.figures [SCENARIO] [--days D] [--repeat N] [--mmsim DIR]``: where
the CPU of a run's figures goes, per figure, in one process (``process_time``);
``--mmsim DIR`` measures the ``mmsim`` package in DIR (e.g. the main checkout).

The run itself is done first and not timed; then, as ``mmsim run`` does it, matplotlib and
``mmsim.plots`` are imported (timed once: the first import) and each figure of
``run_figures`` is built (``make``) and written (``save``: layout, drawing, PNG). The
first pass is what a fresh ``mmsim run`` pays (fonts loaded, caches cold); later passes
(``--repeat``) are warm and their minimum is printed beside it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.cases import SCENARIOS


def figure_costs(scenario: Path, days: float | None, repeat: int) -> dict:
    """``{"import": s, "figures": {name: {"make", "save", "warm"}}}``, CPU seconds."""
    from mmsim.engine import Simulation
    from mmsim.scenario import load_scenario

    over = {"clock.days": days} if days is not None else None
    sc = load_scenario(scenario, overrides=over)
    result = Simulation(sc, sc.seed).run(progress=False)
    start = time.process_time()
    from mmsim.plotkit import save
    from mmsim.plots import run_figures

    out: dict = {"import": time.process_time() - start, "figures": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(max(repeat, 1)):
            for name, make in run_figures(result).items():
                a = time.process_time()
                fig = make(result)
                b = time.process_time()
                save(fig, Path(tmp) / name)
                c = time.process_time()
                row = out["figures"].setdefault(name, {"make": b - a, "save": c - b})
                if k:
                    row["warm"] = min(row.get("warm", float("inf")), c - a)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.figures", description=__doc__)
    parser.add_argument("scenario", nargs="?", type=Path, default=SCENARIOS / "long_gamma.yaml")
    parser.add_argument("--days", type=float, help="override clock.days")
    parser.add_argument("--repeat", type=int, default=3, help="passes (the first one cold)")
    parser.add_argument("--mmsim", type=Path, help="measure the mmsim package in this directory")
    args = parser.parse_args(argv)
    if args.mmsim is not None:
        sys.path.insert(0, str(args.mmsim.resolve()))
    r = figure_costs(args.scenario, args.days, args.repeat)
    print(f"{'figure':<24}{'make':>8}{'save':>8}{'cold':>8}{'warm':>8}   CPU s")
    print(f"{'import matplotlib+plots':<24}{'':>16}{r['import']:>8.3f}")
    cold = warm = 0.0
    for name, f in r["figures"].items():
        cold += f["make"] + f["save"]
        warm += f.get("warm", float("nan"))
        w = f.get("warm", float("nan"))
        print(f"{name:<24}{f['make']:>8.3f}{f['save']:>8.3f}{f['make'] + f['save']:>8.3f}{w:>8.3f}")
    print(f"{'all figures':<24}{'':>16}{cold:>8.3f}{warm:>8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
