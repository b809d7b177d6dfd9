"""UEFI system-table structures, and the PEI hand-off structures SEC passes to the PEI core, as
decoders.layout records (UEFI 2.10 §4; PI 1.8 vol. 1 §6.3; edk2 MdePkg headers).

Pointer-sized fields (UINTN, VOID *, handles) take the firmware's word size: `_ptr` is "Q" for
X64 DXE and "I" for IA32 DXE, chosen from EFI_TABLE_HEADER.HeaderSize (120 vs 72). C padding
before 8-byte members is spelled out as padding members so offsets match the headers.
"""
from __future__ import annotations

from functools import lru_cache

from decoders.layout import Layout

# MdePkg/Include/Uefi/UefiSpec.h
EFI_SYSTEM_TABLE_SIGNATURE = b"IBI SYST"
# MdePkg/Include/Guid/DebugImageInfoTable.h
EFI_DEBUG_IMAGE_INFO_UPDATE_IN_PROGRESS = 0x01
EFI_DEBUG_IMAGE_INFO_TABLE_MODIFIED = 0x02
EFI_DEBUG_IMAGE_INFO_TYPE_NORMAL = 0x01

# MdePkg/Include/Uefi/UefiMultiPhase.h EFI_TABLE_HEADER
TABLE_HEADER = (
    ("Signature", "8s"),
    ("Revision", "I"),
    ("HeaderSize", "I"),
    ("CRC32", "I"),
    ("Reserved", "I"),
)
EFI_TABLE_HEADER = Layout("EFI_TABLE_HEADER", *TABLE_HEADER)

# MdePkg/Include/Guid/DebugImageInfoTable.h: 4 MiB-aligned, EfiSystemTableBase is an
# EFI_PHYSICAL_ADDRESS (always 64-bit); sizeof() is 24 with the tail padding, and the CRC32 is
# computed over those 24 bytes (MdeModulePkg/Core/Dxe/Misc/DebugImageInfo.c CoreUpdateDebugTableCrc32).
EFI_SYSTEM_TABLE_POINTER = Layout(
    "EFI_SYSTEM_TABLE_POINTER",
    ("Signature", "8s"),
    ("EfiSystemTableBase", "Q"),
    ("Crc32", "I"),
    (None, "4x"),
)


def _ptr(width: int) -> str:
    return "Q" if width == 8 else "I"


def _pad(width: int, after: int) -> list:
    """C alignment padding after a field of `after` bytes when the next member is a pointer."""
    return [(None, f"{width - after}x")] if width > after else []


# UEFI 2.10 §4.3 EFI_SYSTEM_TABLE; its EFI_TABLE_HEADER Hdr is declared flat, its members shown
# as "Hdr.Signature" and so on at their offsets.
@lru_cache(maxsize=None)
def EFI_SYSTEM_TABLE(width: int) -> Layout:
    p = _ptr(width)
    return Layout(
        "EFI_SYSTEM_TABLE",
        *[("Hdr." + name, code) for name, code in TABLE_HEADER],
        ("FirmwareVendor", p),
        ("FirmwareRevision", "I"),
        *_pad(width, 4),
        ("ConsoleInHandle", p),
        ("ConIn", p),
        ("ConsoleOutHandle", p),
        ("ConOut", p),
        ("StandardErrorHandle", p),
        ("StdErr", p),
        ("RuntimeServices", p),
        ("BootServices", p),
        ("NumberOfTableEntries", p),
        ("ConfigurationTable", p),
    )


@lru_cache(maxsize=None)
def EFI_CONFIGURATION_TABLE(width: int) -> Layout:
    return Layout("EFI_CONFIGURATION_TABLE", ("VendorGuid", "G"), ("VendorTable", _ptr(width)))


@lru_cache(maxsize=None)
def EFI_DEBUG_IMAGE_INFO_TABLE_HEADER(width: int) -> Layout:
    return Layout("EFI_DEBUG_IMAGE_INFO_TABLE_HEADER", ("UpdateStatus", "I"), ("TableSize", "I"),
                  ("EfiDebugImageInfoTable", _ptr(width)))


@lru_cache(maxsize=None)
def EFI_DEBUG_IMAGE_INFO_NORMAL(width: int) -> Layout:
    p = _ptr(width)
    return Layout("EFI_DEBUG_IMAGE_INFO_NORMAL", ("ImageInfoType", "I"), *_pad(width, 4),
                  ("LoadedImageProtocolInstance", p), ("ImageHandle", p))


# MdePkg/Include/Protocol/LoadedImage.h
@lru_cache(maxsize=None)
def EFI_LOADED_IMAGE_PROTOCOL(width: int) -> Layout:
    p = _ptr(width)
    return Layout(
        "EFI_LOADED_IMAGE_PROTOCOL",
        ("Revision", "I"),
        *_pad(width, 4),
        ("ParentHandle", p),
        ("SystemTable", p),
        ("DeviceHandle", p),
        ("FilePath", p),
        ("Reserved", p),
        ("LoadOptionsSize", "I"),
        *_pad(width, 4),
        ("LoadOptions", p),
        ("ImageBase", p),
        *_pad(8, width),  # UINT64 ImageSize is 8-byte aligned (UEFI 2.10 §2.3.1), even on IA32
        ("ImageSize", "Q"),
        ("ImageCodeType", "I"),
        ("ImageDataType", "I"),
        ("Unload", p),
    )


# MdePkg/Include/Pi/PiPeiCis.h (PI vol. 1, 6.3.2 EFI_SEC_PEI_HAND_OFF): DataSize is a UINT16, the
# pointers and sizes after it are UINTN-aligned (36 bytes on IA32, 72 on X64).
@lru_cache(maxsize=None)
def EFI_SEC_PEI_HAND_OFF(width: int) -> Layout:
    p = _ptr(width)
    return Layout(
        "EFI_SEC_PEI_HAND_OFF",
        ("DataSize", "H"),
        *_pad(width, 2),
        ("BootFirmwareVolumeBase", p),
        ("BootFirmwareVolumeSize", p),
        ("TemporaryRamBase", p),
        ("TemporaryRamSize", p),
        ("PeiTemporaryRamBase", p),
        ("PeiTemporaryRamSize", p),
        ("StackBase", p),
        ("StackSize", p),
    )


# MdePkg/Include/Pi/PiPeiCis.h EFI_PEI_PPI_DESCRIPTOR: UINTN Flags; EFI_GUID *Guid; VOID *Ppi.
@lru_cache(maxsize=None)
def EFI_PEI_PPI_DESCRIPTOR(width: int) -> Layout:
    p = _ptr(width)
    return Layout("EFI_PEI_PPI_DESCRIPTOR", ("Flags", p), ("Guid", p), ("Ppi", p))


# MdePkg/Include/Protocol/DevicePath.h EFI_DEVICE_PATH_PROTOCOL and MEDIA_FW_VOL_FILEPATH_DEVICE_PATH
EFI_DEVICE_PATH_PROTOCOL = Layout("EFI_DEVICE_PATH_PROTOCOL", ("Type", "B"), ("SubType", "B"), ("Length", "H"))
MEDIA_DEVICE_PATH, MEDIA_PIWG_FW_FILE_DP, MEDIA_PIWG_FW_VOL_DP = 4, 6, 7
