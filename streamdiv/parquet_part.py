"""A Parquet file as a part of a source: its row groups decoded two at a time, each on its own thread, in
file order, from the first row group or from the one that holds a given row.

A local file's list columns of floats (the probabilities) and its flat number columns (labels, weights,
binary predictions, per-class columns) are decoded by :mod:`streamdiv.parquet_decode`, straight from the
pages into one array per row group: lists 2.0-3.6x faster than pyarrow's nested-list reader, flat columns
level with pyarrow (0.83-1.12x its time; benchmarks/decode.py).  The other columns, and every column chunk
that decoder does not handle (nulls, ragged or empty lists, other encodings), are read by pyarrow.  Both give
the same values (tests/test_parquet_decode.py, tests/test_parquet_part.py)."""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .ahead import chained_ahead
from .parquet_decode import NUMBER_TYPES, decode_columns
from .part import Part, drop_rows

ROW_GROUPS_IN_FLIGHT = 2  # a Parquet file's row groups decoding at once, each on its own thread
BATCHES_AHEAD = 2  # decoded batches waiting per row group in flight
WIDTH_PROBE_ROWS = 1024  # rows decoded to measure a Parquet file's bytes per row
OWN_DECODER = True  # list and flat number columns through parquet_decode (False: pyarrow alone, as tests compare)


def parquet_part(path: str, *, row_groups: Sequence[int] | None = None, filesystem: Any = None,
                 first_row: int = 0) -> Part:
    """A Parquet file, or only its ``row_groups`` (whose first row is row ``first_row`` of the file), read
    through a pyarrow ``filesystem`` when given (a local path when None)."""
    def open_file(metadata: pq.FileMetaData | None = None) -> pq.ParquetFile:
        return pq.ParquetFile(filesystem.open_input_file(path) if filesystem is not None else path,
                              metadata=metadata)

    parquet = open_file()
    metadata = parquet.metadata
    groups = range(metadata.num_row_groups) if row_groups is None else list(row_groups)
    local = filesystem is None and os.path.isfile(path)

    def read_groups(columns: list[str], batch_size: int, chosen: list[int], within: int = 0
                    ) -> Iterator[pa.RecordBatch]:
        """The batches of the ``chosen`` row groups, without the first ``within`` rows of the first.

        One iterator per row group: a single iter_batches over the whole file keeps growing Arrow's pool with
        every row group it passes, while a fresh one per row group keeps memory flat.  Each row group has its
        own ParquetFile (one is not safe to share between threads) on its own thread, so that the next row
        group decodes while this one is scored: iter_batches decodes a single list column on one core, and a
        light kernel would leave the other idle (benchmarks/reader.py)."""
        def decode(index: int, group: int) -> Callable[[], Iterator[pa.RecordBatch]]:
            def batches() -> Iterator[pa.RecordBatch]:
                found = own_batches(path, metadata, group, columns, batch_size) if local else None
                if found is None:
                    found = open_file(metadata).iter_batches(batch_size=batch_size, row_groups=[group],
                                                             columns=columns, use_threads=True)
                return drop_rows(found, within) if index == 0 and within else found
            return batches

        yield from chained_ahead((decode(index, group) for index, group in enumerate(chosen)),
                                 ROW_GROUPS_IN_FLIGHT, BATCHES_AHEAD)

    def read(columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        yield from read_groups(columns, batch_size, list(groups))

    def read_from(columns: list[str], batch_size: int, skip: int) -> Iterator[pa.RecordBatch]:
        """The batches after the part's first ``skip`` rows, from the row group that holds row ``skip``."""
        later, within = groups_after(list(groups), [metadata.row_group(g).num_rows for g in groups], skip)
        yield from read_groups(columns, batch_size, later, within)

    def width(columns: list[str]) -> float | None:
        """Decoded bytes per row of the columns, measured on the first WIDTH_PROBE_ROWS rows (None for a file
        without rows, or whose first rows cannot be decoded: reading it then says why).  Not from the
        footer's per-column counts: pyarrow's RowGroupMetaData.column() aborts the process on a damaged
        column chunk's statistics (a C++ exception that its binding does not catch)."""
        holding_rows = [group for group in groups if metadata.row_group(group).num_rows]
        if not holding_rows:
            return None
        try:
            probe = next(parquet.iter_batches(batch_size=WIDTH_PROBE_ROWS, row_groups=holding_rows[:1],
                                              columns=columns, use_threads=False), None)
        except (OSError, pa.ArrowException):
            return None
        return probe.nbytes / probe.num_rows if probe is not None and probe.num_rows else None

    rows = sum(metadata.row_group(group).num_rows for group in groups)
    size = filesystem.get_file_info(path).size if filesystem is not None else os.path.getsize(path)
    return Part(path, parquet.schema_arrow, read, rows=rows, bytes=size, width=width, first_row=first_row,
                read_from=read_from)


def groups_after(groups: list[int], rows: list[int], skip: int) -> tuple[list[int], int]:
    """The row groups from the one holding row ``skip`` of their rows on, and how many of its rows come
    before that row."""
    for index, count in enumerate(rows):
        if skip < count:
            return groups[index:], skip
        skip -= count
    return [], 0


def own_batches(path: str, metadata: pq.FileMetaData, group: int, columns: list[str],
                batch_size: int) -> Iterator[pa.RecordBatch] | None:
    """Row group ``group``'s batches with its list columns of floats and its flat number columns decoded by
    streamdiv.parquet_decode where it can, each column on its own, and the other columns by pyarrow; None when
    it has no such column, OWN_DECODER is off, or the decoder leaves every one of them to pyarrow."""
    schema = metadata.schema.to_arrow_schema()
    ours = [name for name in columns if _decodable(schema.field(name).type)]
    decoded = decode_columns(path, metadata, group, ours) if ours and OWN_DECODER else {}
    if not decoded:
        return None
    rest = [name for name in columns if name not in decoded]
    others = pq.ParquetFile(path, metadata=metadata).read_row_group(group, columns=rest) if rest else None
    arrays = [_arrow(decoded[name], schema.field(name).type) if name in decoded else others.column(name)
              for name in columns]
    return iter(pa.Table.from_arrays(arrays, names=columns).to_batches(max_chunksize=batch_size))


def _decodable(kind: pa.DataType) -> bool:
    """Whether streamdiv.parquet_decode may decode a column of this type: a list of floats, or a flat float
    or signed integer column (the labels, weights, a binary prediction, per-class columns)."""
    return _float_list(kind) or kind in NUMBER_TYPES


def _arrow(values: np.ndarray, kind: pa.DataType) -> pa.Array:
    return list_array(values, kind) if values.ndim == 2 else pa.array(values, type=kind)


def _float_list(kind: pa.DataType) -> bool:
    return (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)) and \
        pa.types.is_floating(kind.value_type)


def list_array(matrix: Any, kind: pa.DataType) -> pa.Array:
    """A (rows, K) matrix as an Arrow list array of type ``kind``, its values buffer the matrix's own."""
    rows, classes = matrix.shape
    values = pa.array(matrix.reshape(-1))
    if pa.types.is_fixed_size_list(kind):
        return pa.FixedSizeListArray.from_arrays(values, type=kind)
    offsets = pa.array(np.arange(0, (rows + 1) * classes, classes,
                                 dtype=np.int64 if pa.types.is_large_list(kind) else np.int32))
    return (pa.LargeListArray if pa.types.is_large_list(kind) else pa.ListArray).from_arrays(offsets, values,
                                                                                             type=kind)

