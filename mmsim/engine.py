"""Build a simulation from a scenario and run it on a simpy event loop.

Data flows one way: scenario -> market, book, vol surface, agents -> simpy events ->
orders -> market price -> recorders -> :class:`~mmsim.result.Result`.

Randomness: one ``numpy.random.SeedSequence`` per run; every agent draws from its own
child stream whose ``spawn_key`` names the agent (news, noise, customer segment i), so
adding an agent never changes the draws of the others.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import simpy
from numba import njit
from tqdm import tqdm

from mmsim.agents.customers import CustomerFlow, OptionTrade
from mmsim.agents.dealer import DealerAgent
from mmsim.agents.events import Expiration, ScheduledEvents, open_positions
from mmsim.agents.liquidity import LiquidityFlow
from mmsim.agents.noise import NewsDiffusion, NoiseTrader
from mmsim.agents.pension import PensionFlow
from mmsim.agents.reposition import Repositioner
from mmsim.book import OptionBook, default_min_lines
from mmsim.chains import add_lines, chain_smile, scenario_lines
from mmsim.dryout import DryOutLog, dry_out_episodes, with_dry_outs
from mmsim.episodes import detect_episodes
from mmsim.errors import InstabilityError
from mmsim.hotloop import HotLoop, fast_path_enabled
from mmsim.ledger import Ledger
from mmsim.levels import LevelsHold
from mmsim.lob import BOOK_COLUMNS, BookMarket, LiquidityDryOut
from mmsim.market import Fill, LinearImpact, Market, SqrtImpact
from mmsim.metrics import episode_counts, open_interest, pin_metrics, summarize
from mmsim.record import Log, SeriesRecorder
from mmsim.result import Result
from mmsim.scenario import load_scenario
from mmsim.schema import Scenario
from mmsim.tables import TRADE_LOG_COLUMNS, market_orders, trade_table
from mmsim.vol import RealizedVolFollower, VolSurface

__all__ = ["Simulation", "run"]

PRICE_CEILING = 1_000.0  # a price above this multiple of S0 is taken as divergence
STATE_COLUMNS = [
    "price",
    "iv",
    "dealer_delta",
    "dealer_gamma",
    "dealer_shares",
    "hedge_volume",
    "exogenous_volume",
    "gex_true",
    "gex_visible",
    "regime",
    "mid",
]
"""Series columns sampled every ``record.every`` s (units in the README); ``price`` is the
published (tick-rounded) price, ``mid`` the unrounded one fills and settlement use ($)."""
LEVEL_COLUMNS = [
    "flip_true",
    "flip_visible",
    "call_wall",
    "put_wall",
    "call_wall_visible",
    "put_wall_visible",
    "call_wall_gex_true",
    "call_wall_gex_visible",
    "put_wall_gex_true",
    "put_wall_gex_visible",
    "call_wall_strike_gex",
    "put_wall_strike_gex",
]
"""Series columns recomputed every ``record.levels_every`` s and held in between: flips and
walls ($) in both views; the true and visible GEX profile ($ per 1%) evaluated at the
visible call / put wall; the true GEX of the lines struck at each visible wall."""
DEALER_COLUMNS = [
    "delta",
    "gamma",
    "shares",
    "pnl",
    "flow_gamma",
    "flow_charm",
    "flow_vanna",
    "flow_other",
]
"""Per-dealer series columns ``<name>.<column>``: net delta and shares (shares), gamma
(shares per $1), P&L ($), and the cumulative hedge demand (shares, minus the change of
option delta) due to spot moves (gamma), time (charm), implied vol (vanna) and the rest."""
_STREAM_NEWS, _STREAM_NOISE, _STREAM_CUSTOMER, _STREAM_LIQUIDITY = 0, 1, 2, 3
_ORDER, _OPENING_HEDGE, _SETTLEMENT, _DELIVERY = 0.0, 1.0, 2.0, 3.0  # ``booking`` codes
BOOK_SERIES = [*BOOK_COLUMNS, "taken_bid", "taken_ask"]
"""Extra series columns of a book run (``market.model: book``): see
:data:`mmsim.lob.BOOK_COLUMNS`; ``taken_bid`` / ``taken_ask`` are the cumulative shares
every order took from each side (agents and the book's own flow)."""
_OPTION_COLUMNS = [
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


@njit(cache=True)
def accumulate_flow(prev, cur, dS, dt, year_seconds, dlevel, flow):
    """Hedge-flow attribution between two samples, per holder ``h``: with trapezoid
    greeks (rows of ``prev`` / ``cur``: delta, gamma, charm per year, vanna per 1.00 of
    vol), subtract from ``flow[0..2, h]`` the delta change due to spot (gamma x ``dS`` $),
    time (charm x ``dt`` s / ``year_seconds``) and vol (vanna x ``dlevel``), and from
    ``flow[3, h]`` the rest of the option delta change (shares)."""
    for h in range(flow.shape[1]):
        spot = 0.5 * (prev[1, h] + cur[1, h]) * dS
        time = 0.5 * (prev[2, h] + cur[2, h]) * dt / year_seconds
        vol = 0.5 * (prev[3, h] + cur[3, h]) * dlevel
        explained = 0.0
        explained += spot
        explained += time
        explained += vol
        flow[0, h] -= spot
        flow[1, h] -= time
        flow[2, h] -= vol
        flow[3, h] -= (cur[0, h] - prev[0, h]) - explained


def _impact(scenario: Scenario) -> LinearImpact | SqrtImpact:
    cfg, S0 = scenario.market.impact, scenario.market.S0
    if cfg.model == "sqrt":
        return SqrtImpact(cfg.Y, cfg.daily_vol, cfg.adv)
    if cfg.depth_bp is not None:
        return LinearImpact.from_depth(cfg.depth_bp, S0)
    return LinearImpact(float(cfg.lam))  # type: ignore[arg-type]


class Simulation:
    """One run of a scenario: the market, the book, the agents and the recorders."""

    def __init__(self, scenario: Scenario, seed: int | None = None) -> None:
        self.scenario = sc = scenario
        self.seed = seed
        root = np.random.SeedSequence(seed)
        self.entropy = int(root.entropy)  # type: ignore[arg-type]
        clock, mk = sc.clock, sc.market
        self.env = env = simpy.Environment()
        self.ledger = Ledger()
        self.market = _market(sc, env, self.ledger)
        self.vol = VolSurface(sc.vol.atm, sc.vol.skew, sc.vol.floor)
        follow = sc.vol.follow_realized
        self.vol_follower = (
            RealizedVolFollower(
                self.vol,
                lambda: self.market.mid,
                weight=follow.weight,
                half_life=follow.half_life,
                every=follow.every,
                year_seconds=clock.year_seconds,
            )
            if follow is not None
            else None
        )
        self.book = OptionBook(
            max(len(sc.dealers), 1),
            year_seconds=clock.year_seconds,
            r=mk.r,
            q=mk.q,
            delta_table=sc.engine.delta_table,
            table_min_lines=sc.engine.delta_table_min_lines
            or default_min_lines(fast_path_enabled(sc)),
        )
        self._kinds: dict[int, str] = {}
        self._started = False
        self.trade_log = Log(TRADE_LOG_COLUMNS)

        def stream(*key: int) -> np.random.Generator:
            child = np.random.SeedSequence(self.entropy, spawn_key=(*root.spawn_key, *key))
            return np.random.default_rng(child)

        self.dealers = [
            DealerAgent(
                i, name, cfg, self._account(name, "dealer"), self.book, self.market, self.vol
            )
            for i, (name, cfg) in enumerate(zip(sc.dealer_names(), sc.dealers, strict=True))
        ]
        self.opening_account = self._account("opening", "opening")
        self.clearing_account = self._account("clearing", "clearing")
        self.chain_lines = (  # the opening book from a real chain (mmsim.chains)
            scenario_lines(sc.book, clock.session_seconds) if sc.book is not None else None
        )
        self.smile = (  # the chain's per-expiry smile: customers trade at the book's vols
            chain_smile(self.chain_lines, self.vol, sc.market.S0, clock.session_seconds)
            if self.chain_lines is not None
            else None
        )
        self._open_positions()
        for i, dealer in enumerate(self.dealers):
            if (msg := dealer.inert_band_message(f"dealers[{i}].band")) is not None:
                warnings.warn(msg, UserWarning, stacklevel=2)
        self.share_gamma_start = self.initial_share_gamma()  # shares per $1, the G of DESIGN
        self.news = (
            NewsDiffusion(sc.news, self.market, stream(_STREAM_NEWS), clock.year_seconds)
            if sc.news is not None
            else None
        )
        self.noise = (
            NoiseTrader(
                sc.noise, self._account("noise", "noise"), self.market, stream(_STREAM_NOISE)
            )
            if sc.noise is not None
            else None
        )
        self.option_log = Log(_OPTION_COLUMNS, capacity=256)
        self.segment_names = [f"{c.segment}{i}" for i, c in enumerate(sc.customers)]
        dealer_accounts = [d.account for d in self.dealers]
        self.customers = [
            CustomerFlow(
                name,
                cfg,
                self._account(name, "customer"),
                dealer_accounts,
                self.book,
                self.market,
                self.vol,
                stream(_STREAM_CUSTOMER, i),
                clock.session_seconds,
                self._log_option_trade,
                smile=self.smile,
            )
            for i, (name, cfg) in enumerate(zip(self.segment_names, sc.customers, strict=True))
        ]
        self.pensions = [
            PensionFlow(
                cfg.name or f"pension{i}",
                cfg,
                self._account(cfg.name or f"pension{i}", "pension"),
                self.market,
            )
            for i, cfg in enumerate(sc.pensions)
        ]
        self.events = ScheduledEvents(
            sc.events,
            self.market,
            self.vol,
            self.book,
            dealer_accounts,
            self.opening_account,
            clock.session_seconds,
        )
        self.expiration = Expiration(
            self._expiry_calendar(),
            self.book,
            self.market,
            dealer_accounts,
            self.clearing_account,
            mk.settlement,
        )
        self._settle = self.expiration.settle
        self.expiration.settle = self._settle_and_log  # type: ignore[method-assign]
        self.liquidity, self.dry_outs = self._book_agents(stream(_STREAM_LIQUIDITY))
        self.repositioners = [
            Repositioner(
                d.index,
                d.account,
                cfg.positions,
                cfg.reposition_days * clock.session_seconds,
                mk.S0,
                mk.book.tick if mk.model == "book" else max(mk.tick, 0.01),
                self.book,
                self.ledger,
                self.market,
                self.vol,
                self.opening_account,
                clock.session_seconds,
            )
            for d, cfg in zip(self.dealers, sc.dealers, strict=True)
            if cfg.reposition_days is not None
        ]
        self.failed: str | None = None  # why the run stopped early (a liquidity dry-out)
        self.market.listeners.append(self._log_fill)
        self.recorder = SeriesRecorder(
            self._series_columns(), sc.record.every, clock.duration, self._sample
        )
        self._levels_stride = max(1, round(sc.record.levels_every / sc.record.every))
        self._levels = np.full(len(LEVEL_COLUMNS), np.nan)
        self._levels_hold = LevelsHold()
        # per-holder delta, gamma, charm, vanna, value: this and the previous sample
        self._greeks = np.zeros((2, 5, self.book.n_holders))
        self._cur = 0
        self._flow = np.zeros((4, self.book.n_holders))  # cumulative hedge demand, shares
        self._flow_state: tuple[float, float, float] | None = None
        self._dealer_accounts = np.array([d.account for d in self.dealers], dtype=np.int64)
        self._expiries = set(self.expiration.calendar)  # s; samples there value unsettled lines
        # the compiled fast path runs news, noise and the dealers (engine.fast_path)
        self.hot = HotLoop(self) if fast_path_enabled(sc) else None

    # -- construction -----------------------------------------------------------------
    def _account(self, name: str, kind: str) -> int:
        account = self.ledger.register(name)
        self._kinds[account] = kind
        return account

    def _open_positions(self) -> None:
        """Initial option lines, bought at BSM value from the ``opening`` account (so dealer
        P&L starts at zero); dealers that start hedged get shares at S0 (no impact)."""
        sc = self.scenario
        for dealer, cfg in zip(self.dealers, sc.dealers, strict=True):
            open_positions(
                cfg.positions,
                dealer.index,
                dealer.account,
                self.opening_account,
                self.book,
                self.ledger,
                self.vol,
                sc.market.S0,
                0.0,
                sc.clock.session_seconds,
            )
        if self.chain_lines is not None:  # one vectorized add, bought at BSM value
            S0, cfg = sc.market.S0, sc.book
            before = self.book.value(S0, 0.0, self.vol)
            add_lines(self.book, self.chain_lines, self.vol, S0, sc.clock.session_seconds,
                      cfg.dealers, cfg.weights, cfg.visible)  # fmt: skip
            paid = self.book.value(S0, 0.0, self.vol) - before
            for dealer in self.dealers:
                self.ledger.pay(dealer.account, self.opening_account, paid[dealer.index])
        delta, _ = self.book.net_delta_gamma(sc.market.S0, 0.0, self.vol)
        for dealer in self.dealers:
            if dealer.config.start_hedged:
                hedge = float(round(-delta[dealer.index]))
                if hedge:
                    S0 = sc.market.S0
                    self.ledger.endow(dealer.account, hedge, S0)
                    self.trade_log.append(
                        0.0, dealer.account, _OPENING_HEDGE, hedge, S0, S0, S0, 0.0
                    )

    def _settle_and_log(self, expiry: float) -> None:
        """Settle an expiry (:class:`Expiration`) and book what each dealer received in
        the trade log: ``delivery`` rows (physical: shares at the strike, ``exec_price``
        their average strike, ``cost`` paid above the mid) or ``settlement`` rows (cash:
        qty 0, ``cost`` the cash paid, negative when received; ``exec_price`` NaN)."""
        ledger, accounts = self.ledger, self._dealer_accounts
        cash, shares = ledger.cash[accounts].copy(), ledger.shares[accounts].copy()
        self._settle(expiry)
        t, S = self.env.now, self.market.mid
        dq = ledger.shares[accounts] - shares
        dc = ledger.cash[accounts] - cash
        for i, account in enumerate(accounts):
            if dq[i] != 0.0:
                strike = -dc[i] / dq[i]
                self.trade_log.append(
                    t, account, _DELIVERY, dq[i], S, S, strike, (strike - S) * dq[i]
                )
            elif dc[i] != 0.0:
                self.trade_log.append(t, account, _SETTLEMENT, 0.0, S, S, np.nan, -dc[i])

    def _expiry_calendar(self) -> list[float]:
        """Every expiry time (s) any line of this run can have, within the run."""
        sc = self.scenario
        days = [p.expiry_days for d in sc.dealers for p in d.positions]
        days += [x for c in sc.customers for x in c.expiry_days]
        days += [p.expiry_days for e in sc.events for p in e.positions]
        if self.chain_lines is not None:
            days += self.chain_lines["sessions"].unique().tolist()
        end = sc.clock.duration
        return sorted(
            {x * sc.clock.session_seconds for x in days if x * sc.clock.session_seconds <= end}
        )

    def _book_agents(self, rng: np.random.Generator) -> tuple:
        """The book's liquidity flow and dry-out log (``None, None`` without a book)."""
        if not isinstance(self.market, BookMarket):
            return None, None
        b = self.scenario.market.book
        price_dealers = any(d.trigger == "price" for d in self.scenario.dealers)
        flow = LiquidityFlow(
            self.market,
            rng,
            rate=b.rate,
            p_market=b.p_market,
            p_informed=b.p_informed,
            offset_mean=b.offset_mean,
            offset_sd=b.offset_sd,
            offset_dist=b.offset_dist,
            size_min=b.size_min,
            size_max=b.size_max,
            cancel_rate=b.cancel_rate,
            stop_on_mid=price_dealers,
            informed_market=b.informed_market,
        )
        for d, cfg in zip(self.dealers, self.scenario.dealers, strict=True):
            if cfg.order == "limit":
                self.market.use_limit_orders(d.account)
        log = DryOutLog(self.market)
        self.market.dry_listeners.append(log)
        return flow, log

    def initial_share_gamma(self) -> float:
        """Aggregate dealer share gamma at S0 and t=0, shares per $1 (the ``G`` of DESIGN)."""
        _, gamma = self.book.net_delta_gamma(self.scenario.market.S0, 0.0, self.vol)
        return float(gamma.sum()) if self.dealers else 0.0

    # -- recording --------------------------------------------------------------------
    def _series_columns(self) -> list[str]:
        cols = [*STATE_COLUMNS, *LEVEL_COLUMNS]
        for name in self.scenario.dealer_names():
            cols += [f"{name}.{c}" for c in DEALER_COLUMNS]
        return cols + (BOOK_SERIES if isinstance(self.market, BookMarket) else [])

    def _sample(self, t: float, row: np.ndarray) -> None:
        """Fill one series row (state just before time ``t``)."""
        market, book, vol = self.market, self.book, self.vol
        S = market.mid
        greeks = self._greeks[self._cur]
        gex_true, gex_visible = book.series_greeks(S, t, vol, greeks)
        hold, gam, val = greeks[0], greeks[1], greeks[4]
        self._attribute_flow(S, t, greeks)
        n = len(self.dealers)
        d_shares = self.ledger.shares[self._dealer_accounts]
        total_shares = d_shares.sum()
        hedge = sum(d.hedge_volume for d in self.dealers)
        if self.recorder.filled % self._levels_stride == 0:
            self._update_levels(S, t)
        flip = self._levels[0]
        regime = 0.0 if math.isnan(flip) else (1.0 if S >= flip else -1.0)
        row[: len(STATE_COLUMNS)] = (
            market.price,
            vol.level,
            hold[:n].sum() + total_shares,
            gam[:n].sum(),
            total_shares,
            hedge,
            market.volume - hedge,
            gex_true,
            gex_visible,
            regime,
            S,
        )
        k = len(STATE_COLUMNS) + len(LEVEL_COLUMNS)
        row[len(STATE_COLUMNS) : k] = self._levels
        cash = self.ledger.cash
        due = self._unsettled_value(S, t) if t in self._expiries else None
        for i, d in enumerate(self.dealers):
            pnl = cash[d.account] + d_shares[i] * S + val[i] + (due[i] if due is not None else 0.0)
            row[k + 8 * i : k + 8 * i + 8] = (
                hold[i] + d_shares[i],
                gam[i],
                d_shares[i],
                pnl,
                *self._flow[:, i],
            )
        if isinstance(market, BookMarket):
            row[-len(BOOK_SERIES) :] = (*market.snapshot(), *market.side_flow)

    def _unsettled_value(self, S: float, t: float) -> np.ndarray:
        """Per-holder intrinsic value ($) of lines expiring at ``t`` and not settled yet.

        A sample at an expiry instant comes before that instant's settlement, but the book
        already values those lines at 0 (expired): without this the sampled P&L would lose
        their intrinsic value until the next sample, and the last row of a run ending at an
        expiry would disagree with the final P&L in the metrics."""
        book, out = self.book, np.zeros(self.book.n_holders)
        due = np.flatnonzero((np.abs(book.expiry - t) < 1e-9) & (book.qty != 0.0))
        for i in due:
            k = book.strike[i]
            intrinsic = max(S - k, 0.0) if book.is_call[i] else max(k - S, 0.0)
            out[book.holder[i]] += book.qty[i] * book.multiplier[i] * intrinsic
        return out

    def _attribute_flow(self, S: float, t: float, greeks: np.ndarray) -> None:
        """Split each dealer's change of option delta since the last sample into spot
        (gamma), time (charm) and implied-vol (vanna) parts, trapezoid-averaged greeks, and
        the rest (new lines, settlements, skew); accumulate minus each as hedge demand."""
        level = self.vol.level
        if self._flow_state is not None:
            S0, t0, level0 = self._flow_state
            prev = self._greeks[1 - self._cur]
            year = self.scenario.clock.year_seconds
            accumulate_flow(prev, greeks, S - S0, t - t0, year, level - level0, self._flow)
        self._flow_state = (S, t, level)
        self._cur = 1 - self._cur

    def _flips_due(self, S: float, t: float) -> bool:
        """Whether to recompute the flips now: always for books the engine evaluates
        exactly; for tabulated ones (``engine.delta_table``) only when the book (1% of
        its gross), the surface or spot (0.25%) moved, or every 30 min (:mod:`mmsim.levels`)."""
        if not self.book.tabulates(t):
            return True
        return self._levels_hold.due(S, t, self.book, self.vol.params())

    def _update_levels(self, S: float, t: float) -> None:
        """Flip and walls in both views, and the gamma behind the visible walls
        (the episodes recorder's evidence); see ``LEVEL_COLUMNS``."""
        book, vol = self.book, self.vol

        def f(x: float | None) -> float:
            return np.nan if x is None else float(x)

        def at_wall(wall: float | None) -> tuple[float, float, float]:
            if wall is None:
                return np.nan, np.nan, np.nan
            true, visible = book.gex_views_at(wall, t, vol)  # the profile at the wall
            return true, visible, book.strike_gex(S, t, vol, wall, "true")

        cw, pw = book.walls(S, t, vol, "true")
        cwv, pwv = book.walls(S, t, vol, "visible")
        c_true, c_vis, c_strike = at_wall(cwv)
        p_true, p_vis, p_strike = at_wall(pwv)
        flips = (
            tuple(f(x) for x in book.flips(S, t, vol))
            if self._flips_due(S, t)
            else tuple(self._levels[:2])
        )
        self._levels[:] = (
            *flips,
            f(cw),
            f(pw),
            f(cwv),
            f(pwv),
            c_true,
            c_vis,
            p_true,
            p_vis,
            c_strike,
            p_strike,
        )

    def _log_fill(self, fill: Fill) -> None:
        if not fill.price_after < PRICE_CEILING * self.scenario.market.S0:
            who = self.ledger.names[fill.account]
            raise InstabilityError(
                f"price reached {fill.price_after:.6g} at t={fill.t:.3f}s, over "
                f"{PRICE_CEILING:g} x S0, after an order of {fill.qty:+,.0f} shares by {who!r}"
            )
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

    def _log_option_trade(self, tr: OptionTrade) -> None:
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

    # -- running ----------------------------------------------------------------------
    def _start(self) -> None:
        """Register every process with the event loop (once)."""
        if self._started:
            return
        self._started = True
        env = self.env
        env.process(self.recorder.process(env) if self.hot is None else self.hot.first_sample(env))
        hot = self.hot is not None  # the HotLoop stands in for news, noise and dealers
        agents = (
            self.events,
            self.vol_follower,
            self.expiration,
            None if hot else self.news,
            None if hot else self.noise,
            self.liquidity,
            *self.repositioners,
            *self.pensions,
            *((self.hot,) if hot else self.dealers),
            *self.customers,
        )
        for agent in agents:
            if agent is not None:
                env.process(agent.process(env))

    def advance(self, until: float) -> None:
        """Run the event loop up to time ``until`` (s), not including events at ``until``.

        Lets a caller inspect the book, market and dealers mid-run (``mmsim gex --at``).
        """
        self._start()
        if until > self.env.now and self.failed is None:
            try:
                self.env.run(until=float(until))
            except LiquidityDryOut as err:
                self.failed = str(err)
            except InstabilityError as err:
                raise InstabilityError(self._explain_instability(err)) from None

    def _explain_instability(self, err: InstabilityError, where: str = "") -> str:
        """The error's message plus the day of a multi-day run and, with dealers, their
        starting feedback: ``lam * G`` (linear impact) or the book's measured response."""
        extra = []
        sc = self.scenario
        if sc.clock.days > 1:
            now = self.env.now if self.hot is None else max(self.env.now, self.hot.clock)
            day = min(int(now // sc.clock.session_seconds) + 1, math.ceil(sc.clock.days))
            extra.append(f"day {day} of {sc.clock.days:g}")
        kappa = self._feedback()
        if kappa is not None and self.dealers:
            extra.append(f"lam * G at start = {kappa:.3g}")
        elif isinstance(self.market, BookMarket) and self.dealers:
            extra.append(self.market.feedback_note(self.share_gamma_start))
        return f"{err}{where}" + (f" ({'; '.join(extra)})" if extra else "")

    def run(
        self, progress: bool = False, *, keep_partial: bool = False, tables: bool = True
    ) -> Result:
        """Run to the end of the clock, the closing instant included; return the Result.

        With ``keep_partial``, Ctrl-C (``KeyboardInterrupt``) does not lose the run: the
        result of what was simulated so far is returned, its ``meta["interrupted"]`` the
        clock time reached (s, as text). ``tables=False``: metrics, series and episodes
        only (see :meth:`_result`)."""
        env, duration = self.env, self.scenario.clock.duration
        chunks = np.linspace(0.0, duration, 101)[1:] if progress or keep_partial else [duration]
        with tqdm(
            total=round(duration),
            unit="s",
            disable=not progress,
            leave=False,
            desc=self.scenario.name,
        ) as bar:
            try:
                for end in chunks:
                    self.advance(float(end))
                    bar.update(round(end) - bar.n)
            except KeyboardInterrupt:
                if not keep_partial or self.recorder.filled < 2:
                    raise
                result = self._result(end=float(self.recorder.times[self.recorder.filled - 1]))
                result.meta["interrupted"] = f"{env.now:g}"
                return result
        try:
            while self.failed is None and env.peek() <= duration:  # the closing instant
                env.step()
        except InstabilityError as err:
            raise InstabilityError(self._explain_instability(err, " at the close")) from None
        except LiquidityDryOut as err:
            self.failed = str(err)
        self.recorder.finish(env.now)
        return self._result(tables=tables)

    def _feedback(self) -> float | None:
        impact = getattr(self.market, "impact", None)
        if isinstance(impact, LinearImpact):
            return impact.lam * self.share_gamma_start
        return None

    def _book_metrics(self) -> dict[str, float]:
        """Book outcome: ``failed`` (1.0 when a dry-out stopped the run, Buis et al.'s
        failure), ``n_dry_outs``, ``dry_out_t`` (s, first one; only if any),
        ``lob_events`` (orders of the liquidity flow), ``lob_dropped`` (shares lost off
        the window)."""
        market, flow = self.market, self.liquidity
        out = {
            "failed": 1.0 if self.failed is not None else 0.0,
            "n_dry_outs": float(market.n_dry_outs),
            "lob_events": float(flow.n_events),
            "lob_dropped": float(market.dropped + flow.stats[7]),
        }
        if self.dry_outs.rows:
            out["dry_out_t"] = float(self.dry_outs.rows[0][0])
        return out

    def _result(self, end: float | None = None, *, tables: bool = True) -> Result:
        """The Result of the run so far; ``end`` (s) the last sampled time if it stopped
        early (default: the end of the clock). ``tables=False`` (a sweep's run, which
        keeps only metrics and series columns) skips assembling ``trades``,
        ``option_trades`` and ``accounts`` (left empty); the metrics are the same."""
        sc = self.scenario
        end = sc.clock.duration if end is None else end
        series = self.recorder.to_frame()
        names = self.ledger.names
        orders = market_orders(self.trade_log, names, self._kinds)
        options = self.option_log.to_frame()
        S, t = self.market.mid, self.env.now
        values = self.book.value(S, t, self.vol)
        stats = {}
        last = series.iloc[-1] if len(series) else None
        for d in self.dealers:
            pnl = self.ledger.cash[d.account] + self.ledger.shares[d.account] * S + values[d.index]
            # P&L at the close is the last sample's (settlements and the hedge unwinds of the
            # closing instant come after it); what those leave is pnl_after_close
            close = float(last[f"{d.name}.pnl"]) if last is not None else float(pnl)
            stats[d.name] = {
                "pnl": close,
                "pnl_after_close": float(pnl),
                "hedge_volume": d.hedge_volume,
                "hedge_cost": d.hedge_cost,
                "n_rehedges": float(d.n_rehedges),
            }
        episodes = detect_episodes(series, orders, sc)
        if self.dry_outs is not None:
            lookback = sc.record.episodes.lookback
            dry = dry_out_episodes(self.dry_outs, series, orders, lookback)
            episodes = with_dry_outs(episodes, dry)
        metrics = summarize(
            series, orders, stats, every=sc.record.every, year_seconds=sc.clock.year_seconds
        )
        metrics.update(episode_counts(episodes))
        oi = open_interest(sc, options)
        metrics.update(pin_metrics(series, oi, sc.clock.session_seconds, end))
        metrics["share_gamma_start"] = self.share_gamma_start
        # 1.0 when a diverging cascade (lam * G <= -1, or lagged over-correction) was left
        # to a dealer's capacity limit instead of stopping the run
        metrics["capacity_bound"] = float(any(d.capacity_bound for d in self.dealers))
        if (kappa := self._feedback()) is not None:
            metrics["lam_g_start"] = kappa
        if self.dry_outs is not None:
            metrics.update(self._book_metrics())
        trades, accounts_table = pd.DataFrame(), pd.DataFrame()
        if tables:
            trades = trade_table(self.trade_log, names, self._kinds)
            options["segment"] = [self.segment_names[int(i)] for i in options["segment"]]
            options = options.astype({"dealer": "int64", "is_call": bool, "visible": bool})
            accounts_table = pd.DataFrame(
                {
                    "account": names,
                    "kind": [self._kinds.get(i, "pool") for i in range(len(names))],
                    "shares": self.ledger.shares.copy(),
                    "cash": self.ledger.cash.copy(),
                }
            )
        else:
            options = pd.DataFrame()
        return Result(
            scenario=sc,
            series=series,
            trades=trades,
            option_trades=options,
            episodes=episodes,
            accounts=accounts_table,
            metrics=metrics,
            seed=self.seed,
            entropy=self.entropy,
            meta={
                "mmsim_version": _version(),
                **({} if self.dry_outs is None else {"status": "failed" if self.failed else "ok"}),
                **({} if tables else {"tables": "metrics"}),
            },
        )


def _version() -> str:
    import mmsim  # loaded by now; a module-level import would be circular

    return str(getattr(mmsim, "__version__", "unknown"))


def _market(sc: Scenario, env: simpy.Environment, ledger: Ledger) -> Market | BookMarket:
    """The scenario's market: an impact model or the limit order book."""
    mk = sc.market
    if mk.model == "book":
        b = mk.book
        return BookMarket(
            env,
            mk.S0,
            ledger,
            tick=b.tick,
            levels=b.levels,
            init_levels=b.init_levels,
            init_volume=b.init_volume,
            init_spread_ticks=b.init_spread_ticks,
            xi=b.xi,
            cancel_rate=b.cancel_rate,
            max_spread=b.max_spread,
            on_dry_out=b.on_dry_out,
            work=b.work,
        )
    return Market(
        env,
        mk.S0,
        _impact(sc),
        ledger,
        half_spread=mk.half_spread,
        tick=mk.tick,
        transient_fraction=mk.transient.fraction,
        transient_half_life=mk.transient.half_life,
    )


def run(
    scenario: Scenario | str | os.PathLike | Mapping[str, Any],
    *,
    seed: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    progress: bool = False,
    tables: bool = True,
) -> Result:
    """Run a scenario (a :class:`Scenario`, a YAML path or a mapping).

    ``seed`` defaults to the scenario's own ``seed``; with neither, fresh entropy is
    drawn and saved in ``Result.entropy``. ``overrides`` maps dotted paths
    (``"dealers.0.band"``) to values. Raises :class:`~mmsim.errors.ScenarioError` on
    bad input and :class:`~mmsim.errors.InstabilityError` when hedging feedback
    diverges (``lam * G <= -1``). ``tables=False`` leaves ``trades``, ``option_trades``
    and ``accounts`` empty (a sweep's runs keep only metrics; they are the same).
    """
    sc = load_scenario(scenario, overrides=overrides)
    return Simulation(sc, sc.seed if seed is None else seed).run(progress, tables=tables)
