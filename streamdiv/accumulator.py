"""The Accumulator: the streaming core behind ``evaluate``, fed one batch at a time, mergeable and serialisable."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numba
import numpy as np

from . import columns, kernels, state_format
from .errors import InvalidRowError, StreamdivError
from .metrics import METRIC_SETS, parse_base
from .report import Report
from .state import Config, State

ON_INVALID = ("error", "skip")

# For each status code: the role whose value is at fault, and what is wrong with it.
PROBLEMS: dict[int, tuple[str, str]] = {
    kernels.NULL_PREDICTION: ("prediction", "is null"),
    kernels.NULL_LABEL: ("labels", "is null"),
    kernels.NULL_TARGET: ("targets", "is null"),
    kernels.NULL_WEIGHT: ("weights", "is null"),
    kernels.UNKNOWN_LABEL: ("labels", "is not one of the class names"),
    kernels.WRONG_LENGTH_PREDICTION: ("prediction", "does not have one value per class"),
    kernels.WRONG_LENGTH_TARGET: ("targets", "does not have one value per class"),
    kernels.PREDICTION_NAN: ("prediction", "holds NaN (or a null inside the list)"),
    kernels.PREDICTION_OUT_OF_RANGE: ("prediction", "holds a probability outside [0, 1]"),
    kernels.LOGIT_NAN_OR_POSITIVE_INFINITY: ("prediction", "holds a NaN or +inf logit"),
    kernels.LOGITS_ALL_NEGATIVE_INFINITY: ("prediction", "has every logit -inf"),
    kernels.LABEL_OUT_OF_RANGE: ("labels", "is not a class index in [0, number of classes)"),
    kernels.TARGET_NAN: ("targets", "holds NaN (or a null inside the list)"),
    kernels.TARGET_OUT_OF_RANGE: ("targets", "holds a probability outside [0, 1]"),
    kernels.WEIGHT_NEGATIVE_OR_NAN: ("weights", "is negative, NaN or infinite"),
}


@dataclass
class Location:
    """Where a batch came from, to name the file, row and column of a bad value."""

    path: str = "<batch>"
    first_row: int = 0
    column_names: dict[str, str] = field(default_factory=dict)


class Accumulator:
    """Running entropy, cross-entropy, KL and calibration statistics, one batch at a time.

    ``update`` and ``merge`` work in place and return the accumulator; ``a + b`` leaves both alone; an empty
    accumulator is the identity of ``merge``.  ``to_bytes``/``from_bytes`` save and restore the state, so
    results from different processes, files or days combine into the result of one pass.
    """

    def __init__(self, *, num_classes: int | None = None, class_names: Sequence[str] | None = None,
                 base: str | int = "e", bins: int = 15, eps: float | None = None, renormalize: bool = False,
                 on_invalid: str = "error", ignore_label: Any = None, metrics: str = "all"):
        if on_invalid not in ON_INVALID:
            raise StreamdivError(f"on_invalid must be 'error' or 'skip', not {on_invalid!r}")
        if metrics not in METRIC_SETS:
            raise StreamdivError(f"metrics must be one of {', '.join(map(repr, METRIC_SETS))}, not {metrics!r}")
        if not isinstance(bins, int) or bins < 1:
            raise StreamdivError(f"bins must be a positive whole number, not {bins!r}")
        if eps is not None and not (0.0 < eps < 1.0):
            raise StreamdivError(f"eps must lie in (0, 1), not {eps!r}")
        names = tuple(str(name) for name in class_names) if class_names is not None else None
        if names is not None and num_classes is not None and len(names) != num_classes:
            raise StreamdivError(f"{len(names)} class names given for num_classes={num_classes}")
        self.base = parse_base(base)
        self.on_invalid = on_invalid
        self.ignore_label = ignore_label
        self._expected_classes = num_classes if num_classes is not None else (len(names) if names else None)
        self._state = State(Config(class_names=names, bins=bins, eps=eps, renormalize=renormalize,
                                   metrics=metrics))
        self._lanes: Lanes | None = None

    # ---- feeding
    def update(self, *, probs: Any = None, logits: Any = None, labels: Any = None, targets: Any = None,
               weights: Any = None, groups: Any = None) -> Accumulator:
        """Add one batch: numpy or Arrow arrays (2-D rows x classes, or a list column, for distributions;
        1-D for a binary prediction, labels and weights).  ``groups`` is one array of group values, or a
        mapping of group column name to array.

        Validation is fused into the one pass over the batch, so with ``on_invalid="error"`` the
        :class:`InvalidRowError` comes after the batch: its valid rows have been added and its invalid rows
        counted in ``skipped_rows``, exactly as with ``"skip"``; the accumulator stays consistent.  Numpy
        inputs of more than UPDATE_SLICE_ROWS rows are fed in slices of that many (the same bits), so that
        the copies made while preparing them stay small."""
        inputs = {"probs": probs, "logits": logits, "labels": labels, "targets": targets, "weights": weights}
        mapping = groups if groups is None or isinstance(groups, Mapping) else {"group": groups}
        first_bad: tuple[columns.Prepared, int, Location] | None = None
        n_bad = 0
        for start, stop in _slices(inputs, mapping):
            prepared = columns.prepare(**{role: _rows(value, start, stop) for role, value in inputs.items()},
                                       class_names=self._state.config.class_names,
                                       expected_classes=self._expected_or_fixed(), ignore_label=self.ignore_label)
            if mapping is None:
                names: tuple[str, ...] = ()
                keys, inverse = [()], None
            else:
                names = tuple(str(name) for name in mapping)
                keys, inverse = columns.group_keys([_rows(value, start, stop) for value in mapping.values()])
            location = Location(first_row=start)
            try:
                self.update_prepared(prepared, names, keys, inverse, location)
            except InvalidRowError:
                bad = np.flatnonzero((prepared.status != kernels.OK) & (prepared.status != kernels.CODE_IGNORED))
                first_bad = first_bad or (prepared, int(bad[0]), location)
                n_bad += len(bad)
        if first_bad is not None:
            raise _invalid_row_error(*first_bad, n_bad)
        return self

    def update_prepared(self, prepared: columns.Prepared, group_names: tuple[str, ...], keys: list[tuple],
                        inverse: np.ndarray | None, location: Location) -> Accumulator:
        """Run the kernel on a prepared batch (the driver's entry point; ``update`` is the user's)."""
        state = self._state
        state.fix_layout(num_classes=prepared.num_classes, binary=prepared.binary,
                         soft_targets=prepared.targets is not None, class_names=prepared.class_names,
                         group_names=group_names)
        group_ids = state.group_ids(keys)
        row_groups = group_ids[inverse] if inverse is not None else np.zeros(0, dtype=np.int64)
        _run_kernel(state, prepared, row_groups, self._lanes_for(state, len(prepared.status)))
        if self.on_invalid == "error":
            bad = np.flatnonzero((prepared.status != kernels.OK) & (prepared.status != kernels.CODE_IGNORED))
            if len(bad):
                raise _invalid_row_error(prepared, int(bad[0]), location, len(bad))
        return self

    def _lanes_for(self, state: State, n_rows: int) -> Lanes:
        """Scratch for the blocks that run in parallel, kept between batches (the kernel leaves it zeroed)."""
        lanes = Lanes.count_for(state, n_rows)
        if self._lanes is None or not self._lanes.fits(state, lanes):
            self._lanes = Lanes(state, lanes)
        return self._lanes

    def _expected_or_fixed(self) -> int | None:
        return self._state.config.num_classes or self._expected_classes

    # ---- combining
    def merge(self, other: Accumulator) -> Accumulator:
        """Add ``other``'s state into this one, in place."""
        if not isinstance(other, Accumulator):
            raise TypeError(f"can only merge an Accumulator, not {type(other).__name__}")
        self._state.merge(other._state)
        return self

    def __add__(self, other: Accumulator) -> Accumulator:
        result = self.copy()
        return result.merge(other)

    def copy(self) -> Accumulator:
        clone = Accumulator.__new__(Accumulator)
        clone.__dict__.update(self.__dict__)
        clone._state = self._state.copy()
        clone._lanes = None
        return clone

    # ---- results
    def report(self) -> Report:
        return Report(self._state, self.base)

    @property
    def rows(self) -> int:
        """Rows read so far: evaluated + skipped + ignored."""
        totals = self._state.total_counts() if not self._state.is_empty else np.zeros(3, dtype=np.int64)
        return int(totals[kernels.ROWS] + totals[kernels.SKIPPED] + totals[kernels.IGNORED])

    def to_bytes(self) -> bytes:
        """The state in streamdiv's versioned, checksummed binary format (see :mod:`streamdiv.state_format`)."""
        return state_format.encode(self._state)

    @classmethod
    def from_bytes(cls, data: bytes, *, base: str | int = "e", on_invalid: str = "error",
                   ignore_label: Any = None) -> Accumulator:
        """An accumulator from ``to_bytes``'s output (any format version this streamdiv reads).

        Raises :class:`CorruptStateError` for bytes that are not an intact state, :class:`StateVersionError` for
        a newer format version, :class:`StateLayoutError` for a state of another slot layout."""
        state = state_format.decode(data)
        accumulator = cls(bins=state.config.bins, eps=state.config.eps, renormalize=state.config.renormalize,
                          base=base, on_invalid=on_invalid, ignore_label=ignore_label, metrics=state.config.metrics)
        accumulator._state = state
        return accumulator

    def __repr__(self) -> str:
        return f"<Accumulator rows={self.rows} groups={self._state.n_groups} config={self._state.config}>"


class Lanes:
    """One block partial per lane, for the full blocks of a batch that run at once (see ``kernels``).

    Lanes cost (groups x slots) of memory each, so there are fewer of them, or none (every block then runs
    on the calling thread), when there are many groups; the result is the same bits either way."""

    BUDGET_BYTES = 64 << 20
    MAX_LANES = 16  # blocks per parallel launch: a launch costs tens of microseconds
    _parallel_pid = os.getpid()  # GNU OpenMP hangs in a fork()ed child once the parent used its threads

    def __init__(self, state: State, lanes: int):
        capacity = state.counts.shape[0]
        self.counts = np.zeros((lanes, capacity, state.n_count_slots), dtype=np.int64)
        self.sums = np.zeros((lanes, capacity, state.n_sum_slots, 2))
        self.marks = np.zeros((lanes, capacity), dtype=np.uint8)
        self.touched = np.zeros((lanes, kernels.ROW_BLOCK + 1), dtype=np.int64)

    def fits(self, state: State, lanes: int) -> bool:
        return self.sums.shape[:3] == (lanes, state.counts.shape[0], state.n_sum_slots)

    @classmethod
    def scoring_threads(cls) -> int:
        """Threads that may score a batch's wide rows shorter than a block (1: the calling thread only)."""
        threads = numba.get_num_threads()
        return threads if threads >= 2 and os.getpid() == cls._parallel_pid else 1

    @classmethod
    def count_for(cls, state: State, n_rows: int) -> int:
        threads = cls.scoring_threads()
        if threads < 2 or n_rows < 2 * kernels.ROW_BLOCK:
            return 0
        per_lane = state.counts.shape[0] * (state.n_count_slots + 2 * state.n_sum_slots + 1) * 8
        lanes = min(cls.MAX_LANES, max(threads, n_rows // kernels.ROW_BLOCK), cls.BUDGET_BYTES // per_lane)
        return lanes if lanes >= 2 else 0


def _run_kernel(state: State, prepared: columns.Prepared, row_groups: np.ndarray, lanes: Lanes) -> None:
    """Score a prepared batch into the state, its parallel blocks under dynamic scheduling (chunks of one
    block): a thread that the decoder (or anything else) preempts then holds up only the block it is on, not
    its whole share of the wave.  Measured end to end on this 2-core machine, where the prefetch thread
    shares the cores: soft K=10 0.498 -> 0.478 s, K=10 lists 0.351 -> 0.338 s, K=10 fixed unchanged.  Each
    block still writes its own lane, so the bits do not change."""
    with numba.parallel_chunksize(1):
        _call_kernel(state, prepared, row_groups, lanes)
    state.rows_read += len(prepared.status)


def _call_kernel(state: State, prepared: columns.Prepared, row_groups: np.ndarray, lanes: Lanes) -> None:
    """Call the kernel for the batch's layout.  Absent inputs are passed as empty read-only arrays of the same
    type as present ones, so each kernel compiles once per set of input dtypes and no more."""
    config = state.config
    has_weights = prepared.weights is not None
    has_targets = prepared.targets is not None
    has_groups = len(row_groups) > 0
    eps = float(config.eps) if config.eps is not None else 0.0
    labels = prepared.labels if prepared.labels is not None else _EMPTY_LABELS
    weights = prepared.weights if has_weights else _EMPTY_WEIGHTS
    groups = columns.readonly(row_groups) if has_groups else _EMPTY_LABELS
    if prepared.binary:
        targets = prepared.targets if has_targets else _EMPTY_WEIGHTS
        kernels.accumulate_binary(prepared.pred, prepared.is_logits, labels, targets, has_targets, weights,
                                  has_weights, groups, has_groups, prepared.status, eps, config.metrics == "loss",
                                  config.bins,
                                  state.rows_read, *_block_arrays(state, lanes))
    else:
        targets = prepared.targets if has_targets else columns.readonly(np.zeros((0, prepared.num_classes)))
        kernels.accumulate_multiclass(prepared.pred, prepared.is_logits, labels, targets, has_targets, weights,
                                      has_weights, groups, has_groups, prepared.status, eps,
                                      config.renormalize, prepared.prediction_tolerance,
                                      prepared.target_tolerance, config.metrics == "loss", config.bins,
                                      state.rows_read,
                                      Lanes.scoring_threads(), *_block_arrays(state, lanes))


def _block_arrays(state: State, lanes: Lanes) -> tuple[np.ndarray, ...]:
    return (state.counts, state.sums, state.open_counts, state.open_sums, state.open_marks, state.open_touched,
            lanes.counts, lanes.sums, lanes.marks, lanes.touched)


_EMPTY_LABELS = columns.readonly(np.zeros(0, dtype=np.int64))
_EMPTY_WEIGHTS = columns.readonly(np.zeros(0))


# update() cuts numpy inputs longer than this into slices of it, each prepared and scored in turn: the copies
# that preparing makes (int64 labels, a status byte per row) then stay the size of a slice.  62.5 M binary rows
# in one update() with the loss metrics: whole, 0.53 s the first time in a process and 0.33 s the second (the
# difference is the fresh pages of those copies); sliced, 0.30 s the first time.  A multiple of the kernels'
# row block, so that every thread gets whole blocks; the bits do not depend on where batches are cut.
UPDATE_SLICE_ROWS = 1 << 20


def _slices(inputs: Mapping[str, Any], groups: Mapping[str, Any] | None) -> list[tuple[int, int]]:
    """Row ranges to feed in turn: slices of UPDATE_SLICE_ROWS when every input is a numpy array; Arrow arrays
    and lists of per-class columns go whole, as one batch.  (0, -1) stands for the whole input."""
    arrays = [value for value in inputs.values() if value is not None] + list((groups or {}).values())
    if not arrays or not all(isinstance(value, np.ndarray) and value.ndim >= 1 for value in arrays):
        return [(0, -1)]
    n = len(arrays[0])
    if n <= UPDATE_SLICE_ROWS or any(len(value) != n for value in arrays):
        return [(0, -1)]  # different lengths: prepare() says so, naming the columns
    return [(start, min(start + UPDATE_SLICE_ROWS, n)) for start in range(0, n, UPDATE_SLICE_ROWS)]


def _rows(value: Any, start: int, stop: int) -> Any:
    """Rows [start, stop) of an input (the whole input when stop is -1)."""
    return value if value is None or stop < 0 else value[start:stop]


def _invalid_row_error(prepared: columns.Prepared, row: int, location: Location, n_bad: int) -> InvalidRowError:
    code = int(prepared.status[row])
    role, reason = PROBLEMS[code]
    value = _value_at(prepared.raw.get(role), row)
    column = location.column_names.get(role, role)
    file_row = location.first_row + row
    more = f" ({n_bad - 1} more bad rows in this batch)" if n_bad > 1 else ""
    message = (f"{location.path}: row {file_row}, column {column!r}: the value {value!r} {reason}{more}. "
               f"Fix the data, or skip and count such rows with on_invalid='skip' (--on-invalid skip).")
    return InvalidRowError(message, path=location.path, row=file_row, column=column, value=value, reason=reason)


def _value_at(raw: Any, row: int) -> Any:
    if raw is None:
        return None
    if isinstance(raw, (list, tuple)):
        return [_value_at(column, row) for column in raw]
    value = raw[row]
    if hasattr(value, "as_py"):
        return value.as_py()
    return value.tolist() if hasattr(value, "tolist") else value
