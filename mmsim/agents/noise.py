"""Exogenous volatility: noise traders (orders that hit the market) and news (no trades)."""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from mmsim.market import Market
from mmsim.schema import News, Noise

__all__ = ["NewsDiffusion", "NoiseTrader"]

_BLOCK = 4096  # normals drawn per call to the generator


class NoiseTrader:
    """Poisson market orders: ``rate`` per second, exponential size of mean ``mean_size``
    shares rounded up to whole shares, buy or sell with equal probability; none from
    ``stop`` (s) on (the draws before it are the same as without a stop).

    Draws come in blocks of :data:`_BLOCK` orders (:meth:`refill`): the gaps (s), then
    the raw sizes (shares), then the uniforms for the side, so the simpy process and
    the compiled fast path (:mod:`mmsim.hotloop`) read the same numbers in the same order.
    """

    def __init__(self, config: Noise, account: int, market: Market, rng: np.random.Generator):
        self.config = config
        self.account = account
        self.market = market
        self.rng = rng
        self.volume = 0.0  # shares, cumulative |traded|
        self.gaps = self.sizes = self.sides = np.zeros(0)
        self.next = 0  # index of the next order in the current block

    def refill(self) -> None:
        """Draw the next block: gaps (s), raw sizes (shares), side uniforms."""
        rate, mean = self.config.rate, self.config.mean_size
        self.gaps = self.rng.exponential(1.0 / rate, _BLOCK)
        self.sizes = self.rng.exponential(mean, _BLOCK)
        self.sides = self.rng.random(_BLOCK)
        self.next = 0

    def process(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """Arrivals until the run ends."""
        if self.config.rate <= 0.0:
            return
        stop = self.config.stop
        while True:
            self.refill()
            # Python floats: numpy scalars would make the price numpy scalars too
            for gap, raw, side in zip(
                self.gaps.tolist(), self.sizes.tolist(), self.sides.tolist(), strict=True
            ):
                self.next += 1
                yield env.timeout(gap)
                if stop is not None and env.now >= stop:
                    return
                size = math.ceil(raw)
                qty = float(size if side < 0.5 else -size)
                self.market.submit(self.account, qty)
                self.volume += abs(qty)


class NewsDiffusion:
    """Arithmetic diffusion applied straight to the price every ``dt`` seconds:
    ``dS = S * vol * sqrt(dt / year_seconds) * z``, ``z ~ N(0, 1)``; ticks at
    ``phase + k * dt`` (k = 1, 2, ...), none from ``stop`` (s) on."""

    def __init__(
        self, config: News, market: Market, rng: np.random.Generator, year_seconds: float
    ) -> None:
        self.config = config
        self.market = market
        self.rng = rng
        self.scale = config.vol * math.sqrt(config.dt / year_seconds)  # per-tick fraction of S

    def process(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """News ticks until the run ends."""
        if self.scale <= 0.0:
            return
        cfg, rng, market = self.config, self.rng, self.market
        if cfg.phase > 0.0:
            yield env.timeout(cfg.phase)
        scale, stop = self.scale, math.inf if cfg.stop is None else cfg.stop
        while True:
            # the same draws as one at a time, as Python floats (numpy scalars would make
            # the price, and all arithmetic on it, numpy scalars too: several times slower)
            for z in rng.standard_normal(_BLOCK).tolist():
                yield env.timeout(cfg.dt)
                if env.now >= stop:
                    return
                market.move(market.mid * scale * z)
