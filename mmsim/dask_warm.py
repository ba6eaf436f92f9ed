"""The dask worker plugin that warms every worker of a sweep's cluster once.

Registered by a dask sweep on its scheduler (:class:`WarmUp`, idempotent): every worker
of the cluster, those running now and those that join later (a worker restarted by its
nanny after a ``KilledWorker``, an autoscaled one), runs :func:`mmsim.workers._warm_dask_worker`
once, as it is set up, before its first task: mmsim imported, its compiled kernels loaded
from numba's cache and the garbage collector's view of that heap frozen. A later sweep on
the same cluster finds the plugin registered and costs no worker a round trip. Imported
only by dask sweeps (it imports ``distributed``).
"""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

PLUGIN_NAME = "mmsim-warm"
"""The plugin's name on the scheduler (one per cluster)."""


class WarmUp(WorkerPlugin):
    """Warm each dask worker once as it is set up (see the module docstring)."""

    idempotent = True  # registered again by every sweep: a no-op once the scheduler has it
    name = PLUGIN_NAME

    def setup(self, worker: Any) -> None:
        from mmsim.workers import _warm_dask_worker

        _warm_dask_worker()


def register(client: Any) -> None:
    """Register :class:`WarmUp` on ``client``'s scheduler (once per cluster); returns when
    every worker now running has warmed up (a worker without mmsim raises here)."""
    client.register_plugin(WarmUp(), name=PLUGIN_NAME)
