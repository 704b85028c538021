"""The Accumulator: the streaming core behind ``evaluate``, fed one batch at a time, mergeable and serialisable."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping, Sequence, Union

import numpy as np
import pyarrow as pa

from . import columns, skip_reasons, state_format
from .gaussian_columns import GaussianPrepared, prepare_gaussian
from .group_keys import group_keys
from .kernels import driver
from .kernels.layout import BINNINGS, FINE_BINS, IGNORED, ROWS, SKIPPED
from .kernels.status import CODE_IGNORED, NULL_TIME, OK
from .errors import InvalidRowError, StreamdivError
from .invalid_rows import invalid_row_error as _invalid_row_error
from .metrics import METRIC_SETS, parse_base
from .progress import COMPILE_NOTICE
from .report import Report
from .state import CLASSWISE_MAX_CLASSES, Config, State
from .windows import WINDOW_KEY, Window, iso_start, window_codes

ON_INVALID = ("error", "skip")
Prepared = Union[columns.Prepared, GaussianPrepared]

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
                 base: str | int = "e", bins: int = 15, binning: str = "uniform", eps: float | None = None,
                 renormalize: bool = False, on_invalid: str = "error", ignore_label: Any = None,
                 metrics: str = "all", classwise: bool | None = None, window: str | None = None):
        if on_invalid not in ON_INVALID:
            raise StreamdivError(f"on_invalid must be 'error' or 'skip', not {on_invalid!r}")
        if metrics not in METRIC_SETS:
            raise StreamdivError(f"metrics must be one of {', '.join(map(repr, METRIC_SETS))}, not {metrics!r}")
        if not isinstance(bins, int) or bins < 1:
            raise StreamdivError(f"bins must be a positive whole number, not {bins!r}")
        if binning not in BINNINGS:
            raise StreamdivError(f"binning must be 'uniform' or 'quantile' (--binning uniform|quantile), "
                                 f"not {binning!r}")
        if bins == FINE_BINS:
            # the kernels tell the quantile mode's fine histogram by its number of bins (class-wise bins too)
            raise StreamdivError(f"bins={FINE_BINS} is the size of the quantile mode's fine histogram; choose "
                                 f"{FINE_BINS - 1} or {FINE_BINS + 1}")
        if classwise not in (None, True, False):
            raise StreamdivError(f"classwise must be True, False or None (on up to {CLASSWISE_MAX_CLASSES} classes), "
                                 f"not {classwise!r}")
        if classwise and metrics != "all":
            raise StreamdivError("class-wise calibration needs the full metric set: metrics='all' (--metrics all)")
        if eps is not None and not (0.0 < eps < 1.0):
            raise StreamdivError(f"eps must lie in (0, 1), not {eps!r}")
        names = tuple(str(name) for name in class_names) if class_names is not None else None
        if names is not None and num_classes is not None and len(names) != num_classes:
            raise StreamdivError(f"{len(names)} class names given for num_classes={num_classes}")
        self.base = parse_base(base)
        self.on_invalid = on_invalid
        self.ignore_label = ignore_label
        self._expected_classes = num_classes if num_classes is not None else (len(names) if names else None)
        self._window = Window.parse(window) if window is not None else None
        self._state = State(Config(class_names=names, bins=bins, binning=binning, eps=eps,
                                   renormalize=renormalize, metrics=metrics, classwise=classwise,
                                   window=self._window.text if self._window else None))
        self._lanes: driver.Lanes | None = None
        # What the predictions were given as, to word the report's warnings: "probs", "logits", "mixed" once
        # both were seen (or merged), "unknown" for a state restored from bytes, None before any batch.
        self._predictions: str | None = None

    # ---- feeding
    def update(self, *, probs: Any = None, logits: Any = None, labels: Any = None, targets: Any = None,
               weights: Any = None, groups: Any = None, mean: Any = None, log_variance: Any = None,
               prior_mean: Any = None, prior_log_variance: Any = None, time: Any = None) -> Accumulator:
        """Add one batch: numpy or Arrow arrays (2-D rows x classes, or a list column, for distributions;
        1-D for a binary prediction, labels and weights).  ``groups`` is one array of group values, or a
        mapping of group column name to array.  ``time`` (an Arrow timestamp or date array, or numpy
        datetime64) gives each row's instant when the accumulator has a ``window`` (see
        :mod:`streamdiv.windows`): its window is one more group key.  With neither ``labels`` nor ``targets``
        the predictions are scored alone: prediction_entropy, mean_confidence and ``report.distributions``,
        every label metric None; every batch of an accumulator must then have neither.

        The Gaussian kind takes ``mean`` and ``log_variance`` (rows x dimensions, or list columns) instead of
        a prediction and labels, and optionally ``prior_mean`` and ``prior_log_variance`` (by default the
        standard normal's 0 and 0): its metric is ``gaussian_kl``, the weighted mean over rows of
        KL(N(mean, diag exp(log_variance)) || N(prior_mean, diag exp(prior_log_variance))).

        Validation is fused into the one pass over the batch, so with ``on_invalid="error"`` the
        :class:`InvalidRowError` comes after the batch: its valid rows have been added and its invalid rows
        counted in ``skipped_rows`` (and by reason, ``report.skipped``), exactly as with ``"skip"``; the
        accumulator stays consistent.  Numpy inputs of more than UPDATE_SLICE_ROWS rows are fed in slices of
        that many (the same bits), so that the copies made while preparing them stay small."""
        inputs = {"probs": probs, "logits": logits, "labels": labels, "targets": targets, "weights": weights}
        gaussian = {"mean": mean, "log_variance": log_variance, "prior_mean": prior_mean,
                    "prior_log_variance": prior_log_variance}
        if any(value is not None for value in gaussian.values()):
            mixed = [role + "=" for role, value in inputs.items() if value is not None and role != "weights"]
            if mixed:
                raise StreamdivError(f"mean=, log_variance= and the prior's (the Gaussian kind) do not go with "
                                     f"{', '.join(mixed)}: score one kind of input at a time")
            inputs = {**gaussian, "weights": weights}
        mapping = groups if groups is None or isinstance(groups, Mapping) else {"group": groups}
        if time is not None:
            inputs = {**inputs, "time": time}
        first_bad: tuple[Prepared, int, Location] | None = None
        n_bad = 0
        for start, stop in _slices(inputs, mapping):
            prepared, names, keys, inverse = self._prepare(
                {role: _rows(value, start, stop) for role, value in inputs.items()},
                None if mapping is None else {name: _rows(value, start, stop) for name, value in mapping.items()})
            location = Location(first_row=start)
            try:
                self.update_prepared(prepared, names, keys, inverse, location)
            except InvalidRowError:
                bad = np.flatnonzero((prepared.status != OK) & (prepared.status != CODE_IGNORED))
                first_bad = first_bad or (prepared, int(bad[0]), location)
                n_bad += len(bad)
        if first_bad is not None:
            raise _invalid_row_error(*first_bad, n_bad)
        return self

    def add_batch(self, inputs: Mapping[str, Any], groups: Mapping[str, Any], location: Location, *,
                  class_names: Sequence[str] | None = None) -> Accumulator:
        """Add one batch of a source's columns (``inputs`` by role: probs, logits, labels, targets, weights;
        or mean, log_variance, prior_mean, prior_log_variance, weights; ``groups`` by group column name,
        possibly empty), naming ``location``'s file, rows and columns in any error.  ``class_names`` are the
        names the source's columns give the classes, when the accumulator has none of its own.  This is the one
        entry of ``evaluate`` and the command line."""
        return self.update_prepared(*self._prepare(inputs, groups, class_names), location)

    def _prepare(self, inputs: Mapping[str, Any], groups: Mapping[str, Any] | None,
                 class_names: Sequence[str] | None = None) -> tuple[Prepared, tuple[str, ...], list[tuple],
                                                                    np.ndarray | None]:
        """(prepared batch, group names, group keys, each row's index into them) of one batch's inputs; with a
        window, the ``time`` input's window is the first group key (rows of a null time made invalid)."""
        prepared: Prepared
        time = inputs.get("time")
        inputs = {role: value for role, value in inputs.items() if role != "time"}
        if "mean" in inputs or "log_variance" in inputs:
            prepared = prepare_gaussian(**inputs, expected_dimensions=self._state.config.dimensions)
        else:
            prepared = columns.prepare(**inputs, class_names=self._state.config.class_names or class_names,
                                       expected_classes=self._expected_or_fixed(), ignore_label=self.ignore_label)
        names, group_columns = [str(name) for name in groups or {}], list((groups or {}).values())
        if self._window is not None:
            if time is None:
                raise StreamdivError(f"window={self._window.text!r} needs each row's time: name its column with "
                                     f"time= (--time)")
            if WINDOW_KEY in names:
                raise StreamdivError(f"a group column named {WINDOW_KEY!r} clashes with the window's key: rename it")
            codes = window_codes(time if isinstance(time, (pa.Array, pa.ChunkedArray)) else pa.array(np.asarray(time)),
                                 self._window, "time")
            if codes.null_count:
                nulls = codes.is_null().to_numpy(zero_copy_only=False)
                prepared.status[nulls & (prepared.status == OK)] = NULL_TIME
            names, group_columns = names + [WINDOW_KEY], group_columns + [codes]
        elif time is not None:
            raise StreamdivError("time= gives each row's instant for windows: name the window too, such as "
                                 "window='1d' (--window 1d)")
        if not group_columns:
            return prepared, (), [()], None
        keys, inverse = group_keys(group_columns, names)
        if self._window is not None:  # the window first: (window, by...), its start as an ISO string
            keys = [(iso_start(key[-1]), *key[:-1]) for key in keys]
            names = [WINDOW_KEY] + names[:-1]
        return prepared, tuple(names), keys, inverse

    def update_prepared(self, prepared: Prepared, group_names: tuple[str, ...], keys: list[tuple],
                        inverse: np.ndarray | None, location: Location) -> Accumulator:
        """Run the kernels on a prepared batch (``update`` and ``add_batch`` both come here)."""
        state = self._state
        if isinstance(prepared, GaussianPrepared):
            state.fix_gaussian_layout(dimensions=prepared.dimensions, group_names=group_names)
        else:
            state.fix_layout(num_classes=prepared.num_classes, binary=prepared.binary,
                             soft_targets=prepared.targets is not None, class_names=prepared.class_names,
                             group_names=group_names, label_free=prepared.label_free)
        group_ids = state.group_ids(keys)
        row_groups = group_ids[inverse] if inverse is not None else np.zeros(0, dtype=np.int64)
        skipped_before = skip_reasons.skipped_total(state)
        _run_kernel(state, prepared, row_groups, self._lanes_for(state, len(prepared.status)))
        skip_reasons.count_reasons(state, prepared.status, row_groups, skipped_before)
        state.rows_read += len(prepared.status)
        if not isinstance(prepared, GaussianPrepared):
            self._predictions = _combined(self._predictions, "logits" if prepared.is_logits else "probs")
        if self.on_invalid == "error":
            bad = np.flatnonzero((prepared.status != OK) & (prepared.status != CODE_IGNORED))
            if len(bad):
                raise _invalid_row_error(prepared, int(bad[0]), location, len(bad))
        return self

    def _lanes_for(self, state: State, n_rows: int) -> driver.Lanes | None:
        """Scratch for the blocks that run at once, kept between batches (the kernels leave it zeroed).  A
        batch that needs fewer lanes than those kept uses as many of them as it has full blocks, so batches
        of alternating sizes do not allocate the lanes again each time (the bits do not depend on lanes)."""
        shape = (state.counts.shape[0], state.n_count_slots, state.n_sum_slots)
        lanes = driver.Lanes.count_for(*shape, n_rows)
        if lanes == 0:
            return None
        if self._lanes is None or self._lanes.shape[1:] != shape or self._lanes.shape[0] < lanes:
            self._lanes = driver.Lanes(*shape, lanes)
        return self._lanes

    def _expected_or_fixed(self) -> int | None:
        return self._state.config.num_classes or self._expected_classes

    # ---- combining
    def merge(self, other: Accumulator) -> Accumulator:
        """Add ``other``'s state into this one, in place."""
        if not isinstance(other, Accumulator):
            raise TypeError(f"can only merge an Accumulator, not {type(other).__name__}")
        self._state.merge(other._state)
        self._predictions = _combined(self._predictions, other._predictions)
        return self

    def __add__(self, other: Accumulator) -> Accumulator:
        return self.copy().merge(other)

    def copy(self) -> Accumulator:
        clone = Accumulator.__new__(Accumulator)
        clone.__dict__.update(self.__dict__)
        clone._state = self._state.copy()
        clone._lanes = None
        return clone

    def empty_copy(self) -> Accumulator:
        """An accumulator of the same settings (and the layout that batches have fixed) holding no rows: its
        blocks start at its own first row, as those of a fresh run over the rows fed to it."""
        clone = self.copy()
        clone._state = State(replace(self._state.config, absent_slots=()))
        clone._predictions = None
        return clone

    # ---- results
    def report(self) -> Report:
        return Report(self._state, self.base, self._predictions if self._predictions in ("probs", "logits") else None)

    @property
    def window(self) -> str | None:
        """The time windows' width ("1d"), or None without windows."""
        return self._window.text if self._window is not None else None

    @property
    def rows(self) -> int:
        """Rows read so far: evaluated + skipped + ignored."""
        totals = self._state.total_counts() if not self._state.is_empty else np.zeros(3, dtype=np.int64)
        return int(totals[ROWS] + totals[SKIPPED] + totals[IGNORED])

    @property
    def predictions(self) -> str | None:
        """What the predictions were given as: "probs", "logits", "mixed", "unknown" (restored), None (none yet)."""
        return self._predictions

    def settings(self) -> dict[str, Any]:
        """What decides the numbers besides the rows: the configuration, the unit, on_invalid, ignore_label."""
        return {**asdict(self._state.config), "base": self.base, "on_invalid": self.on_invalid,
                "ignore_label": self.ignore_label}

    def restore(self, data: bytes, predictions: str | None = None) -> Accumulator:
        """Take over the state saved in ``data`` (a checkpoint's, written with these settings) in place of this
        accumulator's own."""
        self._state, self._lanes, self._predictions = state_format.decode(data), None, predictions
        return self

    def to_bytes(self) -> bytes:
        """The state in streamdiv's versioned, checksummed binary format (see :mod:`streamdiv.state_format`)."""
        return state_format.encode(self._state)

    @classmethod
    def from_bytes(cls, data: bytes, *, base: str | int = "e", on_invalid: str = "error",
                   ignore_label: Any = None, predictions: str | None = None) -> Accumulator:
        """An accumulator from ``to_bytes``'s output (any format version this streamdiv reads); ``predictions``
        ("probs" or "logits", which the bytes do not record) words the report's warnings as for one pass.

        Raises :class:`CorruptStateError` for bytes that are not an intact state, :class:`StateVersionError` for
        a newer format version, :class:`StateLayoutError` for a state of another slot layout."""
        state = state_format.decode(data)
        accumulator = cls(bins=state.config.bins, binning=state.config.binning, eps=state.config.eps,
                          renormalize=state.config.renormalize, base=base, on_invalid=on_invalid,
                          ignore_label=ignore_label, metrics=state.config.metrics, classwise=state.config.classwise,
                          window=state.config.window)
        accumulator._state = state
        accumulator._predictions = (predictions or "unknown") if accumulator.rows else None
        return accumulator

    def __repr__(self) -> str:
        return f"<Accumulator rows={self.rows} groups={self._state.n_groups} config={self._state.config}>"


def _combined(seen: str | None, new: str | None) -> str | None:
    """What the predictions of two parts together were given as (see Accumulator._predictions)."""
    if seen is None or seen == new:
        return new
    return seen if new is None else "mixed"


def _run_kernel(state: State, prepared: Prepared, row_groups: np.ndarray, lanes: driver.Lanes | None) -> None:
    """Score a prepared batch into the state through the entry point of its input family.  Absent inputs are
    passed as empty read-only arrays of the same type as present ones, so each entry point compiles once per
    set of input dtypes and no more."""
    if isinstance(prepared, GaussianPrepared):
        _run_gaussian_kernel(state, prepared, row_groups, lanes)
        return
    config = state.config
    soft = prepared.targets is not None
    if prepared.targets is not None:
        targets = prepared.targets
    else:
        targets = _EMPTY_WEIGHTS if prepared.binary else columns.readonly(np.zeros((0, prepared.num_classes)))
    family = driver.family_for(binary=prepared.binary, is_logits=bool(prepared.is_logits), soft=soft,
                               renormalize=config.renormalize, loss_only=config.metrics == "loss",
                               label_free=prepared.label_free, per_class=prepared.per_class is not None)
    # a family that reads per-class columns where they lie leaves pred unfilled
    per_class = prepared.per_class if family.reads_columns else None
    batch = driver.Batch(
        prepared.pred, prepared.labels if prepared.labels is not None else _EMPTY_LABELS, targets,
        prepared.weights if prepared.weights is not None else _EMPTY_WEIGHTS,
        columns.readonly(row_groups) if len(row_groups) else _EMPTY_LABELS, prepared.status,
        per_class.addresses if per_class is not None else _EMPTY_LABELS)
    settings = driver.Settings(bool(prepared.is_logits), float(config.eps) if config.eps is not None else 0.0,
                               bool(config.renormalize), float(prepared.prediction_tolerance),
                               float(prepared.target_tolerance), int(state.slot_layout.bins),
                               state.slot_layout.class_bins)
    open_block = driver.Partial(state.open_counts, state.open_sums, state.open_marks, state.open_touched)
    what = f"{family.span.py_func.__name__.replace('_', ' ')}, {prepared.pred.dtype} predictions"
    with COMPILE_NOTICE.around((family.span.py_func.__name__, prepared.pred.dtype.str, targets.dtype.str), what):
        driver.score_batch(family, batch, settings, state.counts, state.sums, open_block, lanes, state.rows_read,
                           prepared.fill(pred=per_class is None))


def _run_gaussian_kernel(state: State, prepared: GaussianPrepared, row_groups: np.ndarray,
                         lanes: driver.Lanes | None) -> None:
    """_run_kernel for the Gaussian kind: absent prior columns are empty (0, 0) arrays of the mean's dtype."""
    absent = columns.readonly(np.zeros((0, 0), dtype=prepared.mean.dtype))
    batch = driver.GaussianBatch(
        prepared.mean, prepared.log_variance,
        prepared.prior_mean if prepared.prior_mean is not None else absent,
        prepared.prior_log_variance if prepared.prior_log_variance is not None else absent,
        prepared.weights if prepared.weights is not None else _EMPTY_WEIGHTS,
        columns.readonly(row_groups) if len(row_groups) else _EMPTY_LABELS, prepared.status)
    settings = driver.Settings(False, 0.0, False, 0.0, 0.0, 0, 0)  # read by no Gaussian kernel
    family = driver.GAUSSIAN_FAMILY
    open_block = driver.Partial(state.open_counts, state.open_sums, state.open_marks, state.open_touched)
    with COMPILE_NOTICE.around((family.span.py_func.__name__, prepared.mean.dtype.str),
                               f"gaussian kl, {prepared.mean.dtype} mean and log variance"):
        driver.score_batch(family, batch, settings, state.counts, state.sums, open_block, lanes, state.rows_read)


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
