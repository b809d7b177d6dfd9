"""Byte search (inspector.find): how patterns are read, exact hits in crafted trees and images, and
every hit on real images checked against a plain bytes.find over the same spaces.

Crafted images are PI spec vol 3 volumes, files and sections written with struct.pack
(tests/hostile/test_fd_hostile.py); GUIDs are written in EFI_GUID byte order (UEFI 2.10 appendix A:
UINT32 Data1, UINT16 Data2, UINT16 Data3 little-endian, then Data4[8]) with struct.pack, not with
the code under test.
"""
from __future__ import annotations

import re
import struct

import pytest

from decoders.fd import decode_image
from decoders.memory import BytesMemory, MemoryBytes
from decoders.model import Node, Space
from inspector.find import DEFAULT_LIMIT, Hit, PatternError, find, parse_pattern
from inspector.nodes_at import NodeIndex
from tests.hostile import test_fd_hostile as F
from tests.realdata import bookworm, firmware

GUID_TEXT = "8c8ce578-8a3d-4f1c-9935-896185c32dd3"


def efi_guid_bytes(text: str) -> bytes:
    """EFI_GUID in memory: Data1 u32, Data2 u16, Data3 u16 little-endian, Data4 as written."""
    d1, d2, d3, d4a, d4b = text.split("-")
    return struct.pack("<IHH", int(d1, 16), int(d2, 16), int(d3, 16)) + bytes.fromhex(d4a + d4b)


def rfc_guid_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace("-", ""))


def oracle(data: bytes, needle: bytes) -> list[int]:
    """Every start offset of `needle`, overlapping: a plain bytes.find loop."""
    out, at = [], data.find(needle)
    while at >= 0:
        out.append(at)
        at = data.find(needle, at + 1)
    return out


# -- reading patterns ----------------------------------------------------------------------------------
class TestParse:
    def test_bare_hex_with_wildcards_and_spaces(self):
        p = parse_pattern("4d 5a ?? 00")
        assert p.kind == "hex" and [v.name for v in p.variants] == ["hex"]
        assert p.variants[0].items == (0x4D, 0x5A, None, 0x00)
        assert "hex" in p.describe()

    def test_hex_prefix_is_hex_even_when_it_looks_like_text(self):
        assert parse_pattern("hex:cafe").variants[0].items == (0xCA, 0xFE)

    def test_bare_guid_is_a_guid_in_both_byte_orders(self):
        p = parse_pattern(GUID_TEXT)
        assert p.kind == "guid"
        got = {v.name: bytes(v.items) for v in p.variants}
        assert got == {"guid-efi": efi_guid_bytes(GUID_TEXT), "guid-rfc4122": rfc_guid_bytes(GUID_TEXT)}
        assert got["guid-efi"].hex() == "78e58c8c3d8a1c4f9935896185c32dd3"
        assert "GUID" in p.describe()

    def test_guid_in_braces_and_upper_case(self):
        p = parse_pattern("guid:{" + GUID_TEXT.upper() + "}")
        assert bytes(p.variants[0].items) == efi_guid_bytes(GUID_TEXT)

    def test_bare_words_are_text_in_ascii_and_utf16le(self):
        p = parse_pattern("PlatformPei")
        assert p.kind == "text"
        got = {v.name: bytes(v.items) for v in p.variants}
        assert got == {"ascii": b"PlatformPei", "utf-16le": "PlatformPei".encode("utf-16-le")}
        assert "text" in p.describe()

    def test_odd_hex_digits_bare_are_text(self):
        assert parse_pattern("abc").kind == "text"

    def test_forced_encodings(self):
        assert [v.name for v in parse_pattern("ascii:MZ").variants] == ["ascii"]
        assert [bytes(v.items) for v in parse_pattern("utf16:MZ").variants] == [b"M\0Z\0"]

    def test_non_ascii_text_is_searched_in_utf8_and_utf16(self):
        got = {v.name: bytes(v.items) for v in parse_pattern("text:Größe").variants}
        assert got == {"utf-8": "Größe".encode(), "utf-16le": "Größe".encode("utf-16-le")}

    @pytest.mark.parametrize("text,packed", [
        ("u32:0x810000", struct.pack("<I", 0x810000)),
        ("u32:4294967280", struct.pack("<I", 0xFFFFFFF0)),
        ("u16:0xaa55", struct.pack("<H", 0xAA55)),
        ("u64:0xfffffff0", struct.pack("<Q", 0xFFFFFFF0)),
        ("u8:255", b"\xff"),
    ])
    def test_integers_little_endian(self, text, packed):
        p = parse_pattern(text)
        assert [bytes(v.items) for v in p.variants] == [packed]
        assert p.variants[0].name == text.split(":")[0]

    @pytest.mark.parametrize("text,words", [
        ("", "empty"), ("   ", "empty"), ("hex:", "empty"), ("text:", "empty"),
        ("hex:4d5", "odd"), ("hex:zz", "not hex"), ("hex:4d 5?", "not hex"), ("hex:+1", "not hex"),
        ("u32:0x100000000", "does not fit"), ("u16:-1", "does not fit"), ("u32:twelve", "not a number"),
        ("guid:1234", "not a GUID"), ("0x810000", "ambiguous"), ("ascii:Größe", "not ASCII"),
    ])
    def test_bad_patterns_say_what_is_wrong(self, text, words):
        with pytest.raises(PatternError) as e:
            parse_pattern(text)
        assert words in str(e.value)

    def test_all_wildcards_is_allowed(self):
        assert parse_pattern("?? ??").variants[0].items == (None, None)

    def test_too_long_is_refused(self):
        with pytest.raises(PatternError, match="longer than"):
            parse_pattern("00" * 5000)


# -- crafted trees -------------------------------------------------------------------------------------
def two_space_tree():
    """An image space with a volume and two files, and a blob space (child of a section) with one
    node: the shape decoders.fd builds for a compressed section."""
    image = bytearray(b"\xff" * 0x200)
    image[0x10:0x12] = b"MZ"
    image[0x100:0x104] = struct.pack("<I", 0x810000)
    image[0x1FE:0x200] = b"MZ"                       # straddles nothing: inside the second file
    blob = bytearray(0x80)
    blob[0x40:0x44] = b"MZ\0\0"
    blob[0x7E:0x80] = b"MZ"                          # the very last bytes of the blob
    s_img = Space("img", bytes(image), 0xFFFFFE00)
    root = Node("image", "img", s_img, 0, 0x200)
    fv = root.append(Node("fv", "volume", s_img, 0, 0x200))
    f1 = fv.append(Node("ffs", "file one", s_img, 0x8, 0xF8))
    sec = f1.append(Node("section", "compressed section", s_img, 0x20, 0x20))
    f2 = fv.append(Node("ffs", "file two", s_img, 0x100, 0x100))
    s_blob = Space("img/lzma@0x20", bytes(blob), None, sec)
    inner = sec.append(Node("section", "raw in blob", s_blob, 0x38, 0x48))
    return root, s_img, s_blob, fv, f1, sec, f2, inner


class TestCrafted:
    def test_exact_hits_spaces_and_paths(self):
        root, s_img, s_blob, fv, f1, sec, f2, inner = two_space_tree()
        r = find(root, parse_pattern("ascii:MZ"))
        assert r.spaces == 2 and not r.truncated and r.problems == []
        assert [(h.space.name, h.offset, h.length, h.variant) for h in r.hits] == [
            ("img", 0x10, 2, "ascii"), ("img", 0x1FE, 2, "ascii"),
            ("img/lzma@0x20", 0x40, 2, "ascii"), ("img/lzma@0x20", 0x7E, 2, "ascii")]
        assert r.hits[0].path == [f1, fv, root]
        assert r.hits[1].path == [f2, fv, root]
        assert r.hits[2].path == [inner]
        assert r.hits[2].chain() == [inner, sec, f1, fv, root]
        assert r.hits[0].address == 0xFFFFFE10 and r.hits[2].address is None

    def test_text_finds_both_encodings_in_offset_order(self):
        root, *_ = two_space_tree()
        r = find(root, parse_pattern("MZ"))
        # "MZ\0\0" in the blob: ascii at 0x40 only; UTF-16 "M\0Z\0" nowhere.
        assert [(h.offset, h.variant) for h in r.hits if h.space.name.endswith("0x20")] == [(0x40, "ascii"), (0x7E, "ascii")]

    def test_integer_hit_names_the_file(self):
        root, s_img, s_blob, fv, f1, sec, f2, inner = two_space_tree()
        r = find(root, parse_pattern("u32:0x810000"))
        assert [(h.offset, h.node) for h in r.hits] == [(0x100, f2)]

    def test_hit_across_two_files_is_held_by_their_volume(self):
        data = b"\x00" * 8 + b"ABCD" + b"\x00" * 4
        s = Space("s", data)
        root = Node("image", "r", s, 0, 16)
        a = root.append(Node("ffs", "a", s, 0, 10))
        root.append(Node("ffs", "b", s, 10, 6))
        (hit,) = find(root, parse_pattern("ascii:ABCD")).hits
        assert hit.path == [root]
        (hit,) = find(root, parse_pattern("ascii:AB")).hits
        assert hit.path == [a, root]

    def test_overlapping_hits_are_each_start(self):
        s = Space("s", b"\xaa" * 5)
        root = Node("image", "r", s, 0, 5)
        assert [h.offset for h in find(root, parse_pattern("aaaa")).hits] == [0, 1, 2, 3]

    def test_guid_hits_say_which_byte_order(self):
        efi, rfc = efi_guid_bytes(GUID_TEXT), rfc_guid_bytes(GUID_TEXT)
        data = b"\0" * 4 + efi + b"\0" * 4 + rfc + b"\0" * 4
        s = Space("s", data)
        root = Node("image", "r", s, 0, len(data))
        r = find(root, parse_pattern(GUID_TEXT))
        assert [(h.offset, h.variant, h.length) for h in r.hits] == [(4, "guid-efi", 16), (24, "guid-rfc4122", 16)]

    def test_limit_truncates_in_space_then_offset_order(self):
        root, *_ = two_space_tree()
        r = find(root, parse_pattern("ascii:MZ"), limit=3)
        assert r.truncated and len(r.hits) == 3
        assert [(h.space.name, h.offset) for h in r.hits] == [("img", 0x10), ("img", 0x1FE), ("img/lzma@0x20", 0x40)]
        r = find(root, parse_pattern("ascii:MZ"), limit=4)
        assert not r.truncated and len(r.hits) == 4

    def test_all_wildcards_match_everywhere_but_are_bounded(self):
        s = Space("s", bytes(100_000))
        root = Node("image", "r", s, 0, 100_000)
        r = find(root, parse_pattern("??"), limit=1000)
        assert r.truncated and [h.offset for h in r.hits] == list(range(1000))
        r = find(root, parse_pattern("??"))
        assert r.truncated and len(r.hits) == DEFAULT_LIMIT
        tiny = Node("image", "t", Space("t", b"\x01"), 0, 1)
        r = find(tiny, parse_pattern("?? ??"))
        assert r.hits == [] and not r.truncated

    def test_leading_and_trailing_wildcards_stay_inside_the_space(self):
        data = b"MZ\x00MZ\x01MZ"
        root = Node("image", "r", Space("s", data), 0, len(data))
        assert [h.offset for h in find(root, parse_pattern("?? 4d 5a")).hits] == [2, 5]
        assert [h.offset for h in find(root, parse_pattern("4d 5a ??")).hits] == [0, 3]
        assert [h.offset for h in find(root, parse_pattern("?? 4d 5a ??")).hits] == [2]

    def test_costly_search_stops_at_its_time_limit_with_a_located_problem(self):
        data = bytes(4 << 20)
        root = Node("image", "r", Space("zeros", data), 0, len(data))
        r = find(root, parse_pattern("hex:" + "00" * 300 + "?? 01"), time_limit=0)
        assert r.truncated and r.hits == []
        assert len(r.problems) == 1 and r.problems[0].startswith("zeros: search stopped at offset 0x")
        # Hits before the cut are kept; without a limit the same search finishes.
        data2 = b"\x00\x07\x01" + bytes(16 << 20)   # more than one 4 MiB window
        root2 = Node("image", "r", Space("z", data2), 0, len(data2))
        r = find(root2, parse_pattern("00 ?? 01"), time_limit=0)
        assert [h.offset for h in r.hits] == [0] and r.truncated
        r = find(root2, parse_pattern("00 ?? 01"))
        assert [h.offset for h in r.hits] == [0] and not r.truncated and r.problems == []

    def test_space_read_through_memory_is_a_problem_not_searched(self):
        mem = Space("physical memory", MemoryBytes(BytesMemory(b"MZ" * 8, 0), 0, 16), 0)
        root = Node("dump", "d", None, 0, 0)
        root.append(Node("memory", "phys", mem, 0, 16))
        r = find(root, parse_pattern("ascii:MZ"))
        assert r.hits == [] and r.spaces == 0
        assert len(r.problems) == 1 and "physical memory" in r.problems[0]

    def test_dump_physical_memory_is_searched_by_region_across_chunks(self, tmp_path, monkeypatch):
        import inspector.find as find_module
        from inspector.sources import load_source
        from tests.inspector.test_dump import build_elf, note, prstatus64

        monkeypatch.setattr(find_module, "MEMORY_CHUNK", 0x1000)       # many chunks in a small dump
        seg1 = bytearray(0x3000)
        seg1[0x100:0x106] = b"needle"
        seg1[0xFFE:0x1004] = b"needle"                                 # across a chunk boundary
        seg1[-3:] = b"nee"                                             # across two adjacent PT_LOADs
        seg2 = bytearray(0x1000)
        seg2[:3] = b"dle"
        core = build_elf([(0x100000, bytes(seg1)), (0x103000, bytes(seg2)), (0x200000, b"xxneedlexx")],
                         note(b"CORE", 1, prstatus64()))
        (tmp_path / "core.elf").write_bytes(core)
        _, root = load_source(tmp_path / "core.elf")
        r = find(root, parse_pattern("ascii:needle"))
        assert [(h.space.name, h.address) for h in r.hits] == [
            ("physical memory", 0x100100), ("physical memory", 0x100FFE), ("physical memory", 0x102FFD),
            ("physical memory", 0x200002)]
        assert r.spaces == 1 and r.problems == [] and not r.truncated
        assert r.hits[0].node.kind == "memory"

    def test_space_without_bytes_is_skipped_quietly(self):
        root = Node("dump", "d", Space("core.elf", None), 0, 0)
        root.append(Node("x", "x", Space("s", b"MZ"), 0, 2))
        r = find(root, parse_pattern("ascii:MZ"))
        assert r.spaces == 1 and r.problems == [] and len(r.hits) == 1

    def test_each_space_searched_once(self):
        s = Space("s", b"xMZx")
        root = Node("image", "r", s, 0, 4)
        for i in range(5):
            root.append(Node("ffs", f"f{i}", s, 0, 4))
        r = find(root, parse_pattern("ascii:MZ"))
        assert r.spaces == 1 and len(r.hits) == 1

    def test_hit_equality_and_json(self):
        root, *_ = two_space_tree()
        r = find(root, parse_pattern("ascii:MZ"))
        j = r.hits[2].to_json()
        assert j["space"] == "img/lzma@0x20" and j["offset"] == 0x40 and "address" not in j
        assert [p["title"] for p in j["path"]] == ["img", "volume", "file one", "compressed section", "raw in blob"]
        assert r.hits[0] == Hit(r.hits[0].space, 0x10, 2, "ascii")


class TestWildcardsAgainstRegex:
    @pytest.mark.parametrize("pattern", ["4d ?? 00", "?? 00 ff", "00 ?? ?? 01", "ff ff ?? ?? ?? 00 00",
                                         "?? ?? 5a", "01 ??"])
    def test_wildcard_hits_equal_a_lookahead_regex(self, pattern):
        import random

        rng = random.Random(7)
        data = bytes(rng.choice(b"\x00\x01\x4d\x5a\xff") for _ in range(20_000))
        root = Node("image", "r", Space("s", data), 0, len(data))
        items = parse_pattern(pattern).variants[0].items
        rx = re.compile(b"(?=" + b"".join(b"." if b is None else re.escape(bytes([b])) for b in items) + b")", re.DOTALL)
        want = [m.start() for m in rx.finditer(data) if m.start() + len(items) <= len(data)]
        got = [h.offset for h in find(root, parse_pattern(pattern), limit=1_000_000).hits]
        assert got == want and want


# -- a crafted flash image with an LZMA section ---------------------------------------------------------
def crafted_image() -> bytes:
    name_a, name_b = F._name(1), F._name(2)
    inner_fv = F.fv([F.ffs_file(name_b, F.EFI_FV_FILETYPE_FREEFORM,
                                F.sections(F.section(F.EFI_SECTION_USER_INTERFACE, "InnerModule\0".encode("utf-16-le")),
                                           F.section(F.EFI_SECTION_RAW, b"\x00\x00needle\x00" + struct.pack("<I", 0x810000))))])
    blob = F.sections(F.section(F.EFI_SECTION_FIRMWARE_VOLUME_IMAGE, inner_fv))
    outer = F.fv([F.ffs_file(name_a, F.EFI_FV_FILETYPE_FREEFORM,
                             F.sections(F.section(F.EFI_SECTION_RAW, b"needle"),
                                        F.guided(F.LZMA_GUID, F.lzma_payload(blob))))])
    return outer + b"\xff" * (-len(outer) % 0x1000)


class TestCraftedImage:
    def test_decompressed_volume_is_searched_and_hits_name_their_nodes(self):
        data = crafted_image()
        root = decode_image(data, name="crafted.fd")
        r = find(root, parse_pattern("ascii:needle"))
        assert r.spaces == 2
        assert [(h.space is root.space, h.variant) for h in r.hits] == [(True, "ascii"), (False, "ascii")]
        outer_hit, inner_hit = r.hits
        assert outer_hit.offset == data.find(b"needle")
        assert outer_hit.node.kind == "section" and outer_hit.node.get("Type") == F.EFI_SECTION_RAW
        blob = inner_hit.space.data
        assert inner_hit.offset == bytes(blob).find(b"needle")
        assert [n.kind for n in inner_hit.path] == ["section", "ffs", "fv", "section"]
        chain = inner_hit.chain()
        assert chain[len(inner_hit.path)].get("Type") == F.EFI_SECTION_GUID_DEFINED
        assert chain[-1] is root
        (ui,) = find(root, parse_pattern("InnerModule")).hits
        assert ui.variant == "utf-16le" and ui.node.get("Type") == F.EFI_SECTION_USER_INTERFACE


# -- real images: every hit against bytes.find over the same spaces ------------------------------------
REAL_PATTERNS = ["MZ", GUID_TEXT, "PlatformPei", "u32:0xfffffff0", "text:DxeCore", "hex:50450000",
                 "ee4e5898-3914-4259-9d6e-dc7bd79403cf"]


def _real(which: str):
    from inspector.image import load_image

    path = bookworm("OVMF_CODE_4M.fd") if which == "bookworm" else firmware("ovmf-debug/OVMF.fd")
    return load_image(path)


@pytest.fixture(scope="module", params=["bookworm", "debug"])
def real(request):
    return _real(request.param)


def _independent_spaces(img) -> list:
    """The spaces to search, found without inspector.nodes_at: every distinct Node.space."""
    seen, out = set(), []
    for n in img.root.walk():
        if n.kind in ("image-info", "review"):
            continue
        if n.space is not None and id(n.space) not in seen:
            seen.add(id(n.space))
            out.append(n.space)
    return out


@pytest.mark.parametrize("text", REAL_PATTERNS)
def test_real_hits_equal_bytes_find_over_every_space(real, text):
    pattern = parse_pattern(text)
    r = find(real.root, pattern, limit=1_000_000)
    spaces = _independent_spaces(real)
    assert r.spaces == len(spaces) >= 2 and not r.truncated and r.problems == []
    want = []
    for s in spaces:
        data = bytes(s.data)
        for order, v in enumerate(pattern.variants):
            want += [(s.name, at, order, v.name) for at in oracle(data, bytes(v.items))]
    order_of = {s.name: i for i, s in enumerate(spaces)}
    want.sort(key=lambda t: (order_of[t[0]], t[1], t[2]))
    assert [(h.space.name, h.offset, h.variant) for h in r.hits] == [(a, b, d) for a, b, _, d in want]
    assert r.hits, f"{text}: expected hits in a real image"
    # Every hit's path holds the hit, innermost first.
    for h in r.hits[:200]:
        for n in h.path:
            assert n.space is h.space and n.offset <= h.offset and h.offset + h.length <= n.offset + n.size
        assert [n.size for n in h.path] == sorted(n.size for n in h.path)


@pytest.mark.parametrize("text", ["4d5a??00", "?? 50 45 00 00 ?? 86"])
def test_real_wildcard_hits_equal_a_lookahead_regex_over_every_space(real, text):
    items = parse_pattern(text).variants[0].items
    rx = re.compile(b"(?=" + b"".join(b"." if b is None else re.escape(bytes([b])) for b in items) + b")", re.DOTALL)
    r = find(real.root, parse_pattern(text), limit=1_000_000)
    want = [(s.name, m.start()) for s in _independent_spaces(real) for m in rx.finditer(bytes(s.data))]
    assert [(h.space.name, h.offset) for h in r.hits] == want and want


def test_real_first_volume_guid_hit_is_the_volume_header(real):
    r = find(real.root, parse_pattern(GUID_TEXT))
    first = r.hits[0]
    # EFI_FIRMWARE_VOLUME_HEADER.FileSystemGuid at +0x10, Signature at +0x28 (PI vol 3 3.2.1): the
    # first FFS2 volume (after the VARS volume in a unified image).
    assert first.variant == "guid-efi" and first.node.kind == "fv"
    assert first.offset == first.node.offset + 0x10
    assert bytes(first.space.data[first.offset + 0x18:first.offset + 0x1C]) == b"_FVH"


def test_real_ui_name_hits_are_user_interface_sections(real):
    hits = [h for h in find(real.root, parse_pattern("text:PlatformPei\0")).hits if h.variant == "utf-16le"]
    names = set()
    for hit in hits:
        assert hit.node.kind == "section" and hit.node.get("Type") == 0x15   # EFI_SECTION_USER_INTERFACE
        names.add(next(n for n in hit.path if n.kind == "ffs").get("UI"))
    assert names == {"PlatformPei", "Tcg2PlatformPei"} and len(hits) == 2


def test_index_is_reused_per_tree(real):
    from inspector.find import index_for

    assert index_for(real.root) is index_for(real.root)
    assert isinstance(index_for(real.root), NodeIndex)
