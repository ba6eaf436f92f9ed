"""Liquidity dry-outs of the order book as episodes, with their evidence.

A dry-out is the moment one side of the book empties (or the spread passes
``market.book.max_spread``). Buis et al. (2024) count a path with one as *failed*.
Evidence, over the window ``[t - lookback, t]`` (``record.episodes.lookback`` s):

- ``depth_before``: shares resting within 10 ticks of that side's best quote at the
  window's start (series column ``depth_<side>_10``), and ``depth_min_before`` its
  smallest sampled value in the window;
- ``dealer_flow``: shares the dealers' orders took from that side (sells take bids,
  buys take asks);
- ``exo_flow``: shares every other order took from it (customers, noise, pensions and
  the book's own market and marketable limit orders);
- ``flow_ratio``: ``dealer_flow / exo_flow`` (> 1: the hedges drained it);
- ``spread_before``: the spread ($) at the last sample before the dry-out.

``primary_cause`` is ``dealer_hedging`` when the dealers took more than everyone else,
``outside_flow`` otherwise.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mmsim.lob import BookMarket

__all__ = ["DRY_OUT_COLUMNS", "DryOutLog", "dry_out_episodes", "with_dry_outs"]

DRY_OUT_COLUMNS = [
    "start",
    "end",
    "kind",
    "view",
    "level",
    "direction",
    "exo_flow",
    "dealer_flow",
    "flow_ratio",
    "depth_before",
    "depth_min_before",
    "spread_before",
    "primary_cause",
    "causes",
]


class DryOutLog:
    """Collects dry-outs from :attr:`~mmsim.lob.BookMarket.dry_listeners`:
    ``(t, side, why, mid, cumulative shares taken from that side)``."""

    def __init__(self, market: BookMarket) -> None:
        self.market = market
        self.rows: list[tuple[float, int, str, float, float]] = []

    def __call__(self, t: float, side: int, why: str) -> None:
        side = max(side, 0)
        self.rows.append((t, side, why, self.market.mid, float(self.market.side_flow[side])))


def dry_out_episodes(
    log: DryOutLog, series: pd.DataFrame, trades: pd.DataFrame, lookback: float
) -> pd.DataFrame:
    """One ``liquidity_dry_out`` row per recorded dry-out (columns
    :data:`DRY_OUT_COLUMNS`), evidence measured as the module docstring says."""
    rows = []
    # columns read once as arrays (pandas per dry-out was most of a dry book's run)
    n = len(series)
    t_s = series["t"].to_numpy() if n else np.zeros(0)
    spread = series["spread"].to_numpy() if n else np.zeros(0)
    cols = {
        name: (
            (series[f"depth_{name}_10"].to_numpy(), series[f"taken_{name}"].to_numpy())
            if n
            else (np.zeros(0), np.zeros(0))
        )
        for name in ("bid", "ask")
    }
    if len(trades):
        is_dealer = (trades["kind"] == "dealer").to_numpy()
        t_tr, q_tr = trades["t"].to_numpy(), trades["qty"].to_numpy()
        in_order = bool(np.all(t_tr[1:] >= t_tr[:-1]))  # the log is by time: slices
    for t, side, why, mid, taken_total in log.rows:
        name = "bid" if side == 0 else "ask"
        depth, taken = cols[name]
        t0 = t - lookback
        # samples in [t0, t) and before t: slices of the sorted clock
        lo, hi = np.searchsorted(t_s, t0, "left"), np.searchsorted(t_s, t, "left")
        first = int(lo) if lo < hi else None
        depth_before = float(depth[first]) if first is not None else math.nan
        depth_min = float(np.min(depth[lo:hi])) if first is not None else math.nan
        taken_before = float(taken[first]) if first is not None else 0.0
        spread_before = float(spread[hi - 1]) if hi > 0 else math.nan
        dealer = 0.0
        if len(trades):
            if in_order:
                a, b = np.searchsorted(t_tr, t0, "left"), np.searchsorted(t_tr, t, "right")
                q = q_tr[a:b][is_dealer[a:b]]
            else:
                q = q_tr[is_dealer & (t_tr >= t0) & (t_tr <= t)]
            dealer = float(-q[q < 0].sum() if side == 0 else q[q > 0].sum())
        exo = max(taken_total - taken_before - dealer, 0.0)
        ratio = dealer / exo if exo > 0 else (math.inf if dealer > 0 else 0.0)
        cause = "dealer_hedging" if dealer > exo else "outside_flow"
        rows.append(
            {
                "start": t,
                "end": t,
                "kind": "liquidity_dry_out",
                "view": "book",
                "level": mid,
                "direction": -1.0 if side == 0 else 1.0,
                "exo_flow": exo,
                "dealer_flow": dealer,
                "flow_ratio": ratio,
                "depth_before": depth_before,
                "depth_min_before": depth_min,
                "spread_before": spread_before,
                "primary_cause": cause,
                "causes": f"{cause}; {why}",
            }
        )
    return pd.DataFrame(rows, columns=DRY_OUT_COLUMNS)


def with_dry_outs(episodes: pd.DataFrame, dry: pd.DataFrame) -> pd.DataFrame:
    """``episodes`` (wall breaks, flip crossings) followed by the dry-out rows ``dry``,
    with the union of their columns (a column one of them lacks reads NaN there).

    Empty frames and all-NaN columns are left out of the concatenation itself (pandas
    would otherwise warn that such entries will soon take part in the result's dtypes),
    then the columns are restored in order."""
    if not len(dry):
        return episodes
    cols = list(episodes.columns) + [c for c in dry.columns if c not in episodes.columns]
    parts = [f.dropna(axis=1, how="all") for f in (episodes, dry) if len(f)]
    return pd.concat(parts, ignore_index=True).reindex(columns=cols)
