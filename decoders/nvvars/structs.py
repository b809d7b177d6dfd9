"""Wire structs of the NV variable FV (OVMF_VARS): variable store, variables, FTW working block.

Sources (edk2):
- `MdeModulePkg/Include/Guid/VariableFormat.h`: VARIABLE_STORE_HEADER, VARIABLE_HEADER,
  AUTHENTICATED_VARIABLE_HEADER (all `#pragma pack(1)`), VAR_* states, HEADER_ALIGNMENT.
- `MdeModulePkg/Include/Guid/SystemNvDataGuid.h`: EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER,
  EFI_FAULT_TOLERANT_WRITE_HEADER / _RECORD. That header has no `#pragma pack`, so the write
  queue structs use natural (x64) alignment: a 1-byte bit field, then the GUID at 4, UINT64s at
  8-byte boundaries (40 bytes each).
- `MdePkg/Include/Uefi/UefiMultiPhase.h`: EFI_VARIABLE_* attribute bits.
"""
from __future__ import annotations

from construct import (BitsInteger, BitStruct, Bytes, Flag, Int8ul, Int16ul, Int32ul,
                       Int64sl, Int64ul, Padding, Struct)

from decoders.efisig import EFI_TIME
from decoders.guids import EFI_GUID

VARIABLE_STORE_HEADER = Struct(
    "Signature" / EFI_GUID,
    "Size" / Int32ul,       # whole store incl. this header, excl. the FV header
    "Format" / Int8ul,      # VARIABLE_STORE_FORMATTED 0x5A
    "State" / Int8ul,       # VARIABLE_STORE_HEALTHY 0xFE
    "Reserved" / Int16ul,
    "Reserved1" / Int32ul,
)

VARIABLE_HEADER = Struct(
    "StartId" / Int16ul,    # VARIABLE_DATA 0x55AA
    "State" / Int8ul,
    "Reserved" / Int8ul,
    "Attributes" / Int32ul,
    "NameSize" / Int32ul,
    "DataSize" / Int32ul,
    "VendorGuid" / EFI_GUID,
)

AUTHENTICATED_VARIABLE_HEADER = Struct(
    "StartId" / Int16ul,
    "State" / Int8ul,
    "Reserved" / Int8ul,
    "Attributes" / Int32ul,
    "MonotonicCount" / Int64ul,
    "TimeStamp" / EFI_TIME,
    "PubKeyIndex" / Int32ul,
    "NameSize" / Int32ul,
    "DataSize" / Int32ul,
    "VendorGuid" / EFI_GUID,
)

# C bit fields are allocated from bit 0 upward, and BitStruct reads the most significant bit
# first, so the fields below are listed from bit 7 down to bit 0.
EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER = Struct(
    "Signature" / EFI_GUID,
    "Crc" / Int32ul,
    "StateBits" / BitStruct(
        "Reserved" / BitsInteger(6),
        "WorkingBlockInvalid" / Flag,
        "WorkingBlockValid" / Flag,
    ),
    "Reserved3" / Bytes(3),
    "WriteQueueSize" / Int64ul,
)

EFI_FAULT_TOLERANT_WRITE_HEADER = Struct(
    "Flags" / BitStruct(
        "Reserved" / BitsInteger(5),
        "Complete" / Flag,
        "WritesAllocated" / Flag,
        "HeaderAllocated" / Flag,
    ),
    Padding(3) * "natural alignment of EFI_GUID (no #pragma pack in SystemNvDataGuid.h)",
    "CallerId" / EFI_GUID,
    Padding(4) * "natural alignment of UINT64",
    "NumberOfWrites" / Int64ul,
    "PrivateDataSize" / Int64ul,
)

EFI_FAULT_TOLERANT_WRITE_RECORD = Struct(
    "Flags" / BitStruct(
        "Reserved" / BitsInteger(5),
        "DestinationComplete" / Flag,
        "SpareComplete" / Flag,
        "BootBlockUpdate" / Flag,
    ),
    Padding(7) * "natural alignment of EFI_LBA",
    "Lba" / Int64ul,
    "Offset" / Int64ul,
    "Length" / Int64ul,
    "RelativeOffset" / Int64sl,
    # then UINT8 PrivateData[PrivateDataSize]
)

# -- constants -------------------------------------------------------------------------------

VARIABLE_DATA = 0x55AA
VARIABLE_STORE_FORMATTED = 0x5A
VARIABLE_STORE_HEALTHY = 0xFE
HEADER_ALIGNMENT = 4

# Variable State bits: flash programming only clears bits, so a state is the AND of the steps
# it went through (VariableFormat.h).
VAR_IN_DELETED_TRANSITION = 0xFE
VAR_DELETED = 0xFD
VAR_HEADER_VALID_ONLY = 0x7F
VAR_ADDED = 0x3F

# UefiMultiPhase.h EFI_VARIABLE_* and the short names UEFITool prints.
VARIABLE_ATTRIBUTES = [
    (0x01, "NON_VOLATILE", "NV"),
    (0x02, "BOOTSERVICE_ACCESS", "BS"),
    (0x04, "RUNTIME_ACCESS", "RT"),
    (0x08, "HARDWARE_ERROR_RECORD", "HR"),
    (0x10, "AUTHENTICATED_WRITE_ACCESS", "AW"),
    (0x20, "TIME_BASED_AUTHENTICATED_WRITE_ACCESS", "AT"),
    (0x40, "APPEND_WRITE", "AP"),
    (0x80, "ENHANCED_AUTHENTICATED_ACCESS", "EA"),
]
