"""The run report, run comparison, the run summary and the smaller CLI additions
(``--version``, ``--report``, Ctrl-C keeping a partial run)."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import mmsim
from mmsim import compare, plots, report
from mmsim.cli import main
from mmsim.engine import Simulation
from mmsim.summary import summary_lines

ROOT = Path(__file__).resolve().parents[1]
OTC = str(ROOT / "scenarios/otc_offset.yaml")
LONG = str(ROOT / "scenarios/long_gamma.yaml")
SHORT = {"clock.days": 0.25, "events.0.at": 1800, "record.levels_every": 60.0}
"""otc_offset in a quarter session: the +2.2% gap at 10:00 breaks the visible call wall."""
CONTROL = {**SHORT, "dealers.0.positions.1.qty": 0}  # the header's control: no OTC calls
"""The book the analyst assumed: dealers long the 102 calls, the puts listed."""


class Page(HTMLParser):
    """Collects images (alt, src), tables (id -> rows of cell texts), and ``pre`` texts."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[tuple[str, str]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.pres: dict[str, str] = {}
        self._table = self._pre = None
        self._cell: list[str] | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append((a.get("alt", ""), a.get("src", "")))
        elif tag == "table":
            self._table = a.get("id", f"table{len(self.tables)}")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
        elif tag == "pre":
            self._pre = a.get("id", "")
            self.pres[self._pre] = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "pre":
            self._pre = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._pre is not None:
            self.pres[self._pre] += data


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    a = mmsim.run(OTC, overrides=SHORT).save(base / "otc")
    b = mmsim.run(OTC, overrides=CONTROL).save(base / "control")
    return a, b


def test_run_report_embeds_every_figure_and_table(runs, tmp_path):
    """Opened with an HTML parser: one PNG per run figure (decoded: a PNG), the desks,
    episodes and metrics tables with their rows, the scenario YAML, seed and version."""
    run_dir = runs[0]
    path = report.write_report(run_dir, tmp_path / "r.html")
    page = parse(path)
    result = mmsim.load_result(run_dir)
    expected = list(plots.run_figures(result))
    assert [alt for alt, _ in page.images] == expected
    for _, src in page.images:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png[:4] == b"\x89PNG" and len(png) > 10_000
    assert {"desks", "episodes", "metrics"} <= set(page.tables)
    assert page.tables["desks"][1][0] == "desk"  # one row per dealer desk
    episodes = page.tables["episodes"]
    assert len(episodes) - 1 == len(result.episodes) > 0
    causes = episodes[0].index("primary_cause")
    assert {row[causes] for row in episodes[1:]} == set(result.episodes["primary_cause"])
    metrics = {row[0]: row[1] for row in page.tables["metrics"][1:]}
    assert set(metrics) == set(result.metrics)
    assert "name: otc_offset" in page.pres["scenario"]
    text = "".join(page.text)
    assert f"seed {result.seed}" in text and f"mmsim {mmsim.__version__}" in text
    assert "realized vol" in page.pres["summary"]


def test_sweep_report_has_the_points_with_standard_errors(tmp_path):
    directory = tmp_path / "sweep"
    sc = mmsim.load_scenario("scenarios/band_sweep.yaml", overrides={"clock.days": 0.02})
    mmsim.sweep(sc, {"dealers.0.band": [0, 2000]}, seeds=2, executor="serial", out=directory)
    page = parse(report.write_report(directory))
    table = page.tables["points-realized_vol"]
    assert table[0][:4] == ["dealers.0.band", "n", "mean", "se"]
    assert [row[0] for row in table[1:]] == ["0", "2000"]
    assert [alt for alt, _ in page.images] == ["realized_vol_vs_band.png", "distributions.png"]


def test_report_of_a_directory_that_is_neither_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "neither a run directory" in err


def test_compare_prints_metrics_side_by_side_with_differences(runs, tmp_path, capsys):
    """Long gamma in the control dampens what the short-gamma book amplifies: its
    realized vol outside the gap (bipower) is lower; the difference column says so."""
    a, b = runs
    assert main(["compare", str(a), str(b), "-o", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "otc: otc_offset, seed 2" and lines[1] == "control: otc_offset, seed 2"
    header = lines[2].split()
    assert header[-3:] == ["control", "-", "otc"]
    ra, rb = mmsim.load_result(a), mmsim.load_result(b)
    bv = next(line for line in lines if line.strip().startswith("jump-robust vol"))
    diff = rb.metrics["bipower_vol"] - ra.metrics["bipower_vol"]
    assert diff < 0 and bv.split()[-1] == f"{diff:.2%}"
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_figure_overlays_every_run_and_is_readable(runs):
    from test_plots import readable

    results = [mmsim.load_result(d) for d in runs]
    fig = compare.plot_compare(results, ["otc", "control"])
    for ax in fig.axes:
        assert len([line for line in ax.lines if line.get_label() in ("otc", "control")]) == 2
    readable(fig)
    plt.close(fig)


def test_compare_needs_two_runs_and_names_a_bad_directory(runs, tmp_path, capsys):
    assert main(["compare", str(runs[0])]) == 2
    assert main(["compare", str(runs[0]), str(tmp_path)]) == 2
    assert "not a result directory" in capsys.readouterr().err


def test_pin_labels_say_whether_the_strike_is_near_the_open():
    """The summary and compare name the pin strike's rule, and say when no strike lay
    within 2% of the open and the strike is the largest of all (a real chain's far put)."""
    from types import SimpleNamespace

    from mmsim.summary import _pin_lines

    near = {"expiry1.pin_strike": 4450.0, "expiry1.pin_distance": -19.12,
            "expiry1.pin_in_window": 1.0, "pin_strike": 4450.0, "pin_distance": -19.12,
            "pin_in_window": 1.0}  # fmt: skip
    far = dict(near)
    far.update({"expiry1.pin_strike": 3800.0, "expiry1.pin_distance": 630.88,
                "expiry1.pin_in_window": 0.0, "pin_strike": 3800.0, "pin_distance": 630.88,
                "pin_in_window": 0.0})  # fmt: skip
    assert _pin_lines(near) == [
        "pin (expiry d1) close 4430.88 vs 4450, the largest-OI strike within 2% of the "
        "open: -19.12 $ (-0.43%)"
    ]
    assert "3800, the largest-OI strike of all (none within 2% of the open)" in _pin_lines(far)[0]
    saved = {k: v for k, v in far.items() if "in_window" not in k}  # a run of an older mmsim
    assert "3800, the largest-OI strike of all: +630.88 $" in _pin_lines(saved)[0]
    runs = [SimpleNamespace(metrics=m) for m in (near, far, saved)]
    table = compare.metrics_table(runs, ["a", "b", "c"]).set_index("metric")
    row = table.loc["pin strike ($, largest OI within 2% of the open)"]
    assert (row["a"], row["b"]) == ("4450", "3800 (none within 2%: largest of all)")
    assert row["c"] == "3800 (largest of all)"
    assert table.loc["close - pin strike ($)", "b - a"] == "+650.00"


def test_summary_answers_the_scenarios_question(runs):
    """Jump-robust vol beside realized vol (the gap is most of the variance), a line per
    desk, what dealer P&L is; regime vols only when price spent time on both sides."""
    result = mmsim.load_result(runs[0])
    text = "\n".join(summary_lines(result))
    m = result.metrics
    assert f"jump-robust (bipower) {m['bipower_vol']:.1%}" in text
    assert m["jump_share"] > 0.5 and "jumps are" in text
    assert "mark-to-market of the options and their hedge" in text
    desk = next(line for line in text.splitlines() if line.strip().startswith("desk  1000"))
    assert f"{m['desk.n_rehedges']:,.0f}" in desk
    assert "above the flip" not in text or m["time_below_flip"] > 0


def test_summary_prints_regime_vols_and_the_pin_when_they_apply():
    res = mmsim.run("scenarios/pinning.yaml", overrides={"clock.days": 1})
    text = "\n".join(summary_lines(res))
    strike, dist = res.metrics["pin_strike"], res.metrics["pin_distance"]
    assert res.metrics["pin_in_window"] == 1.0, "the straddle's 100 is S0's strike"
    assert f"vs {strike:g}, the largest-OI strike within 2% of the open: {dist:+.2f} $" in text
    fc = mmsim.run("scenarios/flip_crossing.yaml", overrides={"clock.days": 0.5})
    m = fc.metrics
    lines = "\n".join(summary_lines(fc))
    if m["time_above_flip"] >= 0.02 and m["time_below_flip"] >= 0.02:
        assert f"above the flip {m['realized_vol_above_flip']:.1%}" in lines
        assert f"below {m['realized_vol_below_flip']:.1%}" in lines


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"mmsim {mmsim.__version__}"


def test_run_report_flag_writes_report_html(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(plots, "run_figures", lambda res: {"price.png": plots.plot_run})
    out = tmp_path / "r"
    argv = ["run", OTC, "-o", str(out), "--set", "clock.days=0.02", "--set", "events=[]"]
    assert main([*argv, "--no-plot", "--report", "-q"]) == 0
    page = parse(out / "report.html")
    assert [alt for alt, _ in page.images] == ["price.png"]  # drawn for the report
    assert not (out / "price.png").exists()  # --no-plot: no PNG files


def test_ctrl_c_keeps_a_partial_run_marked_interrupted(tmp_path, monkeypatch, capsys):
    """Ctrl-C a third of the way: the run directory holds what was simulated (the
    series up to there), meta says ``interrupted``, the summary says so, exit 130."""
    real = Simulation.advance
    calls = {"n": 0}

    def advance(self, until, **how):
        calls["n"] += 1
        if calls["n"] == 34:
            raise KeyboardInterrupt
        return real(self, until, **how)

    monkeypatch.setattr(Simulation, "advance", advance)
    out = tmp_path / "partial"
    argv = ["run", LONG, "-o", str(out), "--set", "clock.days=0.1", "--no-plot"]
    assert main(argv) == 130
    captured = capsys.readouterr()
    assert "interrupted at t = " in captured.err and "INTERRUPTED" in captured.out
    res = mmsim.load_result(out)
    end = 0.1 * 23_400
    assert float(res.meta["interrupted"]) == pytest.approx(0.33 * end, rel=0.02)
    assert res.series["t"].iloc[-1] <= float(res.meta["interrupted"]) < end
    last = res.series.iloc[-1]
    name = res.scenario.dealer_names()[0]
    assert res.metrics[f"{name}.pnl"] == pytest.approx(last[f"{name}.pnl"], abs=1e-6)
    calls["n"] = 0  # without keep_partial (mmsim.run) the interrupt propagates
    sc = mmsim.load_scenario(LONG, overrides={"clock.days": 0.1})
    with pytest.raises(KeyboardInterrupt):
        Simulation(sc, 1).run(progress=True)


def test_sweep_summary_names_its_metric_with_mean_and_standard_error(tmp_path, capsys):
    out = tmp_path / "sw"
    argv = ["sweep", "scenarios/band_sweep.yaml", "--grid", "dealers.0.band=0,2000"]
    argv += ["--seeds", "2", "--executor", "serial", "--set", "clock.days=0.02", "-o", str(out)]
    assert main([*argv, "--no-plot"]) == 0
    text = capsys.readouterr().out
    assert "realized_vol (annualized): mean ± standard error over seeds, per grid point" in text
    table = pd.read_parquet(out / "results.parquet")
    # --grid merges with the scenario's own axis (the position's sign): one point per pair
    point = (table["dealers.0.band"] == 0) & (table["dealers.0.positions.0.qty"] == -2000)
    zero = table[point]["realized_vol"]
    cell = f"{zero.mean():.2%} ± {zero.std(ddof=1) / np.sqrt(2):.2%}"
    assert cell in text
    assert json.loads((out / "sweep.json").read_text())["grid"]
