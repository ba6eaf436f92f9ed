"""Pauses of the event loop that nothing in the model sees.

``Simulation.run`` stops the loop 100 times for its progress bar and for Ctrl-C
(``keep_partial``). A plain ``env.run(until=t)`` schedules a stop event at ``t`` (s),
and whatever looks ahead in simpy's queue (the book's liquidity flow ends its compiled
blocks at the next event) would see it, so a run with a progress bar would not be the
run without one. A *pause* is the same stop, marked, and :func:`next_event` looks past it.
"""

from __future__ import annotations

import math

import simpy
from simpy.core import URGENT

__all__ = ["PAUSE", "next_event", "schedule_pause"]

PAUSE = object()
"""The value of a pause event."""


def schedule_pause(env: simpy.Environment, at: float) -> simpy.Event:
    """A stop at ``at`` (s) for ``env.run(until=...)``, scheduled as simpy schedules
    ``env.run(until=at)``'s own (urgent: before the events already due at ``at``)."""
    pause = simpy.Event(env)
    pause._ok = True
    pause._value = PAUSE
    env.schedule(pause, URGENT, at - env.now)
    return pause


def next_event(env: simpy.Environment) -> float:
    """``env.peek()`` (s) with a pause at the head of the queue looked past: the clock of
    the next event of the model (``inf``: none)."""
    queue = env._queue
    if not queue or queue[0][3]._value is not PAUSE:
        return env.peek()
    # a binary heap: the second smallest entry is a child of the root
    return min((entry[0] for entry in queue[1:3]), default=math.inf)
