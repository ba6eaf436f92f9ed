"""Where a customer option trade's CPU goes (issue 11, target 2 on the real chain).

    python -m benchmarks.trade_parts [--mmsim DIR] [--repeat 3] [--cases one_line,chain]

Runs the cases of :func:`benchmarks.cases.chain_scenarios` (the SPX chain day and its
1-line control ``one_line``: the same market, ~1,400 customer option trades a day and
the pension) with the pieces a trade sets off wrapped in CPU timers (``process_time``),
each part **exclusive** of the wrapped parts it calls, so the parts and "the rest" add
up to the day. Printed per part: s/day and microseconds per customer trade (the day's
option trades), for the least of ``--repeat`` runs (after a warm-up run). The timers
cost about a microsecond per wrapped call, charged to the caller's part.

``one_line_no_customers`` (the same market without customers) is the day's floor: the
difference to ``one_line`` is what the trades cost.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks import cases

_PARTS = (  # (module, object, attribute, label)
    ("mmsim.agents.customers", "CustomerFlow", "_draw", "customer draw (strike, size, premium)"),
    ("mmsim.agents.customers", "CustomerFlow", "execute", "customer execute (ledger, log, notify)"),
    ("mmsim.book", "OptionBook", "add", "book.add bookkeeping"),
    ("mmsim.book", None, "fold_booked", "delta-table fold at booking"),
    ("mmsim.book", "OptionBook", "_hot_lines", "hot/live line tables"),
    ("mmsim.book", "OptionBook", "_live_lines", "hot/live line tables"),
    ("mmsim.hotloop", "HotLoop", "_load", "kernel reload (HotLoop._load)"),
    ("mmsim.hotloop", "HotLoop", "_store", "kernel store (HotLoop._store)"),
    ("mmsim.hotloop", "HotLoop", "_sync", "table builds at NEED_TABLE (HotLoop._sync)"),
    ("mmsim.hotloop", "HotLoop", "_replay", "sample replay glue (HotLoop._replay)"),
    ("mmsim.fastpath", None, "advance", "kernel (fastpath.advance)"),
    ("mmsim.sampler", "Sampler", "fill", "sampler fill glue + fill_rows"),
    ("mmsim.book", "OptionBook", "series_greeks_many", "series greeks (series_greeks_many)"),
    ("mmsim.sampler", "Sampler", "update_levels", "levels (flips, walls)"),
    ("mmsim.engine", None, "assemble_result", "result tables"),
)  # fmt: skip


def _install(spent: dict[str, float]) -> list[tuple]:
    """Wrap every part in an exclusive CPU timer; returns what to restore."""
    stack = [0.0]  # per open wrapped call: CPU of the wrapped calls inside it
    saved = []
    for mod_name, cls_name, attr, label in _PARTS:
        if (found := cases.part_of(mod_name, cls_name, attr)) is None:
            continue
        owner, f = found

        def timed(*a, _f=f, _label=label, **k):
            stack.append(0.0)
            t0 = time.process_time()
            try:
                return _f(*a, **k)
            finally:
                took = time.process_time() - t0
                inner = stack.pop()
                spent[_label] = spent.get(_label, 0.0) + took - inner
                stack[-1] += took

        saved.append((owner, attr, f))
        setattr(owner, attr, timed)
    return saved


def trade_parts(name: str, repeat: int) -> dict:
    """CPU by part of one day of chain case ``name`` (least total of ``repeat`` runs)."""
    from mmsim.scenario import load_scenario

    sc = load_scenario(cases.chain_scenarios()[name])
    spent: dict[str, float] = {}
    with cases.restoring(_install(spent)):
        total, sim, parts = cases.least_of_runs(sc, repeat, spent)
    trades = sim.journal.option_log.n  # type: ignore[attr-defined]
    return {"case": name, "total": total, "trades": trades, "parts": parts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trade_parts", description=__doc__)
    parser.add_argument("--mmsim", type=Path, help="measure the mmsim package in this directory")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cases", default="one_line,chain")
    args = parser.parse_args(argv)
    if args.mmsim is not None:
        sys.path.insert(0, str(args.mmsim.resolve()))
    for name in args.cases.split(","):
        row = trade_parts(name, args.repeat)
        total, n = row["total"], max(row["trades"], 1)
        print(f"{name}: {total:.3f} s/day, {row['trades']:,} customer trades "
              f"({1e6 * total / n:.0f} us per trade, all included)")  # fmt: skip
        parts = sorted(row["parts"].items(), key=lambda kv: -kv[1])
        parts.append(
            ("the rest (simpy, processes, pension, ...)", total - sum(row["parts"].values()))
        )
        for label, s in parts:
            print(f"  {label:<44} {s:7.3f} s/day {1e6 * s / n:7.1f} us/trade")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
