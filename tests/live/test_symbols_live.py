"""--symbols on a real boot: QEMU 7.2 (TCG) booting our DEBUG OvmfPkgX64 (../shared/firmware/ovmf-debug
/OVMF.fd) with the .debug files of that very build (DEBUG.tar.xz, unpacked by realdata.debug_symbols).

Expected values come from binutils on the .debug files, never from our output:
- at each handoff (sec, pei-core, dxe-ipl, dxe-core, bds) RIP is the module's entry, so the ELF
  address is the ELF's e_entry (readelf -h), and function and file:line equal `addr2line -f` there:
  SecMain's `_ModuleEntryPoint` (nasm, no line-table row: no line), the others' with the C
  entry-point library's line;
- `b CoreDispatcher` (set at reset): pending until DxeCore is known loaded, then hit with RIP = DxeCore's ImageBase (from the
  stop) + nm's CoreDispatcher - the ELF .text sh_addr (objdump -h) + the PE .text VirtualAddress (read
  with struct from the image); the stop names CoreDispatcher with addr2line's line.
One QEMU for the module, ended by PID (QemuProcess.close); every wait bounded.
"""
from __future__ import annotations

import struct
import subprocess

import pytest

from inspector.image import load_image
from inspector.live.qemu import QemuProcess
from inspector.live.session import Session
from inspector.live.symbols import SymbolIndex
from tests.realdata import debug_symbols, firmware, tool

TIMEOUT = 120.0         # one handoff; the DEBUG build writes its log to port 0x402, slower under TCG
HANDOFFS = ("sec", "pei-core", "dxe-ipl", "dxe-core", "bds")
MODULE = {"sec": "SecMain", "pei-core": "PeiCore", "dxe-ipl": "DxeIpl", "dxe-core": "DxeCore", "bds": "BdsDxe"}


def run(*cmd) -> str:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=True, timeout=120).stdout


def e_entry(path) -> int:
    line = next(ln for ln in run("readelf", "-h", str(path)).splitlines() if "Entry point address" in ln)
    return int(line.split()[-1], 16)


def addr2line(path, address: int) -> tuple[str, str | None, int | None]:
    func, where = run("addr2line", "-f", "-e", str(path), f"0x{address:x}").splitlines()[:2]
    file, _, line = where.rpartition(":")
    line = line.split()[0]
    return (func, None, None) if line in ("?", "0") else (func, file, int(line))


def nm(path, name: str) -> int:
    return next(int(ln.split()[0], 16) for ln in run("nm", str(path)).splitlines() if ln.split()[-1] == name)


def elf_text(path) -> int:
    return next(int(ln.split()[3], 16) for ln in run("objdump", "-h", str(path)).splitlines()
                if ln.split()[1:2] == [".text"])


def pe_text_va(img, ui: str) -> int:
    ffs = next(f for f in img.root.find("ffs") if f.get("UI") == ui)
    raw = bytes(next(c for c in ffs.walk() if c.kind == "pe").bytes)
    lfanew = struct.unpack_from("<I", raw, 0x3C)[0]
    nsec, opt = struct.unpack_from("<H", raw, lfanew + 6)[0], struct.unpack_from("<H", raw, lfanew + 20)[0]
    for i in range(nsec):
        name, _vs, va = struct.unpack_from("<8sII", raw, lfanew + 24 + opt + 40 * i)
        if name.rstrip(b"\0") == b".text":
            return va
    raise AssertionError("no .text")


def symbol_node(stop):
    assert stop.tree is not None, stop.problems
    return next(c for c in stop.tree.children if c.kind == "symbol")


class Boot:
    def __init__(self):
        tool("qemu-system-x86_64", "qemu-system-x86")
        tool("addr2line", "binutils")
        self.symdir = debug_symbols()
        path = firmware("ovmf-debug/OVMF.fd")
        self.image = load_image(path)
        self.qemu = QemuProcess(path, memory="256M").start()
        self.session = None
        try:
            self.session = Session(self.qemu.attach("rsp"), self.image, self.qemu,
                                   symbols=SymbolIndex(self.symdir))
            if getattr(self.session.modules, "symbols", None) is None:
                # Session does not hand its SymbolIndex to the ModuleTracker yet (inspector/live/session.py).
                self.session.modules.symbols = self.session.symbols
            self._drive()
        except BaseException:
            self.close()
            raise

    def _drive(self):
        s = self.session
        self.stops, self.failure = {}, None
        s.current()
        self.bp = s.add_breakpoint("CoreDispatcher")
        self.bp_pending = self.bp.pending
        for phase in HANDOFFS:
            stop = s.next_handoff(TIMEOUT)
            if stop.handoff != phase:
                self.failure = stop
                return
            self.stops[phase] = stop
            if phase == "dxe-core":
                self.core_base = symbol_node(stop).get("ImageBase")
        # Still pending (image loads are watched only while continuing): cont() arms it from DxeCore's
        # debug image info table and stops at the next call, BDS's gDS->Dispatch() (BmConnectAll...).
        self.bp_stop = s.cont(TIMEOUT)

    def close(self):
        if self.session is not None:
            self.session.close()
        else:
            self.qemu.close()


@pytest.fixture(scope="module")
def boot():
    b = Boot()
    yield b
    b.close()


@pytest.mark.live
@pytest.mark.parametrize("phase", HANDOFFS)
def test_handoff_names_entry_function_and_line_as_addr2line(boot, phase):
    if phase not in boot.stops:
        pytest.fail(f"{phase} not reached: {boot.failure and (boot.failure.handoff, boot.failure.problems)}")
    stop = boot.stops[phase]
    module = MODULE[phase]
    debug = boot.symdir / f"{module}.debug"
    node = symbol_node(stop)
    assert not node.problems, [p.message for p in node.problems]
    entry = e_entry(debug)
    assert node.get("ElfAddress") == entry
    assert node.get("ImageBase") + pe_text_va(boot.image, module) + entry - elf_text(debug) == stop.linear_rip
    func, file, line = addr2line(debug, entry)
    assert (node.get("Module"), node.get("Function"), node.get("File"), node.get("Line")) == (module, func, file, line)
    assert func == "_ModuleEntryPoint"
    if phase == "sec":
        assert line is None and stop.module == "SecMain!_ModuleEntryPoint"
    else:
        assert line is not None and "EntryPoint" in file


@pytest.mark.live
def test_breakpoint_by_function_name_hits_core_dispatcher(boot):
    assert boot.bp_pending
    stop = getattr(boot, "bp_stop", None)
    assert stop is not None, boot.failure and boot.failure.problems
    debug = boot.symdir / "DxeCore.debug"
    elf = nm(debug, "CoreDispatcher")
    assert stop.reason == "breakpoint", stop.problems
    assert stop.linear_rip == boot.core_base + elf - elf_text(debug) + pe_text_va(boot.image, "DxeCore")
    node = symbol_node(stop)
    func, file, line = addr2line(debug, elf)
    assert (node.get("Function"), node.get("File"), node.get("Line")) == ("CoreDispatcher", file, line)
    assert func == "CoreDispatcher"
