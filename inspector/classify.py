"""What kind of image this is, with the evidence for each answer.

Answers: layout (unified CODE+VARS, CODE-only, VARS-only, a bare FV), architecture of SEC and
DXE (X64 or IA32X64), TDX (metadata present; Config-A with PEI, or Config-B's PEI-less start),
AMD SEV (SEV-ES reset block, SEV metadata, secret area), Secure Boot keys in the variable store,
SMM. Each answer names what it was read from, so a user can check it in the tree.
"""
from __future__ import annotations

import uuid

from decoders import guids
from decoders.model import Node

NV_FV = guids.gEfiSystemNvDataFvGuid
PEIFV = uuid.UUID("6938079b-b503-4e3d-9d24-b28337a25806")       # OvmfPkgX64.fdf [FV.PEIFV]
DXE_CORE = uuid.UUID("d6a2cb7f-6a18-4e2f-b43b-9920a733700a")    # MdeModulePkg/Core/Dxe/DxeMain.inf
FILE_TYPES = {0x03: "SEC_CORE", 0x04: "PEI_CORE", 0x05: "DXE_CORE", 0x0D: "MM_CORE"}
MACHINES = {0x014C: "IA32", 0x8664: "X64", 0xAA64: "AARCH64", 0x0EBC: "EBC"}
# UI names that tell a build apart (OvmfPkg/*.fdf): measured boot, SMM, Secure Boot, TDX. (Config-B's
# PeilessStartupLib is a library linked into SEC, not a file: Config-B shows as the absence of PEI.)
TELLTALE_MODULES = {
    "TdTcg2Dxe": "TDX measured boot (RTMR/CCEL)",
    "Tcg2Dxe": "TPM 2.0 measured boot",
    "PiSmmCore": "SMM",
    "SecureBootConfigDxe": "Secure Boot configuration",
    "AmdSevDxe": "AMD SEV",
    "TdxDxe": "TDX",
}
SECURE_BOOT_VARIABLES = ("PK", "KEK", "db", "dbx")


def _file_type(node: Node) -> int | None:
    t = node.get("Type")
    return t if isinstance(t, int) else None


def _machine_of(ffs: Node) -> str | None:
    for n in ffs.walk():
        if n.kind in ("pe", "te"):
            m = n.get("Machine")
            if isinstance(m, int):
                return MACHINES.get(m, f"0x{m:x}")
    return None


def _ui_name(ffs: Node) -> str | None:
    for n in ffs.walk():
        if n.kind == "section" and n.get("String") and n.get("Type") == 0x15:
            return n.get("String")
    return None


def classify(root: Node, image_size: int) -> Node:
    info = Node("image-info", "Image summary", root.space, 0, image_size)
    fvs = [n for n in root.children if n.kind == "fv"]
    nv = [n for n in fvs if n.get("FileSystemGuid") == NV_FV]
    code = [n for n in fvs if n.get("FileSystemGuid") != NV_FV]
    if nv and code:
        layout = "unified (VARS + CODE)"
    elif code:
        layout = "CODE only (variables in a separate VARS file)"
    elif nv:
        layout = "VARS only"
    else:
        layout = "no firmware volume found"
    info.add("Layout", layout, display=f"{layout}: {len(nv)} NV store, {len(code)} code volume(s)")

    cores: dict[str, str] = {}
    modules: dict[str, str] = {}
    has_peifv = False
    for n in root.walk():
        if n.kind == "fv" and n.get("FvName") == PEIFV:
            has_peifv = True
        if n.kind != "ffs":
            continue
        t = _file_type(n)
        if t in FILE_TYPES and FILE_TYPES[t] not in cores:
            m = _machine_of(n)
            if m:
                cores[FILE_TYPES[t]] = m
        ui = _ui_name(n)
        if ui in TELLTALE_MODULES:
            modules[ui] = TELLTALE_MODULES[ui]
    for core, machine in cores.items():
        info.add(f"{core}.Machine", machine)
    sec, dxe = cores.get("SEC_CORE"), cores.get("DXE_CORE")
    if sec and dxe:
        arch = dxe if sec == dxe else f"{sec}{dxe}"
        info.add("Architecture", arch, display=f"{arch} (SEC {sec}, DXE {dxe})")
    elif sec or dxe:
        info.add("Architecture", sec or dxe, display=f"{sec or dxe} (from the {'SEC' if sec else 'DXE'} core only)")

    tdx = next(root.find("tdx-metadata"), None)
    if tdx is not None:
        # OvmfPkg/IntelTdx/README.md: Config-A (OvmfPkgX64.dsc) keeps PEI; Config-B
        # (IntelTdx/IntelTdxX64.fdf) has no PEIFV, its SEC hands off to the DXE core (PeilessStartup).
        has_pei = has_peifv or "PEI_CORE" in cores
        flavour = ("Config-A (PEI present)" if has_pei else
                   "Config-B (PEI-less: no PEIFV, no PEI_CORE file)" if code else "unknown")
        info.add("TDX", True, display=f"TDX metadata present; {flavour}")
        layout_note = tdx.get("ImageLayout")
        if layout_note:
            info.add("TDX.ImageLayout", layout_note)
    else:
        info.add("TDX", False, display="no TDX metadata (not a TDVF image)")

    sev_bits = []
    if next(root.find("sev-metadata"), None) is not None:
        sev_bits.append("SEV-SNP metadata")
    for entry in root.find("ovmf-guid-entry"):
        title = entry.title.lower()
        if "sev-es" in title:
            sev_bits.append("SEV-ES AP reset block")
        if "secret" in title and entry.get("Size"):
            sev_bits.append("SEV launch secret area")
    info.add("SEV", bool(sev_bits), display=", ".join(sev_bits) if sev_bits else "no SEV metadata")

    live = {n.get("Name") for n in root.find("variable") if n.get("IsLive", True) and "deleted" not in n.title}
    keys = [v for v in SECURE_BOOT_VARIABLES if v in live]
    if nv:
        info.add("SecureBootKeys", bool(keys),
                 display=f"enrolled: {', '.join(keys)}" if keys else "no PK/KEK/db/dbx in the variable store")
    for ui, what in sorted(modules.items()):
        info.add(f"Module.{ui}", what)
    return info
