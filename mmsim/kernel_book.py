"""The compiled fast path's book-only pieces, in numba (:mod:`mmsim.fastpath`).

Each is an ``@overload`` chosen at compile time on :func:`~mmsim.kernel_market._is_book`:
on a limit order book it calls into :mod:`mmsim.lobpath`, without one it compiles to
nothing (so a market with impact runs as fast as without a book): the flow process's
place among the timed events (:func:`_flow_due`), the sample's book columns, a news tick
on the fundamental ($), the flush check of the dry-out log and the fill buffer, and the
market's ``after_change`` after a flow block (:func:`_book_changed`). Units: $ for
prices, shares, s for clocks; array layouts in :mod:`mmsim.kernel_layout`.
"""

from __future__ import annotations

from numba import njit
from numba.extending import overload

from mmsim.kernel_layout import (
    DRY_STOP,
    MK_MID,
    OK,
    Q_FILLS,
)
from mmsim.kernel_market import _is_book, _wake
from mmsim.lobpath import DRY_STOP as BOOK_DRY_STOP
from mmsim.lobpath import (
    ST_FMIDB,
    ST_FON,
    ST_FSEQ,
    ST_FT,
    ST_FUND,
    ST_NLOG,
    ST_TICK,
    after_change,
    book_mid,
    record_book,
)


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
