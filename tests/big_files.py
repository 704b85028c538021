"""Writes a large predictions file cheaply, in its own process, for tests/test_memory.py.

    python tests/big_files.py parquet|arrow|stream PATH GIGABYTES      # PATH "-" writes the stream to stdout

The rows are one block of BLOCK_ROWS rows of ten float32 probabilities and an int32 label, repeated: the
scorer's work and memory depend on the decoded bytes, not on their variety, and a repeated block is written at
disk speed.  Its own process, because Linux carries the peak RSS across fork and exec: a writer in the test's
process would be charged to the scorer it starts.
"""

from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

NUM_CLASSES = 10
BLOCK_ROWS = 1 << 16
BYTES_PER_ROW = NUM_CLASSES * 4 + 4  # decoded: the probabilities and the label


def block() -> pa.RecordBatch:
    rng = np.random.default_rng(17)
    logits = rng.normal(0.0, 2.0, (BLOCK_ROWS, NUM_CLASSES))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, BLOCK_ROWS).astype(np.int32)
    return pa.record_batch({"probs": pa.FixedSizeListArray.from_arrays(pa.array(probs.reshape(-1)), NUM_CLASSES),
                            "label": labels})


def main(kind: str, path: str, gigabytes: float) -> None:
    batch = block()
    blocks = max(1, int(gigabytes * 1e9 / (BYTES_PER_ROW * BLOCK_ROWS)))
    if kind == "parquet":
        # Four blocks to a row group (2^18 rows, 11.5 MB decoded): row groups of the size writers commonly use.
        with pq.ParquetWriter(path, batch.schema, compression="none", use_dictionary=False) as writer:
            for _ in range(0, blocks, 4):
                writer.write_table(pa.Table.from_batches([batch] * 4), row_group_size=4 * BLOCK_ROWS)
        return
    sink = sys.stdout.buffer if path == "-" else pa.OSFile(path, "wb")
    new_writer = pa.ipc.new_file if kind == "arrow" else pa.ipc.new_stream
    with new_writer(sink, batch.schema) as writer:
        for _ in range(blocks):
            writer.write_batch(batch)
    sink.flush()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
