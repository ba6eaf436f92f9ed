"""The result's shortcuts for big books give the tables and metrics of the plain formulas:
the episodes table typed as it is built, open interest cut to the lines the pin metrics
read, the evidence's expiries cut to those a window can reach."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from mmsim.episodes import EPISODE_COLUMNS, _Evidence, episode_table
from mmsim.metrics import open_interest, pin_metrics
from mmsim.scenario import load_scenario

SESSION = 1200.0  # s


def _rows(rng: np.random.Generator, n: int) -> list[dict]:
    """Episode rows in no order, ``start`` ties broken by ``kind``, NaN levels."""
    kinds = ["put_wall_break", "call_wall_break", "flip_cross_up", "flip_cross_down"]
    rows = []
    for _ in range(n):
        row = {c: float(rng.normal()) for c, d in EPISODE_COLUMNS.items() if d == "float64"}
        row.update({c: str(rng.choice(["a", "b", ""])) for c, d in EPISODE_COLUMNS.items()
                    if d != "float64"})  # fmt: skip
        row["start"] = float(rng.integers(0, 4)) * 10.0  # ties
        row["kind"] = str(rng.choice(kinds))
        row["level_true"] = np.nan if rng.random() < 0.5 else row["level"]
        row["extra"] = 1.0  # a key that is not a column is left out
        rows.append(row)
    return rows


@pytest.mark.parametrize("seed", range(5))
def test_episode_table_is_the_sorted_typed_table_of_its_rows(seed):
    rows = _rows(np.random.default_rng(seed), 12)
    reference = pd.DataFrame(rows).sort_values(["start", "kind"], kind="stable")
    reference = reference.reset_index(drop=True)[list(EPISODE_COLUMNS)].astype(EPISODE_COLUMNS)
    table = episode_table(rows)
    pd.testing.assert_frame_equal(table, reference, check_exact=True)  # values, dtypes, index
    assert list(table.dtypes.astype(str)) == list(reference.dtypes.astype(str)), "same dtypes"


def _scenario(expiries: list[float], event_expiry: float = 1.5) -> object:
    """Two desks holding lines that expire at ``expiries`` (sessions of 1,200 s) in a
    two-session run, and a ``positions`` event."""
    positions = [
        {"type": "call" if i % 2 else "put", "strike": 95.0 + i, "expiry_days": x,
         "qty": (-1.0) ** i * (100.0 + 10 * i)}
        for i, x in enumerate(expiries)
    ]  # fmt: skip
    return load_scenario(
        {
            "name": "oi",
            "clock": {"days": 2, "session_seconds": SESSION},
            "market": {"S0": 100.0, "impact": {"lam": 1e-6}},
            "vol": {"atm": 0.2},
            "dealers": [
                {"name": "a", "positions": positions[::2]},
                {"name": "b", "positions": positions[1::2]},
            ],
            "events": [
                {
                    "at": 600.0,
                    "kind": "positions",
                    "positions": [
                        {"type": "call", "strike": 100.0, "expiry_days": event_expiry, "qty": 7.0}
                    ],
                },
            ],
        }
    )


@pytest.mark.parametrize(
    "expiries",
    [
        [1.0, 2.0, 2.0 + 1e-13, 3.0, 40.0, 1.0, 0.5, 2.5, 1.0],  # in, at the end, just past it
        [3.0, 5.0, 40.0],  # none of the desks' lines expires within the run
    ],
)
def test_open_interest_cut_to_the_run_keeps_the_rows_and_pins_of_the_whole_table(expiries):
    sc = _scenario(expiries)
    end = 2 * SESSION
    trades = pd.DataFrame(  # customer option trades: within the run and after it
        {
            "strike": [100.0, 101.0, 99.0, 100.0],
            "expiry": [SESSION, 5 * SESSION, 2 * SESSION, 2 * SESSION],
            "qty": [5.0, 9.0, -400.0, 3.0],
        }
    )
    series = pd.DataFrame({"t": np.arange(0.0, end + 1.0, 100.0)})
    series["price"] = 100.0 + np.sin(series["t"] / 300.0)
    for options in (trades, trades.iloc[:0]):
        full = open_interest(sc, options)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no concatenation warning for an empty part
            cut = open_interest(sc, options, expiring_by=end)
        e = full["expiry"]
        expected = full[(e > 0.0) & (e <= end * (1 + 1e-12))].reset_index(drop=True)
        pd.testing.assert_frame_equal(cut, expected, check_exact=True, check_index_type=False)
        assert pin_metrics(series, cut, SESSION, end) == pin_metrics(series, full, SESSION, end)
    assert pin_metrics(series, open_interest(sc, trades, expiring_by=end), SESSION, end), (
        "expiries within the run give pin metrics"
    )


def _series(n: int, every: float) -> pd.DataFrame:
    """A recorded series with the columns the evidence reads (walls, their GEX, IV)."""
    rng = np.random.default_rng(0)
    t = np.arange(n) * every
    cols = {
        "t": t,
        "price": 100.0 + rng.normal(size=n).cumsum() * 0.1,
        "iv": 0.2 + 0.01 * t / t[-1],
    }
    for side in ("call", "put"):
        cols[f"{side}_wall_visible"] = np.full(n, 102.0 if side == "call" else 98.0)
        cols[f"{side}_wall_strike_gex"] = 1e5 * (1.0 - t / (2 * t[-1]))
        cols[f"{side}_wall_gex_true"] = np.full(n, 2e5)
        cols[f"{side}_wall_gex_visible"] = np.full(n, 3e5)
    cols["gex_true"], cols["gex_visible"] = np.full(n, 1e5), np.full(n, -1e5)
    cols["a.flow_other"] = np.arange(n, dtype=float)
    cols["b.flow_other"] = np.arange(n, dtype=float) * 2.0
    return pd.DataFrame(cols)


def test_evidence_of_every_window_is_that_of_all_expiries():
    """Expiries just inside and past the farthest window's reach (its end plus a session:
    the melt's look-ahead), far ones and ones before the run: cutting the far ones changes
    no evidence of any window, to the bit, on both sides and the flip."""
    duration = load_scenario({"name": "x"}).record.episodes.duration
    end = 2 * SESSION
    reach = (end + duration + SESSION) / SESSION  # sessions
    sc = _scenario([0.5, 1.0, 2.0, reach - 1e-9, reach, reach + 1e-9, 4.0, 40.0, 300.0])
    series = _series(int(end / 10.0) + 1, 10.0)
    trades = pd.DataFrame({"t": [5.0, 2390.0], "qty": [100.0, -50.0], "kind": ["noise", "dealer"]})
    cut = _Evidence(series, trades, sc)
    whole = _Evidence(series, trades, sc)
    days = [p.expiry_days for d in sc.dealers for p in d.positions] + [1.5]
    whole.expiries = np.unique(np.array(days) * SESSION).tolist()
    assert len(cut.expiries) < len(whole.expiries), "the far expiries are cut"
    assert cut.expiries == whole.expiries[: len(cut.expiries)], "a prefix of the sorted expiries"
    for i0 in [*range(0, len(series), 7), len(series) - 1]:
        for side, direction, level in (
            ("call", 1.0, 102.0),
            ("put", -1.0, 98.0),
            ("flip", 1.0, 100.0),
        ):
            got = cut.measure(i0, side, direction, level)
            assert got == whole.measure(i0, side, direction, level), (
                f"window at sample {i0}, {side}"
            )


def test_the_runs_opening_columns_give_the_open_interest_and_evidence_of_the_scenario():
    """The result reads the dealers' opening positions from the columns the run kept when
    it booked them (``Simulation.opening_positions``), not from the scenario's 10,000
    pydantic objects again: the same open interest table, to the bit (pin metrics), the
    same evidence expiries and hidden-lines flag, with a hidden (OTC) line and without."""
    from mmsim.engine import Simulation
    from mmsim.position_columns import PositionColumns

    for hidden in (False, True):
        sc = _scenario([1.0, 2.0, 0.5, 40.0, 1.0, 2.5])
        if hidden:
            sc = load_scenario(sc.model_dump() | {"name": "hidden"},
                               overrides={"dealers.1.positions.0.visible": False})  # fmt: skip
        sim = Simulation(sc, 3)
        result = sim.run()
        ps = [p for d in sc.dealers for p in d.positions]
        want = PositionColumns.of(ps)
        got = sim.opening_positions
        for name in ("strike", "expiry_days", "qty", "multiplier", "is_call", "visible"):
            assert np.array_equal(getattr(got, name), getattr(want, name)), name
        options = result.option_trades[["strike", "expiry", "qty"]]
        end = sc.clock.duration
        for cut in (None, end):
            pd.testing.assert_frame_equal(
                open_interest(sc, options, expiring_by=cut, opening=got),
                open_interest(sc, options, expiring_by=cut),
                check_exact=True,
            )
        kept = _Evidence(result.series, result.trades, sc, (), got)
        read = _Evidence(result.series, result.trades, sc)
        assert kept.expiries == read.expiries, "evidence expiries"
        assert kept.hidden == read.hidden == hidden, f"hidden lines: {hidden}"


def test_the_evidence_sums_the_dealers_flow_other_only_when_an_expiry_is_in_a_window():
    """``expiry_hedge``: the change of the dealers' summed ``flow_other`` (shares) across
    each expiry in the window, the columns summed when a window first holds an expiry
    (a 10,000-line book's run without one never sums them) and then the eager sum's
    values exactly."""
    end = 2 * SESSION
    sc = _scenario([0.5, 1.0, 40.0])
    series = _series(int(end / 10.0) + 1, 10.0)
    series["b.flow_other"] = series["b.flow_other"] ** 1.5  # not a multiple of a's
    trades = pd.DataFrame({"t": [5.0], "qty": [100.0], "kind": ["noise"]})
    ev = _Evidence(series, trades, sc)
    assert ev.expiry_hedge(700.0, 1100.0) == 0.0, "no expiry in (700, 1100] s"
    assert ev._flow_other is None, "summed before any window held an expiry"
    total = series[["a.flow_other", "b.flow_other"]].sum(axis=1).to_numpy()
    t = series["t"].to_numpy()
    want = 0.0
    for expiry in (0.5 * SESSION, SESSION):  # 600 and 1,200 s (1.5: the event's, 1,800 s)
        before = max(np.searchsorted(t, expiry, side="left") - 1, 0)
        after = min(np.searchsorted(t, expiry, side="right"), t.size - 1)
        want += float(total[after] - total[before])
    assert ev.expiry_hedge(0.0, 1300.0) == want, "expiries at 600 and 1,200 s"
    assert np.array_equal(ev._flow_other, total), "the eager sum's values"
