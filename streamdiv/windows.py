"""Time windows: a time column becomes one more group key, ``window``, valued by each row's window start.

A window of width W is the half-open interval [start, start + W), with start = origin + floor((t - origin) / W) W
for a row's instant t.  The origin is the Unix epoch, 1970-01-01 00:00 UTC, for widths in seconds, minutes,
hours and days, and Monday 1970-01-05 00:00 UTC for weeks, so that every week starts on a Monday.  The key is
the start as an ISO-8601 UTC string, ``"2026-11-30T00:00:00Z"``.

Time columns: Arrow timestamps of any unit, with or without a time zone (Arrow stores the UTC instant either
way, so a naive timestamp is read as UTC), and ``date32`` (days) / ``date64`` (milliseconds) dates, which are
their midnight UTC.  A null time makes the row invalid (``status.NULL_TIME``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .errors import SchemaError, StreamdivError

WINDOW_KEY = "window"  # the group key's name in report.groups[i]["group"]
UNIT_SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MONDAY_1970_01_05 = 4 * 86400  # seconds after the epoch: the origin of week windows
DURATION = re.compile(r"^\s*([1-9][0-9]*)\s*(s|min|h|d|w)\s*$")
# Ticks per second of each Arrow time unit (dates are converted to seconds first).
TICKS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
# A batch whose windows span at most this many widths (and no more than it has rows) gets its window codes
# by arithmetic, as a dictionary of every window in the span; a wider span (a few rows spread over years of
# one-second windows) is dictionary-encoded by hashing instead.
DENSE_WINDOWS = 1 << 16


@dataclass(frozen=True)
class Window:
    """A window width: ``text`` as the user wrote it ("1d"), ``seconds`` its width, ``origin`` (seconds after
    the epoch) where the windows are aligned."""

    text: str
    seconds: int
    origin: int

    @classmethod
    def parse(cls, text: str) -> Window:
        """``Ns``, ``Nmin``, ``Nh``, ``Nd`` or ``Nw`` with N a positive whole number."""
        match = DURATION.match(str(text))
        if not match:
            raise StreamdivError(f"cannot read the window {text!r}: write a positive whole number and a unit, "
                                 f"one of s, min, h, d, w (such as '1d', '6h', '15min', '1w')")
        count, unit = int(match.group(1)), match.group(2)
        return cls(f"{count}{unit}", count * UNIT_SECONDS[unit], MONDAY_1970_01_05 if unit == "w" else 0)


def check_time_type(name: str, kind: pa.DataType) -> None:
    """Refuse a time column that is not a timestamp or a date, naming it and its type."""
    if not (pa.types.is_timestamp(kind) or pa.types.is_date32(kind) or pa.types.is_date64(kind)):
        raise SchemaError(f"the time column {name!r} has type {kind}, but windows need an Arrow timestamp (any "
                          f"unit, with or without a time zone) or a date32/date64: cast it, for instance "
                          f"with pyarrow.compute.strptime or pandas.to_datetime")


def window_codes(values: pa.Array | pa.ChunkedArray, window: Window, name: str) -> pa.Array:
    """Each row's window start in seconds after the epoch, as a dictionary-encoded Arrow array (null where the
    time is null), ready for :func:`streamdiv.group_keys.group_keys`."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    check_time_type(name, values.type)
    ticks, per_second = _ticks(values)
    width, origin = window.seconds * per_second, window.origin * per_second
    index = np.floor_divide(ticks - origin, width)  # floor: instants before the origin go to earlier windows
    nulls = values.is_null().to_numpy(zero_copy_only=False) if values.null_count else None
    valid = index if nulls is None else index[~nulls]
    if len(valid) == 0:
        return pa.DictionaryArray.from_arrays(pa.array(np.zeros(len(values), dtype=np.int32), mask=nulls),
                                              pa.array([], pa.int64()))
    lowest, highest = int(valid.min()), int(valid.max())
    if highest - lowest < min(DENSE_WINDOWS, max(len(valid), 1)):
        codes = (index - lowest).astype(np.int32)
        if nulls is not None:
            codes[nulls] = 0
        starts = window.origin + (np.arange(lowest, highest + 1, dtype=np.int64) * window.seconds)
        return pa.DictionaryArray.from_arrays(pa.array(codes, mask=nulls), pa.array(starts))
    starts = pa.array(window.origin + index * window.seconds, mask=nulls)
    return starts.dictionary_encode()


def _ticks(values: pa.Array) -> tuple[np.ndarray, int]:
    """(int64 ticks of every row, nulls as 0; ticks per second) of a timestamp or date array."""
    kind = values.type
    if pa.types.is_date32(kind):
        days = values.view(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False)
        return days.astype(np.int64) * 86400, 1
    if pa.types.is_date64(kind):
        return values.view(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False), 1000
    ticks = values.view(pa.int64())
    if ticks.null_count:
        ticks = ticks.fill_null(0)
    return ticks.to_numpy(zero_copy_only=False), TICKS_PER_SECOND[kind.unit]


def iso_start(seconds: int | None) -> str | None:
    """A window start (seconds after the epoch) as an ISO-8601 UTC string; None stays None (null times)."""
    if seconds is None:
        return None
    return str(np.datetime64(int(seconds), "s")) + "Z"


def start_seconds(text: str | None) -> float:
    """The window start of an ISO key, in seconds after the epoch, for ordering (None, null times, last)."""
    if text is None:
        return float("inf")
    return float(np.datetime64(text.rstrip("Z"), "s").astype(np.int64))
