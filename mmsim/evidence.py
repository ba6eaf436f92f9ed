"""The numbers the README quotes, recomputed: ``python -m mmsim.evidence``.

- the hero figure's caption: realized vol above and below the gamma flip in
  ``flip_crossing.yaml`` at its own seed;
- "below the flip ~1.5-2x above": that ratio over several seeds;
- pinning: the share of seeds whose close lands within $0.10 of the strike with the
  dealers long the straddle, with no dealers and with them short (and the distribution
  of the distance from the strike, which ``pinning.yaml``'s header shows).

``tests/test_readme_numbers.py`` checks that the README states these within the ranges
it gives. Runs are serial and deterministic (fixed seeds).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from mmsim.engine import run
from mmsim.errors import InstabilityError

__all__ = ["flip_ratios", "hero", "pin_distances", "pinned_share"]

FLIP = "scenarios/flip_crossing.yaml"
PINNING = "scenarios/pinning.yaml"
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmsim.evidence", description=__doc__)
    parser.add_argument("--flip-seeds", type=int, default=8, help="seeds for the ratio")
    parser.add_argument("--pin-seeds", type=int, default=24, help="seeds per pinning arm")
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
