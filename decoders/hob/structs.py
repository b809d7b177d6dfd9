"""HOB wire layouts, as declared in edk2 `MdePkg/Include/Pi/PiHob.h` (PI spec vol. 3, chapter 5).

Declarations only (decoders.layout records and the spec's name tables); decode.py reads them and
builds Nodes. All fields little-endian, offsets from the start of the HOB. The records are flat:
a HOB's EFI_HOB_GENERIC_HEADER members (HobType, HobLength, Reserved) come first in each, and a
nested header (the allocation descriptor) is spelled out in place, at the same offsets.
"""
from __future__ import annotations

import uuid

from decoders.guids import gEfiHobMemoryAllocBspStoreGuid, gEfiHobMemoryAllocModuleGuid, gEfiHobMemoryAllocStackGuid  # noqa: F401
from decoders.layout import Layout
from decoders.tcg import TCG_PCR_EVENT_HDR  # noqa: F401 - gTcgEventEntryHobGuid payloads (guid_payloads)

# PiHob.h: HobType of EFI_HOB_GENERIC_HEADER.
EFI_HOB_TYPE = {
    0x0001: "HANDOFF",
    0x0002: "MEMORY_ALLOCATION",
    0x0003: "RESOURCE_DESCRIPTOR",
    0x0004: "GUID_EXTENSION",
    0x0005: "FV",
    0x0006: "CPU",
    0x0007: "MEMORY_POOL",
    0x0009: "FV2",
    0x000A: "LOAD_PEIM_UNUSED",
    0x000B: "UEFI_CAPSULE",
    0x000C: "FV3",
    0xFFFE: "UNUSED",
    0xFFFF: "END_OF_HOB_LIST",
}

# MdePkg/Include/Pi/PiBootMode.h.
EFI_BOOT_MODE = {
    0x00: "BOOT_WITH_FULL_CONFIGURATION",
    0x01: "BOOT_WITH_MINIMAL_CONFIGURATION",
    0x02: "BOOT_ASSUMING_NO_CONFIGURATION_CHANGES",
    0x03: "BOOT_WITH_FULL_CONFIGURATION_PLUS_DIAGNOSTICS",
    0x04: "BOOT_WITH_DEFAULT_SETTINGS",
    0x05: "BOOT_ON_S4_RESUME",
    0x06: "BOOT_ON_S5_RESUME",
    0x07: "BOOT_WITH_MFG_MODE_SETTINGS",
    0x10: "BOOT_ON_S2_RESUME",
    0x11: "BOOT_ON_S3_RESUME",
    0x12: "BOOT_ON_FLASH_UPDATE",
    0x20: "BOOT_IN_RECOVERY_MODE",
}

# MdePkg/Include/Uefi/UefiMultiPhase.h EFI_MEMORY_TYPE; 15 = EfiUnacceptedMemoryType since edk2-stable202211,
# so EfiMaxMemoryType (16) terminates the gEfiMemoryTypeInformationGuid array there.
EFI_MEMORY_TYPE = {
    0: "EfiReservedMemoryType",
    1: "EfiLoaderCode",
    2: "EfiLoaderData",
    3: "EfiBootServicesCode",
    4: "EfiBootServicesData",
    5: "EfiRuntimeServicesCode",
    6: "EfiRuntimeServicesData",
    7: "EfiConventionalMemory",
    8: "EfiUnusableMemory",
    9: "EfiACPIReclaimMemory",
    10: "EfiACPIMemoryNVS",
    11: "EfiMemoryMappedIO",
    12: "EfiMemoryMappedIOPortSpace",
    13: "EfiPalCode",
    14: "EfiPersistentMemory",
    15: "EfiUnacceptedMemoryType",
    16: "EfiMaxMemoryType",
}

# PiHob.h EFI_RESOURCE_TYPE; 7 was BZ3937_EFI_RESOURCE_MEMORY_UNACCEPTED in PrePiHob.h (2022-11)
# and became EFI_RESOURCE_MEMORY_UNACCEPTED in PI 1.8 / edk2 6fd2d58d5d.
EFI_RESOURCE_TYPE = {
    0: "SYSTEM_MEMORY",
    1: "MEMORY_MAPPED_IO",
    2: "IO",
    3: "FIRMWARE_DEVICE",
    4: "MEMORY_MAPPED_IO_PORT",
    5: "MEMORY_RESERVED",
    6: "IO_RESERVED",
    7: "MEMORY_UNACCEPTED",
}

# PiHob.h EFI_RESOURCE_ATTRIBUTE_* (bit -> name without the prefix). ResourceAttribute is read as a
# plain integer (unknown bits must survive for the lint); this is the name table.
EFI_RESOURCE_ATTRIBUTE = {
    0x00000001: "PRESENT",
    0x00000002: "INITIALIZED",
    0x00000004: "TESTED",
    0x00000008: "SINGLE_BIT_ECC",
    0x00000010: "MULTIPLE_BIT_ECC",
    0x00000020: "ECC_RESERVED_1",
    0x00000040: "ECC_RESERVED_2",
    0x00000080: "READ_PROTECTED",
    0x00000100: "WRITE_PROTECTED",
    0x00000200: "EXECUTION_PROTECTED",
    0x00000400: "UNCACHEABLE",
    0x00000800: "WRITE_COMBINEABLE",
    0x00001000: "WRITE_THROUGH_CACHEABLE",
    0x00002000: "WRITE_BACK_CACHEABLE",
    0x00004000: "16_BIT_IO",
    0x00008000: "32_BIT_IO",
    0x00010000: "64_BIT_IO",
    0x00020000: "UNCACHED_EXPORTED",
    0x00040000: "READ_ONLY_PROTECTED",
    0x00080000: "READ_ONLY_PROTECTABLE",
    0x00100000: "READ_PROTECTABLE",
    0x00200000: "WRITE_PROTECTABLE",
    0x00400000: "EXECUTION_PROTECTABLE",
    0x00800000: "PERSISTENT",
    0x01000000: "PERSISTABLE",
    0x02000000: "MORE_RELIABLE",
    0x04000000: "ENCRYPTED",
    0x08000000: "SPECIAL_PURPOSE",
    0x10000000: "HOT_PLUGGABLE",
}
RESOURCE_ATTRIBUTE_BITS = {name: bit for bit, name in EFI_RESOURCE_ATTRIBUTE.items()}

# EFI_HOB_GENERIC_HEADER, first in every HOB; named "Header.*" so that a HOB's own members (an
# allocation's Reserved) keep their names.
HEADER = (("Header.HobType", "H", EFI_HOB_TYPE),
          ("Header.HobLength", "H"),   # counts the header too; edk2 rounds it up to 8 (Pei/Hob/Hob.c)
          ("Header.Reserved", "I"))    # "This field must always be set to zero"
HEADER_NAMES = tuple(m[0] for m in HEADER)

EFI_HOB_GENERIC_HEADER = Layout("EFI_HOB_GENERIC_HEADER", *HEADER)

EFI_HOB_HANDOFF_INFO_TABLE = Layout(
    "EFI_HOB_HANDOFF_INFO_TABLE", *HEADER,
    ("Version", "I"),                  # EFI_HOB_HANDOFF_TABLE_VERSION = 9
    ("BootMode", "I", EFI_BOOT_MODE),
    ("EfiMemoryTop", "Q"),
    ("EfiMemoryBottom", "Q"),
    ("EfiFreeMemoryTop", "Q"),
    ("EfiFreeMemoryBottom", "Q"),
    ("EfiEndOfHobList", "Q"),
)

# EFI_HOB_MEMORY_ALLOCATION_HEADER, inside EFI_HOB_MEMORY_ALLOCATION and _MODULE at offset 8.
MEMORY_ALLOCATION_HEADER = (
    ("Name", "G"),                     # zero, or STACK / BSP_STORE / MODULE (MemoryAllocationHob.h)
    ("MemoryBaseAddress", "Q"),
    ("MemoryLength", "Q"),
    ("MemoryType", "I", EFI_MEMORY_TYPE),
    ("Reserved", "4s"),                # "Padding for Itanium processor family"
)

EFI_HOB_MEMORY_ALLOCATION = Layout("EFI_HOB_MEMORY_ALLOCATION", *HEADER, *MEMORY_ALLOCATION_HEADER)

EFI_HOB_MEMORY_ALLOCATION_MODULE = Layout(
    "EFI_HOB_MEMORY_ALLOCATION_MODULE", *HEADER, *MEMORY_ALLOCATION_HEADER,
    ("ModuleName", "G"),
    ("EntryPoint", "Q"),
)

EFI_HOB_RESOURCE_DESCRIPTOR = Layout(
    "EFI_HOB_RESOURCE_DESCRIPTOR", *HEADER,
    ("Owner", "G"),
    ("ResourceType", "I", EFI_RESOURCE_TYPE),
    ("ResourceAttribute", "I"),        # EFI_RESOURCE_ATTRIBUTE bits
    ("PhysicalStart", "Q"),
    ("ResourceLength", "Q"),
)

EFI_HOB_GUID_TYPE = Layout(
    "EFI_HOB_GUID_TYPE", *HEADER,
    ("Name", "G"),
    # GUID-specific data follows, HobLength - 24 bytes (padding included).
)

EFI_HOB_FIRMWARE_VOLUME = Layout("EFI_HOB_FIRMWARE_VOLUME", *HEADER, ("BaseAddress", "Q"), ("Length", "Q"))

EFI_HOB_FIRMWARE_VOLUME2 = Layout(
    "EFI_HOB_FIRMWARE_VOLUME2", *HEADER,
    ("BaseAddress", "Q"),
    ("Length", "Q"),
    ("FvName", "G"),
    ("FileName", "G"),
)

EFI_HOB_FIRMWARE_VOLUME3 = Layout(
    "EFI_HOB_FIRMWARE_VOLUME3", *HEADER,
    ("BaseAddress", "Q"),
    ("Length", "Q"),
    ("AuthenticationStatus", "I"),
    ("ExtractedFv", "B"),              # BOOLEAN
    (None, "3x"),                      # C struct padding: EFI_GUID is 4-byte aligned (UINT32 Data1), so FvName sits at 32
    ("FvName", "G"),
    ("FileName", "G"),
)

EFI_HOB_CPU = Layout(
    "EFI_HOB_CPU", *HEADER,
    ("SizeOfMemorySpace", "B"),
    ("SizeOfIoSpace", "B"),
    ("Reserved", "6s"),                # "will always be set to zero"
)

EFI_HOB_MEMORY_POOL = Layout("EFI_HOB_MEMORY_POOL", *HEADER)     # pool bytes follow

EFI_HOB_UEFI_CAPSULE = Layout("EFI_HOB_UEFI_CAPSULE", *HEADER, ("BaseAddress", "Q"), ("Length", "Q"))

ZERO_GUID = uuid.UUID(int=0)


# ---- GUID-extension payloads (the data after EFI_HOB_GUID_TYPE) -------------------------------

# MdeModulePkg/Include/Guid/MemoryTypeInformation.h; the array ends with Type = EfiMaxMemoryType.
EFI_MEMORY_TYPE_INFORMATION = Layout(
    "EFI_MEMORY_TYPE_INFORMATION",
    ("Type", "I", EFI_MEMORY_TYPE),
    ("NumberOfPages", "I"),
)

# OvmfPkg/Include/Library/PlatformInitLib.h as of edk2-stable202211 (#pragma pack(1)). The HOB data
# repeats the struct's own GuidHeader (BuildGuidDataHob copies the whole struct), zero-filled.
# Checked against a live Debian OVMF 2022.11 boot: HostBridgeDevId 0x29C0 at data+0x18, the PCI
# windows equal the MMIO/IO resource descriptors, S3AcpiReservedMemory* equal an allocation HOB.
# Later edk2 inserts LowMemory, PcdPciMmio64Override, FeatureControl... (different layout).
EFI_HOB_PLATFORM_INFO_202211 = Layout(
    "EFI_HOB_PLATFORM_INFO",
    ("GuidHeader", "24s"),
    ("HostBridgeDevId", "H"),
    ("PcdConfidentialComputingGuestAttr", "Q"),
    ("SevEsIsEnabled", "B"),
    ("BootMode", "I", EFI_BOOT_MODE),
    ("S3Supported", "B"),
    ("SmmSmramRequire", "B"),
    ("Q35SmramAtDefaultSmbase", "B"),
    ("Q35TsegMbytes", "H"),
    ("FirstNonAddress", "Q"),
    ("PhysMemAddressWidth", "B"),
    ("Uc32Base", "I"),
    ("Uc32Size", "I"),
    ("PcdSetNxForStack", "B"),
    ("PcdTdxSharedBitMask", "Q"),
    ("PcdPciMmio64Base", "Q"),
    ("PcdPciMmio64Size", "Q"),
    ("PcdPciMmio32Base", "I"),
    ("PcdPciMmio32Size", "I"),
    ("PcdPciIoBase", "Q"),
    ("PcdPciIoSize", "Q"),
    ("PcdEmuVariableNvStoreReserved", "Q"),
    ("PcdCpuBootLogicalProcessorNumber", "I"),
    ("PcdCpuMaxLogicalProcessorNumber", "I"),
    ("DefaultMaxCpuNumber", "I"),
    ("S3AcpiReservedMemoryBase", "I"),
    ("S3AcpiReservedMemorySize", "I"),
)

# TCG_PCR_EVENT_HDR (TPM 1.2, SHA-1 digest): decoders.tcg's, the event log's own.

# TCG_PCR_EVENT2 / CC_EVENT start; TPML_DIGEST_VALUES (count, then TPMT_HA{hashAlg, digest}) follows
# and has variable size, so decode walks it with the TPMI_ALG_HASH sizes below.
TCG_PCR_EVENT2_START = Layout("TCG_PCR_EVENT2", ("PCRIndex", "I"), ("EventType", "I"), ("count", "I"))
CC_EVENT_START = Layout("CC_EVENT", ("MrIndex", "I"), ("EventType", "I"), ("count", "I"))

# MdeModulePkg/Include/Guid/MigratedFvInfo.h
EDKII_MIGRATED_FV_INFO = Layout(
    "EDKII_MIGRATED_FV_INFO",
    ("FvOrgBase", "I"),
    ("FvNewBase", "I"),
    ("FvDataBase", "I"),
    ("FvLength", "I"),
)

# MdePkg/Include/IndustryStandard/E820.h EFI_E820_ENTRY64 (packed, 20 bytes); td-shim's E820 HOB
# uses the same {addr, size, type} entry.
EFI_E820_ENTRY64 = Layout("EFI_E820_ENTRY64", ("Address", "Q"), ("Length", "Q"), ("Type", "I"))

# MdePkg/Include/Ppi/SecPlatformInformation2.h: NumberOfCpus, then CpuInstance[] (CpuLocation + a
# union whose size depends on the Itanium member); only the count is decoded.
EFI_SEC_PLATFORM_INFORMATION_RECORD2_START = Layout("EFI_SEC_PLATFORM_INFORMATION_RECORD2", ("NumberOfCpus", "I"))

# MdeModulePkg/Include/Guid/PcdDataBaseSignatureGuid.h PCD_DATABASE_INIT (first fields).
PCD_DATABASE_INIT_START = Layout(
    "PCD_DATABASE_INIT",
    ("Signature", "G"),
    ("BuildVersion", "I"),
    ("Length", "I"),
)
