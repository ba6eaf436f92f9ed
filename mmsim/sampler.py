"""The sampled series: its columns and the state each row reads (per-holder greeks,
the hedge-flow attribution, the held flip and walls).

:class:`Sampler` fills the rows of the :class:`~mmsim.record.SeriesRecorder` from the
market, the ledger, the dealers and the option book as they stand just before each
sample instant. One implementation serves both paths: the simpy path's recorder asks
for one row at a time (:meth:`Sampler.sample`, a batch of one); the fast path hands
over every sample a kernel call recorded at once (:meth:`Sampler.fill`), the book and
the surface being fixed within a call. The batch is compiled over plain arrays
(:func:`batch_greeks`, :func:`fill_rows`, :func:`~mmsim.level_kernels.levels_row_grouped`) and
sums in numpy's order (:func:`~mmsim.npsum.np_sum`), so its rows equal, bit for bit,
those of the row-by-row Python code it replaced (``tests/test_sampler.py``). Tabulated
books (``engine.delta_table``) read their greeks from
:meth:`~mmsim.book.OptionBook.series_greeks_many`, equal bit for bit to
:meth:`~mmsim.book.OptionBook.series_greeks` row by row.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable

import numpy as np
from numba import njit

from mmsim.agents.dealer import DealerAgent
from mmsim.book import _FLIP_GRID, _FLIP_MID, OptionBook
from mmsim.book_kernels import ROW_EXPIRY, reduce_lines
from mmsim.ledger import Ledger
from mmsim.level_kernels import StrikeGroups, levels_row_grouped
from mmsim.levels import LevelsHold
from mmsim.lob import BOOK_COLUMNS, BookMarket
from mmsim.market import Market
from mmsim.npsum import np_sum
from mmsim.profile_table import FLIP_TOL, table_gex
from mmsim.record import SeriesRecorder
from mmsim.schema import Scenario
from mmsim.table_levels import levels_from_tables
from mmsim.vol import VolSurface
from mmsim.wall_hold import MIN_LINES, WallBox, _at_walls_fast, levels_row_held

__all__ = [
    "BOOK_SERIES",
    "DEALER_COLUMNS",
    "LEVEL_COLUMNS",
    "STATE_COLUMNS",
    "Sampler",
    "accumulate_flow",
    "batch_greeks",
    "fill_rows",
    "series_columns",
]

STATE_COLUMNS = [
    "price",
    "iv",
    "dealer_delta",
    "dealer_gamma",
    "dealer_shares",
    "hedge_volume",
    "exogenous_volume",
    "gex_true",
    "gex_visible",
    "regime",
    "mid",
]
"""Series columns sampled every ``record.every`` s (units in the README); ``price`` is the
published (tick-rounded) price, ``mid`` the unrounded one fills and settlement use ($)."""
LEVEL_COLUMNS = [
    "flip_true",
    "flip_visible",
    "call_wall",
    "put_wall",
    "call_wall_visible",
    "put_wall_visible",
    "call_wall_gex_true",
    "call_wall_gex_visible",
    "put_wall_gex_true",
    "put_wall_gex_visible",
    "call_wall_strike_gex",
    "put_wall_strike_gex",
]
"""Series columns recomputed every ``record.levels_every`` s and held in between: flips and
walls ($) in both views; the true and visible GEX profile ($ per 1%) evaluated at the
visible call / put wall; the true GEX of the lines struck at each visible wall."""
DEALER_COLUMNS = [
    "delta",
    "gamma",
    "shares",
    "pnl",
    "flow_gamma",
    "flow_charm",
    "flow_vanna",
    "flow_other",
]
"""Per-dealer series columns ``<name>.<column>``: net delta and shares (shares), gamma
(shares per $1), P&L ($), and the cumulative hedge demand (shares, minus the change of
option delta) due to spot moves (gamma), time (charm), implied vol (vanna) and the rest."""
GEX_MAX_AGE = 1_800.0
"""Seconds the GEX re-priced at the visible walls may be held (``engine.levels_hold: all``;
:meth:`Sampler._gex_holds`)."""
GEX_DECAY = 0.02
"""... and at most this fraction of the time left to the first live expiry: an at-the-money
gamma (``~ 1 / sqrt(T)``) moves by about ``dt / 2T``, so held within ~1% of its own decay
(with 30 min alone, a held GEX at a wall of ``pinning`` was 59% of the column's range off
the recomputed one, ``opex_melt`` 6.5%)."""
BOOK_SERIES = [*BOOK_COLUMNS, "taken_bid", "taken_ask"]
"""Extra series columns of a book run (``market.model: book``): see
:data:`mmsim.lob.BOOK_COLUMNS`; ``taken_bid`` / ``taken_ask`` are the cumulative shares
every order took from each side (agents and the book's own flow)."""

_N_STATE, _N_LEVELS = len(STATE_COLUMNS), len(LEVEL_COLUMNS)


@njit(cache=True)
def accumulate_flow(prev, cur, dS, dt, year_seconds, dlevel, flow):
    """Hedge-flow attribution between two samples, per holder ``h``: with trapezoid
    greeks (rows of ``prev`` / ``cur``: delta, gamma, charm per year, vanna per 1.00 of
    vol), subtract from ``flow[0..2, h]`` the delta change due to spot (gamma x ``dS`` $),
    time (charm x ``dt`` s / ``year_seconds``) and vol (vanna x ``dlevel``), and from
    ``flow[3, h]`` the rest of the option delta change (shares)."""
    for h in range(flow.shape[1]):
        spot = 0.5 * (prev[1, h] + cur[1, h]) * dS
        time = 0.5 * (prev[2, h] + cur[2, h]) * dt / year_seconds
        vol = 0.5 * (prev[3, h] + cur[3, h]) * dlevel
        explained = 0.0
        explained += spot
        explained += time
        explained += vol
        flow[0, h] -= spot
        flow[1, h] -= time
        flow[2, h] -= vol
        flow[3, h] -= (cur[0, h] - prev[0, h]) - explained


@njit(cache=True)
def batch_greeks(times, mids, year_seconds, lines, n, level, skew, floor, r, q, greeks, gex):
    """Per-holder greeks (``greeks[j]``, rows as :func:`~mmsim.book_kernels.reduce_lines`)
    and the true and visible GEX at spot (``gex[j]``, $ per 1%) of sample ``j`` at spot
    ``mids[j]`` ($) and clock ``times[j]`` (s): the sampler's exact evaluation, row by row."""
    full = np.bool_(True)  # typed, not a literal: the book's reduce_lines, compiled once
    for j in range(times.size):
        a, b = reduce_lines(mids[j], times[j], year_seconds, lines, n, level, skew, floor,
                            r, q, full, greeks[j])  # fmt: skip
        gex[j, 0] = a
        gex[j, 1] = b


@njit(cache=True)
def fill_rows(times, mids, prices, volumes, shares, cash, hedge, due, greeks, gex, level,
              year_seconds, prev, flow, state, lev, at, nd, out):  # fmt: skip
    """Fill the series rows ``out[j]`` (columns after ``t``) of samples ``j`` in order.

    Inputs per row ``j``: clock ``times`` (s), ``mids`` and published ``prices`` ($),
    market ``volumes`` (shares), per dealer ``shares``, ``cash`` ($) and cumulative
    ``hedge`` volume (shares), per holder the value ``due`` on lines expiring at that
    instant ($), the greeks and GEX of :func:`batch_greeks`, and ``lev[at[j]]`` its
    flips and walls. State carried from sample to sample: ``prev`` (the greeks of the
    last sample), ``flow`` (cumulative hedge demand by cause, :func:`accumulate_flow`)
    and ``state`` (1.0 once a sample was taken; its spot, clock and vol ``level``)."""
    ns, nl = _N_STATE, _N_LEVELS
    k = ns + nl
    for j in range(times.size):
        S, t, g = mids[j], times[j], greeks[j]
        if state[0] != 0.0:
            accumulate_flow(prev, g, S - state[1], t - state[2], year_seconds,
                            level - state[3], flow)  # fmt: skip
        state[0], state[1], state[2], state[3] = 1.0, S, t, level
        prev = g
        total_shares = np_sum(shares[j], nd)
        hedge_sum = 0.0
        for i in range(nd):
            hedge_sum += hedge[j, i]
        levels = lev[at[j]]
        flip = levels[0]
        regime = 0.0 if math.isnan(flip) else (1.0 if S >= flip else -1.0)
        row = out[j]
        row[0] = prices[j]
        row[1] = level
        row[2] = np_sum(g[0], nd) + total_shares
        row[3] = np_sum(g[1], nd)
        row[4] = total_shares
        row[5] = hedge_sum
        row[6] = volumes[j] - hedge_sum
        row[7] = gex[j, 0]
        row[8] = gex[j, 1]
        row[9] = regime
        row[10] = S
        for c in range(nl):
            row[ns + c] = levels[c]
        for i in range(nd):
            sh = shares[j, i]
            c = k + 8 * i
            row[c] = g[0, i] + sh
            row[c + 1] = g[1, i]
            row[c + 2] = sh
            row[c + 3] = cash[j, i] + sh * S + g[4, i] + due[j, i]
            row[c + 4] = flow[0, i]
            row[c + 5] = flow[1, i]
            row[c + 6] = flow[2, i]
            row[c + 7] = flow[3, i]


def series_columns(scenario: Scenario, market: Market | BookMarket) -> list[str]:
    """The series columns after ``t``: state, levels, per dealer, and a book run's."""
    cols = [*STATE_COLUMNS, *LEVEL_COLUMNS]
    for name in scenario.dealer_names():
        cols += [f"{name}.{c}" for c in DEALER_COLUMNS]
    return cols + (BOOK_SERIES if isinstance(market, BookMarket) else [])


class Sampler:
    """Fills the series rows of one run (module docstring); owns the recorder, whose
    callback is ``sample`` (default :meth:`sample`)."""

    def __init__(
        self,
        scenario: Scenario,
        market: Market | BookMarket,
        book: OptionBook,
        vol: VolSurface,
        ledger: Ledger,
        dealers: list[DealerAgent],
        expiries: list[float],
        sample: Callable[[float, np.ndarray], None] | None = None,
    ) -> None:
        sc = scenario
        self.scenario, self.market, self.book, self.vol = sc, market, book, vol
        self.ledger, self.dealers = ledger, dealers
        self.recorder = SeriesRecorder(
            series_columns(sc, market), sc.record.every, sc.clock.duration, sample or self.sample
        )
        self.levels_stride = max(1, round(sc.record.levels_every / sc.record.every))
        self.levels = np.full(len(LEVEL_COLUMNS), np.nan)
        self.levels_hold = LevelsHold()
        self.hold = sc.engine.levels_hold  # which levels a tabulated book holds
        # the book's version, the surface, the clock (s) and the first live expiry (s)
        # when the GEX at the walls was last re-priced (``engine.levels_hold: all``)
        self._gex_state: tuple = (-1, None, -np.inf, -np.inf)
        self.gex_held = 0  # levels samples that kept the GEX at the walls (diagnostics)
        self.gex_table = 0  # ... that read it from the profile table (levels_hold: table)
        self._groups = StrikeGroups()  # the live table's strikes, per view
        self.wall_box = WallBox()  # walls proven over a spot x time box (mmsim.wall_hold)
        # (live lines, book version, surface, profile table, strike groups) of the last
        # levels sample read from the tables (levels_hold: table), or None
        self._from_tables: tuple | None = None
        self.rows_again = 0  # levels samples read again from those tables (diagnostics)
        # per-holder delta, gamma, charm, vanna, value at the previous sample
        self._prev = np.zeros((5, book.n_holders))
        self._flow = np.zeros((4, book.n_holders))  # cumulative hedge demand, shares
        # whether there was a previous sample, and its spot ($), clock (s) and vol level
        self._flow_state = np.zeros(4)
        self._dealer_accounts = np.array([d.account for d in dealers], dtype=np.int64)
        # s, sorted; samples there value unsettled lines
        self._expiries = np.unique(np.asarray(list(expiries), dtype=np.float64))
        self._expiry_list = self._expiries.tolist()  # for bisect (scalars, small fills)

    def sample(self, t: float, row: np.ndarray) -> None:
        """Fill one series row ``row`` (a view of the recorder's buffer) at time ``t`` (s)
        from the state just before ``t``: :meth:`fill` with the market, the ledger and the
        dealers as they stand."""
        market, ledger, acc = self.market, self.ledger, self._dealer_accounts
        hedge = np.array([d.hedge_volume for d in self.dealers])
        self.fill(np.array([float(t)]), np.array([market.mid]), np.array([market.volume]),
                  ledger.shares[acc][None, :], ledger.cash[acc][None, :], hedge[None, :],
                  row[None, :], np.array([market.price]))  # fmt: skip
        if isinstance(market, BookMarket):
            row[-len(BOOK_SERIES) :] = (*market.snapshot(), *market.side_flow)

    def fill(
        self,
        times: np.ndarray,
        mids: np.ndarray,
        volumes: np.ndarray,
        shares: np.ndarray,
        cash: np.ndarray,
        hedge: np.ndarray,
        rows: np.ndarray,
        prices: np.ndarray | None = None,
    ) -> None:
        """Fill ``m`` consecutive series rows (``rows``: the recorder's buffer from the next
        row on, columns after ``t``) at clock times ``times`` (s), the rows the recorder
        numbers ``recorder.filled`` on (the levels stride counts them), with the book and
        the surface as they stand (neither may change between these samples).

        Per row: ``mids`` the unrounded price ($), ``volumes`` the market's cumulative
        volume (shares), and per dealer (columns in dealer order) ``shares`` held,
        ``cash`` ($) and cumulative ``hedge`` volume (shares); ``prices`` the published
        prices ($; default: ``mids`` on the market's tick). The per-holder greeks come
        from one compiled pass over the book per row (:func:`batch_greeks`), or from
        :meth:`~mmsim.book.OptionBook.series_greeks_many` (the row-by-row
        :meth:`~mmsim.book.OptionBook.series_greeks` in compiled runs) when the book may
        answer from tables; flips and walls every ``levels_stride`` rows (:meth:`update_levels`);
        the rest is one compiled pass (:func:`fill_rows`)."""
        m, book, vol = times.size, self.book, self.vol
        # C-contiguous arrays whatever the caller's views (the fast path's are columns of
        # its sample buffer): one compiled batch_greeks and fill_rows, not one per layout
        mids, volumes, shares, cash, hedge = map(np.ascontiguousarray,
                                                 (mids, volumes, shares, cash, hedge))  # fmt: skip
        out = rows if rows.flags.c_contiguous else rows.copy()  # copied back below
        if prices is None:
            tick = self.market.tick
            prices = np.rint(mids / tick) * tick if tick > 0.0 else mids
        prices = np.ascontiguousarray(prices)
        level, skew, floor = vol.params()
        greeks, gex = np.empty((m, 5, book.n_holders)), np.empty((m, 2))
        t0 = float(times[0])
        lines, n = book._live_lines(t0)
        mode = book.delta_table
        if mode == "off" or n < (1 if mode == "on" else book.table_min_lines):
            # exact: live lines at t0 hold every line live later (the book is fixed);
            # the kernel skips those expired at each row's clock, as the live table would
            batch_greeks(times, mids, book.year_seconds, lines, n, level, skew, floor,
                         book.r, book.q, greeks, gex)  # fmt: skip
        else:
            book.series_greeks_many(times, mids, vol, greeks, gex)
        due = np.zeros((m, book.n_holders))
        exp = self._expiry_list  # those within these samples' clocks (most fills: none)
        lo, hi = bisect_left(exp, t0), bisect_right(exp, float(times[-1]))
        if hi > lo:
            for j in np.flatnonzero(np.isin(times, self._expiries[lo:hi])):
                due[j] = self._unsettled_value(float(mids[j]), float(times[j]))
        # rows whose number (the recorder's, from ``first``) is a multiple of the stride
        marks = range((-self.recorder.filled) % self.levels_stride, m, self.levels_stride)
        lev = np.empty((len(marks) + 1, len(LEVEL_COLUMNS)))
        lev[0] = self.levels
        at = np.zeros(m, dtype=np.int64)  # per row: the flips and walls it reads in lev
        for k, j in enumerate(marks):
            self.update_levels(float(mids[j]), float(times[j]))
            lev[k + 1] = self.levels
            at[j:] = k + 1
        fill_rows(times, mids, prices, volumes, shares, cash, hedge, due, greeks, gex, level,
                  self.scenario.clock.year_seconds, self._prev, self._flow, self._flow_state,
                  lev, at, len(self.dealers), out)  # fmt: skip
        if out is not rows:
            rows[:] = out
        self._prev[:] = greeks[m - 1]

    def _unsettled_value(self, S: float, t: float) -> np.ndarray:
        """Per-holder intrinsic value ($) of lines expiring at ``t`` and not settled yet.

        A sample at an expiry instant comes before that instant's settlement, but the book
        already values those lines at 0 (expired): without this the sampled P&L would lose
        their intrinsic value until the next sample, and the last row of a run ending at an
        expiry would disagree with the final P&L in the metrics."""
        book, out = self.book, np.zeros(self.book.n_holders)
        due = np.flatnonzero((np.abs(book.expiry - t) < 1e-9) & (book.qty != 0.0))
        for i in due:
            k = book.strike[i]
            intrinsic = max(S - k, 0.0) if book.is_call[i] else max(k - S, 0.0)
            out[book.holder[i]] += book.qty[i] * book.multiplier[i] * intrinsic
        return out

    def flips_due(self, S: float, t: float) -> bool:
        """Whether to recompute the flips now: always for books the engine evaluates
        exactly or with ``engine.levels_hold: off`` or ``table`` (from the profile
        table); for tabulated ones (``engine.delta_table``) with ``all`` / ``flips``
        only when the book (1% of its gross), the surface or spot (1%) moved, a line
        expired, every 2 h, or the profile table cannot prove the held flips within a
        step of the flip grid (0.25% of spot) of the exact ones (:mod:`mmsim.levels`)."""
        if self.hold in ("off", "table") or not self.book.tabulates(t):
            return True  # (table: read from the profile table at every levels sample)
        return self.levels_hold.due(S, t, self.book, self.vol.params(), self.levels[:2])

    def _gex_holds(self, t: float, tabulates: bool, surface: tuple) -> bool:
        """Whether the GEX re-priced at the visible walls may be kept at clock ``t`` (s)
        (``engine.levels_hold: all``, a tabulated book; the kernel checks the walls are
        the same strikes): the book unchanged, the same ``surface``, no live line expired
        and at most ``GEX_MAX_AGE`` s, and ``GEX_DECAY`` of the time then left to the
        first live expiry, since it was priced. It does not depend on spot, so it is then
        off only by the decay of gamma over that time."""
        version, surf, t_gex, expiry = self._gex_state
        return (
            self.hold == "all"
            and tabulates
            and version == self.book._version
            and surf == surface
            and t - t_gex < min(GEX_MAX_AGE, GEX_DECAY * (expiry - t_gex))
            and t < expiry
        )

    def update_levels(self, S: float, t: float) -> None:
        """Flip and walls in both views, and the gamma behind the visible walls
        (the episodes recorder's evidence); see ``LEVEL_COLUMNS``. One compiled pass
        (:func:`~mmsim.level_kernels.levels_row_grouped`, the strike grouping kept
        while the live table lasts); for a book that tabulates, the flips from its
        profile table: with ``engine.levels_hold: table`` (the default) at every levels
        sample, a crossing interpolated from the table's values where that is proven
        within ``FLIP_TOL`` of a grid step of the exact one
        (:func:`~mmsim.profile_table.walk_flips`), and the GEX of the book at the visible
        walls read from the table (:meth:`_table_gex`, within ``eps x wall**2 x 0.01``)
        when the walls come from a box; with ``all`` / ``flips`` held while
        :meth:`flips_due` says so, exact at the crossing; with ``all`` the GEX
        re-priced at the visible walls too while :meth:`_gex_holds` allows and the walls
        are the same (the walls themselves are always recomputed). Unless ``off``, books
        of at least :data:`~mmsim.wall_hold.MIN_LINES` lines (not evaluated exactly) find
        their walls inside a proven spot x time box (:class:`~mmsim.wall_hold.WallBox`)
        by pricing only the strikes that may be walls there: the same walls and strike
        GEX, bit for bit; with ``all`` the GEX re-priced at the walls is then priced with
        one ``exp`` a line (within 1e-12 of the gross of exact pricing)."""
        book, vol = self.book, self.vol
        S, t = float(S), float(t)
        if self._from_tables is not None and self._tables_again(S, t):
            return
        due = self.flips_due(S, t)
        lines, n = book._live_lines(t)
        tabulates = book.tabulates(t)
        exact = due and not tabulates
        if due and not exact:
            tol = FLIP_TOL if self.hold == "table" else 0.0
            self.levels[:2] = [np.nan if x is None else x for x in book.flips(S, t, vol, tol)]
        groups = self._groups.of(lines, n, book._version)
        surface = book._surface(vol)
        hold_gex = self._gex_holds(t, tabulates, surface)
        box = self.hold != "off" and not exact and n >= MIN_LINES
        wb, key = self.wall_box, (lines, n, book._version, surface)
        tab = book.profile_table(S, t, surface) if self.hold == "table" and box else None
        gex = 0
        if box and (wb.covers(S, t, *key) or wb.build(S, t, book.year_seconds, *key, groups)):
            gex = 2 if tab is not None else int(self.hold in ("all", "table"))
            held = levels_row_held(S, t, book.year_seconds, lines, n, *surface,
                                   hold_gex and gex < 2, gex, groups[8], *groups[:8],
                                   *self.wall_box.masks, self.levels)  # fmt: skip
            if gex == 2 and not self._table_gex(tab, t):
                g = _at_walls_fast(self.levels[4:6].copy(), t, book.year_seconds, lines, n,
                                   *surface, groups[8])  # fmt: skip
                self.levels[6:10] = g.T.ravel()
        else:
            held = levels_row_grouped(
                S, t, book.year_seconds, lines, n, *surface, _FLIP_GRID, _FLIP_MID, exact,
                hold_gex, *groups, self.levels,
            )  # fmt: skip
        self.gex_held += held
        if not held and tabulates and gex < 2:  # (only a priced GEX of a tabulated book is kept)
            first = float(lines[ROW_EXPIRY, :n].min()) if n else np.inf
            self._gex_state = (book._version, surface, t, first)
        # the tables this row was read from, for the next samples (_tables_again)
        read = gex == 2 and tab is book._profile and wb.holds(S, t, *key)
        self._from_tables = (lines, book._version, surface, tab, groups) if read else None

    def _tables_again(self, S: float, t: float) -> bool:
        """:meth:`update_levels` in one compiled call
        (:func:`~mmsim.table_levels.levels_from_tables`, the same kernels, the same row)
        when the last levels sample was read from the tables and they still answer
        unchanged: the same live lines, book version and surface, the same profile table
        still valid and current, spot and clock inside the same wall box. ``False``
        (levels untouched) otherwise, or when the tables cannot answer this sample: the
        caller then takes the long way (which counts what it does, as this does)."""
        lines0, version, surface0, tab, groups = self._from_tables
        book, wb = self.book, self.wall_box
        lines, n = book._live_lines(t)
        surface = book._surface(self.vol)
        if not (
            lines is lines0
            and book._version == version
            and surface == surface0
            and book._profile is tab
            and tab.book_version == version
            and tab.valid(S, t, surface)
            and wb.holds(S, t, lines, n, version, surface)
        ):
            return False
        row = self.levels.copy()
        if not levels_from_tables(_FLIP_GRID, _FLIP_MID, S, t, (t - tab.t0) / tab.H, tab.center,
                                  tab.half, tab.coef, tab.eps, tab.extra, tab.n_extra,
                                  book.year_seconds, lines, n, *surface, FLIP_TOL, groups[8],
                                  *groups[:8], *wb.masks, row):  # fmt: skip
            return False
        self.levels[:] = row
        book.profile_flips += 1  # as the long way counts its table flips, box rows, table GEX
        wb.held += 1
        self.gex_table += 1
        self.rows_again += 1
        return True

    def _table_gex(self, tab, t: float) -> bool:
        """``engine.levels_hold: table``: the true and visible GEX of the book at the
        visible walls (``levels[6:10]``, $ per 1%; NaN for no wall) from the profile table
        ``tab`` at clock ``t`` (s), each within ``eps x wall**2 x GEX_PER_PCT`` of the
        exact pricing (:func:`~mmsim.profile_table.table_gex`); ``False`` (nothing
        written) when a wall lies outside the table's fitted range."""
        lev = self.levels
        ok = table_gex(lev[4:6], t, (t - tab.t0) / tab.H, tab.center, tab.half, tab.coef,
                       tab.extra, tab.n_extra, self.book.year_seconds, *tab.surface,
                       lev[6:10])  # fmt: skip
        self.gex_table += ok
        return ok
