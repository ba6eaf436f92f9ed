"""The episodes' fast readers (``mmsim.episodes.series_columns``, ``_is_kind``): the same
arrays as the pandas reads they replace, on a run's own frames and on frames they do not
take the fast way for (mixed dtypes, plain strings)."""

from __future__ import annotations

import numpy as np
import pandas as pd

import mmsim
from mmsim.engine import Simulation
from mmsim.episodes import _is_kind, series_columns
from mmsim.tables import market_orders


def _run():
    sc = mmsim.load_scenario("scenarios/long_gamma.yaml", overrides={"clock.days": 0.2})
    sim = Simulation(sc, 3)
    return sim, sim.run()


def test_series_columns_read_the_frames_columns_bit_for_bit_read_only():
    """Every column of a run's series (one float block, the recorder's buffer) read by
    ``series_columns`` equals ``series[c].to_numpy()`` bit for bit and cannot be written
    (the result's series is behind it); a frame with a string column reads through
    pandas, the same values."""
    _, res = _run()
    col = series_columns(res.series)
    for c in res.series.columns:
        got, want = col(c), res.series[c].to_numpy()
        assert got.tobytes() == want.tobytes(), f"column {c} differs"
        assert not got.flags.writeable, f"column {c}: a writable view of the series"
    mixed = res.series.assign(tag="x")
    col = series_columns(mixed)
    assert np.array_equal(col("price"), res.series["price"].to_numpy())
    assert list(col("tag")) == ["x"] * len(mixed)


def test_is_kind_marks_the_orders_of_a_kind_as_the_string_comparison():
    """``_is_kind`` on a run's categorical order kinds (dealer, noise, a kind not there)
    and on the same kinds as plain strings and with a missing value: the mask of
    ``kind == name``."""
    sim, _ = _run()
    orders = market_orders(sim.trade_log, sim.ledger.names, sim._kinds)
    kinds = [orders["kind"], orders["kind"].astype(str),
             pd.Series(pd.Categorical(["dealer", None, "noise"]))]  # fmt: skip
    for kind in kinds:
        for name in ("dealer", "noise", "pension"):
            want = (kind == name).to_numpy()
            got = _is_kind(kind, name)
            assert got.dtype == bool and np.array_equal(got, want), f"{name} in {kind.dtype}"
    assert _is_kind(orders["kind"], "dealer").any(), "no dealer order: the test tests nothing"
