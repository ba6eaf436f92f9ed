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
from mmsim import plots, plots_sweep
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


def _texts(fig) -> list:
    """Every visible, non-empty text of the figure outside legends: titles, axis labels,
    tick labels, annotations."""
    out = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        out += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
        out += list(ax.texts)
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            span = 1e-9 * max(abs(lo), abs(hi), 1.0)
            drawn = [t for t in axis.get_major_ticks() if lo - span <= t.get_loc() <= hi + span]
            out += [t.label1 for t in drawn] + [t.label2 for t in drawn]
    return [t for t in out if t is not None and t.get_visible() and t.get_text().strip()]


def readable(fig) -> None:
    """What a reader needs: a title; every axes' y label and the bottom x labels carry a
    unit in parentheses; no legend box covers a data point of a line (display
    coordinates, after layout); no text runs off the figure; no two texts overlap (1 px
    slack)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert any(ax.get_title() or ax.get_title(loc="left") for ax in axes) or fig.get_suptitle()
    for ax in axes:
        xlabel = ax.get_xlabel() if ax.xaxis.label.get_visible() else ""
        assert "(" in ax.get_ylabel() + xlabel, (ax.get_xlabel(), ax.get_ylabel())
        assert ax.lines or ax.collections or ax.patches or ax.images
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in axes:
            for line in ax.lines:
                if line.get_transform() != ax.transData or not line.get_visible():
                    continue
                xy = np.column_stack([line.get_xdata(), line.get_ydata()]).astype(float)
                xy = xy[np.isfinite(xy).all(axis=1)]
                if not len(xy):
                    continue
                px = ax.transData.transform(xy)
                clip = ax.get_window_extent(renderer)
                shown = (
                    (px[:, 0] >= clip.x0)
                    & (px[:, 0] <= clip.x1)
                    & (px[:, 1] >= clip.y0)
                    & (px[:, 1] <= clip.y1)
                )
                inside = (
                    (px[:, 0] > box.x0)
                    & (px[:, 0] < box.x1)
                    & (px[:, 1] > box.y0)
                    & (px[:, 1] < box.y1)
                    & shown
                )
                assert not inside.any(), (
                    f"legend covers {inside.sum()} points of {line.get_label()}"
                )
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _texts(fig)]
    page = fig.bbox
    for text, box in boxes:  # nothing written off the picture
        assert box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1, f"{text!r} runs off the figure"
    for i, (a, ba) in enumerate(boxes):
        for b, bb in boxes[i + 1 :]:
            overlap = min(ba.x1, bb.x1) - max(ba.x0, bb.x0), min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
            assert not (overlap[0] > 1 and overlap[1] > 1), f"texts overlap: {a!r} and {b!r}"


def bar_heights(ax, label: str = "") -> np.ndarray:
    """Signed heights of the bars :func:`mmsim.plotkit.bars` drew on ``ax`` (collections
    whose label starts with ``label``)."""
    drawn = [c for c in ax.collections if c.get_gid() == "bars" and c.get_label().startswith(label)]
    assert drawn, f"no bars labelled {label!r}"
    return np.array([p.vertices[1, 1] for c in drawn for p in c.get_paths()])


def check(fig, n_axes: int) -> None:
    """``n_axes`` axes (colorbars aside) and :func:`readable`."""
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(axes) == n_axes
    readable(fig)
    plt.close(fig)


@pytest.mark.parametrize(
    "fn, n_axes",
    [
        (plots.plot_run, 2),
        (plots.plot_dealers, 4),
        (plots.plot_vol_regimes, 1),
        (plots.plot_returns_by_regime, 1),
        (plots.plot_gex_profile, 3),
        (plots.plot_gex_strikes, 2),
        (plots.plot_gex_heatmap, 2),
    ],
)
def test_run_figures(result, fn, n_axes):
    check(fn(result), n_axes)


@pytest.fixture(scope="module")
def gap_run():
    """otc_offset shortened: a 2.2% gap at 10:00 and two call-wall episodes."""
    return mmsim.run(
        "scenarios/otc_offset.yaml",
        seed=2,
        overrides={"clock.days": 0.25, "events.0.at": 1800, "record.levels_every": 60.0},
    )


@pytest.fixture(scope="module")
def book_run():
    """scenarios/liquidity_dry_out.yaml (a thin ZI book, seed 11): 9 dry-outs, put-wall
    breaks and a side empty at some samples."""
    return mmsim.run("scenarios/liquidity_dry_out.yaml", seed=11)


def test_book_figure_shows_price_levels_depth_per_side_spread_and_every_dry_out(book_run, result):
    """book.png: price with the put wall, depth (asks up, bids down, 1/5/10 ticks) and
    spread in ticks below, one dry-out line per episode through all three panels; only
    book runs get it, and the figure is readable."""
    r = book_run
    dry = r.episodes[r.episodes["kind"] == "liquidity_dry_out"]
    assert len(dry) >= 3
    assert "book.png" in plots.run_figures(r)
    assert list(plots.run_figures(r, "overview")) == ["price.png", "book.png"]  # by default
    fig = plots.plot_book(r)
    ax, ax_depth, ax_spread = fig.axes
    assert any(line.get_label().startswith("put wall") for line in ax.lines)
    for a in fig.axes:  # a dry-out line per episode in every panel (x in sessions)
        xs = [line.get_xdata()[0] for line in a.lines if line.get_linestyle() == ":"]
        xs = [x for x in xs if any(abs(x - t / 36000) < 1e-9 for t in dry["start"])]
        assert len(set(xs)) == dry["start"].nunique(), a.get_ylabel()
    fills = [c for c in ax_depth.collections if c.get_label().startswith(("asks", "bids"))]
    assert len(fills) == 6  # 3 bands x 2 sides
    for c in fills:  # asks drawn above zero, bids below
        y = np.concatenate([p.vertices[:, 1] for p in c.get_paths()])
        assert (y >= -1e-9).all() if c.get_label().startswith("asks") else (y <= 1e-9).all()
    s = r.series
    tick = r.scenario.market.book.tick
    [spread] = [line.get_ydata() for line in ax_spread.lines if line.get_label() == "spread"]
    assert np.nanmax(spread) == pytest.approx(np.nanmax(s["spread"]) / tick)
    check(fig, 3)
    assert "book.png" not in plots.run_figures(result)  # an impact-market run
    assert list(plots.run_figures(result, "overview")) == ["price.png"]


@pytest.mark.parametrize("fn", [plots.plot_run, plots.plot_dealers, plots.plot_vol_regimes])
def test_figures_of_a_run_with_a_gap_and_episodes_are_readable(gap_run, fn):
    assert len(gap_run.episodes)  # the labels are drawn and must not collide
    readable(fn(gap_run))


def test_price_figure_draws_one_line_where_views_agree_and_both_where_they_differ(result):
    """The call wall: views agree for the first half (one purple line), differ after (a
    true and a visible line, only there). Levels far off the chart are not in the legend."""
    s = result.series.copy()
    half = len(s) // 2
    s["call_wall_visible"] = s["call_wall"]
    s.loc[half:, "call_wall_visible"] = s["call_wall"].iloc[0] + 1.0
    s["put_wall"] = s["put_wall_visible"] = s["price"].max() * 3  # far off the chart
    fig = plots.plot_run(dataclasses.replace(result, series=s))
    lines = {line.get_label().split(",")[0]: line for line in fig.axes[0].lines}
    both = np.asarray(lines["call wall (both views)"].get_ydata(), dtype=float)
    true = np.asarray(lines["call wall (true)"].get_ydata(), dtype=float)
    n = len(both)
    assert np.isfinite(both[: n // 2 - 2]).all() and np.isnan(both[n // 2 + 2 :]).all()
    assert np.isnan(true[: n // 2 - 2]).all() and np.isfinite(true[n // 2 + 2 :]).all()
    assert "call wall (visible)" in lines
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert not any(label.startswith("put wall") for label in legend), legend
    assert "above flip (long gamma)" in legend  # the regime shading
    assert fig.axes[0].get_ylabel() == "price ($)"
    assert fig.axes[1].get_ylabel().startswith("net hedge\n(shares per")
    hedges = result.trades[result.trades["kind"] == "dealer"]["qty"].sum()
    bars = bar_heights(fig.axes[1]).sum()
    assert bars == pytest.approx(hedges), "the flow panel holds every hedge share"
    plt.close(fig)


def test_episodes_are_labelled_once_each_in_either_table_shape(result):
    """The old table has one row per view of an episode, a newer one one row per episode:
    either way each episode gets one line and one label, and labels close in time are
    stacked (no overlap: :func:`readable`)."""
    assert result.episodes.empty  # this short run has none
    plt.close(plots.plot_run(result))
    t0, t1 = (float(result.series["t"].iloc[k]) for k in (40, 45))
    base = {"kind": "call_wall_break", "level": 450.0, "primary_cause": "overwhelming_flow"}
    per_view = [  # two episodes, each seen in both views
        {**base, "start": t, "end": t + 300, "view": view}
        for t in (t0, t1)
        for view in ("visible", "true")
    ]
    per_episode = [{**base, "start": t, "end": t + 300, "view": "true, visible"} for t in (t0, t1)]
    for rows in (per_view, per_episode):
        fig = plots.plot_run(dataclasses.replace(result, episodes=pd.DataFrame(rows)))
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.texts if "call wall break" in t.get_text()]
        assert labels == [
            "1: call wall break (true, visible), overwhelming_flow",
            "2: call wall break (true, visible), overwhelming_flow",
        ]
        assert sum(line.get_label() == "episode start" for line in ax.lines) == 1
        readable(fig)
        plt.close(fig)


def test_crowded_episodes_keep_their_lines_and_labels_stay_inside_the_price_panel(result):
    """Twelve episodes a few samples apart: every one gets its dotted line, labels fill at
    most four rows inside the price axes, a note counts the unlabelled ones, and the
    figure stays readable (no label over another or off the figure)."""
    t = result.series["t"].to_numpy()
    rows = [
        {"kind": "call_wall_break", "start": t[5 + 3 * k], "end": t[6 + 3 * k], "level": 450.0}
        for k in range(12)
    ]
    rows = [{**r, "view": "true, visible", "primary_cause": "news"} for r in rows]
    fig = plots.plot_run(dataclasses.replace(result, episodes=pd.DataFrame(rows)))
    ax = fig.axes[0]
    starts = [ln for ln in ax.lines if ln.get_linestyle() == ":"]
    assert len(starts) == 12, "one dotted line per episode"
    labels = [x for x in ax.texts if "call wall break" in x.get_text()]
    notes = [x.get_text() for x in ax.texts if "not labelled" in x.get_text()]
    assert 1 <= len(labels) < 12 and notes == [
        f"{12 - len(labels)} more episode(s) marked but not labelled: see episodes.parquet"
    ]
    offsets = {x.xyann[1] for x in labels}
    assert len(offsets) <= 4, f"label rows: {sorted(offsets)}"
    fig.canvas.draw()
    box = ax.get_window_extent()
    for x in labels:
        assert x.get_window_extent().y0 >= box.y0, f"{x.get_text()!r} runs below the panel"
    readable(fig)
    plt.close(fig)


def test_dealers_figure_has_every_dealer_and_its_hedge_trades_per_bar(result):
    fig = plots.plot_dealers(result)
    delta, _, trades, flow = fig.axes
    labels = [line.get_label() for line in delta.lines]
    assert labels[:3] == ["tight (bar mean)", "normal (bar mean)", "wide (bar mean)"]
    dealer = result.trades[result.trades["kind"] == "dealer"]
    for name in ("tight", "normal", "wide"):
        heights = bar_heights(trades, f"{name}:").sum()
        expected = dealer.loc[dealer["agent"] == name, "qty"].sum()
        assert heights == pytest.approx(expected), f"{name}: every hedge share in a bar"
    assert {line.get_label().split(":")[0] for line in flow.lines} >= {"gamma", "charm"}
    plt.close(fig)


def test_expiry_unwinds_are_marked_and_clipped():
    """A 0DTE straddle expiring mid-run: the expiry is a dashed line in every panel, the
    unwind bar is off the clipped hedge axis and the figure says so."""
    res = mmsim.run("scenarios/pinning.yaml", seed=1, overrides={"clock.days": 2})
    fig = plots.plot_dealers(res)
    for ax in fig.axes:
        assert any(
            line.get_linestyle() == "--" and line.get_color() == "purple" for line in ax.lines
        )
    trades = fig.axes[2]
    assert "axis clipped at expiry unwinds" in trades.get_title(loc="right")
    heights = bar_heights(trades)
    assert np.abs(heights).max() > trades.get_ylim()[1], "the unwind bar is clipped"
    readable(fig)
    plt.close(fig)


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
    titles = [ax.get_title().split(": spot")[0] for ax in fig.axes]
    assert titles == ["09:30 (t = 0.00 h)", "09:40 (t = 0.17 h)"]
    plt.close(fig)


def test_gex_by_strike_splits_calls_and_puts_of_both_views(result):
    """Bars at the open: per view, call and put GEX per strike summing to the book's."""
    fig = plots.plot_gex_strikes(result)
    ax = fig.axes[0]
    book, S, vol = plots.book_at(result, 0.0)
    for view in ("true", "visible"):
        table = book.gex_by_strike(S, 0.0, vol, view)
        for side in ("call", "put"):
            bars = next(c for c in ax.containers if c.get_label() == f"{side} GEX, {view}")
            heights = [p.get_height() for p in bars]
            assert np.allclose(heights, table[f"{side}_gex"] / 1e6), (view, side)
    assert "flip:" in ax.get_title()
    plt.close(fig)


def test_gex_heatmap_holds_each_strikes_gex_over_time(result):
    """Each strike is a band centred on it; its cells are the book's net GEX at that
    strike ($M per 1%) at each snapshot (checked at the open and the close)."""
    fig = plots.plot_gex_heatmap(result, n_times=5)
    mesh = fig.axes[0].collections[0]
    coords = mesh.get_coordinates()
    centres = 0.5 * (coords[1:, 0, 1] + coords[:-1, 0, 1])
    values = np.ma.asarray(mesh.get_array()).reshape(len(centres), -1)
    end = float(result.series["t"].iloc[-1])
    for column, t in ((0, 0.0), (-1, end)):
        book, S, vol = plots.book_at(result, t)
        table = book.gex_by_strike(S, t, vol, "true")
        for strike, gex in zip(table["strike"], table["net_gex"], strict=True):
            row = int(np.argmin(np.abs(centres - strike)))
            assert values[row, column] == pytest.approx(gex / 1e6, rel=1e-9, abs=1e-12)
    assert fig.axes[0].get_title() == "true book; black: price"
    readable(fig)
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


def test_vol_vs_band_has_one_line_per_gamma_sign_with_standard_error_bars():
    table = sweep_table()
    fig = plots.plot_vol_vs_parameter(table)
    ax = fig.axes[0]
    labels = [c.get_label() for c in ax.containers]
    assert labels == ["qty=-2000 (short gamma)", "qty=2000 (long gamma)"]
    assert ax.get_xlabel() == "dealers.0.band (shares)"
    line, _, (bars,) = ax.containers[0]
    assert list(line.get_xdata()) == [0, 500, 2000]
    assert line.get_color() == plots_sweep.GAMMA["short"]
    short = table[table["dealers.0.positions.0.qty"] < 0].groupby("dealers.0.band")
    assert np.allclose(line.get_ydata(), short["realized_vol"].mean())
    se = short["realized_vol"].std() / np.sqrt(3)
    tops = np.array([seg[1, 1] for seg in bars.get_segments()])
    assert np.allclose(tops, short["realized_vol"].mean() + se), "bars: mean + 1 standard error"
    assert "mean ± standard error over 3 seeds" in ax.get_title()
    plt.close(fig)


def test_point_stats_give_mean_and_standard_error_per_grid_point():
    table = sweep_table(failed=True)  # the failed run is left out
    stats = plots_sweep.point_stats(table, "realized_vol")
    assert len(stats) == 6 and (stats["n"] == 3).all()
    one = table[(table["status"] == "ok") & (table["point"] == 0)]["realized_vol"]
    row = stats[(stats["dealers.0.band"] == 0) & (stats["dealers.0.positions.0.qty"] == 2000)]
    row = row.iloc[0]
    assert row["mean"] == pytest.approx(one.mean())
    assert row["se"] == pytest.approx(one.std(ddof=1) / np.sqrt(3))


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
        dots = [line for line in ax.lines if line.get_marker() == "o"]
        assert sum(len(line.get_xdata()) for line in dots) == 6 * len(SEEDS)
    plt.close(fig)


def test_sweep_paths_come_from_sweep_json_or_the_table_layout():
    table = sweep_table()
    assert plots_sweep._swept(table, {"grid": GRID, "zip": {}}) == list(GRID)
    assert plots_sweep._swept(table) == list(GRID)  # columns between run_id and status
    assert plots_sweep._swept(table, {"grid": {"dealers.0.band": [0]}}) == ["dealers.0.band"]
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


def test_save_run_plots_writes_every_figure(result, tmp_path):
    paths = plots.save_run_plots(result, tmp_path / "out")
    names = {"price.png", "dealers.png", "vol_regimes.png", "gex_profile.png", "gex_strikes.png"}
    names |= {"returns_by_regime.png"}  # no expiry in this short run: no heatmap
    assert {p.name for p in paths} == names
    assert all(png_ok(p) for p in paths)


def test_save_sweep_plots(sweep_dir, tmp_path):
    paths = plots.save_sweep_plots(sweep_dir)
    assert [p.name for p in paths] == [
        "realized_vol_vs_band.png",
        "realized_vol_by_band_and_qty.png",
        "distributions.png",
    ]
    assert all(png_ok(p) for p in paths)
    one = tmp_path / "one"  # a single swept path: no heatmap; no sweep.json: the layout
    one.mkdir()
    sweep_table().drop(columns="dealers.0.positions.0.qty").to_parquet(one / "results.parquet")
    names = [p.name for p in plots.save_sweep_plots(one)]
    assert names == ["realized_vol_vs_band.png", "distributions.png"]  # a line, no heatmap


def test_save_plots_dispatches_on_the_directory(result, sweep_dir, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(plots, "save_run_plots", lambda res, d: calls.append(("run", d)) or [])
    monkeypatch.setattr(plots, "save_sweep_plots", lambda d: calls.append(("sweep", d)) or [])
    run_dir = result.save(tmp_path / "run")
    plots.save_plots(sweep_dir)
    plots.save_plots(run_dir)
    assert calls == [("sweep", sweep_dir), ("run", run_dir)]
    (tmp_path / "empty").mkdir()
    for neither in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(mmsim.ResultError, match="neither a run directory") as err:
            plots.save_plots(neither)
        assert "\n" not in str(err.value)


def test_vol_regimes_hatches_gap_windows_and_keeps_the_axis_on_the_rest(gap_run):
    """The 2.2% gap at t = 1,800 s would put ~150% rolling vol on a ~15% chart: the
    window after it is hatched, the rolling lines are not drawn there, the axis ends
    within 1.25x the largest vol outside it, and the figure says so."""
    fig = plots.plot_vol_regimes(gap_run)
    ax = fig.axes[0]
    realized = ax.lines[0]
    x, y = np.asarray(realized.get_xdata()), np.asarray(realized.get_ydata(), dtype=float)
    start = 1800.0 / gap_run.scenario.clock.session_seconds
    assert np.isnan(y[(x >= start) & (x <= start + 0.05)]).all()
    assert np.nanmax(y) < ax.get_ylim()[1] < 0.6
    assert any("not drawn in gap windows" in t.get_text() for t in ax.texts)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(label.startswith("window holds the +") for label in legend)
    plt.close(fig)


def test_thinning_keeps_every_extreme_step_and_gap_of_a_long_series():
    """A 250-day-sized series (600,001 samples) thinned for drawing: at most ~MAX_POINTS
    rows, in time order, first and last kept; a one-sample spike and dip (what every-k-th
    decimation drops), a one-sample NaN gap and a one-sample step of a level all survive,
    and in every bucket of 801 samples (~one pixel column) the thinned line reaches the
    same min and max as the full one, exactly."""
    from mmsim.plotkit import MAX_POINTS, thin

    n = 600_001
    rng = np.random.default_rng(5)
    price = 100.0 + np.cumsum(rng.normal(0.0, 0.01, n))
    price[123_457] += 5.0  # spike
    price[400_001] -= 7.0  # dip
    wall = np.full(n, 101.0)
    wall[250_003] = 102.0  # a level that moves for one sample
    flip = np.full(n, 99.0)
    flip[300_501] = np.nan  # one sample without a flip
    long = pd.DataFrame({"t": 10.0 * np.arange(n), "price": price, "wall": wall, "flip": flip})
    small = thin(long, ["t", "price", "wall", "flip"])
    assert len(small) <= 1.5 * MAX_POINTS, len(small)
    assert small.index.is_monotonic_increasing and small.index.is_unique
    assert small["t"].iloc[0] == 0.0 and small["t"].iloc[-1] == 10.0 * (n - 1)
    kept = set(small.index)
    assert {123_457, 400_001, 250_003, 300_501} <= kept, "spike, dip, step or gap dropped"
    assert np.isnan(small.loc[300_501, "flip"])
    k = -(-n // (MAX_POINTS // 4))  # thin's bucket: 801 samples (~ a pixel column)
    full = pd.Series(price).groupby(np.arange(n) // k)
    part = small["price"].groupby(small.index // k)
    assert (part.max() == full.max()).all() and (part.min() == full.min()).all()
    short = long.iloc[:MAX_POINTS]
    assert len(thin(short, ["t", "price"])) == MAX_POINTS  # short series: every sample


def test_a_one_sample_spike_of_a_long_series_reaches_the_price_figure(result):
    """The price line of a 60,000-sample series is drawn from thinned samples, yet its
    highest and lowest points are the series' own: a one-sample spike is still drawn."""
    s = result.series
    long = s.loc[s.index.repeat(-(-60_000 // len(s)))].reset_index(drop=True)
    long["t"] = np.linspace(0.0, float(s["t"].iloc[-1]), len(long))
    long.loc[31_337, "price"] += 3.0
    long.loc[12_345, "price"] -= 2.0
    fig = plots.plot_run(dataclasses.replace(result, series=long))
    [line] = [ln for ln in fig.axes[0].lines if ln.get_label() == "price"]
    y = np.asarray(line.get_ydata(), dtype=float)
    assert len(y) < 4_000, "drawn from thinned samples"
    assert y.max() == long["price"].max() and y.min() == long["price"].min()
    plt.close(fig)


def test_save_writes_the_pixels_of_a_plain_savefig_and_leaves_the_figure_alone(result, tmp_path):
    """plotkit.save lays out once, draws once and freezes ticks for the draw: the PNG
    decodes to exactly the pixels ``Figure.savefig`` gives (under the same style), and
    the figure keeps its layout engine and tick locators afterwards."""
    from PIL import Image

    from mmsim.plotkit import STYLE, save

    for fn in (plots.plot_run, plots.plot_dealers):
        fig = fn(result)
        locators = [a.yaxis.get_major_locator() for a in fig.axes]
        engine = fig.get_layout_engine()
        save(fig, tmp_path / "fast.png")
        assert fig.get_layout_engine() is engine
        assert [a.yaxis.get_major_locator() for a in fig.axes] == locators
        with plt.rc_context(STYLE):
            fn(result).savefig(tmp_path / "plain.png")
        fast, plain = (np.asarray(Image.open(tmp_path / f)) for f in ("fast.png", "plain.png"))
        assert fast.shape == plain.shape and (fast == plain).all(), fn.__name__
        plt.close("all")


def test_mmsim_gex_figure_is_readable():
    from mmsim.engine import Simulation

    sc = mmsim.load_scenario("scenarios/multi_dealer_bands.yaml")
    sim = Simulation(sc, 1)
    fig = plots.plot_gex_views(sim.book, sc.market.S0, 0.0, sim.vol, "multi_dealer_bands")
    readable(fig)
    labels = {c.get_label() for c in fig.axes[1].containers}
    assert labels == {f"{s} GEX, {v}" for s in ("call", "put") for v in ("true", "visible")}
    plt.close(fig)


def test_rebuilding_the_book_of_a_long_run_allocates_no_series_buffer(result):
    """book_at builds the opening book through a Simulation; for a 250-session scenario
    that used to preallocate the whole run's series (~585,000 rows x 46 columns, ~200 MB).
    Now the peak stays under 20 MB (the book, the vol surface, numba dispatch)."""
    import tracemalloc

    clock = result.scenario.clock.model_copy(update={"days": 250.0})
    long = dataclasses.replace(result, scenario=result.scenario.model_copy(update={"clock": clock}))
    plots.book_at(result, 0.0)  # compile and warm caches outside the measurement
    tracemalloc.start()
    plots.book_at(long, 0.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20e6, f"peak {peak / 1e6:.0f} MB"


def test_session_clock_reads_as_exchange_time():
    from mmsim.plotkit import SessionClock

    one = SessionClock(23_400.0, 23_400.0)
    assert [one.text(one.x(t)) for t in (0.0, 3600.0, 23_400.0)] == ["09:30", "10:30", "16:00"]
    labels = [one.text(x) for x in one.ticks()]
    assert labels[0] == "09:30" and labels[-1] == "16:00" and "15:30" not in labels  # crowded
    two = SessionClock(23_400.0, 2 * 23_400.0)
    assert two.text(1.0) == "d2 09:30" and two.text(2.0) == "d2 16:00"
    assert "d2 09:30" in [two.text(x) for x in two.ticks()]
    short = SessionClock(3_600.0, 3_600.0)  # a compressed one-hour session: minutes
    assert [short.text(short.x(t)) for t in (0.0, 1_800.0)] == ["0", "30"]
    assert "min" in short.label and "09:30-16:00" in one.label
