"""Scheduled events (vol regime shifts, price gaps, new open interest) and expiration.

Expiration settles every line expiring at a time on the run's expiry calendar: in cash
(the holder receives ``qty * multiplier * intrinsic`` from the ``clearing`` account,
which stands for the option counterparties) or physically (in-the-money lines deliver
``qty * multiplier`` shares at the strike). The line then leaves the book, its delta
with it, so a cash-settled dealer's hedge is left naked and unwinds at its next check;
a physically settled one already holds the delivered shares.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import numpy as np
import simpy
from numba import njit

from mmsim.book import OptionBook
from mmsim.greeks import bsm_scalar
from mmsim.ledger import Ledger
from mmsim.market import Market
from mmsim.position_columns import PositionColumns
from mmsim.schema import Position, ScheduledEvent
from mmsim.vol import VolSurface

__all__ = ["Expiration", "ScheduledEvents", "open_positions"]


@njit(cache=True)
def _values(S, K, years, sigma, r, q, is_call, out):
    """BSM value per share ($) of each option: ``bsm_scalar``'s price, element by element."""
    for i in range(K.size):
        out[i] = bsm_scalar(S, K[i], years[i], sigma[i], r, q, is_call[i])[0]


def open_positions(
    positions: Sequence[Position],
    holder: int,
    holder_account: int,
    seller_account: int,
    book: OptionBook,
    ledger: Ledger,
    vol: VolSurface,
    S: float,
    t: float,
    session_seconds: float,
) -> PositionColumns:
    """Give ``holder`` the option ``positions`` (its view) at BSM value, paid in cash: one
    vectorized booking (:meth:`OptionBook.add_many`, line offsets kept), the premiums paid
    in position order (the same cash and book, bit for bit, as one ``add`` and one
    ``pay`` per position). Returns the positions' columns (read once here)."""
    cols = PositionColumns.of(positions)
    if not len(cols):
        return cols
    K, qty, mult = cols.strike, cols.qty, cols.multiplier
    expiry = cols.expiry_days * session_seconds
    years = (expiry - t) / book.year_seconds
    sigma = np.asarray(vol.iv(K, S), dtype=np.float64)
    value = np.empty(K.size)
    _values(float(S), K, years, sigma, book.r, book.q, cols.is_call, value)
    ledger.pay_each(holder_account, seller_account, (qty * mult * value).tolist())
    book.add_many(K, expiry, cols.is_call, qty, holder, cols.visible, mult, None)
    return cols


class ScheduledEvents:
    """Applies the scenario's ``events`` at their times."""

    def __init__(
        self,
        events: Sequence[ScheduledEvent],
        market: Market,
        vol: VolSurface,
        book: OptionBook,
        dealer_accounts: Sequence[int],
        seller_account: int,
        session_seconds: float,
    ) -> None:
        self.events = sorted(events, key=lambda e: e.at)
        self.market = market
        self.vol = vol
        self.book = book
        self.dealer_accounts = list(dealer_accounts)
        self.seller_account = seller_account
        self.session_seconds = session_seconds

    def apply(self, event: ScheduledEvent) -> None:
        """Carry out one event now."""
        market = self.market
        if event.kind == "vol_shift":
            self.vol.apply_shift(event.d_atm, event.d_skew)
            market.notify()
        elif event.kind == "gap":
            market.move(market.mid * event.gap)
        else:
            open_positions(
                event.positions,
                event.dealer,
                self.dealer_accounts[event.dealer],
                self.seller_account,
                self.book,
                market.ledger,
                self.vol,
                market.mid,
                market.env.now,
                self.session_seconds,
            )
            market.notify()

    def process(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """Wait for each event in time order and apply it."""
        for event in self.events:
            if event.at > env.now:
                yield env.timeout(event.at - env.now)
            self.apply(event)


class Expiration:
    """Settles expiring lines at each time of ``calendar`` (seconds on the clock)."""

    def __init__(
        self,
        calendar: Sequence[float],
        book: OptionBook,
        market: Market,
        holder_accounts: Sequence[int],
        clearing_account: int,
        settlement: str = "cash",
    ) -> None:
        self.calendar = sorted(set(calendar))
        self.book = book
        self.market = market
        self.holder_accounts = list(holder_accounts)
        self.clearing = clearing_account
        self.physical = settlement == "physical"
        self.settled_contracts = 0.0  # gross contracts settled
        self.settled_cash = 0.0  # $ paid to holders (negative: paid by them)

    def settle(self, expiry: float) -> None:
        """Settle every open line expiring at ``expiry`` at the current price."""
        book, ledger, S = self.book, self.market.ledger, self.market.mid
        due = np.flatnonzero((np.abs(book.expiry - expiry) < 1e-9) & (book.qty != 0.0))
        for i in due:
            strike, qty, mult = book.strike[i], book.qty[i], book.multiplier[i]
            is_call, holder = bool(book.is_call[i]), int(book.holder[i])
            account = self.holder_accounts[holder]
            intrinsic = max(S - strike, 0.0) if is_call else max(strike - S, 0.0)
            if self.physical:
                if intrinsic > 0.0:
                    shares = qty * mult if is_call else -qty * mult
                    ledger.trade_shares(account, shares, strike, self.clearing)
            else:
                ledger.pay(self.clearing, account, qty * mult * intrinsic)
                self.settled_cash += qty * mult * intrinsic
            self.settled_contracts += abs(qty)
            book.add(
                strike,
                expiry,
                is_call,
                -qty,
                holder,
                visible=bool(book.visible[i]),
                multiplier=mult,
            )
        if due.size:
            self.market.notify()

    def process(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """Wake at each expiry of the calendar and settle."""
        for expiry in self.calendar:
            if expiry > env.now:
                yield env.timeout(expiry - env.now)
            self.settle(expiry)
