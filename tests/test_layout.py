"""The slot table of kernels/layout.py: the metric sets derive from it, and it names every slot of the state."""

from __future__ import annotations

import numpy as np

import streamdiv
from streamdiv.kernels import layout
from streamdiv.metrics import GAUSSIAN_METRICS, METRIC_SETS, METRICS


def test_the_loss_set_is_the_metrics_whose_slots_the_loss_passes_fill():
    assert METRIC_SETS["loss"] == (
        "rows", "weight", "skipped_rows", "ignored_rows", "infinite_rows", "unnormalized_rows", "clipped_rows",
        "cross_entropy", "cross_entropy_finite", "cross_entropy_stderr", "kl_divergence", "perplexity",
        "normalized_entropy")
    assert METRIC_SETS["all"] == tuple(metric.name for metric in METRICS if metric.name != "gaussian_kl")


def test_the_gaussian_kind_computes_its_row_counts_and_the_gaussian_kl():
    assert GAUSSIAN_METRICS == ("rows", "weight", "skipped_rows", "ignored_rows", "infinite_rows", "gaussian_kl")


def test_every_slot_a_metric_reads_is_in_the_layout_and_only_the_brier_terms_are_read_by_none():
    described = layout.Layout(bins=3, classes=2).describe()
    gaussian = layout.Layout(bins=0, classes=0, kind=layout.GAUSSIAN).describe()
    names = set(described["count_slots"] + described["per_bin_count_slots"] + described["sum_slots"]
                + described["per_bin_sum_slots"] + described["per_class_sum_slots"] + gaussian["sum_slots"])
    read = {name for metric in METRICS for name in metric.reads}
    assert read <= names
    # bin.count is the report's calibration table's; the two others are filled for the within-bin terms of
    # the Brier score's decomposition, which no metric reports yet.
    assert names - read == {"bin.count", "bin.confidence_squares", "bin.confidence_observed"}


def test_positions_follow_the_table_and_size_the_state():
    assert [layout.ROWS, layout.SKIPPED, layout.CLIPPED] == [0, 1, len(layout.COUNT_SLOTS) - 1]
    assert layout.BRIER == len(layout.SUM_SLOTS) - 1
    shape = layout.Layout(bins=4, classes=3)
    accumulator = streamdiv.Accumulator(bins=4).update(probs=np.full((5, 3), 1 / 3), labels=np.arange(5) % 3)
    counts, sums = accumulator._state.settled()
    assert counts.shape[1] == shape.n_count_slots == len(layout.COUNT_SLOTS) + 4
    assert sums.shape[1] == shape.n_sum_slots == len(layout.SUM_SLOTS) + 4 * len(layout.BIN_FIELD_SLOTS) + 3
    assert sums[0, shape.class_mass, 0].tolist() == [2.0, 2.0, 1.0]  # the labels 0, 1, 2, 0, 1
    assert counts[0, shape.bin_counts].sum() == 5
    assert sums[0, shape.bin_field(layout.BIN_WEIGHT), 0].sum() == 5.0
