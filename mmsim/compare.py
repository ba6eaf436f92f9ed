"""``mmsim compare DIR_A DIR_B [...]``: runs side by side.

Overlays price, rolling realized vol and dealer GEX at spot of several runs (e.g. a
scenario and its control) in ``compare.png``, and prints their metrics side by side with
each run's difference from the first.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mmsim.metrics import PIN_WINDOW
from mmsim.plotkit import SessionClock, figure, save, styled, thin
from mmsim.result import Result, load_result

__all__ = ["KEY_METRICS", "compare", "metrics_table", "plot_compare"]

KEY_METRICS = {  # metric -> (label with unit, format)
    "realized_vol": ("realized vol (annualized)", "{:.2%}"),
    "bipower_vol": ("jump-robust vol (annualized)", "{:.2%}"),
    "jump_share": ("jumps' share of variance", "{:.1%}"),
    "realized_vol_above_flip": ("vol above the flip", "{:.2%}"),
    "realized_vol_below_flip": ("vol below the flip", "{:.2%}"),
    "time_above_flip": ("time above the flip", "{:.1%}"),
    "autocorr_lag1": ("lag-1 autocorrelation", "{:+.3f}"),
    "price_change": ("price change ($)", "{:+.2f}"),
    "max_drawdown": ("max drawdown", "{:.2%}"),
    "pin_strike": (f"pin strike ($, largest OI within {PIN_WINDOW:.0%} of the open)", "{:g}"),
    "pin_distance": ("close - pin strike ($)", "{:+.2f}"),
    "hedge_volume": ("hedge volume (shares)", "{:,.0f}"),
    "n_rehedges": ("rehedges", "{:,.0f}"),
    "hedge_cost": ("hedge cost ($)", "{:,.0f}"),
    "dealer_pnl": ("dealer P&L at the close ($)", "{:,.0f}"),
    "dealer_pnl_vol": ("dealer P&L vol ($ per sqrt(year))", "{:,.0f}"),
    "n_episodes": ("episodes", "{:,.0f}"),
    "lam_g_start": ("lam x G at the start", "{:+.3f}"),
}
_WINDOW = 1800.0  # s, the rolling realized-vol window


def _names(directories: list[Path]) -> list[str]:
    """Short unique labels: the directory names (parents added when they clash)."""
    names = [d.name for d in directories]
    if len(set(names)) < len(names):
        names = [f"{d.parent.name}/{d.name}" for d in directories]
    if len(set(names)) < len(names):
        names = [str(d) for d in directories]
    return names


def _metric(result: Result, key: str) -> float | None:
    """A metric, or ``None`` where it means nothing (vol in a regime never visited)."""
    for side in ("above", "below"):
        if key == f"realized_vol_{side}_flip" and not result.metrics.get(f"time_{side}_flip"):
            return None
    return result.metrics.get(key)


def metrics_table(results: list[Result], names: list[str]) -> pd.DataFrame:
    """Key metrics (rows) of each run (columns), then ``<name> - <first>`` differences;
    numbers formatted with their unit; a metric absent from every run is left out."""
    rows = []
    for key, (label, fmt) in KEY_METRICS.items():
        values = [_metric(r, key) for r in results]
        if all(v is None for v in values):
            continue
        row = {"metric": label}
        for name, v, r in zip(names, values, results, strict=True):
            row[name] = "-" if v is None else fmt.format(v)
            if key == "pin_strike" and v is not None and r.metrics.get("pin_in_window") != 1.0:
                old = "pin_in_window" not in r.metrics  # saved before the window rule
                row[name] += (
                    " (largest of all)"
                    if old
                    else f" (none within {PIN_WINDOW:.0%}: largest of all)"
                )
        for name, v in zip(names[1:], values[1:], strict=True):
            base = values[0]
            diff = "-" if v is None or base is None else fmt.format(v - base)
            if diff != "-" and not diff.startswith(("+", "-")):
                diff = "+" + diff
            row[f"{name} - {names[0]}"] = diff
        rows.append(row)
    return pd.DataFrame(rows)


def _clock(results: list[Result]) -> SessionClock | None:
    sessions = {r.scenario.clock.session_seconds for r in results}
    if len(sessions) != 1:
        return None
    return SessionClock(sessions.pop(), max(r.scenario.clock.duration for r in results))


@styled
def plot_compare(results: list[Result], names: list[str]) -> Figure:
    """Price ($; % change from the start when the runs start at different prices),
    rolling realized vol (annualized, 30 min) and true dealer GEX at spot ($M per 1%
    move) of every run on one clock; the runs' colours are shared across the panels."""
    clock = _clock(results)
    fig, axes = figure(3, 1, size=(11, 8.5), sharex=True)
    ax_p, ax_v, ax_g = axes[:, 0]
    same_start = len({round(float(r.series["price"].iloc[0]), 6) for r in results}) == 1
    colors = [mpl.colormaps["tab10"](i % 10) for i in range(len(results))]
    gaps = False
    for r, name, color in zip(results, names, colors, strict=True):
        s, every = r.series, r.scenario.record.every
        n = max(min(round(_WINDOW / every), len(s) // 4), 2)
        annual = np.sqrt(r.scenario.clock.year_seconds / every)
        vol = np.log(s["price"]).diff().rolling(n).std() * annual
        t = s["t"].to_numpy()
        for e in r.scenario.events:  # a window holding a scripted gap measures the gap
            if e.kind == "gap" and e.gap:
                vol[(t >= e.at) & (t <= e.at + n * every + 2 * every)] = np.nan
                gaps = True
        frame = pd.DataFrame({"t": s["t"], "price": s["price"], "vol": vol, "gex": s["gex_true"]})
        small = thin(frame, list(frame.columns))
        x = clock.x(small["t"]) if clock else small["t"] / 3600.0
        price = small["price"] if same_start else 100.0 * (small["price"] / s["price"].iloc[0] - 1)
        ax_p.plot(x, price, color=color, lw=1.0, label=name)
        ax_v.plot(x, small["vol"], color=color, lw=1.0, label=name)
        ax_g.plot(x, small["gex"] / 1e6, color=color, lw=1.0, label=name)
    ax_p.set_ylabel("price ($)" if same_start else "price change from start (%)")
    ax_v.set_ylabel(f"rolling realized vol\n({_WINDOW / 60:g} min, annualized)")
    ax_v.yaxis.set_major_formatter(mpl.ticker.PercentFormatter(1.0))
    ax_v.set_ylim(bottom=0.0)
    if gaps:
        note = "not drawn in windows holding a scripted gap"
        ax_v.text(0.995, 0.96, note, transform=ax_v.transAxes, ha="right", va="top", fontsize=7)
    ax_g.set_ylabel("true dealer GEX at spot\n($M per 1% move)")
    for ax in axes[:, 0]:
        ax.yaxis.set_major_locator(mpl.ticker.MaxNLocator(6, prune="both"))
        if clock:
            clock.apply(ax, label=ax is ax_g)
    if not clock:
        ax_g.set_xlabel("trading time since the first open (hours)")
    ax_g.axhline(0.0, color="grey", lw=0.5)
    ax_p.set_title(f"compared runs: {', '.join(names)}")
    fig.legend(*ax_p.get_legend_handles_labels(), loc="outside lower center", ncols=4)
    return fig


def compare(
    directories: list[str | os.PathLike],
    output: str | os.PathLike | None = None,
    *,
    plot: bool = True,
) -> tuple[str, Path | None]:
    """Load the runs in ``directories``; return the side-by-side metrics as text and the
    path of ``compare.png`` (default beside the first run: ``<first>/../compare.png``;
    ``None`` without ``plot``). Raises :class:`~mmsim.errors.ResultError` naming a
    directory that is not a run."""
    dirs = [Path(d) for d in directories]
    results = [load_result(d) for d in dirs]
    names = _names(dirs)
    table = metrics_table(results, names)
    head = [f"{n}: {r.scenario.name}, seed {r.seed}" for n, r in zip(names, results, strict=True)]
    text = "\n".join(head) + "\n" + table.to_string(index=False)
    if not plot:
        return text, None
    path = Path(output) if output is not None else dirs[0].parent / "compare.png"
    return text, save(plot_compare(results, names), path)
