"""QEMU on demand: qemu-system-x86_64 paused at the reset vector, gdbstub + QMP on local sockets.

`QemuProcess(image).start()` runs (QEMU docs/system/gdb.rst for `-gdb` and `-S`; OvmfPkg/README
for the debug console on port 0x402):

    qemu-system-x86_64 -machine q35 -accel tcg -m 256M -S -display none -nodefaults
        -gdb tcp:127.0.0.1:PORT            (or a unix socket: -chardev socket,... -gdb chardev:gdb0)
        -qmp unix:DIR/qmp.sock,server=on,wait=off
        -debugcon file:DIR/debug.log -global isa-debugcon.iobase=0x402
        [-smp N]
        -drive if=pflash,...CODE,readonly=on -drive if=pflash,...VARS-copy   (split images)
        -bios IMAGE                                                            (unified images)
        [-chardev socket,id=chrtpm,path=... -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-crb,tpmdev=tpm0]

With a TPM, QEMU's TPM chardev reaches swtpm through inspector.live.tpmrelay (unless
tpm_readback=False), so `read_pcrs()` can read the PCRs back while the guest is stopped.

and ends every process it started (QEMU, swtpm) by PID on close(), at interpreter exit, or when
starting fails. QMP is used read-only (query-status, HMP `info`/`gpa2hva`): the gdbstub owns run
control (a QMP `cont` + `stop` while gdb was attached made QEMU 7.2 send an unsolicited stop
reply on the stub socket, measured here).
"""
from __future__ import annotations

import atexit
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
SWTPM = "swtpm"
# QEMU 7.2 initialises in well under a second here; a loaded 2-core machine needs more.
START_TIMEOUT = 20.0
# Grace between SIGTERM and SIGKILL when ending a child.
KILL_GRACE = 2.0
# QMP replies are a few KiB; `info mtree -f` of a q35 guest ~20 KiB. Bound what we buffer.
MAX_QMP_REPLY = 4 << 20
QMP_TIMEOUT = 5.0


class QemuError(Exception):
    pass


def free_tcp_port() -> int:
    """A port nobody listens on now (bind to 0 and let the kernel pick). QEMU binds it right after."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vars_for(code: Path) -> Path | None:
    """The VARS template Debian ships beside a CODE image (OVMF_CODE_4M.fd → OVMF_VARS_4M.fd)."""
    if "CODE" not in code.name:
        return None
    candidate = code.with_name(code.name.replace("CODE", "VARS"))
    if candidate.is_file():
        return candidate
    # Secure Boot builds pair OVMF_CODE_4M.secboot.fd with OVMF_VARS_4M.fd.
    plain = code.with_name(code.name.replace("CODE", "VARS").replace(".secboot", ""))
    return plain if plain.is_file() else None


class Qmp:
    """A minimal synchronous QMP client over a unix socket (QMP spec: greeting, qmp_capabilities)."""

    def __init__(self, path: str, timeout: float = QMP_TIMEOUT):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self._read()                                   # {"QMP": {...}} greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict:
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_QMP_REPLY:
                raise QemuError("QMP reply too long")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise QemuError("QMP connection closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)

    def execute(self, command: str, **arguments) -> object:
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        # Events ({"event": ...}) may come first; bounded by the socket timeout per read.
        for _ in range(1000):
            reply = self._read()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise QemuError(f"QMP {command}: {reply['error'].get('desc')}")
        raise QemuError(f"QMP {command}: no reply among 1000 messages")

    def hmp(self, command: str) -> str:
        return self.execute("human-monitor-command", **{"command-line": command})

    def close(self) -> None:
        self.sock.close()


# Strong references on purpose: a QemuProcess dropped without close() must still be ended at exit.
_live: "set[QemuProcess]" = set()


@atexit.register
def _end_all() -> None:
    for q in list(_live):
        q.close()


class QemuProcess:
    """One QEMU (and its swtpm) started by us; use as a context manager or call close()."""

    def __init__(self, image: str | Path, vars: str | Path | None = None, memory: str = "256M",
                 tpm: bool = False, extra_args: list[str] | tuple[str, ...] = (), gdb: str = "tcp",
                 workdir: str | Path | None = None, qemu: str = QEMU, tpm_readback: bool = True,
                 smp: int | None = None):
        self.image = Path(image)
        self.vars = Path(vars) if vars else vars_for(self.image)
        self.memory = memory
        self.tpm = tpm
        self.tpm_readback = tpm_readback
        self.tpm_relay = None           # inspector.live.tpmrelay.TpmRelay once started
        self.extra_args = list(extra_args)
        self.smp = smp                  # vCPUs (QEMU's -smp); None: QEMU's default (1) or what extra_args say
        self.gdb_kind = gdb
        self.qemu = qemu
        self._own_dir = workdir is None
        self.dir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="fwinspect-qemu-"))
        self.qmp_path = str(self.dir / "qmp.sock")
        self.debugcon_path = self.dir / "debug.log"
        self.log_path = self.dir / "qemu.log"
        self.gdb_address: tuple[str, int] | str | None = None
        self.proc: subprocess.Popen | None = None
        self.swtpm: subprocess.Popen | None = None
        self.qmp: Qmp | None = None

    # ---- lifecycle
    def __enter__(self) -> "QemuProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def argv(self) -> list[str]:
        if self.gdb_kind == "unix":
            path = str(self.dir / "gdb.sock")
            self.gdb_address = path
            gdb = ["-chardev", f"socket,path={path},server=on,wait=off,id=gdb0", "-gdb", "chardev:gdb0"]
        else:
            port = free_tcp_port()
            self.gdb_address = ("127.0.0.1", port)
            gdb = ["-gdb", f"tcp:127.0.0.1:{port}"]
        args = [self.qemu, "-machine", "q35", "-accel", "tcg", "-m", self.memory, "-S",
                "-display", "none", "-nodefaults", "-no-user-config", *gdb,
                "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                # OVMF's DebugLib writes to I/O port 0x402 (OvmfPkg/OvmfPkg.dec, PcdDebugIoPort;
                # OvmfPkg/Library/PlatformDebugLibIoPort/DebugIoPortQemu.c).
                "-debugcon", f"file:{self.debugcon_path}", "-global", "isa-debugcon.iobase=0x402"]
        if self.smp is not None:
            args += ["-smp", str(self.smp)]
        if self.vars is not None:
            # Never write the distribution's VARS template: the guest gets a private copy.
            vars_copy = self.dir / self.vars.name
            shutil.copyfile(self.vars, vars_copy)
            args += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={self.image}",
                     "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}"]
        else:
            args += ["-bios", str(self.image)]
        if self.tpm:
            # QEMU docs/specs/tpm.rst: swtpm's control socket, or our relay in front of it.
            tpm_sock = self.dir / ("tpmrelay.sock" if self.tpm_readback else "swtpm.sock")
            args += ["-chardev", f"socket,id=chrtpm,path={tpm_sock}",
                     "-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-crb,tpmdev=tpm0"]
        return args + self.extra_args

    def start(self, timeout: float = START_TIMEOUT) -> "QemuProcess":
        if not self.image.is_file():
            raise QemuError(f"{self.image}: no such image")
        if shutil.which(self.qemu) is None:
            raise QemuError(f"`{self.qemu}` not found: install Debian's `qemu-system-x86`")
        _live.add(self)
        try:
            deadline = time.monotonic() + timeout
            if self.tpm:
                self._start_swtpm(deadline)
            argv = self.argv()
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True)
            self._wait_ready(deadline)
        except BaseException:
            self.close()
            raise
        return self

    def _start_swtpm(self, deadline: float) -> None:
        if shutil.which(SWTPM) is None:
            raise QemuError("`swtpm` not found: install Debian's `swtpm`")
        state = self.dir / "tpm"
        state.mkdir(exist_ok=True)
        sock = self.dir / "swtpm.sock"
        self.swtpm = subprocess.Popen(
            [SWTPM, "socket", "--tpm2", "--tpmstate", f"dir={state}", "--ctrl", f"type=unixio,path={sock}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        while not sock.exists():
            if self.swtpm.poll() is not None:
                raise QemuError(f"swtpm exited with {self.swtpm.returncode}")
            if time.monotonic() > deadline:
                raise QemuError("swtpm did not create its control socket in time")
            time.sleep(0.02)
        if self.tpm_readback:
            from inspector.live.tpmrelay import TpmRelay

            self.tpm_relay = TpmRelay(self.dir / "tpmrelay.sock", sock).start()   # TpmGone (a QemuError)

    def read_pcrs(self, banks=("sha1", "sha256"), pcrs=range(8)) -> dict[str, dict[int, bytes]]:
        """{bank: {PCR index: value}} read from swtpm now (TPM2_PCR_Read through the relay).
        Stop the guest first (QMP `stop` or a gdbstub stop) for values that stay put. Raises (all
        QemuErrors, from inspector.live.tpmrelay) TpmBusy while a guest TPM command is in flight,
        TpmGone once QEMU or swtpm has gone, TpmResponseError for an error or malformed answer
        (TPM_RC_INITIALIZE before the firmware's TPM2_Startup)."""
        if self.tpm_relay is None:
            raise QemuError("no TPM to read: start QemuProcess with tpm=True (and tpm_readback=True)")
        return self.tpm_relay.read_pcrs(banks, pcrs)

    def _wait_ready(self, deadline: float) -> None:
        """QMP answering means QEMU finished initialising, gdbstub included (it is set up before)."""
        while True:
            if self.proc.poll() is not None:
                raise QemuError(f"{self.qemu} exited with {self.proc.returncode}: {self.log_tail()}")
            if os.path.exists(self.qmp_path):
                try:
                    self.qmp = Qmp(self.qmp_path)
                    status = self.qmp.execute("query-status")
                    if status.get("status") in ("prelaunch", "paused"):
                        return
                except (OSError, QemuError, ValueError):
                    if self.qmp:
                        self.qmp.close()
                    self.qmp = None
            if time.monotonic() > deadline:
                raise QemuError(f"{self.qemu} not ready in time: {self.log_tail()}")
            time.sleep(0.02)

    def log_tail(self, n: int = 400) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:].strip()
        except OSError:
            return ""

    def debug_log(self, max_bytes: int = 1 << 20) -> str:
        """The debugcon text's last `max_bytes` (a runaway guest's log is never read whole)."""
        try:
            with open(self.debugcon_path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                f.seek(max(0, size - max_bytes))
                return f.read(max_bytes).decode("utf-8", errors="replace")
        except OSError:
            return ""

    def read_debug_log(self, offset: int, size: int) -> bytes:
        """At most `size` bytes of the debugcon file from `offset` (b"" before QEMU created it)."""
        try:
            with open(self.debugcon_path, "rb") as f:
                f.seek(offset)
                return f.read(size)
        except OSError:
            return b""

    def hmp(self, command: str) -> str:
        """HMP through QMP: works while the guest runs (the gdbstub path needs it stopped)."""
        if self.qmp is None:
            raise QemuError("QMP not connected")
        return self.qmp.hmp(command)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # ---- attaching
    def attach(self, backend: str = "rsp", fast_path: bool = True):
        """A Target on this QEMU's gdbstub: backend "rsp" (default) or "gdb"."""
        from inspector.live import attach
        return attach(self.gdb_address, backend, self.pid, self.hmp, fast_path)

    # ---- ending
    @staticmethod
    def _end(proc: subprocess.Popen | None) -> None:
        if proc is None or proc.poll() is not None:
            return
        try:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(KILL_GRACE)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(KILL_GRACE)
        except ProcessLookupError:
            pass        # already gone between poll() and kill()

    def kill(self) -> None:
        """SIGKILL QEMU now (tests use it to check that a dead target is reported)."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(KILL_GRACE)

    def close(self) -> None:
        if self.qmp:
            self.qmp.close()
            self.qmp = None
        self._end(self.proc)
        if self.tpm_relay is not None:
            self.tpm_relay.close()      # joins its threads: none outlives this QemuProcess
        self._end(self.swtpm)
        _live.discard(self)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
