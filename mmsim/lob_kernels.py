"""Numba kernels of the limit order book (:mod:`mmsim.lob`), over plain arrays.

State: ``vol`` float64[2, n] (row 0 bids, row 1 asks: resting shares per level, column
``j`` at the price ``(base + j) * tick``) and ``ist`` int64[7] (``IST_*``: base, best bid
column or -1, best ask column or n, lowest / highest occupied columns, last known best
bid / ask as absolute ticks). ``own`` float64[k, 5] holds the dealers' resting limit
orders (side, absolute tick, shares ahead in the queue, own shares, filled shares); it
may have no rows. Every kernel is ``@njit(cache=True)``; volumes are shares.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "EPS",
    "IST_ASK",
    "IST_BASE",
    "IST_BID",
    "IST_HI",
    "IST_LAST_ASK",
    "IST_LAST_BID",
    "IST_LO",
    "add_limit",
    "book_snapshot",
    "cancel",
    "decay",
    "decay_table",
    "depth_within",
    "needs_recenter",
    "new_book",
    "recenter",
    "rest",
    "take",
]

EPS = 1e-9  # shares: resting volume below this is zero
IST_BASE, IST_BID, IST_ASK, IST_LO, IST_HI, IST_LAST_BID, IST_LAST_ASK = range(7)


@njit(cache=True)
def new_book(n, base, bid_ticks, ask_ticks, volumes):
    """A book of ``n`` columns starting at absolute tick ``base``: bids at the absolute
    ticks ``bid_ticks``, asks at ``ask_ticks``, ``volumes`` shares each. Returns
    ``(vol, ist)``."""
    vol = np.zeros((2, n))
    ist = np.empty(7, dtype=np.int64)
    ist[IST_BASE] = base
    ist[IST_BID] = -1
    ist[IST_ASK] = n
    ist[IST_LO] = n
    ist[IST_HI] = -1
    for k in range(bid_ticks.size):
        rest(vol, ist, np.int64(0), bid_ticks[k] - base, volumes[k])  # typed side: one rest
    for k in range(ask_ticks.size):
        rest(vol, ist, np.int64(1), ask_ticks[k] - base, volumes[k])
    ist[IST_LAST_BID] = base + ist[IST_BID]
    ist[IST_LAST_ASK] = base + ist[IST_ASK]
    return vol, ist


@njit(cache=True)
def rest(vol, ist, side, j, v):
    """Rest ``v`` shares at column ``j`` of ``side`` (0 bid, 1 ask), not crossing;
    returns the volume dropped (outside the window)."""
    n = vol.shape[1]
    if j < 0 or j >= n:
        return v
    vol[side, j] += v
    if side == 0:
        if j > ist[IST_BID]:
            ist[IST_BID] = j
            ist[IST_LAST_BID] = ist[IST_BASE] + j
    elif j < ist[IST_ASK]:
        ist[IST_ASK] = j
        ist[IST_LAST_ASK] = ist[IST_BASE] + j
    if j < ist[IST_LO]:
        ist[IST_LO] = j
    if j > ist[IST_HI]:
        ist[IST_HI] = j
    return 0.0


@njit(cache=True)
def _own_executed(own, side, tick_abs, x, emptied):
    """``x`` shares executed at absolute tick ``tick_abs`` of ``side``: the dealers' own
    resting orders there (rows ``side, tick, ahead, mine, filled``) fill once the volume
    ahead of them in the queue is gone; all of it when the level ``emptied``."""
    for r in range(own.shape[0]):
        if own[r, 0] == side and own[r, 1] == tick_abs and own[r, 3] > 0.0:
            if emptied:
                own[r, 4] += own[r, 3]
                own[r, 2] = 0.0
                own[r, 3] = 0.0
                continue
            a = min(own[r, 2], x)
            own[r, 2] -= a
            m = min(own[r, 3], x - a)
            own[r, 3] -= m
            own[r, 4] += m


@njit(cache=True)
def take(vol, ist, buy, qty, limit_j, own):
    """A marketable order of ``qty`` shares walking the other side (asks when ``buy``)
    up to column ``limit_j`` included. Returns ``(filled, notional)``: shares filled and
    their cost in ticks (sum of volume x absolute tick). ``own`` holds the dealers'
    resting limit orders (see :func:`_own_executed`); it may have no rows."""
    n = vol.shape[1]
    base = ist[IST_BASE]
    filled = 0.0
    notional = 0.0
    has_own = own.shape[0] > 0
    last = 0
    if buy:
        j = ist[IST_ASK]
        while j < n and j <= limit_j and qty - filled > EPS:
            v = vol[1, j]
            x = min(v, qty - filled)
            filled += x
            notional += x * (base + j)
            last = j
            left = v - x
            if has_own:
                _own_executed(own, 1.0, float(base + j), x, left <= EPS)
            if left > EPS:
                vol[1, j] = left
                break
            vol[1, j] = 0.0
            j += 1
            while j < n and vol[1, j] <= 0.0:
                j += 1
        ist[IST_ASK] = j
        if j < n:
            ist[IST_LAST_ASK] = base + j
        elif filled > 0.0:
            ist[IST_LAST_ASK] = base + last  # emptied: the last price traded
    else:
        j = ist[IST_BID]
        while j >= 0 and j >= limit_j and qty - filled > EPS:
            v = vol[0, j]
            x = min(v, qty - filled)
            filled += x
            notional += x * (base + j)
            last = j
            left = v - x
            if has_own:
                _own_executed(own, 0.0, float(base + j), x, left <= EPS)
            if left > EPS:
                vol[0, j] = left
                break
            vol[0, j] = 0.0
            j -= 1
            while j >= 0 and vol[0, j] <= 0.0:
                j -= 1
        ist[IST_BID] = j
        if j >= 0:
            ist[IST_LAST_BID] = base + j
        elif filled > 0.0:
            ist[IST_LAST_BID] = base + last  # emptied: the last price traded
    return filled, notional


@njit(cache=True)
def ladder_tick(bid: int, ask: int, side: int, step: int) -> int:
    """Absolute tick of a dealer's limit order at ladder ``step`` (0: one spread behind
    its own best, 1: at its best, 2: half a spread inside, 3: at the far best, crossing)
    on ``side`` (0 buy, 1 sell), from the last best bid and ask (absolute ticks)."""
    spread = max(ask - bid, 1)
    sign = 1 if side == 0 else -1
    own_best = bid if side == 0 else ask
    if step == 0:
        return own_best - sign * spread
    if step == 1:
        return own_best
    if step == 2:
        return own_best + sign * (spread // 2)
    return ask if side == 0 else bid


@njit(cache=True)
def add_limit(vol, ist, buy, j, v, own):
    """A limit order of ``v`` shares at column ``j``: the part that crosses executes
    against the other side up to ``j`` (price priority), the rest rests at ``j``.
    Returns ``(filled, notional_ticks, dropped)``."""
    filled = 0.0
    notional = 0.0
    if buy and j >= ist[IST_ASK]:
        filled, notional = take(vol, ist, buy, v, j, own)  # buy: typed, one compiled take
    elif not buy and j <= ist[IST_BID]:
        filled, notional = take(vol, ist, buy, v, j, own)
    left = v - filled
    dropped = 0.0
    if left > EPS:
        dropped = rest(vol, ist, 0 if buy else 1, j, left)
    return filled, notional, dropped


@njit(cache=True)
def cancel(vol, ist, side, j, v):
    """Remove up to ``v`` shares resting at column ``j`` of ``side``; returns the shares
    removed. The best quote moves on when its level empties."""
    n = vol.shape[1]
    if j < 0 or j >= n:
        return 0.0
    x = min(v, vol[side, j])
    vol[side, j] -= x
    if vol[side, j] <= EPS:
        x += vol[side, j]
        vol[side, j] = 0.0
        if side == 0 and j == ist[IST_BID]:
            k = j - 1
            while k >= 0 and vol[0, k] <= 0.0:
                k -= 1
            ist[IST_BID] = k
            if k >= 0:
                ist[IST_LAST_BID] = ist[IST_BASE] + k
        elif side == 1 and j == ist[IST_ASK]:
            k = j + 1
            while k < n and vol[1, k] <= 0.0:
                k += 1
            ist[IST_ASK] = k
            if k < n:
                ist[IST_LAST_ASK] = ist[IST_BASE] + k
    return x


@njit(cache=True)
def decay_table(n, tick, xi):
    """``exp(-xi * d**2)`` for distances ``d`` of 0, 1/2, 1, ... ticks from the mid
    (index = distance in half ticks), ``2 n`` entries: the per-event decay factor."""
    out = np.empty(2 * n)
    for k in range(2 * n):
        d = 0.5 * k * tick
        out[k] = math.exp(-xi * d * d)
    return out


@njit(cache=True)
def decay(vol, ist, table, extra, own):
    """One decay step: every resting level's volume ``v *= table[2 |p - mid| / tick] *
    extra`` (``extra`` = ``exp(-cancel_rate * dt)``), the dealers' own orders and the
    queue ahead of them alike. Empty levels past the occupied range are trimmed; the
    best quotes move when a level decays to zero. Returns the shares removed."""
    n = vol.shape[1]
    lo, hi = ist[IST_LO], ist[IST_HI]
    if hi < lo:
        return 0.0
    mid2 = (ist[IST_LAST_BID] + ist[IST_LAST_ASK]) - 2 * ist[IST_BASE]  # mid in half ticks
    for r in range(own.shape[0]):
        if own[r, 3] > 0.0:
            d = abs(2 * (np.int64(own[r, 1]) - ist[IST_BASE]) - mid2)
            f = table[min(d, table.size - 1)] * extra
            own[r, 2] *= f
            own[r, 3] *= f
    removed = 0.0
    new_lo, new_hi = n, -1
    for side in range(2):
        # bids rest at or below the best bid, asks at or above the best ask
        j0 = lo if side == 0 else max(lo, ist[IST_ASK])
        j1 = min(hi, ist[IST_BID]) if side == 0 else hi
        for j in range(j0, j1 + 1):
            v = vol[side, j]
            if v > 0.0:
                d = abs(2 * j - mid2)
                w = v * table[min(d, table.size - 1)] * extra
                if w <= EPS:
                    w = 0.0
                removed += v - w
                vol[side, j] = w
                if w > 0.0:
                    if j < new_lo:
                        new_lo = j
                    if j > new_hi:
                        new_hi = j
    ist[IST_LO], ist[IST_HI] = new_lo, new_hi
    b = ist[IST_BID]
    while b >= 0 and vol[0, b] <= 0.0:
        b -= 1
    ist[IST_BID] = b
    if b >= 0:
        ist[IST_LAST_BID] = ist[IST_BASE] + b
    a = ist[IST_ASK]
    while a < n and vol[1, a] <= 0.0:
        a += 1
    ist[IST_ASK] = a
    if a < n:
        ist[IST_LAST_ASK] = ist[IST_BASE] + a
    return removed


@njit(cache=True)
def depth_within(vol, ist, side, k):
    """Shares resting on ``side`` within ``k`` ticks of its best quote (best included:
    ``k = 1`` is the best level alone)."""
    n = vol.shape[1]
    total = 0.0
    if side == 0:
        b = ist[IST_BID]
        for j in range(max(b - k + 1, 0), b + 1):
            total += vol[0, j]
    else:
        a = ist[IST_ASK]
        for j in range(a, min(a + k, n)):
            total += vol[1, j]
    return total


@njit(cache=True)
def recenter(vol, ist):
    """Shift the window so the mid sits at column ``n / 2``; returns the shares that
    fell off its edges. Call when a quote comes within ``n / 8`` of an edge."""
    n = vol.shape[1]
    mid = (ist[IST_LAST_BID] + ist[IST_LAST_ASK]) // 2 - ist[IST_BASE]
    shift = mid - n // 2  # columns to move left
    if shift == 0:
        return 0.0
    lost = 0.0
    tmp = np.zeros((2, n))
    for side in range(2):
        for j in range(n):
            v = vol[side, j]
            if v > 0.0:
                k = j - shift
                if 0 <= k < n:
                    tmp[side, k] = v
                else:
                    lost += v
    vol[:, :] = tmp
    ist[IST_BASE] += shift
    lo, hi = n, -1
    b, a = -1, n
    for j in range(n):
        if vol[0, j] > 0.0 or vol[1, j] > 0.0:
            if j < lo:
                lo = j
            hi = j
        if vol[0, j] > 0.0:
            b = j
        if vol[1, n - 1 - j] > 0.0:
            a = n - 1 - j
    ist[IST_LO], ist[IST_HI], ist[IST_BID], ist[IST_ASK] = lo, hi, b, a
    return lost


@njit(cache=True)
def needs_recenter(ist, n):
    """True when a last known quote is within ``n / 8`` columns of a window edge."""
    m = n // 8
    b = ist[IST_LAST_BID] - ist[IST_BASE]
    a = ist[IST_LAST_ASK] - ist[IST_BASE]
    return b < m or a > n - 1 - m


@njit(cache=True)
def book_snapshot(vol, ist, tick, out):
    """Fill ``out`` with :data:`mmsim.lob.BOOK_COLUMNS`: spread ($, NaN with a side empty),
    depth at 1 / 5 / 10 ticks per side (shares), ``lam_book`` ($ per share)."""
    n = vol.shape[1]
    b, a = ist[IST_BID], ist[IST_ASK]
    out[0] = (a - b) * tick if (b >= 0 and a < n) else np.nan
    for s in range(2):
        for i, k in enumerate((1, 5, 10)):
            out[1 + 3 * s + i] = depth_within(vol, ist, s, k)
    d5 = 0.5 * (out[2] + out[5])
    # a market order eating 5 ticks of one side moves that quote, and the mid by half of it
    out[7] = 0.5 * 5.0 * tick / d5 if d5 > 0.0 else np.inf
