"""Iterators run ahead on threads: items in order, errors re-raised where they are read, threads stopped when
the reader leaves early, and no more than ``depth`` items waiting per thread."""

from __future__ import annotations

import threading
import time

import pytest

from streamdiv.ahead import Ahead, chained_ahead


def slow_range(start: int, stop: int, pause: float):
    def make():
        for value in range(start, stop):
            time.sleep(pause)
            yield value
    return make


def reader_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "streamdiv-reader"]


def test_chained_items_come_in_order_whichever_producer_finishes_first():
    # the first producer is the slowest: the later ones finish while it still runs
    makers = [slow_range(0, 5, 0.01), slow_range(5, 10, 0.0), slow_range(10, 12, 0.002), slow_range(12, 20, 0.0)]
    for width in (1, 2, 3, 5):
        assert list(chained_ahead(makers, width=width, depth=2)) == list(range(20))


def test_an_error_re_raises_after_the_items_before_it():
    def failing():
        yield 5
        raise OSError("page 3 is corrupt")

    seen = []
    with pytest.raises(OSError, match="page 3 is corrupt"):
        for item in chained_ahead([slow_range(0, 5, 0.0), failing, slow_range(6, 9, 0.0)], width=2, depth=2):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4, 5]
    assert not reader_threads()


def test_a_reader_that_leaves_early_stops_every_thread():
    items = chained_ahead([slow_range(0, 10**6, 0.0) for _ in range(4)], width=3, depth=2)
    assert next(items) == 0
    items.close()
    assert not reader_threads()


def test_a_thread_waits_with_at_most_depth_items_ahead():
    produced = []

    def counting():
        for value in range(100):
            produced.append(value)
            yield value

    ahead = Ahead(counting, depth=3)
    time.sleep(0.3)
    assert len(produced) == 4  # three waiting, the fourth made and held until there is room
    assert list(ahead) == list(range(100))
