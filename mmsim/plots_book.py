"""The figure of a limit-order-book run (``market.model: book``): ``book.png``.

Price with the walls and flip (the levels of ``price.png``) on top; below it, on the
same time axis, the resting depth per side (asks above zero, bids below, within 1, 5
and 10 ticks of each best quote, shares) and the spread (ticks). Every
``liquidity_dry_out`` episode is a vertical line through all three panels and a marker
on the price (down for an emptied bid side, up for an emptied ask side), so a reader
sees the depth that drained before each one. Written only for book runs: the
``linear`` and ``sqrt`` markets have no depth or spread to show.

Never imported by the core; built on an Agg canvas without pyplot.
"""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mmsim.plotkit import SessionClock, figure, styled, thin, visible_legend
from mmsim.result import Result

__all__ = ["is_book_run", "plot_book"]

_ASK, _BID, _DRY = "#d73027", "#1a9850", "#b35806"
_TICKS = (10, 5, 1)  # depth bands, widest first (drawn lightest)
_ALPHA = {10: 0.25, 5: 0.5, 1: 0.9}


def is_book_run(result: Result) -> bool:
    """True when the run traded on the limit order book (its series has the depth columns)."""
    return result.scenario.market.model == "book" and "spread" in result.series.columns


def _dry_outs(episodes: pd.DataFrame) -> pd.DataFrame:
    if episodes is None or not len(episodes) or "kind" not in episodes.columns:
        return pd.DataFrame(columns=["start", "direction", "level"])
    return episodes[episodes["kind"] == "liquidity_dry_out"]


def _mark_dry_outs(axes, dry: pd.DataFrame, clock: SessionClock) -> None:
    """A purple line through every panel at each dry-out (one legend entry)."""
    for i, t in enumerate(dry["start"].to_numpy(dtype=float)):
        for k, ax in enumerate(axes):
            label = "liquidity dry-out" if i == 0 and k == 0 else None
            ax.axvline(clock.x(t), color=_DRY, ls=":", lw=1.1, alpha=0.85, label=label)


def _depth_panel(ax, s: pd.DataFrame, clock: SessionClock) -> None:
    """Asks above zero, bids below: shares within 1 / 5 / 10 ticks of each best quote."""
    x = clock.x(s["t"])
    for n in _TICKS:
        a = s[f"depth_ask_{n}"].to_numpy(dtype=float)
        b = s[f"depth_bid_{n}"].to_numpy(dtype=float)
        kw = {"step": "post", "lw": 0, "alpha": _ALPHA[n]}
        ax.fill_between(x, 0, a, color=_ASK, label=f"asks within {n} tick{'s' * (n > 1)}", **kw)
        ax.fill_between(x, 0, -b, color=_BID, label=f"bids within {n} tick{'s' * (n > 1)}", **kw)
    ax.axhline(0.0, color="0.3", lw=0.6)
    top = float(np.nanmax(np.abs(s[[f"depth_{w}_10" for w in ("ask", "bid")]].to_numpy())))
    top = top if np.isfinite(top) and top > 0 else 1.0
    ax.set_ylim(-1.08 * top, 1.08 * top)
    ax.yaxis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{abs(v):,.4g}"))
    ax.text(0.005, 0.95, "asks", transform=ax.transAxes, fontsize=7, va="top", color=_ASK)
    ax.text(0.005, 0.05, "bids", transform=ax.transAxes, fontsize=7, va="bottom", color=_BID)
    ax.set_ylabel("resting depth\n(shares)")


def _spread_panel(ax, s: pd.DataFrame, clock: SessionClock, tick: float) -> None:
    """Spread in ticks; samples with a side empty (no spread) marked at the top."""
    x = clock.x(s["t"])
    ticks = s["spread"].to_numpy(dtype=float) / tick
    ax.step(x, ticks, where="post", color="0.15", lw=0.9, label="spread")
    finite = ticks[np.isfinite(ticks)]
    hi = max(float(finite.max()), 2.0) if finite.size else 2.0
    empty = ~np.isfinite(ticks)
    if empty.any():
        y = np.full(int(empty.sum()), 1.05 * hi)
        ax.plot(x[empty], y, "|", color=_DRY, ms=6, label="a side empty (no spread)")
    ax.set_ylim(0.0, 1.15 * hi)
    ax.set_ylabel(f"spread\n(ticks of ${tick:g})")


@styled
def plot_book(result: Result) -> Figure:
    """Price ($) with the flip and walls and the dry-outs; below, resting depth per side
    within 1 / 5 / 10 ticks (shares, asks up, bids down) and the spread (ticks)."""
    from mmsim.plots import _clock, _label_episodes, price_panel

    s, clock = result.series, _clock(result)
    cols = ["t", "price", "regime", "flip_true", "flip_visible", "spread"]
    cols += [f"{w}{v}" for w in ("call_wall", "put_wall") for v in ("", "_visible")]
    cols += [f"depth_{w}_{n}" for w in ("ask", "bid") for n in _TICKS]
    small = thin(s, cols)
    fig, axes = figure(
        3, 1, size=(11, 8), sharex=True, gridspec_kw={"height_ratios": [3.2, 1.6, 1.0]}
    )
    ax, ax_depth, ax_spread = axes[:, 0]
    lo, hi, pad = price_panel(ax, s, small, clock)
    episodes = result.episodes
    dry = _dry_outs(episodes)
    others = episodes.drop(dry.index) if len(dry) else episodes
    n_marks = len(others) if others is not None else 0
    top = pad + (hi - lo + 2 * pad) * 0.06 * min(n_marks, 4)
    ax.set_ylim(lo - pad, hi + top)
    if n_marks:
        _label_episodes(ax, others, clock)
    _mark_dry_outs((ax, ax_depth, ax_spread), dry, clock)
    if len(dry):
        t = dry["start"].to_numpy(dtype=float)
        p = np.interp(t, s["t"].to_numpy(dtype=float), s["price"].to_numpy(dtype=float))
        down = dry["direction"].to_numpy(dtype=float) < 0
        for sel, marker, side in ((down, "v", "bid"), (~down, "^", "ask")):
            if sel.any():
                kw = {"color": _DRY, "ms": 7, "ls": "none", "zorder": 4}
                ax.plot(clock.x(t[sel]), p[sel], marker, label=f"{side} side emptied", **kw)
    _depth_panel(ax_depth, small, clock)
    _spread_panel(ax_spread, small, clock, float(result.scenario.market.book.tick))
    ax.yaxis.set_major_locator(mpl.ticker.MaxNLocator(8, prune="lower"))
    ax_depth.yaxis.set_major_locator(mpl.ticker.MaxNLocator(5, prune="both"))
    ax_spread.yaxis.set_major_locator(mpl.ticker.MaxNLocator(3, prune="upper"))
    clock.apply(ax, label=False)
    clock.apply(ax_depth, label=False)
    clock.apply(ax_spread)
    tick = float(result.scenario.market.book.tick)
    spread = float(np.nanmedian(s["spread"])) / tick if s["spread"].notna().any() else np.nan
    d5 = [float(np.nanmedian(s[f"depth_{w}_5"])) for w in ("bid", "ask")]
    ax.set(
        ylabel="price ($)",
        title=(
            f"{result.scenario.name}: price, walls and the book ({len(dry)} dry-out(s); "
            f"median spread {spread:.1f} ticks, depth within 5 ticks {d5[0]:,.3g} bid / "
            f"{d5[1]:,.3g} ask shares)"
        ),
    )
    handles, labels = visible_legend(ax)
    for a in (ax_depth, ax_spread):
        h, lab = a.get_legend_handles_labels()
        handles, labels = handles + h, labels + lab
    fig.legend(handles, labels, loc="outside lower center", ncols=4)
    return fig
