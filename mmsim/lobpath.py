"""The limit order book on the compiled fast path (``market.model: book``).

:func:`mmsim.fastpath.advance` runs a book market through the helpers here, over the
same arrays :class:`~mmsim.lob.BookMarket` and :class:`~mmsim.agents.liquidity.LiquidityFlow`
hold (``vol``, ``ist``, the flow's parameters, random block and counters), so the run is
the simpy agents' bit for bit:

- :func:`book_preview` is ``BookMarket.preview`` (the mid after a market order walked the
  book), read-only instead of on a copy of the book;
- :func:`book_take` and :func:`after_change` are ``BookMarket.submit``'s walk and its
  ``after_change`` (recentre, dry-out check, whether the mid moved);
- :func:`flow_step` is one pass of ``LiquidityFlow.process``'s loop: the flow's orders up
  to the next event of the simpy queue (``nxt``, from the caller, which knows every
  pending event), then the same choice the process makes: sleep until its next order,
  move the clock to its last order (then ``after_change``), or ``after_change`` at once.

The flow process is one more timed source of the kernel: its pending timeout (``ST_FT``,
with its place ``ST_FSEQ`` in simpy's event order) either resumes the loop
(``FK_RESUME``) or ends a block at its last order's clock (``FK_AFTER``); the clocks are
computed as simpy's ``now + delay``. A block run out of random numbers stops the kernel
(``NEED_FLOW``: the caller draws the next block as ``LiquidityFlow._refill`` would) and
resumes where it was.

Dealers posting limit orders (``order: limit``) post through :func:`post_limit`
(``BookMarket._post`` / ``_place``: cancel the resting order, move up the price ladder,
post); their resting orders fill as the flow and market orders hit them (``own``), and the
caller books those fills where the simpy path's ``settle_own`` does.

``bk`` is a tuple ``(vol, ist, own, table, par, rnd, stats, st, drylog, lim)``; row ``r``
of ``lim`` holds the account whose resting order is row ``r`` of ``own`` and its ladder
step (``BookMarket._own_rows`` and ``_steps``). A market with impact passes ``None``
instead: its kernel is compiled without the book's code (``mmsim.fastpath._is_book``).
Units: $ and shares; ``st`` layout in the ``ST_*`` indices; a dry-out row of ``drylog``
is ``t (s), side (0 bid, 1 ask), kind (0 a side empty, 1 spread past its limit), spread
($), mid ($), shares taken from that side so far``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mmsim.agents.liquidity import (
    DONE_BLOCK,
    DONE_TIME,
    P_FUND,
    P_RATE,
    R_GAP,
    S_EXEC,
    S_TAKE_ASK,
    S_TAKE_BID,
    flow_block,
)
from mmsim.lob_kernels import (
    EPS,
    IST_ASK,
    IST_BASE,
    IST_BID,
    IST_LAST_ASK,
    IST_LAST_BID,
    add_limit,
    book_snapshot,
    cancel,
    ladder_tick,
    needs_recenter,
    recenter,
    take,
)

__all__ = [
    "BOOK_SAMPLE",
    "after_change",
    "book_mid",
    "book_preview",
    "book_take",
    "flow_step",
    "own_row",
    "post_limit",
    "record_book",
]

# book state (float64): tick ($), fundamental ($), dry (0/1), dry-outs, taken from bids /
# asks (shares), dropped off the window (shares), max spread ($, inf = none), stop on a
# dry-out (0/1), flow volume (shares); the flow process: active (0/1), pending timeout
# (s), its event id, its kind (FK_*), mid before the block ($), the flow's last order (s),
# the next unused random column, a block interrupted for random numbers (0/1) with its
# nxt (s), clock (s) and the side counters before it; dry-out rows logged; how far the
# flow looks ahead (s: the next discrete event, a pause of the loop looked past)
(ST_TICK, ST_FUND, ST_DRY, ST_NDRY, ST_SIDE0, ST_SIDE1, ST_DROP, ST_MAXSPREAD, ST_STOP,
 ST_FLOWVOL, ST_FON, ST_FT, ST_FSEQ, ST_FKIND, ST_FMIDB, ST_TLAST, ST_CURSOR, ST_FBLOCK,
 ST_FNXT, ST_FW, ST_FB0, ST_FB1, ST_NLOG, ST_LOOK) = range(24)  # fmt: skip
ST_SIZE = 24
FK_RESUME, FK_AFTER = 1.0, 2.0
DRY_NONE, DRY_NEW, DRY_STOP = 0, 1, 2
""":func:`after_change`'s dry-out outcome: none new, a new one recorded, a new one that
stops the run (``on_dry_out: stop``)."""
STEP_SLEEP, STEP_AGAIN, STEP_NEED = 0, 1, 2
""":func:`flow_step`'s outcome: the process sleeps (its timeout is set, give it an event
id), it ran ``after_change`` now and loops again, or it needs the next random block."""
BOOK_SAMPLE = 10  # sample columns of a book: spread, depths, lam_book, taken bid / ask
DRYLOG_COLUMNS = 6


@njit(cache=True, inline="always")
def book_mid(ist, tick):
    """``BookMarket.mid``: the mid of the last known quotes, $."""
    return 0.5 * float(ist[IST_LAST_BID] + ist[IST_LAST_ASK]) * tick


@njit(cache=True, forceinline=False)  # not _check's: see kernel_checks._check
def book_preview(bk, qty):
    """``BookMarket.preview``: the mid ($) right after a market order of ``qty`` shares
    (+ = buy) walked the book, without changing it (``take``'s walk, read only)."""
    vol, ist, st = bk[0], bk[1], bk[7]
    tick = st[ST_TICK]
    if qty == 0.0:
        return book_mid(ist, tick)
    n = vol.shape[1]
    base = ist[0]
    size = abs(qty)
    filled = 0.0
    last = 0
    lb, la = ist[IST_LAST_BID], ist[IST_LAST_ASK]
    if qty > 0.0:
        j = ist[IST_ASK]
        while j < n and size - filled > EPS:
            v = vol[1, j]
            x = min(v, size - filled)
            filled += x
            last = j
            if v - x > EPS:
                break
            j += 1
            while j < n and vol[1, j] <= 0.0:
                j += 1
        if j < n:
            la = base + j
        elif filled > 0.0:
            la = base + last
    else:
        j = ist[IST_BID]
        while j >= 0 and size - filled > EPS:
            v = vol[0, j]
            x = min(v, size - filled)
            filled += x
            last = j
            if v - x > EPS:
                break
            j -= 1
            while j >= 0 and vol[0, j] <= 0.0:
                j -= 1
        if j >= 0:
            lb = base + j
        elif filled > 0.0:
            lb = base + last
    return 0.5 * float(lb + la) * tick


@njit(cache=True)
def book_take(bk, qty):
    """``BookMarket.submit``'s walk of a market order of ``qty`` shares (+ = buy):
    ``(signed filled shares, exec price $, NaN when nothing filled)``; counts the
    shares taken from the side it hit."""
    vol, ist, own, st = bk[0], bk[1], bk[2], bk[7]
    buy = qty > 0.0
    n = vol.shape[1]
    filled, notional = take(vol, ist, buy, abs(qty), n if buy else -1, own)
    st[ST_SIDE1 if buy else ST_SIDE0] += filled
    signed = filled if buy else -filled  # -0.0 for a sell that filled nothing, as there
    if filled > 0.0:
        return signed, notional * st[ST_TICK] / filled
    return signed, np.nan


@njit(cache=True)
def after_change(bk, t, mid_before):
    """``BookMarket.after_change`` at clock ``t`` (s): recentre the window if needed, check
    for a dry-out (logged in ``drylog``), and say whether the mid moved from
    ``mid_before`` ($). Returns ``(DRY_*, moved)``; with ``DRY_STOP`` nothing after the
    check is done (the simpy path raises there)."""
    vol, ist, st, log = bk[0], bk[1], bk[7], bk[8]
    n = vol.shape[1]
    if needs_recenter(ist, n):
        st[ST_DROP] += recenter(vol, ist)
    b, a = ist[IST_BID], ist[IST_ASK]
    side = 0 if b < 0 else (1 if a >= n else -1)
    tick = st[ST_TICK]
    kind = -1
    if side >= 0:
        kind = 0
    elif (a - b) * tick > st[ST_MAXSPREAD] + 1e-12:
        kind = 1
    dry = DRY_NONE
    if kind < 0:
        st[ST_DRY] = 0.0
    elif st[ST_DRY] == 0.0:
        st[ST_DRY] = 1.0
        st[ST_NDRY] += 1.0
        k = int(st[ST_NLOG])
        if k < log.shape[0]:
            s = max(side, 0)
            log[k, 0] = t
            log[k, 1] = s
            log[k, 2] = kind
            log[k, 3] = (a - b) * tick
            log[k, 4] = book_mid(ist, tick)
            log[k, 5] = st[ST_SIDE0 + s]
        st[ST_NLOG] = k + 1
        dry = DRY_STOP if st[ST_STOP] != 0.0 else DRY_NEW
        if dry == DRY_STOP:
            return dry, False
    return dry, book_mid(ist, tick) != mid_before


@njit(cache=True)
def flow_step(bk, W, nxt, mid):
    """One pass of ``LiquidityFlow.process``'s loop at clock ``W`` (s), the next other
    event of the queue at ``nxt`` (s), the mid at ``mid`` ($); a pass interrupted by
    ``STEP_NEED`` resumes with the ``nxt`` and mid it started with. Returns ``STEP_*``;
    on ``STEP_SLEEP`` the pending timeout (``ST_FT``, ``ST_FKIND``) is set; on
    ``STEP_AGAIN`` the caller runs :func:`after_change` with ``st[ST_FMIDB]`` at ``W``."""
    vol, ist, own, table, par, rnd, stats, st = bk[:8]
    nb = rnd.shape[1]
    if st[ST_FBLOCK] == 0.0:
        st[ST_FMIDB] = mid
        par[P_FUND] = st[ST_FUND] / st[ST_TICK]
        st[ST_FB0] = stats[S_TAKE_BID]
        st[ST_FB1] = stats[S_TAKE_ASK]
        st[ST_FNXT] = nxt
        st[ST_FW] = W
    else:
        nxt = st[ST_FNXT]
    cursor = int(st[ST_CURSOR])
    t_last = st[ST_TLAST]
    while True:
        if cursor >= nb:
            st[ST_FBLOCK] = 1.0
            st[ST_CURSOR] = cursor
            st[ST_TLAST] = t_last
            return STEP_NEED
        cursor, t_last, code = flow_block(vol, ist, table, par, rnd, cursor, t_last, nxt,
                                          stats, own)  # fmt: skip
        if code != DONE_BLOCK:
            break
    st[ST_FBLOCK] = 0.0
    st[ST_CURSOR] = cursor
    st[ST_TLAST] = t_last
    st[ST_SIDE0] += stats[S_TAKE_BID] - st[ST_FB0]
    st[ST_SIDE1] += stats[S_TAKE_ASK] - st[ST_FB1]
    st[ST_FLOWVOL] = stats[S_EXEC]
    if code == DONE_TIME and t_last <= W:  # nothing before nxt: sleep until the next order
        gap = rnd[R_GAP, cursor] / par[P_RATE]
        st[ST_FT] = W + max(t_last + gap - W, 0.0)
        st[ST_FKIND] = FK_RESUME
        return STEP_SLEEP
    if t_last > W:  # the clock moves to the last order, then after_change
        st[ST_FT] = W + (t_last - W)
        st[ST_FKIND] = FK_AFTER
        return STEP_SLEEP
    return STEP_AGAIN


@njit(cache=True)
def record_book(bk, out):
    """A sample's book columns (:data:`mmsim.sampler.BOOK_SERIES`) into ``out``."""
    st = bk[7]
    book_snapshot(bk[0], bk[1], st[ST_TICK], out[:8])
    out[8] = st[ST_SIDE0]
    out[9] = st[ST_SIDE1]


@njit(cache=True)
def post_limit(bk, r, qty):
    """``BookMarket._post`` after its ``settle_own``: cancel own row ``r``'s resting
    order, pick the ladder step (one up while the last order in the same direction is
    left unfilled, else 0; ``lim`` keeps it per row) and place ``qty`` shares (+ = buy)
    there (``_place``): the part that crosses executes at once. Returns ``(signed
    executed shares, exec price $, NaN when nothing executed)``; the rest rests in the
    book as row ``r`` (side, absolute tick, shares ahead, own, filled)."""
    vol, ist, own, st, lim = bk[0], bk[1], bk[2], bk[7], bk[9]
    side = 0 if qty > 0.0 else 1
    unfilled = own[r, 3] > 0.0
    if unfilled:
        cancel(vol, ist, int(own[r, 0]), int(own[r, 1]) - ist[IST_BASE], own[r, 3])
        own[r, 3] = 0.0
    step = 0
    if unfilled and own[r, 0] == side:
        step = min(int(lim[r, 1]) + 1, 3)
    lim[r, 1] = step
    size = abs(qty)
    tick_abs = ladder_tick(ist[IST_LAST_BID], ist[IST_LAST_ASK], side, step)
    j = tick_abs - ist[IST_BASE]
    n = vol.shape[1]
    filled, notional, _ = add_limit(vol, ist, side == 0, j, size, own)
    left = size - filled
    ahead = vol[side, j] - left if 0 <= j < n else 0.0
    own[r, 0] = side
    own[r, 1] = tick_abs
    own[r, 2] = max(ahead, 0.0)
    own[r, 3] = left if left > EPS else 0.0
    own[r, 4] = 0.0
    signed = filled if side == 0 else -filled
    if filled > 0.0:
        st[ST_SIDE0 + 1 - side] += filled
        return signed, notional * st[ST_TICK] / filled
    return signed, np.nan


@njit(cache=True, forceinline=False)  # not _check's: see kernel_checks._check
def own_row(bk, acc):
    """The row of ``own`` of account ``acc``'s limit orders, -1 if it sends market orders."""
    lim = bk[9]
    for r in range(lim.shape[0]):
        if lim[r, 0] == acc:
            return r
    return -1
