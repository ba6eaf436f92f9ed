"""Sweep figures: a metric against one swept path (mean +- standard error over seeds, one
line per combination of the others), on a grid of two paths, and its spread per point.

Files are named after the metric and the axes (``realized_vol_vs_band.png``,
``realized_vol_by_band_and_qty.png``, ``distributions.png``). Colours and labels are the
run figures' (:mod:`mmsim.plotkit`): long gamma blue, short gamma red.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mmsim.plotkit import GAMMA, VIEW, figure, save, styled
from mmsim.result import reading

__all__ = [
    "figure_names",
    "plot_sweep_distributions",
    "plot_sweep_heatmap",
    "plot_vol_vs_parameter",
    "point_stats",
    "save_sweep_plots",
]

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


def _ok(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["status"] == "ok"] if "status" in table else table


def point_stats(table: pd.DataFrame, metric: str = "realized_vol", swept=None) -> pd.DataFrame:
    """Per grid point (the swept paths' values), over its ok runs: ``n``, ``mean`` and
    ``se`` (standard error of the mean, ``std / sqrt(n)``; NaN for one run) of
    ``metric``, in the metric's unit."""
    swept = _swept(table) if swept is None else list(swept)
    ok = _ok(table)
    if not swept:
        ok = ok.assign(_all="all runs")
        swept = ["_all"]
    stats = ok.groupby(swept, dropna=False, sort=True)[metric].agg(["count", "mean", "std"])
    stats["se"] = stats["std"] / np.sqrt(stats["count"])
    stats = stats.rename(columns={"count": "n"}).drop(columns="std").reset_index()
    return stats.drop(columns="_all", errors="ignore")


def _gamma_color(paths: list[str], values) -> str | None:
    """Long-gamma blue, short-gamma red when a swept option quantity gives the sign."""
    values = values if isinstance(values, tuple) else (values,)
    for path, v in zip(paths, values, strict=True):
        if path.endswith(".qty") and ".positions." in path and isinstance(v, int | float) and v:
            return GAMMA["long"] if v > 0 else GAMMA["short"]
    return None


@styled
def plot_vol_vs_parameter(table, metric="realized_vol", *, swept=None, scenario=None) -> Figure:
    """Mean ``metric`` of a sweep table against the swept band (else the first swept path),
    error bars one standard error of the mean over seeds, one line per combination of the
    other swept paths (e.g. one per gamma sign, long blue, short red). ``swept`` (paths)
    defaults to the table's; ``scenario`` (the sweep's base) gives a band its unit."""
    x, groups = _axes_of(table, swept)
    ok = _ok(table)
    numeric = pd.api.types.is_numeric_dtype(ok[x])
    fig, [[ax]] = figure(size=(8, 5))
    seeds = ok.groupby([x, *groups], dropna=False)[metric].count()
    for key, part in ok.groupby(groups, dropna=False) if groups else [((), ok)]:
        stats = point_stats(part, metric, [x]).set_index(x).sort_index()
        xs = stats.index.to_numpy(dtype=float) if numeric else np.arange(len(stats))
        label = _group_label(groups, key) if groups else f"mean over {len(part)} runs"
        color = _gamma_color(groups, key) if groups else None
        ax.errorbar(
            xs, stats["mean"], yerr=stats["se"], marker="o", capsize=3, label=label, color=color
        )
        if not numeric:
            ax.set_xticks(xs, [str(v) for v in stats.index])
    positive = ok[x][ok[x] > 0] if numeric else []
    if len(positive) and positive.max() >= 20 * positive.min():  # a geometric grid
        ax.set_xscale("symlog", linthresh=positive.min(), linscale=0.5)
    n = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
    title = f"{metric} vs {x.split('.')[-1]}: mean ± standard error over {n} seeds per point"
    ax.set(xlabel=_label(x, scenario), ylabel=_METRICS.get(metric, metric), title=title)
    ax.yaxis.set_major_locator(mpl.ticker.MaxNLocator(8, prune="lower"))  # clear of x ticks
    if metric.endswith("_vol") and metric != "dealer_pnl_vol":  # as in the run figures
        ax.yaxis.set_major_formatter(mpl.ticker.PercentFormatter(1.0))
    ax.legend(loc="best")
    return fig


@styled
def plot_sweep_heatmap(table, metric="realized_vol", *, swept=None, scenario=None) -> Figure:
    """Mean ``metric`` over seeds on a grid of two swept paths (x as in
    :func:`plot_vol_vs_parameter`, y the first other path; any further paths averaged)."""
    x, others = _axes_of(table, swept)
    if not others:
        raise ValueError("a heatmap needs two swept paths")
    grid = _ok(table).pivot_table(index=others[0], columns=x, values=metric, aggfunc="mean")
    values = grid.to_numpy(dtype=float)
    fig, [[ax]] = figure(size=(7.5, 5))
    image = ax.imshow(np.ma.masked_invalid(values), origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
    ax.set_yticks(range(grid.shape[0]), [str(i) for i in grid.index])
    ax.grid(False)
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            color = "black" if image.norm(v) > 0.6 else "white"
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=8, color=color)
    fig.colorbar(image, ax=ax, label=f"mean {_METRICS.get(metric, metric)}")
    names = f"{x.split('.')[-1]} x {others[0].split('.')[-1]}"
    title = f"mean {metric} over seeds by {names}"
    title += f", averaged over {others[1:]}" if others[1:] else ""
    ax.set(xlabel=_label(x, scenario), ylabel=_label(others[0], scenario), title=title)
    return fig


@styled
def plot_sweep_distributions(table, *, swept=None, scenario=None) -> Figure:
    """Per grid point, across seeds: realized vol and lag-1 return autocorrelation (< 0:
    reversal, long gamma; > 0: momentum, short gamma) as boxes, each run a dot (a sweep
    keeps metrics, not returns). ``scenario`` is unused (the sweep figures' signature)."""
    ok = _ok(table)
    swept = _swept(table) if swept is None else swept
    groups = list(ok.groupby(swept, dropna=False, sort=True)) if swept else [((), ok)]
    labels = [_group_label(swept, key) if swept else "all runs" for key, _ in groups]
    metrics = [m for m in ("realized_vol", "autocorr_lag1") if m in ok]
    fig, axes = figure(1, len(metrics), size=(12, 0.4 * len(groups) + 2.5), sharey=True)
    jitter = np.random.default_rng(0)
    for ax, metric in zip(axes[0], metrics, strict=True):
        data = [part[metric].dropna().to_numpy() for _, part in groups]
        ax.boxplot(data, orientation="horizontal", widths=0.6, manage_ticks=False)
        for i, (d, (key, _)) in enumerate(zip(data, groups, strict=True), start=1):
            y, label = i + jitter.uniform(-0.15, 0.15, d.size), "one run" if i == 1 else None
            color = (_gamma_color(swept, key) if swept else None) or VIEW["true"]
            ax.plot(d, y, "o", ms=3, alpha=0.7, color=color, label=label)
        ax.set(xlabel=_METRICS.get(metric, metric), title=f"{metric} across seeds")
        if metric == "realized_vol":
            ax.xaxis.set_major_formatter(mpl.ticker.PercentFormatter(1.0))
        ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(5, prune="both"))
    if "autocorr_lag1" in metrics:
        axes[0, -1].axvline(0.0, color="grey", lw=0.8)
    axes[0, 0].set(yticks=range(1, len(labels) + 1), yticklabels=labels, ylabel="grid point")
    axes[0, 0].legend(loc="best")
    return fig


def figure_names(swept: list[str], metric: str = "realized_vol") -> dict[str, str]:
    """File name -> figure kind (``line``, ``heatmap``, ``distributions``) for a sweep over
    ``swept`` paths: named after the metric and the axes' last path parts."""
    if not swept:
        return {"distributions.png": "distributions"}
    x, others = _axes_of(pd.DataFrame(columns=swept), swept)
    short = x.split(".")[-1]
    names = {f"{metric}_vs_{short}.png": "line"}
    if others:
        names[f"{metric}_by_{short}_and_{others[0].split('.')[-1]}.png"] = "heatmap"
    names["distributions.png"] = "distributions"
    return names


def save_sweep_plots(
    directory: str | os.PathLike, metric: str = "realized_vol", kinds: Collection[str] | None = None
) -> list[Path]:
    """Write the figures of :func:`figure_names` from a sweep directory (results.parquet;
    sweep.json names the swept paths, scenario.yaml their units): ``<metric>_vs_<x>.png``
    (one line per combination of the other paths), ``<metric>_by_<x>_and_<y>.png`` (two
    or more swept paths) and ``distributions.png``; with ``kinds``, only the figures of
    those kinds. Returns the paths (none if no run is ok)."""
    from mmsim.scenario import load_scenario

    directory = Path(directory)
    with reading(directory / "results.parquet") as file:
        table = pd.read_parquet(file)
    spec, base = directory / "sweep.json", directory / "scenario.yaml"
    with reading(spec) as file:
        swept = _swept(table, json.loads(file.read_text()) if file.is_file() else None)
    with reading(base) as file:
        kw = {"swept": swept, "scenario": load_scenario(file) if file.is_file() else None}
    if not len(_ok(table)):
        return []
    makers = {
        "line": lambda: plot_vol_vs_parameter(table, metric, **kw),
        "heatmap": lambda: plot_sweep_heatmap(table, metric, **kw),
        "distributions": lambda: plot_sweep_distributions(table, **kw),
    }
    names = figure_names(swept, metric).items()
    return [
        save(makers[kind](), directory / name)
        for name, kind in names
        if kinds is None or kind in kinds
    ]
