"""--symbols on the real DEBUG OvmfPkgX64 build (../shared/firmware/ovmf-debug: OVMF.fd and the
.debug ELF files of every module of that very build, DEBUG.tar.xz).

Oracles: gdb 13 (`info line *ADDR`, `info symbol ADDR`) and binutils addr2line on the same .debug
files. The loaded module is the PE from OVMF.fd laid out at a base and relocated here with `struct`
(PE/COFF spec 3.4 sections, 6.6 base relocations), never with the project's own structs.
"""
from __future__ import annotations

import os
import random
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from decoders.memory import BytesMemory
from inspector.image import load_image
from inspector.live.elfdebug import ModuleSymbols
from inspector.live.symbols import LoadedModule, SymbolIndex, gdb_script, symbolize
from tests.realdata import ROOT, debug_symbols, firmware, tool

MODULES = ("SecMain", "PeiCore", "DxeCore", "BdsDxe", "PlatformPei", "VariableRuntimeDxe")
SAMPLES = 250           # addresses per module compared with gdb
DXE_BASE = 0x7E000000   # where the tests "load" a DXE module (not its linked ImageBase 0)
EDK2_BUILD = ROOT / ".cache" / "edk2-build" / "src" / "Build" / "OvmfX64" / "DEBUG_GCC5"
LINE = re.compile(r'^Line (\d+) of "([^"]+)"')
SYMBOL = re.compile(r"^(\S+)(?: \+ (\d+))? in section")


@pytest.fixture(scope="module")
def symdir() -> Path:
    return debug_symbols()


@pytest.fixture(scope="module")
def image():
    return load_image(firmware("ovmf-debug/OVMF.fd"))


def pe_bytes(img, ui: str, guid=None) -> bytes:
    for f in img.root.find("ffs"):
        if f.get("UI") == ui and (guid is None or f.get("Name") == guid):
            return bytes(next(c for c in f.walk() if c.kind == "pe").bytes)
    raise AssertionError(f"{ui} not in the image")


def pe_layout(raw: bytes) -> dict:
    lfanew = struct.unpack_from("<I", raw, 0x3C)[0]
    machine, nsec = struct.unpack_from("<HH", raw, lfanew + 4)
    opt_size = struct.unpack_from("<H", raw, lfanew + 20)[0]
    opt = lfanew + 24
    image_base, size_of_image, size_of_headers = struct.unpack_from("<Q", raw, opt + 24)[0], \
        struct.unpack_from("<I", raw, opt + 56)[0], struct.unpack_from("<I", raw, opt + 60)[0]
    reloc_rva, reloc_size = struct.unpack_from("<II", raw, opt + 112 + 5 * 8)   # data directory 5
    sections = {}
    for i in range(nsec):
        name, vsize, va, rawsize, rawptr = struct.unpack_from("<8sIIII", raw, opt + opt_size + 40 * i)
        sections[name.rstrip(b"\0").decode()] = (va, vsize, rawptr, rawsize)
    return dict(machine=machine, image_base=image_base, size=size_of_image, headers=size_of_headers,
                sections=sections, reloc=(reloc_rva, reloc_size))


def load_at(raw: bytes, base: int) -> bytes:
    """The image as a PE loader leaves it at `base`: sections at their RVAs, DIR64 fixups applied."""
    lay = pe_layout(raw)
    mem = bytearray(lay["size"])
    mem[:lay["headers"]] = raw[:lay["headers"]]
    for va, vsize, ptr, rsize in lay["sections"].values():
        mem[va:va + min(vsize, rsize)] = raw[ptr:ptr + min(vsize, rsize)]
    delta = base - lay["image_base"]
    rva, size = lay["reloc"]
    at = rva
    while at < rva + size:
        page, block = struct.unpack_from("<II", mem, at)
        if block < 8:
            break
        for (entry,) in struct.iter_unpack("<H", mem[at + 8:at + block]):
            if entry >> 12 == 10:                                   # IMAGE_REL_BASED_DIR64
                o = page + (entry & 0xFFF)
                v = struct.unpack_from("<Q", mem, o)[0]
                struct.pack_into("<Q", mem, o, (v + delta) & (1 << 64) - 1)
        at += block
    return bytes(mem)


def loaded(img, ui: str, base: int | None = None):
    """(memory, LoadedModule, layout) for module `ui` loaded at `base` (XIP ones at their ImageBase)."""
    raw = pe_bytes(img, ui)
    lay = pe_layout(raw)
    base = lay["image_base"] if base is None else base
    data = load_at(raw, base)
    return BytesMemory(data + bytes(0x1000), base), LoadedModule(ui, base, len(data)), lay


def gdb_answers(path: Path, addrs: list[int]) -> list[tuple]:
    """[(line answer, symbol answer)] from gdb's `info line *A` and `info symbol A`."""
    cmds = "".join(f"echo @@\\n\ninfo line *0x{a:x}\ninfo symbol 0x{a:x}\n" for a in addrs)
    script = path.parent.parent / f"gdb-{os.getpid()}-{path.stem}.cmd"
    script.write_text(cmds)
    try:
        out = subprocess.run([tool("gdb", "gdb"), "-batch", "-nx", "-x", str(script), str(path)],
                             capture_output=True, text=True, timeout=300).stdout
    finally:
        script.unlink()
    result = []
    for block in out.split("@@\n")[1:]:
        lines = block.splitlines()
        m = LINE.match(lines[0]) if lines else None
        line = (m.group(2), int(m.group(1))) if m and int(m.group(1)) else None
        s = SYMBOL.match(lines[1]) if len(lines) > 1 else None
        result.append((line, (s.group(1), int(s.group(2) or 0)) if s else None))
    assert len(result) == len(addrs)
    return result


def readelf_symbols(path: Path) -> tuple[set[str], dict[str, set[int]]]:
    """(names of STT_OBJECT symbols, name -> values) from `readelf -sW`."""
    out = subprocess.run(["readelf", "-sW", str(path)], capture_output=True, text=True, check=True, timeout=60).stdout
    objects, values = set(), {}
    for c in (ln.split() for ln in out.splitlines()):
        if len(c) >= 8 and c[0].endswith(":") and c[0][:-1].isdigit() and c[6] != "UND":
            values.setdefault(c[7], set()).add(int(c[1], 16))
            if c[3] == "OBJECT":
                objects.add(c[7])
    return objects, values


def addr2line(path: Path, addrs: list[int]) -> list[tuple[str, str | None, int | None]]:
    out = subprocess.run([tool("addr2line", "binutils"), "-f", "-e", str(path)] + [f"0x{a:x}" for a in addrs],
                         capture_output=True, text=True, check=True, timeout=120).stdout.splitlines()
    res = []
    for i in range(len(addrs)):
        file, _, line = out[2 * i + 1].rpartition(":")
        line = line.split()[0]
        res.append((out[2 * i], file if line not in ("?", "0") else None,
                    int(line) if line not in ("?", "0") else None))
    return res


# ---- the oracles ---------------------------------------------------------------------------------

def objdump_rows(path: Path) -> tuple[list[int], list]:
    """`objdump --dwarf=decodedline` rows as (address, basename, line or None for an end of
    sequence), sorted by address (stable: the order of the table within one address)."""
    out = subprocess.run(["objdump", "--dwarf=decodedline", str(path)], capture_output=True, text=True,
                         check=True, timeout=300).stdout
    rows = []
    for ln in out.splitlines():
        c = ln.split()
        if len(c) >= 3 and c[2].startswith("0x") and (c[1].isdigit() or c[1] == "-"):
            a = int(c[2], 16)
            if a:                                        # ld's tombstone for discarded functions
                rows.append((a, c[0], None if c[1] == "-" else int(c[1])))
    rows.sort(key=lambda r: r[0])
    return [r[0] for r in rows], rows


def objdump_line(rows, address: int):
    """The row covering `address`: the last row at the greatest row address <= it (DWARF 5 6.2.1:
    a row covers [its address, the next row's address)); None after an end of sequence or line 0."""
    addrs, table = rows
    import bisect
    i = bisect.bisect_right(addrs, address) - 1
    if i < 0 or table[i][2] in (None, 0):
        return None
    return table[i][1], table[i][2]


@pytest.mark.parametrize("module", MODULES)
def test_function_and_line_equal_the_oracles_over_sampled_addresses(symdir, module):
    """Every sampled .text address: function+offset equal to gdb's `info symbol` (None where gdb
    names a data object: rodata is in .text in edk2's GccBase.lds); file:line equal to addr2line's
    (which keeps the last row at an address, as we do) or, where addr2line is known to go wrong
    (DWARF 5 file 0 printed as the CU name `<artificial>`; sequences of discarded functions at 0
    overlapping real code), to gdb's `info line` (which prefers is_stmt rows) or to objdump's
    decoded rows; no line where none of them has one."""
    path = symdir / f"{module}.debug"
    syms = ModuleSymbols(path)
    assert syms.header()
    rng = random.Random(module)
    text = syms.text
    addrs = sorted(rng.sample(range(text.addr, text.addr + text.size), SAMPLES))
    objects, values = readelf_symbols(path)
    a2l = addr2line(path, addrs)
    rows = None
    same_as_addr2line = 0
    for a, (line, sym), (_f, afile, aline) in zip(addrs, gdb_answers(path, addrs), a2l):
        s = syms.lookup(a)
        ours = (s.file, s.line) if s.line else None
        if ours == ((afile, aline) if aline else None):
            same_as_addr2line += 1
        elif not (ours == line or (afile and afile.endswith("<artificial>") and ours and ours[1] == aline)):
            rows = rows or objdump_rows(path)
            assert ours and (os.path.basename(ours[0]), ours[1]) == objdump_line(rows, a), f"{module} 0x{a:x}"
        if sym is not None and sym[0] in objects:
            assert s.function is None, f"{module} 0x{a:x} is data ({sym[0]})"
        elif sym is not None and s.function != sym[0] and s.function_offset == sym[1]:
            # Two names for one address (an asm label on a function, code folded by LTO).
            assert values[sym[0]] & values[s.function], f"{module} 0x{a:x}"
        else:
            assert ((s.function, s.function_offset) if s.function else None) == sym, f"{module} 0x{a:x}"
    assert same_as_addr2line > SAMPLES * 0.8         # the comparison is not vacuous
    assert not syms.problems


def entry(symdir, module) -> int:
    out = subprocess.run(["readelf", "-h", str(symdir / f"{module}.debug")], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    return int(re.search(r"Entry point address:\s+(0x[0-9a-f]+)", out).group(1), 16)


def test_entry_points_match_addr2line_and_sec_entry_has_no_line(symdir):
    """SecMain's _ModuleEntryPoint is nasm (STT_NOTYPE, size 0, no line-table row): addr2line says
    `??:?`, and so do we (no line); the C entry points have the entry-point library's line."""
    for module in ("SecMain", "PeiCore", "DxeIpl", "DxeCore", "BdsDxe"):
        path = symdir / f"{module}.debug"
        a = entry(symdir, module)
        func, file, line = addr2line(path, [a])[0]
        s = ModuleSymbols(path).lookup(a)
        assert (s.function, s.function_offset, s.file, s.line) == (func, 0, file, line)
        assert func == "_ModuleEntryPoint" and (line is None) == (module == "SecMain")
        if module != "SecMain":
            assert line is not None and "EntryPoint" in file


def test_sec_entry_line_is_not_taken_from_another_unit(symdir, image):
    """The lookup that took the last row below the address whatever the sequence named SEC's entry
    `SecPeiCpuException.c:84`; a row covers only up to its sequence's end."""
    mem, img, lay = loaded(image, "SecMain")
    pc = lay["image_base"] + entry(symdir, "SecMain")      # ELF and PE .text both at 0x240
    node = symbolize(SymbolIndex(symdir), [img], mem, pc)
    assert node.title == "SecMain!_ModuleEntryPoint"
    assert node.get("Function") == "_ModuleEntryPoint" and node.get("Line") is None and node.get("File") is None
    assert not node.problems


def test_symbolize_relocated_dxe_module_equals_gdb(symdir, image):
    """DxeCore loaded at DXE_BASE (relocated): pc -> ELF by the two .text starts; function and line
    equal gdb's at the ELF address, and the gdb script's address is base + .text RVA."""
    mem, img, lay = loaded(image, "DxeCore", DXE_BASE)
    index = SymbolIndex(symdir)
    text_rva = lay["sections"][".text"][0]
    path = symdir / "DxeCore.debug"
    syms = ModuleSymbols(path)
    assert syms.header()
    elf_text = syms.text.addr
    elf_addrs = sorted(random.Random(7).sample(range(elf_text, elf_text + 0x20000), 40))
    for a in elf_addrs:
        node = symbolize(index, [img], mem, DXE_BASE + text_rva + a - elf_text)
        s = syms.lookup(a)
        assert node.get("ElfAddress") == a
        assert (node.get("Function"), node.get("File"), node.get("Line")) == (s.function, s.file, s.line)
    a = entry(symdir, "DxeCore")
    func, file, line = addr2line(path, [a])[0]
    node = symbolize(index, [img], mem, DXE_BASE + text_rva + a - elf_text)
    assert (node.get("Function"), node.get("File"), node.get("Line")) == (func, file, line)
    script = gdb_script(index, [img], mem)
    assert f"add-symbol-file {path} 0x{DXE_BASE + text_rva:x}" in script.splitlines()


# ---- layouts -------------------------------------------------------------------------------------

def build_tree(root: Path, symdir: Path, arches=("X64",)) -> Path:
    """An edk2 build folder made of symlinks: <ARCH>/*.debug copies and <ARCH>/<pkg>/<Name>/DEBUG/."""
    build = root / "Build" / "OvmfX64" / "DEBUG_GCC5"
    for arch in arches:
        for f in sorted(symdir.glob("*.debug")):
            d = build / arch / "Pkg" / f.stem / "DEBUG"
            d.mkdir(parents=True)
            # IA32 decoys point at another module's file: picked only if arch is not checked.
            target = f if arch == "X64" else symdir / "PeiCore.debug"
            (d / f"{f.stem.split('_')[0]}.debug").symlink_to(target)
            (build / arch / f.name).symlink_to(target)
    return build


@pytest.mark.parametrize("layout", ["flat", "build", "arch", "tree", "ia32x64"])
def test_every_layout_finds_the_matching_file(tmp_path, symdir, image, layout):
    if layout == "flat":
        where = symdir
    else:
        build = build_tree(tmp_path, symdir, ("IA32", "X64") if layout == "ia32x64" else ("X64",))
        if layout == "tree":
            shutil.rmtree(build / "X64" / "Pkg" / "PeiCore")   # only DEBUG/ folders under Build/
            for f in (build / "X64").glob("*.debug"):
                f.unlink()
        where = {"build": build, "ia32x64": build, "arch": build / "X64", "tree": tmp_path / "Build"}[layout]
    index = SymbolIndex(where)
    assert len(index.files) >= 120
    if layout == "ia32x64":     # chosen by the PE's Machine (X64 here), whichever tree is listed first
        index.files["DxeCore"].sort(key=lambda f: "X64" in f.path.parts)
        assert [f.path.parts[-2] for f in index.candidates("DxeCore", None, 0x8664)] == ["X64"]
    for ui in ("DxeCore", "SecMain"):
        mem, img, lay = loaded(image, ui, DXE_BASE if ui == "DxeCore" else None)
        r = index.resolve(ui, None, mem, img.base)
        assert r.symbols is not None and not r.problems, r.problems
        assert r.symbols.path.resolve() == (symdir / f"{ui}.debug").resolve()
        assert not r.notes      # no other candidate was even tried (IA32 decoys left out by Machine)
    # Two CpuDxe builds (FILE_GUID overrides) share a UI name: each image gets its own file.
    cpus = [f for f in image.root.find("ffs") if f.get("UI") == "CpuDxe"]
    assert len(cpus) == 2
    for f in cpus:
        raw = bytes(next(c for c in f.walk() if c.kind == "pe").bytes)
        mem = BytesMemory(load_at(raw, DXE_BASE) + bytes(0x1000), DXE_BASE)
        r = index.resolve("CpuDxe", f.get("Name"), mem, DXE_BASE)
        assert r.symbols is not None, r.problems
        assert str(f.get("Name")).lower() in r.symbols.path.name.lower() or layout == "tree"


def test_real_edk2_build_tree(image):
    """The Build/ tree `make firmware` leaves (its own OVMF.fd in FV/): the build folder, its X64/
    and the Build/ root all resolve DxeCore; the shared OVMF.fd (another build) is refused.

    Only where `make firmware` has run: CI does not build edk2 (30 minutes), and the same layouts
    are checked everywhere by build_tree() above over the shipped .debug files."""
    if not (EDK2_BUILD / "X64" / "DxeCore.debug").is_file():
        pytest.skip(f"no edk2 build tree at {EDK2_BUILD}: run `make firmware` (not required in CI)")
    own = load_image(EDK2_BUILD / "FV" / "OVMF.fd")
    for where in (EDK2_BUILD, EDK2_BUILD / "X64", EDK2_BUILD.parent.parent):
        index = SymbolIndex(where)
        mem, img, _ = loaded(own, "DxeCore", DXE_BASE)
        r = index.resolve("DxeCore", None, mem, DXE_BASE)
        assert r.symbols is not None, (where, r.problems)
    if (EDK2_BUILD / "FV" / "OVMF.fd").read_bytes() != firmware("ovmf-debug/OVMF.fd").read_bytes():
        mem, img, _ = loaded(image, "DxeCore", DXE_BASE)
        node = symbolize(SymbolIndex(EDK2_BUILD), [img], mem, DXE_BASE + 0x1000)
        assert node.get("Function") is None and any("another build" in p.message for p in node.problems)


# ---- bad .debug files ----------------------------------------------------------------------------

def section_header(data: bytes, name: bytes) -> int:
    """File offset of the ELF64 section header named `name` (gABI 4, read with struct)."""
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    stroff = struct.unpack_from("<Q", data, shoff + shstrndx * shentsize + 24)[0]
    for i in range(shnum):
        at = shoff + i * shentsize
        n = struct.unpack_from("<I", data, at)[0]
        if data[stroff + n:stroff + n + len(name) + 1] == name + b"\0":
            return at
    raise AssertionError(name)


def stripped(data: bytes) -> bytes:
    """No .symtab (its sh_type set to SHT_NULL) and no DWARF (.debug_* renamed)."""
    out = bytearray(data)
    struct.pack_into("<I", out, section_header(data, b".symtab") + 4, 0)
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    stroff = struct.unpack_from("<Q", data, shoff + shstrndx * shentsize + 24)[0]
    strsize = struct.unpack_from("<Q", data, shoff + shstrndx * shentsize + 32)[0]
    names = bytes(out[stroff:stroff + strsize]).replace(b".debug_", b".xebug_")
    out[stroff:stroff + strsize] = names
    return bytes(out)


BAD = {
    "truncated": lambda d, other: d[:0x3000],
    "header-only": lambda d, other: d[:40],
    "stripped": lambda d, other: stripped(d),
    "not-elf": lambda d, other: b"MZ" + bytes(200),
    "empty": lambda d, other: b"",
    "another-module": lambda d, other: other,
    # One 4-byte immediate of DxeCore's code changed (file offset 0x1000 is in .text, which starts at 0x100).
    "other-code": lambda d, other: d[:0x1000] + bytes(b ^ 0x5A for b in d[0x1000:0x1004]) + d[0x1004:],
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_debug_file_is_a_problem_on_the_node_and_gives_no_symbols(tmp_path, symdir, image, kind):
    data = (symdir / "DxeCore.debug").read_bytes()
    (tmp_path / "DxeCore.debug").write_bytes(BAD[kind](data, (symdir / "PeiCore.debug").read_bytes()))
    mem, img, lay = loaded(image, "DxeCore", DXE_BASE)
    index = SymbolIndex(tmp_path)
    pc = DXE_BASE + lay["sections"][".text"][0] + 0x1234
    node = symbolize(index, [img], mem, pc)
    assert node.get("Function") is None and node.get("Line") is None, kind
    assert node.title == f"DxeCore+0x{pc - DXE_BASE:x}"
    assert node.problems and all("DxeCore.debug" in p.message for p in node.problems), kind
    if kind != "stripped":      # same code, nothing to name: gdb may still want it
        script = gdb_script(index, [img], mem)
        assert not any(ln.startswith("add-symbol-file") for ln in script.splitlines())


def test_stripped_symtab_only_still_gives_lines_but_no_function(tmp_path, symdir, image):
    data = bytearray((symdir / "DxeCore.debug").read_bytes())
    struct.pack_into("<I", data, section_header(bytes(data), b".symtab") + 4, 0)
    (tmp_path / "DxeCore.debug").write_bytes(bytes(data))
    syms = ModuleSymbols(tmp_path / "DxeCore.debug")
    a = entry(symdir, "DxeCore")
    func, file, line = addr2line(symdir / "DxeCore.debug", [a])[0]
    s = syms.lookup(a)
    assert (s.function, s.file, s.line) == (None, file, line)
    assert any("no .symtab" in p for p in syms.problems)


# ---- names ---------------------------------------------------------------------------------------

def test_name_index_finds_modules_from_symbol_tables_only(symdir):
    index = SymbolIndex(symdir)
    assert index.modules_with("CoreDispatcher") == ["DxeCore"]
    assert index.modules_with("CoreInstallProtocolInterface") == ["DxeCore"]
    many = index.modules_with("_ModuleEntryPoint")
    assert len(many) > 100 and "SecMain" in many
    assert index.modules_with("NoSuchFunctionAnywhere") == []
    assert all(m._dwarf is None for m in index._modules.values())       # no DWARF was read


def test_debug_section_offsets_past_the_file_are_problems_not_tracebacks(tmp_path, symdir):
    """.debug_line / .debug_info sh_offset set past any file (2**64 - 1: pyelftools' seek overflows)
    and .symtab's size past the end: every lookup answers "unknown" with a problem naming the file."""
    data = bytearray((symdir / "SecMain.debug").read_bytes())
    for name in (b".debug_line", b".debug_info"):
        struct.pack_into("<Q", data, section_header(bytes(data), name) + 24, (1 << 64) - 1)
    (tmp_path / "SecMain.debug").write_bytes(bytes(data))
    syms = ModuleSymbols(tmp_path / "SecMain.debug")
    s = syms.lookup(0x266)
    assert (s.file, s.line) == (None, None)
    assert any("DWARF unreadable: OverflowError" in p for p in syms.problems)
    struct.pack_into("<Q", data, section_header(bytes(data), b".symtab") + 32, 1 << 40)
    (tmp_path / "SecMain.debug").write_bytes(bytes(data))
    syms = ModuleSymbols(tmp_path / "SecMain.debug")
    s = syms.lookup(0x266)
    assert (s.function, s.file, s.line) == (None, None, None)
    assert syms.problems and all("SecMain.debug" in p for p in syms.problems)


@pytest.mark.parametrize("seed", range(12))
def test_corrupted_debug_file_never_raises(tmp_path, symdir, seed):
    """Random byte damage in the ELF header, the section header table and .debug_line."""
    rng = random.Random(seed)
    data = bytearray((symdir / "SecMain.debug").read_bytes())
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    line = section_header(bytes(data), b".debug_line")
    line_off, line_size = struct.unpack_from("<QQ", data, line + 24)
    for _ in range(8):
        at = rng.choice([rng.randrange(0x40), shoff + rng.randrange(len(data) - shoff),
                         line_off + rng.randrange(line_size)])
        data[at:at + 4] = rng.randbytes(4)
    if seed % 3 == 0:
        data = data[:rng.randrange(len(data))]
    (tmp_path / "SecMain.debug").write_bytes(bytes(data))
    syms = ModuleSymbols(tmp_path / "SecMain.debug")
    for a in (0x240, 0x266, 0xA3E0, 0x5000, 0xD000):
        syms.lookup(a)
    syms.function_names()
    syms.text_bytes()
