"""Every kind of source gives the same report; only the named columns are read."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from conftest import make_hard

import streamdiv

_, PROBS, LABELS = make_hard(n=1000, num_classes=3, seed=21)
TABLE = pa.table({
    "probs": pa.FixedSizeListArray.from_arrays(pa.array(PROBS.reshape(-1)), 3),
    "label": LABELS,
    "p_0": PROBS[:, 0], "p_1": PROBS[:, 1], "p_2": PROBS[:, 2],
    "segment": np.where(np.arange(1000) < 400, "a", "b"),
    "unused": np.zeros(1000),
})
EXPECTED = streamdiv.Accumulator().update(probs=PROBS, labels=LABELS).report().metrics


def score(source, **kwargs):
    options = {"probs": "probs", "labels": "label"} | kwargs
    return streamdiv.evaluate(source, **options).metrics


def test_parquet_file_list_and_glob(tmp_path):
    pq.write_table(TABLE.slice(0, 600), tmp_path / "a.parquet", row_group_size=250)
    pq.write_table(TABLE.slice(600), tmp_path / "b.parquet", row_group_size=250)
    assert score(tmp_path / "a.parquet")["rows"] == 600
    assert score([str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")]) == EXPECTED
    assert score(str(tmp_path / "*.parquet"), batch_size=128) == EXPECTED


def test_hive_partitioned_directory(tmp_path):
    pq.write_to_dataset(TABLE, tmp_path / "data", partition_cols=["segment"])
    report = streamdiv.evaluate(tmp_path / "data", probs="probs", labels="label", by="segment")
    assert {g["group"]["segment"]: g["metrics"]["rows"] for g in report.groups} == {"a": 400, "b": 600}
    assert report.metrics["cross_entropy"] == pytest.approx(EXPECTED["cross_entropy"], rel=1e-14)


def test_arrow_ipc_file_and_stream(tmp_path):
    feather.write_feather(TABLE, tmp_path / "t.arrow", chunksize=300)
    assert score(tmp_path / "t.arrow") == EXPECTED
    feather.write_feather(TABLE, tmp_path / "t.feather", compression="uncompressed")
    assert score(tmp_path / "t.feather") == EXPECTED
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, TABLE.schema) as writer:
        for batch in TABLE.to_batches(max_chunksize=333):
            writer.write_batch(batch)
    (tmp_path / "t.arrows").write_bytes(sink.getvalue())
    assert score(tmp_path / "t.arrows") == EXPECTED
    assert score(io.BytesIO(sink.getvalue())) == EXPECTED


def test_csv_with_wide_columns(tmp_path):
    pa_csv.write_csv(TABLE.drop_columns(["probs"]), tmp_path / "t.csv")
    metrics = score(tmp_path / "t.csv", probs="p_*")
    for name, value in EXPECTED.items():
        assert metrics[name] == (pytest.approx(value, rel=1e-15) if isinstance(value, float) else value), name


def test_in_memory_sources():
    assert score(TABLE) == EXPECTED
    assert score(TABLE.combine_chunks().to_batches()[0]) == EXPECTED
    assert score(pa.RecordBatchReader.from_batches(TABLE.schema, TABLE.to_batches(max_chunksize=100))) == EXPECTED
    assert score(ds.dataset(TABLE)) == EXPECTED
    assert score({"probs": PROBS, "label": LABELS}) == EXPECTED


class CapsuleOnly:
    """Stands for pandas, polars or a DuckDB result: it offers only the Arrow PyCapsule stream protocol."""

    def __init__(self, table):
        self._table = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self._table.__arrow_c_stream__(requested_schema)


def test_arrow_c_stream_protocol():
    assert score(CapsuleOnly(TABLE)) == EXPECTED


def test_only_the_named_columns_are_read(tmp_path):
    pq.write_table(TABLE, tmp_path / "t.parquet")
    opened = streamdiv.sources.open_source(tmp_path / "t.parquet")
    chunks = list(opened.chunks(["probs", "label"], 10_000))
    assert [c.batch.schema.names for c in chunks] == [["probs", "label"]]


@pytest.mark.parametrize("classes", [2000, 3])
def test_batches_hold_a_few_mib_of_decoded_columns_whatever_the_width(tmp_path, classes):
    """By default a batch holds about BATCH_BYTES of decoded columns: wide rows (a vocabulary) come a few at a
    time, so that memory does not grow with the number of classes; narrow rows come many at a time, in
    whole row blocks.  The report does not change."""
    rows = 3000
    probs = np.full((rows, classes), 1.0 / classes, dtype=np.float32)
    table = pa.table({"probs": pa.FixedSizeListArray.from_arrays(pa.array(probs.reshape(-1)), classes),
                      "label": np.arange(rows) % classes})
    pq.write_table(table, tmp_path / "wide.parquet", row_group_size=1000)
    for source in (tmp_path / "wide.parquet", table):
        opened = streamdiv.sources.open_source(source)
        chunks = list(opened.chunks(["probs", "label"], multiple_of=512))
        assert sum(c.batch.num_rows for c in chunks) == rows
        assert max(c.batch.nbytes for c in chunks) <= 1.25 * streamdiv.sources.BATCH_BYTES
        if classes == 2000:  # 8008 bytes a row: 523 rows in 4 MiB, rounded to one multiple of 512
            assert max(c.batch.num_rows for c in chunks) == 512
        else:  # whole row groups, or the whole table, in one batch: fewer rows than a batch holds
            assert len(chunks) == (3 if source != table else 1)
    report = streamdiv.evaluate(tmp_path / "wide.parquet", probs="probs", labels="label").metrics
    assert report["rows"] == rows and report["cross_entropy"] == pytest.approx(np.log(classes), rel=1e-6)


def test_row_groups_decoded_at_once_still_come_in_order(tmp_path):
    """Row groups decode on threads of their own, a few at once (sources.ROW_GROUPS_IN_FLIGHT), yet batches
    come in file order, numbered from the right row, and the report is the same bits as in memory."""
    pq.write_table(TABLE, tmp_path / "groups.parquet", row_group_size=70)  # 15 groups, the last of 20 rows
    opened = streamdiv.sources.open_source(tmp_path / "groups.parquet")
    for batch_size in (32, 70, 1000):
        chunks = list(opened.chunks(["probs", "label"], batch_size))
        assert [c.first_row for c in chunks] == list(np.cumsum([0] + [c.batch.num_rows for c in chunks[:-1]]))
        assert pa.Table.from_batches([c.batch for c in chunks]) == TABLE.select(["probs", "label"])
        assert score(tmp_path / "groups.parquet", batch_size=batch_size) == EXPECTED
    bad = TABLE.set_column(1, "label", pa.array(np.where(np.arange(1000) == 917, 5, LABELS)))
    pq.write_table(bad, tmp_path / "bad.parquet", row_group_size=70)
    with pytest.raises(streamdiv.InvalidRowError) as error:
        score(tmp_path / "bad.parquet", batch_size=32)
    assert (error.value.path, error.value.row, error.value.column) == (str(tmp_path / "bad.parquet"), 917, "label")


def test_rows_per_batch_rounds_to_whole_blocks():
    rows_per_batch = streamdiv.sources.rows_per_batch
    assert rows_per_batch(42.8, 16384) == 98304  # 10 float32 probabilities and a label: 6 blocks
    assert rows_per_batch(4.7, 16384) % 16384 == 0 and rows_per_batch(4.7) <= streamdiv.sources.MAX_BATCH_ROWS
    assert rows_per_batch(404, 32768) == 32768  # 100 classes: grown to a block for each of 2 threads (13 MB)
    assert rows_per_batch(4004, 32768) == 1047  # 1000 classes: 131 MB would be too much; 4 MiB it is
    assert rows_per_batch(129418.6, 16384) == 32  # a vocabulary: far fewer rows than a block
    assert rows_per_batch(None) == streamdiv.sources.DEFAULT_BATCH_ROWS


def test_unknown_source_type_lists_what_is_accepted():
    with pytest.raises(TypeError, match="__arrow_c_stream__"):
        streamdiv.evaluate(42, probs="p", labels="y")


def test_missing_file_and_column_are_clear(tmp_path):
    with pytest.raises(streamdiv.SourceError, match="no such file"):
        score(tmp_path / "missing.parquet")
    with pytest.raises(streamdiv.SourceError, match="no file matches"):
        score(str(tmp_path / "*.parquet"))
    pq.write_table(TABLE, tmp_path / "t.parquet")
    with pytest.raises(streamdiv.SchemaError, match="no column named 'nope'.*probs, label"):
        score(tmp_path / "t.parquet", labels="nope")


def test_stdin_stream_in_a_subprocess(tmp_path):
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, TABLE.schema) as writer:
        writer.write_table(TABLE, max_chunksize=250)
    code = ("import streamdiv, json; r = streamdiv.evaluate('-', probs='probs', labels='label'); "
            "print(json.dumps(r.to_dict()['metrics']))")
    done = subprocess.run([sys.executable, "-c", code], input=sink.getvalue(), capture_output=True, check=True,
                          env=os.environ | {"PYTHONWARNINGS": "error"})
    import json
    assert json.loads(done.stdout)["cross_entropy"] == EXPECTED["cross_entropy"]


def test_a_directory_widens_its_files_types_where_nothing_is_lost(tmp_path):
    """float32 then float64 probabilities, int32 then int64 labels: every file read in the wider type (the
    same bits as the files listed one by one), never the first file's narrower one."""
    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(3), 500)
    labels = rng.integers(0, 3, 500)
    for name, float_type, int_type in (("a", np.float32, np.int32), ("b", np.float64, np.int64)):
        pq.write_table(pa.table({"probs": pa.FixedSizeListArray.from_arrays(pa.array(probs.astype(float_type).ravel()), 3),
                                 "label": labels.astype(int_type)}), tmp_path / f"{name}.parquet")
    from_directory = streamdiv.evaluate(str(tmp_path), probs="probs", labels="label")
    listed = streamdiv.evaluate([str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")], probs="probs",
                                labels="label")
    assert from_directory.metrics == listed.metrics


def test_a_directory_whose_files_types_cannot_be_widened_is_refused(tmp_path):
    for name, labels in (("a", np.zeros(5, dtype=np.int64)), ("b", np.zeros(5))):
        pq.write_table(pa.table({"p": np.full(5, 0.5), "y": labels}), tmp_path / f"{name}.parquet")
    with pytest.raises(streamdiv.SourceError, match=r"column 'y' is int64 in .*a\.parquet but double in .*b\.parquet, "
                                                    r"and no type holds both without loss"):
        streamdiv.evaluate(str(tmp_path), probs="p", labels="y")
