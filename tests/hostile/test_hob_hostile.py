"""Hostile HOB lists, each run as a whole `fwinspect hob` process (README, "Budgets").

Layouts from the PI spec vol. 3, 5.2 / 5.5 (edk2 MdePkg/Include/Pi/PiHob.h): EFI_HOB_GENERIC_HEADER
{HobType u16, HobLength u16, Reserved u32}; EFI_HOB_RESOURCE_DESCRIPTOR adds Owner GUID,
ResourceType u32, ResourceAttribute u32, PhysicalStart u64, ResourceLength u64 (48 bytes);
EFI_HOB_MEMORY_ALLOCATION adds {Name GUID, MemoryBaseAddress u64, MemoryLength u64, MemoryType u32,
Reserved[4]} (48 bytes); END_OF_HOB_LIST is type 0xFFFF.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from tests.hostile.harness import build_inputs, run_fwinspect

MEMORY_ALLOCATION, RESOURCE_DESCRIPTOR, UNUSED, END = 2, 3, 0xFFFE, 0xFFFF
SYSTEM_MEMORY, RESERVED = 0, 5
END_HOB = struct.pack("<HHI", END, 8, 0)


def resource(start: int, length: int, rtype: int = SYSTEM_MEMORY, attrs: int = 7) -> bytes:
    return struct.pack("<HHI16sIIQQ", RESOURCE_DESCRIPTOR, 48, 0, bytes(16), rtype, attrs, start, length)


def allocation(base: int, length: int, mtype: int = 4) -> bytes:
    return struct.pack("<HHI16sQQI4s", MEMORY_ALLOCATION, 48, 0, bytes(16), base, length, mtype, bytes(4))


def small_hobs(path: Path, count: int = 16_000) -> Path:
    """`count` 8-byte EFI_HOB_TYPE_UNUSED HOBs then END."""
    path.write_bytes(struct.pack("<HHI", UNUSED, 8, 0) * count + END_HOB)
    return path


def many_small_hobs(path: Path) -> Path:
    """As many 8-byte HOBs as fit the 4 MiB list limit, past the HOB count cap."""
    return small_hobs(path, (4 << 20) // 8 - 1)


def overlapping_resources(path: Path, count: int = 16_000) -> Path:
    """`count` resource descriptors over the same 1 GiB: each overlaps all the others."""
    path.write_bytes(resource(0, 1 << 30) * count + END_HOB)
    return path


def nested_resources(path: Path, count: int = 16_000) -> Path:
    """Descriptors nested inside each other, alternating type: no two merge, every one overlaps."""
    hobs = b"".join(resource(i << 12, (count - i) << 13, SYSTEM_MEMORY if i % 2 else RESERVED)
                    for i in range(count))
    path.write_bytes(hobs + END_HOB)
    return path


def unplaced_allocations(path: Path, count: int = 8_000) -> Path:
    """`count` small disjoint resource ranges and `count` allocations above all of them: placing
    each allocation must not scan every range below it."""
    ranges = b"".join(resource(i << 13, 1 << 12, SYSTEM_MEMORY if i % 2 else RESERVED) for i in range(count))
    allocs = b"".join(allocation((count << 13) + (i << 12), 1 << 12) for i in range(count))
    path.write_bytes(ranges + allocs + END_HOB)
    return path


CASES = {
    "small-16k": small_hobs,
    "small-4mib": many_small_hobs,
    "overlapping-16k": overlapping_resources,
    "nested-16k": nested_resources,
    "unplaced-8k": unplaced_allocations,
}
MODES = {"tree": [], "json": ["--json"]}


def command(path: Path, mode: str) -> list:
    return ["hob", path, *MODES[mode]]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return build_inputs(tmp_path_factory, "hob", CASES, ".bin")


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_hob_list_whole_process(inputs, case, mode):
    run_fwinspect(command(inputs[case], mode), stdout_to=Path(os.devnull)).check()
