"""The compiled fast path's state layout: indices into its plain arrays, and its statuses.

No numba code: the column indices of the market (``MK_*``, float64), the news
(``NW_*``), the noise (``NZ_*``), the dealers' rows (``D_*``) with their evaluation modes
(``TM_*``) and pending timeouts (``WK_*``), the queues (``Q_*``, int64), the sizes of the
evaluation log (``ELOG_SIZE``) and of a fill row (``FILL_COLUMNS``), and the statuses
:func:`mmsim.fastpath.advance` returns (``OK`` .. ``DRY_STOP``). Units as in the agents:
$ for prices, shares, s for clocks. :mod:`mmsim.fastpath` re-exports every public name.
"""

# market state (float64): mid ($), volume (shares), changes (count), half spread ($),
# model (0 linear, 1 sqrt, 2 the limit order book: ``bk``, :mod:`mmsim.lobpath`),
# lam ($/share), Y, daily vol, adv (shares), price ceiling ($)
MK_MID, MK_VOLUME, MK_CHANGES, MK_HALF, MK_MODEL, MK_LAM, MK_Y, MK_DVOL, MK_ADV, MK_CEIL = range(10)
MK_SIZE = 10
# news: active (0/1), next tick (s), dt (s), scale (fraction of S per unit z), stop (s),
# index of the next z in the block
NW_ON, NW_NEXT, NW_DT, NW_SCALE, NW_STOP, NW_IDX = range(6)
NEWS_PHASE = 2.0
"""``news[NW_ON]`` while the news process waits out ``news.phase`` (its first tick is
scheduled one step after the phase's timeout, as on the simpy path)."""
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
    D_STREAK,
    D_STYP,
    D_SLAST,
    D_WATCH,
    D_WIN,
    D_WLO,
    D_WHI,
    D_WT1,
    D_WDLO,
    D_WDHI,
    D_SGROW,
    D_FEED,
    D_FEED_T,
    D_WCLO,
    D_WCHI,
    D_WFAIL,
    D_WWAIT,
    D_WUSED,
) = range(63)
D_SIZE = 63
"""Then: instant (price trigger, no latency: 0/1), latency (s), schedule interval (s);
the dealer's pending timeout: when (s), its place in simpy's order (the event id the
timeout would get, ``Q_SEQ``) and what it is (``WK_*``); capacity (shares per window,
inf = none), window (s), current window's start (s) and shares used, capacity bound
(0/1); a scheduled dealer's growing rehedges in a row (signed: + same sign, -
alternating), its typical rehedge (shares), its last signed hedge (shares) and whether it
watches them (several holders; :func:`mmsim.hedge_rules.scheduled_watch`); its skip window
(:func:`mmsim.skip_windows.skip_window`): whether one is set (0 none, ``WIN_ALL``,
``WIN_PARTS``), spots from ``D_WLO`` to ``D_WHI`` ($), clocks up to ``D_WT1`` (s), and
proven bounds on its option delta there (shares; ``WIN_PARTS``: on its table's near
lines); then the scheduled watch's growth (log, capped a round) and ``lam * G`` measured
on the dealer's last fill of at least ``RUNAWAY_MIN_SIZE`` shares (0 before one) and when
(s); last, a ``WIN_PARTS`` window's bounds on the table's changed lines (shares), and
the back-off of setting windows (:func:`mmsim.skip_windows.skip_window`): tries in a
row that failed, evaluations to pass before the next try, and 1 + the checks the current
``WIN_PARTS`` window skipped (0: none to judge)."""
WIN_ALL, WIN_PARTS, WIN_TABLE = 1.0, 2.0, 3.0
"""A skip window's bounds: on the whole option delta (a dealer summing its lines
exactly), or on the exactly summed parts beside a delta table (its near and its changed
lines; the table's own part is evaluated at the check), or on the delta of a table with
no lines beside it (``WIN_TABLE``, :mod:`mmsim.table_bounds`)."""
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
# checks skipped in a skip window (diagnostics); the event id of the discrete event at the
# horizon (kernel events at its instant with a smaller id come before it)
(Q_RHEAD, Q_RLEN, Q_WHEAD, Q_WLEN, Q_FILLS, Q_SAMPLE, Q_SAMPLES, Q_EPOS, Q_ELEN, Q_SEQ, Q_NSEQ,
 Q_ZSEQ, Q_SKIPS, Q_HSEQ) = range(14)  # fmt: skip
Q_SIZE = 14
Q_RSEQ = Q_SIZE
"""From here ``q`` holds, per run-queue slot (``runq``'s index), where the dealer's
resumption there (the price change that woke it, or its own ``timeout(0)`` after a fill)
falls in simpy's event order: ``Q_SEQ`` when it was queued, i.e. after every id drawn
before and before every id drawn after (it precedes a discrete event of id ``h`` iff
it is <= h). ``q`` has ``Q_SIZE`` + one entry per dealer."""
ELOG_SIZE = 80  # evaluations one check can make: 1 + 1 + MAX_SOLVE_STEPS + 1, with room
FILL_COLUMNS = 8  # t, account, booking (0 = order), qty, before, after, exec, cost

OK, NEED_NEWS, NEED_NOISE, FULL = 0, 1, 2, 3
PRICE_INVALID, PRICE_CEILING, DIVERGED, RUNAWAY, SAMPLES, NEED_TABLE = 4, 5, 6, 7, 8, 9
SCHED_RUNAWAY = 10
NEED_FLOW, DRY_STOP = 11, 12
"""Statuses of :func:`mmsim.fastpath.advance`; see its module docstring. ``info`` holds: for
PRICE_INVALID t, before, after, cause (-1 news, else the account), qty; for PRICE_CEILING
t, account, qty, price after; for DIVERGED t, dealer, outcome, before, after, qty; for
RUNAWAY t, dealer, rounds; for SCHED_RUNAWAY t, dealer, same sign (0/1), the rule's
verdict (``hedge_rules.WATCH_*``), growing rounds, last |hedge| and typical (shares); for
DRY_STOP t
(the book's dry-out log has the row). NEED_FLOW: the book's liquidity flow needs its next
random block (``LiquidityFlow._refill``). SAMPLES: the
sample buffer is full (replay it, call again).
NEED_TABLE: t, dealer, spot: the dealer's evaluation is not valid there (``D_TMODE``);
load it as the book would answer at that spot and clock (building or refreshing its
table), then call again: the interrupted check resumes, replaying the evaluations it
had made (``elog``), so the run is the one of the simpy agents."""

_NOTIONAL_UNIT = 1.0e8
