"""Large-vocabulary logits (K = 32,000, a language model's next-token scores) streamed from Arrow files.

What it shows: ``streamdiv.evaluate(path, logits=..., labels=...)`` reads an Arrow file batch by batch and
log-softmaxes each row of 32,000 float32 logits inside the kernel, in float64, so scoring needs memory for
a few batches, not for the file.  It writes the same rows twice, as an Arrow IPC stream (``.arrows``) and
as an Arrow IPC file (``.arrow``), at two sizes, and scores each in a fresh process, printing rows,
cross-entropy, perplexity (checked against numpy, batch by batch) and that process's peak RSS growth
(``resource.getrusage``) beside the file's size:

* the stream is read with ordinary reads: its peak growth is the same for a file four times as large;
* the IPC file is memory-mapped (``pyarrow.memory_map``), and the mapped pages count in RSS as they are
  read, so its peak RSS grows with the file although the process allocates no more: those pages are the
  kernel's page cache, shared and given back when the file is closed, but a container's memory limit or a
  monitor reading RSS sees them.  For bounded RSS, write large files as IPC streams (or Parquet).

The logits are N(0, 1) with the label's logit raised by 4, so the model is far from uniform
(perplexity about 1,000 against 32,000).

Run it:
    python examples/large_vocabulary.py            # 2,048 and 8,192 rows: files of 250 MiB and 1 GiB
    python examples/large_vocabulary.py --quick    # 64 and 256 rows (or STREAMDIV_EXAMPLE_QUICK=1)
    python examples/large_vocabulary.py --directory DIR   # keep the files in DIR (default: a temporary one)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile

import numpy as np
import pyarrow as pa

VOCABULARY = 32_000
LABEL_BOOST = 4.0  # added to the label's logit
SCHEMA = pa.schema([("logits", pa.list_(pa.float32(), VOCABULARY)), ("label", pa.int32())])


def write(path: str, rows: int, rows_per_batch: int, seed: int = 2026) -> float:
    """Write ``rows`` rows in batches of ``rows_per_batch`` as an IPC stream (.arrows) or an IPC file (.arrow);
    return numpy's mean cross-entropy of those rows (float64 log-sum-exp), for the reader's check."""
    rng = np.random.default_rng(seed)
    new_writer = pa.ipc.new_stream if path.endswith(".arrows") else pa.ipc.new_file
    total = 0.0
    with pa.OSFile(path, "wb") as sink, new_writer(sink, SCHEMA) as writer:
        for start in range(0, rows, rows_per_batch):
            count = min(rows_per_batch, rows - start)
            logits = rng.standard_normal((count, VOCABULARY), dtype=np.float32)
            labels = rng.integers(0, VOCABULARY, count).astype(np.int32)
            logits[np.arange(count), labels] += LABEL_BOOST
            wide = logits.astype(np.float64)
            top = wide.max(axis=1)
            log_normalizer = top + np.log(np.exp(wide - top[:, None]).sum(axis=1))
            total += float((log_normalizer - wide[np.arange(count), labels]).sum())
            column = pa.FixedSizeListArray.from_arrays(pa.array(logits.reshape(-1)), VOCABULARY)
            writer.write_batch(pa.record_batch([column, pa.array(labels)], schema=SCHEMA))
    return total / rows


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def score_here(path: str, warmup: str) -> None:
    """In the child: score a 4-row file of the same layout first (so that loading the compiled kernel, or
    compiling it, is not counted), then the file; print one JSON line."""
    import streamdiv

    streamdiv.evaluate(warmup, logits="logits", labels="label")
    before = peak_rss_mib()
    report = streamdiv.evaluate(path, logits="logits", labels="label")
    print(json.dumps({"rows": report.metrics["rows"], "cross_entropy": report.metrics["cross_entropy"],
                      "perplexity": report.metrics["perplexity"], "baseline_mib": before,
                      "peak_growth_mib": peak_rss_mib() - before}))


def score_in_child(path: str, warmup: str) -> dict:
    finished = subprocess.run([sys.executable, os.path.abspath(__file__), "--score", path, "--warmup", warmup],
                              capture_output=True, text=True)
    if finished.returncode != 0:
        sys.exit(f"scoring {path} failed:\n{finished.stderr}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", default=os.environ.get("STREAMDIV_EXAMPLE_QUICK") == "1",
                        help="files of a few MiB, for the test suite")
    parser.add_argument("--directory", help="where to write the files (default: a temporary directory)")
    parser.add_argument("--score", help=argparse.SUPPRESS)   # the child process's job
    parser.add_argument("--warmup", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.score:
        score_here(args.score, args.warmup)
        return

    sizes, rows_per_batch = ((64, 256), 32) if args.quick else ((2_048, 8_192), 128)
    with tempfile.TemporaryDirectory(prefix="streamdiv-vocabulary-") as scratch:
        directory = args.directory or scratch
        os.makedirs(directory, exist_ok=True)
        warmup = os.path.join(directory, "warmup.arrows")
        write(warmup, 4, 4)
        print(f"K = {VOCABULARY:,} float32 logits a row, {rows_per_batch} rows "
              f"({rows_per_batch * VOCABULARY * 4 / 2**20:.0f} MiB) a batch; each file scored in a fresh process")
        print(f"{'format':<16}{'file MiB':>10}{'rows':>8}{'cross_entropy':>16}{'numpy':>16}{'perplexity':>12}"
              f"{'peak RSS growth MiB':>21}")
        growth = {}
        for suffix, name in ((".arrows", "IPC stream"), (".arrow", "IPC file (mmap)")):
            for rows in sizes:
                path = os.path.join(directory, f"logits-{rows}{suffix}")
                expected = write(path, rows, rows_per_batch)
                size_mib = os.path.getsize(path) / 2**20
                result = score_in_child(path, warmup)
                os.remove(path)
                growth[name, rows] = result["peak_growth_mib"]
                print(f"{name:<16}{size_mib:>10.1f}{result['rows']:>8,}{result['cross_entropy']:>16.9f}"
                      f"{expected:>16.9f}{result['perplexity']:>12.2f}{result['peak_growth_mib']:>21.1f}")
                if not math.isclose(result["cross_entropy"], expected, rel_tol=1e-9):
                    sys.exit(f"cross-entropy {result['cross_entropy']} differs from numpy's {expected}")
        small, large = sizes
        print(f"IPC stream: a file {large // small}x as large, peak RSS growth {growth['IPC stream', small]:.0f} "
              f"-> {growth['IPC stream', large]:.0f} MiB (bounded by the batches, not the file)")
        print(f"IPC file:   peak RSS growth {growth['IPC file (mmap)', small]:.0f} -> "
              f"{growth['IPC file (mmap)', large]:.0f} MiB: the memory-mapped pages read count in RSS")


if __name__ == "__main__":
    main()
