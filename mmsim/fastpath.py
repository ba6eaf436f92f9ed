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

A dealer skips the pricing of a check that provably cannot trade: after an evaluation
(and after each fill) it gets a skip window, a range of spots and clocks over which
:func:`mmsim.delta_bounds.delta_box` bounds the delta of the lines it sums exactly (flat
or skewed surface): all its lines, or those beside its delta table (near expiry,
changed), whose table part is then read at the check; a check inside the window whose
bounds plus the shares held are within the band returns as the evaluated check would
(rounding is monotone), so no check that would trade is skipped
(:func:`mmsim.skip_windows.skip_window`, :func:`mmsim.kernel_checks._skips`).

This module holds :func:`advance` and its event plumbing (the next event, the dealers'
timeouts and waits, the book's flow process, samples); the pieces it calls live in
:mod:`mmsim.kernel_market` (orders, fills, waking the waiting dealers),
:mod:`mmsim.kernel_checks` (a dealer's check and skip window) and
:mod:`mmsim.kernel_book` (the book-only pieces, compiled away without a book).

State lives in plain arrays (layouts: the ``MK_*``, ``NW_*``, ``NZ_*``, ``D_*``, ``Q_*``
indices of :mod:`mmsim.kernel_layout`, re-exported here); units as in the agents: $ for
prices, shares, s for clocks. The kernel returns a status; ``NEED_*`` and ``FULL`` ask
the caller to refill or flush and call again (the state is consistent between events),
the rest report a divergence whose details are in ``info``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.extending import overload

from mmsim.hedge_rules import WATCH_QUIET, cascade_step, combined_feedback, scheduled_watch
from mmsim.kernel_book import _book_changed, _book_full, _book_news, _flow_due, _record_book
from mmsim.kernel_checks import _check, _valid
from mmsim.kernel_layout import (
    D_ACC,
    D_BAND,
    D_CAP,
    D_CAPB,
    D_CAPW,
    D_CENTER,
    D_CENTER_S,
    D_CN,
    D_COFF,
    D_FEED,
    D_FEED_T,
    D_GROW,
    D_H,
    D_HALF,
    D_HCOST,
    D_HF,
    D_HVOL,
    D_INST,
    D_INT,
    D_LAST,
    D_LASTD,
    D_LAT,
    D_N,
    D_NN,
    D_NOFF,
    D_NOTIONAL,
    D_NREH,
    D_OFF,
    D_OVER,
    D_POST,
    D_POST_CH,
    D_POST_D,
    D_POST_G,
    D_POST_T,
    D_ROUNDS,
    D_SGROW,
    D_SIZE,
    D_SLAST,
    D_SOLVE,
    D_STREAK,
    D_STYP,
    D_T0,
    D_T1,
    D_TEXP,
    D_TMODE,
    D_WATCH,
    D_WCHI,
    D_WCLO,
    D_WDHI,
    D_WDLO,
    D_WFAIL,
    D_WHI,
    D_WIN,
    D_WKIND,
    D_WLO,
    D_WS,
    D_WSEQ,
    D_WT,
    D_WT1,
    D_WU,
    D_WUSED,
    D_WWAIT,
    D_XN,
    D_XOFF,
    DIVERGED,
    DRY_STOP,
    ELOG_SIZE,
    FILL_COLUMNS,
    FULL,
    MK_ADV,
    MK_CEIL,
    MK_CHANGES,
    MK_DVOL,
    MK_HALF,
    MK_LAM,
    MK_MID,
    MK_MODEL,
    MK_SIZE,
    MK_VOLUME,
    MK_Y,
    NEED_FLOW,
    NEED_NEWS,
    NEED_NOISE,
    NEED_TABLE,
    NEWS_PHASE,
    NW_DT,
    NW_IDX,
    NW_NEXT,
    NW_ON,
    NW_SCALE,
    NW_STOP,
    NZ_ACC,
    NZ_IDX,
    NZ_NEXT,
    NZ_ON,
    NZ_STOP,
    NZ_VOLUME,
    OK,
    PRICE_CEILING,
    PRICE_INVALID,
    Q_ELEN,
    Q_EPOS,
    Q_FILLS,
    Q_HSEQ,
    Q_NSEQ,
    Q_RHEAD,
    Q_RLEN,
    Q_RSEQ,
    Q_SAMPLE,
    Q_SAMPLES,
    Q_SEQ,
    Q_SIZE,
    Q_SKIPS,
    Q_WHEAD,
    Q_WLEN,
    Q_ZSEQ,
    RUNAWAY,
    SAMPLES,
    SCHED_RUNAWAY,
    TM_EXACT,
    TM_EXACT_UNTIL,
    TM_TABLE,
    TM_UNKNOWN,
    WIN_ALL,
    WIN_PARTS,
    WIN_TABLE,
    WK_LAG,
    WK_NONE,
    WK_PHASE,
    WK_SCHED,
    WK_SLEEP,
)
from mmsim.kernel_market import _is_book, _order_any, _requeue, _settle_own, _wake
from mmsim.lobpath import (
    FK_AFTER,
    ST_FBLOCK,
    ST_FKIND,
    ST_FSEQ,
    ST_FW,
    ST_LOOK,
    ST_TICK,
    STEP_AGAIN,
    STEP_NEED,
    book_mid,
    flow_step,
)

# the layouts and statuses (mmsim.kernel_layout) are re-exported: callers read them as fp.X
__all__ = [
    "DIVERGED",
    "DRY_STOP",
    "D_ACC",
    "D_BAND",
    "D_CAP",
    "D_CAPB",
    "D_CAPW",
    "D_CENTER",
    "D_CENTER_S",
    "D_CN",
    "D_COFF",
    "D_FEED",
    "D_FEED_T",
    "D_GROW",
    "D_H",
    "D_HALF",
    "D_HCOST",
    "D_HF",
    "D_HVOL",
    "D_INST",
    "D_INT",
    "D_LAST",
    "D_LASTD",
    "D_LAT",
    "D_N",
    "D_NN",
    "D_NOFF",
    "D_NOTIONAL",
    "D_NREH",
    "D_OFF",
    "D_OVER",
    "D_POST",
    "D_POST_CH",
    "D_POST_D",
    "D_POST_G",
    "D_POST_T",
    "D_ROUNDS",
    "D_SGROW",
    "D_SIZE",
    "D_SLAST",
    "D_SOLVE",
    "D_STREAK",
    "D_STYP",
    "D_T0",
    "D_T1",
    "D_TEXP",
    "D_TMODE",
    "D_WATCH",
    "D_WCHI",
    "D_WCLO",
    "D_WDHI",
    "D_WDLO",
    "D_WFAIL",
    "D_WHI",
    "D_WIN",
    "D_WKIND",
    "D_WLO",
    "D_WS",
    "D_WSEQ",
    "D_WT",
    "D_WT1",
    "D_WU",
    "D_WUSED",
    "D_WWAIT",
    "D_XN",
    "D_XOFF",
    "ELOG_SIZE",
    "FILL_COLUMNS",
    "FULL",
    "MK_ADV",
    "MK_CEIL",
    "MK_CHANGES",
    "MK_DVOL",
    "MK_HALF",
    "MK_LAM",
    "MK_MID",
    "MK_MODEL",
    "MK_SIZE",
    "MK_VOLUME",
    "MK_Y",
    "NEED_FLOW",
    "NEED_NEWS",
    "NEED_NOISE",
    "NEED_TABLE",
    "NEWS_PHASE",
    "NW_DT",
    "NW_IDX",
    "NW_NEXT",
    "NW_ON",
    "NW_SCALE",
    "NW_STOP",
    "NZ_ACC",
    "NZ_IDX",
    "NZ_NEXT",
    "NZ_ON",
    "NZ_STOP",
    "NZ_VOLUME",
    "OK",
    "PRICE_CEILING",
    "PRICE_INVALID",
    "Q_ELEN",
    "Q_EPOS",
    "Q_FILLS",
    "Q_HSEQ",
    "Q_NSEQ",
    "Q_RHEAD",
    "Q_RLEN",
    "Q_RSEQ",
    "Q_SAMPLE",
    "Q_SAMPLES",
    "Q_SEQ",
    "Q_SIZE",
    "Q_SKIPS",
    "Q_WHEAD",
    "Q_WLEN",
    "Q_ZSEQ",
    "RUNAWAY",
    "SAMPLES",
    "SCHED_RUNAWAY",
    "TM_EXACT",
    "TM_EXACT_UNTIL",
    "TM_TABLE",
    "TM_UNKNOWN",
    "WIN_ALL",
    "WIN_PARTS",
    "WIN_TABLE",
    "WK_LAG",
    "WK_NONE",
    "WK_PHASE",
    "WK_SCHED",
    "WK_SLEEP",
    "advance",
]


@njit(cache=True)
def advance(
    horizon, inclusive, wake, mk, bk, news, z, noise, gaps, sizes, sides, dl, lines, surf,
    shares, cash, fills, q, runq, fresh, waitq, info, stimes, samples, sample_at_horizon, coefs,
    xlines, elog,
):  # fmt: skip
    """Play the high-frequency events due before ``horizon`` (s; at it too when
    ``inclusive``, those that come before the discrete event there: with an event id
    below ``q[Q_HSEQ]``, the discrete event's) and the cascades they set off; ``wake``
    wakes the waiting dealers first (a discrete event changed the market). Returns a
    status (module docstring).

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
    nd = runq.size
    hseq = q[Q_HSEQ] if inclusive else -1  # events at the horizon with smaller ids play
    if wake:
        _wake(mk, q, runq, fresh, waitq, False)
    t = surf[6]
    # a flow block interrupted for random numbers goes on first
    status = _book_call(-1.0, mk, bk, news, noise, dl, shares, cash, fills, q, runq, fresh,
                        waitq, info, stimes)  # fmt: skip
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
        # the dealers resuming now, after every timeout due now (scheduled earlier), and
        # at the horizon's instant only those resuming before its discrete event (ids)
        if q[Q_RLEN] > 0 and due > t and (t < horizon or q[Q_RSEQ + q[Q_RHEAD]] <= hseq):
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
                dl, d, t, mk, bk, shares, cash, lines, surf, fills, q, runq, fresh,
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
                _requeue(q, runq, d)  # timeout(0): behind the others
            else:
                _rest(dl, d, t, q, waitq)
            continue
        if due > horizon or (due == horizon and bseq >= hseq) or due == np.inf:
            surf[6] = t
            return OK
        if q[Q_FILLS] >= fills.shape[0] or _book_full(bk, fills, q):
            surf[6] = t
            return FULL
        t = due
        if src >= 0:
            status = _dealer_event(
                src, t, dl, mk, bk, shares, cash, lines, surf, fills, q, runq, fresh,
                waitq, info, coefs, xlines, elog,
            )  # fmt: skip
            if status != OK:
                surf[6] = t
                return status
            continue
        if src == -3:
            status = _book_call(t, mk, bk, news, noise, dl, shares, cash, fills, q, runq, fresh,
                                waitq, info, stimes)  # fmt: skip
            if status != OK:
                surf[6] = t
                return status
            continue
        if src == -2:
            if news[NW_ON] == NEWS_PHASE:  # news.phase's timeout: ticks from here on
                news[NW_ON] = 1.0
                news[NW_NEXT] = t + news[NW_DT]
                q[Q_NSEQ] = q[Q_SEQ]
                q[Q_SEQ] += 1
                continue
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
    t, resumed, mk, bk, news, noise, dl, shares, cash, fills, q, runq, fresh, waitq, info,
    stimes,
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
        nxt = 0.0 if resumed else _peek(t, st[ST_LOOK], news, noise, dl, q, stimes)
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


def _book_call(t, mk, bk, news, noise, dl, shares, cash, fills, q, runq, fresh, waitq, info,
               stimes):  # fmt: skip
    """The book's flow process at ``t`` (s; -1: resume a pass interrupted by NEED_FLOW,
    if any), :func:`_flow_event`; OK without a book."""
    raise NotImplementedError  # numba only: see its overload


@overload(_book_call)
def _book_call_ov(t, mk, bk, news, noise, dl, shares, cash, fills, q, runq, fresh, waitq,
                  info, stimes):  # fmt: skip
    if _is_book(bk):

        def book(t, mk, bk, news, noise, dl, shares, cash, fills, q, runq, fresh, waitq, info,
                 stimes):  # fmt: skip
            st = bk[7]
            if t >= 0.0:
                # np.bool_: typed, not a literal (one compiled _flow_event for both calls)
                return _flow_event(t, np.bool_(False), mk, bk, news, noise, dl, shares, cash,
                                   fills, q, runq, fresh, waitq, info, stimes)  # fmt: skip
            if st[ST_FBLOCK] == 0.0:
                return OK
            return _flow_event(st[ST_FW], np.bool_(True), mk, bk, news, noise, dl, shares, cash,
                               fills, q, runq, fresh, waitq, info, stimes)  # fmt: skip

        return book

    def none(t, mk, bk, news, noise, dl, shares, cash, fills, q, runq, fresh, waitq, info,
             stimes):  # fmt: skip
        return OK

    return none


@njit(cache=True)
def _peek(t, look, news, noise, dl, q, stimes):
    """simpy's ``env.peek()`` as the flow process sees it at ``t`` (s): the next pending
    event other than its own, ``t`` itself when dealers were woken (their events are due
    now), else the earliest of the news tick, the noise order, the dealers' timeouts, the
    next sample and the next discrete event (``look``, s: :func:`mmsim.pauses.next_event`)."""
    if q[Q_RLEN] > 0:
        return t
    nxt = look
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


@njit(cache=True, forceinline=False)  # not _rest's (kernel_checks._check's comment)
def _schedule(dl, d, when, kind, q):
    """Dealer ``d``'s next timeout at ``when`` (s), with the next event id."""
    dl[d, D_WT] = when
    dl[d, D_WSEQ] = q[Q_SEQ]
    dl[d, D_WKIND] = kind
    q[Q_SEQ] += 1


@njit(cache=True)
def _dealer_event(
    d, t, dl, mk, bk, shares, cash, lines, surf, fills, q, runq, fresh, waitq, info,
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
        dl, d, t, mk, bk, shares, cash, lines, surf, fills, q, runq, fresh, waitq, info,
        coefs, xlines, elog,
    )  # fmt: skip
    if status == NEED_TABLE:
        return status
    q[Q_ELEN] = 0
    if status != OK:
        return status
    if kind == WK_SCHED:
        if dl[d, D_WATCH] != 0.0:
            combined = combined_feedback(
                dl[:, D_FEED], dl[:, D_FEED_T], dl[:, D_INT], t, dl[d, D_INT]
            )
            streak, last, typ, growth, verdict = scheduled_watch(
                qty, dl[d, D_STREAK], dl[d, D_SLAST], dl[d, D_STYP], dl[d, D_SGROW], combined
            )
            dl[d, D_STREAK], dl[d, D_SLAST], dl[d, D_STYP], dl[d, D_SGROW] = (
                streak, last, typ, growth
            )  # fmt: skip
            if verdict != WATCH_QUIET:
                info[0], info[1], info[2] = t, d, 1.0 if streak > 0.0 else 0.0
                info[3], info[4], info[5], info[6] = growth, abs(streak), abs(qty), typ
                info[7] = combined
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
            _requeue(q, runq, d)
        return OK
    _rest(dl, d, t, q, waitq)
    return OK


@njit(cache=True, forceinline=True)  # most checks end here: LLVM alone would call it
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
