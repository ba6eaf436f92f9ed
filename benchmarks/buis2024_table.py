"""Reproduce Buis et al. (2024) Table 1, Panels A and C: failure rates of the book.

    python -m benchmarks.buis2024_table [--paths 100] [--workers 2]
    python -m benchmarks.buis2024_table --panel A --executor serial --out a.csv


Runs ``scenarios/buis2024_panel_a.yaml`` and ``..._panel_c.yaml`` as sweeps (hedgers'
position -80..80 x the panel's parameter, ``--paths`` seeds per cell; the same seeds in
every cell) and writes ``notebooks/data/buis2024_table.csv``: one row per cell with the
simulated failure rate, its binomial standard error and the published value.

With ``--panel`` one panel runs alone; with ``--minutes`` it runs path-major (seed 0 in
every cell, then seed 1, ...; run seeds 0, 1, ...) and stops after the last whole round
of seeds that ends within the deadline, so every cell has the same paths. The committed
table: both panels at once, one process each, ``--paths 100 --minutes 25``, joined with
``--merge``; each finished all 100 paths in ~18.5 minutes on 2 cores shared with other
jobs.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import pandas as pd

import mmsim
from mmsim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "notebooks" / "data" / "buis2024_table.csv"
POSITIONS = [-80, -60, -40, -20, 0, 20, 40, 60, 80]
PUBLISHED = {  # Buis et al. (2024), Table 1, failure rates in %, columns POSITIONS
    ("A", 0.35): [50, 45, 5, 0, 0, 0, 0, 0, 0],
    ("A", 0.375): [95, 90, 45, 0, 20, 0, 0, 0, 0],
    ("A", 0.4): [100, 95, 100, 90, 85, 0, 0, 0, 0],
    ("C", 0.1): [70, 40, 5, 0, 0, 0, 0, 0, 0],
    ("C", 0.125): [80, 80, 25, 5, 0, 0, 0, 0, 0],
    ("C", 0.15): [100, 100, 50, 15, 0, 0, 0, 0, 5],
}
PANELS = {
    "A": ("buis2024_panel_a", "market.book.p_market"),
    "C": ("buis2024_panel_c", "market.book.xi"),
}


def panel_table(panel: str, paths: int, workers: int, executor: str = "processes") -> pd.DataFrame:
    """Failure rate per (parameter, position) cell of one panel, ``paths`` seeds each."""
    name, key = PANELS[panel]
    sc = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    block = sc.sweep
    rows = mmsim.sweep(
        sc,
        block.grid,
        zip=block.zip,
        seeds=paths,
        sweep_seed=block.seed,
        executor=executor,
        workers=workers,
        progress=False,
    )
    qty = "dealers.0.positions.0.qty"
    return _cells(panel, key, rows.groupby([key, qty])["failed"].agg(["mean", "count"]))


def _cells(panel: str, key: str, agg: pd.DataFrame) -> pd.DataFrame:
    """One row per (parameter, position) cell from the failed flags' mean and count."""
    out = []
    for r in agg.reset_index().itertuples(index=False):
        value, position = float(r[0]), int(r[1])
        p, n = float(r[2]), int(r[3])
        published = PUBLISHED[(panel, value)][POSITIONS.index(position)]
        out.append(
            {
                "panel": panel,
                "param": key,
                "value": value,
                "position": position,
                "failure_rate": 100.0 * p,
                "stderr": 100.0 * math.sqrt(max(p * (1 - p), 0.25 / n) / n),
                "paths": n,
                "published": float(published),
            }
        )
    return pd.DataFrame(out)


def panel_rounds(panel: str, paths: int, deadline: float, log: Path) -> pd.DataFrame:
    """Like :func:`panel_table`, path-major: seed 0 in every cell, then seed 1, ...,
    each run appended to ``log`` as it ends; stops after the last full round of seeds
    that ends before ``deadline`` (a ``time.time()``), so every cell has the same paths.
    Run seeds are 0, 1, ...; the same seeds in every cell."""
    name, key = PANELS[panel]
    sc = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    qty = "dealers.0.positions.0.qty"
    cells = [(v, p) for v in sc.sweep.grid[key] for p in POSITIONS]
    rows: list[dict] = []
    with log.open("w") as fh:
        fh.write("panel,value,position,seed,failed\n")
        for seed in range(paths):
            if seed and time.time() > deadline:
                break
            for value, pos in cells:
                over = {key: value, qty: pos, "dealers.0.positions.1.qty": pos}
                failed = float(mmsim.run(sc, seed=seed, overrides=over).metrics["failed"])
                rows.append({key: value, qty: pos, "failed": failed, "seed": seed})
                fh.write(f"{panel},{value},{pos},{seed},{failed}\n")
                fh.flush()
    done = pd.DataFrame(rows)  # whole rounds only: the deadline is checked between them
    return _cells(panel, key, done.groupby([key, qty])["failed"].agg(["mean", "count"]))


def main(argv: list[str] | None = None) -> None:
    """Command line: run both panels and write the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--paths", type=int, default=100, help="paths (seeds) per cell")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--panel", choices=sorted(PANELS), help="one panel only (default both)")
    ap.add_argument("--executor", default="processes", help="sweep executor (serial, ...)")
    ap.add_argument(
        "--merge", type=Path, nargs="+", help="join panel CSVs written with --panel into --out"
    )
    ap.add_argument(
        "--minutes",
        type=float,
        help="with --panel: seeds 0, 1, ... path-major, stop after the last full round of "
        "seeds that ends within this many minutes (runs logged to OUT.runs.csv)",
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.merge:
        table = pd.concat([pd.read_csv(f) for f in args.merge], ignore_index=True)
    elif args.minutes is not None and args.panel:
        log = args.out.with_suffix(".runs.csv")
        table = panel_rounds(args.panel, args.paths, time.time() + 60 * args.minutes, log)
    else:
        panels = [args.panel] if args.panel else list(PANELS)
        table = pd.concat([panel_table(p, args.paths, args.workers, args.executor) for p in panels])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    wide = table.pivot_table(index=["panel", "value"], columns="position", values="failure_rate")
    print(wide.round(0).to_string())
    paths = int(table["paths"].min())
    print(f"{len(table)} cells x {paths} paths in {time.perf_counter() - t0:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
