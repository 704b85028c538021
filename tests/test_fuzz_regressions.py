"""Inputs that the fuzz targets (fuzz/fuzz_inputs.py, tests/test_fuzz_tables.py) found mishandled, each
now answered with one of streamdiv's documented errors or the right report.

The fuzzer's inputs are in tests/fixtures/fuzz/ as it wrote them: their first byte chose how the rest was
read (fuzz/fuzz_scoring.py), so each is replayed through the fuzz target's scoring, and each case is also
stated directly.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import streamdiv
import streamdiv.sources

FIXTURES = Path(__file__).parent / "fixtures" / "fuzz"
sys.path.insert(0, str(Path(__file__).parent.parent / "fuzz"))
import fuzz_scoring  # noqa: E402


@pytest.mark.parametrize("name", sorted(path.name for path in FIXTURES.glob("*.bin")))
def test_the_fuzzers_inputs_get_a_report_or_a_streamdiv_error(name, tmp_path):
    fuzz_scoring.score((FIXTURES / name).read_bytes(), directory=str(tmp_path))


def test_a_column_name_not_in_utf8_is_a_source_error_naming_the_file(tmp_path):
    path = tmp_path / "predictions.csv"
    path.write_bytes(b'"label","p_\x8c1","p_2"\n1,0.5,0.5\n')
    with pytest.raises(streamdiv.SourceError, match=r"predictions\.csv: a column name is not UTF-8"):
        streamdiv.evaluate(str(path), probs="p_*", labels="label")


def test_an_ignored_row_is_ignored_whatever_its_prediction():
    # tests/test_fuzz_tables.py found an ignored row skipped when its prediction list was null or of the
    # wrong length (the columns layer flagged the prediction before it looked at the label)
    table = pa.table({"probs": pa.array([[0.25, 0.75], None, [0.5, 0.25, 0.25], [float("nan"), 1.0]]),
                      "label": pa.array([1, -100, -100, -100], pa.int8())})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", streamdiv.StreamdivWarning)
        for on_invalid in ("skip", "error"):
            report = streamdiv.evaluate(table, probs="probs", labels="label", ignore_label=-100,
                                        on_invalid=on_invalid)
            assert (report.metrics["rows"], report.metrics["ignored_rows"], report.metrics["skipped_rows"]) == \
                (1, 3, 0)
            assert report.metrics["cross_entropy"] == pytest.approx(-np.log(0.75), rel=1e-15)


def _table_with_offsets_past_the_data() -> pa.Table:
    """A string group column whose second row would run 1 MiB past its 3 bytes of data."""
    offsets = pa.py_buffer(np.array([0, 1 << 20, 1, 2], np.int32).tobytes())
    groups = pa.Array.from_buffers(pa.string(), 3, [None, offsets, pa.py_buffer(b"abc")])
    return pa.table({"probs": pa.array([[0.5, 0.5]] * 3), "label": pa.array([0, 1, 1]), "g": groups})


@pytest.mark.parametrize("kind", ["file", "stream", "file object"])
def test_arrow_ipc_offsets_past_the_data_are_a_source_error_not_a_crash(kind, tmp_path):
    # the fuzzer's IPC stream with such offsets segfaulted in pyarrow's dictionary_encode (the group keys)
    table = _table_with_offsets_past_the_data()
    path = tmp_path / ("damaged.arrow" if kind == "file" else "damaged.arrows")
    with (pa.ipc.new_file if kind == "file" else pa.ipc.new_stream)(str(path), table.schema) as writer:
        writer.write_table(table)
    with open(path, "rb") as handle:
        source = handle if kind == "file object" else str(path)
        with pytest.raises(streamdiv.SourceError, match=r"damaged\.arrows?: cannot read it after row 0: .*[Oo]ffset"):
            streamdiv.evaluate(source, probs="probs", labels="label", by="g")


def test_a_parquet_file_with_damaged_column_statistics_is_a_source_error_not_an_abort(tmp_path):
    # pyarrow's RowGroupMetaData.column() aborted the process on this file's statistics ("Definition level
    # histogram size mismatch", a C++ exception its binding lets through); the batch size no longer reads them
    path = tmp_path / "damaged.parquet"
    path.write_bytes((FIXTURES / "parquet-size-statistics-damaged.bin").read_bytes()[1:])
    with pytest.raises(streamdiv.SourceError, match=r"damaged\.parquet: cannot read it after row \d+"):
        streamdiv.evaluate(str(path), probs="probs", targets="target", weights="w", on_invalid="skip")


def test_a_parquet_files_batches_are_sized_by_its_decoded_rows(tmp_path):
    # the width probe that replaced the footer's counts: 8-byte labels and 3 float64 probabilities a row
    # (list offsets and validity add their own few bytes)
    path = tmp_path / "wide.parquet"
    table = pa.table({"probs": pa.array([[0.2, 0.3, 0.5]] * 5000, pa.list_(pa.float64(), 3)),
                      "label": pa.array([2] * 5000)})
    pq.write_table(table, path)
    part = streamdiv.sources.open_source(str(path)).parts[0]
    assert part.width(["probs", "label"]) == pytest.approx(32, rel=0.05)


def test_a_glob_matches_a_column_name_with_a_newline():
    # fnmatch matched "p_*" to a (quoted CSV) column name holding a newline, and the regex that takes the
    # class name from it did not, so an AttributeError escaped
    table = pa.table({"p_first\nclass": [0.25], "p_second": [0.75], "label": ["second"]})
    report = streamdiv.evaluate(table, probs="p_*", labels="label")
    assert report.metrics["cross_entropy"] == pytest.approx(-np.log(0.75), rel=1e-15)


def test_a_group_column_whose_text_is_not_utf8_is_an_error_naming_file_row_and_column(tmp_path):
    # the fuzzer's Parquet file held such a string: UnicodeDecodeError from pyarrow's to_pylist
    groups = pa.Array.from_buffers(pa.string(), 3, [None, pa.py_buffer(np.array([0, 1, 2, 3], np.int32).tobytes()),
                                                     pa.py_buffer(b"a\xe1b")])
    table = pa.table({"probs": pa.array([[0.5, 0.5]] * 3), "label": pa.array([0, 1, 1]), "region": groups})
    path = tmp_path / "predictions.parquet"
    pq.write_table(table, path)
    with pytest.raises(streamdiv.SchemaError,
                       match=r"predictions\.parquet: row 1, column 'region': text that is not UTF-8: b'\\xe1'"):
        streamdiv.evaluate(str(path), probs="probs", labels="label", by="region")
