"""The saved-state format: every version that ever existed still loads to the report it gave; bytes that are
not an intact state of this streamdiv's slot layout are refused, through the API and through `streamdiv merge`.

Loading needs no kernel, so none of these tests compiles one; the fixtures under ``fixtures/states`` were
written by the code of their time (see ``fixtures/states/make_fixtures.py``)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from state_bytes import arrays_of, header_of, legacy, legacy_arrays_of, legacy_header_of, rewritten

import streamdiv
from streamdiv import state_format
from streamdiv.cli import main
from streamdiv.errors import CorruptStateError, StateLayoutError, StateVersionError
from streamdiv.state_format import FORMAT_VERSION, LEGACY_SLOTS, MAGIC

FIXTURES = Path(__file__).parent / "fixtures" / "states"
NAMES = sorted(path.stem for path in FIXTURES.glob("v*.state"))
SMALL = (FIXTURES / f"v{FORMAT_VERSION}-binary.state").read_bytes()


def _fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.state").read_bytes()


def _kept(new: object, old: object) -> object:
    """``new`` restricted to the keys ``old`` has, at every depth: a later streamdiv may report more."""
    if isinstance(new, dict) and isinstance(old, dict):
        return {key: _kept(new[key], old[key]) if key in new else "<missing>" for key in old}
    if isinstance(new, list) and isinstance(old, list) and len(new) == len(old):
        return [_kept(a, b) for a, b in zip(new, old)]
    return new


def test_every_format_version_has_fixtures():
    assert {name.split("-")[0] for name in NAMES} == {f"v{version}" for version in range(1, FORMAT_VERSION + 1)}
    assert all((FIXTURES / f"{name}.report.json").exists() for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_each_fixture_loads_to_the_report_it_gave_when_written(name):
    recorded = json.loads((FIXTURES / f"{name}.report.json").read_text())
    accumulator = streamdiv.Accumulator.from_bytes(_fixture(name))
    report = json.loads(json.dumps(accumulator.report().to_dict(), allow_nan=False))
    assert _kept(report, recorded) == recorded  # every value to the bit (JSON floats round-trip exactly)


@pytest.mark.parametrize("name", [name for name in NAMES if not name.startswith(f"v{FORMAT_VERSION}-")])
def test_an_old_fixture_saved_again_is_the_current_version_with_the_same_report(name):
    accumulator = streamdiv.Accumulator.from_bytes(_fixture(name))
    saved = accumulator.to_bytes()
    assert struct.unpack_from("<I", saved, len(MAGIC))[0] == FORMAT_VERSION
    again = streamdiv.Accumulator.from_bytes(saved)
    assert again.report().to_dict() == accumulator.report().to_dict()
    assert again.to_bytes() == saved


def test_every_single_bit_flip_is_refused_as_corrupt():
    for bit in range(8 * len(SMALL)):
        flipped = bytearray(SMALL)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(CorruptStateError):
            streamdiv.Accumulator.from_bytes(bytes(flipped))


@pytest.mark.parametrize("name", NAMES)
def test_every_truncation_is_refused_as_corrupt(name):
    data = _fixture(name)
    for length in range(len(data)):
        with pytest.raises(CorruptStateError, match="truncated|not a streamdiv state"):
            streamdiv.Accumulator.from_bytes(data[:length])


def test_a_flip_in_a_legacy_header_loads_or_is_refused_never_anything_else():
    """Versions 1 and 2 have no checksum: a changed name inside their header cannot be seen, but nothing that
    changes their structure gets past the strict checks as anything but a streamdiv error."""
    data = _fixture("v1-binary")
    end = state_format.LEGACY_PREAMBLE.size + state_format.LEGACY_PREAMBLE.unpack_from(data)[2]
    loaded = 0
    for bit in range(8 * end):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        try:
            streamdiv.Accumulator.from_bytes(bytes(flipped)).report()
            loaded += 1
        except streamdiv.StreamdivError:
            pass
    assert loaded < 0.05 * 8 * end  # letters of group names and keys


def _swap(names: list[str], first: str, second: str) -> None:
    a, b = names.index(first), names.index(second)
    names[a], names[b] = names[b], names[a]


@pytest.mark.parametrize("edit, message", [
    (lambda layout: _swap(layout["sum_slots"], "correct", "brier"),
     r"sum slots differ: the file has 12 \(weight, cross_entropy, .*, js, brier, correct\), this streamdiv has 12 "
     r"\(weight, .*, correct, brier\); the first difference is slot 10: 'brier' in the file, 'correct' here"),
    (lambda layout: layout["per_bin_sum_slots"].__setitem__(1, "bin.top_confidence"),
     "per-bin sum slots differ: .* slot 1: 'bin.top_confidence' in the file, 'bin.confidence' here"),
    (lambda layout: layout["count_slots"].extend(["double_softmax", "nan_rows"]),
     "count slots differ: the file has 9 .* slot 8: 'nan_rows' in the file, 'skipped.null_prediction' here"),
    (lambda layout: layout["per_class_sum_slots"].__setitem__(0, "class.label_mass"),
     "per-class sum slots differ: .* slot 0: 'class.label_mass' in the file, 'class.target_mass' here"),
    (lambda layout: layout.update(per_group_sketch=["t_digest"]),
     "the file records 'per_group_sketch', which this streamdiv does not have"),
], ids=["sum-slots-reordered", "bin-slot-renamed", "count-slot-added", "class-slot-renamed", "region-unknown"])
def test_a_state_of_another_slot_layout_is_refused_naming_the_difference(edit, message):
    other = rewritten(SMALL, lambda header: edit(header["layout"]))
    with pytest.raises(StateLayoutError, match="this state's slot layout is not this streamdiv's: " + message):
        streamdiv.Accumulator.from_bytes(other)
    assert isinstance(StateLayoutError("x"), streamdiv.IncompatibleStateError)


def test_legacy_versions_are_refused_if_their_layout_has_a_slot_this_streamdiv_lacks(monkeypatch):
    assert LEGACY_SLOTS == {name: tuple(slots) for name, slots in header_of(SMALL)["layout"].items()
                            if name in LEGACY_SLOTS}  # the first version 3 states had the legacy layout
    monkeypatch.setitem(LEGACY_SLOTS, "sum_slots", LEGACY_SLOTS["sum_slots"] + ("mystery",))
    for version in (1, 2):
        with pytest.raises(StateLayoutError, match=f"format version {version} has the slot layout of the "
                           f"streamdiv that wrote it, which is not this streamdiv's: sum slots differ: the file "
                           f"has 13 .* slot 12: 'mystery' in the file, nothing here"):
            streamdiv.Accumulator.from_bytes(_fixture(f"v{version}-binary"))


@pytest.mark.parametrize("name", NAMES)
def test_a_state_of_an_earlier_layout_names_the_slots_it_lacks_and_their_metrics_are_none(name):
    """The fixtures predate the class slots and the class-wise bins: those slots are absent, never zeros
    taken for data."""
    accumulator = streamdiv.Accumulator.from_bytes(_fixture(name))
    config = accumulator._state.config
    assert {"class.prediction_mass", "class.target_squares", "double_softmax"} <= set(config.absent_slots)
    report = accumulator.report()
    assert report.metrics["prior_kl"] is None and report.metrics["calibration_ratio"] is None
    assert report.metrics["double_softmax_rows"] is None and report.warnings == []
    assert report.metrics["rows"] > 0 and report.classes == []
    assert streamdiv.Accumulator.from_bytes(accumulator.to_bytes())._state.config.absent_slots == config.absent_slots


def _without_class_slot(data: bytes, slot: str) -> bytes:
    """A state's bytes with one per-class sum slot left out of its layout and arrays, as a streamdiv before
    that slot would have written it."""
    header = header_of(data)
    names = header["layout"]["per_class_sum_slots"]
    dropped = names.index(slot)
    classes = header["layout"]["classes"]
    start = len(header["layout"]["sum_slots"]) + header["layout"]["bins"] * len(header["layout"]["per_bin_sum_slots"])
    keep = [i for i in range(header["sums_shape"][1]) if not start + dropped * classes <= i < start + (dropped + 1) * classes]
    counts_size = int(np.prod(header["counts_shape"])) * 8
    raw = arrays_of(data)
    blocks = []
    for part in range(2):  # totals, then the open block
        offset = part * (counts_size + 2 * counts_size // header["counts_shape"][1] * header["sums_shape"][1])
        counts = raw[offset: offset + counts_size]
        sums = np.frombuffer(raw, dtype="<f8", count=int(np.prod(header["sums_shape"])), offset=offset + counts_size)
        blocks.append(counts + sums.reshape(header["sums_shape"])[:, keep].tobytes())
    def edit(header):
        header["layout"]["per_class_sum_slots"].remove(slot)
        header["sums_shape"][1] = len(keep)
    return rewritten(data, edit, arrays=b"".join(blocks))


def test_a_converted_state_keeps_every_slot_it_had_to_the_bit():
    """Drop one slot from a state of this streamdiv (as an earlier one would have written it): every other
    slot keeps its value, the dropped one is absent, and only the metrics reading it go None."""
    rng = np.random.default_rng(3)
    probabilities = rng.dirichlet(np.ones(4), size=500)
    labels = rng.integers(0, 4, size=500)
    full = streamdiv.Accumulator(classwise=False).update(probs=probabilities, labels=labels)
    converted = streamdiv.Accumulator.from_bytes(_without_class_slot(full.to_bytes(), "class.prediction_mass"))
    assert converted._state.config.absent_slots == ("class.prediction_mass",)
    before, after = full.report().metrics, converted.report().metrics
    for metric in streamdiv.metrics.METRICS:
        if "class.prediction_mass" in metric.reads:
            assert after[metric.name] is None, metric.name
        else:
            assert after[metric.name] == before[metric.name] or before[metric.name] is None, metric.name
    merged = converted + full
    assert merged._state.config.absent_slots == ("class.prediction_mass",)
    assert merged.report().metrics["prior_kl"] is None and merged.report().metrics["rows"] == 1000


@pytest.mark.parametrize("classwise", [False, True])
def test_a_state_from_before_the_predicted_class_slot_loads_without_that_distribution(classwise):
    """A state written before class.predicted_class (its class-wise bins then one slot earlier): every
    metric and the other distributions as they were, the predicted-class distribution None, never zeros;
    merged with a current state it stays absent."""
    rng = np.random.default_rng(4)
    probabilities = rng.dirichlet(np.ones(3), size=400)
    labels = rng.integers(0, 3, size=400)
    full = streamdiv.Accumulator(classwise=classwise).update(probs=probabilities, labels=labels, groups=labels % 2)
    older = streamdiv.Accumulator.from_bytes(_without_class_slot(full.to_bytes(), "class.predicted_class"))
    assert older._state.config.absent_slots == ("class.predicted_class",)
    before, after = full.report(), older.report()
    assert after.metrics == before.metrics and after.classes == before.classes
    assert after.distributions == before.distributions | {"predicted_class": None}
    assert before.distributions["predicted_class"] is not None
    assert all(group["distributions"]["predicted_class"] is None for group in after.groups)
    assert (older + full).report().distributions["predicted_class"] is None
    for name in NAMES:  # the fixtures of every version predate it too
        assert streamdiv.Accumulator.from_bytes(_fixture(name)).report().distributions["predicted_class"] is None


def test_a_legacy_state_whose_arrays_are_not_its_layouts_is_refused_not_zero_filled():
    data = _fixture("v2-binary")
    header = legacy_header_of(data)
    arrays = legacy_arrays_of(data)
    header["sums_shape"][1] -= 1  # one sum slot fewer in the header than its configuration has
    with pytest.raises(CorruptStateError, match=r"sums_shape is \[3, 38, 2\] where 3 groups of its configuration "
                       r"make \[3, 39, 2\]"):
        streamdiv.Accumulator.from_bytes(legacy(header, arrays, version=2))
    header = legacy_header_of(data)
    header["config"]["bins"] = 4  # another layout's arrays: the sizes disagree
    with pytest.raises(CorruptStateError, match="counts_shape is"):
        streamdiv.Accumulator.from_bytes(legacy(header, arrays, version=2))
    with pytest.raises(CorruptStateError, match=f"arrays .* but {len(arrays) - 8:,} bytes follow it"):
        streamdiv.Accumulator.from_bytes(legacy(legacy_header_of(data), arrays[:-8], version=2))


def test_the_first_version_2_states_rows_read_must_agree_with_their_counts():
    data = _fixture("v2-binary-first")
    header = legacy_header_of(data)
    assert header["rows_read"] == 300
    header["rows_read"] = 299
    with pytest.raises(CorruptStateError, match="its header's rows_read is 299 where its counts make 300"):
        streamdiv.Accumulator.from_bytes(legacy(header, legacy_arrays_of(data), version=2))


@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw.replace(b'"bins": 5', b'"bins": 5.'), "its header is not UTF-8 JSON"),
    (lambda raw: raw.replace(b'"eu"', b'"\xffu"'), "its header is not UTF-8 JSON .*utf-8"),
    (lambda raw: raw.replace(b'"bins": 5', b'"bins": "5"'), "config.bins is '5', not int"),
    (lambda raw: raw.replace(b'"binary": true', b'"binary": 1   '), "config.binary is 1, not bool"),
    (lambda raw: raw.replace(b'"group_keys"', b'"group_kays"'), "its header has no group_keys"),
    (lambda raw: raw.replace(b'["us"]', b'["eu"]'), "lists a group key twice"),
], ids=["json", "utf-8", "bins-type", "binary-type", "no-keys", "duplicate-key"])
def test_a_legacy_header_that_cannot_be_read_is_corrupt(damage, message):
    data = _fixture("v1-binary")
    header_length = state_format.LEGACY_PREAMBLE.unpack_from(data)[2]
    start = state_format.LEGACY_PREAMBLE.size
    raw = damage(data[start: start + header_length])
    damaged = (state_format.LEGACY_PREAMBLE.pack(MAGIC, 1, len(raw)) + raw + data[start + header_length:])
    with pytest.raises(CorruptStateError, match=message):
        streamdiv.Accumulator.from_bytes(damaged)


def test_a_newer_version_is_refused_only_when_intact():
    newer = rewritten(SMALL, version=FORMAT_VERSION + 1)
    with pytest.raises(StateVersionError, match=f"this state has format version {FORMAT_VERSION + 1}; this "
                       f"streamdiv reads versions 1 to {FORMAT_VERSION}: upgrade streamdiv"):
        streamdiv.Accumulator.from_bytes(newer)
    changed = bytearray(newer)
    changed[-1] ^= 1
    with pytest.raises(CorruptStateError, match="CRC-32"):
        streamdiv.Accumulator.from_bytes(bytes(changed))


def test_an_intact_state_whose_sizes_disagree_is_refused():
    with pytest.raises(CorruptStateError, match=r"bytes of arrays \(3 groups of 12 counts and 39 sums, twice"):
        streamdiv.Accumulator.from_bytes(rewritten(SMALL, arrays=arrays_of(SMALL)[:-8]))
    with pytest.raises(CorruptStateError, match="its layout records classes = 2 where its configuration makes 0"):
        streamdiv.Accumulator.from_bytes(rewritten(SMALL, lambda header: header["config"].update(num_classes=None)))
    with pytest.raises(CorruptStateError, match="holds 3 groups but no number of classes"):
        streamdiv.Accumulator.from_bytes(rewritten(SMALL, lambda header: (header["config"].update(num_classes=None),
                                                                         header["layout"].update(classes=0))))


def _damaged_states(directory: Path) -> dict[str, Path]:
    flipped = bytearray(SMALL)
    flipped[len(flipped) // 2] ^= 0x10
    other = rewritten(SMALL, lambda header: _swap(header["layout"]["sum_slots"], "correct", "brier"))
    states = {"corrupt": bytes(flipped), "truncated": SMALL[:-100], "layout": other,
              "newer": rewritten(SMALL, version=FORMAT_VERSION + 1)}
    for name, data in states.items():
        (directory / f"{name}.state").write_bytes(data)
    return {name: directory / f"{name}.state" for name in states}


@pytest.mark.parametrize("name, message", [
    ("corrupt", "corrupted streamdiv state: its CRC-32 is 0x"),
    ("truncated", "truncated or corrupted streamdiv state: the file holds 5,075 bytes where its preamble says 5,175"),
    ("layout", "this state's slot layout is not this streamdiv's: sum slots differ"),
    ("newer", f"this state has format version {FORMAT_VERSION + 1}"),
])
def test_merge_refuses_a_damaged_state_with_exit_3_naming_the_file(tmp_path, name, message):
    paths = _damaged_states(tmp_path)
    good = tmp_path / "good.state"
    good.write_bytes(SMALL)
    result = CliRunner().invoke(main, ["merge", str(good), str(paths[name]), "--format", "json"])
    assert result.exit_code == 3, (result.output, result.exception)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"streamdiv: error: {paths[name]}: {message}"), lines


def test_merge_of_fixtures_of_every_version_equals_each_report_added():
    """States of versions 1, 2 and 3 merge with each other: three copies of one stream's rows."""
    paths = [str(FIXTURES / f"v{version}-multiclass.state") for version in range(1, FORMAT_VERSION + 1)]
    result = CliRunner().invoke(main, ["merge", *paths, "--format", "json"])
    assert result.exit_code == 0, (result.output, result.exception)
    once = json.loads((FIXTURES / "v1-multiclass.report.json").read_text())
    merged = json.loads(result.stdout)
    assert merged["metrics"]["rows"] == 3 * once["metrics"]["rows"]
    assert merged["metrics"]["cross_entropy"] == pytest.approx(once["metrics"]["cross_entropy"], rel=1e-14)
