"""The vectorized exponential (``mmsim.fastexp.exp_array``) against ``math.exp``: relative
error within ``EXP_REL`` over its whole range, exact at 0, exactly 0 below ``EXP_MIN``,
NaN kept, every length (the compiled loops' vector bodies and scalar tails)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmsim.fastexp import EXP_MAX, EXP_MIN, EXP_REL, exp_array


def _exp(y: np.ndarray) -> np.ndarray:
    out, tmp = np.empty(y.size), np.empty(y.size)
    exp_array(y, out, tmp, y.size)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_exp_array_is_within_its_stated_relative_error_of_math_exp(seed):
    rng = np.random.default_rng(seed)
    y = np.concatenate([
        rng.uniform(EXP_MIN, EXP_MAX, 4000),
        rng.uniform(-3.0, 3.0, 4000),  # near every k: r spans [-ln2/2, ln2/2]
        np.maximum(-0.5 * rng.normal(0.0, 10.0, 4000) ** 2, EXP_MIN),  # -d1^2 / 2
        np.arange(-700, 701) * math.log(2.0) / 2.0,  # halfway points of the reduction
    ])  # fmt: skip
    exact = np.array([math.exp(v) for v in y])
    rel = np.abs(_exp(y) / exact - 1.0)
    assert rel.max() <= EXP_REL, f"seed {seed}: relative error {rel.max():.2e} > {EXP_REL}"


def test_exp_array_edges():
    y = np.array([0.0, -0.0, EXP_MIN, EXP_MIN - 1e-9, -745.2, -1e300, -np.inf, np.nan, 1e-300])
    out = _exp(y)
    assert out[0] == 1.0 and out[1] == 1.0, "exp(0) must be 1 exactly"
    assert abs(out[2] / math.exp(EXP_MIN) - 1.0) <= EXP_REL, "exp(EXP_MIN) off"
    assert np.all(out[3:7] == 0.0), f"below EXP_MIN must give exactly 0, got {out[3:7]}"
    assert math.isnan(out[7]), "NaN must stay NaN"
    assert out[8] == 1.0, "exp(1e-300) must round to 1"


@pytest.mark.parametrize("m", [0, 1, 3, 7, 8, 9, 31, 64, 65, 241])
def test_exp_array_fills_exactly_the_first_m(m):
    """Vector body and tail: every element of the first ``m`` right, the rest untouched."""
    y = np.linspace(-50.0, 5.0, 300)
    out, tmp = np.full(300, -1.0), np.empty(300)
    exp_array(y, out, tmp, m)
    want = np.exp(y[:m])
    assert np.all(np.abs(out[:m] / want - 1.0) <= EXP_REL), f"m={m}: first m wrong"
    assert np.all(out[m:] == -1.0), f"m={m}: wrote past m"
