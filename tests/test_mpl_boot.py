"""The ``mmsim`` command imports matplotlib for its figures without the 3-D toolkit
(:mod:`mmsim.mpl_boot`), draws the same figures, and leaves the toolkit importable; a
caller's ``main(argv)`` keeps matplotlib's 3-D projection. Fresh interpreters: what is
checked is what a process imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LONG = str(ROOT / "scenarios/long_gamma.yaml")

_PROBE = """
import json, sys
{call}
import matplotlib.projections as proj
skipped = "mpl_toolkits.mplot3d" not in sys.modules
names = proj.get_projection_names()
import mpl_toolkits.mplot3d  # the real toolkit still imports afterwards
print(json.dumps({{"skipped": skipped, "3d": "3d" in names, "polar": "polar" in names,
    "real": hasattr(mpl_toolkits.mplot3d, "Axes3D") and mpl_toolkits.mplot3d.Axes3D is not None}}))
"""


def _probe(call: str, cwd: Path) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(call=call)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "warning" not in out.stderr.lower(), out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_command_draws_its_figures_without_loading_the_3d_toolkit(tmp_path):
    """``mmsim run`` as the program: the figure is written, matplotlib registered its 2-D
    projections but not "3d", the toolkit was never imported, no warning was printed,
    and ``import mpl_toolkits.mplot3d`` afterwards gets the real package."""
    argv = ["mmsim", "run", LONG, "-q", "-o", "own", "--set", "clock.days=0.01"]
    own = _probe(f"sys.argv = {argv!r}\nfrom mmsim.cli import main\nmain()", tmp_path)
    assert own == {"skipped": True, "3d": False, "polar": True, "real": True}, own
    png = tmp_path / "own" / "price.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_caller_keeps_matplotlibs_3d_projection(tmp_path):
    """``main(argv)`` in a caller's process (a notebook, a test) imports matplotlib as
    matplotlib does: the "3d" projection is registered."""
    call = (
        "from mmsim.cli import main\n"
        f"main(['run', {LONG!r}, '-q', '-o', 'caller', '--set', 'clock.days=0.01'])"
    )
    caller = _probe(call, tmp_path)
    assert caller == {"skipped": False, "3d": True, "polar": True, "real": True}, caller
    assert (tmp_path / "caller" / "price.png").is_file()
