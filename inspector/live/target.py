"""The live Target: one interface over QEMU's gdbstub, two backends (rsp.py, gdbmi.py).

The interface is synchronous. The app calls it from Textual worker threads (target I/O never
runs on the UI thread), scripts and tests call it directly; a sync API keeps both simple. The RSP
backend runs its asyncio client on a private event loop in a daemon thread and waits on it with a
timeout, so `interrupt()` may be called from another thread while `cont()` blocks.

Every call has a timeout. A target whose connection closes (QEMU killed, gdb gone) raises
TargetDead; a call that gets no answer in time raises TargetTimeout. Neither hangs.

Sources: the register set is QEMU's gdbstub/gdb-xml/i386-64bit.xml and target/i386/gdbstub.c;
stop replies come from gdbstub/system.c, gdb_vm_state_change. Real mode and the CS base at reset
(selector 0xf000, base 0xffff0000: Intel SDM vol. 3A, 9.1.4) were checked here against
`monitor info registers` on QEMU 7.2.
"""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from decoders.memory import Unreadable

# Defaults for the per-call timeouts (seconds). A request to a paused QEMU answers in well under a
# millisecond (measured here: ~85 µs an RSP request over loopback, QEMU 7.2 TCG); these only
# bound a stuck or dead target.
DEFAULT_TIMEOUT = 5.0
# QEMU boots OVMF to the DXE core in ~2.5 s under TCG on this machine (measured: a breakpoint on
# the DXE core entry of Debian's OVMF 2022.11 hit 2.34 s after reset, QEMU 7.2); a cont()
# without an explicit timeout waits this long before raising TargetTimeout (the guest keeps running).
DEFAULT_CONT_TIMEOUT = 60.0

# x86 control-register bits (Intel SDM vol. 3A, 2.5 and 2.2.1).
CR0_PE = 1 << 0
CR0_PG = 1 << 31
EFER_LME = 1 << 8
EFER_LMA = 1 << 10
# Segment descriptor flags as QEMU keeps them in SegmentCache.flags (target/i386/cpu.h DESC_*_MASK):
# the descriptor's high dword, so L is bit 21 and D/B bit 22.
DESC_L = 1 << 21
DESC_B = 1 << 22

SEGMENTS = ("es", "cs", "ss", "ds", "fs", "gs", "ldt", "tr")

# Register layout of QEMU's i386-64bit.xml (gdbstub/gdb-xml), the `g` order; rsp.py
# uses it when qXfer:features is absent, gdbmi.py to pick the integer registers by name.
X86_64_REGISTERS: list[tuple[str, int]] = (
    [(r, 64) for r in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
                       "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip")]
    + [("eflags", 32)] + [(s, 32) for s in ("cs", "ss", "ds", "es", "fs", "gs")]
    + [("fs_base", 64), ("gs_base", 64), ("k_gs_base", 64)]
    + [(c, 64) for c in ("cr0", "cr2", "cr3", "cr4", "cr8", "efer")]
    + [(f"st{i}", 80) for i in range(8)]
    + [(f, 32) for f in ("fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop")]
    + [(f"xmm{i}", 128) for i in range(16)] + [("mxcsr", 32)])


# TargetMemory's cache: 4 KiB pages, at most 16 MiB of them, for reads up to 1 MiB (larger reads
# go straight to the target: they are bulk copies, not field-by-field decoding).
PAGE = 0x1000
CACHE_MAX_PAGES = 4096
CACHE_MAX_READ = 1 << 20
# Pages skipped inside one prefetch run: reading them is cheaper than a separate request.
PREFETCH_MAX_GAP = 4


class TargetError(Exception):
    """The target refused a request (an `E..` reply, a gdb ^error)."""


class TargetDead(TargetError):
    """The connection to the target is gone: QEMU exited, the socket closed, gdb died."""


class TargetTimeout(TargetError):
    """No answer within the call's timeout (the target may still be running)."""


class TargetRunning(TargetError):
    """The call needs a stopped target (QEMU's gdbstub stops the VM on any byte it receives)."""


@dataclass
class Segment:
    selector: int
    base: int | None = None     # from the monitor's `info registers`; None when not read
    limit: int | None = None
    flags: int | None = None    # QEMU SegmentCache.flags (descriptor high dword bits)


@dataclass
class Registers:
    """CPU state at a stop. `gpr` holds what the stub's register set names (rax..r15, rip, eflags,
    fs_base, gs_base, k_gs_base, cr8, ...) by their target.xml names; the common ones are attributes."""

    rip: int
    rflags: int
    cr0: int
    cr2: int
    cr3: int
    cr4: int
    efer: int
    segments: dict[str, Segment]
    gpr: dict[str, int] = field(default_factory=dict)
    # Extra CPU state only the monitor knows (gdt/idt base+limit), by name.
    tables: dict[str, tuple[int, int]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> int:
        return self.gpr[name]

    @property
    def cs(self) -> Segment:
        return self.segments["cs"]

    @property
    def mode(self) -> str:
        """`real`, `prot16`, `prot32` or `long64`, from CR0.PE, EFER.LMA and the CS descriptor.

        gdb's `set architecture` cannot be trusted here: QEMU always reports the x86-64 register
        set, also in real mode (QEMU target/i386/gdbstub.c, x86_cpu_gdb_read_register; checked
        here with gdb 13.1 and QEMU 7.2)."""
        if not self.cr0 & CR0_PE:
            return "real"
        flags = self.cs.flags
        if flags is None:
            # Without the descriptor, EFER.LMA + paging is the best guess (compatibility mode aside).
            return "long64" if self.efer & EFER_LMA else "prot32"
        if self.efer & EFER_LMA and flags & DESC_L:
            return "long64"
        return "prot32" if flags & DESC_B else "prot16"

    @property
    def cs_base(self) -> int:
        base = self.cs.base
        if base is None:
            # Outside the monitor, real mode's usual rule; wrong right after reset, where the CS
            # base is 0xffff0000 with selector 0xf000 (Intel SDM vol. 3A, 9.1.4),
            # which is why both backends read `info registers`.
            return (self.cs.selector << 4) if self.mode == "real" else 0
        return base

    @property
    def pc(self) -> int:
        """Linear address of the next instruction: CS.base + IP (0xFFFFFFF0 at reset, not CS*16+IP)."""
        ip = self.rip
        if self.mode == "real" or self.mode == "prot16":
            ip &= 0xFFFF
        elif self.mode == "prot32":
            ip &= 0xFFFFFFFF
        return (self.cs_base + ip) & (0xFFFFFFFFFFFFFFFF if self.mode == "long64" else 0xFFFFFFFF)


@dataclass
class StopEvent:
    """Why the target stopped. reason: breakpoint, watchpoint, step, interrupt, signal, exited."""

    reason: str
    signal: int | None = None
    address: int | None = None      # the watched address for a watchpoint stop
    kind: str | None = None         # watch / rwatch / awatch
    raw: str = ""
    thread: str | None = None       # the gdbstub thread (vCPU) that stopped: `T05thread:01;` -> "01"


# ---- vCPUs: gdbstub threads ---------------------------------------------------------------------
# More threads than this in a listing is a hostile or broken stub: QEMU's x86 machines cap `-smp` at
# their max_cpus, a few hundred (`qemu-system-x86_64 -machine help` lists them).
MAX_THREADS = 1024


def thread_index(thread: str) -> int | None:
    """QEMU's cpu-index of a gdbstub thread id: "01" or "p01.02" (multiprocess), hex. QEMU numbers
    threads cpu_index + 1 (gdbstub/gdbstub.c, gdb_get_cpu_index) in both forms; None when `thread`
    is not a positive hex id."""
    tid = thread[1:].rpartition(".")[2] if thread.startswith("p") else thread
    if not tid or len(tid) > 16:
        return None
    try:
        value = int(tid, 16)
    except ValueError:
        return None
    return value - 1 if value > 0 else None


# qThreadExtraInfo: QEMU answers "CPU#<index> [halted ]" or "CPU#<index> [running]" (hex), from
# CPUState.halted (gdbstub/gdbstub.c, handle_query_thread_extra).
_EXTRA_RE = re.compile(rb"\[(halted|running)")


def thread_extra_halted(reply: bytes) -> bool | None:
    """The halted flag of a qThreadExtraInfo reply (hex text); None when it does not say."""
    try:
        m = _EXTRA_RE.search(bytes.fromhex(reply.decode("latin-1")))
    except ValueError:
        return None
    return None if m is None else m[1] == b"halted"


@dataclass
class CpuRead:
    """One vCPU (gdbstub thread) as read at a stop. `registers` is None when it could not be read
    (`problem` says why: the thread vanished between listing and reading, the stub refused)."""

    thread: str
    index: int
    registers: Registers | None
    halted: bool | None = None      # QEMU's CPUState.halted; None: unknown
    problem: str | None = None
    halted_source: str = ""         # where `halted` came from: "qThreadExtraInfo", "info registers"


@dataclass
class CpuSet:
    """Every vCPU at a stop, by index; `focus` is the thread reads and steps are about."""

    cpus: list[CpuRead]
    focus: str | None = None
    problems: list[str] = field(default_factory=list)

    def focused(self) -> CpuRead | None:
        return next((c for c in self.cpus if c.thread == self.focus), None)


# ---- `info registers` (HMP) -------------------------------------------------------------------
# QEMU target/i386/cpu-dump.c x86_cpu_dump_seg_cache: "CS =f000 ffff0000 0000ffff 00009b00 ..."
# (a 16-digit base in long mode), "GDT=     000f6000 00000037".
_SEG_RE = re.compile(r"^(ES|CS|SS|DS|FS|GS|LDT|TR)\s*=\s*([0-9a-f]{4})\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)",
                     re.M | re.I)
_TABLE_RE = re.compile(r"^(GDT|IDT)\s*=\s*([0-9a-f]+)\s+([0-9a-f]+)", re.M | re.I)
_CR_RE = re.compile(r"\b(CR0|CR2|CR3|CR4|EFER)=([0-9a-f]+)", re.I)


# QEMU target/i386/cpu-dump.c x86_cpu_dump_state: "... CPL=0 II=0 A20=1 SMM=0 HLT=1" (CPUState.halted).
_HLT_RE = re.compile(r"\bHLT=([01])\b")
# `info registers -a` (QEMU monitor/hmp-cmds.c, hmp_info_registers) heads each CPU "CPU#<cpu_index>".
_CPU_HEAD_RE = re.compile(r"^CPU#(\d{1,6})[ \t\r]*$", re.M)


@dataclass
class MonitorRegisters:
    segments: dict[str, Segment]
    tables: dict[str, tuple[int, int]]
    control: dict[str, int]
    halted: bool | None = None      # `HLT=1`; None when the text does not say


def parse_info_registers(text: str) -> MonitorRegisters:
    """Segment caches, GDT/IDT and control registers from HMP `info registers` text."""
    segments = {m[1].lower(): Segment(int(m[2], 16), int(m[3], 16), int(m[4], 16), int(m[5], 16))
                for m in _SEG_RE.finditer(text)}
    tables = {m[1].lower(): (int(m[2], 16), int(m[3], 16)) for m in _TABLE_RE.finditer(text)}
    control = {m[1].lower(): int(m[2], 16) for m in _CR_RE.finditer(text)}
    hlt = _HLT_RE.search(text)
    return MonitorRegisters(segments, tables, control, None if hlt is None else hlt[1] == "1")


def parse_info_registers_all(text: str) -> dict[int | None, MonitorRegisters]:
    """`info registers -a`: {cpu_index: registers}. Text without "CPU#N" heads (plain `info registers`,
    or a monitor without -a) comes back whole under the key None."""
    heads = list(_CPU_HEAD_RE.finditer(text))
    if not heads:
        return {None: parse_info_registers(text)}
    out: dict[int | None, MonitorRegisters] = {}
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        out.setdefault(int(m[1]), parse_info_registers(text[m.end():end]))
    return out


def monitor_for(sections: dict[int | None, MonitorRegisters], index: int | None) -> MonitorRegisters | None:
    """The section of `info registers -a` for CPU `index`; the whole text when it had no heads; for an
    unknown index the lowest CPU's (the monitor's default CPU is the first one: QEMU monitor/misc.c,
    mon_get_cpu)."""
    if None in sections:
        return sections[None]
    if index is not None:
        return sections.get(index)
    return sections[min(sections)] if sections else None


def merge_registers(gpr: dict[str, int], mon: MonitorRegisters | None) -> Registers:
    """Registers from the stub's register set, with segment bases/flags from the monitor."""
    segs: dict[str, Segment] = {}
    for name in SEGMENTS:
        m = mon.segments.get(name) if mon else None
        sel = gpr.get(name, m.selector if m else 0)
        segs[name] = Segment(sel, m.base, m.limit, m.flags) if m else Segment(sel)
    ctl = mon.control if mon else {}

    def reg(name: str) -> int:
        if name in gpr:
            return gpr[name]
        return ctl.get(name, 0)

    return Registers(rip=gpr.get("rip", 0), rflags=gpr.get("eflags", 0), cr0=reg("cr0"), cr2=reg("cr2"),
                     cr3=reg("cr3"), cr4=reg("cr4"), efer=reg("efer"), segments=segs, gpr=dict(gpr),
                     tables=dict(mon.tables) if mon else {})


class Target(ABC):
    """A stopped-or-running guest CPU with memory, breakpoints and a monitor."""

    # The guest's QEMU process on this host, when known (enables hostmem's fast path).
    qemu_pid: int | None = None
    # Bumped whenever the guest may have run (resume, step): memory caches compare it.
    generation: int = 0

    # The gdbstub thread (vCPU) register reads, virtual reads and step() are about; None: the stub's
    # default (a stub that names no threads). Backends set it to the stopping thread at every stop.
    focus: str | None = None

    @abstractmethod
    def read_registers(self, timeout: float = DEFAULT_TIMEOUT) -> Registers:
        """The registers of the focus thread."""

    def read_cpus(self, timeout: float = DEFAULT_TIMEOUT) -> CpuSet:
        """Every vCPU's registers. This default (a target without threads) is one CPU, index 0."""
        thread = self.focus or "1"
        return CpuSet([CpuRead(thread, 0, self.read_registers(timeout))], thread)

    def select_thread(self, thread: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Make `thread` the focus: read_registers, read_virtual and step are about it from now on
        (until the next stop names its own thread)."""
        self.focus = thread

    # The fast path (hostmem.HostMemory) when QEMU runs on this host; set by use_host_memory().
    hostmem = None

    def read_physical(self, address: int, size: int, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Guest-physical bytes: from the QEMU process when the fast path is on, else the stub.

        Raises Unreadable when the stub answers with an error."""
        if self.hostmem is not None:
            data = self.hostmem.try_read(address, size)
            if data is not None:
                return data
        return self._read_physical(address, size, timeout)

    @abstractmethod
    def _read_physical(self, address: int, size: int, timeout: float) -> bytes: ...

    def use_host_memory(self, pid: int | None = None, monitor=None) -> bool:
        """Read guest RAM from /proc/PID/mem; False when not possible here.

        The host addresses come from HMP `info mtree -f` and `gpa2hva` (QEMU 7.2 monitor/misc.c,
        hmp_gpa2hva; the same path pwndbg's aglib/qemu.py takes). Measured here: ~1.3 µs an
        8-byte read, against ~85 µs over the stub.

        monitor: an HMP callable for `info mtree`/`gpa2hva` (QMP works while the guest runs);
        defaults to this target's monitor() through the stub."""
        from inspector.live.hostmem import HostMemory
        pid = pid or self.qemu_pid
        if pid is None:
            return False
        hm = HostMemory.open(pid, monitor or self.monitor)
        if hm is None:
            return False
        self.hostmem = hm
        return True

    @abstractmethod
    def read_virtual(self, address: int, size: int, timeout: float = DEFAULT_TIMEOUT) -> bytes: ...

    @abstractmethod
    def set_breakpoint(self, address: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        """A hardware breakpoint (Z1) at a linear address."""

    @abstractmethod
    def remove_breakpoint(self, address: int, timeout: float = DEFAULT_TIMEOUT) -> None: ...

    @abstractmethod
    def set_watchpoint(self, address: int, size: int, kind: str = "write",
                       timeout: float = DEFAULT_TIMEOUT) -> None:
        """kind: write (Z2), read (Z3) or access (Z4)."""

    @abstractmethod
    def remove_watchpoint(self, address: int, size: int, kind: str = "write",
                          timeout: float = DEFAULT_TIMEOUT) -> None: ...

    @abstractmethod
    def resume(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Start the guest (stepping off a breakpoint first) and return at once."""

    @abstractmethod
    def wait_stop(self, timeout: float = DEFAULT_CONT_TIMEOUT) -> StopEvent:
        """Wait for the stop after resume(); TargetTimeout leaves the guest running."""

    @abstractmethod
    def cont(self, timeout: float = DEFAULT_CONT_TIMEOUT) -> StopEvent:
        """Resume; return when the target stops. TargetTimeout leaves it running (see interrupt)."""

    @abstractmethod
    def step(self, timeout: float = DEFAULT_TIMEOUT) -> StopEvent: ...

    @abstractmethod
    def interrupt(self, timeout: float = DEFAULT_TIMEOUT) -> StopEvent:
        """Stop a running guest (0x03); safe to call from another thread while cont() waits."""

    @abstractmethod
    def monitor(self, command: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """An HMP command through the stub (qRcmd); returns its text output."""

    @property
    @abstractmethod
    def running(self) -> bool: ...

    @abstractmethod
    def close(self) -> None:
        """Remove our breakpoints and drop the connection; the guest stays paused. Idempotent."""

    @abstractmethod
    def detach(self) -> None:
        """The stub's `D`: QEMU removes all breakpoints and resumes the guest; then close()."""

    def __enter__(self) -> "Target":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def physical_memory(self) -> "TargetMemory":
        return TargetMemory(self, physical=True)

    def virtual_memory(self) -> "TargetMemory":
        return TargetMemory(self, physical=False)


class TargetMemory:
    """The decoders' Memory protocol over a Target (decoders/memory.py).

    Reads are fetched in whole pages and cached until the guest runs again (Target.generation
    changes on every resume or step), so a decoder walking a HOB list field by field costs one
    stub round trip per page, not per field."""

    def __init__(self, target: Target, physical: bool = True, timeout: float = DEFAULT_TIMEOUT,
                 cache: bool = True):
        self.target = target
        self.physical = physical
        self.timeout = timeout
        self.cache = cache
        self._pages: dict[int, bytes] = {}
        self._generation = target.generation

    def _fetch(self, address: int, size: int) -> bytes:
        try:
            if self.physical:
                return self.target.read_physical(address, size, self.timeout)
            return self.target.read_virtual(address, size, self.timeout)
        except TargetError as e:
            raise Unreadable(address, size, str(e)) from e

    def prefetch(self, addresses) -> None:
        """Fetch the pages holding `addresses` ahead of the reads that will follow (a page-table
        walk's next level): runs of nearby pages become one pipelined read each instead of one
        round trip per page. Pages that cannot be read are simply left for read() to report."""
        if not self.cache:
            return
        if self._generation != self.target.generation:
            self._pages.clear()
            self._generation = self.target.generation
        pages = sorted({a // PAGE for a in addresses} - self._pages.keys())
        if not pages or len(self._pages) + len(pages) > CACHE_MAX_PAGES:
            return
        runs, start, prev = [], pages[0], pages[0]
        for p in pages[1:]:
            # A few unwanted pages in a gap cost less than another round trip.
            if p - prev > PREFETCH_MAX_GAP or (p - start + 1) * PAGE > CACHE_MAX_READ:
                runs.append((start, prev))
                start = p
            prev = p
        runs.append((start, prev))
        for lo, hi in runs:
            try:
                data = self._fetch(lo * PAGE, (hi - lo + 1) * PAGE)
            except Unreadable:
                continue
            for i, p in enumerate(range(lo, hi + 1)):
                self._pages.setdefault(p, data[i * PAGE:(i + 1) * PAGE])

    def read(self, address: int, size: int) -> bytes:
        if not self.cache or size <= 0 or size > CACHE_MAX_READ:
            return self._fetch(address, size)
        if self._generation != self.target.generation or len(self._pages) > CACHE_MAX_PAGES:
            self._pages.clear()
            self._generation = self.target.generation
        first, last = address // PAGE, (address + size - 1) // PAGE
        missing = [p for p in range(first, last + 1) if p not in self._pages]
        if missing:
            try:
                # One pipelined request for the run of pages the cache lacks.
                lo, hi = missing[0], missing[-1]
                data = self._fetch(lo * PAGE, (hi - lo + 1) * PAGE)
            except Unreadable:
                return self._fetch(address, size)      # a hole or device page nearby: no caching
            for i, p in enumerate(range(lo, hi + 1)):
                self._pages.setdefault(p, data[i * PAGE:(i + 1) * PAGE])
        blob = b"".join(self._pages[p] for p in range(first, last + 1))
        start = address - first * PAGE
        return blob[start:start + size]
