"""The market for the underlying: every order is a signed number of shares.

Impact models turn an order into a price move (``dS``, $): Kyle's linear
``dS = lam * q`` or the square-root law. A fraction of each move may be transient,
decaying with a half-life (propagator / Obizhaeva-Wang); the rest is permanent. The
execution price is the mid before the order, plus the half spread in the order's
direction, plus half its impact (the average price walking a linear impact), so every
agent pays for the liquidity it takes. The liquidity pool is the counterparty.

The interface is small on purpose (``submit``, ``move``, ``mid``, ``price``,
``changed``, and the side-effect-free ``preview``) so a limit order book can later sit
beside the impact models.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import simpy

from mmsim.errors import InstabilityError
from mmsim.ledger import POOL, Ledger
from mmsim.run_env import stop_now

__all__ = ["Fill", "LinearImpact", "Market", "SqrtImpact"]

_LN2 = math.log(2.0)


class LinearImpact:
    """Kyle impact ``dS = lam * q``; ``lam`` in $ per share."""

    def __init__(self, lam: float) -> None:
        if lam < 0:
            raise ValueError("lam must be >= 0 $ per share")
        self.lam = float(lam)

    @classmethod
    def from_depth(cls, depth_shares_per_bp: float, S0: float) -> LinearImpact:
        """Impact such that ``depth_shares_per_bp`` shares move ``S0`` by one basis point."""
        return cls(S0 * 1.0e-4 / depth_shares_per_bp)

    def impact(self, q: float, S: float) -> float:
        """Price change, $, for an order of ``q`` shares (+ = buy) at price ``S``."""
        return self.lam * q

    def __repr__(self) -> str:
        return f"LinearImpact(lam={self.lam!r})"


class SqrtImpact:
    """Square-root law ``dS = sign(q) * Y * daily_vol * S * sqrt(|q| / adv)``.

    ``daily_vol`` is a fraction (0.01 = 1% a day), ``adv`` shares per day.
    """

    def __init__(self, Y: float, daily_vol: float, adv: float) -> None:
        self.Y, self.daily_vol, self.adv = float(Y), float(daily_vol), float(adv)

    def impact(self, q: float, S: float) -> float:
        """Price change, $, for an order of ``q`` shares at price ``S``."""
        return math.copysign(self.Y * self.daily_vol * S * math.sqrt(abs(q) / self.adv), q)

    def __repr__(self) -> str:
        return f"SqrtImpact(Y={self.Y!r}, daily_vol={self.daily_vol!r}, adv={self.adv!r})"


@dataclass(frozen=True, slots=True)
class Fill:
    """An executed order. ``qty`` in shares (+ = buy); prices in $ per share; ``cost``
    in $ paid above the pre-trade mid (spread plus impact)."""

    t: float
    account: int
    qty: float
    price_before: float
    price_after: float
    exec_price: float
    cost: float


class Market:
    """A finite-liquidity market on a simpy clock.

    Parameters
    ----------
    env : the simpy environment (its clock is seconds of trading time).
    S0 : opening price, $.
    impact : a :class:`LinearImpact` or :class:`SqrtImpact`.
    ledger : where fills are booked; the pool (account 0) takes the other side.
    half_spread : $ per share paid on every order.
    tick : tick size of the published price, $ (0 = continuous).
    transient_fraction : share of each impact that decays with ``transient_half_life`` s.
    """

    def __init__(
        self,
        env: simpy.Environment,
        S0: float,
        impact: LinearImpact | SqrtImpact,
        ledger: Ledger,
        *,
        half_spread: float = 0.0,
        tick: float = 0.0,
        transient_fraction: float = 0.0,
        transient_half_life: float = 60.0,
    ) -> None:
        self.env = env
        self.impact = impact
        self.ledger = ledger
        self.half_spread = half_spread
        self.tick = tick
        self.transient_fraction = transient_fraction
        self._decay_rate = _LN2 / transient_half_life
        self._permanent = float(S0)
        self._transient = 0.0
        self._transient_t = 0.0
        self.volume = 0.0  # shares, cumulative |traded|
        self.changes = 0  # calls of notify(): any state change agents may react to
        self.changed: simpy.Event = env.event()
        self.listeners: list[Callable[[Fill], None]] = []

    @property
    def mid(self) -> float:
        """Current unrounded price, $: permanent part plus the decayed transient part."""
        if self._transient == 0.0:
            return self._permanent
        dt = self.env.now - self._transient_t
        if dt > 0.0:
            self._transient *= math.exp(-self._decay_rate * dt)
            self._transient_t = self.env.now
        return self._permanent + self._transient

    @property
    def price(self) -> float:
        """Published price, $: the mid rounded to the tick when there is one."""
        mid = self.mid
        return round(mid / self.tick) * self.tick if self.tick > 0.0 else mid

    def preview(self, qty: float) -> float:
        """The mid, $, right after a market order of ``qty`` shares (+ = buy) submitted
        now, without submitting it: no trade, no state change. Lets an agent size an
        order against its own impact without knowing the impact model (the whole move,
        permanent and transient parts, is in the mid at the instant of the fill)."""
        before = self.mid
        return before + self.impact.impact(qty, before) if qty != 0.0 else before

    def _apply(self, dS: float, cause: str | Callable[[], str]) -> float:
        """Move the mid by ``dS`` $; ``cause`` (or a function giving it, formatted only
        when needed) names the move in the error raised if the price leaves (0, inf)."""
        before = self.mid
        if self.transient_fraction > 0.0:
            self._transient += self.transient_fraction * dS
            self._transient_t = self.env.now
            self._permanent += (1.0 - self.transient_fraction) * dS
        else:
            self._permanent += dS
        after = self.mid
        if not (math.isfinite(after) and after > 0.0):
            cause = cause() if callable(cause) else cause
            why = (
                f"price left (0, inf) at t={self.env.now:.3f}s: {cause} moved it from "
                f"{before:.6g} to {after:.6g}"
            )
            raise stop_now(self.env, InstabilityError(why))
        return after

    def submit(self, account: int, qty: float) -> Fill:
        """Execute a market order of ``qty`` shares (+ = buy) for ``account``."""
        before = self.mid
        if qty == 0.0:
            return Fill(self.env.now, account, 0.0, before, before, before, 0.0)
        dS = self.impact.impact(qty, before)
        exec_price = before + math.copysign(self.half_spread, qty) + 0.5 * dS
        after = self._apply(dS, lambda: self._order_cause(account, qty))  # on error only
        self.ledger.trade_shares(account, qty, exec_price, POOL)
        self.volume += abs(qty)
        fill = Fill(
            self.env.now, account, qty, before, after, exec_price, (exec_price - before) * qty
        )
        for listener in self.listeners:
            listener(fill)
        self.notify()
        return fill

    def _order_cause(self, account: int, qty: float) -> str:
        names = self.ledger.names
        who = repr(names[account]) if 0 <= account < len(names) else f"account {account}"
        return f"an order of {qty:+,.0f} shares by {who}"

    def move(self, dS: float, cause: str = "an exogenous price move (news or a gap)") -> None:
        """An exogenous price move of ``dS`` $ (news, a gap): no trade, no volume.
        ``cause`` names it in the error raised if the price would leave (0, inf)."""
        if dS != 0.0:
            self._apply(dS, cause)
            self.notify()

    def notify(self) -> None:
        """Wake every process waiting on :attr:`changed` and arm a fresh event."""
        self.changes += 1
        event = self.changed
        if event.callbacks:  # someone waits: wake them and arm a fresh event
            self.changed = self.env.event()
            event.succeed(self.mid)
