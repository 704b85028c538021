"""Columns: one batch's Arrow arrays (or numpy arrays) become the kernels' numpy views, validated.

Distributions become a 2-D (rows x classes) float32/float64 array, zero-copy where Arrow's buffers allow it
(fixed-size lists, lists whose rows all have K values); a binary prediction stays 1-D.  Labels become int64
class indices, weights float64.  Problems that the kernels cannot see (nulls, unknown label strings, lists of
the wrong length, ``ignore_label``) are written into a uint8 status per row before the kernel runs.

Arrow traps handled here: ``.values`` of a sliced array ignores its offset; ``flatten()`` drops null rows and
misaligns everything after them; float16 must be upcast; an int column with nulls turns into float NaN in
``to_numpy``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .kernels.status import (CODE_IGNORED, NULL_LABEL, NULL_PREDICTION, NULL_TARGET, NULL_WEIGHT, OK,
                             UNKNOWN_LABEL, WRONG_LENGTH_PREDICTION, WRONG_LENGTH_TARGET)
from . import row_fills
from .errors import ColumnTypeError, SchemaError
from .kernels.interleave import stack_columns
from .kernels.list_offsets import common_length

# A role's raw input: an Arrow array, a numpy array, or (wide layout) a sequence of per-class 1-D arrays.
RawColumn = Any


@dataclass
class Prepared:
    """One batch ready for a kernel, plus what is needed to describe a bad row."""

    pred: np.ndarray
    is_logits: bool
    labels: np.ndarray | None
    targets: np.ndarray | None
    weights: np.ndarray | None
    status: np.ndarray
    binary: bool
    num_classes: int
    class_names: tuple[str, ...] | None
    prediction_tolerance: float
    target_tolerance: float
    raw: dict[str, RawColumn] = field(default_factory=dict)
    # arrays converted block by block (row_fills): driver.score_batch fills the rows [lo, hi) before it
    # scores them, so pred and labels hold their values only once the kernels have run
    fills: tuple[row_fills.RowFill, ...] = ()

    def fill(self, *, pred: bool = True) -> Callable[[int, int], None] | None:
        """The call that fills the rows [lo, hi) of the deferred arrays (None if there are none); without
        ``pred``, every one but the per-class predictions', for a kernel that reads the columns themselves."""
        return row_fills.filler([f for f in self.fills if pred or not f.interleaves])

    @property
    def per_class(self) -> row_fills.RowFill | None:
        """The fill that interleaves per-class prediction columns into pred, whose columns a kernel may read
        where they lie instead (pred is then left unfilled); None for other layouts."""
        return next((f for f in self.fills if f.interleaves), None)

    def prediction_row(self, row: int) -> np.ndarray:
        """Row ``row`` of the predictions as float64: from the per-class columns when there are some (pred may
        be unfilled), else from pred."""
        per_class = self.per_class
        if per_class is not None:
            return np.array([column[row] for column in per_class.sources], dtype=np.float64)
        return np.asarray(self.pred[row], dtype=np.float64).reshape(-1)

    @property
    def n_rows(self) -> int:
        return len(self.status)

    @property
    def label_free(self) -> bool:
        """Whether the batch has predictions alone, neither labels nor targets."""
        return self.labels is None and self.targets is None


def row_sum_tolerance(dtype: np.dtype) -> float:
    """max(sqrt(eps of the storage dtype), sqrt(eps of float32)): 3.45e-4 for float32/64, 3.1e-2 for float16."""
    return max(math.sqrt(np.finfo(dtype).eps), math.sqrt(np.finfo(np.float32).eps))


def readonly(array: np.ndarray) -> np.ndarray:
    """One numba type for every input: Arrow's zero-copy views are read-only and C-contiguous, so numpy
    inputs are made so too (``ascontiguousarray`` copies only arrays that are not)."""
    view = np.ascontiguousarray(array).view()
    view.flags.writeable = False
    return view


def _float_numpy(values: pa.Array | np.ndarray, role: str) -> np.ndarray:
    """A float32/float64 numpy array of Arrow or numpy values (float16 and integers upcast; nulls as NaN)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        kind = values.type
        if not (pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind)):
            raise ColumnTypeError(f"{role} must hold numbers, but its values have type {kind}", role)
        if pa.types.is_float16(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind):
            # safe=False: an integer past 2^53 rounds (no probability either way) instead of raising ArrowInvalid
            values = values.cast(pa.float32() if pa.types.is_float16(kind) else pa.float64(), safe=False)
        if values.null_count:
            values = values.fill_null(math.nan)
        return values.to_numpy(zero_copy_only=False)
    array = np.asarray(values)
    if array.dtype == np.float16:
        return array.astype(np.float32)
    if array.dtype.kind in "iub":
        return array.astype(np.float64)
    if array.dtype.kind != "f":
        raise SchemaError(f"{role} must hold numbers, but its numpy dtype is {array.dtype}")
    return array


def _null_rows(values: pa.Array | np.ndarray) -> np.ndarray | None:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array) and values.null_count:
        return values.is_null().to_numpy(zero_copy_only=False)
    return None


def _storage_dtype(values: Any) -> np.dtype:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], values.type)
    if isinstance(values, pa.Array):
        kind = values.type
        while pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
            kind = kind.value_type
        return np.dtype(np.float16) if pa.types.is_float16(kind) else (
            np.dtype(np.float32) if pa.types.is_float32(kind) else np.dtype(np.float64))
    dtype = np.asarray(values).dtype
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def _is_list(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)


def distribution(values: RawColumn, role: str, expected_classes: int | None,
                 status: np.ndarray | None, null_code: int, length_code: int, unit: str = "classes",
                 fills: list[row_fills.RowFill] | None = None) -> np.ndarray:
    """A 2-D (rows x classes) float array from a list column, a 2-D numpy array or per-class columns.

    A 1-D float input (one scalar column) is returned 1-D: the binary layout.  Rows that are null, or whose
    list does not have ``expected_classes`` values, get ``null_code`` / ``length_code`` in ``status``.
    Per-class columns are stacked at once, or with ``fills`` block by block as they are scored (row_fills).
    """
    if isinstance(values, (list, tuple)):
        columns = [_float_numpy(column, role) for column in values]
        matrix = row_fills.stacked(columns, fills, stack_columns) if columns else np.empty((0, 0))
        for column in values:
            _mark(status, _null_rows(column), null_code)
        return matrix
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array) and _is_list(values.type):
        return _list_matrix(values, role, expected_classes, status, null_code, length_code, unit)
    array = _float_numpy(values, role)
    _mark(status, _null_rows(values), null_code)
    if array.ndim not in (1, 2):
        raise SchemaError(f"{role} must be 1-D (binary) or 2-D (rows x classes), not {array.ndim}-D")
    return array


def _list_matrix(array: pa.Array, role: str, expected_classes: int | None, status: np.ndarray | None,
                 null_code: int, length_code: int, unit: str) -> np.ndarray:
    n = len(array)
    kind = array.type
    if not pa.types.is_floating(kind.value_type) and not pa.types.is_integer(kind.value_type):
        raise ColumnTypeError(f"{role} must be a list of floats, but it is {kind}", role)
    if pa.types.is_fixed_size_list(kind):
        width = kind.list_size
        values = _float_numpy(array.values.slice(array.offset * width, n * width), role)
        _mark(status, _null_rows(array), null_code)
        if expected_classes is not None and width != expected_classes:
            raise SchemaError(f"{role} has {width} {unit} per row but {expected_classes} were expected")
        return values.reshape(n, width)
    offsets = array.offsets.to_numpy()
    nulls = _null_rows(array)
    shared = common_length(offsets) if nulls is None else -1
    if shared >= 0 and (expected_classes is None or shared == expected_classes):
        # every row holds the same number of values (always so for the files streamdiv's decoder reads)
        return _float_numpy(array.values.slice(int(offsets[0]), n * shared), role).reshape(n, shared)
    lengths = np.diff(offsets)
    valid_lengths = lengths if nulls is None else lengths[~nulls]
    if expected_classes is not None:
        width = expected_classes
    elif len(valid_lengths):
        width = int(np.bincount(valid_lengths).argmax())  # the common length; other rows are flagged
    else:
        width = 0
    start = int(offsets[0]) if n else 0
    child = array.values
    if nulls is None and n and (lengths == width).all():
        values = _float_numpy(child.slice(start, n * width), role)
        return values.reshape(n, width)
    # Irregular rows: gather the well-formed ones, flag the rest.
    flat = _float_numpy(child, role)
    good = lengths == width
    if nulls is not None:
        good &= ~nulls
    matrix = np.zeros((n, width), dtype=flat.dtype)
    rows = np.flatnonzero(good)
    if len(rows) and width:
        matrix[rows] = flat[offsets[rows][:, None] + np.arange(width)]
    _mark(status, nulls, null_code)
    wrong = ~good if nulls is None else (~good & ~nulls)
    _mark(status, wrong, length_code)
    return matrix


def _mark(status: np.ndarray | None, rows: np.ndarray | None, code: int) -> None:
    """Give ``code`` to the flagged rows that have no earlier problem."""
    if status is not None and rows is not None:
        status[rows & (status == OK)] = code


def label_indices(values: RawColumn, class_names: Sequence[str] | None, status: np.ndarray,
                  ignore_label: Any, fills: list[row_fills.RowFill] | None = None) -> np.ndarray:
    """int64 class indices from integer, bool or string labels (strings matched against ``class_names``);
    integers of another width are cast at once, or with ``fills`` block by block as they are scored."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        array = np.asarray(values)
        if array.dtype.kind in "OUS":
            values = pa.array(array.astype(str) if array.dtype.kind != "O" else array)
        else:
            values = pa.array(array)
    kind = values.type
    nulls = _null_rows(values)
    if ignore_label is not None:
        ignored = pc.equal(values, pa.scalar(ignore_label, type=_scalar_type(kind)))
        # Not _mark: ignore_label wins over a problem the prediction already flagged (a null list, a wrong
        # length), as it does over one the kernels find (NaN), so an ignored row is never a skipped one.
        status[ignored.fill_null(False).to_numpy(zero_copy_only=False)] = CODE_IGNORED
    _mark(status, nulls, NULL_LABEL)
    value_kind = kind.value_type if pa.types.is_dictionary(kind) else kind
    if pa.types.is_string(value_kind) or pa.types.is_large_string(value_kind):
        if not class_names:
            raise SchemaError("the labels are strings, but the classes have no names to match them against: "
                              "pass class_names=[...] (or name the per-class probability columns)")
        lookup = pa.array(list(class_names), type=pa.string())
        if pa.types.is_dictionary(kind):
            dictionary = pc.index_in(values.dictionary.cast(pa.string()), value_set=lookup)
            indices = pc.take(dictionary, values.indices)
        else:
            indices = pc.index_in(values.cast(pa.string()), value_set=lookup)
        unknown = indices.is_null().to_numpy(zero_copy_only=False)
        if nulls is not None:
            unknown &= ~nulls
        _mark(status, unknown, UNKNOWN_LABEL)
        return indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    if pa.types.is_boolean(kind):
        values = values.cast(pa.int8())
    elif not pa.types.is_integer(kind):
        raise ColumnTypeError(f"labels must be integers, booleans or strings, but they have type {kind}", "labels")
    if nulls is not None:
        values = values.fill_null(0)
    return row_fills.cast_labels(values.to_numpy(zero_copy_only=False), fills)


def _scalar_type(kind: pa.DataType) -> pa.DataType:
    return kind.value_type if pa.types.is_dictionary(kind) else kind


def weight_values(values: RawColumn, status: np.ndarray) -> np.ndarray:
    """float64 weights; nulls flag the row (negative and NaN weights are flagged by the kernel)."""
    _mark(status, _null_rows(values), NULL_WEIGHT)
    return _float_numpy(values, "weights").astype(np.float64, copy=False)


def prepare(*, probs: RawColumn = None, logits: RawColumn = None, labels: RawColumn = None,
            targets: RawColumn = None, weights: RawColumn = None, class_names: Sequence[str] | None = None,
            expected_classes: int | None = None, ignore_label: Any = None) -> Prepared:
    """Validate and convert one batch's columns for the kernels (see the module docstring); with neither
    ``labels`` nor ``targets``, the predictions alone (``Prepared.label_free``)."""
    if (probs is None) == (logits is None):
        raise SchemaError("give exactly one of probs= and logits=")
    if labels is not None and targets is not None:
        raise SchemaError("give at most one of labels= (hard labels) and targets= (soft targets); with neither, "
                          "the predictions are scored alone")
    prediction = probs if probs is not None else logits
    n_rows = _length(prediction)
    status = np.zeros(n_rows, dtype=np.uint8)
    fills: list[row_fills.RowFill] = []
    pred = distribution(prediction, "probs" if probs is not None else "logits", expected_classes, status,
                        NULL_PREDICTION, WRONG_LENGTH_PREDICTION, fills=fills)
    binary = pred.ndim == 1
    num_classes = 2 if binary else pred.shape[1]
    if not binary and num_classes < 1:
        raise SchemaError("the prediction has no classes")
    names = tuple(class_names) if class_names is not None else None
    raw = {"prediction": prediction}
    target_matrix = label_array = weight_array = None
    if targets is not None:
        target_matrix = distribution(targets, "targets", None if binary else num_classes, status,
                                     NULL_TARGET, WRONG_LENGTH_TARGET)
        if target_matrix.ndim != pred.ndim or (not binary and target_matrix.shape[1] != num_classes):
            raise SchemaError(f"targets have shape {target_matrix.shape[1:] or 'scalar'} per row but the "
                              f"prediction has {'one probability' if binary else f'{num_classes} classes'}")
        raw["targets"] = targets
        # Kept in their float32 or float64: a copy to float64 cost more than the kernel on a fresh process's
        # first large batch (page faults: soft K=10 in memory 0.85 s against 0.2); each pair of dtypes
        # compiles once, on first use.
        target_matrix = readonly(target_matrix)
    elif labels is not None:
        label_names = names if names is not None else (("0", "1") if binary else None)
        label_array = readonly(label_indices(labels, label_names, status, ignore_label, fills))
        raw["labels"] = labels
    if weights is not None:
        weight_array = readonly(weight_values(weights, status))
        raw["weights"] = weights
    for role, array in (("labels", label_array), ("targets", target_matrix), ("weights", weight_array)):
        if array is not None and len(array) != n_rows:
            raise SchemaError(f"{role} has {len(array)} rows but the prediction has {n_rows}")
    if names is not None and len(names) != num_classes:
        raise SchemaError(f"{len(names)} class names given for {num_classes} classes")
    return Prepared(
        pred=readonly(pred), is_logits=logits is not None, labels=label_array, targets=target_matrix,
        weights=weight_array, status=status, binary=binary, num_classes=num_classes, class_names=names,
        prediction_tolerance=row_sum_tolerance(_storage_dtype(_first(prediction))),
        target_tolerance=row_sum_tolerance(_storage_dtype(_first(targets))) if targets is not None else 0.0,
        raw=raw, fills=tuple(fills))


def _first(values: RawColumn) -> RawColumn:
    """The column that stands for a role's storage type (the first per-class column of a wide layout)."""
    return values[0] if isinstance(values, (list, tuple)) else values


def _length(values: RawColumn) -> int:
    if isinstance(values, (list, tuple)):
        return len(values[0]) if values else 0
    return len(values)
