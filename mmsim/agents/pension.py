"""Pension / rebalancing flow: one large parent order worked in child orders.

The parent is given in shares or in notional dollars (converted at the price when it
starts), with a side, a start time and a duration (seconds). Children go out every
``child_interval`` seconds, sized by the schedule:

- ``twap``: equal children;
- ``front_loaded``: linearly decreasing (the first child is ~2x the average);
- ``u_shaped``: heavy at both ends, light in the middle (open/close auctions).

Children are whole shares; rounding is carried forward so the parent fills exactly.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from mmsim.market import Market
from mmsim.schema import PensionOrder

__all__ = ["PensionFlow", "schedule_weights"]


def schedule_weights(schedule: str, n: int) -> np.ndarray:
    """Fractions of the parent order for each of ``n`` children (they sum to 1)."""
    x = (np.arange(n) + 0.5) / n
    if schedule == "twap":
        w = np.ones(n)
    elif schedule == "front_loaded":
        w = 2.0 - 2.0 * x + 1.0 / n
    elif schedule == "u_shaped":
        w = 0.25 + 12.0 * (x - 0.5) ** 2
    else:
        raise ValueError(f"unknown schedule {schedule!r}")
    return w / w.sum()


class PensionFlow:
    """A parent order as a simpy process; ``volume`` counts shares filled so far."""

    def __init__(self, name: str, config: PensionOrder, account: int, market: Market) -> None:
        self.name = name
        self.config = config
        self.account = account
        self.market = market
        self.volume = 0.0  # shares, cumulative |filled|
        self.n_children = max(1, math.ceil(config.duration / config.child_interval))

    def parent_shares(self) -> float:
        """Size of the parent order in shares (notional converted at the current price)."""
        cfg = self.config
        if cfg.shares is not None:
            return float(cfg.shares)
        return float(round(cfg.notional / self.market.mid))  # type: ignore[operator]

    def process(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """Wait for the start, then send the children on schedule."""
        cfg = self.config
        yield env.timeout(cfg.start)
        total = self.parent_shares()
        sign = 1.0 if cfg.side == "buy" else -1.0
        interval = cfg.duration / self.n_children
        sent, target = 0.0, 0.0
        for k, w in enumerate(schedule_weights(cfg.schedule, self.n_children)):
            if k > 0:
                yield env.timeout(interval)
            target += w * total
            child = float(round(target - sent)) if k < self.n_children - 1 else total - sent
            if child > 0.0:
                self.market.submit(self.account, sign * child)
                sent += child
                self.volume += child
