"""A progress line on stderr: rows and data done, throughput and, when the total is known, the ETA."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class ProgressBar:
    """Call with (rows, bytes) after each batch; redraws at most ``interval`` times a second; ``close()`` ends it."""

    def __init__(self, total_rows: int | None, stream: TextIO | None = None, interval: float = 0.2):
        self.total_rows = total_rows
        self.stream = stream or sys.stderr
        self.interval = interval
        self.rows = 0
        self.bytes = 0
        self.started = time.perf_counter()
        self._last_draw = 0.0
        self._drawn = False

    def __call__(self, rows: int, nbytes: int) -> None:
        self.rows += rows
        self.bytes += nbytes
        now = time.perf_counter()
        if now - self._last_draw >= self.interval:
            self._last_draw = now
            self._draw(now)

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.rows / elapsed
        text = f"{self.rows:,} rows"
        if self.total_rows:
            share = min(self.rows / self.total_rows, 1.0)
            filled = int(share * 20)
            text = f"[{'#' * filled}{'.' * (20 - filled)}] {share:6.1%}  {self.rows:,}/{self.total_rows:,} rows"
        text += f"  {self.bytes / 2 ** 20:,.0f} MiB decoded  {rate / 1e6:,.2f} M rows/s"
        if self.total_rows and rate > 0:
            text += f"  ETA {max(self.total_rows - self.rows, 0) / rate:,.0f}s"
        return text

    def _draw(self, now: float) -> None:
        self.stream.write("\r\033[K" + self.line(now))
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()


class CompileNotice:
    """A line on stderr when a call into the kernels is still running after ``delay`` seconds on its first
    use of a layout in this process: then it is compiling (loading from numba's cache takes a fraction of a
    second), and the user should know why the first run waits, before it ends, not after."""

    def __init__(self, delay: float = 1.0, stream: TextIO | None = None):
        self.delay = delay
        self.stream = stream
        self._seen: set[tuple] = set()

    def around(self, key: tuple, what: str) -> _Notice:
        """A context manager for one call: silent unless ``key`` is new and the call outlasts the delay."""
        if key in self._seen:
            return _Notice(None)
        self._seen.add(key)
        message = (f"streamdiv: compiling the kernels for this layout ({what}), once: about 10-15 s on "
                   f"2 cores; later runs load them from numba's cache (`streamdiv warmup` compiles every "
                   f"layout ahead of time)")
        return _Notice(threading.Timer(self.delay, self._say, (message,)))

    def _say(self, message: str) -> None:
        stream = self.stream or sys.stderr
        print(message, file=stream, flush=True)


class _Notice:
    def __init__(self, timer: threading.Timer | None):
        self.timer = timer

    def __enter__(self) -> None:
        if self.timer is not None:
            self.timer.daemon = True
            self.timer.start()

    def __exit__(self, *exc_info: object) -> None:
        if self.timer is not None:
            self.timer.cancel()


COMPILE_NOTICE = CompileNotice()
