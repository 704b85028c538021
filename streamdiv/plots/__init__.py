"""Pictures of a report: the reliability diagram, class-wise reliability, a metric over time windows, and drift.

Every function takes the plain JSON data of a report, ``Report.to_dict()`` or ``DriftReport.to_dict()``, or
the same dict loaded from a JSON file streamdiv wrote (``--format json``), so that a saved report draws as well
as one in memory; each returns a :class:`matplotlib.figure.Figure`.  Figures are made with
``matplotlib.figure.Figure``, not pyplot: nothing global is touched (no backend chosen, no figure kept open,
no display needed), and :func:`png` renders with Agg.

matplotlib is the optional extra ``plot`` (``pip install 'streamdiv[plot]'``); ``import streamdiv`` never
imports it, and without it every function here raises :class:`~streamdiv.StreamdivError` with
:data:`NEEDS_MATPLOTLIB`.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from ..errors import StreamdivError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# The modules are named apart from the functions (reliability_diagrams, window_series, drift_panels): importing
# a submodule sets the package's attribute of its name, which would replace the function of that name.
KINDS = ("reliability", "classwise", "series", "drift")
NEEDS_MATPLOTLIB = "plotting needs matplotlib: pip install 'streamdiv[plot]'"
# The keywords each kind takes besides the data (and ax, for the kinds that draw on one axis).
_OPTIONS: dict[str, tuple[str, ...]] = {"reliability": ("ax",), "classwise": ("max_classes",),
                                        "series": ("metric", "ax"), "drift": ()}


def _require() -> None:
    """Import matplotlib, or raise the one-line StreamdivError that names the extra."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise StreamdivError(NEEDS_MATPLOTLIB) from None


def reliability(data: dict[str, Any], ax: Axes | None = None) -> Figure:
    r"""The reliability diagram: per calibration bin, the observed frequency against the mean confidence, the
    diagonal of perfect calibration and each bin's gap shaded; beneath it, on the same x axis, the confidence
    histogram (each bin's weight over [lower, upper), so that quantile bins show their unequal widths).  The
    title gives the ECE and the row count.  With ``ax``, the diagram is drawn on it and the histogram on a twin
    axis at its foot, and ``ax.figure`` is returned.  A label-free report draws the confidence histogram alone.

    .. math::

        \mathrm{ECE} = \sum_b \frac{W_b}{W} \left| \bar{y}_b - \bar{c}_b \right|
    """
    _require()
    from .reliability_diagrams import draw_reliability

    return draw_reliability(data, ax)


def classwise(data: dict[str, Any], max_classes: int = 12) -> Figure:
    """Small multiples of per-class reliability (observed frequency of class k against mean q_k per bin), the
    ``max_classes`` most frequent classes (by observed frequency) first, with a note of how many are shown."""
    _require()
    from .reliability_diagrams import draw_classwise

    return draw_classwise(data, max_classes)


def series(data: dict[str, Any], metric: str = "ece", ax: Axes | None = None) -> Figure:
    """``metric`` over the time windows, one line per group of the non-window keys ("all" when the report is
    grouped by windows alone), against each window's start; a report's metric or a drift report's figure
    (``confidence_psi``, ``ece.change``, ...)."""
    _require()
    from .window_series import draw_series

    return draw_series(data, metric, ax)


def drift(data: dict[str, Any]) -> Figure:
    """Reference against current for the three drift distributions (predicted class, mean prediction,
    confidence histogram), each panel titled with its PSI."""
    _require()
    from .drift_panels import draw_drift

    return draw_drift(data)


def plot(data: dict[str, Any], kind: str = "reliability", ax: Axes | None = None, **options: Any) -> Figure:
    """The figure of ``kind`` (one of :data:`KINDS`) with its options: ``max_classes`` for "classwise",
    ``metric`` for "series"; ``ax`` for "reliability" and "series"."""
    if kind not in KINDS:
        raise StreamdivError(f"unknown plot kind {kind!r}; the kinds are: {', '.join(KINDS)}")
    given = dict(options, **({"ax": ax} if ax is not None else {}))
    unknown = [name for name in given if name not in _OPTIONS[kind]]
    if unknown:
        takes = ", ".join(_OPTIONS[kind]) or "none"
        raise StreamdivError(f"the {kind} plot does not take {', '.join(unknown)} (its options: {takes})")
    return {"reliability": reliability, "classwise": classwise, "series": series, "drift": drift}[kind](
        data, **given)


def svg(figure: Figure) -> str:
    """The figure as an SVG document, its text as text (searchable, and small inline in HTML), with no date
    and fixed ids, so that one figure gives the same document every time."""
    _require()
    import matplotlib

    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "streamdiv"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue().decode("utf-8")


def png(figure: Figure) -> bytes:
    """The figure as PNG bytes at its own dpi (width and height in pixels: its size in inches times dpi)."""
    _require()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi)
    return buffer.getvalue()


__all__ = ["KINDS", "NEEDS_MATPLOTLIB", "reliability", "classwise", "series", "drift", "plot", "svg", "png"]
