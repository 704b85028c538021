"""Named scenarios whose exact bits are recorded in ``tests/fixtures/bits.json`` and held by ``test_bits.py``.

Each configuration feeds seeded data through the public API (``Accumulator(...).update(...)``, in one batch or
cut into several) and records, as strings, every count and every (sum, compensation) pair of every group's
state, read from the state with its open block folded in, and every value the report gives: ``float.hex``
for floats, ``str`` for integers, None for metrics that are not computed.  A refactoring that keeps these
strings keeps the results to the bit.

Regenerate the fixture, after a change that is meant to alter the bits, with::

    PYTHONPATH=. python tests/bits_configurations.py --write

(on a CPU whose wide rows' sums differ in their last bits, ``--write-variant`` records its own entries
instead: see ``bits_fixture``).

Without ``--write`` the script lists the configurations whose values differ from the fixture.

The data are made with the PCG64 stream of ``np.random.default_rng(seed)`` and +, -, *, / only, no
``np.exp`` or ``np.log``: numpy picks SIMD versions of those by CPU, whose last bits may differ between
machines, and the fixture should depend on streamdiv's arithmetic, not on the machine's numpy.

Twins: a configuration with ``same_as`` must give exactly the values of the one it names (the same stream on
2 numba threads, or cut into other batches).  That is the contract of ``streamdiv.kernels`` (blocks of
``ROW_BLOCK`` rows aligned on the stream): the generator refuses to write a fixture that breaks it, and the
fixture records each twin's values once, under the name of the configuration it is the twin of.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import numba
import numpy as np

import streamdiv
from streamdiv.kernels import layout as kernels
from streamdiv.state import State, layout_description

from bits_data import Columns, binary, gaussian, multiclass, without_labels
from bits_fixture import FIXTURE, VARIANT, differences, read_fixture, write_fixture

STREAM_ROWS = 40_000  # more than two blocks of kernels.ROW_BLOCK = 16,384 rows
CUT_ROWS = 7_001  # batches that end inside blocks, never on a block boundary



@dataclass(frozen=True)
class Configuration:
    name: str
    columns: Callable[[], Columns]
    options: dict[str, Any] = field(default_factory=dict)  # Accumulator keywords
    batches: tuple[int, ...] = ()  # rows per update() call in turn, the rest in one last call; () = one call
    threads: int = 1  # numba threads during the updates
    same_as: str | None = None  # a twin that must give identical values


# ---- the one map from slot names to positions in the state

def slot_values(state: State) -> dict[str, str]:
    """Every count and every (sum, compensation) pair of every group, by name, as strings.

    Names: ``group[g].counts.<slot>``, ``group[g].counts.bin_rows[b]``, ``group[g].sums.<slot>.<part>``,
    ``group[g].bins[b].<field>.<part>``, ``group[g].class_mass[k].<part>`` and, for the slots added since,
    ``group[g].classes[k].<slot>.<part>``, ``group[g].counts.class_bin_rows[k][b]`` and
    ``group[g].class_bins[k][b].<field>.<part>``, with part ``sum`` or ``compensation``.  The positions come
    from the state's own layout description (``kernels.layout.positions``), so every slot is named.
    """
    count_positions, sum_positions = kernels.positions(layout_description(state.config))
    counts_at = {_slot_name("counts", name, where): slot for slot, (name, where) in enumerate(count_positions)}
    sums_at = {_slot_name("sums", name, where): slot for slot, (name, where) in enumerate(sum_positions)}
    # Every position named once: two slots under one name would go unrecorded.
    assert len(counts_at) == state.n_count_slots and len(sums_at) == state.n_sum_slots

    counts, sums = state.settled()
    values: dict[str, str] = {}
    # the fine histogram of binning="quantile" (kernels.FINE_BINS bins): its empty bins go unrecorded
    fine = state.config.binning == "quantile"
    for g in range(state.n_groups):
        for name, slot in counts_at.items():
            if fine and name.startswith("counts.bin_rows") and counts[g, slot] == 0:
                continue
            values[f"group[{g}].{name}"] = str(int(counts[g, slot]))
        for name, slot in sums_at.items():
            if fine and name.startswith("bins[") and not sums[g, slot].any():
                continue
            values[f"group[{g}].{name}.sum"] = float.hex(float(sums[g, slot, 0]))
            values[f"group[{g}].{name}.compensation"] = float.hex(float(sums[g, slot, 1]))
    return values


def _slot_name(array: str, name: str, where: tuple[int, ...]) -> str:
    """A position's name in the fixture (see slot_values)."""
    kind, _, field_name = name.rpartition(".")
    if kind == "bin":
        return f"counts.bin_rows[{where[0]}]" if array == "counts" else f"bins[{where[0]}].{field_name}"
    if kind == "class":
        return f"class_mass[{where[0]}]" if field_name == "target_mass" else f"classes[{where[0]}].{field_name}"
    if kind == "class_bin":
        cell = f"[{where[0]}][{where[1]}]"
        return f"counts.class_bin_rows{cell}" if array == "counts" else f"class_bins{cell}.{field_name}"
    return f"{array}.{name}"


def reported_values(report: streamdiv.Report) -> dict[str, str | None]:
    """The report's values by name: ``metrics.<m>``, ``calibration[b].<field>``, ``classes[k].<field>``,
    ``classes[k].calibration[b].<field>``, ``group[g].key`` and ``group[g].metrics.<m>``."""
    values: dict[str, str | None] = {f"metrics.{name}": _text(value) for name, value in report.metrics.items()}
    for b, row in enumerate(report.calibration):
        values.update({f"calibration[{b}].{name}": _text(value) for name, value in row.items()})
    for k, entry in enumerate(report.classes):
        values.update({f"classes[{k}].{name}": _text(value) if name != "class" else value
                       for name, value in entry.items() if name != "calibration"})
        for b, row in enumerate(entry["calibration"]):
            values.update({f"classes[{k}].calibration[{b}].{name}": _text(value) for name, value in row.items()})
    for g, group in enumerate(report.groups):
        values[f"group[{g}].key"] = json.dumps(group["group"], sort_keys=True)
        values.update({f"group[{g}].metrics.{name}": _text(value) for name, value in group["metrics"].items()})
    return values


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return float.hex(float(value))


# ---- running a configuration

def compute(configuration: Configuration) -> dict[str, str | None]:
    """Feed the configuration's data through the public API and return its named values."""
    columns = configuration.columns()
    n_rows = len(next(columns[role] for role in ("probs", "logits", "mean") if role in columns))
    cuts = np.cumsum((0,) + configuration.batches).tolist() + [n_rows]
    accumulator = streamdiv.Accumulator(**configuration.options)
    saved_threads = numba.get_num_threads()
    numba.set_num_threads(configuration.threads)
    try:
        for start, stop in zip(cuts[:-1], cuts[1:]):
            accumulator.update(**{role: _rows(value, start, stop) for role, value in columns.items()})
    finally:
        numba.set_num_threads(saved_threads)
    return {**slot_values(accumulator._state), **reported_values(accumulator.report())}


def _rows(value: Any, start: int, stop: int) -> Any:
    if isinstance(value, dict):
        return {name: column[start:stop] for name, column in value.items()}
    return value[start:stop]


# ---- the configurations

def _configurations() -> list[Configuration]:
    small = {"bins": 5}
    loss = {"bins": 5, "metrics": "loss"}
    skip = {"bins": 5, "on_invalid": "skip"}
    eps = {"bins": 5, "eps": 1e-6}
    c = Configuration
    hard = partial(multiclass, 5_000)
    stream = partial(multiclass, STREAM_ROWS)
    cut = (CUT_ROWS,) * (STREAM_ROWS // CUT_ROWS)
    configurations = [
        # hard labels, probabilities
        c("hard_f64_k10", partial(hard, 10, 1), small),
        c("hard_f64_k10_cut_997", partial(hard, 10, 1), small, batches=(997,) * 5, same_as="hard_f64_k10"),
        c("hard_f32_k10", partial(hard, 10, 2, dtype=np.float32), small),
        c("hard_f64_k3", partial(hard, 3, 3), small),
        c("hard_f32_k3", partial(hard, 3, 4, dtype=np.float32), small),
        c("hard_f64_k300", partial(multiclass, 2_000, 300, 5), small),
        c("hard_f64_k300_2_threads", partial(multiclass, 2_000, 300, 5), small, threads=2, same_as="hard_f64_k300"),
        c("hard_f32_k300_loss", partial(multiclass, 2_000, 300, 6, dtype=np.float32), loss),
        c("hard_f64_k10_15_bins_base_2", partial(hard, 10, 7), {"base": 2}),
        c("hard_f64_k10_weighted", partial(hard, 10, 8, weighted=True), small),
        c("hard_f32_k10_weighted", partial(hard, 10, 9, dtype=np.float32, weighted=True), small),
        c("hard_f64_k10_loss", partial(hard, 10, 1), loss),
        # zero probabilities: infinite rows without eps, clipped rows with it
        c("hard_f64_k10_zeros", partial(hard, 10, 10, zero_fraction=0.4), small),
        c("hard_f64_k10_zeros_eps", partial(hard, 10, 10, zero_fraction=0.4), eps),
        c("hard_f32_k10_zeros_eps", partial(hard, 10, 11, dtype=np.float32, zero_fraction=0.4), eps),
        c("hard_f64_k10_zeros_loss", partial(hard, 10, 10, zero_fraction=0.4), loss),
        c("hard_f64_k10_zeros_eps_loss_weighted", partial(hard, 10, 12, zero_fraction=0.4, weighted=True),
          {**loss, "eps": 1e-6}),
        # rows that do not sum to 1
        c("hard_f64_k10_unnormalized", partial(hard, 10, 13, unnormalized=True), small),
        c("hard_f64_k10_renormalize", partial(hard, 10, 13, unnormalized=True), {**small, "renormalize": True}),
        c("hard_f32_k3_renormalize_zeros_eps", partial(hard, 3, 14, dtype=np.float32, unnormalized=True,
                                                        zero_fraction=0.3), {**eps, "renormalize": True}),
        # ignored and invalid rows
        c("hard_f64_k10_ignore_label", partial(hard, 10, 15, ignored=True), {**small, "ignore_label": -1}),
        c("hard_f64_k10_invalid_skip", partial(hard, 10, 16, weighted=True, invalid=True), skip),
        c("hard_f32_k10_invalid_ignored_skip_loss", partial(hard, 10, 17, dtype=np.float32, invalid=True,
                                                            ignored=True),
          {**loss, "on_invalid": "skip", "ignore_label": -1}),
        # logits
        c("logits_f64_k10", partial(hard, 10, 18, logits=True), small),
        c("logits_f32_k10", partial(hard, 10, 19, logits=True, dtype=np.float32), small),
        c("logits_f64_k3_minus_infinity", partial(hard, 3, 20, logits=True, zero_fraction=0.3), small),
        c("logits_f64_k10_loss", partial(hard, 10, 18, logits=True), loss),
        c("logits_f64_k10_weighted_eps", partial(hard, 10, 21, logits=True, weighted=True, zero_fraction=0.3), eps),
        c("logits_f64_k10_invalid_skip", partial(hard, 10, 22, logits=True, weighted=True, invalid=True), skip),
        c("logits_f64_k300_2_threads", partial(multiclass, 1_500, 300, 23, logits=True), small, threads=2),
        # soft targets
        c("soft_f64_k10", partial(hard, 10, 24, soft=True), small),
        c("soft_f64_k3_no_target_zeros", partial(hard, 3, 25, soft=True, target_zeros=False), small),
        c("soft_f64_k10_weighted_zeros_eps", partial(hard, 10, 26, soft=True, weighted=True, zero_fraction=0.3),
          eps),
        c("soft_f64_k10_zeros", partial(hard, 10, 26, soft=True, weighted=True, zero_fraction=0.3), small),
        c("soft_f64_k10_loss", partial(hard, 10, 24, soft=True), loss),
        c("soft_f64_k10_renormalize", partial(hard, 10, 27, soft=True, unnormalized=True),
          {**small, "renormalize": True}),
        c("soft_f64_k10_invalid_skip", partial(hard, 10, 28, soft=True, weighted=True, invalid=True), skip),
        c("soft_logits_f64_k10_no_target_zeros", partial(hard, 10, 29, soft=True, logits=True, target_zeros=False),
          small),
        c("soft_logits_f64_k10_eps", partial(hard, 10, 30, soft=True, logits=True, zero_fraction=0.3), eps),
        c("soft_f64_k300", partial(multiclass, 1_500, 300, 31, soft=True), small),
        c("soft_f64_k300_2_threads", partial(multiclass, 1_500, 300, 31, soft=True), small, threads=2,
          same_as="soft_f64_k300"),
        # binary
        c("binary_probs", partial(binary, 5_000, 32), small),
        c("binary_probs_extremes", partial(binary, 5_000, 33, extremes=True), small),
        c("binary_probs_extremes_eps_weighted", partial(binary, 5_000, 33, extremes=True, weighted=True), eps),
        c("binary_probs_extremes_loss", partial(binary, 5_000, 33, extremes=True), loss),
        c("binary_logits", partial(binary, 5_000, 34, logits=True), small),
        # equal-mass bins: the fine histogram, regrouped
        c("binary_probs_extremes_quantile_weighted", partial(binary, 5_000, 33, extremes=True, weighted=True),
          {**small, "binning": "quantile"}),
        c("hard_f32_k10_quantile", partial(hard, 10, 9, dtype=np.float32), {**small, "binning": "quantile"}),
        c("hard_f32_k10_quantile_cut_2_threads", partial(hard, 10, 9, dtype=np.float32),
          {**small, "binning": "quantile"}, batches=(1_001,), threads=2, same_as="hard_f32_k10_quantile"),
        c("binary_logits_loss_weighted", partial(binary, 5_000, 35, logits=True, weighted=True), loss),
        c("binary_soft", partial(binary, 5_000, 36, soft=True), small),
        c("binary_soft_logits_eps", partial(binary, 5_000, 37, soft=True, logits=True), eps),
        c("binary_soft_extremes", partial(binary, 5_000, 38, soft=True, extremes=True), small),
        c("binary_soft_extremes_weighted_eps", partial(binary, 5_000, 38, soft=True, extremes=True, weighted=True),
          eps),
        c("binary_invalid_ignored_skip", partial(binary, 5_000, 39, weighted=True, invalid=True, ignored=True),
          {**skip, "ignore_label": -1}),
        # groups
        c("grouped_mixed_hard_f64_k10_weighted", partial(hard, 10, 40, weighted=True, groups="mixed"), small),
        c("grouped_mixed_hard_f64_k10_loss", partial(hard, 10, 40, weighted=True, groups="mixed"), loss),
        c("grouped_two_columns_soft_f64_k3", partial(hard, 3, 41, soft=True, groups="two_columns"), small),
        c("grouped_mixed_binary_loss", partial(binary, 5_000, 42, groups="mixed"), loss),
        c("grouped_runs_hard_f32_k10_invalid_skip", partial(multiclass, 2_500, 10, 43, dtype=np.float32, invalid=True,
                                                            groups="runs"), skip),
        c("grouped_runs_logits_f64_k10", partial(multiclass, 2_500, 10, 44, logits=True, groups="runs"), small),
        c("grouped_runs_binary_weighted", partial(binary, 2_500, 45, weighted=True, groups="runs"), small),
        # the predictions alone: neither labels nor targets
        c("label_free_f64_k10", partial(without_labels, partial(hard, 10, 70)), small),
        c("label_free_f32_k10_weighted_zeros", partial(without_labels, partial(hard, 10, 71, dtype=np.float32,
                                                                              weighted=True, zero_fraction=0.3)),
          small),
        c("label_free_f64_k10_invalid_skip", partial(without_labels, partial(hard, 10, 72, weighted=True,
                                                                            invalid=True)), skip),
        c("label_free_logits_f64_k10_zeros", partial(without_labels, partial(hard, 10, 73, logits=True,
                                                                            zero_fraction=0.3)), small),
        c("label_free_logits_f32_k10_invalid_skip", partial(without_labels, partial(hard, 10, 74, logits=True,
                                                                                   dtype=np.float32, invalid=True)),
          skip),
        c("label_free_f64_k10_renormalize", partial(without_labels, partial(hard, 10, 75, unnormalized=True)),
          {**small, "renormalize": True}),
        c("label_free_flat_f32_k10_unnormalized", partial(without_labels, partial(hard, 10, 76, flat=True,
                                                                                 unnormalized=True,
                                                                                 dtype=np.float32)), small),
        c("label_free_f64_k300", partial(without_labels, partial(multiclass, 2_000, 300, 77)), small),
        c("label_free_f64_k300_2_threads", partial(without_labels, partial(multiclass, 2_000, 300, 77)), small,
          threads=2, same_as="label_free_f64_k300"),
        c("label_free_binary_probs_extremes_quantile", partial(without_labels, partial(binary, 5_000, 78,
                                                                                      extremes=True)),
          {**small, "binning": "quantile"}),
        c("label_free_binary_logits_weighted_invalid_skip", partial(without_labels, partial(
            binary, 5_000, 79, logits=True, weighted=True, invalid=True)), skip),
        c("label_free_grouped_runs_f64_k10_weighted", partial(without_labels, partial(
            multiclass, 2_500, 10, 80, weighted=True, groups="runs")), small),
        c("label_free_grouped_mixed_binary", partial(without_labels, partial(binary, 5_000, 81, groups="mixed")),
          small),
    ]
    # Streams of 40,000 rows: in one batch (more than two full blocks, which run on lanes with 2 threads), on
    # 2 threads, and cut into 7,001-row batches whose ends fall inside blocks.
    streams = [
        ("stream_hard_f64_k10", partial(stream, 10, 50), small),
        ("stream_hard_f64_k10_loss", partial(stream, 10, 50), loss),
        ("stream_hard_f32_k3_weighted_zeros_eps", partial(stream, 3, 51, dtype=np.float32, weighted=True,
                                                           zero_fraction=0.3), eps),
        ("stream_logits_f64_k10", partial(stream, 10, 52, logits=True), small),
        ("stream_soft_f64_k10", partial(stream, 10, 53, soft=True), small),
        ("stream_binary_probs_loss", partial(binary, STREAM_ROWS, 54), loss),
        # the full pass, whose class-wise bins follow the top-label bins (classwise.binary_bins_follow)
        ("stream_binary_probs_extremes", partial(binary, STREAM_ROWS, 85, extremes=True), small),
        ("stream_binary_probs_invalid_ignored_skip", partial(binary, STREAM_ROWS, 86, invalid=True, ignored=True),
         skip),
        ("stream_binary_soft_extremes_weighted", partial(binary, STREAM_ROWS, 55, soft=True, extremes=True,
                                                         weighted=True), small),
        ("stream_grouped_mixed_hard_f64_k10_invalid_skip", partial(stream, 10, 56, invalid=True, groups="mixed"),
         skip),
        ("stream_grouped_runs_hard_f64_k10_loss_weighted", partial(stream, 10, 57, weighted=True, groups="long_runs"),
         loss),
        # rows that look softmaxed twice (double_softmax): probabilities, the loss pass, logits (a third of the
        # rows off a sum of 1), soft targets
        ("stream_flat_hard_f32_k10", partial(stream, 10, 60, flat=True, dtype=np.float32), small),
        ("stream_flat_hard_f64_k3_loss_groups", partial(stream, 3, 61, flat=True, groups="mixed"), loss),
        ("stream_flat_logits_f32_k10_unnormalized", partial(stream, 10, 62, flat=True, logits=True,
                                                            unnormalized=True, dtype=np.float32), small),
        ("stream_flat_soft_f64_k30", partial(stream, 30, 63, flat=True, soft=True), small),
        ("stream_label_free_f64_k10", partial(without_labels, partial(stream, 10, 82)), small),
        ("stream_label_free_logits_f32_k10_weighted_mixed_groups", partial(without_labels, partial(
            stream, 10, 83, logits=True, dtype=np.float32, weighted=True, groups="mixed")), small),
        ("stream_label_free_binary_logits", partial(without_labels, partial(binary, STREAM_ROWS, 84, logits=True)),
         small),
        ("stream_gaussian_f32_d8_prior_weighted_runs_invalid_skip",
         partial(gaussian, STREAM_ROWS, 8, 59, dtype=np.float32, prior=True, weighted=True, groups="long_runs",
                 invalid=True), skip),
    ]
    for name, columns, options in streams:
        configurations += [
            c(name, columns, options),
            c(f"{name}_2_threads", columns, options, threads=2, same_as=name),
            c(f"{name}_cut_7001", columns, options, batches=cut, same_as=name),
        ]
    # A batch that starts inside a block and then holds two full blocks (on lanes with 2 threads).
    long_stream = partial(multiclass, 60_000, 10, 58)
    configurations += [
        c("stream_60000_hard_f64_k10", long_stream, small),
        c("stream_60000_hard_f64_k10_cut_3000_2_threads", long_stream, small, batches=(3_000,), threads=2,
          same_as="stream_60000_hard_f64_k10"),
    ]
    return configurations


CONFIGURATIONS: list[Configuration] = _configurations()
BY_NAME: dict[str, Configuration] = {configuration.name: configuration for configuration in CONFIGURATIONS}
assert len(BY_NAME) == len(CONFIGURATIONS), "configuration names must be unique"


# ---- the fixture file

def recorded_name(configuration: Configuration) -> str:
    """The fixture entry that holds this configuration's values (its twin's, for a twin)."""
    return configuration.same_as or configuration.name


def compute_all() -> dict[str, dict[str, str | None]]:
    """The fixture's entries: the values of every configuration that is not a twin, after checking that each
    twin gives exactly the values of the configuration it names."""
    values = {configuration.name: compute(configuration) for configuration in CONFIGURATIONS}
    for configuration in CONFIGURATIONS:
        if configuration.same_as is not None:
            original, twin = values[configuration.same_as], values.pop(configuration.name)
            found = differences(original, twin) + differences(twin, original)
            if found:
                raise SystemExit(f"{configuration.name} breaks the contract: its values differ from those of "
                                 f"{configuration.same_as}:\n  " + "\n  ".join(found))
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write tests/fixtures/bits.json")
    parser.add_argument("--write-variant", action="store_true", help=f"write the entries that differ from "
                        f"bits.json on this CPU to {VARIANT.name} (see bits_fixture)")
    arguments = parser.parse_args(argv)
    if numba.config.NUMBA_NUM_THREADS < 2:
        raise SystemExit("the 2-thread configurations need NUMBA_NUM_THREADS >= 2")
    values = compute_all()
    if arguments.write:
        write_fixture(values)
        print(f"wrote the values of {len(CONFIGURATIONS)} configurations ({len(CONFIGURATIONS) - len(values)} twins "
              f"among them) to {FIXTURE}: {FIXTURE.stat().st_size} bytes")
        return 0
    if arguments.write_variant:
        base = read_fixture(variant=None)
        own = {name: named for name, named in values.items() if name not in base or differences(base[name], named)}
        write_fixture(own, VARIANT)
        print(f"wrote the {len(own)} entries of {', '.join(own) or '-'} to {VARIANT}")
        return 0
    recorded = read_fixture() if FIXTURE.exists() else {}
    changed = [name for name in values if name not in recorded or differences(recorded[name], values[name])]
    print(f"{len(changed)} of {len(values)} configurations differ from {FIXTURE}: {', '.join(changed) or '-'}")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
