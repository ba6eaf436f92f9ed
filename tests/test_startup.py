"""Start-up: each command imports only what it uses (PEP 562 names in ``mmsim``, imports
inside the command functions), checked in fresh interpreters through ``sys.modules``.

What the imports cost is measured, not asserted here: ``python -m benchmarks`` (the
``startup`` case; CPU of ``mmsim --help``, ``validate`` and ``run``).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LONG = str(ROOT / "scenarios/long_gamma.yaml")
HEAVY = ("numpy", "pandas", "pyarrow", "matplotlib", "numba", "scipy", "simpy", "tqdm")
"""Libraries that take 0.03-0.3 s of CPU each to import."""


def loaded_after(code: str, tmp_path: Path) -> set[str]:
    """The top-level packages (and ``mmsim.*`` modules) in ``sys.modules`` after running
    ``code`` in a fresh interpreter (output of the code itself discarded)."""
    probe = (
        "import contextlib, io, json, sys\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        + "".join(f"        {line}\n" for line in code.splitlines())
        + "    except SystemExit:\n"
        "        pass\n"
        "print(json.dumps(sorted({m if m.startswith('mmsim') else m.split('.')[0]"
        " for m in sys.modules})))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        "import mmsim",
        "import mmsim.cli",
        "from mmsim.cli import main; main(['--help'])",
        "from mmsim.cli import main; main(['run', '--help'])",
        "from mmsim.cli import main; main(['sweep', '--help'])",
    ],
)
def test_import_and_help_load_no_heavy_library(code, tmp_path):
    loaded = loaded_after(code, tmp_path)
    assert not loaded & {*HEAVY, "pydantic", "yaml"}, sorted(loaded & {*HEAVY, "pydantic"})
    assert "mmsim.schema" not in loaded and "mmsim.engine" not in loaded
    probe = f"import sys\ntry:\n    {code}\nexcept SystemExit:\n    pass\n"
    probe += "assert 'importlib.metadata' not in sys.modules, 'the version is read on demand'"
    loaded_after(probe, tmp_path)  # exits 0: the assertion held


def test_validate_loads_the_schema_but_no_numerics_or_plotting(tmp_path):
    loaded = loaded_after(f"from mmsim.cli import main; main(['validate', {LONG!r}])", tmp_path)
    assert {"mmsim.schema", "pydantic", "yaml"} <= loaded, "validate checks the schema"
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_a_run_without_figures_never_imports_matplotlib(tmp_path):
    argv = ["run", LONG, "-q", "--no-plot", "-o", "out", "--set", "clock.days=0.01"]
    loaded = loaded_after(f"from mmsim.cli import main; main({argv!r})", tmp_path)
    assert (tmp_path / "out" / "meta.json").is_file(), "the run was written"
    assert "matplotlib" not in loaded and "mmsim.plots" not in loaded


def test_a_run_skips_numbas_scipy_blas_probe_and_leaves_scipy_usable(tmp_path):
    """numba's first kernel load probes SciPy's BLAS (``scipy.linalg``, ~0.15 s of CPU);
    the ``mmsim run`` command loads cached kernels without starting numba's compiler
    (:mod:`mmsim.kernel_loads`), and a compilation on a cache miss hides SciPy's BLAS
    from that probe (mmsim's kernels call no BLAS), and only then: SciPy's linear algebra
    still imports in the same process afterwards. ``main(argv)`` in a caller's process
    leaves numba's probe alone."""
    pytest.importorskip("scipy.linalg")
    argv = ["mmsim", "run", LONG, "-q", "--no-plot", "-o", "out", "--set", "clock.days=0.01"]
    code = (
        f"import sys; sys.argv = {argv!r}\n"
        "from mmsim.cli import main; main()\n"
        "import sys; assert 'scipy.linalg' not in sys.modules, 'probed'\n"
        "am = sys.modules.get('numba.np.arraymath')  # loaded only if the run compiled\n"
        "assert am is None or not am._HAVE_BLAS\n"
        "import scipy.linalg.cython_blas, scipy.linalg\n"
        "assert abs(scipy.linalg.det([[2.0, 0.0], [0.0, 3.0]]) - 6.0) < 1e-12"
    )
    loaded = loaded_after(code, tmp_path)
    assert (tmp_path / "out" / "meta.json").is_file(), "the run was written"
    assert "numba" in loaded and "scipy" in loaded
    caller = (
        f"from mmsim.cli import main; main({[*argv[1:6], 'caller', *argv[7:]]!r})\n"
        "import numba.np.arraymath as am; assert am._HAVE_BLAS, 'a caller keeps BLAS'"
    )
    loaded_after(caller, tmp_path)


def _gc_probe(call: str, tmp_path: Path) -> dict:
    """Run ``call`` (a ``main`` call) in a fresh interpreter and return what the cyclic
    collector did: full collections and objects they walked, and its state after."""
    probe = (
        "import gc, json, sys\n"
        "full = []\n"
        "def seen(phase, info):\n"
        "    if phase == 'stop' and info['generation'] == 2:\n"
        "        full.append(info['collected'])\n"
        "gc.callbacks.append(seen)\n"
        "from mmsim.cli import main\n"
        f"{call}\n"
        "print(json.dumps({'full': len(full), 'enabled': gc.isenabled(),"
        " 'frozen': gc.get_freeze_count()}))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.splitlines()[-1])


def test_the_command_freezes_what_imports_load_and_a_caller_keeps_its_collector(tmp_path):
    """``mmsim run`` as the program (``main()`` reading sys.argv): no full collection walks
    the ~10^6 objects numba, pandas and matplotlib load (three of them without the
    pause), they end frozen, and the collector is on; ``main(argv)`` in a caller's
    process (tests, notebooks) leaves its collector alone."""
    argv = ["mmsim", "run", LONG, "-q", "-o", "own", "--set", "clock.days=0.01"]
    own = _gc_probe(f"sys.argv = {argv!r}\nmain()", tmp_path)
    assert own["full"] == 0 and own["enabled"] and own["frozen"] > 100_000, own
    caller = _gc_probe(f"main({[*argv[1:4], '-o', 'caller', *argv[6:]]!r})", tmp_path)
    assert caller["full"] >= 1 and caller["enabled"] and caller["frozen"] == 0, caller
    assert (tmp_path / "own" / "price.png").is_file() and (
        tmp_path / "caller" / "meta.json"
    ).is_file()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_compile_is_announced_once_at_a_terminal_and_a_pipe_gets_nothing():
    """The first run after an install compiles for tens of seconds: a user at a terminal
    is told why, once per process, and only when numba really compiles (a cache miss,
    not an overload it has); a pipe or a log file gets nothing."""
    from numba import njit
    from numba.core import event

    from mmsim.numba_boot import COMPILING, announce_compiles

    assert announce_compiles(io.StringIO()) is None, "not a terminal: no listener"
    screen = _Terminal()
    listener = announce_compiles(screen)
    try:
        assert screen.getvalue() == "", "nothing compiled yet"

        @njit
        def twice(x):
            return 2 * x

        assert twice(3) == 6 and twice(4.5) == 9.0  # two compilations
        assert screen.getvalue() == COMPILING + "\n", "announced once, on the first compile"
        twice(5)  # an overload already there: no compile, nothing more
        assert screen.getvalue().count(COMPILING) == 1
    finally:
        event.unregister("numba:compile", listener)


@pytest.mark.parametrize("quiet", [False, True])
def test_sweep_announces_compiles_unless_quiet(tmp_path, monkeypatch, quiet):
    """``mmsim sweep`` compiles on a first run too: it installs the notice at a terminal
    (announce_compiles itself checks for one), and not with ``-q``."""
    import mmsim.numba_boot as boot
    from mmsim.cli import main

    calls = []
    monkeypatch.setattr(boot, "announce_compiles", lambda *a: calls.append(a))
    scenario = Path(__file__).resolve().parents[1] / "scenarios" / "long_gamma.yaml"
    args = ["sweep", str(scenario), "--seeds", "1", "--executor", "serial", "--no-plot"]
    args += ["--set", "clock.days=0.01", "-o", str(tmp_path / "sw")] + (["-q"] if quiet else [])
    assert main(args) == 0
    assert len(calls) == (0 if quiet else 1), f"quiet={quiet}: announce_compiles called {calls}"
