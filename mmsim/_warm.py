"""Imported by the sweep's fork server: load mmsim and its compiled kernels once, so
every worker forked from it starts warm (see :mod:`mmsim.workers`).

``gc.freeze()`` then moves every object loaded so far out of the garbage collector's
reach: a forked worker's full collections would otherwise walk (and so copy, page by
page) the whole inherited heap of pandas, numba and llvmlite objects, which made runs
in workers several times slower than the same runs in the parent.
"""

import gc

from mmsim.kernel_loads import lean_kernel_loads
from mmsim.workers import _warm

lean_kernel_loads()  # the server runs only mmsim's kernels (see mmsim.kernel_loads)
_warm()
gc.collect()
gc.freeze()
