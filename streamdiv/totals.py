"""One group's (or the whole run's) totals as the finalize functions see them: its counts and collapsed sums
by slot, and its top-label calibration bins (regrouped into equal-weight bins with binning="quantile")."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Optional

import numpy as np

from .kernels import layout
from .kernels.layout import (BIN_CONFIDENCE, BIN_OBSERVED, BIN_WEIGHT, BIN_WEIGHT_SQUARES, CROSS_ENTROPY_WEIGHT, INFINITE,
                             WEIGHT)

if TYPE_CHECKING:
    from .state import State

Value = Optional[float]


@dataclass(frozen=True)
class CalibrationBins:
    """The report's calibration bins: bin b holds the rows whose confidence c lies in [lower[b], upper[b])
    (the last bin closed), with its row count and the sums of w, w c, w o and w^2 over them.

    ``bound`` bounds |ECE - ECE of the exact equal-mass bins| (see ``quantile_bins``); 0 for uniform bins."""

    lower: np.ndarray
    upper: np.ndarray
    rows: np.ndarray
    weight: np.ndarray
    confidence: np.ndarray
    observed: np.ndarray
    weight_squares: np.ndarray
    bound: float = 0.0


@dataclass(frozen=True)
class Totals:
    """One group's (or the whole run's) counts and collapsed sums, as the finalize functions see them.

    ``bins`` is how many bins the state keeps; ``calibration_bins`` how many the report shows (the same with
    binning="uniform"; with "quantile", the state's bins are the fine histogram, regrouped here)."""

    counts: np.ndarray
    sums: np.ndarray
    bins: int
    class_mass_slot: int
    soft_targets: bool
    slots: layout.Layout | None = None  # the state's slot layout (None: top-label bins and class masses only)
    binary: bool = False
    binning: str = "uniform"
    calibration_bins: int = 0  # 0: as many as the state keeps
    filled: frozenset[str] | None = None  # the slots (layout names) the state's passes fill and it has; None: all

    def has(self, *names: str) -> bool:
        """Whether the state's passes filled each of these slots (``"class.predicted_class"``, ...) and the
        state has them (a state saved by an earlier streamdiv may lack some)."""
        return self.filled is None or set(names) <= self.filled

    @property
    def slot_layout(self) -> layout.Layout:
        return self.slots or layout.Layout(self.bins, len(self.sums) - self.class_mass_slot)

    def class_values(self, name: str) -> np.ndarray:
        """One CLASS_SLOTS entry (``"target_mass"``, ...), class by class."""
        return self.sums[self.slot_layout.class_slot(name)]

    @property
    def classwise_classes(self) -> np.ndarray:
        """The state's class index of each class-wise class (one binary column: the positive class only)."""
        return np.array([1]) if self.binary else np.arange(self.slot_layout.classes)

    def class_bins(self, field: int) -> np.ndarray:
        """One CLASS_BIN_* field as (class-wise classes, bins)."""
        shape = (self.slot_layout.classwise_classes, self.slot_layout.class_bins)
        return self.sums[self.slot_layout.class_bin_field(field)].reshape(shape)

    def class_bin_rows(self) -> np.ndarray:
        shape = (self.slot_layout.classwise_classes, self.slot_layout.class_bins)
        return self.counts[self.slot_layout.class_bin_counts].reshape(shape)

    def count(self, slot: int) -> int:
        return int(self.counts[slot])

    def mean(self, slot: int, weight_slot: int = WEIGHT) -> Value:
        weight = self.sums[weight_slot]
        return float(self.sums[slot] / weight) if weight > 0 else None

    @property
    def has_infinite(self) -> bool:
        # Infinite rows are kept out of the sums; they make the mean infinite unless their weight is zero.
        return self.count(INFINITE) > 0 and self.sums[WEIGHT] > self.sums[CROSS_ENTROPY_WEIGHT]

    def bin_field(self, field: int) -> np.ndarray:
        return self.sums[layout.Layout(self.bins, 0).bin_field(field)]

    @cached_property
    def calibration(self) -> CalibrationBins:
        """The report's calibration bins: the state's own (uniform, edges k/M), or its fine histogram
        regrouped into equal-weight bins (quantile)."""
        stored = CalibrationBins(
            lower=np.arange(self.bins) / self.bins, upper=np.arange(1, self.bins + 1) / self.bins,
            rows=self.counts[layout.Layout(self.bins, 0).bin_counts], weight=self.bin_field(BIN_WEIGHT),
            confidence=self.bin_field(BIN_CONFIDENCE), observed=self.bin_field(BIN_OBSERVED),
            weight_squares=self.bin_field(BIN_WEIGHT_SQUARES))
        if self.binning != "quantile":
            return stored
        return quantile_bins(stored, layout.fine_edges(), self.calibration_bins)


def state_totals(state: State, counts: np.ndarray, sums: np.ndarray) -> Totals:
    """The totals of ``counts`` and collapsed ``sums`` of ``state`` (one group's, or their sum over groups)."""
    config = state.config
    filled_by = (layout.GAUSSIAN if config.kind == layout.GAUSSIAN else layout.LABEL_FREE if config.label_free
                 else config.metrics)
    return Totals(counts=counts, sums=sums, bins=state.slot_layout.bins, class_mass_slot=state.class_mass_slot,
                  soft_targets=config.soft_targets, slots=state.slot_layout, binary=config.binary,
                  binning=config.binning, calibration_bins=config.bins,
                  filled=layout.filled_by(filled_by) - set(config.absent_slots))


def group_totals(state: State, group: int | None = None) -> Totals:
    """The totals of group number ``group`` of ``state`` (the position of its key in ``state.group_keys``), or
    of the whole run."""
    if group is None:
        return state_totals(state, state.total_counts(), state.total_sums())
    return state_totals(state, state.group_counts(group), state.group_sums(group))


def quantile_bins(fine: CalibrationBins, edges: np.ndarray, n_bins: int) -> CalibrationBins:
    """``n_bins`` bins of nearly equal weight from a fine histogram with the given edges.

    With C_k the weight of the fine bins below edge k and W the total, cut j (j = 1 .. M-1) is at the edge
    whose C_k is nearest to T_j = j W / M (the lowest such edge when several have the same C_k).  A fine bin
    heavier than W / M (confidences exactly 1.0, say) cannot be split, so bins may be empty (lower = upper);
    the top fine bin, closed at 1, is always in the last bin.

    The exact equal-mass bins cut the rows, sorted by confidence, at cumulative weights T_j (a row at a cut
    split between its two bins).  The rows D_j between that cut and this one weigh m_j = |C_kj - T_j| and lie
    in the fine bin [a, b) that holds T_j, of weight W_f and observed sum O_f; moving them from one bin into the
    next changes the ECE's numerator by at most 2 sum_{D_j} w |c - o|, and, as |c - o| <= |a - o| + (b - a)
    and |a - o| <= a (1 - o) + (1 - a) o for o in [0, 1], with x = sum_{D_j} w o >= m_j - (W_f - O_f),

        sum_{D_j} w |c - o| <= e_j = m_j (b - a) + a m_j + (1 - 2a) x_j,  x_j its least (a >= 1/2) or most
        value (the same from b, the lesser taken), and |ECE - ECE_exact| <= bound = (2 / W) sum_j e_j <=
        (2 / W) sum_j m_j.

    Each bin's weight is within m_j + m_j+1 of W / M, and each cut edge lies in the fine bin holding the
    exact one (the fine bins' widths: layout.FINE_BINS)."""
    fields = np.stack([fine.rows.astype(np.float64), fine.weight, fine.confidence, fine.observed,
                       fine.weight_squares])
    below = np.concatenate([[0.0], np.cumsum(fine.weight)])
    total = below[-1]
    cuts = [0]
    bound = 0.0
    for j in range(1, n_bins):
        target = j * total / n_bins
        above = int(np.searchsorted(below, target, "left"))  # the first edge with C_k >= T_j
        under = int(np.searchsorted(below, below[above - 1], "left")) if above > 0 else 0
        cut = above if below[above] - target < target - below[under] else under
        cut = min(max(cut, cuts[-1]), len(fine.weight) - 1)  # the top fine bin, closed at 1, stays in the last
        cuts.append(cut)
        moved = abs(below[cut] - target)
        if moved > 0:
            holder = min(int(np.searchsorted(below, target, "left")), len(fine.weight)) - 1  # C_f < T <= C_f+1
            bound += _moved_gap_bound(moved, edges[holder], edges[holder + 1], fine.weight[holder],
                                      fine.observed[holder])
    cuts.append(len(fine.weight))
    grouped = np.array([fields[:, start:stop].sum(axis=1) for start, stop in zip(cuts[:-1], cuts[1:])]).T
    return CalibrationBins(lower=edges[cuts[:-1]], upper=edges[cuts[1:]], rows=grouped[0].astype(np.int64),
                           weight=grouped[1], confidence=grouped[2], observed=grouped[3],
                           weight_squares=grouped[4], bound=2.0 * bound / total if total > 0 else 0.0)


def _moved_gap_bound(moved: float, low: float, high: float, weight: float, observed: float) -> float:
    """The most sum w |c - o| of rows of weight ``moved`` taken from a fine bin [low, high) of the given weight
    and observed sum can be (see quantile_bins)."""
    least = min(moved, max(0.0, moved - (weight - observed)))
    most = max(least, min(moved, observed))
    bounds = []
    for reference in (low, high):
        x = least if reference >= 0.5 else most
        bounds.append(moved * (high - low) + reference * moved + (1.0 - 2.0 * reference) * x)
    return min(min(bounds), moved)
