"""The option book: every dealer's option lines as a struct of arrays, with numba reductions.

Units and signs (see ``DESIGN.md``):

- ``strike`` in $; ``expiry`` in **seconds** on the simulation clock; time to expiry in
  years is ``(expiry - t) / year_seconds`` (trading time, never floored: an option one
  second from expiry uses one second).
- ``qty`` in contracts, signed from the **holder's** view (a dealer short 100 calls has
  ``qty = -100``); ``multiplier`` in shares per contract; ``units = qty * multiplier``.
- Share delta ``units * delta``; share gamma ``units * gamma`` (shares per $1).
- GEX (dollar gamma per 1% move) of a line: ``weight * gamma * S**2 * 0.01`` where the
  weight is ``units`` in the **true** view, and ``sign * |units|`` on exchange-listed lines
  only in the **visible** view (the outside analyst's convention, :class:`VisibleConvention`).
- Each line is priced at its own strike's implied vol plus the line's ``iv_offset`` (vol
  units, 0 by default, e.g. a real chain's smile): ``max(surface_iv(K, S, level, skew,
  floor) + iv_offset, floor)``.
  Lines with ``expiry <= t`` have expired and contribute nothing (0 delta, gamma, value).

Layout: the public table keeps every line in the order it was first booked (lines are
aggregated by holder, strike, expiry, type, visibility and multiplier, and never
removed, so the record of what expired stays). Each holder also has a compact *hot
table* of its own live lines (same order; expired and netted-out lines compacted out),
which is what a dealer's check reads; big holder books may answer from a
:class:`~mmsim.delta_table.DeltaTable` instead (``delta_table`` mode). The hot tables
and the all-holders live table follow the trades booked (a copy of the table with the
changed and appended lines, no look at every line ever booked) and are rebuilt when
one of their lines expires or nets out; an array handed out is never written.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mmsim.book_kernels import (
    GEX_PER_PCT,
    N_ROWS,
    ROW_EXPIRY,
    ROW_HOLDER,
    ROW_IS_CALL,
    ROW_IV_OFF,
    ROW_STRIKE,
    ROW_UNITS,
    ROW_VIS_W,
    gamma_sum,
    holder_gross,
    holder_sum,
    line_gamma,
    nearest_flips,
    profile_gamma,
    reduce_lines,
    take_lines,
)
from mmsim.delta_table import (
    DeltaTable,
    build_table,
    fold_booked,
    near_cut,
    retry_after,
    table_eval,
    table_sample,
)
from mmsim.profile_table import (
    MAX_CHANGES,
    ProfileTable,
    build_profile,
    fold_profile,
    gamma_pair,
    table_flips,
)
from mmsim.series_tables import holder_rows, sum_gex
from mmsim.vol import VolSurface

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DELTA_TABLE_MODES",
    "GEX_PER_PCT",
    "OptionBook",
    "VisibleConvention",
]

DELTA_TABLE_MODES = ("auto", "on", "off")
TABLE_MAX_CHANGES = 64
"""Lines a holder may book after its table was built (evaluated exactly beside it)
before the table is rebuilt."""
ROLL_MAX_TURNING = 0.02
"""A table rolls on (:meth:`OptionBook._rolls_on`) only while at most this share of its
holder's lines turn near by the next table's near cut: more (an expiry's lines, e.g. the
0DTE ones) leave the fit smoother, and a longer fit may pass again."""
DELTA_TABLE_MIN_LINES = 64
"""In ``auto`` mode a holder's check uses a delta table from this many live lines on: an
exact check costs about 2.5 us plus 50 ns per line on the simpy agents (a few ns per line
in the compiled kernel, which reads the same tables) and a tabulated one about 3 us
whatever the lines (one ``table_eval``), so a table pays from ~30 lines; 64 leaves small
books exact, bit for bit, and keeps a growing book's checks from costing more as
customers trade."""

_VIEWS = ("true", "visible")
_FLIP_GRID = np.linspace(0.7, 1.3, 241)  # default flip grid, fraction of spot
_FLIP_MID = 120  # _FLIP_GRID[120] == 1.0: the grid point at spot
_COLUMNS = {  # public column -> private array
    "strike": "_strike",
    "expiry": "_expiry",
    "is_call": "_is_call",
    "qty": "_qty",
    "holder": "_holder",
    "visible": "_visible",
    "multiplier": "_mult",
}


@dataclass(frozen=True)
class VisibleConvention:
    """How an outside analyst signs exchange open interest (SqueezeMetrics convention by default):
    dealers assumed long calls (+1) and short puts (-1)."""

    call_sign: float = 1.0
    put_sign: float = -1.0


def _nearest_crossing(grid: np.ndarray, profile: np.ndarray, S: float) -> float | None:
    """Linearly interpolated zero crossing of ``profile`` over ``grid`` nearest to ``S``.

    Exact zeros carry no sign (e.g. far from every strike near expiry): a crossing is a
    change of sign between consecutive *non-zero* values, interpolated between them.
    """
    nz = np.flatnonzero(profile != 0.0)
    a, b = nz[:-1], nz[1:]
    change = np.sign(profile[a]) != np.sign(profile[b])
    if not change.any():
        return None
    a, b = a[change], b[change]
    pa, pb = profile[a], profile[b]
    x = grid[a] - pa * (grid[b] - grid[a]) / (pb - pa)
    return float(x[np.argmin(np.abs(x - S))])


_ALWAYS = (-math.inf, math.inf, 0.0, math.inf)
"""A sampler run's window (:func:`~mmsim.series_tables.holder_rows`) that never ends it."""


class OptionBook:
    """Option positions of ``n_holders`` holders (the dealers), struct-of-arrays.

    Parameters
    ----------
    n_holders : number of holders; ``holder`` indices are ``0 .. n_holders - 1``.
    year_seconds : trading seconds per year (default ``252 * 23_400``).
    r, q : continuously compounded rate and dividend yield, per year.
    convention : how the visible view signs exchange open interest.
    capacity : initial number of lines allocated; arrays double when full.
    delta_table : ``"off"`` (default) evaluates every live line at every
        :meth:`holder_delta_gamma`; ``"on"`` answers from a tabulated delta
        (:mod:`mmsim.delta_table`, within 3/4 of a share); ``"auto"`` tabulates holders
        with at least ``table_min_lines`` live lines.

    The public arrays (``strike``, ``expiry``, ``is_call``, ``qty``, ``holder``, ``visible``,
    ``multiplier``, ``iv_offset``) are read-only views of the first ``n`` lines; ``version``
    increases on every change so callers can cache derived quantities.
    """

    def __init__(
        self,
        n_holders: int,
        *,
        year_seconds: float = 252 * 23_400.0,
        r: float = 0.0,
        q: float = 0.0,
        convention: VisibleConvention = VisibleConvention(),
        capacity: int = 64,
        delta_table: str = "off",
        table_min_lines: int = DELTA_TABLE_MIN_LINES,
    ) -> None:
        if n_holders < 1:
            raise ValueError(f"n_holders must be >= 1, got {n_holders}")
        if not year_seconds > 0:
            raise ValueError(f"year_seconds must be > 0, got {year_seconds}")
        if delta_table not in DELTA_TABLE_MODES:
            raise ValueError(f"delta_table must be one of {DELTA_TABLE_MODES}, got {delta_table!r}")
        self.n_holders = int(n_holders)
        self.year_seconds = float(year_seconds)
        self.r, self.q = float(r), float(q)
        self.convention = convention
        self.delta_table = delta_table
        self.table_min_lines = int(table_min_lines)
        self._n = 0
        self._version = 0
        self._index: dict[tuple, int] = {}
        cap = max(int(capacity), 1)
        self._mult, self._qty = np.zeros(cap), np.zeros(cap)
        self._is_call = np.zeros(cap, dtype=np.bool_)
        self._visible = np.zeros(cap, dtype=np.bool_)
        self._holder = np.zeros(cap, dtype=np.int64)
        self._set_packed(np.zeros((N_ROWS, cap)))
        self._scratch = np.zeros((5, self.n_holders))
        self._one = np.zeros((5, 1))
        h = self.n_holders
        self._holder_version = [0] * h  # per holder, bumped when its lines change
        # per holder: (lines, n, holder version, built at t, next expiry) of live lines
        self._hot: list[tuple[np.ndarray, int, int, float, float] | None] = [None] * h
        self._tables: list[DeltaTable | None] = [None] * h
        self._retry: list[tuple[int, float]] = [(-1, -math.inf)] * h  # failed builds
        self._touched: list[list[int]] = [[] for _ in range(h)]  # lines changed since build
        self._live: tuple[np.ndarray, int, int, float, float] | None = None  # all holders
        # per key (0: all holders, 1 + h: holder h): the lines live at the last look and
        # that clock, and the lines booked since (``_live_index``)
        self._cand: list[tuple[np.ndarray | None, float]] = [(None, -math.inf)] * (h + 1)
        self._cand_new: list[list[int]] = [[] for _ in range(h + 1)]
        self.live_rebuilds = 0  # diagnostics: live and hot tables made by a look at the book
        self.turnover = 0.0  # shares: cumulative |qty * multiplier| booked
        self.table_builds = 0  # delta tables built (diagnostics),
        self.table_rolls = 0  # of which rolled on from the previous one's end
        # the flips' profile table (mmsim.profile_table), lines booked since its build,
        # and (book version, clock) before which a failed build is not retried
        self._profile: ProfileTable | None = None
        self._profile_touched: list[int] = []
        self._profile_retry: tuple[int, float] = (-1, -math.inf)
        self.profile_builds = 0  # diagnostics: profile tables built,
        self.profile_flips = 0  # flips answered from one, or not (a sign was wrong),
        self.profile_misses = 0
        self.profile_folds = 0  # and changed lines folded into one instead of a build
        self.table_samples = 0  # and holder-samples of the series read from delta tables
        self._strike_cache: dict[str, tuple] = {}  # view -> last _by_strike answer
        self._line_gammas: tuple | None = None  # (live table, key, unit gamma per line)

    # -- read-only state ------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of lines."""
        return self._n

    @property
    def version(self) -> int:
        """Incremented on every change of the book."""
        return self._version

    def holder_version(self, holder: int) -> int:
        """Incremented on every change of ``holder``'s lines (a trade of another holder
        leaves it)."""
        return self._holder_version[holder]

    @property
    def packed(self) -> np.ndarray:
        """The line table the kernels read, shape ``(7, capacity)`` float64, rows
        ``mmsim.book_kernels.ROW_*`` (strike, expiry, is_call as 0/1, units, holder,
        visible weight, iv_offset); only the first ``n`` columns are lines. Owned by the
        book: read, never write."""
        return self._packed

    def _set_packed(self, packed: np.ndarray) -> None:
        """Adopt ``packed`` as the line table; the float columns are views of its rows."""
        self._packed = packed
        self._strike = packed[ROW_STRIKE]
        self._expiry = packed[ROW_EXPIRY]
        self._units = packed[ROW_UNITS]
        self._vis_w = packed[ROW_VIS_W]
        self._iv_off = packed[ROW_IV_OFF]

    def _view(self, a: np.ndarray) -> np.ndarray:
        v = a[: self._n]
        v.flags.writeable = False
        return v

    strike = property(lambda self: self._view(self._strike), doc="Strike, $.")
    expiry = property(lambda self: self._view(self._expiry), doc="Expiry, clock seconds.")
    is_call = property(lambda self: self._view(self._is_call), doc="True for calls.")
    qty = property(lambda self: self._view(self._qty), doc="Contracts, holder's sign.")
    holder = property(lambda self: self._view(self._holder), doc="Holder index.")
    visible = property(lambda self: self._view(self._visible), doc="Exchange-listed (not OTC).")
    multiplier = property(lambda self: self._view(self._mult), doc="Shares per contract.")
    iv_offset = property(
        lambda self: self._view(self._iv_off), doc="Vol added to the surface at the line."
    )

    def __len__(self) -> int:
        return self._n

    # -- changes --------------------------------------------------------------------------
    def add(
        self,
        strike: float,
        expiry: float,
        is_call: bool,
        qty: float,
        holder: int,
        *,
        visible: bool = True,
        multiplier: float = 100.0,
        iv_offset: float | None = None,
    ) -> None:
        """Add ``qty`` contracts (holder's sign) of an option expiring at ``expiry`` (clock s).

        Aggregates into the line with identical ``(holder, strike, expiry, is_call, visible,
        multiplier)`` if there is one (a line netted to 0 stays, contributing nothing).
        ``iv_offset`` (vol units, e.g. 0.02 = 2 points over the surface) sets the line's
        offset; ``None`` keeps an existing line's offset (0 for a new line).

        When the holder has a delta table, the trade goes into it at once (folded into
        its fit, or beside it when it expires soon: :meth:`_refresh_changes`), as it
        would at the holder's next check, so the table stays current between checks.
        """
        h = operator.index(holder)
        strike, expiry, qty, multiplier = map(float, (strike, expiry, qty, multiplier))
        if not 0 <= h < self.n_holders:
            raise ValueError(f"holder {h} out of range 0..{self.n_holders - 1}")
        if not (math.isfinite(strike) and strike > 0):
            raise ValueError(f"strike must be > 0 dollars, got {strike}")
        if not (math.isfinite(multiplier) and multiplier > 0):
            raise ValueError(f"multiplier must be > 0 shares per contract, got {multiplier}")
        if not (math.isfinite(qty) and math.isfinite(expiry)):
            raise ValueError(f"qty and expiry must be finite, got {qty}, {expiry}")
        if iv_offset is not None and not math.isfinite(iv_offset):
            raise ValueError(f"iv_offset must be a finite vol, got {iv_offset}")
        key = (h, strike, expiry, bool(is_call), bool(visible), multiplier)
        i = self._index.get(key)
        if i is None:
            i = self._append(key)
        self._qty[i] += qty
        self.turnover += abs(qty * multiplier)
        if iv_offset is not None:
            self._iv_off[i] = float(iv_offset)
        self._set_units(i, bool(is_call), bool(visible))
        self._version += 1
        self._holder_version[h] += 1
        self._touched[h].append(i)
        self._cand_new[0].append(i)
        self._cand_new[h + 1].append(i)
        if self._profile is not None:
            self._profile_touched.append(i)
        table = self._tables[h]
        if table is not None:  # a table that fails the refit is rebuilt at the next check
            self._refresh_changes(h, table, self._holder_version[h])

    def _set_units(self, i: int, is_call: bool, visible: bool) -> None:
        self._units[i] = self._qty[i] * self._mult[i]
        sign = self.convention.call_sign if is_call else self.convention.put_sign
        self._vis_w[i] = sign * abs(self._units[i]) if visible else 0.0

    def add_many(
        self,
        strike,
        expiry,
        is_call,
        qty,
        holder,
        visible=True,
        multiplier=100.0,
        iv_offset=0.0,
    ) -> None:
        """Add many lines at once (arrays, or scalars that broadcast): the same book, bit
        for bit, as calling :meth:`add` for each element in order (quantities of one key
        summed in that order, the last ``iv_offset`` kept, ``turnover`` summed in that
        order), each with its ``iv_offset`` (vol units; ``None``: keep an existing line's,
        0 for a new one), but validated, aggregated and appended in bulk (a 10,000-line
        book in a few milliseconds). ``version`` moves once per call."""
        keep = iv_offset is None
        arrays = np.broadcast_arrays(
            np.asarray(strike, np.float64), np.asarray(expiry, np.float64),
            np.asarray(is_call, np.bool_), np.asarray(qty, np.float64),
            np.asarray(holder), np.asarray(visible, np.bool_),
            np.asarray(multiplier, np.float64), np.asarray(0.0 if keep else iv_offset, np.float64),
        )  # fmt: skip
        K, E, C, Q, H, V, M, OFF = (np.ravel(a) for a in arrays)
        if K.size == 0:
            return
        if not np.issubdtype(H.dtype, np.integer):
            raise ValueError("holder must be integers")
        H = H.astype(np.int64)
        bad = [
            ("holder", (H < 0) | (H >= self.n_holders), f"in 0..{self.n_holders - 1}"),
            ("strike", ~(np.isfinite(K) & (K > 0)), "> 0 dollars"),
            ("multiplier", ~(np.isfinite(M) & (M > 0)), "> 0 shares per contract"),
            ("qty", ~np.isfinite(Q), "finite"),
            ("expiry", ~np.isfinite(E), "finite"),
            ("iv_offset", ~np.isfinite(OFF), "finite"),
        ]
        for name, mask, want in bad:
            if mask.any():
                j = int(np.argmax(mask))
                raise ValueError(f"{name}[{j}] must be {want}")
        cols = (H.tolist(), K.tolist(), E.tolist(), C.tolist(), V.tolist(), M.tolist())
        keys = list(zip(*cols, strict=True))
        index, n0 = self._index, self._n
        get, fresh = index.get, {}
        rows = [get(k) for k in keys]
        for j, i in enumerate(rows):  # new keys numbered in order of first booking
            if i is None:
                rows[j] = fresh.setdefault(keys[j], n0 + len(fresh))
        if fresh:
            self._append_many(K, E, C, H, V, M, fresh, keys, rows, n0)
        idx = np.asarray(rows, dtype=np.int64)
        np.add.at(self._qty, idx, Q)  # in booking order, as repeated ``add``
        if not keep:
            self._iv_off[idx] = OFF  # repeated lines: the last offset stays
        turnover = self.turnover
        for v in np.abs(Q * M).tolist():
            turnover += v
        self.turnover = turnover
        rows_u = np.unique(idx)
        self._units[rows_u] = self._qty[rows_u] * self._mult[rows_u]
        sign = np.where(self._is_call[rows_u], self.convention.call_sign, self.convention.put_sign)
        self._vis_w[rows_u] = np.where(
            self._visible[rows_u], sign * np.abs(self._units[rows_u]), 0.0
        )
        self._version += 1
        self._cand_new[0].extend(rows)
        if self._profile is not None:
            self._profile_touched.extend(rows)
        for h in np.unique(H).tolist():
            mine = idx[H == h].tolist()
            self._touched[h].extend(mine)
            self._cand_new[h + 1].extend(mine)
            self._holder_version[h] += 1

    def _append_many(self, K, E, C, H, V, M, fresh: dict, keys: list, rows: list, n0: int):
        """Append the ``fresh`` keys' lines (numbered from ``n0`` on) with 0 contracts:
        :meth:`_append` for each, in bulk (``rows[j]``: the line of element ``j``)."""
        first = np.full(len(fresh), -1, dtype=np.int64)  # element that first booked each
        for j, i in enumerate(rows):
            if i >= n0 and first[i - n0] < 0:
                first[i - n0] = j
        n1 = n0 + len(fresh)
        cap = self._strike.size
        if n1 > cap:
            while cap < n1:
                cap *= 2
            for name in ("_is_call", "_qty", "_holder", "_visible", "_mult"):
                old = getattr(self, name)
                new = np.zeros(cap, dtype=old.dtype)
                new[:n0] = old[:n0]
                setattr(self, name, new)
            packed = np.zeros((N_ROWS, cap))
            packed[:, :n0] = self._packed[:, :n0]
            self._set_packed(packed)
        s = slice(n0, n1)
        self._holder[s], self._strike[s], self._expiry[s] = H[first], K[first], E[first]
        self._is_call[s], self._visible[s], self._mult[s] = C[first], V[first], M[first]
        self._packed[ROW_IS_CALL, s] = np.where(C[first], 1.0, 0.0)
        self._packed[ROW_HOLDER, s] = H[first]
        self._qty[s] = 0.0
        self._iv_off[s] = 0.0
        self._index.update(fresh)
        self._n = n1

    def _append(self, key: tuple) -> int:
        i = self._n
        if i == self._strike.size:
            for name in ("_is_call", "_qty", "_holder", "_visible", "_mult"):
                old = getattr(self, name)
                new = np.zeros(2 * old.size, dtype=old.dtype)
                new[:i] = old[:i]
                setattr(self, name, new)
            packed = np.zeros((N_ROWS, 2 * i))
            packed[:, :i] = self._packed[:, :i]
            self._set_packed(packed)
        h, strike, expiry, is_call, visible, mult = key
        self._holder[i], self._strike[i], self._expiry[i] = h, strike, expiry
        self._is_call[i], self._visible[i], self._mult[i] = is_call, visible, mult
        self._packed[ROW_IS_CALL, i] = 1.0 if is_call else 0.0
        self._packed[ROW_HOLDER, i] = h
        self._qty[i] = 0.0
        self._iv_off[i] = 0.0
        self._index[key] = i
        self._n = i + 1
        return i

    # -- per-holder quantities ------------------------------------------------------------
    def years_to_expiry(self, t: float) -> np.ndarray:
        """``(expiry - t) / year_seconds`` per line, years (negative once expired)."""
        return (self._expiry[: self._n] - t) / self.year_seconds

    def _surface(self, vol: VolSurface) -> tuple[float, float, float, float, float]:
        return (*vol.params(), self.r, self.q)

    def net_delta_gamma(
        self,
        S: float,
        t: float,
        vol: VolSurface,
        out_delta: np.ndarray | None = None,
        out_gamma: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-holder share delta (shares) and share gamma (shares per $1) at spot ``S``, time
        ``t`` (clock s), exact. With ``out_delta`` / ``out_gamma`` (length ``n_holders``)
        nothing is allocated: they are filled and returned."""
        if out_delta is None:
            out_delta = np.zeros(self.n_holders)
        if out_gamma is None:
            out_gamma = np.zeros(self.n_holders)
        if out_delta.shape != (self.n_holders,) or out_gamma.shape != (self.n_holders,):
            raise ValueError(f"out arrays must have shape ({self.n_holders},)")  # numba: no bounds
        sc = self._scratch
        lines, n = self._live_lines(float(t))
        reduce_lines(float(S), float(t), self.year_seconds, lines, n,
                     *self._surface(vol), False, sc)  # fmt: skip
        out_delta[:] = sc[0]
        out_gamma[:] = sc[1]
        return out_delta, out_gamma

    def _hot_lines(self, holder: int, t: float) -> tuple[np.ndarray, int]:
        """``holder``'s live lines at ``t`` as a compact line table (holder row 0),
        in booking order; brought up to date when its lines change or one of them
        expires (:meth:`_live_table`)."""
        hot = self._hot[holder]
        hv = self._holder_version[holder]
        if hot is None or hot[2] != hv or not hot[3] <= t < hot[4]:
            hot = self._hot[holder] = self._live_table(holder, t, hv, hot)
        return hot[0], hot[1]

    def tabulates(self, t: float) -> bool:
        """Whether this book answers from tables at ``t``: ``delta_table`` is ``"on"``, or
        ``"auto"`` with at least ``table_min_lines`` live lines in the whole book."""
        mode = self.delta_table
        return mode == "on" or (mode == "auto" and self._live_lines(t)[1] >= self.table_min_lines)

    def gross_units(self, t: float) -> float:
        """Sum of ``|qty * multiplier|`` over the lines live at ``t``, shares."""
        lines, n = self._live_lines(float(t))
        return float(np.abs(lines[ROW_UNITS, :n]).sum())

    def holder_gross_units(self, holder: int) -> float:
        """Sum of ``|qty * multiplier|`` over every line of ``holder`` ever booked (live or
        expired), shares: ``np.abs(qty[m] * multiplier[m]).sum()`` with ``m = holder ==
        holder``, bit for bit, in one compiled pass (:func:`~mmsim.book_kernels.
        holder_gross`; a dealer's band in contracts reads it after each of its trades)."""
        return float(holder_gross(self._holder, self._qty, self._mult, self._n, holder))

    def _live_index(self, key: int, t: float) -> np.ndarray:
        """Indices (ascending: booking order) of the lines of holder ``key`` (``-1``: all
        holders) live at ``t``: non-zero and unexpired. Found among the lines live at the
        last call and those booked since, so the cost follows the live book, not every
        line ever booked (small tables, mostly live ones and a clock earlier than the last
        call's scan the whole table)."""
        idx, last = self._cand[key + 1]
        new = self._cand_new[key + 1]
        if idx is None or t < last or self._n <= 4 * (idx.size + len(new)) + 1_024:
            n = self._n  # a scan of every line is as cheap: do it
            idx = np.arange(n) if key < 0 else np.flatnonzero(self._holder[:n] == key)
        elif new:
            idx = np.union1d(idx, np.asarray(new, dtype=np.int64))
        keep = idx[(self._units[idx] != 0.0) & (self._expiry[idx] > t)]
        self._cand[key + 1] = (keep, float(t))
        self._cand_new[key + 1] = []
        return keep

    def _live_lines(self, t: float) -> tuple[np.ndarray, int]:
        """All holders' live lines at ``t`` as a compact line table (holder row kept), in
        booking order: what the sampler and the GEX views read; brought up to date on
        any change of the book or when a line expires (:meth:`_live_table`). A book of
        one holder answers with that holder's hot table (its holder row is 0 too)."""
        if self.n_holders == 1:  # holder 0's hot table: the same lines, bit for bit
            lines, n = self._hot_lines(0, t)
            self._live = self._hot[0]
            return lines, n
        live = self._live
        if live is None or live[2] != self._version or not live[3] <= t < live[4]:
            live = self._live = self._live_table(-1, t, self._version, live)
        return live[0], live[1]

    def _live_table(self, key: int, t: float, stamp: int, old: tuple | None) -> tuple:
        """The live table of holder ``key`` (``-1``: all holders, holder row kept; else
        the holder row is 0) at clock ``t`` (s), stamped ``stamp`` (the version it is
        current at): ``(lines, n, stamp, from, next expiry)``, valid for clocks in
        ``[from, next expiry)``. A table's array is never written once handed out (the
        level caches compare arrays by identity and read old ones): a change makes a
        new one. From the table ``old`` while ``t`` is in its clocks, by the lines booked
        since (:meth:`_booked_into`: a copy, changed columns and appended lines, no scan
        of the book); else from :meth:`_live_index`."""
        if old is not None and old[3] <= t < old[4]:
            table = self._booked_into(key, t, stamp, old)
            if table is not None:
                return table
        self.live_rebuilds += 1
        lines = take_lines(self._packed, self._live_index(key, t))
        if key >= 0:
            lines[ROW_HOLDER] = 0.0
        nxt = float(lines[ROW_EXPIRY].min()) if lines.shape[1] else math.inf
        return lines, lines.shape[1], stamp, float(t), nxt

    def _booked_into(self, key: int, t: float, stamp: int, old: tuple) -> tuple | None:
        """``old`` (a live table of :meth:`_live_table` for holder ``key``, whose clocks
        hold ``t``) with the lines booked since it was made (``_cand_new``), stamped
        ``stamp``: the same table, bit for bit, as a rebuild at ``t`` would make, at the
        cost of a copy of ``old`` plus the changed lines (a new array even when none
        changed, e.g. a trade of an expired line: a new version, a new table). ``None``
        (rebuild) when a line left the table (netted to zero), one re-enters it before
        its end (booking order), the candidates are not ``old``'s columns, or a booked
        line expires by ``t``."""
        lines, n, _, t0, nxt = old
        idx, last = self._cand[key + 1]
        if idx is None or last != t0 or idx.size != n:
            return None
        booked = self._cand_new[key + 1]
        if len(booked) == 1:  # one trade since: the common case, in scalars
            return self._booked_one(key, t, stamp, old, idx, booked[0])
        ids = np.unique(np.asarray(booked, dtype=np.int64))
        live = (self._units[ids] != 0.0) & (self._expiry[ids] > t0)
        pos = np.searchsorted(idx, ids)
        inside = pos < n
        inside[inside] = idx[pos[inside]] == ids[inside]
        if (inside & ~live).any():
            return None  # netted out: the table shrinks (a rebuild)
        add = ids[live & ~inside]
        if add.size and n and add[0] < idx[-1]:
            return None  # back in the book before its last line (a rebuild)
        if add.size:
            nxt = min(nxt, float(self._expiry[add].min()))
            if t >= nxt:
                return None
        changed = pos[inside]
        m = n + add.size
        new = np.empty((N_ROWS, m))
        new[:, :n] = lines[:, :n]
        new[:, changed] = self._packed[:, ids[inside]]
        new[:, n:] = self._packed[:, add]
        if key >= 0:
            new[ROW_HOLDER, changed] = 0.0
            new[ROW_HOLDER, n:] = 0.0
        self._cand[key + 1] = (np.concatenate([idx, add]) if add.size else idx, t0)
        self._cand_new[key + 1] = []
        return new, m, stamp, t0, nxt

    def _booked_one(
        self, key: int, t: float, stamp: int, old: tuple, idx: np.ndarray, i: int
    ) -> tuple | None:
        """:meth:`_booked_into` when line ``i`` alone was booked since ``old`` was made
        (``idx``: its columns' lines); the same answer."""
        lines, n, _, t0, nxt = old
        j = int(idx.searchsorted(i))
        units, expiry = self._units[i], float(self._expiry[i])
        if j < n and idx[j] == i:  # a line of the table: its column changes
            if units == 0.0:
                return None  # netted out: the table shrinks (a rebuild)
            new = lines.copy()
            new[:, j] = self._packed[:, i]
            if key >= 0:
                new[ROW_HOLDER, j] = 0.0
            self._cand_new[key + 1] = []
            return new, n, stamp, t0, nxt
        if units == 0.0 or expiry <= t0:  # not live in the table's clocks: same lines
            self._cand_new[key + 1] = []
            return lines.copy(), n, stamp, t0, nxt
        if j < n or t >= expiry:
            return None  # back in the book before its last line, or expired by t
        new = np.empty((N_ROWS, n + 1))
        new[:, :n] = lines
        new[:, n] = self._packed[:, i]
        if key >= 0:
            new[ROW_HOLDER, n] = 0.0
        self._cand[key + 1] = (np.append(idx, i), t0)
        self._cand_new[key + 1] = []
        return new, n + 1, stamp, t0, min(nxt, expiry)

    def holder_delta_gamma(
        self, holder: int, S: float, t: float, vol: VolSurface
    ) -> tuple[float, float]:
        """The event loop's hot path: share delta (shares) and share gamma (shares per $1)
        of ``holder``'s lines at spot ``S`` ($), clock ``t`` (s); no checks.

        Reads only ``holder``'s hot table. Exact (the same sums as :meth:`net_delta_gamma`,
        bit for bit) unless the book's ``delta_table`` mode tabulates this holder; then
        within 3/4 of a share of exact (:mod:`mmsim.delta_table`)."""
        hot = self._hot[holder]  # inlined _hot_lines: this is the hottest call of a run
        if hot is None or hot[2] != self._holder_version[holder] or not hot[3] <= t < hot[4]:
            self._hot_lines(holder, t)
            hot = self._hot[holder]
        lines, n = hot[0], hot[1]
        level, skew, floor = vol.level, vol.skew, vol.floor
        mode = self.delta_table
        if mode == "off" or n == 0 or (mode == "auto" and n < self.table_min_lines):
            # float(t): an int clock would compile holder_sum and reduce_lines again
            return holder_sum(S, float(t), self.year_seconds, lines, n, level, skew, floor,
                              self.r, self.q, self._one)  # fmt: skip
        table = self._tables[holder]
        if (  # the common case, inlined: a current table, nothing beside it, same surface
            table is not None
            and table.version == hot[2]
            and not (table.near_n or table.changes_n)
            and table.t0 <= t <= table.t0 + table.H
            and abs(S - table.center) <= table.half
            and level == table.level
            and skew == table.skew
            and floor == table.floor
        ):
            return table_eval(table.coef, (S - table.center) / table.half,
                              (t - table.t0) / table.H, table.H / self.year_seconds)  # fmt: skip
        return self._tabulated(holder, lines, n, S, t, level, skew, floor)

    def holder_evaluation(
        self, holder: int, S: float, t: float, level: float, skew: float, floor: float
    ) -> tuple[DeltaTable | None, float, float]:
        """How :meth:`holder_delta_gamma` answers for ``holder`` at spot ``S`` ($), clock
        ``t`` (s) and this surface, with its side effects (a table built, rolled or
        refreshed here): ``(table, until, next_expiry)``. ``table`` is the delta table it
        reads (valid at ``(S, t)``), or ``None`` when it sums the live lines exactly: then
        for as long as the book and the surface stay (``until`` inf), or until ``until``
        (s), when a table that failed validation is tried again. ``next_expiry`` (s): the
        first expiry among the live lines, where the choice is made again (the compiled
        fast path asks this once per window instead of once per check)."""
        lines, n = self._hot_lines(holder, t)
        nxt = self._hot[holder][4]
        mode = self.delta_table
        if mode == "off" or n == 0 or (mode == "auto" and n < self.table_min_lines):
            return None, math.inf, nxt
        table = self._table(holder, lines, n, S, t, level, skew, floor)
        return table, (math.inf if table is not None else self._retry[holder][1]), nxt

    def current_table(
        self, holder: int, level: float, skew: float, floor: float
    ) -> DeltaTable | None:
        """``holder``'s delta table when it is up to date with the holder's lines (a
        trade is folded into it when booked, :meth:`add`) and may answer on this surface:
        then :meth:`holder_evaluation` answers from it, with no side effect, at any spot
        and clock inside its window and before the next expiry of the holder's lines
        (the caller checks those); else ``None``."""
        table = self._tables[holder]
        if (
            table is None
            or table.version != self._holder_version[holder]
            or not table.fits_surface(level, skew, floor)
        ):
            return None
        return table

    def table_state(self, holder: int) -> tuple:
        """What :meth:`holder_evaluation` depends on besides spot and clock: the holder's
        table (compare with ``is``), its version and change count, and the retry mark."""
        table = self._tables[holder]
        if table is None:
            return None, -1, -1, self._retry[holder]
        return table, table.version, table.changes_n, self._retry[holder]

    def table_state_is(self, holder: int, seen: tuple) -> bool:
        """Whether :meth:`table_state` of ``holder`` is ``seen`` (the table by ``is``),
        without building the tuple (the fast path asks after every discrete event)."""
        table = self._tables[holder]
        if table is None:
            return seen[0] is None and seen[1:] == (-1, -1, self._retry[holder])
        return (
            table is seen[0]
            and table.version == seen[1]
            and table.changes_n == seen[2]
            and self._retry[holder] == seen[3]
        )

    def _tabulated(self, holder, lines, n, S, t, level, skew, floor) -> tuple[float, float]:
        """Delta and gamma of ``holder`` from its table, plus exact evaluation of the
        lines expiring soon and of every change booked since the table was built (as
        lines of the unit difference: delta is linear in units); rebuilt when those
        changes exceed ``TABLE_MAX_CHANGES`` lines or the table is no longer valid."""
        table = self._table(holder, lines, n, S, t, level, skew, floor)
        one = self._one
        if table is None:  # no table passes validation here: exact
            reduce_lines(S, t, self.year_seconds, lines, n, level, skew, floor, self.r, self.q,
                         False, one)  # fmt: skip
            return one[0, 0], one[1, 0]
        x, u = (S - table.center) / table.half, (t - table.t0) / table.H
        d, g = table_eval(table.coef, x, u, table.H / self.year_seconds)
        if table.near_n or table.changes_n:
            for extra, k in ((table.near, table.near_n), (table.changes, table.changes_n)):
                if k:
                    reduce_lines(S, t, self.year_seconds, extra, k, level, skew, floor,
                                 self.r, self.q, False, one)  # fmt: skip
                    d += one[0, 0]
                    g += one[1, 0]
        return d, g

    def _table(self, holder, lines, n, S, t, level, skew, floor) -> DeltaTable | None:
        """``holder``'s table, valid at ``(S, t)`` and this surface, with its change lines
        up to date: the current one, or one built now; ``None`` when no build passes
        validation (retried after :func:`~mmsim.delta_table.retry_after`)."""
        table = self._tables[holder]
        hv = self._holder_version[holder]
        ok = table is not None and table.valid(S, t, level, skew, floor)
        if ok and table.version != hv and not self._refresh_changes(holder, table, hv):
            ok = False
        if not ok:
            table = None
            if self._retry[holder][0] != hv or t >= self._retry[holder][1]:
                old = self._tables[holder]
                if self._rolls_on(holder, old, hv, S, t, level, skew, floor, lines, n):
                    fit = ((old.coef.shape[1], old.H),)  # the fit that passed: only it
                    table = build_table(lines, n, hv, old.center, old.t0 + old.H,
                                        self.year_seconds, level, skew, floor, self.r, self.q,
                                        start=old, attempts=fit)  # fmt: skip
                    if table is not None and (
                        not table.valid(S, t, level, skew, floor)
                        or (old.sample_ok and not table.sample_ok)
                    ):
                        table = None
                    if table is not None:
                        self.table_rolls += 1
                        table.chain_t0 = old.t0 if math.isnan(old.chain_t0) else old.chain_t0
                if table is None:
                    table = build_table(lines, n, hv, S, t, self.year_seconds, level, skew,
                                        floor, self.r, self.q)  # fmt: skip
                self.table_builds += 1
                self._touched[holder] = []
                if table is None:
                    self._retry[holder] = (hv, retry_after(t))
                else:
                    table.snap = self._units[: self._n].copy()
                    table.snap_vis = self._vis_w[: self._n].copy()
            self._tables[holder] = table
        return table

    def _rolls_on(self, holder, old, hv, S, t, level, skew, floor, lines, n) -> bool:
        """Whether ``holder``'s table ``old``, whose clock ran out, rolls on from its end
        (``build_table(start=old)``, its node values at its end reused) with its own fit
        (nodes, ``H``), instead of a build that tries every fit: its lines are the
        holder's (the trades booked since folded into it first; those left beside it
        expire by its near cut, so they are near lines of the next table too), its
        window ended less than ``H`` ago, spot is within half its grid of its center, the
        surface is its own, and it started less than a trading day after the build that
        tried every fit (so a longer fit that passes again, e.g. after an expiry, is
        found at least once a day; a whole-session table rolls on once), and at most
        :data:`ROLL_MAX_TURNING` of ``lines`` (its ``n`` live lines) turn near by the next
        table's near cut (more, e.g. the 0DTE lines, leave the fit smoother: a longer fit
        may pass)."""
        if (
            old is None
            or not old.t0 + old.H < t <= old.t0 + 2.0 * old.H
            or abs(S - old.center) > 0.5 * old.half
            or (old.level, old.skew, old.floor) != (level, skew, floor)
        ):
            return False
        first = old.t0 if math.isnan(old.chain_t0) else old.chain_t0
        if old.t0 - first >= self.year_seconds / 252.0:
            return False  # a chain of rolls a trading day long: try every fit again
        if old.version != hv and not self._refresh_changes(holder, old, hv):
            return False
        if old.far_n < 0:
            return False
        cut = near_cut(old.t0 + old.H, old.H, self.year_seconds)
        expiry = lines[ROW_EXPIRY, :n]
        turning = np.count_nonzero((expiry > old.near_cut) & (expiry <= cut))
        return turning <= ROLL_MAX_TURNING * n

    def _refresh_changes(self, holder: int, table: DeltaTable, hv: int) -> bool:
        """Bring ``table`` up to date with the lines ``holder`` booked since the build, as
        unit differences from its snapshot (delta is linear in units): those expiring
        after the table's near cut are folded into its fit (:func:`~mmsim.delta_table.
        fold_lines`: O(changes x nodes), not a rebuild's O(lines x nodes)), the others
        are evaluated exactly beside it. False (the table must be rebuilt) when the refit
        fails validation or more than ``TABLE_MAX_CHANGES`` such exact lines pile up."""
        touched = self._touched[holder]
        if len(touched) == 1:  # one trade since: the common case
            idx = np.array(touched, dtype=np.int64)
        else:
            idx = np.asarray(sorted(set(touched)), dtype=np.int64)  # np.unique
        if table.snap.size < self._n:  # lines booked after the build: room to grow
            grow = max(self._n, 2 * table.snap.size) - table.snap.size
            table.snap = np.concatenate([table.snap, np.zeros(grow)])
            table.snap_vis = np.concatenate([table.snap_vis, np.zeros(grow)])
        ok, changes, idx = fold_booked(table, idx, self._packed, self.year_seconds, self.r,
                                       self.q)  # fmt: skip
        if not ok:
            return False
        self._touched[holder] = idx.tolist()
        if idx.size > TABLE_MAX_CHANGES:
            return False
        table.changes, table.changes_n, table.version = changes, idx.size, hv
        return True

    def sample_greeks(self, S: float, t: float, vol: VolSurface, out: np.ndarray) -> tuple:
        """Per-holder share delta, gamma, charm (per year), vanna (per 1.00 of vol) and
        value ($) into rows 0-4 of ``out`` (shape ``(5, n_holders)``), in one pass; returns
        ``(gex_true, gex_visible)`` at ``S``, $ per 1% move. Equal, bit for bit, to
        :meth:`flow_greeks`, :meth:`value` and :meth:`gex_at` in both views."""
        lines, n = self._live_lines(float(t))
        return reduce_lines(float(S), float(t), self.year_seconds, lines, n,
                            *self._surface(vol), True, out)  # fmt: skip

    def series_greeks(self, S: float, t: float, vol: VolSurface, out: np.ndarray) -> tuple:
        """What the series recorder samples: :meth:`sample_greeks` (same rows of ``out``,
        same return), exact and equal to it bit for bit unless the ``delta_table`` mode
        tabulates a holder (``"on"``, or ``"auto"`` with ``table_min_lines`` live lines).
        Such a holder's greeks come from its delta table (:func:`~mmsim.delta_table.
        table_sample`: delta within 3/4 of a share, value within ``value_tol`` $ (or
        ``recorded_tol``, the sampler's last resort: :meth:`DeltaTable.sample_table`), gamma,
        charm, vanna and the visible gamma within 1% of their scale, at validated points),
        plus the exact sums of its lines expiring soon and booked since the build; exactly
        when its table cannot answer (none validated, spot off its grid, another vol
        level). Cost: O(holders) per sample for tabulated holders, whatever their lines."""
        mode = self.delta_table
        S, t = float(S), float(t)
        least = 1 if mode == "on" else self.table_min_lines
        if mode == "off" or self._live_lines(t)[1] < least:  # no holder can be tabulated
            return self.sample_greeks(S, t, vol, out)
        hots = [self._hot_lines(h, t) for h in range(self.n_holders)]
        if all(k < least for _, k in hots):
            return self.sample_greeks(S, t, vol, out)
        level, skew, floor = vol.params()
        ys, r, q, one = self.year_seconds, self.r, self.q, self._one
        acc_true = acc_vis = 0.0
        for h, (lines, n) in enumerate(hots):
            table = None
            if n >= least:
                table = self._table(h, lines, n, S, t, level, skew, floor)
                if table is not None and not table.samples(S, t, level, skew, floor):
                    table = None
            if table is None:
                gt, gv = reduce_lines(S, t, ys, lines, n, level, skew, floor, r, q, True, one)
                out[:, h] = one[:, 0]
                acc_true += gt
                acc_vis += gv
                continue
            rows = table.sample_table()  # this table, or its sampler split
            x, u = (S - table.center) / table.half, (t - table.t0) / table.H
            d, g, c, va, v, vis = table_sample(rows.coef, rows.scoef, x, u, table.H / ys)
            out[:, h] = (d, g, c, va, v)
            self.table_samples += 1
            scale = S * S * GEX_PER_PCT
            acc_true += g * scale
            acc_vis += vis * scale
            for extra, k in ((rows.near, rows.near_n), (table.changes, table.changes_n)):
                if k:
                    gt, gv = reduce_lines(S, t, ys, extra, k, level, skew, floor, r, q, True,
                                          one)  # fmt: skip
                    out[:, h] += one[:, 0]
                    acc_true += gt
                    acc_vis += gv
        return acc_true, acc_vis

    def series_greeks_many(
        self, times: np.ndarray, mids: np.ndarray, vol: VolSurface, greeks: np.ndarray,
        gex: np.ndarray,
    ) -> None:  # fmt: skip
        """:meth:`series_greeks` of samples ``j`` at spot ``mids[j]`` ($) and clock
        ``times[j]`` (s, non-decreasing) into ``greeks[j]`` (shape ``(m, 5, n_holders)``)
        and ``gex[j]`` (true, visible; $ per 1%), the book and the surface fixed: the same
        rows and side effects (tables built, rolled or refreshed at the same samples),
        bit for bit, in compiled passes over runs of samples where each holder's answer
        keeps its kind (:mod:`mmsim.series_tables`)."""
        from mmsim.sampler import batch_greeks  # the exact batch (sampler imports book)

        m = times.size
        mode = self.delta_table
        least = 1 if mode == "on" else self.table_min_lines
        level, skew, floor = vol.params()
        surf = (level, skew, floor, self.r, self.q)
        ys, nh = self.year_seconds, self.n_holders
        parts, present = np.zeros((m, nh, 3, 2)), np.zeros((m, nh, 3), dtype=np.bool_)
        none = np.zeros((N_ROWS, 1))
        e0 = 0
        while e0 < m:  # epochs: the live and hot tables stay (no line expires within)
            t = float(times[e0])
            lines, n = self._live_lines(t)
            nxt = self._live[4]
            hots = [self._hot_lines(h, t) for h in range(nh)]
            nxt = min([nxt, *(self._hot[h][4] for h in range(nh))])
            e1 = e0 + 1 + int(np.searchsorted(times[e0 + 1 :], nxt, side="left"))
            if mode == "off" or n < least or all(k < least for _, k in hots):
                batch_greeks(times[e0:e1], mids[e0:e1], ys, lines, n, *surf, greeks[e0:e1],
                             gex[e0:e1])  # fmt: skip
                e0 = e1
                continue
            for h, (hl, hn) in enumerate(hots):
                j = e0
                while j < e1:
                    table, end, window = self._series_run(h, hl, hn, j, e1, times, mids,
                                                          level, skew, floor, least)  # fmt: skip
                    if table is None:
                        end = holder_rows(j, end, times, mids, h, False, none, none, 0.0, 1.0,
                                          0.0, 1.0, ys, hl, hn, none, 0, none, 0, *surf,
                                          *window, greeks, parts, present)  # fmt: skip
                    else:
                        rows = table.sample_table()  # this table, or its sampler split
                        end = holder_rows(j, end, times, mids, h, True, rows.coef, rows.scoef,
                                          table.center, table.half, table.t0, table.H, ys, hl,
                                          hn, rows.near, rows.near_n, table.changes,
                                          table.changes_n, *surf, *window, greeks, parts,
                                          present)  # fmt: skip
                        self.table_samples += end - j
                    j = end
            sum_gex(e0, e1, parts, present, gex)
            e0 = e1

    def _series_run(self, h, lines, n, j, e1, times, mids, level, skew, floor, least) -> tuple:
        """From sample ``j`` on (before ``e1``), how :meth:`series_greeks` answers for holder
        ``h`` (``lines``, ``n``: its hot table): ``(table, end, window)``, the table it
        samples (``None``: exact) at samples ``j .. end - 1`` as long as they stay in
        ``window`` (:func:`~mmsim.series_tables.holder_rows`: clocks, spot center and
        half-width; its table's validity), with the side effects of its call at sample
        ``j``; at later samples of the run the same call changes nothing (the table stays
        valid, or a failed build is not retried before its mark)."""
        S, t = float(mids[j]), float(times[j])
        if n < least:
            return None, e1, _ALWAYS
        table = self._tables[h]
        if (  # up to date and valid here: what _table answers, with no side effect
            table is not None
            and table.version == self._holder_version[h]
            and table.valid(S, t, level, skew, floor)
        ):
            window = (table.t0, table.t0 + table.H, table.center, table.half)
            rows = table.sample_table() is not None and level == table.level  # .samples()
            return (table if rows else None), e1, window
        table = self._table(h, lines, n, S, t, level, skew, floor)
        if table is None:  # tried again from the retry mark on
            if self._retry[h][0] != self._holder_version[h]:
                return None, j + 1, _ALWAYS
            later = times[j + 1 : e1]
            end = j + 1 + int(np.searchsorted(later, self._retry[h][1], side="left"))
            return None, end, _ALWAYS
        window = (table.t0, table.t0 + table.H, table.center, table.half)
        return (table if table.samples(S, t, level, skew, floor) else None), e1, window

    def value(
        self, S: float, t: float, vol: VolSurface, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Per-holder mark-to-market value, $ (``qty * multiplier * price``); expired lines 0."""
        if out is None:
            out = np.zeros(self.n_holders)
        if out.shape != (self.n_holders,):
            raise ValueError(f"out must have shape ({self.n_holders},)")
        self.sample_greeks(S, t, vol, self._scratch)
        out[:] = self._scratch[4]
        return out

    def close_values(self, S: float, t: float, vol: VolSurface) -> np.ndarray:
        """Per-holder mark-to-market value ($) at spot ``S`` ($), clock ``t`` (s), for the
        result's ``pnl_after_close``: :meth:`value`, except that a holder whose delta table
        is up to date with its lines and samples at ``(S, t)`` (:meth:`DeltaTable.samples
        <mmsim.delta_table.DeltaTable.samples>`) is valued as the series sampler values it
        there (:func:`~mmsim.delta_table.table_sample` plus its near lines and changes
        priced exactly): within the table's value tolerance (``tol_value``,
        :func:`~mmsim.delta_table.value_tol` of its gross value; ``recorded_tol`` when it
        is the sampler's last resort), as the sampled ``<dealer>.pnl`` is, instead of
        pricing every line once more (0.6 ms on 10,000 lines). Never builds or refreshes a
        table; the other holders' values are :meth:`value`'s, bit for bit (the whole book
        priced once if any holder has no such table: ``delta_table: off``, small books)."""
        S, t = float(S), float(t)
        level, skew, floor = vol.params()
        tables = []
        for h in range(self.n_holders):
            table = None if self.delta_table == "off" else self._tables[h]
            if table is not None and (
                table.version != self._holder_version[h]
                or not table.samples(S, t, level, skew, floor)
            ):
                table = None
            tables.append(table)
        if any(table is None for table in tables):
            out = self.value(S, t, vol)
        else:
            out = np.zeros(self.n_holders)
        ys, r, q, one = self.year_seconds, self.r, self.q, self._one
        for h, table in enumerate(tables):
            if table is None:
                continue
            rows = table.sample_table()  # this table, or its sampler split
            x, u = (S - table.center) / table.half, (t - table.t0) / table.H
            out[h] = table_sample(rows.coef, rows.scoef, x, u, table.H / ys)[4]
            for extra, k in ((rows.near, rows.near_n), (table.changes, table.changes_n)):
                if k:
                    reduce_lines(S, t, ys, extra, k, level, skew, floor, r, q, True, one)
                    out[h] += one[4, 0]
        return out

    def flow_greeks(self, S: float, t: float, vol: VolSurface, out: np.ndarray) -> np.ndarray:
        """Per-holder share delta, gamma, charm (per year) and vanna (per 1.00 of vol) into
        ``out`` of shape ``(4, n_holders)``: what moves a dealer's delta with spot, time and
        implied vol (the hedge-flow decomposition)."""
        self.sample_greeks(S, t, vol, self._scratch)
        out[:] = self._scratch[:4]
        return out

    # -- GEX ------------------------------------------------------------------------------
    def _row(self, view: str) -> int:
        if view == "true":
            return ROW_UNITS
        if view == "visible":
            return ROW_VIS_W
        raise ValueError(f"view must be one of {_VIEWS}, got {view!r}")

    def _gargs(self, t: float, vol: VolSurface, view: str) -> tuple:
        """Arguments of the GEX kernels after the spot(s): clock to dividend yield."""
        lines, n = self._live_lines(float(t))
        return (float(t), self.year_seconds, lines, n, self._row(view),
                *self._surface(vol))  # fmt: skip

    def gex_at(self, S: float, t: float, vol: VolSurface, view: str = "true") -> float:
        """Net GEX of the book at spot ``S``, $ per 1% move."""
        S = float(S)
        return gamma_sum(S, *self._gargs(t, vol, view)) * S * S * GEX_PER_PCT

    def gex_profile(self, spots, t: float, vol: VolSurface, view: str = "true") -> np.ndarray:
        """Net GEX re-priced at each hypothetical spot, $ per 1% move at that spot.

        The surface is held fixed (same level, skew, floor; each line at
        ``surface_iv(K, spot)`` plus its offset), and so is the clock ``t``.
        """
        spots = np.ascontiguousarray(spots, dtype=np.float64).ravel()
        out = np.empty(spots.size)
        profile_gamma(spots, *self._gargs(t, vol, view), out)
        return out

    def flip(
        self, S: float, t: float, vol: VolSurface, view: str = "true", spots=None
    ) -> float | None:
        """Gamma flip, $: the zero crossing of the GEX profile nearest to ``S``, linearly
        interpolated between grid points; ``None`` if the profile never changes sign.

        ``spots`` (increasing) defaults to ``S * linspace(0.7, 1.3, 241)``; on that default
        grid the profile is evaluated only from ``S`` outwards, as far as a nearer crossing
        could still be (:func:`~mmsim.book_kernels.nearest_flip`): the same value, bit for
        bit, at a fraction of the 241 evaluations when the flip is near spot.
        """
        if spots is None:
            return self.flips(S, t, vol)[_VIEWS.index(self._check_view(view))]
        grid = np.asarray(spots, float)
        if grid.size > 1 and not np.all(np.diff(grid) > 0):
            raise ValueError("spots must be strictly increasing")
        return _nearest_crossing(grid, self.gex_profile(grid, t, vol, view), float(S))

    def flips(
        self, S: float, t: float, vol: VolSurface, tol: float = 0.0
    ) -> tuple[float | None, float | None]:
        """``(true flip, visible flip)`` on the default grid, $ (see :meth:`flip`), from one
        walk-out that prices each line once per grid point for both views. ``tol`` (a
        fraction of the grid step, tabulated books): a crossing may be interpolated from
        the profile table's values where that is proven within ``tol`` of a step of the
        exact one (:func:`~mmsim.profile_table.walk_flips`); 0: exact, bit for bit."""
        S, t = float(S), float(t)
        lines, n = self._live_lines(t)
        if self.tabulates(t):
            found = self._table_flips(S, t, vol, lines, n, tol)
            if found is not None:
                return found
        ft, xt, fv, xv = nearest_flips(
            S * _FLIP_GRID, _FLIP_MID, S, float(t), self.year_seconds, lines, n,
            *self._surface(vol),
        )  # fmt: skip
        return (float(xt) if ft else None), (float(xv) if fv else None)

    def profile_table(
        self, S: float, t: float, surface: tuple, fold: bool = False
    ) -> ProfileTable | None:
        """The flips' profile table (:mod:`mmsim.profile_table`) if it may answer at spot
        ``S`` ($), clock ``t`` (s) and ``surface`` (:meth:`_surface`), its ``extra`` lines
        brought up to date with the lines booked since its build; ``None`` when there is
        none, it does not cover ``(S, t, surface)`` or more than ``MAX_CHANGES`` lines
        changed (then :meth:`flips` builds a new one). With ``fold``, more than
        ``MAX_CHANGES`` changed lines are first folded into the table where they expire
        after its near cut (:meth:`_fold_profile`), instead of a build."""
        tab = self._profile
        if tab is None or not tab.valid(S, t, surface):
            return None
        if tab.book_version != self._version:
            touched = self._profile_touched
            if np.unique(np.asarray(touched[tab.mark :], dtype=np.int64)).size > MAX_CHANGES:
                if not fold or not self._fold_profile(tab):
                    return None
            idx = np.unique(np.asarray(self._profile_touched, dtype=np.int64))
            changes = self._profile_changes(tab, idx)
            tab.extra = np.ascontiguousarray(np.hstack([tab.near, changes]))
            tab.n_extra, tab.book_version = tab.extra.shape[1], self._version
        return tab

    def _profile_changes(self, tab: ProfileTable, idx: np.ndarray) -> np.ndarray:
        """Lines ``idx`` as the unit differences (true and visible weights) from the
        table's snapshot to now: what the table lacks of them."""
        changes = take_lines(self._packed, idx)
        for row, snap, now in ((ROW_UNITS, tab.snap_units, self._units),
                               (ROW_VIS_W, tab.snap_vis, self._vis_w)):  # fmt: skip
            before = np.where(idx < snap.size, snap[np.minimum(idx, snap.size - 1)], 0.0)
            changes[row] = now[idx] - before
        return changes

    def _fold_profile(self, tab: ProfileTable) -> bool:
        """Fold the lines changed since the table's snapshot that expire after its near
        cut into it (:func:`~mmsim.profile_table.fold_profile`), their snapshot brought
        to now, so that only the near ones stay changes (summed exactly beside the
        table, as its near lines are); whether it worked with at most ``MAX_CHANGES``
        left (else the caller builds anew). Like a build, it starts the count of lines
        changed since (``tab.mark``), so the table answers as long as a rebuilt one would
        while it covers the clock and spot."""
        idx = np.unique(np.asarray(self._profile_touched, dtype=np.int64))
        changes = self._profile_changes(tab, idx)
        far = changes[ROW_EXPIRY] > tab.near_cut
        if (~far).sum() > MAX_CHANGES or not far.any():
            return False
        if not fold_profile(tab, take_lines(changes, far), self.year_seconds):
            return False
        done = idx[far]
        for name, now in (("snap_units", self._units), ("snap_vis", self._vis_w)):
            snap = getattr(tab, name)
            grown = np.zeros(max(self._n, snap.size))
            grown[: snap.size] = snap
            grown[done] = now[done]
            setattr(tab, name, grown)
        self._profile_touched = idx[~far].tolist()
        tab.mark = len(self._profile_touched)
        self.profile_folds += 1
        return True

    def _table_flips(
        self, S: float, t: float, vol: VolSurface, lines, n, tol: float = 0.0
    ) -> tuple | None:
        """:meth:`flips` from the profile table (:mod:`mmsim.profile_table`): the same
        values, pricing the whole book only where the table leaves a sign in doubt and
        around the crossings; ``None`` when no table can answer (then the walk-out)."""
        surface = self._surface(vol)
        tab = self.profile_table(S, t, surface, fold=True)
        if tab is None:
            self._profile = None
            if self._profile_retry[0] == self._version and t < self._profile_retry[1]:
                return None
            tab = build_profile(lines, n, S, t, self.year_seconds, surface)
            self.profile_builds += 1
            self._profile_touched = []
            if tab is None:
                self._profile_retry = (self._version, t + 600.0)
                return None
            tab.snap_units = self._units[: self._n].copy()
            tab.snap_vis = self._vis_w[: self._n].copy()
            tab.extra, tab.n_extra, tab.book_version = tab.near, tab.near.shape[1], self._version
            self._profile = tab
        u = (t - tab.t0) / tab.H
        ft, xt, fv, xv, bad = table_flips(
            S * _FLIP_GRID, _FLIP_MID, S, t, u, tab.center, tab.half, tab.coef, tab.eps, tab.extra,
            tab.n_extra, self.year_seconds, lines, n, *surface, float(tol),
        )  # fmt: skip
        if bad:  # a sign the table got wrong: the full computation answers
            self.profile_misses += 1
            return None
        self.profile_flips += 1
        return (float(xt) if ft else None), (float(xv) if fv else None)

    def _check_view(self, view: str) -> str:
        self._row(view)  # raises on an unknown view
        return view

    def _by_strike(self, S: float, t: float, vol: VolSurface, view: str):
        """Unique live strikes, call GEX, put GEX, has-call and has-put masks (owned by a
        cache: read, never write). The last answer per view is kept for the same live
        table, spot, clock and surface (the recorder asks for walls and the GEX at them
        at one instant), and the strikes' grouping for as long as the live table lasts."""
        args = self._gargs(t, vol, view)  # the live lines
        lines, n, row = args[2], args[3], args[4]
        key = (float(S), args[0], args[5:])
        hit = self._strike_cache.get(view)
        if hit is not None and hit[0] is lines and hit[1] == key:
            return hit[3]
        if hit is not None and hit[0] is lines:
            live, calls, strikes, inv = hit[2]
        else:
            live = lines[row, :n] != 0.0
            calls = lines[ROW_IS_CALL, :n][live] != 0.0
            strikes, inv = np.unique(lines[ROW_STRIKE, :n][live], return_inverse=True)
        gam = self._line_gammas
        if gam is None or gam[0] is not lines or gam[1] != key:  # one pricing, both views
            unit = np.empty(n)
            line_gamma(float(S), args[0], args[1], lines, n, *args[5:], unit)
            gam = self._line_gammas = (lines, key, unit)
        g = lines[row, :n] * gam[2] * (float(S) * float(S) * GEX_PER_PCT)
        g, m = g[live], strikes.size
        call_gex = np.bincount(inv, weights=np.where(calls, g, 0.0), minlength=m)
        put_gex = np.bincount(inv, weights=np.where(calls, 0.0, g), minlength=m)
        has_call = np.bincount(inv, weights=calls.astype(float), minlength=m) > 0
        has_put = np.bincount(inv, weights=(~calls).astype(float), minlength=m) > 0
        out = strikes, call_gex, put_gex, has_call, has_put
        self._strike_cache[view] = (lines, key, (live, calls, strikes, inv), out)
        return out

    def gex_views_at(self, S: float, t: float, vol: VolSurface) -> tuple[float, float]:
        """``(true, visible)`` net GEX of the book at spot ``S``, $ per 1% move: equal, bit
        for bit, to :meth:`gex_profile` at ``[S]`` in each view, from one pricing of
        each line."""
        S = float(S)
        lines, n = self._live_lines(float(t))
        out = np.empty((2, 1))
        gamma_pair(np.array([S]), float(t), self.year_seconds, lines, n, *self._surface(vol),
                   out)  # fmt: skip
        return out[0, 0] * S * S * GEX_PER_PCT, out[1, 0] * S * S * GEX_PER_PCT

    def gex_by_strike(
        self, S: float, t: float, vol: VolSurface, view: str = "true"
    ) -> pd.DataFrame:
        """GEX per strike at spot ``S``, $ per 1% move: columns ``strike, call_gex, put_gex,
        net_gex``, sorted by strike, one row per strike with a live (unexpired, non-zero) line.

        ``view="true"``: all lines (OTC included), signed by the holders' ``qty``.
        ``view="visible"``: exchange-listed lines only, open interest ``|qty|`` signed by the
        convention (``call_sign`` for calls, ``put_sign`` for puts), as an analyst would see it.
        """
        strikes, call_gex, put_gex, _, _ = (a.copy() for a in self._by_strike(S, t, vol, view))
        import pandas as pd

        net = call_gex + put_gex
        return pd.DataFrame(
            {"strike": strikes, "call_gex": call_gex, "put_gex": put_gex, "net_gex": net}
        )

    def walls(
        self, S: float, t: float, vol: VolSurface, view: str = "true"
    ) -> tuple[float | None, float | None]:
        """``(call_wall, put_wall)``: strikes with the largest ``|call GEX|`` and ``|put GEX|``.

        ``|.|`` is used for both, so the true view (dealers short calls: negative call GEX)
        finds the same concentration the visible view does; in the visible convention call
        GEX is positive, so this is DESIGN's "largest call GEX". Only unexpired lines count;
        ``None`` when there is no call (put) line; ties go to the lowest strike.
        """
        strikes, call_gex, put_gex, has_call, has_put = self._by_strike(S, t, vol, view)

        def pick(gex: np.ndarray, has: np.ndarray) -> float | None:
            if not has.any():
                return None
            return float(strikes[np.argmax(np.where(has, np.abs(gex), -1.0))])

        return pick(call_gex, has_call), pick(put_gex, has_put)

    def strike_gex(
        self, S: float, t: float, vol: VolSurface, strike: float, view: str = "true"
    ) -> float:
        """Net GEX of the live lines struck at ``strike`` only, at spot ``S``, $ per 1%."""
        strikes, call_gex, put_gex, _, _ = self._by_strike(S, t, vol, view)
        hit = np.flatnonzero(np.isclose(strikes, strike, rtol=0.0, atol=1e-9))
        return float(call_gex[hit].sum() + put_gex[hit].sum())

    def lines(self, iv_offset: bool = False) -> pd.DataFrame:
        """The book as a table (copies): strike, expiry, is_call, qty, holder, visible,
        multiplier, and with ``iv_offset=True`` the lines' vol offsets."""
        import pandas as pd

        cols = {c: getattr(self, a)[: self._n].copy() for c, a in _COLUMNS.items()}
        if iv_offset:
            cols["iv_offset"] = self._iv_off[: self._n].copy()
        return pd.DataFrame(cols)
