"""Wire layouts of OVMF's reset-vector GUIDed table and the confidential-computing descriptors
it points to (construct declarations only; decoding lives in resetvector.py and metadata.py).

Sources:
- edk2 `OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.nasm.inc` (the table, "VTF\\0", the reset vector);
  consumer: QEMU `hw/i386/pc_sysfw_ovmf.c`.
- edk2 `OvmfPkg/ResetVector/X64/IntelTdxMetadata.nasm.inc`; td-shim `doc/tdshim_spec.md`
  Tables 1.1-1..4 and `td-shim-interface/src/metadata.rs` (TDVF_DESCRIPTOR / TDVF_SECTION).
- edk2 `OvmfPkg/ResetVector/X64/OvmfSevMetadata.nasm.inc` ("ASEV") and
  `OvmfPkg/ResetVector/X64/IgvmMetadata.nasm.inc` ("IGVM").
"""
from __future__ import annotations

from construct import Bytes, Enum, Int16ul, Int32ul, Int64ul, Struct

from decoders.guids import EFI_GUID as GUID

# -- the table at the top of the image (offsets from the end E of the file = 4 GiB) ------------
# ResetVectorVtf0.nasm.inc: "the two bytes at 0xffffffce are the entire table length", the footer
# GUID sits at 0xffffffd0; the length counts the whole table including itself and the footer GUID.
TABLE_FOOTER_AT = 0x32
OVMF_TABLE_FOOTER = Struct(
    "TableLength" / Int16ul,
    "FooterGuid" / GUID,
)

# ResetVectorVtf0.nasm.inc: 12 bytes at 0xffffffe0 (`DD 0, 0, 0` today; the AP entry
# `jmp EarlyApInitReal16` before edk2 dea6002d6e), "VTF\0" at 0xffffffec, reset vector at 0xfffffff0.
VTF_TOP_AT = 0x20
VTF_TOP = Struct(
    "ApEntryPoint" / Bytes(12),
    "VtfSignature" / Bytes(4),
    "ResetVector" / Bytes(16),
)

# Each entry, read backwards: data… | UINT16 length (data + 2 + 16) | GUID.
GUIDED_ENTRY_TAIL = Struct(
    "Length" / Int16ul,
    "Guid" / GUID,
)
GUIDED_ENTRY_TAIL_SIZE = 18

# sevEsResetBlock: IP value [15:0], CS segment base [31:16] (high 16 bits of the base).
SEV_ES_RESET_BLOCK = Struct("SevEsApResetIp" / Int32ul)
# sevSecretBlock / sevFwHashBlock: base physical address, table length (32-bit words).
BASE_SIZE_BLOCK = Struct("Base" / Int32ul, "Size" / Int32ul)
# tdxMetadataOffset / OvmfSevMetadataOffset / igvmMetadataOffset: DD fourGigabytes - <descriptor>.
METADATA_OFFSET_BLOCK = Struct("Offset" / Int32ul)
# COCONUT-SVSM sevSnpSvsmInfo: "Launch offset of entry point of SVSM from start of firmware".
SVSM_INFO_BLOCK = Struct("SvsmOffset" / Int32ul)

# -- TDVF metadata (TDX) ---------------------------------------------------------------------------
TDVF_SIGNATURE = b"TDVF"
TDVF_DESCRIPTOR = Struct(
    "Signature" / Bytes(4),
    "Length" / Int32ul,               # 16 + 32 * n; excludes the GUID in front
    "Version" / Int32ul,              # must be 1
    "NumberOfSectionEntry" / Int32ul,
)
TDVF_DESCRIPTOR_SIZE = 16

TDVF_SECTION_TYPE = Enum(
    Int32ul,
    BFV=0, CFV=1, TD_HOB=2, TempMem=3, PermMem=4, Payload=5, PayloadParam=6, TD_INFO=7, TD_PARAMS=8,
)
TDVF_SECTION = Struct(
    "DataOffset" / Int32ul,
    "RawDataSize" / Int32ul,
    "MemoryAddress" / Int64ul,
    "MemoryDataSize" / Int64ul,
    "Type" / TDVF_SECTION_TYPE,
    "Attributes" / Int32ul,
)
TDVF_SECTION_SIZE = 32

# td-shim metadata.rs: TDX_METADATA_ATTRIBUTES_EXTENDMR / _PAGE_AUG; the other bits are reserved.
TDX_ATTR_MR_EXTEND = 0x1
TDX_ATTR_PAGE_AUG = 0x2
TDX_ATTR_NAMES = {TDX_ATTR_MR_EXTEND: "MR.EXTEND", TDX_ATTR_PAGE_AUG: "PAGE.AUG"}
TDX_ATTR_RESERVED = ~(TDX_ATTR_MR_EXTEND | TDX_ATTR_PAGE_AUG) & 0xFFFFFFFF

# The td-shim legacy layout (no footer GUID): "Metadata Location" of tdshim_spec.md, a UINT32 at
# E-0x20 holding the offset from the image start of the TDVF descriptor.
TDSHIM_METADATA_PTR_AT = 0x20
TDSHIM_METADATA_PTR = Struct("TdvfMetadataOffset" / Int32ul)

# -- SEV ("ASEV") and IGVM ("IGVM") descriptors: same 16 + 12*n shape ---------------------------
CC_DESCRIPTOR = Struct(
    "Signature" / Bytes(4),
    "Length" / Int32ul,               # 16 + 12 * n, from the signature on
    "Version" / Int32ul,              # 1
    "NumSections" / Int32ul,
)
CC_DESCRIPTOR_SIZE = 16

SEV_SECTION_TYPE = Enum(
    Int32ul, SNP_SEC_MEM=0x1, SNP_SECRETS=0x2, CPUID=0x3, SVSM_CAA=0x4, KERNEL_HASHES=0x10,
)
SEV_SECTION = Struct(
    "Base" / Int32ul,
    "Size" / Int32ul,
    "Type" / SEV_SECTION_TYPE,
)

IGVM_SECTION_TYPE = Enum(
    Int32ul, PARAM_AREA=0x100, PARAM_MEMORY_MAP=0x101, PARAM_VP_COUNT=0x102, HOB_AREA=0x200,
)
IGVM_SECTION = Struct(
    "Base" / Int32ul,
    "Size" / Int32ul,
    "Type" / IGVM_SECTION_TYPE,
)
CC_SECTION_SIZE = 12

SEV_SIGNATURE = b"ASEV"
IGVM_SIGNATURE = b"IGVM"

