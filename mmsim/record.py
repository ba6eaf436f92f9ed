"""Recorders: the sampled series and the trade logs, in plain numpy buffers.

Nothing here touches pandas until the run is over (:meth:`to_frame`). The series buffer
is preallocated for the whole run; the logs grow in chunks without copying, so memory is
the size of the recorded output and nothing else.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import pandas as pd
import simpy
from simpy.events import URGENT, Event

__all__ = ["Log", "SeriesRecorder"]


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
    """

    MAX_CHUNK = 1 << 16
    """Largest chunk, rows (4 MB for 8 columns)."""

    def __init__(self, columns: list[str], capacity: int = 4096) -> None:
        self.columns = columns
        self._full: list[np.ndarray] = []
        self._chunk = np.empty((capacity, len(columns)))
        self._i = 0  # rows filled in the current chunk
        self._done = 0  # rows in the full chunks

    @property
    def n(self) -> int:
        """Rows appended so far."""
        return self._done + self._i

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
        self._chunk, self._i = np.empty((size, len(self.columns))), 0

    def column(self, name: str) -> np.ndarray:
        """One column of the rows appended so far, a new contiguous array."""
        j = self.columns.index(name)
        return np.concatenate([c[:, j] for c in self._full] + [self._chunk[: self._i, j]])

    def to_frame(self) -> pd.DataFrame:
        """The rows appended so far as a DataFrame (one new array per column)."""
        return pd.DataFrame({c: self.column(c) for c in self.columns}, copy=False)
