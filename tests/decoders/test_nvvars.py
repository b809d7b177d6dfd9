"""NV variable store of OVMF_VARS (FACTS A.10): checked against UEFIExtract on the same real images,
and against crafted malformed stores built with the structs."""
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
from decoders.nvvars.structs import (AUTHENTICATED_VARIABLE_HEADER, EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER,
                                     EFI_FAULT_TOLERANT_WRITE_HEADER, EFI_FAULT_TOLERANT_WRITE_RECORD,
                                     VARIABLE_HEADER, VARIABLE_STORE_HEADER)
from tests.realdata import bookworm, trixie, uefiextract_report

FV_HEADER = 0x48  # OVMF's NV FV header length (FACTS A.10)
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
    """FACTS A.10: 57 records from 0x64 to 0x5998, 31 valid, 26 deleted; PK @0x545C, db @0x3CF4."""
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
    assert sbe.get("Value") == data[sbe.field("Data").offset]
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
    hdr = VARIABLE_STORE_HEADER.build(dict(Signature=sig.bytes_le, Size=size if size is not None else total,
                                           Format=0x5A, State=0xFE, Reserved=0, Reserved1=0))
    blob = hdr + body
    return blob + b"\xff" * (total - len(blob))


def auth_var(name: str, data: bytes, state=0x3F, attrs=0x7, name_size=None, data_size=None) -> bytes:
    n = (name + "\0").encode("utf-16-le")
    hdr = AUTHENTICATED_VARIABLE_HEADER.build(dict(
        StartId=0x55AA, State=state, Reserved=0, Attributes=attrs, MonotonicCount=0,
        TimeStamp=dict(Year=2024, Month=1, Day=2, Hour=3, Minute=4, Second=5, Pad1=0, Nanosecond=0,
                       TimeZone=0, Daylight=0, Pad2=0),
        PubKeyIndex=0, NameSize=len(n) if name_size is None else name_size,
        DataSize=len(data) if data_size is None else data_size, VendorGuid=GLOBAL.bytes_le))
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
    assert vs[0].get("Value") == 5 and vs[0].get("TimeStamp")["Year"] == 2024
    assert vs[1].get("Value") == [1, 0] and vs[1].title.endswith("(deleted)")
    assert nodes[0].children[-1].kind == "free-space"
    assert not all_problems(nodes) and len(nodes) == 1  # the store fills the whole body


def test_plain_store_uses_variable_header():
    n = "Lang\0".encode("utf-16-le")
    var = VARIABLE_HEADER.build(dict(StartId=0x55AA, State=0x3F, Reserved=0, Attributes=7, NameSize=len(n),
                                     DataSize=4, VendorGuid=GLOBAL.bytes_le)) + n + b"eng\0"
    vs = variables(decode_blob(store_blob(var, sig=PLAIN_SIG)))
    assert len(vs) == 1 and vs[0].get("Value") == "eng" and vs[0].field("MonotonicCount") is None


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
    hdr = bytearray(EFI_FAULT_TOLERANT_WORKING_BLOCK_HEADER.build(dict(
        Signature=FTW_SIG.bytes_le, Crc=0xFFFFFFFF,
        StateBits=dict(Reserved=0x3F, WorkingBlockInvalid=True, WorkingBlockValid=False),
        Reserved3=b"\xff\xff\xff", WriteQueueSize=size - 32)))
    hdr[16:20] = struct.pack("<I", working_block_crc(bytes(hdr)) if crc is None else crc)
    return bytes(hdr) + queue + b"\xff" * (size - 32 - len(queue))


def test_ftw_write_queue_records():
    caller = uuid.UUID("12345678-1234-1234-1234-123456789abc")
    whdr = EFI_FAULT_TOLERANT_WRITE_HEADER.build(dict(
        Flags=dict(Reserved=0x1F, Complete=False, WritesAllocated=False, HeaderAllocated=False),
        CallerId=caller.bytes_le, NumberOfWrites=1, PrivateDataSize=4))
    rec = EFI_FAULT_TOLERANT_WRITE_RECORD.build(dict(
        Flags=dict(Reserved=0x1F, DestinationComplete=True, SpareComplete=False, BootBlockUpdate=True),
        Lba=2, Offset=0x10, Length=0x200, RelativeOffset=-0x1000)) + b"priv"
    blob = store_blob(b"", total=0x100) + working_block(whdr + rec) + b"\xff" * 0x1000
    nodes = decode_blob(blob)
    block = next(n for n in nodes if n.kind == "ftw-working-block")
    assert not block.problems
    write = block.children[0]
    assert write.get("CallerId") == caller and write.get("NumberOfWrites") == 1
    r = write.children[0]
    assert (r.get("Lba"), r.get("Offset"), r.get("Length"), r.get("RelativeOffset")) == (2, 0x10, 0x200, -0x1000)
    assert r.get("PrivateData") == b"priv" and r.get("BootBlockUpdate") == 1
    assert (r.get("SpareComplete"), r.get("DestinationComplete")) == (0, 1)
    assert nodes[-1].kind == "ftw-spare"


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
