"""Chapters told at the live handoff stops: reset, SEC, PEI core, DXE IPL, DXE core, BDS.

`stop_chapters(stops, image)` writes one chapter per handoff stop present, in boot order, from that
stop's registers and tree only (inspector/live/handoffs.py decodes the tree at each handoff), so a
live session and a replayed recording tell the same chapters. Every number in the text is a `Value`
of a node of the stop's tree, or a register of the stop (a value without a node, named `reg_<name>`),
or the stop's disassembly (`stop_disasm`) or mode (`stop_mode`).

With a DEBUG build each stop's tree holds a "debug-log" node (inspector/live/debuglog.py); each
chapter checks what it tells against it (the module it stopped in loaded at that base, the DXE
core's `Loading DXE CORE at` line, PeiInstallPeiMemory's range and the PHIT, the drivers the log
loaded and the loaded images) and says where they disagree with `Writer.unexpected`, as it does
for the cross-check's own disagreements. A handoff the session never stopped at is said in the next
chapter told, or in a final "end" chapter.
"""
from __future__ import annotations

from typing import Any, Callable

from decoders import guids
from decoders.model import Node
from inspector.live.session_api import Phase, Stop
from inspector.tour.model import Chapter, Writer
from inspector.tour.stopparts import (
    EFI_RESOURCE_SYSTEM_MEMORY, HOB_FV, HOB_HANDOFF, HOB_MEMORY_ALLOCATION, HOB_RESOURCE_DESCRIPTOR,
    MAX_LISTED, MODES, RESET_CS_BASE, RESET_VECTOR, as_bytes, child_of, control_registers,
    cross_check_problems, debug_log_of, find_in, flash_base, hx, log_events, module_against_log,
    page_tables_story, plus, reg_value, short_name, size_text)

ORDER = (Phase.RESET, Phase.SEC, Phase.PEI_CORE, Phase.DXE_IPL, Phase.DXE_CORE, Phase.BDS)


def stop_chapters(stops: list[Stop], image: Any = None) -> list[Chapter]:
    """One chapter per handoff stop in `stops` (the first stop at each), in boot order. `image` is
    inspector.image.load_image's result (or None): it says which handoffs the image has."""
    first: dict[str, Stop] = {}
    for stop in stops:
        if stop.handoff in ORDER:
            first.setdefault(str(stop.handoff), stop)
    has = _image_phases(image)
    chapters: list[Chapter] = []
    skipped: list[str] = []
    for phase in ORDER:
        stop = first.get(str(phase))
        if stop is None:
            skipped.append(str(phase))
            continue
        w = Writer(CHAPTER_NAMES[phase], str(phase), TITLES[phase], root=stop.tree, stop=stop.index)
        for missed in skipped:
            w.unexpected(_missing(missed, has, before=True))
        skipped = []
        WRITERS[phase](w, stop, image)
        cross_check_problems(w, stop.tree)
        chapters.append(w.done(COMMANDS.get(phase)))
    if skipped:
        w = Writer("end", str(chapters[-1].phase) if chapters else "reset", "Where this session ended")
        for missed in skipped:
            w.unexpected(_missing(missed, has, before=False))
        # Why it ended, when the last stop says (the target died, a run timed out).
        for problem in stops[-1].problems if stops else ():
            w.unexpected(f"the last stop (#{stops[-1].index}) says: {problem}")
        chapters.append(w.done())
    return chapters


def _image_phases(image) -> list[str] | None:
    if image is None or getattr(image, "root", None) is None:
        return None
    from inspector.bootphases import scan

    return scan(image.root, len(image.data)).phases()


def _missing(phase: str, has: list[str] | None, before: bool) -> str:
    if has is not None and phase not in has:
        return (f"there is no {phase} handoff: the image has none (its handoffs: {', '.join(has)}); "
                + ("a PEI-less image's SEC hands off to the DXE core itself" if phase in ("pei-core", "dxe-ipl")
                   else "that part of the story is not told"))
    if before:
        return f"the session did not stop at the {phase} handoff, so that chapter is not told"
    return f"the session ended before the {phase} handoff: the chapters stop here"


# ---- the chapters ---------------------------------------------------------------------------------

def _reset(w: Writer, stop: Stop, image) -> None:
    entry = stop.tree if stop.tree is not None and stop.tree.kind == "reset-entry" else None
    mode = w.field("mode", entry, "Mode") if entry is not None else w.value("stop_mode", str(stop.mode))
    w.say("The CPU comes out of reset in {%s} mode." % mode.name, mode)
    regs = stop.registers
    if str(stop.mode) != "real":
        w.unexpected(f"the CPU is in {MODES.get(str(stop.mode), str(stop.mode))} at the reset vector, not real mode "
                     "(a TD vCPU starts in 32-bit protected mode), so the real-mode CS story does not apply")
    elif "cs" in regs and "cs_base" in regs and "rip" in regs:
        cs, base, ip = reg_value(w, stop, "cs", 4), reg_value(w, stop, "cs_base", 8), reg_value(w, stop, "rip", 4)
        if regs["cs_base"] == RESET_CS_BASE:
            w.say("CS holds selector {reg_cs}, yet its hidden base is {reg_cs_base}, not the selector times 16: "
                  "after RESET the processor loads that base so the first fetch lands just below 4 GiB "
                  "(Intel SDM vol. 3A 9.1.4).", cs, base)
        else:
            w.unexpected(f"CS base is {hx(regs['cs_base'])}, not the {hx(RESET_CS_BASE)} a RESET loads: "
                         "the guest was not stopped at its first instruction")
        if entry is not None:
            linear = w.field("linear", entry, "EntryPoint")
            w.say("IP is {reg_rip}, so the first instruction is fetched at linear {linear}, CS base + IP.", ip, linear)
    if entry is None:
        w.unexpected("the reset vector was not decoded at this stop")
        return
    if entry.get("EntryPoint") != RESET_VECTOR:
        w.unexpected(f"the stop is at {hx(entry.get('EntryPoint'))}, not at the reset vector {hx(RESET_VECTOR)}")
    raw = as_bytes(entry.get("ResetVectorBytes"))
    tail = bytes(image.data[-16:]) if image is not None and getattr(image, "data", None) is not None else None
    vector = w.field("vector", entry, "ResetVectorBytes")
    if raw is not None and (tail is None or raw == tail) and not entry.problems:
        w.say("Those 16 bytes are the flash image's last 16 (the image's last byte sits at 4 GiB - 1): {vector}.",
              vector)
    else:
        w.say("The 16 bytes there are {vector}.", vector)
        w.unexpected("the 16 bytes at the reset vector are not this image's last 16: another image runs")
    if stop.disassembly:
        first = w.value("stop_disasm", stop.disassembly[0][1], text=stop.disassembly[0][1])
        text = stop.disassembly[0][1]
        if text.startswith("jmp"):
            what = ("a jump back into the ResetVector code below it: only 16 bytes fit under 4 GiB "
                    "(OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm)")
        elif text.replace(" ", "") == "moveax,cr0":
            what = ("an X64 build reads CR0 to test PE: the same entry serves a TD, whose vCPU starts in 32-bit "
                    "protected mode (then `jmp Main32`), and a normal guest in real mode (then `jmp "
                    "EarlyBspInitReal16`) (OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm)")
        elif text == "nop":
            what = ("an IA32 build pads with two NOPs before `jmp EarlyBspInitReal16` "
                    "(OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm)")
        else:
            what = "the ResetVector module's entry (OvmfPkg/ResetVector)"
        w.say("The first instruction is `{stop_disasm}`: " + what + ".", first)
    w.try_this(f"g 0x{RESET_VECTOR:X}")


def _sec(w: Writer, stop: Stop, image) -> None:
    entry = stop.tree
    if entry is None or entry.kind != "sec-entry":
        w.unexpected("the SEC entry was not decoded at this stop")
        return
    mode, ep = w.field("mode", entry, "Mode"), w.field("entry", entry, "EntryPoint")
    arch = "X64" if str(entry.get("Mode")) == "long64" else "Ia32"
    w.out.title = f"SEC: the boot firmware volume, in {MODES.get(str(entry.get('Mode')), 'an unknown mode')}"
    w.say("The ResetVector jumps to SEC's entry at {entry} in {mode} (" + MODES.get(str(entry.get("Mode")), "?")
          + ").", ep, mode)
    bfv = w.field("bfv", entry, "BootFirmwareVolumeBase")
    w.say("It hands SEC the boot firmware volume: {bfv}, the volume SEC searches for the PEI core "
          "(OvmfPkg/Sec/SecMain.c FindPeiCoreImageBase).", bfv)
    if image is not None:
        fv = _image_fv_at(image, entry.get("BootFirmwareVolumeBase"))
        if fv is not None:
            size = w.field("image_fv_size", fv, "FvLength")
            w.say("In the image that volume is {image_fv_size} bytes long.", size)
        else:
            w.unexpected(f"no volume of the image starts at the boot firmware volume {hx(entry.get('BootFirmwareVolumeBase'))}")
    sig, bist = w.field("signature", entry, "Signature"), w.field("bist", entry, "Bist")
    w.say("DI carries the signature {signature} and EAX the built-in self-test result {bist} "
          "(OvmfPkg/Sec/" + arch + "/SecEntry.nasm).", sig, bist)
    for p in entry.problems:
        w.unexpected(p.message)
    w.say("No register holds SEC's stack or temporary RAM yet: SecEntry.nasm loads RSP/ESP with "
          "PcdOvmfSecPeiTempRamBase + PcdOvmfSecPeiTempRamSize, and SecCoreStartupWithStack hands the range to the "
          "PEI core (next chapter).")
    control_registers(w, stop)
    who = "the tables OvmfPkg/ResetVector built before SEC (Ia32/PageTables64.asm, identity-mapped)"
    page_tables_story(w, stop, entry, who)


def _image_fv_at(image, address: int | None) -> Node | None:
    if address is None:
        return None
    # The boot firmware volume is a top-level volume of the flash (OvmfPkg/OvmfPkgX64.fdf [FD.OVMF]):
    # no need to walk into files and decompressed sections.
    for node in image.root.children:
        if node.kind == "fv" and node.address == address:
            return node
    return None


def _pei(w: Writer, stop: Stop, image) -> None:
    entry = stop.tree
    handoff, ppis = child_of(entry, "sec-pei-handoff"), child_of(entry, "ppi-list")
    if entry is None or handoff is None:
        w.unexpected("EFI_SEC_PEI_HAND_OFF was not decoded at this stop")
        return
    data, plist = w.field("sec_core_data", entry, "SecCoreData"), w.field("ppi_list", entry, "PpiList")
    how = ("in RCX and RDX (Microsoft x64 calling convention)" if str(stop.mode) == "long64"
           else "on the stack (IA32 cdecl)")
    w.say("SEC calls PeiCore(SecCoreData, PpiList) " + how + ": SecCoreData = {sec_core_data}, PpiList = "
          "{ppi_list} (MdeModulePkg/Core/Pei/PeiMain/PeiMain.c; OvmfPkg/Sec/SecMain.c SecCoreStartupWithStack).",
          data, plist)
    tb, ts = w.field("temp_base", handoff, "TemporaryRamBase"), w.field("temp_size", handoff, "TemporaryRamSize")
    sb, ss = w.field("stack_base", handoff, "StackBase"), w.field("stack_size", handoff, "StackSize")
    hb, hs = w.field("heap_base", handoff, "PeiTemporaryRamBase"), w.field("heap_size", handoff, "PeiTemporaryRamSize")
    w.say("EFI_SEC_PEI_HAND_OFF (PI 1.8 vol. 1 6.3) gives the temporary RAM: {temp_base} + {temp_size}; "
          "of it the PEI core's heap is {heap_base} + {heap_size} and the stack {stack_base} + {stack_size}.",
          tb, ts, hb, hs, sb, ss)
    t0, t1 = handoff.get("TemporaryRamBase"), plus(handoff.get("TemporaryRamBase"), handoff.get("TemporaryRamSize"))
    s0, s1 = handoff.get("StackBase"), plus(handoff.get("StackBase"), handoff.get("StackSize"))
    if None not in (t1, s1) and not t0 <= s0 <= s1 <= t1:
        w.unexpected(f"the stack [{hx(s0)}, {hx(s1)}) is not inside temporary RAM [{hx(t0)}, {hx(t1)})")
    bb, bs = w.field("bfv_base", handoff, "BootFirmwareVolumeBase"), w.field("bfv_size", handoff, "BootFirmwareVolumeSize")
    flash = flash_base(image)
    if flash is not None and isinstance(handoff.get("BootFirmwareVolumeBase"), int) \
            and handoff.get("BootFirmwareVolumeBase") >= flash:
        w.say("The boot firmware volume PEI dispatches from is {bfv_base} + {bfv_size}, in the flash itself.", bb, bs)
    else:
        w.say("The boot firmware volume PEI dispatches from is {bfv_base} + {bfv_size}, in RAM: PEIFV, which SEC "
              "found decompressed there (OvmfPkg/Sec/SecMain.c FindPeiCoreImageBase, DecompressMemFvs).", bb, bs)
    for p in handoff.problems + entry.problems:
        w.unexpected(p.message)
    if ppis is not None:
        descriptors = [d for d in ppis.children if d.kind == "ppi-descriptor"]
        count = w.field("ppi_count", ppis, "Count")
        names = [w.field(f"ppi_{i}", d, "GuidValue", text=short_name(d.field("GuidValue").text))
                 for i, d in enumerate(descriptors[:MAX_LISTED]) if d.field("GuidValue") is not None]
        w.say("SEC also hands over {ppi_count} PPIs: " + ", ".join("{%s}" % v.name for v in names) + ".",
              count, *names)
        for p in ppis.problems:
            w.unexpected(p.message)
    log = debug_log_of(entry)
    fv0 = next((e for e in log_events(log, "log-fv") if e.get("Index") == 0), None)
    if fv0 is not None:
        if (fv0.get("BaseAddress"), fv0.get("Length")) == (handoff.get("BootFirmwareVolumeBase"),
                                                           handoff.get("BootFirmwareVolumeSize")):
            w.say("The debug log's first firmware volume (line {log_fv_line}) is that volume.",
                  w.field("log_fv_line", fv0, "Line", text=str(fv0.get("Line"))))
        else:
            w.unexpected(f"the debug log's 0th FV is {hx(fv0.get('BaseAddress'))} + {hx(fv0.get('Length'))}, not the "
                         f"boot firmware volume handed over")
    w.try_this("open sec-pei-handoff", "open ppi-list")


def _dxe_ipl(w: Writer, stop: Stop, image) -> None:
    entry = stop.tree
    if entry is None or entry.kind != "dxe-ipl-entry":
        w.unexpected("the DXE IPL entry was not decoded at this stop")
        return
    if entry.get("ImageBase") is None:
        w.unexpected("the session did not find which copy of DxeIpl runs here, so its image base is unknown")
    else:
        mod, base, ep = w.field("module", entry, "Module"), w.field("base", entry, "ImageBase"), \
            w.field("entry", entry, "EntryPoint")
        w.say("PEI has found memory and dispatches {module} from RAM: its image is at {base}, entry {entry}.",
              mod, base, ep)
        flash = flash_base(image)
        if flash is not None and isinstance(entry.get("ImageBase"), int) and entry.get("ImageBase") >= flash:
            w.unexpected(f"DxeIpl runs at {hx(entry.get('ImageBase'))}, inside the flash image, not from a RAM copy")
        else:
            w.say("The PEI core loaded it into memory it allocated once PeiInstallPeiMemory had installed RAM, "
                  "instead of running it in place in PEIFV (PcdShadowPeimOnBoot; MdeModulePkg/Core/Pei/Image/Image.c).")
    log = debug_log_of(entry)
    hobs = find_in(entry, "hob-list")
    if hobs is not None:
        count = w.field("hob_count", hobs, "HobCount", text=str(hobs.get("HobCount")))
        w.say("The HOB list at this stop holds {hob_count} HOBs.", count)
    else:
        w.say("The HOB list is not decoded at this stop: it is handed to the DXE core in RCX (next chapter).")
    mem = log_events(log, "log-pei-memory")
    if mem:
        begin, length = w.field("mem_begin", mem[-1], "MemoryBegin"), w.field("mem_length", mem[-1], "MemoryLength")
        w.say("The debug log says what was discovered: PeiInstallPeiMemory got {mem_begin} + {mem_length} "
              "(OvmfPkg/PlatformPei/MemDetect.c PublishPeiMemory).", begin, length)
    low = log_events(log, "log-low-memory")
    if low:
        w.say("RAM below 4 GiB ends at {low_memory} (PlatformGetLowMemoryCB, QEMU's fw_cfg e820 table).",
              w.field("low_memory", low[-1], "LowMemory"))
    if log is None:
        w.say("Without a debug log, what memory was found is first seen in the DXE core's HOB list.")
    else:
        module_against_log(w, entry, log)
    page_tables_story(w, stop, entry, "the tables PEI still runs on")


def _dxe_core(w: Writer, stop: Stop, image) -> None:
    entry = stop.tree
    if entry is None or entry.kind != "dxe-core-entry":
        w.unexpected("the DXE core entry was not decoded at this stop")
        return
    hob = w.field("hob_list", entry, "HobList", text=f"{hx(entry.get('HobList'))}")
    w.say("The DXE IPL jumps to DxeMain(HobStart) with the HOB list in RCX: {hob_list} "
          "(MdeModulePkg/Core/DxeIplPeim/DxeLoad.c HandOffToDxeCore).", hob)
    for p in entry.problems:
        w.unexpected(p.message)
    hobs = child_of(entry, "hob-list")
    phit = None
    if hobs is not None:
        items = [h for h in hobs.children if h.kind == "hob"]
        phit = items[0] if items and items[0].get("HobType") == HOB_HANDOFF else None
        w.say("It holds {hob_count} HOBs.", w.field("hob_count", hobs, "HobCount", text=str(hobs.get("HobCount"))))
        if phit is not None:
            top, bottom = w.field("mem_top", phit, "EfiMemoryTop"), w.field("mem_bottom", phit, "EfiMemoryBottom")
            ftop, fbot = phit.get("EfiFreeMemoryTop"), phit.get("EfiFreeMemoryBottom")
            free = w.value("free_memory", plus(ftop, -fbot if isinstance(fbot, int) else None), phit,
                           text=size_text(plus(ftop, -fbot if isinstance(fbot, int) else None)))
            w.say("The PHIT says PEI's memory is [{mem_bottom}, {mem_top}), of which {free_memory} is still free "
                  "(EfiFreeMemoryTop - EfiFreeMemoryBottom).", bottom, top, free)
        resources = [h for h in items if h.get("HobType") == HOB_RESOURCE_DESCRIPTOR]
        ram = [h for h in resources if h.get("ResourceType") == EFI_RESOURCE_SYSTEM_MEMORY]
        total = sum(h.get("ResourceLength") or 0 for h in ram)
        allocs = [h for h in items if h.get("HobType") == HOB_MEMORY_ALLOCATION]
        fvs = [h for h in items if h.get("HobType") == HOB_FV]
        w.say("{resource_count} resource descriptors describe the machine; {ram_count} are system memory, "
              "{system_memory} in all. {allocation_count} memory allocation HOBs say what PEI took.",
              w.value("resource_count", len(resources), hobs), w.value("ram_count", len(ram), hobs),
              w.value("system_memory", total, hobs, text=size_text(total)),
              w.value("allocation_count", len(allocs), hobs))
        for i, fv in enumerate(fvs[:MAX_LISTED]):
            w.say("A firmware volume HOB hands DXE the volume at {fv_%d} (+{fv_len_%d} bytes)." % (i, i),
                  w.field(f"fv_{i}", fv, "BaseAddress"), w.field(f"fv_len_{i}", fv, "Length"))
        if not fvs:
            w.unexpected("no firmware volume HOB: DXE has no volume to dispatch drivers from")
        _module_hob(w, entry, allocs)
    else:
        w.unexpected("no HOB list was decoded at RCX")
    if entry.get("ImageBase") is not None:
        mod, base, ep = w.field("module", entry, "Module"), w.field("base", entry, "ImageBase"), \
            w.field("entry", entry, "EntryPoint")
        w.say("{module} was loaded at {base}; its entry point is {entry}.", mod, base, ep)
    control_registers(w, stop)
    page_tables_story(w, stop, entry, "the tables the DXE IPL built (MdeModulePkg/Core/DxeIplPeim/X64/VirtualMemory.c "
                                 "CreateIdentityMappingPageTables)")
    log = debug_log_of(entry)
    if log is not None:
        _dxe_core_against_log(w, entry, phit, log)
    w.try_this("open hob-list", "open page-tables")


def _module_hob(w: Writer, entry: Node, allocs: list[Node]) -> None:
    """The DXE core's Memory Allocation Module HOB (DxeLoad.c BuildModuleHob) against the entry."""
    mods = [h for h in allocs if h.get("EntryPoint") is not None]
    base, ep = entry.get("ImageBase"), entry.get("EntryPoint")
    hit = next((h for h in mods if h.get("EntryPoint") == ep), None)
    if hit is None:
        w.unexpected(f"no memory allocation module HOB has the entry point {hx(ep)} the CPU stopped at")
        return
    w.say("Its memory allocation module HOB records the same entry point, {module_hob_entry}.",
          w.field("module_hob_entry", hit, "EntryPoint"))
    if base is not None and hit.get("MemoryBaseAddress") != base:
        w.unexpected(f"the module HOB puts the DXE core at {hx(hit.get('MemoryBaseAddress'))}; the session has "
                     f"{hx(base)}")


def _dxe_core_against_log(w: Writer, entry: Node, phit: Node | None, log: Node) -> None:
    loads = log_events(log, "log-dxe-core-load")
    base, ep = entry.get("ImageBase"), entry.get("EntryPoint")
    if loads:
        ev = loads[-1]
        if (ev.get("ImageBase"), ev.get("EntryPoint")) == (base, ep):
            w.say("The debug log's `Loading DXE CORE at` line ({log_line}) gives the same base and entry.",
                  w.field("log_line", ev, "Line", text=str(ev.get("Line"))))
        else:
            w.unexpected(f"the debug log loads the DXE core at {hx(ev.get('ImageBase'))} entry "
                         f"{hx(ev.get('EntryPoint'))} (line {ev.get('Line')}); this chapter has "
                         f"{'?' if base is None else hex(base)} entry {hx(ep)}")
    mem = log_events(log, "log-pei-memory")
    if mem and phit is not None:
        ev = mem[-1]
        begin, length = ev.get("MemoryBegin"), ev.get("MemoryLength")
        if (phit.get("EfiMemoryBottom"), phit.get("EfiMemoryTop")) == (begin, plus(begin, length)):
            w.say("That is the range the debug log's PeiInstallPeiMemory line ({pei_memory_line}) gave.",
                  w.field("pei_memory_line", ev, "Line", text=str(ev.get("Line"))))
        else:
            w.unexpected(f"the debug log installs PEI memory [{hx(begin)}, {hx(plus(begin, length))}); the PHIT has "
                         f"[{hx(phit.get('EfiMemoryBottom'))}, {hx(phit.get('EfiMemoryTop'))})")


def _bds(w: Writer, stop: Stop, image) -> None:
    entry = stop.tree
    if entry is None or entry.kind != "bds-entry":
        w.unexpected("the BDS entry was not decoded at this stop")
        return
    if entry.get("ImageBase") is not None:
        mod, base = w.field("module", entry, "Module"), w.field("base", entry, "ImageBase")
        w.say("The DXE core has dispatched every driver it could and calls the BDS architectural protocol: "
              "{module}, loaded at {base} (MdeModulePkg/Core/Dxe/DxeMain/DxeMain.c, gBds->Entry).", mod, base)
    st = child_of(entry, "efi-system-table")
    if st is not None:
        rev, n = w.field("revision", st, "Hdr.Revision"), w.field("table_count", st, "NumberOfTableEntries")
        w.say("The EFI system table at {system_table} (found through its EFI_SYSTEM_TABLE_POINTER) says "
              "{revision} and lists {table_count} configuration tables:", w.field("system_table", entry, "SystemTable"),
              rev, n)
        tables = [c for c in st.children if c.kind == "efi-config-table"][:MAX_LISTED]
        names = [w.field(f"config_{i}", t, "VendorGuid", text=short_name(t.field("VendorGuid").text))
                 for i, t in enumerate(tables) if t.field("VendorGuid") is not None]
        if names:
            w.say(", ".join("{%s}" % v.name for v in names) + ".", *names)
        if st.get("NumberOfTableEntries") != len([c for c in st.children if c.kind == "efi-config-table"]):
            w.unexpected("the system table's NumberOfTableEntries is not the number of tables decoded")
    else:
        w.unexpected("no EFI system table was found at this stop")
    _acpi(w, entry)
    _event_log(w, entry)
    _images(w, entry)
    control_registers(w, stop)
    page_tables_story(w, stop, entry, "the tables DXE runs on (the DXE IPL's, now split where images are protected)")
    w.try_this("open efi-system-table", "open efi-debug-image-info-table")


def _acpi(w: Writer, entry: Node) -> None:
    acpi = child_of(entry, "acpi")
    if acpi is None and _config_tables(entry, guids.gEfiAcpi20TableGuid, guids.gEfiAcpi10TableGuid):
        w.unexpected("an ACPI configuration table is installed but no ACPI tables were decoded from it")
        return
    if acpi is None:
        w.say("No ACPI tables are installed yet: OVMF's QemuFwCfgAcpiPlatform (OvmfPkg/AcpiPlatformDxe) installs "
              "the tables QEMU's fw_cfg linker/loader script builds only once BDS has connected the PCI root "
              "bridges.")
        return
    tables = [t for t in acpi.children if t.kind == "acpi-table"]
    sigs = []
    for i, t in enumerate(tables[:MAX_LISTED]):
        sig = t.get("Signature")
        if isinstance(sig, (bytes, bytearray)):
            sig = bytes(sig).decode("ascii", "replace")
        if isinstance(sig, str) and sig:
            sigs.append(w.field(f"acpi_{i}", t, "Signature", text=sig))
    count = w.value("acpi_count", len(tables), acpi)
    w.say("ACPI is there already: {acpi_count} tables: " + ", ".join("{%s}" % v.name for v in sigs) + ".", count, *sigs)
    # QEMU builds its tables with OEM ID "BOCHS " (QEMU include/hw/acpi/aml-build.h, ACPI_BUILD_APPNAME6);
    # OVMF installs them from fw_cfg's linker/loader script (OvmfPkg/AcpiPlatformDxe/QemuFwCfgAcpi.c).
    oem = {str(t.get("OemId", "")).strip() for t in tables}
    if oem == {"BOCHS"}:
        w.say("All carry QEMU's OEM ID {oem_id}: QEMU built them, and OVMF installed them by following QEMU's "
              "fw_cfg linker/loader script.", w.field("oem_id", tables[0], "OemId", text="BOCHS"))


def _config_tables(entry: Node, *wanted) -> list[Node]:
    """The system table's configuration tables with one of these VendorGuids (a recording keeps
    GUIDs as text, a live tree as UUIDs)."""
    st = child_of(entry, "efi-system-table")
    names = {str(g) for g in wanted}
    return [t for t in (st.children if st is not None else ()) if t.kind == "efi-config-table"
            and str(t.get("VendorGuid")).lower() in names]


def _event_log(w: Writer, entry: Node) -> None:
    logs = [c for c in entry.children if c.kind == "event-log"]
    # Tcg2Dxe and the CC measurement driver install a final-events configuration table when they
    # measure (SecurityPkg/Tcg/Tcg2Dxe/Tcg2Dxe.c, OvmfPkg/IntelTdx/TdTcg2Dxe/TdTcg2Dxe.c).
    final = _config_tables(entry, guids.gEfiTcg2FinalEventsTableGuid, guids.gEfiCcFinalEventsTableGuid)
    if not logs:
        if final:
            w.unexpected(f"{short_name(final[0].field('VendorGuid').text)} is installed, so something measures "
                         "this boot, but no event log was found in RAM")
        else:
            w.say("No event log: neither a TCG2 nor a CC final-events configuration table is installed, so no "
                  "driver measures this boot.")
        return
    for i, log in enumerate(logs):
        events = [e for e in log.children if e.kind == "event"]
        pcrs = sorted({e.get("PCRIndex") for e in events if e.get("EventType") != 3 and e.get("PCRIndex") is not None})
        fmt = w.field(f"log_format_{i}", log, "Format")
        count = w.field(f"log_events_{i}", log, "EventCount", text=str(log.get("EventCount")))
        w.say("The event log ({log_format_%d}) holds {log_events_%d} events so far; " % (i, i)
              + "measurements went to {log_pcrs_%d}." % i,
              fmt, count, w.value(f"log_pcrs_{i}", pcrs, log, text=", ".join(f"PCR{p}" for p in pcrs) or "no PCR"))


def _images(w: Writer, entry: Node) -> None:
    table = child_of(entry, "efi-debug-image-info-table")
    log = debug_log_of(entry)
    if table is None:
        w.unexpected("no debug image info table: the loaded images are not known at this stop")
        return
    images = [c for c in table.children if c.kind == "loaded-image"]
    names = [w.field(f"image_{i}", img, "Name", text=str(img.get("Name")))
             for i, img in enumerate(images[:MAX_LISTED]) if img.get("Name")]
    w.say("{image_count} images are loaded (the debug image info table): " + ", ".join("{%s}" % v.name for v in names)
          + ".", w.count("image_count", table, "loaded-image"), *names)
    if log is None:
        return
    mods = child_of(log, "log-modules")
    dxe = [m for m in mods.children if "(DXE" in m.title] if mods is not None else []
    failed = [m for m in dxe if "start failed: " in m.title]
    w.say("The debug log loaded {drivers_loaded} drivers so far.", w.field("drivers_loaded", log, "DriversLoaded"))
    if failed:
        named = [w.field(f"failed_{i}", m, "Name", text=f"{m.get('Name')} ({m.title.split('start failed: ')[1].rstrip(')')})")
                 for i, m in enumerate(failed[:MAX_LISTED])]
        w.say("{failed_count} failed to start and were unloaded: " + ", ".join("{%s}" % v.name for v in named) + ".",
              w.value("failed_count", len(failed), mods), *named)
    # The images the log says are loaded now (the latest load at each base that started) against the
    # debug image info table; the DXE core is loaded by DxeIpl, not by a `Loading driver` line.
    latest: dict[int, Node] = {}
    for m in dxe:
        latest[m.get("ImageBase")] = m
    running = {b: m for b, m in latest.items() if "start failed: " not in m.title}
    core = {img.get("ImageBase") for img in images if str(img.get("Name")) == "DxeCore"}
    table_bases = {img.get("ImageBase"): img for img in images if img.get("ImageBase") not in core}
    extra, absent = set(table_bases) - set(running), set(running) - set(table_bases)
    if extra or absent:
        say = [f"the debug image info table has {table_bases[b].get('Name')} at {hx(b)}, which the log never "
               "loaded there" for b in sorted(extra)]
        say += [f"the log loaded {running[b].get('Name')} at {hx(b)}, which is not in the debug image info table"
                for b in sorted(absent)]
        for s in say:
            w.unexpected(s)
    else:
        w.say("Every driver the log started is in the debug image info table at the base the log gives, and no "
              "other image is, besides the DXE core itself.")
    module_against_log(w, entry, log)


CHAPTER_NAMES = {Phase.RESET: "reset", Phase.SEC: "sec", Phase.PEI_CORE: "pei", Phase.DXE_IPL: "dxe-ipl",
                 Phase.DXE_CORE: "dxe-core", Phase.BDS: "bds"}
TITLES = {Phase.RESET: "The first instruction", Phase.SEC: "SEC: the boot firmware volume",
          Phase.PEI_CORE: "SEC hands off to the PEI core", Phase.DXE_IPL: "Memory found: the DXE IPL",
          Phase.DXE_CORE: "The DXE core and its HOB list", Phase.BDS: "BDS: what DXE built"}
# The command that prints the same stop without the tour.
COMMANDS = {phase: f"fwinspect qemu IMAGE --until {phase} --json" for phase in ORDER}
WRITERS: dict[Phase, Callable[[Writer, Stop, Any], None]] = {
    Phase.RESET: _reset, Phase.SEC: _sec, Phase.PEI_CORE: _pei, Phase.DXE_IPL: _dxe_ipl,
    Phase.DXE_CORE: _dxe_core, Phase.BDS: _bds,
}

__all__ = ["stop_chapters"]
