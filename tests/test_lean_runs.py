"""A sweep's run builds only what its row needs; long runs keep no second copy of their
recorded output. Rows must be bit-identical to full runs' metrics."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmsim
from mmsim.engine import Simulation
from mmsim.episodes import _runs_beyond
from mmsim.record import Log, timeout_clock
from mmsim.scenario import load_scenario
from mmsim.sweep import swept_columns
from mmsim.tables import TRADE_LOG_COLUMNS, trade_table

ROOT = Path(__file__).resolve().parents[1]
HEADS = ("point", "replicate", "seed", "run_id", "status", "error")
# shipped scenarios cut short: wall breaks and flip crossings (flip_crossing), the limit
# order book with dry-out episodes (liquidity_dry_out), three dealers (multi_dealer_bands)
CASES = [
    ("flip_crossing", 0.5),
    ("liquidity_dry_out", 0.6),
    ("multi_dealer_bands", 0.1),
]


def _same(a: float, b: float) -> bool:
    """Bit-identical floats (NaN equal to NaN)."""
    return (math.isnan(a) and math.isnan(b)) or a == b


def _assert_rows_are_full_runs(table: pd.DataFrame, path: Path, overrides: dict) -> None:
    metric_cols = [c for c in table.columns if c not in HEADS and c not in swept_columns(table)]
    for row in table.to_dict("records"):
        assert row["status"] == "ok", row["error"]
        full = mmsim.run(path, seed=row["seed"], overrides=overrides).metrics
        differ = [k for k in full if not _same(row[k], full[k])]
        assert not differ, (
            f"{path.stem} seed {row['seed']}: row differs from a full run in {differ}"
        )
        extra = [k for k in metric_cols if k not in full and not math.isnan(row[k])]
        assert not extra, f"{path.stem}: row has metrics a full run lacks: {extra}"


@pytest.mark.parametrize(("name", "days"), CASES)
def test_sweep_rows_are_bit_identical_to_full_runs(name, days):
    path = ROOT / "scenarios" / f"{name}.yaml"
    table = mmsim.sweep(
        path, {"clock.days": [days]}, seeds=[1, 2], executor="serial", progress=False
    )
    _assert_rows_are_full_runs(table, path, {"clock.days": days})
    if name != "multi_dealer_bands":  # the episodes path is exercised
        assert table["n_episodes"].sum() > 0, f"{name} at {days} d had no episode to compare"


def test_lean_rows_are_the_same_on_every_executor():
    path = ROOT / "scenarios" / "flip_crossing.yaml"
    grid = {"clock.days": [0.5], "dealers.0.band": [500, 2000]}
    tables = {
        ex: mmsim.sweep(path, grid, seeds=[3], executor=ex, workers=2, progress=False)
        for ex in ("serial", "processes", "dask")
    }
    for ex in ("processes", "dask"):
        assert tables[ex].equals(tables["serial"]), f"{ex} rows differ from serial rows"
    first = tables["serial"].iloc[[0]]
    _assert_rows_are_full_runs(first, path, {"clock.days": 0.5, "dealers.0.band": 500})


def test_a_lean_run_skips_the_trade_tables_only():
    path = ROOT / "scenarios" / "multi_dealer_bands.yaml"
    sc = load_scenario(path, overrides={"clock.days": 0.1})
    lean = Simulation(sc, 4).run(tables=False)
    full = Simulation(sc, 4).run()
    assert lean.trades.empty and lean.option_trades.empty and lean.accounts.empty
    assert len(full.trades) and len(full.option_trades), "the full run has its tables"
    pd.testing.assert_frame_equal(lean.series, full.series, check_exact=True)
    pd.testing.assert_frame_equal(lean.episodes, full.episodes, check_exact=True)
    assert lean.meta["tables"] == "metrics" and "tables" not in full.meta


def test_the_series_table_is_the_recorders_buffer_not_a_copy():
    sc = load_scenario(ROOT / "scenarios" / "long_gamma.yaml", overrides={"clock.days": 0.05})
    sim = Simulation(sc, 1)
    result = sim.run()
    assert np.shares_memory(result.series["price"].to_numpy(), sim.recorder.data), (
        "Result.series copies the recorded series (150 MB more at 250 days)"
    )


def test_the_chunked_log_returns_every_row_across_chunk_boundaries():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(3 * Log.MAX_CHUNK + 17, 3))
    log = Log(["a", "b", "c"], capacity=5)
    for r in rows.tolist():
        log.append(*r)
    assert log.n == len(rows)
    np.testing.assert_array_equal(log.to_frame().to_numpy(), rows)
    np.testing.assert_array_equal(log.column("b"), rows[:, 1])
    held = log._base.shape[1] + sum(c.shape[0] for c in log._full) + log._chunk.shape[0]
    assert held - len(rows) <= Log.MAX_CHUNK, "more than one chunk of slack"


def test_extend_equals_appending_row_by_row_across_chunk_boundaries():
    """The fast path hands its fills over in blocks of any size (``Log.extend``)."""
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(2 * Log.MAX_CHUNK + 40, 2))
    log = Log(["a", "b"], capacity=3)
    i = 0
    for k in (0, 1, 2, 7, Log.MAX_CHUNK + 5, 1):  # blocks smaller and larger than a chunk
        log.extend(rows[i : i + k])
        i += k
    log.extend(rows[i:])
    np.testing.assert_array_equal(log.to_frame().to_numpy(), rows)


def _resident_kb(address: int) -> int:
    """``Rss`` (kB) of this process's memory map holding ``address`` (/proc/self/smaps)."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= address < hi
        elif inside and head == "Rss:":
            return int(line.split()[1])
    raise AssertionError(f"no map holds {address:#x}")


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="Linux /proc only")
def test_a_log_chunk_of_a_megabyte_or_more_is_resident_before_its_first_row():
    """A chunk of 1 MB or more is its own anonymous map, mapped at once (``MAP_POPULATE``:
    rows then land in resident pages, not one page fault per 4 kB on the kernel's fills):
    an 8 MB chunk (131,072 rows of 8 columns) is resident in full, within 64 kB, before
    anything is written; a chunk under 1 MB comes from numpy's allocator as before."""
    from mmsim.record import _chunk

    big = _chunk(1 << 17, 8)
    assert big.shape == (1 << 17, 8) and big.flags.writeable and big.flags.c_contiguous
    assert _resident_kb(big.ctypes.data) >= 8 * 1024 - 64, "pages not mapped at once"
    small = _chunk(1 << 10, 8)
    assert small.base is None and small.shape == (1 << 10, 8)


def test_a_read_log_holds_its_rows_once_and_its_tables_share_them():
    """Reading a column gathers the chunks into one block of columns; every column read
    then is a view of it, and the trade table's number columns share its memory (a
    250-day run's 1.7 million trades held once, not twice) and can still be edited in
    place. Rows appended after a read are gathered at the next; the views handed out
    before keep their rows."""
    rng = np.random.default_rng(2)
    rows = rng.normal(size=(Log.MAX_CHUNK + 300, len(TRADE_LOG_COLUMNS)))
    rows[:, 1], rows[:, 2] = rng.integers(0, 2, len(rows)), 0.0  # account, booking
    log = Log(list(TRADE_LOG_COLUMNS), capacity=64)
    log.extend(rows[:1000])
    early = log.column("qty")
    log.extend(rows[1000:])
    table = trade_table(log, ["desk", "noise"], {0: "dealer", 1: "noise"})
    assert not log._full and log._i == 0, "chunks left after a read"
    for name in ("t", "qty", "price_before", "price_after", "exec_price", "cost"):
        j = TRADE_LOG_COLUMNS.index(name)
        np.testing.assert_array_equal(table[name].to_numpy(), rows[:, j])
        assert np.shares_memory(table[name].to_numpy(), log.column(name)), name
    np.testing.assert_array_equal(early, rows[:1000, 3])  # the block before stays intact
    assert list(table["agent"]) == [("desk", "noise")[int(a)] for a in rows[:, 1]]
    table.loc[0, "qty"] = 5.0  # a user's edit of Result.trades in place works
    assert table["qty"].iloc[0] == 5.0


def test_the_sample_clock_is_the_chained_timeouts_clock_across_blocks():
    """The fast path's sample instants: each the previous clock plus its delay, in float
    arithmetic, as the recorder's chained timeouts reach them (not the grid times
    themselves), computed a block of Python floats at a time."""
    times = np.cumsum(np.random.default_rng(3).uniform(0.1, 10.0, 2_500)) * 1.0000001
    clock = [float(times[0])]
    for t in times[1:].tolist():
        clock.append(clock[-1] + (t - clock[-1]))
    for block in (1, 7, 1024, 1 << 16):
        np.testing.assert_array_equal(timeout_clock(times, block), np.array(clock))
    assert timeout_clock(np.array([])).size == 0


def _runs_beyond_reference(t, price, level, direction, duration):
    """The sample-by-sample loop the vectorized search replaced (test oracle)."""
    out, i, n = [], 1, price.size
    while i < n:
        ref = level[i - 1]
        crossed = direction * (price[i] - ref) > 0.0 >= direction * (price[i - 1] - ref)
        if math.isnan(ref) or not crossed:
            i += 1
            continue
        j = i
        while j < n and direction * (price[j] - ref) > 0.0:
            j += 1
        if t[j - 1] - t[i] >= duration:
            out.append((i, j - 1, ref))
        i = j
    return out


@pytest.mark.parametrize("seed", range(6))
def test_stretches_beyond_a_level_match_the_sample_by_sample_loop(seed):
    rng = np.random.default_rng(seed)
    n = 3000
    t = np.arange(n) * 10.0
    price = 100.0 + np.cumsum(rng.normal(0.0, 0.05, n))
    # a level that steps and drifts, with gaps (no wall) and exact ties with price
    level = 100.0 + np.repeat(rng.normal(0.0, 0.5, n // 100), 100)
    level[rng.random(n) < 0.05] = np.nan
    ties = rng.random(n) < 0.02
    level[ties] = price[ties]
    for direction in (1.0, -1.0):
        for duration in (0.0, 60.0, 900.0):
            got = _runs_beyond(t, price, level, direction, duration)
            want = _runs_beyond_reference(t, price, level, direction, duration)
            assert got == want, f"seed {seed}, direction {direction}, duration {duration} s"
    assert _runs_beyond_reference(t, price, level, 1.0, 0.0), "no stretch in the test data"


def test_a_long_table_is_saved_in_row_groups_and_reads_back_exactly(tmp_path):
    from mmsim.result import ROW_GROUP, _write_parquet

    n = 2 * ROW_GROUP + 5
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "t": np.arange(n) * 0.5,
            "agent": np.array(["desk", "noise", "pool"], dtype=object)[rng.integers(0, 3, n)],
            "qty": rng.normal(size=n),
        }
    )
    frame.loc[7, "qty"] = np.nan
    _write_parquet(frame, tmp_path / "x.parquet")
    back = pd.read_parquet(tmp_path / "x.parquet")
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    import pyarrow.parquet as pq

    assert pq.ParquetFile(tmp_path / "x.parquet").num_row_groups == 3


def test_a_metrics_only_result_is_not_saved(tmp_path):
    result = mmsim.run(
        ROOT / "scenarios" / "long_gamma.yaml", overrides={"clock.days": 0.01}, tables=False
    )
    with pytest.raises(mmsim.errors.ResultError, match="metrics-only"):
        result.save(tmp_path / "r")
    assert not (tmp_path / "r").exists()
