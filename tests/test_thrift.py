"""The compact-protocol reader of Parquet's page headers and footer (streamdiv.parquet_decode.thrift)."""

from __future__ import annotations

import pytest

from streamdiv.parquet_decode.thrift import ThriftError, bool_field, int_field, read_struct, struct_field


def test_a_struct_with_integers_strings_lists_maps_and_a_nested_struct():
    data = bytes([
        0x15, 0x04,  # field 1, i32: zigzag 4 = 2
        0x18, 0x03, *b"abc",  # field 2, binary "abc"
        0x19, 0x35, 0x02, 0x04, 0x06,  # field 3, list of 3 i32: 1, 2, 3
        0x19, 0x21, 0x01, 0x02,  # field 4, list of 2 booleans: true, false
        0x1B, 0x02, 0x51, 0x02, 0x01, 0x04, 0x02,  # field 5, map i32 -> bool: {1: True, 2: False}
        0x1C, 0x15, 0x0A, 0x00,  # field 6, struct {1: 5}
        0x00,
    ])
    fields, end = read_struct(data)
    assert fields == {1: 2, 2: b"abc", 3: [1, 2, 3], 4: [True, False], 5: {1: True, 2: False}, 6: {1: 5}}
    assert end == len(data)


@pytest.mark.parametrize("data", [
    bytes([0x1B, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x08, 0x11, 0x01, 0x00]),  # a map of 2^60 booleans
    bytes([0x19, 0xF1, 0x80, 0x80, 0x80, 0x80, 0x04, 0x01, 0x00]),  # a list of 2^30 booleans
    bytes([0x19, 0xF5, 0xFF, 0xFF, 0xFF, 0x0F, 0x02]),  # a list of 2^32 - 1 integers, one present
])
def test_a_size_past_the_bytes_left_is_a_thrift_error_at_once(data):
    # the fuzzer's page header held such a map: its booleans took no byte, and the parse ran for hours
    with pytest.raises(ThriftError, match="runs past the end of the header"):
        read_struct(data)


def test_typed_fields_refuse_a_damaged_headers_field_of_another_type():
    # the fuzzer's dictionary page header held an integer where its DictionaryPageHeader struct belongs
    fields = {1: 3, 2: -1, 3: True, 7: 12}
    assert int_field(fields, 1) == 3 and int_field(fields, 9, 0) == 0 and bool_field(fields, 3, False) is True
    for read in (lambda: struct_field(fields, 7), lambda: int_field(fields, 2), lambda: int_field(fields, 3),
                 lambda: int_field(fields, 9), lambda: bool_field(fields, 1, True)):
        with pytest.raises(ThriftError, match="field"):
            read()
