"""Hostile HOB lists: mutations of the td-shim TD HOB fuzz seed (tests/data/hob/td-shim).

Whatever the mutation (zero, huge or overlong HobLength, chains past the buffer, flipped types,
truncation, garbage payloads), decoding gives located problems, never an exception. Lists of many
HOBs check the memory map's sweep and its bounded notes and the node budget. (Times are measured in
benchmarks/hostile.py, not asserted here.)
"""
from __future__ import annotations

import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decoders.errors import DecodeError
from decoders.hob import decode_hob_list, lint_td_hob, memory_map, memory_map_node, td_hob_digest
from decoders.memory import BytesMemory
from tests.realdata import fixture

SEED_HOBS = [(off, 48) for off in range(56, 56 + 9 * 48, 48)]  # the 9 resource descriptors after the PHIT


@pytest.fixture(scope="module")
def seed() -> bytes:
    return fixture("hob/td-shim/hob_buffer.bin").read_bytes()


HOB_STARTS = [0] + [off for off, _ in SEED_HOBS] + [56 + 9 * 48]

mutation = st.one_of(
    st.tuples(st.just("length"), st.sampled_from(HOB_STARTS),
              st.sampled_from([0, 1, 7, 8, 9, 23, 40, 47, 0x200, 0x7FF8, 0xFFFF]) | st.integers(0, 0xFFFF)),
    st.tuples(st.just("type"), st.sampled_from(HOB_STARTS),
              st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xA, 0xB, 0xC, 0xFFFE, 0xFFFF])
              | st.integers(0, 0xFFFF)),
    st.tuples(st.just("truncate"), st.integers(0, 496), st.just(0)),
    st.tuples(st.just("byte"), st.integers(0, 495), st.integers(0, 255)),
    st.tuples(st.just("append"), st.integers(0, 64), st.integers(0, 255)),
)


def mutate(data: bytes, steps) -> bytes:
    out = bytearray(data)
    for kind, where, value in steps:
        if kind == "length" and where + 4 <= len(out):
            struct.pack_into("<H", out, where + 2, value)
        elif kind == "type" and where + 2 <= len(out):
            struct.pack_into("<H", out, where, value)
        elif kind == "truncate":
            del out[where:]
        elif kind == "byte" and where < len(out):
            out[where] = value
        elif kind == "append":
            out += bytes([value]) * where
    return bytes(out)


def check(data: bytes) -> None:
    for root in (decode_hob_list(data), decode_hob_list(BytesMemory(data, 0x809000), 0x809000)):
        problems = [p for _, p in root.all_problems()]
        ends = bool(root.children) and root.children[-1].get("HobType") == 0xFFFF \
            and not root.children[-1].problems
        if not ends:
            assert problems, "a list without END must say so"
        for p in problems:
            assert p.offset is not None and 0 <= p.offset <= len(data), p
        assert root.size <= len(data)
        lint_td_hob(root)
        memory_map_node(memory_map(root))
        json.dumps(root.to_json())
    try:
        assert len(td_hob_digest(data)) == 48
    except DecodeError as e:
        assert e.offset is not None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(mutation, min_size=1, max_size=6))
def test_hob_fuzz_mutated_td_hob_gives_located_problems(seed, steps):
    check(mutate(seed, steps))


@settings(max_examples=50, deadline=None)
@given(blob=st.binary(max_size=600))
def test_hob_fuzz_random_bytes_never_raise(blob):
    check(blob)


def test_hob_fuzz_worst_case_is_bounded(seed):
    """Every HOB made a 0xFFFF-byte GUID HOB chaining past the buffer, and a 64 KiB chain of 8-byte
    UNUSED HOBs without END: both end with a problem."""
    long_guid = bytearray(seed)
    struct.pack_into("<HH", long_guid, 56, 4, 0xFFF8)
    chain = struct.pack("<HHI", 0xFFFE, 8, 0) * (64 * 1024 // 8)
    for data in (bytes(long_guid), chain):
        root = decode_hob_list(data)
        assert root.problems or root.children[-1].problems


# -- many HOBs: the memory map's sweep, its notes and the node budget -------------------------------
# Layouts from PI vol. 3, 5.5 (edk2 MdePkg/Include/Pi/PiHob.h): EFI_HOB_RESOURCE_DESCRIPTOR is the
# generic header {HobType u16, HobLength u16, Reserved u32}, Owner GUID, ResourceType u32,
# ResourceAttribute u32, PhysicalStart u64, ResourceLength u64 (48 bytes); EFI_HOB_MEMORY_ALLOCATION
# is the header, Name GUID, MemoryBaseAddress u64, MemoryLength u64, MemoryType u32, Reserved[4].

END_HOB = struct.pack("<HHI", 0xFFFF, 8, 0)


def resource(start: int, length: int, rtype: int = 0) -> bytes:
    return struct.pack("<HHI16sIIQQ", 3, 48, 0, bytes(16), rtype, 7, start, length)


def allocation(base: int, length: int) -> bytes:
    return struct.pack("<HHI16sQQI4s", 2, 48, 0, bytes(16), base, length, 4, bytes(4))


def test_allocations_go_to_the_latest_starting_range_holding_them():
    # Ranges: A [0, 1 MiB), B [0x1000, 0x3000) inside A, C [2 MiB, 3 MiB), then D [0x800000, ...).
    hobs = [resource(0, 1 << 20), resource(0x1000, 0x2000, 5), resource(2 << 20, 1 << 20, 1),
            resource(0x800000, 0x1000),
            allocation(0x1800, 0x100),       # in B (latest start holding it) though A holds it too
            allocation(0x4000, 0x1000),      # B has ended: back in A
            allocation(0x180000, 0x1000),    # between A and C: in no range
            allocation(0x200000 + 0xFF000, 0x2000),  # in C, runs past its end
            allocation(0x900000, 0x1000)]    # above every range
    root = decode_hob_list(b"".join(hobs) + END_HOB)
    mm = memory_map(root)
    placed = {(r.start, r.end): [(a.start, a.length) for a in r.allocations] for r in mm.ranges}
    assert placed == {(0, 1 << 20): [(0x4000, 0x1000)], (0x1000, 0x3000): [(0x1800, 0x100)],
                      (2 << 20, 3 << 20): [(0x2FF000, 0x2000)], (0x800000, 0x801000): []}
    assert [(a.start, a.length) for a in mm.unplaced] == [(0x180000, 0x1000), (0x900000, 0x1000)]
    # B overlaps A; the allocation in C runs past C's end.
    assert [(p.offset, p.severity.value) for p in mm.problems] == [(48, "error"), (48 * 7, "warning")]


def test_overlap_notes_stop_at_max_map_notes_with_one_closing_count():
    from decoders.hob.memmap import MAX_MAP_NOTES

    count = MAX_MAP_NOTES + 50
    root = decode_hob_list(resource(0, 1 << 30) * count + END_HOB)
    mm = memory_map(root)
    assert len(mm.problems) == MAX_MAP_NOTES + 1
    assert mm.problems[0].offset == 48 and "overlaps" in mm.problems[0].message
    assert mm.problems[-1].message == (f"{count - 1 - MAX_MAP_NOTES:,} more overlaps and overruns not listed; "
                                       f"the budget is {MAX_MAP_NOTES:,} notes on the memory map")


def test_hobs_past_the_node_budget_are_a_located_problem():
    from decoders import budget

    data = struct.pack("<HHI", 0xFFFE, 8, 0) * 100 + END_HOB
    with budget.scope(budget.Limits(nodes=40)):
        root = decode_hob_list(data)
    assert len(root.children) == 40 and root.get("HobCount") == 101
    (p,) = root.problems
    assert p.offset == 40 * 8 and p.message == "61 more HOBs not shown; the budget is 40 nodes"


def test_td_hob_findings_past_the_problem_budget_are_counted_on_the_list():
    from decoders import budget

    data = struct.pack("<HHI", 0xFFFE, 8, 0) * 30 + END_HOB
    with budget.scope(budget.Limits(problems=10)):
        root = decode_hob_list(data)
        found = lint_td_hob(root)
    # The first HOB is no PHIT, and each of the 30 UNUSED HOBs is a type TDVF rejects: 31 findings.
    assert len(found) == 11 and found[0].offset == 0 and "PHIT" in found[0].message
    assert (found[-1].offset, found[-1].message) == (None, "21 more TD HOB findings not listed; "
                                                           "the budget is 10 problems")
    assert root.problems[-1] is found[-1]
