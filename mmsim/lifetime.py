"""Garbage-collector policy of the ``mmsim`` command's own process (never of a caller's:
tests and notebooks that call :func:`mmsim.cli.main` with arguments keep theirs).

A one-day run holds ~300,000 objects the cyclic collector tracks (containers) just from
importing numba, pandas, pydantic and matplotlib; they live until the process exits.
CPython's collector still walks all of them in every full collection: three during
those imports (numba's registries, pandas, matplotlib) and more at interpreter
shutdown, ~0.25-0.3 s of CPU in a 1-2 s command, to find a few hundred cyclic objects.
Here the collector is paused while they load, and what they left is then frozen
(``gc.freeze``: moved out of the collector's reach); building and running the
simulation are collected as usual (they only walk what is not frozen), so a big book's
or a long run's cyclic garbage is still freed.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["loading", "skip_final_collections"]


@contextlib.contextmanager
def loading(enabled: bool = True) -> Iterator[None]:
    """Pause the cyclic collector while the body imports libraries or loads compiled
    kernels, then freeze every object alive and resume collecting. The few cyclic
    objects that imports leave stay allocated until exit (a few hundred). ``enabled``
    False: do nothing (a caller's process)."""
    if not enabled or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def skip_final_collections() -> None:
    """Just before the process exits: freeze every object alive, so that the full
    collections of interpreter shutdown skip them (~0.1-0.25 s of CPU after a run, to
    free memory the OS takes back anyway). atexit handlers, stream flushing and module
    teardown still run; only cyclic garbage is left to the OS."""
    gc.freeze()
