"""A TD HOB as QEMU builds it (`hw/i386/tdvf-hob.c`, `tdvf-hob.h`; PI vol 3 `PiHob.h`).

PHIT (Version 9, BootMode 0, memory fields 0, EfiEndOfHobList = guest address just past the
END HOB), one RESOURCE_DESCRIPTOR per TDX RAM entry (unaccepted -> EFI_RESOURCE_MEMORY_UNACCEPTED
(7) with TDVF_UNACCEPTED attributes; already added -> SYSTEM_MEMORY (0) with TDVF_PRIVATE),
Owner zero GUID, then END. Each HOB is 8-byte aligned (`tdvf_get_area`).
"""
from __future__ import annotations

import struct

HOB_ADDRESS = 0x809000  # PcdOvmfSecGhcbBase in IntelTdx: the TD_HOB TDVF section
EFI_HOB_TYPE_HANDOFF, EFI_HOB_TYPE_RESOURCE_DESCRIPTOR, EFI_HOB_TYPE_END_OF_HOB_LIST = 1, 3, 0xFFFF
EFI_HOB_HANDOFF_TABLE_VERSION = 9
EFI_RESOURCE_SYSTEM_MEMORY, EFI_RESOURCE_MEMORY_UNACCEPTED = 0, 7
# QEMU include/standard-headers/uefi/uefi.h: PRESENT 1, INITIALIZED 2, TESTED 4, ENCRYPTED 0x04000000,
# and UNACCEPTED defined as 7 there, so TDVF_UNACCEPTED = 0x7 and TDVF_PRIVATE = 0x04000007.
ATTR_TDVF_UNACCEPTED = 0x1 | 0x2 | 0x7
ATTR_TDVF_PRIVATE = 0x1 | 0x2 | 0x04000000 | 0x4

# TDX RAM entries QEMU (target/i386/kvm/tdx.c) would hand a 4 GiB q35 TD with the 2 MiB OVMF:
# e820 RAM (2 GiB low + 2 GiB above 4 GiB) starts unaccepted; TDVF TempMem/TD_HOB sections are
# PAGE.ADDed and split out as "added" (tdx_accept_ram_range), sorted by address.
RAM_ENTRIES = [
    (0x0, 0x800000, False),
    (0x800000, 0x6000, True),  # SEC page tables
    (0x806000, 0x3000, False),
    (0x809000, 0x2000, True),  # TD HOB
    (0x80B000, 0x2000, True),  # work area
    (0x80D000, 0x3000, False),
    (0x810000, 0x10000, True),  # SEC/PEI temporary RAM
    (0x820000, 0x80000000 - 0x820000, False),
    (0x100000000, 0x80000000, False),
]


def hob_header(hob_type: int, length: int) -> bytes:
    return struct.pack("<HHI", hob_type, length, 0)


def phit(end_of_hob_list: int) -> bytes:
    """EFI_HOB_HANDOFF_INFO_TABLE (56 B)."""
    return hob_header(EFI_HOB_TYPE_HANDOFF, 56) + struct.pack(
        "<IIQQQQQ", EFI_HOB_HANDOFF_TABLE_VERSION, 0, 0, 0, 0, 0, end_of_hob_list)


def resource(rtype: int, attr: int, start: int, length: int) -> bytes:
    """EFI_HOB_RESOURCE_DESCRIPTOR (48 B), Owner = zero GUID."""
    return hob_header(EFI_HOB_TYPE_RESOURCE_DESCRIPTOR, 48) + b"\0" * 16 + struct.pack(
        "<IIQQ", rtype, attr, start, length)


def td_hob(address: int = HOB_ADDRESS, entries=RAM_ENTRIES) -> bytes:
    res = b"".join(
        resource(EFI_RESOURCE_SYSTEM_MEMORY, ATTR_TDVF_PRIVATE, a, n) if added
        else resource(EFI_RESOURCE_MEMORY_UNACCEPTED, ATTR_TDVF_UNACCEPTED, a, n)
        for a, n, added in entries)
    end = hob_header(EFI_HOB_TYPE_END_OF_HOB_LIST, 8)
    total = 56 + len(res) + len(end)
    return phit(address + total) + res + end
