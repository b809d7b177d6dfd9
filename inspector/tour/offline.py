"""The offline chapters of a tour: what the flash image holds and what a VMM does with it, told with
this image's values (inspector.tour.model: every number comes from a node of the decoded image).

Chapters, in order: "flash-image" (the volumes: the NV store, FVMAIN_COMPACT and what it
decompresses to, SECFV at the top of 4 GiB, the boot phases the image has), "reset-vector-table"
(the OVMF GUIDed table at the end of the image), "tdx-metadata" and "mrtd" for TDVF images,
"sev-metadata" when the image has an SEV descriptor, and "config-a-vs-b" (with PEI or PEI-less).

Sources of the explanations:
- the layout: OvmfPkg/OvmfPkgX64.fdf and OvmfPkg/IntelTdx/IntelTdxX64.fdf ([FD.OVMF], [FV.FVMAIN_COMPACT],
  [FV.SECFVMAIN]); an image's last byte is at 4 GiB - 1 (QEMU hw/i386/pc_sysfw.c maps the flash
  below 4 GiB);
- the GUIDed table: OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.nasm.inc, read by QEMU
  hw/i386/pc_sysfw_ovmf.c;
- the TDVF sections: OvmfPkg/ResetVector/X64/IntelTdxMetadata.asm (BFV with
  TDX_METADATA_ATTRIBUTES_EXTENDMR, CFV/TempMem/TD_HOB with 0), the Intel TDX Virtual Firmware
  Design Guide (344991, "TDVF Metadata"), and how QEMU acts on them: target/i386/kvm/tdx.c adds every
  section with KVM_TDX_INIT_MEM_REGION (TDH.MEM.PAGE.ADD) and measures those with MR.EXTEND
  (KVM_TDX_MEASURE_MEMORY_REGION, TDH.MR.EXTEND), writes the TD HOB (hw/i386/tdvf-hob.c) and
  reports TempMem and TD_HOB as accepted memory in it;
- the MRTD: decoders/mrtd.py (its header cites the TDX module ABI and td-shim);
- SEV: OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm, QEMU target/i386/sev.c (SNP_LAUNCH_UPDATE
  of each section by type);
- Config-A/B: OvmfPkg/IntelTdx/README.md.
"""
from __future__ import annotations

from decoders.model import Node
from inspector.tour.model import Chapter, Value, Writer

# What each TDVF section type is for (IntelTdxMetadata.asm's comments; TDVF Design Guide, "TDVF
# Metadata"). What the VMM does is told from the section's Attributes, not from this table.
TDX_ROLES = {
    "BFV": "the boot firmware volume: the code the TD runs first (the reset vector, SEC and the "
           "compressed volumes), copied from the image",
    "CFV": "the configuration firmware volume: the variable store, copied from the image; TDVF "
           "measures it into RTMR0 itself, it is not part of MRTD",
    "TD_HOB": "where the VMM writes the TD HOB, the list of the TD's memory that TDVF reads first "
              "(QEMU hw/i386/tdvf-hob.c); TDVF measures it into RTMR0",
    "TempMem": "temporary memory for SEC before memory is known (stack, heap, mailbox, work area, "
               "page tables): zero pages the VMM adds, so the TD uses them without accepting them",
    "PermMem": "permanent memory the VMM adds after the TD starts (PAGE.AUG); TDVF accepts it",
}
# What each SEV-SNP section is for (OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm; QEMU
# target/i386/sev.c snp_launch_update_data and its callers).
SEV_ROLES = {
    "SNP_SEC_MEM": "memory SEC uses before it can validate pages itself: the VMM pre-validates it",
    "SNP_SECRETS": "the secrets page the AMD secure processor fills at launch",
    "CPUID": "the CPUID page: the VMM fills it and the secure processor checks it",
    "SVSM_CAA": "the calling area of an SVSM, when one runs below the firmware",
    "KERNEL_HASHES": "the hashes of a directly booted kernel, initrd and command line",
}


def short(text: str) -> str:
    """"PEIFV (6938079B-...)" -> "PEIFV": a GUID field's name without the GUID."""
    return text.split(" (", 1)[0]


def offline_chapters(image) -> list[Chapter]:
    """The offline chapters for `image` (inspector.image.LoadedImage)."""
    name = image.path.name
    chapters = [flash_chapter(image, name), table_chapter(image, name)]
    meta = image.tdx_metadata()
    if meta is not None:
        chapters.append(tdx_chapter(image, meta, name))
        chapters.append(mrtd_chapter(image, meta, name))
    sev = next(image.root.find("sev-metadata"), None)
    if sev is not None:
        chapters.append(sev_chapter(image, sev, name))
    chapters.append(config_chapter(image, name))
    return chapters


# ---- helpers over the tree -----------------------------------------------------------------------

def _volumes(root: Node) -> list[Node]:
    return [c for c in root.children if c.kind == "fv"]


def _fv_named(nodes, name: str) -> Node | None:
    for n in nodes:
        f = n.field("FvName")
        if n.kind == "fv" and f is not None and short(f.text) == name:
            return n
    return None


def _boot_phases(info: Node) -> Node | None:
    return next((c for c in info.children if c.kind == "boot-phases"), None)


def _phase(phases: Node | None, phase: str) -> Node | None:
    if phases is None:
        return None
    return next((c for c in phases.children if c.kind == "boot-phase" and c.get("Phase") == phase), None)


def _size(w: Writer, name: str, node: Node) -> Value:
    return w.value(name, node.size, node, text=f"0x{node.size:x}")


def _address(w: Writer, name: str, node: Node) -> Value:
    return w.value(name, node.address, node, text=f"0x{node.address:x}")


def _compressed_sections(fv: Node) -> list[Node]:
    """The GUID_DEFINED sections with a decompressed space directly below `fv`'s files."""
    out = []
    for ffs in fv.children:
        if ffs.kind != "ffs":
            continue
        for sec in ffs.children:
            if sec.kind == "section" and sec.get("DecompressedSize") is not None:
                out.append(sec)
    return out


def _inner_volumes(section: Node) -> list[Node]:
    """The volumes decompressed from `section` (FIRMWARE_VOLUME_IMAGE sections below it)."""
    out = []
    for child in section.children:
        out.extend(c for c in child.children if c.kind == "fv")
    return out


# ---- flash-image -----------------------------------------------------------------------------------

def flash_chapter(image, name: str) -> Chapter:
    root, info = image.root, image.info
    w = Writer("flash-image", "offline", "The flash image: VARS and CODE", root)
    size, base = _size(w, "image_size", root), _address(w, "image_base", root)
    w.say(f"{name} is {{image_size}} bytes. The flash is mapped so that its last byte sits at 4 GiB - 1, "
          f"so the image starts at {{image_base}}.", size, base)
    w.say("Its layout: {layout}.", w.field("layout", info, "Layout"))
    vols = _volumes(root)
    nv = [v for v in vols if v.get("FvName") is None and "NvData" in (v.field("FileSystemGuid").text
                                                                       if v.field("FileSystemGuid") else "")]
    if nv:
        store = nv[0]
        w.say("The first volume, the NV store at {nv_address} ({nv_size} bytes), is the VARS part: UEFI "
              "variables live here and survive reboots when the flash is writable.",
              _address(w, "nv_address", store), _size(w, "nv_size", store))
        vs = next((c for c in store.children if c.kind == "variable-store"), None)
        if vs is not None:
            w.say("Its variable store ({vs_format}) holds {vs_variables} variables.",
                  w.field("vs_format", vs, "Signature", text=short(vs.field("Signature").text)),
                  w.count("vs_variables", vs, "variable"))
    else:
        w.say("It has no NV store: the variables come from a separate VARS file (QEMU's second "
              "pflash; `fwinspect qemu --vars`).")
    compact = _fv_named(vols, "FVMAIN_COMPACT")
    inner: list[Node] = []
    if compact is not None:
        w.say("The CODE part starts with FVMAIN_COMPACT at {compact_address} ({compact_size} bytes).",
              _address(w, "compact_address", compact), _size(w, "compact_size", compact))
        for i, sec in enumerate(_compressed_sections(compact)):
            algo = sec.field("SectionDefinitionGuid")
            w.say(f"One file holds a GUID-defined section of {{c{i}_size}} bytes compressed with "
                  f"{{c{i}_algo}}, which decompresses to {{c{i}_out}} bytes.",
                  _size(w, f"c{i}_size", sec),
                  w.field(f"c{i}_algo", sec, "SectionDefinitionGuid", text=short(algo.text) if algo else "?"),
                  w.field(f"c{i}_out", sec, "DecompressedSize"))
            for j, fv in enumerate(_inner_volumes(sec)):
                inner.append(fv)
                fvname = fv.field("FvName")
                w.say(f"Inside: {{v{i}_{j}_name}} ({{v{i}_{j}_size}} bytes).",
                      w.field(f"v{i}_{j}_name", fv, "FvName", text=short(fvname.text) if fvname else "?"),
                      w.field(f"v{i}_{j}_size", fv, "FvLength"))
        if _fv_named(inner, "PEIFV") is not None:
            w.say("SEC decompresses it at boot; PEIFV goes to the RAM address it was relocated to at build "
                  "time, and the PEI core runs from there.")
        else:
            w.unexpected("no PEIFV comes out of FVMAIN_COMPACT: this image has no PEI phase, SEC loads the "
                         "DXE core from DXEFV itself.")
    else:
        w.unexpected("no FVMAIN_COMPACT volume: the code is not in the compressed OVMF layout.")
    sec = _fv_named(vols, "SECFV")
    if sec is not None:
        w.say("SECFV, at {secfv_address} ({secfv_size} bytes), is the last volume: it ends at 4 GiB, so the "
              "CPU's first fetch lands in it. SEC runs in place from the flash.",
              _address(w, "secfv_address", sec), _size(w, "secfv_size", sec))
    else:
        w.unexpected("no SECFV volume at the top of the image.")
    phases = _boot_phases(info)
    if phases is not None:
        w.say("The handoffs this image has: {handoffs}.", w.field("handoffs", phases, "Handoffs"))
        reset = _phase(phases, "reset")
        sec_phase = _phase(phases, "sec")
        if reset is not None and sec_phase is not None:
            w.say("The CPU starts at {reset_entry}; SEC's entry is {sec_entry}.",
                  w.field("reset_entry", reset, "Entry"), w.field("sec_entry", sec_phase, "Entry"))
    w.try_this("/ FVMAIN_COMPACT", "/ Boot phases")
    if sec is not None:
        w.try_this(f"g 0x{sec.address:x}")
    return w.done(f"fwinspect fd {name}")


# ---- reset-vector-table ----------------------------------------------------------------------------

def table_chapter(image, name: str) -> Chapter:
    root, table = image.root, image.table
    w = Writer("reset-vector-table", "offline", "The OVMF GUIDed table at the top of the image", root)
    if table is None:
        w.unexpected("no OVMF GUIDed table: the image has no footer GUID at 0x30 bytes from its end, so a "
                     "VMM finds no TDX or SEV metadata in it.")
        return w.done(f"fwinspect fd {name}")
    w.say("The last 16 bytes of the image are the reset vector: {reset_vector}.",
          w.field("reset_vector", table, "ResetVector"))
    if table.get("TableLength") is not None:
        w.say("Just below them a table of GUIDed entries, {table_length} bytes, ends in the footer GUID "
              "{footer}; QEMU walks it backwards from there (hw/i386/pc_sysfw_ovmf.c).",
              w.field("table_length", table, "TableLength"),
              w.field("footer", table, "FooterGuid", text=short(table.field("FooterGuid").text)))
    w.say("It holds {entries} entries:", w.count("entries", table, "ovmf-guid-entry"))
    entries = [c for c in table.children if c.kind == "ovmf-guid-entry"]
    for i, e in enumerate(entries):
        g = e.field("Guid")
        gname = w.field(f"e{i}", e, "Guid", text=short(g.text) if g else "?")
        if e.get("SevEsApResetIp") is not None:
            w.say(f"{{e{i}}}: an SEV-ES AP starts at CS base {{e{i}_cs}}, IP {{e{i}_ip}};", gname,
                  w.field(f"e{i}_cs", e, "CsBase", text=f"0x{e.get('CsBase'):x}"), w.field(f"e{i}_ip", e, "IP"))
        elif e.get("Offset") is not None:
            desc = next(iter(e.children), None)
            offset = w.field(f"e{i}_offset", e, "Offset", text=f"0x{e.get('Offset'):x}")
            if desc is None:
                w.say(f"{{e{i}}}: a descriptor {{e{i}_offset}} bytes from the end, outside the image;", gname, offset)
            else:
                w.say(f"{{e{i}}}: a descriptor {{e{i}_offset}} bytes from the end, at file offset {{e{i}_at}};",
                      gname, offset, w.value(f"e{i}_at", desc.offset, desc, text=f"0x{desc.offset:x}"))
        elif e.get("Base") is not None:
            w.say(f"{{e{i}}}: base {{e{i}_base}}, size {{e{i}_size}};", gname,
                  w.field(f"e{i}_base", e, "Base"), w.field(f"e{i}_size", e, "Size"))
        else:
            w.say(f"{{e{i}}};", gname)
    for _node, p in table.all_problems():
        if p.severity.value != "info":
            w.unexpected(f"{p.message} (at 0x{p.offset:x})" if p.offset is not None else p.message)
    w.try_this(f"g 0x{table.address:x}", "/ OVMF reset-vector GUIDed table")
    return w.done(f"fwinspect fd {name}")


# ---- tdx-metadata ----------------------------------------------------------------------------------

def _vmm_action(s: Node) -> str:
    """What a VMM does with a section, from its Attributes (TDX_ATTR bits of decoders.ovmf.structs)."""
    attrs = s.get("Attributes") or 0
    if attrs & 0x2:
        return "adds its pages only after the TD starts (TDH.MEM.PAGE.AUG), unmeasured"
    if attrs & 0x1:
        return "adds each page (TDH.MEM.PAGE.ADD) and measures its bytes into MRTD (TDH.MR.EXTEND)"
    return "adds each page (TDH.MEM.PAGE.ADD); MRTD records only the page's address"


def tdx_chapter(image, meta: Node, name: str) -> Chapter:
    w = Writer("tdx-metadata", "offline", "TDX metadata: how a VMM builds the TD from this image", image.root)
    w.say("The TDVF descriptor at file offset {tdvf_offset} (signature {tdvf_sig}) lists {tdvf_count} sections; "
          "a VMM sets up the TD's initial memory from them before the first instruction runs.",
          w.value("tdvf_offset", meta.offset, meta, text=f"0x{meta.offset:x}"),
          w.field("tdvf_sig", meta, "Signature"),
          w.field("tdvf_count", meta, "NumberOfSectionEntry"))
    for i, s in enumerate(c for c in meta.children if c.kind == "tdx-section"):
        tname = s.field("Type").text if s.field("Type") else "?"
        vals = [w.field(f"s{i}_type", s, "Type"), w.field(f"s{i}_gpa", s, "MemoryAddress"),
                w.field(f"s{i}_size", s, "MemoryDataSize"), w.field(f"s{i}_attr", s, "Attributes")]
        text = (f"Section {i}, {{s{i}_type}}: GPA {{s{i}_gpa}}, {{s{i}_size}} bytes, Attributes {{s{i}_attr}}. "
                f"It is {TDX_ROLES.get(tname, 'a section type TDVF does not use')}.")
        if s.get("RawDataSize"):
            vals += [w.field(f"s{i}_raw", s, "RawDataSize"), w.field(f"s{i}_from", s, "DataOffset")]
            text += f" The VMM copies {{s{i}_raw}} bytes from image offset {{s{i}_from}} there and {_vmm_action(s)}."
        else:
            text += f" Nothing comes from the image; the VMM {_vmm_action(s)}."
        w.say(text, *vals)
        for p in s.problems:
            if p.severity.value != "info":
                w.unexpected(f"section {i} ({tname}): {p.message}")
    for p in meta.problems:
        if p.severity.value != "info":
            w.unexpected(p.message)
    w.try_this("/ TDX metadata", f"g 0x{meta.offset:x}")
    return w.done(f"fwinspect fd {name}")


# ---- mrtd --------------------------------------------------------------------------------------------

def mrtd_chapter(image, meta: Node, name: str) -> Chapter:
    from decoders.mrtd import mrtd_node

    w = Writer("mrtd", "offline", "MRTD: the measurement the TDX module makes of this image", image.root)
    nodes = [mrtd_node(r) for r in image.mrtds()]
    per_page, two_pass = nodes
    if per_page.get("MRTD") is None:
        for p in per_page.problems:
            w.unexpected(f"MRTD not computed: {p.message}")
        return w.done(f"fwinspect mrtd {name} --order both")
    w.say("As the VMM adds the sections, the TDX module hashes one 128-byte record per added page and, for "
          "measured pages, 16 records each followed by 256 bytes of the page: {pages_added} pages added, "
          "{pages_extended} of them extended.",
          w.field("pages_added", per_page, "PagesAdded", text=str(per_page.get("PagesAdded"))),
          w.field("pages_extended", per_page, "PagesExtended", text=str(per_page.get("PagesExtended"))))
    for i, step in enumerate(c for c in per_page.children if c.kind == "mrtd-section"):
        vals = [w.field(f"m{i}_type", step, "Type"),
                w.field(f"m{i}_added", step, "PagesAdded", text=str(step.get("PagesAdded"))),
                w.field(f"m{i}_ext", step, "PagesExtended", text=str(step.get("PagesExtended")))]
        if step.get("PagesExtended"):
            w.say(f"Section {i} ({{m{i}_type}}) contributes its bytes: {{m{i}_added}} pages added, "
                  f"{{m{i}_ext}} extended.", *vals)
        else:
            w.say(f"Section {i} ({{m{i}_type}}) contributes only its addresses: {{m{i}_added}} pages added, "
                  f"{{m{i}_ext}} extended.", *vals)
    w.say("The order of those records is the VMM's choice. Page by page (PAGE.ADD, then that page's "
          "MR.EXTENDs: td-shim, upstream QEMU and KVM) gives {mrtd_per_page}; all PAGE.ADDs of a section "
          "before its MR.EXTENDs (QEMU 8.x of Intel's TDX trees) gives {mrtd_two_pass}.",
          w.field("mrtd_per_page", per_page, "MRTD"), w.field("mrtd_two_pass", two_pass, "MRTD"))
    w.say("A TD quote's MRTD equals one of them when the TD runs this image unchanged.")
    w.try_this("/ TDX metadata")
    return w.done(f"fwinspect mrtd {name} --order both")


# ---- sev-metadata ----------------------------------------------------------------------------------

def sev_chapter(image, sev: Node, name: str) -> Chapter:
    w = Writer("sev-metadata", "offline", "SEV metadata: the pages an SEV-SNP VMM prepares", image.root)
    w.say("The SEV descriptor at file offset {sev_offset} lists {sev_count} sections; before an SEV-SNP "
          "guest starts, the VMM hands each to the secure processor by its type.",
          w.value("sev_offset", sev.offset, sev, text=f"0x{sev.offset:x}"), w.field("sev_count", sev, "NumSections"))
    for i, s in enumerate(c for c in sev.children if c.kind == "sev-section"):
        tname = s.field("Type").text if s.field("Type") else "?"
        vals = [w.field(f"v{i}_type", s, "Type"), w.field(f"v{i}_base", s, "Base"), w.field(f"v{i}_size", s, "Size")]
        if s.get("Size"):
            w.say(f"{{v{i}_type}} at {{v{i}_base}}, {{v{i}_size}} bytes: "
                  f"{SEV_ROLES.get(tname, 'a type this tour does not know')}.", *vals)
        else:
            w.say(f"{{v{i}_type}} at {{v{i}_base}}, {{v{i}_size}} bytes: empty in this build, nothing to prepare.",
                  *vals)
        for p in s.problems:
            if p.severity.value != "info":
                w.unexpected(f"SEV section {i} ({tname}): {p.message}")
    w.try_this("/ SEV metadata")
    return w.done(f"fwinspect fd {name}")


# ---- config-a-vs-b ---------------------------------------------------------------------------------

def config_chapter(image, name: str) -> Chapter:
    info = image.info
    w = Writer("config-a-vs-b", "offline", "Config-A or Config-B: how this image starts", image.root)
    tdx = info.field("TDX")
    phases = _boot_phases(info)
    if tdx is not None:
        w.say("The image summary says: {tdx}.", w.field("tdx", info, "TDX"))
    if tdx is not None and not tdx.value:
        w.say("So it is not a TDVF image, and this tour has no TDX metadata or MRTD chapter.")
    if phases is None:
        w.unexpected("the image summary has no boot phases.")
        return w.done(f"fwinspect fd {name}")
    w.say("Its PEI phase: {pei}.", w.field("pei", phases, "PEI"))
    pei = _phase(phases, "pei-core")
    dxe = _phase(phases, "dxe-core")
    if phases.get("PEI"):
        if pei is not None:
            flavour = "Config-A, " if tdx is not None and tdx.value else "as TDVF's Config-A, "
            w.say(f"With PEI ({flavour}OvmfPkg/OvmfPkgX64.dsc): SEC decompresses FVMAIN_COMPACT, enters the "
                  "PEI core at {pei_entry} in {pei_volume}; PEIMs find memory and build the HOB list, and the "
                  "DXE IPL loads the DXE core.",
                  w.field("pei_entry", pei, "Entry"), w.field("pei_volume", pei, "Volume"))
    else:
        w.say("Without PEI (Config-B, OvmfPkg/IntelTdx/IntelTdxX64.dsc): SEC's PeilessStartup builds the HOB "
              "list itself and hands off to the DXE core, so there is no PEI core and no DXE IPL handoff to "
              "stop at. One image holds VARS and CODE, and DXE drivers a TD must not run live apart in NCCFV.")
        if pei is not None:
            w.unexpected("the boot phases list a PEI core although the summary says PEI-less.")
    if dxe is not None:
        w.say("Either way the DXE core comes from {dxe_volume}, loaded at run time.",
              w.field("dxe_volume", dxe, "Volume"))
    w.try_this("/ Boot phases", "/ Image summary")
    return w.done(f"fwinspect fd {name}")


__all__ = ["offline_chapters"]
