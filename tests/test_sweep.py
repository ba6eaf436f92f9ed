"""Sweeps: expansion, seeds, executors, resume, failures, bad input, the command."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import mmsim
from mmsim.cli import main
from mmsim.sweep import SweepSpec, replicate_seeds, run_id, summarize_sweep

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "name": "tiny",
    "clock": {"days": 0.01},
    "market": {"S0": 100.0, "impact": {"lam": 1e-4}},
    "news": {"vol": 0.16},
    "dealers": [
        {"band": 0, "positions": [{"type": "call", "strike": 100, "expiry_days": 252, "qty": 1000}]}
    ],
    "record": {"every": 10.0, "levels_every": 1e6},
}
GRID = {"dealers.0.band": [0, 500]}


def test_product_and_zip_expansion():
    spec = SweepSpec({"a": [1, 2], "b": [3, 4, 5]}, {"c": [6, 7], "d": [8, 9]}, [1])
    points = spec.points()
    assert len(points) == 2 * 3 * 2
    assert {"a": 1, "b": 3, "c": 6, "d": 8} in points
    assert all((p["c"], p["d"]) in {(6, 8), (7, 9)} for p in points)  # zipped, not crossed


def test_bad_grids_are_scenario_errors_and_leave_no_directory(tmp_path):
    out = tmp_path / "sw"
    with pytest.raises(mmsim.ScenarioError, match="bnad"):
        mmsim.sweep(TINY, {"dealers.0.bnad": [1]}, seeds=1, out=out, progress=False)
    with pytest.raises(mmsim.ScenarioError, match="non-empty"):
        mmsim.sweep(TINY, {"dealers.0.band": []}, seeds=1, out=out, progress=False)
    with pytest.raises(mmsim.ScenarioError, match="differ in length"):
        mmsim.sweep(
            TINY,
            None,
            zip={"dealers.0.band": [1, 2], "news.vol": [0.1]},
            seeds=1,
            out=out,
            progress=False,
        )
    with pytest.raises(mmsim.ScenarioError, match=r"dealers\[0\].band"):
        mmsim.sweep(TINY, {"dealers.0.band": [-5]}, seeds=1, out=out, progress=False)
    assert not out.exists()


def test_one_row_per_point_and_seed_with_overrides_seed_and_metrics():
    table = mmsim.sweep(TINY, GRID, seeds=3, executor="serial", progress=False)
    assert len(table) == 2 * 3
    for col in (
        "point",
        "replicate",
        "seed",
        "run_id",
        "dealers.0.band",
        "status",
        "realized_vol",
        "hedge_volume",
        "n_rehedges",
        "dealer_pnl",
    ):
        assert col in table.columns
    assert (table["status"] == "ok").all()
    # common random numbers: replicate k has the same seed at every grid point
    seeds = table.pivot(index="replicate", columns="point", values="seed")
    assert (seeds[0] == seeds[1]).all()
    assert list(seeds[0]) == replicate_seeds(0, 3)


def test_adding_grid_points_keeps_the_seeds_and_rows_of_the_others():
    small = mmsim.sweep(TINY, GRID, seeds=2, executor="serial", progress=False)
    big = mmsim.sweep(
        TINY, {"dealers.0.band": [0, 500, 2000]}, seeds=2, executor="serial", progress=False
    )
    cols = ["seed", "run_id", "realized_vol", "hedge_volume"]
    pd.testing.assert_frame_equal(small[cols], big[cols].iloc[:4].reset_index(drop=True))


def test_identical_rows_on_serial_processes_and_dask():
    serial = mmsim.sweep(TINY, GRID, seeds=2, executor="serial", progress=False)
    procs = mmsim.sweep(TINY, GRID, seeds=2, executor="processes", workers=2, progress=False)
    dask = mmsim.sweep(TINY, GRID, seeds=2, executor="dask", workers=2, progress=False)
    pd.testing.assert_frame_equal(serial, procs)
    pd.testing.assert_frame_equal(serial, dask)


def test_sweep_resumes_and_writes_its_directory(tmp_path):
    out = tmp_path / "sw"
    first = mmsim.sweep(TINY, GRID, seeds=2, executor="serial", out=out, progress=False)
    files = sorted((out / "runs").glob("*.json"))
    assert len(files) == 4
    assert {p.name for p in out.iterdir()} >= {
        "results.parquet",
        "scenario.yaml",
        "sweep.json",
        "runs",
    }
    assert json.loads((out / "sweep.json").read_text())["grid"] == GRID
    # Mark one finished run so we can tell whether the rerun executed it again.
    kept = json.loads(files[0].read_text())
    kept["realized_vol"] = -1.0
    files[0].write_text(json.dumps(kept))
    files[1].unlink()
    again = mmsim.sweep(TINY, GRID, seeds=2, executor="serial", out=out, progress=False)
    assert (again["realized_vol"] == -1.0).sum() == 1  # skipped: its file was reused
    assert len(list((out / "runs").glob("*.json"))) == 4  # the deleted run ran again
    restored = again.replace(
        -1.0, kept_value := first.set_index("run_id").loc[kept["run_id"], "realized_vol"]
    )
    assert kept_value > 0
    pd.testing.assert_frame_equal(restored, first)
    assert not list(out.rglob("*.tmp"))  # no half-written files
    assert pd.read_parquet(out / "results.parquet").equals(again)


def test_a_failing_run_is_a_row_and_does_not_stop_the_sweep():
    """A short-gamma book with lam * G = -1.99 diverges; the long one is fine."""
    grid = {"dealers.0.positions.0.qty": [1000, -10_000]}
    table = mmsim.sweep(TINY, grid, seeds=2, executor="serial", progress=False)
    failed = table[table["status"] == "error"]
    assert len(failed) == 2 and failed["error"].str.contains("InstabilityError").all()
    assert (table.loc[table["status"] == "ok", "realized_vol"] > 0).all()


def test_run_ids_are_stable_hashes():
    assert run_id({"a": 1}, 3) == run_id({"a": 1}, 3) != run_id({"a": 1}, 4)


def test_summary_has_mean_and_confidence_per_point():
    table = mmsim.sweep(TINY, GRID, seeds=3, executor="serial", progress=False)
    stats = summarize_sweep(table)
    assert list(stats["count"]) == [3, 3]
    assert (stats["ci95"] >= 0).all()


def test_sweep_command_writes_results_csv_and_plots(tmp_path, capsys):
    out = tmp_path / "sw"
    args = [
        "sweep",
        str(ROOT / "scenarios/band_sweep.yaml"),
        "--set",
        "clock.days=0.01",
        "--grid",
        "dealers.0.band=0,1000",
        "--grid",
        "dealers.0.positions.0.qty=2000,-2000",
        "--seeds",
        "2",
        "--executor",
        "serial",
        "-o",
        str(out),
        "--csv",
        "-q",
    ]
    assert main(args) == 0
    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == 8 and (out / "results.csv").is_file()
    names = ("realized_vol_vs_band.png", "realized_vol_by_band_and_qty.png", "distributions.png")
    for name in names:
        assert (out / name).stat().st_size > 0


def test_sweep_command_bad_grid_exits_2_without_a_directory(tmp_path, capsys):
    out = tmp_path / "sw"
    assert (
        main(
            [
                "sweep",
                str(ROOT / "scenarios/band_sweep.yaml"),
                "--grid",
                "nope.x=1",
                "-o",
                str(out),
                "-q",
            ]
        )
        == 2
    )
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not out.exists()
