"""Every vCPU at a stop, offline: a fake gdbstub speaking QEMU's thread packets, and the per-CPU logic.

Replies are built from the specs, not from our code: `g` in the order of QEMU's
gdbstub/gdb-xml/i386-64bit.xml (rax..r15, rip as 8 bytes, eflags and six selectors as 4, fs_base,
gs_base, k_gs_base, cr0, cr2, cr3, cr4, cr8, efer as 8, little-endian: gdb manual, "Packets", `g`);
thread lists as QEMU sends them (`m01`, then `l`: gdbstub/gdbstub.c, handle_query_threads); stop
replies `T05thread:ID;` (gdb manual, "Stop Reply Packets"); monitor text in the layout of QEMU
target/i386/cpu-dump.c with `info registers -a`'s "CPU#N" heads and CRLF line ends (as QEMU 7.2
sends them through qRcmd, measured here).
"""
from __future__ import annotations

import collections
import json
import socket
import struct
import threading
import time
import types

import pytest

from inspector.live import rsp
from inspector.live.cpus import cpu_state, cpu_views, step_refusal, stop_note
from inspector.live.gdbmi import stub_thread
from inspector.live.phases import BootState
from inspector.live.record import Recorder, ReplaySession, load_recording
from inspector.live.session_api import CpuState, CpuView, Stop
from inspector.live.target import CpuRead, CpuSet, merge_registers, parse_info_registers_all, thread_index

TIMEOUT = 5.0
BOOT = BootState(types.SimpleNamespace(ranges=[]))     # no module ranges: classify by mode alone


def g_reply(rip: int, cr0: int, cr3: int, cs: int, rax: int = 0, efer: int = 0) -> bytes:
    gprs = [rax] + [0] * 15 + [rip]
    raw = struct.pack("<17Q", *gprs) + struct.pack("<7I", 2, cs, 0, 0, 0, 0, 0) + struct.pack("<3Q", 0, 0, 0)
    raw += struct.pack("<6Q", cr0, 0, cr3, 0, 0, efer)
    return raw.hex().encode()


def monitor_section(index: int, cs: str, hlt: int, cr0: str) -> str:
    return (f"CPU#{index}\r\nEIP=0000fff0 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT={hlt}\r\n"
            f"CS ={cs} DPL=0 CS16 [-RA]\r\nGDT=     00000000 0000ffff\r\nCR0={cr0} CR2=00000000 CR3=00000000 "
            f"CR4=00000000\r\nEFER=0000000000000000\r\n")


# Three vCPUs: the BSP in 32-bit flat mode at the PEI core's entry, AP 1 never started (halted at
# the reset state), AP 2 parked halted in 32-bit code.
CPU_G = {
    "01": g_reply(0x82584A, 0x40000033, 0, 0x10, rax=0x1111),
    "02": g_reply(0xFFF0, 0x60000010, 0, 0xF000, rax=0x2222),
    "03": g_reply(0xFEC9D57, 0x33, 0x1F000, 0x10, rax=0x3333),
}
SECTIONS = [monitor_section(0, "0010 00000000 ffffffff 00cf9b00", 0, "40000033"),
            monitor_section(1, "f000 ffff0000 0000ffff 00009b00", 1, "60000010"),
            monitor_section(2, "0010 00000000 ffffffff 00cf9b00", 1, "00000033")]
MONITOR = "\r\n" + "".join(SECTIONS)
EXTRA = {"01": "CPU#0 [running]", "02": "CPU#1 [halted ]", "03": "CPU#2 [halted ]"}


def qrcmd(text: str) -> bytes:
    return b"qRcmd," + text.encode().hex().encode()


def frame(payload: bytes) -> bytes:
    return b"$" + payload + b"#" + b"%02x" % (sum(payload) & 0xFF)


class ThreadStub:
    """QEMU's gdbstub for `threads`: a listing iterator, Hg (E22 for a thread in `vanished`), `g` of the
    thread Hg selected, qThreadExtraInfo, qRcmd with `cpu N`, `info registers` (of the monitor's CPU)
    and `info registers -a`. With `hold` = N, nothing is answered until N packets have arrived (a
    client waiting for a reply before sending the next request would stall: `stalled` records it)."""

    def __init__(self, threads=("01", "02", "03"), vanished=(), vcont=True, stop=b"T05thread:01;"):
        self.threads = list(threads)
        self.vanished = set(vanished)
        self.vcont = vcont
        self.stop = stop
        self.cont_reply = b"T05thread:03;"
        self.g = dict(CPU_G)
        self.mon_cpu = 0
        self.g_thread = stop.partition(b"thread:")[2].rstrip(b";").decode() or self.threads[0]   # QEMU: g_cpu = c_cpu
        self.received: list[bytes] = []
        self.hold = 0
        self.stalled = False
        self.memory: dict[int, int] | None = None      # address -> byte for `m` (else E14); 0x90 (nop) elsewhere
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(TIMEOUT)
        self.address = self.server.getsockname()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def answer(self, p: bytes) -> list[bytes]:
        if p.startswith(b"qSupported"):
            return [frame(b"PacketSize=1000" + (b";vContSupported+" if self.vcont else b""))]
        if p == b"?":
            return [frame(self.stop)]
        if p == b"qfThreadInfo":
            self._it = iter(self.threads)
            return [frame(b"m" + next(self._it).encode())]
        if p == b"qsThreadInfo":
            t = next(self._it, None)
            return [frame(b"l" if t is None else b"m" + t.encode())]
        if p.startswith(b"Hg"):
            t = p[2:].decode()
            if t in self.vanished or t not in self.threads:
                return [frame(b"E22")]
            self.g_thread = t
            return [frame(b"OK")]
        if p == b"g":
            return [frame(self.g[self.g_thread])]
        if p.startswith(b"qThreadExtraInfo,"):
            return [frame(EXTRA[p[17:].decode()].encode().hex().encode())]
        if p.startswith(b"qRcmd,"):
            command = bytes.fromhex(p[6:].decode()).decode()
            if command.startswith("cpu "):
                self.mon_cpu = int(command[4:])
                return [frame(b"OK")]
            text = (MONITOR if command == "info registers -a" else "\r\n" + SECTIONS[self.mon_cpu]).encode()
            return [frame(b"O" + text[:200].hex().encode()), frame(b"O" + text[200:].hex().encode()), frame(b"OK")]
        if p.startswith(b"Qqemu.PhyMemMode"):
            return [frame(b"OK")]
        if p == b"c":
            return [frame(self.cont_reply)]
        if p[:2] in (b"Z1", b"z1"):
            return [frame(b"OK")]
        if p.startswith(b"m"):
            if self.memory is None:
                return [frame(b"E14")]
            addr, size = (int(x, 16) for x in p[1:].split(b","))
            return [frame(bytes(self.memory.get(a, 0x90) for a in range(addr, addr + size)).hex().encode())]
        if p.startswith(b"vCont;s:") or p == b"s":
            return [frame(b"T05thread:" + (p[8:] if p != b"s" else b"01") + b";")]
        return [frame(b"")]

    def _serve(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        conn.settimeout(0.05)
        buf = b""
        held: list[bytes] = []
        held_since = None
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                except socket.timeout:
                    pass
                except OSError:
                    return
                while b"#" in buf and len(buf) >= buf.index(b"#") + 3:
                    start = buf.find(b"$")
                    if start < 0 or start > buf.index(b"#"):
                        buf = buf[buf.index(b"#") + 3:]
                        continue
                    end = buf.index(b"#")
                    payload, buf = buf[start + 1:end], buf[end + 3:]
                    self.received.append(payload)
                    conn.sendall(b"+")
                    held.append(payload)
                    held_since = held_since or time.monotonic()
                if held and (len(held) >= self.hold or time.monotonic() - held_since > 1.0):
                    if len(held) < self.hold:
                        self.stalled = True
                    for p in held:
                        for raw in self.answer(p):
                            conn.sendall(raw)
                    held, held_since = [], None

    def close(self) -> None:
        self.server.close()
        self.thread.join(TIMEOUT)


@pytest.fixture
def stub_target(request):
    made = []

    def make(**kw):
        stub = ThreadStub(**kw)
        t = rsp.RspTarget(stub.address, timeout=TIMEOUT)
        made.append((stub, t))
        return stub, t
    yield make
    for stub, t in made:
        t.close()
        stub.close()


# ---- wire: stop replies, thread ids, monitor text -------------------------------------------------

def test_stop_reply_names_the_thread_that_stopped():
    assert rsp.parse_stop(b"T05thread:02;", "c").thread == "02"
    assert rsp.parse_stop(b"T02thread:01;", "c").thread == "01"
    w = rsp.parse_stop(b"T05thread:p01.03;watch:820028;", "c")      # QEMU's order
    assert (w.reason, w.address, w.thread) == ("watchpoint", 0x820028, "p01.03")
    w = rsp.parse_stop(b"T05awatch:1000;thread:02;", "c")
    assert (w.kind, w.address, w.thread) == ("awatch", 0x1000, "02")
    assert rsp.parse_stop(b"S05", "c").thread is None


def test_thread_index_is_qemu_cpu_index():
    # QEMU numbers threads cpu_index + 1, hex, "pPID.TID" with multiprocess.
    assert [thread_index(t) for t in ("01", "02", "0a", "p1.2", "p01.10")] == [0, 1, 9, 1, 15]
    assert [thread_index(t) for t in ("0", "", "zz", "p1.", "p1.0")] == [None] * 5


def test_gdb_thread_names_map_to_stub_ids():
    assert stub_thread("Thread 1.2") == "p1.2"
    assert stub_thread("Thread 1.16") == "p1.10"     # gdb prints decimal, the stub's ids are hex
    assert stub_thread("Thread 5") == "05"
    assert stub_thread("process 7") is None


def test_info_registers_all_splits_by_cpu_with_crlf():
    sections = parse_info_registers_all(MONITOR)
    assert sorted(sections) == [0, 1, 2]
    assert sections[1].segments["cs"].base == 0xFFFF0000 and sections[1].halted is True
    assert sections[0].segments["cs"].flags == 0x00CF9B00 and sections[0].halted is False
    assert sections[2].control["cr0"] == 0x33


# ---- the RSP backend: one pipelined exchange, exact packets -----------------------------------------

def test_read_cpus_reads_every_thread_with_hg_then_g(stub_target):
    stub, t = stub_target()
    cpus = t.read_cpus(TIMEOUT)
    assert [(c.thread, c.index) for c in cpus.cpus] == [("01", 0), ("02", 1), ("03", 2)]
    assert [c.registers["rax"] for c in cpus.cpus] == [0x1111, 0x2222, 0x3333]
    assert [c.registers.pc for c in cpus.cpus] == [0x82584A, 0xFFFFFFF0, 0xFEC9D57]
    assert [c.halted for c in cpus.cpus] == [False, True, True]
    assert cpus.focus == "01" and not cpus.problems
    assert [c.halted_source for c in cpus.cpus] == ["qThreadExtraInfo"] * 3
    after = stub.received[stub.received.index(b"?") + 1:]
    assert after[:8] == [b"qfThreadInfo"] + [b"qsThreadInfo"] * 7
    assert after[8:18] == [b"Hg01", b"g", b"qThreadExtraInfo,01", b"Hg02", b"g", b"qThreadExtraInfo,02",
                           b"Hg03", b"g", b"qThreadExtraInfo,03", b"Hg01"]
    # Each CPU's segment caches from the monitor, the focus (CPU 0) last: it stays the monitor's CPU.
    assert after[18:] == [qrcmd("cpu 1"), qrcmd("info registers"), qrcmd("cpu 2"), qrcmd("info registers"),
                          qrcmd("cpu 0"), qrcmd("info registers")]


def test_second_read_is_one_pipelined_exchange_and_rereads_only_cpus_that_ran(stub_target):
    stub, t = stub_target()
    t.read_cpus(TIMEOUT)
    stub.received.clear()
    stub.hold = 14          # the stub answers nothing before the whole batch has arrived
    cpus = t.read_cpus(TIMEOUT)
    assert not stub.stalled
    assert stub.received == ([b"qfThreadInfo"] + [b"qsThreadInfo"] * 3
                             + [b"Hg01", b"g", b"qThreadExtraInfo,01", b"Hg02", b"g", b"qThreadExtraInfo,02",
                                b"Hg03", b"g", b"qThreadExtraInfo,03", b"Hg01"])
    assert [c.registers["rax"] for c in cpus.cpus] == [0x1111, 0x2222, 0x3333]
    assert [c.registers.cs.base for c in cpus.cpus] == [0, 0xFFFF0000, 0]      # kept from the first read
    # CPU 2 ran (its `g` changed): only its monitor text is read again.
    stub.hold = 0
    stub.g["03"] = g_reply(0xFEC9D59, 0x33, 0x1F000, 0x10, rax=0x3334)
    stub.received.clear()
    cpus = t.read_cpus(TIMEOUT)
    assert stub.received[14:] == [qrcmd("cpu 2"), qrcmd("info registers")]
    assert cpus.cpus[2].registers["rax"] == 0x3334 and cpus.cpus[2].registers.cs.flags == 0x00CF9B00


def test_thread_that_vanishes_is_a_problem_not_an_exception(stub_target):
    stub, t = stub_target()
    stub.vanished = {"03"}          # listed, then Hg03 answers E22; `g` would give thread 02's registers
    cpus = t.read_cpus(TIMEOUT)
    assert [c.index for c in cpus.cpus] == [0, 1, 2]
    gone = cpus.cpus[2]
    assert gone.registers is None and "vanished" in gone.problem and "E22" in gone.problem
    assert cpus.cpus[1].registers["rax"] == 0x2222
    views = cpu_views(cpus, BOOT)
    assert views[2].state == CpuState.UNKNOWN and "vanished" in views[2].state_source
    # The session goes on: the focus thread still reads.
    assert t.read_registers(TIMEOUT)["rax"] == 0x1111


def test_stop_on_an_ap_focuses_reads_on_it(stub_target):
    stub, t = stub_target(stop=b"T05thread:03;")
    assert t.focus == "03"
    regs = t.read_registers(TIMEOUT)
    # g of thread 03 with CPU#2's segment cache (not the monitor's default CPU#0)
    assert regs["rax"] == 0x3333 and regs.cs.flags == 0x00CF9B00 and regs.pc == 0xFEC9D57
    assert t.read_cpus(TIMEOUT).focused().index == 2


def test_step_steps_the_selected_thread_with_vcont(stub_target):
    stub, t = stub_target()
    t.select_thread("02")
    ev = t.step(TIMEOUT)
    assert stub.received[-1] == b"vCont;s:02"
    assert ev.reason == "step" and ev.thread == "02" and t.focus == "02"


def test_step_without_vcont_is_plain_s(stub_target):
    stub, t = stub_target(vcont=False)
    t.step(TIMEOUT)
    assert stub.received[-1] == b"s"


# ---- the session over the stub: an AP hits a breakpoint ----------------------------------------------

def test_session_names_the_ap_that_hit_a_breakpoint_and_steps_the_selected_cpu(stub_target):
    from inspector.image import load_image
    from inspector.live.session import Session
    from tests.realdata import bookworm

    stub, t = stub_target()
    session = Session(t, load_image(bookworm("OVMF_CODE_4M.fd")), call_timeout=TIMEOUT)
    first = session.current()
    assert first.cpu == 0 and [c.state for c in first.cpus] == ["running", "wait-for-sipi", "halted"]
    session.add_breakpoint("0xfec9d57")
    hit = session.cont(timeout=TIMEOUT)            # the stub answers `c` with T05thread:03;
    assert hit.reason == "breakpoint" and hit.cpu == 2
    assert (hit.linear_rip, hit.registers["rax"]) == (0xFEC9D57, 0x3333)
    assert "CPU 2 hit this breakpoint, not the boot CPU (CPU 0)" in hit.problems
    ap1 = session.select_cpu(1)
    assert (ap1.index, ap1.cpu, ap1.linear_rip, ap1.registers["rax"]) == (hit.index, 1, 0xFFFFFFF0, 0x2222)
    sent = len(stub.received)
    refused = session.step()                       # CPU 1 waits for its SIPI: not stepped
    assert "CPU 1 is wait-for-sipi" in refused.problems[-1]
    assert not any(p.startswith((b"vCont", b"s")) for p in stub.received[sent:])
    session.select_cpu(0)
    stepped = session.step()
    assert b"vCont;s:01" in stub.received
    assert stepped.reason == "step" and stepped.cpu == 0 and stepped.registers["rax"] == 0x1111
    assert "no CPU 9" in session.select_cpu(9).problems[-1]


def _session(stub_target, **kw):
    from inspector.image import load_image
    from inspector.live.session import Session
    from tests.realdata import bookworm

    stub, t = stub_target(**kw)
    return stub, t, Session(t, load_image(bookworm("OVMF_CODE_4M.fd")), call_timeout=TIMEOUT)


def test_the_stop_is_about_the_cpu_the_stop_reply_names_not_a_focus_left_over(stub_target):
    # The reset-vector walk: CPU 0 hits a breakpoint while the target's focus is still another CPU
    # (one selected before, or a backend that could not map the stop's thread and kept its old focus).
    stub, t, session = _session(stub_target)
    session.current()
    session.add_breakpoint("0x82584a")
    stub.cont_reply = b"T05thread:01;"
    cont = t.cont

    def cont_leaving_the_focus(timeout):
        ev = cont(timeout)
        t.focus = "03"          # what a lagging focus looks like to the Session
        return ev
    t.cont = cont_leaving_the_focus
    hit = session.cont(timeout=TIMEOUT)
    assert (hit.reason, hit.cpu, hit.linear_rip, hit.registers["rax"]) == ("handoff", 0, 0x82584A, 0x1111)
    assert not [p for p in hit.problems if "hit this" in p]
    assert t.focus == "01"      # virtual reads and step() follow the CPU the stop is about


def test_stop_note_names_only_an_int_cpu():
    # The text "0" (or None, or False) is no CPU: no "CPU 0 hit this breakpoint, not the boot CPU (CPU 0)".
    assert [stop_note("breakpoint", c, 4) for c in ("0", None, False, "2", -1)] == [None] * 5
    assert stop_note("handoff", 3, 4) == "CPU 3 hit this handoff, not the boot CPU (CPU 0)"
    assert stop_note("breakpoint", 3, 1) is None


def test_copies_of_a_stop_share_no_list_with_it(stub_target):
    stub, t, session = _session(stub_target)
    session.add_breakpoint("0xfec9d57")
    hit = session.cont(timeout=TIMEOUT)            # CPU 2 hit it: the stop carries the note
    problems, rax = list(hit.problems), hit.cpus[0].registers["rax"]
    ap1 = session.select_cpu(1)
    refused = session.step()                       # CPU 1 waits for a SIPI: the stop again, one problem more
    for copy in (ap1, refused):
        assert copy.problems is not hit.problems and copy.cpus is not hit.cpus
        assert all(a is not b and a.registers is not b.registers for a, b in zip(copy.cpus, hit.cpus))
    ap1.problems.append("added to the copy")
    ap1.cpus[0].registers["rax"] = 0
    ap1.cpus.pop()
    assert (hit.problems, hit.cpus[0].registers["rax"], len(hit.cpus)) == (problems, rax, 3)
    assert "added to the copy" not in refused.problems and len(refused.cpus) == 3


def test_gdb_sigtrap_it_did_not_match_to_a_breakpoint_is_a_breakpoint_as_on_rsp():
    from inspector.live.gdbmi import GdbTarget

    t = object.__new__(GdbTarget)
    t._watchpoints = {}
    trap = {"reason": "signal-received", "signal-name": "SIGTRAP", "thread-id": "1"}
    assert (t._stop_kind(trap, False).reason, t._stop_kind(trap, True).reason) == ("breakpoint", "step")
    assert rsp.parse_stop(b"T05thread:01;", "c").reason == "breakpoint"
    assert t._stop_kind({"reason": "signal-received", "signal-name": "SIGINT"}, False).reason == "interrupt"
    assert t._stop_kind({"reason": "signal-received", "signal-name": "SIGSEGV"}, False).reason == "signal"


def test_gdb_stop_on_a_thread_gdb_had_not_listed_drops_the_old_focus():
    from inspector.live.gdbmi import GdbTarget

    t = object.__new__(GdbTarget)
    t._gdb_ids, t._watchpoints, t.focus = {"01": "1", "02": "2", "03": "3"}, {}, "03"
    ev = t._stop_event({"reason": "breakpoint-hit", "thread-id": "7"}, False)
    assert ev.thread is None and t.focus is None        # not CPU 2's thread from the stop before
    ev = t._stop_event({"reason": "breakpoint-hit", "thread-id": "2"}, False)
    assert ev.thread == "02" and t.focus == "02"


class FakeGdb:
    """The MI answers gdb 13 gives for QEMU's threads (gdb manual, "GDB/MI Thread Commands" and "GDB/MI
    Data Manipulation"): -thread-info with qThreadExtraInfo's text as `details`, register values by
    number, `monitor` output as console stream text in cpu-dump.c's layout. Records every command."""

    NUMBERS = {"rax": 0, "rip": 16, "eflags": 17, "cs": 18, "cr0": 24, "cr3": 26}

    def __init__(self):
        self.sent: list[str] = []
        self.rax = {"1": 0x1111, "2": 0x2222, "3": 0x3333}
        self.mon_cpu = 0

    def commands(self, cmds, timeout):
        self.sent += cmds
        return [self.answer(c) for c in cmds]

    def answer(self, cmd: str) -> dict:
        if cmd == "-thread-info":
            return {"payload": {"current-thread-id": "1", "threads": [
                {"id": gid, "target-id": f"Thread 1.{gid}", "details": EXTRA["%02x" % int(gid)]} for gid in "123"]},
                "stream": ""}
        if cmd.startswith("-data-list-register-values --thread "):
            gid = cmd.split()[2]
            g = bytes.fromhex(CPU_G["%02x" % int(gid)].decode())
            rip, cs = struct.unpack_from("<Q", g, 128)[0], struct.unpack_from("<I", g, 140)[0]
            values = {"rax": self.rax[gid], "rip": rip, "eflags": 2, "cs": cs,
                      "cr0": struct.unpack_from("<Q", g, 176)[0], "cr3": struct.unpack_from("<Q", g, 192)[0]}
            return {"payload": {"register-values": [{"number": str(self.NUMBERS[n]), "value": hex(v)}
                                                    for n, v in values.items()]}, "stream": ""}
        if "monitor cpu " in cmd:
            self.mon_cpu = int(cmd.split("monitor cpu ")[1].rstrip('"'))
            return {"payload": {}, "stream": ""}
        if "monitor info registers" in cmd:
            return {"payload": {}, "stream": "\r\n" + SECTIONS[self.mon_cpu]}
        return {"payload": {}, "stream": ""}


def fake_gdb_target():
    from inspector.live.gdbmi import GdbTarget

    fake = FakeGdb()
    t = object.__new__(GdbTarget)
    t._cv, t._running, t._dead, t._closed = threading.Condition(), False, None, False
    t._reg_numbers, t._gdb_ids, t._mon_cache, t._known, t._known_problems = dict(FakeGdb.NUMBERS), {}, {}, {}, []
    t._stops, t._stop_count, t.focus = collections.deque(), 0, "01"
    t._commands = fake.commands
    t._learn_threads(fake.answer("-thread-info")["payload"], [])
    return fake, t


def running(t, gid: str) -> None:
    t._record({"type": "notify", "message": "running", "payload": {"thread-id": gid}})
    t._record({"type": "notify", "message": "stopped", "payload": {"thread-id": "1"}})


def test_gdb_reads_again_only_the_threads_gdb_resumed():
    fake, t = fake_gdb_target()
    first = t.read_cpus(TIMEOUT)
    assert [(c.index, c.registers["rax"], c.halted) for c in first.cpus] == [(0, 0x1111, False), (1, 0x2222, True),
                                                                            (2, 0x3333, True)]
    assert fake.sent[0] == "-thread-info" and len([c for c in fake.sent if "--thread" in c]) == 3
    # A stop re-read with nothing run: nothing asked, the same reads.
    fake.sent.clear()
    assert [c.registers["rax"] for c in t.read_cpus(TIMEOUT).cpus] == [0x1111, 0x2222, 0x3333]
    assert fake.sent == []
    # A stepi under scheduler-locking: gdb says `*running,thread-id="1"`; thread 1 alone is read again,
    # with its monitor text (segment caches and HLT=); the APs are as they were.
    running(t, "1")
    fake.rax["1"] = 0x1112
    fake.rax["3"] = 0x9999          # not resumed: cannot have changed, so not asked
    cpus = t.read_cpus(TIMEOUT)
    assert [c.registers["rax"] for c in cpus.cpus] == [0x1112, 0x2222, 0x3333]
    assert [c.halted for c in cpus.cpus] == [False, True, True] and cpus.focus == "p1.1"
    assert cpus.cpus[0].halted_source == "info registers HLT=" and cpus.cpus[0].registers.cs.flags == 0x00CF9B00
    assert [c for c in fake.sent if not c.startswith("-interpreter-exec")] == [
        f"-data-list-register-values --thread 1 --skip-unavailable x {' '.join(map(str, sorted(FakeGdb.NUMBERS.values())))}",
        "-thread-select 1"]
    assert [c for c in fake.sent if c.startswith("-interpreter-exec")] == [
        '-interpreter-exec console "monitor cpu 0"', '-interpreter-exec console "monitor info registers"']
    # A continue resumes every thread: all of them read again, from -thread-info on.
    running(t, "all")
    fake.sent.clear()
    assert [c.registers["rax"] for c in t.read_cpus(TIMEOUT).cpus] == [0x1112, 0x2222, 0x9999]
    assert fake.sent[0] == "-thread-info"


def test_gdb_command_typed_in_the_console_makes_every_thread_read_again():
    fake, t = fake_gdb_target()
    t._console = lambda line, timeout: ""
    t.read_cpus(TIMEOUT)
    t.console("set $rax = 5")           # gdb writes the register: no *running, yet thread 1 differs
    fake.rax["1"] = 5
    fake.sent.clear()
    assert t.read_cpus(TIMEOUT).cpus[0].registers["rax"] == 5 and fake.sent[0] == "-thread-info"
    fake.sent.clear()
    t.monitor("system_reset")
    t.read_cpus(TIMEOUT)
    assert fake.sent[0] == "-thread-info"


# ---- per-CPU state ---------------------------------------------------------------------------------

def regs_from(index: int, thread: str):
    gpr = rsp.RspTarget._parse_g(type("L", (), {"layout": rsp.X86_64_REGISTERS})(), bytes(CPU_G[thread]))
    return merge_registers(gpr, parse_info_registers_all(MONITOR)[index])


def test_state_from_hlt_and_reset_state():
    assert cpu_state(regs_from(0, "01"), False)[0] == CpuState.RUNNING
    assert cpu_state(regs_from(1, "02"), True)[0] == CpuState.WAIT_FOR_SIPI
    assert cpu_state(regs_from(2, "03"), True)[0] == CpuState.HALTED
    # The BSP at reset is at the reset state too, but not halted: running.
    assert cpu_state(regs_from(1, "02"), False)[0] == CpuState.RUNNING
    assert cpu_state(regs_from(0, "01"), None)[0] == CpuState.UNKNOWN


def test_halted_cpu_is_not_stepped_and_ap_breakpoint_is_named():
    view = CpuView(1, "02", "real", 0xFFFFFFF0, "reset", None, CpuState.WAIT_FOR_SIPI, {}, "x")
    assert "CPU 1 is wait-for-sipi" in step_refusal(view)
    assert step_refusal(CpuView(0, "01", "prot32", 0, "sec", None, CpuState.RUNNING, {})) is None
    assert stop_note("breakpoint", 2, 4) == "CPU 2 hit this breakpoint, not the boot CPU (CPU 0)"
    assert stop_note("breakpoint", 0, 4) is None and stop_note("step", 2, 4) is None


# ---- record / replay -----------------------------------------------------------------------------

def test_recording_keeps_cpus_and_replay_selects_them(tmp_path):
    cpus = cpu_views(CpuSet([CpuRead("01", 0, regs_from(0, "01"), False), CpuRead("02", 1, regs_from(1, "02"), True)],
                            "01"), BOOT)
    stop = Stop(0, "handoff", "pei-core", "prot32", 0x82584A, {"rip": 0x82584A}, module="PeiCore", cpus=cpus, cpu=0,
                disassembly=[(0x82584A, "push ebp")])

    class One:
        live = True

        def current(self):
            return stop

        def close(self):
            pass
    rec = Recorder(One(), tmp_path / "r.jsonl")
    rec.current()
    rec.close()
    line = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[1])["stop"]
    assert line["cpu"] == 0 and [c["state"] for c in line["cpus"]] == ["running", "wait-for-sipi"]
    replay = ReplaySession(tmp_path / "r.jsonl")
    assert [c.to_json() for c in replay.current().cpus] == [c.to_json() for c in cpus]
    other = replay.select_cpu(1)
    assert (other.cpu, other.linear_rip, other.mode, other.disassembly) == (1, 0xFFFFFFF0, "real", [])
    assert replay.current() is other
    assert replay.select_cpu(0).linear_rip == 0x82584A
    assert "no CPU 7" in replay.select_cpu(7).problems[-1]


def test_recording_keeps_each_cpus_disassembly_and_replay_shows_it(stub_target, tmp_path):
    stub, t, session = _session(stub_target)
    # CPU 1 waits for its SIPI at the reset vector (real mode, no paging: read physically); CPU 2 runs
    # 32-bit code with paging on (CR0.PG): read through its own thread (Hg03, then `m`).
    stub.g["03"] = g_reply(0xFEC9D57, 0x80000033, 0x1F000, 0x10, rax=0x3333)
    # One-byte instructions (Intel SDM vol. 2): 90 nop, F4 hlt, FA cli, FB sti, FC cld; nop elsewhere.
    stub.memory = {0xFFFFFFF0: 0xFA, 0xFFFFFFF1: 0xFC, 0xFFFFFFF2: 0xF4,
                   0xFEC9D57: 0xF4, 0xFEC9D58: 0xFB, 0xFEC9D59: 0xF4}
    rec = Recorder(session, tmp_path / "r.jsonl")
    assert session.record_cpu_disassembly
    stop = rec.current()
    assert stop.cpu == 0 and t.focus == "01"        # the focus is back on the stop's CPU
    assert b"Hg03" in stub.received
    rec.close()
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()[1:]]
    (line,) = [x["stop"] for x in lines if "stop" in x]
    assert [[(d["address"], d["text"]) for d in c["disassembly"]] for c in line["cpus"]] == [
        [],                                                                   # the stop's own: Stop.disassembly
        [(0xFFFFFFF0, "cli"), (0xFFFFFFF1, "cld"), (0xFFFFFFF2, "hlt"), (0xFFFFFFF3, "nop")],
        [(0xFEC9D57, "hlt"), (0xFEC9D58, "sti"), (0xFEC9D59, "hlt"), (0xFEC9D5A, "nop")]]
    replay = ReplaySession(tmp_path / "r.jsonl")
    assert replay.select_cpu(1).disassembly == [(0xFFFFFFF0, "cli"), (0xFFFFFFF1, "cld"), (0xFFFFFFF2, "hlt"),
                                                (0xFFFFFFF3, "nop")]
    assert replay.select_cpu(2).disassembly[:2] == [(0xFEC9D57, "hlt"), (0xFEC9D58, "sti")]
    assert replay.select_cpu(0).disassembly == stop.disassembly


def test_a_live_session_not_recording_reads_no_other_cpus_code(stub_target):
    stub, t, session = _session(stub_target)
    stub.memory = {}
    stop = session.current()
    assert not session.record_cpu_disassembly and [c.disassembly for c in stop.cpus] == [[], [], []]


def test_recording_with_more_disassembly_lines_than_read_is_cut(tmp_path):
    head = {"format": "fwinspect-recording", "version": 1}
    cpu = {"index": 1, "thread": "02", "mode": "real", "linear_rip": 0xFFFFFFF0, "phase": "reset", "state": "halted",
           "registers": {}, "disassembly": [{"address": i, "text": "nop"} for i in range(1000)]}
    stop = {"index": 0, "reason": "reset", "phase": "reset", "mode": "real", "linear_rip": 0xFFFFFFF0,
            "registers": {"rip": 0xFFF0}, "disassembly": [], "problems": [], "tree": None, "cpus": [cpu]}
    p = tmp_path / "many.jsonl"
    p.write_text(json.dumps(head) + "\n" + json.dumps({"stop": stop}) + "\n")
    (s,) = load_recording(p)
    assert len(s.cpus[0].disassembly) == 64 and s.cpus[0].disassembly[63] == (63, "nop")


def test_current_after_select_cpu_shows_the_selected_cpu_and_keeps_the_one_that_stopped(stub_target, tmp_path):
    stub, t, session = _session(stub_target)
    session.add_breakpoint("0xfec9d57")
    rec = Recorder(session, tmp_path / "r.jsonl")
    hit = rec.cont(timeout=TIMEOUT)                # CPU 2 hit the breakpoint
    assert (hit.cpu, hit.about) == (2, 2)
    rec.select_cpu(1)
    live = session.current()
    assert (live.index, live.cpu, live.about, live.linear_rip) == (hit.index, 1, 2, 0xFFFFFFF0)
    assert live.to_json()["about"] == 2 and live.reason == "breakpoint"
    rec.close()
    replay = ReplaySession(tmp_path / "r.jsonl")
    (recorded,) = replay.stops
    assert (recorded.cpu, recorded.about) == (2, 2)
    replay.select_cpu(1)
    shown = replay.current()
    assert (shown.index, shown.cpu, shown.about, shown.linear_rip) == (hit.index, 1, 2, 0xFFFFFFF0)
    assert replay.stops[0] is recorded and (recorded.cpu, recorded.about) == (2, 2)
    back = replay.select_cpu(2)
    assert back is recorded and replay.current() is recorded
    # A stop first recorded as shown for another CPU keeps, replayed, the CPU that stopped.
    stub, t, session = _session(stub_target)
    rec = Recorder(session, tmp_path / "selected.jsonl")
    rec.select_cpu(2)
    rec.close()
    (recorded,) = ReplaySession(tmp_path / "selected.jsonl").stops
    assert (recorded.cpu, recorded.about, recorded.linear_rip) == (2, 0, 0xFEC9D57)


def test_old_recording_without_cpus_loads(tmp_path):
    head = {"format": "fwinspect-recording", "version": 1}
    stop = {"index": 0, "reason": "reset", "phase": "reset", "mode": "real", "linear_rip": 0xFFFFFFF0,
            "registers": {"rip": 0xFFF0}, "disassembly": [], "problems": [], "tree": None}
    p = tmp_path / "old.jsonl"
    p.write_text(json.dumps(head) + "\n" + json.dumps({"stop": stop}) + "\n")
    (s,) = load_recording(p)
    assert s.cpus == [] and s.cpu == 0 and s.about == 0
    # A recording with CPUs but from before their disassembly was kept: loads, none to show.
    stop["cpus"] = [{"index": 1, "thread": "02", "mode": "real", "linear_rip": 0xFFFFFFF0, "phase": "reset",
                     "state": "wait-for-sipi", "registers": {"rip": 0xFFF0}}]
    p.write_text(json.dumps(head) + "\n" + json.dumps({"stop": stop}) + "\n")
    (s,) = load_recording(p)
    assert s.cpus[0].disassembly == [] and ReplaySession(p).select_cpu(1).disassembly == []


def test_recording_with_a_malformed_cpu_names_the_line(tmp_path):
    head = {"format": "fwinspect-recording", "version": 1}
    stop = {"index": 0, "reason": "reset", "phase": "reset", "mode": "real", "linear_rip": 0, "registers": {},
            "disassembly": [], "problems": [], "tree": None, "cpus": [{"index": "zero"}]}
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(head) + "\n" + json.dumps({"stop": stop}) + "\n")
    with pytest.raises(ValueError, match=r"line 2: stop.cpus\[0\].registers"):
        load_recording(p)


def test_monitor_without_cpu_command_falls_back_to_info_registers_all(stub_target):
    stub, t = stub_target()
    answer = stub.answer

    def no_cpu_command(p: bytes):
        if p == qrcmd("cpu 1") or p == qrcmd("cpu 2") or p == qrcmd("cpu 0"):
            return [frame(b"O" + b"unknown command: 'cpu'\r\n".hex().encode()), frame(b"OK")]
        return answer(p)
    stub.answer = no_cpu_command
    cpus = t.read_cpus(TIMEOUT)
    assert stub.received[-1] == qrcmd("info registers -a")
    assert [c.registers.cs.base for c in cpus.cpus] == [0, 0xFFFF0000, 0]


def test_hostile_thread_listing_is_bounded_with_problems(stub_target):
    stub, t = stub_target()
    answer = stub.answer

    def hostile(p: bytes):
        if p == b"qfThreadInfo":
            return [frame(b"m01,zz," + b",".join(b"q%d" % i for i in range(50)))]
        if p == b"qsThreadInfo":
            return [frame(b"m02")]           # forever: never `l`
        return answer(p)
    stub.answer = hostile
    cpus = t.read_cpus(TIMEOUT)
    assert [c.thread for c in cpus.cpus] == ["01", "02"]
    assert "malformed thread id 'zz'" in cpus.problems[0]
    assert len(cpus.problems) <= 10 and "listed thread 02 twice: the list ends there" in cpus.problems[-1]


# ---- fwinspect qemu --smp N ---------------------------------------------------------------------------

def test_smp_option_reaches_qemus_command_line(tmp_path, capsys):
    import argparse

    from inspector.live.qemu import QemuProcess
    from inspector.live.script import add_live_arguments, run_qemu, split_qemu_args

    p = argparse.ArgumentParser()
    add_live_arguments(p.add_subparsers())
    a = split_qemu_args(p.parse_args(["qemu", "x.fd", "--smp", "4", "--until", "sec"]))
    assert (a.smp, a.until, a.qemu_args) == (4, "sec", [])
    a = split_qemu_args(p.parse_args(["qemu", "x.fd", "--until", "sec", "--smp", "2", "--", "-m", "512M"]))
    assert (a.smp, a.qemu_args) == (2, ["-m", "512M"])
    image = tmp_path / "x.fd"
    image.write_bytes(b"\xff" * 4096)
    argv = QemuProcess(image, smp=3, workdir=tmp_path).argv()
    assert argv[argv.index("-smp") + 1] == "3"
    assert "-smp" not in QemuProcess(image, workdir=tmp_path).argv()
    # Out of range, or given twice: usage errors (exit 2) before any QEMU starts.
    assert run_qemu(p.parse_args(["qemu", "x.fd", "--smp", "0"])) == 2
    assert "between 1 and" in capsys.readouterr().err
    assert run_qemu(p.parse_args(["qemu", str(image), "--smp", "2", "--", "-smp", "4"])) == 2
    assert "--smp and `-- -smp` both given" in capsys.readouterr().err
