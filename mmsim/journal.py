"""The run's journal: every share order and booking in the trade log, every customer
option trade in the option log, as the market, the customers and the expiration report
them (:class:`~mmsim.record.Log` buffers; the result tables are built from them at the
end, :mod:`mmsim.assemble`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import simpy

from mmsim.agents.customers import OptionTrade
from mmsim.errors import InstabilityError
from mmsim.ledger import Ledger
from mmsim.market import Fill, Market
from mmsim.record import Log
from mmsim.run_env import stop_now
from mmsim.tables import TRADE_LOG_COLUMNS

__all__ = ["OPTION_COLUMNS", "PRICE_CEILING", "Journal"]

PRICE_CEILING = 1_000.0  # a price above this multiple of S0 is taken as divergence
_ORDER, _OPENING_HEDGE, _SETTLEMENT, _DELIVERY = 0.0, 1.0, 2.0, 3.0  # ``booking`` codes
OPTION_COLUMNS = [
    "t",
    "segment",
    "dealer",
    "is_call",
    "strike",
    "expiry",
    "qty",
    "premium",
    "visible",
]
"""Columns of the option log: time (s), segment index, dealer index, call (0/1), strike
($), expiry (s), contracts (customer's sign), premium ($), visible (0/1)."""


class Journal:
    """The trade log and the option log of one run, and the listeners that fill them.

    ``S0`` ($) sets the price ceiling (:data:`PRICE_CEILING` x S0) past which a fill
    stops the run (``env``'s, at that instant) with
    :class:`~mmsim.errors.InstabilityError`; ``segment_names`` are the customer
    segments, in the option log by index."""

    def __init__(
        self, ledger: Ledger, S0: float, segment_names: list[str], env: simpy.Environment
    ) -> None:
        self.ledger = ledger
        self.env = env
        self.S0 = S0
        self.segment_names = segment_names
        self.trade_log = Log(TRADE_LOG_COLUMNS)
        self.option_log = Log(OPTION_COLUMNS, capacity=256)

    def opening_hedge(self, account: int, hedge: float, S0: float) -> None:
        """The off-book opening hedge of ``hedge`` shares at ``S0`` ($), at t = 0."""
        self.trade_log.append(0.0, account, _OPENING_HEDGE, hedge, S0, S0, S0, 0.0)

    def log_fill(self, fill: Fill) -> None:
        """A market listener: one trade-log row per fill; a price over the ceiling is
        divergence."""
        if not fill.price_after < PRICE_CEILING * self.S0:
            who = self.ledger.names[fill.account]
            why = (
                f"price reached {fill.price_after:.6g} at t={fill.t:.3f}s, over "
                f"{PRICE_CEILING:g} x S0, after an order of {fill.qty:+,.0f} shares by {who!r}"
            )
            raise stop_now(self.env, InstabilityError(why))
        self.trade_log.append(
            fill.t,
            fill.account,
            _ORDER,
            fill.qty,
            fill.price_before,
            fill.price_after,
            fill.exec_price,
            fill.cost,
        )

    def log_option_trade(self, tr: OptionTrade) -> None:
        """A customer listener: one option-log row per option trade."""
        self.option_log.append(
            tr.t,
            self.segment_names.index(tr.segment),
            tr.dealer,
            tr.is_call,
            tr.strike,
            tr.expiry,
            tr.qty,
            tr.premium,
            tr.visible,
        )

    def settling(
        self,
        settle: Callable[[float], None],
        accounts: np.ndarray,
        env: simpy.Environment,
        market: Market,
    ) -> Callable[[float], None]:
        """``settle`` (an expiry's settlement, :class:`~mmsim.agents.events.Expiration`)
        that also books what each dealer account of ``accounts`` received in the trade
        log: ``delivery`` rows (physical: shares at the strike, ``exec_price`` their
        average strike, ``cost`` paid above the mid) or ``settlement`` rows (cash: qty 0,
        ``cost`` the cash paid, negative when received; ``exec_price`` NaN)."""
        ledger, log = self.ledger, self.trade_log

        def settle_and_log(expiry: float) -> None:
            cash, shares = ledger.cash[accounts].copy(), ledger.shares[accounts].copy()
            settle(expiry)
            t, S = env.now, market.mid
            dq = ledger.shares[accounts] - shares
            dc = ledger.cash[accounts] - cash
            for i, account in enumerate(accounts):
                if dq[i] != 0.0:
                    strike = -dc[i] / dq[i]
                    log.append(t, account, _DELIVERY, dq[i], S, S, strike, (strike - S) * dq[i])
                elif dc[i] != 0.0:
                    log.append(t, account, _SETTLEMENT, 0.0, S, S, np.nan, -dc[i])

        return settle_and_log
