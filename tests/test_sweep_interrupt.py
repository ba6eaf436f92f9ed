"""An interrupted sweep loses no finished run and leaves no half-written file.

The real command in a subprocess with a pool of two workers: interrupted (Ctrl-C, i.e.
SIGINT to its whole process group) or with one of its workers killed, once a few runs
have finished; then the same command again finishes the rest without redoing any.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def sweep_command(out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mmsim.cli",
        "sweep",
        str(ROOT / "scenarios/long_gamma.yaml"),
        "--grid",
        "dealers.0.band=0,10,20,30,40,50,60,70,80,90",
        "--seeds",
        "3",
        "--set",
        "clock.days=0.5",  # runs of ~40 ms: the sweep is still going when signalled
        "--executor",
        "processes",
        "--workers",
        "2",
        "--no-plot",
        "-o",
        str(out),
    ]


def start_and_wait_for_runs(out: Path, n: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        sweep_command(out),
        start_new_session=True,  # its own process group, as a terminal's foreground job
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while len(list((out / "runs").glob("*.json"))) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no run finished in 120 s"
        time.sleep(0.05)
    return proc


def finished_runs(out: Path) -> dict[str, dict]:
    """Every per-run file parses completely (no half-written file)."""
    return {p.stem: json.loads(p.read_text()) for p in (out / "runs").glob("*.json")}


def test_ctrl_c_keeps_every_finished_run_and_a_rerun_completes(tmp_path):
    out = tmp_path / "sw"
    proc = start_and_wait_for_runs(out, 3)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "mmsim: error: interrupted"
    kept = finished_runs(out)
    assert len(kept) >= 3
    stamps = {p.stem: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}
    ours = {".mmsim-files", ".mmsim-lock"}  # the manifest and the lock file
    half = [p for p in out.rglob("*") if p.name.startswith(".") and p.name not in ours]
    assert not half, half  # no half-written temporary file

    rerun = subprocess.run(sweep_command(out), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == 30 and (table["status"] == "ok").all()
    again = finished_runs(out)
    for rid, row in kept.items():  # the finished runs were reused, not redone
        assert again[rid] == row
        assert (out / "runs" / f"{rid}.json").stat().st_mtime_ns == stamps[rid]


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def pool_workers(pid: int) -> list[int]:
    """The sweep's worker processes: children of its fork server (or, with spawn, its
    own children), less multiprocessing's resource tracker."""
    workers = []
    for child in _children(pid):
        cmdline = Path(f"/proc/{child}/cmdline").read_text()
        if "forkserver" in cmdline:
            workers += _children(child)
        elif "resource_tracker" not in cmdline:
            workers.append(child)
    return workers


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc")
def test_a_killed_worker_costs_no_run_the_sweep_restarts_its_pool(tmp_path):
    out = tmp_path / "sw"
    proc = start_and_wait_for_runs(out, 3)
    deadline = time.monotonic() + 60
    # two workers: one forked, the sweep's own process the other (or, served by a fork
    # server, two); it runs runs itself until then
    while not (workers := pool_workers(proc.pid)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no pool worker started in 60 s"
        time.sleep(0.05)
    kept = finished_runs(out)
    os.kill(workers[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "a sweep worker died; restarting" in err
    assert "Traceback" not in err, err  # the pool's manager thread did not fail
    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == 30 and (table["status"] == "ok").all()  # the lost runs ran again
    after = finished_runs(out)
    assert all(after[rid] == row for rid, row in kept.items())


def test_ctrl_c_on_a_dask_sweep_prints_one_line(tmp_path):
    """Ctrl-C reaches the whole process group; dask's workers used to print a traceback
    each (76 lines with two workers). Now they ignore it and the sweep shuts them down."""
    pytest.importorskip("dask.distributed")
    out = tmp_path / "sw"
    cmd = sweep_command(out)
    cmd[cmd.index("processes")] = "dask"
    cmd[cmd.index("--workers") + 1] = "1"
    proc = subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while len(list((out / "runs").glob("*.json"))) < 1:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no run finished in 120 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    lines = [x for x in err.replace("\r", "\n").splitlines() if x.strip()]
    lines = [x for x in lines if not x.startswith(("sweep:", "grid:"))]  # progress, axes
    assert proc.returncode == 130 and lines == ["mmsim: error: interrupted"], err


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork and PR_SET_PDEATHSIG")
def test_a_sweep_killed_outright_leaves_no_worker_and_no_lock(tmp_path):
    """SIGKILL to the sweep's process alone (no clean-up can run): its workers, forked
    from it, die with it (an orphan would run on and hold the directory's lock), and
    the same command then finishes the sweep."""
    out = tmp_path / "sw"
    proc = start_and_wait_for_runs(out, 3)
    deadline = time.monotonic() + 60
    while not (workers := pool_workers(proc.pid)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no pool worker started in 60 s"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 10
    while [w for w in workers if _alive(w)]:
        assert time.monotonic() < deadline, "workers outlived their sweep by 10 s"
        time.sleep(0.05)
    rerun = subprocess.run(sweep_command(out), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == 30 and (table["status"] == "ok").all()


_HOLD_THE_BAR_LOCK = """
import os, signal, sys
from tqdm import tqdm
from mmsim import workers

bar = tqdm(total=1, disable=True)  # the sweep's bar exists before its workers fork
ctx = workers._process_context(fork=True)  # what a sweep on forked workers does
held = ctx.Event()

def hold():  # a worker inside tqdm() (every run makes one) when it is killed
    tqdm.get_lock().acquire()
    held.set()
    signal.pause()

proc = ctx.Process(target=hold)
proc.start()
assert held.wait(20), "the worker never took the lock"
os.kill(proc.pid, signal.SIGKILL)
proc.join()
bar.close()  # the sweep closing its progress bar
with tqdm(total=1, disable=True):
    pass
print("free")
"""


def test_a_worker_killed_holding_the_progress_lock_cannot_hang_the_sweep():
    """A forked worker SIGKILLed while it holds tqdm's lock (each run takes it: tqdm()
    locks it even when disabled): the sweep's own bar still opens and closes at once
    (tqdm's default lock is a semaphore shared across fork; the sweep hung on it for
    good after a Ctrl-C). 60 s would mean a hang."""
    out = subprocess.run([sys.executable, "-c", _HOLD_THE_BAR_LOCK], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip() == "free", out.stderr[-2000:]
