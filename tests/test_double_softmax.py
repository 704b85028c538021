"""The double-softmax trap: rows that look softmaxed twice are counted in ``double_softmax_rows``, a run made
mostly of them warns (evaluate() and the command line), and probabilities refused for values outside [0, 1]
say when they look like logits."""

from __future__ import annotations

import math
import warnings

import mpmath
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from reference import double_softmax_rows, softmax

import streamdiv
from streamdiv.cli import main
from streamdiv.columns import row_sum_tolerance

TOLERANCE = row_sum_tolerance(np.dtype(np.float64))  # 3.45e-4, as for float32


def _model(n: int, classes: int, seed: int, spread: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(logits N(0, spread^2), their softmax, labels drawn from it): a healthy model."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, spread, (n, classes))
    probs = softmax(logits)
    labels = (rng.random(n)[:, None] < probs.cumsum(axis=1)).argmax(axis=1)
    return logits, probs, labels


def _table(labels: np.ndarray, **columns: np.ndarray) -> pa.Table:
    arrays = {name: pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
              for name, values in columns.items()}
    return pa.table({**arrays, "y": labels})


def _count(metrics: str = "all", **inputs) -> int:
    return streamdiv.Accumulator(metrics=metrics).update(**inputs).report().metrics["double_softmax_rows"]


def _no_warnings(call):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return call()


@pytest.mark.parametrize("classes", [3, 10, 100])
def test_softmax_applied_twice_is_counted_and_warned(classes):
    _, probs, labels = _model(2000, classes, seed=classes)
    twice = softmax(probs)
    expected = double_softmax_rows(twice, logits=False, tolerance=TOLERANCE)
    assert expected >= 0.99 * len(twice)  # every row but those of a (nearly) one-hot first softmax
    with pytest.warns(streamdiv.StreamdivWarning,
                      match=f"{expected:,} of 2,000 scored rows look like softmax applied twice .* pass the "
                            r"model's logits with logits= \(--logits\)"):
        report = streamdiv.evaluate(_table(labels, p=twice), probs="p", labels="y")
    assert report.metrics["double_softmax_rows"] == expected
    assert report.warnings == [report.warnings[0]] and "softmax applied twice" in report.warnings[0]


@pytest.mark.parametrize("classes", [3, 10, 100, 1000])
def test_a_healthy_model_is_rarely_counted_and_never_warned(classes):
    """Softmax of N(0, 2^2) logits: max/min <= e needs every logit of a row within 1 of each other, which
    happens in 6.6% of rows at K = 3, 0.3% at K = 5 and never from K = 10 on (the logits' range grows with K;
    measured on 20,000 rows).  Only a model whose logits spread less than about 0.25 (near-uniform predictions)
    is as flat as a double softmax, and is then counted: indistinguishable from one."""
    _, probs, labels = _model(2000, classes, seed=100 + classes)
    report = _no_warnings(lambda: streamdiv.evaluate(_table(labels, p=probs), probs="p", labels="y"))
    counted = report.metrics["double_softmax_rows"]
    assert counted == double_softmax_rows(probs, logits=False, tolerance=TOLERANCE)
    assert counted <= {3: 0.09, 10: 0.0, 100: 0.0, 1000: 0.0}[classes] * 2000
    assert report.warnings == []
    _, flat, flat_labels = _model(500, 10, seed=7, spread=0.1)
    assert _count(probs=flat, labels=flat_labels) == 500


def test_a_uniform_prediction_is_not_counted_as_probabilities_but_is_as_logits():
    """A row of one value (the uniform baseline) is left out for probabilities; passed as logits it is still
    a distribution handed over to be softmaxed."""
    uniform = np.full((300, 10), 0.1)
    labels = np.arange(300) % 10
    assert _no_warnings(lambda: _count(probs=uniform, labels=labels)) == 0
    assert _count("loss", probs=uniform, labels=labels) is None  # the loss pass does not look (see below)
    assert _count(probs=uniform, targets=uniform) == 0
    assert _count(logits=uniform, labels=labels) == 300


def test_probabilities_passed_as_logits_are_counted_and_warned():
    _, probs, labels = _model(1000, 10, seed=3)
    with pytest.warns(streamdiv.StreamdivWarning,
                      match=r"1,000 of 1,000 scored rows look like probabilities passed as logits .* pass them as "
                            r"probabilities with probs= \(--probs\)"):
        report = streamdiv.evaluate(_table(labels, z=probs), logits="z", labels="y")
    assert report.metrics["double_softmax_rows"] == 1000
    assert _count(logits=probs.astype(np.float32), labels=labels) == 1000  # float32 sums within 3.45e-4


def test_logits_in_the_unit_interval_that_do_not_sum_to_one_are_not_counted():
    rng = np.random.default_rng(4)
    logits = rng.random((1000, 10))  # every logit in [0, 1], sums about 5
    labels = rng.integers(0, 10, 1000)
    assert _no_warnings(lambda: _count(logits=logits, labels=labels)) == 0
    off = softmax(logits) * (1.0 + 2 * TOLERANCE)  # a distribution but for a sum off 1 by twice the tolerance
    assert _count(logits=off, labels=labels) == 0
    assert _count(logits=off / (1.0 + 2 * TOLERANCE), labels=labels) == 1000


def test_fewer_than_100_rows_do_not_warn():
    _, probs, labels = _model(99, 10, seed=5)
    report = _no_warnings(lambda: streamdiv.evaluate(_table(labels, p=softmax(probs)), probs="p", labels="y"))
    assert report.metrics["double_softmax_rows"] == 99 and report.warnings == []
    _, probs, labels = _model(100, 10, seed=5)
    with pytest.warns(streamdiv.StreamdivWarning, match="100 of 100 scored rows"):
        streamdiv.evaluate(_table(labels, p=softmax(probs)), probs="p", labels="y")


def test_fewer_than_95_percent_of_the_rows_do_not_warn():
    _, probs, labels = _model(1000, 10, seed=6)
    mixed = np.where((np.arange(1000) < 940)[:, None], softmax(probs), probs)
    report = _no_warnings(lambda: streamdiv.evaluate(_table(labels, p=mixed), probs="p", labels="y"))
    assert report.metrics["double_softmax_rows"] == 940 and report.warnings == []


def _mp_softmax(values: list, digits: int = 50) -> list:
    with mpmath.workdps(digits):
        exponentials = [mpmath.exp(mpmath.mpf(v)) for v in values]
        total = mpmath.fsum(exponentials)
        return [e / total for e in exponentials]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("classes", [3, 10, 1000])
def test_the_edge_max_over_min_equal_to_e_is_counted_and_just_past_it_is_not(classes, dtype):
    """softmax([1, 0, ..., 0]) has max/min = e exactly; rounded to the storage dtype it lies within a few ulps
    of e, inside the allowance of e (1 + 3.45e-4).  A row with max/min = e (1 + 2 x 3.45e-4) is not counted."""
    inside = [float(q) for q in _mp_softmax([1] + [0] * (classes - 1))]
    gap = 1 + mpmath.log(1 + 2 * mpmath.mpf(TOLERANCE))
    outside = [float(q) for q in _mp_softmax([gap] + [0] * (classes - 1))]
    rows = np.array([inside, outside] * 60, dtype=dtype)  # 120 rows: enough to warn, if 95% were counted
    assert abs(float(rows[0].max()) / float(rows[0].min()) / math.e - 1) < 1e-6
    labels = np.zeros(len(rows), dtype=np.int64)
    assert double_softmax_rows(rows, logits=False, tolerance=TOLERANCE) == 60
    assert _count(probs=rows, labels=labels) == 60
    assert _count(probs=rows, targets=softmax(np.zeros_like(rows, dtype=np.float64)).astype(dtype)) == 60
    assert streamdiv.Accumulator(renormalize=True).update(probs=rows, labels=labels).report().metrics[
        "double_softmax_rows"] == 60


def test_every_path_counts_the_same_rows_as_the_reference():
    """Probabilities (scalar K <= 16 and SIMD rows), renormalized rows, soft targets, logits
    (both row widths) and soft targets against logits; two classes and one binary column count none."""
    rng = np.random.default_rng(8)
    for classes in (2, 3, 10, 40):
        _, probs, labels = _model(3000, classes, seed=classes)
        mixed = np.where((rng.random(3000) < 0.5)[:, None], softmax(probs), probs)
        expected = double_softmax_rows(mixed, logits=False, tolerance=TOLERANCE)
        assert (expected == 0) == (classes == 2)
        targets = softmax(rng.normal(0.0, 1.0, (3000, classes)))
        assert _count(probs=mixed, labels=labels) == expected
        assert _count("loss", probs=mixed, labels=labels) is None  # the loss pass stays as light as it was
        assert _count(probs=mixed, targets=targets) == expected
        assert streamdiv.Accumulator(renormalize=True).update(probs=mixed * 0.5, labels=labels).report().metrics[
            "double_softmax_rows"] == double_softmax_rows(mixed * 0.5, logits=False, tolerance=TOLERANCE)
        logits = np.where((rng.random(3000) < 0.5)[:, None], probs, np.log(probs))
        expected_logits = double_softmax_rows(logits, logits=True, tolerance=TOLERANCE)
        assert 1000 < expected_logits < 2000
        assert _count(logits=logits, labels=labels) == expected_logits
        assert _count(logits=logits, targets=targets) == expected_logits
    binary = rng.random(500)
    assert _count(probs=binary, labels=(binary > 0.5).astype(int)) == 0
    assert _count(probs=binary, targets=binary) == 0


def test_groups_and_merges_count_each_groups_rows():
    _, probs, labels = _model(40_000, 10, seed=9)  # more than two 16,384-row blocks
    twice = np.where((np.arange(40_000) % 3 == 0)[:, None], softmax(probs), probs)
    groups = np.random.default_rng(10).integers(0, 4, 40_000)
    whole = streamdiv.Accumulator().update(probs=twice, labels=labels, groups=groups)
    halves = [streamdiv.Accumulator().update(probs=twice[part], labels=labels[part], groups=groups[part])
              for part in (slice(0, 17_000), slice(17_000, None))]
    merged = (halves[0] + halves[1]).report()
    restored = streamdiv.Accumulator.from_bytes(halves[0].to_bytes()).merge(halves[1]).report()
    expected = double_softmax_rows(twice, logits=False, tolerance=TOLERANCE)
    assert expected == sum(np.arange(40_000) % 3 == 0)
    for report in (whole.report(), merged, restored):
        assert report.metrics["double_softmax_rows"] == expected
        by_group = {g["group"]["group"]: g["metrics"]["double_softmax_rows"] for g in report.groups}
        assert by_group == {g: double_softmax_rows(twice[groups == g], logits=False, tolerance=TOLERANCE)
                            for g in range(4)}


def test_the_warning_is_worded_for_what_was_merged():
    _, probs, labels = _model(200, 10, seed=11)
    as_probs = streamdiv.Accumulator().update(probs=softmax(probs), labels=labels)
    as_logits = streamdiv.Accumulator().update(logits=probs, labels=labels)
    assert "softmax applied twice" in as_probs.report().warnings[0]
    assert "probabilities passed as logits" in as_logits.report().warnings[0]
    for unknown in (as_probs + as_logits, streamdiv.Accumulator.from_bytes(as_probs.to_bytes())):
        (message,) = unknown.report().warnings
        assert "look softmaxed twice" in message and "probs= (--probs)" in message and "logits= (--logits)" in message
    assert "softmax applied twice" in (streamdiv.Accumulator() + as_probs).report().warnings[0]


def test_the_command_line_warns_on_one_stderr_line_and_fails_if_asked(tmp_path):
    _, probs, labels = _model(1000, 10, seed=12)
    path = tmp_path / "twice.parquet"
    pq.write_table(_table(labels, p=softmax(probs).astype(np.float32)), path)
    result = CliRunner().invoke(main, ["score", str(path), "--probs", "p", "--labels", "y", "--format", "json",
                                       "--fail-if", "double_softmax_rows>0"])
    assert result.exit_code == 1, (result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if "warning" in line]
    assert lines == ["streamdiv: warning: 1,000 of 1,000 scored rows look like softmax applied twice (the largest "
                     "probability at most e times the smallest, as softmax of values in [0, 1] gives): pass the "
                     "model's logits with logits= (--logits), or its probabilities with softmax applied once"]
    assert "'double_softmax_rows>0' holds" in result.stderr
    path = tmp_path / "as_logits.parquet"
    pq.write_table(_table(labels, z=probs), path)
    result = CliRunner().invoke(main, ["score", str(path), "--logits", "z", "--labels", "y", "--format", "json"])
    assert result.exit_code == 0
    assert "streamdiv: warning: 1,000 of 1,000 scored rows look like probabilities passed as logits" in result.stderr


def test_probabilities_refused_as_outside_the_unit_interval_say_when_they_look_like_logits(tmp_path):
    logits, _, labels = _model(300, 10, seed=13)
    path = tmp_path / "logits.parquet"
    pq.write_table(_table(labels, p=logits), path)
    with pytest.raises(streamdiv.InvalidRowError) as caught:
        streamdiv.evaluate(str(path), probs="p", labels="y")
    message = str(caught.value)
    assert message.startswith(f"{path}: row 0, column 'p': the value {logits[0].tolist()!r} holds a probability "
                              f"outside [0, 1] (299 more bad rows in this batch). These look like logits: pass them "
                              f"with logits= (--logits). Fix the data, or skip and count such rows with "
                              f"on_invalid='skip' (--on-invalid skip).")
    result = CliRunner().invoke(main, ["score", str(path), "--probs", "p", "--labels", "y"])
    assert result.exit_code == 3 and "These look like logits: pass them with logits= (--logits)." in result.stderr


@pytest.mark.parametrize("row, looks_like_logits", [
    ([0.5, 0.6, -0.1], True),  # a distribution's sum, but a negative value beyond rounding
    ([2.0, 0.5, 0.5], True),
    ([0.0, 1.0 + 1e-9, 0.0], False),  # outside [0, 1] by rounding: a probability row gone wrong
    ([-1e-9, 0.5, 0.5], False),
    ([math.nan, 2.0, 0.5], False),  # NaN: its own message
    ([math.inf, 0.5, 0.5], False),
])
def test_the_logits_hint_needs_finite_values_beyond_rounding_of_the_unit_interval(row, looks_like_logits):
    probs = np.array([[0.2, 0.3, 0.5], row])
    with pytest.raises(streamdiv.InvalidRowError) as caught:
        streamdiv.Accumulator().update(probs=probs, labels=np.array([0, 1]))
    assert ("These look like logits" in str(caught.value)) == looks_like_logits
    assert "Fix the data" in str(caught.value) and caught.value.row == 1
