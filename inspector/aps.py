"""What the application processors were given: for every AP of a dump or a live stop, where it is
(mode, RIP, the module its RIP is in), whether it still waits for INIT-SIPI-SIPI or sits in MpInitLib's
loop, the low-RAM wake-up buffer MpInitLib used, and in a TDX guest the ACPI MADT Multiprocessor
Wakeup mailbox the OS wakes the APs through. Nodes out ("aps" with "ap", "ap-wakeup-buffer",
"mp-wakeup" and "mp-module" children), for the dump overview, the tour and scripts.

How OVMF starts its APs (UefiCpuPkg/Library/MpInitLib):
- after reset every AP waits for a SIPI at the reset state: CS selector 0xF000, base 0xFFFF0000, IP
  0xFFF0 (Intel SDM vol. 3A 9.1.1 table 9-1, 9.4.4 "wait-for-SIPI");
- MpInitLibInitialize (CpuMpPei in PEI, CpuDxe in DXE) copies its 16-bit start-up code and the
  MP_CPU_EXCHANGE_INFO into a buffer below 1 MiB (GetWakeupBuffer: PeiMpLib.c takes free memory
  under 1 MiB from the resource HOBs, DxeMpLib.c allocates below 0x88000) and sends INIT-SIPI-SIPI
  with that page as the vector: the AP starts in real mode with CS base = the buffer, IP 0 (SDM vol.
  3A 11.6.1, the SIPI vector VV starts it at 000VV000H). WakeUpAP then restores the buffer's old
  bytes (MpLib.c FreeResetVector -> RestoreWakeupBuffer), so between calls the buffer is not in
  memory any more: it is seen on an AP in real mode, or in the debug log ("WakeupBufferStart = %x",
  GetWakeupBuffer; "AP Vector: 16-bit = %p/%x", MpLib.c);
- between calls the APs park in ApWakeupFunction's loop (MpLib.c): with PcdCpuApLoopMode 1 (OVMF's)
  a HLT loop, so an AP's RIP is right after a HLT in the module that woke it last;
- in a TDX guest all vCPUs run the reset vector together; TDVF builds the "Up" variants of CpuMpPei
  and CpuDxe (MpInitLibUp, chosen by the depex on gEfiPeiMpInitLibUpDepPpiGuid that OvmfPkg/Sec/SecMain.c
  installs in a TD) and parks the APs on a mailbox that OvmfPkg/TdxDxe publishes in the MADT.

What a dump cannot say: QEMUCPUState has no halted flag, so "parked" there means RIP is right after a
HLT instruction; live stops carry QEMU's HLT flag (inspector/live/cpus.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from decoders.edk2log import AP_LOOP_MODES
from decoders.memory import Memory, Unreadable
from decoders.model import Node

# The reset state of an x86 CPU (Intel SDM vol. 3A 9.1.4).
RESET_CS_SELECTOR = 0xF000
RESET_CS_BASE = 0xFFFF0000
RESET_IP = 0xFFF0
# A SIPI vector names a page below 1 MiB (SDM vol. 3A 11.6.1, "Startup" delivery mode: 000VV000H).
LOW_RAM = 0x100000
HLT = 0xF4
BOOT_CPU = 0
# The modules that carry MpInitLib in OVMF (OvmfPkg/OvmfPkgX64.dsc: UefiCpuPkg/CpuMpPei, UefiCpuPkg/CpuDxe,
# each also built with MpInitLibUp under UP_CPU_PEI_GUID / UP_CPU_DXE_GUID).
MP_MODULES = ("CpuMpPei", "CpuDxe")
# MpInitLib's DEBUG lines (GetWakeupBuffer's "WakeupBufferStart", AllocateResetVector's "AP Vector: 16-bit",
# "AP Loop Mode", the CPU counts) are events of decoders/edk2log.py, the one parser of the debug log.
# Modules whose RIP ranges are listed at most (a debug image info table of a shell has ~100).
MAX_RANGES = 4096

Range = tuple[int, int, str, object]       # (start, end, module name, its FFS file GUID or None)


@dataclass
class CpuFacts:
    """One vCPU, from a dump's CpuState or a live stop's CpuView."""

    index: int
    mode: str
    rip: int | None
    linear_rip: int | None
    cr0: int | None = None
    cr3: int | None = None
    cr4: int | None = None
    rflags: int | None = None
    cs_selector: int | None = None
    cs_base: int | None = None
    module: str | None = None
    halted: bool | None = None      # QEMU's HLT flag (live), None when unknown (dumps)
    state: str | None = None        # the live backend's CpuView.state
    state_source: str = ""
    node: Node | None = field(default=None, repr=False)

    @property
    def at_reset_state(self) -> bool:
        return (self.mode == "real" and self.cs_selector == RESET_CS_SELECTOR and self.cs_base == RESET_CS_BASE
                and self.rip == RESET_IP)


def facts_from_dump(dump, cpu_nodes: Iterable[Node] = ()) -> list[CpuFacts]:
    """CpuFacts of every CPU of an inspector.dump.Dump (their "cpu" nodes attached when given)."""
    nodes = {n.get("Index"): n for n in cpu_nodes}
    out = []
    for c in dump.cpus:
        cs = c.segments.get("cs")
        out.append(CpuFacts(c.index, c.mode, c.rip, c.linear_rip, c.cr0, c.cr3, c.cr4, c.registers.get("rflags"),
                            cs.selector if cs else None, cs.base if cs else None, node=nodes.get(c.index)))
    return out


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def facts_from_stop(stop) -> list[CpuFacts]:
    """CpuFacts of every vCPU of a live or replayed Stop (session_api.Stop.cpus). A replayed recording is
    input like any other: values that are not integers read as unknown, a CPU without an index is left out."""
    out = []
    for v in stop.cpus or ():
        if _int(getattr(v, "index", None)) is None:
            continue
        r = v.registers if isinstance(v.registers, dict) else {}
        state = str(v.state)
        halted = {"halted": True, "wait-for-sipi": True, "running": False}.get(state)
        module = v.module if isinstance(v.module, str) else None
        out.append(CpuFacts(v.index, str(v.mode), _int(r.get("rip")), _int(v.linear_rip), _int(r.get("cr0")),
                            _int(r.get("cr3")), _int(r.get("cr4")), _int(r.get("eflags")), _int(r.get("cs")),
                            _int(r.get("cs_base")), module, halted, state, str(v.state_source or "")))
    return out


# ---- module ranges --------------------------------------------------------------------------------
def loaded_image_ranges(tree: Node | None) -> list[Range]:
    """(ImageBase, end, name) of the loaded images a located tree holds (inspector.locate names them
    from the EFI_DEBUG_IMAGE_INFO table and the image's UI sections)."""
    out: list[Range] = []
    if tree is None:
        return out
    for table in tree.find("efi-debug-image-info-table"):
        for img in table.children:
            base, size = img.get("ImageBase"), img.get("ImageSize")
            name = img.get("Name") or (str(img.get("FileGuid")).upper() if img.get("FileGuid") else None)
            if base is not None and size and name and len(out) < MAX_RANGES:
                out.append((base, base + size, name, img.get("FileGuid")))
    return out


def log_module_ranges(tree: Node | None, image=None) -> list[Range]:
    """(ImageBase, end, name, GUID) of the modules a DEBUG build's log says it loaded ("log-module" nodes
    of decoders/edk2log.py under the stop's "debug-log"). DXE lines carry the size; a PEIM's is the
    SizeOfImage of the PE in the image's FFS file of that GUID (the log names it: "Loading PEIM <GUID>")."""
    out: list[Range] = []
    if tree is None:
        return out
    sizes: dict[object, int] = {}
    if image is not None:
        for f in image.root.find("ffs"):
            pe = next((c for c in f.walk() if c.kind == "pe"), None)
            if pe is not None and pe.get("SizeOfImage"):
                sizes.setdefault(f.get("Name"), pe.get("SizeOfImage"))
    import uuid

    for m in tree.walk():
        if m.kind != "log-module" or m.get("ImageBase") is None or not m.get("Name"):
            continue
        guid = m.get("FileName")
        try:
            guid = uuid.UUID(str(guid)) if guid is not None else None
        except ValueError:
            guid = None
        size = m.get("ImageSize") or sizes.get(guid)
        if size and len(out) < MAX_RANGES:
            out.append((m.get("ImageBase"), m.get("ImageBase") + size, m.get("Name"), guid))
    # The latest load of an address wins (a PEIM shadowed, then its pages reused by DXE): newest first.
    return out[::-1]


def image_ranges(image) -> list[Range]:
    """The XIP modules' static ranges of a LoadedImage (inspector.live.phases.compute_handoffs)."""
    if image is None:
        return []
    from inspector.live.phases import compute_handoffs

    return [(s, e, name, None) for s, e, name, _phase in compute_handoffs(image.root, len(image.data)).ranges]


def module_at(address: int | None, ranges: list[Range]) -> tuple[str | None, object]:
    """(name, file GUID) of the module whose range holds `address` (the rule of the live session's
    inspector.live.phases.classify: the first range that holds it)."""
    if address is None:
        return None, None
    from inspector.live.phases import classify

    _phase, name = classify(address, "long64", [(s, e, n, "bds") for s, e, n, _g in ranges])
    guid = next((g for s, e, n, g in ranges if s <= address < e and n == name), None)
    return name, guid


# ---- the wake-up buffer ---------------------------------------------------------------------------
@dataclass
class WakeupBuffer:
    address: int
    size: int | None
    source: str                  # how it was found
    exchange_info: int | None = None
    cpus: list[int] = field(default_factory=list)
    module: str | None = None    # the module that logged it (the last "Loading ... .efi" before)


def _parsed(log):
    """The debug log as decoders/edk2log.py parses it (text, bytes or a LogParser already fed)."""
    from decoders.edk2log import LogParser, parse_log

    return log if isinstance(log, LogParser) else parse_log(log or b"")


def wakeup_buffers(cpus: list[CpuFacts], log="") -> list[WakeupBuffer]:
    """The low-RAM buffers MpInitLib used: each AP in real mode outside the reset state runs from one
    (CS base = the SIPI page), and each "WakeupBufferStart" line of the debug log names one (`log`: its
    text, or a decoders.edk2log.LogParser that read it)."""
    out: dict[int, WakeupBuffer] = {}
    for c in cpus:
        if c.index == BOOT_CPU or c.mode != "real" or c.at_reset_state or c.cs_base is None:
            continue
        if c.cs_base < LOW_RAM and c.cs_base % 0x1000 == 0:
            b = out.setdefault(c.cs_base, WakeupBuffer(c.cs_base, None, f"CS base of AP {c.index} in real mode "
                                                                        f"(SIPI vector 0x{c.cs_base >> 12:02x})"))
            b.cpus.append(c.index)
    parsed = _parsed(log)
    loads = [(m.offset, m.name) for m in parsed.modules if m.name]
    for ev in parsed.of_kind("mp-wakeup-buffer"):
        address, size = ev.get("WakeupBufferStart"), ev.get("WakeupBufferSize")
        if address >= LOW_RAM:          # DxeMpLib.c logs (UINTN)-1 when no page below 0x88000 was free
            continue
        b = out.setdefault(address, WakeupBuffer(address, size, "the debug log's \"WakeupBufferStart\" line "
                                                                "(MpInitLib GetWakeupBuffer)"))
        b.size = size
        b.module = next((name for at, name in reversed(loads) if at < ev.offset), b.module)
    for ev in parsed.of_kind("mp-vector"):
        if ev.get("WakeupBuffer") in out:
            out[ev.get("WakeupBuffer")].exchange_info = ev.get("ExchangeInfo")
    return list(out.values())


# ---- the nodes ----------------------------------------------------------------------------------------
def _after_hlt(c: CpuFacts, memory: Memory | None) -> bool | None:
    """Whether the byte before the linear RIP is HLT (0xF4); None when it cannot be read. Firmware
    runs identity-mapped (OVMF's page tables map VA = PA: MdeModulePkg/Core/DxeIplPeim/X64/
    VirtualMemory.c), so the linear address is read as physical."""
    if memory is None or c.linear_rip is None or c.linear_rip == 0:
        return None
    try:
        return memory.read(c.linear_rip - 1, 1) == bytes([HLT])
    except Unreadable:
        return None


def _state(c: CpuFacts, memory: Memory | None) -> tuple[str, str]:
    """(state, why): wait-for-sipi, parked (in a HLT loop), halted, running or unknown."""
    if c.at_reset_state:
        why = "at the reset state (CS f000 base ffff0000, IP fff0): never started, or INIT again"
        if c.halted is not None:
            why += f"; {c.state_source}" if c.state_source else ""
        return "wait-for-sipi", why
    hlt = _after_hlt(c, memory)
    if c.state is not None and c.state not in ("unknown", ""):
        if c.state == "halted" and hlt:
            return "parked", f"{c.state_source}; RIP is right after a HLT instruction"
        return c.state, c.state_source
    if hlt:
        return "parked", "RIP is right after a HLT instruction (a dump has no halted flag: QEMUCPUState v1)"
    if c.mode == "unknown":
        return "unknown", "no QEMU note: no CR0 or CS cache"
    return "unknown", "not at the reset state and not after a HLT"


def ap_node(c: CpuFacts, bsp: CpuFacts | None, ranges: list[Range], memory: Memory | None) -> Node:
    module, guid = module_at(c.linear_rip, ranges)
    if c.module:
        module, guid = c.module, (guid if c.module == module else None)
    state, why = _state(c, memory)
    rip = f"0x{c.linear_rip:x}" if c.linear_rip is not None else "?"
    where = f" in {module}" if module else ""
    n = Node("ap", f"AP {c.index}: {state}, {c.mode} at {rip}{where}")
    n.add("Index", c.index)
    n.add("State", state, display=f"{state} ({why})")
    n.add("Mode", c.mode)
    if c.rip is not None:
        n.add("Rip", c.rip, display=f"0x{c.rip:x}")
    if c.linear_rip is not None and c.linear_rip != c.rip:
        n.add("LinearRip", c.linear_rip, display=f"0x{c.linear_rip:x} (CS base 0x{c.cs_base or 0:x} + RIP)")
    n.add("Module", module, display=module or "not in a known module")
    if guid is not None:
        n.add("ModuleFile", guid, display=str(guid).upper())
    for name in ("cr0", "cr3", "cr4"):
        value = getattr(c, name)
        if value is not None:
            n.add(name.capitalize(), value, display=f"0x{value:x}")
    if c.cs_selector is not None:
        n.add("CsSelector", c.cs_selector, display=f"0x{c.cs_selector:04x}")
    if c.cs_base is not None:
        n.add("CsBase", c.cs_base, display=f"0x{c.cs_base:x}")
    if bsp is not None and c.cr3 is not None and bsp.cr3 is not None and c.cr3:
        same = c.cr3 == bsp.cr3
        n.add("SameCr3AsBsp", same, display="yes: MpInitLib gives the APs the BSP's CR3" if same
              else f"no: the BSP's is 0x{bsp.cr3:x}")
    if c.node is not None:
        n.add("CpuNode", c.node.title)
    return n


def mp_wakeup_nodes(tree: Node | None) -> list[Node]:
    """A summary of each MADT Multiprocessor Wakeup entry in `tree` and its mailbox
    (decoders/acpi/mpwakeup.py decoded them under the MADT)."""
    out = []
    if tree is None:
        return out
    for entry in tree.walk():
        if entry.kind != "acpi-madt" or entry.get("Type") != 0x10:
            continue
        box = next((c for c in entry.children if c.kind == "mp-wakeup-mailbox"), None)
        n = Node("mp-wakeup", "ACPI MADT Multiprocessor Wakeup: " + (box.title if box is not None else entry.title))
        for name in ("MailBoxVersion", "MailBoxAddress", "ResetVector"):
            if entry.get(name) is not None:
                n.add(name, entry.get(name), display=entry.field(name).text if name != "MailBoxAddress"
                      else f"0x{entry.get(name):x}")
        if box is not None:
            for name in ("Command", "ApicId", "WakeupVector"):
                if box.field(name) is not None:
                    n.add(name, box.get(name), display=box.field(name).text)
        n.problems.extend(entry.problems)
        if box is not None:
            n.problems.extend(box.problems)
        out.append(n)
    return out


def mp_module_nodes(image) -> list[Node]:
    """The image's builds of the MpInitLib modules: name, file GUID, size, and the depex that picks
    MpInitLib (INIT-SIPI-SIPI) or MpInitLibUp (one CPU; TDX) at dispatch."""
    out = []
    if image is None:
        return out
    for f in image.root.find("ffs"):
        if f.get("UI") not in MP_MODULES:
            continue
        n = Node("mp-module", f"{f.get('UI')} {str(f.get('Name')).upper()} (0x{f.size:x} bytes)", f.space, f.offset,
                 f.size)
        n.add("Name", f.get("UI"))
        n.add("FileGuid", f.get("Name"), display=str(f.get("Name")).upper())
        n.add("Size", f.size, display=f"0x{f.size:x}")
        dep = next((d for d in f.walk() if d.kind == "depex"), None)
        if dep is not None and dep.get("Expression"):
            expr = dep.get("Expression")
            n.add("Depex", expr)
            variant = "MpInitLibUp" if "UpDep" in expr else "MpInitLib" if "MpDep" in expr else None
            if variant:
                n.add("Variant", variant, display=variant + (" (one CPU: a TDX guest's)" if variant == "MpInitLibUp"
                                                             else " (wakes the APs with INIT-SIPI-SIPI)"))
        out.append(n)
    return out


def log_facts(log) -> dict[str, int]:
    """What MpInitLib's DEBUG lines say: the AP loop mode and the CPU count (the last of each; the count
    from MpInitLib's "Find %d processors" or CpuDxe's "Detect CPU count", whichever came last)."""
    parsed = _parsed(log)
    out: dict[str, int] = {}
    mode = parsed.last("mp-loop-mode")
    if mode is not None:
        out["ApLoopMode"] = mode.get("ApLoopMode")
    counts = [e for e in parsed.events if e.kind in ("mp-processors", "cpu-count")]
    if counts:
        out["CpuCount"] = counts[-1].get("CpuCount")
    return out


def aps_node(cpus: list[CpuFacts], *, tree: Node | None = None, memory: Memory | None = None, image=None,
             log: str = "", source: str = "") -> Node:
    """The "aps" node: one "ap" per application processor, the wake-up buffers found, the MADT
    Multiprocessor Wakeup entries of `tree`, and the image's MpInitLib modules."""
    ranges = loaded_image_ranges(tree) + log_module_ranges(tree, image) + image_ranges(image)
    bsp = next((c for c in cpus if c.index == BOOT_CPU), None)
    aps = [c for c in cpus if c.index != BOOT_CPU]
    root = Node("aps", f"What the application processors were given: {len(cpus)} CPU{'s' if len(cpus) != 1 else ''}, "
                       f"{len(aps)} AP{'s' if len(aps) != 1 else ''}"
                       + (f" ({source})" if source else ""))
    root.add("CpuCount", len(cpus))
    root.add("ApCount", len(aps))
    if bsp is not None:
        bsp_module = bsp.module or module_at(bsp.linear_rip, ranges)[0]
        root.add("BspModule", bsp_module, display=bsp_module or "not in a known module")
    states: dict[str, int] = {}
    for c in aps:
        n = root.append(ap_node(c, bsp, ranges, memory))
        states[n.get("State")] = states.get(n.get("State"), 0) + 1
    root.add("States", states, display=", ".join(f"{k}: {v}" for k, v in states.items()) or "no APs")
    parsed = _parsed(log)       # once, for the wake-up buffers and the facts below
    for b in wakeup_buffers(cpus, parsed):
        n = root.append(Node("ap-wakeup-buffer", f"MpInitLib wake-up buffer at 0x{b.address:x} ({b.source})"))
        n.add("Address", b.address, display=f"0x{b.address:x}")
        n.add("SipiVector", b.address >> 12, display=f"0x{b.address >> 12:02x}")
        if b.size is not None:
            n.add("Size", b.size, display=f"0x{b.size:x}")
        if b.exchange_info is not None:
            n.add("ExchangeInfo", b.exchange_info, display=f"0x{b.exchange_info:x} (MP_CPU_EXCHANGE_INFO)")
        if b.cpus:
            n.add("RunningFromIt", b.cpus, display=", ".join(f"AP {i}" for i in b.cpus))
        if b.module:
            n.add("Module", b.module, display=f"{b.module} (the module the log loaded last before the line)")
        n.add("Source", b.source)
    if not any(c.kind == "ap-wakeup-buffer" for c in root.children) and aps:
        root.note(None, "no wake-up buffer seen: MpInitLib restores the low-RAM page after each wake-up "
                        "(UefiCpuPkg/Library/MpInitLib/MpLib.c FreeResetVector), so it shows only on an AP "
                        "running in real mode or in the debug log")
    for n in mp_wakeup_nodes(tree):
        root.append(n)
    for n in mp_module_nodes(image):
        root.append(n)
    facts = log_facts(parsed)
    if "ApLoopMode" in facts:
        root.add("ApLoopMode", facts["ApLoopMode"], display=f"{facts['ApLoopMode']} "
                 f"({AP_LOOP_MODES.get(facts['ApLoopMode'], '?')}, debug log)")
    if "CpuCount" in facts:
        root.add("LogCpuCount", facts["CpuCount"], display=f"{facts['CpuCount']} (MpInitLib's count, debug log)")
        if facts["CpuCount"] != len(cpus) and cpus:
            root.warn(None, f"the debug log's MpInitLib counted {facts['CpuCount']} CPUs, the target has {len(cpus)}")
    return root


def dump_aps_node(dump, tree: Node | None = None, image=None) -> Node:
    """The "aps" node of a dump: its CPUs, the loaded images and ACPI `tree` (dump_overview's) holds."""
    cpu_nodes = [] if tree is None else [n for n in tree.find("cpu")]
    return aps_node(facts_from_dump(dump, cpu_nodes), tree=tree, memory=dump.memory, image=image,
                    source="from the dump's CPU notes")


def stop_aps_node(stop, image=None) -> Node:
    """The "aps" node of a live or replayed Stop (its cpus, tree and debug log)."""
    return aps_node(facts_from_stop(stop), tree=stop.tree, image=image, log=stop.log,
                    source=f"at stop {stop.index}, {stop.phase}")


__all__ = ["CpuFacts", "facts_from_dump", "facts_from_stop", "aps_node", "dump_aps_node", "stop_aps_node",
           "wakeup_buffers", "module_at", "loaded_image_ranges", "mp_wakeup_nodes", "mp_module_nodes", "log_facts"]
