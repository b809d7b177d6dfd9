"""The boot-phase model: handoff points computed from the image, and phase classification by RIP.

Nothing here is hard-coded per edk2 version (DESIGN.md "Live sessions and the boot phases";
FACTS C.2.1, C.2.2):

- reset: the architectural reset vector, linear 0xFFFFFFF0 in real mode (Intel SDM vol. 3A 9.1.4).
- sec: SECFV's SEC_CORE file (FFS type 3) -> PE32 -> XipEntryPoint (flash is mapped so that the
  image's last byte sits at 4 GiB - 1). IA32 and X64 SEC alike (OvmfPkg/Sec/{Ia32,X64}/SecEntry.nasm).
- pei-core: PEIFV's PEI_CORE file (type 4). PEIFV modules are XIP and build-time relocated to the
  RAM address SEC decompresses PEIFV to (PcdOvmfPeiMemFvBase), so ImageBase + AddressOfEntryPoint
  is the runtime entry; only the first, pre-memory entry is ever hit (PeiMain.c ShadowPeiCore).
- dxe-ipl, dxe-core, bds: these modules are *loaded* (DxeIpl is shadowed to RAM, PcdShadowPeimOnBoot;
  DxeCore and BdsDxe have ImageBase 0 in DXEFV), so their entry is only known at run time. The
  session finds them by following copies of the module (session.py `_follow`): a read watchpoint
  on the entry bytes of the module's known copy fires when the loader copies it; the copy's PE
  header is then found near a register, and a breakpoint goes on the copy's entry.

TDVF Config-B has no PEIFV (SEC -> PeilessStartup -> DxeCore, OvmfPkg/IntelTdx/Sec/SecMain.c):
pei-core and dxe-ipl are then simply absent from the handoff list.
"""
from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field
from functools import lru_cache

from construct import Int16ul, Int32ul, Int64ul, Padding, Struct

from decoders import guids
from decoders.errors import parse_at
from decoders.fields import add_fields, read_fields
from decoders.memory import Memory, Unreadable
from decoders.model import Node, Space
from inspector.live.session_api import PHASES
from inspector.live.target import Registers

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

ADDRESS_MASK = {"real": 0xFFFFF, "prot16": 0xFFFFFFFF, "prot32": 0xFFFFFFFF, "long64": (1 << 64) - 1}


@dataclass
class Module:
    """A PE module of the image: where it is in flash/FV, and how to recognise a copy of it."""

    name: str                    # FFS UI name, else the file GUID
    guid: uuid.UUID
    phase: str                   # the phase its code belongs to
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
    """What the image says about the boot's handoff points (FACTS C.2.2)."""

    image_size: int
    sec_entry: int | None = None
    sec_machine: int | None = None
    bfv_base: int | None = None           # SECFV base in flash: what the reset vector puts in EBP/RBP
    pei_core_entry: int | None = None
    peifv_ram_base: int | None = None     # where SEC decompresses PEIFV (PcdOvmfPeiMemFvBase)
    peifv_size: int | None = None
    dxefv: Node | None = None
    modules: dict[str, Module] = field(default_factory=dict)   # "sec", "pei-core", "dxe-ipl", ...
    ranges: list[tuple[int, int, str, str]] = field(default_factory=list)   # static (start, end, name, phase)
    problems: list[str] = field(default_factory=list)

    @property
    def flash_base(self) -> int:
        return FOUR_GIB - self.image_size

    def phases(self) -> list[str]:
        """The handoffs this image has, in boot order (Config-B TDVF: no pei-core/dxe-ipl)."""
        out = ["reset"]
        if self.sec_entry is not None:
            out.append("sec")
        if self.pei_core_entry is not None:
            out.append("pei-core")
        if "dxe-ipl" in self.modules and self.peifv_ram_base is not None:
            out.append("dxe-ipl")
        if "dxe-core" in self.modules:
            out.append("dxe-core")
        if "bds" in self.modules:
            out.append("bds")
        return out

    def static_entry(self, phase: str) -> int | None:
        return {"reset": RESET_VECTOR, "sec": self.sec_entry, "pei-core": self.pei_core_entry}.get(phase)


def _module(ffs: Node, pe: Node, phase: str, fv: Node | None) -> Module | None:
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
            h.ranges.append((start, start + ffs.size, "ResetVector", "reset"))
        if pe is None:
            continue
        if ftype == FFS_SECURITY_CORE and ffs.space is flash_space and h.sec_entry is None:
            h.sec_entry = pe.get("XipEntryPoint")
            if h.sec_entry is None:
                h.sec_entry = h.flash_base + pe.offset + (pe.get("AddressOfEntryPoint") or 0)
            h.sec_machine = pe.get("Machine")
            if fv is not None:
                h.bfv_base = h.flash_base + fv.offset
            m = _module(ffs, pe, "sec", fv)
            if m:
                h.modules["sec"] = m
            start = h.flash_base + pe.offset
            h.ranges.append((start, start + (pe.get("SizeOfImage") or pe.size), m.name if m else "SEC", "sec"))
        elif fv is not None and fv.get("FvName") == PEIFV_GUID or (ftype == FFS_PEI_CORE and fv is not None):
            image_base = pe.get("ImageBase") or 0
            if ftype == FFS_PEI_CORE and h.pei_core_entry is None:
                # FACTS C.2.2: PEIFV is relocated at build time to its RAM base, so the PE header's
                # ImageBase is where it runs, and ImageBase - (its offset in the FV) is the FV's base.
                h.pei_core_entry = image_base + (pe.get("AddressOfEntryPoint") or 0)
                h.peifv_ram_base = image_base - (pe.offset - fv.offset)
                h.peifv_size = fv.size
                m = _module(ffs, pe, "pei-core", fv)
                if m:
                    h.modules["pei-core"] = m
            phase = "dxe-ipl" if name == DXE_IPL_GUID else "pei-core"
            if name == DXE_IPL_GUID:
                m = _module(ffs, pe, "dxe-ipl", fv)
                if m:
                    h.modules["dxe-ipl"] = m
            if image_base:
                ui = ffs.get("UI") or str(name).upper()
                h.ranges.append((image_base, image_base + (pe.get("SizeOfImage") or pe.size), ui, phase))
        elif ftype == FFS_DXE_CORE and "dxe-core" not in h.modules:
            m = _module(ffs, pe, "dxe-core", fv)
            if m:
                h.modules["dxe-core"] = m
                h.dxefv = fv
        elif name == BDS_DXE_GUID and "bds" not in h.modules:
            m = _module(ffs, pe, "bds", fv)
            if m:
                h.modules["bds"] = m
    if h.sec_entry is None:
        h.problems.append("no SEC_CORE file (FFS type 3) with a PE32 image in the flash")
    if h.pei_core_entry is None:
        h.problems.append("no PEI_CORE file: a PEI-less image (TDVF Config-B) or no PEIFV")
    if "dxe-core" not in h.modules:
        h.problems.append("no DXE_CORE file (FFS type 5) with a PE32 image")
    return h


# ---- classification ---------------------------------------------------------------------------

def mode_of(regs: Registers) -> str:
    """`real`, `prot16`, `prot32` or `long64` (CR0.PE, EFER.LMA, CS.L/D; FACTS C.1.4)."""
    return regs.mode


def classify(linear_rip: int, mode: str, ranges: list[tuple[int, int, str, str]],
             last_handoff: str | None = None) -> tuple[str, str | None]:
    """(phase, module name) of a linear RIP: the module range it is in (static XIP ranges of the
    image and modules found at run time), else real mode means the reset vector, else the last
    handoff reached, else "unknown"."""
    for start, end, name, phase in ranges:
        if start <= linear_rip < end:
            return phase, name
    if mode == "real":
        return "reset", None
    if last_handoff in PHASES:
        return last_handoff, None
    return "unknown", None


def phase_index(phase: str) -> int:
    return PHASES.index(phase) if phase in PHASES else -1


# ---- what is handed over at each entry (PI spec vol. 1; decoders are pure, over a Memory) ---------

# EFI_PEI_PPI_DESCRIPTOR.Flags (MdePkg/Include/Pi/PiPeiCis.h).
EFI_PEI_PPI_DESCRIPTOR_PPI = 0x10
EFI_PEI_PPI_DESCRIPTOR_NOTIFY_CALLBACK = 0x20
EFI_PEI_PPI_DESCRIPTOR_NOTIFY_DISPATCH = 0x40
EFI_PEI_PPI_DESCRIPTOR_TERMINATE_LIST = 0x80000000
# SEC hands PEI a handful of PPIs (OvmfPkg/Sec/SecMain.c mPrivateDispatchTable: 1-3); a list that
# does not terminate within this many is garbage.
MAX_PPIS = 64


def _uintn(width: int):
    return Int64ul if width == 8 else Int32ul


@lru_cache(maxsize=None)
def EFI_SEC_PEI_HAND_OFF(width: int) -> Struct:
    """PI spec vol. 1, 6.3 (MdePkg/Include/Pi/PiPeiCis.h): DataSize is a UINT16, the pointers and
    sizes that follow are UINTN-aligned (36 bytes on IA32, 72 on X64)."""
    u = _uintn(width)
    return Struct(
        "DataSize" / Int16ul,
        Padding(width - 2),
        "BootFirmwareVolumeBase" / u,
        "BootFirmwareVolumeSize" / u,
        "TemporaryRamBase" / u,
        "TemporaryRamSize" / u,
        "PeiTemporaryRamBase" / u,
        "PeiTemporaryRamSize" / u,
        "StackBase" / u,
        "StackSize" / u,
    )


@lru_cache(maxsize=None)
def EFI_PEI_PPI_DESCRIPTOR(width: int) -> Struct:
    """PiPeiCis.h: UINTN Flags; EFI_GUID *Guid; VOID *Ppi."""
    u = _uintn(width)
    return Struct("Flags" / u, "Guid" / u, "Ppi" / u)


def _hex(v: int) -> str:
    return f"0x{v:x}"


def decode_sec_pei_handoff(mem: Memory, address: int, width: int) -> Node:
    """EFI_SEC_PEI_HAND_OFF at `address` (kind "sec-pei-handoff")."""
    st = EFI_SEC_PEI_HAND_OFF(width)
    node = Node("sec-pei-handoff", f"EFI_SEC_PEI_HAND_OFF at 0x{address:x}")
    hex_fields = ("BootFirmwareVolumeBase", "BootFirmwareVolumeSize", "TemporaryRamBase", "TemporaryRamSize",
                  "PeiTemporaryRamBase", "PeiTemporaryRamSize", "StackBase", "StackSize")
    p = read_fields(node, mem, address, st, "EFI_SEC_PEI_HAND_OFF", displays=dict.fromkeys(hex_fields, _hex))
    if p is None:
        return node
    if p.DataSize != st.sizeof():
        node.warn(0, f"DataSize {p.DataSize}, sizeof(EFI_SEC_PEI_HAND_OFF) is {st.sizeof()} with "
                     f"{width * 8}-bit pointers")
    for base, size, what in (("TemporaryRamBase", "TemporaryRamSize", "temporary RAM"),
                             ("PeiTemporaryRamBase", "PeiTemporaryRamSize", "PEI temporary RAM"),
                             ("StackBase", "StackSize", "stack")):
        if p[base] + p[size] > 1 << (width * 8):
            node.problem(0, f"{what} {base} + {size} wraps past the address space")
    node.title = (f"EFI_SEC_PEI_HAND_OFF: BFV 0x{p.BootFirmwareVolumeBase:x} +0x{p.BootFirmwareVolumeSize:x}, "
                  f"temp RAM 0x{p.TemporaryRamBase:x} +0x{p.TemporaryRamSize:x}")
    return node


def decode_ppi_list(mem: Memory, address: int, width: int, max_ppis: int = MAX_PPIS) -> Node:
    """EFI_PEI_PPI_DESCRIPTOR array at `address` up to the one with TERMINATE_LIST (kind "ppi-list",
    children "ppi-descriptor" with the GUID read and named)."""
    st = EFI_PEI_PPI_DESCRIPTOR(width)
    size = st.sizeof()
    root = Node("ppi-list", f"PPI list at 0x{address:x}")
    for i in range(max_ppis):
        at = address + i * size
        d = Node("ppi-descriptor", f"EFI_PEI_PPI_DESCRIPTOR at 0x{at:x}")
        try:
            raw = mem.read(at, size)
        except Unreadable as e:
            root.problem(None, f"descriptor {i} at 0x{at:x} not readable: {e}")
            break
        d.space, d.size = Space(f"EFI_PEI_PPI_DESCRIPTOR@0x{at:x}", raw, at), size
        p = parse_at(st, raw, 0)
        flags = [n for bit, n in ((EFI_PEI_PPI_DESCRIPTOR_PPI, "PPI"),
                                  (EFI_PEI_PPI_DESCRIPTOR_NOTIFY_CALLBACK, "NOTIFY_CALLBACK"),
                                  (EFI_PEI_PPI_DESCRIPTOR_NOTIFY_DISPATCH, "NOTIFY_DISPATCH"),
                                  (EFI_PEI_PPI_DESCRIPTOR_TERMINATE_LIST, "TERMINATE_LIST")) if p.Flags & bit]
        add_fields(node=d, struct=st, parsed=p, offset=0,
                   displays={"Flags": f"0x{p.Flags:x} ({'|'.join(flags) or 'none'})", "Guid": _hex, "Ppi": _hex})
        try:
            guid = guids.from_bytes(mem.read(p.Guid, 16))
            d.add("GuidValue", guid, None, None, guids.describe(guid))
            d.title = f"{guids.name(guid) or str(guid).upper()} -> 0x{p.Ppi:x}"
        except Unreadable as e:
            d.problem(width, f"Guid pointer 0x{p.Guid:x} not readable: {e}")
        if not p.Flags & (EFI_PEI_PPI_DESCRIPTOR_PPI | EFI_PEI_PPI_DESCRIPTOR_NOTIFY_CALLBACK
                          | EFI_PEI_PPI_DESCRIPTOR_NOTIFY_DISPATCH):
            d.warn(0, f"Flags 0x{p.Flags:x} name neither a PPI nor a notification")
        root.append(d)
        if p.Flags & EFI_PEI_PPI_DESCRIPTOR_TERMINATE_LIST:
            break
    else:
        root.problem(None, f"no TERMINATE_LIST flag within {max_ppis} descriptors")
    root.add("Count", len(root.children))
    root.title = f"PPI list at 0x{address:x}: {len(root.children)} descriptors"
    return root


# ---- breakpoints by module (issue 5 item 3: "breakpoints by address or by module + offset") ------

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
    ImageBase; only PEIMs dispatched before memory discovery run there, FACTS C.2.2). Modules with
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


def read_uintn(mem: Memory, address: int, width: int) -> int:
    return int.from_bytes(mem.read(address, width), "little")


__all__ = ["Breakpoint", "parse_breakpoint", "Handoffs", "Module", "compute_handoffs", "classify", "mode_of", "decode_sec_pei_handoff",
           "decode_ppi_list", "EFI_SEC_PEI_HAND_OFF", "EFI_PEI_PPI_DESCRIPTOR"]
