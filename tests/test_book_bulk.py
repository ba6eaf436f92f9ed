"""Bulk booking: :meth:`OptionBook.add_many` and the scenario's opening positions
(:func:`mmsim.agents.events.open_positions`) give the same book, bit for bit, as one
:meth:`OptionBook.add` (and one premium payment) per line in order: same line order and
aggregation by (holder, strike, expiry, type, visible, multiplier), same arrays, offsets,
turnover and per-holder change lists, on random books with repeated keys, several
holders, lines already booked (offsets kept) and capacity growth."""

from __future__ import annotations

import numpy as np
import pytest

from mmsim.agents.events import open_positions
from mmsim.book import OptionBook
from mmsim.greeks import bsm_scalar
from mmsim.ledger import Ledger
from mmsim.schema import Position
from mmsim.vol import VolSurface


def _random_lines(rng: np.random.Generator, n: int, n_holders: int) -> dict:
    """``n`` lines drawn from a small key space (so keys repeat), contracts of both signs."""
    return {
        "strike": rng.choice([90.0, 95.5, 100.0, 104.25, 110.0], n),
        "expiry": rng.choice([600.0, 23_400.0, 117_000.0], n),
        "is_call": rng.random(n) < 0.5,
        "qty": np.round(rng.normal(0.0, 50.0, n), 1),
        "holder": rng.integers(0, n_holders, n),
        "visible": rng.random(n) < 0.8,
        "multiplier": rng.choice([100.0, 10.0], n, p=[0.9, 0.1]),
        "iv_offset": rng.normal(0.0, 0.02, n),
    }


def _state(book: OptionBook) -> dict:
    n = book.n
    return {
        "n": n,
        "packed": book.packed[:, :n].copy(),
        "capacity": book.packed.shape[1],
        "arrays": [
            a.copy()
            for a in (
                book.strike,
                book.expiry,
                book.is_call,
                book.qty,
                book.holder,
                book.visible,
                book.multiplier,
            )
        ],
        "index": dict(book._index),
        "turnover": book.turnover,
        "touched": [list(x) for x in book._touched],
        "cand_new": [list(x) for x in book._cand_new],
    }


def _assert_same(a: dict, b: dict, what: str) -> None:
    assert a["n"] == b["n"] and a["capacity"] == b["capacity"], what
    assert a["packed"].tobytes() == b["packed"].tobytes(), f"{what}: packed table differs"
    for x, y in zip(a["arrays"], b["arrays"], strict=True):
        assert x.tobytes() == y.tobytes(), f"{what}: a public column differs"
    assert a["index"] == b["index"], f"{what}: line keys differ"
    assert a["turnover"] == b["turnover"], f"{what}: turnover {a['turnover']} != {b['turnover']}"
    assert a["touched"] == b["touched"] and a["cand_new"] == b["cand_new"], what


def _books(n_holders: int) -> tuple[OptionBook, OptionBook]:
    return (OptionBook(n_holders, capacity=4), OptionBook(n_holders, capacity=4))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("keep", [False, True])
def test_add_many_equals_repeated_add(seed: int, keep: bool) -> None:
    rng = np.random.default_rng(seed)
    n_holders = 1 + seed % 3
    one, bulk = _books(n_holders)
    for batch in range(3):  # later batches hit existing lines and grow the capacity
        lines = _random_lines(rng, int(rng.integers(1, 400)), n_holders)
        off = None if keep and batch > 0 else lines["iv_offset"]
        for j in range(lines["strike"].size):
            one.add(
                lines["strike"][j],
                lines["expiry"][j],
                lines["is_call"][j],
                lines["qty"][j],
                int(lines["holder"][j]),
                visible=lines["visible"][j],
                multiplier=lines["multiplier"][j],
                iv_offset=None if off is None else off[j],
            )
        bulk.add_many(
            lines["strike"],
            lines["expiry"],
            lines["is_call"],
            lines["qty"],
            lines["holder"],
            lines["visible"],
            lines["multiplier"],
            off,
        )
        _assert_same(_state(one), _state(bulk), f"seed {seed}, batch {batch}, keep {keep}")
    assert one.n < 3 * 400, "keys must repeat for this test to check aggregation"


def test_add_many_scalars_broadcast_and_validate() -> None:
    one, bulk = _books(2)
    for K in (90.0, 100.0, 90.0):
        one.add(K, 600.0, True, 5.0, 1)
    bulk.add_many([90.0, 100.0, 90.0], 600.0, True, 5.0, 1)
    _assert_same(_state(one), _state(bulk), "broadcast scalars")
    with pytest.raises(ValueError, match=r"strike\[1\]"):
        bulk.add_many([90.0, -1.0], 600.0, True, 5.0, 0)
    assert bulk.n == 2, "a rejected batch books nothing"


def _open_one_by_one(positions, holder, acc, seller, book, ledger, vol, S, t, session):
    """The per-position opening of before (the oracle)."""
    for p in positions:
        expiry = p.expiry_days * session
        is_call = p.type == "call"
        years = (expiry - t) / book.year_seconds
        sigma = float(vol.iv(p.strike, S))
        value = bsm_scalar(S, p.strike, years, sigma, book.r, book.q, is_call)[0]
        ledger.pay(acc, seller, p.qty * p.multiplier * value)
        book.add(
            p.strike, expiry, is_call, p.qty, holder, visible=p.visible, multiplier=p.multiplier
        )


@pytest.mark.parametrize("seed", range(4))
def test_open_positions_equals_one_by_one(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n = 2_000
    positions = [
        Position(
            type="call" if rng.random() < 0.5 else "put",
            strike=round(float(rng.uniform(80, 120)), 2 if seed % 2 else 0),
            expiry_days=float(rng.choice([0.5, 5.0, 21.0, 252.0])),
            qty=float(rng.normal(0, 20)),
            visible=bool(rng.random() < 0.9),
            multiplier=float(rng.choice([100.0, 50.0])),
        )
        for _ in range(n)
    ]
    S, t, session = 100.0 + seed, 1_800.0 * seed, 23_400.0
    results = []
    for opener in (_open_one_by_one, open_positions):
        book, ledger = OptionBook(2, capacity=8), Ledger()
        acc, seller = ledger.register("desk"), ledger.register("opening")
        vol = VolSurface(0.2 + 0.01 * seed, -0.15)
        book.add(100.0, 252.0 * session, True, 3.0, 1, iv_offset=0.03)  # an existing line
        book.add(
            float(positions[0].strike),
            positions[0].expiry_days * session,
            positions[0].type == "call",
            1.0,
            1,
            visible=positions[0].visible,
            multiplier=positions[0].multiplier,
            iv_offset=0.05,
        )
        opener(positions, 1, acc, seller, book, ledger, vol, S, t, session)
        results.append((_state(book), ledger.cash.copy()))
    (a, cash_a), (b, cash_b) = results
    _assert_same(a, b, f"open_positions seed {seed}")
    assert a["n"] < n + 2, "repeated keys must aggregate"
    assert cash_a.tobytes() == cash_b.tobytes(), f"premiums differ: {cash_a} vs {cash_b}"
