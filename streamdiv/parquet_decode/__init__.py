"""Parquet column chunks of the layouts prediction files use, decoded straight into numpy arrays.

pyarrow reads the footer; this package maps the file and decodes each column chunk's
pages itself (:mod:`.pages`, :mod:`.levels`, :mod:`.thrift`).  It handles flat float32/float64/integer
columns and ``list`` / ``large_list`` / ``fixed_size_list`` of floats whose rows all have the same length,
without nulls; :func:`decode_row_group` returns None for anything else, and the caller reads that row group
with pyarrow.  Tested value for value against pyarrow on fuzzed files in ``tests/test_parquet_decode.py``.
"""

from __future__ import annotations

import mmap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streamdiv.parquet_decode.pages import CODECS, PHYSICAL_DTYPES, Leaf, decode_chunk

__all__ = ["decode_row_group"]

_NUMBER_TYPES = (pa.float32(), pa.float64(), pa.int8(), pa.int16(), pa.int32(), pa.int64())


def _leaf_index(schema: pq.ParquetSchema, name: str) -> int | None:
    matches = [i for i in range(len(schema)) if schema.column(i).path.split(".")[0] == name]
    return matches[0] if len(matches) == 1 else None


def _decode_column(file: mmap.mmap, metadata: pq.FileMetaData, row_group: int, name: str,
                   field: pa.Field) -> np.ndarray | None:
    kind = field.type
    is_list = pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    value_type = kind.value_type if is_list else kind
    index = _leaf_index(metadata.schema, name)
    if value_type not in _NUMBER_TYPES or index is None:
        return None
    column = metadata.schema.column(index)
    chunk = metadata.row_group(row_group).column(index)
    if (column.physical_type not in PHYSICAL_DTYPES or chunk.compression not in CODECS
            or column.max_repetition_level != (1 if is_list else 0)):
        return None
    start = chunk.data_page_offset
    if chunk.has_dictionary_page and chunk.dictionary_page_offset is not None:
        start = min(start, chunk.dictionary_page_offset)
    rows = metadata.row_group(row_group).num_rows
    # Without nulls a row group of rows of K values holds rows * K values: K is the one length it can be.
    row_length = kind.list_size if pa.types.is_fixed_size_list(kind) else chunk.num_values // max(rows, 1)
    if rows == 0 or chunk.num_values != rows * row_length:
        return None
    leaf = Leaf(PHYSICAL_DTYPES[column.physical_type], CODECS[chunk.compression], column.max_definition_level,
                column.max_repetition_level, row_length, pa.types.is_fixed_size_list(kind))
    if start + chunk.total_compressed_size > len(file):
        return None
    values = decode_chunk(memoryview(file)[start:start + chunk.total_compressed_size], chunk.num_values, leaf)
    if values is None:
        return None
    values = values.astype(value_type.to_pandas_dtype(), copy=False)
    return values.reshape(rows, row_length) if is_list else values


def decode_row_group(path: str, metadata: pq.FileMetaData, row_group: int,
                     columns: list[str]) -> dict[str, np.ndarray] | None:
    """The named columns of one row group as numpy arrays, or None if any of them needs pyarrow.

    A flat column comes back 1-D with its Arrow type's dtype (an ``int8`` column stored as INT32 is narrowed);
    a list column comes back as a C-contiguous ``(rows, K)`` matrix of its value type.  None when a column has
    a null, an empty list, lists that differ in length, a type, encoding, codec or page kind not listed in
    :mod:`.pages`, or bytes that do not parse (pyarrow then reports the corruption).  Safe to call from
    several threads at once: the numba kernels and pyarrow's codecs release the GIL.
    """
    schema = metadata.schema.to_arrow_schema()
    with open(path, "rb") as handle:
        # Mapped, not read: the pages are decompressed (or copied) straight from the page cache, without an
        # intermediate copy of the compressed chunk.  The map closes when its last view is dropped.
        file = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    result = {}
    for name in columns:
        if schema.get_field_index(name) < 0:
            return None
        decoded = _decode_column(file, metadata, row_group, name, schema.field(name))
        if decoded is None:
            return None
        result[name] = decoded
    return result
