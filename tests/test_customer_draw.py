"""A customer trade's premium is the BSM value at the surface's implied vol, bit for bit:
the draw computes ``VolSurface.iv`` and ``Smile.iv`` in scalars (issue 11, the cost of a
customer trade), and must price exactly as those methods do, on the floor, on the skew,
at a smile's own nodes and between them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from mmsim.agents.customers import CustomerFlow
from mmsim.book import OptionBook
from mmsim.greeks import bsm_scalar
from mmsim.schema import CustomerSegment
from mmsim.vol import Smile, VolSurface

DAY = 23_400.0


def _flow(seg: CustomerSegment, vol: VolSurface, smile: Smile | None, seed: int):
    book = OptionBook(2, r=0.03, q=0.01)
    market = SimpleNamespace(mid=100.0)
    rng = np.random.default_rng(seed)
    flow = CustomerFlow("s", seg, 0, [1, 2], book, market, vol, rng, DAY, smile=smile)  # type: ignore[arg-type]
    return flow, market, book


@pytest.mark.parametrize("with_smile", [False, True])
@pytest.mark.parametrize("skew", [0.0, -0.35])
def test_draw_premium_is_bsm_at_the_surface_iv_bit_for_bit(with_smile, skew):
    """600 draws (non-shipped segment: moneyness +-40%, edge 0.07 $, strike step 2.5 $,
    spot wandering 60-160 $, r 3%, q 1%, a floor the skew reaches): each premium equals
    ``max(bsm(S, K, T, iv) + sign x edge, 0)`` with ``iv`` from ``VolSurface.iv`` (flat)
    or ``Smile.iv`` (a smile of a few nodes: exact hits and interpolation), exactly."""
    seg = CustomerSegment(segment="put_hedgers", moneyness=(-0.4, 0.4), strike_step=2.5,
                          expiry_days=[0.5, 3.0, 40.0], edge=0.07)  # fmt: skip
    vol = VolSurface(atm=0.18, skew=skew, floor=0.12)
    smile = None
    if with_smile:
        smile = Smile(vol, [0.5 * DAY, 0.5 * DAY, 40 * DAY], [97.5, 105.0, 100.0],
                      [False, False, True], [0.03, -0.02, 0.01])  # fmt: skip
    flow, market, book = _flow(seg, vol, smile, seed=7)
    rng = np.random.default_rng(11)
    floored = 0
    for k in range(600):
        market.mid = float(100.0 * np.exp(rng.normal(0.0, 0.25)).clip(0.6, 1.6))
        now = float(k) * 10.0
        tr = flow._draw(now)
        S = market.mid
        if smile is None:
            iv = float(vol.iv(tr.strike, S))
            assert tr.iv_offset is None
        else:
            iv = smile.iv(tr.strike, tr.expiry, S, tr.is_call)
            assert tr.iv_offset == smile.offset(tr.strike, tr.expiry, tr.is_call)
        floored += iv == vol.floor
        years = (tr.expiry - now) / book.year_seconds
        value = bsm_scalar(S, tr.strike, years, iv, book.r, book.q, tr.is_call)[0]
        sign = 1.0 if tr.qty > 0 else -1.0
        expected = max(value + sign * seg.edge, 0.0)
        assert tr.premium == expected, (k, S, tr.strike, tr.premium, expected)
    if skew:
        assert floored > 0, "the skew must reach the floor in some draws (a tested branch)"
