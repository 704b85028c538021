"""The state's slot layout, declared once: every count slot, sum slot and per-bin field, with its merge rule
and the metric sets that fill it.  Every offset into the state's arrays is computed here.

One group's state is two rows:

* ``counts[g, :]`` (int64): the COUNT_SLOTS, then one row count per calibration bin;
* ``sums[g, :, 0:2]`` (float64 sum and Neumaier compensation): the SUM_SLOTS, then the BIN_FIELDS of each
  calibration bin (bin b's field f at ``bin_sum_slot(b, f)``), then one target mass per class from
  ``class_mass_slot(n_bins)``.

A state of the Gaussian kind (``mean=``/``log_variance=`` inputs) has the COUNT_SLOTS and the
GAUSSIAN_SUM_SLOTS only, no bins and no classes: its ``weight`` is at the same position as a classification
state's, its other sums (``GAUSSIAN_KL``, ``GAUSSIAN_KL_WEIGHT``) are positions of its own table.

Merge rules: counts add; compensated sums add as (sum, compensation) pairs (``state.add_compensated``).  The
kernels read the positions as module constants (``ROWS``, ``WEIGHT``, ...), looked up in the tables by name;
state, metrics and report read this module only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

ALL, LOSS = "all", "loss"
GAUSSIAN = "gaussian"  # the metric set of the Gaussian kind, whatever metric set was asked for
CLASSIFICATION = "classification"  # the kinds of input a state holds: predictions against labels or targets,
KINDS = (CLASSIFICATION, GAUSSIAN)  # or diagonal Gaussians (a VAE's posterior) against a prior
ROW_BLOCK = 1 << 14  # rows of a compensation block: the stream is summed in blocks of this many (see blocks)


@dataclass(frozen=True)
class Slot:
    """One accumulated quantity: its name in saved states and fixtures, the metric sets whose passes fill it,
    and what it holds (w is the row's weight, 1 without weights)."""

    name: str
    filled_by: frozenset[str]
    description: str
    merge: str = "add"  # counts add; sums add as compensated pairs


def _slot(name: str, description: str, *, loss: bool = True, gaussian: bool = False) -> Slot:
    return Slot(name, frozenset({ALL, LOSS} if loss else {ALL}) | ({GAUSSIAN} if gaussian else set()), description)


COUNT_SLOTS: tuple[Slot, ...] = (
    _slot("rows", "rows evaluated", gaussian=True),
    _slot("skipped", "invalid rows skipped", gaussian=True),
    _slot("ignored", "rows whose label is ignore_label", gaussian=True),
    _slot("infinite", "rows whose cross-entropy (and so KL) is +inf; Gaussian kind: whose Gaussian KL is +inf",
          gaussian=True),
    _slot("infinite_reverse", "rows whose reverse KL is +inf (soft targets only)", loss=False),
    _slot("unnormalized", "rows whose prediction or target does not sum to 1 within the tolerance"),
    _slot("clipped", "rows where eps clipping changed a log term"),
)
SUM_SLOTS: tuple[Slot, ...] = (
    _slot("weight", "sum w", gaussian=True),
    _slot("cross_entropy", "sum w H(P,Q) over the rows with finite cross-entropy"),
    _slot("cross_entropy_squares", "sum w H(P,Q)^2 over the same rows, for the standard error"),
    _slot("cross_entropy_weight", "sum w over the rows with finite cross-entropy"),
    _slot("entropy", "sum w H(P)", loss=False),
    _slot("kl", "sum w KL(P||Q) over the rows with finite cross-entropy"),
    _slot("prediction_entropy", "sum w H(Q)", loss=False),
    _slot("reverse_kl", "sum w KL(Q||P) over the rows where it is finite (soft targets)", loss=False),
    _slot("reverse_kl_weight", "sum w over the rows with finite KL(Q||P)", loss=False),
    _slot("js", "sum w JS(P, Q)", loss=False),
    _slot("correct", "sum w [argmax Q = argmax P]", loss=False),
    _slot("brier", "sum w sum_k (Q_k - P_k)^2", loss=False),
)
# Per calibration bin, over the rows whose confidence c (max Q; binary: p) falls in it, with the observed o
# (P at argmax Q; hard labels: [argmax Q = y]; binary: y).  The squares and cross products are the within-bin
# terms of the Brier score's decomposition.
BIN_COUNT = _slot("count", "rows in the bin", loss=False)
BIN_FIELD_SLOTS: tuple[Slot, ...] = (
    _slot("weight", "sum w", loss=False),
    _slot("confidence", "sum w c", loss=False),
    _slot("observed", "sum w o", loss=False),
    _slot("confidence_squares", "sum w c^2", loss=False),
    _slot("confidence_observed", "sum w c o", loss=False),
)
CLASS_MASS = _slot("target_mass", "sum w P_k for each class k (hard labels: the label's rows' weight)")
# The sums of a state of the Gaussian kind, weight first as in SUM_SLOTS.
GAUSSIAN_SUM_SLOTS: tuple[Slot, ...] = (
    SUM_SLOTS[0],
    Slot("gaussian_kl", frozenset({GAUSSIAN}),
         "sum w KL(N(mean, diag exp(log_variance)) || prior) over the rows where it is finite"),
    Slot("gaussian_kl_weight", frozenset({GAUSSIAN}), "sum w over the rows with finite Gaussian KL"),
)


def _position(slots: tuple[Slot, ...], name: str) -> np.int64:
    """A slot's position, as a numpy integer: numba types a Python int constant as a literal, and compiles a
    helper taking it (``_add(sums, g, WEIGHT, w)``) once for every slot; a numpy integer is one type."""
    return np.int64([slot.name for slot in slots].index(name))


N_COUNTS = np.int64(len(COUNT_SLOTS))
ROWS = _position(COUNT_SLOTS, "rows")
SKIPPED = _position(COUNT_SLOTS, "skipped")
IGNORED = _position(COUNT_SLOTS, "ignored")
INFINITE = _position(COUNT_SLOTS, "infinite")
INFINITE_REVERSE = _position(COUNT_SLOTS, "infinite_reverse")
UNNORMALIZED = _position(COUNT_SLOTS, "unnormalized")
CLIPPED = _position(COUNT_SLOTS, "clipped")

N_SUMS = np.int64(len(SUM_SLOTS))
WEIGHT = _position(SUM_SLOTS, "weight")
CROSS_ENTROPY = _position(SUM_SLOTS, "cross_entropy")
CROSS_ENTROPY_SQUARES = _position(SUM_SLOTS, "cross_entropy_squares")
CROSS_ENTROPY_WEIGHT = _position(SUM_SLOTS, "cross_entropy_weight")
ENTROPY = _position(SUM_SLOTS, "entropy")
KL = _position(SUM_SLOTS, "kl")
PREDICTION_ENTROPY = _position(SUM_SLOTS, "prediction_entropy")
REVERSE_KL = _position(SUM_SLOTS, "reverse_kl")
REVERSE_KL_WEIGHT = _position(SUM_SLOTS, "reverse_kl_weight")
JS = _position(SUM_SLOTS, "js")
CORRECT = _position(SUM_SLOTS, "correct")
BRIER = _position(SUM_SLOTS, "brier")

N_GAUSSIAN_SUMS = np.int64(len(GAUSSIAN_SUM_SLOTS))
GAUSSIAN_KL = _position(GAUSSIAN_SUM_SLOTS, "gaussian_kl")
GAUSSIAN_KL_WEIGHT = _position(GAUSSIAN_SUM_SLOTS, "gaussian_kl_weight")
assert _position(GAUSSIAN_SUM_SLOTS, "weight") == WEIGHT  # the row-count metrics read both kinds alike

BIN_FIELDS = np.int64(len(BIN_FIELD_SLOTS))
BIN_WEIGHT = _position(BIN_FIELD_SLOTS, "weight")
BIN_CONFIDENCE = _position(BIN_FIELD_SLOTS, "confidence")
BIN_OBSERVED = _position(BIN_FIELD_SLOTS, "observed")
BIN_CONFIDENCE_SQUARES = _position(BIN_FIELD_SLOTS, "confidence_squares")
BIN_CONFIDENCE_OBSERVED = _position(BIN_FIELD_SLOTS, "confidence_observed")


@njit
def bin_count_slot(b):
    """The count slot of calibration bin b."""
    return N_COUNTS + b


@njit
def bin_sum_slot(b, field):
    """The sum slot of field ``field`` (BIN_*) of calibration bin b."""
    return N_SUMS + b * BIN_FIELDS + field


@njit
def class_mass_slot(n_bins):
    """The sum slot of class 0's target mass; class k's follows at + k."""
    return N_SUMS + n_bins * BIN_FIELDS


@dataclass(frozen=True)
class Layout:
    """The slot layout of a state with ``bins`` calibration bins and ``classes`` class masses; of the Gaussian
    kind, the COUNT_SLOTS and GAUSSIAN_SUM_SLOTS alone (``bins`` and ``classes`` are then 0)."""

    bins: int
    classes: int
    kind: str = CLASSIFICATION

    def __post_init__(self) -> None:
        if self.kind not in KINDS or (self.kind == GAUSSIAN and (self.bins or self.classes)):
            raise ValueError(f"no slot layout of kind {self.kind!r} with {self.bins} bins and {self.classes} classes")

    @property
    def n_count_slots(self) -> int:
        return int(N_COUNTS) + self.bins

    @property
    def n_sum_slots(self) -> int:
        if self.kind == GAUSSIAN:
            return int(N_GAUSSIAN_SUMS)
        return int(N_SUMS + self.bins * BIN_FIELDS) + self.classes

    @property
    def class_mass(self) -> slice:
        start = self.n_sum_slots - self.classes
        return slice(start, start + self.classes)

    @property
    def bin_counts(self) -> slice:
        return slice(int(N_COUNTS), int(N_COUNTS) + self.bins)

    def bin_field(self, field: int) -> slice:
        """The sum slots of one BIN_* field, bin by bin."""
        return slice(int(N_SUMS + field), int(N_SUMS + self.bins * BIN_FIELDS), int(BIN_FIELDS))

    def describe(self) -> dict[str, object]:
        """The layout as a saved state's header records it: the slots' names in the order of their positions,
        those repeated per bin and per class, and how many bins and classes there are; a Gaussian layout
        says its kind (a classification one, as every state before the Gaussian kind, does not)."""
        if self.kind == GAUSSIAN:
            return {"kind": GAUSSIAN, "count_slots": [slot.name for slot in COUNT_SLOTS],
                    "sum_slots": [slot.name for slot in GAUSSIAN_SUM_SLOTS]}
        return {"count_slots": [slot.name for slot in COUNT_SLOTS],
                "per_bin_count_slots": [f"bin.{BIN_COUNT.name}"],
                "sum_slots": [slot.name for slot in SUM_SLOTS],
                "per_bin_sum_slots": [f"bin.{slot.name}" for slot in BIN_FIELD_SLOTS],
                "per_class_sum_slots": [f"class.{CLASS_MASS.name}"],
                "bins": self.bins, "classes": self.classes}


def filled_by(metric_set: str) -> frozenset[str]:
    """Names of the slots (as ``Layout.describe`` names them: ``rows``, ``bin.confidence``,
    ``class.target_mass``) that the passes of a metric set fill."""
    names = {slot.name for slot in COUNT_SLOTS + SUM_SLOTS + GAUSSIAN_SUM_SLOTS if metric_set in slot.filled_by}
    names |= {f"bin.{slot.name}" for slot in (BIN_COUNT, *BIN_FIELD_SLOTS) if metric_set in slot.filled_by}
    names |= {f"class.{CLASS_MASS.name}"} if metric_set in CLASS_MASS.filled_by else set()
    return frozenset(names)
