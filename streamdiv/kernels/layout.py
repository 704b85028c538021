"""The state's slot layout, declared once: every count slot, sum slot and per-bin field, with its merge rule
and the metric sets that fill it.  Every offset into the state's arrays is computed here.

One group's state is two rows:

* ``counts[g, :]`` (int64): the COUNT_SLOTS (the row counts, then one count of skipped rows per reason a row
  is skipped for, ``skipped.<reason>``), then one row count per calibration bin;
* ``counts[g, :]`` continues, with class-wise calibration on, with one row count per class-wise bin
  (class k's bin b at ``class_bin_count_slot(n_bins, n_class_bins, k, b)``);
* ``sums[g, :, 0:2]`` (float64 sum and Neumaier compensation): the SUM_SLOTS, then the BIN_FIELDS of each
  calibration bin (bin b's field f at ``bin_sum_slot(b, f)``), then the CLASS_SLOTS, each once per class
  (class k's target mass at ``class_mass_slot(n_bins) + k``, its prediction mass at
  ``prediction_mass_slot(n_bins, n_classes) + k``, ...), then, with class-wise calibration on, the
  CLASS_BIN_FIELDS of each class-wise bin (``class_bin_sum_slot(n_bins, n_classes, n_class_bins, k, b, f)``).

Class-wise bins cover the classes whose calibration is measured one by one (every class; for one binary
column only the positive class, whose probability is the column) and bin each row's q_k over all rows, with
the same k/M edges as the top-label bins.

A state of the Gaussian kind (``mean=``/``log_variance=`` inputs) has the COUNT_SLOTS and the
GAUSSIAN_SUM_SLOTS only, no bins and no classes: its ``weight`` is at the same position as a classification
state's, its other sums (``GAUSSIAN_KL``, ``GAUSSIAN_KL_WEIGHT``) are positions of its own table.

A label-free state (predictions alone, neither labels nor targets) has the classification layout; its pass
fills the slots marked LABEL_FREE (the row counts, the weight, the prediction entropy, the top-label bins but
their observed sums, the prediction masses and the predicted-class weights), the others stay zero.

Merge rules: counts add; compensated sums add as (sum, compensation) pairs (``state.add_compensated``).  The
kernels read the positions as module constants (``ROWS``, ``WEIGHT``, ...), looked up in the tables by name;
state, metrics and report read this module only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .status import PROBLEMS, REASONS

ALL, LOSS = "all", "loss"
GAUSSIAN = "gaussian"  # the metric set of the Gaussian kind, whatever metric set was asked for
LABEL_FREE = "label_free"  # what the label-free pass fills (predictions alone, neither labels nor targets)
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


def _slot(name: str, description: str, *, loss: bool = True, gaussian: bool = False,
          label_free: bool = False) -> Slot:
    sets = {ALL, LOSS} if loss else {ALL}
    return Slot(name, frozenset(sets | ({GAUSSIAN} if gaussian else set()) | ({LABEL_FREE} if label_free else set())),
                description)


COUNT_SLOTS: tuple[Slot, ...] = (
    _slot("rows", "rows evaluated", gaussian=True, label_free=True),
    _slot("skipped", "invalid rows skipped", gaussian=True, label_free=True),
    _slot("ignored", "rows whose label is ignore_label", gaussian=True, label_free=True),
    _slot("infinite", "rows whose cross-entropy (and so KL) is +inf; Gaussian kind: whose Gaussian KL is +inf",
          gaussian=True),
    _slot("infinite_reverse", "rows whose reverse KL is +inf (soft targets only)", loss=False),
    _slot("unnormalized", "rows whose prediction or target does not sum to 1 within the tolerance", label_free=True),
    _slot("clipped", "rows where eps clipping changed a log term"),
    _slot("double_softmax", "multi-class rows that look softmaxed twice: probabilities (K >= 3, not all equal) whose "
          "largest is at most e times their smallest, or logits all in [0, 1] that sum to 1 within the tolerance "
          "(the full metric set: the loss pass stays one range check, one sum and one log a row)", loss=False,
          label_free=True),
    # One count per reason a row was skipped for (status.REASONS): filled from the rows' final status codes
    # after the kernels ran (streamdiv.skip_reasons), so every kernel stays as it is; they add up to skipped.
    *(_slot(f"skipped.{key}", f"invalid rows skipped: {' '.join(PROBLEMS[code])}",
            gaussian=True, label_free=True) for code, key in REASONS.items()),
)
SUM_SLOTS: tuple[Slot, ...] = (
    _slot("weight", "sum w", gaussian=True, label_free=True),
    _slot("cross_entropy", "sum w H(P,Q) over the rows with finite cross-entropy"),
    _slot("cross_entropy_squares", "sum w H(P,Q)^2 over the same rows, for the standard error"),
    _slot("cross_entropy_weight", "sum w over the rows with finite cross-entropy"),
    _slot("entropy", "sum w H(P)", loss=False),
    _slot("kl", "sum w KL(P||Q) over the rows with finite cross-entropy"),
    _slot("prediction_entropy", "sum w H(Q)", loss=False, label_free=True),
    _slot("reverse_kl", "sum w KL(Q||P) over the rows where it is finite (soft targets)", loss=False),
    _slot("reverse_kl_weight", "sum w over the rows with finite KL(Q||P)", loss=False),
    _slot("js", "sum w JS(P, Q)", loss=False),
    _slot("correct", "sum w [argmax Q = argmax P]", loss=False),
    _slot("brier", "sum w sum_k (Q_k - P_k)^2", loss=False),
)
# Per calibration bin, over the rows whose confidence c (max Q; binary: p) falls in it, with the observed o
# (P at argmax Q; hard labels: [argmax Q = y]; binary: y).  The squares and cross products are the within-bin
# terms of the Brier score's decomposition.  The label-free pass bins c too, without an observed o.
BIN_COUNT = _slot("count", "rows in the bin", loss=False, label_free=True)
BIN_FIELD_SLOTS: tuple[Slot, ...] = (
    _slot("weight", "sum w", loss=False, label_free=True),
    _slot("confidence", "sum w c", loss=False, label_free=True),
    _slot("observed", "sum w o", loss=False),
    _slot("confidence_squares", "sum w c^2", loss=False, label_free=True),
    _slot("confidence_observed", "sum w c o", loss=False),
    _slot("weight_squares", "sum w^2: the bin's effective row count (sum w)^2 / sum w^2, for ece_debiased",
          loss=False, label_free=True),
)
# Once per class k of the state (a binary column's two classes: negative, positive).
CLASS_SLOTS: tuple[Slot, ...] = (
    _slot("target_mass", "sum w P_k (hard labels: the weight of the rows labelled k)"),
    _slot("prediction_mass", "sum w Q_k, the mean predicted distribution's numerator", loss=False,
          label_free=True),
    _slot("target_squares", "sum w P_k^2 (soft targets only; hard labels: P_k^2 = P_k, the target mass)",
          loss=False),
    _slot("predicted_class", "sum w [argmax Q = k], the first maximum on ties as for the correct slot (a binary "
          "column: k = 1 where p > 0.5), the predicted-class distribution's numerator", loss=False,
          label_free=True),
)
CLASS_MASS = CLASS_SLOTS[0]
# Per class-wise bin (class k, bin b), over the rows whose q_k falls in it, with y = P_k (hard labels: [y = k];
# binary: the label or target).  The squares and cross products are the Brier decomposition's within-bin terms.
CLASS_BIN_COUNT = _slot("count", "rows whose q_k is in the bin", loss=False)
CLASS_BIN_FIELD_SLOTS: tuple[Slot, ...] = (
    _slot("weight", "sum w", loss=False),
    _slot("prediction", "sum w q_k", loss=False),
    _slot("observed", "sum w y_k", loss=False),
    _slot("prediction_squares", "sum w q_k^2", loss=False),
    _slot("prediction_observed", "sum w q_k y_k", loss=False),
)
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
DOUBLE_SOFTMAX = _position(COUNT_SLOTS, "double_softmax")
SKIP_REASON_SLOTS = COUNT_SLOTS[DOUBLE_SOFTMAX + 1:]  # reason i of status.REASONS at SKIPPED_BY_REASON + i
SKIPPED_BY_REASON = _position(COUNT_SLOTS, SKIP_REASON_SLOTS[0].name)

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
BIN_WEIGHT_SQUARES = _position(BIN_FIELD_SLOTS, "weight_squares")

# ---- the bins a state keeps.  binning="uniform": the M bins asked for, edges k/M.  binning="quantile": a fine
# histogram of confidences, regrouped into M bins of equal weight when a report is made (metrics).  Its edges
# are exact binary fractions, symmetric around 1/2 in d = min(c, 1 - c): 0, then (1 + j/S) 2^-k for
# k = E+1 down to 2 and j in [0, S), then 1/2, and 1 - each of those above 1/2.  Every one of them, and 1 - c
# for c >= 1/2 (Sterbenz), is exact in float64, so the bins are the same on every machine and follow from
# (S, E) alone.  S = 64 bins a binade keep a bin's width under 1/64 of its distance to 0 or 1, where
# confidences crowd; E = 40 binades reach d = 2^-41, past float32's saturation (1 - c >= 2^-24 for c < 1) and
# float64 logits' margins up to 28 nats; rows closer to 0 or 1 share the end bins.
BINNINGS = ("uniform", "quantile")
FINE_BINS_PER_BINADE = 64
FINE_BINADES = 40
FINE_BINS = 2 * (FINE_BINADES * FINE_BINS_PER_BINADE + 1)  # 5,122; the kernels tell this layout by its size


def stored_bins(bins: int, binning: str) -> int:
    """How many bins a state keeps: ``bins`` (uniform) or the fine histogram's FINE_BINS (quantile)."""
    return FINE_BINS if binning == "quantile" else bins


def fine_edges() -> np.ndarray:
    """The FINE_BINS + 1 edges of the fine histogram, ascending, from 0 to 1 (see FINE_BINS)."""
    lower = [0.0] + [(1.0 + j / FINE_BINS_PER_BINADE) * 2.0 ** -k
                     for k in range(FINE_BINADES + 1, 1, -1) for j in range(FINE_BINS_PER_BINADE)]
    return np.array(lower + [0.5] + [1.0 - d for d in reversed(lower)])

N_CLASS_SLOTS = np.int64(len(CLASS_SLOTS))
CLASS_BIN_FIELDS = np.int64(len(CLASS_BIN_FIELD_SLOTS))
CLASS_BIN_WEIGHT = _position(CLASS_BIN_FIELD_SLOTS, "weight")
CLASS_BIN_PREDICTION = _position(CLASS_BIN_FIELD_SLOTS, "prediction")
CLASS_BIN_OBSERVED = _position(CLASS_BIN_FIELD_SLOTS, "observed")
CLASS_BIN_PREDICTION_SQUARES = _position(CLASS_BIN_FIELD_SLOTS, "prediction_squares")
CLASS_BIN_PREDICTION_OBSERVED = _position(CLASS_BIN_FIELD_SLOTS, "prediction_observed")


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


@njit
def prediction_mass_slot(n_bins, n_classes):
    """The sum slot of class 0's prediction mass; class k's follows at + k."""
    return class_mass_slot(n_bins) + n_classes


@njit
def target_squares_slot(n_bins, n_classes):
    """The sum slot of class 0's sum of squared targets; class k's follows at + k."""
    return class_mass_slot(n_bins) + 2 * n_classes


@njit
def predicted_class_slot(n_bins, n_classes):
    """The sum slot of class 0's predicted-class weight; class k's follows at + k."""
    return class_mass_slot(n_bins) + 3 * n_classes


@njit
def class_bin_count_slot(n_bins, n_class_bins, k, b):
    """The count slot of class-wise bin b of class k (k counted among the class-wise classes)."""
    return N_COUNTS + n_bins + k * n_class_bins + b


@njit
def class_bin_sum_slot(n_bins, n_classes, n_class_bins, k, b, field):
    """The sum slot of field ``field`` (CLASS_BIN_*) of class-wise bin b of class k."""
    return class_mass_slot(n_bins) + N_CLASS_SLOTS * n_classes + (k * n_class_bins + b) * CLASS_BIN_FIELDS + field


@dataclass(frozen=True)
class Layout:
    """The slot layout of a state with ``bins`` calibration bins, ``classes`` classes, and ``class_bins``
    class-wise bins for each of ``classwise_classes`` classes (0 and 0 with class-wise calibration off); of the
    Gaussian kind, the COUNT_SLOTS and GAUSSIAN_SUM_SLOTS alone (``bins`` and ``classes`` are then 0)."""

    bins: int
    classes: int
    classwise_classes: int = 0
    class_bins: int = 0
    kind: str = CLASSIFICATION

    def __post_init__(self) -> None:
        if self.kind not in KINDS or (self.kind == GAUSSIAN and (self.bins or self.classes)):
            raise ValueError(f"no slot layout of kind {self.kind!r} with {self.bins} bins and {self.classes} classes")

    @property
    def n_class_bin_slots(self) -> int:
        return self.classwise_classes * self.class_bins

    @property
    def n_count_slots(self) -> int:
        return int(N_COUNTS) + self.bins + self.n_class_bin_slots

    @property
    def n_sum_slots(self) -> int:
        if self.kind == GAUSSIAN:
            return int(N_GAUSSIAN_SUMS)
        return (int(N_SUMS + self.bins * BIN_FIELDS + N_CLASS_SLOTS * self.classes)
                + self.n_class_bin_slots * int(CLASS_BIN_FIELDS))

    def class_slot(self, name: str) -> slice:
        """The sum slots of one CLASS_SLOTS entry, class by class."""
        start = int(N_SUMS + self.bins * BIN_FIELDS) + [slot.name for slot in CLASS_SLOTS].index(name) * self.classes
        return slice(start, start + self.classes)

    @property
    def class_mass(self) -> slice:
        return self.class_slot(CLASS_MASS.name)

    @property
    def class_bin_counts(self) -> slice:
        """The count slots of the class-wise bins, class-major (reshape to (classwise_classes, class_bins))."""
        start = int(N_COUNTS) + self.bins
        return slice(start, start + self.n_class_bin_slots)

    def class_bin_field(self, field: int) -> slice:
        """The sum slots of one CLASS_BIN_* field, class-major (reshape to (classwise_classes, class_bins))."""
        start = int(N_SUMS + self.bins * BIN_FIELDS + N_CLASS_SLOTS * self.classes)
        stop = start + self.n_class_bin_slots * int(CLASS_BIN_FIELDS)
        return slice(start + int(field), stop, int(CLASS_BIN_FIELDS))

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
                "per_class_sum_slots": [f"class.{slot.name}" for slot in CLASS_SLOTS],
                "per_class_bin_count_slots": [f"class_bin.{CLASS_BIN_COUNT.name}"],
                "per_class_bin_sum_slots": [f"class_bin.{slot.name}" for slot in CLASS_BIN_FIELD_SLOTS],
                "bins": self.bins, "classes": self.classes, "classwise_classes": self.classwise_classes,
                "class_bins": self.class_bins}


def filled_by(metric_set: str) -> frozenset[str]:
    """Names of the slots (as ``Layout.describe`` names them: ``rows``, ``bin.confidence``,
    ``class.target_mass``) that the passes of a metric set fill."""
    names = {slot.name for slot in COUNT_SLOTS + SUM_SLOTS + GAUSSIAN_SUM_SLOTS if metric_set in slot.filled_by}
    names |= {f"bin.{slot.name}" for slot in (BIN_COUNT, *BIN_FIELD_SLOTS) if metric_set in slot.filled_by}
    names |= {f"class.{slot.name}" for slot in CLASS_SLOTS if metric_set in slot.filled_by}
    names |= {f"class_bin.{slot.name}" for slot in (CLASS_BIN_COUNT, *CLASS_BIN_FIELD_SLOTS)
              if metric_set in slot.filled_by}
    return frozenset(names)


def positions(description: dict[str, object]) -> tuple[list[tuple[str, tuple[int, ...]]],
                                                       list[tuple[str, tuple[int, ...]]]]:
    """Every position of a layout described by ``Layout.describe`` (this streamdiv's, or one a saved state
    recorded, which may lack the newer keys), as (slot name, (bin,) or (class,) or (class, bin) or ()): the
    count positions and the sum positions, in order.  Saved states of another layout are converted by these
    names."""
    def names(key: str) -> list[str]:
        return list(description.get(key, []))  # type: ignore[arg-type]

    bins, classes = (int(description.get(key, 0)) for key in ("bins", "classes"))  # type: ignore[arg-type]
    classwise, class_bins = (int(description.get(key, 0)) for key in ("classwise_classes", "class_bins"))  # type: ignore[arg-type]
    per_class_bin = [(k, b) for k in range(classwise) for b in range(class_bins)]
    counts = ([(name, ()) for name in names("count_slots")]
              + [(name, (b,)) for b in range(bins) for name in names("per_bin_count_slots")]
              + [(name, kb) for kb in per_class_bin for name in names("per_class_bin_count_slots")])
    sums = ([(name, ()) for name in names("sum_slots")]
            + [(name, (b,)) for b in range(bins) for name in names("per_bin_sum_slots")]
            + [(name, (k,)) for name in names("per_class_sum_slots") for k in range(classes)]
            + [(name, kb) for kb in per_class_bin for name in names("per_class_bin_sum_slots")])
    return counts, sums
