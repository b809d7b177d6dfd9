"""inspector.diff_measure: what changing an image does to its MRTD and to PCR0's firmware blobs.

The oracles are computed here, independently of decoders.mrtd and decoders.ovmf:

- the TDVF section table, read with struct from the OVMF reset-vector GUIDed table (edk2
  OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.nasm.inc: UINT16 table length at E-0x32, footer GUID at
  E-0x30, entries `data | UINT16 length | GUID` walking backwards) and the TDVF descriptor it points
  to (OvmfPkg/ResetVector/X64/IntelTdxMetadata.asm: "TDVF", Length, Version, NumberOfSectionEntry,
  then {DataOffset u32, RawDataSize u32, MemoryAddress u64, MemoryDataSize u64, Type u32,
  Attributes u32});
- the MRTD, replayed page by page as td-shim `td-shim-tools/src/tee_info_hash.rs` does: 128-byte
  "MEM.PAGE.ADD" / "MR.EXTEND" records with the GPA at byte 16, each MR.EXTEND followed by its
  256 data bytes, all into one SHA-384;
- which file holds a byte, and which DXEFV files changed: UEFIExtract's report (its File rows'
  Base/Size, and its CRC32 of each file's bytes).
"""
from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from inspector.diff_measure import MAX_PAGE_NODES, measurement_diff
from inspector.diff_mrtd import mrtd_diff
from inspector.diff_tpm import tpm_diff
from inspector.image import load_image
from tests.decoders.wire import reference_mrtd, tdvf_sections
from tests.hostile import test_fd_hostile as F
from tests.hostile.test_mrtd_hostile import BFV, CFV, MR_EXTEND, PAGE_AUG, TEMP_MEM, tdvf_image
from tests.realdata import bookworm, trixie, uefiextract_report

DXEFV_NAME = "7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1"     # OvmfPkgX64.fdf [FV.DXEFV] FvNameGuid
PEIFV_NAME = "6938079B-B503-4E3D-9D24-B28337A25806"     # OvmfPkgX64.fdf [FV.PEIFV] FvNameGuid
PAGE = 0x1000


# -- independent oracles -------------------------------------------------------------------------
def tdshim_mrtd(data: bytes, order: str = "per-page") -> str:
    return reference_mrtd(data, order)


def gpa_of(data: bytes, x: int) -> int | None:
    """The GPA of the page that measures file byte `x`, or None when no MR.EXTEND section has it."""
    for off, raw, gpa, _size, _typ, attrs in tdvf_sections(data):
        if attrs & MR_EXTEND and off <= x < off + raw:
            return gpa + (x - off) // PAGE * PAGE
    return None


def extract_file_at(rows, x: int):
    """UEFIExtract's innermost File row whose bytes hold image offset `x`."""
    hits = [r for r in rows if r.type == "File" and r.base is not None and r.base <= x < r.base + r.size]
    return max(hits, key=lambda r: r.depth)


def extract_volume_files(rows, volume_name: str) -> dict:
    """{(GUID, occurrence): (size, crc32)} of the files directly in the volume named `volume_name`."""
    i = next(i for i, r in enumerate(rows) if r.type == "Volume" and r.name == volume_name)
    depth = rows[i].depth
    out, seen = {}, {}
    for r in rows[i + 1:]:
        if r.depth <= depth:
            break
        if r.type == "File" and r.depth == depth + 1 and r.subtype != "Pad":
            g = uuid.UUID(r.name)
            k = seen.get(g, 0)
            seen[g] = k + 1
            out[(g, k)] = (r.size, r.crc32)
    return out


# -- helpers ---------------------------------------------------------------------------------------
def field(node, name):
    f = node.field(name)
    assert f is not None, f"{node.kind} has no field {name}: {[x.name for x in node.fields]}"
    return f.value


def child(node, kind):
    return next(c for c in node.children if c.kind == kind)


def kids(node, kind):
    return [c for c in node.children if c.kind == kind]


def errors(node):
    return [p for _, p in node.all_problems() if p.severity.value == "error"]


def not_info(node):
    """Problems a diff command would count (render.has_problems: anything but INFO)."""
    return [p for _, p in node.all_problems() if p.severity.value != "info"]


@pytest.fixture(scope="module")
def b12():
    return load_image(bookworm("OVMF.fd"))


def changed_copy(src: Path, tmp: Path, x: int, name: str) -> Path:
    data = bytearray(src.read_bytes())
    data[x] ^= 0xFF
    out = tmp / name
    out.write_bytes(bytes(data))
    return out


# -- real images -----------------------------------------------------------------------------------
def test_diff_measure_image_against_itself_is_equal_everywhere(b12):
    root = measurement_diff(b12, b12, "a", "b")
    assert root.kind == "diff-measurements"
    mrtd = child(root, "diff-mrtd")
    for order in ("per-page", "two-pass"):
        assert field(mrtd, f"Equal.{order}") is True
        assert field(mrtd, f"MRTD.{order}.A") == field(mrtd, f"MRTD.{order}.B") == tdshim_mrtd(b12.data, order)
    assert field(mrtd, "DifferingPages") == 0
    assert not mrtd.children
    tpm = child(root, "diff-tpm")
    blobs = kids(tpm, "diff-tpm-blob")
    assert [field(b, "Volume") for b in blobs] == ["PEIFV", "DXEFV"]
    assert all(field(b, "Equal") for b in blobs) and not any(b.children for b in blobs)
    reg = child(tpm, "diff-tpm-register")
    assert field(reg, "Equal") is True and field(reg, "ValueA") == field(reg, "ValueB")
    assert [field(n, "Change") for n in root.walk()] == ["unchanged"] * len(list(root.walk()))
    assert not not_info(root)


def test_diff_measure_secfv_byte_moves_one_page_at_its_gpa(b12, tmp_path):
    src = bookworm("OVMF.fd")
    rows = uefiextract_report(src, tmp_path)
    sec = next(r for r in rows if r.type == "File" and r.text == "SecMain")
    x = sec.base + sec.size // 2 + 3            # a byte in SecMain's PE32 image, in SECFV
    gpa = gpa_of(b12.data, x)
    assert gpa is not None
    b = load_image(changed_copy(src, tmp_path, x, "sec.fd"))
    mrtd = mrtd_diff(b12, b, "A", "B")
    for order in ("per-page", "two-pass"):
        assert field(mrtd, f"Equal.{order}") is False
        assert field(mrtd, f"MRTD.{order}.A") == tdshim_mrtd(b12.data, order)
        assert field(mrtd, f"MRTD.{order}.B") == tdshim_mrtd(b.data, order)
    pages = kids(mrtd, "diff-mrtd-page")
    assert len(pages) == 1 and field(mrtd, "DifferingPages") == 1
    page = pages[0]
    assert field(page, "Gpa") == gpa
    assert field(page, "Section") == "0 BFV"
    assert field(page, "FileOffsetA") == field(page, "FileOffsetB") == x // PAGE * PAGE
    assert field(page, "FirstDifference") == field(page, "LastDifference") == x % PAGE
    holder = extract_file_at(rows, x)
    assert holder.text == "SecMain"
    assert field(page, "ChangedFilesA") == field(page, "ChangedFilesB") == [holder.text]
    assert holder.text in field(page, "FilesA")
    # SECFV is not part of PEIFV or DXEFV: PCR0 does not move.
    root = measurement_diff(b12, b)
    assert [(c.kind, field(c, "Change")) for c in root.children] == [("diff-mrtd", "changed"),
                                                                     ("diff-tpm", "unchanged")]
    assert field(root, "Change") == "changed" and field(page, "Change") == "changed"
    assert field(child(child(root, "diff-tpm"), "diff-tpm-register"), "Equal") is True


def test_diff_measure_varstore_byte_leaves_the_mrtd_alone(b12, tmp_path):
    src = bookworm("OVMF.fd")
    secs = tdvf_sections(b12.data)
    cfv = next(s for s in secs if s[4] == CFV)
    assert not cfv[5] & MR_EXTEND
    x = cfv[0] + 0x10000                        # the varstore's second half: FTW spare space
    assert gpa_of(b12.data, x) is None
    b = load_image(changed_copy(src, tmp_path, x, "cfv.fd"))
    mrtd = mrtd_diff(b12, b)
    assert field(mrtd, "Equal.per-page") is True and field(mrtd, "Equal.two-pass") is True
    assert field(mrtd, "MRTD.per-page.B") == tdshim_mrtd(b.data)
    assert field(mrtd, "DifferingPages") == 0 and not kids(mrtd, "diff-mrtd-page")


def test_diff_measure_compressed_byte_names_the_compressed_file_and_reports_the_decoder(b12, tmp_path):
    src = bookworm("OVMF.fd")
    rows = uefiextract_report(src, tmp_path)
    x = 0x100000                                # deep inside FVMAIN_COMPACT's LZMA stream
    holder = extract_file_at(rows, x)
    assert holder.name == "9E21FD93-9C72-4C15-8C4B-E77F1DB2D792" and holder.subtype == "Volume image"
    b = load_image(changed_copy(src, tmp_path, x, "lzma.fd"))
    root = measurement_diff(b12, b, "A", "B")
    mrtd = child(root, "diff-mrtd")
    page, = kids(mrtd, "diff-mrtd-page")
    assert field(page, "Gpa") == gpa_of(b12.data, x)
    assert field(page, "ChangedFilesA") == [holder.name + " (compressed: PEIFV, DXEFV)"]
    decoded = any(b.root.find("fv")) and any(
        n.get("FvName") == uuid.UUID(DXEFV_NAME) for n in b.root.find("fv"))
    tpm = child(root, "diff-tpm")
    reg = child(tpm, "diff-tpm-register")
    if decoded:                                  # the stream survived the flip: the blobs moved
        assert field(reg, "ValueA") != field(reg, "ValueB")
    else:                                        # the decoder's problem, and the diff still ran
        assert any("could not be decompressed" in p.message and p.message.startswith("B:")
                   for p in tpm.problems)
        assert field(reg, "ValueB") is None and field(reg, "ValueA") is not None
        assert field(page, "ChangedFilesB") == [holder.name + " (a compressed section that did not decode)"]
        assert field(page, "CompressedVolumesA") == [PEIFV_NAME.lower(), DXEFV_NAME.lower()]
        assert field(page, "CompressedVolumesB") == []
        assert field(mrtd, "CompressedChanges") == {"PEIFV": ["PEIFV: only in A"], "DXEFV": ["DXEFV: only in A"]}
        assert [b_.title.split(":")[0] for b_ in kids(tpm, "diff-tpm-blob")] == ["PEIFV", "DXEFV"]
    assert not errors(root)


def test_diff_measure_bookworm_vs_trixie_bounded_pages_and_named_dxefv_files(b12, tmp_path):
    src_b = trixie("OVMF.fd")
    b13 = load_image(src_b)
    root = measurement_diff(b12, b13, "12", "13")
    mrtd = child(root, "diff-mrtd")
    assert field(mrtd, "MRTD.per-page.A") == tdshim_mrtd(b12.data)
    assert field(mrtd, "MRTD.per-page.B") == tdshim_mrtd(b13.data)
    assert field(mrtd, "Equal.per-page") is False and field(mrtd, "Equal.two-pass") is False
    pages = kids(mrtd, "diff-mrtd-page")
    more = child(mrtd, "diff-mrtd-more")
    assert len(pages) == MAX_PAGE_NODES
    total = field(mrtd, "DifferingPages")
    ranges = kids(mrtd, "diff-mrtd-range")
    assert total == len(pages) + field(more, "Count") + sum(field(r, "Pages") for r in ranges)
    # At most every page either BFV measures differs.
    s12, s13 = tdvf_sections(b12.data), tdvf_sections(b13.data)
    bfv12 = next(s for s in s12 if s[4] == BFV)
    bfv13 = next(s for s in s13 if s[4] == BFV)
    assert field(mrtd, "PagesBytesDiffer") + field(mrtd, "PagesExtendedOnOneSide") <= \
        (bfv12[3] + bfv13[3]) // PAGE
    assert len({field(p, "Gpa") for p in pages}) == len(pages)
    # A page both images measure names files of both.
    both = [p for p in pages if field(p, "Differs") == "bytes"]
    assert both and all(field(p, "FilesA") and field(p, "FilesB") for p in both)

    # PEIFV and DXEFV: the files UEFIExtract's CRC32s say changed, were added or removed, by GUID.
    tpm = child(root, "diff-tpm")
    blobs = {field(b, "Volume"): b for b in kids(tpm, "diff-tpm-blob")}
    dxe = blobs["DXEFV"]
    assert field(dxe, "Equal") is False and field(dxe, "DigestA") != field(dxe, "DigestB")
    assert (field(dxe, "BlobLengthA"), field(dxe, "BlobLengthB")) == (0xC00000, 0xE80000)
    rows_a = uefiextract_report(bookworm("OVMF.fd"), tmp_path)
    (tmp_path / "13").mkdir()
    rows_b = uefiextract_report(src_b, tmp_path / "13")
    for vol, name in (("PEIFV", PEIFV_NAME), ("DXEFV", DXEFV_NAME)):
        fa, fb = extract_volume_files(rows_a, name), extract_volume_files(rows_b, name)
        want = {"added": {k[0] for k in fb.keys() - fa.keys()},
                "removed": {k[0] for k in fa.keys() - fb.keys()},
                "changed": {k[0] for k in fa.keys() & fb.keys() if fa[k] != fb[k]}}
        got = {s: {uuid.UUID(field(f, "Name")) for f in kids(blobs[vol], "diff-tpm-blob-file")
                   if field(f, "Status") == s} for s in want}
        assert got == want, vol
        assert (field(blobs[vol], "Changed"), field(blobs[vol], "Added"), field(blobs[vol], "Removed")) == \
            (len(want["changed"]), len(want["added"]), len(want["removed"]))
        if vol == "DXEFV":
            assert want["added"] and want["removed"] and want["changed"]
    json.dumps(root.to_json())          # every value is JSON (GUIDs as text)
    # The MRTD pages of FVMAIN_COMPACT's compressed bytes are explained by the blobs' files.
    linked = field(mrtd, "CompressedChanges")
    assert set(linked) == {"PEIFV", "DXEFV"}
    assert linked["DXEFV"][0] == "changed DxeCore" and linked["DXEFV"][-1].startswith("… ")
    reg = child(tpm, "diff-tpm-register")
    assert field(reg, "Equal") is False and field(reg, "ValueA") and field(reg, "ValueB")
    # Debian 13 builds with --pcd PcdFirmwareVersionString=L"$(DEB_VERSION)" (debian/rules); 12 did not.
    crtm = child(tpm, "diff-tpm-crtm-version")
    assert field(crtm, "VersionA") == "" and field(crtm, "VersionB").startswith("2025.02")
    assert field(crtm, "Change") == "changed"
    assert field(crtm, "DigestA") == hashlib.sha256(b"\0\0").hexdigest()
    assert field(crtm, "DigestB") == hashlib.sha256(field(crtm, "VersionB").encode("utf-16-le") + b"\0\0").hexdigest()


def test_diff_measure_split_code_against_unified_image(b12):
    # Debian 12's OVMF_CODE.fd is the CODE part of OVMF.fd: its TDVF table's DataOffsets are
    # unified-image offsets, so the same MRTD; the same PEIFV and DXEFV.
    code = load_image(bookworm("OVMF_CODE.fd"))
    root = measurement_diff(b12, code, "OVMF.fd", "OVMF_CODE.fd")
    mrtd = child(root, "diff-mrtd")
    assert field(mrtd, "MRTD.per-page.B") == tdshim_mrtd(b12.data) and field(mrtd, "Equal.two-pass") is True
    assert field(root, "Change") == "unchanged" and not not_info(root)
    # The 4 MiB build of Debian 12 has no TDX metadata: said, not an error.
    four = mrtd_diff(b12, load_image(bookworm("OVMF_CODE_4M.fd")), "OVMF.fd", "OVMF_CODE_4M.fd")
    assert field(four, "Change") == "removed"
    assert four.title == "MRTD: not comparable: OVMF_CODE_4M.fd has no TDX metadata"
    assert field(four, "MRTD.per-page.A") == tdshim_mrtd(b12.data) and not not_info(four)


# -- crafted TDVF metadata (the image layout of tests/hostile/test_mrtd_hostile.py) ---------------
def _loaded(path: Path):
    return load_image(path)


def _flip(path: Path, x: int) -> Path:
    data = bytearray(path.read_bytes())
    data[x] ^= 0x5A
    out = path.with_name(path.stem + f"-{x:x}.fd")
    out.write_bytes(bytes(data))
    return out


_BFV = (0, 0x8000, 0xFFFF0000, 0x8000, BFV, MR_EXTEND)     # file 0..0x8000 at GPA 0xFFFF0000


def test_diff_measure_crafted_byte_gives_its_page_gpa_not_its_file_offset(tmp_path):
    # BFV data at file 0x0 measured at GPA 0xFFFF0000: byte 0x3456 is page 3.
    a = tdvf_image(tmp_path / "a.fd", [(0x2000, 0x6000, 0x7FF000, 0x6000, BFV, MR_EXTEND)])
    b = _flip(a, 0x3456)
    node = mrtd_diff(_loaded(a), _loaded(b))
    page, = kids(node, "diff-mrtd-page")
    # (0x3456 - 0x2000) // 0x1000 = page 1, at 0x7FF000 + 0x1000.
    assert field(page, "Gpa") == 0x800000
    assert field(page, "FileOffsetA") == 0x3000
    assert field(page, "FirstDifference") == field(page, "LastDifference") == 0x456
    assert field(node, "MRTD.per-page.B") == tdshim_mrtd(b.read_bytes())


# (The descriptor sits at 0xFF0..0x1030 of these images: the flipped bytes stay clear of it.)
@pytest.mark.parametrize("x, page", [(0x0FEF, 0xFFFF0000), (0x1FFF, 0xFFFF1000), (0x2000, 0xFFFF2000),
                                     (0x7FFF, 0xFFFF7000)])
def test_diff_measure_crafted_page_boundaries(tmp_path, x, page):
    a = tdvf_image(tmp_path / "a.fd", [_BFV, (0, 0, 0x800000, 0x2000, TEMP_MEM, 0)])
    node = mrtd_diff(_loaded(a), _loaded(_flip(a, x)))
    assert [field(p, "Gpa") for p in kids(node, "diff-mrtd-page")] == [page]


def test_diff_measure_crafted_unmeasured_section_bytes_move_nothing(tmp_path):
    # 0x9000.. is a CFV (PAGE.ADD only) and outside the BFV: its bytes are not in the MRTD.
    a = tdvf_image(tmp_path / "a.fd", [_BFV, (0x9000, 0x2000, 0xFFFE0000, 0x2000, CFV, 0)])
    node = mrtd_diff(_loaded(a), _loaded(_flip(a, 0x9800)))
    assert field(node, "Equal.per-page") is True and field(node, "DifferingPages") == 0


def test_diff_measure_crafted_layout_shift_compares_by_gpa(tmp_path):
    # B measures the same bytes one page higher: its first page is B's only, the rest compare
    # A's page i+1 with B's page i (the file bytes differ, the layout shifted).
    a = tdvf_image(tmp_path / "a.fd", [(0x2000, 0x4000, 0x100000, 0x4000, BFV, MR_EXTEND)])
    b = tdvf_image(tmp_path / "b.fd", [(0x2000, 0x4000, 0x101000, 0x4000, BFV, MR_EXTEND)])
    node = mrtd_diff(_loaded(a), _loaded(b))
    pages = kids(node, "diff-mrtd-page")
    # Both files are 0xFF there: 0x100000 A only, 0x104000 B only; the shared GPAs hold equal bytes.
    assert [(field(p, "Gpa"), field(p, "Differs")) for p in pages] == [(0x100000, "only A"), (0x104000, "only B")]
    assert field(pages[0], "FileOffsetA") == 0x2000 and field(pages[0], "FileOffsetB") is None
    assert field(pages[1], "FileOffsetB") == 0x5000
    assert child(node, "diff-tdx-sections")


def test_diff_measure_crafted_page_add_only_difference_is_a_range(tmp_path):
    a = tdvf_image(tmp_path / "a.fd", [_BFV, (0, 0, 0x800000, 0x4000, TEMP_MEM, 0)])
    b = tdvf_image(tmp_path / "b.fd", [_BFV, (0, 0, 0x801000, 0x3000, TEMP_MEM, 0)])
    node = mrtd_diff(_loaded(a), _loaded(b))
    # The descriptor itself lies in the measured BFV bytes (file 0x1000): its page differs too.
    page, = kids(node, "diff-mrtd-page")
    assert field(page, "Gpa") == 0xFFFF1000 and field(page, "ChangedFilesA") == ["outside any volume"]
    rng, = kids(node, "diff-mrtd-range")
    assert (field(rng, "Gpa"), field(rng, "GpaEnd"), field(rng, "Pages"), field(rng, "Differs")) == \
        (0x800000, 0x801000, 1, "only A")
    assert field(node, "Equal.per-page") is False


def test_diff_measure_crafted_zero_padding_past_raw_data(tmp_path):
    # RawDataSize 0x1800 padded to 0x3000: page 1 holds 0x800 image bytes then zeros, page 2 is
    # all zeros in both images whatever the file holds past RawDataSize.
    a = tdvf_image(tmp_path / "a.fd", [(0x2000, 0x1800, 0x200000, 0x3000, BFV, MR_EXTEND)])
    assert [field(p, "Gpa") for p in kids(mrtd_diff(_loaded(a), _loaded(_flip(a, 0x37FF))), "diff-mrtd-page")] \
        == [0x201000]
    assert field(mrtd_diff(_loaded(a), _loaded(_flip(a, 0x3800))), "DifferingPages") == 0
    # A byte in the data and one past RawDataSize in the same page: only the first counts.
    both = _flip(_flip(a, 0x2010), 0x3900)
    page, = kids(mrtd_diff(_loaded(a), _loaded(both)), "diff-mrtd-page")
    assert field(page, "Gpa") == 0x200000 and field(page, "FirstDifference") == field(page, "LastDifference") == 0x10
    both = _flip(_flip(a, 0x3010), 0x3900)
    page, = kids(mrtd_diff(_loaded(a), _loaded(both)), "diff-mrtd-page")
    assert field(page, "Gpa") == 0x201000 and field(page, "LastDifference") == 0x10


def test_diff_measure_without_tdx_metadata_says_so(tmp_path):
    img = F.image_of([F.fv([F.ffs_file(F._name(1), F.EFI_FV_FILETYPE_FREEFORM, b"x" * 16)])], tmp_path / "p.fd")
    loaded = _loaded(img)
    node = mrtd_diff(loaded, loaded)
    assert not node.children and not errors(node)
    assert "neither image has TDX metadata" in node.title and field(node, "MRTD.per-page.A") is None
    tdx = _loaded(tdvf_image(tmp_path / "t.fd", [_BFV]))
    one = mrtd_diff(tdx, loaded, "A", "B")
    assert field(one, "MRTD.per-page.A") == tdshim_mrtd(tdx.data) and field(one, "MRTD.per-page.B") is None
    assert any("B has no TDX metadata" in p.message for p in one.problems) and not not_info(one)
    assert field(one, "Change") == "removed"
    tpm = tpm_diff(loaded, loaded)
    assert not kids(tpm, "diff-tpm-blob") and "neither image has a PEIFV or DXEFV" in tpm.title
    assert any("PCR0 cannot be predicted" in p.message for p in tpm.problems) and not not_info(tpm)
    assert not not_info(measurement_diff(loaded, loaded))
    assert field(measurement_diff(loaded, loaded), "Change") == "unchanged"


# -- crafted volumes for the blob-file matching (PI spec vol 3 FV/FFS layouts) ----------------------
EFI_FV_FILETYPE_DXE_CORE = 0x05
EFI_FV_FILETYPE_DRIVER = 0x07


def _dxe_image(path: Path, files: list[tuple[int, bytes]], size: int | None = None) -> Path:
    """One volume whose first file is a DXE_CORE (so decoders.measure.tpm_image takes it for
    DXEFV) followed by DRIVER files named by index: `files` = [(index, body)]."""
    ffs = [F.ffs_file(F._name(0), EFI_FV_FILETYPE_DXE_CORE, F.section(F.EFI_SECTION_RAW, b"core" * 8))]
    ffs += [F.ffs_file(F._name(i), EFI_FV_FILETYPE_DRIVER, F.section(F.EFI_SECTION_RAW, body)) for i, body in files]
    return F.image_of([F.fv(ffs, size)], path)


def _statuses(blob):
    return sorted((field(f, "Status"), uuid.UUID(field(f, "Name")).int & 0xFFFF)
                  for f in kids(blob, "diff-tpm-blob-file"))


def test_diff_measure_crafted_dxefv_files_changed_added_removed_moved(tmp_path):
    a = _dxe_image(tmp_path / "a.fd", [(1, b"one" * 10), (2, b"two" * 10), (3, b"three" * 10)], 0x2000)
    # 2 changed (same size), 4 added before 3, so 3 is moved with the same bytes; 1 removed.
    b = _dxe_image(tmp_path / "b.fd", [(2, b"TWO" * 10), (4, b"four" * 10), (3, b"three" * 10)], 0x2000)
    node = tpm_diff(_loaded(a), _loaded(b))
    blob, = kids(node, "diff-tpm-blob")
    assert field(blob, "Volume") == "DXEFV" and field(blob, "Equal") is False
    assert _statuses(blob) == [("added", 4), ("changed", 2), ("moved", 3), ("removed", 1)]
    assert sorted(field(f, "Change") for f in kids(blob, "diff-tpm-blob-file")) == \
        ["added", "changed", "changed", "removed"]
    moved = next(f for f in kids(blob, "diff-tpm-blob-file") if field(f, "Status") == "moved")
    assert field(moved, "SizeA") == field(moved, "SizeB")
    # File 4 (24-byte header + 4-byte section header + 40 bytes, 8-aligned: 72) took the place of
    # file 1 (24 + 4 + 30 -> 64): file 3 sits 8 bytes further into the volume.
    assert field(moved, "OffsetB") - field(moved, "OffsetA") == 72 - 64


def test_diff_measure_crafted_dxefv_only_free_space_differs(tmp_path):
    a = _dxe_image(tmp_path / "a.fd", [(1, b"one" * 10)], 0x2000)
    b = _dxe_image(tmp_path / "b.fd", [(1, b"one" * 10)], 0x3000)
    blob, = kids(tpm_diff(_loaded(a), _loaded(b)), "diff-tpm-blob")
    assert (field(blob, "BlobLengthA"), field(blob, "BlobLengthB")) == (0x2000, 0x3000)
    assert not kids(blob, "diff-tpm-blob-file") and field(blob, "FilesDiffer") == 0
    # FvLength (header, page 0) differs; page 1 is free space in both (0xFF) up to A's end.
    assert [field(p, "Offset") for p in kids(blob, "diff-tpm-blob-page")] == [0]
