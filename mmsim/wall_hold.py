"""Walls found inside a proven spot x time box: only the strikes that may be a wall there
are priced, exactly.

A wall is the strike with the largest ``|call GEX|`` (``|put GEX|``) in a view
(:mod:`mmsim.level_kernels`): finding it prices every line at spot. While the book and
the surface are unchanged, each strike's GEX moves only with spot and the clock, so
:func:`wall_box` bounds, for every line, its unit GEX ``S**2 x gamma x GEX_PER_PCT``
over a box ``S in [S0 (1 - move), S0 (1 + move)]``, ``t in [t0, t0 + span]`` by interval
arithmetic on the BSM gamma (``log(K / S)``, the skewed sigma, ``sqrt(T)``, ``d1``, the
normal density and the dividend discount each bounded from its arguments' bounds; every
bound widened for rounding, far beyond it), and sums each strike's lines' weighted
bounds. In each of the four (view, side) pairs, a strike whose upper bound of ``|GEX|``
is below the largest lower bound of any strike is below that strike at every point of
the box, so it is never the wall there; the others are the candidates (on the synthetic
10,000-line book: 5-6 strikes, ~50 lines). At each levels sample inside the box
:func:`levels_row_held` prices exactly the candidates' lines (and the lines struck at
the visible walls, the ``*_strike_gex`` columns) and picks the walls among them: the same
row as :func:`~mmsim.level_kernels.levels_row_grouped`, bit for bit
(``tests/test_wall_hold.py``: at the corners and inside boxes of random books, and
whole runs against ``engine.levels_hold: off``; bounds that ignore the spot or the clock
move fail it). A line that could expire in the box, or whose ``sigma sqrt(T)`` could fall
below ``SD_EXACT``, gets an unbounded upper bound (its strike stays a candidate).

Units: spot and strikes in $, clock in s, GEX in $ per 1% move.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from mmsim.book_kernels import (
    GEX_PER_PCT,
    ROW_EXPIRY,
    ROW_IS_CALL,
    ROW_IV_OFF,
    ROW_UNITS,
    ROW_VIS_W,
)
from mmsim.fastexp import EXP_MIN, exp_array
from mmsim.greeks import _INV_SQRT_2PI
from mmsim.level_kernels import (
    SD_EXACT,
    _at_wall,
    _exact_gamma,
    _same,
    add_unit,
)
from mmsim.npsum import np_sum

__all__ = [
    "BOXES",
    "MAX_SHARE",
    "MIN_LINES",
    "RETRY",
    "WIDE_BOX",
    "WallBox",
    "levels_row_held",
    "row_scratch",
    "wall_box",
]

BOXES = ((0.005, 7_200.0), (0.0015, 900.0))
"""(spot move as a fraction of ``S0``, span in s) of the boxes tried, widest first."""
WIDE_BOX = (0.01, 23_400.0)
"""Tried before :data:`BOXES` for the run's first box and when the last box of the same
table and surface was left by spot or the clock (not by a change of the book; the
synthetic 10,000-line book: 1 box a day instead of 2), unless it held too many candidates
for that table already (lines expiring within the session keep their strikes
candidates): a book that stays put is then
boxed for a session and a 1% move (the synthetic 10,000-line book of
``benchmarks.books``: 2 boxes a day instead of 5, 2.3 -> 0.9 ms), while a book that
changes all day (customers) keeps the narrower boxes that hold few candidates."""
MAX_SHARE = 0.125
"""A box is kept when its candidate strikes hold at most this share of the lines."""
RETRY = 1_800.0
"""Seconds before a table whose boxes all failed is tried again."""
MIN_LINES = 256
"""Books with fewer live lines recompute their walls (a pass costs little there)."""
_WIDEN = 1e-9  # relative widening of each bound for the rounding of both computations


@njit(cache=True)
def _sigma(x, level, skew, floor, offset):
    """The line's sigma at ``x = log(K / S)``, as :func:`~mmsim.book_kernels.line_sigma`."""
    iv = max(level if skew == 0.0 else level + skew * x, floor)
    return max(iv + offset, floor)


@njit(cache=True, error_model="numpy")
def line_bounds(s_lo, s_hi, t_lo, t_hi, year_seconds, lines, n, level, skew, floor, r, q, log_k,
                lo, hi):  # fmt: skip
    """``lo[i] <= S**2 * gamma_i(S, t) * GEX_PER_PCT <= hi[i]`` for one unit of each of the
    first ``n`` lines, all ``S`` in ``[s_lo, s_hi]`` ($) and ``t`` in ``[t_lo, t_hi]`` (s)
    (module docstring); ``log_k``: ``log K`` per line. Lines already expired at ``t_lo``
    get 0, 0 (the exact pass gives them 0); ``hi`` is ``inf`` where no finite bound is
    proven. Branch-free loops over the lines (selects, ``error_model="numpy"``) and the
    densities and discounts from :func:`~mmsim.fastexp.exp_array` (within ``EXP_REL``
    of ``math.exp``, far inside ``_WIDEN``; the upper bound's exponent kept at or above
    ``EXP_MIN``, so that it never rounds to 0): the loops vectorize."""
    ls_lo, ls_hi = math.log(s_lo), math.log(s_hi)
    m = max(n, 1)
    y_near = np.empty(m)  # -near^2 / 2, -far^2 / 2 of d1 over the box
    y_far = np.empty(m)
    pre_hi = np.empty(m)  # what multiplies the densities, widened
    pre_lo = np.empty(m)
    kind = np.empty(m)  # 0: 0, 0; 1: unbounded above; 2: the bounds
    tls = np.empty(m)
    ths = np.empty(m)
    for i in range(n):
        e = lines[ROW_EXPIRY, i]
        # | and &, not or / and / a chained <=: no short-circuit jumps in the loop body
        # (with them it ran 5x slower: 0.31 -> 0.06 ms on 10,000 lines, same bounds)
        dead = (e <= t_lo) | ((lines[ROW_UNITS, i] == 0.0) & (lines[ROW_VIS_W, i] == 0.0))
        tl = (e - t_hi) / year_seconds
        tl = tl if tl > 0.0 else 0.0  # (e <= t_hi: unbounded anyway)
        th = (e - t_lo) / year_seconds
        slack = 1e-12 * (1.0 + abs(log_k[i]) + abs(ls_lo))
        x_lo = log_k[i] - ls_hi - slack  # log(K / S)
        x_hi = log_k[i] - ls_lo + slack
        off = lines[ROW_IV_OFF, i]
        sa = _sigma(x_lo, level, skew, floor, off)
        sb = _sigma(x_hi, level, skew, floor, off)
        sd_lo = min(sa, sb) * math.sqrt(tl) * (1.0 - 1e-12)
        sd_hi = max(sa, sb) * math.sqrt(th) * (1.0 + 1e-12)
        unbounded = (e <= t_hi) | (sd_lo < SD_EXACT)
        sd_lo = sd_lo if sd_lo >= SD_EXACT else SD_EXACT  # (only unbounded lines change)
        da, db = (r - q) * tl, (r - q) * th
        num_lo = min(da, db) - x_hi - 1e-12 * (1.0 + abs(da) + abs(db))
        num_hi = max(da, db) - x_lo + 1e-12 * (1.0 + abs(da) + abs(db))
        r_lo = num_lo / sd_lo if num_lo < 0.0 else num_lo / sd_hi
        r_hi = num_hi / sd_hi if num_hi < 0.0 else num_hi / sd_lo
        d_lo = r_lo + 0.5 * sd_lo
        d_hi = r_hi + 0.5 * sd_hi
        d_lo -= _WIDEN * (1.0 + abs(d_lo))
        d_hi += _WIDEN * (1.0 + abs(d_hi))
        near = 0.0 if (d_lo <= 0.0) & (0.0 <= d_hi) else min(abs(d_lo), abs(d_hi))
        far = max(abs(d_lo), abs(d_hi))
        yn = -0.5 * near * near
        y_near[i] = yn if yn > EXP_MIN else EXP_MIN  # an upper bound stays > 0
        y_far[i] = -0.5 * far * far
        pre_hi[i] = s_hi * _INV_SQRT_2PI / sd_lo * GEX_PER_PCT * (1.0 + _WIDEN)
        pre_lo[i] = s_lo * _INV_SQRT_2PI / sd_hi * GEX_PER_PCT * (1.0 - _WIDEN)
        kind[i] = 0.0 if dead else (1.0 if unbounded else 2.0)
        tls[i] = -q * tl
        ths[i] = -q * th
    tmp = np.empty(m)
    pdf_hi = np.empty(m)
    pdf_lo = np.empty(m)
    exp_array(y_near, pdf_hi, tmp, n)
    exp_array(y_far, pdf_lo, tmp, n)
    if q != 0.0:  # the dividend discounts at both ends of the box
        qa = np.empty(m)
        qb = np.empty(m)
        exp_array(tls, qa, tmp, n)
        exp_array(ths, qb, tmp, n)
        for i in range(n):
            pdf_hi[i] *= max(qa[i], qb[i])
            pdf_lo[i] *= min(qa[i], qb[i])
    for i in range(n):
        k = kind[i]
        hi[i] = 0.0 if k == 0.0 else (np.inf if k == 1.0 else pre_hi[i] * pdf_hi[i])
        lo[i] = pre_lo[i] * pdf_lo[i] if k == 2.0 else 0.0


@njit(cache=True)
def _mark_side(g_lo, g_hi, has, mask):
    """Mark in ``mask`` the strikes (with ``has``) whose upper bound of ``|GEX|`` (their
    sums of the lines' weighted unit bounds ``g_lo``, ``g_hi``, one side of one view)
    reaches the largest lower bound of any strike: every other strike is below that
    strike at every point of the box."""
    u = has.size
    best = 0.0
    for k in range(u):
        if has[k]:
            a, b = g_lo[k], g_hi[k]
            low = 0.0 if a <= 0.0 <= b else min(abs(a), abs(b))
            best = max(best, low * (1.0 - _WIDEN))
    for k in range(u):
        if has[k]:
            top = max(abs(g_lo[k]), abs(g_hi[k])) * (1.0 + _WIDEN)
            if not top < best:  # NaN and inf are candidates too
                mask[k] = True


@njit(cache=True)
def _candidates(lines, n, inv_t, hct, hpt, inv_v, hcv, hpv, lo, hi, mask_t, mask_v):
    """Mark in ``mask_t`` (true view, ``ROW_UNITS``) and ``mask_v`` (visible,
    ``ROW_VIS_W``) the strikes that may have the largest ``|GEX|`` of their side (calls,
    puts) somewhere in the box whose per-line unit bounds are ``lo``, ``hi``
    (:func:`line_bounds`; :func:`_mark_side`). One pass over the lines sums each strike's
    bounds for both views and sides (the same sums, in line order, as a pass per view and
    side: a 10,000-line box in a quarter of the time). Returns the number of lines of the
    marked strikes (true, visible)."""
    ut, uv = hct.size, hcv.size
    g = np.zeros((8, max(ut, uv)))  # (view, side) x (lo, hi): true call, true put, ...
    for i in range(n):
        side = 0 if lines[ROW_IS_CALL, i] != 0.0 else 2
        for view in range(2):
            k = inv_t[i] if view == 0 else inv_v[i]
            if k < 0:
                continue
            w = lines[ROW_UNITS, i] if view == 0 else lines[ROW_VIS_W, i]
            r = 4 * view + side
            if w > 0.0:
                g[r, k] += w * lo[i]
                g[r + 1, k] += w * hi[i]
            else:
                g[r, k] += w * hi[i]
                g[r + 1, k] += w * lo[i]
    _mark_side(g[0, :ut], g[1, :ut], hct, mask_t)
    _mark_side(g[2, :ut], g[3, :ut], hpt, mask_t)
    _mark_side(g[4, :uv], g[5, :uv], hcv, mask_v)
    _mark_side(g[6, :uv], g[7, :uv], hpv, mask_v)
    c_t = c_v = 0
    for i in range(n):
        if inv_t[i] >= 0 and mask_t[inv_t[i]]:
            c_t += 1
        if inv_v[i] >= 0 and mask_v[inv_v[i]]:
            c_v += 1
    return c_t, c_v


@njit(cache=True)
def wall_box(s_lo, s_hi, t_lo, t_hi, year_seconds, lines, n, level, skew, floor, r, q, log_k,
             inv_t, st, hct, hpt, inv_v, sv, hcv, hpv):  # fmt: skip
    """Per view (true, visible), the strikes that may be a wall (call or put) at some
    ``S`` in ``[s_lo, s_hi]`` ($) and ``t`` in ``[t_lo, t_hi]`` (s) for these lines and
    surface (:func:`_candidates`), the lines :func:`levels_row_held` prices per
    view, and the number of lines struck at the candidates (true + visible); strike
    groups as :func:`~mmsim.level_kernels.levels_row_grouped`."""
    lo = np.empty(max(n, 1))
    hi = np.empty(max(n, 1))
    line_bounds(s_lo, s_hi, t_lo, t_hi, year_seconds, lines, n, level, skew, floor, r, q, log_k,
                lo, hi)  # fmt: skip
    mask_t = np.zeros(st.size, np.bool_)
    mask_v = np.zeros(sv.size, np.bool_)
    c_t, c_v = _candidates(lines, n, inv_t, hct, hpt, inv_v, hcv, hpv, lo, hi, mask_t, mask_v)
    # the lines a held row prices: the visible candidates', the true ones' and the true
    # view's lines struck at a visible candidate (the strike GEX at the visible walls)
    near = mask_t.copy()
    for k in range(sv.size):
        if mask_v[k]:
            for j in range(st.size):
                if abs(st[j] - sv[k]) <= 1e-9:
                    near[j] = True
    idx_t = np.empty(n, np.int64)
    idx_v = np.empty(n, np.int64)
    a = b = 0
    for i in range(n):
        if inv_t[i] >= 0 and near[inv_t[i]]:
            idx_t[a] = i
            a += 1
        if inv_v[i] >= 0 and mask_v[inv_v[i]]:
            idx_v[b] = i
            b += 1
    return (
        mask_t,
        mask_v,
        idx_t[:a],
        idx_v[:b],
        np.flatnonzero(mask_t),
        np.flatnonzero(mask_v),
        c_t + c_v,
    )


@njit(cache=True)
def _exact_strikes_of(S, t, year_seconds, lines, idx, row, level, skew, floor, r, q, inv, mask,
                      call, put, known, known_g, got):  # fmt: skip
    """:func:`~mmsim.level_kernels._exact_strikes` over the lines ``idx`` (ascending, holding
    every line of the strikes in ``mask``) into ``call`` and ``put`` zero at those
    strikes: the same sums in the same order. A line of ``known`` (ascending line
    numbers) priced already at this spot and clock takes its unit gamma from ``known_g``
    (NaN: not priced) instead of pricing it again (a line's unit gamma is the same in
    both views, the same number whichever pass priced it). ``got`` (the length of
    ``idx``, or empty) gets each line's unit gamma (NaN where its strike is not in
    ``mask``)."""
    scale = S * S * GEX_PER_PCT  # call and put: zero at the strikes of ``mask``
    p = 0
    for j, i in enumerate(idx):
        k = inv[i]
        g = np.nan
        if k >= 0 and mask[k]:
            while p < known.size and known[p] < i:
                p += 1
            if p < known.size and known[p] == i and known_g[p] == known_g[p]:
                g = known_g[p]
            else:
                g = _exact_gamma(S, t, year_seconds, lines, i, level, skew, floor, r, q)
            add_unit(lines, i, k, row, g, scale, call, put)
        if got.size:
            got[j] = g


@njit(cache=True)
def _clear_at(idx, inv, a, b):
    """Zero ``a`` and ``b`` at the strikes ``inv[idx]`` (the entries a pass wrote)."""
    for i in idx:
        k = inv[i]
        if k >= 0:
            a[k] = 0.0
            b[k] = 0.0


WALL_BLOCK = 512
"""Lines per block of :func:`_at_walls_fast` (their terms in arrays that stay in the
first-level cache)."""


@njit(cache=True, error_model="numpy")
def _at_walls_fast(walls, t, year_seconds, lines, n, level, skew, floor, r, q, log_k):
    """True and visible GEX of the whole book re-priced at each spot of ``walls`` ($ per
    1%; NaN for a NaN wall), ``(2, len(walls))``: the gammas of
    :func:`~mmsim.level_kernels._fast_units` (the density from ``log K`` by
    :func:`~mmsim.fastexp.exp_array`, exact below ``SD_EXACT``; each within ``1e-12``
    relative of the exact one, so each sum within ``1e-12`` of the gross), what
    :func:`~mmsim.level_kernels._at_wall` sums exactly: not the same bits. The live
    lines :data:`WALL_BLOCK` at a time, per wall in loops the compiler vectorizes (no
    branch, no division check), then added in line order."""
    w = walls.size
    out = np.zeros((2, w))
    log_w = np.empty(w)
    for j in range(w):
        log_w[j] = math.log(walls[j]) if walls[j] == walls[j] else 0.0
    nb = WALL_BLOCK
    buf = np.empty((11, nb))
    lk, rt, dft, dqa, off, wt, wv = buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6]
    y, c, g, tmp = buf[7], buf[8], buf[9], buf[10]
    idx = np.empty(nb, np.int64)
    sdv = np.empty(nb)
    i = 0
    while i < n:
        b = 0
        while i < n and b < nb:  # the next block of live lines, in line order
            e = lines[ROW_EXPIRY, i]
            w_true = lines[ROW_UNITS, i]
            w_vis = lines[ROW_VIS_W, i]
            if e > t and (w_true != 0.0 or w_vis != 0.0):
                T = (e - t) / year_seconds
                lk[b], rt[b], dft[b] = log_k[i], math.sqrt(T), (r - q) * T
                dqa[b] = math.exp(-q * T) if q != 0.0 else 1.0
                off[b], wt[b], wv[b], idx[b] = lines[ROW_IV_OFF, i], w_true, w_vis, i
                b += 1
            i += 1
        for j in range(w):
            S = walls[j]
            if S != S:
                continue
            ls = log_w[j]
            k = _INV_SQRT_2PI / S
            for m in range(b):  # vectorized: selects, no branches
                x = lk[m] - ls  # log(K / S)
                iv = level + skew * x  # level itself at skew 0 (x is finite)
                iv = iv if iv > floor else floor
                sigma = iv + off[m]
                sd = (sigma if sigma > floor else floor) * rt[m]
                inv_sd = 1.0 / sd
                d1 = (dft[m] - x) * inv_sd + 0.5 * sd
                y[m] = -0.5 * d1 * d1 if sd >= SD_EXACT else 0.0
                c[m] = dqa[m] * k * inv_sd
                sdv[m] = sd
            exp_array(y, g, tmp, b)
            acc_t, acc_v = out[0, j], out[1, j]
            for m in range(b):  # in line order
                gm = c[m] * g[m]
                if sdv[m] < SD_EXACT:
                    gm = _exact_gamma(S, t, year_seconds, lines, idx[m], level, skew, floor, r, q)
                acc_t += wt[m] * gm
                acc_v += wv[m] * gm
            out[0, j], out[1, j] = acc_t, acc_v
    for j in range(w):
        scale = walls[j] * walls[j] * GEX_PER_PCT
        out[0, j] *= scale
        out[1, j] *= scale
    return out


@njit(cache=True)
def _pick_in(cands, strikes, gex, has, any_has):
    """:func:`~mmsim.level_kernels._pick` of ``gex`` among the strikes ``cands`` (ascending
    indices) with ``has``, every other strike known to be smaller: the first largest
    ``|gex|`` (the first NaN); NaN without ``any_has``."""
    best, best_v = -1, -1.0
    for k in cands:
        if not has[k]:
            continue
        v = abs(gex[k])
        if math.isnan(v):
            best = k
            break
        if best < 0 or v > best_v:
            best, best_v = k, v
    if not any_has:
        return np.nan
    return strikes[max(best, 0)]


@njit(cache=True)
def _near(strikes, wall):
    """The index range of ``strikes`` (ascending) within 1e-9 of ``wall`` ($): the strikes
    :func:`~mmsim.level_kernels._strike_gex` sums; empty for NaN."""
    if math.isnan(wall):
        return 0, 0
    lo = np.searchsorted(strikes, wall - 2e-9)
    hi = np.searchsorted(strikes, wall + 2e-9, side="right")
    while lo < hi and not abs(strikes[lo] - wall) <= 1e-9:
        lo += 1
    while hi > lo and not abs(strikes[hi - 1] - wall) <= 1e-9:
        hi -= 1
    return lo, hi


@njit(cache=True)
def _strike_gex_near(wall, strikes, call, put):
    """:func:`~mmsim.level_kernels._strike_gex` from the strikes of :func:`_near` only:
    the same sums."""
    if math.isnan(wall):
        return np.nan
    lo, hi = _near(strikes, wall)
    return np_sum(call[lo:hi].copy(), hi - lo) + np_sum(put[lo:hi].copy(), hi - lo)


@njit(cache=True)
def levels_row_held(S, t, year_seconds, lines, n, level, skew, floor, r, q, hold_gex, fast_gex,
                    log_k, inv_t, st, hct, hpt, inv_v, sv, hcv, hpv, mask_t, mask_v, idx_t, idx_v,
                    cand_t, cand_v, has, scratch, out):  # fmt: skip
    """:func:`~mmsim.level_kernels.levels_row_grouped` without flips, at a point of the
    box of :func:`wall_box` whose candidate strikes are ``mask_t`` (true view) and
    ``mask_v`` (visible), indices ``cand_t``, ``cand_v``: the walls picked among those
    strikes from their exact sums (every other strike is proven smaller), the true GEX
    at spot of the lines struck at each visible wall exact (the same sums, in the same
    order), the GEX re-priced at the visible walls kept with ``hold_gex`` when they are
    the walls already in ``out[4:6]``. ``idx_t``, ``idx_v``: the lines of those strikes
    (:func:`wall_box`), the only ones priced, each once (a line of both views is priced
    by the visible pass and its unit gamma reused by the true one). The same row, bit
    for bit; with ``fast_gex`` the GEX re-priced at the visible walls (``out[6:10]``,
    when not kept) comes from :func:`_at_walls_fast` (``log_k``: ``log K`` per line),
    within ``1e-12`` of the gross; with ``fast_gex == 2`` it is left to the caller.
    Returns whether the GEX was kept.

    ``has``: ``hct.any()``, ``hpt.any()``, ``hcv.any()``, ``hpv.any()``; ``scratch``: 4
    rows of zeros at least as long as the strikes of either view (the per-strike sums;
    each entry written is zeroed again before returning, so no strike-sized array is
    allocated or cleared per row: :meth:`WallBox.build` makes both)."""
    a = (t, year_seconds, lines, n)
    s = (level, skew, floor, r, q)
    call_v, put_v = scratch[0, : sv.size], scratch[1, : sv.size]
    ct, pt = scratch[2, : st.size], scratch[3, : st.size]
    gv = np.empty(idx_v.size)  # the visible pass's unit gammas, for the true one
    none = np.empty(0, np.int64)
    _exact_strikes_of(S, t, year_seconds, lines, idx_v, ROW_VIS_W, *s, inv_v, mask_v, call_v,
                      put_v, none, gv, gv)  # fmt: skip
    cwv = _pick_in(cand_v, sv, call_v, hcv, has[2])
    pwv = _pick_in(cand_v, sv, put_v, hpv, has[3])
    _clear_at(idx_v, inv_v, call_v, put_v)
    mask = mask_t.copy()  # and the true view's strikes at the visible walls
    for w in (cwv, pwv):
        lo, hi = _near(st, w)
        mask[lo:hi] = True
    _exact_strikes_of(S, t, year_seconds, lines, idx_t, ROW_UNITS, *s, inv_t, mask, ct, pt,
                      idx_v, gv, gv[:0])  # fmt: skip
    out[2] = _pick_in(cand_t, st, ct, hct, has[0])
    out[3] = _pick_in(cand_t, st, pt, hpt, has[1])
    keep = hold_gex and _same(cwv, out[4]) and _same(pwv, out[5])
    out[4] = cwv
    out[5] = pwv
    out[10] = _strike_gex_near(cwv, st, ct, pt)
    out[11] = _strike_gex_near(pwv, st, ct, pt)
    if not keep and not fast_gex:
        out[6], out[7], out[10] = _at_wall(cwv, S, *a, *s, st, ct, pt)
        out[8], out[9], out[11] = _at_wall(pwv, S, *a, *s, st, ct, pt)
    _clear_at(idx_t, inv_t, ct, pt)
    if keep:
        return True
    if fast_gex == 2:  # the caller fills out[6:10] (from the profile table)
        return False
    if fast_gex:
        g = _at_walls_fast(np.array([cwv, pwv]), *a, *s, log_k)
        out[6], out[7] = (g[0, 0], g[1, 0]) if cwv == cwv else (np.nan, np.nan)
        out[8], out[9] = (g[0, 1], g[1, 1]) if pwv == pwv else (np.nan, np.nan)
    return False


def row_scratch(groups: tuple, old: tuple = ()) -> tuple[np.ndarray, np.ndarray]:
    """``(has, scratch)`` of :func:`levels_row_held` for the strike ``groups`` (``(*true,
    *visible, log_k)`` of :class:`~mmsim.level_kernels.StrikeGroups`): whether each view
    has calls and puts at all, and 4 rows of zeros as long as the most strikes of a view
    (``old[0]``, a scratch handed back zeroed by the held rows, when long enough)."""
    _, st, hct, hpt, _, sv, hcv, hpv = groups[:8]
    has = np.array([hct.any(), hpt.any(), hcv.any(), hpv.any()])
    u = max(st.size, sv.size)
    if old and old[0].shape[1] >= u:
        return has, old[0]
    return has, np.zeros((4, u))


class WallBox:
    """The last box (:func:`wall_box`) and its candidate strikes, valid while the caller
    passes the same line table (object, ``n``, book ``version``) and surface, spot
    inside ``[s_lo, s_hi]`` ($) and the clock inside ``[t_lo, t_hi]`` (s). ``held`` /
    ``built`` / ``refused`` count levels samples served from a box, boxes kept and
    attempts that kept none (diagnostics)."""

    def __init__(self) -> None:
        self._key: tuple = ()
        self._box = (np.inf, -np.inf, np.inf, -np.inf)
        self.masks: tuple = ()
        self._refused: tuple = ((), -np.inf)  # the table whose boxes failed, and until when
        self._narrow: tuple = ()  # the table whose wide box held too many candidates
        self.held = 0
        self.built = 0
        self.refused = 0

    def covers(self, S: float, t: float, lines: np.ndarray, n: int, version: int,
               surface: tuple) -> bool:  # fmt: skip
        """Whether the box holds spot ``S`` ($), clock ``t`` (s) for this table (counted in
        ``held``)."""
        ok = self.holds(S, t, lines, n, version, surface)
        self.held += ok
        return ok

    def holds(self, S: float, t: float, lines: np.ndarray, n: int, version: int,
              surface: tuple) -> bool:  # fmt: skip
        """:meth:`covers` without counting."""
        key = self._key
        s_lo, s_hi, t_lo, t_hi = self._box
        return (
            bool(key)
            and key[0] is lines
            and key[1:] == (n, version, surface)
            and s_lo <= S <= s_hi
            and t_lo <= t <= t_hi
        )

    def build(self, S: float, t: float, year_seconds: float, lines: np.ndarray, n: int,
              version: int, surface: tuple, groups: tuple) -> bool:  # fmt: skip
        """Try the :data:`BOXES` around spot ``S`` ($) from clock ``t`` (s), widest first
        (:data:`WIDE_BOX` before them for the run's first box and when the last box of
        this table was left by spot or the clock, once per table if it holds too many
        candidates);
        ``groups``: ``(*true, *visible, log_k)`` of
        :class:`~mmsim.level_kernels.StrikeGroups`. Keeps the first whose candidate
        strikes hold at most ``MAX_SHARE`` of the lines (both views); after none did,
        tries again only ``RETRY`` s later or for another table or surface."""
        key, same = self._key, (n, version, surface)
        left = bool(key) and key[0] is lines and key[1:] == same
        narrow = self._narrow
        first = not (self.built or self.refused or narrow)  # the run's first box: wide
        wide = (left or first) and not (narrow and narrow[0] is lines and narrow[1:] == same)
        self._key = ()
        old, until = self._refused
        if old and old[0] is lines and old[1:] == same and t < until:
            return False
        for move, span in (WIDE_BOX, *BOXES) if wide else BOXES:
            box = (S * (1.0 - move), S * (1.0 + move), t, t + span)
            *masks, count = wall_box(*box, year_seconds, lines, n, *surface, groups[8],
                                     *groups[:8])  # fmt: skip
            if (move, span) == WIDE_BOX and count > MAX_SHARE * 2 * n:
                self._narrow = (lines, *same)  # this table: the narrow boxes from now on
            if count <= MAX_SHARE * 2 * n:
                self._key = (lines, n, version, surface)
                self._box = box
                self.masks = (*masks, *row_scratch(groups, self.masks[-1:]))
                self.built += 1
                self.held += 1
                return True
        self.refused += 1
        self._refused = ((lines, n, version, surface), t + RETRY)
        return False
