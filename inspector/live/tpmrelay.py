"""A relay between QEMU's tpm-emulator backend and swtpm, so the PCRs can be read back during a boot.

QEMU's `-tpmdev emulator` talks to swtpm over its control channel (a unix socket, the chardev) and
hands swtpm, with CMD_SET_DATAFD, one end of a socketpair on which the TPM commands then travel
(QEMU backends/tpm/tpm_emulator.c, tpm_emulator_prepare_data_fd). Nobody else can reach that swtpm.
So QEMU connects to us instead:

    QEMU --ctrl--> relay --ctrl--> swtpm        every control message forwarded as it came, both ways
    QEMU --data--> relay --data--> swtpm        our own socketpair: QEMU's fd stays with us

and between two guest commands `read_pcrs()` sends its own TPM2_PCR_Read on our data channel. The
TPM answers each command before the next one is sent (QEMU tpm_emulator_unix_tx_bufs writes one
command and reads its whole response), so one lock around "command, then its response" keeps the
guest's commands and ours apart.

Control channel (swtpm include/swtpm/tpm_ioctl.h, "Commands used by the non-CUSE TPMs"): a
big-endian u32 command code followed by the request part of the command's structure; the answer is
the response part. Message lengths are not on the wire: swtpm takes one read() as one message
(src/swtpm/ctrlchannel.c, ctrlchannel_process_fd), so every chunk we receive is forwarded as one
write, keeping QEMU's message boundaries. CMD_SET_DATAFD (0x10) carries no body; its fd travels as
SCM_RIGHTS ancillary data with the command word, and swtpm answers with a u32 ptm_res.

TPM commands and responses (TPM 2.0 Library Part 1 §18, Part 3 §22.4 TPM2_PCR_Read): a 10-byte
header (tag u16, size u32 counting the header, code u32), big-endian, then the parameters.
"""
from __future__ import annotations

import os
import select
import socket
import stat
import struct
import threading
import time
from dataclasses import dataclass, field

from decoders.eventlog.structs import ALGORITHMS
from inspector.live.qemu import QemuError

# swtpm include/swtpm/tpm_ioctl.h: control command codes.
CMD_SET_DATAFD = 0x10
# TPM 2.0 Library Part 2 §6.9 TPM_ST_NO_SESSIONS; §6.5.2 TPM_CC_PCR_Read.
TPM_ST_NO_SESSIONS = 0x8001
TPM_CC_PCR_READ = 0x0000017E
TPM_HEADER_SIZE = 10
# PC Client Platform TPM Profile: 24 PCRs, so PCR_SELECT_MIN = 3 bytes of bitmap.
NUM_PCRS = 24
PCR_SELECT_MIN = NUM_PCRS // 8
# Part 2 §10.9.2 TPML_DIGEST: at most 8 digests per list (so a PCR_Read returns at most 8 PCRs).
MAX_DIGESTS = 8
# Part 2 §10.9.7 TPML_PCR_SELECTION count is at most HASH_COUNT (the TPM's hash algorithms); no
# TPM implements more than a handful. A larger count is not a TPM talking.
MAX_SELECTIONS = 16
# A sizeofSelect beyond 32 bytes (256 PCRs) is no PC Client TPM.
MAX_SIZEOF_SELECT = 32
# swtpm buffers at most 4 KiB by default (CMD_SET_BUFFERSIZE maxsize); QEMU's CRB buffer is smaller.
# A declared response size past this is a broken channel, not a TPM response.
MAX_RESPONSE = 1 << 20
# Control messages are a few bytes; the largest, a state blob chunk, stays under 4 KiB (tpm_ioctl.h
# PTM_STATE_BLOB_SIZE), its bulk follows as plain bytes that are forwarded chunk by chunk.
CTRL_CHUNK = 65536

# Waits. The relay threads poll their sockets at POLL so close() ends them within that time.
POLL = 0.2
ACCEPT_TIMEOUT = 30.0      # QEMU connects during its initialisation (START_TIMEOUT in qemu.py is 20 s)
# A guest command may run for seconds in swtpm (RSA key generation for CreatePrimary under TCG on a
# loaded machine); past this the TPM counts as hung and QEMU's data channel is closed, which QEMU
# answers with a fatal-error response to the guest (tpm_util_write_fatal_error_response).
GUEST_COMMAND_TIMEOUT = 300.0
SEND_TIMEOUT = 10.0        # a peer that stops reading a few bytes is gone
READ_TIMEOUT = 5.0         # our PCR_Read: swtpm answers in well under a millisecond
BUSY_TIMEOUT = 2.0         # how long read_pcrs waits for a guest command in flight to finish

# TPM 2.0 Library Part 2 §6.6 TPM_RC: the codes a PCR_Read can meet on a healthy TPM.
RC_NAMES = {
    0x100: "TPM_RC_INITIALIZE: TPM2_Startup has not run yet (the firmware starts the TPM early in PEI)",
    0x101: "TPM_RC_FAILURE: the TPM is in failure mode",
    0x922: "TPM_RC_RETRY: the TPM asks to retry",
}

BANK_ALG = {name: alg for alg, (name, _size) in ALGORITHMS.items()}
ALG_SIZE = {alg: size for alg, (_name, size) in ALGORITHMS.items()}


class TpmRelayError(QemuError):
    """The PCRs cannot be read: the TPM is gone, busy, or answered something that is not PCR_Read.
    A QemuError, so whoever reports a QemuProcess's errors reports these too."""


class TpmBusy(TpmRelayError):
    """A guest TPM command is in flight (the guest is running and using its TPM)."""


class TpmGone(TpmRelayError):
    """QEMU or swtpm closed its channel, or the relay was closed."""


class TpmResponseError(TpmRelayError):
    """The TPM's answer to our PCR_Read is malformed, or an error response."""


# ---- TPM2_PCR_Read marshalling (TPM 2.0 Library Part 3 §22.4, Part 2 §10.6.2 / §10.9)

def pcr_select(pcrs) -> bytes:
    """TPMS_PCR_SELECTION.pcrSelect: PCR n is bit (n % 8) of byte n // 8 (Part 2 §10.6.1)."""
    bitmap = bytearray(PCR_SELECT_MIN)
    for n in pcrs:
        if not 0 <= n < NUM_PCRS:
            raise ValueError(f"PCR index {n} is not 0-{NUM_PCRS - 1}")
        bitmap[n // 8] |= 1 << (n % 8)
    return bytes(bitmap)


def pcr_read_command(selection: dict[int, list[int]]) -> bytes:
    """A TPM2_PCR_Read command for {hash alg id: [PCR indices]} (Part 3 §22.4.2, Table 110)."""
    body = struct.pack(">I", len(selection))                          # TPML_PCR_SELECTION.count
    for alg, pcrs in selection.items():
        body += struct.pack(">HB", alg, PCR_SELECT_MIN) + pcr_select(pcrs)   # hash, sizeofSelect, pcrSelect
    return struct.pack(">HII", TPM_ST_NO_SESSIONS, TPM_HEADER_SIZE + len(body), TPM_CC_PCR_READ) + body


@dataclass
class PcrReadResult:
    update_counter: int
    # {hash alg id: {PCR index: digest}}, in the order of pcrSelectionOut
    values: dict[int, dict[int, bytes]] = field(default_factory=dict)


def _take(data: bytes, pos: int, fmt: str, what: str) -> tuple[tuple, int]:
    size = struct.calcsize(fmt)
    if pos + size > len(data):
        raise TpmResponseError(f"PCR_Read response truncated at offset {pos}: {what} needs {size} bytes, "
                               f"{len(data) - pos} left")
    return struct.unpack_from(fmt, data, pos), pos + size


def parse_pcr_read_response(data: bytes, requested: dict[int, list[int]]) -> PcrReadResult:
    """Decode a TPM2_PCR_Read response (Part 3 §22.4.2, Table 111): header, pcrUpdateCounter,
    pcrSelectionOut (TPML_PCR_SELECTION), pcrValues (TPML_DIGEST, the digests in the order of the
    selection: bank by bank, PCR by PCR ascending, Part 3 §22.4.1). Only PCRs we asked for may come back."""
    (tag, size, code), pos = _take(data, 0, ">HII", "the response header")
    if tag != TPM_ST_NO_SESSIONS:
        raise TpmResponseError(f"PCR_Read response tag 0x{tag:04x}, expected TPM_ST_NO_SESSIONS 0x8001")
    if size != len(data):
        raise TpmResponseError(f"PCR_Read responseSize {size} but {len(data)} bytes were received")
    if code != 0:
        raise TpmResponseError(f"PCR_Read failed: TPM response code 0x{code:08x}"
                               + (f" ({RC_NAMES[code]})" if code in RC_NAMES else ""))
    (counter,), pos = _take(data, pos, ">I", "pcrUpdateCounter")
    (count,), pos = _take(data, pos, ">I", "pcrSelectionOut.count")
    if count > MAX_SELECTIONS:
        raise TpmResponseError(f"pcrSelectionOut.count {count} at offset {pos - 4} exceeds {MAX_SELECTIONS}")
    order: list[tuple[int, int]] = []
    for i in range(count):
        (alg, sizeof_select), pos = _take(data, pos, ">HB", f"pcrSelections[{i}]")
        if sizeof_select > MAX_SIZEOF_SELECT:
            raise TpmResponseError(f"pcrSelections[{i}].sizeofSelect {sizeof_select} exceeds {MAX_SIZEOF_SELECT}")
        if pos + sizeof_select > len(data):
            raise TpmResponseError(f"PCR_Read response truncated in pcrSelections[{i}].pcrSelect at offset {pos}")
        bitmap = data[pos:pos + sizeof_select]
        pos += sizeof_select
        pcrs = [8 * b + bit for b, byte in enumerate(bitmap) for bit in range(8) if byte >> bit & 1]
        if not pcrs:
            continue
        if alg not in requested or not set(pcrs) <= set(requested[alg]):
            raise TpmResponseError(f"pcrSelections[{i}]: alg 0x{alg:04x} PCRs {pcrs} were not requested")
        if any(a == alg for a, _ in order):
            raise TpmResponseError(f"pcrSelections[{i}]: alg 0x{alg:04x} selected twice")
        order += [(alg, n) for n in pcrs]
    (ndigests,), pos = _take(data, pos, ">I", "pcrValues.count")
    if ndigests > MAX_DIGESTS:
        raise TpmResponseError(f"pcrValues.count {ndigests} at offset {pos - 4} exceeds {MAX_DIGESTS}")
    if ndigests != len(order):
        raise TpmResponseError(f"pcrValues.count {ndigests} but pcrSelectionOut selects {len(order)} PCRs")
    result = PcrReadResult(counter)
    for alg, n in order:
        (dsize,), pos = _take(data, pos, ">H", f"the digest size of PCR{n}")
        if dsize != ALG_SIZE.get(alg):
            raise TpmResponseError(f"PCR{n} digest of alg 0x{alg:04x} is {dsize} bytes, expected {ALG_SIZE.get(alg)}")
        if pos + dsize > len(data):
            raise TpmResponseError(f"PCR_Read response truncated in the digest of PCR{n} at offset {pos}")
        result.values.setdefault(alg, {})[n] = bytes(data[pos:pos + dsize])
        pos += dsize
    if pos != len(data):
        raise TpmResponseError(f"PCR_Read response has {len(data) - pos} bytes after pcrValues")
    return result


def _selection(banks, pcrs) -> dict[int, list[int]]:
    out = {}
    for bank in banks:
        if bank not in BANK_ALG:
            raise ValueError(f"unknown PCR bank {bank!r} (known: {', '.join(BANK_ALG)})")
        out[BANK_ALG[bank]] = sorted(set(pcrs))
    pcr_select(pcrs)            # raises on an index outside 0-23
    return out


def read_pcrs_with(transact, banks=("sha1", "sha256"), pcrs=range(8)) -> dict[str, dict[int, bytes]]:
    """PCR values through `transact(command) -> response`, as many PCR_Reads as the 8-digest limit
    needs: each asks for what is still missing, the answer's pcrSelectionOut says what came back."""
    remaining = _selection(banks, pcrs)
    names = {BANK_ALG[b]: b for b in banks}
    out: dict[str, dict[int, bytes]] = {b: {} for b in banks}
    counter = None
    # Each round returns at least one digest or stops: bounded by the number of PCRs asked for.
    for _ in range(sum(len(v) for v in remaining.values()) + 1):
        remaining = {alg: v for alg, v in remaining.items() if v}
        if not remaining:
            return out
        result = parse_pcr_read_response(transact(pcr_read_command(remaining)), remaining)
        if counter is not None and result.update_counter != counter:
            raise TpmRelayError("the PCRs changed between two PCR_Reads (pcrUpdateCounter "
                                f"{counter} then {result.update_counter})")
        counter = result.update_counter
        if not result.values:
            missing = ", ".join(f"{names[alg]} PCR{v}" for alg, v in remaining.items())
            raise TpmResponseError(f"the TPM returned none of {missing}: bank not allocated?")
        for alg, got in result.values.items():
            out[names[alg]].update(got)
            remaining[alg] = [n for n in remaining[alg] if n not in got]
    raise TpmResponseError("PCR_Read made no progress")


# ---- the relay

def _recv_exact(sock: socket.socket, size: int, deadline: float, what: str) -> bytes:
    buf = b""
    while len(buf) < size:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{what}: {len(buf)} of {size} bytes after the timeout")
        ready, _, _ = select.select([sock], [], [], min(left, POLL))
        if not ready:
            continue
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError(f"{what}: channel closed after {len(buf)} of {size} bytes")
        buf += chunk
    return buf


class TpmRelay:
    """Listens on `listen_path` for QEMU's control connection and relays it to swtpm's control
    socket `swtpm_path`. Use start(), read_pcrs(), close(); close() ends both threads."""

    def __init__(self, listen_path: str | os.PathLike, swtpm_path: str | os.PathLike):
        self.listen_path = str(listen_path)
        self.swtpm_path = str(swtpm_path)
        self.error: str | None = None          # why the relay stopped, once it has
        self._stop = threading.Event()
        self._data_ready = threading.Event()
        self._lock = threading.Lock()          # held for one command + its whole response
        self._listener: socket.socket | None = None
        self._qemu_ctrl: socket.socket | None = None
        self._tpm_ctrl: socket.socket | None = None
        self._qemu_data: socket.socket | None = None
        self._tpm_data: socket.socket | None = None
        self._retired: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._bound = False                    # listen_path is our socket (close() removes it)
        self.commands = 0                      # guest TPM commands relayed

    # -- lifecycle
    def start(self) -> "TpmRelay":
        try:
            self._tpm_ctrl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._tpm_ctrl.settimeout(READ_TIMEOUT)
            self._tpm_ctrl.connect(self.swtpm_path)
            self._tpm_ctrl.settimeout(SEND_TIMEOUT)
            if os.path.exists(self.listen_path) and stat.S_ISSOCK(os.stat(self.listen_path).st_mode):
                os.unlink(self.listen_path)         # a stale socket of an earlier run in the same dir
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listener.bind(self.listen_path)
            self._bound = True
            self._listener.listen(1)
        except OSError as e:
            self.close()
            raise TpmGone(f"cannot set up the TPM relay ({self.swtpm_path} -> {self.listen_path}): {e}") from None
        for target, name in ((self._control_loop, "tpmrelay-ctrl"), (self._data_loop, "tpmrelay-data")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def close(self) -> None:
        """Stop both threads (each notices within POLL seconds) and close every socket."""
        self._stop.set()
        self._data_ready.set()
        self._shutdown_all()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(POLL * 10)
        for s in (self._listener, self._qemu_ctrl, self._tpm_ctrl, self._qemu_data, self._tpm_data, *self._retired):
            if s is not None:
                s.close()
        self._listener = self._qemu_ctrl = self._tpm_ctrl = self._qemu_data = self._tpm_data = None
        self._retired = []
        if self.error is None:
            self.error = "the TPM relay was closed"
        if self._bound:
            self._bound = False
            try:
                os.unlink(self.listen_path)
            except OSError:
                pass

    def alive(self) -> bool:
        return not self._stop.is_set()

    def _fail(self, reason: str) -> None:
        """A channel died: remember why and shut every socket, so QEMU sees its TPM go away as it
        would without the relay (its data read fails) and nobody waits on a dead peer."""
        if self.error is None:
            self.error = reason
        self._stop.set()
        self._data_ready.set()
        self._shutdown_all()

    def _shutdown_all(self) -> None:
        # shutdown(), not close(): another thread may be in select() on the socket.
        for s in (self._qemu_ctrl, self._tpm_ctrl, self._qemu_data, self._tpm_data):
            if s is not None:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    # -- control channel
    def _control_loop(self) -> None:
        try:
            deadline = time.monotonic() + ACCEPT_TIMEOUT
            while not self._stop.is_set():
                ready, _, _ = select.select([self._listener], [], [], POLL)
                if ready:
                    self._qemu_ctrl, _ = self._listener.accept()
                    self._qemu_ctrl.settimeout(SEND_TIMEOUT)
                    break
                if time.monotonic() > deadline:
                    self._fail(f"QEMU did not connect to the TPM relay within {ACCEPT_TIMEOUT:.0f} s")
                    return
            while not self._stop.is_set():
                ready, _, _ = select.select([self._qemu_ctrl, self._tpm_ctrl], [], [], POLL)
                if self._qemu_ctrl in ready:
                    data, fds, _flags, _addr = socket.recv_fds(self._qemu_ctrl, CTRL_CHUNK, 4)
                    if not data:
                        for fd in fds:
                            os.close(fd)
                        self._fail("QEMU closed the TPM control channel (QEMU exited?)")
                        return
                    self._from_qemu(data, fds)
                if self._tpm_ctrl in ready:
                    data = self._tpm_ctrl.recv(CTRL_CHUNK)
                    if not data:
                        self._fail("swtpm closed its control channel (swtpm exited?)")
                        return
                    self._qemu_ctrl.sendall(data)
        except OSError as e:
            if not self._stop.is_set():
                self._fail(f"TPM control channel: {e}")
        except Exception as e:      # a bug here must end the relay with a reason, not a thread traceback
            self._fail(f"TPM relay control thread: {type(e).__name__}: {e}")

    def _from_qemu(self, data: bytes, fds: list[int]) -> None:
        if not fds:
            self._tpm_ctrl.sendall(data)
            return
        if data != struct.pack(">I", CMD_SET_DATAFD) or len(fds) != 1:
            # Only CMD_SET_DATAFD carries a descriptor (tpm_emulator_prepare_data_fd); pass the
            # message on without descriptors rather than hand swtpm an fd we do not relay.
            for fd in fds:
                os.close(fd)
            self._tpm_ctrl.sendall(data)
            return
        qemu_data = socket.socket(fileno=fds[0])
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        for sock in (qemu_data, ours):
            sock.settimeout(SEND_TIMEOUT)       # bounds sendall; every recv follows a select
        if not self._acquire():                 # closing meanwhile
            for sock in (qemu_data, ours, theirs):
                sock.close()
            return
        try:
            # A second CMD_SET_DATAFD replaces the data channel in swtpm; so it does here.
            self._retired += [s for s in (self._qemu_data, self._tpm_data) if s is not None]
            self._qemu_data, self._tpm_data = qemu_data, ours
        finally:
            self._lock.release()
        try:
            socket.send_fds(self._tpm_ctrl, [data], [theirs.fileno()])
        finally:
            theirs.close()          # swtpm holds its own copy now
        self._data_ready.set()

    # -- data channel
    def _data_loop(self) -> None:
        try:
            while not self._stop.is_set():
                if self._qemu_data is None:
                    self._data_ready.wait(POLL)
                    continue
                qemu = self._qemu_data
                ready, _, _ = select.select([qemu], [], [], POLL)
                if not ready or self._stop.is_set():
                    continue
                if not self._acquire():
                    return
                try:
                    if qemu is self._qemu_data:
                        self._relay_one(qemu, self._tpm_data)
                finally:
                    self._lock.release()
        except (OSError, ConnectionError, TimeoutError) as e:
            if not self._stop.is_set():
                self._fail(f"TPM data channel: {e}")
        except Exception as e:      # a bug here must end the relay with a reason, not a thread traceback
            self._fail(f"TPM relay data thread: {type(e).__name__}: {e}")

    def _acquire(self) -> bool:
        while not self._stop.is_set():
            if self._lock.acquire(timeout=POLL):
                return True
        return False

    def _relay_one(self, qemu: socket.socket, tpm: socket.socket) -> None:
        """One guest command: forward QEMU's bytes as they come until swtpm has answered, then
        forward the whole response (its size from its header). The command is not parsed: QEMU
        sends what the guest put in the CRB buffer, and swtpm judges it."""
        first = qemu.recv(CTRL_CHUNK)
        if not first:
            self._fail("QEMU closed the TPM data channel (QEMU exited?)")
            return
        tpm.sendall(first)
        self.commands += 1
        deadline = time.monotonic() + GUEST_COMMAND_TIMEOUT
        response = b""
        total = None
        while total is None or len(response) < total:
            if self._stop.is_set():
                return
            if time.monotonic() > deadline:
                self._fail(f"swtpm did not answer a guest TPM command within {GUEST_COMMAND_TIMEOUT:.0f} s")
                return
            ready, _, _ = select.select([qemu, tpm], [], [], POLL)
            if qemu in ready:
                more = qemu.recv(CTRL_CHUNK)
                if not more:
                    self._fail("QEMU closed the TPM data channel during a command (QEMU exited?)")
                    return
                tpm.sendall(more)
            if tpm in ready:
                want = (total if total is not None else TPM_HEADER_SIZE) - len(response)
                chunk = tpm.recv(max(want, 1))
                if not chunk:
                    self._fail("swtpm closed the TPM data channel (swtpm exited?)")
                    return
                response += chunk
                qemu.sendall(chunk)
                if total is None and len(response) >= TPM_HEADER_SIZE:
                    declared = struct.unpack_from(">I", response, 2)[0]
                    if declared > MAX_RESPONSE:
                        self._fail(f"swtpm declared a {declared}-byte response: not a TPM response")
                        return
                    total = max(declared, TPM_HEADER_SIZE)

    # -- our own commands
    def transact(self, command: bytes, busy_timeout: float = BUSY_TIMEOUT) -> bytes:
        """Send one TPM command between two guest commands and return its whole response."""
        self._hold(busy_timeout)
        try:
            return self._transact_locked(command)
        finally:
            self._lock.release()

    def _hold(self, busy_timeout: float) -> None:
        if self._stop.is_set():
            raise TpmGone(f"the TPM is gone: {self.error}")
        if not self._lock.acquire(timeout=busy_timeout):
            raise TpmBusy(f"the guest has had a TPM command in flight for {busy_timeout:.1f} s: "
                          "stop the guest, then read the PCRs")

    def read_pcrs(self, banks=("sha1", "sha256"), pcrs=range(8), *, busy_timeout: float = BUSY_TIMEOUT
                  ) -> dict[str, dict[int, bytes]]:
        """{bank: {PCR index: value}} read from the TPM now, all in one hold of the channel, so the
        values belong together. Raises TpmBusy while a guest command is in flight, TpmGone when
        QEMU or swtpm has gone, TpmResponseError on an answer that is not a valid PCR_Read."""
        self._hold(busy_timeout)
        try:
            # One hold for every PCR_Read: no guest command runs between two of them.
            return read_pcrs_with(self._transact_locked, banks, pcrs)
        finally:
            self._lock.release()

    def _transact_locked(self, command: bytes) -> bytes:
        if self._stop.is_set():
            raise TpmGone(f"the TPM is gone: {self.error}")
        tpm = self._tpm_data
        if tpm is None:
            raise TpmGone("QEMU has not set up its TPM data channel yet (is QEMU started?)")
        deadline = time.monotonic() + READ_TIMEOUT
        try:
            tpm.sendall(command)
            header = _recv_exact(tpm, TPM_HEADER_SIZE, deadline, "TPM response header")
            size = struct.unpack_from(">I", header, 2)[0]
            if size > MAX_RESPONSE:
                raise ConnectionError(f"swtpm declared a {size}-byte response")
            rest = _recv_exact(tpm, max(size - TPM_HEADER_SIZE, 0), deadline, "TPM response")
        except (TimeoutError, ConnectionError, OSError) as e:
            if self._stop.is_set():     # the relay went down meanwhile, for a reason it knows
                raise TpmGone(f"the TPM is gone: {self.error}") from None
            # The channel may hold half an answer now: it can no longer be shared with the guest.
            self._fail(f"swtpm did not answer our TPM command (swtpm exited?): {e}")
            raise TpmGone(f"swtpm did not answer our TPM command (swtpm exited?): {e}") from None
        return header + rest
