"""Summary statistics of a run: realized vol, autocorrelation, drawdown, dealer totals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mmsim.episodes import CAUSES
from mmsim.position_columns import PositionColumns

__all__ = [
    "BOOKING_KINDS",
    "PIN_WINDOW",
    "autocorrelation",
    "bipower_vol",
    "dealer_fill_impact",
    "episode_counts",
    "flow_split",
    "log_returns",
    "max_drawdown",
    "open_interest",
    "pin_metrics",
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


def bipower_vol(prices: np.ndarray, dt: float, year_seconds: float) -> tuple[float, float]:
    """Jump-robust vol from bipower variation, and the jumps' share of the variance.

    With ``r`` the log returns of ``prices`` sampled every ``dt`` s, realized variance
    ``RV = sum r_i**2`` counts diffusion and jumps; bipower variation
    ``BV = (pi / 2) * sum |r_i| * |r_(i-1)|`` (Barndorff-Nielsen & Shephard, 2004) is
    blind to isolated jumps, because a jump enters only as a product with a normal-sized
    neighbour. Returns ``(vol, jump_share)``: ``vol = sqrt(BV / (n - 1) * year_seconds /
    dt)`` annualized like :func:`realized_vol`, and ``jump_share = max(1 - BV * n / (RV *
    (n - 1)), 0)`` (the fraction of the realized variance a few large moves explain; ~0
    for a pure diffusion, up to sampling error ~ 1/sqrt(n)). ``(0.0, 0.0)`` with fewer than
    three returns or no movement.
    """
    r = log_returns(prices)
    if r.size < 3:
        return 0.0, 0.0
    products = np.abs(r[1:]) * np.abs(r[:-1])
    bv = math.pi / 2.0 * float(products.mean())  # per return
    rv = float(np.mean(r * r))
    vol = math.sqrt(bv * year_seconds / dt)
    share = max(1.0 - bv / rv, 0.0) if rv > 0.0 else 0.0
    return vol, share


def open_interest(
    scenario,
    option_trades: pd.DataFrame,
    *,
    expiring_by: float | None = None,
    chain_lines: pd.DataFrame | None = None,
    opening: PositionColumns | None = None,
) -> pd.DataFrame:
    """Every option line the run opened, settled or not: ``strike`` ($), ``expiry`` (s),
    ``qty`` (contracts, dealer's sign): the dealers' opening positions, the opening book
    from a real chain (``chain_lines``, :func:`mmsim.chains.scenario_lines`; all dealers'
    shares together), ``positions`` events, and the dealers' side (``-qty``) of every
    customer option trade. Settlement nets the book's lines to zero at expiry; this
    table keeps what was open.

    ``expiring_by`` (s): only the lines expiring in ``(0, expiring_by]`` (what
    :func:`pin_metrics` reads of a run ending then; the same rows in the same order), so
    a 10,000-line book whose lines outlive the run is not tabulated line by line.
    ``opening``: the dealers' positions as columns (``Simulation.opening_positions``, read
    when they were booked; default: read from ``scenario``)."""
    session = scenario.clock.session_seconds
    if opening is None:
        opening = PositionColumns.of([p for d in scenario.dealers for p in d.positions])
    events = [p for e in scenario.events if e.kind == "positions" for p in e.positions]
    cols = PositionColumns.concat([opening, PositionColumns.of(events)]) if events else opening
    strike, expiry, qty = cols.strike, cols.expiry_days * session, cols.qty
    if expiring_by is not None:
        keep = _expiring(expiry, expiring_by)
        strike, expiry, qty = strike[keep], expiry[keep], qty[keep]
    table = pd.DataFrame({"strike": strike, "expiry": expiry, "qty": qty})
    if chain_lines is not None and len(chain_lines):
        chain = pd.DataFrame(
            {
                "strike": chain_lines["strike"].to_numpy(dtype=float),
                "expiry": chain_lines["sessions"].to_numpy(dtype=float) * session,
                "qty": chain_lines["qty"].to_numpy(dtype=float),
            }
        )
        if expiring_by is not None:
            chain = chain[_expiring(chain["expiry"].to_numpy(), expiring_by)]
        if len(chain):
            table = pd.concat([table, chain], ignore_index=True) if len(table) else chain
            table = table.reset_index(drop=True)
    if len(option_trades):
        trades = option_trades[["strike", "expiry"]].assign(qty=-option_trades["qty"])
        if expiring_by is not None:
            trades = trades[_expiring(trades["expiry"].to_numpy(dtype=float), expiring_by)]
        if len(trades):
            table = pd.concat([table, trades.astype(float)], ignore_index=True)
    return table


def _expiring(expiry: np.ndarray, end: float) -> np.ndarray:
    """Mask of the expiries (s) in ``(0, end]`` (``end`` relatively widened by 1e-12, the
    last sample's rounding): the lines :func:`pin_metrics` reads."""
    return (expiry > 0.0) & (expiry <= end * (1 + 1e-12))


PIN_WINDOW = 0.02
"""The pin strike is looked for within this fraction of the price at the open of the
expiry's last session (+-2%): the strikes a close can be pinned to that day."""


def pin_metrics(
    series: pd.DataFrame, lines: pd.DataFrame, session_seconds: float, end: float
) -> dict[str, float]:
    """Distance of the close from the pin strike, per expiry in the run.

    For each expiry time ``E`` (s, ``0 < E <= end``) of ``lines`` (:func:`open_interest`:
    ``strike``, ``expiry``, ``qty`` in contracts), the pin strike is the strike with the
    largest open interest ``sum |qty|`` among the lines expiring at ``E`` whose strike lies
    within ``PIN_WINDOW`` (+-2%) of the price at the open of ``E``'s last session (the
    sample at that session's start: S0 for the first session; ties: the lowest strike).
    A real chain's largest open interest is often a far out-of-the-money put (SPX
    2022-02-07: 3,800 with spot at 4,500), which no close is pinned to. Only when no
    strike of the expiry lies in the window is it the largest-open-interest strike of all.
    The close is the price of the last sample at or before ``E`` (before settlement).

    Keys, with ``d`` the session the expiry closes (``E / session_seconds``, e.g. ``1``):
    ``expiry<d>.pin_strike`` ($), ``expiry<d>.pin_distance`` ($, close minus strike),
    ``expiry<d>.pin_in_window`` (1.0: the strike is within the window; 0.0: none was, the
    largest overall); ``pin_strike``, ``pin_distance`` and ``pin_in_window`` repeat the
    last expiry's. Empty if none expires.
    """
    out: dict[str, float] = {}
    if not len(lines) or not len(series):
        return out
    within = _expiring(lines["expiry"].to_numpy(), end)
    if not within.any():
        return out  # nothing expires within the run
    live = lines[within]
    t, price = series["t"].to_numpy(), series["price"].to_numpy()
    for expiry, group in live.groupby("expiry", sort=True):
        oi = group["qty"].abs().groupby(group["strike"]).sum()  # by ascending strike
        strikes, weight = oi.index.to_numpy(dtype=float), oi.to_numpy(dtype=float)
        if not (weight > 0).any():
            continue
        ref = _session_open(t, price, float(expiry), session_seconds)
        near = (weight > 0) & (np.abs(strikes - ref) <= PIN_WINDOW * ref * (1 + 1e-12))
        pick = np.flatnonzero(near if near.any() else weight > 0)
        strike = float(strikes[pick[np.argmax(weight[pick])]])  # first maximum: lowest
        k = int(np.searchsorted(t, float(expiry) * (1 + 1e-12), side="right")) - 1
        close = float(price[max(k, 0)])
        day = f"{float(expiry) / session_seconds:g}"
        in_window = float(near.any())
        out[f"expiry{day}.pin_strike"] = strike
        out[f"expiry{day}.pin_distance"] = close - strike
        out[f"expiry{day}.pin_in_window"] = in_window
        out["pin_strike"], out["pin_distance"] = strike, close - strike
        out["pin_in_window"] = in_window
    return out


def _session_open(t: np.ndarray, price: np.ndarray, expiry: float, session: float) -> float:
    """The price ($) at the open of the session an expiry at ``expiry`` (s) falls in (one
    at a close, ``k * session``, belongs to the session ending then): the first sample at
    or after that session's start."""
    start = max(math.ceil(expiry / session - 1.0 - 1e-9), 0) * session
    k = int(np.searchsorted(t, start * (1 - 1e-12), side="left"))
    return float(price[min(k, len(price) - 1)])


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


def dealer_fill_impact(trade_tables: list[pd.DataFrame]) -> float:
    """The market's impact per share at the size of the dealers' own hedges, $ per share:
    the mid move over the dealers' fills (signed by the order) summed over the trade
    tables, divided by their total shares. Bookings (the off-book opening hedge,
    settlements) carry ``kind`` of their own and are left out."""
    moved = shares = 0.0
    for t in trade_tables:
        d = t[(t["kind"] == "dealer") & (t["qty"] != 0.0)]
        moved += float(((d["price_after"] - d["price_before"]) * np.sign(d["qty"])).sum())
        shares += float(d["qty"].abs().sum())
    return moved / shares


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

    Keys: ``realized_vol`` (annualized, sampled every ``every`` s), ``bipower_vol`` and
    ``jump_share`` (:func:`bipower_vol`), ``autocorr_lag1``
    (of sampled log returns), ``max_drawdown`` (fraction), ``price_change`` ($),
    ``hedge_volume`` (shares, all dealers), ``hedge_cost`` ($), ``n_rehedges``,
    ``dealer_pnl`` ($, mark-to-market at the close: the sum of ``<name>.pnl``, each equal
    to the last series row's), ``dealer_pnl_vol`` (its dispersion: std of the
    sampled P&L changes of all dealers, annualized like realized vol, $ per sqrt(year)),
    ``exogenous_volume`` (shares traded by non-dealers in market orders), the time shares of
    :func:`wall_metrics`, and per dealer ``<name>.pnl``, ``<name>.hedge_volume``,
    ``<name>.hedge_cost``, ``<name>.n_rehedges``, ``<name>.pnl_vol`` ($ per sqrt(year)) and
    whatever else the engine's ``dealers`` stats hold (``<name>.pnl_after_close``).
    """
    prices = series["price"].to_numpy()
    r = log_returns(prices)
    bv_vol, jump_share = bipower_vol(prices, every, year_seconds)
    out: dict[str, float] = {
        "realized_vol": realized_vol(prices, every, year_seconds),
        "bipower_vol": bv_vol,
        "jump_share": jump_share,
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
    pnl = _columns(series, pnl_cols)
    out["dealer_pnl_vol"] = _pnl_vol(pnl.sum(axis=1), every, year_seconds)
    for col, name in enumerate(pnl_cols):
        out[f"{name}_vol"] = _pnl_vol(pnl[:, col], every, year_seconds)  # <dealer>.pnl_vol
    out.update(wall_metrics(series))
    out.update(regime_metrics(series, every, year_seconds))
    out.update(flow_split(series, list(dealers)))
    out["exogenous_volume"] = _exogenous_volume(trades)
    return out


def _exogenous_volume(trades: pd.DataFrame) -> float:
    """Shares traded by non-dealers in the orders of ``trades`` (``kind`` other than
    ``dealer`` and the bookings): ``|qty|`` summed as pandas sums (numpy's order, NaN
    skipped), selected through the kind's categories when it is categorical (a text
    comparison per order costs a fraction of a millisecond a run)."""
    if not len(trades):
        return 0.0
    kind, qty = trades["kind"], trades["qty"].to_numpy()
    excluded = ["dealer", *BOOKING_KINDS]
    if isinstance(kind.dtype, pd.CategoricalDtype):  # a handful of categories
        cat = kind.array
        keep = np.array([c not in excluded for c in cat.categories], dtype=bool)
        exo = keep[cat.codes]
    else:
        exo = ~kind.isin(excluded).to_numpy()
    return float(np.nansum(np.abs(qty[exo])))  # pandas skips NaN: so does this


def _columns(series: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """``series[cols].to_numpy()``, rows by columns in row-major order, built one column at
    a time (pandas' multi-column selection costs a millisecond on a text column index,
    several per run)."""
    if not cols:
        return np.zeros((len(series), 0))
    return np.stack([series[c].to_numpy() for c in cols], axis=1)


def _pnl_vol(pnl: np.ndarray, every: float, year_seconds: float) -> float:
    """Std of the sampled changes of a P&L path ($), annualized: $ per sqrt(year)."""
    steps = np.diff(pnl)
    if steps.size < 2:
        return 0.0
    return float(np.std(steps, ddof=1) * math.sqrt(year_seconds / every))


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
    kinds, causes = episodes["kind"].tolist(), episodes["primary_cause"].tolist()
    breaks = [c for k, c in zip(kinds, causes, strict=True) if str(k).endswith("wall_break")]
    out = {
        "n_episodes": float(len(kinds)),
        "n_wall_breaks": float(len(breaks)),
        "n_flip_crossings": float(len(kinds) - len(breaks)),
    }
    for cause in (*CAUSES, "none"):
        out[f"episodes.{cause}"] = float(breaks.count(cause))
    return out


FLOW_PARTS = ("gamma", "charm", "vanna", "other")


def flow_split(series: pd.DataFrame, dealers: list[str]) -> dict[str, float]:
    """Gross hedge demand of all dealers (shares, summed ``|change|`` between samples) due
    to spot (``hedge_flow_gamma``), time (``_charm``), implied vol (``_vanna``) and the
    rest (``_other``: new lines, settlements, higher order)."""
    out = {}
    for part in FLOW_PARTS:
        cols = [f"{d}.flow_{part}" for d in dealers if f"{d}.flow_{part}" in series]
        gross = np.abs(np.diff(_columns(series, cols), axis=0)).sum() if cols else 0.0
        out[f"hedge_flow_{part}"] = float(gross)
    return out
