"""The boot's handoffs as the image shows them, offline: which of reset -> SEC -> PEI core -> DXE IPL
-> DXE core -> BDS an image has, and where each entry is known (a flash or build-time address, or
only at run time). One pass over the already-decoded tree (inspector.image), nothing re-decoded;
the live session's model (inspector.live.phases) builds on `scan`. Kept free of the live package
so that `fwinspect fd` does not pay for importing it.

- reset: the architectural reset vector, linear 0xFFFFFFF0 in real mode (Intel SDM vol. 3A 9.1.4),
  the top of OvmfPkg/ResetVector's raw file at the end of SECFV.
- sec: the SEC_CORE file (FFS type 3) of the flash; it runs in place, so its entry is a flash address
  (OvmfPkg/Sec/{Ia32,X64}/SecEntry.nasm, OvmfPkg/IntelTdx/Sec/X64/SecEntry.nasm).
- pei-core: PEIFV's PEI_CORE file (type 4). PEIFV is relocated at build time to the RAM address SEC
  decompresses it to (OvmfPkg/OvmfPkgX64.fdf [FD.MEMFD], PcdOvmfPeiMemFvBase), so ImageBase +
  AddressOfEntryPoint is its entry.
- dxe-ipl: the DxeIpl PEIM (MdeModulePkg/Core/DxeIplPeim), shadowed to RAM by the PEI core once
  memory is installed (MdeModulePkg/Core/Pei/Image/Image.c, PcdShadowPeimOnBoot): known at run time.
- dxe-core: DXEFV's DXE_CORE file (type 5), ImageBase 0 ([FV.DXEFV] FvForceRebase = FALSE): loaded at
  run time by DxeIpl's DxeLoadCore (MdeModulePkg/Core/DxeIplPeim/DxeLoad.c) or, without PEI, by SEC.
- bds: BdsDxe (MdeModulePkg/Universal/BdsDxe), dispatched by the DXE core.

TDVF Config-B (OvmfPkg/IntelTdx/IntelTdxX64.fdf) has no PEIFV: its SEC (OvmfPkg/IntelTdx/Sec/SecMain.inf,
its own FILE_GUID) ends SecCoreStartupWithStack in PeilessStartup (OvmfPkg/IntelTdx/Sec/SecMain.c),
which builds the HOB list, finds the DXE core in the compressed DXEFV and hands off to it
(OvmfPkg/Library/PeilessStartupLib/PeilessStartup.c, DxeLoad.c DxeLoadCore -> HandOffToDxeCore):
reset, sec, dxe-core, bds.
"""
from __future__ import annotations

import uuid

from decoders.model import Node

RESET_VECTOR = 0xFFFFFFF0
FOUR_GIB = 1 << 32
# Phase names: those of inspector.live.session_api.Phase (a StrEnum: members equal these strings).
RESET, SEC, PEI_CORE, DXE_IPL, DXE_CORE, BDS = "reset", "sec", "pei-core", "dxe-ipl", "dxe-core", "bds"

# FFS file types (PI vol. 3, 2.1.4.1; MdePkg/Include/Pi/PiFirmwareFile.h).
FFS_RAW, FFS_SECURITY_CORE, FFS_PEI_CORE, FFS_DXE_CORE = 0x01, 0x03, 0x04, 0x05
# FV names (OvmfPkg/OvmfPkgX64.fdf, OvmfPkg/IntelTdx/IntelTdxX64.fdf) and module FILE_GUIDs (their .inf).
PEIFV_GUID = uuid.UUID("6938079b-b503-4e3d-9d24-b28337a25806")
DXEFV_GUID = uuid.UUID("7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1")
NCCFV_GUID = uuid.UUID("ae047c6d-bce9-426c-ae03-a68e3b8a0488")      # IntelTdxX64.fdf [FV.NCCFV]
DXE_IPL_GUID = uuid.UUID("86d70125-baa3-4296-a62f-602bebbb9081")    # MdeModulePkg/Core/DxeIplPeim
DXE_CORE_GUID = uuid.UUID("d6a2cb7f-6a18-4e2f-b43b-9920a733700a")   # MdeModulePkg/Core/Dxe/DxeMain.inf
BDS_DXE_GUID = uuid.UUID("6d33944a-ec75-4855-a54d-809c75241f6c")    # MdeModulePkg/Universal/BdsDxe
RESET_VECTOR_GUID = uuid.UUID("1ba0062e-c779-4582-8566-336ae8f78f09")  # OvmfPkg/ResetVector/ResetVector.inf
PEILESS_SEC_GUID = uuid.UUID("69d96630-eb64-4b33-8491-13a5cf023dcf")  # OvmfPkg/IntelTdx/Sec/SecMain.inf


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class Found:
    """One FFS file with a PE image: the file, its first PE node and the volume holding it."""

    __slots__ = ("ffs", "pe", "fv")

    def __init__(self, ffs: Node, pe: Node | None, fv: Node | None):
        self.ffs, self.pe, self.fv = ffs, pe, fv

    @property
    def name(self) -> str:
        ui = self.ffs.get("UI")
        return ui if isinstance(ui, str) and ui else str(self.ffs.get("Name")).upper()

    @property
    def entry_rva(self) -> int:
        return _int(self.pe.get("AddressOfEntryPoint")) or 0


class ImageHandoffs:
    """What one pass over an image's tree found for the boot-phase model."""

    __slots__ = ("image_size", "flash_space", "files", "reset_vector", "sec", "pei_core", "dxe_ipl",
                 "dxe_core", "bds", "pei_modules", "nccfv")

    def __init__(self, image_size: int, flash_space):
        self.image_size = image_size
        self.flash_space = flash_space
        self.files: list[Found] = []            # every FFS file with a PE image, in tree order
        self.reset_vector: Node | None = None   # OvmfPkg/ResetVector's raw file, in flash
        self.sec = self.pei_core = self.dxe_ipl = self.dxe_core = self.bds = None
        self.pei_modules: list[Found] = []      # PE files in PEIFV (XIP at their build-time ImageBase)
        self.nccfv: Node | None = None

    @property
    def flash_base(self) -> int:
        return FOUR_GIB - self.image_size

    @property
    def sec_entry(self) -> int | None:
        if self.sec is None:
            return None
        xip = _int(self.sec.pe.get("XipEntryPoint"))
        return xip if xip is not None else self.flash_base + self.sec.pe.offset + self.sec.entry_rva

    @property
    def pei_core_entry(self) -> int | None:
        if self.pei_core is None:
            return None
        return (_int(self.pei_core.pe.get("ImageBase")) or 0) + self.pei_core.entry_rva

    @property
    def peiless(self) -> bool:
        """SEC without a PEI core: SEC hands off to the DXE core itself (TDVF Config-B)."""
        return self.sec is not None and self.pei_core is None

    def phases(self) -> list[str]:
        """The handoffs this image has, in boot order."""
        out = [RESET]
        if self.sec is not None:
            out.append(SEC)
        if self.pei_core is not None:
            out.append(PEI_CORE)
            if self.dxe_ipl is not None:
                out.append(DXE_IPL)
        if self.dxe_core is not None:
            out.append(DXE_CORE)
        if self.bds is not None:
            out.append(BDS)
        return out


def scan(root: Node, image_size: int) -> ImageHandoffs:
    """One pre-order walk of the tree: each FFS file with the nearest volume above it (in its own
    space) and the first PE below it (not inside a nested file), then the handoff modules."""
    h = ImageHandoffs(image_size, root.space)
    records: list[list] = []                     # [ffs, fv, pe] in pre-order
    stack: list[tuple[Node, Node | None, list | None]] = [(root, None, None)]
    while stack:
        node, fv, rec = stack.pop()
        kind = node.kind
        if kind == "fv":
            fv = node
            if node.get("FvName") == NCCFV_GUID and h.nccfv is None:
                h.nccfv = node
        elif kind == "ffs":
            rec = [node, fv if fv is not None and fv.space is node.space else None, None]
            records.append(rec)
        elif kind == "pe" and rec is not None and rec[2] is None:
            rec[2] = node
        if node.children:
            stack.extend((c, fv, rec) for c in reversed(node.children))
    for ffs, fv, pe in records:
        ftype, name = _int(ffs.get("Type")), ffs.get("Name")
        if ftype == FFS_RAW and name == RESET_VECTOR_GUID and ffs.space is h.flash_space and h.reset_vector is None:
            h.reset_vector = ffs
        if pe is None:
            continue
        f = Found(ffs, pe, fv)
        h.files.append(f)
        if ftype == FFS_SECURITY_CORE and ffs.space is h.flash_space:
            if h.sec is None:
                h.sec = f
        elif (fv is not None and fv.get("FvName") == PEIFV_GUID) or (ftype == FFS_PEI_CORE and fv is not None):
            h.pei_modules.append(f)
            if ftype == FFS_PEI_CORE and h.pei_core is None:
                h.pei_core = f
            if name == DXE_IPL_GUID and h.dxe_ipl is None:
                h.dxe_ipl = f
        elif ftype == FFS_DXE_CORE:
            if h.dxe_core is None:
                h.dxe_core = f
        elif name == BDS_DXE_GUID and h.bds is None:
            h.bds = f
    return h


# ---- the offline explanation: a "Boot phases" node for the image summary -----------------------

def _fv_name(f: Found) -> str:
    if f.fv is None:
        return "no volume"
    title = f.fv.title
    # "Volume DXEFV (7CB8...)" -> "DXEFV"; an unnamed volume's title starts with its GUID.
    return title[7:].split(" ")[0] if title.startswith("Volume ") and len(title) > 7 else title


def _phase_node(phase: str, title: str, f: Found | None, entry: int | None, where: str,
                space=None, offset: int = 0, size: int = 0) -> Node:
    if f is not None:
        space, offset, size = f.pe.space, f.pe.offset, f.pe.size
    n = Node("boot-phase", f"{phase}: {title}", space, offset, size)
    n.add("Phase", phase)
    if f is not None:
        n.add("Module", f.name)
        n.add("FileGuid", f.ffs.get("Name"))
        n.add("Volume", _fv_name(f))
        n.add("AddressOfEntryPoint", f.entry_rva, display=f"0x{f.entry_rva:x}")
    n.add("Entry", entry, display=f"0x{entry:x}" if entry is not None else "known at run time only")
    n.add("Where", where)
    return n


def boot_phases_node(h: ImageHandoffs) -> Node:
    """The handoffs of the image with where each entry is known, as a "boot-phases" node."""
    phases = h.phases()
    if h.sec is None:
        n = Node("boot-phases", "Boot phases: not known (no SEC_CORE file with a PE image in the flash)",
                 h.flash_space, 0, 0)
        n.add("Handoffs", [], display="none: without SEC the image cannot start a boot")
        return n
    flavour = " (no PEI: SEC hands off to the DXE core)" if h.peiless else ""
    n = Node("boot-phases", f"Boot phases: {' -> '.join(phases)}{flavour}", h.flash_space, 0, 0)
    n.add("Handoffs", phases, display=" -> ".join(phases))
    n.add("PEI", not h.peiless, display="PEI core present" if not h.peiless else
          "none: no PEI_CORE file in any volume")

    top = h.image_size - 16
    n.append(_phase_node(RESET, f"reset vector at 0x{RESET_VECTOR:x} (real mode)", None, RESET_VECTOR,
                         f"flash address 0x{RESET_VECTOR:x}: the image's last 16 bytes (file offset "
                         f"0x{top:x}), in OvmfPkg/ResetVector's file at the top of SECFV",
                         h.flash_space, max(top, 0), 16 if top >= 0 else 0))
    sec_entry = h.sec_entry
    n.append(_phase_node(SEC, f"{h.sec.name} entry 0x{sec_entry:x} (flash address: runs in place from {_fv_name(h.sec)})",
                         h.sec, sec_entry,
                         f"flash address 0x{sec_entry:x}: {h.sec.name} runs in place, PE image at file offset "
                         f"0x{h.sec.pe.offset:x} + AddressOfEntryPoint 0x{h.sec.entry_rva:x}"))
    if h.pei_core is not None:
        pc = h.pei_core
        entry = h.pei_core_entry
        n.append(_phase_node(PEI_CORE, f"{pc.name} entry 0x{entry:x} (RAM address: {_fv_name(pc)} is relocated at build time)",
                             pc, entry,
                             f"RAM address 0x{entry:x}: ImageBase 0x{_int(pc.pe.get('ImageBase')) or 0:x} + "
                             f"AddressOfEntryPoint 0x{pc.entry_rva:x}; {_fv_name(pc)} was relocated at build "
                             f"time to where SEC decompresses it (PcdOvmfPeiMemFvBase)"))
        if h.dxe_ipl is not None:
            n.append(_phase_node(DXE_IPL, f"{h.dxe_ipl.name}, loaded at run time", h.dxe_ipl, None,
                                 "loaded at run time: the PEI core shadows the PEIM to RAM once memory is "
                                 "installed (MdeModulePkg/Core/Pei/Image/Image.c)"))
    if h.dxe_core is not None:
        dc = h.dxe_core
        if h.pei_core is not None:
            loader = "DxeIpl's DxeLoadCore (MdeModulePkg/Core/DxeIplPeim/DxeLoad.c)"
        elif h.sec.ffs.get("Name") == PEILESS_SEC_GUID:
            loader = ("SEC's PeilessStartup (OvmfPkg/Library/PeilessStartupLib/DxeLoad.c DxeLoadCore), from "
                      "the DXEFV it decompresses into pages allocated at run time, from the top of memory "
                      "below 4 GiB down (EmbeddedPkg/Library/PrePiLib/FwVol.c FfsProcessSection)")
        else:
            loader = "SEC (no PEI core in the image)"
        n.append(_phase_node(DXE_CORE, f"{dc.name}, loaded at run time from {_fv_name(dc)}", dc, None,
                             f"loaded at run time by {loader}: ImageBase "
                             f"0x{_int(dc.pe.get('ImageBase')) or 0:x} in {_fv_name(dc)}, entry = load address "
                             f"+ 0x{dc.entry_rva:x}; RCX holds the HOB list at entry"))
    if h.bds is not None:
        n.append(_phase_node(BDS, f"{h.bds.name}, loaded at run time from {_fv_name(h.bds)}", h.bds, None,
                             f"loaded at run time by the DXE core's dispatcher, entry = load address "
                             f"+ 0x{h.bds.entry_rva:x}"))
    if h.peiless:
        if h.sec.ffs.get("Name") == PEILESS_SEC_GUID:
            text = ("no PEI phase: SEC's PeilessStartup (OvmfPkg/IntelTdx/Sec/SecMain.c, "
                    "OvmfPkg/Library/PeilessStartupLib) builds the HOB list and hands off to the DXE core: "
                    "no PEI core, no DXE IPL (TDVF Config-B)")
        else:
            text = "no PEI phase: no PEI_CORE file in any volume, so no PEI core and no DXE IPL handoff"
        note = Node("boot-phase-note", text, h.flash_space, 0, 0)
        note.add("SecFileGuid", h.sec.ffs.get("Name"))
        n.append(note)
    if h.nccfv is not None:
        note = Node("boot-phase-note", "NCCFV: DXE drivers the DXE core loads only outside a TD "
                    "(OvmfPkg/IntelTdx/README.md; PeilessStartupLib DxeLoad.c FindDxeNonCc)",
                    h.nccfv.space, h.nccfv.offset, h.nccfv.size)
        note.add("FvName", NCCFV_GUID)
        n.append(note)
    return n


__all__ = ["ImageHandoffs", "Found", "scan", "boot_phases_node", "PEILESS_SEC_GUID"]
