"""Blocks: the same sums for every batch size and thread count, and the cached entry points, one per input
family, so that a run compiles only what its layout uses.

Rows are cut into blocks of ROW_BLOCK rows aligned on the row's index in the whole stream (not in the
batch).  Each block is summed on its own, from zero, row by row with Neumaier, into a *block partial*
(counts, sums, and the list of groups it touched); a finished block is then added into the totals, in
block order, by ``close_block``.  A block's partial therefore depends on its rows only, and the totals on the
sequence of blocks only: whether blocks ran on one thread or many, in one batch or spread over several, the
bits are the same.  The block still being filled when a batch ends is the state's *open* block, carried over
to the next batch (and saved with the state).  Which rows go where, and on which thread, is ``driver``'s.

Every entry point takes the batch, the settings and a block partial as bundles (``driver.Batch``,
``driver.Settings``, ``driver.Partial``) and scores the rows [lo, hi), all of one block, into the partial.
An absent input (weights, groups, targets) is an empty array, so a flag cannot travel apart from its array.
The label-free entry points (``label_free_*``) take a batch with neither labels nor targets (both empty).
"""

from __future__ import annotations

from numba import njit

from .binary import _binary_loss_span, _binary_soft_span
from .binary_rows import _binary_label_span
from .classwise import binary_bins_follow, classwise_binary_span, classwise_multiclass_span
from .column_loss import column_loss_span
from .gaussian import _gaussian_span
from .loss import _loss_span
from .predictions import (label_free_binary_span, label_free_logit_span, label_free_probability_span,
                          label_free_row_span)
from .primitives import _add, _tile_rows
from .scored import _accumulate_scored
from .table import (_general_span, _logit_scratch, _logit_span, _logit_tiles, _probability_scratch,
                    _probability_span, _probability_tiles, _soft_scratch, _soft_span, _soft_tiles)

KERNEL_OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy"}


@njit(inline="always")
def _mark_groups(group_ids, lo, hi, marks, touched):
    """Append to ``touched`` (count in touched[0]) the groups of rows [lo, hi) not yet marked."""
    if group_ids.shape[0] == 0:
        if marks[0] == 0:
            marks[0] = 1
            touched[0] += 1
            touched[touched[0]] = 0
        return
    for i in range(lo, hi):
        g = group_ids[i]
        if marks[g] == 0:
            marks[g] = 1
            touched[0] += 1
            touched[touched[0]] = g


@njit(**KERNEL_OPTIONS)
def close_block(counts, sums, partial):
    """Add a finished block's partial into the totals and zero it: counts add, and each (sum, compensation)
    pair goes in as one Neumaier step for the sum plus a plain add of its compensation."""
    block_counts, block_sums, marks, touched = partial
    for j in range(1, touched[0] + 1):
        g = touched[j]
        for c in range(counts.shape[1]):
            counts[g, c] += block_counts[g, c]
            block_counts[g, c] = 0
        for s in range(sums.shape[1]):
            _add(sums, g, s, block_sums[g, s, 0])
            sums[g, s, 1] += block_sums[g, s, 1]
            block_sums[g, s, 0] = 0.0
            block_sums[g, s, 1] = 0.0
        marks[g] = 0
    touched[0] = 0


# ---- one entry point per family: the rows [lo, hi) of one block into a block partial


@njit(**KERNEL_OPTIONS)
def hard_probabilities(batch, settings, partial, lo, hi):
    """Probabilities (rows x K) against hard labels: every metric."""
    _mark_groups(batch.group_ids, lo, hi, partial.marks, partial.touched)
    _probability_span(batch.pred, batch.labels, batch.weights, batch.weights.shape[0] > 0, batch.group_ids,
                      batch.group_ids.shape[0] > 0, batch.status, settings.eps, settings.prediction_tolerance,
                      settings.n_bins, partial.counts, partial.sums, lo, hi)
    classwise_multiclass_span(batch, settings, partial, lo, hi)


@njit(**KERNEL_OPTIONS)
def hard_probabilities_loss(batch, settings, partial, lo, hi):
    """Probabilities against hard labels: the loss metrics alone (see ``loss``)."""
    _mark_groups(batch.group_ids, lo, hi, partial.marks, partial.touched)
    _loss_span(batch.pred, batch.labels, batch.weights, batch.weights.shape[0] > 0, batch.group_ids,
               batch.group_ids.shape[0] > 0, batch.status, settings.eps, settings.prediction_tolerance,
               settings.n_bins, partial.counts, partial.sums, lo, hi)


@njit(**KERNEL_OPTIONS)
def hard_columns_loss(batch, settings, partial, lo, hi):
    """Probabilities held one column per class (``batch.pred_columns``) against hard labels: the loss metrics
    alone, read from the columns themselves (``column_loss``); ``batch.pred`` is never read."""
    _mark_groups(batch.group_ids, lo, hi, partial.marks, partial.touched)
    column_loss_span(batch.pred_columns, batch.pred, batch.labels, batch.weights, batch.weights.shape[0] > 0,
                     batch.group_ids, batch.group_ids.shape[0] > 0, batch.status, settings.eps,
                     settings.prediction_tolerance, settings.n_bins, partial.counts, partial.sums, lo, hi)


@njit(**KERNEL_OPTIONS)
def hard_logits(batch, settings, partial, lo, hi):
    """Logits (rows x K) against hard labels."""
    _mark_groups(batch.group_ids, lo, hi, partial.marks, partial.touched)
    _logit_span(batch.pred, batch.labels, batch.weights, batch.weights.shape[0] > 0, batch.group_ids,
                batch.group_ids.shape[0] > 0, batch.status, settings.eps, settings.prediction_tolerance,
                settings.n_bins, partial.counts, partial.sums, lo, hi)
    classwise_multiclass_span(batch, settings, partial, lo, hi)


@njit(**KERNEL_OPTIONS)
def soft_probabilities(batch, settings, partial, lo, hi):
    """Probabilities against soft targets (rows x K)."""
    _mark_groups(batch.group_ids, lo, hi, partial.marks, partial.touched)
    _soft_span(batch.pred, batch.targets, batch.weights, batch.weights.shape[0] > 0, batch.group_ids,
               batch.group_ids.shape[0] > 0, batch.status, settings.eps, settings.prediction_tolerance,
               settings.target_tolerance, settings.n_bins, partial.counts, partial.sums, lo, hi)
    classwise_multiclass_span(batch, settings, partial, lo, hi)


@njit(**KERNEL_OPTIONS)
def row_by_row(batch, settings, partial, lo, hi):
    """Renormalized rows, and soft targets against logits: the general per-row path."""
    _mark_groups(batch.group_ids, lo, hi, partial.marks, partial.touched)
    _general_span(batch.pred, settings.is_logits, batch.labels, batch.targets, batch.targets.shape[0] > 0,
                  batch.weights, batch.weights.shape[0] > 0, batch.group_ids, batch.group_ids.shape[0] > 0,
                  batch.status, settings.eps, settings.renormalize, settings.prediction_tolerance,
                  settings.target_tolerance, settings.n_bins, partial.counts, partial.sums, lo, hi)
    classwise_multiclass_span(batch, settings, partial, lo, hi)


@njit(**KERNEL_OPTIONS)
def binary_labels(batch, settings, partial, lo, hi):
    """One positive-class probability (or logit) per row against labels in {0, 1}."""
    _mark_groups(batch.group_ids, lo, hi, partial.marks, partial.touched)
    bins_follow = binary_bins_follow(batch, settings, partial)
    _binary_label_span(batch.pred, settings.is_logits, batch.labels, batch.weights, batch.weights.shape[0] > 0,
                       batch.group_ids, batch.group_ids.shape[0] > 0, batch.status, settings.eps, settings.n_bins,
                       partial.counts, partial.sums, lo, hi)
    classwise_binary_span(batch, settings, partial, lo, hi, bins_follow)


@njit(**KERNEL_OPTIONS)
def binary_labels_loss(batch, settings, partial, lo, hi):
    """Binary predictions against labels: the loss metrics alone."""
    _mark_groups(batch.group_ids, lo, hi, partial.marks, partial.touched)
    _binary_loss_span(batch.pred, settings.is_logits, batch.labels, batch.weights, batch.weights.shape[0] > 0,
                      batch.group_ids, batch.group_ids.shape[0] > 0, batch.status, settings.eps, settings.n_bins,
                      partial.counts, partial.sums, lo, hi)


@njit(**KERNEL_OPTIONS)
def binary_soft(batch, settings, partial, lo, hi):
    """Binary predictions against soft targets t in [0, 1]."""
    _mark_groups(batch.group_ids, lo, hi, partial.marks, partial.touched)
    _binary_soft_span(batch.pred, settings.is_logits, batch.targets, batch.weights, batch.weights.shape[0] > 0,
                      batch.group_ids, batch.group_ids.shape[0] > 0, batch.status, settings.eps, settings.n_bins,
                      partial.counts, partial.sums, lo, hi)
    classwise_binary_span(batch, settings, partial, lo, hi, False)


@njit(**KERNEL_OPTIONS)
def label_free_probabilities(batch, settings, partial, lo, hi):
    """Probabilities (rows x K) alone, neither labels nor targets: the label-free pass (see ``predictions``)."""
    _mark_groups(batch.group_ids, lo, hi, partial.marks, partial.touched)
    label_free_probability_span(batch, settings, partial, lo, hi)
    classwise_multiclass_span(batch, settings, partial, lo, hi)


@njit(**KERNEL_OPTIONS)
def label_free_logits(batch, settings, partial, lo, hi):
    """Logits (rows x K) alone."""
    _mark_groups(batch.group_ids, lo, hi, partial.marks, partial.touched)
    label_free_logit_span(batch, settings, partial, lo, hi)
    classwise_multiclass_span(batch, settings, partial, lo, hi)


@njit(**KERNEL_OPTIONS)
def label_free_rows(batch, settings, partial, lo, hi):
    """Renormalized rows (probabilities or logits) alone, row by row."""
    _mark_groups(batch.group_ids, lo, hi, partial.marks, partial.touched)
    label_free_row_span(batch, settings, partial, lo, hi)
    classwise_multiclass_span(batch, settings, partial, lo, hi)


@njit(**KERNEL_OPTIONS)
def label_free_binary(batch, settings, partial, lo, hi):
    """One positive-class probability (or logit) per row alone."""
    _mark_groups(batch.group_ids, lo, hi, partial.marks, partial.touched)
    label_free_binary_span(batch, settings, partial, lo, hi)
    classwise_binary_span(batch, settings, partial, lo, hi, False)


@njit(**KERNEL_OPTIONS)
def gaussian_kl(batch, settings, partial, lo, hi):
    """Diagonal Gaussians (mean and log variance, rows x dimensions) against a prior (``driver.GaussianBatch``):
    the Gaussian KL."""
    _mark_groups(batch.group_ids, lo, hi, partial.marks, partial.touched)
    _gaussian_span(batch.mean, batch.log_variance, batch.prior_mean, batch.prior_log_variance, batch.weights,
                   batch.weights.shape[0] > 0, batch.group_ids, batch.group_ids.shape[0] > 0, batch.status,
                   partial.counts, partial.sums, lo, hi)


# ---- wide rows: a span shorter than a block, scored on every thread (each its own columns of one table),
# then added in row order on one


@njit(**KERNEL_OPTIONS)
def score_hard_probabilities(batch, settings, lo, hi, scored, at):
    """The scored terms of the rows [lo, hi) of probabilities against hard labels, into the columns from
    ``at`` of ``scored``."""
    n_classes = batch.pred.shape[1]
    scratch = _probability_scratch(n_classes, _tile_rows(n_classes, False))
    _probability_tiles(batch.pred, batch.labels, settings.eps, settings.prediction_tolerance, lo, hi, scratch,
                       scored, at)


@njit(**KERNEL_OPTIONS)
def score_hard_logits(batch, settings, lo, hi, scored, at):
    """As score_hard_probabilities, for logits."""
    n_classes = batch.pred.shape[1]
    _logit_tiles(batch.pred, batch.labels, settings.eps, settings.prediction_tolerance, lo, hi,
                 _logit_scratch(n_classes, _tile_rows(n_classes, False)), scored, at)


@njit(**KERNEL_OPTIONS)
def score_soft_probabilities(batch, settings, lo, hi, scored, at):
    """As score_hard_probabilities, for soft targets."""
    n_classes = batch.pred.shape[1]
    _soft_tiles(batch.pred, batch.targets, settings.eps, settings.prediction_tolerance, settings.target_tolerance,
                lo, hi, _soft_scratch(n_classes, _tile_rows(n_classes, True)), scored, at)


@njit(**KERNEL_OPTIONS)
def add_scored(batch, settings, scored, partial, lo, hi):
    """Add the rows [lo, hi) of a scored table (its column 0 is row ``lo``) to a block partial, in row order."""
    _mark_groups(batch.group_ids, lo, hi, partial.marks, partial.touched)
    _accumulate_scored(scored, batch.targets, batch.targets.shape[0] > 0, batch.weights,
                       batch.weights.shape[0] > 0, batch.group_ids, batch.group_ids.shape[0] > 0, batch.status,
                       settings.n_bins, partial.counts, partial.sums, lo, hi)
    classwise_multiclass_span(batch, settings, partial, lo, hi)
