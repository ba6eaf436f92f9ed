"""Glue between the simpy loop and the compiled fast path (:mod:`mmsim.fastpath`).

With ``engine.fast_path`` on (or ``auto`` and the scenario supported, :func:`unsupported`)
the news, the noise trader, the dealers and the series recorder are not simpy processes:
one process, :meth:`HotLoop.process`, runs the kernel from one discrete event (a
customer, a pension child order, a scheduled event, an expiry, a vol update) to the
next, with the market, ledger, dealers' counters and random-number blocks in arrays, and
hands the state back to the Python objects (``Market``, ``Ledger``, ``DealerAgent``,
``NoiseTrader``) before every discrete event, which then sees exactly what it would have
seen on the simpy path. A discrete event that changes the market or the book wakes the
dealers as ``Market.notify`` would. A limit order book (``market.model: book``) runs
there too, its liquidity flow one more source of the kernel and dealers' market or limit
orders walking or resting in it (:mod:`mmsim.lobpath`, :mod:`mmsim.lobhot`); limit
orders worked over time (``market.book.work``) stay on the simpy agents.

Samples: the kernel records, at each sample instant (before every other event of that
instant, as the recorder's urgent timeouts), the state a sample reads that changes
within a segment (mid, market volume, the dealers' shares, cash and hedge volume); the
rows are then filled from those states in one batch by the sampler the simpy path uses
row by row (:meth:`HotLoop._replay`, :meth:`mmsim.sampler.Sampler.fill`), so the series
is the simpy path's, column for column.

Tabulated books (``engine.delta_table``): the kernel reads a dealer's delta table
(coefficients, near and changed lines, validity window: spot range, time span, next
expiry of its lines) as the book would (:meth:`HotLoop._sync`, through
``OptionBook.holder_evaluation``); a check or a sample where it is not valid stops the
kernel (``NEED_TABLE``), the book builds, rolls or refreshes the table exactly where the
simpy agents' check or sampler would, and the kernel resumes the interrupted check. So
the run is the simpy path's, bit for bit, at any book size, and a check costs the same
at 10 or 10,000 lines. A discrete event reloads a dealer's evaluation only when the book
changed it: another dealer's trade leaves it (:meth:`HotLoop._kept`), and a table the
book brought up to date at booking (a customer trade folded in) is loaded as it stands
(:meth:`HotLoop._current`), without a stop.

Order of same-instant events: simpy plays the events of one instant in the order they
were scheduled (time, priority, event id), so a news tick, a noise order or a dealer's
timeout can come before or after a discrete event at its instant (a pension's child
order landing on a tick: which was scheduled first?). The kernel numbers its timeouts
from simpy's own event counter (``env._eid``: drawn before a kernel call, handed back
after it), the first ones where the simpy agents' processes would draw them at t = 0
(:attr:`HotLoop.sources`, then the dealers at the HotLoop's place), and places the
dealers that a price change or their own ``timeout(0)`` resumes between the ids drawn
so far and the next (``fastpath.Q_RSEQ``); discrete events take their ids from simpy as
always. Both kinds are so numbered in the order they were scheduled, as on the simpy
path (where everything was played in the same order up to then).
:meth:`HotLoop.process` runs the kernel up to the next discrete event *and its id*: at
that instant the kernel plays what has a smaller id (and no dealer resuming later),
stops, and resumes right after the discrete event (an event at id + 0.5). Urgent events
(a chunk's stop, the process starts) come before all of the kernel's at their instant.
Discrete events that change the market wake the dealers when the kernel resumes, placed
then: the same order as simpy's (which draws the id at the change) because no discrete
process schedules anything at the same instant after changing the market (a new one
that did would have to tell the kernel where the change fell).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Generator
from heapq import heappush
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy
from simpy.core import NORMAL, URGENT

from mmsim import fastpath as fp
from mmsim.errors import InstabilityError
from mmsim.lob import BookMarket
from mmsim.lobhot import BookState
from mmsim.lobpath import BOOK_SAMPLE, ST_FSEQ, ST_LOOK
from mmsim.market import SqrtImpact
from mmsim.pauses import next_event
from mmsim.record import timeout_clock
from mmsim.run_env import stop_now
from mmsim.schema import Scenario
from mmsim.table_load import load_table_row, pack_table

if TYPE_CHECKING:
    from mmsim.engine import Simulation

__all__ = ["HotLoop", "fast_path_enabled", "unsupported"]

_FILLS = 1 << 14  # fill rows per flush
_SAMPLES = 2048  # sample rows per replay (a batch of the sampler; 2,340 a day at 10 s)


def unsupported(sc: Scenario) -> str | None:
    """Why the fast path cannot run ``sc`` (``"field: reason"``), or ``None``. Ties
    between the kernel's events and discrete ones are no reason: the kernel breaks them
    as simpy would (module docstring)."""
    mk = sc.market
    if mk.model != "book" and mk.transient.fraction != 0.0:
        return "market.transient.fraction: transient impact runs on the simpy path"
    for i, d in enumerate(sc.dealers):
        if d.order != "market" and mk.model != "book":
            return f"dealers[{i}].order: limit orders run on the simpy path"
        if d.order != "market" and mk.book.work is not None:
            return "market.book.work: limit orders worked over time run on the simpy path"
    return None


def fast_path_enabled(sc: Scenario) -> bool:
    """Whether a run of ``sc`` uses the fast path (``engine.fast_path``; ``on`` with an
    unsupported scenario is refused when the scenario is validated)."""
    mode = sc.engine.fast_path
    return mode != "off" and unsupported(sc) is None


def _at(
    env: simpy.Environment, when: float, priority: int = NORMAL, eid: float | None = None
) -> simpy.Event:
    """An event at the absolute clock time ``when`` (s), without the rounding of
    ``now + (when - now)`` that a timeout would bring; ``eid``: its place in simpy's
    order (default: the next event id)."""
    event = simpy.Event(env)
    event._ok = True
    event._value = None
    heappush(env._queue, (when, priority, next(env._eid) if eid is None else eid, event))
    return event


def _after(env: simpy.Environment, head: tuple) -> simpy.Event:
    """An event right after ``head`` (an entry of simpy's queue: time, priority, id,
    event) and before whatever simpy would play next: id + 0.5, between two ids."""
    return _at(env, head[0], head[1], head[2] + 0.5)


_LAST = 1 << 62  # an event id above all: the kernel plays everything at its horizon


class HotLoop:
    """Array state of the high-frequency agents of one :class:`Simulation` and the simpy
    process that advances it (module docstring)."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        sc, market = sim.scenario, sim.market
        impact = getattr(market, "impact", None)
        self.mk = mk = np.zeros(fp.MK_SIZE)
        mk[fp.MK_HALF] = getattr(market, "half_spread", 0.0)
        if isinstance(market, BookMarket):
            mk[fp.MK_MODEL] = 2.0
        elif isinstance(impact, SqrtImpact):
            mk[fp.MK_MODEL] = 1.0
            mk[fp.MK_Y], mk[fp.MK_DVOL], mk[fp.MK_ADV] = impact.Y, impact.daily_vol, impact.adv
        else:
            mk[fp.MK_LAM] = impact.lam
        from mmsim.engine import PRICE_CEILING  # engine imports this module

        mk[fp.MK_CEIL] = PRICE_CEILING * sc.market.S0
        self.duration = sc.clock.duration
        # news: the first tick at dt, or a phase's timeout first (then ticks from there);
        # a block is drawn when the first tick is due
        self.news = np.zeros(6)
        self.z = np.zeros(0)
        news = sim.news
        if news is not None and news.scale > 0.0:
            cfg = news.config
            on, first = (fp.NEWS_PHASE, 0.0 + cfg.phase) if cfg.phase > 0.0 else (1.0, cfg.dt)
            self.news[:] = (on, first, cfg.dt, news.scale, _inf(cfg.stop), 0.0)
        # noise: its first block (and gap) drawn now, as the simpy process would at t=0
        self.noise = np.zeros(6)
        nd = len(sim.dealers)
        noise = sim.noise
        if noise is not None and noise.config.rate > 0.0:
            noise.refill()
            self.noise[:] = (1.0, 0.0 + noise.gaps[0], _inf(noise.config.stop), noise.account,
                             0.0, 0.0)  # fmt: skip
        self.dl = np.zeros((max(nd, 1), fp.D_SIZE))[:nd]
        # the run-queue slots' event ids follow the queues (fp.Q_RSEQ)
        self.q = np.zeros(fp.Q_SIZE + nd, dtype=np.int64)
        # simpy's order of the first timeouts: the news tick, the noise order, then each
        # scheduled dealer's phase (the processes start in that order, _start)
        self.q[fp.Q_NSEQ], self.q[fp.Q_ZSEQ], self.q[fp.Q_SEQ] = 0, 1, 2
        # a book's liquidity flow starts after them (mmsim.lobhot)
        self.lob = (
            BookState(market, sim.liquidity, sim.dry_outs, 2)  # type: ignore[arg-type]
            if isinstance(market, BookMarket)
            else None
        )
        self.bk = None if self.lob is None else self.lob.bk  # None: no book code compiled
        self.q[fp.Q_SEQ] += self.lob is not None
        watch = sim.book.n_holders > 1
        waiting = []
        for i, d in enumerate(sim.dealers):
            cfg, row = d.config, self.dl[i]
            row[fp.D_ACC] = d.account
            row[fp.D_CENTER] = 1.0 if cfg.target == "center" else 0.0
            row[fp.D_HF] = cfg.hedge_fraction
            row[fp.D_NOTIONAL] = 1.0 if cfg.band_unit == "per_notional" else 0.0
            row[fp.D_INST] = 1.0 if d._instant else 0.0
            row[fp.D_CAP] = math.inf if cfg.capacity is None else cfg.capacity
            row[fp.D_CAPW] = cfg.capacity_window
            row[fp.D_WS], row[fp.D_WU] = d._window_start, d._window_used
            if cfg.trigger == "schedule":
                row[fp.D_INT] = cfg.interval
                row[fp.D_WATCH] = 1.0 if watch else 0.0
                row[fp.D_WT] = 0.0 + cfg.phase
                row[fp.D_WSEQ] = self.q[fp.Q_SEQ]
                row[fp.D_WKIND] = fp.WK_PHASE
                self.q[fp.Q_SEQ] += 1
            else:
                row[fp.D_LAT] = cfg.latency
                if cfg.capacity is not None and d.capacity_exhausted():  # sleeps at once
                    row[fp.D_WS], row[fp.D_WU] = d._window_start, d._window_used
                    row[fp.D_WT] = 0.0 + max(d._window_start + cfg.capacity_window, 0.0)
                    row[fp.D_WSEQ] = self.q[fp.Q_SEQ]
                    row[fp.D_WKIND] = fp.WK_SLEEP
                    self.q[fp.Q_SEQ] += 1
                else:
                    waiting.append(i)
        self.runq = np.zeros(nd, dtype=np.int64)
        self.fresh = np.zeros(nd, dtype=np.bool_)
        # price-triggered dealers wait on a price change, in registration order
        self.waitq = np.zeros(nd, dtype=np.int64)
        self.waitq[: len(waiting)] = waiting
        self.q[fp.Q_WLEN] = len(waiting)
        self.fills = np.zeros((_FILLS, fp.FILL_COLUMNS))
        # samples: the kernel records the state at each sample instant, Python fills the
        # rows from it (_replay); the clock of sample k is that of the recorder's timeouts
        self.stimes = timeout_clock(sim.recorder.times)
        self.q[fp.Q_SAMPLE] = 1  # sample 0 is taken at t = 0 (first_sample)
        self.samples = np.zeros((_SAMPLES, 2 + 3 * nd + (BOOK_SAMPLE if self.lob else 0)))
        self.info = np.zeros(8)
        self.surf = np.zeros(7)  # level, skew, floor, r, q, year seconds, kernel clock (s)
        self.lines = self._no_lines = np.zeros((7, 1))
        # per dealer: its columns in `lines` (offset, room), the hot table copied there
        self._line_slots: list[tuple[int, int]] = []
        self._copied: list[np.ndarray | None] = []
        self._key: tuple[float, ...] | None = None  # book version, vol params loaded
        # per dealer: the table the kernel reads (None: exact), the book's table state it
        # was loaded from (OptionBook.table_state) and the hot lines it was loaded with
        self._tabs: list[Any] = [None] * nd
        self._tab_seen: list[tuple | None] = [None] * nd
        self._hot_seen: list[np.ndarray | None] = [None] * nd
        self._bands: list[tuple | None] = [None] * nd  # (holder version, panic factor) loaded
        self.coefs = np.zeros((6, 1))
        self.xlines = np.zeros((7, 1))
        self._slots: list[tuple[int, int, int, int]] = [(0, 0, 0, 0)] * nd  # _pack_tables
        self.elog = np.zeros((fp.ELOG_SIZE, 2))
        self.table_loads = 0  # diagnostics: NEED_TABLE answered,
        self.resumed_checks = 0  # of which within a check that had evaluated already
        self.seen = market.changes

    @property
    def skipped_checks(self) -> int:
        """Dealer checks the kernel skipped, their delta proven within the band (its skip
        windows, :func:`mmsim.kernel_checks._skip_window`); diagnostics."""
        return int(self.q[fp.Q_SKIPS])

    @property
    def clock(self) -> float:
        """Where the kernel stands (s): the last high-frequency event it played; ahead of
        the simpy clock within a segment."""
        return float(self.surf[6])

    # -- the simpy processes ----------------------------------------------------------------
    @property
    def sources(self) -> Any:
        """What :meth:`Simulation._start` starts where the simpy path starts the news
        (before the noise trader and the book's flow): the first timeouts of those three
        take their simpy event ids there (:meth:`_number_sources`)."""
        return SimpleNamespace(process=self._number_sources)

    def _number_sources(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """The news tick's, the noise order's and the flow's first event ids, drawn in
        the order their simpy processes would draw them at t = 0 (the kernel's ids and
        the discrete events' come from one counter, simpy's: :meth:`_advance`)."""
        self.q[fp.Q_NSEQ] = next(env._eid)
        self.q[fp.Q_ZSEQ] = next(env._eid)
        if self.lob is not None:
            self.lob.st[ST_FSEQ] = next(env._eid)
        yield from ()

    def _number_dealers(self, env: simpy.Environment) -> None:
        """The dealers' first timeouts (a scheduled dealer's phase, the sleep of one whose
        capacity is used up) take their ids where the dealers' processes start."""
        for row in self.dl:
            if row[fp.D_WKIND] != fp.WK_NONE:
                row[fp.D_WSEQ] = next(env._eid)

    def first_sample(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """The recorder's first sample (t = 0, at its place among the processes); the
        kernel records the others."""
        recorder = self.sim.recorder
        recorder.take(float(recorder.times[0]))
        yield from ()

    # -- the driver ----------------------------------------------------------------
    def process(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """Advance the kernel between discrete events: up to the next one and its id,
        resuming right after it (then every discrete event the kernel's events would
        follow is in the queue already: it was scheduled earlier)."""
        self.seen = self.sim.market.changes  # changes before the dealers wait are unseen
        self._number_dealers(env)
        queue = env._queue
        while True:
            now = env.now
            T = env.peek()
            if T <= now:
                # another event at this instant: the kernel plays what simpy would play
                # before it (smaller ids; none before an urgent one), resumes right after
                head = queue[0]
                self._advance(now, now, True, False, head[2] if head[1] == NORMAL else -1)
                yield _after(env, head)
                continue
            if T > self.duration:
                self._advance(now, self.duration, True, True, _LAST)
            elif queue[0][1] == URGENT:
                # the loop stops at T (env.run(until=T), a stop scheduled before any
                # sample at T): that sample is taken on resuming, before the events at T;
                # the book's flow looks past a pause of the loop (mmsim.pauses)
                self._advance(now, T, False, False, -1, next_event(env))
                yield _at(env, T, URGENT)
                self._advance(T, T, False, True, -1)
                continue
            else:
                # up to the discrete event at T (a sample at T comes before the events),
                # resuming right after it
                head = queue[0]
                self._advance(now, T, True, True, head[2])
                yield _after(env, head)
                continue
            yield env.event() if math.isinf(T) else _at(env, T)  # inf: nothing left

    # -- one kernel call --------------------------------------------------------------------
    def _advance(
        self,
        now: float,
        horizon: float,
        inclusive: bool,
        sample_at: bool,
        hseq: int,
        look: float = -1.0,
    ) -> None:
        """Run the kernel from ``now`` to ``horizon`` (s; at it too when ``inclusive``,
        the kernel events with ids below ``hseq``, the discrete event's there). The
        kernel numbers its timeouts from simpy's own counter, so that a tie between a
        kernel event and a discrete one is broken as simpy would (module docstring).
        The book's flow ends its blocks at ``look`` (s; -1: the horizon)."""
        sim = self.sim
        wake = sim.market.changes != self.seen
        self._load(now)
        if self.lob is not None:
            self.lob.st[ST_LOOK] = horizon if look < 0.0 else look
        env = sim.env
        self.q[fp.Q_HSEQ] = hseq
        self.q[fp.Q_SEQ] = next(env._eid)
        try:
            self._run_kernel(horizon, inclusive, sample_at, wake)
        finally:
            env._eid = itertools.count(int(self.q[fp.Q_SEQ]))

    def _run_kernel(self, horizon: float, inclusive: bool, sample_at: bool, wake: bool) -> None:
        """The kernel calls of :meth:`_advance`, answering its requests in between."""
        sim = self.sim
        ledger = sim.ledger
        news, noise = sim.news, sim.noise
        last_need, repeats = (-1, 0.0, 0.0), 0
        while True:
            status = fp.advance(  # a float horizon: an int (env.now at 0) compiles it twice
                float(horizon), inclusive, wake, self.mk, self.bk, self.news, self.z, self.noise,
                *self._noise_blocks(), self.dl, self.lines, self.surf, ledger._shares,
                ledger._cash, self.fills, self.q, self.runq, self.fresh, self.waitq, self.info,
                self.stimes, self.samples, sample_at, self.coefs, self.xlines, self.elog,
            )  # fmt: skip
            wake = False
            if self.q[fp.Q_SAMPLES]:
                self._replay()
            if status == fp.OK:
                break
            if status == fp.SAMPLES:
                continue
            if status == fp.NEED_NEWS:
                self.z = news.rng.standard_normal(news_block())
                self.news[fp.NW_IDX] = 0.0
            elif status == fp.NEED_NOISE:
                noise.refill()
                self.noise[fp.NZ_IDX] = 0.0
                self.noise[fp.NZ_NEXT] = self.surf[6] + noise.gaps[0]
            elif status == fp.FULL:
                self._flush()
            elif status == fp.NEED_FLOW:
                self.lob.refill()  # type: ignore[union-attr]
            elif status == fp.NEED_TABLE:
                need = (int(self.info[1]), float(self.info[2]), float(self.info[0]))
                # each stop of one check is at a new point (its evaluations are replayed)
                repeats = repeats + 1 if need[::2] == last_need[::2] else 0
                if repeats > fp.ELOG_SIZE:
                    raise RuntimeError(f"fast path: no valid evaluation at {need}")
                last_need = need
                self.resumed_checks += self.q[fp.Q_ELEN] > 0
                self._sync(*need)
            elif status == fp.DRY_STOP:
                self._store()
                sim.env._now = float(self.info[0])  # where the simpy path's loop stopped
                err = self.lob.dry_stop(float(self.info[0]))  # type: ignore[union-attr]
                raise stop_now(sim.env, err)
            else:
                self._store()
                raise stop_now(sim.env, InstabilityError(self._message(status)))
        self._store()

    def _noise_blocks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        noise = self.sim.noise
        if noise is None:
            empty = np.zeros(1)
            return empty, empty, empty
        return noise.gaps, noise.sizes, noise.sides

    def _load(self, now: float) -> None:
        """Python state -> arrays: the market (discrete events trade too) and, when the
        book or the surface changed, the surface, the dealers' live lines and bands."""
        sim = self.sim
        market, book, vol, mk = sim.market, sim.book, sim.vol, self.mk
        mk[fp.MK_MID] = market.mid
        mk[fp.MK_VOLUME] = market.volume
        mk[fp.MK_CHANGES] = market.changes
        self.surf[6] = now
        if self.lob is not None:
            self.lob.load()
        key = (book.version, *vol.params())  # a skew-only vol_shift changes it too
        if key == self._key:
            self._check_tables()
            return
        same_vol = self._key is not None and self._key[1:] == key[1:]
        self._key = key
        # a dealer's valuation right after its fill is stale after any change (DealerAgent),
        # and so is its skip window (bounds on the old lines and surface)
        self.dl[:, fp.D_POST] = 0.0
        self.dl[:, fp.D_WIN] = 0.0
        surf = self.surf
        surf[0], surf[1], surf[2] = vol.params()
        surf[3], surf[4], surf[5] = book.r, book.q, book.year_seconds
        # live lines at `now`; a line expiring later in the segment adds nothing from
        # its expiry on (the kernels skip it), as on the simpy path's rebuilt table
        hot = [book._hot_lines(d.index, now) for d in sim.dealers]
        self._load_lines(hot)
        for i, (lines, n) in enumerate(hot):
            # a book that sums few lines exactly does so all segment; else ask the book
            # at the first check or sample (NEED_TABLE)
            exact = book.delta_table == "off" or n == 0
            exact = exact or (book.delta_table == "auto" and n < book.table_min_lines)
            if exact:
                self.dl[i, fp.D_TMODE] = fp.TM_EXACT
            elif not (same_vol and self._kept(i, lines)) and not self._current(i, lines):
                self.dl[i, fp.D_TMODE] = fp.TM_UNKNOWN
            if self.dl[i, fp.D_TMODE] != fp.TM_TABLE:
                self._tabs[i] = None
        self._load_bands()

    def _load_bands(self) -> None:
        """Each dealer's band into its row (``D_BAND``; shares, or shares per unit of the
        holder's gross units, times the panic factor): recomputed only for a dealer whose
        inputs changed since it was loaded, its holder's lines (``holder_version``: a
        customer trade changes one holder's) or its panic factor (the vol level)."""
        book, bands = self.sim.book, self._bands
        for i, d in enumerate(self.sim.dealers):
            factor = d._panic_factor()
            key = (book._holder_version[d.index], factor)
            if bands[i] == key:
                continue
            bands[i] = key
            cfg = d.config
            band = cfg.band * factor
            if cfg.band_unit != "shares":
                d.band_shares()  # refreshes the gross units when the book changed
                band = band * d._gross_units
            self.dl[i, fp.D_BAND] = band

    def _load_lines(self, hot: list[tuple[np.ndarray, int]]) -> None:
        """The dealers' hot lines (``OptionBook._hot_lines``: a new array whenever a
        dealer's live lines change) into the kernel's line table ``lines`` and each
        dealer's columns into its row. One dealer: its hot table itself (the kernel
        never writes lines). Several: each has a slot with room for twice the lines it
        had when laid out; only the dealers whose hot table changed since they were
        copied are copied again (a customer trade: one dealer's lines), every dealer
        when one outgrows its slot."""
        dl = self.dl
        if len(hot) == 1:
            lines, n = hot[0]
            self.lines = lines if n else self._no_lines
            dl[0, fp.D_OFF], dl[0, fp.D_N] = 0, n
            return
        copied, slots = self._copied, self._line_slots
        outgrown = len(slots) != len(hot)
        if not outgrown:
            for (_, n), slot in zip(hot, slots, strict=True):
                if n > slot[1]:
                    outgrown = True
                    break
        if outgrown:
            slots = []
            off = 0
            for _, n in hot:
                slots.append((off, 2 * n + 8))
                off += 2 * n + 8
            self._line_slots = slots
            self.lines = np.zeros((7, max(off, 1)))
            copied = self._copied = [None] * len(hot)
        for i, ((lines, n), (off, _)) in enumerate(zip(hot, slots, strict=True)):
            if lines is not copied[i]:
                self.lines[:, off : off + n] = lines[:, :n]
                copied[i] = lines
                dl[i, fp.D_OFF], dl[i, fp.D_N] = off, n

    def _kept(self, i: int, lines: np.ndarray) -> bool:
        """Whether dealer ``i``'s loaded evaluation (a table, or exact until a retry) still
        answers as the book would after a change of the book or the clock that left its
        hot lines (``lines``, the same array: same version, no line expired) and its
        table state alone: e.g. another dealer's customer trade. The book's answer for a
        holder reads only that holder's lines and table (``holder_delta_gamma``), so the
        kernel need not ask it again (``NEED_TABLE``), nor does the simpy path's check
        change anything there. The surface level is the caller's to compare."""
        mode = self.dl[i, fp.D_TMODE]
        if mode != fp.TM_TABLE and mode != fp.TM_EXACT_UNTIL:
            return False
        return lines is self._hot_seen[i] and self._table_unchanged(i)

    def _current(self, i: int, lines: np.ndarray) -> bool:
        """Load dealer ``i``'s table when the book has it up to date with the dealer's
        hot lines ``lines`` (e.g. a customer trade folded in when booked) and valid on
        this surface (``OptionBook.current_table``): the book would answer from it, with
        no side effect, wherever the kernel reads it (inside its window and grid, before
        the next expiry), so the kernel need not stop to ask (``NEED_TABLE``)."""
        sim = self.sim
        h = sim.dealers[i].index
        table = sim.book.current_table(h, *sim.vol.params())
        if table is None:
            return False
        self._set_evaluation(i, table, math.inf, sim.book._hot[h][4], lines)
        return True

    def _table_unchanged(self, i: int) -> bool:
        """Whether the book's table state of dealer ``i`` is the one its evaluation was
        loaded from (``OptionBook.table_state``: same table object, same counters)."""
        seen = self._tab_seen[i]
        if seen is None:
            return False
        return self.sim.book.table_state_is(self.sim.dealers[i].index, seen)

    def _set_evaluation(
        self, i: int, table: Any, until: float, nxt: float, hot: np.ndarray
    ) -> None:
        """Dealer ``i`` reads ``table`` (None: exact, until ``until`` s, inf = always)
        until its lines' next expiry ``nxt`` (s); ``hot``: the hot lines it answers from.
        Its row, the bookkeeping that tells when it is stale, and the packed tables."""
        self._tab_seen[i] = self.sim.book.table_state(self.sim.dealers[i].index)
        self._hot_seen[i] = hot
        self._tabs[i] = table
        if table is None:
            row = self.dl[i]
            row[fp.D_WIN] = 0.0  # a skip window bounds the lines of the evaluation it was set on
            row[fp.D_TEXP] = nxt
            row[fp.D_TMODE] = fp.TM_EXACT if math.isinf(until) else fp.TM_EXACT_UNTIL
            row[fp.D_T1] = until
            return
        c0, c_room, x0, x_room = self._slots[i]
        if table.coef.shape[1] > c_room or table.near_n + table.changes_n > x_room:
            self._pack_tables()  # new slots for every dealer's table, this one's among them
            c0, _, x0, _ = self._slots[i]
        load_table_row(self.dl, i, nxt, table.t0, table.H, table.center, table.half, table.coef,
                       self.coefs, c0, table.near, table.near_n, table.changes, table.changes_n,
                       self.xlines, x0)  # fmt: skip

    def _check_tables(self) -> None:
        """Forget a dealer's loaded table when the book's changed since it was loaded
        (a discrete event evaluated the dealer's delta elsewhere)."""
        for i in range(len(self.sim.dealers)):
            if self.dl[i, fp.D_TMODE] == fp.TM_EXACT or self._tab_seen[i] is None:
                continue
            if not self._table_unchanged(i):
                self.dl[i, fp.D_TMODE] = fp.TM_UNKNOWN

    def _sync(self, i: int, S: float, t: float) -> None:
        """Load dealer ``i``'s evaluation as the book answers at spot ``S`` ($), clock ``t``
        (s): its table built, rolled or refreshed there if need be, exactly as the simpy
        agents' check or sampler would have it (``OptionBook.holder_evaluation``)."""
        sim = self.sim
        book, h = sim.book, sim.dealers[i].index
        table, until, nxt = book.holder_evaluation(h, S, t, *sim.vol.params())
        self.table_loads += 1
        self._set_evaluation(i, table, until, nxt, book._hot_lines(h, t)[0])

    def _pack_tables(self) -> None:
        """Every loaded table's coefficients and near and changed lines into new
        ``coefs`` and ``xlines``, with their columns in each dealer's row: a slot has twice
        the room its table takes (a dealer's next table that fits is loaded into its slot
        alone, :meth:`_set_evaluation`)."""
        c_off = x_off = 0
        slots = []
        for table in self._tabs:
            c_room = 0 if table is None else 2 * table.coef.shape[1]
            x_room = 0 if table is None else 2 * (table.near_n + table.changes_n) + 8
            slots.append((c_off, c_room, x_off, x_room))
            c_off += c_room
            x_off += x_room
        self._slots = slots
        self.coefs = np.zeros((6, max(c_off, 1)))
        self.xlines = np.zeros((7, max(x_off, 1)))
        for j, table in enumerate(self._tabs):
            if table is not None:
                self._pack_one(j, table, slots[j][0], slots[j][2])

    def _pack_one(self, i: int, table: Any, c0: int, x0: int) -> None:
        """Dealer ``i``'s table into ``coefs`` from column ``c0`` and its near and changed
        lines into ``xlines`` from column ``x0``, their columns into its row."""
        pack_table(self.dl[i], table.coef, self.coefs, c0, table.near, table.near_n,
                   table.changes, table.changes_n, self.xlines, x0)  # fmt: skip

    def _store(self) -> None:
        """Arrays -> Python state, and the fills into the trade log."""
        sim, mk = self.sim, self.mk
        market = sim.market
        if self.lob is not None:
            self.lob.store()
        else:
            market._permanent = float(mk[fp.MK_MID])
        market.volume = float(mk[fp.MK_VOLUME])
        market.changes = int(mk[fp.MK_CHANGES])
        self.seen = market.changes
        for d, row in zip(sim.dealers, self.dl.tolist(), strict=True):  # rows as floats
            d.hedge_volume = row[fp.D_HVOL]
            d.hedge_cost = row[fp.D_HCOST]
            d.n_rehedges = int(row[fp.D_NREH])
            d.last_delta_before_hedge = row[fp.D_LASTD]
            d._solve_next = bool(row[fp.D_SOLVE])
            d._overshoots = int(row[fp.D_OVER])
            d._window_start = row[fp.D_WS]
            d._window_used = row[fp.D_WU]
            d.capacity_bound = bool(row[fp.D_CAPB])
        if sim.noise is not None:
            sim.noise.volume = float(self.noise[fp.NZ_VOLUME])
        self._flush()

    def _replay(self) -> None:
        """Fill the series rows of the samples the kernel recorded, all at once
        (:meth:`~mmsim.sampler.Sampler.fill`): the recorded market mid and volume and the
        dealers' shares, cash and hedge volume; the book and the surface do not change
        within a kernel call."""
        sim = self.sim
        recorder, nd = sim.recorder, len(sim.dealers)
        m = int(self.q[fp.Q_SAMPLES])
        k0 = int(self.q[fp.Q_SAMPLE]) - m
        self.q[fp.Q_SAMPLES] = 0
        rows = self.samples[:m]
        first = recorder.filled
        shares, cash, hedge = (rows[:, 2 + c * nd : 2 + (c + 1) * nd] for c in range(3))
        prices = rows[:, 0] if self.lob is not None else None  # BookMarket.price: the mid
        sim.sampler.fill(recorder.times[k0 : k0 + m], rows[:, 0], rows[:, 1], shares, cash,
                         hedge, recorder.data[first : first + m, 1:], prices)  # fmt: skip
        if self.lob is not None:
            recorder.data[first : first + m, -BOOK_SAMPLE:] = rows[:, 2 + 3 * nd :]
        recorder.filled = first + m

    def _flush(self) -> None:
        if self.lob is not None:
            self.lob.flush()
        k = int(self.q[fp.Q_FILLS])
        if k == 0:
            return
        self.sim.trade_log.extend(self.fills[:k])
        self.q[fp.Q_FILLS] = 0

    def _message(self, status: int) -> str:
        """The simpy path's InstabilityError text for a kernel status."""
        sim, info = self.sim, self.info
        t = float(info[0])
        if status == fp.PRICE_INVALID:
            before, after, who, qty = info[1], info[2], int(info[3]), info[4]
            cause = (
                "an exogenous price move (news or a gap)"
                if who < 0
                else sim.market._order_cause(who, qty)
            )
            return (
                f"price left (0, inf) at t={t:.3f}s: {cause} moved it from "
                f"{before:.6g} to {after:.6g}"
            )
        if status == fp.PRICE_CEILING:
            from mmsim.engine import PRICE_CEILING

            who = sim.ledger.names[int(info[1])]
            return (
                f"price reached {info[3]:.6g} at t={t:.3f}s, over {PRICE_CEILING:g} x S0, "
                f"after an order of {info[2]:+,.0f} shares by {who!r}"
            )
        dealer = sim.dealers[int(info[1])]
        if status == fp.SCHED_RUNAWAY:
            return dealer._scheduled_runaway_message(
                bool(info[2]), info[4], info[5], info[6], info[3], info[7], now=t
            )
        if status == fp.DIVERGED:
            return dealer._divergence_message(
                int(info[2]), float(info[3]), float(info[4]), float(info[5]), now=t
            )
        return dealer._runaway_message(int(info[2]), now=t)


def news_block() -> int:
    """Normals per news block (the simpy process's block size)."""
    from mmsim.agents.noise import _BLOCK

    return _BLOCK


def _inf(x: float | None) -> float:
    return math.inf if x is None else float(x)
