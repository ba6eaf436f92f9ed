"""Dry-out episodes' evidence (:func:`mmsim.dryout.dry_out_episodes`) against a direct
reading of its definition: per dry-out, boolean masks over the whole series and trade
log (the windows the module docstring states), on a run with hundreds of dry-outs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mmsim.dryout import dry_out_episodes
from mmsim.engine import Simulation
from mmsim.scenario import load_scenario

# Buis et al.'s thin book, one 10-hour session, an instant band-0 short-put desk and
# noise orders: it empties a side hundreds of times
THIN_BAND0 = {
    "clock": {"days": 1, "session_seconds": 36000, "year_days": 1},
    "market": {
        "S0": 5.0,
        "model": "book",
        "book": {
            "preset": "buis2024",
            "rate": 0.0444,
            "informed_market": False,
            "on_dry_out": "continue",
        },
    },
    "vol": {"atm": 0.089},
    "news": {"vol": 0.00632, "dt": 3600.0},
    "noise": {"rate": 0.01, "mean_size": 3},
    "dealers": [
        {
            "name": "desk",
            "trigger": "price",
            "band": 0,
            "positions": [
                {"type": "put", "strike": 4.95, "expiry_days": 2, "qty": -100, "multiplier": 1}
            ],
        }
    ],
    "record": {"every": 300.0, "levels_every": 3600.0},
}


def _reference(log, series, trades, lookback):
    """The evidence by masks, dry-out by dry-out (the definition, no slicing)."""
    out = []
    t_s = series["t"].to_numpy()
    for t, side, _why, _mid, taken_total in log.rows:
        name = "bid" if side == 0 else "ask"
        w = (t_s >= t - lookback) & (t_s < t)
        depth = series[f"depth_{name}_10"].to_numpy()
        taken = series[f"taken_{name}"].to_numpy()
        first = int(np.argmax(w)) if w.any() else None
        sel = (trades["kind"] == "dealer") & (trades["t"] >= t - lookback) & (trades["t"] <= t)
        q = trades.loc[sel, "qty"].to_numpy()
        dealer = float(-q[q < 0].sum() if side == 0 else q[q > 0].sum())
        before = series["spread"].to_numpy()[t_s < t]
        out.append(
            {
                "depth_before": float(depth[first]) if first is not None else math.nan,
                "depth_min_before": float(depth[w].min()) if w.any() else math.nan,
                "dealer_flow": dealer,
                "exo_flow": max(
                    taken_total - (float(taken[first]) if first is not None else 0.0) - dealer, 0.0
                ),
                "spread_before": float(before[-1]) if before.size else math.nan,
            }
        )
    return pd.DataFrame(out)


@pytest.mark.parametrize("lookback", [1800.0, 300.0, 0.0])
def test_dry_out_evidence_matches_its_definition(lookback):
    """An instant band-0 desk on Buis et al.'s thin book (one 10-hour session, seed 0,
    300+ dry-outs): depth at the window's start and its minimum, the dealers' and the
    others' flow from the dried side, and the spread before, exactly as the masks give
    them; a window of 0 s holds no sample (NaN depths)."""
    sim = Simulation(load_scenario(THIN_BAND0), 0)
    result = sim.run()
    assert len(sim.dry_outs.rows) > 300, "hundreds of dry-outs: a real test"
    series = sim.recorder.to_frame()
    got = dry_out_episodes(sim.dry_outs, series, result.trades, lookback)
    want = _reference(sim.dry_outs, series, result.trades, lookback)
    pd.testing.assert_frame_equal(
        got[list(want.columns)].reset_index(drop=True), want, check_exact=True
    )
    assert (got["dealer_flow"] > 0).any() and (got["exo_flow"] > 0).any()
