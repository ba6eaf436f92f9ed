"""Figures: every plot function draws titled, labelled (with units) axes holding data; the
save functions write PNGs; the GEX snapshot rebuilds the book the run had."""

from __future__ import annotations

import dataclasses
import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import mmsim
from mmsim import plots
from mmsim.scenario import dump_scenario_yaml

SMALL = {"clock.days": 0.05, "record.every": 10.0, "record.levels_every": 60.0}
GRID = {"dealers.0.band": [0, 500, 2000], "dealers.0.positions.0.qty": [2000, -2000]}
SEEDS = [11, 12, 13]


@pytest.fixture(scope="module")
def result():
    return mmsim.run("scenarios/multi_dealer_bands.yaml", seed=1, overrides=SMALL)


def sweep_table(failed: bool = False) -> pd.DataFrame:
    """Rows laid out as mmsim.sweep writes them: 2 swept paths x 3 seeds. Long gamma
    dampens vol at a zero band, short gamma amplifies it; both tend to 0.16 as it widens."""
    rng = np.random.default_rng(0)
    rows = []
    for p, (band, qty) in enumerate((b, q) for b in GRID["dealers.0.band"] for q in (2000, -2000)):
        for k, seed in enumerate(SEEDS):
            effect = 0.4 * np.sign(qty) * np.exp(-band / 500)
            rows.append(
                {
                    "point": p,
                    "replicate": k,
                    "seed": seed,
                    "run_id": f"{p}-{k}",
                    "dealers.0.band": band,
                    "dealers.0.positions.0.qty": qty,
                    "status": "ok",
                    "error": "",
                    "realized_vol": 0.16 / (1 + effect) + 0.005 * rng.standard_normal(),
                    "autocorr_lag1": -effect + 0.05 * rng.standard_normal(),
                    "hedge_volume": 1e5 / (1 + band),
                    "hedge_cost": 100.0,
                    "dealer_pnl": rng.normal(),
                }
            )
    if failed:
        rows.append({**rows[0], "run_id": "bad", "status": "error", "error": "boom"})
        rows[-1].update(realized_vol=np.nan, autocorr_lag1=np.nan)
    return pd.DataFrame(rows)


@pytest.fixture
def sweep_dir(tmp_path):
    directory = tmp_path / "sweep"
    directory.mkdir()
    sweep_table(failed=True).to_parquet(directory / "results.parquet", index=False)
    spec = {"grid": GRID, "zip": {}, "seeds": SEEDS, "sweep_seed": None}
    (directory / "sweep.json").write_text(json.dumps(spec))
    scenario = mmsim.load_scenario("scenarios/band_sweep.yaml")
    (directory / "scenario.yaml").write_text(dump_scenario_yaml(scenario))
    return directory


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    """Figures are built without pyplot: nothing to show, nothing left open."""
    yield
    assert plt.get_fignums() == []


def check(fig, n_axes: int) -> None:
    """``n_axes`` axes (colorbars aside), a title, every axes labelled with a unit in
    parentheses on one of its axes, and data drawn on every axes."""
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(axes) == n_axes
    assert any(ax.get_title() for ax in axes) or fig.get_suptitle()
    for ax in axes:
        assert "(" in ax.get_xlabel() + ax.get_ylabel(), (ax.get_xlabel(), ax.get_ylabel())
        assert ax.lines or ax.collections or ax.patches or ax.images
    plt.close(fig)


@pytest.mark.parametrize(
    "fn, n_axes",
    [
        (plots.plot_run, 1),
        (plots.plot_dealers, 4),
        (plots.plot_vol_regimes, 1),
        (plots.plot_returns_by_regime, 1),
        (plots.plot_gex_profile, 3),
    ],
)
def test_run_figures(result, fn, n_axes):
    check(fn(result), n_axes)


def test_price_figure_draws_price_levels_of_both_views_and_hedges(result):
    fig = plots.plot_run(result)
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert "price" in labels
    for name in ("call wall (true)", "call wall (visible)", "put wall (visible)"):
        assert any(label.startswith(name) for label in labels), labels
    handles = [text.get_text() for text in fig.legends[0].get_texts()]
    assert "dealer buys" in handles or "dealer sells" in handles
    assert "above flip (long gamma)" in handles  # the regime shading
    assert fig.axes[0].get_ylabel() == "price ($)"


def test_episodes_are_marked_and_an_empty_table_is_fine(result):
    assert result.episodes.empty  # this short run has none
    plt.close(plots.plot_run(result))
    t0 = float(result.series["t"].iloc[40])
    row = {"start": t0, "end": t0 + 300, "kind": "call_wall_break", "view": "visible"}
    row |= {"level": 450.0, "primary_cause": "overwhelming_flow"}
    marked = dataclasses.replace(result, episodes=pd.DataFrame([row]))
    ax = plots.plot_run(marked).axes[0]
    assert any("call_wall_break" in text.get_text() for text in ax.texts)
    assert any(line.get_label() == "episode: start, level" for line in ax.lines)


def test_dealers_figure_has_every_dealer_and_its_hedge_trades(result):
    fig = plots.plot_dealers(result)
    delta, _, trades, flow = fig.axes
    assert [line.get_label() for line in delta.lines][:3] == ["tight", "normal", "wide"]
    n_trades = (result.trades["kind"] == "dealer").sum()
    assert sum(len(c.get_segments()) for c in trades.collections) == n_trades
    assert {line.get_label().split(":")[0] for line in flow.lines} >= {"gamma", "charm"}


def test_rolling_vol_is_drawn_even_when_the_run_is_shorter_than_the_window(result):
    fig = plots.plot_vol_regimes(result, window=1800.0)  # the run lasts 1,170 s
    vol = fig.axes[0].lines[0].get_ydata()
    assert np.isfinite(vol).sum() > len(vol) // 2
    assert 0.02 < np.nanmedian(vol) < 1.0  # annualized, near the scenario's 14% news vol


def test_returns_by_regime_splits_every_sampled_return(result):
    fig = plots.plot_returns_by_regime(result)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    counts = [int(label.split("n=")[1].split(",")[0]) for label in labels]
    assert sum(counts) == len(result.series) - 1


def test_gex_snapshots_at_chosen_times(result):
    fig = plots.plot_gex_profile(result, times=[0.0, 600.0])
    assert [ax.get_title().split(":")[0] for ax in fig.axes] == ["t = 0.00 h", "t = 0.17 h"]
    plt.close(fig)


def test_book_at_rebuilds_the_runs_gex_and_levels(result):
    """The rebuilt book gives the GEX the run recorded at every sample, and the same flip
    and walls at the samples where the run computed them."""
    s, stride = result.series, 6  # levels every 60 s, samples every 10 s
    for k in range(0, len(s), 17):
        t = float(s["t"].iloc[k])
        book, S, vol = plots.book_at(result, t)
        assert S == s["price"].iloc[k] and vol.level == pytest.approx(s["iv"].iloc[k])
        for view in ("true", "visible"):
            gex = book.gex_at(S, t, vol, view)
            assert gex == pytest.approx(s[f"gex_{view}"].iloc[k], rel=1e-9, abs=1e-6)
    k = (len(s) - 1) // stride * stride
    t = float(s["t"].iloc[k])
    book, S, vol = plots.book_at(result, t)
    flip = book.flip(S, t, vol, "true")
    assert (flip is None) == np.isnan(s["flip_true"].iloc[k])
    if flip is not None:
        assert flip == pytest.approx(s["flip_true"].iloc[k], rel=1e-9)
    assert book.walls(S, t, vol, "visible") == (
        s["call_wall_visible"].iloc[k],
        s["put_wall_visible"].iloc[k],
    )
    assert len(result.option_trades) > 0  # the test means something


def test_book_at_applies_position_events_and_skew_shifts():
    scenario = {
        "name": "events",
        "clock": {"days": 0.02},
        "market": {"S0": 100.0, "impact": {"lam": 1e-5}},
        "vol": {"atm": 0.2, "skew": -0.1},
        "news": {"vol": 0.16},
        "dealers": [{"positions": [{"type": "call", "strike": 100, "expiry_days": 5, "qty": 500}]}],
        "customers": [{"segment": "put_hedgers", "rate": 0.05, "expiry_days": [5]}],
        "events": [
            {"at": 100, "kind": "vol_shift", "d_atm": 0.05, "d_skew": -0.1},
            {
                "at": 200,
                "kind": "positions",
                "positions": [
                    {"type": "put", "strike": 97, "expiry_days": 2, "qty": -800, "visible": False}
                ],
            },
        ],
        "record": {"every": 5.0, "levels_every": 5.0},
    }
    res = mmsim.run(scenario, seed=3)
    s = res.series
    for k in (10, 30, 50, len(s) - 1):  # before and after each event
        t = float(s["t"].iloc[k])
        book, S, vol = plots.book_at(res, t)
        for view in ("true", "visible"):
            expected = s[f"gex_{view}"].iloc[k]
            assert book.gex_at(S, t, vol, view) == pytest.approx(expected, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize(
    "fn, n_axes",
    [
        (plots.plot_vol_vs_parameter, 1),
        (plots.plot_sweep_heatmap, 1),
        (plots.plot_sweep_distributions, 2),
    ],
)
def test_sweep_figures(fn, n_axes):
    check(fn(sweep_table(failed=True)), n_axes)


def test_vol_vs_band_has_one_line_per_gamma_sign_with_a_confidence_band():
    table = sweep_table()
    fig = plots.plot_vol_vs_parameter(table)
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == [
        "qty=-2000 (short gamma)",
        "qty=2000 (long gamma)",
    ]
    assert ax.get_xlabel() == "dealers.0.band (shares)"
    assert list(ax.lines[0].get_xdata()) == [0, 500, 2000]
    short = table[table["dealers.0.positions.0.qty"] < 0].groupby("dealers.0.band")
    assert np.allclose(ax.lines[0].get_ydata(), short["realized_vol"].mean())
    band = ax.collections[0].get_paths()[0].vertices[:, 1]  # 95% t interval, 3 seeds
    stats = short["realized_vol"].agg(["mean", "std"])
    half = 4.30 * stats["std"] / np.sqrt(3)
    assert band.max() == pytest.approx((stats["mean"] + half).max(), rel=1e-3)
    plt.close(fig)


def test_heatmap_shows_the_mean_of_every_grid_point():
    table = sweep_table()
    fig = plots.plot_sweep_heatmap(table)
    ax = fig.axes[0]
    image = ax.images[0].get_array()
    assert image.shape == (2, 3)  # qty (rows) x band (columns)
    expected = table.pivot_table(
        index="dealers.0.positions.0.qty", columns="dealers.0.band", values="realized_vol"
    )
    assert np.allclose(image, expected.to_numpy())
    assert len(ax.texts) == 6
    with pytest.raises(ValueError, match="two swept paths"):
        plots.plot_sweep_heatmap(table, swept=["dealers.0.band"])
    plt.close(fig)


def test_distributions_have_one_box_per_grid_point_and_every_run():
    fig = plots.plot_sweep_distributions(sweep_table(failed=True))  # the failed run: left out
    assert len(fig.axes[0].get_yticklabels()) == 6  # shared by both panels
    for ax in fig.axes:
        dots = [line for line in ax.lines if line.get_color() == plots._VIEW["true"]]
        assert sum(len(line.get_xdata()) for line in dots) == 6 * len(SEEDS)
    plt.close(fig)


def test_sweep_paths_come_from_sweep_json_or_the_table_layout():
    table = sweep_table()
    assert plots._swept(table, {"grid": GRID, "zip": {}}) == list(GRID)
    assert plots._swept(table) == list(GRID)  # columns between run_id and status
    assert plots._swept(table, {"grid": {"dealers.0.band": [0]}}) == ["dealers.0.band"]
    with pytest.raises(ValueError, match="no swept path"):
        plots.plot_vol_vs_parameter(table[["seed", "run_id", "status", "realized_vol"]])


def test_non_numeric_swept_values_are_categories():
    table = sweep_table()
    table["dealers.0.target"] = np.where(table["point"] % 2 == 0, "center", "edge")
    fig = plots.plot_vol_vs_parameter(table, swept=["dealers.0.target"])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["center", "edge"]
    plt.close(fig)


def png_ok(path) -> bool:
    return path.is_file() and path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"\x89PNG"


def test_save_run_plots_writes_five_pngs(result, tmp_path):
    paths = plots.save_run_plots(result, tmp_path / "out")
    names = {"price.png", "dealers.png", "vol_regimes.png", "gex_profile.png"}
    assert {p.name for p in paths} == names | {"returns_by_regime.png"}
    assert all(png_ok(p) for p in paths)


def test_save_sweep_plots(sweep_dir, tmp_path):
    paths = plots.save_sweep_plots(sweep_dir)
    assert [p.name for p in paths] == ["vol_vs_band.png", "heatmap.png", "distributions.png"]
    assert all(png_ok(p) for p in paths)
    one = tmp_path / "one"  # a single swept path: no heatmap; no sweep.json: the layout
    one.mkdir()
    sweep_table().drop(columns="dealers.0.positions.0.qty").to_parquet(one / "results.parquet")
    assert [p.name for p in plots.save_sweep_plots(one)] == ["vol_vs_band.png", "distributions.png"]


def test_save_plots_dispatches_on_the_directory(result, sweep_dir, tmp_path):
    assert len(plots.save_plots(sweep_dir)) == 3
    run_dir = result.save(tmp_path / "run")
    paths = plots.save_plots(run_dir)
    assert len(paths) == 5 and all(p.parent == run_dir for p in paths)
    (tmp_path / "empty").mkdir()
    for neither in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(mmsim.ResultError, match="neither a run directory") as err:
            plots.save_plots(neither)
        assert "\n" not in str(err.value)
