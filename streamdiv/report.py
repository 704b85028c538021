"""The result of a run: metrics overall and per group, derived from a state only when asked for."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from .metrics import UNITS, Totals, Value, compute_metrics
from .state import State


class Report:
    """Metrics of one scored stream.

    ``metrics`` holds the overall values (see :data:`streamdiv.metrics.METRICS` for the keys), ``groups`` one
    ``{"group": {column: value}, "metrics": {...}}`` per group when the run was grouped, ``calibration`` the
    overall reliability table (each bin's edges: k/M with binning="uniform", equal-weight cuts of the fine
    histogram with "quantile"), ``calibration_bound`` a bound on how far the quantile bins' ECE can be from
    that of the exact equal-mass bins (0.0 for uniform bins, None without calibration), and ``to_dict()`` all
    of it as JSON-able data.
    """

    def __init__(self, state: State, base: str | int):
        self.base = base
        self.units = UNITS[base][0]
        self.config = state.config
        self._state = state
        overall = _totals(state, state.total_counts(), state.total_sums())
        self.metrics: dict[str, Value] = compute_metrics(overall, base, state.config.metrics)
        calibrated = state.config.metrics == "all"
        self.calibration: list[dict[str, Value]] = _reliability_table(overall) if calibrated else []
        self.calibration_bound: Value = overall.calibration.bound if calibrated else None
        self.groups: list[dict[str, Any]] = []
        if state.config.group_names:
            for g, key in enumerate(state.group_keys):
                totals = _totals(state, state.group_counts(g), state.group_sums(g))
                self.groups.append({"group": dict(zip(state.config.group_names, key)),
                                    "metrics": compute_metrics(totals, base, state.config.metrics)})

    @property
    def rows_read(self) -> int:
        """Rows read = evaluated + skipped + ignored."""
        m = self.metrics
        return int(m["rows"]) + int(m["skipped_rows"]) + int(m["ignored_rows"])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; infinities become the string "inf" (strict JSON has no Infinity)."""
        config = self.config
        result: dict[str, Any] = {
            "units": self.units,
            "base": self.base,
            "layout": {
                "kind": "binary" if config.binary else "multiclass",
                "targets": "soft" if config.soft_targets else "hard",
                "num_classes": config.num_classes,
                "classes": list(config.class_names) if config.class_names else None,
                "bins": config.bins,
                "binning": config.binning,
                "eps": config.eps,
                "renormalize": config.renormalize,
            },
            "rows_read": self.rows_read,
            "metrics": _json_values(self.metrics),
            "calibration": [_json_values(row) for row in self.calibration],
            "calibration_bound": _json_value(self.calibration_bound),
        }
        if config.group_names:
            result["by"] = list(config.group_names)
            result["groups"] = [{"group": g["group"], "metrics": _json_values(g["metrics"])} for g in self.groups]
        return result

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={_short(self.metrics[name])}"
                          for name in ("rows", "cross_entropy", "kl_divergence", "accuracy", "ece"))
        return f"<Report {self.units}: {shown}>"


def _totals(state: State, counts: np.ndarray, sums: np.ndarray) -> Totals:
    return Totals(counts=counts, sums=sums, bins=state.slot_layout.bins, class_mass_slot=state.class_mass_slot,
                  soft_targets=state.config.soft_targets, binning=state.config.binning,
                  calibration_bins=state.config.bins)


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
