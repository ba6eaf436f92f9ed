"""A sweep whose dask cluster loses every worker mid-sweep while its scheduler lives: it
gives up after ``MMSIM_DASK_NO_WORKERS_TIMEOUT`` seconds with no worker, as it does when
the scheduler goes away (one line, exit status 2, every finished run saved; the Python
API raises :class:`mmsim.ClusterLostError`). Before, it waited for good: dask's
scheduler holds tasks no worker can take (``no-workers-timeout: null``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from test_dask_lost import SCENARIO, SEEDS, _one_line_and_rows, _run_losing, _saved
from test_sweep import ROOT

pytest.importorskip("dask.distributed")

_LOSE_WORKERS = """
import json, os, subprocess, sys, threading, time
import mmsim
from dask.distributed import LocalCluster
from mmsim.sweep import local_cluster


def first_rows(runs, started):
    # the sweep's first rows are on disk: its other runs are still to do
    while len([f for f in os.listdir(runs) if f.endswith(".json")] if os.path.isdir(runs)
              else []) < 1 and time.monotonic() < started + 120:
        time.sleep(0.005)


def lose_workers(cluster, runs, started, report):
    first_rows(runs, started)
    cluster.scale(0)  # every worker closed; the scheduler lives on
    report["workers_gone"] = time.monotonic()


if __name__ == "__main__":
    scenario_file, out_cli, out_api = sys.argv[1:4]
    os.environ["MMSIM_DASK_NO_WORKERS_TIMEOUT"] = "1"
    report = {}
    cluster = local_cluster(1)
    argv = [sys.executable, "-m", "mmsim.cli", "sweep", scenario_file, "--dask",
            cluster.scheduler_address, "-o", out_cli, "--no-plot", "-q"]
    command = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timing = {}
    lose_workers(cluster, os.path.join(out_cli, "runs"), time.monotonic(), timing)
    stdout, stderr = command.communicate(timeout=120)
    report["cli"] = {"status": command.returncode, "stdout": stdout, "stderr": stderr,
                     "address": cluster.scheduler_address,
                     "waited": time.monotonic() - timing["workers_gone"]}
    cluster.close()

    # in this process (threads): no second start-up of worker processes
    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False)
    scenario = json.load(open(scenario_file))
    grid = scenario.pop("sweep")["grid"]
    closer = threading.Thread(target=lose_workers, args=(
        cluster, os.path.join(out_api, "runs"), time.monotonic(), timing))
    closer.start()
    try:
        mmsim.sweep(scenario, grid, seeds=SEEDS, executor="dask",
                    dask_address=cluster.scheduler_address, out=out_api, progress=False)
        report["api"] = {"raised": None}
    except Exception as err:
        report["api"] = {"raised": type(err).__name__, "message": str(err),
                         "mmsim": isinstance(err, getattr(mmsim, "ClusterLostError", ())),
                         "done": getattr(err, "done", None),
                         "total": getattr(err, "total", None),
                         "no_workers_for": getattr(err, "no_workers_for", None),
                         "address": cluster.scheduler_address}
    closer.join()
    cluster.close()
    print(json.dumps(report))
"""

LINE = re.compile(
    r"dask scheduler (\S+) has had no worker for 1 s mid-sweep: (\d+) of (\d+) runs finished, "
    r"saved in (\S+)/; the same sweep into that directory runs only the other (\d+)"
)


def test_a_sweep_whose_workers_all_go_gives_up_in_one_line_and_loses_no_run(tmp_path):
    """Every worker closed mid-sweep (after its first rows are saved), the scheduler
    alive: with ``MMSIM_DASK_NO_WORKERS_TIMEOUT=1`` the command exits with status 2 and
    one line (address, no worker for 1 s, runs finished of all, where saved) within a
    few seconds, no traceback, and the rows it names are on disk; the Python API raises
    :class:`mmsim.ClusterLostError` with ``no_workers_for == 1``. Before, both waited
    for a worker for good (the script's 120 s timeouts failed)."""
    report, out_cli, out_api = _run_losing(tmp_path, "lose_workers.py", _LOSE_WORKERS)

    cli = report["cli"]
    assert cli["status"] == 2, f"exit status 2, as a scheduler gone away: {cli}"
    assert cli["waited"] < 30, f"gave up {cli['waited']:.1f} s after the workers went (1 s limit)"
    _one_line_and_rows(cli, out_cli, LINE)

    api = report["api"]
    assert api["raised"] == "ClusterLostError" and api["mmsim"], api
    assert api["no_workers_for"] == 1 and api["address"] in api["message"], api
    assert 0 < api["done"] < api["total"] == 2 * SEEDS, api
    saved = _saved(out_api / "runs")
    assert len(saved) == api["done"] and all(r["status"] == "ok" for r in saved), api


def test_a_bad_no_workers_timeout_is_one_line_before_connecting(tmp_path):
    """``MMSIM_DASK_NO_WORKERS_TIMEOUT=soon``: one line naming the variable, exit status 2,
    before the (unreachable) scheduler is tried."""
    import os

    scenario_file = tmp_path / "tiny.yaml"
    scenario_file.write_text(json.dumps(SCENARIO))
    env = {**os.environ, "MMSIM_DASK_NO_WORKERS_TIMEOUT": "soon"}
    argv = [sys.executable, "-m", "mmsim.cli", "sweep", str(scenario_file), "--dask",
            "tcp://127.0.0.1:9", "-o", str(tmp_path / "out"), "--no-plot", "-q"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip() == (
        "mmsim: error: <environment>: MMSIM_DASK_NO_WORKERS_TIMEOUT: must be a number of "
        "seconds > 0 or 'none', got 'soon'"
    ), done.stderr[-2000:]
    assert not (tmp_path / "out").exists(), "nothing written before the check"
