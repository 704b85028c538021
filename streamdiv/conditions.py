"""``--fail-if`` conditions: ``METRIC OP NUMBER`` checked against the overall metrics and every group."""

from __future__ import annotations

import difflib
import math
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable

from .errors import StreamdivError
from .kernels.layout import CLASSIFICATION, GAUSSIAN
from .metrics import METRIC_NAMES, computed_metrics
from .report import Report

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt}
PATTERN = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[a-z_]+)?)\s*(>=|<=|==|!=|>|<)\s*([-+]?(?:inf|[0-9.]+(?:[eE][-+]?\d+)?))\s*$")


@dataclass(frozen=True)
class Condition:
    """A threshold on one metric, e.g. ``ece>0.05``."""

    metric: str
    op: str
    threshold: float
    text: str

    @classmethod
    def parse(cls, text: str, names: tuple[str, ...] = METRIC_NAMES) -> Condition:
        """``METRIC OP NUMBER``, METRIC one of ``names`` (a drift report's: a figure such as ``confidence_psi``,
        or ``METRIC.change`` and the like)."""
        match = PATTERN.match(text)
        if not match:
            raise StreamdivError(f"cannot read the condition {text!r}: write METRIC OP NUMBER, such as "
                                 f"'ece>0.05' or 'kl_divergence>=0.2' (OP is one of > >= < <= == !=)")
        metric, op, number = match.groups()
        if metric not in names:
            shown = ", ".join(name for name in names if "." not in name)
            if any("." in name for name in names):
                shown += "; and METRIC.reference, METRIC.current, METRIC.change, METRIC.relative_change of each metric"
            close = difflib.get_close_matches(metric, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise StreamdivError(f"unknown metric {metric!r} in {text!r}{hint}; the metrics are: {shown}")
        try:
            threshold = float(number)
        except ValueError as error:
            raise StreamdivError(f"{number!r} in {text!r} is not a number") from error
        return cls(metric, op, threshold, text.strip())

    def check_computed(self, metric_set: str, kind: str = CLASSIFICATION, label_free: bool = False) -> None:
        """Refuse a condition on a metric that ``metric_set`` (or the input's kind, or scoring the predictions
        alone) does not compute: it could never trip."""
        if self.metric not in computed_metrics(metric_set, kind, label_free):
            where = ("for the Gaussian kind (mean and log variance)" if kind == GAUSSIAN
                     else "without labels or targets (the predictions alone give only "
                          + ", ".join(computed_metrics(metric_set, kind, True))
                          + "; name the label column with --labels or the targets with --targets)" if label_free
                     else f"with metrics={metric_set!r}" if metric_set != "all"
                     else "for predictions against labels or targets")
            raise StreamdivError(f"{self.text!r}: {self.metric} is not computed {where}")

    def holds(self, value: Any) -> bool:
        """A null metric (undefined for this data) never trips a condition."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return OPERATORS[self.op](float(value), self.threshold)


def breaches(report: Any, conditions: list[Condition]) -> list[str]:
    """One line per condition that holds somewhere: overall or in a group (of a Report or a DriftReport)."""
    lines = []
    for condition in conditions:
        if isinstance(report, Report):
            condition.check_computed(report.config.metrics, report.config.kind, report.config.label_free)
        elif condition.metric not in report.computed:
            raise StreamdivError(f"{condition.text!r}: {condition.metric} is not computed on both sides")
        places = []
        if condition.holds(report.metrics.get(condition.metric)):
            places.append(f"overall {condition.metric} = {report.metrics[condition.metric]}")
        for group in report.groups:
            value = group["metrics"].get(condition.metric)
            if condition.holds(value):
                where = ", ".join(f"{k}={v}" for k, v in group["group"].items())
                places.append(f"{where}: {condition.metric} = {value}")
        if places:
            lines.append(f"condition {condition.text!r} holds: " + "; ".join(places))
    return lines
