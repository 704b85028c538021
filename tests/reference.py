"""Slow, obviously correct references: every metric from the definitions, in plain numpy float64.

P is the target distribution (one-hot for hard labels), Q the prediction, w the row weights.
"""

from __future__ import annotations

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


def per_row(p: np.ndarray, q: np.ndarray) -> dict[str, np.ndarray]:
    """Per-row terms in nats from the textbook definitions (scipy's xlogy / rel_entr handle 0 log 0)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = 0.5 * (p + q)
        cross = -np.where(p > 0, p * np.log(q), 0.0).sum(axis=1)
        entropy = -xlogy(p, p).sum(axis=1)
        kl = rel_entr(p, q).sum(axis=1)
        reverse = rel_entr(q, p).sum(axis=1)
        js = 0.5 * rel_entr(p, m).sum(axis=1) + 0.5 * rel_entr(q, m).sum(axis=1)
    return {
        "cross_entropy": cross,
        "entropy": entropy,
        "kl_divergence": kl,
        "prediction_entropy": -xlogy(q, q).sum(axis=1),
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
            binary: bool = False) -> dict[str, float]:
    """Weighted means of the per-row terms plus calibration and normalized entropy.

    With ``binary``, p and q are the positive-class columns of a two-class layout: Brier is (q1 - p1)^2, the
    prediction is [q1 > 0.5] and calibration bins q1 against p1.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    w = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=np.float64)
    rows = per_row(p, q)
    used = w > 0  # a zero-weight row contributes nothing, even an infinite one
    out = {name: float((w[used] * values[used]).sum() / w.sum()) for name, values in rows.items()}
    if binary:
        out["brier"] = float((w * (q[:, 1] - p[:, 1]) ** 2).sum() / w.sum())
        predicted = (q[:, 1] > 0.5).astype(int)
        actual = (p[:, 1] > 0.5).astype(int)
        out["accuracy"] = float((w * (predicted == actual)).sum() / w.sum())
        confidence, observed = q[:, 1], p[:, 1]
    else:
        top = q.argmax(axis=1)
        confidence = q[np.arange(len(q)), top]
        observed = p[np.arange(len(p)), top]
    out["ece"], out["mce"] = calibration(confidence, observed, w, bins)
    rates = (w[:, None] * p).sum(axis=0) / w.sum()
    prior = -xlogy(rates, rates).sum()
    out["normalized_entropy"] = out["cross_entropy"] / prior if prior > 0 else None
    return out
