"""Live sessions: one Target interface over QEMU's gdbstub, and boot-phase run control on top.

The target:
- target.py: the interface, Registers/StopEvent, TargetDead/TargetTimeout, the Memory adapter.
- rsp.py: the default backend, our asyncio RSP client; rspwire.py: its wire format and protocol.
- gdbmi.py: the other backend, gdb through pygdbmi.
- qemu.py: QEMU started on demand, paused at reset. hostmem.py: guest RAM from /proc/PID/mem.
- disasm.py: disassembly at RIP with capstone, in the CPU's current mode.

The session:
- session_api.py: what the live screen and scripts need from a session (SessionLike, Stop).
- session.py: Session, run control by boot phase over a Target.
- phases.py: the boot-phase model, handoff points computed from the image, BootState.
- handoffs.py: what is decoded at each handoff. copies.py: reaching the entry of a module loaded
  at run time by following its loader's copies. modules.py: breakpoints by module, image-load
  events, the DXE tables. runctl.py: run-control pieces the parts share.
- symbols.py: function and line at RIP from an edk2 build's .debug files.
- record.py: record a session's stops to a file and replay them without QEMU.
- script.py: `fwinspect qemu` and `fwinspect attach` from the command line.

    with QemuProcess("OVMF_CODE_4M.fd") as q, q.attach("rsp") as t:
        t.set_breakpoint(0xfffceb84); t.cont(); print(t.read_registers().mode)

The backends are imported lazily, so importing this package needs neither gdb nor pygdbmi.
"""
from __future__ import annotations

import importlib

_LAZY = {"QemuError": "qemu", "QemuProcess": "qemu", "Registers": "target", "Segment": "target",
         "StopEvent": "target", "Target": "target", "TargetDead": "target", "TargetError": "target",
         "TargetMemory": "target", "TargetRunning": "target", "TargetTimeout": "target"}


def __getattr__(name: str):
    """The package's names, imported on first use (PEP 562): the CLI imports inspector.live.* for
    its argument parser on every run, and a file decode should not pay for the live backends."""
    if name in _LAZY:
        return getattr(importlib.import_module(f"inspector.live.{_LAZY[name]}"), name)
    raise AttributeError(name)

__all__ = ["QemuError", "QemuProcess", "Registers", "Segment", "StopEvent", "Target", "TargetDead", "TargetError",
           "TargetMemory", "TargetRunning", "TargetTimeout", "attach"]


def attach(address: str | tuple[str, int], backend: str = "rsp", qemu_pid: int | None = None,
           monitor=None, fast_path: bool = True):
    """A Target on a gdbstub: "host:port", (host, port) or a unix-socket path.

    With qemu_pid (QEMU on this host) and fast_path, guest RAM is read through /proc/PID/mem when
    permitted; `monitor` (an HMP callable, e.g. QemuProcess.hmp over QMP) maps it, else qRcmd."""
    if backend == "rsp":
        from inspector.live.rsp import RspTarget
        target = RspTarget(address, qemu_pid=qemu_pid)
    elif backend == "gdb":
        from inspector.live.gdbmi import GdbTarget
        target = GdbTarget(address, qemu_pid=qemu_pid)
    else:
        raise ValueError(f"unknown backend {backend!r} (rsp or gdb)")
    if qemu_pid is not None and fast_path:
        target.use_host_memory(qemu_pid, monitor)
    return target
