"""What ``engine.levels_hold: all`` (walls held with the flips) changes, over many seeds.

    python -m benchmarks.levels_hold [--seeds 30] [--json PATH]

Each case runs every seed twice, ``levels_hold: all`` and ``off`` (every level recomputed
at every levels sample), on parameters no shipped scenario uses. The levels are recorded
only, so both runs must trade alike: the trade tables and every non-level series column
must be equal bit for bit. The ``off`` run's level columns are then the full computation
at the very states where ``all`` held or recomputed, and the report compares them:

- flips: largest ``|held - full| / spot``, and NaN where the other is not;
- walls: share of samples where the held wall is the full one, and the largest
  distance between the two as a fraction of spot;
- GEX at the visible walls: largest gap where the wall is the same strike, as a fraction
  of the column's largest ``|value|`` in the run (the profile there may cross zero);
- wall metrics (``time_beyond_*``) and episodes (kind, start, end) between the two runs.

``--shipped`` runs the shipped scenarios instead (their first day, tabulated: the
hold applies to tabulated books only). ``held`` / ``vetoed``: levels samples that held
the flips, and those the hold's check of the held flips against the profile's signs
(:meth:`mmsim.levels.LevelsHold.certified`) sent to a recomputation. ``--held flips``
compares the flips-only hold with ``off`` instead.

Measured 2026-11-27, ``--held flips``, 30 seeds, largest ``|held - full| / spot``
(before the check / with it; the check guarantees one step of the flip grid, 0.0025):
``multi_dealer_bands*`` 0.248 (seed 1: a customer trade under 1% of the book opened a
crossing near spot while the far flip was held) / 0.0022 (400 levels samples held, 242
vetoed); ``book400*`` 2.2e-4 / 2.1e-4 (1,719 held, 81 vetoed). ``--shipped``:
``vol_regime_shift`` 0.011 / 0.00245 (740 held, 1,215 vetoed), ``multi_dealer_bands``
0.018 / 0.0013, ``spx_2022-02-07`` 1.4e-4 / 1.3e-4, ``flip_crossing`` 5.8e-5 / 5.8e-5,
the other seven 0 / 0. Trades and non-level columns equal bit for bit everywhere.
Episodes that differ from ``off``, each a flip crossing starting or ending a sample
(10 s) apart as the held flip sits within a step of the full one: ``multi_dealer_bands*``
3 of 38 / 2 of 37; ``vol_regime_shift`` 6 / 10 of 62; ``spx_2022-02-07`` 0 / 4 of 98.

Measured 2026-11-27 (big4: walls from proven boxes, flips held 1% / 2 h, GEX at the
walls held 30 min and 2% of the time to expiry), ``all`` vs ``off``, 30 seeds: walls
equal at every sample (share 1.0, gap 0), trades and non-level columns bit for bit;
flips ``multi_dealer_bands*`` 0.0022, ``book400*`` 8.5e-4 (was 2.1e-4 with 0.25% /
30 min); GEX at the walls 0.0014 / 0.0020. ``--shipped``: walls equal everywhere; GEX at
the walls ``pinning`` 0.59 -> 0, ``opex_melt`` 0.065 -> 0.0087 (the 2% rule),
``vol_regime_shift`` 0.017 (unchanged), the rest <= 0.005.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks import cases

LEVELS = ["flip_true", "flip_visible", "call_wall", "put_wall", "call_wall_visible",
          "put_wall_visible", "call_wall_gex_true", "call_wall_gex_visible",
          "put_wall_gex_true", "put_wall_gex_visible", "call_wall_strike_gex",
          "put_wall_strike_gex"]  # fmt: skip


def _cases() -> dict[str, tuple]:
    """name -> (scenario path or dict, overrides): parameters not shipped."""
    multi = (
        cases.SCENARIOS / "multi_dealer_bands.yaml",
        {
            "clock.days": 1.0,
            "market.impact.adv": 2.0e7,
            "vol.atm": 0.22,
            "vol.skew": -0.15,
            "record.levels_every": 300.0,
            "engine.delta_table": "on",
        },
    )
    book = cases.book_scenario(400, 50.0, 1.0, seed=5)
    book["vol"] = {"atm": 0.25, "skew": -0.2}
    book["news"] = {"vol": 0.22, "dt": 1.0}
    return {"multi_dealer_bands*": multi, "book400*": (book, {})}


SHIPPED = ("flip_crossing", "multi_dealer_bands", "opex_melt", "otc_offset",
           "pension_overwhelm", "pinning", "spx_2022-02-07", "vol_regime_shift", "vol_shock",
           "long_gamma", "short_gamma")  # fmt: skip
"""Shipped scenarios whose levels samples (``record.levels_every`` < 30 min) can hold."""


def _shipped_cases() -> dict[str, tuple]:
    """name -> (scenario path, overrides): each shipped scenario of :data:`SHIPPED`,
    its first day, forced to the tabulated path (the hold applies to tabulated books)."""
    return {
        name: (cases.SCENARIOS / f"{name}.yaml", {"engine.delta_table": "on", "clock.days": 1.0})
        for name in SHIPPED
    }


def compare(scenario, overrides: dict, seed: int, held: str = "all") -> dict:
    """One seed: the two runs and what differs (module docstring)."""
    from mmsim.engine import Simulation
    from mmsim.scenario import load_scenario

    runs = {}
    for hold in (held, "off"):
        sc = load_scenario(scenario, overrides={**overrides, "engine.levels_hold": hold})
        sim = Simulation(sc, seed)
        runs[hold] = (sim, sim.run())
    (sim, a), (_, b) = runs[held], runs["off"]
    lh = sim.sampler.levels_hold
    same_trades = a.trades.equals(b.trades) and a.option_trades.equals(b.option_trades)
    other = [c for c in a.series.columns if c not in LEVELS and c != "regime"]
    same_state = a.series[other].equals(b.series[other])
    sa, sb = a.series, b.series
    spot = sa["mid"].to_numpy()
    out: dict = {"seed": seed, "same_trades": bool(same_trades), "same_state": bool(same_state),
                 "held": lh.held, "vetoed": getattr(lh, "uncertified", 0)}  # fmt: skip
    flips = []
    for c in ("flip_true", "flip_visible"):
        x, y = sa[c].to_numpy(), sb[c].to_numpy()
        out[f"{c}_nan_mismatch"] = int((np.isnan(x) != np.isnan(y)).sum())
        both = ~np.isnan(x) & ~np.isnan(y)
        flips.append(float((np.abs(x - y)[both] / spot[both]).max()) if both.any() else 0.0)
    out["flip_gap_max"] = max(flips)
    equal, dist = {}, []
    for c in ("call_wall", "put_wall", "call_wall_visible", "put_wall_visible"):
        x, y = sa[c].to_numpy(), sb[c].to_numpy()
        same = (x == y) | (np.isnan(x) & np.isnan(y))
        equal[c] = (int(same.sum()), int(same.size))
        both = ~np.isnan(x) & ~np.isnan(y)
        dist.append(float((np.abs(x - y)[both] / spot[both]).max()) if both.any() else 0.0)
    out["walls_equal"] = equal
    out["wall_gap_max"] = max(dist)
    gaps = []
    for c in ("call_wall_gex_true", "call_wall_gex_visible", "put_wall_gex_true",
              "put_wall_gex_visible"):  # fmt: skip
        wall = "call_wall_visible" if c.startswith("call") else "put_wall_visible"
        same = sa[wall].to_numpy() == sb[wall].to_numpy()
        x, y = sa[c].to_numpy()[same], sb[c].to_numpy()[same]
        ok = np.isfinite(x) & np.isfinite(y)
        scale = np.nanmax(np.abs(sb[c].to_numpy())) if ok.any() else 0.0
        gaps.append(float(np.abs(x - y)[ok].max() / scale) if ok.any() and scale > 0 else 0.0)
    out["wall_gex_gap_max"] = max(gaps)
    out["wall_metrics_gap"] = max(
        abs(a.metrics[k] - b.metrics[k]) for k in a.metrics if k.startswith("time_beyond_")
    )
    out["episodes"] = episode_diff(a, b)
    return out


def episode_diff(a, b) -> tuple[int, int, int]:
    """Episodes of runs ``a`` and ``b`` by (kind, start, end): how many each has, and how
    many are in one only."""
    key = ["kind", "start", "end"]
    ea = set(map(tuple, a.episodes[key].to_numpy().tolist())) if len(a.episodes) else set()
    eb = set(map(tuple, b.episodes[key].to_numpy().tolist())) if len(b.episodes) else set()
    return len(ea), len(eb), len(ea ^ eb)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.levels_hold", description=__doc__)
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--held", default="all", help="the levels_hold compared with off")
    parser.add_argument(
        "--shipped", action="store_true", help="the shipped scenarios (first day, tabulated)"
    )
    args = parser.parse_args(argv)
    report = {}
    for name, (scenario, over) in (_shipped_cases() if args.shipped else _cases()).items():
        t0 = time.process_time()
        rows = [compare(scenario, over, seed, args.held) for seed in range(1, args.seeds + 1)]
        walls = {
            c: sum(r["walls_equal"][c][0] for r in rows) / sum(r["walls_equal"][c][1] for r in rows)
            for c in rows[0]["walls_equal"]
        }
        summary = {
            "seeds": len(rows),
            "same_trades": all(r["same_trades"] for r in rows),
            "same_state": all(r["same_state"] for r in rows),
            "flip_gap_max": max(r["flip_gap_max"] for r in rows),
            "held": sum(r["held"] for r in rows),
            "vetoed": sum(r["vetoed"] for r in rows),
            "flip_nan_mismatch": sum(
                r["flip_true_nan_mismatch"] + r["flip_visible_nan_mismatch"] for r in rows
            ),
            "walls_equal_share": walls,
            "wall_gap_max": max(r["wall_gap_max"] for r in rows),
            "wall_gex_gap_max": max(r["wall_gex_gap_max"] for r in rows),
            "wall_metrics_gap_max": max(r["wall_metrics_gap"] for r in rows),
            "episodes_all_off_differing": [sum(r["episodes"][k] for r in rows) for k in range(3)],
            "cpu": time.process_time() - t0,
        }
        report[name] = {"summary": summary, "rows": rows}
        print(name, json.dumps(summary, indent=1), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
