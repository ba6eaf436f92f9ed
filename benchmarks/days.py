"""Where each simulated day of a long run goes (issue 11, target 3, "linear in days").

    python -m benchmarks.days [--mmsim DIR] [--days 20] [--repeat 2] [--seed 1]
                              [--set path=value] [--json PATH]

Runs ``multi_dealer_bands`` (with :data:`benchmarks.cases.DAYS_OVERRIDES`, as the
``days`` case of :mod:`benchmarks.books`) for ``--days`` sessions after a warm-up run and
prints, per simulated day, the CPU of the run (``process_time`` of the simpy steps whose
clock is in that day: a kernel segment counts on the day it starts) and of its parts,
each a wrapper's inclusive CPU (nested parts are inside their parent):

- ``kernel``: ``fastpath.advance`` (news, noise, dealer checks and hedges);
- ``sampler``: ``Sampler.fill`` (the series rows), with inside it ``greeks`` (the
  per-holder greeks, ``OptionBook.series_greeks_many``), of which ``exact holders``
  (``holder_rows`` of holders summed line by line: their table's sampler rows failed
  validation, or none) and ``levels`` (``Sampler.update_levels``: walls, flips);
- ``flips``: ``OptionBook.flips`` (inside ``levels``);
- ``customers``: ``CustomerFlow.execute`` (a trade booked), with ``folds`` inside it
  (``fold_booked``: the trade folded into the holder's delta table);
- ``builds``: ``build_table`` (delta tables built or rolled on);

and the day's counts: exact holder-samples (``xs``), line evaluations beside a table per
holder-sample (``near``: lines near expiry and changes), table builds (``nb``), folds
(``nf``), rehedges of all dealers (``reh``) and trade-log rows (``trades``: hedges, noise
and other orders). The run of the least total CPU of ``--repeat`` is printed. A summary names
the days that cost most over the median day: in ``multi_dealer_bands`` those are the
days before its two listed expiries (sessions 5 and 21), where lines are summed exactly
(near lines, tables whose sampler rows fail the value check) and tables are short.
A last line (:func:`attribution`) fits the kernel's CPU per calm day on its rehedges
(ms per day + us per rehedge) and gives the log-log exponent of the first 1, 5 and 20
days' CPU measured, at day 1's rehedges, and also without the days near an expiry.
``--steady`` moves every expiry past the run (:data:`STEADY`), a control without the
days that near one. ``--mmsim DIR`` measures the ``mmsim`` package in DIR with this code.

``--versus-one-day`` also measures the 1-day run (``--repeat`` times, least total) and
prints :func:`excess`: by how much the run's days cost more than as many copies of the
1-day run's day, part by part and by kind of day. That is what :mod:`benchmarks.books`'
log-log exponent measures (``t(20 d) / t(1 d)`` sets it: 1.05 needs 23.2; the result's
assembly after the last step, in no day here, is linear in days: at 20 days about 20
times the 1-day run's), with the work each part did (rehedges, trade-log rows, folds,
builds: the scenario's work grows, the engine's cost per unit of it need not) and the
engine's cost per unit of it.
"""

from __future__ import annotations

import argparse
import importlib
import math
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

from benchmarks import cases

_PARTS = (  # (module, class or None, attribute, label): wrapped where the callers read it
    ("mmsim.fastpath", None, "advance", "kernel"),
    ("mmsim.sampler", "Sampler", "fill", "sampler"),
    ("mmsim.book", "OptionBook", "series_greeks_many", "greeks"),
    ("mmsim.sampler", "Sampler", "update_levels", "levels"),
    ("mmsim.book", "OptionBook", "flips", "flips"),
    ("mmsim.agents.customers", "CustomerFlow", "execute", "customers"),
    ("mmsim.book", None, "fold_booked", "folds"),
    ("mmsim.book", None, "build_table", "builds"),
)
STEADY = {
    "customers.0.expiry_days": [40.0, 60.0],
    "customers.1.expiry_days": [60.0],
    "customers.2.expiry_days": [40.0, 60.0],
    "dealers.0.positions.0.expiry_days": 60.0,
    "dealers.0.positions.1.expiry_days": 60.0,
    "dealers.1.positions.0.expiry_days": 40.0,
    "dealers.2.positions.0.expiry_days": 60.0,
}
"""``--steady``: ``multi_dealer_bands`` with every listed expiry and position 40 or 60
sessions away, so no day of a run up to 20 days nears an expiry (no line summed exactly
for being near one, no table shortened for it): what is left of the growth in days is
the book's and the agents' (the tight desk's rehedges grow with its short gamma)."""


class _Meter:
    """Per-day CPU of the parts and counts of one run, keyed by the simulation's clock."""

    def __init__(self) -> None:
        self.sim = None
        self.session = 23_400.0
        self.last = 0  # the run's last day (the run's end instant counts on it)
        self.cpu: dict[tuple[str, int], float] = defaultdict(float)
        self.counts: dict[tuple[str, int], float] = defaultdict(float)

    def day(self) -> int:
        if self.sim is None:
            return 0
        return min(int(self.sim.env.now // self.session), self.last)

    def reset(self, sim) -> None:
        self.sim = sim
        clock = sim.scenario.clock
        self.session = clock.session_seconds
        self.last = max(math.ceil(clock.days) - 1, 0)
        self.cpu.clear()
        self.counts.clear()
        self.ends: dict[int, tuple[float, float, float]] = {}

    def work(self, d: int) -> None:
        """The run's work counters so far, kept as day ``d``'s end: rehedges (all
        dealers), trades logged (hedges, noise and other orders) and price changes."""
        sim = self.sim
        if sim is not None:
            reh = sum(getattr(a, "n_rehedges", 0) for a in sim.dealers)
            self.ends[d] = (reh, sim.trade_log.n, sim.market.changes)


def _install(meter: _Meter) -> list[tuple]:
    """Wrap the parts, ``holder_rows`` (exact holder-samples, near lines) and simpy's
    ``Environment.step`` (the day's total); returns what to restore."""
    import simpy

    saved = []

    def timed(f, label, count=None):
        def wrapper(*a, **k):
            d = meter.day()
            t0 = time.process_time()
            try:
                return f(*a, **k)
            finally:
                meter.cpu[(label, d)] += time.process_time() - t0
                if count is not None:
                    meter.counts[(count, d)] += 1

        return wrapper

    counts = {"builds": "nb", "folds": "nf"}
    for mod_name, cls, attr, label in _PARTS:
        if (found := cases.part_of(mod_name, cls, attr)) is not None:
            owner, f = found
            saved.append((owner, attr, f))
            setattr(owner, attr, timed(f, label, counts.get(label)))
    book = importlib.import_module("mmsim.book")
    rows = getattr(book, "holder_rows", None)
    if rows is not None:

        def holder_rows(j0, j1, times, mids, h, tabulated, *rest):
            d = meter.day()
            t0 = time.process_time()
            end = rows(j0, j1, times, mids, h, tabulated, *rest)
            if not tabulated:
                meter.cpu[("exact holders", d)] += time.process_time() - t0
                meter.counts[("xs", d)] += end - j0
            else:  # near lines (rest[10]) and changes (rest[12]) per holder-sample
                meter.counts[("near", d)] += (rest[10] + rest[12]) * (end - j0)
                meter.counts[("ts", d)] += end - j0
            return end

        saved.append((book, "holder_rows", rows))
        book.holder_rows = holder_rows
    step = simpy.Environment.step

    def stepped(env):
        d = meter.day()
        t0 = time.process_time()
        try:
            return step(env)
        finally:
            meter.cpu[("total", d)] += time.process_time() - t0
            meter.work(d)

    saved.append((simpy.Environment, "step", step))
    simpy.Environment.step = stepped
    return saved


def per_day(days: float, repeat: int, seed: int, overrides: dict) -> dict:
    """Per-day CPU by part and counts of the ``days``-session run (least total CPU of
    ``repeat`` runs after a warm-up): ``{"days": [row per day], "total": s}``."""
    from mmsim.engine import Simulation
    from mmsim.scenario import load_scenario

    sc = load_scenario(cases.SCENARIOS / "multi_dealer_bands.yaml",
                       overrides={**overrides, "clock.days": days})  # fmt: skip
    meter = _Meter()
    with cases.restoring(_install(meter)):
        Simulation(sc, seed).run()  # warm-up
        best = None
        for _ in range(repeat):
            sim = Simulation(sc, seed)
            meter.reset(sim)
            t0 = time.process_time()
            sim.run()
            total = time.process_time() - t0
            if best is None or total < best[0]:
                done = (sum(a.n_rehedges for a in sim.dealers), sim.trade_log.n)
                best = (total, dict(meter.cpu), dict(meter.counts), dict(meter.ends), done)
    total, cpu, counts, ends, done = best
    for d in range(int(max(d for _, d in cpu) + 1)):  # a day without a step: none of it
        ends.setdefault(d, ends.get(d - 1, (0, 0, 0)))
    n = int(max(d for _, d in cpu) + 1)
    labels = ["total"] + [p[3] for p in _PARTS] + ["exact holders"]
    rows = []
    for d in range(n):
        row = {"day": d + 1, **{k: cpu.get((k, d), 0.0) for k in labels}}
        ts = counts.get(("ts", d), 0.0)
        row["xs"] = counts.get(("xs", d), 0.0)
        row["near"] = counts.get(("near", d), 0.0) / ts if ts else 0.0
        row["nb"], row["nf"] = counts.get(("nb", d), 0.0), counts.get(("nf", d), 0.0)
        row["reh"], row["trades"], row["changes"] = (
            ends[d][k] - (ends[d - 1][k] if d else 0) for k in range(3)
        )  # fmt: skip
        rows.append(row)
    return {"days": rows, "total": total, "labels": labels, "run_rehedges": done[0],
            "run_trades": done[1]}  # fmt: skip


def attribution(rows: list[dict], lengths: tuple[int, ...] = (1, 5, 20)) -> dict | None:
    """Where the growth in days comes from, from one run's per-day rows (:func:`per_day`).

    ``kernel``: least squares of the kernel's CPU per day on the day's rehedges over the
    *calm* days (after day 1, no holder sampled exactly, no near lines: no expiry within
    reach): ``(ms per day, us per rehedge, r2)``. ``exponents``: the log-log slope in
    days of the CPU of the first ``lengths`` days (as :mod:`benchmarks.books` fits whole
    runs of those lengths): ``measured``; ``rehedges``: each day's total less the kernel's
    cost of its rehedges over day 1's (the fit's slope), i.e. at day 1's hedging work;
    ``expiries``: that, with every day near an expiry (after day 1: exact holder-samples
    or near lines) at the median of the calm days. ``None`` when the run is too short."""
    import numpy as np

    n = len(rows)
    lengths = tuple(x for x in lengths if x <= n)
    calm = [r for r in rows[1:] if r["xs"] == 0 and r["near"] == 0.0]
    if len(lengths) < 2 or len(calm) < 3:
        return None
    reh = np.array([r["reh"] for r in calm], dtype=float)
    kern = np.array([r["kernel"] for r in calm])
    slope, icpt = np.polyfit(reh, kern, 1)
    resid = kern - (icpt + slope * reh)
    r2 = 1.0 - float(resid @ resid) / max(float(((kern - kern.mean()) ** 2).sum()), 1e-300)
    base = rows[0]["reh"]
    at_day1 = [r["total"] - slope * (r["reh"] - base) for r in rows]
    calm_days = {r["day"] for r in calm}
    quiet = statistics.median(at_day1[r["day"] - 1] for r in calm)
    no_expiry = [v if (i == 0 or i + 1 in calm_days) else quiet for i, v in enumerate(at_day1)]
    series = {"measured": [r["total"] for r in rows], "rehedges": at_day1,
              "expiries": no_expiry}  # fmt: skip
    exps = {
        k: cases.loglog_exponent(list(lengths), [sum(v[:L]) for L in lengths])
        for k, v in series.items()
    }
    return {"kernel": (1e3 * icpt, 1e6 * slope, r2), "exponents": exps, "lengths": lengths}


TOP_PARTS = ("kernel", "sampler", "customers", "builds")
"""The parts that do not nest in one another (:data:`_PARTS`); ``other`` is the day's
total less them (the fast path's Python glue, simpy, the recorder)."""


def excess(one: dict, rows: list[dict]) -> dict:
    """How the days of a run (:func:`per_day` rows) cost more than as many copies of the
    1-day run's day ``one`` (its row), in seconds: ``parts[label][group]`` sums
    ``row[label] - one[label]`` over the days of each group (``all``; ``near``: days
    near an expiry, after day 1 those with exact holder-samples or near lines, as
    :func:`attribution`'s calm days are not; ``tables``: the other days after day 1
    with over 1.5 times the 1-day run's builds (short tables: an expiry a few days
    off); ``calm``: the rest after day 1; ``day 1``), ``other`` being the total
    less :data:`TOP_PARTS`. ``days[group]`` lists each group's days; ``work`` the run's
    and ``days x`` the 1-day run's counts (rehedges, trade-log rows, folds, builds);
    ``unit`` the engine's cost per unit over the run: CPU per fold (s), per build (s)."""
    labels = [k for k in one if isinstance(one[k], float) and k not in
              ("xs", "near", "nb", "nf", "reh", "trades", "changes")]  # fmt: skip
    groups: dict[str, list[int]] = {"day 1": [1] if rows else [], "near": [], "tables": [],
                                    "calm": []}  # fmt: skip
    for r in rows[1:]:
        if not (r["xs"] == 0 and r["near"] == 0.0):
            groups["near"].append(r["day"])
        elif r["nb"] > 1.5 * one["nb"]:
            groups["tables"].append(r["day"])
        else:
            groups["calm"].append(r["day"])
    groups = {"all": [r["day"] for r in rows], **groups}

    def value(row: dict, label: str) -> float:
        if label == "other":
            return row["total"] - sum(row[k] for k in TOP_PARTS)
        return row[label]

    by_day = {r["day"]: r for r in rows}
    parts = {
        label: {g: sum(value(by_day[d], label) - value(one, label) for d in ds)
                for g, ds in groups.items()}
        for label in [*labels, "other"]
    }  # fmt: skip
    work = {k: sum(r[k] for r in rows) for k in ("reh", "trades", "nf", "nb")}
    base = {k: len(rows) * one[k] for k in work}
    unit = {
        "fold": sum(r["folds"] for r in rows) / work["nf"] if work["nf"] else math.nan,
        "build": sum(r["builds"] for r in rows) / work["nb"] if work["nb"] else math.nan,
    }
    return {"parts": parts, "days": groups, "work": work, "days x": base, "unit": unit}


def print_excess(one: dict, rows: list[dict]) -> dict:
    """:func:`excess`, printed (ms); returns it."""
    ex = excess(one, rows)
    n = len(rows)
    groups = [g for g, ds in ex["days"].items() if ds]
    print(f"over {n} x the 1-day run's day ({1e3 * one['total']:.0f} ms), by part and by "
          "kind of day (ms; days: " + "; ".join(
              f"{g} {','.join(map(str, ex['days'][g]))}" for g in groups if g != "all")
          + ")")  # fmt: skip
    print(f"{'part':>13} " + " ".join(f"{g:>8}" for g in groups))
    for label, by in ex["parts"].items():
        print(f"{label[:13]:>13} " + " ".join(f"{1e3 * by[g]:+8.0f}" for g in groups))
    w, b, u = ex["work"], ex["days x"], ex["unit"]
    print("work, run vs that many 1-day runs: "
          + ", ".join(f"{k} {w[k]:,.0f} vs {b[k]:,.0f}" for k in w)
          + f"; engine per unit: {1e6 * u['fold']:.1f} us per fold, "
          f"{1e3 * u['build']:.2f} ms per build")  # fmt: skip
    return ex


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.days", description=__doc__)
    parser.add_argument("--mmsim", type=Path, help="measure the mmsim package in this directory")
    parser.add_argument("--days", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--steady", action="store_true",
                        help="every expiry 40 sessions or more away: no day nears one")  # fmt: skip
    parser.add_argument("--versus-one-day", action="store_true",
                        help="also run 1 day: the excess over that many 1-day days")  # fmt: skip
    args = parser.parse_args(argv)
    if args.mmsim is not None:
        sys.path.insert(0, str(args.mmsim.resolve()))
    import mmsim

    over = {**cases.DAYS_OVERRIDES, **(STEADY if args.steady else {})}
    over.update((k, cases.set_value(v)) for k, v in (kv.split("=", 1) for kv in args.set))
    report = per_day(args.days, args.repeat, args.seed, over)
    report["mmsim"] = str(Path(mmsim.__file__).resolve().parent)
    labels = report["labels"]
    short = {"exact holders": "exact"}
    head = " ".join(f"{short.get(k, k)[:9]:>9}" for k in labels)
    print(f"mmsim {report['mmsim']}: multi_dealer_bands, {args.days:g} days, "
          f"{report['total']:.2f} s CPU (wrapped)")  # fmt: skip
    print(f"day {head} {'xs':>6} {'near':>5} {'nb':>3} {'nf':>4} {'reh':>6} {'trades':>6}"
          "   (ms; counts)")  # fmt: skip
    for row in report["days"]:
        text = " ".join(f"{1e3 * row[k]:9.1f}" for k in labels)
        print(f"{row['day']:>3} {text} {row['xs']:6.0f} {row['near']:5.1f} {row['nb']:3.0f} "
              f"{row['nf']:4.0f} {row['reh']:6.0f} {row['trades']:6.0f}")  # fmt: skip
    full = report["days"]
    if len(full) > 2:
        median = statistics.median(r["total"] for r in full[1:])
        over_median = sorted(full[1:], key=lambda r: r["total"] - median, reverse=True)
        extra = sum(max(r["total"] - median, 0.0) for r in full[1:])
        top = ", ".join(f"day {r['day']} +{1e3 * (r['total'] - median):.0f}"
                        for r in over_median[:5] if r["total"] > median)  # fmt: skip
        print(f"day 1 {1e3 * full[0]['total']:.0f} ms; median later day {1e3 * median:.0f} ms "
              f"({median / full[0]['total']:.2f}x day 1); {1e3 * extra:.0f} ms over the "
              f"median on later days, most on: {top}")  # fmt: skip
    if (att := attribution(full)) is not None:
        report["attribution"] = att
        ms, us, r2 = att["kernel"]
        e = att["exponents"]
        print(f"kernel on calm days: {ms:.1f} ms/day + {us:.2f} us per rehedge (r2 {r2:.2f}); "
              f"exponent of the first {', '.join(map(str, att['lengths']))} days' CPU: "
              f"{e['measured']:.3f} measured, {e['rehedges']:.3f} at day 1's rehedges, "
              f"{e['expiries']:.3f} also without the days near an expiry")  # fmt: skip
    if args.versus_one_day:
        one = per_day(1.0, args.repeat, args.seed, over)
        report["one_day"] = one
        report["excess"] = print_excess(one["days"][0], full)
    cases.save_report(args.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
