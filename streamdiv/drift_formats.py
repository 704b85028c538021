"""Output formats for a drift report: the same as for a report (table, JSON, CSV, Prometheus, HTML)."""

from __future__ import annotations

import csv
import io
from typing import Any, Callable

from .drift_report import COMPARISONS, DISTRIBUTIONS, FIGURES, DriftReport
from .formats import _aligned, _csv_value, _number, _sample, _text
from .html_report import drift_html
from .metrics import METRIC_NAMES
from .windows import WINDOW_KEY, start_seconds

GROUP_COLUMNS = ("predicted_class_psi", "mean_prediction_js", "confidence_psi", "ece.change", "accuracy.change",
                 "cross_entropy.change", "mean_confidence.change")


def render_drift(report: DriftReport, fmt: str) -> str:
    return RENDERERS[fmt](report)


def table(report: DriftReport) -> str:
    """Each distribution's figures, then each metric on both sides, then one line per group."""
    rows = [["distribution", *FIGURES, "empty_bins"]]
    for name in DISTRIBUTIONS:
        rows.append([name, *(_number(report.metrics[f"{name}_{figure}"]) for figure in (*FIGURES, "empty_bins"))])
    text = (f"drift of the current side from the reference (js, kl and reverse_kl in {report.units}, psi in nats; "
            f"smoothing {report.smoothing:g})\n\n" + _aligned(rows))
    compared = [["metric", *COMPARISONS]]
    for metric in METRIC_NAMES:
        both_zero = report.metrics.get(f"{metric}.reference") == 0 == report.metrics.get(f"{metric}.current")
        if f"{metric}.change" in report.metrics and not both_zero:
            compared.append([metric, *(_number(report.metrics[f"{metric}.{part}"]) for part in COMPARISONS)])
    if len(compared) > 1:
        text += "\n\n" + _aligned(compared)
    if report.groups:
        columns = [name for name in GROUP_COLUMNS if any(name in g["metrics"] for g in report.groups)]
        names = list(report.groups[0]["group"])
        group_rows = [[*names, "against", *columns]]
        for group in report.groups:
            against = group["against"]
            group_rows.append([*(_text(v) for v in group["group"].values()),
                               ",".join(f"{k}={v}" for k, v in against.items()) if against else "(whole)",
                               *(_number(group["metrics"].get(name)) for name in columns)])
        text += "\n\n" + _aligned(group_rows, right_from=len(names) + 1)
    return text + "\n"


def as_json(report: DriftReport) -> str:
    import json

    return json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n"


def as_csv(report: DriftReport) -> str:
    """One row for the whole run (scope=overall), then one per group, every figure and comparison a column."""
    names = list(report.config.group_names)
    keys = list(report.metrics)
    for group in report.groups:
        keys += [key for key in group["metrics"] if key not in keys]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["scope", *names, *keys, "units"])
    writer.writerow(["overall", *([""] * len(names)), *(_csv_value(report.metrics.get(k)) for k in keys),
                     report.units])
    for group in report.groups:
        writer.writerow(["group", *(_csv_value(v) for v in group["group"].values()),
                         *(_csv_value(group["metrics"].get(k)) for k in keys), report.units])
    return buffer.getvalue()


def prometheus(report: DriftReport) -> str:
    """``streamdiv_drift_<figure>`` gauges (``ece.change`` becomes ``streamdiv_drift_ece_change``), groups as
    labels; a windowed current side writes its latest window only, as a report does."""
    samples: list[tuple[dict[str, Any], dict[str, Any]]] = [({}, report.metrics)]
    samples += [(group["group"], group["metrics"]) for group in report.groups]
    if WINDOW_KEY in report.config.group_names:
        starts = [labels[WINDOW_KEY] for labels, _ in samples[1:] if labels[WINDOW_KEY] is not None]
        latest = max(starts, key=start_seconds) if starts else None
        samples = [(labels, values) for labels, values in samples[1:] if labels[WINDOW_KEY] == latest]
    lines = []
    for key in dict.fromkeys(key for _, values in samples for key in values):
        present = [(labels, values[key]) for labels, values in samples if values.get(key) is not None]
        if not present:
            continue
        name = "streamdiv_drift_" + key.replace(".", "_")
        lines += [f"# HELP {name} drift of the current run from the reference: {key}", f"# TYPE {name} gauge"]
        lines += [_sample(name, labels, value) for labels, value in present]
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[[DriftReport], str]] = {
    "table": table, "json": as_json, "csv": as_csv, "prometheus": prometheus, "html": drift_html}
