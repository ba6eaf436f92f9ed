"""Sweeps: expansion, seeds, executors, resume, failures, bad input, the command."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmsim
from mmsim.cli import main
from mmsim.errors import OutputError
from mmsim.executors import chunk_sizes, claim_tasks, spread
from mmsim.scenario import scenario_to_dict
from mmsim.sweep import NOT_RUN_FIELDS, SweepSpec, replicate_seeds, run_id, summarize_sweep

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


def test_identical_rows_on_serial_processes_and_dask(monkeypatch):
    """12 runs on 2 local dask workers: tasks that take runs one at a time from the
    sweep's claims file (fewer tasks than runs, no task of a fixed list of runs); every
    row is bit-identical to the serial sweep's all the same."""
    executors = importlib.import_module("mmsim.executors")
    real, real_all, claimers, listed = (
        executors._Pool.submit_tasks,
        executors._Pool.submit_all,
        [],
        [],
    )

    def spy(self, task, args, names):
        claimers.extend([task.__name__] * len(args))
        return real(self, task, args, names)

    def spy_all(self, args):
        listed.extend(len(a[1]) for a in args)
        return real_all(self, args)

    monkeypatch.setattr(executors._Pool, "submit_tasks", spy)
    monkeypatch.setattr(executors._Pool, "submit_all", spy_all)
    serial = mmsim.sweep(TINY, GRID, seeds=6, executor="serial", progress=False)
    procs = mmsim.sweep(TINY, GRID, seeds=6, executor="processes", workers=2, progress=False)
    dask = mmsim.sweep(TINY, GRID, seeds=6, executor="dask", workers=2, progress=False)
    assert 0 < len(claimers) < 12 and set(claimers) == {"_run_claimed_dask"}, claimers
    assert listed == [], f"tasks of fixed lists of {listed} runs on local workers"
    pd.testing.assert_frame_equal(serial, procs)
    pd.testing.assert_frame_equal(serial, dask)


@pytest.mark.parametrize(
    ("left", "workers", "run_seconds", "tasks"),
    [(200, 2, 0.00884, 4), (40, 2, 0.00884, 2), (1, 4, 1.0, 1), (3, 8, 0.0, 3), (0, 2, 1.0, 0)],
)
def test_claiming_dask_tasks_one_per_worker_and_one_queued_while_runs_outlast_a_task(
    left, workers, run_seconds, tasks
):
    """band_sweep's 200 runs (8.8 ms estimated each, 0.9 s a worker) on 2 workers: a task
    each and one queued behind it (a task returns after 0.5 s); 40 runs (0.18 s a
    worker): one each; never more tasks than runs left, at least one while any is left
    (a run of no estimated cost too), none when none is."""
    assert claim_tasks(left, workers, run_seconds) == tasks


@pytest.mark.parametrize(
    ("n", "workers", "run_seconds"), [(200, 2, 0.015), (40, 2, 0.05), (7, 3, 1.0), (1000, 8, 1e-4)]
)
def test_dask_tasks_shrink_toward_the_end_and_cover_every_run_once(n, workers, run_seconds):
    sizes = chunk_sizes(n, workers, run_seconds)
    assert sum(sizes) == n and min(sizes) >= 1
    assert sizes == sorted(sizes, reverse=True), f"{sizes}: a later task is larger"
    cap = max(1, int(1.0 / run_seconds))
    assert max(sizes) <= cap, f"{sizes}: a task over 1 s of estimated work ({cap} runs)"
    # no task but the last below an eighth of a worker's share (within the cap): a dask
    # task's ~8 ms of CPU is not paid for tasks of one run or two
    floor = min(cap, -(-n // (8 * workers)))
    assert min(sizes[:-1], default=floor) >= floor, f"{sizes}: a task below {floor} runs"
    # the last 2 x workers tasks hold at most that floor each: about a quarter of the runs
    assert sum(sizes[-2 * workers :]) <= (2 * workers + 1) * floor, sizes


def test_band_sweeps_200_runs_go_in_9_dask_tasks_on_2_workers():
    """band_sweep's 200-run sweep (8.8 ms estimated a run, :mod:`mmsim.sweep_cost`) on 2
    workers: 9 tasks, not the 20 of a tail shrinking to single runs (8 ms of dask's CPU
    each, more than a compiled run) nor the 12 of a floor of a sixteenth (dask's CPU
    1.10 of the process pool's, 1.06 with these), none over 56 runs (0.5 s estimated),
    none under 8."""
    sizes = chunk_sizes(200, 2, 0.00884)
    assert len(sizes) == 9 and max(sizes) <= 56 and min(sizes) == 8, sizes


@pytest.mark.parametrize(("points", "seeds"), [(10, 20), (7, 3), (2, 50), (40, 1), (1, 9)])
def test_dask_tasks_sample_every_grid_point_evenly(points, seeds):
    """Runs come point by point (a point's seeds together); a dask task takes
    consecutive runs of :func:`spread`'s order, so that order must put about the same
    share of every point in any stretch: in every stretch of ``m`` runs (``m`` from the
    smallest to the largest band_sweep task, 6-28, and the whole sweep) each point
    appears within 2 of ``m x seeds / runs`` times (contiguous stretches of the point
    order: up to ``m`` of one point, none of the others). Every run exactly once."""
    runs = [(p, k) for p in range(points) for k in range(seeds)]
    order = spread(runs)
    assert sorted(order) == runs, "spread must be a permutation of the runs"
    n = len(runs)
    for m in sorted({min(m, n) for m in (6, 12, 28, n)}):
        for start in range(n - m + 1):
            counts = [0] * points
            for p, _ in order[start : start + m]:
                counts[p] += 1
            share = m * seeds / n
            worst = max(abs(c - share) for c in counts)
            assert worst <= 2, f"runs {start}..{start + m - 1}: per-point counts {counts}"


class _KillingCluster:
    """A stand-in dask pool whose worker dies under every task of several runs
    (``KilledWorker`` for the whole task); tasks of one run succeed."""

    kind, started, workers = "dask", None, 2
    client = object()  # a dask pool: its tasks carry several runs

    def __init__(self, *args):
        self.sizes: list[int] = []
        self.died = 0  # first attempts of claiming tasks lost with a run taken

    def submit(self, *args):
        from concurrent.futures import Future

        from mmsim.executors import _run_chunk

        fut: Future = Future()
        self.sizes.append(len(args[1]))
        if len(args[1]) > 1:
            fut.set_exception(RuntimeError("KilledWorker: attempted to run task 3 times"))
        else:
            fut.set_result(_run_chunk(*args))
        return fut

    def submit_all(self, args):
        return [self.submit(*a) for a in args]

    def submit_tasks(self, task, args, names):
        """Claiming tasks, run here at once, one run an attempt: the worker of every
        first attempt dies once it has taken its run; dask gives up on every other task
        (``KilledWorker``) and runs the others again elsewhere, which return their run."""
        from concurrent.futures import Future

        futures = []
        for a in args:
            fut: Future = Future()
            first = task(*a, seconds=0.0)  # None: the claims file is not on this machine
            if first:
                self.died += 1  # with its run
                if self.died % 2:
                    fut.set_exception(RuntimeError("KilledWorker: attempted to run task 3 times"))
                else:
                    fut.set_result(task(*a, seconds=0.0))
            else:
                fut.set_result(first)
            futures.append(fut)
        return futures

    def completing(self, futures):
        pending = list(futures)

        def feed():
            while pending:
                f = pending.pop(0)
                yield f, f.result

        return feed(), pending.append

    def cluster_lost(self):
        return False

    def as_completed(self, futures):
        return iter(futures)

    def completed(self, futures):
        return ((f, f.result) for f in futures)

    def close(self, interrupted=False):
        pass


def test_a_dask_task_lost_as_a_whole_runs_again_run_by_run(monkeypatch):
    """A task of several runs that fails as a whole (its worker killed) costs none of its
    runs: each is run again alone, and only a run failing alone becomes a failed row.
    Claiming tasks (the claims file on this machine): a run taken by a task lost with its
    worker, or by an attempt of a task dask then ran again, is run again alone; with the
    file out of the workers' reach (another machine), tasks of lists of runs."""
    executors = importlib.import_module("mmsim.executors")
    claims = importlib.import_module("mmsim.dask_claims")
    serial = mmsim.sweep(TINY, GRID, seeds=6, executor="serial", progress=False)
    pool = _KillingCluster()
    monkeypatch.setattr(executors, "_Pool", lambda *a, **k: pool)
    table = mmsim.sweep(TINY, GRID, seeds=6, executor="dask", workers=2, progress=False)
    # each run a lost attempt took is run again alone, and only those
    assert pool.died >= 4 and pool.sizes == [1] * pool.died, (pool.died, pool.sizes)
    pd.testing.assert_frame_equal(serial, table)

    real = claims.RunClaims.create

    def elsewhere(runs):  # the tasks are handed a path no worker has
        made = real(runs)
        true, close = made.path, made.close
        made.path = true.with_name(true.name + "-elsewhere")
        made.close = lambda: (setattr(made, "path", true), close())
        return made

    pool = _KillingCluster()
    monkeypatch.setattr(claims.RunClaims, "create", elsewhere)
    table = mmsim.sweep(TINY, GRID, seeds=6, executor="dask", workers=2, progress=False)
    assert pool.died == 0 and max(pool.sizes) > 1 and sum(pool.sizes) > 12, pool.sizes
    pd.testing.assert_frame_equal(serial, table)


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
    # the hash of the JSON of {"scenario": ..., "seed": ...}: ids of earlier sweeps hold
    import hashlib

    scenario = mmsim.load_scenario(TINY, overrides={"dealers.0.band": 500})
    data = {k: v for k, v in scenario_to_dict(scenario).items() if k not in NOT_RUN_FIELDS}
    for seed in (0, 7, 2**63 - 1):
        text = json.dumps({"scenario": data, "seed": seed}, sort_keys=True, default=str)
        assert run_id(scenario, seed) == hashlib.sha1(text.encode()).hexdigest()[:16], seed


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


# -- issue 10: nothing lost, nothing collapsed, nothing mixed --------------------------------
def test_serial_sweeps_save_each_run_as_it_finishes(tmp_path, monkeypatch):
    """Ctrl-C during the third run of a serial sweep: the first two are on disk."""
    sweep_module = importlib.import_module("mmsim.executors")

    real, calls = sweep_module._run_one, []

    def interrupted_third(*args, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(sweep_module, "_run_one", interrupted_third)
    with pytest.raises(KeyboardInterrupt):
        mmsim.sweep(TINY, GRID, seeds=2, executor="serial", out=tmp_path / "sw", progress=False)
    assert len(list((tmp_path / "sw/runs").glob("*.json"))) == 2


def test_resume_never_reuses_runs_of_another_base_scenario(tmp_path):
    out = tmp_path / "sw"
    first = mmsim.sweep(TINY, GRID, seeds=2, executor="serial", out=out, progress=False)
    changed = {**TINY, "news": {"vol": 0.40}}
    second = mmsim.sweep(changed, GRID, seeds=2, executor="serial", out=out, progress=False)
    assert second.attrs["reused"] == 0
    assert not set(first["run_id"]) & set(second["run_id"])
    # news vol 0.16 -> 0.40: realized vol rises (2.5x the exogenous vol, 1-day horizon)
    assert (second["realized_vol"].to_numpy() > 1.5 * first["realized_vol"].to_numpy()).all()
    again = mmsim.sweep(changed, GRID, seeds=2, executor="serial", out=out, progress=False)
    assert again.attrs["reused"] == 4
    pd.testing.assert_frame_equal(again, second)


def test_a_second_sweep_into_a_locked_directory_is_refused(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "sw"
    mmsim.sweep(TINY, GRID, seeds=1, executor="serial", out=out, progress=False)
    with open(out / ".mmsim-lock") as held:  # another sweep holds the lock
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(OutputError, match="another sweep"):
            mmsim.sweep(TINY, GRID, seeds=1, executor="serial", out=out, progress=False)


@pytest.mark.parametrize(
    ("grid", "seeds", "match"),
    [
        ({"dealers.0.band": [0, 0, 500]}, 2, "repeated"),
        ({"dealers.0.band": [0, 0.0]}, 1, "repeated"),
        (GRID, [5, 5, 6], "seed 5 is repeated"),
    ],
)
def test_repeated_grid_values_or_seeds_are_refused(tmp_path, grid, seeds, match):
    with pytest.raises(mmsim.ScenarioError, match=match):
        mmsim.sweep(TINY, grid, seeds=seeds, executor="serial", out=tmp_path / "sw")
    assert not (tmp_path / "sw").exists()


def test_repeated_seeds_on_the_command_line_exit_2(tmp_path, capsys):
    args = ["sweep", str(ROOT / "scenarios/band_sweep.yaml"), "-o", str(tmp_path / "sw")]
    with pytest.raises(SystemExit) as exc:  # argparse's exit: one line, status 2
        main([*args, "--seed-list", "5,5,6", "-q"])
    assert exc.value.code == 2
    assert "repeated" in capsys.readouterr().err
    assert not (tmp_path / "sw").exists()


def test_a_sweep_where_every_run_fails_still_writes_its_table(tmp_path, capsys, monkeypatch):
    import mmsim.engine

    def fails(*args, **kw):
        raise mmsim.errors.SimulationError("price left its domain")

    monkeypatch.setattr(mmsim.engine, "run", fails)
    out = tmp_path / "sw"
    scenario = tmp_path / "s.yaml"
    scenario.write_text(json.dumps(TINY))
    args = ["sweep", str(scenario), "--executor", "serial", "--seeds", "2", "-o", str(out)]
    assert main([*args, "--grid", "dealers.0.band=0,500"]) == 0
    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == 4 and (table["status"] == "error").all()
    assert table["error"].str.contains("price left its domain").all()
    assert "no run succeeded" in capsys.readouterr().out
    assert summarize_sweep(table).empty


def test_an_axis_of_mixed_types_is_written_as_text(tmp_path):
    out = tmp_path / "sw"
    grid = {"dealers.0.start_hedged": [True, 0]}
    table = mmsim.sweep(TINY, grid, seeds=1, executor="serial", out=out, progress=False)
    saved = pd.read_parquet(out / "results.parquet")
    assert list(saved["dealers.0.start_hedged"]) == ["true", "0"]
    assert (table["status"] == "ok").all()


def test_a_run_over_its_timeout_is_a_failed_row(monkeypatch):
    import time

    import mmsim.engine

    real = mmsim.engine.run

    def slow(scenario, *, seed=None, overrides=None, **kw):
        if overrides.get("dealers.0.band") == 500:
            time.sleep(5)  # a hung grid point
        return real(scenario, seed=seed, overrides=overrides, **kw)

    monkeypatch.setattr(mmsim.engine, "run", slow)
    t0 = time.monotonic()
    table = mmsim.sweep(TINY, GRID, seeds=1, executor="serial", run_timeout=0.5, progress=False)
    assert time.monotonic() - t0 < 4, "the hung point was not stopped at its 0.5 s timeout"
    assert list(table["status"]) == ["ok", "error"]
    assert table["error"].iloc[1].startswith("RunTimeout")


def test_non_finite_core_metrics_are_failed_rows(monkeypatch):
    import mmsim.engine

    real = mmsim.engine.run

    def nan_vol(*args, **kw):
        result = real(*args, **kw)
        result.metrics["realized_vol"] = float("nan")
        return result

    monkeypatch.setattr(mmsim.engine, "run", nan_vol)
    table = mmsim.sweep(TINY, GRID, seeds=1, executor="serial", progress=False)
    assert (table["status"] == "error").all()
    assert table["error"].str.startswith("NonFiniteMetric: realized_vol").all()


# -- issue 14: --grid merges with the scenario's grid; --keep keeps series columns ----------
def test_command_line_grid_merges_with_the_scenarios_grid(tmp_path, capsys):
    out = tmp_path / "sw"
    args = ["sweep", str(ROOT / "scenarios/band_sweep.yaml"), "--set", "clock.days=0.002"]
    args += ["--grid", "dealers.0.band=0,300", "--seeds", "1", "--no-plot", "-o", str(out)]
    assert main([*args, "--executor", "serial"]) == 0
    table = pd.read_parquet(out / "results.parquet")
    # band replaced by the command line; the scenario's qty axis (2000, -2000) kept
    assert sorted(set(table["dealers.0.band"])) == [0, 300]
    assert sorted(set(table["dealers.0.positions.0.qty"])) == [-2000, 2000]
    err = capsys.readouterr().err
    assert "dealers.0.band (2 values, command line)" in err
    assert "dealers.0.positions.0.qty (2 values, scenario)" in err


def test_keep_saves_the_chosen_series_columns_of_every_run(tmp_path):
    out = tmp_path / "sw"
    keep = ["price", "dealer_delta"]
    table = mmsim.sweep(TINY, GRID, seeds=2, executor="serial", out=out, keep=keep, progress=False)
    series = pd.read_parquet(out / "series.parquet")
    assert set(series["run_id"]) == set(table["run_id"])
    assert list(series.columns[-3:]) == ["t", "price", "dealer_delta"]
    one = series[series["run_id"] == table["run_id"].iloc[3]]
    full = mmsim.run(TINY, seed=int(table["seed"].iloc[3]), overrides={"dealers.0.band": 500})
    np.testing.assert_array_equal(one["price"].to_numpy(), full.series["price"].to_numpy())
    with pytest.raises(mmsim.ScenarioError, match="no series column 'prise'"):
        mmsim.sweep(TINY, GRID, seeds=1, executor="serial", keep=["prise"], progress=False)


def test_rows_are_identical_on_the_warm_process_pool_and_serially():
    serial = mmsim.sweep(TINY, GRID, seeds=3, executor="serial", progress=False)
    warm = mmsim.sweep(TINY, GRID, seeds=3, executor="processes", workers=2, progress=False)
    pd.testing.assert_frame_equal(serial, warm)


_FORK_OR_NOT = """
import json, sys, threading
import mmsim, mmsim.executors as ex
from mmsim.sweep import close_workers
from tqdm import tqdm

scenario, grid = json.loads(sys.argv[1]), json.loads(sys.argv[2])
used, real = [], ex._Pool.__init__
ex._Pool.__init__ = lambda self, *a, **k: real(self, *a, **k) or used.append(self.forked)
tqdm(total=1, disable=True)  # a bar left open: tqdm's monitor thread is alive
sweep = lambda kind: mmsim.sweep(scenario, grid, seeds=3, executor=kind, workers=2,
                                 progress=False)
serial, forked = sweep("serial"), sweep("processes")
threading.Thread(target=threading.Event().wait, daemon=True).start()
kept = sweep("processes")  # a thread alive: the forked workers kept, no fork needed
close_workers()
served = sweep("processes")  # a new pool with a thread alive: a fork server's workers
same = [serial.equals(t) for t in (forked, kept, served)]
print(json.dumps({"forked": used, "same": same}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork on Linux only")
def test_workers_fork_from_a_process_without_threads_with_the_same_rows():
    """In a fresh process (only tqdm's idle monitor thread alive, which is stopped) the
    pool's workers are forked from the sweep's process; with another thread alive the
    next sweep reuses them, and a new pool's workers come from the fork server. Rows are
    bit-identical to the serial sweep's every time."""
    argv = [sys.executable, "-c", _FORK_OR_NOT, json.dumps(TINY), json.dumps(GRID)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"forked": [True, True, False], "same": [True, True, True]}, report


_WHO_RUNS = """
import json, os, sys
import mmsim, mmsim.executors as ex

scenario, grid = json.loads(sys.argv[1]), json.loads(sys.argv[2])
real = ex._run_one

def tagged(*args, **kw):  # forked workers inherit the tag: it is set before they fork
    out = real(*args, **kw)
    out["metrics"] = {**out["metrics"], "pid": os.getpid()}
    return out

ex._run_one = tagged
called = {"serial": [], "processes": []}
sweep = lambda kind: mmsim.sweep(scenario, grid, seeds=10, executor=kind, workers=2,
                                 progress=False, meanwhile=lambda: called[kind].append(os.getpid()))
serial, shared = sweep("serial"), sweep("processes")
pids = sorted(set(shared["pid"]) - {os.getpid()})
same = serial.drop(columns="pid").equals(shared.drop(columns="pid"))
print(json.dumps({"here": int((shared["pid"] == os.getpid()).sum()), "forked": len(pids),
                  "same": same, "meanwhile": {k: [p == os.getpid() for p in v]
                                              for k, v in called.items()}}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork on Linux only")
def test_two_forked_workers_are_this_process_and_one_fork():
    """A cold process with ``workers=2`` on forked workers: it runs the first run itself
    (loading the kernels), forks one worker and keeps running runs (taken from the far
    end of the pool's queue) beside it, after calling ``meanwhile`` once (never on the
    serial executor); 20 rows bit-identical to the serial sweep's."""
    argv = [sys.executable, "-c", _WHO_RUNS, json.dumps(TINY), json.dumps(GRID)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["same"] and report["forked"] <= 1, report
    assert report["here"] >= 2, f"the sweep's process ran {report['here']} of 20 runs"
    assert report["meanwhile"] == {"serial": [], "processes": [True]}, report


def test_auto_runs_a_short_sweep_serially(monkeypatch):
    """4 tiny runs (6.5 ms estimated each) with no workers kept by an earlier sweep (an
    earlier test's pool would be handed the runs: 0.01 s, worth it even for these; see
    test_kept_pool): starting workers costs more than the runs, so they run here."""
    sweep_module = importlib.import_module("mmsim.executors")
    monkeypatch.setattr(importlib.import_module("mmsim.sweep"), "ready", lambda processes: False)

    def no_pool(*args, **kw):
        raise AssertionError("a sweep of a few tiny runs started a worker pool")

    monkeypatch.setattr(sweep_module, "_Pool", no_pool)
    table = mmsim.sweep(TINY, GRID, seeds=2, progress=False)  # executor="auto"
    assert (table["status"] == "ok").all() and len(table) == 4


@pytest.mark.parametrize(("fork", "expected"), [(True, "processes"), (False, "serial")])
def test_auto_goes_parallel_once_forked_workers_make_it_pay(monkeypatch, fork, expected):
    """40 runs of 0.05 s on 2 cores (band_sweep as shipped): 1 s per worker, more than
    forking warm workers costs (0.25 s) but less than starting a fork server (1.5 s)."""
    sweep_module = importlib.import_module("mmsim.sweep")
    monkeypatch.setattr(sweep_module, "can_fork", lambda: fork)
    monkeypatch.setattr(sweep_module, "ready", lambda processes: False)  # none kept before
    assert sweep_module._auto(40 * 0.05, 40, 2, None) == expected
    assert sweep_module._auto(40 * 0.05, 40, 1, None) == "serial"  # one core
    assert sweep_module._auto(40 * 0.05, 40, 2, "tcp://host:8786") == "dask"


@pytest.mark.parametrize("days", [0.02, 0.25, 1.0, 8.0])
def test_auto_runs_band_sweep_on_forked_workers_at_every_size_measured(monkeypatch, days):
    """The fresh ``mmsim sweep band_sweep.yaml --set clock.days=D`` (a cold process that
    may fork, no workers kept): ``auto`` picks 2 forked workers from D = 0.02 (40 runs
    of ~3 ms: their CPU-path speedup 1.0-1.15x) through the shipped 0.25 to 8 days
    (1.6x), on both sides of where 2 workers reach 1.7x (``python -m benchmarks.sweeps
    --work``); with a fork server (1.5 s to start) it runs the shipped sweep serially
    and goes parallel only once each worker's share outlasts that start-up."""
    sweep_module = importlib.import_module("mmsim.sweep")
    from mmsim.budget import check
    from mmsim.sweep_cost import run_seconds

    base = mmsim.load_scenario(ROOT / "scenarios/band_sweep.yaml", overrides={"clock.days": days})
    block = base.sweep
    points = sweep_module.SweepSpec(dict(block.grid), dict(block.zip), [0]).points()
    cost = [
        run_seconds(s, check(s)) for s in (mmsim.load_scenario(base, overrides=o) for o in points)
    ]
    runs = len(points) * block.seeds
    seconds = sum(cost) / len(cost) * runs
    monkeypatch.setattr(sweep_module, "ready", lambda processes: False)  # none kept
    monkeypatch.setattr(sweep_module, "can_fork", lambda: True)
    assert sweep_module._auto(seconds, runs, 2, None) == "processes", (days, seconds)
    monkeypatch.setattr(sweep_module, "can_fork", lambda: False)  # a fork server's workers
    expected = "processes" if seconds / 2 >= sweep_module.START_UP else "serial"
    assert sweep_module._auto(seconds, runs, 2, None) == expected, (days, seconds)
    assert (days >= 8) == (expected == "processes"), f"{days} days: {seconds:.2f} s estimated"


class _DyingPool:
    """A stand-in process pool (two workers, runs taken in submission order) whose worker
    dies whenever it starts the run tagged ``culprit``: that run, the run then in flight
    on the other worker, and every run still queued are lost, as with a real pool."""

    culprit = ""

    def __init__(self, kind, workers, address, **kw):
        import queue

        self.kind, self.workers, self.started = kind, workers, queue.SimpleQueue()
        self.calls: list = []  # (future, (scenario, [(overrides, seed, tag)], keep, timeout))

    def submit(self, *args):
        from concurrent.futures import Future

        self.calls.append((Future(), args))
        return self.calls[-1][0]

    def as_completed(self, futures):
        from concurrent.futures.process import BrokenProcessPool

        from mmsim.executors import _run_chunk

        died_at = None
        for i, (fut, args) in enumerate(self.calls):
            ((_, _, tag),) = args[1]  # a process pool's task is one run
            if died_at is None or i < died_at + self.workers:  # started before the death
                self.started.put(tag)
            if died_at is None and tag == self.culprit:
                died_at = i
            if died_at is not None:
                fut.set_exception(BrokenProcessPool("a worker died"))
            else:
                fut.set_result(_run_chunk(*args))
            yield fut

    def completed(self, futures):
        return ((f, f.result) for f in self.as_completed(futures))

    def close(self, interrupted=False):
        pass


def test_a_worker_death_fails_only_the_run_that_killed_it(monkeypatch):
    sweep_module = importlib.import_module("mmsim.executors")
    table = mmsim.sweep(TINY, GRID, seeds=3, executor="serial", progress=False)
    _DyingPool.culprit = table["run_id"].iloc[2]
    monkeypatch.setattr(sweep_module, "_Pool", _DyingPool)
    dying = mmsim.sweep(TINY, GRID, seeds=3, executor="processes", workers=2, progress=False)
    failed = dying[dying["status"] != "ok"]
    assert list(failed["run_id"]) == [_DyingPool.culprit], failed[["run_id", "error"]]
    assert failed["error"].iloc[0].startswith("WorkerDied: the worker running this run died")
    ok = dying["status"] == "ok"  # the others, the one in flight beside it included, ran
    pd.testing.assert_frame_equal(dying[ok], table[ok], check_like=True)


def test_runs_do_not_validate_the_scenarios_sweep_block_again(monkeypatch):
    """A scenario with a sweep block: the block (each of its grid values a whole
    scenario to validate) is checked once, when the sweep loads the scenario, not again
    by each of the 6 runs (which never read it); rows are those of the scenario without it."""
    import mmsim.scenario

    real, calls = mmsim.scenario._check_sweep, []

    def counted(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(mmsim.scenario, "_check_sweep", counted)
    with_block = {**TINY, "sweep": {"grid": {"dealers.0.band": [0, 100, 500]}, "seeds": 2}}
    table = mmsim.sweep(with_block, GRID, seeds=3, executor="serial", progress=False)
    assert len(calls) == 1, f"the sweep block was validated {len(calls)} times for 6 runs"
    plain = mmsim.sweep(TINY, GRID, seeds=3, executor="serial", progress=False)
    pd.testing.assert_frame_equal(table, plain)
