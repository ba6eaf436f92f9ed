"""Runs a dask sweep's tasks take one at a time from a counter in a file on this machine.

A dask task of a fixed list of runs commits those runs to one worker before it starts,
and the scheduler keeps a second task queued on each worker: a worker slowed by other
processes (or one that drew the costlier runs) still holds its queued task while the
other idles at the end of the sweep, and every task boundary waits for the worker's
event loop. When the workers run on this machine, a sweep's tasks instead take their
runs from :class:`RunClaims`: a small file (in ``/dev/shm`` where there is one) holding
the index of the next run and the runs themselves. A task
(:func:`mmsim.executors._run_claimed_dask`) opens it, takes the next run under an
``fcntl`` lock (microseconds), runs it and takes another, until none is left or it has
run for :data:`mmsim.executors.TASK_SECONDS` (its rows are then saved as it returns, as
before); the workers then finish within about one run of each other, as the process
pool's do (:mod:`mmsim.claims`). A task whose worker cannot open the file (another
machine) takes no run and says so; the sweep then stops the counter and sends the runs
nobody took in tasks of fixed lists of runs. A run taken whose outcome never came back
(its task, or an attempt of it that dask then ran again, lost with its worker) is run
again alone.

Pure standard library (no ``distributed``): the worker side is :func:`open_claims`.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["RunClaims", "Taker", "claims_dir", "open_claims", "remove_orphans"]

_HEAD = struct.Struct("<qq")  # the next run's index, runs
_NEXT = struct.Struct("<q")
_PREFIX = "mmsim-claims-"  # then the creating process's id, "-", mkstemp's letters


def claims_dir() -> Path:
    """Where a sweep's claims file goes: ``/dev/shm`` (memory, never a shared file
    system) when it is a writable directory, else the system's temporary directory."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return Path(tempfile.gettempdir())


def remove_orphans(folder: Path) -> int:
    """Remove claims files in ``folder`` left by sweeps whose process is gone (killed
    before it could remove its own: ``SIGKILL``, a crash); returns how many. A file
    whose creator is alive, or belongs to another user, is kept."""
    removed = 0
    for path in folder.glob(_PREFIX + "*-*"):
        pid = path.name[len(_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
        except OSError:  # PermissionError: alive, another user's
            continue
    return removed


class RunClaims:
    """The sweep's side of a claims file of ``n`` runs (see the module docstring)."""

    def __init__(self, path: Path, n: int) -> None:
        self.path, self.n = path, n
        self._fd = os.open(path, os.O_RDWR)
        self._stopped: int | None = None

    @classmethod
    def create(cls, runs: list) -> RunClaims | None:
        """A new claims file holding ``runs`` (picklable, handed to the tasks as they
        take them), none taken; ``None`` if no file can be made. Files orphaned by
        killed sweeps are removed first (:func:`remove_orphans`)."""
        try:
            import fcntl  # noqa: F401  (not on Windows: no claims there)

            payload = pickle.dumps(runs, protocol=pickle.HIGHEST_PROTOCOL)
            folder = claims_dir()
            remove_orphans(folder)
            fd, name = tempfile.mkstemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=folder)
        except (ImportError, OSError):
            return None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_HEAD.pack(0, len(runs)) + payload)
            return cls(Path(name), len(runs))
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(name)
            return None

    def _locked(self, fn: Any) -> Any:
        import fcntl

        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            return fn()
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def taken(self) -> int:
        """How many runs tasks have taken so far."""
        return min(self.n, _NEXT.unpack(os.pread(self._fd, _NEXT.size, 0))[0])

    def stop(self) -> int:
        """Let no task take another run; returns how many were taken (by then: the
        same number when called again)."""

        def stop() -> int:
            taken = self.taken()
            os.pwrite(self._fd, _NEXT.pack(self.n), 0)
            return taken

        if self._stopped is None:
            self._stopped = self._locked(stop)
        return self._stopped

    def close(self) -> None:
        """Remove the file (a task that opened it keeps reading it until it returns)."""
        with contextlib.suppress(OSError):
            os.close(self._fd)
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class Taker:
    """A task's side of a claims file: :attr:`runs`, and :meth:`take` the next one."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        _, self.n = _HEAD.unpack(os.pread(fd, _HEAD.size, 0))
        size = os.fstat(fd).st_size - _HEAD.size
        self.runs: list = pickle.loads(os.pread(fd, size, _HEAD.size))

    def take(self) -> int | None:
        """Take the next run: its index, or ``None`` when every run is taken (or the
        sweep stopped the counter)."""
        import fcntl

        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            (i,) = _NEXT.unpack(os.pread(self._fd, _NEXT.size, 0))
            if i >= self.n:
                return None
            os.pwrite(self._fd, _NEXT.pack(i + 1), 0)
            return i
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def __enter__(self) -> Taker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_claims(path: str) -> Taker | None:
    """In a task: the claims file at ``path``, or ``None`` when this machine has none
    there (the task runs on another machine) or it cannot be read."""
    try:
        import fcntl  # noqa: F401

        fd = os.open(path, os.O_RDWR)
    except (ImportError, OSError):
        return None
    try:
        return Taker(fd)
    except Exception:
        os.close(fd)
        return None
