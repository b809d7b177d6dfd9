"""The OVMF NV variable store FV (`OvmfPkg/Include/Fdf/VarStore.fdf.inc`, 2 MiB layout).

FV header (gEfiSystemNvDataFvGuid, 0x20 x 0x1000 blocks) -> VARIABLE_STORE_HEADER at 0x48
(`MdeModulePkg/Include/Guid/VariableFormat.h`, authenticated signature) -> variables, each an
AUTHENTICATED_VARIABLE_HEADER + UCS-2 name + data, 4-byte aligned (HEADER_ALIGNMENT) ->
free space (0xFF) to 0xE000 -> empty event-log block -> FTW working block header at 0xF000
(`MdeModulePkg/Include/Guid/SystemNvDataGuid.h`) -> FTW spare area at 0x10000.
"""
from __future__ import annotations

import datetime
import struct
import uuid
import zlib

from . import ffs

AUTH_VAR_STORE_GUID = uuid.UUID("AAF32C78-947B-439A-A180-2E144EC37792")
FTW_WORKING_GUID = uuid.UUID("9E58292B-7C68-497D-A0CE-6500FD9F1B95")
GLOBAL_VARIABLE_GUID = uuid.UUID("8BE4DF61-93CA-11D2-AA0D-00E098032B8C")
IMAGE_SECURITY_DATABASE_GUID = uuid.UUID("D719B2CB-3D3A-4596-A3BC-DAD00E67656F")
CERT_X509_GUID = uuid.UUID("A5C059A1-94E4-4AA7-87B5-AB155C2BF072")
DEMO_OWNER_GUID = uuid.UUID("F1C0DE00-0000-4000-8000-00000000D3F0")  # our own, for the demo cert

FV_SIZE = 0x20000
LIVE_SIZE = 0xE000  # variable store incl. FV header
FTW_WORKING_OFFSET = 0xF000
FTW_WORKING_SIZE = 0x1000
VAR_STORE_FORMATTED, VAR_STORE_HEALTHY = 0x5A, 0xFE
START_ID = 0x55AA
VAR_ADDED = 0x3F
VAR_DELETED_STATE = 0x3C  # VAR_ADDED & VAR_IN_DELETED_TRANSITION & VAR_DELETED
# EFI_VARIABLE_* attributes
NV, BS, RT, TIME_AUTH = 0x1, 0x2, 0x4, 0x20
AUTH_HEADER_SIZE = 60
NVSTORE_FV_ATTRIBUTES = 0x0004FEFF  # as Debian's OVMF_VARS (VarStore.fdf.inc)


def efi_time(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> bytes:
    """EFI_TIME: Year u16, Month, Day, Hour, Minute, Second, Pad1, Nanosecond u32, TimeZone i16,
    Daylight, Pad2."""
    return struct.pack("<HBBBBBBIhBB", year, month, day, hour, minute, second, 0, 0, 0, 0, 0)


def variable(name: str, guid: uuid.UUID, data: bytes, attributes: int, *, state: int = VAR_ADDED,
             timestamp: bytes = b"\0" * 16, monotonic: int = 0, name_size: int | None = None) -> bytes:
    uname = (name + "\0").encode("utf-16-le")
    ns = len(uname) if name_size is None else name_size
    hdr = struct.pack("<HBBIQ16sIII16s", START_ID, state, 0, attributes, monotonic, timestamp, 0,
                      ns, len(data), guid.bytes_le)
    assert len(hdr) == AUTH_HEADER_SIZE
    rec = hdr + uname + data
    return rec + b"\xff" * (ffs.align(len(rec), 4) - len(rec))


def signature_list(sig_type: uuid.UUID, owner: uuid.UUID, payloads: list[bytes]) -> bytes:
    """EFI_SIGNATURE_LIST with one size for all EFI_SIGNATURE_DATA (owner GUID + payload)."""
    size = 16 + len(payloads[0])
    body = b"".join(owner.bytes_le + p for p in payloads)
    return sig_type.bytes_le + struct.pack("<III", 28 + len(body), 0, size) + body


def demo_certificate() -> bytes:
    """A tiny self-signed X.509 (DER). Ed25519 signatures are deterministic, and the key and
    dates are fixed, so the bytes are the same on every run."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import NameOID

    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fwinspect demo db key")])
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(0x5EED)
            .not_valid_before(datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
            .not_valid_after(datetime.datetime(2034, 1, 1, tzinfo=datetime.timezone.utc))
            .sign(key, None))
    from cryptography.hazmat.primitives.serialization import Encoding
    return cert.public_bytes(Encoding.DER)


def demo_variables(cert: bytes) -> list[tuple[str, bytes]]:
    """(what, record) for the demo store: Lang, PlatformLang, Timeout, a deleted Timeout, db."""
    gv = GLOBAL_VARIABLE_GUID
    return [
        ("PlatformLang", variable("PlatformLang", gv, b"en-US\0", NV | BS | RT)),
        ("Timeout (deleted)", variable("Timeout", gv, struct.pack("<H", 0), NV | BS | RT, state=VAR_DELETED_STATE)),
        ("Timeout", variable("Timeout", gv, struct.pack("<H", 3), NV | BS | RT)),
        ("Lang", variable("Lang", gv, b"eng\0", NV | BS | RT)),
        ("db", variable("db", IMAGE_SECURITY_DATABASE_GUID,
                        signature_list(CERT_X509_GUID, DEMO_OWNER_GUID, [cert]),
                        NV | BS | RT | TIME_AUTH, timestamp=efi_time(2024, 1, 1))),
    ]


def ftw_working_header(size: int = FTW_WORKING_SIZE) -> bytes:
    """EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER as VarStore.fdf.inc writes it: WorkingBlockValid
    set (0xFE), WriteQueueSize = block size - 0x20 (header), Crc = CRC32 of the header taken with
    Crc and the valid/invalid bits at their erased value 0xFF (FaultTolerantWriteDxe
    `InitWorkSpaceHeader`). Matches the bytes at 0xF000 of Debian's OVMF.fd."""
    queue = size - 0x20
    pre = FTW_WORKING_GUID.bytes_le + b"\xff\xff\xff\xff" + b"\xff" + b"\xff\xff\xff" + struct.pack("<Q", queue)
    crc = zlib.crc32(pre)
    return FTW_WORKING_GUID.bytes_le + struct.pack("<I", crc) + b"\xfe\xff\xff\xff" + struct.pack("<Q", queue)


def variable_store(records: list[bytes], *, store_size: int = LIVE_SIZE - 0x48) -> bytes:
    hdr = AUTH_VAR_STORE_GUID.bytes_le + struct.pack("<IBBHI", store_size, VAR_STORE_FORMATTED,
                                                      VAR_STORE_HEALTHY, 0, 0)
    body = hdr + b"".join(records)
    if len(body) > store_size:
        raise ValueError("variables do not fit the store")
    return body + b"\xff" * (store_size - len(body))


def nv_volume(records: list[bytes]) -> bytes:
    """The whole 0x20000 NV FV."""
    hdr = ffs.fv_header(ffs.NVDATA_GUID, FV_SIZE, NVSTORE_FV_ATTRIBUTES, [(FV_SIZE // 0x1000, 0x1000)])
    out = bytearray(b"\xff" * FV_SIZE)
    out[:len(hdr)] = hdr
    store = variable_store(records, store_size=LIVE_SIZE - len(hdr))
    out[len(hdr):LIVE_SIZE] = store
    ftw = ftw_working_header()
    out[FTW_WORKING_OFFSET:FTW_WORKING_OFFSET + len(ftw)] = ftw
    return bytes(out)
