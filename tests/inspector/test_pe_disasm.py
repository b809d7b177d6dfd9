"""Offline disassembly of PE/TE images (inspector.pe_disasm): crafted PE32, PE32+ and TE headers
written with struct.pack from the PE/COFF spec (3.2 COFF File Header, 3.4 Optional Header, 4 Section
Table) and the PI spec vol 1 (EFI_TE_IMAGE_HEADER), and real modules of Debian's images and the
debug build against `objdump -D -b binary` of the same image bytes, and against the .debug files'
symbols (`nm`, `objdump -d`).
"""
from __future__ import annotations

import re
import struct
import subprocess

import pytest

from decoders.model import Node, Space
from decoders.pe import decode_pe, decode_te
from inspector.pe_disasm import disassemble_image, find_module, image_node
from tests.realdata import bookworm, debug_symbols, firmware, tool

I386, AMD64, ARM64 = 0x14C, 0x8664, 0xAA64
TEXT_RVA = 0x200
HEADERS = 0x200


def pe_image(machine: int, code: bytes, image_base: int, entry_rva: int = TEXT_RVA, plus: bool = False,
             magic: bytes = b"MZ") -> bytes:
    """A one-section PE32 (or PE32+) image: DOS header, "PE\\0\\0", COFF file header, optional header
    with 16 data directories, one .text section at RVA 0x200 = file offset 0x200."""
    text_size = (len(code) + 0x1F) & ~0x1F
    dos = magic + bytes(0x3A) + struct.pack("<I", 0x40)                # e_lfanew at 0x3C
    opt_size = 0xF0 if plus else 0xE0
    coff = struct.pack("<HHIIIHH", machine, 1, 0, 0, 0, opt_size, 0x0102)
    if plus:
        opt = struct.pack("<HBBIIIII", 0x20B, 0, 0, text_size, 0, 0, entry_rva, TEXT_RVA)
        opt += struct.pack("<QII", image_base, 0x20, 0x20)
    else:
        opt = struct.pack("<HBBIIIIII", 0x10B, 0, 0, text_size, 0, 0, entry_rva, TEXT_RVA, 0)
        opt += struct.pack("<III", image_base, 0x20, 0x20)
    opt += struct.pack("<HHHHHHI", 0, 0, 0, 0, 0, 0, 0)
    opt += struct.pack("<IIIHH", TEXT_RVA + text_size, HEADERS, 0, 11, 0)  # SizeOfImage, SizeOfHeaders, CheckSum, Subsystem
    opt += struct.pack("<QQQQ" if plus else "<IIII", 0, 0, 0, 0)
    opt += struct.pack("<II", 0, 16) + bytes(16 * 8)
    assert len(opt) == opt_size
    sec = struct.pack("<8sIIIIIIHHI", b".text", text_size, TEXT_RVA, text_size, TEXT_RVA, 0, 0, 0, 0, 0x60000020)
    head = dos + b"PE\0\0" + coff + opt + sec
    return head + bytes(HEADERS - len(head)) + code + bytes(text_size - len(code))


# TE: 40-byte header + one 40-byte section header, code at TE offset 0x60. StrippedSize 0x1E8: the
# PE's RVAs and PointerToRawData are kept, and the TE file is 0x1E8 - 0x28 = 0x1C0 bytes shorter.
TE_STRIPPED, TE_ADJUST, TE_TEXT_RVA = 0x1E8, 0x1C0, 0x220


def te_image(machine: int, code: bytes, image_base: int) -> bytes:
    size = 0x40
    hdr = struct.pack("<HHBBHIIQ", 0x5A56, machine, 1, 11, TE_STRIPPED, TE_TEXT_RVA, TE_TEXT_RVA, image_base)
    hdr += bytes(16)                                                  # DataDirectory[2]
    sec = struct.pack("<8sIIIIIIHHI", b".text", size, TE_TEXT_RVA, size, TE_TEXT_RVA, 0, 0, 0, 0, 0x60000020)
    body = hdr + sec
    body += bytes(TE_TEXT_RVA - TE_ADJUST - len(body))
    return body + code + bytes(size - len(code))


CODE32 = bytes.fromhex("55 89e5 e800000000 31c0 c3")         # push ebp; mov ebp,esp; call $+5; xor eax,eax; ret
CODE64 = bytes.fromhex("55 4889e5 e800000000 31c0 c3")


def placed(image: bytes, at: int, base: int | None, total: int = 0x1000) -> Space:
    data = bytearray(total)
    data[at:at + len(image)] = image
    return Space("crafted", bytes(data), base)


# -- crafted -----------------------------------------------------------------------------------------
def test_pe32_ia32_running_in_place_from_flash():
    base = 0xFFFFF000                  # a 4 KiB flash: the space's first byte at 4 GiB - 4 KiB
    at = 0x100
    pe = decode_pe(placed(pe_image(I386, CODE32, base + at), at, base), at, 0x300, base + at)
    d = disassemble_image(pe, count=5)
    assert (d.mode, d.bits, d.where, d.base, d.entry) == ("prot32", 32, "flash", base + at, base + at + TEXT_RVA)
    e = d.entry
    assert [(ln.address, ln.raw.hex(), ln.text) for ln in d.lines] == [
        (e, "55", "push ebp"), (e + 1, "89e5", "mov ebp, esp"), (e + 3, "e800000000", f"call 0x{e + 8:x}"),
        (e + 8, "31c0", "xor eax, eax"), (e + 10, "c3", "ret")]
    assert d.problems == []


def test_pe32plus_x64_linked_at_zero_shows_rvas():
    pe = decode_pe(placed(pe_image(AMD64, CODE64, 0, plus=True), 0, None), 0, 0x300)
    d = disassemble_image(pe, count=4)
    assert (d.mode, d.where, d.base, d.entry) == ("long64", "image-base", 0, TEXT_RVA)
    assert [(ln.address, ln.text) for ln in d.lines] == [
        (0x200, "push rbp"), (0x201, "mov rbp, rsp"), (0x204, "call 0x209"), (0x209, "xor eax, eax")]
    assert any("ImageBase 0" in n for n in d.notes)


def test_pe32_same_bytes_disassemble_differently_by_machine():
    code = bytes.fromhex("48 89 e5")   # IA32: dec eax; mov ebp,esp — X64: mov rbp,rsp
    d32 = disassemble_image(decode_pe(placed(pe_image(I386, code, 0x10000), 0, None), 0, 0x300), count=2)
    d64 = disassemble_image(decode_pe(placed(pe_image(AMD64, code, 0x10000, plus=True), 0, None), 0, 0x300), count=1)
    assert [ln.text for ln in d32.lines] == ["dec eax", "mov ebp, esp"]
    assert [ln.text for ln in d64.lines] == ["mov rbp, rsp"]
    assert d32.base == d64.base == 0x10000 and d32.entry == 0x10200


def test_te_running_in_place_addresses_from_its_stripped_header():
    image_base = 0xFFFE0000
    header_at = image_base + TE_ADJUST          # where the TE header sits when linked at ImageBase
    at = 0x100
    space = placed(te_image(I386, CODE32, image_base), at, header_at - at)
    te = decode_te(space, at, 0xA0, header_at)
    d = disassemble_image(te, count=3)
    assert (d.where, d.base, d.entry) == ("flash", header_at, image_base + TE_TEXT_RVA)
    assert [(ln.address, ln.raw.hex()) for ln in d.lines] == [
        (0xFFFE0220, "55"), (0xFFFE0221, "89e5"), (0xFFFE0223, "e800000000")]
    assert d.lines[2].text == "call 0xfffe0228"
    # Any address inside: the code's bytes at TE file offset 0x60 + (address - entry).
    d = disassemble_image(te, address=0xFFFE0228, count=1)
    assert d.lines[0].raw.hex() == "31c0"


def test_te_not_at_its_linked_address_is_placed_at_image_base_with_a_note():
    image_base = 0xFFFE0000
    space = placed(te_image(I386, CODE32, image_base), 0x100, 0xFFF00000)
    te = decode_te(space, 0x100, 0xA0, 0xFFF00100)
    d = disassemble_image(te, count=1)
    assert d.where == "image-base" and d.entry == image_base + TE_TEXT_RVA
    assert any("linked for 0xfffe01c0" in n for n in d.notes)


def test_other_machines_are_a_problem_not_a_guess():
    pe = decode_pe(placed(pe_image(ARM64, CODE64, 0, plus=True), 0, None), 0, 0x300)
    d = disassemble_image(pe)
    assert d.lines == [] and d.mode == "" and "0xaa64" in d.problems[0] and "AARCH64" in d.problems[0]


def test_bad_header_is_a_problem():
    pe = decode_pe(placed(pe_image(I386, CODE32, 0, magic=b"ZZ"), 0, None), 0, 0x300)
    d = disassemble_image(pe)
    assert d.lines == [] and "could not be read" in d.problems[0] and "e_magic" in d.problems[0]
    d = disassemble_image(Node("ffs", "a file without an image", None, 0, 0))
    assert d.lines == [] and "no PE32 or TE image" in d.problems[0]


def test_address_outside_the_image_is_a_problem():
    pe = decode_pe(placed(pe_image(I386, CODE32, 0x10000), 0, None), 0, 0x300)
    for addr in (0xFFFF, 0x10000 + 0x300, 0):
        d = disassemble_image(pe, address=addr)
        assert d.lines == [] and f"0x{addr:x} is not in" in d.problems[0]


def test_undecodable_byte_is_a_bad_line_and_decoding_goes_on():
    code = bytes.fromhex("06 90 c3")                 # PUSH ES is invalid in 64-bit mode (SDM vol. 2)
    pe = decode_pe(placed(pe_image(AMD64, code, 0, plus=True), 0, None), 0, 0x300)
    d = disassemble_image(pe, count=3)
    assert [(ln.address, ln.raw.hex(), ln.text) for ln in d.lines] == [
        (0x200, "06", "(bad)"), (0x201, "90", "nop"), (0x202, "c3", "ret")]


def test_tdx_instructions_capstone_lacks_are_named():
    code = bytes.fromhex("660f01cc 660f01cf c3")     # TDCALL, SEAMCALL (Intel SDM vol. 2), RET
    pe = decode_pe(placed(pe_image(AMD64, code, 0, plus=True), 0, None), 0, 0x300)
    d = disassemble_image(pe, count=3)
    assert [(ln.address, ln.raw.hex(), ln.text) for ln in d.lines] == [
        (0x200, "660f01cc", "tdcall"), (0x204, "660f01cf", "seamcall"), (0x208, "c3", "ret")]


def test_listing_stops_at_the_end_of_the_section():
    pe = decode_pe(placed(pe_image(I386, bytes.fromhex("90") * 0x20, 0x10000), 0, None), 0, 0x300)
    d = disassemble_image(pe, count=1000)
    assert len(d.lines) == 0x20 and d.lines[-1].address == 0x1021F


def test_section_and_file_nodes_lead_to_their_image():
    space = placed(pe_image(I386, CODE32, 0x10000), 0x18, None)
    pe = decode_pe(space, 0x18, 0x300)
    sec = Node("section", "PE32 section", space, 0x14, 0x304, children=[pe])
    ffs = Node("ffs", "Module", space, 0, 0x318, children=[Node("section", "UI", space, 0, 4), sec])
    assert image_node(sec) is pe and image_node(ffs) is pe
    assert disassemble_image(ffs, count=1).lines[0].address == 0x10200


# -- real modules against objdump ---------------------------------------------------------------------
OBJDUMP_LINE = re.compile(r"^\s*([0-9a-f]+):\t([0-9a-f ]+?)\s*\t(.*)$")
# Names capstone and objdump (Intel syntax) give the same instruction.
ALIASES = {("xchg", "nop"), ("stos", "stosd"), ("stos", "stosb"), ("stos", "stosq"), ("movs", "movsb"),
           ("movs", "movsd"), ("movs", "movsq"), ("cs", "nop"), ("data16", "nop"), ("ds", "nop"),
           ("lods", "lodsb"), ("scas", "scasb"), ("cmps", "cmpsb")}


def objdump(raw: bytes, tmp_path, arch: str, vma: int, start: int, count: int) -> list[tuple[int, str, str]]:
    exe = tool("objdump", "binutils")
    f = tmp_path / "image.bin"
    f.write_bytes(raw)
    out = subprocess.run([exe, "-D", "-b", "binary", "-m", arch, "-M", "intel", "--insn-width=16",
                          f"--adjust-vma=0x{vma:x}", f"--start-address=0x{start:x}",
                          f"--stop-address=0x{start + count * 15:x}", str(f)],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    rows = []
    for line in out.splitlines():
        m = OBJDUMP_LINE.match(line)
        if m:
            rows.append((int(m[1], 16), m[2].replace(" ", ""), m[3].strip()))
    return rows[:count]


def _mnemonic(text: str) -> list[str]:
    words = text.split()
    # Prefixes are their own word in both: compare up to two words.
    return [w for w in words[:2] if not w.startswith(("0x", "[")) and "," not in w and "PTR" not in w][:2]


def compare_with_objdump(d, raw: bytes, tmp_path, count: int) -> None:
    arch = "i386" if d.bits == 32 else "i386:x86-64"
    rows = objdump(raw, tmp_path, arch, d.base, d.lines[0].address, count)
    assert len(rows) == count and len(d.lines) == count
    mismatched = []
    for ln, (addr, hexbytes, text) in zip(d.lines, rows):
        assert (ln.address, ln.raw.hex()) == (addr, hexbytes), (hex(ln.address), ln.text, text)
        ours, theirs = ln.text.split()[0], text.split()[0]
        if ours != theirs and (theirs, ours) not in ALIASES and ours not in text:
            mismatched.append((hex(addr), ln.text, text))
        # Relative branch targets: the same absolute address (right run address, right mode).
        if theirs in ("call", "jmp") and re.fullmatch(r"(call|jmp)\s+0x[0-9a-f]+", text):
            assert ln.text.replace(" ", "") == text.replace(" ", ""), (ln.text, text)
    assert not mismatched, mismatched


@pytest.fixture(scope="module")
def debian():
    from inspector.image import load_image

    return load_image(bookworm("OVMF_CODE_4M.fd"))


@pytest.fixture(scope="module")
def debug_build():
    from inspector.image import load_image

    return load_image(firmware("ovmf-debug/OVMF.fd"))


def test_debian_sec_ia32_entry_equals_objdump_at_its_flash_address(debian, tmp_path):
    f = find_module(debian.root, "SecMain")
    d = disassemble_image(f, count=120)
    img = image_node(f)
    flash = (1 << 32) - len(debian.data) + img.offset     # the image's first byte, mapped below 4 GiB
    assert (d.mode, d.where, d.base) == ("prot32", "flash", flash)
    assert d.entry == flash + img.get("AddressOfEntryPoint") == img.get("XipEntryPoint")
    compare_with_objdump(d, img.bytes, tmp_path, 120)


def test_debian_dxe_core_x64_entry_equals_objdump(debian, tmp_path):
    f = find_module(debian.root, "DxeCore")
    d = disassemble_image(f, count=200)
    img = image_node(f)
    assert (d.mode, d.where, d.base, d.entry) == ("long64", "image-base", 0, img.get("AddressOfEntryPoint"))
    compare_with_objdump(d, img.bytes, tmp_path, 200)


def test_debian_pei_module_ia32_mid_image_equals_objdump(debian, tmp_path):
    f = find_module(debian.root, "PlatformPei")
    img = image_node(f)
    d0 = disassemble_image(f, count=60)
    d = disassemble_image(f, address=d0.lines[40].address, count=100)
    assert d.mode == "prot32" and d.base == img.get("ImageBase")
    compare_with_objdump(d, img.bytes, tmp_path, 100)


@pytest.mark.parametrize("module", ["SecMain", "PlatformPei", "DxeCore"])
def test_debug_build_x64_modules_equal_objdump(debug_build, tmp_path, module):
    f = find_module(debug_build.root, module)
    d = disassemble_image(f, count=150)
    assert d.mode == "long64" and d.problems == []
    compare_with_objdump(d, image_node(f).bytes, tmp_path, 150)


# -- symbols from the debug build's .debug files ------------------------------------------------------
def nm_functions(path) -> dict[str, int]:
    exe = tool("nm", "binutils")
    out = subprocess.run([exe, "-S", "--defined-only", str(path)], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    funcs = {}
    for line in out.split("\n"):
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tT" and int(parts[1], 16) > 0 and not parts[3].startswith("."):
            funcs.setdefault(parts[3], int(parts[0], 16))
    return funcs


def elf_text_address(path) -> int:
    out = subprocess.run([tool("objdump", "binutils"), "-h", str(path)], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    (line,) = [ln for ln in out.splitlines() if ln.split()[1:2] == [".text"]]
    return int(line.split()[3], 16)


def pe_text_rva(raw: bytes) -> int:
    lfanew = struct.unpack_from("<I", raw, 0x3C)[0]
    nsec, opt_size = struct.unpack_from("<H", raw, lfanew + 6)[0], struct.unpack_from("<H", raw, lfanew + 20)[0]
    for i in range(nsec):
        name, _vsize, va = struct.unpack_from("<8sII", raw, lfanew + 24 + opt_size + 40 * i)
        if name.rstrip(b"\0") == b".text":
            return va
    raise AssertionError("no .text")


@pytest.mark.parametrize("module", ["SecMain", "PlatformPei"])
def test_entry_is_named_module_entry_point(debug_build, module):
    d = disassemble_image(find_module(debug_build.root, module), count=4, symbols=debug_symbols())
    assert d.problems == [], d.problems
    assert d.lines[0].symbol == "_ModuleEntryPoint" and d.lines[0].symbol_start
    assert d.lines[1].symbol.startswith("_ModuleEntryPoint+0x") and not d.lines[1].symbol_start


def test_functions_are_named_where_nm_puts_them_and_their_code_is_the_debug_files(debug_build, tmp_path):
    symdir = debug_symbols()
    debug = symdir / "PlatformPei.debug"
    f = find_module(debug_build.root, "PlatformPei")
    img = image_node(f)
    funcs = nm_functions(debug)
    text_elf, text_rva = elf_text_address(debug), pe_text_rva(img.bytes)
    names = [n for n in ("PublishPeiMemory", "InitializePlatform", "_ModuleEntryPoint") if n in funcs]
    assert len(names) >= 2
    for name in names:
        # GenFw keeps the layout: PE RVA = ELF address - ELF .text + PE .text VirtualAddress.
        run = img.get("ImageBase") + funcs[name] - text_elf + text_rva
        d = disassemble_image(f, address=run, count=3, symbols=symdir)
        assert d.lines[0].symbol == name and d.lines[0].symbol_start, (name, d.lines[0])
        # The same bytes as the ELF's code at that symbol (objdump -d of the .debug file).
        out = subprocess.run([tool("objdump", "binutils"), "-d", "-M", "intel", "--insn-width=16",
                              f"--start-address=0x{funcs[name]:x}", f"--stop-address=0x{funcs[name] + 45:x}",
                              str(debug)], check=True, capture_output=True, text=True, timeout=60).stdout
        elf_rows = [OBJDUMP_LINE.match(ln) for ln in out.splitlines()]
        elf_rows = [m for m in elf_rows if m][:3]
        assert [m[2].replace(" ", "") for m in elf_rows] == [ln.raw.hex() for ln in d.lines], name


def test_symbols_of_another_build_are_a_problem_not_wrong_names(debian):
    # Debian's PlatformPei is IA32 and another build: the debug build's X64 .debug must not name it.
    d = disassemble_image(find_module(debian.root, "PlatformPei"), count=2, symbols=debug_symbols())
    assert all(ln.symbol is None for ln in d.lines)
    assert any("no .debug file for PlatformPei" in p for p in d.problems)
