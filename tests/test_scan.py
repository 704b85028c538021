"""scan(): its steps against evaluate() on the same rows, bit for bit; `streamdiv score --every N` line by line."""

from __future__ import annotations

import inspect
import io
import itertools
import json
import threading
import warnings

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from conftest import make_hard

import streamdiv
from streamdiv.cli import main
from streamdiv.kernels.layout import ROW_BLOCK


def prediction_table(n: int, seed: int, num_classes: int = 3) -> pa.Table:
    _, probs, labels = make_hard(n=n, num_classes=num_classes, seed=seed)
    flat = pa.array(probs.reshape(-1).astype(np.float32))
    return pa.table({"probs": pa.FixedSizeListArray.from_arrays(flat, num_classes), "label": labels,
                     "region": np.array(["eu", "us", "apac"])[np.arange(n) % 3], "w": np.linspace(0.5, 1.5, n)})


SMALL = prediction_table(300, seed=61)
# more than two compensation blocks, so that steps and batches start in the middle of one
LARGE = prediction_table(2 * ROW_BLOCK + 7_000, seed=62)
COLUMNS = {"probs": "probs", "labels": "label", "weights": "w"}


def step_starts(steps):
    return [0] + [step.rows for step in steps[:-1]]


def assert_steps_match_evaluate(table, steps, **options):
    """The last running report is evaluate()'s, state bytes included; each batch report is evaluate()'s over
    the step's rows alone, bit for bit, wherever the step starts: the step's accumulator starts empty, so its
    blocks start at the step's first row, exactly as evaluate()'s start at row 0 of the slice."""
    whole = streamdiv.Accumulator()
    expected = streamdiv.evaluate(table, **COLUMNS, **options, accumulator=whole)
    assert steps[-1].rows == table.num_rows
    assert steps[-1].running.to_dict() == expected.to_dict()
    assert steps[-1].running.metrics == expected.metrics
    for start, step in zip(step_starts(steps), steps):
        rows = step.rows - start
        assert step.batch.rows_read == rows and step.running.rows_read == step.rows
        alone = streamdiv.evaluate(table.slice(start, rows), **COLUMNS, **options)
        assert step.batch.to_dict() == alone.to_dict(), (start, rows)
    return whole


@pytest.mark.parametrize("every", [1, 7, 300, 1000])
@pytest.mark.parametrize("batch_size", [None, 64, 50])
def test_steps_fall_at_multiples_of_every_and_match_evaluate(every, batch_size):
    steps = list(streamdiv.scan(SMALL, **COLUMNS, every=every, batch_size=batch_size))
    n = SMALL.num_rows
    assert [step.rows for step in steps] == list(range(every, n, every)) + [n]
    assert_steps_match_evaluate(SMALL, steps, batch_size=batch_size)


@pytest.mark.parametrize("every,batch_size", [(10_000, None), (10_000, 4096), (ROW_BLOCK, 7_000), (3_001, 9_999)])
def test_steps_across_compensation_blocks_keep_the_bits(every, batch_size):
    running = streamdiv.Accumulator()
    steps = list(streamdiv.scan(LARGE, **COLUMNS, every=every, batch_size=batch_size, accumulator=running))
    assert [step.rows for step in steps] == list(range(every, LARGE.num_rows, every)) + [LARGE.num_rows]
    whole = assert_steps_match_evaluate(LARGE, steps)
    assert running.to_bytes() == whole.to_bytes()


def test_without_every_a_step_per_batch():
    steps = list(streamdiv.scan(SMALL, **COLUMNS, batch_size=64))
    assert [step.rows for step in steps] == [64, 128, 192, 256, 300]
    assert_steps_match_evaluate(SMALL, steps, batch_size=64)


def test_grouped_runs_keep_their_groups():
    steps = list(streamdiv.scan(SMALL, **COLUMNS, by="region", every=100))
    expected = streamdiv.evaluate(SMALL, **COLUMNS, by="region")
    assert steps[-1].running.to_dict() == expected.to_dict()
    assert [g["group"] for g in steps[-1].running.groups] == [{"region": r} for r in ("eu", "us", "apac")]
    for start, step in zip(step_starts(steps), steps):
        alone = streamdiv.evaluate(SMALL.slice(start, 100), **COLUMNS, by="region")
        assert step.batch.groups == alone.groups


def test_an_earlier_step_is_left_as_it_was():
    steps = streamdiv.scan(SMALL, **COLUMNS, every=100)
    first = next(steps)
    seen = first.running.to_dict(), first.batch.to_dict()
    rest = list(steps)
    assert (first.running.to_dict(), first.batch.to_dict()) == seen
    assert rest[-1].running.rows_read == 300 and first.running.rows_read == 100


def test_a_scan_left_early_stops_its_reader_thread():
    steps = streamdiv.scan(LARGE, **COLUMNS, every=1000, batch_size=1000)
    assert next(steps).rows == 1000
    steps.close()
    assert not [thread for thread in threading.enumerate() if thread.name == "streamdiv-reader"]


def test_keywords_are_evaluates():
    scan_parameters = dict(inspect.signature(streamdiv.scan).parameters)
    assert scan_parameters.pop("every").default is None
    evaluate_parameters = dict(inspect.signature(streamdiv.evaluate).parameters)
    for checkpoints in ("checkpoint", "checkpoint_every", "resume"):  # a whole scan's, not a running view's
        assert evaluate_parameters.pop(checkpoints).kind is inspect.Parameter.KEYWORD_ONLY
    assert scan_parameters == evaluate_parameters
    steps = list(streamdiv.scan(SMALL, **COLUMNS, base=2, bins=7, eps=1e-9, metrics="loss", every=128))
    expected = streamdiv.evaluate(SMALL, **COLUMNS, base=2, bins=7, eps=1e-9, metrics="loss")
    assert steps[-1].running.to_dict() == expected.to_dict() and expected.units == "bits"


@pytest.mark.parametrize("every", [0, -1, "x", 2.5, True])
def test_every_must_be_a_positive_whole_number(every):
    with pytest.raises(streamdiv.StreamdivError, match="every must be a positive whole number"):
        streamdiv.scan(SMALL, **COLUMNS, every=every)  # at the call, before any step


def test_a_source_of_no_rows_yields_no_step():
    assert list(streamdiv.scan(SMALL.slice(0, 0), **COLUMNS, every=10)) == []


def test_an_invalid_row_raises_as_in_evaluate():
    probs = np.full((500, 2), 0.5)
    probs[333] = [1.5, -0.5]
    data = {"p": probs, "y": np.arange(500) % 2}
    with pytest.raises(streamdiv.InvalidRowError) as expected:
        streamdiv.evaluate(data, probs="p", labels="y")
    steps = streamdiv.scan(data, probs="p", labels="y", every=100)
    assert [step.rows for step in (next(steps), next(steps), next(steps))] == [100, 200, 300]
    with pytest.raises(streamdiv.InvalidRowError) as raised:
        next(steps)
    assert (raised.value.row, raised.value.column, raised.value.value) == (
        expected.value.row, expected.value.column, expected.value.value) == (333, "p", [1.5, -0.5])


def test_warnings_come_once_the_last_step_is_consumed():
    # flat rows (softmax applied twice, as the warning says) that do not sum to 1
    data = {"p": np.tile([0.34, 0.33, 0.32], (200, 1)), "y": np.arange(200) % 3}
    with warnings.catch_warnings(record=True) as expected:
        warnings.simplefilter("always")
        streamdiv.evaluate(data, probs="p", labels="y")
    assert len(expected) == 2 and all(w.filename == __file__ for w in expected)
    with warnings.catch_warnings(record=True) as raised:
        warnings.simplefilter("always")
        steps = list(itertools.islice(streamdiv.scan(data, probs="p", labels="y", every=50), 4))
        assert len(steps) == 4 and raised == []
        for _ in streamdiv.scan(data, probs="p", labels="y", every=50):
            pass
    assert [(w.category, str(w.message)) for w in raised] == [(w.category, str(w.message)) for w in expected]
    assert all(w.category is streamdiv.StreamdivWarning and w.filename == __file__ for w in raised)


# ---- the command line
def invoke(*args, code=0, input=None):
    result = CliRunner().invoke(main, [str(a) for a in args], input=input)
    assert result.exit_code == code, (result.output, result.stderr, result.exception)
    return result


def lines_and_report(stdout, n_lines):
    lines = stdout.splitlines()
    return [json.loads(line) for line in lines[:n_lines]], json.loads("\n".join(lines[n_lines:]))


def expected_lines(source, every, **options):
    return [step.to_dict() for step in streamdiv.scan(source, probs="probs", labels="label", every=every,
                                                      **options)]


@pytest.fixture
def preds(tmp_path):
    path = tmp_path / "preds.arrow"
    with pa.ipc.new_file(path, SMALL.schema) as writer:
        writer.write_table(SMALL, max_chunksize=128)
    return str(path)


def test_every_writes_a_line_per_step_then_the_report(preds):
    result = invoke("score", preds, "--probs", "probs", "--labels", "label", "--every", 70, "--format", "json")
    lines, report = lines_and_report(result.stdout, 5)
    assert [line["rows"] for line in lines] == [70, 140, 210, 280, 300]
    assert [line["batch"]["rows"] for line in lines] == [70, 70, 70, 70, 20]
    assert lines == expected_lines(SMALL, 70)
    assert report == streamdiv.evaluate(SMALL, probs="probs", labels="label").to_dict()
    assert lines[-1]["metrics"] == report["metrics"]
    assert set(lines[0]) == {"rows", "metrics", "batch"} and set(lines[0]["batch"]) == {"rows", "metrics"}


def test_lines_are_strict_json_with_infinity_as_a_string():
    probs = pa.FixedSizeListArray.from_arrays(pa.array([1.0, 0.0] * 5 + [0.5, 0.5] * 5), 2)
    table = pa.table({"probs": probs, "label": [1] * 5 + [0] * 5})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    result = invoke("score", "-", "--probs", "probs", "--labels", "label", "--every", 5, "--format", "json",
                    input=sink.getvalue())
    lines, report = lines_and_report(result.stdout, 2)
    assert lines[0]["metrics"]["cross_entropy"] == lines[0]["batch"]["metrics"]["cross_entropy"] == "inf"
    assert lines[1]["batch"]["metrics"]["cross_entropy"] == pytest.approx(np.log(2))
    assert report["metrics"]["cross_entropy"] == "inf"


def test_with_output_only_the_lines_go_to_stdout(preds, tmp_path):
    target = tmp_path / "report.json"
    state = tmp_path / "run.state"
    result = invoke("score", preds, "--probs", "probs", "--labels", "label", "--every", 100, "-o", target,
                    "--save-state", state, "--progress")
    assert [json.loads(line) for line in result.stdout.splitlines()] == expected_lines(SMALL, 100)
    assert json.loads(target.read_text()) == streamdiv.evaluate(SMALL, probs="probs", labels="label").to_dict()
    whole = streamdiv.Accumulator()
    streamdiv.evaluate(SMALL, probs="probs", labels="label", accumulator=whole)
    assert state.read_bytes() == whole.to_bytes()
    assert "300 rows" in result.stderr  # the progress line, on stderr


def test_every_with_fail_if(preds):
    result = invoke("score", preds, "--probs", "probs", "--labels", "label", "--every", 150, "--format", "json",
                    "--fail-if", "rows>=0", code=1)
    lines, report = lines_and_report(result.stdout, 2)
    assert [line["rows"] for line in lines] == [150, 300] and report["metrics"]["rows"] == 300
    assert "rows>=0" in result.stderr


def test_every_reads_a_stream_on_stdin():
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, SMALL.schema) as writer:
        writer.write_table(SMALL, max_chunksize=70)
    result = invoke("score", "-", "--probs", "probs", "--labels", "label", "--by", "region", "--every", 64,
                    "--format", "json", input=sink.getvalue())
    lines, report = lines_and_report(result.stdout, 5)
    assert lines == expected_lines(SMALL, 64, by="region")
    assert report == streamdiv.evaluate(SMALL, probs="probs", labels="label", by="region").to_dict()


@pytest.mark.parametrize("every", ["0", "x"])
def test_every_refuses_what_is_not_a_positive_number(preds, every):
    result = invoke("score", preds, "--every", every, code=2)
    assert "--every" in result.stderr


def test_a_misspelt_keyword_names_the_function_called_and_the_nearest_keyword():
    data = {"probs": np.full((4, 2), 0.5), "label": np.zeros(4, dtype=int)}
    with pytest.raises(TypeError, match=r"^evaluate\(\) got an unexpected keyword argument 'prob'; did you mean 'probs'\?$"):
        streamdiv.evaluate(data, prob="probs", labels="label")
    with pytest.raises(TypeError, match=r"^scan\(\) got an unexpected keyword argument 'windw'; did you mean 'window'\?$"):
        streamdiv.scan(data, probs="probs", labels="label", windw="1d")
