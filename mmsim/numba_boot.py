"""Start numba without the SciPy BLAS probe, for the ``mmsim`` command's own process.

When numba's CPU target first loads its lowering registries (the first time any
compiled kernel is called or loaded from the cache), ``numba.np.arraymath`` runs
``_HAVE_BLAS = _check_blas()``, which imports ``scipy.linalg.cython_blas`` if SciPy
is installed: ~0.13-0.17 s of CPU (``scipy.linalg`` and everything it pulls in),
about a tenth of a one-day ``mmsim run``. The flag only chooses how *newly compiled*
functions evaluate a float inner product (``np.dot`` of two vectors and the like:
SciPy's BLAS, or a plain loop); mmsim's kernels call no BLAS routine, so their cached
machine code is the same either way.

:func:`skip_scipy_blas_probe` makes that probe find no SciPy BLAS. It is called only by
the ``mmsim`` command in its own process (``main()`` reading ``sys.argv``) and by the
sweep's fork server (:mod:`mmsim._warm`, a process that only runs mmsim's kernels),
never on ``import mmsim`` nor by ``main(argv)`` in a caller's process, so a user's own
numba functions in a notebook keep the BLAS path; SciPy stays importable afterwards.

:func:`announce_compiles` tells a user at a terminal why the first run after an install
or an upgrade sits still: numba compiles the kernels it cannot load from its disk cache
(tens of seconds of CPU, once). It listens to numba's ``numba:compile`` event, which
fires only on a cache miss, so a warm run pays nothing.

:class:`CompileLog` lists what a cold cache costs: every function numba compiles,
with its signature and CPU seconds (``python -m benchmarks.compiles`` prints it for a
scenario; tests/test_compiles.py checks that a default run compiles each of mmsim's
kernels once). It loads nothing of mmsim, so it can watch another checkout's package.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO

__all__ = ["Compile", "CompileLog", "announce_compiles", "skip_scipy_blas_probe"]

_PROBED = "scipy.linalg.cython_blas"


def skip_scipy_blas_probe() -> bool:
    """Import numba's array-math registry with ``scipy.linalg.cython_blas`` hidden, so
    its BLAS probe answers "none" without importing SciPy's linear algebra. Returns
    whether it did so (False: the registry was already loaded, or SciPy's BLAS already
    imported, so there was nothing left to save)."""
    if "numba.np.arraymath" in sys.modules or _PROBED in sys.modules:
        return False
    sys.modules[_PROBED] = None  # ``import`` of a None entry raises ImportError
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        if sys.modules.get(_PROBED, 0) is None:
            del sys.modules[_PROBED]
    return True


COMPILING = (
    "mmsim: compiling the simulation kernels (first run after an install or upgrade; "
    "up to a minute of CPU, then cached on disk)"
)


def announce_compiles(stream: TextIO | None = None) -> object | None:
    """Print :data:`COMPILING` once to ``stream`` (default stderr) when numba first
    compiles a function in this process, if ``stream`` is a terminal. Returns the
    listener installed (for ``numba.core.event.unregister("numba:compile", it)``), or
    None when ``stream`` is not a terminal."""
    out = sys.stderr if stream is None else stream
    if not out.isatty():
        return None
    from numba.core import event
    from tqdm import tqdm

    class _Once(event.Listener):
        said = False

        def on_start(self, ev: event.Event) -> None:
            if not self.said:  # a flag: unregistering inside numba's broadcast loop
                self.said = True  # would skip the next listener
                tqdm.write(COMPILING, file=out)  # does not garble a progress bar

        def on_end(self, ev: event.Event) -> None:
            pass

    listener = _Once()
    event.register("numba:compile", listener)
    return listener


@dataclass(frozen=True)
class Compile:
    """One compilation numba made (a disk-cache miss)."""

    function: str  # the Python function: module.qualname
    signature: tuple[str, ...]  # numba's argument types, as text
    seconds: float  # CPU s (process_time), those of the compilations it set off excluded
    inlined: bool  # compiled for LLVM to inline into its callers (``forceinline``)


class CompileLog:
    """Numba's compilations in this process while started (``with CompileLog() as log``):
    :attr:`compiles` in the order they end (a function after those its typing compiled)."""

    def __init__(self) -> None:
        self.compiles: list[Compile] = []
        self._listener: object | None = None

    def __enter__(self) -> CompileLog:
        from numba.core import event

        stack: list[list[float]] = []  # per compilation in flight: start CPU, nested CPU
        compiles = self.compiles

        class _Log(event.Listener):
            def on_start(self, ev: event.Event) -> None:
                stack.append([time.process_time(), 0.0])

            def on_end(self, ev: event.Event) -> None:
                start, nested = stack.pop()
                spent = time.process_time() - start
                if stack:
                    stack[-1][1] += spent
                disp, args = ev.data["dispatcher"], tuple(ev.data["args"])
                fndesc = getattr(disp.overloads.get(args), "fndesc", None)
                func = disp.py_func
                compiles.append(
                    Compile(
                        function=f"{func.__module__}.{func.__qualname__}",
                        signature=tuple(str(a) for a in args),
                        seconds=spent - nested,
                        inlined=bool(getattr(fndesc, "inline", False)),
                    )
                )

        self._listener = _Log()
        event.register("numba:compile", self._listener)
        return self

    def __exit__(self, *exc: object) -> None:
        from numba.core import event

        if self._listener is not None:
            event.unregister("numba:compile", self._listener)
            self._listener = None
