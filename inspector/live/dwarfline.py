"""A module's DWARF line table, read with `struct` and bounded: DWARF 5 (and 2-4) as GCC writes it.

Three steps for an address: .debug_aranges (DWARF 5 6.1.2) names the CU; that CU's header (7.5.1.1)
and the attributes of its first DIE (7.5.3 abbreviations, 7.5.5-7.5.6 forms) give DW_AT_stmt_list
and DW_AT_comp_dir; the line-program header at DW_AT_stmt_list (6.2.4) gives the file table and the
opcodes (6.2.5). `run_line_program` follows only the addresses, into sequences (a row covers [its
address, the next row's address) within its sequence, DW_LNE_end_sequence ends coverage, so an
address in no sequence, assembly without line info, has no line); the rows of the one sequence a
lookup lands in are decoded then (`LineProgram.rows`) and file names made (`FileTable.name`).

`DwarfReader` takes what it checks completely; anything else (DWARF64 units, unit types other than
compile/partial, indirect and index forms, an attribute or entry format it does not size, a string
or offset out of its section) raises `Declined`, and elfdebug.py hands that CU, or the whole file, to
pyelftools, whose answer on such input is the one given before this reader existed. Every loop here
is bounded by the bytes of its section.
"""
from __future__ import annotations

import bisect
import functools
import re
import struct

# Bytes of one CU's line program run (the largest of the DEBUG OvmfPkgX64 build, CpuMpPei's, is
# 44 KB). Every opcode takes at least one byte and makes at most one row, so this also bounds the
# opcodes run and the rows kept: a longer (corrupt) program is cut there with a problem.
MAX_LINE_PROGRAM = 1 << 20
# Sequences examined backwards when they overlap (discarded functions keep sequences at address 0).
MAX_OVERLAP_WALK = 64

# Sections read, by name.
SECTIONS = (".debug_info", ".debug_abbrev", ".debug_line", ".debug_aranges", ".debug_str", ".debug_line_str")

# DWARF 5 7.5.6 table 7.6 (attribute form encodings) and 7.5.4 table 7.5 (attribute encodings).
DW_AT_stmt_list, DW_AT_comp_dir = 0x10, 0x1B
DW_FORM_addr, DW_FORM_block2, DW_FORM_block4, DW_FORM_string, DW_FORM_block, DW_FORM_block1 = 0x01, 0x03, 0x04, 0x08, \
    0x09, 0x0A
DW_FORM_data1, DW_FORM_data2, DW_FORM_data4, DW_FORM_data8, DW_FORM_data16 = 0x0B, 0x05, 0x06, 0x07, 0x1E
DW_FORM_sdata, DW_FORM_udata, DW_FORM_ref_udata, DW_FORM_exprloc = 0x0D, 0x0F, 0x15, 0x18
DW_FORM_strp, DW_FORM_line_strp, DW_FORM_sec_offset, DW_FORM_implicit_const = 0x0E, 0x1F, 0x17, 0x21
# Forms of fixed size (bytes; DWARF32): flag, refN, ref_sup4/8, ref_sig8 and flag_present too.
FIXED_FORM_SIZE = {DW_FORM_data1: 1, DW_FORM_data2: 2, DW_FORM_data4: 4, DW_FORM_data8: 8, DW_FORM_data16: 16,
                   0x0C: 1, DW_FORM_strp: 4, DW_FORM_line_strp: 4, DW_FORM_sec_offset: 4, 0x11: 1, 0x12: 2,
                   0x13: 4, 0x14: 8, 0x1C: 4, 0x24: 8, 0x20: 8, 0x19: 0, DW_FORM_implicit_const: 0}
# Integer forms a section offset (DW_AT_stmt_list) or a file table index may take.
UNSIGNED_FORMS = {DW_FORM_data1: "<B", DW_FORM_data2: "<H", DW_FORM_data4: "<I", DW_FORM_data8: "<Q",
                  DW_FORM_sec_offset: "<I"}
# DWARF 5 7.5.1.1 unit types whose first DIE is a DW_TAG_compile_unit/partial_unit with a line table.
DW_UT_compile, DW_UT_partial = 0x01, 0x03
# DWARF 5 6.2.4.1 table 7.27: line-table entry content types.
DW_LNCT_path, DW_LNCT_directory_index, DW_LNCT_timestamp, DW_LNCT_size, DW_LNCT_MD5 = 1, 2, 3, 4, 5


# One abbreviation declaration (DWARF 5 7.5.3) with a canonical non-zero code, single-byte forms and
# canonical attribute numbers: code, tag, DW_CHILDREN byte, (attribute, form[, implicit SLEB128])*,
# then the 0, 0 pair. Anything else stops the regex and the byte-by-byte reader takes over there.
_ULEB = rb"[\x80-\xff]*+[\x00-\x7f]"
_DECL = (rb"[\x80-\xff]*+[\x01-\x7f]" + _ULEB + rb"[\x00-\xff]"
         rb"(?:(?!\x00\x00)(?:[\x80-\xff]*+[\x01-\x7f]|\x00)(?:\x21" + _ULEB + rb"|[\x00-\x20\x22-\x7f]))*+"
         rb"\x00\x00")


@functools.lru_cache(maxsize=256)
def _declarations_before(code: int) -> re.Pattern:
    """A regex over the declarations of a table up to the one numbered `code` (whose canonical
    ULEB128 bytes start it; the declarations passed all have canonical codes)."""
    enc = bytearray()
    while True:
        enc.append(code & 0x7F | (0x80 if code >= 0x80 else 0))
        code >>= 7
        if not code:
            break
    return re.compile(rb"(?:(?!" + re.escape(bytes(enc)) + rb")" + _DECL + rb")*+")


class Declined(Exception):
    """Input this reader does not take: pyelftools reads it instead."""


def uleb(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[at]
        at += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, at
        shift += 7


def sleb(data: bytes, at: int) -> tuple[int, int]:
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


def _cstring(section: bytes | None, offset: int) -> bytes:
    """The NUL-terminated string at `offset` of a string section (.debug_str, .debug_line_str)."""
    if section is None or not 0 <= offset < len(section):
        raise Declined(f"string offset 0x{offset:x} outside its section")
    end = section.find(b"\0", offset)
    if end < 0:
        raise Declined(f"string at 0x{offset:x} has no NUL")
    return section[offset:end]


class DwarfReader:
    """The DWARF sections of one file (DWARF32, little-endian) and its .debug_aranges, parsed whole
    (a few hundred entries); CUs and line programs are read when asked."""

    def __init__(self, raw: dict[str, bytes]):
        self.info = raw[".debug_info"]
        self.abbrev = raw[".debug_abbrev"]
        self.line = raw[".debug_line"]
        self.str = raw.get(".debug_str")
        self.line_str = raw.get(".debug_line_str")
        self.str_end = self.str.rfind(b"\0") if self.str is not None else -1
        self.line_str_end = self.line_str.rfind(b"\0") if self.line_str is not None else -1
        self._abbrevs: dict[tuple[int, int], list] = {}
        aranges = raw.get(".debug_aranges")
        self.keys: list[int] = []
        self.entries: list[tuple[int, int, int]] = []
        if aranges is not None:
            self._read_aranges(aranges)

    def _read_aranges(self, data: bytes) -> None:
        """Every (address, length, CU offset) of .debug_aranges (DWARF 5 6.1.2, 7.21), the sets
        walked by unit_length and each set's tuples read up to its (0, 0) terminator, which starts
        at a multiple of the tuple size: pyelftools' ARanges reading, so the same CU is chosen."""
        entries = []
        off, size = 0, len(data)
        while off < size:
            if off + 12 > size:
                raise Declined(f".debug_aranges set header at 0x{off:x} truncated")
            length, _version, cu, asize, ssize = struct.unpack_from("<IHIBB", data, off)
            if length >= 0xFFFFFFF0 or ssize != 0 or asize not in (4, 8):
                raise Declined(f".debug_aranges set at 0x{off:x}: DWARF64, segmented or address size {asize}")
            tsize = 2 * asize
            at = -(-(off + 12) // tsize) * tsize
            fmt = "<QQ" if asize == 8 else "<II"
            while True:
                if at + tsize > size:
                    raise Declined(f".debug_aranges set at 0x{off:x} has no terminator")
                a, n = struct.unpack_from(fmt, data, at)
                at += tsize
                if not a and not n:
                    break
                entries.append((a, n, cu))
            off += length + 4
        entries.sort(key=lambda e: e[0])        # stable: equal starts keep the section's order
        self.entries = entries
        self.keys = [e[0] for e in entries]

    def cu_offset_at(self, address: int) -> int | None:
        """The CU of the last range starting at or below `address`, if that range holds it."""
        i = bisect.bisect_right(self.keys, address) - 1
        if i < 0:
            return None
        a, n, cu = self.entries[i]
        return cu if a <= address < a + n else None

    def cu_offsets(self) -> list[int]:
        """Offsets of every unit of .debug_info, in order (DWARF 5 7.5.1)."""
        info, out, off = self.info, [], 0
        while off < len(info):
            if off + 11 > len(info):
                raise Declined(f"unit header at 0x{off:x} truncated")
            length, version = struct.unpack_from("<IH", info, off)
            if length >= 0xFFFFFFF0 or not 2 <= version <= 5:
                raise Declined(f"unit at 0x{off:x}: DWARF64 or version {version}")
            if version == 5:
                # 7.5.1: compile/partial 12 bytes, skeleton/split_compile 20, type/split_type 24.
                size = {1: 12, 3: 12, 4: 20, 5: 20, 2: 24, 6: 24}.get(info[off + 6])
                if size is None or off + size > len(info):
                    raise Declined(f"unit at 0x{off:x}: unit type {info[off + 6]}")
            out.append(off)
            off += length + 4
        return out

    # ---- the CU's first DIE ------------------------------------------------------------------------
    def _abbreviation(self, table: int, code: int) -> list:
        """[(attribute, form, implicit value)] of abbreviation `code` in the table at `table`
        (DWARF 5 7.5.3); codes are unique within a table, so the first one found is it. GCC puts
        the compile-unit abbreviation anywhere in the table: the declarations before it are
        skipped by a regex, then read byte by byte."""
        key = (table, code)
        if key in self._abbrevs:
            return self._abbrevs[key]
        a = self.abbrev
        if not 0 <= table < len(a):
            raise Declined(f"abbreviation table 0x{table:x} outside .debug_abbrev")
        at = _declarations_before(code).match(a, table).end()
        while True:
            c = a[at]
            if c < 0x80:
                at += 1
            else:
                c, at = uleb(a, at)
            if c == 0:
                raise Declined(f"abbreviation {code} not in the table at 0x{table:x}")
            if a[at] < 0x80:                            # tag
                at += 1
            else:
                at = uleb(a, at)[1]
            at += 1                                     # DW_CHILDREN_yes/no
            specs = []
            while True:
                name = a[at]
                if name < 0x80:
                    at += 1
                else:
                    name, at = uleb(a, at)
                form = a[at]
                if form < 0x80:
                    at += 1
                else:
                    form, at = uleb(a, at)
                implicit = None
                if form == DW_FORM_implicit_const:
                    implicit = a[at]
                    if implicit < 0x40:
                        at += 1
                    elif implicit < 0x80:
                        implicit, at = implicit - 0x80, at + 1
                    else:
                        implicit, at = sleb(a, at)
                elif form == 0 and name == 0:
                    break
                if c == code:
                    specs.append((name, form, implicit))
            if c == code:
                self._abbrevs[key] = specs
                return specs

    def _unit(self, off: int) -> tuple[int, int, int, int]:
        """(version, address size, abbreviation table, first DIE) of the compile unit at `off`."""
        info = self.info
        if not 0 <= off or off + 12 > len(info):
            raise Declined(f"CU offset 0x{off:x} outside .debug_info")
        length, version = struct.unpack_from("<IH", info, off)
        if length >= 0xFFFFFFF0:
            raise Declined(f"CU at 0x{off:x} is DWARF64")
        if version == 5:
            unit_type, asize, abbrev = struct.unpack_from("<BBI", info, off + 6)
            if unit_type not in (DW_UT_compile, DW_UT_partial):
                raise Declined(f"CU at 0x{off:x}: unit type {unit_type}")
            return version, asize, abbrev, off + 12
        if 2 <= version <= 4:
            abbrev, asize = struct.unpack_from("<IB", info, off + 6)
            return version, asize, abbrev, off + 11
        raise Declined(f"CU at 0x{off:x}: version {version}")

    def _cu_attributes(self, off: int) -> tuple[int | None, str]:
        """(DW_AT_stmt_list or None, DW_AT_comp_dir or "") of the first DIE of the CU at `off`."""
        info = self.info
        _version, asize, table, at = self._unit(off)
        code, at = uleb(info, at)
        if code == 0:
            raise Declined(f"CU at 0x{off:x} starts with a null entry")
        stmt, comp_dir = None, ""
        for name, form, _implicit in self._abbreviation(table, code):
            start = at
            size = FIXED_FORM_SIZE.get(form)
            if size is not None:
                at += size
            elif form == DW_FORM_addr:
                at += asize
            elif form == DW_FORM_string:
                end = info.index(b"\0", at)
                at = end + 1
            elif form in (DW_FORM_udata, DW_FORM_sdata, DW_FORM_ref_udata):
                _, at = uleb(info, at)
            elif form in (DW_FORM_block, DW_FORM_exprloc):
                n, at = uleb(info, at)
                at += n
            elif form in (DW_FORM_block1, DW_FORM_block2, DW_FORM_block4):
                fmt = {DW_FORM_block1: "<B", DW_FORM_block2: "<H", DW_FORM_block4: "<I"}[form]
                n = struct.unpack_from(fmt, info, at)[0]
                at += struct.calcsize(fmt) + n
            else:       # indirect, ref_addr, strx*, addrx*, loclistx, rnglistx, GNU and vendor forms
                raise Declined(f"CU at 0x{off:x}: form 0x{form:x} in its first DIE")
            if at > len(info):
                raise Declined(f"CU at 0x{off:x}: first DIE runs past .debug_info")
            if form == DW_FORM_strp and self.str is None or form == DW_FORM_line_strp and self.line_str is None:
                raise Declined(f"CU at 0x{off:x}: string form without its section")
            if name == DW_AT_stmt_list:
                if form == DW_FORM_udata:
                    stmt = uleb(info, start)[0]
                elif form in UNSIGNED_FORMS:
                    stmt = struct.unpack_from(UNSIGNED_FORMS[form], info, start)[0]
                else:
                    raise Declined(f"CU at 0x{off:x}: DW_AT_stmt_list of form 0x{form:x}")
            elif name == DW_AT_comp_dir:
                if form == DW_FORM_string:
                    value = info[start:at - 1]
                elif form in (DW_FORM_strp, DW_FORM_line_strp):
                    value = _cstring(self.str if form == DW_FORM_strp else self.line_str,
                                     struct.unpack_from("<I", info, start)[0])
                else:
                    value = None                    # not a string: no compilation directory
                comp_dir = value.decode("utf-8", "replace") if value is not None else ""
        return stmt, comp_dir

    # ---- the line-program header -------------------------------------------------------------------
    def line_program(self, cu_offset: int) -> tuple | None:
        """The CU's line program as run_line_program takes it, None when the CU has none."""
        stmt, comp_dir = self._cu_attributes(cu_offset)
        if stmt is None:
            return None
        d = self.line
        if not 0 <= stmt or stmt + 10 > len(d):
            raise Declined(f"DW_AT_stmt_list 0x{stmt:x} outside .debug_line")
        length, version = struct.unpack_from("<IH", d, stmt)
        if length >= 0xFFFFFFF0:
            raise Declined(f"line program at 0x{stmt:x} is DWARF64")
        end = stmt + length + 4
        at = stmt + 6 + (2 if version >= 5 else 0)        # v5: address_size, segment_selector_size
        at += 4                                             # header_length
        min_len = d[at]
        at += 2 if version >= 4 else 1                      # v4+: maximum_operations_per_instruction
        _default_stmt, line_base, line_range, opcode_base = struct.unpack_from("<BbBB", d, at)
        at += 4
        if opcode_base == 0 or at + opcode_base - 1 > len(d):
            raise Declined(f"line program at 0x{stmt:x}: opcode_base {opcode_base}")
        lengths = d[at:at + opcode_base - 1]
        at += opcode_base - 1
        if version >= 5:
            dirs, at = self._entries(d, at, end, False)
            files, at = self._entries(d, at, end, True)
            if not dirs or not files:
                raise Declined(f"line program at 0x{stmt:x}: no directory or file table")
            dirs = [p for p, _ in dirs]
        else:
            dirs, files = [], []
            while d[at]:                                    # include_directories (6.2.4 item 11, DWARF 4)
                nul = d.index(b"\0", at)
                dirs.append(d[at:nul])
                at = nul + 1
            at += 1
            while d[at]:                                    # file_names: name, dir, mtime, length
                nul = d.index(b"\0", at)
                name = d[at:nul]
                index, at = uleb(d, nul + 1)
                _, at = uleb(d, at)
                _, at = uleb(d, at)
                files.append((name, index))
            at += 1
        return at, end, min_len, line_base, line_range, opcode_base, bytes(lengths), \
            FileTable(version, dirs, files, comp_dir)

    def _entries(self, d: bytes, at: int, end: int, files: bool) -> tuple[list, int]:
        """A DWARF 5 directory or file-name table (6.2.4 items 14-19): [(path, directory index)],
        every entry with a path and, for files, a directory index. Paths in a string section are
        kept as (section, offset) and read when a lookup needs the name: an offset at or below the
        section's last NUL always ends in one."""
        nformats = d[at]
        at += 1
        formats = []
        for _ in range(nformats):
            ct, at = uleb(d, at)
            form, at = uleb(d, at)
            if ct not in (DW_LNCT_path, DW_LNCT_directory_index, DW_LNCT_timestamp, DW_LNCT_size, DW_LNCT_MD5):
                raise Declined(f"line table entry content type 0x{ct:x}")
            formats.append((ct, form))
        count, at = uleb(d, at)
        # Every form taken below is at least one byte: more entries than bytes left is corrupt.
        if count > max(0, min(end, len(d)) - at) or (count and not formats):
            raise Declined(f"{count} line table entries in {min(end, len(d)) - at} bytes")
        sec, last = self.line_str, self.line_str_end
        if formats == [(DW_LNCT_path, DW_FORM_line_strp)] and not files:    # what GCC writes
            offsets = struct.unpack_from(f"<{count}I", d, at)
            if count and max(offsets) > last:
                raise Declined("string offset outside .debug_line_str")
            return [((sec, off), None) for off in offsets], at + 4 * count
        if formats == [(DW_LNCT_path, DW_FORM_line_strp), (DW_LNCT_directory_index, DW_FORM_data1)]:
            pairs = struct.unpack_from("<" + "IB" * count, d, at)      # no padding with "<"
            if count and max(pairs[0::2]) > last:
                raise Declined("string offset outside .debug_line_str")
            return [((sec, off), index) for off, index in zip(pairs[0::2], pairs[1::2])], at + 5 * count
        if formats == [(DW_LNCT_path, DW_FORM_line_strp), (DW_LNCT_directory_index, DW_FORM_udata)]:
            out = []
            for _ in range(count):
                off = struct.unpack_from("<I", d, at)[0]
                if off > last:
                    raise Declined(f"string offset 0x{off:x} outside .debug_line_str")
                index = d[at + 4]
                if index < 0x80:
                    at += 5
                else:
                    index, at = uleb(d, at + 4)
                out.append(((sec, off), index))
            return out, at
        out = []
        for _ in range(count):
            path = index = None
            for ct, form in formats:
                if form == DW_FORM_string:
                    nul = d.index(b"\0", at)
                    value, at = d[at:nul], nul + 1
                elif form in (DW_FORM_line_strp, DW_FORM_strp):
                    # Kept as (section, offset) and read when a lookup needs the name: an offset at
                    # or below the section's last NUL always ends in one.
                    off = struct.unpack_from("<I", d, at)[0]
                    at += 4
                    section, last = (self.line_str, self.line_str_end) if form == DW_FORM_line_strp \
                        else (self.str, self.str_end)
                    if off > last:
                        raise Declined(f"string offset 0x{off:x} outside its section")
                    value = (section, off)
                elif form == DW_FORM_udata:
                    value, at = uleb(d, at)
                elif form in UNSIGNED_FORMS and form != DW_FORM_sec_offset:
                    value = struct.unpack_from(UNSIGNED_FORMS[form], d, at)[0]
                    at += struct.calcsize(UNSIGNED_FORMS[form])
                elif form == DW_FORM_data16:
                    value, at = None, at + 16
                elif form == DW_FORM_block:
                    n, at = uleb(d, at)
                    value, at = None, at + n
                else:
                    raise Declined(f"line table entry form 0x{form:x}")
                if ct == DW_LNCT_path:
                    path = value if isinstance(value, (bytes, tuple)) else None
                elif ct == DW_LNCT_directory_index:
                    index = value if isinstance(value, int) else None
            if at > len(d):
                raise Declined("line table entries run past .debug_line")
            if path is None or files and index is None:
                raise Declined("line table entry without a path or directory index")
            out.append((path, index))
        return out, at


class FileTable:
    """A line program's file table; a file's full path is made when a lookup first lands on it.
    DWARF 5 numbers files from 0 and its directory 0 is the CU's directory; DWARF 2-4 number both
    from 1, directory 0 being the compilation directory (DWARF 5 6.2.4 items 19-20; DWARF 4 6.2.4
    items 11-12). Names are bytes, (string section, offset) or, from pyelftools, anything."""

    __slots__ = ("version", "dirs", "files", "comp_dir", "first", "_dirs", "_names")

    def __init__(self, version: int, dirs: list, files: list, comp_dir: str):
        self.version, self.dirs, self.files, self.comp_dir = version, dirs, files, comp_dir
        self.first = 0 if version >= 5 else 1
        self._dirs: list[str] | None = None
        self._names: dict[int, str] = {}

    @staticmethod
    def _text(value) -> str:
        if isinstance(value, tuple):
            value = _cstring(*value)
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

    def name(self, number: int) -> str | None:
        """The full path of file `number` (DW_LNS_set_file's operand), None when there is no such entry."""
        k = number - self.first
        if not 0 <= k < len(self.files):
            return None
        out = self._names.get(k)
        if out is None:
            if self._dirs is None:
                dirs = [self._text(d) for d in self.dirs]
                self._dirs = [self.comp_dir] + dirs if self.version < 5 else dirs
            name, index = self.files[k]
            out = self._text(name)
            d = self._dirs[index] if 0 <= index < len(self._dirs) else ""
            if not out.startswith("/") and d:
                out = f"{d}/{out}"
            if not out.startswith("/") and self.comp_dir:
                out = f"{self.comp_dir}/{out}"
            self._names[k] = out
        return out

    def names(self) -> list[str]:
        return [self.name(k + self.first) for k in range(len(self.files))]


@functools.lru_cache(maxsize=64)
def _opcode_tables(min_len: int, line_base: int, line_range: int, opcode_base: int, lengths: bytes) -> tuple:
    """Address and line advance of every special opcode (DWARF 5 6.2.5.1), DW_LNS_copy as one that
    advances neither, and the ULEB operand count of the standard opcodes not decoded by
    run_line_program (set_column, set_isa, ...: 6.2.5.2); the same few headers recur in every CU."""
    advance = [0] * 256
    delta = [0] * 256
    for op in range(opcode_base, 256):
        advance[op] = min_len * ((op - opcode_base) // line_range)
        delta[op] = line_base + (op - opcode_base) % line_range
    operands = [lengths[op - 1] if 0 < op <= len(lengths) else 0 for op in range(256)]
    return advance, delta, operands


def _prepare(data: bytes, prog: tuple) -> tuple:
    """(end, const_add, advance, delta, operands) for running `prog`, end cut at the section's end."""
    start, end, min_len, line_base, line_range, opcode_base, lengths, _names = prog
    end = min(end, len(data), start + MAX_LINE_PROGRAM)
    const_add = min_len * ((255 - opcode_base) // line_range)
    return (end, const_add) + _opcode_tables(min_len, line_base, line_range, opcode_base, lengths)


class LineProgram:
    """One CU's line program: its bytes and header, and the rows of the sequences a lookup asked for,
    each decoded once (`rows`)."""

    __slots__ = ("data", "prog", "names", "_run", "_rows")

    def __init__(self, data: bytes, prog: tuple):
        self.data, self.prog, self.names = data, prog, prog[7]
        self._run = _prepare(data, prog)
        self._rows: dict[int, tuple] = {}

    def rows(self, at: int) -> tuple[list[int], list[int], list[int]]:
        """(addresses, file numbers, lines) of the rows of the sequence whose opcodes start at `at`
        (registers reset there: DWARF 5 6.2.5.3 DW_LNE_end_sequence), up to its end_sequence: the
        state machine of 6.2.2/6.2.5 with op_index ignored (x86 is not VLIW) and is_stmt, column
        and the flags not kept (no lookup uses them)."""
        out = self._rows.get(at)
        if out is not None:
            return out
        key = at
        data, opcode_base, min_len = self.data, self.prog[5], self.prog[2]
        end, const_add, advance, delta, operands = self._run
        addr, file, line = 0, 1, 1
        addrs: list[int] = []
        files: list[int] = []
        lines: list[int] = []
        last = -1                   # address of the last row (addresses are >= 0)
        while at < end:
            op = data[at]
            at += 1
            if op >= opcode_base or op == 1:        # special opcode or DW_LNS_copy: a row
                addr += advance[op]
                line += delta[op]
                if addr != last:
                    addrs.append(addr)
                    files.append(file)
                    lines.append(line)
                    last = addr
                else:
                    # Several rows at one address: only the last covers anything ([its address, the
                    # next row's address), DWARF 5 6.2.1), as binutils' addr2line keeps it (bfd/dwarf2.c
                    # add_line_info). gdb prefers the last is_stmt row instead; the two differ there only.
                    files[-1] = file
                    lines[-1] = line
            elif op == 0:           # extended opcode: length, sub-opcode, operands
                n, at = uleb(data, at)
                if n == 0:
                    continue
                sub = data[at]
                if sub == 1:        # DW_LNE_end_sequence
                    break
                if sub == 2:        # DW_LNE_set_address
                    addr = int.from_bytes(data[at + 1:at + n], "little")
                at += n
            elif op == 3:           # DW_LNS_advance_line
                n, at = sleb(data, at)
                line += n
            elif op == 4:           # DW_LNS_set_file
                file, at = uleb(data, at)
            else:
                at, addr = _other(data, at, op, addr, min_len, const_add, operands)
        out = self._rows[key] = addrs, files, lines
        return out


def _other(data: bytes, at: int, op: int, addr: int, min_len: int, const_add: int, operands: list) -> tuple:
    """A standard opcode that neither makes a row nor sets file or line: (next offset, address)."""
    if op == 2:                     # DW_LNS_advance_pc
        n, at = uleb(data, at)
        return at, addr + min_len * n
    if op == 8:                     # DW_LNS_const_add_pc
        return at, addr + const_add
    if op == 9:                     # DW_LNS_fixed_advance_pc
        return at + 2, addr + int.from_bytes(data[at:at + 2], "little")
    for _ in range(0 if op == 6 else operands[op]):     # negate_stmt has none; set_column, ...: ULEBs
        _, at = uleb(data, at)
    return at, addr


def run_line_program(data: bytes, prog: tuple, problems: list[str], path) -> list:
    """The line program's sequences as (first row's address, end address, offset of its first
    opcode, LineProgram). Only addresses are followed here (DWARF 5 6.2.5: the special opcodes'
    address advance, advance_pc, const_add_pc, fixed_advance_pc, set_address, end_sequence): a
    sequence's rows are decoded when a lookup lands in it (LineProgram.rows), from the same bytes."""
    start, _end, min_len, _line_base, line_range, opcode_base, _lengths, _names = prog
    if line_range == 0:
        problems.append(f"{path}: line program with line_range 0")
        return []
    program = LineProgram(data, prog)
    end, const_add, advance, _delta, operands = program._run
    if min(_end, len(data)) - start > MAX_LINE_PROGRAM:
        problems.append(f"{path}: line program at 0x{start:x} is {min(_end, len(data)) - start} bytes: "
                        f"only the first {MAX_LINE_PROGRAM} run")
    seqs = []
    addr = 0
    first = -1                  # the address of the sequence's first row, -1 before it has one
    seq_at = at = start
    try:
        while at < end:
            op = data[at]
            at += 1
            if op >= opcode_base or op == 1:        # special opcode or DW_LNS_copy: a row
                addr += advance[op]
                if first < 0:
                    first = addr
            elif op == 5:           # DW_LNS_set_column: its operands skipped
                k = operands[5]
                while k:
                    while data[at] >= 0x80:
                        at += 1
                    at += 1
                    k -= 1
            elif op == 6:           # DW_LNS_negate_stmt
                pass
            elif op == 0:           # extended opcode: length, sub-opcode, operands
                n = data[at]
                if n < 0x80:
                    at += 1
                else:
                    n, at = uleb(data, at)
                if n == 0:
                    continue
                sub = data[at]
                if sub == 1:        # DW_LNE_end_sequence
                    if first >= 0:
                        seqs.append((first, addr, seq_at, program))
                    addr, first, seq_at = 0, -1, at + n
                elif sub == 2:      # DW_LNE_set_address
                    addr = int.from_bytes(data[at + 1:at + n], "little")
                at += n
            elif op == 3 or op == 4:    # DW_LNS_advance_line (SLEB128), DW_LNS_set_file (ULEB128)
                while data[at] >= 0x80:
                    at += 1
                at += 1
            elif op == 8:           # DW_LNS_const_add_pc
                addr += const_add
            elif op == 2:           # DW_LNS_advance_pc
                n = data[at]
                if n < 0x80:
                    at += 1
                else:
                    n, at = uleb(data, at)
                addr += min_len * n
            elif op == 9:           # DW_LNS_fixed_advance_pc
                addr += int.from_bytes(data[at:at + 2], "little")
                at += 2
            else:                   # set_basic_block, set_prologue_end, ...: operands skipped
                k = operands[op]
                while k:
                    while data[at] >= 0x80:
                        at += 1
                    at += 1
                    k -= 1
    except IndexError:
        problems.append(f"{path}: line program at 0x{start:x} runs past .debug_line")
    return seqs


def table(seqs: list) -> tuple:
    """Sequences sorted by start, with the running maximum of their ends for the overlap walk."""
    seqs = sorted(seqs, key=lambda s: (s[0], s[1]))
    starts = [s[0] for s in seqs]
    max_end, m = [], -1
    for s in seqs:
        m = max(m, s[1])
        max_end.append(m)
    return starts, seqs, max_end


def find_row(tab: tuple, address: int) -> tuple[str, int] | None:
    starts, seqs, max_end = tab
    i = bisect.bisect_right(starts, address) - 1
    walked = 0
    # The sequence starting last at or below the address that still covers it: discarded functions'
    # sequences start at 0 and may overlap the real ones.
    while i >= 0 and max_end[i] > address and walked < MAX_OVERLAP_WALK:
        start, end, at, program = seqs[i]
        if start <= address < end:
            addrs, files, lines = program.rows(at)
            j = bisect.bisect_right(addrs, address) - 1
            # Line 0 is "no source line" (DWARF 5 6.2.2); a file number outside the table names none.
            name = program.names.name(files[j])
            if name is None or not lines[j]:
                return None
            return name, lines[j]
        i -= 1
        walked += 1
    return None
