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

Where the module's volume is in RAM (`fv_ram_base`):
- PEIFV: its build-time base (phases.compute_handoffs).
- once the DXE core runs: the FV HOB of the HOB list it was handed (RCX at its entry, recorded in
  BootState.hob_list) whose base holds the volume's header: the copy DXE dispatches from.
- before that, OVMF Config-A: SEC decompressed DXEFV to a fixed place (PcdOvmfDxeMemFvBase in
  OvmfPkg/OvmfPkgX64.fdf [FD.MEMFD]): a scan of a few fixed alignments below FV_SCAN_TOP finds it.
- PEI-less TDVF Config-B: SEC's PeilessStartup decompresses DXEFV into pages it allocates at run
  time, from the top of low memory down (OvmfPkg/Library/PeilessStartupLib/Hob.c ConstructSecHobList
  hands the HOB constructor [PcdOvmfDxeMemFvBase + Size, top of memory below 4 GiB);
  EmbeddedPkg/Library/PrePiMemoryAllocationLib InternalAllocatePages lowers EfiFreeMemoryTop;
  EmbeddedPkg/Library/PrePiLib/FwVol.c FfsProcessSection allocates the scratch and destination
  buffers, then decompresses straight from the section in flash). `run_to_decompression` puts a
  read watchpoint in the middle of that compressed section in flash: when the decompressor reads
  it, the start of its output, the volume header, is written (output only grows), while the DXE
  core is copied out of the volume only after decompression returns (PeilessStartupLib/DxeLoad.c
  DxeLoadCore: FindDxeCore, then LoadPeCoffImage). RAM below 4 GiB (the machine's ranges from the
  monitor's `info mtree -f`) is then read top-down in chunks for the volume header; the first
  allocations sit at the top, so the search ends within the top few MiB (measured: DXEFV's header
  12.6 MiB below the top of 256 MiB). The volume may be copied once more (FwVol.c FfsProcessFvFile
  realigns it to its FvAlignment): the copy follower follows that copy like any other.
"""
from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from decoders.errors import DecodeError
from decoders.hob.decode import decode_hob_list
from decoders.memory import Memory, Unreadable
from decoders.model import Node
from inspector.live.hostmem import parse_ram_ranges
from inspector.live.modules import ModuleTracker
from inspector.live.phases import ADDRESS_MASK, FOUR_GIB, BootState, Module
from inspector.live.runctl import Outcome, release, remaining
from inspector.live.session_api import Mode, Phase
from inspector.live.target import Registers, Target, TargetDead, TargetError, TargetTimeout

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
# A volume decompressed into pages allocated at run time (PEI-less SEC, see the module docstring):
# RAM below 4 GiB read top-down in chunks of this size, at most this much in all. The buffers are
# among the first allocations from the top; the bound covers a 16 MiB volume many times over and
# costs ~11 s through the stub (~42 ms a MiB measured here), well under a second from QEMU's memory.
RUNTIME_FV_SCAN_CHUNK = 1 << 20
RUNTIME_FV_SCAN_MAX = 256 << 20
# When the monitor cannot list the machine's RAM: low RAM of a q35/i440fx guest ends by 2 GiB
# (below the PCI hole; reading MMIO through the stub could touch devices).
DEFAULT_LOW_RAM = [(0, 0x80000000)]
# Read-watch stops in the compressed section before its volume must be in RAM (something else, a
# hash, may read the section first; each stop costs one scan).
MAX_DECOMPRESS_STOPS = 4
# FV HOB types (MdePkg/Include/Pi/PiHob.h EFI_HOB_TYPE_FV, _FV2, _FV3): each has BaseAddress.
FV_HOB_TYPES = (0x0005, 0x0009, 0x000C)
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
        """Where a decompressed FV is in RAM: PEIFV's from the image; once the DXE core has the HOB
        list, the FV HOB holding its header; else found by its header at SEC's fixed places (or by
        run_to_decompression, which fills the cache)."""
        key = id(fv)
        if key in self.fv_ram:
            return self.fv_ram[key]
        h = self.boot.handoffs
        pei = h.modules.get(Phase.PEI_CORE)
        if pei is not None and pei.fv is fv:
            self.fv_ram[key] = h.peifv_ram_base
            return h.peifv_ram_base
        header = bytes(fv.bytes[:FV_HEADER_MATCH])
        found = self.fv_from_hobs(header)
        if found is None and h.pei_core_entry is not None:
            # Only SEC before a PEI core puts volumes at fixed places; PEI-less SEC allocates them
            # (module docstring), and run_to_decompression finds them.
            found = self.scan_fixed(header)
        if found is not None:        # not cached when absent: SEC may not have decompressed it yet
            self.fv_ram[key] = found
        return found

    def fv_from_hobs(self, header: bytes) -> int | None:
        """The base of the first FV HOB (of the HOB list the DXE core was handed) holding `header`."""
        if self.boot.hob_list is None:
            return None
        try:
            hobs = decode_hob_list(self.phys, self.boot.hob_list)
        except (DecodeError, Unreadable):
            return None
        for hob in hobs.children:
            base = hob.get("BaseAddress")
            if hob.get("HobType") not in FV_HOB_TYPES or not isinstance(base, int):
                continue
            try:
                if self.target.read_physical(base, len(header), self.call_timeout) == header:
                    return base
            except Unreadable:
                continue
        return None

    def scan_fixed(self, header: bytes) -> int | None:
        """SEC's fixed places (Config-A): a header at FV_SCAN_COARSE steps below FV_SCAN_TOP, then at
        FV_SCAN_FINE steps below FV_SCAN_FINE_TOP."""
        for step, top in ((FV_SCAN_COARSE, FV_SCAN_TOP), (FV_SCAN_FINE, FV_SCAN_FINE_TOP)):
            for addr in range(0, top, step):
                try:
                    if self.target.read_physical(addr, len(header), self.call_timeout) == header:
                        return addr
                except Unreadable:
                    continue
        return None

    def low_ram(self) -> list[tuple[int, int]]:
        """(start, end) of the machine's RAM below 4 GiB: the monitor's `info mtree -f`, else the
        HOBs' system memory, else DEFAULT_LOW_RAM."""
        ranges: list[tuple[int, int]] = []
        try:
            text = self.target.monitor("info mtree -f", self.call_timeout)
            ranges = [(a, min(b, FOUR_GIB)) for a, b, _name in parse_ram_ranges(text) if a < FOUR_GIB]
        except TargetDead:
            raise
        except TargetError:
            pass            # no monitor here (another stub): what the HOBs said, else a default
        if not ranges:
            ranges = [(a, min(a + n, FOUR_GIB)) for a, n in self.boot.ram_or(DEFAULT_LOW_RAM) if a < FOUR_GIB]
        return ranges

    def scan_ram(self, header: bytes, deadline: float) -> int | None:
        """The highest address below 4 GiB holding `header`, reading RAM top-down in chunks (each
        overlapping the one above by the header's length), at most RUNTIME_FV_SCAN_MAX bytes."""
        left = RUNTIME_FV_SCAN_MAX
        for lo, hi in sorted(self.low_ram(), reverse=True):
            top = hi
            while top > lo and left > 0 and time.monotonic() < deadline:
                start = max(lo, top - RUNTIME_FV_SCAN_CHUNK)
                end = min(hi, top + len(header) - 1)
                try:
                    at = self.target.read_physical(start, end - start, self.call_timeout).rfind(header)
                except Unreadable:
                    at = -1
                if at >= 0:
                    return start + at
                left -= top - start
                top = start
        return None

    def _cont(self, deadline: float, late: str):
        """One continue of the guest: its stop event; an Outcome when the run timed out (`late` says
        what was not reached) or the guest exited; None for an image-load event, handled here."""
        try:
            ev = self.target.cont(remaining(deadline))
        except TargetTimeout:
            return Outcome(timed_out=True, problem=late)
        if ev.reason == "exited":
            return Outcome(event=ev)
        if self.modules.is_load_event(ev):
            self.modules.on_load_event()
            return None
        return ev

    def run_to_decompression(self, m: Module, deadline: float) -> Outcome | None:
        """Run until the decompressor reads the middle of the compressed section in flash that
        `m`'s volume comes out of, then find the volume in RAM (module docstring). None when found
        (cached for fv_ram_base) or when the volume does not come out of a section in flash."""
        origin = self.boot.handoffs.packed_origin(m.fv)
        if origin is None:
            return None
        start, size = origin
        watch = start + size // 2
        header = bytes(m.fv.bytes[:FV_HEADER_MATCH])
        t = self.target
        t.set_watchpoint(watch, WATCH_SIZE, "read", self.call_timeout)
        result: Outcome | None = None
        try:
            for _ in range(MAX_DECOMPRESS_STOPS):
                ev = self._cont(deadline, f"{m.name}'s volume was not decompressed in time")
                if ev is None:
                    continue
                if isinstance(ev, Outcome):
                    result = ev
                    break
                if ev.reason != "watchpoint" or ev.address != watch:
                    result = Outcome(event=ev, problem=f"stopped before {m.name}'s volume was decompressed "
                                                       f"({ev.reason})")
                    break
                base = self.scan_ram(header, deadline)
                if base is not None:
                    self.fv_ram[id(m.fv)] = base
                    break
            else:
                result = Outcome(reason="watchpoint", problem=f"{m.name}'s volume not found in RAM after "
                                                              f"{MAX_DECOMPRESS_STOPS} reads of its compressed "
                                                              f"section at 0x{start:x}")
        finally:
            if not (isinstance(result, Outcome) and result.exited):
                release(t, self.call_timeout, watches=[(watch, WATCH_SIZE, "read")])
        return result

    def follow(self, phase: Phase, deadline: float) -> Followed | Outcome:
        m = self.boot.handoffs.modules[phase]
        sources = self.sources(m)
        if not sources and m.fv is not None:
            # PEI-less SEC decompresses the volume on the way (module docstring): run to that.
            outcome = self.run_to_decompression(m, deadline)
            if outcome is not None:
                return outcome
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
                ev = self._cont(deadline, f"{phase} ({m.name}) not reached in time")
                if ev is None:
                    continue
                if isinstance(ev, Outcome):
                    result = ev
                    break
                regs = t.read_registers(self.call_timeout)
                if regs.pc in entries:
                    result = Followed(regs.pc, entries[regs.pc])
                    if phase == Phase.DXE_CORE:
                        # DxeMain (HobStart) takes the HOB list in RCX (MdeModulePkg/Core/Dxe/DxeMain/
                        # DxeMain.c): from now on its FV HOBs say where the volumes DXE reads are.
                        self.boot.hob_list = regs["rcx"]
                        self.fv_ram.clear()
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
