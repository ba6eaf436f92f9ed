"""``mmsim gex --chain FILE``: GEX levels of a real chain, printed and plotted the way the
public GEX tools do, next to mmsim's own numbers.

Three estimates of the dealers' GEX (naive positioning: long calls, short puts; $ per 1%
move, ``OI x 100 x S**2 x 0.01 x gamma``):

- **chain gamma**: the vendor's own Gamma columns (CBOE's model and clock);
- **tools**: each row's quoted IV, ``T = business days from the snapshot date / 262`` to a
  16:00 expiry, r = q = 0 (the public scripts); a line with ``T = 0`` (the next session's
  expiry after a weekend snapshot) has no gamma. The scripts' 1-day floor is printed too;
- **mmsim**: the opening book of :func:`mmsim.chains.book_from_chain`: trading time (t = 0
  at the next open, 252 sessions a year) and the forward-implied smile per expiry.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mmsim.chains import (
    Chain,
    ChainBook,
    ChainError,
    atm_iv,
    book_from_chain,
    chain_gamma_gex,
    dealer_share,
    normalize_table,
    read_cboe,
    zero_crossings,
)
from mmsim.greeks import bsm_greeks

__all__ = ["ChainLevels", "chain_levels", "format_levels", "save_chain_plots", "tools_profile"]

GRID = (0.8, 1.2)  # profile range, fractions of spot
TOOLS_YEAR = 262.0


def tools_years(df: pd.DataFrame, asof, floor_one_day: bool = False) -> np.ndarray:
    """The public scripts' time to expiry, years: ``busday_count(asof date, expiry) / 262``
    (with ``floor_one_day``, a count of 0 becomes 1, as one script does for 0DTE)."""
    days = pd.to_datetime(df["expiry"]).to_numpy().astype("datetime64[D]")
    bd = np.busday_count(np.datetime64(asof.date(), "D"), days).astype(float)
    if floor_one_day:
        bd = np.where(bd == 0, 1.0, bd)
    return bd / TOOLS_YEAR


def tools_profile(
    df: pd.DataFrame, asof, spots, *, floor_one_day: bool = False, positioning: str = "naive"
) -> np.ndarray:
    """Net GEX at each hypothetical spot the public scripts' way ($ per 1%): each row's own
    quoted IV, :func:`tools_years`, r = q = 0; rows with IV or T of 0 count nothing."""
    t = normalize_table(df)
    spots = np.atleast_1d(np.asarray(spots, float))
    T = tools_years(t, asof, floor_one_day)
    iv = np.nan_to_num(t["iv"].to_numpy(float))
    live = (T > 0) & (iv > 0) & (t["open_interest"].to_numpy() > 0)
    t, T, iv = t[live], T[live], iv[live]
    w = dealer_share(t, 1.0, positioning) * t["open_interest"].to_numpy() * 100.0
    K, call = t["strike"].to_numpy(float), (t["type"] == "call").to_numpy()
    out = np.empty(spots.size)
    for j, S in enumerate(spots):  # one vectorized pass over the lines per spot
        gamma = bsm_greeks(S, K, T, iv, 0.0, 0.0, call).gamma
        out[j] = float(w @ gamma) * S * S * 0.01
    return out


def _walls(df: pd.DataFrame, gex: np.ndarray) -> tuple[float, float]:
    """Strikes of the largest call GEX and the largest |put GEX| (summed over expiries)."""
    by = pd.DataFrame({"strike": df["strike"], "call": df["type"] == "call", "gex": gex})
    calls = by[by["call"]].groupby("strike")["gex"].sum()
    puts = by[~by["call"]].groupby("strike")["gex"].sum().abs()
    return float(calls.idxmax()), float(puts.idxmax())


def _third_friday(d: pd.Series) -> pd.Series:
    return (d.dt.day_of_week == 4) & d.dt.day.between(15, 21)


@dataclass
class ChainLevels:
    """Everything ``mmsim gex --chain`` prints and plots (GEX in $ per 1% move, levels $)."""

    chain: Chain
    by_strike: pd.DataFrame  # strike, call_gex, put_gex (chain gamma)
    grid: np.ndarray
    totals: dict[str, float]  # estimate -> GEX at spot
    zeros: dict[str, list[float]]  # estimate -> zero-gamma levels on the grid
    walls: dict[str, tuple[float, float]]  # estimate -> (call wall, put wall)
    profiles: dict[str, np.ndarray] = field(default_factory=dict)
    next_expiry: pd.Timestamp | None = None
    next_monthly: pd.Timestamp | None = None
    atm_iv: float = float("nan")
    book: ChainBook | None = None
    seconds: float = 0.0


def chain_levels(chain: Chain, points: int = 121) -> ChainLevels:
    """Totals, zero-gamma levels, walls and profiles of ``chain`` (naive positioning)."""
    t0 = time.perf_counter()
    S, asof = chain.spot, chain.asof
    table = normalize_table(chain.table)
    grid = S * np.linspace(*GRID, points)
    g = chain_gamma_gex(table, S)
    strikes = g.assign(call=g["type"] == "call")
    by = (
        strikes.pivot_table(index="strike", columns="call", values="gex", aggfunc="sum")
        .fillna(0.0)
        .rename(columns={True: "call_gex", False: "put_gex"})
        .reset_index()
    )
    by.columns.name = None
    totals = {"chain gamma": float(g["gex"].sum())}
    walls = {"chain gamma": _walls(g, g["gex"].to_numpy())}
    zeros: dict[str, list[float]] = {}
    profiles: dict[str, np.ndarray] = {}
    for label, floor in (("tools", False), ("tools, 1-day floor", True)):
        prof = tools_profile(table, asof, grid, floor_one_day=floor)
        profiles[label] = prof
        totals[label] = float(tools_profile(table, asof, [S], floor_one_day=floor)[0])
        zeros[label] = zero_crossings(grid, prof)
    T = tools_years(table, asof)
    live = (T > 0) & (np.nan_to_num(table["iv"].to_numpy(float)) > 0)
    sub = table[live]
    gam = bsm_greeks(S, sub["strike"].to_numpy(float), T[live], sub["iv"].to_numpy(float),
                     0.0, 0.0, (sub["type"] == "call").to_numpy()).gamma  # fmt: skip
    w = dealer_share(sub, S, "naive") * sub["open_interest"].to_numpy() * 100.0 * S * S * 0.01
    walls["tools"] = _walls(sub, w * gam)
    cb = book_from_chain(chain)
    profiles["mmsim"] = cb.profile(grid)
    totals["mmsim"] = cb.gex()
    zeros["mmsim"] = zero_crossings(grid, profiles["mmsim"])
    cw, pw = cb.walls()
    walls["mmsim"] = (cw, pw)
    expiries = pd.Series(sorted(cb.lines["expiry"].unique()))
    nxt = expiries.iloc[0] if len(expiries) else None
    monthly = expiries[_third_friday(expiries)]
    nxt_m = monthly.iloc[0] if len(monthly) else None
    for label, drop in (("mmsim ex next expiry", nxt), ("mmsim ex next monthly", nxt_m)):
        if drop is None:
            continue
        kept = table[table["expiry"] != drop]
        profiles[label] = book_from_chain(kept, spot=S, asof=asof).profile(grid)
        zeros[label] = zero_crossings(grid, profiles[label])
    return ChainLevels(
        chain=chain,
        by_strike=by,
        grid=grid,
        totals=totals,
        zeros=zeros,
        walls=walls,
        profiles=profiles,
        next_expiry=nxt,
        next_monthly=nxt_m,
        atm_iv=atm_iv(chain),
        book=cb,
        seconds=time.perf_counter() - t0,
    )


def format_levels(lv: ChainLevels) -> str:
    """The printed summary."""
    c, cb = lv.chain, lv.book
    n_exp = c.table["expiry"].nunique()
    lines = [
        f"{c.name or 'chain'}: {c.source}",
        f"spot {c.spot:,.2f}; snapshot {c.asof:%Y-%m-%d %H:%M}; {n_exp} expiries; "
        f"{len(c.table):,} lines ({int((c.table['open_interest'] > 0).sum()):,} with OI)",
        f"ATM IV (next expiry {lv.next_expiry:%Y-%m-%d}, forward-implied): {lv.atm_iv:.1%}",
        "positioning: naive (dealers long every call's OI, short every put's)",
        "",
        f"{'GEX at spot, $bn per 1% move':<46}{'total':>8}   zero gamma      walls (call / put)",
    ]
    desc = {
        "chain gamma": "chain's own Gamma columns (CBOE greeks)",
        "tools": "quoted IV, business days / 262 (tools)",
        "tools, 1-day floor": "  same, 0 business days -> 1 day",
        "mmsim": "mmsim: trading time /252, smile IV",
    }
    for key, text in desc.items():
        z = lv.zeros.get(key)
        zs = "-" if z is None else (", ".join(f"{x:,.0f}" for x in z) or "none")
        w = lv.walls.get(key)
        ws = "-" if w is None else f"{w[0]:,.0f} / {w[1]:,.0f}"
        lines.append(f"  {text:<44}{lv.totals[key] / 1e9:>8.2f}   {zs:<15} {ws}")
    for key in ("mmsim ex next expiry", "mmsim ex next monthly"):
        if key in lv.zeros:
            when = lv.next_expiry if "expiry" in key else lv.next_monthly
            at_spot = np.interp(c.spot, lv.grid, lv.profiles[key]) / 1e9
            zs = ", ".join(f"{x:,.0f}" for x in lv.zeros[key]) or "none"
            lines.append(f"  {key + f' ({when:%m-%d})':<44}{at_spot:>8.2f}   {zs}")
    if cb is not None:
        lines += [
            "",
            "mmsim differs from chain gamma because its clock starts at Monday's open (the",
            "0DTE has one session, 1/252 y, left) and it prices every line on one smile per",
            "expiry implied from mid prices on the put-call-parity forward; CBOE's own greeks",
            "use calendar time and its quoted IVs (calls rich, puts cheap here: the parity",
            "forward is a few points below the printed spot).",
            f"computed in {lv.seconds:.2f} s",
        ]
    return "\n".join(lines)


# -- plots ------------------------------------------------------------------------------------
def save_chain_plots(lv: ChainLevels, stem: str | os.PathLike) -> list[Path]:
    """Two PNGs like the public tools': ``<stem>-by-strike.png`` (GEX by strike from the
    chain's Gamma, calls and puts split, over 0.8-1.2 S) and ``<stem>-profile.png`` (the GEX
    profile over 0.8-1.2 S: all expiries, without the next expiry, without the next monthly;
    spot, zero gamma and walls marked)."""
    from mmsim.plotkit import figure, save

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    S = lv.chain.spot
    lo, hi = lv.grid[0], lv.grid[-1]
    by = lv.by_strike[(lv.by_strike["strike"] >= lo) & (lv.by_strike["strike"] <= hi)]
    paths = []

    fig, [[ax]] = figure(size=(11, 5.5))
    width = max(np.min(np.diff(by["strike"])) if len(by) > 1 else 5.0, 2.0) * 0.9
    ax.bar(by["strike"], by["call_gex"] / 1e9, width=width, color="tab:green", label="calls")
    ax.bar(by["strike"], by["put_gex"] / 1e9, width=width, color="tab:red", label="puts")
    ax.axvline(S, color="k", lw=1, label=f"spot {S:,.0f}")
    cw, pw = lv.walls["chain gamma"]
    ax.axvline(cw, color="tab:green", ls=":", lw=1.2, label=f"call wall {cw:,.0f}")
    ax.axvline(pw, color="tab:red", ls=":", lw=1.2, label=f"put wall {pw:,.0f}")
    total = lv.totals["chain gamma"] / 1e9
    ax.set_title(
        f"{lv.chain.name}: GEX by strike, chain Gamma, all expiries "
        f"(total {total:.2f} $bn per 1%), {lv.chain.asof:%Y-%m-%d}"
    )
    ax.set_xlabel("strike ($)")
    ax.set_ylabel("GEX ($bn per 1% move)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    paths.append(stem.with_name(stem.name + "-by-strike.png"))
    save(fig, paths[-1])

    fig, [[ax]] = figure(size=(11, 5.5))
    styles = {
        "tools": ("tab:blue", "-", "all expiries (tools: quoted IV, bd/262)"),
        "mmsim": ("tab:purple", "-", "all expiries (mmsim: smile, trading time)"),
        "mmsim ex next expiry": ("tab:orange", "--", "mmsim without the next expiry"),
        "mmsim ex next monthly": ("tab:brown", ":", "mmsim without the next monthly"),
    }
    for key, (color, ls, label) in styles.items():
        if key in lv.profiles:
            ax.plot(lv.grid, lv.profiles[key] / 1e9, color=color, ls=ls, lw=1.6, label=label)
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(S, color="k", lw=1, label=f"spot {S:,.0f}")
    for key, color in (("tools", "tab:blue"), ("mmsim", "tab:purple")):
        for z in lv.zeros.get(key, []):
            ax.axvline(z, color=color, ls="-.", lw=1, label=f"zero gamma {z:,.0f} ({key})")
    cw, pw = lv.walls["chain gamma"]
    ax.axvline(cw, color="tab:green", ls=":", lw=1.2, label=f"call wall {cw:,.0f}")
    ax.axvline(pw, color="tab:red", ls=":", lw=1.2, label=f"put wall {pw:,.0f}")
    ax.fill_between(lv.grid, 0, lv.profiles["mmsim"] / 1e9, where=lv.profiles["mmsim"] < 0,
                    color="tab:red", alpha=0.08)  # fmt: skip
    ax.fill_between(lv.grid, 0, lv.profiles["mmsim"] / 1e9, where=lv.profiles["mmsim"] > 0,
                    color="tab:green", alpha=0.08)  # fmt: skip
    ax.set_title(f"{lv.chain.name}: GEX profile (dealers' net GEX if spot moved there)")
    ax.set_xlabel("spot ($)")
    ax.set_ylabel("GEX ($bn per 1% move)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    paths.append(stem.with_name(stem.name + "-profile.png"))
    save(fig, paths[-1])
    return paths


def gex_chain_main(path: str, output: str | None, plot: bool) -> int:
    """The ``mmsim gex --chain`` command body: read, print, plot; returns the exit status."""
    t0 = time.perf_counter()
    chain = read_cboe(path)
    try:
        lv = chain_levels(chain)
    except ValueError as err:  # e.g. an expiry without a single usable IV
        raise ChainError(str(err), source=path) from None
    print(format_levels(lv))
    if plot:
        stem = Path(output) if output else Path("runs") / f"{Path(path).stem}-gex"
        for p in save_chain_plots(lv, stem.with_suffix("") if stem.suffix == ".png" else stem):
            print(p)
    print(f"total wall time {time.perf_counter() - t0:.2f} s")
    return 0
