"""The outcome of one run, and its directory format.

A result directory holds::

    series.parquet  trades.parquet  option_trades.parquet  episodes.parquet  accounts.parquet
    metrics.json     meta.json (seed, SeedSequence entropy, mmsim version)
    scenario.yaml    the resolved scenario (defaults and overrides applied)

``Result.save`` writes into a temporary sibling directory and renames it into place,
so an interrupted save never leaves a half-written result.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from mmsim.errors import ResultError, ScenarioError
from mmsim.scenario import dump_scenario_yaml, load_scenario
from mmsim.schema import Scenario

__all__ = ["TABLES", "Result", "load_result", "reading"]

TABLES = ("series", "trades", "option_trades", "episodes", "accounts")


@dataclass
class Result:
    """Tables and metrics of one run.

    Attributes
    ----------
    series : sampled state; ``t`` (s), ``price`` ($), dealer delta (shares), gamma
        (shares per $1), GEX ($ per 1% move), flip and walls ($), ... (see README).
    trades : every share order: ``t``, ``agent``, ``kind``, ``qty`` (shares, + = buy),
        ``price_before``, ``price_after``, ``exec_price`` ($), ``cost`` ($).
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
    trades: pd.DataFrame
    option_trades: pd.DataFrame
    episodes: pd.DataFrame
    accounts: pd.DataFrame
    metrics: dict[str, float]
    seed: int | None
    entropy: int
    meta: dict[str, str] = field(default_factory=dict)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the result to ``directory`` (replaced if it exists); returns its path."""
        target = Path(directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            for name in TABLES:
                getattr(self, name).to_parquet(staging / f"{name}.parquet", index=False)
            (staging / "metrics.json").write_text(json.dumps(self.metrics, indent=1))
            meta = {"seed": self.seed, "entropy": str(self.entropy), **self.meta}
            (staging / "meta.json").write_text(json.dumps(meta, indent=1))
            (staging / "scenario.yaml").write_text(dump_scenario_yaml(self.scenario))
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    def equals(self, other: Result) -> bool:
        """Exact equality of every table, metric and the scenario."""
        return (
            self.scenario == other.scenario
            and self.metrics == other.metrics
            and self.entropy == other.entropy
            and all(getattr(self, n).equals(getattr(other, n)) for n in TABLES)
        )


@contextlib.contextmanager
def reading(file: Path) -> Iterator[Path]:
    """Turn any failure to read ``file`` (missing, damaged, wrong content) into one
    :class:`~mmsim.errors.ResultError` line naming the file."""
    try:
        yield file
    except ScenarioError as err:
        raise ResultError(f"{file}: damaged resolved scenario ({err.reason})") from None
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as err:
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
            tables[name] = pd.read_parquet(file)
    with reading(path / "meta.json") as file:
        meta = json.loads(file.read_text())
        seed, entropy = meta.pop("seed"), int(meta.pop("entropy"))
    with reading(path / "metrics.json") as file:
        metrics = json.loads(file.read_text())
    with reading(path / "scenario.yaml") as file:
        scenario = load_scenario(file)
    return Result(
        scenario=scenario,
        metrics=metrics,
        seed=seed,
        entropy=entropy,
        meta=meta,
        **tables,
    )
