"""Hostile HOB lists: mutations of the td-shim TD HOB fuzz seed (tests/data/hob/td-shim).

Whatever the mutation (zero, huge or overlong HobLength, chains past the buffer, flipped types,
truncation, garbage payloads), decoding gives located problems, never an exception, in bounded time.
"""
from __future__ import annotations

import json
import struct
import time

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
    UNUSED HOBs without END: both finish fast with a problem."""
    long_guid = bytearray(seed)
    struct.pack_into("<HH", long_guid, 56, 4, 0xFFF8)
    chain = struct.pack("<HHI", 0xFFFE, 8, 0) * (64 * 1024 // 8)
    start = time.monotonic()
    for data in (bytes(long_guid), chain):
        root = decode_hob_list(data)
        assert root.problems or root.children[-1].problems
    assert time.monotonic() - start < 5
