"""A live session: run control by boot phase over a Target, composed of the parts that do the rest.

`Session(target, image, qemu=None)` implements session_api.SessionLike. It owns run control and
building a Stop; the rest is delegated:
- handoffs.py: what is decoded at each handoff (a table, phase -> decoder);
- copies.py: reaching the entry of a module loaded at run time (dxe-ipl, dxe-core, bds) by
  following the copies its loader makes;
- modules.py: breakpoints by module, image-load events, the loaded images and the DXE tables;
- symbols.py: function and line at RIP from a build's .debug files (optional);
- debuglog.py: the guest's DEBUG log (the debugcon file of a QEMU we started), parsed as it grows and
  cross-checked at every stop against the images, handoff entries and HOBs found without it.
What they share about the boot (handoff points, module ranges, system memory, the phase reached)
is one phases.BootState.

Handoffs reset, sec and pei-core are hardware breakpoints (Z1) at addresses computed from the image
(phases.py). cont() takes handoffs on the way to DXE and image-load stops transparently. Once DXE is
up every stop also shows the DXE tables, and with a SymbolIndex the function and line at RIP.

"bds" is the BdsDxe driver's entry point (BdsDxeEntry, which installs the BDS arch protocol); the
BDS phase proper starts when DxeCore calls gBds->Entry once dispatch is done.

Every stop reads every vCPU (Target.read_cpus, one pipelined exchange) into Stop.cpus (cpus.py);
the stop is about the CPU its stop reply names (Stop.about; an AP that hit a breakpoint is named in
the problems), select_cpu re-presents it for another (Stop.cpu, as current() returns it from then
on), and step() steps the selected CPU only. While recording, each CPU's code at its RIP is kept too.

Every target call has a timeout; TargetDead and TargetTimeout become Stop problems, never hangs.
"""
from __future__ import annotations

import time

from decoders.errors import DecodeError
from decoders.memory import Unreadable
from decoders.model import Node
from inspector.live.copies import CopyFollower, Followed
from inspector.live.cpus import (BOOT_CPU, about_cpu, cpu_problems, cpu_views, is_cpu_index, register_dict,
                                 step_refusal, stop_note)
from inspector.live.debuglog import DebugLog
from inspector.live.disasm import disassemble_at
from inspector.live.handoffs import HandoffContext, decode_handoff
from inspector.live.measured import MeasureCheck
from inspector.live.modules import ModuleTracker
from inspector.live.phases import RESET_VECTOR, BootState, Breakpoint, classify, compute_handoffs, phase_index
from inspector.live.runctl import Outcome, release, remaining
from inspector.live.session_api import PHASES, CpuView, Mode, Phase, Stop
from inspector.live.symbols import LoadedModule, SymbolIndex, gdb_script, symbolize
from inspector.live.target import DEFAULT_TIMEOUT, StopEvent, Target, TargetDead, TargetError, TargetTimeout

# Stops a cont() may swallow (handoffs on the way to DXE, image-load watchpoint hits) before it
# gives up: a boot to the shell makes ~340 debug-table updates.
MAX_TRANSPARENT_STOPS = 4096
# debugcon text kept in a Stop.
MAX_LOG = 64 << 10
# Handoffs reached by a breakpoint at an address the image gives; the others by following copies.
STATIC_HANDOFFS = (Phase.SEC, Phase.PEI_CORE)
# A recorded stop's disassembly of each CPU it is not about: this many instructions a CPU, for at most
# this many CPUs a stop (~40 bytes of JSON a line: at most ~10 KiB a stop, whatever -smp says).
CPU_DISASSEMBLY_LINES = 4
MAX_DISASSEMBLED_CPUS = 64
# CR0.PG (Intel SDM vol. 3A, 2.5): without paging a linear address is the physical one.
CR0_PG = 1 << 31


class Session:
    """Run control by boot phase; every call returns a Stop (session_api.Stop)."""

    def __init__(self, target: Target, image, qemu=None, call_timeout: float = DEFAULT_TIMEOUT,
                 symbols: SymbolIndex | None = None):
        self.target = target
        self.image = image                  # inspector.image.LoadedImage
        self.qemu = qemu                    # inspector.live.qemu.QemuProcess, when we started it
        self.call_timeout = call_timeout
        self.symbols = symbols
        self.boot = BootState(compute_handoffs(image.root, len(image.data)))
        # Linear entry address -> handoff, for the static ones and those found at run time.
        self.entries: dict[int, Phase] = {RESET_VECTOR: Phase.RESET}
        for phase in STATIC_HANDOFFS:
            addr = self.boot.handoffs.static_entry(phase)
            if addr is not None:
                self.entries[addr] = phase
        self.phys = target.physical_memory()
        self.virt = target.virtual_memory()
        self.modules = ModuleTracker(target, self.phys, image, self.boot, call_timeout, symbols=symbols)
        self.copies = CopyFollower(target, self.phys, self.boot, call_timeout, self.modules)
        self.decode_context = HandoffContext(self.phys, bytes(image.data[-16:]), self.boot, self.modules.dxe_tables)
        # The guest's DEBUG log (debugcon), parsed as it grows, when we started QEMU and so have the file.
        self.debug_log = DebugLog(qemu.read_debug_log) if qemu is not None and hasattr(qemu, "read_debug_log") else None
        # Predicted PCR0/PCR7 beside the TCG log of a stop (predicted once, from the image and VARS).
        self.measured = MeasureCheck.for_session(image, qemu, read_phys=self.phys.read)
        self.index = -1
        # Disassemble every CPU at its RIP at each stop (CpuView.disassembly): set by a Recorder, so a
        # replay shows each CPU's code; off otherwise (a read per CPU a live stop does not need).
        self.record_cpu_disassembly = False
        self.dead: str | None = None
        self._stop: Stop | None = None
        self._generation: int | None = None

    @property
    def handoffs(self):
        return self.boot.handoffs

    @property
    def reached(self) -> Phase | None:
        return self.boot.reached

    @property
    def breakpoints(self) -> dict[str, Breakpoint]:
        return self.modules.breakpoints

    @property
    def load_events(self) -> int:
        return self.modules.load_events

    # ---- SessionLike ---------------------------------------------------------------------------
    @property
    def live(self) -> bool:
        return True

    def current(self) -> Stop:
        if self._stop is not None and self._generation == self.target.generation and not self.dead:
            return self._stop
        return self._guard(lambda: self._build("reset" if self._stop is None else "interrupt"))

    def step(self) -> Stop:
        """Step the CPU the current stop is about (the one select_cpu chose, else the one that stopped)."""
        stop = self._stop
        if stop is not None and not self.dead:
            refusal = step_refusal(self._view(stop, stop.cpu))
            if refusal is not None and len(stop.cpus) > 1:
                return self._with_problem(refusal)
        return self._guard(lambda: self._after(self.target.step(self.call_timeout), "step"))

    def cont(self, timeout: float = 60.0) -> Stop:
        """Run until a stop the user asked for: handoffs on the way to DXE and image-load events
        (which arm pending breakpoints) are taken transparently."""
        return self._guard(lambda: self._on_boot_cpu(lambda: self._cont(time.monotonic() + timeout, timeout)))

    def interrupt(self) -> Stop:
        return self._guard(lambda: self._after(self.target.interrupt(self.call_timeout), "interrupt"))

    def select_cpu(self, index: int) -> Stop:
        """The current stop about CPU `index`: its mode, RIP, registers, module and disassembly;
        step() steps it from now on."""
        return self._guard(lambda: self._select_cpu(index))

    def _select_cpu(self, index: int) -> Stop:
        stop = self.current()
        if self.dead:
            return stop
        view = self._view(stop, index)
        if view is None:
            have = ", ".join(str(c.index) for c in stop.cpus) or "none read"
            return self._with_problem(f"no CPU {index} at this stop (CPUs: {have})")
        if not view.registers:
            return self._with_problem(f"CPU {index}: its registers could not be read ({view.state_source})")
        self.target.select_thread(view.thread, self.call_timeout)
        mode = Mode.of(view.mode)
        ip = view.registers.get("rip", 0) & 0xFFFF if mode in (Mode.REAL, Mode.PROT16) else None
        # A fresh view: the page cache of the other CPU's virtual address space must not answer.
        self.virt = self.target.virtual_memory()
        new = stop.copy(cpu=index, mode=mode, linear_rip=view.linear_rip, registers=dict(view.registers),
                        module=view.module, disassembly=disassemble_at(self.virt, view.linear_rip, mode, ip=ip))
        self._stop = new
        return new

    @staticmethod
    def _view(stop: Stop, index: int) -> CpuView | None:
        return next((c for c in stop.cpus if c.index == index), None)

    def _on_boot_cpu(self, run):
        """run() with register reads about the boot CPU again (the handoff and copy logic follows
        the BSP), whichever CPU was selected or stopped last."""
        stop = self._stop
        view = self._view(stop, BOOT_CPU) if stop is not None else None
        if view is not None and self.target.focus != view.thread:
            self.target.select_thread(view.thread, self.call_timeout)
        return run()

    def console(self, line: str) -> str:
        """A command typed in the app's console: gdb's CLI on the gdb backend (which has one),
        QEMU's monitor through qRcmd on the RSP backend. Raises TargetError as the target does."""
        console = getattr(self.target, "console", None)
        if console is not None:
            return console(line, self.call_timeout)
        return self.target.monitor(line, self.call_timeout)

    def next_handoff(self, timeout: float = 60.0) -> Stop:
        return self._guard(lambda: self._on_boot_cpu(lambda: self._next_handoff(time.monotonic() + timeout)))

    def run_to(self, phase: str, timeout: float = 120.0) -> Stop:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}: one of {', '.join(PHASES)}")
        deadline = time.monotonic() + timeout
        stop = self.current()
        if phase not in self.handoffs.phases():
            return self._with_problem(f"this image has no {phase} handoff (its handoffs: "
                                      f"{', '.join(self.handoffs.phases())})")
        for _ in range(len(PHASES) + 1):
            if self.dead or self.boot.at_or_past(Phase(phase)):
                break
            stop = self._guard(lambda: self._on_boot_cpu(lambda: self._next_handoff(deadline)))
            if stop.handoff is None:
                break           # not reached (timeout, unexpected stop): the problem says why
        if phase_index(self.reached or "") > phase_index(phase) and stop.handoff != phase:
            stop = stop.copy(problems=[*stop.problems, f"already past {phase} (at {self.reached})"])
        return stop

    def add_breakpoint(self, spec: str) -> Breakpoint:
        return self.modules.add_breakpoint(spec)

    def remove_breakpoint(self, spec: str) -> None:
        self.modules.remove_breakpoint(spec)

    def close(self) -> None:
        try:
            self.target.close()
        except TargetError:
            pass        # already dead: nothing left to release on that side
        if self.qemu is not None:
            self.qemu.close()

    # ---- what the session knows about the loaded images -------------------------------------------
    def images(self) -> list[LoadedModule]:
        return self.modules.images()

    def gdb_script(self) -> str:
        """`add-symbol-file <module>.debug <ImageBase + .text RVA>` for every known image."""
        return gdb_script(self.symbols, self.images(), self.phys)

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
        return stop.copy(problems=[*stop.problems, problem])

    def _dead_stop(self, why: str) -> Stop:
        last = self._stop
        self.index += 1
        stop = Stop(self.index, "interrupt", last.phase if last else Phase.UNKNOWN, last.mode if last else Mode.UNKNOWN,
                    last.linear_rip if last else 0, dict(last.registers) if last else {},
                    module=last.module if last else None, problems=[f"target died: {why}"],
                    cpus=[c.copy() for c in last.cpus] if last else [], cpu=last.cpu if last else 0,
                    about=last.about if last else None)
        self._stop = stop
        return stop

    def _timed_out(self, why: str) -> Stop:
        try:
            ev = self.target.interrupt(self.call_timeout)
        except TargetDead:
            raise
        except TargetError as e:
            return self._problem_stop(f"{why}; interrupt failed: {e}")
        stop = self._build("interrupt", ev.thread)
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
        return self._build(reason or ev.reason, ev.thread)

    def _from(self, outcome: Outcome) -> Stop:
        """The Stop for a run a part (copies, modules) ended without reaching its goal."""
        if outcome.timed_out:
            return self._timed_out(outcome.problem or "timed out")
        if outcome.event is not None:
            stop = self._after(outcome.event, None)
        elif outcome.reason is not None:
            stop = self._build(outcome.reason)
        else:
            return self._with_problem(outcome.problem or "stopped")
        if outcome.problem and not outcome.exited:
            stop.problems.append(outcome.problem)
        return stop

    def _build(self, reason: str, thread: str | None = None) -> Stop:
        # Every vCPU in one exchange. The stop is about the CPU the stub's stop reply named
        # (`thread`: the vCPU that hit the breakpoint or was stepped, gdb manual "Stop Reply
        # Packets"; QEMU gdbstub/gdbstub.c gdb_vm_state_change names gdbserver_state.c_cpu), else
        # the one the target focuses on; never a focus left over from an earlier stop or selection.
        cpus = self.target.read_cpus(self.call_timeout)
        focus = about_cpu(cpus, thread)
        if focus is not None and focus.thread != self.target.focus and focus.registers is not None:
            # Virtual reads (the disassembly) and step() follow the CPU the stop is about.
            self.target.select_thread(focus.thread, self.call_timeout)
        regs = focus.registers if focus is not None and focus.registers is not None \
            else self.target.read_registers(self.call_timeout)
        mode, pc = Mode.of(regs.mode), regs.pc
        handoff = self.entries.get(pc)
        if handoff == Phase.RESET and mode != Mode.REAL:
            handoff = None
        phase, module = classify(pc, mode, self.boot.ranges, self.reached)
        if handoff is not None:
            phase = handoff
            if reason == "breakpoint":
                reason = "handoff"
        elif reason == "reset":
            reason = "interrupt"        # attached to a guest that is past the reset vector
        # Code of a later phase (stepped into, or attached mid-boot) moves the phase model on, so
        # next_handoff() aims at the handoff after it.
        if phase_index(phase) > phase_index(self.reached or ""):
            self.boot.reached = phase
        self.index += 1
        stop = Stop(self.index, reason, phase, mode, pc, register_dict(regs), module=module, handoff=handoff)
        ip = regs.rip & 0xFFFF if mode in (Mode.REAL, Mode.PROT16) else None
        stop.disassembly = disassemble_at(self.virt, pc, mode, ip=ip)
        if handoff is not None:
            self._decode(stop, f"the {handoff} handoff", lambda: decode_handoff(handoff, self.decode_context, regs))
        elif self.boot.at_or_past(Phase.DXE_CORE) and self.modules.find_debug_header() is not None:
            # Once DXE made its tables, every stop shows them (ACPI, event logs, loaded images).
            def tables() -> Node:
                node = Node("dxe-state", f"DXE state at 0x{pc:x}")
                self.modules.dxe_tables(node)
                return node
            self._decode(stop, "the DXE tables", tables)
        self.measured.attach(stop.tree)
        if self.symbols is not None:
            sym = symbolize(self.symbols, self.images(), self.phys, pc)
            if sym is not None:
                if stop.tree is None:
                    stop.tree = Node("stop", f"stop at 0x{pc:x}")
                stop.tree.append(sym)
                stop.module = sym.title
        stop.cpu = stop.about = focus.index if focus is not None and is_cpu_index(focus.index) else BOOT_CPU
        stop.cpus = cpu_views(cpus, self.boot, self._name_at)
        for view in stop.cpus:
            if view.index == stop.cpu:
                view.module = stop.module      # the same name (with symbols: function and line) as the stop's
        if self.record_cpu_disassembly and len(stop.cpus) > 1:
            self._disassemble_cpus(stop)
        stop.problems.extend(cpu_problems(cpus))
        note = stop_note(stop.reason, stop.cpu, len(stop.cpus))
        if note is not None:
            stop.problems.append(note)
        if self.qemu is not None:
            stop.log = self.qemu.debug_log(MAX_LOG)[-MAX_LOG:]
        if self.debug_log is not None:
            self._debug_log_node(stop)
        self._stop, self._generation = stop, self.target.generation
        return stop

    def _disassemble_cpus(self, stop: Stop) -> None:
        """CpuView.disassembly of the CPUs `stop` is not about (CPU_DISASSEMBLY_LINES each, for
        MAX_DISASSEMBLED_CPUS at most): CPUs at the same place (mode, linear RIP and, with paging,
        CR3) share one read, the stop's own disassembly included; without paging (CR0.PG = 0) the
        linear address is read as a physical one, with paging through the CPU's own thread (its page
        tables), the focus restored after. A CPU that cannot be read keeps an empty list."""
        def place(view: CpuView) -> tuple:
            paging = view.registers.get("cr0", 0) & CR0_PG
            return Mode.of(view.mode), view.linear_rip, view.registers.get("cr3") if paging else None

        about = self._view(stop, stop.cpu)
        done: dict[tuple, list[tuple[int, str]]] = {}
        if about is not None and about.registers:
            done[place(about)] = stop.disassembly[:CPU_DISASSEMBLY_LINES]
        focus = self.target.focus
        shown = 0
        try:
            for view in stop.cpus:
                if view.index == stop.cpu or not view.registers:
                    continue
                if shown >= MAX_DISASSEMBLED_CPUS:
                    break
                shown += 1
                key = place(view)
                if key not in done:
                    mode, linear, cr3 = key
                    ip = view.registers.get("rip", 0) & 0xFFFF if mode in (Mode.REAL, Mode.PROT16) else None
                    memory = self.phys
                    if cr3 is not None:
                        try:
                            self.target.select_thread(view.thread, self.call_timeout)
                        except TargetDead:
                            raise
                        except TargetError:
                            continue
                        memory = self.target.virtual_memory()
                    done[key] = disassemble_at(memory, linear, mode, CPU_DISASSEMBLY_LINES, ip=ip)
                view.disassembly = list(done[key])
        finally:
            if focus is not None and self.target.focus != focus:
                self.target.select_thread(focus, self.call_timeout)

    def _name_at(self, pc: int) -> str | None:
        """With symbols, the "Module+offset" a CPU's RIP is at (as the stop's own module)."""
        if self.symbols is None:
            return None
        sym = symbolize(self.symbols, self.images(), self.phys, pc)
        return sym.title if sym is not None else None

    def _debug_log_node(self, stop: Stop) -> None:
        """The "Debug log" node: the log up to this stop, cross-checked with what the session derived
        without it (inspector/live/debuglog.py); a disagreement is a problem in the stop's tree."""
        try:
            self.debug_log.update()
        except OSError as e:
            stop.problems.append(f"reading the debug console log failed: {e}")
            return
        if not self.debug_log.parser.bytes and not self.debug_log.parser.pending:
            return          # nothing written yet (a RELEASE build writes nothing to the debug console)
        static = {start for start, _end, _name, _phase in self.boot.handoffs.ranges}
        node = self.debug_log.node(stop.tree, self.images(), static)
        if stop.tree is None:
            stop.tree = Node("stop", f"stop at 0x{stop.linear_rip:x}")
        stop.tree.append(node)

    @staticmethod
    def _decode(stop: Stop, what: str, decode) -> None:
        """stop.tree = decode(); a failure to read is a problem on the stop (a dead target is not)."""
        try:
            stop.tree = decode()
        except TargetDead:
            raise
        except (DecodeError, Unreadable, TargetError) as e:
            stop.problems.append(f"decoding {what} failed: {e}")

    # ---- run control by phase --------------------------------------------------------------------
    def _cont(self, deadline: float, timeout: float) -> Stop:
        m = self.modules
        for _ in range(MAX_TRANSPARENT_STOPS):
            if m.pending() and m.load_watch is None:
                if not self.boot.at_or_past(Phase.DXE_CORE):
                    # The image-load watch needs DXE: run there through the handoffs (the user's
                    # armed breakpoints stay set, so one of them may stop us first).
                    stop = self._next_handoff(deadline)
                    if self._user_stop(stop) is not None or stop.handoff is None:
                        return stop
                    continue
                dxefv = self.handoffs.dxefv
                outcome = m.wait_for_debug_table(
                    deadline, lambda: self.copies.fv_ram_base(dxefv) if dxefv is not None else None)
                if outcome is not None:
                    stop = self._from(outcome)
                    return self._user_stop(stop) or stop
                continue
            try:
                ev = self.target.cont(remaining(deadline))
            except TargetTimeout:
                return self._timed_out(f"no stop within {timeout} s")
            if m.is_load_event(ev):
                m.on_load_event()
                continue
            return self._after(ev, None)
        return self._with_problem(f"{MAX_TRANSPARENT_STOPS} image-load stops without reaching a breakpoint")

    def _user_stop(self, stop: Stop) -> Stop | None:
        """`stop` as the user's breakpoint stop, when RIP is one of theirs."""
        if stop.linear_rip not in self.modules.user_addresses():
            return None
        stop.reason = "breakpoint"
        stop.problems = [p for p in stop.problems if not p.startswith("stopped")]
        return stop

    def _next_handoff(self, deadline: float) -> Stop:
        if self._stop is None:
            self.current()
        now = phase_index(self.reached or "")
        upcoming = [p for p in self.handoffs.phases() if phase_index(p) > now]
        if not upcoming:
            return self._with_problem(f"no handoff after {self.reached}")
        phase = upcoming[0]
        if phase in STATIC_HANDOFFS:
            return self._run_to_address(self.handoffs.static_entry(phase), phase, deadline)
        result = self.copies.follow(phase, deadline)
        if isinstance(result, Outcome):
            return self._from(result)
        self.entries[result.entry] = phase
        return self._build("handoff")

    def _run_to_address(self, address: int, phase: Phase, deadline: float) -> Stop:
        t = self.target
        users = self.modules.user_addresses()
        if address not in users:
            t.set_breakpoint(address, self.call_timeout)
        try:
            ev = t.cont(remaining(deadline))
        except TargetTimeout:
            release(t, self.call_timeout, [address], keep=self.modules.user_addresses())
            return self._timed_out(f"{phase} (0x{address:x}) not reached in time")
        release(t, self.call_timeout, [address], keep=self.modules.user_addresses())
        stop = self._after(ev, None)
        if stop.handoff != phase:
            stop.problems.append(f"stopped at 0x{stop.linear_rip:x} before {phase} (0x{address:x})")
        return stop

