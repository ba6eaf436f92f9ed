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
"""

from __future__ import annotations

import sys

__all__ = ["skip_scipy_blas_probe"]

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
