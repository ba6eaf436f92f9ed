"""The delta-hedging dealer: holds option lines in the book and a share hedge.

Sign conventions (DESIGN.md): net delta = option share delta + shares held, in shares.
Long gamma (net share gamma > 0) means that after a rise the dealer is long delta and
*sells* to rehedge; short gamma buys rallies. The dealer never looks at regimes: it
only keeps ``|net delta|`` inside its band.

Divergence is measured on the dealer's own fills, never assumed: right after a hedge of
``q`` shares the dealer revalues its net delta at the new price (same instant, nothing
else has happened), so ``(after - before) / q = 1 + lam * G`` over the fill's path, for
any impact model. A hedge *chases* when ``1 + lam * G <= 0.01`` (short gamma at
``lam * G <= -0.99``: it grows, or barely cuts, its own exposure) and *over-corrects*
when it overshoots the goal by more than it started from (long gamma with
``hedge_fraction * (1 + lam * G) >= 2``). The rules are small pure functions
of floats (:func:`fill_outcome`, :func:`bracket_probe`) so a compiled kernel can reuse them.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from mmsim.book import OptionBook
from mmsim.errors import InstabilityError
from mmsim.hedge_rules import (
    CHASING,
    FEEDBACK_LIMIT,
    LAGGED_OVERSHOOTS,
    MAX_CASCADE,
    MAX_SOLVE_STEPS,
    MIN_ORDER,
    OVERCORRECTING,
    RESPONSE_FLOOR,
    RUNAWAY_MIN_SIZE,
    RUNAWAY_ROUNDS,
    SCHEDULED_GROWTH,
    SCHEDULED_STEP_CAP,
    SETTLING,
    SOLVE_OVERSHOOT,
    WATCH_QUIET,
    bracket_probe,
    cascade_step,
    combined_feedback,
    fill_feedback,
    fill_outcome,
    plan_hedge,
    scheduled_watch,
    solve_pick,
    solve_update,
)
from mmsim.market import Market
from mmsim.run_env import stop_now
from mmsim.schema import Dealer as DealerConfig
from mmsim.vol import VolSurface

# the rules (constants and pure functions) live in mmsim.hedge_rules, shared with the
# compiled fast path (mmsim.fastpath); re-exported here
__all__ = [
    "CHASING",
    "MAX_CASCADE",
    "OVERCORRECTING",
    "RESPONSE_FLOOR",
    "RUNAWAY_ROUNDS",
    "SETTLING",
    "DealerAgent",
    "bracket_probe",
    "fill_outcome",
]

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
        feedback: np.ndarray | None = None,
    ) -> None:
        self.index = index
        self.name = name
        self.config = config
        self.account = account
        self.book = book
        self.market = market
        self.vol = vol
        # lam * G measured on each dealer's last fill (fill_feedback; row 0), when (s, row
        # 1) and its schedule's interval (s, row 2; 0 if not scheduled), shared by the
        # run's dealers (column = dealer index): the scheduled watch sums the recent ones
        # (combined_feedback)
        self.feedback = np.zeros((3, book.n_holders)) if feedback is None else feedback
        scheduled = config.trigger == "schedule"
        self.feedback[2, index] = config.interval if scheduled else 0.0
        self.hedge_volume = 0.0  # shares, cumulative |traded|
        self.hedge_cost = 0.0  # $, spread + impact paid
        self.n_rehedges = 0
        self.last_delta_before_hedge = 0.0  # shares
        self.capacity_bound = False  # a diverging cascade was left to the capacity limit
        self._window_start = 0.0
        self._window_used = 0.0  # shares traded in the current capacity window
        self._gross_version = -1
        self._gross_units = 0.0
        self._start_level = vol.level  # ATM vol at the start, for the panic rule
        # a same-instant price-triggered dealer sizes by a bracketing solve when needed;
        # a lagged or scheduled one hedges what it saw and over-corrects when lam*G >= 1
        self._instant = config.trigger == "price" and config.latency == 0.0
        self._solve_next = False
        self._overshoots = 0  # over-correcting fills in a row (lagged long gamma)
        # (market changes, t, book version, vol level, net delta, gamma) after own fill
        self._post: tuple[int, float, int, float, float, float] | None = None

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

    def net_delta_after(self, qty: float) -> float:
        """Net delta (shares) right after a hedge of ``qty`` shares, had it traded now:
        the option delta at the market's post-impact mid plus the shares then held. No
        side effect; works for any impact model (:meth:`Market.preview`)."""
        market = self.market
        S = market.preview(qty)
        delta = self.book.holder_delta_gamma(self.index, S, market.env.now, self.vol)[0]
        return delta + market.ledger.shares_of(self.account) + qty

    def band_shares(self) -> float:
        """The tolerance band converted to shares at the current spot."""
        cfg = self.config
        band = cfg.band * self._panic_factor()
        if cfg.band_unit == "shares":
            return band
        version = self.book.holder_version(self.index)  # others' trades leave it
        if self._gross_version != version:
            self._gross_units = self.book.holder_gross_units(self.index)  # shares, gross
            self._gross_version = version
        if cfg.band_unit == "delta_per_contract":
            return band * self._gross_units
        return band * self._gross_units * self.market.mid / _NOTIONAL_UNIT

    def inert_band_message(self, field: str) -> str | None:
        """One line when a ``delta_per_contract`` band is wider than the whole change of
        the book's option delta (shares) for a 5% move of spot either way from now: such
        a band (it scales with gross contracts) leaves the dealer practically inert.
        ``field`` names the band in the message (``dealers[0].band``); ``None`` if fine."""
        if self.config.band_unit != "delta_per_contract":
            return None
        S = self.market.mid
        now = self.option_delta_gamma(S)[0]
        swing = max(abs(self.option_delta_gamma(S * x)[0] - now) for x in (0.95, 1.05))
        band = self.band_shares()
        if band <= swing:
            return None
        return (
            f"{field}: {self.config.band:g} delta per contract = {band:,.0f} shares is wider "
            f"than the whole change of dealer {self.name!r}'s option delta for spot "
            f"{S:.4g} +- 5% ({swing:,.0f} shares): it will hardly ever hedge"
        )

    def _panic_factor(self) -> float:
        """``panic.band_factor`` once ATM vol has risen ``panic.iv_jump`` since the start."""
        panic = self.config.panic
        if panic is not None and self.vol.level - self._start_level >= panic.iv_jump:
            return panic.band_factor
        return 1.0

    # -- behaviour --------------------------------------------------------------------
    def check(self) -> float:
        """Rehedge if ``|net delta| > band``; returns shares traded (signed).

        Whole shares, rounded toward the goal's side (never past it): with any stable
        feedback ``|lam * G| < 1`` the dealer's own impact then shrinks ``|net delta|``
        every round, so a same-instant cascade settles on ``1 / (1 + lam * G)``. An
        instant dealer whose naive hedge would overshoot its own impact by more than half
        (strong long gamma, e.g. at a 0DTE strike) solves for the hedge instead
        (:meth:`_solve`): the same fixed point, reached without cycling.
        """
        market = self.market
        now, mid, post = market.env.now, market.mid, self._post
        if post is not None:  # right after our own fill: reuse that valuation if current
            self._post = None
            if (
                post[0] == market.changes
                and post[1] == now
                and post[2] == self.book.version
                and post[3] == self.vol.level
            ):
                delta, gamma = post[4], post[5]
            else:
                post = None
        if post is None:
            delta, gamma = self.book.holder_delta_gamma(self.index, mid, now, self.vol)
            delta += market.ledger.shares_of(self.account)
        band = self.band_shares()
        if abs(delta) <= max(band, MIN_ORDER):
            return 0.0
        self.last_delta_before_hedge = delta
        cfg = self.config
        goal, qty = plan_hedge(delta, band, cfg.target == "center", cfg.hedge_fraction)
        if qty != 0.0 and self._instant and (self._solve_next or gamma > 0.0):
            # local estimate of f * (1 + lam * G) for this hedge, from the market's impact
            response = 1.0 + gamma * (market.preview(qty) - mid) / qty
            if self._solve_next or cfg.hedge_fraction * response > SOLVE_OVERSHOOT:
                target = delta + cfg.hedge_fraction * (goal - delta)
                qty = self._solve(delta, qty, target, band)
            self._solve_next = False
        qty = self._within_capacity(qty)
        if qty == 0.0:
            return 0.0
        fill = market.submit(self.account, qty)
        self.hedge_volume += abs(qty)
        self.hedge_cost += fill.cost
        self.n_rehedges += 1
        executed = fill.qty  # less on a dry book side, 0 for a limit order left resting
        if executed != 0.0 and cfg.order == "market":  # a limit order fills later, at rest
            self._judge_fill(delta, goal, executed)
        return executed

    def _solve(self, delta: float, naive: float, target: float, band: float) -> float:
        """The whole-share hedge whose post-impact net delta lands nearest ``target``
        (shares), found by Illinois false position on the bracket ``[0, naive]``.

        For a long-gamma book the net delta after a hedge of ``q`` shares increases
        monotonically with ``q`` (``1 + lam * G > 0`` all along the way), so ``0`` (net
        delta on ``delta``'s side) and the overshooting ``naive`` hedge bracket the
        target and the bracket only shrinks: it never cycles and ends in at most
        ``log2 |naive|`` steps. A hedge inside the band is preferred to a nearer one
        outside it. Returns ``naive`` when it does not overshoot after all.
        """
        a, ga = 0.0, delta - target
        b, gb = naive, self.net_delta_after(naive) - target
        if ga * gb > 0.0:
            return naive
        fa, fb, kept = ga, gb, 0
        for _ in range(MAX_SOLVE_STEPS):
            if abs(b - a) <= 1.0:
                break
            c = bracket_probe(a, fa, b, fb)
            gc = self.net_delta_after(c) - target
            if abs(gc) < 0.5 * MIN_ORDER:
                return c
            a, ga, b, gb, fa, fb, kept = solve_update(a, ga, b, gb, fa, fb, kept, c, gc)
        return solve_pick(a, ga, b, gb, target, band)

    def _judge_fill(self, before: float, goal: float, qty: float) -> None:
        """Measure the hedge just filled (:func:`fill_outcome`) and stop a diverging one.

        Revalues the net delta at the post-fill price (the next same-instant check
        reuses it). A chasing fill (``1 + lam * G <= 0``) stops the run at once, whatever
        the trigger; an over-correcting one makes an instant dealer solve its next hedge,
        and stops a lagged or scheduled dealer when :data:`LAGGED_OVERSHOOTS` come in a
        row. With a capacity limit the cascade is bounded by it instead: the run goes on
        and :attr:`capacity_bound` is set.
        """
        market = self.market
        delta, gamma = self.book.holder_delta_gamma(
            self.index, market.mid, market.env.now, self.vol
        )
        after = delta + market.ledger.shares_of(self.account)
        post = (market.changes, market.env.now, self.book.version, self.vol.level, after, gamma)
        self._post = post
        outcome = fill_outcome(before, after, goal, qty)
        if abs(qty) < RUNAWAY_MIN_SIZE:
            # too small to measure: a fill of a few shares (or part of a resting limit
            # order) that lifts a thin best quote moves the mid a whole tick, and
            # whole-share rounding does the rest; a real divergence grows past this
            outcome = SETTLING
        else:
            self.feedback[0, self.index] = fill_feedback(before, after, qty)
            self.feedback[1, self.index] = market.env.now
        if outcome == SETTLING:
            self._overshoots = 0
            return
        if outcome == OVERCORRECTING:
            if self._instant:
                self._solve_next = True
                return
            self._overshoots += 1
            if self._overshoots < LAGGED_OVERSHOOTS:
                return
        if self.config.capacity is not None:
            self.capacity_bound = True
            return
        err = InstabilityError(self._divergence_message(outcome, before, after, qty))
        raise stop_now(market.env, err)

    def _lag(self) -> str:
        cfg = self.config
        if cfg.trigger == "schedule":
            return f"hedges on a {cfg.interval:g} s schedule"
        return f"hedges that lag by {cfg.latency:g} s"

    def _divergence_message(
        self, outcome: int, before: float, after: float, qty: float, now: float | None = None
    ) -> str:
        kappa = (after - before) / qty - 1.0
        fb = getattr(self.market, "feedback_name", "lam * G")  # a book names its measured one
        if outcome == CHASING:
            why = f"short gamma chasing its own impact (same-sign rehedges growing): {fb} <= -1"
        else:
            why = (
                f"long gamma over-correcting {self._lag()} (alternating rehedges growing, "
                f"{self._overshoots} in a row): hedge_fraction x (1 + {fb}) >= 2"
            )
        market = self.market
        now = market.env.now if now is None else now
        return (
            f"dealer {self.name!r} hedging diverged at t={now:.3f}s, price "
            f"{market.mid:.6g}: a hedge of {qty:+,.0f} shares moved its net delta from "
            f"{before:+,.0f} to {after:+,.0f} shares, measured {fb} = {kappa:.3g} over "
            f"the fill; {why}"
        )

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

    def _runaway_message(self, rounds: int, now: float | None = None) -> str:
        """Why a same-instant cascade never settled, by the sign of the dealer's gamma
        (``now``: the clock, s, when not the event loop's)."""
        market = self.market
        now = market.env.now if now is None else now
        gamma = self.book.holder_delta_gamma(self.index, market.mid, now, self.vol)[1]
        fb = getattr(self.market, "feedback_name", "lam * G")
        if gamma < 0.0:
            why = f"short gamma chasing its own impact: {fb} <= -1"
        elif self._instant:
            why = "long gamma, rehedges not settling"
        else:
            why = f"long gamma over-correcting {self._lag()}: {fb} >= 1"
        return (
            f"dealer {self.name!r} hedging ran away at t={now:.3f}s (price "
            f"{self.market.mid:.6g}, {rounds} rehedges in a row without settling): {why}"
        )

    def _scheduled_runaway_message(
        self,
        same_sign: bool,
        rounds: float,
        size: float,
        typical: float,
        growth: float,
        combined: float,
        now: float | None = None,
    ) -> str:
        """Why a scheduled dealer's watch stopped the run (several dealers can diverge
        together while each one's own fills still settle;
        :func:`mmsim.hedge_rules.scheduled_watch`): ``rounds`` the growing rehedges in a
        row, ``size`` the last one and ``typical`` the dealer's typical rehedge (shares),
        ``growth`` the streak's capped log growth, ``combined`` the dealers' measured
        ``lam * G`` summed; ``now``: the clock, s, when not the event loop's."""
        fb = getattr(self.market, "feedback_name", "lam * G")
        now = self.market.env.now if now is None else now
        schedule = f"on its {self.config.interval:g} s schedule"
        if same_sign and combined <= FEEDBACK_LIMIT:
            rule = (
                f"the dealers' combined {fb} measured on their own fills is {combined:.3g} "
                f"<= {FEEDBACK_LIMIT:g} and its last {rounds:.0f} rehedges {schedule} grew "
                f"with one sign, to {size:,.0f} shares (short gamma chasing)"
            )
        else:
            why = (
                f"same-sign: short gamma chasing; the dealers' combined {fb} measured on "
                f"their recent fills is {combined:.3g}"
                if same_sign
                else "alternating: long gamma over-correcting, the dealers' lagged hedges "
                "together overshooting each move"
            )
            rule = (
                f"{rounds:.0f} rehedges in a row {schedule}, each larger than the last, to "
                f"{size:,.0f} shares: {math.exp(growth):,.0f}-fold its typical rehedge "
                f"({typical:,.0f} shares) counting at most {SCHEDULED_STEP_CAP:g}x a round, "
                f"over {SCHEDULED_GROWTH:g}x ({why})"
            )
        return (
            f"dealer {self.name!r} hedging ran away at t={now:.3f}s (price "
            f"{self.market.mid:.6g}): {rule}"
        )

    def process(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """The simpy process: wake on price/book changes (or a schedule), then check.

        A price-triggered dealer sees its own trade's impact as a price change too: after
        each trade it looks again (after its latency) until it is inside its band. That
        cascade is what turns an exogenous move ``dS0`` into ``dS0 / (1 + lam * G)``: each
        round is ``|lam * G|`` times the last. Long gamma so strong that naive rehedging
        over-corrects its own impact is sized by a bracketing solve instead
        (:meth:`_solve`), which lands on the same fixed point. Divergence is judged on
        each fill (:meth:`_judge_fill`): ``lam * G <= -1`` stops the run with
        :class:`InstabilityError` under any trigger. A dealer whose capacity is used up
        sleeps until its window rolls.
        """
        cfg = self.config
        if cfg.trigger == "schedule":
            yield env.timeout(cfg.phase)
            streak, last, typical, growth = 0.0, 0.0, 0.0, 0.0  # scheduled_watch's state
            watch = self.book.n_holders > 1  # several dealers: watch the combined feedback
            while True:
                yield env.timeout(cfg.interval)
                qty = self.check()
                if not watch:
                    continue
                feedback = self.feedback
                combined = combined_feedback(
                    feedback[0], feedback[1], feedback[2], env.now, cfg.interval
                )
                streak, last, typical, growth, verdict = scheduled_watch(
                    qty, streak, last, typical, growth, combined
                )
                if verdict != WATCH_QUIET:
                    why = self._scheduled_runaway_message(
                        streak > 0.0, abs(streak), abs(qty), typical, growth, combined
                    )
                    raise stop_now(env, InstabilityError(why))
        market, capped = self.market, cfg.capacity is not None
        while True:
            if capped and self.capacity_exhausted():
                yield env.timeout(max(self._window_start + cfg.capacity_window - env.now, 0.0))
            else:
                yield market.changed
            if cfg.latency > 0.0:
                yield env.timeout(cfg.latency)
            rounds, growing, last = 0, 0, 0.0
            while (qty := abs(self.check())) != 0.0:
                rounds, growing, last, runaway = cascade_step(qty, rounds, growing, last)
                if runaway:
                    raise stop_now(env, InstabilityError(self._runaway_message(rounds)))
                yield env.timeout(cfg.latency)
