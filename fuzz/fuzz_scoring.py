"""What the fuzz target (fuzz/fuzz_inputs.py) does with one input, without atheris: read the bytes as the
first byte says and score them; a :class:`streamdiv.StreamdivError` is an answer, anything else escapes.

The first byte of an input chooses what the rest is read as (``KINDS``, by the byte modulo 5), how invalid
rows are treated (``on_invalid``, by the byte's next digit in base 2) and which columns are scored
(``COLUMN_CHOICES``, by the rest).  tests/test_fuzz_regressions.py replays the inputs it found through
:func:`score`.
"""

from __future__ import annotations

import functools
import os
import tempfile
import warnings

import streamdiv

KINDS = ("parquet", "arrow", "arrows", "csv", "state")  # also the file suffixes of the first four

# Column choices of the corpus files (fuzz/make_corpus.py writes every column each choice names; a CSV
# file holds the per-class columns only, as CSV has no lists).
COLUMN_CHOICES = (
    {"probs": "probs", "labels": "label"},
    {"probs": "probs", "targets": "target", "weights": "w"},
    {"logits": "logits", "labels": "label", "weights": "w", "by": "g"},
    {"probs": "p_*", "labels": "label", "by": "g"},
)
CSV_COLUMN_CHOICES = (
    {"probs": "p_*", "labels": "label"},
    {"probs": "p_*", "labels": "label", "weights": "w", "by": "g"},
)



@functools.cache
def workspace() -> str:
    """The folder where the fuzzer's inputs are written as files (one for the whole run)."""
    return tempfile.mkdtemp(prefix="streamdiv-fuzz-")


def choices(selector: int) -> tuple[str, str, dict[str, str]]:
    """What the first byte ``selector`` chooses: the kind of input, on_invalid and the columns."""
    kind = KINDS[selector % len(KINDS)]
    on_invalid = ("error", "skip")[(selector // len(KINDS)) % 2]
    columns = CSV_COLUMN_CHOICES if kind == "csv" else COLUMN_CHOICES
    return kind, on_invalid, columns[(selector // (2 * len(KINDS))) % len(columns)]


def score(data: bytes, directory: str | None = None) -> None:
    """Read ``data`` as its first byte says (a file written into ``directory``, by default
    :func:`workspace`); StreamdivError is an answer, anything else propagates."""
    if not data:
        return
    kind, on_invalid, columns = choices(data[0])
    payload = data[1:]
    try:
        if kind == "state":
            accumulator = streamdiv.Accumulator.from_bytes(payload, on_invalid=on_invalid)
            accumulator.report().to_dict()
            streamdiv.Accumulator.from_bytes(accumulator.to_bytes())
            return
        path = os.path.join(directory or workspace(), "input." + kind)
        with open(path, "wb") as handle:
            handle.write(payload)
        streamdiv.evaluate(path, on_invalid=on_invalid, **columns).to_dict()
    except streamdiv.StreamdivError:
        pass


def score_quietly(data: bytes) -> None:
    """:func:`score` with streamdiv's warnings (unnormalized rows, double softmax) silenced: they are answers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", streamdiv.StreamdivWarning)
        score(data)
