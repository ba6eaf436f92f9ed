"""Customer option flow: the trades that create the dealers' positions.

Each segment (retail call buyers, put hedgers, call overwriters, put sellers, or a
custom one) sends Poisson arrivals of option trades. A dealer takes the other side at
the BSM value at the option's implied vol, plus its ``edge``; the premium moves through
the ledger, the dealer's line goes into the book (``qty`` signed from the dealer's view:
a customer buy makes the dealer short), and dealers are woken to rehedge.

The implied vol is the flat surface's ``vol.iv(K, S)``, or, when the run has a
:class:`~mmsim.vol.Smile` (a run started from a real chain), the smile's
``iv(K, expiry, S)``, and the line is booked with the smile's offset as its ``iv_offset``:
the premium is then the dealer's own model value of the line at the trade instant (plus
the edge), so a trade never jumps the dealer's P&L by more than ``edge x size``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from mmsim.book import OptionBook
from mmsim.greeks import bsm_scalar
from mmsim.market import Market
from mmsim.schema import CustomerSegment
from mmsim.vol import Smile, VolSurface, surface_iv

__all__ = ["CustomerFlow", "OptionTrade"]


@dataclass(frozen=True)
class OptionTrade:
    """One customer option trade; ``qty`` in contracts from the customer's view."""

    t: float
    segment: str
    dealer: int
    is_call: bool
    strike: float
    expiry: float  # seconds on the clock
    qty: float
    premium: float  # $ per share paid by the buyer
    visible: bool
    iv_offset: float | None = None  # vol units over the surface (None: no smile)


class CustomerFlow:
    """One customer segment as a simpy process.

    Parameters
    ----------
    name : segment label for records.
    config : the scenario's customer block.
    account : the segment's ledger account (pays or receives premiums).
    dealer_accounts : ledger account of each dealer, by dealer index.
    session_seconds : converts ``expiry_days`` to clock seconds.
    on_trade : called with each :class:`OptionTrade` (the engine's recorder).
    smile : the run's per-expiry smile (a chain-started run), or None for the flat surface.
    """

    def __init__(
        self,
        name: str,
        config: CustomerSegment,
        account: int,
        dealer_accounts: list[int],
        book: OptionBook,
        market: Market,
        vol: VolSurface,
        rng: np.random.Generator,
        session_seconds: float,
        on_trade: Callable[[OptionTrade], None] | None = None,
        smile: Smile | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.account = account
        self.dealer_accounts = dealer_accounts
        self.book = book
        self.market = market
        self.vol = vol
        self.rng = rng
        self.expiries = np.array(sorted(config.expiry_days)) * session_seconds
        self._live: tuple[float, np.ndarray] = (-np.inf, self.expiries)  # _live_expiries
        self.on_trade = on_trade
        self.smile = smile
        self.contracts = 0.0  # gross contracts traded

    def _draw(self, now: float) -> OptionTrade | None:
        cfg, rng = self.config, self.rng
        live = self._live_expiries(now)
        if live.size == 0:
            return None
        S = self.market.mid
        lo, hi = cfg.moneyness  # type: ignore[misc]
        strike = cfg.strike_step * round(S * (1.0 + rng.uniform(lo, hi)) / cfg.strike_step)
        strike = max(strike, cfg.strike_step)
        expiry = float(live[rng.integers(live.size)])
        size = 1.0 + (rng.geometric(1.0 / cfg.size.mean) - 1.0 if cfg.size.mean > 1 else 0.0)
        visible = bool(rng.random() >= cfg.otc_fraction)
        n_dealers = len(self.dealer_accounts)
        dealer = cfg.dealer if cfg.dealer is not None else int(rng.integers(n_dealers))
        is_call = cfg.type == "call"
        sign = 1.0 if cfg.side == "buy" else -1.0
        years = (expiry - now) / self.book.year_seconds
        if self.smile is None:  # vol.iv(strike, S) in scalars: the same ufuncs, bit for bit
            vol = self.vol
            sigma = float(max(vol.level + vol.skew * np.log(strike / S), vol.floor))
            offset = None
        else:
            # smile.iv(strike, expiry, S, is_call), its offset looked up once
            offset = self.smile.offset(strike, expiry, is_call)
            level, skew, floor = self.smile.surface.params()
            sigma = max(surface_iv(float(strike), float(S), level, skew, floor) + offset, floor)
        value = bsm_scalar(S, strike, years, sigma, self.book.r, self.book.q, is_call)[0]
        premium = max(value + sign * cfg.edge, 0.0)
        return OptionTrade(
            now, self.name, dealer, is_call, strike, expiry, sign * size, premium, visible, offset
        )

    def _live_expiries(self, now: float) -> np.ndarray:
        """The listed expiries after ``now`` (clock s), ascending: kept from the last
        call until the first of them passes (or the clock goes back)."""
        since, live = self._live
        if not (since <= now and (live.size == 0 or now < live[0])):
            live = self.expiries[self.expiries > now]
            self._live = (now, live)
        return live

    def execute(self, trade: OptionTrade) -> None:
        """Book the trade: premium through the ledger, the dealer's line into the book."""
        cfg = self.config
        cash = trade.qty * cfg.multiplier * trade.premium  # $ paid by the customer
        self.market.ledger.pay(self.account, self.dealer_accounts[trade.dealer], cash)
        self.book.add(
            trade.strike,
            trade.expiry,
            trade.is_call,
            -trade.qty,
            trade.dealer,
            visible=trade.visible,
            multiplier=cfg.multiplier,
            iv_offset=trade.iv_offset,
        )
        self.contracts += abs(trade.qty)
        if self.on_trade is not None:
            self.on_trade(trade)
        self.market.notify()

    def process(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """Arrivals until the run ends or no listed expiry is left."""
        rate = self.config.rate
        if rate <= 0.0 or not self.dealer_accounts:
            return
        while True:
            yield env.timeout(self.rng.exponential(1.0 / rate))
            trade = self._draw(env.now)
            if trade is None:
                return
            self.execute(trade)
