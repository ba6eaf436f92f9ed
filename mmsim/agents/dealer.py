"""The delta-hedging dealer: holds option lines in the book and a share hedge.

Sign conventions (DESIGN.md): net delta = option share delta + shares held, in shares.
Long gamma (net share gamma > 0) means that after a rise the dealer is long delta and
*sells* to rehedge; short gamma buys rallies. The dealer never looks at regimes: it
only keeps ``|net delta|`` inside its band.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from mmsim.book import OptionBook
from mmsim.errors import InstabilityError
from mmsim.market import Market
from mmsim.schema import Dealer as DealerConfig
from mmsim.vol import VolSurface

__all__ = ["DealerAgent"]

MIN_ORDER = 1.0  # shares: dealers trade whole shares, so less than one share off is flat
MAX_CASCADE = 20_000  # rounds of same-instant rehedging before we call it divergence
RUNAWAY_ROUNDS = 8  # consecutive growing rehedges: a stable cascade shrinks by |lam * G| a round
RUNAWAY_MIN_SIZE = 10.0  # shares: below this, rounding can make a stable cascade "grow"
_NOTIONAL_UNIT = 1.0e8  # per_notional bands are shares per $100M of gross option notional


class DealerAgent:
    """One dealer desk.

    Parameters
    ----------
    index : the dealer's holder index in the book (0-based).
    name : label used in records.
    config : the scenario's dealer block (band, trigger, latency, capacity, ...).
    account : the dealer's ledger account id.
    book, market, vol : shared state; the dealer reads them and trades through the market.
    """

    def __init__(
        self,
        index: int,
        name: str,
        config: DealerConfig,
        account: int,
        book: OptionBook,
        market: Market,
        vol: VolSurface,
    ) -> None:
        self.index = index
        self.name = name
        self.config = config
        self.account = account
        self.book = book
        self.market = market
        self.vol = vol
        self.hedge_volume = 0.0  # shares, cumulative |traded|
        self.hedge_cost = 0.0  # $, spread + impact paid
        self.n_rehedges = 0
        self.last_delta_before_hedge = 0.0  # shares
        self._window_start = 0.0
        self._window_used = 0.0  # shares traded in the current capacity window
        self._gross_version = -1
        self._gross_units = 0.0
        self._start_level = vol.level  # ATM vol at the start, for the panic rule
        # (t, price after, book version, net delta before, qty) of the last own fill
        self._last_fill: tuple[float, float, int, float, float] | None = None

    # -- state ------------------------------------------------------------------------
    @property
    def shares(self) -> float:
        """Shares held (the hedge)."""
        return self.market.ledger.shares_of(self.account)

    def option_delta_gamma(self, S: float | None = None) -> tuple[float, float]:
        """Option share delta (shares) and share gamma (shares per $1) at spot ``S``."""
        market = self.market
        S = market.mid if S is None else S
        return self.book.holder_delta_gamma(self.index, S, market.env.now, self.vol)

    def net_delta(self) -> float:
        """Option share delta plus shares held, in shares (the hot path: one kernel call)."""
        market = self.market
        delta = self.book.holder_delta_gamma(self.index, market.mid, market.env.now, self.vol)[0]
        return delta + market.ledger.shares_of(self.account)

    def band_shares(self) -> float:
        """The tolerance band converted to shares at the current spot."""
        cfg = self.config
        band = cfg.band * self._panic_factor()
        if cfg.band_unit == "shares":
            return band
        if self._gross_version != self.book.version:
            mine = self.book.holder == self.index
            units = np.abs(self.book.qty[mine] * self.book.multiplier[mine])
            self._gross_units = float(units.sum())  # shares controlled, gross
            self._gross_version = self.book.version
        if cfg.band_unit == "delta_per_contract":
            return band * self._gross_units
        return band * self._gross_units * self.market.mid / _NOTIONAL_UNIT

    def _panic_factor(self) -> float:
        """``panic.band_factor`` once ATM vol has risen ``panic.iv_jump`` since the start."""
        panic = self.config.panic
        if panic is not None and self.vol.level - self._start_level >= panic.iv_jump:
            return panic.band_factor
        return 1.0

    # -- behaviour --------------------------------------------------------------------
    def check(self) -> float:
        """Rehedge if ``|net delta| > band``; returns shares traded (signed)."""
        delta = self.net_delta()
        band = self.band_shares()
        if abs(delta) <= max(band, MIN_ORDER):
            return 0.0
        response = self._overshoot_response(delta)
        self.last_delta_before_hedge = delta
        goal = 0.0 if self.config.target == "center" else math.copysign(band, delta)
        # whole shares, rounded toward the goal's side (never past it): with any stable
        # feedback |lam * G| < 1 the dealer's own impact then shrinks |net delta| every
        # round, so a same-instant cascade settles instead of ping-ponging around zero
        qty = float(math.trunc(self.config.hedge_fraction * (goal - delta) / response))
        qty = self._within_capacity(qty)
        if qty == 0.0:
            return 0.0
        fill = self.market.submit(self.account, qty)
        self._last_fill = (fill.t, fill.price_after, self.book.version, delta, qty)
        self.hedge_volume += abs(qty)
        self.hedge_cost += fill.cost
        self.n_rehedges += 1
        return fill.qty  # what executed (less on a dry book side or for a resting limit)

    def _overshoot_response(self, delta: float) -> float:
        """How many shares of net delta one share of hedge removed, measured on the
        dealer's own last fill when nothing else has happened since (same instant, same
        price, same book): ``1 + lam * G`` locally. Used only when that fill overshot
        and grew ``|net delta|`` (response > 2: long gamma so strong, e.g. at a 0DTE
        strike, that trading the full excess over-corrects the dealer's own impact);
        1 otherwise, so every stable regime is hedged naively, as DESIGN's theory has it."""
        if self._last_fill is None:
            return 1.0
        t, price, version, before, qty = self._last_fill
        market = self.market
        if t != market.env.now or price != market.mid or version != self.book.version:
            return 1.0
        response = (before - delta) / -qty
        return response if response > 2.0 else 1.0

    def _roll_window(self) -> None:
        """Start a fresh capacity window once the current one has ended."""
        now, window = self.market.env.now, self.config.capacity_window
        if now >= self._window_start + window:
            self._window_start = window * math.floor(now / window)
            self._window_used = 0.0

    def _within_capacity(self, qty: float) -> float:
        cap = self.config.capacity
        if cap is None:
            return qty
        self._roll_window()
        room = max(cap - self._window_used, 0.0)
        allowed = math.copysign(min(abs(qty), math.floor(room)), qty)
        self._window_used += abs(allowed)
        return allowed

    def capacity_exhausted(self) -> bool:
        """True when the current window's capacity is used up."""
        cap = self.config.capacity
        if cap is None:
            return False
        self._roll_window()
        return self._window_used >= math.floor(cap)

    def _runaway_message(self, rounds: int) -> str:
        """Why the hedging ran away, by the sign of the dealer's gamma now."""
        gamma = self.option_delta_gamma()[1]
        why = (
            "short gamma chasing its own impact: lam * G <= -1"
            if gamma < 0.0
            else f"long gamma over-correcting hedges that lag by {self.config.latency:g} s: "
            "lam * G >= 1"
        )
        return (
            f"dealer {self.name!r} hedging ran away at t={self.market.env.now:.3f}s (price "
            f"{self.market.mid:.6g}, {rounds} rehedges in a row without settling): {why}"
        )

    def process(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """The simpy process: wake on price/book changes (or a schedule), then check.

        A price-triggered dealer sees its own trade's impact as a price change too: after
        each trade it looks again (after its latency) until it is inside its band. That
        cascade is what turns an exogenous move ``dS0`` into ``dS0 / (1 + lam * G)``: each
        round is ``|lam * G|`` times the last. Long gamma with ``lam * G > 1`` would
        over-correct in growing swings; the dealer sizes by the response it measured on
        its own fill instead (:meth:`_overshoot_response`), which lands on the same fixed
        point. Short-gamma rounds that keep growing mean ``lam * G <= -1``: the run stops
        with :class:`InstabilityError`.
        """
        cfg = self.config
        if cfg.trigger == "schedule":
            yield env.timeout(cfg.phase)
            while True:
                yield env.timeout(cfg.interval)
                self.check()
        market, capped = self.market, cfg.capacity is not None
        while True:
            if capped and self.capacity_exhausted():
                wait_until = self._window_start + cfg.capacity_window
                yield market.changed | env.timeout(max(wait_until - env.now, 0.0))
            else:
                yield market.changed
            if cfg.latency > 0.0:
                yield env.timeout(cfg.latency)
            rounds, growing, last = 0, 0, 0.0
            while (qty := abs(self.check())) != 0.0:
                rounds += 1
                growing = growing + 1 if qty > last >= RUNAWAY_MIN_SIZE else 0
                last = qty
                if growing >= RUNAWAY_ROUNDS or rounds >= MAX_CASCADE:
                    raise InstabilityError(self._runaway_message(rounds))
                yield env.timeout(cfg.latency)
