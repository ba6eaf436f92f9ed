"""Summary statistics of a run: realized vol, autocorrelation, drawdown, dealer totals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mmsim.episodes import CAUSES

__all__ = [
    "BOOKING_KINDS",
    "autocorrelation",
    "episode_counts",
    "flow_split",
    "log_returns",
    "max_drawdown",
    "realized_vol",
    "regime_metrics",
    "summarize",
    "wall_metrics",
]


BOOKING_KINDS = ("opening_hedge", "settlement", "delivery")
"""Trade-log ``kind`` of rows that are bookings, not market orders: a dealer's opening
hedge (shares endowed at S0, no impact), cash settlement of its expiring options and
physical delivery of shares at the strike. Every other row is a market order and its
``kind`` is the trading account's kind (dealer, noise, customer, pension)."""


def log_returns(prices: np.ndarray, step: int = 1) -> np.ndarray:
    """Log returns of ``prices`` over ``step`` samples (non-overlapping)."""
    p = np.asarray(prices, dtype=np.float64)[::step]
    return np.diff(np.log(p))


def realized_vol(prices: np.ndarray, dt: float, year_seconds: float, step: int = 1) -> float:
    """Annualized realized vol from prices sampled every ``dt`` seconds.

    ``step`` measures over ``step * dt`` second horizons (non-overlapping returns); the
    result is ``std(r) * sqrt(year_seconds / (step * dt))`` with the mean removed.
    Returns 0.0 when fewer than two returns exist.
    """
    r = log_returns(prices, step)
    if r.size < 2:
        return 0.0
    return float(np.std(r, ddof=1) * math.sqrt(year_seconds / (step * dt)))


def autocorrelation(x: np.ndarray, lag: int = 1) -> float:
    """Sample autocorrelation of ``x`` at ``lag`` (0.0 if undefined)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size <= lag + 1:
        return 0.0
    d = x - x.mean()
    denom = float(d @ d)
    if denom == 0.0:
        return 0.0
    return float(d[lag:] @ d[:-lag] / denom)


def max_drawdown(prices: np.ndarray) -> float:
    """Largest peak-to-trough fall as a fraction of the peak (0.0 = none)."""
    p = np.asarray(prices, dtype=np.float64)
    if p.size == 0:
        return 0.0
    peak = np.maximum.accumulate(p)
    return float(np.max(1.0 - p / peak))


def summarize(
    series: pd.DataFrame,
    trades: pd.DataFrame,
    dealers: dict[str, dict[str, float]],
    *,
    every: float,
    year_seconds: float,
) -> dict[str, float]:
    """The run's metrics dict (all floats).

    Keys: ``realized_vol`` (annualized, sampled every ``every`` s), ``autocorr_lag1``
    (of sampled log returns), ``max_drawdown`` (fraction), ``price_change`` ($),
    ``hedge_volume`` (shares, all dealers), ``hedge_cost`` ($), ``n_rehedges``,
    ``dealer_pnl`` ($, mark-to-market), ``dealer_pnl_vol`` (its dispersion: std of the
    sampled P&L changes of all dealers, annualized like realized vol, $ per sqrt(year)),
    ``exogenous_volume`` (shares traded by non-dealers in market orders), the time shares of
    :func:`wall_metrics`, and per dealer ``<name>.pnl``, ``<name>.hedge_volume``,
    ``<name>.hedge_cost``, ``<name>.n_rehedges``.
    """
    prices = series["price"].to_numpy()
    r = log_returns(prices)
    out: dict[str, float] = {
        "realized_vol": realized_vol(prices, every, year_seconds),
        "autocorr_lag1": autocorrelation(r, 1),
        "max_drawdown": max_drawdown(prices),
        "price_change": float(prices[-1] - prices[0]) if prices.size else 0.0,
    }
    totals = {"hedge_volume": 0.0, "hedge_cost": 0.0, "n_rehedges": 0.0, "dealer_pnl": 0.0}
    for name, stats in dealers.items():
        for key, value in stats.items():
            out[f"{name}.{key}"] = float(value)
        totals["hedge_volume"] += stats["hedge_volume"]
        totals["hedge_cost"] += stats["hedge_cost"]
        totals["n_rehedges"] += stats["n_rehedges"]
        totals["dealer_pnl"] += stats["pnl"]
    out.update(totals)
    pnl_cols = [f"{name}.pnl" for name in dealers if f"{name}.pnl" in series]
    pnl_steps = np.diff(series[pnl_cols].to_numpy().sum(axis=1)) if pnl_cols else np.zeros(0)
    out["dealer_pnl_vol"] = (
        float(np.std(pnl_steps, ddof=1) * math.sqrt(year_seconds / every))
        if pnl_steps.size > 1
        else 0.0
    )
    out.update(wall_metrics(series))
    out.update(regime_metrics(series, every, year_seconds))
    out.update(flow_split(series, list(dealers)))
    exo = ~trades["kind"].isin(["dealer", *BOOKING_KINDS]) if len(trades) else np.zeros(0, bool)
    out["exogenous_volume"] = float(trades.loc[exo, "qty"].abs().sum()) if len(trades) else 0.0
    return out


def regime_metrics(series: pd.DataFrame, every: float, year_seconds: float) -> dict[str, float]:
    """Realized vol (annualized) and share of time above / below the true gamma flip.

    Each sampled return is assigned the regime at its start (``regime`` column: +1 above
    the flip, -1 below). A regime with fewer than two returns gets vol 0.0.
    """
    r = log_returns(series["price"].to_numpy())
    regime = series["regime"].to_numpy()[:-1]
    out: dict[str, float] = {}
    for name, sign in (("above_flip", 1.0), ("below_flip", -1.0)):
        sel = r[regime == sign]
        out[f"time_{name}"] = float(sel.size / r.size) if r.size else 0.0
        vol = np.std(sel, ddof=1) * math.sqrt(year_seconds / every) if sel.size > 1 else 0.0
        out[f"realized_vol_{name}"] = float(vol)
    return out


def wall_metrics(series: pd.DataFrame) -> dict[str, float]:
    """Share of samples with price above the call wall (``time_beyond_call_wall``) or
    below the put wall (``time_beyond_put_wall``), true walls and, with the suffix
    ``_visible``, the exchange-visible ones. A sample without that wall counts as not
    beyond it."""
    price = series["price"].to_numpy()
    out: dict[str, float] = {}
    for suffix in ("", "_visible"):
        for side, sign in (("call", 1.0), ("put", -1.0)):
            wall = series[f"{side}_wall{suffix}"].to_numpy()
            with np.errstate(invalid="ignore"):
                beyond = sign * (price - wall) > 0.0  # NaN wall: False
            out[f"time_beyond_{side}_wall{suffix}"] = float(beyond.mean()) if price.size else 0.0
    return out


def episode_counts(episodes: pd.DataFrame) -> dict[str, float]:
    """Counts: ``n_episodes``, ``n_wall_breaks``, ``n_flip_crossings`` and, per primary
    cause, ``episodes.<cause>`` (wall breaks only)."""
    breaks = episodes[episodes["kind"].str.endswith("wall_break")]
    out = {
        "n_episodes": float(len(episodes)),
        "n_wall_breaks": float(len(breaks)),
        "n_flip_crossings": float(len(episodes) - len(breaks)),
    }
    for cause in (*CAUSES, "none"):
        out[f"episodes.{cause}"] = float((breaks["primary_cause"] == cause).sum())
    return out


FLOW_PARTS = ("gamma", "charm", "vanna", "other")


def flow_split(series: pd.DataFrame, dealers: list[str]) -> dict[str, float]:
    """Gross hedge demand of all dealers (shares, summed ``|change|`` between samples) due
    to spot (``hedge_flow_gamma``), time (``_charm``), implied vol (``_vanna``) and the
    rest (``_other``: new lines, settlements, higher order)."""
    out = {}
    for part in FLOW_PARTS:
        cols = [f"{d}.flow_{part}" for d in dealers if f"{d}.flow_{part}" in series]
        gross = np.abs(np.diff(series[cols].to_numpy(), axis=0)).sum() if cols else 0.0
        out[f"hedge_flow_{part}"] = float(gross)
    return out
