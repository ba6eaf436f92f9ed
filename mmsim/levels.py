"""When the series recorder may hold its gamma flips (and the GEX at the walls) instead
of recomputing them (``engine.levels_hold: all`` / ``flips``; the default ``table``
reads them from the book's profile table at every levels sample instead,
:meth:`mmsim.sampler.Sampler.update_levels`).

A flip (``flip_true``, ``flip_visible``) costs a GEX profile over the whole book, up to
241 re-pricings of every line; for a tabulated book it is read from the signs of a
tabulated profile instead (:mod:`mmsim.profile_table`, the same values, a few exact
re-pricings), but the table is refitted when the clock, spot or surface leave its range.
The walls and the GEX at them cost three passes over the lines (every line priced at
spot, then the whole book at each visible wall). Between two computations the levels
move only through the book (new lines, expiries), the surface, spot and the passage of
time, so a holder of :class:`LevelsHold` recomputes them only when one of these moved
enough (the sampler holds the flips; with ``engine.levels_hold: all`` also the GEX
re-priced at the visible walls, two of the three passes, while the book is unchanged and
the walls, recomputed every time, stay the same strikes: that GEX does not depend on
spot, so it is then off only by the decay of gamma over at most 30 min (and 2% of the
time left to the first expiry), its own clock,
:meth:`mmsim.sampler.Sampler._gex_holds`, and priced with one ``exp`` a line when the
walls come from a box of :mod:`mmsim.wall_hold`; ``off`` recomputes every level at every
levels sample):

- the book changed by more than ``book_move`` of its gross units (contracts booked since,
  times multiplier, against the live book's ``sum |qty * multiplier|``; default 1%), or
  the surface did (level, skew, floor);
- spot moved more than ``move`` (fraction; default 1%, four steps of the flip grid);
- ``max_age`` seconds passed since the last computation (time decay of gamma; default
  2 h);
- a line live at the last computation expired since;
- the book's profile table cannot vouch for the held flips (:meth:`LevelsHold.certified`).

The last check is what makes a held flip trustworthy. A flip is the crossing nearest to
spot, so a trade far below ``book_move`` (or an hour of decay) can open a new crossing
between spot and a far flip, and the nearest one jumps: measured 0.248 x spot on seed 1
of ``benchmarks.levels_hold``'s ``multi_dealer_bands*`` before this check. At every
sample that would hold, the profile's signs on the current spot's grid at the current
clock (the table's, brought up to date with the lines booked since, where it is
certain, ``|table| > eps``; the exact profile where it is not; zeros carry no sign)
must be one sign from spot out to the held flip's grid cell and the other after it, on
both sides out to the first point beyond the cell's far point; with no held flip, one
sign over the whole grid (:func:`~mmsim.profile_table.flips_certain`; no table needed
when each view's weights have one sign). Otherwise the flips are recomputed. This
costs 10-35 us a held sample on the synthetic 100- to 10,000-line books (the table
evaluated at once over the grid points needed), less than a recomputation's exact
values at the crossing.

**Guarantee.** A held flip lies in the same cell of the flip grid at the current spot
(``S * linspace(0.7, 1.3, 241)``) as the full computation's flip at that instant:
``|held - full| <= 0.0025 x spot`` (one grid step), and a held None is None in full,
as far as the profile table's validated bound holds (the bound the full computation
of a tabulated book relies on too; a book whose views' weights each have one sign has
no flip, table or not). ``tests/test_levels.py`` checks it at every levels
sample of 30 seeds on non-shipped parameters. Besides, each held value is the full
computation at a time at most ``max_age`` s earlier, with the same surface, a book
within ``book_move``, no expiry in between and spot within ``move``. (The guarantee
rests on the last check alone, so ``move`` and ``max_age`` are wide: with 0.25% and
30 min, a 10,000-line book recomputed its flips at 16 of a day's 79 levels samples,
1.4 ms each; with 1% and 2 h at 3.) The levels are
recorded only (series, wall and flip metrics, episodes): no agent trades on them, so
holding them changes no trade.
"""

from __future__ import annotations

import numpy as np

from mmsim.book import _FLIP_GRID, _FLIP_MID
from mmsim.book_kernels import ROW_EXPIRY, ROW_UNITS, ROW_VIS_W
from mmsim.level_kernels import _one_sign
from mmsim.profile_table import flips_certain

__all__ = ["LevelsHold"]


class LevelsHold:
    """Decides whether levels are due; see the module docstring. Units: spot in $,
    times in clock seconds, ``move`` a fraction of spot."""

    def __init__(
        self, max_age: float = 7_200.0, move: float = 0.01, book_move: float = 0.01
    ) -> None:
        self.max_age = float(max_age)
        self.move = float(move)
        self.book_move = float(book_move)
        self._last: tuple[float, tuple, float, float] | None = None
        self._gross = 0.0
        self._expiry = np.inf  # the first expiry of the lines live at the last computation
        self.computed = 0  # computations (diagnostics)
        self.held = 0  # samples that kept the last values
        self.uncertified = 0  # samples recomputed as the table could not vouch for the flips
        # per view, whether the weights of the live lines have one sign (no flip), and the
        # live table (rebuilt on any change of the book or an expiry) it was found for
        self._none: tuple = (None, -1, np.zeros(2, np.bool_))

    def due(self, S: float, t: float, book, surface: tuple, held: np.ndarray) -> bool:
        """True when the flips must be recomputed at spot ``S``, clock ``t`` for ``book``
        (an :class:`~mmsim.book.OptionBook`) and ``surface`` (level, skew, floor), ``held``
        the flips it would keep (true, visible; $, NaN = none); then the caller
        recomputes and this state records the book, surface, spot and time."""
        last = self._last
        if (
            last is None
            or book.turnover - last[0] > self.book_move * self._gross
            or last[1] != surface
            or abs(S - last[2]) > self.move * last[2]
            or t - last[3] >= self.max_age
            or t >= self._expiry
            or not self.certified(S, t, book, surface, held)
        ):
            self._last = (book.turnover, surface, S, t)
            lines, n = book._live_lines(t)
            self._gross = float(np.abs(lines[ROW_UNITS, :n]).sum())
            self._expiry = float(lines[ROW_EXPIRY, :n].min()) if n else np.inf
            self.computed += 1
            return True
        self.held += 1
        return False

    def certified(self, S: float, t: float, book, surface: tuple, held: np.ndarray) -> bool:
        """Whether the ``held`` flips (true, visible; $, NaN = none) lie in the cells of
        the flip grid at spot ``S`` ($) and clock ``t`` (s) where the exact ones are, as
        the book's profile table proves (:func:`~mmsim.profile_table.flips_certain`: its
        signs, the exact profile only where it is in doubt; ``surface``: level, skew,
        floor), or as the weights do when each view's have one sign (no flip);
        ``False`` when no table covers ``(S, t, surface)`` or the signs do not show it
        (counted in ``uncertified``)."""
        lines, n = book._live_lines(t)
        if self._none[0] is not lines or self._none[1] != n:  # the book's live table
            rows = (ROW_UNITS, ROW_VIS_W)
            self._none = (lines, n, np.array([_one_sign(lines, n, w, t) for w in rows]))
        none = self._none[2]
        held = np.asarray(held, dtype=np.float64)
        if none.all():  # no flip in either view: none held is right, no table needed
            ok = bool(np.isnan(held).all())
        else:
            surface = (*surface, book.r, book.q)  # the table's: (level, skew, floor, r, q)
            tab = book.profile_table(S, t, surface)
            ok = tab is not None and flips_certain(
                S * _FLIP_GRID, _FLIP_MID, S, t, held, none, (t - tab.t0) / tab.H, tab.center,
                tab.half, tab.coef, tab.eps, tab.extra, tab.n_extra, book.year_seconds, lines,
                n, *surface,
            )  # fmt: skip
        self.uncertified += not ok
        return bool(ok)
