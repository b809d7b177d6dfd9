"""Symbols for a live session from an edk2 build output (`--symbols BUILD_DIR`; issue 5 item 4).

An edk2 GCC build leaves one ELF per module next to its .efi: BUILD_DIR/<target>/<arch>/.../DEBUG/
<BaseName>.debug (BaseTools/Conf/build_rule.template: `$(DEBUG_DIR)(+)$(MODULE_NAME).debug`). GenFw
turns that ELF into the PE the firmware loads; the code bytes keep their layout, so an address in a
loaded image maps to the ELF by the .text sections: elf = RIP - (ImageBase + PE .text VirtualAddress)
+ ELF .text sh_addr (the same anchor gdb's `add-symbol-file FILE TEXTADDR` uses, and edk2's
BaseTools/Scripts/efi_debugging.py / efi_gdb.py emit). The module is found by its FFS UI name, which
is the module's BASE_NAME in edk2's .inf files (FACTS C.2.3 "Naming without CodeView"), so
"BdsDxe" -> BdsDxe.debug.

`ModuleTracking` (a mixin of inspector.live.session.Session) knows which modules are loaded where:
breakpoints by module + offset, pending until the module loads; the symbol-free image-load watch
(FACTS C.2.2 "Image-load events"); and the DXE tables shown at every stop once they exist (system
table, ACPI, TPM/CC event logs as inspector.locate finds them, the debug image info table).

pyelftools reads the symbol table (STT_FUNC: the function containing the address) and the DWARF
line programs (file:line), both lazily and bounded. Nothing here talks to the target: the PE
header is read through a Memory (decoders/memory.py).
"""
from __future__ import annotations

import bisect
import os
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

from decoders.efi.tables import GUID_DEBUG_IMAGE_INFO, decode_debug_image_entry
from decoders.errors import DecodeError, parse_at
from decoders.memory import Memory, Unreadable
from decoders.model import Node
from decoders.pe import structs as PE
from inspector.live.phases import Breakpoint, parse_breakpoint, phase_index
from inspector.live.session_api import Stop
from inspector.live.target import StopEvent, TargetDead, TargetError, TargetTimeout

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


# ---- modules of a live session: breakpoints by module, image-load events, DXE tables ---------------
# A mixin of inspector.live.session.Session (it uses the session's target, image, ranges and run
# control); kept here so that session.py stays about phases and stops.

# RAM scanned for the EFI_SYSTEM_TABLE_POINTER when the HOBs did not say where RAM is: below the
# q35/i440fx PCI hole (reading MMIO through the stub could touch devices).
DEFAULT_RAM = [(0, 0x80000000)]
# Stops a cont() may swallow (handoffs on the way to DXE, image-load watchpoint hits) before it
# gives up: a boot to the shell makes ~340 debug-table updates (FACTS C.2.2, "Image-load events").
MAX_TRANSPARENT_STOPS = 4096
# DXEFV header reads waited for while DxeCore builds its tables (the FV protocols read it once or twice).
MAX_TABLE_WAIT_STOPS = 64
# EFI_FIRMWARE_VOLUME_HEADER.Signature ('_FVH') offset (PiFirmwareVolume.h): read-watched to stop
# inside DxeCore once it dispatches, when the debug image info table exists.
FV_SIGNATURE_OFFSET = 0x28
# EFI_DEBUG_IMAGE_INFO_TABLE_HEADER (DebugImageInfoTable.h): UINT32 UpdateStatus, UINT32 TableSize,
# pointer; UPDATE_IN_PROGRESS = 1. DxeCore grows the pointer array a page at a time.
DEBUG_HEADER_SIZE = 16
UPDATE_IN_PROGRESS = 1
MAX_DEBUG_SLOTS = 4096


class ModuleTracking:
    """Which modules are where: breakpoints by module, the image-load watch, the DXE tables."""

    # ---- breakpoints by module, and image-load events (FACTS C.2.2 "Image-load events") -----------
    def add_breakpoint(self, spec: str) -> Breakpoint:
        """"0xADDR", "MODULE+OFFSET" or "MODULE" (its entry); MODULE an FFS UI name or file GUID. A
        module not loaded yet gives a pending breakpoint, armed when DxeCore loads it. Raises
        ValueError for a bad spec, TargetError when the target refuses."""
        if spec in self.breakpoints:
            return self.breakpoints[spec]
        bp = parse_breakpoint(spec, self.image.root, len(self.image.data))
        if bp.pending:
            self._resolve(bp)
        if bp.address is not None and bp.address not in self._user_addresses():
            self.target.set_breakpoint(bp.address, self.call_timeout)
        self.breakpoints[spec] = bp
        return bp

    def remove_breakpoint(self, spec: str) -> None:
        bp = self.breakpoints.pop(spec, None)
        if bp is not None and bp.address is not None and not self._armed_elsewhere(bp):
            self.target.remove_breakpoint(bp.address, self.call_timeout)

    def _armed_elsewhere(self, bp: Breakpoint) -> bool:
        return any(o is not bp and o.address == bp.address for o in self.breakpoints.values())

    def _resolve(self, bp: Breakpoint) -> bool:
        for base, (name, guid, _size) in self.loaded.items():
            if bp.matches(name, guid):
                bp.address, bp.where = base + bp.offset, f"{name} loaded at 0x{base:x}"
                return True
        return False

    def _pending(self) -> list[Breakpoint]:
        return [b for b in self.breakpoints.values() if b.pending]

    def _user_stop(self, stop: Stop) -> Stop | None:
        """`stop` as the user's breakpoint stop, when RIP is one of theirs."""
        if not any(b.address == stop.linear_rip for b in self.breakpoints.values()):
            return None
        stop.reason = "breakpoint"
        stop.problems = [p for p in stop.problems if not p.startswith("stopped")]
        return stop

    def _cont(self, deadline: float, timeout: float) -> Stop:
        for _ in range(MAX_TRANSPARENT_STOPS):
            if self._pending() and self._load_watch is None:
                if phase_index(self.reached or "") < phase_index("dxe-core"):
                    # The image-load watch needs DXE: run there through the handoffs (the user's
                    # armed breakpoints stay set, so one of them may stop us first).
                    stop = self._next_handoff(deadline)
                    if self._user_stop(stop) is not None or stop.handoff is None:
                        return stop
                    continue
                stop = self._wait_for_debug_table(deadline)
                if stop is not None:
                    return self._user_stop(stop) or stop
                continue
            try:
                ev = self.target.cont(self._remaining(deadline))
            except TargetTimeout:
                return self._timed_out(f"no stop within {timeout} s")
            if self._is_load_event(ev):
                self._on_load_event()
                continue
            return self._after(ev, None)
        return self._with_problem(f"{MAX_TRANSPARENT_STOPS} image-load stops without reaching a breakpoint")

    def _is_load_event(self, ev: StopEvent) -> bool:
        return ev.reason == "watchpoint" and self._load_watch is not None and ev.address == self._load_watch

    def find_debug_header(self) -> int | None:
        """&mDebugInfoTableHeader: the gEfiDebugImageInfoTableGuid configuration table, through the
        EFI_SYSTEM_TABLE_POINTER (DebugImageInfo.c CoreInitializeDebugImageInfoTable)."""
        if self._debug_header is None:
            from inspector.locate import config_table_addresses, system_table
            st = system_table(self.phys, self.ram or DEFAULT_RAM)
            self._debug_header = config_table_addresses(st).get(GUID_DEBUG_IMAGE_INFO)
        return self._debug_header

    def _wait_for_debug_table(self, deadline: float) -> Stop | None:
        """Arm the UpdateStatus write watch; first, when DxeCore has not made the table yet, run to
        a read of DXEFV's '_FVH' (FwVolBlock/FwVol read it once DxeCore dispatches, after
        CoreInitializeDebugImageInfoTable). Returns a Stop when something else stopped us."""
        t = self.target
        if self.find_debug_header() is None:
            fv = self.fv_ram_base(self.handoffs.dxefv) if self.handoffs.dxefv is not None else None
            if fv is None:
                return self._with_problem("no DXEFV in RAM: image-load events cannot be watched")
            sig = fv + FV_SIGNATURE_OFFSET
            t.set_watchpoint(sig, 4, "read", self.call_timeout)
            try:
                for _ in range(MAX_TABLE_WAIT_STOPS):
                    try:
                        ev = t.cont(self._remaining(deadline))
                    except TargetTimeout:
                        return self._timed_out("the debug image info table did not appear in time")
                    if ev.reason != "watchpoint" or ev.address != sig:
                        return self._after(ev, None)
                    if self.find_debug_header() is not None:
                        break
                else:
                    return self._with_problem(f"no debug image info table after {MAX_TABLE_WAIT_STOPS} "
                                              "DXEFV header reads")
            finally:
                if not self.dead:
                    self._cleanup_watch(sig, 4, "read")
        t.set_watchpoint(self._debug_header, 4, "write", self.call_timeout)
        self._load_watch = self._debug_header
        self._on_load_event(check_rip=False)
        return None

    def _cleanup_watch(self, address: int, size: int, kind: str) -> None:
        try:
            self.target.remove_watchpoint(address, size, kind, self.call_timeout)
        except TargetDead:
            raise
        except TargetError:
            pass        # best effort, as _cleanup

    def _on_load_event(self, check_rip: bool = True) -> None:
        """DxeCore changed the debug image info table: when the update is complete (UPDATE_IN_PROGRESS
        clear), read the new entries, name the images and arm the pending breakpoints."""
        self.load_events += 1
        if check_rip:
            # Only DxeCore's writes are load events (FACTS C.2.2: other code may reuse the page).
            core = next(((a, b) for a, b, _n, ph in self.ranges if ph == "dxe-core" and _n == "DxeCore"), None)
            pc = self.target.read_registers(self.call_timeout).pc
            if core is not None and not core[0] <= pc < core[1]:
                return
        raw = self.target.read_physical(self._debug_header, DEBUG_HEADER_SIZE, self.call_timeout)
        status, size, table = struct.unpack("<IIQ", raw)
        if status & UPDATE_IN_PROGRESS or size == self._debug_size or not table:
            return
        self._debug_size = size
        slots = min(MAX_DEBUG_SLOTS, size + 64)       # NULL holes of unloaded images (DebugImageInfo.c)
        try:
            ptrs = [p for (p,) in struct.iter_unpack("<Q", self.target.read_physical(table, slots * 8,
                                                                                     self.call_timeout)) if p]
        except Unreadable:
            return
        for p in ptrs[:size]:
            if p in self._debug_entries:
                continue
            self._debug_entries.add(p)
            e = decode_debug_image_entry(self.phys, p, 8)
            base, isize = e.get("ImageBase"), e.get("ImageSize")
            if base:
                self._learn_image(base, isize or 0, e.get("FvFileName"))

    def _learn_image(self, base: int, size: int, guid: uuid.UUID | None) -> str:
        known = next((n for a, _b, n, _p in self.ranges if a == base), None)
        name = self.ui_names.get(guid) or known or (str(guid).upper() if guid else f"image@0x{base:x}")
        if base not in self.loaded:
            self.loaded[base] = (name, guid, size)
            if size and not any(r[0] == base for r in self.ranges):
                self.ranges.append((base, base + size, name, "bds" if name == "BdsDxe" else "dxe-core"))
            for bp in self._pending():
                armed = self._user_addresses()
                if self._resolve(bp) and bp.address not in armed:
                    self.target.set_breakpoint(bp.address, self.call_timeout)
        return name

    def images(self) -> list[LoadedModule]:
        """The images whose base is known: XIP modules of the image, the ones found by following
        copies, and those of the debug image info table."""
        out = {start: LoadedModule(name, start, end - start) for start, end, name, ph in self.ranges
               if name != "ResetVector"}
        return sorted(out.values(), key=lambda m: m.base)

    def gdb_script(self) -> str:
        """`add-symbol-file <module>.debug <ImageBase + .text RVA>` for every known image."""
        return gdb_script(self.symbols, self.images(), self.phys)

    def _dxe_tables(self, node: Node) -> None:
        """System table, HOB list, ACPI, event logs and loaded images, once DXE is up, by the route a
        dump takes (inspector.locate); the loaded images teach the classifier their ranges."""
        from inspector.locate import locate
        locate(self.phys, self.ram or DEFAULT_RAM, self.ui_names, root=node, logs=self._logs)
        for dbg in node.children:
            if dbg.kind != "efi-debug-image-info-table":
                continue
            for img in dbg.children:
                base, size = img.get("ImageBase"), img.get("ImageSize")
                if base:
                    self._learn_image(base, size or 0, img.get("FileGuid") or img.get("FvFileName"))

    def _user_addresses(self) -> set[int]:
        return {b.address for b in self.breakpoints.values() if b.address is not None}



__all__ = ["ModuleTracking", "ModuleSymbols", "SymbolIndex", "Symbolized", "LoadedModule", "pe_text_rva", "symbolize", "gdb_script"]
