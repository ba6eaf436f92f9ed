"""Recorders: the sampled series and the trade logs, in plain numpy buffers.

Nothing here touches pandas until the run is over (:meth:`to_frame`). The series buffer
is preallocated for the whole run; the logs grow in chunks without copying, so memory is
the size of the recorded output and nothing else.
"""

from __future__ import annotations

import functools
import mmap
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import pandas as pd
import simpy
from simpy.events import URGENT, Event

__all__ = ["Log", "SeriesRecorder", "timeout_clock"]


class _UrgentTimeout(Event):
    """A timeout that fires before every normal event of its instant.

    Samples taken this way are the state *just before* time ``t``: everything at
    earlier times has happened, nothing at ``t`` has yet.
    """

    def __init__(self, env: simpy.Environment, delay: float) -> None:
        super().__init__(env)
        self._ok = True
        self._value = None
        env.schedule(self, URGENT, delay)


class SeriesRecorder:
    """Samples ``columns`` every ``every`` seconds from ``t = 0`` to ``duration``.

    ``sample(t, row)`` is the engine's callback that fills one row (a float64 view).
    """

    def __init__(
        self,
        columns: list[str],
        every: float,
        duration: float,
        sample: Callable[[float, np.ndarray], None],
    ) -> None:
        self.columns = ["t", *columns]
        self.every = every
        self.times = np.arange(0.0, duration + 0.5 * every, every)
        self.times = self.times[self.times <= duration * (1 + 1e-12)]
        self.data = np.full((self.times.size, len(self.columns)), np.nan)
        self.data[:, 0] = self.times
        self.filled = 0
        self._sample = sample

    def take(self, t: float) -> None:
        """Fill the next row at time ``t`` (s)."""
        self._sample(t, self.data[self.filled, 1:])
        self.filled += 1

    def process(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """Sample at each grid time, before that instant's normal events."""
        for k, t in enumerate(self.times.tolist()):  # floats: the clock stays a float
            if k > 0:
                yield _UrgentTimeout(env, t - env.now)
            self.take(t)

    def finish(self, now: float) -> None:
        """Take grid samples the event loop stopped before (the one at the end time)."""
        while self.filled < self.times.size and self.times[self.filled] <= now + 1e-9:
            self.take(float(self.times[self.filled]))

    def to_frame(self) -> pd.DataFrame:
        """The series as a DataFrame; one row per sample taken. It is a view of the
        recorder's buffer, not a copy (the series is the largest table of a long run)."""
        columns = _column_index(tuple(self.columns))
        return pd.DataFrame(self.data[: self.filled], columns=columns, copy=False)


def _chunk(rows: int, columns: int) -> np.ndarray:
    """An uninitialized float64 array ``(rows, columns)``; one of 1 MB or more in its own
    anonymous memory map, so freeing it gives its pages back to the OS at once (the C
    allocator keeps freed heap memory of that size for itself: a long run's log gathered
    into one block would otherwise leave its chunks' 100 MB held and unused). A chunk is
    filled row by row: its pages faulted in one at a time cost ~2.4 us each on a VM,
    ~1.4 us mapped at once (``MAP_POPULATE``; 25 MB in a 20-day ``multi_dealer_bands``)."""
    nbytes = rows * columns * 8
    if nbytes < 1 << 20:
        return np.empty((rows, columns))
    if hasattr(mmap, "MAP_POPULATE"):  # Linux: its pages mapped at once
        buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE)
    else:
        buf = mmap.mmap(-1, nbytes)
    return np.frombuffer(buf, dtype=np.float64).reshape(rows, columns)


def timeout_clock(times: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    """The simpy clock (s) at each of ``times`` when reached by chained timeouts, each
    the previous clock plus its delay ``t - previous`` in float arithmetic (not always
    ``t`` itself), from ``times[0]``. Python floats are made a block at a time: no list
    as long as the run (585,000 samples at 250 days, 19 MB of float objects)."""
    out = np.empty(times.size)
    if not times.size:
        return out
    last = out[0] = float(times[0])
    for i in range(1, times.size, block):
        clock = []
        for t in times[i : i + block].tolist():
            last = last + (t - last)
            clock.append(last)
        out[i : i + len(clock)] = clock
    return out


@functools.lru_cache(maxsize=64)
def _column_index(columns: tuple[str, ...]) -> pd.Index:
    """A series' column index, built once per set of columns: every run's series frame
    with these columns shares it (an Index is immutable), and the lookup table its
    column reads build (the metrics and episodes read some 30) is built once."""
    return pd.Index(columns)


class Log:
    """An append-only table of float64 columns, kept in chunks.

    Growing never copies what is recorded: a full chunk is set aside and the next one
    allocated (each twice the last, at most :attr:`MAX_CHUNK` rows), so memory is the
    rows appended plus at most one chunk, with no doubling spike at a long run's end.

    Reading a column (:meth:`column`, once the run is over) first gathers the chunks
    into one block of contiguous columns, chunk by chunk, each chunk freed once copied;
    every column read afterwards is a view of that block, not a copy. The result tables
    built from the log (:mod:`mmsim.tables`) then share its memory for their number
    columns, as the series shares the recorder's buffer: a 250-day run's 1.7 million
    trades are held once, not twice, and an edit of ``Result.trades`` in place is an
    edit of the log's block (the log itself never writes into a block once built: rows
    appended later go to new chunks, gathered into a new block at the next read, so the
    views handed out before keep their rows).
    """

    MAX_CHUNK = 1 << 16
    """Largest chunk, rows (4 MB for 8 columns)."""

    def __init__(self, columns: list[str], capacity: int = 4096) -> None:
        self.columns = columns
        self._base = np.empty((len(columns), 0))  # gathered rows: one row per column
        self._full: list[np.ndarray] = []
        self._chunk = np.empty((capacity, len(columns)))
        self._i = 0  # rows filled in the current chunk
        self._done = 0  # rows in the full chunks

    @property
    def n(self) -> int:
        """Rows appended so far."""
        return self._base.shape[1] + self._done + self._i

    def append(self, *values: float) -> None:
        """Add one row (values in column order)."""
        if self._i == self._chunk.shape[0]:
            self._grow()
        self._chunk[self._i] = values
        self._i += 1

    def extend(self, rows: np.ndarray) -> None:
        """Add ``rows`` (shape ``(k, len(columns))``, column order) at once."""
        k = rows.shape[0]
        while k:
            if self._i == self._chunk.shape[0]:
                self._grow()
            take = min(k, self._chunk.shape[0] - self._i)
            self._chunk[self._i : self._i + take] = rows[:take]
            self._i += take
            rows, k = rows[take:], k - take

    def _grow(self) -> None:
        self._full.append(self._chunk)
        self._done += self._i
        size = min(2 * self._chunk.shape[0], self.MAX_CHUNK)
        self._chunk, self._i = _chunk(size, len(self.columns)), 0

    def _gather(self) -> None:
        """Move every chunked row into the block of contiguous columns (:attr:`_base`).
        The block's pages are written chunk by chunk and each full chunk is dropped once
        copied, so gathering holds little more than the rows themselves; the current
        chunk is kept (emptied) for later rows."""
        n0, n = self._base.shape[1], self.n
        block = np.empty((len(self.columns), n))
        block[:, :n0] = self._base
        self._base, at = block, n0  # views of the old block handed out stay valid
        while self._full:
            chunk = self._full.pop(0)
            block[:, at : at + chunk.shape[0]] = chunk.T
            at += chunk.shape[0]
            del chunk
        block[:, at:] = self._chunk[: self._i].T
        self._done, self._i = 0, 0

    def column(self, name: str) -> np.ndarray:
        """One column of the rows appended so far: a contiguous view of the gathered
        block (see the class docstring)."""
        j = self.columns.index(name)
        if self._done or self._i:
            self._gather()
        return self._base[j]

    def to_frame(self) -> pd.DataFrame:
        """The rows appended so far as a DataFrame (its columns views of the log's
        gathered block)."""
        return pd.DataFrame({c: self.column(c) for c in self.columns}, copy=False)
