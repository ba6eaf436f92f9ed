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

Executors: ``serial``; ``processes`` (a process pool of warm workers: forked from a
fork server that has imported mmsim and loaded its compiled kernels once, one worker
per core by default); ``dask`` (an existing ``dask.distributed`` scheduler at
``dask_address``, or a ``LocalCluster`` on loopback); ``auto`` (the default: serial
when the whole sweep is estimated to take less than starting workers, else
processes). Rows are identical on all of them. Optional per-run timeout
(``run_timeout``, s; serial and process executors): a run that takes longer becomes a
failed row. A worker that dies (killed, out of memory) fails only the run it was
running: the runs it had not started are run again.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import math
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import as_completed as futures_as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from mmsim.budget import check as check_budget
from mmsim.errors import OutputError, ScenarioError
from mmsim.paths import atomic_save, atomic_write, atomic_write_text, check_output_dir, read_regular
from mmsim.scenario import dump_scenario_yaml, first_duplicate, load_scenario, scenario_to_dict
from mmsim.schema import Scenario

__all__ = [
    "MAX_RUNS",
    "SweepSpec",
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
"""Seconds of wall time to start a pool of warm workers (fork server, imports, kernels);
``auto`` runs a sweep estimated to take less than this serially."""
SECONDS_PER_EVENT = 4.0e-6
"""CPU seconds per event of :func:`mmsim.budget.estimate`, for the ``auto`` choice."""
NOT_RUN_FIELDS = ("name", "description", "seed", "sweep")
"""Scenario fields that do not change a run with a given seed (left out of run ids)."""


def replicate_seeds(sweep_seed: int, n: int) -> list[int]:
    """Run seeds of replicates ``0..n-1``; replicate k's seed depends on (seed, k) only."""
    return [int(np.random.SeedSequence([sweep_seed, k]).generate_state(1)[0]) for k in range(n)]


def run_id(scenario: Scenario | Mapping[str, Any], seed: int) -> str:
    """Stable identifier of one run: a hash of its resolved scenario (without the fields
    that do not change a run, :data:`NOT_RUN_FIELDS`) and its seed."""
    if isinstance(scenario, Scenario):
        data = {k: v for k, v in scenario_to_dict(scenario).items() if k not in NOT_RUN_FIELDS}
    else:
        data = dict(scenario)
    text = json.dumps({"scenario": data, "seed": seed}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


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


class RunTimeout(Exception):
    """A run took longer than the sweep's ``run_timeout``."""


CORE_METRICS = ("realized_vol", "hedge_volume", "n_rehedges", "dealer_pnl")
"""Metrics a successful run must have finite (a NaN there is a failed run)."""


def _alarm(signum: int, frame: Any) -> None:
    raise RunTimeout("the run took longer than --run-timeout")


_STARTED: Any = None
"""In a process-pool worker: the queue on which it reports each run it starts."""


def _init_worker(started: Any) -> None:
    global _STARTED
    _STARTED = started


def _run_one(
    scenario: dict[str, Any],
    overrides: dict[str, Any],
    seed: int,
    keep: tuple[str, ...] = (),
    timeout: float | None = None,
    tag: str = "",
) -> dict[str, Any]:
    """Run one point (in a worker); returns status, metrics and the kept series columns
    (never the Result). With ``timeout`` (s), a run still going then is stopped by a
    timer signal (in a process's main thread; elsewhere there is no timeout)."""
    from mmsim.engine import run

    if _STARTED is not None:
        _STARTED.put(tag)  # synchronous: survives the worker being killed right after

    timed = bool(timeout) and threading.current_thread() is threading.main_thread()
    if timed:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, float(timeout))
    try:
        result = run(scenario, seed=seed, overrides=overrides)
    except Exception as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        return {"status": "error", "error": f"{type(err).__name__}: {message}", "metrics": {}}
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    metrics = result.metrics
    if bad := [m for m in CORE_METRICS if not np.isfinite(metrics.get(m, np.nan))]:
        why = f"NonFiniteMetric: {bad[0]} = {metrics.get(bad[0], 'missing')}"
        return {"status": "error", "error": why, "metrics": metrics}
    outcome = {"status": "ok", "error": "", "metrics": metrics}
    if keep:
        outcome["series"] = {c: result.series[c].to_numpy() for c in ("t", *keep)}
    return outcome


def _warm() -> None:
    """Load mmsim and its compiled kernels (numba's cache) in this process: a fork
    server that ran this gives every worker it forks a warm start."""
    from mmsim.engine import run

    with contextlib.suppress(Exception):
        run(_WARM_SCENARIO, seed=0)


_WARM_SCENARIO = {
    "clock": {"days": 0.002},
    "noise": {"rate": 0.5},
    "dealers": [
        {
            "band": 10,
            "positions": [
                {"type": "call", "strike": 100, "expiry_days": 0.001, "qty": 10},
                {"type": "put", "strike": 100, "expiry_days": 5, "qty": -10},
            ],
        },
        {"trigger": "schedule", "interval": 5},
    ],
    "customers": [{"segment": "retail_call_buyers", "rate": 0.05, "expiry_days": [0.001]}],
    "record": {"every": 5, "levels_every": 10},
}


def _process_context() -> Any:
    """Fork server with mmsim warmed up (POSIX), else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["mmsim._warm"])
        return ctx
    return multiprocessing.get_context("spawn")


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


DASK_CONNECT_TIMEOUT = 10.0
"""Seconds to reach a dask scheduler given by address before giving up."""


class _Pool:
    """The executors behind one ``submit`` / ``as_completed`` / ``close`` interface."""

    def __init__(self, executor: str, workers: int, dask_address: str | None) -> None:
        self.kind = executor
        self.client = self.cluster = self.pool = None
        self.started = None
        if executor == "processes":
            ctx = _process_context()
            self.started = ctx.SimpleQueue()
            self.pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(self.started,),
            )
        elif executor == "dask":
            from dask.distributed import Client

            if dask_address:
                try:
                    self.client = Client(dask_address, timeout=DASK_CONNECT_TIMEOUT)
                except (OSError, TimeoutError, ValueError, TypeError) as err:
                    why = str(err).splitlines()[0] if str(err) else type(err).__name__
                    raise OutputError(
                        f"--dask {dask_address}: cannot reach the scheduler ({why})"
                    ) from None
            else:
                self.cluster = local_cluster(workers)
                self.client = Client(self.cluster)

    def submit(self, *args: Any) -> Any:
        if self.pool is not None:
            return self.pool.submit(_run_one, *args)
        if self.client is not None:
            return self.client.submit(_run_one, *args, pure=False)
        raise RuntimeError("the serial executor runs in _drain")

    def as_completed(self, futures: list) -> Iterator[Any]:
        """Futures in the order they finish."""
        if self.client is not None:
            from dask.distributed import as_completed as dask_as_completed

            return iter(dask_as_completed(futures))
        return futures_as_completed(futures)

    def close(self, interrupted: bool = False) -> None:
        """Shut down; when ``interrupted``, stop the workers at once (a pool left to
        finish its running tasks would keep them alive for the length of a run) and
        keep dask's shutdown quiet."""
        pool, self.pool = self.pool, None
        client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        if pool is not None:
            if interrupted:
                for proc in list((pool._processes or {}).values()):
                    with contextlib.suppress(Exception):
                        proc.kill()
            pool.shutdown(wait=not interrupted, cancel_futures=True)
        if client is not None or cluster is not None:
            quiet = _quiet_dask() if interrupted else contextlib.nullcontext()
            with quiet:
                for thing in (client, cluster):
                    if thing is not None:
                        with contextlib.suppress(Exception):
                            thing.close()


@contextlib.contextmanager
def _quiet_dask() -> Iterator[None]:
    """Silence distributed's loggers (an interrupted cluster logs dozens of lines)."""
    loggers = [logging.getLogger(n) for n in ("distributed", "tornado", "asyncio")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


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


def _series_path(runs_dir: Path, rid: str) -> Path:
    return runs_dir / f"{rid}.series.parquet"


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
) -> pd.DataFrame:
    """Run ``scenario`` at every grid point for every seed; one row per run.

    ``seeds`` is a number of replicates (seeds derived from ``sweep_seed``) or a list of
    distinct run seeds. Returns (and, with ``out``, writes as ``results.parquet``) a
    table with the columns ``point``, ``replicate``, ``seed``, ``run_id``, one column per
    swept path, ``status``, ``error`` and the run's metrics. ``keep`` names series
    columns (``price``, ``dealer_delta``, ...) kept per run: with ``out`` they are written
    to ``runs/<run_id>.series.parquet`` and, for all runs, ``series.parquet`` (read them
    with :func:`load_kept_series`). ``run_timeout`` (s) fails a run that takes longer.

    Raises :class:`ScenarioError` before running or writing anything if a grid point
    does not validate or a value or seed is repeated, :class:`~mmsim.errors.BudgetError`
    if a run would exceed ``max_events`` / ``max_memory`` (:func:`mmsim.budget.check`),
    and :class:`~mmsim.errors.OutputError` if ``out`` holds something other than a
    sweep or another sweep is writing into it.
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
    resolved, est_events = [], 0.0
    for overrides in points:  # validate everything before anything is written
        sc = load_scenario(base, overrides=overrides)
        budget = check_budget(sc, max_events=max_events, max_memory=max_memory)
        est_events += budget.events * len(seed_list)
        resolved.append(sc)
    if keep:
        _check_keep(resolved[0], keep)
    runs = []
    seen: dict[str, int] = {}
    for p, k, overrides, seed in spec.runs():
        rid = run_id(resolved[p], seed)
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
    n_workers = workers or os.cpu_count() or 1
    if executor == "auto":
        quick = est_events * SECONDS_PER_EVENT / max(n_workers, 1) < START_UP
        executor = "dask" if dask_address else ("serial" if quick else "processes")
    out = Path(out) if out is not None else None
    rows: dict[str, dict[str, Any]] = {}
    todo = runs
    if out is not None and check_output_dir(out, "sweep.json", "a sweep directory"):
        rows, todo = _reusable(out / "runs", runs, keep)  # an earlier sweep: its finished runs
    pool = None
    if todo and executor == "dask" and dask_address:  # unreachable: fail before writing
        pool = _Pool("dask", n_workers, dask_address)
    try:
        if out is None:
            ctx = _Run(rows, {}, None, keep, run_timeout, progress)
            ctx.execute(todo, scenario_to_dict(base), executor, n_workers, dask_address, pool)
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
            ctx = _Run(rows, {}, out / "runs", keep, run_timeout, progress)
            ctx.execute(todo, scenario_to_dict(base), executor, n_workers, dask_address, pool)
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


MAX_POOL_RESTARTS = 3
"""A process pool whose worker dies (killed, out of memory) is broken for every run still
queued on it; those runs are resubmitted on a fresh pool. A run that was running when a
worker died is rerun alone on a one-worker pool, so a death there is pinned on it; after
this many broken pools, the remaining runs fail."""


@dataclass
class _Run:
    """State of one sweep's execution: where rows go and how each is recorded."""

    rows: dict[str, dict[str, Any]]
    kept: dict[str, dict]
    runs_dir: Path | None
    keep: tuple[str, ...]
    timeout: float | None
    progress: bool
    failed: int = 0
    bar: Any = None

    def record(self, head: dict[str, Any], outcome: dict[str, Any]) -> None:
        row = {**head, "status": outcome["status"], "error": outcome["error"]}
        row.update(outcome["metrics"])
        rid = head["run_id"]
        if self.runs_dir is not None:
            if "series" in outcome:
                frame = pd.DataFrame(outcome["series"])
                atomic_save(
                    _series_path(self.runs_dir, rid),
                    lambda p: frame.to_parquet(p, index=False),
                )
            with atomic_write(self.runs_dir / f"{rid}.json", record=False) as tmp:
                tmp.write_text(json.dumps(row, default=str))
        self.rows[rid] = row
        self.failed += outcome["status"] != "ok"
        self.bar.update(1)
        self.bar.set_postfix(failed=self.failed)

    def execute(self, todo, base_dict, executor, workers, address, pool) -> None:
        """Run ``todo`` on the executor, recording each run as it finishes."""
        if not todo:
            if pool is not None:
                pool.close()
            return
        self.bar = tqdm(total=len(todo), unit="run", disable=not self.progress, desc="sweep")
        try:
            if executor == "serial":
                for head, overrides, seed in todo:
                    outcome = _run_one(base_dict, overrides, seed, self.keep, self.timeout)
                    self.record(head, outcome)
                return
            self._parallel(todo, base_dict, executor, workers, address, pool)
        finally:
            self.bar.close()

    def _parallel(self, todo, base_dict, executor, workers, address, pool) -> None:
        suspects: list = []
        for attempt in range(MAX_POOL_RESTARTS + 1):
            if suspects:  # each alone: a death now is that run's own
                for run in suspects:
                    if self._drain(_Pool("processes", 1, None), [run], base_dict):
                        why = (
                            "WorkerDied: the worker running this run died (killed or out of memory)"
                        )
                        self.record(run[0], {"status": "error", "error": why, "metrics": {}})
                suspects = []
            if not todo:
                return
            pool = pool or _Pool(executor, min(workers, len(todo)), address)
            lost = self._drain(pool, todo, base_dict)
            pool = None
            if not lost:
                return
            suspects = [r for r in lost if r[0]["run_id"] in self._started]
            todo = [r for r in lost if r[0]["run_id"] not in self._started]
            if attempt < MAX_POOL_RESTARTS:
                self.bar.write(
                    f"mmsim: a sweep worker died; restarting the pool for {len(lost)} "
                    "unfinished runs",
                    sys.stderr,
                )
        for head, _, _ in todo + suspects:
            why = f"WorkerDied: a worker died {MAX_POOL_RESTARTS + 1} times"
            self.record(head, {"status": "error", "error": why, "metrics": {}})

    _started: frozenset = frozenset()

    def _drain(self, pool: _Pool, todo: list, base_dict: dict[str, Any]) -> list:
        """Submit every run of ``todo`` and record each as it finishes; returns the runs
        lost to a broken process pool (``self._started``: those that had started)."""
        interrupted = True
        try:
            futures, lost, started = {}, [], set()
            for i, (head, overrides, seed) in enumerate(todo):
                try:
                    args = (base_dict, overrides, seed, self.keep, self.timeout, head["run_id"])
                    futures[pool.submit(*args)] = (head, overrides, seed)
                except BrokenProcessPool:  # a worker died while runs were being queued
                    lost = list(todo[i:])
                    break
            for fut in pool.as_completed(list(futures)):
                run = futures[fut]
                try:
                    outcome = fut.result()
                except BrokenProcessPool:
                    lost.append(run)
                    continue
                except Exception as err:  # the executor lost the run (e.g. dask KilledWorker)
                    why = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                    outcome = {"status": "error", "error": why, "metrics": {}}
                self.record(run[0], outcome)
            while lost and pool.started is not None and not pool.started.empty():
                started.add(pool.started.get())
            self._started = frozenset(started)
            interrupted = False
            return lost
        finally:
            pool.close(interrupted=interrupted)


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
