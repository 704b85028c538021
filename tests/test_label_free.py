"""Scoring the predictions alone: neither labels nor targets.  The label-free figures (prediction_entropy,
mean_confidence, the three prediction distributions) against reference.py, against the labelled full pass of
the same predictions (to the bit), and through batches, threads, merges, saved states and the command line."""

from __future__ import annotations

import json

import numba
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from row_accounting import assert_rows_add_up
from strategies import HARD_KINDS, batch_cuts, problems

import reference
import streamdiv
from streamdiv.cli import main
from streamdiv.distributions import DISTRIBUTIONS, prediction_distributions, state_distributions
from streamdiv.errors import IncompatibleStateError, InvalidRowError, SchemaError, StreamdivError
from streamdiv.formats import table
from streamdiv.kernels import layout
from streamdiv.metrics import LABEL_FREE_METRICS
from streamdiv.plan import resolve
from streamdiv.totals import state_totals

N = 3_000
RNG = np.random.default_rng(15)
PROBS = RNG.dirichlet(np.full(5, 0.4), N)
LOGITS = RNG.normal(0.0, 3.0, (N, 5))
BINARY = RNG.random(N)
BINARY_LOGITS = RNG.normal(0.0, 4.0, N)
WEIGHTS = RNG.exponential(1.0, N)
WEIGHTS[RNG.random(N) < 0.1] = 0.0
GROUPS = RNG.integers(0, 3, N)
SCALED = PROBS * RNG.uniform(0.5, 0.9, (N, 1))  # rows that sum to less than 1: renormalize rescales them


def _reference(layout_name: str, rows: np.ndarray, weights: np.ndarray | None, bins: int = 15) -> dict:
    """reference.prediction_figures of the rows of one of the layouts below."""
    if layout_name == "logits":
        return reference.prediction_figures(reference.softmax(rows), weights, bins,
                                            log_q=reference.log_softmax_rows(rows), top=rows.argmax(axis=1))
    if layout_name == "binary_logits":
        two = reference.binary_logit_rows(rows)
        return reference.prediction_figures(reference.softmax(two), weights, bins, binary=True,
                                            log_q=reference.log_softmax_rows(two))
    if layout_name == "binary":
        return reference.prediction_figures(np.stack([1.0 - rows, rows], axis=1), weights, bins, binary=True)
    if layout_name == "renormalize":
        return reference.prediction_figures(rows / rows.sum(axis=1, keepdims=True), weights, bins,
                                            top=rows.argmax(axis=1))
    return reference.prediction_figures(rows.astype(np.float64), weights, bins)


LAYOUTS = {  # name: (update() keyword, rows, Accumulator options)
    "probs": ("probs", PROBS, {}),
    "probs_float32": ("probs", PROBS.astype(np.float32), {}),
    "logits": ("logits", LOGITS, {}),
    "binary": ("probs", BINARY, {}),
    "binary_logits": ("logits", BINARY_LOGITS, {}),
    "renormalize": ("probs", SCALED, {"renormalize": True}),
}


def _assert_figures(report_metrics: dict, raw, expected: dict, rel: float = 1e-12) -> None:
    assert report_metrics["prediction_entropy"] == pytest.approx(expected["prediction_entropy"], rel=rel)
    assert report_metrics["mean_confidence"] == pytest.approx(expected["mean_confidence"], rel=rel)
    assert raw.predicted_class == pytest.approx(expected["predicted_class"], rel=rel, abs=1e-12)
    assert raw.mean_prediction == pytest.approx(expected["mean_prediction"], rel=rel, abs=1e-12)
    assert raw.confidence.weight == pytest.approx(expected["confidence"], rel=rel, abs=1e-12)


@pytest.mark.parametrize("name", LAYOUTS)
@pytest.mark.parametrize("weighted", [False, True])
def test_the_label_free_figures_agree_with_the_reference(name, weighted):
    role, rows, options = LAYOUTS[name]
    weights = WEIGHTS if weighted else None
    accumulator = streamdiv.Accumulator(**options).update(**{role: rows}, weights=weights)
    report = accumulator.report()
    expected = _reference(name, rows, weights)
    _assert_figures(report.metrics, state_distributions(accumulator._state), expected)
    assert report.metrics["rows"] == N and report.metrics["weight"] == pytest.approx(N if weights is None
                                                                                     else WEIGHTS.sum())
    assert report.metrics["unnormalized_rows"] == (N if name == "renormalize" else 0)
    computed = {metric for metric, value in report.metrics.items() if value is not None}
    assert computed == set(LABEL_FREE_METRICS) == {
        "rows", "weight", "skipped_rows", "ignored_rows", "unnormalized_rows", "double_softmax_rows",
        "prediction_entropy", "mean_confidence"}
    shares = report.distributions
    for distribution in ("predicted_class", "mean_prediction"):
        assert shares[distribution] == pytest.approx(expected[distribution] / expected[distribution].sum(),
                                                     rel=1e-12, abs=1e-15)
        assert sum(shares[distribution]) == pytest.approx(1.0, rel=1e-14)
    assert [entry["weight"] for entry in shares["confidence"]] == pytest.approx(expected["confidence"], rel=1e-12)
    assert [entry["lower"] for entry in shares["confidence"]] == (np.arange(15) / 15).tolist()
    assert sum(entry["share"] for entry in shares["confidence"]) == pytest.approx(1.0, rel=1e-14)


@pytest.mark.parametrize("name", ["probs", "logits", "binary_logits"])
def test_each_group_has_the_figures_of_its_own_rows(name):
    role, rows, options = LAYOUTS[name]
    accumulator = streamdiv.Accumulator(**options).update(**{role: rows}, weights=WEIGHTS, groups=GROUPS)
    report = accumulator.report()
    assert sorted(group["group"]["group"] for group in report.groups) == [0, 1, 2]
    for position, group in enumerate(report.groups):  # in the order of the state's group keys
        assert accumulator._state.group_keys[position] == (group["group"]["group"],)
        mine = GROUPS == group["group"]["group"]
        expected = _reference(name, rows[mine], WEIGHTS[mine])
        _assert_figures(group["metrics"], state_distributions(accumulator._state, position), expected)
        assert group["distributions"]["predicted_class"] == pytest.approx(
            expected["predicted_class"] / expected["predicted_class"].sum(), rel=1e-12, abs=1e-15)


def test_the_first_maximum_is_the_predicted_class_and_a_binary_half_is_class_0():
    ties = np.array([[0.4, 0.4, 0.2], [0.2, 0.4, 0.4], [0.25, 0.25, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    assert state_distributions(streamdiv.Accumulator().update(probs=ties)._state).predicted_class.tolist() == [
        2.0, 1.0, 1.0]
    tied_logits = np.array([[3.0, 3.0, -1.0], [0.0, 5.0, 5.0]])
    assert state_distributions(streamdiv.Accumulator().update(logits=tied_logits)._state).predicted_class.tolist() \
        == [1.0, 1.0, 0.0]
    halves = streamdiv.Accumulator().update(probs=np.array([0.5, 0.5000001, 0.2]))
    assert state_distributions(halves._state).predicted_class.tolist() == [2.0, 1.0]
    logits = streamdiv.Accumulator().update(logits=np.array([0.0, 1e-3, -np.inf, 40.0]))
    assert state_distributions(logits._state).predicted_class.tolist() == [2.0, 2.0]


@pytest.mark.parametrize("name", LAYOUTS)
def test_a_labelled_full_run_fills_the_predicted_class_distribution_as_numpy_counts_it(name):
    role, rows, options = LAYOUTS[name]
    binary = rows.ndim == 1
    labels = RNG.integers(0, 2 if binary else 5, N)
    expected = _reference(name, rows, WEIGHTS)["predicted_class"]
    for labelled in ({"labels": labels}, {"targets": RNG.random(N) if binary else RNG.dirichlet(np.ones(5), N)}):
        if "targets" in labelled and name == "renormalize":
            labelled["targets"] = labelled["targets"] * 0.5  # renormalized too
        accumulator = streamdiv.Accumulator(**options).update(**{role: rows}, **labelled, weights=WEIGHTS)
        assert state_distributions(accumulator._state).predicted_class == pytest.approx(expected, rel=1e-12), labelled
    loss = streamdiv.Accumulator(metrics="loss").update(**{role: rows}, labels=labels) if name in (
        "probs", "binary") else None
    if loss is not None:  # the loss pass fills none of the distributions
        assert state_distributions(loss._state) == state_distributions(loss._state).__class__(None, None, None)
        assert loss.report().distributions == {"predicted_class": None, "mean_prediction": None, "confidence": None}


def _label_free_slots(accumulator: streamdiv.Accumulator) -> dict:
    """Every position of the slots the label-free pass fills, by (name, where), as (counts) or (sum, error)."""
    state = accumulator._state
    counts, sums = state.settled()
    count_positions, sum_positions = layout.positions(state.slot_layout.describe())
    filled = layout.filled_by(layout.LABEL_FREE)
    found = {}
    for g, key in enumerate(state.group_keys):
        found |= {(key, name, where): int(counts[g, i]) for i, (name, where) in enumerate(count_positions)
                  if name in filled}
        found |= {(key, name, where): tuple(sums[g, i]) for i, (name, where) in enumerate(sum_positions)
                  if name in filled}
    return found


@given(problems(kinds=HARD_KINDS, metric_sets=("all",)), st.data())
def test_the_predictions_alone_give_the_bits_of_the_labelled_full_pass(problem, data):
    """Scored alone, in any batches, the predictions fill their slots with the bits that the labelled full pass
    of the same predictions gives them (its labels all 0, valid, so that both skip the rows whose prediction
    or weight is bad, and those only)."""
    columns = {role: values for role, values in problem.columns.items() if role != "labels"}
    options = {"bins": problem.options["bins"], "on_invalid": "skip"}
    cuts = [0, *data.draw(batch_cuts(problem.n), label="cuts"), problem.n]
    alone = streamdiv.Accumulator(**options)
    for start, stop in zip(cuts[:-1], cuts[1:]):
        alone.update(**{role: values[start:stop] for role, values in columns.items()},
                     groups=None if problem.groups is None else problem.groups[start:stop])
    labelled = streamdiv.Accumulator(**options).update(**columns, labels=np.zeros(problem.n, dtype=np.int64),
                                                       groups=problem.groups)
    assert _label_free_slots(alone) == _label_free_slots(labelled)
    report, with_labels = alone.report(), labelled.report()
    assert report.rows_read == alone.rows == problem.n == report.metrics["rows"] + report.metrics["skipped_rows"]
    assert report.metrics["skipped_rows"] == with_labels.metrics["skipped_rows"]
    assert report.metrics["ignored_rows"] == 0
    for name in LABEL_FREE_METRICS:
        assert report.metrics[name] == with_labels.metrics[name], name


def test_the_same_bits_for_any_batch_size_and_thread_count():
    rng = np.random.default_rng(7)
    rows = 40_000
    logits = rng.normal(0.0, 2.0, (rows, 10)).astype(np.float32)
    weights = rng.random(rows)
    groups = rng.integers(0, 4, rows)
    one = streamdiv.Accumulator().update(logits=logits, weights=weights, groups=groups).to_bytes()
    before = numba.get_num_threads()
    for threads, batch in ((1, 7_001), (min(2, numba.config.NUMBA_NUM_THREADS), rows), (1, 16_384)):
        numba.set_num_threads(threads)
        try:
            accumulator = streamdiv.Accumulator()
            for start in range(0, rows, batch):
                accumulator.update(logits=logits[start:start + batch], weights=weights[start:start + batch],
                                   groups=groups[start:start + batch])
        finally:
            numba.set_num_threads(before)
        assert accumulator.to_bytes() == one, (threads, batch)


def test_invalid_rows_are_counted_and_named():
    probs = PROBS[:100].copy()
    probs[3, 1] = np.nan
    probs[7, 0] = 1.5
    weights = np.ones(100)
    weights[11] = -1.0
    report = streamdiv.Accumulator(on_invalid="skip").update(probs=probs, weights=weights).report()
    assert (report.metrics["rows"], report.metrics["skipped_rows"], report.metrics["ignored_rows"]) == (97, 3, 0)
    assert report.rows_read == 100
    assert assert_rows_add_up(report, 100) == {"prediction_nan": 1, "prediction_out_of_range": 1,
                                               "weight_negative_or_nan": 1}
    with pytest.raises(InvalidRowError, match=r"row 3, column 'prediction': the value .* holds NaN"):
        streamdiv.Accumulator().update(probs=probs)
    logits = LOGITS[:10].copy()
    logits[2] = -np.inf
    logits[5, 3] = np.inf
    report = streamdiv.Accumulator(on_invalid="skip").update(logits=logits).report()
    assert (report.metrics["rows"], report.metrics["skipped_rows"]) == (8, 2)
    assert assert_rows_add_up(report, 10) == {"logit_nan_or_positive_infinity": 1, "logits_all_negative_infinity": 1}
    nulls = pa.array([0.2, None, 0.9, 1.2])
    report = streamdiv.Accumulator(on_invalid="skip").update(probs=nulls).report()
    assert (report.metrics["rows"], report.metrics["skipped_rows"]) == (2, 2)
    assert assert_rows_add_up(report, 4) == {"null_prediction": 1, "prediction_out_of_range": 1}


def test_a_label_free_state_round_trips_and_merges_with_label_free_states_only():
    first = streamdiv.Accumulator().update(probs=PROBS[:1000], groups=GROUPS[:1000])
    second = streamdiv.Accumulator().update(probs=PROBS[1000:], groups=GROUPS[1000:])
    saved = first.to_bytes()
    restored = streamdiv.Accumulator.from_bytes(saved)
    assert restored.to_bytes() == saved and restored._state.config.label_free
    assert restored.report().to_dict() == first.report().to_dict()
    merged = (restored + second).report()
    whole = streamdiv.Accumulator().update(probs=PROBS, groups=GROUPS).report()
    for name in LABEL_FREE_METRICS:
        assert merged.metrics[name] == pytest.approx(whole.metrics[name], rel=1e-14)
    assert merged.distributions["mean_prediction"] == pytest.approx(whole.distributions["mean_prediction"],
                                                                    rel=1e-14)
    labelled = streamdiv.Accumulator().update(probs=PROBS, labels=GROUPS)
    for left, right in ((first, labelled), (labelled, first)):
        with pytest.raises(IncompatibleStateError, match="cannot merge these results: what was scored differs: "
                           r"(the predictions alone \(no labels or targets\)|predictions against labels or targets) "
                           "here, .* in the other; a label-free state merges only with label-free ones"):
            left + right
    with pytest.raises(StreamdivError, match="this batch does not match the earlier ones: what was scored differs"):
        streamdiv.Accumulator().update(probs=PROBS[:10]).update(probs=PROBS[:10], labels=GROUPS[:10])


def test_the_loss_metrics_and_classwise_calibration_need_labels():
    with pytest.raises(StreamdivError, match=r"metrics='loss': the loss metrics need labels or targets: name them "
                                             r"with labels= or targets="):
        streamdiv.Accumulator(metrics="loss").update(probs=PROBS)
    with pytest.raises(StreamdivError, match="class-wise calibration compares predictions with what happened: it "
                                             "needs labels= or targets="):
        streamdiv.Accumulator(classwise=True).update(probs=PROBS)
    with pytest.raises(SchemaError, match="name at most one of labels= .* and targets="):
        resolve(pa.schema([("p", pa.float64()), ("y", pa.int64())]), probs="p", labels="y", targets="p")
    assert resolve(pa.schema([("p", pa.float64())]), probs="p").labels is None


def test_the_report_of_the_predictions_alone():
    report = streamdiv.evaluate(pa.table({"p": BINARY}), probs="p", by=None)
    data = report.to_dict()
    assert data["layout"]["targets"] == "none" and data["layout"]["classwise"] is False
    assert data["calibration"] == [] and data["calibration_bound"] is None and data["classes"] == []
    assert data["distributions"] == report.distributions
    assert report.metrics["mean_confidence"] == pytest.approx(BINARY.mean(), rel=1e-13)
    shown = [line.split()[0] for line in table(report).split("\n\n")[0].splitlines()[2:]]  # the metric lines
    assert shown == [name for name in streamdiv.METRIC_NAMES if name in LABEL_FREE_METRICS]


def test_quantile_bins_regroup_at_a_references_edges():
    reference_run = streamdiv.Accumulator(binning="quantile", bins=10).update(probs=PROBS[:1500])
    current = streamdiv.Accumulator(binning="quantile", bins=10).update(probs=PROBS[1500:])
    edges = state_distributions(reference_run._state).confidence.edges
    regrouped = state_distributions(current._state, confidence_edges=edges).confidence
    confidence = PROBS[1500:].max(axis=1)
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, 9)
    assert regrouped.weight.tolist() == np.bincount(index, minlength=10).astype(float).tolist()
    assert regrouped.edges.tolist() == edges.tolist()
    own = state_distributions(current._state).confidence
    assert own.weight.sum() == 1500.0 and own.edges.tolist() != edges.tolist()
    uniform = streamdiv.Accumulator(bins=10).update(probs=PROBS)
    halves = state_distributions(uniform._state, confidence_edges=np.array([0.0, 0.5, 1.0])).confidence
    assert halves.weight.tolist() == [float((PROBS.max(axis=1) < 0.5).sum()), float((PROBS.max(axis=1) >= 0.5).sum())]
    with pytest.raises(StreamdivError, match="confidence edges must ascend from 0 to 1, each an edge of the state's "
                                             "own bins"):
        state_distributions(uniform._state, confidence_edges=np.array([0.0, 0.45, 1.0]))


def test_the_distributions_api():
    accumulator = streamdiv.Accumulator().update(probs=PROBS, labels=GROUPS)
    totals = state_totals(accumulator._state, accumulator._state.total_counts(), accumulator._state.total_sums())
    distributions = prediction_distributions(totals)
    assert DISTRIBUTIONS == ("predicted_class", "mean_prediction", "confidence")
    assert distributions.weights("confidence") is distributions.confidence.weight
    assert distributions.shares("predicted_class").tolist() == (distributions.predicted_class / N).tolist()
    assert distributions.to_dict() == accumulator.report().distributions
    with pytest.raises(ValueError, match="no distribution 'classes'"):
        distributions.weights("classes")
    gaussian = streamdiv.Accumulator().update(mean=LOGITS, log_variance=LOGITS * 0.1)
    assert gaussian.report().distributions is None and "distributions" in gaussian.report().to_dict()
    empty = streamdiv.Accumulator().update(probs=PROBS[:5], weights=np.zeros(5)).report()
    assert empty.distributions == {"predicted_class": None, "mean_prediction": None, "confidence": None}


# ---- the command line


@pytest.fixture
def unlabelled(tmp_path):
    path = tmp_path / "unlabelled.parquet"
    pq.write_table(pa.table({"probs": pa.FixedSizeListArray.from_arrays(pa.array(PROBS[:500].reshape(-1)), 5),
                             "year": RNG.integers(2000, 2025, 500), "target_date": np.arange(500),
                             "region": np.where(np.arange(500) % 2, "eu", "us")}), path)
    return str(path)


def _invoke(*args, code=0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


def test_score_without_a_label_column_scores_the_predictions_alone(unlabelled):
    result = _invoke("score", unlabelled, "--by", "region", "--format", "json")
    assert result.stderr.splitlines() == [
        "streamdiv: using --probs probs (guessed from the column names)",
        "streamdiv: no label column: scoring the predictions alone (prediction_entropy, mean_confidence, the "
        "prediction distributions)"]
    data = json.loads(result.stdout)
    assert data == streamdiv.evaluate(unlabelled, probs="probs", by="region").to_dict()
    assert data["layout"]["targets"] == "none" and data["rows_read"] == 500
    assert data["metrics"]["accuracy"] is None and data["metrics"]["ece"] is None
    expected = _reference("probs", PROBS[:500], None)
    assert data["metrics"]["prediction_entropy"] == pytest.approx(expected["prediction_entropy"], rel=1e-12)
    assert data["metrics"]["mean_confidence"] == pytest.approx(expected["mean_confidence"], rel=1e-12)
    assert data["distributions"]["predicted_class"] == (expected["predicted_class"] / 500).tolist()
    assert sorted(group["group"]["region"] for group in data["groups"]) == ["eu", "us"]
    assert all(group["distributions"]["confidence"] for group in data["groups"])


def test_a_year_column_is_not_taken_for_labels_but_inspect_suggests_a_label_like_one(unlabelled, tmp_path):
    guessed = json.loads(_invoke("inspect", unlabelled, "--format", "json").stdout)["guess"]
    assert guessed == {"probs": "probs", "labels": "year"}  # a suggestion: 'year' starts with 'y'
    labelled_path = tmp_path / "labelled.parquet"
    pq.write_table(pa.table({"probs": pa.FixedSizeListArray.from_arrays(pa.array(PROBS[:500].reshape(-1)), 5),
                             "label_id": RNG.integers(0, 5, 500)}), labelled_path)
    assert json.loads(_invoke("inspect", labelled_path, "--format", "json").stdout)["guess"] == {
        "probs": "probs", "labels": "label_id"}
    assert "streamdiv score" in _invoke("inspect", labelled_path).stdout
    result = _invoke("score", labelled_path, "--format", "json")
    assert "no label column" in result.stderr and json.loads(result.stdout)["layout"]["targets"] == "none"
    exact = tmp_path / "exact.parquet"
    pq.write_table(pa.table({"probs": pa.FixedSizeListArray.from_arrays(pa.array(PROBS[:500].reshape(-1)), 5),
                             "Label": RNG.integers(0, 5, 500), "year": np.arange(500)}), exact)
    result = _invoke("score", exact, "--format", "json")
    assert result.stderr.splitlines() == ["streamdiv: using --probs probs --labels Label (guessed from the column "
                                          "names)"]
    assert json.loads(result.stdout)["layout"]["targets"] == "hard"


def test_fail_if_on_a_label_metric_is_refused_for_the_predictions_alone(unlabelled):
    result = _invoke("score", unlabelled, "--fail-if", "ece>0.1", code=2)
    assert ("'ece>0.1': ece is not computed without labels or targets (the predictions alone give only rows, "
            "weight, skipped_rows, ignored_rows, unnormalized_rows, double_softmax_rows, prediction_entropy, "
            "mean_confidence; name the label column with --labels or the targets with --targets)") in result.output
    assert _invoke("score", unlabelled, "--fail-if", "mean_confidence<0.99", "--format", "json", code=1)
    result = _invoke("score", unlabelled, "--metrics", "loss", code=2)
    assert "the loss metrics need labels or targets" in result.output


def test_merge_refuses_a_label_metric_condition_on_label_free_states(unlabelled, tmp_path):
    state = tmp_path / "alone.state"
    _invoke("score", unlabelled, "--save-state", state, "--format", "json")
    result = _invoke("merge", state, state, "--fail-if", "accuracy<0.5", code=2)
    assert "accuracy is not computed without labels or targets" in result.output
    merged = json.loads(_invoke("merge", state, state, "--format", "json").stdout)
    assert merged["metrics"]["rows"] == 1000 and merged["layout"]["targets"] == "none"


def test_the_table_shows_what_a_label_free_run_computes(unlabelled):
    report = streamdiv.evaluate(unlabelled, probs="probs", by="region")
    text = _invoke("score", unlabelled, "--by", "region", "--format", "table").stdout
    assert "accuracy" not in text and "ece" not in text
    assert "region  rows  prediction_entropy  mean_confidence" in text
    lines = text.splitlines()
    start = lines.index("class  predicted_class  mean_prediction")
    first = lines[start + 2].split()
    assert first == ["0", f"{report.distributions['predicted_class'][0]:.6f}",
                     f"{report.distributions['mean_prediction'][0]:.6f}"]
