"""``--format html``: one self-contained HTML file for a report or a drift report.

Everything is inline: the CSS, and the diagrams as SVG drawn by :mod:`streamdiv.plots`; no script, font or
image comes from anywhere else, so the file reads the same in a browser offline and attached to an email.
It holds the units and the row accounting (rows read = evaluated + skipped + ignored), the summary table,
the reliability diagram, the class table, the per-group table, the time series when the run had windows and,
for a drift report, the drift figures, the metrics side by side and the two sides' distributions.  Without
matplotlib (the ``plot`` extra) the tables stay and each diagram's place says how to get it.
"""

from __future__ import annotations

import html
from typing import Any, Callable

from . import __version__
from .errors import StreamdivError
from .formats import _number
from .metrics import METRICS
from .windows import WINDOW_KEY

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1d1d1f;
       margin: 2em auto; max-width: 1100px; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
p.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0; font-variant-numeric: tabular-nums; }
th, td { padding: 0.2em 0.8em; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th { background: #f5f5f7; } td.name, th.name { text-align: left; }
div.scroll { overflow-x: auto; } figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
p.note { color: #8a6d00; background: #fff8e1; padding: 0.4em 0.8em; }
div.pair { display: flex; flex-wrap: wrap; gap: 0 3em; align-items: flex-start; }
div.pair > div { flex: 1 1 380px; min-width: 0; }
"""
SERIES_METRICS = ("ece", "cross_entropy", "accuracy")
LABEL_FREE_SERIES = ("prediction_entropy", "mean_confidence")
DRIFT_SERIES = ("confidence_psi", "predicted_class_psi")


def report_html(report: Any) -> str:
    """The HTML file of a :class:`~streamdiv.Report`."""
    data = report.to_dict()
    computed = report.computed
    summary = [_section("Metrics", _metric_table(data, computed))]
    if data["calibration"]:
        summary.append(_section("Reliability", _diagram(lambda plots: plots.reliability(data))))
    elif data.get("distributions") and data["distributions"].get("confidence"):
        summary.append(_section("Confidence", _diagram(lambda plots: plots.reliability(data))))
    sections = [_accounting(data), _side_by_side(summary)]
    if data["classes"]:
        sections.append(_section("Classes", _rows_table(
            ["class", "ece", "mean_prediction", "observed_frequency", "calibration_ratio"],
            [[entry["class"], *(entry[k] for k in ("ece", "mean_prediction", "observed_frequency",
                                                   "calibration_ratio"))] for entry in data["classes"]])))
    if data.get("groups"):
        columns = [name for name in ("rows", "cross_entropy", "accuracy", "brier", "ece", "prediction_entropy",
                                     "mean_confidence", "gaussian_kl") if name in computed]
        sections.append(_section("Groups", _group_table(data, columns)))
        if WINDOW_KEY in data["by"]:
            names = LABEL_FREE_SERIES if data["layout"].get("targets") == "none" else SERIES_METRICS
            sections.append(_section("Over time", _diagrams(
                lambda plots, metric=metric: plots.series(data, metric=metric) for metric in names if metric in computed)))
    return _page("streamdiv report", data, sections)


def drift_html(report: Any) -> str:
    """The HTML file of a :class:`~streamdiv.DriftReport`."""
    data = report.to_dict()
    figures = [[name, *(data["metrics"].get(f"{name}_{figure}") for figure in ("psi", "js", "kl", "reverse_kl",
                                                                            "empty_bins"))]
               for name in ("predicted_class", "mean_prediction", "confidence")]
    compared = [[metric.name, *(data["metrics"][f"{metric.name}.{part}"] for part in
                                ("reference", "current", "change", "relative_change"))]
                for metric in METRICS if f"{metric.name}.change" in data["metrics"]]
    sections = [
        _accounting(data["current"], "current side") + _accounting(data["reference"], "reference"),
        _section("Drift", f"<p class=meta>js, kl and reverse_kl in {html.escape(data['units'])}, psi in nats; "
                          f"smoothing {data['smoothing']:g}</p>"
                 + _rows_table(["distribution", "psi", "js", "kl", "reverse_kl", "empty_bins"], figures)
                 + _diagram(lambda plots: plots.drift(data))),
        _section("Metrics, reference against current", _rows_table(
            ["metric", "reference", "current", "change", "relative_change"], compared)),
    ]
    if data.get("groups"):
        columns = [name for name in ("predicted_class_psi", "mean_prediction_js", "confidence_psi", "ece.change",
                                     "accuracy.change", "cross_entropy.change", "mean_confidence.change")
                   if any(name in group["metrics"] for group in data["groups"])]
        rows = [[*(_key(v) for v in group["group"].values()),
                 ", ".join(f"{k}={v}" for k, v in group["against"].items()) if group["against"] else "(whole)",
                 *(group["metrics"].get(name) for name in columns)] for group in data["groups"]]
        sections.append(_section("Groups", _rows_table([*data["by"], "against", *columns], rows,
                                                       names=len(data["by"]) + 1)))
        if WINDOW_KEY in data["by"]:
            sections.append(_section("Over time", _diagrams(
                lambda plots, metric=metric: plots.series(data, metric=metric) for metric in DRIFT_SERIES)))
    return _page("streamdiv drift report", data, sections)


# ---- pieces


def _page(title: str, data: dict[str, Any], sections: list[str]) -> str:
    return (f"<!doctype html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n"
            f"<meta name=viewport content='width=device-width, initial-scale=1'>\n"
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n<p class=meta>information in {html.escape(data['units'])}; "
            f"streamdiv {html.escape(__version__)}</p>\n" + "\n".join(sections)
            + f"\n<p class=meta>made by streamdiv {html.escape(__version__)}</p>\n</body>\n</html>\n")


def _side_by_side(parts: list[str]) -> str:
    """Sections next to each other where the window is wide enough, one under the other where it is not."""
    return "<div class=pair>" + "".join(f"<div>{part}</div>" for part in parts) + "</div>"


def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n{body}"


def _accounting(data: dict[str, Any], side: str = "") -> str:
    """Rows read = evaluated + skipped + ignored, in words."""
    metrics = data.get("metrics")
    if metrics is None:  # a drift report's side: rows read alone
        return f"<p class=meta>{html.escape(side)}: {data['rows_read']:,} rows read</p>"
    return (f"<p class=meta>{data['rows_read']:,} rows read = {metrics['rows']:,} evaluated + "
            f"{metrics['skipped_rows']:,} skipped + {metrics['ignored_rows']:,} ignored</p>")


def _metric_table(data: dict[str, Any], computed: tuple[str, ...]) -> str:
    units = {"information": data["units"], "count": "rows"}
    rows = [[metric.name, data["metrics"][metric.name], units.get(metric.kind, "")] for metric in METRICS
            if metric.name in computed and data["metrics"][metric.name] is not None]
    return _rows_table(["metric", "value", "unit"], rows)


def _group_table(data: dict[str, Any], columns: list[str]) -> str:
    rows = [[*(_key(v) for v in group["group"].values()), *(group["metrics"][name] for name in columns)]
            for group in data["groups"]]
    return _rows_table([*data["by"], *columns], rows, names=len(data["by"]))


def _rows_table(header: list[str], rows: list[list[Any]], names: int = 1) -> str:
    """A table whose first ``names`` columns are text (left-aligned), the others numbers."""
    def cell(tag: str, position: int, value: Any) -> str:
        value = _plain(value)
        text = value if isinstance(value, str) else _number(value)
        kind = " class=name" if position < names else ""
        return f"<{tag}{kind}>{html.escape(str(text))}</{tag}>"

    head = "".join(cell("th", i, name) if i < names else f"<th>{html.escape(name)}</th>"
                   for i, name in enumerate(header))
    body = "\n".join("<tr>" + "".join(cell("td", i, value) for i, value in enumerate(row)) + "</tr>"
                     for row in rows)
    return f"<div class=scroll><table>\n<tr>{head}</tr>\n{body}\n</table></div>"


def _plain(value: Any) -> Any:
    """A JSON value as formats._number reads it: "inf" back to a float."""
    if value in ("inf", "-inf"):
        return float(value)
    return value


def _key(value: Any) -> str:
    return "(null)" if value is None else str(value)


def _diagram(draw: Callable[[Any], Any]) -> str:
    """A figure drawn by ``draw(streamdiv.plots)``, inline as SVG; a note in its place without matplotlib."""
    try:
        from . import plots

        figure = draw(plots)
    except StreamdivError as error:
        return f"<p class=note>{html.escape(str(error))}</p>"
    return f"<figure>{_inline(plots.svg(figure))}</figure>"


def _diagrams(draws: Any) -> str:
    """Several diagrams (a note that repeats, such as a missing extra's, said once)."""
    return "".join(dict.fromkeys(_diagram(draw) for draw in draws))


def _inline(document: str) -> str:
    """An SVG document without its XML prologue and doctype, to sit inside HTML."""
    start = document.find("<svg")
    return document[start:] if start >= 0 else document
