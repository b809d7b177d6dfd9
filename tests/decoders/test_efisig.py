"""EFI_SIGNATURE_LIST decoding: certificates in real PK/KEK/db compared with `openssl x509` on the
same DER bytes; crafted lists whose sizes lie."""
from __future__ import annotations

import hashlib
import re
import struct
import subprocess
import uuid
from datetime import datetime, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from decoders.efisig import decode_signature_lists
from decoders.model import Node, Space
from decoders.nvvars import decode_nv_body
from tests.decoders.wire import efi_guid
from tests.realdata import bookworm, tool, trixie

X509 = uuid.UUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
SHA256 = uuid.UUID("c1c41626-504c-4092-aca9-41f936934328")
OWNER = uuid.UUID("77fa9abd-0359-4d32-bd60-28f4e78f784b")


def live_db_vars(path) -> dict[str, Node]:
    data = path.read_bytes()
    store = decode_nv_body(Space(path.name, data), 0x48, len(data) - 0x48)[0]
    return {v.get("Name"): v for v in store.children
            if v.kind == "variable" and v.get("State") == 0x3F and v.get("Name") in ("PK", "KEK", "db", "dbx")}


def certificates(path) -> dict[str, list[tuple[Node, bytes]]]:
    data = path.read_bytes()
    out = {}
    for name, var in live_db_vars(path).items():
        sigs = [s for s in var.find("signature") if s.get("Subject") is not None]
        out[name] = [(s, data[s.field("SignatureData").offset:][:s.field("SignatureData").size]) for s in sigs]
    return out


def openssl(der: bytes) -> dict[str, str]:
    exe = tool("openssl", "openssl")
    res = subprocess.run([exe, "x509", "-inform", "DER", "-noout", "-subject", "-issuer", "-serial",
                          "-startdate", "-enddate", "-fingerprint", "-sha256"],
                         input=der, capture_output=True, check=True, timeout=30)
    out = {}
    for line in res.stdout.decode().splitlines():
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip()
    return out


def openssl_name(text: str) -> str:
    # OpenSSL 3 default -nameopt prints "C = US, O = x"; ours is "C=US, O=x".
    return re.sub(r"\s*=\s*", "=", text)


def openssl_date(text: str) -> datetime:
    return datetime.strptime(" ".join(text.split()), "%b %d %H:%M:%S %Y %Z").replace(tzinfo=timezone.utc)


MS_VARS = [pytest.param(lambda: bookworm("OVMF_VARS_4M.ms.fd"), id="bookworm"),
           pytest.param(lambda: trixie("OVMF_VARS_4M.ms.fd"), id="trixie")]


@pytest.mark.parametrize("get", MS_VARS)
def test_certificates_match_openssl(get):
    certs = certificates(get())
    assert certs["PK"] and certs["KEK"] and certs["db"]
    for name, pairs in certs.items():
        for node, der in pairs:
            ref = openssl(der)
            assert node.get("Subject") == openssl_name(ref["subject"]), name
            assert node.get("Issuer") == openssl_name(ref["issuer"]), name
            assert node.get("SerialNumber") == int(ref["serial"], 16)
            assert node.get("NotBefore") == openssl_date(ref["notBefore"])
            assert node.get("NotAfter") == openssl_date(ref["notAfter"])
            assert node.field("SHA256").display == ref["sha256 Fingerprint"].replace(":", "").lower()
            assert not node.problems


@pytest.mark.parametrize("get", MS_VARS)
def test_ms_vars_hold_microsoft_certificates(get):
    certs = certificates(get())
    db = [n.get("Subject") for n, _ in certs["db"]]
    kek = [n.get("Subject") for n, _ in certs["KEK"]]
    assert any("CN=Microsoft Corporation UEFI CA 2011" in s for s in db)
    assert any("CN=Microsoft Windows Production PCA 2011" in s for s in db)
    assert any("CN=Microsoft Corporation KEK CA 2011" in s for s in kek)
    for node, _ in certs["db"]:
        assert node.get("SignatureOwner") == OWNER  # gMicrosoftVendorGuid
        assert node.field("SignatureOwner").display.startswith("gMicrosoftVendorGuid")


def test_snakeoil_pk_is_debians_pem():
    """trixie's snakeoil VARS enrol /usr/share/ovmf/PkKek-1-snakeoil.pem as PK: same DER bytes."""
    pem = trixie("PkKek-1-snakeoil.pem").read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    (node, ours), = certificates(trixie("OVMF_VARS_4M.snakeoil.fd"))["PK"]
    assert ours == der
    assert node.field("SHA256").display == hashlib.sha256(der).hexdigest()


def test_dbx_hash_entries():
    var = live_db_vars(bookworm("OVMF_VARS_4M.ms.fd"))["dbx"]
    lists = [c for c in var.children if c.kind == "signature-list"]
    assert lists and all(l.get("SignatureType") == SHA256 for l in lists)
    for sig in (s for l in lists for s in l.children):
        raw = sig.get("Hash")
        assert len(raw) == 32 and sig.field("Hash").display == raw.hex()


# -- crafted lists ------------------------------------------------------------------------------


def sig_list(sig_type: uuid.UUID, entries: list[bytes], sig_size: int | None = None,
             list_size: int | None = None, header: bytes = b"") -> bytes:
    """EFI_SIGNATURE_LIST (ImageAuthentication.h, packed): SignatureType, SignatureListSize,
    SignatureHeaderSize, SignatureSize, the header, then EFI_SIGNATURE_DATA {SignatureOwner, data}."""
    size = sig_size if sig_size is not None else (16 + len(entries[0]) if entries else 16)
    body = b"".join(efi_guid(OWNER) + e for e in entries)
    total = list_size if list_size is not None else 28 + len(header) + len(body)
    return efi_guid(sig_type) + struct.pack("<III", total, len(header), size) + header + body


def decode(blob: bytes) -> list[Node]:
    return decode_signature_lists(Space("b", blob), 0, len(blob))


def test_sha256_list_and_two_lists():
    h1, h2 = hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()
    blob = sig_list(SHA256, [h1, h2]) + sig_list(SHA256, [h2])
    lists = decode(blob)
    assert [len(l.children) for l in lists] == [2, 1]
    assert [s.get("Hash") for s in lists[0].children] == [h1, h2]
    assert lists[0].get("SignatureType") == SHA256 and lists[0].field("SignatureType").display.startswith(
        "gEfiCertSha256Guid")
    assert [s.get("SignatureOwner") for s in lists[0].children] == [OWNER, OWNER]
    assert lists[1].offset == 28 + 2 * 48
    assert not any(l.problems for l in lists)


def test_signature_list_header_fields():
    """The 28-byte EFI_SIGNATURE_LIST header with a SignatureHeader: each member at its offset."""
    (lst,) = decode(sig_list(SHA256, [bytes(32)], header=b"\xaa\xbb"))
    assert [(f.name, f.value, f.offset, f.size) for f in lst.fields] == [
        ("SignatureType", SHA256, 0, 16), ("SignatureListSize", 78, 16, 4), ("SignatureHeaderSize", 2, 20, 4),
        ("SignatureSize", 48, 24, 4), ("SignatureHeader", b"\xaa\xbb", 28, 2)]
    assert [s.offset for s in lst.children] == [30] and not lst.problems


def test_x509_sha256_time_of_revocation():
    """EFI_CERT_X509_SHA256 (ImageAuthentication.h): ToBeSignedHash[32], then the EFI_TIME
    TimeOfRevocation (UEFI 2.10 §8.3: Year, Month, Day, Hour, Minute, Second, Pad1, Nanosecond,
    TimeZone, Daylight, Pad2)."""
    x509_sha256 = uuid.UUID("3bd2a492-96c0-4079-b420-fcf98ef103ed")
    when = {"Year": 2021, "Month": 6, "Day": 7, "Hour": 8, "Minute": 9, "Second": 10, "Pad1": 0,
            "Nanosecond": 0, "TimeZone": 0x7FF, "Daylight": 0, "Pad2": 0}
    tbs = hashlib.sha256(b"tbs").digest()
    (lst,) = decode(sig_list(x509_sha256, [tbs + struct.pack("<HBBBBBBIhBB", *when.values())]))
    (sig,) = lst.children
    assert sig.get("ToBeSignedHash") == tbs
    f = sig.field("TimeOfRevocation")
    assert (f.value, f.offset, f.size, f.display) == (when, 28 + 16 + 32, 16, "2021-06-07 08:09:10")
    assert list(f.value) == list(when) and not lst.problems


def test_signature_size_zero_is_a_problem():
    lists = decode(sig_list(SHA256, [bytes(32)], sig_size=0))
    assert lists[0].problems and lists[0].problems[0].offset == 24 and not lists[0].children


def test_signature_size_larger_than_list_is_a_problem():
    lists = decode(sig_list(SHA256, [bytes(32)], sig_size=0x1000))
    assert any(p.offset == 24 for p in lists[0].problems) and not lists[0].children


def test_list_size_lies():
    too_small = decode(sig_list(SHA256, [bytes(32)], list_size=4))
    assert too_small[0].problems and len(too_small) == 1
    too_big = decode(sig_list(SHA256, [bytes(32)], list_size=0x10000))
    assert any(p.offset == 16 for p in too_big[0].problems)
    assert len(too_big[0].children) == 1  # what fits is still decoded


def test_truncated_header():
    lists = decode(sig_list(SHA256, [bytes(32)])[:20])
    assert lists[0].problems and lists[0].problems[0].offset == 0


def test_truncated_certificate_is_a_problem():
    der = certificates(bookworm("OVMF_VARS_4M.ms.fd"))["PK"][0][1]
    lists = decode(sig_list(X509, [der[: len(der) // 2]]))
    sig = lists[0].children[0]
    assert sig.problems and "does not parse" in sig.problems[0].message
    assert sig.get("Subject") is None


def test_many_signatures_bounded():
    blob = sig_list(SHA256, [bytes(32)] * 9000)
    lists = decode(blob)
    assert len(lists[0].children) < 9000 and lists[0].problems


def test_mutated_certificates_give_problems_not_exceptions():
    """Hostile DER: byte edits in a real certificate give located problems or warnings, never raise."""
    import random
    rng = random.Random(5)  # fixed seed: the same 300 mutants every run
    der = certificates(bookworm("OVMF_VARS_4M.ms.fd"))["db"][0][1]
    for _ in range(300):
        d = bytearray(der)
        for _ in range(rng.randint(1, 3)):
            d[rng.randrange(len(d))] = rng.randrange(256)
        lists = decode(sig_list(X509, [bytes(d)]))
        sig = lists[0].children[0]
        assert sig.get("Subject") is not None or sig.problems
        sig.to_json()


def test_x509_warnings_come_in_the_order_cryptography_raised_them_whatever_the_hash_seed():
    """The SUPERMICRO CA in tpm2-tools' event-postcode.bin draws two cryptography warnings (a
    non-positive serial, then a 3-byte attribute); collected through a set, their order followed
    the process's string hash seed, so the same log printed differently run to run."""
    import sys

    from tests.realdata import ROOT, fixture

    log = fixture("eventlog/tpm2-tools/event-postcode.bin")
    code = ("import sys; from decoders.eventlog import decode_event_log; "
            "root = decode_event_log(open(sys.argv[1], 'rb').read()); "
            "print([p.message for n in root.walk() for p in n.problems if p.offset == 0x1912])")
    seen = set()
    for seed in range(8):
        out = subprocess.run([sys.executable, "-c", code, str(log)], capture_output=True, text=True, check=True,
                             env={"PYTHONHASHSEED": str(seed), "PATH": "/usr/bin:/bin"}, cwd=str(ROOT))
        seen.add(out.stdout)
    assert len(seen) == 1
    warnings = eval(seen.pop())
    assert [w.split(":")[1].strip()[:24] for w in warnings] == ["Parsed a serial number w", "Attribute's length must "]
