"""The result of a run: metrics overall and per group, derived from a state only when asked for."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from .kernels.layout import BIN_CONFIDENCE, BIN_OBSERVED, BIN_WEIGHT, GAUSSIAN, Layout
from .metrics import UNITS, Totals, Value, compute_metrics
from .state import State


class Report:
    """Metrics of one scored stream.

    ``metrics`` holds the overall values (see :data:`streamdiv.metrics.METRICS` for the keys), ``groups`` one
    ``{"group": {column: value}, "metrics": {...}}`` per group when the run was grouped, ``calibration`` the
    overall reliability table, and ``to_dict()`` all of it as JSON-able data.
    """

    def __init__(self, state: State, base: str | int):
        self.base = base
        self.units = UNITS[base][0]
        self.config = state.config
        self._state = state
        overall = _totals(state, state.total_counts(), state.total_sums())
        kind = state.config.kind
        self.metrics: dict[str, Value] = compute_metrics(overall, base, state.config.metrics, kind)
        self.calibration: list[dict[str, Value]] = (_reliability_table(overall)
                                                    if state.config.metrics == "all" and kind != GAUSSIAN else [])
        self.groups: list[dict[str, Any]] = []
        if state.config.group_names:
            for g, key in enumerate(state.group_keys):
                totals = _totals(state, state.group_counts(g), state.group_sums(g))
                self.groups.append({"group": dict(zip(state.config.group_names, key)),
                                    "metrics": compute_metrics(totals, base, state.config.metrics, kind)})

    @property
    def rows_read(self) -> int:
        """Rows read = evaluated + skipped + ignored."""
        m = self.metrics
        return int(m["rows"]) + int(m["skipped_rows"]) + int(m["ignored_rows"])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; infinities become the string "inf" (strict JSON has no Infinity)."""
        config = self.config
        layout: dict[str, Any] = {"kind": GAUSSIAN, "dimensions": config.dimensions} if config.kind == GAUSSIAN else {
            "kind": "binary" if config.binary else "multiclass",
            "targets": "soft" if config.soft_targets else "hard",
            "num_classes": config.num_classes,
            "classes": list(config.class_names) if config.class_names else None,
            "bins": config.bins,
            "eps": config.eps,
            "renormalize": config.renormalize,
        }
        result: dict[str, Any] = {
            "units": self.units,
            "base": self.base,
            "layout": layout,
            "rows_read": self.rows_read,
            "metrics": _json_values(self.metrics),
            "calibration": [_json_values(row) for row in self.calibration],
        }
        if config.group_names:
            result["by"] = list(config.group_names)
            result["groups"] = [{"group": g["group"], "metrics": _json_values(g["metrics"])} for g in self.groups]
        return result

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def __repr__(self) -> str:
        names = (("rows", "gaussian_kl", "infinite_rows") if self.config.kind == GAUSSIAN
                 else ("rows", "cross_entropy", "kl_divergence", "accuracy", "ece"))
        shown = ", ".join(f"{name}={_short(self.metrics[name])}" for name in names)
        return f"<Report {self.units}: {shown}>"


def _totals(state: State, counts: np.ndarray, sums: np.ndarray) -> Totals:
    return Totals(counts=counts, sums=sums, bins=state.config.bins, class_mass_slot=state.class_mass_slot,
                  soft_targets=state.config.soft_targets)


def _reliability_table(t: Totals) -> list[dict[str, Value]]:
    """Per calibration bin: edges k/M, row count, weight, mean confidence and mean observed outcome."""
    weight = t.bin_field(BIN_WEIGHT)
    confidence = t.bin_field(BIN_CONFIDENCE)
    observed = t.bin_field(BIN_OBSERVED)
    rows = t.counts[Layout(t.bins, 0).bin_counts]
    table = []
    for b in range(t.bins):
        used = weight[b] > 0
        table.append({
            "lower": b / t.bins,
            "upper": (b + 1) / t.bins,
            "rows": int(rows[b]),
            "weight": float(weight[b]),
            "confidence": float(confidence[b] / weight[b]) if used else None,
            "observed": float(observed[b] / weight[b]) if used else None,
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
