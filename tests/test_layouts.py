"""Every column layout, through evaluate() on Arrow data, against the same numbers from numpy arrays."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from conftest import make_hard, make_soft

import streamdiv

LOGITS, PROBS, LABELS = make_hard(n=500, num_classes=4, seed=11)
EXPECTED = streamdiv.Accumulator().update(probs=PROBS, labels=LABELS).report().metrics


def fixed(matrix, dtype=pa.float64()):
    flat = pa.array(np.ascontiguousarray(matrix).reshape(-1)).cast(dtype)
    return pa.FixedSizeListArray.from_arrays(flat, matrix.shape[1])


def variable(matrix, large=False, dtype=pa.float64()):
    offsets = pa.array(np.arange(0, matrix.size + 1, matrix.shape[1]), pa.int64() if large else pa.int32())
    flat = pa.array(matrix.reshape(-1)).cast(dtype)
    return (pa.LargeListArray if large else pa.ListArray).from_arrays(offsets, flat)


@pytest.mark.parametrize("column", [fixed(PROBS), variable(PROBS), variable(PROBS, large=True)],
                         ids=["fixed_size_list", "list", "large_list"])
def test_list_layouts(column):
    report = streamdiv.evaluate(pa.table({"probs": column, "label": LABELS}), probs="probs", labels="label",
                                batch_size=97)
    assert report.metrics == EXPECTED


def test_wide_columns_by_list_and_by_glob():
    table = pa.table({f"p_{c}": PROBS[:, i] for i, c in enumerate("wxyz")} | {"label": LABELS})
    by_list = streamdiv.evaluate(table, probs=["p_w", "p_x", "p_y", "p_z"], labels="label")
    by_glob = streamdiv.evaluate(table, probs="p_*", labels="label")
    assert by_list.metrics == EXPECTED and by_glob.metrics == EXPECTED
    assert by_glob.to_dict()["layout"]["classes"] == ["w", "x", "y", "z"]
    assert by_list.to_dict()["layout"]["classes"] == ["p_w", "p_x", "p_y", "p_z"]
    named = streamdiv.evaluate(table, probs="p_*", labels="label", class_names=["a", "b", "c", "d"])
    assert named.to_dict()["layout"]["classes"] == ["a", "b", "c", "d"]


def test_logit_layouts():
    expected = streamdiv.Accumulator().update(logits=LOGITS, labels=LABELS).report().metrics
    for column in (fixed(LOGITS), variable(LOGITS)):
        report = streamdiv.evaluate(pa.table({"z": column, "y": LABELS}), logits="z", labels="y")
        assert report.metrics == expected
    wide = pa.table({f"z{i}": LOGITS[:, i] for i in range(4)} | {"y": LABELS})
    assert streamdiv.evaluate(wide, logits="z*", labels="y").metrics == expected


@pytest.mark.parametrize("dtype", [pa.float16(), pa.float32(), pa.float64()])
def test_float_widths(dtype):
    column = fixed(PROBS, dtype)
    expected_probs = column.values.to_numpy(zero_copy_only=False).astype(np.float64).reshape(-1, 4)
    expected = streamdiv.Accumulator().update(probs=expected_probs, labels=LABELS).report().metrics
    report = streamdiv.evaluate(pa.table({"p": column, "y": LABELS}), probs="p", labels="y")
    assert report.metrics["cross_entropy"] == pytest.approx(expected["cross_entropy"], rel=1e-15)
    if dtype == pa.float16():
        # float16 rows sum to 1 within 3.1e-2 (sqrt of float16 eps): no row is flagged
        assert report.metrics["unnormalized_rows"] == 0


@pytest.mark.parametrize("label_type", [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint64()])
def test_integer_label_widths(label_type):
    table = pa.table({"p": fixed(PROBS), "y": pa.array(LABELS).cast(label_type)})
    assert streamdiv.evaluate(table, probs="p", labels="y").metrics == EXPECTED


def test_string_and_dictionary_labels():
    names = ["ant", "bee", "cat", "dog"]
    words = pa.array([names[i] for i in LABELS])
    for column in (words, words.dictionary_encode(), words.cast(pa.large_string())):
        table = pa.table({"p": fixed(PROBS), "y": column})
        report = streamdiv.evaluate(table, probs="p", labels="y", class_names=names)
        assert report.metrics == EXPECTED


def test_string_labels_without_class_names_is_a_clear_error():
    table = pa.table({"p": fixed(PROBS), "y": pa.array(["a"] * len(LABELS))})
    with pytest.raises(streamdiv.SchemaError, match="class_names"):
        streamdiv.evaluate(table, probs="p", labels="y")


def test_soft_target_layouts():
    targets, probs = make_soft(n=300, num_classes=3)
    expected = streamdiv.Accumulator().update(probs=probs, targets=targets).report().metrics
    table = pa.table({"q": fixed(probs), "t": variable(targets)} |
                     {f"t_{i}": targets[:, i] for i in range(3)})
    assert streamdiv.evaluate(table, probs="q", targets="t").metrics == expected
    assert streamdiv.evaluate(table, probs="q", targets="t_*").metrics == expected


@pytest.mark.parametrize("binary", [False, True])
def test_float32_targets_score_as_their_float64_values(binary):
    """Soft targets are read in their own float width (no float64 copy of the batch); the kernel widens each
    value, so float32 targets give the bits of the same values given as float64."""
    targets, probs = make_soft(n=3000, num_classes=4, seed=8)
    if binary:
        targets, probs = targets[:, 0], probs[:, 0]
    narrow = targets.astype(np.float32)
    for pred in (probs, probs.astype(np.float32)):
        as_float32 = streamdiv.Accumulator().update(probs=pred, targets=narrow).to_bytes()
        as_float64 = streamdiv.Accumulator().update(probs=pred, targets=narrow.astype(np.float64)).to_bytes()
        assert as_float32 == as_float64


def test_binary_layouts():
    rng = np.random.default_rng(12)
    p = rng.random(400)
    y = rng.random(400) < p
    expected = streamdiv.Accumulator().update(probs=p, labels=y.astype(int)).report().metrics
    for labels in (pa.array(y), pa.array(y.astype(np.int8)), pa.array(y.astype(np.int64))):
        report = streamdiv.evaluate(pa.table({"p": p, "y": labels}), probs="p", labels="y")
        assert report.metrics == expected
        assert report.to_dict()["layout"]["kind"] == "binary"
    two_column = streamdiv.evaluate(pa.table({"p": fixed(np.stack([1 - p, p], 1)), "y": y.astype(int)}),
                                    probs="p", labels="y")
    assert two_column.to_dict()["layout"]["kind"] == "multiclass"
    assert two_column.metrics["cross_entropy"] == pytest.approx(expected["cross_entropy"], rel=1e-12)


def test_weights_column():
    weights = np.random.default_rng(13).random(len(LABELS))
    expected = streamdiv.Accumulator().update(probs=PROBS, labels=LABELS, weights=weights).report().metrics
    table = pa.table({"p": fixed(PROBS), "y": LABELS, "w": weights})
    assert streamdiv.evaluate(table, probs="p", labels="y", weights="w").metrics == expected


def test_groups_single_and_multiple_columns():
    rng = np.random.default_rng(14)
    model = rng.choice(["m1", "m2"], len(LABELS))
    country = rng.choice(["fr", "de", "jp"], len(LABELS))
    table = pa.table({"p": fixed(PROBS), "y": LABELS, "model": model, "country": country})
    report = streamdiv.evaluate(table, probs="p", labels="y", by=["model", "country"], batch_size=64)
    assert report.metrics["rows"] == len(LABELS)
    assert report.metrics["cross_entropy"] == pytest.approx(EXPECTED["cross_entropy"], rel=1e-14)
    assert len(report.groups) == 6
    for group in report.groups:
        mask = (model == group["group"]["model"]) & (country == group["group"]["country"])
        alone = streamdiv.Accumulator().update(probs=PROBS[mask], labels=LABELS[mask]).report().metrics
        for name, value in alone.items():
            assert group["metrics"][name] == (pytest.approx(value, rel=1e-14) if value is not None else None)
    data = report.to_dict()
    assert data["by"] == ["model", "country"] and len(data["groups"]) == 6
    one = streamdiv.evaluate(table, probs="p", labels="y", by="model")
    assert sorted(g["group"]["model"] for g in one.groups) == ["m1", "m2"]


def test_groups_with_null_keys_and_numbers():
    table = pa.table({"p": [0.2, 0.8, 0.6], "y": [0, 1, 1], "g": pa.array([1, None, 1])})
    report = streamdiv.evaluate(table, probs="p", labels="y", by="g")
    assert {g["group"]["g"]: g["metrics"]["rows"] for g in report.groups} == {1: 2, None: 1}


def test_accumulator_takes_arrow_arrays_and_mapping_groups():
    accumulator = streamdiv.Accumulator()
    accumulator.update(probs=fixed(PROBS), labels=pa.array(LABELS), groups={"half": np.arange(500) < 250})
    report = accumulator.report()
    assert report.metrics["rows"] == 500
    for name in ("cross_entropy", "accuracy", "brier", "ece", "js_divergence"):
        assert report.metrics[name] == pytest.approx(EXPECTED[name], rel=1e-14), name
    assert {tuple(g["group"].values()) for g in report.groups} == {(True,), (False,)}
