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
from mmsim.book import OptionBook
from mmsim.dryout import DryOutLog, dry_out_episodes
from mmsim.episodes import detect_episodes
from mmsim.errors import InstabilityError
from mmsim.ledger import Ledger
from mmsim.lob import BOOK_COLUMNS, BookMarket, LiquidityDryOut
from mmsim.market import Fill, LinearImpact, Market, SqrtImpact
from mmsim.metrics import episode_counts, summarize
from mmsim.record import Log, SeriesRecorder
from mmsim.result import Result
from mmsim.scenario import load_scenario
from mmsim.schema import Scenario
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
]
"""Series columns sampled every ``record.every`` s (units in the README)."""
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
BOOK_SERIES = [*BOOK_COLUMNS, "taken_bid", "taken_ask"]
"""Extra series columns of a book run (``market.model: book``): see
:data:`mmsim.lob.BOOK_COLUMNS`; ``taken_bid`` / ``taken_ask`` are the cumulative shares
every order took from each side (agents and the book's own flow)."""
_TRADE_COLUMNS = ["t", "account", "qty", "price_before", "price_after", "exec_price", "cost"]
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
            max(len(sc.dealers), 1), year_seconds=clock.year_seconds, r=mk.r, q=mk.q
        )
        self._kinds: dict[int, str] = {}
        self._started = False

        def stream(*key: int) -> np.random.Generator:
            child = np.random.SeedSequence(self.entropy, spawn_key=(*root.spawn_key, *key))
            return np.random.default_rng(child)

        self.dealers = [
            DealerAgent(
                i, name, cfg, self._account(name, "dealer"), self.book, self.market, self.vol
            )
            for i, (name, cfg) in enumerate(zip(sc.dealer_names(), sc.dealers, strict=True))
        ]
        self.opening_account = self._account("opening", "customer")
        self.clearing_account = self._account("clearing", "customer")
        self._open_positions()
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
        self.trade_log = Log(_TRADE_COLUMNS)
        self.market.listeners.append(self._log_fill)
        self.recorder = SeriesRecorder(
            self._series_columns(), sc.record.every, clock.duration, self._sample
        )
        self._levels_stride = max(1, round(sc.record.levels_every / sc.record.every))
        self._levels = np.full(len(LEVEL_COLUMNS), np.nan)
        # per-holder delta, gamma, charm, vanna, value: this and the previous sample
        self._greeks = np.zeros((2, 5, self.book.n_holders))
        self._cur = 0
        self._flow = np.zeros((4, self.book.n_holders))  # cumulative hedge demand, shares
        self._flow_state: tuple[float, float, float] | None = None
        self._dealer_accounts = np.array([d.account for d in self.dealers], dtype=np.int64)

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
        delta, _ = self.book.net_delta_gamma(sc.market.S0, 0.0, self.vol)
        for dealer in self.dealers:
            if dealer.config.start_hedged:
                hedge = float(round(-delta[dealer.index]))
                if hedge:
                    self.ledger.endow(dealer.account, hedge, sc.market.S0)

    def _expiry_calendar(self) -> list[float]:
        """Every expiry time (s) any line of this run can have, within the run."""
        sc = self.scenario
        days = [p.expiry_days for d in sc.dealers for p in d.positions]
        days += [x for c in sc.customers for x in c.expiry_days]
        days += [p.expiry_days for e in sc.events for p in e.positions]
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
            size_min=b.size_min,
            size_max=b.size_max,
            cancel_rate=b.cancel_rate,
            stop_on_mid=price_dealers,
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
        gex_true, gex_visible = book.sample_greeks(S, t, vol, greeks)
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
        )
        k = len(STATE_COLUMNS) + len(LEVEL_COLUMNS)
        row[len(STATE_COLUMNS) : k] = self._levels
        cash = self.ledger.cash
        for i, d in enumerate(self.dealers):
            pnl = cash[d.account] + d_shares[i] * S + val[i]
            row[k + 8 * i : k + 8 * i + 8] = (
                hold[i] + d_shares[i],
                gam[i],
                d_shares[i],
                pnl,
                *self._flow[:, i],
            )
        if isinstance(market, BookMarket):
            row[-len(BOOK_SERIES) :] = (*market.snapshot(), *market.side_flow)

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

    def _update_levels(self, S: float, t: float) -> None:
        """Flip and walls in both views, and the gamma behind the visible walls
        (the episodes recorder's evidence); see ``LEVEL_COLUMNS``."""
        book, vol = self.book, self.vol

        def f(x: float | None) -> float:
            return np.nan if x is None else float(x)

        def at_wall(wall: float | None) -> tuple[float, float, float]:
            if wall is None:
                return np.nan, np.nan, np.nan
            true, visible = (
                float(book.gex_profile([wall], t, vol, v)[0]) for v in ("true", "visible")
            )
            return true, visible, book.strike_gex(S, t, vol, wall, "true")

        cw, pw = book.walls(S, t, vol, "true")
        cwv, pwv = book.walls(S, t, vol, "visible")
        c_true, c_vis, c_strike = at_wall(cwv)
        p_true, p_vis, p_strike = at_wall(pwv)
        self._levels[:] = (
            f(book.flip(S, t, vol, "true")),
            f(book.flip(S, t, vol, "visible")),
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
            raise InstabilityError(
                f"price reached {fill.price_after:.6g} at t={fill.t:.3f}s, over "
                f"{PRICE_CEILING:g} x S0: the hedging feedback diverged"
            )
        self.trade_log.append(
            fill.t,
            fill.account,
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
        env.process(self.recorder.process(env))
        agents = (
            self.events,
            self.vol_follower,
            self.expiration,
            self.news,
            self.noise,
            self.liquidity,
            *self.repositioners,
            *self.pensions,
            *self.dealers,
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
                kappa = self._feedback()
                extra = f" (lam * G at start = {kappa:.3g})" if kappa is not None else ""
                raise InstabilityError(f"{err}{extra}") from None

    def run(self, progress: bool = False) -> Result:
        """Run to the end of the clock, the closing instant included; return the Result."""
        env, duration = self.env, self.scenario.clock.duration
        chunks = np.linspace(0.0, duration, 101)[1:] if progress else [duration]
        with tqdm(
            total=round(duration),
            unit="s",
            disable=not progress,
            leave=False,
            desc=self.scenario.name,
        ) as bar:
            for end in chunks:
                self.advance(float(end))
                bar.update(round(end) - bar.n)
        try:
            while self.failed is None and env.peek() <= duration:  # the closing instant
                env.step()
        except InstabilityError as err:
            raise InstabilityError(f"{err} at the close") from None
        except LiquidityDryOut as err:
            self.failed = str(err)
        self.recorder.finish(env.now)
        return self._result()

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

    def _result(self) -> Result:
        sc = self.scenario
        series = self.recorder.to_frame()
        names = self.ledger.names
        trades = self.trade_log.to_frame()
        accounts = trades["account"].to_numpy(dtype=int)
        trades.insert(1, "agent", [names[a] for a in accounts])
        trades.insert(2, "kind", [self._kinds.get(a, "pool") for a in accounts])
        trades = trades.drop(columns="account")
        options = self.option_log.to_frame()
        options["segment"] = [self.segment_names[int(i)] for i in options["segment"]]
        options = options.astype({"dealer": "int64", "is_call": bool, "visible": bool})
        S, t = self.market.mid, self.env.now
        values = self.book.value(S, t, self.vol)
        stats = {}
        for d in self.dealers:
            pnl = self.ledger.cash[d.account] + self.ledger.shares[d.account] * S + values[d.index]
            stats[d.name] = {
                "pnl": float(pnl),
                "hedge_volume": d.hedge_volume,
                "hedge_cost": d.hedge_cost,
                "n_rehedges": float(d.n_rehedges),
            }
        episodes = detect_episodes(series, trades, sc)
        if self.dry_outs is not None:
            lookback = sc.record.episodes.lookback
            dry = dry_out_episodes(self.dry_outs, series, trades, lookback)
            episodes = pd.concat([episodes, dry], ignore_index=True) if len(dry) else episodes
        metrics = summarize(
            series, trades, stats, every=sc.record.every, year_seconds=sc.clock.year_seconds
        )
        metrics.update(episode_counts(episodes))
        metrics["share_gamma_start"] = self.share_gamma_start
        if (kappa := self._feedback()) is not None:
            metrics["lam_g_start"] = kappa
        if self.dry_outs is not None:
            metrics.update(self._book_metrics())
        accounts_table = pd.DataFrame(
            {
                "account": names,
                "kind": [self._kinds.get(i, "pool") for i in range(len(names))],
                "shares": self.ledger.shares.copy(),
                "cash": self.ledger.cash.copy(),
            }
        )
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
            meta={} if self.dry_outs is None else {"status": "failed" if self.failed else "ok"},
        )


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
) -> Result:
    """Run a scenario (a :class:`Scenario`, a YAML path or a mapping).

    ``seed`` defaults to the scenario's own ``seed``; with neither, fresh entropy is
    drawn and saved in ``Result.entropy``. ``overrides`` maps dotted paths
    (``"dealers.0.band"``) to values. Raises :class:`~mmsim.errors.ScenarioError` on
    bad input and :class:`~mmsim.errors.InstabilityError` when hedging feedback
    diverges (``lam * G <= -1``).
    """
    sc = load_scenario(scenario, overrides=overrides)
    return Simulation(sc, sc.seed if seed is None else seed).run(progress)
