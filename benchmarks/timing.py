"""CPU timing helpers: ``time.process_time`` (this process) and ``getrusage`` (children).

CPU time, not wall time: the machines these run on are shared, and CPU time is what
the code costs whatever else runs beside it. Every measure is repeated and reported as
its minimum (the least disturbed) and its median.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

__all__ = ["child_cpu", "cpu_of", "summary"]

_WRAPPER = (
    "import json, resource, subprocess, sys\n"
    "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(json.dumps({'rc': p.returncode, 'cpu': u.ru_utime + u.ru_stime,"
    " 'maxrss_kb': u.ru_maxrss, 'stderr': p.stderr.decode()[-400:]}))\n"
)


def summary(samples: Sequence[float]) -> dict:
    """``{"min", "median", "n"}`` of CPU seconds."""
    return {"min": min(samples), "median": statistics.median(samples), "n": len(samples)}


def cpu_of(fn: Callable[[], object], repeat: int, setup: Callable[[], object] | None = None):
    """CPU seconds (``process_time``) of ``fn(setup())`` (or ``fn()``), ``repeat`` times;
    ``setup`` is not timed. Returns :func:`summary` of the samples."""
    samples = []
    for _ in range(repeat):
        arg = setup() if setup is not None else None
        start = time.process_time()
        fn(arg) if setup is not None else fn()
        samples.append(time.process_time() - start)
    return summary(samples)


def child_cpu(argv: Sequence[str], env: dict | None = None, cwd: str | None = None) -> dict:
    """Run ``argv`` as a grandchild under a small wrapper; return its total CPU seconds
    (user + system, its own children included) and peak resident memory (MB), measured
    with ``getrusage(RUSAGE_CHILDREN)`` in the wrapper so nothing else is counted."""
    out = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=True,
    )
    rec = json.loads(out.stdout)
    if rec["rc"] != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({rec['rc']}): {rec['stderr']}")
    return {"cpu": rec["cpu"], "maxrss_mb": rec["maxrss_kb"] / 1024.0}
