"""metrics="loss": the loss metrics alone, with the bits of the full pass, and the other metrics not computed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_hard, make_soft
from row_accounting import assert_rows_add_up

import streamdiv
from streamdiv.cli import main as cli_main
from streamdiv.errors import IncompatibleStateError, InvalidRowError, StreamdivError
from streamdiv.kernels import driver
from streamdiv.kernels.layout import ROW_BLOCK
from streamdiv.metrics import METRIC_NAMES, METRIC_SETS

LOSS = METRIC_SETS["loss"]
N = 2 * ROW_BLOCK + 4321


def _hard_inputs() -> dict:
    """Hard labels with every kind of row the loss pass must handle: a zero on the label (+inf), bad values,
    bad labels, ignored labels, rows that do not sum to 1, rows under eps."""
    _, probs, labels = make_hard(n=N, num_classes=6, seed=21, dtype=np.float32)
    labels = labels.astype(np.int64)
    probs[3::501, :] = 0.0
    probs[3::501, 0] = 1.0
    labels[3::501] = 2  # q_y = 0: infinite cross-entropy
    probs[7::613, 1] = np.nan
    probs[9::617, 4] = 1.5
    labels[11::619] = 6  # out of range
    labels[13::307] = -100  # ignored
    probs[15::211] *= 0.9  # unnormalized
    probs[17::97, labels[17::97].clip(0, 5)] = 1e-12  # clipped under eps
    rng = np.random.default_rng(4)
    return {"probs": probs, "labels": labels, "weights": rng.exponential(1.0, N),
            "groups": rng.integers(0, 3, N)}


HARD = _hard_inputs()
CASES = {
    "hard": ("probs", "labels"),
    "hard, weighted": ("probs", "labels", "weights"),
    "hard, weighted, grouped": ("probs", "labels", "weights", "groups"),
}


def _score(inputs: dict, metrics: str, batch: int, **options) -> streamdiv.Accumulator:
    accumulator = streamdiv.Accumulator(metrics=metrics, on_invalid="skip", ignore_label=-100, **options)
    n = len(next(iter(inputs.values())))
    for start in range(0, n, batch):
        accumulator.update(**{name: value[start: start + batch] for name, value in inputs.items()})
    assert_rows_add_up(accumulator.report(), n)
    return accumulator


def _assert_loss_bits_match(inputs: dict, full: streamdiv.Report, eps: float | None, monkeypatch) -> None:
    """The loss metrics of ``inputs``, per group and overall, over batch sizes and with or without parallel
    lanes, are the full report's bits."""
    for lanes in (0, 2):
        monkeypatch.setattr(driver.Lanes, "count_for", classmethod(lambda cls, *shape_and_rows: lanes))
        for batch in (N, ROW_BLOCK - 1, 5000):
            loss = _score(inputs, "loss", batch, eps=eps).report()
            for name in LOSS:
                assert loss.metrics[name] == full.metrics[name], (name, lanes, batch)
            for group, theirs in zip(loss.groups, full.groups):
                assert {k: group["metrics"][k] for k in LOSS} == {k: theirs["metrics"][k] for k in LOSS}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("eps", [None, 1e-9])
def test_the_loss_metrics_have_the_bits_of_the_full_pass(case, eps, monkeypatch):
    inputs = {name: HARD[name] for name in CASES[case]}
    full = _score(inputs, "all", N, eps=eps).report()
    assert full.metrics["skipped_rows"] and full.metrics["ignored_rows"] and full.metrics["unnormalized_rows"]
    assert full.metrics["infinite_rows"] if eps is None else full.metrics["clipped_rows"]  # eps clips q_y = 0
    _assert_loss_bits_match(inputs, full, eps, monkeypatch)


def _binary_inputs(logits: bool) -> dict:
    """Binary predictions with every kind of row the binary loss pass must handle: p = 0 or 1 on the other
    class (+inf), NaN, out-of-range and +inf values, labels outside {0, 1}, rows bad twice (the prediction's
    problem is the one named), ignored labels, rows under eps."""
    rng = np.random.default_rng(9)
    p = rng.random(N)
    labels = (rng.random(N) < p).astype(np.int64)
    p[3::501], labels[3::501] = 0.0, 1  # q_y = 0
    p[5::503], labels[5::503] = 1.0, 0
    p[7::613] = np.nan
    labels[11::619] = 2
    labels[13::307] = -100  # ignored
    p[17::97] = np.where(labels[17::97] == 1, 1e-12, 1.0 - 1e-12)  # under eps
    with np.errstate(divide="ignore", invalid="ignore"):
        pred = np.log(p) - np.log1p(-p) if logits else p
    if logits:
        pred[19::401] = np.inf
    else:
        pred[19::401] = 1.5
    labels[19::802] = 3  # a bad prediction and a bad label
    return {("logits" if logits else "probs"): pred.astype(np.float32), "labels": labels,
            "weights": rng.exponential(1.0, N), "groups": rng.integers(0, 3, N)}


@pytest.mark.parametrize("logits", [False, True])
@pytest.mark.parametrize("columns", [("labels",), ("labels", "weights"), ("labels", "weights", "groups")])
@pytest.mark.parametrize("eps", [None, 1e-9])
def test_binary_loss_metrics_have_the_bits_of_the_full_pass(logits, columns, eps, monkeypatch):
    every = _binary_inputs(logits)
    inputs = {name: every[name] for name in ("logits" if logits else "probs", *columns)}
    full = _score(inputs, "all", N, eps=eps).report()
    assert full.metrics["skipped_rows"] and full.metrics["ignored_rows"]
    assert full.metrics["infinite_rows"] if eps is None else full.metrics["clipped_rows"]
    _assert_loss_bits_match(inputs, full, eps, monkeypatch)
    loss = _score(inputs, "loss", N, eps=eps).report()
    assert loss.calibration == [] and loss.metrics["brier"] is None


@pytest.mark.parametrize("logits", [False, True])
def test_binary_loss_pass_names_the_problem_the_full_pass_names(logits):
    every = _binary_inputs(logits)
    role = "logits" if logits else "probs"
    row = 19 + 802  # a bad prediction (+inf or 1.5) and label 3
    assert every["labels"][row] == 3 and every[role][row] == (np.inf if logits else 1.5)
    inputs = {role: every[role][row - 1: row + 1], "labels": every["labels"][row - 1: row + 1]}
    messages = []
    for metrics in ("all", "loss"):
        with pytest.raises(InvalidRowError) as raised:
            streamdiv.Accumulator(metrics=metrics).update(**inputs)
        messages.append(str(raised.value))
    assert messages[0] == messages[1] and "prediction" in messages[0]


def _valid_inputs(binary: bool) -> dict:
    """Rows that are all valid, with unit weights, yet every count the loss pass keeps: q_y = 0 (+inf), rows
    under eps, and (K classes) rows that do not sum to 1, never in a tile with a bad or ignored row, so that
    the pass for valid rows with unit weights (loss._accumulate_valid_unit_rows) adds them."""
    rng = np.random.default_rng(12)
    if binary:
        p = rng.random(N)
        labels = (rng.random(N) < p).astype(np.int64)
        p[3::501], labels[3::501] = 0.0, 1
        p[17::97] = np.where(labels[17::97] == 1, 1e-12, 1.0 - 1e-12)
        return {"probs": p.astype(np.float32), "labels": labels}
    _, probs, labels = make_hard(n=N, num_classes=6, seed=22, dtype=np.float32)
    labels = labels.astype(np.int64)
    probs[3::501, :] = 0.0
    probs[3::501, 0] = 1.0
    labels[3::501] = 2
    probs[15::211] *= 0.9
    probs[17::97, labels[17::97]] = 1e-12
    return {"probs": probs, "labels": labels}


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("eps", [None, 1e-9])
def test_valid_rows_with_unit_weights_have_the_bits_of_the_full_pass(binary, eps, monkeypatch):
    inputs = _valid_inputs(binary)
    full = _score(inputs, "all", N, eps=eps).report()
    assert not full.metrics["skipped_rows"] and not full.metrics["ignored_rows"]
    assert full.metrics["infinite_rows"] if eps is None else full.metrics["clipped_rows"]
    assert binary or full.metrics["unnormalized_rows"]
    _assert_loss_bits_match(inputs, full, eps, monkeypatch)
    full_state, loss_state = _score(inputs, "all", N, eps=eps)._state, _score(inputs, "loss", N, eps=eps)._state
    loss = _score(inputs, "loss", N, eps=eps).report()
    for name in ("rows", "infinite_rows", "clipped_rows", "unnormalized_rows"):
        assert loss.metrics[name] == full.metrics[name], name
    masses = slice(full_state.class_mass_slot, full_state.class_mass_slot + (2 if binary else 6))
    assert full_state.sums[:, masses].tobytes() == loss_state.sums[:, masses].tobytes()  # the class masses


def test_other_metrics_are_not_computed():
    report = _score({"probs": HARD["probs"], "labels": HARD["labels"]}, "loss", N).report()
    assert set(report.metrics) == set(METRIC_NAMES)  # the same keys: a dashboard's columns do not move
    assert all(report.metrics[name] is None for name in METRIC_NAMES if name not in LOSS)
    assert report.metrics["cross_entropy"] is not None and report.calibration == []


@pytest.mark.parametrize("layout", ["logits", "soft"])
def test_layouts_without_a_loss_pass_report_the_loss_metrics_of_the_full_pass(layout):
    if layout == "logits":
        logits, _, labels = make_hard(n=3000, num_classes=4, seed=3)
        inputs = {"logits": logits, "labels": labels}
    else:
        targets, probs = make_soft(n=3000, num_classes=4, seed=3)
        inputs = {"probs": probs, "targets": targets}
    full = streamdiv.Accumulator().update(**inputs).report().metrics
    loss = streamdiv.Accumulator(metrics="loss").update(**inputs).report().metrics
    assert {name: loss[name] for name in LOSS} == {name: full[name] for name in LOSS}
    assert loss["accuracy"] is None


def test_the_first_bad_row_is_named():
    probs, labels = HARD["probs"][:1000].copy(), HARD["labels"][:1000].copy()
    labels[labels == -100] = 0
    with pytest.raises(InvalidRowError, match="row 7") as raised:
        streamdiv.Accumulator(metrics="loss").update(probs=probs, labels=labels)
    assert "NaN" in str(raised.value)


def test_the_metric_set_is_saved_and_states_of_different_sets_do_not_merge():
    inputs = {"probs": HARD["probs"][:2000], "labels": HARD["labels"][:2000]}
    loss = _score(inputs, "loss", 2000)
    restored = streamdiv.Accumulator.from_bytes(loss.to_bytes())
    assert restored._state.config.metrics == "loss"
    assert restored.report().metrics == loss.report().metrics
    with pytest.raises(IncompatibleStateError, match="metrics differs"):
        loss.merge(_score(inputs, "all", 2000))
    with pytest.raises(StreamdivError, match="metrics must be one of"):
        streamdiv.Accumulator(metrics="fast")


def test_command_line(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "p.parquet"
    _, probs, labels = make_hard(n=3000, num_classes=3, seed=8)
    pq.write_table(pa.table({"probs": list(probs), "label": labels}), path)
    runner = CliRunner()
    result = runner.invoke(cli_main, ["score", str(path), "--metrics", "loss", "--format", "json",
                                                "--save-state", str(tmp_path / "s.state")])
    assert result.exit_code == 0, result.output
    expected = streamdiv.evaluate(str(path), probs="probs", labels="label", metrics="loss").to_dict()
    assert json.loads(result.stdout) == expected and expected["metrics"]["ece"] is None
    refused = runner.invoke(cli_main, ["score", str(path), "--metrics", "loss", "--fail-if", "ece>0.1"])
    assert refused.exit_code == 2 and "ece is not computed with metrics='loss'" in refused.output
    merged = runner.invoke(cli_main, ["merge", str(tmp_path / "s.state"), str(tmp_path / "s.state"),
                                                "--format", "json"])
    assert merged.exit_code == 0, merged.output
    assert json.loads(merged.stdout)["metrics"]["rows"] == 6000


def test_the_table_shows_only_computed_metrics(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "p.parquet"
    _, probs, labels = make_hard(n=500, num_classes=3, seed=8)
    pq.write_table(pa.table({"probs": list(probs), "label": labels, "region": labels % 2}), path)
    result = CliRunner().invoke(cli_main, ["score", str(path), "--metrics", "loss", "--by", "region",
                                           "--format", "table"])
    assert result.exit_code == 0, result.output
    assert "perplexity" in result.stdout and "ece" not in result.stdout and "accuracy" not in result.stdout


def test_binary_loss_terms_take_one_log_a_row_with_the_bits_of_both():
    """The binary loss table's log q_y, from one log a row, is bit for bit fast_log(p) for y = 1 and
    fast_log1p(-p) for y = 0, as the full pass computes them, on the edges of [0, 1] too."""
    from streamdiv.kernels.binary import _binary_loss_terms
    from streamdiv.kernels.elementary import fast_log, fast_log1p
    from streamdiv.kernels.probabilities import N_ROW_TERMS, ROW_LOG_Q_LABEL, ROW_Q_LABEL

    edges = [0.0, 5e-324, 2.2250738585072014e-308, 1e-300, 1e-20, 2.0 ** -53, 2.0 ** -30, 1e-8, 0.1, 0.5,
             0.7, 1 - 2.0 ** -24, 1 - 2.0 ** -53, 1.0]
    rng = np.random.default_rng(7)
    values = np.concatenate([edges, rng.random(2000), rng.random(500) ** 30, 1 - rng.random(500) ** 30])
    for dtype in (np.float64, np.float32):
        p = np.repeat(values, 2).astype(dtype)
        y = np.tile(np.array([0, 1], dtype=np.int64), len(values))
        terms = np.empty((N_ROW_TERMS, len(p)))
        _binary_loss_terms(p, False, y, 0, len(p), terms)
        v = p.astype(np.float64)
        expected = np.array([(fast_log(x) if x > 0 else -np.inf) if label == 1 else
                             (fast_log1p(-x) if x < 1 else -np.inf) for x, label in zip(v, y)])
        assert np.array_equal(terms[ROW_LOG_Q_LABEL].view(np.int64), expected.view(np.int64))
        assert np.array_equal(terms[ROW_Q_LABEL], np.where(y == 1, v, 1.0 - v))
