"""The process pool a sweep keeps for the next sweeps in this process.

A sweep's warm workers cost something to start even when forked: a few milliseconds per
fork, then each worker's first runs touch (so copy) the pages it shares with this
process, 20-25 ms per worker for ``band_sweep``; on a fork server (a process with
threads alive, such as a notebook's kernel) a new pool's workers are new processes. A
notebook or script that runs several sweeps pays that once instead: the pool of the
last sweep is kept (:func:`give`) and the next sweep that asks for as many worker
processes takes it back (:func:`take`) if it can still be trusted:

- **alive**: every worker is running and the pool is not broken (a worker killed
  between sweeps, e.g. out of memory, gives a new pool);
- **same size**: another number of workers shuts the kept pool down and starts anew
  (its workers exit before this process forks again);
- **current code** (forked pools): a forked worker runs the code this process had when
  it forked. The pool remembers every function, class and value of each ``mmsim``
  module then loaded (and the functions of its classes), the working directory and
  the ``MMSIM_*`` environment variables; if any of those was replaced since (a test's
  ``monkeypatch``, ``importlib.reload``, a setting changed), the pool is stale and a
  new one is forked. Changes it cannot see: objects mutated in place, other
  environment variables (a dask cluster sets several), ``sys.path`` (modules the
  worker imports later), and patches to other packages (numpy, simpy). For those,
  close the pool (:func:`close_workers`) or keep none: ``MMSIM_KEEP_WORKERS=0`` in the
  environment (``mmsim.sweep(..., keep_workers=False)`` keeps no pool of its own but
  uses one an earlier sweep kept).

A kept pool is shut down when this process exits (its forked workers would die with it
anyway, ``PR_SET_PDEATHSIG``), by :func:`close_workers`, or when another pool replaces
it. Only a pool's own process may use it (a forked child inherits the reference).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mmsim.workers import _CLOSING

__all__ = ["KEEP_ENV", "KeptPool", "close_workers", "give", "keeping", "ready", "take"]

KEEP_ENV = "MMSIM_KEEP_WORKERS"
"""Environment variable: ``0`` (or ``false``, ``no``, ``off``) keeps no pool between sweeps."""

_MISSING = object()
_METHODS = (types.FunctionType, staticmethod, classmethod, property)


@dataclass
class KeptPool:
    """A process pool kept between sweeps and what it was started with."""

    executor: Any
    """The ``concurrent.futures.ProcessPoolExecutor``."""
    started: Any
    """Its workers' queue of started runs (:func:`mmsim.workers.report_start`)."""
    forked: bool
    """Whether its workers were forked from this process (else from a fork server)."""
    processes: int
    """Its worker processes."""
    owner: int = field(default_factory=os.getpid)
    """The process that made it."""
    marks: list = field(default_factory=list)
    """``(namespace, name, object)`` of every mmsim name when it was made (forked pools)."""
    context: tuple = ()
    """Working directory and ``MMSIM_*`` settings then (forked pools)."""
    claims: Any = None
    """Its workers' shared run counter and outcome pipe (forked pools, :mod:`mmsim.claims`)."""

    @classmethod
    def new(
        cls, executor: Any, started: Any, forked: bool, processes: int, claims: Any = None
    ) -> KeptPool:
        """A pool about to fork its workers from this process's present state."""
        if not forked:
            return cls(executor, started, forked, processes)
        return cls(
            executor, started, forked, processes, marks=_marks(), context=_context(), claims=claims
        )

    def healthy(self) -> bool:
        """Every worker alive and the pool neither broken nor shut down."""
        ex = self.executor
        procs = dict(getattr(ex, "_processes", None) or {})
        manager = getattr(ex, "_executor_manager_thread", None)
        alive = len(procs) == self.processes and all(p.is_alive() for p in procs.values())
        return (
            alive
            and manager is not None
            and manager.is_alive()
            and not getattr(ex, "_broken", True)
            and not getattr(ex, "_shutdown_thread", True)
        )

    def current(self) -> bool:
        """Whether a forked worker would still run this process's code (see the module
        docstring); fork-server pools always are as current as their server."""
        if not self.forked:
            return True
        if self.context != _context():
            return False
        return all(ns.get(name, _MISSING) is obj for ns, name, obj in self.marks)

    def shut(self) -> None:
        """Shut the pool down without waiting: its workers finish their (no) tasks and
        exit; the manager thread that joins them is joined before this process forks
        again (:func:`mmsim.workers.can_fork`). A broken pool's workers are killed."""
        ex = self.executor
        if not self.healthy():
            for proc in list((getattr(ex, "_processes", None) or {}).values()):
                with contextlib.suppress(Exception):
                    proc.kill()
        if self.forked:
            _CLOSING.append(getattr(ex, "_executor_manager_thread", None))
        with contextlib.suppress(Exception):
            ex.shutdown(wait=False, cancel_futures=True)


def _marks() -> list[tuple[Any, str, Any]]:
    """``(namespace, name, object)`` of every loaded mmsim module (in ``sys.modules``),
    every name in it (but submodules, ``None`` and flags: lazily set state) and every
    function of its classes."""
    out: list[tuple[Any, str, Any]] = []
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "mmsim" or name.startswith("mmsim.")):
            continue
        out.append((sys.modules, name, module))
        for key, value in list(vars(module).items()):
            if value is None or isinstance(value, types.ModuleType | bool):
                continue
            out.append((vars(module), key, value))
            if isinstance(value, type) and value.__module__ == name:
                out.extend(
                    (value.__dict__, k, v)
                    for k, v in list(value.__dict__.items())
                    if isinstance(v, _METHODS)
                )
    return out


def _context() -> tuple:
    """What a forked worker took from this process besides its code: the working
    directory and mmsim's settings in the environment (``MMSIM_*``)."""
    return os.getcwd(), {k: v for k, v in os.environ.items() if k.startswith("MMSIM_")}


_KEPT: KeptPool | None = None
_AT_EXIT = False
_LOCK = threading.Lock()  # sweeps started from several threads hand the pool over once


def keeping() -> bool:
    """Whether sweeps keep their process pool (:data:`KEEP_ENV` is not ``0``)."""
    return os.environ.get(KEEP_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def take(processes: Callable[[bool], int]) -> KeptPool | None:
    """The kept pool, handed over (keep it again with :func:`give`), if it has
    ``processes(forked)`` workers, all alive, running current code; else ``None``, and
    any kept pool is shut down (so this process may fork a new one)."""
    global _KEPT
    with _LOCK:
        kept, _KEPT = _KEPT, None
    if kept is None or kept.owner != os.getpid():
        return None
    if kept.processes == processes(kept.forked) and kept.healthy() and kept.current():
        while not kept.started.empty():  # the last sweep's starts: long finished
            kept.started.get()
        return kept
    kept.shut()
    return None


def ready(processes: Callable[[bool], int]) -> bool:
    """Whether :func:`take` would hand over a kept pool (it is left kept)."""
    kept = _KEPT
    return (
        kept is not None
        and kept.owner == os.getpid()
        and kept.processes == processes(kept.forked)
        and kept.healthy()
        and kept.current()
    )


def give(pool: KeptPool) -> None:
    """Keep ``pool`` for the next sweep (one pool at a time: any other is shut down)."""
    global _KEPT, _AT_EXIT
    with _LOCK:
        old, _KEPT = _KEPT, pool
    if old is not None and old is not pool:
        old.shut()
    if not _AT_EXIT:
        atexit.register(close_workers)
        _AT_EXIT = True


def close_workers() -> None:
    """Shut down the process pool kept for later sweeps, if any (its workers exit), and
    close the dask client kept for later sweeps on a running cluster
    (:mod:`mmsim.dask_client`; the cluster itself is left running)."""
    global _KEPT
    with _LOCK:
        kept, _KEPT = _KEPT, None
    if kept is not None and kept.owner == os.getpid():
        kept.shut()
    from mmsim.workers import _release_dask_client

    _release_dask_client()
