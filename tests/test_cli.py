"""The ``mmsim`` command: what a run writes, and bad input as one line with exit status 2.

Most tests call ``mmsim.cli.main`` in-process (capsys); ``test_real_process_exit_statuses``
runs the console script and ``python -m mmsim.cli`` to check the statuses a shell sees.
Every test runs in its own temporary working directory, so the default ``runs/`` output
of a command lands there and "no output" can be checked by listing it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mmsim
from mmsim.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
LONG = str(ROOT / "scenarios/long_gamma.yaml")
SHORT_GAMMA = str(ROOT / "scenarios/short_gamma.yaml")
QUICK = ["--set", "clock.days=0.02", "--set", "record.every=30"]
DIVERGE = ["--set", "dealers.0.positions.0.qty=-20000", "--set", "clock.days=0.01"]
"""20,000 short one-year calls at lam = 1e-4: lam * G ~ -3.97, the feedback diverges."""
RESULT_FILES = (
    "series.parquet",
    "trades.parquet",
    "metrics.json",
    "meta.json",
    "scenario.yaml",
    "price.png",
)

GOOD = """\
name: tiny
clock: {days: 0.01}
market: {S0: 100, impact: {lam: 1.0e-5}}
dealers:
  - band: 50
    positions:
      - {type: call, strike: 100, expiry_days: 21, qty: -100}
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Run every test from an empty temporary directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def one_error_line(err: str) -> str:
    """The single stderr line of a failed command (asserting there is exactly one)."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("mmsim: error: ")
    return lines[0]


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> Path:
    """A shortened long_gamma result saved without plots (as ``run --no-plot`` does)."""
    out = tmp_path_factory.mktemp("saved") / "run"
    mmsim.run(LONG, overrides={"clock.days": 0.02, "record.every": 30.0}).save(out)
    return out


# -- mmsim run -----------------------------------------------------------------------------
def test_run_quiet_writes_a_complete_result_directory_and_prints_nothing(in_tmp, capsys):
    out = in_tmp / "out"
    assert main(["run", LONG, "-o", str(out), "--set", "clock.days=0.02", "-q"]) == 0
    assert capsys.readouterr().out == ""
    for name in RESULT_FILES:
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "metrics.json").read_text())["realized_vol"] > 0
    result = mmsim.load_result(out)
    assert result.scenario.clock.days == 0.02 and result.seed == 7  # the scenario's seed
    assert sorted(p.name for p in in_tmp.iterdir()) == ["out"]  # nothing else written


def test_run_prints_a_summary_and_writes_the_default_directory(in_tmp, capsys):
    assert main(["run", LONG, "--seed", "3", "--no-plot", *QUICK]) == 0
    text = capsys.readouterr().out
    for words in ("realized vol", "hedge volume", "dealer P&L", "rehedges"):
        assert words in text
    (out,) = (in_tmp / "runs").iterdir()  # runs/<name>-seed<N>-set<hash of the overrides>
    assert out.name.startswith("long_gamma-seed3-set") and len(out.name) == 26, out.name
    assert f"{Path('runs') / out.name}/" in text  # says where it wrote
    assert mmsim.load_result(out).seed == 3
    assert not (out / "price.png").exists()  # --no-plot


def test_run_over_an_existing_result_replaces_it(in_tmp, capsys):
    out = str(in_tmp / "out")
    assert main(["run", LONG, "-o", out, "-q", "--no-plot", "--seed", "1", *QUICK]) == 0
    assert main(["run", LONG, "-o", out, "-q", "--no-plot", "--seed", "2", *QUICK]) == 0
    assert mmsim.load_result(out).seed == 2


def test_run_refuses_to_write_into_a_directory_that_is_not_a_result(in_tmp, capsys):
    out = in_tmp / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["run", str(write(in_tmp, GOOD)), "-o", str(out), "-q"]) == 2
    assert "mine" in one_error_line(capsys.readouterr().err)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


# -- mmsim validate ------------------------------------------------------------------------
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_shipped_scenario_validates(path, capsys):
    assert main(["validate", str(path)]) == 0
    assert "ok" in capsys.readouterr().out


# -- bad input: one line, exit status 2, nothing written ----------------------------------
BAD_FILES = {
    # case: (file text, line, field path); line None where the file is the whole story
    "malformed_yaml_brace": (GOOD.replace("{lam: 1.0e-5}}", "{lam: 1.0e-5}"), 4, "malformed"),
    "malformed_yaml_indent": (GOOD.replace("    positions:", "   positions:"), 6, "malformed"),
    "malformed_yaml_tab": (GOOD.replace("  - band: 50", "\t- band: 50"), 5, "malformed"),
    "duplicate_key": (GOOD.replace("band: 50", "band: 50\n    band: 60"), 6, "duplicate"),
    "unknown_key": (GOOD.replace("band: 50", "band: 50\n    bnad: 3"), 6, "dealers[0].bnad"),
    "wrong_type": (GOOD.replace("band: 50", "band: wide"), 5, "dealers[0].band"),
    "negative_band": (GOOD.replace("band: 50", "band: -5"), 5, "dealers[0].band"),
    "expiry_zero": (
        GOOD.replace("expiry_days: 21", "expiry_days: 0"),
        7,
        "dealers[0].positions[0].expiry_days",
    ),
    "expiry_negative": (
        GOOD.replace("expiry_days: 21", "expiry_days: -1"),
        7,
        "dealers[0].positions[0].expiry_days",
    ),
    "negative_size": (
        GOOD.replace("{days: 0.01}", "{days: 0.01}\nnoise: {mean_size: -3}"),
        3,
        "noise.mean_size",
    ),
    "pension_zero_duration": (
        GOOD + "pensions: [{side: sell, shares: 10, duration: 0}]\n",
        8,
        "pensions[0].duration",
    ),
    "top_level_list": ("- a\n- b\n", 1, "mapping"),
    "empty_file": ("", None, "empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_scenario_file_gives_one_line_naming_file_field_and_line(case, in_tmp, capsys):
    text, line, needle = BAD_FILES[case]
    path = write(in_tmp, text)
    out = in_tmp / "out"
    assert main(["run", str(path), "-o", str(out), "-q"]) == 2
    err = one_error_line(capsys.readouterr().err)
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    assert err.startswith(f"mmsim: error: {where}") and needle in err
    assert sorted(p.name for p in in_tmp.iterdir()) == ["s.yaml"]  # no output of any kind


@pytest.mark.parametrize("command", ["validate", "gex"])
def test_other_commands_report_a_bad_file_the_same_way(command, in_tmp, capsys):
    path = write(in_tmp, BAD_FILES["negative_band"][0])
    assert main([command, str(path)]) == 2
    assert f"{path}:5: dealers[0].band" in one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in in_tmp.iterdir()) == ["s.yaml"]


def test_missing_file_is_named(in_tmp, capsys):
    missing = in_tmp / "nowhere.yaml"
    assert main(["run", str(missing), "-q"]) == 2
    assert f"{missing}: no such file" in one_error_line(capsys.readouterr().err)
    assert list(in_tmp.iterdir()) == []


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["--set", "dealers.7.band=1"], "dealers.7.band"),  # no such dealer
        (["--set", "market.impact.depth=3"], "market.impact.depth"),  # no such field
        (["--set", "clock.days.hours=3"], "clock.days.hours"),  # path through a number
        (["--set", "dealers.0.band"], "dealers.0.band"),  # no '='
        (["--set", "=5"], "=5"),  # no path
        (["--set", "dealers.0.band=-5"], "dealers[0].band"),  # a value the schema rejects
        (["--set", "clock.days=soon"], "clock.days"),  # a value of the wrong type
    ],
)
def test_impossible_overrides_give_one_line_and_exit_2(overrides, needle, in_tmp, capsys):
    path = write(in_tmp, GOOD)
    assert main(["run", str(path), "-o", str(in_tmp / "out"), "-q", *overrides]) == 2
    err = one_error_line(capsys.readouterr().err)
    assert "<overrides>" in err and needle in err
    assert sorted(p.name for p in in_tmp.iterdir()) == ["s.yaml"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["frobnicate"], "frobnicate"),  # unknown subcommand
        (["run", "{good}", "--bogus"], "--bogus"),  # unknown option
        (["run"], "scenario"),  # missing argument
        (["run", "{good}", "--seed", "abc"], "--seed"),  # option of the wrong type
        ([], "command"),  # no subcommand at all
    ],
)
def test_bad_command_lines_exit_2_with_one_line(argv, needle, in_tmp, capsys):
    good = write(in_tmp, GOOD)
    with pytest.raises(SystemExit) as exc:
        main([a.format(good=good) for a in argv])
    assert exc.value.code == 2
    assert needle in one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in in_tmp.iterdir()) == ["s.yaml"]


def test_gex_at_a_time_outside_the_run_exits_2(in_tmp, capsys):
    good = write(in_tmp, GOOD)
    assert main(["gex", str(good), "--at", "1e9"]) == 2
    assert "--at" in one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in in_tmp.iterdir()) == ["s.yaml"]


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for command in ("run", "sweep", "validate", "plot", "gex", "schema"):
        assert command in text


# -- divergence: exit status 3 ------------------------------------------------------------
def test_a_diverging_run_exits_3_with_one_line_and_no_output(in_tmp, capsys):
    out = in_tmp / "out"
    assert main(["run", SHORT_GAMMA, "-o", str(out), "-q", *DIVERGE]) == 3
    assert "lam * G" in one_error_line(capsys.readouterr().err)
    assert list(in_tmp.iterdir()) == []


# -- the real process ---------------------------------------------------------------------
def test_real_process_exit_statuses(in_tmp):
    """What a shell sees: 0 for a good run, 2 for bad input, 3 for a diverging run; the
    console script for one call and ``python -m mmsim.cli`` for the others."""
    script = shutil.which("mmsim")
    assert script is not None, "the mmsim console script is not installed"
    bad = write(in_tmp, BAD_FILES["negative_band"][0], "bad.yaml")
    calls = [
        ([script, "run", str(bad), "-q"], 2, f"{bad}:5: dealers[0].band"),
        ([script, "run", LONG, "--frobnicate"], 2, "--frobnicate"),
        ([sys.executable, "-m", "mmsim.cli", "run", SHORT_GAMMA, "-q", *DIVERGE], 3, "lam * G"),
    ]
    for argv, status, needle in calls:
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=in_tmp, timeout=120)
        assert proc.returncode == status, (argv, proc.stderr)
        assert needle in one_error_line(proc.stderr) and proc.stdout == ""
    assert sorted(p.name for p in in_tmp.iterdir()) == ["bad.yaml"]  # no runs/ anywhere
    good = subprocess.run(
        [sys.executable, "-m", "mmsim.cli", "validate", LONG], capture_output=True, text=True
    )
    assert good.returncode == 0 and good.stderr == "" and "ok" in good.stdout


# -- mmsim plot ---------------------------------------------------------------------------
def test_plot_writes_the_pngs_of_a_saved_run(saved_run, in_tmp, capsys):
    run = in_tmp / "run"
    shutil.copytree(saved_run, run)
    assert not (run / "price.png").exists()
    assert main(["plot", str(run)]) == 0
    assert (run / "price.png").stat().st_size > 0
    printed = capsys.readouterr().out.split()
    assert str(run / "price.png") in printed
    assert all(Path(p).stat().st_size > 0 for p in printed)


def test_run_draws_the_overview_by_default_every_figure_with_plots_all(in_tmp, capsys):
    """Default flags: price.png only, and the summary names the way to the rest;
    ``--plots all`` and ``mmsim plot`` of the default directory draw the same full set."""
    every = {"price.png", "dealers.png", "vol_regimes.png", "returns_by_regime.png"}
    every |= {"gex_profile.png", "gex_strikes.png"}  # 0.02 days, no expiry: no heatmap
    default, full = in_tmp / "default", in_tmp / "all"
    assert main(["run", LONG, "-o", str(default), *QUICK]) == 0
    assert f"mmsim plot {default}" in capsys.readouterr().out
    assert sorted(p.name for p in default.glob("*.png")) == ["price.png"]
    assert main(["run", LONG, "-o", str(full), "-q", "--plots", "all", *QUICK]) == 0
    assert {p.name for p in full.glob("*.png")} == every
    assert main(["plot", str(default)]) == 0
    assert {p.name for p in default.glob("*.png")} == every
    with pytest.raises(SystemExit) as exc:
        main(["run", LONG, "-o", str(in_tmp / "bad"), "--plots", "some"])
    assert exc.value.code == 2 and "--plots" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("kind", ["empty_dir", "missing_dir", "a_file", "meta_only"])
def test_plot_of_a_non_result_directory_exits_2_with_one_line(kind, in_tmp, capsys):
    target = in_tmp / "x"
    if kind == "empty_dir":
        target.mkdir()
    elif kind == "a_file":
        target.write_text("not a directory")
    elif kind == "meta_only":
        target.mkdir()
        (target / "meta.json").write_text('{"seed": 1, "entropy": "1"}')
    assert main(["plot", str(target)]) == 2
    assert str(target) in one_error_line(capsys.readouterr().err)
    assert not list(in_tmp.glob("x/*.png"))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("metrics.json", "{damaged"),
        ("meta.json", '{"seed": 1}'),  # no entropy
        ("series.parquet", "not parquet"),
        ("trades.parquet", None),  # missing
        ("scenario.yaml", "dealers: [{band: -1}]"),
    ],
)
def test_plot_of_a_damaged_result_directory_exits_2_naming_the_file(
    saved_run, in_tmp, capsys, name, content
):
    run = in_tmp / "run"
    shutil.copytree(saved_run, run)
    if content is None:
        (run / name).unlink()
    else:
        (run / name).write_text(content)
    assert main(["plot", str(run)]) == 2
    assert name in one_error_line(capsys.readouterr().err)
    assert not list(run.glob("*.png"))


# -- mmsim gex / schema -------------------------------------------------------------------
def test_gex_prints_both_views_and_plots(in_tmp, capsys):
    assert main(["gex", str(ROOT / "scenarios/multi_dealer_bands.yaml")]) == 0
    text = capsys.readouterr().out
    assert "== true GEX" in text and "== visible GEX" in text
    pngs = list((in_tmp / "runs").glob("*.png"))  # default: runs/<name>-gex-t<TIME>.png
    assert [p.name for p in pngs] == ["multi_dealer_bands-gex-t0.png"]
    assert pngs[0].stat().st_size > 0


def test_gex_at_a_later_time_writes_the_named_png(in_tmp, capsys):
    png = in_tmp / "gex.png"
    path = str(ROOT / "scenarios/multi_dealer_bands.yaml")
    assert main(["gex", path, "--at", "600", "-o", str(png)]) == 0
    assert "t=600 s" in capsys.readouterr().out
    assert png.stat().st_size > 0


def test_schema_prints_the_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "properties" in schema and "dealers" in schema["properties"]


# -- issue 10: runs too big to finish, bad arguments, SIGTERM --------------------------------
def _exit_status(argv: list[str]) -> int:
    """``main``'s status, argparse's exits included."""
    try:
        return main(argv)
    except SystemExit as done:
        return int(done.code)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("clock.days=1e6", "clock.days"),
        ("record.every=1e-6", "record.every"),
        ("news.dt=1e-6", "news.dt"),
        ("noise={rate: 1e40}", "noise.rate"),
        ("dealers.0.trigger=schedule", None),  # fine: 23,400 checks
        ("dealers.0={trigger: schedule, interval: 1e-9}", "dealers[0].interval"),
        ("customers=[{segment: retail_call_buyers, rate: 1e6}]", "customers[0].rate"),
        (
            "pensions=[{side: buy, shares: 1e6, duration: 200, child_interval: 1e-6}]",
            "pensions[0].child_interval",
        ),
    ],
)
def test_runs_estimated_too_big_are_refused_before_they_start(in_tmp, capsys, override, field):
    good = write(in_tmp, GOOD)
    args = ["run", str(good), "--set", override, "-q", "--no-plot", "-o", "out"]
    if field is None:
        from mmsim.budget import estimate
        from mmsim.scenario import load_scenario

        assert estimate(load_scenario(good, overrides=[override])).events < 1e6
        return
    assert main(args) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f": {field}: the run would need about" in line, line
    assert "(--max-events)" in line or "(--max-memory)" in line, line
    assert sorted(p.name for p in in_tmp.iterdir()) == ["s.yaml"]


def test_the_memory_limit_is_configurable(in_tmp, capsys):
    good = write(in_tmp, GOOD)
    assert main(["run", str(good), "--max-memory", "1e-6", "-q", "--no-plot", "-o", "out"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "GiB of memory" in line and "--max-memory" in line
    assert main(["run", str(good), "--max-events", "10", "-q", "-o", "out"]) == 2
    assert "above the limit of 10 (--max-events)" in one_error_line(capsys.readouterr().err)
    assert not (in_tmp / "out").exists()


def test_a_huge_grid_is_refused_without_expanding_it(in_tmp, capsys):
    good = write(in_tmp, GOOD)
    axes = [f"dealers.0.band={','.join(str(i) for i in range(1000))}"]
    axes += [f"news.vol={','.join(f'0.{i:03d}' for i in range(1, 1000))}"]
    axes += [f"dealers.0.latency={','.join(str(i) for i in range(10_000))}"]
    argv = ["sweep", str(good), "-q", "-o", "sw"]
    for axis in axes:
        argv += ["--grid", axis]
    assert main(argv) == 2
    assert "runs, more than 100,000" in one_error_line(capsys.readouterr().err)
    assert not (in_tmp / "sw").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "{good}", "--seed", "-5"],
        ["sweep", "{good}", "--seeds", "0"],
        ["sweep", "{good}", "--seed-list", "a"],
        ["sweep", "{good}", "--seed-list", "1,-2"],
        ["sweep", "{good}", "--sweep-seed", "-1"],
        ["sweep", "{good}", "--workers", "-1"],
        ["sweep", "{good}", "--workers", "0"],
        ["sweep", "{good}", "--run-timeout", "0"],
        ["sweep", "{good}", "--keep", ","],
        ["sweep", "{good}", "--keep", "prise"],
        ["run", "{good}", "-o", "afile"],
        ["sweep", "{good}", "-o", "afile"],
        ["gex", "{good}", "-o", "x.txt"],
        ["run", "{good}", "--max-events", "-1"],
        ["run", "{good}", "--max-memory", "nan"],
    ],
)
def test_bad_arguments_exit_2_with_one_line_and_leave_nothing(in_tmp, capsys, argv):
    good = write(in_tmp, GOOD)
    (in_tmp / "afile").write_text("mine")
    before = sorted(p.name for p in in_tmp.iterdir())
    assert _exit_status([a.format(good=good) for a in argv] + ["-q"] * (argv[0] != "gex")) == 2
    one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in in_tmp.iterdir()) == before
    assert (in_tmp / "afile").read_text() == "mine"


def test_an_unreachable_dask_scheduler_is_one_line_and_leaves_nothing(in_tmp, capsys, monkeypatch):
    pytest.importorskip("dask.distributed")
    import importlib

    monkeypatch.setattr(importlib.import_module("mmsim.executors"), "DASK_CONNECT_TIMEOUT", 1.0)
    good = write(in_tmp, GOOD)
    argv = ["sweep", str(good), "--dask", "tcp://127.0.0.1:9", "-o", "sw", "-q", "--seeds", "1"]
    assert main(argv) == 2
    assert "cannot reach the scheduler" in one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in in_tmp.iterdir()) == ["s.yaml"]


@pytest.mark.skipif(sys.platform == "win32" or not Path("/proc").is_dir(), reason="POSIX, /proc")
def test_sigterm_stops_a_process_pool_sweep_and_its_workers(in_tmp):
    """SIGTERM once runs are going: the command exits 143 within seconds (not after the
    runs in flight finish), its workers are gone and the finished runs are on disk, not
    all 40 of them. Runs of 20 days (~0.2 s each; the sweep ~6 s): at 0.5 day the whole
    sweep was over within a second of starting, before the signal, and the test read
    a finished command (exit 0, or no workers left to find)."""
    import signal
    import subprocess
    import time

    argv = [sys.executable, "-m", "mmsim.cli", "sweep", LONG, "--executor", "processes"]
    argv += ["--workers", "2", "--seeds", "40", "--set", "clock.days=20", "-o", "sw", "-q"]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list(Path("sw/runs").glob("*.json"))) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    workers = _descendants(proc.pid)
    assert workers, "no worker processes found"
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 143 and time.monotonic() - start < 15
    time.sleep(0.5)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists() and _not_zombie(pid)]
    # the fork server is multiprocessing's own and ends with it; the workers must be gone
    assert not [pid for pid in alive if "forkserver" not in _cmdline(pid)], alive
    assert 2 <= len(list(Path("sw/runs").glob("*.json"))) < 40, "stopped, not finished"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``: the children of each of its threads (a worker forked
    from a thread other than the main one is listed under that thread only)."""
    children: list[str] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += (task / "children").read_text().split()
        except OSError:
            continue
    found = [int(c) for c in children]
    for c in list(found):
        found += _descendants(c)
    return [p for p in found if "resource_tracker" not in _cmdline(p)]


def test_a_non_finite_core_metric_is_not_reported_as_a_result(in_tmp, capsys, monkeypatch):
    from mmsim.engine import Simulation

    real = Simulation.run

    def nan_vol(self, *args, **kw):
        result = real(self, *args, **kw)
        result.metrics["realized_vol"] = float("nan")
        return result

    monkeypatch.setattr(Simulation, "run", nan_vol)
    good = write(in_tmp, GOOD)
    assert main(["run", str(good), "-q", "--no-plot", "-o", "out"]) == 3
    assert "non-finite realized_vol" in one_error_line(capsys.readouterr().err)
    assert not (in_tmp / "out").exists()
