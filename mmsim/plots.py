"""Matplotlib figures of runs. Never imported by the core; figures are returned, not shown."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from mmsim.result import Result

__all__ = ["plot_gex", "plot_gex_views", "plot_run", "save_gex_plot", "save_run_plots"]

_BUY, _SELL = "#1a9850", "#d73027"


def plot_run(result: Result) -> Figure:
    """Price path with the dealers' hedge trades, their net delta and hedge volume.

    Top: price ($) with dealer buys (green) and sells (red) sized by shares, and the true
    flip and walls when present. Middle: dealers' net delta and share hedge (shares).
    Bottom: cumulative dealer hedge vs exogenous volume (shares).
    """
    s, tr = result.series, result.trades
    hours = s["t"] / 3600.0
    fig, (ax_p, ax_d, ax_v) = plt.subplots(
        3, 1, figsize=(11, 8), sharex=True, height_ratios=[3, 1.4, 1.2], layout="constrained"
    )
    ax_p.plot(hours, s["price"], color="black", lw=1.0, label="price")
    for col, style, label in (
        ("flip_true", "--", "gamma flip (true)"),
        ("call_wall", ":", "call wall (true)"),
        ("put_wall", "-.", "put wall (true)"),
    ):
        if col in s and s[col].notna().any():
            ax_p.plot(hours, s[col], ls=style, lw=1.0, label=label)
    dealer = tr[tr["kind"] == "dealer"] if len(tr) else tr
    if len(dealer):
        size = np.abs(dealer["qty"].to_numpy())
        scale = 40.0 / max(size.max(), 1.0)
        buys = dealer["qty"] > 0
        ax_p.scatter(
            dealer["t"][buys] / 3600.0,
            dealer["price_before"][buys],
            s=4 + scale * size[buys.to_numpy()],
            c=_BUY,
            alpha=0.5,
            lw=0,
            label="dealer buys",
        )
        ax_p.scatter(
            dealer["t"][~buys] / 3600.0,
            dealer["price_before"][~buys],
            s=4 + scale * size[~buys.to_numpy()],
            c=_SELL,
            alpha=0.5,
            lw=0,
            label="dealer sells",
        )
    ax_p.set_ylabel("price ($)")
    ax_p.legend(loc="best", fontsize=8, ncols=2)
    ax_p.set_title(
        f"{result.scenario.name}: price and dealer hedging "
        f"(realized vol {result.metrics['realized_vol']:.1%})"
    )
    ax_d.plot(hours, s["dealer_delta"], lw=1.0, label="net delta")
    ax_d.plot(hours, s["dealer_shares"], lw=1.0, label="shares held")
    ax_d.axhline(0.0, color="grey", lw=0.5)
    ax_d.set_ylabel("shares")
    ax_d.legend(loc="best", fontsize=8)
    ax_v.plot(hours, s["hedge_volume"], label="dealer hedge volume")
    ax_v.plot(hours, s["exogenous_volume"], label="exogenous volume")
    ax_v.set_ylabel("shares (cum.)")
    ax_v.set_xlabel("trading time (hours)")
    ax_v.legend(loc="best", fontsize=8)
    for ax in (ax_p, ax_d, ax_v):
        ax.grid(alpha=0.3)
    return fig


def plot_gex(table, spot: float, title: str) -> Figure:
    """Bar chart of GEX by strike ($ per 1% move), calls and puts, with the spot marked.

    ``table`` is a DataFrame as returned by ``OptionBook.gex_by_strike``.
    """
    fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    width = 0.4 * float(np.min(np.diff(table["strike"]))) if len(table) > 1 else 0.4
    ax.bar(
        table["strike"] - width / 2, table["call_gex"] / 1e6, width, label="calls", color="#4575b4"
    )
    ax.bar(
        table["strike"] + width / 2, table["put_gex"] / 1e6, width, label="puts", color="#f46d43"
    )
    ax.axvline(spot, color="black", lw=1, ls="--", label=f"spot {spot:.2f}")
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xlabel("strike ($)")
    ax.set_ylabel("GEX ($M per 1% move)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def save_run_plots(result: Result, directory: str | os.PathLike) -> list[Path]:
    """Write the run's PNGs into ``directory``; returns their paths."""
    out = Path(directory) / "price.png"
    fig = plot_run(result)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return [out]


def plot_gex_views(book, S: float, t: float, vol, title: str) -> Figure:
    """True vs visible GEX: profiles over spot (top) and by strike (bottom), $M per 1%.

    ``book`` is an ``OptionBook``; flips and walls of each view are marked.
    """
    fig, (ax_p, ax_s) = plt.subplots(2, 1, figsize=(10, 7.5), layout="constrained")
    grid = S * np.linspace(0.8, 1.2, 161)
    colors = {"true": "#2c7bb6", "visible": "#d7191c"}
    for view, color in colors.items():
        ax_p.plot(
            grid, book.gex_profile(grid, t, vol, view) / 1e6, color=color, label=f"{view} profile"
        )
        flip = book.flip(S, t, vol, view)
        if flip is not None:
            ax_p.axvline(flip, color=color, ls="--", lw=1, label=f"{view} flip {flip:.2f}")
        table = book.gex_by_strike(S, t, vol, view)
        offset = -0.2 if view == "true" else 0.2
        ax_s.bar(
            table["strike"] + offset,
            table["net_gex"] / 1e6,
            0.4,
            color=color,
            alpha=0.8,
            label=f"{view} net GEX",
        )
        cw, pw = book.walls(S, t, vol, view)
        for wall, mark in ((cw, "^"), (pw, "v")):
            if wall is not None:
                ax_s.plot([wall], [0.0], marker=mark, color=color, ms=9, ls="none")
    for ax in (ax_p, ax_s):
        ax.axvline(S, color="black", lw=1, label=f"spot {S:.2f}")
        ax.axhline(0.0, color="grey", lw=0.5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax_p.set_xlabel("hypothetical spot ($)")
    ax_p.set_ylabel("net GEX ($M per 1% move)")
    ax_p.set_title(f"{title}: dealers' GEX, true book vs exchange-visible view")
    ax_s.set_xlabel("strike ($)  (markers: call wall ^, put wall v)")
    ax_s.set_ylabel("net GEX by strike ($M per 1%)")
    return fig


def save_gex_plot(book, S: float, t: float, vol, path: str | os.PathLike, title: str = "") -> Path:
    """Write :func:`plot_gex_views` to ``path`` (PNG); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = plot_gex_views(book, S, t, vol, title)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
