"""Output formats for a report: an aligned table for people, JSON, CSV, the Prometheus text format and HTML.

Every format takes a :class:`~streamdiv.Report` and returns text; the CLI only chooses and writes.
"""

from __future__ import annotations

import csv
import io
import math
import os
import stat
import tempfile
from typing import Any, Callable

from .metrics import METRICS, UNITS, computed_metrics
from .kernels.layout import GAUSSIAN
from .report import Report
from .skip_reasons import skipped_words

FORMATS = ("table", "json", "csv", "prometheus", "html")
GROUP_COLUMNS = ("rows", "cross_entropy", "kl_divergence", "accuracy", "brier", "ece", "infinite_rows", "gaussian_kl")
GAUSSIAN_GROUP_COLUMNS = ("infinite_rows",)  # shown per group for the Gaussian kind only
LABEL_FREE_GROUP_COLUMNS = ("rows", "prediction_entropy", "mean_confidence")  # predictions scored alone
CLASS_COLUMNS = ("ece", "mean_prediction", "observed_frequency", "calibration_ratio")
TABLE_CLASSES = 20  # the table lists the classes' calibration up to this many classes (JSON: always)


def render(report: Report, fmt: str) -> str:
    return RENDERERS[fmt](report)


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value.is_integer() and abs(value) < 1e15:
        return f"{value:,.0f}" if abs(value) >= 1e6 else f"{value:.6f}"
    if value != 0 and (abs(value) < 1e-4 or abs(value) >= 1e6):
        return f"{value:.6e}"
    return f"{value:.6f}"


def _aligned(rows: list[list[str]], right_from: int = 1) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [cell.ljust(widths[i]) if i < right_from else cell.rjust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def table(report: Report) -> str:
    """Metric, value and unit, one metric a line, and a line on the skipped rows by reason when rows were
    skipped; then one line per group with the key metrics.  Metrics outside the report's metric set are left out
    (JSON keeps them, as null)."""
    unit = report.units
    computed = computed_metrics(report.config.metrics, report.config.kind, report.config.label_free)
    rows = [["metric", "value", "unit"]]
    for metric in METRICS:
        value = report.metrics[metric.name]
        if metric.name not in computed or (
                value is None and metric.name in ("reverse_kl_divergence", "cross_entropy_stderr",
                                                  "calibration_ratio")):
            continue
        kind = {"information": unit, "count": "rows"}.get(metric.kind, "")
        rows.append([metric.name, _number(value), kind])
    text = _aligned(rows)
    skipped = skipped_words(report.metrics["skipped_rows"], report.skipped)
    if skipped:
        text += "\n" + skipped
    if report.groups:
        columns = list(LABEL_FREE_GROUP_COLUMNS) if report.config.label_free else [
            name for name in GROUP_COLUMNS if name in computed
            and (report.config.kind == GAUSSIAN or name not in GAUSSIAN_GROUP_COLUMNS)]
        header = list(report.groups[0]["group"]) + columns
        group_rows = [header]
        for group in report.groups:
            group_rows.append([_text(v) for v in group["group"].values()] +
                              [_number(group["metrics"][name]) for name in columns])
        text += "\n\n" + _aligned(group_rows, right_from=len(report.groups[0]["group"]))
    if report.classes:
        text += "\n\n" + _class_table(report)
    elif report.config.label_free and report.distributions and report.distributions["mean_prediction"]:
        text += "\n\n" + _distribution_table(report)
    return text + "\n"


def _distribution_table(report: Report) -> str:
    """Each class's share of the predicted classes and of the mean prediction (a label-free run's view of its
    classes), or a line saying where to find them for many classes."""
    predicted, mean = report.distributions["predicted_class"], report.distributions["mean_prediction"]
    if len(mean) > TABLE_CLASSES:
        return (f"the prediction distributions of {len(mean)} classes: see --format json "
                f"(distributions.predicted_class, .mean_prediction, .confidence)")
    names = report.config.class_names or tuple(str(k) for k in range(len(mean)))
    rows = [["class", "predicted_class", "mean_prediction"]]
    rows += [[str(name), _number(predicted[k] if predicted else None), _number(mean[k])]
             for k, name in enumerate(names)]
    return _aligned(rows)


def _class_table(report: Report) -> str:
    """Each class's calibration (report.classes), or a line saying where to find it for many classes."""
    if len(report.classes) > TABLE_CLASSES:
        return (f"class-wise calibration of {len(report.classes)} classes: see --format json "
                f"(classes[].ece, .calibration_ratio, .calibration)")
    rows = [["class", *CLASS_COLUMNS]]
    rows += [[str(entry["class"]), *(_number(entry[name]) for name in CLASS_COLUMNS)] for entry in report.classes]
    return _aligned(rows)


def _text(value: Any) -> str:
    return "(null)" if value is None else str(value)


def as_json(report: Report) -> str:
    return report.to_json(indent=2) + "\n"


def as_csv(report: Report) -> str:
    """One row for the whole run (scope=overall), then one per group, every metric a column."""
    group_names = list(report.config.group_names)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["scope", *group_names, *report.metrics, "units"])
    writer.writerow(["overall", *([""] * len(group_names)), *map(_csv_value, report.metrics.values()),
                     report.units])
    for group in report.groups:
        writer.writerow(["group", *(_csv_value(v) for v in group["group"].values()),
                         *map(_csv_value, group["metrics"].values()), report.units])
    return buffer.getvalue()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value) if isinstance(value, float) else str(value)


def prometheus(report: Report) -> str:
    """Text exposition format: ``streamdiv_<metric>_<unit>`` gauges, groups as labels (a group column named
    window, reason or class as group_<name>; null values left out);
    ``streamdiv_skipped_rows`` also once per reason with skipped rows, labelled ``reason="<its key>"``.
    A windowed report writes its latest window alone, each sample labelled ``window="<its start>"``: a
    scrape shows the model now, not the average of every window in the file."""
    labels: dict[str, Any] = {}
    if report.config.window:
        latest = report.latest_window()
        if latest is None:
            return ""
        labels = {"window": latest[0]}
        report = latest[1]
    lines = []
    for metric in METRICS:
        name = "streamdiv_" + metric.name + _prometheus_suffix(metric.kind, report.units)
        samples = [(labels, report.metrics[metric.name])]
        samples += [(labels | _group_labels(group), group["metrics"][metric.name]) for group in report.groups]
        if metric.name == "skipped_rows":
            samples += _by_reason(labels, report.skipped)
            samples += [sample for group in report.groups for sample in _by_reason(labels | _group_labels(group),
                                                                                  group["skipped"])]
        samples = [(where, value) for where, value in samples if value is not None]
        if not samples:
            continue
        lines.append(f"# HELP {name} {metric.description}")
        lines.append(f"# TYPE {name} gauge")
        lines += [_sample(name, where, value) for where, value in samples]
    for column, suffix, help_text in (("ece", "_ratio", "each class's calibration error over bins of q_k"),
                                      ("calibration_ratio", "", "each class's mean prediction / observed frequency")):
        samples = [(labels | {"class": entry["class"]}, entry[column]) for entry in report.classes
                   if entry[column] is not None]
        if not samples:
            continue
        name = f"streamdiv_class_{column}{suffix}"
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        lines += [_sample(name, where, value) for where, value in samples]
    return "\n".join(lines) + "\n"


# The labels prometheus() adds itself; a group column of one of these names is labelled group_<name>, so that
# neither hides the other.
OWN_LABELS = ("window", "reason", "class")


def _group_labels(group: dict[str, Any]) -> dict[str, Any]:
    return {(f"group_{name}" if name in OWN_LABELS else name): value for name, value in group["group"].items()}


def _by_reason(labels: dict[str, Any], skipped: dict[str, int] | None) -> list[tuple[dict[str, Any], int]]:
    return [(labels | {"reason": reason}, rows) for reason, rows in (skipped or {}).items()]


def _sample(name: str, labels: dict[str, Any], value: float) -> str:
    label_text = ",".join(f'{_label_name(k)}="{_escape(v)}"' for k, v in labels.items())
    return f"{name}{{{label_text}}} {_prometheus_value(value)}" if label_text else f"{name} {_prometheus_value(value)}"


def _prometheus_suffix(kind: str, units: str) -> str:
    return {"information": "_" + units, "probability": "_ratio"}.get(kind, "")  # counts already end in "rows"


def _prometheus_value(value: float) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _label_name(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in str(name))
    return cleaned if cleaned and not cleaned[0].isdigit() else "_" + cleaned


def _escape(value: Any) -> str:
    return _text(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def as_html(report: Report) -> str:
    """One self-contained HTML file (:mod:`streamdiv.html_report`, which imports this module)."""
    from .html_report import report_html

    return report_html(report)


RENDERERS: dict[str, Callable[[Report], str]] = {
    "table": table, "json": as_json, "csv": as_csv, "prometheus": prometheus, "html": as_html}


def write_atomically(path: str, data: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename over it: readers never see half a file.

    Only regular files (or new paths) are replaced this way; a device, FIFO or socket (``/dev/null``,
    ``/dev/stdout``, a named pipe) is written in place, since renaming over it would replace the device.
    """
    if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
        with open(path, "wb") as stream:
            stream.write(data)
        return
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


__all__ = ["FORMATS", "render", "write_atomically", "UNITS"]
