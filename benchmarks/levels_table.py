"""What ``engine.levels_hold: table`` (levels read from the profile table) changes, over
many seeds of books no shipped scenario holds.

    python -m benchmarks.levels_table [--seeds 30] [--json PATH]

Each case runs every seed twice, ``levels_hold: table`` (the default) and ``off`` (every
level computed exactly at every levels sample: the flips from the exact values at their
crossing, the GEX at the walls by pricing every line). The levels are recorded only, so
both runs must trade alike: the trades, and so the realized vol, the hedge volume and the
rehedge counts, and every non-level series column must be equal bit for bit. At every
levels sample the ``table`` run's levels are then compared with the exact ones at the
same instant, against the stated bounds:

- flips (both views): ``|table - exact| <= FLIP_TOL x 0.0025 x spot`` (1% of a step of
  the flip grid ``S * linspace(0.7, 1.3, 241)``), None where exact is None;
- walls: equal (they are exact in both);
- GEX at the visible walls (true and visible): where read from the table,
  ``|table - exact| <= eps x wall**2 x 0.01`` (``eps``: the profile table's validated
  bound, shares per $1, at that sample); elsewhere the ``all`` rules (held at most
  30 min, or priced within 1e-12 of the gross), counted apart as ``gex_other``.

Reported per case: the largest error over the bound (``flip_ratio_max``,
``gex_ratio_max``: <= 1 holds the bound), the largest errors as fractions of spot and of
the column's scale, how many samples read the GEX from the table, whether the trades and
the other columns were equal, and the mean realized vol (1-min returns).

Measured 2026-11-27 (band11), 30 seeds a case, 15,360 levels samples: trades and every
non-level column equal bit for bit in all 150 seed pairs (so realized vol, hedge volume
and rehedge counts agree exactly: the levels are recorded only); walls equal everywhere;
no None mismatch; episodes (kind, start, end) equal everywhere. Largest error over its
bound, flips / GEX: ``book3000_band50_skew-0.2`` 0.16 / 0.27 (flips 4.0e-6 x spot, GEX
2.0e-3 of the column's scale), ``book600_band0_2d_skew-0.05`` 0.25 / 0.34 (6.3e-6,
9.9e-3), ``book8000_band200_skew-0.3`` 0.20 / 0.25 (5.1e-6, 7.3e-4),
``book1000_band100_short_1.5d`` 0.23 / 0.25 (5.7e-6, 3.7e-4), ``multi_dealer_bands*``
0.12 / 0.11 (3.0e-6, 6.0e-5; the GEX from the table at 34 of 2,370 samples: under 256
lines the walls are not boxed). For comparison ``levels_hold: all`` (the 35cc485
default) against ``off``, seeds 1-5 (``benchmarks.levels_hold.compare``): flips 4.1e-4
/ 8.5e-4 x spot and GEX 9.8e-3 / 4.7e-2 of scale on ``book600*`` / ``book3000*``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks import cases
from benchmarks.levels_hold import episode_diff

LEVELS = ["flip_true", "flip_visible", "call_wall", "put_wall", "call_wall_visible",
          "put_wall_visible", "call_wall_gex_true", "call_wall_gex_visible",
          "put_wall_gex_true", "put_wall_gex_visible", "call_wall_strike_gex",
          "put_wall_strike_gex"]  # fmt: skip
STEP = 0.6 / 240.0  # the flip grid's step, a fraction of spot


def _book(n: int, band: float, days: float, seed: int, atm: float, skew: float,
          expiry: tuple[float, float], news: float) -> dict:  # fmt: skip
    """A synthetic book (:func:`benchmarks.cases.book_scenario`) with its expiries
    uniform in ``expiry`` (days) and its own surface and news vol."""
    sc = cases.book_scenario(n, band, days, seed=seed)
    rng = np.random.default_rng(seed + 1000)
    for p in sc["dealers"][0]["positions"]:
        p["expiry_days"] = float(rng.uniform(*expiry))
    sc["vol"] = {"atm": atm, "skew": skew}
    sc["news"] = {"vol": news, "dt": 1.0}
    return sc


def _cases() -> dict:
    """name -> function of the seed giving (scenario mapping or path, overrides)."""
    multi = cases.SCENARIOS / "multi_dealer_bands.yaml"
    multi_over = {"clock.days": 1.0, "market.impact.adv": 2.0e7, "vol.atm": 0.22,
                  "vol.skew": -0.15, "record.levels_every": 300.0,
                  "engine.delta_table": "on"}  # fmt: skip
    return {
        "book3000_band50_skew-0.2": lambda s: (
            _book(3_000, 50.0, 1.0, 100 + s, 0.25, -0.2, (3.0, 200.0), 0.22), {}),
        "book600_band0_2d_skew-0.05": lambda s: (
            _book(600, 0.0, 2.0, 200 + s, 0.18, -0.05, (4.0, 60.0), 0.15), {}),
        "book8000_band200_skew-0.3": lambda s: (
            _book(8_000, 200.0, 1.0, 300 + s, 0.30, -0.3, (5.0, 400.0), 0.25), {}),
        "book1000_band100_short_1.5d": lambda s: (
            _book(1_000, 100.0, 1.5, 400 + s, 0.22, -0.12, (0.6, 12.0), 0.20), {}),
        "multi_dealer_bands*": lambda s: (multi, multi_over),
    }  # fmt: skip


class _Probe:
    """Records at every levels sample: clock (s), spot ($), the levels, and the profile
    table's ``eps`` where the GEX at the walls was read from it (else None)."""

    def __init__(self, sim) -> None:
        self.rows: list[tuple] = []
        sampler = sim.sampler
        update = sampler.update_levels

        def probe(S: float, t: float) -> None:
            before = sampler.gex_table
            update(S, t)
            tab = sim.book._profile if sampler.gex_table > before else None
            eps = None if tab is None else tab.eps.copy()
            self.rows.append((float(t), float(S), sampler.levels.copy(), eps))

        sampler.update_levels = probe


def _realized_vol(series) -> float:
    """Annualized vol of 60 s log returns of the mid (the series' clock in s)."""
    t, mid = series["t"].to_numpy(), series["mid"].to_numpy()
    every = float(t[1] - t[0])
    k = max(1, round(60.0 / every))
    r = np.diff(np.log(mid[::k]))
    return float(r.std() * np.sqrt(252 * 6.5 * 60)) if r.size > 1 else float("nan")


def compare(scenario, overrides: dict, seed: int) -> dict:
    """One seed: the ``table`` and ``off`` runs and what differs (module docstring)."""
    from mmsim.book_kernels import GEX_PER_PCT
    from mmsim.engine import Simulation
    from mmsim.profile_table import FLIP_TOL
    from mmsim.scenario import load_scenario

    runs = {}
    for hold in ("table", "off"):
        sc = load_scenario(scenario, overrides={**overrides, "engine.levels_hold": hold})
        sim = Simulation(sc, seed)
        probe = _Probe(sim)
        runs[hold] = (sim, sim.run(), probe.rows)
    (sim, a, pa), (_, b, pb) = runs["table"], runs["off"]
    same_trades = a.trades.equals(b.trades) and a.option_trades.equals(b.option_trades)
    other = [c for c in a.series.columns if c not in LEVELS and c != "regime"]
    same_state = a.series[other].equals(b.series[other])
    out = {"seed": seed, "same_trades": bool(same_trades), "same_state": bool(same_state),
           "samples": len(pa), "same_samples": len(pa) == len(pb),
           "vol": _realized_vol(a.series)}  # fmt: skip
    flip_ratio = flip_gap = gex_ratio = gex_gap = 0.0
    nan_mismatch = walls_differ = gex_table = gex_other = 0
    scale = np.zeros(4)
    for _, _, lb, _ in pb:
        scale = np.maximum(scale, np.nan_to_num(np.abs(lb[6:10])))
    for (t, S, la, eps), (tb, _, lb, _) in zip(pa, pb, strict=False):
        if t != tb:
            out["same_samples"] = False
            break
        for v in (0, 1):  # flips
            x, y = la[v], lb[v]
            if np.isnan(x) != np.isnan(y):
                nan_mismatch += 1
            elif not np.isnan(x):
                flip_gap = max(flip_gap, abs(x - y) / S)
                flip_ratio = max(flip_ratio, abs(x - y) / (FLIP_TOL * STEP * S))
        same = (la[2:6] == lb[2:6]) | (np.isnan(la[2:6]) & np.isnan(lb[2:6]))
        walls_differ += int(not same.all())
        if eps is None:
            gex_other += 1
            continue
        gex_table += 1
        for k in range(4):  # call true, call visible, put true, put visible
            wall, x, y = lb[4 + k // 2], la[6 + k], lb[6 + k]
            if np.isnan(x) or np.isnan(y):
                nan_mismatch += int(np.isnan(x) != np.isnan(y))
                continue
            bound = eps[k % 2] * wall * wall * GEX_PER_PCT
            gex_ratio = max(gex_ratio, abs(x - y) / bound)
            gex_gap = max(gex_gap, abs(x - y) / scale[k] if scale[k] > 0 else 0.0)
    out.update(flip_ratio_max=flip_ratio, flip_gap_max=flip_gap, gex_ratio_max=gex_ratio,
               gex_gap_max=gex_gap, nan_mismatch=nan_mismatch, walls_differ=walls_differ,
               gex_table=gex_table, gex_other=gex_other)  # fmt: skip
    out["episodes"] = episode_diff(a, b)
    return out


_SUMMARY = {
    all: [(k, k) for k in ("same_trades", "same_state", "same_samples")],
    sum: [("levels_samples", "samples")]
    + [(k, k) for k in ("nan_mismatch", "walls_differ", "gex_table", "gex_other")],
    max: [(k, k) for k in ("flip_ratio_max", "flip_gap_max", "gex_ratio_max", "gex_gap_max")],
}
"""How a case's summary folds its seeds' rows: (summary key, row key) per fold."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.levels_table", description=__doc__)
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--cases", default="", help="comma-separated case names (default all)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    report = {}
    chosen = [c for c in args.cases.split(",") if c]
    for name, make in _cases().items():
        if chosen and name not in chosen:
            continue
        t0 = time.process_time()
        rows = [compare(*make(seed), seed) for seed in range(1, args.seeds + 1)]
        summary = {"seeds": len(rows)}
        for fold, keys in _SUMMARY.items():
            summary.update({out: fold(r[key] for r in rows) for out, key in keys})
        summary.update({
            "episodes_table_off_differing": [sum(r["episodes"][k] for r in rows) for k in range(3)],
            "realized_vol_mean": float(np.nanmean([r["vol"] for r in rows])),
            "cpu": time.process_time() - t0,
        })  # fmt: skip
        report[name] = {"summary": summary, "rows": rows}
        print(name, json.dumps(summary), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
