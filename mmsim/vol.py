"""Implied-volatility surface: flat or skewed, with a level that events can shift.

``iv(K, S) = max(atm + shift + skew * log(K / S), floor)`` in annualized vol units
(0.20 = 20%). ``skew`` is vol per unit of log-moneyness; a negative skew makes
downside puts dearer, as in equity indices. The surface is sticky-moneyness: it moves
with spot, so greeks re-priced at a hypothetical spot use ``log(K / S_hypothetical)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

__all__ = ["VolSurface", "surface_iv"]


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
    """

    atm: float = 0.20
    skew: float = 0.0
    floor: float = 0.01
    shift: float = 0.0

    @property
    def level(self) -> float:
        """Current ATM vol including event shifts, annualized."""
        return self.atm + self.shift

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
