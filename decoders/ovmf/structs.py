"""Wire layouts of OVMF's reset-vector GUIDed table and the confidential-computing descriptors
it points to (layouts only, as decoders.layout records; decoding lives in resetvector.py and
metadata.py).

Sources:
- edk2 `OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.nasm.inc` (the table, "VTF\\0", the reset vector);
  consumer: QEMU `hw/i386/pc_sysfw_ovmf.c`.
- edk2 `OvmfPkg/ResetVector/X64/IntelTdxMetadata.nasm.inc`; td-shim `doc/tdshim_spec.md`
  Tables 1.1-1..4 and `td-shim-interface/src/metadata.rs` (TDVF_DESCRIPTOR / TDVF_SECTION).
- edk2 `OvmfPkg/ResetVector/X64/OvmfSevMetadata.nasm.inc` ("ASEV") and
  `OvmfPkg/ResetVector/X64/IgvmMetadata.nasm.inc` ("IGVM").
"""
from __future__ import annotations

from decoders.layout import Layout

# -- the table at the top of the image (offsets from the end E of the file = 4 GiB) ------------
# ResetVectorVtf0.nasm.inc: "the two bytes at 0xffffffce are the entire table length", the footer
# GUID sits at 0xffffffd0; the length counts the whole table including itself and the footer GUID.
TABLE_FOOTER_AT = 0x32
OVMF_TABLE_FOOTER = Layout("OVMF_TABLE_FOOTER", ("TableLength", "H"), ("FooterGuid", "G"))

# ResetVectorVtf0.nasm.inc: 12 bytes at 0xffffffe0 (`DD 0, 0, 0` today; the AP entry
# `jmp EarlyApInitReal16` before edk2 dea6002d6e), "VTF\0" at 0xffffffec, reset vector at 0xfffffff0.
VTF_TOP_AT = 0x20
VTF_TOP = Layout("VTF_TOP", ("ApEntryPoint", "12s"), ("VtfSignature", "4s"), ("ResetVector", "16s"))

# Each entry, read backwards: data… | UINT16 length (data + 2 + 16) | GUID.
GUIDED_ENTRY_TAIL = Layout("GUIDED_ENTRY_TAIL", ("Length", "H"), ("Guid", "G"))
GUIDED_ENTRY_TAIL_SIZE = 18

# sevEsResetBlock: IP value [15:0], CS segment base [31:16] (high 16 bits of the base).
SEV_ES_RESET_BLOCK = Layout("SEV_ES_RESET_BLOCK", ("SevEsApResetIp", "I"))
# sevSecretBlock / sevFwHashBlock: base physical address, table length (32-bit words).
BASE_SIZE_BLOCK = Layout("BASE_SIZE_BLOCK", ("Base", "I"), ("Size", "I"))
# tdxMetadataOffset / OvmfSevMetadataOffset / igvmMetadataOffset: DD fourGigabytes - <descriptor>.
METADATA_OFFSET_BLOCK = Layout("METADATA_OFFSET_BLOCK", ("Offset", "I"))
# COCONUT-SVSM sevSnpSvsmInfo: "Launch offset of entry point of SVSM from start of firmware".
SVSM_INFO_BLOCK = Layout("SVSM_INFO_BLOCK", ("SvsmOffset", "I"))

# -- TDVF metadata (TDX) ---------------------------------------------------------------------------
TDVF_SIGNATURE = b"TDVF"
TDVF_DESCRIPTOR = Layout(
    "TDVF_DESCRIPTOR",
    ("Signature", "4s"),
    ("Length", "I"),                  # 16 + 32 * n; excludes the GUID in front
    ("Version", "I"),                 # must be 1
    ("NumberOfSectionEntry", "I"),
)
TDVF_DESCRIPTOR_SIZE = 16

TDVF_SECTION_TYPES = {0: "BFV", 1: "CFV", 2: "TD_HOB", 3: "TempMem", 4: "PermMem", 5: "Payload",
                      6: "PayloadParam", 7: "TD_INFO", 8: "TD_PARAMS"}
TDVF_SECTION = Layout(
    "TDVF_SECTION",
    ("DataOffset", "I"),
    ("RawDataSize", "I"),
    ("MemoryAddress", "Q"),
    ("MemoryDataSize", "Q"),
    ("Type", "I"),                    # TDVF_SECTION_TYPES
    ("Attributes", "I"),
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
TDSHIM_METADATA_PTR = Layout("TDSHIM_METADATA_PTR", ("TdvfMetadataOffset", "I"))

# -- SEV ("ASEV") and IGVM ("IGVM") descriptors: same 16 + 12*n shape ---------------------------
CC_DESCRIPTOR = Layout(
    "CC_DESCRIPTOR",
    ("Signature", "4s"),
    ("Length", "I"),                  # 16 + 12 * n, from the signature on
    ("Version", "I"),                 # 1
    ("NumSections", "I"),
)
CC_DESCRIPTOR_SIZE = 16

SEV_SECTION_TYPES = {0x1: "SNP_SEC_MEM", 0x2: "SNP_SECRETS", 0x3: "CPUID", 0x4: "SVSM_CAA",
                     0x10: "KERNEL_HASHES"}
SEV_SECTION = Layout("SEV_SECTION", ("Base", "I"), ("Size", "I"), ("Type", "I"))

IGVM_SECTION_TYPES = {0x100: "PARAM_AREA", 0x101: "PARAM_MEMORY_MAP", 0x102: "PARAM_VP_COUNT",
                      0x200: "HOB_AREA"}
IGVM_SECTION = Layout("IGVM_SECTION", ("Base", "I"), ("Size", "I"), ("Type", "I"))
CC_SECTION_SIZE = 12

SEV_SIGNATURE = b"ASEV"
IGVM_SIGNATURE = b"IGVM"

