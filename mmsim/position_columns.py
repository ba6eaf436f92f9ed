"""Option positions (scenario :class:`~mmsim.schema.Position` objects) as columns.

A 10,000-line book is 10,000 pydantic objects: reading one field of each costs about a
millisecond. The engine reads them once, when it books the opening positions
(:func:`mmsim.agents.events.open_positions`), and keeps the columns
(``Simulation.opening``) for what the result reads of the same positions later (the
episodes' expiries and hidden lines, the open interest behind the pin metrics)
instead of walking the scenario again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from mmsim.schema import Position

__all__ = ["PositionColumns"]


@dataclass(frozen=True)
class PositionColumns:
    """One entry per position, in the order given: ``strike`` ($), ``expiry_days``
    (sessions after t = 0), ``qty`` (contracts, the holder's sign), ``multiplier``
    (shares per contract), ``is_call`` and ``visible`` (exchange-listed)."""

    strike: np.ndarray
    expiry_days: np.ndarray
    qty: np.ndarray
    multiplier: np.ndarray
    is_call: np.ndarray
    visible: np.ndarray

    @classmethod
    def of(cls, positions: Sequence[Position]) -> PositionColumns:
        """The columns of ``positions`` (float64, booleans for the flags)."""
        return cls(
            strike=np.array([p.strike for p in positions], dtype=np.float64),
            expiry_days=np.array([p.expiry_days for p in positions], dtype=np.float64),
            qty=np.array([p.qty for p in positions], dtype=np.float64),
            multiplier=np.array([p.multiplier for p in positions], dtype=np.float64),
            is_call=np.array([p.type == "call" for p in positions], dtype=np.bool_),
            visible=np.array([p.visible for p in positions], dtype=np.bool_),
        )

    @classmethod
    def concat(cls, parts: Sequence[PositionColumns]) -> PositionColumns:
        """``parts`` one after the other (the empty columns for none)."""
        if not parts:
            return cls.of([])
        return cls(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)}
        )

    def __len__(self) -> int:
        return int(self.strike.size)
