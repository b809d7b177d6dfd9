"""Page-table walks over tables built here with struct (SDM vol. 3A ch. 4 layouts), including
5-level paging with 57-bit addresses in both canonical halves, every leaf size, the TDX shared bit,
loops and reserved bits. The walks of real OVMF guests are compared with QEMU's `info tlb` in
tests/live/test_dump_live.py (4-level) and tests/live/test_la57_live.py (5-level)."""
from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decoders import paging
from decoders.memory import BytesMemory
from decoders.paging import (PagingConfig, VirtualMemory, mapping_node, merge, page_tables_node, scan, translate,
                             walk)

P, RW, US, PWT, PCD, A, D, PS, G = 1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80, 0x100
NX = 1 << 63
BASE = 0x100000


class Tables:
    """Page tables in one buffer at BASE; table(n) is the n-th 4 KiB table."""

    def __init__(self, count: int):
        self.buf = bytearray(0x1000 * count)

    def table(self, n: int) -> int:
        return BASE + 0x1000 * n

    def set(self, table: int, index: int, value: int) -> None:
        struct.pack_into("<Q", self.buf, table - BASE + index * 8, value)

    def memory(self) -> BytesMemory:
        return BytesMemory(bytes(self.buf), BASE)


def test_four_level_leaves_of_every_size_with_effective_permissions():
    t = Tables(5)
    pml4, pdpt, pd, pt = t.table(0), t.table(1), t.table(2), t.table(3)
    t.set(pml4, 0, pdpt | P | RW | US)
    t.set(pml4, 511, pdpt | P)            # read-only, supervisor at the top: the kernel half
    t.set(pdpt, 1, 0x40000000 | P | RW | PS | G)          # 1 GiB at VA 1 GiB
    t.set(pdpt, 0, pd | P | RW | US)
    t.set(pd, 0, pt | P | RW | US)
    t.set(pd, 1, 0x00200000 | P | RW | PS | NX | D | A)   # 2 MiB at VA 2 MiB
    t.set(pt, 0, 0x5000 | P | RW | US | A)               # 4 KiB at VA 0
    t.set(pt, 1, 0x6000 | P | US | PS)                   # bit 7 is PAT in a PTE, not PS
    r = walk(t.memory(), pml4 | 0x5)                     # low CR3 bits (PCID/PWT) are masked
    # The PDPT is shared by PML4E[0] and PML4E[511]: a note located at the second entry, no error.
    assert [(p.offset, p.severity.value) for p in r.problems] == [(pml4 + 511 * 8, "info")]
    assert "0x101000" in r.problems[0].message and "0x100000" in r.problems[0].message
    m = list(r.mappings)
    by_va = {x.va: x for x in m}
    assert by_va[0].pa == 0x5000 and by_va[0].size == 0x1000 and by_va[0].user and by_va[0].writable
    assert by_va[0x1000].flags()["PAT"] and not by_va[0x1000].writable
    assert by_va[0x200000].size == 1 << 21 and by_va[0x200000].nx and by_va[0x200000].flags()["Dirty"]
    assert by_va[0x40000000].size == 1 << 30 and by_va[0x40000000].flags()["Global"]
    assert not by_va[0x40000000].user  # PDPTE has no U/S: supervisor only
    # PML4[511] → canonical upper half, read-only by the PML4E even though the PDPTE says R/W.
    top = [x for x in m if x.va >= 0xFFFF800000000000]
    assert top and all(not x.writable and not x.user for x in top)
    assert min(x.va for x in top) == 0xFFFFFF8000000000
    assert r.tables_read == 4  # PML4, PDPT (reached twice, read once), PD, PT


def test_qemu_info_tlb_flag_string():
    t = Tables(3)
    t.set(t.table(0), 0, t.table(1) | P | RW)
    t.set(t.table(1), 0, t.table(2) | P | RW)
    t.set(t.table(2), 3, 0x600000 | P | RW | PS | A | D | NX)
    (m,) = list(walk(t.memory(), t.table(0)).mappings)
    # target/i386/monitor.c print_pte: X G P D A C T U W
    assert m.qemu_tlb_flags() == "X-PDA---W"


def test_five_level_walk_and_canonical_addresses():
    t = Tables(6)
    pml5, pml4, pdpt = t.table(0), t.table(1), t.table(2)
    t.set(pml5, 0, pml4 | P | RW)
    t.set(pml5, 256, pml4 | P | RW)       # VA bit 56 set → sign-extended to 0xFF00...
    t.set(pml4, 0, pdpt | P | RW)
    t.set(pdpt, 0, 0 | P | RW | PS)
    r = walk(t.memory(), pml5, PagingConfig(la57=True))
    vas = sorted(x.va for x in r.mappings)
    assert vas == [0, 0xFF00000000000000]
    assert translate(t.memory(), pml5, 0xFF00000000001234, PagingConfig(la57=True))[0] == 0x1234
    # The same tables read as 4-level give other answers: the mode matters.
    assert sorted(x.va for x in walk(t.memory(), pml5).mappings) != vas


def test_tdx_shared_bit_is_masked_and_shown():
    t = Tables(3)
    t.set(t.table(0), 0, t.table(1) | P | RW)
    t.set(t.table(1), 0, t.table(2) | P | RW)
    t.set(t.table(2), 0, (1 << 47) | 0x200000 | P | RW | PS)
    t.set(t.table(2), 1, 0x400000 | P | RW | PS)
    r = walk(t.memory(), t.table(0), PagingConfig(maxphyaddr=52, shared_bit=47))
    a, b = list(r.mappings)
    assert a.pa == 0x200000 and a.shared is True
    assert b.shared is False
    ranges = merge(r.mappings)
    assert len(ranges) == 2  # shared and private never merge
    node = page_tables_node(r)
    assert node.get("TdxSharedBit") == 47


def test_loop_reserved_bits_and_unreadable_tables_are_problems():
    t = Tables(3)
    pml4, pdpt, pd = t.table(0), t.table(1), t.table(2)
    t.set(pml4, 0, pml4 | P | RW)              # PML4 pointing at itself
    t.set(pml4, 1, pdpt | P | RW)
    t.set(pml4, 2, 0x3FFF_0000_0000 | P)       # outside memory, below MAXPHYADDR
    t.set(pdpt, 0, 0x40000000 | (1 << 20) | P | PS)  # reserved bit 20 in a 1 GiB leaf
    t.set(pdpt, 1, pd | P | RW)
    t.set(pd, 0, 0x200000 | P | PS)
    r = walk(t.memory(), pml4, PagingConfig(maxphyaddr=46))
    messages = " ".join(p.message for p in r.problems)
    assert "loop" in messages and "reserved bits" in messages and "not readable" in messages
    assert [x.va for x in r.mappings] == [(1 << 39) + (1 << 30)]


def test_aliased_tables_are_read_once_noted_where_shared_and_cut_by_the_leaf_budget():
    # Every entry of every level points at the same table below: 4 pages of tables, 2^36 leaves by
    # VA. Each page is read once, the second entry to reach a table is noted there, and walk()
    # keeps exactly MAX_LEAVES leaves with a located problem after the last one kept.
    t = Tables(5)
    for i in range(512):
        t.set(t.table(0), i, t.table(1) | P | RW)
        t.set(t.table(1), i, t.table(2) | P | RW)
        t.set(t.table(2), i, t.table(3) | P | RW)
        t.set(t.table(3), i, (i << 12) | P | RW)
    r = walk(t.memory(), t.table(0))
    assert r.tables_read == 4
    assert len(r.mappings) == paging.MAX_LEAVES == r.leaf_count
    notes = [p for p in r.problems if p.severity.value == "info"]
    # Depth first: PD[1] is the first entry to reach a table (the PT) another entry reached.
    assert notes[0].offset == t.table(2) + 8 and f"0x{t.table(3):x}" in notes[0].message
    assert len(notes) == paging.MAX_SHARED_NOTES + 1 and "more entries" in notes[-1].message
    (cut,) = [p for p in r.problems if p.severity.value != "info"]
    last = r.mappings[len(r.mappings) - 1]
    assert last.va == paging.MAX_LEAVES * 4096 - 4096 and cut.offset == t.table(3) + 511 * 8
    assert f"the budget is {paging.MAX_LEAVES:,} leaves" in cut.message


def test_table_visits_are_bounded_when_shared_tables_hold_no_leaf():
    t = Tables(4)
    for i in range(512):
        for n in range(3):
            t.set(t.table(n), i, t.table(n + 1) | P | RW)
    r = scan(t.memory(), t.table(0))
    assert r.leaf_count == 0 and r.tables_read == 4 and r.visits == paging.MAX_TABLE_VISITS + 1
    (cut,) = [p for p in r.problems if p.severity.value != "info"]
    assert f"the budget is {paging.MAX_TABLE_VISITS:,} table visits" in cut.message
    assert cut.offset == t.table(3)


def test_scan_then_leaves_streams_what_walk_keeps_in_va_order():
    t = Tables(6)
    pml4, pdpt, pd, pt = t.table(0), t.table(1), t.table(2), t.table(3)
    t.set(pml4, 0, pdpt | P | RW)
    t.set(pml4, 300, pdpt | P | RW | NX)       # upper half: sign-extended VAs sort after the lower
    t.set(pdpt, 0, 0x40000000 | P | RW | PS)   # a leaf before the pointer at index 1
    t.set(pdpt, 1, pd | P | RW)
    t.set(pdpt, 2, 0x80000000 | P | PS)        # and one after it
    t.set(pd, 5, pt | P | RW)
    t.set(pd, 4, 0x800000 | P | RW | PS)
    for i in range(3):
        t.set(pt, i, (0x9000 + i * 0x1000) | P | RW | (US if i == 1 else 0))
    whole = walk(t.memory(), pml4)
    s = scan(t.memory(), pml4)
    assert s.mappings is None and s.leaf_count == whole.leaf_count == 2 * (2 + 1 + 3)
    assert s.leaf_counts == {3: 4, 2: 2, 1: 6} and s.mapped_bytes == whole.mapped_bytes
    streamed = [m for chunk in s.leaves() for m in chunk]
    assert streamed == list(whole.mappings)
    vas = [m.va for m in streamed]
    assert vas == sorted(vas) and vas[0] == 0 and vas[-1] == 0xFFFF960080000000
    assert [m.va for chunk in s.leaves(limit=4) for m in chunk] == vas[:4]
    ranges = merge(whole.mappings)
    assert list(paging.iter_ranges(s.leaves())) == ranges
    # No U/S in the PML4E: every leaf is supervisor, so the PT's leaves continue the 2 MiB one.
    assert [(r.va, r.size, r.pages) for r in ranges][:3] == [(0, 1 << 30, 1), (0x40800000, (1 << 21) + 0x3000, 4),
                                                             (0x80000000, 1 << 30, 1)]


def test_leaf_json_texts_equal_the_mapping_nodes_json():
    t = Tables(4)
    t.set(t.table(0), 0, t.table(1) | P | RW | US)
    t.set(t.table(1), 0, t.table(2) | P | RW | US)
    t.set(t.table(1), 1, (1 << 47) | 0x40000000 | P | PS | 0x1000 | (5 << 59))  # PAT, PKEY 5, shared
    t.set(t.table(2), 0, t.table(3) | P | RW | US | NX)
    t.set(t.table(2), 1, 0x200000 | P | RW | PS | PWT | G | D)
    t.set(t.table(3), 7, 0x7000 | P | US | PCD | A | PS)
    cfg = PagingConfig(maxphyaddr=52, shared_bit=47, pke=True)
    r = walk(t.memory(), t.table(0), cfg)
    assert len(r.mappings) == 3
    texts = list(paging.mapping_json_texts(r.mappings))
    assert texts == [json.dumps(mapping_node(m).to_json(), separators=(",", ":")) for m in r.mappings]


def test_pwt_is_bit_3_and_pcd_bit_4_of_the_leaf():
    # SDM vol. 3A 4.5, tables 4-19 (PDE mapping 2 MiB) and 4-20 (PTE): bit 3 PWT, bit 4 PCD.
    t = Tables(4)
    t.set(t.table(0), 0, t.table(1) | P | RW)
    t.set(t.table(1), 0, t.table(2) | P | RW)
    t.set(t.table(2), 0, t.table(3) | P | RW)
    t.set(t.table(2), 1, 0x200000 | P | RW | PS | (1 << 3))     # 2 MiB, write-through only
    t.set(t.table(3), 0, 0x5000 | P | RW | (1 << 4))           # 4 KiB, cache-disable only
    r = walk(t.memory(), t.table(0))
    small, large = list(r.mappings)
    assert (small.va, small.flags()["WriteThrough"], small.flags()["CacheDisable"]) == (0, False, True)
    assert (large.va, large.flags()["WriteThrough"], large.flags()["CacheDisable"]) == (0x200000, True, False)
    # QEMU's info tlb letters (target/i386/monitor.c print_pte): C for PCD, T for PWT.
    assert (small.qemu_tlb_flags(), large.qemu_tlb_flags()) == ("-----C--W", "--P---T-W")
    fast = [json.loads(x) for x in paging.mapping_json_texts(r.mappings)]
    assert [{f["name"]: f["value"] for f in n["fields"]}["WriteThrough"] for n in fast] == [False, True]


def test_nx_in_a_non_leaf_entry_makes_every_leaf_below_it_execute_disabled():
    # SDM vol. 3A 4.6.1: with IA32_EFER.NXE = 1, an access is execute-disabled if XD (bit 63) is
    # set in any paging-structure entry used to translate it, not only in the leaf.
    t = Tables(5)
    pml4, pdpt, pd, pt = t.table(0), t.table(1), t.table(2), t.table(3)
    t.set(pml4, 0, pdpt | P | RW)
    t.set(pml4, 1, t.table(4) | P | RW | NX)          # XD in the PML4E only
    t.set(t.table(4), 0, 0x40000000 | P | RW | PS)    # its 1 GiB leaf has no XD
    t.set(pdpt, 0, pd | P | RW | NX)                  # XD in the PDPTE only
    t.set(pd, 0, pt | P | RW)
    t.set(pd, 1, 0x200000 | P | RW | PS)
    t.set(pt, 0, 0x5000 | P | RW)
    t.set(pdpt, 1, 0x80000000 | P | RW | PS)          # no XD anywhere on its path
    r = walk(t.memory(), pml4)
    got = [(m.va, m.nx, m.flags()["NX"]) for m in r.mappings]
    assert got == [(0, True, True), (0x200000, True, True), (0x40000000, False, False),
                   (1 << 39, True, True)]
    assert [(x.va, x.size, x.nx) for x in merge(r.mappings)] == [(0, 0x1000, True), (0x200000, 1 << 21, True),
                                                                 (0x40000000, 1 << 30, False),
                                                                 (1 << 39, 1 << 30, True)]
    # Without EFER.NXE bit 63 is reserved: the entries carrying it are not followed.
    r = walk(t.memory(), pml4, PagingConfig(nxe=False))
    assert [m.va for m in r.mappings] == [0x40000000]


def test_virtual_memory_reads_across_pages():
    t = Tables(5)
    t.set(t.table(0), 0, t.table(1) | P | RW)
    t.set(t.table(1), 0, t.table(2) | P | RW)
    t.set(t.table(2), 0, t.table(3) | P | RW)
    t.set(t.table(3), 0, t.table(4) | P | RW)        # VA 0x0000 → the 5th table's page
    t.set(t.table(3), 1, t.table(2) | P | RW)        # VA 0x1000 → the PD's page
    t.set(t.table(4), 511, 0x1122334455667788)
    t.set(t.table(2), 0, t.table(3) | P | RW)
    vm = VirtualMemory(t.memory(), t.table(0))
    data = vm.read(0xFF8, 16)
    assert data[:8] == struct.pack("<Q", 0x1122334455667788)
    assert data[8:] == struct.pack("<Q", t.table(3) | P | RW)


def test_table_tree_drills_down_level_by_level_with_each_tables_bytes():
    from decoders.paging import table_tree_node

    t = Tables(4)
    pml4, pdpt, pd = t.table(0), t.table(1), t.table(2)
    t.set(pml4, 0, pdpt | P | RW)
    t.set(pml4, 1, pml4 | P | RW)              # a loop back to the top
    t.set(pdpt, 3, pd | P | RW)
    for i in range(20):
        t.set(pd, i, (i << 21) | P | PS)
    tree = table_tree_node(t.memory(), pml4)
    (top,) = tree.children
    assert top.space.base == pml4 and top.space.data[:8] == struct.pack("<Q", pdpt | P | RW)
    assert [f.name for f in top.fields] == ["PML4E[0]", "PML4E[1]"]
    assert any("loop" in p.message for p in top.problems)
    (pdpt_node,) = top.children
    (pd_node,) = pdpt_node.children
    assert pd_node.title.startswith(f"PDE table at 0x{pd:x} (VA 0xc0000000): 20 present")
    assert len(pd_node.fields) == 8 and pd_node.fields[0].offset == 0 and pd_node.fields[0].size == 8
    assert any("12 more leaf entries" in p.message for p in pd_node.problems)


# Random tables: 6 pages whose present entries point at each other (sharing, loops, every leaf size,
# reserved bits) exercise the two walks, the streamed merge and the leaf JSON against each other.
_ENTRY = st.tuples(st.integers(0, 511), st.integers(0, 5), st.sampled_from([0, P, P | RW, P | RW | US]),
                   st.booleans(), st.booleans(), st.booleans())


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), _ENTRY), max_size=40))
def test_random_tables_stream_what_walk_keeps(entries):
    t = Tables(6)
    for table, (index, target, bits, ps, nx, reserved) in entries:
        value = t.table(target) | bits | (PS if ps else 0) | (NX if nx else 0) | ((1 << 51) if reserved else 0)
        t.set(t.table(table), index, value)
    cfg = PagingConfig(maxphyaddr=48)
    whole = walk(t.memory(), t.table(0), cfg)
    s = scan(t.memory(), t.table(0), cfg)
    streamed = [m for chunk in s.leaves() for m in chunk]
    assert streamed == list(whole.mappings)
    assert [m.va for m in streamed] == sorted(m.va for m in streamed)
    assert s.leaf_count == whole.leaf_count == len(streamed)
    assert [(p.offset, p.message) for p in s.problems] == [(p.offset, p.message) for p in whole.problems]
    ranges = merge(whole.mappings)
    assert list(paging.iter_ranges(s.leaves())) == ranges and s.ranges == len(ranges)
    assert list(s.merged()) == ranges   # kept by the scan: no second walk
    assert list(paging.mapping_json_texts(whole.mappings)) == \
        [json.dumps(mapping_node(m).to_json(), separators=(",", ":")) for m in whole.mappings]
    for m in streamed:   # one entry at a time, translate() reaches the same page
        assert translate(t.memory(), t.table(0), m.va, cfg)[0] == m.pa


def test_a_listing_cut_is_located_at_the_first_leaf_and_range_left_out():
    t = Tables(3)
    t.set(t.table(0), 0, t.table(1) | P | RW)
    t.set(t.table(1), 0, t.table(2) | P | RW)
    for i in range(6):       # six 2 MiB leaves; R/W alternates every two, so three ranges
        t.set(t.table(2), i, (i << 21) | P | PS | (RW if i // 2 % 2 == 0 else 0))
    r = scan(t.memory(), t.table(0), listed=(2, 5))
    assert r.unlisted == {("leaves", 2): [2 << 21, t.table(2) + 16, 4], ("ranges", 2): [4 << 21, t.table(2) + 32, 1],
                          ("leaves", 5): [5 << 21, t.table(2) + 40, 1]}
    assert not paging.summary_node(r, listed="ranges", limit=5).problems
    node = paging.summary_node(r, listed="ranges", limit=2)
    (p,) = node.problems
    assert (p.offset, p.severity.value) == (t.table(2) + 32, "warning")
    assert p.message == ("1 more ranges from VA 0x800000 (entry at 0x102020) not listed; "
                         "the budget is 2 ranges listed one by one")
    assert [m.va for chunk in r.leaves(2) for m in chunk] == [0, 1 << 21]


def test_a_scan_keeps_few_ranges_and_merges_while_streaming_past_max_held_ranges(monkeypatch):
    t = Tables(4)
    t.set(t.table(0), 0, t.table(1) | P | RW)
    t.set(t.table(1), 0, t.table(2) | P | RW)
    t.set(t.table(1), 1, t.table(3) | P | RW)
    for i in range(512):     # one range over a PD of 2 MiB leaves and the first leaf of the next...
        t.set(t.table(2), i, (i << 21) | P | PS | RW)
    for i in range(512):     # ...then R/W alternating every leaf: 511 more ranges
        t.set(t.table(3), i, (1 << 30) + (i << 21) | P | PS | (RW if i % 2 == 0 else 0))
    whole = merge(walk(t.memory(), t.table(0)).mappings)
    assert len(whole) == 512 and (whole[0].va, whole[0].size, whole[0].pages) == (0, (1 << 30) + (1 << 21), 513)
    s = scan(t.memory(), t.table(0))
    assert s.held_ranges == whole and list(s.merged()) == whole
    monkeypatch.setattr(paging, "MAX_HELD_RANGES", 100)
    s = scan(t.memory(), t.table(0))
    assert s.held_ranges is None and s.ranges == 512 and list(s.merged()) == whole


def test_problems_past_the_budget_end_in_one_count():
    from decoders import budget

    t = Tables(3)
    t.set(t.table(0), 0, t.table(1) | P | RW)
    t.set(t.table(0), 1, t.table(2) | P | RW)
    for i in range(20):      # bit 51 above MAXPHYADDR 48 is reserved (SDM 4.5.4): 40 entries fault
        t.set(t.table(1), i, (1 << 51) | P | RW)
        t.set(t.table(2), i, (1 << 51) | P | RW)
    with budget.scope(budget.Limits(problems=5)):
        r = walk(t.memory(), t.table(0), PagingConfig(maxphyaddr=48))
    assert [p.offset for p in r.problems[:5]] == [t.table(1) + 8 * i for i in range(5)]
    assert r.problems[-1].message == "27 more problems in the walk not listed; the budget is 5 problems"
    assert len(r.problems) == 6


# -- 5-level paging: 57-bit addresses, both canonical halves (Intel SDM vol. 3A 4.5; vol. 1 3.3.7.1) --
class CountingMemory(BytesMemory):
    """BytesMemory that counts reads: a non-canonical address must read no table."""

    reads = 0

    def read(self, address: int, size: int) -> bytes:
        self.reads += 1
        return super().read(address, size)


def chain(t: Tables, top: int, indexes: tuple[int, ...], leaf: int, tables: list[int]) -> None:
    """Entries from table `top` down: entry indexes[0] of `top` points at tables[0], and so on; the
    last index holds `leaf` (SDM 4.5: bits 51:12 the next table, P and R/W set)."""
    for index, nxt in zip(indexes, tables):
        t.set(top, index, nxt | P | RW)
        top = nxt
    t.set(top, indexes[-1], leaf)


def five_level_tables() -> Tables:
    """A PML5 (table 0) with four trees, built from the SDM 4.5 entry layouts:
    - PML5E[1] PML4E[0] PDPTE[0]: 1 GiB page 0x40000000 at VA 0x0001000000000000, a lower-half
      address above 2^48 (no 4-level VA reaches it);
    - PML5E[255] PML4E[511] PDPTE[511] PDE[511] PTE[511]: page 0x7000 at 0x00FFFFFFFFFFF000, the
      last page of the lower half;
    - PML5E[256] PML4E[0] PDPTE[0] PDE[0] PTE[0]: page 0x8000 at 0xFF00000000000000, the first page
      of the upper half (index 256 sets VA bit 56, copied into bits 63:57);
    - PML5E[510] PML4E[3] PDPTE[5] PDE[7] PTE[9]: page 0xABC000 (accessed, dirty) at
      0xFFFE018140E09000."""
    t = Tables(15)
    chain(t, t.table(0), (1, 0, 0), 0x40000000 | P | RW | PS, [t.table(1), t.table(2)])
    chain(t, t.table(0), (255, 511, 511, 511, 511), 0x7000 | P | RW, [t.table(n) for n in (3, 4, 5, 6)])
    chain(t, t.table(0), (256, 0, 0, 0, 0), 0x8000 | P | RW, [t.table(n) for n in (7, 8, 9, 10)])
    chain(t, t.table(0), (510, 3, 5, 7, 9), 0xABC000 | P | RW | A | D, [t.table(n) for n in (11, 12, 13, 14)])
    return t


LA57 = PagingConfig(la57=True)


def test_translate_reaches_the_upper_half_through_pml5_index_bits_56_48():
    t = five_level_tables()
    pa, steps = translate(t.memory(), t.table(0), 0xFFFE018140E09123, LA57)
    assert pa == 0xABC123
    assert steps == [f"PML5E[510] at 0x{t.table(0) + 510 * 8:x} = 0x{t.table(11) | P | RW:016x}",
                     f"PML4E[3] at 0x{t.table(11) + 3 * 8:x} = 0x{t.table(12) | P | RW:016x}",
                     f"PDPTE[5] at 0x{t.table(12) + 5 * 8:x} = 0x{t.table(13) | P | RW:016x}",
                     f"PDE[7] at 0x{t.table(13) + 7 * 8:x} = 0x{t.table(14) | P | RW:016x}",
                     f"PTE[9] at 0x{t.table(14) + 9 * 8:x} = 0x{0xABC000 | P | RW | A | D:016x}"]


def test_translate_a_lower_half_address_above_2_48():
    t = five_level_tables()
    assert translate(t.memory(), t.table(0), 0x0001000000005678, LA57) == \
        (0x40005678, [f"PML5E[1] at 0x{t.table(0) + 8:x} = 0x{t.table(1) | P | RW:016x}",
                      f"PML4E[0] at 0x{t.table(1):x} = 0x{t.table(2) | P | RW:016x}",
                      f"PDPTE[0] at 0x{t.table(2):x} = 0x{0x40000000 | P | RW | PS:016x}"])
    # PML5E[2] is not present: an answer, not an error
    assert translate(t.memory(), t.table(0), 0x0002000000000000, LA57) == \
        (None, [f"PML5E[2] at 0x{t.table(0) + 16:x} = 0x0000000000000000", "not present"])


@pytest.mark.parametrize("va, la57", [(0x0100000000000000, True), (0xFE00000000000000, True),
                                      (0x0000800000000000, False), (0xFFFE018140E09123, False)])
def test_a_non_canonical_address_reads_no_table_and_says_why(va, la57):
    t = five_level_tables()
    mem = CountingMemory(bytes(t.buf), BASE)
    pa, steps = translate(mem, t.table(0), va, PagingConfig(la57=la57))
    bits = 57 if la57 else 48
    assert pa is None and mem.reads == 0
    assert steps == [f"0x{va:016x} is not canonical for {5 if la57 else 4}-level paging: bits 63:{bits} must all "
                     f"equal bit {bits - 1} (lower half 0x0-0x{(1 << (bits - 1)) - 1:x}, upper half from "
                     f"0x{'ff00000000000000' if la57 else 'ffff800000000000'})"]


def test_bit_47_is_an_ordinary_address_bit_with_la57():
    # 0x0000800000000000 is non-canonical with 4-level paging, a lower-half address with 5-level:
    # PML5E[0] (not present here), not a canonical-form refusal.
    t = five_level_tables()
    assert translate(t.memory(), t.table(0), 0x0000800000000000, LA57) == \
        (None, [f"PML5E[0] at 0x{t.table(0):x} = 0x0000000000000000", "not present"])


def test_five_level_leaves_as_qemu_info_tlb_prints_them():
    # target/i386/monitor.c (QEMU 7.2) tlb_info_la57 -> print_pte: the VA sign-extended at bit 56
    # (addr_canonical), the leaf's address, then the flags X G P D A C T U W.
    t = five_level_tables()
    r = walk(t.memory(), t.table(0), LA57)
    lines = [f"{m.va:016x}: {m.pa:016x} {m.qemu_tlb_flags()}" for m in r.mappings]
    assert lines == ["0001000000000000: 0000000040000000 --P-----W",
                     "00fffffffffff000: 0000000000007000 --------W",
                     "ff00000000000000: 0000000000008000 --------W",
                     "fffe018140e09000: 0000000000abc000 ---DA---W"]
    assert r.tables_read == 15 and not r.problems
    # Each VA the walk lists translates, one address at a time, to the same page.
    for m in r.mappings:
        assert translate(t.memory(), t.table(0), m.va + 0x10, LA57)[0] == m.pa + 0x10


def test_virtual_space_lays_out_both_canonical_halves_without_holding_them():
    from decoders.paging_translate import VirtualSpace, virtual_space

    t = five_level_tables()
    page = {0x7000: b"\x11" * 0x1000, 0x8000: b"\x22" * 0x1000, 0xABC000: b"ABCD" * 0x400,
            0x40000000: b"\x33" * 0x1000}
    phys = paging_memory(t, page)
    space = virtual_space(phys, t.table(0), LA57)
    assert isinstance(space, VirtualSpace) and len(space.data) == 1 << 57 and space.base == 0
    # offset = VA in the lower half; the upper half follows it from offset 2^56 (VA bit 56 sign-extended)
    assert space.address_of(0x00FFFFFFFFFFF000) == 0x00FFFFFFFFFFF000
    assert space.address_of(1 << 56) == 0xFF00000000000000
    assert space.address_of((1 << 57) - 1) == 0xFFFFFFFFFFFFFFFF
    assert space.offset_of(0xFFFE018140E09000) == 0x01FE018140E09000
    assert space.offset_of(0x0100000000000000) is None and space.offset_of(0xFE00000000000000) is None
    data = space.data
    assert data[0x01FE018140E09000:0x01FE018140E09008] == b"ABCDABCD"
    assert data[0x0001000000000000:0x0001000000000004] == b"\x33" * 4     # above 2^48, lower half
    # A row across the middle: the lower half's last bytes, then the upper half's first ones.
    assert data[(1 << 56) - 4:(1 << 56) + 4] == b"\x11" * 4 + b"\x22" * 4
    assert data[0x1000:0x1010] == b""                                      # not mapped: blank
    # A slice of the whole space is refused (blank), not gathered: the read bound of every Memory.
    from decoders.memory import MAX_READ, Unreadable
    assert data[0:1 << 57] == b""
    with pytest.raises(Unreadable, match="refused"):      # one VA range, past the bound
        space.data.memory.virtual.read(0x0001000000000000, MAX_READ + 1)
    with pytest.raises(Unreadable, match="refused"):      # across the middle: two reads within it, not their sum
        space.data.memory.read((1 << 56) - MAX_READ // 2 - 1, MAX_READ + 2)
    # 4-level: 2^48 offsets, the upper half from 2^47 = 0xFFFF800000000000
    four = virtual_space(phys, t.table(0), PagingConfig())
    assert len(four.data) == 1 << 48 and four.address_of(1 << 47) == 0xFFFF800000000000
    assert four.offset_of(0xFFFF800000001000) == (1 << 47) + 0x1000 and four.offset_of(1 << 47) is None


def paging_memory(t: Tables, pages: dict[int, bytes]):
    from decoders.memory import RegionMemory

    return RegionMemory([(BASE, bytes(t.buf)), *pages.items()])


@pytest.mark.parametrize("cr0, cr4, efer, levels, nxe", [
    (0x80000033, 0x1660, 0x500, 5, False),     # OVMF's SEC with LA57 (CR4 bit 12), EFER.NXE clear
    (0x80010033, 0x1668, 0xD00, 5, True),      # its DXE: NXE (EFER bit 11) set
    (0x80000033, 0x0660, 0xD00, 4, True),      # CR4.LA57 clear: 4-level
    (0x00000033, 0x1660, 0x500, None, None),   # CR0.PG clear: no paging
    (0x80000033, 0x1640, 0x500, None, None),   # CR4.PAE clear: not IA-32e paging
    (0x80000033, 0x1660, 0x100, None, None),   # EFER.LMA clear (LME only): not IA-32e paging
])
def test_cpu_paging_config_from_registers(cr0, cr4, efer, levels, nxe):
    cfg = paging.cpu_paging_config(cr0, cr4, efer)
    if levels is None:
        assert cfg is None
    else:
        assert (cfg.levels, cfg.nxe) == (levels, nxe)


def test_cpu_page_tables_node_walks_5_level_with_la57():
    t = five_level_tables()
    node = paging.cpu_page_tables_node(t.memory(), 0x80000033, t.table(0), 0x1660, 0x500)
    assert node.get("Levels") == 5 and node.get("Leaves") == 4 and node.get("TablesRead") == 15
    assert [c.get("VirtualAddress") for c in node.children] == \
        [0x0001000000000000, 0x00FFFFFFFFFFF000, 0xFF00000000000000, 0xFFFE018140E09000]
    assert paging.cpu_page_tables_node(t.memory(), 0x33, t.table(0), 0x1660, 0x500) is None
