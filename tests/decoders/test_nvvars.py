"""NV variable store of OVMF_VARS: checked against UEFIExtract on the same real images, and against
crafted stores packed with `struct` from the edk2 headers (MdeModulePkg/Include/Guid/VariableFormat.h,
MdeModulePkg/Include/Guid/SystemNvDataGuid.h)."""
from __future__ import annotations

import struct
import uuid
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decoders.model import Node, Space
from decoders.nvvars import decode_nv_body
from decoders.nvvars.decode import working_block_crc
from tests.decoders.wire import efi_guid
from tests.realdata import bookworm, trixie, uefiextract_report

FV_HEADER = 0x48  # OVMF's NV FV header: 56-byte EFI_FIRMWARE_VOLUME_HEADER + a 2-entry block map
AUTH_SIG = uuid.UUID("aaf32c78-947b-439a-a180-2e144ec37792")
PLAIN_SIG = uuid.UUID("ddcf3616-3275-4164-98b6-fe85707ffe7d")
GLOBAL = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
FTW_SIG = uuid.UUID("9e58292b-7c68-497d-a0ce-6500fd9f1b95")


def decode_file(path) -> tuple[bytes, list[Node]]:
    data = path.read_bytes()
    return data, decode_nv_body(Space(path.name, data), FV_HEADER, len(data) - FV_HEADER)


def variables(nodes: list[Node]) -> list[Node]:
    return [c for c in nodes[0].children if c.kind == "variable"]


def is_live(var: Node) -> bool:
    return var.get("State") in (0x3F, 0x3E)


def all_problems(nodes):
    return [(n.kind, p) for top in nodes for n, p in top.all_problems() if p.severity.value != "info"]


REAL_VARS = [
    pytest.param(lambda: bookworm("OVMF_VARS_4M.ms.fd"), id="bookworm-4M.ms"),
    pytest.param(lambda: bookworm("OVMF_VARS_4M.fd"), id="bookworm-4M"),
    pytest.param(lambda: bookworm("OVMF_VARS.fd"), id="bookworm-2M"),
    pytest.param(lambda: trixie("OVMF_VARS_4M.ms.fd"), id="trixie-4M.ms"),
    pytest.param(lambda: trixie("OVMF_VARS_4M.fd"), id="trixie-4M"),
]


@pytest.mark.parametrize("get", REAL_VARS)
def test_variables_match_uefiextract_vss_entries(get, tmp_path):
    """Every variable record (offset, size, live or not, CRC32 of its bytes, name, vendor GUID)
    equals UEFIExtract's "VSS entry" rows for the same file."""
    path = get()
    data, nodes = decode_file(path)
    rows = [r for r in uefiextract_report(path, tmp_path) if r.type == "VSS entry"]
    ours = variables(nodes)
    assert [(v.offset, v.size) for v in ours] == [(r.base, r.size) for r in rows]
    for v, r in zip(ours, rows):
        assert zlib.crc32(data[v.offset:v.offset + v.size]) == r.crc32
        # UEFIExtract: "Auth" for a valid authenticated entry, "Invalid" for deleted ones.
        assert (r.subtype == "Auth") == is_live(v), (hex(v.offset), r.subtype, v.title)
        if r.subtype == "Auth":
            assert v.get("Name") == r.text
            assert str(v.get("VendorGuid")).upper() == r.name
    assert not all_problems(nodes)


@pytest.mark.parametrize("get", REAL_VARS)
def test_layout_matches_uefiextract(get, tmp_path):
    """Store, free space, event-log padding, FTW store and spare: same offsets and sizes as UEFIExtract."""
    path = get()
    _, nodes = decode_file(path)
    rows = uefiextract_report(path, tmp_path)
    store_row = next(r for r in rows if r.type == "VSS2 store")
    store = nodes[0]
    assert store.kind == "variable-store"
    assert (store.offset, store.size) == (store_row.base, store_row.size)
    free_rows = [r for r in rows if r.type == "Free space"]
    free = [c for c in store.children if c.kind == "free-space"]
    assert [(f.offset, f.size) for f in free] == [(free_rows[0].base, free_rows[0].size)]
    padding = next(r for r in rows if r.type == "Padding")
    ftw_row = next(r for r in rows if r.type == "FTW store")
    spare_row = free_rows[1]
    kinds = {n.kind: n for n in nodes}
    assert (kinds["nv-event-log"].offset, kinds["nv-event-log"].size) == (padding.base, padding.size)
    assert (kinds["ftw-working-block"].offset, kinds["ftw-working-block"].size) == (ftw_row.base, ftw_row.size)
    assert (kinds["ftw-spare"].offset, kinds["ftw-spare"].size) == (spare_row.base, spare_row.size)


def test_ms_vars_facts():
    """Debian 12's OVMF_VARS_4M.ms.fd: 57 records from 0x64 to 0x5998, 31 valid, 26 deleted; PK @0x545C,
    db @0x3CF4 (the same rows UEFIExtract lists as VSS entries)."""
    _, nodes = decode_file(bookworm("OVMF_VARS_4M.ms.fd"))
    vs = variables(nodes)
    assert len(vs) == 57 and vs[0].offset == 0x64
    assert sum(map(is_live, vs)) == 31
    free = nodes[0].children[-1]
    assert free.kind == "free-space" and free.offset == 0x5998
    live = {v.get("Name"): v for v in vs if is_live(v)}
    assert live["PK"].offset == 0x545C and live["db"].offset == 0x3CF4
    assert live["PK"].get("VendorGuid") == GLOBAL
    assert live["PK"].title.startswith("PK (gEfiGlobalVariableGuid) NV+BS+RT+AT 0x3f ADDED")
    assert all("(deleted)" in v.title for v in vs if not is_live(v))


def test_payloads_false_walks_the_same_records_without_decoding_their_data():
    """decode_nv_body(payloads=False) (what the measurement predictions read): the same records,
    names, states and data bytes, and no signature lists or load options under them."""
    data = bookworm("OVMF_VARS_4M.ms.fd").read_bytes()
    full = variables(decode_nv_body(Space("v", data), FV_HEADER, len(data) - FV_HEADER))
    light = variables(decode_nv_body(Space("v", data), FV_HEADER, len(data) - FV_HEADER, payloads=False))
    assert [(v.offset, v.size, v.get("Name"), v.get("State"), v.get("Data")) for v in light] == \
        [(v.offset, v.size, v.get("Name"), v.get("State"), v.get("Data")) for v in full]
    assert any(v.children for v in full)
    assert not any(v.children for v in light)


def test_ms_vars_load_options_and_secure_boot_data():
    """OVMF's BDS registers the UiApp and "EFI Internal Shell" boot options (edk2
    MdeModulePkg/Library/UefiBootManagerLib, ShellPkg); SecureBootEnable is one byte."""
    data, nodes = decode_file(bookworm("OVMF_VARS_4M.ms.fd"))
    vs = {v.get("Name"): v for v in variables(nodes) if is_live(v)}
    descs = {n.get("Description") for v in vs.values() for n in v.find("load-option")}
    assert {"UiApp", "EFI Internal Shell"} <= descs
    for opt in (n for v in vs.values() for n in v.find("load-option")):
        # FilePathList is exactly FilePathListLength bytes of an EFI device path ending in End (0x7F 0xFF).
        fp = opt.field("FilePathList")
        assert fp.size == opt.get("FilePathListLength")
        assert data[fp.offset + fp.size - 4:fp.offset + fp.size] == b"\x7f\xff\x04\x00"
    sbe = vs["SecureBootEnable"]
    assert sbe.get("SecureBootEnable") == data[sbe.field("Data").offset]
    assert all(sig.kind == "signature-list" for name in ("PK", "KEK", "db", "dbx")
               for sig in vs[name].children)


@pytest.mark.parametrize("get", REAL_VARS)
def test_ftw_working_block_crc_matches_edk2(get):
    """The Crc edk2 wrote into each real image equals our recomputation; state is valid, queue empty."""
    data, nodes = decode_file(get())
    block = next(n for n in nodes if n.kind == "ftw-working-block")
    assert block.get("Signature") == FTW_SIG
    assert working_block_crc(data[block.offset:block.offset + 32]) == block.get("Crc")
    assert (block.get("WorkingBlockValid"), block.get("WorkingBlockInvalid")) == (0, 1)
    assert block.size == 32 + block.get("WriteQueueSize")
    assert not block.problems and not block.children


# -- crafted input ------------------------------------------------------------------------------


def store_blob(body: bytes, size: int | None = None, sig: uuid.UUID = AUTH_SIG, total: int = 0x2000) -> bytes:
    # VARIABLE_STORE_HEADER: Signature, Size, Format (FORMATTED 0x5A), State (HEALTHY 0xFE), Reserved, Reserved1
    hdr = efi_guid(sig) + struct.pack("<IBBHI", size if size is not None else total, 0x5A, 0xFE, 0, 0)
    blob = hdr + body
    return blob + b"\xff" * (total - len(blob))


def auth_var(name: str, data: bytes, state=0x3F, attrs=0x7, name_size=None, data_size=None) -> bytes:
    n = (name + "\0").encode("utf-16-le")
    # AUTHENTICATED_VARIABLE_HEADER (#pragma pack(1)): StartId, State, Reserved, Attributes,
    # MonotonicCount, TimeStamp (EFI_TIME: Year, Month, Day, Hour, Minute, Second, Pad1, Nanosecond,
    # TimeZone, Daylight, Pad2), PubKeyIndex, NameSize, DataSize, VendorGuid
    hdr = struct.pack("<HBBIQ", 0x55AA, state, 0, attrs, 0)
    hdr += struct.pack("<HBBBBBBIhBB", 2024, 1, 2, 3, 4, 5, 0, 0, 0, 0, 0)
    hdr += struct.pack("<III", 0, len(n) if name_size is None else name_size,
                       len(data) if data_size is None else data_size) + efi_guid(GLOBAL)
    assert len(hdr) == 60
    rec = hdr + n + data
    return rec + b"\xff" * (-len(rec) % 4)


def decode_blob(blob: bytes) -> list[Node]:
    return decode_nv_body(Space("blob", blob), 0, len(blob))


def test_crafted_store_walk_and_alignment():
    body = auth_var("Timeout", b"\x05\x00") + auth_var("BootOrder", b"\x01\x00\x00\x00", state=0x3C)
    nodes = decode_blob(store_blob(body))
    vs = variables(nodes)
    # Timeout's record is 78 bytes; HEADER_ALIGN puts the next header at +80.
    assert [(v.get("Name"), v.offset) for v in vs] == [("Timeout", 28), ("BootOrder", 28 + 80)]
    assert vs[0].get("Timeout") == 5 and vs[0].get("TimeStamp")["Year"] == 2024
    assert vs[1].get("BootOrder") == [1, 0] and vs[1].title.endswith("(deleted)")
    assert nodes[0].children[-1].kind == "free-space"
    assert not all_problems(nodes) and len(nodes) == 1  # the store fills the whole body


def test_plain_store_uses_variable_header():
    n = "Lang\0".encode("utf-16-le")
    # VARIABLE_HEADER: StartId, State, Reserved, Attributes, NameSize, DataSize, VendorGuid
    var = struct.pack("<HBBIII", 0x55AA, 0x3F, 0, 7, len(n), 4) + efi_guid(GLOBAL) + n + b"eng\0"
    vs = variables(decode_blob(store_blob(var, sig=PLAIN_SIG)))
    assert len(vs) == 1 and vs[0].get("Lang") == "eng" and vs[0].field("MonotonicCount") is None
    assert vs[0].get("VendorGuid") == GLOBAL and vs[0].offset == 28


# EFI_TIME (UEFI 2.10 §8.3) of the crafted headers below, member by member in declaration order.
TIME = {"Year": 2025, "Month": 12, "Day": 31, "Hour": 23, "Minute": 58, "Second": 59, "Pad1": 0xA1,
        "Nanosecond": 123456789, "TimeZone": -60, "Daylight": 1, "Pad2": 0xA2}


def test_authenticated_header_fields_at_their_offsets():
    """Every AUTHENTICATED_VARIABLE_HEADER member (VariableFormat.h, #pragma pack(1)) holds a
    distinct value, so each field shows the value at its own offset: TimeStamp is one field, the
    EFI_TIME as a dict, shown as a date."""
    vendor = uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")
    name, data = "Ab\0".encode("utf-16-le"), b"xyz"
    hdr = struct.pack("<HBBIQ", 0x55AA, 0x3F, 0x5C, 0x27, 0x1122334455667788)
    hdr += struct.pack("<HBBBBBBIhBB", *TIME.values())
    hdr += struct.pack("<III", 0x0BADF00D, len(name), len(data)) + efi_guid(vendor)
    (var,) = variables(decode_blob(store_blob(hdr + name + data + b"\xff")))
    assert [(f.name, f.value, f.offset - 28, f.size) for f in var.fields[:10]] == [
        ("StartId", 0x55AA, 0, 2), ("State", 0x3F, 2, 1), ("Reserved", 0x5C, 3, 1), ("Attributes", 0x27, 4, 4),
        ("MonotonicCount", 0x1122334455667788, 8, 8), ("TimeStamp", TIME, 16, 16),
        ("PubKeyIndex", 0x0BADF00D, 32, 4), ("NameSize", 6, 36, 4), ("DataSize", 3, 40, 4),
        ("VendorGuid", vendor, 44, 16)]
    assert list(var.get("TimeStamp")) == list(TIME)
    assert var.field("TimeStamp").display == "2025-12-31 23:58:59.123456789 UTC+60min"
    assert (var.get("Name"), var.get("Data")) == ("Ab", b"xyz")


def test_plain_header_fields_at_their_offsets():
    """VARIABLE_HEADER (VariableFormat.h, #pragma pack(1)) with a distinct value in every member."""
    vendor = uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")
    name, data = "Ab\0".encode("utf-16-le"), b"xyz"
    hdr = struct.pack("<HBBIII", 0x55AA, 0x3F, 0x5C, 0x27, len(name), len(data)) + efi_guid(vendor)
    (var,) = variables(decode_blob(store_blob(hdr + name + data + b"\xff", sig=PLAIN_SIG)))
    assert [(f.name, f.value, f.offset - 28, f.size) for f in var.fields[:7]] == [
        ("StartId", 0x55AA, 0, 2), ("State", 0x3F, 2, 1), ("Reserved", 0x5C, 3, 1), ("Attributes", 0x27, 4, 4),
        ("NameSize", 6, 8, 4), ("DataSize", 3, 12, 4), ("VendorGuid", vendor, 16, 16)]
    assert (var.get("Name"), var.get("Data")) == ("Ab", b"xyz")


def test_store_size_past_end_is_a_problem():
    nodes = decode_blob(store_blob(auth_var("Timeout", b"\x01\x00"), size=0x100000))
    store = nodes[0]
    assert any(p.offset == 16 and "Size" in p.message for p in store.problems)
    assert [v.get("Name") for v in variables(nodes)] == ["Timeout"]


def test_truncated_store_header_is_a_problem():
    nodes = decode_nv_body(Space("t", b"\x78\x2c"), 0, 2)
    assert nodes[0].problems and nodes[0].problems[0].offset == 0


def test_namesize_all_ones_is_an_interrupted_write():
    """VariableParsing.c NameSizeOfVariable: an all-ones NameSize counts as 0 (header only)."""
    bad = auth_var("X", b"", name_size=0xFFFFFFFF, data_size=0)[:60]
    nodes = decode_blob(store_blob(bad + auth_var("Timeout", b"\x01\x00")))
    vs = variables(nodes)
    assert vs[0].problems and vs[0].size == 60
    assert vs[1].get("Name") == "Timeout" and vs[1].offset == 28 + 60


def test_namesize_past_store_end_stops_walk():
    nodes = decode_blob(store_blob(auth_var("Timeout", b"\x01\x00", name_size=0x10000)))
    vs = variables(nodes)
    assert len(vs) == 1 and any("NameSize" in p.message for p in vs[0].problems)
    assert not any(c.kind == "free-space" for c in nodes[0].children)
    assert nodes[0].problems


def test_dirty_free_space_is_reported():
    blob = bytearray(store_blob(auth_var("Timeout", b"\x01\x00")))
    blob[0x400] = 0x00
    free = next(c for c in decode_blob(bytes(blob))[0].children if c.kind == "free-space")
    assert free.problems and free.problems[0].offset == 0x400


def working_block(queue: bytes, size: int = 0x1000, crc: int | None = None) -> bytes:
    # EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER: Signature, Crc, a byte of bit fields (bit 0
    # WorkingBlockValid = FTW_VALID_STATE 0, bit 1 WorkingBlockInvalid = 1, Reserved bits 2-7 = 1),
    # Reserved3[3], WriteQueueSize
    hdr = bytearray(efi_guid(FTW_SIG) + struct.pack("<IB3sQ", 0xFFFFFFFF, 0xFE, b"\xff" * 3, size - 32))
    hdr[16:20] = struct.pack("<I", working_block_crc(bytes(hdr)) if crc is None else crc)
    return bytes(hdr) + queue + b"\xff" * (size - 32 - len(queue))


def ftw_write_header(caller: uuid.UUID, writes: int, private: int, flags: int = 0xF8) -> bytes:
    """EFI_FAULT_TOLERANT_WRITE_HEADER. SystemNvDataGuid.h has no #pragma pack, so the C compiler
    aligns: the bit-field byte (bit 0 HeaderAllocated, 1 WritesAllocated, 2 Complete; 0 = set), 3
    bytes to CallerId's 4-byte alignment, 4 bytes to NumberOfWrites' 8: 40 bytes."""
    return struct.pack("<B3x", flags) + efi_guid(caller) + struct.pack("<4xQQ", writes, private)


def ftw_write_record(lba: int, offset: int, length: int, relative: int, private: bytes, flags: int) -> bytes:
    """EFI_FAULT_TOLERANT_WRITE_RECORD: the bit-field byte (bit 0 BootBlockUpdate, 1 SpareComplete,
    2 DestinationComplete), 7 bytes to Lba's 8-byte alignment, Lba, Offset, Length, RelativeOffset
    (40 bytes), then PrivateData[PrivateDataSize] with no padding after it: FTW_RECORD_SIZE is
    sizeof (EFI_FAULT_TOLERANT_WRITE_RECORD) + PrivateDataSize."""
    return struct.pack("<B7xQQQq", flags, lba, offset, length, relative) + private


def test_ftw_write_queue_records():
    """Two writes, the first with two records of 3 bytes of PrivateData each: every record and the
    second header start exactly where FTW_RECORD_SIZE / FTW_WRITE_TOTAL_SIZE put them."""
    caller = uuid.UUID("12345678-9abc-def0-0123-456789abcdef")
    caller2 = uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    queue = ftw_write_header(caller, 2, 3)
    queue += ftw_write_record(2, 0x10, 0x200, -0x1000, b"pr1", flags=0xF8 | 0b101)
    queue += ftw_write_record(0x1234567890, 0x20, 0x400, 0x2000, b"pr2", flags=0xF8 | 0b010)
    queue += ftw_write_header(caller2, 1, 0, flags=0xF8 | 0b100)
    queue += ftw_write_record(7, 0, 0x1000, 0, b"", flags=0xF8 | 0b110)
    store = store_blob(b"", total=0x100)
    blob = store + working_block(queue) + b"\xff" * 0x1000
    nodes = decode_blob(blob)
    block = next(n for n in nodes if n.kind == "ftw-working-block")
    assert not block.problems
    q = 0x100 + 32  # the write queue follows the 32-byte working block header
    w1, w2 = block.children
    assert (w1.offset, w1.size) == (q, 40 + 2 * 43)
    assert (w1.get("CallerId"), w1.get("NumberOfWrites"), w1.get("PrivateDataSize")) == (caller, 2, 3)
    assert (w1.get("HeaderAllocated"), w1.get("WritesAllocated"), w1.get("Complete")) == (0, 0, 0)
    r1, r2 = w1.children
    assert [(r.offset, r.size) for r in (r1, r2)] == [(q + 40, 43), (q + 83, 43)]
    assert (r1.get("Lba"), r1.get("Offset"), r1.get("Length"), r1.get("RelativeOffset")) == (2, 0x10, 0x200, -0x1000)
    assert (r1.get("BootBlockUpdate"), r1.get("SpareComplete"), r1.get("DestinationComplete")) == (1, 0, 1)
    assert r1.get("PrivateData") == b"pr1" and r1.field("PrivateData").offset == q + 80
    assert (r2.get("Lba"), r2.get("Offset"), r2.get("Length"), r2.get("RelativeOffset")) == \
        (0x1234567890, 0x20, 0x400, 0x2000)
    assert (r2.get("BootBlockUpdate"), r2.get("SpareComplete"), r2.get("DestinationComplete")) == (0, 1, 0)
    assert r2.get("PrivateData") == b"pr2"
    assert (w2.offset, w2.get("CallerId"), w2.get("NumberOfWrites"), w2.get("Complete")) == (q + 126, caller2, 1, 1)
    (r3,) = w2.children
    assert (r3.offset, r3.size, r3.get("Lba"), r3.get("Length")) == (q + 166, 40, 7, 0x1000)
    assert r3.field("PrivateData") is None
    assert nodes[-1].kind == "ftw-spare"


def test_ftw_bit_fields_each_bit_alone():
    """SystemNvDataGuid.h declares the FTW state and flag bits as UINT8 bit fields, which C allocates
    from bit 0: each bit set alone shows under its own name, and the bits above them as Reserved."""
    def block_of(state: int, header_flags: int, record_flags: int) -> Node:
        queue = ftw_write_header(uuid.UUID(int=1), 1, 0, flags=header_flags)
        queue += ftw_write_record(1, 2, 3, 4, b"", flags=record_flags)
        blob = bytearray(store_blob(b"", total=0x100) + working_block(queue))
        blob[0x100 + 20] = state  # outside the Crc (working_block_crc takes the state byte as 0xFF)
        return next(n for n in decode_blob(bytes(blob)) if n.kind == "ftw-working-block")

    for state, expected in [(0x01, (1, 0, 0)), (0x02, (0, 1, 0)), (0x04, (0, 0, 1)), (0x80, (0, 0, 0x20))]:
        block = block_of(state, 0, 0)
        assert (block.get("WorkingBlockValid"), block.get("WorkingBlockInvalid"), block.get("Reserved")) == expected
    assert not block_of(0xFE, 0x01, 0).children  # HeaderAllocated not FTW_VALID_STATE: the queue is free
    for flags, expected in [(0x02, (0, 1, 0)), (0x04, (0, 0, 1)), (0x80, (0, 0, 0))]:
        (write,) = block_of(0xFE, flags, 0).children
        assert (write.get("HeaderAllocated"), write.get("WritesAllocated"), write.get("Complete")) == expected
    for flags, expected in [(0x01, (1, 0, 0)), (0x02, (0, 1, 0)), (0x04, (0, 0, 1)), (0x80, (0, 0, 0))]:
        (record,) = block_of(0xFE, 0, flags).children[0].children
        assert (record.get("BootBlockUpdate"), record.get("SpareComplete"),
                record.get("DestinationComplete")) == expected


def test_ftw_bad_crc_and_oversized_queue():
    blob = store_blob(b"", total=0x100) + working_block(b"", crc=0x1234)
    block = next(n for n in decode_blob(blob) if n.kind == "ftw-working-block")
    assert any(p.offset == 0x100 + 16 for p in block.problems)
    big = bytearray(working_block(b""))
    big[24:32] = struct.pack("<Q", 1 << 60)
    block = next(n for n in decode_blob(store_blob(b"", total=0x100) + bytes(big)) if n.kind == "ftw-working-block")
    assert any(p.offset == 0x100 + 24 for p in block.problems)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 0x5A00), st.integers(0, 255)), min_size=1, max_size=24),
       st.integers(0x20, 0x84000))
def test_mutated_ms_vars_never_raise(edits, cut):
    """Hostile input: random byte edits in the real store and a random truncation give Nodes."""
    data = bytearray(bookworm("OVMF_VARS_4M.ms.fd").read_bytes())
    for pos, value in edits:
        data[pos] = value
    data = bytes(data[:cut])
    nodes = decode_nv_body(Space("m", data), FV_HEADER, 0x84000 - FV_HEADER)
    assert nodes and nodes[0].kind == "variable-store"
    for top in nodes:
        top.to_json()


def test_missing_working_block_is_reported():
    """A store that ends before the body does, with no FTW signature after it: an nv-unknown area."""
    blob = store_blob(auth_var("Timeout", b"\x01\x00"), size=0x100) + b"\xff" * 0x100
    nodes = decode_blob(blob)
    assert [n.kind for n in nodes] == ["variable-store", "nv-unknown"]
    assert nodes[1].offset == 0x100 and nodes[1].problems


def test_memoryview_space_decodes_like_bytes():
    path = bookworm("OVMF_VARS_4M.ms.fd")
    data = path.read_bytes()
    a = decode_nv_body(Space("b", data), FV_HEADER, len(data) - FV_HEADER)
    b = decode_nv_body(Space("m", memoryview(data)), FV_HEADER, len(data) - FV_HEADER)

    def strip(j):  # the space names differ on purpose
        return {**j, "space": None, "children": [strip(c) for c in j["children"]]}

    assert [strip(n.to_json()) for n in a] == [strip(n.to_json()) for n in b]
