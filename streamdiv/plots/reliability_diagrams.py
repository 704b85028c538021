"""The reliability diagram of a report (top-label, with its confidence histogram) and its class-wise panels.

Each non-empty bin b of the report's table (rows lower <= c < upper, the last bin closed) is drawn as a point
at (mean confidence c_b, observed frequency y_b), the points joined in order; the gap y_b - c_b is shaded over
the bin's width, and the diagonal y = c is perfect calibration.  The histogram beneath draws each bin's
weight as a bar over [lower, upper): uniform bins have equal widths, quantile bins the widths of their
equal-weight cuts.  Class-wise panels draw class k's bins over q_k the same way (x = the bin's mean q_k).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..errors import StreamdivError
from .common import new_figure, number, refuse_drift, report_data, rows_text, shown

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

HISTOGRAM_SHARE = 0.25  # with ax given, the twin histogram's tallest bar reaches this share of the axis' height
GAP_COLOR, POINT_COLOR, HISTOGRAM_COLOR = "tab:red", "tab:blue", "tab:gray"
GRID_COLUMNS = 4  # class-wise panels per row, at most


def draw_reliability(data: Any, ax: Axes | None = None) -> Figure:
    """See :func:`streamdiv.plots.reliability`."""
    data = report_data(data)
    refuse_drift(data, "reliability")
    layout = data.get("layout") or {}
    if layout.get("kind") == "gaussian":
        raise StreamdivError("the Gaussian kind has no calibration bins: a reliability diagram needs predictions "
                             "over classes")
    if layout.get("targets") == "none":
        return _confidence_alone(data, ax)
    table = data.get("calibration") or []
    if not table:
        raise StreamdivError("this report has no calibration table (it was scored with metrics='loss'): score "
                             "with metrics='all' (--metrics all) to draw its reliability diagram")
    ece, rows = data["metrics"].get("ece"), data["metrics"].get("rows")
    title = f"Reliability: ECE {shown(ece)}, {rows_text(rows)} ({_binning(layout, len(table))})"
    if ax is None:
        figure = new_figure(6.0, 6.4)
        grid = figure.add_gridspec(2, 1, height_ratios=(3, 1))
        diagram = figure.add_subplot(grid[0])
        histogram = figure.add_subplot(grid[1], sharex=diagram)
        diagram.tick_params(labelbottom=False)
    else:
        figure, diagram, histogram = ax.figure, ax, ax.twinx()
    _diagram(diagram, table, "confidence")
    diagram.set_title(title)
    diagram.set_ylabel("observed frequency")
    diagram.legend(loc="upper left", fontsize="small")
    _histogram(histogram, [(row["lower"], row["upper"], row["weight"], row["rows"]) for row in table])
    if ax is not None:  # the bars stand at the diagram's foot, on their own scale at the right
        top = max((number(row["weight"]) for row in table), default=0.0)
        histogram.set_ylim(0.0, top / HISTOGRAM_SHARE if top > 0 else 1.0)
        diagram.set_zorder(histogram.get_zorder() + 1)
        diagram.patch.set_visible(False)
    (diagram if ax is not None else histogram).set_xlabel(_confidence_label(layout))
    return figure


def _confidence_alone(data: dict[str, Any], ax: Axes | None) -> Figure:
    """A label-free report: its confidence histogram (Report.distributions' confidence bins) alone."""
    bins = (data.get("distributions") or {}).get("confidence")
    if not bins:
        raise StreamdivError("this label-free report has no confidence histogram (a state that lacks it, or no "
                             "rows): score the predictions again with this streamdiv")
    layout = data.get("layout") or {}
    figure, axis = (new_figure(6.0, 3.6), None) if ax is None else (ax.figure, ax)
    axis = axis if axis is not None else figure.add_subplot()
    _histogram(axis, [(entry["lower"], entry["upper"], entry["weight"], None) for entry in bins])
    axis.set_xlabel(_confidence_label(layout))
    axis.set_title(f"Confidence histogram (no labels: no reliability diagram)\n{rows_text(data['metrics'].get('rows'))}"
                   f", mean confidence {shown(data['metrics'].get('mean_confidence'))}", fontsize="medium")
    return figure


def _diagram(axis: Axes, table: list[dict[str, Any]], mean_key: str) -> None:
    """The diagonal, each non-empty bin's gap shaded over its width, and the points (mean, observed)."""
    used = [row for row in table if row.get(mean_key) is not None and row.get("observed") is not None]
    axis.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="gray", linewidth=1.0, label="perfectly calibrated")
    if used:
        means = [number(row[mean_key]) for row in used]
        observed = [number(row["observed"]) for row in used]
        axis.bar([number(row["lower"]) for row in used], [y - c for y, c in zip(observed, means)],
                 width=[number(row["upper"]) - number(row["lower"]) for row in used], bottom=means,
                 align="edge", color=GAP_COLOR, alpha=0.25, linewidth=0, label="gap")
        axis.plot(means, observed, marker="o", markersize=4, color=POINT_COLOR, label="observed")
    axis.set_xlim(0.0, 1.0)
    axis.set_ylim(0.0, 1.0)
    axis.grid(True, linewidth=0.3)


def _histogram(axis: Axes, bins: list[tuple[Any, Any, Any, Any]]) -> None:
    """Each bin's weight as a bar over [lower, upper); the axis says "rows" when every weight is its row
    count (no weight column), else "weight"."""
    lower = [number(low) for low, _, _, _ in bins]
    widths = [number(high) - number(low) for low, high, _, _ in bins]
    weights = [number(weight) for _, _, weight, _ in bins]
    axis.bar(lower, weights, width=widths, align="edge", color=HISTOGRAM_COLOR, alpha=0.6, edgecolor="white",
             linewidth=0.5, label="weight per bin")
    counted = all(rows is not None and number(rows) == weight for (_, _, _, rows), weight in zip(bins, weights))
    axis.set_ylabel("rows" if counted else "weight")
    axis.set_xlim(0.0, 1.0)


def _binning(layout: dict[str, Any], bins: int) -> str:
    return f"{bins} {layout.get('binning') or 'uniform'} bins"


def _confidence_label(layout: dict[str, Any]) -> str:
    """One binary column's confidence is p itself; else the top-label probability max_k q_k."""
    return "mean predicted probability p" if layout.get("kind") == "binary" else "mean confidence (max_k q_k)"


def draw_classwise(data: Any, max_classes: int = 12) -> Figure:
    """See :func:`streamdiv.plots.classwise`."""
    data = report_data(data)
    refuse_drift(data, "class-wise calibration")
    if isinstance(max_classes, bool) or not isinstance(max_classes, int) or max_classes < 1:
        raise StreamdivError(f"max_classes must be a whole number >= 1 (how many classes to draw), "
                             f"not {max_classes!r}")
    classes = [entry for entry in data.get("classes") or [] if entry.get("calibration")]
    if not classes:
        raise StreamdivError("this report has no class-wise calibration: score with classwise=True "
                             "(--classwise), with labels or targets and metrics='all' (it is on by default up to "
                             "100 classes)")
    frequency = [number(entry.get("observed_frequency")) for entry in classes]
    order = sorted(range(len(classes)), key=lambda k: -frequency[k] if not math.isnan(frequency[k]) else math.inf)
    chosen = [classes[k] for k in order[:max_classes]]
    columns = min(GRID_COLUMNS, math.ceil(math.sqrt(len(chosen))))
    lines = math.ceil(len(chosen) / columns)
    figure = new_figure(max(2.5 * columns + 0.6, 4.5), 2.5 * lines + 1.0)
    first = None
    for position, entry in enumerate(chosen):
        axis = figure.add_subplot(lines, columns, position + 1, sharex=first, sharey=first)
        first = first or axis
        _diagram(axis, entry["calibration"], "prediction")
        axis.set_title(f"{entry['class']}: frequency {shown(entry.get('observed_frequency'), 3)}, "
                       f"ECE {shown(entry.get('ece'), 3)}", fontsize="small")
        # tick labels on the left column, and beneath the lowest panel of each column
        axis.tick_params(labelsize="x-small", labelleft=position % columns == 0,
                         labelbottom=position + columns >= len(chosen))
    word = "class" if len(classes) == 1 else "classes"
    note = f"{len(chosen)} of {len(classes)} {word} shown" + (" (the most frequent)" if len(chosen) < len(classes)
                                                             else "")
    figure.suptitle(f"Class-wise reliability, classwise ECE {shown(data['metrics'].get('classwise_ece'))}\n{note}",
                    fontsize="medium")
    figure.supxlabel("mean predicted probability of the class (q_k)", fontsize="small")
    figure.supylabel("observed frequency of the class", fontsize="small")
    return figure
