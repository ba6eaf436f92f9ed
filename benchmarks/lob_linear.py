"""The linear limit of the order book, measured (issue 13, item 2; not a CI test).

    python -m benchmarks.lob_linear [--seeds 3] [--hours 2]

1. ``lam_eff`` from the book (zi_spx preset, no dealers): the permanent mid move per
   share of a market order of 300 / 1,000 / 3,000 shares, by common random numbers
   (the same flow replayed with and without the probe order, 200 probes), 1 s to 300 s
   after it.
2. A scheduled dealer (every 10 s, zero band) of share gamma ``G = kappa / lam_eff``
   trading in that book, against the same seeds without it: realized vol ratio at 10 s,
   60 s and 300 s, next to ``1 / (1 + kappa)`` (the long-horizon theory of DESIGN).
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import simpy

import mmsim
from mmsim.agents.liquidity import LiquidityFlow
from mmsim.ledger import Ledger
from mmsim.lob import BookMarket, take
from mmsim.metrics import realized_vol
from mmsim.schema import BOOK_PRESETS

P = BOOK_PRESETS["zi_spx"]
GAMMA_PER_CALL = 14.16  # shares per $1: a 100-multiplier call, K = S = 100, 20 days, 20% vol


def _book(seed: int) -> tuple[BookMarket, LiquidityFlow]:
    m = BookMarket(
        simpy.Environment(), 100.0, Ledger(), tick=P["tick"], cancel_rate=P["cancel_rate"],
        init_levels=P["init_levels"], init_volume=P["init_volume"],
        init_spread_ticks=P["init_spread_ticks"], on_dry_out="continue",
    )  # fmt: skip
    f = LiquidityFlow(
        m, np.random.default_rng(seed), rate=P["rate"], p_market=P["p_market"], p_informed=0.0,
        offset_mean=P["offset_mean"], offset_sd=P["offset_sd"], size_min=P["size_min"],
        size_max=P["size_max"], cancel_rate=P["cancel_rate"],
    )  # fmt: skip
    return m, f


def _clone(m: BookMarket, f: LiquidityFlow) -> tuple[BookMarket, LiquidityFlow]:
    m2 = copy.copy(m)
    m2.vol, m2.ist, m2.own, m2.side_flow = (
        m.vol.copy(),
        m.ist.copy(),
        m.own.copy(),
        m.side_flow.copy(),
    )
    f2 = copy.copy(f)
    f2.market, f2.rng = m2, copy.deepcopy(f.rng)
    f2._rnd, f2.stats, f2.par = f._rnd.copy(), f.stats.copy(), f.par.copy()
    return m2, f2


def lam_eff(horizons=(1.0, 10.0, 60.0, 300.0), probes: int = 200) -> dict[float, np.ndarray]:
    """Mid move per share ($/share) at each horizon after a market order, by size."""
    out = {}
    for q in (300.0, 1000.0, 3000.0):
        m, f = _book(1)
        f.advance(60.0)
        resp = np.zeros(len(horizons))
        for k in range(probes):
            f.advance(60.0 + 30.0 * (k + 1))
            t = f.t_last
            (am, af), (bm, bf) = _clone(m, f), _clone(m, f)
            buy = k % 2 == 0
            take(bm.vol, bm.ist, buy, q, bm.n if buy else -1, bm.own)
            for i, h in enumerate(horizons):
                af.advance(t + h)
                bf.advance(t + h)
                resp[i] += (1 if buy else -1) * (bm.mid - am.mid)
        out[q] = resp / probes / q
    return out


def feedback(lam: float, kappa: float, seeds: int, hours: float) -> np.ndarray:
    """Vol ratio (dealer / none, same seeds) at 10 s, 60 s and 300 s for ``lam * G = kappa``."""

    def sc(qty: float) -> dict:
        d = {
            "name": "linear_limit",
            "clock": {"days": hours * 3600 / 23400},
            "market": {
                "S0": 100,
                "model": "book",
                "book": {"preset": "zi_spx", "on_dry_out": "continue"},
            },
            "news": None,
            "record": {"every": 10.0, "levels_every": 1e5},
            "vol": {"atm": 0.2},
        }
        if qty:
            pos = [{"type": "call", "strike": 100, "expiry_days": 20, "qty": qty}]
            d["dealers"] = [{"band": 0, "trigger": "schedule", "interval": 10.0, "positions": pos}]
        return d

    qty = kappa / lam / GAMMA_PER_CALL
    ratios = []
    for seed in range(seeds):
        a = mmsim.run(sc(0.0), seed=seed).series["price"].to_numpy()
        b = mmsim.run(sc(qty), seed=seed).series["price"].to_numpy()
        ratios.append([realized_vol(b, 10, 1, k) / realized_vol(a, 10, 1, k) for k in (1, 6, 30)])
    return np.array(ratios)


def main(argv: list[str] | None = None) -> None:
    """Print lam_eff by size and horizon, then the feedback ratios against theory."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--hours", type=float, default=2.0)
    args = ap.parse_args(argv)
    lams = lam_eff()
    for q, v in lams.items():
        print(f"lam_eff, {q:6.0f} shares, at 1/10/60/300 s: " + " ".join(f"{x:.2e}" for x in v))
    lam = float(np.mean([v[-1] for v in lams.values()]))
    print(f"lam_eff used: {lam:.2e} $/share (mean over sizes at 300 s)")
    for kappa in (0.5, -0.3):
        r = feedback(lam, kappa, args.seeds, args.hours)
        m, s = r.mean(axis=0), r.std(axis=0, ddof=1) if len(r) > 1 else np.zeros(3)
        print(
            f"lam*G = {kappa:+.1f}: vol ratio at 10/60/300 s "
            + " ".join(f"{x:.3f}+-{e:.3f}" for x, e in zip(m, s, strict=True))
            + f"   theory 1/(1+lam*G) = {1 / (1 + kappa):.3f}"
        )


if __name__ == "__main__":
    main()
