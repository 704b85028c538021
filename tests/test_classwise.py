"""Class-wise calibration, the Brier score's decomposition, the prior's KL and the calibration ratio: against
the definitions row by row (tests/reference.py), scikit-learn, and the identity that ties the terms together."""

from __future__ import annotations

import math
import warnings

import numba
import numpy as np
import pytest
import reference
from row_accounting import assert_rows_add_up
from click.testing import CliRunner

import streamdiv
from streamdiv.cli import main
from streamdiv.errors import IncompatibleStateError, StreamdivError
from streamdiv.state import CLASSWISE_MAX_CLASSES

DECOMPOSITION = ("brier_reliability", "brier_resolution", "brier_uncertainty", "brier_within_bin_variance",
                 "brier_within_bin_covariance")


def _probabilities(rng, rows, classes, scale=2.0):
    return reference.softmax(rng.normal(0.0, scale, (rows, classes)))


def _drawn_labels(rng, q):
    """Labels drawn from each row's own distribution: a perfectly calibrated model."""
    cumulative = np.cumsum(q, axis=1)
    return np.minimum((rng.random(len(q))[:, None] > cumulative).sum(axis=1), q.shape[1] - 1)


def _layouts():
    """(name, update keywords, q and p as the class-wise classes see them, weights) for every layout."""
    rng = np.random.default_rng(11)
    rows, classes = 3000, 5
    q = _probabilities(rng, rows, classes)
    labels = _drawn_labels(rng, q)
    hot = reference.one_hot(labels, classes)
    logits = rng.normal(0.0, 2.0, (rows, classes))
    targets = _probabilities(rng, rows, classes, scale=1.0)
    weights = rng.uniform(0.0, 3.0, rows)
    unnormalized = q * rng.uniform(0.999, 1.001, (rows, 1))
    p_binary = rng.uniform(0.0, 1.0, rows)
    y_binary = (rng.random(rows) < p_binary).astype(np.int64)
    z_binary = rng.normal(0.0, 2.0, rows)
    t_binary = rng.uniform(0.0, 1.0, rows)
    sigmoid = 1.0 / (1.0 + np.exp(-z_binary))
    return [
        ("hard float32", {"probs": q.astype(np.float32), "labels": labels}, {}, q.astype(np.float32), hot, None),
        ("hard float64 weighted", {"probs": q, "labels": labels, "weights": weights}, {}, q, hot, weights),
        ("hard logits", {"logits": logits, "labels": labels}, {}, reference.softmax(logits), hot, None),
        ("soft", {"probs": q, "targets": targets}, {}, q, targets, None),
        ("soft logits", {"logits": logits, "targets": targets}, {}, reference.softmax(logits), targets, None),
        ("renormalized", {"probs": unnormalized, "labels": labels}, {"renormalize": True},
         unnormalized / unnormalized.sum(axis=1, keepdims=True), hot, None),
        ("binary", {"probs": p_binary, "labels": y_binary}, {}, p_binary[:, None], y_binary[:, None], None),
        ("binary logits", {"logits": z_binary, "labels": y_binary}, {}, sigmoid[:, None], y_binary[:, None], None),
        ("binary soft", {"probs": p_binary, "targets": t_binary}, {}, p_binary[:, None], t_binary[:, None], None),
        ("binary weighted", {"probs": p_binary, "labels": y_binary, "weights": weights}, {}, p_binary[:, None],
         y_binary[:, None], weights),
    ]


LAYOUTS = _layouts()


@pytest.mark.parametrize("name, columns, options, q, p, weights", LAYOUTS, ids=[layout[0] for layout in LAYOUTS])
def test_classwise_calibration_and_the_decomposition_match_their_definitions(name, columns, options, q, p, weights):
    report = streamdiv.Accumulator(**options).update(**columns).report()
    expected = reference.classwise_calibration(q, p, weights)
    for metric in ("classwise_ece", *DECOMPOSITION):
        assert report.metrics[metric] == pytest.approx(expected[metric], rel=1e-9, abs=1e-15), metric
    assert [entry["ece"] for entry in report.classes] == pytest.approx(expected["per_class_ece"], rel=1e-9)


@pytest.mark.parametrize("name, columns, options, q, p, weights", LAYOUTS, ids=[layout[0] for layout in LAYOUTS])
def test_the_brier_score_is_its_five_terms_on_every_layout(name, columns, options, q, p, weights):
    """brier = REL - RES + UNC + WBV - 2 WBC, to 1e-12 of the largest term (Stephenson et al. 2008)."""
    metrics = streamdiv.Accumulator(**options).update(**columns).report().metrics
    terms = [metrics[metric] for metric in DECOMPOSITION]
    reliability, resolution, uncertainty, variance, covariance = terms
    assembled = reliability - resolution + uncertainty + variance - 2.0 * covariance
    assert abs(metrics["brier"] - assembled) <= 1e-12 * max(map(abs, terms + [metrics["brier"]]))


def test_the_identity_holds_with_groups_and_clipping():
    rng = np.random.default_rng(5)
    q = _probabilities(rng, 4000, 4)
    labels = _drawn_labels(rng, q)
    q[::50, 0] = 0.0
    q /= q.sum(axis=1, keepdims=True)
    regions = np.array(["eu", "us", "apac"])[rng.integers(0, 3, len(q))]
    report = streamdiv.Accumulator(eps=1e-6).update(probs=q, labels=labels, groups=regions).report()
    for metrics in [report.metrics] + [group["metrics"] for group in report.groups]:
        terms = [metrics[metric] for metric in DECOMPOSITION]
        assembled = terms[0] - terms[1] + terms[2] + terms[3] - 2.0 * terms[4]
        assert abs(metrics["brier"] - assembled) <= 1e-12 * max(map(abs, terms))
    expected = reference.classwise_calibration(q, reference.one_hot(labels, 4))
    assert report.metrics["classwise_ece"] == pytest.approx(expected["classwise_ece"], rel=1e-9)


def test_a_perfectly_calibrated_model_has_errors_that_shrink_with_rows():
    """Labels drawn from the model's own probabilities: the reliability term is the bins' sampling noise,
    about classes x bins / rows, and the ECE its square root."""
    rng = np.random.default_rng(2)
    values = {}
    for rows in (2_000, 200_000):
        q = _probabilities(rng, rows, 3, scale=1.0)
        values[rows] = streamdiv.Accumulator().update(probs=q, labels=_drawn_labels(rng, q)).report().metrics
    assert values[200_000]["brier_reliability"] < values[2_000]["brier_reliability"] / 20
    assert values[200_000]["classwise_ece"] < values[2_000]["classwise_ece"] / 4
    assert values[200_000]["ece"] < values[2_000]["ece"] / 4
    assert values[200_000]["prior_kl"] < 1e-4


def test_the_reliability_tables_of_each_class_are_scikit_learns():
    calibration = pytest.importorskip("sklearn.calibration")
    rng = np.random.default_rng(8)
    q = _probabilities(rng, 5000, 4)
    labels = _drawn_labels(rng, q)
    report = streamdiv.Accumulator(bins=10, class_names=["a", "b", "c", "d"]).update(probs=q, labels=labels).report()
    assert [entry["class"] for entry in report.classes] == ["a", "b", "c", "d"]
    for k, entry in enumerate(report.classes):
        observed, predicted = calibration.calibration_curve(labels == k, q[:, k], n_bins=10, strategy="uniform")
        used = [row for row in entry["calibration"] if row["rows"] > 0]
        assert [row["observed"] for row in used] == pytest.approx(observed, rel=1e-12)
        assert [row["prediction"] for row in used] == pytest.approx(predicted, rel=1e-12)
        assert sum(row["rows"] for row in entry["calibration"]) == len(q)
        assert entry["mean_prediction"] == pytest.approx(q[:, k].mean(), rel=1e-12)
        assert entry["observed_frequency"] == pytest.approx((labels == k).mean(), rel=1e-12)
        assert entry["calibration_ratio"] == pytest.approx(q[:, k].mean() / (labels == k).mean(), rel=1e-12)


def test_prior_kl_against_the_definition_and_zero_at_the_base_rates():
    rng = np.random.default_rng(4)
    q = _probabilities(rng, 3000, 6)
    labels = rng.integers(0, 6, len(q))
    weights = rng.uniform(0.5, 2.0, len(q))
    report = streamdiv.Accumulator(base=2).update(probs=q, labels=labels, weights=weights).report()
    expected = reference.prior_kl(q, reference.one_hot(labels, 6), weights) / math.log(2)
    assert report.metrics["prior_kl"] == pytest.approx(expected, rel=1e-10)
    rates = np.bincount(labels, minlength=6) / len(labels)
    matched = streamdiv.Accumulator().update(probs=np.tile(rates, (len(q), 1)), labels=labels).report()
    assert abs(matched.metrics["prior_kl"]) < 1e-14
    never = q.copy()
    never[:, 5] = 0.0
    never /= never.sum(axis=1, keepdims=True)
    skipped = streamdiv.Accumulator(on_invalid="skip", eps=1e-9).update(probs=never, labels=labels).report()
    assert skipped.metrics["prior_kl"] == math.inf  # class 5 occurs and is never predicted
    assert_rows_add_up(skipped, len(labels))


def test_binary_calibration_ratio_and_prior():
    rng = np.random.default_rng(6)
    p = rng.uniform(0.0, 0.3, 4000)
    y = (rng.random(4000) < 0.1).astype(np.int8)
    report = streamdiv.Accumulator().update(probs=p, labels=y).report()
    assert report.metrics["calibration_ratio"] == pytest.approx(p.sum() / y.sum(), rel=1e-12)
    two = np.stack([1 - p, p], axis=1)
    assert report.metrics["prior_kl"] == pytest.approx(reference.prior_kl(two, reference.one_hot(y, 2)), rel=1e-9)
    assert [entry["class"] for entry in report.classes] == ["1"]
    none = streamdiv.Accumulator().update(probs=p, labels=np.zeros(4000, dtype=np.int8)).report()
    assert none.metrics["calibration_ratio"] is None
    multiclass = streamdiv.Accumulator().update(probs=np.tile([0.5, 0.5], (10, 1)), labels=np.arange(10) % 2)
    assert multiclass.report().metrics["calibration_ratio"] is None  # per class in report.classes


def test_relative_information_gain_is_one_minus_normalized_entropy():
    rng = np.random.default_rng(1)
    q = _probabilities(rng, 2000, 3)
    for metrics in ("all", "loss"):
        values = streamdiv.Accumulator(metrics=metrics).update(probs=q, labels=_drawn_labels(rng, q)).report().metrics
        assert values["relative_information_gain"] == 1.0 - values["normalized_entropy"]


def test_classwise_is_on_up_to_the_limit_and_can_be_chosen():
    rng = np.random.default_rng(0)
    for classes, expected in ((CLASSWISE_MAX_CLASSES, True), (CLASSWISE_MAX_CLASSES + 1, False)):
        q = _probabilities(rng, 300, classes)
        labels = rng.integers(0, classes, 300)
        report = streamdiv.Accumulator().update(probs=q, labels=labels).report()
        assert (report.metrics["classwise_ece"] is not None) is expected
        assert (len(report.classes) == classes) is expected
        assert report.metrics["prior_kl"] is not None  # the class masses are kept either way
        chosen = streamdiv.Accumulator(classwise=not expected).update(probs=q, labels=labels).report()
        assert (chosen.metrics["classwise_ece"] is not None) is (not expected)
    off = streamdiv.Accumulator(classwise=False).update(probs=q[:, :3] / q[:, :3].sum(1, keepdims=True),
                                                         labels=labels % 3)
    assert off.report().classes == [] and all(off.report().metrics[name] is None for name in DECOMPOSITION)
    with pytest.raises(StreamdivError, match="class-wise calibration needs the full metric set"):
        streamdiv.Accumulator(classwise=True, metrics="loss")


def test_states_of_different_classwise_settings_refuse_to_merge():
    q = np.tile([0.2, 0.3, 0.5], (10, 1))
    labels = np.arange(10) % 3
    on = streamdiv.Accumulator().update(probs=q, labels=labels)
    off = streamdiv.Accumulator(classwise=False).update(probs=q, labels=labels)
    with pytest.raises(IncompatibleStateError, match="classwise differs: True here, False in the other"):
        on.merge(off)
    restored = streamdiv.Accumulator.from_bytes(on.to_bytes())
    assert restored.report().to_dict() == on.report().to_dict()
    assert (streamdiv.Accumulator() + on).report().classes == on.report().classes


def test_the_class_slots_have_the_same_bits_for_any_batch_cut_and_thread_count():
    rng = np.random.default_rng(9)
    q = _probabilities(rng, 50_000, 7).astype(np.float32)
    labels = _drawn_labels(rng, q.astype(np.float64) / q.sum(axis=1, keepdims=True))
    groups = rng.integers(0, 3, len(q))
    whole = streamdiv.Accumulator().update(probs=q, labels=labels, groups=groups)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        cut = streamdiv.Accumulator()
        for start in range(0, len(q), 7001):
            cut.update(probs=q[start:start + 7001], labels=labels[start:start + 7001],
                       groups=groups[start:start + 7001])
    finally:
        numba.set_num_threads(threads)
    for mine, theirs in zip(whole._state.settled(), cut._state.settled()):
        assert np.array_equal(mine, theirs)
    parts = [streamdiv.Accumulator().update(probs=q[s:s + 20_000], labels=labels[s:s + 20_000],
                                            groups=groups[s:s + 20_000]) for s in range(0, len(q), 20_000)]
    merged = parts[0] + parts[1] + parts[2]
    for name in ("classwise_ece", *DECOMPOSITION, "prior_kl"):
        assert merged.report().metrics[name] == pytest.approx(whole.report().metrics[name], rel=1e-12)


def test_the_command_line_shows_and_turns_off_classwise_calibration(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    rng = np.random.default_rng(3)
    q = _probabilities(rng, 500, 3).astype(np.float32)
    table = pa.table({"probs": pa.FixedSizeListArray.from_arrays(pa.array(q.ravel()), 3),
                      "label": pa.array(_drawn_labels(rng, q.astype(np.float64)))})
    path = tmp_path / "preds.parquet"
    pq.write_table(table, path)
    runner = CliRunner()
    shown = runner.invoke(main, ["score", str(path), "--probs", "probs", "--labels", "label", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    import json
    report = json.loads(shown.stdout)
    assert [entry["class"] for entry in report["classes"]] == ["0", "1", "2"]
    assert report["layout"]["classwise"] is True and report["metrics"]["classwise_ece"] > 0
    off = runner.invoke(main, ["score", str(path), "--probs", "probs", "--labels", "label", "--no-classwise",
                               "--format", "json"])
    assert off.exit_code == 0, off.output
    assert json.loads(off.stdout)["classes"] == [] and json.loads(off.stdout)["metrics"]["classwise_ece"] is None
    failing = runner.invoke(main, ["score", str(path), "--probs", "probs", "--labels", "label",
                                   "--fail-if", "brier_reliability>0.00000001", "--format", "json"])
    assert failing.exit_code == 1, failing.output
    prometheus = runner.invoke(main, ["score", str(path), "--probs", "probs", "--labels", "label",
                                      "--format", "prometheus"])
    assert 'streamdiv_class_ece_ratio{class="2"}' in prometheus.stdout


def test_rows_without_weights_give_the_bits_of_weights_of_one():
    """Rows without a weight column count their cells' unit terms and add the counts once (the same bits as
    adding 1.0 row by row while a cell holds a whole number); after a weighted batch in the same block the
    cells hold fractions and the rows go one by one.  Either way: the bits of explicit weights of 1.0."""
    rng = np.random.default_rng(12)
    q = _probabilities(rng, 9000, 6)
    labels = _drawn_labels(rng, q)
    targets = _probabilities(rng, 9000, 6, scale=1.0)
    half = rng.uniform(0.1, 2.0, 4000)
    for columns in ({"labels": labels}, {"targets": targets}):
        plain = streamdiv.Accumulator().update(probs=q, **columns)
        ones = streamdiv.Accumulator().update(probs=q, weights=np.ones(len(q)), **columns)
        for mine, theirs in zip(plain._state.settled(), ones._state.settled()):
            assert np.array_equal(mine, theirs)
        first = {name: value[:4000] for name, value in columns.items()}
        rest = {name: value[4000:] for name, value in columns.items()}
        mixed = streamdiv.Accumulator().update(probs=q[:4000], weights=half, **first).update(probs=q[4000:], **rest)
        explicit = streamdiv.Accumulator().update(probs=q[:4000], weights=half, **first).update(
            probs=q[4000:], weights=np.ones(5000), **rest)
        for mine, theirs in zip(mixed._state.settled(), explicit._state.settled()):
            assert np.array_equal(mine, theirs)


def test_prior_kl_is_scipys_entropy_of_the_base_rates_against_the_mean_prediction():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(13)
    q = _probabilities(rng, 4000, 5)
    labels = _drawn_labels(rng, q * np.array([1.5, 1, 1, 1, 1]) / (q * np.array([1.5, 1, 1, 1, 1])).sum(1, keepdims=True))
    report = streamdiv.Accumulator().update(probs=q, labels=labels).report()
    expected = stats.entropy(np.bincount(labels, minlength=5) / len(labels), q.mean(axis=0))
    assert report.metrics["prior_kl"] == pytest.approx(expected, rel=1e-10)


def test_calibration_ratios_past_the_float_range_are_inf_without_a_warning():
    """Positives of subnormal weight (the fuzzer's input): sum w p / sum w y overflows to inf, quietly."""
    p = np.array([0.5, 0.5, 0.25])
    y = np.array([1, 0, 0])
    weights = np.array([1e-310, 1.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        binary = streamdiv.Accumulator().update(probs=p, labels=y, weights=weights).report()
        multiclass = streamdiv.Accumulator().update(probs=np.stack([1 - p, p], axis=1), labels=y,
                                                    weights=weights).report()
    assert binary.metrics["calibration_ratio"] == math.inf
    assert [entry["calibration_ratio"] for entry in multiclass.classes][1] == math.inf
