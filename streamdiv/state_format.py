"""The bytes of a saved state: format version 3, which this streamdiv writes, and versions 1 and 2, which it reads.

Version 3, little-endian::

    offset  bytes  field
    0       16     MAGIC, b"STREAMDIV-STATE\\n"
    16      4      uint32 format version, 3
    20      4      uint32 CRC-32 (zlib.crc32) of every byte of the file but these four
    24      8      uint64 length of the whole file, in bytes
    32      8      uint64 header length H
    40      H      header, UTF-8 JSON: "config", "layout", "group_keys", "counts_shape" [n, C],
                   "sums_shape" [n, S, 2], with n = len(group_keys)
    40 + H         counts int64 [n, C], sums float64 [n, S, 2] (sum, compensation), open counts int64 [n, C],
                   open sums float64 [n, S, 2], each in C order; the file ends there

The first 32 bytes keep this form in every later version, so a reader checks the length and the checksum
before it trusts anything else, the version field included: bytes that changed are refused as corrupt
(:class:`CorruptStateError`), and a newer version only when its bytes are intact (:class:`StateVersionError`).
``"layout"`` is :func:`streamdiv.state.layout_description` of the configuration.  A state written by an
earlier streamdiv, whose layout lacks slots this one has, is converted by the slots' names: each slot it has
keeps its values, each it lacks is zero and named in the configuration's ``absent_slots``, so the metrics
reading it are None (never a number computed from a zero).  A state with a slot this streamdiv does not have,
or whose slots of one kind come in another order, is refused (:class:`StateLayoutError`, naming the first
difference).
``"config"`` records ``"kind"`` (classification or gaussian) and ``"dimensions"`` (the Gaussian kind's) since the
Gaussian kind came; a config without them, as every earlier writer's, is a classification state.  A windowed
state's ``"window"`` is its width ("1d"), its first group name ``"window"``; a config without it has no windows.
``"label_free"`` says the predictions were scored alone; a config without it is labelled.

Versions 1 and 2 were ``MAGIC, uint32 version, uint64 H, header, arrays`` (version 1 without the open block's
two arrays, and without ``"metrics"`` in its config: every metric was computed) with neither checksum nor
layout.  Their layout is :data:`LEGACY_SLOTS`, checked against this streamdiv's as a recorded one is; their
header and sizes are checked strictly, but a changed value inside them cannot be detected.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import replace
from typing import Any

import numpy as np

from .errors import CorruptStateError, StateLayoutError, StateVersionError, StreamdivError
from .kernels.layout import CLASSIFICATION, GAUSSIAN, KINDS
from .metrics import METRIC_SETS
from .kernels import layout
from .state import Config, State, layout_description
from .windows import WINDOW_KEY, Window

MAGIC = b"STREAMDIV-STATE\n"
FORMAT_VERSION = 3
PREAMBLE = struct.Struct("<16sIIQ")  # magic, version, CRC-32, file length: the same in every version from 3 on
CHECKSUM_FIELD = slice(20, 24)
HEADER_LENGTH = struct.Struct("<Q")
LEGACY_PREAMBLE = struct.Struct("<16sIQ")  # versions 1 and 2: magic, version, header length

# The slot layout of versions 1 and 2, which did not record theirs (every streamdiv that wrote them had this).
LEGACY_SLOTS: dict[str, tuple[str, ...]] = {
    "count_slots": ("rows", "skipped", "ignored", "infinite", "infinite_reverse", "unnormalized", "clipped"),
    "per_bin_count_slots": ("bin.count",),
    "sum_slots": ("weight", "cross_entropy", "cross_entropy_squares", "cross_entropy_weight", "entropy", "kl",
                  "prediction_entropy", "reverse_kl", "reverse_kl_weight", "js", "correct", "brier"),
    "per_bin_sum_slots": ("bin.weight", "bin.confidence", "bin.observed", "bin.confidence_squares",
                          "bin.confidence_observed"),
    "per_class_sum_slots": ("class.target_mass",),
}

# The JSON types of each config field (exact types: a bool is not a whole number here).
CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "num_classes": (int, type(None)), "binary": (bool,), "soft_targets": (bool,), "class_names": (list, type(None)),
    "bins": (int,), "eps": (float, type(None)), "renormalize": (bool,), "group_names": (list,), "metrics": (str,),
}
# Fields that a streamdiv added to the config after version 3 began, with the value that a state written
# before them means.
LATER_CONFIG_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "binning": ((str,), "uniform"),
    "classwise": ((bool, type(None)), False),
    "absent_slots": ((list,), []),
    "kind": ((str,), CLASSIFICATION),
    "dimensions": ((int, type(None)), None),
    "window": ((str, type(None)), None),
    "label_free": ((bool,), False),
}


def encode(state: State) -> bytes:
    """The state in format version 3 (see the module's docstring)."""
    config, n = state.config, state.n_groups
    header = {
        "config": {
            "num_classes": config.num_classes,
            "binary": config.binary,
            "soft_targets": config.soft_targets,
            "class_names": list(config.class_names) if config.class_names else None,
            "bins": config.bins,
            "binning": config.binning,
            "eps": config.eps,
            "renormalize": config.renormalize,
            "group_names": list(config.group_names),
            "metrics": config.metrics,
            "classwise": config.classwise,
            "absent_slots": list(config.absent_slots),
            "kind": config.kind,
            "dimensions": config.dimensions,
            "window": config.window,
            "label_free": config.label_free,
        },
        "layout": layout_description(config),
        "group_keys": [list(key) for key in state.group_keys],
        "counts_shape": [n, state.n_count_slots],
        "sums_shape": [n, state.n_sum_slots, 2],
    }
    header_bytes = json.dumps(header, allow_nan=True).encode()
    arrays = b"".join(np.ascontiguousarray(array[:n], dtype=dtype).tobytes() for array, dtype in (
        (state.counts, "<i8"), (state.sums, "<f8"), (state.open_counts, "<i8"), (state.open_sums, "<f8")))
    length = PREAMBLE.size + HEADER_LENGTH.size + len(header_bytes) + len(arrays)
    start = MAGIC + struct.pack("<I", FORMAT_VERSION)
    rest = struct.pack("<Q", length) + HEADER_LENGTH.pack(len(header_bytes)) + header_bytes + arrays
    return start + struct.pack("<I", zlib.crc32(rest, zlib.crc32(start))) + rest


def decode(data: bytes) -> State:
    """A state from its bytes in any format version this streamdiv reads; refused, never guessed at, when
    they are not an intact state of this streamdiv's slot layout."""
    data = bytes(data)
    if not data:
        raise _truncated("the file is empty")
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):
            raise _truncated(f"{len(data)} bytes end inside its {len(MAGIC)}-byte marker")
        raise CorruptStateError("not a streamdiv state: it does not start with the streamdiv marker "
                                "(states are written by --save-state or Accumulator.to_bytes())")
    if len(data) < len(MAGIC) + 4:
        raise _truncated(f"{len(data)} bytes end before its format version")
    (version,) = struct.unpack_from("<I", data, len(MAGIC))
    if version in (1, 2):
        return _decode_legacy(data, version)
    if version == 0:
        raise _corrupt("its format version is 0, which does not exist")
    _check_intact(data)
    if version > FORMAT_VERSION:
        raise StateVersionError(f"this state has format version {version}; this streamdiv reads versions 1 to "
                                f"{FORMAT_VERSION}: upgrade streamdiv to read it")
    (header_length,) = HEADER_LENGTH.unpack_from(data, PREAMBLE.size)
    offset = PREAMBLE.size + HEADER_LENGTH.size
    if header_length > len(data) - offset:
        raise _corrupt(f"its header of {header_length:,} bytes would end past the file's {len(data):,}")
    header = _read_header(data[offset: offset + header_length])
    config = _config(_field(header, "config", (dict,)), version)
    recorded = _field(header, "layout", (dict,))
    config = _check_layout(recorded, config,
                           "this state's slot layout is not this streamdiv's: {}; it was written by another "
                           "version of streamdiv: read it with that one")
    return _restored(data, offset + header_length, header, config, recorded, with_open_block=True)


def _check_intact(data: bytes) -> None:
    """Refuse bytes whose length or CRC-32 is not the one their preamble records (every version from 3 on)."""
    if len(data) < PREAMBLE.size:
        raise _truncated(f"{len(data)} bytes end inside its {PREAMBLE.size}-byte preamble")
    _, _, recorded, length = PREAMBLE.unpack_from(data)
    if length != len(data):
        raise CorruptStateError(f"truncated or corrupted streamdiv state: the file holds {len(data):,} bytes where "
                                f"its preamble says {length:,}")
    view = memoryview(data)
    computed = zlib.crc32(view[CHECKSUM_FIELD.stop:], zlib.crc32(view[:CHECKSUM_FIELD.start]))
    if computed != recorded:
        raise _corrupt(f"its CRC-32 is 0x{computed:08x} where 0x{recorded:08x} was recorded: the bytes changed "
                       f"after they were written; use an intact copy")


def _decode_legacy(data: bytes, version: int) -> State:
    """Versions 1 and 2: no checksum and no recorded layout (theirs is LEGACY_SLOTS)."""
    if len(data) < LEGACY_PREAMBLE.size:
        raise _truncated(f"{len(data)} bytes end inside its {LEGACY_PREAMBLE.size}-byte preamble")
    _, _, header_length = LEGACY_PREAMBLE.unpack_from(data)
    offset = LEGACY_PREAMBLE.size
    if header_length > len(data) - offset:
        raise CorruptStateError(f"truncated or corrupted streamdiv state (format version {version}): its header "
                                f"of {header_length:,} bytes would end past the file's {len(data):,}")
    header = _read_header(data[offset: offset + header_length])
    config = _config(_field(header, "config", (dict,)), version)
    legacy = {name: list(slots) for name, slots in LEGACY_SLOTS.items()}
    recorded = legacy | {"bins": config.bins, "classes": config.num_classes or 0}
    config = _check_layout(recorded, config,
                           f"format version {version} has the slot layout of the streamdiv that wrote it, which is "
                           f"not this streamdiv's: {{}}; read it with a streamdiv that writes version {version}")
    state = _restored(data, offset + header_length, header, config, recorded, with_open_block=version >= 2)
    if "rows_read" in header and header["rows_read"] != state.rows_read:  # the first writers of version 2
        raise _corrupt(f"its header's rows_read is {_short(header['rows_read'])} where its counts make "
                       f"{state.rows_read:,}")
    return state


def _restored(data: bytes, offset: int, header: dict[str, Any], config: Config, recorded: dict[str, Any], *,
              with_open_block: bool) -> State:
    """The state of a checked header and configuration, its arrays (of the ``recorded`` layout, checked by
    _check_layout) read from ``offset`` to the end of ``data`` and placed by slot name."""
    group_names = config.group_names
    keys = []
    for key in _field(header, "group_keys", (list,)):
        if (type(key) is not list or len(key) != len(group_names)
                or any(type(value) not in (str, int, float, bool, type(None)) for value in key)):
            raise _corrupt(f"its group key {_short(key)} is not a list of {len(group_names)} JSON scalars")
        keys.append(tuple(key))
    if len(set(keys)) != len(keys):
        raise _corrupt("its header lists a group key twice")
    if keys and not config.is_fixed:
        raise _corrupt(f"it holds {len(keys)} groups but no number of classes or of dimensions")
    count_positions, sum_positions = layout.positions(recorded)
    n, count_slots, sum_slots = len(keys), len(count_positions), len(sum_positions)
    for name, wanted in (("counts_shape", [n, count_slots]), ("sums_shape", [n, sum_slots, 2])):
        if _field(header, name, (list,)) != wanted:
            raise _corrupt(f"its header's {name} is {_short(header[name])} where {n} groups of its configuration "
                           f"make {wanted}")
    pairs = 2 if with_open_block else 1
    expected = pairs * n * (count_slots + 2 * sum_slots) * 8
    if len(data) - offset != expected:
        raise CorruptStateError(
            f"truncated or corrupted streamdiv state: its header describes {expected:,} bytes of arrays ({n} groups "
            f"of {count_slots} counts and {sum_slots} sums{', twice: totals and open block' if pairs == 2 else ''}) "
            f"but {len(data) - offset:,} bytes follow it")
    arrays = []
    for dtype, shape in [("<i8", (n, count_slots)), ("<f8", (n, sum_slots, 2))] * pairs:
        count = int(np.prod(shape))
        arrays.append(np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)
                      .astype(np.int64 if dtype == "<i8" else np.float64))
        offset += count * 8
    return State.restored(config, keys, *_placed(arrays, recorded, layout_description(config)))


def _placed(arrays: list[np.ndarray], recorded: dict[str, Any], expected: dict[str, Any]) -> list[np.ndarray]:
    """Arrays of the ``recorded`` layout moved to the positions of the same slots in the ``expected`` one (the
    slots it lacks zero); the arrays themselves when the layouts agree."""
    if recorded == expected:
        return arrays
    mine = layout.positions(recorded)
    theirs = layout.positions(expected)
    placed = []
    for position, array in enumerate(arrays):
        source, target = mine[position % 2], theirs[position % 2]
        index = {slot: at for at, slot in enumerate(target)}
        moved = np.zeros((array.shape[0], len(target), *array.shape[2:]), dtype=array.dtype)
        moved[:, [index[slot] for slot in source]] = array
        placed.append(moved)
    return placed


def _read_header(raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _corrupt(f"its header is not UTF-8 JSON ({error})") from None
    if not isinstance(header, dict):
        raise _corrupt(f"its header is {type(header).__name__} JSON, not an object")
    return header


def _config(raw: dict[str, Any], version: int) -> Config:
    """The configuration of a header, each field checked."""
    if version == 1 or (version == 2 and "metrics" not in raw):
        raw = raw | {"metrics": "all"}  # written before metric sets: every metric was computed
    raw = {name: default for name, (_, default) in LATER_CONFIG_FIELDS.items()} | raw
    fields = {name: _field(raw, name, types, "config.")
              for name, types in CONFIG_TYPES.items() | {name: types for name, (types, _) in
                                                          LATER_CONFIG_FIELDS.items()}.items()}
    num_classes, class_names = fields["num_classes"], fields["class_names"]
    gaussian = fields["kind"] == GAUSSIAN
    problems = [
        (fields["kind"] not in KINDS, "kind"),
        (num_classes is not None and (num_classes < 1 or gaussian), "num_classes"),
        (fields["dimensions"] is not None and (fields["dimensions"] < 1 or not gaussian), "dimensions"),
        (fields["label_free"] and (gaussian or fields["soft_targets"] or fields["metrics"] != "all"), "label_free"),
        (fields["bins"] < 1, "bins"),
        (fields["binning"] not in layout.BINNINGS, "binning"),
        (fields["eps"] is not None and not 0.0 < fields["eps"] < 1.0, "eps"),
        (fields["metrics"] not in METRIC_SETS, "metrics"),
        (class_names is not None and (len(class_names) != num_classes
                                      or any(type(name) is not str for name in class_names)), "class_names"),
        (any(type(name) is not str for name in fields["group_names"]), "group_names"),
        (any(type(name) is not str for name in fields["absent_slots"]), "absent_slots"),
        (fields["window"] is not None and not _is_window(fields["window"], fields["group_names"]), "window"),
    ]
    for wrong, name in problems:
        if wrong:
            raise _corrupt(f"its header's config.{name} is {_short(fields[name])}, which no streamdiv writes")
    return Config(num_classes=num_classes, binary=fields["binary"], soft_targets=fields["soft_targets"],
                  class_names=tuple(class_names) if class_names else None, bins=fields["bins"],
                  binning=fields["binning"], eps=fields["eps"],
                  renormalize=fields["renormalize"], group_names=tuple(fields["group_names"]),
                  metrics=fields["metrics"], classwise=fields["classwise"],
                  absent_slots=tuple(fields["absent_slots"]), kind=fields["kind"], dimensions=fields["dimensions"],
                  window=fields["window"], label_free=fields["label_free"])


def _is_window(text: str, group_names: list[str]) -> bool:
    """Whether a saved window is one streamdiv writes: a width it reads, its key the first group name."""
    try:
        return Window.parse(text).text == text and group_names[:1] == [WINDOW_KEY]
    except StreamdivError:
        return False


def _check_layout(recorded: dict[str, Any], config: Config, message: str) -> Config:
    """The configuration of a state of the ``recorded`` layout: ``config`` itself when the layout is this
    streamdiv's, else with the slots it lacks added to ``absent_slots``.  Refuses a layout with a slot this
    streamdiv does not have or in another order (``message`` says so), and one whose sizes are not those its
    own configuration makes (corrupt: the header disagrees with itself)."""
    expected = layout_description(config)
    for name, wanted in expected.items():
        if not isinstance(wanted, list) and recorded.get(name, 0) != wanted:
            raise _corrupt(f"its layout records {name} = {_short(recorded.get(name))} where its configuration "
                           f"makes {wanted!r}")
    if recorded == expected:
        return config
    difference = describe_layout_difference(recorded, expected)
    if difference:
        raise StateLayoutError(message.format(difference))
    had = {name for positions in layout.positions(recorded) for name, _ in positions}
    lacking = {name for positions in layout.positions(expected) for name, _ in positions} - had
    return replace(config, absent_slots=tuple(sorted(set(config.absent_slots) | lacking)))


def describe_layout_difference(recorded: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """The first difference between a file's slot layout and this streamdiv's that forbids converting it, in
    words: a slot it has that this streamdiv lacks, or slots of one kind in another order (None when each of
    its slots is one of this streamdiv's, in the same order)."""
    for name, wanted in expected.items():
        label = name.replace("_", " ").replace("per ", "per-")
        found = recorded.get(name, [] if isinstance(wanted, list) else 0)
        if found == wanted:
            continue
        if isinstance(found, list) and isinstance(wanted, list) and _in_order(found, wanted):
            continue  # an earlier streamdiv's slots of this kind: converted, the rest absent
        if isinstance(found, list) and isinstance(wanted, list):
            position = next((i for i, (mine, theirs) in enumerate(zip(found, wanted)) if mine != theirs),
                            min(len(found), len(wanted)))
            return (f"{label} differ: the file has {len(found)} ({', '.join(map(str, found))}), this streamdiv has "
                    f"{len(wanted)} ({', '.join(wanted)}); the first difference is slot {position}: "
                    f"{_slot(found, position)} in the file, {_slot(wanted, position)} here")
        return f"{label} differ: the file has {_short(found)}, this streamdiv has {wanted!r}"
    unknown = sorted(set(recorded) - set(expected))
    if unknown:
        return f"the file records {', '.join(map(repr, unknown))}, which this streamdiv does not have"
    return None


def _in_order(found: list[Any], wanted: list[str]) -> bool:
    """Whether ``found`` is ``wanted`` with some slots left out, the rest in the same order."""
    remaining = iter(wanted)
    return all(any(slot == candidate for candidate in remaining) for slot in found)


def _field(mapping: dict[str, Any], name: str, types: tuple[type, ...], where: str = "") -> Any:
    if name not in mapping:
        raise _corrupt(f"its header has no {where}{name}")
    value = mapping[name]
    if type(value) not in types:
        kinds = " or ".join("null" if kind is type(None) else kind.__name__ for kind in types)
        raise _corrupt(f"its header's {where}{name} is {_short(value)}, not {kinds}")
    return value


def _slot(names: list[Any], position: int) -> str:
    return repr(names[position]) if position < len(names) else "nothing"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _corrupt(problem: str) -> CorruptStateError:
    return CorruptStateError(f"corrupted streamdiv state: {problem}")


def _truncated(problem: str) -> CorruptStateError:
    return CorruptStateError(f"truncated streamdiv state: {problem}")
