"""HOB list decode, memory map, TD HOB lint and digest (PI spec vol. 3 ch. 5, edk2
MdePkg/Include/Pi/PiHob.h; TDVF's ValidateHobList in edk2 OvmfPkg/IntelTdx/TdxHelperLib/SecTdxHelper.c).

Evidence: the td-shim TD HOB fuzz seed (tests/data/hob/td-shim), read here with plain
struct.unpack and an independent walk; a TD HOB laid out as QEMU's hw/i386/tdvf-hob.c builds it;
and (live) the DXE HOB list of Debian's OVMF booted under QEMU.
"""
from __future__ import annotations

import hashlib
import json
import mmap
import socket
import struct
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from decoders.errors import DecodeError
from decoders.hob import decode_hob_list, lint_td_hob, memory_map, memory_map_node, td_hob_digest
from decoders.memory import BytesMemory, Unreadable
from decoders.model import Severity, Space
from tests.realdata import bookworm, fixture, tool

TD_SHIM = "hob/td-shim/hob_buffer.bin"
ENCRYPTED_PIT = 0x04000007  # ENCRYPTED|TESTED|INITIALIZED|PRESENT, as in td-shim's hob_buffer.bin
MMIO_ATTR = 0x403  # UNCACHEABLE|INITIALIZED|PRESENT


def plain_walk(data: bytes, start: int = 0) -> list[tuple[int, int, int]]:
    """(offset, HobType, HobLength) of each HOB up to and including END, written plainly."""
    out, off = [], start
    while off + 8 <= len(data):
        htype, hlen = struct.unpack_from("<HH", data, off)
        out.append((off, htype, hlen))
        if htype == 0xFFFF or hlen == 0:
            break
        off += hlen
    return out


def errors(problems):
    return [p for p in problems if p.severity is Severity.ERROR]


@pytest.fixture(scope="module")
def td_shim() -> bytes:
    return fixture(TD_SHIM).read_bytes()


# ---- the td-shim TD HOB ------------------------------------------------------------------------------

def test_hob_td_shim_walk_matches_plain_walk(td_shim):
    expected = plain_walk(td_shim)
    assert expected[0][1] == 1 and expected[-1][1] == 0xFFFF  # PHIT first, END last
    root = decode_hob_list(td_shim)
    got = [(c.offset, c.get("HobType"), c.get("HobLength")) for c in root.children]
    assert got == expected
    assert root.kind == "hob-list" and all(c.kind == "hob" for c in root.children)
    assert not list(root.all_problems())
    assert root.size == expected[-1][0] + 8 == len(td_shim)


def test_hob_td_shim_phit_fields_match_bytes(td_shim):
    version, boot_mode, *addrs = struct.unpack_from("<II5Q", td_shim, 8)
    phit = decode_hob_list(td_shim).children[0]
    assert phit.field("HobType").display == "HANDOFF"
    assert (phit.get("Version"), phit.get("BootMode")) == (version, boot_mode) == (9, 0)
    names = ["EfiMemoryTop", "EfiMemoryBottom", "EfiFreeMemoryTop", "EfiFreeMemoryBottom", "EfiEndOfHobList"]
    assert [phit.get(n) for n in names] == addrs
    assert phit.field("EfiEndOfHobList").offset == 48
    # QEMU hw/i386/tdvf-hob.c: EfiEndOfHobList points just past END, i.e. at the list's (page-aligned) base + size.
    assert (addrs[-1] - len(td_shim)) % 0x1000 == 0


def test_hob_td_shim_resource_descriptors_match_bytes(td_shim):
    root = decode_hob_list(td_shim)
    resources = [c for c in root.children if c.get("HobType") == 3]
    assert len(resources) == 9
    for hob in resources:
        rtype, attr, start, length = struct.unpack_from("<IIQQ", td_shim, hob.offset + 24)
        assert (hob.get("ResourceType"), hob.get("ResourceAttribute"), hob.get("PhysicalStart"),
                hob.get("ResourceLength")) == (rtype, attr, start, length)
        assert hob.get("Owner") == uuid.UUID(bytes_le=td_shim[hob.offset + 8:hob.offset + 24])
        assert attr == (MMIO_ATTR if rtype == 1 else ENCRYPTED_PIT)
        assert hob.field("ResourceAttribute").offset == hob.offset + 28
        assert hob.get("Range") == (start, start + length)
    types = {c.get("ResourceType"): c for c in resources}
    assert set(types) == {0, 1, 5}
    assert types[0].field("ResourceType").display == "SYSTEM_MEMORY"
    assert types[5].field("ResourceType").display == "MEMORY_RESERVED"
    assert types[0].field("ResourceAttribute").display == "PRESENT|INITIALIZED|TESTED|ENCRYPTED"
    assert types[1].field("ResourceAttribute").display == "PRESENT|INITIALIZED|UNCACHEABLE"
    first = resources[0]
    start, length = first.get("PhysicalStart"), first.get("ResourceLength")
    assert first.title == f"RESOURCE_DESCRIPTOR SYSTEM_MEMORY 0x{start:x}-0x{start + length - 1:x} (16 MiB)"
    assert length == 16 << 20


def test_hob_td_shim_digest_is_sha384_up_to_end(td_shim):
    end_offset = plain_walk(td_shim)[-1][0]
    expected = hashlib.sha384(td_shim[:end_offset]).digest()
    assert td_hob_digest(td_shim) == expected
    # Through a Memory at the address the PHIT says the list sits at, and through a Space with a base.
    base = struct.unpack_from("<Q", td_shim, 48)[0] - len(td_shim)
    assert td_hob_digest(BytesMemory(td_shim, base), base) == expected
    assert td_hob_digest(Space("td-hob", td_shim, base=base), base) == expected


def test_hob_td_shim_lint_current_edk2_accepts_it(td_shim):
    root = decode_hob_list(td_shim)
    problems = lint_td_hob(root)
    assert not errors(problems)
    # ENCRYPTED is allowed since edk2 PR #5699; a note says older TDVF rejects it.
    encrypted = [c for c in root.children if c.get("ResourceAttribute") == ENCRYPTED_PIT]
    assert len(problems) == len(encrypted) == 7
    assert {p.offset for p in problems} == {c.offset + 28 for c in encrypted}


def test_hob_td_shim_lint_2022_tdvf_rejects_encrypted(td_shim):
    root = decode_hob_list(td_shim)
    problems = lint_td_hob(root, profile="edk2-stable202211")
    encrypted = [c for c in root.children if c.get("ResourceAttribute") == ENCRYPTED_PIT]
    assert {p.offset for p in errors(problems)} == {c.offset + 28 for c in encrypted}
    assert all("ENCRYPTED" in p.message for p in problems)
    # ... attached to the offending HOB nodes, never to the MMIO ones.
    for c in root.children:
        assert bool(c.problems) == (c in encrypted)


def test_hob_td_shim_memory_map(td_shim):
    mm = memory_map(decode_hob_list(td_shim))
    resources = [struct.unpack_from("<IIQQ", td_shim, off + 24) for off, t, _ in plain_walk(td_shim) if t == 3]
    expected = {}
    for rtype, _, _, length in resources:
        expected[rtype] = expected.get(rtype, 0) + length
    assert mm.totals == {"SYSTEM_MEMORY": expected[0], "MEMORY_RESERVED": expected[5],
                         "MEMORY_MAPPED_IO": expected[1]}
    assert not mm.problems
    # 0xFF042000+0x20000 and 0xFF062000+0x20000 touch with the same type and attributes: merged.
    merged = [r for r in mm.ranges if len(r.hobs) > 1]
    assert [(r.start, r.end) for r in merged] == [(0xFF042000, 0xFF082000)]
    assert len(mm.ranges) == len(resources) - 1
    node = memory_map_node(mm)
    assert node.kind == "memory-map" and {c.kind for c in node.children} == {"memory-range"}
    json.dumps(node.to_json())


# ---- TD HOB as QEMU builds it (hw/i386/tdvf-hob.c) -----------------------------------------------------

TD_HOB_ADDRESS = 0x809000  # PcdOvmfSecGhcbBase in edk2 OvmfPkg/IntelTdx/IntelTdxX64.fdf
TDVF_PRIVATE = 0x7  # EFI_RESOURCE_ATTRIBUTE_TDVF_PRIVATE / _UNACCEPTED in QEMU: PRESENT|INITIALIZED|TESTED
RAM = [  # (address, length, unaccepted?) in the order QEMU's tdx ram_entries list them
    (0x0, 0x800000, True),
    (0x800000, 0xC000, False),  # TEMP_MEM / TD HOB sections: ADDed, already accepted
    (0x80C000, 0x40000000 - 0x80C000, True),
    (0x40000000, 0x40000000, True),  # touches the previous one: the memory map merges them
    (0x100000000, 0x80000000, True),
]


def qemu_td_hob(ram=RAM, address=TD_HOB_ADDRESS) -> bytes:
    resources = b""
    for start, length, unaccepted in ram:
        resources += struct.pack("<HHI16sIIQQ", 3, 48, 0, bytes(16), 7 if unaccepted else 0, TDVF_PRIVATE,
                                 start, length)
    end = struct.pack("<HHI", 0xFFFF, 8, 0)
    end_of_list = address + 56 + len(resources) + len(end)  # tdvf_current_guest_addr() after END
    phit = struct.pack("<HHIII5Q", 1, 56, 0, 9, 0, 0, 0, 0, 0, end_of_list)
    return phit + resources + end


def test_hob_qemu_td_hob_decodes_through_memory():
    blob = qemu_td_hob()
    root = decode_hob_list(BytesMemory(blob, TD_HOB_ADDRESS), TD_HOB_ADDRESS)
    assert not list(root.all_problems())
    assert root.space.base == TD_HOB_ADDRESS and bytes(root.space.data) == blob
    phit, *resources, end = root.children
    assert phit.get("EfiEndOfHobList") == TD_HOB_ADDRESS + len(blob)
    assert end.title == "END_OF_HOB_LIST" and end.address == TD_HOB_ADDRESS + len(blob) - 8
    got = [(r.get("PhysicalStart"), r.get("ResourceLength"), r.field("ResourceType").display) for r in resources]
    assert got == [(a, n, "MEMORY_UNACCEPTED" if u else "SYSTEM_MEMORY") for a, n, u in RAM]
    assert resources[0].title == "RESOURCE_DESCRIPTOR MEMORY_UNACCEPTED 0x0-0x7fffff (8 MiB)"


def test_hob_qemu_td_hob_lint_is_clean_and_digest_excludes_end():
    blob = qemu_td_hob()
    root = decode_hob_list(blob)
    assert lint_td_hob(root, profile="edk2-stable202211") == []
    assert lint_td_hob(root, td_hob_size=len(blob)) == []
    assert td_hob_digest(blob) == hashlib.sha384(blob[:-8]).digest()


def test_hob_qemu_td_hob_memory_map():
    mm = memory_map(decode_hob_list(qemu_td_hob()))
    assert mm.unaccepted_memory == sum(n for _, n, u in RAM if u)
    assert mm.system_memory == sum(n for _, n, u in RAM if not u)
    assert [(r.start, r.end, r.type_name) for r in mm.ranges] == [
        (0x0, 0x800000, "MEMORY_UNACCEPTED"),
        (0x800000, 0x80C000, "SYSTEM_MEMORY"),
        (0x80C000, 0x80000000, "MEMORY_UNACCEPTED"),
        (0x100000000, 0x180000000, "MEMORY_UNACCEPTED"),
    ]
    assert len(mm.ranges[2].hobs) == 2
    node = memory_map_node(mm)
    assert node.get("TotalMEMORY_UNACCEPTED") == mm.unaccepted_memory


def test_hob_memory_map_reports_overlap_and_places_allocations():
    blob = qemu_td_hob([(0x0, 0x200000, False), (0x100000, 0x200000, False)])
    alloc = struct.pack("<HHI16sQQI4s", 2, 48, 0, bytes(16), 0x1000, 0x2000, 4, bytes(4))
    blob = blob[:-8] + alloc + blob[-8:]
    root = decode_hob_list(blob)
    mm = memory_map(root)
    second = root.children[2]
    assert [p.offset for p in mm.problems] == [second.offset]
    assert "overlaps" in mm.problems[0].message
    placed = [a for r in mm.ranges for a in r.allocations]
    assert [(a.start, a.length, a.memory_type) for a in placed] == [(0x1000, 0x2000, 4)]
    assert root.children[3].title == "MEMORY_ALLOCATION EfiBootServicesData 0x1000-0x2fff (8 KiB)"


# ---- lint rules one by one (ValidateHobList) -------------------------------------------------------------

def patched(blob: bytes, offset: int, fmt: str, *values) -> bytes:
    out = bytearray(blob)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


@pytest.mark.parametrize("offset,fmt,value,where,word", [
    (4, "<I", 1, 4, "Reserved"),                       # PHIT header Reserved
    (12, "<I", 0x99, 12, "BootMode"),                 # not a PiBootMode.h value
    (32, "<Q", 0x1234, 32, "EfiFreeMemoryTop"),       # not 4 KiB aligned
    (56 + 24, "<I", 8, 56 + 24, "ResourceType"),      # above MEMORY_UNACCEPTED
    (56 + 28, "<I", 0x10000007, 56 + 28, "HOT_PLUGGABLE"),
    (56 + 4, "<I", 0xdead, 56 + 4, "Reserved"),       # resource descriptor header Reserved
])
def test_hob_lint_flags_each_validatehoblist_rule(offset, fmt, value, where, word):
    root = decode_hob_list(patched(qemu_td_hob(), offset, fmt, value))
    problems = lint_td_hob(root)
    assert [(p.offset, p.severity) for p in problems] == [(where, Severity.ERROR)]
    assert word in problems[0].message
    owner = [c for c in root.children if problems[0] in c.problems]
    assert len(owner) == 1 and owner[0].offset <= where < owner[0].offset + owner[0].size


def insert(blob: bytes, hob: bytes) -> bytes:
    return blob[:56] + hob + blob[56:]


def test_hob_lint_rejects_types_tdvf_does_not_accept():
    for hob in (struct.pack("<HHI16sQQI4s", 2, 48, 0, bytes(16), 0, 0x1000, 4, bytes(4)),  # MEMORY_ALLOCATION
                struct.pack("<HHI8s", 7, 16, 0, bytes(8)),                                  # MEMORY_POOL
                struct.pack("<HHIQQ", 0xB, 24, 0, 0, 0x1000)):                              # UEFI_CAPSULE
        problems = lint_td_hob(decode_hob_list(insert(qemu_td_hob(), hob)))
        assert [p.offset for p in problems] == [56] and "not allowed" in problems[0].message


def test_hob_lint_checks_exact_sizes_and_cpu_reserved():
    fv_long = struct.pack("<HHIQQQ", 5, 32, 0, 0x1000, 0x1000, 0)  # FV with 8 extra bytes
    problems = lint_td_hob(decode_hob_list(insert(qemu_td_hob(), fv_long)))
    assert [p.offset for p in problems] == [58] and "exactly 24" in problems[0].message
    cpu = struct.pack("<HHIBB6s", 6, 16, 0, 48, 16, b"\0\0\x01\0\0\0")
    problems = lint_td_hob(decode_hob_list(insert(qemu_td_hob(), cpu)))
    assert [p.offset for p in problems] == [56 + 10] and "Reserved" in problems[0].message
    guid = struct.pack("<HHI16s8s", 4, 32, 0, uuid.uuid4().bytes_le, bytes(8))  # GUID HOBs are allowed
    assert lint_td_hob(decode_hob_list(insert(qemu_td_hob(), guid))) == []


def test_hob_lint_phit_first_end_last_and_region_size():
    blob = qemu_td_hob()
    no_phit = blob[56:]
    problems = lint_td_hob(decode_hob_list(no_phit))
    assert [p.offset for p in problems] == [0] and "PHIT" in problems[0].message
    no_end = blob[:-8]
    root = decode_hob_list(no_end)
    assert any("END_OF_HOB_LIST" in p.message for p in root.problems)
    assert any("does not end" in p.message for p in lint_td_hob(root))
    problems = lint_td_hob(decode_hob_list(blob), td_hob_size=100)
    assert problems and all("region" in p.message for p in problems)
    with pytest.raises(DecodeError):
        td_hob_digest(no_end)


# ---- malformed lists: located problems, walk stops -------------------------------------------------------

def test_hob_zero_length_stops_walk_with_problem(td_shim):
    root = decode_hob_list(patched(td_shim, 56 + 2, "<H", 0))
    assert len(root.children) == 2
    bad = root.children[1]
    assert [(p.offset, p.severity) for p in bad.problems] == [(58, Severity.ERROR)]
    assert "HobLength is 0" in bad.problems[0].message
    assert any("without an END" in p.message for p in root.problems)


def test_hob_truncated_list_reports_problem(td_shim):
    cut = td_shim[:180]  # inside the HOB at 0x98
    root = decode_hob_list(cut)
    last = root.children[-1]
    assert last.offset == 0x98 and "runs past the end" in last.problems[0].message
    assert any("without an END" in p.message for p in root.problems)


def test_hob_length_shorter_than_struct_stops(td_shim):
    root = decode_hob_list(patched(td_shim, 56 + 2, "<H", 40))
    assert len(root.children) == 2
    assert "shorter than EFI_HOB_RESOURCE_DESCRIPTOR (48 bytes)" in root.children[1].problems[0].message


def test_hob_unknown_type_is_raw_and_walk_continues(td_shim):
    root = decode_hob_list(patched(td_shim, 56, "<H", 0x1234))
    assert [c.get("HobType") for c in root.children][1] == 0x1234
    unknown = root.children[1]
    assert unknown.field("HobType").display == "0x1234 (unknown)"
    assert unknown.problems[0].severity is Severity.INFO
    assert unknown.get("Data") == td_shim[56 + 8:56 + 48]
    assert root.children[-1].title == "END_OF_HOB_LIST" and not root.problems


def test_hob_length_not_multiple_of_8_warns():
    guid = struct.pack("<HHI16s4s", 4, 28, 0, bytes(16), b"abcd")
    root = decode_hob_list(insert(qemu_td_hob(), guid))
    assert [(p.offset, p.severity) for p in root.children[1].problems] == [(58, Severity.WARNING)]
    assert root.children[-1].title == "END_OF_HOB_LIST"


def test_hob_walk_is_bounded():
    chain = struct.pack("<HHI", 0xFFFE, 8, 0) * 100  # UNUSED HOBs, no END
    root = decode_hob_list(chain, max_hobs=10)
    assert len(root.children) == 10 and any("more than 10 HOBs" in p.message for p in root.problems)
    root = decode_hob_list(chain, limit=64)
    assert any("64-byte limit" in p.message for c in root.children for p in c.problems)


class HoleMemory:
    """Readable below `hole`, Unreadable from there: a dump with a gap."""

    def __init__(self, data: bytes, base: int, hole: int):
        self.inner, self.hole = BytesMemory(data, base), hole

    def read(self, address: int, size: int) -> bytes:
        if address + size > self.hole:
            raise Unreadable(address, size, "hole")
        return self.inner.read(address, size)


def test_hob_unreadable_memory_stops_with_problem():
    blob = qemu_td_hob()
    root = decode_hob_list(HoleMemory(blob, TD_HOB_ADDRESS, TD_HOB_ADDRESS + 56 + 48 + 20), TD_HOB_ADDRESS)
    assert [c.get("HobType") for c in root.children] == [1, 3, 3]
    assert "runs past" in root.children[-1].problems[0].message
    root = decode_hob_list(HoleMemory(blob, TD_HOB_ADDRESS, TD_HOB_ADDRESS + 56 + 4), TD_HOB_ADDRESS)
    assert len(root.children) == 1 and root.problems[0].offset == 56 and "unreadable" in root.problems[0].message


def test_hob_fv_cpu_and_module_allocation_fields_by_spec_offset():
    fv_name, file_name, module = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    fv2 = struct.pack("<HHIQQ16s16s", 9, 56, 0, 0x900000, 0xC00000, fv_name.bytes_le, file_name.bytes_le)
    # FV3: FvName at 32 after 3 bytes of C padding (edk2 MdePkg/Include/Pi/PiHob.h, EFI_HOB_FIRMWARE_VOLUME3)
    fv3 = struct.pack("<HHIQQIB3x16s16s", 0xC, 64, 0, 0x900000, 0xC00000, 1, 1, fv_name.bytes_le, file_name.bytes_le)
    cpu = struct.pack("<HHIBB6s", 6, 16, 0, 48, 16, bytes(6))
    stack_guid = uuid.UUID("4ED4BF27-4092-42E9-807D-527B1D00C9BD").bytes_le
    module_guid = uuid.UUID("F8E21975-0899-4F58-A4BE-5525A9C6D77A").bytes_le
    stack = struct.pack("<HHI16sQQI4s", 2, 48, 0, stack_guid, 0x820000, 0x20000, 4, bytes(4))
    dxe = struct.pack("<HHI16sQQI4s16sQ", 2, 72, 0, module_guid, 0xFEFB000, 0x22000, 3, bytes(4),
                      module.bytes_le, 0xFF0E4FC)
    root = decode_hob_list(insert(qemu_td_hob(), fv2 + fv3 + cpu + stack + dxe))
    assert not list(root.all_problems())
    h2, h3, hcpu, hstack, hdxe = root.children[1:6]
    assert (h2.get("FvName"), h2.get("FileName"), h2.field("FileName").offset) == (fv_name, file_name, 56 + 40)
    assert (h3.get("FvName"), h3.field("FvName").offset, h3.get("AuthenticationStatus"), h3.get("ExtractedFv")) \
        == (fv_name, 56 + 56 + 32, 1, 1)
    assert h3.title.startswith("FV3 0x900000-0x14fffff (12 MiB)")
    assert (hcpu.get("SizeOfMemorySpace"), hcpu.get("SizeOfIoSpace")) == (48, 16)
    assert hstack.field("Name").display.startswith("STACK") and hstack.field("MemoryType").display \
        == "EfiBootServicesData"
    assert hstack.title == "MEMORY_ALLOCATION STACK EfiBootServicesData 0x820000-0x83ffff (128 KiB)"
    assert (hdxe.get("ModuleName"), hdxe.get("EntryPoint")) == (module, 0xFF0E4FC)
    assert hdxe.field("Name").display.startswith("MODULE")
    assert hdxe.field("EntryPoint").offset == hdxe.offset + 64


# ---- GUID HOB payloads -----------------------------------------------------------------------------------

def guid_hob(name: str, data: bytes) -> bytes:
    pad = (-len(data)) % 8
    return struct.pack("<HHI16s", 4, 24 + len(data) + pad, 0, uuid.UUID(name).bytes_le) + data + b"\0" * pad


def test_hob_guid_payload_tcg_event2_and_cc_event():
    sha256 = hashlib.sha256(b"event").digest()
    sha384 = hashlib.sha384(b"event").digest()
    event = struct.pack("<III", 0, 0x80000008, 2) + struct.pack("<H", 0xB) + sha256 + struct.pack("<H", 0xC) \
        + sha384 + struct.pack("<I", 5) + b"event"
    for name, index in (("D26C221E-2430-4C8A-9170-3FCB4500413F", "PCRIndex"),
                        ("20F8FD36-6D00-40FB-B704-D12C153C62EB", "MrIndex")):
        hob = decode_hob_list(insert(qemu_td_hob(), guid_hob(name, event))).children[1]
        assert not hob.problems
        assert hob.get(index) == 0 and hob.field("EventType").display == "EV_EFI_PLATFORM_FIRMWARE_BLOB"
        assert [(d.get("hashAlg"), d.get("digest")) for d in hob.children] == [(0xB, sha256), (0xC, sha384)]
        assert hob.get("EventSize") == 5 and hob.get("Event") == b"event"
    lying = struct.pack("<III", 0, 1, 1000) + b"\0" * 40
    lying_hob = guid_hob("D26C221E-2430-4C8A-9170-3FCB4500413F", lying)
    hob = decode_hob_list(insert(qemu_td_hob(), lying_hob)).children[1]
    assert "digest count 1000" in hob.problems[0].message


def test_hob_guid_payload_e820_acpi_migrated_fv():
    e820 = struct.pack("<QQI", 0, 0x80000000, 1) + struct.pack("<QQI", 0x80000000, 0x1000, 2)
    blob = insert(qemu_td_hob(), guid_hob("8F8072EA-3486-4B47-86A7-2353B88A8773", e820))
    hob = decode_hob_list(blob).children[1]
    assert [(c.get("Address"), c.get("Length"), c.field("Type").display) for c in hob.children] == \
        [(0, 0x80000000, "RAM"), (0x80000000, 0x1000, "RESERVED")]
    table = b"CCEL" + struct.pack("<IBB6s8sI4sI", 56, 1, 0, b"INTEL ", b"EDK2    ", 2, b"INTL", 0) + bytes(20)
    blob = insert(qemu_td_hob(), guid_hob("6A0C5870-D4ED-44F4-A135-DD238B6F0C8D", table))
    hob = decode_hob_list(blob).children[1]
    (acpi,) = hob.children  # the table, decoded whole by the ACPI decoder
    assert acpi.get("Signature") == "CCEL" and acpi.get("Length") == 56 and not hob.problems
    assert acpi.get("Laml") == 0 and acpi.offset == hob.offset + 24
    assert any("Checksum" in p.message for p in acpi.problems)  # built above without a checksum
    fv = struct.pack("<IIII", 0xFFC84000, 0x7F000000, 0x7E000000, 0x348000)
    blob = insert(qemu_td_hob(), guid_hob("C1AB12F7-74AA-408D-A2F4-C6CEFD179871", fv))
    hob = decode_hob_list(blob).children[1]
    assert [hob.get(n) for n in ("FvOrgBase", "FvNewBase", "FvDataBase", "FvLength")] == \
        list(struct.unpack("<IIII", fv))


# ---- live: the DXE HOB list of Debian's OVMF (bookworm 2022.11) under QEMU/TCG ---------------------------

HOB_LIST_GUID = uuid.UUID("7739F24C-93D7-11D4-9A3A-0090273FC14D").bytes_le  # gEfiHobListGuid
RAM_SIZE = 256 << 20
BOOT_SECONDS = 9  # OVMF reaches the UEFI shell in ~9 s under TCG here (DXE done, HOB list relocated)


def _qmp(f, command, **arguments):
    f.write(json.dumps({"execute": command, **({"arguments": arguments} if arguments else {})}) + "\n")
    f.flush()
    for _ in range(100):  # skip asynchronous events until our reply
        reply = json.loads(f.readline())
        if "return" in reply or "error" in reply:
            assert "error" not in reply, reply
            return reply["return"]
    raise AssertionError(f"no reply to {command}")


def boot_and_dump(tmp: Path, with_tpm: bool):
    """Boot Debian's OVMF.fd (q35, 256 MiB, TCG) to the shell, pause, pmemsave all RAM; return an mmap.
    Every wait is bounded and every process started here is killed by its PID."""
    image = bookworm("OVMF.fd")
    qemu = tool("qemu-system-x86_64", "qemu-system-x86")
    sock, dump, ctrl = tmp / "qmp.sock", tmp / "ram.bin", tmp / "swtpm.sock"
    procs = []
    try:
        extra = []
        if with_tpm:
            swtpm = tool("swtpm", "swtpm")
            procs.append(subprocess.Popen([swtpm, "socket", "--tpm2", "--tpmstate", f"dir={tmp}",
                                           "--ctrl", f"type=unixio,path={ctrl}"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            _wait_for(ctrl, procs[-1])
            extra = ["-chardev", f"socket,id=chrtpm,path={ctrl}", "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
                     "-device", "tpm-tis,tpmdev=tpm0"]
        procs.append(subprocess.Popen([qemu, "-machine", "q35", "-m", "256M", "-bios", str(image),
                                       "-display", "none", "-S", "-net", "none", "-serial", "none", "-monitor", "none",
                                       "-qmp", f"unix:{sock},server=on,wait=off", *extra],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait_for(sock, procs[-1])
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(20)
            s.connect(str(sock))
            f = s.makefile("rw")
            f.readline()  # greeting
            _qmp(f, "qmp_capabilities")
            _qmp(f, "cont")
            time.sleep(BOOT_SECONDS)
            _qmp(f, "stop")
            _qmp(f, "pmemsave", val=0, size=RAM_SIZE, filename=str(dump))
    finally:
        for proc in reversed(procs):
            proc.kill()
            proc.wait(timeout=10)
    with open(dump, "rb") as fh:
        data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    dump.unlink()  # the mapping keeps the 256 MiB alive; nothing is left in the temp dir
    return data


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline and proc.poll() is None, f"{proc.args[0]} did not open {path}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def ovmf_ram(tmp_path_factory):
    data = boot_and_dump(tmp_path_factory.mktemp("hob-live"), with_tpm=False)
    yield data
    data.close()


@pytest.fixture(scope="module")
def ovmf_tpm_ram(tmp_path_factory):
    data = boot_and_dump(tmp_path_factory.mktemp("hob-live-tpm"), with_tpm=True)
    yield data
    data.close()


def find_hob_list(ram) -> int:
    """The config-table entry {gEfiHobListGuid, pointer} whose pointer holds a PHIT header."""
    at = ram.find(HOB_LIST_GUID)
    while at >= 0:
        ptr = struct.unpack_from("<Q", ram, at + 16)[0]
        if ptr + 8 <= len(ram) and ram[ptr:ptr + 8] == struct.pack("<HHI", 1, 56, 0):
            return ptr
        at = ram.find(HOB_LIST_GUID, at + 1)
    raise AssertionError("no gEfiHobListGuid configuration table entry pointing at a PHIT")


@pytest.mark.live
def test_hob_live_ovmf_dxe_hob_list(ovmf_ram):
    address = find_hob_list(ovmf_ram)
    memory = BytesMemory(memoryview(ovmf_ram), 0)
    root = decode_hob_list(memory, address)
    assert not errors(p for _, p in root.all_problems())
    block = bytes(ovmf_ram[address:address + root.size])
    expected = plain_walk(block)
    assert [(c.offset, c.get("HobType"), c.get("HobLength")) for c in root.children] == expected
    assert root.children[-1].title == "END_OF_HOB_LIST"
    # edk2 MdeModulePkg/Core/Dxe/Gcd/Gcd.c, "Relocate HOB List to an allocated pool buffer": DXE
    # relocated the list into pool; the PHIT keeps the PEI-time pointers.
    assert not address <= root.children[0].get("EfiEndOfHobList") < address + root.size

    # System memory: all 256 MiB but the legacy VGA/option-ROM hole 0xA0000-0xFFFFF, which OVMF
    # describes as MMIO (OvmfPkg PlatformInitLib MemDetect.c / Platform.c).
    mm = memory_map(root)
    hole = [r for r in mm.ranges if r.start == 0xA0000]
    assert hole and hole[0].type_name == "MEMORY_MAPPED_IO" and hole[0].end == 0x100000
    assert mm.system_memory == RAM_SIZE - (0x100000 - 0xA0000)
    assert not mm.unplaced

    names = {c.field("Name").display.split(" ")[0] for c in root.children if c.get("HobType") == 4}
    assert {"gPcdDataBaseHobGuid", "gUefiOvmfPkgPlatformInfoGuid", "gEfiMemoryTypeInformationGuid",
            "gMemoryStatusCodeRecordGuid", "gStatusCodeCallbackGuid", "gEdkiiMicrocodePatchHobGuid",
            "CPU_INIT_MP_LIB_HOB_GUID", "gEfiSecPlatformInformation2PpiGuid"} <= names

    # The DXE core's MODULE allocation carries an entry point inside its own image.
    module = [c for c in root.children if c.title.startswith("MEMORY_ALLOCATION MODULE")]
    assert len(module) == 1
    m = module[0]
    assert m.get("MemoryBaseAddress") <= m.get("EntryPoint") < m.get("MemoryBaseAddress") + m.get("MemoryLength")


@pytest.mark.live
def test_hob_live_ovmf_platform_info_agrees_with_resource_hobs(ovmf_ram):
    root = decode_hob_list(BytesMemory(memoryview(ovmf_ram), 0), find_hob_list(ovmf_ram))
    info = [c for c in root.children if c.title.startswith("GUID_EXTENSION gUefiOvmfPkgPlatformInfoGuid")]
    assert len(info) == 1 and info[0].get("Layout") == "edk2-stable202211"
    p = info[0]
    assert p.get("HostBridgeDevId") == 0x29C0  # INTEL_Q35_MCH_DEVICE_ID, we booted -machine q35
    resources = {(c.get("ResourceType"), c.get("PhysicalStart")): c.get("ResourceLength")
                 for c in root.children if c.get("HobType") == 3}
    assert resources[(1, p.get("PcdPciMmio32Base"))] == p.get("PcdPciMmio32Size")
    assert resources[(2, p.get("PcdPciIoBase"))] == p.get("PcdPciIoSize")
    allocations = {(c.get("MemoryBaseAddress"), c.get("MemoryLength"))
                   for c in root.children if c.get("HobType") == 2}
    assert (p.get("S3AcpiReservedMemoryBase"), p.get("S3AcpiReservedMemorySize")) in allocations
    assert p.get("PcdCpuBootLogicalProcessorNumber") == 1  # no -smp given
    pcd = [c for c in root.children if c.title.startswith("GUID_EXTENSION gPcdDataBaseHobGuid")]
    assert pcd and all(c.field("Signature").display.startswith("gPcdDataBaseSignatureGuid") for c in pcd)
    assert all(c.get("Length") <= c.size - 24 for c in pcd)


@pytest.mark.live
def test_hob_live_ovmf_tpm_event_hobs_digest_their_data(ovmf_tpm_ram):
    """With swtpm attached, PEI leaves TCG_PCR_EVENT / TCG_PCR_EVENT2 HOBs (edk2
    SecurityPkg/Tcg/Tcg2Pei/Tcg2Pei.c, gTcgEventEntryHobGuid / gTcgEvent2EntryHobGuid). Each digest
    we decode must be the hash of what was measured: the event data for EV_S_CRTM_VERSION, the FV
    bytes at BlobBase/BlobLength (still in RAM) for EV_EFI_PLATFORM_FIRMWARE_BLOB."""
    ram = ovmf_tpm_ram
    root = decode_hob_list(BytesMemory(memoryview(ram), 0), find_hob_list(ram))
    assert not errors(p for _, p in root.all_problems())
    events = [c for c in root.children if c.title.startswith(("GUID_EXTENSION gTcgEvent2EntryHobGuid",
                                                              "GUID_EXTENSION gTcgEventEntryHobGuid"))]
    assert {c.title.split(" ")[1] for c in events} == {"gTcgEvent2EntryHobGuid", "gTcgEventEntryHobGuid"}
    checked = set()
    for hob in events:
        event, kind = hob.get("Event"), hob.field("EventType").display
        assert len(event) == hob.get("EventSize")
        if hob.children:  # TCG_PCR_EVENT2: one TPMT_HA per bank
            digests = [(d.field("hashAlg").display, d.get("digest")) for d in hob.children]
            assert len(digests) == hob.get("count")
        else:
            digests = [("sha1", hob.get("Digest"))]
        if kind == "EV_S_CRTM_VERSION":
            measured = event
        else:
            assert kind == "EV_EFI_PLATFORM_FIRMWARE_BLOB"
            base, length = struct.unpack("<QQ", event)  # UEFI_PLATFORM_FIRMWARE_BLOB
            measured = ram[base:base + length]
        for alg, digest in digests:
            assert hashlib.new(alg, measured).digest() == digest, (hob.title, alg)
            checked.add(alg)
    assert {"sha1", "sha256", "sha384", "sha512"} <= checked


def test_hob_enum_fields_show_the_spec_name_or_the_value_as_unknown():
    """HobType, BootMode, MemoryType and ResourceType show PiHob.h's / UefiMultiPhase.h's names; a
    value no name covers is kept and shown in hex as unknown, never dropped or guessed."""
    zero = bytes(16)
    # EFI_HOB_HANDOFF_INFO_TABLE (PI vol. 3, 5.3): header, Version, BootMode, five addresses.
    phit = struct.pack("<HHIIIQQQQQ", 1, 56, 0, 9, 0x99, 0, 0, 0, 0, 0)
    # EFI_HOB_MEMORY_ALLOCATION: header, Name, MemoryBaseAddress, MemoryLength, MemoryType, Reserved[4].
    known = struct.pack("<HHI16sQQI4x", 2, 48, 0, zero, 0x1000, 0x1000, 4)
    unknown = struct.pack("<HHI16sQQI4x", 2, 48, 0, zero, 0x2000, 0x1000, 0x7777)
    # EFI_HOB_RESOURCE_DESCRIPTOR: header, Owner, ResourceType, ResourceAttribute, start, length.
    resource = struct.pack("<HHI16sIIQQ", 3, 48, 0, zero, 0x42, 7, 0, 0x1000)
    root = decode_hob_list(phit + known + unknown + resource + struct.pack("<HHI", 0xFFFF, 8, 0))
    hobs = root.children
    shown = [(f.value, f.display) for f in (hobs[0].field("HobType"), hobs[0].field("BootMode"),
                                            hobs[1].field("MemoryType"), hobs[2].field("MemoryType"),
                                            hobs[3].field("ResourceType"))]
    assert shown == [(1, "HANDOFF"), (0x99, "0x99 (unknown)"), (4, "EfiBootServicesData"),
                     (0x7777, "0x7777 (unknown)"), (0x42, "0x42 (unknown)")]
    assert hobs[0].title == "HANDOFF (PHIT) v9 153"
    assert hobs[1].title.startswith("MEMORY_ALLOCATION EfiBootServicesData 0x1000-0x1fff")
    assert hobs[2].title.startswith("MEMORY_ALLOCATION 0x7777 0x2000-0x2fff")
