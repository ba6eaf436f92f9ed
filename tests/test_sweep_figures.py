"""A sweep's figures on two processes: the same files as drawn by one, the forked
child's share drawn by the child, and a failed child's share drawn by the parent."""

from __future__ import annotations

import os

import pytest
from test_sweep import TINY

import mmsim
from mmsim import plots_sweep, sweep_figures
from mmsim.workers import can_fork

GRID2 = {"dealers.0.band": [0, 500], "news.vol": [0.1, 0.2]}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("figs") / "sw"
    mmsim.sweep(TINY, GRID2, seeds=2, executor="serial", out=out, progress=False)
    return out


def _spy(monkeypatch, log, fail_in_child=False):
    """Wrap save_sweep_plots: log (pid, kinds) of each call to ``log`` (a file, shared
    with a forked child); with ``fail_in_child``, a call in another process raises."""
    real, parent = plots_sweep.save_sweep_plots, os.getpid()

    def spy(directory, metric="realized_vol", kinds=None):
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {','.join(sorted(kinds or ['all']))}\n")
        if fail_in_child and os.getpid() != parent:
            raise RuntimeError("the child fails")
        return real(directory, metric, kinds)

    monkeypatch.setattr(plots_sweep, "save_sweep_plots", spy)


@pytest.mark.skipif(not can_fork(), reason="figures go on two processes only where we fork")
def test_two_processes_draw_the_same_files_as_one(swept, tmp_path, monkeypatch):
    one = plots_sweep.save_sweep_plots(swept)
    pixels = {p.name: p.read_bytes() for p in one}
    for p in one:
        p.unlink()
    log = tmp_path / "calls"
    _spy(monkeypatch, log)
    two = sweep_figures.save_sweep_figures(swept, workers=2)
    assert [p.name for p in two] == [p.name for p in one], "same figures, same order"
    assert {p.name: p.read_bytes() for p in two} == pixels, "PNG bytes differ"
    calls = [line.split() for line in log.read_text().splitlines()]
    by = {kinds: int(pid) for pid, kinds in calls}
    assert by["heatmap,line"] == os.getpid() and by["distributions"] != os.getpid(), calls


@pytest.mark.skipif(not can_fork(), reason="figures go on two processes only where we fork")
def test_a_failed_child_leaves_its_figures_to_the_parent(swept, tmp_path, monkeypatch):
    for p in swept.glob("*.png"):
        p.unlink()
    log = tmp_path / "calls"
    _spy(monkeypatch, log, fail_in_child=True)
    paths = sweep_figures.save_sweep_figures(swept, workers=2)
    assert [p.name for p in paths][-1] == "distributions.png" and len(paths) == 3, paths
    assert all(p.is_file() for p in paths)
    pids = [int(line.split()[0]) for line in log.read_text().splitlines()]
    assert pids.count(os.getpid()) == 2 and len(pids) == 3, "the parent drew the child's share"


def test_one_worker_draws_here_without_forking(swept, tmp_path, monkeypatch):
    log = tmp_path / "calls"
    _spy(monkeypatch, log)
    monkeypatch.setattr(os, "fork", lambda: pytest.fail("forked with one worker"))
    assert len(sweep_figures.save_sweep_figures(swept, workers=1)) == 3
    assert log.read_text().split() == [str(os.getpid()), "all"]
