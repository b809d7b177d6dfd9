"""Registry of well-known edk2 / UEFI / PI GUID names.

GUIDs are stored on the wire in EFI byte order (FACTS Part A: `uuid.UUID(bytes_le=...)`).
Names come from the edk2 package declarations ([Guids], [Protocols], [Ppis] of MdePkg.dec,
MdeModulePkg.dec, UefiCpuPkg.dec, OvmfPkg.dec, SecurityPkg.dec, ...), kept verbatim in the data
file `guid_names.txt` beside this module (generated from the .dec text of edk2 2022.11 and
edk2-stable202502), plus the few names below that no .dec declares (FDF volume names).
The table is read once, on the first look-up, so importing this module costs nothing.
Other modules may add names with `register()`; the first name registered for a GUID wins.
"""
from __future__ import annotations

import threading
import uuid
from importlib import resources

_NAMES: dict[uuid.UUID, str] = {}
_PENDING: dict[uuid.UUID, str] = {}  # register() calls made before the table was read
_LOADED = False
_LOCK = threading.Lock()

# Names that are not .dec declarations: the FV names of OvmfPkg's FDF files (FACTS A.5).
_TABLE = """
763bed0d-de9f-48f5-81f1-3e90e1b1a015 SECFV
48db5e17-707c-472d-91cd-1613e7ef51b0 FVMAIN_COMPACT
6938079b-b503-4e3d-9d24-b28337a25806 PEIFV
7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1 DXEFV
"""


def _parse(text: str) -> None:
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        g, n = line.split(None, 1)
        _NAMES.setdefault(uuid.UUID(g), n.strip())


def _names() -> dict[uuid.UUID, str]:
    global _LOADED
    if not _LOADED:
        with _LOCK:  # decoders run in worker threads; read the table exactly once
            if not _LOADED:
                _parse(resources.files(__package__).joinpath("guid_names.txt").read_text(encoding="ascii"))
                _parse(_TABLE)
                for g, n in _PENDING.items():
                    _NAMES.setdefault(g, n)
                _PENDING.clear()
                _LOADED = True
    return _NAMES


def from_bytes(raw: bytes) -> uuid.UUID:
    """A GUID from its 16 wire bytes (EFI byte order)."""
    return uuid.UUID(bytes_le=bytes(raw))


def register(guid: str | uuid.UUID, name: str) -> uuid.UUID:
    """Name `guid` unless it already has a name (the edk2 table's names come first)."""
    g = guid if isinstance(guid, uuid.UUID) else uuid.UUID(guid)
    with _LOCK:
        (_NAMES if _LOADED else _PENDING).setdefault(g, name)
    return g


def name(guid: uuid.UUID) -> str | None:
    return _names().get(guid)


def describe(guid: uuid.UUID) -> str:
    """`NAME (guid)` when known, else the canonical upper-case GUID (as UEFITool prints it)."""
    n = _names().get(guid)
    text = str(guid).upper()
    return f"{n} ({text})" if n else text


def lookup(text: str) -> uuid.UUID | None:
    """A GUID by its registered name (case-insensitive) or its string form."""
    try:
        return uuid.UUID(text)
    except ValueError:
        pass
    low = text.lower()
    for g, n in _names().items():
        if n.lower() == low:
            return g
    return None
