"""Wall breaks and flip crossings, each with the measured evidence of its causes.

An episode is found the same way in every scenario, from what the recorders measured:

- **wall break**: the price goes beyond a wall by ``threshold`` (a fraction of the
  wall's level, held fixed at the level the wall had just before the crossing) and
  stays beyond it for at least ``duration`` seconds. Walls of both views are watched:
  the visible one (what an outside analyst sees) and the true one. A break seen in both
  views (overlapping in time) is one episode: ``views`` says which views saw it,
  ``level_true`` / ``level_visible`` the wall of each (NaN where that view did not
  break), ``level`` the one the evidence is measured at (the visible wall if it broke).
- **flip crossing**: the price crosses the true gamma flip and stays on the other side
  for ``duration`` seconds.

Evidence, measured over the window ``[start - lookback, start + duration]``, is the
cheap first look at the cause:

- ``flow_ratio`` (overwhelming flow): net signed non-dealer share flow in the break's
  direction over what the dealers could set against it. Capacity-limited dealers: their
  capacity over the window. Uncapped dealers cannot be out-traded, so the flow must both
  exceed what they traded against the move and be material: at least the flow that
  alone moves price by the break ``threshold`` under the scenario's impact model (else a
  quiet market, where both flows are near zero, gives huge ratios of two small numbers).
- ``otc_support`` (OTC offset): the true GEX profile at the visible wall over the
  visible one (1 = the true book supports the wall as drawn; <= 0 = opposite sign).
  Counted as evidence only when the scenario can hold hidden (OTC) lines.
- ``iv_change`` (vol regime shift): change of ATM implied vol over the window.
- ``gap_move`` (gap): scheduled price gaps in the window, summed as fractions of price
  and signed along the break (+ = toward it); passes when above the break ``threshold``.
- ``wall_melt`` (expiration melt): how much of the wall strike's true gamma is gone
  once the break is confirmed (``start + duration``), relative to its peak in the
  lookback before the break (0 = none, 1 = all). Near expiry a strike's gamma collapses
  as soon as price is a few ``sigma * sqrt(T)`` away; with time left it barely moves,
  so it counts as evidence only with an expiry within a session of the window.
- ``expiry_hedge`` (expiration melt too): the dealers' hedge demand (shares, signed
  along the break) from lines that expired in the window: at settlement an expiring
  line's delta vanishes and its hedge is left to unwind. Passes when it is material
  (at least the flow that alone moves price by the break ``threshold``).

Each cause whose evidence passes its threshold is listed in ``causes`` (strongest
first); the strongest, scored as evidence over threshold, is ``evidence_cause``. With no
evidence passing, it is ``news``: no scripted cause, the wall broke on the random walk
of news and noise (``none`` if the scenario has neither). ``primary_cause`` is the
evidence cause until :mod:`mmsim.explain` replays the run with each candidate cause
removed; it then holds the counterfactual answer and ``cause_source`` says which.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from mmsim.position_columns import PositionColumns
from mmsim.schema import Scenario

__all__ = [
    "BACKGROUND_CAUSES",
    "CAUSES",
    "EPISODE_COLUMNS",
    "clock_time",
    "detect_episodes",
    "empty_episodes",
    "episode_lines",
    "episode_table",
]

CAUSES = (
    "otc_offset",
    "expiration_melt",
    "vol_regime_shift",
    "overwhelming_flow",
    "customer_flow",
    "gap",
    "news",
)
"""Every cause an episode can have, in the order that breaks ties between counterfactual
causes (those that change the wall before the pushes that found it weak)."""
BACKGROUND_CAUSES = ("news",)
"""The random walk (news and noise orders): primary only when no scripted cause explains
the episode."""
EVIDENCE_CAUSES = ("overwhelming_flow", "otc_offset", "vol_regime_shift", "gap", "expiration_melt")
EPISODE_COLUMNS = {
    "start": "float64",
    "end": "float64",
    "kind": "str",
    "views": "str",
    "level": "float64",
    "level_true": "float64",
    "level_visible": "float64",
    "direction": "float64",
    "exo_flow": "float64",
    "dealer_flow": "float64",
    "dealer_capacity": "float64",
    "flow_ratio": "float64",
    "otc_support": "float64",
    "iv_change": "float64",
    "gap_move": "float64",
    "wall_melt": "float64",
    "expiry_hedge": "float64",
    "causes": "str",
    "evidence_cause": "str",
    "primary_cause": "str",
    "cause_source": "str",
}
OPEN_SECONDS = 9.5 * 3600.0  # the session opens at 09:30


_EMPTY: list[pd.DataFrame] = []
_STR = pd.api.types.pandas_dtype("str")
"""The dtype ``"str"`` names (pandas' default string dtype), looked up once: ``pd.array``
given the name looks it up per column (a quarter of the episodes table's construction)."""


def empty_episodes() -> pd.DataFrame:
    """The episodes table with its columns and no rows (a copy of one built once: most
    runs have no episode, and building the typed empty table costs milliseconds)."""
    if not _EMPTY:
        _EMPTY.append(pd.DataFrame({c: pd.Series(dtype=d) for c, d in EPISODE_COLUMNS.items()}))
    return _EMPTY[0].copy()


def clock_time(t: float, session_seconds: float, *, closing: bool = False) -> str:
    """Session clock time of trading time ``t`` (s): ``"d1 14:05:10"`` (day 1, sessions
    open at 09:30). An instant on a session boundary is the next day's open, or with
    ``closing`` the previous day's close (so an episode ending at the bell reads 16:00)."""
    day, into = divmod(max(t, 0.0), session_seconds)
    if closing and into < 1e-9 and day > 0:
        day, into = day - 1, session_seconds
    clock = round(OPEN_SECONDS + into)
    return f"d{int(day) + 1} {clock // 3600:02d}:{clock // 60 % 60:02d}:{clock % 60:02d}"


def series_columns(series: pd.DataFrame) -> Callable[[str], np.ndarray]:
    """A reader of ``series``' columns by name as numpy arrays: read-only views of the
    frame's one float64 block (a recorder's series frame: ``series[c].to_numpy()``'s
    values, without building a Series per column, ~10 us each), else
    ``series[c].to_numpy()``."""
    values = series.to_numpy(copy=False) if series.columns.is_unique else None
    if values is None or values.dtype != np.float64 or values.ndim != 2:
        return lambda c: series[c].to_numpy()
    values = values.view()  # read-only, as pandas hands out its columns (the frame's own)
    values.flags.writeable = False
    where = series.columns.get_loc
    return lambda c: values[:, where(c)]


def _is_kind(kind: pd.Series, name: str) -> np.ndarray:
    """``(kind == name).to_numpy()``; for a categorical ``kind`` (a run's market orders)
    from its codes (a fifth of the cost: no string comparison)."""
    if isinstance(kind.dtype, pd.CategoricalDtype):
        cat = kind.array  # a Categorical: its codes an ndarray, -1 for a missing value
        return cat.codes == (cat.categories.get_loc(name) if name in cat.categories else -2)
    return (kind == name).to_numpy()


def _runs_beyond(t, price, level, direction, duration):
    """(start_index, end_index) of stretches where price stays beyond the level it
    crossed (``level`` held at its value just before the crossing) for ``duration``.

    A crossing at sample ``i`` is ``price[i]`` beyond ``level[i - 1]`` and ``price[i - 1]``
    not; its stretch lasts while price stays beyond that same level, and the next
    crossing is looked for after it. Candidates are found vectorized, each stretch's end
    by a widening search, so the cost is that of numpy passes, not a Python step per
    sample."""
    out, n = [], price.size
    if n < 2:
        return out
    ref = level[:-1]
    with np.errstate(invalid="ignore"):  # NaN levels compare False
        crossed = (direction * (price[1:] - ref) > 0.0) & (0.0 >= direction * (price[:-1] - ref))
    i = 1
    for c in (np.flatnonzero(crossed) + 1).tolist():
        if c < i:  # inside the previous stretch
            continue
        r = level[c - 1]
        j, width = c + 1, 16
        while j < n:  # first sample from c + 1 on that is not beyond r
            stop = np.flatnonzero(~(direction * (price[j : j + width] - r) > 0.0))
            if stop.size:
                j += int(stop[0])
                break
            j, width = j + width, 2 * width
        j = min(j, n)
        if t[j - 1] - t[c] >= duration:
            out.append((c, j - 1, r))
        i = j
    return out


def flow_to_move(scenario: Scenario, move: float, S: float) -> float:
    """Shares that alone move price ``S`` ($) by the fraction ``move`` under the
    scenario's impact model (permanent part, no dealers); inf with zero impact."""
    cfg = scenario.market.impact
    if cfg.model == "sqrt":
        return cfg.adv * (move / (cfg.Y * cfg.daily_vol)) ** 2
    lam = cfg.lam if cfg.lam is not None else scenario.market.S0 * 1.0e-4 / cfg.depth_bp
    return math.inf if not lam else move * S / lam


class _Evidence:
    """Measures the causes' evidence for windows of one run."""

    def __init__(
        self,
        series: pd.DataFrame,
        trades: pd.DataFrame,
        scenario: Scenario,
        chain_days: Sequence[float] = (),
        opening: PositionColumns | None = None,
    ):
        self.sc = scenario
        self.col = series_columns(series)
        self.t = self.col("t")
        self.series = series
        if len(trades):
            self.trade_t = trades["t"].to_numpy()
            self.trade_q = trades["qty"].to_numpy()
            self.is_dealer = _is_kind(trades["kind"], "dealer")
        else:
            self.trade_t = self.trade_q = np.zeros(0)
            self.is_dealer = np.zeros(0, dtype=bool)
        self.gaps = [(e.at, e.gap) for e in scenario.events if e.kind == "gap"]
        sc = scenario
        if opening is None:  # the dealers' opening positions, as the run read them
            opening = PositionColumns.of([p for d in sc.dealers for p in d.positions])
        days = [x for c in sc.customers for x in c.expiry_days]  # as sc.expiry_days()
        days += [p.expiry_days for e in sc.events for p in e.positions]
        days += list(chain_days)  # a real chain's opening book too
        days = np.concatenate([opening.expiry_days, np.array(days, dtype=float)])
        expiries = days * sc.clock.session_seconds
        # only those a window can reach (up to its end plus a session: the melt's look
        # ahead), sorted: a big book's far expiries change no answer and cost a sort
        reach = self.t[-1] + scenario.record.episodes.duration + sc.clock.session_seconds
        self.expiries = np.unique(expiries[expiries <= reach]).tolist()
        other = [f"{n}.flow_other" for n in sc.dealer_names() if f"{n}.flow_other" in series]
        self._other = other  # summed when an expiry's hedge is first asked for
        self._flow_other: np.ndarray | None = None
        # OTC evidence only where hidden lines can exist (the replay's candidate too): a
        # book that merely differs in sign from the analysts' convention is not hidden
        self.hidden = (
            not opening.visible.all()
            or not all([p.visible for e in sc.events for p in e.positions])
            or any(c.otc_fraction > 0.0 and c.rate > 0.0 for c in sc.customers)
        )
        self.random_walk = (scenario.news is not None and scenario.news.vol > 0.0) or (
            scenario.noise is not None and scenario.noise.rate > 0.0
        )

    def flows(self, t0: float, t1: float) -> tuple[float, float, float]:
        """Net exogenous and dealer share flow in [t0, t1] and dealer capacity (shares;
        inf when any dealer is uncapped)."""
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
        col = self.col
        wall = col(f"{side}_wall_visible")[w0 : w1 + 1]
        strike = np.abs(col(f"{side}_wall_strike_gex")[w0 : w1 + 1])
        same = np.isclose(wall, level) & np.isfinite(strike)
        peak = strike[: before - w0 + 1][same[: before - w0 + 1]]
        if not peak.size or peak.max() <= 0.0:
            return 0.0
        now = strike[-1] if same[-1] else 0.0
        return float(max(1.0 - now / peak.max(), 0.0))

    def expiry_hedge(self, t0: float, t1: float) -> float:
        """Dealers' hedge demand (shares) from settlements at expiries in (t0, t1]: the
        change of their cumulative ``flow_other`` across each expiry's sample."""
        if not self._other:
            return 0.0
        total = 0.0
        ex = self.expiries  # sorted: the ones in (t0, t1], in order
        for expiry in ex[bisect.bisect_right(ex, t0) : bisect.bisect_right(ex, t1)]:
            if t0 < expiry <= t1:
                if self._flow_other is None:  # the dealers' flow_other columns, summed
                    self._flow_other = self.series[self._other].sum(axis=1).to_numpy()
                # the samples just before and just after the expiry instant (a sample at
                # the instant itself may be taken before or after the settlement)
                before = max(np.searchsorted(self.t, expiry, side="left") - 1, 0)
                after = min(np.searchsorted(self.t, expiry, side="right"), self.t.size - 1)
                total += float(self._flow_other[after] - self._flow_other[before])
        return total

    def measure(self, i0: int, side: str, direction: float, level: float) -> dict:
        cfg, col, t = self.sc.record.episodes, self.col, self.t
        t0 = t[i0] - cfg.lookback
        t1 = t[i0] + cfg.duration
        exo, dealer, capacity = self.flows(t0, t1)
        material = max(flow_to_move(self.sc, cfg.threshold, level), 1.0)  # shares
        if math.isfinite(capacity):
            absorb = capacity
        else:  # uncapped: what they set against the move, and at least a material flow
            absorb = max(-direction * dealer, material)
        flow_ratio = max(direction * exo, 0.0) / absorb
        w0 = np.searchsorted(t, t0)
        w1 = min(np.searchsorted(t, t1, side="right"), t.size) - 1
        iv = col("iv")
        iv_change = float(iv[w1] - iv[w0])
        expiry_hedge = direction * self.expiry_hedge(t0, t1) + 0.0
        gap_move = direction * sum(g for at, g in self.gaps if t0 <= at <= t1) + 0.0  # no -0.0
        before = max(i0 - 1, 0)
        otc_support, melt = 1.0, 0.0
        if side in ("call", "put"):
            true = col(f"{side}_wall_gex_true")[before]
            visible = col(f"{side}_wall_gex_visible")[before]
            if np.isfinite(true) and np.isfinite(visible) and visible != 0.0:
                otc_support = float(true / visible)
            melt = self._melt(side, level, w0, before, w1)
        else:  # flip crossing: the sign of GEX at spot in both views
            true, visible = col("gex_true")[before], col("gex_visible")[before]
            if visible != 0.0:
                otc_support = float(true / visible)
        # a strike's gamma melts only close to its expiry: without an expiry from the
        # window's start to one session after it, a falling wall gamma is something else
        # (a vol shift thins it too)
        session = self.sc.clock.session_seconds
        ex = self.expiries  # sorted: is there one in [t0, t1 + session]?
        k = bisect.bisect_left(ex, t0)
        if not (k < len(ex) and ex[k] <= t1 + session):
            melt_score = 0.0
        else:
            melt_score = melt / cfg.melt
        scores = {
            "overwhelming_flow": flow_ratio / cfg.flow_ratio,
            "otc_offset": (1.0 - otc_support) / (1.0 - cfg.otc_support) if self.hidden else 0.0,
            "vol_regime_shift": abs(iv_change) / cfg.iv_change,
            "gap": gap_move / cfg.threshold if cfg.threshold > 0 else math.inf * (gap_move > 0),
            "expiration_melt": max(melt_score, expiry_hedge / material),
        }
        passed = sorted((c for c in EVIDENCE_CAUSES if scores[c] >= 1.0), key=lambda c: -scores[c])
        fallback = "news" if self.random_walk else "none"
        cause = passed[0] if passed else fallback
        return {
            "exo_flow": exo,
            "dealer_flow": dealer,
            "dealer_capacity": capacity,
            "flow_ratio": flow_ratio,
            "otc_support": otc_support,
            "iv_change": iv_change,
            "gap_move": float(gap_move),
            "wall_melt": melt,
            "expiry_hedge": expiry_hedge,
            "causes": ",".join(passed),
            "evidence_cause": cause,
            "primary_cause": cause,
            "cause_source": "evidence",
        }


def _merge_views(rows: list[dict]) -> list[dict]:
    """One row per episode: a true-view and a visible-view break of the same kind whose
    spans overlap are the same episode (the earlier start is kept; the evidence is the
    visible one's, what an analyst looks at)."""
    visible = [r for r in rows if r["views"] == "visible"]
    out = [r for r in rows if r["views"] != "visible"]
    for v in visible:
        match = next(
            (
                r
                for r in out
                if r["kind"] == v["kind"]
                and r["views"] == "true"
                and r["start"] <= v["end"]
                and v["start"] <= r["end"]
            ),
            None,
        )
        if match is None:
            out.append(v)
            continue
        merged = {**v, "views": "true+visible", "level_true": match["level_true"]}
        merged["start"], merged["end"] = (
            min(v["start"], match["start"]),
            max(v["end"], match["end"]),
        )
        out[out.index(match)] = merged
    return out


def detect_episodes(
    series: pd.DataFrame,
    trades: pd.DataFrame,
    scenario: Scenario,
    chain_days: Sequence[float] = (),
    opening: PositionColumns | None = None,
) -> pd.DataFrame:
    """All wall breaks (one row per episode, both views) and true-flip crossings of one
    run, time ordered; the columns are ``EPISODE_COLUMNS``. ``chain_days``: the expiries
    (sessions from t = 0) of an opening book from a real chain, which the scenario's own
    lists do not hold (the expiration melt's evidence needs every expiry). ``opening``:
    the dealers' opening positions as columns (``Simulation.opening_positions``; default:
    read from ``scenario``)."""
    cfg = scenario.record.episodes
    if len(series) < 2:
        return empty_episodes()
    col = series_columns(series)
    t = col("t")
    price = col("price")
    built: list[_Evidence] = []  # the evidence's tables, built for the first episode

    def measure(i0: int, what: str, direction: float, level: float) -> dict:
        if not built:
            built.append(_Evidence(series, trades, scenario, chain_days, opening))
        return built[0].measure(i0, what, direction, level)

    rows = []
    for view, suffix in (("visible", "_visible"), ("true", "")):
        for side, direction in (("call", 1.0), ("put", -1.0)):
            wall = col(f"{side}_wall{suffix}")
            edge = wall * (1.0 + direction * cfg.threshold)
            for i0, i1, ref in _runs_beyond(t, price, edge, direction, cfg.duration):
                level = ref / (1.0 + direction * cfg.threshold)
                rows.append(
                    {
                        "start": t[i0],
                        "end": t[i1],
                        "kind": f"{side}_wall_break",
                        "views": view,
                        "level": level,
                        "level_true": level if view == "true" else np.nan,
                        "level_visible": level if view == "visible" else np.nan,
                        "direction": direction,
                        **measure(i0, side, direction, level),
                    }
                )
    rows = _merge_views(rows)
    flip = col("flip_true")
    for direction, kind in ((-1.0, "flip_cross_down"), (1.0, "flip_cross_up")):
        for i0, i1, ref in _runs_beyond(t, price, flip, direction, cfg.duration):
            rows.append(
                {
                    "start": t[i0],
                    "end": t[i1],
                    "kind": kind,
                    "views": "true",
                    "level": ref,
                    "level_true": ref,
                    "level_visible": np.nan,
                    "direction": direction,
                    **measure(i0, "flip", direction, ref),
                }
            )
    if not rows:
        return empty_episodes()
    return episode_table(rows)


def episode_table(rows: list[dict]) -> pd.DataFrame:
    """The episodes table of ``rows`` (dicts holding at least ``EPISODE_COLUMNS``), ordered
    by ``start`` then ``kind`` (stable), typed column by column as it is built: the same
    table as ``DataFrame(rows).sort_values(...).astype(EPISODE_COLUMNS)``, in a tenth of
    its ~3 ms (``tests/test_episodes.py``)."""
    rows = sorted(rows, key=lambda r: (r["start"], r["kind"]))
    data = {
        c: np.array([r[c] for r in rows], dtype=d)
        if d == "float64"
        else pd.array([r[c] for r in rows], dtype=_STR)
        for c, d in EPISODE_COLUMNS.items()
    }
    return pd.DataFrame(data, copy=False)


_CAUSE_NOTES = {
    "news": "news: no scripted cause; the wall broke on the random walk of news and noise",
    "none": "none: no cause found (no evidence passed, nothing random in the scenario)",
}


def episode_lines(episodes: pd.DataFrame, scenario: Scenario) -> list[str]:
    """The episodes part of a run summary: a count, then one line per episode (session
    clock times, the wall of each view, the primary cause and its evidence), then what
    the causes shown mean and how they were found."""
    if not len(episodes):
        return ["episodes        none (no wall break or flip crossing)"]
    session = scenario.clock.session_seconds
    table = pd.DataFrame(
        {
            "start": [  # an episode starting at the run's last instant starts at its close
                clock_time(t, session, closing=t >= scenario.clock.duration)
                for t in episodes["start"]
            ],
            "end": [clock_time(t, session, closing=True) for t in episodes["end"]],
            "kind": episodes["kind"],
            "true wall": [_level(x) for x in episodes["level_true"]],
            "visible wall": [_level(x) for x in episodes["level_visible"]],
            "cause": episodes["primary_cause"],
            "evidence": [_evidence(row) for row in episodes.itertuples()],
        }
    )
    lines = [f"episodes        {len(episodes)}"]
    lines += ["  " + line for line in table.to_string(index=False).splitlines()]
    if set(episodes["cause_source"]) == {"counterfactual"}:
        lines.append("  cause: found by replay, what removed prevents the break (mmsim explain)")
    else:
        lines.append("  cause: the evidence's first look; `mmsim explain DIR` finds it by replay")
    for cause, note in _CAUSE_NOTES.items():
        if (episodes["primary_cause"] == cause).any():
            lines.append(f"  {note}")
    return lines


def _level(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.2f}"


def _evidence(row) -> str:
    """The passing evidence of one episode, short."""
    shown = {
        "overwhelming_flow": f"flow_ratio {row.flow_ratio:.3g}",
        "otc_offset": f"otc_support {row.otc_support:.3g}",
        "vol_regime_shift": f"iv_change {row.iv_change:+.3g}",
        "gap": f"gap_move {row.gap_move:+.2%}",
        "expiration_melt": f"wall_melt {row.wall_melt:.2g}, expiry_hedge {row.expiry_hedge:+,.0f}",
    }
    if row.kind == "liquidity_dry_out":  # causes: "<primary>; <why>" (mmsim.dryout)
        why = row.causes.split("; ", 1)[-1]
        return (
            f"{why}; depth_before {row.depth_before:.3g} sh, dealers took "
            f"{row.dealer_flow:.3g} vs outside {row.exo_flow:.3g} sh"
        )
    causes = [c for c in row.causes.split(",") if c]
    return "; ".join(shown.get(c, c) for c in causes) if causes else "-"
