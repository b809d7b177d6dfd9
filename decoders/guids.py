"""Registry of well-known edk2 / UEFI / PI GUID names.

GUIDs are stored on the wire in EFI byte order (FACTS Part A: `uuid.UUID(bytes_le=...)`).
Names come from the edk2 package declarations (MdePkg.dec, MdeModulePkg.dec, OvmfPkg.dec, ...).
Other modules may add names with `register()` at import time.
"""
from __future__ import annotations

import uuid

_NAMES: dict[uuid.UUID, str] = {}


def from_bytes(raw: bytes) -> uuid.UUID:
    """A GUID from its 16 wire bytes (EFI byte order)."""
    return uuid.UUID(bytes_le=bytes(raw))


def register(guid: str | uuid.UUID, name: str) -> uuid.UUID:
    g = guid if isinstance(guid, uuid.UUID) else uuid.UUID(guid)
    _NAMES.setdefault(g, name)
    return g


def name(guid: uuid.UUID) -> str | None:
    return _NAMES.get(guid)


def describe(guid: uuid.UUID) -> str:
    """`NAME (guid)` when known, else the canonical upper-case GUID (as UEFITool prints it)."""
    n = _NAMES.get(guid)
    text = str(guid).upper()
    return f"{n} ({text})" if n else text


def lookup(text: str) -> uuid.UUID | None:
    """A GUID by its registered name (case-insensitive) or its string form."""
    try:
        return uuid.UUID(text)
    except ValueError:
        pass
    low = text.lower()
    for g, n in _NAMES.items():
        if n.lower() == low:
            return g
    return None


# (guid, name) pairs; the table is filled from edk2's .dec files.
_TABLE = """
8c8ce578-8a3d-4f1c-9935-896185c32dd3 gEfiFirmwareFileSystem2Guid
5473c07a-3dcb-4dca-bd6f-1e9689e7349a gEfiFirmwareFileSystem3Guid
fff12b8d-7696-4c8b-a985-2747075b4f50 gEfiSystemNvDataFvGuid
ee4e5898-3914-4259-9d6e-dc7bd79403cf gLzmaCustomDecompressGuid
d42ae6bd-1352-4bfb-909a-ca72a6eae889 gLzmaF86CustomDecompressGuid
3d532050-5cda-4fd0-879e-0f7f630d5afb gBrotliCustomDecompressGuid
a31280ad-481e-41b6-95e8-127f4c984779 gTianoCustomDecompressGuid
fc1bcdb0-7d31-49aa-936a-a4600d9dd083 gEfiCrc32GuidedSectionExtractionGuid
0f9d89e8-9259-4f76-a5af-0c89e34023df gEfiFirmwareContentsSignedGuid
1ba0062e-c779-4582-8566-336ae8f78f09 gEfiFirmwareVolumeTopFileGuid
1b45cc0a-156a-428a-af62-49864da0e6e6 gPeiAprioriFileNameGuid
fc510ee7-ffdc-11d4-bd41-0080c73c8881 gAprioriGuid
763bed0d-de9f-48f5-81f1-3e90e1b1a015 SECFV
48db5e17-707c-472d-91cd-1613e7ef51b0 FVMAIN_COMPACT
6938079b-b503-4e3d-9d24-b28337a25806 PEIFV
7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1 DXEFV
"""
for _line in _TABLE.strip().splitlines():
    _g, _n = _line.split()
    register(_g, _n)
