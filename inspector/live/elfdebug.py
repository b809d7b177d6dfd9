"""One module's .debug ELF: its symbol table and its DWARF line table, read lazily and bounded.

The symbol table is read with `struct` straight from the ELF (System V gABI, chapter 4: ELF header,
section header table, Elf32_Sym/Elf64_Sym), which is fast enough to index every module's names
without touching DWARF. Line tables come from .debug_line (DWARF 5 section 6.2, DWARF 4 too): the
CU holding an address is found through .debug_aranges (DWARF 5 6.1.2), that CU's first DIE and
line-program header are read and its opcodes run (6.2.5) by dwarfline.py, with `struct` and
bounded; what that reader does not take (compressed sections, DWARF64, unusual forms) pyelftools
reads, as it read every file before.

Function at an address follows binutils' addr2line (bfd/elf.c _bfd_elf_find_function,
_bfd_elf_maybe_function_sym, better_fit): STT_FUNC and STT_NOTYPE symbols of the code section are
candidates (nasm globals such as SecMain's `_ModuleEntryPoint` are STT_NOTYPE with size 0), the
nearest one at or below the address wins, a size-0 symbol counts as size 1 for the tie-breaks, and
at one address a symbol that covers beats one that does not, a function beats a notype, a smaller
size beats a larger, else the first in the table. Unlike addr2line, an address past the end of a
sized function is in no function (gdb's minimal-symbol lookup refuses it too).

Linked edk2 .debug files are ET_EXEC with --emit-relocs (.rela.debug_* sections): their DWARF
already holds final addresses, so relocations are not applied (as gdb and addr2line do for an
executable).
"""
from __future__ import annotations

import bisect
import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from inspector.live.dwarfline import SECTIONS as DWARF_SECTIONS
from inspector.live.dwarfline import Declined, DwarfReader, FileTable, find_row, run_line_program, table

# gABI constants.
ELF_MAGIC = b"\x7fELF"
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB = 1
EM_386, EM_X86_64, EM_AARCH64, EM_RISCV = 3, 62, 183, 243
SHT_SYMTAB, SHT_NOBITS = 2, 8
SHF_EXECINSTR, SHF_COMPRESSED = 0x4, 0x800
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE, STT_GNU_IFUNC = 0, 1, 2, 3, 4, 10
SYMBOL_TYPES = frozenset((STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_GNU_IFUNC))      # the ones kept
STB_LOCAL = 0
STV_HIDDEN = 2
SHN_UNDEF, SHN_LORESERVE = 0, 0xFF00

# Caps: a real module's .debug has ~100 sections and at most a few thousand symbols (DxeCore: ~2 k);
# anything past these is not an edk2 module.
MAX_SECTIONS = 4096
MAX_SYMBOLS = 1 << 18
MAX_DEBUG_FILE = 1 << 30


class ElfProblem(Exception):
    """A .debug file that cannot be read as an ELF, with where it went wrong."""


@dataclass
class Section:
    index: int
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int


@dataclass
class Symbol:
    name: str
    value: int
    size: int
    type: int
    bind: int
    other: int
    shndx: int
    order: int          # index in .symtab (the last tie-break)


@dataclass
class Symbolized:
    """Where an address is in a module's source; file and line are None when no line-table row
    covers it."""

    function: str | None
    function_offset: int | None
    file: str | None
    line: int | None
    elf_address: int

    def text(self) -> str:
        if self.function:
            where = self.function + (f"+0x{self.function_offset:x}" if self.function_offset else "")
        else:
            where = f"0x{self.elf_address:x}"
        if self.file:
            where += f" at {os.path.basename(self.file)}:{self.line}"
        return where


class ModuleSymbols:
    """One module's .debug ELF. Nothing is read until asked; problems (truncated, not an ELF, no
    symbol table, no DWARF) are kept in `problems` and the lookups then answer "unknown"."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.problems: list[str] = []
        self._header_read = False
        self._symbols_read = False
        self.elf_class: int | None = None
        self.machine: int | None = None
        self.sections: list[Section] = []
        self.text: Section | None = None
        self._symtab: tuple[bytes, bytes] | None | bool = None
        self._symbols: list[Symbol] = []
        self._code: list[tuple] | None = None
        self._starts: list[int] = []
        self._by_name: dict[str, list[Symbol]] | None = None
        self._dwarf = None              # None: not read yet; False: no lines; else the reader in use
        self._fast: DwarfReader | None = None
        self._pyelf = None
        self._line_data = b""
        self._aranges = None
        self._cu_lines: dict[int, tuple] = {}
        self._all_lines: tuple | None = None

    # ---- ELF header and sections ------------------------------------------------------------------
    def _read(self, f, offset: int, size: int, what: str) -> bytes:
        if offset < 0 or size < 0 or offset + size > self._size:
            raise ElfProblem(f"{what} at file offset 0x{offset:x} (+0x{size:x}) is past the end of the "
                             f"file (0x{self._size:x} bytes): truncated?")
        f.seek(offset)
        return f.read(size)

    def header(self) -> bool:
        """Read the ELF header and section headers; False (with a problem) when that fails."""
        if not self._header_read:
            self._header_read = True
            try:
                with open(self.path, "rb") as f:
                    self._size = os.fstat(f.fileno()).st_size
                    self._parse_header(f)
            except OSError as e:
                self.problems.append(f"{self.path}: {e.strerror or e}")
            except ElfProblem as e:
                self.problems.append(f"{self.path}: {e}")
        return self.text is not None

    def _parse_header(self, f) -> None:
        if self._size > MAX_DEBUG_FILE:
            raise ElfProblem(f"{self._size} bytes: larger than any module's .debug ({MAX_DEBUG_FILE})")
        ident = self._read(f, 0, 16, "the ELF identification")
        if ident[:4] != ELF_MAGIC:
            raise ElfProblem(f"not an ELF file (starts {ident[:4]!r}, gABI e_ident wants 7f 45 4c 46)")
        cls, data = ident[4], ident[5]
        if cls not in (ELFCLASS32, ELFCLASS64) or data != ELFDATA2LSB:
            raise ElfProblem(f"e_ident class {cls} / data {data}: only little-endian ELF32/ELF64 is read")
        self.elf_class = cls
        if cls == ELFCLASS64:
            fmt, shfmt, shsize = "<HHIQQQIHHHHHH", "<IIQQQQIIQQ", 64
        else:
            fmt, shfmt, shsize = "<HHIIIIIHHHHHH", "<IIIIIIIIII", 40
        hdr = struct.unpack(fmt, self._read(f, 16, struct.calcsize(fmt), "the ELF header"))
        (_type, machine, _ver, _entry, _phoff, shoff, _flags, _ehsize, _phes, _phnum,
         shentsize, shnum, shstrndx) = hdr
        self.machine = machine
        if shnum == 0 or shoff == 0:
            raise ElfProblem("no section header table (e_shoff 0): nothing to read symbols from")
        if shentsize < shsize or shnum > MAX_SECTIONS:
            raise ElfProblem(f"e_shentsize {shentsize} / e_shnum {shnum}: not a section header table")
        raw = self._read(f, shoff, shnum * shentsize, "the section header table")
        heads = [struct.unpack_from(shfmt, raw, i * shentsize) for i in range(shnum)]
        if shstrndx >= shnum:
            raise ElfProblem(f"e_shstrndx {shstrndx} is not one of the {shnum} sections")
        sh = heads[shstrndx]
        names = self._read(f, sh[4], sh[5], "the section name table (.shstrtab)")
        for i, (name, typ, flags, addr, off, size, link, _info, _al, _es) in enumerate(heads):
            end = names.find(b"\0", name)
            text = names[name:end if end >= 0 else None].decode("ascii", "replace")
            self.sections.append(Section(i, text, typ, flags, addr, off, size, link))
        self.text = next((s for s in self.sections if s.name == ".text"), None)
        if self.text is None:
            self.text = next((s for s in self.sections if s.flags & SHF_EXECINSTR), None)
        if self.text is None:
            raise ElfProblem("no .text section")

    def text_bytes(self) -> bytes:
        """The code bytes of .text as linked."""
        if not self.header():
            return b""
        with open(self.path, "rb") as f:
            try:
                return self._read(f, self.text.offset, self.text.size, ".text")
            except ElfProblem as e:
                self.problems.append(f"{self.path}: {e}")
                return b""

    @property
    def text_address(self) -> int | None:
        return self.text.addr if self.header() else None

    # ---- symbols ----------------------------------------------------------------------------------
    def _symbol_table(self) -> tuple[bytes, bytes] | None:
        """(.symtab cut to whole entries and MAX_SYMBOLS, .strtab), read once; None, with a problem,
        when there is none."""
        if self._symtab is None:
            self._symtab = False
            if not self.header():
                return None
            symtab = next((s for s in self.sections if s.type == SHT_SYMTAB), None)
            if symtab is None:
                self.problems.append(f"{self.path}: no .symtab (stripped?): no function names")
                return None
            try:
                with open(self.path, "rb") as f:
                    if symtab.link >= len(self.sections):
                        raise ElfProblem(f".symtab sh_link {symtab.link} names no section")
                    strtab = self.sections[symtab.link]
                    raw = self._read(f, symtab.offset, symtab.size, ".symtab")
                    strings = self._read(f, strtab.offset, strtab.size, ".strtab")
            except (OSError, ElfProblem) as e:
                self.problems.append(f"{self.path}: {e}")
                return None
            entsize = 24 if self.elf_class == ELFCLASS64 else 16
            if len(raw) // entsize > MAX_SYMBOLS:
                self.problems.append(f"{self.path}: {len(raw) // entsize} symbols: only the first {MAX_SYMBOLS} read")
            self._symtab = raw[:min(len(raw) // entsize, MAX_SYMBOLS) * entsize], strings
        return self._symtab or None

    def _rows(self, raw: bytes):
        """(st_name, st_info, st_other, st_shndx, st_value, st_size) of each Elf64_Sym/Elf32_Sym."""
        if self.elf_class == ELFCLASS64:
            return struct.iter_unpack("<IBBHQQ", raw)
        return ((n, i, o, sh, v, sz) for n, v, sz, i, o, sh in struct.iter_unpack("<IIIBBH", raw))

    def _name(self, strings: bytes, at: int) -> str:
        end = strings.find(b"\0", at)
        return strings[at:end if end >= 0 else None].decode("utf-8", "replace")

    def _load_code(self) -> None:
        """The code symbols for address lookup, as (value, order, size, type, st_name) sorted by value
        then order: STT_FUNC/STT_GNU_IFUNC/STT_NOTYPE/STT_OBJECT symbols of .text (bfd compares the
        symbol's section), minus bfd's exclusion of hidden local notype size-0 symbols (annobin
        markers) and local .L labels. Names are decoded only for the symbol a lookup returns."""
        if self._code is not None:
            return
        self._code, self._starts = [], []
        table = self._symbol_table()
        if table is None:
            return
        raw, strings = table
        text, n = self.text.index, len(strings)
        if text == SHN_UNDEF:
            return
        code = []
        for order, (name, info, other, shndx, value, size) in enumerate(self._rows(raw)):
            typ = info & 0xF
            if shndx != text or typ not in SYMBOL_TYPES or not name or name >= n:
                continue
            if typ == STT_NOTYPE and (info >> 4) == STB_LOCAL and (
                    size == 0 and (other & 3) == STV_HIDDEN or strings.startswith(b".L", name)):
                continue
            code.append((value, order, size, typ, name))
        code.sort()
        self._code = code
        self._starts = [c[0] for c in code]

    def _load_symbols(self) -> None:
        """Every named symbol of a section (function names for breakpoints)."""
        if self._symbols_read:
            return
        self._symbols_read = True
        table = self._symbol_table()
        if table is None:
            return
        raw, strings = table
        syms = []
        for order, (name, info, other, shndx, value, size) in enumerate(self._rows(raw)):
            typ = info & 0xF
            if typ not in SYMBOL_TYPES or shndx == SHN_UNDEF or shndx >= SHN_LORESERVE:
                continue
            if not name or name >= len(strings):
                continue
            syms.append(Symbol(self._name(strings, name), value, size, typ, info >> 4, other & 3, shndx, order))
        self._symbols = syms

    def may_define(self, name: bytes) -> bool:
        """False only when `name` is certainly no symbol's: the bytes of `name` and a NUL are nowhere in
        .strtab (a symbol's st_name points into .strtab, gABI 4 "String Table"). Reads .strtab alone,
        a quick test before the symbol table is decoded; True whenever that cannot be told."""
        if self._symtab:
            strings = self._symtab[1]
        else:
            if not self.header():
                return True
            symtab = next((s for s in self.sections if s.type == SHT_SYMTAB), None)
            if symtab is None or symtab.link >= len(self.sections):
                return True
            strtab = self.sections[symtab.link]
            try:
                with open(self.path, "rb") as f:
                    strings = self._read(f, strtab.offset, strtab.size, ".strtab")
            except (OSError, ElfProblem):
                return True
        return name + b"\0" in strings or strings.endswith(name)

    def function_names(self) -> set[str]:
        """Names a breakpoint can take: STT_FUNC symbols and global/weak STT_NOTYPE ones (nasm
        entry points); local notype labels (.LC0, loop labels) are left out."""
        self._load_symbols()
        return {s.name for s in self._symbols
                if s.type in (STT_FUNC, STT_GNU_IFUNC) or s.bind != STB_LOCAL}

    def addresses_of(self, name: str) -> list[int]:
        """ELF addresses of the function symbols named `name` (several for same-named statics)."""
        self._load_symbols()
        if self._by_name is None:
            self._by_name = {}
            for s in self._symbols:
                if s.type in (STT_FUNC, STT_GNU_IFUNC) or s.bind != STB_LOCAL:
                    self._by_name.setdefault(s.name, []).append(s)
        return sorted({s.value for s in self._by_name.get(name, [])})

    def function_at(self, address: int) -> tuple[str, int] | None:
        self._load_code()
        starts = self._starts
        i = bisect.bisect_right(starts, address) - 1
        if i < 0:
            return None
        best = None
        for c in self._code[bisect.bisect_left(starts, starts[i]):i + 1]:
            if best is None or _better_fit(best, c, address):
                best = c
        value, _order, size, typ, name = best
        # Data (rodata is linked into .text by edk2's GccBase.lds) and past-the-end addresses of a
        # sized function are in no function.
        if typ == STT_OBJECT or (size and address >= value + size):
            return None
        return self._name(self._symtab[1], name), address - value

    # ---- lines ------------------------------------------------------------------------------------
    def _dwarf_ready(self) -> bool:
        """Read the DWARF sections once: with the reader here (`DwarfReader`), else, for what it
        does not take (compressed or .zdebug sections, DWARF64 aranges, segmented addresses),
        with pyelftools."""
        if self._dwarf is None:
            self._dwarf = False
            if not self.header():
                return False
            if not any(s.name == ".debug_line" for s in self.sections):
                self.problems.append(f"{self.path}: no .debug_line (no DWARF line table): no source lines")
                return False
            self._fast = self._read_dwarf()
            self._dwarf = self._fast or self._pyelftools() or False
        return bool(self._dwarf)

    def _read_dwarf(self):
        # pyelftools' ELFFile.get_section_by_name takes the last section of a name: so do we.
        by_name = {s.name: s for s in self.sections}
        if any(n.startswith(".zdebug") for n in by_name) or \
                not all(n in by_name for n in (".debug_info", ".debug_abbrev", ".debug_line")):
            return None
        raw = {}
        try:
            with open(self.path, "rb") as f:
                for name in DWARF_SECTIONS:
                    s = by_name.get(name)
                    if s is None:
                        continue
                    if s.flags & SHF_COMPRESSED or s.type == SHT_NOBITS or s.offset + s.size > self._size:
                        return None
                    f.seek(s.offset)
                    raw[name] = f.read(s.size)
        except OSError:
            return None
        try:
            return DwarfReader(raw)
        except (Declined, IndexError, struct.error):
            return None

    def _pyelftools(self):
        if self._pyelf is None:
            from elftools.common.exceptions import ELFError
            from elftools.elf.elffile import ELFFile
            self._pyelf = False
            try:
                elf = ELFFile(io.BytesIO(self.path.read_bytes()))
                self._pyelf = elf.get_dwarf_info(relocate_dwarf_sections=False)
                s = self._pyelf.debug_line_sec.stream
                self._line_data = s.getvalue() if hasattr(s, "getvalue") else None
                if self._line_data is None:
                    s.seek(0)
                    self._line_data = s.read()
            except (OSError, ELFError) as e:
                self.problems.append(f"{self.path}: DWARF unreadable: {e}")
                self._pyelf = False
            except Exception as e:          # noqa: BLE001 - pyelftools raises many kinds on bad ELF
                self.problems.append(f"{self.path}: DWARF unreadable: {type(e).__name__}: {e}")
                self._pyelf = False
        return self._pyelf or None

    def _cu_offset(self, dwarf, address: int) -> int | None:
        if self._aranges is None:
            self._aranges = False
            try:
                self._aranges = dwarf.get_aranges() or False
            except Exception as e:          # noqa: BLE001 - pyelftools raises many kinds on bad DWARF
                self.problems.append(f"{self.path}: .debug_aranges unreadable: {e}")
        if not self._aranges or not self._aranges.entries:
            return None
        return self._aranges.cu_offset_at_addr(address)

    def line_at(self, address: int) -> tuple[str, int] | None:
        """(file, line) of the line-table row covering `address`, None when no row covers it."""
        if not self._dwarf_ready():
            return None
        if self._fast is not None:
            off = self._fast.cu_offset_at(address)
        else:
            off = self._cu_offset(self._dwarf, address)
        if off is not None:
            # The CU .debug_aranges names: its rows or none (DWARF 5 6.1.2: a CU's ranges are its code).
            return find_row(self._cu_table(off), address)
        # No .debug_aranges (or the address is not in it): every CU's table, merged.
        if self._all_lines is None:
            self._all_lines = table(self._all_sequences())
        return find_row(self._all_lines, address)

    def _cu_table(self, cu_offset: int) -> tuple:
        t = self._cu_lines.get(cu_offset)
        if t is None:
            t = self._cu_lines[cu_offset] = self._lines_of_cu(cu_offset)
        return t

    def _all_sequences(self) -> list:
        seqs = []
        offsets = None
        if self._fast is not None:
            try:
                offsets = self._fast.cu_offsets()
            except (Declined, IndexError, struct.error):
                offsets = None
        if offsets is not None:
            for off in offsets:
                seqs.extend(self._cu_table(off)[1])
            return seqs
        dwarf = self._pyelftools()
        if dwarf is None:
            return seqs
        try:
            for cu in dwarf.iter_CUs():
                seqs.extend(self._cu_table(cu.cu_offset)[1])
        except Exception as e:              # noqa: BLE001 - pyelftools raises many kinds on bad DWARF
            self.problems.append(f"{self.path}: DWARF CUs unreadable: {e}")
        return seqs

    def _lines_of_cu(self, cu_offset: int) -> tuple:
        read = False
        if self._fast is not None:
            try:
                prog, data, read = self._fast.line_program(cu_offset), self._fast.line, True
            except (Declined, IndexError, ValueError, struct.error):
                pass                        # pyelftools reads this CU
        if not read:
            dwarf = self._pyelftools()
            if dwarf is None:
                return table([])
            try:
                prog = pyelftools_program(dwarf, cu_offset)
            except Exception as e:          # noqa: BLE001 - pyelftools raises many kinds on bad DWARF
                self.problems.append(f"{self.path}: line program of the CU at 0x{cu_offset:x} unreadable: {e}")
                return table([])
            data = self._line_data
        if prog is None:
            return table([])
        seqs = run_line_program(data, prog, self.problems, self.path)
        # Sequences of functions the linker discarded keep address 0 (ld's tombstone for
        # .debug_line); gdb skips them when no code is at 0, and so do we.
        if self.text is not None and self.text.addr > 0:
            seqs = [q for q in seqs if q[0] != 0]
        return table(seqs)

    # ---- both -------------------------------------------------------------------------------------
    def lookup(self, elf_address: int) -> Symbolized:
        func = self.function_at(elf_address)
        line = self.line_at(elf_address)
        return Symbolized(func[0] if func else None, func[1] if func else None,
                          line[0] if line else None, line[1] if line else None, elf_address)


def _better_fit(cur: tuple, new: tuple, offset: int) -> bool:
    """binutils bfd/elf.c better_fit, for two candidates (value, order, size, type, name) at the same
    address (`new` later in order)."""
    cur_size, new_size = cur[2] or 1, new[2] or 1
    if cur[0] + cur_size <= offset:
        return new_size > cur_size
    if new[0] + new_size <= offset:
        return False
    cur_func, new_func = cur[3] != STT_NOTYPE, new[3] != STT_NOTYPE
    if cur_func != new_func:
        return new_func
    if new_size == cur_size:
        # Aliases (identical code folded by LTO): gdb's minimal-symbol lookup takes the last one.
        return True
    return new_size < cur_size


def pyelftools_program(dwarf, cu_offset: int) -> tuple | None:
    """What dwarfline.DwarfReader.line_program gives, read by pyelftools (raising what pyelftools
    raises, the file table's names made at once so that a bad one raises here too)."""
    cu = dwarf.get_CU_at(cu_offset)
    prog = dwarf.line_program_for_CU(cu)
    if prog is None:
        return None
    comp_dir = cu.get_top_DIE().attributes.get("DW_AT_comp_dir")
    comp_dir = comp_dir.value.decode("utf-8", "replace") if comp_dir is not None and \
        isinstance(comp_dir.value, bytes) else ""
    h = prog.header
    files = FileTable(h["version"], list(h.get("include_directory", [])),
                      [(fe.name, fe.dir_index) for fe in h.get("file_entry", [])], comp_dir)
    files.names()
    return (prog.program_start_offset, prog.program_end_offset, h["minimum_instruction_length"], h["line_base"],
            h["line_range"], h["opcode_base"], bytes(h["standard_opcode_lengths"]), files)


__all__ = ["ModuleSymbols", "Symbolized", "ElfProblem", "EM_386", "EM_X86_64"]
