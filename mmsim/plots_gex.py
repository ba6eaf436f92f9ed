"""GEX figures: profiles over spot, GEX by strike (calls and puts, true vs visible, at the
open and the close) and the strike x time heatmap; the book rebuilt at any time of a run.

Units: GEX in $M per 1% move (``gamma * OI * multiplier * S**2 * 0.01 / 1e6``), strikes
and spot in $, time on the session clock (:class:`mmsim.plotkit.SessionClock`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mmsim.plotkit import VIEW, SessionClock, figure, save, styled, thin
from mmsim.result import Result

__all__ = [
    "book_at",
    "books_over",
    "plot_gex_heatmap",
    "plot_gex_profile",
    "plot_gex_strikes",
    "plot_gex_views",
    "save_gex_plot",
    "wants_heatmap",
]

_PROFILE = {"true": VIEW["true"], "visible": VIEW["visible"]}
_SIDES = {"call": "#1b7837", "put": "#c51b7d"}  # call GEX vs put GEX bars


def books_over(
    result: Result, times: Sequence[float]
) -> Iterator[tuple[float, object, float, object]]:
    """``(t, book, S, vol)`` at each of ``times`` (s, ascending), rebuilt without replaying
    the run: the opening lines, ``positions`` events and skew shifts up to ``t``, and the
    dealers' side (``-qty``) of every customer option trade at or before ``t``; spot ($)
    and ATM vol from the last series sample at or before ``t``. One book is built once and
    grown in time order (the same objects are yielded each time: read, do not keep).
    Expired lines stay but contribute nothing."""
    from mmsim.engine import Simulation

    sc = result.scenario
    # the opening book only: one sample for the recorder, not a buffer for the whole run
    record = sc.record.model_copy(update={"every": sc.clock.duration})
    sim = Simulation(sc.model_copy(update={"record": record}), result.entropy)
    book, vol = sim.book, sim.vol
    multiplier = {n: c.multiplier for n, c in zip(sim.segment_names, sc.customers, strict=True)}
    events = sorted(sc.events, key=lambda e: e.at)
    ot = result.option_trades.sort_values("t", kind="stable")
    trades = list(ot.itertuples(index=False))
    s_t, s = result.series["t"].to_numpy(), result.series
    e_i = o_i = 0
    for t in times:
        while e_i < len(events) and events[e_i].at <= t:
            ev = events[e_i]
            vol.skew += ev.d_skew if ev.kind == "vol_shift" else 0.0  # the level: series iv
            for p in ev.positions if ev.kind == "positions" else ():
                kw = {"visible": p.visible, "multiplier": p.multiplier}
                expiry = p.expiry_days * sc.clock.session_seconds
                book.add(p.strike, expiry, p.type == "call", p.qty, ev.dealer, **kw)
            e_i += 1
        while o_i < len(trades) and trades[o_i].t <= t:
            tr = trades[o_i]
            kw = {"visible": bool(tr.visible), "multiplier": multiplier.get(tr.segment, 100.0)}
            book.add(tr.strike, tr.expiry, bool(tr.is_call), -tr.qty, int(tr.dealer), **kw)
            o_i += 1
        k = max(int(np.searchsorted(s_t, t, side="right")) - 1, 0)
        vol.shift = float(s["iv"].iloc[k]) - vol.atm
        yield float(t), book, float(s["price"].iloc[k]), vol


def book_at(result: Result, t: float):
    """``(book, S, vol)`` at time ``t`` (s): :func:`books_over` at one time."""
    _, book, S, vol = next(books_over(result, [t]))
    return book, S, vol


def _draw_profiles(ax, book, S: float, t: float, vol, grid: np.ndarray) -> None:
    """Both views' GEX profiles over ``grid`` ($M per 1%), their flips (dashed) and
    walls (^ call, v put, on the zero line), and the spot."""
    for view, color in _PROFILE.items():
        profile = book.gex_profile(grid, t, vol, view) / 1e6
        ax.plot(grid, profile, color=color, label=f"{view} profile")
        flip = book.flip(S, t, vol, view)
        if flip is not None and grid[0] <= flip <= grid[-1]:
            ax.axvline(flip, color=color, ls="--", lw=0.9, label=f"{view} flip {flip:.2f}")
        for wall, mark in zip(book.walls(S, t, vol, view), ("^", "v"), strict=True):
            if wall is not None and grid[0] <= wall <= grid[-1]:
                ax.plot([wall], [0.0], marker=mark, color=color, ms=8, ls="none")
    ax.axvline(S, color="black", lw=1, label=f"spot {S:.2f}")
    ax.axhline(0.0, color="grey", lw=0.5)


def _when(result: Result, t: float) -> str:
    clock = SessionClock(result.scenario.clock.session_seconds, result.scenario.clock.duration)
    return clock.text(clock.x(t))


@styled
def plot_gex_profile(result: Result, times=None) -> Figure:
    """True and visible GEX profiles ($M per 1% move) over hypothetical spots at ``times``
    (s; default the open, mid-run and the close), with each view's flip and walls."""
    end = float(result.series["t"].iloc[-1])
    times = sorted([0.0, end / 2, end] if times is None else times)
    fig, axes = figure(1, len(times), size=(4.3 * len(times), 4.3), sharey=True)
    for ax, (t, book, S, vol) in zip(axes[0], books_over(result, times), strict=True):
        _draw_profiles(ax, book, S, t, vol, S * np.linspace(0.9, 1.1, 161))
        title = f"{_when(result, t)} (t = {t / 3600:.2f} h): spot {S:.2f}, IV {vol.level:.1%}"
        ax.set(title=title, xlabel="hypothetical spot ($)  (^ call wall, v put wall)")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2, fontsize=7)
        ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(6, prune="both"))
    axes[0, 0].set_ylabel("net dealer GEX ($M per 1% move)")
    fig.suptitle(f"{result.scenario.name}: dealers' GEX profile, true book vs visible view")
    return fig


def _strike_bars(ax, book, S: float, t: float, vol) -> float:
    """Call and put GEX per strike ($M per 1%), true (solid) beside visible (hatched);
    walls (^ call, v put) and flip (dashed) of each view, spot (black). Returns the
    flips as text ("true 97.24, visible none")."""
    tables = {v: book.gex_by_strike(S, t, vol, v) for v in ("true", "visible")}
    strikes = np.unique(np.concatenate([tb["strike"].to_numpy() for tb in tables.values()]))
    gap = np.diff(strikes).min() if strikes.size > 1 else max(0.01 * S, 1.0)
    width = 0.2 * gap
    largest = 0.0
    for j, (view, table) in enumerate(tables.items()):
        offset = (j - 0.5) * width  # true left of the strike, visible right
        hatch = None if view == "true" else "///"
        for side, color in _SIDES.items():
            gex = table[f"{side}_gex"].to_numpy() / 1e6
            kw = {"color": color, "alpha": 0.85 if view == "true" else 0.45, "hatch": hatch}
            ax.bar(table["strike"] + offset, gex, width, label=f"{side} GEX, {view}", **kw)
            largest = max(largest, float(np.abs(gex).max(initial=0.0)))
    y = ax.get_ylim()
    flips = []
    for view, color in _PROFILE.items():
        call_wall, put_wall = book.walls(S, t, vol, view)
        for wall, mark in ((call_wall, "^"), (put_wall, "v")):
            if wall is not None:
                ax.plot([wall], [0.0], marker=mark, ms=9, color=color, ls="none", mec="white")
        flip = book.flip(S, t, vol, view)
        flips.append(f"{view} {'none' if flip is None else f'{flip:.2f}'}")
        if flip is not None:
            ax.axvline(flip, color=color, ls="--", lw=1.0, label=f"flip ({view})")
    ax.set_ylim(y)
    ax.axvline(S, color="black", lw=1.2, label="spot")
    ax.axhline(0.0, color="grey", lw=0.6)
    if strikes.size:
        ax.set_xlim(min(strikes.min(), S) - 2 * gap, max(strikes.max(), S) + 2 * gap)
    return ", ".join(flips)


@styled
def plot_gex_strikes(result: Result) -> Figure:
    """GEX by strike at the open and at the close ($M per 1% move): calls and puts split,
    the true book (solid) beside the exchange-visible view (hatched), each view's walls
    (^ call, v put) and flip (dashed), and the spot."""
    end = float(result.series["t"].iloc[-1])
    fig, axes = figure(1, 2, size=(12, 4.8), sharey=True)
    for ax, (t, book, S, vol), name in zip(
        axes[0], books_over(result, [0.0, end]), ("open", "close"), strict=True
    ):
        flips = _strike_bars(ax, book, S, t, vol)
        title = f"{name} ({_when(result, t)}): spot {S:.2f}, IV {vol.level:.1%}\nflip: {flips}"
        ax.set_title(title, fontsize=10)
        ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(7, prune="both"))
        ax.set_xlabel("strike ($)  (^ call wall, v put wall; solid true, hatched visible)")
    axes[0, 0].set_ylabel("dealer GEX by strike ($M per 1% move)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    more = axes[0, 1].get_legend_handles_labels()
    for h, label in zip(*more, strict=True):
        if label not in labels:
            handles.append(h)
            labels.append(label)
    fig.legend(handles, labels, loc="outside lower center", ncols=5)
    fig.suptitle(f"{result.scenario.name}: dealers' GEX by strike, open vs close")
    return fig


def wants_heatmap(result: Result) -> bool:
    """A strike x time heatmap is worth drawing for multi-day runs and runs in which some
    option expires (0DTE)."""
    if result.scenario.clock.days > 1 + 1e-9:
        return True
    return bool(result.expiries())  # a chain book's 0DTE lines too


def _strike_rows(ax, edges_x: np.ndarray, strikes: np.ndarray, grid: pd.DataFrame):
    """One horizontal band per strike (half-height: half the strike spacing, at most
    0.25% of the strike, so sparse strikes do not look like price ranges); blank between."""
    gaps = np.diff(strikes)
    half = np.minimum(0.5 * np.minimum(np.r_[gaps, np.inf], np.r_[np.inf, gaps]), 0.0025 * strikes)
    half = np.where(np.isfinite(half), half, 0.0025 * strikes)
    lo, hi = strikes - half, strikes + half
    edges_y = np.unique(np.concatenate([lo, hi]))
    values = np.full((edges_y.size - 1, edges_x.size - 1), np.nan)
    for j, (a, b) in enumerate(zip(lo, hi, strict=True)):
        rows = (edges_y[:-1] >= a - 1e-12) & (edges_y[1:] <= b + 1e-12)
        values[rows] = grid.iloc[:, j].to_numpy()
    return ax.pcolormesh(edges_x, edges_y, np.ma.masked_invalid(values), cmap="RdBu")


@styled
def plot_gex_heatmap(result: Result, n_times: int = 60) -> Figure:
    """Dealer GEX per strike over time ($M per 1% move, true book left, visible view
    right; blue long gamma, red short), with the price path on top: the picture GEX
    dashboards draw. ``n_times`` snapshots, evenly spaced over the run."""
    sc = result.scenario
    end = float(result.series["t"].iloc[-1])
    times = np.linspace(0.0, end, n_times)
    snaps = {"true": [], "visible": []}
    for t, book, S, vol in books_over(result, times):
        for view, rows in snaps.items():
            table = book.gex_by_strike(S, t, vol, view)
            rows.append(pd.Series(table["net_gex"].to_numpy() / 1e6, index=table["strike"]))
    clock = SessionClock(sc.clock.session_seconds, sc.clock.duration)
    fig, axes = figure(1, 2, size=(12, 4.8), sharey=True)
    grids = {v: pd.DataFrame(rows).fillna(0.0).sort_index(axis=1) for v, rows in snaps.items()}
    scale = max(float(np.abs(g.to_numpy()).max(initial=0.0)) for g in grids.values()) or 1.0
    norm = mpl.colors.TwoSlopeNorm(0.0, -scale, scale)
    x = clock.x(times)
    half = 0.5 * (x[1] - x[0]) if x.size > 1 else 0.5
    thinned = thin(result.series, ["t", "price"])
    image = None
    for ax, (view, grid) in zip(axes[0], grids.items(), strict=True):
        strikes = grid.columns.to_numpy(dtype=float)
        if strikes.size:
            image = _strike_rows(ax, np.concatenate([x - half, [x[-1] + half]]), strikes, grid)
            image.set_norm(norm)
        ax.plot(clock.x(thinned["t"]), thinned["price"], color="black", lw=1.0, label="price")
        ax.grid(False)
        ax.yaxis.set_major_locator(mpl.ticker.MaxNLocator(8, prune="lower"))  # clear corner
        clock.apply(ax, max_ticks=5)
        ax.set_title(f"{view} {'book' if view == 'true' else 'view (exchange OI)'}; black: price")
    axes[0, 0].set_ylabel("strike / price ($)")
    if image is not None:
        fig.colorbar(image, ax=axes[0, :], label="net dealer GEX at the strike ($M per 1% move)")
    fig.suptitle(f"{sc.name}: dealer GEX by strike over time (blue long gamma, red short)")
    return fig


@styled
def plot_gex_views(book, S: float, t: float, vol, title: str) -> Figure:
    """True vs visible GEX of an ``OptionBook``: profiles over spot (top) and call / put
    GEX by strike (bottom), $M per 1% move; each view's flip and walls marked."""
    fig, axes = figure(2, 1, size=(11, 7.5))
    ax_p, ax_s = axes[:, 0]
    _draw_profiles(ax_p, book, S, t, vol, S * np.linspace(0.8, 1.2, 161))
    _strike_bars(ax_s, book, S, t, vol)
    title = f"{title}: dealers' GEX, true book vs exchange-visible view"
    xlabel = "hypothetical spot ($)  (^ call wall, v put wall)"
    ax_p.set(xlabel=xlabel, ylabel="net GEX ($M per 1% move)", title=title)
    ax_s.set(xlabel="strike ($)  (solid true, hatched visible)", ylabel="GEX by strike ($M per 1%)")
    for ax in (ax_p, ax_s):  # y ticks clear of the x ticks at the corner
        ax.yaxis.set_major_locator(mpl.ticker.MaxNLocator(7, prune="lower"))
    ax_p.legend(ncols=1, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax_s.legend(ncols=1, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig


def save_gex_plot(book, S: float, t: float, vol, path: str | os.PathLike, title: str = "") -> Path:
    """Write :func:`plot_gex_views` to ``path`` (PNG); returns the path."""
    return save(plot_gex_views(book, S, t, vol, title), Path(path))
