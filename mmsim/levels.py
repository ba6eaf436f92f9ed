"""When the series recorder may hold its gamma flips (and the GEX at the walls) instead
of recomputing them.

A flip (``flip_true``, ``flip_visible``) costs a GEX profile over the whole book, up to
241 re-pricings of every line; for a tabulated book it is read from the signs of a
tabulated profile instead (:mod:`mmsim.profile_table`, the same values, a few exact
re-pricings), but the table is refitted when the clock, spot or surface leave its range.
The walls and the GEX at them cost three passes over the lines (every line priced at
spot, then the whole book at each visible wall). Between two computations the levels
move only through the book (new lines, expiries), the surface, spot and the passage of
time, so a holder of :class:`LevelsHold` recomputes them only when one of these moved
enough (the sampler holds the flips; with ``engine.levels_hold: all``, the default, also the GEX
re-priced at the visible walls, two of the three passes, while the book is unchanged and
the walls, recomputed every time, stay the same strikes: that GEX does not depend on
spot, so it is then off only by the decay of gamma over at most ``max_age``; ``off``
recomputes every level at every levels sample):

- the book changed by more than ``book_move`` of its gross units (contracts booked since,
  times multiplier, against the live book's ``sum |qty * multiplier|``; default 1%), or
  the surface did (level, skew, floor);
- spot moved more than ``move`` (fraction; default one step of the flip grid, 0.25%);
- ``max_age`` seconds passed since the last computation (time decay of gamma);
- a line live at the last computation expired since.

Otherwise the last values are kept: each recorded level is then the full computation at
a time at most ``max_age`` s earlier, with the same surface, a book within ``book_move``,
no expiry in between and spot within ``move`` (``tests/test_levels.py`` measures how far
that is from recomputing). The levels are recorded only (series, wall and flip metrics,
episodes): no agent trades on them, so holding them changes no trade.
"""

from __future__ import annotations

import numpy as np

from mmsim.book_kernels import ROW_EXPIRY, ROW_UNITS

__all__ = ["LevelsHold"]


class LevelsHold:
    """Decides whether levels are due; see the module docstring. Units: spot in $,
    times in clock seconds, ``move`` a fraction of spot."""

    def __init__(
        self, max_age: float = 1_800.0, move: float = 0.0025, book_move: float = 0.01
    ) -> None:
        self.max_age = float(max_age)
        self.move = float(move)
        self.book_move = float(book_move)
        self._last: tuple[float, tuple, float, float] | None = None
        self._gross = 0.0
        self._expiry = np.inf  # the first expiry of the lines live at the last computation
        self.computed = 0  # computations (diagnostics)
        self.held = 0  # samples that kept the last values

    def due(self, S: float, t: float, book, surface: tuple) -> bool:
        """True when the flips must be recomputed at spot ``S``, clock ``t`` for ``book``
        (an :class:`~mmsim.book.OptionBook`) and ``surface`` (its parameters); then the
        caller recomputes and this state records the book, surface, spot and time."""
        last = self._last
        if (
            last is None
            or book.turnover - last[0] > self.book_move * self._gross
            or last[1] != surface
            or abs(S - last[2]) > self.move * last[2]
            or t - last[3] >= self.max_age
            or t >= self._expiry
        ):
            self._last = (book.turnover, surface, S, t)
            lines, n = book._live_lines(t)
            self._gross = float(np.abs(lines[ROW_UNITS, :n]).sum())
            self._expiry = float(lines[ROW_EXPIRY, :n].min()) if n else np.inf
            self.computed += 1
            return True
        self.held += 1
        return False
