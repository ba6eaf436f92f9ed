"""The compiled fast path's orders and fills, in numba (:mod:`mmsim.fastpath`).

The mid after a market order (impact models, or the book's walk: :func:`_preview_any`),
an agent's order and the engine's fill listener (:func:`_order_any`: :func:`_submit` with
impact, :func:`_submit_book` / :func:`_post` on a limit order book), the settlement of
the dealers' resting orders (:func:`_settle_own`), the fill rows, and the market's
notification waking the waiting dealers (:func:`_wake`). Every book-only piece is chosen
at compile time on :func:`_is_book`. Units: $ for prices and cash, shares for
quantities, s for clocks; array layouts in :mod:`mmsim.kernel_layout`.
"""

from __future__ import annotations

import math

from numba import njit, types
from numba.extending import overload

from mmsim.kernel_layout import (
    DRY_STOP,
    MK_ADV,
    MK_CEIL,
    MK_CHANGES,
    MK_DVOL,
    MK_HALF,
    MK_LAM,
    MK_MID,
    MK_MODEL,
    MK_VOLUME,
    MK_Y,
    OK,
    PRICE_CEILING,
    PRICE_INVALID,
    Q_FILLS,
    Q_RHEAD,
    Q_RLEN,
    Q_RSEQ,
    Q_SEQ,
    Q_WHEAD,
    Q_WLEN,
)
from mmsim.lobpath import DRY_STOP as BOOK_DRY_STOP
from mmsim.lobpath import (
    ST_TICK,
    after_change,
    book_mid,
    book_preview,
    book_take,
    own_row,
    post_limit,
)


@njit(cache=True, inline="always")
def _impact(mk, q, S):
    """Price change ($) of an order of ``q`` shares at ``S`` (Market's impact models)."""
    if mk[MK_MODEL] == 0.0:
        return mk[MK_LAM] * q
    return math.copysign(mk[MK_Y] * mk[MK_DVOL] * S * math.sqrt(abs(q) / mk[MK_ADV]), q)


# not inlined in numba's IR: inlining it into _preview_any's inlined overload trips
# numba's IR scope check (NumbaIRAssumptionWarning at compile time)
@njit(cache=True, forceinline=False)  # not _check's: see kernel_checks._check
def _preview(mk, qty):
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


@njit(cache=True, forceinline=False)  # not _check's: see kernel_checks._check
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


@njit(cache=True, forceinline=False)  # not _check's: see kernel_checks._check
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


@njit(cache=True, forceinline=False)  # not _check's: see kernel_checks._check
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


@njit(cache=True, inline="always")
def _wake(mk, q, runq, fresh, waitq, count):
    """Market.notify (``count``: count the change) waking the waiting dealers, fresh."""
    if count:
        mk[MK_CHANGES] += 1.0
    # the woken dealers resume at the change event's id: between the ids drawn so far
    # and the next one (no draw: the next id marks it, Q_RSEQ)
    nd = runq.size
    for _ in range(q[Q_WLEN]):
        d = waitq[q[Q_WHEAD]]
        q[Q_WHEAD] = (q[Q_WHEAD] + 1) % nd
        q[Q_WLEN] -= 1
        slot = (q[Q_RHEAD] + q[Q_RLEN]) % nd
        runq[slot] = d
        q[Q_RSEQ + slot] = q[Q_SEQ]
        q[Q_RLEN] += 1
        fresh[d] = True


@njit(cache=True, inline="always")
def _requeue(q, runq, d):
    """Dealer ``d``'s ``timeout(0)`` (a recheck after its fill): behind the others, its
    id between those drawn so far and the next (``Q_RSEQ``)."""
    slot = (q[Q_RHEAD] + q[Q_RLEN]) % runq.size
    runq[slot] = d
    q[Q_RSEQ + slot] = q[Q_SEQ]
    q[Q_RLEN] += 1
