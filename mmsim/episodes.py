"""Wall breaks and flip crossings, each with the measured evidence of its causes.

An episode is found the same way in every scenario, from what the recorders measured:

- **wall break**: the price goes beyond a wall by ``threshold`` (a fraction of the
  wall's level, held fixed at the level the wall had just before the crossing) and
  stays beyond it for at least ``duration`` seconds. Walls of both views are watched:
  the visible one (what an outside analyst sees) and the true one.
- **flip crossing**: the price crosses the true gamma flip and stays on the other side
  for ``duration`` seconds.

Evidence, measured over the window ``[start - lookback, start + duration]``:

- ``flow_ratio`` (overwhelming flow): net signed non-dealer share flow in the break's
  direction over what the dealers could trade against it (their capacity over the
  window; for dealers without a capacity limit, what they actually traded).
- ``otc_support`` (OTC offset): the true GEX profile at the visible wall over the
  visible one (1 = the true book supports the wall as drawn; <= 0 = opposite sign).
- ``iv_change`` (vol regime shift): change of ATM implied vol over the window.
- ``wall_melt`` (expiration melt): how much of the wall strike's true gamma is gone
  once the break is confirmed (``start + duration``), relative to its peak in the
  lookback before the break (0 = none, 1 = all). Near expiry a strike's gamma collapses
  as soon as price is a few ``sigma * sqrt(T)`` away; with time left it barely moves.

Each cause whose evidence passes its threshold is listed in ``causes`` (strongest
first); the strongest, scored as evidence over threshold, is ``primary_cause``
(``"none"`` if no cause passes).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mmsim.schema import Scenario

__all__ = ["CAUSES", "EPISODE_COLUMNS", "detect_episodes", "empty_episodes"]

CAUSES = ("overwhelming_flow", "otc_offset", "vol_regime_shift", "expiration_melt")
EPISODE_COLUMNS = {
    "start": "float64",
    "end": "float64",
    "kind": "str",
    "view": "str",
    "level": "float64",
    "direction": "float64",
    "exo_flow": "float64",
    "dealer_flow": "float64",
    "dealer_capacity": "float64",
    "flow_ratio": "float64",
    "otc_support": "float64",
    "iv_change": "float64",
    "wall_melt": "float64",
    "primary_cause": "str",
    "causes": "str",
}


def empty_episodes() -> pd.DataFrame:
    """The episodes table with its columns and no rows."""
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in EPISODE_COLUMNS.items()})


def _runs_beyond(t, price, level, direction, duration):
    """(start_index, end_index) of stretches where price stays beyond the level it
    crossed (``level`` held at its value just before the crossing) for ``duration``."""
    out, i, n = [], 1, price.size
    while i < n:
        ref = level[i - 1]
        crossed = direction * (price[i] - ref) > 0.0 >= direction * (price[i - 1] - ref)
        if math.isnan(ref) or not crossed:
            i += 1
            continue
        j = i
        while j < n and direction * (price[j] - ref) > 0.0:
            j += 1
        if t[j - 1] - t[i] >= duration:
            out.append((i, j - 1, ref))
        i = j
    return out


class _Evidence:
    """Measures the causes' evidence for windows of one run."""

    def __init__(self, series: pd.DataFrame, trades: pd.DataFrame, scenario: Scenario):
        self.sc = scenario
        self.t = series["t"].to_numpy()
        self.series = series
        if len(trades):
            self.trade_t = trades["t"].to_numpy()
            self.trade_q = trades["qty"].to_numpy()
            self.is_dealer = (trades["kind"] == "dealer").to_numpy()
        else:
            self.trade_t = self.trade_q = np.zeros(0)
            self.is_dealer = np.zeros(0, dtype=bool)

    def flows(self, t0: float, t1: float) -> tuple[float, float, float]:
        """Net exogenous and dealer share flow in [t0, t1] and dealer capacity (shares)."""
        m = (self.trade_t >= t0) & (self.trade_t <= t1)
        exo = float(self.trade_q[m & ~self.is_dealer].sum())
        dealer = float(self.trade_q[m & self.is_dealer].sum())
        caps = [
            d.capacity * (t1 - t0) / d.capacity_window
            for d in self.sc.dealers
            if d.capacity is not None
        ]
        uncapped = len(caps) < len(self.sc.dealers)
        return exo, dealer, math.inf if uncapped or not caps else float(sum(caps))

    def _melt(self, side: str, level: float, w0: int, before: int, w1: int) -> float:
        """Share of the wall strike's true gamma gone by the end of the break's
        confirmation window (sample ``w1``), against its peak from the lookback start
        ``w0`` to just before the break; 1 if the wall has left the strike by then."""
        s = self.series
        wall = s[f"{side}_wall_visible"].to_numpy()[w0 : w1 + 1]
        strike = np.abs(s[f"{side}_wall_strike_gex"].to_numpy()[w0 : w1 + 1])
        same = np.isclose(wall, level) & np.isfinite(strike)
        peak = strike[: before - w0 + 1][same[: before - w0 + 1]]
        if not peak.size or peak.max() <= 0.0:
            return 0.0
        now = strike[-1] if same[-1] else 0.0
        return float(max(1.0 - now / peak.max(), 0.0))

    def measure(self, i0: int, side: str, direction: float, level: float) -> dict:
        cfg, s, t = self.sc.record.episodes, self.series, self.t
        t0 = t[i0] - cfg.lookback
        t1 = t[i0] + cfg.duration
        exo, dealer, capacity = self.flows(t0, t1)
        absorb = capacity if math.isfinite(capacity) else max(abs(dealer), 1.0)
        flow_ratio = max(direction * exo, 0.0) / absorb
        w0 = np.searchsorted(t, t0)
        w1 = min(np.searchsorted(t, t1, side="right"), t.size) - 1
        iv = s["iv"].to_numpy()
        iv_change = float(iv[w1] - iv[w0])
        before = max(i0 - 1, 0)
        otc_support, melt = 1.0, 0.0
        if side in ("call", "put"):
            true = s[f"{side}_wall_gex_true"].to_numpy()[before]
            visible = s[f"{side}_wall_gex_visible"].to_numpy()[before]
            if np.isfinite(true) and np.isfinite(visible) and visible != 0.0:
                otc_support = float(true / visible)
            melt = self._melt(side, level, w0, before, w1)
        else:  # flip crossing: the sign of GEX at spot in both views
            true, visible = s["gex_true"].to_numpy()[before], s["gex_visible"].to_numpy()[before]
            if visible != 0.0:
                otc_support = float(true / visible)
        scores = {
            "overwhelming_flow": flow_ratio / cfg.flow_ratio,
            "otc_offset": (1.0 - otc_support) / (1.0 - cfg.otc_support),
            "vol_regime_shift": abs(iv_change) / cfg.iv_change,
            "expiration_melt": melt / cfg.melt,
        }
        passed = sorted((c for c in CAUSES if scores[c] >= 1.0), key=lambda c: -scores[c])
        return {
            "exo_flow": exo,
            "dealer_flow": dealer,
            "dealer_capacity": capacity,
            "flow_ratio": flow_ratio,
            "otc_support": otc_support,
            "iv_change": iv_change,
            "wall_melt": melt,
            "primary_cause": passed[0] if passed else "none",
            "causes": ",".join(passed),
        }


def detect_episodes(series: pd.DataFrame, trades: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """All wall breaks (both views) and true-flip crossings of one run, time ordered."""
    cfg = scenario.record.episodes
    if len(series) < 2:
        return empty_episodes()
    t = series["t"].to_numpy()
    price = series["price"].to_numpy()
    evidence = _Evidence(series, trades, scenario)
    rows = []
    for view, suffix in (("visible", "_visible"), ("true", "")):
        for side, direction in (("call", 1.0), ("put", -1.0)):
            wall = series[f"{side}_wall{suffix}"].to_numpy()
            edge = wall * (1.0 + direction * cfg.threshold)
            for i0, i1, ref in _runs_beyond(t, price, edge, direction, cfg.duration):
                level = ref / (1.0 + direction * cfg.threshold)
                rows.append(
                    {
                        "start": t[i0],
                        "end": t[i1],
                        "kind": f"{side}_wall_break",
                        "view": view,
                        "level": level,
                        "direction": direction,
                        **evidence.measure(i0, side, direction, level),
                    }
                )
    flip = series["flip_true"].to_numpy()
    for direction, kind in ((-1.0, "flip_cross_down"), (1.0, "flip_cross_up")):
        for i0, i1, ref in _runs_beyond(t, price, flip, direction, cfg.duration):
            rows.append(
                {
                    "start": t[i0],
                    "end": t[i1],
                    "kind": kind,
                    "view": "true",
                    "level": ref,
                    "direction": direction,
                    **evidence.measure(i0, "flip", direction, ref),
                }
            )
    if not rows:
        return empty_episodes()
    table = pd.DataFrame(rows).sort_values(["start", "kind", "view"], kind="stable")
    return table.reset_index(drop=True).astype(EPISODE_COLUMNS)
