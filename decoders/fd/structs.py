"""Wire layouts of the flash device: firmware volumes, FFS files and sections.

Declarations only (decoders.layout records and the spec's name tables): decode.py and
sections.py read them into Nodes. Names follow the PI specification 1.8 volume 3 and edk2's C
headers:
  MdePkg/Include/Pi/PiFirmwareVolume.h   (EFI_FIRMWARE_VOLUME_HEADER, ext header)
  MdePkg/Include/Pi/PiFirmwareFile.h     (EFI_FFS_FILE_HEADER{,2}, EFI_*_SECTION{,2})
  MdePkg/Include/Guid/WinCertificate.h   (WIN_CERTIFICATE, WIN_CERTIFICATE_UEFI_GUID)
  MdeModulePkg/Library/DxeCrc32GuidedSectionExtractLib (CRC32_SECTION_HEADER)
  MdeModulePkg/Library/BrotliCustomDecompressLib/BrotliDecompressLibInternal.h
All little-endian; GUIDs ("G") read as uuid.UUID.
"""
from __future__ import annotations

from decoders.layout import Layout

# --- Firmware volume (PiFirmwareVolume.h) ----------------------------------------------

FV_SIGNATURE = b"_FVH"
FV_SIGNATURE_OFFSET = 0x28
EFI_FVH_REVISION = 0x02

# EFI_FVB_ATTRIBUTES_2 (PiFirmwareVolume.h); EFI_FVB2_ALIGNMENT is a 5-bit field handled apart.
EFI_FVB2_ATTRIBUTES = {
    0x00000001: "READ_DISABLED_CAP",
    0x00000002: "READ_ENABLED_CAP",
    0x00000004: "READ_STATUS",
    0x00000008: "WRITE_DISABLED_CAP",
    0x00000010: "WRITE_ENABLED_CAP",
    0x00000020: "WRITE_STATUS",
    0x00000040: "LOCK_CAP",
    0x00000080: "LOCK_STATUS",
    0x00000200: "STICKY_WRITE",
    0x00000400: "MEMORY_MAPPED",
    0x00000800: "ERASE_POLARITY",
    0x00001000: "READ_LOCK_CAP",
    0x00002000: "READ_LOCK_STATUS",
    0x00004000: "WRITE_LOCK_CAP",
    0x00008000: "WRITE_LOCK_STATUS",
    0x80000000: "WEAK_ALIGNMENT",
}
EFI_FVB2_ERASE_POLARITY = 0x00000800
EFI_FVB2_ALIGNMENT = 0x001F0000
EFI_FVB2_ALIGNMENT_SHIFT = 16

# The fixed part of EFI_FIRMWARE_VOLUME_HEADER (0x38 bytes); BlockMap[] follows.
EFI_FIRMWARE_VOLUME_HEADER = Layout(
    "EFI_FIRMWARE_VOLUME_HEADER",
    ("ZeroVector", "16s"),
    ("FileSystemGuid", "G"),
    ("FvLength", "Q"),
    ("Signature", "4s"),
    ("Attributes", "I"),
    ("HeaderLength", "H"),
    ("Checksum", "H"),
    ("ExtHeaderOffset", "H"),
    ("Reserved", "B"),
    ("Revision", "B"),
)
FV_HEADER_SIZE = 0x38

EFI_FV_BLOCK_MAP_ENTRY = Layout(
    "EFI_FV_BLOCK_MAP_ENTRY",
    ("NumBlocks", "I"),
    ("Length", "I"),
)
BLOCK_MAP_ENTRY_SIZE = 8

EFI_FIRMWARE_VOLUME_EXT_HEADER = Layout(
    "EFI_FIRMWARE_VOLUME_EXT_HEADER",
    ("FvName", "G"),
    ("ExtHeaderSize", "I"),
)
FV_EXT_HEADER_SIZE = 0x14

EFI_FV_EXT_TYPE = {1: "OEM_TYPE", 2: "GUID_TYPE", 3: "USED_SIZE_TYPE"}
EFI_FIRMWARE_VOLUME_EXT_ENTRY = Layout(
    "EFI_FIRMWARE_VOLUME_EXT_ENTRY",
    ("ExtEntrySize", "H"),
    ("ExtEntryType", "H"),
)
FV_EXT_ENTRY_SIZE = 4
# EFI_FIRMWARE_VOLUME_EXT_ENTRY_OEM_TYPE: Hdr, UINT32 TypeMask, EFI_GUID Types[]
EXT_ENTRY_OEM_TYPE_TAIL = Layout("EXT_ENTRY_OEM_TYPE_TAIL", ("TypeMask", "I"))
# EFI_FIRMWARE_VOLUME_EXT_ENTRY_GUID_TYPE: Hdr, EFI_GUID FormatType, UINT8 Data[]
EXT_ENTRY_GUID_TYPE_TAIL = Layout("EXT_ENTRY_GUID_TYPE_TAIL", ("FormatType", "G"))
# EFI_FIRMWARE_VOLUME_EXT_ENTRY_USED_SIZE_TYPE: Hdr, UINT32 UsedSize
EXT_ENTRY_USED_SIZE_TYPE_TAIL = Layout("EXT_ENTRY_USED_SIZE_TYPE_TAIL", ("UsedSize", "I"))

# --- FFS files (PiFirmwareFile.h) ------------------------------------------------------

EFI_FV_FILETYPE = {
    0x00: "ALL",
    0x01: "RAW",
    0x02: "FREEFORM",
    0x03: "SECURITY_CORE",
    0x04: "PEI_CORE",
    0x05: "DXE_CORE",
    0x06: "PEIM",
    0x07: "DRIVER",
    0x08: "COMBINED_PEIM_DRIVER",
    0x09: "APPLICATION",
    0x0A: "MM",
    0x0B: "FIRMWARE_VOLUME_IMAGE",
    0x0C: "COMBINED_MM_DXE",
    0x0D: "MM_CORE",
    0x0E: "MM_STANDALONE",
    0x0F: "MM_CORE_STANDALONE",
    0xF0: "FFS_PAD",
}
EFI_FV_FILETYPE_RAW = 0x01
EFI_FV_FILETYPE_FFS_PAD = 0xF0

FFS_ATTRIB_LARGE_FILE = 0x01
FFS_ATTRIB_DATA_ALIGNMENT_2 = 0x02
FFS_ATTRIB_FIXED = 0x04
FFS_ATTRIB_DATA_ALIGNMENT = 0x38
FFS_ATTRIB_CHECKSUM = 0x40
FFS_FIXED_CHECKSUM = 0xAA
# FFS_ATTRIB_DATA_ALIGNMENT's 3 bits index these log2 alignments; with DATA_ALIGNMENT_2 the
# second table applies (PI vol 3 2.2.4 "Attributes"; UEFITool common/ffs.cpp).
FFS_ALIGNMENT_LOG2 = (0, 4, 7, 9, 10, 12, 15, 16)
FFS_ALIGNMENT2_LOG2 = (17, 18, 19, 20, 21, 22, 23, 24)

EFI_FFS_FILE_STATE = {
    0x01: "HEADER_CONSTRUCTION",
    0x02: "HEADER_VALID",
    0x04: "DATA_VALID",
    0x08: "MARKED_FOR_UPDATE",
    0x10: "DELETED",
    0x20: "HEADER_INVALID",
}
EFI_FILE_DATA_VALID = 0x04
EFI_FILE_DELETED = 0x10
EFI_FILE_HEADER_INVALID = 0x20

EFI_FFS_FILE_ATTRIBUTES = {
    FFS_ATTRIB_LARGE_FILE: "LARGE_FILE",
    FFS_ATTRIB_DATA_ALIGNMENT_2: "DATA_ALIGNMENT_2",
    FFS_ATTRIB_FIXED: "FIXED",
    FFS_ATTRIB_CHECKSUM: "CHECKSUM",
}

# IntegrityCheck is the EFI_FFS_INTEGRITY_CHECK union; its Checksum struct's two bytes are its members.
_FFS_FILE_HEADER_MEMBERS = (
    ("Name", "G"),
    ("IntegrityCheck.Header", "B"),
    ("IntegrityCheck.File", "B"),
    ("Type", "B"),
    ("Attributes", "B"),
    ("Size", "U24"),
    ("State", "B"),
)
EFI_FFS_FILE_HEADER = Layout("EFI_FFS_FILE_HEADER", *_FFS_FILE_HEADER_MEMBERS)
FFS_HEADER_SIZE = 0x18

# EFI_FFS_FILE_HEADER2: the same, then UINT64 ExtendedSize (FFS_ATTRIB_LARGE_FILE, Size 0).
EFI_FFS_FILE_HEADER2 = Layout("EFI_FFS_FILE_HEADER2", *_FFS_FILE_HEADER_MEMBERS, ("ExtendedSize", "Q"))
FFS_HEADER2_SIZE = 0x20

# --- Sections (PiFirmwareFile.h) -------------------------------------------------------

EFI_SECTION_TYPE = {
    0x01: "COMPRESSION",
    0x02: "GUID_DEFINED",
    0x03: "DISPOSABLE",
    0x10: "PE32",
    0x11: "PIC",
    0x12: "TE",
    0x13: "DXE_DEPEX",
    0x14: "VERSION",
    0x15: "USER_INTERFACE",
    0x16: "COMPATIBILITY16",
    0x17: "FIRMWARE_VOLUME_IMAGE",
    0x18: "FREEFORM_SUBTYPE_GUID",
    0x19: "RAW",
    0x1B: "PEI_DEPEX",
    0x1C: "MM_DEPEX",
}

EFI_COMMON_SECTION_HEADER = Layout(
    "EFI_COMMON_SECTION_HEADER",
    ("Size", "U24"),
    ("Type", "B"),
)
SECTION_HEADER_SIZE = 4
EFI_COMMON_SECTION_HEADER2 = Layout(
    "EFI_COMMON_SECTION_HEADER2",
    ("Size", "U24"),
    ("Type", "B"),
    ("ExtendedSize", "I"),
)
SECTION_HEADER2_SIZE = 8
SECTION_SIZE_USE_EXTENDED = 0xFFFFFF

# The type-specific tails after the common header.
EFI_COMPRESSION_SECTION_TAIL = Layout(
    "EFI_COMPRESSION_SECTION_TAIL",
    ("UncompressedLength", "I"),
    ("CompressionType", "B"),
)
COMPRESSION_TAIL_SIZE = 5
EFI_COMPRESSION_TYPE = {0: "EFI_NOT_COMPRESSED", 1: "EFI_STANDARD_COMPRESSION"}

EFI_GUID_DEFINED_SECTION_TAIL = Layout(
    "EFI_GUID_DEFINED_SECTION_TAIL",
    ("SectionDefinitionGuid", "G"),
    ("DataOffset", "H"),
    ("Attributes", "H"),
)
GUID_DEFINED_TAIL_SIZE = 0x14
EFI_GUIDED_SECTION_PROCESSING_REQUIRED = 0x01
EFI_GUIDED_SECTION_AUTH_STATUS_VALID = 0x02
EFI_GUIDED_SECTION_ATTRIBUTES = {
    EFI_GUIDED_SECTION_PROCESSING_REQUIRED: "PROCESSING_REQUIRED",
    EFI_GUIDED_SECTION_AUTH_STATUS_VALID: "AUTH_STATUS_VALID",
}

EFI_VERSION_SECTION_TAIL = Layout("EFI_VERSION_SECTION_TAIL", ("BuildNumber", "H"))
EFI_FREEFORM_SUBTYPE_GUID_SECTION_TAIL = Layout("EFI_FREEFORM_SUBTYPE_GUID_SECTION_TAIL", ("SubTypeGuid", "G"))

# CRC32_SECTION_HEADER = EFI_GUID_DEFINED_SECTION + UINT32 CRC32Checksum
CRC32_SECTION_TAIL = Layout("CRC32_SECTION_TAIL", ("CRC32Checksum", "I"))

# WIN_CERTIFICATE and WIN_CERTIFICATE_UEFI_GUID (WinCertificate.h), the header of
# gEfiFirmwareContentsSignedGuid sections.
WIN_CERTIFICATE = Layout(
    "WIN_CERTIFICATE",
    ("dwLength", "I"),
    ("wRevision", "H"),
    ("wCertificateType", "H"),
)
WIN_CERTIFICATE_SIZE = 8
WIN_CERT_TYPE = {0x0002: "WIN_CERT_TYPE_PKCS_SIGNED_DATA", 0x0EF0: "WIN_CERT_TYPE_EFI_PKCS115",
                 0x0EF1: "WIN_CERT_TYPE_EFI_GUID"}
WIN_CERT_TYPE_EFI_GUID = 0x0EF1
WIN_CERTIFICATE_UEFI_GUID_TAIL = Layout("WIN_CERTIFICATE_UEFI_GUID_TAIL", ("CertType", "G"))

# --- Compressed payload headers --------------------------------------------------------

# LzmaDecompress.c: LZMA_HEADER_SIZE = LZMA_PROPS_SIZE (5) + 8, i.e. the ".lzma alone" header.
LZMA_HEADER = Layout(
    "LZMA_HEADER",
    ("Properties", "5s"),
    ("DecodedSize", "Q"),
)
LZMA_HEADER_SIZE = 13

# BrotliDecompressLibInternal.h: BROTLI_INFO_SIZE 8 (decoded size), BROTLI_DECODE_MAX 8
# (scratch size), BROTLI_SCRATCH_MAX 16: the stream starts at 0x10.
BROTLI_HEADER = Layout(
    "BROTLI_HEADER",
    ("DecodedSize", "Q"),
    ("ScratchSize", "Q"),
)
BROTLI_HEADER_SIZE = 0x10

# EFI/Tiano compressed stream header (BaseUefiDecompressLib: UefiDecompressGetInfo).
EFI_COMPRESSED_HEADER = Layout(
    "EFI_COMPRESSED_HEADER",
    ("CompSize", "I"),
    ("OrigSize", "I"),
)
EFI_COMPRESSED_HEADER_SIZE = 8
