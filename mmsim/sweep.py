"""Parameter sweeps: a scenario x a grid of dotted-path overrides x seeds.

Each (grid point, seed) is one run whose metrics become one flat row. Rows are
persisted as runs finish (``DIR/runs/<run_id>.json``, written atomically), so a sweep
that is interrupted loses no finished run and a rerun into the same directory skips
them. A failing run is a row with ``status="error"`` and its message; failed runs are
retried on resume.

Seeds: replicate ``k`` runs with seed ``SeedSequence([sweep_seed, k]).generate_state(1)``
at *every* grid point (common random numbers: grid points are compared on the same
draws), and adding grid points never changes the seeds of the others.

Executors: ``serial``; ``processes`` (a spawn-context process pool, one worker per
core by default); ``dask`` (an existing ``dask.distributed`` scheduler at
``dask_address``, or a ``LocalCluster`` on loopback). Rows are identical on all three.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import as_completed as futures_as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from mmsim.errors import ScenarioError
from mmsim.scenario import dump_scenario_yaml, load_scenario, scenario_to_dict
from mmsim.schema import Scenario

__all__ = [
    "SweepSpec",
    "local_cluster",
    "replicate_seeds",
    "run_id",
    "summarize_sweep",
    "sweep",
    "swept_columns",
]

EXECUTORS = ("serial", "processes", "dask")


def replicate_seeds(sweep_seed: int, n: int) -> list[int]:
    """Run seeds of replicates ``0..n-1``; replicate k's seed depends on (seed, k) only."""
    return [int(np.random.SeedSequence([sweep_seed, k]).generate_state(1)[0]) for k in range(n)]


def run_id(overrides: Mapping[str, Any], seed: int) -> str:
    """Stable identifier of one run: a hash of its overrides and seed."""
    text = json.dumps({"overrides": overrides, "seed": seed}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SweepSpec:
    """What to run: ``grid`` (full product) crossed with ``zip`` (moved together) and
    ``seeds`` (explicit run seeds)."""

    grid: dict[str, list[Any]] = field(default_factory=dict)
    zip: dict[str, list[Any]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: replicate_seeds(0, 4))
    sweep_seed: int | None = 0

    def points(self) -> list[dict[str, Any]]:
        """Override mappings of every grid point, in a stable order."""
        for path, values in {**self.grid, **self.zip}.items():
            if not isinstance(values, list) or not values:
                raise ScenarioError(
                    "needs a non-empty list of values", source="<sweep>", field=path
                )
        lengths = {len(v) for v in self.zip.values()}
        if len(lengths) > 1:
            raise ScenarioError(
                f"zipped value lists differ in length: {sorted(lengths)}",
                source="<sweep>",
                field=",".join(self.zip),
            )
        zipped = [
            dict(zip(self.zip, vals, strict=True)) for vals in zip(*self.zip.values(), strict=True)
        ]
        product = [
            dict(zip(self.grid, vals, strict=True))
            for vals in itertools.product(*self.grid.values())
        ]
        return [{**g, **z} for g in product for z in (zipped or [{}])]

    def runs(self) -> Iterator[tuple[int, int, dict[str, Any], int]]:
        """``(point, replicate, overrides, seed)`` of every run."""
        for p, overrides in enumerate(self.points()):
            for k, seed in enumerate(self.seeds):
                yield p, k, overrides, seed

    def to_json(self) -> dict[str, Any]:
        return {
            "grid": self.grid,
            "zip": self.zip,
            "seeds": self.seeds,
            "sweep_seed": self.sweep_seed,
        }


def _run_one(scenario: dict[str, Any], overrides: dict[str, Any], seed: int) -> dict[str, Any]:
    """Run one point in a worker; returns status and metrics only (never the Result)."""
    from mmsim.engine import run

    try:
        result = run(scenario, seed=seed, overrides=overrides)
    except Exception as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        return {"status": "error", "error": f"{type(err).__name__}: {message}", "metrics": {}}
    return {"status": "ok", "error": "", "metrics": result.metrics}


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    """Atomic write: a temporary file in the same directory, then rename."""
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cell(value: Any) -> Any:
    """Override values as table cells: scalars as they are, the rest as JSON text."""
    return (
        value
        if isinstance(value, str | int | float | bool) or value is None
        else (json.dumps(value, sort_keys=True))
    )


def local_cluster(workers: int) -> Any:
    """A ``dask.distributed.LocalCluster`` for sweeps: ``workers`` single-threaded worker
    processes (runs are pure-Python CPU work: threads would share one GIL) on loopback,
    no dashboard, and no statistical profiler (it samples every worker thread's stack
    every 10 ms; a sweep has no use for the profile). Close it when done.

    Starting one costs about 1 s of wall time and closing it about 0.5 s, plus each
    worker importing ``distributed``; for short sweeps that is most of the difference
    from a process pool. To pay it once for many sweeps, start one yourself and pass its
    ``scheduler_address`` as ``dask_address``."""
    import dask
    from dask.distributed import LocalCluster

    with dask.config.set({"distributed.worker.profile.enabled": False}):
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",  # no fixed port: clusters may coexist
        )


class _Pool:
    """The three executors behind one ``submit`` / ``as_completed`` / ``close`` interface;
    ``task`` (a picklable module-level function, default one sweep run) is what runs."""

    def __init__(
        self, executor: str, workers: int, dask_address: str | None, task: Any = None
    ) -> None:
        self.kind = executor
        self.task = task or _run_one
        self.client = self.cluster = self.pool = None
        if executor == "processes":
            ctx = multiprocessing.get_context("spawn")
            self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        elif executor == "dask":
            from dask.distributed import Client

            if dask_address:
                self.client = Client(dask_address)
            else:
                self.cluster = local_cluster(workers)
                self.client = Client(self.cluster)

    def submit(self, *args: Any) -> Any:
        if self.pool is not None:
            return self.pool.submit(self.task, *args)
        if self.client is not None:
            return self.client.submit(self.task, *args, pure=False)
        done: Future = Future()
        done.set_result(self.task(*args))
        return done

    def as_completed(self, futures: list) -> Iterator[Any]:
        """Futures in the order they finish."""
        if self.client is not None:
            from dask.distributed import as_completed as dask_as_completed

            return iter(dask_as_completed(futures))
        return futures_as_completed(futures)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def sweep(
    scenario: Scenario | str | os.PathLike | Mapping[str, Any],
    grid: Mapping[str, Sequence[Any]] | None = None,
    *,
    seeds: int | Sequence[int] = 4,
    executor: str = "processes",
    out: str | os.PathLike | None = None,
    zip: Mapping[str, Sequence[Any]] | None = None,
    sweep_seed: int = 0,
    workers: int | None = None,
    dask_address: str | None = None,
    progress: bool = True,
    csv: bool = False,
) -> pd.DataFrame:
    """Run ``scenario`` at every grid point for every seed; one row per run.

    ``seeds`` is a number of replicates (seeds derived from ``sweep_seed``) or a list of
    run seeds. Returns (and, with ``out``, writes as ``results.parquet``) a table with
    the columns ``point``, ``replicate``, ``seed``, ``run_id``, one column per swept path,
    ``status``, ``error`` and the run's metrics. Raises :class:`ScenarioError` before
    running anything if a grid point does not validate.
    """
    if executor not in EXECUTORS:
        raise ScenarioError(
            f"executor must be one of {', '.join(EXECUTORS)}", source="<sweep>", field="executor"
        )
    base = load_scenario(scenario)
    seed_list = replicate_seeds(sweep_seed, seeds) if isinstance(seeds, int) else list(seeds)
    spec = SweepSpec(
        {k: list(v) for k, v in (grid or {}).items()},
        {k: list(v) for k, v in (zip or {}).items()},
        seed_list,
        sweep_seed if isinstance(seeds, int) else None,
    )
    points = spec.points()
    for overrides in points:  # validate everything before anything is written
        load_scenario(base, overrides=overrides)
    base_dict = scenario_to_dict(base)
    rows: dict[str, dict[str, Any]] = {}
    runs_dir = None
    if out is not None:
        out = Path(out)
        runs_dir = out / "runs"
        runs_dir.mkdir(parents=True, exist_ok=True)
        (out / "scenario.yaml").write_text(dump_scenario_yaml(base))
        _write_json(out / "sweep.json", spec.to_json())
    todo = []
    for p, k, overrides, seed in spec.runs():
        rid = run_id(overrides, seed)
        head = {
            "point": p,
            "replicate": k,
            "seed": seed,
            "run_id": rid,
            **{path: _cell(v) for path, v in overrides.items()},
        }
        done = runs_dir / f"{rid}.json" if runs_dir else None
        if done is not None and done.is_file():
            saved = json.loads(done.read_text())
            if saved.get("status") == "ok":
                rows[rid] = saved
                continue
        todo.append((head, overrides, seed))
    workers = workers or os.cpu_count() or 1
    _execute(todo, base_dict, rows, runs_dir, executor, workers, dask_address, progress)
    table = _table(rows, spec)
    if out is not None:
        _save_table(table, out, csv)
    return table


MAX_POOL_RESTARTS = 3
"""A process pool whose worker dies (killed, out of memory) is broken for every run still
queued on it; those runs are resubmitted on a fresh pool, at most this many times."""


def _execute(todo, base_dict, rows, runs_dir, executor, workers, dask_address, progress):
    """Run ``todo`` on the executor, saving each row as it finishes; a broken process
    pool is replaced and its unfinished runs resubmitted."""
    if not todo:
        return
    bar = tqdm(total=len(todo), unit="run", disable=not progress, desc="sweep")
    failed = 0

    def record(head: dict[str, Any], outcome: dict[str, Any]) -> None:
        nonlocal failed
        row = {**head, "status": outcome["status"], "error": outcome["error"]}
        row.update(outcome["metrics"])
        rows[head["run_id"]] = row
        if runs_dir is not None:
            _write_json(runs_dir / f"{head['run_id']}.json", row)
        failed += outcome["status"] != "ok"
        bar.update(1)
        bar.set_postfix(failed=failed)

    try:
        for attempt in range(MAX_POOL_RESTARTS + 1):
            kind = executor if len(todo) > 1 else "serial"
            pool = _Pool(kind, min(workers, len(todo)), dask_address)
            try:
                todo = _drain(pool, todo, base_dict, record)
            finally:
                pool.close()
            if not todo:
                return
            if attempt < MAX_POOL_RESTARTS:
                bar.write(
                    f"mmsim: a sweep worker died; restarting for {len(todo)} runs", sys.stderr
                )
        for head, _, _ in todo:
            why = f"BrokenProcessPool: a worker died {MAX_POOL_RESTARTS + 1} times"
            record(head, {"status": "error", "error": why, "metrics": {}})
    finally:
        bar.close()


def _drain(pool: _Pool, todo: list, base_dict: dict[str, Any], record) -> list:
    """Submit every run of ``todo`` (small tasks: the pool queues them) and ``record``
    each as it finishes; returns the runs lost to a broken process pool."""
    heads = {
        pool.submit(base_dict, overrides, seed): (head, overrides, seed)
        for head, overrides, seed in todo
    }
    lost = []
    for fut in pool.as_completed(list(heads)):
        run = heads.pop(fut)
        try:
            outcome = fut.result()
        except BrokenProcessPool:
            lost.append(run)
            continue
        except Exception as err:  # the executor lost the run (e.g. dask KilledWorker)
            outcome = {"status": "error", "error": f"{type(err).__name__}: {err}", "metrics": {}}
        record(run[0], outcome)
    return lost


def _table(rows: dict[str, dict[str, Any]], spec: SweepSpec) -> pd.DataFrame:
    wanted = [run_id(o, s) for _, _, o, s in spec.runs()]
    table = pd.DataFrame([rows[r] for r in wanted if r in rows])
    return table.sort_values(["point", "replicate"], kind="stable").reset_index(drop=True)


def _save_table(table: pd.DataFrame, out: Path, csv: bool) -> None:
    """results.parquet (and .csv) written atomically."""
    for name, writer in (
        ("results.parquet", table.to_parquet),
        *((("results.csv", table.to_csv),) if csv else ()),
    ):
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=out)
        os.close(fd)
        try:
            writer(tmp, index=False)
            shutil.move(tmp, out / name)
        finally:
            Path(tmp).unlink(missing_ok=True)


def summarize_sweep(table: pd.DataFrame, metric: str = "realized_vol") -> pd.DataFrame:
    """Mean, standard deviation, count and a 95% confidence half-width of ``metric`` per
    grid point (successful runs only), one row per point with its swept values."""
    ok = table[table["status"] == "ok"]
    keys = ["point", *swept_columns(table)]
    grouped = ok.groupby(keys, sort=True, dropna=False)[metric]
    stats = grouped.agg(["mean", "std", "count"]).reset_index()
    stats["ci95"] = 1.96 * stats["std"].fillna(0.0) / np.sqrt(stats["count"].clip(lower=1))
    return stats


def swept_columns(table: pd.DataFrame) -> list[str]:
    """Columns between ``run_id`` and ``status``: the swept paths."""
    cols = list(table.columns)
    if "run_id" not in cols or "status" not in cols:
        return []
    return cols[cols.index("run_id") + 1 : cols.index("status")]
