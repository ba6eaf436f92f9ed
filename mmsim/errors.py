"""The exceptions mmsim raises on purpose."""

from __future__ import annotations

__all__ = [
    "BudgetError",
    "ClusterLostError",
    "InstabilityError",
    "OutputError",
    "ResultError",
    "ScenarioError",
    "SimulationError",
]


class ScenarioError(ValueError):
    """Invalid scenario input. ``str(err)`` is one line: file, field path, line, what.

    Attributes
    ----------
    source : the file (or ``"<mapping>"``) the bad value came from.
    field : dotted field path such as ``dealers[0].band`` (``""`` for the whole file).
    line : 1-based line in ``source`` or ``None``.
    """

    def __init__(
        self, message: str, *, source: str = "<mapping>", field: str = "", line: int | None = None
    ) -> None:
        self.source = source
        self.field = field
        self.line = line
        self.reason = message
        where = source if line is None else f"{source}:{line}"
        what = f"{field}: {message}" if field else message
        super().__init__(f"{where}: {what}")


class SimulationError(RuntimeError):
    """A run that cannot continue (its message says why and when)."""


class InstabilityError(SimulationError):
    """Dealer-hedging feedback diverged (e.g. ``lam * G <= -1``): price left its domain."""


class ClusterLostError(SimulationError):
    """A sweep's (or ``mmsim explain``'s replays') dask cluster was lost midway: its
    scheduler went away (closed, killed, its machine gone), or it has had no worker for
    ``no_workers_for`` seconds while runs were waiting (every worker died or was closed,
    none came back; :func:`mmsim.dask_client.no_workers_timeout`). ``str(err)`` is one
    line naming the scheduler's address, how many runs finished and where they are
    saved; a sweep saves every run as it finishes, so the same sweep into the same
    directory runs only the others.

    Attributes
    ----------
    address : the scheduler's address.
    done : runs finished (saved in ``saved_in`` when it is not ``None``), of ``total``.
    saved_in : the sweep's ``runs/`` directory; ``None``: nothing saved (no ``out``).
    no_workers_for : seconds without a worker after which the sweep gave up; ``None``:
        the scheduler went away.
    """

    def __init__(
        self,
        address: str,
        done: int,
        total: int,
        saved_in: object = None,
        *,
        work: str = "sweep",
        items: str = "runs",
        no_workers_for: float | None = None,
    ) -> None:
        self.address, self.done, self.total, self.saved_in = address, done, total, saved_in
        self.no_workers_for = no_workers_for
        if saved_in is None:
            where = "nothing saved"
        else:
            where = (
                f"saved in {saved_in}/; the same {work} into that directory runs only the "
                f"other {total - done}"
            )
        what = "went away"
        if no_workers_for is not None:
            what = f"has had no worker for {no_workers_for:g} s"
        super().__init__(
            f"dask scheduler {address} {what} mid-{work}: {done} of {total} {items} "
            f"finished, {where}"
        )


class ResultError(Exception):
    """A run or sweep directory that is missing, incomplete or damaged; ``str(err)`` is one
    line naming the directory (or file) and what is wrong with it."""


class OutputError(ValueError):
    """An output location mmsim refuses (a file, a symbolic link, a directory holding
    files mmsim did not write); ``str(err)`` is one line naming the path."""


class BudgetError(ValueError):
    """A run or sweep estimated to exceed its event or memory budget before it starts;
    ``str(err)`` is one line naming the field that drives the estimate and the limit."""
