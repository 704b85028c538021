"""Parquet's RLE / bit-packed hybrid encoding, decoded in numba.

The encoding is a sequence of runs, each introduced by a ULEB128 varint header ``h``:

* ``h & 1 == 0``: an RLE run, the value ``v`` repeated ``h >> 1`` times, ``v`` stored little-endian in
  ``ceil(bit_width / 8)`` bytes;
* ``h & 1 == 1``: ``h >> 1`` groups of 8 values bit-packed least significant bit first, ``bit_width`` bytes
  a group.

Definition and repetition levels and dictionary indices use it (``bit_width`` at most 32).  A file with no
nulls has definition levels that are all the maximum, written as a few long RLE runs, so :func:`all_equal`
checks them without expanding them.  Every function returns False on bytes that do not hold ``count``
values, so that the caller falls back to pyarrow, which reports the corruption itself.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def uvarint(data, position, end):
    """(value, position after it) of the ULEB128 varint at ``data[position]``, which must end before ``end``;
    the position is -1 when it does not (or runs past 64 bits)."""
    value = 0
    shift = 0
    while position < end and shift <= 63:
        byte = data[position]
        position += 1
        value |= np.int64(byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
    return 0, -1


@njit(cache=True, nogil=True)
def _run(data, position, bit_width):
    """The run at ``data[position]``: (is RLE, values in it, its RLE value, where its payload starts, where it
    ends); the end is -1 when the run does not fit in ``data``."""
    header, position = uvarint(data, position, data.size)
    if position < 0:
        return False, 0, 0, position, -1
    if header & 1:
        end = position + (header >> 1) * bit_width
        return False, (header >> 1) * 8, 0, position, end if end <= data.size else -1
    value_bytes = (bit_width + 7) >> 3
    if position + value_bytes > data.size:
        return True, 0, 0, position, -1
    value = 0
    for i in range(value_bytes):
        value |= np.int64(data[position + i]) << (8 * i)
    return True, header >> 1, value, position, position + value_bytes


@njit(cache=True, nogil=True)
def _runs(data, count, bit_width):
    """The runs that hold the first ``count`` values, one row each: (is RLE, values taken from it, its RLE
    value, where its payload starts); an empty table when the bytes end before ``count`` values.

    For dictionary indices and definition levels, which come in few runs; a list's repetition levels
    alternate short runs row by row, and :func:`rows_of_length` walks them without a table.
    """
    table = np.empty((16, 4), np.int64)
    used = 0
    position = 0
    done = 0
    while done < count:
        is_rle, run, value, payload, end = _run(data, position, bit_width)
        if end < 0:
            return table[:0]
        if used == table.shape[0]:
            table = np.concatenate((table, np.empty_like(table)))
        take = min(run, count - done)
        table[used, 0], table[used, 1], table[used, 2], table[used, 3] = is_rle, take, value, payload
        used += 1
        done += take
        position = end
    return table[:used]


@njit(cache=True, nogil=True)
def _unpack(data, position, count, bit_width, out, start):
    """``count`` bit-packed ``bit_width``-bit values from ``data[position]`` into ``out[start:]``."""
    mask = np.uint64((1 << bit_width) - 1)
    buffer = np.uint64(0)
    bits = 0
    for i in range(count):
        while bits < bit_width:
            buffer |= np.uint64(data[position]) << np.uint64(bits)
            position += 1
            bits += 8
        out[start + i] = buffer & mask
        buffer >>= np.uint64(bit_width)
        bits -= bit_width


@njit(cache=True, nogil=True)
def decode_dictionary(data, count, bit_width, dictionary, out):
    """``out[i] = dictionary[index i]`` for the ``count`` indices in ``data``; False if one is out of range."""
    runs = _runs(data, count, bit_width)
    indices = np.empty(min(count, 4096), np.int64)
    done = 0
    for row in range(runs.shape[0]):
        is_rle, take, value, payload = runs[row, 0], runs[row, 1], runs[row, 2], runs[row, 3]
        if is_rle:
            if take and not 0 <= value < dictionary.size:
                return False
            if take:
                out[done:done + take] = dictionary[value]
        else:
            for tile in range(0, take, indices.size):  # a long run may hold more indices than the buffer
                size = min(indices.size, take - tile)
                _unpack(data, payload + tile * bit_width // 8, size, bit_width, indices, 0)
                for i in range(size):
                    if indices[i] >= dictionary.size:
                        return False
                    out[done + tile + i] = dictionary[indices[i]]
        done += take
    return count == 0 or runs.shape[0] > 0


@njit(cache=True, nogil=True)
def all_equal(data, count, bit_width, expected):
    """Whether the first ``count`` values of the hybrid run sequence in ``data`` all equal ``expected``."""
    runs = _runs(data, count, bit_width)
    group = np.empty(8, np.int64)
    for row in range(runs.shape[0]):
        is_rle, take, value, payload = runs[row, 0], runs[row, 1], runs[row, 2], runs[row, 3]
        if is_rle and take and value != expected:
            return False
        for first in range(0, 0 if is_rle else take, 8):
            size = min(8, take - first)
            _unpack(data, payload + first * bit_width // 8, size, bit_width, group, 0)
            for i in range(size):
                if group[i] != expected:
                    return False
    return count == 0 or runs.shape[0] > 0


@njit(cache=True, nogil=True)
def rows_of_length(data, count, length, first):
    """Whether ``count`` repetition levels (bit width 1) in ``data`` are those of rows of ``length`` values.

    Level ``first + i`` must be 0 (a row starts) exactly where ``(first + i) % length == 0``: ``first`` is the
    number of levels on the chunk's earlier pages, so a row may continue from one page to the next.  A
    bit-packed byte is compared with the byte the pattern expects at its phase, 8 levels at a time.
    """
    expected = np.zeros(length, np.uint8)  # expected[phase]: the 8 levels from a level at that phase
    for phase in range(length):
        for j in range(8):
            if (phase + j) % length != 0:
                expected[phase] |= np.uint8(1 << j)
    done = 0
    position = 0
    while done < count:
        is_rle, run, value, payload, position = _run(data, position, 1)
        if position < 0:
            return False
        take = min(run, count - done)
        phase = (first + done) % length
        if is_rle and take:
            if value == 1 and (phase == 0 or phase + take > length):
                return False  # a run of 1s may not cover a row start
            if value == 0 and not (phase == 0 and (take == 1 or length == 1)):
                return False  # a run of 0s is a run of one-value rows
            if value > 1:
                return False
        for byte in range(0 if is_rle else (take + 7) // 8):
            mask = 0xFF if 8 * byte + 8 <= take else (1 << (take - 8 * byte)) - 1
            if (data[payload + byte] ^ expected[(phase + 8 * byte) % length]) & mask:
                return False
        done += take
    return True
