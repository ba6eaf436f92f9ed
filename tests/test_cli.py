"""The ``mmsim`` command: outputs, and bad input as one line with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmsim.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
QUICK = ["--set", "clock.days=0.01", "--set", "record.every=30"]

GOOD = """\
name: tiny
clock: {days: 0.01}
market: {S0: 100, impact: {lam: 1.0e-5}}
dealers:
  - band: 50
    positions:
      - {type: call, strike: 100, expiry_days: 21, qty: -100}
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_run_writes_a_result_directory_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(ROOT / "scenarios/long_gamma.yaml"), "-o", str(out), *QUICK]) == 0
    text = capsys.readouterr().out
    for word in ("realized vol", "hedge volume", "dealer P&L", "rehedges"):
        assert word in text
    for name in (
        "series.parquet",
        "trades.parquet",
        "metrics.json",
        "meta.json",
        "scenario.yaml",
        "price.png",
    ):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "metrics.json").read_text())["realized_vol"] > 0


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_shipped_scenario_validates(path, capsys):
    assert main(["validate", str(path)]) == 0
    assert "ok" in capsys.readouterr().out


BAD = {
    "malformed_yaml": ("dealers: [band: 5\n", "s.yaml:"),
    "unknown_key": (GOOD.replace("band: 50", "band: 50\n    bnad: 3"), "dealers[0].bnad"),
    "wrong_type": (GOOD.replace("band: 50", "band: wide"), "dealers[0].band"),
    "negative_band": (GOOD.replace("band: 50", "band: -5"), "dealers[0].band"),
    "negative_size": (
        GOOD.replace("{days: 0.01}", "{days: 0.01}\nnoise: {mean_size: -3}"),
        "noise.mean_size",
    ),
    "expiry_before_start": (
        GOOD.replace("expiry_days: 21", "expiry_days: -1"),
        "dealers[0].positions[0].expiry_days",
    ),
    "pension_zero_duration": (
        GOOD + "pensions: [{side: sell, shares: 10, duration: 0}]\n",
        "pensions[0].duration",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_scenario_gives_one_line_exit_2_and_no_output(case, tmp_path, capsys):
    text, needle = BAD[case]
    path = write(tmp_path, text)
    out = tmp_path / "out"
    assert main(["run", str(path), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not out.exists()


def test_error_names_the_line(tmp_path, capsys):
    path = write(tmp_path, GOOD.replace("band: 50", "band: -5"))
    assert main(["validate", str(path)]) == 2
    assert f"{path}:5: dealers[0].band" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["run", "missing.yaml"],
        ["run", "{good}", "--set", "dealers.7.band=1"],
        ["run", "{good}", "--set", "dealers.0.band"],
        ["run", "{good}", "--bogus"],
        ["frobnicate"],
        ["plot", "{tmp}"],
        ["gex", "{good}", "--at", "1e9"],
    ],
)
def test_bad_command_lines_give_one_line_and_exit_2(args, tmp_path, capsys):
    good = write(tmp_path, GOOD)
    argv = [a.format(good=good, tmp=tmp_path) for a in args]
    with pytest.raises(SystemExit) if argv[0] == "frobnicate" or "--bogus" in argv else _Nothing():
        status = main(argv)
        assert status == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_console_script_exit_statuses(tmp_path):
    """The real process: exit 2 on bad input, exit 3 when the feedback diverges."""
    bad = write(tmp_path, GOOD.replace("band: 50", "band: -5"))
    proc = subprocess.run(
        [sys.executable, "-m", "mmsim.cli", "run", str(bad)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and not proc.stdout
    diverge = ["--set", "dealers.0.positions.0.qty=-20000", "--set", "clock.days=0.01"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmsim.cli",
            "run",
            str(ROOT / "scenarios/short_gamma.yaml"),
            *diverge,
            "-q",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 3 and "lam * G" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "runs").exists()


def test_plot_rewrites_the_pngs_of_a_saved_run(tmp_path, capsys):
    out = tmp_path / "run"
    main(
        ["run", str(ROOT / "scenarios/long_gamma.yaml"), "-o", str(out), "-q", "--no-plot", *QUICK]
    )
    assert not (out / "price.png").exists()
    assert main(["plot", str(out)]) == 0
    assert (out / "price.png").stat().st_size > 0


def test_gex_prints_both_views_and_plots(tmp_path, capsys):
    png = tmp_path / "gex.png"
    path = str(ROOT / "scenarios/multi_dealer_bands.yaml")
    assert main(["gex", path, "--at", "600", "-o", str(png)]) == 0
    text = capsys.readouterr().out
    assert "== true GEX" in text and "== visible GEX" in text
    assert png.stat().st_size > 0


def test_schema_prints_the_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "dealers" in schema["properties"]


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_shipped_scenario_runs_shortened(path):
    """Each scenario, cut to a short horizon with a fixed seed, runs and stays finite."""
    import mmsim

    scenario = mmsim.load_scenario(path)
    days = min(scenario.clock.days, 0.05)
    overrides = {"clock.days": days, "record.every": 30.0}
    keep = [e for e in scenario.model_dump()["events"] if e["at"] <= days * 23_400]
    pensions = [
        p for p in scenario.model_dump()["pensions"] if p["start"] + p["duration"] <= days * 23_400
    ]
    overrides |= {"events": keep, "pensions": pensions}
    result = mmsim.run(scenario, seed=1, overrides=overrides)
    assert result.series["price"].gt(0).all() and len(result.series) > 2
