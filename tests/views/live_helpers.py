"""What the live-screen tests share: the terminal size, a scriptable SessionLike and waits.

`FakeSession` plays prepared stops as a live session would (and can fail, or block in cont() until
interrupted). The live-screen tests give it the stops of a real recorded boot (conftest.py).

`real_stops()` builds three stops by hand for tests/inspector/test_record.py (a recording's round
trip): registers measured on QEMU 7.2 + Debian OVMF at reset, SEC entry and DXE core entry,
disassembly made with capstone from the real OVMF_CODE_4M.fd bytes at those addresses, and the
decoded TD HOB fixture (tests/data/hob/td-shim/hob_buffer.bin) as the DXE stop's tree.
That pairing of OVMF's DXE core with another platform's TD HOB is not a boot that happened: the
live-screen tests do not use it.
"""
from __future__ import annotations

import threading
import time

import capstone

from decoders.hob.decode import decode_hob_list
from decoders.model import Space
from inspector.live.session_api import Stop
from tests.realdata import bookworm, fixture

SIZE = (140, 45)
# Measured on QEMU 7.2 with Debian's OVMF_CODE_4M.fd, 256 MiB: RCX at the DXE core entry, the SEC
# entry and the DXE core entry (as `fwinspect qemu OVMF_CODE_4M.fd --until dxe-core --json` prints).
HOB_LIST = 0x1BB95000
SEC_ENTRY = 0xFFFCEB84
DXE_CORE_ENTRY = 0x1FEB1F57


def flash_bytes(image: bytes, address: int, size: int) -> bytes:
    """Bytes at a linear address of a flash image whose last byte sits at 4 GiB - 1."""
    base = (1 << 32) - len(image)
    return image[address - base:address - base + size]


def disassemble(code: bytes, address: int, mode: int, count: int = 8) -> list[tuple[int, str]]:
    md = capstone.Cs(capstone.CS_ARCH_X86, mode)
    return [(i.address, f"{i.mnemonic} {i.op_str}".strip()) for i in md.disasm(code, address)][:count]


def registers(**values: int) -> dict[str, int]:
    regs = {name: 0 for name in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10",
                                  "r11", "r12", "r13", "r14", "r15", "rip", "eflags", "cs", "ss", "ds", "es",
                                  "fs", "gs", "cs_base", "ss_base", "ds_base", "es_base", "fs_base", "gs_base",
                                  "cr0", "cr2", "cr3", "cr4", "efer")}
    regs.update(values)
    return regs


def real_stops() -> list[Stop]:
    """Reset, SEC entry and DXE core entry of Debian's OVMF_CODE_4M under QEMU 7.2, the DXE stop
    with the TD HOB fixture as its tree (see the module docstring)."""
    image = bookworm("OVMF_CODE_4M.fd").read_bytes()
    hob = fixture("hob/td-shim/hob_buffer.bin").read_bytes()
    reset = Stop(0, "reset", "reset", "real", 0xFFFFFFF0,
                 registers(rip=0xFFF0, eflags=0x2, cs=0xF000, cs_base=0xFFFF0000, cr0=0x60000010),
                 module="ResetVector",
                 disassembly=disassemble(flash_bytes(image, 0xFFFFFFF0, 16), 0xFFFFFFF0, capstone.CS_MODE_16, 4))
    sec = Stop(1, "handoff", "sec", "prot32", SEC_ENTRY,
               registers(rip=SEC_ENTRY, eflags=0x2, cs=0x10, ss=0x18, ds=0x18, es=0x18, fs=0x18, gs=0x18,
                         cr0=0x40000033, rbp=0xFFFCC000, rdi=0x5042),
               module="SecMain", handoff="sec",
               disassembly=disassemble(flash_bytes(image, SEC_ENTRY, 64), SEC_ENTRY, capstone.CS_MODE_32),
               log="SecCoreStartupWithStack(0xFFFCC000, 0x820000)\n")
    space = Space(f"hob-list@0x{HOB_LIST:x}", hob, base=HOB_LIST)
    dxe = Stop(2, "handoff", "dxe-core", "long64", DXE_CORE_ENTRY,
               registers(rip=DXE_CORE_ENTRY, eflags=0x2, cs=0x38, ss=0x30, ds=0x30, es=0x30, fs=0x30, gs=0x30,
                         cr0=0x80010033, cr3=0x1F801000, cr4=0x660, efer=0xD00, rcx=HOB_LIST,
                         rbp=0xFFFCC000, rdi=0x5042),
               module="DxeCore", handoff="dxe-core", tree=decode_hob_list(space, HOB_LIST),
               log=sec.log + "DXE IPL Entry\nLoading DXE CORE at 0x0001FEA1000 EntryPoint=0x0001FEB1F57\n")
    return [reset, sec, dxe]


class FakeSession:
    """A SessionLike over prepared stops. Records each call and the thread it ran in.

    `fail` makes next_handoff raise that exception; `block_cont` makes cont() wait (bounded) for
    interrupt(), as a running guest would."""

    def __init__(self, stops: list[Stop], *, live: bool = True, fail: Exception | None = None,
                 block_cont: bool = False):
        self.stops = stops
        self._live = live
        self.position = 0
        self.fail = fail
        self.block_cont = block_cont
        self.calls: list[tuple[str, threading.Thread]] = []
        self.released = threading.Event()
        self.closed = False

    @property
    def live(self) -> bool:
        return self._live

    def _call(self, name: str) -> None:
        self.calls.append((name, threading.current_thread()))

    def current(self) -> Stop:
        self._call("current")
        return self.stops[self.position]

    def next_handoff(self, timeout: float = 60.0) -> Stop:
        self._call("next_handoff")
        if self.fail is not None:
            raise self.fail
        self.position = min(self.position + 1, len(self.stops) - 1)
        return self.stops[self.position]

    def run_to(self, phase: str, timeout: float = 120.0) -> Stop:
        self._call("run_to")
        self.position = next(i for i, s in enumerate(self.stops) if s.phase == phase)
        return self.stops[self.position]

    def step(self) -> Stop:
        self._call("step")
        return self.next_handoff()

    def cont(self, timeout: float = 60.0) -> Stop:
        self._call("cont")
        if self.block_cont:
            # Bounded: a test that never interrupts fails instead of hanging.
            assert self.released.wait(10), "cont() was never interrupted"
            # Stopped at the next instruction of the current disassembly.
            here = self.stops[self.position]
            linear = here.disassembly[1][0]
            rip = here.registers["rip"] + linear - here.linear_rip
            stop = Stop(here.index + 1, "interrupt", here.phase, here.mode, linear,
                        dict(here.registers, rip=rip), here.module, None, here.tree, here.disassembly[1:],
                        here.log)
            self.stops.append(stop)
            self.position = len(self.stops) - 1
            return stop
        return self.next_handoff()

    def add_breakpoint(self, spec: str):
        self._call("add_breakpoint")
        if not spec.startswith("0x") and "+" not in spec and spec != "BdsDxe":
            raise ValueError(f"no module named {spec!r}")
        self.breakpoints = getattr(self, "breakpoints", []) + [spec]
        return type("Bp", (), {"where": int(spec, 16) if spec.startswith("0x") else "pending"})()

    def remove_breakpoint(self, spec: str) -> None:
        self._call("remove_breakpoint")

    def console(self, line: str) -> str:
        self._call("console")
        if line == "boom":
            raise RuntimeError("E14")
        return f"answer to {line}\nsecond line"

    def interrupt(self) -> Stop:
        self._call("interrupt")
        self.released.set()
        return self.stops[self.position]

    def close(self) -> None:
        self.closed = True


async def wait_for(pilot, condition, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out waiting for the screen"
        await pilot.pause(0.005)


def shown_index(app) -> int | None:
    stop = app.live_screen.stop
    return None if stop is None else stop.index
