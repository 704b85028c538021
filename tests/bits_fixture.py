"""The bits fixture's files: ``fixtures/bits.json``, and for a CPU whose code differs in the last bits, the
entries it records otherwise in ``fixtures/bits-<cpu>.json``.

Why a CPU can differ: the per-row sums over a row's classes for rows of more than SCALAR_ROW_CLASSES classes
(kernels.probabilities, logits, soft) are compiled with ``fastmath={"reassoc"}`` so that LLVM vectorises
them, and the order LLVM adds the lanes in follows its vector width and cost model for the host CPU
(``llvmlite.binding.get_host_cpu_name()``; znver3, with AVX2, and rocketlake, with AVX-512, have variant
files).  On one CPU the bits are the same for every batch cut and thread count (the twins check that on every
machine); across CPUs such sums may differ in their last bit.  A variant file holds only whole entries of configurations that differ, recorded with::

    PYTHONPATH=. python tests/bits_configurations.py --write-variant

after checking that the differences are such last bits of wide rows' sums and nothing else.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from llvmlite import binding

FIXTURE = Path(__file__).parent / "fixtures" / "bits.json"
HOST_CPU = binding.get_host_cpu_name()
VARIANT = FIXTURE.with_name(f"bits-{HOST_CPU}.json")


def read_fixture(path: Path = FIXTURE, variant: Path | None = VARIANT) -> dict[str, dict[str, str | None]]:
    """The recorded entries, with those of this CPU's variant file (when there is one) in place of theirs."""
    values = json.loads(path.read_text())
    if variant is not None and variant.exists():
        values.update(json.loads(variant.read_text()))
    return values


def write_fixture(values: dict[str, dict[str, str | None]], path: Path = FIXTURE) -> None:
    """One line per configuration (a change shows as the lines of the configurations it touched), written
    atomically."""
    lines = [f"{json.dumps(name)}: {json.dumps(named, separators=(',', ':'))}" for name, named in values.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    os.replace(temporary, path)


def differences(old: dict[str, str | None], new: dict[str, str | None], limit: int = 5) -> list[str]:
    """The first ``limit`` names of ``old`` whose value is missing or different in ``new``, with both values."""
    found = [f"{name}: recorded {value!r}, now {new.get(name, '<missing>')!r}"
             for name, value in old.items() if name not in new or new[name] != value]
    return found[:limit] + ([f"... and {len(found) - limit} more"] if len(found) > limit else [])
