"""A part of a source: one readable piece (a file, some row groups of one, an in-memory object) with its
schema and size, read batch by batch from its start or from a later row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import pyarrow as pa


@dataclass
class Part:
    """One readable piece of a source (a file, or an in-memory object) with its schema and size, if known.
    ``width`` gives the decoded bytes per row of the named columns, where the part can tell; ``first_row`` is
    the row number within ``name`` of the part's first row (not 0 for some row groups of a file)."""

    name: str
    schema: pa.Schema
    read: Callable[[list[str], int], Iterator[pa.RecordBatch]]
    rows: int | None = None
    bytes: int | None = None
    width: Callable[[list[str]], float | None] = lambda columns: None
    first_row: int = 0
    read_from: Callable[[list[str], int, int], Iterator[pa.RecordBatch]] | None = None

    def batches(self, columns: list[str], batch_size: int, skip: int = 0) -> Iterator[pa.RecordBatch]:
        """The part's batches of ``columns`` after its first ``skip`` rows: ``read_from`` starts there without
        decoding what comes before (a Parquet file's earlier row groups); other parts read the rows and drop
        them."""
        if skip == 0:
            yield from self.read(columns, batch_size)
            return
        if self.read_from is not None:
            yield from self.read_from(columns, batch_size, skip)
            return
        yield from drop_rows(self.read(columns, batch_size), skip)


def drop_rows(batches: Iterator[pa.RecordBatch], skip: int) -> Iterator[pa.RecordBatch]:
    """``batches`` without their first ``skip`` rows."""
    for batch in batches:
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            continue
        yield batch.slice(skip) if skip else batch
        skip = 0
