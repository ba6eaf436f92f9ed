"""Runs handed out one at a time by a counter shared with forked workers.

A sweep on forked workers gives each worker process one task for the whole sweep: the
list of runs. Every process that runs runs, the sweep's own included, takes the next
run by incrementing :class:`Claims`' shared counter (a few microseconds, no thread of
the sweep's process involved) and each worker writes its outcome down a pipe the
sweep's process reads between its own runs. So no worker waits for the sweep's process
to hand it work (with one task per run, each hand-over took two thread switches in the
sweep's process, each up to its switch interval while it ran a run itself: the worker
idled 15-20% of a 200-run sweep) and the processes finish within one run of each other.

Made with a forked pool and inherited by its workers (:func:`mmsim.workers._init_worker`);
never pickled. A worker killed while it holds the counter's lock or writes to the pipe
leaves them unusable: the sweep's process waits for neither forever (:meth:`Claims.take`
gives up after :data:`LOCK_WAIT`, :meth:`Claims.drain_after_death` reads only complete
messages) and a broken pool's claims are never used again.
"""

from __future__ import annotations

import contextlib
import fcntl
from typing import Any

__all__ = ["LOCK_WAIT", "Claims"]

LOCK_WAIT = 5.0
"""Seconds to wait for the counter's lock (held for microseconds) before taking its
holder for dead."""

PIPE_BYTES = 1 << 20
"""Pipe buffer asked for (Linux ``F_SETPIPE_SZ``; the system's limit caps it): a worker
whose outcomes (kept series included) outrun the sweep's process's reading between its
own runs does not block on a full pipe (64 KiB by default)."""


class Claims:
    """A shared run counter and the workers' outcome pipe (see the module docstring)."""

    def __init__(self, ctx: Any) -> None:
        self.counter = ctx.Value("q", 0)  # the next run's index, behind its own lock
        self.reader, self.writer = ctx.Pipe(duplex=False)
        self.write_lock = ctx.Lock()  # several workers, one pipe
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(self.writer.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)

    def start(self) -> None:
        """Hand out runs from index 0 again (a new sweep; no worker is claiming)."""
        with self.counter.get_lock():
            self.counter.value = 0

    def take(self, n: int) -> int | None:
        """The index of the next of ``n`` runs, or ``None`` when all are taken (or the
        lock's holder died: see :data:`LOCK_WAIT`)."""
        lock = self.counter.get_lock()
        if not lock.acquire(timeout=LOCK_WAIT):
            return None
        try:
            i = self.counter.value
            if i >= n:
                return None
            self.counter.value = i + 1
            return i
        finally:
            lock.release()

    def stop(self, n: int) -> int:
        """Hand out no more of the ``n`` runs; returns how many were taken."""
        lock = self.counter.get_lock()
        got = lock.acquire(timeout=LOCK_WAIT)
        try:
            taken = min(int(self.counter.value), n)
            self.counter.value = n
            return taken
        finally:
            if got:
                lock.release()

    def send(self, message: Any) -> None:
        """In a worker: write ``message`` (pickled) down the pipe."""
        with self.write_lock:
            self.writer.send(message)

    def poll(self, timeout: float = 0.0) -> bool:
        """Whether a message is waiting (within ``timeout`` s)."""
        return self.reader.poll(timeout)

    def receive(self) -> Any:
        return self.reader.recv()

    def drain_after_death(self) -> list:
        """The complete messages left in the pipe once its pool broke: read only when no
        worker holds the write lock (a worker killed mid-write holds it for good, and
        its half message would block a read forever); else none."""
        out: list = []
        if not self.write_lock.acquire(timeout=0.5):
            return out
        try:
            while self.reader.poll(0):
                out.append(self.reader.recv())
        finally:
            self.write_lock.release()
        return out
