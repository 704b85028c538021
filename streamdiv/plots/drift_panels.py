"""Reference against current for the three drift distributions (:mod:`streamdiv.drift_report`), as shares.

The predicted-class and mean-prediction panels draw each class's share as grouped bars (reference, current),
or as step lines when there are more than MAX_BAR_CLASSES classes; the confidence panel draws both histograms
as step lines over the reference's bins (equal-weight bins with binning="quantile": the reference then is
flat, 1/M a bin, and the current side's departure from it is the drift).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..distributions import DISTRIBUTIONS
from ..errors import StreamdivError
from .common import CURRENT_COLOR, REFERENCE_COLOR, is_drift, new_figure, number, report_data, rows_text, shown

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_BAR_CLASSES = 40  # more classes than this: step lines, since 2K bars would be too thin to read
TITLES = {"predicted_class": "predicted class", "mean_prediction": "mean prediction", "confidence": "confidence"}
SIDES = (("reference", REFERENCE_COLOR), ("current", CURRENT_COLOR))


def draw_drift(data: Any) -> Figure:
    """See :func:`streamdiv.plots.drift`."""
    data = report_data(data)
    if not is_drift(data):
        raise StreamdivError("a drift plot needs a drift report, which a single run's report is not: "
                             "streamdiv.drift(reference, current).plot(), or `streamdiv drift --reference REF "
                             "CURRENT --format json` and plot that")
    figure = new_figure(13.0, 4.0)
    axes = figure.subplots(1, len(DISTRIBUTIONS))
    for axis, name in zip(axes, DISTRIBUTIONS):
        pair = (data.get("distributions") or {}).get(name) or {}
        axis.set_title(f"{TITLES[name]}: PSI {shown(data['metrics'].get(f'{name}_psi'))}", fontsize="medium")
        if pair.get("reference") is None or pair.get("current") is None:
            axis.text(0.5, 0.5, "not computed", transform=axis.transAxes, ha="center", va="center", color="gray")
            axis.set_xticks([])
            axis.set_yticks([])
            continue
        if name == "confidence":
            _steps(axis, pair, _confidence_edges(pair))
            axis.set_xlabel("confidence (the reference's bins)")
        elif len(pair["reference"]) > MAX_BAR_CLASSES:
            _steps(axis, pair, np.arange(len(pair["reference"]) + 1) - 0.5)
            axis.set_xlabel("class")
        else:
            _bars(axis, pair)
            axis.set_xlabel("class")
        axis.set_ylabel("share")
        axis.legend(fontsize="small")
    reference, current = data["reference"].get("rows_read"), data.get("current", {}).get("rows_read")
    figure.suptitle(f"Drift: current ({rows_text(current)} read) against the reference ({rows_text(reference)} read)")
    return figure


def _bars(axis: Axes, pair: dict[str, Any]) -> None:
    """Grouped bars: each class's reference share at its left, the current share at its right."""
    classes = np.arange(len(pair["reference"]))
    for offset, (side, color) in zip((-0.2, 0.2), SIDES):
        axis.bar(classes + offset, [number(share) for share in pair[side]], width=0.4, color=color, label=side)
    axis.set_xticks(classes)


def _steps(axis: Axes, pair: dict[str, Any], edges: np.ndarray) -> None:
    for side, color in SIDES:
        axis.stairs([number(share) for share in pair[side]], edges, color=color, linewidth=1.5, label=side)


def _confidence_edges(pair: dict[str, Any]) -> np.ndarray:
    """The bins' M + 1 edges, from their ``lower`` and ``upper`` (k/M when the data has none)."""
    if pair.get("lower") and pair.get("upper"):
        return np.array([*pair["lower"], pair["upper"][-1]], dtype=np.float64)
    return np.linspace(0.0, 1.0, len(pair["reference"]) + 1)
