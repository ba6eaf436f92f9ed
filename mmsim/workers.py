"""Worker processes that start warm: forked from this process, from a fork server, or
dask workers; how they start, warm up, ignore Ctrl-C and stop.

Process workers start without importing pandas or loading numba's cache again:

- **fork** (Linux, when no other Python thread is alive in this process,
  :func:`can_fork`): this process loads mmsim and its kernels (a sweep's first run, or
  :func:`_warm`, unless it has run a simulation already) and forks its workers, a few
  milliseconds each (a sweep forks one fewer than its workers and runs runs itself). A forked
  worker resets the signal handlers it inherited (Ctrl-C ignored, SIGTERM default), dies
  with this process (``PR_SET_PDEATHSIG``: an orphan would hold the sweep directory's
  lock) and freezes the garbage collector's view of the inherited heap
  (:mod:`mmsim._warm` says why).
- **fork server** elsewhere (macOS, or a process with threads alive: a notebook's
  kernel, a running dask cluster; forking those can deadlock the child): forked from a
  server that imported mmsim and ran a tiny scenario once (:mod:`mmsim._warm`), started
  with Ctrl-C ignored (the sweep stops its workers); its workers die with the server,
  which exits with the process that started it. **spawn** where neither exists
  (Windows).
- **dask**: :func:`local_cluster` starts quiet single-threaded workers;
  :func:`_warm_dask_worker` warms any worker once, as it is set up
  (:mod:`mmsim.dask_warm`'s worker plugin, registered by every dask sweep).

How runs are given to them is :mod:`mmsim.executors`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["CLOSE_TIMEOUT", "QUIET_DASK", "can_fork", "is_warm", "local_cluster", "set_warm"]


_RAN_HERE = False
"""Whether this process has run a simulation (its imports and kernels are loaded)."""

_STARTED: Any = None
"""In a process-pool worker: the queue on which it reports each run it starts."""

_CLAIMS: Any = None
"""In a forked process-pool worker: its pool's :class:`mmsim.claims.Claims`."""


def is_warm() -> bool:
    """Whether this process has run a simulation (mmsim imported, kernels loaded)."""
    return _RAN_HERE


def set_warm() -> None:
    """Note that this process has run a simulation."""
    global _RAN_HERE
    _RAN_HERE = True


def report_start(tag: str) -> None:
    """In a process-pool worker, report that the run ``tag`` starts (synchronously: the
    report survives the worker being killed right after); elsewhere, or without a tag
    (runs handed out by :class:`mmsim.claims.Claims`, which knows who took what),
    nothing."""
    if _STARTED is not None and tag:
        _STARTED.put(tag)


def _init_worker(started: Any, parent: int | None = None, claims: Any = None) -> None:
    """Set up a process-pool worker; ``parent`` (a pid) when it was forked from the
    sweep's own process, whose signal handlers, heap and lifetime it would otherwise
    share (see the module docstring), and then its pool's ``claims``
    (:mod:`mmsim.claims`)."""
    global _STARTED, _CLAIMS
    _STARTED, _CLAIMS = started, claims
    if parent is None:  # a fork server's worker: die with the server (else orphans hold
        _leave_fork_server()  # the sweep directory's lock for as long as their runs take)
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the sweep stops its workers
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the command's handler
    _die_with(parent)
    gc.freeze()  # no full collection walks (and copies) the inherited heap


def _leave_fork_server() -> None:
    """In a fork server's worker: let go of the server's liveness pipe, which
    multiprocessing hands every child so it may ask for forks itself (a worker never
    does), and die with the server (``PR_SET_PDEATHSIG``). The server exits once no
    process holds that pipe, that is as soon as the process that started it has gone,
    and its workers with it; held by the workers, the server and they ran on."""
    from multiprocessing import forkserver

    server = forkserver._forkserver
    fd, server._forkserver_alive_fd = server._forkserver_alive_fd, None
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
    _die_with(os.getppid())


def _die_with(parent: int) -> None:
    """Have the kernel kill this process when ``parent`` exits (Linux), so a sweep
    killed with SIGKILL leaves no worker behind holding its directory's lock."""
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the request: nobody will collect us
        os._exit(1)


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

    global _DASK_WARM, DASK_WARM_UPS
    if not _DASK_WARM:
        _warm()
        gc.collect()
        gc.freeze()
        _DASK_WARM = True
        DASK_WARM_UPS += 1


_DASK_WARM = False
DASK_WARM_UPS = 0
"""How many times this process warmed up as a dask worker (at most once)."""


def can_fork() -> bool:
    """Whether workers may be forked from this process: on Linux (macOS's system
    libraries are not fork-safe, Windows has no fork) with no other Python thread alive
    (one holding a lock at the fork would leave it held forever in the child). tqdm's
    idle monitor thread is stopped first: it only paces progress bars, and a bar
    started later starts a new one; so is the dask client an earlier sweep kept
    (:func:`_release_dask_client`). Native threads (OpenBLAS, jemalloc) are not counted:
    those libraries reset themselves in a forked child."""
    if not sys.platform.startswith("linux"):
        return False
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    _release_dask_client()
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


def _process_context(fork: bool = False) -> Any:
    """Fork (``fork``: this process is warm and may fork), else a fork server with
    mmsim warmed up (POSIX), else spawn."""
    if fork:
        _local_progress_lock()
        return multiprocessing.get_context("fork")
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["mmsim._warm"])
        return ctx
    return multiprocessing.get_context("spawn")


def _local_progress_lock() -> None:
    """Give tqdm a lock of this process only, before forking workers. Its default write
    lock includes a multiprocessing RLock, a semaphore the forked workers share with this
    process, and every run takes it (each ``tqdm()``, even disabled, locks it): a worker
    killed on Ctrl-C while holding it left this process waiting on it forever when it
    closed its progress bar. A thread lock is copied, not shared, by a fork."""
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


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
    "distributed.scheduler.worker-saturation": 2.0,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
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
    would otherwise share cores with. Its scheduler keeps two tasks on each worker, one
    running and one queued (``worker-saturation: 2.0``; dask's default 1.1 gives a
    single-threaded worker the same), and hands out the rest as tasks finish: a worker
    never waits for the scheduler between tasks, and one slowed by other processes on
    the machine takes fewer tasks. Handing every task out at once (``inf``) left the
    workers of a 200-run sweep finishing up to 0.5 s apart on a loaded machine, each
    with its fixed half of the tasks. Its workers keep glibc's own malloc trim
    threshold: dask's nannies otherwise set ``MALLOC_TRIM_THRESHOLD_=65536``, which
    hands freed memory back to the system so eagerly that a run's arrays are faulted in
    again and again (runs 4-8% slower in a measurement; a sweep's runs free all they
    allocate, so the worker's memory stays flat either way). A worker the cluster adds
    later (``scale``) starts with dask's settings, since they are read as its nanny is
    made; one its nanny restarts keeps them. :data:`QUIET_DASK` holds these settings,
    for a cluster of your own. Close it when done.

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


def _release_dask_client() -> None:
    """Close the dask client a sweep kept (:mod:`mmsim.dask_client`), unless a sweep is
    using it, and then distributed's offload thread (:func:`_release_dask_offload`): its
    event loop is a thread, which stops this process forking. The next dask sweep
    connects again (a few milliseconds)."""
    kept = sys.modules.get("mmsim.dask_client")  # never imported: no dask sweep ran here
    if kept is not None and kept.release():
        _release_dask_offload()


def _release_dask_offload() -> None:
    """Let the thread of ``distributed``'s offload executor go, once this process's dask
    clients are closed: it outlives every client (a module-level single-thread pool,
    started by a client's first large message and idle for good after), so
    :func:`can_fork` saw a thread alive after any dask sweep and the command's figures
    (:mod:`mmsim.sweep_figures`) and later process-pool sweeps in this process gave up
    forking. The executor is replaced by a new one (its thread starts only when
    something is offloaded again) and the old one shut down: its idle thread exits."""
    utils = sys.modules.get("distributed.utils")
    old = getattr(utils, "_offload_executor", None)
    if old is None or not getattr(old, "_threads", None):
        return
    from concurrent.futures import ThreadPoolExecutor

    with contextlib.suppress(Exception):
        utils._offload_executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="Dask-Offload"
        )
        old.shutdown(wait=True, cancel_futures=False)


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
