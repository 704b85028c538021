"""streamdiv.parquet_decode.flat_chunk: the numba walk over a flat column chunk's pages.

tests/test_parquet_decode.py compares its values with pyarrow's on fuzzed files; here, the parts that fuzzed
prediction files seldom reach: snappy copies (random floats compress to literals), malformed snappy blocks,
page headers with statistics, and that flat chunks are in fact decoded by this walk.
"""

from __future__ import annotations

import mmap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamdiv.parquet_decode import _chunk_metadata, decode_columns, decode_row_group, pages
from streamdiv.parquet_decode.flat_chunk import HAS_NULLS, HEADER_FIELDS, SNAPPY, UNCOMPRESSED, WALKED, \
    decode_flat_chunk, read_page_header, snappy_into
from streamdiv.parquet_decode.thrift import read_struct


def _compressible(draw_bytes: bytes, repeats: int) -> bytes:
    # runs and repeated phrases, so that snappy writes copies of all three kinds, overlapping ones included
    return b"".join(draw_bytes[: 1 + i % max(len(draw_bytes), 1)] * (1 + i % 7) for i in range(repeats)) + \
        b"\x00" * (70_000 * (repeats % 2))


@given(st.binary(min_size=0, max_size=300), st.integers(0, 200))
def test_snappy_into_gives_pyarrows_bytes(phrase, repeats):
    raw = _compressible(phrase, repeats)
    block = np.frombuffer(pa.compress(raw, codec="snappy", asbytes=True), np.uint8)
    out = np.empty(len(raw) + 16, np.uint8)
    assert snappy_into(block, 0, block.size, out) == len(raw)
    assert out[:len(raw)].tobytes() == raw


@given(st.binary(min_size=1, max_size=300), st.integers(1, 50), st.data())
def test_a_damaged_snappy_block_is_refused_not_read_past(phrase, repeats, data):
    raw = _compressible(phrase, repeats)
    block = bytearray(pa.compress(raw, codec="snappy", asbytes=True))
    cut = data.draw(st.integers(1, len(block) - 1)) if len(block) > 1 else 1
    truncated = np.frombuffer(bytes(block[:cut]), np.uint8)
    out = np.empty(len(raw), np.uint8)
    assert snappy_into(truncated, 0, truncated.size, out) in (-1, len(raw))  # a cut at an element's end
    assert snappy_into(np.frombuffer(bytes(block), np.uint8), 0, len(block), np.empty(max(len(raw) - 1, 0),
                                                                                     np.uint8)) == -1


def _chunk(path, column=0):
    metadata = pq.ParquetFile(path).metadata
    with open(path, "rb") as handle:
        data = np.frombuffer(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ), np.uint8)
    chunk = _chunk_metadata(str(path), data.size, 0, column)
    start = min(chunk[9], chunk.get(11) or chunk[9])
    return data[start:start + chunk[7]], metadata


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_page_headers_read_as_the_python_reader_reads_them(tmp_path, version):
    path = tmp_path / "p.parquet"
    values = np.random.default_rng(1).random(50_000).astype(np.float32)
    pq.write_table(pa.table({"p": values}), path, data_page_size=20_000, data_page_version=version,
                   write_statistics=True, use_dictionary=False)
    chunk, _ = _chunk(path)
    fields = np.empty(HEADER_FIELDS, np.int64)
    position = pages_read = 0
    while position < chunk.size:
        header, start = read_struct(memoryview(chunk), position)
        assert read_page_header(chunk, position, chunk.size, fields) == start
        assert [fields[1], fields[2], fields[3]] == [header[1], header[2], header[3]]
        sub, base = (header[5], 10) if 5 in header else (header[8], 30)
        assert all(fields[base + key] == value for key, value in sub.items() if isinstance(value, (int, bool)))
        position = start + header[3]
        pages_read += 1
    assert pages_read > 3


@pytest.mark.parametrize("compression", ["snappy", "none"])
@pytest.mark.parametrize("dictionary", [True, False])
def test_flat_chunks_are_walked_in_numba(tmp_path, monkeypatch, compression, dictionary):
    path = tmp_path / "p.parquet"
    rng = np.random.default_rng(2)
    table = pa.table({"p": rng.random(30_000), "label": pa.array(rng.integers(0, 2, 30_000), pa.int8())})
    pq.write_table(table, path, compression=compression, use_dictionary=dictionary, data_page_size=4096)

    def python_walk(*args):
        raise AssertionError("a flat chunk went page by page through Python")
    monkeypatch.setattr(pages, "_decode_pages", python_walk)
    decoded = decode_row_group(str(path), pq.ParquetFile(path).metadata, 0, ["p", "label"])
    assert np.array_equal(decoded["p"], table["p"].to_numpy())
    assert decoded["label"].dtype == np.int8 and np.array_equal(decoded["label"], table["label"].to_numpy())


def test_a_null_leaves_the_chunk_to_another_decoder(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"p": pa.array([0.5, None, 0.25] * 1000)}), path)
    chunk, _ = _chunk(path)
    assert decode_flat_chunk(chunk, SNAPPY, 1, np.empty(3000, np.uint64)) == HAS_NULLS
    assert decode_flat_chunk(chunk, UNCOMPRESSED, 1, np.empty(3000, np.uint64)) != WALKED  # snappy read as stored


@pytest.mark.parametrize("compression", ["snappy", "none"])
@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_damaged_pages_fall_back_or_give_pyarrows_values(tmp_path, compression, version):
    # bytes changed anywhere before the footer: the decoder gives pyarrow's values where pyarrow reads the
    # file, and otherwise leaves the column to pyarrow (no exception, no read past the bytes)
    rng = np.random.default_rng(3)
    table = pa.table({"p": rng.random(3000).astype(np.float32), "label": pa.array(rng.integers(0, 3, 3000), pa.int8()),
                      "w": rng.random(3000)})
    path = tmp_path / "p.parquet"
    pq.write_table(table, path, compression=compression, data_page_version=version, data_page_size=2048)
    raw = path.read_bytes()
    metadata = pq.ParquetFile(path).metadata
    compared = 0
    for trial in range(150):
        damaged = bytearray(raw)
        for at in rng.integers(4, len(raw) - metadata.serialized_size - 8, rng.integers(1, 6)):
            damaged[at] = rng.integers(0, 256)
        mutant = tmp_path / f"damaged{trial}.parquet"
        mutant.write_bytes(bytes(damaged))
        decoded = decode_columns(str(mutant), metadata, 0, ["p", "label", "w"])
        try:
            expected = pq.ParquetFile(mutant).read_row_group(0)
        except (OSError, pa.ArrowException):
            continue
        for name, values in decoded.items():
            assert np.array_equal(values, expected.column(name).to_numpy(), equal_nan=True)
            compared += 1
    assert compared > 100


def test_a_column_with_a_null_goes_to_pyarrow_without_the_python_walk(tmp_path, monkeypatch):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"p": pa.array([0.5, None, 0.25] * 1000), "label": pa.array([0, 1, 1] * 1000)}), path)

    def python_walk(*args):
        raise AssertionError("the Python walk read a chunk the numba walk had found a null in")
    monkeypatch.setattr(pages, "_decode_pages", python_walk)
    decoded = decode_columns(str(path), pq.ParquetFile(path).metadata, 0, ["p", "label"])
    assert list(decoded) == ["label"]
