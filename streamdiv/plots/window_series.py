"""A metric over time windows: one line per group of the non-window keys, against each window's start.

A window's start is its group key ``window``, an ISO-8601 UTC string (:mod:`streamdiv.windows`); a group whose
window is null (rows of no known time) is left out, and a null or infinite value is a gap in its line.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

import matplotlib.dates

from ..errors import StreamdivError
from ..metrics import METRICS
from ..windows import WINDOW_KEY
from .common import is_drift, new_figure, number, report_data

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WINDOW_TICKS = 12  # up to this many windows, one tick at each
_INFORMATION = {metric.name for metric in METRICS if metric.kind == "information"}


def draw_series(data: Any, metric: str = "ece", ax: Axes | None = None) -> Figure:
    """See :func:`streamdiv.plots.series`."""
    data = report_data(data)
    by = data.get("by") or []
    if WINDOW_KEY not in by:
        grouped = f"grouped by {', '.join(by)} only" if by else "not grouped"
        raise StreamdivError(f"a series needs a windowed report, and this one is {grouped}: score with --time "
                             f"COLUMN --window WIDTH (time=, window= in Python), such as --time ts --window 1d")
    groups = data.get("groups") or []
    names = dict.fromkeys([*data["metrics"], *(name for entry in groups for name in entry["metrics"])])
    if metric not in names:
        raise StreamdivError(f"unknown metric {metric!r} for a series; this report's are: {', '.join(names)}")
    lines: dict[str, tuple[list[datetime], list[float]]] = {}
    for entry in groups:
        start = entry["group"].get(WINDOW_KEY)
        if start is None:
            continue
        label = ", ".join(f"{key}={value}" for key, value in entry["group"].items() if key != WINDOW_KEY) or "all"
        value = number(entry["metrics"].get(metric))
        starts, values = lines.setdefault(label, ([], []))
        starts.append(window_start(start))
        values.append(value if math.isfinite(value) else math.nan)
    if all(math.isnan(value) for _, values in lines.values() for value in values):
        raise StreamdivError(f"{metric} has no finite value in any window: this run does not compute it (null) "
                             f"or it is infinite throughout")
    figure, axis = (new_figure(7.5, 4.0), None) if ax is None else (ax.figure, ax)
    axis = axis if axis is not None else figure.add_subplot()
    for label, (starts, values) in lines.items():
        axis.plot(starts, values, marker="o", markersize=3, label=label)
    starts = sorted({start for points, _ in lines.values() for start in points})
    if len(starts) <= WINDOW_TICKS:  # a tick at each window's start, rather than at hours between them
        axis.set_xticks(starts)
    else:
        axis.xaxis.set_major_locator(matplotlib.dates.AutoDateLocator())
    axis.xaxis.set_major_formatter(matplotlib.dates.ConciseDateFormatter(axis.xaxis.get_major_locator()))
    axis.set_xlabel("window start (UTC)")
    unit = unit_of(metric, data.get("units", ""))
    axis.set_ylabel(f"{metric} ({unit})" if unit else metric)
    against = " against the reference" if is_drift(data) else ""
    axis.set_title(f"{metric} per {data.get('window', '?')} window{against}")
    axis.grid(True, linewidth=0.3)
    axis.legend(fontsize="small", title=", ".join(name for name in by if name != WINDOW_KEY) or None)
    return figure


def window_start(text: str) -> datetime:
    """A window's start from its key, "2026-11-30T00:00:00Z" (Python 3.10's fromisoformat lacks "Z")."""
    return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)


def unit_of(name: str, units: str) -> str:
    """The unit of a report's metric or of a drift figure: the report's unit for information (and for the
    change of one, its difference), nats for PSI (by convention), none for the others."""
    metric, _, part = name.partition(".")
    if metric in _INFORMATION and part in ("", "reference", "current", "change"):
        return units
    if name.endswith("_psi"):
        return "nats"
    if name.endswith(("_js", "_kl")):  # _reverse_kl ends so too
        return units
    return ""
