"""Drift: how far a current run's predictions have moved from a reference run's, from their two states.

Three distributions are read from each side's sums (no second pass, so a stored reference state serves every
night): the predicted-class distribution (the weight of the rows whose argmax is k), the mean predicted
distribution (sum_i w_i q_ik) and the confidence histogram (the weight in each calibration bin; with
binning="quantile" the reference's equal-weight bins, the current side's fine histogram cut at the same
edges).  For each, with the reference a and the current b as shares:

    kl = KL(b || a) = sum_k b_k ln(b_k / a_k)        reverse_kl = KL(a || b)
    js = KL(a || m) / 2 + KL(b || m) / 2, m = (a + b) / 2
    psi = sum_k (b_k - a_k) ln(b_k / a_k)  (= kl + reverse_kl, in nats by convention)

kl, reverse_kl and js are in the report's unit.  A bin empty on both sides is left out (0 ln 0 = 0 on both).
Smoothing: a distribution with an empty bin (and only such a one) becomes (W_k + s) / (W + n s) over its n
bins, W_k the bin's weight and W the total, s = ``smoothing`` (DEFAULT_SMOOTHING = 0.5 of a row: the
Krichevsky-Trofimov estimate, which adds half a row to every bin; its pull shrinks as 1/W, so large runs are
left as they are, where a fixed fill such as 1e-4 weighs the same on ten rows as on ten million and, put in
without renormalizing, bends KL: evidently#334).  ``smoothing=0`` keeps empty bins, and a figure is then
+inf where one side has weight the other lacks.  ``<distribution>_empty_bins`` counts the bins empty on
either side.

Every metric of the report computed on both sides also gives ``NAME.reference``, ``NAME.current``,
``NAME.change`` (current - reference) and ``NAME.relative_change`` (change / |reference|, None when the
reference is 0).
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from . import state_format
from .accumulator import Accumulator
from .errors import StreamdivError
from .kernels.layout import GAUSSIAN
from .metrics import METRIC_NAMES, UNITS, parse_base
from .distributions import DISTRIBUTIONS, Distributions, prediction_distributions
from .report import Report, _json_values, group_order, state_metrics
from .state import State, regrouped
from .totals import Totals, Value, group_totals
from .windows import WINDOW_KEY

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DEFAULT_SMOOTHING = 0.5
FIGURES = ("psi", "js", "kl", "reverse_kl")
COMPARISONS = ("reference", "current", "change", "relative_change")
DRIFT_NAMES: tuple[str, ...] = tuple(f"{name}_{figure}" for name in DISTRIBUTIONS for figure in (*FIGURES, "empty_bins"))
COMPARED_NAMES: tuple[str, ...] = tuple(f"{metric}.{part}" for metric in METRIC_NAMES for part in COMPARISONS)


def divergences(reference: np.ndarray, current: np.ndarray, smoothing: float = DEFAULT_SMOOTHING) -> dict[str, Value]:
    """psi, js, kl, reverse_kl (in nats) and empty_bins between two distributions given as bin weights (see the
    module docstring); every figure None when a side has no weight."""
    a, b = np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)
    if a.shape != b.shape:
        raise StreamdivError(f"the reference has {a.shape[0]} bins and the current side {b.shape[0]}")
    kept = (a > 0) | (b > 0)
    a, b = a[kept], b[kept]
    empty = int(((a == 0) | (b == 0)).sum())
    if a.sum() <= 0 or b.sum() <= 0:
        return {"psi": None, "js": None, "kl": None, "reverse_kl": None, "empty_bins": empty}
    a, b = _smoothed(a, smoothing), _smoothed(b, smoothing)
    kl, reverse = _kl(b, a), _kl(a, b)
    middle = (a + b) / 2.0
    return {"psi": kl + reverse, "js": max(0.0, (_kl(a, middle) + _kl(b, middle)) / 2.0), "kl": kl,
            "reverse_kl": reverse, "empty_bins": empty}


def _smoothed(weights: np.ndarray, smoothing: float) -> np.ndarray:
    """Shares of the weights: (W_k + s) / (W + n s) when a bin is empty and s > 0, W_k / W otherwise."""
    if smoothing > 0 and (weights == 0).any():
        return (weights + smoothing) / (weights.sum() + smoothing * len(weights))
    return weights / weights.sum()


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """sum_k p_k ln(p_k / q_k) over p_k > 0: +inf where q_k = 0; clamped at 0 (rounding)."""
    present = p > 0
    if (q[present] == 0).any():
        return math.inf
    return max(0.0, float((p[present] * (np.log(p[present]) - np.log(q[present]))).sum()))


class DriftReport:
    """Drift of a current run from a reference run (see the module docstring for every figure).

    ``metrics`` holds the drift figures and the metric comparisons of the current run as a whole against the
    reference as a whole; ``groups`` one ``{"group", "against", "metrics"}`` per current group (each window,
    each ``by`` key, or both), each against the reference group of the same ``by`` key when the reference was
    grouped by the same columns (``against`` names it), else against the whole reference (``against`` is
    None).  A windowed reference has its windows merged.  ``reference`` and ``current`` are the two sides'
    own reports.  ``distributions`` holds the two sides' distributions as a whole, each as shares (the
    confidence histogram over the reference's bins, with their edges), for plots.
    """

    def __init__(self, reference: State, current: State, base: str | int = "e",
                 smoothing: float = DEFAULT_SMOOTHING):
        if not (isinstance(smoothing, (int, float)) and smoothing >= 0 and math.isfinite(smoothing)):
            raise StreamdivError(f"smoothing must be a number >= 0 (a pseudo-weight added to every bin), "
                                 f"not {smoothing!r}")
        _check_comparable(reference.config, current.config)
        self.base, self.units, self.smoothing = base, UNITS[base][0], float(smoothing)
        self.config = current.config
        self.reference, self.current = Report(reference, base), Report(current, base)
        by = tuple(name for name in current.config.group_names if name != WINDOW_KEY)
        reference_by = tuple(name for name in reference.config.group_names if name != WINDOW_KEY)
        reference_whole = group_totals(reference)
        whole_metrics = state_metrics(reference_whole, reference.config, base)
        whole = _paired(reference_whole, group_totals(current))
        self.metrics = self._compare(whole, whole_metrics, self.current.metrics)
        self.distributions = _side_by_side(*whole)
        matched: dict[tuple, tuple[Totals, dict[str, Value]]] = {}
        if by and set(by) == set(reference_by):
            grouped = regrouped(reference, by)  # its windows merged, its keys in the current side's order
            for g, key in enumerate(grouped.group_keys):
                totals = group_totals(grouped, g)
                matched[key] = (totals, state_metrics(totals, reference.config, base))
        names = current.config.group_names
        self.groups: list[dict[str, Any]] = []
        for g, entry in zip(group_order(current) if names else [], self.current.groups):
            by_key = tuple(entry["group"][name] for name in by)
            against = matched.get(by_key)
            reference_totals, reference_metrics = against or (reference_whole, whole_metrics)
            self.groups.append({"group": entry["group"], "against": dict(zip(by, by_key)) if against else None,
                                "metrics": self._compare(_paired(reference_totals, group_totals(current, g)),
                                                         reference_metrics, entry["metrics"])})

    def _compare(self, pair: tuple[Distributions, Distributions], before: dict[str, Value],
                 after: dict[str, Value]) -> dict[str, Value]:
        """The drift figures of a pair of distributions (reference, current), and the comparisons of the two
        sides' metrics (before, after)."""
        divisor = UNITS[self.base][1]
        values: dict[str, Value] = {}
        for name in DISTRIBUTIONS:
            a, b = (side.weights(name) for side in pair)
            figures = divergences(a, b, self.smoothing) if a is not None and b is not None else dict.fromkeys(
                (*FIGURES, "empty_bins"))
            for figure, value in figures.items():
                scaled = figure in ("js", "kl", "reverse_kl") and value is not None
                values[f"{name}_{figure}"] = value / divisor if scaled else value
        for metric in METRIC_NAMES:
            old, new = before[metric], after[metric]
            if old is None or new is None:
                continue
            change = new - old
            values |= {f"{metric}.reference": old, f"{metric}.current": new, f"{metric}.change": change,
                       f"{metric}.relative_change": change / abs(old) if old != 0 and math.isfinite(old) else None}
        return values

    def series(self, name: str, **group: Any) -> list[tuple[str, Value]]:
        """A drift figure or comparison window by window, ``[(window_start, value), ...]``, over the current
        groups whose ``by`` values are those given (every ``by`` column named, or none when not grouped)."""
        if WINDOW_KEY not in self.config.group_names:
            raise StreamdivError("series() needs a windowed current side: time= and window= (--time, --window)")
        chosen = [entry for entry in self.groups if all(entry["group"].get(k) == v for k, v in group.items())]
        if len({tuple(entry["group"].items())[1:] for entry in chosen}) > 1:
            raise StreamdivError(f"name a value for every by column ({', '.join(self.config.group_names[1:])}) "
                                 f"to follow one group's drift")
        return [(entry["group"][WINDOW_KEY], entry["metrics"].get(name)) for entry in chosen]

    @property
    def computed(self) -> tuple[str, ...]:
        """The names a ``--fail-if`` condition may test: every drift figure, and the comparisons of the
        metrics computed on both sides."""
        both = set(self.reference.computed) & set(self.current.computed)
        return DRIFT_NAMES + tuple(f"{metric}.{part}" for metric in METRIC_NAMES if metric in both
                                   for part in COMPARISONS)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (infinities as "inf", as Report.to_dict)."""
        result: dict[str, Any] = {
            "units": self.units, "base": self.base, "smoothing": self.smoothing,
            "reference": {"rows_read": self.reference.rows_read, "by": list(self.reference.config.group_names),
                          "window": self.reference.config.window},
            "current": {"rows_read": self.current.rows_read},
            "metrics": _json_values(self.metrics),
            "distributions": self.distributions,
        }
        if self.config.window:
            result["window"] = self.config.window
        if self.config.group_names:
            result["by"] = list(self.config.group_names)
            result["groups"] = [{"group": entry["group"], "against": entry["against"],
                                 "metrics": _json_values(entry["metrics"])} for entry in self.groups]
        return result

    def plot(self, kind: str = "drift", ax: Axes | None = None, **options: Any) -> Figure:
        """A matplotlib Figure: ``kind`` "drift" (the default: reference against current for the three
        distributions) or "series" (a drift figure over the windows; see :mod:`streamdiv.plots`); the current
        side's reliability diagram is ``self.current.plot()``."""
        from . import plots  # matplotlib only when a picture is asked for

        return plots.plot(self.to_dict(), kind, ax, **options)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={self.metrics.get(name)!r}" for name in
                          ("predicted_class_psi", "confidence_psi", "mean_prediction_js"))
        return f"<DriftReport {self.units}: {shown}>"


def _check_comparable(reference: Any, current: Any) -> None:
    """Refuse two sides whose distributions cannot be set side by side, saying what differs."""
    for config in (reference, current):
        if config.kind == GAUSSIAN:
            raise StreamdivError("drift compares predictions over classes; the Gaussian kind has none")
    for name in ("num_classes", "binary", "bins", "binning"):
        if getattr(reference, name) != getattr(current, name) and reference.is_fixed and current.is_fixed:
            raise StreamdivError(f"the reference and the current side differ in {name}: "
                                 f"{getattr(reference, name)!r} and {getattr(current, name)!r}; score the current "
                                 f"side with the reference's settings")


def _paired(reference: Totals, current: Totals) -> tuple[Distributions, Distributions]:
    """The two sides' distributions, the current side's confidence histogram over the reference's calibration
    bins (quantile: the current side's fine histogram cut at the reference's edges)."""
    before = prediction_distributions(reference)
    edges = before.confidence.edges if before.confidence is not None else None
    return before, prediction_distributions(current, confidence_edges=edges)


def _side_by_side(before: Distributions, after: Distributions) -> dict[str, Any]:
    """{distribution: {"reference": shares, "current": shares}} (None where a side does not hold it), the
    confidence histogram with its bins' ``lower`` and ``upper`` edges."""
    result: dict[str, Any] = {}
    for name in DISTRIBUTIONS:
        shown = [side.shares(name) for side in (before, after)]
        result[name] = {"reference": None if shown[0] is None else shown[0].tolist(),
                        "current": None if shown[1] is None else shown[1].tolist()}
    if before.confidence is not None:
        edges = before.confidence.edges
        result["confidence"] |= {"lower": edges[:-1].tolist(), "upper": edges[1:].tolist()}
    return result


def drift(reference: Any, current: Any, *, smoothing: float = DEFAULT_SMOOTHING, base: str | int = "e",
          **options: Any) -> DriftReport:
    """Drift of ``current`` from ``reference`` (see the module docstring for every figure).

    Each side is a data source, scored with ``options`` (evaluate()'s keywords: ``probs=``, ``labels=``,
    ``by=``, ``time=``/``window=``, ...; labels may be absent on either side), or a saved state (a path to a
    file written by ``--save-state`` or ``Accumulator.to_bytes``, the bytes themselves, or an Accumulator).
    With a saved reference, the current side is scored with its ``bins`` and ``binning`` unless they are
    given, so that the confidence histograms share their bins.
    """
    from .evaluate import check_keywords  # evaluate's module imports the accumulator, as _scored_state says

    check_keywords("drift", options)  # a misspelt keyword is named as drift()'s, not as evaluate()'s
    reference_state = saved_state(reference)
    if reference_state is not None:
        options = {"bins": reference_state.config.bins, "binning": reference_state.config.binning} | options
    else:
        reference_state = _scored_state(reference, base, options)
    current_state = saved_state(current)
    if current_state is None:
        current_state = _scored_state(current, base, options)
    return DriftReport(reference_state, current_state, parse_base(base), smoothing)


def saved_state(side: Any) -> State | None:
    """The state of a saved side (an Accumulator, state bytes, or a path to a state file); None for data."""
    if isinstance(side, Accumulator):
        return side._state
    if isinstance(side, (bytes, bytearray, memoryview)):
        return state_format.decode(bytes(side))
    if isinstance(side, (str, os.PathLike)) and os.path.isfile(side):
        with open(side, "rb") as handle:
            if handle.read(len(state_format.MAGIC)) != state_format.MAGIC:
                return None
            handle.seek(0)
            try:
                return state_format.decode(handle.read())
            except StreamdivError as error:
                raise type(error)(f"{os.fspath(side)}: {error}") from error
    return None


def _scored_state(source: Any, base: str | int, options: dict[str, Any]) -> State:
    from .evaluate import evaluate  # evaluate's module imports the accumulator, which drift's readers need not

    return evaluate(source, base=base, **options)._state
