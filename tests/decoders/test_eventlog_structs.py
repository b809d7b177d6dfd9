"""The event-log records (decoders/eventlog/structs.py) against logs and quotes packed by hand.

Every record is packed here with `struct` from the spec's member list, with a distinct value in each
member, so that a member declared at the wrong place or with the wrong width reads as another
member's value or moves the fields after it:
- TCG PC Client PFP 1.05 §10.2.1 TCG_PCR_EVENT, §10.2.2 TCG_PCR_EVENT2, §10.4.5.1
  TCG_EfiSpecIDEventStruct, §10.2.3 UEFI_VARIABLE_DATA, §10.2.5 UEFI_PLATFORM_FIRMWARE_BLOB,
  §10.2.4 UEFI_IMAGE_LOAD_EVENT (edk2 MdePkg/Include/IndustryStandard/UefiTcgPlatform.h);
- Intel TDX DCAP Quoting Library API, "Quote Format": the quote v4 header and TD quote body.
"""
from __future__ import annotations

import struct
import subprocess
import sys
import uuid

from decoders.eventlog import decode_event_log, decode_tdx_quote, quote_rtmrs
from decoders.eventlog import structs as S
from tests.realdata import FIXTURES, ROOT, require

SHA256_DIGEST = bytes(range(0x40, 0x60))
SECURE_BOOT_GUID = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")  # EFI_GLOBAL_VARIABLE


def spec_id_event(vendor_info: bytes = b"\xa5\x5a") -> bytes:
    """The first event: a TCG_PCR_EVENT (PCRIndex 0, EV_NO_ACTION, zero SHA-1 digest) carrying a
    TCG_EfiSpecIDEventStruct that lists SHA-256 only."""
    body = struct.pack("<16sIBBBBI", b"Spec ID Event03\0", 1, 3, 2, 0x69, 2, 1)
    body += struct.pack("<HH", S.TPM_ALG_SHA256, 32)
    body += bytes([len(vendor_info)]) + vendor_info
    return struct.pack("<II20sI", 0, S.EV_NO_ACTION, bytes(20), len(body)) + body


def event2(pcr: int, event_type: int, data: bytes) -> bytes:
    """A TCG_PCR_EVENT2 with one SHA-256 digest (TPML_DIGEST_VALUES count 1, TPMT_HA hashAlg + digest)."""
    return (struct.pack("<III", pcr, event_type, 1) + struct.pack("<H", S.TPM_ALG_SHA256) + SHA256_DIGEST
            + struct.pack("<I", len(data)) + data)


def variable_data(name: str, data: bytes) -> bytes:
    """UEFI_VARIABLE_DATA: VariableName GUID, UnicodeNameLength and VariableDataLength (UINT64), then
    the name (CHAR16, no NUL) and the data."""
    return (SECURE_BOOT_GUID.bytes_le + struct.pack("<QQ", len(name), len(data))
            + name.encode("utf-16-le") + data)


def fields(node) -> dict[str, tuple]:
    return {f.name: (f.value, f.offset, f.size) for f in node.fields}


def test_spec_id_event_members_at_the_pfp_offsets():
    first = spec_id_event()
    log = decode_event_log(first + event2(7, S.EV_EFI_ACTION, b"x"))
    header = log.children[0]
    assert fields(header) == {"PCRIndex": (0, 0, 4), "EventType": (S.EV_NO_ACTION, 4, 4),
                              "Digest": (bytes(20), 8, 20), "EventSize": (35, 28, 4),
                              "Event": (first[32:], 32, 35)}
    sid = header.children[0]
    assert fields(sid) == {
        "signature": (b"Spec ID Event03\0", 32, 16), "platformClass": (1, 48, 4),
        "specVersionMinor": (3, 52, 1), "specVersionMajor": (2, 53, 1), "specErrata": (0x69, 54, 1),
        "uintnSize": (2, 55, 1), "numberOfAlgorithms": (1, 56, 4),
        "digestSizes[0]": ({"algorithmId": S.TPM_ALG_SHA256, "digestSize": 32}, 60, 4),
        "vendorInfoSize": (2, 64, 1), "vendorInfo": (b"\xa5\x5a", 65, 2)}
    assert [sid.field(n).display for n in ("signature", "platformClass", "uintnSize")] == \
        ["Spec ID Event03", "server", "UINT64"]
    assert log.get("Algorithms") == {"sha256": 32}
    assert not list(log.all_problems())


def test_event2_header_and_variable_data_at_the_pfp_offsets():
    payload = variable_data("SecureBoot", b"\x01")
    first = spec_id_event()
    log = decode_event_log(first + event2(7, S.EV_EFI_VARIABLE_DRIVER_CONFIG, payload))
    ev = log.children[1]
    at = len(first)
    assert fields(ev) == {
        "PCRIndex": (7, at, 4), "EventType": (S.EV_EFI_VARIABLE_DRIVER_CONFIG, at + 4, 4),
        "Count": (1, at + 8, 4), "Digest.sha256": (SHA256_DIGEST, at + 14, 32),
        "EventSize": (len(payload), at + 46, 4), "Event": (payload, at + 50, len(payload))}
    data = ev.children[0]
    at += 50
    assert {k: v for k, v in fields(data).items() if k != "SecureBoot"} == {
        "VariableName": (SECURE_BOOT_GUID, at, 16), "UnicodeNameLength": (10, at + 16, 8),
        "VariableDataLength": (1, at + 24, 8), "UnicodeName": ("SecureBoot", at + 32, 20),
        "VariableData": (b"\x01", at + 52, 1)}
    assert data.field("VariableName").display.startswith("gEfiGlobalVariableGuid")


def test_cc_event_header_names_the_mr_index():
    """CC_EVENT (edk2 MdePkg/Include/Protocol/CcMeasurement.h) has TCG_PCR_EVENT2's layout with
    MrIndex in place of PCRIndex; a Spec ID with PCRIndex 1 and SHA-384 only makes it a CC log."""
    body = struct.pack("<16sIBBBBI", b"Spec ID Event03\0", 0, 0, 2, 0, 2, 1) + struct.pack("<HH", S.TPM_ALG_SHA384, 48)
    body += b"\0"
    first = struct.pack("<II20sI", 1, S.EV_NO_ACTION, bytes(20), len(body)) + body
    digest = bytes(range(0x80, 0xB0))
    ev = struct.pack("<III", 3, S.EV_SEPARATOR, 1) + struct.pack("<H", S.TPM_ALG_SHA384) + digest
    ev += struct.pack("<I", 4) + bytes(4)
    log = decode_event_log(first + ev)
    assert log.get("Format") == "cc"
    at = len(first)
    e = log.children[1]
    assert fields(e)["MrIndex"] == (3, at, 4) and e.field("MrIndex").display == "RTMR2"
    assert fields(e)["EventType"] == (S.EV_SEPARATOR, at + 4, 4)
    assert fields(e)["Digest.sha384"] == (digest, at + 14, 48)


def test_sha1_log_event_header_at_the_pfp_offsets():
    """A TPM 1.2 log: TCG_PCR_EVENT (PCRIndex, EventType, SHA-1 Digest, EventSize, Event)."""
    blob = struct.pack("<QQ", 0xFFC0_0000, 0x40_0000)    # UEFI_PLATFORM_FIRMWARE_BLOB
    one = struct.pack("<II20sI", 0, S.EV_EFI_PLATFORM_FIRMWARE_BLOB, bytes(range(20)), len(blob)) + blob
    log = decode_event_log(one + struct.pack("<II20sI", 5, S.EV_SEPARATOR, bytes(20), 4) + bytes(4))
    assert log.get("Format") == "tcg1.2"
    ev = log.children[0]
    assert fields(ev) == {"PCRIndex": (0, 0, 4), "EventType": (S.EV_EFI_PLATFORM_FIRMWARE_BLOB, 4, 4),
                          "Digest": (bytes(range(20)), 8, 20), "EventSize": (16, 28, 4),
                          "Event": (blob, 32, 16)}
    assert fields(ev.children[0]) == {"BlobBase": (0xFFC0_0000, 32, 8), "BlobLength": (0x40_0000, 40, 8)}
    assert fields(log.children[1])["PCRIndex"] == (5, 48, 4)


def test_image_load_event_members():
    """UEFI_IMAGE_LOAD_EVENT: ImageLocationInMemory, ImageLengthInMemory, ImageLinkTimeAddress,
    LengthOfDevicePath (UINT64 each), then the device path (here only its End node)."""
    end_node = b"\x7f\xff\x04\x00"
    payload = struct.pack("<QQQQ", 0x7E00_0000, 0x2_0000, 0x1000, len(end_node)) + end_node
    first = spec_id_event()
    log = decode_event_log(first + event2(4, S.EV_EFI_BOOT_SERVICES_APPLICATION, payload))
    data = log.children[1].children[0]
    at = len(first) + 50
    got = fields(data)
    assert [got[n] for n in ("ImageLocationInMemory", "ImageLengthInMemory", "ImageLinkTimeAddress",
                             "LengthOfDevicePath")] == \
        [(0x7E00_0000, at, 8), (0x2_0000, at + 8, 8), (0x1000, at + 16, 8), (4, at + 24, 8)]


def test_short_spec_id_struct_is_a_located_problem():
    """An EventSize too small for TCG_EfiSpecIDEventStruct's 28-byte fixed part."""
    first = struct.pack("<II20sI", 0, S.EV_NO_ACTION, bytes(20), 16) + b"Spec ID Event03\0"
    log = decode_event_log(first + bytes(16))
    [problem] = [p for p in log.children[0].children[0].problems]
    assert (problem.offset, problem.message) == (32, "Spec ID event: TCG_EfiSpecIdEventStruct: needs 28 bytes, 16 left")


def test_tdx_quote_v4_header_and_body_by_hand():
    header = struct.pack("<HHIHH16s20s", 4, 2, 0x81, 0x0A0B, 0x0C0D, bytes(range(16)), bytes(range(100, 120)))
    members = [("TEE_TCB_SVN", 16), ("MRSEAM", 48), ("MRSIGNERSEAM", 48), ("SEAMATTRIBUTES", 8),
               ("TDATTRIBUTES", 8), ("XFAM", 8), ("MRTD", 48), ("MRCONFIGID", 48), ("MROWNER", 48),
               ("MROWNERCONFIG", 48), ("RTMR0", 48), ("RTMR1", 48), ("RTMR2", 48), ("RTMR3", 48),
               ("REPORTDATA", 64)]
    values = {name: bytes([0x10 + i]) * size for i, (name, size) in enumerate(members)}
    quote = header + b"".join(values.values()) + struct.pack("<I", 3) + b"sig"
    q = decode_tdx_quote(quote)
    assert not list(q.all_problems())
    hdr, body, sig = q.children
    assert fields(hdr) == {"Version": (4, 0, 2), "AttestationKeyType": (2, 2, 2), "TeeType": (0x81, 4, 4),
                           "QeSvn": (0x0A0B, 8, 2), "PceSvn": (0x0C0D, 10, 2),
                           "QeVendorId": (bytes(range(16)), 12, 16), "UserData": (bytes(range(100, 120)), 28, 20)}
    assert [hdr.field(n).display for n in ("AttestationKeyType", "TeeType")] == ["ECDSA-256-with-P-256", "TDX"]
    offset, want = 48, {}
    for name, size in members:
        want[name] = (values[name], offset, size)
        offset += size
    assert fields(body) == want and offset == 48 + 584
    assert body.field("MRTD").display == values["MRTD"].hex()
    assert fields(sig) == {"SignatureDataLength": (3, 632, 4), "SignatureData": (b"sig", 636, 3)}
    assert quote_rtmrs(quote) == [values[f"RTMR{i}"] for i in range(4)]


def test_record_sizes_are_the_specs():
    assert {layout.name: layout.size for layout in (
        S.TCG_PCR_EVENT_HDR, S.TCG_EfiSpecIdEventStruct, S.TCG_EfiSpecIdEventAlgorithmSize, S.TCG_PCR_EVENT2_HDR,
        S.UEFI_VARIABLE_DATA_HDR, S.UEFI_IMAGE_LOAD_EVENT_HDR, S.UEFI_PLATFORM_FIRMWARE_BLOB,
        S.UEFI_HANDOFF_TABLE_POINTERS_HDR, S.EFI_CONFIGURATION_TABLE, S.TCG_PCClientTaggedEvent_HDR,
        S.UEFI_PARTITION_TABLE_HEADER, S.UEFI_PARTITION_ENTRY, S.TDX_QUOTE_HEADER_V4, S.TD_QUOTE_BODY_V4)} == {
        "TCG_PCR_EVENT_HDR": 32, "TCG_EfiSpecIdEventStruct": 28, "TCG_EfiSpecIdEventAlgorithmSize": 4,
        "TCG_PCR_EVENT2_HDR": 12, "UEFI_VARIABLE_DATA_HDR": 32, "UEFI_IMAGE_LOAD_EVENT_HDR": 32,
        "UEFI_PLATFORM_FIRMWARE_BLOB": 16, "UEFI_HANDOFF_TABLE_POINTERS_HDR": 8, "EFI_CONFIGURATION_TABLE": 24,
        "TCG_PCClientTaggedEvent_HDR": 8, "UEFI_PARTITION_TABLE_HEADER": 92, "UEFI_PARTITION_ENTRY": 128,
        "TDX_QUOTE_HEADER_V4": 48, "TD_QUOTE_BODY_V4": 584}
