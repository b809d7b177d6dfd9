"""The Memory implementations every decoder reads through."""
from __future__ import annotations

import pytest

from decoders.memory import BytesMemory, MemoryBytes, RegionMemory, Unreadable


def test_bytes_memory_bounds():
    m = BytesMemory(b"abcdef", 0x1000)
    assert m.read(0x1002, 2) == b"cd"
    for address, size in [(0xFFF, 2), (0x1005, 2), (0x2000, 1)]:
        with pytest.raises(Unreadable):
            m.read(address, size)


def test_region_memory_reads_inside_one_region_only():
    m = RegionMemory([(0x1000, b"\x01" * 16), (0x2000, b"\x02" * 16)])
    assert m.read(0x2004, 4) == b"\x02" * 4
    with pytest.raises(Unreadable):
        m.read(0x100C, 8)  # runs past the first region


def test_memory_bytes_slices_like_bytes_and_shows_holes_empty():
    view = MemoryBytes(RegionMemory([(0x1000, bytes(range(32)))]), 0, 0x2000)
    assert len(view) == 0x2000
    assert view[0x1000:0x1004] == b"\x00\x01\x02\x03"
    assert view[0x1001] == 1
    assert view[0:16] == b""          # a hole: blank, not an exception
    assert view[0x1010:0x1030] == b""  # straddles the end of the region
    with pytest.raises(IndexError):
        view[5]
