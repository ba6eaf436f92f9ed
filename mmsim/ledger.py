"""Shares and cash of every account, the market's liquidity pool included.

Every share order and every option premium moves shares or cash between two accounts,
so both columns always sum to zero: that is the conservation the tests check.
"""

from __future__ import annotations

import numpy as np

__all__ = ["POOL", "Ledger"]

POOL = 0
"""Account id of the market's liquidity pool, the counterparty of every share order."""


class Ledger:
    """Shares and cash ($) per account; account 0 is the pool."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._shares = np.zeros(8)
        self._cash = np.zeros(8)
        self.register("pool")

    @property
    def shares(self) -> np.ndarray:
        """Shares held, by account id."""
        return self._shares[: len(self.names)]

    @property
    def cash(self) -> np.ndarray:
        """Cash, $, by account id."""
        return self._cash[: len(self.names)]

    def shares_of(self, account: int) -> float:
        """Shares held by one account (the hot path: no array view is made)."""
        return float(self._shares[account])

    def register(self, name: str) -> int:
        """Open an account with no shares and no cash; returns its id."""
        if name in self.names:
            raise ValueError(f"account {name!r} already exists")
        if len(self.names) == self._shares.size:
            self._shares = np.concatenate([self._shares, np.zeros_like(self._shares)])
            self._cash = np.concatenate([self._cash, np.zeros_like(self._cash)])
        self.names.append(name)
        return len(self.names) - 1

    def trade_shares(
        self, account: int, qty: float, price: float, counterparty: int = POOL
    ) -> None:
        """``account`` buys ``qty`` shares (sells if < 0) at ``price`` $ from ``counterparty``."""
        self._shares[account] += qty
        self._shares[counterparty] -= qty
        self._cash[account] -= qty * price
        self._cash[counterparty] += qty * price

    def pay(self, payer: int, payee: int, amount: float) -> None:
        """Move ``amount`` $ of cash (an option premium, a settlement)."""
        self._cash[payer] -= amount
        self._cash[payee] += amount

    def pay_each(self, payer: int, payee: int, amounts: list[float]) -> None:
        """:meth:`pay` each of ``amounts`` ($) in order (the same cash, bit for bit)."""
        cash = self._cash
        if payer == payee:
            for a in amounts:
                self.pay(payer, payee, a)
            return
        c_payer, c_payee = float(cash[payer]), float(cash[payee])
        for a in amounts:
            c_payer -= a
            c_payee += a
        cash[payer], cash[payee] = c_payer, c_payee

    def endow(self, account: int, shares: float, price: float, counterparty: int = POOL) -> None:
        """Off-market transfer of ``shares`` at ``price`` $ (no impact): opening hedges."""
        self.trade_shares(account, shares, price, counterparty)

    def totals(self) -> tuple[float, float]:
        """Sum of shares and of cash over all accounts: both 0 up to float rounding."""
        return float(self.shares.sum()), float(self.cash.sum())
