"""TargetMemory, the decoders' Memory over a live target: page cache and prefetch, so a page-table
walk over the gdbstub costs a few pipelined reads per level, not one round trip per table."""
from __future__ import annotations

import struct

from decoders.paging import walk
from inspector.live.target import TargetMemory


class CountingTarget:
    """Physical memory in a bytearray; counts the requests a client would send to the stub."""

    generation = 0

    def __init__(self, size: int):
        self.mem = bytearray(size)
        self.requests: list[tuple[int, int]] = []

    def read_physical(self, address: int, size: int, timeout: float = 1.0) -> bytes:
        self.requests.append((address, size))
        return bytes(self.mem[address:address + size])


def identity_map(t: CountingTarget, base: int, pds: int) -> int:
    """PML4 -> PDPT -> `pds` contiguous PD tables of 2 MiB leaves, as OVMF's DxeIpl lays them out."""
    pml4, pdpt = base, base + 0x1000
    struct.pack_into("<Q", t.mem, pml4, pdpt | 3)
    for j in range(pds):
        pd = base + 0x2000 + j * 0x1000
        struct.pack_into("<Q", t.mem, pdpt + 8 * j, pd | 3)
        struct.pack_into("<512Q", t.mem, pd, *(((j * 512 + k) << 21) | 0x83 for k in range(512)))
    return pml4


def test_walk_prefetches_each_level_in_few_requests():
    t = CountingTarget(0x400000)
    cr3 = identity_map(t, 0x100000, 256)
    result = walk(TargetMemory(t), cr3)
    assert len(result.mappings) == 256 * 512 and not result.problems
    # PML4, PDPT, then the 256 contiguous PDs in at most a few runs (≤ 1 MiB each).
    assert len(t.requests) <= 4, t.requests
    assert result.tables_read == 258


def test_prefetch_skips_what_is_cached_and_survives_holes():
    t = CountingTarget(0x10000)
    mem = TargetMemory(t)
    mem.read(0x2000, 8)
    mem.prefetch([0x2000, 0x3000, 0x4000])
    assert t.requests[-1] == (0x3000, 0x2000)  # only the missing pages, as one run
    before = len(t.requests)
    assert mem.read(0x4008, 8) == bytes(8) and len(t.requests) == before

    class Holey(CountingTarget):
        def read_physical(self, address, size, timeout=1.0):
            from inspector.live.target import TargetError
            raise TargetError("E14")

    h = TargetMemory(Holey(0))
    h.prefetch([0x1000, 0x9000])  # nothing readable: no exception, nothing cached
    assert h._pages == {}
