"""Load mmsim's kernels from numba's disk cache without starting numba's compiler.

Before numba loads a cached function it "refreshes" its CPU target
(``FunctionCache.load_overload`` calls ``target_context.refresh()``): it imports and
installs every typing and lowering registry numba has (``numba.cpython.*``,
``numba.np.arraymath`` / ``npyimpl`` / ``linalg``, ``numba.typed``, jitclass, the
random generators ...), ~0.07 s of CPU, plus ~0.03 s for ``numba.np.arraymath``'s SciPy
BLAS probe (:mod:`mmsim.numba_boot`). A compiler needs those registries to type and
lower new code; loading machine code from the cache does not: it needs numba's runtime
(NRT) started, the C helpers' symbols that every target context registers when it is
made, and the function's own object code, which carries its callees linked in. So a
``mmsim run`` or ``mmsim sweep`` paid a compiler's start-up to run code it never
compiles: about a tenth of the fixed CPU every fresh command and every fresh worker pays
before its first run.

:func:`lean_kernel_loads` makes a cached load do only what it needs: start the runtime
(``rtsys.initialize``, which numba's refresh also does first), make sure the one symbol
source a refresh would add at import (``numba.cpython.hashing`` registers the hash
secret's symbols) is there, and load. Anything that compiles (a cache miss, a first run
after an install) goes through numba's compiler, which refreshes the target itself
(``CompilerBase.__init__``), so a miss costs what it did. SciPy's BLAS probe, which only
a refresh runs, is then skipped just before the first compilation (a ``numba:compile``
listener calls :func:`mmsim.numba_boot.skip_scipy_blas_probe`), as the command did
eagerly before. ``_CacheLocator.ensure_cache_path``, which creates and deletes a
temporary file in ``__pycache__`` for every ``@njit(cache=True)`` function at import to
check the directory is writable (~150 of them: ~0.01 s), checks each directory once.

Like :func:`~mmsim.numba_boot.skip_scipy_blas_probe`, this changes numba's behaviour for
the whole process, so it is installed only by the ``mmsim`` command in its own process
and by the sweep's fork server (processes that run only mmsim's kernels), never on
``import mmsim``. The results are the same machine code, so the same bits
(tests/test_kernel_loads.py). On a numba without these hooks it does nothing.
"""

from __future__ import annotations

__all__ = ["lean_kernel_loads"]

_LEAN = "_mmsim_lean"


def lean_kernel_loads() -> bool:
    """Install the lean cached loads in this process (see the module docstring). Returns
    whether it installed them (False: already installed, or a numba without the hooks)."""
    try:
        from numba.core import caching, event
        from numba.core.cpu import CPUContext
        from numba.core.runtime import rtsys
    except ImportError:  # a numba that moved these
        return False
    cache = caching.FunctionCache
    full = getattr(cache, "load_overload", None)
    hooks = ("_load_overload", "_guard_against_spurious_io_errors")
    if full is None or getattr(full, _LEAN, False) or not all(hasattr(cache, h) for h in hooks):
        return False

    def load_overload(self, sig, target_context):
        if not isinstance(target_context, CPUContext):
            return full(self, sig, target_context)
        rtsys.initialize(target_context)  # what loaded code calls: NRT's symbols and atomics
        import numba.cpython.hashing  # noqa: F401  (registers the hash secret's symbols)

        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)

    setattr(load_overload, _LEAN, True)
    cache.load_overload = load_overload
    event.register("numba:compile", _probe_skipper(event))
    _check_cache_dirs_once(caching)
    return True


def _probe_skipper(event):
    """A ``numba:compile`` listener: before the first compilation (whose compiler
    refreshes the target and so imports ``numba.np.arraymath``), hide SciPy's BLAS from
    its probe (:func:`mmsim.numba_boot.skip_scipy_blas_probe`)."""

    class ProbeSkipper(event.Listener):
        done = False

        def on_start(self, ev) -> None:
            if not self.done:
                self.done = True
                from mmsim.numba_boot import skip_scipy_blas_probe

                skip_scipy_blas_probe()

        def on_end(self, ev) -> None:
            pass

    return ProbeSkipper()


def _check_cache_dirs_once(caching) -> None:
    """``ensure_cache_path`` (make the cache directory, check it is writable with a
    temporary file) once per directory instead of once per function."""
    locator = getattr(caching, "_CacheLocator", None)
    ensure = getattr(locator, "ensure_cache_path", None)
    if ensure is None or getattr(ensure, _LEAN, False):
        return
    checked: set[str] = set()

    def ensure_cache_path(self) -> None:
        path = self.get_cache_path()
        if path not in checked:
            ensure(self)  # raises where the directory cannot be written: not remembered
            checked.add(path)

    setattr(ensure_cache_path, _LEAN, True)
    locator.ensure_cache_path = ensure_cache_path
