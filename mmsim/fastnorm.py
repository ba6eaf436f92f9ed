"""``erfc`` of many numbers at once, in loops the compiler vectorizes: the normal CDF
of the delta tables' node values (:func:`mmsim.delta_table.node_greeks`).

``math.erfc`` in a numba loop is a libm call per element (~10 ns, two exponentials and
branches on the argument's range) and keeps the loop scalar. :func:`erfc_array` writes
``erfc(z) = exp(-z^2) x erfcx(z)`` for ``z = |x|``:

- ``erfcx`` (smooth, between ``1 / (z sqrt(pi))`` and 1) in ``t = A / (A + z)``, which
  maps ``[0, ZMAX]`` onto ``[A / (A + ZMAX), 1]``: that range cut in :data:`PIECES`
  equal intervals, a degree-:data:`DEGREE` polynomial on each (:func:`erfcx_poly`,
  written out with its coefficients as literals, the interval picked by comparisons:
  selects, no branch and no table lookup, so the loop vectorizes);
- ``exp(-z^2)`` from :func:`~mmsim.fastexp.exp_array` of ``-zh^2`` (``zh``: ``z``
  rounded to 26 bits, so its square is exact) times ``exp(-(z - zh)(z + zh))`` by its
  Taylor polynomial (that argument is below 2e-5 in size);
- ``erfc(-z) = 2 - erfc(z)``.

The polynomials (:mod:`mmsim._erfcx_pieces`, written by ``python -m mmsim.fastnorm``)
are least-squares Chebyshev fits of ``math.erfc(z) x exp(z^2)`` (``z^2`` split exactly in
two, so the reference is within a few ulps), 8 points per coefficient, per interval.

Accuracy (``tests/test_fastnorm.py``): within :data:`ERFC_REL` relative of
``math.erfc`` for ``|x| <= ZREL`` (so the normal CDF ``erfc(-d / sqrt 2) / 2`` within
``ERFC_REL`` absolute everywhere); beyond, where ``erfc`` is below ``1e-290`` (or
within that of 2), within ``1e-290`` absolute (exactly 0 or 2 past ``ZMAX``). ``+-inf``
give 0 and 2, NaN gives NaN. Callers that need ``math.erfc``'s bits must not use it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from mmsim._erfcx_pieces import ZMAX, erfcx_poly
from mmsim.fastexp import exp_array

__all__ = ["ERFC_REL", "ZMAX", "ZREL", "erfc_array"]

ERFC_REL = 2.5e-15
"""Bound on the relative difference of :func:`erfc_array` from ``math.erfc`` for
``|x| <= ZREL`` (measured: 1.8e-15 at most, 1.7e-16 on average)."""
ZREL = 26.0
"""``erfc(26) ~ 5.7e-296``: beyond, ``math.erfc`` itself nears the subnormal range and
:func:`erfc_array` is within ``1e-290`` absolute."""
_SPLIT = 134217729.0  # 2**27 + 1: Veltkamp's split of a double into two 26-bit halves


@njit(cache=True, error_model="numpy")
def erfc_array(x, out, y, e, tmp, m):
    """``out[j] = erfc(x[j])`` for ``j < m`` (within :data:`ERFC_REL` relative of
    ``math.erfc``, see the module docstring); ``y``, ``e``, ``tmp``: float64 scratch of
    at least ``m``. All five arrays contiguous float64 and distinct."""
    for j in range(m):  # branch-free: selects
        z = abs(x[j])
        z = z if z < ZMAX else ZMAX  # NaN and inf too (their results are set below)
        c = _SPLIT * z
        zh = c - (c - z)
        b = -(z - zh) * (z + zh)  # |b| < 2e-5: exp(b) by Taylor to b^3 (error < 1e-20)
        y[j] = -zh * zh
        out[j] = erfcx_poly(z) * (1.0 + b * (1.0 + b * (0.5 + b * (1.0 / 6.0))))
    exp_array(y, e, tmp, m)
    for j in range(m):
        v = x[j]
        r = e[j] * out[j]
        r = 2.0 - r if v < 0.0 else r
        r = 0.0 if v > ZMAX else r  # erfc < 1e-305 (exp(-zh^2) is 0 there anyway)
        r = 2.0 if v < -ZMAX else r
        out[j] = r if v == v else v


def _reference(z: float) -> float:
    """``math.erfc(z) x exp(z^2)`` (``z^2`` split exactly: ``hi + lo``), a few ulps."""
    hi = z * z
    c = _SPLIT * z
    zh = c - (c - z)
    zl = z - zh
    lo = ((zh * zh - hi) + 2.0 * zh * zl) + zl * zl
    return math.erfc(z) * math.exp(hi) * (1.0 + lo)


def fit_pieces(a: float, pieces: int, degree: int, zmax: float) -> tuple[np.ndarray, float]:
    """Monomial coefficients (lowest first, one row per interval) in ``s in [-1, 1]`` of
    ``erfcx`` on the ``pieces`` equal intervals of ``t = a / (a + z)`` over ``[0, zmax]``:
    least-squares Chebyshev fits at ``8 x degree`` Chebyshev points of
    :func:`_reference`; and the intervals' width in ``t``."""
    from numpy.polynomial import chebyshev

    t_lo = a / (a + zmax)
    width = (1.0 - t_lo) / pieces
    n = 8 * degree
    s = np.cos(np.pi * (np.arange(n) + 0.5) / n)
    out = np.zeros((pieces, degree + 1))
    for k in range(pieces):
        t = t_lo + (k + 0.5) * width + 0.5 * width * s
        ref = np.array([_reference(float(v)) for v in a / t - a])
        out[k] = chebyshev.cheb2poly(chebyshev.chebfit(s, ref, degree))
    return out, width


def _source(a: float = 3.0, pieces: int = 4, degree: int = 13, zmax: float = 26.5) -> str:
    """The text of :mod:`mmsim._erfcx_pieces`: :func:`fit_pieces`' polynomials written
    out as :func:`erfcx_poly` (comparisons and selects, literals only)."""
    coef, width = fit_pieces(a, pieces, degree, zmax)
    t_lo = a / (a + zmax)
    edges = [t_lo + k * width for k in range(pieces + 1)]
    body = [f"    t = {a!r} / ({a!r} + z)"]
    body += [f"    i{k} = t >= {edges[k]!r}" for k in range(1, pieces)]
    body.append(f"    mid = {edges[0] + 0.5 * width!r}")
    body += [f"    mid = {edges[k] + 0.5 * width!r} if i{k} else mid" for k in range(1, pieces)]
    body.append(f"    s = (t - mid) * {2.0 / width!r}")
    for d in range(degree, -1, -1):
        body.append(f"    c = {float(coef[0, d])!r}")
        body += [f"    c = {float(coef[k, d])!r} if i{k} else c" for k in range(1, pieces)]
        body.append("    p = c" if d == degree else "    p = p * s + c")
    body.append("    return p")
    return (
        '"""``erfcx`` by pieces, for :mod:`mmsim.fastnorm` (written by ``python -m '
        'mmsim.fastnorm``:\nedit that, not this).\n"""\n\n'
        "from numba import njit\n\n"
        f"A = {a!r}\nPIECES = {pieces}\nDEGREE = {degree}\nZMAX = {zmax!r}\n\n\n"
        "@njit(cache=True)\n"
        "def erfcx_poly(z):  # fmt: skip\n"
        '    """``erfc(z) exp(z^2)`` for ``0 <= z <= ZMAX``: the interval of ``t = A / (A + z)``\n'
        '    by comparisons, its polynomial in ``s`` (its coefficients as literals)."""\n'
        + "\n".join(body)
        + "\n"
    )


if __name__ == "__main__":  # pragma: no cover - regenerates mmsim/_erfcx_pieces.py
    import sys

    with open(sys.argv[1] if len(sys.argv) > 1 else "mmsim/_erfcx_pieces.py", "w") as fh:
        fh.write(_source())
