"""A dealer's periodic repositioning: fresh option lines every ``reposition_days``.

Buis et al. (2024) give their hedgers a new ATM straddle every session and start each
session flat. Here, every ``every`` seconds the dealer's open lines are sold back at
their BSM value to the ``opening`` account, its shares are transferred off-market at
the mid (no impact: the hedge is unwound outside the book), and its configured
``positions`` are opened again at BSM value with strikes scaled by ``S / S0`` (rounded
to ``strike_tick``, so an ATM line stays ATM) and expiries shifted by the time elapsed.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any, Protocol

import numpy as np
import simpy

from mmsim.book import OptionBook
from mmsim.greeks import bsm_scalar
from mmsim.ledger import POOL, Ledger
from mmsim.schema import Position
from mmsim.vol import VolSurface

__all__ = ["Repositioner"]


class _Priced(Protocol):
    @property
    def mid(self) -> float: ...


class Repositioner:
    """Closes and reopens one dealer's lines every ``every`` seconds (see module doc)."""

    def __init__(
        self,
        holder: int,
        account: int,
        positions: Sequence[Position],
        every: float,
        S0: float,
        strike_tick: float,
        book: OptionBook,
        ledger: Ledger,
        market: _Priced,
        vol: VolSurface,
        counterparty: int,
        session_seconds: float,
    ) -> None:
        self.holder, self.account, self.positions = holder, account, list(positions)
        self.every, self.S0, self.strike_tick = every, S0, strike_tick
        self.book, self.ledger, self.market, self.vol = book, ledger, market, vol
        self.counterparty, self.session_seconds = counterparty, session_seconds
        self.n_repositions = 0

    def _value(self, S: float, K: float, expiry: float, t: float, is_call: bool) -> float:
        years = (expiry - t) / self.book.year_seconds
        sigma = float(self.vol.iv(K, S))
        return float(bsm_scalar(S, K, years, sigma, self.book.r, self.book.q, is_call)[0])

    def reposition(self, t: float) -> None:
        """Close every open line and the hedge now; open the positions again at spot."""
        book, ledger, h, S = self.book, self.ledger, self.holder, self.market.mid
        mine = np.flatnonzero((book.holder == h) & (book.qty != 0.0) & (book.expiry > t))
        for i in mine.tolist():
            K, T, call = float(book.strike[i]), float(book.expiry[i]), bool(book.is_call[i])
            qty, mult, vis = float(book.qty[i]), float(book.multiplier[i]), bool(book.visible[i])
            ledger.pay(self.counterparty, self.account, qty * mult * self._value(S, K, T, t, call))
            book.add(K, T, call, -qty, h, visible=vis, multiplier=mult)
        shares = ledger.shares_of(self.account)
        if shares:
            ledger.endow(self.account, -shares, S, POOL)
        scale, tick = S / self.S0, self.strike_tick
        for p in self.positions:
            K = max(round(p.strike * scale / tick) * tick, tick)
            expiry = t + p.expiry_days * self.session_seconds
            call = p.type == "call"
            value = self._value(S, K, expiry, t, call)
            ledger.pay(self.account, self.counterparty, p.qty * p.multiplier * value)
            book.add(K, expiry, call, p.qty, h, visible=p.visible, multiplier=p.multiplier)
        self.n_repositions += 1

    def process(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """Reposition at ``every``, ``2 every``, ... seconds."""
        while True:
            yield env.timeout(self.every)
            self.reposition(env.now)
