"""The default live backend: our own asyncio client of QEMU's gdbstub (GDB Remote Serial Protocol).

Wire format (gdb manual, "Remote Protocol" → "Overview"): `$payload#cs`, cs = sum of the payload
bytes mod 256 in two hex digits; each packet is acknowledged with `+` (or `-`: send it again).
QEMU does not support QStartNoAckMode (FACTS C.1.3), so we ack every reply and expect every
request to be acked. Replies may be run-length encoded (`X*n` = X repeated ord(n)-29 more times)
and binary replies (qXfer) escape `#$}*` as 0x7d, byte ^ 0x20.

Replies carry no request id: they come back in request order, so requests wait in a FIFO. That
is what makes pipelining work: reads of a large range go out back to back (FACTS D.4.3: 4.7×
faster than lock-step) and are matched to their replies by position. A request that timed out
keeps its FIFO slot so that its late reply does not go to the next one.

QEMU specifics (FACTS C.1.3): attaching pauses the VM; any byte received while the VM runs stops
it, so nothing but 0x03 is ever sent to a running guest; `qRcmd` output arrives as hex `O`
packets before `OK`; `Qqemu.PhyMemMode:1` makes `m` read guest-physical memory; a raw `c` on a
Z1 address re-reports the same stop, so cont() steps off a breakpoint first, as gdb does.
"""
from __future__ import annotations

import asyncio
import collections
import socket
import threading
import re
from dataclasses import dataclass, field

from decoders.memory import Unreadable
from inspector.live.target import (DEFAULT_CONT_TIMEOUT, DEFAULT_TIMEOUT, Registers, StopEvent, Target,
                                   TargetDead, TargetError, TargetRunning, TargetTimeout, merge_registers,
                                   parse_info_registers)

# QEMU 7.2 answers qSupported with PacketSize=1000 (4096), which caps an `m` read at 2048 bytes
# (FACTS C.1.3); without a PacketSize we assume gdb's own default of 400 bytes of packet.
DEFAULT_PACKET_SIZE = 400
# Requests in flight during a pipelined read; 32 measured 4.7× faster than lock-step (FACTS D.4.3).
# The socket buffers hold 32 × ~4 KiB replies comfortably.
PIPELINE_WINDOW = 32
# One read_physical/read_virtual call returns at most this much (bounds our memory use).
MAX_READ = 64 << 20
# A packet longer than this is garbage (the stub's own maximum is 4096 in QEMU 7.2, 128 KiB in 10.x).
MAX_PACKET = 1 << 20
# Retransmissions after `-` before the connection is declared broken.
MAX_RETRANSMITS = 5
# target.xml and its includes: a handful of files in QEMU; more means a hostile or broken stub.
MAX_XML_FILES = 16
MAX_XML_BYTES = 1 << 20
# Connecting and the qSupported/target.xml handshake must finish within this (seconds).
CONNECT_TIMEOUT = 5.0

# Register layout of QEMU's i386-64bit.xml (gdbstub/gdb-xml), used when qXfer:features is absent.
FALLBACK_LAYOUT: list[tuple[str, int]] = (
    [(r, 64) for r in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
                       "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip")]
    + [("eflags", 32)] + [(s, 32) for s in ("cs", "ss", "ds", "es", "fs", "gs")]
    + [("fs_base", 64), ("gs_base", 64), ("k_gs_base", 64)]
    + [(c, 64) for c in ("cr0", "cr2", "cr3", "cr4", "cr8", "efer")]
    + [(f"st{i}", 80) for i in range(8)]
    + [(f, 32) for f in ("fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop")]
    + [(f"xmm{i}", 128) for i in range(16)] + [("mxcsr", 32)])

_COMMENT_RE = re.compile(r"<!--.*?-->", re.S)
_TAG_RE = re.compile(r"<\s*([\w:]+)([^>]*)>")
_ATTR_RE = re.compile(r'([\w:]+)\s*=\s*"([^"]*)"')
_WATCH_KIND = {"write": "2", "read": "3", "access": "4"}


def checksum(payload: bytes) -> bytes:
    return b"%02x" % (sum(payload) & 0xFF)


def escape(payload: bytes) -> bytes:
    """Escape the bytes RSP reserves (`#$}*`) for sending."""
    out = bytearray()
    for b in payload:
        if b in b"#$}*":
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


def frame(payload: bytes) -> bytes:
    body = escape(payload)
    return b"$" + body + b"#" + checksum(body)


def run_length_decode(data: bytes) -> bytes:
    """Expand `X*n` (n = repeat count + 29) in a received payload (gdb remote.c read_frame)."""
    if b"*" not in data:
        return data
    out = bytearray()
    i = 0
    while i < len(data):
        b = data[i]
        if b == 0x2A and out and i + 1 < len(data):
            out += out[-1:] * (data[i + 1] - 29)
            i += 2
            continue
        out.append(b)
        i += 1
    return bytes(out)


def unescape(data: bytes) -> bytes:
    if b"}" not in data:
        return data
    out = bytearray()
    it = iter(data)
    for b in it:
        if b == 0x7D:
            nxt = next(it, None)
            if nxt is not None:
                out.append(nxt ^ 0x20)
        else:
            out.append(b)
    return bytes(out)


def parse_stop(reply: bytes, request: str) -> StopEvent:
    """A stop reply (`T05thread:01;`, `T05watch:1000;`, `T02`, `S05`, `W00`, `X09`) as a StopEvent."""
    text = reply.decode("latin-1")
    if not text:
        raise TargetError(f"empty stop reply to {request}")
    kind = text[0]
    if kind in "WX":
        return StopEvent("exited", int(text[1:3] or "0", 16), raw=text)
    if kind == "E":
        raise TargetError(f"{request}: error {text}")
    if kind not in "TS" or len(text) < 3:
        raise TargetError(f"{request}: unexpected stop reply {text!r}")
    sig = int(text[1:3], 16)
    if kind == "T":
        for pair in text[3:].split(";"):
            key, _, value = pair.partition(":")
            if key in ("watch", "rwatch", "awatch"):
                return StopEvent("watchpoint", sig, int(value, 16), key, text)
    if sig == 2:
        return StopEvent("interrupt", sig, raw=text)
    if sig == 5:
        return StopEvent("step" if request == "s" else "breakpoint", sig, raw=text)
    return StopEvent("signal", sig, raw=text)


@dataclass
class _Request:
    future: asyncio.Future
    console: list[bytes] | None = None   # qRcmd: collects the `O` packets


@dataclass
class _Layout:
    regs: list[tuple[str, int]] = field(default_factory=list)   # (name, bitsize) in `g` order


class RspProtocol(asyncio.Protocol):
    """Framing, acks, retransmission and FIFO matching of replies to requests."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.pending: collections.deque[_Request] = collections.deque()
        self.unacked: collections.deque[bytes] = collections.deque()
        self.retransmits = 0
        self.dead: str | None = None
        self.unsolicited: collections.deque[bytes] = collections.deque(maxlen=64)
        self.console: collections.deque[bytes] = collections.deque(maxlen=256)

    # -- asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self._die(f"connection closed{': ' + str(exc) if exc else ''}")

    def eof_received(self):
        self._die("the stub closed the connection")
        return False

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.buf:
            c = self.buf[0]
            if c == 0x2B:  # '+'
                del self.buf[0]
                if self.unacked:
                    self.unacked.popleft()
                self.retransmits = 0
            elif c == 0x2D:  # '-': resend the oldest packet not yet acknowledged
                del self.buf[0]
                self.retransmits += 1
                if self.retransmits > MAX_RETRANSMITS:
                    self._die(f"stub rejected a packet {MAX_RETRANSMITS} times")
                    return
                if self.unacked and self.transport:
                    self.transport.write(self.unacked[0])
            elif c in (0x24, 0x25):  # '$' packet, '%' notification
                end = self.buf.find(b"#")
                if end < 0 or len(self.buf) < end + 3:
                    if len(self.buf) > MAX_PACKET:
                        self._die(f"packet longer than {MAX_PACKET} bytes")
                    return   # wait for the rest
                body = bytes(self.buf[1:end])
                cs = bytes(self.buf[end + 1:end + 3])
                del self.buf[:end + 3]
                if c == 0x25:
                    continue     # notifications are not acknowledged; QEMU sends none
                if checksum(body) != cs.lower():
                    self._send_raw(b"-")
                    continue
                self._send_raw(b"+")
                self._dispatch(run_length_decode(body))
            else:
                del self.buf[0]     # noise between packets (gdb ignores it too)

    # -- internals
    def _send_raw(self, data: bytes) -> None:
        if self.transport and not self.transport.is_closing():
            self.transport.write(data)

    def _dispatch(self, payload: bytes) -> None:
        head = self.pending[0] if self.pending else None
        is_output = payload[:1] == b"O" and payload != b"OK" and len(payload) > 1
        if is_output:
            if head is not None and head.console is not None:
                head.console.append(payload[1:])
            else:
                self.console.append(payload[1:])
            return
        if head is None:
            # A stop nobody asked for (e.g. QMP `stop` while attached, FACTS C.1.3).
            self.unsolicited.append(payload)
            return
        self.pending.popleft()
        if not head.future.done():
            head.future.set_result(payload)

    def _die(self, why: str) -> None:
        if self.dead is None:
            self.dead = why
        while self.pending:
            req = self.pending.popleft()
            if not req.future.done():
                req.future.set_exception(TargetDead(self.dead))
        if self.transport:
            self.transport.close()

    # -- used by the client
    def send(self, payloads: list[bytes], console: bool = False) -> list[_Request]:
        if self.dead:
            raise TargetDead(self.dead)
        loop = asyncio.get_running_loop()
        reqs, frames = [], []
        for p in payloads:
            f = frame(p)
            frames.append(f)
            self.unacked.append(f)
            req = _Request(loop.create_future(), [] if console else None)
            self.pending.append(req)
            reqs.append(req)
        self.transport.write(b"".join(frames))
        return reqs

    def send_interrupt(self) -> None:
        if self.dead:
            raise TargetDead(self.dead)
        self._send_raw(b"\x03")


class _LoopThread:
    """A private asyncio loop in a daemon thread; sync callers wait on it with a timeout."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fwinspect-rsp", daemon=True)
        self.thread.start()

    def call(self, coro, timeout: float):
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            # The coroutine applies `timeout` itself; the margin only catches a wedged loop.
            return fut.result(timeout + 1.0)
        except TimeoutError:
            fut.cancel()
            raise TargetTimeout(f"no answer within {timeout} s") from None

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(2.0)
        if not self.thread.is_alive():
            self.loop.close()


class RspTarget(Target):
    """Target over a direct RSP connection (DESIGN.md: the default backend)."""

    def __init__(self, address: str | tuple[str, int], qemu_pid: int | None = None,
                 timeout: float = CONNECT_TIMEOUT):
        """address: (host, port), "host:port" or a unix-socket path."""
        self.qemu_pid = qemu_pid
        self.address = address
        self._lt = _LoopThread()
        self._proto: RspProtocol | None = None
        self.packet_size = DEFAULT_PACKET_SIZE
        self.features: dict[str, str] = {}
        self.layout = _Layout()
        self._phys_mode: int | None = None
        self._breakpoints: set[int] = set()
        self._watchpoints: set[tuple[int, int, str]] = set()
        self._cont: asyncio.Future | None = None   # the in-flight `c`, while the guest runs
        self._closed = False
        try:
            self._lt.call(self._connect(timeout), timeout)
        except BaseException:
            self._shutdown()
            raise

    # ---- plumbing
    @property
    def max_read(self) -> int:
        # The reply is `$` + 2 hex digits per byte + `#cs`; QEMU 7.2 refuses len*2 > 4096 (E22).
        return max(1, self.packet_size // 2)

    async def _connect(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        addr = self.address
        try:
            if isinstance(addr, str) and ":" not in addr:
                coro = loop.create_unix_connection(RspProtocol, addr)
            else:
                host, port = addr.rsplit(":", 1) if isinstance(addr, str) else addr
                coro = loop.create_connection(RspProtocol, host, int(port))
            transport, proto = await asyncio.wait_for(coro, timeout)
        except (OSError, asyncio.TimeoutError) as e:
            raise TargetDead(f"cannot connect to {addr}: {e}") from None
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._proto = proto
        reply = await self._request(b"qSupported:xmlRegisters=i386;vContSupported+", timeout)
        for item in reply.decode("latin-1").split(";"):
            k, eq, v = item.partition("=")
            if eq:
                self.features[k] = v
            elif k:
                self.features[k.rstrip("+-")] = k[-1:] if k[-1:] in "+-" else "+"
        if "PacketSize" in self.features:
            self.packet_size = max(64, min(int(self.features["PacketSize"], 16), MAX_PACKET))
        await self._request(b"?", timeout)      # the attach stopped the VM; this is its stop reply
        self.layout = await self._read_layout(timeout)

    async def _request(self, payload: bytes, timeout: float, console: bool = False) -> bytes:
        (req,) = self._proto.send([payload], console)
        reply = await self._wait(req.future, timeout, payload)
        if console:
            return reply, b"".join(req.console)
        return reply

    async def _wait(self, fut: asyncio.Future, timeout: float, what: bytes):
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            if self._proto.dead:
                raise TargetDead(self._proto.dead) from None
            raise TargetTimeout(f"{what[:40]!r}: no reply within {timeout} s") from None

    def _call(self, coro, timeout: float, needs_stopped: bool = True):
        if self._closed:
            coro.close()
            raise TargetDead("target closed")
        if self._proto is not None and self._proto.dead:
            coro.close()
            raise TargetDead(self._proto.dead)
        if needs_stopped and self._cont is not None and not self._cont.done():
            coro.close()
            raise TargetRunning("the guest is running; interrupt() it first")
        return self._lt.call(coro, timeout)

    async def _read_layout(self, timeout: float) -> _Layout:
        if self.features.get("qXfer:features:read") != "+":
            return _Layout(list(FALLBACK_LAYOUT))
        regs: list[tuple[str, int]] = []
        files = ["target.xml"]
        seen = 0
        while files and seen < MAX_XML_FILES:
            name = files.pop(0)
            seen += 1
            text = await self._xfer_features(name, timeout)
            # QEMU's target.xml uses `xi:include` without declaring the xi namespace, which an XML
            # parser rejects; the tags are simple enough to pick out with regular expressions.
            # Includes are expanded in document order, which is the register order.
            # QEMU's i386-64bit.xml keeps cs_base/ss_base/... inside <!-- --> (not in `g`).
            text = _COMMENT_RE.sub("", text)
            pos = 0
            for m in _TAG_RE.finditer(text):
                attrs = dict(_ATTR_RE.findall(m[2]))
                if m[1].endswith("include") and "href" in attrs:
                    files.insert(pos, attrs["href"])
                    pos += 1
                elif m[1] == "reg" and "name" in attrs:
                    regs.append((attrs["name"], int(attrs.get("bitsize", "0"))))
        return _Layout(regs or list(FALLBACK_LAYOUT))

    async def _xfer_features(self, annex: str, timeout: float) -> str:
        out = bytearray()
        chunk = max(64, self.packet_size - 16)
        while len(out) < MAX_XML_BYTES:
            reply = await self._request(b"qXfer:features:read:%s:%x,%x" % (annex.encode(), len(out), chunk), timeout)
            if not reply or reply[:1] not in b"ml":
                raise TargetError(f"qXfer:features:read:{annex}: {reply[:40]!r}")
            out += unescape(reply[1:])
            if reply[:1] == b"l":
                break
        return out.decode("utf-8", "replace")

    def _check(self, reply: bytes, what: str) -> None:
        if reply == b"OK":
            return
        if not reply:
            raise TargetError(f"{what}: not supported by the stub")
        raise TargetError(f"{what}: {reply.decode('latin-1')}")

    # ---- registers
    async def _registers(self, timeout: float) -> dict[str, int]:
        reply = await self._request(b"g", timeout)
        if reply[:1] == b"E":
            raise TargetError(f"g: {reply.decode('latin-1')}")
        raw = bytes.fromhex(reply.decode("latin-1"))
        gpr: dict[str, int] = {}
        pos = 0
        for name, bits in self.layout.regs:
            n = bits // 8
            if pos + n > len(raw):
                break
            if bits <= 64:
                gpr[name] = int.from_bytes(raw[pos:pos + n], "little")
            pos += n
        return gpr

    async def _monitor(self, command: str, timeout: float) -> str:
        reply, out = await self._request(b"qRcmd," + command.encode().hex().encode(), timeout, console=True)
        self._check(reply, f"monitor {command}")
        return bytes.fromhex(out.decode("latin-1")).decode("utf-8", "replace")

    def read_registers(self, timeout: float = DEFAULT_TIMEOUT) -> Registers:
        async def both():
            gpr = await self._registers(timeout)
            mon = parse_info_registers(await self._monitor("info registers", timeout))
            return merge_registers(gpr, mon)
        return self._call(both(), timeout)

    def monitor(self, command: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        return self._call(self._monitor(command, timeout), timeout)

    # ---- memory
    async def _set_phys(self, mode: int, timeout: float) -> None:
        if self._phys_mode != mode:
            self._check(await self._request(b"Qqemu.PhyMemMode:%d" % mode, timeout), "Qqemu.PhyMemMode")
            self._phys_mode = mode

    async def _read(self, address: int, size: int, phys: int, timeout: float) -> bytes:
        if size < 0 or size > MAX_READ:
            raise Unreadable(address, size, f"size must be 0..{MAX_READ}")
        if size == 0:
            return b""
        await self._set_phys(phys, timeout)
        step = self.max_read
        chunks = [(a, min(step, address + size - a)) for a in range(address, address + size, step)]
        out = bytearray()
        for w in range(0, len(chunks), PIPELINE_WINDOW):
            window = chunks[w:w + PIPELINE_WINDOW]
            reqs = self._proto.send([b"m%x,%x" % c for c in window])
            for (a, n), req in zip(window, reqs):
                reply = await self._wait(req.future, timeout, b"m")
                if reply[:1] == b"E" or len(reply) != 2 * n:
                    # Drain the rest of the window so the FIFO stays aligned, then report.
                    for r in reqs:
                        await self._wait(r.future, timeout, b"m")
                    raise Unreadable(a, n, f"stub replied {reply[:8].decode('latin-1')!r}")
                out += bytes.fromhex(reply.decode("latin-1"))
        return bytes(out)

    def _read_physical(self, address: int, size: int, timeout: float) -> bytes:
        return self._call(self._read(address, size, 1, timeout), timeout)

    def read_virtual(self, address: int, size: int, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        return self._call(self._read(address, size, 0, timeout), timeout)

    # ---- breakpoints
    def set_breakpoint(self, address: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        # kind 1: the x86 breakpoint length gdb sends; QEMU ignores it for Z1.
        self._check(self._call(self._request(b"Z1,%x,1" % address, timeout), timeout), f"Z1 0x{address:x}")
        self._breakpoints.add(address)

    def remove_breakpoint(self, address: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._check(self._call(self._request(b"z1,%x,1" % address, timeout), timeout), f"z1 0x{address:x}")
        self._breakpoints.discard(address)

    def set_watchpoint(self, address: int, size: int, kind: str = "write", timeout: float = DEFAULT_TIMEOUT) -> None:
        z = _WATCH_KIND[kind].encode()
        self._check(self._call(self._request(b"Z%s,%x,%x" % (z, address, size), timeout), timeout),
                    f"Z{z.decode()} 0x{address:x}")
        self._watchpoints.add((address, size, kind))

    def remove_watchpoint(self, address: int, size: int, kind: str = "write", timeout: float = DEFAULT_TIMEOUT) -> None:
        z = _WATCH_KIND[kind].encode()
        self._check(self._call(self._request(b"z%s,%x,%x" % (z, address, size), timeout), timeout),
                    f"z{z.decode()} 0x{address:x}")
        self._watchpoints.discard((address, size, kind))

    # ---- run control
    @property
    def running(self) -> bool:
        return self._cont is not None and not self._cont.done()

    async def _step(self, timeout: float) -> StopEvent:
        return parse_stop(await self._request(b"s", timeout), "s")

    async def _step_off_breakpoint(self, timeout: float) -> StopEvent | None:
        """z1 → s → Z1 when the CPU sits on one of our breakpoints (FACTS C.1.3); else None."""
        if not self._breakpoints:
            return None
        mon = parse_info_registers(await self._monitor("info registers", timeout))
        regs = merge_registers(await self._registers(timeout), mon)
        pc = regs.pc
        if pc not in self._breakpoints:
            return None
        self._check(await self._request(b"z1,%x,1" % pc, timeout), "z1")
        try:
            stop = await self._step(timeout)
        finally:
            self._check(await self._request(b"Z1,%x,1" % pc, timeout), "Z1")
        return stop

    async def _resume(self, timeout: float) -> asyncio.Future:
        stop = await self._step_off_breakpoint(timeout)
        if stop is not None and stop.reason != "step":
            fut = asyncio.get_running_loop().create_future()
            fut.set_result(stop)
            return fut
        (req,) = self._proto.send([b"c"])
        self._cont = req.future
        return req.future

    async def _wait_stop(self, timeout: float) -> StopEvent:
        fut = self._cont
        reply = await self._wait(fut, timeout, b"c")
        return reply if isinstance(reply, StopEvent) else parse_stop(reply, "c")

    def resume(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Start the guest and return at once; wait_stop() or interrupt() later."""
        if self.running:
            return
        self._call(self._resume(timeout), timeout)

    def wait_stop(self, timeout: float = DEFAULT_CONT_TIMEOUT) -> StopEvent:
        if self._cont is None:
            raise TargetError("the guest was not resumed")
        return self._call(self._wait_stop(timeout), timeout, needs_stopped=False)

    def cont(self, timeout: float = DEFAULT_CONT_TIMEOUT) -> StopEvent:
        if not self.running:
            fut = self._call(self._resume(min(timeout, DEFAULT_TIMEOUT)), min(timeout, DEFAULT_TIMEOUT))
            if fut is not self._cont:      # stepping off already stopped somewhere else
                return fut.result()
        return self.wait_stop(timeout)

    def step(self, timeout: float = DEFAULT_TIMEOUT) -> StopEvent:
        # `s` from a breakpoint address needs no z1 dance: QEMU executes the one instruction.
        return self._call(self._step(timeout), timeout)

    def interrupt(self, timeout: float = DEFAULT_TIMEOUT) -> StopEvent:
        if not self.running:
            return StopEvent("interrupt", 2, raw="already stopped")

        async def intr():
            self._proto.send_interrupt()
            return await self._wait_stop(timeout)
        return self._call(intr(), timeout, needs_stopped=False)

    # ---- teardown
    def _shutdown(self) -> None:
        async def close_transport():
            if self._proto and self._proto.transport:
                self._proto.transport.close()
        if self._lt.loop.is_running():
            try:
                self._lt.call(close_transport(), 1.0)
            except TargetTimeout:
                pass    # the loop is wedged; stopping it below still frees the thread
        self._lt.stop()

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self._proto and not self._proto.dead:
                if self.running:
                    self.interrupt(2.0)
                for a in list(self._breakpoints):
                    self.remove_breakpoint(a, 2.0)
                for w in list(self._watchpoints):
                    self.remove_watchpoint(*w, timeout=2.0)
        except TargetError:
            pass        # dead or wedged: nothing left to clean on the stub side
        finally:
            self._closed = True
            self._shutdown()

    def detach(self) -> None:
        if self._closed:
            return
        try:
            if self._proto and not self._proto.dead:
                if self.running:
                    self.interrupt(2.0)
                self._call(self._request(b"D", 2.0), 2.0)
        except TargetError:
            pass        # already gone: detaching is moot
        finally:
            self._closed = True
            self._shutdown()
