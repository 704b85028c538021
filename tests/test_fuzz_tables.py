"""Fuzzing evaluate() with Arrow tables: random layouts, dtypes, nulls and bad values.

Each drawn table is scored with ``on_invalid="skip"`` and ``on_invalid="error"``.  What must hold:

- nothing escapes but streamdiv's documented errors (:class:`streamdiv.StreamdivError` and its subclasses);
- no metric is NaN (None or +inf are how a report says "undefined" and "infinite");
- rows read = rows + skipped_rows + ignored_rows;
- on the valid rows, cross-entropy, accuracy, rows and weight agree with ``reference.metrics`` to 1e-12;
- with ``"error"``, an :class:`streamdiv.InvalidRowError` is raised exactly when a row is bad, and it names
  the first bad row and a column at fault in it.

The fate of each row is known from how it was built (:class:`FuzzTable`), not from streamdiv.  Example
counts come from the profile in ``conftest.py`` (HYPOTHESIS_PROFILE=thorough runs more).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import reference
import streamdiv

LAYOUTS = ("list", "large_list", "fixed_size_list", "columns", "binary", "logits", "soft")
LABEL_TYPES = ("int8", "int32", "int64", "string")
IGNORE = -100
REFERENCE_REL = 1e-12
SMALLEST_NORMAL = np.finfo(np.float64).tiny


@dataclass
class FuzzTable:
    """A table, the evaluate() keywords that score it, and what each row is: bad (skipped, and the error's
    subject), ignored (its label is ignore_label) or valid, with the float64 values that reference.py takes."""

    table: pa.Table
    keywords: dict[str, Any]
    bad_columns: list[set[str]]  # per row, the columns whose value makes it bad (empty: not bad)
    ignored: np.ndarray
    p: np.ndarray  # rows x classes, reference distributions
    q: np.ndarray  # rows x classes, predictions
    log_q: np.ndarray | None
    top: np.ndarray | None
    weights: np.ndarray | None
    binary: bool

    @property
    def bad(self) -> np.ndarray:
        return np.array([bool(columns) for columns in self.bad_columns], dtype=bool) & ~self.ignored

    @property
    def valid(self) -> np.ndarray:
        return ~self.bad & ~self.ignored


def _softmax_rows(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return reference.softmax(rng.normal(0.0, 2.0, (n, k)))


def _spoil_distribution(rng: np.random.Generator, values: list, row: int, logits: bool) -> None:
    """Make row ``row`` of a list-of-floats column bad in one way."""
    ways = ["null list", "null element", "NaN", "+inf"]
    ways += ["all -inf"] if logits else ["negative", "above 1"]
    way = ways[rng.integers(len(ways))]
    if way == "null list":
        values[row] = None
        return
    k = len(values[row])
    if way == "all -inf":
        values[row] = [-math.inf] * k
        return
    values[row][rng.integers(k)] = {"null element": None, "NaN": math.nan, "+inf": math.inf,
                                    "negative": -0.25, "above 1": 1.5}[way]


@st.composite
def fuzz_tables(draw) -> FuzzTable:
    layout = draw(st.sampled_from(LAYOUTS), label="layout")
    n = draw(st.integers(1, 40), label="rows")
    binary = layout == "binary"
    k = 2 if binary else draw(st.sampled_from([2, 3, 7]), label="classes")
    label_type = "int64" if binary else draw(st.sampled_from(LABEL_TYPES), label="label type")
    fraction = draw(st.sampled_from([0.0, 0.1, 0.4]), label="bad fraction")
    use_weights = draw(st.booleans(), label="weights")
    use_groups = draw(st.booleans(), label="groups")
    use_ignore = label_type != "string" and layout != "soft" and draw(st.booleans(), label="ignore_label")
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1), label="seed"))
    spoiled = rng.random(n) < fraction
    bad_columns: list[set[str]] = [set() for _ in range(n)]
    columns: dict[str, pa.Array] = {}
    keywords: dict[str, Any] = {}

    # ---- the prediction
    log_q = top = None
    if layout == "binary":
        q1 = rng.random(n)
        exact = rng.random(n) < 0.1
        q1[exact] = rng.integers(0, 2, int(exact.sum()))  # some exact 0s and 1s: valid
        values: list = q1.tolist()
        for row in np.flatnonzero(spoiled & (rng.random(n) < 0.5)):
            values[row] = [None, math.nan, -0.25, 1.5, math.inf][rng.integers(5)]
            bad_columns[row].add("probs")
        columns["probs"] = pa.array(values, pa.float64())
        keywords["probs"] = "probs"
        q = np.stack([1.0 - q1, q1], axis=1)
    elif layout == "columns":
        dtype = draw(st.sampled_from([np.float64, np.float32]), label="dtype")
        q = _softmax_rows(rng, n, k).astype(dtype).astype(np.float64)
        per_class = [q[:, j].tolist() for j in range(k)]
        for row in np.flatnonzero(spoiled & (rng.random(n) < 0.5)):
            j = int(rng.integers(k))
            per_class[j][row] = [None, math.nan, -0.25, 1.5, math.inf][rng.integers(5)]
            bad_columns[row].add(f"p_{j}")
        arrow_type = pa.float32() if dtype == np.float32 else pa.float64()
        for j in range(k):
            columns[f"p_{j}"] = pa.array(per_class[j], arrow_type)
        keywords["probs"] = [f"p_{j}" for j in range(k)] if draw(st.booleans(), label="names") else "p_*"
    else:
        logits = layout == "logits"
        if logits:
            z = rng.normal(0.0, draw(st.sampled_from([1.0, 30.0]), label="logit scale"), (n, k))
            z[rng.random((n, k)) < 0.1] = -math.inf
            z[np.arange(n), rng.integers(0, k, n)] = rng.normal(0.0, 1.0, n)  # never a whole row of -inf
            q, log_q, top = reference.softmax(z), reference.log_softmax_rows(z), z.argmax(axis=1)
            stored = z
            arrow_float = pa.float64()
        else:
            float32 = layout != "soft" and draw(st.booleans(), label="float32")
            stored = _softmax_rows(rng, n, k)
            if float32:
                stored = stored.astype(np.float32).astype(np.float64)
            q = stored
            arrow_float = pa.float32() if float32 else pa.float64()
        values = stored.tolist()
        fixed = layout == "fixed_size_list" or (logits and draw(st.booleans(), label="fixed logits"))
        wrong_length = 0
        for row in np.flatnonzero(spoiled & (rng.random(n) < 0.5)):
            if not fixed and rng.random() < 0.25 and 3 * (wrong_length + 1) < n:
                values[row] = values[row] + [0.0] if rng.random() < 0.5 else values[row][:-1]
                wrong_length += 1
            else:
                _spoil_distribution(rng, values, row, logits)
            bad_columns[row].add("logits" if logits else "probs")
        list_type = {"large_list": pa.large_list(arrow_float)}.get(layout, pa.list_(arrow_float))
        if fixed:
            list_type = pa.list_(arrow_float, k)
        name = "logits" if logits else "probs"
        columns[name] = pa.array(values, list_type)
        keywords[name] = name
        # The number of classes is the common list length: wrong lengths must stay a minority of the lists
        # that have one (see columns._list_matrix), or the row counted as bad would be the wrong one.
        lengths = [len(v) for v in values if v is not None]
        assume(lengths.count(k) > max(lengths.count(k - 1), lengths.count(k + 1)))

    # ---- labels or soft targets
    if layout == "soft":
        targets = _softmax_rows(rng, n, k)
        targets[rng.random((n, k)) < 0.3] = 0.0
        targets[np.arange(n), rng.integers(0, k, n)] += 0.5
        targets /= targets.sum(axis=1, keepdims=True)
        p = targets
        values = targets.tolist()
        for row in np.flatnonzero(spoiled & (rng.random(n) < 0.5)):
            _spoil_distribution(rng, values, row, logits=False)
            bad_columns[row].add("target")
        columns["target"] = pa.array(values, pa.list_(pa.float64()))
        keywords["targets"] = "target"
        ignored = np.zeros(n, bool)
    else:
        labels = rng.integers(0, k, n)
        p = reference.one_hot(labels, k)
        values = labels.tolist()
        limit = {"int8": 127, "int32": 2 ** 31 - 1, "int64": 2 ** 40}.get(label_type, 0)
        for row in np.flatnonzero(spoiled & (rng.random(n) < 0.5)):
            values[row] = [None, -1, k, limit][rng.integers(4)] if label_type != "string" else \
                [None, "no such class"][rng.integers(2)]
            bad_columns[row].add("label")
        ignored = np.zeros(n, bool)
        if use_ignore:
            ignored = rng.random(n) < 0.15
            for row in np.flatnonzero(ignored):
                values[row] = IGNORE
            keywords["ignore_label"] = IGNORE
        if label_type == "string":
            names = [f"class {j}" for j in range(k)]
            values = [names[v] if isinstance(v, int) and 0 <= v < k else v for v in values]
            keywords["class_names"] = names
            columns["label"] = pa.array(values, pa.string())
        else:
            columns["label"] = pa.array(values, getattr(pa, label_type)())
        keywords["labels"] = "label"

    # ---- weights and groups
    weights = None
    if use_weights:
        weights = rng.exponential(1.0, n)
        weights[rng.random(n) < 0.2] = 0.0
        values = weights.tolist()
        for row in np.flatnonzero(spoiled & (rng.random(n) < 0.5)):
            values[row] = [None, math.nan, -1.0, math.inf][rng.integers(4)]
            bad_columns[row].add("w")
        columns["w"] = pa.array(values, pa.float64())
        keywords["weights"] = "w"
    if use_groups:
        columns["g"] = pa.array([["a", "b", None][i] for i in rng.integers(0, 3, n)])
        keywords["by"] = "g"
    table = pa.table(columns)
    return FuzzTable(table, keywords, bad_columns, ignored, p, q, log_q, top, weights, binary)


def _metric_values(report: streamdiv.Report):
    """(where, name, value) of every metric of the report: overall, each group and each calibration bin."""
    for name, value in report.metrics.items():
        yield "overall", name, value
    for group in report.groups:
        for name, value in group["metrics"].items():
            yield f"group {group['group']}", name, value
    for b, bin_metrics in enumerate(report.calibration):
        for name, value in bin_metrics.items():
            yield f"bin {b}", name, value


def _evaluate(fuzzed: FuzzTable, on_invalid: str) -> streamdiv.Report:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", streamdiv.StreamdivWarning)  # unnormalized rows, double softmax
        return streamdiv.evaluate(fuzzed.table, on_invalid=on_invalid, **fuzzed.keywords)


def _close(value: float | None, expected: float | None) -> bool:
    if value is None or expected is None:
        return value is expected
    return value == pytest.approx(expected, rel=0, abs=max(REFERENCE_REL * abs(expected), SMALLEST_NORMAL))


@given(fuzz_tables())
def test_skipping_scores_exactly_the_valid_rows(fuzzed: FuzzTable):
    report = _evaluate(fuzzed, "skip")
    m = report.metrics
    for where, name, value in _metric_values(report):
        assert not (isinstance(value, float) and math.isnan(value)), (where, name)
    assert report.rows_read == fuzzed.table.num_rows == m["rows"] + m["skipped_rows"] + m["ignored_rows"]
    assert m["skipped_rows"] == int(fuzzed.bad.sum())
    assert m["ignored_rows"] == int(fuzzed.ignored.sum())
    valid = fuzzed.valid
    expected = reference.metrics(
        fuzzed.p[valid], fuzzed.q[valid], None if fuzzed.weights is None else fuzzed.weights[valid],
        binary=fuzzed.binary, log_q=None if fuzzed.log_q is None else fuzzed.log_q[valid],
        top=None if fuzzed.top is None else fuzzed.top[valid])
    assert m["rows"] == expected["rows"]
    assert _close(m["weight"], expected["weight"]), (m["weight"], expected["weight"])
    for name in ("cross_entropy", "accuracy"):
        if expected["rows"] == 0 or expected["weight"] == 0:
            assert m[name] is None, name
        else:
            assert _close(m[name], expected[name]), (name, m[name], expected[name])


@given(fuzz_tables())
def test_an_error_names_the_first_bad_row(fuzzed: FuzzTable):
    bad = np.flatnonzero(fuzzed.bad)
    if not len(bad):
        report = _evaluate(fuzzed, "error")
        assert report.metrics["skipped_rows"] == 0
        return
    with pytest.raises(streamdiv.InvalidRowError) as caught:
        _evaluate(fuzzed, "error")
    error = caught.value
    first = int(bad[0])
    assert error.row == first, (str(error), fuzzed.bad_columns[first])
    assert error.path in str(error)
    named = {name for name in fuzzed.bad_columns[first]}
    assert any(name in str(error.column) for name in named) or (str(error.column) == "p_*" and
                                                                 any(n.startswith("p_") for n in named)), \
        (error.column, named)
