"""The first run after an install: what numba compiles with its disk cache empty.

One ``mmsim run long_gamma --no-plot`` in a fresh process with a fresh
``NUMBA_CACHE_DIR`` (:func:`benchmarks.compiles.cold_run`, recording with
:class:`mmsim.numba_boot.CompileLog`), as a user at a terminal sees it, then a second
run on the cache it left. Each of mmsim's kernels must compile with one
signature: a second one (an array view's layout, a constant passed as a literal type, a
different scalar type) costs a whole compilation on every fresh install and in every CI
worker. The kernels LLVM inlines into their callers (``forceinline``) must be those meant
to be: numba hands a caller's ``forceinline`` to every function it compiles for it,
unless that function says ``forceinline=False``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from benchmarks.cases import SCENARIOS
from benchmarks.compiles import cold_run
from mmsim.numba_boot import COMPILING

ROOT = Path(__file__).resolve().parents[1]
INLINED = {
    "mmsim.kernel_checks._check",
    "mmsim.kernel_checks._eval",
    "mmsim.book_kernels.holder_cols",
    "mmsim.fastpath._rest",
}


@pytest.fixture(scope="module")
def cold() -> dict:
    rec = cold_run(SCENARIOS / "long_gamma.yaml", ROOT, then_warm=True, screen=True)
    assert rec["rc"] == 0, "mmsim run long_gamma with an empty numba cache"
    assert rec["warm"]["rc"] == 0, "mmsim run long_gamma on the cache the first run left"
    return rec


def test_each_kernel_compiles_one_signature_on_a_cold_cache(cold):
    sigs: dict[str, set] = defaultdict(set)
    for c in cold["compiles"]:
        if c["function"].startswith("mmsim."):
            sigs[c["function"]].add(tuple(c["signature"]))
    assert "mmsim.fastpath.advance" in sigs, "the cold run compiled the fast path's kernel"
    repeated = {f: sorted(s) for f, s in sigs.items() if len(s) > 1}
    assert not repeated, f"compiled more than once in a cold long_gamma run: {repeated}"


def test_only_the_chosen_kernels_are_inlined_by_llvm(cold):
    inlined = {
        c["function"]
        for c in cold["compiles"]
        if c["inlined"] and c["function"].startswith("mmsim.") and "<locals>" not in c["function"]
    }
    assert inlined == INLINED, (
        f"forceinline kernels in a cold long_gamma run: {sorted(inlined)} (expected "
        f"{sorted(INLINED)}; a callee of _check or _eval without forceinline=False inherits it)"
    )


def test_a_warm_run_compiles_nothing(cold):
    """Everything a run calls from Python loads from the disk cache: a kernel compiled
    without ``cache=True``, or called with a signature the first run did not see, would
    compile again in every process."""
    compiled = sorted({c["function"] for c in cold["warm"]["compiles"]})
    assert not compiled, f"a second long_gamma run on a full cache compiled {compiled}"


def test_the_first_run_says_it_compiles_and_a_cached_run_does_not(cold):
    """A user at a terminal is told once why the first run sits still; the run that loads
    every kernel from the cache prints no such line."""
    assert cold["stderr"].count(COMPILING) == 1, (
        f"the cold run's terminal showed {cold['stderr'].count(COMPILING)} notices (1 expected)"
    )
    assert COMPILING not in cold["warm"]["stderr"], "the cached run announced a compile"
