"""Build a simulation from a scenario and run it on a simpy event loop.

Data flows one way: scenario -> market, book, vol surface, agents (:mod:`mmsim.build`)
-> simpy events and the compiled fast path (:mod:`mmsim.hotloop`) -> orders -> market
price -> series rows (:mod:`mmsim.sampler`) and trade logs -> :class:`~mmsim.result.Result`
(:mod:`mmsim.assemble`); the trade and option logs are :mod:`mmsim.journal`'s.
:class:`Simulation` builds the run and drives the event loop.

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
import simpy
from tqdm import tqdm

from mmsim.agents.customers import CustomerFlow
from mmsim.agents.dealer import DealerAgent
from mmsim.agents.events import Expiration, ScheduledEvents, open_positions
from mmsim.agents.noise import NewsDiffusion, NoiseTrader
from mmsim.agents.pension import PensionFlow
from mmsim.agents.reposition import Repositioner
from mmsim.assemble import assemble_result
from mmsim.book import OptionBook
from mmsim.build import book_agents, expiry_calendar, make_market
from mmsim.chains import add_lines, chain_smile, scenario_lines
from mmsim.errors import InstabilityError
from mmsim.hotloop import HotLoop, fast_path_enabled
from mmsim.journal import PRICE_CEILING, Journal  # noqa: F401  (PRICE_CEILING: re-exported)
from mmsim.ledger import Ledger
from mmsim.lob import BookMarket, LiquidityDryOut
from mmsim.market import LinearImpact
from mmsim.pauses import schedule_pause
from mmsim.position_columns import PositionColumns
from mmsim.result import Result
from mmsim.sampler import (  # noqa: F401  (re-exported: the series columns)
    BOOK_SERIES,
    DEALER_COLUMNS,
    LEVEL_COLUMNS,
    STATE_COLUMNS,
    Sampler,
    accumulate_flow,
)
from mmsim.scenario import load_scenario
from mmsim.schema import Scenario
from mmsim.vol import RealizedVolFollower, VolSurface

__all__ = ["Simulation", "run"]

_STREAM_NEWS, _STREAM_NOISE, _STREAM_CUSTOMER, _STREAM_LIQUIDITY = 0, 1, 2, 3


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
        self.market = make_market(sc, env, self.ledger)
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
            table_min_lines=sc.engine.delta_table_min_lines,
        )
        self._kinds: dict[int, str] = {}
        self._started = False
        self.segment_names = [f"{c.segment}{i}" for i, c in enumerate(sc.customers)]
        self.journal = Journal(self.ledger, mk.S0, self.segment_names, env)
        self.trade_log, self.option_log = self.journal.trade_log, self.journal.option_log

        def stream(*key: int) -> np.random.Generator:
            child = np.random.SeedSequence(self.entropy, spawn_key=(*root.spawn_key, *key))
            return np.random.default_rng(child)

        feedback = np.zeros((3, max(len(sc.dealers), 1)))  # lam * G on each one's fills
        self.dealers = [
            DealerAgent(
                i,
                name,
                cfg,
                self._account(name, "dealer"),
                self.book,
                self.market,
                self.vol,
                feedback,
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
                self.journal.log_option_trade,
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
            expiry_calendar(sc, self.chain_lines),
            self.book,
            self.market,
            dealer_accounts,
            self.clearing_account,
            mk.settlement,
        )
        self.expiration.settle = self.journal.settling(  # type: ignore[method-assign]
            self.expiration.settle, np.array(dealer_accounts, dtype=np.int64), env, self.market
        )
        self.liquidity, self.dry_outs = book_agents(
            sc, self.market, self.dealers, stream(_STREAM_LIQUIDITY)
        )
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
        self.market.listeners.append(self.journal.log_fill)
        self.sampler = Sampler(sc, self.market, self.book, self.vol, self.ledger, self.dealers,
                               self.expiration.calendar, self._sample)  # fmt: skip
        self.recorder = self.sampler.recorder
        self._dealer_accounts = np.array([d.account for d in self.dealers], dtype=np.int64)
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
        opening = []  # the positions' columns, for the result (mmsim.position_columns)
        for dealer, cfg in zip(self.dealers, sc.dealers, strict=True):
            cols = open_positions(
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
            opening.append(cols)
        self.opening_positions = PositionColumns.concat(
            opening
        )  # every dealer's, in scenario order
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
                    self.journal.opening_hedge(dealer.account, hedge, S0)

    def initial_share_gamma(self) -> float:
        """Aggregate dealer share gamma at S0 and t=0, shares per $1 (the ``G`` of DESIGN)."""
        _, gamma = self.book.net_delta_gamma(self.scenario.market.S0, 0.0, self.vol)
        return float(gamma.sum()) if self.dealers else 0.0

    def _sample(self, t: float, row: np.ndarray) -> None:
        """Fill one series row (state just before time ``t``): :meth:`Sampler.sample`."""
        self.sampler.sample(t, row)

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
            self.hot.sources if self.hot is not None else self.news,  # the kernel's ids
            None if hot else self.noise,
            None if hot else self.liquidity,  # the book's flow too (mmsim.lobhot)
            *self.repositioners,
            *self.pensions,
            *((self.hot,) if hot else self.dealers),
            *self.customers,
        )
        for agent in agents:
            if agent is not None:
                env.process(agent.process(env))

    def advance(self, until: float, *, pause: bool = False) -> None:
        """Run the event loop up to time ``until`` (s), not including events at ``until``.

        Lets a caller inspect the book, market and dealers mid-run (``mmsim gex --at``).
        ``pause``: a stop the model does not see (:mod:`mmsim.pauses`; the book's flow
        may have run past it), so stopping there changes nothing of the run.
        """
        self._start()
        if until > self.env.now and self.failed is None:
            env = self.env
            try:
                env.run(until=schedule_pause(env, float(until)) if pause else float(until))
            except LiquidityDryOut as err:
                self.failed = str(err)
            except InstabilityError as err:
                raise InstabilityError(self._explain_instability(err)) from None

    def _explain_instability(self, err: InstabilityError, where: str = "") -> str:
        """The error's message plus the day of a multi-day run and, with dealers, their
        starting feedback: ``lam * G`` (linear impact) or the book's measured response.
        The simpy clock is first moved to where the compiled kernel stopped (it runs
        ahead of simpy within a segment), so the clock, the message and a result of the
        run so far agree with the simpy path's."""
        if self.hot is not None and self.hot.clock > self.env.now:
            self.env._now = self.hot.clock  # as on a dry-out (HotLoop._run_kernel)
        extra = []
        sc = self.scenario
        if sc.clock.days > 1:
            now = self.env.now
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
                for end in chunks:  # the last stop is the whole run's
                    self.advance(float(end), pause=end < duration)
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

    def _result(self, end: float | None = None, *, tables: bool = True) -> Result:
        """The Result of the run so far (:func:`mmsim.assemble.assemble_result`)."""
        return assemble_result(self, end, tables=tables)


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
