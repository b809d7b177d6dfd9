"""The live Target contract, against a real QEMU 7.2 booting Debian's OVMF, for both backends.

Expected values come from the image files and edk2's documented contracts, never from our output:
- at reset the CPU is in real mode with CS=F000, CS.base=FFFF0000, IP=FFF0 (Intel SDM vol. 3A,
  9.1.4 "First Instruction Executed"), and the 16 bytes at 0xFFFFFFF0 are the image's last 16;
- the SEC entry is where the image says (SECFV's SEC_CORE file → PE32 → 4 GiB - image size +
  file offset + AddressOfEntryPoint); OvmfPkg/ResetVector/Main.asm hands over EBP/RBP = the boot
  firmware volume (SECFV) base and DI = 'BP' (0x5042), in flat 32-bit mode for an IA32 SEC and in
  long mode for an X64 SEC (OvmfPkg/Sec/{Ia32,X64}/SecEntry.nasm).

One QEMU per (image, backend) for the module; each is ended by PID in teardown. Every wait is bounded.
"""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from inspector.image import load_image
from inspector.live import rsp
from inspector.live import attach as live_attach
from inspector.live.qemu import QemuProcess, free_tcp_port
from decoders.memory import Unreadable
from inspector.live.target import (CR0_PE, CR0_PG, EFER_LMA, StopEvent, TargetDead, TargetTimeout,
                                   parse_info_registers)
from tests.realdata import bookworm, tool, trixie

BACKENDS = ["rsp", "gdb"]
# Debian 12 (2022.11: X64 2 MiB unified, IA32X64 4 MiB split) and Debian 13 (2025.02) images.
IMAGES = [("bookworm", "OVMF.fd"), ("bookworm", "OVMF_CODE_4M.fd"), ("trixie", "OVMF.fd"),
          ("trixie", "OVMF_CODE_4M.fd")]
FOUR_GIB = 1 << 32
# Register/memory calls to a paused QEMU answer in milliseconds; this only bounds a failure.
CALL_TIMEOUT = 5.0
# SEC entry is reached within milliseconds of reset under TCG; generous for a loaded 2-core box.
RUN_TIMEOUT = 30.0
# How quickly a dead QEMU must be reported.
DEAD_WITHIN = 3.0
# A call that ends past this did not honour its timeout at all (it hung until something else gave):
# a hang detector, not a timing budget, so that a loaded machine cannot fail it.
HANG = 30.0


@dataclass
class SecEntry:
    entry: int          # linear address of the SEC core's entry point
    bfv_base: int       # base of the firmware volume holding it (what the reset vector puts in EBP)
    machine: int        # PE Machine: 0x14c IA32, 0x8664 X64


def sec_entry_from_image(path: Path) -> SecEntry:
    """SECFV → SEC_CORE (FFS type 3) → PE32 → entry, with the image's last byte at 4 GiB - 1."""
    img = load_image(path)
    base = FOUR_GIB - len(img.data)
    sec = next(n for n in img.root.walk() if n.kind == "ffs" and n.get("Type") == 3
               and n.space is img.root.space)
    pe = next(n for n in sec.walk() if n.kind == "pe")
    fv = min((n for n in img.root.walk() if n.kind == "fv" and n.space is img.root.space
              and n.offset <= sec.offset < n.offset + n.size), key=lambda n: n.size)
    return SecEntry(base + pe.offset + pe.get("AddressOfEntryPoint"), base + fv.offset, pe.get("Machine"))


def image_path(image: tuple[str, str]) -> Path:
    dist, name = image
    return bookworm(name) if dist == "bookworm" else trixie(name)


class Session:
    def __init__(self, image: Path, backend: str):
        self.image = image
        self.backend = backend
        self.qemu = QemuProcess(image).start()
        try:
            self.target = self.qemu.attach(backend)
        except BaseException:
            self.qemu.close()
            raise

    def reset(self) -> None:
        """Back to the reset vector: drop the stub client, QMP system_reset (paused), attach again.

        QMP touches run control only while no stub client is attached: a QMP `cont` + `stop` while
        one was attached made QEMU 7.2 send it an unsolicited stop reply (measured here)."""
        self.target.close()
        self.qemu.qmp.execute("system_reset")
        self.target = self.qemu.attach(self.backend)

    def close(self) -> None:
        try:
            self.target.close()
        finally:
            self.qemu.close()


def _need_tools(backend: str) -> None:
    tool("qemu-system-x86_64", "qemu-system-x86")
    if backend == "gdb":
        tool("gdb", "gdb")


@pytest.fixture(scope="module", params=[(i, b) for i in IMAGES for b in BACKENDS],
                ids=[f"{d}-{n}-{b}" for d, n in IMAGES for b in BACKENDS])
def session(request):
    image, backend = request.param
    _need_tools(backend)
    s = Session(image_path(image), backend)
    yield s
    s.close()


# ---- against a real QEMU ---------------------------------------------------------------------

@pytest.mark.live
def test_reset_state_is_real_mode_at_ffff0000_plus_fff0(session):
    session.reset()
    t = session.target
    r = t.read_registers(CALL_TIMEOUT)
    assert r.mode == "real"
    assert not r.cr0 & CR0_PE
    assert r.cs.selector == 0xF000
    assert r.cs.base == 0xFFFF0000
    assert r.rip == 0xFFF0
    assert r.pc == 0xFFFFFFF0
    assert t.read_physical(0xFFFFFFF0, 16, CALL_TIMEOUT) == session.image.read_bytes()[-16:]


@pytest.mark.live
def test_monitor_info_registers_shows_segment_caches(session):
    text = session.target.monitor("info registers", CALL_TIMEOUT)
    assert "CS =" in text
    assert "EFER=" in text


@pytest.mark.live
def test_hardware_breakpoint_at_sec_entry_hits_with_bfv_in_ebp(session):
    sec = sec_entry_from_image(session.image)
    session.reset()
    t = session.target
    t.set_breakpoint(sec.entry, CALL_TIMEOUT)
    stop = t.cont(RUN_TIMEOUT)
    t.remove_breakpoint(sec.entry, CALL_TIMEOUT)
    assert stop.reason == "breakpoint"
    r = t.read_registers(CALL_TIMEOUT)
    assert r.pc == sec.entry
    assert r["rbp"] & 0xFFFFFFFF == sec.bfv_base
    assert r["rdi"] & 0xFFFF == 0x5042          # 'BP': the boot-strap processor
    assert r.cr0 & CR0_PE
    if sec.machine == 0x14C:                      # IA32 SEC: flat 32-bit, no paging
        assert r.mode == "prot32"
        assert not r.cr0 & CR0_PG
        assert r.cs.base == 0 and r.cs.limit == 0xFFFFFFFF
    else:                                         # X64 SEC: the reset vector enabled long mode
        assert r.mode == "long64"
        assert r.cr0 & CR0_PG and r.efer & EFER_LMA
    # SEC's code is in flash: what the stub reads at the entry is the image's bytes there.
    off = sec.entry - (FOUR_GIB - session.image.stat().st_size)
    assert t.read_virtual(sec.entry, 32, CALL_TIMEOUT) == session.image.read_bytes()[off:off + 32]


@pytest.mark.live
def test_step_advances_past_the_sec_entry_instruction(session):
    sec = sec_entry_from_image(session.image)
    session.reset()
    t = session.target
    t.set_breakpoint(sec.entry, CALL_TIMEOUT)
    assert t.cont(RUN_TIMEOUT).reason == "breakpoint"
    assert t.step(CALL_TIMEOUT).reason == "step"
    after = t.read_registers(CALL_TIMEOUT).pc
    # A breakpoint left in place at the entry must not re-report the same stop (a raw `c` there
    # re-reports it on QEMU 7.2, measured here, so the backend steps off first, as gdb does):
    # the guest moved on by one instruction (1..15 bytes on x86).
    assert 1 <= after - sec.entry <= 15
    t.remove_breakpoint(sec.entry, CALL_TIMEOUT)


@pytest.mark.live
def test_cont_from_a_breakpoint_steps_off_it(session):
    """Breakpoints at the SEC entry and 5 bytes later: cont() from the first reaches the second."""
    sec = sec_entry_from_image(session.image)
    session.reset()
    t = session.target
    t.set_breakpoint(sec.entry, CALL_TIMEOUT)
    assert t.cont(RUN_TIMEOUT).reason == "breakpoint"
    t.step(CALL_TIMEOUT)
    nxt = t.read_registers(CALL_TIMEOUT).pc
    session.reset()
    t = session.target
    t.set_breakpoint(sec.entry, CALL_TIMEOUT)
    t.set_breakpoint(nxt, CALL_TIMEOUT)
    assert t.cont(RUN_TIMEOUT).reason == "breakpoint"
    assert t.read_registers(CALL_TIMEOUT).pc == sec.entry
    assert t.cont(RUN_TIMEOUT).reason == "breakpoint"
    assert t.read_registers(CALL_TIMEOUT).pc == nxt
    t.remove_breakpoint(sec.entry, CALL_TIMEOUT)
    t.remove_breakpoint(nxt, CALL_TIMEOUT)


@pytest.mark.live
def test_interrupt_stops_a_running_guest(session):
    t = session.target
    t.resume(CALL_TIMEOUT)
    time.sleep(0.3)
    assert t.running
    stop = t.interrupt(CALL_TIMEOUT)
    assert stop.reason == "interrupt"
    assert not t.running
    # Stopped again: the CPU has left the reset vector and registers read normally.
    r = t.read_registers(CALL_TIMEOUT)
    assert r.pc != 0xFFFFFFF0


@pytest.mark.live
def test_interrupt_from_another_thread_ends_a_blocking_cont(session):
    """The app's shape: a worker thread blocks in cont(), the UI thread interrupts."""
    t = session.target
    if t.running:
        t.interrupt(CALL_TIMEOUT)
    result: dict = {}
    worker = threading.Thread(target=lambda: result.setdefault("stop", t.cont(RUN_TIMEOUT)), daemon=True)
    worker.start()
    deadline = time.monotonic() + CALL_TIMEOUT
    while not t.running and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    stop = t.interrupt(CALL_TIMEOUT)
    worker.join(CALL_TIMEOUT)
    assert not worker.is_alive()
    assert stop.reason == "interrupt"
    assert result["stop"].reason == "interrupt"
    assert not t.running


@pytest.mark.live
def test_read_watchpoint_fires_when_the_reset_vector_checks_the_bfv_header(session):
    """OvmfPkg/ResetVector/Ia32/SearchForBfvBase.asm walks down from 4 GiB in 4 KiB steps and
    compares the dword at +0x10 (EFI_FIRMWARE_VOLUME_HEADER.FileSystemGuid) of each candidate:
    a read watchpoint (Z3) there fires in flat 32-bit code inside the boot firmware volume."""
    sec = sec_entry_from_image(session.image)
    session.reset()
    t = session.target
    guid_at = sec.bfv_base + 0x10
    t.set_watchpoint(guid_at, 4, "read", CALL_TIMEOUT)
    stop = t.cont(RUN_TIMEOUT)
    t.remove_watchpoint(guid_at, 4, "read", CALL_TIMEOUT)
    assert (stop.reason, stop.address, stop.kind) == ("watchpoint", guid_at, "rwatch")
    r = t.read_registers(CALL_TIMEOUT)
    assert r.mode == "prot32"
    assert sec.bfv_base <= r.pc < FOUR_GIB
    # The guid it compares is the image's FFS2 GUID: the bytes read are the file's bytes.
    off = guid_at - (FOUR_GIB - session.image.stat().st_size)
    assert t.read_physical(guid_at, 16, CALL_TIMEOUT) == session.image.read_bytes()[off:off + 16]


@pytest.mark.live
def test_target_memory_reads_a_page_once_until_the_guest_runs(session):
    """The Memory adapter decoders use: page-sized fetches, cached until the next resume/step."""
    t = session.target
    if t.running:
        t.interrupt(CALL_TIMEOUT)
    sec = sec_entry_from_image(session.image)
    image = session.image.read_bytes()
    off = sec.bfv_base - (FOUR_GIB - len(image))
    calls = []
    real = t.read_physical
    t.read_physical = lambda a, n, timeout=CALL_TIMEOUT: calls.append((a, n)) or real(a, n, timeout)
    try:
        mem = t.physical_memory()
        # EFI_FIRMWARE_VOLUME_HEADER of the BFV: ZeroVector+FileSystemGuid, then FvLength/Signature.
        assert mem.read(sec.bfv_base, 0x20) == image[off:off + 0x20]
        assert mem.read(sec.bfv_base + 0x28, 4) == b"_FVH"
        assert len(calls) == 1 and calls[0] == (sec.bfv_base, 0x1000)
        t.step(CALL_TIMEOUT)
        assert mem.read(sec.bfv_base + 0x28, 4) == b"_FVH"
        assert len(calls) == 2
    finally:
        del t.read_physical


@pytest.mark.live
def test_fast_path_and_stub_agree_on_guest_ram(session):
    t = session.target
    if t.hostmem is None:
        pytest.skip("no /proc/PID/mem access to QEMU here")
    if t.running:
        t.interrupt(CALL_TIMEOUT)
    addr = t.hostmem.ranges[0].start
    fast = t.read_physical(addr, 4096, CALL_TIMEOUT)
    hm, t.hostmem = t.hostmem, None
    try:
        slow = t.read_physical(addr, 4096, CALL_TIMEOUT)
    finally:
        t.hostmem = hm
    assert fast == slow


@pytest.mark.live
@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_qemu_gives_target_dead_within_timeout(backend):
    _need_tools(backend)
    with QemuProcess(image_path(("bookworm", "OVMF_CODE_4M.fd"))) as q:
        t = q.attach(backend, fast_path=False)
        try:
            q.kill()
            t0 = time.monotonic()
            with pytest.raises(TargetDead):
                t.read_registers(DEAD_WITHIN)
            with pytest.raises(TargetDead):
                t.read_physical(0xFFFFFFF0, 16, DEAD_WITHIN)
            assert time.monotonic() - t0 < HANG
        finally:
            t.close()


@pytest.mark.live
@pytest.mark.parametrize("backend", BACKENDS)
def test_qemu_killed_while_running_ends_cont_with_target_dead(backend):
    _need_tools(backend)
    with QemuProcess(image_path(("bookworm", "OVMF_CODE_4M.fd"))) as q:
        t = q.attach(backend, fast_path=False)
        try:
            t.resume(CALL_TIMEOUT)
            time.sleep(0.2)
            q.kill()
            t0 = time.monotonic()
            with pytest.raises(TargetDead):
                t.wait_stop(DEAD_WITHIN)
            assert time.monotonic() - t0 < HANG
        finally:
            t.close()


# ---- the wire format, against the gdb manual's own examples -------------------------------------

def test_rsp_checksum_is_the_modulo_256_sum():
    # gdb manual, "Overview": `$OK#9a`; 'O'+'K' = 0x4f+0x4b = 0x9a.
    assert rsp.frame(b"OK") == b"$OK#9a"


def test_rsp_run_length_decoding_follows_the_manual():
    # gdb manual: "the reply `0* ` means the same as `0000`" (' ' = 29 + 3 repeats).
    assert rsp.run_length_decode(b"0* ") == b"0000"


def test_rsp_escapes_roundtrip_reserved_bytes():
    data = bytes(range(256))
    body = rsp.escape(data)
    assert not any(c in body for c in b"#$*")
    assert rsp.unescape(body) == data


def test_rsp_stop_replies_map_to_reasons():
    assert rsp.parse_stop(b"T05thread:01;", "c") == StopEvent("breakpoint", 5, raw="T05thread:01;", thread="01")
    assert rsp.parse_stop(b"T05thread:01;", "s").reason == "step"
    w = rsp.parse_stop(b"T05watch:820028;thread:01;", "c")
    assert (w.reason, w.address, w.kind) == ("watchpoint", 0x820028, "watch")
    assert rsp.parse_stop(b"T02thread:01;", "c").reason == "interrupt"
    assert rsp.parse_stop(b"W00", "c").reason == "exited"


def test_info_registers_parse_reads_segment_bases():
    # The layout printed by QEMU's target/i386/cpu-dump.c (x86_cpu_dump_seg_cache) at reset.
    text = ("CS =f000 ffff0000 0000ffff 00009b00\nGDT=     00000000 0000ffff\n"
            "CR0=60000010 CR2=00000000 CR3=00000000 CR4=00000000\nEFER=0000000000000000\n")
    mon = parse_info_registers(text)
    assert mon.segments["cs"].base == 0xFFFF0000
    assert mon.tables["gdt"] == (0, 0xFFFF)
    assert mon.control["cr0"] == 0x60000010


# ---- a misbehaving stub: bad checksums, run-length replies, silence, hang-ups, garbage -------------

class FakeStub:
    """A one-connection RSP server on 127.0.0.1. `answer(payload)` returns the raw replies to send
    (None in the list: hang up); on a `-` the stub sends `on_nak()` (default: its last reply)."""

    def __init__(self, answer, on_nak=None):
        self.answer = answer
        self.on_nak = on_nak
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(CALL_TIMEOUT)
        self.address = self.server.getsockname()
        self.naks = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        conn.settimeout(CALL_TIMEOUT)
        buf, last = b"", b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while buf:
                    if buf[:1] == b"-":
                        self.naks += 1
                        buf = buf[1:]
                        conn.sendall(self.on_nak() if self.on_nak else last)
                    elif buf[:1] == b"$" and b"#" in buf and len(buf) >= buf.index(b"#") + 3:
                        end = buf.index(b"#")
                        payload, buf = buf[1:end], buf[end + 3:]
                        conn.sendall(b"+")
                        for raw in self.answer(payload) or []:
                            if raw is None:
                                return
                            last = raw
                            conn.sendall(raw)
                    elif buf[:1] == b"$":
                        break                    # wait for the rest of the packet
                    else:
                        buf = buf[1:]            # the client's acks

    def close(self) -> None:
        self.server.close()
        self.thread.join(CALL_TIMEOUT)


def stub_answer(extra):
    """The handshake QEMU gives (no qXfer here: the client falls back to QEMU's x86-64 layout)."""
    def answer(p: bytes):
        if p.startswith(b"qSupported"):
            return [rsp.frame(b"PacketSize=1000")]
        if p == b"?":
            return [rsp.frame(b"T05thread:01;")]
        if p.startswith(b"Qqemu.PhyMemMode"):
            return [rsp.frame(b"OK")]
        return extra(p)
    return answer


def test_rsp_bad_checksum_is_nakked_and_the_retransmission_used():
    bad = b"$0102030405060708#00"
    good = rsp.frame(b"0102030405060708")
    assert good.endswith(b"#24")     # 8 × '0' (0x30) + '1'..'8' (0x31..0x38) = 0x324, mod 256
    stub = FakeStub(stub_answer(lambda p: [bad] if p.startswith(b"m") else []), on_nak=lambda: good)
    t = rsp.RspTarget(stub.address, timeout=CALL_TIMEOUT)
    try:
        assert t.read_physical(0x1000, 8, CALL_TIMEOUT) == bytes.fromhex("0102030405060708")
        assert stub.naks == 1
    finally:
        t.close()
        stub.close()


def test_rsp_run_length_encoded_registers_and_hex_console_output():
    # `g` of QEMU's 608-byte layout: all zero but rip (bytes 128..135) = 0xfff0, run-length encoded
    # ("0*" + chr(29 + n) repeats the '0' n more times, n <= 97 so the count stays printable).
    def zeros(n: int) -> bytes:
        out = b""
        while n > 0:
            k = min(n, 98)
            out += b"0" + (b"*" + bytes([29 + k - 1]) if k > 1 else b"")
            n -= k
        return out
    g = zeros(256) + b"f0ff" + zeros(12) + zeros((608 - 136) * 2)
    assert len(rsp.run_length_decode(g)) == 1216
    info = b"CS =f000 ffff0000 0000ffff 00009b00\n"

    def extra(p: bytes):
        if p == b"g":
            return [b"$" + g + b"#" + rsp.checksum(g)]     # raw: frame() would escape the `*`
        if p.startswith(b"qRcmd,"):
            half = len(info) // 2
            return [rsp.frame(b"O" + info[:half].hex().encode()), rsp.frame(b"O" + info[half:].hex().encode()),
                    rsp.frame(b"OK")]
        return []
    stub = FakeStub(stub_answer(extra))
    t = rsp.RspTarget(stub.address, timeout=CALL_TIMEOUT)
    try:
        r = t.read_registers(CALL_TIMEOUT)
        assert r.rip == 0xFFF0 and r["rax"] == 0
        assert r.pc == 0xFFFFFFF0 and r.mode == "real"
        assert t.monitor("info registers", CALL_TIMEOUT) == info.decode()
    finally:
        t.close()
        stub.close()


def test_rsp_silent_stub_raises_target_timeout_in_time():
    stub = FakeStub(stub_answer(lambda p: []))
    t = rsp.RspTarget(stub.address, timeout=CALL_TIMEOUT)
    try:
        t0 = time.monotonic()
        with pytest.raises(TargetTimeout):
            t.read_physical(0x1000, 8, 0.3)
        assert time.monotonic() - t0 < HANG
    finally:
        t.close()
        stub.close()


def test_rsp_stub_hanging_up_mid_read_raises_target_dead():
    stub = FakeStub(stub_answer(lambda p: [None] if p.startswith(b"m") else []))
    t = rsp.RspTarget(stub.address, timeout=CALL_TIMEOUT)
    try:
        with pytest.raises(TargetDead):
            t.read_physical(0x1000, 64 << 10, CALL_TIMEOUT)     # a pipelined read of 32 packets
        with pytest.raises(TargetDead):
            t.read_registers(CALL_TIMEOUT)
    finally:
        t.close()
        stub.close()


def test_rsp_endless_packet_is_cut_off_with_target_dead():
    junk = b"$" + b"0" * (rsp.MAX_PACKET + 10)         # never terminated by `#`
    stub = FakeStub(stub_answer(lambda p: [junk] if p.startswith(b"m") else []))
    t = rsp.RspTarget(stub.address, timeout=CALL_TIMEOUT)
    try:
        with pytest.raises(TargetDead):
            t.read_physical(0x1000, 8, CALL_TIMEOUT)
    finally:
        t.close()
        stub.close()


def test_rsp_error_reply_to_a_read_is_unreadable_and_the_connection_survives():
    def extra(p: bytes):
        if p.startswith(b"m"):
            addr = int(p[1:].split(b",")[0], 16)
            return [rsp.frame(b"E14" if addr == 0x1800 else b"ab" * int(p.split(b",")[1], 16))]
        return []
    stub = FakeStub(stub_answer(extra))
    t = rsp.RspTarget(stub.address, timeout=CALL_TIMEOUT)
    try:
        with pytest.raises(Unreadable) as e:
            t.read_physical(0x1000, 0x2000, CALL_TIMEOUT)     # chunks at 0x1000 and 0x1800
        assert e.value.address == 0x1800
        assert t.read_physical(0x4000, 4, CALL_TIMEOUT) == b"\xab" * 4   # replies still in step
    finally:
        t.close()
        stub.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_attach_with_nobody_listening_raises_target_dead_at_once(backend):
    if backend == "gdb":
        tool("gdb", "gdb")
    port = free_tcp_port()
    t0 = time.monotonic()
    with pytest.raises(TargetDead):
        live_attach(("127.0.0.1", port), backend)
    assert time.monotonic() - t0 < HANG
