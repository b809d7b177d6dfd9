"""`platform-config`: what platform the image is built for, each answer tied to its evidence.

- PEI or not: OvmfPkg/IntelTdx/README.md: Config-A (OvmfPkgX64) keeps PEI; Config-B
  (IntelTdx/IntelTdxX64.fdf) has no PEIFV and no PEI core, its SEC hands off to DXE
  (PeilessStartupLib).
- Architecture: the PE/TE Machine of the SEC and DXE cores (PE/COFF spec "Machine Types":
  0x14c IA32, 0x8664 X64): IA32X64 is OvmfPkgIa32X64 (32-bit SEC/PEI).
- CC technologies: the TDX metadata (OvmfPkg/ResetVector/X64/TdxMetadata.asm, "TDVF"), the SEV
  metadata (OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm, for SEV-SNP) and the SEV-ES AP reset
  block (OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm SEV_ES_RESET_BLOCK_GUID) in the reset
  vector's GUIDed table.
"""
from __future__ import annotations

import uuid

from inspector.review.base import Context, evidence, file_evidence, finding, undecided

SEV_ES_RESET_BLOCK = uuid.UUID("00f771de-1a7e-4fcb-890e-68c77e2fb44e")   # ResetVectorVtf0.asm
PEIFV = uuid.UUID("6938079b-b503-4e3d-9d24-b28337a25806")                # OvmfPkgX64.fdf [FV.PEIFV] FvNameGuid
MACHINES = {0x014C: "IA32", 0x8664: "X64", 0xAA64: "AARCH64", 0x0EBC: "EBC"}


def _machine(ctx: Context, file_type: int):
    """(machine name, its pe/te node) of the first file of `file_type` with an image."""
    for f in ctx.files:
        if f.type != file_type:
            continue
        for n in f.node.walk():
            if n.kind in ("pe", "te") and isinstance(n.get("Machine"), int):
                m = n.get("Machine")
                return MACHINES.get(m, f"0x{m:x}"), n, f
    return None, None, None


def platform_config(ctx: Context) -> list:
    rule = "platform-config"
    if not ctx.files and ctx.tdx_metadata is None and ctx.sev_metadata is None and not ctx.guid_entries:
        return [undecided(rule, "no firmware files and no reset-vector table: " + (ctx.module_list_gap() or ""))]
    ev = []
    parts = []
    # PEI
    pei_files = [f for f in ctx.files if f.type == 0x04]
    peifv = [v for v in ctx.fvs if v.get("FvName") == PEIFV]
    has_pei = bool(pei_files or peifv)
    for f in pei_files[:1]:
        ev += file_evidence(f, "PEI core")
    for v in peifv[:1]:
        ev.append(evidence(v, "PEI volume", FvName=v.get("FvName")))
    gap = ctx.module_list_gap()
    if ctx.tdx_metadata is not None:
        if has_pei:
            pei_text = "TDX Config-A (PEI present)"
        elif gap:
            pei_text = f"TDX Config-A or B: cannot tell ({gap})"
        else:
            pei_text = "TDX Config-B (PEI-less: no PEI core, no PEIFV)"
    else:
        pei_text = "PEI present" if has_pei else ("PEI: cannot tell" if gap else "PEI-less")
    parts.append(pei_text)
    # architecture
    sec, sec_pe, sec_file = _machine(ctx, 0x03)
    dxe, dxe_pe, dxe_file = _machine(ctx, 0x05)
    for m, pe, f, what in ((sec, sec_pe, sec_file, "SEC core image"), (dxe, dxe_pe, dxe_file, "DXE core image")):
        if pe is not None:
            ev.append(evidence(pe, what, Machine=m, FileGuid=f.guid, UiName=f.ui))
    if sec and dxe:
        arch = dxe if sec == dxe else f"{sec}{dxe}"
        parts.append(f"{arch} (SEC {sec}, DXE {dxe})")
    else:
        arch = None
        parts.append(f"architecture: cannot tell (SEC {sec or 'not found'}, DXE {dxe or 'not found'})")
    # CC technologies
    cc = []
    if ctx.tdx_metadata is not None:
        cc.append("TDX (TDX metadata)")
        ev.append(evidence(ctx.tdx_metadata, "TDX metadata"))
    sev_bits = []
    if ctx.sev_metadata is not None:
        sev_bits.append("SEV-SNP metadata")
        ev.append(evidence(ctx.sev_metadata, "SEV metadata"))
    for e in ctx.guid_entries:
        if e.get("Guid") == SEV_ES_RESET_BLOCK:
            sev_bits.append("SEV-ES AP reset block")
            ev.append(evidence(e, "SEV-ES AP reset block", Guid=e.get("Guid")))
            break
    if sev_bits:
        cc.append(f"SEV ({', '.join(sev_bits)})")
    if cc:
        parts.append("built for " + " and ".join(cc))
    elif ctx.guid_table is None and ctx.image_problems:
        # The metadata hangs off the reset vector's GUIDed table (the image's last bytes): absent from
        # a damaged image, it says nothing about what the build supports.
        parts.append("CC technologies: cannot tell (no reset-vector GUIDed table in this damaged image)")
    else:
        parts.append("built for no confidential-computing technology")
    out = [finding(rule, "info", "; ".join(parts), ev, Pei=has_pei, Architecture=arch,
                   Tdx=ctx.tdx_metadata is not None, SevSnp=ctx.sev_metadata is not None,
                   SevEs="SEV-ES AP reset block" in sev_bits)]
    # The profile asked for against what the image is built for.
    if ctx.profile == "tdx" and ctx.tdx_metadata is None:
        out.append(finding(rule, "warning", "profile tdx, but the image has no TDX metadata: a TDX VMM cannot "
                           "launch it as a TD", ev[:1]))
    if ctx.profile == "sev" and not sev_bits:
        out.append(finding(rule, "warning", "profile sev, but the image has neither SEV metadata nor an SEV-ES "
                           "AP reset block: it cannot start SEV-ES/SNP guests", ev[:1]))
    return out
