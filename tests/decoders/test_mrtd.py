"""MRTD of Debian's TDVF-capable OVMF images and of crafted descriptors.

The per-page value is td-shim's reference tool (`td-shim-tools/src/bin/td-shim-tee-info-hash/
td_shim_tee_info_hash.py`, default mode) on bookworm's OVMF.fd; the two-pass value is checked
against the plain re-implementation below, written from the TDX module ABI record layouts as td-shim
`doc/tdshim_spec.md` quotes them (TDH.MEM.PAGE.ADD: "MEM.PAGE.ADD" + GPA; TDH.MR.EXTEND:
"MR.EXTEND" + GPA, then 256 data bytes).
"""
from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decoders.model import Space
from decoders.mrtd import BATCH_BYTES, EXTEND_BYTES, MAX_HASHED_BYTES, RECORD, compute_mrtd, mrtd_node
from decoders.ovmf import decode_reset_vector_table, find_metadata, tdx_sections
from decoders.ovmf.metadata import TdxSection
from tests.decoders import wire
from tests.realdata import bookworm, trixie

TD_SHIM_PER_PAGE = ("4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057"
                    "fb887fed0744d5631a212967fb231c47")


def reference_mrtd(image: bytes, two_pass: bool, rebase: int = 0) -> str:
    """Straight from the ABI text (tests/decoders/wire.py): the descriptor found through the GUIDed
    table, then the records hashed."""
    return wire.reference_mrtd(image, "two-pass" if two_pass else "per-page", rebase)


def sections_of(data: bytes):
    table = decode_reset_vector_table(Space("image", data))
    return tdx_sections(find_metadata(table, "tdx-metadata"))


@pytest.fixture(scope="module")
def ovmf_fd() -> bytes:
    return bookworm("OVMF.fd").read_bytes()


def test_per_page_matches_td_shim_reference(ovmf_fd):
    result = compute_mrtd(ovmf_fd, sections_of(ovmf_fd), "per-page")
    assert result.hex == TD_SHIM_PER_PAGE
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
    result = compute_mrtd(b"", [_section(memory_data_size=1 << 50, at=0x1234)])
    assert result.digest is None
    [p] = result.problems
    assert p.offset == 0x1234
    assert p.message == (f"measuring these sections hashes {(1 << 38) * RECORD:,} bytes (section 0, TempMem, "
                         f"alone {(1 << 38) * RECORD:,}); the budget is 268,435,456 bytes hashed; not computed")


def test_work_budget_counts_extends_at_6_kib_a_page():
    pages = MAX_HASHED_BYTES // EXTEND_BYTES + 1     # one extended page over the budget
    over = compute_mrtd(b"", [_section(type=0, attributes=1, memory_data_size=pages * 4096)])
    assert over.digest is None and "the budget is" in over.problems[0].message
    assert EXTEND_BYTES == 16 * (128 + 256)


def test_gpa_range_past_2_64_is_refused():
    result = compute_mrtd(b"", [_section(memory_address=0xFFFF_FFFF_FFFF_F000, memory_data_size=0x2000, at=0x40)])
    assert result.digest is None
    assert [(p.offset, p.message) for p in result.problems] == [
        (0x40, "section 0 (TempMem): MemoryAddress 0xfffffffffffff000 + MemoryDataSize 0x2000 passes 2^64")]


def test_gpa_range_ending_exactly_at_2_64_is_measured():
    result = compute_mrtd(b"", [_section(memory_address=0xFFFF_FFFF_FFFF_E000, memory_data_size=0x2000)])
    assert result.pages_added == 2
    h = hashlib.sha384()
    for gpa in (0xFFFF_FFFF_FFFF_E000, 0xFFFF_FFFF_FFFF_F000):
        h.update(b"MEM.PAGE.ADD" + bytes(4) + struct.pack("<Q", gpa) + bytes(104))
    assert result.hex == h.hexdigest()


@pytest.mark.parametrize("two_pass", [False, True], ids=["per-page", "two-pass"])
def test_crafted_sections_across_batches_match_plain_reimplementation(two_pass, tmp_path):
    """Sections longer than one batch of records, image data ending mid-page and mid-chunk, a
    PAGE.AUG section and an added-only section, against the record-by-record reference."""
    from tests.hostile.test_mrtd_hostile import tdvf_image
    pages = BATCH_BYTES // (RECORD + EXTEND_BYTES) + 7
    secs = [(0, 0x8000 - 0x123, 0xFFC0_0000, pages * 4096, 0, 1),      # BFV: data, then zero padding
            (0x100, 0x1000, 0x10_0000, 0x3000, 1, 3),                   # MR.EXTEND | PAGE.AUG: extends only
            (0, 0, 0x80_0000, (BATCH_BYTES // RECORD + 3) * 4096, 3, 0)]  # TempMem: adds only
    data = tdvf_image(tmp_path / "t.fd", secs).read_bytes()
    result = compute_mrtd(data, sections_of(data), "two-pass" if two_pass else "per-page")
    assert result.hex == reference_mrtd(data, two_pass=two_pass)
    assert (result.pages_added, result.pages_extended) == (pages + BATCH_BYTES // RECORD + 3, pages + 3)


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


_U64 = st.integers(0, (1 << 64) - 1)
# Page-aligned addresses near 0 and near 2^64, and any value; a few pages, very many, and any size.
_GPA = st.integers(0, 64).map(lambda n: n * 4096) | st.integers(1, 64).map(lambda n: (1 << 64) - n * 4096) | _U64
_PAGES = st.integers(0, 64).map(lambda n: n * 4096) | st.integers(0, 1 << 40).map(lambda n: n * 4096) | _U64


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 0x3000), st.integers(0, 0x3000), _GPA, _PAGES, st.integers(0, 9),
                          st.integers(0, 3)), max_size=6))
def test_any_sections_give_a_digest_or_a_refusal_within_the_work_budget(raw):
    """Whatever a descriptor says (addresses, sizes, types, attributes), compute_mrtd returns: a
    digest after hashing at most the budget, or no digest and the problems that say why."""
    image = bytes(range(256)) * 32
    secs = [TdxSection(i, off, size, gpa, mem, typ, attr, off) for i, (off, size, gpa, mem, typ, attr)
            in enumerate(raw)]
    for order in ("per-page", "two-pass"):
        result = compute_mrtd(image, secs, order)
        assert (result.digest is None) == bool(result.problems)
        if result.digest is not None:
            assert result.pages_added * RECORD + result.pages_extended * EXTEND_BYTES <= MAX_HASHED_BYTES


def test_metadata_locates_a_gpa_range_past_2_64(tmp_path):
    """The descriptor itself says which TDVF_SECTION has no guest-physical range (MemoryDataSize at +16)."""
    from tests.hostile.test_mrtd_hostile import DESCRIPTOR_AT, gpa_overflow
    data = gpa_overflow(tmp_path / "g.fd").read_bytes()
    meta = find_metadata(decode_reset_vector_table(Space("image", data)), "tdx-metadata")
    second = DESCRIPTOR_AT + 16 + 32
    assert (second + 16, "MemoryAddress + MemoryDataSize passes 2^64: no guest-physical range") in \
        [(p.offset, p.message) for _, p in meta.all_problems()]
    result = compute_mrtd(data, tdx_sections(meta))
    assert result.digest is None and result.problems[0].offset == second
