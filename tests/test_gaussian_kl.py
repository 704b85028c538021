"""The Gaussian kind: gaussian_kl = weighted mean over rows of KL(N(m, diag e^lv) || N(m0, diag e^lv0)), accurate
for tiny and huge variances and for near-equal distributions (mpmath at 50 digits, torch.distributions),
weighted, grouped, merged, cut into batches, saved; bad values refused naming file, row, column and value."""

from __future__ import annotations

import json
import math

import mpmath
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from reference import gaussian_kl_row_mpmath, gaussian_kl_rows
from row_accounting import assert_rows_add_up

import streamdiv
from streamdiv.cli import main
from streamdiv.errors import IncompatibleStateError, InvalidRowError, SchemaError
from streamdiv.kernels.gaussian import exp_excess, gaussian_row_kl

DIGITS = 50


def _relative_error(value: float, exact: mpmath.mpf) -> float:
    with mpmath.workdps(DIGITS):
        return float(abs((mpmath.mpf(value) - exact) / exact))


def _row_kl(mean, log_variance, prior_mean=None, prior_log_variance=None) -> float:
    mean = np.asarray(mean, np.float64)
    log_variance = np.asarray(log_variance, np.float64)
    code, kl = gaussian_row_kl(mean, log_variance, mean if prior_mean is None else np.asarray(prior_mean, np.float64),
                               log_variance if prior_log_variance is None else np.asarray(prior_log_variance, np.float64),
                               prior_mean is not None, prior_log_variance is not None)
    assert code == 0
    return kl


def _fixed_lists(matrix: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


def _gaussians(n: int, dimensions: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"mean": rng.normal(0.0, 1.5, (n, dimensions)), "log_variance": rng.normal(-1.0, 1.0, (n, dimensions)),
            "prior_mean": rng.normal(0.0, 0.5, (n, dimensions)),
            "prior_log_variance": rng.normal(0.0, 0.5, (n, dimensions))}


# ---- accuracy


@pytest.mark.parametrize("r", [0.0, 5e-324, 1e-300, -1e-200, 1e-20, -1e-10, 1e-5, -3e-3, 0.1, -0.5, 0.9999999,
                               -0.9999999, 1.0, -1.0, 1.0000001, -1.5, 2.0, -20.0, 30.0, -700.0, 700.0, 709.7])
def test_exp_excess_is_e_to_the_r_minus_1_minus_r_to_a_few_ulp(r):
    # e^r - 1 - r cancels about 2 |log10 r| digits for tiny r: mpmath gets as many more
    with mpmath.workdps(DIGITS + (int(-2 * math.log10(abs(r))) if 0 < abs(r) < 1 else 0)):
        exact = mpmath.exp(mpmath.mpf(r)) - 1 - mpmath.mpf(r)
    value = exp_excess(r)
    assert value >= 0.0
    if exact == 0 or float(exact) == 0.0:  # r^2/2 underflows
        assert value == 0.0
    else:
        assert _relative_error(value, exact) <= 4e-16


def test_exp_excess_is_infinite_past_overflow_and_never_nan():
    for r in (710.0, 1e300, math.inf):
        assert exp_excess(r) == math.inf
    assert exp_excess(-math.inf) == math.inf  # a variance ratio of 0: the KL is infinite


CASES = {
    "normal": dict(mean=[0.3, -1.2, 2.5], log_variance=[-0.4, 0.7, -1.9]),
    "tiny variance -700": dict(mean=[0.1, -0.2], log_variance=[-700.0, -700.0]),
    "tiny variance -30": dict(mean=[1e-3, 4.0], log_variance=[-30.0, -29.5]),
    "huge variance 30": dict(mean=[5.0, 0.0], log_variance=[30.0, 29.0]),
    "huge variance 700": dict(mean=[0.0, 1.0], log_variance=[700.0, 1.0]),
    "near equal, standard prior": dict(mean=[1e-10, -1e-10, 3e-11], log_variance=[1e-10, -2e-10, 5e-11]),
    "near equal to a prior": dict(mean=[0.7 + 1e-10, -1.3], log_variance=[0.25 + 1e-10, -2.0 - 3e-11],
                                  prior_mean=[0.7, -1.3 + 2e-11], prior_log_variance=[0.25, -2.0]),
    "prior of tiny variance": dict(mean=[0.5, 0.0], log_variance=[-650.0, -700.0], prior_mean=[0.5, 1e-300],
                                   prior_log_variance=[-700.0, -700.0]),
    "prior of huge variance": dict(mean=[3.0, -4.0], log_variance=[0.0, 2.0], prior_mean=[-1.0, 0.0],
                                   prior_log_variance=[700.0, 30.0]),
}


@pytest.mark.parametrize("name", CASES)
def test_a_row_matches_mpmath_at_50_digits(name):
    case = CASES[name]
    exact = gaussian_kl_row_mpmath(**case, digits=DIGITS)
    value = _row_kl(**case)
    assert math.isfinite(value) and _relative_error(value, exact) <= 1e-13, (value, exact)


def test_near_equal_distributions_keep_their_digits_where_the_textbook_formula_loses_them():
    case = CASES["near equal, standard prior"]
    exact = gaussian_kl_row_mpmath(**case, digits=DIGITS)
    assert 1e-21 < float(exact) < 1e-19
    assert _relative_error(_row_kl(**case), exact) <= 1e-13
    textbook = gaussian_kl_rows(np.array([case["mean"]]), np.array([case["log_variance"]]))[0]
    assert _relative_error(textbook, exact) > 1e-3  # 1 + lv - e^lv cancels to nothing in float64


def test_the_mean_over_many_rows_matches_mpmath():
    columns = _gaussians(300, 4, seed=1)
    columns["log_variance"][:20] = -700.0
    columns["log_variance"][20:40] = 700.0
    weights = np.random.default_rng(2).random(300)
    report = streamdiv.Accumulator().update(**columns, weights=weights).report()
    with mpmath.workdps(DIGITS):
        rows = [gaussian_kl_row_mpmath(*(columns[role][i] for role in columns), digits=DIGITS) for i in range(300)]
        exact = mpmath.fsum(mpmath.mpf(float(w)) * kl for w, kl in zip(weights, rows)) / mpmath.fsum(
            mpmath.mpf(float(w)) for w in weights)
    assert _relative_error(report.metrics["gaussian_kl"], exact) <= 1e-13


def test_agrees_with_torch_distributions_summed_over_dimensions():
    torch = pytest.importorskip("torch")
    columns = _gaussians(500, 6, seed=3)
    tensors = {role: torch.from_numpy(values) for role, values in columns.items()}
    posterior = torch.distributions.Normal(tensors["mean"], torch.exp(0.5 * tensors["log_variance"]))
    prior = torch.distributions.Normal(tensors["prior_mean"], torch.exp(0.5 * tensors["prior_log_variance"]))
    expected = torch.distributions.kl_divergence(posterior, prior).sum(-1).mean().item()
    assert streamdiv.Accumulator().update(**columns).report().metrics["gaussian_kl"] == pytest.approx(expected,
                                                                                                      rel=1e-12)
    standard = torch.distributions.Normal(torch.zeros_like(tensors["mean"]), torch.ones_like(tensors["mean"]))
    expected = torch.distributions.kl_divergence(posterior, standard).sum(-1).mean().item()
    found = streamdiv.Accumulator().update(mean=columns["mean"], log_variance=columns["log_variance"]).report()
    assert found.metrics["gaussian_kl"] == pytest.approx(expected, rel=1e-12)


def test_a_huge_variance_is_a_huge_finite_kl_and_an_overflowing_one_an_infinite_row():
    mean = np.zeros((3, 2))
    log_variance = np.array([[700.0, 0.0], [0.0, 0.0], [0.5, 0.0]])
    finite = streamdiv.Accumulator().update(mean=mean, log_variance=log_variance).report().metrics
    assert 1e303 < finite["gaussian_kl"] < math.inf and finite["infinite_rows"] == 0
    log_variance[1, 0] = 710.0
    infinite = streamdiv.Accumulator().update(mean=mean, log_variance=log_variance).report().metrics
    assert infinite["gaussian_kl"] == math.inf and infinite["infinite_rows"] == 1 and infinite["rows"] == 3
    # as for cross-entropy, an infinite row of weight 0 leaves the mean of the others
    weighted = streamdiv.Accumulator().update(mean=mean, log_variance=log_variance,
                                              weights=np.array([1.0, 0.0, 1.0])).report().metrics
    assert weighted["gaussian_kl"] == pytest.approx(gaussian_kl_rows(mean[[0, 2]], log_variance[[0, 2]]).mean(),
                                                    rel=1e-14)


def test_other_metrics_are_none_and_the_row_counts_are_reported():
    columns = _gaussians(10, 2, seed=4)
    metrics = streamdiv.Accumulator().update(mean=columns["mean"], log_variance=columns["log_variance"]).report().metrics
    assert {name for name, value in metrics.items() if value is not None} == {
        "rows", "weight", "skipped_rows", "ignored_rows", "infinite_rows", "gaussian_kl"}
    assert (metrics["rows"], metrics["weight"], metrics["skipped_rows"]) == (10, 10.0, 0)


def test_units_follow_the_base():
    columns = _gaussians(50, 3, seed=5)
    nats = streamdiv.Accumulator().update(**columns).report().metrics["gaussian_kl"]
    bits = streamdiv.Accumulator(base=2).update(**columns).report().metrics["gaussian_kl"]
    assert bits == pytest.approx(nats / math.log(2.0), rel=1e-15)


# ---- weights, groups, merging, batches, saving


def test_weights_and_groups_match_the_reference_per_group():
    columns = _gaussians(2000, 5, seed=6)
    rng = np.random.default_rng(7)
    weights = 2.0 * rng.random(2000)
    groups = rng.integers(0, 3, 2000)
    report = streamdiv.Accumulator().update(**columns, weights=weights, groups=groups).report()
    rows = gaussian_kl_rows(**columns)
    assert report.metrics["gaussian_kl"] == pytest.approx(np.average(rows, weights=weights), rel=1e-13)
    for group in report.groups:
        chosen = groups == group["group"]["group"]
        assert group["metrics"]["rows"] == chosen.sum()
        assert group["metrics"]["gaussian_kl"] == pytest.approx(np.average(rows[chosen], weights=weights[chosen]),
                                                                rel=1e-13)


def _state_bits(accumulator: streamdiv.Accumulator) -> tuple[bytes, bytes]:
    counts, sums = accumulator._state.settled()
    return counts.tobytes(), sums.tobytes()


def test_batch_cuts_give_identical_bits():
    columns = _gaussians(40_000, 3, seed=8)
    weights = np.random.default_rng(9).random(40_000)
    whole = streamdiv.Accumulator().update(**columns, weights=weights)
    cut = streamdiv.Accumulator()
    for start in range(0, 40_000, 7_001):
        cut.update(**{role: values[start:start + 7_001] for role, values in columns.items()},
                   weights=weights[start:start + 7_001])
    assert _state_bits(cut) == _state_bits(whole)
    assert cut.report().metrics == whole.report().metrics


def test_merging_two_accumulators_equals_one_pass_and_survives_saving():
    columns = _gaussians(3000, 4, seed=10)
    groups = np.arange(3000) % 2
    first = {role: values[:1200] for role, values in columns.items()}
    second = {role: values[1200:] for role, values in columns.items()}
    one_pass = streamdiv.Accumulator().update(**columns, groups=groups).report()
    a = streamdiv.Accumulator().update(**first, groups=groups[:1200])
    b = streamdiv.Accumulator().update(**second, groups=groups[1200:])
    merged = (streamdiv.Accumulator.from_bytes(a.to_bytes()) + b).report()
    assert merged.metrics["rows"] == 3000
    assert merged.metrics["gaussian_kl"] == pytest.approx(one_pass.metrics["gaussian_kl"], rel=1e-15)
    for mine, theirs in zip(merged.groups, one_pass.groups):
        assert mine["metrics"]["gaussian_kl"] == pytest.approx(theirs["metrics"]["gaussian_kl"], rel=1e-15)
    assert merged.to_dict()["layout"] == {"kind": "gaussian", "dimensions": 4}


def test_a_gaussian_state_refuses_to_merge_with_a_classification_one_or_other_dimensions():
    columns = _gaussians(10, 2, seed=11)
    gaussian = streamdiv.Accumulator().update(**columns)
    classification = streamdiv.Accumulator().update(probs=np.full((2, 2), 0.5), labels=np.array([0, 1]))
    with pytest.raises(IncompatibleStateError, match="the kind of input differs: gaussian"):
        gaussian.copy().merge(classification)
    with pytest.raises(IncompatibleStateError, match="kind of input differs"):
        streamdiv.Accumulator.from_bytes(classification.to_bytes()).merge(
            streamdiv.Accumulator.from_bytes(gaussian.to_bytes()))
    wider = streamdiv.Accumulator().update(**_gaussians(10, 3, seed=12))
    with pytest.raises(IncompatibleStateError, match="dimensions differs: 2 here, 3"):
        gaussian.copy().merge(wider)
    with pytest.raises(streamdiv.StreamdivError, match="kind of input differs"):
        gaussian.update(probs=np.full((2, 2), 0.5), labels=np.array([0, 1]))


# ---- the inputs: layouts, priors, bad values


def test_list_fixed_size_list_and_per_dimension_columns_give_the_same_result(tmp_path):
    columns = _gaussians(200, 3, seed=13)
    table = pa.table({"mu_list": pa.array(list(columns["mean"])), "lv_fixed": _fixed_lists(columns["log_variance"]),
                      **{f"prior_mu_{d}": columns["prior_mean"][:, d] for d in range(3)},
                      "prior_lv": _fixed_lists(columns["prior_log_variance"].astype(np.float32))})
    path = tmp_path / "latents.parquet"
    pq.write_table(table, path, row_group_size=64)
    report = streamdiv.evaluate(str(path), mean="mu_list", log_variance="lv_fixed", prior_mean="prior_mu_*",
                                prior_log_variance="prior_lv")
    expected = gaussian_kl_rows(columns["mean"], columns["log_variance"], columns["prior_mean"],
                                columns["prior_log_variance"].astype(np.float32)).mean()
    assert report.metrics["gaussian_kl"] == pytest.approx(expected, rel=1e-13)
    without_prior = streamdiv.evaluate(table, mean="mu_list", log_variance="lv_fixed")
    assert without_prior.metrics["gaussian_kl"] == pytest.approx(
        gaussian_kl_rows(columns["mean"], columns["log_variance"]).mean(), rel=1e-13)


@pytest.mark.parametrize("role, value, reason", [
    ("mean", np.nan, "NaN or an infinity"), ("log_variance", np.inf, "NaN or an infinity"),
    ("log_variance", -np.inf, "NaN or an infinity"), ("prior_mean", np.nan, "NaN or an infinity"),
    ("prior_log_variance", -np.inf, "NaN or an infinity"),
])
def test_bad_values_name_file_row_column_and_value(tmp_path, role, value, reason):
    columns = _gaussians(6, 2, seed=14)
    columns[role][4, 1] = value
    names = {"mean": "mu", "log_variance": "logvar", "prior_mean": "mu0", "prior_log_variance": "logvar0"}
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({names[r]: _fixed_lists(v) for r, v in columns.items()}), path)
    arguments = {r: names[r] for r in columns}
    with pytest.raises(InvalidRowError, match=reason) as caught:
        streamdiv.evaluate(str(path), **arguments)
    assert (caught.value.path, caught.value.row, caught.value.column) == (str(path), 4, names[role])
    assert caught.value.value[1] != caught.value.value[1] or abs(caught.value.value[1]) == math.inf
    report = streamdiv.evaluate(str(path), **arguments, on_invalid="skip")
    skipped = report.metrics
    assert (skipped["rows"], skipped["skipped_rows"]) == (5, 1)
    assert assert_rows_add_up(report, 6) == {f"{role}_not_finite": 1}
    good = {r: np.delete(v, 4, axis=0) for r, v in columns.items()}
    assert skipped["gaussian_kl"] == pytest.approx(gaussian_kl_rows(**good).mean(), rel=1e-14)


def test_ragged_and_null_rows_are_refused_naming_the_column():
    table = pa.table({"mu": pa.array([[0.0, 1.0], [0.5, 0.5], [1.0, 2.0, 3.0], [0.0, 0.0]]),
                      "lv": pa.array([[0.0, 0.0], None, [0.0, 0.0], [0.1, 0.1]])})
    with pytest.raises(InvalidRowError, match="does not have one value per dimension") as caught:
        streamdiv.evaluate(table.slice(2), mean="mu", log_variance="lv")
    assert (caught.value.row, caught.value.column, caught.value.value) == (0, "mu", [1.0, 2.0, 3.0])
    with pytest.raises(InvalidRowError, match="is null") as caught:
        streamdiv.evaluate(table.slice(0, 2), mean="mu", log_variance="lv")
    assert (caught.value.row, caught.value.column) == (1, "lv")
    report = streamdiv.evaluate(table, mean="mu", log_variance="lv", on_invalid="skip")
    assert (report.metrics["rows"], report.metrics["skipped_rows"]) == (2, 2)
    assert assert_rows_add_up(report, 4) == {"null_log_variance": 1, "wrong_length_mean": 1}


def test_dimensions_that_disagree_are_refused_naming_the_columns():
    table = pa.table({"mu": _fixed_lists(np.zeros((3, 4))), "lv": _fixed_lists(np.zeros((3, 3))),
                      "mu_a": np.zeros(3), "mu_b": np.zeros(3)})
    with pytest.raises(SchemaError, match=r"log_variance='lv' has 3 dimensions per row but mean='mu' has 4"):
        streamdiv.evaluate(table, mean="mu", log_variance="lv")
    with pytest.raises(SchemaError, match=r"mean='mu_a,mu_b' has 2"):
        streamdiv.evaluate(table, mean="mu_*", log_variance="lv")
    with pytest.raises(SchemaError, match="log_variance has 3 dimensions per row but mean has 4"):
        streamdiv.Accumulator().update(mean=np.zeros((3, 4)), log_variance=np.zeros((3, 3)))
    accumulator = streamdiv.Accumulator().update(mean=np.zeros((3, 4)), log_variance=np.zeros((3, 4)))
    with pytest.raises(SchemaError, match="mean has 3 dimensions per row but 4 were expected"):
        accumulator.update(mean=_fixed_lists(np.zeros((2, 3))), log_variance=np.zeros((2, 3)))


def test_the_gaussian_kind_does_not_mix_with_predictions():
    with pytest.raises(streamdiv.StreamdivError, match="score one kind of input at a time"):
        streamdiv.Accumulator().update(mean=np.zeros((2, 2)), log_variance=np.zeros((2, 2)), labels=np.zeros(2))
    table = pa.table({"mu": _fixed_lists(np.zeros((2, 2))), "label": [0, 1]})
    with pytest.raises(SchemaError, match="score one kind of input at a time"):
        streamdiv.evaluate(table, mean="mu", log_variance="mu", labels="label")
    with pytest.raises(SchemaError, match="name both mean= and log_variance="):
        streamdiv.evaluate(table, mean="mu")


# ---- the command line


def test_the_command_line_scores_saves_merges_and_fails_if(tmp_path):
    columns = _gaussians(500, 3, seed=15)
    path = tmp_path / "latents.parquet"
    pq.write_table(pa.table({"mu": _fixed_lists(columns["mean"].astype(np.float32)),
                             "logvar": _fixed_lists(columns["log_variance"].astype(np.float32)),
                             "split": np.where(np.arange(500) % 3 == 0, "valid", "train")}), path)
    runner = CliRunner()
    state = tmp_path / "latents.state"
    result = runner.invoke(main, ["score", str(path), "--mean", "mu", "--log-variance", "logvar", "--by", "split",
                                  "--format", "json", "--save-state", str(state)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    expected = gaussian_kl_rows(columns["mean"].astype(np.float32), columns["log_variance"].astype(np.float32))
    assert report["layout"] == {"kind": "gaussian", "dimensions": 3}
    assert report["metrics"]["gaussian_kl"] == pytest.approx(expected.mean(), rel=1e-13)
    assert report["metrics"]["cross_entropy"] is None and report["calibration"] == []
    assert [group["group"]["split"] for group in report["groups"]] == ["valid", "train"]

    table = runner.invoke(main, ["score", str(path), "--mean", "mu", "--log-variance", "logvar", "--by", "split",
                                 "--format", "table"])
    lines = table.stdout.splitlines()
    assert any(line.split()[:1] == ["gaussian_kl"] for line in lines) and not any("cross_entropy" in l for l in lines)
    assert ["split", "rows", "infinite_rows", "gaussian_kl"] in [line.split() for line in lines]

    threshold = f"gaussian_kl>{expected.mean() * 0.99}"
    breached = runner.invoke(main, ["score", str(path), "--mean", "mu", "--log-variance", "logvar",
                                    "--fail-if", threshold, "--format", "json"])
    assert breached.exit_code == 1 and f"condition '{threshold}' holds: overall gaussian_kl" in breached.stderr
    merged = runner.invoke(main, ["merge", str(state), str(state), "--fail-if", threshold, "--format", "json"])
    assert merged.exit_code == 1 and json.loads(merged.stdout)["metrics"]["rows"] == 1000
    refused = runner.invoke(main, ["score", str(path), "--mean", "mu", "--log-variance", "logvar",
                                   "--fail-if", "ece>0.1"])
    assert refused.exit_code == 2 and "ece is not computed for the Gaussian kind" in refused.output
    refused = runner.invoke(main, ["merge", str(state), "--fail-if", "ece>0.1"])
    assert refused.exit_code == 2 and "ece is not computed for the Gaussian kind" in refused.output


def test_the_command_line_names_the_bad_value(tmp_path):
    mean = np.zeros((4, 2))
    mean[3, 0] = np.nan
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"mu": _fixed_lists(mean), "logvar": _fixed_lists(np.zeros((4, 2)))}), path)
    result = CliRunner().invoke(main, ["score", str(path), "--mean", "mu", "--log-variance", "logvar"])
    assert result.exit_code == 3
    assert f"{path}: row 3, column 'mu': the value [nan, 0.0] holds NaN or an infinity" in result.stderr
