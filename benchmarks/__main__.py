"""``python -m benchmarks [--quick] [--json PATH] [--mmsim DIR] [--compare A B]
[--startup DIR ...]``.

Measures the targets of issue 11 in CPU time (``process_time`` here, ``getrusage`` for
child processes), min and median of repeats, prints an aligned table and (full mode,
or ``--json``) writes JSON. ``--mmsim DIR`` measures the ``mmsim`` package found in DIR
(e.g. a worktree of an older commit) with this benchmark code; ``--compare A B`` prints
the before/after table of two JSON files as Markdown; ``--startup A B`` measures only
the start-up commands of the packages in A and B, interleaved so both see the same load.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "latest.json"
STARTUP_LABELS = {
    "python": "python -c pass",
    "help": "mmsim --help",
    "validate": "mmsim validate long_gamma",
    "run_no_plot": "mmsim run long_gamma --no-plot",
    "run": "mmsim run long_gamma (default flags)",
    "run_all": "mmsim run long_gamma, every figure (--plots all; before it: default)",
}


def _measure(quick: bool) -> dict:
    from benchmarks import cases

    repeat = 2 if quick else 5
    lg = cases.SCENARIOS / "long_gamma.yaml"
    md = cases.SCENARIOS / "multi_dealer_bands.yaml"
    report: dict = {}
    bare = cases.bare_simpy_day(lg, repeat)
    day = cases.scenario_day(lg, repeat, 1.0)
    report["skeleton"] = {
        "bare_simpy": bare,
        "long_gamma": day,
        "ratio": day["cpu"]["min"] / bare["cpu"]["min"],
    }
    # book-size cases: whole days in full mode (a table built at the open is charged to
    # the day it serves); quick mode's short big-book runs overstate their s/day
    days = {1: 1.0, 100: 1.0, 1_000: 1.0, 10_000: 1.0}
    if quick:
        days = {1: 0.25, 100: 0.25, 1_000: 0.05, 10_000: 0.01}
    report["books"] = [
        cases.book_day(n, band, d, 1 if quick else 3)
        for band in (0.0, 100.0)
        for n, d in days.items()
    ]
    report["checks"] = [
        cases.check_cost(n, 1_000 if quick or (n > 1_000 and mode == "off") else 20_000, mode)
        for mode in ("off", "on")
        for n in (10, 10_000)
    ]
    report["days"] = cases.days_scaling(
        md, [0.5, 1, 2] if quick else [1, 5, 20], 1 if quick else 2, cases.DAYS_OVERRIDES
    )
    report["startup"] = cases.startup(1 if quick else 3)
    report["memory"] = (
        [cases.peak_memory(5, plots=True)]
        if quick
        else [cases.peak_memory(250, plots=False), cases.peak_memory(250, plots=True)]
    )
    return report


def _rows(r: dict) -> list[tuple[str, str, str]]:
    """(measure, value, note) rows of a report."""
    sk = r["skeleton"]
    bare, day = sk["bare_simpy"], sk["long_gamma"]
    rows = [
        ("bare simpy, one long_gamma day of news+noise, CPU s", f"{bare['cpu']['min']:.3f}",
         f"{bare['events']:,.0f} timeouts"),
        ("long_gamma day, CPU s (min / median)", f"{day['cpu']['min']:.3f}",
         f"median {day['cpu']['median']:.3f}"),
        ("skeleton ratio (target <= 0.5)", f"{sk['ratio']:.2f}", ""),
    ]  # fmt: skip
    one = {b["band"]: b["s_per_day"] for b in r["books"] if b["lines"] == 1}
    for b in r["books"]:
        rows.append(
            (
                f"book {b['lines']:>6,} lines, band {b['band']:g}, s/day",
                f"{b['s_per_day']:.3f}",
                f"{b['s_per_day'] / one[b['band']]:.1f}x 1 line ({b['days']:g} d run)",
            )
        )
    for c in r.get("checks", []):
        label = f"one check, {c['lines']:,}-line book, delta_table {c.get('mode', 'off')}, us"
        rows.append((label, f"{c['us_per_check']:.1f}", ""))
    d = r["days"]
    for row in d["rows"]:
        rows.append(
            (
                f"multi_dealer_bands {row['days']:g} d, CPU s",
                f"{row['cpu']['min']:.2f}",
                f"{row['s_per_day']:.3f} s/day",
            )
        )
    rows.append(("  log-log exponent in days (target <= 1.05)", f"{d['exponent']:.3f}", ""))
    st = r["startup"]
    for name, label in STARTUP_LABELS.items():
        if name in st:  # results of older benchmark code lack run_no_plot
            rows.append(
                (f"{label}, CPU s", f"{st[name]['min']:.2f}", f"median {st[name]['median']:.2f}")
            )
    for m in r["memory"]:
        label = f"peak memory, long_gamma {m['days']:g} d{' + plots' if m['plots'] else ''}, MB"
        rows.append((label, f"{m['maxrss_mb']:,.0f}", f"CPU {m['cpu']:.1f} s"))
    return rows


def _print(r: dict) -> None:
    rows = _rows(r)
    w = max(len(m) for m, _, _ in rows) + 2
    print(f"{'measure':<{w}}{'value':>10}  note")
    for m, v, n in rows:
        print(f"{m:<{w}}{v:>10}  {n}")


def _compare(a: Path, b: Path) -> None:
    ra, rb = (json.loads(p.read_text()) for p in (a, b))
    rows_a, rows_b = _rows(ra), _rows(rb)
    print(f"| measure | before ({ra.get('label', a.stem)}) | after ({rb.get('label', b.stem)}) |")
    print("|---|---:|---:|")
    for (m, va, _), (_, vb, _) in zip(rows_a, rows_b, strict=False):
        print(f"| {m} | {va} | {vb} |")


def _startup_side_by_side(packages: list[Path], repeat: int) -> None:
    """The start-up case for each package directory, interleaved (same machine load), as
    a Markdown table of min (median) CPU seconds."""
    from benchmarks import cases

    r = cases.startup(repeat, [p.resolve() for p in packages])
    print("| command, CPU s min (median) | " + " | ".join(map(str, r)) + " |")
    print("|---|" + "---:|" * len(r))
    for name, label in STARTUP_LABELS.items():
        cells = [f"{v[name]['min']:.2f} ({v[name]['median']:.2f})" for v in r.values()]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"\n{repeat} repeats; packages measured in turn within each repeat")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (under a minute)")
    parser.add_argument("--json", type=Path, help=f"write results here (full mode: {RESULTS})")
    parser.add_argument("--mmsim", type=Path, help="measure the mmsim package in this directory")
    parser.add_argument("--label", default="", help="a name for this measurement in the JSON")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    parser.add_argument(
        "--startup",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="only the start-up case, for the mmsim package in each DIR, side by side",
    )
    parser.add_argument("--repeat", type=int, default=5, help="repeats of --startup")
    args = parser.parse_args(argv)
    if args.compare:
        _compare(*args.compare)
        return 0
    if args.startup:
        _startup_side_by_side(args.startup, args.repeat)
        return 0
    if args.mmsim is not None:
        sys.path.insert(0, str(args.mmsim.resolve()))
    import mmsim

    start = time.perf_counter()
    report = {
        "label": args.label,
        "mmsim": str(Path(mmsim.__file__).resolve().parent),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "quick": args.quick,
        **_measure(args.quick),
    }
    report["wall_s"] = time.perf_counter() - start
    _print(report)
    print(f"measured {report['mmsim']} in {report['wall_s']:.0f} s wall")
    path = args.json if args.json is not None else (None if args.quick else RESULTS)
    from benchmarks.cases import save_report

    save_report(path, report)
    if path is not None:
        print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
