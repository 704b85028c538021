"""A flat column chunk decoded in one numba call: page headers, snappy bodies, levels and values.

The pages of a flat column of a prediction file are small (pyarrow writes about 20,000 values a page), and
reading each page's header in Python (:mod:`.thrift`, about 36 µs a page) cost more than pyarrow's whole
decode of it.  Here the walk over the pages runs in numba: the compact-protocol ``PageHeader`` is read for
the fields decoding needs (the rest, statistics included, skipped), snappy bodies are decompressed by
:func:`snappy_into`, the definition levels checked to be all the maximum (no nulls) and the values copied
(PLAIN), transposed (BYTE_STREAM_SPLIT) or looked up (dictionary indices).  :func:`decode_flat_chunk`
returns HAS_NULLS for a page with a null, which only pyarrow reads, and ELSEWHERE for anything else it does
not handle (an unknown encoding, a list or map inside a header, bytes that do not parse): the caller then
takes the chunk through :mod:`.pages`, which hands it to pyarrow where it must.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .levels import all_equal, decode_dictionary, uvarint

# parquet.thrift's PageType, Encoding and CompressionCodec values used here
DATA_PAGE, INDEX_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2 = 0, 1, 2, 3
PLAIN, PLAIN_DICTIONARY, RLE, RLE_DICTIONARY, BYTE_STREAM_SPLIT = 0, 2, 3, 8, 9
UNCOMPRESSED, SNAPPY = 0, 1
# what decode_flat_chunk returns: the chunk decoded; left to another reader; left to pyarrow, for a null
WALKED, ELSEWHERE, HAS_NULLS = 1, 0, -1
SNAPPY_MOST_EXPANSION = 32  # a snappy element of 2 bytes (a 1-byte-offset copy) writes at most 11, of 3 at most 64

# Where read_page_header puts each field: the PageHeader's own at their ids (1 type, 2 uncompressed size,
# 3 compressed size), DataPageHeader's at 10 + id, DictionaryPageHeader's at 20 + id, DataPageHeaderV2's at
# 30 + id; -1 where absent.
HEADER_FIELDS = 40
V1, DICTIONARY, V2 = 10, 20, 30

# compact protocol types
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _STRUCT = 1, 2, 3, 4, 5, 6, 7, 8, 12


@intrinsic
def _copy_bytes(typingctx, destination, at, source, start, count):
    """``destination[at:at + count] = source[start:start + count]`` for uint8 arrays whose ranges do not
    overlap and lie inside them (the caller has checked), as one ``llvm.memcpy``: numba's slice assignment
    copies at 3.7 GB/s here, memcpy at about 12."""
    def codegen(context, builder, signature, args):
        target, offset, origin, first, size = args
        target_data = context.make_array(signature.args[0])(context, builder, target).data
        origin_data = context.make_array(signature.args[2])(context, builder, origin).data
        cgutils.raw_memcpy(builder, builder.gep(target_data, [offset]), builder.gep(origin_data, [first]), size, 1)
        return context.get_dummy_value()
    return types.void(destination, types.int64, source, types.int64, types.int64), codegen


@njit(cache=True, nogil=True)
def _zigzag(data, position, end):
    value, position = uvarint(data, position, end)
    return (value >> 1) ^ -(value & 1), position


@njit(cache=True, nogil=True)
def _skip_scalar(data, position, end, kind):
    """The position after a value of compact type ``kind`` other than a struct; -1 for a list, set or map
    (no PageHeader field the writers we meet use) or bytes that do not fit."""
    if kind == _TRUE or kind == _FALSE:
        return position
    if kind == _BYTE:
        return position + 1 if position < end else -1
    if kind == _I16 or kind == _I32 or kind == _I64:
        return uvarint(data, position, end)[1]
    if kind == _DOUBLE:
        return position + 8 if position + 8 <= end else -1
    if kind == _BINARY:
        length, position = uvarint(data, position, end)
        return position + length if position >= 0 and position + length <= end else -1
    return -1


@njit(cache=True, nogil=True)
def _field_header(data, position, end, last_id):
    """(field id, type, position after the header) of the field at ``position``; type 0 at the struct's end;
    position -1 if the bytes end first."""
    if position >= end:
        return 0, 0, -1
    byte = data[position]
    position += 1
    if byte == 0:
        return 0, 0, position
    delta, kind = byte >> 4, byte & 0x0F
    if delta:
        return last_id + delta, kind, position
    field_id, position = _zigzag(data, position, end)
    return field_id, kind, position


@njit(cache=True, nogil=True)
def _skip_struct(data, position, end):
    """The position after a struct whose fields start at ``position`` (nested structs included)."""
    depth = 1
    ids = np.zeros(32, np.int64)  # the last field id at each depth, from which the next header's delta counts
    while depth > 0:
        field_id, kind, position = _field_header(data, position, end, ids[depth - 1])
        if position < 0:
            return -1
        if kind == 0:
            depth -= 1
            continue
        ids[depth - 1] = field_id
        if kind == _STRUCT:
            if depth == ids.size:
                return -1
            ids[depth] = 0
            depth += 1
            continue
        position = _skip_scalar(data, position, end, kind)
        if position < 0:
            return -1
    return position


@njit(cache=True, nogil=True)
def read_page_header(data, position, end, fields):
    """Read the PageHeader at ``position`` into ``fields`` (see HEADER_FIELDS): the integer and boolean
    fields (ids 1-9) of the header and of its data, dictionary or v2 page header, each at its base plus its
    id; every other field skipped.  Returns the position after the header, -1 if it does not parse."""
    fields[:] = -1
    fields[V2 + 7] = 1  # is_compressed defaults to true
    depth, base = 0, 0
    last = np.zeros(2, np.int64)  # the last field id at the header's level and inside its page header
    while True:
        field_id, kind, position = _field_header(data, position, end, last[depth])
        if position < 0:
            return -1
        if kind == 0:
            if depth == 0:
                return position
            depth, base = 0, 0
            continue
        last[depth] = field_id
        keep = 1 <= field_id <= 9
        if kind == _STRUCT and depth == 0 and (field_id == 5 or field_id == 7 or field_id == 8):
            depth, base = 1, (V1 if field_id == 5 else (DICTIONARY if field_id == 7 else V2))
            last[1] = 0
            continue
        if kind == _I32 or kind == _I16 or kind == _I64:
            value, position = _zigzag(data, position, end)
            if keep:
                fields[base + field_id] = value
        elif kind == _TRUE or kind == _FALSE:
            if keep:
                fields[base + field_id] = 1 if kind == _TRUE else 0
        elif kind == _STRUCT:
            position = _skip_struct(data, position, end)
        else:
            position = _skip_scalar(data, position, end, kind)
        if position < 0:
            return -1


@njit(cache=True, nogil=True)
def snappy_into(source, start, stop, destination):
    """Decompress the snappy block ``source[start:stop]`` into the front of ``destination``: its length, or
    -1 if the block is malformed or does not fit.  A block is its length as a varint, then elements: a
    literal (tag & 3 == 0: its length - 1 in the tag's top six bits, or in the 1-4 bytes after it) or a copy
    of earlier output (tags 1, 2, 3: a length and an offset back of 11, 16 or 32 bits)."""
    length, position = uvarint(source, start, stop)
    if position < 0 or length > destination.size:
        return -1
    out = 0
    while position < stop:
        tag = source[position]
        position += 1
        kind = tag & 3
        if kind == 0:
            size = np.int64(tag >> 2)
            if size >= 60:
                extra = size - 59
                if position + extra > stop:
                    return -1
                size = 0
                for i in range(extra):
                    size |= np.int64(source[position + i]) << (8 * i)
                position += extra
            size += 1
            if position + size > stop or out + size > length:
                return -1
            _copy_bytes(destination, out, source, position, size)
            position += size
            out += size
            continue
        if kind == 1:
            if position + 1 > stop:
                return -1
            size = 4 + ((tag >> 2) & 7)
            offset = (np.int64(tag >> 5) << 8) | source[position]
            position += 1
        else:
            width = 2 if kind == 2 else 4
            if position + width > stop:
                return -1
            size = np.int64(tag >> 2) + 1
            offset = 0
            for i in range(width):
                offset |= np.int64(source[position + i]) << (8 * i)
            position += width
        if offset == 0 or offset > out or out + size > length:
            return -1
        if offset >= size:
            _copy_bytes(destination, out, destination, out - offset, size)
        else:  # the copy overlaps its own output: byte by byte, forward
            for i in range(size):
                destination[out + i] = destination[out - offset + i]
        out += size
    return length if out == length else -1


@njit(cache=True, nogil=True)
def _body(chunk, start, stop, size, codec, scratch):
    """A page body's bytes: ``chunk[start:stop]`` as stored, or decompressed into ``scratch`` (``size``
    bytes); an empty array when it does not decompress to ``size`` bytes."""
    if codec == UNCOMPRESSED:
        return chunk[start:stop]
    if size < 0 or size > scratch.size or snappy_into(chunk, start, stop, scratch) != size:
        return scratch[:0]
    return scratch[:size]


@njit(cache=True, nogil=True)
def _values(encoded, encoding, count, dictionary, out, filled):
    """The page's ``count`` values into ``out[filled:]``; False if their encoding is not handled."""
    width = out.itemsize
    if encoding == PLAIN or encoding == BYTE_STREAM_SPLIT:
        if encoded.size < count * width:
            return False
        target = out[filled:filled + count].view(np.uint8)
        if encoding == PLAIN:
            _copy_bytes(target, 0, encoded, 0, count * width)
        else:  # byte b of value i is byte i of the b-th stream of count bytes
            for b in range(width):
                for i in range(count):
                    target[i * width + b] = encoded[b * count + i]
        return True
    if (encoding == PLAIN_DICTIONARY or encoding == RLE_DICTIONARY) and dictionary.size and encoded.size:
        return encoded[0] <= 32 and decode_dictionary(encoded[1:], count, np.int64(encoded[0]), dictionary,
                                                      out[filled:filled + count])
    return False


@njit(cache=True, nogil=True)
def _levels_full(levels, count, max_definition):
    """Whether ``count`` definition levels are all ``max_definition`` (0: a required column has none)."""
    if max_definition == 0:
        return True
    bit_width = 0
    while (1 << bit_width) <= max_definition:
        bit_width += 1
    return all_equal(levels, count, bit_width, max_definition)


@njit(cache=True, nogil=True)
def decode_flat_chunk(chunk, codec, max_definition, out):
    """Decode the pages of one flat column chunk (its bytes, ``codec`` UNCOMPRESSED or SNAPPY) into ``out``,
    which holds exactly its values: WALKED when done, else HAS_NULLS or ELSEWHERE (see the module)."""
    fields = np.empty(HEADER_FIELDS, np.int64)
    scratch = np.empty(0, np.uint8)
    dictionary = out[:0].copy()
    total, filled, position, end = out.size, 0, 0, chunk.size
    while position < end and filled < total:
        start = read_page_header(chunk, position, end, fields)
        kind, uncompressed, compressed = fields[1], fields[2], fields[3]
        if start < 0 or compressed < 0 or start + compressed > end:
            return ELSEWHERE
        position = start + compressed
        if uncompressed < 0 or uncompressed > SNAPPY_MOST_EXPANSION * compressed + 64:
            return ELSEWHERE  # a damaged size: no block expands so far, and it would be allocated
        if uncompressed > scratch.size:
            scratch = np.empty(max(uncompressed, 2 * scratch.size), np.uint8)
        if kind == DICTIONARY_PAGE:
            count = fields[DICTIONARY + 1]
            if count < 0 or (fields[DICTIONARY + 2] != PLAIN and fields[DICTIONARY + 2] != PLAIN_DICTIONARY):
                return ELSEWHERE
            body = _body(chunk, start, position, uncompressed, codec, scratch)
            dictionary = np.empty(count, dtype=out.dtype)
            if body.size < count * out.itemsize:
                return ELSEWHERE
            _copy_bytes(dictionary.view(np.uint8), 0, body, 0, count * out.itemsize)
            continue
        if kind == DATA_PAGE:
            count, encoding = fields[V1 + 1], fields[V1 + 2]
            body = _body(chunk, start, position, uncompressed, codec, scratch)
            cursor = 0
            if max_definition:
                if fields[V1 + 3] != RLE or body.size < 4:
                    return ELSEWHERE
                length = (np.int64(body[0]) | np.int64(body[1]) << 8 | np.int64(body[2]) << 16
                          | np.int64(body[3]) << 24)
                if 4 + length > body.size:
                    return ELSEWHERE
                if not _levels_full(body[4:4 + length], count, max_definition):
                    return HAS_NULLS
                cursor = 4 + length
            encoded = body[cursor:]
        elif kind == DATA_PAGE_V2:
            count, encoding = fields[V2 + 1], fields[V2 + 4]
            nulls, definition_length, repetition_length = fields[V2 + 2], fields[V2 + 5], fields[V2 + 6]
            if nulls != 0:
                return HAS_NULLS
            if repetition_length != 0 or definition_length < 0 or definition_length > compressed:
                return ELSEWHERE
            if not _levels_full(chunk[start:start + definition_length], count, max_definition):
                return HAS_NULLS
            if fields[V2 + 7] and codec != UNCOMPRESSED:
                encoded = _body(chunk, start + definition_length, position, uncompressed - definition_length,
                                codec, scratch)
                if uncompressed - definition_length > 0 and encoded.size == 0:
                    return ELSEWHERE
            else:
                encoded = chunk[start + definition_length:position]
        elif kind == INDEX_PAGE:
            continue
        else:
            return ELSEWHERE
        if count < 0 or filled + count > total or not _values(encoded, encoding, count, dictionary, out, filled):
            return ELSEWHERE
        filled += count
    return WALKED if filled == total else ELSEWHERE
