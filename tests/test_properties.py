"""Hypothesis properties: batches, merges, saved states, row counts, identities and the reference.

The problems come from ``strategies.py``: every layout (hard labels, logits, soft targets, binary rows),
weights with zeros, groups mixed and in runs, eps, ignore_label and invalid rows skipped, over streams that
cross the 16,384-row compensation blocks.  Example counts come from the profile in ``conftest.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from row_accounting import assert_rows_add_up
from strategies import HARD_KINDS, Problem, batch_cuts, problems

import streamdiv
from streamdiv.metrics import METRIC_SETS

COUNT_METRICS = tuple(metric.name for metric in streamdiv.METRICS if metric.kind == "count")


def groups_of(report: streamdiv.Report) -> dict[tuple, dict]:
    return {tuple(group["group"].values()): group["metrics"] for group in report.groups}


def assert_metrics_close(got: dict, want: dict, rel: float, where: str = "overall") -> None:
    """Counts, None and infinities exactly; other values to ``rel`` (a zero must stay a zero)."""
    assert got.keys() == want.keys()
    for name, value in want.items():
        if value is None or name in COUNT_METRICS or math.isinf(value):
            assert got[name] == value, (where, name)
        else:
            assert got[name] == pytest.approx(value, rel=rel, abs=0), (where, name)


def assert_reports_close(got: streamdiv.Report, want: streamdiv.Report, rel: float) -> None:
    assert got.rows_read == want.rows_read
    assert_metrics_close(got.metrics, want.metrics, rel)
    assert len(got.calibration) == len(want.calibration)
    for b, (mine, theirs) in enumerate(zip(got.calibration, want.calibration)):
        assert_metrics_close(mine, theirs, rel, f"bin {b}")
    mine, theirs = groups_of(got), groups_of(want)
    assert mine.keys() == theirs.keys()
    for key, metrics in theirs.items():
        assert_metrics_close(mine[key], metrics, rel, f"group {key}")


# ---- batches, merges and saved states


@given(problems(), st.data())
def test_batch_cuts_do_not_change_a_bit(problem: Problem, data):
    cuts = data.draw(batch_cuts(problem.n), label="cuts")
    whole = problem.accumulate()
    chunked = problem.accumulate(cuts)
    assert chunked.to_bytes() == whole.to_bytes()
    assert chunked.report().to_dict() == whole.report().to_dict()


@given(problems(), st.data())
def test_rows_read_are_evaluated_plus_skipped_plus_ignored(problem: Problem, data):
    """Every row fed is counted once: evaluated, skipped (invalid) or ignored (ignore_label), overall and in
    each group; the rows of each kind are the ones the problem made so."""
    accumulator = problem.accumulate(data.draw(batch_cuts(problem.n), label="cuts"))
    report = accumulator.report()
    m = report.metrics
    assert accumulator.rows == report.rows_read == problem.n
    assert_rows_add_up(report, problem.n)
    assert (m["rows"], m["skipped_rows"], m["ignored_rows"]) == (
        int(problem.valid.sum()), int(problem.bad.sum()), int(problem.ignored.sum()))
    if problem.groups is not None:
        counted = groups_of(report)
        assert set(counted) == {(value,) for value in np.unique(problem.groups).tolist()}
        for (value,), group in counted.items():
            rows = problem.groups == value
            assert (group["rows"], group["skipped_rows"], group["ignored_rows"]) == (
                int((problem.valid & rows).sum()), int((problem.bad & rows).sum()),
                int((problem.ignored & rows).sum())), value


# Merging closes the open blocks of both states and adds their sums: the result differs from one pass by
# rounding only.  1e-12 leaves room for that rounding in metrics derived by cancellation (ECE's gaps, KL's
# signed terms), while a lost or doubled row (a change of 1 in 40,000) is far outside it.
MERGE_REL = 1e-12


@st.composite
def three_parts(draw):
    problem = draw(problems())
    cut1, cut2 = sorted(draw(st.lists(st.integers(0, problem.n), min_size=2, max_size=2)))
    return problem, cut1, cut2


@given(three_parts())
def test_merge_commutes_and_associates(parts):
    problem, cut1, cut2 = parts
    a = problem.accumulate(lo=0, hi=cut1)
    b = problem.accumulate(lo=cut1, hi=cut2)
    c = problem.accumulate(lo=cut2)
    one_pass = problem.accumulate().report()
    ab, ba = (a + b).report(), (b + a).report()
    assert_reports_close(ba, ab, MERGE_REL)
    left, right = ((a + b) + c).report(), (a + (b + c)).report()
    assert_reports_close(right, left, MERGE_REL)
    assert_reports_close(left, one_pass, MERGE_REL)
    assert a.rows + b.rows + c.rows == ((a + b) + c).rows == problem.n  # a + b leaves both alone


@given(problems(), st.data())
def test_state_bytes_round_trip_and_resume(problem: Problem, data):
    """A state saved anywhere (inside a block too) reads back to the same bytes and report, and resumes to
    the bytes of one pass."""
    cut = data.draw(st.integers(0, problem.n), label="cut")
    first = problem.accumulate(lo=0, hi=cut)
    saved = first.to_bytes()
    restored = streamdiv.Accumulator.from_bytes(saved, on_invalid="skip",
                                                ignore_label=problem.options["ignore_label"])
    assert restored.to_bytes() == saved
    assert restored.report().to_dict() == first.report().to_dict()
    assert restored.rows == first.rows == cut
    problem.accumulate(lo=cut, into=restored)
    assert restored.to_bytes() == problem.accumulate().to_bytes()


def test_empty_accumulator_is_the_identity_of_merge():
    probs = np.array([[0.2, 0.8], [0.6, 0.4]])
    filled = streamdiv.Accumulator().update(probs=probs, labels=np.array([1, 0]))
    before = filled.report().to_dict()
    assert (streamdiv.Accumulator() + filled).report().to_dict() == before
    assert (filled + streamdiv.Accumulator()).report().to_dict() == before
    assert filled.report().to_dict() == before  # a + b leaves both alone


@given(problems(metric_sets=("all",)))
def test_the_loss_metrics_have_the_bits_of_the_full_pass(problem: Problem):
    full = problem.accumulate().report()
    loss = Problem(**{**problem.__dict__, "options": problem.options | {"metrics": "loss"}}).accumulate().report()
    assert {name: loss.metrics[name] for name in METRIC_SETS["loss"]} == {
        name: full.metrics[name] for name in METRIC_SETS["loss"]}
    assert all(loss.metrics[name] is None for name in streamdiv.METRIC_NAMES if name not in METRIC_SETS["loss"])


# ---- agreement with reference.py

# Per-row terms agree to a few ulp (vectorised log within 1 ulp, compensated sums against numpy's pairwise
# ones), so each metric is compared to 1e-12 of the scale of the terms it is made of.  That is its own size,
# except for two kinds.  Metrics made of terms that cancel (KL of soft rows: p log p against p log q; JS) lose
# relative accuracy when the result is much smaller than the terms: their scale is the cross-entropy's, and
# at least one nat.
# Metrics in probability units (Brier, the calibration gaps) are made of probabilities, which float64 holds
# to 1e-16 absolute near 1: q = 1 - 4e-15 from a confident logit is good to 1%, so (1 - q)^2 is too, in the
# kernel and in reference.py alike; their scale is 1.
# Below all that, the kernels' exp gives 0 where exp(x) would be subnormal (elementary.EXP_UNDERFLOW): a term
# under the smallest normal double, 2.2e-308 (the cross-entropy of a logit row 713 nats sure of its label), is
# 0 there, so a mean is good to that much and no better.
REFERENCE_REL = 1e-12
SMALLEST_NORMAL = float(np.finfo(np.float64).tiny)
ENTROPY_SCALED = ("kl_divergence", "entropy", "js_divergence", "reverse_kl_divergence", "prediction_entropy")
PROBABILITY_SCALED = ("brier", "ece", "mce")


def assert_matches_reference(got: dict, want: dict, metric_set: str, where: str) -> None:
    computed = METRIC_SETS[metric_set]
    for name in streamdiv.METRIC_NAMES:
        value = got[name]
        if name not in computed:
            assert value is None, (where, name)
            continue
        if name not in want:  # cross_entropy_stderr: its own property below; reverse KL: soft targets only
            continue
        expected = want[name]
        if expected is None or name in COUNT_METRICS or math.isinf(expected):
            assert value == expected, (where, name, value, expected)
            continue
        scale = abs(expected)
        if name in ENTROPY_SCALED:
            scale = max(scale, want["cross_entropy_finite"] or 0.0, 1.0)
        elif name in PROBABILITY_SCALED:
            scale = max(scale, 1.0)
        tolerance = max(REFERENCE_REL * scale, SMALLEST_NORMAL)
        assert value == pytest.approx(expected, rel=0, abs=tolerance), (where, name, value, expected)


def assume_no_discontinuity_is_at_a_rounding(problem: Problem) -> None:
    """Logits are turned into Q twice, by the kernel and by reference.py, rounded differently: exclude the
    streams with a row that this rounding could put on the other side of a step (a calibration bin edge, eps,
    1/2 for a binary prediction).  Probabilities given as such are the same floats on both sides."""
    if "logits" not in problem.columns:
        return
    q = problem.predicted_distribution()
    bins = problem.options["bins"]
    confidence = q[:, 1] if problem.kind.startswith("binary") else q.max(axis=1, initial=0.0)
    edges = np.arange(1, bins) / bins
    assume(not (np.abs(confidence[:, None] - edges[None, :]) < 1e-12).any())
    if problem.kind.startswith("binary"):
        assume(not (np.abs(q[:, 1] - 0.5) < 1e-12).any())
    eps = problem.options["eps"]
    if eps is not None:
        assume(not (np.abs(q - eps) < 1e-12 * eps).any())


@given(problems())
def test_every_metric_agrees_with_the_reference(problem: Problem):
    assume_no_discontinuity_is_at_a_rounding(problem)
    report = problem.accumulate().report()
    hard = problem.kind in HARD_KINDS
    if hard:  # P = 0 off the label: KL(Q||P) is not reported for hard labels
        assert report.metrics["reverse_kl_divergence"] is None
    scopes = [("overall", report.metrics, problem.reference())]
    for (value,), metrics in groups_of(report).items():
        scopes.append((f"group {value}", metrics, problem.reference(problem.groups == value)))
    for where, got, want in scopes:
        if hard:
            del want["reverse_kl_divergence"]
        assert_matches_reference(got, want, problem.options["metrics"], where)


@given(problems())
def test_cross_entropy_stderr_agrees_with_the_reference(problem: Problem):
    got = problem.accumulate().report().metrics["cross_entropy_stderr"]
    want = problem.reference_stderr()
    if want is None:  # no weight beyond one row, or an infinite row
        assert got is None
        return
    # The accumulator's variance is (sum w x^2 - (sum w x)^2 / W) / (W - 1): when the rows' cross-entropies
    # are nearly equal, that difference is rounding and the standard error has no correct digit (the
    # reference's variance is two-pass).  Such streams say nothing about the accumulation.
    x, w = problem.reference_cross_entropies()
    variance = want * want * w.sum()
    assume(variance > 1e-6 * (w * x * x).sum() / w.sum())
    assert got == pytest.approx(want, rel=1e-9, abs=0)


# ---- identities


@given(problems())
def test_kl_is_nonnegative_and_cross_entropy_is_entropy_plus_kl(problem: Problem):
    m = problem.accumulate().report().metrics
    assume(m["weight"] is not None and m["weight"] > 0)  # no evaluated weight: every mean is None
    # H(P,Q) = H(P) + KL(P||Q) is an identity of finite numbers: inf = x + inf says nothing
    assume(m["cross_entropy"] != math.inf)
    # Gibbs: KL >= 0 for rows that sum to 1; the float64 rows sum to 1 within a few ulp.
    assert m["kl_divergence"] >= -1e-15 * max(1.0, m["cross_entropy"])
    if problem.options["metrics"] == "all":
        assert m["cross_entropy"] == pytest.approx(m["entropy"] + m["kl_divergence"], rel=1e-12, abs=1e-15)


@given(problems(metric_sets=("all",)))  # JS is not computed with the loss metrics
def test_js_divergence_lies_between_zero_and_log_2(problem: Problem):
    """0 <= JS(P,Q) <= log 2 for distributions; for rows of mass s_p and s_q (float32 rows sum to 1 within
    1e-7, and are scored as given) the bound is log 2 (s_p + s_q) / 2."""
    m = problem.accumulate().report().metrics
    assume(m["weight"] > 0)  # no evaluated weight: JS is None
    largest_mass = max(problem.row_masses(), default=1.0)
    assert 0.0 <= m["js_divergence"] <= math.log(2) * max(1.0, largest_mass) * (1 + 1e-15)


@given(problems(), st.integers(0, 2 ** 32 - 1))
def test_row_order_does_not_matter(problem: Problem, seed):
    order = np.random.default_rng(seed).permutation(problem.n)
    shuffled = problem.take(order).accumulate().report()
    original = problem.accumulate().report()
    assert_metrics_close(shuffled.metrics, original.metrics, MERGE_REL)
    mine, theirs = groups_of(shuffled), groups_of(original)
    assert mine.keys() == theirs.keys()
    for key, metrics in theirs.items():
        assert_metrics_close(mine[key], metrics, MERGE_REL, f"group {key}")


@given(problems(kinds=("hard",)))
def test_float32_storage_agrees_with_its_float64_upcast(problem: Problem):
    narrow = problem.columns["probs"].astype(np.float32)
    upcast = Problem(**{**problem.__dict__, "columns": problem.columns | {"probs": narrow.astype(np.float64)}})
    stored = Problem(**{**problem.__dict__, "columns": problem.columns | {"probs": narrow}})
    assert stored.accumulate().to_bytes() == upcast.accumulate().to_bytes()
