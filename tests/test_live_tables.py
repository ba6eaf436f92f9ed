"""The book's live and hot line tables kept up to date by the lines booked, not rebuilt
from the whole book at every trade (issue 11, cost per day), and the kernel's line
table reloaded only for the dealers whose lines changed; a customer segment's listed
expiries kept between expiries.

Every table must equal, bit for bit, the one a look at the whole book makes
(``packed[:, live]`` with ``live = units != 0 and expiry > t``, the holder row zeroed in
a holder's table, in booking order), through trades on existing lines, new lines,
lines netted out and back, expiries and a clock going back; and an array once handed
out is never written (the level caches compare arrays by identity and read old ones).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmsim import fastpath as fp
from mmsim.agents.customers import CustomerFlow
from mmsim.book import OptionBook
from mmsim.book_kernels import ROW_EXPIRY, ROW_HOLDER, ROW_UNITS
from mmsim.engine import Simulation
from mmsim.hotloop import HotLoop
from mmsim.scenario import load_scenario
from mmsim.schema import CustomerSegment

ROOT = Path(__file__).resolve().parents[1]
DAY = 23_400.0
_EXPIRIES = np.array([0.5, 1.0, 2.0, 5.0, 21.0]) * DAY


def _expected(book: OptionBook, key: int, t: float) -> np.ndarray:
    """The live table of holder ``key`` (-1: all) at ``t`` from a look at every line."""
    p = book.packed[:, : book.n]
    live = (p[ROW_UNITS] != 0.0) & (p[ROW_EXPIRY] > t)
    if key >= 0:
        live &= p[ROW_HOLDER] == key
    out = np.ascontiguousarray(p[:, live])
    if key >= 0:
        out[ROW_HOLDER] = 0.0
    return out


def _trade(book: OptionBook, rng: np.random.Generator, holders: int, t: float) -> None:
    """One booking: mostly onto an existing line (as a grown book's trades are), else a
    new line, sometimes one that nets a line to zero or revives a netted one, sometimes
    a bulk booking, sometimes one already expired at ``t``."""
    u = rng.random()
    if u < 0.55 and book.n:
        i = int(rng.integers(book.n))
        qty = float(rng.integers(1, 20)) * rng.choice([-1.0, 1.0])
        if rng.random() < 0.1:  # net it out (or revive it when netted)
            qty = -book.qty[i] if book.qty[i] != 0 else 3.0
        book.add(book.strike[i], book.expiry[i], book.is_call[i], qty, book.holder[i],
                 visible=book.visible[i], multiplier=book.multiplier[i],
                 iv_offset=float(rng.uniform(-0.02, 0.02)))  # fmt: skip
    elif u < 0.9:
        expiry = float(rng.choice(_EXPIRIES))  # a calendar, as customers trade; some expired
        book.add(float(rng.integers(80, 121)), expiry, bool(rng.random() < 0.5),
                 float(rng.integers(1, 30)), int(rng.integers(holders)),
                 visible=bool(rng.random() < 0.7))  # fmt: skip
    else:
        k = int(rng.integers(1, 6))
        strikes, qty = rng.integers(80, 121, k).astype(float), rng.integers(-10, 11, k)
        book.add_many(strikes, rng.choice(_EXPIRIES, k), rng.random(k) < 0.5,
                      qty.astype(float), rng.integers(0, holders, k))  # fmt: skip


@pytest.mark.parametrize("seed", range(6))
def test_live_and_hot_tables_kept_up_to_date_equal_a_look_at_the_whole_book(seed):
    """600 bookings on 1-3 holders (seeds 0-5) over ~3 days, clock mostly forward
    through three expiries and sometimes back: after every booking every table equals
    the whole book's live lines exactly; an array handed out is never written
    afterwards; and the book looks at its lines far fewer times than it hands out
    changed tables (a trade on a grown book copies its table and the changed lines)."""
    rng = np.random.default_rng(seed)
    holders = 1 + seed % 3
    book = OptionBook(holders, capacity=8)
    handed: list[tuple[np.ndarray, np.ndarray]] = []
    t, reads = 0.0, 0
    for step in range(600):
        _trade(book, rng, holders, t)
        if rng.random() < 0.02:
            t = max(t - float(rng.uniform(0, 0.5)) * DAY, 0.0)  # back in time
        else:
            t += float(rng.exponential(0.005)) * DAY
        for key in range(-1, holders):
            lines, n = book._live_lines(t) if key < 0 else book._hot_lines(key, t)
            want = _expected(book, key, t)
            assert lines.shape == (7, n) and lines.tobytes() == want.tobytes(), (
                f"seed {seed} step {step} t={t:.0f}s holder {key}: table != whole-book look"
            )
            if not handed or lines is not handed[-1][0]:
                handed.append((lines, lines.copy()))
            reads += 1
    for lines, copy in handed:
        assert lines.tobytes() == copy.tobytes(), f"seed {seed}: a handed-out table was written"
    assert len(handed) > 300, f"seed {seed}: {len(handed)} tables changed: a real test"
    assert book.live_rebuilds < 0.25 * len(handed), (
        f"seed {seed}: {book.live_rebuilds} whole-book looks for {len(handed)} changed tables"
        " (expiries, netted lines and clocks going back only)"
    )


def test_kernel_line_table_reloads_only_the_dealer_whose_lines_changed(monkeypatch):
    """A half-day ``multi_dealer_bands`` run (three dealers, ~220 customer trades): at every
    kernel load each dealer's columns of the kernel's line table equal its hot table,
    and a customer trade copies one dealer's lines, not all three dealers' (on the
    fast path, the same run as the simpy agents is test_fastpath's)."""
    sc = load_scenario(ROOT / "scenarios/multi_dealer_bands.yaml", overrides={"clock.days": 0.5})
    copies, loads = [0], [0]
    real = HotLoop._load_lines

    def load_lines(self, hot):
        before = list(self._copied)
        real(self, hot)
        loads[0] += 1
        if len(before) != len(hot):
            before = [None] * len(hot)
        copies[0] += sum(a is not b for a, b in zip(before, self._copied, strict=True))
        for i, (lines, n) in enumerate(hot):
            off, k = int(self.dl[i, fp.D_OFF]), int(self.dl[i, fp.D_N])
            assert k == n and self.lines[:, off : off + n].tobytes() == lines.tobytes(), (
                f"dealer {i}: the kernel's columns are not its hot table"
            )

    monkeypatch.setattr(HotLoop, "_load_lines", load_lines)
    trades = len(Simulation(sc, 3).run().option_trades)
    assert loads[0] > 100, f"{loads[0]} loads with a changed book: a real test"
    assert copies[0] < 1.3 * loads[0], (
        f"{copies[0]} dealer copies in {loads[0]} loads of 3 dealers ({trades} trades):"
        " about one per load expected"
    )


def test_customers_listed_expiries_kept_between_expiries_equal_a_fresh_filter():
    """A segment's live expiries (kept until the first passes) equal
    ``expiries[expiries > now]`` at 400 clocks, forward through every expiry (one at
    0.3 sessions, non-shipped) and back, and the list is filtered again only when an
    expiry passes or the clock goes back."""
    seg = CustomerSegment(segment="put_hedgers", expiry_days=[0.3, 1.0, 2.5, 21.0])
    book = OptionBook(1)
    flow = CustomerFlow("s", seg, 0, [1], book, None, None, None, DAY)  # type: ignore[arg-type]
    rng = np.random.default_rng(4)
    now, filters, last = 0.0, 0, flow._live
    for k in range(400):
        now = max(now - DAY, 0.0) if k % 97 == 96 else now + float(rng.exponential(0.02)) * DAY
        got = flow._live_expiries(now)
        np.testing.assert_array_equal(got, flow.expiries[flow.expiries > now], f"t={now:.0f}s")
        filters += flow._live is not last
        last = flow._live
    assert 4 <= filters <= 20, f"{filters} filters in 400 draws (expiries passed + clocks back)"
