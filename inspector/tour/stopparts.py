"""What the handoff chapters (inspector/tour/stops.py) share: finding nodes in a stop's tree, register
values and their bits, the page-table and control-register sentences, and the checks against the
debug log node (inspector/live/debuglog.py).

Each helper takes the chapter's Writer, so every value it writes still leads back to its node.
"""
from __future__ import annotations

from typing import Any

from decoders.model import Node
from inspector.live.session_api import Stop
from inspector.tour.model import Value, Writer

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

MODES = {"real": "real mode (16-bit)", "prot16": "16-bit protected mode", "prot32": "32-bit protected mode",
         "long64": "64-bit long mode"}


def child_of(node: Node | None, kind: str) -> Node | None:
    if node is None:
        return None
    return next((c for c in node.children if c.kind == kind), None)


def find_in(node: Node | None, kind: str) -> Node | None:
    return None if node is None else next(node.find(kind), None)


def reg_value(w: Writer, stop: Stop, name: str, width: int = 0) -> Value | None:
    """A register of the stop, linked to the stop's registers node (registers_node) and its field."""
    value = stop.registers.get(name)
    if value is None:
        return None
    return w.field(f"reg_{name}", registers_node(stop), name, text=f"0x{value:0{width}x}")


def registers_node(stop: Stop) -> Node:
    """The stop's registers as a node of their own, outside the stop's tree (the live screen shows
    them in its register pane): what a chapter's register values link to, so choosing one in the app
    shows every register of the stop with that one selected."""
    node = Node("cpu-registers", f"Registers at stop {stop.index} ({stop.mode}, linear RIP 0x{stop.linear_rip:x})")
    for name, value in stop.registers.items():
        node.add(name, value, display=f"0x{value:x}")
    return node


def bits_text(value: int, names: list[tuple[int, str, str, str]]) -> str:
    """"PE set (protected mode), PG clear (...)": each (bit, name, meaning when set, when clear)."""
    return ", ".join(f"{name} {'set' if value & bit else 'clear'} ({on if value & bit else off})"
                     for bit, name, on, off in names)


def hx(value: Any) -> str:
    """An address or value in hex for a message; "?" when the tree lacks it."""
    return f"0x{value:x}" if isinstance(value, int) else "?"


def plus(a: Any, b: Any) -> int | None:
    """a + b when both are numbers the tree holds, else None."""
    return a + b if isinstance(a, int) and isinstance(b, int) else None


def short_name(text: str) -> str:
    """A GUID's name from its display ("gEfiHobListGuid (7739F24C-...)" -> "gEfiHobListGuid")."""
    return text.split(" (")[0]


def as_bytes(value: Any) -> bytes | None:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):          # a recording keeps bytes as hex text
        try:
            return bytes.fromhex(value.replace(" ", ""))
        except ValueError:
            return None
    return None


def debug_log_of(tree: Node | None) -> Node | None:
    return child_of(tree, "debug-log")


def log_events(log: Node | None, kind: str) -> list[Node]:
    events = child_of(log, "log-events")
    return [] if events is None else [e for e in events.children if e.kind == kind]


def log_module(log: Node | None, name: str) -> Node | None:
    """The latest `Loading ... at` of `name` the log names."""
    mods = child_of(log, "log-modules")
    hits = [] if mods is None else [m for m in mods.children if str(m.get("Name", "")).lower() == name.lower()]
    return hits[-1] if hits else None


def cross_check_problems(w: Writer, tree: Node | None) -> None:
    check = child_of(debug_log_of(tree), "debug-log-cross-check")
    for p in check.problems if check is not None else ():
        w.unexpected(f"the debug log disagrees with the session: {p.message}")


def page_tables_story(w: Writer, stop: Stop, entry: Node, who: str) -> None:
    pages = child_of(entry, "page-tables")
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
        w.unexpected(f"the page tables decoded here are at {hx(pages.get('CR3'))}, not at CR3 {hx(reg)}")
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
        w.say("Merged, they are {ranges} " + ("range" if len(ranges) == 1 else "ranges")
              + ": {nx_ranges} of them no-execute (NX), {ro_ranges} read-only.", n_ranges, n_nx, n_ro)
    for p in pages.problems:
        if p.severity.value == "error":
            w.unexpected(f"the page-table walk found a problem: {p.message}")


def module_against_log(w: Writer, entry: Node, log: Node | None) -> None:
    """The handoff's module (its copy, as the session followed it) against its `Loading ... at` line."""
    name, base, ep = entry.get("Module"), entry.get("ImageBase"), entry.get("EntryPoint")
    if log is None or not name or base is None:
        return
    mod = log_module(log, str(name))
    if mod is None:
        w.unexpected(f"the debug log names no load of {name} before this stop")
        return
    if (mod.get("ImageBase"), mod.get("EntryPoint")) != (base, ep):
        w.unexpected(f"the debug log loads {name} at {hx(mod.get('ImageBase'))} (entry {hx(mod.get('EntryPoint'))}, "
                     f"line {mod.get('Line')}); this chapter has {hx(base)} (entry {hx(ep)})")
        return
    line = w.field("log_line", mod, "Line", text=str(mod.get("Line")))
    w.say("The debug log agrees: its line {log_line} loads it at that base, with that entry point.", line)


def control_registers(w: Writer, stop: Stop) -> None:
    regs = stop.registers
    if not all(k in regs for k in ("cr0", "cr4", "efer")):
        return
    cr0, cr4, efer = reg_value(w, stop, "cr0"), reg_value(w, stop, "cr4"), reg_value(w, stop, "efer")
    w.say("CR0 {reg_cr0}: " + bits_text(regs["cr0"], [(CR0_PE, "PE", "protected mode", "real mode"),
                                                   (CR0_PG, "PG", "paging on", "paging off")])
          + ". CR4 {reg_cr4}: " + bits_text(regs["cr4"], [(CR4_PAE, "PAE", "64-bit page-table entries", "32-bit entries"),
                                                      (CR4_LA57, "LA57", "5-level paging", "4-level paging")])
          + ". EFER {reg_efer}: " + bits_text(regs["efer"], [(EFER_LME, "LME", "long mode enabled", "no long mode"),
                                                         (EFER_LMA, "LMA", "long mode active", "not active"),
                                                         (EFER_NXE, "NXE", "NX bit honoured", "NX bit reserved")])
          + " (Intel SDM vol. 3A 2.5, 4.1).", cr0, cr4, efer)
    long_active = bool(regs["efer"] & EFER_LMA)
    if long_active != (str(stop.mode) == "long64"):
        w.unexpected(f"EFER.LMA is {'set' if long_active else 'clear'} but the stop's mode is {stop.mode}")


def flash_base(image) -> int | None:
    """Where the flash image is mapped: its last byte at 4 GiB - 1 (OvmfPkg/OvmfPkgX64.fdf [FD.OVMF])."""
    data = getattr(image, "data", None) if image is not None else None
    return None if data is None else (1 << 32) - len(data)


def size_text(n: int | None) -> str:
    if not isinstance(n, int):
        return "?"
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{hx(n)} bytes"
