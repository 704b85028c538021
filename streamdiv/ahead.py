"""Iterators run ahead on background threads, a bounded number of items ahead, their items still in order.

pyarrow releases the GIL while it decodes and the kernels are ``nogil``, so a thread that decodes the next
batches overlaps the main thread's scoring; several such threads, one per row group, keep both cores busy
while a light kernel would leave one idle.  Each thread stops at ``depth`` items waiting, so memory stays
bounded by the items in flight, and a heavy kernel (one that keeps the cores busy itself) holds the threads
back by leaving their queues full.
"""

from __future__ import annotations

import collections
import queue
import threading
from typing import Callable, Generic, Iterable, Iterator, TypeVar

Item = TypeVar("Item")

_DONE = object()


class Ahead(Generic[Item]):
    """The items of ``make()``, produced on a thread started now, at most ``depth`` of them waiting; an error
    raised there re-raises in the consumer.  ``close()`` stops the thread (iterating to the end closes too)."""

    def __init__(self, make: Callable[[], Iterable[Item]], depth: int, name: str = "streamdiv-reader"):
        self._buffer: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(make,), name=name, daemon=True)
        self._thread.start()

    def _produce(self, make: Callable[[], Iterable[Item]]) -> None:
        items = None
        try:
            items = iter(make())
            for item in items:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as error:  # handed to the consumer, which re-raises it
            self._put(error)
        finally:
            # a generator left early closes here, on this thread: its own threads stop before this one ends
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def _put(self, item: object) -> bool:
        # a timeout, so that a consumer that stopped reading (close) never leaves this thread blocked
        while not self._stop.is_set():
            try:
                self._buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Item]:
        try:
            while True:
                item = self._buffer.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._buffer.get_nowait()
            except queue.Empty:
                self._thread.join(0.05)


def chained_ahead(makers: Iterable[Callable[[], Iterable[Item]]], width: int, depth: int) -> Iterator[Item]:
    """The items of every ``make()`` in ``makers``, one after the other, with ``width`` of them produced at
    once (each on its own thread, ``depth`` items ahead): the first is read while the next ``width - 1``
    already run."""
    running: collections.deque[Ahead[Item]] = collections.deque()
    try:
        for make in makers:
            running.append(Ahead(make, depth))
            if len(running) >= width:
                yield from running.popleft()
        while running:
            yield from running.popleft()
    finally:
        for pending in running:
            pending.close()
