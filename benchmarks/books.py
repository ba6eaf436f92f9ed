"""Book size and run length (issue 11, targets 2 and 3), with whole-day runs.

    python -m benchmarks.books [--mmsim DIR] [--json PATH] [--repeat 2] [--days 1,5,20]

- ``books``: CPU per simulated day (``process_time``, min of ``--repeat`` runs after a
  warm-up run) of ``long_gamma``'s market with one dealer holding 1, 100, 1,000 and
  10,000 synthetic lines (:func:`benchmarks.cases.book_scenario`), band 0 and 100
  shares, each a **whole day** (a table built at the open costs what it costs per day;
  ``python -m benchmarks`` runs the big books for 0.01-0.05 day, which charges a whole
  build to a few minutes).
- ``chain``: CPU per day of the real SPX chain book (``scenarios/spx_2022-02-07.yaml``:
  5,720 lines, customers, a pension program) and of its 1-line controls, the same market
  with the chain book replaced by one line of the same gamma, with and without the
  customers (:func:`benchmarks.cases.chain_scenarios`): target 2 on the real book.
- ``days``: ``multi_dealer_bands`` (customer flow grows the book all run long) at each
  length of ``--days``, and the log-log slope of CPU on days. ``--set path=value``
  overrides the scenario (e.g. when the shipped one diverges before the longest run).

``--mmsim DIR`` measures the ``mmsim`` package in DIR (e.g. the main checkout) with
this code, so before and after come from the same benchmark in the same session.
``--parts N`` prints where a day of the ``N``-line book goes (CPU of the compiled
pieces, each wrapped: levels, flips and their profile table, delta-table builds, the
kernel, the result), band 0 and 100, the day itself the minimum of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_PARTS = (  # (module, attribute, label): what a big book's day is spent on
    ("mmsim.sampler", "levels_row_grouped", "levels (walls, GEX at walls)"),
    ("mmsim.sampler", "levels_row_held", "levels in a wall box"),
    ("mmsim.wall_hold", "wall_box", "wall box builds"),
    ("mmsim.book", "build_profile", "flips: profile table builds"),
    ("mmsim.book", "table_flips", "flips: from the table"),
    ("mmsim.book", "nearest_flips", "flips: exact walk-out"),
    ("mmsim.book", "build_table", "delta-table builds"),
    ("mmsim.fastpath", "advance", "kernel (fastpath.advance)"),
)


def parts(n_lines: int, repeat: int) -> list[dict]:
    """CPU by part of a day with ``n_lines`` synthetic lines, band 0 and 100 (s)."""
    import time

    from benchmarks import cases
    from mmsim.scenario import load_scenario

    spent: dict[str, float] = {}
    saved = []
    for mod_name, attr, label in _PARTS:
        if (found := cases.part_of(mod_name, None, attr)) is None:
            continue
        mod, f = found

        def timed(*a, _f=f, _label=label, **k):
            t0 = time.process_time()
            try:
                return _f(*a, **k)
            finally:
                spent[_label] = spent.get(_label, 0.0) + time.process_time() - t0

        saved.append((mod, attr, f))
        setattr(mod, attr, timed)
    rows = []
    with cases.restoring(saved):
        for band in (0.0, 100.0):
            sc = load_scenario(cases.book_scenario(n_lines, band, 1.0))
            total, _, parts = cases.least_of_runs(sc, repeat, spent)
            rows.append({"lines": n_lines, "band": band, "total": total, **parts})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.books", description=__doc__)
    parser.add_argument("--mmsim", type=Path, help="measure the mmsim package in this directory")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--days", default="1,5,20", help="multi_dealer_bands lengths")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE")
    parser.add_argument("--seed", type=int, default=1, help="multi_dealer_bands seed")
    parser.add_argument(
        "--skip", default="", help="any of 'books', 'chain', 'days' (comma-separated)"
    )
    parser.add_argument("--parts", type=int, default=0, metavar="N",
                        help="print where a day of an N-line book goes")  # fmt: skip
    args = parser.parse_args(argv)
    if args.mmsim is not None:
        sys.path.insert(0, str(args.mmsim.resolve()))
    import mmsim
    from benchmarks import cases
    from benchmarks.timing import cpu_of

    report: dict = {"mmsim": str(Path(mmsim.__file__).resolve().parent)}
    if args.parts:
        report["parts"] = parts(args.parts, args.repeat)
        for row in report["parts"]:
            total = row["total"]
            split = {k: v for k, v in row.items() if k not in ("lines", "band", "total")}
            text = ", ".join(f"{k} {v:.3f}" for k, v in split.items())
            rest = total - sum(split.values())
            print(f"book {row['lines']:,} lines, band {row['band']:g}: {total:.3f} s/day; "
                  f"{text}; the rest {rest:.3f}", flush=True)  # fmt: skip
    if "books" not in args.skip:
        report["books"] = []
        for band in (0.0, 100.0):
            for n in (1, 100, 1_000, 10_000):
                row = cases.book_day(n, band, 1.0, args.repeat)
                report["books"].append(row)
                one = report["books"][0 if band == 0.0 else 4]["s_per_day"]
                print(f"book {n:>6,} lines, band {band:>3g}: {row['s_per_day']:.3f} s/day "
                      f"({row['s_per_day'] / one:.1f}x 1 line)", flush=True)  # fmt: skip
    if "chain" not in args.skip:
        report["chain"] = cases.chain_day(args.repeat)
        one = next(r["s_per_day"] for r in report["chain"] if r["case"] == "one_line")
        for row in report["chain"]:
            print(f"SPX chain {row['case']:<22} ({row['lines']:>5,} lines at the open): "
                  f"{row['s_per_day']:.3f} s/day ({row['s_per_day'] / one:.1f}x one_line)",
                  flush=True)  # fmt: skip
    if "days" not in args.skip:
        from mmsim.engine import Simulation
        from mmsim.scenario import load_scenario

        over = dict(kv.split("=", 1) for kv in args.set)
        over = {**cases.DAYS_OVERRIDES, **{k: cases.set_value(v) for k, v in over.items()}}
        rows = []
        for d in (float(x) for x in args.days.split(",")):
            sc = load_scenario(cases.SCENARIOS / "multi_dealer_bands.yaml",
                               overrides={**over, "clock.days": d})  # fmt: skip
            Simulation(sc, args.seed).run() if d == 1.0 else None  # warm-up
            cpu = cpu_of(lambda sim: sim.run(), args.repeat,
                         setup=lambda sc=sc: Simulation(sc, args.seed))  # fmt: skip
            rows.append({"days": d, "cpu": cpu})
            print(f"multi_dealer_bands {d:g} d: {cpu['min']:.2f} s CPU "
                  f"({cpu['min'] / d:.3f} s/day)", flush=True)  # fmt: skip
        exponent = cases.loglog_exponent([r["days"] for r in rows],
                                         [r["cpu"]["min"] for r in rows])  # fmt: skip
        report["days"] = {"rows": rows, "exponent": exponent, "overrides": over}
        print(f"log-log exponent in days: {exponent:.3f}")
    cases.save_report(args.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
