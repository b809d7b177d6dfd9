"""TDX prediction: the TD HOB QEMU builds, the RTMR0 events TDVF measures before the OS, the MRTD.

The evidence nobody here wrote:
- the CC event logs of real TDVF guests (tests/data/ccel/, README there): cc-trusted-api's log (2 GiB
  TD) and go-eventlog's CCEL_unpadded (8 GiB TD) start with the TD HOB and CFV events of a TDVF whose
  TDX metadata and empty 4 MiB varstore are those of our Config-B build and Debian 13's 4 MiB VARS;
  their TD HOB digests are those of the HOB upstream QEMU's rules give for 2 GiB and 8 GiB;
- GCE's log (go-tdx-guest) for the shapes of a CFV with an FvName and of variables with data;
- Debian's images and VARS; td-shim's VMM-style TD HOB (tests/data/hob/td-shim).

Expected TD HOBs are written out here with struct.pack, resource by resource, from QEMU's rules
(hw/i386/tdvf-hob.c, target/i386/kvm/tdx.c, hw/i386/pc_q35.c) and PiHob.h layouts.
"""
from __future__ import annotations

import hashlib
import struct
import uuid

import pytest

from decoders.hob import decode_hob_list, lint_td_hob, td_hob_digest
from decoders.measure.tdhob_build import build_td_hob, q35_ram
from decoders.measure.tdx import predict_tdx, read_variable_store
from decoders.model import Severity, Space
from decoders.mrtd import compute_mrtd
from decoders.ovmf.metadata import TdxSection
from tests.decoders.wire import tdvf_sections
from tests.realdata import bookworm, firmware, fixture, trixie

GiB = 1 << 30
# tests/decoders/test_mrtd.py: td-shim's reference tool on bookworm's OVMF.fd, per-page order.
TD_SHIM_PER_PAGE = ("4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057"
                    "fb887fed0744d5631a212967fb231c47")
TDX_OFFSET_GUID = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2")
OVMF_TOKEN_SPACE = uuid.UUID("93bb96af-b9f2-4eb8-9462-e0ba74564236")
GLOBAL = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
IMAGE_SECURITY = uuid.UUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")


# -- independent helpers -----------------------------------------------------------------------

def ccel_events(raw: bytes) -> list[tuple[int, int, bytes, bytes]]:
    """(MrIndex, EventType, SHA-384 digest, event data) of a CC event log (TCG PC Client PFP §10.2:
    a TCG_PCR_EVENT Spec ID header, then TCG_PCR_EVENT2 records; CCEL ends at 0xFFFFFFFF padding)."""
    sizes = {0x4: 20, 0xB: 32, 0xC: 48, 0xD: 64}
    pos = 32 + struct.unpack_from("<I", raw, 28)[0]
    out = []
    while pos + 12 <= len(raw):
        mr, etype, count = struct.unpack_from("<III", raw, pos)
        if mr == 0xFFFFFFFF:
            break
        pos += 12
        digest = None
        for _ in range(count):
            alg = struct.unpack_from("<H", raw, pos)[0]
            if alg == 0xC:
                digest = raw[pos + 2:pos + 50]
            pos += 2 + sizes[alg]
        size = struct.unpack_from("<I", raw, pos)[0]
        out.append((mr, etype, digest, raw[pos + 4:pos + 4 + size]))
        pos += 4 + size
    return out


def sections(*rows) -> list[TdxSection]:
    """TdxSections from (type, MemoryAddress, MemoryDataSize, RawDataSize) rows, as the API takes them."""
    return [TdxSection(i, 0, raw, addr, size, typ, 1 if typ == 0 else 0, 0 if raw else None, 0x1000 + 32 * i)
            for i, (typ, addr, size, raw) in enumerate(rows)]


# The sections of edk2's IntelTdxMetadata.asm in a 4 MiB build (Config-B, our build).
EDK2_4M = sections((0, 0xFFC84000, 0x37C000, 0x37C000), (1, 0xFFC00000, 0x84000, 0x84000),
                   (3, 0x810000, 0x10000, 0), (3, 0x80B000, 0x2000, 0), (2, 0x809000, 0x2000, 0),
                   (3, 0x800000, 0x6000, 0))


def phit(end_of_list: int) -> bytes:
    # EFI_HOB_HANDOFF_INFO_TABLE: header (type 1, 56 bytes), Version 9, BootMode 0, four memory
    # fields 0 (tdvf-hob.c leaves them zeroed), EfiEndOfHobList.
    return struct.pack("<HHIII", 1, 56, 0, 9, 0) + bytes(32) + struct.pack("<Q", end_of_list)


def resource(rtype: int, start: int, length: int) -> bytes:
    # EFI_HOB_RESOURCE_DESCRIPTOR: header (type 3, 48 bytes), Owner zero GUID, ResourceType,
    # ResourceAttribute PRESENT|INITIALIZED|TESTED (tdvf-hob.h), PhysicalStart, ResourceLength.
    return struct.pack("<HHI", 3, 48, 0) + bytes(16) + struct.pack("<IIQQ", rtype, 0x7, start, length)


END = struct.pack("<HHI", 0xFFFF, 8, 0)
SYSTEM, UNACCEPTED = 0, 7


def expected_hob(below: int, above: int) -> bytes:
    low = [resource(UNACCEPTED, 0, 0x800000), resource(SYSTEM, 0x800000, 0x6000),
           resource(UNACCEPTED, 0x806000, 0x3000), resource(SYSTEM, 0x809000, 0x2000),
           resource(SYSTEM, 0x80B000, 0x2000), resource(UNACCEPTED, 0x80D000, 0x3000),
           resource(SYSTEM, 0x810000, 0x10000), resource(UNACCEPTED, 0x820000, below - 0x820000)]
    if above:
        low.append(resource(UNACCEPTED, 1 << 32, above))
    body = b"".join(low)
    return phit(0x809000 + 56 + len(body) + 8) + body + END


# -- the TD HOB ------------------------------------------------------------------------------

@pytest.mark.parametrize("memory,below,above", [
    (1 * GiB, 1 * GiB, 0),
    (2 * GiB, 2 * GiB, 0),             # below q35's 0xB0000000: all of it under 4 GiB
    (4 * GiB, 2 * GiB, 2 * GiB),       # 0xB0000000 or more: 2 GiB low, the rest from 4 GiB
    (8 * GiB, 2 * GiB, 6 * GiB),
])
def test_td_hob_bytes_follow_qemu_rules(memory, below, above):
    hob, gpa, problems = build_td_hob(EDK2_4M, memory)
    assert not problems
    assert gpa == 0x809000
    assert hob == expected_hob(below, above)


def test_q35_split_threshold_is_0xb0000000():
    assert q35_ram(0xB0000000) == [(0, 0x80000000), (1 << 32, 0x30000000)]
    assert q35_ram(0xB0000000 - 0x2000) == [(0, 0xB0000000 - 0x2000)]


@pytest.mark.parametrize("memory", [1 * GiB, 2 * GiB, 4 * GiB, 8 * GiB])
def test_td_hob_decodes_and_passes_tdvf_lint(memory):
    hob, gpa, _ = build_td_hob(EDK2_4M, memory)
    node = decode_hob_list(Space("td-hob", hob, base=gpa), gpa)
    assert not list(node.all_problems())
    assert lint_td_hob(node, td_hob_size=0x2000) == []
    assert lint_td_hob(node, profile="edk2-stable202211", td_hob_size=0x2000) == []
    assert node.children[0].get("Version") == 9 and node.children[-1].get("HobType") == 0xFFFF
    # decoders.hob's own TD HOB digest (TdxHelperMeasureTdHob's rule) agrees with the bytes hashed here
    assert td_hob_digest(hob) == hashlib.sha384(hob[:-8]).digest()


def test_td_hob_has_the_layout_of_the_td_shim_fixture():
    """td-shim's VMM-style TD HOB: PHIT v9 of 56 bytes with EfiEndOfHobList just past the END HOB,
    48-byte resource descriptors with a zero Owner, an 8-byte END. (Its attributes add ENCRYPTED,
    which upstream QEMU does not set; its MMIO ranges, which QEMU does not describe, are UNCACHEABLE.)"""
    real = fixture("hob/td-shim/hob_buffer.bin").read_bytes()
    ours, gpa, _ = build_td_hob(EDK2_4M, 2 * GiB)
    for hob in (real, ours):
        base = gpa if hob is ours else 0x1000000   # the fixture's HOB was written at 16 MiB
        assert struct.unpack_from("<HHI", hob, 0) == (1, 56, 0)
        assert struct.unpack_from("<I", hob, 8)[0] == 9
        assert struct.unpack_from("<Q", hob, 48)[0] == base + len(hob)
        for off in range(56, len(hob) - 8, 48):
            assert struct.unpack_from("<HH", hob, off) == (3, 48)
            assert hob[off + 8:off + 24] == bytes(16)
            rtype, attr = struct.unpack_from("<II", hob, off + 24)
            if rtype in (SYSTEM, UNACCEPTED):      # memory: PRESENT | INITIALIZED | TESTED at least
                assert attr & 0x7 == 0x7
        assert hob[-8:] == END


def test_overlapping_accept_inside_an_accepted_range_changes_nothing():
    secs = sections((2, 0x809000, 0x4000, 0), (3, 0x80A000, 0x1000, 0))
    hob, _, problems = build_td_hob(secs, GiB)
    assert not problems
    assert hob == phit(0x809000 + 56 + 3 * 48 + 8) + resource(UNACCEPTED, 0, 0x809000) + \
        resource(SYSTEM, 0x809000, 0x4000) + resource(UNACCEPTED, 0x80D000, GiB - 0x80D000) + END


@pytest.mark.parametrize("memory,why", [
    (0, "not a RAM size"), (-1, "not a RAM size"), (0x800000, "Failed to accept memory"),
    ((1 << 52) + 0x2000, "2^52"),
])
def test_absurd_memory_gives_an_error_and_no_hob(memory, why):
    hob, gpa, problems = build_td_hob(EDK2_4M, memory)
    assert hob == b"" and gpa == 0x809000
    assert any(p.severity == Severity.ERROR and why in p.message for p in problems)


def test_memory_is_rounded_to_8_kib_like_qemu():
    hob, _, problems = build_td_hob(EDK2_4M, GiB - 0x1000)
    assert hob == expected_hob(GiB, 0)
    assert [p.severity for p in problems] == [Severity.INFO]


def test_partly_overlapping_sections_stop_qemu():
    secs = sections((2, 0x809000, 0x2000, 0), (3, 0x80A000, 0x2000, 0))
    hob, _, problems = build_td_hob(secs, GiB)
    assert hob == b"" and "Failed to accept memory" in problems[0].message and problems[0].offset == 0x1020


def test_no_td_hob_section_and_unknown_types_are_errors():
    assert build_td_hob(sections((3, 0x800000, 0x1000, 0), (3, 0x900000, 0x1000, 0)),
                        GiB)[2][0].message.startswith("no TD_HOB")
    hob, gpa, problems = build_td_hob(sections((2, 0x809000, 0x2000, 0)), GiB)     # QEMU wants 2 or more
    assert hob == b"" and gpa == 0x809000 and "fewer than 2" in problems[0].message
    hob, _, problems = build_td_hob(sections((2, 0x809000, 0x2000, 0), (4, 0x900000, 0x1000, 0)), GiB)
    assert hob == b"" and "PermMem" in problems[0].message


def test_too_many_resources_overrun_the_td_hob_section():
    """A 4 KiB TD_HOB holds PHIT + 84 resources + END (56 + 84 * 48 + 8 = 4096 bytes)."""
    def rows(n):
        return [(2, 0x100000, 0x1000, 0)] + [(3, 0x200000 + 0x2000 * i, 0x1000, 0) for i in range(n)]
    # n TempMem pages apart from each other and from the HOB: 2n + 3 entries
    hob, _, problems = build_td_hob(sections(*rows(40)), GiB)
    assert len(hob) == 56 + 83 * 48 + 8 and not problems
    hob, _, problems = build_td_hob(sections(*rows(41)), GiB)
    assert hob == b"" and "TD_HOB overrun" in problems[0].message


# -- RTMR0 against real TDVF logs ------------------------------------------------------------

@pytest.fixture(scope="module")
def config_b() -> bytes:
    return firmware("inteltdx/OVMF.fd").read_bytes()


@pytest.mark.parametrize("log,memory", [
    ("ccel/cc-trusted-api/ccel_data.bin", 2 * GiB),
    ("ccel/go-eventlog/CCEL_unpadded.data.bin", 8 * GiB),
])
def test_first_rtmr0_events_equal_a_real_tdvf_log(config_b, log, memory):
    """TD HOB, CFV, SecureBoot/PK/KEK/db/dbx and the separator: type, data and digest equal the
    real log's first eight MR index 1 events (a Secure Boot capable TDVF with an empty varstore)."""
    real = [e for e in ccel_events(fixture(log).read_bytes()) if e[0] == 1][:8]
    pred = predict_tdx(config_b, "OVMF.fd", memory=memory, secure_boot_build=True, orders=())
    assert not [p for p in pred.problems if p.severity == Severity.ERROR]
    got = [(ev.index, ev.event_type, ev.digests["sha384"], ev.data) for ev in pred.rtmr0.events]
    assert got == real


def test_replaying_the_prediction_gives_the_real_logs_rtmr0_prefix(config_b):
    real = [e for e in ccel_events(fixture("ccel/cc-trusted-api/ccel_data.bin").read_bytes()) if e[0] == 1][:8]
    value = bytes(48)
    for e in real:
        value = hashlib.sha384(value + e[2]).digest()
    pred = predict_tdx(config_b, "OVMF.fd", memory=2 * GiB, orders=(), secure_boot_build=True)
    assert pred.rtmr0.registers()["sha384"][1] == value


def test_td_hob_event_hashes_the_built_hob_up_to_its_end_hob(config_b):
    pred = predict_tdx(config_b, "OVMF.fd", memory=4 * GiB, orders=())
    hob, gpa, _ = build_td_hob(EDK2_4M, 4 * GiB)
    ev = pred.rtmr0.events[0]
    assert ev.event_type == 0x8000000B
    assert ev.digests == {"sha384": hashlib.sha384(hob[:-8]).digest()}
    # TDX_HANDOFF_TABLE_POINTERS2 (TdxMeasurementHob.c), packed
    assert ev.data == struct.pack("<B9sQ16sQ", 9, b"TdxTable\0", 1, OVMF_TOKEN_SPACE.bytes_le, gpa)


@pytest.mark.parametrize("which", ["config-b", "trixie"])
def test_cfv_event_hashes_the_cfv_section_bytes(which):
    image = (firmware("inteltdx/OVMF.fd") if which == "config-b" else trixie("OVMF.fd")).read_bytes()
    cfv = next(s for s in tdvf_sections(image) if s[4] == 1)
    pred = predict_tdx(image, which, memory=2 * GiB, orders=())
    ev = pred.rtmr0.events[1]
    assert ev.event_type == 0x8000000A
    assert ev.digests["sha384"] == hashlib.sha384(image[cfv[0]:cfv[0] + cfv[1]]).digest()
    # UEFI_PLATFORM_FIRMWARE_BLOB2: the OVMF varstore FV has no extension header, so the
    # description keeps its placeholder (TdxMeasurementHob.c FV_HANDOFF_TABLE_DESC).
    assert ev.data == struct.pack("<B41sQQ", 41, b"Fv(XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX)\0", cfv[2], cfv[1])


def test_cfv_with_an_fv_name_is_described_like_gces_log():
    """GCE's log names its CFV "Fv(48DB5E17-...)": a GUID in upper case (edk2 PrintLib %g)."""
    real = [e for e in ccel_events(fixture("ccel/go-tdx-guest/ccel_data.DERIVED-first-18101-bytes.bin")
                                   .read_bytes()) if e[0] == 1]
    blob = next(e for e in real if e[1] == 0x8000000A)
    base, length = struct.unpack_from("<QQ", blob[3], 42)
    name = uuid.UUID(blob[3][4:40].decode())
    # A CFV whose FV header points (ExtHeaderOffset, 0x34) at an extension header with that FvName.
    cfv = bytearray(b"\xff" * length)
    cfv[0x34:0x36] = struct.pack("<H", 0x48)
    cfv[0x48:0x5C] = name.bytes_le + struct.pack("<I", 20)
    image = _image_with_cfv(bytes(cfv), base)
    pred = predict_tdx(image, "crafted", memory=GiB, orders=())
    assert pred.rtmr0.events[1].data == blob[3]


def test_real_logs_hash_variables_over_their_whole_uefi_variable_data():
    """The rule the Secure Boot events follow, on GCE's PK/KEK/db/dbx which carry data."""
    real = [e for e in ccel_events(fixture("ccel/go-tdx-guest/ccel_data.DERIVED-first-18101-bytes.bin")
                                   .read_bytes()) if e[0] == 1 and e[1] == 0x80000001]
    assert len(real) == 5
    for _, _, digest, data in real:
        assert hashlib.sha384(data).digest() == digest
    names = [data[32:32 + 2 * struct.unpack_from("<Q", data, 16)[0]].decode("utf-16-le") for *_, data in real]
    assert names == ["SecureBoot", "PK", "KEK", "db", "dbx"]


# -- Secure Boot variables from the VARS -------------------------------------------------------

def uefi_variable_data(name: str, guid: uuid.UUID, data: bytes) -> bytes:
    return guid.bytes_le + struct.pack("<QQ", len(name), len(data)) + name.encode("utf-16-le") + data


def store_variables(vars_: bytes) -> dict:
    """Live variables of an authenticated store, read with struct (VariableFormat.h)."""
    hlen = struct.unpack_from("<H", vars_, 0x30)[0]
    size = struct.unpack_from("<I", vars_, hlen + 16)[0]
    pos, end, out = hlen + 28, hlen + size, {}
    while pos + 60 <= end and struct.unpack_from("<H", vars_, pos)[0] == 0x55AA:
        state = vars_[pos + 2]
        nsize, dsize = struct.unpack_from("<II", vars_, pos + 36)
        vendor = uuid.UUID(bytes_le=vars_[pos + 44:pos + 60])
        name = vars_[pos + 60:pos + 60 + nsize].decode("utf-16-le").rstrip("\0")
        if state == 0x3F:
            out[(name, vendor)] = vars_[pos + 60 + nsize:pos + 60 + nsize + dsize]
        pos = (pos + 60 + nsize + dsize + 3) & ~3
    return out


@pytest.mark.parametrize("vars_name", ["OVMF_VARS_4M.ms.fd", "OVMF_VARS_4M.snakeoil.fd", "OVMF_VARS_4M.fd"])
def test_secure_boot_events_come_from_the_vars(vars_name):
    """What a Secure Boot capable build measures from these VARS (Debian 13's OVMF.fd itself is not
    one: it stands in for the layout, the VARS decide the events)."""
    image = trixie("OVMF.fd").read_bytes()
    vars_ = trixie(vars_name).read_bytes()
    pred = predict_tdx(image, "OVMF.fd", memory=2 * GiB, vars_data=vars_, orders=(), secure_boot_build=True)
    assert not [p for p in pred.problems if p.severity != Severity.INFO]
    store = store_variables(vars_)
    enrolled = ("PK", GLOBAL) in store
    want = [uefi_variable_data("SecureBoot", GLOBAL, b"\x01" if enrolled else b"\x00")]
    for name, guid in (("PK", GLOBAL), ("KEK", GLOBAL), ("db", IMAGE_SECURITY), ("dbx", IMAGE_SECURITY)):
        want.append(uefi_variable_data(name, guid, store.get((name, guid), b"")))
    events = pred.rtmr0.events
    assert [ev.data for ev in events[2:7]] == want
    assert all(ev.digests["sha384"] == hashlib.sha384(ev.data).digest() for ev in events[2:7])
    assert events[1].digests["sha384"] == hashlib.sha384(vars_).digest()
    assert (events[7].event_type, events[7].data) == (4, bytes(4))
    assert len(events) == 8


def test_vars_agree_with_the_nvvars_decoder():
    from decoders.nvvars import decode_nv_body

    vars_ = trixie("OVMF_VARS_4M.ms.fd").read_bytes()
    problems = []
    ours = read_variable_store(vars_, 0, problems)
    hlen = struct.unpack_from("<H", vars_, 0x30)[0]
    store = decode_nv_body(Space("vars", vars_), hlen, len(vars_) - hlen)[0]
    theirs = {(v.get("Name"), v.get("VendorGuid")): v.get("Data") for v in store.children
              if v.kind == "variable" and v.get("State") == 0x3F}
    assert not problems and ours.keys() == theirs.keys()
    assert all(ours[k][0] == theirs[k] for k in ours)


def test_build_without_secure_boot_logs_five_empty_variables(config_b):
    pred = predict_tdx(config_b, "OVMF.fd", memory=2 * GiB, secure_boot_build=False, orders=())
    want = [uefi_variable_data(n, g, b"") for n, g in (("SecureBoot", GLOBAL), ("PK", GLOBAL), ("KEK", GLOBAL),
                                                         ("db", IMAGE_SECURITY), ("dbx", IMAGE_SECURITY))]
    assert [ev.data for ev in pred.rtmr0.events[2:7]] == want


def test_enrolled_keys_are_ignored_by_a_build_without_secure_boot():
    image = trixie("OVMF.fd").read_bytes()
    vars_ = trixie("OVMF_VARS_4M.ms.fd").read_bytes()
    pred = predict_tdx(image, "OVMF.fd", vars_data=vars_, secure_boot_build=False, orders=())
    assert all(struct.unpack_from("<Q", ev.data, 24)[0] == 0 for ev in pred.rtmr0.events[2:7])


def test_dbt_is_measured_only_when_present():
    image = trixie("OVMF.fd").read_bytes()
    vars_ = bytearray(trixie("OVMF_VARS_4M.fd").read_bytes())
    hlen = struct.unpack_from("<H", vars_, 0x30)[0]
    pos = hlen + 28
    while struct.unpack_from("<H", vars_, pos)[0] == 0x55AA:
        nsize, dsize = struct.unpack_from("<II", vars_, pos + 36)
        pos = (pos + 60 + nsize + dsize + 3) & ~3
    name, data = "dbt".encode("utf-16-le") + b"\0\0", b"\x11" * 10
    vars_[pos:pos + 60 + len(name) + len(data)] = (struct.pack("<HBBIQ16sIII", 0x55AA, 0x3F, 0, 0x27, 0, bytes(16), 0,
                                                                len(name), len(data)) + IMAGE_SECURITY.bytes_le
                                                    + name + data)
    pred = predict_tdx(image, "OVMF.fd", vars_data=bytes(vars_), orders=(), secure_boot_build=True)
    assert not [p for p in pred.problems if p.severity != Severity.INFO]
    assert pred.rtmr0.events[7].data == uefi_variable_data("dbt", IMAGE_SECURITY, data)
    assert pred.rtmr0.events[8].event_type == 4


def test_corrupt_vars_mean_an_empty_store():
    image = trixie("OVMF.fd").read_bytes()
    vars_ = bytearray(trixie("OVMF_VARS_4M.ms.fd").read_bytes())
    vars_[0x10] ^= 1                       # FileSystemGuid
    pred = predict_tdx(image, "OVMF.fd", vars_data=bytes(vars_), orders=(), secure_boot_build=True)
    assert any("refused" in p.message for p in pred.problems)
    assert pred.rtmr0.events[2].data == uefi_variable_data("SecureBoot", GLOBAL, b"\x00")
    assert pred.rtmr0.events[3].data == uefi_variable_data("PK", GLOBAL, b"")


def test_vars_of_another_size_are_refused():
    image = trixie("OVMF.fd").read_bytes()
    pred = predict_tdx(image, "OVMF.fd", vars_data=bytes(0x20000), orders=())
    assert any("VARS file has" in p.message for p in pred.problems)
    # the image's own CFV is used instead
    assert pred.rtmr0.events[1].digests["sha384"] == hashlib.sha384(image[:0x84000]).digest()


def test_code_only_image_needs_its_vars():
    code = trixie("OVMF_CODE_4M.fd").read_bytes()
    pred = predict_tdx(code, "OVMF_CODE.fd", orders=())
    assert len(pred.rtmr0.events) == 1 and "pass the VARS" in pred.problems[-1].message
    assert pred.depends[0].startswith("the CFV")
    vars_ = trixie("OVMF_VARS_4M.fd").read_bytes()
    pred = predict_tdx(code, "OVMF_CODE.fd", vars_data=vars_, orders=())
    assert pred.rtmr0.events[1].digests["sha384"] == hashlib.sha384(vars_).digest()
    unified = trixie("OVMF.fd").read_bytes()
    assert [ev.digests for ev in pred.rtmr0.events] == \
        [ev.digests for ev in predict_tdx(unified, "OVMF.fd", vars_data=vars_, orders=()).rtmr0.events]


def _image_with_cfv(cfv: bytes, cfv_gpa: int) -> bytes:
    """A minimal TDVF image: CFV at file offset 0, a descriptor (BFV over the rest, CFV, TD_HOB,
    TempMem) found through the OVMF GUIDed table at the end (QEMU pc_sysfw_ovmf.c)."""
    size = len(cfv) + 0x10000
    image = bytearray(cfv + bytes(0x10000))
    # a SEC that can hash: SHA-512/384's first round constants (FIPS 180-4 §4.2.3) as a UINT64 table
    image[len(cfv) + 0x800:len(cfv) + 0x810] = struct.pack("<QQ", 0x428A2F98D728AE22, 0x7137449123EF65CD)
    desc_at = len(cfv) + 0x100
    rows = [(len(cfv), 0x1000, 0xFFFFF000, 0x1000, 0, 1), (0, len(cfv), cfv_gpa, len(cfv), 1, 0),
            (0, 0, 0x809000, 0x2000, 2, 0), (0, 0, 0x800000, 0x6000, 3, 0)]
    image[desc_at:desc_at + 16] = b"TDVF" + struct.pack("<III", 16 + 32 * len(rows), 1, len(rows))
    for i, r in enumerate(rows):
        image[desc_at + 16 + 32 * i:desc_at + 48 + 32 * i] = struct.pack("<IIQQII", *r)
    # GUIDed table: [offset entry: u32 offset-from-end, u16 length, GUID] [u16 table length, table GUID] at E-0x30
    entry = struct.pack("<IH", size - desc_at, 22) + TDX_OFFSET_GUID.bytes_le
    footer = struct.pack("<H", len(entry) + 18) + uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d").bytes_le
    table = entry + footer
    end = size - 0x20
    image[end - len(table):end] = table
    return bytes(image)


# -- MRTD and the node ---------------------------------------------------------------------------

def test_mrtd_in_both_orders_equals_the_mrtd_command():
    image = bookworm("OVMF.fd").read_bytes()
    pred = predict_tdx(image, "OVMF.fd")
    assert [r.order for r in pred.mrtd] == ["per-page", "two-pass"]
    assert pred.mrtd[0].hex == TD_SHIM_PER_PAGE
    from decoders.ovmf.metadata import tdx_sections
    assert pred.mrtd[1].digest == compute_mrtd(image, tdx_sections(pred.metadata), "two-pass").digest
    assert pred.mrtd[1].digest != pred.mrtd[0].digest


def test_node_shape(config_b):
    node = predict_tdx(config_b, "OVMF.fd", secure_boot_build=False).node()
    assert node.kind == "tdx-prediction"
    regs = [c for c in node.children if c.kind == "predicted-register"]
    assert [(r.get("Register"), r.get("Bank"), r.get("Order")) for r in regs[:2]] == \
        [("MRTD", "sha384", "per-page"), ("MRTD", "sha384", "two-pass")]
    events = [c for c in node.children if c.kind == "predicted-event"]
    assert len(events) == 8 and all(e.get("MRIndex") == 1 for e in events)
    rtmr0 = regs[2]
    assert rtmr0.get("Register") == "RTMR0" and rtmr0.get("Complete") is False and rtmr0.get("Events") == 8
    assert any("ACPI DATA" in text for text in rtmr0.get("Later"))
    value = bytes(48)
    for e in events:
        value = hashlib.sha384(value + bytes.fromhex(e.get("Digests")["sha384"])).digest()
    assert rtmr0.get("Value") == value.hex()
    hob = node.children[-1]
    assert hob.kind == "hob-list" and hob.get("Address") == 0x809000 and not list(hob.all_problems())


def test_image_without_tdx_metadata_says_so():
    pred = predict_tdx(bytes(0x10000), "zeros.fd")
    assert pred.problems and pred.problems[0].severity == Severity.ERROR
    assert "no TDX metadata" in pred.problems[0].message
    node = pred.node()
    assert node.kind == "tdx-prediction" and node.problems


def _find_variable(vars_: bytes, wanted: str) -> tuple[int, int]:
    """(header offset, data offset) of the live variable `wanted`, walked with struct."""
    hlen = struct.unpack_from("<H", vars_, 0x30)[0]
    pos = hlen + 28
    while struct.unpack_from("<H", vars_, pos)[0] == 0x55AA:
        nsize, dsize = struct.unpack_from("<II", vars_, pos + 36)
        name = vars_[pos + 60:pos + 60 + nsize].decode("utf-16-le").rstrip("\0")
        if name == wanted and vars_[pos + 2] == 0x3F:
            return pos, pos + 60 + nsize
        pos = (pos + 60 + nsize + dsize + 3) & ~3
    raise AssertionError(f"{wanted} not in the store")


@pytest.mark.parametrize("change,secure_boot", [
    ("none", b"\x01"),       # PK and SecureBootEnable = 1
    ("deleted", b"\x01"),    # PK, no SecureBootEnable: AuthVariableLib creates it enabled
    ("zero", b"\x00"),       # PK and SecureBootEnable = 0
])
def test_secure_boot_value_follows_auth_variable_lib(change, secure_boot):
    image = trixie("OVMF.fd").read_bytes()
    vars_ = bytearray(trixie("OVMF_VARS_4M.ms.fd").read_bytes())
    header, data = _find_variable(bytes(vars_), "SecureBootEnable")
    if change == "deleted":
        vars_[header + 2] = 0x3F & 0xFD          # VAR_ADDED & VAR_DELETED
    elif change == "zero":
        vars_[data] = 0
    pred = predict_tdx(image, "OVMF.fd", vars_data=bytes(vars_), orders=(), secure_boot_build=True)
    assert pred.rtmr0.events[2].data == uefi_variable_data("SecureBoot", GLOBAL, secure_boot)


def test_the_build_is_stated_and_unknown_leaves_the_secure_boot_events_to_depends(config_b):
    on = predict_tdx(config_b, "OVMF.fd", orders=(), secure_boot_build=True)
    off = predict_tdx(config_b, "OVMF.fd", orders=(), secure_boot_build=False)
    unknown = predict_tdx(config_b, "OVMF.fd", orders=())
    assert any(p.severity == Severity.INFO and "SECURE_BOOT_ENABLE=TRUE" in p.message for p in on.problems)
    assert any(p.severity == Severity.INFO and "without Secure Boot" in p.message for p in off.problems)
    assert on.node().get("SecureBootBuild") is True and off.node().get("SecureBootBuild") is False
    assert [ev.event_type for ev in unknown.rtmr0.events] == [0x8000000B, 0x8000000A]
    assert unknown.depends[0].startswith("the Secure Boot policy")
    assert unknown.node().get("SecureBootBuild") is None
    assert [ev.digests for ev in unknown.rtmr0.events] == [ev.digests for ev in on.rtmr0.events[:2]]


@pytest.mark.parametrize("which,expected", [("config-b", False), ("bookworm", True), ("trixie", False)])
def test_detect_secure_boot_build_finds_secure_boot_config_dxe(which, expected):
    """Our Config-B build (IntelTdxX64.dsc default) and Debian 13's OVMF.fd have no SecureBootConfigDxe;
    Debian 12's OVMF.fd has (`fwinspect fd` lists the files)."""
    from decoders.measure.tdx import detect_secure_boot_build

    path = {"config-b": lambda: firmware("inteltdx/OVMF.fd"), "bookworm": lambda: bookworm("OVMF.fd"),
            "trixie": lambda: trixie("OVMF.fd")}[which]()
    assert detect_secure_boot_build(path.read_bytes(), which) is expected
    assert detect_secure_boot_build(bookworm("OVMF_VARS.fd").read_bytes()) is None    # no DXE volume


def test_a_sec_without_sha384_measures_nothing():
    """Debian 12's OVMF (edk2 2022.11): no SHA-384 in SEC, no TdTcg2Dxe in DXE (`fwinspect fd`):
    nothing is extended into RTMR0; the TD HOB QEMU writes is still built and shown."""
    pred = predict_tdx(bookworm("OVMF.fd").read_bytes(), "OVMF.fd", orders=())
    assert pred.rtmr0.events == [] and pred.sec_measures is False
    assert any(p.severity == Severity.INFO and "SHA-384" in p.message for p in pred.problems)
    assert pred.td_hob_bytes and pred.td_hob.get("HobCount") == 10
    node = pred.node()
    rtmr0 = next(c for c in node.children if c.get("Register") == "RTMR0")
    assert rtmr0.get("Value") == bytes(48).hex() and rtmr0.get("Events") == 0


@pytest.mark.parametrize("image", ["config-b", "trixie", "trixie-code"])
def test_secs_of_2025_carry_sha384(image):
    from decoders.measure.tdx import sec_measures

    path = {"config-b": lambda: firmware("inteltdx/OVMF.fd"), "trixie": lambda: trixie("OVMF.fd"),
            "trixie-code": lambda: trixie("OVMF_CODE_4M.fd")}[image]()
    assert sec_measures(path.read_bytes())


def test_image_may_be_a_bytearray_memoryview_or_mmap(config_b):
    import mmap

    want = predict_tdx(config_b, "OVMF.fd", orders=("per-page",))
    path = firmware("inteltdx/OVMF.fd")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        for image in (bytearray(config_b), memoryview(config_b), mapped):
            got = predict_tdx(image, "OVMF.fd", orders=("per-page",))
            assert got.rtmr0.registers() == want.rtmr0.registers()
            assert got.mrtd[0].digest == want.mrtd[0].digest


# -- PlatformValidateNvVarStore (OvmfPkg/Library/PlatformInitLib/Platform.c): a store TDVF refuses
# is replaced by an empty one. Each case damages Debian 13's ms VARS at a place found here with
# struct from VariableFormat.h (FV HeaderLength at 0x30; VARIABLE_STORE_HEADER of 28 bytes;
# AUTHENTICATED_VARIABLE_HEADER of 60: StartId u16, State u8, ..., NameSize u32 at 36, DataSize
# u32 at 40), not with the decoder under test.

def _first_variables(vars_: bytes) -> list[tuple[int, int]]:
    """(offset, end) of the records from the start of the store, walked by hand."""
    hlen = struct.unpack_from("<H", vars_, 0x30)[0]
    pos, out = hlen + 28, []
    while struct.unpack_from("<H", vars_, pos)[0] == 0x55AA:
        name_size, data_size = struct.unpack_from("<II", vars_, pos + 36)
        end = pos + 60 + name_size + data_size
        out.append((pos, end))
        pos = (end + 3) & ~3
    return out


def _refused(vars_: bytes) -> tuple[dict, list]:
    problems = []
    return read_variable_store(vars_, 0, problems), problems


def test_an_intact_store_is_read_and_each_damage_is_refused():
    good = trixie("OVMF_VARS_4M.ms.fd").read_bytes()
    records = _first_variables(good)
    assert len(records) >= 5
    store, problems = _refused(good)
    assert problems == []
    live = {r for r in records if good[r[0] + 2] in (0x3F, 0x3E)}      # VAR_ADDED, in deleted transition
    assert 0 < len(store) <= len(live)
    assert {("PK", GLOBAL), ("KEK", GLOBAL), ("db", IMAGE_SECURITY), ("dbx", IMAGE_SECURITY)} <= store.keys()

    bad_state = bytearray(good)
    bad_state[records[1][0] + 2] = 0x12                          # not one of the five valid States
    store, problems = _refused(bytes(bad_state))
    assert store == {} and "variable State 0x12" in problems[0].message
    assert problems[0].offset == records[1][0] + 2

    padded = [r for r in records if r[1] % 4]                    # a record followed by padding
    assert padded
    bad_pad = bytearray(good)
    bad_pad[padded[0][1]] = 0x00
    store, problems = _refused(bytes(bad_pad))
    assert store == {} and "padding" in problems[0].message

    tail = (records[-1][1] + 3) & ~3
    bad_tail = bytearray(good)
    bad_tail[tail + 0x40] = 0x00                                 # after the last record: must be 0xFF
    store, problems = _refused(bytes(bad_tail))
    assert store == {} and "not erased" in problems[0].message
