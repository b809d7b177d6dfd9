"""The TD HOB QEMU writes for a TDVF image: its bytes and the guest-physical address it lands at.

QEMU (upstream, hw/i386/tdvf-hob.c, target/i386/kvm/tdx.c, hw/i386/tdvf.c) builds it when it
finalizes the TD:

1. RAM (tdx_init_ram_entries): one entry per E820_RAM entry, all "unaccepted". On q35
   (hw/i386/pc_q35.c pc_q35_init; hw/i386/pc.c pc_memory_init) RAM is split around the PCI hole:
   a machine of 0xB0000000 bytes or more keeps 2 GiB below 4 GiB, a smaller one keeps all of it
   below; the rest starts at 4 GiB. `-m` is first rounded up to 8 KiB (system/vl.c
   set_memory_options).
2. TDVF sections (tdx_finalize_vm), in descriptor order: TD_HOB and TempMem ranges are "accepted"
   (tdx_accept_ram_range: the range must lie inside one entry; an unaccepted entry becomes the
   range, its head and tail are appended as new unaccepted entries; a range inside an accepted
   entry changes nothing). BFV and CFV sit in the flash range below 4 GiB and touch no entry. Any
   other type stops QEMU (tdvf.c: "unsupported section type").
3. The entries are sorted by address (qsort, tdx_ram_entry_compare) and written (tdvf_hob_create)
   at the first TD_HOB section's MemoryAddress: a PHIT (EFI_HOB_HANDOFF_INFO_TABLE, Version 9,
   BootMode 0, memory fields 0, EfiEndOfHobList = the address just past the END HOB), one
   EFI_HOB_RESOURCE_DESCRIPTOR per entry (Owner zero; accepted: EFI_RESOURCE_SYSTEM_MEMORY,
   unaccepted: EFI_RESOURCE_MEMORY_UNACCEPTED; both with PRESENT | INITIALIZED | TESTED,
   hw/i386/tdvf-hob.h), then END_OF_HOB_LIST. Each HOB is 8-byte aligned (tdvf_get_area); a list
   longer than the TD_HOB section stops QEMU ("TD_HOB overrun").

Layouts: PI 1.8 vol. 3 §5 (edk2 MdePkg/Include/Pi/PiHob.h). Whatever would make QEMU refuse to
start becomes an ERROR Problem and no HOB (empty bytes).
"""
from __future__ import annotations

import struct

from decoders.model import Problem, Severity
from decoders.ovmf.metadata import BFV, CFV, TD_HOB, TDX_TYPE_NAMES, TEMP_MEM, TdxSection

# hw/i386/pc_q35.c pc_q35_init: the q35 low-memory split.
Q35_LOWMEM_THRESHOLD = 0xB0000000
Q35_LOWMEM_SPLIT = 0x80000000
ABOVE_4G_START = 1 << 32          # hw/i386/pc.c: x86ms->above_4g_mem_start (Intel hosts)
RAM_SIZE_ALIGN = 8192             # system/vl.c set_memory_options: QEMU_ALIGN_UP(sz, 8192)
# A TD's guest-physical address width is 48 or 52 bits (TDX module ABI, GPAW): no RAM size above
# 2^52 can be mapped.
MAX_MEMORY = 1 << 52
PAGE_SIZE = 0x1000

# PiHob.h
EFI_HOB_TYPE_HANDOFF = 0x0001
EFI_HOB_TYPE_RESOURCE_DESCRIPTOR = 0x0003
EFI_HOB_TYPE_END_OF_HOB_LIST = 0xFFFF
EFI_HOB_HANDOFF_TABLE_VERSION = 0x0009
BOOT_WITH_FULL_CONFIGURATION = 0x00
EFI_RESOURCE_SYSTEM_MEMORY = 0x00000000
EFI_RESOURCE_MEMORY_UNACCEPTED = 0x00000007
EFI_RESOURCE_ATTRIBUTE_PRESENT = 0x00000001
EFI_RESOURCE_ATTRIBUTE_INITIALIZED = 0x00000002
EFI_RESOURCE_ATTRIBUTE_TESTED = 0x00000004
# hw/i386/tdvf-hob.h: EFI_RESOURCE_ATTRIBUTE_TDVF_PRIVATE and _TDVF_UNACCEPTED are the same bits.
TDVF_PRIVATE = TDVF_UNACCEPTED = (EFI_RESOURCE_ATTRIBUTE_PRESENT | EFI_RESOURCE_ATTRIBUTE_INITIALIZED
                                  | EFI_RESOURCE_ATTRIBUTE_TESTED)

# Wire layouts (little-endian, PiHob.h field order).
_HEADER = struct.Struct("<HHI")                  # EFI_HOB_GENERIC_HEADER: HobType, HobLength, Reserved
_PHIT = struct.Struct("<HHIIIQQQQQ")             # + Version, BootMode, EfiMemoryTop, EfiMemoryBottom,
                                                 #   EfiFreeMemoryTop, EfiFreeMemoryBottom, EfiEndOfHobList
_RESOURCE = struct.Struct("<HHI16sIIQQ")         # + Owner, ResourceType, ResourceAttribute,
                                                 #   PhysicalStart, ResourceLength
PHIT_SIZE, RESOURCE_SIZE, END_SIZE = _PHIT.size, _RESOURCE.size, _HEADER.size   # 56, 48, 8


class RamEntry:
    """One TdxRamEntry of QEMU: a RAM range and whether it was accepted (PAGE.ADDed by the VMM).
    A plain class: `measure --tdx` starts without the dataclasses module (~10 ms to import)."""

    __slots__ = ("address", "length", "accepted")

    def __init__(self, address: int, length: int, accepted: bool = False):
        self.address, self.length, self.accepted = address, length, accepted

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RamEntry):
            return NotImplemented
        return (self.address, self.length, self.accepted) == (other.address, other.length, other.accepted)

    def __repr__(self) -> str:
        return f"RamEntry(address={self.address!r}, length={self.length!r}, accepted={self.accepted!r})"


def q35_ram(memory: int) -> list[tuple[int, int]]:
    """The E820_RAM entries of a q35 machine with `memory` bytes of RAM, as (start, length)."""
    lowmem = Q35_LOWMEM_SPLIT if memory >= Q35_LOWMEM_THRESHOLD else Q35_LOWMEM_THRESHOLD
    if memory >= lowmem:
        below, above = lowmem, memory - lowmem
    else:
        below, above = memory, 0
    out = [(0, below)]
    if above:
        out.append((ABOVE_4G_START, above))
    return out


def _accept(entries: list[RamEntry], address: int, length: int) -> bool:
    """tdx_accept_ram_range: False when the range is not inside the first entry it overlaps."""
    for e in entries:
        if not (address + length <= e.address or address >= e.address + e.length):
            break
    else:
        return False
    if e.address > address or e.address + e.length < address + length:
        return False
    if e.accepted:
        return True
    start, end = e.address, e.address + e.length
    e.address, e.length, e.accepted = address, length, True
    if address > start:
        entries.append(RamEntry(start, address - start))
    if address + length < end:
        entries.append(RamEntry(address + length, end - address - length))
    return True


def _where(s: TdxSection) -> str:
    return f"section {s.index} ({s.type_name}, GPA 0x{s.memory_address:x}+0x{s.memory_data_size:x})"


def ram_entries(sections: list[TdxSection], memory: int) -> tuple[list[RamEntry], list[Problem]]:
    """QEMU's RAM entries after the TDVF sections were accepted, sorted by address; an ERROR
    problem (and no entries) for anything QEMU refuses."""
    problems: list[Problem] = []
    if memory <= 0:
        problems.append(Problem(None, Severity.ERROR,
                                f"memory size {memory} is not a RAM size (QEMU reads `-m 0` as its default "
                                "size: give the size)"))
        return [], problems
    if memory > MAX_MEMORY:
        problems.append(Problem(None, Severity.ERROR,
                                f"memory size 0x{memory:x} is above 2^52 bytes, more than any TD's "
                                "guest-physical address width (52 bits) can map"))
        return [], problems
    if memory % RAM_SIZE_ALIGN:
        aligned = -(-memory // RAM_SIZE_ALIGN) * RAM_SIZE_ALIGN
        problems.append(Problem(None, Severity.INFO,
                                f"memory size 0x{memory:x} rounded up to 0x{aligned:x} as QEMU does "
                                "(system/vl.c: a multiple of 8 KiB)"))
        memory = aligned
    entries = [RamEntry(a, n) for a, n in q35_ram(memory)]
    failed = False
    for s in sections:
        if s.type in (BFV, CFV):
            continue
        if s.type not in (TD_HOB, TEMP_MEM):
            problems.append(Problem(s.at, Severity.ERROR,
                                    f"{_where(s)}: QEMU (hw/i386/tdvf.c) refuses section type "
                                    f"{TDX_TYPE_NAMES.get(s.type, s.type)}; it knows BFV, CFV, TD_HOB, TempMem"))
            failed = True
            continue
        if s.memory_address % PAGE_SIZE or s.memory_data_size % PAGE_SIZE:
            problems.append(Problem(s.at, Severity.ERROR,
                                    f"{_where(s)}: not 4 KiB aligned, QEMU (hw/i386/tdvf.c) refuses it"))
            failed = True
            continue
        if s.memory_data_size == 0:
            problems.append(Problem(s.at, Severity.WARNING,
                                    f"{_where(s)}: empty; QEMU still splits the RAM entry there and writes "
                                    "a 0-byte SYSTEM_MEMORY resource, in an order its qsort leaves open"))
        if not _accept(entries, s.memory_address, s.memory_data_size):
            problems.append(Problem(s.at, Severity.ERROR,
                                    f"{_where(s)} is not inside one RAM range of a {memory:#x}-byte q35 machine "
                                    f"({_ranges_text(entries)}): QEMU stops with \"Failed to accept memory "
                                    f"for TDVF section\""))
            failed = True
    if failed:
        return [], problems
    entries.sort(key=lambda e: e.address)
    return entries, problems


def _ranges_text(entries: list[RamEntry]) -> str:
    return ", ".join(f"0x{e.address:x}..0x{e.address + e.length:x}"
                     + (" accepted" if e.accepted else "") for e in sorted(entries, key=lambda e: e.address))


def build_td_hob(sections: list[TdxSection], memory: int) -> tuple[bytes, int, list[Problem]]:
    """The TD HOB bytes QEMU writes for these TDVF sections and `memory` bytes of RAM, the GPA it
    writes them at (the first TD_HOB section's MemoryAddress; 0 when there is none), and the
    problems. The bytes end with the END HOB; they are empty when QEMU would refuse the image or
    the size."""
    problems: list[Problem] = []
    if len(sections) < 2:
        # hw/i386/tdvf.c tdvf_parse_metadata: "Invalid number of fw entries"
        problems.append(Problem(None, Severity.ERROR, f"{len(sections)} TDVF section(s): QEMU refuses a "
                                                      "descriptor with fewer than 2"))
        hob = next((s for s in sections if s.type == TD_HOB), None)
        return b"", hob.memory_address if hob else 0, problems
    hobs = [s for s in sections if s.type == TD_HOB]
    if not hobs:
        problems.append(Problem(None, Severity.ERROR, "no TD_HOB section: QEMU (target/i386/kvm/tdx.c) stops "
                                                      "with \"TDVF metadata doesn't specify TD_HOB location\""))
        return b"", 0, problems
    hob = hobs[0]
    if len(hobs) > 1:
        problems.append(Problem(hobs[1].at, Severity.WARNING,
                                f"{len(hobs)} TD_HOB sections: QEMU writes the HOB into the first "
                                f"(section {hob.index}) and accepts the others as memory"))
    entries, more = ram_entries(sections, memory)
    problems.extend(more)
    if not entries:
        return b"", hob.memory_address, problems
    size = PHIT_SIZE + RESOURCE_SIZE * len(entries) + END_SIZE
    if size > hob.memory_data_size:
        problems.append(Problem(hob.at, Severity.ERROR,
                                f"the TD HOB needs {size} bytes ({len(entries)} resource descriptors), the TD_HOB "
                                f"section holds {hob.memory_data_size}: QEMU stops with \"TD_HOB overrun\""))
        return b"", hob.memory_address, problems
    parts = [_PHIT.pack(EFI_HOB_TYPE_HANDOFF, PHIT_SIZE, 0, EFI_HOB_HANDOFF_TABLE_VERSION,
                        BOOT_WITH_FULL_CONFIGURATION, 0, 0, 0, 0, hob.memory_address + size)]
    for e in entries:
        rtype, attr = ((EFI_RESOURCE_SYSTEM_MEMORY, TDVF_PRIVATE) if e.accepted
                       else (EFI_RESOURCE_MEMORY_UNACCEPTED, TDVF_UNACCEPTED))
        parts.append(_RESOURCE.pack(EFI_HOB_TYPE_RESOURCE_DESCRIPTOR, RESOURCE_SIZE, 0, bytes(16), rtype, attr,
                                    e.address, e.length))
    parts.append(_HEADER.pack(EFI_HOB_TYPE_END_OF_HOB_LIST, END_SIZE, 0))
    return b"".join(parts), hob.memory_address, problems
