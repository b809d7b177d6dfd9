"""The default live backend: our own asyncio client of QEMU's gdbstub (GDB Remote Serial Protocol).

Wire format (gdb manual, "Remote Protocol" → "Overview"): `$payload#cs`, cs = sum of the payload
bytes mod 256 in two hex digits; each packet is acknowledged with `+` (or `-`: send it again).
QEMU does not support QStartNoAckMode (gdbstub/internals.h: "We currently don't support a
negotiated QStartNoAckMode"), so we ack every reply and expect every request to be acked.
Replies may be run-length encoded (`X*n` = X repeated ord(n)-29 more times) and binary replies
(qXfer) escape `#$}*` as 0x7d, byte ^ 0x20.

Replies carry no request id: they come back in request order, so requests wait in a FIFO. That
is what makes pipelining work: reads of a large range go out back to back (32 in flight
measured 4.7× faster than lock-step here, QEMU 7.2 TCG) and are matched to their replies by
position. A request that timed out keeps its FIFO slot so that its late reply does not go to
the next one.

QEMU specifics: attaching pauses the VM (gdbstub/system.c, gdb_chr_event); any byte received
while the VM runs stops it (gdbstub/gdbstub.c, gdb_read_byte), so nothing but 0x03 is ever sent
to a running guest; `qRcmd` output arrives as hex `O` packets before `OK` (gdbstub/system.c,
gdb_handle_query_rcmd); `Qqemu.PhyMemMode:1` makes `m` read guest-physical memory (QEMU
docs/system/gdb.rst); a raw `c` on a Z1 address re-reports the same stop (measured on QEMU 7.2:
six times in a row), so cont() steps off a breakpoint first, as gdb does.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import re
import socket
import threading
import time

from decoders.memory import Unreadable, check_read
from inspector.live.target import (DEFAULT_CONT_TIMEOUT, DEFAULT_TIMEOUT, MAX_THREADS, X86_64_REGISTERS, CpuRead,
                                   CpuSet, MonitorRegisters, Registers, StopEvent, Target, TargetDead, TargetError,
                                   TargetRunning, TargetTimeout, merge_registers, monitor_for,
                                   parse_info_registers_all, thread_extra_halted, thread_index)
from inspector.live.rspwire import (  # noqa: F401 - re-exported: the wire helpers' old home
    CONNECT_TIMEOUT,
    DEFAULT_PACKET_SIZE,
    INTERRUPT_POLL,
    MAX_PACKET,
    MAX_XML_BYTES,
    MAX_XML_FILES,
    PIPELINE_WINDOW,
    RspProtocol,
    _ATTR_RE,
    _COMMENT_RE,
    _TAG_RE,
    _WATCH_KIND,
    _hex,
    checksum,
    escape,
    frame,
    parse_stop,
    run_length_decode,
    unescape,
)


class _Driver:
    """Runs the client's asyncio loop on the calling thread, one caller at a time.

    A dedicated loop thread would cost two thread hand-offs per request (~90 µs here, doubling an
    8-byte read); running the loop in the caller keeps a request near the socket round trip. The
    lock serialises callers; interrupt() reaches a loop another thread is running with
    call_soon_threadsafe (see RspTarget.interrupt)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.lock = threading.Lock()
        self.owner: int | None = None

    def call(self, coro, timeout: float):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            # Called from async code (an event loop already runs on this thread): run the
            # request on a helper thread so the two loops do not nest.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                return pool.submit(self.call, coro, timeout).result()
        # The coroutine applies `timeout` itself; the margin only covers waiting for the lock.
        if not self.lock.acquire(timeout=timeout + 1.0):
            coro.close()
            raise TargetTimeout(f"the target is busy in another thread for more than {timeout} s")
        self.owner = threading.get_ident()
        try:
            return self.loop.run_until_complete(coro)
        finally:
            self.owner = None
            self.lock.release()

    @property
    def busy(self) -> bool:
        return self.owner is not None

    def stop(self) -> None:
        with self.lock:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()


# Every CPU's segment caches, control registers and HLT flag in one monitor command (QEMU
# monitor/hmp-cmds.c, hmp_info_registers with -a): the fallback when `cpu N` does not select a CPU.
INFO_REGISTERS_ALL = "info registers -a"
# Problems noted about one thread listing (malformed ids); more are not worth a line each.
MAX_LISTING_PROBLEMS = 8
# Where a vCPU's halted flag came from (CpuRead.halted_source).
EXTRA_SOURCE = "qThreadExtraInfo"
MONITOR_SOURCE = "info registers HLT="


@functools.lru_cache(maxsize=8)
def _int_slots(layout: tuple[tuple[str, int], ...]) -> list[tuple[str, int, int]]:
    """(name, start, end) in a `g` reply of the registers of at most 64 bits, for a layout in `g`
    order: computed once a layout, as every vCPU's `g` is parsed at every stop."""
    slots, pos = [], 0
    for name, bits in layout:
        n = bits // 8
        if bits <= 64:
            slots.append((name, pos, pos + n))
        pos += n
    return slots


class _Reads:
    """What one pipelined read of the vCPUs gave (RspTarget._read_threads)."""

    def __init__(self) -> None:
        self.reads: list[CpuRead] = []
        self.problems: list[str] = []
        self.listed: tuple[list[str], list[str]] = ([], [])


class RspTarget(Target):
    """Target over a direct RSP connection: the default backend."""

    def __init__(self, address: str | tuple[str, int], qemu_pid: int | None = None,
                 timeout: float = CONNECT_TIMEOUT):
        """address: (host, port), "host:port" or a unix-socket path."""
        self.qemu_pid = qemu_pid
        self.address = address
        self._lt = _Driver()
        self._proto: RspProtocol | None = None
        self.packet_size = DEFAULT_PACKET_SIZE
        self.features: dict[str, str] = {}
        self.layout: list[tuple[str, int]] = []     # (name, bitsize) in `g` order
        self._phys_mode: int | None = None
        self._breakpoints: set[int] = set()
        self._watchpoints: set[tuple[int, int, str]] = set()
        self._cont: asyncio.Future | None = None   # the in-flight `c`, while the guest runs
        self._cont_event: threading.Event | None = None   # set (from the loop) when `c` is answered
        self._resuming = False
        self._want_interrupt = False
        self._closed = False
        self.stop_thread: str | None = None     # the thread the last stop reply named
        self._g_thread: str | None = None       # what `Hg` selects in the stub now (None: not known)
        self._threads: list[str] | None = None  # the last thread listing (the vCPUs), for pipelining
        # thread -> (its `g` reply, the monitor's registers read with it): reused while `g` is the same
        self._mon_cache: dict[str, tuple[bytes, MonitorRegisters]] = {}
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
        try:
            self.packet_size = max(64, min(int(self.features.get("PacketSize", "0"), 16) or DEFAULT_PACKET_SIZE,
                                           MAX_PACKET))
        except ValueError:
            raise TargetError(f"qSupported: malformed PacketSize in {reply[:80]!r}") from None
        # The attach stopped the VM; this is its stop reply, naming the current thread.
        try:
            self._stopped_at(parse_stop(await self._request(b"?", timeout), "?"))
        except TargetError:
            pass        # no usable stop reply (a stub that is not QEMU): threads unknown until the first stop
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

    async def _wait_fast(self, fut: asyncio.Future, deadline: float, what: bytes):
        """Like _wait with an absolute deadline and no shield: a read's future may be cancelled on
        timeout (its FIFO slot stays and absorbs the late reply); wait_for + shield cost ~8 µs each."""
        if fut.done():
            return fut.result()
        try:
            async with asyncio.timeout_at(deadline):
                return await fut
        except TimeoutError:
            if self._proto.dead:
                raise TargetDead(self._proto.dead) from None
            raise TargetTimeout(f"{what[:40]!r}: no reply in time") from None

    def _call(self, coro, timeout: float, needs_stopped: bool = True):
        if self._closed:
            coro.close()
            raise TargetDead("target closed")
        if self._proto is not None and self._proto.dead:
            coro.close()
            raise TargetDead(self._proto.dead)
        if needs_stopped and self._cont is not None and not self._cont.done() and not self._resuming:
            coro.close()
            raise TargetRunning("the guest is running; interrupt() it first")
        return self._lt.call(coro, timeout)

    async def _read_layout(self, timeout: float) -> list[tuple[str, int]]:
        """(name, bitsize) in `g` order from target.xml and its includes (gdb manual, "Target
        Description Format"): document order, a `regnum` attribute restarting the numbering."""
        if self.features.get("qXfer:features:read") != "+":
            return list(X86_64_REGISTERS)
        regs: list[tuple[int, str, int]] = []
        budget = [MAX_XML_FILES]

        async def expand(annex: str) -> None:
            budget[0] -= 1
            if budget[0] < 0:
                raise TargetError(f"target.xml includes more than {MAX_XML_FILES} files")
            # QEMU's target.xml uses `xi:include` without declaring the xi namespace, which an XML
            # parser rejects; the tags are simple enough to pick out with regular expressions.
            # QEMU's i386-64bit.xml keeps cs_base/ss_base/... inside <!-- --> (they are not in `g`).
            text = _COMMENT_RE.sub("", await self._xfer_features(annex, timeout))
            for m in _TAG_RE.finditer(text):
                attrs = dict(_ATTR_RE.findall(m[2]))
                if m[1].endswith("include") and "href" in attrs:
                    await expand(attrs["href"])
                elif m[1] == "reg" and "name" in attrs:
                    try:
                        num = int(attrs["regnum"]) if "regnum" in attrs else (regs[-1][0] + 1 if regs else 0)
                        regs.append((num, attrs["name"], int(attrs.get("bitsize", "0"))))
                    except ValueError:
                        raise TargetError(f"{annex}: malformed <reg {m[2].strip()[:60]}>") from None

        await expand("target.xml")
        return [(name, bits) for _, name, bits in sorted(regs, key=lambda r: r[0])] or list(X86_64_REGISTERS)

    async def _xfer_features(self, annex: str, timeout: float) -> str:
        out = bytearray()
        chunk = max(64, self.packet_size - 16)
        while len(out) < MAX_XML_BYTES:
            reply = await self._request(b"qXfer:features:read:%s:%x,%x" % (annex.encode(), len(out), chunk), timeout)
            if not reply or reply[:1] not in b"ml":
                raise TargetError(f"qXfer:features:read:{annex}: {reply[:40]!r}")
            data = unescape(reply[1:])
            out += data
            if reply[:1] == b"l":
                break
            if not data:        # `m` with nothing in it would loop forever
                raise TargetError(f"qXfer:features:read:{annex}: empty partial reply")
        return out.decode("utf-8", "replace")

    def _check(self, reply: bytes, what: str) -> None:
        if reply == b"OK":
            return
        if not reply:
            raise TargetError(f"{what}: not supported by the stub")
        raise TargetError(f"{what}: {reply.decode('latin-1')}")

    # ---- registers
    def _parse_g(self, reply: bytes) -> dict[str, int]:
        if reply[:1] == b"E":
            raise TargetError(f"g: {reply.decode('latin-1')}")
        raw = _hex(reply, "g")
        gpr: dict[str, int] = {}
        for name, start, end in _int_slots(tuple(self.layout)):
            if end > len(raw):
                break           # a short `g` (registers the stub does not have): the ones it sent
            gpr[name] = int.from_bytes(raw[start:end], "little")
        return gpr

    async def _monitor(self, command: str, timeout: float) -> str:
        reply, out = await self._request(b"qRcmd," + command.encode().hex().encode(), timeout, console=True)
        self._check(reply, f"monitor {command}")
        return _hex(out, f"monitor {command}").decode("utf-8", "replace")

    def _send_monitor(self, command: str):
        (req,) = self._proto.send([b"qRcmd," + command.encode().hex().encode()], console=True)
        return req

    async def _monitor_text(self, req, command: str, deadline: float) -> str | None:
        """The text of a pipelined qRcmd; None when the stub has no monitor."""
        reply = await self._wait_fast(req.future, deadline, b"qRcmd")
        try:
            self._check(reply, f"monitor {command}")
            return _hex(b"".join(req.console), f"monitor {command}").decode("utf-8", "replace")
        except TargetError:
            return None     # a stub without QEMU's monitor: selectors only, bases guessed

    def _send_cpu_monitor(self, indexes: list[int | None]) -> list:
        """`cpu N` then `info registers` for each CPU (QEMU monitor/misc.c hmp_cpu selects the
        monitor's CPU; monitor/hmp-cmds.c hmp_info_registers prints that one), pipelined. The last
        one stays selected, so the console's own `info registers` shows it. Per CPU rather than
        `info registers -a`: QEMU sends monitor text through the stub one line per packet (28 packets
        a CPU, measured), and only the CPUs that ran since the last stop need it again."""
        sent = []
        for idx in indexes:
            if idx is not None:
                sent.append((None, f"cpu {idx}", self._send_monitor(f"cpu {idx}")))
            sent.append((idx, "info registers", self._send_monitor("info registers")))
        return sent

    async def _cpu_monitor(self, sent: list, deadline: float) -> dict[int | None, MonitorRegisters] | None:
        """{cpu index: registers} of _send_cpu_monitor's requests; None without a monitor. When the
        text's "CPU#N" head is not the CPU asked for (a monitor without `cpu N`), every CPU's comes
        from one `info registers -a` instead."""
        out: dict[int | None, MonitorRegisters] = {}
        mismatch = False
        for idx, command, req in sent:
            text = await self._monitor_text(req, command, deadline)
            if text is None:
                return None
            if command != "info registers":
                continue
            sections = parse_info_registers_all(text)
            if None in sections or idx is None:
                out[idx] = monitor_for(sections, idx)
            elif idx in sections:
                out[idx] = sections[idx]
            else:
                mismatch = True
        if mismatch:
            text = await self._monitor_text(self._send_monitor(INFO_REGISTERS_ALL), INFO_REGISTERS_ALL, deadline)
            return parse_info_registers_all(text) if text is not None else None
        return out

    def _send_focus(self, thread: str | None) -> list:
        """`Hg` for `thread` unless the stub already has it selected (pipelined with what follows)."""
        if thread is None or thread == self._g_thread:
            return []
        return [(thread, self._proto.send([b"Hg" + thread.encode()])[0])]

    async def _focus_done(self, sent: list, deadline: float) -> None:
        for thread, req in sent:
            reply = await self._wait_fast(req.future, deadline, b"Hg")
            if reply != b"OK":
                self._g_thread = None
                raise TargetError(f"thread {thread}: Hg{thread} answered {reply[:20].decode('latin-1')!r} "
                                  f"(the vCPU is gone?)")
            self._g_thread = thread

    async def _cpu(self, timeout: float, thread: str | None = None) -> Registers:
        """The registers of `thread` (default: the focus): `Hg`, `g`, `cpu N` and `info registers`
        in one pipelined exchange."""
        thread = thread or self.focus
        index = thread_index(thread) if thread else None
        deadline = asyncio.get_running_loop().time() + timeout
        sent = self._send_focus(thread)
        (g,) = self._proto.send([b"g"])
        mon = self._send_cpu_monitor([index])
        await self._focus_done(sent, deadline)
        gpr = self._parse_g(await self._wait_fast(g.future, deadline, b"g"))
        sections = await self._cpu_monitor(mon, deadline)
        return merge_registers(gpr, monitor_for(sections, index) if sections else None)

    # ---- vCPUs
    async def _list_threads(self, deadline: float) -> tuple[list[str], list[str]]:
        """The thread ids of qfThreadInfo/qsThreadInfo (gdb manual, "General Query Packets"; QEMU
        answers one `mID` per packet, then `l`: gdbstub/gdbstub.c, handle_query_threads). The
        qsThreadInfo packets go out in pipelined batches: past the end QEMU keeps answering `l`."""
        threads: list[str] = []
        problems: list[str] = []
        batch = [b"qfThreadInfo"] + [b"qsThreadInfo"] * 7
        asked = 0
        while True:
            reqs = self._proto.send(batch)
            asked += len(batch)
            done = False
            for req in reqs:
                reply = await self._wait_fast(req.future, deadline, b"qsThreadInfo")
                if done:
                    continue            # answers past the end of the list: drained, FIFO aligned
                done = self._listing_reply(reply, threads, problems)
            if done:
                return threads, problems
            if asked > MAX_THREADS:
                problems.append(f"the thread list did not end after {MAX_THREADS} threads: cut there")
                return threads, problems
            batch = [b"qsThreadInfo"] * min(64, 2 * len(batch))

    @staticmethod
    def _listing_reply(reply: bytes, threads: list[str], problems: list[str]) -> bool:
        """Add the ids of one qfThreadInfo/qsThreadInfo reply to `threads`; True at the end of the list."""
        if reply[:1] == b"m":
            for raw in reply[1:].split(b",")[:MAX_THREADS + 1]:
                tid = raw.decode("latin-1")
                if thread_index(tid) is None:
                    if len(problems) < MAX_LISTING_PROBLEMS:
                        problems.append(f"the stub listed a malformed thread id {tid[:20]!r}: left out")
                elif tid in threads:
                    # A list that comes round again has ended (a stub that answers qsThreadInfo
                    # with the same thread forever would otherwise keep us asking).
                    problems.append(f"the stub listed thread {tid} twice: the list ends there")
                    return True
                elif len(threads) >= MAX_THREADS:
                    problems.append(f"more than {MAX_THREADS} threads listed: the rest left out")
                    return True
                else:
                    threads.append(tid)
            return False
        if reply == b"l":
            return True
        if not reply:
            return True         # qfThreadInfo not supported: no list (one CPU, the stub's default)
        problems.append(f"qsThreadInfo answered {reply[:20].decode('latin-1')!r}: the thread list ends there")
        return True

    async def _read_cpus(self, timeout: float) -> CpuSet:
        deadline = asyncio.get_running_loop().time() + timeout
        guess = self._threads
        if guess is None:
            threads, problems = await self._list_threads(deadline)
            cpus = await self._read_threads(threads, [], deadline)
        else:
            # One exchange: the listing again (the vCPUs of the last stop, plus the `l` that must end
            # it) and every listed thread's `Hg`+`g`, back to back.
            cpus = await self._read_threads(guess, [b"qfThreadInfo"] + [b"qsThreadInfo"] * len(guess), deadline)
            threads, problems = cpus.listed
            if threads != guess:
                # vCPUs came or went since the last stop, or the stub lists them differently now:
                # read what the listing says is there now.
                threads, problems = await self._list_threads(deadline)
                cpus = await self._read_threads(threads, [], deadline)
        self._threads = threads
        return CpuSet(cpus.reads, self.focus, problems + cpus.problems)

    async def _read_threads(self, threads: list[str], listing: list[bytes], deadline: float) -> "_Reads":
        """`listing` (re-list packets), then `Hg ID`, `g` and `qThreadExtraInfo,ID` for every thread
        and `Hg` back to the focus, all sent before the first reply is read; then the monitor's
        segment caches of the CPUs whose registers changed since the last read (one more pipelined
        exchange; none when no CPU ran)."""
        out = _Reads()
        if not threads and not listing:
            # A stub that names no threads: the one CPU it has.
            regs = await self._cpu(max(0.0, deadline - asyncio.get_running_loop().time()))
            out.reads.append(CpuRead(self.focus or "1", 0, regs, None))
            return out
        if threads and self.focus not in threads:
            if self.focus is not None:
                out.problems.append(f"the stopped thread {self.focus} is not in the thread list: "
                                    f"showing thread {threads[0]}")
            self.focus = threads[0]
        payloads = list(listing)
        for t in threads:
            payloads += [b"Hg" + t.encode(), b"g", b"qThreadExtraInfo," + t.encode()]
        if self.focus is not None:
            payloads.append(b"Hg" + self.focus.encode())
        reqs = self._proto.send(payloads)
        replies = [await self._wait_fast(r.future, deadline, p) for r, p in zip(reqs, payloads)]
        listed: list[str] = []
        list_problems: list[str] = []
        done = False
        for reply in replies[:len(listing)]:
            if not done:
                done = self._listing_reply(reply, listed, list_problems)
        if listing and not done:
            listed.append("")           # the list did not end: differs from any guess
        out.listed = (listed, list_problems)
        pos = len(listing)
        self._g_thread = None
        read: list[tuple[str, int, bytes, bool | None]] = []
        for t in threads:
            hg, g, extra = replies[pos:pos + 3]
            pos += 3
            index = thread_index(t)
            if hg != b"OK":
                out.reads.append(CpuRead(t, index, None, problem=f"thread {t} (CPU {index}) was listed but Hg{t} "
                                         f"answered {hg[:20].decode('latin-1')!r}: it vanished before its registers "
                                         f"were read"))
                continue
            self._g_thread = t
            read.append((t, index, g, thread_extra_halted(extra)))
        if self.focus is not None:
            if replies[pos] == b"OK":
                self._g_thread = self.focus
            else:
                out.problems.append(f"Hg{self.focus} (back to the stopped thread) answered "
                                    f"{replies[pos][:20].decode('latin-1')!r}")
        # The segment caches change only when a CPU executes, and then so does its `g`: a CPU whose
        # `g` is byte for byte what it was keeps the monitor text read with it.
        changed = [idx for t, idx, g, _ in read if self._mon_cache.get(t, (None,))[0] != g]
        focus_index = thread_index(self.focus) if self.focus else None
        changed.sort(key=lambda i: i == focus_index)        # the focus last: the monitor's CPU after
        sections = await self._cpu_monitor(self._send_cpu_monitor(changed), deadline) if changed else {}
        for t, index, g, halted in read:
            try:
                gpr = self._parse_g(g)
            except TargetError as e:
                out.reads.append(CpuRead(t, index, None, problem=f"thread {t} (CPU {index}): {e}"))
                continue
            if sections is None:
                mon = None
            elif index in sections:
                mon = sections[index]
                self._mon_cache[t] = (g, mon)
            else:
                mon = self._mon_cache.get(t, (None, None))[1]
            problem = None
            if sections is not None and mon is None:
                problem = f"the monitor shows no CPU#{index}: segment bases guessed"
            source = EXTRA_SOURCE
            if halted is None and mon is not None:
                halted, source = mon.halted, MONITOR_SOURCE
            out.reads.append(CpuRead(t, index, merge_registers(gpr, mon), halted, problem,
                                     source if halted is not None else ""))
        out.reads.sort(key=lambda c: c.index)
        return out

    def read_cpus(self, timeout: float = DEFAULT_TIMEOUT) -> CpuSet:
        return self._call(self._read_cpus(timeout), timeout)

    def select_thread(self, thread: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        # No packet now: the next register or virtual-memory read sends `Hg` first (_send_focus).
        self.focus = thread

    def _stopped_at(self, ev: StopEvent) -> StopEvent:
        """Note the thread a stop reply names. A debug stop (signal 5: breakpoint, watchpoint, step)
        makes the stopping vCPU QEMU's `g` and step thread (gdbstub/gdbstub.c, gdb_set_stop_cpu,
        from cpu_handle_guest_debug); 0x03 names c_cpu and leaves `Hg` where it was. `?` right after
        attaching answers T05 with c_cpu, which is then also g_cpu (gdbstub/gdbstub.c, gdb_chr_event)."""
        if ev.thread is None:
            self._g_thread = None
            return ev
        if ev.signal == 5:
            self._g_thread = ev.thread
        self.stop_thread = self.focus = ev.thread
        return ev

    def read_registers(self, timeout: float = DEFAULT_TIMEOUT) -> Registers:
        return self._call(self._cpu(timeout), timeout)

    def monitor(self, command: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        return self._call(self._monitor(command, timeout), timeout)

    # ---- memory
    async def _set_phys(self, mode: int, timeout: float) -> None:
        if self._phys_mode != mode:
            self._check(await self._request(b"Qqemu.PhyMemMode:%d" % mode, timeout), "Qqemu.PhyMemMode")
            self._phys_mode = mode

    async def _read(self, address: int, size: int, phys: int, timeout: float) -> bytes:
        check_read(address, size)
        if size == 0:
            return b""
        await self._set_phys(phys, timeout)
        deadline = asyncio.get_running_loop().time() + timeout
        if not phys:
            # `m` in virtual mode translates through the `Hg` thread's page tables (QEMU
            # gdbstub/gdbstub.c, target_memory_rw_debug on g_cpu): make that the focus.
            await self._focus_done(self._send_focus(self.focus), deadline)
        step = self.max_read
        chunks = collections.deque((a, min(step, address + size - a)) for a in range(address, address + size, step))
        inflight: collections.deque = collections.deque()
        out = bytearray()
        failure: Unreadable | None = None
        # A sliding window: keep PIPELINE_WINDOW reads in flight, top up as replies come back.
        while chunks or inflight:
            if chunks and len(inflight) <= PIPELINE_WINDOW // 2:
                batch = [chunks.popleft() for _ in range(min(PIPELINE_WINDOW - len(inflight), len(chunks)))]
                if failure is None:
                    for c, req in zip(batch, self._proto.send([b"m%x,%x" % c for c in batch])):
                        inflight.append((c, req))
                continue
            (a, n), req = inflight.popleft()
            reply = await self._wait_fast(req.future, deadline, b"m")
            if failure is not None:
                continue        # drain what is in flight so the FIFO stays aligned
            if reply[:1] == b"E" or len(reply) != 2 * n:
                failure = Unreadable(a, n, f"stub replied {reply[:8].decode('latin-1')!r}")
                chunks.clear()
                continue
            try:
                out += bytes.fromhex(reply.decode("latin-1"))
            except ValueError:
                failure = Unreadable(a, n, "stub replied with non-hex data")
                chunks.clear()
        if failure is not None:
            raise failure
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
        return self._resuming or (self._cont is not None and not self._cont.done())

    async def _step(self, timeout: float, thread: str | None = None) -> StopEvent:
        """Step `thread` (default: the focus) one instruction. With vCont (gdb manual, "vCont";
        QEMU gdbstub/gdbstub.c, gdb_handle_vcont) only that vCPU runs; plain `s` steps QEMU's c_cpu,
        the thread of the last stop, and lets the others run meanwhile."""
        thread = thread or self.focus
        self.generation += 1
        payload = b"s"
        if thread is not None and self.features.get("vContSupported") == "+":
            payload = b"vCont;s:" + thread.encode()
        return self._stopped_at(parse_stop(await self._request(payload, timeout), "s"))

    async def _step_off_breakpoint(self, timeout: float) -> StopEvent | None:
        """z1 → s → Z1 when the CPU sits on one of our breakpoints (a raw `c` there
        re-reports the same stop on QEMU 7.2, measured); else None."""
        if not self._breakpoints:
            return None
        # The CPU on the breakpoint is the one whose stop was reported, whatever thread is in focus.
        thread = self.stop_thread or self.focus
        pc = (await self._cpu(timeout, thread)).pc
        if pc not in self._breakpoints:
            return None
        self._check(await self._request(b"z1,%x,1" % pc, timeout), "z1")
        try:
            stop = await self._step(timeout, thread)
        finally:
            self._check(await self._request(b"Z1,%x,1" % pc, timeout), "Z1")
        return stop

    async def _resume(self, timeout: float) -> asyncio.Future:
        stop = await self._step_off_breakpoint(timeout)
        if stop is not None and stop.reason != "step":
            fut = asyncio.get_running_loop().create_future()
            fut.set_result(stop)
            return fut
        self.generation += 1
        (req,) = self._proto.send([b"c"], event=True)
        self._cont, self._cont_event = req.future, req.event
        if self._want_interrupt:        # interrupt() arrived while we were stepping off
            self._want_interrupt = False
            self._proto.send_interrupt()
        return req.future

    async def _wait_stop(self, timeout: float) -> StopEvent:
        reply = await self._wait(self._cont, timeout, b"c")
        return self._stopped_at(parse_stop(reply, "c"))

    def _start(self, timeout: float) -> StopEvent | None:
        """Send `c` (after stepping off a breakpoint); a StopEvent if stepping off already stopped."""
        self._resuming = True
        try:
            fut = self._call(self._resume(timeout), timeout)
        finally:
            self._resuming = False
            self._want_interrupt = False
        return fut.result() if fut is not self._cont else None

    def resume(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Start the guest and return at once; wait_stop() or interrupt() later."""
        if not self.running:
            self._start(timeout)

    def wait_stop(self, timeout: float = DEFAULT_CONT_TIMEOUT) -> StopEvent:
        if self._cont is None:
            raise TargetError("the guest was not resumed")
        return self._call(self._wait_stop(timeout), timeout, needs_stopped=False)

    def cont(self, timeout: float = DEFAULT_CONT_TIMEOUT) -> StopEvent:
        if not self.running:
            early = self._start(min(timeout, DEFAULT_TIMEOUT))
            if early is not None:
                return early
        return self.wait_stop(timeout)

    def step(self, timeout: float = DEFAULT_TIMEOUT) -> StopEvent:
        # `s` from a breakpoint address needs no z1 dance: QEMU executes the one instruction.
        return self._call(self._step(timeout), timeout)

    def _interrupt_in_loop(self) -> None:
        """Runs on the loop (via call_soon_threadsafe): 0x03 now, or as soon as `c` is out."""
        if self._cont is not None and not self._cont.done():
            self._proto.send_interrupt()
        elif self._resuming:
            self._want_interrupt = True     # still stepping off a breakpoint: _resume sends it
        # else the stop already arrived: nothing to interrupt

    def interrupt(self, timeout: float = DEFAULT_TIMEOUT) -> StopEvent:
        if not self.running:
            return StopEvent("interrupt", 2, raw="already stopped")
        if self._proto.dead:
            raise TargetDead(self._proto.dead)
        deadline = time.monotonic() + timeout
        posted = False
        while True:
            if self._cont_event is not None and self._cont_event.is_set() and self._cont.done():
                # Another thread (in cont()/wait_stop()) runs the loop and received the stop.
                exc = self._cont.exception()
                if exc is not None:
                    raise exc
                return self._stopped_at(parse_stop(self._cont.result(), "c"))
            if not self._lt.busy or self._lt.owner == threading.get_ident():
                # Nobody runs the loop: send 0x03 and wait for the stop reply ourselves.
                async def intr():
                    if self._cont is not None and not self._cont.done():
                        self._proto.send_interrupt()
                    return await self._wait_stop(max(0.0, deadline - time.monotonic()))
                return self._call(intr(), max(0.0, deadline - time.monotonic()), needs_stopped=False)
            if not posted:
                self._lt.loop.call_soon_threadsafe(self._interrupt_in_loop)
                posted = True
            if time.monotonic() > deadline:
                raise TargetTimeout(f"no stop within {timeout} s of the interrupt")
            if self._cont_event is not None:
                self._cont_event.wait(INTERRUPT_POLL)
            else:
                time.sleep(INTERRUPT_POLL)

    # ---- teardown
    def _shutdown(self) -> None:
        async def close_transport():
            if self._proto and self._proto.transport:
                self._proto.transport.close()
            await asyncio.sleep(0)      # let connection_lost run
        if not self._lt.loop.is_closed():
            try:
                self._lt.call(close_transport(), 1.0)
            except TargetTimeout:
                pass    # another thread holds the loop; the socket closes with the process
            else:
                self._lt.stop()

    def _end(self, detach: bool) -> None:
        if self._closed:
            return
        try:
            if self._proto and not self._proto.dead:
                if self.running:
                    self.interrupt(2.0)
                if detach:
                    self._call(self._request(b"D", 2.0), 2.0)
                else:
                    for a in list(self._breakpoints):
                        self.remove_breakpoint(a, 2.0)
                    for w in list(self._watchpoints):
                        self.remove_watchpoint(*w, timeout=2.0)
        except TargetError:
            pass        # dead or wedged: nothing left to clean on the stub side
        finally:
            self._closed = True
            self._shutdown()

    def close(self) -> None:
        self._end(detach=False)

    def detach(self) -> None:
        self._end(detach=True)
