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
  header is then found near a register, and a breakpoint goes on the copy's entry.

TDVF Config-B has no PEIFV (SEC -> PeilessStartup -> DxeCore, OvmfPkg/IntelTdx/Sec/SecMain.c):
pei-core and dxe-ipl are then simply absent from the handoff list.
"""
from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field

from decoders.model import Node
from inspector.live.session_api import PHASES, Mode, Phase

RESET_VECTOR = 0xFFFFFFF0
FOUR_GIB = 1 << 32

# FFS file types (PI vol. 3, 2.1.4.1; MdePkg/Include/Pi/PiFirmwareFile.h).
FFS_RAW, FFS_SECURITY_CORE, FFS_PEI_CORE, FFS_DXE_CORE, FFS_PEIM = 0x01, 0x03, 0x04, 0x05, 0x06
# FV names (OvmfPkg/OvmfPkgX64.fdf) and module file GUIDs (their .inf FILE_GUID).
PEIFV_GUID = uuid.UUID("6938079b-b503-4e3d-9d24-b28337a25806")
DXEFV_GUID = uuid.UUID("7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1")
DXE_IPL_GUID = uuid.UUID("86d70125-baa3-4296-a62f-602bebbb9081")     # MdeModulePkg/Core/DxeIplPeim
DXE_CORE_GUID = uuid.UUID("d6a2cb7f-6a18-4e2f-b43b-9920a733700a")    # MdeModulePkg/Core/Dxe/DxeMain.inf
BDS_DXE_GUID = uuid.UUID("6d33944a-ec75-4855-a54d-809c75241f6c")     # MdeModulePkg/Universal/BdsDxe
# OvmfPkg/ResetVector/ResetVector.inf FILE_GUID: the raw file at the top of SECFV.
RESET_VECTOR_GUID = uuid.UUID("1ba0062e-c779-4582-8566-336ae8f78f09")

# Bytes of the PE header used to recognise a copy of a module in RAM: from "PE\0\0" through
# BaseOfCode (COFF header 20 + the first 24 optional-header bytes: sizes, AddressOfEntryPoint).
# ImageBase comes right after and is the first thing relocation changes (BasePeCoff.c).
PE_MATCH_BYTES = 4 + 20 + 24

ADDRESS_MASK = {Mode.REAL: 0xFFFFF, Mode.PROT16: 0xFFFFFFFF, Mode.PROT32: 0xFFFFFFFF, Mode.LONG64: (1 << 64) - 1}

Range = tuple[int, int, str, str]       # (start, end, module name, phase) of a module's code


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


def _containing_fv(root: Node, node: Node) -> Node | None:
    fvs = [n for n in root.walk() if n.kind == "fv" and n.space is node.space
           and n.offset <= node.offset < n.offset + n.size]
    return min(fvs, key=lambda n: n.size) if fvs else None


def compute_handoffs(root: Node, image_size: int) -> Handoffs:
    """Handoff points of an image's Node tree (inspector.image.load_image(...).root)."""
    h = Handoffs(image_size)
    flash_space = root.space
    for ffs in root.find("ffs"):
        pe = next((c for c in ffs.walk() if c.kind == "pe"), None)
        ftype, name = ffs.get("Type"), ffs.get("Name")
        fv = _containing_fv(root, ffs)
        if ftype == FFS_RAW and name == RESET_VECTOR_GUID and ffs.space is flash_space:
            start = h.flash_base + ffs.offset
            h.ranges.append((start, start + ffs.size, "ResetVector", Phase.RESET))
        if pe is None:
            continue
        if ftype == FFS_SECURITY_CORE and ffs.space is flash_space and h.sec_entry is None:
            h.sec_entry = pe.get("XipEntryPoint")
            if h.sec_entry is None:
                h.sec_entry = h.flash_base + pe.offset + (pe.get("AddressOfEntryPoint") or 0)
            h.sec_machine = pe.get("Machine")
            if fv is not None:
                h.bfv_base = h.flash_base + fv.offset
            m = _module(ffs, pe, Phase.SEC, fv)
            if m:
                h.modules[Phase.SEC] = m
            start = h.flash_base + pe.offset
            h.ranges.append((start, start + (pe.get("SizeOfImage") or pe.size), m.name if m else "SEC", Phase.SEC))
        elif fv is not None and fv.get("FvName") == PEIFV_GUID or (ftype == FFS_PEI_CORE and fv is not None):
            image_base = pe.get("ImageBase") or 0
            if ftype == FFS_PEI_CORE and h.pei_core_entry is None:
                # PEIFV is relocated at build time to its RAM base ([FD.MEMFD]), so the PE header's
                # ImageBase is where it runs, and ImageBase - (its offset in the FV) is the FV's base.
                h.pei_core_entry = image_base + (pe.get("AddressOfEntryPoint") or 0)
                h.peifv_ram_base = image_base - (pe.offset - fv.offset)
                h.peifv_size = fv.size
                m = _module(ffs, pe, Phase.PEI_CORE, fv)
                if m:
                    h.modules[Phase.PEI_CORE] = m
            phase = Phase.DXE_IPL if name == DXE_IPL_GUID else Phase.PEI_CORE
            if name == DXE_IPL_GUID:
                m = _module(ffs, pe, Phase.DXE_IPL, fv)
                if m:
                    h.modules[Phase.DXE_IPL] = m
            if image_base:
                ui = ffs.get("UI") or str(name).upper()
                h.ranges.append((image_base, image_base + (pe.get("SizeOfImage") or pe.size), ui, phase))
        elif ftype == FFS_DXE_CORE and Phase.DXE_CORE not in h.modules:
            m = _module(ffs, pe, Phase.DXE_CORE, fv)
            if m:
                h.modules[Phase.DXE_CORE] = m
                h.dxefv = fv
        elif name == BDS_DXE_GUID and Phase.BDS not in h.modules:
            m = _module(ffs, pe, Phase.BDS, fv)
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
