"""Real option chains: build the dealers' opening book from open interest with an explicit
positioning model (the CBOE delayed-quotes reader is :mod:`mmsim.cboe`).

The table (``read_cboe(path).table``, or any vendor's DataFrame given to
:func:`book_from_chain`) has one row per option line, columns:

- ``expiry``: expiration date (anything ``pandas.to_datetime`` reads); the option expires
  at 16:00 of that date (the SPX AM-settled monthlies too: the public GEX tools' habit).
- ``strike``: $; ``type``: ``"call"`` / ``"put"`` (``"C"`` / ``"P"`` accepted).
- ``open_interest``: contracts (missing = 0).
- ``iv``: the line's implied vol, annualized (0.20 = 20%); NaN or 0 = no usable IV.
- optional ``bid`` ($; a line with a zero bid has no usable IV), ``gamma`` (the vendor's
  own per-share gamma, used by :func:`chain_gamma_gex`), ``root`` (``SPX`` / ``SPXW``).

Time: the snapshot is taken at ``asof``; ``t = 0`` is the open (09:30) of the next session
(the same day if ``asof`` is before 09:30 on a business day). An expiry on the ``k``-th
session from there (``k = 1`` for that session's own close: 0DTE) is at ``k`` sessions
on the clock, ``T = k / 252`` years at ``t = 0`` (``convention="trading"``, mmsim's
trading time). ``convention="tools"`` is the public GEX scripts' one for comparison:
``T = numpy.busday_count(asof date, expiry date) / 262`` (an option expiring on the next
business day after a weekend snapshot then has ``T = 0`` and no gamma). Weekends are skipped;
exchange holidays only if given (``holidays=``).

Implied vol per line (``iv="smile"``, default): at each (expiry, strike) the mid of the call
and put IVs when both are usable and within ``MID_TOLERANCE`` of each other, otherwise
the out-of-the-money side's IV (puts below spot, calls above); strikes with neither get the
expiry's smile linearly interpolated in log-moneyness (flat beyond its ends). Both lines at
a strike then share one IV (put-call parity holds in the book). ``iv="own"`` keeps each
line's own IV where usable. In the book each line's vol is ``max(surface_iv + iv_offset,
floor)`` with ``iv_offset = line IV - surface_iv(K, S0)``, so at the start every line is
priced at its chain IV and a ``vol_shift`` moves them all.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from mmsim.book import OptionBook
from mmsim.cboe import Chain, ChainError, read_cboe
from mmsim.errors import ScenarioError
from mmsim.greeks import bsm_greeks
from mmsim.vol import Smile, VolSurface

__all__ = [
    "CONVENTIONS",
    "MID_TOLERANCE",
    "Chain",
    "ChainBook",
    "ChainError",
    "atm_iv",
    "book_from_chain",
    "chain_gamma_gex",
    "chain_lines",
    "chain_smile",
    "expiry_sessions",
    "normalize_table",
    "read_cboe",
    "roll_lines",
    "roll_sessions",
    "scenario_lines",
    "strike_iv",
]

CONVENTIONS = {"trading": 252.0, "tools": 262.0}
"""Year length in sessions per time convention (see the module docstring)."""
MID_TOLERANCE = 0.03
"""Call and put IVs at one strike are averaged when they differ by at most this (vol units)."""
GEX_PER_PCT = 0.01
SESSION_OPEN_HOUR = 9.5  # 09:30


# -- time -------------------------------------------------------------------------------------
def first_session(asof: datetime, holidays: Sequence = ()) -> np.datetime64:
    """Date of the session whose open is ``t = 0``: ``asof``'s date if it is a business day
    and ``asof`` is before 09:30, otherwise the next business day."""
    day = np.datetime64(asof.date(), "D")
    before_open = asof.hour + asof.minute / 60.0 < SESSION_OPEN_HOUR
    hol = list(holidays)
    if np.is_busday(day, holidays=hol):
        return day if before_open else np.busday_offset(day, 1, holidays=hol)
    return np.busday_offset(day, 0, roll="forward", holidays=hol)


def expiry_sessions(
    expiry, asof: datetime, convention: str = "trading", holidays: Sequence = ()
) -> np.ndarray:
    """Expiry of each line in sessions on the clock (``t = 0`` at the next session's open),
    per ``convention``: ``trading``: the ``k``-th session's 16:00 close is ``k``; ``tools``:
    business days from ``asof``'s date (the public scripts' count, ``T = k / 262``)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {sorted(CONVENTIONS)}, got {convention!r}")
    days = pd.to_datetime(np.asarray(expiry)).to_numpy().astype("datetime64[D]")
    hol = list(holidays)
    if convention == "tools":
        start = np.datetime64(asof.date(), "D")
        return np.busday_count(start, days, holidays=hol).astype(float)
    start = first_session(asof, hol)
    return (np.busday_count(start, days, holidays=hol) + 1).astype(float)


# -- implied vol --------------------------------------------------------------------------------
def normalize_table(df: pd.DataFrame) -> pd.DataFrame:
    """The documented columns, typed; raises ValueError naming a missing or bad column."""
    missing = [c for c in ("expiry", "strike", "type", "open_interest", "iv") if c not in df]
    if missing:
        raise ValueError(f"chain table lacks column(s) {missing}")
    out = df.copy()
    out["expiry"] = pd.to_datetime(out["expiry"]).dt.normalize()
    kind = out["type"].astype(str).str.strip().str.lower().replace({"c": "call", "p": "put"})
    if not kind.isin(["call", "put"]).all():
        raise ValueError(
            f"type must be call/put (or C/P), got {sorted(set(kind) - {'call', 'put'})}"
        )
    out["type"] = kind
    out["strike"] = out["strike"].astype(float)
    if not (out["strike"] > 0).all():
        raise ValueError("strike must be > 0 dollars")
    out["open_interest"] = out["open_interest"].astype(float).fillna(0.0)
    if (out["open_interest"] < 0).any():
        raise ValueError("open_interest must be >= 0 contracts")
    out["iv"] = out["iv"].astype(float)
    return out


def _usable(df: pd.DataFrame) -> np.ndarray:
    iv = df["iv"].to_numpy(dtype=float)
    ok = np.isfinite(iv) & (iv > 0.0) & (iv < 5.0)
    if "bid" in df:
        bid = df["bid"].to_numpy(dtype=float)
        ok &= ~(np.isfinite(bid) & (bid <= 0.0))  # a zero bid: no market, no IV
    return ok


def _quoted_smile(df: pd.DataFrame, spot: float, both: pd.DataFrame) -> np.ndarray:
    """Strike IVs from the quoted IV columns: the mid where call and put agree within
    ``MID_TOLERANCE``, else the out-of-the-money side, else the other one (NaN if neither)."""
    strikes = both.index.get_level_values(1).to_numpy(dtype=float)
    cv, pv = both["c"].to_numpy(), both["p"].to_numpy()
    agree = np.isfinite(cv) & np.isfinite(pv) & (np.abs(cv - pv) <= MID_TOLERANCE)
    otm = np.where(strikes < spot, pv, cv)
    other = np.where(strikes < spot, cv, pv)
    return np.where(agree, 0.5 * (cv + pv), np.where(np.isfinite(otm), otm, other))


def _black_iv(price, F, K, T, call, iters: int = 60) -> np.ndarray:
    """Black (r = q = 0) implied vol of ``price`` by bisection on [0.001, 5], vectorized;
    NaN where the price is outside the no-arbitrage range or ``T <= 0``."""
    lo, hi = np.full(price.shape, 1e-3), np.full(price.shape, 5.0)
    ok = (T > 0) & np.isfinite(price)
    T_ = np.where(ok, T, 1.0)
    p_lo = bsm_greeks(F, K, T_, lo, 0.0, 0.0, call).price
    p_hi = bsm_greeks(F, K, T_, hi, 0.0, 0.0, call).price
    ok &= (price > p_lo) & (price < p_hi)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        above = bsm_greeks(F, K, T_, mid, 0.0, 0.0, call).price > price
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return np.where(ok, 0.5 * (lo + hi), np.nan)


def _price_smile(df: pd.DataFrame, spot: float, years: np.ndarray) -> tuple[np.ndarray, dict]:
    """Strike IVs implied from mid prices (``bid``, ``ask``) of the out-of-the-money side, on
    each expiry's forward from put-call parity (``F = K + C - P`` at the 5 strikes where the
    call and put mids are closest; median), in the trading time ``years``. Returns the IVs
    per (expiry, strike) of ``df``'s unique keys (sorted) and the forward per expiry."""
    bid, ask = df["bid"].to_numpy(float), df["ask"].to_numpy(float)
    mid = np.where((bid > 0) & (ask >= bid), 0.5 * (bid + ask), np.nan)
    key = pd.MultiIndex.from_arrays([df["expiry"], df["strike"]])
    frame = pd.DataFrame({"mid": mid, "T": years, "call": (df["type"] == "call").to_numpy()}, key)
    c = frame[frame["call"]]["mid"].groupby(level=[0, 1]).mean()
    p = frame[~frame["call"]]["mid"].groupby(level=[0, 1]).mean()
    T = frame["T"].groupby(level=[0, 1]).first()
    both = pd.concat({"c": c, "p": p, "T": T}, axis=1).sort_index()
    K = both.index.get_level_values(1).to_numpy(float)
    gap = (both["c"] - both["p"]).to_numpy()
    fwd_k = pd.Series(K + gap, index=both.index)
    close = pd.Series(np.abs(gap), index=both.index).dropna()
    best = close.groupby(level=0, group_keys=False).nsmallest(5)
    forwards = fwd_k.loc[best.index].groupby(level=0).median()
    F = forwards.reindex(both.index.get_level_values(0)).to_numpy()
    F = np.where(np.isfinite(F), F, spot)
    use_call = K >= F
    price = np.where(use_call, both["c"].to_numpy(), both["p"].to_numpy())
    iv = _black_iv(price, F, K, both["T"].to_numpy(), use_call)
    return iv, {k: float(v) for k, v in forwards.items()}


def strike_iv(df: pd.DataFrame, spot: float, years: np.ndarray | None = None) -> np.ndarray:
    """One IV per row of the (normalized) table: its (expiry, strike)'s smile IV, annualized.

    With ``bid``/``ask`` columns and ``years`` (each row's time to expiry in years) the
    smile is implied from the out-of-the-money mid prices on each expiry's put-call-parity
    forward, so a stale spot in the vendor's IVs (calls rich, puts cheap) does not bend it;
    otherwise from the quoted IVs (mid where call and put agree, else the out-of-the-money
    side). Missing points are interpolated in log-moneyness within the expiry, flat beyond
    its ends. NaN only for an expiry without one usable point."""
    ok = _usable(df)
    iv = np.where(ok, df["iv"].to_numpy(dtype=float), np.nan)
    key = pd.MultiIndex.from_arrays([df["expiry"], df["strike"]])
    sides = pd.DataFrame({"iv": iv, "call": (df["type"] == "call").to_numpy()}, index=key)
    c = sides[sides["call"]]["iv"].groupby(level=[0, 1]).mean()
    p = sides[~sides["call"]]["iv"].groupby(level=[0, 1]).mean()
    both = pd.concat({"c": c, "p": p}, axis=1).reindex(key.unique()).sort_index()
    if years is not None and {"bid", "ask"} <= set(df.columns):
        value = _price_smile(df, spot, np.asarray(years, float))[0]
        quoted = _quoted_smile(df, spot, both)
        # an expiry without any two-sided quote keeps its quoted IVs
        codes, _ = pd.factorize(both.index.get_level_values(0))
        has = np.bincount(codes, weights=np.isfinite(value).astype(float)) > 0
        value = np.where(has[codes], value, quoted)
    else:
        value = _quoted_smile(df, spot, both)
    strikes = both.index.get_level_values(1).to_numpy(dtype=float)
    x = np.log(strikes / spot)
    exp_codes, _ = pd.factorize(both.index.get_level_values(0))
    filled = value.copy()
    for code in np.unique(exp_codes):  # one interpolation per expiry, not per row
        sel = exp_codes == code
        have = sel & np.isfinite(value)
        if have.any():
            filled[sel] = np.interp(x[sel], x[have], value[have])
    smile = pd.Series(filled, index=both.index)
    return smile.reindex(key).to_numpy()


def atm_iv(chain: Chain | pd.DataFrame, spot: float | None = None, expiry=None) -> float:
    """ATM implied vol, annualized: the smile of ``expiry`` (default: the nearest live one,
    the next session's 0DTE for a weekend snapshot) interpolated at the spot, in log-moneyness.

    ``chain``: a :class:`Chain` (its smile is built as :func:`chain_lines` does) or a lines
    table with final ``iv`` per line (:func:`chain_lines`' output; ``spot`` required)."""
    if isinstance(chain, Chain):
        spot = chain.spot if spot is None else spot
        df = normalize_table(chain.table)
        trading = expiry_sessions(df["expiry"], chain.asof, "trading")
        df = df.assign(iv=strike_iv(df, spot, trading / CONVENTIONS["trading"]))
        df = df[trading >= 1]
    else:
        df = chain.assign(expiry=pd.to_datetime(chain["expiry"]).dt.normalize())
    if spot is None:
        raise ValueError("atm_iv of a lines table needs spot=")
    when = df["expiry"].min() if expiry is None else pd.Timestamp(expiry).normalize()
    sub = df[(df["expiry"] == when) & np.isfinite(df["iv"])]
    if sub.empty:
        raise ValueError(f"no line with an IV expires on {when:%Y-%m-%d}")
    k = np.log(sub["strike"].to_numpy(float) / spot)
    order = np.argsort(k)
    return float(np.interp(0.0, k[order], sub["iv"].to_numpy(float)[order]))


# -- positioning ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fraction:
    """Dealers hold ``share`` x OI (signed, dealer's view: +1 long) of ``type`` lines with
    ``moneyness = K / S - 1`` in ``[low, high)``."""

    type: str
    moneyness: tuple[float, float]
    share: float


POSITIONING = ("naive", "customer_long", "fractions")


def dealer_share(
    df: pd.DataFrame, spot: float, positioning: str = "naive", fractions: Sequence = ()
) -> np.ndarray:
    """Signed share of each line's OI the dealers hold (their view): ``naive``: +1 calls, -1
    puts (the public GEX tools' and SqueezeMetrics' assumption); ``customer_long``: -1
    everything (customers bought it all); ``fractions``: the first matching bucket's share,
    0 where none matches (``fractions``: :class:`Fraction` or mappings with the same keys)."""
    is_call = (df["type"] == "call").to_numpy()
    if positioning == "naive":
        return np.where(is_call, 1.0, -1.0)
    if positioning == "customer_long":
        return np.full(is_call.size, -1.0)
    if positioning != "fractions":
        raise ValueError(f"positioning must be one of {POSITIONING}, got {positioning!r}")
    m = df["strike"].to_numpy() / spot - 1.0
    share = np.zeros(is_call.size)
    done = np.zeros(is_call.size, dtype=bool)
    for f in fractions:
        f = f if isinstance(f, Fraction) else Fraction(**dict(f))
        lo, hi = f.moneyness
        hit = ~done & (is_call == (f.type == "call")) & (m >= lo) & (m < hi)
        share[hit] = f.share
        done |= hit
    return share


def chain_lines(
    df: pd.DataFrame,
    *,
    spot: float,
    asof: datetime,
    positioning: str = "naive",
    fractions: Sequence = (),
    expiries_within: float | None = None,
    moneyness: tuple[float, float] | None = None,
    scale: float = 1.0,
    min_oi: float = 0.0,
    iv: str = "smile",
    convention: str = "trading",
    holidays: Sequence = (),
    expiries_from: float | None = None,
) -> pd.DataFrame:
    """The dealers' opening lines from a chain table (module docstring for the columns).

    Keeps live lines (expiring at a session >= 1 in the trading convention, >= 0 in the
    tools' one) with ``open_interest >= max(min_oi, > 0)``, within ``expiries_within``
    sessions (and at least ``expiries_from`` away: 2 drops the 0DTE), with ``moneyness =
    K / S - 1`` in ``[low, high]`` if given; duplicate (expiry, strike, type) rows (SPX and
    SPXW) are summed. Returns columns ``expiry``, ``sessions``, ``strike``, ``type``,
    ``is_call``, ``open_interest`` (contracts), ``iv`` (annualized) and ``qty`` (dealers'
    contracts, signed: ``share x OI x scale``), sorted by expiry, strike, type.
    """
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    if iv not in ("smile", "own"):
        raise ValueError(f"iv must be 'smile' or 'own', got {iv!r}")
    t = normalize_table(df)
    sessions = expiry_sessions(t["expiry"], asof, convention, holidays)
    trading = expiry_sessions(t["expiry"], asof, "trading", holidays)
    smile = strike_iv(t, spot, trading / CONVENTIONS["trading"])
    line_iv = smile if iv == "smile" else np.where(_usable(t), t["iv"].to_numpy(float), smile)
    t = t.assign(sessions=sessions, iv=line_iv)
    keep = (t["sessions"] >= (1 if convention == "trading" else 0)) & (t["open_interest"] > 0)
    keep &= t["open_interest"] >= min_oi
    if expiries_within is not None:
        keep &= t["sessions"] <= expiries_within
    if expiries_from is not None:
        keep &= t["sessions"] >= expiries_from
    if moneyness is not None:
        m = t["strike"] / spot - 1.0
        keep &= (m >= moneyness[0]) & (m <= moneyness[1])
    t = t[keep]
    if t["iv"].isna().any():
        bad = t.loc[t["iv"].isna(), "expiry"].iloc[0]
        raise ValueError(f"expiry {bad:%Y-%m-%d} has no usable implied vol")
    g = t.groupby(["expiry", "strike", "type"], sort=True, as_index=False).agg(
        sessions=("sessions", "first"),
        open_interest=("open_interest", "sum"),
        iv=("iv", "mean"),
    )
    g["is_call"] = g["type"] == "call"
    g["qty"] = dealer_share(g, spot, positioning, fractions) * g["open_interest"] * scale
    return g[["expiry", "sessions", "strike", "type", "is_call", "open_interest", "iv", "qty"]]


# -- the book ---------------------------------------------------------------------------------
def line_offsets(lines: pd.DataFrame, vol: VolSurface, spot: float) -> np.ndarray:
    """Each line's ``iv_offset`` (vol units): its chain IV minus the surface at ``spot`` ($)."""
    K = lines["strike"].to_numpy(float)
    return lines["iv"].to_numpy(float) - vol.iv(K, spot)


def chain_smile(lines: pd.DataFrame, vol: VolSurface, spot: float, session_seconds: float) -> Smile:
    """The run's vol model from the chain lines (:func:`chain_lines`): the surface plus each
    expiry's smile, with the exact offsets :func:`add_lines` books (same ``spot``, $), so a
    customer trade on a chain line is priced at that line's vol and one between chain
    strikes at the expiry's smile interpolated in log-strike (:class:`mmsim.vol.Smile`)."""
    return Smile(
        vol,
        lines["sessions"].to_numpy(float) * session_seconds,
        lines["strike"].to_numpy(float),
        lines["is_call"].to_numpy(bool),
        line_offsets(lines, vol, spot),
    )


def add_lines(
    book: OptionBook,
    lines: pd.DataFrame,
    vol: VolSurface,
    spot: float,
    session_seconds: float,
    holders: Sequence[int] = (0,),
    weights: Sequence[float] | None = None,
    visible: bool = True,
    multiplier: float = 100.0,
) -> None:
    """Add ``lines`` (from :func:`chain_lines`) to ``book`` in one vectorized call, each line's
    ``qty`` split over ``holders`` in proportion to ``weights`` (equal by default), with
    ``iv_offset = iv - vol.iv(K, spot)`` so each line starts at its chain IV."""
    h = np.asarray(holders, dtype=np.int64)
    w = np.ones(h.size) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != h.shape or not (w > 0).all():
        raise ValueError("weights must be positive, one per holder")
    w = w / w.sum()
    K = lines["strike"].to_numpy(float)
    offset = line_offsets(lines, vol, spot)
    n = K.size
    book.add_many(
        np.tile(K, h.size),
        np.tile(lines["sessions"].to_numpy(float) * session_seconds, h.size),
        np.tile(lines["is_call"].to_numpy(bool), h.size),
        np.outer(w, lines["qty"].to_numpy(float)).ravel(),
        np.repeat(h, n),
        visible,
        multiplier,
        np.tile(offset, h.size),
    )


@dataclass
class ChainBook:
    """An opening book built from a chain, ready to query at ``t = 0``.

    ``book`` holds one line per (expiry, strike, type) for holder 0 (the dealers);
    ``vol`` is flat at ``atm`` (skew 0), each line's own IV carried by its ``iv_offset``;
    ``lines`` is the table the book was built from (:func:`chain_lines`).
    """

    book: OptionBook
    vol: VolSurface
    spot: float
    asof: datetime
    convention: str
    lines: pd.DataFrame
    t: float = 0.0

    def gex(self, S: float | None = None) -> float:
        """Net dealer GEX at ``S`` (default the spot), $ per 1% move."""
        return self.book.gex_at(self.spot if S is None else S, self.t, self.vol)

    def profile(self, spots) -> np.ndarray:
        """Net GEX re-priced at each spot (each line at its own IV), $ per 1% move."""
        return self.book.gex_profile(spots, self.t, self.vol)

    def zero_gamma(self, lo: float = 0.8, hi: float = 1.2, points: int = 401) -> list[float]:
        """Every zero crossing of the profile over ``[lo, hi] x spot``, $, linearly
        interpolated."""
        grid = self.spot * np.linspace(lo, hi, points)
        return zero_crossings(grid, self.profile(grid))

    def walls(self) -> tuple[float | None, float | None]:
        """Call and put walls at the spot (largest |call| / |put| GEX strike), $."""
        return self.book.walls(self.spot, self.t, self.vol)

    def by_strike(self) -> pd.DataFrame:
        """GEX by strike at the spot: ``strike, call_gex, put_gex, net_gex``, $ per 1%."""
        return self.book.gex_by_strike(self.spot, self.t, self.vol)


def zero_crossings(grid: np.ndarray, profile: np.ndarray) -> list[float]:
    """All sign changes of ``profile`` over ``grid``, linearly interpolated, $."""
    nz = np.flatnonzero(profile != 0.0)
    a, b = nz[:-1], nz[1:]
    ch = np.sign(profile[a]) != np.sign(profile[b])
    a, b = a[ch], b[ch]
    x = grid[a] - profile[a] * (grid[b] - grid[a]) / (profile[b] - profile[a])
    return [float(v) for v in x]


def book_from_chain(
    df: pd.DataFrame | Chain,
    positioning: str = "naive",
    *,
    spot: float | None = None,
    asof: datetime | None = None,
    fractions: Sequence = (),
    expiries_within: float | None = None,
    moneyness: tuple[float, float] | None = None,
    scale: float = 1.0,
    min_oi: float = 0.0,
    iv: str = "smile",
    convention: str = "trading",
    holidays: Sequence = (),
    session_seconds: float = 23_400.0,
    floor: float = 0.01,
) -> ChainBook:
    """Build the dealers' opening book from a chain: a :class:`Chain` (``read_cboe``) or a
    DataFrame with columns ``expiry, strike, type, open_interest, iv`` (module docstring),
    then ``spot`` ($) and ``asof`` (snapshot time) are required.

    ``positioning``: ``naive`` | ``customer_long`` | ``fractions`` (:func:`dealer_share`);
    filters and ``iv`` as in :func:`chain_lines`; ``convention``: ``trading`` (252 sessions a
    year, mmsim's clock) or ``tools`` (business days / 262, the public GEX scripts). Example::

        cb = mmsim.book_from_chain(mmsim.chains.read_cboe("spx.csv"))
        cb.gex() / 1e9, cb.zero_gamma(), cb.walls()
    """
    if isinstance(df, Chain):
        spot = df.spot if spot is None else spot
        asof = df.asof if asof is None else asof
        df = df.table
    if spot is None or asof is None:
        raise ValueError("a DataFrame chain needs spot= ($) and asof= (snapshot datetime)")
    lines = chain_lines(
        df,
        spot=spot,
        asof=asof,
        positioning=positioning,
        fractions=fractions,
        expiries_within=expiries_within,
        moneyness=moneyness,
        scale=scale,
        min_oi=min_oi,
        iv=iv,
        convention=convention,
        holidays=holidays,
    )
    atm = atm_iv(lines, spot) if len(lines) else 0.2
    vol = VolSurface(atm=atm, skew=0.0, floor=floor)
    year = CONVENTIONS[convention] * session_seconds
    book = OptionBook(1, year_seconds=year, capacity=max(len(lines), 1))
    add_lines(book, lines, vol, spot, session_seconds)
    return ChainBook(book, vol, float(spot), asof, convention, lines)


def chain_gamma_gex(df: pd.DataFrame, spot: float, positioning: str = "naive") -> pd.DataFrame:
    """GEX of each line from the vendor's own ``gamma`` column (per share):
    ``share x OI x 100 x S**2 x 0.01 x gamma`` ($ per 1% move), the public tools' total at
    spot. Returns the table with a ``gex`` column."""
    t = normalize_table(df)
    if "gamma" not in t:
        raise ValueError("chain table has no gamma column")
    share = dealer_share(t, spot, positioning)
    gamma = t["gamma"].to_numpy(float)
    gex = share * t["open_interest"].to_numpy() * 100.0 * spot**2 * GEX_PER_PCT
    return t.assign(gex=gex * np.nan_to_num(gamma))


def resolve_book_block(data: dict, base: Path | None, source: str) -> None:
    """Scenario loading hook: make ``book.chain`` absolute (relative to the scenario file's
    directory, or the working directory for mappings), read it (so a malformed chain fails
    at load time) and, unless ``market.S0`` is given, set ``market.S0`` to the chain's spot.
    Raises :class:`ScenarioError` / :class:`ChainError`."""
    block = data.get("book")
    if not isinstance(block, dict) or not isinstance(block.get("chain"), str | os.PathLike):
        return
    path = Path(block["chain"])
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    if not path.is_file():
        raise ScenarioError(f"no such chain file {str(path)!r}", source=source, field="book.chain")
    block["chain"] = str(path.resolve())
    chain = read_cboe(path)  # a malformed chain fails at load time (validate), not mid-build
    market = data.setdefault("market", {})
    if isinstance(market, dict) and "S0" not in market:
        market["S0"] = chain.spot


def scenario_lines(cfg, session_seconds: float = 23_400.0, *, rolled: bool = True) -> pd.DataFrame:
    """The lines of a scenario's ``book`` block (:class:`mmsim.schema.BookFromChain`, chain
    path already resolved by the loader): :func:`chain_lines` in trading time, the smile
    and moneyness relative to the chain's own spot; then, unless ``rolled`` is false,
    the lines expiring at a session listed in ``cfg.roll`` moved a session later
    (:func:`roll_lines`)."""
    chain = read_cboe(cfg.chain)
    try:
        lines = chain_lines(
            chain.table,
            spot=chain.spot,
            asof=chain.asof,
            positioning=cfg.positioning,
            fractions=[f.model_dump() for f in cfg.fractions],
            expiries_within=cfg.expiries_within,
            expiries_from=cfg.expiries_from,
            moneyness=cfg.moneyness,
            scale=cfg.scale,
            min_oi=cfg.min_oi,
            iv=cfg.iv,
        )
    except ValueError as err:
        raise ChainError(str(err), source=cfg.chain) from None
    return roll_lines(lines, getattr(cfg, "roll", ())) if rolled else lines


def roll_lines(lines: pd.DataFrame, days: Sequence[float]) -> pd.DataFrame:
    """``lines`` (:func:`chain_lines`) with those expiring at a session in ``days`` (sessions
    from t = 0, as ``lines["sessions"]``) expiring one session later: the counterfactual
    "the expiry were a session later" of ``mmsim explain``. The sessions apply in turn,
    each to the book as the ones before it left it: ``[1, 2]`` moves the session-1 lines
    to 2 and then, with the session-2 lines, to 3 (explain rolling the expiry at 2 of a
    scenario already rolled at 1). Each line keeps its strike, contracts and implied vol
    (its smile offset); a rolled line may join lines of the next expiry at its strike
    (the book sums them). The ``expiry`` dates are unchanged."""
    if not len(days):
        return lines
    sessions = roll_sessions(lines["sessions"].to_numpy(float), days)
    return lines.assign(sessions=sessions)


def roll_sessions(sessions: np.ndarray, days: Sequence[float]) -> np.ndarray:
    """``sessions`` (from t = 0) with those at each of ``days`` in turn moved one later (a
    new array; :func:`roll_lines`)."""
    sessions = np.array(sessions, dtype=float)
    for day in days:
        sessions[np.abs(sessions - day) <= 1e-9] += 1.0
    return sessions
