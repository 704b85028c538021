"""The row accounting every test that skips rows checks: each row read is evaluated, skipped or ignored, and
the skipped rows by reason add up to skipped_rows, overall and in every group."""

from __future__ import annotations

from collections import Counter
from typing import Any

import streamdiv


def assert_rows_add_up(report: streamdiv.Report | dict[str, Any], rows_read: int) -> dict[str, int]:
    """Check a report (or its JSON data, ``to_dict()`` or ``--format json``) of a run that fed ``rows_read``
    rows: rows + skipped_rows + ignored_rows == rows_read, and sum(skipped_by_reason) == skipped_rows with every
    reason counting rows, overall and in each group, the groups adding up to the whole.  Returns the overall
    skipped rows by reason."""
    data = report.to_dict() if isinstance(report, streamdiv.Report) else report
    if isinstance(report, streamdiv.Report):
        assert data["skipped_by_reason"] == report.skipped
        assert [entry["skipped"] for entry in report.groups] == [g["skipped_by_reason"] for g in data.get("groups", [])]
    overall = _checked(data["metrics"], data["skipped_by_reason"])
    assert data["rows_read"] == rows_read == overall
    if data.get("groups"):
        by_group = [_checked(group["metrics"], group["skipped_by_reason"]) for group in data["groups"]]
        assert sum(by_group) == rows_read, by_group
        added = sum((Counter(group["skipped_by_reason"]) for group in data["groups"]), Counter())
        assert dict(added) == data["skipped_by_reason"], (dict(added), data["skipped_by_reason"])
    return data["skipped_by_reason"]


def _checked(metrics: dict[str, Any], skipped: dict[str, int] | None) -> int:
    """The rows read of one set of metrics, after checking that its skipped rows by reason add up."""
    assert skipped is not None, "the skipped rows' reasons are unknown"
    assert all(type(rows) is int and rows > 0 for rows in skipped.values()), skipped
    assert sum(skipped.values()) == metrics["skipped_rows"], (skipped, metrics["skipped_rows"])
    return metrics["rows"] + metrics["skipped_rows"] + metrics["ignored_rows"]
