"""Parameter sweeps: a scenario x a grid of dotted-path overrides x seeds.

Each (grid point, seed) is one run whose metrics become one flat row. Rows are
persisted as runs finish (``DIR/runs/<run_id>.json``, written atomically), so a sweep
that is interrupted loses no finished run and a rerun into the same directory skips
them. A failing run is a row with ``status="error"`` and its message; failed runs are
retried on resume.

Seeds: replicate ``k`` runs with seed ``SeedSequence([sweep_seed, k]).generate_state(1)``
at *every* grid point (common random numbers: grid points are compared on the same
draws), and adding grid points never changes the seeds of the others.

A run's id hashes its *resolved* scenario (base scenario plus overrides) and seed, so a
rerun into the same directory reuses only runs of exactly the same scenario; repeated
grid values or seeds are refused. One sweep at a time may write into a directory (a lock
file). Before anything runs, every grid point is validated and its size estimated
(:mod:`mmsim.budget`); a sweep with more than :data:`MAX_RUNS` runs is refused.

Each run builds only what its row needs: metrics, episodes and the kept series columns,
not the trade, option-trade and account tables (the row is bit-identical to a full
run's metrics).

Executors: ``serial``; ``processes`` (warm workers, one per core by default: on Linux
the sweep's own process and ``workers - 1`` processes forked from it once it has loaded
mmsim's compiled kernels, by running the sweep's first run when runs are short, a few
milliseconds each; elsewhere, or when other threads are alive in this process, a pool
forked from a fork server that has imported mmsim and loaded the kernels once, while
the sweep's process, if already warm, runs runs itself);
``dask`` (an existing ``dask.distributed`` scheduler at ``dask_address``, or a
``LocalCluster`` on loopback; each task carries several runs so dask's per-task cost is
shared); ``auto`` (the default: serial when the sweep's share per worker is estimated
to take less than starting the workers, else processes). Rows are identical on all of
them. Optional per-run timeout (``run_timeout``, s; serial and process executors): a
run that takes longer becomes a failed row. A worker that dies (killed, out of memory)
fails only the run it was running: the runs it had not started are run again.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmsim.budget import check as check_budget
from mmsim.errors import OutputError, ScenarioError
from mmsim.executors import CORE_METRICS, _Pool, _processes, _Run, _series_path
from mmsim.kept_pool import close_workers, ready
from mmsim.paths import atomic_save, atomic_write_text, check_output_dir, read_regular
from mmsim.scenario import dump_scenario_yaml, first_duplicate, load_scenario, scenario_to_dict
from mmsim.schema import Scenario
from mmsim.sweep_cost import run_seconds as estimate_run_seconds
from mmsim.workers import can_fork, local_cluster

__all__ = [
    "MAX_RUNS",
    "SweepSpec",
    "close_workers",
    "load_kept_series",
    "local_cluster",
    "replicate_seeds",
    "run_id",
    "summarize_sweep",
    "sweep",
    "swept_columns",
]

EXECUTORS = ("auto", "serial", "processes", "dask")
MAX_RUNS = 100_000
"""Runs a sweep may have (grid points x seeds)."""
START_UP = 1.5
"""Seconds of wall time to start a fork server's pool of warm workers (a new interpreter,
imports, kernels); ``auto`` runs a sweep estimated to take less than this per worker
serially."""
FORK_START_UP = 0.05
"""The same for workers forked from the sweep's own process (Linux, no threads alive): a
few milliseconds per fork, and each worker's first runs touching (so copying) the pages
it inherited (band_sweep on new forked workers: 0.02-0.05 s more CPU than on kept ones;
the kernels are loaded by the first run, which a serial sweep makes too)."""
KEPT_START_UP = 0.01
"""The same for the workers an earlier sweep in this process kept (:mod:`mmsim.kept_pool`):
handing them the sweep's runs."""
NOT_RUN_FIELDS = ("name", "description", "seed", "sweep")
"""Scenario fields that do not change a run with a given seed (left out of run ids)."""


def replicate_seeds(sweep_seed: int, n: int) -> list[int]:
    """Run seeds of replicates ``0..n-1``; replicate k's seed depends on (seed, k) only."""
    return [int(np.random.SeedSequence([sweep_seed, k]).generate_state(1)[0]) for k in range(n)]


def run_id(scenario: Scenario | Mapping[str, Any], seed: int) -> str:
    """Stable identifier of one run: a hash of its resolved scenario (without the fields
    that do not change a run, :data:`NOT_RUN_FIELDS`) and its seed."""
    return _hashed_run(_scenario_text(scenario), seed)


def _scenario_text(scenario: Scenario | Mapping[str, Any]) -> str:
    """The JSON text of a scenario that :func:`run_id` hashes (once per grid point)."""
    if isinstance(scenario, Scenario):
        data = {k: v for k, v in scenario_to_dict(scenario).items() if k not in NOT_RUN_FIELDS}
    else:
        data = dict(scenario)
    return json.dumps(data, sort_keys=True, default=str)


def _hashed_run(text: str, seed: int) -> str:
    """The id of the run of seed ``seed`` of the scenario of JSON ``text``: the hash of
    ``json.dumps({"scenario": ..., "seed": seed}, sort_keys=True)``, written out."""
    whole = f'{{"scenario": {text}, "seed": {json.dumps(seed)}}}'
    return hashlib.sha1(whole.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SweepSpec:
    """What to run: ``grid`` (full product) crossed with ``zip`` (moved together) and
    ``seeds`` (explicit run seeds)."""

    grid: dict[str, list[Any]] = field(default_factory=dict)
    zip: dict[str, list[Any]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: replicate_seeds(0, 4))
    sweep_seed: int | None = 0

    def check(self) -> None:
        """Raise :class:`ScenarioError` for empty or repeated values, unequal zipped
        lengths, a path both gridded and zipped, or more than :data:`MAX_RUNS` runs."""
        for path, values in {**self.grid, **self.zip}.items():
            if not isinstance(values, list) or not values:
                raise ScenarioError(
                    "needs a non-empty list of values", source="<sweep>", field=path
                )
            if (i := first_duplicate(values)) is not None:
                raise ScenarioError(
                    f"value {values[i]!r} is repeated (each grid value runs once)",
                    source="<sweep>",
                    field=path,
                )
        if both := set(self.grid) & set(self.zip):
            raise ScenarioError("both gridded and zipped", source="<sweep>", field=min(both))
        lengths = {len(v) for v in self.zip.values()}
        if len(lengths) > 1:
            raise ScenarioError(
                f"zipped value lists differ in length: {sorted(lengths)}",
                source="<sweep>",
                field=",".join(self.zip),
            )
        if not self.seeds:
            raise ScenarioError("needs at least one seed", source="<sweep>", field="seeds")
        if (i := first_duplicate(self.seeds)) is not None:
            raise ScenarioError(
                f"seed {self.seeds[i]} is repeated", source="<sweep>", field="seeds"
            )
        n = math.prod(len(v) for v in self.grid.values()) * max(lengths or {1})
        if n * len(self.seeds) > MAX_RUNS:
            raise ScenarioError(
                f"{n:,} grid points x {len(self.seeds)} seeds = {n * len(self.seeds):,} runs, "
                f"more than {MAX_RUNS:,}",
                source="<sweep>",
                field="grid",
            )

    def points(self) -> list[dict[str, Any]]:
        """Override mappings of every grid point, in a stable order."""
        self.check()
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


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold ``out/.mmsim-lock`` (an advisory lock released when the process ends, even
    by kill -9): a second sweep into the same directory is refused."""
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform
        yield
        return
    fd = os.open(out / ".mmsim-lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OutputError(f"{out}: another sweep is writing into it") from None
        yield
    finally:
        os.close(fd)


def _cell(value: Any) -> Any:
    """Override values as table cells: scalars as they are, the rest as JSON text."""
    return (
        value
        if isinstance(value, str | int | float | bool) or value is None
        else (json.dumps(value, sort_keys=True))
    )


def _saved_row(path: Path, head: dict[str, Any], keep: tuple[str, ...]) -> dict | None:
    """The row saved at ``path`` if it is a finished, successful run of ``head`` (and has
    the kept series); ``None`` for a missing, damaged, stub or failed one."""
    try:
        saved = json.loads(read_regular(path, 1 << 24))
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("status") != "ok":
        return None
    if any(saved.get(k) != v for k, v in head.items()) or not all(
        isinstance(saved.get(m), int | float) for m in CORE_METRICS[:3]
    ):
        return None
    if keep and not _series_path(path.parent, head["run_id"]).is_file():
        return None
    return saved


def sweep(
    scenario: Scenario | str | os.PathLike | Mapping[str, Any],
    grid: Mapping[str, Sequence[Any]] | None = None,
    *,
    seeds: int | Sequence[int] = 4,
    executor: str = "auto",
    out: str | os.PathLike | None = None,
    zip: Mapping[str, Sequence[Any]] | None = None,
    sweep_seed: int = 0,
    workers: int | None = None,
    dask_address: str | None = None,
    progress: bool = True,
    csv: bool = False,
    keep: Sequence[str] = (),
    run_timeout: float | None = None,
    max_events: float | None = None,
    max_memory: float | None = None,
    meanwhile: Callable[[], object] | None = None,
    keep_workers: bool = True,
) -> pd.DataFrame:
    """Run ``scenario`` at every grid point for every seed; one row per run.

    ``seeds`` is a number of replicates (seeds derived from ``sweep_seed``) or a list of
    distinct run seeds. Returns (and, with ``out``, writes as ``results.parquet``) a
    table with the columns ``point``, ``replicate``, ``seed``, ``run_id``, one column per
    swept path, ``status``, ``error`` and the run's metrics. ``keep`` names series
    columns (``price``, ``dealer_delta``, ...) kept per run: with ``out`` they are written
    to ``runs/<run_id>.series.parquet`` and, for all runs, ``series.parquet`` (read them
    with :func:`load_kept_series`). ``run_timeout`` (s) fails a run that takes longer.
    ``meanwhile`` is called once in this process while forked workers run runs, before
    it takes its own share (e.g. importing what the caller needs after the sweep, such
    as matplotlib for its figures); on other executors it is not called at all.
    ``keep_workers`` keeps the process pool's workers for the next sweep in this process
    that asks for as many (:mod:`mmsim.kept_pool`: a new pool when a worker died or the
    code it forked with was replaced since); with ``False`` a sweep starts no workers
    that outlive it (it still uses those an earlier sweep kept). ``MMSIM_KEEP_WORKERS=0``
    in the environment keeps none; :func:`close_workers` shuts a kept pool down.

    Raises :class:`ScenarioError` before running or writing anything if a grid point
    does not validate or a value or seed is repeated, :class:`~mmsim.errors.BudgetError`
    if a run would exceed ``max_events`` / ``max_memory`` (:func:`mmsim.budget.check`),
    :class:`~mmsim.errors.OutputError` if ``out`` holds something other than a
    sweep, another sweep is writing into it or ``dask_address`` cannot be reached, and
    :class:`~mmsim.errors.ClusterLostError` if that scheduler goes away midway (the runs
    finished by then are saved in ``out``: the same sweep again runs only the others).
    """
    if executor not in EXECUTORS:
        raise ScenarioError(
            f"executor must be one of {', '.join(EXECUTORS)}", source="<sweep>", field="executor"
        )
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise ScenarioError(f"must be >= 1, got {workers!r}", source="<sweep>", field="workers")
    if run_timeout is not None and not run_timeout > 0:
        raise ScenarioError(
            f"must be > 0 s, got {run_timeout!r}", source="<sweep>", field="run_timeout"
        )
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ScenarioError(f"must be >= 1, got {seeds}", source="<sweep>", field="seeds")
        seed_list = replicate_seeds(sweep_seed, seeds)
    else:
        seed_list = list(seeds)
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seed_list):
            raise ScenarioError(
                "seeds must be non-negative integers", source="<sweep>", field="seeds"
            )
    base = load_scenario(scenario)
    spec = SweepSpec(
        {k: list(v) for k, v in (grid or {}).items()},
        {k: list(v) for k, v in (zip or {}).items()},
        seed_list,
        sweep_seed if isinstance(seeds, int) else None,
    )
    points = spec.points()
    keep = tuple(dict.fromkeys(keep))
    resolved, est_seconds = [], 0.0
    for overrides in points:  # validate everything before anything is written
        sc = load_scenario(base, overrides=overrides)
        budget = check_budget(sc, max_events=max_events, max_memory=max_memory)
        est_seconds += estimate_run_seconds(sc, budget)
        resolved.append(sc)
    run_seconds = est_seconds / len(points)  # CPU s a run (mmsim.sweep_cost)
    if keep:
        _check_keep(resolved[0], keep)
    runs = []
    seen: dict[str, int] = {}
    texts = [_scenario_text(sc) for sc in resolved]  # per point, not per run
    for p, k, overrides, seed in spec.runs():
        rid = _hashed_run(texts[p], seed)
        if rid in seen and seen[rid] != p:
            raise ScenarioError(
                f"grid points {seen[rid]} and {p} give the same scenario ({overrides})",
                source="<sweep>",
                field=",".join(overrides) or "grid",
            )
        seen[rid] = p
        head = {
            "point": p,
            "replicate": k,
            "seed": seed,
            "run_id": rid,
            **{path: _cell(v) for path, v in overrides.items()},
        }
        runs.append((head, overrides, seed))
    n_workers = workers or _cores()
    out = Path(out) if out is not None else None
    rows: dict[str, dict[str, Any]] = {}
    todo = runs
    if out is not None and check_output_dir(out, "sweep.json", "a sweep directory"):
        rows, todo = _reusable(out / "runs", runs, keep)  # an earlier sweep: its finished runs
    if executor == "auto":
        executor = _auto(len(todo) * run_seconds, len(todo), n_workers, dask_address)
    pool = None
    if todo and executor == "dask" and dask_address:  # unreachable: fail before writing
        pool = _Pool("dask", n_workers, dask_address, keep=keep_workers)

    # what each run gets: no sweep block (a run never reads it, and validating its grid
    # again in every run cost band_sweep's runs a fifth of their CPU)
    base_dict = {k: v for k, v in scenario_to_dict(base).items() if k != "sweep"}

    def execute(runs_dir: Path | None) -> None:  # into ``rows`` as it is then
        ctx = _Run(rows, {}, runs_dir, keep, run_timeout, progress, run_seconds, meanwhile)
        ctx.keep_workers = keep_workers
        ctx.execute(todo, base_dict, executor, n_workers, dask_address, pool)

    try:
        if out is None:
            execute(None)
            return _table(rows, runs)
        out.mkdir(parents=True, exist_ok=True)
        with _locked(out):
            if rows:  # read again under the lock: another sweep may have added runs
                rows, todo = _reusable(out / "runs", runs, keep)
            (out / "runs").mkdir(exist_ok=True)
            atomic_write_text(out / "scenario.yaml", dump_scenario_yaml(base))
            text = json.dumps({**spec.to_json(), "keep": list(keep)})
            atomic_write_text(out / "sweep.json", text)
            reused = len(rows)
            execute(out / "runs")
            table = _table(rows, runs)
            table.attrs["reused"] = reused
            _save_table(table, out, csv)
            if keep:
                series = load_kept_series(out, table)
                atomic_save(out / "series.parquet", lambda p: series.to_parquet(p, index=False))
            return table
    finally:
        if pool is not None:
            pool.close()  # idempotent: a no-op when the run loop closed it


def _cores() -> int:
    """CPU cores this process may run on (its affinity mask where there is one)."""
    if hasattr(os, "sched_getaffinity"):
        with contextlib.suppress(OSError):
            return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _auto(seconds: float, runs: int, workers: int, dask_address: str | None) -> str:
    """The executor ``auto`` picks for ``runs`` runs estimated at ``seconds`` in all:
    dask given an address; else serial when there is one worker or one run, or when
    the sweep's share per worker is shorter than starting the workers
    (:data:`KEPT_START_UP` when an earlier sweep kept its workers,
    :data:`FORK_START_UP` where they can be forked from this process, else
    :data:`START_UP`); else the process pool."""
    if dask_address:
        return "dask"
    if ready(_processes(min(workers, runs), True)):
        start_up = KEPT_START_UP
    else:
        start_up = FORK_START_UP if can_fork() else START_UP
    if workers < 2 or runs < 2 or seconds / min(workers, runs) < start_up:
        return "serial"
    return "processes"


def _reusable(runs_dir: Path, runs: list, keep: tuple[str, ...]) -> tuple[dict, list]:
    """Rows of the finished runs saved in ``runs_dir``, and the runs still to do."""
    rows, todo = {}, []
    for head, overrides, seed in runs:
        saved = _saved_row(runs_dir / f"{head['run_id']}.json", head, keep)
        if saved is None:
            todo.append((head, overrides, seed))
        else:
            rows[head["run_id"]] = saved
    return rows, todo


def _check_keep(sc: Scenario, keep: tuple[str, ...]) -> None:
    """Refuse series columns a run of ``sc`` does not record."""
    try:
        from mmsim.engine import Simulation

        columns = list(Simulation(sc, 0).recorder.columns)
    except Exception:  # the engine's layout changed: the runs will say what is missing
        return
    for name in keep:
        if name not in columns:
            near = ", ".join(c for c in columns if c != "t")
            raise ScenarioError(
                f"no series column {name!r} (columns: {near})", source="<sweep>", field="keep"
            )


def load_kept_series(directory: str | os.PathLike, table: pd.DataFrame | None = None):
    """The series columns a sweep kept (``keep=``), one long table: ``run_id``,
    ``point``, ``replicate``, ``seed``, the swept paths, then ``t`` (s) and the kept
    columns, for every successful run of ``table`` (default: ``results.parquet``)."""
    directory = Path(directory)
    if table is None:
        table = pd.read_parquet(directory / "results.parquet")
    heads = ["run_id", "point", "replicate", "seed", *swept_columns(table)]
    parts = []
    for row in table[table["status"] == "ok"][heads].itertuples(index=False):
        path = _series_path(directory / "runs", row.run_id)
        if path.is_file():
            frame = pd.read_parquet(path)
            for col, value in reversed(list(zip(heads, row, strict=True))):
                frame.insert(0, col, value)
            parts.append(frame)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=heads)


def _table(rows: dict[str, dict[str, Any]], runs: list) -> pd.DataFrame:
    """Rows in (point, replicate) order; swept columns that mix types (``true`` and
    ``0``) become text so every column has one type."""
    wanted = [head["run_id"] for head, _, _ in runs]
    table = pd.DataFrame([rows[r] for r in wanted if r in rows])
    if table.empty:
        return table
    for col in swept_columns(table):
        kinds = {
            type(v).__name__ if not isinstance(v, int | float) or isinstance(v, bool) else "num"
            for v in table[col]
        }
        if len(kinds) > 1:
            table[col] = [json.dumps(v) if not isinstance(v, str) else v for v in table[col]]
    return table.sort_values(["point", "replicate"], kind="stable").reset_index(drop=True)


def _save_table(table: pd.DataFrame, out: Path, csv: bool) -> None:
    """results.parquet (and .csv) written atomically."""
    atomic_save(out / "results.parquet", lambda p: table.to_parquet(p, index=False))
    if csv:
        atomic_save(out / "results.csv", lambda p: table.to_csv(p, index=False))


def summarize_sweep(table: pd.DataFrame, metric: str = "realized_vol") -> pd.DataFrame:
    """Mean, standard deviation, count, standard error and a 95% confidence half-width
    of ``metric`` per grid point (successful runs only), one row per point with its
    swept values; empty when no run succeeded."""
    keys = ["point", *swept_columns(table)]
    if "status" not in table or metric not in table:
        return pd.DataFrame(columns=[*keys, "mean", "std", "count", "sem", "ci95"])
    ok = table[table["status"] == "ok"]
    grouped = ok.groupby(keys, sort=True, dropna=False)[metric]
    stats = grouped.agg(["mean", "std", "count"]).reset_index()
    stats["sem"] = stats["std"].fillna(0.0) / np.sqrt(stats["count"].clip(lower=1))
    stats["ci95"] = 1.96 * stats["sem"]
    return stats


def swept_columns(table: pd.DataFrame) -> list[str]:
    """Columns between ``run_id`` and ``status``: the swept paths."""
    cols = list(table.columns)
    if "run_id" not in cols or "status" not in cols:
        return []
    return cols[cols.index("run_id") + 1 : cols.index("status")]
