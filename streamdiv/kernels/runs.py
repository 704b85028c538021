"""Stretches of rows of one group: the pass for one group keeps its running sums in local variables.
"""

from __future__ import annotations

from numba import njit


# Rows of one group in a row -- a stream without groups, or a grouped stream sorted or partitioned by its
# groups, as most are -- are added by the pass for one group, whose running sums live in local variables
# rather than in ``sums``.  benchmarks/kernel.py, K = 10, 8 groups, one thread, the whole update() (group keys
# included): 53.0 ns/row in runs against 68.6 mixed.  Each slot sees its group's rows in the same order
# either way, so the bits are the same (tests/test_blocks.py reorders rows into runs and compares).
LONG_RUN = 128  # rows: what the pass for one group costs to set up is worth it from about this many rows


@njit
def _run_end(group_ids, i, stop):
    """End of the run of rows of row i's group that starts at row i (at most ``stop``)."""
    g = group_ids[i]
    end = i + 1
    while end < stop and group_ids[end] == g:
        end += 1
    return end


@njit
def _next_stretch(group_ids, has_groups, i, stop):
    """(end, one group) of the stretch of rows that starts at row i: all the rows up to ``stop`` without
    groups; else a run of at least LONG_RUN rows of one group, or the rows up to the next such run."""
    if not has_groups:
        return stop, True
    end = _run_end(group_ids, i, stop)
    if end - i >= LONG_RUN:
        return end, True
    while end < stop:
        run_end = _run_end(group_ids, end, stop)
        if run_end - end >= LONG_RUN:
            break
        end = run_end
    return end, False
