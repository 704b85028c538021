"""Calibration over the top-label bins: ece, mce, ece_rms and ece_debiased against torchmetrics, scikit-learn
and the references, with bins of equal width (binning="uniform") or of equal weight ("quantile", regrouped
from the state's fine histogram)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from numba import njit
from reference import debiased_calibration_error, equal_mass_calibration_error

import streamdiv
from streamdiv.errors import IncompatibleStateError, StreamdivError
from streamdiv.kernels import layout
from streamdiv.kernels.primitives import bin_index

CALIBRATION = ("ece", "mce", "ece_rms", "ece_debiased")


def _away_from_edges(confidence: np.ndarray, bins: int) -> np.ndarray:
    """Confidences moved off every k/bins by at least 1e-6, where edge rules (k/M, linspace, bucketize) agree."""
    nearest = np.round(confidence * bins) / bins
    close = np.abs(confidence - nearest) < 1e-6
    return np.where(close, np.clip(nearest + 2e-6, 0.0, 1.0 - 2e-6), confidence)


def _binary_rows(n: int, seed: int, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Binary predictions, miscalibrated, off the edges; 20 rows at exactly 0 and 20 at exactly 1, the last
    bin holding nothing else (torchmetrics puts c = 1.0 in a bin of its own: Lightning-AI/torchmetrics#3510)."""
    rng = np.random.default_rng(seed)
    p = _away_from_edges(rng.beta(2.0, 2.0, n), bins)
    p = np.where(p >= 1.0 - 1.0 / bins, p - 1.0 / bins, p)
    p[:20], p[20:40] = 0.0, 1.0
    y = (rng.random(n) < p ** 1.3).astype(np.int64)
    return p, y


def _multiclass_rows(n: int, classes: int, seed: int, bins: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (n, classes))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    top = probs.max(axis=1)
    keep = (np.abs(top - np.round(top * bins) / bins) > 1e-6) & (top < 1.0 - 1.0 / bins)
    probs = probs[keep]
    labels = np.array([rng.choice(classes, p=row) for row in probs ** 2 / (probs ** 2).sum(axis=1, keepdims=True)])
    probs[:15] = np.eye(classes)[labels[:15]]  # confidence exactly 1
    return probs, labels


def _torchmetrics(preds, target, task, bins, classes=None):
    torch = pytest.importorskip("torch")
    classification = pytest.importorskip("torchmetrics.classification")
    values = {}
    for norm, name in (("l1", "ece"), ("l2", "ece_rms"), ("max", "mce")):
        kwargs = {"num_classes": classes} if task == "multiclass" else {}
        metric = (classification.MulticlassCalibrationError if task == "multiclass"
                  else classification.BinaryCalibrationError)(n_bins=bins, norm=norm, **kwargs)
        values[name] = float(metric(torch.from_numpy(preds), torch.from_numpy(target)))
    return values


@pytest.mark.parametrize("bins", [15, 10, 7])
def test_binary_bins_match_torchmetrics_l1_l2_and_max(bins):
    p, y = _binary_rows(3000, bins, bins)
    report = streamdiv.Accumulator(bins=bins).update(probs=p, labels=y).report()
    expected = _torchmetrics(p, y, "binary", bins)
    for name, value in expected.items():
        assert report.metrics[name] == pytest.approx(value, rel=1e-12, abs=1e-15), name


@pytest.mark.parametrize("bins", [15, 20])
def test_multiclass_bins_match_torchmetrics_l1_l2_and_max(bins):
    probs, labels = _multiclass_rows(3000, 4, bins, bins)
    report = streamdiv.Accumulator(bins=bins).update(probs=probs, labels=labels).report()
    expected = _torchmetrics(probs, labels, "multiclass", bins, classes=4)
    for name, value in expected.items():  # its multiclass path sums float32 confidences (1e-7 here)
        assert report.metrics[name] == pytest.approx(value, rel=2e-6, abs=1e-12), name


def test_torchmetrics_bins_differ_where_its_edge_rules_do():
    """Where the rules differ: f64 0.7 lies in bin 7 of [k/10, (k+1)/10) but bin 6 of torchmetrics' edges
    (linspace, bucketize), and a confidence of exactly 1.0 gets a bin of its own there."""
    p = np.array([0.7] * 10 + [0.75] * 10 + [1.0] * 10 + [0.95] * 10)
    y = np.array(([1] * 7 + [0] * 3) * 2 + [1] * 10 + [1] * 5 + [0] * 5)
    ours = streamdiv.Accumulator(bins=10).update(probs=p, labels=y).report()
    rows = [row["rows"] for row in ours.calibration]
    assert rows[6:] == [0, 20, 0, 20]
    theirs = _torchmetrics(p, y, "binary", 10)
    # ours: bin 7 holds 0.7 and 0.75 (gap 0.025), bin 9 holds 0.95 and 1.0 (gap 0.225); theirs splits both
    assert ours.metrics["ece"] == pytest.approx((20 * 0.025 + 20 * 0.225) / 40)
    assert theirs["ece"] == pytest.approx((10 * 0.0 + 10 * 0.05 + 10 * 0.0 + 10 * 0.45) / 40)


@pytest.mark.parametrize("weighted", [False, True])
def test_ece_debiased_is_kumars_estimator_with_the_effective_row_count(weighted):
    rng = np.random.default_rng(3)
    p = rng.beta(3.0, 2.0, 4000)
    y = (rng.random(4000) < p * 0.9).astype(np.int64)
    w = rng.gamma(2.0, 1.0, 4000) if weighted else None
    report = streamdiv.Accumulator(bins=12).update(probs=p, labels=y, weights=w).report()
    expected = debiased_calibration_error(p, y.astype(float), w, np.arange(13) / 12)
    assert expected > 0.03
    assert report.metrics["ece_debiased"] == pytest.approx(expected, rel=1e-12)
    # a weight is not a repeated row for this metric alone: doubling every weight leaves it as it is
    if weighted:
        doubled = streamdiv.Accumulator(bins=12).update(probs=p, labels=y, weights=2 * w).report()
        assert doubled.metrics["ece_debiased"] == pytest.approx(expected, rel=1e-12)


def test_ece_debiased_is_zero_not_negative_for_calibrated_rows_and_skips_single_row_bins():
    rng = np.random.default_rng(4)
    p = rng.random(2000)
    y = (rng.random(2000) < p).astype(np.int64)
    report = streamdiv.Accumulator(bins=5).update(probs=p, labels=y).report()
    assert report.metrics["ece_debiased"] == pytest.approx(debiased_calibration_error(p, y, None, np.arange(6) / 5))
    lonely = streamdiv.Accumulator(bins=4).update(probs=np.array([0.1, 0.6, 0.62]), labels=np.array([1, 0, 1]))
    assert lonely.report().metrics["ece_debiased"] == pytest.approx(
        debiased_calibration_error(np.array([0.1, 0.6, 0.62]), np.array([1.0, 0.0, 1.0]), None, np.arange(5) / 4))


def test_ece_debiased_leaves_out_bins_whose_squared_weights_underflow_without_a_warning():
    """Weights of 1e-170 square to 0: such a bin's effective row count is unknowable, so it is left out (here
    every bin is, and the estimator is 0), with no RuntimeWarning and no NaN (the fuzzer's find)."""
    p = np.array([0.2, 0.25, 0.7, 0.8])
    y = np.array([0, 1, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny = streamdiv.Accumulator(bins=4).update(probs=p, labels=y, weights=np.full(4, 1e-170)).report()
    assert tiny.metrics["ece_debiased"] == 0.0
    assert tiny.metrics["ece"] == pytest.approx(streamdiv.Accumulator(bins=4).update(probs=p, labels=y)
                                                .report().metrics["ece"], rel=1e-12)


def test_fine_bins_are_searchsorted_on_their_exact_edges():
    edges = layout.fine_edges()
    assert len(edges) == layout.FINE_BINS + 1 and np.all(np.diff(edges) > 0)
    assert edges[0] == 0.0 and edges[-1] == 1.0 and np.all(1.0 - (1.0 - edges) == edges)

    @njit
    def fine(confidence):
        out = np.empty(confidence.shape[0], dtype=np.int64)
        for i in range(confidence.shape[0]):
            out[i] = bin_index(confidence[i], layout.FINE_BINS)
        return out

    rng = np.random.default_rng(5)
    confidence = np.concatenate([edges, np.nextafter(edges, 2.0), np.nextafter(edges, -1.0), rng.random(10 ** 5),
                                 1.0 - rng.random(10 ** 5) ** 8, rng.random(10 ** 5) ** 8,
                                 1.0 - np.exp(-rng.uniform(0.0, 60.0, 10 ** 5)), [5e-324, 1.0 - 2.0 ** -53]])
    confidence = np.clip(confidence, 0.0, 1.0)
    expected = np.minimum(np.searchsorted(edges, confidence, "right") - 1, layout.FINE_BINS - 1)
    np.testing.assert_array_equal(fine(confidence), expected)


def _crowded_near_one(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = 1.0 - rng.beta(1.0, 200.0, n)
    y = (rng.random(n) < c ** 3).astype(np.int64)  # overconfident
    return np.stack([1.0 - c, c], axis=1), y


def test_quantile_bins_crowded_near_one_are_within_the_floor_and_the_bound_of_the_exact_ones():
    probs, labels = _crowded_near_one(3000, 6)
    report = streamdiv.Accumulator(bins=15, binning="quantile").update(probs=probs, labels=labels).report()
    weights = np.array([row["weight"] for row in report.calibration])
    assert np.all(np.abs(weights - 200.0) <= 0.2 * 200.0)
    exact = equal_mass_calibration_error(probs[:, 1], labels, 15)
    ece = report.metrics["ece"]
    assert abs(ece - exact) <= report.calibration_bound < 0.005
    uniform = streamdiv.Accumulator(bins=15).update(probs=probs, labels=labels).report()
    assert len([row for row in uniform.calibration if row["rows"]]) == 1  # equal width sees one bin


def test_quantile_bins_hold_exactly_the_rows_between_their_edges():
    probs, labels = _crowded_near_one(3000, 7)
    report = streamdiv.Accumulator(bins=9, binning="quantile").update(probs=probs, labels=labels).report()
    c = probs[:, 1]
    for position, row in enumerate(report.calibration):
        last = position == len(report.calibration) - 1
        inside = (c >= row["lower"]) & ((c <= row["upper"]) if last else (c < row["upper"]))
        assert row["rows"] == inside.sum()
        if row["rows"]:
            assert row["confidence"] == pytest.approx(c[inside].mean(), rel=1e-13)
            assert row["observed"] == pytest.approx(labels[inside].mean(), rel=1e-13)
    assert report.calibration[0]["lower"] == 0.0 and report.calibration[-1]["upper"] == 1.0


@pytest.mark.parametrize("bins", [5, 10])
def test_quantile_bins_match_scikit_learn_where_the_cuts_fall_in_gaps(bins):
    """Clusters of equal size with gaps between them: every equal-mass rule cuts in the gaps."""
    calibration = pytest.importorskip("sklearn.calibration")
    rng = np.random.default_rng(bins)
    p = np.concatenate([rng.uniform((j + 0.3) / bins, (j + 0.7) / bins, 300) for j in range(bins)]) ** 0.5
    y = (rng.random(len(p)) < p ** 2).astype(np.int64)
    report = streamdiv.Accumulator(bins=bins, binning="quantile").update(probs=p, labels=y).report()
    observed, predicted = calibration.calibration_curve(y, p, n_bins=bins, strategy="quantile")
    np.testing.assert_allclose([row["confidence"] for row in report.calibration], predicted, rtol=1e-13)
    np.testing.assert_allclose([row["observed"] for row in report.calibration], observed, rtol=1e-13)
    assert report.calibration_bound == 0.0
    assert report.metrics["ece"] == pytest.approx(equal_mass_calibration_error(p, y, bins), rel=1e-12)
    uniform_observed, uniform_predicted = calibration.calibration_curve(y, p, n_bins=bins, strategy="uniform")
    uniform = streamdiv.Accumulator(bins=bins).update(probs=p, labels=y).report()
    used = [row for row in uniform.calibration if row["rows"]]
    np.testing.assert_allclose([row["confidence"] for row in used], uniform_predicted, rtol=1e-13)
    np.testing.assert_allclose([row["observed"] for row in used], uniform_observed, rtol=1e-13)


def test_quantile_bins_leave_empty_bins_where_one_confidence_outweighs_a_bin():
    p = np.concatenate([np.linspace(0.2, 0.8, 100), np.ones(300)])
    y = np.ones(400, dtype=np.int64)
    report = streamdiv.Accumulator(bins=8, binning="quantile").update(probs=p, labels=y).report()
    rows = [row["rows"] for row in report.calibration]
    assert sum(rows) == 400 and rows[-1] == 300 and 0 in rows
    assert report.metrics["ece"] == pytest.approx(np.abs(p - 1).sum() / 400, rel=1e-12)


def test_quantile_states_merge_and_cut_to_the_same_bits_per_group_and_refuse_uniform_ones():
    probs, labels = _crowded_near_one(6000, 8)
    groups = np.random.default_rng(9).integers(0, 3, 6000)
    whole = streamdiv.Accumulator(bins=15, binning="quantile").update(probs=probs, labels=labels, groups=groups)
    parts = [streamdiv.Accumulator(bins=15, binning="quantile") for _ in range(3)]
    for part, (start, stop) in zip(parts, [(0, 1234), (1234, 4000), (4000, 6000)]):
        part.update(probs=probs[start:stop], labels=labels[start:stop], groups=groups[start:stop])
    cut = streamdiv.Accumulator(bins=15, binning="quantile")
    for start in range(0, 6000, 777):
        cut.update(probs=probs[start:start + 777], labels=labels[start:start + 777], groups=groups[start:start + 777])
    merged = parts[0] + parts[1] + parts[2]
    assert cut.report().to_dict() == whole.report().to_dict()
    for name in CALIBRATION:
        assert merged.report().metrics[name] == pytest.approx(whole.report().metrics[name], rel=1e-12)
    restored = streamdiv.Accumulator.from_bytes(whole.to_bytes())
    assert restored.report().to_dict() == whole.report().to_dict()
    assert restored.report().to_dict()["layout"]["binning"] == "quantile"
    with pytest.raises(IncompatibleStateError, match="binning differs: 'uniform' here, 'quantile' in the other"):
        streamdiv.Accumulator(bins=15).update(probs=probs, labels=labels, groups=groups).merge(whole)


def test_binning_is_checked_and_the_fine_histograms_size_is_not_a_bin_count():
    """The kernels tell the fine histogram by its size, so no M bins (top-label or class-wise) may have it."""
    with pytest.raises(StreamdivError, match="binning must be 'uniform' or 'quantile'"):
        streamdiv.Accumulator(binning="equal")
    for binning in ("uniform", "quantile"):
        with pytest.raises(StreamdivError, match="fine histogram"):
            streamdiv.Accumulator(bins=layout.FINE_BINS, binning=binning)
    assert streamdiv.Accumulator(bins=15, binning="quantile")._state.slot_layout.bins == layout.FINE_BINS


def test_a_state_saved_before_weight_squares_loads_uniform_with_ece_debiased_unknown():
    from pathlib import Path
    old = (Path(__file__).parent / "fixtures" / "states" / "v3-multiclass.state").read_bytes()
    accumulator = streamdiv.Accumulator.from_bytes(old)
    report = accumulator.report()
    assert report.to_dict()["layout"]["binning"] == "uniform"
    assert report.metrics["ece"] is not None and report.metrics["ece_debiased"] is None
    again = streamdiv.Accumulator.from_bytes(accumulator.to_bytes())
    assert again.report().metrics["ece_debiased"] is None and again.report().metrics["ece"] == report.metrics["ece"]


def test_the_command_line_takes_binning_and_reports_it(tmp_path):
    from click.testing import CliRunner
    pyarrow = pytest.importorskip("pyarrow")
    from pyarrow import parquet

    from streamdiv.cli import main

    probs, labels = _crowded_near_one(3000, 10)
    path = tmp_path / "preds.parquet"
    parquet.write_table(pyarrow.table({"p": probs[:, 1], "label": labels}), path)
    result = CliRunner().invoke(main, ["score", str(path), "--probs", "p", "--labels", "label", "--binning",
                                       "quantile", "--format", "json", "--fail-if", "ece_debiased>0.5"])
    assert result.exit_code == 0, result.output
    import json
    report = json.loads(result.stdout)
    assert report["layout"]["binning"] == "quantile" and len(report["calibration"]) == 15
    assert 0.0 < report["calibration_bound"] < 0.005
    expected = streamdiv.Accumulator(binning="quantile").update(probs=probs[:, 1], labels=labels).report()
    assert report["metrics"]["ece"] == expected.metrics["ece"]


@pytest.mark.parametrize("binning", ["uniform", "quantile"])
def test_mean_confidence_is_the_weighted_mean_of_the_top_probability_whatever_the_bins(binning):
    rng = np.random.default_rng(21)
    probs = rng.dirichlet(np.full(4, 0.5), 2_000)
    labels = rng.integers(0, 4, 2_000)
    weights = rng.exponential(1.0, 2_000)
    binary = rng.random(2_000)
    for bins in (4, 15):
        multiclass = streamdiv.Accumulator(bins=bins, binning=binning).update(probs=probs, labels=labels,
                                                                              weights=weights).report()
        expected = (weights * probs.max(axis=1)).sum() / weights.sum()
        assert multiclass.metrics["mean_confidence"] == pytest.approx(expected, rel=1e-13)
        positive = streamdiv.Accumulator(bins=bins, binning=binning).update(probs=binary, labels=labels % 2).report()
        assert positive.metrics["mean_confidence"] == pytest.approx(binary.mean(), rel=1e-13)  # of p, not max
    loss = streamdiv.Accumulator(metrics="loss").update(probs=probs, labels=labels).report()
    assert loss.metrics["mean_confidence"] is None


@pytest.mark.parametrize("bins", [1, 3, 7, 10, 15, 100, 999, 12345])
def test_uniform_bins_are_those_of_the_edges_k_over_m_on_and_near_every_edge(bins):
    """bin_index(c, M) is the bin of c among the float64 edges k/M ([e_k, e_k+1), the last closed), also for
    c on an edge, an ulp either side, and about EDGE_MARGIN either side, where its guess stops deciding."""
    @njit
    def uniform(confidence, n_bins):
        out = np.empty(confidence.shape[0], dtype=np.int64)
        for i in range(confidence.shape[0]):
            out[i] = bin_index(confidence[i], n_bins)
        return out

    edges = np.arange(bins + 1) / bins
    rng = np.random.default_rng(bins)
    near = [edges + side * (1e-6 * factor) / bins for side in (-1, 1) for factor in (0.5, 0.999999, 1.0, 1.000001, 2.0)]
    confidence = np.clip(np.concatenate([edges, np.nextafter(edges, 2.0), np.nextafter(edges, -1.0), *near,
                                         rng.random(10 ** 5), [5e-324, 1.0 - 2.0 ** -53, 0.29, 0.57]]), 0.0, 1.0)
    expected = np.minimum(np.searchsorted(edges, confidence, "right") - 1, bins - 1)
    np.testing.assert_array_equal(uniform(confidence, bins), expected)
