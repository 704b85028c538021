"""Skipped rows by reason: each invalid row counted in the slot of its reason (``skipped.<reason>``, see
:mod:`streamdiv.kernels.layout`), and the report's breakdown read back from those slots.

The kernels count every invalid row once in ``skipped`` and leave its final status code in the batch's status
array (the columns layer sets the codes of nulls, unknown labels and lists of the wrong length, the kernels
those of values out of range).  ``count_reasons`` runs right after them.  It first compares the run's
``skipped`` count with the one before the batch, a sum over the groups: a batch without invalid rows, the
common case, reads no status code at all.  Otherwise it finds the invalid rows and adds one count per row
into the slot of its reason in the row's group, so that in every group

.. math:: \\sum_{r} \\mathrm{skipped}_r = \\mathrm{skipped}

exactly, and the reason slots merge, save, load and regroup as every count slot does.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .kernels.layout import SKIP_REASON_SLOTS, SKIPPED, SKIPPED_BY_REASON
from .kernels.status import CODE_IGNORED, OK, PROBLEMS, REASONS
from .state import State

REASON_KEYS: tuple[str, ...] = tuple(REASONS.values())  # the order of their slots, and of report.skipped
# What each reason says of a row, as the InvalidRowError does: "labels is null".
REASON_WORDS: dict[str, str] = {key: " ".join(PROBLEMS[code]) for code, key in REASONS.items()}
_REASON_SLOT_NAMES = frozenset(slot.name for slot in SKIP_REASON_SLOTS)
_REASON_OF_CODE = np.full(256, -1, dtype=np.int64)  # a status code's position in REASON_KEYS (-1: no reason)
_REASON_OF_CODE[list(REASONS)] = np.arange(len(REASONS))


def skipped_total(state: State) -> int:
    """Rows the state has skipped so far, over its groups (its open block included)."""
    n = state.n_groups
    return int(state.counts[:n, SKIPPED].sum() + state.open_counts[:n, SKIPPED].sum())


def count_reasons(state: State, status: np.ndarray, row_groups: np.ndarray, skipped_before: int) -> None:
    """Add the invalid rows of a batch just scored into their reasons' slots: ``status`` is the batch's final
    status code per row, ``row_groups`` each row's group id (empty: every row in group 0), ``skipped_before``
    the state's ``skipped_total`` before the batch."""
    skipped = skipped_total(state) - skipped_before
    if skipped == 0:
        return
    rows = np.flatnonzero((status != OK) & (status != CODE_IGNORED))
    reasons = _REASON_OF_CODE[status[rows]]
    if len(rows) != skipped or (reasons < 0).any():
        raise RuntimeError(f"streamdiv bug: the kernels skipped {skipped} rows of this batch, but {len(rows)} rows "
                           f"have the status of an invalid row (codes {sorted(set(status[rows].tolist()))})")
    groups = row_groups[rows] if len(row_groups) else np.zeros(len(rows), dtype=np.int64)
    # (group, reason) cells as one key each: the batch's few bad rows tallied by cell, however many groups
    cells, tally = np.unique(groups * len(REASON_KEYS) + reasons, return_counts=True)
    state.counts[cells // len(REASON_KEYS), SKIPPED_BY_REASON + cells % len(REASON_KEYS)] += tally


def skipped_by_reason(counts: np.ndarray, absent_slots: Iterable[str] = ()) -> dict[str, int] | None:
    """``{reason: rows}`` of one group's (or a whole run's) count slots: the reasons with skipped rows, in the
    order of REASON_KEYS.  None when the state lacks the reason slots (``absent_slots``: part of it was saved by
    a streamdiv before them) and that part skipped rows: their reasons are unknown, never zero."""
    start = int(SKIPPED_BY_REASON)
    known = {key: int(rows) for key, rows in zip(REASON_KEYS, counts[start: start + len(REASON_KEYS)]) if rows}
    if _REASON_SLOT_NAMES & set(absent_slots) and sum(known.values()) != int(counts[SKIPPED]):
        return None
    return known


def skipped_words(skipped_rows: int | None, skipped: dict[str, int] | None) -> str | None:
    """The table format's line on skipped rows, such as "skipped: 3 rows (labels is null: 2; prediction holds a
    probability outside [0, 1]: 1)"; None when no row was skipped."""
    if not skipped_rows:
        return None
    if skipped is None:
        return (f"skipped: {skipped_rows:,} rows (reasons unknown: part of this state was saved by a streamdiv that "
                f"did not count them by reason)")
    reasons = "; ".join(f"{REASON_WORDS[key]}: {rows:,}" for key, rows in skipped.items())
    return f"skipped: {skipped_rows:,} rows ({reasons})"
