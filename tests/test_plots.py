"""Figures: each plot function draws labelled axes; the save functions write PNGs."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import mmsim
from mmsim import plots


@pytest.fixture(scope="module")
def result():
    return mmsim.run(
        "scenarios/multi_dealer_bands.yaml",
        seed=1,
        overrides={"clock.days": 0.05, "record.every": 10.0, "record.levels_every": 60.0},
    )


@pytest.fixture
def sweep_dir(tmp_path):
    """A synthetic sweep: 2 swept paths x 3 seeds."""
    rows = []
    rng = np.random.default_rng(0)
    for p, (band, qty) in enumerate([(b, q) for b in (0, 500, 2000) for q in (1000, -1000)]):
        for k in range(3):
            rows.append(
                {
                    "point": p,
                    "replicate": k,
                    "seed": k,
                    "run_id": f"{p}-{k}",
                    "dealers.0.band": band,
                    "dealers.0.positions.0.qty": qty,
                    "status": "ok",
                    "error": "",
                    "realized_vol": 0.16 + 1e-5 * band * np.sign(qty) + 0.01 * rng.random(),
                    "autocorr_lag1": rng.normal(0, 0.05),
                }
            )
    pd.DataFrame(rows).to_parquet(tmp_path / "results.parquet")
    (tmp_path / "sweep.json").write_text(json.dumps({"grid": {}, "zip": {}, "seeds": [0]}))
    return tmp_path


def labelled(fig) -> bool:
    """Every axes has an axis label, and the figure a title (axes or figure level)."""
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    titled = any(ax.get_title() for ax in axes) or fig._suptitle is not None
    return titled and all(ax.get_xlabel() or ax.get_ylabel() for ax in axes)


@pytest.mark.parametrize(
    "fn, n_axes",
    [
        (plots.plot_run, 1),
        (plots.plot_dealers, 3),
        (plots.plot_vol_regimes, 1),
        (plots.plot_returns_by_regime, 1),
    ],
)
def test_run_figures_have_labelled_axes_with_data(result, fn, n_axes):
    fig = fn(result)
    assert len(fig.axes) == n_axes and labelled(fig)
    assert all(ax.lines or ax.collections or ax.patches for ax in fig.axes)
    assert (
        "$" in fig.axes[0].get_ylabel()
        or "shares" in fig.axes[0].get_ylabel()
        or ("vol" in fig.axes[0].get_ylabel() or "density" in fig.axes[0].get_ylabel())
    )
    plt.close(fig)


def test_price_plot_draws_walls_of_both_views(result):
    fig = plots.plot_run(result)
    labels = {line.get_label() for line in fig.axes[0].lines}
    assert {"price", "call wall (true)", "call wall (visible)"} <= labels
    plt.close(fig)


def test_save_run_plots_writes_five_pngs(result, tmp_path):
    paths = plots.save_run_plots(result, tmp_path)
    assert {p.name for p in paths} == {
        "price.png",
        "dealers.png",
        "vol_regimes.png",
        "returns_by_regime.png",
        "gex_profile.png",
    }
    assert all(p.stat().st_size > 10_000 for p in paths)


@pytest.mark.parametrize(
    "fn, n_axes",
    [
        (plots.plot_vol_vs_parameter, 1),
        (plots.plot_sweep_heatmap, 2),
        (plots.plot_sweep_distributions, 2),
    ],
)
def test_sweep_figures(sweep_dir, fn, n_axes):
    fig = fn(pd.read_parquet(sweep_dir / "results.parquet"))
    assert len(fig.axes) == n_axes and labelled(fig)
    plt.close(fig)


def test_vol_vs_band_has_one_line_per_gamma_sign(sweep_dir):
    fig = plots.plot_vol_vs_parameter(pd.read_parquet(sweep_dir / "results.parquet"))
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and ax.get_xlabel().startswith("dealers.0.band")
    plt.close(fig)


def test_save_plots_dispatches_on_the_directory(result, sweep_dir, tmp_path):
    assert {p.name for p in plots.save_plots(sweep_dir)} == {
        "vol_vs_band.png",
        "heatmap.png",
        "distributions.png",
    }
    run_dir = result.save(tmp_path / "run")
    assert len(plots.save_plots(run_dir)) == 5
    with pytest.raises(FileNotFoundError, match="neither"):
        plots.save_plots((tmp_path / "empty").resolve())
