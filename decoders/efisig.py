"""EFI_SIGNATURE_LIST decoding: the data of the PK, KEK, db, dbx (and *Default) variables.

Spec: UEFI 2.10 §32.4.1 "Signature Database"; edk2 `MdePkg/Include/Guid/ImageAuthentication.h`
(EFI_SIGNATURE_LIST, EFI_SIGNATURE_DATA, EFI_CERT_*_GUID) and `MdePkg/Include/Uefi/UefiBaseType.h`
(EFI_TIME). Called by decoders/uefivar.py for the signature-database variables, wherever they are
found: the NV variable store and the event log's EV_EFI_VARIABLE_DRIVER_CONFIG events.

A database is a packed run of lists; each list holds SignatureType, its total size, an optional
type-specific header and then (SignatureListSize - 28 - SignatureHeaderSize) / SignatureSize
entries of SignatureOwner GUID + data. For X.509 the data is one DER certificate (so, normally,
one certificate per list).
"""
from __future__ import annotations

import hashlib
import uuid
import warnings

from decoders import guids
from decoders.errors import DecodeError
from decoders.layout import Layout
from decoders.model import Node, Space

# -- wire structs ----------------------------------------------------------------------------

# UEFI 2.10 §8.3, EFI_TIME (16 bytes). Also the TimeStamp of AUTHENTICATED_VARIABLE_HEADER.
EFI_TIME = Layout(
    "EFI_TIME",
    ("Year", "H"),
    ("Month", "B"),
    ("Day", "B"),
    ("Hour", "B"),
    ("Minute", "B"),
    ("Second", "B"),
    ("Pad1", "B"),
    ("Nanosecond", "I"),
    ("TimeZone", "h"),
    ("Daylight", "B"),
    ("Pad2", "B"),
)

# ImageAuthentication.h, #pragma pack(1): 28 bytes, then SignatureHeader, then the signatures.
EFI_SIGNATURE_LIST = Layout(
    "EFI_SIGNATURE_LIST",
    ("SignatureType", "G"),
    ("SignatureListSize", "I"),
    ("SignatureHeaderSize", "I"),
    ("SignatureSize", "I"),
)
SIGNATURE_LIST_HEADER_SIZE = EFI_SIGNATURE_LIST.size
SIGNATURE_OWNER_SIZE = 16  # EFI_SIGNATURE_DATA.SignatureOwner

# Data bytes after SignatureOwner for fixed-size types (the header comments in
# ImageAuthentication.h: "SignatureSize shall always be 16 + N").
HASH_SIZES = {guids.gEfiCertSha1Guid: 20, guids.gEfiCertSha224Guid: 28, guids.gEfiCertSha256Guid: 32,
              guids.gEfiCertSha384Guid: 48, guids.gEfiCertSha512Guid: 64, guids.gEfiCertRsa2048Guid: 256,
              guids.gEfiCertRsa2048Sha256Guid: 256, guids.gEfiCertRsa2048Sha1Guid: 256}
# EFI_CERT_X509_SHAxxx: ToBeSignedHash followed by EFI_TIME TimeOfRevocation.
X509_HASH_SIZES = {guids.gEfiCertX509Sha256Guid: 32, guids.gEfiCertX509Sha384Guid: 48,
                   guids.gEfiCertX509Sha512Guid: 64}

# Bounds for hostile input. A real dbx (2024) holds ~430 SHA-256 entries in one list and a db a
# handful of certificates; these caps are far above that and keep a crafted blob cheap.
MAX_SIGNATURE_LISTS = 1024
MAX_SIGNATURES_PER_LIST = 8192
MAX_SIGNATURES_TOTAL = 16384

def _x509_module():
    """cryptography's x509, imported on the first certificate (it costs ~20 ms at start-up, and
    most images hold no certificate); None when the package is missing."""
    try:  # `cryptography` is a project dependency; guard only so decoding still works without it.
        from cryptography import x509
    except ImportError:  # pragma: no cover - exercised only in a broken install
        return None
    return x509


def efi_time_text(t: dict) -> str:
    """EFI_TIME (as EFI_TIME.read gives it) as an ISO-like date; all-zero (unset) shows as
    "0000-00-00 00:00:00"."""
    text = f"{t['Year']:04d}-{t['Month']:02d}-{t['Day']:02d} {t['Hour']:02d}:{t['Minute']:02d}:{t['Second']:02d}"
    if t["Nanosecond"]:
        text += f".{t['Nanosecond']:09d}"
    zone = t["TimeZone"]
    if zone != 0x7FF and zone != 0:  # 0x7FF = EFI_UNSPECIFIED_TIMEZONE
        text += f" UTC{-zone:+d}min"
    return text


def name_text(name) -> str:
    """An X.509 Name in OpenSSL's order (most significant RDN first), `C=US, O=..., CN=...`."""
    parts = []
    for rdn in name.rdns:
        for attr in rdn:
            key = _OID_SHORT.get(attr.oid.dotted_string) or attr.rfc4514_attribute_name
            parts.append(f"{key}={attr.value}")
    return ", ".join(parts)


# Short names OpenSSL prints where cryptography's RFC 4514 names fall back to dotted OIDs.
_OID_SHORT = {"1.2.840.113549.1.9.1": "emailAddress", "2.5.4.5": "serialNumber"}


def decode_signature_lists(space: Space, offset: int, size: int) -> list[Node]:
    """Decode the EFI_SIGNATURE_LISTs packed in `space.data[offset:offset+size]`.

    Returns one "signature-list" Node per list; a list whose sizes lie gets problems and the walk
    stops when the next list cannot be located.
    """
    data = space.data
    end = min(offset + size, len(data))
    lists: list[Node] = []
    pos = offset
    total = 0
    while pos < end:
        if len(lists) >= MAX_SIGNATURE_LISTS:
            lists[-1].problem(pos, f"more than {MAX_SIGNATURE_LISTS} signature lists; rest not decoded")
            break
        node = Node("signature-list", "EFI_SIGNATURE_LIST", space, pos, end - pos)
        lists.append(node)
        try:
            hdr = EFI_SIGNATURE_LIST.parse(data, pos, "EFI_SIGNATURE_LIST")
        except DecodeError as e:
            node.problem(pos, f"truncated EFI_SIGNATURE_LIST: {e.message} (needs {SIGNATURE_LIST_HEADER_SIZE} "
                              f"bytes, {end - pos} left)")
            break
        total += _decode_list(node, hdr, pos, end, MAX_SIGNATURES_TOTAL - total)
        if node.size <= 0 or hdr.SignatureListSize < SIGNATURE_LIST_HEADER_SIZE:
            break  # the next list cannot be located
        pos += node.size
    return lists


def _decode_list(node: Node, hdr, pos: int, end: int, budget: int) -> int:
    """Fill a signature-list node; returns the number of signatures decoded."""
    sig_type = hdr.SignatureType
    node.add("SignatureType", sig_type, pos, 16, guids.describe(sig_type))
    node.add("SignatureListSize", hdr.SignatureListSize, pos + 16, 4)
    node.add("SignatureHeaderSize", hdr.SignatureHeaderSize, pos + 20, 4)
    node.add("SignatureSize", hdr.SignatureSize, pos + 24, 4)
    type_name = guids.name(sig_type) or str(sig_type).upper()
    list_size = hdr.SignatureListSize
    if list_size < SIGNATURE_LIST_HEADER_SIZE:
        node.problem(pos + 16, f"SignatureListSize 0x{list_size:x} is smaller than the 28-byte header")
        node.size = SIGNATURE_LIST_HEADER_SIZE
        node.title = f"{type_name} (bad size)"
        return 0
    if pos + list_size > end:
        node.problem(pos + 16, f"SignatureListSize 0x{list_size:x} runs past the end of the data "
                               f"(0x{end - pos:x} bytes left)")
        list_size = end - pos
    node.size = list_size
    body = pos + SIGNATURE_LIST_HEADER_SIZE
    if hdr.SignatureHeaderSize > list_size - SIGNATURE_LIST_HEADER_SIZE:
        node.problem(pos + 20, f"SignatureHeaderSize 0x{hdr.SignatureHeaderSize:x} is larger than the list")
        node.title = f"{type_name} (bad header size)"
        return 0
    if hdr.SignatureHeaderSize:
        node.add("SignatureHeader", bytes(node.space.data[body:body + hdr.SignatureHeaderSize]), body,
                 hdr.SignatureHeaderSize)
    first = body + hdr.SignatureHeaderSize
    room = pos + list_size - first
    sig_size = hdr.SignatureSize
    if sig_size < SIGNATURE_OWNER_SIZE:
        node.problem(pos + 24, f"SignatureSize 0x{sig_size:x} is smaller than the 16-byte SignatureOwner")
        node.title = f"{type_name} (bad signature size)"
        return 0
    if sig_size > room:
        node.problem(pos + 24, f"SignatureSize 0x{sig_size:x} is larger than the list body (0x{room:x} bytes)")
        node.title = f"{type_name} (bad signature size)"
        return 0
    if room % sig_size:
        node.warn(first, f"list body 0x{room:x} is not a multiple of SignatureSize 0x{sig_size:x}; "
                         f"{room % sig_size} trailing bytes")
    expected = HASH_SIZES.get(sig_type) or (X509_HASH_SIZES.get(sig_type, -16) + 16)
    if expected > 0 and sig_size != SIGNATURE_OWNER_SIZE + expected:
        node.warn(pos + 24, f"{type_name} signatures are {SIGNATURE_OWNER_SIZE + expected} bytes, "
                            f"SignatureSize says {sig_size}")
    count = room // sig_size
    limit = min(count, MAX_SIGNATURES_PER_LIST, max(budget, 0))
    if limit < count:
        node.problem(first + limit * sig_size, f"{count} signatures; only the first {limit} decoded")
    for i in range(limit):
        node.append(_decode_signature(node.space, sig_type, first + i * sig_size, sig_size, i))
    node.title = f"{type_name}, {count} signature{'s' if count != 1 else ''}"
    return limit


def _decode_signature(space: Space, sig_type: uuid.UUID, pos: int, size: int, index: int) -> Node:
    data = space.data
    node = Node("signature", f"EFI_SIGNATURE_DATA #{index}", space, pos, size)
    owner = guids.from_bytes(data[pos:pos + 16])
    node.add("SignatureOwner", owner, pos, 16, guids.describe(owner))
    start, length = pos + 16, size - 16
    raw = bytes(data[start:start + length])
    if sig_type == guids.gEfiCertX509Guid:
        _decode_x509(node, raw, start)
    elif sig_type in HASH_SIZES:
        rsa = (guids.gEfiCertRsa2048Guid, guids.gEfiCertRsa2048Sha1Guid, guids.gEfiCertRsa2048Sha256Guid)
        field = "RsaModulus" if length == 256 and sig_type in rsa else "Hash"
        node.add(field, raw, start, length, raw.hex())
        node.title = f"{guids.name(sig_type)} {raw[:8].hex()}…" if len(raw) > 8 else raw.hex()
    elif sig_type in X509_HASH_SIZES:
        n = X509_HASH_SIZES[sig_type]
        node.add("ToBeSignedHash", raw[:n], start, n, raw[:n].hex())
        if length >= n + EFI_TIME.size:
            t = EFI_TIME.read(raw, n)
            node.add("TimeOfRevocation", t, start + n, EFI_TIME.size, efi_time_text(t))
        node.title = f"TBS hash {raw[:8].hex()}…"
    else:
        node.add("SignatureData", raw, start, length)
    return node


def _decode_x509(node: Node, der: bytes, start: int) -> None:
    node.add("SignatureData", der, start, len(der), f"X.509 certificate, {len(der)} bytes")
    node.add("SHA256", hashlib.sha256(der).digest(), start, len(der), hashlib.sha256(der).hexdigest())
    _x509 = _x509_module()
    if _x509 is None:
        node.warn(start, "the `cryptography` package is missing: certificate not decoded")
        return
    # cryptography reports RFC 5280 violations it still tolerates (a non-positive serial) as
    # Python warnings; a decoder must not print, so they become located warnings here.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cert = _x509.load_der_x509_certificate(der)
            subject, issuer = name_text(cert.subject), name_text(cert.issuer)
            serial = cert.serial_number
            not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
        except (ValueError, _x509.InvalidVersion) as e:  # cryptography's errors for malformed DER/fields
            node.problem(start, f"X.509 certificate does not parse: {e}")
            node.title = "X.509 (unparsable)"
            return
    for w in dict.fromkeys(str(w.message) for w in caught):    # each once, in the order raised
        node.warn(start, f"X.509: {w}")
    node.add("Subject", subject, start, len(der))
    node.add("Issuer", issuer, start, len(der))
    node.add("SerialNumber", serial, start, len(der), f"{serial:x}")
    node.add("NotBefore", not_before, start, len(der), not_before.strftime("%Y-%m-%d %H:%M:%S UTC"))
    node.add("NotAfter", not_after, start, len(der), not_after.strftime("%Y-%m-%d %H:%M:%S UTC"))
    cn = [a.value for a in cert.subject.get_attributes_for_oid(_x509.NameOID.COMMON_NAME)]
    node.title = f"X.509 {cn[0] if cn else subject}"
