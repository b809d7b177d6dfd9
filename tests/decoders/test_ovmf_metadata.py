"""The OVMF reset-vector GUIDed table and the TDX / SEV metadata it leads to, on Debian's real images.

Expected values come from the edk2 sources the images were built from, not from our output:
- table entries and GUIDs: edk2 `OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.nasm.inc` (written top
  down: tdxMetadataOffset, OvmfSevMetadataOffset, sevFwHashBlock, sevSecretBlock, sevEsResetBlock, so
  a walk backwards from the footer meets them in reverse) and QEMU `hw/i386/pc_sysfw_ovmf.c`,
  `hw/i386/tdvf.c` (TDX_METADATA_OFFSET_GUID);
- TDVF sections: `OvmfPkg/ResetVector/X64/IntelTdxMetadata.nasm.inc` (_Bfv, _Cfv, _TdxHeapStack,
  _TdxInitMem, _TdHob, _OvmfPageTable in that order) with the PCDs of
  `OvmfPkg/Include/Fdf/OvmfPkgDefines.fdf.inc` (2 MiB: FW_BASE_ADDRESS 0xFFE00000,
  CODE_BASE_ADDRESS 0xFFE20000, CODE_SIZE 0x1E0000, VARS_SIZE 0x20000; 4 MiB: 0xFFC00000,
  0xFFC84000, 0x37C000, 0x84000; PcdBfvRawDataOffset = VARS_SIZE, PcdCfvRawDataOffset = 0) and
  MEMFD at 0x800000 (same file);
- SEV sections: `OvmfPkg/ResetVector/X64/OvmfSevMetadata.nasm.inc` (PreValidate1, PreValidate2,
  SevSnpSecrets, CpuidSec, [SvsmCaa since 2024], PreValidate3).
"""
from __future__ import annotations

import struct
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decoders.model import Severity, Space
from decoders.ovmf import decode_reset_vector_table, find_metadata, tdx_sections
from tests.realdata import bookworm, trixie

E_TDX = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2")      # QEMU tdvf.c TDX_METADATA_OFFSET_GUID
E_SEV_META = uuid.UUID("dc886566-984a-4798-a75e-5585a7bf67cc")  # ResetVectorVtf0.nasm.inc
E_HASH = uuid.UUID("7255371f-3a3b-4b04-927b-1da6efa8d454")
E_SECRET = uuid.UUID("4c2eb361-7d9b-4cc3-8081-127c90d3d294")
E_SEV_ES = uuid.UUID("00f771de-1a7e-4fcb-890e-68c77e2fb44e")
FOOTER = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d")
TDX_META_GUID = uuid.UUID("e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae")
BFV, CFV, TD_HOB, TEMP_MEM = 0, 1, 2, 3


def decode(data: bytes, name: str = "image"):
    return decode_reset_vector_table(Space(name, data, (1 << 32) - len(data)))


def errors(node):
    return [(n.kind, p) for n, p in node.all_problems() if p.severity == Severity.ERROR]


def sections_tuple(meta):
    return [(s.data_offset, s.raw_data_size, s.memory_address, s.memory_data_size, s.type, s.attributes)
            for s in tdx_sections(meta)]


@pytest.fixture(scope="module")
def ovmf_fd() -> bytes:
    return bookworm("OVMF.fd").read_bytes()


# -- the table -------------------------------------------------------------------------------------
def test_bookworm_table_entries_walk_backwards_in_nasm_order(ovmf_fd):
    table = decode(ovmf_fd)
    assert table.kind == "ovmf-guid-table"
    assert [c.get("Guid") for c in table.children] == [E_SEV_ES, E_SECRET, E_HASH, E_SEV_META, E_TDX]
    assert table.get("FooterGuid") == FOOTER
    # The length counts every entry, its own 2 bytes and the footer GUID (ResetVectorVtf0.nasm.inc).
    (raw_len,) = struct.unpack_from("<H", ovmf_fd, len(ovmf_fd) - 0x32)
    assert table.get("TableLength") == raw_len == sum(c.get("Length") for c in table.children) + 18
    assert table.get("VtfSignature") == b"VTF\0"
    assert errors(table) == []


def test_bookworm_sev_es_reset_block_is_work_area_plus_4(ovmf_fd):
    # SEV_ES_AP_RESET_IP = PcdSevEsWorkAreaBase = MEMFD 0x800000 + work area 0xB000 + 4-byte header.
    entry = next(c for c in decode(ovmf_fd).children if c.get("Guid") == E_SEV_ES)
    assert entry.get("SevEsApResetIp") == 0x0080B004
    assert entry.get("CsBase") == 0x800000 and entry.get("IP") == 0xB004


def test_bookworm_reset_vector_is_the_x64_jmp_pair(ovmf_fd):
    table = decode(ovmf_fd)
    rv = table.field("ResetVector")
    assert rv.value == ovmf_fd[-16:] and rv.offset == len(ovmf_fd) - 16
    # ARCH_X64 in ResetVectorVtf0.nasm.inc: mov eax, cr0 / test al, 1 / jz .Real / jmp Main32 / jmp ...
    assert rv.value.startswith(bytes.fromhex("0f20c0a80174"))
    assert "jmp 0xffff" in rv.text and ".Real" in rv.text


def test_bookworm_tdx_descriptor_six_sections_from_the_fdf(ovmf_fd):
    table = decode(ovmf_fd)
    meta = find_metadata(table, "tdx-metadata")
    assert meta.offset == 0x1FF7C0 == len(ovmf_fd) - 0x840
    assert meta.get("Guid") == TDX_META_GUID
    assert meta.get("Signature") == b"TDVF" and meta.get("Version") == 1
    assert meta.get("NumberOfSectionEntry") == 6 and meta.get("Length") == 16 + 32 * 6
    assert meta.get("ImageLayout") == "unified"
    assert sections_tuple(meta) == [
        (0x20000, 0x1E0000, 0xFFE20000, 0x1E0000, BFV, 1),   # VARS_SIZE, CODE_SIZE, CODE_BASE_ADDRESS
        (0x0, 0x20000, 0xFFE00000, 0x20000, CFV, 0),          # VARS_OFFSET, VARS_SIZE, FW_BASE_ADDRESS
        (0, 0, 0x810000, 0x10000, TEMP_MEM, 0),               # SEC/PEI temp RAM (MEMFD +0x10000)
        (0, 0, 0x80B000, 0x2000, TEMP_MEM, 0),                # work area + GHCB backup
        (0, 0, 0x809000, 0x2000, TD_HOB, 0),                  # "SEV: GHCB page / TDX: TD HOB page"
        (0, 0, 0x800000, 0x6000, TEMP_MEM, 0),                # SEC page tables
    ]
    bfv = meta.children[0]
    assert bfv.field("Type").text == "BFV" and bfv.field("Attributes").text == "MR.EXTEND"
    assert bfv.field("FileRange").value == (0x20000, 0x200000)
    assert bfv.field("GpaRange").value == (0xFFE20000, 1 << 32)
    assert errors(meta) == []


def test_bookworm_sev_metadata_five_sections(ovmf_fd):
    meta = find_metadata(decode(ovmf_fd), "sev-metadata")
    assert meta.offset == len(ovmf_fd) - 0x52C
    assert meta.get("Signature") == b"ASEV" and meta.get("NumSections") == 5
    got = [(c.get("Base"), c.get("Size"), c.field("Type").text) for c in meta.children]
    assert got == [(0x800000, 0x9000, "SNP_SEC_MEM"), (0x80A000, 0x3000, "SNP_SEC_MEM"),
                   (0x80D000, 0x1000, "SNP_SECRETS"), (0x80E000, 0x1000, "CPUID"),
                   (0x80F000, 0x11000, "SNP_SEC_MEM")]
    assert errors(meta) == []


def test_bookworm_code_4m_ia32x64_has_no_cc_metadata():
    data = bookworm("OVMF_CODE_4M.fd").read_bytes()
    table = decode(data)
    # The IA32 reset vector of ResetVectorVtf0.nasm.inc has no %ifdef ARCH_X64 entries.
    assert [c.get("Guid") for c in table.children] == [E_SEV_ES, E_SECRET, E_HASH]
    assert find_metadata(table, "tdx-metadata") is None and find_metadata(table, "sev-metadata") is None
    assert any("no TDX, SEV or IGVM" in p.message for p in table.problems)
    assert table.field("ResetVector").text.startswith("nop; nop; jmp")


def test_bookworm_code_only_image_is_rebased(ovmf_fd):
    data = bookworm("OVMF_CODE.fd").read_bytes()
    assert len(data) == 0x1E0000
    meta = find_metadata(decode(data), "tdx-metadata")
    assert meta.get("ImageLayout") == "code-only"
    assert "-0x20000" in meta.field("ImageLayout").text
    assert any("CODE-only" in p.message for p in meta.problems)
    secs = tdx_sections(meta)
    assert secs[0].data_offset == 0x20000 and secs[0].file_offset == 0
    assert secs[1].file_offset is None           # the CFV is OVMF_VARS.fd
    # The rebased BFV range holds the same bytes as the BFV of the unified image.
    assert data[secs[0].file_offset:secs[0].file_offset + secs[0].raw_data_size] == ovmf_fd[0x20000:0x200000]
    assert errors(meta) == []


def test_vars_file_has_no_table():
    assert decode(bookworm("OVMF_VARS.fd").read_bytes()) is None


# -- Debian 13 (edk2 2025.02) ---------------------------------------------------------------------
def _plain_tdx_descriptor_offset(data: bytes) -> int:
    """Walk the table the way QEMU's pc_system_ovmf_table_find does, independently of the decoder."""
    end = len(data)
    ptr = end - 0x32
    left = struct.unpack_from("<H", data, ptr)[0] - 18
    while left >= 18:
        guid = uuid.UUID(bytes_le=data[ptr - 16:ptr])
        length = struct.unpack_from("<H", data, ptr - 18)[0]
        ptr -= length
        left -= length
        if guid == E_TDX:
            return end - struct.unpack_from("<I", data, ptr)[0]
    raise AssertionError("no TDX entry")


def test_trixie_4m_tdx_metadata_matches_the_4m_fdf():
    data = trixie("OVMF.fd").read_bytes()
    assert len(data) == 0x400000
    table = decode(data)
    assert [c.get("Guid") for c in table.children] == [E_SEV_ES, E_SECRET, E_HASH, E_SEV_META, E_TDX]
    assert table.get("ApEntryPoint") == bytes(12)        # `DD 0, 0, 0` since edk2 dea6002d6e
    meta = find_metadata(table, "tdx-metadata")
    assert meta.offset == _plain_tdx_descriptor_offset(data)
    secs = sections_tuple(meta)
    assert secs[0] == (0x84000, 0x37C000, 0xFFC84000, 0x37C000, BFV, 1)
    assert secs[1] == (0x0, 0x84000, 0xFFC00000, 0x84000, CFV, 0)
    assert (0, 0, 0x809000, 0x2000, TD_HOB, 0) in secs
    assert secs[-1] == (0, 0, 0x800000, 0x6000, TEMP_MEM, 0)
    # The remaining TempMem entries, read straight from the descriptor bytes.
    for i in (2, 3):
        raw = struct.unpack_from("<IIQQII", data, meta.offset + 16 + 32 * i)
        assert secs[i] == raw and raw[4] == TEMP_MEM and 0x800000 <= raw[2] < 0x820000
    assert errors(meta) == []
    sev = find_metadata(table, "sev-metadata")
    assert [c.field("Type").text for c in sev.children] == [
        "SNP_SEC_MEM", "SNP_SEC_MEM", "SNP_SECRETS", "CPUID", "SVSM_CAA", "SNP_SEC_MEM"]
    assert errors(sev) == []


def test_trixie_code_4m_is_x64_and_rebased_by_vars_size():
    data = trixie("OVMF_CODE_4M.fd").read_bytes()
    meta = find_metadata(decode(data), "tdx-metadata")
    assert meta is not None and meta.get("ImageLayout") == "code-only"
    assert "-0x84000" in meta.field("ImageLayout").text
    assert tdx_sections(meta)[0].file_offset == 0


# -- malformed input ------------------------------------------------------------------------------
def _patch(data: bytes, offset: int, fmt: str, *values) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, *values)
    return bytes(b)


@pytest.mark.parametrize("size", [0, 1, 0x20, 0x31])
def test_tiny_input_has_no_table(size):
    assert decode(bytes(size)) is None


def test_truncated_head_has_no_table(ovmf_fd):
    assert decode(ovmf_fd[:0x100000]) is None


def test_tail_only_image_reports_descriptors_outside(ovmf_fd):
    table = decode(ovmf_fd[-0x100:])
    assert len(table.children) == 5
    tdx = next(c for c in table.children if c.get("Guid") == E_TDX)
    assert any("outside" in p.message for p in tdx.problems)
    assert find_metadata(table, "tdx-metadata") is None


def test_table_length_zero_is_a_problem(ovmf_fd):
    table = decode(_patch(ovmf_fd, len(ovmf_fd) - 0x32, "<H", 0))
    assert table.children == [] and any("smaller than its own" in p.message for p in table.problems)


def test_table_length_huge_stays_bounded(ovmf_fd):
    table = decode(_patch(ovmf_fd, len(ovmf_fd) - 0x32, "<H", 0xFFFF))
    assert len(table.children) >= 5 and table.problems      # garbage after the real entries


def test_entry_length_zero_does_not_loop(ovmf_fd):
    # The first entry's length sits just before its GUID, 18 bytes below the footer.
    table = decode(_patch(ovmf_fd, len(ovmf_fd) - 0x32 - 18, "<H", 0))
    assert table.children == [] and any("would not advance" in p.message for p in table.problems)


def test_entry_length_past_table_start(ovmf_fd):
    table = decode(_patch(ovmf_fd, len(ovmf_fd) - 0x32 - 18, "<H", 0x1000))
    assert any("past the start of the table" in p.message for p in table.problems)


def test_descriptor_offset_past_image(ovmf_fd):
    tdx_entry = next(c for c in decode(ovmf_fd).children if c.get("Guid") == E_TDX)
    table = decode(_patch(ovmf_fd, tdx_entry.offset, "<I", 0xFFFFFFFF))
    tdx_entry = next(c for c in table.children if c.get("Guid") == E_TDX)
    assert tdx_entry.children == [] and any("outside" in p.message for p in tdx_entry.problems)


def test_number_of_sections_all_ones_is_bounded(ovmf_fd):
    table = decode(_patch(ovmf_fd, 0x1FF7C0 + 12, "<I", 0xFFFFFFFF))
    meta = find_metadata(table, "tdx-metadata")
    msgs = [p.message for p in meta.problems]
    assert any("exceeds the limit" in m for m in msgs) and any("Length" in m for m in msgs)
    assert len(meta.children) <= 64


def test_section_checks_alignment_reserved_bits_overlap(ovmf_fd):
    hob = 0x1FF7C0 + 16 + 32 * 4                              # the TD_HOB entry
    data = _patch(ovmf_fd, hob + 8, "<Q", 0x800000)            # now overlaps the page tables
    data = _patch(data, hob + 28, "<I", 0x10)                  # a reserved attribute bit
    data = _patch(data, 0x1FF7C0 + 16 + 32 * 2 + 16, "<Q", 0x10001)   # TempMem size unaligned
    meta = find_metadata(decode(data), "tdx-metadata")
    msgs = [p.message for _, p in errors(meta)]
    assert any("overlaps" in m for m in msgs)
    assert any("reserved Attributes" in m for m in msgs)
    assert any("not 4 KiB aligned" in m for m in msgs)


def test_bfv_data_outside_image_is_a_problem(ovmf_fd):
    data = _patch(ovmf_fd, 0x1FF7C0 + 16, "<I", 0x300000)      # BFV DataOffset past the 2 MiB file
    meta = find_metadata(decode(data), "tdx-metadata")
    assert any("outside the image" in p.message for p in meta.children[0].problems)
    assert tdx_sections(meta)[0].file_offset is None


def test_wrong_signature_and_version(ovmf_fd):
    meta = find_metadata(decode(_patch(ovmf_fd, 0x1FF7C0 + 8, "<I", 2)), "tdx-metadata")
    assert any("Version 2" in p.message for p in meta.problems)
    meta = find_metadata(decode(_patch(ovmf_fd, 0x1FF7C0, "<4s", b"XXXX")), "tdx-metadata")
    assert meta.children == [] and any("signature" in p.message for p in meta.problems)


def test_legacy_tdshim_pointer_fallback(ovmf_fd):
    # No footer GUID; UINT32 at E-0x20 = offset of "TDVF" (td-shim tdshim_spec.md "Metadata Location").
    end = len(ovmf_fd)
    data = _patch(ovmf_fd, end - 0x30, "<16s", bytes(16))
    data = _patch(data, end - 0x20, "<I", 0x1FF7C0)
    table = decode(data)
    assert table is not None and any("legacy td-shim" in p.message for p in table.problems)
    assert len(tdx_sections(find_metadata(table, "tdx-metadata"))) == 6


def test_to_json_round_trips(ovmf_fd):
    import json
    out = json.loads(json.dumps(decode(ovmf_fd).to_json()))
    assert out["kind"] == "ovmf-guid-table" and len(out["children"]) == 5


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 0x900), st.integers(0, 255)), min_size=1, max_size=12))
def test_random_top_corruption_never_raises(ovmf_fd, edits):
    b = bytearray(ovmf_fd)
    for back, value in edits:
        b[len(b) - back] = value
    table = decode(bytes(b))
    if table is not None:
        table.to_json()
        for meta in table.find("tdx-metadata"):
            tdx_sections(meta)


def _entry(table, guid):
    return next(c for c in table.children if c.get("Guid") == guid)


def test_unknown_guid_entry_shows_raw_data(ovmf_fd):
    secret = _entry(decode(ovmf_fd), E_SECRET)
    guid_at = secret.field("Guid").offset
    data = _patch(ovmf_fd, guid_at, "<16s", uuid.UUID("12345678-1234-1234-1234-123456789abc").bytes_le)
    entry = decode(data).children[1]
    assert entry.get("Data") == ovmf_fd[secret.offset:secret.offset + 8]
    assert any("unknown GUID" in p.message for p in entry.problems)


def test_svsm_info_entry(ovmf_fd):
    # COCONUT-SVSM's sevSnpSvsmInfo: UINT32 launch offset of the SVSM entry from the image start.
    es = _entry(decode(ovmf_fd), E_SEV_ES)
    svsm = uuid.UUID("a789a612-0597-4c4b-a49f-cbb1fe9d1ddd")
    data = _patch(ovmf_fd, es.field("Guid").offset, "<16s", svsm.bytes_le)
    data = _patch(data, es.offset, "<I", 0x1000)
    entry = _entry(decode(data), svsm)
    assert entry.get("SvsmOffset") == 0x1000
    assert "0xffe01000" in entry.field("SvsmOffset").text


def test_igvm_descriptor_in_the_nasm_shape(ovmf_fd):
    """An IGVM entry in place of the SEV one, its descriptor laid out as IgvmMetadata.nasm.inc does."""
    from decoders.ovmf import structs as S
    sev = _entry(decode(ovmf_fd), E_SEV_META)
    igvm = uuid.UUID("784fa70e-3176-4677-8a20-04b68699e374")
    at = len(ovmf_fd) - 0x52C
    secs = [(0x812000, 0x1000, 0x100), (0, 8 * 24, 0x101), (8 * 24, 16, 0x102), (0x813000, 0x1000, 0x200)]
    blob = S.CC_DESCRIPTOR.build(dict(Signature=b"IGVM", Length=16 + 12 * 4, Version=1, NumSections=4))
    blob += b"".join(S.IGVM_SECTION.build(dict(Base=b, Size=s, Type=t)) for b, s, t in secs)
    data = bytearray(_patch(ovmf_fd, sev.field("Guid").offset, "<16s", igvm.bytes_le))
    data[at:at + len(blob)] = blob
    meta = find_metadata(decode(bytes(data)), "igvm-metadata")
    assert [(c.get("Base"), c.get("Size"), c.get("Type")) for c in meta.children] == secs
    assert [c.field("Type").text for c in meta.children] == [
        "PARAM_AREA", "PARAM_MEMORY_MAP", "PARAM_VP_COUNT", "HOB_AREA"]
    assert errors(meta) == []
