"""HOB wire layouts, as declared in edk2 `MdePkg/Include/Pi/PiHob.h` (PI spec vol. 3, chapter 5).

Construct declarations only; decode.py reads them and builds Nodes.
All fields little-endian, offsets from the start of the HOB.
"""
from __future__ import annotations

import uuid

from construct import Bytes, Enum, FlagsEnum, Int8ul, Int16ul, Int32ul, Int64ul, Padding, Struct

from decoders.guids import (EFI_GUID, gEfiHobMemoryAllocBspStoreGuid, gEfiHobMemoryAllocModuleGuid,  # noqa: F401
                            gEfiHobMemoryAllocStackGuid)

EFI_PHYSICAL_ADDRESS = Int64ul

# PiHob.h: HobType of EFI_HOB_GENERIC_HEADER.
EFI_HOB_TYPE = Enum(
    Int16ul,
    HANDOFF=0x0001,
    MEMORY_ALLOCATION=0x0002,
    RESOURCE_DESCRIPTOR=0x0003,
    GUID_EXTENSION=0x0004,
    FV=0x0005,
    CPU=0x0006,
    MEMORY_POOL=0x0007,
    FV2=0x0009,
    LOAD_PEIM_UNUSED=0x000A,
    UEFI_CAPSULE=0x000B,
    FV3=0x000C,
    UNUSED=0xFFFE,
    END_OF_HOB_LIST=0xFFFF,
)

# MdePkg/Include/Pi/PiBootMode.h.
EFI_BOOT_MODE = Enum(
    Int32ul,
    BOOT_WITH_FULL_CONFIGURATION=0x00,
    BOOT_WITH_MINIMAL_CONFIGURATION=0x01,
    BOOT_ASSUMING_NO_CONFIGURATION_CHANGES=0x02,
    BOOT_WITH_FULL_CONFIGURATION_PLUS_DIAGNOSTICS=0x03,
    BOOT_WITH_DEFAULT_SETTINGS=0x04,
    BOOT_ON_S4_RESUME=0x05,
    BOOT_ON_S5_RESUME=0x06,
    BOOT_WITH_MFG_MODE_SETTINGS=0x07,
    BOOT_ON_S2_RESUME=0x10,
    BOOT_ON_S3_RESUME=0x11,
    BOOT_ON_FLASH_UPDATE=0x12,
    BOOT_IN_RECOVERY_MODE=0x20,
)

# MdePkg/Include/Uefi/UefiMultiPhase.h EFI_MEMORY_TYPE; 15 = EfiUnacceptedMemoryType since edk2-stable202211,
# so EfiMaxMemoryType (16) terminates the gEfiMemoryTypeInformationGuid array there.
EFI_MEMORY_TYPE = Enum(
    Int32ul,
    EfiReservedMemoryType=0,
    EfiLoaderCode=1,
    EfiLoaderData=2,
    EfiBootServicesCode=3,
    EfiBootServicesData=4,
    EfiRuntimeServicesCode=5,
    EfiRuntimeServicesData=6,
    EfiConventionalMemory=7,
    EfiUnusableMemory=8,
    EfiACPIReclaimMemory=9,
    EfiACPIMemoryNVS=10,
    EfiMemoryMappedIO=11,
    EfiMemoryMappedIOPortSpace=12,
    EfiPalCode=13,
    EfiPersistentMemory=14,
    EfiUnacceptedMemoryType=15,
    EfiMaxMemoryType=16,
)

# PiHob.h EFI_RESOURCE_TYPE; 7 was BZ3937_EFI_RESOURCE_MEMORY_UNACCEPTED in PrePiHob.h (2022-11)
# and became EFI_RESOURCE_MEMORY_UNACCEPTED in PI 1.8 / edk2 6fd2d58d5d.
EFI_RESOURCE_TYPE = Enum(
    Int32ul,
    SYSTEM_MEMORY=0,
    MEMORY_MAPPED_IO=1,
    IO=2,
    FIRMWARE_DEVICE=3,
    MEMORY_MAPPED_IO_PORT=4,
    MEMORY_RESERVED=5,
    IO_RESERVED=6,
    MEMORY_UNACCEPTED=7,
)

# PiHob.h EFI_RESOURCE_ATTRIBUTE_*. Parsed as a plain Int32ul in the HOB structs (unknown bits
# must survive for the lint); this FlagsEnum is the name table.
EFI_RESOURCE_ATTRIBUTE = FlagsEnum(
    Int32ul,
    PRESENT=0x00000001,
    INITIALIZED=0x00000002,
    TESTED=0x00000004,
    SINGLE_BIT_ECC=0x00000008,
    MULTIPLE_BIT_ECC=0x00000010,
    ECC_RESERVED_1=0x00000020,
    ECC_RESERVED_2=0x00000040,
    READ_PROTECTED=0x00000080,
    WRITE_PROTECTED=0x00000100,
    EXECUTION_PROTECTED=0x00000200,
    UNCACHEABLE=0x00000400,
    WRITE_COMBINEABLE=0x00000800,
    WRITE_THROUGH_CACHEABLE=0x00001000,
    WRITE_BACK_CACHEABLE=0x00002000,
    _16_BIT_IO=0x00004000,
    _32_BIT_IO=0x00008000,
    _64_BIT_IO=0x00010000,
    UNCACHED_EXPORTED=0x00020000,
    READ_ONLY_PROTECTED=0x00040000,
    READ_ONLY_PROTECTABLE=0x00080000,
    READ_PROTECTABLE=0x00100000,
    WRITE_PROTECTABLE=0x00200000,
    EXECUTION_PROTECTABLE=0x00400000,
    PERSISTENT=0x00800000,
    PERSISTABLE=0x01000000,
    MORE_RELIABLE=0x02000000,
    ENCRYPTED=0x04000000,
    SPECIAL_PURPOSE=0x08000000,
    HOT_PLUGGABLE=0x10000000,
)

EFI_HOB_GENERIC_HEADER = Struct(
    "HobType" / EFI_HOB_TYPE,
    "HobLength" / Int16ul,  # counts the header too; edk2 rounds it up to 8 (Pei/Hob/Hob.c)
    "Reserved" / Int32ul,  # "This field must always be set to zero"
)

EFI_HOB_HANDOFF_INFO_TABLE = Struct(
    "Header" / EFI_HOB_GENERIC_HEADER,
    "Version" / Int32ul,  # EFI_HOB_HANDOFF_TABLE_VERSION = 9
    "BootMode" / EFI_BOOT_MODE,
    "EfiMemoryTop" / EFI_PHYSICAL_ADDRESS,
    "EfiMemoryBottom" / EFI_PHYSICAL_ADDRESS,
    "EfiFreeMemoryTop" / EFI_PHYSICAL_ADDRESS,
    "EfiFreeMemoryBottom" / EFI_PHYSICAL_ADDRESS,
    "EfiEndOfHobList" / EFI_PHYSICAL_ADDRESS,
)

EFI_HOB_MEMORY_ALLOCATION_HEADER = Struct(
    "Name" / EFI_GUID,  # zero, or STACK / BSP_STORE / MODULE (MemoryAllocationHob.h)
    "MemoryBaseAddress" / EFI_PHYSICAL_ADDRESS,
    "MemoryLength" / Int64ul,
    "MemoryType" / EFI_MEMORY_TYPE,
    "Reserved" / Bytes(4),  # "Padding for Itanium processor family"
)

EFI_HOB_MEMORY_ALLOCATION = Struct(
    "Header" / EFI_HOB_GENERIC_HEADER,
    "AllocDescriptor" / EFI_HOB_MEMORY_ALLOCATION_HEADER,
)

EFI_HOB_MEMORY_ALLOCATION_MODULE = Struct(
    "Header" / EFI_HOB_GENERIC_HEADER,
    "MemoryAllocationHeader" / EFI_HOB_MEMORY_ALLOCATION_HEADER,
    "ModuleName" / EFI_GUID,
    "EntryPoint" / EFI_PHYSICAL_ADDRESS,
)

EFI_HOB_RESOURCE_DESCRIPTOR = Struct(
    "Header" / EFI_HOB_GENERIC_HEADER,
    "Owner" / EFI_GUID,
    "ResourceType" / EFI_RESOURCE_TYPE,
    "ResourceAttribute" / Int32ul,  # EFI_RESOURCE_ATTRIBUTE bits
    "PhysicalStart" / EFI_PHYSICAL_ADDRESS,
    "ResourceLength" / Int64ul,
)

EFI_HOB_GUID_TYPE = Struct(
    "Header" / EFI_HOB_GENERIC_HEADER,
    "Name" / EFI_GUID,
    # GUID-specific data follows, HobLength - 24 bytes (padding included).
)

EFI_HOB_FIRMWARE_VOLUME = Struct(
    "Header" / EFI_HOB_GENERIC_HEADER,
    "BaseAddress" / EFI_PHYSICAL_ADDRESS,
    "Length" / Int64ul,
)

EFI_HOB_FIRMWARE_VOLUME2 = Struct(
    "Header" / EFI_HOB_GENERIC_HEADER,
    "BaseAddress" / EFI_PHYSICAL_ADDRESS,
    "Length" / Int64ul,
    "FvName" / EFI_GUID,
    "FileName" / EFI_GUID,
)

EFI_HOB_FIRMWARE_VOLUME3 = Struct(
    "Header" / EFI_HOB_GENERIC_HEADER,
    "BaseAddress" / EFI_PHYSICAL_ADDRESS,
    "Length" / Int64ul,
    "AuthenticationStatus" / Int32ul,
    "ExtractedFv" / Int8ul,  # BOOLEAN
    Padding(3),  # C struct padding: EFI_GUID is 4-byte aligned (UINT32 Data1), so FvName sits at 32
    "FvName" / EFI_GUID,
    "FileName" / EFI_GUID,
)

EFI_HOB_CPU = Struct(
    "Header" / EFI_HOB_GENERIC_HEADER,
    "SizeOfMemorySpace" / Int8ul,
    "SizeOfIoSpace" / Int8ul,
    "Reserved" / Bytes(6),  # "will always be set to zero"
)

EFI_HOB_MEMORY_POOL = Struct(
    "Header" / EFI_HOB_GENERIC_HEADER,
    # pool bytes follow
)

EFI_HOB_UEFI_CAPSULE = Struct(
    "Header" / EFI_HOB_GENERIC_HEADER,
    "BaseAddress" / EFI_PHYSICAL_ADDRESS,
    "Length" / Int64ul,
)

ZERO_GUID = uuid.UUID(int=0)


# ---- GUID-extension payloads (the data after EFI_HOB_GUID_TYPE) -------------------------------

# MdeModulePkg/Include/Guid/MemoryTypeInformation.h; the array ends with Type = EfiMaxMemoryType.
EFI_MEMORY_TYPE_INFORMATION = Struct(
    "Type" / EFI_MEMORY_TYPE,
    "NumberOfPages" / Int32ul,
)

# OvmfPkg/Include/Library/PlatformInitLib.h as of edk2-stable202211 (#pragma pack(1)). The HOB data
# repeats the struct's own GuidHeader (BuildGuidDataHob copies the whole struct), zero-filled.
# Checked against a live Debian OVMF 2022.11 boot: HostBridgeDevId 0x29C0 at data+0x18, the PCI
# windows equal the MMIO/IO resource descriptors, S3AcpiReservedMemory* equal an allocation HOB.
# Later edk2 inserts LowMemory, PcdPciMmio64Override, FeatureControl... (different layout).
EFI_HOB_PLATFORM_INFO_202211 = Struct(
    "GuidHeader" / Bytes(24),
    "HostBridgeDevId" / Int16ul,
    "PcdConfidentialComputingGuestAttr" / Int64ul,
    "SevEsIsEnabled" / Int8ul,
    "BootMode" / EFI_BOOT_MODE,
    "S3Supported" / Int8ul,
    "SmmSmramRequire" / Int8ul,
    "Q35SmramAtDefaultSmbase" / Int8ul,
    "Q35TsegMbytes" / Int16ul,
    "FirstNonAddress" / Int64ul,
    "PhysMemAddressWidth" / Int8ul,
    "Uc32Base" / Int32ul,
    "Uc32Size" / Int32ul,
    "PcdSetNxForStack" / Int8ul,
    "PcdTdxSharedBitMask" / Int64ul,
    "PcdPciMmio64Base" / Int64ul,
    "PcdPciMmio64Size" / Int64ul,
    "PcdPciMmio32Base" / Int32ul,
    "PcdPciMmio32Size" / Int32ul,
    "PcdPciIoBase" / Int64ul,
    "PcdPciIoSize" / Int64ul,
    "PcdEmuVariableNvStoreReserved" / Int64ul,
    "PcdCpuBootLogicalProcessorNumber" / Int32ul,
    "PcdCpuMaxLogicalProcessorNumber" / Int32ul,
    "DefaultMaxCpuNumber" / Int32ul,
    "S3AcpiReservedMemoryBase" / Int32ul,
    "S3AcpiReservedMemorySize" / Int32ul,
)

# MdePkg/Include/IndustryStandard/UefiTcgPlatform.h TCG_PCR_EVENT_HDR (TPM 1.2, SHA-1 digest).
TCG_PCR_EVENT_HDR = Struct(
    "PCRIndex" / Int32ul,
    "EventType" / Int32ul,
    "Digest" / Bytes(20),
    "EventSize" / Int32ul,
)

# TCG_PCR_EVENT2 / CC_EVENT start; TPML_DIGEST_VALUES (count, then TPMT_HA{hashAlg, digest}) follows
# and has variable size, so decode walks it with the TPMI_ALG_HASH sizes below.
TCG_PCR_EVENT2_START = Struct(
    "PCRIndex" / Int32ul,
    "EventType" / Int32ul,
    "count" / Int32ul,
)
CC_EVENT_START = Struct(
    "MrIndex" / Int32ul,
    "EventType" / Int32ul,
    "count" / Int32ul,
)
TPMI_ALG_HASH = Int16ul

# MdeModulePkg/Include/Guid/MigratedFvInfo.h
EDKII_MIGRATED_FV_INFO = Struct(
    "FvOrgBase" / Int32ul,
    "FvNewBase" / Int32ul,
    "FvDataBase" / Int32ul,
    "FvLength" / Int32ul,
)


# MdePkg/Include/IndustryStandard/E820.h EFI_E820_ENTRY64 (packed, 20 bytes); td-shim's E820 HOB
# uses the same {addr, size, type} entry.
EFI_E820_ENTRY64 = Struct(
    "Address" / Int64ul,
    "Length" / Int64ul,
    "Type" / Int32ul,
)

# MdePkg/Include/Ppi/SecPlatformInformation2.h: NumberOfCpus, then CpuInstance[] (CpuLocation + a
# union whose size depends on the Itanium member); only the count is decoded.
EFI_SEC_PLATFORM_INFORMATION_RECORD2_START = Struct(
    "NumberOfCpus" / Int32ul,
)

# MdeModulePkg/Include/Guid/PcdDataBaseSignatureGuid.h PCD_DATABASE_INIT (first fields).
PCD_DATABASE_INIT_START = Struct(
    "Signature" / EFI_GUID,
    "BuildVersion" / Int32ul,
    "Length" / Int32ul,
)
