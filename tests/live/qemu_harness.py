"""A small, bounded harness around a real qemu-system-x86_64 for live tests.

    with QemuGuest(image, memory="256M") as g:
        g.wait_for_shell()
        g.stop()
        print(g.hmp("info tlb"))
        g.dump_elf(path)
        g.pmemsave(path, 0, size)

QEMU runs with -machine q35 under TCG, no display, no default devices, QMP on a unix socket
(synchronous client below, every read under a timeout), optional debugcon to a file. The process
is killed by its PID when the `with` block ends, whatever happened inside it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

QEMU = "qemu-system-x86_64"
# Under TCG on 2 shared cores Debian's OVMF reaches the UEFI shell in ~9-12 s (a breakpoint on
# the DxeCore entry hit at 2.3 s, measured here with QEMU 7.2); the shell is "up" once BDS has run
# out of boot options.
SHELL_DELAY = 12.0
QMP_TIMEOUT = 30.0       # one QMP command; dump-guest-memory takes ~1 s (measured here:
                         # 1.06 s for a 512 MiB guest, QEMU 7.2)
CONNECT_TIMEOUT = 10.0
MAX_REPLY = 64 << 20     # a QMP reply larger than this is not QEMU talking


class QmpError(Exception):
    pass


class Qmp:
    """Minimal synchronous QMP client: one command at a time, events skipped, timeouts everywhere."""

    def __init__(self, path: str, timeout: float = CONNECT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise QmpError(f"QMP socket {path} did not come up in {timeout} s") from None
                time.sleep(0.05)
        self.buf = b""
        greeting = self._read(timeout)
        if "QMP" not in greeting:
            raise QmpError(f"unexpected QMP greeting {greeting!r}")
        self.command("qmp_capabilities")

    def _read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise QmpError(f"no QMP reply within {timeout} s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise QmpError(f"no QMP reply within {timeout} s") from None
            if not chunk:
                raise QmpError("QMP connection closed (QEMU died?)")
            self.buf += chunk
            if len(self.buf) > MAX_REPLY:
                raise QmpError("QMP reply too large")
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def command(self, name: str, timeout: float = QMP_TIMEOUT, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(max(0.01, deadline - time.monotonic()))
            if "event" in reply:
                continue
            if "error" in reply:
                raise QmpError(f"{name}: {reply['error']}")
            return reply.get("return")

    def close(self) -> None:
        self.sock.close()


class QemuGuest:
    def __init__(self, image: str | Path, memory: str = "256M", *, pflash: bool = False,
                 debugcon: str | Path | None = None, extra: list[str] | None = None, cpu: str | None = None,
                 tpm: bool = False, paused: bool = False):
        self.image = Path(image)
        self.memory = memory
        self.pflash = pflash
        self.debugcon = debugcon
        self.extra = extra or []
        self.cpu = cpu
        self.tpm = tpm
        self.paused = paused   # -S: stopped before the first instruction (the reset vector)
        self.proc: subprocess.Popen | None = None
        self.swtpm: subprocess.Popen | None = None
        self.qmp: Qmp | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="fwinspect-qemu-"))
        self.started = 0.0

    # -- lifecycle --------------------------------------------------------------------------------
    def command_line(self) -> list[str]:
        sock = self.dir / "qmp.sock"
        cmd = [QEMU, "-machine", "q35", "-accel", "tcg", "-m", self.memory, "-display", "none",
               "-nodefaults", "-serial", "none", "-qmp", f"unix:{sock},server=on,wait=off"]
        if self.cpu:
            cmd += ["-cpu", self.cpu]
        if self.paused:
            cmd.append("-S")
        if self.pflash:
            # a private copy: QEMU would otherwise write variables into the system's file
            copy = self.dir / self.image.name
            shutil.copyfile(self.image, copy)
            cmd += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={copy}"]
        else:
            cmd += ["-bios", str(self.image)]
        if self.tpm:
            # QEMU docs/specs/tpm.rst: swtpm as a TPM 2.0 emulator behind a CRB interface
            cmd += ["-chardev", f"socket,id=chrtpm,path={self.dir / 'swtpm.sock'}",
                    "-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-crb,tpmdev=tpm0"]
        if self.debugcon:
            cmd += ["-debugcon", f"file:{self.debugcon}", "-global", "isa-debugcon.iobase=0x402"]
        return cmd + self.extra

    def start(self) -> "QemuGuest":
        if self.tpm:
            self._start_swtpm()
        self.proc = subprocess.Popen(self.command_line(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=open(self.dir / "stderr", "wb"))
        self.started = time.monotonic()
        try:
            self.qmp = Qmp(str(self.dir / "qmp.sock"))
        except Exception:
            self.kill()
            raise
        return self

    def _start_swtpm(self) -> None:
        state = self.dir / "tpmstate"
        state.mkdir()
        sock = self.dir / "swtpm.sock"
        self.swtpm = subprocess.Popen(["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
                                       "--ctrl", f"type=unixio,path={sock}"],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=open(self.dir / "swtpm.stderr", "wb"))
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while not sock.exists():
            if time.monotonic() > deadline or self.swtpm.poll() is not None:
                self.kill()
                raise QmpError("swtpm did not create its socket")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None
        for proc in (self.proc, self.swtpm):
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.proc = self.swtpm = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "QemuGuest":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()

    # -- waiting ----------------------------------------------------------------------------------
    def wait_for_shell(self, delay: float = SHELL_DELAY) -> None:
        """Let the guest run `delay` seconds from start, checking that QEMU stays alive."""
        while time.monotonic() - self.started < delay:
            if self.proc is None or self.proc.poll() is not None:
                raise QmpError(f"QEMU exited: {(self.dir / 'stderr').read_text(errors='replace')}")
            time.sleep(0.2)

    # -- commands ---------------------------------------------------------------------------------
    def cmd(self, name: str, timeout: float = QMP_TIMEOUT, **args):
        if self.qmp is None:
            raise QmpError("QEMU is not running")
        return self.qmp.command(name, timeout, **args)

    def stop(self) -> None:
        self.cmd("stop")

    def cont(self) -> None:
        self.cmd("cont")

    def status(self) -> str:
        return self.cmd("query-status")["status"]

    def hmp(self, line: str) -> str:
        return self.cmd("human-monitor-command", **{"command-line": line})

    def dump_elf(self, path: str | Path, paging: bool = False) -> None:
        self.cmd("dump-guest-memory", paging=paging, protocol=f"file:{path}")

    def pmemsave(self, path: str | Path, address: int, size: int) -> None:
        self.cmd("pmemsave", val=address, size=size, filename=str(path))
