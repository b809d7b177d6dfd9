"""EFI_SYSTEM_TABLE and its configuration tables read through a Memory (decoders/efi/tables.py),
from tables packed with `struct` as edk2 MdePkg/Include/Uefi/UefiSpec.h lays them out on X64."""
from __future__ import annotations

import struct
import uuid
import zlib

from decoders import guids
from decoders.efi.tables import config_tables, decode_loaded_image, decode_system_table
from decoders.memory import BytesMemory
from tests.decoders.wire import efi_guid

BASE = 0x7F000000
ACPI20 = uuid.UUID("8868e871-e4f1-11d3-bc22-0080c73c8881")  # UEFI 2.10 §4.6 EFI_ACPI_20_TABLE_GUID
HOB_LIST = uuid.UUID("7739f24c-93d7-11d4-9a3a-0090273fc14d")  # PI vol. 3 HOB_LIST_GUID



def system_table(config_at: int, entries: int) -> bytes:
    """EFI_SYSTEM_TABLE (X64): EFI_TABLE_HEADER {Signature "IBI SYST", Revision, HeaderSize 120,
    CRC32, Reserved}, FirmwareVendor, FirmwareRevision (+4 bytes of padding), six console
    handles/protocols, RuntimeServices, BootServices, NumberOfTableEntries, ConfigurationTable."""
    body = struct.pack("<QI4x", 0, 0x10000) + bytes(6 * 8) + struct.pack("<QQQQ", 0, 0, entries, config_at)
    head = struct.pack("<8sIIII", b"IBI SYST", (2 << 16) | 70, 120, 0, 0)
    crc = zlib.crc32(head + body)
    return struct.pack("<8sIIII", b"IBI SYST", (2 << 16) | 70, 120, crc, 0) + body


def test_configuration_table_guids_in_efi_byte_order():
    """EFI_CONFIGURATION_TABLE: EFI_GUID VendorGuid, VOID *VendorTable (24 bytes on X64)."""
    config = efi_guid(ACPI20) + struct.pack("<Q", 0x7FB7E014) + efi_guid(HOB_LIST) + struct.pack("<Q", 0x7E000000)
    st = system_table(BASE + 0x200, 2)
    assert len(st) == 120
    image = st + bytes(0x200 - len(st)) + config
    node = decode_system_table(BytesMemory(image, BASE), BASE)
    assert node.get("NumberOfTableEntries") == 2 and node.get("PointerSize") == 8
    assert not [p for p in node.problems if p.offset == 16]  # the CRC32 we packed is the one edk2 computes
    assert config_tables(node) == [(ACPI20, 0x7FB7E014), (HOB_LIST, 0x7E000000)]
    first = node.children[0]
    assert (first.field("VendorGuid").offset, first.field("VendorGuid").display) == \
        (0, "gEfiAcpi20TableGuid (8868E871-E4F1-11D3-BC22-0080C73C8881)")
    assert node.children[1].get("VendorGuid") == guids.gEfiHobListGuid


def test_loaded_image_memory_types_are_named():
    """EFI_LOADED_IMAGE_PROTOCOL (X64): Revision u32 (+4), ParentHandle, SystemTable, DeviceHandle,
    FilePath, Reserved, LoadOptionsSize u32 (+4), LoadOptions, ImageBase, ImageSize u64,
    ImageCodeType, ImageDataType (EFI_MEMORY_TYPE u32), Unload."""
    raw = (struct.pack("<I4xQQQQQI4xQ", 0x1000, 0, 0, 0, 0, 0, 0, 0) + struct.pack("<QQII", 0x7E800000, 0x2000, 3, 4)
           + struct.pack("<Q", 0))
    node = decode_loaded_image(BytesMemory(raw, BASE), BASE)
    assert node.field("ImageCodeType").display == "EfiBootServicesCode"
    assert node.field("ImageDataType").display == "EfiBootServicesData"
    assert node.get("ImageBase") == 0x7E800000
