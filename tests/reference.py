"""Slow, obviously correct references: every metric from the definitions, in plain numpy float64.

P is the target distribution (one-hot for hard labels), Q the prediction, w the row weights.  Logits enter as
Q = softmax(z) with log Q = log_softmax(z) given apart (Q underflows to 0 where log Q is still finite); a binary
logit z is the two-class row (0, z).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import rel_entr, xlogy


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    target = np.zeros((len(labels), num_classes))
    target[np.arange(len(labels)), labels] = 1.0
    return target


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def log_softmax_rows(logits: np.ndarray) -> np.ndarray:
    """log Q of logit rows: with m = max z and s = sum over the other classes of exp(z_j - m),
    log q_j = (z_j - m) - log1p(s).  (scipy's log_softmax takes log(1 + s), which is 0 for a confident row
    where the true log q is -1e-21.)  -inf logits give -inf."""
    z = np.asarray(logits, dtype=np.float64)
    top = z.argmax(axis=1)
    shifted = z - z[np.arange(len(z)), top][:, None]
    others = np.exp(shifted)
    others[np.arange(len(z)), top] = 0.0
    return shifted - np.log1p(others.sum(axis=1, keepdims=True))


def binary_logit_rows(logits: np.ndarray) -> np.ndarray:
    """A binary logit z as the two-class logit row (0, z): softmax gives (1 - sigmoid(z), sigmoid(z))."""
    z = np.asarray(logits, dtype=np.float64)
    return np.stack([np.zeros_like(z), z], axis=1)


def per_row(p: np.ndarray, q: np.ndarray, log_q: np.ndarray | None = None,
            eps: float | None = None) -> dict[str, np.ndarray]:
    """Per-row terms in nats from the textbook definitions (scipy's xlogy / rel_entr handle 0 log 0).

    ``log_q`` is log Q when it is known apart from Q (logits); ``eps`` clips Q at eps inside H(P,Q) and
    KL(P||Q) only, so that a zero probability on what happened costs -log eps instead of +inf.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if log_q is None:
            clipped_q = q if eps is None else np.maximum(q, eps)
            cross = -np.where(p > 0, p * np.log(clipped_q), 0.0).sum(axis=1)
            kl = rel_entr(p, clipped_q).sum(axis=1)
        else:
            log_clipped = log_q if eps is None else np.where(q < eps, np.log(eps), log_q)
            cross = -np.where(p > 0, p * log_clipped, 0.0).sum(axis=1)
            kl = np.where(p > 0, p * (np.log(p) - log_clipped), 0.0).sum(axis=1)
        entropy = -xlogy(p, p).sum(axis=1)
        # q log q with the given log q: q = 1 - 1e-17 rounds to 1, but its log is still -1e-17
        prediction_entropy = (-xlogy(q, q) if log_q is None else -np.where(q > 0, q * log_q, 0.0)).sum(axis=1)
        reverse = rel_entr(q, p).sum(axis=1)
        # JS = KL(P||M)/2 + KL(Q||M)/2 with M = (P+Q)/2, written with P+Q: half the smallest subnormal rounds
        # to 0, and M = 0 beside Q > 0 would make the term infinite.  p log(2p/(p+q)) = p log(p/(p+q)) + p log 2
        total = p + q
        js = 0.5 * (rel_entr(p, total) + rel_entr(q, total)).sum(axis=1) + 0.5 * np.log(2) * total.sum(axis=1)
    return {
        "cross_entropy": cross,
        "entropy": entropy,
        "kl_divergence": kl,
        "prediction_entropy": prediction_entropy,
        "reverse_kl_divergence": reverse,
        "js_divergence": np.maximum(js, 0.0),
        "brier": ((q - p) ** 2).sum(axis=1),
        "accuracy": (q.argmax(axis=1) == p.argmax(axis=1)).astype(float),
    }


def calibration(confidence: np.ndarray, observed: np.ndarray, weights: np.ndarray, bins: int) -> tuple:
    """(ECE, MCE) with bins [k/M, (k+1)/M), the last closed, from a sort-free loop over the bins."""
    edges = np.arange(bins + 1) / bins
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    total = weights.sum()
    ece, mce = 0.0, 0.0
    for b in range(bins):
        inside = index == b
        weight = weights[inside].sum()
        if weight > 0:
            gap = abs((weights[inside] * confidence[inside]).sum() - (weights[inside] * observed[inside]).sum())
            ece += gap / total
            mce = max(mce, gap / weight)
    return ece, mce


def metrics(p: np.ndarray, q: np.ndarray, weights: np.ndarray | None = None, bins: int = 15,
            binary: bool = False, log_q: np.ndarray | None = None, eps: float | None = None,
            top: np.ndarray | None = None) -> dict[str, float | int | None]:
    """Weighted means of the per-row terms plus calibration, normalized entropy and the row counts.

    With ``binary``, p and q are the positive-class columns of a two-class layout: Brier is (q1 - p1)^2, the
    prediction is [q1 > 0.5] and calibration bins q1 against p1.  ``top`` is each row's predicted class when
    it is known better than argmax Q (argmax of the logits: two logits can give the same rounded Q).  Rows
    with zero weight count as rows but add nothing, even an infinite cross-entropy; without any weight, every
    mean is None.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    w = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=np.float64)
    rows = per_row(p, q, log_q, eps)
    infinite = rows["cross_entropy"] == np.inf
    finite_weight = w[~infinite].sum()
    out: dict[str, float | int | None] = {
        "rows": len(p),
        "weight": float(w.sum()),
        "infinite_rows": int(infinite.sum()),
        "clipped_rows": 0 if eps is None else int(((p > 0) & (q < eps)).any(axis=1).sum()),
        "cross_entropy_finite": (float((w[~infinite] * rows["cross_entropy"][~infinite]).sum() / finite_weight)
                                 if finite_weight > 0 else None),
    }
    if w.sum() <= 0:
        return out | {name: None for name in (*rows, "ece", "mce", "normalized_entropy", "perplexity")}
    used = w > 0  # a zero-weight row contributes nothing, even an infinite one
    out |= {name: float((w[used] * values[used]).sum() / w.sum()) for name, values in rows.items()}
    top = q.argmax(axis=1) if top is None else np.asarray(top)
    if binary:
        out["brier"] = float((w * (q[:, 1] - p[:, 1]) ** 2).sum() / w.sum())
        predicted = (q[:, 1] > 0.5).astype(int)
        actual = (p[:, 1] > 0.5).astype(int)
        out["accuracy"] = float((w * (predicted == actual)).sum() / w.sum())
        confidence, observed = q[:, 1], p[:, 1]
    else:
        out["accuracy"] = float((w * (top == p.argmax(axis=1))).sum() / w.sum())
        confidence = q[np.arange(len(q)), top]
        observed = p[np.arange(len(p)), top]
    out["ece"], out["mce"] = calibration(confidence, observed, w, bins)
    mass = (w[:, None] * p).sum(axis=0)
    rates = mass / mass.sum()  # = mass / W, and exactly (0, ..., 1, ..., 0) when one class has all the mass
    prior = -xlogy(rates, rates).sum()
    out["normalized_entropy"] = out["cross_entropy"] / prior if prior > 0 else None
    out["perplexity"] = float(np.exp(out["cross_entropy"])) if out["cross_entropy"] < 709.0 else np.inf
    return out


def cross_entropy_stderr(p: np.ndarray, q: np.ndarray, weights: np.ndarray | None = None,
                         log_q: np.ndarray | None = None, eps: float | None = None) -> float | None:
    """Standard error of the weighted mean cross-entropy, weights read as frequencies, from the two-pass
    variance s^2 = sum w (x - mean)^2 / (W - 1): sqrt(s^2 / W).  None with W <= 1 or any infinite row."""
    w = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=np.float64)
    x = per_row(p, q, log_q, eps)["cross_entropy"]
    total = w.sum()
    if total <= 1 or (x == np.inf).any():
        return None
    mean = (w * x).sum() / total
    return float(np.sqrt((w * (x - mean) ** 2).sum() / (total - 1) / total))


def classwise_calibration(q: np.ndarray, p: np.ndarray, weights: np.ndarray | None = None, bins: int = 15) -> dict:
    """Class-wise calibration and the Brier decomposition, row by row over each class's bins of q_k.

    q, p: rows x C predictions and targets of the classes calibrated one by one (for one binary column, the
    positive class alone: q = p_hat[:, None], p = y[:, None]).  Bins [b/M, (b+1)/M), the last closed.  Returns
    the per-class ECE, their mean, REL, RES, UNC, WBV, WBC, each straight from its definition."""
    w = np.ones(len(q)) if weights is None else np.asarray(weights, dtype=np.float64)
    total = w.sum()
    edges = np.arange(bins + 1) / bins
    eces, rel, res, unc, wbv, wbc = [], 0.0, 0.0, 0.0, 0.0, 0.0
    for k in range(q.shape[1]):
        qk, yk = q[:, k].astype(np.float64), p[:, k].astype(np.float64)
        index = np.clip(np.searchsorted(edges, qk, side="right") - 1, 0, bins - 1)
        base = (w * yk).sum() / total
        unc += (w * yk * yk).sum() / total - base * base
        gap = 0.0
        for b in range(bins):
            inside = index == b
            weight = w[inside].sum()
            if weight == 0:
                continue
            mean_q = (w[inside] * qk[inside]).sum() / weight
            mean_y = (w[inside] * yk[inside]).sum() / weight
            gap += abs((w[inside] * qk[inside]).sum() - (w[inside] * yk[inside]).sum())
            rel += weight * (mean_q - mean_y) ** 2 / total
            res += weight * (mean_y - base) ** 2 / total
            wbv += (w[inside] * (qk[inside] - mean_q) ** 2).sum() / total
            wbc += (w[inside] * (qk[inside] - mean_q) * (yk[inside] - mean_y)).sum() / total
        eces.append(gap / total)
    return {"per_class_ece": np.array(eces), "classwise_ece": float(np.mean(eces)), "brier_reliability": rel,
            "brier_resolution": res, "brier_uncertainty": unc, "brier_within_bin_variance": wbv,
            "brier_within_bin_covariance": wbc}


def prior_kl(q: np.ndarray, p: np.ndarray, weights: np.ndarray | None = None) -> float:
    """KL(observed class frequencies || mean predicted distribution), in nats, from rows x K q and p."""
    w = np.ones(len(q)) if weights is None else np.asarray(weights, dtype=np.float64)
    observed = (w[:, None] * p).sum(axis=0)
    predicted = (w[:, None] * q).sum(axis=0)
    observed, predicted = observed / observed.sum(), predicted / predicted.sum()
    occurs = observed > 0
    return float((observed[occurs] * np.log(observed[occurs] / predicted[occurs])).sum())


def debiased_calibration_error(confidence: np.ndarray, observed: np.ndarray, weights: np.ndarray | None,
                               edges: np.ndarray) -> float:
    """Kumar et al. (2019)'s debiased RMS calibration error, bin by bin from the rows (edges ascending, bins
    [e_k, e_k+1), the last closed): sqrt(max(0, sum_b (W_b / W) [(conf_b - obs_b)^2 - obs_b (1 - obs_b) /
    (n_b - 1)])) over bins with n_b >= 2, n_b = W_b^2 / sum w^2 in the bin (the row count without weights)."""
    w = np.ones(len(confidence)) if weights is None else np.asarray(weights, dtype=np.float64)
    index = np.minimum(np.searchsorted(edges, confidence, "right") - 1, len(edges) - 2)
    total = 0.0
    for b in range(len(edges) - 1):
        rows = index == b
        weight = w[rows].sum()
        if weight <= 0:
            continue
        effective = weight ** 2 / (w[rows] ** 2).sum()
        if effective < 2:
            continue
        conf = (w[rows] * confidence[rows]).sum() / weight
        obs = (w[rows] * observed[rows]).sum() / weight
        total += weight * ((conf - obs) ** 2 - obs * (1 - obs) / (effective - 1))
    return float(np.sqrt(max(0.0, total / w.sum())))


def equal_mass_calibration_error(confidence: np.ndarray, observed: np.ndarray, bins: int) -> float:
    """ECE over exact equal-mass bins: the rows sorted by confidence, cut into ``bins`` runs of equal count
    (the row count a multiple of ``bins``)."""
    assert len(confidence) % bins == 0
    order = np.argsort(confidence, kind="stable")
    gaps = (np.asarray(confidence, dtype=np.float64) - observed)[order].reshape(bins, -1).sum(axis=1)
    return float(np.abs(gaps).sum() / len(confidence))


def double_softmax_rows(pred: np.ndarray, *, logits: bool, tolerance: float) -> int:
    """Rows that look softmaxed twice.  Probabilities: K >= 3, 0 < min q < max q and max q / min q <=
    e (1 + tolerance) (softmax of values in [0, 1] has max/min <= e; a uniform row is left out).  Logits: every z_k in [0, 1] and |sum z - 1| <= tolerance
    (a distribution handed over as logits)."""
    values = np.asarray(pred, dtype=np.float64)
    if values.ndim == 1:
        return 0
    if logits:
        inside = ((values >= 0.0) & (values <= 1.0)).all(axis=1)
        return int((inside & (np.abs(values.sum(axis=1) - 1.0) <= tolerance)).sum())
    if values.shape[1] < 3:
        return 0
    top, bottom = values.max(axis=1), values.min(axis=1)
    return int(((bottom > 0.0) & (top > bottom) & (top <= np.e * (1.0 + tolerance) * bottom)).sum())


def gaussian_kl_rows(mean: np.ndarray, log_variance: np.ndarray, prior_mean: np.ndarray | float = 0.0,
                     prior_log_variance: np.ndarray | float = 0.0) -> np.ndarray:
    """Per-row KL(N(m, diag e^lv) || N(m0, diag e^lv0)) = 1/2 sum_d [lv0 - lv + (e^lv + (m - m0)^2)/e^lv0 - 1],
    the textbook formula in plain float64 (it loses digits where the distributions nearly agree)."""
    m, lv = np.asarray(mean, np.float64), np.asarray(log_variance, np.float64)
    m0, lv0 = np.asarray(prior_mean, np.float64), np.asarray(prior_log_variance, np.float64)
    return 0.5 * (lv0 - lv + (np.exp(lv) + (m - m0) ** 2) / np.exp(lv0) - 1.0).sum(axis=1)


def gaussian_kl_row_mpmath(mean, log_variance, prior_mean=None, prior_log_variance=None, digits: int = 50):
    """One row's Gaussian KL from the textbook formula in mpmath at ``digits`` digits, the float64 inputs
    taken exactly; an mpf."""
    import mpmath

    with mpmath.workdps(digits):
        total = mpmath.mpf(0)
        for d in range(len(mean)):
            m, lv = mpmath.mpf(float(mean[d])), mpmath.mpf(float(log_variance[d]))
            m0 = mpmath.mpf(float(prior_mean[d])) if prior_mean is not None else mpmath.mpf(0)
            lv0 = mpmath.mpf(float(prior_log_variance[d])) if prior_log_variance is not None else mpmath.mpf(0)
            total += lv0 - lv + (mpmath.exp(lv) + (m - m0) ** 2) / mpmath.exp(lv0) - 1
        return total / 2


def prediction_figures(q: np.ndarray, weights: np.ndarray | None = None, bins: int = 15, *, binary: bool = False,
                       log_q: np.ndarray | None = None, top: np.ndarray | None = None) -> dict[str, Any]:
    """What the predictions alone give, from the definitions, over rows of Q (a binary layout's (1 - p, p)):
    ``prediction_entropy`` = sum_i w_i H(Q_i) / W and ``mean_confidence`` = sum_i w_i c_i / W with
    c_i = max_k Q_ik (binary: p_i); and the raw weights of the three distributions: ``predicted_class``
    sum_i w_i [top_i = k] (top: the first argmax, or the one given; binary: [p_i > 0.5]), ``mean_prediction``
    sum_i w_i Q_ik and ``confidence`` sum_i w_i [c_i in bin b] over bins [b/M, (b+1)/M), the last closed."""
    q = np.asarray(q, dtype=np.float64)
    w = np.ones(len(q)) if weights is None else np.asarray(weights, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = (-xlogy(q, q) if log_q is None else -np.where(q > 0, q * log_q, 0.0)).sum(axis=1)
    if binary:
        confidence, predicted = q[:, 1], (q[:, 1] > 0.5).astype(int)
    else:
        predicted = q.argmax(axis=1) if top is None else np.asarray(top)
        confidence = q[np.arange(len(q)), predicted]
    edges = np.arange(bins + 1) / bins
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    total = w.sum()
    return {
        "prediction_entropy": float((w * entropy).sum() / total) if total > 0 else None,
        "mean_confidence": float((w * confidence).sum() / total) if total > 0 else None,
        "predicted_class": np.bincount(predicted, weights=w, minlength=q.shape[1]),
        "mean_prediction": (w[:, None] * q).sum(axis=0),
        "confidence": np.bincount(index, weights=w, minlength=bins),
    }
