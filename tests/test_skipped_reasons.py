"""Skipped rows by reason: every reason an invalid row can have from data is counted under its key, overall and
per group, against a count made here from the rows each test spoiled; the counts merge, save, load, regroup
and reach the JSON, table and Prometheus formats."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from row_accounting import assert_rows_add_up
from state_bytes import arrays_of, header_of, rewritten

import streamdiv
from streamdiv.cli import main
from streamdiv.formats import render
from streamdiv.kernels.layout import ROW_BLOCK
from streamdiv.kernels.status import PROBLEMS, REASONS
from streamdiv.report import Report
from streamdiv.skip_reasons import REASON_WORDS
from streamdiv.state import regrouped

N = 240
GROUPS = np.array(["a", "b", "c", "d"])[np.arange(N) % 4]
FIXTURES = Path(__file__).parent / "fixtures" / "states"


def _distribution(rng: np.random.Generator, n_classes: int = 3) -> list[float]:
    return rng.dirichlet(np.ones(n_classes)).tolist()


def _set(column: str, value: Any) -> Callable[[dict[str, list], int], None]:
    def spoil(rows: dict[str, list], i: int) -> None:
        rows[column][i] = value
    return spoil


def _set_value(column: str, position: int, value: float) -> Callable[[dict[str, list], int], None]:
    def spoil(rows: dict[str, list], i: int) -> None:
        rows[column][i] = list(rows[column][i])
        rows[column][i][position] = value
    return spoil


def _alternating(column: str, values: list[float]) -> Callable[[dict[str, list], int], None]:
    def spoil(rows: dict[str, list], i: int) -> None:
        rows[column][i] = values[i % len(values)]
    return spoil


def _shorter(column: str) -> Callable[[dict[str, list], int], None]:
    return lambda rows, i: rows[column].__setitem__(i, rows[column][i][:-1])


def _longer(column: str) -> Callable[[dict[str, list], int], None]:
    return lambda rows, i: rows[column].__setitem__(i, rows[column][i] + [0.0])


# How data makes each reason, by input family: (the reason's key, how one row is spoiled).
PREDICTION = {
    "null_prediction": _set("probs", None),
    "wrong_length_prediction": _shorter("probs"),
    "prediction_nan": _set_value("probs", 1, math.nan),
    "prediction_out_of_range": _set("probs", [1.5, -0.25, -0.25]),
}
LABEL = {"null_label": _set("labels", None), "label_out_of_range": _alternating("labels", [3, -1, 2 ** 40])}
WEIGHT = {"null_weight": _set("weights", None),
          "weight_negative_or_nan": _alternating("weights", [-1.0, math.nan, math.inf])}
TARGET = {
    "null_target": _set("targets", None),
    "wrong_length_target": _longer("targets"),
    "target_nan": _set_value("targets", 0, math.nan),
    "target_out_of_range": _set("targets", [1.5, -0.5, 0.0]),
}
BINARY = {
    "null_prediction": _set("probs", None),
    "prediction_nan": _set("probs", math.nan),
    "prediction_out_of_range": _alternating("probs", [1.5, -0.5]),
    "null_label": _set("labels", None),
    "label_out_of_range": _set("labels", 2),
}
LOGITS = {
    "null_prediction": _set("logits", None),
    "logit_nan_or_positive_infinity": _alternating("logits", [[0.0, math.inf, 1.0], [math.nan, 0.0, 1.0]]),
    "logits_all_negative_infinity": _set("logits", [-math.inf] * 3),
    "wrong_length_prediction": _shorter("logits"),
}
GAUSSIAN = {
    **{f"null_{role}": _set(role, None) for role in ("mean", "log_variance", "prior_mean", "prior_log_variance")},
    **{f"wrong_length_{role}": _longer(role) for role in ("mean", "log_variance", "prior_mean",
                                                           "prior_log_variance")},
    "mean_not_finite": _set_value("mean", 0, math.nan),
    "log_variance_not_finite": _set_value("log_variance", 1, math.inf),
    "prior_mean_not_finite": _set_value("prior_mean", 1, -math.inf),
    "prior_log_variance_not_finite": _set_value("prior_log_variance", 0, math.nan),
    "weight_negative_or_nan": _alternating("weights", [-0.5, math.nan]),
}


def _good_rows(family: str, rng: np.random.Generator) -> dict[str, list]:
    """N valid rows of a family's columns, as Python lists."""
    if family == "gaussian":
        return {role: rng.normal(0.0, 1.0, (N, 2)).tolist()
                for role in ("mean", "log_variance", "prior_mean", "prior_log_variance")} | {
            "weights": rng.uniform(0.5, 2.0, N).tolist()}
    if family.startswith("binary"):
        probs = rng.uniform(0.0, 1.0, N)
        rows = {"probs": probs.tolist(), "weights": rng.uniform(0.5, 2.0, N).tolist()}
        return rows | ({"targets": rng.uniform(0.0, 1.0, N).tolist()} if family == "binary targets"
                       else {"labels": (rng.random(N) < probs).astype(int).tolist()})
    rows: dict[str, list] = {"probs": [_distribution(rng) for _ in range(N)],
                             "weights": rng.uniform(0.5, 2.0, N).tolist()}
    if family == "logits":
        rows["logits"] = np.log(np.array(rows.pop("probs"))).tolist()
    if family == "soft":
        rows["targets"] = [_distribution(rng) for _ in range(N)]
    elif family == "class names":
        rows["labels"] = rng.choice(["cat", "dog", "eel"], N).tolist()
    elif family != "label-free":
        rows["labels"] = rng.integers(0, 3, N).tolist()
    return rows


FAMILIES: dict[str, tuple[dict[str, Callable], dict[str, Any]]] = {
    "probabilities": (PREDICTION | LABEL | WEIGHT, {}),
    "probabilities, the loss metrics": (PREDICTION | LABEL | WEIGHT, {"metrics": "loss"}),
    "logits": (LOGITS | LABEL | WEIGHT, {}),
    "soft": (TARGET | {"prediction_nan": PREDICTION["prediction_nan"]} | WEIGHT, {}),
    "binary": (BINARY | WEIGHT, {}),
    "binary targets": ({"null_target": _set("targets", None), "target_nan": _set("targets", math.nan),
                        "target_out_of_range": _alternating("targets", [1.25, -0.25]),
                        "prediction_out_of_range": _set("probs", 2.0)}, {}),
    "label-free": (PREDICTION | WEIGHT, {}),
    "class names": ({"unknown_label": _alternating("labels", ["zebra", "Cat", ""]),
                     "null_label": _set("labels", None), "null_weight": _set("weights", None)},
                    {"class_names": ["cat", "dog", "eel"]}),
    "gaussian": (GAUSSIAN, {}),
}


def _spoiled(family: str, seed: int) -> tuple[dict[str, list], list[str | None]]:
    """The family's rows with reason j of its table spoiling j + 1 rows (distinct rows, row 0 left whole: the
    Gaussian kind takes its dimensions from the first well-formed row), and each row's reason (None: valid)."""
    rng = np.random.default_rng(seed)
    rows = _good_rows(family, rng)
    spoilers = FAMILIES[family][0]
    reasons: list[str | None] = [None] * N
    chosen = iter(1 + rng.permutation(N - 1))
    for j, (reason, spoil) in enumerate(spoilers.items()):
        for _ in range(j + 1):
            i = int(next(chosen))
            spoil(rows, i)
            reasons[i] = reason
    return rows, reasons


def _arrow(rows: dict[str, list]) -> dict[str, pa.Array]:
    """Each column as an Arrow array: lists of floats (nulls and ragged lists kept), floats, ints or strings."""
    def array(values: list) -> pa.Array:
        sample = next(value for value in values if value is not None)
        if isinstance(sample, list):
            return pa.array(values, pa.list_(pa.float64()))
        if isinstance(sample, str):
            return pa.array(values, pa.string())
        return pa.array(values, pa.float64() if any(isinstance(v, float) for v in values) else pa.int64())
    return {role: array(values) for role, values in rows.items()}


def _expected(reasons: list[str | None], groups: np.ndarray | None = None) -> dict[Any, Counter]:
    """The count made here: rows per reason, overall (key None) and in each group."""
    counted: dict[Any, Counter] = {None: Counter(reason for reason in reasons if reason)}
    for value in np.unique(groups) if groups is not None else ():
        counted[value] = Counter(reason for reason, g in zip(reasons, groups) if reason and g == value)
    return counted


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_reason_from_data_is_counted_under_its_key_overall_and_per_group(family):
    rows, reasons = _spoiled(family, seed=len(family))
    options = FAMILIES[family][1]
    accumulator = streamdiv.Accumulator(on_invalid="skip", **options)
    report = accumulator.update(**_arrow(rows), groups=GROUPS).report()
    expected = _expected(reasons, GROUPS)
    assert report.skipped == dict(expected[None]) and set(report.skipped) == set(FAMILIES[family][0])
    assert list(report.skipped) == [key for key in REASONS.values() if key in report.skipped]  # code order
    for entry in report.groups:
        assert entry["skipped"] == dict(expected[entry["group"]["group"]]), entry["group"]
    assert report.metrics["skipped_rows"] == sum(1 for reason in reasons if reason)
    assert_rows_add_up(report, N)


def test_each_status_code_of_an_invalid_row_has_a_key_of_its_constant_name_and_the_error_words():
    assert REASONS[2] == "null_label" and REASONS[31] == "prediction_out_of_range"
    assert set(REASONS) == set(PROBLEMS) and 20 not in REASONS  # CODE_IGNORED: ignored_rows, not a reason
    assert REASON_WORDS["label_out_of_range"] == "labels is not a class index in [0, number of classes)"
    reachable = {reason for spoilers, _ in FAMILIES.values() for reason in spoilers} | {"null_time"}
    assert reachable == set(REASONS.values())  # the tests here reach every reason from data


def test_a_null_time_is_a_reason_in_a_windowed_run_its_rows_in_the_null_window():
    rng = np.random.default_rng(11)
    rows = _good_rows("probabilities", rng)
    start = dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc)
    times: list[dt.datetime | None] = [start + dt.timedelta(hours=int(h)) for h in rng.integers(0, 72, N)]
    null_times, nan_rows = rng.permutation(N)[:7], rng.permutation(N)[7:12]
    reasons: list[str | None] = [None] * N
    for i in null_times:
        times[i] = None
        reasons[i] = "null_time"
    for i in nan_rows:
        if times[i] is not None:
            PREDICTION["prediction_nan"](rows, i)
            reasons[i] = "prediction_nan"
    report = streamdiv.Accumulator(on_invalid="skip", window="1d").update(
        **_arrow(rows), time=pa.array(times, pa.timestamp("s", tz="UTC"))).report()
    days = np.array(["null" if t is None else t.strftime("%Y-%m-%dT00:00:00Z") for t in times])
    expected = _expected(reasons, days)
    assert report.skipped == dict(expected[None]) and report.skipped["null_time"] == 7
    for entry in report.groups:
        assert entry["skipped"] == dict(expected[entry["group"]["window"] or "null"])
    assert_rows_add_up(report, N)
    start_of_latest, latest = report.latest_window()
    assert latest.skipped == dict(expected[start_of_latest])


def test_ignored_rows_are_not_a_reason_and_a_clean_run_has_no_reasons():
    labels = np.array([0, -100, 2, 1, -100, 7])
    probs = np.tile([[0.2, 0.3, 0.5]], (6, 1))
    report = streamdiv.Accumulator(on_invalid="skip", ignore_label=-100).update(probs=probs, labels=labels).report()
    assert report.skipped == {"label_out_of_range": 1} and report.metrics["ignored_rows"] == 2
    assert_rows_add_up(report, 6)
    clean = streamdiv.Accumulator().update(probs=probs, labels=labels % 3).report()
    assert clean.skipped == {} and clean.to_dict()["skipped_by_reason"] == {}


def test_many_blocks_on_several_threads_and_any_batch_cuts_count_the_same_rows():
    """Rows over many compensation blocks, scored in parallel lanes: the reasons of a count made with numpy,
    the same bits whatever the batches."""
    rng = np.random.default_rng(5)
    n = 3 * ROW_BLOCK + 17
    probs = rng.dirichlet(np.ones(4), n)
    labels = rng.integers(0, 4, n)
    weights = rng.uniform(0.5, 2.0, n)
    groups = rng.integers(0, 5, n)
    nan_rows, range_rows, label_rows, weight_rows = np.split(rng.permutation(n)[:400], [90, 200, 310])
    probs[nan_rows, 1] = np.nan
    probs[range_rows, 0] = 1.75
    labels[label_rows] = 4
    weights[weight_rows] = -2.0
    whole = streamdiv.Accumulator(on_invalid="skip").update(probs=probs, labels=labels, weights=weights,
                                                            groups=groups)
    cut = streamdiv.Accumulator(on_invalid="skip")
    for start in range(0, n, 5000):
        cut.update(probs=probs[start: start + 5000], labels=labels[start: start + 5000],
                   weights=weights[start: start + 5000], groups=groups[start: start + 5000])
    assert cut.to_bytes() == whole.to_bytes()
    report = whole.report()
    assert report.skipped == {"prediction_nan": 90, "prediction_out_of_range": 110, "label_out_of_range": 110,
                              "weight_negative_or_nan": 90}
    for entry in report.groups:
        g = entry["group"]["group"]
        counted = {"prediction_nan": np.sum(groups[nan_rows] == g),
                   "prediction_out_of_range": np.sum(groups[range_rows] == g),
                   "label_out_of_range": np.sum(groups[label_rows] == g),
                   "weight_negative_or_nan": np.sum(groups[weight_rows] == g)}
        assert entry["skipped"] == {key: int(rows) for key, rows in counted.items() if rows}
    assert_rows_add_up(report, n)


def test_with_on_invalid_error_the_reasons_are_counted_before_the_error():
    probs = np.tile([[0.2, 0.3, 0.5]], (5, 1))
    probs[3, 0] = np.nan
    accumulator = streamdiv.Accumulator()
    with pytest.raises(streamdiv.InvalidRowError, match="row 1, column 'labels'"):
        accumulator.update(probs=probs, labels=np.array([0, 9, 1, 2, 9]))
    assert accumulator.report().skipped == {"prediction_nan": 1, "label_out_of_range": 2}
    assert_rows_add_up(accumulator.report(), 5)


def _two_parts() -> tuple[streamdiv.Accumulator, streamdiv.Accumulator, streamdiv.Accumulator, list[str | None]]:
    rows, reasons = _spoiled("probabilities", seed=21)
    columns = _arrow(rows)
    half = N // 2

    def fed(lo: int, hi: int) -> streamdiv.Accumulator:
        return streamdiv.Accumulator(on_invalid="skip").update(
            **{role: values[lo:hi] for role, values in columns.items()},
            groups={"group": GROUPS[lo:hi], "tier": np.where(np.arange(lo, hi) % 3 == 0, "x", "y")})
    return fed(0, half), fed(half, N), fed(0, N), reasons


def test_merging_adds_the_reasons_and_a_saved_state_keeps_them():
    first, second, whole, reasons = _two_parts()
    merged = first + second
    report = merged.report()
    assert report.skipped == dict(_expected(reasons)[None]) == whole.report().skipped
    assert Counter(first.report().skipped) + Counter(second.report().skipped) == Counter(report.skipped)
    assert [entry["skipped"] for entry in report.groups] == [entry["skipped"] for entry in whole.report().groups]
    restored = streamdiv.Accumulator.from_bytes(merged.to_bytes())
    assert restored.report().to_dict() == report.to_dict()
    assert restored._state.config.absent_slots == ()
    assert_rows_add_up(restored.report(), N)


def test_regrouped_states_add_the_reasons_of_the_groups_they_join():
    _, _, whole, reasons = _two_parts()
    tiers = np.where(np.arange(N) % 3 == 0, "x", "y")
    by_tier = Report(regrouped(whole._state, ("tier",)), "e")
    expected = _expected(reasons, tiers)
    assert {entry["group"]["tier"]: entry["skipped"] for entry in by_tier.groups} == {
        tier: dict(expected[tier]) for tier in ("x", "y")}
    only_a = Report(regrouped(whole._state, (), {"group": "a"}), "e")
    assert only_a.skipped == dict(_expected(reasons, GROUPS)["a"])
    assert_rows_add_up(by_tier, N)


def _without_reason_slots(data: bytes) -> bytes:
    """A state's bytes as a streamdiv before the reason slots wrote them: those count slots left out of its
    layout and of both count arrays (totals and open block)."""
    header = header_of(data)
    names = header["layout"]["count_slots"]
    keep = [i for i, name in enumerate(names) if not name.startswith("skipped.")]
    keep += list(range(len(names), header["counts_shape"][1]))  # the bins' counts
    n, counts, sums = header["counts_shape"][0], header["counts_shape"][1], header["sums_shape"][1]
    raw = np.frombuffer(arrays_of(data), dtype="<u1")
    counts_bytes, sums_bytes = n * counts * 8, n * sums * 2 * 8
    parts = []
    for offset in (0, counts_bytes + sums_bytes):  # totals, then the open block
        array = np.frombuffer(raw[offset: offset + counts_bytes].tobytes(), dtype="<i8").reshape(n, counts)
        parts.append(array[:, keep].tobytes() + raw[offset + counts_bytes: offset + counts_bytes + sums_bytes].tobytes())

    def edit(header: dict[str, Any]) -> None:
        header["layout"]["count_slots"] = [name for name in names if not name.startswith("skipped.")]
        header["counts_shape"][1] = len(keep)
    return rewritten(data, edit, arrays=b"".join(parts))


def test_a_state_saved_before_the_reasons_gives_them_as_unknown_never_as_zeros():
    """The fixtures predate the reason slots: those are absent.  Where such a state skipped rows their reasons
    are unknown (None), overall and in that group, also once merged with a current state; where it skipped
    none, every skipped row it holds is counted by reason, and the reasons are known ({} alone)."""
    for name in sorted(path.stem for path in FIXTURES.glob("v*.state")):
        old = streamdiv.Accumulator.from_bytes((FIXTURES / f"{name}.state").read_bytes())
        assert {f"skipped.{key}" for key in REASONS.values()} <= set(old._state.config.absent_slots)
        report = old.report()
        assert report.skipped == (None if report.metrics["skipped_rows"] else {}), name
        for entry in report.groups:
            assert entry["skipped"] == (None if entry["metrics"]["skipped_rows"] else {}), name
        assert report.to_dict()["skipped_by_reason"] == report.skipped
    multiclass = streamdiv.Accumulator.from_bytes((FIXTURES / "v3-multiclass.state").read_bytes()).report()
    assert multiclass.metrics["skipped_rows"] == 1 and multiclass.skipped is None
    assert "skipped: 1 rows (reasons unknown" in render(multiclass, "table")

    probs = np.tile([[0.2, 0.3, 0.5]], (6, 1))
    labels, groups = np.array([0, 1, 2, 0, 1, 2]), np.array(["a", "a", "b", "b", "c", "c"])
    spoiled = probs.copy()
    spoiled[0, 0] = np.nan  # group a skips a row, b and c none
    written = streamdiv.Accumulator(on_invalid="skip").update(probs=spoiled, labels=labels, groups=groups)
    older = streamdiv.Accumulator.from_bytes(_without_reason_slots(written.to_bytes()), on_invalid="skip")
    assert older.report().metrics == written.report().metrics
    assert [entry["skipped"] for entry in older.report().groups] == [None, {}, {}]
    newer = streamdiv.Accumulator(on_invalid="skip").update(probs=probs, labels=np.array([5, 0, 6, 6, 0, 1]),
                                                            groups=groups)
    merged = (older + newer).report()
    assert merged.skipped is None and merged.metrics["skipped_rows"] == 4
    assert [entry["skipped"] for entry in merged.groups] == [None, {"label_out_of_range": 2}, {}]
    clean = streamdiv.Accumulator(on_invalid="skip").update(probs=np.array([[0.5, 0.5, 0.0]]), labels=np.array([0]))
    clean_older = streamdiv.Accumulator.from_bytes(_without_reason_slots(clean.to_bytes()), on_invalid="skip")
    assert clean_older.report().skipped == {}
    later = clean_older.update(probs=np.array([[1.5, 0.0, 0.0], [0.2, 0.2, 0.6]]), labels=np.array([0, 7]))
    assert later.report().skipped == {"prediction_out_of_range": 1, "label_out_of_range": 1}
    assert later._state.config.absent_slots  # still absent, yet known: the older part skipped nothing


def test_the_json_table_and_prometheus_formats_give_the_reasons(tmp_path):
    probs = np.tile([[0.2, 0.3, 0.5]], (8, 1))
    probs[1, 0] = np.nan
    probs[5] = [1.5, -0.25, -0.25]
    probs[6, 2] = np.nan
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 0])
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"p": pa.FixedSizeListArray.from_arrays(pa.array(probs.ravel()), 3), "y": labels,
                             "region": ["eu", "us"] * 4}), path)
    arguments = ["score", str(path), "--probs", "p", "--labels", "y", "--on-invalid", "skip"]
    data = json.loads(CliRunner().invoke(main, arguments + ["--by", "region", "--format", "json"]).stdout)
    assert data["skipped_by_reason"] == {"prediction_nan": 2, "prediction_out_of_range": 1, "label_out_of_range": 1}
    assert [group["skipped_by_reason"] for group in data["groups"]] == [  # eu: row 6; us: rows 1, 3, 5
        {"prediction_nan": 1}, {"prediction_nan": 1, "prediction_out_of_range": 1, "label_out_of_range": 1}]
    assert_rows_add_up(data, 8)
    table = CliRunner().invoke(main, arguments + ["--format", "table"]).stdout
    assert ("\nskipped: 4 rows (prediction holds NaN (or a null inside the list): 2; prediction holds a probability "
            "outside [0, 1]: 1; labels is not a class index in [0, number of classes): 1)\n") in table
    prometheus = CliRunner().invoke(main, arguments + ["--by", "region", "--format", "prometheus"]).stdout
    lines = [line for line in prometheus.splitlines() if line.startswith("streamdiv_skipped_rows")]
    assert lines == ["streamdiv_skipped_rows 4.0", 'streamdiv_skipped_rows{region="eu"} 1.0',
                     'streamdiv_skipped_rows{region="us"} 3.0',
                     'streamdiv_skipped_rows{reason="prediction_nan"} 2.0',
                     'streamdiv_skipped_rows{reason="prediction_out_of_range"} 1.0',
                     'streamdiv_skipped_rows{reason="label_out_of_range"} 1.0',
                     'streamdiv_skipped_rows{region="eu",reason="prediction_nan"} 1.0',
                     'streamdiv_skipped_rows{region="us",reason="prediction_nan"} 1.0',
                     'streamdiv_skipped_rows{region="us",reason="prediction_out_of_range"} 1.0',
                     'streamdiv_skipped_rows{region="us",reason="label_out_of_range"} 1.0']
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"p": pa.FixedSizeListArray.from_arrays(pa.array(np.tile([0.2, 0.3, 0.5], 8)), 3),
                             "y": labels % 3}), good)
    clean = CliRunner().invoke(main, ["score", str(good), "--probs", "p", "--labels", "y", "--format", "table"])
    assert clean.exit_code == 0 and "skipped_rows" in clean.stdout and "skipped:" not in clean.stdout
    assert json.loads(CliRunner().invoke(main, ["score", str(good), "--probs", "p", "--labels", "y", "--format",
                                                "json"]).stdout)["skipped_by_reason"] == {}


def test_a_group_column_named_like_a_label_of_streamdivs_own_is_labelled_group_name():
    """A group column "reason" (or "class", "window") beside the reason label: group_reason="...", so that the
    two do not collide into one label and the group's series stay apart."""
    table = pa.table({"probs": pa.array([[0.5, 0.5], [0.25, 0.75], [float("nan"), 1.0], [0.9, 0.1]]),
                      "label": pa.array([0, 1, 1, 0]), "reason": pa.array(["a", "b", "b", "a"])})
    report = streamdiv.evaluate(table, probs="probs", labels="label", by="reason", on_invalid="skip")
    lines = render(report, "prometheus").splitlines()
    assert 'streamdiv_skipped_rows{group_reason="b",reason="prediction_nan"} 1.0' in lines
    assert 'streamdiv_rows{group_reason="a"} 2.0' in lines
    assert not any('{reason="a"' in line or '{reason="b"' in line for line in lines)
