"""The registry of metrics: one name, one unit kind and one finalize function each, derived from a state.

Metric names are public API: the Python report, the JSON output and the command line's ``--fail-if`` all use
these keys.  Information metrics are computed in nats and converted to the report's unit at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import calibration
from .errors import StreamdivError
from .kernels import layout
from .kernels.layout import (BIN_CONFIDENCE, BIN_WEIGHT, BRIER, CLIPPED, CORRECT, CROSS_ENTROPY,
                             CROSS_ENTROPY_SQUARES, CROSS_ENTROPY_WEIGHT, DOUBLE_SOFTMAX, ENTROPY, GAUSSIAN,
                             GAUSSIAN_KL, GAUSSIAN_KL_WEIGHT, IGNORED, INFINITE, INFINITE_REVERSE, JS, KL, LABEL_FREE,
                             PREDICTION_ENTROPY, REVERSE_KL, REVERSE_KL_WEIGHT, ROWS, SKIPPED, UNNORMALIZED, WEIGHT)
from .totals import Totals, Value


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # "information" (in the report's unit), "probability", "count", "weight" or "ratio"
    description: str
    compute: Callable[[Totals], Value]
    reads: tuple[str, ...]  # the slots compute reads, as kernels.layout names them: what a metric set must fill


def _cross_entropy(t: Totals) -> Value:
    return math.inf if t.has_infinite else t.mean(CROSS_ENTROPY, CROSS_ENTROPY_WEIGHT)


def _kl(t: Totals) -> Value:
    return math.inf if t.has_infinite else t.mean(KL, CROSS_ENTROPY_WEIGHT)


def _reverse_kl(t: Totals) -> Value:
    if not t.soft_targets:
        return None
    if t.count(INFINITE_REVERSE) > 0 and t.sums[WEIGHT] > t.sums[REVERSE_KL_WEIGHT]:
        return math.inf
    return t.mean(REVERSE_KL, REVERSE_KL_WEIGHT)


def _gaussian_kl(t: Totals) -> Value:
    """Weighted mean over rows of KL(N(mean, diag exp(log_variance)) || prior), +inf when a row of positive
    weight has an infinite one (kernels.gaussian)."""
    if t.count(INFINITE) > 0 and t.sums[WEIGHT] > t.sums[GAUSSIAN_KL_WEIGHT]:
        return math.inf
    return t.mean(GAUSSIAN_KL, GAUSSIAN_KL_WEIGHT)


def _cross_entropy_stderr(t: Totals) -> Value:
    """Standard error of the mean per-row cross-entropy, weights read as frequencies:
    sqrt(s^2 / W) with s^2 = (sum w x^2 - (sum w x)^2 / W) / (W - 1). None when any row is infinite."""
    if t.count(INFINITE) > 0:
        return None
    weight = float(t.sums[CROSS_ENTROPY_WEIGHT])
    if weight <= 1:
        return None
    total, squares = float(t.sums[CROSS_ENTROPY]), float(t.sums[CROSS_ENTROPY_SQUARES])
    if not (math.isfinite(weight) and math.isfinite(total) and math.isfinite(squares)):
        return None  # the sums ran past the float range: weights near 1e308
    # (sum w x)^2 overflows from sum w x = 1.3e154 on (weights of 1e150): then divided by W first
    square_of_total = total * total / weight if abs(total) < 1e154 else total * (total / weight)
    variance = max(squares - square_of_total, 0.0) / (weight - 1)
    return math.sqrt(variance / weight)


def _perplexity(t: Totals) -> Value:
    cross = _cross_entropy(t)
    if cross is None:
        return None
    return math.exp(cross) if cross < 709.0 else math.inf


def base_rate_entropy(t: Totals) -> Value:
    """H(P_bar) in nats, with P_bar_k = sum_i w_i P_ik / sum_i w_i the weighted class base rates."""
    weight = t.sums[WEIGHT]
    if weight <= 0:
        return None
    mass = t.class_values("target_mass")
    rates = mass[mass > 0] / mass[mass > 0].sum()
    return float(-(rates * np.log(rates)).sum())


def _normalized_entropy(t: Totals) -> Value:
    """NE = H(P,Q) / H(P_bar): cross-entropy relative to always predicting the base rates (He et al. 2014)."""
    cross, prior = _cross_entropy(t), base_rate_entropy(t)
    if cross is None or prior is None or prior <= 0.0:
        return None
    return cross / prior


def _relative_information_gain(t: Totals) -> Value:
    """RIG = 1 - NE (Yi et al. 2013): the share of the base rates' entropy the model explains."""
    ratio = _normalized_entropy(t)
    return None if ratio is None else 1.0 - ratio


def _prior_kl(t: Totals) -> Value:
    """KL(observed class frequencies || mean predicted distribution) = sum_k o_k log(o_k / q_k), with
    o_k = sum_i w_i P_ik / W and q_k = sum_i w_i Q_ik / W (q rescaled to sum to 1); 0 when the average
    prediction matches the base rates, +inf when a class that occurs is never predicted."""
    observed, predicted = t.class_values("target_mass"), t.class_values("prediction_mass")
    if observed.sum() <= 0 or predicted.sum() <= 0:
        return None
    observed, predicted = observed / observed.sum(), predicted / predicted.sum()
    occurs = observed > 0
    if (predicted[occurs] <= 0).any():
        return math.inf
    gaps = np.log(observed[occurs]) - np.log(predicted[occurs])  # a ratio overflows where q_k is subnormal
    return max(float((observed[occurs] * gaps).sum()), 0.0)


def _binary_calibration_ratio(t: Totals) -> Value:
    """sum_i w_i p_i / sum_i w_i y_i for one binary column (TFMA's and torchrec's calibration): 1 when the
    predictions add up to the positives; None without positives or for several classes (see
    ``report.classes``)."""
    if not t.binary:
        return None
    positives = float(t.class_values("target_mass")[1])
    # Python floats: a ratio past 1.8e308 (positives of subnormal weight) is inf without numpy's RuntimeWarning
    return float(t.class_values("prediction_mass")[1]) / positives if positives > 0 else None


def _mean_confidence(t: Totals) -> Value:
    """sum_b C_b / sum_b W_b over the top-label bins as the state keeps them (C_b = sum_{i in b} w_i c_i,
    W_b = sum_{i in b} w_i): the weighted mean of c = max_k q_k (one binary column: c = p), every valid row
    being in one bin; the fine histogram's with binning="quantile"."""
    weight = math.fsum(t.bin_field(BIN_WEIGHT))
    return math.fsum(t.bin_field(BIN_CONFIDENCE)) / weight if weight > 0 else None


def _count(slot: int) -> Callable[[Totals], Value]:
    return lambda t: t.count(slot)


_CROSS_ENTROPY_READS = ("cross_entropy", "cross_entropy_weight", "infinite", "weight")
_BIN_READS = ("bin.weight", "bin.confidence", "bin.observed")
_CLASS_BIN_READS = ("weight", "class_bin.weight", "class_bin.prediction", "class_bin.observed")
_DECOMPOSITION_READS = _CLASS_BIN_READS + ("class_bin.prediction_squares", "class_bin.prediction_observed",
                                           "class.target_squares")

METRICS: tuple[Metric, ...] = (
    Metric("rows", "count", "rows evaluated", _count(ROWS),
           reads=('rows',)),
    Metric("weight", "weight", "sum of row weights (= rows when unweighted)",
           lambda t: float(t.sums[WEIGHT]),
           reads=('weight',)),
    Metric("skipped_rows", "count", "invalid rows skipped (on_invalid='skip')", _count(SKIPPED),
           reads=('skipped',)),
    Metric("ignored_rows", "count", "rows whose label is ignore_label", _count(IGNORED),
           reads=('ignored',)),
    Metric("infinite_rows", "count", "rows with +inf cross-entropy (zero probability on what happened), or "
           "+inf Gaussian KL",
           _count(INFINITE),
           reads=('infinite',)),
    Metric("unnormalized_rows", "count", "rows whose probabilities do not sum to 1 within tolerance",
           _count(UNNORMALIZED),
           reads=('unnormalized',)),
    Metric("clipped_rows", "count", "rows where eps clipping changed a log term", _count(CLIPPED),
           reads=('clipped',)),
    Metric("double_softmax_rows", "count", "rows that look softmaxed twice: probabilities (3 or more classes, "
           "not all equal) with max/min <= e, as softmax of values in [0, 1] gives, or logits that sum to 1",
           _count(DOUBLE_SOFTMAX),
           reads=('double_softmax',)),
    Metric("cross_entropy", "information", "H(P,Q) = -sum_k P_k log Q_k", _cross_entropy,
           reads=_CROSS_ENTROPY_READS),
    Metric("cross_entropy_finite", "information", "cross-entropy over the rows where it is finite",
           lambda t: t.mean(CROSS_ENTROPY, CROSS_ENTROPY_WEIGHT),
           reads=('cross_entropy', 'cross_entropy_weight')),
    Metric("cross_entropy_stderr", "information", "standard error of the mean cross-entropy",
           _cross_entropy_stderr,
           reads=('cross_entropy', 'cross_entropy_squares', 'cross_entropy_weight', 'infinite')),
    Metric("entropy", "information", "H(P) = -sum_k P_k log P_k (0 for hard labels)",
           lambda t: t.mean(ENTROPY),
           reads=('entropy', 'weight')),
    Metric("kl_divergence", "information", "KL(P||Q) = sum_k P_k log(P_k / Q_k)", _kl,
           reads=('kl', 'cross_entropy_weight', 'infinite', 'weight')),
    Metric("prediction_entropy", "information", "H(Q), the model's own uncertainty",
           lambda t: t.mean(PREDICTION_ENTROPY),
           reads=('prediction_entropy', 'weight')),
    Metric("mean_confidence", "probability", "mean of max_k Q_k (one binary column: of p), from the calibration "
           "bins; needs no labels", _mean_confidence,
           reads=("bin.weight", "bin.confidence")),
    Metric("reverse_kl_divergence", "information", "KL(Q||P) (soft targets only)", _reverse_kl,
           reads=('reverse_kl', 'reverse_kl_weight', 'infinite_reverse', 'weight')),
    Metric("js_divergence", "information", "Jensen-Shannon: KL(P||M)/2 + KL(Q||M)/2, M = (P+Q)/2",
           lambda t: t.mean(JS),
           reads=('js', 'weight')),
    Metric("perplexity", "ratio", "exp(cross-entropy in nats)", _perplexity,
           reads=_CROSS_ENTROPY_READS),
    Metric("accuracy", "probability", "argmax Q equals the label (argmax P for soft targets)",
           lambda t: t.mean(CORRECT),
           reads=('correct', 'weight')),
    Metric("brier", "probability", "sum_k (Q_k - P_k)^2; (p - y)^2 for one binary column",
           lambda t: t.mean(BRIER),
           reads=('brier', 'weight')),
    Metric("ece", "probability", "expected calibration error: mean |confidence - observed| over the bins", calibration.ece,
           reads=_BIN_READS),
    Metric("mce", "probability", "maximum calibration error over non-empty bins", calibration.mce,
           reads=_BIN_READS),
    Metric("ece_rms", "probability", "root mean square calibration error over the bins", calibration.ece_rms,
           reads=_BIN_READS),
    Metric("ece_debiased", "probability", "debiased root mean square calibration error (Kumar et al. 2019)",
           calibration.ece_debiased,
           reads=_BIN_READS + ("bin.weight_squares",)),
    Metric("normalized_entropy", "ratio", "cross-entropy / entropy of the class base rates",
           _normalized_entropy,
           reads=_CROSS_ENTROPY_READS + ("class.target_mass",)),
    Metric("relative_information_gain", "ratio", "1 - normalized_entropy", _relative_information_gain,
           reads=_CROSS_ENTROPY_READS + ("class.target_mass",)),
    Metric("prior_kl", "information", "KL(observed class frequencies || mean predicted distribution)", _prior_kl,
           reads=("class.target_mass", "class.prediction_mass")),
    Metric("calibration_ratio", "ratio", "sum w p / sum w y (one binary column; per class in report.classes)",
           _binary_calibration_ratio,
           reads=("class.target_mass", "class.prediction_mass")),
    Metric("classwise_ece", "probability", "mean over classes of each class's ECE over bins of q_k",
           calibration.classwise(lambda bins: calibration.classwise_ece_per_class(bins).mean()),
           reads=_CLASS_BIN_READS),
    Metric("brier_reliability", "probability", "REL = sum_k sum_b W_bk (f_bk - o_bk)^2 / W",
           calibration.classwise(calibration.brier_reliability),
           reads=_CLASS_BIN_READS),
    Metric("brier_resolution", "probability", "RES = sum_k sum_b W_bk (o_bk - o_k)^2 / W",
           calibration.classwise(calibration.brier_resolution),
           reads=_CLASS_BIN_READS),
    Metric("brier_uncertainty", "probability", "UNC = sum_k (mean y_k^2 - o_k^2); o_k (1 - o_k) for hard labels",
           calibration.classwise(calibration.brier_uncertainty),
           reads=_DECOMPOSITION_READS),
    Metric("brier_within_bin_variance", "probability", "WBV = sum_k sum_i w_i (q_ik - f_bk)^2 / W",
           calibration.classwise(calibration.brier_within_bin_variance),
           reads=_DECOMPOSITION_READS),
    Metric("brier_within_bin_covariance", "probability", "WBC = sum_k sum_i w_i (q_ik - f_bk)(y_ik - o_bk) / W",
           calibration.classwise(calibration.brier_within_bin_covariance),
           reads=_DECOMPOSITION_READS),
    Metric("gaussian_kl", "information",
           "KL(N(mean, diag var) || N(prior_mean, diag prior_var)) = 1/2 sum_d [log(prior_var/var) "
           "+ (var + (mean - prior_mean)^2)/prior_var - 1]; prior N(0, I) by default", _gaussian_kl,
           reads=('gaussian_kl', 'gaussian_kl_weight', 'infinite', 'weight')),
)
METRIC_NAMES: tuple[str, ...] = tuple(metric.name for metric in METRICS)
BINNINGS = layout.BINNINGS  # the calibration bins' rules, for the API's and the command line's choices


def _filled(metric_set: str) -> tuple[str, ...]:
    return tuple(metric.name for metric in METRICS if set(metric.reads) <= layout.filled_by(metric_set))


# What each metric set computes: the metrics whose slots its passes fill (kernels.layout).  "loss" skips the
# per-value logs, argmax, Brier and calibration bins, so hard labels against probabilities, and binary
# predictions against labels, run a lighter pass (kernels.loss, kernels.binary); the other metrics are None.
METRIC_SETS: dict[str, tuple[str, ...]] = {metric_set: _filled(metric_set) for metric_set in (layout.ALL, layout.LOSS)}
# The Gaussian kind computes these (its row counts and the Gaussian KL), whichever metric set was asked for.
GAUSSIAN_METRICS: tuple[str, ...] = _filled(GAUSSIAN)
# The predictions alone (neither labels nor targets) compute these: the row counts, prediction_entropy and
# mean_confidence; every metric that compares predictions with what happened is None.
LABEL_FREE_METRICS: tuple[str, ...] = _filled(LABEL_FREE)


def computed_metrics(metric_set: str, kind: str = layout.CLASSIFICATION, label_free: bool = False) -> tuple[str, ...]:
    """The metrics that a state of ``kind`` computes under ``metric_set`` (scoring the predictions alone with
    ``label_free``); the others are None."""
    if kind == GAUSSIAN:
        return GAUSSIAN_METRICS
    return LABEL_FREE_METRICS if label_free else METRIC_SETS[metric_set]


UNITS = {"e": ("nats", 1.0), 2: ("bits", math.log(2.0)), 10: ("hartleys", math.log(10.0))}


def parse_base(base: object) -> str | int:
    """Normalise a log base given as "e", 2, 10 (or their strings)."""
    text = str(base).strip().lower()
    if text in ("e", "nats", "nat"):
        return "e"
    if text in ("2", "bits", "bit"):
        return 2
    if text in ("10", "hartleys", "hartley"):
        return 10
    raise StreamdivError(f"base must be 'e', 2 or 10, not {base!r}")


def compute_metrics(totals: Totals, base: str | int, metric_set: str = "all",
                    absent_slots: tuple[str, ...] = (), kind: str = layout.CLASSIFICATION,
                    label_free: bool = False) -> dict[str, Value]:
    """Every registered metric for one set of totals, information metrics in the unit of ``base``; those
    that ``kind`` does not compute under ``metric_set`` (or ``label_free``), and those reading a slot the state
    lacks (``absent_slots``: saved by an earlier streamdiv), are None (not computed)."""
    _, divisor = UNITS[base]
    computed = computed_metrics(metric_set, kind, label_free)
    values: dict[str, Value] = {}
    for metric in METRICS:
        known = not set(metric.reads) & set(absent_slots)
        value = metric.compute(totals) if metric.name in computed and known else None
        if value is not None and metric.kind == "information":
            value = value / divisor
        values[metric.name] = value
    return values
