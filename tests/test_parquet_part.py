"""A Parquet file scored through streamdiv.parquet_decode gives the report pyarrow's reader gives, to the bit:
every list layout, float32 and float64, several row groups, nulls and ragged rows (which the decoder leaves
to pyarrow), groups, and a scan resumed from a checkpoint."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import streamdiv
from streamdiv import parquet_part


def predictions(rows: int, classes: int, kind: str, dtype: str, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    probs = rng.random((rows, classes)).astype(dtype)
    probs /= probs.sum(axis=1, keepdims=True)
    values = pa.array(probs.reshape(-1))
    if kind == "fixed":
        column = pa.FixedSizeListArray.from_arrays(values, classes)
    else:
        offsets = np.arange(0, (rows + 1) * classes, classes)
        array_type = pa.LargeListArray if kind == "large" else pa.ListArray
        column = array_type.from_arrays(pa.array(offsets, pa.int64() if kind == "large" else pa.int32()), values)
    labels = pa.array(rng.integers(0, classes, rows).astype(np.int32))
    region = pa.array(rng.choice(["eu", "us"], rows)).dictionary_encode()
    return pa.table({"probs": column, "label": labels, "region": region})


def both_ways(path, monkeypatch, **options):
    reports = []
    for own in (True, False):
        monkeypatch.setattr(parquet_part, "OWN_DECODER", own)
        reports.append(streamdiv.evaluate(path, **options).to_dict())
    return reports


@pytest.mark.parametrize("kind", ["fixed", "list", "large"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("compression", ["snappy", "zstd", "none"])
def test_the_own_decoder_gives_pyarrows_report(tmp_path, monkeypatch, kind, dtype, compression):
    path = tmp_path / "p.parquet"
    pq.write_table(predictions(30_000, 7, kind, dtype), path, row_group_size=11_000, compression=compression)
    metadata = pq.ParquetFile(path).metadata
    assert parquet_part.own_batches(str(path), metadata, 1, ["probs", "label"], 4096) is not None  # decoded
    ours, theirs = both_ways(path, monkeypatch, probs="probs", labels="label", by="region")
    assert ours == theirs


def test_row_groups_the_decoder_leaves_to_pyarrow_read_the_same(tmp_path, monkeypatch):
    table = predictions(20_000, 4, "list", "float32")
    probs = table.column("probs").to_pylist()
    probs[12_345] = None  # a null row: this row group goes through pyarrow
    probs[3] = [0.5, None, 0.25, 0.25]
    path = tmp_path / "p.parquet"
    pq.write_table(table.set_column(0, "probs", pa.array(probs, pa.list_(pa.float32()))), path,
                   row_group_size=5_000)
    ours, theirs = both_ways(path, monkeypatch, probs="probs", labels="label", on_invalid="skip")
    assert ours == theirs
    assert ours["metrics"]["skipped_rows"] == 2


def test_a_scan_resumed_mid_row_group_reads_the_same(tmp_path, monkeypatch):
    path = tmp_path / "p.parquet"
    pq.write_table(predictions(40_000, 5, "fixed", "float32"), path, row_group_size=9_000)
    whole = streamdiv.evaluate(path, probs="probs", labels="label").to_dict()
    calls = iter(range(100))

    def stop(rows, nbytes):
        if next(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        streamdiv.evaluate(path, probs="probs", labels="label", checkpoint=tmp_path / "ck", checkpoint_every=1,
                           batch_size=4_000, progress=stop)
    resumed = streamdiv.evaluate(path, probs="probs", labels="label", checkpoint=tmp_path / "ck", resume=True)
    assert resumed.to_dict() == whole
