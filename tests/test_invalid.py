"""Bad input: a clear error naming file, row, column and value, or a count when skipping. No row is lost."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import streamdiv
from row_accounting import assert_rows_add_up

GOOD = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.2, 0.2, 0.6]])
LABELS = np.array([0, 1, 2, 2])


def accumulate(on_invalid="skip", **kwargs):
    options = {key: kwargs.pop(key) for key in ("eps", "renormalize", "ignore_label") if key in kwargs}
    report = streamdiv.Accumulator(on_invalid=on_invalid, **options).update(**kwargs).report()
    assert_rows_add_up(report, len(kwargs["probs"] if "probs" in kwargs else kwargs["logits"]))
    return report


def good_rows(mask):
    return streamdiv.Accumulator().update(probs=GOOD[mask], labels=LABELS[mask]).report().metrics


@pytest.mark.parametrize("row, value, reason", [
    (np.nan, None, "NaN"), (1.5, None, "outside"), (-0.1, None, "outside"),
])
def test_bad_probabilities(row, value, reason):
    probs = GOOD.copy()
    probs[2, 1] = row
    with pytest.raises(streamdiv.InvalidRowError, match=reason) as caught:
        accumulate("error", probs=probs, labels=LABELS)
    assert caught.value.row == 2 and caught.value.column == "prediction"
    report = accumulate(probs=probs, labels=LABELS)
    assert report.metrics["skipped_rows"] == 1 and report.metrics["rows"] == 3
    assert report.metrics["cross_entropy"] == good_rows(np.array([1, 1, 0, 1], bool))["cross_entropy"]


@pytest.mark.parametrize("label", [3, -1, -100, 2 ** 40])
def test_labels_out_of_range_never_read_stray_memory(label):
    labels = LABELS.copy()
    labels[1] = label
    with pytest.raises(streamdiv.InvalidRowError, match=r"class index") as caught:
        accumulate("error", probs=GOOD, labels=labels)
    assert caught.value.value == label
    assert accumulate(probs=GOOD, labels=labels).metrics["skipped_rows"] == 1


def test_bad_logits():
    logits = np.log(GOOD)
    logits[0, 0] = np.inf
    logits[1] = -np.inf
    logits[2, 2] = np.nan
    report = accumulate(logits=logits, labels=LABELS)
    assert report.metrics["skipped_rows"] == 3 and report.metrics["rows"] == 1
    with pytest.raises(streamdiv.InvalidRowError, match=r"\+inf logit"):
        accumulate("error", logits=logits, labels=LABELS)
    masked = np.log(GOOD)
    masked[3, 0] = -np.inf  # one masked class is fine: q = 0 there, and 0 log 0 = 0
    assert accumulate("error", logits=masked, labels=LABELS).metrics["rows"] == 4


def test_weights_negative_nan_or_null():
    weights = pa.array([1.0, -2.0, None, np.nan])
    report = accumulate(probs=GOOD, labels=LABELS, weights=weights)
    assert report.metrics["skipped_rows"] == 3
    with pytest.raises(streamdiv.InvalidRowError, match="weights"):
        accumulate("error", probs=GOOD, labels=LABELS, weights=weights)


def test_error_names_file_row_column_and_value(tmp_path):
    probs = np.tile(GOOD, (500, 1))
    labels = np.tile(LABELS, 500)
    probs[1234, 0] = 7.0
    table = pa.table({"scores": pa.FixedSizeListArray.from_arrays(pa.array(probs.reshape(-1)), 3), "y": labels})
    path = tmp_path / "preds.parquet"
    pq.write_table(table, path, row_group_size=500)
    with pytest.raises(streamdiv.InvalidRowError) as caught:
        streamdiv.evaluate(path, probs="scores", labels="y", batch_size=100)
    error = caught.value
    assert (error.path, error.row, error.column) == (str(path), 1234, "scores")
    assert error.value == pytest.approx([7.0, 0.3, 0.4])  # row 1234 is a copy of GOOD[2]
    assert str(path) in str(error) and "row 1234" in str(error) and "'scores'" in str(error)
    assert "on_invalid='skip'" in str(error)
    skipped = streamdiv.evaluate(path, probs="scores", labels="y", on_invalid="skip", batch_size=100)
    assert skipped.metrics["skipped_rows"] == 1 and assert_rows_add_up(skipped, 2000) == {"prediction_out_of_range": 1}


def test_null_list_rows_do_not_misalign_labels():
    # flatten() would drop the null row and shift every later row's probabilities onto the wrong label
    rows = [list(GOOD[0]), None, list(GOOD[2]), list(GOOD[3])]
    for kind in (pa.list_(pa.float64()), pa.list_(pa.float64(), 3), pa.large_list(pa.float64())):
        report = accumulate(probs=pa.array(rows, kind), labels=LABELS)
        assert report.metrics["skipped_rows"] == 1
        assert report.metrics["cross_entropy"] == good_rows(np.array([1, 0, 1, 1], bool))["cross_entropy"]
        with pytest.raises(streamdiv.InvalidRowError, match="row 1.*is null"):
            accumulate("error", probs=pa.array(rows, kind), labels=LABELS)


def test_null_inside_a_list_and_wrong_lengths():
    rows = [[0.7, 0.2, 0.1], [0.1, None, 0.9], [0.3, 0.7], [0.2, 0.2, 0.6]]
    report = accumulate(probs=pa.array(rows, pa.list_(pa.float64())), labels=LABELS)
    assert report.metrics["skipped_rows"] == 2 and report.metrics["rows"] == 2
    short_last = pa.array([rows[0], rows[3], rows[2]], pa.list_(pa.float64()))
    with pytest.raises(streamdiv.InvalidRowError, match="row 2.*one value per class"):
        streamdiv.Accumulator(num_classes=3).update(probs=short_last, labels=LABELS[:3])


def test_integer_labels_with_nulls():
    labels = pa.array([0, None, 2, 2], pa.int32())
    report = accumulate(probs=GOOD, labels=labels)
    assert report.metrics["skipped_rows"] == 1
    assert report.metrics["cross_entropy"] == good_rows(np.array([1, 0, 1, 1], bool))["cross_entropy"]


def test_sliced_arrow_arrays_respect_their_offset():
    probs = pa.FixedSizeListArray.from_arrays(pa.array(GOOD.reshape(-1)), 3)
    labels = pa.array(LABELS)
    for kind in (None, pa.list_(pa.float64())):
        column = probs if kind is None else probs.cast(kind)
        report = accumulate("error", probs=column.slice(1, 3), labels=labels.slice(1, 3))
        assert report.metrics["cross_entropy"] == good_rows(np.array([0, 1, 1, 1], bool))["cross_entropy"]


def test_unknown_string_label():
    table = pa.table({"p_a": GOOD[:, 0], "p_b": GOOD[:, 1], "p_c": GOOD[:, 2], "y": ["a", "b", "zebra", "c"]})
    with pytest.raises(streamdiv.InvalidRowError, match="'zebra' is not one of the class names"):
        streamdiv.evaluate(table, probs="p_*", labels="y")
    skipped = streamdiv.evaluate(table, probs="p_*", labels="y", on_invalid="skip")
    assert skipped.metrics["skipped_rows"] == 1 and assert_rows_add_up(skipped, 4) == {"unknown_label": 1}


def test_ignore_label_is_counted_apart():
    labels = np.array([0, -100, 2, -100])
    report = accumulate("error", probs=GOOD, labels=labels, ignore_label=-100)
    m = report.metrics
    assert (m["rows"], m["ignored_rows"], m["skipped_rows"]) == (2, 2, 0)
    assert report.rows_read == 4
    assert m["cross_entropy"] == good_rows(np.array([1, 0, 1, 0], bool))["cross_entropy"]


def test_zero_probability_on_the_true_class_is_inf_never_nan():
    probs = GOOD.copy()
    probs[1] = [0.5, 0.0, 0.5]
    report = accumulate("error", probs=probs, labels=LABELS)
    m = report.metrics
    assert m["cross_entropy"] == math.inf and m["kl_divergence"] == math.inf and m["infinite_rows"] == 1
    assert m["perplexity"] == math.inf
    assert not any(isinstance(v, float) and math.isnan(v) for v in m.values())
    data = json.loads(report.to_json())
    assert data["metrics"]["cross_entropy"] == "inf"
    assert "Infinity" not in report.to_json() and "NaN" not in report.to_json()


def test_eps_clips_and_counts():
    probs = GOOD.copy()
    probs[1] = [0.5, 0.0, 0.5]
    m = accumulate("error", probs=probs, labels=LABELS, eps=1e-7).metrics
    assert m["clipped_rows"] == 1 and m["infinite_rows"] == 0
    expected = -(math.log(0.7) + math.log(1e-7) + math.log(0.4) + math.log(0.6)) / 4
    assert m["cross_entropy"] == pytest.approx(expected, rel=1e-15)


def test_unnormalized_rows_warn_and_count_and_renormalize_fixes():
    probs = GOOD.copy()
    probs[0] = [0.7, 0.2, 0.2]  # sums to 1.1
    table = pa.table({"p": pa.FixedSizeListArray.from_arrays(pa.array(probs.reshape(-1)), 3), "y": LABELS})
    with pytest.warns(streamdiv.StreamdivWarning, match="1 rows have probabilities that do not sum to 1"):
        report = streamdiv.evaluate(table, probs="p", labels="y")
    assert report.metrics["unnormalized_rows"] == 1
    assert report.metrics["cross_entropy"] == pytest.approx(
        -(math.log(0.7) + math.log(0.8) + math.log(0.4) + math.log(0.6)) / 4, rel=1e-15)
    with pytest.warns(streamdiv.StreamdivWarning):
        fixed = streamdiv.evaluate(table, probs="p", labels="y", renormalize=True)
    assert fixed.metrics["cross_entropy"] == pytest.approx(
        -(math.log(0.7 / 1.1) + math.log(0.8) + math.log(0.4) + math.log(0.6)) / 4, rel=1e-15)


def test_float32_softmax_rows_are_not_flagged():
    rng = np.random.default_rng(30)
    z = rng.normal(0, 3, (2000, 1000)).astype(np.float32)
    probs = np.exp(z - z.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)  # float32 softmax: row sums off by ~1e-7
    m = streamdiv.Accumulator().update(probs=probs, labels=rng.integers(0, 1000, 2000)).report().metrics
    assert m["unnormalized_rows"] == 0


def test_rows_read_always_adds_up():
    probs = GOOD.copy()
    probs[0, 0] = np.nan
    labels = np.array([0, -100, 5, 1])
    report = accumulate(probs=probs, labels=labels, ignore_label=-100)
    m = report.metrics
    assert m["rows"] + m["skipped_rows"] + m["ignored_rows"] == 4 == report.rows_read


def test_bad_arguments():
    with pytest.raises(streamdiv.StreamdivError, match="on_invalid"):
        streamdiv.Accumulator(on_invalid="ignore")
    with pytest.raises(streamdiv.StreamdivError, match="base"):
        streamdiv.Accumulator(base=3)
    with pytest.raises(streamdiv.StreamdivError, match="eps"):
        streamdiv.Accumulator(eps=0.0)
    with pytest.raises(streamdiv.SchemaError, match="exactly one of probs"):
        streamdiv.Accumulator().update(labels=LABELS)
    with pytest.raises(streamdiv.StreamdivError, match="classes"):
        streamdiv.Accumulator().update(probs=GOOD, labels=LABELS).update(probs=GOOD[:, :2], labels=LABELS)
