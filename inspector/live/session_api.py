"""What the live screen and scripts need from a session, live or replayed.
`inspector.live.session.Session` drives a real target;
`inspector.live.record.ReplaySession` plays a recorded one back. Both produce `Stop`s.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from decoders.model import Node


class Phase(StrEnum):
    """Where the boot is, by the scriptable names of `--until PHASE`. A StrEnum: members equal their
    strings, so Stops, recordings and JSON carry the plain names."""

    RESET = "reset"
    SEC = "sec"
    PEI_CORE = "pei-core"
    DXE_IPL = "dxe-ipl"
    DXE_CORE = "dxe-core"
    BDS = "bds"
    UNKNOWN = "unknown"


class Mode(StrEnum):
    """The CPU's operating mode: CR0.PE, EFER.LMA and CS.L/D (Intel SDM vol. 3A 2.2, 5.2.1)."""

    REAL = "real"
    PROT16 = "prot16"
    PROT32 = "prot32"
    LONG64 = "long64"
    UNKNOWN = "unknown"

    @classmethod
    def of(cls, text: str) -> "Mode":
        """The member named `text` (a Registers.mode), UNKNOWN for anything else."""
        try:
            return cls(text)
        except ValueError:
            return cls.UNKNOWN


# The boot phases in boot order.
PHASES = tuple(p for p in Phase if p is not Phase.UNKNOWN)


class CpuState(StrEnum):
    """What a vCPU is doing at a stop. QEMU's `info cpus` marks a halted CPU "(halted)"; an AP that
    waits for INIT-SIPI-SIPI (Intel SDM vol. 3A 9.4, "wait-for-SIPI") is halted and still at the
    reset state (CS selector 0xF000, base 0xFFFF0000, RIP 0xFFF0)."""

    RUNNING = "running"
    HALTED = "halted"
    WAIT_FOR_SIPI = "wait-for-sipi"
    UNKNOWN = "unknown"


@dataclass
class CpuView:
    """One vCPU at a stop: the gdbstub thread it is, where it is and what it does."""

    index: int                      # QEMU's cpu-index (0 = the boot CPU)
    thread: str                     # the gdbstub thread id ("1", "p1.2", ...)
    mode: Mode | str
    linear_rip: int
    phase: Phase | str
    module: str | None
    state: CpuState | str
    registers: dict[str, int]
    state_source: str = ""          # how `state` was decided ("info cpus", "registers", ...)
    # (linear address, text) at this CPU's RIP: filled for the CPUs a stop is not about when the
    # session records (Session.record_cpu_disassembly), so a replay shows each CPU's code; the stop's
    # own CPU's is Stop.disassembly.
    disassembly: list[tuple[int, str]] = field(default_factory=list)

    def copy(self, **changes) -> "CpuView":
        """A copy (with `changes`) that shares no dict with this one."""
        changes.setdefault("registers", dict(self.registers))
        changes.setdefault("disassembly", list(self.disassembly))
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict:
        return {"index": self.index, "thread": self.thread, "mode": self.mode, "linear_rip": self.linear_rip,
                "phase": self.phase, "module": self.module, "state": self.state,
                "state_source": self.state_source, "registers": self.registers,
                "disassembly": [{"address": a, "text": t} for a, t in self.disassembly]}


@dataclass
class Stop:
    """One stop of the guest, with everything decoded at it."""

    index: int                      # 0, 1, 2 ... in the session
    reason: str                     # "reset", "breakpoint", "watchpoint", "step", "interrupt", "handoff"
    phase: Phase | str              # one of PHASES, or Phase.UNKNOWN
    mode: Mode | str                # Mode.REAL, PROT16, PROT32, LONG64 (UNKNOWN when the target died)
    linear_rip: int                 # CS base + RIP
    registers: dict[str, int]       # name -> value, incl. cr0-cr4, efer, segment selectors and bases
    module: str | None = None       # the module RIP is in (UI name or GUID), when known
    handoff: Phase | str | None = None   # the handoff this stop is (Phase.SEC, ...), if it is one
    tree: Node | None = None        # what was decoded here: handed-over structures, HOBs, page tables...
    disassembly: list[tuple[int, str]] = field(default_factory=list)  # (linear address, text) at RIP
    log: str = ""                   # debugcon output up to this stop (its last 64 KiB; in to_json too)
    problems: list[str] = field(default_factory=list)
    cpus: list[CpuView] = field(default_factory=list)   # every vCPU, by index; empty: not read
    cpu: int = 0                    # the CPU shown: registers, mode, RIP and disassembly are its (select_cpu)
    # The CPU that stopped (hit the breakpoint, was stepped): `cpu` until select_cpu re-presents the
    # stop about another CPU, which keeps this; None at construction means `cpu`.
    about: int | None = None

    def __post_init__(self) -> None:
        if self.about is None:
            self.about = self.cpu

    def copy(self, **changes) -> "Stop":
        """This stop with `changes` (dataclasses.replace) sharing no list or dict with it: a problem
        added to the copy, or a CPU view changed in it, leaves this stop as it was. The tree is shared
        (decoded once, read-only)."""
        for name in ("problems", "disassembly"):
            changes.setdefault(name, list(getattr(self, name)))
        changes.setdefault("registers", dict(self.registers))
        changes.setdefault("cpus", [c.copy() for c in self.cpus])
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict:
        return {
            "index": self.index, "reason": self.reason, "phase": self.phase, "mode": self.mode,
            "linear_rip": self.linear_rip, "module": self.module, "handoff": self.handoff,
            "registers": self.registers,
            "disassembly": [{"address": a, "text": t} for a, t in self.disassembly],
            "tree": self.tree.to_json() if self.tree is not None else None,
            "problems": self.problems,
            "log": self.log,
            "cpu": self.cpu,
            "about": self.about,
            "cpus": [c.to_json() for c in self.cpus],
        }


class SessionLike(Protocol):
    """The calls the live screen makes, from a worker thread; each returns the new Stop."""

    @property
    def live(self) -> bool: ...          # False for a replay: run control is prev/next only

    def current(self) -> Stop: ...     # the stop as last presented: after select_cpu(i), Stop.cpu is i, Stop.about the CPU that stopped

    def next_handoff(self, timeout: float = 60.0) -> Stop: ...

    def run_to(self, phase: str, timeout: float = 120.0) -> Stop: ...

    def step(self) -> Stop: ...

    def cont(self, timeout: float = 60.0) -> Stop: ...

    def interrupt(self) -> Stop: ...

    def add_breakpoint(self, spec: str): ...   # "0xADDR", "MODULE+OFFSET" (UI name or file GUID), with symbols "FUNCTION" / "MODULE!FUNCTION"

    def remove_breakpoint(self, spec: str) -> None: ...

    def console(self, line: str) -> str: ...   # gdb's CLI on the gdb backend; QEMU's monitor on RSP

    def select_cpu(self, index: int) -> Stop: ...   # the current stop shown for CPU `index` (Stop.cpu; Stop.about kept); `step` steps it

    def close(self) -> None: ...
