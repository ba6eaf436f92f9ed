"""Lean cached loads (:mod:`mmsim.kernel_loads`): the ``mmsim`` command loads its kernels
from numba's disk cache without starting numba's compiler, gets the same bits, and
still compiles (and skips SciPy's BLAS probe) on a cache miss. Each case runs in fresh
interpreters, since what is checked is what a process imports and loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
LONG = str(ROOT / "scenarios/long_gamma.yaml")


def _python(code: str, cwd: Path, path: str = "") -> dict:
    """Run ``code`` in a fresh interpreter (mmsim of this checkout, plus ``path`` on
    ``sys.path``); return the JSON its last line prints."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), path) if p),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


_RUN = """
import json, sys
sys.argv = ["mmsim", "run", {scenario!r}, "-q", "--no-plot", "-o", {out!r},
            "--set", "clock.days=0.05"]
from mmsim.cli import main
code = main()
print(json.dumps({{"code": code,
    "arraymath": "numba.np.arraymath" in sys.modules,
    "scipy_linalg": "scipy.linalg" in sys.modules}}))
"""


def test_the_command_loads_cached_kernels_without_numbas_compiler_and_same_bits(tmp_path):
    """Warm cache (a first run may compile): ``mmsim run`` as the program (lean loads)
    never starts numba's compiler (``numba.np.arraymath``, imported by the target's
    refresh, stays out) and writes the same series, trades and metrics, bit for bit, as
    the same run in a caller's process (``main(argv)``: numba's own loads)."""
    _python(_RUN.format(scenario=LONG, out="warm"), tmp_path)  # fills the cache if cold
    lean = _python(_RUN.format(scenario=LONG, out="lean"), tmp_path)
    assert lean == {"code": 0, "arraymath": False, "scipy_linalg": False}, lean
    caller = (
        "import json, sys\nfrom mmsim.cli import main\n"
        f"code = main(['run', {LONG!r}, '-q', '--no-plot', '-o', 'full', "
        "'--set', 'clock.days=0.05'])\n"
        "print(json.dumps({'code': code, 'arraymath': 'numba.np.arraymath' in sys.modules}))"
    )
    full = _python(caller, tmp_path)
    assert full == {"code": 0, "arraymath": True}, "numba's own loads refresh the target"
    for name in ("series.parquet", "trades.parquet"):
        a, b = pd.read_parquet(tmp_path / "lean" / name), pd.read_parquet(tmp_path / "full" / name)
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
    metrics = [json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("lean", "full")]
    assert metrics[0] == metrics[1]


_KERNEL = '''
import numpy as np
from numba import njit


@njit(cache=True)
def tally(text, xs):
    """A dict keyed by strings (numba hashes them with the process's hash secret, whose
    symbols a refresh would register) and a new array (numba's runtime, NRT)."""
    words = text.split(" ")
    counts = {words[0]: 0}
    for w in words:
        if w in counts:
            counts[w] += 1
        else:
            counts[w] = 1
    out = np.empty(len(xs))
    for i in range(len(xs)):
        out[i] = xs[i] * counts["b"]
    return out


@njit(cache=True)
def total(text, xs):
    """Calls ``tally``: compiling it links ``tally``'s library, however it was loaded."""
    return tally(text, xs).sum()
'''

_CALL = """
import json, sys
import numpy as np
from mmsim.kernel_loads import lean_kernel_loads
installed = lean_kernel_loads()
import lean_probe
out = lean_probe.tally("a b b c", np.arange(3.0))
disp = lean_probe.tally
arraymath = "numba.np.arraymath" in sys.modules  # before any compilation below
{then}
print(json.dumps({"installed": installed, "out": out.tolist(), "arraymath": arraymath,
    "hits": sum(disp.stats.cache_hits.values()), "misses": sum(disp.stats.cache_misses.values()),
    "total": locals().get("whole"),
    "blas": bool(getattr(sys.modules.get("numba.np.arraymath"), "_HAVE_BLAS", False)),
    "scipy_linalg": "scipy.linalg" in sys.modules}))
"""


def test_a_cache_miss_compiles_without_the_blas_probe_and_the_next_process_loads_it(tmp_path):
    """Under lean loads a function not in the cache still compiles (numba's compiler
    refreshes the target itself), with SciPy's BLAS hidden from the probe as before;
    a second process then loads it from the cache, lean, and gets the same answer from
    code that hashes strings and allocates arrays; a caller compiled after that lean
    load links it and gets the right sum."""
    (tmp_path / "lean_probe.py").write_text(textwrap.dedent(_KERNEL))
    first = _python(_CALL.replace("{then}", ""), tmp_path, path=str(tmp_path))
    assert first["installed"] and first["misses"] == 1 and first["hits"] == 0, first
    assert first["out"] == [0.0, 2.0, 4.0]
    assert first["arraymath"] and not first["blas"] and not first["scipy_linalg"], first
    then = "whole = float(lean_probe.total('a b b c', np.arange(3.0)))"
    second = _python(_CALL.replace("{then}", then), tmp_path, path=str(tmp_path))
    assert second["hits"] == 1 and second["misses"] == 0, second
    assert second["out"] == [0.0, 2.0, 4.0]
    assert not second["arraymath"], "a cached load does not start numba's compiler"
    assert second["total"] == 6.0, "a caller compiled after the lean load links it"
    assert not second["blas"] and not second["scipy_linalg"], second


def test_installing_twice_is_a_no_op_and_callers_keep_numbas_loads():
    """``import mmsim`` installs nothing: only the command (and the sweep's fork server)
    call :func:`lean_kernel_loads`; a second call changes nothing."""
    code = (
        "import json, mmsim.engine\n"
        "from numba.core import caching\n"
        "before = getattr(caching.FunctionCache.load_overload, '_mmsim_lean', False)\n"
        "from mmsim.kernel_loads import lean_kernel_loads\n"
        "print(json.dumps([before, lean_kernel_loads(), lean_kernel_loads(),"
        " caching.FunctionCache.load_overload._mmsim_lean]))"
    )
    assert _python(code, ROOT) == [False, True, False, True]


@pytest.mark.parametrize("missing", ["_load_overload", "_guard_against_spurious_io_errors"])
def test_a_numba_without_the_hooks_keeps_its_own_loads(missing):
    """On a numba whose cache lacks the methods the lean load calls, nothing is
    installed (numba's own loads stay)."""
    code = (
        "import json\nfrom numba.core import caching\n"
        f"delattr(caching.Cache, {missing!r})\n"
        "from mmsim.kernel_loads import lean_kernel_loads\n"
        "print(json.dumps([lean_kernel_loads(),"
        " hasattr(caching.FunctionCache.load_overload, '_mmsim_lean')]))"
    )
    assert _python(code, ROOT) == [False, False]
