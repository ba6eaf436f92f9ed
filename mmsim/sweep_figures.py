"""A sweep's figures drawn on two cores: the command's process and one fork of it.

``mmsim sweep`` draws three figures once its runs are done (about 0.65 s of CPU for
band_sweep: the parameter line, the heatmap and the distributions, each mostly PNG
rendering), a fixed cost its workers cannot share. Given more than one worker and a
process that may fork (:func:`mmsim.workers.can_fork`: Linux, no other thread alive),
:func:`save_sweep_figures` forks once: the child draws the distributions, the heaviest,
while this process draws the others, so the figures take about half the wall time.
Same files, same pixels: each figure is drawn by the same function either way, and
written atomically. A child that fails (or is killed) leaves its figures to this
process, which then draws them itself; the child dies with this process and ignores
Ctrl-C (this process's handler stops the command).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from mmsim.workers import _die_with, can_fork

CHILD_KINDS = frozenset({"distributions"})
"""The figure kinds the forked child draws (the heaviest: a panel per metric)."""
PARENT_KINDS = frozenset({"line", "heatmap"})
"""The figure kinds this process draws meanwhile."""


def save_sweep_figures(directory: str | os.PathLike, workers: int | None = 1) -> list[Path]:
    """Write the sweep's figures (:func:`mmsim.plots_sweep.save_sweep_plots`), on two
    processes when ``workers`` (``None``: this process's cores) is at least 2 and this
    process may fork; returns their paths in the order
    :func:`~mmsim.plots_sweep.figure_names` gives them."""
    from mmsim.plots_sweep import save_sweep_plots
    from mmsim.sweep import _cores

    if (workers or _cores()) < 2 or not can_fork():
        return save_sweep_plots(directory)
    read, write = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: its figures, their paths down the pipe, and out
        os.close(read)
        code = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            _die_with(parent)
            paths = save_sweep_plots(directory, kinds=CHILD_KINDS)
            os.write(write, json.dumps([str(p) for p in paths]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    try:
        mine = save_sweep_plots(directory, kinds=PARENT_KINDS)
    finally:
        with os.fdopen(read, "rb") as pipe:
            message = pipe.read()
        _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        theirs = [Path(p) for p in json.loads(message)]
    else:  # the child failed: its figures, here
        theirs = save_sweep_plots(directory, kinds=CHILD_KINDS)
    return mine + theirs  # figure_names's order: the distributions come last
