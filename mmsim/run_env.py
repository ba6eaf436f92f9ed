"""The simpy environment of a run: a diverged run stops at the instant it diverged.

simpy turns an exception raised in a process into a failed process event scheduled at
the current time with normal priority, *after* every event already queued for that
instant. A dealer that detects divergence (``InstabilityError``: ``lam * G <= -1``, a
runaway, a price leaving its domain) would thus let the other agents due at the same
instant act first: a second dealer's scheduled rehedge at the same second traded after
the run had stopped on the simpy agents, while the compiled kernel (which stops where it
detects) did not: one trade more on ``engine.fast_path: off`` than on the fast path.
Here such a failure is scheduled urgent, ahead of every normal event of its instant, so
both paths stop where the divergence is detected and give the same run so far.
"""

from __future__ import annotations

import simpy
from simpy.core import URGENT
from simpy.events import Event, Process

from mmsim.errors import InstabilityError

__all__ = ["RunEnvironment"]


class RunEnvironment(simpy.Environment):
    """``simpy.Environment`` whose failed processes with an :class:`InstabilityError`
    are played before the other events of their instant (s; same clock as simpy's)."""

    def schedule(self, event: Event, priority=simpy.core.NORMAL, delay=0) -> None:
        if (
            isinstance(event, Process)
            and not event._ok
            and isinstance(event._value, InstabilityError)
        ):
            priority = URGENT  # the run stops here: nothing else happens at this instant
        super().schedule(event, priority, delay)
