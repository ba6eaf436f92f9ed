"""The compiled fast path: news ticks, noise orders and dealers' checks, in numba.

:func:`advance` plays the high-frequency events of a run (news ticks every ``dt``,
Poisson noise orders, the same-instant hedging cascades of price-triggered dealers with
no latency, lagged dealers' checks one latency after a price change and their rechecks,
scheduled dealers' checks, capacity windows and the sleep until one rolls, and on a
limit order book its liquidity flow: :mod:`mmsim.lobpath`) from the
current clock up to a horizon, the next discrete event of the
simpy loop (:mod:`mmsim.hotloop` drives it segment by segment). It follows the simpy
agents step for step: the same random numbers (pre-drawn blocks, :mod:`mmsim.agents.noise`)
in the same order, the same arithmetic, the same order of same-instant events (every
timeout due at an instant first, in simpy's (time, event id) order: the kernel numbers
its timeouts (news, noise, the dealers') as simpy's event ids would; then the dealers a
price change woke, in the order they began to wait, each re-checking after its own fill
behind the others), and the
dealer's rules from :mod:`mmsim.hedge_rules`; so a run is bit-identical to the simpy path.

A dealer whose delta is summed exactly over its lines skips the pricing of a check that
provably cannot trade: after an evaluation (and after each fill) it gets a skip window, a
range of spots and clocks over which :func:`mmsim.delta_bounds.delta_box` bounds its
option delta; a check inside the window whose bounds plus the shares held are within the
band returns as the evaluated check would (the rounding of ``delta + shares`` is
monotone), so no check that would trade is skipped (:func:`_skip_window`).

State lives in plain arrays (layouts: the ``MK_*``, ``NW_*``, ``NZ_*``, ``D_*``, ``Q_*``
indices below); units as in the agents: $ for prices, shares, s for clocks. The kernel
returns a status; ``NEED_*`` and ``FULL`` ask the caller to refill or flush and call again
(the state is consistent between events), the rest report a divergence whose details
are in ``info``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from mmsim.book_kernels import holder_cols, holder_sum
from mmsim.delta_bounds import delta_box
from mmsim.delta_table import table_eval
from mmsim.hedge_rules import (
    LAGGED_OVERSHOOTS,
    MAX_SOLVE_STEPS,
    MIN_ORDER,
    OVERCORRECTING,
    RUNAWAY_MIN_SIZE,
    SCHEDULED_RUNAWAY_ROUNDS,
    SETTLING,
    SOLVE_OVERSHOOT,
    bracket_probe,
    cascade_step,
    fill_outcome,
    plan_hedge,
    solve_pick,
    solve_update,
)
from mmsim.lobpath import DRY_STOP as BOOK_DRY_STOP
from mmsim.lobpath import (
    FK_AFTER,
    ST_FBLOCK,
    ST_FKIND,
    ST_FMIDB,
    ST_FON,
    ST_FSEQ,
    ST_FT,
    ST_FUND,
    ST_FW,
    ST_NLOG,
    ST_TICK,
    STEP_AGAIN,
    STEP_NEED,
    after_change,
    book_mid,
    book_preview,
    book_take,
    flow_step,
    own_row,
    post_limit,
    record_book,
)

__all__ = ["advance"]

# market state (float64): mid ($), volume (shares), changes (count), half spread ($),
# model (0 linear, 1 sqrt, 2 the limit order book: ``bk``, :mod:`mmsim.lobpath`),
# lam ($/share), Y, daily vol, adv (shares), price ceiling ($)
MK_MID, MK_VOLUME, MK_CHANGES, MK_HALF, MK_MODEL, MK_LAM, MK_Y, MK_DVOL, MK_ADV, MK_CEIL = range(10)
MK_SIZE = 10
# news: active (0/1), next tick (s), dt (s), scale (fraction of S per unit z), stop (s),
# index of the next z in the block
NW_ON, NW_NEXT, NW_DT, NW_SCALE, NW_STOP, NW_IDX = range(6)
# noise: active, next arrival (s; NaN = its gap is in the next block), stop (s, inf =
# none), account, index of the next order in the block, volume (shares)
NZ_ON, NZ_NEXT, NZ_STOP, NZ_ACC, NZ_IDX, NZ_VOLUME = range(6)
# per dealer (rows): account, center target (0/1), hedge fraction, band base (shares, or
# shares per $ when per-notional), per-notional (0/1), hedge volume (shares), hedge cost
# ($), rehedges, last delta before hedge (shares), solve next (0/1), overshoots,
# post valid (0/1), post changes, post t (s), post net delta (shares), post gamma
# (shares per $1), cascade rounds, growing rounds, last |qty| (shares), first line, lines;
# then how its option delta is evaluated (``D_TMODE``: a ``TM_*``) and, for a table, its
# window and fit: valid from t0 to t1 (s, inclusive), while the clock is before the next
# expiry of its live lines (s) and spot within ``half`` ($) of ``center`` ($); ``H`` (s),
# coefficient columns (first, count), near and changed lines (first, count, in ``xlines``)
(
    D_ACC,
    D_CENTER,
    D_HF,
    D_BAND,
    D_NOTIONAL,
    D_HVOL,
    D_HCOST,
    D_NREH,
    D_LASTD,
    D_SOLVE,
    D_OVER,
    D_POST,
    D_POST_CH,
    D_POST_T,
    D_POST_D,
    D_POST_G,
    D_ROUNDS,
    D_GROW,
    D_LAST,
    D_OFF,
    D_N,
    D_TMODE,
    D_T0,
    D_T1,
    D_TEXP,
    D_CENTER_S,
    D_HALF,
    D_H,
    D_COFF,
    D_CN,
    D_NOFF,
    D_NN,
    D_XOFF,
    D_XN,
    D_INST,
    D_LAT,
    D_INT,
    D_WT,
    D_WSEQ,
    D_WKIND,
    D_CAP,
    D_CAPW,
    D_WS,
    D_WU,
    D_CAPB,
    D_SAME,
    D_ALT,
    D_SLAST,
    D_WATCH,
    D_WIN,
    D_WLO,
    D_WHI,
    D_WT1,
    D_WDLO,
    D_WDHI,
) = range(55)
D_SIZE = 55
"""Then: instant (price trigger, no latency: 0/1), latency (s), schedule interval (s);
the dealer's pending timeout: when (s), its place in simpy's order (the event id the
timeout would get, ``Q_SEQ``) and what it is (``WK_*``); capacity (shares per window,
inf = none), window (s), current window's start (s) and shares used, capacity bound
(0/1); a scheduled dealer's growing rehedges in a row (same sign, alternating), its last
signed hedge (shares) and whether it watches them (several holders); its skip window
(:func:`_skip_window`): whether one is set (0/1), spots from ``D_WLO`` to ``D_WHI`` ($),
clocks up to ``D_WT1`` (s), and proven bounds on its option delta there (shares)."""
WK_NONE, WK_LAG, WK_PHASE, WK_SCHED, WK_SLEEP = 0.0, 1.0, 2.0, 3.0, 4.0
"""Pending dealer timeouts: none (waiting on a price change or in the run queue), a
lagged check, a scheduled dealer's phase, a scheduled check, the end of a capacity
window a price-triggered dealer sleeps until (its capacity used up)."""
TM_UNKNOWN, TM_EXACT, TM_TABLE, TM_EXACT_UNTIL = -1.0, 0.0, 1.0, 2.0
"""How a dealer's option delta is evaluated (the book's ``holder_delta_gamma``): not
known (ask: ``NEED_TABLE``), its lines exactly for the whole call, its delta table (plus
near and changed lines exactly) within the window, its lines exactly until ``D_T1`` (a
table that failed validation, retried then) and the next expiry."""
# queues (int64): run-queue head and length, wait-list head and length, fills recorded,
# next sample, samples recorded,
# evaluations replayed and logged in the current check; the next event id (simpy's
# ``eid`` order of the kernel's timeouts), the pending news tick's and noise order's ids;
# checks skipped in a skip window (diagnostics)
(Q_RHEAD, Q_RLEN, Q_WHEAD, Q_WLEN, Q_FILLS, Q_SAMPLE, Q_SAMPLES, Q_EPOS, Q_ELEN, Q_SEQ, Q_NSEQ,
 Q_ZSEQ, Q_SKIPS) = range(13)  # fmt: skip
Q_SIZE = 13
ELOG_SIZE = 80  # evaluations one check can make: 1 + 1 + MAX_SOLVE_STEPS + 1, with room
FILL_COLUMNS = 8  # t, account, booking (0 = order), qty, before, after, exec, cost

OK, NEED_NEWS, NEED_NOISE, FULL = 0, 1, 2, 3
PRICE_INVALID, PRICE_CEILING, DIVERGED, RUNAWAY, SAMPLES, NEED_TABLE = 4, 5, 6, 7, 8, 9
SCHED_RUNAWAY = 10
NEED_FLOW, DRY_STOP = 11, 12
"""Statuses of :func:`advance`; see the module docstring. ``info`` holds: for
PRICE_INVALID t, before, after, cause (-1 news, else the account), qty; for PRICE_CEILING
t, account, qty, price after; for DIVERGED t, dealer, outcome, before, after, qty; for
RUNAWAY t, dealer, rounds; for SCHED_RUNAWAY t, dealer, same sign (0/1); for DRY_STOP t
(the book's dry-out log has the row). NEED_FLOW: the book's liquidity flow needs its next
random block (``LiquidityFlow._refill``). SAMPLES: the
sample buffer is full (replay it, call again).
NEED_TABLE: t, dealer, spot: the dealer's evaluation is not valid there (``D_TMODE``);
load it as the book would answer at that spot and clock (building or refreshing its
table), then call again: the interrupted check resumes, replaying the evaluations it
had made (``elog``), so the run is the one of the simpy agents."""

_NOTIONAL_UNIT = 1.0e8


@njit(cache=True, inline="always")
def _impact(mk, q, S):
    """Price change ($) of an order of ``q`` shares at ``S`` (Market's impact models)."""
    if mk[MK_MODEL] == 0.0:
        return mk[MK_LAM] * q
    return math.copysign(mk[MK_Y] * mk[MK_DVOL] * S * math.sqrt(abs(q) / mk[MK_ADV]), q)


@njit(cache=True)  # not inlined: inlining it into _preview_any's inlined overload trips
def _preview(mk, qty):  # numba's IR scope check (NumbaIRAssumptionWarning at compile time)
    before = mk[MK_MID]
    return before + _impact(mk, qty, before) if qty != 0.0 else before


def _preview_any(mk, bk, qty):
    """The mid ($) after a market order of ``qty`` shares (+ = buy): ``_preview`` for a
    market with impact (``bk`` None), the book's walk for a book (compiled per type of
    ``bk``, :func:`_is_book`)."""
    raise NotImplementedError  # numba only: see its overload


def _is_book(bk) -> bool:
    """Whether a kernel is compiled for a book: ``bk`` is the book's state, not None.
    Every book-only piece is chosen on this at compile time (``@overload``), so the
    kernel of a market with impact holds no book code (and runs as fast as without it)."""
    return not isinstance(bk, (types.NoneType, types.Omitted))


@overload(_preview_any, inline="always")
def _preview_any_ov(mk, bk, qty):
    if _is_book(bk):
        return lambda mk, bk, qty: book_preview(bk, qty)
    return lambda mk, bk, qty: _preview(mk, qty)


@njit(cache=True)
def _valid(dl, d, S, t):
    """Whether dealer ``d``'s loaded evaluation may answer at spot ``S`` ($), clock ``t``
    (s): the book would evaluate the same way there (``TM_*``)."""
    mode = dl[d, D_TMODE]
    if mode == TM_EXACT:
        return True
    if mode == TM_TABLE:
        return (
            dl[d, D_T0] <= t <= dl[d, D_T1]
            and t < dl[d, D_TEXP]
            and abs(S - dl[d, D_CENTER_S]) <= dl[d, D_HALF]
        )
    if mode == TM_EXACT_UNTIL:
        return t < dl[d, D_T1] and t < dl[d, D_TEXP]
    return False


@njit(cache=True)
def _value_at(dl, d, S, t, lines, surf, scratch, coefs, xlines):
    """Option share delta and gamma of dealer ``d`` at a point where its evaluation is
    valid (:func:`_valid`): exact over its lines (``holder_sum``), or the book's
    tabulated sum (``table_eval``, then its near lines, then its changed lines)."""
    if dl[d, D_TMODE] != TM_TABLE:
        off = int(dl[d, D_OFF])
        n = int(dl[d, D_N])
        return holder_sum(
            S, t, surf[5], lines[:, off : off + n], n, surf[0], surf[1], surf[2], surf[3],
            surf[4], scratch,
        )  # fmt: skip
    c0 = int(dl[d, D_COFF])
    H = dl[d, D_H]
    x = (S - dl[d, D_CENTER_S]) / dl[d, D_HALF]
    u = (t - dl[d, D_T0]) / H
    delta, gamma = table_eval(coefs[:, c0 : c0 + int(dl[d, D_CN])], x, u, H / surf[5])
    for j in range(2):
        off = int(dl[d, D_NOFF + 2 * j])
        k = int(dl[d, D_NN + 2 * j])
        if k:
            dd, gg = holder_sum(
                S, t, surf[5], xlines[:, off : off + k], k, surf[0], surf[1], surf[2],
                surf[3], surf[4], scratch,
            )  # fmt: skip
            delta += dd
            gamma += gg
    return delta, gamma


@njit(cache=True, inline="always")
def _eval(dl, d, S, t, lines, surf, scratch, coefs, xlines, elog, q, info):
    """Option share delta and gamma of dealer ``d`` (as the book's ``holder_delta_gamma``):
    ``(ok, delta, gamma)``; not ``ok`` when the loaded evaluation cannot answer at
    ``(S, t)`` (``info``: t, d, S; the check stops, NEED_TABLE). Evaluations made before
    such a stop are replayed from ``elog`` when the check resumes."""
    k = q[Q_EPOS]
    if k < q[Q_ELEN]:
        q[Q_EPOS] = k + 1
        return True, elog[k, 0], elog[k, 1]
    if dl[d, D_TMODE] == TM_EXACT:  # valid for the whole call: no stop to replay from
        delta, gamma = holder_cols(
            S, t, surf[5], lines, int(dl[d, D_OFF]), int(dl[d, D_N]), surf[0], surf[1],
            surf[2], surf[3], surf[4],
        )  # fmt: skip
        q[Q_EPOS] = k + 1
        return True, delta, gamma
    if not _valid(dl, d, S, t):
        info[0], info[1], info[2] = t, d, S
        return False, 0.0, 0.0
    delta, gamma = _value_at(dl, d, S, t, lines, surf, scratch, coefs, xlines)
    elog[k, 0] = delta
    elog[k, 1] = gamma
    q[Q_EPOS] = k + 1
    q[Q_ELEN] = k + 1
    return True, delta, gamma


def _order_any(t, acc, qty, mk, bk, shares, cash, fills, q, info):
    """An agent's non-zero order on the market, plus the engine's fill listener: ``(status,
    cost, executed qty, whether the market notified, whether it was a limit order)``.
    With impact (``bk`` None) :func:`_submit`; on a book a market order walks it
    (:func:`_submit_book`), a dealer posting limit orders re-posts (:func:`_post`)."""
    raise NotImplementedError  # numba only: see its overload


@overload(_order_any, inline="always")
def _order_any_ov(t, acc, qty, mk, bk, shares, cash, fills, q, info):
    if _is_book(bk):

        def book(t, acc, qty, mk, bk, shares, cash, fills, q, info):
            r = own_row(bk, acc)
            if r >= 0:
                status, cost, executed, moved = _post(t, acc, r, qty, mk, bk, shares, cash,
                                                      fills, q, info)  # fmt: skip
                return status, cost, executed, moved, True
            status, cost, executed, moved = _submit_book(t, acc, qty, mk, bk, shares, cash,
                                                         fills, q, info)  # fmt: skip
            return status, cost, executed, moved, False

        return book

    def impact(t, acc, qty, mk, bk, shares, cash, fills, q, info):
        status, cost = _submit(t, acc, qty, mk, shares, cash, fills, q, info)
        return status, cost, qty, True, False

    return impact


@njit(cache=True)
def _submit_book(t, acc, qty, mk, bk, shares, cash, fills, q, info):
    """BookMarket.submit of a non-zero market order: the book fills what its other side
    holds and notifies when the mid moved; :func:`_submit_any`'s tuple."""
    before = mk[MK_MID]
    qty, exec_price = book_take(bk, qty)
    if qty == 0.0:
        exec_price = before
    after = book_mid(bk[1], bk[7][ST_TICK])
    mk[MK_MID] = after
    if qty == 0.0:
        status, cost = _fill_row(t, acc, qty, before, after, exec_price, mk, fills, q, info)
    else:
        status, cost = _pool_fill(t, acc, qty, before, after, exec_price, mk, shares, cash,
                                  fills, q, info)  # fmt: skip
    if status != OK:
        return status, cost, qty, False
    return _book_after(t, before, cost, qty, mk, bk, shares, cash, fills, q, info)


@njit(cache=True)
def _submit(t, acc, qty, mk, shares, cash, fills, q, info):
    """Market.submit of a non-zero order plus the engine's fill listener; returns
    ``(status, cost)``."""
    before = mk[MK_MID]
    dS = _impact(mk, qty, before)
    exec_price = before + math.copysign(mk[MK_HALF], qty) + 0.5 * dS
    after = before + dS
    mk[MK_MID] = after
    if not (math.isfinite(after) and after > 0.0):
        info[0], info[1], info[2], info[3], info[4] = t, before, after, acc, qty
        return PRICE_INVALID, 0.0
    return _pool_fill(t, acc, qty, before, after, exec_price, mk, shares, cash, fills, q, info)


@njit(cache=True)
def _post(t, acc, r, qty, mk, bk, shares, cash, fills, q, info):
    """BookMarket.submit of a dealer posting limit orders (``_post``, ``_place``): its
    resting order (row ``r`` of ``own``) re-posted as ``qty`` shares on the ladder; what
    crosses executes at once. Returns :func:`_submit`'s tuple (executed qty)."""
    before = mk[MK_MID]
    status = _settle_own(t, mk, bk, shares, cash, fills, q, info)
    if status != OK:
        return status, 0.0, 0.0, False
    signed, exec_price = post_limit(bk, r, qty)
    after = book_mid(bk[1], bk[7][ST_TICK])
    mk[MK_MID] = after
    if signed == 0.0:
        exec_price = before
    cost = (exec_price - before) * signed
    if signed != 0.0:
        status, cost = _pool_fill(t, acc, signed, before, after, exec_price, mk, shares, cash,
                                  fills, q, info)  # fmt: skip
        if status != OK:
            return status, cost, signed, False
    return _book_after(t, before, cost, signed, mk, bk, shares, cash, fills, q, info)


@njit(cache=True)
def _book_after(t, before, cost, qty, mk, bk, shares, cash, fills, q, info):
    """The end of a book order: ``settle_own``, then ``after_change`` (a dry-out that
    stops the run: DRY_STOP); returns :func:`_submit`'s tuple."""
    status = _settle_own(t, mk, bk, shares, cash, fills, q, info)
    if status != OK:
        return status, cost, qty, False
    dry, moved = after_change(bk, t, before)
    if dry == BOOK_DRY_STOP:
        info[0] = t
        return DRY_STOP, cost, qty, False
    return OK, cost, qty, moved


@njit(cache=True)
def _settle_own(t, mk, bk, shares, cash, fills, q, info):
    """BookMarket.settle_own at ``t`` (s): the executed part of the dealers' resting
    orders booked at their price against the pool, one trade-log row each, in row order."""
    own, lim = bk[2], bk[9]
    tick = bk[7][ST_TICK]
    for r in range(own.shape[0]):
        x = own[r, 4]
        if x <= 0.0:
            continue
        own[r, 4] = 0.0
        price = own[r, 1] * tick
        qty = x if own[r, 0] == 0.0 else -x
        mid = mk[MK_MID]
        status, _ = _pool_fill(t, int(lim[r, 0]), qty, mid, mid, price, mk, shares, cash, fills,
                               q, info)  # fmt: skip
        if status != OK:
            return status
    return OK


@njit(cache=True, inline="always")
def _pool_fill(t, acc, qty, before, after, exec_price, mk, shares, cash, fills, q, info):
    """A fill of ``qty`` shares at ``exec_price`` booked against the pool, then the
    engine's listener (:func:`_fill_row`); returns ``(status, cost)``."""
    shares[acc] += qty
    shares[0] -= qty
    cash[acc] -= qty * exec_price
    cash[0] += qty * exec_price
    mk[MK_VOLUME] += abs(qty)
    return _fill_row(t, acc, qty, before, after, exec_price, mk, fills, q, info)


@njit(cache=True, inline="always")
def _fill_row(t, acc, qty, before, after, exec_price, mk, fills, q, info):
    """The engine's fill listener: the price ceiling, then a trade-log row; returns
    ``(status, cost)``."""
    cost = (exec_price - before) * qty
    if not after < mk[MK_CEIL]:
        info[0], info[1], info[2], info[3] = t, acc, qty, after
        return PRICE_CEILING, cost
    k = q[Q_FILLS]
    fills[k, 0] = t
    fills[k, 1] = acc
    fills[k, 2] = 0.0
    fills[k, 3] = qty
    fills[k, 4] = before
    fills[k, 5] = after
    fills[k, 6] = exec_price
    fills[k, 7] = cost
    q[Q_FILLS] = k + 1
    return OK, cost


@njit(cache=True)
def _net_after(dl, d, qty, t, mk, bk, shares, lines, surf, scratch, coefs, xlines, elog, q,
               info):  # fmt: skip
    """DealerAgent.net_delta_after: net delta had a hedge of ``qty`` traded now;
    ``(ok, net delta)`` (:func:`_eval`)."""
    S = _preview_any(mk, bk, qty)
    ok, delta, _ = _eval(dl, d, S, t, lines, surf, scratch, coefs, xlines, elog, q, info)
    return ok, delta + shares[int(dl[d, D_ACC])] + qty


@njit(cache=True)
def _solve(
    dl, d, delta, naive, target, band, t, mk, bk, shares, lines, surf, scratch, coefs, xlines,
    elog, q, info,
):  # fmt: skip
    """DealerAgent._solve, the same steps; ``(ok, qty)`` (:func:`_eval`)."""
    a = 0.0
    ga = delta - target
    b = naive
    ok, gb = _net_after(dl, d, naive, t, mk, bk, shares, lines, surf, scratch, coefs, xlines, elog,
                        q, info)  # fmt: skip
    if not ok:
        return False, 0.0
    gb -= target
    if ga * gb > 0.0:
        return True, naive
    fa = ga
    fb = gb
    kept = 0
    for _ in range(MAX_SOLVE_STEPS):
        if abs(b - a) <= 1.0:
            break
        c = bracket_probe(a, fa, b, fb)
        ok, gc = _net_after(dl, d, c, t, mk, bk, shares, lines, surf, scratch, coefs, xlines, elog,
                            q, info)  # fmt: skip
        if not ok:
            return False, 0.0
        gc -= target
        if abs(gc) < 0.5 * MIN_ORDER:
            return True, c
        a, ga, b, gb, fa, fb, kept = solve_update(a, ga, b, gb, fa, fb, kept, c, gc)
    return True, solve_pick(a, ga, b, gb, target, band)


# inlined (numba IR) into its two callers: a call passing its 16 arrays cost ~50 ns per
# check, 1.3 ms of a long_gamma day's 7.5 (cold compile +3 s)
@njit(cache=True, inline="always")
def _check(
    dl, d, t, mk, bk, shares, cash, lines, surf, scratch, fills, q, runq, fresh, waitq, info,
    coefs, xlines, elog,
):  # fmt: skip
    """DealerAgent.check (instant, lagged or scheduled, with or without a capacity
    limit; market orders, or limit orders on a book); returns ``(status, executed
    qty)``. Nothing changes before the order is sent, and the post-fill evaluation is
    known valid before it is: a NEED_TABLE stop leaves the state as it was, and the check
    is played again (its evaluations replayed, ``elog``)."""
    acc = int(dl[d, D_ACC])
    mid = mk[MK_MID]
    have = False
    delta = 0.0
    gamma = 0.0
    # right after our own fill: reuse that valuation if current
    if dl[d, D_POST] != 0.0 and dl[d, D_POST_CH] == mk[MK_CHANGES] and dl[d, D_POST_T] == t:
        delta = dl[d, D_POST_D]
        gamma = dl[d, D_POST_G]
        have = True
    band = dl[d, D_BAND]
    if dl[d, D_NOTIONAL] != 0.0:
        band = band * mid / _NOTIONAL_UNIT
    flat = max(band, MIN_ORDER)
    if not have:
        # inside its skip window the delta is proven within the band: the check would
        # find it so (rounding is monotone: fl(delta + h) <= fl(hi + h) <= flat)
        if (
            dl[d, D_WIN] != 0.0
            and dl[d, D_WLO] <= mid <= dl[d, D_WHI]
            and t <= dl[d, D_WT1]
            and dl[d, D_TMODE] == TM_EXACT
            and dl[d, D_WDHI] + shares[acc] <= flat
            and dl[d, D_WDLO] + shares[acc] >= -flat
        ):
            dl[d, D_POST] = 0.0
            q[Q_SKIPS] += 1
            return OK, 0.0
        ok, delta, gamma = _eval(dl, d, mid, t, lines, surf, scratch, coefs, xlines, elog, q,
                                 info)  # fmt: skip
        if not ok:
            return NEED_TABLE, 0.0
        if abs(delta + shares[acc]) <= flat and dl[d, D_TMODE] == TM_EXACT:
            _skip_window(dl, d, mid, t, delta, gamma, shares[acc], flat, lines, surf)
        delta += shares[acc]
    if abs(delta) <= flat:
        dl[d, D_POST] = 0.0
        return OK, 0.0
    hf = dl[d, D_HF]
    goal, qty = plan_hedge(delta, band, dl[d, D_CENTER] != 0.0, hf)
    solve_next = dl[d, D_SOLVE] != 0.0
    solved = False
    instant = dl[d, D_INST] != 0.0
    if qty != 0.0 and instant and (solve_next or gamma > 0.0):
        response = 1.0 + gamma * (_preview_any(mk, bk, qty) - mid) / qty
        if solve_next or hf * response > SOLVE_OVERSHOOT:
            target = delta + hf * (goal - delta)
            ok, qty = _solve(
                dl, d, delta, qty, target, band, t, mk, bk, shares, lines, surf, scratch,
                coefs, xlines, elog, q, info,
            )  # fmt: skip
            if not ok:
                return NEED_TABLE, 0.0
        solved = True
    cap = dl[d, D_CAP]
    capped = not math.isinf(cap)
    ws = dl[d, D_WS]
    wu = dl[d, D_WU]
    if capped:  # DealerAgent._within_capacity: the window rolls, the hedge fits its room
        window = dl[d, D_CAPW]
        if t >= ws + window:
            ws = window * math.floor(t / window)
            wu = 0.0
        room = max(cap - wu, 0.0)
        qty = math.copysign(min(abs(qty), float(math.floor(room))), qty)
    if qty != 0.0 and not _valid(dl, d, _preview_any(mk, bk, qty), t):
        info[0], info[1], info[2] = t, d, _preview_any(mk, bk, qty)  # the post-fill evaluation
        return NEED_TABLE, 0.0
    # the check goes through from here
    dl[d, D_POST] = 0.0
    dl[d, D_LASTD] = delta
    if solved:
        dl[d, D_SOLVE] = 0.0
    if capped:
        dl[d, D_WS] = ws
        dl[d, D_WU] = wu + abs(qty)
    if qty == 0.0:
        return OK, 0.0
    status, cost, executed, moved, limit = _order_any(t, acc, qty, mk, bk, shares, cash, fills,
                                                      q, info)  # fmt: skip
    if status != OK:
        return status, qty
    if moved:
        _wake(mk, q, runq, fresh, waitq, True)
    dl[d, D_HVOL] += abs(qty)
    dl[d, D_HCOST] += cost
    dl[d, D_NREH] += 1.0
    qty = executed  # less on a dry book side: the fill is judged and returned as executed
    if qty == 0.0 or limit:  # a limit order fills later, at rest: nothing to judge
        return OK, qty
    # judge the fill (DealerAgent._judge_fill)
    ok, d_after, g_after = _eval(dl, d, mk[MK_MID], t, lines, surf, scratch, coefs, xlines,
                                 elog, q, info)  # fmt: skip
    after = d_after + shares[acc]
    if dl[d, D_TMODE] == TM_EXACT:
        _skip_window(dl, d, mk[MK_MID], t, d_after, g_after, shares[acc], flat, lines, surf)
    dl[d, D_POST] = 1.0
    dl[d, D_POST_CH] = mk[MK_CHANGES]
    dl[d, D_POST_T] = t
    dl[d, D_POST_D] = after
    dl[d, D_POST_G] = g_after
    outcome = fill_outcome(delta, after, goal, qty)
    if abs(qty) < RUNAWAY_MIN_SIZE:
        outcome = SETTLING
    if outcome == SETTLING:
        dl[d, D_OVER] = 0.0
        return OK, qty
    if outcome == OVERCORRECTING:
        if instant:
            dl[d, D_SOLVE] = 1.0
            return OK, qty
        dl[d, D_OVER] += 1.0
        if dl[d, D_OVER] < LAGGED_OVERSHOOTS:
            return OK, qty
    if capped:  # the cascade is left to the capacity limit
        dl[d, D_CAPB] = 1.0
        return OK, qty
    info[0], info[1], info[2], info[3], info[4], info[5] = t, d, outcome, delta, after, qty
    return DIVERGED, qty


@njit(cache=True)
def advance(
    horizon, inclusive, wake, mk, bk, news, z, noise, gaps, sizes, sides, dl, lines, surf,
    shares, cash, fills, q, runq, fresh, waitq, info, stimes, samples, sample_at_horizon, coefs,
    xlines, elog,
):  # fmt: skip
    """Play the high-frequency events due before ``horizon`` (s; at it too when
    ``inclusive``) and the cascades they set off; ``wake`` wakes the waiting dealers
    first (a discrete event changed the market). Returns a status (module docstring).

    ``fresh[d]`` marks a dealer woken by a price change (its cascade counters restart);
    ``runq`` / ``waitq`` are ring buffers of dealer indices (run queue, waiting list).
    A sample due at ``stimes[q[Q_SAMPLE]]`` (s, before the horizon, or at it when
    ``sample_at_horizon``: not when the loop stops there) comes before
    everything else at its instant: its row of ``samples`` holds the mid, the market
    volume, then per dealer the shares, the cash and the hedge volume. The sampler reads
    a tabulated dealer's table at the sample's spot and clock: a sample where it is not
    valid stops the call first (NEED_TABLE), as the sampler would rebuild it there.

    ``coefs`` (6 rows) and ``xlines`` (a line table) hold the dealers' table coefficients
    and their near and changed lines (``D_COFF``..``D_XN``); ``elog`` (``(ELOG_SIZE, 2)``)
    the evaluations of a check stopped by NEED_TABLE.

    A book market (``mk[MK_MODEL] == 2``, state in ``bk``: :mod:`mmsim.lobpath`; None for a
    market with impact, whose kernel is compiled without the book's code, :func:`_is_book`)
    has one more timed source, its liquidity flow (:func:`_flow_event`); news moves its
    fundamental price, and samples record its columns after the dealers'."""
    scratch = np.zeros((5, 1))
    nd = runq.size
    if wake:
        _wake(mk, q, runq, fresh, waitq, False)
    t = surf[6]
    # a flow block interrupted for random numbers goes on first
    status = _book_call(-1.0, horizon, mk, bk, news, noise, dl, shares, cash, fills, q, runq,
                        fresh, waitq, info, stimes)  # fmt: skip
    if status != OK:
        surf[6] = t
        return status
    while True:
        # every news tick or noise order due at this instant comes before the dealers
        # it (or anything earlier) woke: they were scheduled earlier
        tn = news[NW_NEXT] if news[NW_ON] != 0.0 else np.inf
        tz = noise[NZ_NEXT] if noise[NZ_ON] != 0.0 else np.inf
        if noise[NZ_ON] != 0.0 and tz != tz:  # the next gap is in the next block
            surf[6] = t
            return NEED_NOISE
        # the next timed event in simpy's order (time, event id): a tick, an order, or a
        # dealer's timeout (src: -2 news, -1 noise, else the dealer)
        due = tn
        bseq = q[Q_NSEQ]
        src = -2
        if tz < due or (tz == due and q[Q_ZSEQ] < bseq):
            due = tz
            bseq = q[Q_ZSEQ]
            src = -1
        for d in range(nd):
            if dl[d, D_WKIND] != WK_NONE:
                td = dl[d, D_WT]
                sd = int(dl[d, D_WSEQ])
                if td < due or (td == due and sd < bseq):
                    due = td
                    bseq = sd
                    src = d
        due, bseq, src = _flow_due(bk, due, bseq, src)
        if q[Q_RLEN] == 0 and q[Q_SAMPLE] < stimes.size:
            ts = stimes[q[Q_SAMPLE]]
            if ts <= due and (ts < horizon or (ts == horizon and sample_at_horizon)):
                k = q[Q_SAMPLES]
                if k >= samples.shape[0]:
                    surf[6] = t
                    return SAMPLES
                for d in range(nd):
                    if dl[d, D_TMODE] != TM_EXACT and not _valid(dl, d, mk[MK_MID], ts):
                        info[0], info[1], info[2] = ts, d, mk[MK_MID]
                        surf[6] = t
                        return NEED_TABLE
                _record(samples[k], mk, dl, shares, cash)
                _record_book(bk, samples[k, 2 + 3 * nd :])
                q[Q_SAMPLE] += 1
                q[Q_SAMPLES] = k + 1
                continue
        if q[Q_RLEN] > 0 and due > t:
            if q[Q_FILLS] >= fills.shape[0] or _book_full(bk, fills, q):
                surf[6] = t
                return FULL
            d = runq[q[Q_RHEAD]]
            if dl[d, D_LAT] > 0.0:  # woken: a lagged dealer checks one latency later
                q[Q_RHEAD] = (q[Q_RHEAD] + 1) % nd
                q[Q_RLEN] -= 1
                _schedule(dl, d, t + dl[d, D_LAT], WK_LAG, q)
                continue
            if fresh[d]:
                dl[d, D_ROUNDS] = 0.0
                dl[d, D_GROW] = 0.0
                dl[d, D_LAST] = 0.0
                fresh[d] = False
            q[Q_EPOS] = 0
            head, rlen = q[Q_RHEAD], q[Q_RLEN]
            q[Q_RHEAD] = (head + 1) % nd
            q[Q_RLEN] = rlen - 1
            status, qty = _check(
                dl, d, t, mk, bk, shares, cash, lines, surf, scratch, fills, q, runq, fresh,
                waitq, info, coefs, xlines, elog,
            )  # fmt: skip
            if status == NEED_TABLE:  # back at the head of the run queue, state unchanged
                q[Q_RHEAD], q[Q_RLEN] = head, rlen
                surf[6] = t
                return status
            q[Q_ELEN] = 0
            if status != OK:
                surf[6] = t
                return status
            aq = abs(qty)
            if aq != 0.0:
                if _cascade_round(dl, d, aq):
                    info[0], info[1], info[2] = t, d, dl[d, D_ROUNDS]
                    surf[6] = t
                    return RUNAWAY
                runq[(q[Q_RHEAD] + q[Q_RLEN]) % nd] = d  # timeout(0): behind the others
                q[Q_RLEN] += 1
            else:
                _rest(dl, d, t, q, waitq)
            continue
        if due > horizon or (due == horizon and not inclusive) or due == np.inf:
            surf[6] = t
            return OK
        if q[Q_FILLS] >= fills.shape[0] or _book_full(bk, fills, q):
            surf[6] = t
            return FULL
        t = due
        if src >= 0:
            status = _dealer_event(
                src, t, dl, mk, bk, shares, cash, lines, surf, scratch, fills, q, runq, fresh,
                waitq, info, coefs, xlines, elog,
            )  # fmt: skip
            if status != OK:
                surf[6] = t
                return status
            continue
        if src == -3:
            status = _book_call(t, horizon, mk, bk, news, noise, dl, shares, cash, fills, q,
                                runq, fresh, waitq, info, stimes)  # fmt: skip
            if status != OK:
                surf[6] = t
                return status
            continue
        if src == -2:
            i = int(news[NW_IDX])
            if i == z.size:
                surf[6] = t
                return NEED_NEWS
            news[NW_NEXT] = t + news[NW_DT]
            q[Q_NSEQ] = q[Q_SEQ]
            q[Q_SEQ] += 1
            if t >= news[NW_STOP]:
                news[NW_ON] = 0.0
                continue
            news[NW_IDX] = i + 1
            before = mk[MK_MID]
            dS = before * news[NW_SCALE] * z[i]
            if _book_news(bk, dS):  # BookMarket.move: the fundamental moves, not the mid
                continue
            if dS != 0.0:
                after = before + dS
                mk[MK_MID] = after
                if not (math.isfinite(after) and after > 0.0):
                    info[0], info[1], info[2], info[3], info[4] = t, before, after, -1.0, 0.0
                    surf[6] = t
                    return PRICE_INVALID
                _wake(mk, q, runq, fresh, waitq, True)
            continue
        # a noise order
        i = int(noise[NZ_IDX])
        if t >= noise[NZ_STOP]:
            noise[NZ_ON] = 0.0
            continue
        size = math.ceil(sizes[i])
        qty = float(size if sides[i] < 0.5 else -size)
        noise[NZ_IDX] = i + 1
        noise[NZ_NEXT] = t + gaps[i + 1] if i + 1 < gaps.size else np.nan
        q[Q_ZSEQ] = q[Q_SEQ]
        q[Q_SEQ] += 1
        if qty != 0.0:
            acc = int(noise[NZ_ACC])
            status, _, _, moved, _ = _order_any(t, acc, qty, mk, bk, shares, cash, fills, q, info)
            if status != OK:
                surf[6] = t
                return status
            if moved:
                _wake(mk, q, runq, fresh, waitq, True)
        noise[NZ_VOLUME] += abs(qty)


@njit(cache=True)
def _skip_window(dl, d, S, t, delta, gamma, h, flat, lines, surf):
    """Set dealer ``d``'s skip window after an exact evaluation at spot ``S`` ($), clock
    ``t`` (s): option ``delta`` (shares), ``gamma`` (shares per $1), with ``h`` shares
    held and ``flat`` the band (shares). Its spot range is the one where ``delta + gamma
    * dS`` would stay 90% inside the band, its clock range 300 s or 1% of the time to the
    next expiry; :func:`mmsim.delta_bounds.delta_box` proves bounds on the delta there (a
    side it does not prove within the band is halved, twice at most). None is set where
    no bound holds (skew, near expiry, zero vol), where the spot range would be under
    1e-5 of the spot (a band of about one share: the next check is likely outside), or
    when the band is not proven."""
    dl[d, D_WIN] = 0.0
    level, skew, floor, r, q, year = surf[0], surf[1], surf[2], surf[3], surf[4], surf[5]
    if skew != 0.0:
        return
    off = int(dl[d, D_OFF])
    n = int(dl[d, D_N])
    book = lines[:, off : off + n]
    first = np.inf
    for i in range(n):
        E = book[1, i]  # ROW_EXPIRY
        if E > t and book[3, i] != 0.0:  # ROW_UNITS
            first = min(first, E)
    t1 = t + min(300.0, 0.01 * (first - t))
    net = delta + h
    g = abs(gamma)
    if gamma >= 0.0:
        room_up, room_dn = flat - net, flat + net
    else:
        room_up, room_dn = flat + net, flat - net
    cap = 0.05 * S
    up = min(0.9 * room_up / g, cap) if g > 0.0 else cap
    dn = min(0.9 * room_dn / g, cap) if g > 0.0 else cap
    if not (room_up >= 0.0 and room_dn >= 0.0) or up + dn < 1e-5 * S:
        return  # outside the band (the next check trades) or a band of about a share
    for _ in range(3):
        ok, lo, hi = delta_box(S - dn, S + up, t, t1, year, book, n, level, skew, floor, r, q)
        if not ok:
            return
        hi_in = hi + h <= flat
        lo_in = lo + h >= -flat
        if hi_in and lo_in:
            dl[d, D_WIN] = 1.0
            dl[d, D_WLO] = S - dn
            dl[d, D_WHI] = S + up
            dl[d, D_WT1] = t1
            dl[d, D_WDLO] = lo
            dl[d, D_WDHI] = hi
            return
        # the side that breaks the band: up for the high bound of a long-gamma book
        if not hi_in:
            if gamma >= 0.0:
                up *= 0.5
            else:
                dn *= 0.5
        if not lo_in:
            if gamma >= 0.0:
                dn *= 0.5
            else:
                up *= 0.5


@njit(cache=True)
def _cascade_round(dl, d, aq):
    """Count dealer ``d``'s same-cascade fill of ``aq`` shares (``cascade_step``: rounds,
    growing streak, last size, kept in its row); True when the cascade runs away."""
    rounds, growing, last, runaway = cascade_step(
        aq, int(dl[d, D_ROUNDS]), int(dl[d, D_GROW]), dl[d, D_LAST]
    )
    dl[d, D_ROUNDS] = rounds
    dl[d, D_GROW] = growing
    dl[d, D_LAST] = last
    return runaway


@njit(cache=True)
def _flow_event(
    t, resumed, horizon, mk, bk, news, noise, dl, shares, cash, fills, q, runq, fresh, waitq,
    info, stimes,
):  # fmt: skip
    """The book's liquidity flow process at clock ``t`` (s), its timeout due
    (``resumed``: a pass interrupted by NEED_FLOW goes on): ``after_change`` first if the
    timeout ended a block (``FK_AFTER``), then passes of its loop (:func:`~mmsim.lobpath.flow_step`)
    with the next other event of simpy's queue (:func:`_peek`) until it sleeps again."""
    st = bk[7]
    if not resumed and st[ST_FKIND] == FK_AFTER:
        status = _book_changed(t, mk, bk, q, runq, fresh, waitq, info)
        if status != OK:
            return status
    while True:
        nxt = 0.0 if resumed else _peek(t, horizon, news, noise, dl, q, stimes)
        resumed = False
        step = flow_step(bk, t, nxt, mk[MK_MID])
        if step == STEP_NEED:
            return NEED_FLOW
        mk[MK_MID] = book_mid(bk[1], st[ST_TICK])
        status = _settle_own(t, mk, bk, shares, cash, fills, q, info)
        if status != OK:
            return status
        if step != STEP_AGAIN:  # asleep: its timeout gets the next event id
            st[ST_FSEQ] = q[Q_SEQ]
            q[Q_SEQ] += 1
            return OK
        status = _book_changed(t, mk, bk, q, runq, fresh, waitq, info)
        if status != OK:
            return status


def _book_call(t, horizon, mk, bk, news, noise, dl, shares, cash, fills, q, runq, fresh,
               waitq, info, stimes):  # fmt: skip
    """The book's flow process at ``t`` (s; -1: resume a pass interrupted by NEED_FLOW,
    if any), :func:`_flow_event`; OK without a book."""
    raise NotImplementedError  # numba only: see its overload


@overload(_book_call)
def _book_call_ov(t, horizon, mk, bk, news, noise, dl, shares, cash, fills, q, runq, fresh,
                  waitq, info, stimes):  # fmt: skip
    if _is_book(bk):

        def book(t, horizon, mk, bk, news, noise, dl, shares, cash, fills, q, runq, fresh,
                 waitq, info, stimes):  # fmt: skip
            st = bk[7]
            if t >= 0.0:
                return _flow_event(t, False, horizon, mk, bk, news, noise, dl, shares, cash,
                                   fills, q, runq, fresh, waitq, info, stimes)  # fmt: skip
            if st[ST_FBLOCK] == 0.0:
                return OK
            return _flow_event(st[ST_FW], True, horizon, mk, bk, news, noise, dl, shares, cash,
                               fills, q, runq, fresh, waitq, info, stimes)  # fmt: skip

        return book

    def none(t, horizon, mk, bk, news, noise, dl, shares, cash, fills, q, runq, fresh, waitq,
             info, stimes):  # fmt: skip
        return OK

    return none


def _flow_due(bk, due, bseq, src):
    """The next timed event ``(time, event id, source)`` with the book's flow process
    among the candidates (source -3); unchanged without a book."""
    raise NotImplementedError  # numba only: see its overload


@overload(_flow_due, inline="always")
def _flow_due_ov(bk, due, bseq, src):
    if _is_book(bk):

        def book(bk, due, bseq, src):
            st = bk[7]
            if st[ST_FON] != 0.0:
                tf = st[ST_FT]
                if tf < due or (tf == due and int(st[ST_FSEQ]) < bseq):
                    return tf, int(st[ST_FSEQ]), -3
            return due, bseq, src

        return book
    return lambda bk, due, bseq, src: (due, bseq, src)


def _record_book(bk, out):
    """A sample's book columns into ``out`` (:func:`~mmsim.lobpath.record_book`); nothing
    without a book."""
    raise NotImplementedError  # numba only: see its overload


@overload(_record_book, inline="always")
def _record_book_ov(bk, out):
    if _is_book(bk):
        return lambda bk, out: record_book(bk, out)
    return lambda bk, out: None


def _book_news(bk, dS):
    """A news tick on a book: ``BookMarket.move`` shifts the fundamental by ``dS`` $
    (floored at one tick); True if done (False without a book: the mid moves)."""
    raise NotImplementedError  # numba only: see its overload


@overload(_book_news, inline="always")
def _book_news_ov(bk, dS):
    if _is_book(bk):

        def book(bk, dS):
            st = bk[7]
            st[ST_FUND] = max(st[ST_FUND] + dS, st[ST_TICK])
            return True

        return book
    return lambda bk, dS: False


def _book_full(bk, fills, q):
    """Whether the next event might overflow the dry-out log or, settling the dealers'
    resting orders too, the fill buffer: flush first (FULL); False without a book."""
    raise NotImplementedError  # numba only: see its overload


@overload(_book_full, inline="always")
def _book_full_ov(bk, fills, q):
    if _is_book(bk):

        def book(bk, fills, q):
            if bk[7][ST_NLOG] + 64.0 > bk[8].shape[0]:
                return True
            return q[Q_FILLS] + 256 > fills.shape[0]

        return book
    return lambda bk, fills, q: False


@njit(cache=True)
def _book_changed(t, mk, bk, q, runq, fresh, waitq, info):
    """``BookMarket.after_change`` at ``t`` (s) after a flow block: the dry-out check,
    and the dealers woken if the mid moved."""
    st = bk[7]
    mk[MK_MID] = book_mid(bk[1], st[ST_TICK])
    dry, moved = after_change(bk, t, st[ST_FMIDB])
    if dry == BOOK_DRY_STOP:
        info[0] = t
        return DRY_STOP
    if moved:
        _wake(mk, q, runq, fresh, waitq, True)
    return OK


@njit(cache=True)
def _peek(t, horizon, news, noise, dl, q, stimes):
    """simpy's ``env.peek()`` as the flow process sees it at ``t`` (s): the next pending
    event other than its own, ``t`` itself when dealers were woken (their events are due
    now), else the earliest of the news tick, the noise order, the dealers' timeouts, the
    next sample and the next discrete event (``horizon``)."""
    if q[Q_RLEN] > 0:
        return t
    nxt = horizon
    if news[NW_ON] != 0.0:
        nxt = min(nxt, news[NW_NEXT])
    if noise[NZ_ON] != 0.0:
        nxt = min(nxt, noise[NZ_NEXT])
    for d in range(dl.shape[0]):
        if dl[d, D_WKIND] != WK_NONE:
            nxt = min(nxt, dl[d, D_WT])
    if q[Q_SAMPLE] < stimes.size:
        nxt = min(nxt, stimes[q[Q_SAMPLE]])
    return nxt


@njit(cache=True)
def _schedule(dl, d, when, kind, q):
    """Dealer ``d``'s next timeout at ``when`` (s), with the next event id."""
    dl[d, D_WT] = when
    dl[d, D_WSEQ] = q[Q_SEQ]
    dl[d, D_WKIND] = kind
    q[Q_SEQ] += 1


@njit(cache=True)
def _dealer_event(
    d, t, dl, mk, bk, shares, cash, lines, surf, scratch, fills, q, runq, fresh, waitq, info,
    coefs, xlines, elog,
):  # fmt: skip
    """Dealer ``d``'s timeout due at ``t`` (s), as its simpy process: a scheduled
    dealer's phase (then its first check one interval later), a scheduled check (the
    next one an interval later; the growing-rehedge watch), a lagged check (a recheck
    one latency later while it trades, else back to waiting on a price change). A
    NEED_TABLE stop leaves the timeout pending and the state unchanged."""
    kind = dl[d, D_WKIND]
    if kind == WK_PHASE:
        _schedule(dl, d, t + dl[d, D_INT], WK_SCHED, q)
        return OK
    if kind == WK_SLEEP:  # the window rolled: a new cascade, after the latency if any
        fresh[d] = True
        if dl[d, D_LAT] > 0.0:
            _schedule(dl, d, t + dl[d, D_LAT], WK_LAG, q)
            return OK
    if fresh[d]:  # the first check after a price change: a new cascade
        dl[d, D_ROUNDS] = 0.0
        dl[d, D_GROW] = 0.0
        dl[d, D_LAST] = 0.0
        fresh[d] = False
    q[Q_EPOS] = 0
    status, qty = _check(
        dl, d, t, mk, bk, shares, cash, lines, surf, scratch, fills, q, runq, fresh, waitq, info,
        coefs, xlines, elog,
    )  # fmt: skip
    if status == NEED_TABLE:
        return status
    q[Q_ELEN] = 0
    if status != OK:
        return status
    if kind == WK_SCHED:
        if dl[d, D_WATCH] != 0.0:
            last = dl[d, D_SLAST]
            grew = abs(qty) > abs(last) >= RUNAWAY_MIN_SIZE
            same = dl[d, D_SAME] + 1.0 if grew and qty * last > 0.0 else 0.0
            alt = dl[d, D_ALT] + 1.0 if grew and qty * last < 0.0 else 0.0
            dl[d, D_SAME] = same
            dl[d, D_ALT] = alt
            dl[d, D_SLAST] = qty
            if max(same, alt) >= SCHEDULED_RUNAWAY_ROUNDS:
                info[0], info[1], info[2] = t, d, 1.0 if same > 0.0 else 0.0
                return SCHED_RUNAWAY
        _schedule(dl, d, t + dl[d, D_INT], WK_SCHED, q)
        return OK
    aq = abs(qty)
    if aq != 0.0:
        if _cascade_round(dl, d, aq):
            info[0], info[1], info[2] = t, d, dl[d, D_ROUNDS]
            return RUNAWAY
        if dl[d, D_LAT] > 0.0:
            _schedule(dl, d, t + dl[d, D_LAT], WK_LAG, q)
        else:  # an instant dealer woken by its window: timeout(0), behind the others
            dl[d, D_WKIND] = WK_NONE
            nd = runq.size
            runq[(q[Q_RHEAD] + q[Q_RLEN]) % nd] = d
            q[Q_RLEN] += 1
        return OK
    _rest(dl, d, t, q, waitq)
    return OK


@njit(cache=True)
def _rest(dl, d, t, q, waitq):
    """A price-triggered dealer's cascade is over: it waits on the next price change,
    or, its capacity used up (``DealerAgent.capacity_exhausted``, the window rolled
    first), sleeps until its window ends."""
    cap = dl[d, D_CAP]
    if not math.isinf(cap):
        window = dl[d, D_CAPW]
        if t >= dl[d, D_WS] + window:
            dl[d, D_WS] = window * math.floor(t / window)
            dl[d, D_WU] = 0.0
        if dl[d, D_WU] >= math.floor(cap):
            _schedule(dl, d, t + max(dl[d, D_WS] + window - t, 0.0), WK_SLEEP, q)
            return
    dl[d, D_WKIND] = WK_NONE
    nd = waitq.size
    waitq[(q[Q_WHEAD] + q[Q_WLEN]) % nd] = d  # yield market.changed
    q[Q_WLEN] += 1


@njit(cache=True)
def _record(row, mk, dl, shares, cash):
    """One sample's state: mid, volume, then per dealer shares, cash, hedge volume."""
    nd = dl.shape[0]
    row[0] = mk[MK_MID]
    row[1] = mk[MK_VOLUME]
    for d in range(nd):
        acc = int(dl[d, D_ACC])
        row[2 + d] = shares[acc]
        row[2 + nd + d] = cash[acc]
        row[2 + 2 * nd + d] = dl[d, D_HVOL]


@njit(cache=True, inline="always")
def _wake(mk, q, runq, fresh, waitq, count):
    """Market.notify (``count``: count the change) waking the waiting dealers, fresh."""
    if count:
        mk[MK_CHANGES] += 1.0
    nd = runq.size
    for _ in range(q[Q_WLEN]):
        d = waitq[q[Q_WHEAD]]
        q[Q_WHEAD] = (q[Q_WHEAD] + 1) % nd
        q[Q_WLEN] -= 1
        runq[(q[Q_RHEAD] + q[Q_RLEN]) % nd] = d
        q[Q_RLEN] += 1
        fresh[d] = True
