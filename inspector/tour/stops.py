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

from decoders.model import Node
from inspector.live.session_api import Phase, Stop
from inspector.tour.model import Chapter, Value, Writer

RESET_VECTOR = 0xFFFFFFF0            # Intel SDM vol. 3A 9.1.4: the first fetch is at linear 0xFFFFFFF0
RESET_CS_BASE = 0xFFFF0000           # and CS.base is 0xFFFF0000 after RESET (SDM vol. 3A table 9-1)
# Control register bits (Intel SDM vol. 3A 2.5 and 2.2.1).
CR0_PE, CR0_PG = 1 << 0, 1 << 31
CR4_PAE, CR4_LA57 = 1 << 5, 1 << 12
EFER_LME, EFER_LMA, EFER_NXE = 1 << 8, 1 << 10, 1 << 11
# PiHob.h HOB types and EFI_RESOURCE_TYPE.
HOB_HANDOFF, HOB_MEMORY_ALLOCATION, HOB_RESOURCE_DESCRIPTOR, HOB_FV = 1, 2, 3, 5
EFI_RESOURCE_SYSTEM_MEMORY = 0
# Names listed in one sentence before the rest is counted (a boot loads ~40-50 images).
MAX_LISTED = 64

ORDER = (Phase.RESET, Phase.SEC, Phase.PEI_CORE, Phase.DXE_IPL, Phase.DXE_CORE, Phase.BDS)
MODES = {"real": "real mode (16-bit)", "prot16": "16-bit protected mode", "prot32": "32-bit protected mode",
         "long64": "64-bit long mode"}


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
        _cross_check_problems(w, stop.tree)
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


# ---- helpers --------------------------------------------------------------------------------------

def _child(node: Node | None, kind: str) -> Node | None:
    if node is None:
        return None
    return next((c for c in node.children if c.kind == kind), None)


def _find(node: Node | None, kind: str) -> Node | None:
    return None if node is None else next(node.find(kind), None)


def _reg(w: Writer, stop: Stop, name: str, width: int = 0) -> Value | None:
    value = stop.registers.get(name)
    if value is None:
        return None
    return w.value(f"reg_{name}", value, text=f"0x{value:0{width}x}")


def _bits(value: int, names: list[tuple[int, str, str, str]]) -> str:
    """"PE set (protected mode), PG clear (...)": each (bit, name, meaning when set, when clear)."""
    return ", ".join(f"{name} {'set' if value & bit else 'clear'} ({on if value & bit else off})"
                     for bit, name, on, off in names)


def _hx(value: Any) -> str:
    """An address or value in hex for a message; "?" when the tree lacks it."""
    return f"0x{value:x}" if isinstance(value, int) else "?"


def _plus(a: Any, b: Any) -> int | None:
    """a + b when both are numbers the tree holds, else None."""
    return a + b if isinstance(a, int) and isinstance(b, int) else None


def _short(text: str) -> str:
    """A GUID's name from its display ("gEfiHobListGuid (7739F24C-...)" -> "gEfiHobListGuid")."""
    return text.split(" (")[0]


def _as_bytes(value: Any) -> bytes | None:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):          # a recording keeps bytes as hex text
        try:
            return bytes.fromhex(value.replace(" ", ""))
        except ValueError:
            return None
    return None


def _debug_log(tree: Node | None) -> Node | None:
    return _child(tree, "debug-log")


def _log_events(log: Node | None, kind: str) -> list[Node]:
    events = _child(log, "log-events")
    return [] if events is None else [e for e in events.children if e.kind == kind]


def _log_module(log: Node | None, name: str) -> Node | None:
    """The latest `Loading ... at` of `name` the log names."""
    mods = _child(log, "log-modules")
    hits = [] if mods is None else [m for m in mods.children if str(m.get("Name", "")).lower() == name.lower()]
    return hits[-1] if hits else None


def _cross_check_problems(w: Writer, tree: Node | None) -> None:
    check = _child(_debug_log(tree), "debug-log-cross-check")
    for p in check.problems if check is not None else ():
        w.unexpected(f"the debug log disagrees with the session: {p.message}")


def _page_tables(w: Writer, stop: Stop, entry: Node, who: str) -> None:
    pages = _child(entry, "page-tables")
    if pages is None:
        if stop.registers.get("cr0", 0) & CR0_PG:
            w.unexpected("paging is on (CR0.PG) but no page tables were decoded at this stop")
        return
    cr3, levels = w.field("cr3", pages, "CR3"), w.field("levels", pages, "Levels", text=str(pages.get("Levels")))
    leaves, mapped = w.field("leaves", pages, "Leaves"), w.field("mapped", pages, "MappedBytes")
    w.say("CR3 {cr3} points at " + who + ": {levels}-level tables mapping {mapped}; their leaves: {leaves}.",
          cr3, levels, mapped, leaves)
    reg = stop.registers.get("cr3")
    if reg is not None and pages.get("CR3") != reg & ~0xFFF:
        w.unexpected(f"the page tables decoded here are at {_hx(pages.get('CR3'))}, not at CR3 {_hx(reg)}")
    la57 = bool(stop.registers.get("cr4", 0) & CR4_LA57)
    if (pages.get("Levels") == 5) != la57:
        w.unexpected(f"CR4.LA57 is {'set' if la57 else 'clear'} but the tables were walked with "
                     f"{pages.get('Levels')} levels")
    ranges = [c for c in pages.children if c.kind == "page-range"]
    if ranges:
        nx = [r for r in ranges if r.get("NX")]
        ro = [r for r in ranges if r.get("Writable") is False]
        n_ranges = w.value("ranges", len(ranges), pages)
        n_nx = w.value("nx_ranges", len(nx), pages)
        n_ro = w.value("ro_ranges", len(ro), pages)
        w.say("Merged, they are {ranges} ranges: {nx_ranges} of them no-execute (NX), {ro_ranges} read-only.",
              n_ranges, n_nx, n_ro)
    for p in pages.problems:
        if p.severity.value == "error":
            w.unexpected(f"the page-table walk found a problem: {p.message}")


def _module_against_log(w: Writer, entry: Node, log: Node | None) -> None:
    """The handoff's module (its copy, as the session followed it) against its `Loading ... at` line."""
    name, base, ep = entry.get("Module"), entry.get("ImageBase"), entry.get("EntryPoint")
    if log is None or not name or base is None:
        return
    mod = _log_module(log, str(name))
    if mod is None:
        w.unexpected(f"the debug log names no load of {name} before this stop")
        return
    if (mod.get("ImageBase"), mod.get("EntryPoint")) != (base, ep):
        w.unexpected(f"the debug log loads {name} at {_hx(mod.get('ImageBase'))} (entry {_hx(mod.get('EntryPoint'))}, "
                     f"line {mod.get('Line')}); this chapter has {_hx(base)} (entry {_hx(ep)})")
        return
    line = w.field("log_line", mod, "Line", text=str(mod.get("Line")))
    w.say("The debug log agrees: its line {log_line} loads it at that base, with that entry point.", line)


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
        cs, base, ip = _reg(w, stop, "cs", 4), _reg(w, stop, "cs_base", 8), _reg(w, stop, "rip", 4)
        if regs["cs_base"] == RESET_CS_BASE:
            w.say("CS holds selector {reg_cs}, yet its hidden base is {reg_cs_base}, not the selector times 16: "
                  "after RESET the processor loads that base so the first fetch lands just below 4 GiB "
                  "(Intel SDM vol. 3A 9.1.4).", cs, base)
        else:
            w.unexpected(f"CS base is {_hx(regs['cs_base'])}, not the {_hx(RESET_CS_BASE)} a RESET loads: "
                         "the guest was not stopped at its first instruction")
        if entry is not None:
            linear = w.field("linear", entry, "EntryPoint")
            w.say("IP is {reg_rip}, so the first instruction is fetched at linear {linear}, CS base + IP.", ip, linear)
    if entry is None:
        w.unexpected("the reset vector was not decoded at this stop")
        return
    if entry.get("EntryPoint") != RESET_VECTOR:
        w.unexpected(f"the stop is at {_hx(entry.get('EntryPoint'))}, not at the reset vector {_hx(RESET_VECTOR)}")
    raw = _as_bytes(entry.get("ResetVectorBytes"))
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
            w.unexpected(f"no volume of the image starts at the boot firmware volume {_hx(entry.get('BootFirmwareVolumeBase'))}")
    sig, bist = w.field("signature", entry, "Signature"), w.field("bist", entry, "Bist")
    w.say("DI carries the signature {signature} and EAX the built-in self-test result {bist} "
          "(OvmfPkg/Sec/" + arch + "/SecEntry.nasm).", sig, bist)
    for p in entry.problems:
        w.unexpected(p.message)
    w.say("No register holds SEC's stack or temporary RAM yet: SecEntry.nasm loads RSP/ESP with "
          "PcdOvmfSecPeiTempRamBase + PcdOvmfSecPeiTempRamSize, and SecCoreStartupWithStack hands the range to the "
          "PEI core (next chapter).")
    _control_registers(w, stop)
    who = "the tables OvmfPkg/ResetVector built before SEC (Ia32/PageTables64.asm, identity-mapped)"
    _page_tables(w, stop, entry, who)


def _control_registers(w: Writer, stop: Stop) -> None:
    regs = stop.registers
    if not all(k in regs for k in ("cr0", "cr4", "efer")):
        return
    cr0, cr4, efer = _reg(w, stop, "cr0"), _reg(w, stop, "cr4"), _reg(w, stop, "efer")
    w.say("CR0 {reg_cr0}: " + _bits(regs["cr0"], [(CR0_PE, "PE", "protected mode", "real mode"),
                                                   (CR0_PG, "PG", "paging on", "paging off")])
          + ". CR4 {reg_cr4}: " + _bits(regs["cr4"], [(CR4_PAE, "PAE", "64-bit page-table entries", "32-bit entries"),
                                                      (CR4_LA57, "LA57", "5-level paging", "4-level paging")])
          + ". EFER {reg_efer}: " + _bits(regs["efer"], [(EFER_LME, "LME", "long mode enabled", "no long mode"),
                                                         (EFER_LMA, "LMA", "long mode active", "not active"),
                                                         (EFER_NXE, "NXE", "NX bit honoured", "NX bit reserved")])
          + " (Intel SDM vol. 3A 2.5, 4.1).", cr0, cr4, efer)
    long_active = bool(regs["efer"] & EFER_LMA)
    if long_active != (str(stop.mode) == "long64"):
        w.unexpected(f"EFER.LMA is {'set' if long_active else 'clear'} but the stop's mode is {stop.mode}")


def _flash_base(image) -> int | None:
    """Where the flash image is mapped: its last byte at 4 GiB - 1 (OvmfPkg/OvmfPkgX64.fdf [FD.OVMF])."""
    data = getattr(image, "data", None) if image is not None else None
    return None if data is None else (1 << 32) - len(data)


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
    handoff, ppis = _child(entry, "sec-pei-handoff"), _child(entry, "ppi-list")
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
    t0, t1 = handoff.get("TemporaryRamBase"), _plus(handoff.get("TemporaryRamBase"), handoff.get("TemporaryRamSize"))
    s0, s1 = handoff.get("StackBase"), _plus(handoff.get("StackBase"), handoff.get("StackSize"))
    if None not in (t1, s1) and not t0 <= s0 <= s1 <= t1:
        w.unexpected(f"the stack [{_hx(s0)}, {_hx(s1)}) is not inside temporary RAM [{_hx(t0)}, {_hx(t1)})")
    bb, bs = w.field("bfv_base", handoff, "BootFirmwareVolumeBase"), w.field("bfv_size", handoff, "BootFirmwareVolumeSize")
    flash = _flash_base(image)
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
        names = [w.field(f"ppi_{i}", d, "GuidValue", text=_short(d.field("GuidValue").text))
                 for i, d in enumerate(descriptors[:MAX_LISTED]) if d.field("GuidValue") is not None]
        w.say("SEC also hands over {ppi_count} PPIs: " + ", ".join("{%s}" % v.name for v in names) + ".",
              count, *names)
        for p in ppis.problems:
            w.unexpected(p.message)
    log = _debug_log(entry)
    fv0 = next((e for e in _log_events(log, "log-fv") if e.get("Index") == 0), None)
    if fv0 is not None:
        if (fv0.get("BaseAddress"), fv0.get("Length")) == (handoff.get("BootFirmwareVolumeBase"),
                                                           handoff.get("BootFirmwareVolumeSize")):
            w.say("The debug log's first firmware volume (line {log_fv_line}) is that volume.",
                  w.field("log_fv_line", fv0, "Line", text=str(fv0.get("Line"))))
        else:
            w.unexpected(f"the debug log's 0th FV is {_hx(fv0.get('BaseAddress'))} + {_hx(fv0.get('Length'))}, not the "
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
        flash = _flash_base(image)
        if flash is not None and isinstance(entry.get("ImageBase"), int) and entry.get("ImageBase") >= flash:
            w.unexpected(f"DxeIpl runs at {_hx(entry.get('ImageBase'))}, inside the flash image, not from a RAM copy")
        else:
            w.say("The PEI core loaded it into memory it allocated once PeiInstallPeiMemory had installed RAM, "
                  "instead of running it in place in PEIFV (PcdShadowPeimOnBoot; MdeModulePkg/Core/Pei/Image/Image.c).")
    log = _debug_log(entry)
    hobs = _find(entry, "hob-list")
    if hobs is not None:
        count = w.field("hob_count", hobs, "HobCount", text=str(hobs.get("HobCount")))
        w.say("The HOB list at this stop holds {hob_count} HOBs.", count)
    else:
        w.say("The HOB list is not decoded at this stop: it is handed to the DXE core in RCX (next chapter).")
    mem = _log_events(log, "log-pei-memory")
    if mem:
        begin, length = w.field("mem_begin", mem[-1], "MemoryBegin"), w.field("mem_length", mem[-1], "MemoryLength")
        w.say("The debug log says what was discovered: PeiInstallPeiMemory got {mem_begin} + {mem_length} "
              "(OvmfPkg/PlatformPei/MemDetect.c PublishPeiMemory).", begin, length)
    low = _log_events(log, "log-low-memory")
    if low:
        w.say("RAM below 4 GiB ends at {low_memory} (PlatformGetLowMemoryCB, QEMU's fw_cfg e820 table).",
              w.field("low_memory", low[-1], "LowMemory"))
    if log is None:
        w.say("Without a debug log, what memory was found is first seen in the DXE core's HOB list.")
    else:
        _module_against_log(w, entry, log)
    _page_tables(w, stop, entry, "the tables PEI still runs on")


def _dxe_core(w: Writer, stop: Stop, image) -> None:
    entry = stop.tree
    if entry is None or entry.kind != "dxe-core-entry":
        w.unexpected("the DXE core entry was not decoded at this stop")
        return
    hob = w.field("hob_list", entry, "HobList", text=f"{_hx(entry.get('HobList'))}")
    w.say("The DXE IPL jumps to DxeMain(HobStart) with the HOB list in RCX: {hob_list} "
          "(MdeModulePkg/Core/DxeIplPeim/DxeLoad.c HandOffToDxeCore).", hob)
    for p in entry.problems:
        w.unexpected(p.message)
    hobs = _child(entry, "hob-list")
    phit = None
    if hobs is not None:
        items = [h for h in hobs.children if h.kind == "hob"]
        phit = items[0] if items and items[0].get("HobType") == HOB_HANDOFF else None
        w.say("It holds {hob_count} HOBs.", w.field("hob_count", hobs, "HobCount", text=str(hobs.get("HobCount"))))
        if phit is not None:
            top, bottom = w.field("mem_top", phit, "EfiMemoryTop"), w.field("mem_bottom", phit, "EfiMemoryBottom")
            ftop, fbot = phit.get("EfiFreeMemoryTop"), phit.get("EfiFreeMemoryBottom")
            free = w.value("free_memory", _plus(ftop, -fbot if isinstance(fbot, int) else None), phit,
                           text=_size(_plus(ftop, -fbot if isinstance(fbot, int) else None)))
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
              w.value("system_memory", total, hobs, text=_size(total)),
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
    _control_registers(w, stop)
    _page_tables(w, stop, entry, "the tables the DXE IPL built (MdeModulePkg/Core/DxeIplPeim/X64/VirtualMemory.c "
                                 "CreateIdentityMappingPageTables)")
    log = _debug_log(entry)
    if log is not None:
        _dxe_core_against_log(w, entry, phit, log)
    w.try_this("open hob-list", "open page-tables")


def _module_hob(w: Writer, entry: Node, allocs: list[Node]) -> None:
    """The DXE core's Memory Allocation Module HOB (DxeLoad.c BuildModuleHob) against the entry."""
    mods = [h for h in allocs if h.get("EntryPoint") is not None]
    base, ep = entry.get("ImageBase"), entry.get("EntryPoint")
    hit = next((h for h in mods if h.get("EntryPoint") == ep), None)
    if hit is None:
        w.unexpected(f"no memory allocation module HOB has the entry point {_hx(ep)} the CPU stopped at")
        return
    w.say("Its memory allocation module HOB records the same entry point, {module_hob_entry}.",
          w.field("module_hob_entry", hit, "EntryPoint"))
    if base is not None and hit.get("MemoryBaseAddress") != base:
        w.unexpected(f"the module HOB puts the DXE core at {_hx(hit.get('MemoryBaseAddress'))}; the session has "
                     f"{_hx(base)}")


def _dxe_core_against_log(w: Writer, entry: Node, phit: Node | None, log: Node) -> None:
    loads = _log_events(log, "log-dxe-core-load")
    base, ep = entry.get("ImageBase"), entry.get("EntryPoint")
    if loads:
        ev = loads[-1]
        if (ev.get("ImageBase"), ev.get("EntryPoint")) == (base, ep):
            w.say("The debug log's `Loading DXE CORE at` line ({log_line}) gives the same base and entry.",
                  w.field("log_line", ev, "Line", text=str(ev.get("Line"))))
        else:
            w.unexpected(f"the debug log loads the DXE core at {_hx(ev.get('ImageBase'))} entry "
                         f"{_hx(ev.get('EntryPoint'))} (line {ev.get('Line')}); this chapter has "
                         f"{'?' if base is None else hex(base)} entry {_hx(ep)}")
    mem = _log_events(log, "log-pei-memory")
    if mem and phit is not None:
        ev = mem[-1]
        begin, length = ev.get("MemoryBegin"), ev.get("MemoryLength")
        if (phit.get("EfiMemoryBottom"), phit.get("EfiMemoryTop")) == (begin, _plus(begin, length)):
            w.say("That is the range the debug log's PeiInstallPeiMemory line ({pei_memory_line}) gave.",
                  w.field("pei_memory_line", ev, "Line", text=str(ev.get("Line"))))
        else:
            w.unexpected(f"the debug log installs PEI memory [{_hx(begin)}, {_hx(_plus(begin, length))}); the PHIT has "
                         f"[{_hx(phit.get('EfiMemoryBottom'))}, {_hx(phit.get('EfiMemoryTop'))})")


def _bds(w: Writer, stop: Stop, image) -> None:
    entry = stop.tree
    if entry is None or entry.kind != "bds-entry":
        w.unexpected("the BDS entry was not decoded at this stop")
        return
    if entry.get("ImageBase") is not None:
        mod, base = w.field("module", entry, "Module"), w.field("base", entry, "ImageBase")
        w.say("The DXE core has dispatched every driver it could and calls the BDS architectural protocol: "
              "{module}, loaded at {base} (MdeModulePkg/Core/Dxe/DxeMain/DxeMain.c, gBds->Entry).", mod, base)
    st = _child(entry, "efi-system-table")
    if st is not None:
        rev, n = w.field("revision", st, "Hdr.Revision"), w.field("table_count", st, "NumberOfTableEntries")
        w.say("The EFI system table at {system_table} (found through its EFI_SYSTEM_TABLE_POINTER) says "
              "{revision} and lists {table_count} configuration tables:", w.field("system_table", entry, "SystemTable"),
              rev, n)
        tables = [c for c in st.children if c.kind == "efi-config-table"][:MAX_LISTED]
        names = [w.field(f"config_{i}", t, "VendorGuid", text=_short(t.field("VendorGuid").text))
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
    _control_registers(w, stop)
    _page_tables(w, stop, entry, "the tables DXE runs on (the DXE IPL's, now split where images are protected)")
    w.try_this("open efi-system-table", "open efi-debug-image-info-table")


def _acpi(w: Writer, entry: Node) -> None:
    acpi = _child(entry, "acpi")
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


def _event_log(w: Writer, entry: Node) -> None:
    logs = [c for c in entry.children if c.kind == "event-log"]
    if not logs:
        w.say("No TPM or CC event log was found: this boot measures nothing (no TPM).")
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
    table = _child(entry, "efi-debug-image-info-table")
    log = _debug_log(entry)
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
    mods = _child(log, "log-modules")
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
        say = [f"the debug image info table has {table_bases[b].get('Name')} at {_hx(b)}, which the log never "
               "loaded there" for b in sorted(extra)]
        say += [f"the log loaded {running[b].get('Name')} at {_hx(b)}, which is not in the debug image info table"
                for b in sorted(absent)]
        for s in say:
            w.unexpected(s)
    else:
        w.say("Every driver the log started is in the debug image info table at the base the log gives, and no "
              "other image is, besides the DXE core itself.")
    _module_against_log(w, entry, log)


def _size(n: int | None) -> str:
    if not isinstance(n, int):
        return "?"
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{_hx(n)} bytes"


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
