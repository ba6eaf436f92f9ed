"""Implied-volatility surface: flat or skewed, with a level that events can shift and
that may follow realized vol.

``iv(K, S) = max(level + skew * log(K / S), floor)`` in annualized vol units (0.20 =
20%), with ``level = (1 - w) * atm + w * rv + shift``: ``shift`` from events, ``rv`` an
exponentially weighted realized vol of the price and ``w`` its weight (0 by default).
``skew`` is vol per unit of log-moneyness; a negative skew makes
downside puts dearer, as in equity indices. The surface is sticky-moneyness: it moves
with spot, so greeks re-priced at a hypothetical spot use ``log(K / S_hypothetical)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

__all__ = ["RealizedVolFollower", "VolSurface", "surface_iv"]


@njit(cache=True)
def surface_iv(K: float, S: float, level: float, skew: float, floor: float) -> float:
    """Implied vol at strike ``K`` ($) for spot ``S`` ($); annualized."""
    if skew == 0.0:
        return max(level, floor)
    return max(level + skew * math.log(K / S), floor)


@dataclass
class VolSurface:
    """A mutable surface: ``atm`` and ``skew`` from the scenario, ``shift`` from events.

    Attributes
    ----------
    atm : at-the-money implied vol, annualized.
    skew : vol per unit of ``log(K / S)``.
    floor : lowest vol the surface quotes, annualized (> 0 keeps greeks smooth).
    shift : additive level change applied by events (vol regime shifts).
    follow : weight of realized vol in the level (0 = fixed level).
    realized : the realized-vol estimate the level follows, annualized (starts at atm).
    """

    atm: float = 0.20
    skew: float = 0.0
    floor: float = 0.01
    shift: float = 0.0
    follow: float = 0.0
    realized: float | None = None

    @property
    def level(self) -> float:
        """Current ATM vol: event shifts plus the realized-vol part, annualized."""
        if self.follow == 0.0 or self.realized is None:
            return self.atm + self.shift
        return self.atm + self.follow * (self.realized - self.atm) + self.shift

    def params(self) -> tuple[float, float, float]:
        """``(level, skew, floor)``, the plain floats the numba kernels take."""
        return self.level, self.skew, self.floor

    def iv(self, K, S):
        """Implied vol at strike(s) ``K`` for spot ``S``; broadcasts; annualized."""
        K = np.asarray(K, dtype=np.float64)
        raw = self.level + self.skew * np.log(K / np.asarray(S, dtype=np.float64))
        return np.maximum(raw, self.floor)

    def apply_shift(self, d_level: float = 0.0, d_skew: float = 0.0) -> None:
        """Move the surface: ``d_level`` in vol units (0.05 = +5 points), ``d_skew``."""
        self.shift += d_level
        self.skew += d_skew


class RealizedVolFollower:
    """Keeps ``surface.realized`` an exponentially weighted realized vol of the price.

    Every ``every`` s the log return since the last update enters an EWMA of annualized
    variance with half-life ``half_life`` s; the estimate starts at the surface's ``atm``
    (a run opens at its quoted vol). ``price`` returns the current mid ($).
    """

    def __init__(
        self,
        surface: VolSurface,
        price: Callable[[], float],
        *,
        weight: float,
        half_life: float,
        every: float,
        year_seconds: float,
    ) -> None:
        self.surface = surface
        self.price = price
        self.every = every
        self.keep = 0.5 ** (every / half_life)  # weight of the old estimate per update
        self.annualize = year_seconds / every
        self.variance = surface.atm**2  # annualized
        surface.follow = weight
        surface.realized = surface.atm

    def update(self, last: float, now: float) -> None:
        """Fold the log return from ``last`` to ``now`` ($) into the estimate."""
        r = math.log(now / last)
        self.variance = self.keep * self.variance + (1.0 - self.keep) * r * r * self.annualize
        self.surface.realized = math.sqrt(self.variance)

    def process(self, env: Any) -> Generator[Any, Any, None]:
        """The simpy process: update every ``every`` s of trading time."""
        last = self.price()
        while True:
            yield env.timeout(self.every)
            now = self.price()
            self.update(last, now)
            last = now
