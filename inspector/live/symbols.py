"""Symbols for a live session from an edk2 build's .debug files (`--symbols DIR`).

An edk2 GCC build leaves one ELF per module: Build/<Platform>/<TARGET>_<TOOLCHAIN>/<ARCH>/<path of
the .inf>/<BaseName or FILE_GUID>/DEBUG/<BaseName>.debug (BaseTools/Conf/build_rule.template:
`$(DEBUG_DIR)(+)$(MODULE_NAME).debug`), and a copy of each in <ARCH>/ itself, named
<BaseName>_<FILE_GUID>.debug when one .inf is built under several FILE_GUIDs (UefiCpuPkg's CpuDxe
and CpuMpPei in OvmfPkgX64.dsc). DIR may be that build folder (IA32 and X64 trees side by side in
an Ia32X64 build), one <ARCH>/ folder, a flat folder of .debug files (what DEBUG.tar.xz unpacks to)
or anything above a build folder (then searched for DEBUG/ folders).

GenFw turns each ELF into the PE the firmware loads and keeps the code layout, so an address in a
loaded image maps to the ELF by the .text sections: elf = RIP - (ImageBase + PE .text
VirtualAddress) + ELF .text sh_addr (the anchor gdb's `add-symbol-file FILE TEXTADDR` uses, as edk2's
BaseTools/Scripts/efi_gdb.py emits). The module is found by its FFS UI name, the BASE_NAME of its
.inf ([Rule.*] sections of OvmfPkg/OvmfPkgX64.fdf write `UI STRING="$(MODULE_NAME)"`), among the
files of the loaded PE's machine (PE/COFF Machine vs ELF e_machine), and then checked: the ELF's
.text bytes must equal the loaded .text, but for spans that differ by exactly the load delta (the
DIR64/HIGHLOW base relocations, PE/COFF spec 6.6). GCC5 edk2 .debug files carry a GNU build-id but
GenFw's CodeView entry is an NB10 with no signature (only the .dll path), so the code itself is the
only link between the two. A file that fails the check is "of another build": a problem on the
symbol node and no symbols for that module, never wrong ones.

Which modules are loaded where is inspector/live/modules.py's business; the ELF reading is in
elfdebug.py. Nothing here talks to the target: memory is read through a Memory (decoders/memory.py).
"""
from __future__ import annotations

import os
import re
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

from decoders.errors import DecodeError
from decoders.memory import Memory, Unreadable
from decoders.model import Node
from decoders.pe import structs as PE
from inspector.live.elfdebug import EM_386, EM_X86_64, ModuleSymbols, Symbolized

# A full OVMF build has ~250 modules (x2 with IA32 and X64 trees, x2 again counting the DEBUG/
# copies); a directory with more .debug files than this is not one build output.
MAX_DEBUG_FILES = 8192
# Directories walked looking for DEBUG/ folders (one platform's Build tree has ~3 k).
MAX_WALK_DIRS = 200_000
# PE headers read from a loaded image: DOS + NT headers + section table fit in the first 4 KiB
# (GenFw's PE header size is 0x240 or one page).
PE_HEADER_BYTES = 0x1000
MAX_SECTIONS = 96
# .text compared between the ELF and the loaded image: the whole of it up to this (DxeCore's is
# 147 KiB; the largest OVMF module, the Shell, ~1 MiB).
MAX_VERIFY_BYTES = 4 << 20
# Bytes that may differ beyond relocation fixups before a file is "of another build": none in the
# 122 modules of the DEBUG OvmfPkgX64 build checked here (QEMU's gdbstub does not patch memory for
# breakpoints, so the code read is the code loaded).
MAX_UNEXPLAINED = 0
# PE Machine (PE/COFF spec 3.3.1) -> ELF e_machine (gABI).
PE_TO_ELF_MACHINE = {0x8664: EM_X86_64, 0x14C: EM_386, 0xAA64: 183, 0x5064: 243}
ARCH_DIRS = {"X64": EM_X86_64, "IA32": EM_386, "AARCH64": 183, "RISCV64": 243, "ARM": 40, "LOONGARCH64": 258}
GUID_SUFFIX = re.compile(r"^(?P<name>.+)_(?P<guid>[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
                         r"[0-9A-Fa-f]{12})$")


@dataclass
class DebugFile:
    """One .debug file of the index: the module's BASE_NAME, the FILE_GUID when the path names it,
    the architecture when the path names it (an <ARCH>/ folder)."""

    name: str
    path: Path
    guid: uuid.UUID | None = None
    machine: int | None = None


@dataclass
class PeInfo:
    """What the PE header of a loaded image says: Machine and the .text section."""

    machine: int
    text_rva: int
    text_size: int
    image_base: int             # the linked ImageBase of the optional header (before relocation)
    text_raw: int = 0           # .text PointerToRawData (where it is in the file, not in memory)


@dataclass
class Resolved:
    """The .debug file that matches a loaded image, or why none does."""

    symbols: ModuleSymbols | None
    pe: PeInfo | None
    problems: list[str]
    notes: list[str]


def _arch_of(parts: tuple[str, ...]) -> int | None:
    for p in reversed(parts):
        if p in ARCH_DIRS:
            return ARCH_DIRS[p]
    return None


def _guid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


class SymbolIndex:
    """The .debug files under a directory, by module name; each file read on first use."""

    def __init__(self, build_dir: str | Path):
        self.root = Path(build_dir)
        self.files: dict[str, list[DebugFile]] = {}
        self.problems: list[str] = []
        self.layout = "none"
        self._modules: dict[Path, ModuleSymbols] = {}
        self._resolved: dict[tuple, Resolved] = {}
        self._names: dict[str, list[str]] = {}
        self._count = 0
        flat = self._flat_files(self.root)
        if flat:
            self.layout = "flat"
            self._add_flat(self.root, flat)
            return
        arch_dirs = [self.root / a for a in ARCH_DIRS if (self.root / a).is_dir()]
        found = False
        for d in arch_dirs:
            names = self._flat_files(d)
            if names:
                found = True
                self._add_flat(d, names)
        if found:
            self.layout = "build"
            return
        self.layout = "tree"
        self._walk()

    @staticmethod
    def _flat_files(d: Path) -> list[str]:
        try:
            return sorted(n for n in os.listdir(d) if n.endswith(".debug"))
        except OSError:
            return []

    def _add(self, f: DebugFile) -> bool:
        if self._count >= MAX_DEBUG_FILES:
            self.problems.append(f"more than {MAX_DEBUG_FILES} .debug files under {self.root}: the rest ignored")
            return False
        self._count += 1
        self.files.setdefault(f.name, []).append(f)
        return True

    def _add_flat(self, d: Path, names: list[str]) -> None:
        machine = _arch_of(d.resolve().parts) if d.name in ARCH_DIRS else None
        for n in names:
            stem = n[:-len(".debug")]
            m = GUID_SUFFIX.match(stem)
            name, guid = (m["name"], _guid(m["guid"])) if m else (stem, None)
            if not self._add(DebugFile(name, d / n, guid, machine)):
                return

    def _walk(self) -> None:
        dirs = 0
        for top, subdirs, names in os.walk(self.root):
            subdirs.sort()
            dirs += 1
            if dirs > MAX_WALK_DIRS:
                self.problems.append(f"stopped after {MAX_WALK_DIRS} directories under {self.root}")
                return
            here = Path(top)
            if here.name != "DEBUG":
                continue
            parts = here.parts
            guid = _guid(here.parent.name)
            for n in sorted(names):
                if n.endswith(".debug") and not self._add(
                        DebugFile(n[:-len(".debug")], here / n, guid, _arch_of(parts))):
                    return

    # ---- modules ----------------------------------------------------------------------------------
    def _symbols(self, f: DebugFile) -> ModuleSymbols:
        if f.path not in self._modules:
            self._modules[f.path] = ModuleSymbols(f.path)
        return self._modules[f.path]

    def module(self, name: str | None) -> ModuleSymbols | None:
        """The first .debug file named for module `name` (unchecked: resolve() checks the code)."""
        if not name or name not in self.files:
            return None
        return self._symbols(self.files[name][0])

    def candidates(self, name: str, guid: uuid.UUID | None = None, machine: int | None = None) -> list[DebugFile]:
        """The files for module `name`: those of the PE's machine (by the <ARCH>/ folder, else the
        ELF header), the ones naming this FILE_GUID first."""
        out = []
        want = PE_TO_ELF_MACHINE.get(machine) if machine is not None else None
        for f in self.files.get(name, []):
            if want is not None:
                m = f.machine
                if m is None:
                    s = self._symbols(f)
                    s.header()
                    m = s.machine
                if m is not None and m != want:
                    continue
            out.append(f)
        out.sort(key=lambda f: 0 if guid is not None and f.guid == guid else 1 if f.guid is None else 2)
        return out

    def resolve(self, name: str, guid: uuid.UUID | None, mem: Memory, base: int) -> Resolved:
        """The .debug file whose code is the image loaded at `base` (cached per base and name)."""
        key = (name, guid, base)
        if key in self._resolved:
            return self._resolved[key]
        r = self._resolve(name, guid, mem, base)
        self._resolved[key] = r
        return r

    def _resolve(self, name, guid, mem, base) -> Resolved:
        pe = pe_info(mem, base)
        if name not in self.files:
            return Resolved(None, pe, [], [f"no {name}.debug in {self.root}"])
        if pe is None:
            return Resolved(None, None, [f"no PE header with a .text section readable at 0x{base:x}: "
                                         f"{name}'s symbols cannot be placed"], [])
        cands = self.candidates(name, guid, pe.machine)
        if not cands:
            return Resolved(None, pe, [f"no {name}.debug for PE Machine 0x{pe.machine:x} in {self.root}"], [])
        try:
            loaded = mem.read(base + pe.text_rva, min(pe.text_size, MAX_VERIFY_BYTES))
        except Unreadable as e:
            return Resolved(None, pe, [f"{name}'s .text unreadable at 0x{base + pe.text_rva:x}: {e}"], [])
        return self._first_match(name, guid, pe, loaded, base + pe.text_rva)

    def _first_match(self, name: str, guid: uuid.UUID | None, pe: PeInfo, code: bytes, text_va: int) -> Resolved:
        """The first candidate file whose .text is `code` (the image's .text at linear `text_va`); the
        files tried before it are notes, or, when none matches, each one's mismatch is a problem."""
        tried = []
        for f in self.candidates(name, guid, pe.machine):
            syms = self._symbols(f)
            why = code_mismatch(syms, code, text_va, pe)
            if why is None:
                return Resolved(syms, pe, [], tried)
            tried.append(f"{f.path}: {why}")
        return Resolved(None, pe, tried, [])

    def matching_pe(self, name: str, guid: uuid.UUID | None, pe_file: bytes) -> Resolved:
        """The symbols of module `name` for its PE file `pe_file` (as stored in the firmware volume,
        linked at its ImageBase): Resolved.symbols is the first .debug file of the PE's machine (the
        ones naming FILE_GUID `guid` first) that holds this very code (code_mismatch), with the files
        tried before it in notes; None when none does, each file's mismatch then a problem (no problem
        when there is no file for `name` at all). Resolved.pe is None when the file has no PE .text."""
        from decoders.memory import BytesMemory
        pe = pe_info(BytesMemory(bytes(pe_file) + bytes(PE_HEADER_BYTES)), 0)   # a small PE: header read whole
        if pe is None:
            return Resolved(None, None, [], [])
        text = bytes(pe_file[pe.text_raw:pe.text_raw + min(pe.text_size, MAX_VERIFY_BYTES)])
        return self._first_match(name, guid, pe, text, pe.image_base + pe.text_rva)

    def forget(self, base: int) -> None:
        """Drop what was decided about the image at `base` (a new image was loaded there)."""
        for key in [k for k in self._resolved if k[2] == base]:
            del self._resolved[key]

    def function_in_pe(self, name: str, guid: uuid.UUID | None, pe_file: bytes, function: str) -> tuple:
        """(RVA list, .debug path, problems) of `function` in module `name` whose PE file (as in the
        firmware volume, linked at its ImageBase) is `pe_file`: the .debug file must hold that very
        code; RVA = ELF address - ELF .text sh_addr + PE .text VirtualAddress."""
        r = self.matching_pe(name, guid, pe_file)
        if r.pe is None:
            return [], None, [f"{name}: no PE .text section in the image"]
        if r.symbols is None:
            return [], None, r.problems or [f"no {name}.debug for PE Machine 0x{r.pe.machine:x} in {self.root}"]
        syms = r.symbols
        rvas = [a - syms.text.addr + r.pe.text_rva for a in syms.addresses_of(function)]
        return rvas, syms.path, r.notes

    # ---- names ------------------------------------------------------------------------------------
    def modules_with(self, function: str) -> list[str]:
        """Module names whose symbol table has `function` (symbol tables alone, no DWARF), remembered
        per name. Only the files whose .strtab holds the name's bytes are decoded (a name with
        U+FFFD, which an undecodable name decodes to, is looked for in every table)."""
        if function in self._names:
            return list(self._names[function])
        try:
            needle = function.encode("utf-8") if "\ufffd" not in function else None
        except UnicodeEncodeError:
            needle = None
        found = set()
        for name, files in self.files.items():
            for f in files:
                syms = self._symbols(f)
                if (needle is None or syms.may_define(needle)) and function in syms.function_names():
                    found.add(name)
        self._names[function] = sorted(found)
        return list(self._names[function])


def code_mismatch(syms: ModuleSymbols, loaded: bytes, text_va: int, pe: PeInfo) -> str | None:
    """None when the ELF's .text is the loaded .text (at linear `text_va`), else why not. Bytes may
    differ only in pointer-sized spans whose values differ by the load delta (base relocations of
    type DIR64 for PE32+, HIGHLOW for PE32: PE/COFF spec 6.6.2), plus MAX_UNEXPLAINED others."""
    if not syms.header():
        return "; ".join(syms.problems) or "not readable"
    elf = syms.text_bytes()
    if not elf:
        return "; ".join(syms.problems) or "empty .text"
    if len(elf) > pe.text_size:
        return (f"its .text (0x{len(elf):x} bytes) is larger than the loaded PE's (0x{pe.text_size:x}): "
                "of another build")
    n = min(len(elf), len(loaded))
    if elf[:n] == loaded[:n]:
        return None
    width = 8 if syms.elf_class == 2 else 4
    mask = (1 << (8 * width)) - 1
    delta = (text_va - syms.text.addr) & mask
    unexplained = 0
    i = 0
    chunk = 256
    while i < n:
        j = min(n, i + chunk)
        if elf[i:j] == loaded[i:j]:
            i = j
            continue
        k = i
        while k < j:
            # The first byte at or after k that differs: the lowest set bit of the XOR.
            x = int.from_bytes(elf[k:j], "little") ^ int.from_bytes(loaded[k:j], "little")
            if not x:
                break
            k += ((x & -x).bit_length() - 1) >> 3
            end = _fixup_at(elf, loaded, k, n, width, mask, delta)
            if end is not None:
                k = end
                continue
            unexplained += 1
            if unexplained > MAX_UNEXPLAINED:
                return (f"its .text differs from the loaded image's at +0x{k:x} (and more) beyond "
                        "relocation fixups: of another build")
            k += 1
        i = max(j, k)
    return None


def _fixup_at(elf: bytes, loaded: bytes, k: int, n: int, width: int, mask: int, delta: int) -> int | None:
    """The end of the first width-byte span covering byte k (starting at most width-1 before it)
    whose value in `loaded` is its value in `elf` plus the load delta, or None. Both windows are read
    as one integer each and the spans taken out of them by shifts."""
    if not delta:
        return None
    lo, hi = max(0, k - width + 1), min(k, n - width)
    if hi < lo:
        return None
    a = int.from_bytes(elf[lo:hi + width], "little")
    b = int.from_bytes(loaded[lo:hi + width], "little")
    for s in range(lo, hi + 1):
        shift = 8 * (s - lo)
        if ((b >> shift) - (a >> shift)) & mask == delta:
            return s + width
    return None


def pe_info(mem: Memory, image_base: int) -> PeInfo | None:
    """Machine and the .text section of the PE image loaded at image_base (MdePkg/Include/
    IndustryStandard/PeImage.h: DOS header e_lfanew -> "PE\\0\\0", EFI_IMAGE_FILE_HEADER, optional
    header, section table). None when there is no such header or no .text."""
    try:
        raw = mem.read(image_base, PE_HEADER_BYTES)
    except Unreadable:
        try:
            raw = mem.read(image_base, 0x400)
        except Unreadable:
            return None
    try:
        dos = PE.EFI_IMAGE_DOS_HEADER.parse(raw, 0)
        if dos.e_magic != PE.EFI_IMAGE_DOS_SIGNATURE or dos.e_lfanew + 24 > len(raw):
            return None
        if int.from_bytes(raw[dos.e_lfanew:dos.e_lfanew + 4], "little") != PE.EFI_IMAGE_NT_SIGNATURE:
            return None
        fh = PE.EFI_IMAGE_FILE_HEADER.parse(raw, dos.e_lfanew + 4)
        opt = dos.e_lfanew + 24
        magic = int.from_bytes(raw[opt:opt + 2], "little")
        # ImageBase: PE32+ (0x20b) 8 bytes at +24, PE32 (0x10b) 4 bytes at +28 (PE/COFF spec 3.4.2).
        if magic == 0x20B and opt + 32 <= len(raw):
            linked = struct.unpack_from("<Q", raw, opt + 24)[0]
        elif opt + 32 <= len(raw):
            linked = struct.unpack_from("<I", raw, opt + 28)[0]
        else:
            return None
        at = opt + fh.SizeOfOptionalHeader
        for _ in range(min(fh.NumberOfSections, MAX_SECTIONS)):
            if at + PE.EFI_IMAGE_SIZEOF_SECTION_HEADER > len(raw):
                return None
            sh = PE.EFI_IMAGE_SECTION_HEADER.parse(raw, at)
            if sh.Name.rstrip(b"\0") == b".text":
                return PeInfo(fh.Machine, sh.VirtualAddress, sh.VirtualSize or sh.SizeOfRawData, linked,
                              sh.PointerToRawData)
            at += PE.EFI_IMAGE_SIZEOF_SECTION_HEADER
    except DecodeError:
        return None
    return None


def pe_text_rva(mem: Memory, image_base: int) -> int | None:
    """The .text section's VirtualAddress of the PE image loaded at image_base."""
    info = pe_info(mem, image_base)
    return info.text_rva if info is not None else None


@dataclass
class LoadedModule:
    name: str
    base: int
    size: int
    guid: uuid.UUID | None = None


def symbolize(index: SymbolIndex, images: list[LoadedModule], mem: Memory, pc: int) -> Node | None:
    """A "symbol" node for `pc`: module, function and line, or None when pc is in no loaded image.
    File and Line are absent when no line-table row covers pc; a .debug file that does not match
    the loaded code gives a problem and no symbols."""
    img = next((m for m in images if m.base <= pc < m.base + m.size), None)
    if img is None:
        return None
    node = Node("symbol", f"{img.name}+0x{pc - img.base:x}")
    node.add("Module", img.name)
    node.add("ImageBase", img.base, display=f"0x{img.base:x}")
    node.add("ImageOffset", pc - img.base, display=f"0x{pc - img.base:x}")
    r = index.resolve(img.name, img.guid, mem, img.base)
    for p in r.problems:
        node.warn(None, p)
    if r.symbols is None:
        for n in r.notes:
            node.note(None, n)
        return node
    syms, pe = r.symbols, r.pe
    elf = pc - (img.base + pe.text_rva) + syms.text.addr
    s = syms.lookup(elf)
    node.add("DebugFile", str(syms.path))
    node.add("ElfAddress", elf, display=f"0x{elf:x}")
    node.add("Function", s.function, display=(f"{s.function}+0x{s.function_offset:x}" if s.function_offset
                                              else s.function) if s.function else "?")
    if s.file:
        node.add("File", s.file)
        node.add("Line", s.line)
    for p in syms.problems:
        node.warn(None, p)
    if s.function or s.file:
        node.title = f"{img.name}!{s.text()}"
    return node


def gdb_script(index: SymbolIndex | None, images: list[LoadedModule], mem: Memory) -> str:
    """`add-symbol-file FILE TEXTADDR` for each loaded image with a matching .debug file, TEXTADDR =
    ImageBase + the .text VirtualAddress of its PE header in memory (as edk2's efi_gdb.py does).
    Without an index every image gets a line naming `<UI name>.debug`, for the user's own build."""
    where = index.root if index is not None else "(no --symbols: paths are <module>.debug)"
    lines = [f"# fwinspect: symbols for {len(images)} loaded images from {where}"]
    for m in sorted(images, key=lambda m: m.base):
        if index is not None:
            if m.name not in index.files:
                continue
            r = index.resolve(m.name, m.guid, mem, m.base)
            if r.symbols is None:
                lines.append(f"# {m.name} at 0x{m.base:x}: " + "; ".join(r.problems or r.notes))
                continue
            path, rva = str(r.symbols.path), r.pe.text_rva
        else:
            path, rva = f"{m.name}.debug", pe_text_rva(mem, m.base)
        if rva is None:
            lines.append(f"# {m.name} at 0x{m.base:x}: no PE .text section readable")
            continue
        lines.append(f"add-symbol-file {path} 0x{m.base + rva:x}")
    return "\n".join(lines) + "\n"


__all__ = ["ModuleSymbols", "SymbolIndex", "Symbolized", "LoadedModule", "DebugFile", "PeInfo", "Resolved",
           "pe_info", "pe_text_rva", "code_mismatch", "symbolize", "gdb_script"]
