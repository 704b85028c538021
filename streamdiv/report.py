"""The result of a run: metrics overall and per group, derived from a state only when asked for."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .kernels.layout import GAUSSIAN
from .calibration import ClassBins, class_bins, classwise_ece_per_class
from .distributions import report_distributions
from .errors import StreamdivError
from .metrics import UNITS, compute_metrics, computed_metrics
from .skip_reasons import skipped_by_reason
from .totals import Totals, Value, group_totals
from .state import Config, State, group_order, regrouped
from .windows import WINDOW_KEY, start_seconds

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


class Report:
    """Metrics of one scored stream.

    ``metrics`` holds the overall values (see :data:`streamdiv.metrics.METRICS` for the keys); ``skipped`` the
    invalid rows skipped (``on_invalid="skip"``) by reason, ``{reason: rows}`` for the reasons with rows only,
    whose counts add up to ``metrics["skipped_rows"]`` (the reasons are :data:`streamdiv.kernels.status.REASONS`,
    such as ``null_label`` or ``prediction_out_of_range``; None when part of a state saved by a streamdiv before
    them skipped rows, whose reasons are unknown); ``groups`` one ``{"group": {column: value}, "metrics": {...},
    "skipped": {...}}`` per group when the run was grouped; ``calibration`` the overall reliability table
    (empty for the predictions alone; each bin's edges: k/M with binning="uniform", equal-weight cuts of the
    fine histogram with "quantile"), ``calibration_bound`` a bound on how far the quantile bins' ECE can be
    from that of the exact equal-mass bins (0.0 for uniform bins, None without calibration), ``classes`` one entry
    per class with class-wise calibration on (the positive class alone for one binary column): its name,
    ``ece``, ``mean_prediction``, ``observed_frequency``, ``calibration_ratio`` (mean prediction / observed
    frequency) and its own reliability table over bins of q_k; ``distributions`` the shares of the predicted
    classes, of the mean prediction and of the confidence bins, overall and in each group
    (:mod:`streamdiv.distributions`; None for the Gaussian kind); ``warnings`` what in the data looks like a
    mistake (each a sentence saying what was seen and what to do; ``evaluate`` raises each as a
    ``StreamdivWarning``, the command line prints each on stderr), and ``to_dict()`` all but the warnings as
    JSON-able data.  ``predictions`` says what the predictions were given as: "probs", "logits", or None when
    unknown (a state restored from bytes, or merged from both kinds); it words the warnings.
    """

    def __init__(self, state: State, base: str | int, predictions: str | None = None):
        self.base = base
        self.units = UNITS[base][0]
        self.config = state.config
        self._state = state
        overall = group_totals(state)
        kind, label_free = state.config.kind, state.config.label_free
        self.metrics: dict[str, Value] = state_metrics(overall, state.config, base)
        self.skipped: dict[str, int] | None = skipped_by_reason(overall.counts, state.config.absent_slots)
        self.distributions: dict[str, Any] | None = report_distributions(overall)
        calibrated = state.config.metrics == "all" and kind != GAUSSIAN and not label_free
        self.calibration: list[dict[str, Value]] = _reliability_table(overall) if calibrated else []
        self.calibration_bound: Value = overall.calibration.bound if calibrated else None
        self.classes: list[dict[str, Any]] = _classes(overall, state) if kind != GAUSSIAN else []
        self.groups: list[dict[str, Any]] = []
        if state.config.group_names:
            for g in group_order(state):
                key = state.group_keys[g]
                totals = group_totals(state, g)
                self.groups.append({"group": dict(zip(state.config.group_names, key)),
                                    "metrics": state_metrics(totals, state.config, base),
                                    "skipped": skipped_by_reason(totals.counts, state.config.absent_slots),
                                    "distributions": report_distributions(totals)})
        self.warnings: list[str] = [message for message in (double_softmax_warning(self.metrics, predictions),)
                                    if message is not None]

    @property
    def computed(self) -> tuple[str, ...]:
        """The metrics this report computes (the others are None whatever the data)."""
        return computed_metrics(self.config.metrics, self.config.kind, self.config.label_free)

    def series(self, metric: str, **group: Any) -> list[tuple[str, Value]]:
        """``metric`` window by window, ``[(window_start, value), ...]`` in order of window start, over the rows
        of the group whose ``by`` values are given (``series("ece", region="eu")``); the ``by`` columns not
        given are added together (no keywords: each window's whole)."""
        names = self.config.group_names
        if WINDOW_KEY not in names:
            raise StreamdivError("series() needs a windowed report: evaluate(..., time=COLUMN, window='1d')")
        if metric not in self.metrics:
            raise StreamdivError(f"unknown metric {metric!r}; the metrics are: {', '.join(self.metrics)}")
        if set(group) == set(names) - {WINDOW_KEY}:
            chosen = [entry for entry in self.groups if all(entry["group"][k] == v for k, v in group.items())]
            return [(entry["group"][WINDOW_KEY], entry["metrics"][metric]) for entry in chosen]
        windows = Report(regrouped(self._state, (WINDOW_KEY,), group), self.base)
        return [(entry["group"][WINDOW_KEY], entry["metrics"][metric]) for entry in windows.groups]

    def latest_window(self) -> tuple[str, Report] | None:
        """(start, report) of the latest window alone (grouped by the ``by`` columns, if any); None without
        windows or rows of a known time."""
        starts = [entry["group"][WINDOW_KEY] for entry in self.groups if WINDOW_KEY in entry["group"]]
        starts = [start for start in starts if start is not None]
        if not starts:
            return None
        latest = max(starts, key=start_seconds)
        by = tuple(name for name in self.config.group_names if name != WINDOW_KEY)
        return latest, Report(regrouped(self._state, by, {WINDOW_KEY: latest}), self.base)

    @property
    def rows_read(self) -> int:
        """Rows read = evaluated + skipped + ignored."""
        m = self.metrics
        return int(m["rows"]) + int(m["skipped_rows"]) + int(m["ignored_rows"])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; infinities become the string "inf" (strict JSON has no Infinity).
        ``skipped_by_reason`` is ``skipped``, overall and in each group."""
        config = self.config
        layout: dict[str, Any] = {"kind": GAUSSIAN, "dimensions": config.dimensions} if config.kind == GAUSSIAN else {
            "kind": "binary" if config.binary else "multiclass",
            "targets": "none" if config.label_free else "soft" if config.soft_targets else "hard",
            "num_classes": config.num_classes,
            "classes": list(config.class_names) if config.class_names else None,
            "bins": config.bins,
            "binning": config.binning,
            "classwise": bool(config.classwise),
            "eps": config.eps,
            "renormalize": config.renormalize,
        }
        result: dict[str, Any] = {
            "units": self.units,
            "base": self.base,
            "layout": layout,
            "rows_read": self.rows_read,
            "metrics": _json_values(self.metrics),
            "skipped_by_reason": self.skipped,
            "calibration": [_json_values(row) for row in self.calibration],
            "calibration_bound": _json_value(self.calibration_bound),
            "classes": [_json_class(entry) for entry in self.classes],
            "distributions": self.distributions,
        }
        if config.window:
            result["window"] = config.window
        if config.group_names:
            result["by"] = list(config.group_names)
            result["groups"] = [{"group": g["group"], "metrics": _json_values(g["metrics"]),
                                 "skipped_by_reason": g["skipped"], "distributions": g["distributions"]}
                                for g in self.groups]
        return result

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def plot(self, kind: str = "reliability", ax: Axes | None = None, **options: Any) -> Figure:
        """A matplotlib Figure of this report: ``kind`` "reliability" (the default), "classwise" or "series"
        (see :mod:`streamdiv.plots`; needs the extra ``streamdiv[plot]``); drawn on ``ax`` when given."""
        from . import plots  # matplotlib only when a picture is asked for

        return plots.plot(self.to_dict(), kind, ax, **options)

    def __repr__(self) -> str:
        names = (("rows", "gaussian_kl", "infinite_rows") if self.config.kind == GAUSSIAN
                 else ("rows", "prediction_entropy", "mean_confidence") if self.config.label_free
                 else ("rows", "cross_entropy", "kl_divergence", "accuracy", "ece"))
        shown = ", ".join(f"{name}={_short(self.metrics[name])}" for name in names)
        return f"<Report {self.units}: {shown}>"


# The double-softmax warning: when at least this share of at least this many scored rows look softmaxed
# twice.  A healthy model's rows rarely do (softmax of N(0, 2^2) logits: 7% of rows at K = 3, none at K = 10,
# tests/test_double_softmax.py); a few hundred rows of a real mistake all do.
DOUBLE_SOFTMAX_SHARE = 0.95
DOUBLE_SOFTMAX_MIN_ROWS = 100


def double_softmax_warning(metrics: dict[str, Value], predictions: str | None) -> str | None:
    """The warning for a run whose rows look softmaxed twice (``double_softmax_rows``, see
    :mod:`streamdiv.metrics`), worded for predictions given as ``predictions`` ("probs", "logits" or None);
    None when fewer than DOUBLE_SOFTMAX_SHARE of the scored rows, or fewer than DOUBLE_SOFTMAX_MIN_ROWS, do."""
    rows, flat = metrics.get("rows"), metrics.get("double_softmax_rows")
    if rows is None or flat is None or rows < DOUBLE_SOFTMAX_MIN_ROWS or flat < DOUBLE_SOFTMAX_SHARE * rows:
        return None
    seen = f"{int(flat):,} of {int(rows):,} scored rows"
    if predictions == "logits":
        return (f"{seen} look like probabilities passed as logits (every value in [0, 1], summing to 1), which "
                f"softmax would flatten a second time: pass them as probabilities with probs= (--probs)")
    if predictions == "probs":
        return (f"{seen} look like softmax applied twice (the largest probability at most e times the smallest, "
                f"as softmax of values in [0, 1] gives): pass the model's logits with logits= (--logits), or "
                f"its probabilities with softmax applied once")
    return (f"{seen} look softmaxed twice (probabilities whose largest is at most e times their smallest, or "
            f"logits that already sum to 1): pass probabilities once with probs= (--probs), or the model's "
            f"logits with logits= (--logits)")


def state_metrics(totals: Totals, config: Config, base: str | int) -> dict[str, Value]:
    """Every metric of ``totals`` (a group's, or a whole run's) as a state of ``config`` computes them: its
    metric set, kind, absent slots and label-free scoring say which are None."""
    return compute_metrics(totals, base, config.metrics, config.absent_slots, config.kind, config.label_free)


_CLASS_READS = ("class.target_mass", "class.prediction_mass", "class_bin.count", "class_bin.weight",
                "class_bin.prediction", "class_bin.observed")  # what report.classes reads


def _classes(t: Totals, state: State) -> list[dict[str, Any]]:
    """report.classes: each class-wise class's calibration (empty without class-wise bins)."""
    bins = class_bins(t)
    if bins is None or not t.has(*_CLASS_READS):  # a slot of an older state's layout it lacks: no table
        return []
    names = state.config.class_names or tuple(str(k) for k in range(state.config.num_classes or 0))
    prediction, observed = t.class_values("prediction_mass"), t.class_values("target_mass")
    eces = classwise_ece_per_class(bins)
    rows = t.class_bin_rows()
    entries = []
    for position, k in enumerate(t.classwise_classes):
        mean_prediction, frequency = prediction[k] / bins.total, observed[k] / bins.total
        entries.append({
            "class": names[k],
            "ece": float(eces[position]),
            "mean_prediction": float(mean_prediction),
            "observed_frequency": float(frequency),
            # in Python floats: past 1.8e308 the ratio is inf, without numpy's RuntimeWarning
            "calibration_ratio": float(mean_prediction) / float(frequency) if frequency > 0 else None,
            "calibration": _class_reliability_table(bins, rows, position),
        })
    return entries


def _class_reliability_table(bins: ClassBins, rows: np.ndarray, position: int) -> list[dict[str, Value]]:
    """Per class-wise bin of one class: edges k/M, row count, weight, mean q_k and mean observed y_k."""
    n_bins = bins.weight.shape[1]
    table = []
    for b in range(n_bins):
        weight = bins.weight[position, b]
        table.append({
            "lower": b / n_bins,
            "upper": (b + 1) / n_bins,
            "rows": int(rows[position, b]),
            "weight": float(weight),
            "prediction": float(bins.prediction[position, b] / weight) if weight > 0 else None,
            "observed": float(bins.observed[position, b] / weight) if weight > 0 else None,
        })
    return table


def _json_class(entry: dict[str, Any]) -> dict[str, Any]:
    values = {name: _json_value(value) for name, value in entry.items() if name != "calibration"}
    return values | {"calibration": [_json_values(row) for row in entry["calibration"]]}


def _reliability_table(t: Totals) -> list[dict[str, Value]]:
    """Per calibration bin: its edges (the rows of the bin are those with lower <= c < upper, the last bin
    closed), row count, weight, mean confidence and mean observed outcome."""
    bins = t.calibration
    table = []
    for b in range(len(bins.weight)):
        used = bins.weight[b] > 0
        table.append({
            "lower": float(bins.lower[b]),
            "upper": float(bins.upper[b]),
            "rows": int(bins.rows[b]),
            "weight": float(bins.weight[b]),
            "confidence": float(bins.confidence[b] / bins.weight[b]) if used else None,
            "observed": float(bins.observed[b] / bins.weight[b]) if used else None,
        })
    return table


def _json_value(value: Value) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value


def _json_values(values: dict[str, Value]) -> dict[str, Any]:
    return {name: _json_value(value) for name, value in values.items()}


def _short(value: Value) -> str:
    return "None" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))
