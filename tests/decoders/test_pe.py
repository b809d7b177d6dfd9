"""PE32/PE32+/TE decoding (decoders/pe), checked against binutils' objdump and UEFIExtract on the
PE32 sections of Debian's real OVMF images, plus hand-built malformed images."""
from __future__ import annotations

import os
import re
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from decoders.model import Node, Space
from decoders.pe import decode_pe, decode_te
from decoders.pe.decode import MAX_PDB_PATH, MAX_SECTIONS
from tests.realdata import bookworm, tool, trixie

# -- real images -----------------------------------------------------------------------------------
@dataclass
class PeBody:
    path: Path
    module: str  # the FFS file's folder name in UEFIExtract's dump ("12 DxeIpl")
    info: dict[str, str]  # UEFIExtract's info.txt of the PE32 section


def extract_pe_bodies(image: Path, tmp: Path) -> list[PeBody]:
    """UEFIExtract FILE dump, then every "PE32 image section" body with its info.txt."""
    exe = tool("UEFIExtract", "uefitool-cli")
    copy = tmp / image.name
    copy.write_bytes(image.read_bytes())
    subprocess.run([exe, str(copy), "dump"], check=True, capture_output=True, timeout=120)
    out = []
    for dirpath, _dirs, files in os.walk(str(copy) + ".dump"):
        d = Path(dirpath)
        if d.name.endswith("PE32 image section") and "body.bin" in files:
            info = {}
            for line in (d / "info.txt").read_text(errors="replace").splitlines():
                if ": " in line:
                    k, v = line.split(": ", 1)
                    info[k.strip()] = v.strip()
            out.append(PeBody(d / "body.bin", d.parent.name, info))
    return sorted(out, key=lambda b: str(b.path))


@dataclass
class ObjdumpPe:
    fmt: str = ""
    values: dict[str, str] = field(default_factory=dict)
    sections: list[tuple[str, int, int, int]] = field(default_factory=list)  # name, size, vma, file off
    directories: dict[int, tuple[int, int]] = field(default_factory=dict)
    dll_flags: list[str] = field(default_factory=list)


def objdump_all(paths: list[Path]) -> dict[str, ObjdumpPe]:
    """`objdump -p -h` on every file in one run, parsed per file."""
    exe = tool("objdump", "binutils")
    res = subprocess.run([exe, "-p", "-h", *map(str, paths)], check=True, capture_output=True, text=True,
                         timeout=300)
    out: dict[str, ObjdumpPe] = {}
    cur = None
    last = ""
    head = re.compile(r"^(.*):\s+file format (\S+)$")
    sec = re.compile(r"^\s+\d+\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+2\*\*\d+$")
    entry = re.compile(r"^Entry ([0-9a-f]) ([0-9a-f]+) ([0-9a-f]+) ")
    for line in res.stdout.splitlines():
        m = head.match(line)
        if m:
            cur = out.setdefault(m.group(1), ObjdumpPe(fmt=m.group(2)))
            continue
        if cur is None:
            continue
        m = sec.match(line)
        if m:
            cur.sections.append((m.group(1), int(m.group(2), 16), int(m.group(3), 16), int(m.group(4), 16)))
            continue
        m = entry.match(line)
        if m:
            cur.directories[int(m.group(1), 16)] = (int(m.group(2), 16), int(m.group(3), 16))
            continue
        if "\t" in line and not line.startswith("\t"):
            k, v = line.split("\t", 1)
            cur.values[k.strip()] = v.strip()
            last = k.strip()
        elif line.startswith("\t\t") and last == "DllCharacteristics":  # one flag name a line
            cur.dll_flags.append(line.strip())
    return out


_BODIES: dict[str, list[PeBody]] = {}


@pytest.fixture(scope="module")
def real_pe(tmp_path_factory):
    """name -> (bodies, objdump results), extracted once per module."""
    def get(image: Path):
        key = str(image)
        if key not in _BODIES:
            tmp = tmp_path_factory.mktemp(image.stem)
            bodies = extract_pe_bodies(image, tmp)
            _BODIES[key] = (bodies, objdump_all([b.path for b in bodies]))
        return _BODIES[key]
    return get


MACHINE_BY_FORMAT = {"pei-x86-64": 0x8664, "pei-i386": 0x14C}
SUBSYSTEM_BY_OBJDUMP = {"EFI application": 10, "EFI boot service driver": 11, "EFI runtime driver": 12}


def check_against_objdump(body: PeBody, od: ObjdumpPe, node: Node) -> None:
    where = body.module
    assert not [p for _, p in node.all_problems() if p.severity.value == "error"], where
    assert node.get("Machine") == MACHINE_BY_FORMAT[od.fmt], where
    v = od.values
    assert node.get("Magic") == int(v["Magic"].split()[0], 16), where
    assert node.get("AddressOfEntryPoint") == int(v["AddressOfEntryPoint"], 16), where
    assert node.get("ImageBase") == int(v["ImageBase"], 16), where
    assert node.get("SectionAlignment") == int(v["SectionAlignment"], 16), where
    assert node.get("FileAlignment") == int(v["FileAlignment"], 16), where
    assert node.get("SizeOfImage") == int(v["SizeOfImage"], 16), where
    assert node.get("SizeOfHeaders") == int(v["SizeOfHeaders"], 16), where
    assert node.get("NumberOfRvaAndSizes") == int(v["NumberOfRvaAndSizes"], 16), where
    sub = int(v["Subsystem"].split()[0], 16)
    assert node.get("Subsystem") == sub, where
    assert node.get("DllCharacteristics") == int(v["DllCharacteristics"], 16), where
    for flag in od.dll_flags:  # objdump names them as the PE/COFF spec does (NX_COMPAT, ...)
        assert flag in node.field("DllCharacteristics").text, (where, flag)
    name = re.search(r"\((.*)\)", v["Subsystem"]).group(1)
    assert SUBSYSTEM_BY_OBJDUMP[name] == sub, where
    # Data directories: same RVA and size for every entry objdump lists.
    for i, (rva, size) in od.directories.items():
        names = [f for f in node.fields if f.name.startswith("DataDirectory.")]
        assert names[i].value == {"VirtualAddress": rva, "Size": size}, (where, i)
    # Sections: name, VMA = ImageBase + VirtualAddress, file offset; BFD's size for an image
    # section is its VirtualSize when that is smaller than SizeOfRawData (bfd/peicode.h).
    ours = [c for c in node.children if c.kind == "pe-section"]
    assert len(ours) == len(od.sections) == node.get("NumberOfSections"), where
    image_base = node.get("ImageBase")
    for c, (sname, ssize, vma, foff) in zip(ours, od.sections):
        assert c.get("Name") == sname, where
        assert (image_base + c.get("VirtualAddress")) & 0xFFFFFFFFFFFFFFFF == vma, (where, sname)
        assert c.get("PointerToRawData") == foff, (where, sname)
        vsize, rsize = c.get("VirtualSize"), c.get("SizeOfRawData")
        assert ssize == (min(vsize, rsize) if vsize else rsize), (where, sname, ssize)
    assert node.get("EntryPointAddress") == image_base + node.get("AddressOfEntryPoint")


def check_against_uefiextract(body: PeBody, node: Node) -> None:
    info = body.info
    h = lambda s: int(s.rstrip("h"), 16)  # noqa: E731 - UEFIExtract prints "2AF0h"
    assert node.get("Machine") == {"x86-64": 0x8664, "x86": 0x14C}[info["Machine type"]]
    assert node.get("NumberOfSections") == int(info["Number of sections"])
    assert node.get("Characteristics") == h(info["Characteristics"])
    assert node.get("Magic") == h(info["Optional header signature"])
    assert node.get("Subsystem") == h(info["Subsystem"])
    assert node.get("AddressOfEntryPoint") == h(info["Address of entry point"])
    assert node.get("BaseOfCode") == h(info["Base of code"])
    assert node.get("ImageBase") == h(info["Image base"])


@pytest.mark.real
@pytest.mark.parametrize("which,name", [
    ("bookworm", "OVMF.fd"),
    ("bookworm", "OVMF_CODE_4M.fd"),
    ("trixie", "OVMF_CODE_4M.fd"),
])
def test_every_pe32_matches_objdump_and_uefiextract(real_pe, which, name):
    image = bookworm(name) if which == "bookworm" else trixie(name)
    bodies, od = real_pe(image)
    assert len(bodies) > 100
    for body in bodies:
        data = body.path.read_bytes()
        node = decode_pe(Space(body.path.name, data), 0, len(data))
        assert node.kind == "pe"
        check_against_objdump(body, od[str(body.path)], node)
        check_against_uefiextract(body, node)


@pytest.mark.real
def test_trixie_runtime_drivers_are_nx_compat(real_pe):
    """Debian 13 (edk2 2025.02) marks its runtime drivers NX_COMPAT; objdump names the flag."""
    bodies, od = real_pe(trixie("OVMF_CODE_4M.fd"))
    flagged = [b.module for b in bodies if "NX_COMPAT" in od[str(b.path)].dll_flags]
    assert flagged and any(m.endswith(" RuntimeDxe") for m in flagged)
    for b in bodies:
        if b.module in flagged:
            data = b.path.read_bytes()
            assert "NX_COMPAT" in decode_pe(Space("x", data), 0, len(data)).field("DllCharacteristics").text


@pytest.mark.real
def test_bookworm_counts_match_uefiextract(real_pe):
    """Debian 12's OVMF_CODE_4M (OvmfPkgIa32X64: IA32 SEC/PEI, X64 DXE) has 14 IA32 + 110 X64 PE32
    images, OVMF.fd (OvmfPkgX64) 127 X64, as UEFIExtract lists their PE32 sections."""
    for name, want in (("OVMF_CODE_4M.fd", {0x14C: 14, 0x8664: 110}), ("OVMF.fd", {0x8664: 127})):
        bodies, od = real_pe(bookworm(name))
        got: dict[int, int] = {}
        for b in bodies:
            m = MACHINE_BY_FORMAT[od[str(b.path)].fmt]
            got[m] = got.get(m, 0) + 1
        assert got == want, name


@pytest.mark.real
def test_sec_core_of_code_4m_is_ia32_and_linked_where_it_sits(real_pe):
    """The SEC core of OVMF_CODE_4M is IA32 and runs in place from flash (OvmfPkgIa32X64.dsc builds SEC
    for IA32; GenFv rebases SECFV modules to their flash address)."""
    bodies, _ = real_pe(bookworm("OVMF_CODE_4M.fd"))
    (sec,) = [b for b in bodies if b.module.endswith(" SecMain")]
    data = sec.path.read_bytes()
    load = int(sec.info["Data address"].rstrip("h"), 16)  # UEFIExtract: where the body sits in flash
    node = decode_pe(Space("SecMain", data), 0, len(data), load_address=load)
    assert node.get("Machine") == 0x14C
    assert node.get("XipEntryPoint") == load + node.get("AddressOfEntryPoint")
    assert node.get("XipEntryPoint") == node.get("EntryPointAddress")
    assert not node.problems
    assert node.title.startswith("PE32 IA32 boot-service driver, entry 0x")


@pytest.mark.real
def test_dxe_driver_not_linked_for_flash_gets_a_note(real_pe):
    bodies, _ = real_pe(bookworm("OVMF.fd"))
    (core,) = [b for b in bodies if b.module.endswith(" DxeCore")]
    data = core.path.read_bytes()
    node = decode_pe(Space("DxeCore", data), 0, len(data), load_address=0x900000)
    assert node.get("ImageBase") == 0  # DXEFV modules are not rebased by GenFv; DxeIpl/DxeCore load them
    assert node.get("XipEntryPoint") == 0x900000 + node.get("AddressOfEntryPoint")
    assert any("linked for 0x0" in p.message for p in node.problems)
    assert node.title.startswith("PE32+ X64 ")


@pytest.mark.real
def test_decode_pe_at_an_offset_in_a_larger_space(real_pe):
    """Field offsets are absolute in the node's space."""
    bodies, _ = real_pe(bookworm("OVMF.fd"))
    data = bodies[0].path.read_bytes()
    blob = b"\xff" * 0x1234 + data + b"\xff" * 16
    node = decode_pe(Space("blob", blob), 0x1234, len(data))
    alone = decode_pe(Space("alone", data), 0, len(data))
    assert node.field("e_lfanew").offset == 0x1234 + 0x3C
    assert node.get("AddressOfEntryPoint") == alone.get("AddressOfEntryPoint")
    assert [c.offset - 0x1234 for c in node.children] == [c.offset for c in alone.children]


# -- hand-built images -----------------------------------------------------------------------------


FILE_ALIGN = 0x200


def build_pe(*, machine=0x8664, pe32_plus=True, image_base=0x400000, entry=0x1010, nsections=None,
             lfanew=0x80, debug: bytes | None = None, debug_rva=None, codeview=None) -> bytes:
    """A minimal PE packed field by field from the PE/COFF specification's layouts (not from the
    decoder's declarations): headers, one .text section at RVA 0x1000 and, when `codeview` is
    given, a CODEVIEW debug entry and its record in that section."""
    text = bytearray(b"\xc3" * 0x100)  # ret
    dbg_dir = (0, 0)
    if codeview is not None:
        cv_rva = 0x1000 + 0x80
        # "Debug Directory": Characteristics, TimeDateStamp, MajorVersion, MinorVersion, Type,
        # SizeOfData, AddressOfRawData, PointerToRawData (28 bytes).
        entry_bytes = struct.pack("<IIHHIIII", 0, 0, 0, 0, 2, len(codeview), cv_rva, FILE_ALIGN + 0x80)
        text[0x40:0x40 + len(entry_bytes)] = entry_bytes
        text[0x80:0x80 + len(codeview)] = codeview
        dbg_dir = (debug_rva if debug_rva is not None else 0x1040, len(entry_bytes))
    # "Optional Header": standard fields (PE32 has BaseOfData, a 4-byte ImageBase and 4-byte stack
    # and heap sizes; PE32+ 8-byte ones), then the Windows-specific fields up to NumberOfRvaAndSizes:
    # 96 bytes for PE32, 112 for PE32+, then 16 data directories of 8 bytes.
    word = "Q" if pe32_plus else "I"
    standard = struct.pack("<HBBIIIII", 0x20B if pe32_plus else 0x10B, 0, 0, len(text), 0, 0, entry, 0x1000)
    if not pe32_plus:
        standard += struct.pack("<I", 0)  # BaseOfData
    windows = struct.pack(f"<{word}IIHHHHHHIIIIHH{word}{word}{word}{word}II",
                          image_base, 0x1000, FILE_ALIGN,   # ImageBase, SectionAlignment, FileAlignment
                          0, 0, 0, 0, 0, 0,                 # OS, image and subsystem versions
                          0, 0x2000, FILE_ALIGN, 0,         # Win32VersionValue, SizeOfImage, SizeOfHeaders, CheckSum
                          10, 0x0100,                       # Subsystem EFI_APPLICATION, DllCharacteristics NX_COMPAT
                          0, 0, 0, 0,                       # stack and heap reserve and commit
                          0, 16)                            # LoaderFlags, NumberOfRvaAndSizes
    optional = standard + windows
    assert len(optional) == (112 if pe32_plus else 96)
    sooh = len(optional) + 16 * 8
    dirs = [(0, 0)] * 16
    dirs[6] = dbg_dir
    # MS-DOS stub header: e_magic "MZ" at 0, e_lfanew at 0x3C (64 bytes).
    head = bytearray(struct.pack("<H58xI", 0x5A4D, lfanew))
    head += b"\0" * (0x80 - len(head))
    head += struct.pack("<I", 0x00004550)
    # "COFF File Header": Machine, NumberOfSections, TimeDateStamp, PointerToSymbolTable,
    # NumberOfSymbols, SizeOfOptionalHeader, Characteristics (20 bytes).
    head += struct.pack("<HHIIIHH", machine, 1 if nsections is None else nsections, 0, 0, 0, sooh, 0x22)
    head += optional
    for rva, size in dirs:
        head += struct.pack("<II", rva, size)  # "Optional Header Data Directories": VirtualAddress, Size
    # "Section Table": Name[8], VirtualSize, VirtualAddress, SizeOfRawData, PointerToRawData,
    # PointerToRelocations, PointerToLinenumbers, NumberOfRelocations, NumberOfLinenumbers,
    # Characteristics (40 bytes).
    head += struct.pack("<8sIIIIIIHHI", b".text", len(text), 0x1000, len(text), FILE_ALIGN, 0, 0, 0, 0, 0x60000020)
    head += b"\0" * (FILE_ALIGN - len(head))
    return bytes(head + text)


# The PDB GUID of an RSDS record, written as the C struct EFI_GUID lays it out (UEFI 2.10 Appendix A:
# Data1 UINT32, Data2 UINT16, Data3 UINT16 little-endian, then Data4[8] as is).
PDB_GUID = struct.pack("<IHH8s", 0x12345678, 0x9ABC, 0xDEF0, bytes.fromhex("0123456789abcdef"))


def rsds(path: bytes, age=1, guid=PDB_GUID) -> bytes:
    # CodeView 7.0 "RSDS" record: signature, GUID, age, then the NUL-terminated path
    return b"RSDS" + guid + struct.pack("<I", age) + path


def decode(data: bytes, **kw) -> Node:
    return decode_pe(Space("t", data), 0, len(data), **kw)


def errors(node: Node) -> list[str]:
    return [p.message for _, p in node.all_problems() if p.severity.value == "error"]


def test_hand_built_pe_is_what_objdump_reads(tmp_path):
    """The builder makes a real PE: objdump agrees on the headers and the RSDS record."""
    data = build_pe(codeview=rsds(b"/build/X64/Hello.pdb\0"))
    f = tmp_path / "hello.efi"
    f.write_bytes(data)
    od = objdump_all([f])[str(f)]
    node = decode(data)
    assert od.fmt == "pei-x86-64"
    assert node.get("ImageBase") == int(od.values["ImageBase"], 16) == 0x400000
    assert node.get("AddressOfEntryPoint") == int(od.values["AddressOfEntryPoint"], 16)
    assert node.get("EntryPointAddress") == 0x401010
    text = subprocess.run([tool("objdump", "binutils"), "-p", str(f)], capture_output=True, text=True).stdout
    assert "/build/X64/Hello.pdb" in text and "RSDS" in text
    assert node.get("PdbPath") == "/build/X64/Hello.pdb"
    (cv,) = node.find("pe-codeview")
    assert cv.get("Age") == 1 and cv.get("PdbPath") == "/build/X64/Hello.pdb"
    assert str(cv.get("Guid")) == "12345678-9abc-def0-0123-456789abcdef"
    assert "NX_COMPAT" in node.field("DllCharacteristics").text
    assert "EFI_APPLICATION" in node.field("Subsystem").text
    assert node.title == "PE32+ X64 UEFI application, entry 0x401010"
    assert not node.problems


def test_pe32_ia32_with_nb10_and_mtoc_paths():
    nb10 = b"NB10" + struct.pack("<III", 0, 0, 0) + b"a.dll\0"  # signature, offset, time stamp, age
    node = decode(build_pe(machine=0x14C, pe32_plus=False, codeview=nb10))
    assert node.get("Magic") == 0x10B and node.get("Machine") == 0x14C and node.get("PdbPath") == "a.dll"
    mtoc = b"MTOC" + bytes(range(16)) + b"b.dll\0"  # signature, Mach-O LC_UUID (bytes in order), path
    node = decode(build_pe(codeview=mtoc))
    assert node.get("PdbPath") == "b.dll"
    assert str(next(node.find("pe-codeview")).get("MachOUuid")) == "00010203-0405-0607-0809-0a0b0c0d0e0f"


def test_pdb_path_not_nul_terminated_is_a_problem():
    node = decode(build_pe(codeview=rsds(b"x" * 40)))  # SizeOfData ends before any NUL
    assert any("not NUL-terminated" in m for m in errors(node))


def test_debug_directory_rva_not_mapped_is_a_problem():
    node = decode(build_pe(codeview=rsds(b"p\0"), debug_rva=0x9000))
    assert any("debug directory RVA 0x9000 is not mapped" in m for m in errors(node))


def test_empty_and_tiny_inputs_give_problems():
    for data in (b"", b"MZ", b"\0" * 64):
        node = decode(data)
        assert node.kind == "pe" and errors(node)


def test_e_lfanew_past_the_end():
    data = bytearray(build_pe())
    struct.pack_into("<I", data, 0x3C, 0x7FFFFFF0)
    node = decode(bytes(data))
    assert any("e_lfanew 0x7ffffff0 points past the end" in m for m in errors(node))
    assert node.problems[0].offset == 0x3C


def test_bad_signatures():
    data = bytearray(build_pe())
    data[0x80:0x84] = b"PE\0\1"
    assert any("PE signature" in m for m in errors(decode(bytes(data))))
    data = bytearray(build_pe())
    data[0] = ord("N")
    assert any("e_magic" in m for m in errors(decode(bytes(data))))
    data = bytearray(build_pe())
    struct.pack_into("<H", data, 0x98, 0x30B)  # optional header Magic
    assert any("Magic 0x30b" in m for m in errors(decode(bytes(data))))


def test_section_table_past_the_end_and_absurd_count():
    node = decode(build_pe(nsections=0xFFFF))
    assert any("NumberOfSections 65535 is absurd" in m for m in errors(node))
    assert len([c for c in node.children if c.kind == "pe-section"]) <= MAX_SECTIONS
    cut = build_pe()[:0x190]  # ends inside the section table
    node = decode(cut)
    assert any("section table" in m for m in errors(node))


def test_section_raw_data_past_the_end():
    data = build_pe()[:FILE_ALIGN + 0x10]
    node = decode(data)
    (sec,) = [c for c in node.children if c.kind == "pe-section"]
    assert sec.problems and "runs past the end" in sec.problems[0].message
    assert sec.size == 0x10


def test_image_larger_than_its_space():
    data = build_pe()
    node = decode_pe(Space("t", data), 0, len(data) + 100)
    assert any("runs past the end of t" in p.message for p in node.problems)


def test_memory_space_without_bytes():
    node = decode_pe(Space("mem", None, base=0), 0, 0x1000)
    assert errors(node)


@pytest.mark.parametrize("cut", range(0, 0x300, 7))
def test_every_truncation_is_a_node_not_a_traceback(cut):
    data = build_pe(codeview=rsds(b"/p.pdb\0"))[:cut]
    node = decode(data)
    assert node.kind == "pe"
    node.to_json()


def test_pdb_path_bounded():
    node = decode(build_pe(codeview=rsds(b"y" * (MAX_PDB_PATH * 2))))
    path = node.get("PdbPath")
    assert path is None or len(path) <= MAX_PDB_PATH


# -- TE ------------------------------------------------------------------------------------------
def pe_to_te(pe: bytes) -> bytes:
    """Convert a PE to TE as edk2's GenFw does (BaseTools/Source/C/GenFw/GenFw.c): strip everything
    before the section table, put the 40-byte TE header in front of what is left."""
    lfanew = struct.unpack_from("<I", pe, 0x3C)[0]
    machine, nsec = struct.unpack_from("<HH", pe, lfanew + 4)
    sooh = struct.unpack_from("<H", pe, lfanew + 4 + 16)[0]
    oh = lfanew + 24
    magic = struct.unpack_from("<H", pe, oh)[0]
    entry, base_of_code = struct.unpack_from("<II", pe, oh + 16)
    if magic == 0x20B:
        image_base = struct.unpack_from("<Q", pe, oh + 24)[0]
    else:
        image_base = struct.unpack_from("<I", pe, oh + 28)[0]
    subsystem = struct.unpack_from("<H", pe, oh + 68)[0]
    dd = oh + (112 if magic == 0x20B else 96)
    reloc = struct.unpack_from("<II", pe, dd + 5 * 8)
    debug = struct.unpack_from("<II", pe, dd + 6 * 8)
    stripped = oh + sooh
    # EFI_TE_IMAGE_HEADER (PI vol 1; PeImage.h): Signature, Machine, NumberOfSections (UINT8),
    # Subsystem (UINT8), StrippedSize, AddressOfEntryPoint, BaseOfCode, ImageBase (UINT64),
    # DataDirectory[2] = {BASERELOC, DEBUG} (40 bytes).
    te = struct.pack("<HHBBHIIQIIII", 0x5A56, machine, nsec, subsystem, stripped, entry, base_of_code, image_base,
                     *reloc, *debug)
    return te + pe[stripped:]


@pytest.mark.real
def test_te_from_real_peim_matches_its_pe(real_pe):
    """A real PEIM of Debian's OVMF.fd, turned into TE the way GenFw does, decodes to the same
    machine, entry point, image base and sections."""
    bodies, _ = real_pe(bookworm("OVMF.fd"))
    (body,) = [b for b in bodies if b.module.endswith(" PlatformPei")]
    pe = body.path.read_bytes()
    te = pe_to_te(pe)
    p = decode(pe)
    t = decode_te(Space("te", te), 0, len(te))
    assert t.kind == "te" and not errors(t), errors(t)
    assert t.get("Signature") == 0x5A56
    for name in ("Machine", "AddressOfEntryPoint", "ImageBase", "BaseOfCode", "EntryPointAddress"):
        assert t.get(name) == p.get(name), name
    assert t.get("RvaAdjust") == t.get("StrippedSize") - 40
    ps = [c for c in p.children if c.kind == "pe-section"]
    ts = [c for c in t.children if c.kind == "pe-section"]
    assert [c.get("Name") for c in ts] == [c.get("Name") for c in ps]
    for a, b in zip(ps, ts):
        assert b.offset == a.offset - t.get("RvaAdjust")  # same bytes, shorter front
        assert te[b.offset:b.offset + b.size] == pe[a.offset:a.offset + a.size]
    # XIP: a TE header placed where GenFv puts it is linked for where it sits.
    load = p.get("ImageBase") + t.get("RvaAdjust")
    x = decode_te(Space("te", te), 0, len(te), load_address=load)
    assert x.get("XipEntryPoint") == p.get("EntryPointAddress")
    assert not x.problems
    assert x.title.startswith("TE X64 boot-service driver, entry 0x")


def test_te_debug_directory_and_codeview():
    te = pe_to_te(build_pe(codeview=rsds(b"/b/Pei.pdb\0")))
    node = decode_te(Space("te", te), 0, len(te))
    assert node.get("PdbPath") == "/b/Pei.pdb"


def test_te_malformed():
    te = bytearray(pe_to_te(build_pe()))
    te[0:2] = b"ZV"
    assert any("TE Signature" in m for m in errors(decode_te(Space("t", bytes(te)), 0, len(te))))
    assert errors(decode_te(Space("t", b"VZ"), 0, 2))
    te = bytearray(pe_to_te(build_pe()))
    te[4] = 0xFF  # NumberOfSections
    node = decode_te(Space("t", bytes(te)), 0, len(te))
    assert any("section table" in m or "absurd" in m for m in errors(node))
    te = bytearray(pe_to_te(build_pe()))
    struct.pack_into("<H", te, 6, 8)  # StrippedSize smaller than the TE header
    node = decode_te(Space("t", bytes(te)), 0, len(te))
    assert any("StrippedSize" in m for m in errors(node))
    for cut in range(0, len(te), 13):
        decode_te(Space("t", bytes(te[:cut])), 0, cut).to_json()


# -- fuzz: any bytes give a node ------------------------------------------------------------------
from hypothesis import given, settings, strategies as st  # noqa: E402

_BASE_PE = build_pe(codeview=rsds(b"/fuzz.pdb\0"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_BASE_PE) - 1), st.integers(0, 255)), max_size=12),
       st.integers(0, len(_BASE_PE)))
def test_mutated_pe_and_te_never_raise(edits, cut):
    data = bytearray(_BASE_PE)
    for pos, val in edits:
        data[pos] = val
    data = bytes(data[:cut])
    decode(data).to_json()
    decode_te(Space("t", data), 0, len(data), load_address=0x1000).to_json()
    te = pe_to_te(_BASE_PE)
    te = bytearray(te)
    for pos, val in edits:
        if pos < len(te):
            te[pos] = val
    decode_te(Space("t", bytes(te)), 0, len(te), load_address=0x1000).to_json()
