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

__all__ = ["RealizedVolFollower", "Smile", "VolSurface", "surface_iv", "surface_iv_at"]


@njit(cache=True)
def surface_iv(K: float, S: float, level: float, skew: float, floor: float) -> float:
    """Implied vol at strike ``K`` ($) for spot ``S`` ($); annualized."""
    if skew == 0.0:
        return max(level, floor)
    return surface_iv_at(math.log(K / S), level, skew, floor)


@njit(cache=True, forceinline=False)  # not _check's: see kernel_checks._check
def surface_iv_at(x: float, level: float, skew: float, floor: float) -> float:
    """Implied vol at log-moneyness ``x = log(K / S)``; annualized. The surface's one
    rule: loops that know ``log K`` and ``log S`` call it without a division."""
    return max(level + skew * x, floor)


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


class Smile:
    """Per-expiry smile offsets over a :class:`VolSurface`: the vol model of a run that
    starts from a real chain.

    ``iv(K, expiry, S) = max(surface.iv(K, S) + offset(K, expiry), floor)``, annualized,
    the same formula the book prices its lines with (:mod:`mmsim.book`), so an option
    booked with ``iv_offset = offset(K, expiry, is_call)`` is worth, at the trade instant,
    exactly what it was priced at.

    ``offset`` (vol units): a node's own offset where ``(expiry, K, is_call)`` is one of the
    given lines (so a trade on an existing line keeps that line's offset, bit for bit);
    otherwise, within the expiry, the per-strike offset (mean over call and put where both
    are given) linearly interpolated in ``log K`` (equivalently in log-moneyness, the spot
    being common), flat beyond the expiry's lowest and highest strikes. An expiry the
    smile does not list takes the smile of the nearest listed expiry in clock time (the
    earlier one on a tie): the chain's skew is the best estimate there, and a zero offset
    would price it at the flat ATM level. Offsets are fixed per strike (sticky strike) on
    top of the surface's sticky-moneyness ``iv``.

    Parameters
    ----------
    surface : the run's surface (its level, skew and floor are read at each call).
    expiry : each node's expiry, seconds on the clock.
    strike : each node's strike, $.
    is_call : each node's type.
    offset : each node's vol offset over the surface, vol units (0.02 = 2 points).
    """

    def __init__(self, surface: VolSurface, expiry, strike, is_call, offset) -> None:
        E = np.asarray(expiry, dtype=np.float64)
        K = np.asarray(strike, dtype=np.float64)
        C = np.asarray(is_call, dtype=bool)
        off = np.asarray(offset, dtype=np.float64)
        if not (E.shape == K.shape == C.shape == off.shape):
            raise ValueError("expiry, strike, is_call and offset must have one shape")
        if not (np.isfinite(off).all() and (K > 0).all() and np.isfinite(E).all()):
            raise ValueError("smile nodes need finite expiries and offsets and strikes > 0 $")
        self.surface = surface
        self._exact = {
            (float(e), float(k), bool(c)): float(o) for e, k, c, o in zip(E, K, C, off, strict=True)
        }
        self.expiries = np.unique(E)
        self._curves: dict[float, tuple[np.ndarray, np.ndarray]] = {}
        for e in self.expiries:
            sel = E == e
            ks, inv = np.unique(K[sel], return_inverse=True)
            mean = np.bincount(inv, weights=off[sel]) / np.bincount(inv)
            self._curves[float(e)] = (np.log(ks), mean)

    def __len__(self) -> int:
        return len(self._exact)

    def listed(self, expiry: float) -> float:
        """The listed expiry whose smile ``expiry`` (clock s) uses: itself or the nearest."""
        i = int(np.argmin(np.abs(self.expiries - float(expiry))))
        return float(self.expiries[i])

    def offset(self, strike: float, expiry: float, is_call: bool) -> float:
        """Vol offset over the surface of an option (strike $, expiry clock s), vol units;
        0 for an empty smile."""
        hit = self._exact.get((float(expiry), float(strike), bool(is_call)))
        if hit is not None:
            return hit
        if self.expiries.size == 0:
            return 0.0
        x, y = self._curves[self.listed(expiry)]
        return float(np.interp(math.log(strike), x, y))

    def iv(self, strike: float, expiry: float, S: float, is_call: bool) -> float:
        """Implied vol of the option at spot ``S`` ($), annualized, as the book prices it."""
        level, skew, floor = self.surface.params()
        base = surface_iv(float(strike), float(S), level, skew, floor)
        return max(base + self.offset(strike, expiry, is_call), floor)


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
