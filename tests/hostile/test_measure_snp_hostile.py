"""SEV-SNP launch digest prediction on malformed and hostile images: every bad table, descriptor or
option is a located Problem and no digest (or a warning and QEMU's digest where QEMU launches the
image anyway), never an exception, and the work stays bounded (a descriptor asking for GiBs of
pages is refused before anything is hashed).

Images are the crafted one of tests/decoders/test_measure_snp.py (struct.pack from edk2's layouts),
patched here; and Debian's OVMF.fd cut short.
"""
from __future__ import annotations

import random
import struct

import pytest

from decoders.measure.snp import MAX_METADATA_PAGES, predict_snp, snp_node
from decoders.model import Severity
from tests.decoders.test_measure_snp import (CRAFTED_SECTIONS, DESCRIPTOR_AT, HASH_BLOCK, RESET_BLOCK, SEV_META,
                                             crafted_image, entry, reference_ld)
from tests.realdata import bookworm

SIZE = 0x10000
FOOTER_LEN_AT = SIZE - 0x32        # UINT16 table length (ResetVectorVtf0.asm)


def predict(img: bytes, **kw):
    kw.setdefault("vcpus", 2)
    kw.setdefault("vcpu_type", "EPYC")
    return predict_snp(img, "hostile.fd", **kw)


def errors(p) -> list[str]:
    return [x.message for x in p.problems if x.severity == Severity.ERROR]


def warnings(p) -> list[str]:
    return [x.message for x in p.problems if x.severity == Severity.WARNING]


def check_contract(p, image_len: int) -> None:
    """What holds for any input: a 48-byte digest only without errors, bounded work, nodes build."""
    if p.digest is not None:
        assert len(p.digest) == 48 and not errors(p)
        measured = sum(s.pages for s in p.steps)
        assert measured <= image_len // 4096 + MAX_METADATA_PAGES + p.vcpus
    else:
        assert errors(p), "no digest and no error"
    for x in p.problems:
        assert x.offset is None or 0 <= x.offset < max(image_len, 1)
    node = snp_node(p)
    assert node.kind == "snp-prediction"
    _ = p.metadata    # the lazy Node decode must hold on the same bytes


def patch(img: bytes, at: int, fmt: str, *values) -> bytes:
    b = bytearray(img)
    struct.pack_into(fmt, b, at, *values)
    return bytes(b)


# -- the GUIDed table ----------------------------------------------------------------------------
def test_snp_table_length_shorter_than_footer():
    p = predict(patch(crafted_image(), FOOTER_LEN_AT, "<H", 5))
    assert p.digest is None
    assert any("GUIDed table length 0x5" in m for m in errors(p))
    assert any("no SEV metadata" in m for m in errors(p))


def test_snp_table_length_past_image_start():
    p = predict(patch(crafted_image(), FOOTER_LEN_AT, "<H", 0xFFFF))
    assert p.digest is None and any("reaches before the image" in m for m in errors(p))
    assert p.problems[0].offset == FOOTER_LEN_AT


def test_snp_entry_length_zero_stops_the_walk():
    """The entry nearest the footer (the reset block) says length 0: QEMU stops there, so the SEV
    metadata entry behind it is never found."""
    p = predict(patch(crafted_image(), FOOTER_LEN_AT - 18, "<H", 0))
    assert p.digest is None
    assert any("entry length 0x0 is < 18" in m for m in warnings(p))
    assert p.problems[0].offset == FOOTER_LEN_AT - 18


def test_snp_duplicate_metadata_guid_uses_the_one_nearest_the_footer():
    bogus = entry(struct.pack("<I", 0x4000), SEV_META)           # points at filler, not "ASEV"
    good = crafted_image(entries=[bogus, entry(struct.pack("<I", SIZE - DESCRIPTOR_AT), SEV_META),
                                  entry(struct.pack("<II", 0x80CC00, 0x400), HASH_BLOCK),
                                  entry(struct.pack("<I", 0x80B004), RESET_BLOCK)])
    p = predict(good)
    assert p.digest == reference_ld(good, 2, 0x00800F12)
    assert any("appears twice" in m for m in warnings(p))


@pytest.mark.parametrize("offset", [0, 8, SIZE + 1, 0xFFFFFFFF])
def test_snp_metadata_offset_outside_image(offset):
    img = crafted_image(entries=[entry(struct.pack("<I", offset), SEV_META),
                                 entry(struct.pack("<I", 0x80B004), RESET_BLOCK)])
    p = predict(img)
    assert p.digest is None and any("no SEV metadata" in m and "points outside" in m for m in errors(p))


def test_snp_metadata_entry_too_short():
    img = crafted_image(entries=[entry(b"\x01\x02", SEV_META), entry(struct.pack("<I", 0x80B004), RESET_BLOCK)])
    p = predict(img)
    assert p.digest is None and any("SEV metadata offset entry holds 2 data bytes" in m for m in errors(p))


def test_snp_reset_address_zero():
    p = predict(crafted_image(reset=0))
    assert p.digest is None and any("reset address is 0" in m for m in errors(p))


# -- the ASEV descriptor -------------------------------------------------------------------------
def test_snp_bad_signature_is_no_metadata():
    p = predict(patch(crafted_image(), DESCRIPTOR_AT, "<4s", b"ASEW"))
    assert p.digest is None and p.metadata is None
    assert any(m.startswith("no SEV metadata: signature b'ASEW'") for m in errors(p))


def test_snp_num_sections_huge():
    p = predict(patch(crafted_image(), DESCRIPTOR_AT + 12, "<I", 0xFFFFFFFF))
    assert p.digest is None and any("NumSections 4294967295" in m for m in errors(p))
    assert p.problems[0].offset == DESCRIPTOR_AT + 12


@pytest.mark.parametrize("length", [0, 15, SIZE - DESCRIPTOR_AT + 1, 0xFFFFFFFF])
def test_snp_descriptor_length_out_of_bounds_is_no_metadata(length):
    """QEMU's pc_system_parse_sev_metadata ignores such a descriptor: no metadata, no SNP launch."""
    p = predict(patch(crafted_image(), DESCRIPTOR_AT + 4, "<I", length))
    assert p.digest is None and not p.has_metadata
    assert [m for m in errors(p) if m.startswith("no SEV metadata: the descriptor's Length")]
    assert p.metadata is not None      # the Node decoder still shows what is there


def test_snp_descriptor_length_shorter_than_its_sections():
    p = predict(patch(crafted_image(), DESCRIPTOR_AT + 4, "<I", 16 + 12 * 5))
    assert p.digest is None and p.has_metadata
    assert errors(p) == ["6 sections need 0x58 bytes, the descriptor's Length is 0x4c"]


def test_snp_version_two_is_a_warning():
    """QEMU does not look at Version; sev-snp-measure refuses anything but 1."""
    img = crafted_image(version=2)
    p = predict(img, vcpus=1)
    assert p.digest == reference_ld(img, 1, 0x00800F12)
    assert any("Version 2" in m for m in warnings(p))


@pytest.mark.parametrize("section,message", [
    ((0x800800, 0x1000, 1), "not whole 4 KiB pages"),
    ((0x800000, 0x1800, 1), "not whole 4 KiB pages"),
    ((0x900000, 0, 1), "Size 0; QEMU refuses a zero-length SNP_LAUNCH_UPDATE"),
    ((0xFFFFF000, 0x2000, 1), "runs past 4 GiB"),
    ((0x2000, 0xFFFFF000, 1), "runs past 4 GiB"),
    ((0xFFFF0000, 0x1000, 1), "overlaps the firmware image"),
    ((0x808000, 0x2000, 1), "overlaps section"),
])
def test_snp_bad_section(section, message):
    p = predict(crafted_image(sections=CRAFTED_SECTIONS + [section]))
    assert p.digest is None and any(message in m for m in errors(p)), p.problems
    assert all(x.offset is not None for x in p.problems if message in x.message)


def test_snp_sections_past_the_page_cap_are_refused_unhashed():
    sections = [(0x1000000 + i * 0x10000000, 0x10000000, 1) for i in range(8)]     # 2 GiB of ZERO pages
    p = predict(crafted_image(sections=sections))
    assert p.digest is None and not p.steps
    assert any("the limit is" in m for m in errors(p))


def test_snp_unknown_section_type_is_zero_pages():
    """QEMU's snp_metadata_desc_to_page_type sends unknown types in as ZERO pages."""
    img = crafted_image(sections=CRAFTED_SECTIONS + [(0x900000, 0x1000, 0x77)])
    p = predict(img)
    assert p.digest is not None and any("unknown type" in m for m in warnings(p))
    assert (p.steps[7].region, p.steps[7].page_type_name) == ("type 0x77 #6", "ZERO")


def test_snp_two_page_secrets_section_measures_both_pages():
    sections = [s if s[2] != 2 else (0x900000, 0x2000, 2) for s in CRAFTED_SECTIONS]
    p = predict(crafted_image(sections=sections))
    assert p.digest is not None and p.steps[2].pages == 2
    assert any("KVM measures every page" in m for m in warnings(p))


# -- the kernel hashes ---------------------------------------------------------------------------
def test_snp_kernel_hashes_section_too_small_for_the_table():
    p = predict(crafted_image(hash_area=(0x80CF80, 0x400)), kernel=b"k")
    assert p.digest is None and any("cannot hold the 176-byte hashes table at +0xf80" in m for m in errors(p))


def test_snp_hash_area_too_small():
    p = predict(crafted_image(hash_area=(0x80CC00, 0x80)), kernel=b"k")
    assert p.digest is None and any("size 0x80) is invalid" in m for m in errors(p))


def test_snp_kernel_without_hash_block():
    p = predict(crafted_image(hash_area=None), kernel=b"k")
    assert p.digest is None and any("no SEV hash table block" in m for m in errors(p))


def test_snp_kernel_without_kernel_hashes_section():
    p = predict(crafted_image(sections=[s for s in CRAFTED_SECTIONS if s[2] != 0x10]), kernel=b"k")
    assert p.digest is None and any("no KERNEL_HASHES section" in m for m in errors(p))


def test_snp_hash_area_outside_the_section_is_a_warning():
    p = predict(crafted_image(hash_area=(0x90CC00, 0x400)), kernel=b"k")
    assert p.digest is not None and any("not in the first page" in m for m in warnings(p))


# -- options and image sizes ---------------------------------------------------------------------
@pytest.mark.parametrize("kw,message", [
    ({"vcpus": 0}, "between 1 and 4096"),
    ({"vcpus": 4097}, "between 1 and 4096"),
    ({"vcpu_sig": -1}, "not a 32-bit CPUID value"),
    ({"vcpu_sig": 1 << 32}, "not a 32-bit CPUID value"),
    ({"guest_features": 1 << 64}, "do not fit SEV_FEATURES"),
    ({"initrd": b"i"}, "without a kernel"),
    ({"append": "x"}, "without a kernel"),
])
def test_snp_bad_options(kw, message):
    p = predict(crafted_image(), **kw)
    assert p.digest is None and any(message in m for m in errors(p))


@pytest.mark.parametrize("size", [0, 1, 0x31, 0x1000 - 1, 0x1001])
def test_snp_tiny_or_unaligned_images(size):
    img = crafted_image()[-size:] if size else b""
    p = predict(img)
    check_contract(p, len(img))
    assert p.digest is None


# -- random and truncated variants ---------------------------------------------------------------
def test_snp_truncated_real_image():
    data = bookworm("OVMF.fd").read_bytes()
    rng = random.Random(56860)
    cuts = [0x1000 * rng.randrange(1, len(data) // 0x1000) for _ in range(20)]
    for cut in cuts:
        for img in (data[:cut], data[-cut:]):
            p = predict(img)
            check_contract(p, len(img))
            # Cut from the front the table survives but the descriptor may not; cut from the back
            # there is no table: either way no digest unless the descriptor is still inside.
            if p.digest is not None:
                assert img == data[-cut:] and cut > 0x52C


def test_snp_random_bytes_in_table_and_descriptor():
    img = crafted_image()
    rng = random.Random(0x5EF)
    # The bytes that are parsed: the descriptor and its sections, and the GUIDed table with its footer.
    hot = [*range(DESCRIPTOR_AT, DESCRIPTOR_AT + 16 + 12 * len(CRAFTED_SECTIONS)), *range(SIZE - 0x120, SIZE - 0x20)]
    for _ in range(300):
        b = bytearray(img)
        for _ in range(rng.randrange(1, 6)):
            b[rng.choice(hot)] = rng.randrange(256)
        p = predict(bytes(b), vcpus=rng.choice([1, 3]), kernel=rng.choice([None, b"kernel"]))
        check_contract(p, len(b))
