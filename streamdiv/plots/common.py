"""What the plots share: reading a report's JSON data, making a figure without pyplot, and wording numbers."""

from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure

from ..errors import StreamdivError

REFERENCE_COLOR, CURRENT_COLOR = "tab:blue", "tab:orange"


def report_data(data: Any) -> dict[str, Any]:
    """The report's plain data: a dict as ``to_dict()`` gives it (a Report or DriftReport is converted)."""
    if hasattr(data, "to_dict"):
        data = data.to_dict()
    if not isinstance(data, dict) or "metrics" not in data:
        raise StreamdivError(f"a plot takes a report's data, Report.to_dict() or DriftReport.to_dict() (or the JSON "
                             f"streamdiv wrote with --format json, loaded), not {type(data).__name__}"
                             + (" without 'metrics'" if isinstance(data, dict) else ""))
    return data


def is_drift(data: dict[str, Any]) -> bool:
    """Whether the data is a DriftReport's: it has a reference side and a smoothing."""
    return "smoothing" in data and isinstance(data.get("reference"), dict)


def refuse_drift(data: dict[str, Any], kind: str) -> None:
    """The reliability tables belong to one run: point a drift report's caller to its current side's report."""
    if is_drift(data):
        raise StreamdivError(f"a drift report holds no {kind} table: plot the current side's report "
                             f"(DriftReport.current.plot({kind!r}), or `streamdiv score CURRENT --format json` "
                             f"and plot that); a drift report draws 'drift' and 'series'")


def new_figure(width: float, height: float) -> Figure:
    """A figure of that size in inches, laid out by constrained layout, and not registered with pyplot."""
    return Figure(figsize=(width, height), layout="constrained")


def number(value: Any) -> float:
    """A JSON value as a float: None is NaN, "inf" and "-inf" are infinities."""
    if value is None:
        return math.nan
    return float(value)


def shown(value: Any, digits: int = 4) -> str:
    """A figure for a title: ``digits`` decimals, "inf", or "n/a" for None."""
    value = number(value)
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"


def rows_text(rows: Any) -> str:
    """A row count with thousands separators, and the word."""
    count = int(number(rows)) if rows is not None else 0
    return f"{count:,} row" + ("" if count == 1 else "s")
