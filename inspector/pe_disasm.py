"""Offline disassembly of a PE32/PE32+ or TE image in a decoded firmware image.

Mode: from the image's Machine (PE/COFF spec 3.3.1: IMAGE_FILE_MACHINE_I386 0x14c -> 32-bit
protected mode, IMAGE_FILE_MACHINE_AMD64 0x8664 -> 64-bit); any other machine is a problem, not a
guess. The decoding (capstone, and the TDX instructions capstone lacks) is inspector.live.disasm's.

Addresses are where the image runs:
- in place from flash: an image in the flash space (mapped so that its last byte sits at 4 GiB - 1)
  that GenFv rebased to its flash address (BaseTools/Source/C/GenFv/GenFvInternalLib.c
  FfsRebase: SEC and PEI images of an XIP volume), so its bytes sit where they are linked. The
  decoder says so with XipEntryPoint (decoders.pe: load address + AddressOfEntryPoint), the same
  address inspector.bootphases gives the SEC entry;
- elsewhere at its ImageBase, with a note: PEIFV's images are rebased at build time to the RAM
  address SEC decompresses PEIFV to (OvmfPkg/OvmfPkgX64.fdf PcdOvmfPeiMemFvBase) and run in place
  there; DXE images are linked at 0 and relocated wherever they are loaded.
A TE image keeps its PE's RVAs and is StrippedSize - sizeof(EFI_TE_IMAGE_HEADER) shorter at the
front (PI vol 1, "TE Image"; BasePeCoff.c PeCoffLoaderAdjustOffsetForTeImage): its header sits at
ImageBase + that adjustment, and RVA r is at header address + r - adjustment.

Symbols: with an edk2 build folder, inspector.live.symbols.SymbolIndex finds the module's .debug
file by its UI name, checks its .text is this image's (code_mismatch), and names the function at
each address (ELF address = RVA - PE .text VirtualAddress + ELF .text sh_addr).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from decoders.model import Node, Severity

MACHINE_MODES = {0x14C: "prot32", 0x8664: "long64"}     # inspector.live.disasm mode names
MACHINE_NAMES = {0x14C: "IA32", 0x8664: "X64", 0xAA64: "AARCH64", 0x1C2: "ARMTHUMB_MIXED", 0xEBC: "EBC",
                 0x5064: "RISCV64", 0x6264: "LOONGARCH64"}
TE_HEADER_SIZE = 40     # sizeof(EFI_TE_IMAGE_HEADER), PI vol 1
# The longest x86 instruction is 15 bytes (Intel SDM vol. 2, 2.3.11).
MAX_INSN = 15
DEFAULT_COUNT = 64
# Instructions per request at most: a listing for a person or a pane, not a whole-image dump.
MAX_COUNT = 10_000
# FFS section types holding an image (PI vol 3, 2.1.5.1): EFI_SECTION_PE32, EFI_SECTION_TE.
SECTION_PE32, SECTION_TE = 0x10, 0x12


@dataclass
class Line:
    address: int
    raw: bytes
    text: str
    symbol: str | None = None           # "Function" or "Function+0x12"
    function: str | None = None         # the function's name alone
    symbol_start: bool = False          # the address is the function's first byte

    def to_json(self) -> dict:
        return {"address": self.address, "bytes": self.raw.hex(), "text": self.text, "symbol": self.symbol}


@dataclass
class Disassembly:
    mode: str                           # "prot32" or "long64" ("" when not x86)
    base: int                           # run address of the image's first byte (TE: its header)
    entry: int                          # run address of AddressOfEntryPoint
    lines: list[Line] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    where: str = ""                     # "flash" (runs in place), "image-base"
    machine: int | None = None
    size: int = 0                       # bytes of the image as stored
    title: str = ""
    node: Node | None = None            # the pe/te node

    @property
    def bits(self) -> int:
        return {"prot32": 32, "long64": 64}.get(self.mode, 0)

    def to_json(self) -> dict:
        return {"title": self.title, "mode": self.mode, "bits": self.bits, "machine": self.machine,
                "base": self.base, "entry": self.entry, "where": self.where, "size": self.size,
                "notes": self.notes, "problems": self.problems, "lines": [ln.to_json() for ln in self.lines]}


# -- finding the image -------------------------------------------------------------------------------
def image_node(node: Node) -> Node | None:
    """The pe/te node for `node`: itself, the image of a PE32/TE section, or an FFS file's first
    image."""
    if node.kind in ("pe", "te"):
        return node
    for n in node.walk():
        if n.kind in ("pe", "te"):
            return n
    return None


def find_modules(root: Node, name: str) -> list[Node]:
    """The FFS files whose UI name (case-insensitive) or file GUID is `name`, in tree order."""
    import uuid

    want_guid = None
    try:
        want_guid = uuid.UUID(name.strip().strip("{}"))
    except ValueError:
        pass
    low = name.strip().lower()
    out = []
    for f in root.find("ffs"):
        ui = f.get("UI")
        if (want_guid is not None and f.get("Name") == want_guid) or (isinstance(ui, str) and ui.lower() == low):
            out.append(f)
    return out


def find_module(root: Node, name: str) -> Node | str:
    """The FFS file of module `name` (the first of that name holding a PE/TE image: pass it to
    disassemble_image), or a message saying why there is none."""
    files = find_modules(root, name)
    if not files:
        return f"no module {name!r} (a UI name such as PlatformPei, or a file GUID) in the image"
    for f in files:
        if image_node(f) is not None:
            return f
    return f"module {name!r} holds no PE32 or TE image"


# -- the image's layout ------------------------------------------------------------------------------
class _Layout:
    """RVA <-> stored offset <-> run address of one decoded image node."""

    def __init__(self, img: Node):
        self.img = img
        self.te = img.kind == "te"
        self.adjust = _int(img.get("RvaAdjust")) or 0 if self.te else 0
        self.headers = 0 if self.te else (_int(img.get("SizeOfHeaders")) or 0)
        self.sections = []
        for s in img.children:
            if s.kind != "pe-section":
                continue
            va, vs = _int(s.get("VirtualAddress")), _int(s.get("VirtualSize"))
            rs, rp = _int(s.get("SizeOfRawData")), _int(s.get("PointerToRawData"))
            if None not in (va, vs, rs, rp):
                self.sections.append((va, vs, rs, rp, s.get("Name")))

    def rel_of(self, rva: int) -> tuple[int, int] | None:
        """(offset in the stored image, bytes left in its section) of `rva`, or None when no
        section (or the PE headers) holds its bytes (decoders.pe _Image.rva_to_rel)."""
        size = self.img.size
        for va, vs, rs, rp, _name in self.sections:
            if va <= rva < va + max(vs, rs) and rva - va < rs:
                rel = rp + (rva - va) - self.adjust
                end = min(rp + rs - self.adjust, size)
                return (rel, end - rel) if 0 <= rel < end else None
        if not self.te and rva < min(self.headers, size):
            return rva, min(self.headers, size) - rva
        return None

    def section_of(self, rva: int) -> str | None:
        for va, vs, rs, _rp, name in self.sections:
            if va <= rva < va + max(vs, rs):
                return name
        return None


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- disassembly ------------------------------------------------------------------------------------
def disassemble_image(node: Node, address: int | None = None, count: int = DEFAULT_COUNT,
                      symbols=None, module: str | None = None) -> Disassembly:
    """Disassemble `count` instructions of the PE/TE image of `node` (the image node, its PE32/TE
    section or its FFS file) from `address` (a run address; default the entry point). `symbols`:
    an inspector.live.symbols.SymbolIndex or a folder of .debug files (load_symbols); the .debug
    file is found by `module`, the UI name (default: the FFS file's when `node` is one, else the
    base name of the image's CodeView PDB path)."""
    if module is None and node.kind == "ffs" and isinstance(node.get("UI"), str):
        module = node.get("UI")
    guid = node.get("Name") if node.kind == "ffs" else None
    img = image_node(node)
    if img is None:
        d = Disassembly("", 0, 0)
        d.problems.append(f"{node.title}: no PE32 or TE image here")
        return d
    lay = _Layout(img)
    machine = _int(img.get("Machine"))
    entry_rva = _int(img.get("AddressOfEntryPoint"))
    image_base = _int(img.get("ImageBase"))
    d = Disassembly(MACHINE_MODES.get(machine, ""), 0, 0, machine=machine, size=img.size, node=img)
    if machine is None or entry_rva is None or image_base is None:
        d.problems.append(f"{img.title}: its headers could not be read ({_first_problem(img)}); nothing to disassemble")
        d.title = img.title
        return d

    linked = image_base + lay.adjust                 # where byte 0 of the stored image is linked to sit
    flash = img.space.address_of(img.offset) if img.space is not None else None
    if flash is not None and img.get("XipEntryPoint") is not None and flash == linked:
        d.where = "flash"
        d.notes.append(f"runs in place from flash at 0x{flash:x} (linked there)")
    else:
        d.where = "image-base"
        if flash is not None and flash != linked:
            d.notes.append(f"sits in flash at 0x{flash:x} but is linked for 0x{linked:x}: it runs where a loader "
                           f"relocates it; addresses from its ImageBase")
        elif image_base:
            d.notes.append(f"addresses from ImageBase 0x{image_base:x}: where it runs when executed in place at its "
                           f"build-time address (PEIFV, rebased to the RAM SEC decompresses it to) or loaded there")
        else:
            d.notes.append("ImageBase 0: relocated to wherever it is loaded at run time; addresses are RVAs")
    # What the decoder found wrong with the headers (a section table cut short, an entry point outside
    # the image) is said with the listing: it may be what makes the listing odd.
    d.problems.extend(f"{img.kind} header: {p.message}" for p in img.problems if p.severity != Severity.INFO)
    d.base = linked
    d.entry = linked + entry_rva - lay.adjust
    name = MACHINE_NAMES.get(machine, f"machine 0x{machine:x}")
    d.title = f"{img.title}: {name}, base 0x{d.base:x}, entry 0x{d.entry:x}"

    if not d.mode:
        d.problems.append(f"Machine 0x{machine:04x} ({name}) is not IA32 or X64: not disassembled")
        return d
    if img.space is None or img.space.data is None:
        d.problems.append(f"{img.title}: its bytes are not in a buffer")
        return d

    start = d.entry if address is None else address
    rva = start - linked + lay.adjust
    where = lay.rel_of(rva) if rva >= 0 else None
    if where is None:
        d.problems.append(f"0x{start:x} is not in the stored bytes of this image's sections "
                          f"(image at 0x{d.base:x}-0x{d.base + img.size - 1:x} as stored)")
        return d
    rel, left = where
    count = max(1, min(count, MAX_COUNT))
    code = bytes(img.space.data[img.offset + rel:img.offset + rel + min(left, count * MAX_INSN)])
    d.lines = _disassemble(code, start, d.mode, count)
    if address is not None and lay.section_of(rva) not in (".text", None):
        d.notes.append(f"0x{start:x} is in section {lay.section_of(rva)}, not .text")
    if symbols is not None:
        _symbolize(d, img, lay, symbols, module or _pdb_name(img), guid)
    return d


def _first_problem(img: Node) -> str:
    return str(img.problems[0]) if img.problems else "fields missing"


def _disassemble(code: bytes, address: int, mode: str, count: int) -> list[Line]:
    """Up to `count` lines (inspector.live.disasm.instructions: capstone, and the TDX instructions it
    lacks named by their bytes); a byte nothing decodes is one `(bad)` line (as objdump shows it) and
    decoding goes on after it. `code` holds at most count * MAX_INSN bytes, so the listing stops short
    only at the end of the section."""
    from inspector.live.disasm import instructions

    return [Line(at, raw, text or "(bad)") for at, raw, text in instructions(code, address, mode, count)]


# -- symbols -----------------------------------------------------------------------------------------
def load_symbols(folder: str | Path):
    """The .debug files under `folder` (an edk2 Build folder, one <ARCH>/ folder or a flat folder)."""
    from inspector.live.symbols import SymbolIndex

    return SymbolIndex(folder)


def _symbolize(d: Disassembly, img: Node, lay: _Layout, symbols, module: str | None, guid) -> None:
    from inspector.live.symbols import SymbolIndex

    index = symbols if isinstance(symbols, SymbolIndex) else load_symbols(symbols)
    if module is None:
        d.problems.append("symbols: the image's file has no UI name to find its .debug file by")
        return
    if lay.te:
        d.problems.append(f"symbols: {module} is a TE image; .debug files are matched to PE images only")
        return
    r = index.matching_pe(module, guid, img.bytes)
    if r.pe is None:
        d.problems.append(f"symbols: {module} has no PE .text section")
        return
    if r.symbols is None:
        d.problems.append(f"symbols: no .debug file for {module} (machine 0x{r.pe.machine:x}) in {index.root}"
                          + (f": {'; '.join(r.problems)}" if r.problems else ""))
        return
    syms, pe = r.symbols, r.pe
    d.notes.append(f"symbols from {syms.path}")
    for line in d.lines:
        rva = line.address - d.base + lay.adjust
        found = syms.function_at(rva - pe.text_rva + syms.text.addr)
        if found is not None:
            fn, off = found
            line.function, line.symbol = fn, fn + (f"+0x{off:x}" if off else "")
            line.symbol_start = off == 0


def _pdb_name(img: Node) -> str | None:
    """The module's BASE_NAME from the image's CodeView PDB path (…/<BaseName>.dll, as GenFw writes
    it), for an image given without its FFS file."""
    pdb = img.get("PdbPath")
    if isinstance(pdb, str) and pdb:
        base = pdb.replace("\\", "/").rsplit("/", 1)[-1]
        return base.rsplit(".", 1)[0] or None
    return None
