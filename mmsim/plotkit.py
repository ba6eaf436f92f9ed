"""What every mmsim figure shares: style, colours, the session clock axis, thinning,
per-bar aggregation with clipped outliers, and episode labels.

Never imported by the core. Figures are built on an Agg canvas without pyplot.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mmsim.paths import atomic_save

__all__ = [
    "GAMMA",
    "MAX_POINTS",
    "REGIMES",
    "STYLE",
    "VIEW",
    "SessionClock",
    "bar_sums",
    "bars",
    "clipped_limits",
    "episode_marks",
    "figure",
    "freeze_ticks",
    "render",
    "save",
    "styled",
    "thin",
    "visible_legend",
]

STYLE = {  # rcParams applied while every figure is drawn and saved
    "figure.dpi": 110,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 11,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
}
VIEW = {"true": "#2c7bb6", "visible": "#d7191c", "both": "#6a3d9a"}
"""Line colours: the true book, the exchange-visible view, and both where they agree."""
REGIMES = {  # series regime -> label, shading colour, line colour
    1.0: ("above flip (long gamma)", "#abd9e9", "#2c7bb6"),
    -1.0: ("below flip (short gamma)", "#fdae61", "#d7191c"),
}
GAMMA = {"long": REGIMES[1.0][2], "short": REGIMES[-1.0][2]}
"""Line colours of long- and short-gamma dealers, shared by run and sweep figures."""
MAX_POINTS = 3000
"""Series longer than this are thinned before drawing (a 250-day run has ~600,000
samples) into ``MAX_POINTS // 4`` buckets that keep each bucket's extremes (:func:`thin`)."""


def styled(fn):
    """Draw ``fn``'s figure under :data:`STYLE`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def figure(nrows: int = 1, ncols: int = 1, *, size, **kw) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure on an Agg canvas and its 2-D array of axes."""
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kw)


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` at ``path`` (parents created; PNG unless the suffix says otherwise)
    atomically: a temporary file in the directory renamed over it, never through a link.
    Drawn by :func:`render`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix[1:] or "png"
    atomic_save(path, lambda tmp: render(fig, tmp, fmt))
    return path


def render(fig: Figure, target, fmt: str = "png") -> None:
    """Draw ``fig`` under :data:`STYLE` into ``target`` (a path or a binary file object).

    Cheaper than a plain ``savefig``, same pixels: the layout engine runs once and the
    figure is drawn once (``savefig`` under a layout engine draws it twice: silently to
    lay it out, then for real), tick positions and labels are computed once (see
    :func:`freeze_ticks`), and a PNG is compressed at zlib level 3 (files ~7% larger
    than at 6, encoded in 2/3 of the time). The figure is left as it was."""
    kw = {"pil_kwargs": {"compress_level": 3}} if fmt == "png" else {}
    engine = fig.get_layout_engine()
    with mpl.rc_context(STYLE):  # ticks are created lazily, at draw time
        thawed = freeze_ticks(fig)
        try:
            if engine is not None:
                engine.execute(fig)
                fig.set_layout_engine(None)
            fig.savefig(target, format=fmt, **kw)
        finally:
            if engine is not None:
                fig.set_layout_engine(engine)
            for axis, locator, formatter in thawed:
                axis.set_major_locator(locator)
                axis.set_major_formatter(formatter)


def freeze_ticks(fig: Figure) -> list[tuple]:
    """Fix every linear axis' major ticks and labels where its locator and formatter put
    them now, so laying out and drawing the figure (which ask for the ticks dozens of
    times, more with shared axes) reuse them instead of recomputing them each time.
    Axes whose formatter shows an offset or a scale (``1e6``) and colorbars are left.
    Returns ``(axis, locator, formatter)`` of each axis changed, to restore them."""
    changed = []
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        for axis in (ax.xaxis, ax.yaxis):
            locator, formatter = axis.get_major_locator(), axis.get_major_formatter()
            if axis.get_scale() != "linear" or isinstance(locator, mpl.ticker.FixedLocator):
                continue
            locs = locator()
            labels = formatter.format_ticks(locs)
            if getattr(formatter, "get_offset", lambda: "")():
                continue
            changed.append((axis, locator, formatter))
            axis.set_major_locator(mpl.ticker.FixedLocator(locs))
            axis.set_major_formatter(mpl.ticker.FixedFormatter(labels))
    return changed


def thin(frame: pd.DataFrame, columns: list[str], max_points: int = MAX_POINTS) -> pd.DataFrame:
    """The rows of ``frame[columns]`` a line drawing needs, at most ~``max_points`` buckets'
    worth: ``frame`` is cut into ``max_points // 4`` buckets of consecutive rows (about one
    per pixel column of a figure) and each bucket keeps its first and last row and, for
    every numeric column but ``t``, the rows of its minimum and maximum and its first NaN.
    So a one-sample spike, a step of a level and a gap (NaN: no flip, no wall) survive
    thinning; only rows that would be drawn over one another go. Rows stay in time order;
    a copy of only those rows, never of the whole table. A bucket keeps at most
    ``2 + 3 * (len(columns) - 1)`` rows, usually 2-4 (flat columns add none)."""
    n = len(frame)
    sub = [frame.columns.get_loc(c) for c in columns]
    if n <= max_points:
        return frame.iloc[:, sub]
    k = math.ceil(n / max(max_points // 4, 1))  # rows per bucket
    nb = math.ceil(n / k)
    starts = np.arange(nb) * k
    keep = [starts, np.minimum(starts + k - 1, n - 1)]
    for c in columns:
        if c == "t" or not pd.api.types.is_numeric_dtype(frame[c].dtype):
            continue
        v = np.full(nb * k, np.nan)
        v[:n] = frame[c].to_numpy(dtype=float, na_value=np.nan)
        blocks = v.reshape(nb, k)
        nan = np.isnan(blocks)
        keep.append(starts + np.where(nan, np.inf, blocks).argmin(axis=1))
        keep.append(starts + np.where(nan, -np.inf, blocks).argmax(axis=1))
        nan[-1, n - starts[-1] :] = False  # the last bucket's padding is not a gap
        gap = nan.any(axis=1)
        keep.append(starts[gap] + nan[gap].argmax(axis=1))
    rows = np.unique(np.concatenate(keep))
    return frame.iloc[rows[rows < n], sub]  # rows first


class SessionClock:
    """The x axis of run figures: sessions since the first open (1.0 = one session).

    Ticks read as exchange clock times: a standard session (23,400 s) is 09:30-16:00,
    so ``t = 3,600 s`` is 10:30; a compressed session (``session_seconds`` != 23,400)
    shows minutes since its open. Multi-day runs (up to 60 sessions) mark every session
    boundary; ticks name the day ("d2 09:30").
    """

    def __init__(self, session_seconds: float, duration: float) -> None:
        self.session = float(session_seconds)
        self.days = max(float(duration) / self.session, 1e-9)
        self.standard = abs(self.session - 23_400.0) < 1e-6

    def x(self, t) -> np.ndarray:
        """Clock seconds -> sessions since the first open."""
        return np.asarray(t, dtype=float) / self.session

    @property
    def label(self) -> str:
        """The axis label, with its unit."""
        if self.standard:
            day = "; dN = session N" if self.days > 1 + 1e-9 else ""
            return f"session clock time (hh:mm, 09:30-16:00{day})"
        span = f"{self.session / 60:g}-min sessions"
        return f"time since the session open (min; compressed {span})"

    def text(self, x: float) -> str:
        """The clock reading at ``x`` sessions: ``10:30``, ``d2 09:30``, or minutes."""
        day = math.floor(x + 1e-9)
        if day > 0 and abs(x - day) < 1e-9 and x >= self.days - 1e-9:
            day -= 1  # the end of the run: that session's close, not the next open
        minutes = (x - day) * self.session / 60.0
        if self.standard:
            total = 9 * 60 + 30 + round(minutes)
            text = f"{total // 60:02d}:{total % 60:02d}"
        else:
            text = f"{minutes:.0f}"
        if self.days > 1 + 1e-9 and (abs(x - day) < 1e-9 or x >= self.days - 1e-9):
            return f"d{day + 1} {text}"
        return text

    def ticks(self, max_ticks: int = 9) -> np.ndarray:
        """Tick positions (sessions): round clock minutes, at most ``max_ticks``."""
        minutes = self.session / 60.0
        steps = [1, 2, 5, 10, 15, 30, 60, 120]
        steps = [s for s in steps if s < minutes] + [minutes / 2, minutes, 2 * minutes]
        steps += [minutes * k for k in (5, 10, 20, 50, 100)]
        for step in steps:
            per_day = np.arange(0.0, minutes + 1e-9, step) / minutes
            per_day = per_day[per_day < 1.0 - 1e-9] if step < minutes else np.array([0.0])
            days = np.arange(0, math.ceil(self.days) + 1)
            stride = max(1, round(step / minutes)) if step >= minutes else 1
            ticks = (days[::stride, None] + per_day[None, :]).ravel()
            ticks = ticks[ticks <= self.days + 1e-9]
            if step < minutes:  # no tick crowding a session boundary or the end
                to_boundary = np.minimum(np.ceil(ticks - 1e-9), self.days) - ticks
                ticks = ticks[(to_boundary < 1e-9) | (to_boundary > 0.6 * step / minutes)]
            if ticks.size <= max_ticks:
                return ticks
        return np.linspace(0.0, self.days, max_ticks)

    def apply(self, ax, *, boundaries: bool = True, label: bool = True, max_ticks: int = 9) -> None:
        """Clock ticks and, for multi-day runs, a thin line at every session boundary."""
        ticks = self.ticks(max_ticks)
        ax.set_xticks(ticks, [self.text(x) for x in ticks])
        ax.set_xlim(0.0, self.days)
        if boundaries and 1 + 1e-9 < self.days <= 60:  # beyond: a grey comb, not a guide
            days = np.arange(1, math.ceil(self.days - 1e-9))
            kw = {"colors": "0.35", "lw": 0.8, "alpha": 0.7, "zorder": 1}
            ax.vlines(days, 0, 1, transform=ax.get_xaxis_transform(), **kw)
        if label:
            ax.set_xlabel(self.label)


def bars(ax, left, height, width, color, label: str | None = None, **kw):
    """Bars from ``left`` (x of each bar's left edge) of ``width`` and signed ``height``,
    drawn as one :class:`~matplotlib.collections.PolyCollection` (one artist for all bars,
    several times cheaper to build and draw than ``ax.bar``'s one patch per bar); ``color``
    one colour or one per bar. The collection's gid is ``"bars"``; bar ``k``'s height is
    ``get_paths()[k].vertices[1, 1]``."""
    left = np.asarray(left, dtype=float)
    height = np.broadcast_to(np.asarray(height, dtype=float), left.shape)
    right = left + np.broadcast_to(np.asarray(width, dtype=float), left.shape)
    zero = np.zeros_like(left)
    verts = np.stack(
        [
            np.column_stack(c)
            for c in ((left, zero), (left, height), (right, height), (right, zero))
        ],
        axis=1,
    )
    coll = mpl.collections.PolyCollection(
        verts, facecolors=color, edgecolors="none", linewidths=0, label=label, gid="bars", **kw
    )
    ax.add_collection(coll, autolim=True)
    coll.sticky_edges.y.append(0.0)
    ax.autoscale_view()
    return coll


def bar_sums(t: np.ndarray, qty: np.ndarray, duration: float, n_bars: int = 150):
    """Sum ``qty`` per time bar: ``(edges, sums, width)`` with ``n_bars`` equal bars over
    ``[0, duration]`` s (the last bar includes the end)."""
    edges = np.linspace(0.0, duration, n_bars + 1)
    k = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, n_bars - 1)
    sums = np.bincount(k, weights=qty, minlength=n_bars) if len(t) else np.zeros(n_bars)
    return edges, sums, duration / n_bars


def clipped_limits(values: np.ndarray, outliers: np.ndarray | None = None, pad: float = 1.15):
    """``(lo, hi)`` y limits that show every value except ``outliers`` (a mask, e.g. the
    bars holding an expiry unwind) and, if none are given, except values over 8x the
    98th percentile of ``|values|``; ``None`` when nothing needs clipping."""
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    if not finite.any():
        return None
    if outliers is None:
        scale = np.percentile(np.abs(v[finite]), 98)
        outliers = np.abs(v) > 8 * scale if scale > 0 else np.zeros(v.shape, dtype=bool)
    keep = finite & ~outliers
    if not (outliers & finite).any() or not keep.any():
        return None
    lo, hi = min(v[keep].min(), 0.0), max(v[keep].max(), 0.0)
    span = max(hi - lo, 1e-12)
    return lo - (pad - 1) * span, hi + (pad - 1) * span


def visible_legend(ax) -> tuple[list, list[str]]:
    """The axes' legend entries, without lines that have no point inside the y limits
    (a wall far off the chart is not listed)."""
    lo, hi = ax.get_ylim()
    handles, labels = [], []
    for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
        if isinstance(h, mpl.lines.Line2D) and h.get_transform() != ax.get_xaxis_transform():
            y = np.asarray(h.get_ydata(), dtype=float)
            if not ((y >= lo) & (y <= hi)).any():
                continue
        handles.append(h)
        labels.append(label)
    return handles, labels


def episode_marks(episodes: pd.DataFrame) -> list[dict]:
    """One mark per episode, whatever the table's shape: a row of the same ``kind`` whose
    time span overlaps the previous one and names only other views (the old table has one
    row per view) merges into it; a one-row-per-episode table passes through. Each mark:
    ``start``, ``end`` (s), ``kind``, ``views`` (text), ``level`` ($), ``cause``."""
    if episodes is None or not len(episodes):
        return []
    marks: list[dict] = []
    for row in episodes.sort_values(["kind", "start"]).to_dict("records"):
        views = _views_of(row)
        last = marks[-1] if marks else None
        same = last and last["kind"] == row["kind"] and row["start"] <= last["end"]
        if same and views and not set(views) & set(last["views"]):  # the other view's row
            last["end"] = max(last["end"], row["end"])
            last["views"] = sorted(set(last["views"]) | set(views))
            if last["cause"] in ("", "none"):
                last["cause"] = _cause_of(row)
            continue
        marks.append(
            {
                "start": float(row["start"]),
                "end": float(row["end"]),
                "kind": str(row["kind"]),
                "views": views,
                "level": float(row.get("level", np.nan)),
                "cause": _cause_of(row),
            }
        )
    for m in marks:
        m["views"] = ", ".join(m["views"])
    return sorted(marks, key=lambda m: m["start"])


def _views_of(row: dict) -> list[str]:
    for key in ("views", "view"):
        if isinstance(row.get(key), str):
            return [v.strip() for v in row[key].replace("+", ",").split(",") if v.strip()]
    return []


def _cause_of(row: dict) -> str:
    cause = row.get("primary_cause", "")
    return "" if cause is None or (isinstance(cause, float) and np.isnan(cause)) else str(cause)
