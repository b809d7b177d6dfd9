"""--symbols without an edk2 build: a small ELF compiled here with gcc -g, checked against binutils'
addr2line/nm/objdump on the same file; the PE side is Debian's real BdsDxe image (its .text
VirtualAddress read from its section table with `struct`, PE/COFF spec 3.3 and 4)."""
from __future__ import annotations

import shutil
import struct
import subprocess

import pytest

from decoders.memory import BytesMemory
from inspector.image import load_image
from inspector.live.symbols import LoadedModule, ModuleSymbols, SymbolIndex, gdb_script, pe_text_rva, symbolize
from tests.realdata import bookworm, tool

SOURCE = """\
int counter;

int first(int a)
{
    return a * 3 + 1;
}

int second(int b)
{
    int x = b;
    x += first(b);
    counter += x;
    return x * 2;
}
"""


@pytest.fixture(scope="module")
def elf(tmp_path_factory):
    tool("gcc", "gcc")
    tool("addr2line", "binutils")
    d = tmp_path_factory.mktemp("elf")
    (d / "mod.c").write_text(SOURCE)
    out = d / "mod.so"
    subprocess.run(["gcc", "-g", "-O0", "-shared", "-fPIC", "-o", str(out), str(d / "mod.c")], check=True,
                   timeout=60)
    return out


def nm_address(path, name: str) -> int:
    out = subprocess.run(["nm", str(path)], capture_output=True, text=True, check=True, timeout=30).stdout
    return next(int(line.split()[0], 16) for line in out.splitlines() if line.split()[-1] == name)


def addr2line(path, address: int) -> tuple[str, str, int]:
    out = subprocess.run(["addr2line", "-f", "-e", str(path), f"0x{address:x}"], capture_output=True, text=True,
                         check=True, timeout=30).stdout.splitlines()
    file, _, line = out[1].rpartition(":")
    return out[0], file, int(line.split()[0])


def objdump_text_vma(path) -> int:
    out = subprocess.run(["objdump", "-h", str(path)], capture_output=True, text=True, check=True, timeout=30).stdout
    return next(int(line.split()[3], 16) for line in out.splitlines() if line.split()[1:2] == [".text"])


def test_function_and_line_match_addr2line(elf):
    second = nm_address(elf, "second")
    syms = ModuleSymbols(elf)
    for addr in (second, second + 8, second + 20, nm_address(elf, "first") + 4):
        func, file, line = addr2line(elf, addr)
        s = syms.lookup(addr)
        assert s.function == func
        assert s.file.endswith(file.rsplit("/", 1)[-1])
        assert s.line == line
    assert syms.lookup(second + 8).function_offset == 8


def test_address_outside_any_function_has_no_function(elf):
    s = ModuleSymbols(elf).lookup(0x10)       # inside the ELF header, not code
    assert s.function is None


def test_missing_or_corrupt_debug_file_is_a_problem_not_a_crash(tmp_path):
    bad = tmp_path / "Bad.debug"
    bad.write_bytes(b"\x7fELF" + b"\0" * 12)
    s = ModuleSymbols(bad)
    assert s.lookup(0x1000).function is None
    assert s.problems
    assert ModuleSymbols(tmp_path / "absent.debug").lookup(0).function is None


@pytest.fixture(scope="module")
def bds_pe():
    img = load_image(bookworm("OVMF.fd"))
    ffs = next(f for f in img.root.find("ffs") if f.get("UI") == "BdsDxe")
    pe = next(c for c in ffs.walk() if c.kind == "pe")
    return bytes(pe.bytes)


def text_va_by_struct(raw: bytes) -> int:
    lfanew = struct.unpack_from("<I", raw, 0x3C)[0]
    nsec, opt_size = struct.unpack_from("<HH", raw, lfanew + 4 + 2)[0], struct.unpack_from("<H", raw, lfanew + 20)[0]
    at = lfanew + 24 + opt_size
    for i in range(nsec):
        name, _vsize, va = struct.unpack_from("<8sII", raw, at + 40 * i)
        if name.rstrip(b"\0") == b".text":
            return va
    raise AssertionError("no .text")


def test_pe_text_rva_reads_the_section_table_in_memory(bds_pe):
    base = 0x1E000000
    mem = BytesMemory(bds_pe + bytes(0x1000), base)
    assert pe_text_rva(mem, base) == text_va_by_struct(bds_pe)
    assert pe_text_rva(BytesMemory(bytes(0x2000), base), base) is None


def test_debug_file_of_another_build_gives_a_problem_and_no_symbols(tmp_path, elf, bds_pe):
    """A gcc-built ELF named BdsDxe.debug next to Debian's BdsDxe: its .text is not the loaded code,
    so the symbol node says so and names no function (the real build's files: test_symbols_real)."""
    build = tmp_path / "Build" / "OvmfX64" / "DEBUG_GCC5" / "X64" / "MdeModulePkg" / "BdsDxe" / "DEBUG"
    build.mkdir(parents=True)
    shutil.copyfile(elf, build / "BdsDxe.debug")
    index = SymbolIndex(tmp_path / "Build")
    base = 0x1E000000
    mem = BytesMemory(bds_pe + bytes(0x1000), base)
    images = [LoadedModule("BdsDxe", base, len(bds_pe)), LoadedModule("NoSymbols", base + 0x100000, 0x1000)]
    text_addr = base + text_va_by_struct(bds_pe)
    pc = text_addr + 8
    node = symbolize(index, images, mem, pc)
    assert node.get("Function") is None and node.get("Line") is None
    assert any("another build" in p.message for p in node.problems)
    assert node.title == f"BdsDxe+0x{pc - base:x}"
    script = gdb_script(index, images, mem).splitlines()
    assert not any(line.startswith("add-symbol-file") for line in script)
    assert any(line.startswith("# BdsDxe at 0x1e000000:") and "another build" in line for line in script)
    assert symbolize(index, images, mem, base - 1) is None
    assert symbolize(index, images, mem, base + 0x100010).get("Function") is None


# ---- breakpoint specs (inspector.live.phases.parse_breakpoint) on Debian's real image ------------

def test_breakpoint_specs_resolve_xip_modules_and_leave_dxe_ones_pending():
    from inspector.live.phases import parse_breakpoint
    img = load_image(bookworm("OVMF.fd"))
    size = len(img.data)
    peim = next(f for f in img.root.find("ffs") if f.get("UI") == "PlatformPei")
    raw = bytes(next(c for c in peim.walk() if c.kind == "pe").bytes)
    lfanew = struct.unpack_from("<I", raw, 0x3C)[0]
    entry = struct.unpack_from("<I", raw, lfanew + 24 + 16)[0]
    image_base = struct.unpack_from("<Q", raw, lfanew + 24 + 24)[0]        # PE32+ ImageBase
    assert parse_breakpoint("PlatformPei", img.root, size).address == image_base + entry
    assert parse_breakpoint("platformpei+0x10", img.root, size).address == image_base + 0x10
    by_guid = parse_breakpoint(f"{str(peim.get('Name')).upper()}+4", img.root, size)
    assert (by_guid.module, by_guid.address) == ("PlatformPei", image_base + 4)
    bds = parse_breakpoint("BdsDxe+0", img.root, size)
    assert bds.pending and bds.offset == 0 and bds.module == "BdsDxe"
    assert parse_breakpoint("0xfffceb84", img.root, size).address == 0xFFFCEB84
    for bad in ("NoSuchModule", "BdsDxe+zz"):
        with pytest.raises(ValueError):
            parse_breakpoint(bad, img.root, size)


# ---- Session breakpoints over the fake target of test_phases (no QEMU) -----------------------------

def test_session_breakpoint_at_a_handoff_survives_next_handoff_and_pending_ones_wait():
    from inspector.live.session import Session
    from tests.inspector.test_phases import FakeTarget
    img = load_image(bookworm("OVMF_CODE_4M.fd"))
    t = FakeTarget(bytes(img.data))
    s = Session(t, img)
    s.current()
    sec = s.add_breakpoint("0xfffceb84")                  # the SEC entry of this image (test_phases)
    bds = s.add_breakpoint("BdsDxe")
    assert not sec.pending and bds.pending and t.bps == {0xFFFCEB84}
    stop = s.next_handoff(5.0)
    assert stop.handoff == "sec" and 0xFFFCEB84 in t.bps  # the handoff did not remove the user's
    s.remove_breakpoint("0xfffceb84")
    assert t.bps == set()
    t.dead = True
    assert any("target died" in p for p in s.cont(1.0).problems)


# ---- breakpoints by function name (the real DEBUG build and its .debug files) ----------------------

@pytest.fixture(scope="module")
def debug_build():
    from tests.realdata import debug_symbols, firmware
    return load_image(firmware("ovmf-debug/OVMF.fd")), debug_symbols()


def tracker(img, symdir=None):
    from inspector.live.modules import ModuleTracker
    from inspector.live.phases import BootState, compute_handoffs
    from tests.inspector.test_phases import FakeTarget
    t = FakeTarget(bytes(img.data))
    index = SymbolIndex(symdir) if symdir is not None else None
    return ModuleTracker(t, t.physical_memory(), img, BootState(compute_handoffs(img.root, len(img.data))), 1.0,
                         symbols=index), t


def nm_value(path, name: str) -> int:
    out = subprocess.run(["nm", str(path)], capture_output=True, text=True, check=True, timeout=30).stdout
    return next(int(ln.split()[0], 16) for ln in out.splitlines() if ln.split()[-1] == name)


def test_breakpoint_by_function_name_becomes_module_plus_offset_pending_until_load(debug_build):
    """`CoreDispatcher` and `DxeCore!CoreInstallProtocolInterface`: DxeCore+(nm address - ELF .text
    sh_addr + PE .text VirtualAddress), pending (DxeCore is loaded at run time)."""
    img, symdir = debug_build
    m, t = tracker(img, symdir)
    pe = bytes(next(c for c in next(f for f in img.root.find("ffs") if f.get("UI") == "DxeCore").walk()
                    if c.kind == "pe").bytes)
    text_va = text_va_by_struct(pe)
    elf_text = objdump_text_vma(symdir / "DxeCore.debug")
    for spec, name in (("CoreDispatcher", "CoreDispatcher"),
                       ("DxeCore!CoreInstallProtocolInterface", "CoreInstallProtocolInterface")):
        bp = m.add_breakpoint(spec)
        assert (bp.spec, bp.module, bp.pending) == (spec, "DxeCore", True)
        assert bp.offset == nm_value(symdir / "DxeCore.debug", name) - elf_text + text_va
    assert t.bps == set()
    # Once DxeCore is loaded at a base, the breakpoint is armed there.
    base = 0x7E000000
    m.learn_image(base, 0x40000, next(f for f in img.root.find("ffs") if f.get("UI") == "DxeCore").get("Name"))
    bp = m.breakpoints["CoreDispatcher"]
    assert not bp.pending and bp.address == base + bp.offset and bp.address in t.bps


def test_breakpoint_by_function_in_an_xip_module_is_armed_at_once(debug_build):
    """SecMain runs in place from flash: `SecMain!SecCoreStartupWithStack` is armed at 4 GiB - image
    size + the PE's offset + the function's RVA."""
    img, symdir = debug_build
    m, t = tracker(img, symdir)
    ffs = next(f for f in img.root.find("ffs") if f.get("UI") == "SecMain")
    pe = next(c for c in ffs.walk() if c.kind == "pe")
    elf = nm_value(symdir / "SecMain.debug", "SecCoreStartupWithStack")
    rva = elf - objdump_text_vma(symdir / "SecMain.debug") + text_va_by_struct(bytes(pe.bytes))
    bp = m.add_breakpoint("SecMain!SecCoreStartupWithStack")
    assert bp.address == (1 << 32) - len(img.data) + pe.offset + rva and bp.address in t.bps


def test_function_breakpoint_errors(debug_build, tmp_path):
    img, symdir = debug_build
    m, _ = tracker(img, symdir)
    with pytest.raises(ValueError, match=r"_ModuleEntryPoint is in 1\d\d modules \(AcpiTableDxe, .* and \d+ more\): name one, e.g. "):
        m.add_breakpoint("_ModuleEntryPoint")
    with pytest.raises(ValueError, match="no function 'NoSuchFunctionX'"):
        m.add_breakpoint("NoSuchFunctionX")
    with pytest.raises(ValueError, match="no module named 'NoSuchModule'"):
        m.add_breakpoint("NoSuchModule!CoreDispatcher")
    with pytest.raises(ValueError, match="no symbol 'CoreDispatcher' in PeiCore"):
        m.add_breakpoint("PeiCore!CoreDispatcher")
    no_symbols, _ = tracker(img)
    with pytest.raises(ValueError, match="needs --symbols"):
        no_symbols.add_breakpoint("CoreDispatcher")
    # A .debug of another build never yields a breakpoint address.
    (tmp_path / "DxeCore.debug").symlink_to(symdir / "PeiCore.debug")
    wrong, _ = tracker(img, tmp_path)
    with pytest.raises(ValueError, match="another build"):
        wrong.add_breakpoint("DxeCore!CoreDispatcher")
    assert not m.breakpoints and not wrong.breakpoints


def crafted_pe(text: bytes, text_va: int = 0x240) -> bytes:
    """A minimal PE32+ (PE/COFF spec 3.2-3.4) whose one section .text at `text_va` holds `text`
    (FileAlignment = SectionAlignment: the file is the image as loaded at ImageBase 0)."""
    lfanew = 0x40
    opt_size = 112 + 16 * 8
    dos = b"MZ" + bytes(0x3A) + struct.pack("<I", lfanew)
    coff = b"PE\0\0" + struct.pack("<HHIIIHH", 0x8664, 1, 0, 0, 0, opt_size, 0x2E)
    opt = struct.pack("<HBBIIIIIQIIHHHHHHIIIIHHQQQQII", 0x20B, 0, 0, len(text), 0, 0, text_va, text_va, 0,
                      0x40, 0x40, 0, 0, 0, 0, 0, 0, 0, text_va + len(text), text_va, 0, 0xB, 0, 0, 0, 0, 0, 0, 16)
    opt += bytes(16 * 8)
    sec = struct.pack("<8sIIIIIIHHI", b".text", len(text), text_va, len(text), text_va, 0, 0, 0, 0, 0x60000020)
    head = dos + coff + opt + sec
    return head + bytes(text_va - len(head)) + text


def test_elf_and_pe_text_at_different_addresses_map_through_both_starts(tmp_path, elf):
    """The gcc-built ELF's .text (sh_addr from objdump -h) carried at PE .text VA 0x240 of a crafted PE:
    symbolize maps pc -> ELF address by the two .text starts, and a function name gives MODULE+RVA =
    nm address - ELF .text + 0x240 (the edk2 GCC5 build has both at 0x240, so it cannot tell)."""
    text_vma = objdump_text_vma(elf)
    out = subprocess.run(["objcopy", "-O", "binary", "--only-section=.text", str(elf), str(tmp_path / "t.bin")],
                         check=True, timeout=60)
    assert out.returncode == 0
    pe = crafted_pe((tmp_path / "t.bin").read_bytes())
    (tmp_path / "syms").mkdir()
    shutil.copyfile(elf, tmp_path / "syms" / "Mod.debug")
    index = SymbolIndex(tmp_path / "syms")
    second = nm_address(elf, "second")
    rvas, path, problems = index.function_in_pe("Mod", None, pe, "second")
    assert (rvas, path.name, problems) == ([second - text_vma + 0x240], "Mod.debug", [])
    base = 0x1E000000
    mem = BytesMemory(pe + bytes(0x1000), base)
    node = symbolize(index, [LoadedModule("Mod", base, len(pe))], mem, base + 0x240 + second + 8 - text_vma)
    func, file, line = addr2line(elf, second + 8)
    assert (node.get("ElfAddress"), node.get("Function"), node.get("File"), node.get("Line")) == \
        (second + 8, func, file, line)
    assert f"add-symbol-file {tmp_path / 'syms' / 'Mod.debug'} 0x{base + 0x240:x}" in \
        gdb_script(index, [LoadedModule("Mod", base, len(pe))], mem).splitlines()
