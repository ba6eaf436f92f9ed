"""numpy's float64 summation order in numba: :func:`np_sum` equals ``a[:n].sum()``
bit for bit, so compiled code can reproduce what numpy code sums (the series sampler's
totals over dealers, a wall's strike GEX)."""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["np_sum"]


@njit(cache=True)
def _block(a, lo, n):
    """numpy's pairwise summation of a block ``a[lo:lo + n]``, ``n <= 128``."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - n % 8:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True)
def np_sum(a, n):
    """``a[:n].sum()`` of a float64 array as numpy computes it, bit for bit: from +0.0,
    pairwise (blocks of at most 128 summed in 8 lanes, larger ranges split in two at a
    multiple of 8, ``sum(left) + sum(right)``). The split is walked with an explicit
    stack: numba's disk cache cannot load recursive functions."""
    if n <= 128:  # np.int64(0): a typed start, not a literal (one compiled _block)
        return 0.0 + _block(a, np.int64(0), n)
    los = np.empty(64, np.int64)
    ns = np.empty(64, np.int64)
    stage = np.zeros(64, np.int64)  # 0: left to do, 1: right to do
    left = np.empty(64)
    los[0], ns[0], stage[0], top = 0, n, 0, 0
    while True:
        lo, k = los[top], ns[top]
        if k > 128:  # descend into the next half
            h = k // 2
            h -= h % 8
            child_lo, child_n = (lo, h) if stage[top] == 0 else (lo + h, k - h)
            top += 1
            los[top], ns[top], stage[top] = child_lo, child_n, 0
            continue
        v = _block(a, lo, k)
        while True:  # hand the value to the parents whose halves are both done
            top -= 1
            if top < 0:
                return 0.0 + v
            if stage[top] == 0:
                left[top] = v
                stage[top] = 1
                break
            v = left[top] + v
