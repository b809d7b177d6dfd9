"""decoders.fd on Debian's real OVMF images, checked against UEFIExtract run on the same bytes
and against layout facts from edk2 (OvmfPkg/OvmfPkgDefines.fdf.inc, OvmfPkgX64.fdf), plus the decompressors against their
reference implementations (the LZMA SDK's x86 BCJ encoder, edk2's LzmaCompress, edk2's own EFI/Tiano compressors, Brotli).
"""
from __future__ import annotations

import lzma
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from decoders.fd import bcj_x86_decode, decode_image
from decoders.fd.compression import brotli_decompress, efi_decompress, lzma_decompress
from decoders.model import Node, Severity
from tests.realdata import bookworm, firmware, trixie, uefiextract_report

IMAGES = {
    "bookworm/OVMF.fd": lambda: bookworm("OVMF.fd"),
    "bookworm/OVMF_CODE_4M.fd": lambda: bookworm("OVMF_CODE_4M.fd"),
    "bookworm/OVMF_VARS_4M.ms.fd": lambda: bookworm("OVMF_VARS_4M.ms.fd"),
    "trixie/OVMF.fd": lambda: trixie("OVMF.fd"),
    "trixie/OVMF_CODE_4M.fd": lambda: trixie("OVMF_CODE_4M.fd"),
    # Our builds of Debian 13's edk2 source (make firmware): TDVF Config-B (IntelTdxX64.dsc) and a
    # DEBUG OvmfPkgX64 with TPM 2.0 and CC measurement.
    "firmware/inteltdx/OVMF.fd": lambda: firmware("inteltdx/OVMF.fd"),
    "firmware/ovmf-debug/OVMF.fd": lambda: firmware("ovmf-debug/OVMF.fd"),
}
CODE_IMAGES = [k for k in IMAGES if "VARS" not in k]

# UEFITool's names for file and section types (common/types.cpp fileTypeToUString,
# sectionTypeToUString), keyed by the PI type codes.
UEFITOOL_FILE_TYPE = {0x01: "Raw", 0x02: "Freeform", 0x03: "SEC core", 0x04: "PEI core", 0x05: "DXE core",
                      0x06: "PEI module", 0x07: "DXE driver", 0x09: "Application", 0x0B: "Volume image",
                      0xF0: "Pad"}
UEFITOOL_SECTION_TYPE = {0x01: "Compressed", 0x02: "GUID defined", 0x10: "PE32 image", 0x12: "TE image",
                         0x13: "DXE dependency", 0x14: "Version", 0x15: "UI", 0x17: "Volume image",
                         0x19: "Raw", 0x1B: "PEI dependency"}

DXE_CORE = uuid.UUID("D6A2CB7F-6A18-4E2F-B43B-9920A733700A")
PEIFV = uuid.UUID("6938079B-B503-4E3D-9D24-B28337A25806")
DXEFV = uuid.UUID("7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1")
SECFV = uuid.UUID("763BED0D-DE9F-48F5-81F1-3E90E1B1A015")
NCCFV = uuid.UUID("AE047C6D-BCE9-426C-AE03-A68E3B8A0488")   # gEfiNonCcFvGuid, OvmfPkg/OvmfPkg.dec
FVMAIN_COMPACT = uuid.UUID("48DB5E17-707C-472D-91CD-1613E7EF51B0")
NVDATA = uuid.UUID("FFF12B8D-7696-4C8B-A985-2747075B4F50")
VTF = uuid.UUID("1BA0062E-C779-4582-8566-336AE8F78F09")


@dataclass
class Row:
    """A UEFIExtract report row with its children (rows are depth-indented by dashes)."""

    type: str
    subtype: str
    base: int | None
    size: int
    name: str
    text: str
    children: list["Row"] = field(default_factory=list)


def _extract_tree(path: Path, tmp: Path) -> Row:
    root = Row("root", "", None, 0, "", "")
    stack: list[tuple[int, Row]] = [(-1, root)]
    for r in uefiextract_report(path, tmp):
        row = Row(r.type, r.subtype, r.base, r.size, r.name, r.text)
        while stack[-1][0] >= r.depth:
            stack.pop()
        stack[-1][1].children.append(row)
        stack.append((r.depth, row))
    return root


def _rows(row: Row, typ: str):
    stack = [row]
    while stack:
        n = stack.pop()
        if n.type == typ:
            yield n
        stack.extend(reversed(n.children))


def _volume_id(fv: Node) -> str:
    return str(fv.get("FvName") or fv.get("FileSystemGuid")).upper()


def _holds_ext_header(f: Node) -> bool:
    return any(c.kind == "fv-ext-header" for c in f.children)


def _section_rows(row: Row, depth: int = 0) -> list[tuple[int, str, int]]:
    out = []
    for c in row.children:
        if c.type == "Section":
            out.append((depth, c.subtype, c.size))
            out.extend(_section_rows(c, depth + 1))
    return out


def _our_sections(node: Node, depth: int = 0) -> list[tuple[int, str, int]]:
    out = []
    for c in node.children:
        if c.kind == "section":
            out.append((depth, UEFITOOL_SECTION_TYPE[c.get("Type")], c.size))
            out.extend(_our_sections(c, depth + 1))
    return out


_cache: dict[str, tuple[Node, Row]] = {}


@pytest.fixture
def decoded(request, tmp_path):
    key = request.param
    if key not in _cache:
        path = IMAGES[key]()
        image = decode_image(path.read_bytes(), name=path.name)
        _cache[key] = (image, _extract_tree(path, tmp_path))
    return _cache[key]


@pytest.mark.parametrize("decoded", list(IMAGES), indirect=True)
def test_volumes_match_uefiextract(decoded):
    """Every volume, nested ones included, in UEFIExtract's order with its name and size;
    flash-resident ones at UEFIExtract's offsets."""
    image, tree = decoded
    theirs = [(v.name, v.size, v.base) for v in _rows(tree, "Volume")]
    ours = [(_volume_id(v), v.size, v.offset if v.space is image.space else None) for v in image.find("fv")]
    assert ours == theirs


@pytest.mark.parametrize("decoded", CODE_IMAGES, indirect=True)
def test_files_match_uefiextract(decoded):
    """Per volume: the ordered files (GUID, type, size, offset when in flash) and the free space.
    UEFIExtract hides the pad file that GenFv puts the extended header in (GenFvInternalLib.c)."""
    image, tree = decoded
    for fv, vrow in zip(image.find("fv"), _rows(tree, "Volume"), strict=True):
        if fv.get("FileSystemGuid") == NVDATA:
            continue
        theirs = [(r.subtype, "pad" if r.subtype == "Pad" else r.name, r.size, r.base)
                  for r in vrow.children if r.type == "File"]
        files = [f for f in fv.children if f.kind == "ffs" and not _holds_ext_header(f)]
        ours = [(UEFITOOL_FILE_TYPE[f.get("Type")], "pad" if f.get("Type") == 0xF0 else str(f.get("Name")).upper(),
                 f.size, f.offset if f.space is image.space else None) for f in files]
        assert ours == theirs, fv.title
        assert [r.size for r in vrow.children if r.type == "Free space"] == \
            [c.size for c in fv.children if c.kind == "free-space"]
        assert sum(_holds_ext_header(f) for f in fv.children) == (1 if fv.get("ExtHeaderOffset") else 0)


@pytest.mark.parametrize("decoded", CODE_IMAGES, indirect=True)
def test_sections_match_uefiextract(decoded):
    """Per file: the section tree (nesting depth, type, size) down to nested volumes, including
    what came out of the LZMA section."""
    image, tree = decoded
    their_files = [r for r in _rows(tree, "File")]
    our_files = [f for f in image.find("ffs") if not _holds_ext_header(f)]
    assert len(our_files) == len(their_files)
    for f, r in zip(our_files, their_files):
        assert _our_sections(f) == _section_rows(r), f.title


@pytest.mark.parametrize("decoded", CODE_IMAGES, indirect=True)
def test_ui_names_match_uefiextract(decoded):
    """The file title carries the USER_INTERFACE name UEFITool shows in its text column."""
    image, tree = decoded
    texts = {r.name: r.text for r in _rows(tree, "File") if r.text}
    checked = 0
    for f in image.find("ffs"):
        ui = f.get("UI")
        if ui:
            assert texts[str(f.get("Name")).upper()] == ui
            assert ui in f.title
            checked += 1
    assert checked > 80     # every module of these builds has a UI name: Config-B, the smallest, 84


@pytest.mark.parametrize("decoded", list(IMAGES), indirect=True)
def test_real_images_decode_without_errors(decoded):
    """edk2 built these images: every checksum, size and alignment must check out."""
    image, _ = decoded
    errors = [(n.title, str(p)) for n, p in image.all_problems() if p.severity is Severity.ERROR]
    assert errors == []
    for fv in image.find("fv"):
        nums = [f.value for f in fv.fields if f.name.endswith(".NumBlocks")]
        lens = [f.value for f in fv.fields if f.name.endswith("].Length")]
        assert fv.get("FvLength") == sum(n * b for n, b in zip(nums, lens, strict=True))


@pytest.mark.parametrize("name,size,layout", [
    # OvmfPkg/OvmfPkgDefines.fdf.inc: VARS, FVMAIN_COMPACT and SECFV offsets and sizes.
    ("bookworm/OVMF.fd", 0x200000, [(NVDATA, 0, 0x20000), (FVMAIN_COMPACT, 0x20000, 0x1AC000),
                                    (SECFV, 0x1CC000, 0x34000)]),
    ("trixie/OVMF.fd", 0x400000, [(NVDATA, 0, 0x84000), (FVMAIN_COMPACT, 0x84000, 0x348000),
                                  (SECFV, 0x3CC000, 0x34000)]),
    ("bookworm/OVMF_CODE_4M.fd", 0x37C000, [(FVMAIN_COMPACT, 0, 0x348000), (SECFV, 0x348000, 0x34000)]),
])
def test_ovmf_layout_facts(name, size, layout):
    path = IMAGES[name]()
    image = decode_image(path.read_bytes())
    assert image.size == size
    assert image.get("Base") == (1 << 32) - size   # the image's last byte sits at 4 GiB - 1
    assert [(_fv_name(v), v.offset, v.size) for v in image.children if v.kind == "fv"] == layout
    secfv = next(v for v in image.children if v.kind == "fv" and v.get("FvName") == SECFV)
    assert [f.get("Type") for f in secfv.children if f.kind == "ffs"].count(0x03) == 1   # one SEC_CORE
    vtf = next(f for f in secfv.children if f.kind == "ffs" and f.get("Name") == VTF)
    assert vtf.address + vtf.size == 1 << 32      # the reset vector file ends at 4 GiB
    assert "Volume Top File" in vtf.title


def _fv_name(v: Node):
    return v.get("FvName") or v.get("FileSystemGuid")


@pytest.mark.parametrize("decoded", CODE_IMAGES, indirect=True)
def test_compressed_volumes(decoded, request):
    """FVMAIN_COMPACT's one FV_IMAGE file holds one LZMA section with PEIFV and DXEFV (OvmfPkg/OvmfPkgX64.fdf),
    decoded in a new space whose parent is that section; DxeCore sits in DXEFV, PeiCore in PEIFV. TDVF
    Config-B has no PEI phase: its LZMA section holds DXEFV and NCCFV, the drivers loaded only
    outside a confidential guest (OvmfPkg/IntelTdx/IntelTdxX64.fdf, [FV.NCCFV])."""
    image, _ = decoded
    config_b = "inteltdx" in request.node.callspec.params["decoded"]
    main = next(v for v in image.children if v.kind == "fv" and v.get("FvName") == FVMAIN_COMPACT)
    vol_file = next(f for f in main.children if f.kind == "ffs" and f.get("Type") == 0x0B)
    assert str(vol_file.get("Name")).upper() == "9E21FD93-9C72-4C15-8C4B-E77F1DB2D792"
    (lz,) = [s for s in vol_file.children if s.kind == "section"]
    assert lz.get("SectionDefinitionGuid") == uuid.UUID("EE4E5898-3914-4259-9D6E-DC7BD79403CF")
    nested = [v for v in lz.walk() if v.kind == "fv"]
    assert [v.get("FvName") for v in nested] == ([DXEFV, NCCFV] if config_b else [PEIFV, DXEFV])
    for v in nested:
        assert v.space.parent is lz and v.space.base is None
        assert v.space.name == f"{image.space.name}/lzma@0x{lz.offset:x}"
    if "bookworm" in image.space.name or image.size == 0x200000:
        assert nested[0].size == 0xE0000   # OvmfPkgX64.fdf: PEIFV 0xE0000
    dxe_files = {f.get("Name"): f for f in nested[0 if config_b else 1].children if f.kind == "ffs"}
    assert dxe_files[DXE_CORE].get("Type") == 0x05
    assert dxe_files[DXE_CORE].get("UI") == "DxeCore"
    if not config_b:
        assert any(f.get("UI") == "PeiCore" and f.get("Type") == 0x04 for f in nested[0].children)


def test_vars_volume_goes_to_the_variable_decoder():
    """An NV-data volume (MdeModulePkg/Include/Guid/SystemNvDataGuid.h) is not parsed as FFS: no file nodes under it."""
    path = IMAGES["bookworm/OVMF_VARS_4M.ms.fd"]()
    image = decode_image(path.read_bytes())
    (fv,) = [v for v in image.children if v.kind == "fv"]
    assert fv.get("FileSystemGuid") == NVDATA and fv.get("HeaderLength") == 0x48
    assert not list(fv.find("ffs"))


# -- decompressors against reference implementations ------------------------------------------

def test_bcj_x86_decoder_undoes_the_lzma_sdk_encoder_on_real_code():
    """The generator's port of the LZMA SDK's Bra86.c encoder (sample_images/build/bcj.py, as
    edk2's LzmaCompress --f86 runs it) turns real OVMF code (SECFV, then reversed for more E8/E9
    patterns near the end); liblzma's x86 filter, as our decoder drives it, must undo it exactly."""
    from sample_images.build import bcj
    code = bookworm("OVMF.fd").read_bytes()[0x1CC000:0x200000]
    code = code + bytes(reversed(code))
    encoded = bcj.encode(code)
    assert encoded != code
    assert bytes(bcj_x86_decode(encoded)) == code == bcj.decode(encoded)


@pytest.mark.parametrize("size", [0, 1, 4, 5, 6, 9, 0xFFFF, 0x10000, 0x10001, 0x10005])
def test_bcj_x86_decoder_keeps_the_tail_and_chunk_edges(size):
    """E8 opcodes everywhere, so conversions straddle the 64 KiB chunks the decoder feeds liblzma
    and reach the last 5 bytes, which Bra86.c never converts (it stops at size - 5)."""
    from sample_images.build import bcj
    code = (b"\xe8\x10\x00\x00\x00\xe9\xf0\xff\xff\xff\x90" * (size // 11 + 1))[:size]
    assert bytes(bcj_x86_decode(bcj.encode(code))) == code


def test_lzmaf86_section_from_edk2_lzmacompress_decodes_to_its_input():
    """edk2's own LzmaCompress --f86 (the BaseTools build the firmware cache holds) writes the size
    in the header and no end marker; the whole pipeline must give back the DXE core it compressed."""
    tool = Path(__file__).resolve().parents[2] / ".cache/edk2-build/src/BaseTools/Source/C/bin/LzmaCompress"
    if not tool.exists():
        pytest.skip("edk2 BaseTools LzmaCompress not built (make firmware)")
    import subprocess
    import tempfile
    from decoders.fd.compression import lzma_x86_decompress
    image = decode_image(bookworm("OVMF.fd").read_bytes())
    dxefv = [v for v in image.find("fv") if v.get("FvName") == DXEFV][0]
    code = dxefv.bytes[:0x100000]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "in").write_bytes(code)
        subprocess.run([tool, "-e", "--f86", "-q", "-o", Path(tmp, "out"), Path(tmp, "in")], check=True)
        payload = Path(tmp, "out").read_bytes()
    assert int.from_bytes(payload[5:13], "little") == len(code)
    assert bytes(lzma_x86_decompress(payload, 1 << 26)) == code


def test_lzma_alone_roundtrip_and_declared_size():
    data = bookworm("OVMF.fd").read_bytes()[0x1CC000:0x200000]
    packed = lzma.compress(data, format=lzma.FORMAT_ALONE)
    # liblzma writes an unknown size; edk2's LzmaCompress writes the real one (BaseTools/Source/C/LzmaCompress/LzmaCompress.c).
    packed = packed[:5] + len(data).to_bytes(8, "little") + packed[13:]
    assert lzma_decompress(packed, 1 << 26) == data


def test_efi_and_tiano_roundtrip_with_edk2_compressors():
    from uefi_firmware import efi_compressor
    data = bookworm("OVMF.fd").read_bytes()[0x1CC078:0x1D4FF8]
    efi = efi_compressor.EfiCompress(data, len(data))
    tiano = efi_compressor.TianoCompress(data, len(data))
    assert efi_decompress(efi, 1 << 26) == (data, "EFI")
    assert efi_decompress(tiano, 1 << 26, tiano_first=True) == (data, "Tiano")


def test_brotli_roundtrip():
    import brotli
    data = bookworm("OVMF.fd").read_bytes()[0x1CC078:0x1D4FF8]
    payload = len(data).to_bytes(8, "little") + (0x1000).to_bytes(8, "little") + brotli.compress(data)
    assert brotli_decompress(payload, 1 << 26) == data
