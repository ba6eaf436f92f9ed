"""Exogenous volatility: noise traders (orders that hit the market) and news (no trades)."""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy
from numba import njit

from mmsim.market import Market
from mmsim.schema import News, Noise

__all__ = ["NewsDiffusion", "NoiseTrader"]

_BLOCK = 4096  # normals drawn per call to the generator
_ORDERS = 1024  # noise orders drawn per block (the stream is the trader's own: the block
# size changes when numbers are drawn, never which)


@njit(cache=True)
def _draw_orders(rng, scale, mean, gaps, sizes, sides):
    """Fill the block: per order its gap (exponential of mean ``scale``, s), raw size
    (exponential of mean ``mean``, shares) and side uniform, drawn in that order, order
    after order. numba's ``Generator.exponential`` and ``random`` are numpy's scalar
    draws, bit for bit, on the same generator state (a test checks it), so this is the
    stream of one-at-a-time draws, at ~10 ns an order instead of ~1 us."""
    for i in range(gaps.size):
        gaps[i] = rng.exponential(scale)
        sizes[i] = rng.exponential(mean)
        sides[i] = rng.random()


class NoiseTrader:
    """Poisson market orders: ``rate`` per second, exponential size of mean ``mean_size``
    shares rounded up to whole shares, buy or sell with equal probability; none from
    ``stop`` (s) on (the draws before it are the same as without a stop).

    Draws come in blocks of :data:`_ORDERS` orders (:meth:`refill`, compiled:
    :func:`_draw_orders`), each order's gap (s), raw size (shares) and side uniform drawn
    in that order, one order after the other (the order of one-at-a-time draws), so the
    simpy process and the compiled fast path (:mod:`mmsim.hotloop`) read the same
    numbers, and a seed gives the same orders as it did before blocks.
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
        self.gaps, self.sizes, self.sides = block = np.empty((3, _ORDERS))
        _draw_orders(self.rng, 1.0 / self.config.rate, float(self.config.mean_size), *block)
        self.next = 0

    def process(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """Arrivals until the run ends."""
        if self.config.rate <= 0.0:
            return
        self.refill()
        yield from self.orders(env)

    def orders(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """The orders from :attr:`next` on, each after its gap (s)."""
        stop = self.config.stop
        while True:
            # Python floats: numpy scalars would make the price numpy scalars too
            i = self.next
            for gap, raw, side in zip(
                self.gaps[i:].tolist(), self.sizes[i:].tolist(), self.sides[i:].tolist(),
                strict=True,
            ):  # fmt: skip
                self.next += 1
                yield env.timeout(gap)
                if stop is not None and env.now >= stop:
                    return
                size = math.ceil(raw)
                qty = float(size if side < 0.5 else -size)
                self.market.submit(self.account, qty)
                self.volume += abs(qty)
            self.refill()


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
        if self.config.phase > 0.0:
            yield env.timeout(self.config.phase)
        yield from self.ticks(env)

    def ticks(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """Ticks every ``dt`` s, drawing the normals in blocks."""
        cfg, rng, market = self.config, self.rng, self.market
        scale, stop = self.scale, math.inf if cfg.stop is None else cfg.stop
        while True:
            # the same draws as one at a time, as Python floats (numpy scalars would make
            # the price, and all arithmetic on it, numpy scalars too: several times slower)
            for z in rng.standard_normal(_BLOCK).tolist():
                yield env.timeout(cfg.dt)
                if env.now >= stop:
                    return
                market.move(market.mid * scale * z)
