"""RSP wire format and the asyncio protocol of our gdbstub client (split from rsp.py).

Framing `$payload#cs` with acks, escapes (0x7d, byte ^ 0x20), run-length decoding (`X*n`), stop
replies, and `RspProtocol`, which matches replies to requests by position in a FIFO (replies carry
no id), so requests can be pipelined (see rsp.py for the whole story).
"""
from __future__ import annotations

import asyncio
import collections
import re
import threading
from dataclasses import dataclass

import numpy as np

from inspector.live.target import StopEvent, TargetDead, TargetError

# QEMU 7.2 answers qSupported with PacketSize=1000 (4096), which caps an `m` read at 2048 bytes
# (measured: `m…,801` answers E22; the reply is built in QEMU gdbstub/gdbstub.c,
# handle_query_supported); without a PacketSize we assume gdb's own default of 400 bytes of packet.
DEFAULT_PACKET_SIZE = 400
# Requests in flight during a pipelined read; 32 measured 4.7× faster than lock-step (QEMU 7.2
# TCG, paused, loopback), 64 a little faster again here (1 MiB: 16 ms at 32, 15 ms at 64, no
# gain at 128).
PIPELINE_WINDOW = 64
# A packet longer than this is garbage (the stub's own maximum is 4096 in QEMU 7.2, 128 KiB in 10.x).
MAX_PACKET = 1 << 20
# Retransmissions after `-` before the connection is declared broken.
MAX_RETRANSMITS = 5
# target.xml and its includes: a handful of files in QEMU; more means a hostile or broken stub.
MAX_XML_FILES = 16
MAX_XML_BYTES = 1 << 20
# Connecting and the qSupported/target.xml handshake must finish within this (seconds).
CONNECT_TIMEOUT = 5.0
# How often interrupt() re-checks, while another thread runs the loop, that its stop arrived.
INTERRUPT_POLL = 0.01

_COMMENT_RE = re.compile(r"<!--.*?-->", re.S)
_TAG_RE = re.compile(r"<\s*([\w:]+)([^>]*)>")
_ATTR_RE = re.compile(r'([\w:]+)\s*=\s*"([^"]*)"')
_RESERVED_RE = re.compile(rb"[#$}*]")
_WATCH_KIND = {"write": "2", "read": "3", "access": "4"}


def checksum(payload: bytes) -> bytes:
    if len(payload) > 256:
        # numpy sums a 4 KiB reply in ~4 µs against ~24 µs for sum(): 10 ms per MiB read.
        return b"%02x" % (int(np.frombuffer(payload, np.uint8).sum(dtype=np.uint64)) & 0xFF)
    return b"%02x" % (sum(payload) & 0xFF)


def escape(payload: bytes) -> bytes:
    """Escape the bytes RSP reserves (`#$}*`) for sending."""
    if _RESERVED_RE.search(payload) is None:
        return payload          # every request we send is ASCII without them: skip the byte loop
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
    try:
        return _parse_stop(reply.decode("latin-1"), request)
    except ValueError:
        raise TargetError(f"{request}: malformed stop reply {reply[:40]!r}") from None


def _parse_stop(text: str, request: str) -> StopEvent:
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
    thread = watch = None
    if kind == "T":
        # gdb manual, "Stop Reply Packets": `Txx n1:r1;n2:r2;...`; QEMU sends `thread:ID;` naming the
        # vCPU that stopped, then `watch:ADDR;` for a watchpoint (gdbstub/gdbstub.c, gdb_vm_state_change).
        for pair in text[3:].split(";"):
            key, _, value = pair.partition(":")
            if key in ("watch", "rwatch", "awatch") and watch is None:
                watch = (key, int(value, 16))
            elif key == "thread" and value and thread is None:
                thread = value[:40]
    if watch is not None:
        return StopEvent("watchpoint", sig, watch[1], watch[0], text, thread)
    if sig == 2:
        return StopEvent("interrupt", sig, raw=text, thread=thread)
    if sig == 5:
        return StopEvent("step" if request == "s" else "breakpoint", sig, raw=text, thread=thread)
    return StopEvent("signal", sig, raw=text, thread=thread)


def _hex(reply: bytes, what: str) -> bytes:
    try:
        return bytes.fromhex(reply.decode("latin-1"))
    except ValueError:
        raise TargetError(f"{what}: malformed reply {reply[:40]!r}") from None


@dataclass
class _Request:
    future: asyncio.Future
    console: list[bytes] | None = None   # qRcmd: collects the `O` packets
    event: threading.Event | None = None  # set when answered, for threads not running the loop


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
        self.acks = bytearray()

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
        # Acks for every packet in this chunk go out in one write: a syscall per `+` cost
        # 16 ms of a 1 MiB pipelined read (512 replies).
        self.acks = bytearray()
        try:
            self._parse()
        finally:
            if self.acks:
                self._send_raw(bytes(self.acks))

    def _parse(self) -> None:
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
                    self.acks += b"-"
                    continue
                self.acks += b"+"
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
            # A stop nobody asked for (e.g. QMP `cont` + `stop` while attached: QEMU 7.2 then
            # sent an unsolicited T02 on the stub socket, measured here).
            self.unsolicited.append(payload)
            return
        self.pending.popleft()
        if not head.future.done():
            head.future.set_result(payload)
        if head.event is not None:
            head.event.set()

    def _die(self, why: str) -> None:
        if self.dead is None:
            self.dead = why
        while self.pending:
            req = self.pending.popleft()
            if not req.future.done():
                req.future.set_exception(TargetDead(self.dead))
            if req.event is not None:
                req.event.set()
        if self.transport:
            self.transport.close()

    # -- used by the client
    def send(self, payloads: list[bytes], console: bool = False, event: bool = False) -> list[_Request]:
        if self.dead:
            raise TargetDead(self.dead)
        loop = asyncio.get_running_loop()
        reqs, frames = [], []
        for p in payloads:
            f = frame(p)
            frames.append(f)
            self.unacked.append(f)
            req = _Request(loop.create_future(), [] if console else None, threading.Event() if event else None)
            self.pending.append(req)
            reqs.append(req)
        self.transport.write(b"".join(frames))
        return reqs

    def send_interrupt(self) -> None:
        if self.dead:
            raise TargetDead(self.dead)
        self._send_raw(b"\x03")
