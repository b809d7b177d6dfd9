"""decoders.fd on bad input: hand-built volumes (packed with struct from the PI spec) and
hypothesis mutations of Debian's real OVMF.fd. Always a Node tree with located problems, never
an exception, a hang or an unbounded allocation."""
from __future__ import annotations

import json
import lzma
import struct
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decoders import budget
from decoders.fd import decode_fv, decode_image, sections
from decoders.model import Node, Severity, Space
from tests.realdata import bookworm

FFS2 = uuid.UUID("8c8ce578-8a3d-4f1c-9935-896185c32dd3")
FFS3 = uuid.UUID("5473c07a-3dcb-4dca-bd6f-1e9689e7349a")
LZMA_GUID = uuid.UUID("ee4e5898-3914-4259-9d6e-dc7bd79403cf")
LZMAF86_GUID = uuid.UUID("d42ae6bd-1352-4bfb-909a-ca72a6eae889")
BROTLI_GUID = uuid.UUID("3d532050-5cda-4fd0-879e-0f7f630d5afb")
TIANO_GUID = uuid.UUID("a31280ad-481e-41b6-95e8-127f4c984779")
CRC32_GUID = uuid.UUID("fc1bcdb0-7d31-49aa-936a-a4600d9dd083")
A = uuid.UUID("11111111-2222-3333-4444-555555555555")
B = uuid.UUID("66666666-7777-8888-9999-aaaaaaaaaaaa")
ERASE1 = 0x0004FEFF   # OVMF's FV attributes: ERASE_POLARITY and friends, alignment 2^4


# -- builders ---------------------------------------------------------------------------------

# Layouts packed from PI spec 1.8 vol 3 (MdePkg/Include/Pi/PiFirmwareFile.h, PiFirmwareVolume.h),
# not from the decoder's own declarations.
FFS_ATTRIB_LARGE_FILE, FFS_ATTRIB_CHECKSUM, FFS_FIXED_CHECKSUM = 0x01, 0x40, 0xAA


def section(typ: int, body: bytes) -> bytes:
    """EFI_COMMON_SECTION_HEADER: Size[3], Type."""
    return (4 + len(body)).to_bytes(3, "little") + bytes([typ]) + body


def stream(*secs: bytes) -> bytes:
    out = b""
    for s in secs:
        out += b"\0" * (-len(out) % 4) + s
    return out


def ui(text: str) -> bytes:
    return section(0x15, (text + "\0").encode("utf-16-le"))


def guided(guid: uuid.UUID, payload: bytes, attrs: int = 1, extra: bytes = b"") -> bytes:
    # EFI_GUID_DEFINED_SECTION after the common header: SectionDefinitionGuid, DataOffset, Attributes.
    tail = guid.bytes_le + struct.pack("<HH", 0x18 + len(extra), attrs)
    return section(0x02, tail + extra + payload)


def lzma_payload(data: bytes, declared: int | None = None) -> bytes:
    packed = lzma.compress(data, format=lzma.FORMAT_ALONE)
    size = len(data) if declared is None else declared
    return packed[:5] + size.to_bytes(8, "little") + packed[13:]


def ffs(name: uuid.UUID, typ: int, body: bytes, attrs: int = 0, state: int = 0xF8) -> bytes:
    # EFI_FFS_FILE_HEADER: Name, IntegrityCheck {Header, File}, Type, Attributes, Size[3], State;
    # EFI_FFS_FILE_HEADER2 (FFS_ATTRIB_LARGE_FILE) adds ExtendedSize:u64 and leaves Size 0.
    large = attrs & FFS_ATTRIB_LARGE_FILE
    hsize = 0x20 if large else 0x18
    size = 0 if large else hsize + len(body)
    raw = bytearray(name.bytes_le + struct.pack("<BBBB", 0, FFS_FIXED_CHECKSUM, typ, attrs)
                    + size.to_bytes(3, "little") + bytes([state]))
    if large:
        raw += struct.pack("<Q", hsize + len(body))
    if attrs & FFS_ATTRIB_CHECKSUM:
        raw[0x11] = -sum(body) & 0xFF
    # PI vol 3 2.2.3: the header sums to 0 with State and IntegrityCheck.File taken as 0.
    raw[0x10] = -(sum(raw) - raw[0x17] - raw[0x11]) & 0xFF
    return bytes(raw) + body


def fv(files: list[bytes], length: int = 0x1000, fs: uuid.UUID = FFS2, attrs: int = ERASE1,
       fv_length: int | None = None, header_length: int = 0x48) -> bytes:
    body = b""
    for f in files:
        body += b"\xff" * (-len(body) % 8) + f
    # EFI_FIRMWARE_VOLUME_HEADER: ZeroVector[16], FileSystemGuid, FvLength:u64, Signature, Attributes:u32,
    # HeaderLength:u16, Checksum:u16, ExtHeaderOffset:u16, Reserved:u8, Revision:u8, then BlockMap[].
    hdr = bytearray(bytes(16) + fs.bytes_le + struct.pack("<Q4sIHHHBB", length if fv_length is None else fv_length,
                                                          b"_FVH", attrs, header_length, 0, 0, 0, 2))
    hdr += struct.pack("<II", 1, length) + struct.pack("<II", 0, 0)
    if header_length % 2 == 0 and header_length >= 0x48:
        hdr[0x32:0x34] = (-sum(memoryview(bytes(hdr)).cast("H")) & 0xFFFF).to_bytes(2, "little")
    out = bytes(hdr) + body
    assert len(out) <= length, "builder: files do not fit"
    return out + b"\xff" * (length - len(out))


def decode(blob: bytes) -> Node:
    return decode_fv(Space("t", blob), 0)


def errors(node: Node) -> list[str]:
    return [f"0x{p.offset:x}: {p.message}" if p.offset is not None else p.message
            for _, p in node.all_problems() if p.severity is Severity.ERROR]


def problems_at(node: Node, offset: int) -> list[str]:
    return [p.message for _, p in node.all_problems() if p.offset == offset]


GOOD_FILE = ffs(A, 0x07, stream(section(0x19, b"raw!"), ui("Good")))


# -- hand-built volumes ----------------------------------------------------------------------

def test_wellformed_volume_decodes_cleanly():
    node = decode(fv([GOOD_FILE]))
    assert errors(node) == []
    (f,) = [c for c in node.children if c.kind == "ffs"]
    assert f.get("Name") == A and f.get("UI") == "Good" and "Good" in f.title
    assert [c.kind for c in node.children] == ["ffs", "free-space"]
    assert f.field("State").display.startswith("0xf8 -> 0x07")


def test_bad_volume_checksum_is_located_at_the_checksum_field():
    blob = bytearray(fv([GOOD_FILE]))
    blob[0x32] ^= 1
    assert any("checksum" in m for m in problems_at(decode(bytes(blob)), 0x32))


def test_fvlength_zero_falls_back_to_the_block_map():
    node = decode(fv([GOOD_FILE], fv_length=0))
    assert any("FvLength" in m for m in problems_at(node, 0x20))
    assert node.size == 0x1000 and any(c.kind == "ffs" for c in node.children)


def test_fvlength_past_the_buffer_is_clamped():
    node = decode(fv([GOOD_FILE], fv_length=0x100000))
    assert node.size == 0x1000
    assert any("past the end" in m for m in problems_at(node, 0x20))


def test_header_length_too_small_is_a_problem():
    node = decode(fv([GOOD_FILE], header_length=0x20))
    assert any("HeaderLength" in m for m in problems_at(node, 0x30))
    assert any(c.kind == "ffs" and c.get("Name") == A for c in node.children)


def test_truncated_header_is_a_problem_not_an_exception():
    for n in (0, 1, 0x37, 0x40):
        node = decode(fv([GOOD_FILE])[:n])
        assert node.kind == "fv" and node.problems


def test_file_header_checksum_mismatch():
    f = bytearray(GOOD_FILE)
    f[0x10] ^= 0x55
    node = decode(fv([bytes(f)]))
    assert any("header checksum" in m for m in problems_at(node, 0x48 + 0x10))


def test_file_data_checksum_verified_when_attribute_set():
    good = ffs(A, 0x07, stream(ui("X")), attrs=FFS_ATTRIB_CHECKSUM)
    assert errors(decode(fv([good]))) == []
    bad = bytearray(good)
    bad[-3] ^= 1                                   # a data byte; the header checksum is unaffected
    assert any("data checksum" in m for m in problems_at(decode(fv([bytes(bad)])), 0x48 + 0x11))


def test_fixed_checksum_must_be_0xaa_without_checksum_attribute():
    f = bytearray(GOOD_FILE)
    f[0x11] = 0x00
    f[0x10] = (f[0x10] + 0) & 0xFF                 # .File is excluded from the header sum
    assert any("0xAA" in m for m in problems_at(decode(fv([bytes(f)])), 0x48 + 0x11))


@pytest.mark.parametrize("size", [0, 0x10, 0xFFFFFF, 0x1000])
def test_bad_file_size_ends_the_walk_with_a_problem(size):
    f = bytearray(GOOD_FILE)
    f[0x14:0x17] = size.to_bytes(3, "little")
    node = decode(fv([bytes(f), ffs(B, 0x07, b"")]))
    assert any("file size" in m for m in problems_at(node, 0x48 + 0x14))
    assert not any(c.get("Name") == B for c in node.children)


@pytest.mark.parametrize("size", [0, 2, 0xFFFFFF, 0x7000])
def test_bad_section_size_ends_the_section_walk(size):
    body = bytearray(stream(section(0x19, b"raw!"), ui("Good")))
    body[0:3] = size.to_bytes(3, "little")
    node = decode(fv([ffs(A, 0x07, bytes(body))]))
    (f,) = [c for c in node.children if c.kind == "ffs"]
    assert len([c for c in f.children if c.kind == "section"]) == 1
    assert problems_at(node, 0x48 + 0x18)


def test_dirty_free_space_is_reported_at_the_dirty_byte():
    blob = bytearray(fv([GOOD_FILE]))
    blob[0xE00] = 0x12
    node = decode(bytes(blob))
    (free,) = [c for c in node.children if c.kind == "free-space"]
    assert [p.offset for p in free.problems] == [0xE00]


@pytest.mark.parametrize("buffer", [bytes, memoryview])
@pytest.mark.parametrize("dirty", [0x48 + 0x1000, 0x41000 + 0x123, 0x9FFFF])
def test_dirty_byte_deep_in_a_large_free_space_is_found(buffer, dirty):
    """Free space of megabytes (a real DXEFV's) is checked to its last byte: a data byte past the
    first blocks of it, or the very last byte of the volume, is reported where it is."""
    blob = bytearray(fv([GOOD_FILE], length=0xA0000))
    blob[dirty] = 0x5A
    node = decode_fv(Space("big", buffer(bytes(blob))), 0)
    (free,) = [c for c in node.children if c.kind == "free-space"]
    assert [p.offset for p in free.problems] == [dirty]
    clean = decode_fv(Space("big", buffer(bytes(fv([GOOD_FILE], length=0xA0000)))), 0)
    assert [p for c in clean.children if c.kind == "free-space" for p in c.problems] == []


def test_volume_in_a_memoryview_space():
    """decode_fv works on any buffer, e.g. a memoryview over a dump."""
    blob = bytearray(fv([GOOD_FILE]))
    assert errors(decode_fv(Space("m", memoryview(bytes(blob))), 0)) == []
    blob[0xF00] = 0x01
    node = decode_fv(Space("m", memoryview(bytes(blob))), 0)
    assert [p.offset for c in node.children if c.kind == "free-space" for p in c.problems] == [0xF00]


def test_duplicate_file_names_warn():
    node = decode(fv([GOOD_FILE, GOOD_FILE]))
    warns = [p for _, p in node.all_problems() if p.severity is Severity.WARNING and "duplicates" in p.message]
    assert len(warns) == 1


def test_ffs3_large_file_uses_extended_size():
    big = ffs(B, 0x07, stream(section(0x19, b"\x00" * 0x20), ui("Large")), attrs=FFS_ATTRIB_LARGE_FILE)
    node = decode(fv([big], fs=FFS3))
    f = next(c for c in node.children if c.kind == "ffs")
    assert f.get("ExtendedSize") == len(big) and f.get("UI") == "Large"
    assert errors(node) == []


def test_section_with_extended_size_header():
    body = b"\xAB" * 16
    sec = b"\xff\xff\xff\x19" + struct.pack("<I", 8 + len(body)) + body   # EFI_COMMON_SECTION_HEADER2
    node = decode(fv([ffs(A, 0x07, sec)]))
    s = next(node.find("section"))
    assert s.get("ExtendedSize") == 24 and s.size == 24 and errors(node) == []


def test_crc32_section_checked():
    inner = stream(ui("Crc"))
    import zlib
    good = guided(CRC32_GUID, inner, attrs=2, extra=zlib.crc32(inner).to_bytes(4, "little"))
    node = decode(fv([ffs(A, 0x07, good)]))
    assert errors(node) == [] and next(node.find("ffs")).get("UI") == "Crc"
    bad = guided(CRC32_GUID, inner, attrs=2, extra=(zlib.crc32(inner) ^ 1).to_bytes(4, "little"))
    assert any("CRC32 mismatch" in e for e in errors(decode(fv([ffs(A, 0x07, bad)]))))


def test_every_compression_decodes_into_a_new_space():
    import brotli
    from uefi_firmware import efi_compressor
    inner = stream(section(0x19, b"\xe8\x10\x00\x00\x00" * 8), ui("Inner"))
    bcj = lzma.decompress(lzma.compress(inner, format=lzma.FORMAT_RAW,
                                        filters=[{"id": lzma.FILTER_X86}, {"id": lzma.FILTER_LZMA2}]),
                          format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}])
    secs = {
        "lzma": guided(LZMA_GUID, lzma_payload(inner)),
        "lzmaf86": guided(LZMAF86_GUID, lzma_payload(bcj)),
        "brotli": guided(BROTLI_GUID, len(inner).to_bytes(8, "little") + bytes(8) + brotli.compress(inner)),
        "tiano": guided(TIANO_GUID, efi_compressor.TianoCompress(inner, len(inner))),
        "efi": section(0x01, len(inner).to_bytes(4, "little") + b"\x01" + efi_compressor.EfiCompress(inner, len(inner))),
    }
    for label, sec in secs.items():
        node = decode(fv([ffs(A, 0x07, sec)], length=0x2000))
        assert errors(node) == [], label
        outer = next(node.find("section"))
        raw = next(s for s in outer.children if s.get("Type") == 0x19)
        assert raw.space.name == f"t/{label}@0x60" and raw.space.parent is outer
        assert raw.bytes[4:] == b"\xe8\x10\x00\x00\x00" * 8, label
        assert next(node.find("ffs")).get("UI") == "Inner"


def test_lzma_bomb_declared_too_big_is_refused_quickly():
    sec = guided(LZMA_GUID, lzma_payload(b"\0" * 1000, declared=1 << 40))
    node = decode(fv([ffs(A, 0x07, sec)]))
    assert "0x78: lzma payload not decompressed: it declares 0x10000000000 bytes, over the 0x4000000-byte limit " \
           "for one blob" in errors(node)


def test_lzma_bomb_holding_more_than_declared_stops_at_the_bound():
    sec = guided(LZMA_GUID, lzma_payload(b"\0" * (40 << 20), declared=1 << 20))   # ~6 KiB packed
    node = decode(fv([ffs(A, 0x07, sec)], length=0x10000))
    assert any("more than" in e for e in errors(node))


def test_total_decompressed_budget_stops_decompression(monkeypatch):
    monkeypatch.setattr(sections, "MAX_TOTAL_DECOMPRESSED", 1 << 20)
    secs = stream(*[guided(LZMA_GUID, lzma_payload(section(0x19, bytes([i]) * 400_000))) for i in range(3)])
    node = decode(fv([ffs(A, 0x07, secs)], length=0x2000))
    assert sum("total decompressed size" in e for e in errors(node)) == 1


def test_self_nesting_volumes_stop_at_the_depth_limit():
    """A volume nested in LZMA in a volume, 40 levels deep: decoding stops at the budget's depth."""
    blob = fv([GOOD_FILE])
    for _ in range(40):
        blob = fv([ffs(A, 0x0B, guided(LZMA_GUID, lzma_payload(section(0x17, blob))))],
                  length=0x1000 + (len(blob) // 0x1000) * 0x1000)
    node = decode(blob)
    assert any("nesting deeper than 16" in e for e in errors(node))
    assert max(_depth(node), 0) <= 4 * (budget.DEFAULT.depth + 2)


def _depth(node: Node) -> int:
    best, stack = 0, [(node, 0)]
    while stack:
        n, d = stack.pop()
        best = max(best, d)
        stack.extend((c, d + 1) for c in n.children)
    return best


def test_volume_image_section_smaller_than_its_volume_is_clamped():
    inner = bytearray(fv([GOOD_FILE]))
    node = decode(fv([ffs(A, 0x0B, section(0x17, bytes(inner[:0x200])))], length=0x2000))
    nested = [v for v in node.find("fv")][1]
    assert nested.size == 0x200 and any("FvLength" in p.message for p in nested.problems)


def test_image_scan_of_garbage_and_empty_input():
    for blob in (b"", b"_FVH", b"\xff" * 0x1000, b"\x00" * 0x27 + b"_FVH" + b"\x01" * 0x100):
        image = decode_image(blob)
        assert image.kind == "image" and image.problems
        assert sum(c.size for c in image.children) == len(blob)


def test_image_regions_between_volumes():
    blob = b"\xff" * 0x1000 + fv([GOOD_FILE]) + b"junk" * 0x100 + fv([GOOD_FILE])
    image = decode_image(blob)
    assert [(c.kind, c.offset, c.size) for c in image.children] == [
        ("padding", 0, 0x1000), ("fv", 0x1000, 0x1000), ("unknown", 0x2000, 0x400), ("fv", 0x2400, 0x1000)]
    assert image.children[2].problems


@pytest.mark.parametrize("bad", [0, 0xFFFFFFFF, 0x10])
def test_bad_fvlength_in_real_image_does_not_swallow_the_next_volumes(bad):
    """OVMF.fd's VARS volume with a broken FvLength: FVMAIN_COMPACT and SECFV (OvmfPkg/OvmfPkgDefines.fdf.inc) still
    decode at their offsets, and the problem sits on the FvLength field."""
    data = bytearray(bookworm("OVMF.fd").read_bytes())
    data[0x20:0x28] = bad.to_bytes(8, "little")
    image = decode_image(bytes(data))
    fvs = [c for c in image.children if c.kind == "fv"]
    assert [v.offset for v in fvs] == [0, 0x20000, 0x1CC000]
    assert fvs[0].size == 0x20000
    assert any("FvLength" in p.message for p in fvs[0].problems if p.offset == 0x20)


# -- hypothesis: mutations of the real OVMF.fd -----------------------------------------------

_MY_KINDS = {"image", "fv", "ffs", "section", "free-space", "padding", "unknown", "data", "fv-ext-header",
             "fv-ext-entry"}
_real: dict[str, object] = {}


def _ovmf() -> tuple[bytes, list[int]]:
    if "data" not in _real:
        data = bookworm("OVMF.fd").read_bytes()
        image = decode_image(data)
        # Where to aim mutations: every header field of the clean decode that lies in flash.
        spots = sorted({f.offset for n in image.walk() if n.space is image.space and n.kind in _MY_KINDS
                        for f in n.fields if f.offset is not None})
        _real["data"], _real["spots"] = data, spots
    return _real["data"], _real["spots"]


def _check(image: Node) -> None:
    assert image.kind == "image"
    for n in image.walk():
        if n.kind not in _MY_KINDS or n.space is None or n.space.data is None:
            continue
        assert 0 <= n.offset and 0 <= n.size and n.offset + n.size <= len(n.space.data), n.title
        for p in n.problems:
            assert p.offset is None or 0 <= p.offset <= len(n.space.data), (n.title, str(p))
    json.dumps(image.to_json())


MUTATIONS = st.lists(st.tuples(st.integers(0, 10 ** 6), st.sampled_from(["flip", "zero24", "ff24", "huge32", "rand"]),
                               st.integers(1, 255)), min_size=1, max_size=4)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True,
          database=None)
@given(MUTATIONS, st.one_of(st.none(), st.integers(0, 0x200000)))
def test_mutated_ovmf_always_decodes_to_a_tree(mutations, truncate_at):
    data, spots = _ovmf()
    blob = bytearray(data)
    for pick, kind, val in mutations:
        off = spots[pick % len(spots)]
        if kind == "flip":
            blob[off] ^= val
        elif kind == "zero24":
            blob[off:off + 3] = b"\0\0\0"
        elif kind == "ff24":
            blob[off:off + 3] = b"\xff\xff\xff"
        elif kind == "huge32":
            blob[off:off + 4] = b"\xff\xff\xff\x7f"
        else:
            blob[pick % len(blob)] ^= val
    if truncate_at is not None:
        del blob[truncate_at:]
    _check(decode_image(bytes(blob[:len(blob)]) if len(blob) else b""))
