"""Glue between the simpy loop and the compiled fast path (:mod:`mmsim.fastpath`).

With ``engine.fast_path`` on (or ``auto`` and the scenario supported, :func:`unsupported`)
the news, the noise trader and the dealers are not simpy processes: one process,
:meth:`HotLoop.process`, runs the kernel from one discrete event (a sample, a customer,
a pension child order, a scheduled event, an expiry, a vol update) to the next, with the
market, ledger, dealers' counters and random-number blocks in arrays, and hands the state
back to the Python objects (``Market``, ``Ledger``, ``DealerAgent``, ``NoiseTrader``)
before every discrete event, which then sees exactly what it would have seen on the simpy
path. A discrete event that changes the market or the book wakes the dealers as
``Market.notify`` would.

Order of same-instant events: the kernel plays a news tick or noise order that falls
exactly on a discrete event's instant after that event (the discrete events are
scheduled before; true of samples, expiries, scheduled events, vol updates at multiples
of the news step and of continuous-time arrivals). A discrete event scheduled less than
one news step before a tick that it ties with (a pension child interval shorter than
``news.dt`` landing on a tick) would come after the tick on the simpy path: the only
bit-wise difference, not met by any shipped scenario.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from heapq import heappush
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy
from simpy.core import NORMAL

from mmsim import fastpath as fp
from mmsim.errors import InstabilityError
from mmsim.market import SqrtImpact
from mmsim.schema import Scenario

if TYPE_CHECKING:
    from mmsim.engine import Simulation

__all__ = ["HotLoop", "fast_path_enabled", "unsupported"]

_FILLS = 1 << 14  # fill rows per flush


def unsupported(sc: Scenario) -> str | None:
    """Why the fast path cannot run ``sc`` (``"field: reason"``), or ``None``."""
    mk = sc.market
    if mk.model == "book":
        return "market.model: the limit order book runs on the simpy path"
    if mk.transient.fraction != 0.0:
        return "market.transient.fraction: transient impact runs on the simpy path"
    for i, d in enumerate(sc.dealers):
        if d.trigger != "price":
            return f"dealers[{i}].trigger: {d.trigger} dealers run on the simpy path"
        if d.latency != 0.0:
            return f"dealers[{i}].latency: lagged dealers run on the simpy path"
        if d.order != "market":
            return f"dealers[{i}].order: limit orders run on the simpy path"
        if d.capacity is not None:
            return f"dealers[{i}].capacity: capacity limits run on the simpy path"
    cfg = sc.engine
    if cfg.delta_table == "on":
        return "engine.delta_table: tabulated deltas run on the simpy path"
    if cfg.delta_table == "auto":
        # a dealer tabulates from delta_table_min_lines live lines: only books that can
        # never grow there (no customers, no chain) are sure to stay exact
        lines = max((len(d.positions) for d in sc.dealers), default=0)
        lines += sum(len(e.positions) for e in sc.events)
        if sc.customers or sc.book is not None or lines >= cfg.delta_table_min_lines:
            return (
                "engine.delta_table: auto may tabulate a growing book (set it to off for the "
                "fast path)"
            )
    return None


def fast_path_enabled(sc: Scenario) -> bool:
    """Whether a run of ``sc`` uses the fast path (``engine.fast_path``; ``on`` with an
    unsupported scenario is refused when the scenario is validated)."""
    mode = sc.engine.fast_path
    return mode != "off" and unsupported(sc) is None


def _at(env: simpy.Environment, when: float) -> simpy.Event:
    """An event at the absolute clock time ``when`` (s), without the rounding of
    ``now + (when - now)`` that a timeout would bring."""
    event = simpy.Event(env)
    event._ok = True
    event._value = None
    heappush(env._queue, (when, NORMAL, next(env._eid), event))
    return event


class HotLoop:
    """Array state of the high-frequency agents of one :class:`Simulation` and the simpy
    process that advances it (module docstring)."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        sc, market = sim.scenario, sim.market
        impact = market.impact
        self.mk = mk = np.zeros(fp.MK_SIZE)
        mk[fp.MK_HALF] = market.half_spread
        if isinstance(impact, SqrtImpact):
            mk[fp.MK_MODEL] = 1.0
            mk[fp.MK_Y], mk[fp.MK_DVOL], mk[fp.MK_ADV] = impact.Y, impact.daily_vol, impact.adv
        else:
            mk[fp.MK_LAM] = impact.lam
        from mmsim.engine import PRICE_CEILING  # engine imports this module

        mk[fp.MK_CEIL] = PRICE_CEILING * sc.market.S0
        self.duration = sc.clock.duration
        # news: the first tick at dt (+ phase); a block is drawn when the first is due
        self.news = np.zeros(6)
        self.z = np.zeros(0)
        news = sim.news
        if news is not None and news.scale > 0.0:
            cfg = news.config
            start = 0.0 + cfg.phase if cfg.phase > 0.0 else 0.0
            self.news[:] = (1.0, start + cfg.dt, cfg.dt, news.scale, _inf(cfg.stop), 0.0)
        # noise: its first block (and gap) drawn now, as the simpy process would at t=0
        self.noise = np.zeros(6)
        noise = sim.noise
        if noise is not None and noise.config.rate > 0.0:
            noise.refill()
            self.noise[:] = (1.0, 0.0 + noise.gaps[0], _inf(noise.config.stop), noise.account,
                             0.0, 0.0)  # fmt: skip
        nd = len(sim.dealers)
        self.dl = np.zeros((max(nd, 1), fp.D_SIZE))[:nd]
        for i, d in enumerate(sim.dealers):
            self.dl[i, fp.D_ACC] = d.account
            self.dl[i, fp.D_CENTER] = 1.0 if d.config.target == "center" else 0.0
            self.dl[i, fp.D_HF] = d.config.hedge_fraction
            self.dl[i, fp.D_NOTIONAL] = 1.0 if d.config.band_unit == "per_notional" else 0.0
        self.q = np.zeros(5, dtype=np.int64)
        self.runq = np.zeros(nd, dtype=np.int64)
        self.fresh = np.zeros(nd, dtype=np.bool_)
        self.waitq = np.arange(nd, dtype=np.int64)  # every dealer waits, registration order
        self.q[fp.Q_WLEN] = nd
        self.fills = np.zeros((_FILLS, fp.FILL_COLUMNS))
        self.info = np.zeros(8)
        self.surf = np.zeros(7)  # level, skew, floor, r, q, year seconds, kernel clock (s)
        self.lines = np.zeros((7, 1))
        self._hot: list[int] = []  # ids of the dealers' hot line tables in self.lines
        self._post_key: tuple[int, float] | None = None
        self.seen = market.changes

    # -- the simpy process ----------------------------------------------------------------
    def process(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """Advance the kernel between discrete events; runs last at each of its instants
        so that no discrete event can still be scheduled before its horizon."""
        self.seen = self.sim.market.changes  # changes before the dealers wait are unseen
        while True:
            now = env.now
            T = env.peek()
            if T <= now:  # other events at this instant first; the kernel plays what is due
                self._advance(now, now, True)
                yield env.timeout(0.0)
                continue
            if T > self.duration:
                self._advance(now, self.duration, True)
            else:
                self._advance(now, T, False)
            yield env.event() if math.isinf(T) else _at(env, T)  # inf: nothing left

    # -- one kernel call --------------------------------------------------------------------
    def _advance(self, now: float, horizon: float, inclusive: bool) -> None:
        sim = self.sim
        market, book, vol = sim.market, sim.book, sim.vol
        wake = market.changes != self.seen
        self._load(now)
        ledger = sim.ledger
        news, noise = sim.news, sim.noise
        while True:
            status = fp.advance(
                horizon, inclusive, wake, self.mk, self.news, self.z, self.noise,
                *self._noise_blocks(), self.dl, self.lines, self.surf, ledger._shares,
                ledger._cash, self.fills, self.q, self.runq, self.fresh, self.waitq, self.info,
            )  # fmt: skip
            wake = False
            if status == fp.OK:
                break
            if status == fp.NEED_NEWS:
                self.z = news.rng.standard_normal(news_block())
                self.news[fp.NW_IDX] = 0.0
            elif status == fp.NEED_NOISE:
                noise.refill()
                self.noise[fp.NZ_IDX] = 0.0
                self.noise[fp.NZ_NEXT] = self.surf[6] + noise.gaps[0]
            elif status == fp.FULL:
                self._flush()
            else:
                self._store()
                raise InstabilityError(self._message(status))
        self._store()
        self._post_key = (book.version, vol.level)

    def _noise_blocks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        noise = self.sim.noise
        if noise is None:
            empty = np.zeros(1)
            return empty, empty, empty
        return noise.gaps, noise.sizes, noise.sides

    def _load(self, now: float) -> None:
        """Python state -> arrays: the market (discrete events trade too), the surface,
        the dealers' live lines and bands."""
        sim = self.sim
        market, book, vol, mk = sim.market, sim.book, sim.vol, self.mk
        mk[fp.MK_MID] = market.mid
        mk[fp.MK_VOLUME] = market.volume
        mk[fp.MK_CHANGES] = market.changes
        surf = self.surf
        surf[0], surf[1], surf[2] = vol.params()
        surf[3], surf[4], surf[5], surf[6] = book.r, book.q, book.year_seconds, now
        if self._post_key != (book.version, vol.level):
            self.dl[:, fp.D_POST] = 0.0  # a post-fill valuation is stale after any change
        hot = [book._hot_lines(d.index, now) for d in sim.dealers]
        ids = [id(lines) for lines, _ in hot]
        if ids != self._hot:
            total = sum(n for _, n in hot)
            self.lines = np.zeros((7, max(total, 1)))
            off = 0
            for i, (lines, n) in enumerate(hot):
                self.lines[:, off : off + n] = lines[:, :n]
                self.dl[i, fp.D_OFF], self.dl[i, fp.D_N] = off, n
                off += n
            self._hot = ids
        for i, d in enumerate(sim.dealers):
            cfg = d.config
            band = cfg.band * d._panic_factor()
            if cfg.band_unit != "shares":
                d.band_shares()  # refreshes the gross units when the book changed
                band = band * d._gross_units
            self.dl[i, fp.D_BAND] = band

    def _store(self) -> None:
        """Arrays -> Python state, and the fills into the trade log."""
        sim, mk = self.sim, self.mk
        market = sim.market
        market._permanent = float(mk[fp.MK_MID])
        market.volume = float(mk[fp.MK_VOLUME])
        market.changes = int(mk[fp.MK_CHANGES])
        self.seen = market.changes
        for i, d in enumerate(sim.dealers):
            row = self.dl[i]
            d.hedge_volume = float(row[fp.D_HVOL])
            d.hedge_cost = float(row[fp.D_HCOST])
            d.n_rehedges = int(row[fp.D_NREH])
            d.last_delta_before_hedge = float(row[fp.D_LASTD])
            d._solve_next = bool(row[fp.D_SOLVE])
        if sim.noise is not None:
            sim.noise.volume = float(self.noise[fp.NZ_VOLUME])
        self._flush()

    def _flush(self) -> None:
        k = int(self.q[fp.Q_FILLS])
        if k == 0:
            return
        log = self.sim.trade_log
        while log.n + k > log.data.shape[0]:
            log.data = np.concatenate([log.data, np.empty_like(log.data)])
        log.data[log.n : log.n + k] = self.fills[:k]
        log.n += k
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
