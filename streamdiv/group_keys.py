"""Group keys: a batch's group columns (Arrow or numpy) become each row's index into the batch's distinct
keys, tuples of JSON-safe values (one per column; None for a null), as ``State`` keeps them.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import ColumnTypeError, SchemaError

# A group column as given: an Arrow array (chunked or not) or anything numpy takes.
GroupColumn = Any


def group_keys(columns: Sequence[GroupColumn], names: Sequence[str] = ()) -> tuple[list[tuple], np.ndarray]:
    """The distinct group keys of a batch (tuples, one value per column) and each row's index into them;
    ``names`` name the columns in errors.

    Each column is dictionary-encoded (nulls get a code of their own), the per-column codes are combined in
    mixed radix into one int64 code per row, and the codes present are found with a dense table when the
    radix product is small (no sort: O(rows)), else with np.unique.
    """
    codes = np.zeros(len(columns[0]) if columns else 0, dtype=np.int64)
    dictionaries = []
    radix = 1
    if not columns:
        raise SchemaError("no group columns given")
    for position, column in enumerate(columns):
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if not isinstance(column, pa.Array):
            column = pa.array(np.asarray(column))
        encoded = column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
        words = [_json_safe(value) for value in _group_values(encoded, names[position] if names else "by")]
        words.append(None)
        indices = encoded.indices.fill_null(len(words) - 1).to_numpy(zero_copy_only=False)
        codes = codes * len(words) + indices.astype(np.int64)
        radix *= len(words)
        dictionaries.append(words)
    if radix <= 1 << 22:
        present = np.flatnonzero(np.bincount(codes, minlength=radix))
        table = np.empty(radix, dtype=np.int64)
        table[present] = np.arange(len(present))
        inverse = table[codes]
    else:
        present, inverse = np.unique(codes, return_inverse=True)
    keys = []
    for code in present.tolist():
        key = []
        for words in reversed(dictionaries):
            code, index = divmod(code, len(words))
            key.append(words[index])
        keys.append(tuple(reversed(key)))
    return keys, inverse.reshape(-1).astype(np.int64, copy=False)


def _group_values(encoded: pa.DictionaryArray, name: str) -> list[Any]:
    """A dictionary-encoded group column's distinct values; text that is not UTF-8 (Arrow does not check it
    when a file is read) is a ColumnTypeError naming the first row that holds it."""
    try:
        return encoded.dictionary.to_pylist()
    except UnicodeDecodeError:
        for index, value in enumerate(encoded.dictionary):
            try:
                value.as_py()
            except UnicodeDecodeError:
                row = pc.index(encoded.indices, index).as_py()
                raise ColumnTypeError(f"text that is not UTF-8: {value.as_buffer().to_pybytes()!r:.60}", name,
                                      row) from None
        raise


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return str(value)
