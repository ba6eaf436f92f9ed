"""A dealer's check in the compiled fast path, in numba (:mod:`mmsim.fastpath`).

Whether its evaluation is valid at a spot and clock (:func:`_valid`), its option delta
and gamma there (exactly over its lines or from its delta table: :func:`_value_at`,
logged and replayed across ``NEED_TABLE`` by :func:`_eval`), the net delta after an
order (:func:`_net_after`) and the solve for the order that lands on target
(:func:`_solve`), the check itself with the rules of :mod:`mmsim.hedge_rules`
(:func:`_check`), and the skip of a check inside its skip window (:func:`_skips`; the
windows: :mod:`mmsim.skip_windows`). Units: $ for prices, shares (delta in shares,
gamma in shares per $1), s for clocks; array layouts in :mod:`mmsim.kernel_layout`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from mmsim.book_kernels import holder_cols
from mmsim.delta_table import table_eval
from mmsim.hedge_rules import (
    LAGGED_OVERSHOOTS,
    MAX_SOLVE_STEPS,
    MIN_ORDER,
    OVERCORRECTING,
    RUNAWAY_MIN_SIZE,
    SETTLING,
    SOLVE_OVERSHOOT,
    bracket_probe,
    fill_feedback,
    fill_outcome,
    plan_hedge,
    solve_pick,
    solve_update,
)
from mmsim.kernel_layout import (
    _NOTIONAL_UNIT,
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
    D_H,
    D_HALF,
    D_HCOST,
    D_HF,
    D_HVOL,
    D_INST,
    D_LASTD,
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
    D_SOLVE,
    D_T0,
    D_T1,
    D_TEXP,
    D_TMODE,
    D_WCHI,
    D_WCLO,
    D_WDHI,
    D_WDLO,
    D_WHI,
    D_WIN,
    D_WLO,
    D_WS,
    D_WT1,
    D_WU,
    D_WUSED,
    DIVERGED,
    MK_CHANGES,
    MK_MID,
    NEED_TABLE,
    OK,
    Q_ELEN,
    Q_EPOS,
    Q_SKIPS,
    TM_EXACT,
    TM_EXACT_UNTIL,
    TM_TABLE,
    WIN_ALL,
    WIN_TABLE,
)
from mmsim.kernel_market import _order_any, _preview_any, _wake
from mmsim.skip_windows import skip_window, windowed


@njit(cache=True, forceinline=False)  # not _check's: see its comment
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


@njit(cache=True, forceinline=False)  # not _check's: see its comment
def _table_part(dl, d, S, t, surf, coefs):
    """Share delta and gamma of dealer ``d``'s delta table alone (``table_eval``; its near
    and changed lines not added) at spot ``S`` ($), clock ``t`` (s) inside its window."""
    c0 = int(dl[d, D_COFF])
    H = dl[d, D_H]
    x = (S - dl[d, D_CENTER_S]) / dl[d, D_HALF]
    u = (t - dl[d, D_T0]) / H
    return table_eval(coefs[:, c0 : c0 + int(dl[d, D_CN])], x, u, H / surf[5])


@njit(cache=True, forceinline=False)  # not _check's: see its comment
def _skips(dl, d, S, t, h, flat, surf, coefs, q):
    """Whether dealer ``d``'s check at spot ``S`` ($), clock ``t`` (s), inside its skip
    window's box, provably finds its option delta plus ``h`` shares held within the band
    ``flat`` (shares), as the evaluated check would (:func:`_eval`; rounding is monotone,
    so ``fl(fl(a + n) + h) <= fl(fl(a + hi) + h)`` for ``n <= hi``): ``WIN_ALL``, the
    window's bounds on the whole delta; ``WIN_PARTS``, the table's part evaluated here as
    the check would and the window's bounds on its near and changed lines added in the
    check's order; ``WIN_TABLE``, the window's bounds on the delta of a table with no
    lines beside it (:func:`mmsim.table_bounds.table_delta_box`: they hold for the
    check's floats). Only where the check's evaluation is valid (:func:`_valid`: else it
    would ask the book, ``NEED_TABLE``) and not resumed (replayed evaluations)."""
    if q[Q_ELEN] != 0:
        return False
    mode = dl[d, D_TMODE]
    if dl[d, D_WIN] == WIN_ALL:
        if mode != TM_EXACT and not (mode == TM_EXACT_UNTIL and _valid(dl, d, S, t)):
            return False
        return dl[d, D_WDHI] + h <= flat and dl[d, D_WDLO] + h >= -flat
    if mode != TM_TABLE or not _valid(dl, d, S, t):
        return False
    if dl[d, D_WIN] == WIN_TABLE:  # bounds on the table's delta (no lines beside it)
        return dl[d, D_WDHI] + h <= flat and dl[d, D_WDLO] + h >= -flat
    lo, _ = _table_part(dl, d, S, t, surf, coefs)
    hi = lo
    if int(dl[d, D_NN]):
        lo += dl[d, D_WDLO]
        hi += dl[d, D_WDHI]
    if int(dl[d, D_NN + 2]):
        lo += dl[d, D_WCLO]
        hi += dl[d, D_WCHI]
    return hi + h <= flat and lo + h >= -flat


@njit(cache=True, forceinline=False)  # not _check's: see its comment
def _value_at(dl, d, S, t, lines, surf, coefs, xlines):
    """Option share delta and gamma of dealer ``d`` at a point where its evaluation is
    valid (:func:`_valid`): exact over its lines (``holder_cols``: ``holder_sum``'s
    floats), or the book's tabulated sum (``table_eval``, then its near lines, then its
    changed lines)."""
    if dl[d, D_TMODE] != TM_TABLE:
        return holder_cols(
            S, t, surf[5], lines, int(dl[d, D_OFF]), int(dl[d, D_N]), surf[0], surf[1],
            surf[2], surf[3], surf[4],
        )  # fmt: skip
    delta, gamma = _table_part(dl, d, S, t, surf, coefs)
    for j in range(2):
        k = int(dl[d, D_NN + 2 * j])
        if k:
            dd, gg = holder_cols(
                S, t, surf[5], xlines, int(dl[d, D_NOFF + 2 * j]), k, surf[0], surf[1],
                surf[2], surf[3], surf[4],
            )  # fmt: skip
            delta += dd
            gamma += gg
    return delta, gamma


@njit(cache=True, forceinline=True)
def _eval(dl, d, S, t, lines, surf, coefs, xlines, elog, q, info):
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
    delta, gamma = _value_at(dl, d, S, t, lines, surf, coefs, xlines)
    elog[k, 0] = delta
    elog[k, 1] = gamma
    q[Q_EPOS] = k + 1
    q[Q_ELEN] = k + 1
    return True, delta, gamma


@njit(cache=True, forceinline=False)  # not _check's: see its comment
def _net_after(dl, d, qty, t, mk, bk, shares, lines, surf, coefs, xlines, elog, q,
               info):  # fmt: skip
    """DealerAgent.net_delta_after: net delta had a hedge of ``qty`` traded now;
    ``(ok, net delta)`` (:func:`_eval`)."""
    S = _preview_any(mk, bk, qty)
    ok, delta, _ = _eval(dl, d, S, t, lines, surf, coefs, xlines, elog, q, info)
    return ok, delta + shares[int(dl[d, D_ACC])] + qty


@njit(cache=True, forceinline=False)  # not _check's: see its comment
def _solve(
    dl, d, delta, naive, target, band, t, mk, bk, shares, lines, surf, coefs, xlines,
    elog, q, info,
):  # fmt: skip
    """DealerAgent._solve, the same steps; ``(ok, qty)`` (:func:`_eval`)."""
    a = 0.0
    ga = delta - target
    b = naive
    ok, gb = _net_after(dl, d, naive, t, mk, bk, shares, lines, surf, coefs, xlines, elog,
                        q, info)  # fmt: skip
    if not ok:
        return False, 0.0
    gb -= target
    if ga * gb > 0.0:
        return True, naive
    fa = ga
    fb = gb
    kept = np.int64(0)  # typed, not a literal: one compiled solve_update
    for _ in range(MAX_SOLVE_STEPS):
        if abs(b - a) <= 1.0:
            break
        c = bracket_probe(a, fa, b, fb)
        ok, gc = _net_after(dl, d, c, t, mk, bk, shares, lines, surf, coefs, xlines, elog,
                            q, info)  # fmt: skip
        if not ok:
            return False, 0.0
        gc -= target
        if abs(gc) < 0.5 * MIN_ORDER:
            return True, c
        a, ga, b, gb, fa, fb, kept = solve_update(a, ga, b, gb, fa, fb, kept, c, gc)
    return True, solve_pick(a, ga, b, gb, target, band)


# inlined into its two callers: a call passing its 16 arrays cost ~50 ns per check, 1.3 ms
# of a long_gamma day's 7.5. By LLVM (``forceinline``), not in numba's IR
# (``inline="always"``): numba types and lowers it once, not once per caller (and _eval's
# three copies inside it), ~4 s less of a cold compile, the same machine code. numba hands
# a caller's ``forceinline`` on to every function it compiles for it, so the functions
# _check and _eval call say ``forceinline=False`` (tests/test_compiles.py checks which
# functions are inlined so).
@njit(cache=True, forceinline=True)
def _check(
    dl, d, t, mk, bk, shares, cash, lines, surf, fills, q, runq, fresh, waitq, info,
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
        # (an exact dealer's whole-delta window, most of a day's skips, is tested here
        # rather than in a call to _skips: the same test, without the call's cost)
        win = dl[d, D_WIN]
        if (
            win != 0.0
            and dl[d, D_WLO] <= mid <= dl[d, D_WHI]
            and t <= dl[d, D_WT1]
            and (
                (dl[d, D_WDHI] + shares[acc] <= flat and dl[d, D_WDLO] + shares[acc] >= -flat)
                if win == WIN_ALL and dl[d, D_TMODE] == TM_EXACT and q[Q_ELEN] == 0
                else _skips(dl, d, mid, t, shares[acc], flat, surf, coefs, q)
            )
        ):
            dl[d, D_POST] = 0.0
            if dl[d, D_WUSED] != 0.0:  # a WIN_PARTS window: what it skips judges it
                dl[d, D_WUSED] += 1.0
            q[Q_SKIPS] += 1
            return OK, 0.0
        ok, delta, gamma = _eval(dl, d, mid, t, lines, surf, coefs, xlines, elog, q,
                                 info)  # fmt: skip
        if not ok:
            return NEED_TABLE, 0.0
        if abs(delta + shares[acc]) <= flat and (dl[d, D_TMODE] == TM_EXACT or windowed(dl, d)):
            skip_window(dl, d, mid, t, delta, gamma, shares[acc], flat, lines, surf, xlines, coefs)
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
                dl, d, delta, qty, target, band, t, mk, bk, shares, lines, surf,
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
    ok, d_after, g_after = _eval(dl, d, mk[MK_MID], t, lines, surf, coefs, xlines,
                                 elog, q, info)  # fmt: skip
    after = d_after + shares[acc]
    if windowed(dl, d):
        skip_window(dl, d, mk[MK_MID], t, d_after, g_after, shares[acc], flat, lines, surf,
                     xlines, coefs)  # fmt: skip
    dl[d, D_POST] = 1.0
    dl[d, D_POST_CH] = mk[MK_CHANGES]
    dl[d, D_POST_T] = t
    dl[d, D_POST_D] = after
    dl[d, D_POST_G] = g_after
    outcome = fill_outcome(delta, after, goal, qty)
    if abs(qty) < RUNAWAY_MIN_SIZE:
        outcome = SETTLING
    else:  # the scheduled watch's measured lam * G (DealerAgent._judge_fill)
        dl[d, D_FEED] = fill_feedback(delta, after, qty)
        dl[d, D_FEED_T] = t
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
