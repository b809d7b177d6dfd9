"""decoders.fd under the one budget (decoders.budget): files, sections, nodes, problems and
decompressed bytes held, each reached as a located problem; dropped blobs come back on demand.

Volumes, files and sections are packed from the PI spec vol 3 layouts (tests/hostile/test_fd_hostile.py).
"""
from __future__ import annotations

from decoders import budget
from decoders.budget import Limits
from decoders.fd import decode_image
from tests.hostile.test_fd_hostile import (EFI_FV_FILETYPE_FREEFORM, EFI_FV_FILETYPE_RAW, EFI_SECTION_RAW,
                                           FV_HEADER_LENGTH, LZMA_GUID, _name, ffs_file, fv, guided,
                                           lzma_payload, section, sections)

KIB = 1 << 10


def _decode(data: bytes, **limits):
    with budget.scope(Limits(**limits)) as b:
        return decode_image(data, name="t"), b


def _messages(root):
    return [(p.offset, p.message) for _, p in root.all_problems()]


def test_files_past_the_budget_are_one_located_problem():
    image = fv([ffs_file(_name(i), EFI_FV_FILETYPE_RAW, b"") for i in range(10)])
    root, _ = _decode(image, files=5)
    vol = root.children[0]
    assert len([c for c in vol.children if c.kind == "ffs"]) == 5
    sixth = FV_HEADER_LENGTH + 5 * 24     # empty files are 24 bytes, already 8-byte aligned
    assert (sixth, "5 more files not shown; the budget is 5 files") in _messages(vol)


def test_sections_past_the_budget_are_one_located_problem():
    body = sections(*[section(EFI_SECTION_RAW, bytes([i]) * 4) for i in range(10)])
    root, _ = _decode(fv([ffs_file(_name(0), EFI_FV_FILETYPE_FREEFORM, body)]), sections=3)
    f = root.children[0].children[0]
    assert [c.kind for c in f.children] == ["section"] * 3
    fourth = FV_HEADER_LENGTH + 24 + 3 * 8
    assert _messages(f) == [(fourth, "7 more sections not shown; the budget is 3 sections")]


def test_nodes_budget_stops_the_file_walk():
    image = fv([ffs_file(_name(i), EFI_FV_FILETYPE_RAW, b"") for i in range(10)])
    root, _ = _decode(image, nodes=4)
    vol = root.children[0]
    assert len(vol.children) == 3                # the volume took one node
    fourth = FV_HEADER_LENGTH + 3 * 24
    assert (fourth, f"{len(image) - fourth:,} more bytes of files not shown; the budget is 4 nodes") \
        in _messages(vol)


def test_problems_past_the_budget_are_counted_in_the_closing_line():
    def broken(i):
        f = bytearray(ffs_file(_name(i), EFI_FV_FILETYPE_RAW, b""))
        f[0x10] ^= 0x55                          # IntegrityCheck.Header wrong
        return bytes(f)
    root, _ = _decode(fv([broken(i) for i in range(10)]), problems=4)
    kept = [m for o, m in _messages(root) if "checksum" in m]
    assert len(kept) == 4
    assert (None, "budget reached, left out: 6 problems") in _messages(root)


def _lzma_files(blobs: list[bytes]) -> bytes:
    return fv([ffs_file(_name(i), EFI_FV_FILETYPE_FREEFORM, guided(LZMA_GUID, lzma_payload(b)))
               for i, b in enumerate(blobs)])


def test_blobs_past_held_bytes_are_dropped_and_decompressed_again_on_demand():
    blobs = [sections(section(EFI_SECTION_RAW, bytes([i + 1]) * (400 * KIB))) for i in range(3)]
    root, b = _decode(_lzma_files(blobs), held_bytes=1 << 20)
    spaces = [n.space for n in root.walk() if n.space is not None and n.space.parent is not None]
    spaces = list(dict.fromkeys(spaces))
    cache = spaces[0]._cache
    assert len(spaces) == 3 and cache.total <= 1 << 20 and cache.get(spaces[0]) is None   # the oldest went
    assert [bytes(s.data) for s in spaces] == blobs            # the dropped one comes back the same
    raw = next(n for n in root.walk() if n.space is spaces[0] and n.kind == "section")
    assert raw.bytes[4:] == bytes([1]) * (400 * KIB)
    assert cache.total <= 1 << 20


def test_blob_that_does_not_fit_beside_the_blobs_it_is_inside_is_refused():
    inner = sections(section(EFI_SECTION_RAW, b"\x02" * (600 * KIB)))
    outer = sections(guided(LZMA_GUID, lzma_payload(inner)), section(EFI_SECTION_RAW, b"\x01" * (600 * KIB)))
    root, _ = _decode(_lzma_files([outer]), held_bytes=1 << 20)
    outer_sec = next(n for n in root.walk() if n.kind == "section" and n.get("DecompressedSize"))
    inner_sec = outer_sec.children[0]
    assert inner_sec.space.parent is outer_sec
    payload = inner_sec.offset + 4 + 20               # EFI_GUID_DEFINED_SECTION's DataOffset
    assert _messages(inner_sec) == [(payload, (
        f"lzma payload not decompressed: it declares 0x{len(inner):x} bytes and the blobs it is inside hold "
        f"{len(outer):,}; the budget is 1,048,576 bytes of decompressed data held at once"))]


def test_nothing_in_the_tree_keeps_a_dropped_blob_alive(monkeypatch):
    """A dropped blob is freed: no node, field or sub-decoder (PE included) keeps a reference to
    it. Blobs are made weakly referenceable here to watch them go."""
    import gc
    import weakref

    from decoders.fd import sections as fd_sections
    from decoders.fd.compression import lzma_decompress
    from tests.realdata import bookworm

    class Blob(bytearray):
        pass

    made = []

    def tracked(payload, limit):
        blob = Blob(lzma_decompress(payload, limit))
        made.append(weakref.ref(blob))
        return blob

    monkeypatch.setitem(fd_sections._GUIDED, LZMA_GUID, ("lzma", "LZMA", tracked))
    ovmf = decode_image(bookworm("OVMF.fd").read_bytes())
    pe = next(n for n in ovmf.walk() if n.kind == "section" and n.get("Type") == 0x10).bytes   # a real PE32
    del ovmf
    made.clear()
    blobs = [sections(pe, section(EFI_SECTION_RAW, bytes([i + 1]) * (400 * KIB))) for i in range(3)]
    root, _ = _decode(_lzma_files(blobs), held_bytes=1 << 20)
    assert any(n.kind == "pe" for n in root.walk())
    gc.collect()
    alive = [r() is not None for r in made]
    assert alive == [False, True, True]          # the oldest was dropped, and nothing else holds it
    spaces = list(dict.fromkeys(n.space for n in root.walk() if n.space is not None and n.space.parent))
    assert bytes(spaces[0].data) == blobs[0]
