"""Parquet column chunks of the layouts prediction files use, decoded straight into numpy arrays.

pyarrow reads the footer; this package maps the file and decodes each column chunk's
pages itself (:mod:`.pages`, :mod:`.levels`, :mod:`.thrift`; a flat chunk in one numba call,
:mod:`.flat_chunk`).  It handles flat float32/float64/signed integer columns (:data:`NUMBER_TYPES`) and
``list`` / ``large_list`` / ``fixed_size_list`` of floats whose rows all have the same length, without nulls;
:func:`decode_columns` leaves out any other column, which the caller reads with pyarrow.  Tested value for
value against pyarrow on fuzzed files in ``tests/test_parquet_decode.py``.
"""

from __future__ import annotations

import functools
import mmap
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streamdiv.kernels.numba_cache import guard_sources

# flat_chunk compiles in levels' functions: a change to either recompiles both (see kernels.numba_cache); this
# runs before the first @njit(cache=True) of the package is decorated.
guard_sources([os.path.dirname(os.path.abspath(__file__))])

from streamdiv.parquet_decode.pages import CODECS, PHYSICAL_DTYPES, Leaf, decode_chunk  # noqa: E402
from streamdiv.parquet_decode.thrift import ThriftError, read_struct  # noqa: E402

__all__ = ["NUMBER_TYPES", "decode_columns", "decode_row_group"]

NUMBER_TYPES = (pa.float32(), pa.float64(), pa.int8(), pa.int16(), pa.int32(), pa.int64())  # flat, or a list's


def _leaf_index(schema: pq.ParquetSchema, name: str) -> int | None:
    matches = [i for i in range(len(schema)) if schema.column(i).path.split(".")[0] == name]
    return matches[0] if len(matches) == 1 else None


def _decode_column(file: mmap.mmap, path: str, metadata: pq.FileMetaData, row_group: int, name: str,
                   field: pa.Field) -> np.ndarray | None:
    kind = field.type
    is_list = pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    value_type = kind.value_type if is_list else kind
    index = _leaf_index(metadata.schema, name)
    if value_type not in NUMBER_TYPES or index is None:
        return None
    column = metadata.schema.column(index)
    chunk = _chunk_metadata(path, len(file), row_group, index)
    if chunk is None:
        return None
    codec = _CODEC_NAMES.get(chunk.get(4)) if isinstance(chunk.get(4), int) else None  # a damaged one: a list
    if (column.physical_type not in PHYSICAL_DTYPES or codec not in CODECS
            or column.max_repetition_level != (1 if is_list else 0)):
        return None
    num_values, size, start = chunk.get(5), chunk.get(7), chunk.get(9)
    if not all(isinstance(value, int) and value >= 0 for value in (num_values, size, start)):
        return None
    if isinstance(chunk.get(11), int) and 0 < chunk[11] < start:  # the dictionary page comes first
        start = chunk[11]
    rows = metadata.row_group(row_group).num_rows
    # Without nulls a row group of rows of K values holds rows * K values: K is the one length it can be.
    row_length = kind.list_size if pa.types.is_fixed_size_list(kind) else num_values // max(rows, 1)
    if rows == 0 or num_values != rows * row_length:
        return None
    leaf = Leaf(PHYSICAL_DTYPES[column.physical_type], CODECS[codec], column.max_definition_level,
                column.max_repetition_level, row_length, pa.types.is_fixed_size_list(kind))
    if start + size > len(file):
        return None
    values = decode_chunk(memoryview(file)[start:start + size], num_values, leaf)
    if values is None:
        return None
    values = values.astype(value_type.to_pandas_dtype(), copy=False)
    return values.reshape(rows, row_length) if is_list else values


# parquet.thrift's CompressionCodec, by number, as pages.CODECS names them
_CODEC_NAMES = {0: "UNCOMPRESSED", 1: "SNAPPY", 6: "ZSTD"}


def _chunk_metadata(path: str, size: int, row_group: int, column: int) -> dict[int, object] | None:
    """The ColumnMetaData struct of a column chunk (fields by parquet.thrift's ids: 4 codec, 5 num_values,
    7 total_compressed_size, 9 data_page_offset, 11 dictionary_page_offset) of the file at ``path``, of
    ``size`` bytes as mapped, read from its footer with our own Thrift reader; None when the footer does not
    hold it.  Not pyarrow's RowGroupMetaData.column(): on a damaged chunk's statistics or level histograms
    it throws a C++ exception that its binding does not catch, and the process aborts (found by
    fuzz/fuzz_inputs.py)."""
    row_groups = _footer_row_groups(path, os.stat(path).st_mtime_ns, size)
    try:
        metadata = row_groups[row_group][1][column][3]
    except (KeyError, IndexError, TypeError):
        return None
    return metadata if isinstance(metadata, dict) else None


@functools.lru_cache(maxsize=4)
def _footer_row_groups(path: str, mtime_ns: int, size: int) -> object:
    """The footer's row groups (FileMetaData field 4) of the file at ``path`` as it was at ``mtime_ns`` with
    ``size`` bytes, parsed once per file, not once per column chunk: a footer grows with its row groups, and
    parsing it for each of them made a file of many row groups quadratic.  None when it does not parse."""
    with open(path, "rb") as handle:
        if size < 12 or handle.seek(size - 8) != size - 8:
            return None
        tail = handle.read(8)
        length = int.from_bytes(tail[:4], "little")
        if tail[4:] != b"PAR1" or length > size - 12:
            return None
        handle.seek(size - 8 - length)
        footer_bytes = handle.read(length)
    try:
        footer, _ = read_struct(footer_bytes)
    except ThriftError:
        return None
    return footer.get(4)


def decode_row_group(path: str, metadata: pq.FileMetaData, row_group: int,
                     columns: list[str]) -> dict[str, np.ndarray] | None:
    """The named columns of one row group as numpy arrays, or None if any of them needs pyarrow.

    A flat column comes back 1-D with its Arrow type's dtype (an ``int8`` column stored as INT32 is narrowed);
    a list column comes back as a C-contiguous ``(rows, K)`` matrix of its value type.  None when a column has
    a null, an empty list, lists that differ in length, a type, encoding, codec or page kind not listed in
    :mod:`.pages`, or bytes that do not parse (pyarrow then reports the corruption).  Safe to call from
    several threads at once: the numba kernels and pyarrow's codecs release the GIL.
    """
    decoded = decode_columns(path, metadata, row_group, columns)
    return decoded if len(decoded) == len(columns) else None


def decode_columns(path: str, metadata: pq.FileMetaData, row_group: int,
                   columns: list[str]) -> dict[str, np.ndarray]:
    """Those of the named columns of one row group that this package decodes (as :func:`decode_row_group`
    gives them), by name; the others, left to pyarrow, are absent."""
    schema = metadata.schema.to_arrow_schema()
    with open(path, "rb") as handle:
        # Mapped, not read: the pages are decompressed (or copied) straight from the page cache, without an
        # intermediate copy of the compressed chunk.  The map closes when its last view is dropped.
        file = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    result = {}
    for name in columns:
        if schema.get_field_index(name) < 0:
            continue
        decoded = _decode_column(file, path, metadata, row_group, name, schema.field(name))
        if decoded is not None:
            result[name] = decoded
    return result
