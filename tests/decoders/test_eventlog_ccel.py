"""CC (TDX) event logs: decode, RTMR replay and comparison with the TDX quotes from the same TDs.

Oracles (tests/data/README.md, "Cross-checked oracles"): the RTMRs in quote.bin and
cos-113-tdx-quote.dat at the TD quote body offsets of Intel's TDX DCAP Quoting Library API
(quote v4, TD report body), cc-trusted-api's own decode of the
quote (formated_quote.txt) and of the log (formated_el.txt), the IMA boot_aggregate line in
ima_log.bin, and tpm2_eventlog 5.4's YAML for the DERIVED-hdr-pcr0 copies.
"""
from __future__ import annotations

import hashlib
import re

import pytest
import yaml

from decoders.eventlog import (compare, decode_event_log, decode_tdx_quote, quote_expected, quote_rtmrs,
                               replay, to_tpm2_eventlog_yaml)
from decoders.eventlog import structs as S
from decoders.eventlog.decode import event_digests
from tests.realdata import fixture

CTA = "ccel/cc-trusted-api/"
GTG = "ccel/go-tdx-guest/"
GEL = "ccel/go-eventlog/"
BODY = 48  # TDX quote v4 header size; RTMRn at BODY + 328 + 48n (Intel TDX DCAP Quoting Library API)


def _raw_rtmrs(quote: bytes) -> list[bytes]:
    return [quote[BODY + 328 + 48 * i:BODY + 376 + 48 * i] for i in range(4)]


def _decode(rel: str, **kw):
    return decode_event_log(fixture(rel).read_bytes(), **kw)


def test_tdvf_ccel_is_detected_as_cc_and_stops_at_the_ff_padding():
    raw = fixture(CTA + "ccel_data.bin").read_bytes()
    log = decode_event_log(raw)
    assert log.get("Format") == "cc"
    assert log.children[0].get("PCRIndex") == 1          # edk2 OvmfPkg/Tcg/TdTcg2Dxe/TdTcg2Dxe.c: SpecIdEvent.PCRIndex = 1
    end = len(raw.rstrip(b"\xff"))
    notes = [p for p in log.problems if "padding" in p.message]
    assert len(notes) == 1 and notes[0].offset == end
    assert f"{len(raw) - end} bytes of 0xFF padding" in notes[0].message
    last = log.children[-1]
    assert last.offset + last.size == end


def test_ccel_events_match_cc_trusted_api_decode():
    """formated_el.txt lists each entry's IMR (= MrIndex - 1) and type."""
    text = fixture(CTA + "formated_el.txt").read_text(errors="replace")
    ref = [(int(imr), int(t, 16)) for imr, t in
           re.findall(r"IMR\s+: (\d+)\s*\n.*?Type\s+: (0x[0-9A-Fa-f]+)", text)]
    log = _decode(CTA + "ccel_data.bin")
    ours = [(e.get("MrIndex") - 1 if i else 0, e.get("EventType")) for i, e in enumerate(log.children)]
    assert ours == ref[:len(ours)]
    # the IMA entries that formated_el.txt lists after the CCEL ones are not in the CCEL
    assert len(ref) >= len(ours)
    assert log.children[1].children[0].get("TableDescription") == "TdxTable"
    assert log.children[1].field("MrIndex").display == "RTMR0"


def test_cc_trusted_api_replay_matches_its_quote():
    log = _decode(CTA + "ccel_data.bin")
    quote = fixture(CTA + "quote.bin").read_bytes()
    q = _raw_rtmrs(quote)
    rp = replay(log)
    rtmr = rp.rtmrs()
    assert rtmr[0] == q[0] and rtmr[1] == q[1]
    assert rtmr[2].hex().startswith("58bc48d5") and rtmr[2].hex().endswith("16dd7d")   # README
    assert rtmr[3] == bytes(48) == q[3]
    # IMA extends RTMR2 once more at runtime with the boot_aggregate template hash (ima_log.bin)
    line = fixture(CTA + "ima_log.bin").read_text().split("\n")[0].split()
    assert line[4] == "boot_aggregate"
    assert hashlib.sha384(rtmr[2] + bytes.fromhex(line[1])).digest() == q[2]
    cmp = compare(rp, quote_expected(quote))
    assert [r.name for r in cmp.registers if r.matches] == ["RTMR0", "RTMR1", "RTMR3"]
    (bad,) = cmp.mismatched
    assert bad.name == "RTMR2" and bad.last_event_index == rp.events_for("sha384", 2)[-1].event_index


def test_go_tdx_guest_replay_matches_its_quote():
    log = _decode(GTG + "ccel_data.DERIVED-first-18101-bytes.bin")
    quote = fixture(GTG + "cos-113-tdx-quote.dat").read_bytes()
    cmp = compare(replay(log), quote_expected(quote))
    assert cmp.matches and cmp.first_event is None
    assert replay(log).rtmrs() == _raw_rtmrs(quote)


def test_padded_original_gives_the_same_replay():
    raw = fixture(GTG + "ccel_data.DERIVED-first-18101-bytes.bin").read_bytes()
    padded = raw + b"\xff" * (262144 - len(raw))
    assert hashlib.sha256(padded).hexdigest() == "090dc18758380a5cc03014bf2fe354788a4f4222671e1e38f85b772d2fd344b5"
    assert replay(decode_event_log(padded)).rtmrs() == replay(decode_event_log(raw)).rtmrs()


def test_tampered_dupe_separator_log_fails_against_the_quote():
    log = _decode(GEL + "cos-113-intel-tdx-dupe-separator-unpadded.bin")
    quote = fixture(GTG + "cos-113-tdx-quote.dat").read_bytes()
    rp = replay(log)
    assert rp.rtmrs()[0].hex().startswith("a4de2df2") and rp.rtmrs()[1].hex().startswith("0ee9366c")
    cmp = compare(rp, quote_expected(quote))
    assert not cmp.matches
    assert [r.name for r in cmp.mismatched] == ["RTMR0", "RTMR1"]
    # The tampered log records the RTMR1 separator (event 16) under MrIndex 1, so RTMR0 has two
    # separators and RTMR1 none: RTMR1 matches the quote once a separator digest is put back
    # after the last event before it (event 15), and the divergence starts at RTMR1's next event.
    ev16 = log.children[16]
    assert ev16.get("EventType") == S.EV_SEPARATOR and ev16.get("MrIndex") == 1
    rtmr1 = cmp.mismatched[1]
    assert "missing" in rtmr1.diagnosis and "after event #15" in rtmr1.diagnosis
    assert rtmr1.diverges_at_event == rp.events_for("sha384", 1)[1].event_index
    assert cmp.first_event == rtmr1.diverges_at_event
    assert "RTMR2: match" in cmp.summary()


@pytest.mark.parametrize("rel", [
    CTA + "ccel_data.DERIVED-hdr-pcr0-trimmed.bin",
    GEL + "CCEL_unpadded.data.DERIVED-hdr-pcr0.bin",
    GEL + "event_log.DERIVED-hdr-pcr0.bin",
    GEL + "cos-113-intel-tdx-dupe-separator-unpadded.DERIVED-hdr-pcr0.bin",
    GTG + "ccel_data.DERIVED-first-18101-bytes.DERIVED-hdr-pcr0.bin",
])
def test_derived_pcr0_copies_agree_with_tpm2_eventlog_and_cc_replay(rel):
    """tpm2_eventlog's sha384 pcrs 1/2/3 of the PCRIndex-0 copy equal our RTMR0-2 of the original."""
    ref = yaml.safe_load(fixture(rel + ".tpm2_eventlog-5.4.yaml").read_text())
    derived = _decode(rel)
    assert derived.get("Format") == "tcg"     # header PCRIndex 0: a TPM-style log to auto-detect
    forced = _decode(rel, kind="cc")
    assert forced.get("Format") == "cc"
    rtmrs = replay(forced).rtmrs()
    for pcr, value in ref["pcrs"]["sha384"].items():
        assert rtmrs[pcr - 1] == value.to_bytes(48, "big")
    ours = yaml.safe_load(to_tpm2_eventlog_yaml(derived, replay(derived)))
    assert len(ours["events"]) == len(ref["events"])
    for a, r in zip(ours["events"], ref["events"]):
        assert a == r
    assert ours["pcrs"] == ref["pcrs"]


def test_original_ccel_yaml_export_equals_tpm2_eventlog_on_derived_copy_but_the_header():
    ref = yaml.safe_load(fixture(CTA + "ccel_data.DERIVED-hdr-pcr0-trimmed.bin.tpm2_eventlog-5.4.yaml").read_text())
    log = _decode(CTA + "ccel_data.bin")
    ours = yaml.safe_load(to_tpm2_eventlog_yaml(log, replay(log)))
    assert ours["events"] == ref["events"] and ours["pcrs"] == ref["pcrs"]
    assert "bad pcrIndex" in fixture(CTA + "ccel_data.bin.tpm2_eventlog-5.4.FAILS.txt").read_text()


def test_every_ccel_log_has_sha384_digests_only():
    for rel in (CTA + "ccel_data.bin", GEL + "CCEL_unpadded.data.bin", GEL + "event_log.bin",
                GTG + "ccel_data.DERIVED-first-18101-bytes.bin"):
        log = _decode(rel)
        assert log.get("Format") == "cc"
        for ev in log.children[1:]:
            assert [a for a, _d in event_digests(ev)] == ["sha384"]


def test_quote_decode_matches_cc_trusted_api_and_facts_offsets():
    raw = fixture(CTA + "quote.bin").read_bytes()
    q = decode_tdx_quote(raw)
    assert q.kind == "tdx-quote" and not list(q.all_problems())
    hdr, body = q.children[0], q.children[1]
    text = fixture(CTA + "formated_quote.txt").read_text()

    def ref(name):
        return re.search(rf"  {name}: (0x)?(\S+)", text).group(2)

    assert hdr.get("Version") == int(ref("Header Version")) == 4
    assert hdr.get("AttestationKeyType") == 2 and "ECDSA_P256" in ref("Attestation Key Type")
    assert hdr.get("TeeType") == 0x81
    assert hdr.get("QeVendorId").hex() == ref("QE Vendor ID")
    for ours, theirs in (("MRSEAM", "MRSEAM"), ("MRTD", "MRTD"), ("MRCONFIGID", "MRCONFIG"),
                         ("MROWNER", "MROWNER"), ("MROWNERCONFIG", "MROWNERCONFIG"), ("RTMR0", "RTMR0"),
                         ("RTMR1", "RTMR1"), ("RTMR2", "RTMR2"), ("RTMR3", "RTMR3"),
                         ("REPORTDATA", "REPORTDATA"), ("XFAM", "XFAM"), ("TDATTRIBUTES", "TDATTRIBUTES")):
        assert body.get(ours).hex() == ref(theirs), ours
    assert body.field("MRTD").offset == BODY + 136
    assert quote_rtmrs(raw) == _raw_rtmrs(raw)


def test_quote_truncated_reports_problem():
    raw = fixture(CTA + "quote.bin").read_bytes()
    q = decode_tdx_quote(raw[:300])
    assert any(p.offset == BODY for p in q.problems)
    q = decode_tdx_quote(raw[:20])
    assert q.problems and not q.children
