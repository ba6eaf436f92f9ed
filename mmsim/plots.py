"""Matplotlib figures of runs and sweeps; never imported by the core.

``plot_*`` return :class:`~matplotlib.figure.Figure` objects on an Agg canvas, not registered
with pyplot: nothing is ever shown and the caller's backend is left alone. In Jupyter, a
returned figure displays as a picture once the inline backend is on (``%matplotlib
inline``, or any pyplot import in the kernel). ``save_*`` write PNGs, anywhere. One
style, :data:`STYLE`, for every figure; time on the session clock (09:30-16:00, session
boundaries marked); lines drawn from at most :data:`~mmsim.plotkit.MAX_POINTS` samples.

Run figures: ``price.png`` (price, walls and flip, episodes; dealers' net hedge flow per
bar below), ``dealers.png``, ``vol_regimes.png``, ``returns_by_regime.png``,
``gex_profile.png``, ``gex_strikes.png``, for multi-day or 0DTE runs
``gex_heatmap.png``, and for ``market.model: book`` runs ``book.png`` (price and levels
over the book's depth and spread, dry-outs marked; :mod:`mmsim.plots_book`). The
:data:`OVERVIEW` subset is what ``mmsim run`` draws by default. GEX
figures live in :mod:`mmsim.plots_gex`, sweep figures in :mod:`mmsim.plots_sweep`; both
are re-exported here.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mmsim.errors import ResultError
from mmsim.plotkit import (
    REGIMES,
    STYLE,
    VIEW,
    SessionClock,
    bar_sums,
    bars,
    clipped_limits,
    episode_marks,
    figure,
    save,
    styled,
    thin,
    visible_legend,
)
from mmsim.plots_book import is_book_run, plot_book
from mmsim.plots_gex import (
    book_at,
    plot_gex_heatmap,
    plot_gex_profile,
    plot_gex_strikes,
    plot_gex_views,
    save_gex_plot,
    wants_heatmap,
)
from mmsim.plots_sweep import (
    plot_sweep_distributions,
    plot_sweep_heatmap,
    plot_vol_vs_parameter,
    save_sweep_plots,
)
from mmsim.result import Result, load_result

__all__ = [
    "OVERVIEW",
    "STYLE",
    "book_at",
    "plot_book",
    "plot_dealers",
    "plot_gex_heatmap",
    "plot_gex_profile",
    "plot_gex_strikes",
    "plot_gex_views",
    "plot_returns_by_regime",
    "plot_run",
    "plot_sweep_distributions",
    "plot_sweep_heatmap",
    "plot_vol_regimes",
    "plot_vol_vs_parameter",
    "run_figures",
    "save_gex_plot",
    "save_plots",
    "save_run_plots",
    "save_sweep_plots",
]

_VIEW = VIEW  # names kept for callers of earlier versions
_REGIMES = REGIMES
_CAUSES = {"gamma": "spot", "charm": "time", "vanna": "implied vol", "other": "new lines etc."}
_LEVELS = (("flip", "--", "flip"), ("call_wall", "-", "call wall"), ("put_wall", "-.", "put wall"))
_N_BARS = 130  # bars of the hedge-flow panels
_LABEL_ROWS = 4  # rows of episode labels under the top of the price panel
_BUY, _SELL = "#1a9850", "#d73027"
OVERVIEW = ("price.png", "book.png")
"""The figures ``mmsim run`` draws by default (``which="overview"``): ``price.png``, the
run at a glance (price, walls and flip, regimes, episodes, the dealers' net hedge flow),
and for runs on the limit order book ``book.png`` (depth and spread under the price).
Each run figure costs 0.07-0.2 s of CPU to draw; the rest are one flag away
(``--plots all``) or drawn later from the saved result (``mmsim plot DIR``)."""


def _clock(result: Result) -> SessionClock:
    return SessionClock(result.scenario.clock.session_seconds, result.scenario.clock.duration)


def _expiries(result: Result) -> list[float]:
    """Expiry times (s) inside the run: the run's calendar (:meth:`Result.expiries`), the
    lines of a chain book included."""
    return result.expiries()


_END_ROOM = 0.02  # of the run: x room past an expiry at the run's end, for its mark


def _mark_expiries(axes, result: Result, clock: SessionClock, legend_ax) -> None:
    """A dashed purple line at each expiry through ``axes`` (``expiry`` in ``legend_ax``'s
    legend). One at the run's end (a 0DTE close at 16:00) would lie on the axes' frame,
    out of sight: the x axis gets 2% of the run of room past it, where nothing else is
    drawn, the line is drawn bolder and ``expiry 16:00`` is written beside it in that
    room. Call after :meth:`SessionClock.apply` (which sets the x limits)."""
    for k, e in enumerate(_expiries(result)):
        x = float(clock.x(e))
        at_end = x >= clock.days * (1 - 1e-9)
        for a in axes:
            label = "expiry" if a is legend_ax and not k else None
            lw, alpha = (1.6, 0.9) if at_end else (1.0, 0.7)
            a.axvline(x, color="purple", ls="--", lw=lw, alpha=alpha, label=label, zorder=4)
        if at_end:
            for a in axes:
                a.set_xlim(0.0, clock.days * (1 + _END_ROOM))
            legend_ax.text(x + 0.25 * _END_ROOM * clock.days, 0.5, f"expiry {clock.text(x)}",
                           transform=legend_ax.get_xaxis_transform(), rotation=90, ha="left",
                           va="center", fontsize=8, color="purple")  # fmt: skip


def _shade_regimes(ax, s: pd.DataFrame, clock: SessionClock) -> None:
    """Shade the time above the true flip (long gamma) blue, below it orange."""
    x, regime = clock.x(s["t"]), s["regime"].to_numpy()
    for value, (label, color, _) in REGIMES.items():
        if (regime == value).any():
            kw = {"step": "post", "alpha": 0.35, "lw": 0, "transform": ax.get_xaxis_transform()}
            ax.fill_between(x, 0, 1, where=regime == value, color=color, label=label, **kw)


def _level_lines(ax, s: pd.DataFrame, clock: SessionClock) -> list[float]:
    """Flip and walls: one purple line where the true and visible views agree, a blue
    (true) and a red (visible) line only where they differ. Returns the levels drawn."""
    x, drawn = clock.x(s["t"]), []
    for name, ls, text in _LEVELS:
        true = s["flip_true" if name == "flip" else name].to_numpy(dtype=float)
        vis = s["flip_visible" if name == "flip" else f"{name}_visible"].to_numpy(dtype=float)
        same = np.isclose(true, vis, rtol=0, atol=1e-9) | (np.isnan(true) & np.isnan(vis))
        # a differing stretch keeps its neighbours so the lines join up
        differ = ~same
        differ = differ | np.r_[differ[1:], False] | np.r_[False, differ[:-1]]
        for label, values, mask, color in (
            ("both views", true, same | np.r_[same[1:], False], VIEW["both"]),
            ("true", true, differ, VIEW["true"]),
            ("visible", vis, differ, VIEW["visible"]),
        ):
            y = np.where(mask, values, np.nan)
            if np.isfinite(y).any():
                last = y[np.isfinite(y)][-1]
                kw = {"color": color, "ls": ls, "lw": 1.0, "alpha": 0.9}
                ax.plot(x, y, label=f"{text} ({label}), last {last:.2f}", **kw)
                drawn += list(y[np.isfinite(y)])
    return drawn


def _label_episodes(ax, episodes: pd.DataFrame, clock: SessionClock) -> None:
    """One dotted line and one label per episode (kind, views, primary cause); labels in
    staggered rows so neighbours never overlap; the broken level from start to end. At
    most four rows: an episode whose label finds no room keeps its line, and a note
    counts the unlabelled ones (a 250-day run can break a wall 45 times)."""
    marks = episode_marks(episodes)
    per_char = 0.0052 * clock.days  # a character's width in sessions (fontsize 7, 11 in)
    row_end: list[float] = []
    unlabelled = 0
    for i, m in enumerate(marks):
        x0, x1 = clock.x(m["start"]), clock.x(m["end"])
        ax.axvline(x0, color="purple", ls=":", lw=1.2, label=None if i else "episode start")
        if np.isfinite(m["level"]):
            ax.hlines(m["level"], x0, x1, color="purple", lw=1.6, alpha=0.8)
        cause = f", {m['cause']}" if m["cause"] else ""
        views = f" ({m['views']})" if m["views"] else ""
        text = f"{i + 1}: {m['kind'].replace('_', ' ')}{views}{cause}"
        width = per_char * (len(text) + 2)
        right = x0 + width > clock.days  # would run off the axes: written leftwards
        a, b = (x0 - width, x0) if right else (x0, x0 + width)
        row = next((k for k, end in enumerate(row_end) if a > end), len(row_end))
        if row >= _LABEL_ROWS:  # the rows the y limits leave room for are full here
            unlabelled += 1
            continue
        row_end[row : row + 1] = [b]
        ax.annotate(
            text,
            (x0, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(-2 if right else 2, -3 - 11 * row),
            textcoords="offset points",
            fontsize=7,
            color="purple",
            va="top",
            ha="right" if right else "left",
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
        )
    if unlabelled:
        note = f"{unlabelled} more episode(s) marked but not labelled: see episodes.parquet"
        ax.text(0.995, 0.02, note, transform=ax.transAxes, fontsize=7, color="purple", ha="right")


def _flow_bars(ax, result: Result, clock: SessionClock, agents=None) -> None:
    """Dealers' net hedge trades per bar (shares; green net buying, red net selling).
    Bars holding an expiry unwind (or > 8x the usual bar) are clipped and labelled."""
    tr = result.trades
    hedges = tr[tr["kind"] == "dealer"] if agents is None else tr[tr["agent"].isin(agents)]
    duration = result.scenario.clock.duration
    edges, sums, width = bar_sums(
        hedges["t"].to_numpy(), hedges["qty"].to_numpy(), duration, _N_BARS
    )
    x = clock.x(edges[:-1])
    colors = np.where(sums >= 0, _BUY, _SELL)
    bars(ax, x, sums, clock.x(width), colors)
    expiry = np.zeros(sums.size, dtype=bool)
    for e in _expiries(result):
        expiry[min(int(e / width), sums.size - 1)] = True
    at_expiry = expiry.any() and (sums[expiry] != 0).any()
    limits = clipped_limits(sums, expiry if at_expiry else None)
    if limits is not None:
        ax.set_ylim(*limits)
        lo, hi = limits
        clipped = np.flatnonzero((sums > hi) | (sums < lo))
        for k in clipped:
            y, va = (hi, "top") if sums[k] > hi else (lo, "bottom")
            right = x[k] > 0.8 * clock.days  # near the right edge: label to the left
            ax.annotate(
                f"{sums[k]:+,.0f}",
                (x[k], y),
                fontsize=7,
                va=va,
                ha="right" if right else "left",
                xytext=(-4 if right else 4, 0),
                textcoords="offset points",
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
            )
        why = "at expiry unwinds" if at_expiry else f"({len(clipped)} bar(s) > 8x the usual)"
        ax.text(
            0.005,
            0.96,
            f"axis clipped {why}",
            transform=ax.transAxes,
            fontsize=7,
            va="top",
            ha="left",
            color="0.3",
        )
    ax.axhline(0.0, color="grey", lw=0.5)
    minutes = width / 60.0
    unit = f"{minutes:.0f} min" if minutes >= 1 else f"{width:.0f} s"
    ax.set_ylabel(f"net hedge\n(shares per {unit})")


def price_panel(ax, s: pd.DataFrame, small: pd.DataFrame, clock: SessionClock):
    """Regime shading, the price ($) and the flip and wall lines on ``ax`` (``small``: the
    thinned series). Returns the price range widened to the levels within 0.5% of it,
    and a pad ($), for the caller's y-limits."""
    _shade_regimes(ax, small, clock)
    x = clock.x(small["t"])
    ax.plot(x, small["price"], color="black", lw=1.0, label="price", zorder=3)
    lo, hi = float(s["price"].min()), float(s["price"].max())
    levels = np.asarray(_level_lines(ax, small, clock))
    near = levels[np.abs(levels - 0.5 * (lo + hi)) < 0.5 * (hi - lo) + 0.005 * hi]
    lo, hi = min(lo, near.min(initial=lo)), max(hi, near.max(initial=hi))
    return lo, hi, max(0.08 * (hi - lo), 0.001 * hi)


@styled
def plot_run(result: Result) -> Figure:
    """Price ($) with the flip and walls (one line where the true and visible views
    agree, both where they differ), regime shading, episodes labelled once each; below,
    the dealers' net hedge flow per bar (shares, + = buying)."""
    s, clock = result.series, _clock(result)
    cols = ["t", "price", "regime", "flip_true", "flip_visible"]
    cols += [f"{w}{v}" for w in ("call_wall", "put_wall") for v in ("", "_visible")]
    small = thin(s, cols)
    fig, axes = figure(2, 1, size=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [4, 1]})
    ax, ax_flow = axes[:, 0]
    lo, hi, pad = price_panel(ax, s, small, clock)
    n_marks = len(episode_marks(result.episodes))
    top = pad + (hi - lo + 2 * pad) * 0.06 * min(n_marks, _LABEL_ROWS)  # episode labels
    ax.set_ylim(lo - pad, hi + top)  # the path and levels within 0.5% of it; the rest off
    _label_episodes(ax, result.episodes, clock)
    _flow_bars(ax_flow, result, clock)
    ax.yaxis.set_major_locator(mpl.ticker.MaxNLocator(8, prune="lower"))  # clear of the
    ax_flow.yaxis.set_major_locator(mpl.ticker.MaxNLocator(4, prune="both"))  # panel below
    clock.apply(ax, label=False)
    clock.apply(ax_flow)
    _mark_expiries((ax, ax_flow), result, clock, ax)
    m = result.metrics
    vol = f"realized vol {m['realized_vol']:.1%}"
    if "bipower_vol" in m:
        vol += f", jump-robust {m['bipower_vol']:.1%}"
    ax.set(ylabel="price ($)", title=f"{result.scenario.name}: price, walls and flip ({vol})")
    fig.legend(*visible_legend(ax), loc="outside lower center", ncols=4)
    return fig


def _per_bar(s: pd.DataFrame, column: str, n_bars: int):
    """Per bar of samples: ``(x index of bar start rows, mean, min, max)``."""
    v = s[column].to_numpy(dtype=float)
    k = max(1, int(np.ceil(v.size / n_bars)))
    pad = (-v.size) % k
    blocks = np.concatenate([v, np.full(pad, np.nan)]).reshape(-1, k)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return (
                np.arange(0, v.size, k),
                np.nanmean(blocks, 1),
                np.nanmin(blocks, 1),
                np.nanmax(blocks, 1),
            )


@styled
def plot_dealers(result: Result) -> Figure:
    """Per dealer, per bar: net delta (shares; line = bar mean, shade = bar range), share
    gamma (shares per $1) and net hedge trades (shares per bar); all dealers' cumulative
    hedge demand by cause (shares). Expiries marked; bars holding an expiry unwind are
    clipped and labelled."""
    s, names, clock = result.series, result.scenario.dealer_names(), _clock(result)
    colors = [mpl.colormaps["tab10"](i % 10) for i in range(len(names))]
    fig, axes = figure(4, 1, size=(11, 10), sharex=True)
    ax_delta, ax_gamma, ax_trades, ax_flow = axes[:, 0]
    n_bars = 200
    t_s, spans = s["t"].to_numpy(), []
    for name, color in zip(names, colors, strict=True):
        rows, mean, lo, hi = _per_bar(s, f"{name}.delta", n_bars)
        x = clock.x(t_s[rows])
        # bars holding an expiry (the hedge of expired lines, before it unwinds)
        starts, ends = t_s[rows], np.r_[t_s[rows][1:], np.inf]
        near = np.zeros(rows.size, dtype=bool)
        for e in _expiries(result):
            near |= (ends >= e) & (starts <= e + 2 * result.scenario.record.every)
        spans.append((np.r_[lo, hi], np.r_[near, near]))
        ax_delta.fill_between(x, lo, hi, color=color, alpha=0.2, step="post", lw=0)
        ax_delta.step(x, mean, where="post", color=color, lw=1.0, label=f"{name} (bar mean)")
        small = thin(s, ["t", f"{name}.gamma"])
        ax_gamma.plot(clock.x(small["t"]), small[f"{name}.gamma"], color=color, lw=1.0, label=name)
    values = np.concatenate([v for v, _ in spans]) if spans else np.zeros(0)
    near = np.concatenate([m for _, m in spans]) if spans else np.zeros(0, dtype=bool)
    limits = clipped_limits(values, near) if near.any() else None
    if limits is not None:
        ax_delta.set_ylim(*limits)
        peak = values[near][np.argmax(np.abs(values[near]))]
        title = f"axis clipped at expiries (delta of expired lines' hedge, up to {peak:+,.0f})"
        ax_delta.set_title(title, fontsize=8, loc="right")
    tr = result.trades
    duration = result.scenario.clock.duration
    sums_all = []
    for j, (name, color) in enumerate(zip(names, colors, strict=True)):
        mine = tr[(tr["kind"] == "dealer") & (tr["agent"] == name)]
        edges, sums, width = bar_sums(
            mine["t"].to_numpy(), mine["qty"].to_numpy(), duration, _N_BARS
        )
        w = clock.x(width) / len(names)
        label = f"{name}: {len(mine):,} trades"
        bars(ax_trades, clock.x(edges[:-1]) + j * w, sums, w, color, label=label)
        sums_all.append(sums)
    if sums_all:
        stacked = np.concatenate(sums_all)
        expiry = np.zeros(_N_BARS, dtype=bool)
        for e in _expiries(result):
            expiry[min(int(e / (duration / _N_BARS)), _N_BARS - 1)] = True
        mask = np.tile(expiry, len(sums_all))
        at_expiry = bool((stacked[mask] != 0).any())
        limits = clipped_limits(stacked, mask if at_expiry else None)
        if limits is not None:
            ax_trades.set_ylim(*limits)
            big = stacked[(stacked > limits[1]) | (stacked < limits[0])]
            note = ", ".join(f"{v:+,.0f}" for v in big[:4])
            why = "at expiry unwinds" if at_expiry else "at bars > 8x the usual"
            title = f"axis clipped {why} ({note} shares)"
            ax_trades.set_title(title, fontsize=8, loc="right")
    for part, ls in (("gamma", "-"), ("charm", "--"), ("vanna", ":"), ("other", "-.")):
        cols = [f"{n}.flow_{part}" for n in names if f"{n}.flow_{part}" in s]
        if cols:
            small = thin(s, ["t", *cols])
            label = f"{part}: {_CAUSES[part]}"
            ax_flow.plot(
                clock.x(small["t"]), small[cols].sum(axis=1), color="k", ls=ls, lw=0.9, label=label
            )
    ax_delta.set_title(f"{result.scenario.name}: dealers' delta, gamma and hedging", loc="left")
    ax_delta.set_ylabel("net delta (shares)")
    ax_gamma.set_ylabel("share gamma (shares per $1)")
    minutes = duration / _N_BARS / 60
    unit = f"{minutes:.0f} min" if minutes >= 1 else f"{duration / _N_BARS:.0f} s"
    ax_trades.set_ylabel(f"net hedge (shares per {unit})")
    ax_flow.set_ylabel("cum. hedge demand (shares)")
    for ax in axes[:, 0]:
        ax.axhline(0.0, color="grey", lw=0.5)
        ax.yaxis.set_major_locator(mpl.ticker.MaxNLocator(6, prune="both"))  # stacked panels
        clock.apply(ax, label=ax is ax_flow)
    _mark_expiries(axes[:, 0], result, clock, ax_delta)
    for ax in axes[:, 0]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0)
    return fig


def _gap_windows(result: Result, window: float) -> list[tuple[float, float, float]]:
    """``(start, end, size)`` (s, s, fraction) of the rolling windows holding a price gap."""
    end = result.scenario.clock.duration
    return [
        (e.at, min(e.at + window, end), e.gap)
        for e in result.scenario.events
        if e.kind == "gap" and e.gap and e.at <= end
    ]


@styled
def plot_vol_regimes(result: Result, window: float = 1800.0) -> Figure:
    """Rolling realized vol and rolling jump-robust (bipower) vol, annualized, over
    ``window`` s of samples, and the implied vol (series ``iv``), with the time above /
    below the true flip shaded. Windows that hold a scripted gap are hatched; the axis
    stops at the largest vol outside them and says so."""
    s, sc, every = result.series, result.scenario, result.scenario.record.every
    clock = _clock(result)
    n = max(min(round(window / every), len(s) // 4), 2)  # short runs: a quarter of the run
    r = np.log(s["price"]).diff()
    annual = np.sqrt(sc.clock.year_seconds / every)
    vol = r.rolling(n).std() * annual
    bipower = np.sqrt((np.pi / 2) * (r.abs() * r.abs().shift()).rolling(n - 1).mean()) * annual
    frame = pd.DataFrame(
        {"t": s["t"], "vol": vol, "bv": bipower, "iv": s["iv"], "regime": s["regime"]}
    )
    small = thin(frame, list(frame.columns))
    fig, [[ax]] = figure(size=(11, 4.6))
    _shade_regimes(ax, small, clock)
    x = clock.x(small["t"])
    label = f"rolling realized vol ({n * every / 60:g} min = {n} samples)"
    ax.plot(x, small["vol"], color="black", lw=1.0, label=label)
    ax.plot(x, small["bv"], color="#33a02c", lw=1.0, label="rolling jump-robust (bipower) vol")
    ax.plot(x, small["iv"], color="grey", ls="--", lw=0.9, label="implied vol (ATM)")
    for value, (name, _, color) in REGIMES.items():
        level = result.metrics.get(f"realized_vol_{'above' if value > 0 else 'below'}_flip", 0)
        if level > 0:  # metrics give 0.0 to a regime with fewer than two returns
            label = f"realized vol {name.split(' (')[0]}, whole run: {level:.1%}"
            ax.axhline(level, color=color, ls=":", lw=2.0, label=label)
    gaps = _gap_windows(result, n * every)
    t = frame["t"].to_numpy()
    inside = np.zeros(len(frame), dtype=bool)
    for g0, g1, size in gaps:
        inside |= (t >= g0) & (t <= g1 + 2 * every)
        ax.axvspan(
            clock.x(g0),
            clock.x(g1),
            color="0.6",
            alpha=0.25,
            hatch="//",
            lw=0,
            label=f"window holds the {size:+.1%} gap" if g0 == gaps[0][0] else None,
        )
    outside = frame.loc[~inside, ["vol", "bv", "iv"]].to_numpy(dtype=float)
    peak = np.nanmax(frame["vol"]) if frame["vol"].notna().any() else np.nan
    gap_t = small["t"].to_numpy()
    for g0, g1, _ in gaps:  # a window holding a gap measures the gap, not the regime
        hide = (gap_t >= g0) & (gap_t <= g1 + 2 * every)
        for line in ax.lines[:2]:
            y = np.asarray(line.get_ydata(), dtype=float).copy()
            y[hide] = np.nan
            line.set_ydata(y)
    top = np.nanmax(outside) if np.isfinite(outside).any() else np.nan
    if gaps and np.isfinite(top) and peak > 1.2 * top:
        ax.set_ylim(0.0, 1.25 * top)
        ax.text(
            0.995,
            0.97,
            f"rolling vols not drawn in gap windows (they peak at {peak:.0%})",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=7,
            color="0.3",
        )
    else:
        ax.set_ylim(bottom=0.0)
    clock.apply(ax)
    ax.set_ylabel("volatility (annualized)")
    ax.set_title(f"{sc.name}: rolling realized volatility by gamma regime")
    ax.yaxis.set_major_formatter(mpl.ticker.PercentFormatter(1.0))
    fig.legend(*visible_legend(ax), loc="outside lower center", ncols=3)
    return fig


@styled
def plot_returns_by_regime(result: Result) -> Figure:
    """Histograms of sampled log returns (bp) split by the regime at each return's start."""
    s, sc = result.series, result.scenario
    r = np.diff(np.log(s["price"].to_numpy())) * 1e4
    regime = s["regime"].to_numpy()[:-1]
    lo, hi = np.percentile(r, [0.5, 99.5]) if r.size else (0.0, 0.0)
    bins = np.histogram_bin_edges(r[(r >= lo) & (r <= hi)], "auto") if hi > lo else 10
    annualize = np.sqrt(sc.clock.year_seconds / sc.record.every) / 1e4
    fig, [[ax]] = figure(size=(8, 4.5))
    for value, (label, _, color) in {**REGIMES, 0.0: ("no flip", "", "grey")}.items():
        sel = r[regime == value]
        if sel.size > 1:
            sd = sel.std(ddof=1)
            label = f"{label}: n={sel.size}, sd {sd:.2f} bp ({sd * annualize:.1%} annualized)"
            kw = {"density": True, "alpha": 0.5, "color": color, "histtype": "stepfilled"}
            ax.hist(sel, bins=bins, label=label, **kw)
    ax.set(xlabel=f"log return per {sc.record.every:g} s (bp)", ylabel="density (per bp)")
    ax.set_title(f"{sc.name}: returns by gamma regime")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=1)
    return fig


def run_figures(result: Result, which: str = "all") -> dict[str, object]:
    """File name -> figure function for a run: every run gets price, dealers, vol regimes,
    returns by regime, GEX profile and GEX by strike; multi-day and 0DTE runs also get the
    strike x time GEX heatmap; runs on the limit order book also get ``book.png``
    (:func:`~mmsim.plots_book.plot_book`: price and levels over depth and spread).
    ``which="overview"``: only those of them named in :data:`OVERVIEW`."""
    if which not in ("all", "overview"):
        raise ValueError(f"which={which!r}: 'all' or 'overview'")
    figures = {
        "price.png": plot_run,
        "dealers.png": plot_dealers,
        "vol_regimes.png": plot_vol_regimes,
        "returns_by_regime.png": plot_returns_by_regime,
        "gex_profile.png": plot_gex_profile,
        "gex_strikes.png": plot_gex_strikes,
    }
    if wants_heatmap(result):
        figures["gex_heatmap.png"] = plot_gex_heatmap
    if is_book_run(result):
        figures["book.png"] = plot_book
    if which == "overview":
        figures = {name: fn for name, fn in figures.items() if name in OVERVIEW}
    return figures


def save_run_plots(result: Result, directory: str | os.PathLike, which: str = "all") -> list[Path]:
    """Write the PNGs of :func:`run_figures` (``which``: ``"all"`` or ``"overview"``)
    into ``directory``; returns their paths."""
    directory = Path(directory)
    figures = run_figures(result, which)
    return [save(make(result), directory / name) for name, make in figures.items()]


def save_plots(directory: str | os.PathLike) -> list[Path]:
    """The PNGs of a run directory (meta.json) or a sweep directory (results.parquet)."""
    directory = Path(directory)
    if (directory / "meta.json").is_file():
        return save_run_plots(load_result(directory), directory)
    if (directory / "results.parquet").is_file():
        return save_sweep_plots(directory)
    what = "neither a run directory (meta.json) nor a sweep directory (results.parquet)"
    raise ResultError(f"{directory}: {what}")
