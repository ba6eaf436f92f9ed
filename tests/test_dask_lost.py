"""A sweep whose dask scheduler goes away mid-sweep: one line naming the scheduler, the
runs finished and where they are saved (exit status 2, as an unreachable ``--dask``), no
traceback; every finished run is on disk and the same sweep again runs only the others."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_sweep import ROOT, TINY

pytest.importorskip("dask.distributed")

_LOSE_CLUSTER = """
import json, os, subprocess, sys, threading, time
import mmsim
from dask.distributed import LocalCluster
from mmsim.sweep import local_cluster


def close_after_first_rows(cluster, runs, started):
    # the sweep's first rows are on disk (a task returns after half a second of runs):
    # its other runs are still to do, then close the whole cluster
    while len([f for f in os.listdir(runs) if f.endswith(".json")] if os.path.isdir(runs)
              else []) < 1 and time.monotonic() < started + 120:
        time.sleep(0.005)
    cluster.close()


if __name__ == "__main__":
    scenario_file, out_cli, out_api = sys.argv[1:4]
    report = {}
    cluster = local_cluster(2)
    argv = [sys.executable, "-m", "mmsim.cli", "sweep", scenario_file, "--dask",
            cluster.scheduler_address, "-o", out_cli, "--no-plot", "-q"]
    command = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    close_after_first_rows(cluster, os.path.join(out_cli, "runs"), time.monotonic())
    stdout, stderr = command.communicate(timeout=120)
    report["cli"] = {"status": command.returncode, "stdout": stdout, "stderr": stderr,
                     "address": cluster.scheduler_address}

    # in this process (threads): no second start-up of worker processes
    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False)
    scenario = json.load(open(scenario_file))
    grid = scenario.pop("sweep")["grid"]
    closer = threading.Thread(target=close_after_first_rows,
                              args=(cluster, os.path.join(out_api, "runs"), time.monotonic()))
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
                         "address": cluster.scheduler_address}
    closer.join()
    print(json.dumps(report))
"""

SEEDS = 40
SCENARIO = {
    **TINY,
    # ~90 ms a run: 80 runs (~3.5 s on two workers) outlast closing the cluster once the
    # first rows are saved (a dask task returns after half a second of runs); at ~30 ms a
    # run the sweep sometimes finished before the close took effect (exit 0)
    "clock": {"days": 1.5},
    "sweep": {"grid": {"dealers.0.band": [0, 500]}, "seeds": SEEDS},
}
LINE = re.compile(
    r"dask scheduler (\S+) went away mid-sweep: (\d+) of (\d+) runs finished, saved in (\S+)/; "
    r"the same sweep into that directory runs only the other (\d+)"
)


def _run_losing(tmp_path, name: str, template: str) -> tuple[dict, Path, Path]:
    """Run a script that sweeps the tiny scenario on a cluster it then breaks (a file:
    dask's spawned nannies import ``__main__``): its last stdout line (JSON), and the CLI's
    and the API's sweep directories."""
    scenario_file = tmp_path / "tiny.yaml"
    scenario_file.write_text(json.dumps(SCENARIO))
    script = tmp_path / name
    script.write_text(template.replace("SEEDS", str(SEEDS)))
    out_cli, out_api = tmp_path / "cli", tmp_path / "api"
    argv = [sys.executable, str(script), str(scenario_file), str(out_cli), str(out_api)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), out_cli, out_api


def _saved(runs) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))]


def _one_line_and_rows(cli: dict, out_cli: Path, line: re.Pattern = LINE) -> tuple[int, int]:
    """The lost sweep's command said so in one ``mmsim: error:`` line matching ``line``
    and no traceback, naming its scheduler, the runs finished of all and where they are
    saved, and exactly those rows are on disk, all successful: ``(finished, total)``."""
    assert "Traceback" not in cli["stderr"], cli["stderr"][-3000:]
    lines = [line for line in cli["stderr"].splitlines() if line.startswith("mmsim: error:")]
    assert len(lines) == 1, cli["stderr"][-3000:]
    found = line.search(lines[0])
    assert found, lines[0]
    address, finished, total, where, other = found.groups()
    finished, total, other = int(finished), int(total), int(other)
    assert address == cli["address"] and where == str(out_cli / "runs"), lines[0]
    assert total == 2 * SEEDS and 0 < finished < total and other == total - finished, lines[0]
    saved = _saved(out_cli / "runs")
    assert len(saved) == finished, f"{len(saved)} rows on disk, the line says {finished}"
    assert all(row["status"] == "ok" for row in saved), [r["error"] for r in saved]
    return finished, total


def test_a_sweep_whose_scheduler_goes_away_says_so_in_one_line_and_loses_no_run(tmp_path):
    """Closed mid-sweep (after its first rows are saved), the command exits with status 2
    and one line (address, runs finished of all, where saved), no traceback; the Python
    API raises :class:`mmsim.ClusterLostError` (before: distributed's CancelledError or
    ClosedClientError, and cancelled runs recorded as failed). The rows it names are on
    disk, all successful, and the same command again (serial) reuses exactly them and
    completes the sweep."""
    report, out_cli, out_api = _run_losing(tmp_path, "lose_cluster.py", _LOSE_CLUSTER)

    cli = report["cli"]
    assert cli["status"] == 2, f"exit status 2 as an unreachable --dask: {cli}"
    finished, total = _one_line_and_rows(cli, out_cli)
    assert not (out_cli / "results.parquet").exists()  # the table of a finished sweep only

    again = subprocess.run(
        [sys.executable, "-m", "mmsim.cli", "sweep", str(tmp_path / "tiny.yaml"), "--executor",
         "serial", "-o", str(out_cli), "--no-plot"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{total} runs (0 failed, {finished} reused from an earlier sweep)" in again.stdout

    api = report["api"]
    assert api["raised"] == "ClusterLostError" and api["mmsim"], api
    assert api["address"] in api["message"] and api["total"] == 2 * SEEDS, api
    assert 0 < api["done"] < api["total"], api
    saved = _saved(out_api / "runs")
    assert len(saved) == api["done"] and all(r["status"] == "ok" for r in saved), api


class _Cancelled:
    def result(self):
        from concurrent.futures import CancelledError

        raise CancelledError("lost")


class _LostPool:
    """A dask pool whose scheduler went away: every replay comes back cancelled."""

    address = "tcp://10.0.0.9:8786"

    def submit(self, *args):
        return _Cancelled()

    def as_completed(self, futures):
        return iter(futures)

    def cluster_lost(self) -> bool:
        return True


def test_explain_replays_whose_scheduler_goes_away_raise_cluster_lost():
    """``mmsim explain``'s replays on a lost cluster raise :class:`mmsim.ClusterLostError`
    naming the scheduler (before: each replay recorded as a CancelledError and the next
    round's submit raised distributed's ClosedClientError, a traceback)."""
    from types import SimpleNamespace

    from tqdm import tqdm

    import mmsim
    from mmsim.explain import _Replays
    from mmsim.removals import Removal
    from mmsim.scenario import load_scenario

    result = SimpleNamespace(scenario=load_scenario(TINY), entropy=7)
    replays = _Replays(result, "dask", 2, _LostPool.address, tqdm(disable=True))
    replays.pool, replays.until = _LostPool(), 120.0
    replays.removals = {"news@60": Removal("news@60", "news", "news at 60 s")}
    with pytest.raises(mmsim.ClusterLostError) as caught:
        replays.run([frozenset({"news@60"})])
    assert str(caught.value) == (
        "dask scheduler tcp://10.0.0.9:8786 went away mid-explain: 0 of 1 replays "
        "finished, nothing saved"
    )
    assert not replays.done, "a cancelled replay is no finding"
