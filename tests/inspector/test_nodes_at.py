"""Byte -> nodes (inspector.nodes_at.NodeIndex): exact paths in crafted trees, a brute-force oracle
over every node of real images, and the offsets and sizes UEFIExtract reports for Debian's image.

UEFIExtract gives image offsets (Base) for what is not compressed and N/A inside the LZMA section;
there each file is located in the section's payload decompressed here with `lzma` (independently of
decoders.fd) by its Name GUID, checked by the report's Size and CRC32, and its sections follow it
4-byte aligned from the end of the 24-byte header (PI vol 3 2.1.4, 2.2.4), each checked by CRC32.
"""
from __future__ import annotations

import lzma
import random
import struct
import uuid
import zlib

import pytest

from decoders.model import Node, Space
from inspector.nodes_at import NodeIndex
from tests.realdata import bookworm, firmware, uefiextract_report


def brute_path(root: Node, space: Space, offset: int) -> list[Node]:
    """Every node of `space` holding `offset`, outside summaries, innermost first (size, then depth)."""
    found = []
    stack = [(root, 0)]
    while stack:
        n, depth = stack.pop()
        if n.kind in ("image-info", "review") and n is not root:
            continue
        if n.space is space and n.size > 0 and n.offset <= offset < n.offset + n.size:
            found.append((n.size, -depth, n))
        stack.extend((c, depth + 1) for c in n.children)
    found.sort(key=lambda t: (t[0], t[1]))
    return [n for _, _, n in found]


# -- crafted -----------------------------------------------------------------------------------------
def test_nested_paths_innermost_first():
    s = Space("s", bytes(0x100))
    root = Node("image", "root", s, 0, 0x100)
    fv = root.append(Node("fv", "fv", s, 0, 0xF0))
    f1 = fv.append(Node("ffs", "f1", s, 0x48, 0x40))
    sec = f1.append(Node("section", "sec", s, 0x60, 0x10))
    f2 = fv.append(Node("ffs", "f2", s, 0x88, 0x40))
    idx = NodeIndex(root)
    assert idx.path(s, 0x00) == [fv, root]
    assert idx.path(s, 0x48) == [f1, fv, root]
    assert idx.path(s, 0x60) == [sec, f1, fv, root]
    assert idx.path(s, 0x6F) == [sec, f1, fv, root]
    assert idx.path(s, 0x70) == [f1, fv, root]
    assert idx.path(s, 0x87) == [f1, fv, root]
    assert idx.path(s, 0xEF) == [fv, root]
    assert idx.path(s, 0x88) == [f2, fv, root]
    assert idx.path(s, 0xF0) == [root]
    assert idx.path(s, 0x100) == [] and idx.path(s, -1) == []
    assert idx.spaces() == [s]


def test_zero_size_nodes_and_summaries_are_left_out():
    s = Space("s", bytes(0x40))
    root = Node("image", "root", s, 0, 0x40)
    empty = root.append(Node("ffs", "empty", s, 0x10, 0))
    summary = root.append(Node("image-info", "summary", s, 0, 0x40))
    summary.append(Node("boot-phase", "sec entry", s, 0x10, 4))
    review = root.append(Node("review", "Review", s, 0, 0))
    review.append(Node("finding", "a finding", s, 0, 0)).append(Node("evidence", "evidence", s, 0x10, 8))
    f = root.append(Node("ffs", "f", s, 0x10, 8))
    idx = NodeIndex(root)
    assert idx.path(s, 0x10) == [f, root]
    assert empty not in idx.path(s, 0x10)


def test_equal_ranges_deeper_first_and_overlapping_siblings_both_found():
    s = Space("s", bytes(0x40))
    root = Node("image", "root", s, 0, 0x40)
    a = root.append(Node("section", "a", s, 0x10, 0x20))
    a_img = a.append(Node("pe", "a's image, same range", s, 0x10, 0x20))
    table = root.append(Node("ovmf-guid-table", "table overlapping a", s, 0x28, 0x10))
    idx = NodeIndex(root)
    assert idx.path(s, 0x12) == [a_img, a, root]
    assert idx.path(s, 0x2A) == [table, a_img, a, root]


def test_child_outside_its_parent_is_still_found_and_other_spaces_are_not_mixed():
    s, blob = Space("s", bytes(0x40)), Space("blob", bytes(0x80))
    root = Node("image", "root", s, 0, 0x20)
    stray = root.append(Node("ffs", "past the parent's end", s, 0x30, 0x8))
    sec = root.append(Node("section", "compressed", s, 0x8, 0x10))
    blob.parent = sec
    inner = sec.append(Node("fv", "in blob", blob, 0x0, 0x80))
    leaf = inner.append(Node("ffs", "leaf", blob, 0x8, 0x8))
    idx = NodeIndex(root)
    assert idx.path(s, 0x30) == [stray]
    assert idx.path(blob, 0x8) == [leaf, inner]
    assert idx.path(s, 0x8) == [sec, root]
    assert idx.chain(blob, 0x8) == [leaf, inner, sec, root]
    assert idx.path_range(blob, 0x8, 0x11) == [inner]
    assert idx.spaces() == [s, blob]
    assert idx.parent(leaf) is inner and idx.ancestors(leaf) == [inner, sec, root]


def test_many_siblings_lookup_by_bisect():
    s = Space("s", bytes(100_000))
    root = Node("image", "root", s, 0, 100_000)
    kids = [root.append(Node("ffs", str(i), s, i * 10, 10)) for i in range(10_000)]
    idx = NodeIndex(root)
    for i in (0, 1, 4_999, 9_999):
        assert idx.path(s, i * 10 + 3) == [kids[i], root]


def test_deep_tree_does_not_recurse():
    s = Space("s", bytes(10_000))
    root = node = Node("image", "root", s, 0, 10_000)
    for i in range(1, 5_000):
        node = node.append(Node("section", str(i), s, i, 10_000 - 2 * i))
    assert len(NodeIndex(root).path(s, 5_000)) == 5_000


# -- real images ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["bookworm", "debug"])
def real(request):
    from inspector.image import load_image

    path = bookworm("OVMF_CODE_4M.fd") if request.param == "bookworm" else firmware("ovmf-debug/OVMF.fd")
    return load_image(path)


def test_real_paths_equal_brute_force_at_every_node_edge_and_random_bytes(real):
    idx = NodeIndex(real.root)
    rng = random.Random(1)
    checked = 0
    for space in idx.spaces():
        offsets = {rng.randrange(space.size) for _ in range(150)}
        for n in real.root.walk():
            if n.space is space and n.size:
                offsets.update((n.offset, n.offset + n.size - 1, n.offset + n.size))
        for off in sorted(offsets)[::7]:
            assert idx.path(space, off) == brute_path(real.root, space, off), (space.name, hex(off))
            checked += 1
    assert checked > 300


@pytest.fixture(scope="module", params=["OVMF_CODE_4M.fd", "OVMF.fd"])
def debian_report(request, tmp_path_factory):
    from inspector.image import load_image

    path = bookworm(request.param)
    return load_image(path), uefiextract_report(path, tmp_path_factory.mktemp("uefiextract"))


# Row types whose first byte has no smaller node of ours starting there: the whole image row is the
# root, which shares offset 0 with the first volume (innermost there is the volume).
SKIPPED_TYPES = {"Image"}


def test_innermost_node_at_each_reported_base_has_its_offset_and_size(debian_report):
    img, rows = debian_report
    idx = NodeIndex(img.root)
    space = img.root.space
    based = [r for r in rows if r.base is not None and r.type not in SKIPPED_TYPES]
    assert len(based) >= 10
    for r in based:
        inner = idx.path(space, r.base)[0]
        assert (inner.offset, inner.size) == (r.base, r.size), (r.type, r.subtype, r.name)
        if r.type != "FTW store":   # UEFIExtract's CRC32 of that row is not of its bytes (offset and size are)
            assert zlib.crc32(bytes(space.data[r.base:r.base + r.size])) == r.crc32


def test_innermost_nodes_inside_the_lzma_section_match_the_report(debian_report):
    img, rows = debian_report
    data = img.data
    gsec = next(r for r in rows if r.type == "Section" and r.subtype == "GUID defined")
    # EFI_GUID_DEFINED_SECTION: header (4), SectionDefinitionGuid (16), DataOffset u16, Attributes u16.
    (data_offset,) = struct.unpack_from("<H", data, gsec.base + 20)
    payload = data[gsec.base + data_offset:gsec.base + gsec.size]
    blob = lzma.decompress(payload, format=lzma.FORMAT_ALONE)
    idx = NodeIndex(img.root)
    (space,) = [s for s in idx.spaces() if s.parent is not None and s.parent.offset == gsec.base]
    assert bytes(space.data) == blob

    files = sections = 0
    i = rows.index(gsec) + 1
    start = 0
    while i < len(rows) and rows[i].depth > gsec.depth:
        r = rows[i]
        i += 1
        if r.type != "File" or not _is_guid(r.name):
            continue
        guid = uuid.UUID(r.name).bytes_le
        at = blob.find(guid, start)
        while at >= 0 and not (int.from_bytes(blob[at + 20:at + 23], "little") == r.size
                               and zlib.crc32(blob[at:at + r.size]) == r.crc32):
            at = blob.find(guid, at + 1)
        assert at >= 0, f"file {r.name} not found in the blob"
        start = at + 1
        inner = idx.path(space, at)[0]
        assert (inner.kind, inner.offset, inner.size) == ("ffs", at, r.size), r.name
        files += 1
        # Its sections: the rows right below it, 4-byte aligned after the 24-byte header.
        pos = at + 24
        while i < len(rows) and rows[i].depth == r.depth + 1 and rows[i].type == "Section":
            s = rows[i]
            i += 1
            pos += -pos % 4
            assert zlib.crc32(blob[pos:pos + s.size]) == s.crc32, (r.name, s.subtype)
            inner = idx.path(space, pos)[0]
            assert (inner.kind, inner.offset, inner.size) == ("section", pos, s.size), (r.name, s.subtype)
            pos += s.size
            sections += 1
    assert files >= 100 and sections >= 300


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def test_app_tree_paths_hold_structures_not_review_evidence_or_summaries():
    from inspector.sources import load_source

    _, root = load_source(bookworm("OVMF.fd"))     # the app's tree: review findings and summary first
    assert {c.kind for c in root.children} >= {"review", "image-info"}
    idx = NodeIndex(root)
    space = root.space
    kinds = set()
    for off in range(0, space.size, 0x1000):
        path = idx.path(space, off)
        assert path and path[-1] is root
        kinds.update(n.kind for n in path)
    assert not kinds & {"review", "finding", "evidence", "image-info", "boot-phases", "boot-phase"}
    assert {"fv", "ffs", "section"} <= kinds
