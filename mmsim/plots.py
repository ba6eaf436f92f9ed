"""Matplotlib figures of runs and sweeps; never imported by the core.

``plot_*`` return :class:`~matplotlib.figure.Figure` objects on an Agg canvas, not registered
with pyplot: nothing is ever shown and the caller's backend is left alone. In Jupyter, a
returned figure displays as a picture once the inline backend is on (``%matplotlib
inline``, or any pyplot import in the kernel). ``save_*`` write PNGs, anywhere. One
style, :data:`STYLE`, for every figure.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mmsim.errors import ResultError
from mmsim.paths import atomic_save
from mmsim.result import Result, load_result, reading

__all__ = [
    "STYLE",
    "book_at",
    "plot_dealers",
    "plot_gex_profile",
    "plot_gex_views",
    "plot_returns_by_regime",
    "plot_run",
    "plot_sweep_distributions",
    "plot_sweep_heatmap",
    "plot_vol_regimes",
    "plot_vol_vs_parameter",
    "save_gex_plot",
    "save_plots",
    "save_run_plots",
    "save_sweep_plots",
]

STYLE = {  # rcParams applied while every figure is drawn and saved
    "figure.dpi": 110,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 11,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
}
_VIEW = {"true": "#2c7bb6", "visible": "#d7191c"}  # true book vs exchange-visible view
_REGIMES = {  # series regime -> label, shading colour, line colour
    1.0: ("above flip (long gamma)", "#abd9e9", "#2c7bb6"),
    -1.0: ("below flip (short gamma)", "#fdae61", "#d7191c"),
}
_HOURS = "trading time (hours)"
_NOTE = {"fontsize": 7, "va": "top", "ha": "right", "color": "purple", "rotation": 90}
_CAUSES = {"gamma": "spot", "charm": "time", "vanna": "implied vol", "other": "new lines etc."}


def _styled(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def _figure(nrows: int = 1, ncols: int = 1, *, size, **kw) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure on an Agg canvas and its 2-D array of axes."""
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kw)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with mpl.rc_context(STYLE):  # ticks are created lazily, at draw time
        atomic_save(path, lambda tmp: fig.savefig(tmp, format=path.suffix[1:] or "png"))
    return path


def _hours(t) -> np.ndarray:  # clock seconds -> trading hours since the first open
    return np.asarray(t, dtype=float) / 3600.0


# -- runs -------------------------------------------------------------------------------
def _shade_regimes(ax, series: pd.DataFrame) -> None:
    """Shade the time above the true flip (long gamma) blue, below it orange."""
    hours, regime = _hours(series["t"]), series["regime"].to_numpy()
    for value, (label, color, _) in _REGIMES.items():
        if (regime == value).any():
            kw = {"step": "post", "alpha": 0.35, "lw": 0, "transform": ax.get_xaxis_transform()}
            ax.fill_between(hours, 0, 1, where=regime == value, color=color, label=label, **kw)


def _mark_episodes(ax, episodes: pd.DataFrame) -> None:
    """Wall breaks and flip crossings: a line at the start, the broken level from start to
    end, and the kind, views and primary cause written at the start (one per kind and start)."""
    for i, ((start, kind), same) in enumerate(episodes.groupby(["start", "kind"], sort=True)):
        t0, t1, level = start / 3600.0, same["end"].max() / 3600.0, same["level"].iloc[0]
        ax.axvline(t0, color="purple", ls=":", lw=1.2, label=None if i else "episode: start, level")
        ax.hlines(level, t0, t1, color="purple", lw=1.5, alpha=0.8)
        views = ", ".join(same["views"] if "views" in same else same.get("view", []))
        cause = f"\n{same['primary_cause'].iloc[0]}" if "primary_cause" in same else ""
        text = f"{kind} ({views}){cause}"
        ax.annotate(text, (t0, 0.98), xycoords=("data", "axes fraction"), **_NOTE)


@_styled
def plot_run(result: Result) -> Figure:
    """Price ($) with the walls and flip of both views, regime shading, episodes and the
    dealers' hedge trades (green buys, red sells; marker area grows with size)."""
    s, trades, hours = result.series, result.trades, _hours(result.series["t"])
    fig, [[ax]] = _figure(size=(11, 6))
    _shade_regimes(ax, s)
    ax.plot(hours, s["price"], color="black", lw=1.0, label="price")
    lo, hi = s["price"].min(), s["price"].max()
    for view, sfx in (("true", ""), ("visible", "_visible")):
        for name, ls in (("flip", "--"), ("call_wall", "-"), ("put_wall", "-.")):
            level = s[f"flip_{view}" if name == "flip" else name + sfx]
            if level.notna().any():
                label = f"{name.replace('_', ' ')} ({view}), last {level.dropna().iloc[-1]:.2f}"
                ax.plot(hours, level, color=_VIEW[view], ls=ls, lw=0.9, alpha=0.8, label=label)
                near = level[(level - s["price"]).abs() < 0.005 * s["price"]].to_numpy()
                lo, hi = near.min(initial=lo), near.max(initial=hi)  # levels within 0.5%
    hedges = trades[trades["kind"] == "dealer"]
    qty = hedges["qty"]
    for side, color, label in ((qty > 0, "#1a9850", "buys"), (qty < 0, "#d73027", "sells")):
        size = 3 + 40 * qty[side].abs() / max(qty.abs().max(), 1.0)  # marker area, points^2
        kw = {"s": size, "c": color, "alpha": 0.45, "lw": 0, "label": f"dealer {label}"}
        if side.any():
            ax.scatter(_hours(hedges["t"][side]), hedges["price_before"][side], **kw)
    _mark_episodes(ax, result.episodes)
    pad = max(0.1 * (hi - lo), 0.001 * hi)
    ax.set_ylim(lo - pad, hi + pad)  # the path and levels within 0.5% of it; the rest off
    vol = result.metrics["realized_vol"]
    title = f"{result.scenario.name}: price, walls, flip, dealer hedges (realized vol {vol:.1%})"
    ax.set(xlabel=_HOURS, ylabel="price ($)", title=title)
    fig.legend(loc="outside lower center", ncols=4)
    return fig


@_styled
def plot_dealers(result: Result) -> Figure:
    """Per dealer: net delta (shares), share gamma (shares per $1) and hedge trades
    (shares, + = buy); all dealers' cumulative hedge demand by cause (shares)."""
    s, trades, names = result.series, result.trades, result.scenario.dealer_names()
    hours, colors = _hours(s["t"]), [mpl.colormaps["tab10"](i % 10) for i in range(len(names))]
    fig, axes = _figure(4, 1, size=(11, 10), sharex=True)
    ax_delta, ax_gamma, ax_trades, ax_flow = axes[:, 0]
    for name, color in zip(names, colors, strict=True):
        ax_delta.plot(hours, s[f"{name}.delta"], color=color, lw=0.9, label=name)
        ax_gamma.plot(hours, s[f"{name}.gamma"], color=color, lw=0.9, label=name)
        mine = trades[(trades["kind"] == "dealer") & (trades["agent"] == name)]
        label = f"{name}: {len(mine)} trades"
        ax_trades.vlines(_hours(mine["t"]), 0, mine["qty"], color=color, label=label)
    for part, ls in (("gamma", "-"), ("charm", "--"), ("vanna", ":"), ("other", "-.")):
        cols = [f"{n}.flow_{part}" for n in names if f"{n}.flow_{part}" in s]
        if cols:
            label = f"{part}: {_CAUSES[part]}"
            ax_flow.plot(hours, s[cols].sum(axis=1), color="k", ls=ls, lw=0.9, label=label)
    ax_delta.set_title(f"{result.scenario.name}: dealers' delta, gamma and hedging")
    ax_delta.set_ylabel("net delta (shares)")
    ax_gamma.set_ylabel("share gamma (shares per $1)")
    ax_trades.set_ylabel("hedge trade (shares, + buy)")
    ax_flow.set(ylabel="cum. hedge demand (shares)", xlabel=_HOURS)
    for ax in axes[:, 0]:
        ax.axhline(0.0, color="grey", lw=0.5)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", ncols=4)
    return fig


@_styled
def plot_vol_regimes(result: Result, window: float = 1800.0) -> Figure:
    """Rolling realized vol (annualized, over ``window`` s of samples) and the implied
    vol level (series ``iv``), with the time above / below the true flip shaded."""
    s, sc, every = result.series, result.scenario, result.scenario.record.every
    n = max(min(round(window / every), len(s) // 4), 2)  # short runs: a quarter of the run
    vol = np.log(s["price"]).diff().rolling(n).std() * np.sqrt(sc.clock.year_seconds / every)
    fig, [[ax]] = _figure(size=(11, 4))
    _shade_regimes(ax, s)
    label = f"rolling realized vol ({n * every / 60:g} min = {n} samples)"
    ax.plot(_hours(s["t"]), vol, color="black", lw=1.0, label=label)
    ax.plot(_hours(s["t"]), s["iv"], color="grey", ls="--", lw=0.9, label="implied vol (ATM)")
    for value, (name, _, color) in _REGIMES.items():
        level = result.metrics.get(f"realized_vol_{'above' if value > 0 else 'below'}_flip", 0)
        if level > 0:  # metrics give 0.0 to a regime with fewer than two returns
            label = f"realized vol {name.split(' (')[0]}, whole run: {level:.1%}"
            ax.axhline(level, color=color, ls=":", lw=2.0, label=label)
    ax.set(xlabel=_HOURS, ylabel="volatility (annualized)")
    ax.set_title(f"{sc.name}: rolling realized volatility by gamma regime")
    ax.yaxis.set_major_formatter(mpl.ticker.PercentFormatter(1.0))
    ax.legend(loc="upper left", ncols=2)
    return fig


@_styled
def plot_returns_by_regime(result: Result) -> Figure:
    """Histograms of sampled log returns (bp) split by the regime at each return's start."""
    s, sc = result.series, result.scenario
    r = np.diff(np.log(s["price"].to_numpy())) * 1e4
    regime = s["regime"].to_numpy()[:-1]
    lo, hi = np.percentile(r, [0.5, 99.5]) if r.size else (0.0, 0.0)
    bins = np.histogram_bin_edges(r[(r >= lo) & (r <= hi)], "auto") if hi > lo else 10
    annualize = np.sqrt(sc.clock.year_seconds / sc.record.every) / 1e4
    fig, [[ax]] = _figure(size=(8, 4.5))
    for value, (label, _, color) in {**_REGIMES, 0.0: ("no flip", "", "grey")}.items():
        sel = r[regime == value]
        if sel.size > 1:
            sd = sel.std(ddof=1)
            label = f"{label}: n={sel.size}, sd {sd:.2f} bp ({sd * annualize:.1%} annualized)"
            ax.hist(sel, bins=bins, density=True, alpha=0.5, color=color, label=label)
    ax.set(xlabel=f"log return per {sc.record.every:g} s (bp)", ylabel="density (per bp)")
    ax.set_title(f"{sc.name}: returns by gamma regime")
    ax.legend(loc="upper left")
    return fig


def book_at(result: Result, t: float):
    """``(book, S, vol)`` at time ``t`` (s), rebuilt without replaying the run: opening lines,
    ``positions`` events and skew shifts up to ``t``, the dealers' side (``-qty``) of every
    customer option trade at or before ``t``; spot ($) and ATM vol from the last series
    sample at or before ``t``. Expired lines stay but contribute nothing."""
    from mmsim.engine import Simulation

    sim = Simulation(result.scenario, result.entropy)  # builds the opening book only
    book, vol, sc = sim.book, sim.vol, result.scenario
    for ev in (e for e in sc.events if e.at <= t):
        vol.skew += ev.d_skew if ev.kind == "vol_shift" else 0.0  # the level: series iv
        for p in ev.positions if ev.kind == "positions" else ():
            kw = {"visible": p.visible, "multiplier": p.multiplier}
            expiry = p.expiry_days * sc.clock.session_seconds
            book.add(p.strike, expiry, p.type == "call", p.qty, ev.dealer, **kw)
    multiplier = {n: c.multiplier for n, c in zip(sim.segment_names, sc.customers, strict=True)}
    ot = result.option_trades
    for tr in ot[ot["t"] <= t].itertuples(index=False):
        kw = {"visible": bool(tr.visible), "multiplier": multiplier.get(tr.segment, 100.0)}
        book.add(tr.strike, tr.expiry, bool(tr.is_call), -tr.qty, int(tr.dealer), **kw)
    s = result.series
    row = s.iloc[max(int(np.searchsorted(s["t"].to_numpy(), t, side="right")) - 1, 0)]
    vol.shift = float(row["iv"]) - vol.atm
    return book, float(row["price"]), vol


def _draw_profiles(ax, book, S: float, t: float, vol, grid: np.ndarray) -> None:
    """Both views' GEX profiles over ``grid`` ($M per 1%), their flips (dashed) and
    walls (^ call, v put, on the zero line), and the spot."""
    for view, color in _VIEW.items():
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


@_styled
def plot_gex_profile(result: Result, times=None) -> Figure:
    """True and visible GEX profiles ($M per 1% move) over hypothetical spots at ``times``
    (s; default the open, mid-run and the close), with each view's flip and walls."""
    end = float(result.series["t"].iloc[-1])
    times = sorted([0.0, end / 2, end] if times is None else times)
    fig, axes = _figure(1, len(times), size=(4.3 * len(times), 4.3), sharey=True)
    for ax, t in zip(axes[0], times, strict=True):
        book, S, vol = book_at(result, t)
        _draw_profiles(ax, book, S, t, vol, S * np.linspace(0.9, 1.1, 161))
        title = f"t = {t / 3600:.2f} h: spot {S:.2f}, IV {vol.level:.1%}"
        ax.set(title=title, xlabel="hypothetical spot ($)  (^ call wall, v put wall)")
        ax.legend(loc="upper left", fontsize=7)
    axes[0, 0].set_ylabel("net dealer GEX ($M per 1% move)")
    fig.suptitle(f"{result.scenario.name}: dealers' GEX profile, true book vs visible view")
    return fig


def save_run_plots(result: Result, directory: str | os.PathLike) -> list[Path]:
    """Write price.png, dealers.png, vol_regimes.png, gex_profile.png and
    returns_by_regime.png into ``directory``; returns their paths."""
    directory = Path(directory)
    figures = {
        "price.png": plot_run,
        "dealers.png": plot_dealers,
        "vol_regimes.png": plot_vol_regimes,
        "gex_profile.png": plot_gex_profile,
        "returns_by_regime.png": plot_returns_by_regime,
    }
    return [_save(make(result), directory / name) for name, make in figures.items()]


# -- sweeps -----------------------------------------------------------------------------
_UNITS = {  # unit of a swept path, by its last part
    **dict.fromkeys(("band", "capacity", "mean_size", "shares"), "shares"),
    **dict.fromkeys(("latency", "interval", "capacity_window", "at", "start", "duration"), "s"),
    **dict.fromkeys(("atm", "vol", "d_atm", "floor"), "annualized"),
    **dict.fromkeys(("S0", "strike", "notional", "half_spread", "tick"), "$"),
    **dict.fromkeys(("days", "expiry_days"), "sessions"),
    **{"qty": "contracts", "lam": "$ per share", "rate": "per s", "depth_bp": "shares per bp"},
}
_METRICS = {
    "realized_vol": "realized vol (annualized)",
    "autocorr_lag1": "lag-1 return autocorrelation (unitless)",
}
_BAND_UNITS = {"delta_per_contract": "delta per contract", "per_notional": "shares per $100M"}


def _swept(table: pd.DataFrame, spec: dict | None = None) -> list[str]:
    """Swept paths: ``sweep.json``'s grid and zip keys, else the table's columns between
    ``run_id`` and ``status`` (:func:`mmsim.sweep.swept_columns`)."""
    from mmsim.sweep import swept_columns

    paths = [p for key in ("grid", "zip") for p in (spec or {}).get(key, {}) if p in table]
    return paths or swept_columns(table)


def _axes_of(table: pd.DataFrame, swept: list[str] | None) -> tuple[str, list[str]]:
    """The x path (the first swept path containing "band", else the first) and the others."""
    if not (swept := swept or _swept(table)):
        raise ValueError("the sweep table has no swept path")
    x = next((p for p in swept if "band" in p), swept[0])
    return x, [p for p in swept if p != x]


def _label(path: str, scenario=None) -> str:
    """``path (unit)``; a dealer's band in its ``band_unit`` when the scenario is known."""
    parts, unit = path.split("."), _UNITS.get(path.split(".")[-1])
    if parts[-1] == "band" and scenario is not None and parts[:1] == ["dealers"]:
        band_unit = scenario.dealers[int(parts[1])].band_unit
        unit = _BAND_UNITS.get(band_unit, band_unit)
    return f"{path} ({unit})" if unit else path


def _group_label(paths: list[str], values) -> str:
    """``band=500, qty=-1000 (short gamma)``: last path parts (full paths if ambiguous);
    a dealer's option quantity says which gamma sign it gives."""
    values = values if isinstance(values, tuple) else (values,)
    short = [p.split(".")[-1] for p in paths]
    names = short if len(set(short)) == len(short) else paths
    out = []
    for path, name, v in zip(paths, names, values, strict=True):
        text = f"{name}={v}"
        if path.endswith(".qty") and ".positions." in path and isinstance(v, int | float):
            text += " (long gamma)" if v > 0 else " (short gamma)" if v < 0 else " (no gamma)"
        out.append(text)
    return ", ".join(out)


def _t975(df):
    """Student's t 97.5% quantile, ``df`` >= 1 (a table, then ``1.96 + 2.5 / df``: < 0.7% off)."""
    table = np.array([np.nan, 12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23])
    df = np.asarray(df, dtype=int)
    return np.where(df <= 10, table[np.clip(df, 0, 10)], 1.96 + 2.5 / np.maximum(df, 1))


def _ok(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["status"] == "ok"] if "status" in table else table


@_styled
def plot_vol_vs_parameter(table, metric="realized_vol", *, swept=None, scenario=None) -> Figure:
    """Mean ``metric`` of a sweep table against the swept band (else the first swept path)
    with a 95% confidence band over seeds (Student t), one line per combination of the
    other swept paths (e.g. one per gamma sign). ``swept`` (paths) defaults to the
    table's; ``scenario`` (the sweep's base) gives a band its unit."""
    x, groups = _axes_of(table, swept)
    ok = _ok(table)
    numeric = pd.api.types.is_numeric_dtype(ok[x])
    fig, [[ax]] = _figure(size=(8, 5))
    for key, part in ok.groupby(groups, dropna=False) if groups else [((), ok)]:
        stats = part.groupby(x)[metric].agg(["mean", "std", "count"]).sort_index()
        half = _t975(stats["count"] - 1) * stats["std"] / np.sqrt(stats["count"])  # 1 run: NaN
        xs = stats.index.to_numpy(dtype=float) if numeric else np.arange(len(stats))
        label = _group_label(groups, key) if groups else f"mean over {len(part)} runs"
        (line,) = ax.plot(xs, stats["mean"], marker="o", label=label)
        lo, hi = stats["mean"] - half, stats["mean"] + half
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2)
        if not numeric:
            ax.set_xticks(xs, [str(v) for v in stats.index])
    positive = ok[x][ok[x] > 0] if numeric else []
    if len(positive) and positive.max() >= 20 * positive.min():  # a geometric grid
        ax.set_xscale("symlog", linthresh=positive.min(), linscale=0.5)
    title = f"{metric} vs {x}: mean and 95% confidence band over seeds"
    ax.set(xlabel=_label(x, scenario), ylabel=_METRICS.get(metric, metric), title=title)
    ax.legend(title="shaded: 95% confidence interval of the mean", loc="best")
    return fig


@_styled
def plot_sweep_heatmap(table, metric="realized_vol", *, swept=None, scenario=None) -> Figure:
    """Mean ``metric`` over seeds on a grid of two swept paths (x as in
    :func:`plot_vol_vs_parameter`, y the first other path; any further paths averaged)."""
    x, others = _axes_of(table, swept)
    if not others:
        raise ValueError("a heatmap needs two swept paths")
    grid = _ok(table).pivot_table(index=others[0], columns=x, values=metric, aggfunc="mean")
    values = grid.to_numpy(dtype=float)
    fig, [[ax]] = _figure(size=(7.5, 5))
    image = ax.imshow(np.ma.masked_invalid(values), origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [str(i) for i in grid.index])
    ax.grid(False)
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            color = "black" if image.norm(v) > 0.6 else "white"
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=8, color=color)
    fig.colorbar(image, ax=ax, label=f"mean {_METRICS.get(metric, metric)}")
    title = f"mean {metric} over seeds" + (f", averaged over {others[1:]}" if others[1:] else "")
    ax.set(xlabel=_label(x, scenario), ylabel=_label(others[0], scenario), title=title)
    return fig


@_styled
def plot_sweep_distributions(table, *, swept=None, scenario=None) -> Figure:
    """Per grid point, across seeds: realized vol and lag-1 return autocorrelation (< 0:
    reversal, long gamma; > 0: momentum, short gamma) as boxes, each run a dot (a sweep
    keeps metrics, not returns). ``scenario`` is unused (the sweep figures' signature)."""
    ok = _ok(table)
    swept = _swept(table) if swept is None else swept
    groups = list(ok.groupby(swept, dropna=False, sort=True)) if swept else [((), ok)]
    labels = [_group_label(swept, key) if swept else "all runs" for key, _ in groups]
    metrics = [m for m in ("realized_vol", "autocorr_lag1") if m in ok]
    fig, axes = _figure(1, len(metrics), size=(12, 0.4 * len(groups) + 2.5), sharey=True)
    jitter = np.random.default_rng(0)
    for ax, metric in zip(axes[0], metrics, strict=True):
        data = [part[metric].dropna().to_numpy() for _, part in groups]
        ax.boxplot(data, orientation="horizontal", widths=0.6, manage_ticks=False)
        for i, d in enumerate(data, start=1):
            y, label = i + jitter.uniform(-0.15, 0.15, d.size), "one run" if i == 1 else None
            ax.plot(d, y, "o", ms=3, alpha=0.6, color=_VIEW["true"], label=label)
        ax.set(xlabel=_METRICS.get(metric, metric), title=f"{metric} across seeds")
    if "autocorr_lag1" in metrics:
        axes[0, -1].axvline(0.0, color="grey", lw=0.8)
    axes[0, 0].set(yticks=range(1, len(labels) + 1), yticklabels=labels, ylabel="grid point")
    axes[0, 0].legend(loc="best")
    return fig


def save_sweep_plots(directory: str | os.PathLike) -> list[Path]:
    """Write vol_vs_band.png (if a path was swept), heatmap.png (two or more) and
    distributions.png from a sweep directory (results.parquet; sweep.json names the
    swept paths, scenario.yaml their units); returns the paths (none if no run is ok)."""
    from mmsim.scenario import load_scenario

    directory = Path(directory)
    with reading(directory / "results.parquet") as file:
        table = pd.read_parquet(file)
    spec, base = directory / "sweep.json", directory / "scenario.yaml"
    with reading(spec) as file:
        swept = _swept(table, json.loads(file.read_text()) if file.is_file() else None)
    with reading(base) as file:
        kw = {"swept": swept, "scenario": load_scenario(file) if file.is_file() else None}
    figures = {
        "vol_vs_band.png": plot_vol_vs_parameter if swept else None,
        "heatmap.png": plot_sweep_heatmap if len(swept) >= 2 else None,
        "distributions.png": plot_sweep_distributions,
    }
    if not len(_ok(table)):
        return []
    return [_save(plot(table, **kw), directory / name) for name, plot in figures.items() if plot]


def save_plots(directory: str | os.PathLike) -> list[Path]:
    """The PNGs of a run directory (meta.json) or a sweep directory (results.parquet)."""
    directory = Path(directory)
    if (directory / "meta.json").is_file():
        return save_run_plots(load_result(directory), directory)
    if (directory / "results.parquet").is_file():
        return save_sweep_plots(directory)
    what = "neither a run directory (meta.json) nor a sweep directory (results.parquet)"
    raise ResultError(f"{directory}: {what}")


# -- one book (mmsim gex) ---------------------------------------------------------------
@_styled
def plot_gex_views(book, S: float, t: float, vol, title: str) -> Figure:
    """True vs visible GEX of an ``OptionBook``: profiles over spot (top) and net GEX by
    strike (bottom), $M per 1% move; each view's flip and walls marked."""
    fig, axes = _figure(2, 1, size=(10, 7.5))
    ax_p, ax_s = axes[:, 0]
    _draw_profiles(ax_p, book, S, t, vol, S * np.linspace(0.8, 1.2, 161))
    for view, color in _VIEW.items():
        by_strike = book.gex_by_strike(S, t, vol, view)
        strikes = by_strike["strike"] + (-0.2 if view == "true" else 0.2)
        ax_s.bar(strikes, by_strike["net_gex"] / 1e6, 0.4, color=color, label=f"{view} net GEX")
    ax_s.axvline(S, color="black", lw=1, label=f"spot {S:.2f}")
    ax_s.axhline(0.0, color="grey", lw=0.5)
    title = f"{title}: dealers' GEX, true book vs exchange-visible view"
    xlabel = "hypothetical spot ($)  (^ call wall, v put wall)"
    ax_p.set(xlabel=xlabel, ylabel="net GEX ($M per 1% move)", title=title)
    ax_s.set(xlabel="strike ($)", ylabel="net GEX by strike ($M per 1%)")
    ax_p.legend(ncols=2)
    ax_s.legend()
    return fig


def save_gex_plot(book, S: float, t: float, vol, path: str | os.PathLike, title: str = "") -> Path:
    """Write :func:`plot_gex_views` to ``path`` (PNG); returns the path."""
    return _save(plot_gex_views(book, S, t, vol, title), Path(path))
