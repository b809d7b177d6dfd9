"""Live sessions: one Target interface over QEMU's gdbstub (DESIGN.md "Live sessions").

- target.py: the interface, Registers/StopEvent, TargetDead/TargetTimeout, the Memory adapter.
- rsp.py: the default backend, our asyncio RSP client. gdbmi.py: gdb through pygdbmi.
- qemu.py: QEMU started on demand, paused at reset. hostmem.py: guest RAM from /proc/PID/mem.

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
