"""A book opened from a real chain has expiries that no list of the scenario names (the
SPX 0DTE lines settle at the first close): the figures' expiry marks and explain's
counterfactual "the expiry rolled a session" must know them.

The runs: the SPX scenario's 2022-02-04 chain (+-3%, expiries within 3 sessions) on
sessions of 1,800 s (the 0DTE lines expire at t = 1,800 s), no customers, no pension:
the scenario's own lists name no expiry at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mmsim
from mmsim import plots

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios/spx_2022-02-07.yaml"
SESSION = 1800.0  # s: the 0DTE lines' expiry
SHORT = {
    "clock.session_seconds": SESSION,
    "clock.days": 2.0,
    "pensions": [],
    "customers": [],
    "book.expiries_within": 3,
    "book.moneyness": [-0.03, 0.03],
    "dealers.0.band": 20000,
    "market.impact.lam": 2.0e-5,
    "record.every": 10.0,
    "record.levels_every": 300.0,
}


@pytest.fixture(scope="module")
def run3():
    """Seed 3: a call wall break at 3,160 s after the 0DTE expiry's hedge unwind (the
    street buys back ~1.4M units of the expired calls' hedge at 1,800 s: +28 points)."""
    return mmsim.run(SCENARIO, seed=3, overrides=SHORT)


def _marks(ax) -> list[float]:
    """x of the vertical lines labelled or styled as expiry marks (purple dashed)."""
    return [
        float(line.get_xdata()[0])
        for line in ax.get_lines()
        if line.get_linestyle() == "--" and line.get_color() == "purple"
    ]


def test_the_run_knows_the_chain_expiry_and_a_saved_run_too(run3, tmp_path):
    """The scenario's lists name no expiry; the run's calendar holds the 0DTE close
    (1,800 s) and not the Wednesday expiry (5,400 s, after the 3,600 s run); it is saved
    with the run, and a run saved without it (an older mmsim) rebuilds it from the chain."""
    assert run3.scenario.expiry_days() == [], "no list of the scenario names an expiry"
    assert run3.expiries() == [SESSION]
    loaded = mmsim.load_result(run3.save(tmp_path / "run"))
    assert loaded.expiries() == [SESSION], "from meta.json"
    meta = json.loads((tmp_path / "run/meta.json").read_text())
    del meta["expiries"]
    (tmp_path / "run/meta.json").write_text(json.dumps(meta))
    assert mmsim.load_result(tmp_path / "run").expiries() == [SESSION], "rebuilt"


def test_figures_mark_the_chain_expiry(run3):
    """price.png and dealers.png mark the 0DTE close (before: no mark, the scenario's
    lists hold no expiry); the heatmap is drawn for a 1-session run holding an expiry."""
    x = 1.0  # the session clock's x of 1,800 s: one session
    fig = plots.plot_run(run3)
    assert _marks(fig.axes[0]) == [x] and _marks(fig.axes[1]) == [x], "price and flow panels"
    assert "expiry" in fig.axes[0].get_legend_handles_labels()[1]
    fig = plots.plot_dealers(run3)
    assert all(_marks(ax) == [x] for ax in fig.axes[:4]), "every dealers panel"
    one = mmsim.run(SCENARIO, seed=3, overrides={**SHORT, "clock.days": 1.0})
    assert plots.wants_heatmap(one), "a 1-session run whose 0DTE lines expire at its end"
