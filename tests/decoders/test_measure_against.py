"""explain_against: a TCG event log against a prediction, the first divergence and its reason.

Crafted logs are built here with struct.pack from TCG PC Client PFP 1.05: the Spec ID event
(§10.2.1 TCG_EfiSpecIDEventStruct inside a TCG_PCR_EVENT), then TCG_PCR_EVENT2 (§10.2.2: PCRIndex,
EventType, TPML_DIGEST_VALUES, EventSize, Event). Event data: UEFI_PLATFORM_FIRMWARE_BLOB (§10.2.5),
UEFI_VARIABLE_DATA (§10.2.6), EFI_SIGNATURE_LIST (UEFI 2.10 §32.4.1). Digests follow edk2's rules
(SecurityPkg/Tcg/Tcg2Dxe/Tcg2Dxe.c: a driver-config variable hashes its whole UEFI_VARIABLE_DATA, a
separator its 4 bytes; Tcg2Pei.c: a blob the volume's bytes, the CRTM version its string).
Register values are recomputed here with hashlib (PCR = H(PCR || digest), TPM 2.0 Part 1 "PCR Extend").

Real logs (tests/data/ovmf-boots/, README there) are OVMF boots under QEMU and swtpm,
explained against predict_tpm's predictions from another VARS or another image.
"""
from __future__ import annotations

import datetime
import hashlib
import struct
import uuid

import pytest

from decoders.eventlog import decode_event_log, replay
from decoders.measure.against import compare_registers, explain_against
from decoders.measure.model import PredictedEvent, Prediction
from decoders.model import Severity
from tests.realdata import bookworm, fixture, trixie

EV_NO_ACTION, EV_SEPARATOR, EV_S_CRTM_VERSION = 0x3, 0x4, 0x8
EV_EFI_VARIABLE_DRIVER_CONFIG, EV_EFI_ACTION = 0x80000001, 0x80000007
EV_EFI_PLATFORM_FIRMWARE_BLOB, EV_EFI_VARIABLE_AUTHORITY = 0x80000008, 0x800000E0
ALG = {"sha1": (0x0004, 20), "sha256": (0x000B, 32), "sha384": (0x000C, 48)}
GLOBAL = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")            # EFI_GLOBAL_VARIABLE
SECURITY_DB = uuid.UUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")       # EFI_IMAGE_SECURITY_DATABASE_GUID
CERT_X509 = uuid.UUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")         # EFI_CERT_X509_GUID
OWNER_A = uuid.UUID("77fa9abd-0359-4d32-bd60-28f4e78f784b")           # Microsoft's owner GUID
OWNER_B = uuid.UUID("11111111-2222-3333-4444-555555555555")


# -- wire builders (PFP §10.2) --------------------------------------------------------------------

def spec_id(banks) -> bytes:
    body = b"Spec ID Event03\0" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, len(banks))
    body += b"".join(struct.pack("<HH", *ALG[b]) for b in banks) + b"\0"
    return struct.pack("<II20sI", 0, EV_NO_ACTION, bytes(20), len(body)) + body


def event2(pcr: int, etype: int, digests: dict[str, bytes], data: bytes) -> bytes:
    out = struct.pack("<III", pcr, etype, len(digests))
    for bank, d in digests.items():
        out += struct.pack("<H", ALG[bank][0]) + d
    return out + struct.pack("<I", len(data)) + data


def h(bank: str, data: bytes) -> bytes:
    return hashlib.new(bank, data).digest()


def variable(vendor: uuid.UUID, name: str, value: bytes) -> bytes:
    uname = name.encode("utf-16-le")
    return vendor.bytes_le + struct.pack("<QQ", len(name), len(value)) + uname + value


def x509_list(*certs: tuple[uuid.UUID, bytes]) -> bytes:
    """One EFI_SIGNATURE_LIST per certificate (each DER has its own size)."""
    out = b""
    for owner, der in certs:
        out += CERT_X509.bytes_le + struct.pack("<III", 28 + 16 + len(der), 0, 16 + len(der)) + owner.bytes_le + der
    return out


def cert(cn: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    c = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
         .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
         .sign(key, hashes.SHA256()))
    return c.public_bytes(serialization.Encoding.DER)


# -- one OVMF-like boot: what the firmware logs for PCR0 and PCR7 ------------------------------------

class Ev:
    """An event as both sides see it: PCR, type, the logged data and the hashed bytes."""

    def __init__(self, pcr, etype, data, hashed=None, description=""):
        self.pcr, self.etype, self.data = pcr, etype, data
        self.hashed = data if hashed is None else hashed
        self.description = description

    def digests(self, banks):
        return {b: h(b, self.hashed) for b in banks}


def blob(base, length, fill):
    return Ev(0, EV_EFI_PLATFORM_FIRMWARE_BLOB, struct.pack("<QQ", base, length), bytes([fill]) * 64)


def boot_events(*, version="", peifv=(0x820000, 0xE0000, 1), dxefv=(0x900000, 0xC00000, 2),
                secure_boot=0, pk=b"", db=b"", separators=True):
    evs = [Ev(0, EV_S_CRTM_VERSION, (version + "\0").encode("utf-16-le")),
           blob(*peifv), blob(*dxefv),
           Ev(7, EV_EFI_VARIABLE_DRIVER_CONFIG, variable(GLOBAL, "SecureBoot", bytes([secure_boot]))),
           Ev(7, EV_EFI_VARIABLE_DRIVER_CONFIG, variable(GLOBAL, "PK", pk)),
           Ev(7, EV_EFI_VARIABLE_DRIVER_CONFIG, variable(GLOBAL, "KEK", b"")),
           Ev(7, EV_EFI_VARIABLE_DRIVER_CONFIG, variable(SECURITY_DB, "db", db)),
           Ev(7, EV_EFI_VARIABLE_DRIVER_CONFIG, variable(SECURITY_DB, "dbx", b""))]
    if separators:
        evs.append(Ev(7, EV_SEPARATOR, bytes(4)))
        evs.append(Ev(1, EV_EFI_ACTION, b"Calling EFI Application from Boot Option"))
        evs.append(Ev(0, EV_SEPARATOR, bytes(4)))
    return evs


def log_of(evs, banks=("sha1", "sha256")):
    raw = spec_id(banks) + b"".join(event2(e.pcr, e.etype, e.digests(banks), e.data) for e in evs)
    return decode_event_log(raw)


def prediction_of(evs, banks=("sha1", "sha256")):
    return Prediction([PredictedEvent(e.pcr, e.etype, e.digests(banks), e.data, "crafted", e.description)
                       for e in evs if e.pcr in (0, 7)], tuple(banks))


def pcr_value(evs, pcr, bank):
    value = bytes(ALG[bank][1])
    for e in evs:
        if e.pcr == pcr:
            value = h(bank, value + h(bank, e.hashed))
    return value


def explain(log_evs, pred_evs, **kw):
    node = explain_against(prediction_of(pred_evs, kw.pop("pred_banks", ("sha1", "sha256"))),
                           log_of(log_evs, kw.pop("log_banks", ("sha1", "sha256"))), **kw)
    return node


def divergences(node):
    return [c for c in node.children if c.kind == "against-divergence"]


def registers(node):
    return {(c.get("Register"), c.get("Bank")): c for c in node.children if c.kind == "against-register"}


# -- agreement -------------------------------------------------------------------------------------

def test_identical_log_and_prediction_agree_with_exact_register_values():
    evs = boot_events()
    node = explain(evs, evs)
    assert node.kind == "measure-against"
    assert node.get("FirstDivergence") is None
    assert divergences(node) == []
    assert not [p for p in node.problems if p.severity != Severity.INFO]
    regs = registers(node)
    assert sorted(regs) == [("PCR0", "sha1"), ("PCR0", "sha256"), ("PCR7", "sha1"), ("PCR7", "sha256")]
    for (reg, bank), r in regs.items():
        want = pcr_value(evs, int(reg[3:]), bank).hex()
        assert (r.get("Predicted"), r.get("Replayed"), r.get("Equal")) == (want, want, True)


def test_compare_registers_reports_prediction_and_replay_per_bank():
    evs = boot_events()
    log = log_of(evs)
    checks = compare_registers(prediction_of(evs), replay(log))
    got = [(c.register, c.bank, c.predicted, c.replayed, c.predicted_events, c.logged_events, c.equal)
           for c in checks]
    assert got == [("PCR0", "sha1", pcr_value(evs, 0, "sha1"), pcr_value(evs, 0, "sha1"), 4, 4, True),
                   ("PCR7", "sha1", pcr_value(evs, 7, "sha1"), pcr_value(evs, 7, "sha1"), 6, 6, True),
                   ("PCR0", "sha256", pcr_value(evs, 0, "sha256"), pcr_value(evs, 0, "sha256"), 4, 4, True),
                   ("PCR7", "sha256", pcr_value(evs, 7, "sha256"), pcr_value(evs, 7, "sha256"), 6, 6, True)]


# -- one divergence each ---------------------------------------------------------------------------

def test_crtm_version_string_differs_shows_both_strings():
    node = explain(boot_events(version="1.0"), boot_events(version=""))
    assert node.get("FirstDivergence") == 1
    assert node.get("Reason") == ('#1 PCR0 EV_S_CRTM_VERSION: CRTM version "1.0" in the log, "" predicted: the '
                                  'firmware that booted has another version string (PcdFirmwareVersionString)')
    assert [d.get("LogIndex") for d in divergences(node)] == [1]


def test_firmware_blob_at_another_base_names_both_ranges():
    node = explain(boot_events(peifv=(0x820000, 0xE0000, 1)), boot_events(peifv=(0x800000, 0xE0000, 5)))
    assert node.get("FirstDivergence") == 2
    assert node.get("Reason") == ("#2 PCR0 EV_EFI_PLATFORM_FIRMWARE_BLOB: firmware blob 0x820000+0xe0000 in the "
                                  "log, 0x800000+0xe0000 predicted (at another base): the image booted is not "
                                  "this one, or its PEIFV/DXEFV is at another base or of another size")


def test_firmware_blob_of_another_size():
    node = explain(boot_events(dxefv=(0x900000, 0xC00000, 2)), boot_events(dxefv=(0x900000, 0xD00000, 6)))
    assert node.get("FirstDivergence") == 3
    assert "firmware blob 0x900000+0xc00000 in the log, 0x900000+0xd00000 predicted (of another size)" \
        in node.get("Reason")


def test_firmware_blob_same_range_other_bytes_names_digests():
    log_evs, pred_evs = boot_events(dxefv=(0x900000, 0xC00000, 2)), boot_events(dxefv=(0x900000, 0xC00000, 9))
    node = explain(log_evs, pred_evs)
    lg, pr = h("sha256", bytes([2]) * 64).hex()[:16], h("sha256", bytes([9]) * 64).hex()[:16]
    assert node.get("FirstDivergence") == 3
    assert node.get("Reason") == (f"#3 PCR0 EV_EFI_PLATFORM_FIRMWARE_BLOB: firmware blob 0x900000+0xc00000: same "
                                  f"range, another digest (sha256 {lg}… in the log, {pr}… predicted): the bytes "
                                  f"hashed differ from the predicted ones (another build of the same layout was "
                                  f"booted, or the firmware wrote into the volume before measuring it)")
    regs = registers(node)
    assert regs[("PCR0", "sha256")].get("Equal") is False
    assert regs[("PCR7", "sha256")].get("Equal") is True


def test_secure_boot_one_in_log_zero_predicted():
    node = explain(boot_events(secure_boot=1), boot_events(secure_boot=0))
    assert node.get("FirstDivergence") == 4
    assert node.get("Reason") == ("#4 PCR7 EV_EFI_VARIABLE_DRIVER_CONFIG: SecureBoot is 1 (enabled) in the log, 0 "
                                  "(disabled) predicted from the VARS: Secure Boot was on in the boot, and these "
                                  "VARS would leave it off (no PK enrolled?)")


def test_db_with_a_certificate_missing_from_the_vars_names_it():
    a, ms = cert("Debian UEFI Secure Boot"), cert("Microsoft UEFI CA 2011")
    node = explain(boot_events(db=x509_list((OWNER_A, a), (OWNER_A, ms))), boot_events(db=x509_list((OWNER_A, a))))
    assert node.get("FirstDivergence") == 7
    assert node.get("Reason") == ("#7 PCR7 EV_EFI_VARIABLE_DRIVER_CONFIG: db holds 2 certificates in the log, 1 in "
                                  "the VARS: Microsoft UEFI CA 2011 missing from the VARS")
    assert [p.message for p in node.problems if p.severity == Severity.WARNING][0] == node.get("Reason")


def test_db_certificate_only_in_the_vars():
    a, b = cert("Alpha CA"), cert("Beta CA")
    node = explain(boot_events(db=x509_list((OWNER_A, a))), boot_events(db=x509_list((OWNER_A, b))))
    assert node.get("Reason").endswith("db holds 1 certificate in the log, 1 in the VARS: Alpha CA missing from "
                                       "the VARS; Beta CA only in the VARS")


def test_db_same_certificates_other_owner():
    a = cert("Alpha CA")
    node = explain(boot_events(db=x509_list((OWNER_A, a))), boot_events(db=x509_list((OWNER_B, a))))
    assert node.get("Reason").endswith(f"db holds 1 certificate in the log, 1 in the VARS: same entries, other "
                                       f"SignatureOwner: Alpha CA owned by {OWNER_A} in the log, by {OWNER_B} in "
                                       f"the VARS")


def test_pk_enrolled_in_log_empty_in_vars():
    pk = cert("Platform Key")
    node = explain(boot_events(secure_boot=0, pk=x509_list((OWNER_A, pk))), boot_events(secure_boot=0, pk=b""))
    assert node.get("FirstDivergence") == 5
    assert node.get("Reason") == ("#5 PCR7 EV_EFI_VARIABLE_DRIVER_CONFIG: PK holds 1 certificate in the log, none in "
                                  "the VARS (PK is not enrolled there): Platform Key missing from the VARS")


def test_event_the_prediction_did_not_expect():
    log_evs = boot_events()
    extra = Ev(7, EV_EFI_VARIABLE_AUTHORITY, variable(SECURITY_DB, "db", OWNER_A.bytes_le + b"cert"))
    log_evs.insert(5, extra)       # after SecureBoot and PK: log #6
    node = explain(log_evs, boot_events())
    assert node.get("FirstDivergence") == 6
    d = divergences(node)
    assert [(x.get("LogIndex"), x.get("Kind")) for x in d] == [(6, "unexpected")]
    assert node.get("Reason") == ("the log has #6 PCR7 EV_EFI_VARIABLE_AUTHORITY (db (20 bytes)), which the "
                                  "prediction did not expect")


def test_predicted_event_missing_from_the_log():
    pred_evs = boot_events()
    log_evs = [e for e in pred_evs if not (e.pcr == 7 and b"d\0b\0x\0" in e.data)]   # no dbx event
    node = explain(log_evs, pred_evs)
    # the log's #8 is the PCR7 separator, where dbx was expected
    assert node.get("FirstDivergence") == 8
    assert [(x.get("LogIndex"), x.get("Kind")) for x in divergences(node)] == [(8, "missing")]
    assert node.get("Reason") == "predicted PCR7 EV_EFI_VARIABLE_DRIVER_CONFIG (dbx (0 bytes); crafted) is not in the log"


def test_predicted_event_missing_at_the_end_points_past_the_log():
    pred_evs = boot_events()
    log_evs = pred_evs[:-1]        # no PCR0 separator: 10 events + the Spec ID
    node = explain(log_evs, pred_evs)
    assert node.get("FirstDivergence") == 11 == node.get("FirstDivergence") and len(log_evs) + 1 == 11
    assert node.field("FirstDivergence").display == "end of the log (11 events)"
    assert node.get("Reason") == ("predicted PCR0 EV_SEPARATOR (separator 0x00000000; crafted) is not in the log")


def test_so_far_cuts_the_prediction_to_the_events_logged():
    pred_evs = boot_events()
    log_evs = boot_events(separators=False)
    cut = explain(log_evs, pred_evs, so_far=True)
    assert cut.get("FirstDivergence") is None
    regs = registers(cut)
    assert regs[("PCR7", "sha256")].get("Predicted") == pcr_value(log_evs, 7, "sha256").hex()
    assert regs[("PCR7", "sha256")].get("Equal") is True
    whole = explain(log_evs, pred_evs)
    assert [(x.get("PCRIndex"), x.get("Kind")) for x in divergences(whole)] == [(0, "missing"), (7, "missing")]


def test_bank_the_log_lacks_is_a_warning_and_the_others_still_compare():
    evs = boot_events()
    node = explain(evs, evs, pred_banks=("sha1", "sha256", "sha384"), log_banks=("sha256",))
    msgs = [p.message for p in node.problems if p.severity == Severity.WARNING]
    assert msgs == ["the log has no sha1 bank (it has sha256): the predicted sha1 values cannot be checked",
                    "the log has no sha384 bank (it has sha256): the predicted sha384 values cannot be checked"]
    assert node.get("FirstDivergence") is None
    assert node.get("Banks") == ["sha256"]
    regs = registers(node)
    assert regs[("PCR0", "sha384")].get("Equal") is False
    assert regs[("PCR0", "sha384")].field("Equal").display == "not checked"
    assert regs[("PCR0", "sha256")].get("Equal") is True


def test_logged_data_differ_but_digests_agree_is_a_note_not_a_divergence():
    log_evs = boot_events()
    pred_evs = boot_events()
    # the same firmware bytes logged at another address: digest equal, data not
    pred_evs[1] = Ev(0, EV_EFI_PLATFORM_FIRMWARE_BLOB, struct.pack("<QQ", 0x700000, 0xE0000), bytes([1]) * 64)
    node = explain(log_evs, pred_evs)
    assert node.get("FirstDivergence") is None
    [d] = divergences(node)
    assert d.get("Kind") == "data"
    assert [p.severity for p in node.problems] == [Severity.INFO]


def test_separator_value_differs():
    log_evs = boot_events()
    log_evs[8] = Ev(7, EV_SEPARATOR, struct.pack("<I", 1))
    node = explain(log_evs, boot_events())
    assert node.get("FirstDivergence") == 9
    assert node.get("Reason").startswith("#9 PCR7 EV_SEPARATOR: separator 0x00000001 in the log, separator "
                                         "0x00000000 predicted (sha256 ")


def test_one_bank_differing_is_a_divergence_even_when_another_agrees():
    evs = boot_events()
    raw = spec_id(("sha1", "sha256"))
    for n, e in enumerate(evs):
        d = e.digests(("sha1", "sha256"))
        if n == 2:                 # DXEFV: sha1 of the right bytes, sha256 of other bytes
            d["sha256"] = h("sha256", b"other bytes")
        raw += event2(e.pcr, e.etype, d, e.data)
    node = explain_against(prediction_of(evs), decode_event_log(raw))
    assert node.get("FirstDivergence") == 3
    assert node.get("Reason") == (f"#3 PCR0 EV_EFI_PLATFORM_FIRMWARE_BLOB: firmware blob 0x900000+0xc00000: same "
                                  f"range, another digest (sha256 {h('sha256', b'other bytes').hex()[:16]}… in the "
                                  f"log, {h('sha256', bytes([2]) * 64).hex()[:16]}… predicted): the bytes hashed "
                                  f"differ from the predicted ones (another build of the same layout was booted, "
                                  f"or the firmware wrote into the volume before measuring it)")
    regs = registers(node)
    assert (regs[("PCR0", "sha1")].get("Equal"), regs[("PCR0", "sha256")].get("Equal")) == (True, False)


def test_startup_locality_in_the_log_not_predicted():
    # PFP §10.4.5.3: EV_NO_ACTION in PCR0, "StartupLocality\0" then the locality byte
    locality = struct.pack("<IIIH", 0, EV_NO_ACTION, 2, 0x0004) + bytes(20) + struct.pack("<H", 0x000B) + bytes(32)
    locality += struct.pack("<I", 17) + b"StartupLocality\0" + b"\x03"
    evs = boot_events()
    raw = spec_id(("sha1", "sha256")) + locality + b"".join(
        event2(e.pcr, e.etype, e.digests(("sha1", "sha256")), e.data) for e in evs)
    node = explain_against(prediction_of(evs), decode_event_log(raw))
    assert node.get("FirstDivergence") == 1
    assert node.get("Reason") == ("PCR0 starts at locality 3 in the log (StartupLocality event #1), at locality 0 "
                                  "in the prediction: every PCR0 value differs")
    assert registers(node)[("PCR0", "sha256")].get("Equal") is False
    assert registers(node)[("PCR7", "sha256")].get("Equal") is True


def test_first_divergence_is_the_earliest_over_all_pcrs():
    log_evs = boot_events(secure_boot=1, version="X")
    node = explain(log_evs, boot_events())
    assert [x.get("LogIndex") for x in divergences(node)] == [1, 4]
    assert node.get("FirstDivergence") == 1


def test_not_a_tcg_crypto_agile_log_is_a_problem():
    raw = struct.pack("<II20sI", 0, EV_SEPARATOR, h("sha1", bytes(4)), 4) + bytes(4)    # a TPM 1.2 log
    node = explain_against(prediction_of(boot_events()), decode_event_log(raw))
    assert node.get("FirstDivergence") is None
    assert "not a TCG crypto-agile event log" in node.problems[0].message


# -- real logs ------------------------------------------------------------------------------------

def real_log(name):
    return decode_event_log(fixture(f"ovmf-boots/{name}").read_bytes())


def tpm_prediction(image, vars_path=None):
    tpm = pytest.importorskip("decoders.measure.tpm")
    from inspector.cli import load_image_arg

    vars_root = tpm.load_vars(vars_path.read_bytes(), vars_path.name) if vars_path is not None else None
    return tpm.predict_tpm(load_image_arg(str(image)).root, vars_root, banks=("sha1", "sha256"))


def by_pcr(node, pcr):
    return {x.get("LogIndex"): x.get("Reason") for x in divergences(node) if x.get("PCRIndex") == pcr}


# OVMF's PEIMs run in place from PEIFV in RAM (0x820000) and PlatformPei writes its globals there
# before Tcg2Pei hashes the volume: in the bookworm OVMF.fd boot the RAM copy differs from the image's
# decompressed PEIFV in 22 bytes between offsets 0xefd8 and 0xf048 (PlatformPei's PE image), and the
# RAM copy hashes to the log's #2 digest (sha256 f163cd8f…, checked on a dump of that boot). A
# prediction from the image can therefore part from a real log at #2; that divergence is the only
# one allowed on PCR0 in a boot of the predicted image.
PEIFV_REWRITTEN = ("#2 PCR0 EV_EFI_PLATFORM_FIRMWARE_BLOB: firmware blob 0x820000+0xe0000 (PEIFV): same range, "
                   "another digest")


def assert_pcr0_is_the_image(node):
    pcr0 = by_pcr(node, 0)
    assert set(pcr0) <= {2}, pcr0
    assert all(r.startswith(PEIFV_REWRITTEN) for r in pcr0.values())
    # the reason names the cause and the remedy
    assert all("PEIMs that ran before Tcg2Pei" in r and "--against DUMP" in r for r in pcr0.values())


def test_real_log_against_the_prediction_of_its_own_image_agrees_on_pcr7_and_dxefv():
    log = real_log("bookworm-OVMF.fd.tcglog")
    node = explain_against(tpm_prediction(bookworm("OVMF.fd")), log)
    assert by_pcr(node, 7) == {}
    assert_pcr0_is_the_image(node)
    regs = registers(node)
    rp = replay(log)
    assert regs[("PCR7", "sha256")].get("Replayed") == rp.value("sha256", 7).hex()
    assert regs[("PCR7", "sha256")].get("Equal") is True
    assert regs[("PCR7", "sha1")].get("Equal") is True


def test_real_ms_log_against_its_own_vars_agrees_on_pcr7():
    node = explain_against(tpm_prediction(bookworm("OVMF_CODE_4M.secboot.fd"), bookworm("OVMF_VARS_4M.ms.fd")),
                           real_log("bookworm-OVMF_CODE_4M.ms.fd+OVMF_VARS_4M.ms.fd.tcglog"))
    assert by_pcr(node, 7) == {}
    assert_pcr0_is_the_image(node)
    assert registers(node)[("PCR7", "sha256")].get("Replayed") == \
        "4387f18f9308e9a61cf5cd7685196e15b8c410ee1405d0f07fb3bee71530619d"
    assert registers(node)[("PCR7", "sha256")].get("Equal") is True


def test_real_ms_log_against_the_plain_vars_parts_at_secure_boot_then_names_the_keys():
    node = explain_against(tpm_prediction(bookworm("OVMF_CODE_4M.secboot.fd"), bookworm("OVMF_VARS_4M.fd")),
                           real_log("bookworm-OVMF_CODE_4M.ms.fd+OVMF_VARS_4M.ms.fd.tcglog"))
    d = by_pcr(node, 7)
    assert_pcr0_is_the_image(node)
    # SecureBoot (#4) is measured before PK (Tcg2Dxe.c MeasureAllSecureVariables: mVariableType order)
    assert sorted(d) == [4, 5, 6, 7, 8]
    assert d[4] == ("#4 PCR7 EV_EFI_VARIABLE_DRIVER_CONFIG: SecureBoot is 1 (enabled) in the log, 0 (disabled) "
                    "predicted from the VARS: Secure Boot was on in the boot, and these VARS would leave it off "
                    "(no PK enrolled?)")
    assert d[5] == ("#5 PCR7 EV_EFI_VARIABLE_DRIVER_CONFIG: PK holds 1 certificate in the log, none in the VARS "
                    "(PK is not enrolled there): Debian UEFI Secure Boot (PK/KEK key) missing from the VARS")
    assert d[6] == ("#6 PCR7 EV_EFI_VARIABLE_DRIVER_CONFIG: KEK holds 2 certificates in the log, none in the VARS "
                    "(KEK is not enrolled there): Debian UEFI Secure Boot (PK/KEK key), Microsoft Corporation "
                    "KEK CA 2011 missing from the VARS")
    assert d[7] == ("#7 PCR7 EV_EFI_VARIABLE_DRIVER_CONFIG: db holds 2 certificates in the log, none in the VARS "
                    "(db is not enrolled there): Microsoft Windows Production PCA 2011, Microsoft Corporation "
                    "UEFI CA 2011 missing from the VARS")
    regs = registers(node)
    assert regs[("PCR7", "sha256")].get("Equal") is False
    assert regs[("PCR7", "sha256")].get("Replayed") == "4387f18f9308e9a61cf5cd7685196e15b8c410ee1405d0f07fb3bee71530619d"


def test_real_plain_log_against_the_ms_vars_names_what_only_the_vars_hold():
    node = explain_against(tpm_prediction(bookworm("OVMF_CODE_4M.fd"), bookworm("OVMF_VARS_4M.ms.fd")),
                           real_log("bookworm-OVMF_CODE_4M.fd+OVMF_VARS_4M.fd.tcglog"))
    d = by_pcr(node, 7)
    assert min(d) == 4
    assert d[5] == ("#5 PCR7 EV_EFI_VARIABLE_DRIVER_CONFIG: PK holds nothing in the log, 1 certificate in the "
                    "VARS (PK was not enrolled in the boot): Debian UEFI Secure Boot (PK/KEK key) only in the VARS")


def test_real_log_against_another_image_of_the_same_layout_parts_at_dxefv():
    # OVMF.fd's boot against OVMF_CODE_4M.fd: the same PEIFV/DXEFV ranges, other bytes in DXEFV
    node = explain_against(tpm_prediction(bookworm("OVMF_CODE_4M.fd"), bookworm("OVMF_VARS_4M.fd")),
                           real_log("bookworm-OVMF.fd.tcglog"))
    pcr0 = by_pcr(node, 0)
    assert 3 in pcr0 and set(pcr0) <= {2, 3}
    assert pcr0[3].startswith("#3 PCR0 EV_EFI_PLATFORM_FIRMWARE_BLOB: firmware blob 0x900000+0xc00000: same range, "
                              "another digest (sha256 614b0bfb88626b36… in the log, ")
    assert by_pcr(node, 7) == {}


def test_real_log_against_debian_13_names_the_version_and_the_dxefv_size():
    node = explain_against(tpm_prediction(trixie("OVMF.fd")), real_log("bookworm-OVMF.fd.tcglog"))
    pcr0 = by_pcr(node, 0)
    assert node.get("FirstDivergence") == 1
    assert pcr0[1].startswith('#1 PCR0 EV_S_CRTM_VERSION: CRTM version "" in the log, "2025.02')
    assert pcr0[3] == ("#3 PCR0 EV_EFI_PLATFORM_FIRMWARE_BLOB: firmware blob 0x900000+0xc00000 in the log, "
                       "0x900000+0xe80000 predicted (of another size): the image booted is not this one, or its "
                       "PEIFV/DXEFV is at another base or of another size")
