"""Wire forms the decoder tests pack by hand, independent of the project's construct structs."""
from __future__ import annotations

import struct
import uuid


def efi_guid(g: uuid.UUID | str) -> bytes:
    """EFI_GUID field by field (UEFI 2.10 Appendix A; MdePkg/Include/Uefi/UefiBaseType.h): UINT32
    Data1, UINT16 Data2, UINT16 Data3, little-endian, then UINT8 Data4[8] as in the text form."""
    g = uuid.UUID(str(g))
    return struct.pack("<IHH", g.time_low, g.time_mid, g.time_hi_version) + g.bytes[8:]
