"""The slot table of kernels/layout.py: the metric sets derive from it, and it names every slot of the state."""

from __future__ import annotations

import numpy as np

import streamdiv
from streamdiv.kernels import layout
from streamdiv.kernels.status import REASONS
from streamdiv.metrics import GAUSSIAN_METRICS, METRIC_SETS, METRICS


def test_the_loss_set_is_the_metrics_whose_slots_the_loss_passes_fill():
    assert METRIC_SETS["loss"] == (
        "rows", "weight", "skipped_rows", "ignored_rows", "infinite_rows", "unnormalized_rows", "clipped_rows",
        "cross_entropy", "cross_entropy_finite", "cross_entropy_stderr", "kl_divergence", "perplexity",
        "normalized_entropy", "relative_information_gain")
    assert METRIC_SETS["all"] == tuple(metric.name for metric in METRICS if metric.name != "gaussian_kl")


def test_the_gaussian_kind_computes_its_row_counts_and_the_gaussian_kl():
    assert GAUSSIAN_METRICS == ("rows", "weight", "skipped_rows", "ignored_rows", "infinite_rows", "gaussian_kl")


def test_every_slot_a_metric_reads_is_in_the_layout_and_only_the_brier_terms_are_read_by_none():
    described = layout.Layout(bins=3, classes=2, classwise_classes=2, class_bins=3).describe()
    gaussian = layout.Layout(bins=0, classes=0, kind=layout.GAUSSIAN).describe()
    names = {name for key, slots in (described | {"gaussian_sum_slots": gaussian["sum_slots"]}).items()
             if isinstance(slots, list) for name in slots}
    read = {name for metric in METRICS for name in metric.reads}
    assert read <= names
    # The counts are the report's calibration tables'; the two others are the top-label bins' within-bin
    # terms, which no metric reports (the Brier decomposition is over the class-wise bins); the predicted-class
    # weights are the report's distributions (streamdiv.distributions), not a metric's; the skipped rows by
    # reason are report.skipped (streamdiv.skip_reasons).
    reasons = {slot.name for slot in layout.SKIP_REASON_SLOTS}
    assert names - read == {"bin.count", "class_bin.count", "bin.confidence_squares", "bin.confidence_observed",
                            "class.predicted_class"} | reasons


def test_positions_follow_the_table_and_size_the_state():
    assert [layout.ROWS, layout.SKIPPED] == [0, 1]
    reasons = [slot.name for slot in layout.COUNT_SLOTS[layout.DOUBLE_SOFTMAX + 1:]]
    assert reasons == [f"skipped.{key}" for key in REASONS.values()]  # the last count slots, in code order
    assert layout.SKIPPED_BY_REASON == layout.DOUBLE_SOFTMAX + 1 == len(layout.COUNT_SLOTS) - len(REASONS)
    assert layout.BRIER == len(layout.SUM_SLOTS) - 1
    shape = layout.Layout(bins=4, classes=3, classwise_classes=3, class_bins=4)
    probabilities = np.array([[0.5, 0.25, 0.25]] * 5)
    accumulator = streamdiv.Accumulator(bins=4).update(probs=probabilities, labels=np.arange(5) % 3)
    counts, sums = accumulator._state.settled()
    assert counts.shape[1] == shape.n_count_slots == len(layout.COUNT_SLOTS) + 4 + 3 * 4
    assert sums.shape[1] == shape.n_sum_slots == (len(layout.SUM_SLOTS) + 4 * len(layout.BIN_FIELD_SLOTS)
                                                  + 3 * len(layout.CLASS_SLOTS)
                                                  + 3 * 4 * len(layout.CLASS_BIN_FIELD_SLOTS))
    assert sums[0, shape.class_mass, 0].tolist() == [2.0, 2.0, 1.0]  # the labels 0, 1, 2, 0, 1
    assert sums[0, shape.class_slot("prediction_mass"), 0].tolist() == [2.5, 1.25, 1.25]
    assert counts[0, shape.bin_counts].sum() == 5
    assert sums[0, shape.bin_field(layout.BIN_WEIGHT), 0].sum() == 5.0
    class_rows = counts[0, shape.class_bin_counts].reshape(3, 4)
    assert class_rows.tolist() == [[0, 0, 5, 0], [0, 5, 0, 0], [0, 5, 0, 0]]  # q = 0.5 in [0.5, 0.75), ...
    observed = sums[0, shape.class_bin_field(layout.CLASS_BIN_OBSERVED), 0].reshape(3, 4)
    assert observed.tolist() == [[0, 0, 2, 0], [0, 2, 0, 0], [0, 1, 0, 0]]


def test_the_positions_of_a_description_name_every_slot_once_in_the_order_of_the_arrays():
    shape = layout.Layout(bins=2, classes=3, classwise_classes=3, class_bins=2)
    counts, sums = layout.positions(shape.describe())
    assert len(counts) == shape.n_count_slots and len(sums) == shape.n_sum_slots
    assert len(set(counts)) == len(counts) and len(set(sums)) == len(sums)
    assert counts[layout.bin_count_slot(1)] == ("bin.count", (1,))
    assert counts[layout.class_bin_count_slot(2, 2, 1, 0)] == ("class_bin.count", (1, 0))
    assert sums[layout.bin_sum_slot(1, layout.BIN_OBSERVED)] == ("bin.observed", (1,))
    assert sums[layout.prediction_mass_slot(2, 3) + 2] == ("class.prediction_mass", (2,))
    assert sums[layout.class_bin_sum_slot(2, 3, 2, 2, 1, layout.CLASS_BIN_PREDICTION)] == ("class_bin.prediction",
                                                                                          (2, 1))
