"""inspector.live.tpmrelay between QEMU's tpm-emulator backend and swtpm.

Against fake peers (no QEMU): a fake swtpm and a fake QEMU speak the control protocol of swtpm's
include/swtpm/tpm_ioctl.h (big-endian u32 command codes, CMD_SET_DATAFD = 0x10 with its fd as
SCM_RIGHTS) as QEMU backends/tpm/tpm_emulator.c does; the relay must pass their bytes unchanged,
keep our PCR_Read apart from a guest command in flight, and turn a peer's death into TpmGone.

Live (marked `live`): Debian 12's OVMF.fd under QEMU 7.2 (q35, TCG) with swtpm, booted once
through the relay and once straight to swtpm. The PCRs read back at a QMP stop equal the replay
of the TCG2 log found in the guest's RAM (`dump-guest-memory`), in all four banks swtpm allocates;
at a gdbstub stop on the DXE core's entry PCR0 holds the PEI measurements of that log; and the log
of the boot through the relay has the same events as the log of the boot without it.
"""
from __future__ import annotations

import hashlib
import os
import socket
import struct
import tempfile
import threading
import time
from pathlib import Path

import pytest

from inspector.live.qemu import QemuError, QemuProcess
from inspector.live.tpmrelay import TpmBusy, TpmGone, TpmRelay, TpmResponseError
from tests.realdata import bookworm, tool

CMD_GET_CAPABILITY, CMD_SET_DATAFD = 0x01, 0x10          # swtpm include/swtpm/tpm_ioctl.h
ST_NO_SESSIONS, CC_PCR_READ, SHA1, SHA256 = 0x8001, 0x17E, 0x0004, 0x000B   # TPM 2.0 Part 2
WAIT = 10.0                                             # every fake-peer wait


def recv_exact(sock: socket.socket, n: int) -> bytes:
    sock.settimeout(WAIT)
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def recv_tpm(sock: socket.socket) -> bytes:
    """One TPM command or response: its 10-byte header says its size."""
    head = recv_exact(sock, 10)
    return head + recv_exact(sock, struct.unpack_from(">I", head, 2)[0] - 10)


def pcr_digest(alg: int, n: int) -> bytes:
    return hashlib.new("sha1" if alg == SHA1 else "sha256", b"pcr%d" % n).digest()


def pcr_read_answer(cmd: bytes) -> bytes:
    """What a TPM answers to a TPM2_PCR_Read (Part 3 §22.4): at most 8 digests, the rest dropped
    from pcrSelectionOut."""
    (count,) = struct.unpack_from(">I", cmd, 10)
    pos, room, sel, values, ndigests = 14, 8, b"", b"", 0
    for _ in range(count):
        alg, size = struct.unpack_from(">HB", cmd, pos)
        bits = int.from_bytes(cmd[pos + 3:pos + 3 + size], "little")
        pos += 3 + size
        take = [n for n in range(24) if bits >> n & 1][:room]
        room -= len(take)
        ndigests += len(take)
        sel += struct.pack(">HB", alg, 3) + sum(1 << n for n in take).to_bytes(3, "little")
        values += b"".join(struct.pack(">H", len(d)) + d for d in (pcr_digest(alg, n) for n in take))
    body = struct.pack(">II", 5, count) + sel + struct.pack(">I", ndigests) + values
    return struct.pack(">HII", ST_NO_SESSIONS, 10 + len(body), 0) + body


class FakeSwtpm:
    """swtpm's control socket: answers CMD_GET_CAPABILITY with 8 bytes, everything else with a
    zero u32 ptm_res; takes the data fd of CMD_SET_DATAFD and answers TPM commands on it."""

    def __init__(self, path: str):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.ctrl_seen: list[bytes] = []
        self.commands: list[bytes] = []
        self.release = threading.Event()      # a guest command (code 0x144) waits for this
        self.release.set()
        self.data: socket.socket | None = None
        self.dead = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            self.listener.settimeout(WAIT)
            ctrl, _ = self.listener.accept()
            self.ctrl = ctrl
            ctrl.settimeout(WAIT)
            while True:
                msg, fds, _f, _a = socket.recv_fds(ctrl, 4096, 1)
                if not msg:
                    return
                self.ctrl_seen.append(msg)
                (cmd,) = struct.unpack_from(">I", msg)
                if cmd == CMD_SET_DATAFD:
                    self.data = socket.socket(fileno=fds[0])
                    threading.Thread(target=self.serve_data, daemon=True).start()
                ctrl.sendall(struct.pack(">Q", 0x3FFF) if cmd == CMD_GET_CAPABILITY else bytes(4))
        except OSError:
            pass

    def serve_data(self):
        try:
            while True:
                cmd = recv_tpm(self.data)
                self.commands.append(cmd)
                code = struct.unpack_from(">I", cmd, 6)[0]
                if code == CC_PCR_READ:
                    self.data.sendall(pcr_read_answer(cmd))
                else:
                    self.release.wait(WAIT)
                    answer = struct.pack(">HII", ST_NO_SESSIONS, 14, 0) + cmd[10:14]
                    # in two pieces: the relay must frame the response by its header
                    self.data.sendall(answer[:3])
                    time.sleep(0.05)
                    self.data.sendall(answer[3:])
        except (OSError, ConnectionError):
            pass

    def die(self):
        self.dead = True
        for s in (getattr(self, "ctrl", None), self.data, self.listener):
            if s is not None:
                s.close()


class FakeQemu:
    """QEMU's side: connects to the relay, probes, sends CMD_SET_DATAFD with one end of a socketpair."""

    def __init__(self, path: str):
        self.ctrl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ctrl.settimeout(WAIT)
        self.ctrl.connect(path)
        self.data, theirs = socket.socketpair()
        socket.send_fds(self.ctrl, [struct.pack(">I", CMD_SET_DATAFD)], [theirs.fileno()])
        theirs.close()
        self.datafd_answer = recv_exact(self.ctrl, 4)
        self.ctrl.sendall(struct.pack(">I", CMD_GET_CAPABILITY))
        self.caps = recv_exact(self.ctrl, 8)

    def command(self, code: int, payload: bytes = b"\0\0\0\1") -> bytes:
        self.data.sendall(struct.pack(">HII", ST_NO_SESSIONS, 10 + len(payload), code) + payload)
        return recv_tpm(self.data)


@pytest.fixture
def peers():
    d = tempfile.mkdtemp(prefix="tpmrelay-test-")
    swtpm = FakeSwtpm(os.path.join(d, "swtpm.sock"))
    relay = TpmRelay(os.path.join(d, "relay.sock"), os.path.join(d, "swtpm.sock")).start()
    qemu = FakeQemu(os.path.join(d, "relay.sock"))
    yield swtpm, relay, qemu
    relay.close()
    swtpm.die()
    qemu.ctrl.close()
    qemu.data.close()
    for name in os.listdir(d):
        os.unlink(os.path.join(d, name))
    os.rmdir(d)


def relay_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("tpmrelay-") and t.is_alive()]


# ---- against fake peers

def test_relay_passes_control_messages_and_guest_commands_unchanged(peers):
    swtpm, relay, qemu = peers
    assert qemu.datafd_answer == bytes(4)
    assert qemu.caps == struct.pack(">Q", 0x3FFF)
    assert swtpm.ctrl_seen == [struct.pack(">I", CMD_SET_DATAFD), struct.pack(">I", CMD_GET_CAPABILITY)]
    answer = qemu.command(0x144, b"\xAA\xBB\xCC\xDD")                 # TPM_CC_Startup with any payload
    assert answer == struct.pack(">HII", ST_NO_SESSIONS, 14, 0) + b"\xAA\xBB\xCC\xDD"
    assert swtpm.commands == [struct.pack(">HII", ST_NO_SESSIONS, 14, 0x144) + b"\xAA\xBB\xCC\xDD"]
    assert relay.commands == 1


def test_read_pcrs_sends_pcr_read_on_the_relays_own_data_channel(peers):
    swtpm, relay, qemu = peers
    values = relay.read_pcrs(("sha1", "sha256"), range(8))
    assert values == {"sha1": {n: pcr_digest(SHA1, n) for n in range(8)},
                      "sha256": {n: pcr_digest(SHA256, n) for n in range(8)}}
    first = struct.pack(">I", 2) + struct.pack(">HB3B", SHA1, 3, 0xFF, 0, 0) + struct.pack(">HB3B", SHA256, 3, 0xFF, 0, 0)
    assert swtpm.commands == [struct.pack(">HII", ST_NO_SESSIONS, 10 + len(first), CC_PCR_READ) + first,
                              struct.pack(">HII", ST_NO_SESSIONS, 20, CC_PCR_READ) + struct.pack(">IHB3B", 1, SHA256, 3, 0xFF, 0, 0)]
    # the guest's channel is untouched: its next command gets its own answer
    assert qemu.command(0x144, b"\1\2\3\4")[10:] == b"\1\2\3\4"


def test_read_pcrs_while_a_guest_command_is_in_flight_is_busy_then_works(peers):
    swtpm, relay, qemu = peers
    swtpm.release.clear()
    qemu.data.sendall(struct.pack(">HII", ST_NO_SESSIONS, 14, 0x144) + b"\0\0\0\1")
    for _ in range(100):                  # until the relay has passed it on
        if swtpm.commands:
            break
        time.sleep(0.05)
    with pytest.raises(TpmBusy, match="in flight"):
        relay.read_pcrs(busy_timeout=0.3)
    swtpm.release.set()
    assert recv_tpm(qemu.data)[10:] == b"\0\0\0\1"
    assert relay.read_pcrs(("sha256",), [0]) == {"sha256": {0: pcr_digest(SHA256, 0)}}


def test_swtpm_exit_is_tpm_gone_and_qemu_sees_its_channels_close(peers):
    swtpm, relay, qemu = peers
    swtpm.die()
    with pytest.raises(TpmGone, match="swtpm"):
        for _ in range(100):
            relay.read_pcrs()
            time.sleep(0.05)
    qemu.data.settimeout(WAIT)
    assert qemu.data.recv(1) == b""       # as without the relay: QEMU's next TPM command fails
    assert not relay.alive()


def test_qemu_exit_is_tpm_gone(peers):
    swtpm, relay, qemu = peers
    qemu.ctrl.close()
    with pytest.raises(TpmGone, match="QEMU closed"):
        for _ in range(100):
            relay.read_pcrs()
            time.sleep(0.05)


def test_close_ends_both_threads_and_later_reads_are_tpm_gone(peers):
    swtpm, relay, qemu = peers
    assert len(relay_threads()) >= 2
    relay.close()
    assert relay_threads() == []
    with pytest.raises(TpmGone, match="closed"):
        relay.read_pcrs()


def test_relay_without_swtpm_is_a_clear_error(tmp_path):
    with pytest.raises(TpmGone, match="cannot set up the TPM relay"):
        TpmRelay(tmp_path / "relay.sock", tmp_path / "no-swtpm.sock").start()
    assert relay_threads() == []


def test_read_pcrs_without_a_tpm_is_a_qemu_error(tmp_path):
    with pytest.raises(QemuError, match="tpm=True"):
        QemuProcess(tmp_path / "OVMF.fd", workdir=tmp_path).read_pcrs()


# ---- live: Debian 12 OVMF.fd under QEMU 7.2 with swtpm

# Under TCG on 2 shared cores a boot reaches ReadyToBoot in 12-26 s (measured here: Tcg2Pei
# hashing DXEFV in software takes most of it); a loaded machine needs more.
BOOT_TIMEOUT = 120.0
STABLE = 2.0              # PCRs unchanged this long after ReadyToBoot: BDS has started its app
EV_SEPARATOR = 0x4
ALL_BANKS = ("sha1", "sha256", "sha384", "sha512")
# PFP §3.3.4.1 (and Tcg2Dxe.c OnReadyToBoot): nothing but the ReadyToBoot separator extends PCR6
# on OVMF, so PCR6 leaving zero says ReadyToBoot has come.
PCR6_AFTER_SEPARATOR = hashlib.sha256(bytes(32) + hashlib.sha256(bytes(4)).digest()).digest()


def run_to_ready_to_boot(q: QemuProcess, timeout: float = BOOT_TIMEOUT) -> None:
    """`cont`, then watch the PCRs through the relay while the guest runs (each read waits for a
    guest command in flight) until PCR6 holds its separator and no PCR moved for STABLE seconds;
    then `stop`. Fails with the last PCRs when the boot does not get there in `timeout`."""
    q.qmp.execute("cont")
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        if not q.alive():
            pytest.fail(f"QEMU exited during the boot: {q.log_tail()}")
        try:
            now = q.read_pcrs(("sha256",), range(8))["sha256"]
        except TpmResponseError as e:           # TPM_RC_INITIALIZE until Tcg2Pei's TPM2_Startup
            if "TPM_RC_INITIALIZE" not in str(e):
                raise
            now = None
        if now != last:
            last, since = now, time.monotonic()
        elif now is not None and now[6] != bytes(32) and time.monotonic() - since >= STABLE:
            q.qmp.execute("stop")
            return
        time.sleep(0.25)
    pytest.fail(f"no ReadyToBoot within {timeout:.0f} s: PCRs {last and {n: v.hex() for n, v in last.items()}}")


LOG_AREA = 0x10000          # QEMU's TPM2 table LAML: the log area Tcg2Dxe allocates


def run_until_log_settles(q: QemuProcess, address: int, out: Path, timeout: float = BOOT_TIMEOUT) -> None:
    """Without the relay there are no PCRs to watch: read the log area (where the boot through
    the relay had its log) with QMP `pmemsave` until it holds PCR6's separator and has not grown
    for STABLE seconds; then `stop`."""
    from decoders.eventlog.decode import decode_event_log, log_events

    q.qmp.execute("cont")
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    area = out / "log-area.bin"
    while time.monotonic() < deadline:
        if not q.alive():
            pytest.fail(f"QEMU exited during the boot: {q.log_tail()}")
        q.qmp.execute("pmemsave", val=address, size=LOG_AREA, filename=str(area))
        data = area.read_bytes()
        evs = log_events(decode_event_log(data)) if b"Spec ID Event03" in data[:0x100] else []
        key = [(e.get("PCRIndex"), e.get("EventType")) for e in evs]
        if key != last:
            last, since = key, time.monotonic()
        elif (6, EV_SEPARATOR) in key and time.monotonic() - since >= STABLE:
            q.qmp.execute("stop")
            return
        time.sleep(0.5)
    pytest.fail(f"no ReadyToBoot within {timeout:.0f} s: the log at 0x{address:x} has {len(last or [])} events")


def boot(out: Path, log_address: int | None = None) -> dict:
    """Boot OVMF.fd through the relay (log_address None) or straight to swtpm; run to ReadyToBoot,
    stop, read the PCRs (through the relay), dump RAM; then kill QEMU and try once more."""
    tool("qemu-system-x86_64", "qemu-system-x86")
    tool("swtpm", "swtpm")
    image = bookworm("OVMF.fd")
    readback = log_address is None
    r: dict = {}
    with QemuProcess(image, tpm=True, tpm_readback=readback) as q:
        if readback:
            with pytest.raises(TpmResponseError) as before:
                q.read_pcrs()
            r["before_startup"] = str(before.value)
            # A gdbstub stop mid-boot: at the DXE core's entry Tcg2Pei has measured PEIFV and DXEFV
            from inspector.image import load_image
            from inspector.live.session import Session

            session = Session(q.attach("rsp"), load_image(image), q)
            stop = session.run_to("dxe-core", BOOT_TIMEOUT)
            r["dxe_core_stop"] = (stop.handoff, stop.problems)
            r["at_dxe_core"] = q.read_pcrs(("sha1", "sha256"), [0, 7])
            session.target.detach()             # the stub's `D`: QEMU resumes the guest
            run_to_ready_to_boot(q)
            r["pcrs"] = q.read_pcrs(("sha1", "sha256"), range(8))
            # every bank the Spec ID lists, all 24 PCRs: 96 digests, at most 8 per PCR_Read
            r["all"] = q.read_pcrs(ALL_BANKS, range(24))
            r["commands"] = q.tpm_relay.commands
        else:
            run_until_log_settles(q, log_address, out)
        q.qmp.execute("dump-guest-memory", paging=False, protocol=f"file:{out / 'guest.elf'}")
        if readback:
            q.kill()
            with pytest.raises(TpmGone) as gone:
                for _ in range(50):
                    q.read_pcrs()
                    time.sleep(0.1)
            r["after_kill"] = str(gone.value)
    r["threads_after_close"] = relay_threads()
    r["log"] = ram_log(out / "guest.elf")
    (out / "guest.elf").unlink()        # 256 MiB: the log is all we keep
    return r


def ram_log(elf: Path):
    from inspector.dump import open_dump
    from inspector.locate import dump_overview

    with open_dump(elf) as d:           # the log's bytes are copied into its node
        logs = [n for n in dump_overview(d).walk() if n.kind == "event-log"]
    assert len(logs) == 1, f"{len(logs)} TCG2 logs found in the dump"
    return logs[0]


def events(log) -> list[tuple]:
    from decoders.eventlog.decode import event_digests, log_events

    return [(e.get("PCRIndex"), e.get("EventType"), tuple(event_digests(e)), e.get("Event")) for e in log_events(log)]


@pytest.fixture(scope="module")
def relayed(tmp_path_factory):
    return boot(tmp_path_factory.mktemp("relayed"))


@pytest.fixture(scope="module")
def direct(tmp_path_factory, relayed):
    return boot(tmp_path_factory.mktemp("direct"), relayed["log"].get("Address"))


@pytest.mark.live
def test_pcrs_read_at_a_stop_equal_the_replay_of_the_log_in_ram(relayed):
    from decoders.eventlog.replay import replay

    ev = events(relayed["log"])
    assert all(any(e[0] == n and e[1] == EV_SEPARATOR for e in ev) for n in range(8)), \
        "the boot had not reached ReadyToBoot (no EV_SEPARATOR in PCR0-7): settle longer"
    rp = replay(relayed["log"])
    for bank in ("sha1", "sha256"):
        for n in range(8):
            assert relayed["pcrs"][bank][n] == rp.value(bank, n), f"{bank} PCR{n}"
    # PCRs no event extends keep the separator alone: H(0…0 || H(00000000)) (PFP §3.3.4.1)
    assert relayed["pcrs"]["sha256"][6] == PCR6_AFTER_SEPARATOR
    assert relayed["commands"] > 50


@pytest.mark.live
def test_boot_through_the_relay_logs_the_same_events_as_without_it(relayed, direct):
    assert events(relayed["log"]) == events(direct["log"])
    assert len(events(direct["log"])) > 10


@pytest.mark.live
def test_pcrs_before_tpm2_startup_are_a_clear_error(relayed):
    assert "TPM_RC_INITIALIZE" in relayed["before_startup"]


@pytest.mark.live
def test_read_after_qemu_died_is_tpm_gone_and_no_relay_thread_outlives_it(relayed):
    assert "QEMU" in relayed["after_kill"]
    assert relayed["threads_after_close"] == []


@pytest.mark.live
def test_all_24_pcrs_of_all_four_banks_read_back_and_agree_with_the_log(relayed):
    """swtpm allocates SHA-1, SHA-256, SHA-384 and SHA-512 (the log's Spec ID lists those four).
    PCR0-7 replay from the log; PCR8-16 and 23 stay zero and PCR17-22 all ones, their reset values
    (PC Client Platform TPM Profile, PCR attributes: 17-22 reset to -1 until a dynamic launch)."""
    from decoders.eventlog.replay import replay

    rp = replay(relayed["log"])
    assert relayed["log"].get("Algorithms") == {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
    for bank in ALL_BANKS:
        values = relayed["all"][bank]
        assert sorted(values) == list(range(24))
        size = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}[bank]
        for n in range(8):
            assert values[n] == rp.value(bank, n), f"{bank} PCR{n}"
        for n in [*range(8, 17), 23]:
            assert values[n] == bytes(size), f"{bank} PCR{n}"
        for n in range(17, 23):
            assert values[n] == b"\xff" * size, f"{bank} PCR{n}"
    for bank in ("sha1", "sha256"):      # the two reads at the same stop agree
        assert {n: relayed["all"][bank][n] for n in range(8)} == relayed["pcrs"][bank]


@pytest.mark.live
def test_pcrs_read_at_a_gdbstub_stop_at_the_dxe_core_entry(relayed):
    """At the DXE core's entry (a gdbstub stop) PCR0 holds the PEI measurements only: the first
    three PCR0 events of the final log (S-CRTM version, PEIFV, DXEFV: Tcg2Pei); PCR7 is still zero
    (Tcg2Dxe measures the Secure Boot policy later)."""
    from decoders.eventlog.decode import event_digests, log_events

    handoff, problems = relayed["dxe_core_stop"]
    assert handoff == "dxe-core", problems
    pcr0 = [dict(event_digests(e)) for i, e in enumerate(log_events(relayed["log"]))
            if i > 0 and e.get("PCRIndex") == 0 and e.get("EventType") != 0x3]
    for bank, size in (("sha1", 20), ("sha256", 32)):
        value = bytes(size)
        for digests in pcr0[:3]:
            value = hashlib.new(bank, value + digests[bank]).digest()
        assert relayed["at_dxe_core"][bank][0] == value, bank
        assert relayed["at_dxe_core"][bank][7] == bytes(size), bank
