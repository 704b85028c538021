"""Calibration errors from a state's bins: the top-label norms (ECE, RMS, debiased, max), and the class-wise
bins with the Brier score's decomposition (REL, RES, UNC, WBV, WBC; see the README for the formulas)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .kernels import layout
from .kernels.layout import WEIGHT
from .totals import Totals, Value


def ece(t: Totals) -> Value:
    """ECE = sum_b (W_b / W) |conf_b - obs_b| = sum_b |sum_{i in b} w_i c_i - sum_{i in b} w_i o_i| / W."""
    bins = t.calibration
    weight = bins.weight.sum()
    if weight <= 0:
        return None
    gaps = np.abs(bins.confidence - bins.observed)
    return float(gaps.sum() / weight)


def ece_rms(t: Totals) -> Value:
    """ECE_rms = sqrt(sum_b (W_b / W) (conf_b - obs_b)^2), with conf_b = sum_{i in b} w_i c_i / W_b and obs_b
    likewise (torchmetrics' norm="l2")."""
    bins = t.calibration
    used = bins.weight > 0
    if not used.any():
        return None
    gaps = bins.confidence[used] - bins.observed[used]
    return math.sqrt(float((gaps * gaps / bins.weight[used]).sum() / bins.weight.sum()))


def ece_debiased(t: Totals) -> Value:
    """Kumar, Liang & Ma (2019)'s debiased RMS calibration error:
    sqrt(max(0, sum_b (W_b / W) [(conf_b - obs_b)^2 - obs_b (1 - obs_b) / (n_b - 1)])) over the bins with
    n_b >= 2, where n_b = W_b^2 / sum_{i in b} w_i^2 is the bin's effective row count (its row count without
    weights).  None for a state saved before sum w^2 was kept."""
    bins = t.calibration
    weight = bins.weight.sum()
    if weight <= 0 or not np.isfinite(bins.weight_squares).all():
        return None
    # A bin whose weights are all below 1e-154 has W_b^2 and sum w^2 underflowed to 0: its effective count
    # cannot be known, and the bin is left out like one of n_b < 2.
    used = (bins.weight > 0) & (bins.weight_squares > 0)
    effective = np.zeros_like(bins.weight)
    effective[used] = bins.weight[used] ** 2 / bins.weight_squares[used]
    used &= effective >= 2.0
    confidence = bins.confidence[used] / bins.weight[used]
    observed = bins.observed[used] / bins.weight[used]
    terms = (confidence - observed) ** 2 - observed * (1.0 - observed) / (effective[used] - 1.0)
    return math.sqrt(max(0.0, float((bins.weight[used] * terms).sum() / weight)))


def mce(t: Totals) -> Value:
    """MCE = max over non-empty bins of |mean confidence - mean observed|."""
    bins = t.calibration
    used = bins.weight > 0
    if not used.any():
        return None
    gaps = np.abs(bins.confidence[used] - bins.observed[used]) / bins.weight[used]
    return float(gaps.max())


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


def classwise(term: Callable[[ClassBins], float]) -> Callable[[Totals], Value]:
    def compute(t: Totals) -> Value:
        bins = class_bins(t)
        return None if bins is None else float(term(bins))
    return compute


def classwise_ece_per_class(bins: ClassBins) -> np.ndarray:
    """Each class's ECE: sum_b |sum_{i in b} w_i q_ik - sum_{i in b} w_i y_ik| / W."""
    return np.abs(bins.prediction - bins.observed).sum(axis=1) / bins.total


def brier_reliability(bins: ClassBins) -> float:
    """REL = sum_k sum_b W_bk (f_bk - o_bk)^2 / W, f and o the bin's mean prediction and outcome."""
    return float((bins.per_bin((bins.prediction - bins.observed) ** 2)).sum() / bins.total)


def brier_resolution(bins: ClassBins) -> float:
    """RES = sum_k sum_b W_bk (o_bk - o_k)^2 / W."""
    spread = bins.per_bin(bins.observed) - bins.base_rates[:, None]
    return float((bins.weight * spread * spread).sum() / bins.total)


def brier_uncertainty(bins: ClassBins) -> float:
    """UNC = sum_k (sum_i w_i y_ik^2 / W - o_k^2): sum_k o_k (1 - o_k) for hard labels; for soft targets
    less the targets' own spread, sum_k sum_i w_i y_ik (1 - y_ik) / W, which keeps the identity exact."""
    rates = bins.base_rates
    return float((bins.target_squares / bins.total - rates * rates).sum())


def brier_within_bin_variance(bins: ClassBins) -> float:
    """WBV = sum_k sum_b sum_{i in b} w_i (q_ik - f_bk)^2 / W = sum (Q2_bk - F_bk^2 / W_bk) / W."""
    return float((bins.prediction_squares - bins.per_bin(bins.prediction * bins.prediction)).sum() / bins.total)


def brier_within_bin_covariance(bins: ClassBins) -> float:
    """WBC = sum_k sum_b sum_{i in b} w_i (q_ik - f_bk)(y_ik - o_bk) / W = sum (QO_bk - F_bk O_bk / W_bk) / W."""
    return float((bins.prediction_observed - bins.per_bin(bins.prediction * bins.observed)).sum() / bins.total)
