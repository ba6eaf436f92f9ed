"""The claims file of a dask sweep whose workers share this machine
(:mod:`mmsim.dask_claims`): every run taken exactly once however many tasks take at
once, nothing taken once the sweep stops the counter, no file left behind."""

from __future__ import annotations

import os
import threading

from mmsim.dask_claims import RunClaims, open_claims


def test_tasks_taking_at_once_get_every_run_exactly_once():
    runs = [({"dealers.0.band": b}, seed, f"run{b}-{seed}") for b in (0, 100) for seed in range(50)]
    claims = RunClaims.create(runs)
    assert claims is not None
    got: dict[int, list[int]] = {}

    def task(number: int) -> None:
        with open_claims(str(claims.path)) as taker:
            assert taker.runs == runs, "a task reads the runs from the file"
            while (i := taker.take()) is not None:
                got.setdefault(number, []).append(i)

    threads = [threading.Thread(target=task, args=(k,)) for k in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = sorted(i for mine in got.values() for i in mine)
    assert taken == list(range(len(runs))), "each of 100 runs taken exactly once by 4 tasks"
    assert claims.taken() == len(runs) and claims.stop() == len(runs)
    claims.close()
    assert not claims.path.exists() and open_claims(str(claims.path)) is None


def test_a_stopped_counter_hands_out_nothing_more_and_says_how_many_were_taken():
    claims = RunClaims.create([({}, seed, str(seed)) for seed in range(10)])
    with open_claims(str(claims.path)) as taker:
        assert [taker.take() for _ in range(3)] == [0, 1, 2]
        assert claims.stop() == 3
        assert taker.take() is None, "a run taken after the sweep stopped the counter"
        assert claims.stop() == 3, "stopping again: still the runs taken before the stop"
    claims.close()


def test_a_killed_sweeps_file_is_removed_by_the_next_sweep_and_a_live_ones_kept(tmp_path):
    """SIGKILL leaves a claims file behind (its sweep never reaches close): the next
    sweep removes files whose creating process is gone and keeps live ones."""
    import subprocess
    import sys

    from mmsim import dask_claims

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    orphan = tmp_path / f"mmsim-claims-{int(dead.stdout)}-abc123"
    live = tmp_path / f"mmsim-claims-{os.getpid()}-def456"
    other = tmp_path / "mmsim-claims-notapid"
    for p in (orphan, live, other):
        p.write_bytes(b"x")
    assert dask_claims.remove_orphans(tmp_path) == 1
    assert not orphan.exists(), "the file of a process that is gone"
    assert live.exists() and other.exists(), "a live process's file, a name without a process id"
