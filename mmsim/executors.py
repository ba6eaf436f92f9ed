"""How a sweep's runs are executed: serial, a pool of warm worker processes, or dask.

One run in a worker is :func:`_run_one` (status, metrics and kept series, never the
Result); a task is :func:`_run_chunk`, one or several runs in a row. :class:`_Run`
records each run as its task returns (the sweep's row files) and replaces a broken
process pool: a run that was running when a worker died is rerun alone on a one-worker
pool, so a death there is pinned on that run, while the runs not yet started are simply
resubmitted.

Process workers start warm, without importing pandas or loading numba's cache again:

- **fork** (Linux, when no other Python thread is alive in this process): this process
  loads mmsim and its kernels (:func:`_warm`, unless it has run a simulation already)
  and forks its workers, a few milliseconds each. A forked worker resets the signal
  handlers it inherited (Ctrl-C ignored, SIGTERM default), dies with this process
  (``PR_SET_PDEATHSIG``: an orphan would hold the sweep directory's lock) and freezes
  the garbage collector's view of the inherited heap (:mod:`mmsim._warm` says why).
- **fork server** elsewhere (macOS, or a process with threads alive: a notebook's
  kernel, a running dask cluster; forking those can deadlock the child): forked from a
  server that imported mmsim and ran a tiny scenario once (:mod:`mmsim._warm`),
  started with Ctrl-C ignored (the sweep stops its workers). While it warms up, about a
  second, a sweep's process that is itself warm (it has run a simulation) runs runs
  from the other end of the queue (:meth:`_Run._submit_while_running`): worker
  start-up then costs no idle core. **spawn** where neither exists (Windows).

Dask tasks carry several runs each (:func:`chunk_sizes`: a dask task costs about 5 ms
of scheduler, client and worker CPU, a process-pool task 0.15 ms, against runs of
10-50 ms), largest first so the last tasks are short and no worker idles at the end.
A run's timeout is a timer signal in the worker's main thread (serial and process
executors, and the sweep's own runs; dask runs tasks in threads, so no timeout there).
"""

from __future__ import annotations

import collections
import contextlib
import gc
import itertools
import json
import logging
import math
import multiprocessing
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import as_completed as futures_as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from mmsim.errors import OutputError
from mmsim.paths import atomic_save, atomic_write

__all__ = [
    "CORE_METRICS",
    "DASK_CONNECT_TIMEOUT",
    "MAX_POOL_RESTARTS",
    "QUIET_DASK",
    "RunTimeout",
    "local_cluster",
]


class RunTimeout(Exception):
    """A run took longer than the sweep's ``run_timeout``."""


CORE_METRICS = ("realized_vol", "hedge_volume", "n_rehedges", "dealer_pnl")
"""Metrics a successful run must have finite (a NaN there is a failed run)."""


def _alarm(signum: int, frame: Any) -> None:
    raise RunTimeout("the run took longer than --run-timeout")


_RAN_HERE = False
"""Whether this process has run a simulation (its imports and kernels are loaded)."""

_STARTED: Any = None
"""In a process-pool worker: the queue on which it reports each run it starts."""


def _init_worker(started: Any, parent: int | None = None) -> None:
    """Set up a process-pool worker; ``parent`` (a pid) when it was forked from the
    sweep's own process, whose signal handlers, heap and lifetime it would otherwise
    share (see the module docstring)."""
    global _STARTED
    _STARTED = started
    if parent is None:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the sweep stops its workers
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the command's handler
    _die_with(parent)
    gc.freeze()  # no full collection walks (and copies) the inherited heap


def _die_with(parent: int) -> None:
    """Have the kernel kill this process when ``parent`` exits (Linux), so a sweep
    killed with SIGKILL leaves no worker behind holding its directory's lock."""
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the request: nobody will collect us
        os._exit(1)


def _run_one(
    scenario: dict[str, Any],
    overrides: dict[str, Any],
    seed: int,
    keep: tuple[str, ...] = (),
    timeout: float | None = None,
    tag: str = "",
) -> dict[str, Any]:
    """Run one point (in a worker); returns status, metrics and the kept series columns
    (never the Result). The run builds only what the row needs (``tables=False``: no
    trade, option-trade or account tables; the metrics are the same). With ``timeout``
    (s), a run still going then is stopped by a timer signal (in a process's main
    thread; elsewhere there is no timeout)."""
    from mmsim.engine import run

    if _STARTED is not None:
        _STARTED.put(tag)  # synchronous: survives the worker being killed right after

    timed = bool(timeout) and threading.current_thread() is threading.main_thread()
    if timed:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, float(timeout))
    try:
        result = run(scenario, seed=seed, overrides=overrides, tables=False)
    except Exception as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        return {"status": "error", "error": f"{type(err).__name__}: {message}", "metrics": {}}
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    global _RAN_HERE
    _RAN_HERE = True
    metrics = result.metrics
    if bad := [m for m in CORE_METRICS if not np.isfinite(metrics.get(m, np.nan))]:
        why = f"NonFiniteMetric: {bad[0]} = {metrics.get(bad[0], 'missing')}"
        return {"status": "error", "error": why, "metrics": metrics}
    outcome = {"status": "ok", "error": "", "metrics": metrics}
    if keep:
        outcome["series"] = {c: result.series[c].to_numpy() for c in ("t", *keep)}
    return outcome


def _run_chunk(
    scenario: dict[str, Any],
    runs: list[tuple[dict[str, Any], int, str]],
    keep: tuple[str, ...] = (),
    timeout: float | None = None,
) -> list[dict[str, Any]]:
    """One task: the runs ``(overrides, seed, tag)`` in order, an outcome each
    (:func:`_run_one`)."""
    return [_run_one(scenario, o, seed, keep, timeout, tag) for o, seed, tag in runs]


def chunk_sizes(n: int, workers: int, run_seconds: float, most: float = 1.0) -> list[int]:
    """Runs per task for ``n`` runs on ``workers`` (guided self-scheduling, factoring):
    each task half an even share of the runs still unassigned, at most ``most`` seconds
    of estimated work (``run_seconds`` per run; the estimate runs high for compiled
    fast-path runs, so tasks take about a quarter second), at least one run. Tasks
    shrink toward the end, so workers finish together; sizes sum to ``n``."""
    cap = max(1, int(most / run_seconds)) if run_seconds > 0 else n
    sizes, left = [], n
    while left:
        size = min(cap, max(1, math.ceil(left / (2 * max(workers, 1)))))
        sizes.append(size)
        left -= size
    return sizes


def _warm() -> None:
    """Load mmsim and its compiled kernels (numba's cache) in this process: a fork
    server that ran this gives every worker it forks a warm start."""
    from mmsim.engine import run

    global _RAN_HERE
    with contextlib.suppress(Exception):
        run({**_WARM_SCENARIO, "engine": {"fast_path": "off"}}, seed=0)  # the simpy agents
    with contextlib.suppress(Exception):  # one instant dealer: the compiled fast path
        run({**_WARM_SCENARIO, "dealers": _WARM_SCENARIO["dealers"][:1]}, seed=0)
    _RAN_HERE = True


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


def _warm_dask_worker() -> None:
    """On a dask worker, once: load mmsim and its kernels (:func:`_warm`), then freeze the
    garbage collector's view of everything loaded, as the fork server does
    (:mod:`mmsim._warm`): a worker's full collections would otherwise walk the large
    heap of distributed, pandas and numba objects during every run (a third more CPU
    per run in a measurement)."""
    import gc

    global _DASK_WARM
    if not _DASK_WARM:
        _warm()
        gc.collect()
        gc.freeze()
        _DASK_WARM = True


_DASK_WARM = False


def can_fork() -> bool:
    """Whether workers may be forked from this process: on Linux (macOS's system
    libraries are not fork-safe, Windows has no fork) with no other Python thread alive
    (one holding a lock at the fork would leave it held forever in the child). tqdm's
    idle monitor thread is stopped first: it only paces progress bars, and a bar
    started later starts a new one. Native threads (OpenBLAS, jemalloc) are not counted:
    those libraries reset themselves in a forked child."""
    if not sys.platform.startswith("linux"):
        return False
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    while _CLOSING:  # an earlier pool's workers, exiting: long done by now, as a rule
        if (thread := _CLOSING.pop()) is not None:
            thread.join(timeout=CLOSE_TIMEOUT)  # still alive after it: no fork this time
    with contextlib.suppress(Exception):
        from tqdm.std import TMonitor

        for thread in threading.enumerate():
            if isinstance(thread, TMonitor):
                thread.exit()  # sets its stop event and joins it
                thread.tqdm_cls.monitor = None
    return threading.active_count() == 1


_CLOSING: list = []
"""Manager threads of forked pools closed without waiting for their workers to exit
(about 25 ms; a broken or interrupted pool's workers are killed): joined before this
process forks again."""

CLOSE_TIMEOUT = 5.0
"""Seconds to wait for an earlier forked pool's workers to exit before forking again."""


class _Bar(tqdm):
    """The sweep's progress bar, without tqdm's monitor thread (so workers may fork)."""

    monitor_interval = 0


def _process_context(fork: bool = False) -> Any:
    """Fork (``fork``: this process is warm and may fork), else a fork server with
    mmsim warmed up (POSIX), else spawn."""
    if fork:
        return multiprocessing.get_context("fork")
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["mmsim._warm"])
        return ctx
    return multiprocessing.get_context("spawn")


def _start_fork_server() -> None:
    """Start the fork server now if this platform has one (it returns at once; the
    server then imports mmsim and loads its kernels while this process goes on)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        from multiprocessing import forkserver

        _process_context()  # its preload list
        forkserver.ensure_running()


QUIET_DASK = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "1s",
}
"""dask settings of :func:`local_cluster` (``dask.config.set(QUIET_DASK)`` before
starting a cluster's servers, or the matching ``DASK_DISTRIBUTED__...`` variables)."""


def local_cluster(workers: int) -> Any:
    """A ``dask.distributed.LocalCluster`` for sweeps: ``workers`` single-threaded worker
    processes (runs are pure-Python CPU work: threads would share one GIL) on loopback,
    no dashboard, and no statistical profiler (it samples every worker thread's stack
    every 10 ms; a sweep has no use for the profile). Its servers' event-loop watchdog
    ticks every 0.5 s instead of 20 ms, their system monitor every 2 s instead of 0.5 s
    and the workers' memory monitor every 1 s instead of 0.1 s: an idle cluster of 2
    workers then costs 0.005 s of CPU per second instead of 0.07, which a sweep's runs
    would otherwise share cores with (:data:`QUIET_DASK` holds these settings, for a
    cluster of your own). Close it when done.

    Starting one costs about 1 s of wall time and closing it about 0.5 s, plus each
    worker importing ``distributed``; for short sweeps that is most of the difference
    from a process pool. To pay it once for many sweeps, start one yourself and pass its
    ``scheduler_address`` as ``dask_address``."""
    import dask
    from dask.distributed import LocalCluster

    with dask.config.set(QUIET_DASK), _sigint_ignored():
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",  # no fixed port: clusters may coexist
            # a worker whose scheduler closes first logs an ERROR per heartbeat on the way
            # down; task failures still come back through their futures
            silence_logs=logging.CRITICAL,
        )


DASK_CONNECT_TIMEOUT = 10.0
"""Seconds to reach a dask scheduler given by address before giving up."""


class _Pool:
    """The executors behind one ``submit`` / ``as_completed`` / ``close`` interface;
    ``task`` (a picklable module-level function, default a chunk of sweep runs) is what runs."""

    def __init__(
        self, executor: str, workers: int, dask_address: str | None, task: Any = None
    ) -> None:
        self.kind = executor
        self.task = task or _run_chunk
        self.client = self.cluster = self.pool = None
        self.started = None
        self.forked = False  # workers forked from this process (else a fork server)
        self.workers = workers  # tasks run at once
        if executor == "processes":
            if can_fork() and not _RAN_HERE:
                _warm()  # once per process: workers forked from now on start warm
            self.forked = can_fork()  # again: the warm-up's runs restarted tqdm's monitor
            ctx = _process_context(self.forked)
            self.started = ctx.SimpleQueue()
            self.pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(self.started, os.getpid() if self.forked else None),
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
            with contextlib.suppress(Exception):  # a worker without mmsim fails its runs
                self.client.run(_warm_dask_worker)
            with contextlib.suppress(Exception):
                self.workers = sum(self.client.nthreads().values()) or workers

    def submit(self, *args: Any) -> Any:
        if self.pool is not None:
            if self.forked and not self.pool._processes:
                # the first submit forks every worker: fork with Ctrl-C ignored, so no
                # worker ever runs the command's handler. Python 3.12+ warns of forking
                # with native threads alive (OpenBLAS, jemalloc): those reset in the
                # child, and no other Python thread is alive (can_fork)
                with _sigint_ignored(), warnings.catch_warnings():
                    warnings.filterwarnings("ignore", ".*multi-threaded", DeprecationWarning)
                    return self.pool.submit(self.task, *args)
            return self.pool.submit(self.task, *args)
        if self.client is not None:
            return self.client.submit(self.task, *args, pure=False)
        done: Future = Future()  # serial: run now, hand back a finished future
        done.set_result(self.task(*args))
        return done

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
            if self.forked:  # return now, let the workers exit: joined before a next fork
                _CLOSING.append(pool._executor_manager_thread)
            pool.shutdown(wait=not interrupted and not self.forked, cancel_futures=True)
        if client is not None or cluster is not None:
            quiet = _quiet_dask() if interrupted else contextlib.nullcontext()
            with quiet:
                if cluster is not None:  # ours: workers first, so none outlives the scheduler
                    _stop_workers(cluster)
                for thing in (client, cluster):
                    if thing is not None:
                        with contextlib.suppress(Exception):
                            thing.close()


WORKER_STOP_TIMEOUT = 10.0
"""Seconds to wait for a local dask cluster's workers to stop before closing it anyway."""


def _stop_workers(cluster: Any) -> None:
    """Scale a ``LocalCluster`` to no workers and wait (at most
    :data:`WORKER_STOP_TIMEOUT`) until their processes are gone. Closing the cluster
    then stops only the scheduler: no worker is left to send a heartbeat to a scheduler
    that has closed (an ERROR line each, the race behind a flaky Ctrl-C test)."""
    import time

    with contextlib.suppress(Exception):
        cluster.scale(0)
        deadline = time.monotonic() + WORKER_STOP_TIMEOUT
        while cluster.workers and time.monotonic() < deadline:
            time.sleep(0.02)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while worker processes are started, so they inherit the ignore: a
    terminal's Ctrl-C (SIGINT to the whole process group) then reaches only this process,
    which shuts the workers down, instead of every worker printing its own traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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


def _series_path(runs_dir: Path, rid: str) -> Path:
    return runs_dir / f"{rid}.series.parquet"


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
    run_seconds: float = 0.05
    """Estimated wall time of one run (s): how many runs a dask task carries."""
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
        self.bar = _Bar(total=len(todo), unit="run", disable=not self.progress, desc="sweep")
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
                    if self._drain(_Pool("processes", 1, None), [run], base_dict, steal=False):
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

    def _submit(self, pool: _Pool, queue: collections.deque, futures: dict, base_dict) -> list:
        """Submit the tasks (lists of runs) of ``queue``, taken from its left; returns
        the runs left when a worker died while tasks were being queued."""
        while True:
            try:
                chunk = queue.popleft()
            except IndexError:
                return []
            try:
                runs = [(overrides, seed, head["run_id"]) for head, overrides, seed in chunk]
                futures[pool.submit(base_dict, runs, self.keep, self.timeout)] = chunk
            except BrokenProcessPool:
                return [run for rest in (chunk, *queue) for run in rest]
            except RuntimeError:  # the pool was shut down (an interrupt): stop feeding it
                return []

    def _submit_while_running(
        self, pool: _Pool, queue: collections.deque, futures: dict, base_dict
    ) -> list:
        """Submit ``queue`` to the pool from a thread while this one runs runs itself.

        A fork server's pool's first ``submit`` waits for its first worker: the fork
        server's imports and compiled kernels, about a second. Meanwhile this process
        takes tasks from the queue's other end and records their runs, so no core idles
        during worker start-up and a short sweep may finish before it; once the feeder
        has queued everything (workers are up), this process only collects results.
        Only done in a process that has run a simulation before (:data:`_RAN_HERE`): a
        cold one would pay the same imports and kernel loading as the fork server, a
        second of CPU for a few runs' worth of wall time."""
        lost: list = []
        failed: list[BaseException] = []

        def feed() -> None:
            try:
                lost.extend(self._submit(pool, queue, futures, base_dict))
            except BaseException as err:  # e.g. the fork server killed: raised below
                failed.append(err)

        feeder = threading.Thread(target=feed, name="mmsim-sweep-feeder", daemon=True)
        feeder.start()
        while feeder.is_alive():
            try:
                chunk = queue.pop()
            except IndexError:
                break
            for head, overrides, seed in chunk:
                self.record(head, _run_one(base_dict, overrides, seed, self.keep, self.timeout))
        feeder.join()
        if failed:
            raise failed[0]
        return lost

    def _collect(self, pool: _Pool, futures: dict, lost: list) -> list:
        """Record the runs of every task as it finishes. Runs lost to a broken process
        pool go to ``lost``; returns the runs of a task of several that failed as a
        whole (a dask worker killed under it): each is tried again alone."""
        retry = []
        for fut in pool.as_completed(list(futures)):
            chunk = futures[fut]
            try:
                outcomes = fut.result()
            except BrokenProcessPool:
                lost.extend(chunk)
                continue
            except Exception as err:  # the executor lost the task (e.g. dask KilledWorker)
                if len(chunk) > 1:
                    retry.extend(chunk)
                    continue
                why = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                outcomes = [{"status": "error", "error": why, "metrics": {}}]
            for run, outcome in zip(chunk, outcomes, strict=True):
                self.record(run[0], outcome)
        return retry

    def _drain(
        self, pool: _Pool, todo: list, base_dict: dict[str, Any], steal: bool = True
    ) -> list:
        """Submit every run of ``todo`` and record each as it finishes; returns the runs
        lost to a broken process pool (``self._started``: those that had started).
        With ``steal``, this process runs queued runs while a fork server's workers
        start. Dask tasks carry several runs (:func:`chunk_sizes`), pool tasks one."""
        interrupted = True
        try:
            futures: dict = {}
            lost, started = [], set()
            sizes = [1] * len(todo)
            if getattr(pool, "client", None) is not None:
                sizes = chunk_sizes(len(todo), pool.workers, self.run_seconds)
            ends = list(itertools.accumulate(sizes))
            queue = collections.deque(todo[e - n : e] for n, e in zip(sizes, ends, strict=True))
            served = getattr(pool, "pool", None) is not None and not pool.forked
            if served:
                with _sigint_ignored():  # the fork server (so every worker) ignores Ctrl-C
                    _start_fork_server()
            if steal and _RAN_HERE and served:
                lost = self._submit_while_running(pool, queue, futures, base_dict)
            else:
                lost = self._submit(pool, queue, futures, base_dict)
            if retry := self._collect(pool, futures, lost):
                futures = {}
                lost += self._submit(
                    pool, collections.deque([r] for r in retry), futures, base_dict
                )
                self._collect(pool, futures, lost)
            while lost and pool.started is not None and not pool.started.empty():
                started.add(pool.started.get())
            self._started = frozenset(started)
            # a broken pool's workers are stopped, not awaited: one being started just as
            # another died is missed by the pool's own clean-up, which then waits forever
            interrupted = bool(lost)
            return lost
        finally:
            pool.close(interrupted=interrupted)
