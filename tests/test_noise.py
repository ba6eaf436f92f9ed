"""The noise trader's compiled block draws against numpy's one-at-a-time draws."""

from __future__ import annotations

import numpy as np
import pytest

from mmsim.agents.noise import _ORDERS, NoiseTrader
from mmsim.schema import Noise


@pytest.mark.parametrize(
    ("seed", "rate", "mean_size"), [(7, 0.05, 100), (123, 3.7, 2.5), (9, 40.0, 1e4)]
)
def test_compiled_blocks_are_the_one_at_a_time_draws_of_the_same_stream(seed, rate, mean_size):
    """numba's Generator.exponential / random must give numpy's scalar draws bit for bit
    and leave the generator where numpy would (3 blocks, then one more draw each): else
    every seed's noise orders, and the runs, change."""
    trader = NoiseTrader(
        Noise(rate=rate, mean_size=mean_size), 1, None, np.random.default_rng(seed)
    )  # type: ignore[arg-type]
    ref = np.random.default_rng(seed)
    for _ in range(3):
        trader.refill()
        want = np.array(
            [
                (ref.exponential(1.0 / rate), ref.exponential(mean_size), ref.random())
                for _ in range(_ORDERS)
            ]
        ).T
        assert np.array_equal(np.stack([trader.gaps, trader.sizes, trader.sides]), want), (
            f"block draws differ from numpy's scalar draws (seed {seed}, exact equality)"
        )
    assert trader.rng.random() == ref.random(), "generator state after the blocks differs"
