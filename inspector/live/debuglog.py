"""The debug log at a live stop: what the guest wrote to the debug console so far, parsed
(decoders/edk2log.py), and checked against what the session derived without it.

`DebugLog(read)` follows the debugcon file (`read(offset, size)` returns the bytes QEMU wrote there,
inspector/live/qemu.py QemuProcess.read_debug_log) and feeds what is new at each stop to one
incremental LogParser. `node(...)` builds the stop's "Debug log" node: the counts, the modules the log
names, the most recent events in full, and a cross-check:

- modules: every image the log says is loaded now (the latest `Loading PEIM/driver at` at each base,
  unless its start failed) that the session also knows at that base (ModuleTracker images: the image's
  XIP modules, the copies it followed, the debug image info table) must carry the same name, and the
  same size where both know one; an image the session found at run time (not an XIP module of the
  image) must be loaded at that base by the log;
- handoffs: at the dxe-ipl, dxe-core and bds handoffs the module's ImageBase and EntryPoint the
  session derived from its copy are those of its `Loading ... at` line (and of `Loading DXE CORE at`
  at dxe-core: MdeModulePkg/Core/DxeIplPeim/DxeLoad.c, DxeLoadCore);
- memory, against the HOB list decoded at the stop: PeiInstallPeiMemory's range is the PHIT's
  [EfiMemoryBottom, EfiMemoryTop) (MdeModulePkg/Core/Pei/PeiMain/PeiMain.c, PeiCore, sets them from
  PhysicalMemoryBegin/Length); PlatformGetLowMemoryCB's LowMemory is the end of system memory below
  4 GiB in the resource descriptor HOBs, each `Reserved [a, b)` of PlatformAddHobCB a reserved resource
  descriptor and each `HighMemory [a, b)` inside system memory (OvmfPkg/Library/PlatformInitLib/
  MemDetect.c); every `Memory Allocation`, the `Stack Hob` line and the reserved variable store a
  memory allocation HOB, the `FV Hob` line a firmware volume HOB; `HOBLIST address in DXE` the HOB list found at the stop (the
  gEfiHobListGuid configuration table). That is DxeCore's copy: CoreInitializeGcdServices
  (MdeModulePkg/Core/Dxe/Gcd/Gcd.c) moves the list PEI handed over in RCX before DxeMain prints it.

A disagreement is an error on the cross-check node (located at the log line's byte offset); agreement
is counted in its title ("cross-check: 17 modules agree, 14 memory facts agree").
"""
from __future__ import annotations

from typing import Callable

from decoders.edk2log import LogParser, Module, attach_notes, event_node, modules_node, summary_fields
from decoders.model import Node, Space

# Bytes of new log read and parsed at one stop: a DEBUG boot to the shell writes ~100 KB in all; a
# runaway guest is parsed a slice per stop rather than stalling one stop for long.
MAX_READ_PER_STOP = 16 << 20
# Bytes of log parsed in one session: past this the rest is not read (RSS stays bounded: the parser
# keeps at most MAX_EVENTS events).
MAX_LOG_TOTAL = 256 << 20
# Events shown in full on a stop (the counts cover the rest).
RECENT_EVENTS = 64
FOUR_GIB = 1 << 32
# PiHob.h
HOB_HANDOFF, HOB_MEMORY_ALLOCATION, HOB_RESOURCE_DESCRIPTOR, HOB_FV = 1, 2, 3, 5
EFI_RESOURCE_SYSTEM_MEMORY, EFI_RESOURCE_MEMORY_RESERVED = 0, 5
EFI_RUNTIME_SERVICES_DATA = 6            # EFI_MEMORY_TYPE, MdePkg/Include/Uefi/UefiMultiPhase.h
HANDOFF_KINDS = ("dxe-ipl-entry", "dxe-core-entry", "bds-entry")


class DebugLog:
    """One session's debug log, parsed as it grows."""

    def __init__(self, read: Callable[[int, int], bytes]):
        self.read = read
        self.parser = LogParser()
        self.space = Space("debugcon", None, None)
        self.unread = 0            # bytes known to be there but not parsed yet (past MAX_READ_PER_STOP)

    def update(self) -> None:
        """Parse what the guest wrote since the last call (bounded)."""
        p = self.parser
        offset = p.bytes + p.pending
        budget = min(MAX_READ_PER_STOP, MAX_LOG_TOTAL - offset)
        if budget <= 0:
            return
        data = self.read(offset, budget + 1)
        self.unread = max(0, len(data) - budget)
        p.feed(data[:budget])

    def node(self, tree: Node | None, images, static_bases: set[int]) -> Node:
        p = self.parser
        node = Node("debug-log", f"Debug log: {p.lines:,} lines, {p.counts['peim-load']} PEIM and "
                                 f"{p.counts['driver-load']} driver loads", self.space, 0, p.bytes)
        summary_fields(node, p)
        if p.pending:
            node.add("PendingLine", p.pending, display=f"{p.pending:,} bytes of a line not ended yet")
        if self.unread or p.bytes + p.pending >= MAX_LOG_TOTAL:
            node.note(None, "more log than one stop parses: the rest is parsed at the next stops"
                      if self.unread else f"the first {MAX_LOG_TOTAL:,} bytes of the log are parsed, no more")
        attach_notes(node, p)
        node.append(cross_check(p, images, static_bases, tree, self.space))
        node.append(modules_node(p, self.space))
        recent = p.events[-RECENT_EVENTS:]
        total = sum(p.counts.values())
        events = node.append(Node("log-events", f"the last {len(recent)} of {total:,} events", self.space))
        for ev in recent:
            events.append(event_node(ev, self.space))
        return node


def _name_matches(mod: Module, name: str) -> bool:
    if name.lower() == mod.name.lower():
        return True
    return mod.guid is not None and name.upper() == str(mod.guid).upper()


def _hobs(tree: Node | None) -> tuple[Node | None, list[Node]]:
    if tree is None:
        return None, []
    hl = next(tree.find("hob-list"), None)
    return (hl, [c for c in hl.children if c.kind == "hob"]) if hl is not None else (None, [])


def cross_check(p: LogParser, images, static_bases: set[int], tree: Node | None,
                space: Space | None = None) -> Node:
    """The "debug-log-cross-check" node: agreements counted, disagreements as located errors."""
    node = Node("debug-log-cross-check", "", space)
    modules = facts = 0
    if not p.modules and not p.events:
        node.title = "cross-check: the log names no module and no memory fact (not a DEBUG build?)"
        return node
    by_base = {img.base: img for img in images}
    # Images the log says are loaded, against the session's image at the same base.
    for mod in p.loaded():
        img = by_base.get(mod.base)
        if img is None:
            continue
        if not img.name.startswith("image@") and not _name_matches(mod, img.name):
            node.problem(mod.offset, f"line {mod.line}: the log loads {mod.name or '(no name)'} at 0x{mod.base:x}; "
                                     f"the session has {img.name} there")
        elif mod.size and img.size and mod.size != img.size:
            node.problem(mod.offset, f"line {mod.line}: the log gives {mod.name} at 0x{mod.base:x} 0x{mod.size:x} "
                                     f"bytes; the session 0x{img.size:x}")
        else:
            modules += 1
    # Images the session found at run time: the log must have loaded that name at that base.
    logged = {m.name.lower() for m in p.modules} | {str(m.guid).upper() for m in p.modules if m.guid}
    for img in images:
        if img.base in static_bases or img.name.startswith("image@"):
            continue
        if img.name.lower() not in logged and img.name.upper() not in logged:
            continue        # not a module whose load this log names (yet)
        if not any(m.base == img.base and _name_matches(m, img.name) for m in p.modules):
            bases = ", ".join(f"0x{m.base:x} (line {m.line})" for m in p.modules if _name_matches(m, img.name))
            node.problem(None, f"the session found {img.name} at 0x{img.base:x}; the log loads it at {bases}")
    # The handoff stop's module, from its copy: ImageBase and EntryPoint.
    entry = tree if tree is not None and tree.kind in HANDOFF_KINDS else None
    if entry is not None and entry.get("Module") and entry.get("ImageBase") is not None:
        name, base, ep = entry.get("Module"), entry.get("ImageBase"), entry.get("EntryPoint")
        loads = [m for m in p.modules if _name_matches(m, name)]
        hit = next((m for m in reversed(loads) if m.base == base), None)
        if hit is None:
            where = ", ".join(f"0x{m.base:x} (line {m.line})" for m in loads) or "nowhere before this stop"
            node.problem(None, f"{name} entry: the session has its image at 0x{base:x}; the log loads it at {where}")
        elif hit.entry != ep:
            node.problem(hit.offset, f"line {hit.line}: the log gives {name}'s entry 0x{hit.entry:x}; the session "
                                     f"stopped at 0x{ep:x}")
        else:
            modules += 1
        if tree.kind == "dxe-core-entry":
            core = p.last("dxe-core-load")
            if core is None:
                node.problem(None, "dxe-core entry: no `Loading DXE CORE at` line before it")
            elif (core.get("ImageBase"), core.get("EntryPoint")) != (base, ep):
                node.problem(core.offset, f"line {core.line}: the log loads the DXE core at 0x{core.get('ImageBase'):x} "
                                          f"entry 0x{core.get('EntryPoint'):x}; the session has 0x{base:x} entry 0x{ep:x}")
            else:
                facts += 1
    facts += _memory(p, tree, node)
    node.title = f"cross-check: {modules} modules agree, {facts} memory facts agree"
    if node.problems:
        node.title += f", {len(node.problems)} disagree"
    return node


def _memory(p: LogParser, tree: Node | None, node: Node) -> int:
    """Memory facts of the log against the HOB list decoded at this stop; returns the agreements."""
    agree = 0

    def check(ok: bool, ev, message: str) -> None:
        nonlocal agree
        if ok:
            agree += 1
        else:
            node.problem(ev.offset, f"line {ev.line}: {message}")

    hl, hobs = _hobs(tree)
    ev = p.last("hob-list")
    address = hl.get("Address") if hl is not None else None
    if ev is not None and address is not None and tree is not None and tree.kind != "dxe-core-entry":
        check(address == ev.get("HobList"), ev,
              f"HOBLIST address in DXE 0x{ev.get('HobList'):x}; the HOB list decoded here is at 0x{address:x}")
    if hl is None:
        return agree
    by_type: dict[int, list[Node]] = {}
    for h in hobs:
        by_type.setdefault(h.get("HobType"), []).append(h)
    phit = next(iter(by_type.get(HOB_HANDOFF, [])), None)
    ev = p.last("pei-memory")
    if ev is not None and phit is not None:
        begin, length = ev.get("MemoryBegin"), ev.get("MemoryLength")
        bottom, top = phit.get("EfiMemoryBottom"), phit.get("EfiMemoryTop")
        check((bottom, top) == (begin, begin + length), ev,
              f"PEI memory [0x{begin:x}, 0x{begin + length:x}); the PHIT has EfiMemoryBottom 0x{bottom:x}, "
              f"EfiMemoryTop 0x{top:x}")
    resources = [(h.get("ResourceType"), h.get("PhysicalStart"), h.get("PhysicalStart") + h.get("ResourceLength"))
                 for h in by_type.get(HOB_RESOURCE_DESCRIPTOR, [])
                 if h.get("PhysicalStart") is not None and h.get("ResourceLength") is not None]
    ev = p.last("low-memory")
    if ev is not None and resources:
        low = [end for rtype, _start, end in resources if rtype == EFI_RESOURCE_SYSTEM_MEMORY and end <= FOUR_GIB]
        top = max(low, default=None)
        check(top == ev.get("LowMemory"), ev,
              f"LowMemory 0x{ev.get('LowMemory'):x}; system memory below 4 GiB in the resource descriptor HOBs "
              f"ends at {'nothing' if top is None else hex(top)}")
    for ev in p.of_kind("reserved-memory"):
        check((EFI_RESOURCE_MEMORY_RESERVED, ev.get("Base"), ev.get("End")) in resources, ev,
              f"reserved [0x{ev.get('Base'):x}, 0x{ev.get('End'):x}): no reserved resource descriptor HOB with "
              f"that range")
    for ev in p.of_kind("high-memory"):
        check(any(rtype == EFI_RESOURCE_SYSTEM_MEMORY and s <= ev.get("Base") and ev.get("End") <= e
                  for rtype, s, e in resources), ev,
              f"high memory [0x{ev.get('Base'):x}, 0x{ev.get('End'):x}): no system memory resource descriptor "
              f"HOB holds it")
    allocations = {(h.get("MemoryType"), h.get("MemoryBaseAddress"), h.get("MemoryLength"))
                   for h in by_type.get(HOB_MEMORY_ALLOCATION, [])}
    seen: set[tuple] = set()
    for ev in p.of_kind("memory-allocation"):
        key = (ev.get("MemoryType"), ev.get("MemoryBaseAddress"), ev.get("MemoryEnd") - ev.get("MemoryBaseAddress") + 1)
        if key in seen:
            continue            # the PEI and DXE cores both list the allocations: check each once
        seen.add(key)
        check(key in allocations, ev, f"memory allocation HOB type {key[0]} [0x{key[1]:x}, 0x{key[1] + key[2]:x}) "
                                      f"is not in the HOB list decoded here")
    ev = p.last("stack-hob")
    if ev is not None:
        check(any(b == ev.get("BaseAddress") and n == ev.get("Length") for _t, b, n in allocations), ev,
              f"stack HOB [0x{ev.get('BaseAddress'):x}, +0x{ev.get('Length'):x}) is not a memory allocation HOB here")
    ev = p.last("variable-store")
    if ev is not None:
        # AllocateRuntimePages (EFI_SIZE_TO_PAGES (VarStoreSize)), printed as VarStoreSize / 1024 KiB
        # (PlatformInitLib/Platform.c, PlatformReserveEmuVariableNvStore): whole pages of runtime data.
        base, size = ev.get("Base"), ev.get("SizeKB") * 1024
        check(any(t == EFI_RUNTIME_SERVICES_DATA and b == base and 0 <= n - size < 0x1400 for t, b, n in allocations),
              ev, f"variable store at 0x{base:x} ({size // 1024} KiB): no runtime-data memory allocation HOB there")
    fvs = {(h.get("BaseAddress"), h.get("Length")) for h in by_type.get(HOB_FV, [])}
    for ev in p.of_kind("fv-hob"):
        base, end = ev.get("BaseAddress"), ev.get("End")
        check((base, end - base + 1) in fvs, ev, f"FV HOB [0x{base:x}, 0x{end + 1:x}) is not in the HOB list here")
    return agree


__all__ = ["DebugLog", "cross_check"]
