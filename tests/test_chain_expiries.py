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

import numpy as np
import pytest

import mmsim
from mmsim import plots
from mmsim.chains import scenario_lines
from mmsim.cli import main
from mmsim.explain import explain
from mmsim.removals import Removal, candidates, without

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
    fig = plots.plot_run(run3)
    assert fig.axes[0].get_xlim() == (0.0, 2.0), "a mid-run expiry: the run's own x range"
    assert not [t for t in fig.axes[0].texts if t.get_text().startswith("expiry")]


def test_an_expiry_at_the_runs_end_is_drawn_inside_the_panels_and_named(tmp_path):
    """A 1-session run whose 0DTE lines expire at its end (the SPX close at 16:00): the
    mark lay on the axes' right frame, out of sight (before: x limits (0, 1)). The x axis
    now runs 2% past it, the mark is inside every panel of price.png and dealers.png, and
    the price panel names it beside the mark, in the room past the close ('expiry 30': a
    compressed 30-min session's clock); the figure stays readable (no text overlaps)."""
    from test_plots import readable

    one = mmsim.run(SCENARIO, seed=3, overrides={**SHORT, "clock.days": 1.0})
    for fig in (plots.plot_run(one), plots.plot_dealers(one)):
        panels = [ax for ax in fig.axes if ax.get_lines()]
        for ax in panels:
            assert _marks(ax) == [1.0]
            lo, hi = ax.get_xlim()
            assert lo == 0.0 and hi == pytest.approx(1.02), "room past the close"
        readable(fig)
    fig = plots.plot_run(one)
    named = [t for t in fig.axes[0].texts if t.get_text() == "expiry 30"]
    assert len(named) == 1 and 1.0 < named[0].get_position()[0] < 1.02, "in the room"


def test_roll_moves_the_chain_lines_of_one_expiry():
    """book.roll: [1] moves the lines expiring at session 1 to session 2, each with its
    strike, contracts and IV; the other lines are unchanged."""
    sc = mmsim.load_scenario(SCENARIO, overrides=SHORT)
    rolled = mmsim.load_scenario(SCENARIO, overrides={**SHORT, "book.roll": [1]})
    a, b = scenario_lines(sc.book), scenario_lines(rolled.book)
    first = a["sessions"].to_numpy() == 1.0
    assert first.sum() > 50 and (a["sessions"] == 3.0).sum() > 50, "a real test"
    assert (b["sessions"] != 1.0).all()
    assert np.array_equal(b["sessions"].to_numpy(), np.where(first, 2.0, a["sessions"]))
    for col in ("strike", "is_call", "qty", "iv"):
        assert np.array_equal(a[col].to_numpy(), b[col].to_numpy()), col
    sim = mmsim.engine.Simulation(rolled, seed=3)
    assert sim.expiration.calendar == [2 * SESSION], "they settle at the second close"


def test_rolling_an_already_rolled_expiry_rolls_it_again():
    """A scenario whose book.roll moved the 0DTE lines to session 2 (3 sessions): explain's
    'expiry rolled a session' for the close of session 2 rolls them on to 3, with the
    session-3 lines (before: book.roll stayed [1], the replay was the run itself; the
    calendar kept 3,600 s). Several expiries roll earliest first whatever the removals'
    order (a frozenset's), so none of them is left expiring."""
    base = mmsim.load_scenario(SCENARIO, overrides={**SHORT, "clock.days": 3.0})
    sc = mmsim.load_scenario(SCENARIO, overrides={**SHORT, "clock.days": 3.0, "book.roll": [1]})
    first = scenario_lines(base.book)["sessions"].to_numpy() == 1.0
    roll = [c for c in candidates(sc, 2 * SESSION - 100.0) if c.cause == "expiration_melt"]
    assert [c.key for c in roll] == [f"expiry:{2 * SESSION:g}"], "the rolled lines' close"
    rolled = without(sc, roll)
    assert rolled.book.roll == [1.0, 2.0]
    assert (scenario_lines(rolled.book)["sessions"].to_numpy()[first] == 3.0).all()
    assert mmsim.engine.Simulation(sc, 3).expiration.calendar == [2 * SESSION, 3 * SESSION]
    assert mmsim.engine.Simulation(rolled, 3).expiration.calendar == [3 * SESSION]
    both = [Removal(f"expiry:{x * SESSION:g}", "expiration_melt", "") for x in (2, 1)]
    for order in (both, both[::-1]):
        assert without(base, order).book.roll == [1.0, 2.0], [r.key for r in order]
    assert mmsim.engine.Simulation(without(base, both), 3).expiration.calendar == [3 * SESSION]


@pytest.mark.parametrize(
    ("roll", "why"),
    [
        ("[2]", "session 2 is no expiry of the book's lines"),
        ("[1,1]", "session 1 is no expiry of the book's lines after rolling 1"),
    ],
)
def test_bad_roll_is_one_line_naming_the_field(tmp_path, capsys, roll, why):
    """A session no line expires at, or none expires at any more (rolled away by an
    earlier entry): exit 2, one line naming book.roll and the file (the chain is read at
    load time)."""
    text = SCENARIO.read_text().replace("  dealers: [0]\n", f"  dealers: [0]\n  roll: {roll}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("chains/", f"{ROOT}/scenarios/chains/"))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(bad) in err and "book.roll" in err and why in err, err


def test_explain_rolls_the_chain_expiry_that_caused_a_break(run3):
    """The call wall break after the 0DTE close: the expiry is a candidate (before: only
    news, no list names it) whose removal rolls the chain's session-1 lines (book.roll),
    and rolled, the break does not happen: the expiration melt is its primary cause."""
    sc = run3.scenario
    breaks = run3.episodes[run3.episodes["kind"] == "call_wall_break"]
    assert len(breaks) == 1 and breaks["start"].iloc[0] > SESSION, breaks
    start = float(breaks["start"].iloc[0])
    roll = [c for c in candidates(sc, start) if c.cause == "expiration_melt"]
    assert [c.key for c in roll] == [f"expiry:{SESSION:g}"]
    assert without(sc, roll).book.roll == [1.0]
    e = explain(run3, progress=False)
    rows = e.table[(e.table["start"] == start) & (e.table["removal"] == roll[0].key)]
    assert rows["prevents"].item(), rows
    episode = e.episodes[e.episodes["start"] == start]
    assert episode["primary_cause"].item() == "expiration_melt", episode


def test_pin_reads_the_chain_open_interest(run3):
    """The pin metric of the 0DTE close: the strike of the largest open interest among
    the chain's lines expiring at 1,800 s within 2% of S0 (the first session's open;
    ties: the lowest), and the close minus it (before: no pin at all, the scenario's
    lists name no expiry)."""
    lines = scenario_lines(run3.scenario.book)
    first = lines[lines["sessions"] == 1.0]
    oi = first.assign(oi=first["qty"].abs()).groupby("strike")["oi"].sum()
    S0 = run3.scenario.market.S0
    oi = oi[(oi.index >= 0.98 * S0) & (oi.index <= 1.02 * S0)]
    strike = float(oi.index[oi.to_numpy() == oi.max()].min())
    assert run3.metrics["expiry1.pin_in_window"] == 1.0
    s = run3.series
    close = float(s["price"].to_numpy()[s["t"].to_numpy() <= SESSION][-1])
    m = run3.metrics
    assert m["expiry1.pin_strike"] == strike, (m["expiry1.pin_strike"], strike)
    assert m["expiry1.pin_distance"] == pytest.approx(close - strike, abs=1e-9)
