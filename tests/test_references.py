"""Every metric against independent references: scipy, scikit-learn and the numpy definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import make_soft
from scipy.special import rel_entr, xlogy
from scipy.stats import entropy as scipy_entropy
from sklearn.calibration import calibration_curve
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss

import reference
import streamdiv

REL = 1e-12


def report_of(**kwargs):
    options = {key: kwargs.pop(key) for key in ("bins", "eps", "renormalize", "base", "class_names")
               if key in kwargs}
    return streamdiv.Accumulator(**options).update(**kwargs).report()


def assert_matches(metrics, expected, names=None, rel=REL):
    for name in names or expected:
        want = expected[name]
        if want is None:
            assert metrics[name] is None, name
        else:
            assert metrics[name] == pytest.approx(want, rel=rel, abs=1e-15), name


def test_hard_labels_against_sklearn_and_reference(hard):
    _, probs, labels = hard
    m = report_of(probs=probs, labels=labels).metrics
    assert m["cross_entropy"] == pytest.approx(log_loss(labels, probs), rel=REL)
    assert m["accuracy"] == pytest.approx(accuracy_score(labels, probs.argmax(axis=1)), rel=REL)
    expected = reference.metrics(reference.one_hot(labels, 5), probs)
    expected.pop("reverse_kl_divergence")
    assert_matches(m, expected)
    assert m["entropy"] == 0.0
    assert m["kl_divergence"] == m["cross_entropy"]
    assert m["reverse_kl_divergence"] is None
    assert m["rows"] == len(labels) and m["weight"] == len(labels)


def test_logits_match_probabilities(hard):
    logits, _, labels = hard
    from_logits = report_of(logits=logits, labels=labels).metrics
    expected = reference.metrics(reference.one_hot(labels, 5), reference.softmax(logits))
    expected.pop("reverse_kl_divergence")
    assert_matches(from_logits, expected, rel=1e-11)


@pytest.mark.parametrize("num_classes", [5, 40])  # rows of a few classes, and of many (another block pass)
def test_soft_targets_against_scipy(num_classes):
    targets, probs = make_soft(num_classes=num_classes)
    m = report_of(probs=probs, targets=targets).metrics
    assert m["kl_divergence"] == pytest.approx(scipy_entropy(targets, probs, axis=1).mean(), rel=REL)
    assert m["entropy"] == pytest.approx(scipy_entropy(targets, axis=1).mean(), rel=REL)
    assert m["prediction_entropy"] == pytest.approx(scipy_entropy(probs, axis=1).mean(), rel=REL)
    assert m["reverse_kl_divergence"] == math.inf  # targets hold exact zeros where probs do not
    assert_matches(m, {k: v for k, v in reference.metrics(targets, probs).items() if k != "reverse_kl_divergence"})
    assert m["cross_entropy"] == pytest.approx(m["entropy"] + m["kl_divergence"], rel=1e-14)


def test_reverse_kl_when_finite():
    targets, probs = make_soft(zero_fraction=0.0)
    m = report_of(probs=probs, targets=targets).metrics
    assert m["reverse_kl_divergence"] == pytest.approx(rel_entr(probs, targets).sum(axis=1).mean(), rel=REL)
    js = reference.per_row(targets, probs)["js_divergence"].mean()
    assert m["js_divergence"] == pytest.approx(js, rel=REL)


def test_binary_against_sklearn():
    rng = np.random.default_rng(3)
    p = rng.beta(2, 5, 5000)
    y = (rng.random(5000) < np.clip(p * 1.3, 0, 1)).astype(int)
    m = report_of(probs=p, labels=y, bins=10).metrics
    assert m["cross_entropy"] == pytest.approx(log_loss(y, p), rel=REL)
    assert m["brier"] == pytest.approx(brier_score_loss(y, p), rel=REL)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p > 0.5), rel=REL)
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
    counts = np.histogram(p, bins=np.arange(11) / 10)[0]
    counts = counts[counts > 0]
    assert m["ece"] == pytest.approx((np.abs(observed - predicted) * counts).sum() / len(p), rel=1e-10)
    assert m["mce"] == pytest.approx(np.abs(observed - predicted).max(), rel=1e-10)
    two_class = np.stack([1 - p, p], axis=1)
    expected = reference.metrics(reference.one_hot(y, 2), two_class, bins=10, binary=True)
    expected.pop("reverse_kl_divergence")
    assert_matches(m, expected, rel=1e-11)


def test_binary_logits_and_bool_labels():
    rng = np.random.default_rng(4)
    z = rng.normal(0, 3, 3000)
    y = rng.random(3000) < 1 / (1 + np.exp(-z))
    m = report_of(logits=z, labels=y).metrics
    assert m["cross_entropy"] == pytest.approx(log_loss(y, 1 / (1 + np.exp(-z))), rel=1e-11)


def test_binary_soft_targets():
    rng = np.random.default_rng(5)
    p, t = rng.random(1000), rng.random(1000)
    m = report_of(probs=p, targets=t).metrics
    expected = reference.metrics(np.stack([1 - t, t], 1), np.stack([1 - p, p], 1), binary=True)
    assert_matches(m, expected, rel=1e-11)


def test_weights_match_repetition(hard):
    _, probs, labels = hard
    weights = np.random.default_rng(6).integers(0, 4, len(labels))
    weighted = report_of(probs=probs, labels=labels, weights=weights.astype(float)).metrics
    repeated = report_of(probs=np.repeat(probs, weights, axis=0), labels=np.repeat(labels, weights)).metrics
    for name in streamdiv.METRIC_NAMES:
        if name in ("rows", "double_softmax_rows", "ece_debiased"):  # rows counted whatever their weight;
        # ece_debiased's bias correction counts rows: W_b^2 / sum w^2, not W_b
            continue
        if repeated[name] is None:
            assert weighted[name] is None
        else:
            assert weighted[name] == pytest.approx(repeated[name], rel=1e-12), name
    assert weighted["rows"] == len(labels) and weighted["weight"] == repeated["rows"]  # zero weights count as rows
    assert weighted["cross_entropy"] == pytest.approx(log_loss(labels, probs, sample_weight=weights), rel=REL)
    assert weighted["brier"] == pytest.approx(
        reference.metrics(reference.one_hot(labels, 5), probs, weights)["brier"], rel=REL)


def test_normalized_entropy_binary_matches_he_et_al():
    rng = np.random.default_rng(7)
    p = rng.random(4000)
    y = (rng.random(4000) < p).astype(int)
    m = report_of(probs=p, labels=y).metrics
    rate = y.mean()
    base_entropy = -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))
    assert m["normalized_entropy"] == pytest.approx(log_loss(y, p) / base_entropy, rel=REL)


def test_normalized_entropy_is_null_for_one_class():
    m = report_of(probs=np.array([0.3, 0.9]), labels=np.array([1, 1])).metrics
    assert m["normalized_entropy"] is None


@pytest.mark.parametrize("base, divisor, unit", [(2, math.log(2), "bits"), (10, math.log(10), "hartleys"),
                                                 ("e", 1.0, "nats")])
def test_units(hard, base, divisor, unit):
    _, probs, labels = hard
    nats = report_of(probs=probs, labels=labels).metrics
    report = report_of(probs=probs, labels=labels, base=base)
    assert report.units == unit and report.to_dict()["units"] == unit
    for name in ("cross_entropy", "prediction_entropy", "js_divergence", "kl_divergence"):
        assert report.metrics[name] == pytest.approx(nats[name] / divisor, rel=1e-15)
    for name in ("accuracy", "brier", "ece", "normalized_entropy", "perplexity"):
        assert report.metrics[name] == pytest.approx(nats[name], rel=1e-15)


def test_perplexity_and_stderr(hard):
    _, probs, labels = hard
    m = report_of(probs=probs, labels=labels).metrics
    rows = -np.log(probs[np.arange(len(labels)), labels])
    assert m["perplexity"] == pytest.approx(math.exp(rows.mean()), rel=1e-12)
    assert m["cross_entropy_stderr"] == pytest.approx(rows.std(ddof=1) / math.sqrt(len(rows)), rel=1e-9)


def test_calibration_bins_edges():
    # 0.29 * 100 = 28.999...: floor(c*M) would put 0.29 in bin 28; the k/M edges put it in bin 29.
    report = report_of(probs=np.array([0.29, 0.0, 1.0, 0.7]), labels=np.array([1, 0, 1, 1]), bins=100)
    rows = [row["rows"] for row in report.calibration]
    assert rows[29] == 1 and rows[0] == 1 and rows[99] == 1 and rows[70] == 1
    ten = report_of(probs=np.array([0.7]), labels=np.array([1]), bins=10)
    assert ten.calibration[7]["rows"] == 1  # 0.7 >= 7/10 in float64


def test_class_names_from_glob_and_string_labels():
    import pyarrow as pa
    table = pa.table({"p_cat": [0.7, 0.2], "p_dog": [0.3, 0.8], "label": ["cat", "dog"]})
    report = streamdiv.evaluate(table, probs="p_*", labels="label")
    assert report.to_dict()["layout"]["classes"] == ["cat", "dog"]
    assert report.metrics["cross_entropy"] == pytest.approx(-(math.log(0.7) + math.log(0.8)) / 2, rel=1e-15)


def test_soft_targets_with_eps_clipping_against_numpy():
    targets, probs = make_soft(n=500, num_classes=4, seed=8)
    probs[::7, 1] = 0.0  # exact zeros under target mass: clipped, else infinite
    probs /= probs.sum(axis=1, keepdims=True)
    eps = 1e-6
    m = report_of(probs=probs, targets=targets, eps=eps).metrics
    clipped_log = np.log(np.maximum(probs, eps))
    cross = -np.where(targets > 0, targets * clipped_log, 0).sum(1)
    entropy = -xlogy(targets, targets).sum(1)
    assert m["cross_entropy"] == pytest.approx(cross.mean(), rel=1e-12)
    assert m["kl_divergence"] == pytest.approx((cross - entropy).mean(), rel=1e-11)
    assert m["clipped_rows"] == int(((targets > 0) & (probs < eps)).any(axis=1).sum()) > 0
    unclipped = report_of(probs=probs, targets=targets).metrics
    assert unclipped["cross_entropy"] == math.inf and unclipped["infinite_rows"] == m["clipped_rows"]


def test_hard_logits_fast_path_agrees_with_the_general_path(hard):
    """Hard labels with logits take the block pass with vectorised logs; renormalize=True takes the general
    per-row path with libm's.  Every metric must agree to rounding."""
    logits, _, labels = hard
    fast = report_of(logits=logits, labels=labels).metrics
    general = report_of(logits=logits, labels=labels, renormalize=True).metrics
    for name in ("cross_entropy", "prediction_entropy", "js_divergence", "brier", "ece", "accuracy",
                 "cross_entropy_stderr"):
        assert general[name] == pytest.approx(fast[name], rel=1e-13), name


def test_renormalize_soft_and_logits_paths_agree_with_the_fast_path():
    """Soft targets with renormalize=True take the general per-row path; on normalized rows it must agree."""
    targets, probs = make_soft(n=300, num_classes=5, seed=9)
    fast = report_of(probs=probs, targets=targets).metrics
    general = report_of(probs=probs, targets=targets, renormalize=True).metrics
    for name in ("cross_entropy", "entropy", "kl_divergence", "prediction_entropy", "js_divergence", "brier",
                 "ece", "accuracy"):
        assert general[name] == pytest.approx(fast[name], rel=1e-13), name
