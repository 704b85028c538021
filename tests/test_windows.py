"""Time windows: each row's window from its time, windows as group keys, their order, series, merges, formats."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

import streamdiv
from streamdiv.cli import main
from streamdiv.errors import InvalidRowError, SchemaError, StreamdivError
from streamdiv.formats import render
from streamdiv.windows import Window

from conftest import make_hard
from row_accounting import assert_rows_add_up

UTC = dt.timezone.utc
START = dt.datetime(2026, 11, 27, 13, 0, tzinfo=UTC)  # a Friday afternoon
SECONDS = 9 * 86400  # the rows' instants span nine days


def _table(n: int = 6000, seed: int = 3, unit: str = "ms", tz: str | None = None, nulls: int = 0) -> pa.Table:
    """Hard K=4 predictions with a timestamp column ``ts`` (in ``unit``, zone ``tz``) in random order over
    SECONDS from START, a ``region`` and, for reference, the instants as Python datetimes (``when``)."""
    _, probs, labels = make_hard(n, 4, seed)
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, SECONDS * 1000, n)  # milliseconds
    if unit == "s":
        offsets -= offsets % 1000
    when = [START + dt.timedelta(milliseconds=int(ms)) for ms in offsets]
    ts = pa.array(when, pa.timestamp("ms", tz="UTC")).cast(pa.timestamp(unit, tz="UTC"))
    if tz != "UTC":
        ts = ts.cast(pa.timestamp(unit, tz=tz)) if tz else pa.array(
            [w.replace(tzinfo=None) for w in when], pa.timestamp("ms")).cast(pa.timestamp(unit))
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, nulls, replace=False)] = True
    if nulls:
        ts = pa.array(ts.to_pylist(), ts.type, mask=mask)
    return pa.table({"probs": pa.FixedSizeListArray.from_arrays(pa.array(probs.ravel()), 4), "label": labels,
                     "ts": ts, "region": rng.choice(["eu", "us", "apac"], n)}), when


def _by_hand(when: list[dt.datetime], width: dt.timedelta, origin: dt.datetime) -> list[str]:
    """Each instant's window start, from Python's datetime arithmetic (the independent reference)."""
    return [(origin + ((w - origin) // width) * width).strftime("%Y-%m-%dT%H:%M:%SZ") for w in when]


EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
MONDAY = dt.datetime(1970, 1, 5, tzinfo=UTC)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata", None])
def test_each_row_falls_in_its_window_whatever_the_unit_and_zone(unit, tz):
    """The windowed run equals the same run grouped by each row's window start computed by hand, bit for bit:
    an aware timestamp is its UTC instant, a naive one is read as UTC."""
    table, when = _table(unit=unit, tz=tz)
    expected = _by_hand(when, dt.timedelta(hours=6), EPOCH)
    windowed = streamdiv.evaluate(table, probs="probs", labels="label", time="ts", window="6h", batch_size=1000)
    by_hand = streamdiv.evaluate(table.append_column("start", pa.array(expected)), probs="probs", labels="label",
                                 by="start", batch_size=1000)
    got = {g["group"]["window"]: g["metrics"] for g in windowed.groups}
    assert got == {g["group"]["start"]: g["metrics"] for g in by_hand.groups}
    assert [g["group"]["window"] for g in windowed.groups] == sorted(set(expected))


def test_a_window_equals_its_rows_scored_alone():
    """Each window's metrics equal evaluate() over its rows filtered out by hand (other block cuts: to 1e-15
    on the sums' metrics, relative)."""
    table, when = _table(n=40000)
    expected = np.array(_by_hand(when, dt.timedelta(days=1), EPOCH))
    report = streamdiv.evaluate(table, probs="probs", labels="label", time="ts", window="1d")
    assert len(report.groups) == 10
    for group in report.groups:
        alone = streamdiv.evaluate(table.filter(pa.array(expected == group["group"]["window"])), probs="probs",
                                   labels="label")
        for name in ("rows", "weight", "cross_entropy", "accuracy", "brier", "ece", "prediction_entropy"):
            assert math.isclose(group["metrics"][name], alone.metrics[name], rel_tol=1e-15), name


def test_week_windows_start_on_monday_and_dates_are_midnight_utc():
    table, when = _table()
    report = streamdiv.evaluate(table, probs="probs", labels="label", time="ts", window="1w")
    starts = [g["group"]["window"] for g in report.groups]
    assert starts == sorted(set(_by_hand(when, dt.timedelta(weeks=1), MONDAY)))
    assert all(dt.datetime.fromisoformat(s.replace("Z", "+00:00")).weekday() == 0 for s in starts)
    days = [w.date() for w in when]
    for kind in (pa.date32(), pa.date64()):
        dated = table.set_column(2, "ts", pa.array(days, kind))
        by_day = streamdiv.evaluate(dated, probs="probs", labels="label", time="ts", window="1d")
        by_time = streamdiv.evaluate(table, probs="probs", labels="label", time="ts", window="1d")
        assert [(g["group"], g["metrics"]["rows"]) for g in by_day.groups] == [
            (g["group"], g["metrics"]["rows"]) for g in by_time.groups]


def test_instants_before_the_epoch_go_to_earlier_windows():
    ts = pa.array([-1, 0, 86399, 86400, -86400, -86401], pa.timestamp("s"))
    probs = np.full((6, 2), 0.5)
    report = streamdiv.evaluate({"p": probs, "y": np.zeros(6, dtype=int), "ts": ts.to_numpy()}, probs="p",
                                labels="y", time="ts", window="1d")
    assert [(g["group"]["window"], g["metrics"]["rows"]) for g in report.groups] == [
        ("1969-12-30T00:00:00Z", 1), ("1969-12-31T00:00:00Z", 2), ("1970-01-01T00:00:00Z", 2),
        ("1970-01-02T00:00:00Z", 1)]


def test_windows_combine_with_by_ordered_by_start_then_as_without_windows():
    table, _ = _table()
    plain = streamdiv.evaluate(table, probs="probs", labels="label", by="region")
    windowed = streamdiv.evaluate(table, probs="probs", labels="label", by="region", time="ts", window="2d")
    order = [g["group"]["region"] for g in plain.groups]
    keys = [(g["group"]["window"], g["group"]["region"]) for g in windowed.groups]
    assert list(windowed.groups[0]["group"]) == ["window", "region"]
    assert keys == sorted(keys, key=lambda key: (key[0], order.index(key[1])))
    assert sum(g["metrics"]["rows"] for g in windowed.groups) == 6000


def test_series_follows_the_windows_in_order():
    table, _ = _table()
    report = streamdiv.evaluate(table, probs="probs", labels="label", by="region", time="ts", window="1d")
    eu = report.series("ece", region="eu")
    assert eu == [(g["group"]["window"], g["metrics"]["ece"]) for g in report.groups if g["group"]["region"] == "eu"]
    whole = streamdiv.evaluate(table, probs="probs", labels="label", time="ts", window="1d")
    for (start, value), (other_start, other) in zip(report.series("cross_entropy"),
                                                    whole.series("cross_entropy")):
        assert start == other_start and math.isclose(value, other, rel_tol=1e-15)
    with pytest.raises(StreamdivError, match="no group column 'country'"):
        report.series("ece", country="fr")
    with pytest.raises(StreamdivError, match="windowed report"):
        streamdiv.evaluate(table, probs="probs", labels="label").series("ece")


def test_daily_states_merge_into_the_week():
    """States of consecutive days (and a day cut in two: the same window in two states) merge into one pass
    over the week, to 1e-15."""
    table, when = _table(n=20000)
    day = np.array([w.date().isoformat() for w in when])
    week = streamdiv.evaluate(table, probs="probs", labels="label", by="region", time="ts", window="1d")
    merged = None
    for part, rows in enumerate(sorted(set(day))):
        chosen = np.flatnonzero(day == rows)
        for half in (chosen[: len(chosen) // 2], chosen[len(chosen) // 2:]):
            accumulator = streamdiv.Accumulator(window="1d")
            streamdiv.evaluate(table.take(half), probs="probs", labels="label", by="region", time="ts",
                               accumulator=accumulator)
            restored = streamdiv.Accumulator.from_bytes(accumulator.to_bytes())
            merged = restored if merged is None else merged.merge(restored)
    report = merged.report()
    # the regions come in the order the merged states first saw them: compare window by window, by key
    assert [g["group"]["window"] for g in report.groups] == [g["group"]["window"] for g in week.groups]
    theirs_by_key = {tuple(g["group"].values()): g for g in week.groups}
    for mine in report.groups:
        theirs = theirs_by_key[tuple(mine["group"].values())]
        assert mine["metrics"]["rows"] == theirs["metrics"]["rows"]
        for name in ("cross_entropy", "ece", "brier", "accuracy"):
            assert math.isclose(mine["metrics"][name], theirs["metrics"][name], rel_tol=1e-15)


def test_states_of_other_windows_refuse_to_merge():
    table, _ = _table(n=500)
    day, hour = (streamdiv.Accumulator(window=width) for width in ("1d", "1h"))
    for accumulator in (day, hour):
        streamdiv.evaluate(table, probs="probs", labels="label", time="ts", accumulator=accumulator)
    with pytest.raises(streamdiv.IncompatibleStateError, match="window differs: '1d' here, '1h'"):
        day.merge(hour)
    assert streamdiv.Accumulator.from_bytes(day.to_bytes()).report().config.window == "1d"


def test_a_null_time_is_an_invalid_row():
    table, _ = _table(n=3000, nulls=7)
    with pytest.raises(InvalidRowError, match=r"column 'ts': the value None is null, so the row has no window"):
        streamdiv.evaluate(table, probs="probs", labels="label", time="ts", window="1d")
    report = streamdiv.evaluate(table, probs="probs", labels="label", time="ts", window="1d", on_invalid="skip")
    assert report.metrics["skipped_rows"] == 7 and report.metrics["rows"] == 2993
    assert report.rows_read == 3000
    assert report.groups[-1]["group"]["window"] is None  # the null times' group comes last
    assert assert_rows_add_up(report, 3000) == {"null_time": 7}
    assert report.groups[-1]["skipped"] == {"null_time": 7}


def test_time_columns_of_other_types_and_bad_widths_are_refused():
    table, _ = _table(n=100)
    for column in ("label", "region"):
        with pytest.raises(SchemaError, match=f"time column '{column}' has type"):
            streamdiv.evaluate(table, probs="probs", labels="label", time=column, window="1d")
    for width in ("1 day", "0d", "-1h", "1.5h", "1m", ""):
        with pytest.raises(StreamdivError, match="cannot read the window"):
            streamdiv.evaluate(table, probs="probs", labels="label", time="ts", window=width)
    with pytest.raises(StreamdivError, match="both time="):
        streamdiv.evaluate(table, probs="probs", labels="label", window="1d")
    assert [Window.parse(text).seconds for text in ("30s", "15min", "6h", "2d", "1w")] == [
        30, 900, 21600, 172800, 604800]


def test_formats_name_the_window_and_prometheus_writes_the_latest_only():
    table, _ = _table()
    report = streamdiv.evaluate(table, probs="probs", labels="label", by="region", time="ts", window="1d")
    data = json.loads(render(report, "json"))
    assert data["window"] == "1d" and data["by"] == ["window", "region"]
    assert data["groups"][0]["group"] == {"window": "2026-11-27T00:00:00Z", "region": report.groups[0]["group"]["region"]}
    header = render(report, "csv").splitlines()[0].split(",")
    assert header[:3] == ["scope", "window", "region"]
    text = render(report, "prometheus")
    latest = '"2026-12-06T00:00:00Z"'
    samples = [line for line in text.splitlines() if line.startswith("streamdiv_rows")]
    last_day = [g for g in report.groups if g["group"]["window"] == "2026-12-06T00:00:00Z"]
    assert samples[0] == f"streamdiv_rows{{window={latest}}} {float(sum(g['metrics']['rows'] for g in last_day))}"
    assert len(samples) == 1 + len(last_day) and all(f"window={latest}" in line for line in samples)
    assert "2026-12-05" not in text


def test_the_command_line_scores_windows(tmp_path):
    table, _ = _table(n=2000)
    path = tmp_path / "week.parquet"
    import pyarrow.parquet as pq
    pq.write_table(table, path)
    result = CliRunner().invoke(main, ["score", str(path), "--probs", "probs", "--labels", "label", "--time", "ts",
                                       "--window", "1d", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [g["group"]["window"] for g in data["groups"]][:2] == ["2026-11-27T00:00:00Z", "2026-11-28T00:00:00Z"]
    result = CliRunner().invoke(main, ["score", str(path), "--probs", "probs", "--labels", "label", "--window", "1d"])
    assert result.exit_code == 2 and "--time and --window go together" in result.output
    result = CliRunner().invoke(main, ["score", str(path), "--probs", "probs", "--labels", "label", "--time", "ts",
                                       "--window", "1day"])
    assert result.exit_code == 2 and "cannot read the window '1day'" in result.output


from hypothesis import given, strategies as st  # noqa: E402

from streamdiv.windows import UNIT_SECONDS, iso_start, window_codes  # noqa: E402


@given(st.lists(st.integers(-3 * 10**9, 4 * 10**9), min_size=1, max_size=300),
       st.integers(1, 90), st.sampled_from(sorted(UNIT_SECONDS)), st.sampled_from(["s", "ms", "us", "ns"]))
def test_window_starts_follow_the_definition(seconds, count, unit, tick):
    """start = origin + floor((t - origin) / W) W for any instants (before the epoch too), widths and units,
    against Python's datetime arithmetic; the dense and the hashed encodings agree."""
    window = Window.parse(f"{count}{unit}")
    origin = MONDAY if unit == "w" else EPOCH
    width = dt.timedelta(seconds=window.seconds)
    scale = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[tick]
    values = pa.array([s * scale for s in seconds], pa.timestamp(tick))
    codes = window_codes(values, window, "ts")
    starts = [iso_start(value) for value in codes.dictionary.to_pylist()]
    got = [starts[index] for index in codes.indices.to_pylist()]
    when = [EPOCH + dt.timedelta(seconds=s) for s in seconds]
    assert got == [(origin + ((w - origin) // width) * width).strftime("%Y-%m-%dT%H:%M:%SZ") for w in when]
