"""The series sampler (``mmsim.sampler``): rows filled in compiled batches equal, bit for
bit, the row-by-row Python sampler they replaced (kept here as the oracle), and its
compiled parts equal the numpy and ``OptionBook`` computations they reproduce.

Oracles: ``_OracleSim`` fills each row with the pre-batch Python code (``series_greeks``,
numpy sums, ``OptionBook.walls`` / ``gex_views_at`` / ``strike_gex`` / ``flips``) on the
simpy path; the fast path fills the same rows from the kernel's recorded states in
batches (:meth:`Sampler.fill`). Settings are not shipped ones: three and four dealers
(numpy's summation order), mixed calls and puts over several strikes, OTC lines, a line
expiring mid-run (the unsettled value at the expiry sample), levels every 4 samples.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import mmsim
from mmsim.book import OptionBook
from mmsim.engine import LEVEL_COLUMNS, STATE_COLUMNS, Simulation
from mmsim.level_kernels import levels_row
from mmsim.npsum import np_sum
from mmsim.scenario import load_scenario
from mmsim.vol import VolSurface


def _pos(kind: str, strike: float, days: float, qty: float, visible: bool = True) -> dict:
    return {"type": kind, "strike": strike, "expiry_days": days, "qty": qty, "visible": visible}


def _scenario(seed: int, mode: str, n_dealers: int, tick: float = 0.0) -> dict:
    books = [
        [_pos("call", 100, 252, 2000), _pos("put", 95, 21, -800)],
        [_pos("call", 105, 5, -1500), _pos("put", 100, 0.06, 300)],  # expires at 1404 s
        [_pos("put", 90, 63, 1200, visible=False), _pos("call", 100, 21, 400)],
        [_pos("call", 110, 10, -700)],
    ]
    dealers = [
        {"name": f"d{i}", "trigger": "price", "band": [20, 5, 60, 0][i], "positions": books[i]}
        for i in range(n_dealers)
    ]
    return {
        "seed": seed,
        "clock": {"days": 0.1},
        "market": {
            "S0": 100.0,
            "impact": {"model": "linear", "lam": 5.0e-5},
            "half_spread": 0.01,
            "tick": tick,
        },
        "vol": {"atm": 0.25, "skew": -0.2},
        "news": {"vol": 0.3, "dt": 1.0},
        "noise": {"rate": 0.2, "mean_size": 300},
        "dealers": dealers,
        "record": {"every": 9.0, "levels_every": 36.0},
        "engine": {"fast_path": mode},
    }


class _OracleSim(Simulation):
    """Fills every series row with the row-by-row Python sampler of before the batches."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        nh = self.book.n_holders
        self._g = np.zeros((2, 5, nh))
        self._cur = 0
        self._fl = np.zeros((4, nh))
        self._fs: tuple[float, float, float] | None = None
        self._lev = np.full(len(LEVEL_COLUMNS), np.nan)
        self._exp = set(self.expiration.calendar)

    def _sample(self, t: float, row: np.ndarray) -> None:
        from mmsim.sampler import accumulate_flow

        market, book, vol = self.market, self.book, self.vol
        S = market.mid
        greeks = self._g[self._cur]
        gex_true, gex_visible = book.series_greeks(S, t, vol, greeks)
        hold, gam, val = greeks[0], greeks[1], greeks[4]
        level = vol.level
        if self._fs is not None:
            S0, t0, level0 = self._fs
            year = self.scenario.clock.year_seconds
            accumulate_flow(self._g[1 - self._cur], greeks, S - S0, t - t0, year,
                            level - level0, self._fl)  # fmt: skip
        self._fs = (S, t, level)
        self._cur = 1 - self._cur
        n = len(self.dealers)
        d_shares = self.ledger.shares[self._dealer_accounts]
        total_shares = d_shares.sum()
        hedge = sum(d.hedge_volume for d in self.dealers)
        if self.recorder.filled % self.sampler.levels_stride == 0:
            self._lev[:] = _oracle_levels(book, S, t, vol)
        flip = self._lev[0]
        regime = 0.0 if math.isnan(flip) else (1.0 if S >= flip else -1.0)
        row[: len(STATE_COLUMNS)] = (market.price, vol.level, hold[:n].sum() + total_shares,
                                     gam[:n].sum(), total_shares, hedge, market.volume - hedge,
                                     gex_true, gex_visible, regime, S)  # fmt: skip
        k = len(STATE_COLUMNS) + len(LEVEL_COLUMNS)
        row[len(STATE_COLUMNS) : k] = self._lev
        cash = self.ledger.cash
        due = self.sampler._unsettled_value(S, t) if t in self._exp else None
        for i, d in enumerate(self.dealers):
            pnl = cash[d.account] + d_shares[i] * S + val[i] + (due[i] if due is not None else 0.0)
            row[k + 8 * i : k + 8 * i + 8] = (hold[i] + d_shares[i], gam[i], d_shares[i], pnl,
                                              *self._fl[:, i])  # fmt: skip


def _oracle_levels(book: OptionBook, S: float, t: float, vol: VolSurface) -> list[float]:
    """Flips and walls from the book's own (numpy) methods, exact flips."""

    def f(x: float | None) -> float:
        return np.nan if x is None else float(x)

    def at_wall(wall: float | None) -> tuple[float, float, float]:
        if wall is None:
            return np.nan, np.nan, np.nan
        true, visible = book.gex_views_at(wall, t, vol)
        return true, visible, book.strike_gex(S, t, vol, wall, "true")

    cw, pw = book.walls(S, t, vol, "true")
    cwv, pwv = book.walls(S, t, vol, "visible")
    flips = [f(x) for x in book.flips(S, t, vol)]
    return [*flips, f(cw), f(pw), f(cwv), f(pwv), *at_wall(cwv)[:2], *at_wall(pwv)[:2],
            at_wall(cwv)[2], at_wall(pwv)[2]]  # fmt: skip


@pytest.mark.parametrize(
    ("seed", "n_dealers", "tick"), [(1, 3, 0.01), (2, 4, 0.0), (3, 3, 0.05), (4, 1, 0.0)]
)
def test_batched_rows_equal_the_row_by_row_sampler_bit_for_bit(seed, n_dealers, tick):
    """0.1 day (2,340 s, 261 rows) of a non-shipped book: every series value of the fast
    path's batched rows equals the row-by-row oracle's on the simpy path, exactly (the
    two paths give the same run: tests/test_fastpath.py), published prices on a tick
    or not."""
    fast = Simulation(load_scenario(_scenario(seed, "on", n_dealers, tick)), seed)
    assert fast.hot is not None, "the fast path must run (batched rows)"
    oracle = _OracleSim(load_scenario(_scenario(seed, "off", n_dealers, tick)), seed)
    a, b = fast.run().series, oracle.run().series
    assert len(a) == len(b) == 261
    assert a.columns.tolist() == b.columns.tolist()
    x, y = a.to_numpy(), b.to_numpy()
    same = (x == y) | (np.isnan(x) & np.isnan(y))
    bad = [a.columns[j] for j in np.flatnonzero(~same.all(axis=0))]
    assert not bad, f"columns differing from the row-by-row sampler: {bad}"
    assert np.isfinite(a["flip_visible"]).any() or n_dealers == 1, "a flip was walked"
    if tick:
        assert (a["price"] != a["mid"]).any(), "prices on the tick differ from the mid"
    assert (np.abs(x - y) == 0.0)[~np.isnan(x)].all()


def test_np_sum_is_numpys_summation_order_bit_for_bit():
    """Sizes 0-300 and large ones (the pairwise split), magnitudes 1e-8 to 1e16 and
    signed zeros: ``np_sum(a, n)`` has the very bits of ``a.sum()``."""
    rng = np.random.default_rng(0)
    for n in [*range(0, 300), 511, 512, 1029, 5000]:
        for _ in range(3):
            a = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 16, n)
            b = rng.choice([-0.0, 0.0, 1e16, 1.0, -1e16, 3.0], n)
            for v in (a, b):
                got, want = np.float64(np_sum(v, n)), v.sum()
                assert got.tobytes() == want.tobytes(), f"n={n}: {got!r} != {want!r}"


@pytest.mark.parametrize("seed", range(8))
def test_levels_row_equals_the_books_walls_flips_and_strike_gex_bit_for_bit(seed):
    """Random books (1-40 lines: calls and puts, strikes on a $5 grid and a few off it,
    OTC lines, lines expired at the sample, one view of one sign or both signs) at
    several spots and clocks: the 12 level columns equal the book's methods exactly."""
    rng = np.random.default_rng(seed)
    book = OptionBook(3, delta_table="off")
    vol = VolSurface(0.2 + 0.1 * rng.random(), skew=-0.3 * rng.random())
    n = int(rng.integers(1, 41))
    strikes = np.where(rng.random(n) < 0.85, 5.0 * rng.integers(16, 25, n), rng.uniform(80, 120, n))
    sign = 1.0 if seed % 4 == 0 else None  # one-signed books have no flip to walk
    qty = rng.integers(1, 500, n) * (sign if sign else rng.choice([-1.0, 1.0], n))
    book.add_many(strikes, 23_400.0 * rng.uniform(0.02, 30.0, n), rng.random(n) < 0.5, qty,
             rng.integers(0, 3, n), rng.random(n) < 0.8)  # fmt: skip
    from mmsim.book import _FLIP_GRID, _FLIP_MID

    for S, t in [(100.0, 0.0), (93.7, 600.0), (104.2, 5000.0), (100.0, 23_400.0)]:
        lines, k = book._live_lines(t)
        out = np.full(12, -7.0)
        levels_row(S, t, book.year_seconds, lines, k, *book._surface(vol), _FLIP_GRID,
                   _FLIP_MID, True, out)  # fmt: skip
        want = np.array(_oracle_levels(book, S, t, vol))
        same = (out == want) | (np.isnan(out) & np.isnan(want))
        assert same.all(), f"S={S} t={t}: {out} != {want}"


def test_result_tables_are_built_when_first_read_and_equal_the_eager_tables(tmp_path):
    """``Result.trades``, ``option_trades`` and ``accounts`` arrive as builders of what the
    run held at assembly: nothing is built by ``run``; once read, each equals the table
    built from the run's log at once, exactly; a run continued after assembly does not
    leak later trades into it; pickling and saving build them."""
    import pickle

    from mmsim.tables import trade_table

    sc = load_scenario(
        {**_scenario(5, "off", 2), "customers": [{"segment": "retail_call_buyers", "rate": 0.05}]}
    )
    sim = Simulation(sc, 5)
    sim.advance(600.0)
    res = sim._result()
    lazy = [k for k in ("_trades", "_option_trades", "_accounts") if callable(res.__dict__[k])]
    assert len(lazy) == 3, "the engine hands the trade tables over unbuilt"
    n = sim.trade_log.n
    eager = trade_table(sim.trade_log, list(sim.ledger.names), dict(sim._kinds))
    sim.advance(1200.0)  # the run goes on: more trades are logged
    assert sim.trade_log.n > n
    pd.testing.assert_frame_equal(res.trades, eager, check_exact=True)
    assert (
        len(res.option_trades) > 0 and res.option_trades["segment"].iloc[0] == "retail_call_buyers0"
    )
    assert res.accounts[["shares", "cash"]].sum().abs().max() < 1e-6, "conservation at assembly"
    again = sim._result()
    back = pickle.loads(pickle.dumps(again))
    assert not any(callable(v) for v in back.__dict__.values() if not isinstance(v, dict))
    for name in ("trades", "option_trades", "accounts"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(again, name), check_exact=True)
    assert again.equals(mmsim.load_result(again.save(tmp_path / "r")))
