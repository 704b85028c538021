"""The registry of metrics: one name, one unit kind and one finalize function each, derived from a state.

Metric names are public API: the Python report, the JSON output and the command line's ``--fail-if`` all use
these keys.  Information metrics are computed in nats and converted to the report's unit at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Optional

import numpy as np

from .kernels import layout
from .kernels.layout import (BIN_CONFIDENCE, BIN_OBSERVED, BIN_WEIGHT, BIN_WEIGHT_SQUARES, BRIER, CLIPPED, CORRECT,
                             CROSS_ENTROPY, CROSS_ENTROPY_SQUARES, CROSS_ENTROPY_WEIGHT, DOUBLE_SOFTMAX, ENTROPY,
                             GAUSSIAN, GAUSSIAN_KL, GAUSSIAN_KL_WEIGHT, IGNORED, INFINITE, INFINITE_REVERSE, JS, KL,
                             PREDICTION_ENTROPY, REVERSE_KL, REVERSE_KL_WEIGHT, ROWS, SKIPPED, UNNORMALIZED, WEIGHT)
from .errors import StreamdivError

Value = Optional[float]


@dataclass(frozen=True)
class CalibrationBins:
    """The report's calibration bins: bin b holds the rows whose confidence c lies in [lower[b], upper[b])
    (the last bin closed), with its row count and the sums of w, w c, w o and w^2 over them.

    ``bound`` bounds |ECE - ECE of the exact equal-mass bins| (see ``quantile_bins``); 0 for uniform bins."""

    lower: np.ndarray
    upper: np.ndarray
    rows: np.ndarray
    weight: np.ndarray
    confidence: np.ndarray
    observed: np.ndarray
    weight_squares: np.ndarray
    bound: float = 0.0


@dataclass(frozen=True)
class Totals:
    """One group's (or the whole run's) counts and collapsed sums, as the finalize functions see them.

    ``bins`` is how many bins the state keeps; ``calibration_bins`` how many the report shows (the same with
    binning="uniform"; with "quantile", the state's bins are the fine histogram, regrouped here)."""

    counts: np.ndarray
    sums: np.ndarray
    bins: int
    class_mass_slot: int
    soft_targets: bool
    slots: layout.Layout | None = None  # the state's slot layout (None: top-label bins and class masses only)
    binary: bool = False
    binning: str = "uniform"
    calibration_bins: int = 0  # 0: as many as the state keeps

    @property
    def slot_layout(self) -> layout.Layout:
        return self.slots or layout.Layout(self.bins, len(self.sums) - self.class_mass_slot)

    def class_values(self, name: str) -> np.ndarray:
        """One CLASS_SLOTS entry (``"target_mass"``, ...), class by class."""
        return self.sums[self.slot_layout.class_slot(name)]

    @property
    def classwise_classes(self) -> np.ndarray:
        """The state's class index of each class-wise class (one binary column: the positive class only)."""
        return np.array([1]) if self.binary else np.arange(self.slot_layout.classes)

    def class_bins(self, field: int) -> np.ndarray:
        """One CLASS_BIN_* field as (class-wise classes, bins)."""
        shape = (self.slot_layout.classwise_classes, self.slot_layout.class_bins)
        return self.sums[self.slot_layout.class_bin_field(field)].reshape(shape)

    def class_bin_rows(self) -> np.ndarray:
        shape = (self.slot_layout.classwise_classes, self.slot_layout.class_bins)
        return self.counts[self.slot_layout.class_bin_counts].reshape(shape)

    def count(self, slot: int) -> int:
        return int(self.counts[slot])

    def mean(self, slot: int, weight_slot: int = WEIGHT) -> Value:
        weight = self.sums[weight_slot]
        return float(self.sums[slot] / weight) if weight > 0 else None

    @property
    def has_infinite(self) -> bool:
        # Infinite rows are kept out of the sums; they make the mean infinite unless their weight is zero.
        return self.count(INFINITE) > 0 and self.sums[WEIGHT] > self.sums[CROSS_ENTROPY_WEIGHT]

    def bin_field(self, field: int) -> np.ndarray:
        return self.sums[layout.Layout(self.bins, 0).bin_field(field)]

    @cached_property
    def calibration(self) -> CalibrationBins:
        """The report's calibration bins: the state's own (uniform, edges k/M), or its fine histogram
        regrouped into equal-weight bins (quantile)."""
        stored = CalibrationBins(
            lower=np.arange(self.bins) / self.bins, upper=np.arange(1, self.bins + 1) / self.bins,
            rows=self.counts[layout.Layout(self.bins, 0).bin_counts], weight=self.bin_field(BIN_WEIGHT),
            confidence=self.bin_field(BIN_CONFIDENCE), observed=self.bin_field(BIN_OBSERVED),
            weight_squares=self.bin_field(BIN_WEIGHT_SQUARES))
        if self.binning != "quantile":
            return stored
        return quantile_bins(stored, layout.fine_edges(), self.calibration_bins)


def quantile_bins(fine: CalibrationBins, edges: np.ndarray, n_bins: int) -> CalibrationBins:
    """``n_bins`` bins of nearly equal weight from a fine histogram with the given edges.

    With C_k the weight of the fine bins below edge k and W the total, cut j (j = 1 .. M-1) is at the edge
    whose C_k is nearest to T_j = j W / M (the lowest such edge when several have the same C_k).  A fine bin
    heavier than W / M (confidences exactly 1.0, say) cannot be split, so bins may be empty (lower = upper);
    the top fine bin, closed at 1, is always in the last bin.

    The exact equal-mass bins cut the rows, sorted by confidence, at cumulative weights T_j (a row at a cut
    split between its two bins).  The rows D_j between that cut and this one weigh m_j = |C_kj - T_j| and lie
    in the fine bin [a, b) that holds T_j, of weight W_f and observed sum O_f; moving them from one bin into the
    next changes the ECE's numerator by at most 2 sum_{D_j} w |c - o|, and, as |c - o| <= |a - o| + (b - a)
    and |a - o| <= a (1 - o) + (1 - a) o for o in [0, 1], with x = sum_{D_j} w o >= m_j - (W_f - O_f),

        sum_{D_j} w |c - o| <= e_j = m_j (b - a) + a m_j + (1 - 2a) x_j,  x_j its least (a >= 1/2) or most
        value (the same from b, the lesser taken), and |ECE - ECE_exact| <= bound = (2 / W) sum_j e_j <=
        (2 / W) sum_j m_j.

    Each bin's weight is within m_j + m_j+1 of W / M, and each cut edge lies in the fine bin holding the
    exact one (the fine bins' widths: layout.FINE_BINS)."""
    fields = np.stack([fine.rows.astype(np.float64), fine.weight, fine.confidence, fine.observed,
                       fine.weight_squares])
    below = np.concatenate([[0.0], np.cumsum(fine.weight)])
    total = below[-1]
    cuts = [0]
    bound = 0.0
    for j in range(1, n_bins):
        target = j * total / n_bins
        above = int(np.searchsorted(below, target, "left"))  # the first edge with C_k >= T_j
        under = int(np.searchsorted(below, below[above - 1], "left")) if above > 0 else 0
        cut = above if below[above] - target < target - below[under] else under
        cut = min(max(cut, cuts[-1]), len(fine.weight) - 1)  # the top fine bin, closed at 1, stays in the last
        cuts.append(cut)
        moved = abs(below[cut] - target)
        if moved > 0:
            holder = min(int(np.searchsorted(below, target, "left")), len(fine.weight)) - 1  # C_f < T <= C_f+1
            bound += _moved_gap_bound(moved, edges[holder], edges[holder + 1], fine.weight[holder],
                                      fine.observed[holder])
    cuts.append(len(fine.weight))
    grouped = np.array([fields[:, start:stop].sum(axis=1) for start, stop in zip(cuts[:-1], cuts[1:])]).T
    return CalibrationBins(lower=edges[cuts[:-1]], upper=edges[cuts[1:]], rows=grouped[0].astype(np.int64),
                           weight=grouped[1], confidence=grouped[2], observed=grouped[3],
                           weight_squares=grouped[4], bound=2.0 * bound / total if total > 0 else 0.0)


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
    weight = t.sums[CROSS_ENTROPY_WEIGHT]
    if weight <= 1:
        return None
    total = t.sums[CROSS_ENTROPY]
    variance = max(t.sums[CROSS_ENTROPY_SQUARES] - total * total / weight, 0.0) / (weight - 1)
    return math.sqrt(variance / weight)


def _perplexity(t: Totals) -> Value:
    cross = _cross_entropy(t)
    if cross is None:
        return None
    return math.exp(cross) if cross < 709.0 else math.inf


def _moved_gap_bound(moved: float, low: float, high: float, weight: float, observed: float) -> float:
    """The most sum w |c - o| of rows of weight ``moved`` taken from a fine bin [low, high) of the given weight
    and observed sum can be (see quantile_bins)."""
    least = min(moved, max(0.0, moved - (weight - observed)))
    most = max(least, min(moved, observed))
    bounds = []
    for reference in (low, high):
        x = least if reference >= 0.5 else most
        bounds.append(moved * (high - low) + reference * moved + (1.0 - 2.0 * reference) * x)
    return min(min(bounds), moved)


def _ece(t: Totals) -> Value:
    """ECE = sum_b (W_b / W) |conf_b - obs_b| = sum_b |sum_{i in b} w_i c_i - sum_{i in b} w_i o_i| / W."""
    bins = t.calibration
    weight = bins.weight.sum()
    if weight <= 0:
        return None
    gaps = np.abs(bins.confidence - bins.observed)
    return float(gaps.sum() / weight)


def _ece_rms(t: Totals) -> Value:
    """ECE_rms = sqrt(sum_b (W_b / W) (conf_b - obs_b)^2), with conf_b = sum_{i in b} w_i c_i / W_b and obs_b
    likewise (torchmetrics' norm="l2")."""
    bins = t.calibration
    used = bins.weight > 0
    if not used.any():
        return None
    gaps = bins.confidence[used] - bins.observed[used]
    return math.sqrt(float((gaps * gaps / bins.weight[used]).sum() / bins.weight.sum()))


def _ece_debiased(t: Totals) -> Value:
    """Kumar, Liang & Ma (2019)'s debiased RMS calibration error:
    sqrt(max(0, sum_b (W_b / W) [(conf_b - obs_b)^2 - obs_b (1 - obs_b) / (n_b - 1)])) over the bins with
    n_b >= 2, where n_b = W_b^2 / sum_{i in b} w_i^2 is the bin's effective row count (its row count without
    weights).  None for a state saved before sum w^2 was kept."""
    bins = t.calibration
    weight = bins.weight.sum()
    if weight <= 0 or not np.isfinite(bins.weight_squares).all():
        return None
    used = bins.weight > 0
    effective = np.zeros_like(bins.weight)
    effective[used] = bins.weight[used] ** 2 / bins.weight_squares[used]
    used &= effective >= 2.0
    confidence = bins.confidence[used] / bins.weight[used]
    observed = bins.observed[used] / bins.weight[used]
    terms = (confidence - observed) ** 2 - observed * (1.0 - observed) / (effective[used] - 1.0)
    return math.sqrt(max(0.0, float((bins.weight[used] * terms).sum() / weight)))


def _mce(t: Totals) -> Value:
    """MCE = max over non-empty bins of |mean confidence - mean observed|."""
    bins = t.calibration
    used = bins.weight > 0
    if not used.any():
        return None
    gaps = np.abs(bins.confidence[used] - bins.observed[used]) / bins.weight[used]
    return float(gaps.max())


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
    positives = t.class_values("target_mass")[1]
    return float(t.class_values("prediction_mass")[1] / positives) if positives > 0 else None


@dataclass(frozen=True)
class ClassBins:
    """The class-wise bins' sums, (class-wise classes, bins) each, and the total weight W."""

    weight: np.ndarray
    prediction: np.ndarray
    observed: np.ndarray
    prediction_squares: np.ndarray
    prediction_observed: np.ndarray
    target_squares: np.ndarray  # sum w y_k^2 per class-wise class
    total: float

    @property
    def used(self) -> np.ndarray:
        return self.weight > 0

    def per_bin(self, numerator: np.ndarray) -> np.ndarray:
        """numerator / bin weight, 0 in empty bins."""
        return np.divide(numerator, self.weight, out=np.zeros_like(numerator), where=self.used)

    @property
    def base_rates(self) -> np.ndarray:
        """o_k = sum_b O_bk / W."""
        return self.observed.sum(axis=1) / self.total


def class_bins(t: Totals) -> ClassBins | None:
    """The class-wise bins of a state that keeps them and has weight; None otherwise."""
    if t.slot_layout.class_bins == 0 or t.sums[WEIGHT] <= 0:
        return None
    observed = t.class_bins(layout.CLASS_BIN_OBSERVED)
    if t.soft_targets:
        target_squares = t.class_values("target_squares")[t.classwise_classes]
    else:
        target_squares = observed.sum(axis=1)  # P_k^2 = P_k for hard labels
    return ClassBins(t.class_bins(layout.CLASS_BIN_WEIGHT), t.class_bins(layout.CLASS_BIN_PREDICTION), observed,
                     t.class_bins(layout.CLASS_BIN_PREDICTION_SQUARES),
                     t.class_bins(layout.CLASS_BIN_PREDICTION_OBSERVED), target_squares, float(t.sums[WEIGHT]))


def _classwise(term: Callable[[ClassBins], float]) -> Callable[[Totals], Value]:
    def compute(t: Totals) -> Value:
        bins = class_bins(t)
        return None if bins is None else float(term(bins))
    return compute


def classwise_ece_per_class(bins: ClassBins) -> np.ndarray:
    """Each class's ECE: sum_b |sum_{i in b} w_i q_ik - sum_{i in b} w_i y_ik| / W."""
    return np.abs(bins.prediction - bins.observed).sum(axis=1) / bins.total


def _brier_reliability(bins: ClassBins) -> float:
    """REL = sum_k sum_b W_bk (f_bk - o_bk)^2 / W, f and o the bin's mean prediction and outcome."""
    return float((bins.per_bin((bins.prediction - bins.observed) ** 2)).sum() / bins.total)


def _brier_resolution(bins: ClassBins) -> float:
    """RES = sum_k sum_b W_bk (o_bk - o_k)^2 / W."""
    spread = bins.per_bin(bins.observed) - bins.base_rates[:, None]
    return float((bins.weight * spread * spread).sum() / bins.total)


def _brier_uncertainty(bins: ClassBins) -> float:
    """UNC = sum_k (sum_i w_i y_ik^2 / W - o_k^2): sum_k o_k (1 - o_k) for hard labels; for soft targets
    less the targets' own spread, sum_k sum_i w_i y_ik (1 - y_ik) / W, which keeps the identity exact."""
    rates = bins.base_rates
    return float((bins.target_squares / bins.total - rates * rates).sum())


def _brier_within_bin_variance(bins: ClassBins) -> float:
    """WBV = sum_k sum_b sum_{i in b} w_i (q_ik - f_bk)^2 / W = sum (Q2_bk - F_bk^2 / W_bk) / W."""
    return float((bins.prediction_squares - bins.per_bin(bins.prediction * bins.prediction)).sum() / bins.total)


def _brier_within_bin_covariance(bins: ClassBins) -> float:
    """WBC = sum_k sum_b sum_{i in b} w_i (q_ik - f_bk)(y_ik - o_bk) / W = sum (QO_bk - F_bk O_bk / W_bk) / W."""
    return float((bins.prediction_observed - bins.per_bin(bins.prediction * bins.observed)).sum() / bins.total)


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
    Metric("ece", "probability", "expected calibration error: mean |confidence - observed| over the bins", _ece,
           reads=_BIN_READS),
    Metric("mce", "probability", "maximum calibration error over non-empty bins", _mce,
           reads=_BIN_READS),
    Metric("ece_rms", "probability", "root mean square calibration error over the bins", _ece_rms,
           reads=_BIN_READS),
    Metric("ece_debiased", "probability", "debiased root mean square calibration error (Kumar et al. 2019)",
           _ece_debiased,
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
           _classwise(lambda bins: classwise_ece_per_class(bins).mean()),
           reads=_CLASS_BIN_READS),
    Metric("brier_reliability", "probability", "REL = sum_k sum_b W_bk (f_bk - o_bk)^2 / W",
           _classwise(_brier_reliability),
           reads=_CLASS_BIN_READS),
    Metric("brier_resolution", "probability", "RES = sum_k sum_b W_bk (o_bk - o_k)^2 / W",
           _classwise(_brier_resolution),
           reads=_CLASS_BIN_READS),
    Metric("brier_uncertainty", "probability", "UNC = sum_k (mean y_k^2 - o_k^2); o_k (1 - o_k) for hard labels",
           _classwise(_brier_uncertainty),
           reads=_DECOMPOSITION_READS),
    Metric("brier_within_bin_variance", "probability", "WBV = sum_k sum_i w_i (q_ik - f_bk)^2 / W",
           _classwise(_brier_within_bin_variance),
           reads=_DECOMPOSITION_READS),
    Metric("brier_within_bin_covariance", "probability", "WBC = sum_k sum_i w_i (q_ik - f_bk)(y_ik - o_bk) / W",
           _classwise(_brier_within_bin_covariance),
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


def computed_metrics(metric_set: str, kind: str = layout.CLASSIFICATION) -> tuple[str, ...]:
    """The metrics that a state of ``kind`` computes under ``metric_set``; the others are None."""
    return GAUSSIAN_METRICS if kind == GAUSSIAN else METRIC_SETS[metric_set]


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
                    absent_slots: tuple[str, ...] = (), kind: str = layout.CLASSIFICATION) -> dict[str, Value]:
    """Every registered metric for one set of totals, information metrics in the unit of ``base``; those
    that ``kind`` does not compute under ``metric_set``, and those reading a slot the state lacks
    (``absent_slots``: saved by an earlier streamdiv), are None (not computed)."""
    _, divisor = UNITS[base]
    computed = computed_metrics(metric_set, kind)
    values: dict[str, Value] = {}
    for metric in METRICS:
        known = not set(metric.reads) & set(absent_slots)
        value = metric.compute(totals) if metric.name in computed and known else None
        if value is not None and metric.kind == "information":
            value = value / divisor
        values[metric.name] = value
    return values
