"""EFI_GUID byte order, end to end: a GUID written field by field as the C struct lays it out
(UEFI 2.10 Appendix A, edk2 MdePkg/Include/Uefi/UefiBaseType.h: UINT32 Data1, UINT16 Data2,
UINT16 Data3 little-endian, then UINT8 Data4[8]) decodes to the GUID of its text form, through
guids.from_bytes, a decoders.layout "G" member and a HOB list packed with `struct` from MdePkg/Include/Pi/PiHob.h."""
from __future__ import annotations

import struct
import uuid

from decoders import guids
from decoders.hob import decode_hob_list

# Every field distinct and no byte a palindrome, so any swap of Data1/Data2/Data3 shows.
TEXT = "12345678-9abc-def0-0123-456789abcdef"
WIRE = struct.pack("<IHH", 0x12345678, 0x9ABC, 0xDEF0) + bytes.fromhex("0123456789abcdef")


def test_wire_bytes_are_data1_data2_data3_little_endian():
    assert WIRE.hex() == "78563412bc9af0de0123456789abcdef"


def test_from_bytes_and_layout_guids_read_and_write_the_c_layout():
    from decoders.layout import Layout

    record = Layout("R", ("Guid", "G"))
    assert guids.from_bytes(WIRE) == uuid.UUID(TEXT)
    assert record.read(WIRE)["Guid"] == uuid.UUID(TEXT)
    assert record.build({"Guid": uuid.UUID(TEXT)}) == WIRE
    assert record.size == 16


def hob(hob_type: int, body: bytes) -> bytes:
    """EFI_HOB_GENERIC_HEADER (UINT16 HobType, UINT16 HobLength incl. the header, UINT32 Reserved) + body."""
    return struct.pack("<HHI", hob_type, 8 + len(body), 0) + body


def test_resource_descriptor_owner_guid():
    """EFI_HOB_RESOURCE_DESCRIPTOR: Header, EFI_GUID Owner, EFI_RESOURCE_TYPE ResourceType (UINT32),
    EFI_RESOURCE_ATTRIBUTE_TYPE ResourceAttribute (UINT32), PhysicalStart, ResourceLength (UINT64)."""
    resource = hob(3, WIRE + struct.pack("<IIQQ", 0, 0x7, 0x100000, 0x200000))
    guid_hob = hob(4, WIRE + b"payload\0")  # EFI_HOB_GUID_TYPE: Header, EFI_GUID Name, data
    listing = resource + guid_hob + hob(0xFFFF, b"")
    root = decode_hob_list(listing)
    res, ext, end = root.children
    assert res.get("Owner") == uuid.UUID(TEXT)
    owner = res.field("Owner")
    assert (owner.offset, owner.size, owner.display) == (8, 16, TEXT.upper())
    assert (res.get("ResourceType"), res.get("PhysicalStart"), res.get("ResourceLength")) == (0, 0x100000, 0x200000)
    assert ext.get("Name") == uuid.UUID(TEXT) and ext.field("Name").offset == len(resource) + 8
    assert end.title == "END_OF_HOB_LIST" and not root.problems


def test_memory_allocation_name_guid_picks_the_module_layout():
    """EFI_HOB_MEMORY_ALLOCATION_MODULE: Header, then EFI_HOB_MEMORY_ALLOCATION_HEADER (EFI_GUID Name,
    MemoryBaseAddress, MemoryLength, EFI_MEMORY_TYPE MemoryType, UINT8 Reserved[4]), EFI_GUID
    ModuleName, EntryPoint. The Name gEfiHobMemoryAllocModuleGuid (f8e21975-0899-4f58-a4be-5525a9c6d77a)
    written field by field selects the module layout."""
    module = struct.pack("<IHH", 0xF8E21975, 0x0899, 0x4F58) + bytes.fromhex("a4be5525a9c6d77a")
    body = module + struct.pack("<QQI4x", 0x7F000000, 0x10000, 4) + WIRE + struct.pack("<Q", 0x7F001234)
    root = decode_hob_list(hob(2, body) + hob(0xFFFF, b""))
    alloc = root.children[0]
    assert alloc.get("Name") == guids.gEfiHobMemoryAllocModuleGuid
    assert alloc.get("ModuleName") == uuid.UUID(TEXT) and alloc.field("ModuleName").offset == 8 + 40
    assert alloc.get("EntryPoint") == 0x7F001234
    assert alloc.title.endswith("entry 0x7f001234")
