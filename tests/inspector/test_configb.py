"""TDVF Config-B (OvmfPkg/IntelTdx/IntelTdxX64.dsc, our RELEASE build of Debian 13's edk2 2025.02) offline:
the summary, the TDX metadata, the MRTD in both page orders, `extract`, the boot-phase model, and
what `fwinspect qemu`/`attach` say about it.

Every expectation is read from the image with struct.unpack following the source layouts, or taken
from the build files, or from UEFIExtract run on the same bytes; never from our own decoders:
- the OVMF GUIDed table: OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm (footer GUID
  96B582DE-1FB2-45F7-BAEA-A366C55A082D at 4 GiB - 0x30, the table length just before it, entries
  "data, UINT16 length, GUID" walked backwards); the TDX metadata offset entry E47A6535-984A-4798-
  865E-4685A7BF8EC2 holds `fourGigabytes - TdxMetadataGuid - 16`, the distance from the end of the
  image to the TDVF descriptor;
- TDVF_DESCRIPTOR {"TDVF", Length, Version, NumberOfSectionEntry} and TDVF_SECTION {DataOffset u32,
  RawDataSize u32, MemoryAddress u64, MemoryDataSize u64, Type u32, Attributes u32}:
  OvmfPkg/ResetVector/X64/IntelTdxMetadata.asm, and the Intel TDX Virtual Firmware Design Guide
  (rev 1.01, "TDVF Metadata"); section values from OvmfPkg/Include/Fdf/OvmfPkgDefines.fdf.inc
  (4 MiB: VARS_SIZE 0x84000, FVMAIN_SIZE 0x348000, SECFV_SIZE 0x34000) and
  OvmfPkg/IntelTdx/IntelTdxX64.fdf [FD.MEMFD] at 0x800000 (page tables +0, TD HOB +0x9000/0x2000,
  work area + GHCB backup +0xB000/0x2000, SEC temp RAM +0x10000/0x10000).
"""
from __future__ import annotations

import collections
import hashlib
import json
import lzma
import os
import shutil
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from decoders.ovmf.metadata import tdx_sections
from inspector.image import load_image
from tests.realdata import bookworm, firmware, tool, uefiextract_report

ROOT = Path(__file__).resolve().parents[2]
FOUR_GIB = 1 << 32
FOOTER_GUID = uuid.UUID("96b582de-1fb2-45f7-baea-a366c55a082d")
TDX_OFFSET_GUID = uuid.UUID("e47a6535-984a-4798-865e-4685a7bf8ec2")
TDX_METADATA_GUID = uuid.UUID("e9eaf9f3-168e-44d5-a8eb-7f4d8738f6ae")
# OvmfPkg/IntelTdx/Sec/SecMain.inf FILE_GUID (OvmfPkg/Sec/SecMain.inf's is DF1CCEF6-...).
PEILESS_SEC_GUID = uuid.UUID("69d96630-eb64-4b33-8491-13a5cf023dcf")
BFV, CFV, TD_HOB, TEMP_MEM = 0, 1, 2, 3
MR_EXTEND, PAGE_AUG = 0x1, 0x2

# (DataOffset, RawDataSize, MemoryAddress, MemoryDataSize, Type, Attributes) in IntelTdxMetadata.asm's
# order: _Bfv, _Cfv, _TdxHeapStack, _TdxInitMem, _TdHob, _OvmfPageTable (sources in the module doc).
CONFIG_B_SECTIONS = [
    (0x84000, 0x37C000, 0xFFC84000, 0x37C000, BFV, MR_EXTEND),
    (0x0, 0x84000, 0xFFC00000, 0x84000, CFV, 0),
    (0, 0, 0x810000, 0x10000, TEMP_MEM, 0),
    (0, 0, 0x80B000, 0x2000, TEMP_MEM, 0),
    (0, 0, 0x809000, 0x2000, TD_HOB, 0),
    (0, 0, 0x800000, 0x6000, TEMP_MEM, 0),
]


def run_cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspector.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def configb_path() -> Path:
    return firmware("inteltdx/OVMF.fd")


@pytest.fixture(scope="module")
def configb(configb_path):
    return load_image(configb_path)


# ---- the metadata, read with struct from the image bytes -----------------------------------------

def guided_table(data: bytes) -> dict[uuid.UUID, bytes]:
    """OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm: footer GUID at E-0x30, table length at E-0x32,
    entries "data, UINT16 length (data + 18), GUID" walked back from the footer."""
    end = len(data) - 0x20                                  # guidedStructureEnd (then 0xffffffe0)
    assert uuid.UUID(bytes_le=data[end - 16:end]) == FOOTER_GUID
    table_len = struct.unpack_from("<H", data, end - 18)[0]
    start, at = end - table_len, end - 18
    out = {}
    while at > start:
        guid = uuid.UUID(bytes_le=data[at - 16:at])
        length = struct.unpack_from("<H", data, at - 18)[0]
        assert 18 <= length <= at - start
        out[guid] = data[at - length:at - 18]
        at -= length
    return out


def tdvf_from_bytes(data: bytes) -> tuple[int, tuple, list[tuple]]:
    """(descriptor offset, descriptor, sections) read from the image with struct.unpack."""
    (from_end,) = struct.unpack("<I", guided_table(data)[TDX_OFFSET_GUID])
    at = len(data) - from_end
    assert uuid.UUID(bytes_le=data[at - 16:at]) == TDX_METADATA_GUID
    desc = struct.unpack_from("<4sIII", data, at)
    sections = [struct.unpack_from("<IIQQII", data, at + 16 + 32 * i) for i in range(desc[3])]
    return at, desc, sections


def test_configb_tdx_metadata_read_with_struct_has_the_build_files_values(configb_path):
    data = configb_path.read_bytes()
    assert len(data) == 0x400000                             # FD_SIZE_4MB (OvmfPkgDefines.fdf.inc)
    at, desc, sections = tdvf_from_bytes(data)
    assert at == 0x3FF640 == len(data) - 0x9C0               # measured on this build
    assert desc == (b"TDVF", 16 + 32 * 6, 1, 6)
    assert sections == CONFIG_B_SECTIONS


def test_configb_tdx_metadata_decode_equals_struct_read_section_by_section(configb, configb_path):
    data = configb_path.read_bytes()
    at, desc, raw = tdvf_from_bytes(data)
    meta = configb.tdx_metadata()
    assert (meta.offset, meta.get("Signature"), meta.get("Length"), meta.get("Version"),
            meta.get("NumberOfSectionEntry")) == (at, b"TDVF", desc[1], desc[2], desc[3])
    assert meta.get("ImageLayout") == "unified"
    assert not list(meta.all_problems())
    nodes = [c for c in meta.children if c.kind == "tdx-section"]
    decoded = tdx_sections(meta)
    assert len(nodes) == len(decoded) == len(raw) == 6
    for i, (node, s, (off, size, base, msize, typ, attr)) in enumerate(zip(nodes, decoded, raw)):
        assert node.offset == at + 16 + 32 * i
        assert [node.get(k) for k in ("DataOffset", "RawDataSize", "MemoryAddress", "MemoryDataSize", "Type",
                                      "Attributes")] == [off, size, base, msize, typ, attr]
        assert (s.data_offset, s.raw_data_size, s.memory_address, s.memory_data_size, s.type,
                s.attributes) == (off, size, base, msize, typ, attr)
        assert s.pages == msize // 0x1000
        assert s.mr_extend == bool(attr & MR_EXTEND) and s.page_aug == bool(attr & PAGE_AUG)
        # A unified image: the data is at DataOffset in this very file.
        assert s.file_offset == (off if size else None)
    assert [s.type_name for s in decoded] == ["BFV", "CFV", "TempMem", "TempMem", "TD_HOB", "TempMem"]
    assert [node.field("Attributes").display for node in nodes] == ["MR.EXTEND", "0", "0", "0", "0", "0"]


def test_configb_summary_says_config_b_pei_less_and_unified(configb):
    i = configb.info
    assert i.get("Layout").startswith("unified")               # IntelTdxX64.fdf [FD.OVMF]: VARS + CODE
    assert i.get("Architecture") == "X64"
    assert i.get("TDX") is True
    assert i.field("TDX").display.startswith("TDX metadata present; Config-B (PEI-less")
    assert i.get("TDX.ImageLayout") == "unified"
    # IntelTdxX64.fdf lists OvmfPkg/TdxDxe and the TDX measured-boot driver in DXEFV.
    assert i.get("Module.TdxDxe") and i.get("Module.TdTcg2Dxe")
    assert i.field("Module.PeilessStartupLib") is None


# ---- MRTD in both orders, computed here from the struct-read metadata -----------------------------
# Intel TDX Module ABI Specification, leaf functions TDH.MEM.PAGE.ADD and TDH.MR.EXTEND (as quoted in
# td-shim doc/tdshim_spec.md, "MRTD"): MRTD is one SHA-384 over 128-byte buffers;
# TDH.MEM.PAGE.ADD(gpa) hashes "MEM.PAGE.ADD" at bytes 0-11, the GPA (u64 LE) at 16-23, zeros to 127;
# TDH.MR.EXTEND(gpa) hashes "MR.EXTEND" at 0-8, the GPA at 16-23, zeros to 127, then the 256-byte chunk.

def _page_add(gpa: int) -> bytes:
    return b"MEM.PAGE.ADD" + bytes(4) + struct.pack("<Q", gpa) + bytes(104)


def _mr_extend(gpa: int, chunk: bytes) -> bytes:
    assert len(chunk) == 256
    return b"MR.EXTEND" + bytes(7) + struct.pack("<Q", gpa) + bytes(104) + chunk


def mrtd(data: bytes, sections: list[tuple], order: str) -> tuple[str, int, int]:
    """(hex digest, pages added, pages extended). per-page: each page's PAGE.ADD then its 16
    MR.EXTENDs; two-pass: a section's PAGE.ADDs, then its MR.EXTENDs."""
    h = hashlib.sha384()
    added = extended = 0
    for off, size, base, msize, _typ, attr in sections:
        body = data[off:off + size].ljust(msize, b"\0")   # zero-filled up to MemoryDataSize
        pages = range(msize // 0x1000)

        def add(p):
            nonlocal added
            if not attr & PAGE_AUG:
                h.update(_page_add(base + p * 0x1000))
                added += 1

        def extend(p):
            nonlocal extended
            if attr & MR_EXTEND:
                for c in range(16):
                    at = p * 0x1000 + c * 256
                    h.update(_mr_extend(base + at, body[at:at + 256]))
                extended += 1

        if order == "per-page":
            for p in pages:
                add(p)
                extend(p)
        else:
            for p in pages:
                add(p)
            for p in pages:
                extend(p)
    return h.hexdigest(), added, extended


def test_configb_mrtd_both_orders_match_an_independent_computation(configb_path):
    data = configb_path.read_bytes()
    _, _, sections = tdvf_from_bytes(data)
    r = run_cli("mrtd", str(configb_path), "--order", "both", "--json")
    assert r.returncode == 0, r.stderr
    got = {}
    for n in json.loads(r.stdout)["children"]:
        if n["kind"] == "mrtd":
            f = {x["name"]: x["value"] for x in n["fields"]}
            got[f["Order"]] = (f["MRTD"], f["PagesAdded"], f["PagesExtended"])
    per_page, two_pass = mrtd(data, sections, "per-page"), mrtd(data, sections, "two-pass")
    assert got == {"per-page": per_page, "two-pass": two_pass}
    # 0x37c000 + 0x84000 + 0x10000 + 0x2000 + 0x2000 + 0x6000 bytes of pages, only the BFV extended.
    assert per_page[1:] == (1050, 892)
    assert per_page[0] != two_pass[0]
    # This build's values (sha256 31c8d4cb... of inteltdx/OVMF.fd, ../shared/firmware/README.md).
    assert per_page[0] == ("44f7ee99e490d55182a13fa2d595922929f317d866af7ee7"
                           "efcf38a9918be6dff876d8f4f7d55d8f41113fcb1a35775a")
    assert two_pass[0] == ("15e1ebd55f74d06e251337e34641f0b1cfaef95731f17b33"
                           "57ac794cfd9022c247590f1c3370cd43aa02750def221650")


# ---- extract, against UEFIExtract on the same bytes -----------------------------------------------

def _uefiextract_all(image: Path, tmp: Path) -> Path:
    exe = tool("UEFIExtract", "uefitool-cli")
    tmp.mkdir(parents=True, exist_ok=True)
    copy = tmp / image.name
    shutil.copyfile(image, copy)
    subprocess.run([exe, str(copy), "all"], check=True, capture_output=True, timeout=120)
    return Path(str(copy) + ".dump")


def _name_of(section_dir: Path) -> str:
    """UEFIExtract names a file's folder "N UI-name" (or "N GUID")."""
    return section_dir.parent.name.split(" ", 1)[1]


def test_configb_extract_matches_uefiextract_files_and_pe32_bodies(configb_path, tmp_path):
    out = tmp_path / "out"
    r = run_cli("extract", str(configb_path), str(out))
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    ours = collections.Counter()
    ours_by_file: dict[str, list[bytes]] = collections.defaultdict(list)
    for e in manifest:
        if e["kind"] == "pe":
            body = (out / e["path"]).read_bytes()
            assert len(body) == e["size"]
            ours[hashlib.sha256(body).hexdigest()] += 1
            ffs_dir = next(p for p in Path(e["path"]).parents if "_ffs_" in p.name)
            ours_by_file[ffs_dir.name.split("_ffs_", 1)[1].split("_")[0]].append(body)

    dump = _uefiextract_all(configb_path, tmp_path / "ue")
    theirs = collections.Counter()
    theirs_by_file: dict[str, list[bytes]] = collections.defaultdict(list)
    for d in dump.rglob("* PE32 image section"):
        body = (d / "body.bin").read_bytes()
        theirs[hashlib.sha256(body).hexdigest()] += 1
        theirs_by_file[_name_of(d)].append(body)
    assert sum(theirs.values()) == 84                      # measured: 84 PE32 sections, no TE
    assert ours == theirs                                  # every PE32 body, byte for byte
    for name in ("SecMain", "DxeCore", "BdsDxe", "TdxDxe", "PcdDxe"):
        assert ours_by_file[name] and ours_by_file[name] == theirs_by_file[name], name

    # Files: UEFIExtract hides the pad file GenFv puts each extended header in (one per volume with
    # an FvNameGuid, GenFvInternalLib.c); every other FFS file is written by extract.
    (tmp_path / "report").mkdir()
    report = uefiextract_report(configb_path, tmp_path / "report")
    files = [e for e in manifest if e["kind"] == "ffs"]
    ext_pads = [e for e in files if "extended header" in e["title"]]
    assert sum(1 for row in report if row.type == "File") == 88 == len(files) - len(ext_pads)
    assert len(ext_pads) == 4                              # FVMAIN_COMPACT, DXEFV, NCCFV, SECFV
    assert sum(1 for row in report if row.type == "Section") == 312 == sum(
        1 for e in manifest if e["kind"] == "section")

    # The one decompressed blob is what lzma (FORMAT_ALONE, LzmaDecompress.c's 13-byte header) makes
    # of the GUID-defined section's data, which UEFIExtract dumps as that section's body.
    lzma_dir = next(dump.rglob("* EE4E5898-3914-4259-9D6E-DC7BD79403CF"))
    blob = lzma.decompress((lzma_dir / "body.bin").read_bytes(), format=lzma.FORMAT_ALONE)
    (dec,) = [e for e in manifest if e["kind"] == "decompressed"]
    assert (out / dec["path"]).read_bytes() == blob and len(blob) == 0xC00020
    # ... and it holds DXEFV and NCCFV, each equal to UEFIExtract's volume image section body.
    for guid in ("7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1", "AE047C6D-BCE9-426C-AE03-A68E3B8A0488"):
        ue = next(lzma_dir.rglob(f"* {guid}")).parent / "body.bin"
        (fv,) = [e for e in manifest if e["kind"] == "fv" and guid in e["title"]]
        assert (out / fv["path"]).read_bytes() == ue.read_bytes(), guid


# ---- the boot-phase model, offline ---------------------------------------------------------------

def boot_phases(img):
    (bp,) = [c for c in img.info.children if c.kind == "boot-phases"]
    return bp, {c.get("Phase"): c for c in bp.children if c.kind == "boot-phase"}


def sec_entry_from_bytes(data: bytes, file_guid: uuid.UUID) -> int:
    """The SEC file (FFS header 24 bytes, PiFirmwareFile.h) whose first section is PE32 (4-byte common
    header): 4 GiB - image size + PE offset + AddressOfEntryPoint (PE/COFF: e_lfanew at 0x3C,
    AddressOfEntryPoint at optional header + 16)."""
    at = data.index(file_guid.bytes_le)
    assert data[at + 0x12] == 0x03                          # EFI_FV_FILETYPE_SECURITY_CORE
    assert data[at + 24 + 3] == 0x10                        # EFI_SECTION_PE32
    pe = at + 24 + 4
    lfanew = struct.unpack_from("<I", data, pe + 0x3C)[0]
    rva = struct.unpack_from("<I", data, pe + lfanew + 24 + 16)[0]
    return FOUR_GIB - len(data) + pe + rva


def test_configb_boot_phases_are_reset_sec_dxe_core_bds_with_peiless_startup(configb, configb_path):
    bp, by = boot_phases(configb)
    assert bp.get("Handoffs") == ["reset", "sec", "dxe-core", "bds"]
    assert bp.get("PEI") is False
    assert list(by) == ["reset", "sec", "dxe-core", "bds"]
    assert by["reset"].get("Entry") == 0xFFFFFFF0
    assert (by["reset"].offset, by["reset"].size) == (0x400000 - 16, 16)
    sec = sec_entry_from_bytes(configb_path.read_bytes(), PEILESS_SEC_GUID)
    assert sec == 0xFFFD9B84 == by["sec"].get("Entry")      # UEFIExtract: image base FFFCC094h + DAF0h
    assert by["sec"].get("Module") == "SecMain" and by["sec"].get("FileGuid") == PEILESS_SEC_GUID
    assert "flash address 0xfffd9b84" in by["sec"].get("Where")
    for phase, name, volume in (("dxe-core", "DxeCore", "DXEFV"), ("bds", "BdsDxe", "DXEFV")):
        assert by[phase].get("Module") == name and by[phase].get("Volume") == volume
        assert by[phase].get("Entry") is None and "loaded at run time" in by[phase].title
    assert "PeilessStartup" in by["dxe-core"].get("Where")
    notes = [c.title for c in bp.children if c.kind == "boot-phase-note"]
    assert any(t.startswith("no PEI phase: SEC's PeilessStartup (OvmfPkg/IntelTdx/Sec/SecMain.c") for t in notes)
    assert any(t.startswith("NCCFV:") for t in notes)


def test_config_a_boot_phases_have_pei_core_and_dxe_ipl_and_no_peiless_note():
    img = load_image(bookworm("OVMF_CODE_4M.fd"))
    bp, by = boot_phases(img)
    assert bp.get("Handoffs") == ["reset", "sec", "pei-core", "dxe-ipl", "dxe-core", "bds"]
    assert bp.get("PEI") is True
    assert by["sec"].get("Entry") == 0xFFFCEB84                # flash 0xfffcc094 + AddressOfEntryPoint 0x2af0
    assert by["pei-core"].get("Entry") == 0x82584A             # ImageBase 0x820140 + 0x570a, XIP in PEIFV
    assert by["pei-core"].get("Volume") == "PEIFV"
    assert [by[p].get("Entry") for p in ("dxe-ipl", "dxe-core", "bds")] == [None, None, None]
    assert "DxeIpl" in by["dxe-core"].get("Where")
    assert not [c for c in bp.children if c.kind == "boot-phase-note"]


def test_fd_text_shows_the_boot_phases_of_config_b(configb_path):
    r = run_cli("fd", str(configb_path))
    assert r.returncode == 0, r.stderr
    assert "Boot phases: reset -> sec -> dxe-core -> bds (no PEI: SEC hands off to the DXE core)" in r.stdout
    assert "sec: SecMain entry 0xfffd9b84" in r.stdout


# ---- qemu and attach on a Config-B image ---------------------------------------------------------

def _fake_qemu_env(tmp_path: Path) -> tuple[dict, Path]:
    """PATH with a qemu-system-x86_64 that only leaves a mark: a test fails if QEMU is started."""
    bin_dir, mark = tmp_path / "bin", tmp_path / "qemu-started"
    bin_dir.mkdir()
    fake = bin_dir / "qemu-system-x86_64"
    fake.write_text(f"#!/bin/sh\ntouch '{mark}'\nexit 1\n")
    fake.chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"), mark


@pytest.mark.parametrize("phase", ["pei-core", "dxe-ipl"])
def test_qemu_until_a_phase_config_b_lacks_is_refused_before_qemu_starts(configb_path, tmp_path, phase):
    env, mark = _fake_qemu_env(tmp_path)
    r = run_cli("qemu", str(configb_path), "--until", phase, "--timeout", "30", env=env)
    assert r.returncode == 2, r.stderr
    assert not mark.exists()
    (line,) = r.stderr.strip().splitlines()
    assert line == (f"fwinspect: OVMF.fd has no {phase} handoff: it is TDVF Config-B (PEI-less: SEC's "
                    f"PeilessStartup hands off to the DXE core); its handoffs: reset, sec, dxe-core, bds")


def test_attach_to_config_b_warns_and_refuses_a_missing_phase(configb_path):
    r = run_cli("attach", "127.0.0.1:1", "--image", str(configb_path), "--until", "pei-core")
    assert r.returncode == 2 and "has no pei-core handoff" in r.stderr
    # Allowed otherwise (the guest may be a TD or not): the note, then the connection fails.
    r = run_cli("attach", "127.0.0.1:1", "--image", str(configb_path), "--until", "sec", "--timeout", "5")
    assert r.returncode == 1
    assert "note: OVMF.fd is TDVF Config-B" in r.stderr and "attaching to 127.0.0.1:1 failed" in r.stderr


def test_qemu_on_config_a_gets_no_config_b_note(tmp_path):
    # A Config-A TDX image (bookworm's OVMF.fd, OvmfPkgX64 with TDX metadata) goes straight to QEMU.
    env, mark = _fake_qemu_env(tmp_path)
    r = run_cli("qemu", str(bookworm("OVMF.fd")), "--until", "pei-core", "--timeout", "30", env=env)
    assert mark.exists()                                    # it did try to start QEMU
    assert "Config-B" not in r.stderr and "has no" not in r.stderr


@pytest.mark.live
def test_qemu_boots_config_b_to_sec_as_a_normal_guest(configb_path):
    """QEMU 7.2 has no TDX: the image runs as a normal guest. Its SEC checks CcProbe() before
    touching the TD HOB (OvmfPkg/IntelTdx/Sec/SecMain.c) and PeilessStartup builds its own HOB list
    outside a TD (OvmfPkg/Library/PeilessStartupLib/PeilessStartup.c); measured here, it reaches BDS."""
    tool("qemu-system-x86_64", "qemu-system-x86")
    r = run_cli("qemu", str(configb_path), "--until", "sec", "--timeout", "30", "--json", timeout=90)
    assert r.returncode == 0, r.stderr
    stop = json.loads(r.stdout)
    assert (stop["handoff"], stop["linear_rip"], stop["module"]) == ("sec", 0xFFFD9B84, "SecMain")
    assert stop["registers"]["rbp"] == 0xFFFCC000            # SECFV's base, the BFV the reset vector found
    assert "note: OVMF.fd is TDVF Config-B" in r.stderr
    # The QEMU it started was ended with it.
    ps = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True, text=True).stdout
    assert str(configb_path) not in ps
