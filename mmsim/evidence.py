"""The numbers the README quotes, recomputed: ``python -m mmsim.evidence``.

- the hero figure's caption: realized vol above and below the gamma flip in
  ``flip_crossing.yaml`` at its own seed;
- "below the flip ~1.5-2x above": that ratio over several seeds;
- pinning: the share of seeds whose close lands within $0.10 of the strike with the
  dealers long the straddle, with no dealers and with them short (and the distribution
  of the distance from the strike, which ``pinning.yaml``'s header shows);
- ``vol_regime_shift.yaml``: on how many seeds the put wall breaks, how many first
  breaks the counterfactual replay puts on the vol shift, and whether the control (no
  shift) breaks.

``tests/test_readme_numbers.py`` checks that the README states these within the ranges
it gives. Runs are serial and deterministic (fixed seeds).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from mmsim.engine import run
from mmsim.errors import InstabilityError

__all__ = ["flip_ratios", "hero", "pin_distances", "pinned_share", "vol_regime_breaks"]

FLIP = "scenarios/flip_crossing.yaml"
PINNING = "scenarios/pinning.yaml"
VOL_REGIME = "scenarios/vol_regime_shift.yaml"
PIN_WIDTH = 0.10  # $: "pinned" = the close within this of the strike
SHORT = {"dealers.0.positions.0.qty": -5000, "dealers.0.positions.1.qty": -5000}


def hero(path: str = FLIP) -> tuple[float, float]:
    """``(vol above the flip, vol below)``, annualized, of the scenario at its seed."""
    m = run(path).metrics
    return m["realized_vol_above_flip"], m["realized_vol_below_flip"]


def flip_ratios(seeds: Sequence[int], path: str = FLIP) -> np.ndarray:
    """Realized vol below the flip over vol above it, one per seed (NaN: a regime unseen)."""
    out = []
    for seed in seeds:
        m = run(path, seed=seed).metrics
        above, below = m["realized_vol_above_flip"], m["realized_vol_below_flip"]
        out.append(below / above if above > 0 and below > 0 else np.nan)
    return np.array(out)


def pin_distances(seeds: Sequence[int], overrides=None, path: str = PINNING) -> np.ndarray:
    """Close minus 100 ($) per seed; NaN when the hedging diverged (no pin)."""
    out = []
    for seed in seeds:
        try:
            close = run(path, seed=seed, overrides=overrides).series["price"].iloc[-1]
        except InstabilityError:
            close = np.nan
        out.append(close - 100.0)
    return np.array(out)


def pinned_share(distances: np.ndarray, width: float = PIN_WIDTH) -> float:
    """Share of runs whose |close - strike| < ``width`` (a diverged run did not pin)."""
    return float(np.mean(np.abs(np.nan_to_num(distances, nan=np.inf)) < width))


def vol_regime_breaks(seeds: Sequence[int], path: str = VOL_REGIME) -> list[dict]:
    """Per seed: ``broke`` (a put wall break in the run), ``cause`` (the counterfactual
    primary cause of the first one, "" if none), ``control_broke`` (a break with the vol
    shift removed, ``events=[]``) and ``control_low`` ($, the control's lowest price)."""
    from mmsim.explain import explain  # the replay machinery; only this check needs it

    out = []
    for seed in seeds:
        result = run(path, seed=seed)
        hits = np.flatnonzero((result.episodes["kind"] == "put_wall_break").to_numpy())
        cause = ""
        if hits.size:
            i = int(hits[0])
            why = explain(result, executor="serial", only=[i])
            cause = str(why.episodes.iloc[i]["primary_cause"])
        control = run(path, seed=seed, overrides={"events": []})
        out.append(
            {
                "broke": bool(hits.size),
                "cause": cause,
                "control_broke": bool((control.episodes["kind"] == "put_wall_break").any()),
                "control_low": float(control.series["price"].min()),
            }
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmsim.evidence", description=__doc__)
    parser.add_argument("--flip-seeds", type=int, default=8, help="seeds for the ratio")
    parser.add_argument("--pin-seeds", type=int, default=24, help="seeds per pinning arm")
    parser.add_argument("--vol-seeds", type=int, default=20, help="seeds for vol_regime_shift")
    args = parser.parse_args(argv)
    above, below = hero()
    print(f"hero: flip_crossing at its seed: vol above the flip {above:.1%}, below {below:.1%}")
    r = flip_ratios(range(args.flip_seeds))
    print(
        f"flip_crossing, seeds 0-{args.flip_seeds - 1}: below/above ratio "
        f"min {np.nanmin(r):.2f}, median {np.nanmedian(r):.2f}, max {np.nanmax(r):.2f}"
    )
    seeds = range(args.pin_seeds)
    arms = {"long": None, "no dealers": {"dealers": []}, "short": SHORT}
    for name, overrides in arms.items():
        d = pin_distances(seeds, overrides)
        q = np.nanpercentile(np.abs(d), [25, 50, 75]) if np.isfinite(d).any() else [np.nan] * 3
        print(
            f"pinning, {name}, seeds 0-{args.pin_seeds - 1}: within ${PIN_WIDTH:.2f} of the "
            f"strike {pinned_share(d):.0%}; |close - strike| quartiles ${q[0]:.2f} / "
            f"${q[1]:.2f} / ${q[2]:.2f}; diverged {int(np.isnan(d).sum())}"
        )
    rows = vol_regime_breaks(range(args.vol_seeds))
    broke = sum(r["broke"] for r in rows)
    by_shift = sum(r["cause"] == "vol_regime_shift" for r in rows)
    lows = [r["control_low"] for r in rows]
    print(
        f"vol_regime_shift, seeds 0-{args.vol_seeds - 1}: put wall breaks on {broke} of "
        f"{len(rows)}; first break caused by the vol shift (replay) on {by_shift} of {broke}; "
        f"control (no shift) breaks on {sum(r['control_broke'] for r in rows)}, "
        f"lows ${min(lows):.2f}-${max(lows):.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
