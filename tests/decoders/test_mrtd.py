"""MRTD of Debian's TDVF-capable OVMF images (FACTS A.9).

The per-page value is td-shim's reference tool (`td-shim-tools/src/bin/td-shim-tee-info-hash/
td_shim_tee_info_hash.py`, default mode) on bookworm's OVMF.fd; the two-pass value is checked
against the plain re-implementation below, written from the TDX module ABI record layouts as td-shim
`doc/tdshim_spec.md` quotes them (TDH.MEM.PAGE.ADD: "MEM.PAGE.ADD" + GPA; TDH.MR.EXTEND:
"MR.EXTEND" + GPA, then 256 data bytes).
"""
from __future__ import annotations

import hashlib
import struct
import time
import uuid

import pytest

from decoders.model import Space
from decoders.mrtd import MAX_MRTD_PAGES, compute_mrtd, mrtd_node
from decoders.ovmf import decode_reset_vector_table, find_metadata, tdx_sections
from decoders.ovmf.metadata import TdxSection
from tests.realdata import bookworm, trixie

TD_SHIM_PER_PAGE = ("4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057"
                    "fb887fed0744d5631a212967fb231c47")
TDX_OFFSET_GUID = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2")


def reference_mrtd(image: bytes, two_pass: bool, rebase: int = 0) -> str:
    """Straight from the ABI text: find the descriptor via the GUIDed table, then hash records."""
    end = len(image)
    ptr, left, desc = end - 0x32, struct.unpack_from("<H", image, end - 0x32)[0] - 18, None
    while left >= 18 and desc is None:
        guid = uuid.UUID(bytes_le=image[ptr - 16:ptr])
        length = struct.unpack_from("<H", image, ptr - 18)[0]
        ptr, left = ptr - length, left - length
        if guid == TDX_OFFSET_GUID:
            desc = end - struct.unpack_from("<I", image, ptr)[0]
    assert image[desc:desc + 4] == b"TDVF"
    count = struct.unpack_from("<I", image, desc + 12)[0]
    h = hashlib.sha384()
    for i in range(count):
        off, raw, gpa0, size, _type, attr = struct.unpack_from("<IIQQII", image, desc + 16 + 32 * i)
        data = b""
        if raw:
            data = image[off - rebase:off - rebase + raw]
        data = data + bytes(size - len(data))
        adds, extends = [], []
        for page in range(size // 4096):
            gpa = gpa0 + page * 4096
            add = b"MEM.PAGE.ADD" + bytes(4) + gpa.to_bytes(8, "little") + bytes(104)
            ext = b""
            for c in range(16):
                ext += b"MR.EXTEND" + bytes(7) + (gpa + c * 256).to_bytes(8, "little") + bytes(104)
                ext += data[page * 4096 + c * 256:page * 4096 + c * 256 + 256]
            if not attr & 2:
                adds.append(add)
            if attr & 1:
                extends.append(ext)
            if not two_pass:
                for rec in adds + extends:
                    h.update(rec)
                adds, extends = [], []
        for rec in adds + extends:
            h.update(rec)
    return h.hexdigest()


def sections_of(data: bytes):
    table = decode_reset_vector_table(Space("image", data))
    return tdx_sections(find_metadata(table, "tdx-metadata"))


@pytest.fixture(scope="module")
def ovmf_fd() -> bytes:
    return bookworm("OVMF.fd").read_bytes()


def test_per_page_matches_td_shim_reference_within_budget(ovmf_fd):
    best = None
    for _ in range(3):
        t0 = time.perf_counter()
        result = compute_mrtd(ovmf_fd, sections_of(ovmf_fd), "per-page")
        took = time.perf_counter() - t0
        best = took if best is None else min(best, took)
    assert result.hex == TD_SHIM_PER_PAGE
    assert best <= 0.1, f"MRTD took {best:.3f} s (budget 0.1 s, DESIGN.md)"
    # 0x1E0000 BFV bytes = 480 extended pages; added: BFV 480 + CFV 32 + 0x1A000 of temp/HOB = 26.
    assert result.pages_extended == 0x1E0000 // 4096 == 480
    assert result.pages_added == 480 + 32 + 26 == 538
    assert result.bytes_extended == 0x1E0000
    assert [s.pages_added for s in result.log] == [480, 32, 16, 2, 2, 6]


def test_two_pass_differs_and_matches_plain_reimplementation(ovmf_fd):
    per_page = compute_mrtd(ovmf_fd, sections_of(ovmf_fd), "per-page")
    two_pass = compute_mrtd(ovmf_fd, sections_of(ovmf_fd), "two-pass")
    assert two_pass.hex != per_page.hex
    assert two_pass.hex == reference_mrtd(ovmf_fd, two_pass=True)
    assert per_page.hex == reference_mrtd(ovmf_fd, two_pass=False)


def test_code_only_image_gives_the_unified_mrtd():
    code = bookworm("OVMF_CODE.fd").read_bytes()
    assert compute_mrtd(code, sections_of(code)).hex == TD_SHIM_PER_PAGE
    assert compute_mrtd(code, sections_of(code), "two-pass").hex == reference_mrtd(code, True, rebase=0x20000)


@pytest.mark.parametrize("order", ["per-page", "two-pass"])
def test_trixie_4m_matches_plain_reimplementation(order):
    data = trixie("OVMF.fd").read_bytes()
    result = compute_mrtd(data, sections_of(data), order)
    assert result.hex == reference_mrtd(data, two_pass=order == "two-pass")
    assert result.pages_extended == 0x37C000 // 4096


def test_mrtd_node_shows_the_digest(ovmf_fd):
    node = mrtd_node(compute_mrtd(ovmf_fd, sections_of(ovmf_fd)))
    assert node.kind == "mrtd" and node.field("MRTD").text == TD_SHIM_PER_PAGE
    assert node.get("Order") == "per-page" and node.get("PagesAdded") == 538
    assert [c.get("Type") for c in node.children] == ["BFV", "CFV", "TempMem", "TempMem", "TD_HOB", "TempMem"]
    node.to_json()


def _section(**kw) -> TdxSection:
    base = dict(index=0, data_offset=0, raw_data_size=0, memory_address=0x800000, memory_data_size=0x1000,
                type=3, attributes=0, file_offset=None)
    base.update(kw)
    return TdxSection(**base)


def test_absurd_size_is_refused_without_hashing():
    t0 = time.perf_counter()
    result = compute_mrtd(b"", [_section(memory_data_size=1 << 60)])
    assert time.perf_counter() - t0 < 0.1
    assert result.digest is None and any("exceed the limit" in p.message for p in result.problems)
    assert (MAX_MRTD_PAGES + 1) * 4096 > 64 << 30


def test_huge_page_aug_section_is_not_measured():
    result = compute_mrtd(b"", [_section(type=4, attributes=2, memory_data_size=1 << 60)])
    assert result.digest is not None and result.pages_added == 0


def test_extended_data_outside_image_is_refused():
    result = compute_mrtd(bytes(0x1000), [_section(type=0, attributes=1, raw_data_size=0x2000,
                                                   memory_data_size=0x2000, file_offset=0)])
    assert result.digest is None and any("not in this image" in p.message for p in result.problems)


def test_raw_data_is_zero_padded_to_memory_size():
    # RawDataSize < MemoryDataSize: td-shim tee_info_hash.rs resizes the section data with zeros.
    img = bytes(range(256)) * 16
    padded = compute_mrtd(img, [_section(type=0, attributes=1, raw_data_size=0x800, memory_data_size=0x1000,
                                         file_offset=0)])
    full = compute_mrtd(img[:0x800] + bytes(0x800), [_section(type=0, attributes=1, raw_data_size=0x1000,
                                                              memory_data_size=0x1000, file_offset=0)])
    assert padded.hex == full.hex


def test_unknown_order_is_rejected():
    with pytest.raises(ValueError):
        compute_mrtd(b"", [], "sideways")
