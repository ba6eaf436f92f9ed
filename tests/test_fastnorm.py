"""The vectorized complementary error function (``mmsim.fastnorm.erfc_array``, the delta
tables' normal CDF) against ``math.erfc``: relative error within ``ERFC_REL`` up to
``ZREL``, within 1e-290 absolute beyond, the exact limits at +-inf, NaN kept, every
length (the compiled loops' vector bodies and scalar tails), and its pieces' polynomial
against the reference it was fitted to."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmsim._erfcx_pieces import PIECES, A
from mmsim.fastnorm import ERFC_REL, ZMAX, ZREL, _reference, erfc_array, erfcx_poly


def _erfc(x: np.ndarray) -> np.ndarray:
    out, y, e, tmp = (np.empty(x.size) for _ in range(4))
    erfc_array(np.ascontiguousarray(x, dtype=np.float64), out, y, e, tmp, x.size)
    return out


def _edges_of_pieces() -> np.ndarray:
    """``z`` at the ends of each interval of ``t = A / (A + z)``, and next to them."""
    t_lo = A / (A + ZMAX)
    t = t_lo + (1.0 - t_lo) * np.arange(PIECES + 1) / PIECES
    z = np.clip(A / t - A, 0.0, ZMAX)
    return np.concatenate([z, np.nextafter(z, 0.0), np.nextafter(z, 30.0)])


@pytest.mark.parametrize("seed", range(3))
def test_erfc_array_is_within_its_stated_relative_error_of_math_erfc(seed):
    rng = np.random.default_rng(seed)
    z = np.concatenate([
        rng.uniform(0.0, ZREL, 20000),
        rng.normal(0.0, 2.0, 20000),  # d / sqrt 2 of the nodes: mostly near the money
        rng.uniform(0.0, 1e-3, 2000),
        _edges_of_pieces(),
    ])  # fmt: skip
    x = np.concatenate([z, -z])
    x = x[np.abs(x) <= ZREL]
    exact = np.array([math.erfc(v) for v in x])
    rel = np.abs(_erfc(x) / exact - 1.0)
    worst = int(np.argmax(rel))
    assert rel.max() <= ERFC_REL, (
        f"seed {seed}: relative error {rel.max():.2e} > {ERFC_REL} at x = {x[worst]!r}"
    )


def test_erfc_array_beyond_zrel_is_within_1e_290_absolute():
    """Where ``erfc`` (or ``2 - erfc``) is below 1e-290 the result may round to the limit:
    absolute error within 1e-290 (the CDF's terms there are far below any tolerance)."""
    z = np.concatenate([np.linspace(ZREL, 40.0, 3001), [ZMAX, np.nextafter(ZMAX, 0.0), 1e300]])
    x = np.concatenate([z, -z])
    exact = np.array([math.erfc(v) for v in x])
    err = np.abs(_erfc(x) - exact)
    assert err.max() <= 1e-290, f"absolute error {err.max():.2e} beyond |x| = {ZREL}"


def test_erfc_array_edges():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 1e-300])
    out = _erfc(x)
    assert out[0] == 1.0 and out[1] == 1.0, f"erfc(0) must be 1 exactly, got {out[:2]}"
    assert out[2] == 0.0 and out[3] == 2.0, f"erfc(+-inf) must be 0 and 2, got {out[2:4]}"
    assert math.isnan(out[4]), "NaN must stay NaN"
    assert np.all(out[5:] == 1.0), f"erfc of a denormal must round to 1, got {out[5:]}"
    assert np.all(np.isfinite(out[[0, 1, 2, 3, 5, 6, 7]])), "no inf from finite or inf input"


@pytest.mark.parametrize("m", [0, 1, 3, 7, 8, 9, 31, 32, 33, 512])
def test_erfc_array_fills_exactly_the_first_m(m):
    """Vector body and tail: every element of the first ``m`` right, the rest untouched."""
    x = np.linspace(-6.0, 6.0, 600)
    out, y, e, tmp = np.full(600, -1.0), np.empty(600), np.empty(600), np.empty(600)
    erfc_array(x, out, y, e, tmp, m)
    want = np.array([math.erfc(v) for v in x[:m]])
    assert np.all(np.abs(out[:m] / want - 1.0) <= ERFC_REL), f"m={m}: first m wrong"
    assert np.all(out[m:] == -1.0), f"m={m}: wrote past m"


def test_erfcx_pieces_follow_their_reference():
    """The written-out polynomials (``mmsim/_erfcx_pieces.py``) against ``erfc(z) exp(z^2)``
    (the fit's reference, itself a few ulps): within 2e-15 relative over the whole fitted
    range, at the pieces' ends too (a stale or mistyped table fails this)."""
    z = np.concatenate([np.linspace(0.0, ZMAX, 5001), _edges_of_pieces()])
    got = np.array([erfcx_poly(v) for v in z])
    want = np.array([_reference(float(v)) for v in z])
    rel = np.abs(got / want - 1.0)
    assert rel.max() <= 2e-15, f"erfcx pieces off by {rel.max():.2e} at z = {z[np.argmax(rel)]}"
