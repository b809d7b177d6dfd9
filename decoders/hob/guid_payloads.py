"""Payloads of the GUID-extension HOBs that edk2 defines and OVMF/TDVF produce.

Each decoder gets the bytes after EFI_HOB_GUID_TYPE (HobLength - 24, alignment padding included)
and adds fields with offsets in the HOB's space. Unknown GUIDs stay raw. Names come from the edk2
.dec files (FACTS B.2); layouts from the header each function cites.
"""
from __future__ import annotations

import uuid
from typing import Any, Callable

import construct
from construct import Enum, Struct

from decoders import guids
from decoders.errors import DecodeError, parse_at, static_size
from decoders.fields import add_fields
from decoders.hob import structs as s
from decoders.model import Node, Space

# TPM 2.0 has at most a handful of PCR banks (SHA-1, SHA-256, SHA-384, SHA-512, SM3); a count above
# this is a lie that would otherwise drive a long loop over garbage.
MAX_DIGESTS = 8
# An E820 / memory-type array in a HOB is at most 64 KiB / entry size; cap the nodes we build.
MAX_ARRAY_ENTRIES = 1024

_GUID_NAMES = """
7739F24C-93D7-11D4-9A3A-0090273FC14D gEfiHobListGuid
EA296D92-0B69-423C-8C28-33B4E0A91268 gPcdDataBaseHobGuid
3C7D193C-682C-4C14-A68F-552DEA4F437E gPcdDataBaseSignatureGuid
DEC9B486-1F16-47C7-8F68-DF1A41888BA5 gUefiOvmfPkgPlatformInfoGuid
4C19049F-4137-4DD3-9C10-8B97A83FFDFA gEfiMemoryTypeInformationGuid
060CC026-4C0D-4DDA-8F41-595FEF00A502 gMemoryStatusCodeRecordGuid
E701458C-4900-4CA5-B772-3D37949F7927 gStatusCodeCallbackGuid
D178F11D-8716-418E-A131-967D2AC42843 gEdkiiMicrocodePatchHobGuid
58EB6A19-3699-4C68-A836-DACD8EDCAD4A CPU_INIT_MP_LIB_HOB_GUID
9E9F374B-8F16-4230-9824-5846EE766A97 gEfiSecPlatformInformation2PpiGuid
2B9FFB52-1B13-416F-A87B-BC930DEF92A8 gTcgEventEntryHobGuid
D26C221E-2430-4C8A-9170-3FCB4500413F gTcgEvent2EntryHobGuid
B2360B42-7173-420A-8696-46CA6BAB1060 gMeasuredFvHobGuid
84681C08-6873-46F3-8BB7-AB661895A1B3 HASH_LIB_PEI_ROUTER_GUID
20F8FD36-6D00-40FB-B704-D12C153C62EB gCcEventEntryHobGuid
6A0C5870-D4ED-44F4-A135-DD238B6F0C8D gUefiOvmfPkgTdxAcpiHobGuid
EF598499-B25E-473A-BFAF-E7E57DCE82C4 gTpmErrorHobGuid
C1AB12F7-74AA-408D-A2F4-C6CEFD179871 gEdkiiMigratedFvInfoGuid
A291CE0E-DC09-11EE-9EDB-7349D792AF51 gOvmfFwCfgInfoHobGuid
3CC47B04-0D3E-AA64-06A6-4BDC9A2C6119 gQemuFirmwareResourceHobGuid
AE047C6D-BCE9-426C-AE03-A68E3B8A0488 gEfiNonCcFvGuid
8F8072EA-3486-4B47-86A7-2353B88A8773 TD_E820_TABLE_HOB_GUID
93BB96AF-B9F2-4EB8-9462-E0BA74564236 gUefiOvmfPkgTokenSpaceGuid
"""
# Our own name -> GUID table, so a name registered first by another module cannot change dispatch.
HOB_GUIDS: dict[str, uuid.UUID] = {}
for _line in _GUID_NAMES.strip().splitlines():
    _g, _n = _line.split()
    HOB_GUIDS[_n] = guids.register(_g, _n)
G = HOB_GUIDS.__getitem__

# TCG PC Client PFP spec / UefiTcgPlatform.h event types (the ones firmware HOBs carry).
EVENT_TYPES = {
    0x0: "EV_PREBOOT_CERT", 0x1: "EV_POST_CODE", 0x3: "EV_NO_ACTION", 0x4: "EV_SEPARATOR",
    0x5: "EV_ACTION", 0x6: "EV_EVENT_TAG", 0x7: "EV_S_CRTM_CONTENTS", 0x8: "EV_S_CRTM_VERSION",
    0x9: "EV_CPU_MICROCODE", 0xA: "EV_PLATFORM_CONFIG_FLAGS", 0xB: "EV_TABLE_OF_DEVICES",
    0xC: "EV_COMPACT_HASH", 0xF: "EV_NONHOST_CODE", 0x10: "EV_NONHOST_CONFIG", 0x11: "EV_NONHOST_INFO",
    0x12: "EV_OMIT_BOOT_DEVICE_EVENTS",
    0x80000001: "EV_EFI_VARIABLE_DRIVER_CONFIG", 0x80000002: "EV_EFI_VARIABLE_BOOT",
    0x80000003: "EV_EFI_BOOT_SERVICES_APPLICATION", 0x80000004: "EV_EFI_BOOT_SERVICES_DRIVER",
    0x80000005: "EV_EFI_RUNTIME_SERVICES_DRIVER", 0x80000006: "EV_EFI_GPT_EVENT",
    0x80000007: "EV_EFI_ACTION", 0x80000008: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    0x80000009: "EV_EFI_HANDOFF_TABLES", 0x8000000A: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
    0x8000000B: "EV_EFI_HANDOFF_TABLES2", 0x8000000C: "EV_EFI_VARIABLE_BOOT2",
    0x80000010: "EV_EFI_HCRTM_EVENT", 0x800000E0: "EV_EFI_VARIABLE_AUTHORITY",
    0x800000E1: "EV_EFI_SPDM_FIRMWARE_BLOB", 0x800000E2: "EV_EFI_SPDM_FIRMWARE_CONFIG",
}
# TCG Algorithm Registry: TPM_ALG_ID -> (name, digest size).
HASH_ALGS = {0x0004: ("sha1", 20), 0x000B: ("sha256", 32), 0x000C: ("sha384", 48),
             0x000D: ("sha512", 64), 0x0012: ("sm3_256", 32)}
E820_TYPES = {1: "RAM", 2: "RESERVED", 3: "ACPI", 4: "NVS", 5: "UNUSABLE", 6: "DISABLED", 7: "PMEM",
              12: "SOFT_RESERVED"}


# ---- shared helpers (decode.py uses them too) --------------------------------------------------

def enum_name(enum: Enum, value: int) -> str | None:
    name = enum.decmapping.get(int(value))
    return None if name is None else str(name)


def display_for(subcon: construct.Construct, value: Any) -> tuple[Any, str | None]:
    """(raw value, display text) of a parsed field: enum labels, GUID names."""
    if isinstance(value, uuid.UUID):
        return value, guids.describe(value)
    if isinstance(value, construct.EnumIntegerString):
        return int(value), str(value)
    if isinstance(subcon, Enum) and isinstance(value, int):
        return value, f"0x{value:x} (unknown)"
    return value, None


def add_struct_fields(node: Node, struct: Struct, parsed: Any, offset: int, *,
                      skip: tuple[str, ...] = ("Header",),
                      display: dict[str, Callable[[Any], str]] | None = None) -> int:
    """Add every named field of `struct` (nested structs flattened) at absolute `offset`; returns
    the offset past the struct. Field names stay the spec names of the declaration."""
    return add_fields(node, struct, parsed, offset, flatten=True, skip=skip, displays=display, convert=display_for)


def parse_or_problem(node: Node, struct: Struct, data: bytes, rel: int, offset: int, what: str) -> Any:
    """Parse `struct` at data[rel:], or add a located problem and return None."""
    try:
        return parse_at(struct, data, rel, what)
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
    entry = static_size(s.EFI_MEMORY_TYPE_INFORMATION)
    for i in range(min(len(data) // entry, MAX_ARRAY_ENTRIES)):
        rel = i * entry
        parsed = s.EFI_MEMORY_TYPE_INFORMATION.parse(data[rel:rel + entry])
        mtype = int(parsed.Type)
        name = enum_name(s.EFI_MEMORY_TYPE, mtype) or f"0x{mtype:x}"
        child = Node("memory-type-information", f"{name}: {parsed.NumberOfPages} pages", node_space(node),
                     offset + rel, entry)
        add_struct_fields(child, s.EFI_MEMORY_TYPE_INFORMATION, parsed, offset + rel)
        node.append(child)
        if mtype == 16:  # EfiMaxMemoryType ends the array; the rest is padding
            return
    node.warn(offset, "memory type information array has no EfiMaxMemoryType terminator")


def _platform_info(node: Node, data: bytes, offset: int) -> None:
    """OvmfPkg EFI_HOB_PLATFORM_INFO. Its layout changes between edk2 releases and the HOB has no
    version field, so fields are decoded only when the size fits the 2022.11 layout exactly
    (HOB data rounded up to 8); other sizes are shown raw."""
    size = static_size(s.EFI_HOB_PLATFORM_INFO_202211)
    if not size <= len(data) < size + 8:
        node.note(offset, f"EFI_HOB_PLATFORM_INFO of {len(data)} bytes: layout of this edk2 version "
                          f"not known (2022.11 is {size} bytes), shown raw")
        return
    parsed = s.EFI_HOB_PLATFORM_INFO_202211.parse(data[:size])
    node.add("Layout", "edk2-stable202211", None, None)
    add_struct_fields(node, s.EFI_HOB_PLATFORM_INFO_202211, parsed, offset, skip=("GuidHeader",))


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
        if alg not in HASH_ALGS:
            node.problem(offset + rel, f"TPMT_HA: unknown hashAlg 0x{alg:04x}, digest size unknown")
            return None
        name, dsize = HASH_ALGS[alg]
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


def _tcg_event2(node: Node, data: bytes, offset: int, start: Struct = s.TCG_PCR_EVENT2_START) -> None:
    """TCG_PCR_EVENT2 (gTcgEvent2EntryHobGuid) / CC_EVENT (gCcEventEntryHobGuid): index, EventType,
    TPML_DIGEST_VALUES, EventSize, Event (UefiTcgPlatform.h, CcMeasurement protocol header)."""
    parsed = parse_or_problem(node, start, data, 0, offset, "event header")
    if parsed is None:
        return
    add_struct_fields(node, start, parsed, offset,
                      display={"EventType": lambda v: EVENT_TYPES.get(v, f"0x{v:x}")})
    rel = _digests(node, data, static_size(start), offset, parsed.count)
    if rel is not None:
        _event_body(node, data, rel, offset)


def _cc_event(node: Node, data: bytes, offset: int) -> None:
    _tcg_event2(node, data, offset, s.CC_EVENT_START)


def _tcg_event(node: Node, data: bytes, offset: int) -> None:
    """TCG_PCR_EVENT (gTcgEventEntryHobGuid): TPM 1.2 header with one SHA-1 digest."""
    parsed = parse_or_problem(node, s.TCG_PCR_EVENT_HDR, data, 0, offset, "TCG_PCR_EVENT_HDR")
    if parsed is None:
        return
    add_struct_fields(node, s.TCG_PCR_EVENT_HDR, parsed, offset, skip=("EventSize",),
                      display={"EventType": lambda v: EVENT_TYPES.get(v, f"0x{v:x}"),
                               "Digest": lambda v: v.hex()})
    _event_body(node, data, static_size(s.TCG_PCR_EVENT_HDR) - 4, offset)


def _simple(struct: Struct, what: str, display: dict | None = None):
    def decode(node: Node, data: bytes, offset: int) -> None:
        parsed = parse_or_problem(node, struct, data, 0, offset, what)
        if parsed is not None:
            add_struct_fields(node, struct, parsed, offset, display=display)
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
    entry = static_size(s.EFI_E820_ENTRY64)
    for i in range(min(len(data) // entry, MAX_ARRAY_ENTRIES)):
        rel = i * entry
        parsed = s.EFI_E820_ENTRY64.parse(data[rel:rel + entry])
        if parsed.Length == 0 and parsed.Type == 0 and parsed.Address == 0:
            break  # zero entry: end of table / padding
        tname = E820_TYPES.get(parsed.Type, f"0x{parsed.Type:x}")
        end = parsed.Address + max(parsed.Length, 1) - 1
        child = Node("e820-entry", f"{tname} 0x{parsed.Address:x}-0x{end:x} ({size_text(parsed.Length)})",
                     node_space(node), offset + rel, entry)
        add_struct_fields(child, s.EFI_E820_ENTRY64, parsed, offset + rel,
                          display={"Type": lambda v: E820_TYPES.get(v, f"0x{v:x}")})
        node.append(child)


def _pcd_database(node: Node, data: bytes, offset: int) -> None:
    parsed = parse_or_problem(node, s.PCD_DATABASE_INIT_START, data, 0, offset, "PCD database header")
    if parsed is None:
        return
    add_struct_fields(node, s.PCD_DATABASE_INIT_START, parsed, offset)
    if parsed.Length > len(data):
        node.problem(offset + 20, f"PCD database Length {parsed.Length} is past the end of the HOB "
                                  f"({len(data)} bytes)")


def node_space(node: Node):
    return node.space


DECODERS: dict[uuid.UUID, Callable[[Node, bytes, int], None]] = {
    G("gEfiMemoryTypeInformationGuid"): _memory_type_information,
    G("gUefiOvmfPkgPlatformInfoGuid"): _platform_info,
    G("gTcgEvent2EntryHobGuid"): _tcg_event2,
    G("gTcgEventEntryHobGuid"): _tcg_event,
    G("gCcEventEntryHobGuid"): _cc_event,
    G("gEdkiiMigratedFvInfoGuid"): _simple(s.EDKII_MIGRATED_FV_INFO, "EDKII_MIGRATED_FV_INFO"),
    G("gUefiOvmfPkgTdxAcpiHobGuid"): _acpi_table,
    G("TD_E820_TABLE_HOB_GUID"): _e820,
    G("gEfiSecPlatformInformation2PpiGuid"): _simple(s.EFI_SEC_PLATFORM_INFORMATION_RECORD2_START,
                                                     "EFI_SEC_PLATFORM_INFORMATION_RECORD2"),
    G("gPcdDataBaseHobGuid"): _pcd_database,
}


def decode_guid_data(node: Node, name: uuid.UUID, data: bytes, offset: int) -> bool:
    """Decode the payload of a GUID HOB named `name` into `node`; False when the GUID has no decoder."""
    fn = DECODERS.get(name)
    if fn is None:
        return False
    fn(node, data, offset)
    return True
