"""How a sweep's runs are executed: serial, a pool of warm worker processes, or dask.

One run in a worker is :func:`_run_one` (status, metrics and kept series, never the
Result); a task is :func:`_run_chunk`, one or several runs in a row. :class:`_Run`
records each run as its task returns (the sweep's row files) and replaces a broken
process pool: a run that was running when a worker died is rerun alone on a one-worker
pool, so a death there is pinned on that run, while the runs not yet started are simply
resubmitted.

Process workers start warm (:mod:`mmsim.workers`): forked from this process on Linux,
else from a fork server. Forked, a sweep's ``workers`` are this process and
``workers - 1`` forks, and every one of them takes its next run from a shared counter
as it finishes the last (:mod:`mmsim.claims`, :meth:`_Run._share_claims`): each fork
gets one task, the whole list of runs, and writes each outcome down a pipe this
process reads between its own runs. A cold process first runs the sweep's first run,
which loads the kernels the workers inherit (:meth:`_Run._warm_up`). While a fork
server warms up, about a second, a sweep's process that is itself warm (it has run a
simulation) runs runs from the other end of the queue
(:meth:`_Run._submit_while_running`): worker start-up then costs no idle core. A
sweep's pool is kept for the next sweep in this process that asks for as many workers
(:mod:`mmsim.kept_pool`: alive, running current code), which then neither forks nor
pays its workers' copied pages again.

Dask tasks on workers of this machine take runs one at a time from a claims file
(:mod:`mmsim.dask_claims`, :meth:`_Run._claim_runs`), as forked workers take them from
a shared counter: one task per worker and one queued behind it while the runs left
outlast a task (:func:`claim_tasks`), each returning after :data:`TASK_SECONDS`, so the
workers finish within about a run of each other and each costs a dask task (about
2-3 ms of scheduler, client and worker CPU) every half second, not every few runs.
Tasks for workers elsewhere carry several runs each (:func:`chunk_sizes`:
against runs of 5-50 ms), largest first so the last tasks are short; each task's runs
are spread over the grid (:func:`spread`), so tasks of equal size cost about the same.
They are submitted at once, as one graph (:meth:`_Pool.submit_all`: one message to
the scheduler, the scenario in it once), and each task's outcomes are fetched as soon
as it finishes, while this process records earlier ones (:meth:`_Pool.completed`).
Every worker of the cluster is warmed once, as it joins (:mod:`mmsim.dask_warm`); a
sweep on a running cluster keeps its client for the next (:mod:`mmsim.dask_client`).
A run's timeout is a timer signal in the worker's main thread (serial and process
executors, and the sweep's own runs; dask runs tasks in threads, so no timeout there).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import math
import os
import signal
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import as_completed as futures_as_completed
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from mmsim import workers as _workers
from mmsim.claims import Claims
from mmsim.errors import ClusterLostError, OutputError, ScenarioError
from mmsim.kept_pool import KeptPool, give, keeping, take
from mmsim.paths import atomic_save, atomic_write
from mmsim.workers import (
    _CLOSING,
    _init_worker,
    _process_context,
    _quiet_dask,
    _release_dask_offload,
    _sigint_ignored,
    _start_fork_server,
    _stop_workers,
    _warm,
    can_fork,
    is_warm,
    local_cluster,
    report_start,
    set_warm,
)

__all__ = [
    "CORE_METRICS",
    "DASK_CONNECT_TIMEOUT",
    "MAX_POOL_RESTARTS",
    "RunTimeout",
    "local_cluster",
]


TAIL_TASKS = 8
"""For workers that cannot claim runs (:mod:`mmsim.dask_claims`: on another machine), a
dask task carries at least ``1 / TAIL_TASKS`` of a worker's even share of a sweep's
runs (:func:`chunk_sizes`): band_sweep's 200-run sweep on 2 workers then goes in 9
tasks, none under 8 runs, and a worker that finishes its last task early idles for at
most one such task, an eighth of its share. Each task costs about 8 ms of CPU in the
client, the scheduler and its worker, and 1.5-6 ms of its worker's wall time between
tasks, against runs of 5 ms there: with a floor of a sixteenth (12 tasks, the last
ones of 6-7 runs, at most 0.25 s each) dask's CPU over the process pool's was
1.05-1.15 (mean 1.10, 6 alternations), with an eighth and 0.5 s (:data:`TASK_SECONDS`)
1.00-1.11 (mean 1.06, 4), its wall less run-queue waits 1.00-1.12 against 0.98-1.10
(``benchmarks.sweeps.bench_200``, load 2.5-5)."""

TASK_SECONDS = 0.5
"""Seconds a dask task claiming runs runs them before it returns (:func:`_run_claimed_dask`,
one run at least), or estimated seconds of runs a task of a list of runs carries at most
(:func:`chunk_sizes`): what a lost cluster can take with each worker's running task (a
sweep saves rows as tasks finish) and how often its progress bar moves."""


class RunTimeout(Exception):
    """A run took longer than the sweep's ``run_timeout``."""


class TaskLost(Exception):
    """A dask task finished, but its result went away with its worker before it was
    fetched: its runs are run again (:meth:`_Run._settle`, :meth:`_Run._claim_runs`)."""


CORE_METRICS = ("realized_vol", "hedge_volume", "n_rehedges", "dealer_pnl")
"""Metrics a successful run must have finite (a NaN there is a failed run)."""


def _alarm(signum: int, frame: Any) -> None:
    raise RunTimeout("the run took longer than --run-timeout")


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

    report_start(tag)

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
    set_warm()
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


def _run_claimed(
    scenario: dict[str, Any],
    runs: list[tuple[dict[str, Any], int]],
    keep: tuple[str, ...] = (),
    timeout: float | None = None,
    token: int = 0,
) -> int:
    """One forked worker's task for a whole sweep: take the next of the runs
    ``(overrides, seed)`` from its pool's shared counter until none is left, writing
    ``(token, index, outcome)`` of each down the pool's pipe (:mod:`mmsim.claims`);
    returns how many it ran."""
    claims = _workers._CLAIMS
    done = 0
    while (i := claims.take(len(runs))) is not None:
        overrides, seed = runs[i]
        claims.send((token, i, _run_one(scenario, overrides, seed, keep, timeout)))
        done += 1
    return done


def _run_claimed_dask(
    scenario: dict[str, Any],
    path: str,
    keep: tuple[str, ...] = (),
    timeout: float | None = None,
    seconds: float = TASK_SECONDS,
) -> list[tuple[int, dict[str, Any]]] | None:
    """One dask task of a sweep whose runs are claimed (:mod:`mmsim.dask_claims`): take
    the next run ``(overrides, seed, tag)`` of the claims file at ``path`` and run it,
    until none is left or ``seconds`` (wall) have passed since the
    task began (one run at least); returns ``(index, outcome)`` of each, or ``None`` if
    this machine has no such file (the sweep sends the runs in lists instead)."""
    from mmsim.dask_claims import open_claims

    taker = open_claims(path)
    if taker is None:
        return None
    out = []
    with taker:
        end = time.monotonic() + seconds
        while (i := taker.take()) is not None:
            overrides, seed, tag = taker.runs[i]
            out.append((i, _run_one(scenario, overrides, seed, keep, timeout, tag)))
            if time.monotonic() >= end:
                break
    return out


def _fetched(future: Any, result: Any) -> Any:
    """The result getter of a finished dask ``future`` whose ``result`` was fetched
    (``as_completed(with_results=True, raise_errors=False)``): returns it, or raises
    what the task raised, or its cancellation, or :class:`TaskLost` if the future is
    pending again (its result was on a worker that went away before it was fetched:
    ``result()`` would wait for a worker to compute it again, for good if none is
    left)."""

    def get() -> Any:
        if future.status == "finished":
            return result
        if isinstance(result, BaseException):
            raise result
        if future.status in ("error", "cancelled"):
            return future.result()  # raises the task's error
        raise TaskLost(f"dask task {future.key} lost with its worker ({future.status})")

    return get


_TOKENS = itertools.count(1)
"""Sweep numbers: a kept pool's outcomes carry their sweep's (:func:`_run_claimed`)."""


def chunk_sizes(
    n: int, workers: int, run_seconds: float, most: float = TASK_SECONDS, tail: int = TAIL_TASKS
) -> list[int]:
    """Runs per task for ``n`` runs on ``workers`` (guided self-scheduling, factoring):
    each task half an even share of the runs still unassigned, at most ``most`` seconds
    of estimated work (``run_seconds`` per run, :mod:`mmsim.sweep_cost`) and at least
    ``1 / tail`` of a worker's share of all runs (``ceil(n / (tail x workers))``, within
    the cap), at least one run. Tasks shrink toward the end, so workers that take them
    as they finish (dask's scheduler hands a single-threaded worker its next task when it has
    one running and one queued) finish together; the floor stops the shrinking where
    a task's fixed cost (about 5 ms) would outweigh what a smaller last task saves.
    Sizes sum to ``n``."""
    cap = max(1, int(most / run_seconds)) if run_seconds > 0 else n
    floor = min(cap, max(1, math.ceil(n / (tail * max(workers, 1)))))
    sizes, left = [], n
    while left:
        size = min(left, cap, max(floor, math.ceil(left / (2 * max(workers, 1)))))
        sizes.append(size)
        left -= size
    return sizes


def claim_tasks(left: int, workers: int, run_seconds: float, most: float = TASK_SECONDS) -> int:
    """Claiming dask tasks to keep out (:meth:`_Run._claim_runs`) while ``left`` runs are
    still to be taken on ``workers`` worker threads: one per worker, two while the runs
    left are estimated (``run_seconds`` a run) to outlast one task of ``most`` seconds
    on every worker (then each worker starts its next task as its last returns), never
    more than the runs left."""
    if left <= 0:
        return 0
    per_worker = left * max(run_seconds, 0.0) / (max(workers, 1) * most)
    return min(left, max(workers, 1) * (2 if per_worker > 1 else 1))


def spread(runs: list) -> list:
    """``runs`` reordered so that any stretch of consecutive ones samples the whole list
    about evenly: sorted by the fractional part of ``i x (sqrt(5) - 1) / 2`` (a Weyl
    sequence; the indices of any stretch of ``m`` of them lie about ``len(runs) / m``
    apart). A dask task of consecutive runs then mixes the grid's points (runs come
    point by point), so its cost is about its size times the sweep's mean run, as
    :func:`chunk_sizes` assumes, even where one point's runs cost several times
    another's. Rows do not depend on the order runs are made in."""
    phi = (math.sqrt(5) - 1) / 2
    order = sorted(range(len(runs)), key=lambda i: (i * phi) % 1.0)
    return [runs[i] for i in order]


class _Bar(tqdm):
    """The sweep's progress bar, without tqdm's monitor thread (so workers may fork)."""

    monitor_interval = 0


DASK_CONNECT_TIMEOUT = 10.0
"""Seconds to reach a dask scheduler given by address before giving up."""

WORKER_CHECK = 1.0
"""Seconds between asking a dask scheduler how many workers it has, while a sweep
waits and nothing finishes (:meth:`_Pool._watched`)."""


class _Pool:
    """The executors behind one ``submit`` / ``as_completed`` / ``close`` interface;
    ``task`` (a picklable module-level function, default a chunk of sweep runs) is what runs."""

    def __init__(
        self,
        executor: str,
        workers: int,
        dask_address: str | None,
        task: Any = None,
        share: bool = False,
        keep: bool = False,
    ) -> None:
        self.kind = executor
        self.task = task or _run_chunk
        self.client = self.cluster = self.pool = None
        self.started = None
        self.forked = False  # workers forked from this process (else a fork server)
        self.shared = False  # this process runs tasks too, beside workers - 1 forked ones
        self.workers = workers  # tasks run at once
        self.kept: KeptPool | None = None  # its workers, kept for later sweeps when closed
        self.claims: Claims | None = None  # forked workers' shared run counter and pipe
        self.shared_client = False  # a dask client from mmsim.dask_client (maybe kept)
        self.address = dask_address or ""  # the dask scheduler's
        self.no_workers_timeout = math.inf  # s a dask sweep waits while no worker is left
        self.no_workers_for: float | None = None  # gave up after that long without one
        self.seen_workers = False  # the dask cluster had a worker when the sweep began
        if executor == "processes":
            # an earlier sweep's workers, alive and current (else that pool is shut down,
            # so this process may fork again), kept again when closed; a new pool is
            # kept only with ``keep``
            kept = take(_processes(workers, share))
            if kept is not None:
                self.pool, self.started, self.forked = kept.executor, kept.started, kept.forked
                self.shared = share and self.forked and workers >= 2
                self.kept, self.claims = kept, kept.claims
                return
            if can_fork() and not is_warm():
                _warm()  # once per process: workers forked from now on start warm
            self.forked = can_fork()  # again: the warm-up's runs restarted tqdm's monitor
            self.shared = share and self.forked and workers >= 2
            ctx = _process_context(self.forked)
            self.started = ctx.SimpleQueue()
            self.claims = Claims(ctx) if self.forked else None  # inherited, never pickled
            self.pool = ProcessPoolExecutor(
                max_workers=workers - self.shared,
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(self.started, os.getpid() if self.forked else None, self.claims),
            )
            if keep and keeping():
                self.kept = KeptPool.new(
                    self.pool, self.started, self.forked, workers - self.shared, self.claims
                )
        elif executor == "dask":
            from dask.distributed import Client

            from mmsim.dask_client import NO_WORKERS_ENV, no_workers_timeout

            try:  # before connecting: nothing to close
                self.no_workers_timeout = no_workers_timeout()
            except ValueError as err:
                raise ScenarioError(
                    str(err), source="<environment>", field=NO_WORKERS_ENV
                ) from None

            if dask_address:  # the last sweep's client, if kept (mmsim.dask_client)
                from mmsim.dask_client import connect

                try:
                    self.client = connect(dask_address, DASK_CONNECT_TIMEOUT, keep and keeping())
                except (OSError, TimeoutError, ValueError, TypeError) as err:
                    why = str(err).splitlines()[0] if str(err) else type(err).__name__
                    raise OutputError(
                        f"--dask {dask_address}: cannot reach the scheduler ({why})"
                    ) from None
                self.shared_client = True
            else:
                from mmsim.dask_warm import register

                self.cluster = local_cluster(workers)
                self.client = Client(self.cluster)
                self.address = self.cluster.scheduler_address
                with contextlib.suppress(Exception):  # a worker without mmsim fails its runs
                    register(self.client)
            with contextlib.suppress(Exception):
                threads = sum(self.client.nthreads().values())
                self.seen_workers = threads > 0
                self.workers = threads or workers

    def cluster_lost(self) -> bool:
        """Whether this dask pool's client has lost its scheduler (it is closing or
        closed, or no longer connected): its unfinished tasks are cancelled and no more
        can be submitted. ``False`` for the other executors."""
        if self.kind != "dask":
            return False
        if self.no_workers_for is not None:  # every worker gone (:meth:`_watched`)
            return True
        if self.client is None:
            return False
        from mmsim.dask_client import alive

        return not alive(self.client)

    def submit(self, *args: Any) -> Any:
        """Run :attr:`task` with ``args``; its future."""
        return self.submit_task(self.task, *args)

    def submit_task(self, task: Any, *args: Any) -> Any:
        """Run ``task`` (a picklable module-level function) with ``args``; its future."""
        if self.pool is not None:
            if self.forked and not self.pool._processes:
                # the first submit forks every worker: fork with Ctrl-C ignored, so no
                # worker ever runs the command's handler. Python 3.12+ warns of forking
                # with native threads alive (OpenBLAS, jemalloc): those reset in the
                # child, and no other Python thread is alive (can_fork)
                with _sigint_ignored(), warnings.catch_warnings():
                    warnings.filterwarnings("ignore", ".*multi-threaded", DeprecationWarning)
                    return self.pool.submit(task, *args)
            return self.pool.submit(task, *args)
        if self.client is not None:
            return self.client.submit(task, *args, pure=False)
        done: Future = Future()  # serial: run now, hand back a finished future
        done.set_result(task(*args))
        return done

    def submit_tasks(self, task: Any, args: list[tuple], names: list[str]) -> list:
        """Run ``task`` once with each of ``args``; the futures (on dask: sent to the
        scheduler in one message, not one each a client's 10 ms batching apart, under
        the keys ``names``, which sort in the order they are handed out)."""
        if self.client is None or not args:
            return [self.submit_task(task, *a) for a in args]
        return self.client.map(task, *zip(*args, strict=True), key=names, pure=False)

    def submit_all(self, args: list[tuple]) -> list:
        """Run :attr:`task` once with each of ``args``, handed out in their order; the
        futures. On dask, one graph (one message to the scheduler, the scenario in it
        once) whose keys sort in that order, as the scheduler hands out tasks it has
        queued."""
        if self.client is None:
            return [self.submit(*a) for a in args]
        token = uuid.uuid4().hex
        keys = [f"mmsim-runs-{token}-{i:06d}" for i in range(len(args))]
        return self.client.map(self.task, *zip(*args, strict=True), key=keys, pure=False)

    def as_completed(self, futures: list) -> Iterator[Any]:
        """Futures in the order they finish."""
        if self.client is not None:
            from dask.distributed import as_completed as dask_as_completed

            return self._watched(dask_as_completed(futures, loop=self.client.loop), futures)
        return futures_as_completed(futures)

    def completed(self, futures: list) -> Iterator[tuple[Any, Any]]:
        """``(future, its result getter)`` in the order they finish. On dask each result
        is fetched as soon as its task finishes, while earlier ones are recorded."""
        if self.client is None:
            return ((f, f.result) for f in futures_as_completed(futures))
        from dask.distributed import as_completed as dask_as_completed

        done = dask_as_completed(
            futures, loop=self.client.loop, with_results=True, raise_errors=False
        )
        return ((f, _fetched(f, result)) for f, result in self._watched(done, futures))

    def completing(self, futures: list) -> tuple[Iterator[tuple[Any, Any]], Any]:
        """:meth:`completed` of a dask pool's ``futures``, and a function that adds a
        future to them while they are being iterated (before the last one is yielded)."""
        from dask.distributed import as_completed as dask_as_completed

        futures = list(futures)
        done = dask_as_completed(
            futures, loop=self.client.loop, with_results=True, raise_errors=False
        )

        def add(future: Any) -> None:
            futures.append(future)  # cancelled with the others (:meth:`_watched`)
            done.add(future)

        feed = ((f, _fetched(f, result)) for f, result in self._watched(done, futures))
        return feed, add

    def _watched(self, done: Any, futures: list) -> Iterator[Any]:
        """What dask's ``as_completed`` ``done`` yields, as it yields it, unless the
        cluster has had no worker for :attr:`no_workers_timeout` seconds meanwhile
        (asked once :data:`WORKER_CHECK` s have passed with nothing finished, and every
        as many seconds after, once workers were seen: a cluster that starts empty, as
        an adaptive one does, is waited for): then its ``futures`` are cancelled,
        :attr:`no_workers_for` is set (so :meth:`cluster_lost`) and it stops. A
        scheduler left without workers holds the tasks for good (dask's
        ``no-workers-timeout: null``); this is the sweep's own limit, for any cluster."""
        from mmsim.dask_client import worker_count

        seen = self.seen_workers
        empty_since: float | None = None
        check_at = time.monotonic() + WORKER_CHECK
        while True:
            if done.has_ready() or done.is_empty():
                try:
                    yield next(done)
                except StopIteration:
                    return
                check_at = time.monotonic() + WORKER_CHECK  # no round trip while tasks end
                continue
            with done.thread_condition:  # notified as each future finishes
                done.thread_condition.wait(timeout=min(WORKER_CHECK, 0.1))
            now = time.monotonic()
            if now < check_at or not math.isfinite(self.no_workers_timeout):
                continue
            check_at = now + WORKER_CHECK
            count = worker_count(self.client)
            if count is None:  # not connected: the scheduler went away (cluster_lost)
                continue
            seen = seen or count > 0
            empty_since = None if count or not seen else (empty_since or now)
            if empty_since is not None and now - empty_since >= self.no_workers_timeout:
                self.no_workers_for = self.no_workers_timeout
                with contextlib.suppress(Exception):
                    self.client.cancel(futures)
                return

    def close(self, interrupted: bool = False) -> None:
        """Shut down; when ``interrupted``, stop the workers at once (a pool left to
        finish its running tasks would keep them alive for the length of a run) and
        keep dask's shutdown quiet."""
        pool, self.pool = self.pool, None
        client, cluster, self.client, self.cluster = self.client, self.cluster, None, None
        kept, self.kept = self.kept, None
        if pool is not None and kept is not None and not interrupted and kept.healthy():
            give(kept)  # for the next sweep in this process
            pool = None
        if pool is not None:
            if interrupted:
                for proc in list((pool._processes or {}).values()):
                    with contextlib.suppress(Exception):
                        proc.kill()
            if self.forked:  # return now, let the workers exit: joined before a next fork
                _CLOSING.append(pool._executor_manager_thread)
            pool.shutdown(wait=not interrupted and not self.forked, cancel_futures=True)
        if client is not None and self.shared_client:  # kept for the next sweep, if it can be
            from mmsim.dask_client import done

            with _quiet_dask() if interrupted else contextlib.nullcontext():
                kept = done(client, failed=interrupted)
            client = None
            if not kept and cluster is None:
                _release_dask_offload()  # as below
        if client is not None or cluster is not None:
            quiet = _quiet_dask() if interrupted else contextlib.nullcontext()
            with quiet:
                if cluster is not None:  # ours: workers first, so none outlives the scheduler
                    _stop_workers(cluster)
                for thing in (client, cluster):
                    if thing is not None:
                        with contextlib.suppress(Exception):
                            thing.close()
            _release_dask_offload()  # its idle thread would stop this process forking


def _processes(workers: int, share: bool) -> Any:
    """Worker processes of a pool of ``workers`` (:attr:`_Pool.shared`: forked with
    ``share``, this process is one of them), given whether they are forked."""
    return lambda forked: workers - (share and forked and workers >= 2)


def _series_path(runs_dir: Path, rid: str) -> Path:
    return runs_dir / f"{rid}.series.parquet"


SWITCH_INTERVAL = 0.02
"""Seconds of the interpreter's thread switch interval (``sys.setswitchinterval``)
while a sweep's process runs runs beside its forked workers (at least; default 5 ms):
other threads then take the GIL from its runs less often (the pool's threads have
nothing to do meanwhile, but a dask client's event loop, once one ran here, does)."""

WARM_UP_RUN = 0.5
"""Estimated seconds of a run below which a cold process warms up for forking its
workers with the sweep's first run rather than with tiny scenarios of its own."""

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
    """Estimated CPU time of one run (s, :mod:`mmsim.sweep_cost`): how many runs a dask
    task carries, and whether a cold process warms up with the sweep's first run."""
    meanwhile: Any = None
    """Called once here while forked workers run runs (:meth:`_share_claims`)."""
    keep_workers: bool = False
    """Keep the process pool for the next sweep in this process (:mod:`mmsim.kept_pool`)."""
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
        if outcome["status"] != "ok":  # shown at the bar's next refresh (0.1 s at most)
            self.failed += 1
            self.bar.set_postfix(failed=self.failed, refresh=False)
        self.bar.update(1)  # set_postfix's own refresh redrew the bar every row: 25 us

    def execute(self, todo, base_dict, executor, workers, address, pool) -> None:
        """Run ``todo`` on the executor, recording each run as it finishes."""
        if not todo:
            if pool is not None:
                pool.close()
            return
        self.total = len(self.rows) + len(todo)
        self.bar = _Bar(total=len(todo), unit="run", disable=not self.progress, desc="sweep")
        self.bar.set_postfix(failed=0, refresh=False)
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
            if attempt == 0 and pool is None and executor == "processes":
                todo = self._warm_up(todo, base_dict)
            pool = pool or _Pool(
                executor, min(workers, len(todo)), address, share=True, keep=self.keep_workers
            )
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

    def _warm_up(self, todo: list, base_dict: dict[str, Any]) -> list:
        """Before workers are forked from a cold process (a fresh ``mmsim sweep``): run
        the sweep's first run here, which loads the compiled kernels its runs call, and
        return the runs left. Only for short runs (:data:`WARM_UP_RUN`): a long first
        run would leave the other cores idle meanwhile, so :func:`~mmsim.workers._warm`'s
        tiny scenarios warm the process instead. Workers forked afterwards start warm."""
        if len(todo) < 2 or self.run_seconds > WARM_UP_RUN or is_warm() or not can_fork():
            return todo
        self._run_here(todo[:1], base_dict)
        return todo[1:]

    def _submit_chunk(self, pool: _Pool, chunk: list, base_dict: dict[str, Any]) -> Any:
        """Submit one task, the runs ``chunk`` (``(head, overrides, seed)``); its future."""
        runs = [(overrides, seed, head["run_id"]) for head, overrides, seed in chunk]
        return pool.submit(base_dict, runs, self.keep, self.timeout)

    def _submit_all(
        self, pool: _Pool, queue: collections.deque, futures: dict, base_dict: dict[str, Any]
    ) -> None:
        """Submit every task (list of runs) of ``queue`` at once, to be handed out in
        the queue's order (:meth:`_Pool.submit_all`), and empty it."""
        chunks = list(queue)
        queue.clear()
        runs = [[(o, seed, head["run_id"]) for head, o, seed in chunk] for chunk in chunks]
        args = [(base_dict, r, self.keep, self.timeout) for r in runs]
        futures.update(zip(pool.submit_all(args), chunks, strict=True))

    def _run_here(self, chunk: list, base_dict: dict[str, Any]) -> None:
        """Run the runs ``chunk`` in this process and record them."""
        for head, overrides, seed in chunk:
            self.record(head, _run_one(base_dict, overrides, seed, self.keep, self.timeout))

    def _submit(self, pool: _Pool, queue: collections.deque, futures: dict, base_dict) -> list:
        """Submit the tasks (lists of runs) of ``queue``, taken from its left; returns
        the runs left when a worker died while tasks were being queued."""
        while True:
            try:
                chunk = queue.popleft()
            except IndexError:
                return []
            try:
                futures[self._submit_chunk(pool, chunk, base_dict)] = chunk
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
        Only done in a process that has run a simulation before (:func:`~mmsim.workers.is_warm`): a
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
            self._run_here(chunk, base_dict)
        feeder.join()
        if failed:
            raise failed[0]
        return lost

    def _collect(self, pool: _Pool, futures: dict, lost: list) -> list:
        """Record the runs of every task as it finishes. Runs lost to a broken process
        pool go to ``lost``; returns the runs of a task of several that failed as a
        whole (a dask worker killed under it): each is tried again alone."""
        retry: list = []
        for fut, result in pool.completed(list(futures)):
            self._settle(result, futures[fut], lost, retry, getattr(pool, "cluster_lost", None))
            self._note_starts(pool)
        self._check_cluster(pool)
        return retry

    total: int = 0
    """Runs of the sweep, those reused from an earlier sweep included (:meth:`execute`)."""

    def _check_cluster(self, pool: _Pool) -> None:
        """Raise :class:`~mmsim.errors.ClusterLostError` if ``pool``'s dask scheduler went
        away: every run finished so far is recorded (and saved), the others are not."""
        lost = getattr(pool, "cluster_lost", None)  # a _Pool (or a stand-in without it)
        if lost is not None and lost():
            saved_in, gone = self.runs_dir, getattr(pool, "no_workers_for", None)
            raise ClusterLostError(
                pool.address, len(self.rows), self.total, saved_in, no_workers_for=gone
            )

    _starts: set | None = None
    """Runs the workers of the pool being drained reported starting (:meth:`_drain`)."""

    def _note_starts(self, pool: _Pool) -> None:
        """Read the starts the pool's workers reported (:func:`~mmsim.workers.report_start`)
        into :attr:`_starts`. Read as tasks finish, not only once a worker died: each
        report is a message in a pipe (64 KiB), and a worker that has filled it blocks
        on its next report for good (a sweep of more than ~1,900 runs on a fork
        server's pool hung)."""
        queue = getattr(pool, "started", None)
        while queue is not None and self._starts is not None and not queue.empty():
            self._starts.add(queue.get())

    def _settle(
        self, result: Any, chunk: list, lost: list, retry: list, cluster_lost: Any = None
    ) -> None:
        """Record the runs of a finished task (the runs ``chunk``; ``result()`` returns
        its outcomes or raises what the task raised), or file them under ``lost`` (a
        broken process pool) or ``retry`` (see :meth:`_collect`). A task cancelled
        because the dask scheduler went away (``cluster_lost()``) records nothing: its
        runs did not fail, :meth:`_check_cluster` says what happened."""
        try:
            outcomes = result()
        except BrokenProcessPool:
            lost.extend(chunk)
            return
        except Exception as err:  # the executor lost the task (e.g. dask KilledWorker)
            if cluster_lost is not None and cluster_lost():
                return
            if len(chunk) > 1:
                retry.extend(chunk)
                return
            why = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            outcomes = [{"status": "error", "error": why, "metrics": {}}]
        for run, outcome in zip(chunk, outcomes, strict=True):
            self.record(run[0], outcome)

    def _share_claims(self, pool: _Pool, todo: list, base_dict: dict[str, Any]) -> list:
        """Run ``todo`` on forked workers that take runs one at a time from a shared
        counter (:mod:`mmsim.claims`), this process too when it is one of the sweep's
        workers (:attr:`_Pool.shared`), recording the workers' outcomes between its own
        runs. Each worker process gets one task, the whole list (:func:`_run_claimed`):
        no thread of this process hands out runs, so a worker never waits for this
        process to finish a run of its own before it gets its next one, and all finish
        within one run of each other. Returns the runs lost to a broken pool (a worker
        died, or a task failed as a whole): ``self._started`` holds those a worker had
        taken (each is run again alone), the rest had not started."""
        claims, n = pool.claims, len(todo)
        runs = [(overrides, seed) for _, overrides, seed in todo]
        token = next(_TOKENS)
        claims.start()
        futures = []
        for _ in range(pool.workers - pool.shared):  # forks the workers: no other thread
            try:
                futures.append(
                    pool.submit_task(_run_claimed, base_dict, runs, self.keep, self.timeout, token)
                )
            except (BrokenProcessPool, RuntimeError):  # a worker died, or an interrupt
                break
        done = [False] * n
        left = [n]  # outcomes not recorded yet

        def read(timeout: float = 0.0) -> None:
            while claims.poll(timeout):
                settle(claims.receive())
                timeout = 0.0

        def settle(message: Any) -> None:
            tag, i, outcome = message
            if tag == token and not done[i]:
                done[i] = True
                left[0] -= 1
                self.record(todo[i][0], outcome)

        def failed() -> bool:
            return any(f.done() and f.exception() is not None for f in futures)

        broken = len(futures) < pool.workers - pool.shared
        if self.meanwhile is not None and not broken:  # the workers have runs: a free core
            meanwhile, self.meanwhile = self.meanwhile, None
            with contextlib.suppress(Exception):  # the caller meets it again afterwards
                meanwhile()
        switch = sys.getswitchinterval()
        sys.setswitchinterval(max(switch, SWITCH_INTERVAL))  # no thread here has work
        try:
            while pool.shared and not broken:
                read()
                if broken := failed():
                    break
                if (i := claims.take(n)) is None:
                    break
                self._run_here([todo[i]], base_dict)
                done[i] = True
                left[0] -= 1
        finally:
            sys.setswitchinterval(switch)
        while not broken and left[0] and not all(f.done() for f in futures):
            read(0.05)  # returns at each outcome
            broken = failed()
        if not broken:  # every outcome in: each task returns right after its last one
            wait_futures(futures)  # (not read(0.05) until then: up to 50 ms of nothing)
            broken = failed()
        read()  # a task returns after its last outcome is in the pipe
        if not broken:
            lost = [todo[i] for i in range(n) if not done[i]]
            self._started = frozenset(run[0]["run_id"] for run in lost)
            return lost
        taken = claims.stop(n)
        for message in claims.drain_after_death():
            settle(message)
        started = [todo[i] for i in range(taken) if not done[i]]
        self._started = frozenset(run[0]["run_id"] for run in started)
        return started + [todo[i] for i in range(taken, n) if not done[i]]

    def _claim_runs(self, pool: _Pool, todo: list, base_dict: dict[str, Any]) -> tuple[list, list]:
        """Run ``todo`` on dask tasks that take runs one at a time from a claims file
        (:mod:`mmsim.dask_claims`, :func:`_run_claimed_dask`), recording each task's
        runs as it returns. Keeps :func:`claim_tasks` tasks out: one per worker, and a
        second queued behind it while the runs left are estimated to outlast a task
        (:data:`TASK_SECONDS` each), so no worker waits for a round trip to the
        scheduler between its tasks. Returns the runs to run again alone (taken by a
        task, or by an attempt of a task dask then ran again, lost with its worker: every
        run taken and not returned) and the runs no task took (the workers cannot open
        the file, being on another machine; or no file could be made: all of ``todo``),
        for tasks of lists of runs."""
        from mmsim.dask_claims import RunClaims

        claims = RunClaims.create([(o, seed, head["run_id"]) for head, o, seed in todo])
        if claims is None:
            return [], todo
        n, flying, counter, path = len(todo), set(), itertools.count(1), str(claims.path)
        token = uuid.uuid4().hex
        recorded = [False] * n
        elsewhere = False  # a task found no claims file: its worker is on another machine
        try:
            feed, add = pool.completing([])

            def top_up() -> None:
                left = 0 if elsewhere else n - claims.taken()
                more = claim_tasks(left, pool.workers, self.run_seconds) - len(flying)
                args = [(base_dict, path, self.keep, self.timeout)] * more
                names = [f"mmsim-claims-{token}-{next(counter):06d}" for _ in args]
                for future in pool.submit_tasks(_run_claimed_dask, args, names):
                    flying.add(future)
                    add(future)

            top_up()
            for future, result in feed:
                flying.discard(future)
                try:
                    outcomes = result()
                except Exception:  # the task was lost (e.g. dask's KilledWorker)
                    if pool.cluster_lost():
                        break  # its runs did not fail: _check_cluster says what happened
                    outcomes = []
                if outcomes is None:
                    elsewhere = True
                    claims.stop()
                for i, outcome in outcomes or ():
                    self.record(todo[i][0], outcome)
                    recorded[i] = True
                top_up()
            self._check_cluster(pool)
            taken = claims.stop()
        finally:
            claims.close()
        # taken, never returned: by a task lost with its worker, or by an attempt of a
        # task its worker died under before dask ran it again elsewhere
        alone = [todo[i] for i in range(taken) if not recorded[i]]
        return alone, todo[taken:]

    def _drain(
        self, pool: _Pool, todo: list, base_dict: dict[str, Any], steal: bool = True
    ) -> list:
        """Submit every run of ``todo`` and record each as it finishes; returns the runs
        lost to a broken process pool (``self._started``: those that had started).
        With ``steal``, this process runs queued runs while a fork server's workers
        start. Dask tasks carry several runs (:func:`chunk_sizes`), pool tasks one."""
        interrupted = True
        try:
            if steal and getattr(pool, "claims", None) is not None:
                lost = self._share_claims(pool, todo, base_dict)
                interrupted = bool(lost)  # a broken pool: stopped, not awaited (below)
                return lost
            futures: dict = {}
            lost, self._starts = [], set()
            alone: list = []
            dask = getattr(pool, "client", None) is not None
            if dask and len(todo) > 1:  # the runs no task could claim, if any, go in lists
                alone, todo = self._claim_runs(pool, todo, base_dict)
            sizes = [1] * len(todo)
            if dask:
                todo = spread(todo)  # each task a sample of the grid (chunk_sizes)
                sizes = chunk_sizes(len(todo), pool.workers, self.run_seconds)
            ends = list(itertools.accumulate(sizes))
            queue = collections.deque(todo[e - n : e] for n, e in zip(sizes, ends, strict=True))
            served = getattr(pool, "pool", None) is not None and not pool.forked
            if served:
                with _sigint_ignored():  # the fork server (so every worker) ignores Ctrl-C
                    _start_fork_server()
            if steal and is_warm() and served:
                lost = self._submit_while_running(pool, queue, futures, base_dict)
            elif dask:
                if queue:
                    self._submit_all(pool, queue, futures, base_dict)
                lost = []
            else:
                lost = self._submit(pool, queue, futures, base_dict)
            retry = alone + self._collect(pool, futures, lost)
            if retry:
                futures = {}
                lost += self._submit(
                    pool, collections.deque([r] for r in retry), futures, base_dict
                )
                self._collect(pool, futures, lost)
            if lost:
                self._note_starts(pool)
            self._started = frozenset(self._starts)
            # a broken pool's workers are stopped, not awaited: one being started just as
            # another died is missed by the pool's own clean-up, which then waits forever
            interrupted = bool(lost)
            return lost
        except Exception:  # e.g. distributed's ClosedClientError at a submit
            self._check_cluster(pool)  # the scheduler went away: say so in one line
            raise
        finally:
            pool.close(interrupted=interrupted)
