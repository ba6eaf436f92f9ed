"""Skip windows of the compiled fast path's dealers (:mod:`mmsim.fastpath`).

After an evaluation whose net delta is within the band (and after each fill), a dealer
gets a window: spots and clocks over which :func:`mmsim.delta_bounds.delta_box` proves
bounds on the delta of the lines it sums exactly, all its lines (``WIN_ALL``) or those
beside its delta table (``WIN_PARTS``: near expiry, changed since the build). A check
inside it is then decided without pricing those lines
(:func:`mmsim.kernel_checks._skips`); which windows are set never changes a run, only how
many checks it evaluates, so setting them backs off where they do not pay. Units: $ for
prices, shares (delta in shares, gamma in shares per $1), s for clocks; the dealer rows'
layout (``D_*``) in :mod:`mmsim.kernel_layout`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mmsim.delta_bounds import delta_box
from mmsim.kernel_layout import (
    D_BAND,
    D_CENTER_S,
    D_CN,
    D_COFF,
    D_H,
    D_HALF,
    D_N,
    D_NN,
    D_NOFF,
    D_NOTIONAL,
    D_OFF,
    D_T0,
    D_TEXP,
    D_TMODE,
    D_WCHI,
    D_WCLO,
    D_WDHI,
    D_WDLO,
    D_WFAIL,
    D_WHI,
    D_WIN,
    D_WLO,
    D_WT1,
    D_WUSED,
    D_WWAIT,
    TM_EXACT,
    TM_EXACT_UNTIL,
    TM_TABLE,
    WIN_ALL,
    WIN_PARTS,
    WIN_TABLE,
)
from mmsim.table_bounds import table_delta_box

__all__ = ["MAX_BACK_OFF", "PARTS_MIN_SKIPS", "TABLE_MIN_BAND", "skip_window", "windowed"]

MAX_BACK_OFF = 10.0
"""Most failed tries in a row counted: a dealer passes at most ``2**10 - 1`` evaluations
(about 17 minutes of a check a second) before trying again."""
PARTS_MIN_SKIPS = 2
"""Checks a ``WIN_PARTS`` window must skip to pay for its bounds (two to six
evaluations of its near and changed lines); fewer count as a failed try."""


TABLE_MIN_BAND = 10.0
"""Least band (shares) at which a dealer reading its table alone tries ``WIN_TABLE``
windows: at tighter bands (a band-0 dealer is flat within a share) they are a few cents
wide and rarely set, and the try after each check in the band cost the 10,000-line
band-0 day of ``benchmarks.books`` ~2 ms of its 12 ms kernel for one skipped check."""


@njit(cache=True, forceinline=False)  # not _check's: see kernel_checks._check
def windowed(dl, d):
    """Whether dealer ``d`` may get a skip window (:func:`skip_window`): it sums its lines
    exactly, or has lines summed exactly beside its table, or reads its table alone with
    a band of at least :data:`TABLE_MIN_BAND` shares (or per notional); a window it holds
    is dropped (``D_WIN``) when not."""
    mode = dl[d, D_TMODE]
    if mode == TM_EXACT or mode == TM_EXACT_UNTIL:
        return True
    if mode == TM_TABLE and (
        dl[d, D_NN] + dl[d, D_NN + 2] > 0.0
        or dl[d, D_BAND] >= TABLE_MIN_BAND
        or dl[d, D_NOTIONAL] != 0.0
    ):
        return True
    dl[d, D_WIN] = 0.0
    return False


@njit(cache=True, forceinline=False)  # not _check's: see kernel_checks._check
def skip_window(dl, d, S, t, delta, gamma, h, flat, lines, surf, xlines, coefs):
    """Set dealer ``d``'s skip window after an evaluation at spot ``S`` ($), clock ``t``
    (s): option ``delta`` (shares), ``gamma`` (shares per $1), with ``h`` shares held and
    ``flat`` the band (shares). Its spot range is the one where ``delta + gamma * dS``
    would stay 90% inside the band, its clock range 300 s or 1% of the time to the next
    expiry; :func:`mmsim.delta_bounds.delta_box` proves bounds there on the delta of the
    lines summed exactly (``WIN_ALL``: all its lines, the bounds within the band or a
    side that breaks it halved, twice at most) or, for a tabulated dealer, on its near
    and changed lines (``WIN_PARTS``: spot range half as wide, kept while their bounds'
    spread is within half the band's smaller room; the table's part is evaluated at each
    check, :func:`mmsim.kernel_checks._skips`). A tabulated dealer without lines beside
    its table gets a ``WIN_TABLE`` window: :func:`mmsim.table_bounds.table_delta_box`
    bounds its table's delta over the box (spot range and clocks within the table's grid
    and span; ``coefs``: the packed tables), and a check inside it is skipped as in a
    ``WIN_ALL`` one. None is set where no bound holds (near
    expiry, zero vol), where the spot range would be under 1e-5 of the spot (a band of
    about one share: the next check is likely outside), or when the band is not proven.

    Trying costs a few evaluations' worth, so a dealer backs off: after ``k`` tries in a
    row that set none, or set a ``WIN_PARTS`` window that skipped fewer than
    :data:`PARTS_MIN_SKIPS` checks (at most :data:`MAX_BACK_OFF` counted), it passes ``2**k - 1``
    evaluations before the next (a mixed book's bounds, line by line, can be too wide for
    its band at every check; near-expiry lines' gamma can make a window a tick wide).
    Which windows are set never changes a run, only how many checks it evaluates."""
    dl[d, D_WIN] = 0.0
    used = dl[d, D_WUSED]  # 1 + the checks the last WIN_PARTS window skipped, 0: none
    dl[d, D_WUSED] = 0.0
    if 0.0 < used < 1.0 + PARTS_MIN_SKIPS:  # it did not pay for its bounds
        _back_off(dl, d)
    elif used > 0.0:
        dl[d, D_WFAIL] = 0.0
    if dl[d, D_WWAIT] > 0.0:
        dl[d, D_WWAIT] -= 1.0
        return
    mode = dl[d, D_TMODE]
    parts = mode == TM_TABLE
    if not parts and mode != TM_EXACT and mode != TM_EXACT_UNTIL:
        return
    level, skew, floor, r, q, year = surf[0], surf[1], surf[2], surf[3], surf[4], surf[5]
    alone = False  # a table with no lines beside it: WIN_TABLE
    if parts:
        nn, xn = int(dl[d, D_NN]), int(dl[d, D_NN + 2])
        alone = nn == 0 and xn == 0
        parts = not alone
        near = xlines[:, int(dl[d, D_NOFF]) : int(dl[d, D_NOFF]) + nn]
        changed = xlines[:, int(dl[d, D_NOFF + 2]) : int(dl[d, D_NOFF + 2]) + xn]
        first = min(dl[d, D_TEXP], _first_expiry(near, nn, t), _first_expiry(changed, xn, t))
    else:
        nn, xn = int(dl[d, D_N]), 0
        near = lines[:, int(dl[d, D_OFF]) : int(dl[d, D_OFF]) + nn]
        changed = near
        first = _first_expiry(near, nn, t)
    t1 = t + min(300.0, 0.01 * (first - t))
    if alone:
        t1 = min(t1, dl[d, D_T0] + dl[d, D_H])
    net = delta + h
    g = abs(gamma)
    if gamma >= 0.0:
        room_up, room_dn = flat - net, flat + net
    else:
        room_up, room_dn = flat + net, flat - net
    cap = 0.05 * S
    part = 0.5 if parts else 0.9
    up = min(part * room_up / g, cap) if g > 0.0 else cap
    dn = min(part * room_dn / g, cap) if g > 0.0 else cap
    if not (room_up >= 0.0 and room_dn >= 0.0) or up + dn < 1e-5 * S:
        return  # outside the band (the next check trades) or a band of about a share
    if alone:  # the table's grid: outside it the check asks the book, never skipped
        up = min(up, dl[d, D_CENTER_S] + dl[d, D_HALF] - S)
        dn = min(dn, S - (dl[d, D_CENTER_S] - dl[d, D_HALF]))
        if not (up >= 0.0 and dn >= 0.0) or up + dn < 1e-5 * S:
            return
    for _ in range(3):
        if alone:
            ok, lo, hi = _table_box(dl, d, S, t, S - dn, S + up, t1, year, coefs)
        else:
            ok, lo, hi = delta_box(S - dn, S + up, t, t1, year, near, nn, level, skew, floor,
                                   r, q)  # fmt: skip
        if not ok:
            _back_off(dl, d)
            return
        if parts:
            ok, c_lo, c_hi = delta_box(S - dn, S + up, t, t1, year, changed, xn, level, skew,
                                       floor, r, q)  # fmt: skip
            if not ok:
                _back_off(dl, d)
                return
            if (hi - lo) + (c_hi - c_lo) <= 0.5 * min(room_up, room_dn):
                _set_window(dl, d, WIN_PARTS, S - dn, S + up, t1, lo, hi)
                dl[d, D_WUSED] = 1.0
                dl[d, D_WCLO] = c_lo
                dl[d, D_WCHI] = c_hi
                return
            up *= 0.5
            dn *= 0.5
            continue
        hi_in = hi + h <= flat
        lo_in = lo + h >= -flat
        if hi_in and lo_in:
            _set_window(dl, d, WIN_TABLE if alone else WIN_ALL, S - dn, S + up, t1, lo, hi)
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
    _back_off(dl, d)


@njit(cache=True)
def _table_box(dl, d, S, t, s_lo, s_hi, t1, year, coefs):
    """:func:`~mmsim.table_bounds.table_delta_box` of dealer ``d``'s loaded table over
    spots ``s_lo`` to ``s_hi`` ($, holding ``S``) and clocks ``t`` to ``t1`` (s), in the
    grid coordinates and time fractions its checks compute (``kernel_checks._table_part``)."""
    c0 = int(dl[d, D_COFF])
    H = dl[d, D_H]
    center, half, t0 = dl[d, D_CENTER_S], dl[d, D_HALF], dl[d, D_T0]
    x0 = (S - center) / half
    xlo = max((s_lo - center) / half, -1.0)
    xhi = min((s_hi - center) / half, 1.0)
    u0 = (t - t0) / H
    u1 = min((t1 - t0) / H, 1.0)
    return table_delta_box(coefs[:, c0 : c0 + int(dl[d, D_CN])], x0, min(xlo, x0),
                           max(xhi, x0), u0, max(u1, u0), H / year)  # fmt: skip


@njit(cache=True)
def _back_off(dl, d):
    """One more try in a row that set no window: pass the next ``2**k - 1`` evaluations
    (``k`` tries, at most :data:`MAX_BACK_OFF`) before trying again."""
    k = min(dl[d, D_WFAIL] + 1.0, MAX_BACK_OFF)
    dl[d, D_WFAIL] = k
    dl[d, D_WWAIT] = 2.0**k - 1.0


@njit(cache=True)
def _first_expiry(lines, n, t):
    """The first expiry (s) after clock ``t`` of the first ``n`` lines of ``lines`` with
    units (inf: none)."""
    first = np.inf
    for i in range(n):
        E = lines[1, i]  # ROW_EXPIRY
        if E > t and lines[3, i] != 0.0:  # ROW_UNITS
            first = min(first, E)
    return first


@njit(cache=True)
def _set_window(dl, d, kind, lo_s, hi_s, t1, lo, hi):
    """Dealer ``d``'s skip window: its kind (``WIN_*``), spots ``lo_s`` to ``hi_s`` ($),
    clocks up to ``t1`` (s), bounds ``lo`` to ``hi`` (shares)."""
    dl[d, D_WIN] = kind
    if kind != WIN_PARTS:  # a WIN_PARTS window is judged by what it skips
        dl[d, D_WFAIL] = 0.0
    dl[d, D_WUSED] = 0.0
    dl[d, D_WLO] = lo_s
    dl[d, D_WHI] = hi_s
    dl[d, D_WT1] = t1
    dl[d, D_WDLO] = lo
    dl[d, D_WDHI] = hi
