"""Matplotlib figures of runs and sweeps. Never imported by the core; figures are
returned (``plot_*``) or written as PNGs (``save_*``), never shown."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mmsim.result import Result, load_result

__all__ = [
    "plot_dealers",
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

_BUY, _SELL = "#1a9850", "#d73027"
_ABOVE, _BELOW = "#abd9e9", "#fdae61"  # regime shading: above / below the true flip
STYLE = {
    "figure.dpi": 100,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 11,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
}


@contextmanager
def _style():
    with plt.rc_context(STYLE):
        yield


def _hours(t) -> np.ndarray:
    return np.asarray(t, dtype=float) / 3600.0


def _shade_regimes(ax, series: pd.DataFrame) -> None:
    """Shade time above the true flip blue and below it orange."""
    hours, regime = _hours(series["t"]), series["regime"].to_numpy()
    for value, color, label in (
        (1.0, _ABOVE, "above flip (long gamma)"),
        (-1.0, _BELOW, "below flip (short gamma)"),
    ):
        mask = regime == value
        if mask.any():
            ax.fill_between(
                hours,
                0,
                1,
                where=mask,
                color=color,
                alpha=0.35,
                lw=0,
                transform=ax.get_xaxis_transform(),
                label=label,
                step="post",
            )


def _mark_episodes(ax, episodes: pd.DataFrame) -> None:
    for i, ep in enumerate(episodes.itertuples()):
        style = "-" if ep.view == "visible" else ":"
        ax.axvspan(ep.start / 3600.0, ep.end / 3600.0, color="grey", alpha=0.12, lw=0)
        ax.axvline(
            ep.start / 3600.0,
            color="purple",
            ls=style,
            lw=1.2,
            label="episode start" if i == 0 else None,
        )
        ax.annotate(
            f"{ep.kind} ({ep.view})\n{ep.primary_cause}",
            (ep.start / 3600.0, 0.98),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            va="top",
            color="purple",
            rotation=90,
        )


def plot_run(result: Result) -> Figure:
    """Price with walls and flips of both views, regime shading, episodes and the
    dealers' hedge trades (green buys, red sells, sized by shares)."""
    s, tr = result.series, result.trades
    hours = _hours(s["t"])
    with _style():
        fig, ax = plt.subplots(figsize=(11, 5.5), layout="constrained")
        _shade_regimes(ax, s)
        ax.plot(hours, s["price"], color="black", lw=1.0, label="price")
        for col, color, style, label in (
            ("flip_true", "#2c7bb6", "--", "flip (true)"),
            ("flip_visible", "#d7191c", "--", "flip (visible)"),
            ("call_wall", "#2c7bb6", "-", "call wall (true)"),
            ("put_wall", "#2c7bb6", "-.", "put wall (true)"),
            ("call_wall_visible", "#d7191c", "-", "call wall (visible)"),
            ("put_wall_visible", "#d7191c", "-.", "put wall (visible)"),
        ):
            if col in s and s[col].notna().any():
                ax.plot(hours, s[col], color=color, ls=style, lw=0.9, alpha=0.8, label=label)
        dealer = tr[tr["kind"] == "dealer"]
        if len(dealer):
            size = np.abs(dealer["qty"].to_numpy())
            scale = 40.0 / max(size.max(), 1.0)
            buys = (dealer["qty"] > 0).to_numpy()
            for mask, color, label in ((buys, _BUY, "dealer buys"), (~buys, _SELL, "dealer sells")):
                ax.scatter(
                    _hours(dealer["t"][mask]),
                    dealer["price_before"][mask],
                    s=3 + scale * size[mask],
                    c=color,
                    alpha=0.45,
                    lw=0,
                    label=label,
                )
        _mark_episodes(ax, result.episodes)
        lo, hi = s["price"].min(), s["price"].max()
        pad = 0.25 * (hi - lo) + 1e-9
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_ylabel("price ($)")
        ax.set_xlabel("trading time (hours)")
        ax.set_title(
            f"{result.scenario.name}: price, walls, flip and dealer hedging "
            f"(realized vol {result.metrics['realized_vol']:.1%})"
        )
        ax.legend(loc="upper left", ncols=3)
    return fig


def plot_dealers(result: Result) -> Figure:
    """Per dealer: net delta (shares), share gamma (shares per $1) and cumulative hedge
    demand by cause (spot/gamma, time/charm, vol/vanna, other), in shares."""
    s, names = result.series, result.scenario.dealer_names()
    hours = _hours(s["t"])
    with _style():
        fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True, layout="constrained")
        for name in names or ["(no dealer)"]:
            if f"{name}.delta" not in s:
                continue
            axes[0].plot(hours, s[f"{name}.delta"], lw=0.9, label=name)
            axes[1].plot(hours, s[f"{name}.gamma"], lw=0.9, label=name)
            for part, style in (("gamma", "-"), ("charm", "--"), ("vanna", ":"), ("other", "-.")):
                axes[2].plot(
                    hours, s[f"{name}.flow_{part}"], ls=style, lw=0.9, label=f"{name}: {part}"
                )
        axes[0].set_ylabel("net delta (shares)")
        axes[0].set_title(f"{result.scenario.name}: dealers' delta, gamma and hedge flow")
        axes[1].set_ylabel("share gamma (shares per $1)")
        axes[2].set_ylabel("cum. hedge demand (shares)")
        axes[2].set_xlabel("trading time (hours)")
        for ax in axes:
            ax.axhline(0.0, color="grey", lw=0.5)
            ax.legend(loc="best", ncols=2)
    return fig


def plot_vol_regimes(result: Result, window: float = 1800.0) -> Figure:
    """Rolling realized vol (annualized, over ``window`` s) with the regime shaded."""
    s, sc = result.series, result.scenario
    every = sc.record.every
    n = max(round(window / every), 2)
    r = np.log(s["price"]).diff()
    vol = r.rolling(n).std() * np.sqrt(sc.clock.year_seconds / every)
    with _style():
        fig, ax = plt.subplots(figsize=(11, 4), layout="constrained")
        _shade_regimes(ax, s)
        ax.plot(
            _hours(s["t"]),
            vol,
            color="black",
            lw=1.0,
            label=f"realized vol, {window / 60:g} min window",
        )
        ax.axhline(sc.vol.atm, color="grey", ls="--", lw=0.8, label="implied vol at start")
        ax.set_xlabel("trading time (hours)")
        ax.set_ylabel("realized vol (annualized)")
        ax.set_title(f"{sc.name}: realized volatility by regime")
        ax.legend(loc="upper left")
    return fig


def plot_returns_by_regime(result: Result) -> Figure:
    """Histograms of sampled log returns (bp) above and below the true flip."""
    s = result.series
    r = np.diff(np.log(s["price"].to_numpy())) * 1e4
    regime = s["regime"].to_numpy()[:-1]
    with _style():
        fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
        bins = np.linspace(np.percentile(r, 0.5), np.percentile(r, 99.5), 60) if r.size else 10
        for value, color, label in (
            (1.0, "#2c7bb6", "above flip"),
            (-1.0, "#d7191c", "below flip"),
            (0.0, "grey", "no flip"),
        ):
            sel = r[regime == value]
            if sel.size > 1:
                ax.hist(
                    sel,
                    bins=bins,
                    density=True,
                    alpha=0.5,
                    color=color,
                    label=f"{label}: n={sel.size}, sd={sel.std():.2f} bp",
                )
        ax.set_xlabel(f"log return per {result.scenario.record.every:g} s (bp)")
        ax.set_ylabel("density")
        ax.set_title(f"{result.scenario.name}: returns by regime")
        ax.legend()
    return fig


def _gex_snapshots(result: Result, times) -> Figure:
    """GEX profiles (true and visible) at ``times``: the run is replayed (same seed, so
    the same book) up to each time."""
    from mmsim.engine import Simulation

    sim = Simulation(result.scenario, result.entropy)
    with _style():
        fig, axes = plt.subplots(
            1, len(times), figsize=(4.2 * len(times), 4), layout="constrained", squeeze=False
        )
        for ax, t in zip(axes[0], sorted(times), strict=True):
            sim.advance(t)
            S, book, vol = sim.market.mid, sim.book, sim.vol
            grid = S * np.linspace(0.85, 1.15, 121)
            for view, color in (("true", "#2c7bb6"), ("visible", "#d7191c")):
                ax.plot(
                    grid,
                    book.gex_profile(grid, sim.env.now, vol, view) / 1e6,
                    color=color,
                    label=view,
                )
            ax.axvline(S, color="black", lw=1, label=f"spot {S:.2f}")
            ax.axhline(0.0, color="grey", lw=0.5)
            ax.set_title(f"t = {t / 3600:.2f} h")
            ax.set_xlabel("hypothetical spot ($)")
        axes[0][0].set_ylabel("net GEX ($M per 1% move)")
        axes[0][0].legend()
        fig.suptitle(f"{result.scenario.name}: dealers' GEX profile, true vs visible")
    return fig


def save_run_plots(result: Result, directory: str | os.PathLike) -> list[Path]:
    """Write price.png, dealers.png, vol_regimes.png, returns_by_regime.png and
    gex_profile.png (GEX at the open, mid-run and the close) into ``directory``."""
    directory = Path(directory)
    end = result.scenario.clock.duration
    figures = {
        "price.png": lambda: plot_run(result),
        "dealers.png": lambda: plot_dealers(result),
        "vol_regimes.png": lambda: plot_vol_regimes(result),
        "returns_by_regime.png": lambda: plot_returns_by_regime(result),
        "gex_profile.png": lambda: _gex_snapshots(result, [0.0, end / 2, end * 0.999]),
    }
    return [_save(make(), directory / name) for name, make in figures.items()]


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- sweeps -----------------------------------------------------------------------------
def _sweep_axes(table: pd.DataFrame) -> tuple[str, list[str]]:
    """The x-axis path (one containing "band" if any) and the grouping paths."""
    from mmsim.sweep import swept_columns

    swept = swept_columns(table)
    if not swept:
        raise ValueError("the sweep table has no swept column")
    x = next((c for c in swept if "band" in c), swept[0])
    return x, [c for c in swept if c != x]


def _group_label(keys, values) -> str:
    values = values if isinstance(values, tuple) else (values,)
    return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in zip(keys, values, strict=True))


def plot_vol_vs_parameter(table: pd.DataFrame, metric: str = "realized_vol") -> Figure:
    """Mean ``metric`` against the swept band (or first swept path) with a 95% band over
    seeds, one line per combination of the other swept paths."""
    x, groups = _sweep_axes(table)
    ok = table[table["status"] == "ok"]
    with _style():
        fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
        for key, part in ok.groupby(groups) if groups else [((), ok)]:
            stats = part.groupby(x)[metric].agg(["mean", "std", "count"]).sort_index()
            half = 1.96 * stats["std"].fillna(0.0) / np.sqrt(stats["count"])
            xs = stats.index.to_numpy(dtype=float)
            label = _group_label(groups, key) if groups else metric
            ax.plot(xs, stats["mean"], marker="o", label=label)
            ax.fill_between(xs, stats["mean"] - half, stats["mean"] + half, alpha=0.2)
        ax.set_xlabel(x + (" (shares)" if "band" in x else ""))
        ax.set_ylabel(metric.replace("_", " ") + (" (annualized)" if "vol" in metric else ""))
        ax.set_title(f"{metric} vs {x}: mean and 95% band over seeds")
        ax.legend()
    return fig


def plot_sweep_heatmap(table: pd.DataFrame, metric: str = "realized_vol") -> Figure:
    """Mean ``metric`` over the first two swept paths (others averaged)."""
    x, groups = _sweep_axes(table)
    y = groups[0]
    ok = table[table["status"] == "ok"]
    grid = ok.pivot_table(index=y, columns=x, values=metric, aggfunc="mean")
    with _style():
        fig, ax = plt.subplots(figsize=(7, 5), layout="constrained")
        image = ax.imshow(grid.to_numpy(), origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
        ax.set_yticks(range(grid.shape[0]), [str(i) for i in grid.index])
        for (i, j), v in np.ndenumerate(grid.to_numpy()):
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", color="white", fontsize=8)
        fig.colorbar(image, ax=ax, label=metric.replace("_", " "))
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_title(f"mean {metric} over {x} and {y}")
    return fig


def plot_sweep_distributions(table: pd.DataFrame) -> Figure:
    """Distributions across seeds of realized vol and lag-1 return autocorrelation, one
    box per grid point."""
    ok = table[table["status"] == "ok"]
    from mmsim.sweep import swept_columns

    swept = swept_columns(table)
    points = sorted(ok["point"].unique())
    labels = [_group_label(swept, tuple(ok[ok["point"] == p][swept].iloc[0])) for p in points]
    with _style():
        fig, axes = plt.subplots(1, 2, figsize=(12, 0.35 * len(points) + 2.5), layout="constrained")
        for ax, metric, unit in (
            (axes[0], "realized_vol", "annualized"),
            (axes[1], "autocorr_lag1", "lag 1"),
        ):
            data = [ok[ok["point"] == p][metric].to_numpy() for p in points]
            ax.boxplot(data, orientation="horizontal", tick_labels=labels)
            ax.set_xlabel(f"{metric.replace('_', ' ')} ({unit})")
            ax.set_title(f"{metric} across seeds")
        axes[1].axvline(0.0, color="grey", lw=0.5)
        axes[1].set_yticklabels([])
    return fig


def save_sweep_plots(directory: str | os.PathLike) -> list[Path]:
    """Write vol_vs_band.png, heatmap.png (two or more swept paths) and
    distributions.png from a sweep directory's results.parquet."""
    directory = Path(directory)
    table = pd.read_parquet(directory / "results.parquet")
    if not (table["status"] == "ok").any():
        return []
    paths = [_save(plot_vol_vs_parameter(table), directory / "vol_vs_band.png")]
    if len(_sweep_axes(table)[1]) >= 1:
        paths.append(_save(plot_sweep_heatmap(table), directory / "heatmap.png"))
    paths.append(_save(plot_sweep_distributions(table), directory / "distributions.png"))
    return paths


def save_plots(directory: str | os.PathLike) -> list[Path]:
    """The PNGs of a run directory (meta.json) or a sweep directory (results.parquet)."""
    directory = Path(directory)
    if (directory / "meta.json").is_file():
        return save_run_plots(load_result(directory), directory)
    if (directory / "results.parquet").is_file():
        return save_sweep_plots(directory)
    raise FileNotFoundError(f"{directory}: neither a run nor a sweep directory")


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
