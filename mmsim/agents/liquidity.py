"""Zero-intelligence liquidity flow for the limit order book (``market.model: book``).

Orders arrive as a Poisson process of ``rate`` per second. Each is a market order with
probability ``p_market``, else a limit order; it buys or sells with equal probability;
its size is uniform on ``[size_min, size_max]`` shares. A limit order's price is a
reference price plus an offset ``x ~ N(offset_mean, offset_sd)`` $ for a buy (minus it
for a sell), rounded to the tick: with ``offset_mean < 0`` bids rest below and asks above
the reference; an offset that crosses executes at once (a marketable limit). The
reference is the mid for uninformed traders and the *fundamental* price (moved by the
news process) for the informed, a fraction ``p_informed`` of all orders: that is how
news reaches the price. With ``informed_market`` the informed market orders trade toward
the fundamental too (buy when the mid is below it, sell above; a coin flip at it).
Before each arrival, resting volume decays,
``v *= exp(-xi (p_mid - p)**2 - cancel_rate * dt)`` (Buis et al. 2024 per event; a
uniform cancellation rate per second in the continuous-time preset).

What emerges: a spread and depth profile set by the balance of limit inflow against
market orders and decay; impact concave in size (depth grows away from the mid); and,
when dealers' hedges take more than the flow replenishes, a side that empties
(``liquidity_dry_out``).

The flow runs in compiled blocks (:func:`flow_block`): from the current time up to the
next discrete simpy event, or up to the first mid change when a price-triggered dealer
waits on it, with no Python object per order. Random numbers are drawn in blocks from
the agent's own generator, so a seed replays exactly whatever the block boundaries.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy
from numba import njit

from mmsim.lob import BookMarket
from mmsim.lob_kernels import add_limit, decay, needs_recenter, recenter, take
from mmsim.pauses import next_event

__all__ = ["LiquidityFlow", "flow_block"]

BLOCK = 8192  # orders whose random numbers are drawn per call to the generator
# rows of the random block
R_GAP, R_TYPE, R_INFO, R_SIGN, R_OFFSET, R_SIZE = range(6)
# params vector
P_RATE, P_MARKET, P_INFORMED, P_MU, P_SD, P_VMIN, P_VMAX, P_CANCEL, P_FUND, P_STOPMID = range(10)
P_INFMKT = 10  # 1: informed market orders trade toward the fundamental
N_PAR = 11
# stats vector: events, flow shares executed, taken from bids, taken from asks, decayed,
# added to bids, added to asks, dropped off the window
S_EVENTS, S_EXEC, S_TAKE_BID, S_TAKE_ASK, S_DECAY, S_ADD_BID, S_ADD_ASK, S_DROP = range(8)
DONE_TIME, DONE_MID, DONE_DRY, DONE_BLOCK = 0, 1, 2, 3


@njit(cache=True)
def flow_block(vol, ist, table, par, rnd, cursor, t_last, t_stop, stats, own):
    """Advance the liquidity flow over the pre-drawn orders ``rnd[:, cursor:]``.

    Stops before the first order at or after ``t_stop`` (s), after an order that moved
    the mid when ``par[P_STOPMID]`` is set, after an order that emptied a side, or at the
    end of the block. Returns ``(cursor, t_last, code)``: the next unused column, the
    time of the last processed order (s) and why it stopped (``DONE_*``).
    """
    n = vol.shape[1]
    rate = par[P_RATE]
    p_mkt, p_inf, mu, sd = par[P_MARKET], par[P_INFORMED], par[P_MU], par[P_SD]
    vmin, vspan, cancel_rate = par[P_VMIN], par[P_VMAX] - par[P_VMIN], par[P_CANCEL]
    fund = par[P_FUND]  # ticks
    stop_mid = par[P_STOPMID] > 0.0
    inf_mkt = par[P_INFMKT] > 0.0
    nb = rnd.shape[1]
    while cursor < nb:
        t = t_last + rnd[R_GAP, cursor] / rate
        if t >= t_stop:
            return cursor, t_last, DONE_TIME
        extra = math.exp(-cancel_rate * (t - t_last)) if cancel_rate > 0.0 else 1.0
        stats[S_DECAY] += decay(vol, ist, table, extra, own)
        mid_before = ist[5] + ist[6]  # 2 x mid, absolute ticks (last bid + last ask)
        buy = rnd[R_SIGN, cursor] < 0.5
        size = vmin + vspan * rnd[R_SIZE, cursor]
        if rnd[R_TYPE, cursor] < p_mkt:
            if inf_mkt and rnd[R_INFO, cursor] < p_inf and 2.0 * fund != mid_before:
                buy = 2.0 * fund > mid_before  # informed: buy below the fundamental
            filled, _ = take(vol, ist, buy, size, n if buy else -1, own)
        else:
            ref = fund if rnd[R_INFO, cursor] < p_inf else 0.5 * mid_before
            x = mu + sd * rnd[R_OFFSET, cursor]  # offset, ticks
            price = ref + x if buy else ref - x
            j = np.int64(math.floor(price + 0.5)) - ist[0]
            filled, _, dropped = add_limit(vol, ist, buy, j, size, own)
            stats[S_DROP] += dropped
            if buy:
                stats[S_ADD_BID] += size - filled - dropped
            else:
                stats[S_ADD_ASK] += size - filled - dropped
        stats[S_EXEC] += filled
        if buy:
            stats[S_TAKE_ASK] += filled
        else:
            stats[S_TAKE_BID] += filled
        stats[S_EVENTS] += 1.0
        cursor += 1
        t_last = t
        if needs_recenter(ist, n):
            stats[S_DROP] += recenter(vol, ist)
        if ist[1] < 0 or ist[2] >= n:
            return cursor, t_last, DONE_DRY
        if stop_mid and ist[5] + ist[6] != mid_before:
            return cursor, t_last, DONE_MID
    return cursor, t_last, DONE_BLOCK


class LiquidityFlow:
    """The book's zero-intelligence flow as one simpy process with its own stream.

    Parameters
    ----------
    market : the :class:`~mmsim.lob.BookMarket` it trades in.
    rng : the agent's generator (a child of the run's ``SeedSequence``).
    rate : orders per second.
    p_market, p_informed : probability an order is a market order / is informed.
    offset_mean, offset_sd : limit price offset from the reference, $ (buy: ref + x).
    offset_dist : ``"normal"`` or ``"uniform"`` (same mean and sd; with ``offset_mean =
        -sqrt(3) offset_sd`` a uniform offset puts limit orders on ``[ref - W, ref]``,
        ``W = 2 sqrt(3) offset_sd``: flat depth per tick behind the mid, none crossing).
    size_min, size_max : order size bounds, shares (uniform).
    cancel_rate : uniform cancellation of resting volume, per second.
    stop_on_mid : hand control back to simpy after every mid change (set when a
        price-triggered dealer waits on ``market.changed``).
    informed_market : informed market orders buy below the fundamental and sell above
        it (Buis et al.'s informed traders); ``False``: every side is a coin flip.
    """

    def __init__(
        self,
        market: BookMarket,
        rng: np.random.Generator,
        *,
        rate: float,
        p_market: float,
        p_informed: float,
        offset_mean: float,
        offset_sd: float,
        size_min: float,
        offset_dist: str = "normal",
        size_max: float,
        cancel_rate: float = 0.0,
        stop_on_mid: bool = False,
        informed_market: bool = False,
    ) -> None:
        self.market = market
        self.rng = rng
        tick = market.tick
        self.par = np.zeros(N_PAR)
        self.par[:8] = (
            rate,
            p_market,
            p_informed,
            offset_mean / tick,  # the kernel works in ticks
            offset_sd / tick,
            size_min,
            size_max,
            cancel_rate,
        )
        self.par[P_STOPMID] = 1.0 if stop_on_mid else 0.0
        self.par[P_INFMKT] = 1.0 if informed_market else 0.0
        if offset_dist not in ("normal", "uniform"):
            raise ValueError(f"offset_dist must be normal or uniform, not {offset_dist!r}")
        self.uniform = offset_dist == "uniform"
        self.stats = np.zeros(8)
        self.t_last = 0.0  # s, time of the last processed order
        self._rnd = np.empty((6, BLOCK))
        self._cursor = BLOCK

    @property
    def n_events(self) -> int:
        """Orders processed so far."""
        return int(self.stats[S_EVENTS])

    def _refill(self) -> None:
        """Draw the next block: gaps (unit exponential), uniforms, offsets (zero mean, unit
        sd: N(0, 1), or uniform on [-sqrt(3), sqrt(3)])."""
        rng, rnd = self.rng, self._rnd
        rnd[R_GAP] = rng.standard_exponential(BLOCK)
        rnd[R_TYPE : R_SIGN + 1] = rng.random((3, BLOCK))
        if self.uniform:
            rnd[R_OFFSET] = rng.uniform(-math.sqrt(3.0), math.sqrt(3.0), BLOCK)
        else:
            rnd[R_OFFSET] = rng.standard_normal(BLOCK)
        rnd[R_SIZE] = rng.random(BLOCK)
        self._cursor = 0

    def advance(self, t_stop: float) -> int:
        """Run the flow on the book up to (not including) ``t_stop`` s, or to the first
        stop condition; returns the kernel's ``DONE_*`` code."""
        market = self.market
        self.par[P_FUND] = market.fundamental / market.tick
        before = self.stats[S_TAKE_BID], self.stats[S_TAKE_ASK]
        while True:
            if self._cursor >= BLOCK:
                self._refill()
            self._cursor, self.t_last, code = flow_block(
                market.vol,
                market.ist,
                market.table,
                self.par,
                self._rnd,
                self._cursor,
                self.t_last,
                t_stop,
                self.stats,
                market.own,
            )
            if code != DONE_BLOCK:
                break
        market.side_flow[0] += self.stats[S_TAKE_BID] - before[0]
        market.side_flow[1] += self.stats[S_TAKE_ASK] - before[1]
        market.flow_volume = float(self.stats[S_EXEC])
        market.settle_own()
        return code

    def process(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """Advance in compiled blocks up to the next simpy event; after a block that
        changed the book, move the clock to its last order and tell the market (which
        wakes price-triggered dealers and records a dry-out)."""
        if self.par[P_RATE] <= 0.0:
            return
        market = self.market
        self.t_last = env.now
        while True:
            nxt = next_event(env)  # the next discrete event: samples, news, dealers, the end
            mid_before = market.mid
            if not math.isfinite(nxt):
                return  # nothing else will ever happen: the run is over
            code = self.advance(nxt)
            if code == DONE_TIME and self.t_last <= env.now:
                # nothing before the next event: sleep until it, then look again
                gap = self._rnd[R_GAP, self._cursor] / self.par[P_RATE]
                yield env.timeout(max(self.t_last + gap - env.now, 0.0))
                continue
            if self.t_last > env.now:
                yield env.timeout(self.t_last - env.now)
            market.after_change(mid_before)
