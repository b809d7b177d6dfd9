"""Following the copies a loader makes of a module, to stop at the entry of a module whose load
address is known only at run time (DxeIpl shadowed to RAM by PcdShadowPeimOnBoot; DxeCore and
BdsDxe loaded from DXEFV, where their ImageBase is 0).

A read watchpoint (Z3) on the entry bytes of the module's known copy (PEIFV or DXEFV in RAM) fires
while the loader copies the image; at that stop a register (the copy's destination cursor: RDI in
CopyMem's `rep movs`, or a pointer in the top stack slots) points into the new copy, whose PE header
is found just below it (phases.Module.find_copies); that copy gets a breakpoint on its entry and a
read watchpoint of its own (DXE copies a file into pool buffers before loading it: FV file -> pool
(file) -> pool (section) -> image). The first breakpoint hit is the module's entry. No symbols, no
log, no per-version addresses.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from decoders.memory import Memory, Unreadable
from decoders.model import Node
from inspector.live.modules import ModuleTracker
from inspector.live.phases import ADDRESS_MASK, BootState, Module
from inspector.live.runctl import Outcome, release, remaining
from inspector.live.session_api import Mode, Phase
from inspector.live.target import Registers, Target, TargetTimeout

# Stops one follow may take (watchpoint hits on copies, freed pool reused...) before giving up.
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
# Where SEC decompresses PEIFV/DXEFV (PcdOvmfPeiMemFvBase 0x820000, PcdOvmfDxeMemFvBase 0x900000 in
# OvmfPkg/OvmfPkgX64.fdf [FD.MEMFD]): the scan for an FV header looks this low, at these alignments.
FV_SCAN_TOP = 128 << 20
FV_SCAN_COARSE, FV_SCAN_FINE, FV_SCAN_FINE_TOP = 0x10000, 0x1000, 32 << 20
# EFI_FIRMWARE_VOLUME_HEADER from ZeroVector through Checksum (PiFirmwareVolume.h): what is matched.
FV_HEADER_MATCH = 0x38
# Pointers considered: above the first page, below 64 TiB when RAM's top is not known yet.
LOWEST_POINTER, DEFAULT_TOP = 0x1000, 1 << 46
GPR_NAMES = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13",
             "r14", "r15")


@dataclass
class Followed:
    """The module's entry was hit: `entry` in the copy at `base`."""

    entry: int
    base: int


class CopyFollower:
    """Runs the guest to the entry of a loaded module by following its copies."""

    def __init__(self, target: Target, phys: Memory, boot: BootState, call_timeout: float,
                 modules: ModuleTracker):
        self.target = target
        self.phys = phys
        self.boot = boot
        self.call_timeout = call_timeout
        self.modules = modules                        # user breakpoints stay; image-load stops are theirs
        self.copies: dict[Phase, set[int]] = {}       # bases of copies whose entry was hit
        self.fv_ram: dict[int, int | None] = {}       # id(fv node) -> RAM base

    def sources(self, m: Module) -> list[int]:
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
        h = self.boot.handoffs
        pei = h.modules.get(Phase.PEI_CORE)
        if pei is not None and pei.fv is fv:
            self.fv_ram[key] = h.peifv_ram_base
            return h.peifv_ram_base
        header = bytes(fv.bytes[:FV_HEADER_MATCH])
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

    def follow(self, phase: Phase, deadline: float) -> Followed | Outcome:
        m = self.boot.handoffs.modules[phase]
        sources = self.sources(m)
        if not sources:
            return Outcome(problem=f"{phase}: {m.name}'s firmware volume is not in RAM yet, so its "
                                   f"copies cannot be followed")
        t = self.target
        known: set[int] = set()
        entries: dict[int, int] = {}          # entry -> copy base
        watches: dict[int, int] = {}          # watched address -> idle hits
        sticky: set[int] = set()              # watches never dropped (the FV copies)

        def add(base: int, pinned: bool = False) -> None:
            known.add(base)
            entry = base + m.entry_rva
            if entry not in self.modules.user_addresses():
                t.set_breakpoint(entry, self.call_timeout)
            entries[entry] = base
            if entry not in watches:
                t.set_watchpoint(entry, WATCH_SIZE, "read", self.call_timeout)
                watches[entry] = 0
                if pinned:
                    sticky.add(entry)

        result: Followed | Outcome | None = None
        try:
            for b in sources:
                add(b, pinned=True)
            for _ in range(MAX_FOLLOW_STOPS):
                try:
                    ev = t.cont(remaining(deadline))
                except TargetTimeout:
                    result = Outcome(timed_out=True, problem=f"{phase} ({m.name}) not reached in time")
                    break
                if ev.reason == "exited":
                    result = Outcome(event=ev)
                    break
                if self.modules.is_load_event(ev):
                    self.modules.on_load_event()
                    continue
                regs = t.read_registers(self.call_timeout)
                if regs.pc in entries:
                    result = Followed(regs.pc, entries[regs.pc])
                    break
                if ev.reason != "watchpoint":
                    result = Outcome(event=ev, problem=f"stopped before {phase} ({ev.reason})")
                    break
                new = [b for b in self.find_copies(m, regs) if b not in known]
                for b in new[:max(0, MAX_COPIES - len(known))]:
                    add(b)
                hit = ev.address if ev.address in watches else None
                if not new and hit is not None and hit not in sticky:
                    watches[hit] += 1
                    if watches[hit] >= MAX_IDLE_WATCH_HITS:
                        t.remove_watchpoint(hit, WATCH_SIZE, "read", self.call_timeout)
                        del watches[hit]
            else:
                result = Outcome(reason="watchpoint", problem=f"{phase}: no entry hit in {MAX_FOLLOW_STOPS} stops")
        finally:
            if not (isinstance(result, Outcome) and result.exited):
                release(t, self.call_timeout, entries, [(w, WATCH_SIZE, "read") for w in watches],
                        keep=self.modules.user_addresses())
        if isinstance(result, Followed):
            self.copies.setdefault(phase, set()).add(result.base)
            self.boot.ranges.insert(0, (result.base, result.base + m.size_of_image, m.name, phase))
        return result

    def find_copies(self, m: Module, regs: Registers) -> list[int]:
        """PE headers of module `m` just below the values of the registers and top stack slots."""
        mode = Mode.of(regs.mode)
        mask = ADDRESS_MASK.get(mode, (1 << 64) - 1)
        width = 8 if mode == Mode.LONG64 else 4
        values = {regs.gpr.get(r, 0) & mask for r in GPR_NAMES}
        try:
            raw = self.phys.read(regs["rsp"] & mask, STACK_SLOTS * width)
            fmt = "<Q" if width == 8 else "<I"
            values |= {v for (v,) in struct.iter_unpack(fmt, raw)}
        except Unreadable:
            pass        # no stack yet, or not identity-mapped: registers only
        ram = self.boot.ram
        top = max((a + n for a, n in ram), default=None) if ram else None
        spans = sorted((max(0, v - m.size_of_image - 0x1000), v + 0x1000) for v in values
                       if LOWEST_POINTER <= v < (top or DEFAULT_TOP))
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
