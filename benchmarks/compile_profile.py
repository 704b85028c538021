"""Where a first compile goes: numba's compile events for one layout's first update, in this process.

    NUMBA_CACHE_DIR=$(mktemp -d) python benchmarks/compile_profile.py   # an empty cache, so it compiles

Prints the CPU and wall seconds of the first ``Accumulator.update`` of 1,000 rows of hard labels against
float32 probabilities (K = 10), then the functions that took longest to compile, each without the time of
the functions it compiled in turn.  A benchmark, never a test.
"""

from __future__ import annotations

import time

import numpy as np
from numba.core import event

import streamdiv


def main(top: int = 12) -> None:
    rng = np.random.default_rng(0)
    probs = rng.random((1000, 10))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = rng.integers(0, 10, 1000)
    with event.install_recorder("numba:compile") as recorder:
        cpu, wall = time.process_time(), time.perf_counter()
        streamdiv.Accumulator().update(probs=probs.astype(np.float32), labels=labels)
        print(f"first update: {time.process_time() - cpu:.2f} CPU-s, {time.perf_counter() - wall:.2f} s wall")
    open_events: list[list] = []
    own_seconds: dict[str, float] = {}
    for timestamp, compile_event in recorder.buffer:
        data = compile_event.data or {}
        name = data["dispatcher"].py_func.__qualname__ if "dispatcher" in data else "?"
        if compile_event.is_start:
            open_events.append([name, timestamp, 0.0])
            continue
        name, started, inner = open_events.pop()
        own_seconds[name] = own_seconds.get(name, 0.0) + timestamp - started - inner
        if open_events:
            open_events[-1][2] += timestamp - started
    for name, seconds in sorted(own_seconds.items(), key=lambda item: -item[1])[:top]:
        print(f"{seconds:7.2f} s  {name}")


if __name__ == "__main__":
    main()
