"""The boot-phase model: handoff points computed from the image, and phase classification by RIP.

Nothing here is hard-coded per edk2 version:

- reset: the architectural reset vector, linear 0xFFFFFFF0 in real mode (Intel SDM vol. 3A 9.1.4).
- sec: SECFV's SEC_CORE file (FFS type 3) -> PE32 -> XipEntryPoint (flash is mapped so that the
  image's last byte sits at 4 GiB - 1). IA32 and X64 SEC alike (OvmfPkg/Sec/{Ia32,X64}/SecEntry.nasm).
- pei-core: PEIFV's PEI_CORE file (type 4). PEIFV modules are XIP and build-time relocated to the
  RAM address SEC decompresses PEIFV to (OvmfPkg/OvmfPkgX64.fdf [FD.MEMFD] places PEIFV at
  PcdOvmfPeiMemFvBase, and GenFds rebases its XIP modules there), so ImageBase + AddressOfEntryPoint
  is the runtime entry; only the first, pre-memory entry is ever hit (PeiMain.c ShadowPeiCore).
- dxe-ipl, dxe-core, bds: these modules are *loaded* (DxeIpl is shadowed to RAM, PcdShadowPeimOnBoot;
  DxeCore and BdsDxe have ImageBase 0 in DXEFV), so their entry is only known at run time. The
  session finds them by following copies of the module (copies.py): a read watchpoint
  on the entry bytes of the module's known copy fires when the loader copies it; the copy's PE
  header is then found near a register, and a breakpoint goes on the copy's entry. The known copy
  is the module's volume in RAM: where SEC decompressed it (Config-A: a fixed place; Config-B: pages
  allocated at run time, found while SEC decompresses, see `packed_origin`), and once the DXE core
  has the HOB list, the volume its FV HOB names (`BootState.hob_list`).

TDVF Config-B has no PEIFV (SEC -> PeilessStartup -> DxeCore, OvmfPkg/IntelTdx/Sec/SecMain.c,
OvmfPkg/Library/PeilessStartupLib/DxeLoad.c): pei-core and dxe-ipl are then absent from the handoff
list. Which files are the handoff modules comes from inspector.bootphases.scan (one pass over the
tree, shared with the image summary's "Boot phases").
"""
from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field

from decoders.model import Node, Space
from inspector import bootphases
# The reset vector, FFS file types, FV names and module FILE_GUIDs have one definition, in
# inspector.bootphases (each with its source there); re-exported for the live package.
from inspector.bootphases import (BDS_DXE_GUID, DXE_CORE_GUID, DXE_IPL_GUID, DXEFV_GUID,  # noqa: F401
                                  FFS_DXE_CORE, FFS_PEI_CORE, FFS_RAW, FFS_SECURITY_CORE, FOUR_GIB,
                                  PEIFV_GUID, RESET_VECTOR, RESET_VECTOR_GUID)
from inspector.live.session_api import PHASES, Mode, Phase

FFS_PEIM = 0x06               # PI vol. 3, 2.1.4.1 (MdePkg/Include/Pi/PiFirmwareFile.h)

# Bytes of the PE header used to recognise a copy of a module in RAM: from "PE\0\0" through
# BaseOfCode (COFF header 20 + the first 24 optional-header bytes: sizes, AddressOfEntryPoint).
# ImageBase comes right after and is the first thing relocation changes (BasePeCoff.c).
PE_MATCH_BYTES = 4 + 20 + 24

ADDRESS_MASK = {Mode.REAL: 0xFFFFF, Mode.PROT16: 0xFFFFFFFF, Mode.PROT32: 0xFFFFFFFF, Mode.LONG64: (1 << 64) - 1}

Range = tuple[int, int, str, str]       # (start, end, module name, phase) of a module's code

# Decompressed spaces followed up to the flash (a volume in a section in a volume...): FVMAIN_COMPACT
# -> LZMA -> DXEFV is one level; the bound only stops a malformed parent chain.
MAX_PACKING_DEPTH = 8


@dataclass
class Module:
    """A PE module of the image: where it is in flash/FV, and how to recognise a copy of it."""

    name: str                    # FFS UI name, else the file GUID
    guid: uuid.UUID
    phase: Phase                 # the phase its code belongs to
    fv: Node | None              # the firmware volume node holding it
    pe: Node                     # its "pe" node
    entry_rva: int
    size_of_image: int
    e_lfanew: int
    signature: bytes             # PE_MATCH_BYTES of the PE header (see above)
    machine: int

    @property
    def offset_in_fv(self) -> int:
        return self.pe.offset - self.fv.offset if self.fv is not None else 0

    def find_copies(self, data: bytes, base: int, limit: int = 16) -> list[int]:
        """Addresses of PE headers of this module inside `data` (which starts at `base`)."""
        out, at = [], 0
        while len(out) < limit:
            hit = data.find(self.signature, at)
            if hit < 0:
                break
            at = hit + 1
            start = hit - self.e_lfanew
            if start < 0 or data[start:start + 2] != b"MZ":
                continue
            if struct.unpack_from("<I", data, start + 0x3C)[0] != self.e_lfanew:
                continue
            out.append(base + start)
        return out


@dataclass
class Handoffs:
    """What the image says about the boot's handoff points."""

    image_size: int
    flash_space: Space | None = None      # the image's space: volumes in it run from flash
    sec_entry: int | None = None
    sec_machine: int | None = None
    bfv_base: int | None = None           # SECFV base in flash: what the reset vector puts in EBP/RBP
    pei_core_entry: int | None = None
    peifv_ram_base: int | None = None     # where SEC decompresses PEIFV (PcdOvmfPeiMemFvBase)
    peifv_size: int | None = None
    dxefv: Node | None = None
    modules: dict[Phase, Module] = field(default_factory=dict)   # Phase.SEC, PEI_CORE, DXE_IPL, ...
    ranges: list[Range] = field(default_factory=list)           # static (start, end, name, phase)
    problems: list[str] = field(default_factory=list)

    @property
    def flash_base(self) -> int:
        return FOUR_GIB - self.image_size

    def phases(self) -> list[Phase]:
        """The handoffs this image has, in boot order (Config-B TDVF: no pei-core/dxe-ipl)."""
        out = [Phase.RESET]
        if self.sec_entry is not None:
            out.append(Phase.SEC)
        if self.pei_core_entry is not None:
            out.append(Phase.PEI_CORE)
        if Phase.DXE_IPL in self.modules and self.peifv_ram_base is not None:
            out.append(Phase.DXE_IPL)
        if Phase.DXE_CORE in self.modules:
            out.append(Phase.DXE_CORE)
        if Phase.BDS in self.modules:
            out.append(Phase.BDS)
        return out

    def packed_origin(self, fv: Node) -> tuple[int, int] | None:
        """(flash address, size) of the compressed section in the flash that `fv` comes out of (the
        outermost, for nested ones), or None when `fv` is in the flash itself or its origin is not
        known. Its bytes are what the decompressor reads from flash while it writes `fv` into RAM
        (OvmfPkg/Sec/SecMain.c DecompressMemFvs; PEI-less: EmbeddedPkg/Library/PrePiLib/FwVol.c
        FfsProcessSection, which decompresses straight from the section in flash)."""
        space, section = fv.space, None
        for _ in range(MAX_PACKING_DEPTH):
            if space is self.flash_space:
                return (self.flash_base + section.offset, section.size) if section is not None else None
            section = getattr(space, "parent", None)
            if section is None:
                return None
            space = section.space
        return None

    def static_entry(self, phase: str) -> int | None:
        """The entry of a handoff known from the image alone (reset, SEC, PEI core), else None."""
        return {Phase.RESET: RESET_VECTOR, Phase.SEC: self.sec_entry, Phase.PEI_CORE: self.pei_core_entry}.get(phase)


@dataclass
class BootState:
    """What a live session has learnt about this boot so far, shared by its parts (run control, the
    copy follower, the module tracker): the image's handoffs, the module ranges (static ones and
    those found at run time), system memory from the HOBs, and the latest phase reached."""

    handoffs: Handoffs
    ranges: list[Range] = field(default_factory=list)
    ram: list[tuple[int, int]] | None = None        # (start, size) of system memory, from the HOBs
    hob_list: int | None = None                     # RCX at the DXE core's entry (DxeMain's HobStart)
    reached: Phase | None = None

    def __post_init__(self):
        if not self.ranges:
            self.ranges = list(self.handoffs.ranges)

    def ram_or(self, default: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return self.ram or default

    def at_or_past(self, phase: Phase) -> bool:
        return phase_index(self.reached or "") >= phase_index(phase)


def _module(ffs: Node, pe: Node, phase: Phase, fv: Node | None) -> Module | None:
    raw = pe.bytes
    lfanew = pe.get("e_lfanew")
    if lfanew is None or len(raw) < lfanew + PE_MATCH_BYTES:
        return None
    name = ffs.get("UI") or str(ffs.get("Name")).upper()
    return Module(name, ffs.get("Name"), phase, fv, pe, pe.get("AddressOfEntryPoint") or 0,
                  pe.get("SizeOfImage") or 0, lfanew, bytes(raw[lfanew:lfanew + PE_MATCH_BYTES]),
                  pe.get("Machine") or 0)


def compute_handoffs(root: Node, image_size: int) -> Handoffs:
    """Handoff points of an image's Node tree (inspector.image.load_image(...).root), from one pass
    over it (inspector.bootphases.scan: each FFS file with the volume holding it)."""
    found = bootphases.scan(root, image_size)
    h = Handoffs(image_size, root.space)
    if found.reset_vector is not None:
        start = h.flash_base + found.reset_vector.offset
        h.ranges.append((start, start + found.reset_vector.size, "ResetVector", Phase.RESET))
    if found.sec is not None:
        sec = found.sec
        h.sec_entry = found.sec_entry
        h.sec_machine = sec.pe.get("Machine")
        if sec.fv is not None:
            h.bfv_base = h.flash_base + sec.fv.offset
        m = _module(sec.ffs, sec.pe, Phase.SEC, sec.fv)
        if m:
            h.modules[Phase.SEC] = m
        start = h.flash_base + sec.pe.offset
        h.ranges.append((start, start + (sec.pe.get("SizeOfImage") or sec.pe.size), m.name if m else "SEC",
                         Phase.SEC))
    if found.pei_core is not None:
        pc = found.pei_core
        image_base = pc.pe.get("ImageBase") or 0
        # PEIFV is relocated at build time to its RAM base ([FD.MEMFD]), so the PE header's ImageBase
        # is where it runs, and ImageBase - (its offset in the FV) is the FV's base.
        h.pei_core_entry = found.pei_core_entry
        h.peifv_ram_base = image_base - (pc.pe.offset - pc.fv.offset)
        h.peifv_size = pc.fv.size
        m = _module(pc.ffs, pc.pe, Phase.PEI_CORE, pc.fv)
        if m:
            h.modules[Phase.PEI_CORE] = m
    if found.dxe_ipl is not None:
        m = _module(found.dxe_ipl.ffs, found.dxe_ipl.pe, Phase.DXE_IPL, found.dxe_ipl.fv)
        if m:
            h.modules[Phase.DXE_IPL] = m
    for f in found.pei_modules:     # XIP at their build-time ImageBase: static code ranges
        image_base = f.pe.get("ImageBase") or 0
        if image_base:
            phase = Phase.DXE_IPL if f is found.dxe_ipl else Phase.PEI_CORE
            h.ranges.append((image_base, image_base + (f.pe.get("SizeOfImage") or f.pe.size),
                             f.ffs.get("UI") or str(f.ffs.get("Name")).upper(), phase))
    if found.dxe_core is not None:
        m = _module(found.dxe_core.ffs, found.dxe_core.pe, Phase.DXE_CORE, found.dxe_core.fv)
        if m:
            h.modules[Phase.DXE_CORE] = m
            h.dxefv = found.dxe_core.fv
    if found.bds is not None:
        m = _module(found.bds.ffs, found.bds.pe, Phase.BDS, found.bds.fv)
        if m:
            h.modules[Phase.BDS] = m
    if h.sec_entry is None:
        h.problems.append("no SEC_CORE file (FFS type 3) with a PE32 image in the flash")
    if h.pei_core_entry is None:
        h.problems.append("no PEI_CORE file: a PEI-less image (TDVF Config-B) or no PEIFV")
    if Phase.DXE_CORE not in h.modules:
        h.problems.append("no DXE_CORE file (FFS type 5) with a PE32 image")
    return h


# ---- classification ---------------------------------------------------------------------------

def classify(linear_rip: int, mode: str, ranges: list[Range],
             last_handoff: str | None = None) -> tuple[Phase, str | None]:
    """(phase, module name) of a linear RIP: the module range it is in (static XIP ranges of the
    image and modules found at run time), else real mode means the reset vector, else the last
    handoff reached, else "unknown"."""
    for start, end, name, phase in ranges:
        if start <= linear_rip < end:
            return Phase(phase), name
    if mode == Mode.REAL:
        return Phase.RESET, None
    if last_handoff in PHASES:
        return Phase(last_handoff), None
    return Phase.UNKNOWN, None


def phase_index(phase: str) -> int:
    return PHASES.index(phase) if phase in PHASES else -1


# ---- breakpoints by address or by module + offset ------------------------------------------------

@dataclass
class Breakpoint:
    """`spec` is "0xADDR", "MODULE+OFFSET" or "MODULE" (= its entry point); MODULE is an FFS UI name
    ("PlatformPei", "DxeCore") or a file GUID. OFFSET counts from the image base (ImageBase + OFFSET,
    as gdb's add-symbol-file addresses do). `address` is None while the module is not loaded."""

    spec: str
    module: str | None = None
    guid: uuid.UUID | None = None
    offset: int = 0
    address: int | None = None
    where: str = ""                 # how the address was found ("XIP in PEIFV", "loaded at 0x...")

    @property
    def pending(self) -> bool:
        return self.address is None

    def matches(self, name: str | None, guid: uuid.UUID | None) -> bool:
        return (guid is not None and guid == self.guid) or (name is not None and self.module is not None
                                                           and name.lower() == self.module.lower())


def _int(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        return None


def parse_breakpoint(spec: str, root: Node, image_size: int) -> Breakpoint:
    """Resolve a breakpoint spec against the image. XIP modules get their address now: SECFV files
    run from flash (4 GiB - image size + offset), PEIFV files are build-time relocated (their PE
    ImageBase; only PEIMs dispatched before memory discovery run there: later ones are loaded to RAM,
    MdeModulePkg/Core/Pei/Image/Image.c with PcdShadowPeimOnBoot). Modules with
    ImageBase 0 (DXEFV) stay pending until loaded. Raises ValueError for an unknown module."""
    text = spec.strip()
    address = _int(text)
    if address is not None:
        return Breakpoint(spec, address=address, where="address")
    name, plus, off = text.partition("+")
    name = name.strip()
    offset = _int(off.strip()) if plus else None
    if plus and offset is None:
        raise ValueError(f"{spec!r}: offset {off!r} is not a number")
    try:
        guid = uuid.UUID(name)
    except ValueError:
        guid = None
    flash_base = FOUR_GIB - image_size
    for ffs in root.find("ffs"):
        ui, fguid = ffs.get("UI"), ffs.get("Name")
        if not ((guid is not None and fguid == guid) or (guid is None and ui and ui.lower() == name.lower())):
            continue
        pe = next((c for c in ffs.walk() if c.kind == "pe"), None)
        if pe is None:
            continue
        bp = Breakpoint(spec, ui or str(fguid).upper(), fguid,
                        offset if offset is not None else (pe.get("AddressOfEntryPoint") or 0))
        if ffs.space is root.space:
            base = flash_base + pe.offset
            bp.address, bp.where = base + bp.offset, "XIP in flash"
        elif pe.get("ImageBase"):
            bp.address, bp.where = pe.get("ImageBase") + bp.offset, "XIP at its build-time ImageBase"
        return bp
    raise ValueError(f"{spec!r}: no module named {name!r} (an FFS UI name or file GUID) with a PE image")


__all__ = ["Breakpoint", "parse_breakpoint", "BootState", "Handoffs", "Module", "compute_handoffs", "classify",
           "phase_index"]
