"""The gdb backend: gdb 13 driven through pygdbmi (for gdb's symbols and a gdb console pane).

gdb runs as `gdb --interpreter=mi3 -nx -q`. Every command carries an MI token and waits for the
result record with that token (gdb manual, "GDB/MI Command Syntax"); pygdbmi's own reading waits
200 ms after any output (pygdbmi 0.11, IoManager._get_responses_unix and
time_to_check_for_additional_output_sec), so a reader thread calls get_gdb_response with a tiny
quiet window and hands records to waiters. That keeps a request at ~1.4 ms instead of ~201 ms
(measured here against a paused QEMU 7.2 under TCG).

gdb itself steps off breakpoints before resuming and removes them at every stop, so the
z1 → s → Z1 dance of rsp.py is gdb's job here. Things gdb's x86 model lacks come from QEMU's
monitor through `monitor info registers` (segment bases, CS descriptor flags, absent from QEMU's
gdbstub/gdb-xml/i386-64bit.xml), and physical reads from `maint packet Qqemu.PhyMemMode:1` (QEMU
docs/system/gdb.rst; gdbstub/system.c, gdb_target_memory_rw_debug).
"""
from __future__ import annotations

import collections
import json
import re
import shutil
import subprocess
import threading
import time

from decoders.memory import Unreadable, check_read
from inspector.live.target import (DEFAULT_CONT_TIMEOUT, DEFAULT_TIMEOUT, MAX_THREADS, X86_64_REGISTERS, CpuRead,
                                   CpuSet, Registers, StopEvent, Target, TargetDead, TargetError, TargetRunning,
                                   TargetTimeout, merge_registers, monitor_for, parse_info_registers_all,
                                   thread_extra_halted, thread_index)

GDB = "gdb"
# After output arrives, pygdbmi waits this long for more before returning (its default is 0.2 s).
QUIET_WINDOW = 0.0002
# How long the reader thread blocks in select() when gdb is silent; only bounds close() latency.
READ_POLL = 0.05
# `-target-select remote` took ~300 ms here (measured, QEMU 7.2 TCG); a slow 2-core machine
# needs more.
CONNECT_TIMEOUT = 10.0
# Result records kept for tokens nobody waits for any more (timed-out calls); older ones dropped.
MAX_STALE_RESULTS = 256
# gdb answers reads in pieces; one MI request per this many bytes keeps each reply modest.
MI_READ_CHUNK = 64 << 10
# gdb error texts that mean the remote side is gone (gdb/remote.c, gdb/infcmd.c).
DEAD_MARKERS = ("Remote connection closed", "Remote communication error", "not being run",
                "Connection reset", "Broken pipe", "The program has no registers")

# The integer registers we read by name (the stub's x86-64 set: QEMU
# gdbstub/gdb-xml/i386-64bit.xml).
_INT_REGS = {name for name, bits in X86_64_REGISTERS if bits <= 64}
_WATCH_FLAG = {"write": "", "read": "-r ", "access": "-a "}
_WATCH_TYPE = {1: "unsigned char", 2: "unsigned short", 4: "unsigned int", 8: "unsigned long long"}
# gdb's name of a remote thread (gdb/remote.c, remote_target::pid_to_str): "Thread PID.TID" with the
# multiprocess extension (which QEMU offers), else "Thread TID"; decimal.
_TARGET_ID_RE = re.compile(r"^Thread (?:(\d+)\.)?(\d+)\b")
# The monitor command whose text gives every vCPU's segment caches and HLT flag (see rsp.py).
INFO_REGISTERS = "info registers -a"


def stub_thread(target_id: str) -> str | None:
    """The gdbstub's thread id ("p1.2", hex, as in the RSP) for gdb's "Thread 1.2"; None if not one."""
    m = _TARGET_ID_RE.match(target_id or "")
    if m is None:
        return None
    tid = int(m[2])
    return f"p{int(m[1]):x}.{tid:x}" if m[1] is not None else f"{tid:02x}"


# `-data-list-register-values`' result record (gdb manual, "GDB/MI Data Manipulation"): parsed here
# with two regular expressions instead of pygdbmi's character-by-character parser, which took 2.8 ms
# for one such record of 40 registers (pygdbmi 0.11, measured here) and so set the cost of a stop
# that reads every vCPU's registers.
_REGISTERS_LINE = re.compile(r'^(\d+)\^done,register-values=\[(.*)\]\s*$')
_REGISTER_ITEM = re.compile(r'\{number="(\d+)",value="([^"\\]*)"\}')


def fast_registers_record(line: str) -> dict | None:
    """pygdbmi's dict for a register-values result line, or None for any other line (or one this
    does not read exactly, left to pygdbmi)."""
    m = _REGISTERS_LINE.match(line)
    if m is None:
        return None
    items = _REGISTER_ITEM.findall(m[2])
    # `{number="N",value="V"}` is 20 characters besides N and V; items are separated by commas.
    size = sum(len(n) + len(v) + 20 for n, v in items) + max(0, len(items) - 1)
    if m[2].count("{") != len(items) or len(m[2]) != size:
        return None
    return {"type": "result", "message": "done", "token": int(m[1]),
            "payload": {"register-values": [{"number": n, "value": v} for n, v in items]}}


# Stream records (gdb manual, "GDB/MI Stream Records"): `~` console, `@` target, `&` log, each one
# c-string. The monitor's text arrives as one such record a line.
_STREAM_TYPES = {"~": "console", "@": "target", "&": "log"}
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
_ESCAPE_RE = re.compile(r'\\(.)')


def fast_stream_record(line: str) -> dict | None:
    """pygdbmi's dict for a stream record whose escapes are \\n \\r \\t \\" \\\\ only; None otherwise."""
    kind = _STREAM_TYPES.get(line[:1])
    if kind is None or len(line) < 3 or line[1] != '"' or line[-1] != '"':
        return None
    body = line[2:-1]
    bad = False

    def unescape(m: re.Match) -> str:
        nonlocal bad
        c = _SIMPLE_ESCAPES.get(m[1])
        if c is None:
            bad = True
            return ""
        return c
    text = _ESCAPE_RE.sub(unescape, body) if "\\" in body else body
    if bad or '"' in _ESCAPE_RE.sub("", body):
        return None
    return {"type": kind, "message": None, "payload": text}


def _install_fast_parser(ctl) -> None:
    """Parse gdb's output with fast_registers_record first. pygdbmi 0.11 has no hook for this:
    IoManager._get_responses_list is replaced on this controller only (same behaviour otherwise,
    without its eager pformat of every record for a debug log line). Left alone when pygdbmi's
    internals differ."""
    from pygdbmi import IoManager as iom
    from pygdbmi import gdbmiparser

    io = getattr(ctl, "io_manager", None)
    buffer = getattr(iom, "_buffer_incomplete_responses", None)
    if io is None or buffer is None or not hasattr(io, "_get_responses_list") \
            or not isinstance(getattr(io, "_incomplete_output", None), dict):
        return

    def responses(raw_output: bytes, stream: str) -> list[dict]:
        new, io._incomplete_output[stream] = buffer(raw_output, io._incomplete_output.get(stream))
        out: list[dict] = []
        if not new:
            return out
        for line in new.decode(errors="replace").split("\n"):
            if not line or gdbmiparser.response_is_finished(line):
                continue
            r = fast_registers_record(line) or fast_stream_record(line) or gdbmiparser.parse_response(line)
            r["stream"] = stream
            out.append(r)
        return out
    io._get_responses_list = responses


def mi_quote(text: str) -> str:
    """An MI c-string (backslash escapes, double quotes)."""
    return json.dumps(text)


class GdbTarget(Target):
    def __init__(self, address: str | tuple[str, int], qemu_pid: int | None = None, gdb: str = GDB,
                 timeout: float = CONNECT_TIMEOUT):
        from pygdbmi.gdbcontroller import GdbController
        if shutil.which(gdb) is None:
            raise TargetError(f"`{gdb}` not found: install Debian's `gdb`")
        self.qemu_pid = qemu_pid
        self.address = address
        self._ctl = GdbController(command=[gdb, "--interpreter=mi3", "-nx", "-q"],
                                  time_to_check_for_additional_output_sec=QUIET_WINDOW)
        self._proc: subprocess.Popen = self._ctl.gdb_process
        _install_fast_parser(self._ctl)
        self._cv = threading.Condition()
        self._write_lock = threading.Lock()
        self._token = 0
        self._results: dict[int, dict] = {}
        self._streams: dict[int, list[str]] = {}
        self._current: int | None = None       # token whose stream output we are collecting
        self._stops: collections.deque[dict] = collections.deque(maxlen=64)
        self._stop_count = 0
        self._running = False
        self._dead: str | None = None
        self._closed = False
        self._phys_mode: int | None = None
        self._reg_numbers: dict[str, int] | None = None
        self._breakpoints: dict[int, str] = {}
        self._watchpoints: dict[tuple[int, int, str], str] = {}
        self._gdb_ids: dict[str, str] = {}      # stub thread id -> gdb's thread number
        self._focus_synced = True               # gdb's selected thread is self.focus
        self._batch: collections.deque[int] = collections.deque()   # tokens of a pipelined batch
        # thread -> (its register values, the monitor's registers read with them): reused while equal
        self._mon_cache: dict[str, tuple[dict[str, int], object]] = {}
        # gdb thread number -> the CpuRead of the last read_cpus, kept while that thread has not run
        # since (gdb's *running notifications name the threads it resumes), and its problems.
        self._known: dict[str, CpuRead] = {}
        self._known_problems: list[str] = []
        self._reader = threading.Thread(target=self._read_loop, name="fwinspect-gdbmi", daemon=True)
        self._reader.start()
        try:
            for cmd in ("-gdb-set mi-async on", "-gdb-set pagination off", "-gdb-set confirm off",
                        "-gdb-set stack-cache off", "-gdb-set code-cache off",
                        "-interpreter-exec console \"set debuginfod enabled off\"",
                        # gdb retries a refused connection for 15 s by default; fail at once instead.
                        "-interpreter-exec console \"set tcp auto-retry off\""):
                self._command(cmd, timeout)
            where = address if isinstance(address, str) else f"{address[0]}:{address[1]}"
            try:
                self._command(f"-target-select remote {where}", timeout)
            except TargetError as e:
                raise TargetDead(f"cannot connect to {where}: {e}") from None
            # stepi steps the selected vCPU alone, as the RSP backend's vCont;s:ID does (gdb manual,
            # "All-Stop Mode": set scheduler-locking step; gdb refuses it before a target is connected).
            self._command("-gdb-set scheduler-locking step", timeout)
            self._learn_threads(self._command("-thread-info", timeout)["payload"], [])
        except BaseException:
            self._end_gdb()
            raise

    # ---- the reader thread and token matching
    def _read_loop(self) -> None:
        from pygdbmi.constants import GdbTimeoutError
        while not self._closed:
            if self._proc.poll() is not None:
                self._die(f"gdb exited with {self._proc.returncode}")
                return
            try:
                records = self._ctl.get_gdb_response(timeout_sec=READ_POLL, raise_error_on_timeout=False)
            except (OSError, ValueError, GdbTimeoutError) as e:
                self._die(f"gdb pipe: {e}")
                return
            if records:
                with self._cv:
                    for r in records:
                        self._record(r)
                    self._cv.notify_all()

    def _record(self, r: dict) -> None:
        kind, msg, token = r.get("type"), r.get("message"), r.get("token")
        if kind == "result" and token is not None:
            self._results[token] = r
            if self._batch and token == self._batch[0]:
                # A pipelined batch: the console output that follows belongs to its next command.
                self._batch.popleft()
                self._current = self._batch[0] if self._batch else None
            if msg == "running":
                self._running = True
            if len(self._results) > MAX_STALE_RESULTS:
                for t in sorted(self._results)[:len(self._results) - MAX_STALE_RESULTS]:
                    del self._results[t]
        elif kind == "notify" and msg == "running":
            self._running = True
            self._ran((r.get("payload") or {}).get("thread-id"))
        elif kind == "notify" and msg == "stopped":
            self._running = False
            self._stops.append(r.get("payload") or {})
            self._stop_count += 1
        elif kind == "notify" and msg == "thread-group-exited":
            # The remote side went away (QEMU killed): gdb drops the inferior.
            self._dead = self._dead or "the target exited (thread-group-exited)"
        elif kind in ("console", "target", "output") and self._current is not None:
            payload = r.get("payload")
            if isinstance(payload, str):
                self._streams.setdefault(self._current, []).append(payload)

    def _ran(self, gid: str | None) -> None:
        """Forget what was read of the threads gdb resumes: `*running,thread-id="1"` after a stepi
        under scheduler-locking (only that vCPU ran: QEMU resumes the threads `vCont;s:ID` names,
        gdbstub/gdbstub.c gdb_handle_vcont), "all" after a continue (gdb manual, "GDB/MI Async
        Records"). Called with self._cv held, or before the guest runs."""
        if gid is None or gid == "all":
            self._known.clear()
        else:
            self._known.pop(str(gid), None)

    def _die(self, why: str) -> None:
        with self._cv:
            self._dead = self._dead or why
            self._cv.notify_all()

    def _command(self, cmd: str, timeout: float) -> dict:
        """Send `cmd` with a fresh token; return its result record (payload) or raise."""
        if self._closed:
            raise TargetDead("target closed")
        if self._proc.poll() is not None:
            raise TargetDead(self._dead or "gdb exited")
        with self._write_lock:
            with self._cv:
                self._token += 1
                token = self._token
                self._current = token
            try:
                self._ctl.write(f"{token}{cmd}", timeout_sec=timeout, read_response=False)
            except (OSError, ValueError) as e:
                raise TargetDead(f"gdb pipe: {e}") from None
            deadline = time.monotonic() + timeout
            with self._cv:
                try:
                    r = self._await(token, cmd, deadline, timeout)
                finally:
                    self._current = None
                    stream = "".join(self._streams.pop(token, []))
        if r.get("message") == "error":
            text = (r.get("payload") or {}).get("msg", "error")
            if any(m in text for m in DEAD_MARKERS):
                self._dead = text
                raise TargetDead(f"gdb: {text}")
            raise TargetError(f"gdb: {cmd[:60]}: {text}")
        r["stream"] = stream
        return r

    def _await(self, token: int, cmd: str, deadline: float, timeout: float) -> dict:
        """The result record of `token` (the caller holds self._cv), waiting until `deadline`."""
        while token not in self._results:
            left = deadline - time.monotonic()
            if self._dead and self._proc.poll() is not None:
                raise TargetDead(self._dead)
            if left <= 0:
                raise TargetTimeout(f"gdb: {cmd[:60]}: no result within {timeout} s")
            self._cv.wait(left)
        return self._results.pop(token)

    def _console(self, line: str, timeout: float) -> str:
        return self._command(f"-interpreter-exec console {mi_quote(line)}", timeout)["stream"]

    def _stopped(self):
        if self._running:
            raise TargetRunning("the guest is running; interrupt() it first")
        if self._dead:
            raise TargetDead(self._dead)

    # ---- registers, monitor
    def _numbers(self, timeout: float) -> dict[str, int]:
        if self._reg_numbers is None:
            names = self._command("-data-list-register-names", timeout)["payload"]["register-names"]
            self._reg_numbers = {n: i for i, n in enumerate(names) if n in _INT_REGS}
        return self._reg_numbers

    def read_registers(self, timeout: float = DEFAULT_TIMEOUT) -> Registers:
        self._stopped()
        numbers = self._numbers(timeout)
        by_number = {i: n for n, i in numbers.items()}
        r = self._command("-data-list-register-values --skip-unavailable x "
                          + " ".join(str(i) for i in sorted(by_number)), timeout)
        gpr: dict[str, int] = {}
        for item in r["payload"].get("register-values", []):
            name = by_number.get(int(item["number"]))
            try:
                gpr[name] = int(item["value"], 0)
            except (TypeError, ValueError):
                continue        # a structured value (flags view) gdb could not print as one number
        index = thread_index(self.focus) if self.focus else None
        if index is not None:
            sections = self._cpu_monitor([index], timeout)
            mon = sections.get(index) if sections else None
        else:
            try:
                mon = monitor_for(parse_info_registers_all(self.monitor("info registers", timeout)), None)
            except (TargetDead, TargetTimeout):
                raise
            except TargetError:
                mon = None      # a remote without QEMU's monitor: selectors only, bases guessed
        return merge_registers(gpr, mon)

    def monitor(self, command: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        self._stopped()
        self._forget()      # `system_reset`, `cpu-add`...: no CPU's read is known to hold after it
        return self._console(f"monitor {command}", timeout)

    def _forget(self) -> None:
        with self._cv:
            self._known.clear()

    # ---- vCPUs: gdb's threads (gdb lists the stub's with qfThreadInfo, reads each with Hg + g)
    def _learn_threads(self, payload: dict, problems: list[str]) -> list[tuple[str, str]]:
        """(stub thread id, gdb number) of -thread-info's threads; sets the focus to gdb's current one."""
        out: list[tuple[str, str]] = []
        ids: dict[str, str] = {}
        for t in (payload.get("threads") or [])[:MAX_THREADS]:
            thread = stub_thread(t.get("target-id", ""))
            if thread is None or thread_index(thread) is None or not str(t.get("id", "")).isdigit():
                problems.append(f"gdb lists a thread it does not name as a vCPU: {str(t)[:80]}")
                continue
            ids[thread] = t["id"]
            out.append((thread, t["id"]))
        self._gdb_ids = ids
        current = payload.get("current-thread-id")
        self.focus = next((th for th, gid in out if gid == current), self.focus)
        self._focus_synced = True
        return out

    def _commands(self, cmds: list[str], timeout: float) -> list[dict | TargetError]:
        """MI commands written back to back, then their results in order (an error result as a
        TargetError in its place), each with the console output gdb wrote for it ("stream")."""
        if self._closed:
            raise TargetDead("target closed")
        if self._proc.poll() is not None:
            raise TargetDead(self._dead or "gdb exited")
        if not cmds:
            return []
        with self._write_lock:
            with self._cv:
                first = self._token + 1
                self._token += len(cmds)
                tokens = list(range(first, first + len(cmds)))
                self._batch = collections.deque(tokens)
                self._current = tokens[0]
            try:
                self._ctl.write([f"{tok}{cmd}" for tok, cmd in zip(tokens, cmds)], timeout_sec=timeout,
                                read_response=False)
            except (OSError, ValueError) as e:
                raise TargetDead(f"gdb pipe: {e}") from None
            deadline = time.monotonic() + timeout
            out: list[dict | TargetError] = []
            with self._cv:
                try:
                    for tok, cmd in zip(tokens, cmds):
                        r = self._await(tok, cmd, deadline, timeout)
                        if r.get("message") == "error":
                            text = (r.get("payload") or {}).get("msg", "error")
                            if any(m in text for m in DEAD_MARKERS):
                                self._dead = text
                                raise TargetDead(f"gdb: {text}")
                            out.append(TargetError(f"gdb: {cmd[:60]}: {text}"))
                        else:
                            r["stream"] = "".join(self._streams.pop(tok, []))
                            out.append(r)
                finally:
                    self._batch.clear()
                    self._current = None
                    for tok in tokens:
                        self._streams.pop(tok, None)
            return out

    def _values(self, result: dict | TargetError, by_number: dict[int, str]) -> dict[str, int]:
        if isinstance(result, TargetError):
            raise result
        gpr: dict[str, int] = {}
        for item in result["payload"].get("register-values", []):
            name = by_number.get(int(item["number"]))
            try:
                gpr[name] = int(item["value"], 0)
            except (TypeError, ValueError):
                continue        # a structured value (flags view) gdb could not print as one number
        return gpr

    @staticmethod
    def _console_cmd(line: str) -> str:
        return f"-interpreter-exec console {mi_quote(line)}"

    def _cpu_monitor(self, indexes: list[int], timeout: float) -> dict | None:
        """{cpu index: monitor registers} from `monitor cpu N` + `monitor info registers` for each
        CPU, pipelined (see rsp.py, _send_cpu_monitor); `info registers -a` when the text's CPU#N head
        is not N; None without a monitor."""
        cmds = []
        for idx in indexes:
            cmds += [self._console_cmd(f"monitor cpu {idx}"), self._console_cmd("monitor info registers")]
        out: dict = {}
        mismatch = False
        for idx, result in zip(indexes, self._commands(cmds, timeout)[1::2]):
            if isinstance(result, TargetError):
                return None         # a remote without QEMU's monitor: selectors only, bases guessed
            sections = parse_info_registers_all(result["stream"])
            if None in sections:
                out[idx] = sections[None]
            elif idx in sections:
                out[idx] = sections[idx]
            else:
                mismatch = True
        if mismatch:
            try:
                return parse_info_registers_all(self._console(f"monitor {INFO_REGISTERS}", timeout))
            except (TargetDead, TargetTimeout):
                raise
            except TargetError:
                return None
        return out

    def read_cpus(self, timeout: float = DEFAULT_TIMEOUT) -> CpuSet:
        """Every vCPU: the threads that ran since the last read are read again (_read_ran: after a
        stepi only the stepped one, a stop re-read with nothing run reads nothing); the others keep
        what was read of them, registers and halted flag, which only their own running can change
        (QEMU changes a vCPU's CPUState in that vCPU's thread: accel/tcg/cpu-exec.c cpu_exec, with
        INIT and SIPI taken there too, target/i386/tcg/sysemu/seg_helper.c). After a continue,
        or a command typed in the console, every thread is read (_read_all)."""
        self._stopped()
        with self._cv:
            known = dict(self._known)
        if known and self._gdb_ids and any(gid in known for gid in self._gdb_ids.values()):
            result = self._read_ran(known, timeout)
            if result is not None:
                return result
        return self._read_all(timeout)

    def _read_ran(self, known: dict[str, CpuRead], timeout: float) -> CpuSet | None:
        """The threads not in `known` read with `--thread N` (and the monitor's text of those whose
        registers changed, which also gives their HLT flag), the others as they were; None when
        that does not go cleanly (a thread gone, no monitor): then everything is read again."""
        ran = [(thread, gid) for thread, gid in self._gdb_ids.items() if gid not in known]
        cpus = [known[gid] for thread, gid in self._gdb_ids.items() if gid in known]
        if ran:
            by_number = {i: n for n, i in self._numbers(timeout).items()}
            regs = " ".join(str(i) for i in sorted(by_number))
            cmds = [f"-data-list-register-values --thread {gid} --skip-unavailable x {regs}" for _, gid in ran]
            focus_gid = self._gdb_ids.get(self.focus) if self.focus else None
            if focus_gid is not None:
                cmds.append(f"-thread-select {focus_gid}")     # --thread N may leave N selected
            results = self._commands(cmds, timeout)
            read = []
            for (thread, gid), values in zip(ran, results):
                try:
                    read.append((thread, gid, thread_index(thread), self._values(values, by_number)))
                except TargetError:
                    return None
            changed = [idx for thread, _, idx, gpr in read if self._mon_cache.get(thread, (None,))[0] != gpr]
            focus_index = thread_index(self.focus) if self.focus else None
            changed.sort(key=lambda i: i == focus_index)
            sections = self._cpu_monitor(changed, timeout) if changed else {}
            if sections is None or any(i not in sections for i in changed):
                return None
            fresh = {}
            for thread, gid, index, gpr in read:
                if index in sections:
                    mon = sections[index]
                    self._mon_cache[thread] = (gpr, mon)
                else:
                    mon = self._mon_cache[thread][1]      # registers as they were: so is the rest
                if mon is None or mon.halted is None:
                    return None
                fresh[gid] = CpuRead(thread, index, merge_registers(gpr, mon), mon.halted, None,
                                     "info registers HLT=")
            with self._cv:
                self._known.update(fresh)
            cpus += fresh.values()
        cpus.sort(key=lambda c: c.index)
        return CpuSet(cpus, self.focus, list(self._known_problems))

    def _read_all(self, timeout: float) -> CpuSet:
        """-thread-info (the threads and QEMU's halted flag, which gdb asks with qThreadExtraInfo
        once a stop) and each known thread's registers (`--thread N`), written to gdb back to back;
        then the monitor's segment caches of the CPUs whose registers changed since the last read.
        Not `maint packet qThreadExtraInfo`: gdb drops its register caches after any `maint packet`
        (measured here, gdb 13: a re-read of 4 vCPUs went from 4 to 14 ms)."""
        numbers = self._numbers(timeout)
        by_number = {i: n for n, i in numbers.items()}
        regs = " ".join(str(i) for i in sorted(by_number))
        problems: list[str] = []
        for attempt in range(2):
            guess = list(self._gdb_ids.items())
            cmds = ["-thread-info"]
            cmds += [f"-data-list-register-values --thread {gid} --skip-unavailable x {regs}" for _, gid in guess]
            focus_gid = self._gdb_ids.get(self.focus) if self.focus else None
            if focus_gid is not None:
                cmds.append(f"-thread-select {focus_gid}")     # --thread N may leave N selected
            results = self._commands(cmds, timeout)
            if isinstance(results[0], TargetError):
                raise results[0]
            focus = self.focus
            problems = []
            info = results[0]["payload"]
            listed = self._learn_threads(info, problems)
            self.focus = focus or self.focus        # the stop's thread, not whatever --thread left selected
            if listed == guess:
                if focus_gid is None and guess and self.focus in self._gdb_ids:
                    # No focus before the batch (a stop gdb named by a number it had not listed): gdb's
                    # current thread is, once more, selected after the --thread reads.
                    self._command(f"-thread-select {self._gdb_ids[self.focus]}", timeout)
                break
        else:
            return CpuSet([CpuRead(self.focus or "1", thread_index(self.focus or "1") or 0,
                                   self.read_registers(timeout))], self.focus,
                          problems + ["gdb's thread list changed between two reads: showing the current thread only"])
        details = {t.get("id"): t.get("details", "") for t in info.get("threads") or []}
        read = []
        cpus: list[CpuRead] = []
        for (thread, gid), values in zip(guess, results[1:]):
            index = thread_index(thread)
            try:
                gpr = self._values(values, by_number)
            except TargetError as e:
                cpus.append(CpuRead(thread, index, None, problem=f"thread {thread} (gdb thread {gid}) was listed "
                                                                 f"but its registers could not be read: {e}"))
                continue
            m = re.search(r"\[(halted|running)", details.get(gid) or "")
            read.append((thread, index, gpr, None if m is None else m[1] == "halted"))
        changed = [idx for thread, idx, gpr, _ in read if self._mon_cache.get(thread, (None,))[0] != gpr]
        focus_index = thread_index(self.focus) if self.focus else None
        changed.sort(key=lambda i: i == focus_index)
        sections = self._cpu_monitor(changed, timeout) if changed else {}
        for thread, index, gpr, halted in read:
            if sections is None:
                mon = None
            elif index in sections:
                mon = sections[index]
                self._mon_cache[thread] = (gpr, mon)
            else:
                mon = self._mon_cache.get(thread, (None, None))[1]
            source = "qThreadExtraInfo (gdb's thread details)"
            if halted is None and mon is not None:
                halted, source = mon.halted, "info registers HLT="
            cpus.append(CpuRead(thread, index, merge_registers(gpr, mon), halted,
                                None if sections is None or mon is not None
                                else f"the monitor shows no CPU#{index}: segment bases guessed",
                                source if halted is not None else ""))
        cpus.sort(key=lambda c: c.index)
        ids = dict((thread, gid) for thread, gid in guess)
        with self._cv:
            # Kept for _read_ran: reads with both a halted flag and the monitor's segment caches.
            self._known = {ids[c.thread]: c for c in cpus
                           if c.registers is not None and c.halted is not None and c.problem is None
                           and sections is not None}
            self._known_problems = list(problems)
        return CpuSet(cpus, self.focus, problems)

    def select_thread(self, thread: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._stopped()
        gid = self._gdb_ids.get(thread)
        if gid is None:
            raise TargetError(f"no thread {thread} in gdb's thread list")
        self._command(f"-thread-select {gid}", timeout)
        self.focus = thread

    def console(self, line: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """A gdb CLI command (`info registers rip`, `x/4i $pc`, `p $cr0`), its console output."""
        self._stopped()
        self._forget()      # `set $rax = 1`, `monitor system_reset`: any CPU may differ after it
        return self._console(line, timeout)

    # ---- memory
    def _set_phys(self, mode: int, timeout: float) -> None:
        if self._phys_mode != mode:
            out = self._console(f"maint packet Qqemu.PhyMemMode:{mode}", timeout)
            if "OK" not in out:
                raise TargetError(f"Qqemu.PhyMemMode:{mode}: {out.strip()!r}")
            self._phys_mode = mode

    def _read(self, address: int, size: int, phys: int, timeout: float) -> bytes:
        self._stopped()
        check_read(address, size)
        self._set_phys(phys, timeout)
        out = bytearray()
        for a in range(address, address + size, MI_READ_CHUNK):
            n = min(MI_READ_CHUNK, address + size - a)
            try:
                r = self._command(f"-data-read-memory-bytes 0x{a:x} {n}", timeout)
            except TargetDead:
                raise
            except TargetError as e:
                raise Unreadable(a, n, str(e)) from None
            got = bytearray()
            for block in r["payload"].get("memory", []):
                if int(block["begin"], 16) != a + len(got):
                    break
                got += bytes.fromhex(block["contents"])
            if len(got) != n:
                raise Unreadable(a + len(got), n - len(got), "gdb returned a partial read")
            out += got
        return bytes(out)

    def _read_physical(self, address: int, size: int, timeout: float) -> bytes:
        return self._read(address, size, 1, timeout)

    def read_virtual(self, address: int, size: int, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        return self._read(address, size, 0, timeout)

    # ---- breakpoints and watchpoints
    def set_breakpoint(self, address: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._stopped()
        if address in self._breakpoints:
            return
        r = self._command(f"-break-insert -h *0x{address:x}", timeout)
        self._breakpoints[address] = r["payload"]["bkpt"]["number"]

    def remove_breakpoint(self, address: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._stopped()
        number = self._breakpoints.pop(address, None)
        if number is not None:
            self._command(f"-break-delete {number}", timeout)

    def set_watchpoint(self, address: int, size: int, kind: str = "write", timeout: float = DEFAULT_TIMEOUT) -> None:
        self._stopped()
        ctype = _WATCH_TYPE.get(size)
        expr = f"*({ctype} *)0x{address:x}" if ctype else f"*(unsigned char (*)[{size}])0x{address:x}"
        r = self._command(f"-break-watch {_WATCH_FLAG[kind]}{mi_quote(expr)}", timeout)
        wpt = next(v for k, v in r["payload"].items() if k.endswith("wpt"))
        self._watchpoints[(address, size, kind)] = wpt["number"]

    def remove_watchpoint(self, address: int, size: int, kind: str = "write", timeout: float = DEFAULT_TIMEOUT) -> None:
        self._stopped()
        number = self._watchpoints.pop((address, size, kind), None)
        if number is not None:
            self._command(f"-break-delete {number}", timeout)

    # ---- run control
    @property
    def running(self) -> bool:
        return self._running

    def _stop_event(self, payload: dict, stepping: bool) -> StopEvent:
        ev = self._stop_kind(payload, stepping)
        # *stopped names gdb's number of the thread that stopped, which gdb then selects.
        gid = payload.get("thread-id")
        thread = next((th for th, g in self._gdb_ids.items() if g == gid), None)
        if thread is not None:
            ev.thread = self.focus = thread
        elif gid is not None:
            # A thread gdb numbered after our last -thread-info: the focus of the stop before would
            # be a stale answer; read_cpus takes gdb's current thread (the one that stopped) instead.
            self.focus = None
        return ev

    def _stop_kind(self, payload: dict, stepping: bool) -> StopEvent:
        reason = payload.get("reason", "")
        if reason == "breakpoint-hit":
            return StopEvent("breakpoint", 5, raw=reason)
        if reason.endswith("watchpoint-trigger") or reason.endswith("watchpoint-scope"):
            number = (payload.get("wpt") or payload.get("hw-rwpt") or payload.get("hw-awpt") or {}).get("number")
            for (addr, _size, kind), n in self._watchpoints.items():
                if n == number:
                    return StopEvent("watchpoint", 5, addr, {"write": "watch", "read": "rwatch"}.get(kind, "awatch"),
                                     reason)
            return StopEvent("watchpoint", 5, raw=reason)
        if reason == "end-stepping-range" or (stepping and not reason):
            return StopEvent("step", 5, raw=reason)
        if reason == "signal-received" and payload.get("signal-name") == "SIGTRAP":
            # QEMU reports every debug stop as SIGTRAP (gdbstub/gdbstub.c gdb_vm_state_change,
            # RUN_STATE_DEBUG), as the RSP backend reads it; gdb calls it a breakpoint only when the PC it
            # computes is one of its breakpoints, which in real mode it is not: gdb's PC is IP, the
            # hardware breakpoint the linear CS.base + IP (measured: gdb 13, the reset vector's switches).
            return StopEvent("step" if stepping else "breakpoint", 5, raw="SIGTRAP")
        if reason == "signal-received":
            name = payload.get("signal-name", "")
            return StopEvent("interrupt" if name in ("SIGINT", "0") else "signal", 2 if name == "SIGINT" else None,
                             raw=name)
        if reason.startswith("exited"):
            return StopEvent("exited", raw=reason)
        return StopEvent("signal", raw=reason)

    def _wait_stop(self, since: int, timeout: float, stepping: bool = False) -> StopEvent:
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._stop_count <= since:
                left = deadline - time.monotonic()
                if self._dead:
                    raise TargetDead(self._dead)
                if left <= 0:
                    raise TargetTimeout(f"gdb: no stop within {timeout} s (still running)")
                self._cv.wait(left)
            payload = self._stops[-1]
        return self._stop_event(payload, stepping)

    def resume(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        if self._running:
            return
        self._stopped()
        self._resume_count = self._stop_count
        self.generation += 1
        self._command("-exec-continue", timeout)

    def wait_stop(self, timeout: float = DEFAULT_CONT_TIMEOUT) -> StopEvent:
        return self._wait_stop(getattr(self, "_resume_count", self._stop_count), timeout)

    def cont(self, timeout: float = DEFAULT_CONT_TIMEOUT) -> StopEvent:
        self.resume(min(timeout, DEFAULT_TIMEOUT))
        return self.wait_stop(timeout)

    def step(self, timeout: float = DEFAULT_TIMEOUT) -> StopEvent:
        self._stopped()
        since = self._stop_count
        self.generation += 1
        self._command("-exec-step-instruction", timeout)
        return self._wait_stop(since, timeout, stepping=True)

    def interrupt(self, timeout: float = DEFAULT_TIMEOUT) -> StopEvent:
        if not self._running:
            return StopEvent("interrupt", 2, raw="already stopped")
        since = getattr(self, "_resume_count", self._stop_count)
        self._command("-exec-interrupt", timeout)
        return self._wait_stop(since, timeout)

    # ---- teardown
    def _end_gdb(self) -> None:
        self._closed = True
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(2.0)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(2.0)
        for f in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if f:
                f.close()
        self._reader.join(1.0)

    def close(self) -> None:
        # gdb removes its breakpoints from the target at every stop; `disconnect` leaves QEMU
        # paused where it is (unlike detach, which resumes it).
        self._leave(lambda: self._console("disconnect", 2.0))

    def detach(self) -> None:
        self._leave(lambda: self._command("-target-detach", 2.0))

    def _leave(self, last_word) -> None:
        """Interrupt a running target, say `last_word` to the stub, then end gdb whatever happens
        (a dead or wedged stub has nothing left to clean)."""
        if self._closed:
            return
        try:
            if not self._dead:
                if self._running:
                    self.interrupt(2.0)
                last_word()
        except TargetError:
            pass
        finally:
            self._end_gdb()
