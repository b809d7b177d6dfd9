"""`fwinspect diff A B` and inspector.diff's API, on real images and on volumes crafted from the PI spec.

Real data: Debian 12's and 13's OVMF builds against each other, Secure Boot builds against plain
ones, TDVF Config-B against Debian 13's Config-A, VARS files with Microsoft and snake-oil keys, and
copies with one byte changed. The module lists are checked against UEFIExtract's reports of both
images, compared here independently (files keyed by volume and GUID, changed when their CRC32
differs). Crafted volumes (struct.pack, PI 1.8 vol 3: EFI_FIRMWARE_VOLUME_HEADER with an
EFI_FIRMWARE_VOLUME_EXT_HEADER in a pad file, EFI_FFS_FILE_HEADER, EFI_COMMON_SECTION_HEADER,
EFI_GUID_DEFINED_SECTION with edk2's LZMA payload; DEPEX opcodes from PI 1.8 vol 2, 10.7) test one
rule each: identity by GUID, compression, DEPEX, nested volumes.
"""
from __future__ import annotations

import json
import lzma
import re
import shutil
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.hostile.test_fd_hostile import (EFI_FV_FILETYPE_FREEFORM, EFI_FVB2_ERASE_POLARITY, FFS2_GUID, LZMA_GUID,
                                           _pad8, ffs_file, guided, section, sections)
from tests.realdata import bookworm, firmware, fixture, trixie, uefiextract_report

ROOT = Path(__file__).resolve().parents[2]

# PI 1.8 vol 3, 2.1.4.1 file types and 3.2.5 section types.
FT_DRIVER, FT_PAD, FT_FV_IMAGE = 0x07, 0xF0, 0x0B
SEC_DXE_DEPEX, SEC_UI, SEC_FV_IMAGE, SEC_RAW = 0x13, 0x15, 0x17, 0x19
# PI 1.8 vol 2, 10.7 dependency expression opcodes.
DEP_PUSH, DEP_AND, DEP_TRUE, DEP_END = 0x02, 0x03, 0x06, 0x08
PAD_NAME = uuid.UUID(int=(1 << 128) - 1)
GUID_RE = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")


# ---- crafting ------------------------------------------------------------------------------------

def fv_named(name: uuid.UUID | None, files: list[bytes], fs: uuid.UUID = FFS2_GUID) -> bytes:
    """A volume whose EFI_FIRMWARE_VOLUME_EXT_HEADER (FvName, ExtHeaderSize 20) sits in a pad file
    right after the 0x48-byte header, as GenFv writes it; ExtHeaderOffset 0x60 points into it."""
    header_len = 0x48
    if name is not None:
        files = [ffs_file(PAD_NAME, FT_PAD, name.bytes_le + struct.pack("<I", 20))] + files
    body = b""
    for f in files:
        body += b"\xff" * (_pad8(header_len + len(body)) - header_len - len(body)) + f
    total = (header_len + len(body) + 0xFFF) & ~0xFFF
    ext = 0x60 if name is not None else 0
    hdr = bytearray(bytes(16) + fs.bytes_le + struct.pack("<Q4sIHHHBB", total, b"_FVH",
                    0x0004FEFF | EFI_FVB2_ERASE_POLARITY, header_len, 0, ext, 0, 2)
                    + struct.pack("<IIII", total // 0x1000, 0x1000, 0, 0))
    struct.pack_into("<H", hdr, 0x32, -sum(struct.unpack("<36H", hdr)) & 0xFFFF)
    return bytes(hdr) + body + b"\xff" * (total - len(hdr) - len(body))


def lzma_section(data: bytes, dict_size: int = 1 << 23, preset: int = 6) -> bytes:
    """edk2's LZMA GUID-defined section (LzmaCustomDecompressLib: props 0x5D, UINT32 dictionary
    size, UINT64 size, LZMA1 stream); another dictionary size or preset: other bytes, same content."""
    raw = lzma.compress(data, format=lzma.FORMAT_RAW,
                        filters=[{"id": lzma.FILTER_LZMA1, "dict_size": dict_size, "preset": preset}])
    return guided(LZMA_GUID, struct.pack("<BIQ", 0x5D, dict_size, len(data)) + raw)


def ui(text: str) -> bytes:
    return section(SEC_UI, text.encode("utf-16-le") + b"\0\0")


def depex(*guids: uuid.UUID) -> bytes:
    if not guids:
        return section(SEC_DXE_DEPEX, bytes([DEP_TRUE, DEP_END]))
    code = b""
    for i, g in enumerate(guids):
        code += bytes([DEP_PUSH]) + g.bytes_le + (bytes([DEP_AND]) if i else b"")
    return section(SEC_DXE_DEPEX, code + bytes([DEP_END]))


def driver(n: int, name: str, payload: bytes, dep: bytes | None = None) -> bytes:
    secs = [s for s in (dep, section(SEC_RAW, payload), ui(name)) if s is not None]
    return ffs_file(guid(n), FT_DRIVER, sections(*secs))


def guid(n: int) -> uuid.UUID:
    return uuid.UUID(int=(0xD1FF << 112) | n)


FV_A = uuid.UUID("11111111-2222-3333-4444-555555555555")
FV_INNER = uuid.UUID("66666666-7777-8888-9999-aaaaaaaaaaaa")


def write(tmp: Path, name: str, *volumes: bytes) -> Path:
    p = tmp / name
    p.write_bytes(b"".join(volumes))
    return p


# ---- running ---------------------------------------------------------------------------------

def run(*args, check_exit: int | None = None) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "inspector.cli", "diff", *map(str, args)], capture_output=True,
                         cwd=ROOT, timeout=300)
    assert b"Traceback" not in out.stderr, out.stderr.decode()
    if check_exit is not None:
        assert out.returncode == check_exit, out.stderr.decode()[-2000:]
    return out


def run_json(a, b, *extra, check_exit: int | None = None) -> dict:
    out = run("--json", *extra, a, b, check_exit=check_exit)
    return json.loads(out.stdout)


def walk(node: dict):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n["children"]))


def fields(node: dict) -> dict:
    return {f["name"]: f["value"] for f in node["fields"]}


def files(tree: dict) -> list[dict]:
    return [fields(n) for n in walk(tree) if n["kind"] == "diff-file"]


def by_change(tree: dict, change: str) -> list[dict]:
    return [f for f in files(tree) if f["Change"] == change]


def diff_api(a: Path, b: Path, **kw):
    from inspector.diff import diff_images, load_pair

    img_a, img_b = load_pair(a, b)
    return diff_images(img_a.root, img_b.root, **kw)


# ---- crafted: one rule each -------------------------------------------------------------------

def test_diff_inserted_file_shifts_offsets_but_only_it_is_added(tmp_path):
    base = [driver(1, "Alpha", b"a" * 100), driver(2, "Beta", b"b" * 200), driver(3, "Gamma", b"c" * 50)]
    a = write(tmp_path, "a.fd", fv_named(FV_A, base))
    b = write(tmp_path, "b.fd", fv_named(FV_A, [driver(9, "New", b"n" * 333)] + base))
    tree = run_json(a, b, check_exit=1)
    fs = files(tree)
    assert [(f["Change"], f["UiName"], f["Name"]) for f in fs] == [("added", "New", str(guid(9)))]
    assert fs[0]["Volume"] == str(FV_A)
    assert fs[0]["SizeA"] is None and fs[0]["SizeB"] == 24 + (4 + 333 + 3) + (4 + 8)   # header, RAW + 4-byte alignment, UI "New\0"
    summary = fields(next(n for n in walk(tree) if n["kind"] == "diff-summary"))
    assert (summary["FilesAdded"], summary["FilesRemoved"], summary["FilesChanged"],
            summary["FilesUnchanged"]) == (1, 0, 0, 3)


def test_diff_reordered_files_are_not_changed(tmp_path):
    base = [driver(1, "Alpha", b"a" * 100), driver(2, "Beta", b"b" * 200)]
    a = write(tmp_path, "a.fd", fv_named(FV_A, base))
    b = write(tmp_path, "b.fd", fv_named(FV_A, base[::-1]))
    tree = run_json(a, b)
    assert files(tree) == []


def test_diff_removed_and_changed_file_with_all(tmp_path):
    a = write(tmp_path, "a.fd", fv_named(FV_A, [driver(1, "Alpha", b"a" * 100), driver(2, "Beta", b"b" * 200)]))
    b = write(tmp_path, "b.fd", fv_named(FV_A, [driver(1, "Alpha", b"A" * 100)]))
    tree = run_json(a, b, "--all", check_exit=1)
    got = {f["UiName"]: (f["Change"], f.get("Changes")) for f in files(tree)}
    assert got == {"Alpha": ("changed", ["raw"]), "Beta": ("removed", None)}
    tree = run_json(a, a, "--all", check_exit=0)
    assert {f["UiName"]: f["Change"] for f in files(tree)} == {"Alpha": "unchanged", "Beta": "unchanged"}


def test_diff_same_content_recompressed_is_compression(tmp_path):
    content = sections(section(SEC_RAW, bytes(range(256)) * 64), ui("Packed"))
    a = write(tmp_path, "a.fd", fv_named(FV_A, [ffs_file(guid(5), EFI_FV_FILETYPE_FREEFORM, lzma_section(content))]))
    b = write(tmp_path, "b.fd", fv_named(FV_A, [ffs_file(guid(5), EFI_FV_FILETYPE_FREEFORM,
                                                          lzma_section(content, 1 << 20, 1))]))
    assert a.read_bytes() != b.read_bytes()
    fs = files(run_json(a, b, check_exit=1))
    assert [(f["Name"], f["Changes"]) for f in fs] == [(str(guid(5)), ["compression"])]


def test_diff_changed_content_under_compression_is_not_compression(tmp_path):
    one = sections(section(SEC_RAW, b"x" * 4000), ui("Packed"))
    two = sections(section(SEC_RAW, b"x" * 3999 + b"y"), ui("Packed"))
    a = write(tmp_path, "a.fd", fv_named(FV_A, [ffs_file(guid(5), EFI_FV_FILETYPE_FREEFORM, lzma_section(one))]))
    b = write(tmp_path, "b.fd", fv_named(FV_A, [ffs_file(guid(5), EFI_FV_FILETYPE_FREEFORM, lzma_section(two))]))
    fs = files(run_json(a, b, check_exit=1))
    assert [f["Changes"] for f in fs] == [["raw"]]


def test_diff_depex_change_shows_both_expressions(tmp_path):
    g1, g2 = uuid.UUID("26baccb1-6f42-11d4-bce7-0080c73c8881"), uuid.UUID("1da97072-bddc-4b30-99f1-72a0b56fff2a")
    a = write(tmp_path, "a.fd", fv_named(FV_A, [driver(1, "Dep", b"p" * 64, depex(g1))]))
    b = write(tmp_path, "b.fd", fv_named(FV_A, [driver(1, "Dep", b"p" * 64, depex(g1, g2))]))
    (f,) = files(run_json(a, b, check_exit=1))
    assert f["Changes"] == ["depex"]
    assert f["DepexA"] == "gEfiCpuArchProtocolGuid"
    assert f["DepexB"] == "gEfiCpuArchProtocolGuid AND gEfiMonotonicCounterArchProtocolGuid"


def test_diff_ui_name_change(tmp_path):
    a = write(tmp_path, "a.fd", fv_named(FV_A, [driver(1, "OldName", b"z" * 8)]))
    b = write(tmp_path, "b.fd", fv_named(FV_A, [driver(1, "NewName", b"z" * 8)]))
    (f,) = files(run_json(a, b, check_exit=1))
    assert (f["UiName"], f["Changes"]) == ("NewName", ["ui"])


def _outer(inner_fv: bytes, **lz) -> bytes:
    fv_section = section(SEC_FV_IMAGE, inner_fv)
    return fv_named(FV_A, [ffs_file(guid(100), FT_FV_IMAGE, lzma_section(sections(fv_section), **lz))])


def test_diff_nested_volume_by_decompressed_content(tmp_path):
    inner = fv_named(FV_INNER, [driver(1, "Inside", b"i" * 500), driver(2, "Other", b"o" * 300)])
    changed = fv_named(FV_INNER, [driver(1, "Inside", b"I" * 500), driver(2, "Other", b"o" * 300)])
    a = write(tmp_path, "a.fd", _outer(inner))
    same = write(tmp_path, "same.fd", _outer(inner, dict_size=1 << 20, preset=1))
    b = write(tmp_path, "b.fd", _outer(changed))
    # Recompressed, same volume inside: the container file is `compression`, the inner volume equal.
    tree = run_json(a, same, check_exit=1)
    assert [(f["Name"], f["Changes"]) for f in files(tree)] == [(str(guid(100)), ["compression"])]
    # One module changed inside: it is listed in the inner volume, the container says `volume`.
    tree = run_json(a, b, check_exit=1)
    got = {(f["Volume"], f["UiName"] or f["Name"]): f["Changes"] for f in files(tree)}
    assert got == {(str(FV_A), str(guid(100))): ["volume"], (str(FV_INNER), "Inside"): ["raw"]}
    vol = next(fields(n) for n in walk(tree) if n["kind"] == "diff-volume" and fields(n)["Name"] == str(FV_INNER))
    assert (vol["Container"], vol["Nested"], vol["FilesChanged"]) == (str(FV_A), True, 1)


def test_diff_unnamed_volumes_match_by_file_system_and_order(tmp_path):
    v1 = fv_named(None, [driver(1, "One", b"1" * 10)])
    v2 = fv_named(None, [driver(2, "Two", b"2" * 10)])
    v2b = fv_named(None, [driver(2, "Two", b"3" * 10)])
    tree = run_json(write(tmp_path, "a.fd", v1, v2), write(tmp_path, "b.fd", v1, v2b), check_exit=1)
    assert [(f["UiName"], f["Volume"], f["Changes"]) for f in files(tree)] == [("Two", str(FFS2_GUID), ["raw"])]


def test_diff_api_load_pair_and_diff_images(tmp_path):
    from inspector.diff import diff_images, load_pair
    from inspector.image import LoadedImage

    a = write(tmp_path, "a.fd", fv_named(FV_A, [driver(1, "Alpha", b"a")]))
    b = write(tmp_path, "b.fd", fv_named(FV_A, [driver(1, "Alpha", b"b")]))
    img_a, img_b = load_pair(a, b)
    assert isinstance(img_a, LoadedImage) and isinstance(img_b, LoadedImage)
    assert (img_a.path, img_b.path) == (a, b)
    root = diff_images(img_a.root, img_b.root)
    assert root.kind == "diff" and root.get("Change") == "changed"
    assert [n.kind for n in root.children] == ["diff-summary", "diff-volume"]
    f = root.children[1].children[0]
    assert (f.kind, f.space is img_b.root.space, f.get("OffsetA"), f.get("SpaceA")) == ("diff-file", True,
                                                                                        f.offset, "a.fd")
    assert f.bytes[:16] == guid(1).bytes_le         # B's bytes: the FFS header starts with its Name


# ---- usage -------------------------------------------------------------------------------------

def test_diff_usage_errors_exit_2(tmp_path):
    log = fixture("eventlog/tpm2-tss/binary_measurements_pc_client.bin")
    image = trixie("OVMF.fd")
    out = run(image, log, check_exit=2)
    assert b"not a firmware image" in out.stderr and b"event log" in out.stderr
    assert run(image, tmp_path / "missing.fd", check_exit=2).stderr.count(b"\n") == 1
    assert run(image, check_exit=2).returncode == 2
    empty = tmp_path / "empty.fd"
    empty.write_bytes(b"")
    run(empty, image, check_exit=2)


# ---- real images ---------------------------------------------------------------------------------

def test_diff_image_against_itself_is_identical(tmp_path):
    image = trixie("OVMF.fd")
    out = run(image, image, check_exit=0)
    assert b"identical" in out.stdout.splitlines()[0]
    tree = run_json(image, image, "--all", check_exit=0)
    assert fields(tree)["Change"] == "unchanged"
    assert {f["Change"] for f in files(tree)} == {"unchanged"}
    # Every non-pad file UEFIExtract lists, once.
    rows = uefiextract_report(image, tmp_path)
    expected = sorted(k for k in _extract_files(rows))
    assert sorted((f["Volume"], f["Name"]) for f in files(tree)) == expected
    assert len(expected) == 138


def _secfv_module(data: bytes, ui_name: str) -> tuple[int, int]:
    """(file offset, PE32 image offset) of module `ui_name` in SECFV, walked with struct.unpack:
    SECFV is the last volume of an OVMF image (OvmfPkg/OvmfPkgX64.fdf), ending where the image
    ends, and its files are not compressed. ("_FVH" also occurs in SEC's code: FvLength decides.)
    PI vol 3: EFI_FFS_FILE_HEADER is 24 bytes, Size at +0x14; sections are 4-byte aligned,
    EFI_COMMON_SECTION_HEADER {Size[3], Type}, PE32 type 0x10."""
    pos = len(data)
    while True:
        pos = data.rfind(b"_FVH", 0, pos)
        assert pos > 0, "no volume ends at the end of the image"
        fv_len, = struct.unpack_from("<Q", data, pos - 0x28 + 0x20)
        if pos - 0x28 + fv_len == len(data) and data[pos - 0x28:pos - 0x18] == bytes(16):
            break
    pos -= 0x28
    hdr_len, = struct.unpack_from("<H", data, pos + 0x30)
    off = pos + hdr_len
    while off < pos + fv_len:
        off = (off + 7) & ~7
        size = int.from_bytes(data[off + 0x14:off + 0x17], "little")
        if size in (0, 0xFFFFFF):
            break
        if ui_name.encode("utf-16-le") + b"\0\0" in bytes(data[off:off + size]):
            sec = off + 24
            while sec < off + size:
                sec = (sec + 3) & ~3
                ssize, stype = int.from_bytes(data[sec:sec + 3], "little"), data[sec + 3]
                if stype == 0x10:
                    return off, sec + 4
                sec += max(ssize, 4)
        off += size
    pytest.fail(f"{ui_name} not found in SECFV")


def _one_byte(tmp: Path, image: Path, ui_name: str, section_name: str, at: int) -> tuple[Path, int]:
    """A copy of `image` with one byte flipped `at` bytes into PE section `section_name` of the
    SECFV module `ui_name` (PE/COFF: e_lfanew at 0x3C, NumberOfSections at +6 and
    SizeOfOptionalHeader at +20 of the COFF header, 40-byte section headers with Name[8] and
    PointerToRawData at +20); returns the copy and the flipped byte's offset."""
    data = bytearray(image.read_bytes())
    _, pe = _secfv_module(data, ui_name)
    lfanew, = struct.unpack_from("<I", data, pe + 0x3C)
    nsec, = struct.unpack_from("<H", data, pe + lfanew + 4 + 2)
    opt, = struct.unpack_from("<H", data, pe + lfanew + 4 + 16)
    table = pe + lfanew + 24 + opt
    for i in range(nsec):
        name = data[table + 40 * i:table + 40 * i + 8].rstrip(b"\0").decode()
        raw_ptr, = struct.unpack_from("<I", data, table + 40 * i + 20)
        if name == section_name:
            where = pe + raw_ptr + at
            data[where] ^= 0xFF
            out = tmp / f"{image.stem}-{section_name.strip('.')}.fd"
            out.write_bytes(bytes(data))
            return out, where
    pytest.fail(f"{ui_name} has no {section_name}")


@pytest.mark.parametrize("pe_section, change", [(".text", "code"), (".data", "data")])
def test_diff_one_byte_in_secfv_module(tmp_path, pe_section, change):
    image = trixie("OVMF.fd")
    copy, where = _one_byte(tmp_path, image, "SecMain", pe_section, 0x100)
    tree = run_json(image, copy, check_exit=1)
    (f,) = files(tree)
    assert (f["UiName"], f["Change"], f["Changes"], f["Type"]) == ("SecMain", "changed", [change], "SECURITY_CORE")
    assert f["Name"] == "df1ccef6-f301-4a63-9661-fc6030dcc880"
    pe = [fields(n) for n in walk(tree) if n["kind"] == "diff-section" and fields(n)["Kind"] == "pe-section"]
    assert [(p["Name"], p["Class"], p["FirstDifference"]) for p in pe] == [(pe_section, change, 0x100)]
    node = next(n for n in walk(tree) if n["kind"] == "diff-section" and fields(n)["Kind"] == "pe-section")
    assert node["offset"] + 0x100 == where and node["space"] == copy.name


def test_diff_debug_directory_only_is_debug_only(tmp_path):
    """The DEBUG build's SecMain with its TimeDateStamp and one byte of the CodeView PDB path changed
    (PE/COFF spec: COFF header +4; the path is the NUL-terminated string after the 16-byte NB10
    header that the debug directory entry's PointerToRawData/RVA points at)."""
    image = firmware("ovmf-debug/OVMF.fd")
    data = bytearray(image.read_bytes())
    file_at, pe_at = _secfv_module(data, "SecMain")
    path_at = data.find(b"/OvmfPkg/Sec/SecMain/DEBUG/SecMain.dll", pe_at)
    assert path_at > 0
    data[path_at + 1] ^= 0x20                      # 'O' -> 'o' in the build path
    lfanew, = struct.unpack_from("<I", data, pe_at + 0x3C)
    struct.pack_into("<I", data, pe_at + lfanew + 8, 0x5F5E1000)   # TimeDateStamp
    copy = tmp_path / "debug-only.fd"
    copy.write_bytes(bytes(data))
    (f,) = files(run_json(image, copy, check_exit=1))
    assert (f["UiName"], f["Changes"]) == ("SecMain", ["debug-only"])


def _extract_files(rows) -> dict[tuple[str, str], list[int]]:
    """{(volume GUID, file GUID): [CRC32...]} from UEFIExtract's report: a file belongs to the
    nearest volume above it with a smaller depth; pad files ("Padding file") have no GUID."""
    out: dict[tuple[str, str], list[int]] = {}
    volumes: list[tuple[int, str]] = []
    for r in rows:
        if r.type == "Volume":
            while volumes and volumes[-1][0] >= r.depth:
                volumes.pop()
            volumes.append((r.depth, r.name.lower()))
        elif r.type == "File" and GUID_RE.match(r.name) and r.subtype != "Pad":
            while volumes and volumes[-1][0] >= r.depth:
                volumes.pop()
            out.setdefault((volumes[-1][1], r.name.lower()), []).append(r.crc32)
    return out


def _extract_diff(a_rows, b_rows) -> tuple[set, set, set]:
    fa, fb = _extract_files(a_rows), _extract_files(b_rows)
    added = {k for k in fb if k not in fa}
    removed = {k for k in fa if k not in fb}
    changed = {k for k in fa if k in fb and fa[k] != fb[k]}
    return added, removed, changed


PAIRS = {
    "bookworm-vs-trixie-code4m": (lambda: bookworm("OVMF_CODE_4M.fd"), lambda: trixie("OVMF_CODE_4M.fd")),
    "bookworm-vs-trixie-ovmf": (lambda: bookworm("OVMF.fd"), lambda: trixie("OVMF.fd")),
    "bookworm-plain-vs-secboot": (lambda: bookworm("OVMF_CODE_4M.fd"), lambda: bookworm("OVMF_CODE_4M.secboot.fd")),
    "trixie-plain-vs-secboot": (lambda: trixie("OVMF_CODE_4M.fd"), lambda: trixie("OVMF_CODE_4M.secboot.fd")),
    "trixie-configa-vs-configb": (lambda: trixie("OVMF.fd"), lambda: firmware("inteltdx/OVMF.fd")),
}


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_diff_module_lists_match_uefiextract(tmp_path, pair):
    a, b = (get() for get in PAIRS[pair])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    added, removed, changed = _extract_diff(uefiextract_report(a, tmp_path / "a"),
                                            uefiextract_report(b, tmp_path / "b"))
    tree = run_json(a, b, check_exit=1)
    got = {c: {(f["Volume"], f["Name"]) for f in by_change(tree, c)} for c in ("added", "removed", "changed")}
    assert got["added"] == added
    assert got["removed"] == removed
    assert got["changed"] == changed
    assert added or removed or changed


def test_diff_configb_drops_pei_network_and_tpm(tmp_path):
    """What TDVF Config-B (OvmfPkg/IntelTdx/IntelTdxX64.fdf) leaves out of and adds to Debian 13's
    Config-A OVMF.fd (OvmfPkg/OvmfPkgX64.fdf), by module GUID over the whole image."""
    tree = run_json(trixie("OVMF.fd"), firmware("inteltdx/OVMF.fd"), check_exit=1)
    new = sorted(f["UiName"] for f in by_change(tree, "added") if "MovedFrom" not in f)
    dropped = sorted(f["UiName"] or f["GuidName"] for f in by_change(tree, "removed") if "MovedTo" not in f)
    assert new == ["SecMain"]          # OvmfPkg/IntelTdx/Sec/SecMain.inf: another FILE_GUID
    assert dropped == sorted([
        "gPeiAprioriFileNameGuid", "AmdSevDxe", "ArpDxe", "CpuMpPei", "CpuMpPei", "Dhcp4Dxe", "Dhcp6Dxe", "DnsDxe",
        "DpcDxe", "DxeIpl", "Hash2DxeCrypto", "HttpBootDxe", "HttpDxe", "HttpUtilitiesDxe", "IScsiDxe", "Ip4Dxe",
        "Ip6Dxe", "MnpDxe", "Mtftp4Dxe", "Mtftp6Dxe", "PcdPeim", "PeiCore", "PlatformPei",
        "ReportStatusCodeRouterPei", "S3Resume2Pei", "SecMain", "SnpDxe", "StatusCodeHandlerPei", "Tcg2ConfigDxe",
        "Tcg2ConfigPei", "Tcg2Dxe", "Tcg2Pei", "Tcg2PlatformDxe", "Tcg2PlatformPei", "TcgDxe", "TcgMor", "TcgPei",
        "TcpDxe", "TdTcg2Pei", "TlsAuthConfigDxe", "TlsDxe", "TpmMmioSevDecryptPei", "Udp4Dxe", "Udp6Dxe",
        "UefiPxeBcDxe", "VirtHstiDxe", "VirtioKeyboardDxe", "VirtioNetDxe", "VirtioSerialDxe", "VlanConfigDxe",
        "httpDynamicCommand", "tftpDynamicCommand"])
    vols = {fields(n)["Label"]: fields(n)["Change"] for n in walk(tree) if n["kind"] == "diff-volume"}
    assert vols["PEIFV"] == "removed" and vols["gEfiNonCcFvGuid"] == "added"
    moved = [f for f in by_change(tree, "added") if "MovedFrom" in f]
    assert len(moved) == 29 and {f["MovedFrom"] for f in moved} == {"7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1"}
    assert all(f["MovedChanges"] for f in moved)     # another build: every moved driver differs too
    summary = fields(next(n for n in walk(tree) if n["kind"] == "diff-summary"))
    assert (summary["ModulesNew"], summary["ModulesDropped"], summary["FilesMoved"]) == (1, 52, 29)
    # The TDX metadata: Config-B's TempMem section starts a page lower (IntelTdxX64.fdf vs OvmfPkgX64.fdf).
    meta = [fields(n) for n in walk(tree) if n["kind"] == "diff-metadata" and fields(n)["Table"] == "tdx"]
    assert [(m["Index"], m["Type"], m["MemoryAddressA"], m["MemoryAddressB"]) for m in meta] == \
        [(2, "TempMem", 0x811000, 0x810000)]


def test_diff_bookworm_vs_trixie_sizes_and_pei_architecture(tmp_path):
    a, b = bookworm("OVMF_CODE_4M.fd"), trixie("OVMF_CODE_4M.fd")
    tree = run_json(a, b, check_exit=1)
    pei = next(f for f in files(tree) if f["UiName"] == "PeiCore")
    assert pei["Changes"][:4] == ["code", "data", "reloc", "headers"]
    headers = next(fields(n) for n in walk(tree) if n["kind"] == "diff-section" and fields(n)["Name"] == "headers"
                   and n["offset"] < 0x1000)
    assert "Machine" in headers["Fields"]          # Debian 13 builds PEI for X64, Debian 12 for IA32
    summary = fields(next(n for n in walk(tree) if n["kind"] == "diff-summary"))
    # The compressed FVMAIN_COMPACT section sizes: the GUID-defined section's 3-byte Size, read here.
    sizes = []
    for image in (a, b):
        data = image.read_bytes()
        at = data.find(LZMA_GUID.bytes_le) - 4
        sizes.append(int.from_bytes(data[at:at + 3], "little"))
    assert (summary["CompressedA"], summary["CompressedB"]) == tuple(sizes)
    assert (summary["DecompressedA"], summary["DecompressedB"]) == tuple(
        struct.unpack_from("<Q", image.read_bytes(), image.read_bytes().find(LZMA_GUID.bytes_le) - 4 + 24 + 5)[0]
        for image in (a, b))


def test_diff_vars_secure_boot_certificates_by_subject():
    a, b = trixie("OVMF_VARS_4M.ms.fd"), trixie("OVMF_VARS_4M.snakeoil.fd")
    tree = run_json(a, b, check_exit=1)
    assert files(tree) == []
    variables = {fields(n)["Name"]: n for n in walk(tree) if n["kind"] == "diff-variable"}
    assert sorted(variables) == ["KEK", "PK", "db"]
    snake = "C=US, ST=Colorado, L=Fort Collins, O=SnakeOil, CN=SnakeOil Test Key for EFI Secure Boot"
    debian = "O=Debian, CN=Debian UEFI Secure Boot (PK/KEK key), emailAddress=debian-devel@lists.debian.org"
    ms = "C=US, ST=Washington, L=Redmond, O=Microsoft Corporation, CN="
    sigs = {name: sorted((fields(s)["Change"], fields(s)["Subject"]) for s in n["children"])
            for name, n in variables.items()}
    assert sigs["PK"] == [("added", snake), ("removed", debian)]
    assert sigs["KEK"] == [("added", snake), ("removed", ms + "Microsoft Corporation KEK CA 2011"),
                           ("removed", debian)]
    assert sigs["db"] == [("added", snake), ("removed", ms + "Microsoft Corporation UEFI CA 2011"),
                          ("removed", ms + "Microsoft Windows Production PCA 2011")]
    assert fields(variables["PK"])["Changes"] == ["data", "certificates"]
    assert fields(variables["PK"])["VendorGuid"] == "8be4df61-93ca-11d2-aa0d-00e098032b8c"


def test_diff_vars_against_empty_store_lists_live_variables(tmp_path):
    """Debian 13's blank VARS against the Microsoft-keys one: the live variables UEFIExtract lists
    (VSS entries that are not "Invalid") are the added ones, by name and vendor GUID."""
    a, b = trixie("OVMF_VARS_4M.fd"), trixie("OVMF_VARS_4M.ms.fd")
    tree = run_json(a, b, check_exit=1)
    got = sorted((fields(n)["VendorGuid"], fields(n)["Name"]) for n in walk(tree)
                 if n["kind"] == "diff-variable" and fields(n)["Change"] == "added")
    rows_a = uefiextract_report(a, tmp_path)
    (tmp_path / "b").mkdir()
    rows_b = uefiextract_report(b, tmp_path / "b")

    def live(rows):
        return {(r.name.lower(), r.text) for r in rows if r.type == "VSS entry" and r.subtype != "Invalid"}
    assert got == sorted(live(rows_b) - live(rows_a))
    assert ("8be4df61-93ca-11d2-aa0d-00e098032b8c", "PK") in got


def test_diff_text_output_names_modules_and_sections(tmp_path):
    image = trixie("OVMF.fd")
    copy, _ = _one_byte(tmp_path, image, "SecMain", ".text", 0x10)
    out = run(image, copy, check_exit=1).stdout.decode()
    assert "~ SecMain (SECURITY_CORE, df1ccef6-f301-4a63-9661-fc6030dcc880): code [.text]" in out
    assert ".text: code, 0x9ac0 bytes, first difference at +0x10" in out


def test_diff_bookworm_vs_trixie_metadata_tdx_and_sev_added():
    """Debian 13's CODE_4M carries TDX and SEV metadata that Debian 12's lacks, and moves the SEV-ES
    AP reset IP. The OVMF GUIDed table (OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm) is read here:
    each entry is "data, UINT16 length, GUID", walked back from the footer GUID at 4 GiB - 0x30;
    the SEV-ES reset block's data is the UINT32 SEV_ES_AP_RESET_IP."""
    a, b = bookworm("OVMF_CODE_4M.fd"), trixie("OVMF_CODE_4M.fd")
    sev_es = uuid.UUID("00f771de-1a7e-4fcb-890e-68c77e2fb44e").bytes_le
    ips = []
    for image in (a, b):
        data = image.read_bytes()
        at = data.rfind(sev_es)
        ips.append(struct.unpack_from("<I", data, at - 2 - 4)[0])
    tree = run_json(a, b, check_exit=1)
    meta = [fields(n) for n in walk(tree) if n["kind"] == "diff-metadata"]
    entry = next(m for m in meta if m["Table"] == "ovmf-table" and m["Type"] == str(uuid.UUID(bytes_le=sev_es)))
    assert (entry["Change"], entry["SevEsApResetIpA"], entry["SevEsApResetIpB"]) == ("changed", *ips)
    tdx = [(m["Index"], m["Change"]) for m in meta if m["Table"] == "tdx"]
    sev = [(m["Index"], m["Change"]) for m in meta if m["Table"] == "sev"]
    assert tdx == [(None, "added")] + [(i, "added") for i in range(6)]
    assert sev == [(None, "added")] + [(i, "added") for i in range(6)]
    assert ips[0] != ips[1]


def test_diff_module_moved_between_volumes(tmp_path):
    fv_b = uuid.UUID("bbbbbbbb-0000-0000-0000-000000000002")
    mover, stay = driver(7, "Mover", b"m" * 40), driver(8, "Stay", b"s" * 40)
    a = write(tmp_path, "a.fd", fv_named(FV_A, [mover, stay]), fv_named(fv_b, [driver(9, "Other", b"o")]))
    b = write(tmp_path, "b.fd", fv_named(FV_A, [stay]), fv_named(fv_b, [driver(9, "Other", b"o"), mover]))
    tree = run_json(a, b, check_exit=1)
    got = sorted((f["Change"], f["Volume"], f.get("MovedTo"), f.get("MovedFrom"), f["MovedChanges"])
                 for f in files(tree))
    assert got == [("added", str(fv_b), None, str(FV_A), []), ("removed", str(FV_A), str(fv_b), None, [])]
    summary = fields(next(n for n in walk(tree) if n["kind"] == "diff-summary"))
    assert (summary["ModulesNew"], summary["ModulesDropped"], summary["FilesMoved"]) == (0, 0, 1)
    # Moved and changed: the copies are compared.
    b2 = write(tmp_path, "b2.fd", fv_named(FV_A, [stay]), fv_named(fv_b, [driver(9, "Other", b"o"),
                                                                          driver(7, "Mover", b"M" * 40)]))
    moved = [f["MovedChanges"] for f in files(run_json(a, b2, check_exit=1))]
    assert moved == [["raw"], ["raw"]]


def test_diff_shares_identical_compressed_streams_by_content(tmp_path):
    """A section of B whose compressed bytes are one of A's is inflated once, for both; found by
    its bytes, not its position (B holds A's two streams in the other order, and one more)."""
    one = ffs_file(guid(21), EFI_FV_FILETYPE_FREEFORM, lzma_section(sections(section(SEC_RAW, b"1" * 5000))))
    two = ffs_file(guid(22), EFI_FV_FILETYPE_FREEFORM, lzma_section(sections(section(SEC_RAW, b"2" * 5000))))
    new = ffs_file(guid(23), EFI_FV_FILETYPE_FREEFORM, lzma_section(sections(section(SEC_RAW, b"3" * 5000))))
    a = write(tmp_path, "a.fd", fv_named(FV_A, [one, two]))
    b = write(tmp_path, "b.fd", fv_named(FV_A, [two, one, new]))
    tree = run_json(a, b, "--all", check_exit=1)
    assert sorted((f["Name"], f["Change"]) for f in files(tree)) == [
        (str(guid(21)), "unchanged"), (str(guid(22)), "unchanged"), (str(guid(23)), "added")]
    from inspector.diff import load_pair

    img_a, img_b = load_pair(a, b)
    for img, want in ((img_a, [b"1" * 5000, b"2" * 5000]), (img_b, [b"2" * 5000, b"1" * 5000, b"3" * 5000])):
        raws = [n.bytes[4:] for n in img.root.find("section") if n.get("Type") == SEC_RAW]
        assert raws == want


def test_diff_shorter_build_path_is_debug_only(tmp_path):
    """Another build tree (a path one byte shorter, as GenFw writes it: SizeOfData = the 16-byte NB10
    header + the path + NUL, the rest of the section zero) changes only the debug data."""
    image = firmware("ovmf-debug/OVMF.fd")
    data = bytearray(image.read_bytes())
    _, pe_at = _secfv_module(data, "SecMain")
    path_at = data.find(b"/tmp/lab/src/", pe_at)
    end = data.index(b"\0", path_at)
    path = bytes(data[path_at:end])
    data[path_at:end + 1] = path.replace(b"/tmp/lab/", b"/tmp/la/", 1) + b"\0\0"   # same span, one byte shorter
    # The debug directory entry (EFI_IMAGE_DEBUG_DIRECTORY_ENTRY, 28 bytes: SizeOfData at +16) whose
    # PointerToRawData (+24) is the NB10 record 16 bytes before the path.
    record = path_at - 16
    entry = next(e for e in range(pe_at, record, 4)
                 if struct.unpack_from("<I", data, e + 24)[0] == record - pe_at
                 and struct.unpack_from("<I", data, e + 12)[0] == 2)           # Type CODEVIEW
    size, = struct.unpack_from("<I", data, entry + 16)
    struct.pack_into("<I", data, entry + 16, size - 1)
    copy = tmp_path / "shorter-path.fd"
    copy.write_bytes(bytes(data))
    (f,) = files(run_json(image, copy, check_exit=1))
    assert (f["UiName"], f["Changes"]) == ("SecMain", ["debug-only"])


KINDS = {"diff", "diff-summary", "diff-volume", "diff-file", "diff-section", "diff-variable", "diff-signature",
         "diff-metadata",
         # what the change does to the measurements (inspector/diff_measure.py), the root's last child
         "diff-measurements", "diff-mrtd", "diff-mrtd-page", "diff-mrtd-more", "diff-mrtd-range", "diff-tdx-sections",
         "diff-tdx-section", "diff-tpm", "diff-tpm-blob", "diff-tpm-blob-file", "diff-tpm-blob-more",
         "diff-tpm-blob-page", "diff-tpm-crtm-version", "diff-tpm-register"}


@pytest.mark.parametrize("pair", ["code", "vars"])
def test_diff_json_every_node_has_a_documented_kind_and_change(pair):
    a, b = ((bookworm("OVMF_CODE_4M.fd"), trixie("OVMF_CODE_4M.fd")) if pair == "code"
            else (trixie("OVMF_VARS_4M.fd"), trixie("OVMF_VARS_4M.ms.fd")))
    tree = run_json(a, b, "--all", check_exit=1)
    assert tree["children"][-1]["kind"] == "diff-measurements"
    root = fields(tree)
    assert (root["ImageA"], root["ImageB"], root["SizeA"], root["SizeB"]) == (str(a), str(b), a.stat().st_size,
                                                                              b.stat().st_size)
    for n in walk(tree):
        assert n["kind"] in KINDS, n["kind"]
        f = fields(n)
        assert f["Change"] in ("added", "removed", "changed", "unchanged"), n["title"]
        if n["kind"] == "diff-file":
            assert {"Name", "UiName", "Volume", "SizeA", "SizeB", "Type"} <= set(f)
            assert f["Name"] == f["Name"].lower() and GUID_RE.match(f["Name"].upper())
            assert ("Changes" in f) == (f["Change"] == "changed")
        if n["kind"] in ("diff-file", "diff-volume", "diff-variable") and f["Change"] != "added":
            assert "OffsetA" in f, n["title"]
