"""The outcome of one run, and its directory format.

A result directory holds::

    series.parquet  trades.parquet  option_trades.parquet  episodes.parquet  accounts.parquet
    metrics.json     meta.json (seed, SeedSequence entropy, mmsim version, the expiry
                     calendar in s: ``expiries``, see :meth:`Result.expiries`)
    scenario.yaml    the resolved scenario (defaults and overrides applied)

    .mmsim-files     the files mmsim wrote here (figures included), one name a line

``Result.save`` writes into a temporary sibling directory and renames it into place,
so an interrupted save never leaves a half-written result. Over an existing result it
replaces mmsim's files one by one (``meta.json`` first removed, last written) and leaves
any other file alone; a directory holding anything else is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from mmsim.errors import ResultError, ScenarioError
from mmsim.paths import MANIFEST, check_output_dir, fix_mode, owned_files, read_regular
from mmsim.scenario import dump_scenario_yaml, load_scenario
from mmsim.schema import Scenario

__all__ = ["TABLES", "Result", "load_result", "reading"]

TABLES = ("series", "trades", "option_trades", "episodes", "accounts")
FILES = (*(f"{t}.parquet" for t in TABLES), "metrics.json", "scenario.yaml", "meta.json")
"""Files of a result directory; ``meta.json`` last (its presence marks a finished run)."""
MAX_TEXT = 64 << 20
"""Largest JSON / YAML file of a result directory read, bytes."""


class _Table:
    """A table field of :class:`Result` that may be given as a function of no arguments
    building the DataFrame: built on the first read and kept. The engine hands over its
    trade tables this way (milliseconds a run that many runs never read); reading,
    comparing, saving and pickling a Result see the DataFrame."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, obj: Any, objtype: type | None = None) -> pd.DataFrame:
        if obj is None:  # the dataclass asks for a default: there is none
            raise AttributeError(self.slot[1:])
        value = obj.__dict__[self.slot]
        if not isinstance(value, pd.DataFrame):
            value = obj.__dict__[self.slot] = value()
        return value

    def __set__(self, obj: Any, value: pd.DataFrame | Callable[[], pd.DataFrame]) -> None:
        obj.__dict__[self.slot] = value


@dataclass
class Result:
    """Tables and metrics of one run.

    Attributes
    ----------
    series : sampled state; ``t`` (s), ``price`` ($), dealer delta (shares), gamma
        (shares per $1), GEX ($ per 1% move), flip and walls ($), ... (see README).
    trades : every share order: ``t``, ``agent``, ``kind``, ``qty`` (shares, + = buy),
        ``price_before``, ``price_after``, ``exec_price`` ($), ``cost`` ($). This table,
        ``option_trades``, ``episodes`` and ``accounts`` may be given as functions of
        no arguments that build them: each is built when first read.
    option_trades : every customer option trade (contracts from the customer's view).
    episodes : wall breaks and flip crossings (empty until the episodes recorder runs).
    accounts : final ``shares`` and ``cash`` ($) of every ledger account, the market's
        liquidity pool included; each column sums to zero (conservation).
    metrics : floats; at least ``realized_vol`` (annualized), ``hedge_volume``
        (shares) and ``n_rehedges``.
    scenario : the resolved scenario.
    seed : the seed given (``None`` if fresh entropy was drawn).
    entropy : the ``SeedSequence`` entropy that reproduces the run.
    """

    scenario: Scenario
    series: pd.DataFrame
    trades: pd.DataFrame = _Table()  # type: ignore[assignment]
    option_trades: pd.DataFrame = _Table()  # type: ignore[assignment]
    episodes: pd.DataFrame = _Table()  # type: ignore[assignment]
    accounts: pd.DataFrame = _Table()  # type: ignore[assignment]
    metrics: dict[str, float]
    seed: int | None
    entropy: int
    meta: dict[str, Any] = field(default_factory=dict)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled with every table built (a builder function does not pickle)."""
        state = dict(self.__dict__)
        for name in ("trades", "option_trades", "episodes", "accounts"):
            state[f"_{name}"] = getattr(self, name)
        return state

    def expiries(self) -> list[float]:
        """The run's expiry calendar: every time (s on the clock, sorted) in ``(0, end]``
        at which lines of the run expire, those of a ``book`` from a real chain included
        (which no list of the scenario names). Stored by the run in ``meta["expiries"]``;
        for a result saved without it (an older mmsim) it is rebuilt from the scenario
        and its chain (:func:`mmsim.build.expiry_calendar`)."""
        clock = self.scenario.clock
        stored = self.meta.get("expiries")
        if stored is None:
            from mmsim.build import expiry_calendar
            from mmsim.chains import scenario_lines

            sc = self.scenario
            lines = None if sc.book is None else scenario_lines(sc.book, clock.session_seconds)
            stored = expiry_calendar(sc, lines)
        return sorted({float(x) for x in stored if 0.0 < float(x) <= clock.duration})

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the result to ``directory``; returns its path.

        A new or empty directory is filled through a temporary sibling renamed into
        place. An existing result directory is updated file by file (each file renamed
        over the old one, ``meta.json`` removed first and written last, so an interrupted
        update is never read as a finished run); only files mmsim wrote there are removed.
        Any other non-empty directory is refused (:class:`~mmsim.errors.OutputError`).
        Files and directories get the permissions of the process umask.
        """
        if self.meta.get("tables") == "metrics":
            raise ResultError("a metrics-only result (a sweep's run) has no tables to save")
        target = Path(directory)
        replacing = check_output_dir(target, "meta.json", "a run result")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name[:40]}.", dir=target.parent))
        try:
            fix_mode(staging, directory=True)
            self._write_files(staging)
            if replacing:
                _replace_files(staging, target)
                staging.rmdir()
            else:
                if target.is_dir():
                    target.rmdir()  # empty (checked above)
                staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    def _write_files(self, staging: Path) -> None:
        for name in TABLES:
            _write_parquet(getattr(self, name), staging / f"{name}.parquet")
        (staging / "metrics.json").write_text(json.dumps(self.metrics, indent=1))
        meta = {"seed": self.seed, "entropy": str(self.entropy), **self.meta}
        header = "".join(f"# --set {o}\n" for o in self.meta.get("overrides", []))
        if header:
            header = "# resolved scenario; overrides applied:\n" + header
        text = header + dump_scenario_yaml(self.scenario)
        (staging / "scenario.yaml").write_text(text, encoding="utf-8")
        (staging / "meta.json").write_text(json.dumps(meta, indent=1))
        (staging / MANIFEST).write_text("".join(f"{n}\n" for n in FILES))

    def equals(self, other: Result) -> bool:
        """Exact equality of every table, metric and the scenario."""
        return (
            self.scenario == other.scenario
            and self.metrics == other.metrics
            and self.entropy == other.entropy
            and all(getattr(self, n).equals(getattr(other, n)) for n in TABLES)
        )


ROW_GROUP = 1 << 16
"""Rows converted to Arrow and written at a time: a long run's tables are saved without
an Arrow copy of the whole table beside the DataFrame."""


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """``frame.to_parquet(path, index=False)``, :data:`ROW_GROUP` rows at a time (the
    same table when read back)."""
    if len(frame) <= ROW_GROUP:
        frame.to_parquet(path, index=False)
        return
    import pyarrow.parquet as pq

    schema = pa.Schema.from_pandas(frame.iloc[:ROW_GROUP], preserve_index=False)
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, len(frame), ROW_GROUP):
            part = frame.iloc[start : start + ROW_GROUP]
            writer.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))


def _replace_files(staging: Path, target: Path) -> None:
    """Move the files of ``staging`` into the result directory ``target``: first remove
    its ``meta.json`` (the run is unfinished from now on) and the files mmsim wrote there
    earlier that the new result does not have (e.g. figures), then rename each new file
    over the old one, ``meta.json`` last. Files mmsim did not write are left alone."""
    (target / "meta.json").unlink(missing_ok=True)
    stale = (owned_files(target) | set(FILES)) - set(FILES) - {MANIFEST}
    for name in stale:
        old = target / name
        if old.is_symlink() or old.is_file():
            old.unlink()
    for name in (*FILES[:-1], MANIFEST, FILES[-1]):
        os.replace(staging / name, target / name)


def _read_text(file: Path) -> str:
    return read_regular(file, MAX_TEXT).decode("utf-8")


@contextlib.contextmanager
def reading(file: Path) -> Iterator[Path]:
    """Turn any failure to read ``file`` (missing, damaged, wrong content) into one
    :class:`~mmsim.errors.ResultError` line naming the file."""
    try:
        yield file
    except ScenarioError as err:
        raise ResultError(f"{file}: damaged resolved scenario ({err.reason})") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, pa.ArrowException) as err:
        why = f"no {err.args[0]!r}" if isinstance(err, KeyError) else str(err).split("\n")[0]
        raise ResultError(f"{file}: missing or damaged ({why})") from None


def load_result(directory: str | os.PathLike) -> Result:
    """Read a directory written by :meth:`Result.save`.

    Raises :class:`~mmsim.errors.ResultError` (one line: which file, what is wrong) when
    the directory is not a result or a file in it is missing or damaged.
    """
    path = Path(directory)
    if not (path / "meta.json").is_file():
        raise ResultError(f"{path}: not a result directory (no meta.json)")
    tables = {}
    for name in TABLES:
        with reading(path / f"{name}.parquet") as file:
            if not stat.S_ISREG(os.stat(file).st_mode):
                raise OSError("not a regular file")
            tables[name] = pd.read_parquet(file)
    with reading(path / "meta.json") as file:
        meta = json.loads(_read_text(file))
        seed, entropy = meta.pop("seed"), int(meta.pop("entropy"))
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed {seed!r} is not an integer")
    with reading(path / "metrics.json") as file:
        metrics = json.loads(_read_text(file))
        if not isinstance(metrics, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in metrics.values()
        ):
            raise ValueError("metrics must map names to numbers")
        missing = {"realized_vol", "hedge_volume", "n_rehedges"} - set(metrics)
        if missing:
            raise ValueError(f"metrics lack {', '.join(sorted(missing))}")
    with reading(path / "scenario.yaml") as file:
        scenario = load_scenario(file)
    with reading(path / "series.parquet") as file:
        if not {"t", "price"} <= set(tables["series"].columns):
            raise ValueError("series has no 't' and 'price' columns")
    with reading(path / "accounts.parquet") as file:
        accounts = tables["accounts"]
        dealers = set(accounts["account"][accounts["kind"] == "dealer"])
        if unknown := [d for d in scenario.dealer_names() if d not in dealers]:
            raise ValueError(f"no account of dealer {unknown[0]!r} of scenario.yaml")
    return Result(
        scenario=scenario,
        metrics=metrics,
        seed=seed,
        entropy=entropy,
        meta=meta,
        **tables,
    )
