"""The book's line tables: implied-vol offsets, bulk booking, per-holder hot tables.

Expected values come from ``mmsim.greeks.bsm_greeks`` written out by hand (as in
``test_book.py``); tolerance ``rtol=1e-10`` (same closed forms, different summation order).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmsim.book import OptionBook
from mmsim.greeks import bsm_greeks
from mmsim.vol import VolSurface

DAY = 23_400.0
YEAR = 252 * DAY
S0, T0 = 100.0, 1_000.0
ATM, SKEW, FLOOR = 0.20, -0.15, 0.05
RTOL = 1e-10


def surface() -> VolSurface:
    return VolSurface(atm=ATM, skew=SKEW, floor=FLOOR)


def random_lines(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "strike": np.round(rng.uniform(80, 120, n), 1),
        "expiry": np.round(rng.uniform(0.1, 60, n)) * DAY,
        "is_call": rng.random(n) < 0.5,
        "qty": rng.integers(-50, 50, n).astype(float),
        "holder": rng.integers(0, 3, n),
        "visible": rng.random(n) < 0.8,
        "multiplier": np.where(rng.random(n) < 0.9, 100.0, 10.0),
        "iv_offset": rng.uniform(-0.05, 0.05, n),
    }


def test_iv_offset_prices_the_line_at_surface_plus_offset_floored():
    """sigma of a line = max(surface_iv(K, S) + iv_offset, floor), in every view."""
    book = OptionBook(1)
    lines = [(90.0, -0.02), (100.0, 0.07), (110.0, -0.50)]  # the last one hits the floor
    for K, off in lines:
        book.add(K, 10 * DAY, True, 10.0, 0, iv_offset=off)
    vol = surface()
    delta, gamma = book.net_delta_gamma(S0, 0.0, vol)
    sig = [max(max(ATM + SKEW * math.log(K / S0), FLOOR) + off, FLOOR) for K, off in lines]
    g = bsm_greeks(S0, [K for K, _ in lines], 10 / 252, sig, 0.0, 0.0, True)
    assert delta[0] == pytest.approx(1_000.0 * g.delta.sum(), rel=RTOL)
    assert gamma[0] == pytest.approx(1_000.0 * g.gamma.sum(), rel=RTOL)
    assert book.gex_at(S0, 0.0, vol) == pytest.approx(
        1_000.0 * g.gamma.sum() * S0**2 * 0.01, rel=RTOL
    )
    assert book.holder_delta_gamma(0, S0, 0.0, vol) == (delta[0], gamma[0])
    np.testing.assert_array_equal(book.lines(iv_offset=True)["iv_offset"], [-0.02, 0.07, -0.5])
    # None keeps an existing line's offset; a number replaces it
    book.add(90.0, 10 * DAY, True, 1.0, 0)
    book.add(100.0, 10 * DAY, True, 1.0, 0, iv_offset=0.01)
    assert list(book.iv_offset) == [-0.02, 0.01, -0.5]


def test_add_many_equals_adding_line_by_line_bit_for_bit():
    cols = random_lines(3_000)
    bulk, one = OptionBook(3), OptionBook(3)
    bulk.add_many(**cols)
    for j in range(3_000):
        one.add(
            cols["strike"][j], cols["expiry"][j], cols["is_call"][j], cols["qty"][j],
            int(cols["holder"][j]), visible=bool(cols["visible"][j]),
            multiplier=cols["multiplier"][j], iv_offset=cols["iv_offset"][j],
        )  # fmt: skip
    assert bulk.n == one.n < 3_000  # duplicates aggregated the same way
    for a, b in ((bulk, one),):
        for name in ("strike", "expiry", "is_call", "qty", "holder", "visible", "iv_offset"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    vol = surface()
    for S in (90.0, 100.0, 112.0):
        np.testing.assert_array_equal(
            bulk.net_delta_gamma(S, T0, vol)[0], one.net_delta_gamma(S, T0, vol)[0]
        )
        assert bulk.gex_at(S, T0, vol, "visible") == one.gex_at(S, T0, vol, "visible")


def test_add_many_rejects_bad_input_naming_the_field_and_index():
    book = OptionBook(2)
    with pytest.raises(ValueError, match=r"strike\[1\]"):
        book.add_many([100.0, -1.0], DAY, True, 1.0, 0)
    with pytest.raises(ValueError, match=r"holder\[0\]"):
        book.add_many([100.0], DAY, True, 1.0, 2)
    with pytest.raises(ValueError, match=r"iv_offset\[0\]"):
        book.add_many([100.0], DAY, True, 1.0, 0, iv_offset=np.nan)
    assert book.n == 0


def test_hot_tables_give_exact_per_holder_sums_through_expiries_and_changes():
    """A holder's check reads only its own live lines: equal, bit for bit, to the full
    per-holder reduction, before and after lines expire, other holders trade, or the
    clock runs backwards (a fresh query at an earlier time)."""
    cols = random_lines(400, seed=3)
    book, vol = OptionBook(3), surface()
    book.add_many(**cols)

    def check(S: float, t: float) -> None:
        delta, gamma = book.net_delta_gamma(S, t, vol)
        for h in range(3):
            assert book.holder_delta_gamma(h, S, t, vol) == (delta[h], gamma[h]), (h, t)

    for t in (0.0, 0.5 * DAY, 3 * DAY, 30 * DAY):  # later expiries compact lines out
        check(101.0, t)
    n_live = book._hot_lines(0, 30 * DAY)[1]
    assert n_live < np.sum((cols["holder"] == 0) & (cols["expiry"] > 30 * DAY)) + 1
    book.add(100.0, 40 * DAY, True, 7.0, 1)  # holder 1 trades: holder 0's table is kept
    hot0 = book._hot[0]
    check(99.0, 30 * DAY)
    assert book._hot[0] is hot0
    check(99.0, 0.0)  # back in time: lines that had expired count again


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("view", ["true", "visible"])
def test_flip_walked_out_from_spot_equals_the_full_241_point_profile(seed, view):
    """The default flip evaluates the profile only from spot outwards; on random books
    (often several crossings, some far from spot, some none) and spots it returns the
    full profile's nearest crossing bit for bit (tolerance 0: same points, same formula)."""
    cols = random_lines(60, seed)
    book, vol = OptionBook(3), surface()
    book.add_many(**cols)
    for S in (80.0, 93.0, 100.0, 104.5, 118.0):
        full = book.flip(S, T0, vol, view, spots=S * np.linspace(0.7, 1.3, 241))
        assert book.flip(S, T0, vol, view) == full, (S, view)
