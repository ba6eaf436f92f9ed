"""A sweep's figures on two processes: the same files as drawn by one, the forked
child's share drawn by the child, and a failed child's share drawn by the parent.

The forking cases run in a new interpreter: a process that ran a dask sweep keeps
dask's IO loop thread for good, and a process with another thread alive never forks
(:func:`mmsim.workers.can_fork`), so under xdist they would depend on the tests before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_sweep import TINY

import mmsim
from mmsim import plots_sweep, sweep_figures

ROOT = Path(__file__).resolve().parents[1]
GRID2 = {"dealers.0.band": [0, 500], "news.vol": [0.1, 0.2]}

_FORKED = r"""
import json, os, sys
from pathlib import Path
from mmsim import plots_sweep, sweep_figures
from mmsim.workers import can_fork
directory, log, fail = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "fail"
real, parent = plots_sweep.save_sweep_plots, os.getpid()
def spy(directory, metric="realized_vol", kinds=None):
    with open(log, "a") as f:
        f.write(f"{os.getpid() == parent} {','.join(sorted(kinds or ['all']))}\n")
    if fail and os.getpid() != parent:
        raise RuntimeError("the child fails")
    return real(directory, metric, kinds)
plots_sweep.save_sweep_plots = spy
assert can_fork(), "a new interpreter may fork"
print(json.dumps([p.name for p in sweep_figures.save_sweep_figures(directory, workers=2)]))
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("figs") / "sw"
    mmsim.sweep(TINY, GRID2, seeds=2, executor="serial", out=out, progress=False)
    return out


def _forked(directory: Path, log: Path, fail: bool = False) -> list[str]:
    """save_sweep_figures(directory, workers=2) in a new interpreter; the figure names."""
    argv = [sys.executable, "-c", _FORKED, str(directory), str(log), "fail" if fail else "ok"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _calls(log: Path) -> list[tuple[bool, str]]:
    """(in the parent?, kinds) of each save_sweep_plots call."""
    return [(w == "True", k) for w, k in (line.split() for line in log.read_text().splitlines())]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks on Linux only")
def test_two_processes_draw_the_same_files_as_one_and_a_failed_child_leaves_its_own(
    swept, tmp_path
):
    """Drawn by one process, then by two (the child the distributions, the parent the
    line and the heatmap): same names in the same order, same PNG bytes. With a child
    that fails, the parent draws the child's figures too and all three are there."""
    one = plots_sweep.save_sweep_plots(swept)
    pixels = {p.name: p.read_bytes() for p in one}
    for p in one:
        p.unlink()
    names = _forked(swept, tmp_path / "calls")
    assert names == [p.name for p in one], "same figures, same order"
    assert {n: (swept / n).read_bytes() for n in names} == pixels, "PNG bytes differ"
    assert sorted(_calls(tmp_path / "calls")) == [(False, "distributions"), (True, "heatmap,line")]
    for p in one:
        p.unlink()
    names = _forked(swept, tmp_path / "failed", fail=True)
    assert names == [p.name for p in one] and all((swept / n).is_file() for n in names)
    calls = _calls(tmp_path / "failed")
    assert (True, "distributions") in calls and (False, "distributions") in calls, calls


def test_one_worker_draws_here_without_forking(swept, monkeypatch):
    calls = []
    real = plots_sweep.save_sweep_plots
    monkeypatch.setattr(
        plots_sweep, "save_sweep_plots", lambda d, *a, **k: calls.append(k) or real(d, *a, **k)
    )
    monkeypatch.setattr(os, "fork", lambda: pytest.fail("forked with one worker"))
    assert len(sweep_figures.save_sweep_figures(swept, workers=1)) == 3
    assert calls == [{}], "one call, every figure"
