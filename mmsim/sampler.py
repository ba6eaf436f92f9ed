"""The sampled series: its columns and the state each row reads (per-holder greeks,
the hedge-flow attribution, the held flip and walls).

:class:`Sampler` fills one row of the :class:`~mmsim.record.SeriesRecorder` at each
sample instant, from the market, the ledger, the dealers and the option book as they
stand just before that instant (the recorder's urgent timeouts); the engine builds it
and the recorder calls it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numba import njit

from mmsim.agents.dealer import DealerAgent
from mmsim.book import OptionBook
from mmsim.ledger import Ledger
from mmsim.levels import LevelsHold
from mmsim.lob import BOOK_COLUMNS, BookMarket
from mmsim.market import Market
from mmsim.record import SeriesRecorder
from mmsim.schema import Scenario
from mmsim.vol import VolSurface

__all__ = [
    "BOOK_SERIES",
    "DEALER_COLUMNS",
    "LEVEL_COLUMNS",
    "STATE_COLUMNS",
    "Sampler",
    "accumulate_flow",
    "series_columns",
]

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
BOOK_SERIES = [*BOOK_COLUMNS, "taken_bid", "taken_ask"]
"""Extra series columns of a book run (``market.model: book``): see
:data:`mmsim.lob.BOOK_COLUMNS`; ``taken_bid`` / ``taken_ask`` are the cumulative shares
every order took from each side (agents and the book's own flow)."""


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


def series_columns(scenario: Scenario, market: Market | BookMarket) -> list[str]:
    """The series columns after ``t``: state, levels, per dealer, and a book run's."""
    cols = [*STATE_COLUMNS, *LEVEL_COLUMNS]
    for name in scenario.dealer_names():
        cols += [f"{name}.{c}" for c in DEALER_COLUMNS]
    return cols + (BOOK_SERIES if isinstance(market, BookMarket) else [])


class Sampler:
    """Fills the series rows of one run (module docstring); owns the recorder, whose
    callback is ``sample`` (default :meth:`sample`)."""

    def __init__(
        self,
        scenario: Scenario,
        market: Market | BookMarket,
        book: OptionBook,
        vol: VolSurface,
        ledger: Ledger,
        dealers: list[DealerAgent],
        expiries: list[float],
        sample: Callable[[float, np.ndarray], None] | None = None,
    ) -> None:
        sc = scenario
        self.scenario, self.market, self.book, self.vol = sc, market, book, vol
        self.ledger, self.dealers = ledger, dealers
        self.recorder = SeriesRecorder(
            series_columns(sc, market), sc.record.every, sc.clock.duration, sample or self.sample
        )
        self.levels_stride = max(1, round(sc.record.levels_every / sc.record.every))
        self.levels = np.full(len(LEVEL_COLUMNS), np.nan)
        self.levels_hold = LevelsHold()
        # per-holder delta, gamma, charm, vanna, value: this and the previous sample
        self._greeks = np.zeros((2, 5, book.n_holders))
        self._cur = 0
        self._flow = np.zeros((4, book.n_holders))  # cumulative hedge demand, shares
        self._flow_state: tuple[float, float, float] | None = None
        self._dealer_accounts = np.array([d.account for d in dealers], dtype=np.int64)
        self._expiries = set(expiries)  # s; samples there value unsettled lines

    def sample(self, t: float, row: np.ndarray) -> None:
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
        if self.recorder.filled % self.levels_stride == 0:
            self.update_levels(S, t)
        flip = self.levels[0]
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
        row[len(STATE_COLUMNS) : k] = self.levels
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

    def flips_due(self, S: float, t: float) -> bool:
        """Whether to recompute the flips now: always for books the engine evaluates
        exactly; for tabulated ones (``engine.delta_table``) only when the book (1% of
        its gross), the surface or spot (0.25%) moved, or every 30 min (:mod:`mmsim.levels`)."""
        if not self.book.tabulates(t):
            return True
        return self.levels_hold.due(S, t, self.book, self.vol.params())

    def update_levels(self, S: float, t: float) -> None:
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
            if self.flips_due(S, t)
            else tuple(self.levels[:2])
        )
        self.levels[:] = (
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
