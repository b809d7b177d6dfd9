"""Which modules a live session knows to be loaded where: breakpoints by module, image-load events
without symbols, and the DXE tables once DxeCore has made them.

- Breakpoints by address or by module (FFS UI name or file GUID) + offset (phases.parse_breakpoint):
  XIP modules (SECFV, PEIFV) are armed at once; DXE modules are pending until loaded.
- Breakpoints by function name with --symbols ("CoreDispatcher", "DxeCore!CoreInstallProtocolInterface"):
  the module is found from the symbol tables alone (symbols.SymbolIndex.modules_with), its .debug
  checked against the module's code in the image, and the name becomes MODULE+OFFSET with OFFSET =
  ELF address - ELF .text sh_addr + PE .text VirtualAddress; then as above.
- Image loads: once DxeCore has made the debug image info table (MdeModulePkg/Core/Dxe/Misc/
  DebugImageInfo.c CoreInitializeDebugImageInfoTable, found through the EFI_SYSTEM_TABLE_POINTER),
  a write watchpoint on its UpdateStatus stops the guest at every update
  (CoreNewDebugImageInfoEntry sets EFI_DEBUG_IMAGE_INFO_UPDATE_IN_PROGRESS, adds the entry, clears
  it). When the update is complete the new entries are read, named by their FvFile's UI section,
  and pending breakpoints are armed at ImageBase + offset. Before the table exists, a read
  watchpoint on DXEFV's '_FVH' stops the guest once DxeCore dispatches (the FV protocols read the
  header after CoreInitializeDebugImageInfoTable).
- The DXE tables (system table, HOB list, ACPI, event logs, loaded images) by inspector.locate.

Nothing here builds a Stop: a run that ends elsewhere is an Outcome for the session (runctl.py).
"""
from __future__ import annotations

import re
import struct
import uuid
from typing import Callable

from decoders.efi.structs import EFI_DEBUG_IMAGE_INFO_TABLE_HEADER, EFI_DEBUG_IMAGE_INFO_UPDATE_IN_PROGRESS
from decoders.efi.tables import GUID_DEBUG_IMAGE_INFO, decode_debug_image_entry
from decoders.memory import Memory, Unreadable
from decoders.model import Node
from inspector.locate import config_table_addresses, locate, system_table, ui_names
from inspector.live.phases import BootState, Breakpoint, parse_breakpoint
from inspector.live.runctl import Outcome, release, remaining
from inspector.live.session_api import Phase
from inspector.live.symbols import LoadedModule, SymbolIndex
from inspector.live.target import StopEvent, Target, TargetTimeout

# RAM scanned for the EFI_SYSTEM_TABLE_POINTER when the HOBs did not say where RAM is: below the
# q35/i440fx PCI hole (reading MMIO through the stub could touch devices).
DEFAULT_RAM = [(0, 0x80000000)]
# DXEFV header reads waited for while DxeCore builds its tables (the FV protocols read it once or twice).
MAX_TABLE_WAIT_STOPS = 64
# EFI_FIRMWARE_VOLUME_HEADER.Signature ('_FVH') offset (PiFirmwareVolume.h): read-watched to stop
# inside DxeCore once it dispatches, when the debug image info table exists.
FV_SIGNATURE_OFFSET = 0x28
FV_SIGNATURE_SIZE = 4
# DxeCore grows the pointer array a page at a time and leaves NULL holes for unloaded images
# (DebugImageInfo.c CoreRemoveDebugImageInfoEntry): read this many slots past TableSize.
SLACK_SLOTS = 64
MAX_DEBUG_SLOTS = 4096
DEBUG_HEADER = EFI_DEBUG_IMAGE_INFO_TABLE_HEADER(8)
RESET_VECTOR_NAME = "ResetVector"
# A C identifier, or a symbol name GCC derives from one (`Foo.part.0`, `Foo.lto_priv.1`).
FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.$@]*$")
# Modules listed in an "ambiguous name" error.
MAX_LISTED = 12


class ModuleTracker:
    """Breakpoints by module, the image-load watch and the loaded images of one live session."""

    def __init__(self, target: Target, phys: Memory, image, boot: BootState, call_timeout: float,
                 symbols: SymbolIndex | None = None):
        self.target = target
        self.phys = phys
        self.image = image                              # inspector.image.LoadedImage
        self.boot = boot
        self.call_timeout = call_timeout
        self.ui_names = ui_names(image.root)
        self.symbols = symbols                          # --symbols, for breakpoints by function name
        self.breakpoints: dict[str, Breakpoint] = {}
        self.loaded: dict[int, tuple[str, uuid.UUID | None, int]] = {}   # ImageBase -> (name, guid, size)
        self.debug_header: int | None = None            # &mDebugInfoTableHeader, once DXE made it
        self.load_watch: int | None = None              # its UpdateStatus, write-watched
        self.load_events = 0
        self.logs: dict[str, int] = {}                  # event-log format -> address, once found
        self._debug_entries: set[int] = set()           # EFI_DEBUG_IMAGE_INFO_NORMAL pointers seen
        self._debug_size: int | None = None

    # ---- breakpoints by module ----------------------------------------------------------------
    def add_breakpoint(self, spec: str) -> Breakpoint:
        """"0xADDR", "MODULE+OFFSET" or "MODULE" (its entry); MODULE an FFS UI name or file GUID;
        with symbols also "FUNCTION" or "MODULE!FUNCTION". A module not loaded yet gives a pending
        breakpoint, armed when DxeCore loads it. Raises ValueError for a bad spec, TargetError when
        the target refuses."""
        if spec in self.breakpoints:
            return self.breakpoints[spec]
        text = spec.strip()
        if "!" in text:
            module, _, function = text.partition("!")
            bp = self._function_breakpoint(spec, module.strip(), function.strip())
        else:
            try:
                bp = parse_breakpoint(spec, self.image.root, len(self.image.data))
            except ValueError:
                if not FUNCTION_NAME.match(text) or "+" in text:
                    raise
                bp = None
            if bp is None:      # not a module: a function name
                bp = self._function_breakpoint(spec, None, text)
        if bp.pending:
            self._resolve(bp)
        if bp.address is not None and bp.address not in self.user_addresses():
            self.target.set_breakpoint(bp.address, self.call_timeout)
        self.breakpoints[spec] = bp
        return bp

    def _function_breakpoint(self, spec: str, module: str | None, function: str) -> Breakpoint:
        """A breakpoint on `function` (of `module`, else of the one module whose symbols have it)."""
        if self.symbols is None:
            raise ValueError(f"{spec!r}: no module of that name; breaking on a function by name needs "
                             "--symbols DIR (the build's .debug files)")
        if not FUNCTION_NAME.match(function):
            raise ValueError(f"{spec!r}: {function!r} is not a function name")
        in_image = {}
        for ffs in self.image.root.find("ffs"):
            ui = ffs.get("UI")
            if ui and any(c.kind == "pe" for c in ffs.walk()):
                in_image.setdefault(ui.lower(), []).append(ffs)
        if module:
            if module.lower() not in in_image:
                raise ValueError(f"{spec!r}: no module named {module!r} (an FFS UI name) in the image")
            names = [module]
        else:
            found = self.symbols.modules_with(function)
            names = [m for m in found if m.lower() in in_image]
            if not names:
                where = f" (only in {', '.join(found[:MAX_LISTED])}, not in the image)" if found else ""
                raise ValueError(f"{spec!r}: no function {function!r} in the symbols of {self.symbols.root}{where}")
            if len(names) > 1:
                listed = ", ".join(names[:MAX_LISTED]) + (f" and {len(names) - MAX_LISTED} more"
                                                          if len(names) > MAX_LISTED else "")
                raise ValueError(f"{spec!r}: {function} is in {len(names)} modules ({listed}): "
                                 f"name one, e.g. {names[0]}!{function}")
        targets = []
        problems: list[str] = []
        for ffs in in_image[names[0].lower()]:
            pe = next(c for c in ffs.walk() if c.kind == "pe")
            rvas, path, why = self.symbols.function_in_pe(ffs.get("UI"), ffs.get("Name"), bytes(pe.bytes), function)
            problems += why
            targets += [(ffs, rva, path) for rva in rvas]
        if not targets:
            detail = "; ".join(problems) if problems else f"no symbol {function!r} in {names[0]}'s symbols"
            raise ValueError(f"{spec!r}: {detail}")
        if len(targets) > 1:
            listed = ", ".join(f"{str(f.get('Name')).upper()}+0x{rva:x}" for f, rva, _ in targets[:MAX_LISTED])
            raise ValueError(f"{spec!r}: {len(targets)} functions {function!r} in {names[0]} ({listed}): "
                             "give one as MODULE+OFFSET")
        ffs, rva, path = targets[0]
        bp = parse_breakpoint(f"{str(ffs.get('Name')).upper()}+0x{rva:x}", self.image.root, len(self.image.data))
        bp.spec = spec
        bp.where = (f"{bp.where}; " if bp.where else "") + f"{function} = {bp.module}+0x{rva:x} ({path.name})"
        return bp

    def remove_breakpoint(self, spec: str) -> None:
        bp = self.breakpoints.pop(spec, None)
        if bp is not None and bp.address is not None and bp.address not in self.user_addresses():
            self.target.remove_breakpoint(bp.address, self.call_timeout)

    def user_addresses(self) -> set[int]:
        return {b.address for b in self.breakpoints.values() if b.address is not None}

    def pending(self) -> list[Breakpoint]:
        return [b for b in self.breakpoints.values() if b.pending]

    def _resolve(self, bp: Breakpoint) -> bool:
        for base, (name, guid, _size) in self.loaded.items():
            if bp.matches(name, guid):
                bp.address, bp.where = base + bp.offset, f"{name} loaded at 0x{base:x}"
                return True
        return False

    # ---- image-load events ----------------------------------------------------------------------
    def is_load_event(self, ev: StopEvent) -> bool:
        return ev.reason == "watchpoint" and self.load_watch is not None and ev.address == self.load_watch

    def find_debug_header(self) -> int | None:
        """&mDebugInfoTableHeader: the gEfiDebugImageInfoTableGuid configuration table."""
        if self.debug_header is None:
            st = system_table(self.phys, self.boot.ram_or(DEFAULT_RAM))
            self.debug_header = config_table_addresses(st).get(GUID_DEBUG_IMAGE_INFO)
        return self.debug_header

    def wait_for_debug_table(self, deadline: float, dxefv_base: Callable[[], int | None]) -> Outcome | None:
        """Arm the UpdateStatus write watch; first, when DxeCore has not made the table yet, run to
        a read of DXEFV's '_FVH' (at `dxefv_base()`). None when armed, else how the run ended."""
        t = self.target
        if self.find_debug_header() is None:
            fv = dxefv_base()
            if fv is None:
                return Outcome(problem="no DXEFV in RAM: image-load events cannot be watched")
            sig = fv + FV_SIGNATURE_OFFSET
            t.set_watchpoint(sig, FV_SIGNATURE_SIZE, "read", self.call_timeout)
            outcome = None
            try:
                for _ in range(MAX_TABLE_WAIT_STOPS):
                    try:
                        ev = t.cont(remaining(deadline))
                    except TargetTimeout:
                        outcome = Outcome(timed_out=True, problem="the debug image info table did not appear in time")
                        return outcome
                    if ev.reason != "watchpoint" or ev.address != sig:
                        outcome = Outcome(event=ev)
                        return outcome
                    if self.find_debug_header() is not None:
                        break
                else:
                    outcome = Outcome(problem=f"no debug image info table after {MAX_TABLE_WAIT_STOPS} "
                                              "DXEFV header reads")
                    return outcome
            finally:
                if outcome is None or not outcome.exited:
                    release(t, self.call_timeout, watches=[(sig, FV_SIGNATURE_SIZE, "read")])
        t.set_watchpoint(self.debug_header, 4, "write", self.call_timeout)
        self.load_watch = self.debug_header
        self.on_load_event(check_rip=False)
        return None

    def on_load_event(self, check_rip: bool = True) -> None:
        """DxeCore changed the debug image info table: when the update is complete (UPDATE_IN_PROGRESS
        clear), read the new entries, name the images and arm the pending breakpoints."""
        self.load_events += 1
        if check_rip:
            # Only DxeCore's writes are load events: other code may reuse the page.
            core = self.boot.handoffs.modules.get(Phase.DXE_CORE)
            span = next(((a, b) for a, b, n, ph in self.boot.ranges
                         if ph == Phase.DXE_CORE and core is not None and n == core.name), None)
            pc = self.target.read_registers(self.call_timeout).pc
            if span is not None and not span[0] <= pc < span[1]:
                return
        raw = self.target.read_physical(self.debug_header, DEBUG_HEADER.sizeof(), self.call_timeout)
        h = DEBUG_HEADER.parse(raw, 0)
        size, table = h.TableSize, h.EfiDebugImageInfoTable
        if h.UpdateStatus & EFI_DEBUG_IMAGE_INFO_UPDATE_IN_PROGRESS or size == self._debug_size or not table:
            return
        self._debug_size = size
        slots = min(MAX_DEBUG_SLOTS, size + SLACK_SLOTS)
        try:
            raw = self.target.read_physical(table, slots * 8, self.call_timeout)
        except Unreadable:
            return
        ptrs = [p for (p,) in struct.iter_unpack("<Q", raw) if p]
        for p in ptrs[:size]:
            if p in self._debug_entries:
                continue
            self._debug_entries.add(p)
            e = decode_debug_image_entry(self.phys, p, 8)
            base, isize = e.get("ImageBase"), e.get("ImageSize")
            if base:
                self.learn_image(base, isize or 0, e.get("FvFileName"))

    def learn_image(self, base: int, size: int, guid: uuid.UUID | None) -> str:
        """Record an image DxeCore loaded (its range goes to the phase classifier) and arm the
        pending breakpoints it resolves."""
        known = next((n for a, _b, n, _p in self.boot.ranges if a == base), None)
        name = self.ui_names.get(guid) or known or (str(guid).upper() if guid else f"image@0x{base:x}")
        if base not in self.loaded:
            self.loaded[base] = (name, guid, size)
            if self.symbols is not None:
                self.symbols.forget(base)       # what was at this base before is gone
            if size and not any(r[0] == base for r in self.boot.ranges):
                bds = self.boot.handoffs.modules.get(Phase.BDS)
                is_bds = bds is not None and (guid == bds.guid or name == bds.name)
                self.boot.ranges.append((base, base + size, name, Phase.BDS if is_bds else Phase.DXE_CORE))
            for bp in self.pending():
                armed = self.user_addresses()
                if self._resolve(bp) and bp.address not in armed:
                    self.target.set_breakpoint(bp.address, self.call_timeout)
        return name

    def images(self) -> list[LoadedModule]:
        """The images whose base is known: XIP modules of the image, the ones found by following
        copies, and those of the debug image info table."""
        out = {start: LoadedModule(name, start, end - start, self.loaded.get(start, (None, None))[1])
               for start, end, name, _ph in self.boot.ranges if name != RESET_VECTOR_NAME}
        return sorted(out.values(), key=lambda m: m.base)

    # ---- the DXE tables ---------------------------------------------------------------------------
    def dxe_tables(self, node: Node) -> None:
        """System table, HOB list, ACPI, event logs and loaded images into `node`, by the route a
        dump takes (inspector.locate); the loaded images teach the classifier their ranges."""
        locate(self.phys, self.boot.ram_or(DEFAULT_RAM), self.ui_names, root=node, logs=self.logs)
        for dbg in node.children:
            if dbg.kind != "efi-debug-image-info-table":
                continue
            for img in dbg.children:
                base, size = img.get("ImageBase"), img.get("ImageSize")
                if base:
                    self.learn_image(base, size or 0, img.get("FileGuid") or img.get("FvFileName"))
