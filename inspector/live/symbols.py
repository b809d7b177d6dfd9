"""Symbols for a live session from an edk2 build output (`--symbols BUILD_DIR`).

An edk2 GCC build leaves one ELF per module next to its .efi: BUILD_DIR/<target>/<arch>/.../DEBUG/
<BaseName>.debug (BaseTools/Conf/build_rule.template: `$(DEBUG_DIR)(+)$(MODULE_NAME).debug`). GenFw
turns that ELF into the PE the firmware loads; the code bytes keep their layout, so an address in a
loaded image maps to the ELF by the .text sections: elf = RIP - (ImageBase + PE .text VirtualAddress)
+ ELF .text sh_addr (the same anchor gdb's `add-symbol-file FILE TEXTADDR` uses, and edk2's
BaseTools/Scripts/efi_debugging.py / efi_gdb.py emit). The module is found by its FFS UI name, which
is the module's BASE_NAME in edk2's .inf files (the [Rule.*] sections of OvmfPkg/OvmfPkgX64.fdf
write `UI STRING="$(MODULE_NAME)"`), so "BdsDxe" -> BdsDxe.debug.

Which modules are loaded where is inspector/live/modules.py's business; this module only maps an
address in a known image to its symbols.

pyelftools reads the symbol table (STT_FUNC: the function containing the address) and the DWARF
line programs (file:line), both lazily and bounded. Nothing here talks to the target: the PE
header is read through a Memory (decoders/memory.py).
"""
from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from pathlib import Path

from decoders.errors import DecodeError, parse_at
from decoders.memory import Memory, Unreadable
from decoders.model import Node
from decoders.pe import structs as PE

# A full OVMF build has ~250 modules (x2 with IA32 and X64 trees); a directory with more .debug
# files than this is not one build output.
MAX_DEBUG_FILES = 8192
# Directories walked looking for DEBUG/ folders (the Build tree is a few thousand deep at most).
MAX_WALK_DIRS = 200_000
# Rows kept from DWARF line programs of one module (DxeCore has ~60 k) and functions per module.
MAX_LINE_ROWS = 1 << 20
MAX_FUNCTIONS = 1 << 18
# PE headers read from a loaded image: DOS + NT headers + section table fit in the first 4 KiB
# (GenFw's PE header size is 0x240 or one page).
PE_HEADER_BYTES = 0x1000
MAX_SECTIONS = 96


@dataclass
class Symbolized:
    """Where an address is in a module's source."""

    function: str | None
    function_offset: int | None
    file: str | None
    line: int | None
    elf_address: int

    def text(self) -> str:
        where = f"{self.function}+0x{self.function_offset:x}" if self.function else f"0x{self.elf_address:x}"
        if self.file:
            where += f" at {self.file}:{self.line}"
        return where


class ModuleSymbols:
    """One module's .debug ELF: functions and line table, read on first use."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._functions: list[tuple[int, int, str]] | None = None
        self._starts: list[int] = []
        self._lines: list[tuple[int, str, int]] | None = None
        self._line_addrs: list[int] = []
        self.text_address: int | None = None
        self.problems: list[str] = []

    def _load(self) -> None:
        if self._functions is not None:
            return
        from elftools.common.exceptions import ELFError, DWARFError
        from elftools.elf.elffile import ELFFile
        from elftools.elf.sections import SymbolTableSection
        self._functions, self._lines = [], []
        try:
            with open(self.path, "rb") as f:
                elf = ELFFile(f)
                text = elf.get_section_by_name(".text")
                self.text_address = text["sh_addr"] if text is not None else None
                for sec in elf.iter_sections():
                    if not isinstance(sec, SymbolTableSection):
                        continue
                    for sym in sec.iter_symbols():
                        if len(self._functions) >= MAX_FUNCTIONS:
                            self.problems.append(f"more than {MAX_FUNCTIONS} functions: the rest ignored")
                            break
                        if sym["st_info"]["type"] == "STT_FUNC" and sym["st_shndx"] != "SHN_UNDEF" and sym.name:
                            self._functions.append((sym["st_value"], sym["st_size"], sym.name))
                if elf.has_dwarf_info():
                    self._read_lines(elf.get_dwarf_info())
        except (OSError, ELFError, DWARFError, DecodeError, ValueError) as e:
            self.problems.append(f"{self.path}: {e}")
        self._functions.sort()
        self._starts = [a for a, _, _ in self._functions]
        self._lines.sort()
        self._line_addrs = [a for a, _, _ in self._lines]

    def _read_lines(self, dwarf) -> None:
        for cu in dwarf.iter_CUs():
            prog = dwarf.line_program_for_CU(cu)
            if prog is None:
                continue
            header = prog.header
            names = header["file_entry"]
            # DWARF 5 numbers files from 0, earlier versions from 1 (DWARF 5 6.2.4 item 20).
            first = 0 if header["version"] >= 5 else 1
            for entry in prog.get_entries():
                st = entry.state
                if st is None or st.end_sequence:
                    continue
                if len(self._lines) >= MAX_LINE_ROWS:
                    self.problems.append(f"more than {MAX_LINE_ROWS} line rows: the rest ignored")
                    return
                i = st.file - first
                name = names[i].name.decode("utf-8", "replace") if 0 <= i < len(names) else "?"
                self._lines.append((st.address, name, st.line))

    def lookup(self, elf_address: int) -> Symbolized:
        self._load()
        func = off = None
        i = bisect.bisect_right(self._starts, elf_address) - 1
        if i >= 0:
            start, size, name = self._functions[i]
            if elf_address < start + max(size, 1):
                func, off = name, elf_address - start
        file = line = None
        j = bisect.bisect_right(self._line_addrs, elf_address) - 1
        if j >= 0 and (func is None or self._line_addrs[j] >= self._starts[i]):
            _, file, line = self._lines[j]
        return Symbolized(func, off, file, line, elf_address)


class SymbolIndex:
    """The .debug files of a build directory, by module name (file stem)."""

    def __init__(self, build_dir: str | Path):
        self.root = Path(build_dir)
        self.files: dict[str, Path] = {}
        self.problems: list[str] = []
        self._modules: dict[str, ModuleSymbols] = {}
        dirs = 0
        for top, subdirs, names in os.walk(self.root):
            dirs += 1
            if dirs > MAX_WALK_DIRS:
                self.problems.append(f"stopped after {MAX_WALK_DIRS} directories")
                break
            if Path(top).name != "DEBUG":
                continue
            for n in sorted(names):
                if n.endswith(".debug"):
                    if len(self.files) >= MAX_DEBUG_FILES:
                        self.problems.append(f"more than {MAX_DEBUG_FILES} .debug files: the rest ignored")
                        return
                    # The first one wins; X64 and IA32 trees both hold e.g. PcdPeim.debug.
                    self.files.setdefault(n[:-len(".debug")], Path(top) / n)

    def module(self, name: str | None) -> ModuleSymbols | None:
        if not name or name not in self.files:
            return None
        if name not in self._modules:
            self._modules[name] = ModuleSymbols(self.files[name])
        return self._modules[name]


def pe_text_rva(mem: Memory, image_base: int) -> int | None:
    """The .text section's VirtualAddress from the PE header of the image loaded at image_base
    (PeImage.h: DOS header e_lfanew -> "PE\\0\\0", EFI_IMAGE_FILE_HEADER, optional header, sections)."""
    try:
        raw = mem.read(image_base, PE_HEADER_BYTES)
        dos = parse_at(PE.EFI_IMAGE_DOS_HEADER, raw, 0)
        if dos.e_magic != PE.EFI_IMAGE_DOS_SIGNATURE or dos.e_lfanew + 24 > len(raw):
            return None
        if int.from_bytes(raw[dos.e_lfanew:dos.e_lfanew + 4], "little") != PE.EFI_IMAGE_NT_SIGNATURE:
            return None
        fh = parse_at(PE.EFI_IMAGE_FILE_HEADER, raw, dos.e_lfanew + 4)
        at = dos.e_lfanew + 24 + fh.SizeOfOptionalHeader
        for i in range(min(fh.NumberOfSections, MAX_SECTIONS)):
            if at + PE.EFI_IMAGE_SIZEOF_SECTION_HEADER > len(raw):
                return None
            sh = parse_at(PE.EFI_IMAGE_SECTION_HEADER, raw, at)
            if sh.Name.rstrip(b"\0") == b".text":
                return sh.VirtualAddress
            at += PE.EFI_IMAGE_SIZEOF_SECTION_HEADER
    except (Unreadable, DecodeError):
        return None
    return None


@dataclass
class LoadedModule:
    name: str
    base: int
    size: int


def symbolize(index: SymbolIndex, images: list[LoadedModule], mem: Memory, pc: int) -> Node | None:
    """A "symbol" node for `pc`: module, function and line, or None when pc is in no loaded image."""
    img = next((m for m in images if m.base <= pc < m.base + m.size), None)
    if img is None:
        return None
    node = Node("symbol", f"{img.name}+0x{pc - img.base:x}")
    node.add("Module", img.name)
    node.add("ImageBase", img.base, display=f"0x{img.base:x}")
    node.add("ImageOffset", pc - img.base, display=f"0x{pc - img.base:x}")
    syms = index.module(img.name)
    if syms is None:
        node.note(None, f"no {img.name}.debug under {index.root}")
        return node
    rva = pe_text_rva(mem, img.base)
    syms._load()
    if rva is None or syms.text_address is None:
        node.warn(None, "no .text section in the loaded PE header or the ELF; using the image offset")
        elf = pc - img.base
    else:
        elf = pc - (img.base + rva) + syms.text_address
    s = syms.lookup(elf)
    node.add("DebugFile", str(syms.path))
    node.add("ElfAddress", elf, display=f"0x{elf:x}")
    node.add("Function", s.function, display=f"{s.function}+0x{s.function_offset:x}" if s.function else "?")
    if s.file:
        node.add("File", s.file)
        node.add("Line", s.line)
    for p in syms.problems:
        node.warn(None, p)
    node.title = f"{img.name}!{s.text()}"
    return node


def gdb_script(index: SymbolIndex | None, images: list[LoadedModule], mem: Memory) -> str:
    """`add-symbol-file FILE TEXTADDR` for each loaded image with a .debug file, TEXTADDR = ImageBase +
    the .text VirtualAddress of its PE header in memory (as edk2's efi_gdb.py does). Without an
    index every image gets a line naming `<UI name>.debug`, for the user's own build tree."""
    where = index.root if index is not None else "(no --symbols: paths are <module>.debug)"
    lines = [f"# fwinspect: symbols for {len(images)} loaded images from {where}"]
    for m in sorted(images, key=lambda m: m.base):
        if index is not None:
            syms = index.module(m.name)
            if syms is None:
                continue
            path = str(syms.path)
        else:
            path = f"{m.name}.debug"
        rva = pe_text_rva(mem, m.base)
        if rva is None:
            lines.append(f"# {m.name} at 0x{m.base:x}: no PE .text section readable")
            continue
        lines.append(f"add-symbol-file {path} 0x{m.base + rva:x}")
    return "\n".join(lines) + "\n"


__all__ = ["ModuleSymbols", "SymbolIndex", "Symbolized", "LoadedModule", "pe_text_rva", "symbolize", "gdb_script"]
