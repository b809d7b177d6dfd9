"""Wire structs of the NV variable FV (OVMF_VARS): variable store, variables, FTW working block.

Sources (edk2):
- `MdeModulePkg/Include/Guid/VariableFormat.h`: VARIABLE_STORE_HEADER, VARIABLE_HEADER,
  AUTHENTICATED_VARIABLE_HEADER (all `#pragma pack(1)`), VAR_* states, HEADER_ALIGNMENT.
- `MdeModulePkg/Include/Guid/SystemNvDataGuid.h`: EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER,
  EFI_FAULT_TOLERANT_WRITE_HEADER / _RECORD. That header has no `#pragma pack`, so the write
  queue structs use natural (x64) alignment: a 1-byte bit field, then the GUID at 4, UINT64s at
  8-byte boundaries (40 bytes each).
- `MdePkg/Include/Uefi/UefiMultiPhase.h`: EFI_VARIABLE_* attribute bits.

Declarations only, as decoders.layout records.
"""
from __future__ import annotations

from decoders.efisig import EFI_TIME
from decoders.layout import Layout

VARIABLE_STORE_HEADER = Layout(
    "VARIABLE_STORE_HEADER",
    ("Signature", "G"),
    ("Size", "I"),          # whole store incl. this header, excl. the FV header
    ("Format", "B"),        # VARIABLE_STORE_FORMATTED 0x5A
    ("State", "B"),         # VARIABLE_STORE_HEALTHY 0xFE
    ("Reserved", "H"),
    ("Reserved1", "I"),
)

VARIABLE_HEADER = Layout(
    "VARIABLE_HEADER",
    ("StartId", "H"),       # VARIABLE_DATA 0x55AA
    ("State", "B"),
    ("Reserved", "B"),
    ("Attributes", "I"),
    ("NameSize", "I"),
    ("DataSize", "I"),
    ("VendorGuid", "G"),
)

AUTHENTICATED_VARIABLE_HEADER = Layout(
    "AUTHENTICATED_VARIABLE_HEADER",
    ("StartId", "H"),
    ("State", "B"),
    ("Reserved", "B"),
    ("Attributes", "I"),
    ("MonotonicCount", "Q"),
    ("TimeStamp", EFI_TIME),
    ("PubKeyIndex", "I"),
    ("NameSize", "I"),
    ("DataSize", "I"),
    ("VendorGuid", "G"),
)

# The UINT8 bit fields at the start of the FTW structs are read as one byte ("B"); C allocates bit
# fields from bit 0 upward, so the names below are listed from bit 0. The bits above them are the
# Reserved bit field (6 bits in the working block header, 5 in the write header and record).
WORKING_BLOCK_STATE_BITS = ("WorkingBlockValid", "WorkingBlockInvalid")
WRITE_HEADER_FLAG_BITS = ("HeaderAllocated", "WritesAllocated", "Complete")
WRITE_RECORD_FLAG_BITS = ("BootBlockUpdate", "SpareComplete", "DestinationComplete")

EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER = Layout(
    "EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER",
    ("Signature", "G"),
    ("Crc", "I"),
    ("StateBits", "B"),     # WORKING_BLOCK_STATE_BITS, then Reserved : 6
    ("Reserved3", "3s"),
    ("WriteQueueSize", "Q"),
)

EFI_FAULT_TOLERANT_WRITE_HEADER = Layout(
    "EFI_FAULT_TOLERANT_WRITE_HEADER",
    ("Flags", "B"),         # WRITE_HEADER_FLAG_BITS, then Reserved : 5
    (None, "3x"),           # natural alignment of EFI_GUID (no #pragma pack in SystemNvDataGuid.h)
    ("CallerId", "G"),
    (None, "4x"),           # natural alignment of UINT64
    ("NumberOfWrites", "Q"),
    ("PrivateDataSize", "Q"),
)

EFI_FAULT_TOLERANT_WRITE_RECORD = Layout(
    "EFI_FAULT_TOLERANT_WRITE_RECORD",
    ("Flags", "B"),         # WRITE_RECORD_FLAG_BITS, then Reserved : 5
    (None, "7x"),           # natural alignment of EFI_LBA
    ("Lba", "Q"),
    ("Offset", "Q"),
    ("Length", "Q"),
    ("RelativeOffset", "q"),
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
