"""The mergeable accumulator state: two arrays per group plus the configuration that gives them meaning.

The totals (``counts``, ``sums``) hold every finished block of rows; ``open_counts``/``open_sums`` hold the
partial of the block still being filled (see ``ROW_BLOCK``), carried from batch to batch so that the
bits do not depend on where batches were cut.  Readers see the two folded together.

A group's slots, by position (:func:`layout_description` names them; a saved state records and checks it):
``counts[g]`` holds the count slots ``rows`` ... ``double_softmax``, ``skipped.<reason>`` for each reason a row
is skipped for (:mod:`streamdiv.skip_reasons`), then one count per calibration bin; ``sums[g]``
holds the sum slots ``weight`` ... ``brier``, then six sums per bin (``bin.weight`` ...
``bin.weight_squares``), then the per-class sums and the class-wise bins (kernels.layout).  The bins are the report's (binning="uniform") or the
fine histogram that the report regroups (binning="quantile": ``layout.FINE_BINS`` of them).
A label-free state (``Config.label_free``: predictions alone) has the same slots, those that need a label
zero.  A state of the Gaussian kind (``Config.kind``)
holds the count slots and the sums ``weight``, ``gaussian_kl`` and ``gaussian_kl_weight`` only.

Merge rule, written once for every slot: counts add; compensated sums add as (sum, compensation) pairs with
an error-free two-sum, so merging states differs from one pass over the concatenated data by rounding only.
The bytes of a saved state (magic, version, checksum, JSON header, arrays) are :mod:`streamdiv.state_format`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from .kernels import layout
from .kernels.layout import ROW_BLOCK
from .errors import IncompatibleStateError, StreamdivError
from .windows import WINDOW_KEY, start_seconds

GroupKey = tuple  # one value per `by` column, JSON-able (str, int, float, bool or None)


@dataclass(frozen=True)
class Config:
    """What the numbers in a state mean; two states merge only when their configurations agree."""

    num_classes: int | None = None  # None until the first batch fixes it
    binary: bool = False  # one positive-class probability column
    soft_targets: bool = False
    class_names: tuple[str, ...] | None = None
    bins: int = 15  # calibration bins of the report
    binning: str = "uniform"  # layout.BINNINGS: "quantile" keeps a fine histogram, regrouped at report time
    eps: float | None = None
    renormalize: bool = False
    group_names: tuple[str, ...] = ()
    metrics: str = "all"  # a key of metrics.METRIC_SETS: "loss" fills only the slots of the loss metrics
    classwise: bool | None = None  # class-wise calibration bins; None until the first batch: on up to
    # CLASSWISE_MAX_CLASSES classes with the full metric set
    absent_slots: tuple[str, ...] = ()  # slots (as Layout.describe names them) that a state saved by an earlier
    # streamdiv did not have: they hold zeros, and the metrics that read them are None
    kind: str = layout.CLASSIFICATION  # or layout.GAUSSIAN: mean and log variance against a prior
    dimensions: int | None = None  # the Gaussian kind's dimensions per row (None until the first batch)
    window: str | None = None  # the time windows' width ("1d", windows.Window): then the first group key is
    # "window", each group's window start
    label_free: bool = False  # predictions alone, neither labels nor targets (the first batch fixes it)

    @property
    def is_fixed(self) -> bool:
        """Whether a batch (or a merged state) has fixed the layout."""
        return self.num_classes is not None or self.dimensions is not None

    def describe_difference(self, other: Config) -> str | None:
        if self.kind != other.kind:
            return (f"the kind of input differs: {self.kind} ({_kind_words(self.kind)}) here, {other.kind} "
                    f"({_kind_words(other.kind)}) in the other")
        if self.label_free != other.label_free:
            return (f"what was scored differs: {_labels_words(self.label_free)} here, "
                    f"{_labels_words(other.label_free)} in the other; a label-free state merges only with label-free "
                    f"ones (score both sides with the same label or target column, or both without)")
        for name in ("num_classes", "binary", "soft_targets", "class_names", "dimensions", "bins", "binning", "eps",
                     "renormalize", "window", "group_names", "metrics", "classwise"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                return f"{name} differs: {mine!r} here, {theirs!r} in the other"
        return None


def _labels_words(label_free: bool) -> str:
    return "the predictions alone (no labels or targets)" if label_free else "predictions against labels or targets"


def _kind_words(kind: str) -> str:
    return "mean and log variance against a prior" if kind == layout.GAUSSIAN else "predictions against labels"


@dataclass
class State:
    """Counts and compensated sums for every group seen so far, in order of first appearance."""

    config: Config
    group_keys: list[GroupKey] = field(default_factory=list)
    counts: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    sums: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 2)))
    _group_index: dict[GroupKey, int] = field(default_factory=dict, repr=False)
    open_counts: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    open_sums: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 2)))
    open_marks: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))  # group in open block
    open_touched: np.ndarray = field(default_factory=lambda: np.zeros(ROW_BLOCK + 1, dtype=np.int64))
    rows_read: int = 0  # the stream index of the next row: where blocks are cut

    # ---- layout
    @property
    def slot_layout(self) -> layout.Layout:
        return slot_layout(self.config)

    @property
    def n_count_slots(self) -> int:
        return self.slot_layout.n_count_slots

    @property
    def n_sum_slots(self) -> int:
        return self.slot_layout.n_sum_slots

    @property
    def class_mass_slot(self) -> int:
        return self.slot_layout.class_mass.start

    @property
    def n_groups(self) -> int:
        return len(self.group_keys)

    @property
    def is_empty(self) -> bool:
        return self.n_groups == 0

    # ---- growth
    def fix_layout(self, *, num_classes: int, binary: bool, soft_targets: bool,
                   class_names: tuple[str, ...] | None, group_names: tuple[str, ...], label_free: bool = False) -> None:
        """Fix the layout on the first batch; every later batch must agree with it.  ``label_free``: a batch
        of predictions alone (neither labels nor targets)."""
        if label_free and self.config.metrics != "all":
            raise StreamdivError(f"metrics={self.config.metrics!r}: {LOSS_NEEDS_LABELS}")
        wanted = replace(self.config, kind=layout.CLASSIFICATION, num_classes=num_classes, binary=binary,
                         soft_targets=soft_targets, class_names=self.config.class_names or class_names,
                         group_names=group_names, label_free=label_free,
                         classwise=resolve_classwise(self.config.classwise, num_classes, self.config.metrics,
                                                     label_free))
        self._fix(wanted)

    def fix_gaussian_layout(self, *, dimensions: int, group_names: tuple[str, ...]) -> None:
        """fix_layout for a batch of the Gaussian kind (no class-wise bins)."""
        self._fix(replace(self.config, kind=layout.GAUSSIAN, dimensions=dimensions, group_names=group_names,
                          classwise=False))

    def _fix(self, wanted: Config) -> None:
        if not self.config.is_fixed:
            self.config = wanted
            self._allocate(self.counts.shape[0])
            return
        difference = self.config.describe_difference(wanted)
        if difference:
            raise StreamdivError(f"this batch does not match the earlier ones: {difference}")

    def group_ids(self, keys: list[GroupKey]) -> np.ndarray:
        """Ids of the given group keys, registering new ones (the arrays grow geometrically)."""
        ids = np.empty(len(keys), dtype=np.int64)
        for position, key in enumerate(keys):
            index = self._group_index.get(key)
            if index is None:
                index = len(self.group_keys)
                self._group_index[key] = index
                self.group_keys.append(key)
            ids[position] = index
        if self.counts.shape[0] < len(self.group_keys):
            self._allocate(max(len(self.group_keys), 2 * self.counts.shape[0]))
        return ids

    def _allocate(self, capacity: int) -> None:
        """Grow the arrays to ``capacity`` groups, keeping the rows of the groups registered so far."""
        kept = min(self.n_groups, self.counts.shape[0])
        self.counts, self.open_counts = (_grown(a, capacity, (self.n_count_slots,), np.int64, kept)
                                         for a in (self.counts, self.open_counts))
        self.sums, self.open_sums = (_grown(a, capacity, (self.n_sum_slots, 2), np.float64, kept)
                                     for a in (self.sums, self.open_sums))
        self.open_marks = _grown(self.open_marks, capacity, (), np.uint8, kept)

    def close_open_block(self) -> None:
        """Add the open block into the totals early (before a merge: the stream's blocks end there)."""
        n = self.n_groups
        self.counts[:n] += self.open_counts[:n]
        self.sums[:n] = add_compensated(self.sums[:n], self.open_sums[:n])
        self.open_counts[:n] = 0
        self.open_sums[:n] = 0.0
        self.open_marks[:n] = 0
        self.open_touched[0] = 0

    def settled(self) -> tuple[np.ndarray, np.ndarray]:
        """(counts, sums) of the groups with the open block folded in; the state itself is left as it is."""
        n = self.n_groups
        return self.counts[:n] + self.open_counts[:n], add_compensated(self.sums[:n], self.open_sums[:n])

    # ---- reading
    def group_counts(self, g: int) -> np.ndarray:
        return self.counts[g] + self.open_counts[g]

    def group_sums(self, g: int) -> np.ndarray:
        """The compensated sums of group g, each collapsed to sum + compensation."""
        sums = add_compensated(self.sums[g], self.open_sums[g])
        return sums[:, 0] + sums[:, 1]

    def total_counts(self) -> np.ndarray:
        """Counts over all groups (zeros for a state that has seen no row)."""
        if self.is_empty:
            return np.zeros(self.n_count_slots, dtype=np.int64)
        return self.settled()[0].sum(axis=0)

    def total_sums(self) -> np.ndarray:
        """Sums over all groups, added in group order with compensation."""
        total = np.zeros((self.n_sum_slots, 2))
        for group_sums in self.settled()[1]:
            total = add_compensated(total, group_sums)
        return total[:, 0] + total[:, 1]

    # ---- merging
    def copy(self) -> State:
        return State(self.config, list(self.group_keys), self.counts.copy(), self.sums.copy(),
                     dict(self._group_index), self.open_counts.copy(), self.open_sums.copy(),
                     self.open_marks.copy(), self.open_touched.copy(), self.rows_read)

    def merge(self, other: State) -> None:
        """Add ``other`` into this state in place; an empty state is the identity."""
        if other.is_empty and not other.config.is_fixed:
            return
        if not self.config.is_fixed and self.is_empty:
            # Not yet fixed by a batch: take the other's layout, keep this one's settings (checked below).
            self.config = replace(other.config, bins=self.config.bins, binning=self.config.binning,
                                  eps=self.config.eps, renormalize=self.config.renormalize,
                                  metrics=self.config.metrics, window=self.config.window,
                                  class_names=self.config.class_names or other.config.class_names,
                                  classwise=(other.config.classwise if self.config.classwise is None
                                             else self.config.classwise))
            self._allocate(0)
        difference = self.config.describe_difference(other.config)
        if difference:
            raise IncompatibleStateError(f"cannot merge these results: {difference}")
        if other.config.absent_slots:
            absent = tuple(sorted(set(self.config.absent_slots) | set(other.config.absent_slots)))
            self.config = replace(self.config, absent_slots=absent)
        ids = self.group_ids(other.group_keys)
        self.close_open_block()
        other_counts, other_sums = other.settled()
        for source, target in enumerate(ids):
            self.counts[target] += other_counts[source]
            self.sums[target] = add_compensated(self.sums[target], other_sums[source])
        self.rows_read += other.rows_read

    # ---- restoring
    @classmethod
    def restored(cls, config: Config, group_keys: list[GroupKey], counts: np.ndarray, sums: np.ndarray,
                 open_counts: np.ndarray | None = None, open_sums: np.ndarray | None = None) -> State:
        """A state from saved arrays, which must have exactly ``config``'s slot layout (``state_format`` checks
        it before it calls this); without the open block's arrays every row is in the totals."""
        state = cls(config, list(group_keys), _group_index={key: index for index, key in enumerate(group_keys)})
        state._allocate(len(group_keys))
        with_open_block = open_counts is not None and open_sums is not None
        saved = [(state.counts, counts), (state.sums, sums)]
        if with_open_block:
            saved += [(state.open_counts, open_counts), (state.open_sums, open_sums)]
        for target, source in saved:
            if source.shape != target.shape:  # never broadcast an array of another layout into this one
                raise ValueError(f"saved arrays of shape {source.shape} for a layout of shape {target.shape}")
            target[:] = source
        if with_open_block:
            # The groups of the open block are those with a row in it: every row read is counted once.
            touched = np.flatnonzero(state.open_counts.any(axis=1))
            state.open_marks[touched] = 1
            state.open_touched[0] = len(touched)
            state.open_touched[1: len(touched) + 1] = touched
        # Every row read is counted once, as evaluated, skipped or ignored: the stream index is derived.
        totals = state.total_counts() if group_keys else np.zeros(layout.N_COUNTS, dtype=np.int64)
        state.rows_read = int(totals[layout.ROWS] + totals[layout.SKIPPED] + totals[layout.IGNORED])
        return state


def group_order(state: State) -> list[int]:
    """The order of a report's groups: as first seen, or, with windows, by window start (null times last), then
    by the other keys as first seen (the order the same run without windows gives them)."""
    keys = state.group_keys
    if WINDOW_KEY not in state.config.group_names:
        return list(range(len(keys)))
    at = state.config.group_names.index(WINDOW_KEY)
    rank: dict[tuple, int] = {}
    for key in keys:
        rank.setdefault(key[:at] + key[at + 1:], len(rank))
    return sorted(range(len(keys)), key=lambda g: (start_seconds(keys[g][at]), rank[keys[g][:at] + keys[g][at + 1:]]))


def regrouped(state: State, names: tuple[str, ...], where: Mapping[str, Any] | None = None) -> State:
    """``state`` grouped by ``names`` alone (some of its group names, in that order): the groups that agree on
    them added together, in the order a report of ``state`` gives its groups, keeping only the groups whose key matches ``where``
    ({group name: value}).  Without ``names``, one ungrouped state; without the window key, no windows."""
    config = state.config
    unknown = [name for name in (*names, *(where or {})) if name not in config.group_names]
    if unknown:
        grouped = f"grouped by {', '.join(config.group_names)}" if config.group_names else "not grouped"
        raise StreamdivError(f"no group column {unknown[0]!r}: the run was {grouped}")
    positions = [config.group_names.index(name) for name in names]
    conditions = [(config.group_names.index(name), value) for name, value in (where or {}).items()]
    result = State(replace(config, group_names=tuple(names),
                           window=config.window if WINDOW_KEY in names else None))
    result._allocate(0)
    counts, sums = state.settled()
    for g in group_order(state):  # the new groups come in the order a report of ``state`` gives them
        key = state.group_keys[g]
        if all(key[position] == value for position, value in conditions):
            target = result.group_ids([tuple(key[position] for position in positions)])[0]
            result.counts[target] += counts[g]
            result.sums[target] = add_compensated(result.sums[target], sums[g])
    totals = result.total_counts() if result.group_keys else np.zeros(layout.N_COUNTS, dtype=np.int64)
    result.rows_read = int(totals[layout.ROWS] + totals[layout.SKIPPED] + totals[layout.IGNORED])
    return result

LOSS_NEEDS_LABELS = ("the loss metrics need labels or targets: name them with labels= or targets= (--labels, "
                     "--targets), or score the predictions alone with metrics='all' (--metrics all)")

# Class-wise calibration keeps classes x bins x 6 slots per group (16 bytes a sum, 8 a count): on by default up
# to this many classes, where a group's state stays under 1 MiB at 15 bins.
CLASSWISE_MAX_CLASSES = 100


def resolve_classwise(requested: bool | None, num_classes: int, metrics: str, label_free: bool = False) -> bool:
    """Whether a state of ``num_classes`` classes keeps class-wise bins: as requested, or by default with the
    full metric set and at most CLASSWISE_MAX_CLASSES classes; never for the predictions alone."""
    if label_free:
        if requested:
            raise StreamdivError("class-wise calibration compares predictions with what happened: it needs labels= "
                                 "or targets= (--labels, --targets); without them leave classwise unset "
                                 "(--no-classwise)")
        return False
    if metrics != "all":
        if requested:
            raise StreamdivError("class-wise calibration needs the full metric set: metrics='all' (--metrics all)")
        return False
    return num_classes <= CLASSWISE_MAX_CLASSES if requested is None else bool(requested)


def slot_layout(config: Config) -> layout.Layout:
    """The slot layout of one group's arrays under ``config`` (the Gaussian kind: no bins, no classes)."""
    if config.kind == layout.GAUSSIAN:
        return layout.Layout(0, 0, kind=layout.GAUSSIAN)
    classes = config.num_classes or 0
    stored = layout.stored_bins(config.bins, config.binning)  # the top-label bins: the fine histogram for quantile
    if not config.classwise:
        return layout.Layout(stored, classes)
    return layout.Layout(stored, classes, 1 if config.binary else classes, config.bins)


def layout_description(config: Config) -> dict[str, Any]:
    """The slot layout of one group's arrays under ``config``, by name, in the order of the slots' positions
    (see :meth:`streamdiv.kernels.layout.Layout.describe`); a saved state records it."""
    return slot_layout(config).describe()


def _grown(array: np.ndarray, capacity: int, row_shape: tuple[int, ...], dtype: type, kept: int) -> np.ndarray:
    """A zeroed (capacity, *row_shape) array holding the first ``kept`` rows of ``array``, which must already
    have that row shape: a slot layout only changes (when the first batch fixes it) while no group is kept."""
    grown = np.zeros((capacity, *row_shape), dtype=dtype)
    if kept:
        if array.shape[1:] != row_shape:
            raise RuntimeError(f"streamdiv bug: a state's rows of shape {array.shape[1:]} cannot become "
                               f"{row_shape} while they hold {kept} groups")
        grown[:kept] = array[:kept]
    return grown


def add_compensated(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(sum, compensation) pairs a + b: an error-free two-sum of the sums, the compensations added."""
    total = a[..., 0] + b[..., 0]
    error = np.where(np.abs(a[..., 0]) >= np.abs(b[..., 0]),
                     (a[..., 0] - total) + b[..., 0], (b[..., 0] - total) + a[..., 0])
    return np.stack([total, a[..., 1] + b[..., 1] + error], axis=-1)
