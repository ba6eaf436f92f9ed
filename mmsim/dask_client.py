"""The dask client a sweep keeps for the next sweeps on the same running cluster.

A sweep given a scheduler's address connects a client, registers mmsim's warm-up
plugin on the scheduler (:mod:`mmsim.dask_warm`) and, when done, closes the client:
round trips to the scheduler and a client's event loop started and stopped, 5-20 ms
of wall time per sweep during which the cluster runs nothing (a 200-run sweep of
``band_sweep`` is 0.5 s on 2 workers). As the process pool is (:mod:`mmsim.kept_pool`),
the client is kept for the next sweep in this process (:func:`connect`) while it is
still connected to the scheduler at that address; a sweep on another address closes it.

A kept client is not the process's default dask client (``set_as_default=False``: a
later ``dask.compute`` here does not go to the sweep's cluster), and a kept client that
loses its scheduler (the cluster was closed) closes itself instead of trying to
reconnect and logging an error. Its event loop is a thread: this process cannot fork
while it lives, so :func:`mmsim.workers.can_fork` closes it first (:func:`release`);
the next dask sweep connects again. It is also closed by
:func:`mmsim.sweep.close_workers`, at exit, after an interrupted or failed sweep, and
never kept with ``MMSIM_KEEP_WORKERS=0`` (:func:`mmsim.kept_pool.keeping`). Imported
only by dask sweeps (it imports ``distributed``).

A cluster whose workers all die while its scheduler lives would leave a sweep waiting
for good (dask's ``distributed.scheduler.no-workers-timeout`` is ``null`` by default, and
it is the scheduler's setting, out of a client's reach): a sweep that has seen workers
and then finds none for :func:`no_workers_timeout` seconds while its runs wait gives up
(:meth:`mmsim.executors._Pool.completed`), as when the scheduler goes away.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import threading
from typing import Any

from distributed import Client

from mmsim.dask_warm import register

__all__ = [
    "NO_WORKERS_ENV",
    "alive",
    "connect",
    "done",
    "kept",
    "no_workers_timeout",
    "release",
    "worker_count",
]


class _SweepClient(Client):
    """A client that closes when its scheduler goes away, without reconnecting: a
    kept client (see the module docstring) has nothing to resume, and the next sweep
    connects anew. ``distributed`` logs an ERROR when a client fails to reconnect."""

    async def _reconnect(self) -> None:
        await self._close()


_LOCK = threading.Lock()
_KEPT: dict[str, Any] = {}
"""``{address: client}``: at most one, the last sweep's."""
_IN_USE: set[int] = set()
"""``id`` of the kept clients a sweep is using now (never released under it)."""
_AT_EXIT = False


NO_WORKERS_ENV = "MMSIM_DASK_NO_WORKERS_TIMEOUT"
"""Environment variable: seconds a dask sweep waits while its cluster has no worker
(default :data:`NO_WORKERS_TIMEOUT`; ``none`` or ``inf``: for ever, dask's own way)."""

NO_WORKERS_TIMEOUT = 60.0
"""Seconds a dask sweep waits for a worker once every worker of its cluster is gone: a
nanny restarts a killed worker within a few seconds, a cluster manager replaces a lost
machine's within a minute or so; a cluster with none for longer is taken as lost."""


def no_workers_timeout() -> float:
    """Seconds a sweep waits while its cluster has no worker (:data:`NO_WORKERS_ENV`, else
    :data:`NO_WORKERS_TIMEOUT`; ``math.inf``: no limit). Raises ``ValueError`` naming the
    variable for a value that is not a number of seconds > 0."""
    text = os.environ.get(NO_WORKERS_ENV, "").strip().lower()
    if not text:
        return NO_WORKERS_TIMEOUT
    if text in ("none", "inf", "null"):
        return math.inf
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0:
        raise ValueError(f"must be a number of seconds > 0 or 'none', got {text!r}")
    return value


def worker_count(client: Any) -> int | None:
    """Workers connected to ``client``'s scheduler now (a round trip to it); ``None`` if
    it cannot be asked (closed, not connected)."""
    try:
        return len(client.nthreads())
    except Exception:
        return None


def alive(client: Any) -> bool:
    """Whether ``client`` is running and connected to its scheduler."""
    comm = getattr(client, "scheduler_comm", None)
    return client.status == "running" and comm is not None and not comm.closed()


def connect(address: str, timeout: float, keep: bool) -> Any:
    """A client of the scheduler at ``address``: the kept one if it is still connected,
    else a new one (``timeout`` s to connect; raises what ``Client`` raises) with the
    warm-up plugin registered; kept for later sweeps with ``keep``. Give it back with
    :func:`done`."""
    global _AT_EXIT
    with _LOCK:
        client = _KEPT.get(address)
        if client is not None and id(client) not in _IN_USE and alive(client):
            _IN_USE.add(id(client))
            return client
    release()  # another address's, or a dead one
    client = _SweepClient(address, timeout=timeout, set_as_default=False)
    with contextlib.suppress(Exception):  # a worker without mmsim fails its runs
        register(client)
    if keep:
        with _LOCK:
            _KEPT[address] = client
            _IN_USE.add(id(client))
        if not _AT_EXIT:
            atexit.register(release)
            _AT_EXIT = True
    return client


def kept(client: Any) -> bool:
    """Whether ``client`` is the kept client."""
    return any(c is client for c in _KEPT.values())


def done(client: Any, failed: bool = False) -> bool:
    """A sweep is done with ``client``: keep it if it is the kept one and still
    connected, unless the sweep ``failed`` (interrupted, an error), else close it;
    whether it is kept."""
    with _LOCK:
        _IN_USE.discard(id(client))
        keep = not failed and kept(client) and alive(client)
        if not keep:
            for address in [a for a, c in _KEPT.items() if c is client]:
                del _KEPT[address]
    if not keep:
        with contextlib.suppress(Exception):
            client.close()
    return keep


def release() -> bool:
    """Close the kept client unless a sweep is using it; whether none is kept now."""
    with _LOCK:
        idle = [(a, c) for a, c in _KEPT.items() if id(c) not in _IN_USE]
        for address, _ in idle:
            del _KEPT[address]
        left = bool(_KEPT)
    for _, client in idle:
        with contextlib.suppress(Exception):
            client.close()
    return not left
