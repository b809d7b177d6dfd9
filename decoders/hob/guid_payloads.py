"""Payloads of the GUID-extension HOBs that edk2 defines and OVMF/TDVF produce.

Each decoder gets the bytes after EFI_HOB_GUID_TYPE (HobLength - 24, alignment padding included)
and adds fields with offsets in the HOB's space. Unknown GUIDs stay raw. Names come from the edk2
.dec files (decoders/guids.py); layouts from the header each function cites.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable

from decoders import guids
from decoders.display import enum_name
from decoders.errors import DecodeError
from decoders.hob import structs as s
from decoders.layout import Layout
from decoders.model import Node, Space
from decoders.tcg import ALGORITHMS, event_type_name

# TPM 2.0 has at most a handful of PCR banks (SHA-1, SHA-256, SHA-384, SHA-512, SM3); a count above
# this is a lie that would otherwise drive a long loop over garbage.
MAX_DIGESTS = 8
# An E820 / memory-type array in a HOB is at most 64 KiB / entry size; cap the nodes we build.
MAX_ARRAY_ENTRIES = 1024

# MdePkg/Include/IndustryStandard/E820.h EFI_ACPI_MEMORY_TYPE (and Linux's 7 PMEM, 12 SOFT_RESERVED).
E820_TYPES = {1: "RAM", 2: "RESERVED", 3: "ACPI", 4: "NVS", 5: "UNUSABLE", 6: "DISABLED", 7: "PMEM",
              12: "SOFT_RESERVED"}


# ---- shared helpers (decode.py uses them too) --------------------------------------------------

def _event_type_text(value: int) -> str:
    return event_type_name(value) or f"0x{value:x}"


def parse_or_problem(node: Node, struct: Layout, data: bytes, rel: int, offset: int, what: str) -> object:
    """Parse `struct` at data[rel:], or add a located problem and return None."""
    try:
        return struct.parse(data, rel, what)
    except DecodeError as e:
        node.problem(offset + rel, f"{what}: {e.message}")
        return None


def size_text(size: int) -> str:
    """Exact in the largest unit that divides it (128 MiB), else 2 decimals (1984.12 MiB)."""
    units = (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10))
    for unit, shift in units:
        if size and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    for unit, shift in units:
        if size >= 1 << shift:
            return f"{size / (1 << shift):.2f} {unit}"
    return f"{size} bytes"


def printable(raw: bytes) -> str | None:
    text = raw.rstrip(b"\0")
    if text and all(32 <= c < 127 for c in text):
        return text.decode("ascii")
    return None


# ---- payload decoders: (node, data, offset of data in the space) --------------------------------

def _memory_type_information(node: Node, data: bytes, offset: int) -> None:
    """MdeModulePkg/Include/Guid/MemoryTypeInformation.h: {Type, NumberOfPages}[] to EfiMaxMemoryType."""
    entry = s.EFI_MEMORY_TYPE_INFORMATION.size
    for i in range(min(len(data) // entry, MAX_ARRAY_ENTRIES)):
        rel = i * entry
        parsed = s.EFI_MEMORY_TYPE_INFORMATION.parse(data, rel)
        mtype = parsed.Type
        name = enum_name(s.EFI_MEMORY_TYPE, mtype) or f"0x{mtype:x}"
        child = Node("memory-type-information", f"{name}: {parsed.NumberOfPages} pages", node_space(node),
                     offset + rel, entry)
        s.EFI_MEMORY_TYPE_INFORMATION.add_fields(child, parsed, offset + rel)
        node.append(child)
        if mtype == 16:  # EfiMaxMemoryType ends the array; the rest is padding
            return
    node.warn(offset, "memory type information array has no EfiMaxMemoryType terminator")


def _platform_info(node: Node, data: bytes, offset: int) -> None:
    """OvmfPkg EFI_HOB_PLATFORM_INFO. Its layout changes between edk2 releases and the HOB has no
    version field, so fields are decoded only when the size fits the 2022.11 layout exactly
    (HOB data rounded up to 8); other sizes are shown raw."""
    size = s.EFI_HOB_PLATFORM_INFO_202211.size
    if not size <= len(data) < size + 8:
        node.note(offset, f"EFI_HOB_PLATFORM_INFO of {len(data)} bytes: layout of this edk2 version "
                          f"not known (2022.11 is {size} bytes), shown raw")
        return
    parsed = s.EFI_HOB_PLATFORM_INFO_202211.parse(data)
    node.add("Layout", "edk2-stable202211", None, None)
    s.EFI_HOB_PLATFORM_INFO_202211.add_fields(node, parsed, offset, skip=("GuidHeader",))


def _digests(node: Node, data: bytes, rel: int, offset: int, count: int) -> int | None:
    """TPML_DIGEST_VALUES after its count; returns the offset past it, or None (problem added)."""
    if count > MAX_DIGESTS:
        node.problem(offset + rel - 4, f"digest count {count} is more than the {MAX_DIGESTS} banks a TPM has")
        return None
    for _ in range(count):
        if rel + 2 > len(data):
            node.problem(offset + rel, "TPMT_HA: hashAlg past the end of the HOB")
            return None
        alg = int.from_bytes(data[rel:rel + 2], "little")
        if alg not in ALGORITHMS:
            node.problem(offset + rel, f"TPMT_HA: unknown hashAlg 0x{alg:04x}, digest size unknown")
            return None
        name, dsize = ALGORITHMS[alg]
        if rel + 2 + dsize > len(data):
            node.problem(offset + rel, f"TPMT_HA {name}: digest past the end of the HOB")
            return None
        digest = data[rel + 2:rel + 2 + dsize]
        child = Node("digest", f"{name} {digest.hex()[:16]}…", node_space(node), offset + rel, 2 + dsize)
        child.add("hashAlg", alg, offset + rel, 2, name)
        child.add("digest", digest, offset + rel + 2, dsize, digest.hex())
        node.append(child)
        rel += 2 + dsize
    return rel


def _event_body(node: Node, data: bytes, rel: int, offset: int) -> None:
    if rel + 4 > len(data):
        node.problem(offset + rel, "EventSize past the end of the HOB")
        return
    size = int.from_bytes(data[rel:rel + 4], "little")
    node.add("EventSize", size, offset + rel, 4)
    rel += 4
    if rel + size > len(data):
        node.problem(offset + rel, f"Event of {size} bytes runs past the end of the HOB ({len(data) - rel} left)")
        size = max(0, len(data) - rel)
    event = data[rel:rel + size]
    node.add("Event", event, offset + rel, size, printable(event))


def _tcg_event2(node: Node, data: bytes, offset: int, start: Layout = s.TCG_PCR_EVENT2_START) -> None:
    """TCG_PCR_EVENT2 (gTcgEvent2EntryHobGuid) / CC_EVENT (gCcEventEntryHobGuid): index, EventType,
    TPML_DIGEST_VALUES, EventSize, Event (UefiTcgPlatform.h, CcMeasurement protocol header)."""
    parsed = parse_or_problem(node, start, data, 0, offset, "event header")
    if parsed is None:
        return
    start.add_fields(node, parsed, offset, displays={"EventType": _event_type_text})
    rel = _digests(node, data, start.size, offset, parsed.count)
    if rel is not None:
        _event_body(node, data, rel, offset)


def _cc_event(node: Node, data: bytes, offset: int) -> None:
    _tcg_event2(node, data, offset, s.CC_EVENT_START)


def _tcg_event(node: Node, data: bytes, offset: int) -> None:
    """TCG_PCR_EVENT (gTcgEventEntryHobGuid): TPM 1.2 header with one SHA-1 digest."""
    parsed = parse_or_problem(node, s.TCG_PCR_EVENT_HDR, data, 0, offset, "TCG_PCR_EVENT_HDR")
    if parsed is None:
        return
    s.TCG_PCR_EVENT_HDR.add_fields(node, parsed, offset, skip=("EventSize",),
               displays={"EventType": _event_type_text, "Digest": lambda v: v.hex()})
    _event_body(node, data, s.TCG_PCR_EVENT_HDR.size - 4, offset)


def _simple(struct: Layout, what: str, display: dict | None = None):
    def decode(node: Node, data: bytes, offset: int) -> None:
        parsed = parse_or_problem(node, struct, data, 0, offset, what)
        if parsed is not None:
            struct.add_fields(node, parsed, offset, displays=display)
    return decode


def _acpi_table(node: Node, data: bytes, offset: int) -> None:
    """gUefiOvmfPkgTdxAcpiHobGuid: one ACPI table from the VMM, decoded whole by the ACPI decoder
    (header, checksum, body) in the HOB's own space, so its offsets point into the HOB list."""
    from decoders.acpi import decode_table

    space = node.space
    if space is not None and space.data is not None and bytes(space.data[offset:offset + len(data)]) == data:
        table = decode_table(space.data[:offset + len(data)], offset, space)
    else:
        table = decode_table(data, 0, Space(f"{space.name if space else 'hob'}/acpi@0x{offset:x}", data))
    node.append(table)
    if table.get("Length") is not None and table.get("Length") > len(data):
        node.problem(offset + 4, f"ACPI table Length {table.get('Length')} is past the end of the HOB "
                                 f"({len(data)} bytes)")


def _e820(node: Node, data: bytes, offset: int) -> None:
    """td-shim / TDVF E820 table HOB: packed {Address u64, Length u64, Type u32} entries."""
    entry = s.EFI_E820_ENTRY64.size
    for i in range(min(len(data) // entry, MAX_ARRAY_ENTRIES)):
        rel = i * entry
        parsed = s.EFI_E820_ENTRY64.parse(data, rel)
        if parsed.Length == 0 and parsed.Type == 0 and parsed.Address == 0:
            break  # zero entry: end of table / padding
        tname = E820_TYPES.get(parsed.Type, f"0x{parsed.Type:x}")
        end = parsed.Address + max(parsed.Length, 1) - 1
        child = Node("e820-entry", f"{tname} 0x{parsed.Address:x}-0x{end:x} ({size_text(parsed.Length)})",
                     node_space(node), offset + rel, entry)
        s.EFI_E820_ENTRY64.add_fields(child, parsed, offset + rel,
                   displays={"Type": lambda v: E820_TYPES.get(v, f"0x{v:x}")})
        node.append(child)


def _pcd_database(node: Node, data: bytes, offset: int) -> None:
    parsed = parse_or_problem(node, s.PCD_DATABASE_INIT_START, data, 0, offset, "PCD database header")
    if parsed is None:
        return
    s.PCD_DATABASE_INIT_START.add_fields(node, parsed, offset)
    if parsed.Length > len(data):
        node.problem(offset + 20, f"PCD database Length {parsed.Length} is past the end of the HOB "
                                  f"({len(data)} bytes)")


def node_space(node: Node):
    return node.space


DECODERS: dict[uuid.UUID, Callable[[Node, bytes, int], None]] = {
    guids.gEfiMemoryTypeInformationGuid: _memory_type_information,
    guids.gUefiOvmfPkgPlatformInfoGuid: _platform_info,
    guids.gTcgEvent2EntryHobGuid: _tcg_event2,
    guids.gTcgEventEntryHobGuid: _tcg_event,
    guids.gCcEventEntryHobGuid: _cc_event,
    guids.gEdkiiMigratedFvInfoGuid: _simple(s.EDKII_MIGRATED_FV_INFO, "EDKII_MIGRATED_FV_INFO"),
    guids.gUefiOvmfPkgTdxAcpiHobGuid: _acpi_table,
    guids.TD_E820_TABLE_HOB_GUID: _e820,
    guids.gEfiSecPlatformInformation2PpiGuid: _simple(s.EFI_SEC_PLATFORM_INFORMATION_RECORD2_START,
                                                      "EFI_SEC_PLATFORM_INFORMATION_RECORD2"),
    guids.gPcdDataBaseHobGuid: _pcd_database,
}


def decode_guid_data(node: Node, name: uuid.UUID, data: bytes, offset: int) -> bool:
    """Decode the payload of a GUID HOB named `name` into `node`; False when the GUID has no decoder."""
    fn = DECODERS.get(name)
    if fn is None:
        return False
    fn(node, data, offset)
    return True
