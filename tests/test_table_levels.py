"""A levels sample read again from the last sample's tables in one compiled call
(``Sampler._tables_again``, :func:`mmsim.table_levels.levels_from_tables`): the same row,
bit for bit, as the long way (``Sampler.update_levels`` finding each table and calling
each kernel), whatever changed in between.

Settings are not shipped ones: a synthetic 1,500-line book (vol 26%, skew -0.22, news
vol 45%: spot leaves wall boxes; band 40 shares, levels every 2 minutes) for a day and a
half without customers (the profile table's span ends) and a day with customers adding
lines (each trade a new book version: the tables are found anew).
"""

from __future__ import annotations

import pytest

import mmsim
from benchmarks import cases
from mmsim.engine import Simulation
from mmsim.sampler import Sampler


def _scenario(customers: bool) -> dict:
    sc = cases.book_scenario(1_500, 40.0, 1.0 if customers else 1.5, seed=11)
    sc["vol"] = {"atm": 0.26, "skew": -0.22}
    sc["news"] = {"vol": 0.45, "dt": 1.0}  # spot leaves wall boxes; 1.5 days: tables expire
    sc["record"] = {"levels_every": 120.0}
    if customers:
        sc["customers"] = [
            {"segment": "retail_call_buyers", "rate": 0.004, "expiry_days": [3, 30],
             "size": {"mean": 3}},
            {"segment": "put_hedgers", "rate": 0.002, "expiry_days": [30],
             "size": {"mean": 5}, "otc_fraction": 0.3},
        ]  # fmt: skip
    return sc


def _run(sc: dict, seed: int, again: bool, monkeypatch) -> tuple:
    with monkeypatch.context() as m:
        if not again:  # the long way at every levels sample
            m.setattr(Sampler, "_tables_again", lambda self, S, t: False)
        sim = Simulation(mmsim.load_scenario(sc), seed)
        return sim, sim.run()


@pytest.mark.parametrize("customers", [False, True])
def test_levels_read_again_from_the_tables_equal_the_long_way_bit_for_bit(customers, monkeypatch):
    """Seeds 1-2: every series column, the trades and the episodes equal bit
    for bit with and without :meth:`~mmsim.sampler.Sampler._tables_again`, and so do the
    diagnostics counting table flips, box rows and table GEX (the short way counts as
    the long one); the short way served 90% of the levels samples without customers, a quarter
    with them (the test tests it), and then the long way others too (new book versions)."""
    sc = _scenario(customers)
    for seed in (1, 2):
        (sim, a), (ref, b) = (_run(sc, seed, again, monkeypatch) for again in (True, False))
        case = f"customers={customers}, seed {seed}"
        assert a.series.equals(b.series), f"{case}: a series column differs"
        assert a.trades.equals(b.trades) and a.episodes.equals(b.episodes), case
        counts = [(s.book.profile_flips, s.book.profile_misses, s.sampler.wall_box.held,
                   s.sampler.gex_table, s.sampler.gex_held) for s in (sim, ref)]  # fmt: skip
        assert counts[0] == counts[1], f"{case}: diagnostics {counts[0]} vs {counts[1]}"
        samples = len(a.series) // 12 + 1  # levels every 120 s, rows every 10 s
        again = sim.sampler.rows_again
        assert ref.sampler.rows_again == 0, case
        least = 0.25 if customers else 0.9  # (a customer trade every ~3 minutes)
        assert again >= least * samples, f"{case}: {again} of {samples} samples read again"
        if customers:
            assert again <= samples - 10, f"{case}: the book changed, yet {again} read again"
