"""Import matplotlib for mmsim's figures without its 3-D axes, in the ``mmsim`` command's
own process.

``matplotlib.figure`` imports ``matplotlib.projections``, which imports
``mpl_toolkits.mplot3d`` only to register the ``"3d"`` projection: ~0.05-0.07 s of CPU
(a fifth of importing matplotlib) that a run's or a sweep's figures, all 2-D, never use.
:func:`without_3d_axes` lets ``matplotlib.projections`` find a stand-in whose
``Axes3D`` is None, which is matplotlib's own "3-D not available" branch (it then
registers the 2-D projections only), and takes the stand-in out again afterwards, so a
later ``import mpl_toolkits.mplot3d`` loads the real package.

Only the command uses it (``enabled``: ``main()`` reading ``sys.argv``), as for
:mod:`mmsim.lifetime`: a notebook or a test calling ``main(argv)`` keeps matplotlib's
3-D projection.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator

__all__ = ["without_3d_axes"]

_MPLOT3D = "mpl_toolkits.mplot3d"


@contextlib.contextmanager
def without_3d_axes(enabled: bool = True) -> Iterator[None]:
    """While the body first imports matplotlib's figures, register no 3-D projection
    (see the module docstring). Does nothing if ``enabled`` is False or matplotlib's
    projections (or the 3-D toolkit) are already imported."""
    if not enabled or "matplotlib.projections" in sys.modules or _MPLOT3D in sys.modules:
        yield
        return
    stand_in = types.ModuleType(_MPLOT3D, "mmsim: the 3-D projection is not loaded here")
    stand_in.Axes3D = None  # type: ignore[attr-defined]
    sys.modules[_MPLOT3D] = stand_in
    try:
        yield
    finally:
        if sys.modules.get(_MPLOT3D) is stand_in:
            del sys.modules[_MPLOT3D]
