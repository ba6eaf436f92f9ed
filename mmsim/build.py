"""Building a run's state from a scenario: the market and its impact model, the book
agents of a limit-order-book market, and the expiry calendar.

The engine (:class:`~mmsim.engine.Simulation`) calls these once, before the event loop.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import simpy

from mmsim.agents.dealer import DealerAgent
from mmsim.agents.liquidity import LiquidityFlow
from mmsim.dryout import DryOutLog
from mmsim.ledger import Ledger
from mmsim.lob import BookMarket
from mmsim.market import LinearImpact, Market, SqrtImpact
from mmsim.schema import Scenario

__all__ = ["book_agents", "expiry_calendar", "make_impact", "make_market"]


def make_impact(scenario: Scenario) -> LinearImpact | SqrtImpact:
    """The impact model of a scenario's market (``market.impact``)."""
    cfg, S0 = scenario.market.impact, scenario.market.S0
    if cfg.model == "sqrt":
        return SqrtImpact(cfg.Y, cfg.daily_vol, cfg.adv)
    if cfg.depth_bp is not None:
        return LinearImpact.from_depth(cfg.depth_bp, S0)
    return LinearImpact(float(cfg.lam))  # type: ignore[arg-type]


def make_market(sc: Scenario, env: simpy.Environment, ledger: Ledger) -> Market | BookMarket:
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
        make_impact(sc),
        ledger,
        half_spread=mk.half_spread,
        tick=mk.tick,
        transient_fraction=mk.transient.fraction,
        transient_half_life=mk.transient.half_life,
    )


def expiry_calendar(sc: Scenario, chain_lines: pd.DataFrame | None) -> list[float]:
    """Every expiry time (s) any line of a run of ``sc`` can have, within the run
    (``chain_lines``: the opening book from a real chain, :func:`~mmsim.chains.scenario_lines`)."""
    days = sc.expiry_days()
    if chain_lines is not None:
        days += chain_lines["sessions"].unique().tolist()
    end = sc.clock.duration
    return sorted(
        {x * sc.clock.session_seconds for x in days if x * sc.clock.session_seconds <= end}
    )


def book_agents(
    sc: Scenario, market: Market | BookMarket, dealers: list[DealerAgent], rng: np.random.Generator
) -> tuple[LiquidityFlow | None, DryOutLog | None]:
    """The book's liquidity flow (drawing from ``rng``) and dry-out log (``None, None``
    without a book); dealers that post limit orders are registered with the book."""
    if not isinstance(market, BookMarket):
        return None, None
    b = sc.market.book
    price_dealers = any(d.trigger == "price" for d in sc.dealers)
    flow = LiquidityFlow(
        market,
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
    for d, cfg in zip(dealers, sc.dealers, strict=True):
        if cfg.order == "limit":
            market.use_limit_orders(d.account)
    log = DryOutLog(market)
    market.dry_listeners.append(log)
    return flow, log
