"""One module's .debug ELF: its symbol table and its DWARF line table, read lazily and bounded.

The symbol table is read with `struct` straight from the ELF (System V gABI, chapter 4: ELF header,
section header table, Elf32_Sym/Elf64_Sym), which is fast enough to index every module's names
without touching DWARF. Line tables come from .debug_line (DWARF 5 section 6.2, DWARF 4 too): the
CU holding an address is found through .debug_aranges (DWARF 5 6.1.2), pyelftools reads that CU's
line-program header and the opcodes are run here (6.2.5), keeping rows per sequence: a row covers
[its address, the next row's address) within its sequence, and DW_LNE_end_sequence ends coverage,
so an address in no sequence (assembly without line info) has no line.

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

# gABI constants.
ELF_MAGIC = b"\x7fELF"
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB = 1
EM_386, EM_X86_64, EM_AARCH64, EM_RISCV = 3, 62, 183, 243
SHT_SYMTAB = 2
SHF_EXECINSTR = 0x4
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE, STT_GNU_IFUNC = 0, 1, 2, 3, 4, 10
STB_LOCAL = 0
STV_HIDDEN = 2
SHN_UNDEF, SHN_LORESERVE = 0, 0xFF00

# Caps: a real module's .debug has ~100 sections and at most a few thousand symbols (DxeCore: ~2 k);
# anything past these is not an edk2 module.
MAX_SECTIONS = 4096
MAX_SYMBOLS = 1 << 18
MAX_DEBUG_FILE = 1 << 30
# Rows decoded from one CU's line program (DxeCore's largest LTO partition has ~10 k) and opcodes
# run for it: a corrupt program stops there with a problem, never loops.
MAX_LINE_ROWS = 1 << 20
MAX_LINE_OPCODES = 1 << 22
# Sequences examined backwards when they overlap (discarded functions keep sequences at address 0).
MAX_OVERLAP_WALK = 64


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


def _uleb(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[at]
        at += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, at
        shift += 7


def _sleb(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[at]
        at += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            if b & 0x40:
                value -= 1 << shift
            return value, at


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
        self._symbols: list[Symbol] = []
        self._starts: list[int] = []
        self._by_name: dict[str, list[Symbol]] | None = None
        self._dwarf = None
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
    def _load_symbols(self) -> None:
        if self._symbols_read:
            return
        self._symbols_read = True
        if not self.header():
            return
        symtab = next((s for s in self.sections if s.type == SHT_SYMTAB), None)
        if symtab is None:
            self.problems.append(f"{self.path}: no .symtab (stripped?): no function names")
            return
        try:
            with open(self.path, "rb") as f:
                if symtab.link >= len(self.sections):
                    raise ElfProblem(f".symtab sh_link {symtab.link} names no section")
                strtab = self.sections[symtab.link]
                raw = self._read(f, symtab.offset, symtab.size, ".symtab")
                strings = self._read(f, strtab.offset, strtab.size, ".strtab")
        except (OSError, ElfProblem) as e:
            self.problems.append(f"{self.path}: {e}")
            return
        if self.elf_class == ELFCLASS64:
            entsize, rows = 24, ((n, i, o, sh, v, sz) for n, i, o, sh, v, sz in struct.iter_unpack(
                "<IBBHQQ", raw[:len(raw) - len(raw) % 24]))
        else:
            entsize, rows = 16, ((n, i, o, sh, v, sz) for n, v, sz, i, o, sh in struct.iter_unpack(
                "<IIIBBH", raw[:len(raw) - len(raw) % 16]))
        if len(raw) // entsize > MAX_SYMBOLS:
            self.problems.append(f"{self.path}: {len(raw) // entsize} symbols: only the first {MAX_SYMBOLS} read")
        syms = []
        for order, (name, info, other, shndx, value, size) in enumerate(rows):
            if order >= MAX_SYMBOLS:
                break
            typ = info & 0xF
            if typ not in (STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_GNU_IFUNC) or shndx == SHN_UNDEF \
                    or shndx >= SHN_LORESERVE:
                continue
            if not name or name >= len(strings):
                continue
            end = strings.find(b"\0", name)
            text = strings[name:end if end >= 0 else None].decode("utf-8", "replace")
            syms.append(Symbol(text, value, size, typ, info >> 4, other & 3, shndx, order))
        self._symbols = syms
        # Code symbols for address lookup: those of .text (bfd compares the symbol's section), minus
        # bfd's exclusion of hidden local notype size-0 symbols (annobin markers).
        code = [s for s in syms if s.shndx == self.text.index
                and not (s.size == 0 and s.bind == STB_LOCAL and s.type == STT_NOTYPE and s.other == STV_HIDDEN)
                and not (s.bind == STB_LOCAL and s.type == STT_NOTYPE and s.name.startswith(".L"))]
        code.sort(key=lambda s: (s.value, s.order))
        self._code = code
        self._starts = [s.value for s in code]

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
        self._load_symbols()
        i = bisect.bisect_right(self._starts, address) - 1
        if i < 0:
            return None
        at = self._starts[i]
        best = None
        j = bisect.bisect_left(self._starts, at)
        for s in self._code[j:i + 1]:
            if best is None or _better_fit(best, s, address):
                best = s
        # Data (rodata is linked into .text by edk2's GccBase.lds) and past-the-end addresses of a
        # sized function are in no function.
        if best.type == STT_OBJECT or (best.size and address >= best.value + best.size):
            return None
        return best.name, address - best.value

    # ---- lines ------------------------------------------------------------------------------------
    def _dwarf_info(self):
        if self._dwarf is None:
            from elftools.common.exceptions import ELFError
            from elftools.elf.elffile import ELFFile
            self._dwarf = False
            if not self.header():
                return None
            if not any(s.name == ".debug_line" for s in self.sections):
                self.problems.append(f"{self.path}: no .debug_line (no DWARF line table): no source lines")
                return None
            try:
                elf = ELFFile(io.BytesIO(self.path.read_bytes()))
                self._dwarf = elf.get_dwarf_info(relocate_dwarf_sections=False)
                self._line_data = self._dwarf.debug_line_sec.stream.getvalue() \
                    if hasattr(self._dwarf.debug_line_sec.stream, "getvalue") else None
                if self._line_data is None:
                    s = self._dwarf.debug_line_sec.stream
                    s.seek(0)
                    self._line_data = s.read()
            except (OSError, ELFError) as e:
                self.problems.append(f"{self.path}: DWARF unreadable: {e}")
                self._dwarf = False
            except Exception as e:          # noqa: BLE001 - pyelftools raises many kinds on bad ELF
                self.problems.append(f"{self.path}: DWARF unreadable: {type(e).__name__}: {e}")
                self._dwarf = False
        return self._dwarf or None

    def _cu_offset(self, dwarf, address: int) -> int | None:
        if self._aranges is None:
            self._aranges = False
            try:
                self._aranges = dwarf.get_aranges() or False
            except Exception as e:          # noqa: BLE001 - pyelftools raises many kinds on bad DWARF
                self.problems.append(f"{self.path}: .debug_aranges unreadable: {e}")
        if not self._aranges:
            return None
        return self._aranges.cu_offset_at_addr(address)

    def line_at(self, address: int) -> tuple[str, int] | None:
        """(file, line) of the line-table row covering `address`, None when no row covers it."""
        dwarf = self._dwarf_info()
        if dwarf is None:
            return None
        off = self._cu_offset(dwarf, address)
        if off is not None:
            table = self._cu_lines.get(off)
            if table is None:
                table = self._cu_lines[off] = self._lines_of_cu(dwarf, off)
            hit = _find_row(table, address)
            if hit is not None:
                return hit
            if self._aranges:
                return None
        # No .debug_aranges (or the address is not in it): every CU's table, merged.
        if self._all_lines is None:
            seqs = []
            try:
                for cu in dwarf.iter_CUs():
                    t = self._cu_lines.get(cu.cu_offset)
                    if t is None:
                        t = self._cu_lines[cu.cu_offset] = self._lines_of_cu(dwarf, cu.cu_offset)
                    seqs.extend(t[1])
            except Exception as e:          # noqa: BLE001 - pyelftools raises many kinds on bad DWARF
                self.problems.append(f"{self.path}: DWARF CUs unreadable: {e}")
            self._all_lines = _table(seqs)
        return _find_row(self._all_lines, address)

    def _lines_of_cu(self, dwarf, cu_offset: int):
        try:
            cu = dwarf.get_CU_at(cu_offset)
            prog = dwarf.line_program_for_CU(cu)
            if prog is None:
                return _table([])
            comp_dir = cu.get_top_DIE().attributes.get("DW_AT_comp_dir")
            comp_dir = comp_dir.value.decode("utf-8", "replace") if comp_dir is not None and \
                isinstance(comp_dir.value, bytes) else ""
            files = _file_names(prog.header, comp_dir)
            seqs = _run_line_program(self._line_data, prog, files, self.problems, self.path)
            # Sequences of functions the linker discarded keep address 0 (ld's tombstone for
            # .debug_line); gdb skips them when no code is at 0, and so do we.
            if self.text is not None and self.text.addr > 0:
                seqs = [q for q in seqs if q[0] != 0]
        except Exception as e:              # noqa: BLE001 - pyelftools raises many kinds on bad DWARF
            self.problems.append(f"{self.path}: line program of the CU at 0x{cu_offset:x} unreadable: {e}")
            return _table([])
        return _table(seqs)

    # ---- both -------------------------------------------------------------------------------------
    def lookup(self, elf_address: int) -> Symbolized:
        func = self.function_at(elf_address)
        line = self.line_at(elf_address)
        return Symbolized(func[0] if func else None, func[1] if func else None,
                          line[0] if line else None, line[1] if line else None, elf_address)


def _better_fit(cur: Symbol, new: Symbol, offset: int) -> bool:
    """binutils bfd/elf.c better_fit, for two candidates at the same address (`new` later in order)."""
    cur_size, new_size = cur.size or 1, new.size or 1
    if cur.value + cur_size <= offset:
        return new_size > cur_size
    if new.value + new_size <= offset:
        return False
    cur_func, new_func = cur.type != STT_NOTYPE, new.type != STT_NOTYPE
    if cur_func != new_func:
        return new_func
    if new_size == cur_size:
        # Aliases (identical code folded by LTO): gdb's minimal-symbol lookup takes the last one.
        return True
    if cur_func != new_func:
        return new_func
    return new_size < cur_size


def _file_names(header, comp_dir: str) -> tuple[list[str], int]:
    """Full paths of the line program's file table and the number of its first entry: DWARF 5 numbers
    files from 0 and its directory 0 is the CU's directory; DWARF 2-4 number both from 1, directory
    0 being the compilation directory (DWARF 5 6.2.4 items 19-20; DWARF 4 6.2.4 items 11-12)."""
    version = header["version"]
    dirs = [d.decode("utf-8", "replace") if isinstance(d, bytes) else str(d)
            for d in header.get("include_directory", [])]
    if version < 5:
        dirs = [comp_dir] + dirs
    out = []
    for fe in header.get("file_entry", []):
        name = fe.name.decode("utf-8", "replace") if isinstance(fe.name, bytes) else str(fe.name)
        d = dirs[fe.dir_index] if 0 <= fe.dir_index < len(dirs) else ""
        if not name.startswith("/") and d:
            name = f"{d}/{name}"
        if not name.startswith("/") and comp_dir:
            name = f"{comp_dir}/{name}"
        out.append(name)
    return out, 0 if version >= 5 else 1


def _run_line_program(data: bytes, prog, files: tuple[list[str], int], problems: list[str], path) -> list:
    """The line program's rows as sequences [(start, end, addrs, rows)], rows (file, line) with line
    0 ("no source line", DWARF 5 6.2.2) kept as None. The state machine of DWARF 5 6.2.2/6.2.5;
    op_index is ignored (x86 is not VLIW)."""
    h = prog.header
    names, first = files
    min_len = h["minimum_instruction_length"]
    line_base, line_range, opcode_base = h["line_base"], h["line_range"], h["opcode_base"]
    lengths = list(h["standard_opcode_lengths"])
    default_stmt = bool(h["default_is_stmt"])
    if line_range == 0:
        problems.append(f"{path}: line program with line_range 0")
        return []
    at, end = prog.program_start_offset, prog.program_end_offset
    end = min(end, len(data))
    const_add = min_len * ((255 - opcode_base) // line_range)
    seqs = []
    addr, file, line, stmt = 0, 1, 1, default_stmt
    addrs: list[int] = []
    rows: list = []
    count = ops = 0

    def emit():
        nonlocal count
        count += 1
        i = file - first
        name = names[i] if 0 <= i < len(names) else None
        row = (name, line or None, stmt) if name is not None else None
        if addrs and addrs[-1] == addr:
            # Several rows at one address: only the last covers anything ([its address, the next
            # row's address), DWARF 5 6.2.1), as binutils' addr2line keeps it (bfd/dwarf2.c
            # add_line_info). gdb prefers the last is_stmt row instead; the two differ there only.
            rows[-1] = row
        else:
            addrs.append(addr)
            rows.append(row)

    try:
        while at < end:
            ops += 1
            if ops > MAX_LINE_OPCODES or count > MAX_LINE_ROWS:
                problems.append(f"{path}: line program at 0x{prog.program_start_offset:x} stopped after "
                                f"{ops} opcodes / {count} rows")
                break
            op = data[at]
            at += 1
            if op >= opcode_base:
                adj = op - opcode_base
                addr += min_len * (adj // line_range)
                delta = line_base + adj % line_range
                line += delta
                emit()
            elif op == 0:
                n, at = _uleb(data, at)
                sub_end = at + n
                if n == 0:
                    continue
                sub = data[at]
                if sub == 1:        # DW_LNE_end_sequence
                    if addrs:
                        seqs.append((addrs[0], addr, addrs, rows))
                    addr, file, line, stmt, addrs, rows = 0, 1, 1, default_stmt, [], []
                elif sub == 2:      # DW_LNE_set_address
                    addr = int.from_bytes(data[at + 1:sub_end], "little")
                at = sub_end
            elif op == 1:           # DW_LNS_copy
                emit()
            elif op == 2:           # DW_LNS_advance_pc
                n, at = _uleb(data, at)
                addr += min_len * n
            elif op == 3:           # DW_LNS_advance_line
                n, at = _sleb(data, at)
                line += n
            elif op == 4:           # DW_LNS_set_file
                file, at = _uleb(data, at)
            elif op == 6:           # DW_LNS_negate_stmt
                stmt = not stmt
            elif op == 8:           # DW_LNS_const_add_pc
                addr += const_add
            elif op == 9:           # DW_LNS_fixed_advance_pc
                addr += int.from_bytes(data[at:at + 2], "little")
                at += 2
            else:                   # column, negate_stmt, ...: operands skipped by their count
                for _ in range(lengths[op - 1] if op - 1 < len(lengths) else 0):
                    _, at = _uleb(data, at)
    except IndexError:
        problems.append(f"{path}: line program at 0x{prog.program_start_offset:x} runs past .debug_line")
    return seqs


def _table(seqs: list) -> tuple:
    """Sequences sorted by start, with the running maximum of their ends for the overlap walk."""
    seqs = sorted(seqs, key=lambda s: (s[0], s[1]))
    starts = [s[0] for s in seqs]
    max_end, m = [], -1
    for s in seqs:
        m = max(m, s[1])
        max_end.append(m)
    return starts, seqs, max_end


def _find_row(table: tuple, address: int) -> tuple[str, int] | None:
    starts, seqs, max_end = table
    i = bisect.bisect_right(starts, address) - 1
    walked = 0
    # The sequence starting last at or below the address that still covers it: discarded functions'
    # sequences start at 0 and may overlap the real ones.
    while i >= 0 and max_end[i] > address and walked < MAX_OVERLAP_WALK:
        start, end, addrs, rows = seqs[i]
        if start <= address < end:
            j = bisect.bisect_right(addrs, address) - 1
            row = rows[j]
            if row is None or row[1] is None:
                return None
            return row[0], row[1]
        i -= 1
        walked += 1
    return None


__all__ = ["ModuleSymbols", "Symbolized", "ElfProblem", "EM_386", "EM_X86_64"]
