"""A live session: run control by boot phase over a Target, with the handed-over structures decoded
at every handoff (DESIGN.md "Live sessions and the boot phases"; FACTS C.1.3, C.1.4, C.2.2).

`Session(target, image, qemu=None)` implements session_api.SessionLike. Handoffs:

- reset, sec, pei-core: hardware breakpoints (Z1) at addresses computed from the image (phases.py).
- dxe-ipl, dxe-core, bds: the module is loaded at an address known only at run time (DxeIpl is
  shadowed to RAM, PcdShadowPeimOnBoot; DxeCore and BdsDxe are loaded from DXEFV). `_follow` finds
  it by following the copies the loader makes: a read watchpoint (Z3) on the entry bytes of the
  module's known copy (PEIFV/DXEFV in RAM) fires while the loader copies the image; at that stop a
  register (the copy's destination cursor: RDI in CopyMem's `rep movs`, or a pointer on the stack)
  points into the new copy, whose PE header is found just below it; that copy gets a breakpoint on
  its entry and a read watchpoint of its own (DXE copies a file into pool buffers before loading it).
  The first breakpoint hit is the module's entry. No symbols, no log, no per-version addresses.
  At DXE core entry RCX is the HOB list (X64 MS ABI; DxeLoad.c HandOffToDxeCore -> SwitchStack),
  which is checked to start with a PHIT.

Breakpoints by address or by module (FFS UI name or file GUID) + offset (`add_breakpoint`): XIP
modules (SECFV, PEIFV) are armed at once; DXE modules are pending until loaded. Image loads are
seen without symbols (FACTS C.2.2 "Image-load events"): once DxeCore has made the debug image info
table (found through the EFI_SYSTEM_TABLE_POINTER; a read watchpoint on DXEFV's '_FVH' stops the
guest once DxeCore dispatches), a write watchpoint on its UpdateStatus stops at every update; when
the update is complete the new entries are read, named by their FvFile's UI section, and pending
breakpoints are armed at ImageBase + offset. cont() takes these stops transparently. Once DXE is
up every stop also shows the system table, ACPI, the TPM/CC event logs and the loaded images; with
a SymbolIndex (symbols.py) the function and line at RIP.

"bds" is the BdsDxe driver's entry point (BdsDxeEntry, which installs the BDS arch protocol); the
BDS phase proper starts when DxeCore calls gBds->Entry once dispatch is done.

Every target call has a timeout; TargetDead and TargetTimeout become Stop problems, never hangs.
"""
from __future__ import annotations

import dataclasses
import struct
import time
import uuid

from decoders.errors import DecodeError
from decoders.hob.decode import decode_hob_list
from decoders.memory import Unreadable
from decoders.model import Node, Space
from decoders.paging import PagingConfig, page_tables_node, walk
from inspector.live.disasm import disassemble_at
from inspector.live.phases import (ADDRESS_MASK, RESET_VECTOR, Breakpoint, Module, classify, compute_handoffs,
                                   decode_ppi_list, decode_sec_pei_handoff, phase_index, read_uintn)
from inspector.live.session_api import PHASES, Stop
from inspector.live.symbols import ModuleTracking, SymbolIndex, symbolize
from inspector.live.target import (DEFAULT_TIMEOUT, SEGMENTS, X86_64_REGISTERS, Registers, StopEvent, Target,
                                   TargetDead, TargetError, TargetTimeout)

# Stops one _follow may take (watchpoint hits on copies, freed pool reused...) before giving up.
MAX_FOLLOW_STOPS = 512
# Copies of one module followed at once: FV file -> pool (file) -> pool (section) -> image is 3 in DXE.
MAX_COPIES = 8
# A copy found at run time whose read watchpoint fired this many times without revealing a new copy
# is unwatched (its pool buffer was freed and reused). The FV copies stay watched: with a TPM,
# Tcg2Pei hashes the whole FV once per PCR bank first (measured: 4-8 stops with a 4-byte watch).
MAX_IDLE_WATCH_HITS = 8
# One byte, the first of the entry point: byte-wise hashing loops stop once per pass, not 4 times.
WATCH_SIZE = 1
# Stack slots searched for pointers into a fresh copy at a watchpoint stop.
STACK_SLOTS = 32
# Bytes read around candidate pointers per watchpoint stop (through the stub: ~2 KiB per packet).
MAX_WINDOW_BYTES = 16 << 20
# Where SEC decompresses PEIFV/DXEFV (PcdOvmfPeiMemFvBase 0x820000, PcdOvmfDxeMemFvBase 0x900000,
# FACTS C.2.1): the scan for an FV header looks this low, at these alignments.
FV_SCAN_TOP = 128 << 20
FV_SCAN_COARSE, FV_SCAN_FINE, FV_SCAN_FINE_TOP = 0x10000, 0x1000, 32 << 20
# debugcon text kept in a Stop.
MAX_LOG = 64 << 10

GPR_NAMES = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13",
             "r14", "r15")
INT_REGISTERS = {n for n, bits in X86_64_REGISTERS if bits <= 64}
CR4_LA57 = 1 << 12
EFER_NXE = 1 << 11
HOB_HANDOFF = 1
EFI_RESOURCE_SYSTEM_MEMORY = 0


class Session(ModuleTracking):
    """Run control by boot phase; every call returns a Stop (session_api.Stop)."""

    def __init__(self, target: Target, image, qemu=None, call_timeout: float = DEFAULT_TIMEOUT,
                 symbols: SymbolIndex | None = None):
        self.target = target
        self.image = image                  # inspector.image.LoadedImage
        self.qemu = qemu                    # inspector.live.qemu.QemuProcess, when we started it
        self.call_timeout = call_timeout
        self.handoffs = compute_handoffs(image.root, len(image.data))
        self.ranges: list[tuple[int, int, str, str]] = list(self.handoffs.ranges)
        # Linear entry address -> handoff name, for the static ones and those found at run time.
        self.entries: dict[int, str] = {RESET_VECTOR: "reset"}
        for name in ("sec", "pei-core"):
            addr = self.handoffs.static_entry(name)
            if addr is not None:
                self.entries[addr] = name
        self.copies: dict[str, set[int]] = {}
        self.ui_names = {f.get("Name"): f.get("UI") for f in image.root.find("ffs") if f.get("UI")}
        self.fv_ram: dict[int, int | None] = {}      # id(fv node) -> RAM base
        self.ram: list[tuple[int, int]] | None = None   # system memory from the HOBs at DXE core entry
        self.reached: str | None = None
        self.index = -1
        self.dead: str | None = None
        self.phys = target.physical_memory()
        self.virt = target.virtual_memory()
        self._stop: Stop | None = None
        self._generation: int | None = None
        self.symbols = symbols
        self.breakpoints: dict[str, Breakpoint] = {}
        # Loaded images learnt from the debug image info table: ImageBase -> (name, guid, size).
        self.loaded: dict[int, tuple[str, uuid.UUID | None, int]] = {}
        self._debug_header: int | None = None        # &mDebugInfoTableHeader, once DXE made it
        self._load_watch: int | None = None          # its UpdateStatus, write-watched
        self._debug_entries: set[int] = set()        # EFI_DEBUG_IMAGE_INFO_NORMAL pointers seen
        self._debug_size: int | None = None
        self._logs: dict[str, int] = {}              # event-log format -> address, once found
        self.load_events = 0

    # ---- SessionLike ---------------------------------------------------------------------------
    @property
    def live(self) -> bool:
        return True

    def current(self) -> Stop:
        if self._stop is not None and self._generation == self.target.generation and not self.dead:
            return self._stop
        return self._guard(lambda: self._build("reset" if self._stop is None else "interrupt"))

    def step(self) -> Stop:
        return self._guard(lambda: self._after(self.target.step(self.call_timeout), "step"))

    def cont(self, timeout: float = 60.0) -> Stop:
        """Run until a stop the user asked for: handoffs on the way to DXE and image-load events
        (which arm pending breakpoints) are taken transparently."""
        return self._guard(lambda: self._cont(time.monotonic() + timeout, timeout))

    def interrupt(self) -> Stop:
        return self._guard(lambda: self._after(self.target.interrupt(self.call_timeout), "interrupt"))

    def console(self, line: str) -> str:
        """A command typed in the app's console: gdb's CLI on the gdb backend (which has one),
        QEMU's monitor through qRcmd on the RSP backend. Raises TargetError as the target does."""
        console = getattr(self.target, "console", None)
        if console is not None:
            return console(line, self.call_timeout)
        return self.target.monitor(line, self.call_timeout)

    def next_handoff(self, timeout: float = 60.0) -> Stop:
        return self._guard(lambda: self._next_handoff(time.monotonic() + timeout))

    def run_to(self, phase: str, timeout: float = 120.0) -> Stop:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}: one of {', '.join(PHASES)}")
        deadline = time.monotonic() + timeout
        stop = self.current()
        if phase not in self.handoffs.phases():
            return self._with_problem(f"this image has no {phase} handoff (its handoffs: "
                                      f"{', '.join(self.handoffs.phases())})")
        for _ in range(len(PHASES) + 1):
            if self.dead or phase_index(self.reached or "") >= phase_index(phase):
                break
            stop = self._guard(lambda: self._next_handoff(deadline))
            if stop.handoff is None:
                break           # not reached (timeout, unexpected stop): the problem says why
        if phase_index(self.reached or "") > phase_index(phase) and stop.handoff != phase:
            stop = dataclasses.replace(stop, problems=[*stop.problems, f"already past {phase} (at {self.reached})"])
        return stop

    def close(self) -> None:
        try:
            self.target.close()
        except TargetError:
            pass        # already dead: nothing left to release on that side
        if self.qemu is not None:
            self.qemu.close()

    # ---- stops -----------------------------------------------------------------------------------
    def _guard(self, fn) -> Stop:
        if self.dead:
            return self._dead_stop(self.dead)
        try:
            return fn()
        except TargetDead as e:
            self.dead = str(e) or "connection closed"
            return self._dead_stop(self.dead)
        except TargetTimeout as e:
            try:
                return self._timed_out(f"target call timed out: {e}")
            except TargetDead as d:
                self.dead = str(d) or "connection closed"
                return self._dead_stop(self.dead)
            except TargetError as e2:
                return self._problem_stop(f"target call timed out: {e}; then: {e2}")
        except TargetError as e:
            # A refused request (an `E..` reply, TargetRunning while another thread runs the guest):
            # reported on a stop, the session stays usable.
            return self._problem_stop(f"target refused a request: {e}")

    def _with_problem(self, problem: str) -> Stop:
        """The current stop with one more problem (a copy: the cached Stop stays as it was)."""
        stop = self.current()
        return dataclasses.replace(stop, problems=[*stop.problems, problem])

    def _dead_stop(self, why: str) -> Stop:
        last = self._stop
        self.index += 1
        stop = Stop(self.index, "interrupt", last.phase if last else "unknown", last.mode if last else "unknown",
                    last.linear_rip if last else 0, dict(last.registers) if last else {},
                    module=last.module if last else None, problems=[f"target died: {why}"])
        self._stop = stop
        return stop

    def _timed_out(self, why: str) -> Stop:
        try:
            self.target.interrupt(self.call_timeout)
        except TargetDead:
            raise
        except TargetError as e:
            return self._problem_stop(f"{why}; interrupt failed: {e}")
        stop = self._build("interrupt")
        stop.problems.append(why)
        return stop

    def _problem_stop(self, why: str) -> Stop:
        stop = self._dead_stop(why)
        stop.problems = [why]
        return stop

    def _after(self, ev: StopEvent, reason: str | None) -> Stop:
        if ev.reason == "exited":
            self.dead = f"the guest exited ({ev.raw})"
            return self._dead_stop(self.dead)
        return self._build(reason or ev.reason)

    def _build(self, reason: str) -> Stop:
        regs = self.target.read_registers(self.call_timeout)
        mode, pc = regs.mode, regs.pc
        handoff = self.entries.get(pc)
        if handoff == "reset" and mode != "real":
            handoff = None
        phase, module = classify(pc, mode, self.ranges, self.reached)
        if handoff is not None:
            phase = handoff
            if reason == "breakpoint":
                reason = "handoff"
        elif reason == "reset":
            reason = "interrupt"        # attached to a guest that is past the reset vector
        # Code of a later phase (stepped into, or attached mid-boot) moves the phase model on, so
        # next_handoff() aims at the handoff after it.
        if phase_index(phase) > phase_index(self.reached or ""):
            self.reached = phase
        self.index += 1
        stop = Stop(self.index, reason, phase, mode, pc, register_dict(regs), module=module, handoff=handoff)
        ip = regs.rip & 0xFFFF if mode in ("real", "prot16") else None
        try:
            stop.disassembly = disassemble_at(self.virt, pc, mode, ip=ip)
        except TargetDead:
            raise
        if handoff is not None:
            try:
                stop.tree = self._decode(handoff, regs)
            except (DecodeError, Unreadable, TargetError) as e:
                if isinstance(e, TargetDead):
                    raise
                stop.problems.append(f"decoding the {handoff} handoff failed: {e}")
        if handoff is None and phase_index(self.reached or "") >= phase_index("dxe-core") \
                and self.find_debug_header() is not None:
            # Once DXE made its tables, every stop shows them (ACPI, event logs, loaded images).
            stop.tree = Node("dxe-state", f"DXE state at 0x{pc:x}")
            try:
                self._dxe_tables(stop.tree)
            except (DecodeError, Unreadable, TargetError) as e:
                if isinstance(e, TargetDead):
                    raise
                stop.problems.append(f"decoding the DXE tables failed: {e}")
        if self.symbols is not None:
            sym = symbolize(self.symbols, self.images(), self.phys, pc)
            if sym is not None:
                if stop.tree is None:
                    stop.tree = Node("stop", f"stop at 0x{pc:x}")
                stop.tree.append(sym)
                stop.module = sym.title
        if self.qemu is not None:
            stop.log = self.qemu.debug_log()[-MAX_LOG:]
        self._stop, self._generation = stop, self.target.generation
        return stop

    # ---- handoff decoding ------------------------------------------------------------------------
    def _decode(self, handoff: str, regs: Registers) -> Node:
        mode = regs.mode
        width = 8 if mode == "long64" else 4
        mask = ADDRESS_MASK.get(mode, (1 << 64) - 1)
        node = Node(f"{handoff}-entry", f"{handoff} entry at 0x{regs.pc:x} ({mode})")
        node.add("Mode", mode)
        node.add("EntryPoint", regs.pc, display=f"0x{regs.pc:x}")
        h = self.handoffs
        if handoff == "reset":
            raw = self.phys.read(RESET_VECTOR, 16)
            node.space, node.size = Space(f"reset-vector@0x{RESET_VECTOR:x}", raw, RESET_VECTOR), 16
            node.add("ResetVectorBytes", raw, 0, 16)
            if raw != bytes(self.image.data[-16:]):
                node.problem(0, "the 16 bytes at 0xFFFFFFF0 are not the image's last 16: another image runs")
        elif handoff == "sec":
            # OvmfPkg/Sec/{Ia32,X64}/SecEntry.nasm: EAX = BIST, DI = 'BP', EBP/RBP = boot FV base.
            bfv = regs["rbp"] & mask
            node.add("BootFirmwareVolumeBase", bfv, display=f"0x{bfv:x} (EBP/RBP)")
            node.add("Bist", regs["rax"] & 0xFFFFFFFF)
            di = regs["rdi"] & 0xFFFF
            node.add("Signature", di, display=f"0x{di:x} ({'BP' if di == 0x5042 else 'not BP'})")
            if h.bfv_base is not None and bfv != h.bfv_base:
                node.warn(None, f"EBP/RBP 0x{bfv:x} is not the image's SECFV base 0x{h.bfv_base:x}")
            if di != 0x5042:
                node.warn(None, f"DI 0x{di:x} is not 'BP' (0x5042), the ResetVector's signature")
        elif handoff == "pei-core":
            # PeiCore(SecCoreData, PpiList, Data): IA32 cdecl on the stack, X64 MS ABI in RCX/RDX
            # (OvmfPkg/Sec/SecMain.c:1042; PeiMain.c PeiCore).
            if width == 4:
                esp = regs["rsp"] & mask
                sec_core_data = read_uintn(self.phys, esp + 4, 4)
                ppi_list = read_uintn(self.phys, esp + 8, 4)
            else:
                sec_core_data, ppi_list = regs["rcx"], regs["rdx"]
            node.add("SecCoreData", sec_core_data, display=f"0x{sec_core_data:x}")
            node.add("PpiList", ppi_list, display=f"0x{ppi_list:x}")
            handoff_node = node.append(decode_sec_pei_handoff(self.phys, sec_core_data, width))
            node.append(decode_ppi_list(self.phys, ppi_list, width))
            bfv = handoff_node.get("BootFirmwareVolumeBase")
            if bfv is not None and h.peifv_ram_base is not None and bfv != h.peifv_ram_base:
                node.warn(None, f"BootFirmwareVolumeBase 0x{bfv:x} is not PEIFV's RAM base 0x{h.peifv_ram_base:x}")
        elif handoff in ("dxe-ipl", "bds"):
            self._loaded_module(node, handoff, regs.pc)
            if handoff == "bds":
                self._dxe_tables(node)
        elif handoff == "dxe-core":
            self._loaded_module(node, handoff, regs.pc)
            self._dxe_core(node, regs)
        return node

    def _loaded_module(self, node: Node, key: str, entry: int) -> None:
        m = self.handoffs.modules.get(key)
        if m is not None:
            base = entry - m.entry_rva
            node.add("ImageBase", base, display=f"0x{base:x}")
            node.add("Module", m.name, display=f"{m.name} ({str(m.guid).upper()})")
            node.title = f"{m.name} entry at 0x{entry:x} (image at 0x{base:x})"

    def _dxe_core(self, node: Node, regs: Registers) -> None:
        # DxeMain(VOID *HobStart): RCX (MS ABI), MdeModulePkg/Core/Dxe/DxeMain/DxeMain.c.
        hob = regs["rcx"]
        node.add("HobList", hob, display=f"0x{hob:x} (RCX)")
        hobs = node.append(decode_hob_list(self.phys, hob))
        first = hobs.children[0] if hobs.children else None
        if first is None or first.get("HobType") != HOB_HANDOFF:
            node.problem(None, f"RCX 0x{hob:x} does not point to a PHIT HOB (HobType 1)")
        ram = [(h.get("PhysicalStart"), h.get("ResourceLength")) for h in hobs.children
               if h.get("HobType") == 3 and h.get("ResourceType") == EFI_RESOURCE_SYSTEM_MEMORY]
        if ram:
            self.ram = ram
        cfg = PagingConfig(la57=bool(regs.cr4 & CR4_LA57), nxe=bool(regs.efer & EFER_NXE))
        node.append(page_tables_node(walk(self.phys, regs.cr3, cfg)))

    # ---- run control by phase --------------------------------------------------------------------
    def _next_handoff(self, deadline: float) -> Stop:
        order = self.handoffs.phases()
        now = phase_index(self.reached or "")
        if self._stop is None:
            self.current()
            now = phase_index(self.reached or "")
        upcoming = [p for p in order if phase_index(p) > now]
        if not upcoming:
            return self._with_problem(f"no handoff after {self.reached}")
        phase = upcoming[0]
        if phase in ("sec", "pei-core"):
            return self._run_to_address(self.handoffs.static_entry(phase), phase, deadline)
        return self._follow(phase, deadline)

    def _remaining(self, deadline: float) -> float:
        return max(0.05, deadline - time.monotonic())

    def _run_to_address(self, address: int, phase: str, deadline: float) -> Stop:
        t = self.target
        if address not in self._user_addresses():
            t.set_breakpoint(address, self.call_timeout)
        try:
            ev = t.cont(self._remaining(deadline))
        except TargetTimeout:
            self._cleanup([address], [])
            return self._timed_out(f"{phase} (0x{address:x}) not reached in time")
        self._cleanup([address], [])
        stop = self._after(ev, None)
        if stop.handoff != phase:
            stop.problems.append(f"stopped at 0x{stop.linear_rip:x} before {phase} (0x{address:x})")
        return stop

    def _cleanup(self, breakpoints: list[int], watches: list[int]) -> None:
        users = self._user_addresses()      # a handoff at a user's breakpoint: theirs stays set
        for a in breakpoints:
            if a in users:
                continue
            try:
                self.target.remove_breakpoint(a, self.call_timeout)
            except TargetDead:
                raise
            except TargetError:
                pass    # best effort: the breakpoint may already be gone with a reset
        for a in watches:
            try:
                self.target.remove_watchpoint(a, WATCH_SIZE, "read", self.call_timeout)
            except TargetDead:
                raise
            except TargetError:
                pass

    def _sources(self, m: Module) -> list[int]:
        """Known copies of a module: its FV in RAM (PEIFV: build-time base; DXEFV: found by scan)."""
        out = set(self.copies.get(m.phase, ()))
        base = self.fv_ram_base(m.fv) if m.fv is not None else None
        if base is not None:
            out.add(base + m.offset_in_fv)
        return sorted(out)

    def fv_ram_base(self, fv: Node) -> int | None:
        """Where SEC put a decompressed FV in RAM: PEIFV's from the image, others found by their header."""
        key = id(fv)
        if key in self.fv_ram:
            return self.fv_ram[key]
        h = self.handoffs
        pei = h.modules.get("pei-core")
        if pei is not None and pei.fv is fv:
            self.fv_ram[key] = h.peifv_ram_base
            return h.peifv_ram_base
        header = bytes(fv.bytes[:0x38])        # ZeroVector .. Checksum (PiFirmwareVolume.h)
        found = None
        for step, top in ((FV_SCAN_COARSE, FV_SCAN_TOP), (FV_SCAN_FINE, FV_SCAN_FINE_TOP)):
            for addr in range(0, top, step):
                try:
                    if self.target.read_physical(addr, len(header), self.call_timeout) == header:
                        found = addr
                        break
                except Unreadable:
                    continue
            if found is not None:
                break
        if found is not None:        # not cached when absent: SEC may not have decompressed it yet
            self.fv_ram[key] = found
        return found

    def _follow(self, phase: str, deadline: float) -> Stop:
        m = self.handoffs.modules[phase]
        sources = self._sources(m)
        if not sources:
            return self._with_problem(f"{phase}: {m.name}'s firmware volume is not in RAM yet, so its "
                                      f"copies cannot be followed")
        t = self.target
        known: set[int] = set()
        entries: dict[int, int] = {}          # entry -> copy base
        watches: dict[int, int] = {}          # watched address -> idle hits
        reached: int | None = None
        sticky: set[int] = set()              # watches never dropped (the FV copies)

        def add(base: int, pinned: bool = False) -> None:
            known.add(base)
            entry = base + m.entry_rva
            if entry not in self._user_addresses():
                t.set_breakpoint(entry, self.call_timeout)
            entries[entry] = base
            if entry not in watches:
                t.set_watchpoint(entry, WATCH_SIZE, "read", self.call_timeout)
                watches[entry] = 0
                if pinned:
                    sticky.add(entry)

        stop: Stop | None = None
        try:
            for b in sources:
                add(b, pinned=True)
            for _ in range(MAX_FOLLOW_STOPS):
                try:
                    ev = t.cont(self._remaining(deadline))
                except TargetTimeout:
                    stop = self._timed_out(f"{phase} ({m.name}) not reached in time")
                    break
                if ev.reason == "exited":
                    stop = self._after(ev, None)
                    break
                if self._is_load_event(ev):
                    self._on_load_event()
                    continue
                regs = t.read_registers(self.call_timeout)
                if regs.pc in entries:
                    reached = regs.pc
                    break
                if ev.reason != "watchpoint":
                    stop = self._build(ev.reason)
                    stop.problems.append(f"stopped before {phase} ({ev.reason})")
                    break
                new = [b for b in self._find_copies(m, regs) if b not in known]
                for b in new[:max(0, MAX_COPIES - len(known))]:
                    add(b)
                hit = ev.address if ev.address in watches else None
                if not new and hit is not None and hit not in sticky:
                    watches[hit] += 1
                    if watches[hit] >= MAX_IDLE_WATCH_HITS:
                        t.remove_watchpoint(hit, WATCH_SIZE, "read", self.call_timeout)
                        del watches[hit]
            else:
                stop = self._build("watchpoint")
                stop.problems.append(f"{phase}: no entry hit in {MAX_FOLLOW_STOPS} stops")
        finally:
            if not self.dead:
                self._cleanup(list(entries), list(watches))
        if reached is not None:
            base = entries[reached]
            self.copies.setdefault(phase, set()).add(base)
            self.entries[reached] = phase
            self.ranges.insert(0, (base, base + m.size_of_image, m.name, phase))
            stop = self._build("handoff")
        return stop

    def _find_copies(self, m: Module, regs: Registers) -> list[int]:
        """PE headers of module `m` just below the values of the registers and top stack slots."""
        mode = regs.mode
        mask = ADDRESS_MASK.get(mode, (1 << 64) - 1)
        width = 8 if mode == "long64" else 4
        values = {regs.gpr.get(r, 0) & mask for r in GPR_NAMES}
        try:
            raw = self.phys.read(regs["rsp"] & mask, STACK_SLOTS * width)
            fmt = "<Q" if width == 8 else "<I"
            values |= {v for (v,) in struct.iter_unpack(fmt, raw)}
        except Unreadable:
            pass        # no stack yet, or not identity-mapped: registers only
        top = max((a + n for a, n in self.ram), default=None) if self.ram else None
        spans = sorted((max(0, v - m.size_of_image - 0x1000), v + 0x1000) for v in values
                       if 0x1000 <= v < (top or 1 << 46))
        merged: list[list[int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        found, budget = [], MAX_WINDOW_BYTES
        for lo, hi in merged:
            if budget <= 0:
                break
            hi = min(hi, lo + budget)
            budget -= hi - lo
            try:
                data = self.phys.read(lo, hi - lo)
            except Unreadable:
                continue
            found += m.find_copies(data, lo)
        return found


def register_dict(regs: Registers) -> dict[str, int]:
    """Integer registers by name, control registers, and segment selectors/bases/limits/flags."""
    out = {k: v for k, v in regs.gpr.items() if k in INT_REGISTERS and isinstance(v, int)}
    out.update(rip=regs.rip, eflags=regs.rflags, cr0=regs.cr0, cr2=regs.cr2, cr3=regs.cr3, cr4=regs.cr4,
               efer=regs.efer)
    for name in SEGMENTS:
        seg = regs.segments.get(name)
        if seg is None:
            continue
        out[name] = seg.selector
        for attr in ("base", "limit", "flags"):
            value = getattr(seg, attr)
            if value is not None:
                out[f"{name}_{attr}"] = value
    for name, (base, limit) in regs.tables.items():
        out[f"{name}_base"], out[f"{name}_limit"] = base, limit
    return out
