"""Record a live session's stops to a file, and play them back without QEMU.

`Recorder(session, path)` is a SessionLike that forwards every call to `session` and appends each
new Stop it returns to `path`. `ReplaySession(path)` is a read-only SessionLike over the recorded
stops (live=False): next_handoff/cont/step move to the next stop, `previous()` goes back.
`load_recording(path)` rebuilds the Stops, their Node trees and the bytes of the spaces the
nodes point into, so a replay shows the same tree, fields and hex as the live session did.

The file is JSON lines (per-refresh snapshots, as Dolphie (charles-001/dolphie) replays them, without
the database): a header line, then `blob` lines (a space's bytes, base64, written once per distinct
content and referenced by SHA-256) and `stop` lines. A tree is stored flat, nodes in pre-order
each naming its parent's index, so neither writing nor reading recurses on a deep tree. Field
values go through `json_value` (GUIDs become strings, fine for display) and keep their display
text, so the field table reads the same. The debugcon log is stored as the part added since
the previous stop.

Reading is bounded and iterative: file size, line length, the objects and values one line may
hold (checked on the raw bytes before json.loads builds them), stops, blob bytes, the depth of
the tree (deeper nodes are left out with a note), fields per node and the nesting of a field's
value (deeper values are replaced by a note) are all capped below. A truncated, hostile or
foreign file raises RecordingError naming the line and what was expected. `iter_recording` gives
the stops one at a time (`fwinspect replay --json` holds one stop at a time).
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Iterator

from decoders.model import Field, Node, Problem, Severity, Space, json_value
from inspector.live.session_api import CpuView, SessionLike, Stop

FORMAT = "fwinspect-recording"
VERSION = 1

# A space's bytes are kept up to this size; a larger space (a whole guest RAM view) keeps its
# first bytes, and the replayed tree carries a note saying so. 4 MiB holds a whole OVMF image.
MAX_SPACE_BYTES = 4 << 20
# Spaces with bytes per stop: more (a hostile tree with one space per node) are kept without bytes.
MAX_SPACES_PER_STOP = 64
# Nodes kept per stop tree. Decoders cap their own trees well below this.
MAX_NODES = 200_000
# Reading: past any of these the file is refused, not half-read. The whole-process budget is
# 256 MiB of RSS on any input (README, "Budgets"); json.loads builds about 400 bytes per small
# object, so what one line may hold is counted on its raw bytes first: `{` bounds the objects and
# `,` the values (both over-count, never under-count, when strings hold them).
MAX_FILE_BYTES = 1 << 30
# A blob line holds a MAX_SPACE_BYTES space in base64 (5.6 MiB); a real stop line is well under.
MAX_LINE_BYTES = 16 << 20
# A real OVMF.fd tree with its fields is about 1.4 MB of JSON: a few tens of thousands of objects.
# A million values in one dict (the costliest shape) peak near 200 MiB while read and written.
MAX_OBJECTS_PER_LINE = 200_000
MAX_VALUES_PER_LINE = 1_000_000
# What load_recording keeps in all (the app holds every stop): objects, as counted above.
MAX_TOTAL_OBJECTS = 400_000
# Writing: a stop's tree holds at most this many objects (nodes, fields, problems), well inside
# what a line may hold when read back (a field is one object and five values).
MAX_RECORD_OBJECTS = MAX_OBJECTS_PER_LINE // 2
MAX_STOPS = 100_000
# Recorded bytes held in all: the decompressed-bytes budget every decode runs under.
MAX_TOTAL_BLOB_BYTES = 64 << 20
# Tree depth kept (the text writer prints 64 levels; edk2's deepest tree is about 10).
MAX_TREE_DEPTH = 64
MAX_FIELDS_PER_NODE = 10_000
# Nesting and items kept inside a field value (decoders store flat values, short lists at most).
MAX_VALUE_DEPTH = 8
MAX_VALUE_ITEMS = 65_536
# Text cut on reading (a hostile file's titles are shown in the UI).
MAX_TEXT_CHARS = 4096
# vCPUs kept per stop (QEMU's x86 machines cap -smp at a few hundred; inspector.live.target.MAX_THREADS).
MAX_CPUS = 1024
# Disassembly lines read per CPU of a stop (the session records a few: session.CPU_DISASSEMBLY_LINES).
MAX_CPU_DISASSEMBLY_LINES = 64
# Wrappers around the Session (a Recorder, the tour's TourRecorder) looked through for its settings.
MAX_WRAPPERS = 4


class RecordingError(ValueError):
    """The recording cannot be read: `line` is the 1-based line number (0 for the file itself)."""

    def __init__(self, path: Path | str, line: int, message: str):
        self.path, self.line, self.message = str(path), line, message
        where = f"{path}: line {line}" if line else str(path)
        super().__init__(f"{where}: {message}")


# ---- writing ------------------------------------------------------------------------------------

def _space_data(space: Space) -> bytes | None:
    if space.data is None:
        return None
    return bytes(space.data[:MAX_SPACE_BYTES])


def tree_record(root: Node, blobs: dict[str, bytes]) -> dict[str, Any]:
    """The flat JSON form of the tree under `root`; each space's (bounded) bytes go into `blobs`
    by their SHA-256, for the caller to write once."""
    nodes: list[dict[str, Any]] = []
    spaces: list[dict[str, Any]] = []
    node_index: dict[int, int] = {}
    space_index: dict[int, int] = {}
    space_objs: list[Space] = []
    stack: list[tuple[Node, int]] = [(root, -1)]
    left_out = objects = 0
    while stack:
        node, parent = stack.pop()
        if id(node) in node_index:      # listed twice (a cycle or a decoder bug): keep it once
            continue
        cost = 1 + len(node.fields) + len(node.problems)
        if len(nodes) >= MAX_NODES or objects + cost > MAX_RECORD_OBJECTS:
            left_out += 1
            continue
        objects += cost
        node_index[id(node)] = len(nodes)
        sidx = None
        if node.space is not None:
            sidx = space_index.get(id(node.space))
            if sidx is None:
                sidx = space_index[id(node.space)] = len(space_objs)
                space_objs.append(node.space)
        nodes.append({
            "parent": parent, "kind": node.kind, "title": node.title, "space": sidx,
            "offset": node.offset, "size": node.size,
            "fields": [{"name": f.name, "value": json_value(f.value), "offset": f.offset, "size": f.size,
                        "display": f.text} for f in node.fields],
            "problems": [p.to_json() for p in node.problems],
        })
        me = len(nodes) - 1
        stack.extend((child, me) for child in reversed(node.children))
    for i, space in enumerate(space_objs):
        data = _space_data(space) if i < MAX_SPACES_PER_STOP else None
        digest = None
        if data is not None:
            digest = hashlib.sha256(data).hexdigest()
            blobs.setdefault(digest, data)
        parent = None if space.parent is None else node_index.get(id(space.parent))
        spaces.append({"name": space.name, "base": space.base, "size": space.size, "blob": digest,
                       "recorded": 0 if data is None else len(data), "parent": parent})
    return {"nodes": nodes, "spaces": spaces, "nodes_left_out": left_out}


class Recorder:
    """A SessionLike that forwards to `session` and appends each new Stop to `path`.

    The file is created (or emptied) at once; every stop is flushed as it comes, so a session
    that dies mid-way leaves a readable recording of the stops before. Thread-safe: the live
    screen calls `interrupt()` from one worker while `cont()` blocks in another.
    """

    def __init__(self, session: SessionLike, path: Path | str):
        self.session = session
        self.path = Path(path)
        self._lock = threading.Lock()
        self._blobs_written: set[str] = set()
        self._indices: set[int] = set()
        self._last_log = ""
        self.count = 0
        self._file = self.path.open("w", encoding="utf-8")
        self._write({"format": FORMAT, "version": VERSION})
        # Each stop's CPUs with their code at RIP, so a replay shows it for any CPU selected.
        inner = session
        for _ in range(MAX_WRAPPERS + 1):
            if inner is None or hasattr(inner, "record_cpu_disassembly"):
                break
            inner = getattr(inner, "session", None)
        if inner is not None and hasattr(inner, "record_cpu_disassembly"):
            inner.record_cpu_disassembly = True

    @property
    def live(self) -> bool:
        return self.session.live

    def _write(self, obj: dict) -> None:
        self._file.write(json.dumps(obj, separators=(",", ":")) + "\n")

    def record(self, stop: Stop) -> Stop:
        """Append `stop` unless a stop with its index is already recorded; returns it."""
        with self._lock:
            if stop.index in self._indices or self._file.closed:
                return stop
            blobs: dict[str, bytes] = {}
            data = dataclasses.replace(stop, tree=None).to_json()
            data["tree"] = None if stop.tree is None else tree_record(stop.tree, blobs)
            # The log only grows during a boot: store what this stop added.
            log = stop.log or ""
            prefix = len(self._last_log) if log.startswith(self._last_log) else 0
            data["log_prefix"], data["log"] = prefix, log[prefix:]
            for digest, raw in blobs.items():
                if digest not in self._blobs_written:
                    self._write({"blob": digest, "size": len(raw), "data": base64.b64encode(raw).decode()})
                    self._blobs_written.add(digest)
            self._write({"stop": data})
            self._file.flush()
            self._indices.add(stop.index)
            self._last_log = log
            self.count += 1
        return stop

    # -- SessionLike ------------------------------------------------------------------
    def current(self) -> Stop:
        return self.record(self.session.current())

    def next_handoff(self, timeout: float = 60.0) -> Stop:
        return self.record(self.session.next_handoff(timeout))

    def run_to(self, phase: str, timeout: float = 120.0) -> Stop:
        return self.record(self.session.run_to(phase, timeout))

    def step(self) -> Stop:
        return self.record(self.session.step())

    def cont(self, timeout: float = 60.0) -> Stop:
        return self.record(self.session.cont(timeout))

    def interrupt(self) -> Stop:
        return self.record(self.session.interrupt())

    def add_breakpoint(self, spec: str):
        return self.session.add_breakpoint(spec)

    def remove_breakpoint(self, spec: str) -> None:
        self.session.remove_breakpoint(spec)

    def console(self, line: str) -> str:
        return self.session.console(line)

    def select_cpu(self, index: int) -> Stop:
        # The same stop about another CPU: its index is recorded already, so nothing is appended.
        return self.record(self.session.select_cpu(index))

    def close(self) -> None:
        try:
            self.session.close()
        finally:
            with self._lock:
                self._file.close()


# ---- reading ------------------------------------------------------------------------------------

class _Checker:
    """Type checks with messages that name the file, the line and the key."""

    def __init__(self, path: Path | str):
        self.path = path
        self.line = 0

    def fail(self, message: str) -> RecordingError:
        return RecordingError(self.path, self.line, message)

    def get(self, obj: dict, key: str, types: type | tuple, where: str, optional: bool = False) -> Any:
        value = obj.get(key)
        if value is None and optional:
            return None
        # bool is an int in Python; a true/false where a number belongs is a bad file.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
            names = "/".join(t.__name__ for t in _as_tuple(types))
            raise self.fail(f"{where}.{key}: expected {names}, found {type(value).__name__}")
        return value

    def text(self, obj: dict, key: str, where: str, optional: bool = False) -> str | None:
        value = self.get(obj, key, str, where, optional)
        return None if value is None else value[:MAX_TEXT_CHARS]

    def int(self, obj: dict, key: str, where: str, optional: bool = False) -> int | None:
        return self.get(obj, key, int, where, optional)

    def list(self, obj: dict, key: str, where: str) -> list:
        return self.get(obj, key, list, where)

    def dict(self, obj: Any, where: str) -> dict:
        if not isinstance(obj, dict):
            raise self.fail(f"{where}: expected an object, found {type(obj).__name__}")
        return obj


def _as_tuple(types: type | tuple) -> tuple:
    return types if isinstance(types, tuple) else (types,)


def _read_tree(c: _Checker, rec: dict, blobs: dict[str, bytes]) -> Node:
    nodes_json = c.list(rec, "nodes", "stop.tree")
    spaces_json = c.list(rec, "spaces", "stop.tree")
    if not nodes_json:
        raise c.fail("stop.tree.nodes: expected at least the root node")
    if len(nodes_json) > MAX_NODES or len(spaces_json) > MAX_NODES:
        raise c.fail(f"stop.tree: more than {MAX_NODES} nodes or spaces")
    spaces: list[Space] = []
    space_parents: list[int | None] = []
    notes: list[str] = []
    for i, s in enumerate(spaces_json):
        where = f"stop.tree.spaces[{i}]"
        s = c.dict(s, where)
        name = c.text(s, "name", where)
        size = c.int(s, "size", where)
        digest = c.text(s, "blob", where, optional=True)
        data = None
        if digest is not None:
            if digest not in blobs:
                raise c.fail(f"{where}.blob: no blob {digest[:16]}… earlier in the file")
            data = blobs[digest]
            if len(data) < size:
                notes.append(f"space {name!r}: the recording kept the first 0x{len(data):x} of "
                             f"0x{size:x} bytes")
        spaces.append(Space(name, data, c.int(s, "base", where, optional=True)))
        space_parents.append(c.int(s, "parent", where, optional=True))
    nodes: list[Node | None] = []
    depths: list[int] = []
    too_deep = fields_cut = values_cut = 0
    for i, n in enumerate(nodes_json):
        where = f"stop.tree.nodes[{i}]"
        n = c.dict(n, where)
        parent = c.int(n, "parent", where)
        if (i == 0) != (parent == -1) or parent >= i:
            raise c.fail(f"{where}.parent: expected -1 for the root, else an earlier node's index")
        depth = 0 if parent < 0 else depths[parent] + 1
        depths.append(depth)
        if depth > MAX_TREE_DEPTH or (parent >= 0 and nodes[parent] is None):
            nodes.append(None)  # under a node left out: left out too
            too_deep += 1
            continue
        sidx = c.int(n, "space", where, optional=True)
        if sidx is not None and not 0 <= sidx < len(spaces):
            raise c.fail(f"{where}.space: {sidx} is not one of the {len(spaces)} spaces")
        node = Node(c.text(n, "kind", where), c.text(n, "title", where),
                    None if sidx is None else spaces[sidx], c.int(n, "offset", where), c.int(n, "size", where))
        fields = c.list(n, "fields", where)
        fields_cut += max(0, len(fields) - MAX_FIELDS_PER_NODE)
        for j, f in enumerate(fields[:MAX_FIELDS_PER_NODE]):
            fw = f"{where}.fields[{j}]"
            f = c.dict(f, fw)
            value = f.get("value")
            if isinstance(value, (list, dict)) and not _small(value):
                value = f"(a value nested deeper than {MAX_VALUE_DEPTH} levels or holding more than " \
                        f"{MAX_VALUE_ITEMS:,} items, not kept)"
                values_cut += 1
            node.fields.append(Field(c.text(f, "name", fw), value, c.int(f, "offset", fw, True),
                                     c.int(f, "size", fw, True), c.text(f, "display", fw, True)))
        for j, p in enumerate(c.list(n, "problems", where)):
            pw = f"{where}.problems[{j}]"
            p = c.dict(p, pw)
            try:
                severity = Severity(p.get("severity"))
            except ValueError:
                raise c.fail(f"{pw}.severity: expected error/warning/info") from None
            node.problems.append(Problem(c.int(p, "offset", pw, True), severity, c.text(p, "message", pw)))
        if parent >= 0:
            nodes[parent].children.append(node)
        nodes.append(node)
    for space, parent in zip(spaces, space_parents):
        if parent is not None and 0 <= parent < len(nodes) and nodes[parent] is not None:
            space.parent = nodes[parent]
    root = nodes[0]
    assert root is not None  # depth 0 is never left out
    if too_deep:
        notes.append(f"{too_deep} nodes deeper than {MAX_TREE_DEPTH} levels were not read")
    if fields_cut:
        notes.append(f"{fields_cut} fields past {MAX_FIELDS_PER_NODE} on one node were not read")
    if values_cut:
        notes.append(f"{values_cut} field values nested deeper than {MAX_VALUE_DEPTH} levels or holding more "
                     f"than {MAX_VALUE_ITEMS:,} items were not read")
    left_out = rec.get("nodes_left_out")
    if isinstance(left_out, int) and not isinstance(left_out, bool) and left_out > 0:
        notes.append(f"the recording left out {left_out} nodes past what one stop holds ({MAX_NODES:,} nodes, "
                     f"{MAX_RECORD_OBJECTS:,} nodes, fields and problems)")
    for note in notes:
        root.note(None, note)
    return root


def _small(value: Any) -> bool:
    """Whether a JSON value nests at most MAX_VALUE_DEPTH deep and holds at most MAX_VALUE_ITEMS
    items in all, found without recursion (and without walking past either bound)."""
    items, stack = 0, [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > MAX_VALUE_DEPTH:
            return False
        items += len(v)
        if items > MAX_VALUE_ITEMS:
            return False
        children = v.values() if isinstance(v, dict) else v
        stack.extend((x, depth + 1) for x in children if isinstance(x, (list, dict)))
    return True


def _read_stop(c: _Checker, obj: Any, blobs: dict[str, bytes], previous_log: str) -> Stop:
    s = c.dict(obj, "stop")
    registers = c.dict(s.get("registers"), "stop.registers")
    for name, value in registers.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise c.fail(f"stop.registers.{name[:40]}: expected an integer")
    disassembly = []
    for i, line in enumerate(c.list(s, "disassembly", "stop")):
        line = c.dict(line, f"stop.disassembly[{i}]")
        disassembly.append((c.int(line, "address", f"stop.disassembly[{i}]"),
                            c.text(line, "text", f"stop.disassembly[{i}]")))
    problems = c.list(s, "problems", "stop")
    if not all(isinstance(p, str) for p in problems):
        raise c.fail("stop.problems: expected a list of strings")
    prefix = c.int(s, "log_prefix", "stop", optional=True) or 0
    if not 0 <= prefix <= len(previous_log):
        raise c.fail(f"stop.log_prefix: {prefix} is past the previous stop's log ({len(previous_log)} chars)")
    log = previous_log[:prefix] + (c.get(s, "log", str, "stop", optional=True) or "")
    tree = s.get("tree")
    cpus = _read_cpus(c, s)
    cpu = c.int(s, "cpu", "stop", optional=True) or 0
    about = c.int(s, "about", "stop", optional=True)      # absent before Stop.about: the stop's own CPU
    return Stop(
        index=c.int(s, "index", "stop"), reason=c.text(s, "reason", "stop"), phase=c.text(s, "phase", "stop"),
        mode=c.text(s, "mode", "stop"), linear_rip=c.int(s, "linear_rip", "stop"),
        registers=dict(registers), module=c.text(s, "module", "stop", optional=True),
        handoff=c.text(s, "handoff", "stop", optional=True),
        tree=None if tree is None else _read_tree(c, c.dict(tree, "stop.tree"), blobs),
        disassembly=disassembly, log=log, problems=[p[:MAX_TEXT_CHARS] for p in problems], cpus=cpus, cpu=cpu,
        about=about)


def _read_cpus(c: _Checker, s: dict) -> list[CpuView]:
    """stop.cpus: absent in recordings made before vCPUs were read (an empty list then)."""
    raw = s.get("cpus")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise c.fail(f"stop.cpus: expected a list, found {type(raw).__name__}")
    if len(raw) > MAX_CPUS:
        raise c.fail(f"stop.cpus: more than {MAX_CPUS} CPUs")
    out = []
    for i, v in enumerate(raw):
        where = f"stop.cpus[{i}]"
        v = c.dict(v, where)
        regs = c.dict(v.get("registers"), f"{where}.registers")
        for name, value in regs.items():
            if not isinstance(value, int) or isinstance(value, bool):
                raise c.fail(f"{where}.registers.{name[:40]}: expected an integer")
        out.append(CpuView(index=c.int(v, "index", where), thread=c.text(v, "thread", where),
                           mode=c.text(v, "mode", where), linear_rip=c.int(v, "linear_rip", where),
                           phase=c.text(v, "phase", where), module=c.text(v, "module", where, optional=True),
                           state=c.text(v, "state", where), registers=dict(regs),
                           state_source=c.text(v, "state_source", where, optional=True) or "",
                           disassembly=_read_lines(c, v, where)))
    return out


def _read_lines(c: _Checker, obj: dict, where: str) -> list[tuple[int, str]]:
    """A CPU's recorded disassembly: absent in recordings made before it was kept (empty then);
    lines past MAX_CPU_DISASSEMBLY_LINES are not read."""
    raw = obj.get("disassembly")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise c.fail(f"{where}.disassembly: expected a list, found {type(raw).__name__}")
    lines = []
    for i, line in enumerate(raw[:MAX_CPU_DISASSEMBLY_LINES]):
        w = f"{where}.disassembly[{i}]"
        line = c.dict(line, w)
        lines.append((c.int(line, "address", w), c.text(line, "text", w)))
    return lines


def load_recording(path: Path | str) -> list[Stop]:
    """The Stops recorded in `path`, with their trees and space bytes rebuilt.

    Raises RecordingError (a ValueError) for a file that is not a recording, is truncated or
    malformed, or exceeds the reading bounds; OSError when it cannot be opened."""
    stops: list[Stop] = []
    reader = _Reader(path)
    for stop in reader:
        if reader.objects > MAX_TOTAL_OBJECTS:
            raise reader.c.fail(f"more than {MAX_TOTAL_OBJECTS:,} objects in the stops so far: too large "
                                f"to hold at once (`fwinspect replay --json` reads one stop at a time)")
        stops.append(stop)
    return stops


def check_recording(path: Path | str) -> None:
    """Raise RecordingError unless `path` starts with a recording's header (nothing else is read)."""
    _Reader(path).check_header()


def iter_recording(path: Path | str) -> Iterator[Stop]:
    """The Stops recorded in `path`, one at a time (raises as load_recording does, at the line
    where the file goes wrong, after the stops before it)."""
    return iter(_Reader(path))


class _Reader:
    """One pass over a recording's lines; `objects` counts what the stops read so far hold."""

    def __init__(self, path: Path | str):
        self.path = path
        self.c = _Checker(path)
        self.objects = 0

    def __iter__(self) -> Iterator[Stop]:
        c, path = self.c, self.path
        stops = 0
        blobs: dict[str, bytes] = {}
        blob_bytes = 0
        log = ""
        with Path(path).open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise RecordingError(path, 0, f"{size:,} bytes: larger than any recording read here "
                                              f"({MAX_FILE_BYTES:,})")
            while True:
                raw = f.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    break
                c.line += 1
                obj = self._parse(raw)
                if c.line == 1:
                    self._header(obj)
                    continue
                if "blob" in obj:
                    digest = c.text(obj, "blob", "blob")
                    try:
                        data = base64.b64decode(c.get(obj, "data", str, "blob"), validate=True)
                    except (binascii.Error, ValueError):
                        raise c.fail("blob.data: expected base64") from None
                    if hashlib.sha256(data).hexdigest() != digest:
                        raise c.fail("blob: the bytes do not match their SHA-256 (corrupted file)")
                    blob_bytes += len(data)
                    if blob_bytes > MAX_TOTAL_BLOB_BYTES:
                        raise c.fail(f"more than {MAX_TOTAL_BLOB_BYTES:,} bytes of recorded memory")
                    blobs[digest] = data
                elif "stop" in obj:
                    if stops >= MAX_STOPS:
                        raise c.fail(f"more than {MAX_STOPS} stops")
                    stop = _read_stop(c, obj["stop"], blobs, log)
                    del obj
                    log = stop.log
                    stops += 1
                    yield stop
                else:
                    raise c.fail("expected a 'blob' or 'stop' line")
        if c.line == 0:
            raise RecordingError(path, 0, "empty file: not an fwinspect recording")

    def _header(self, obj: dict) -> None:
        if obj.get("format") != FORMAT:
            raise self.c.fail(f"not an fwinspect recording (expected a header with format {FORMAT!r})")
        if obj.get("version") != VERSION:
            raise self.c.fail(f"recording version {obj.get('version')!r}; this fwinspect reads {VERSION}")

    def check_header(self) -> None:
        """Read the first line alone and raise RecordingError unless it is this format's header."""
        with Path(self.path).open("rb") as f:
            raw = f.readline(MAX_LINE_BYTES + 1)
        if not raw:
            raise RecordingError(self.path, 0, "empty file: not an fwinspect recording")
        self.c.line = 1
        self._header(self._parse(raw))

    def _parse(self, raw: bytes) -> dict:
        c = self.c
        if len(raw) > MAX_LINE_BYTES:
            raise c.fail(f"line longer than {MAX_LINE_BYTES:,} bytes")
        if not raw.endswith(b"\n"):
            raise c.fail("the line is cut short (the file ends without a newline: truncated?)")
        objects, values = raw.count(b"{"), raw.count(b",")
        if objects > MAX_OBJECTS_PER_LINE or values > MAX_VALUES_PER_LINE:
            raise c.fail(f"{objects:,} objects and {values:,} values on one line, past the bounds "
                         f"({MAX_OBJECTS_PER_LINE:,} objects, {MAX_VALUES_PER_LINE:,} values)")
        self.objects += objects
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise c.fail(f"not JSON: {str(e)[:120]}") from None
        return c.dict(obj, "line")


class ReplaySession:
    """SessionLike over a recording: read-only, `live` is False.

    next_handoff, cont and step move to the next recorded stop (at the last one they stay there);
    `previous()` moves back; run_to(phase) moves to the next stop in that phase."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.stops = load_recording(path)
        if not self.stops:
            raise RecordingError(path, 0, "the recording holds no stops")
        self.position = 0
        self._selected: dict[int, Stop] = {}     # position -> that stop about another CPU (select_cpu)

    @property
    def live(self) -> bool:
        return False

    @property
    def count(self) -> int:
        return len(self.stops)

    def current(self) -> Stop:
        """The stop at this position as last presented, as a live Session's current(): after
        select_cpu(i) the copy shown for CPU i (Stop.cpu == i), whose Stop.about still names the CPU
        that stopped; the recorded stop itself is `stops[position]`."""
        return self._selected.get(self.position) or self.stops[self.position]

    def _move(self, delta: int) -> Stop:
        self.position = max(0, min(len(self.stops) - 1, self.position + delta))
        return self.current()

    def next(self) -> Stop:
        return self._move(+1)

    def previous(self) -> Stop:
        return self._move(-1)

    def next_handoff(self, timeout: float = 60.0) -> Stop:
        return self._move(+1)

    def cont(self, timeout: float = 60.0) -> Stop:
        return self._move(+1)

    def step(self) -> Stop:
        return self._move(+1)

    def add_breakpoint(self, spec: str):
        raise ValueError("replay: read-only, breakpoints cannot be set")

    def remove_breakpoint(self, spec: str) -> None:
        raise ValueError("replay: read-only")

    def console(self, line: str) -> str:
        raise ValueError("replay: read-only, no target to send commands to")

    def run_to(self, phase: str, timeout: float = 120.0) -> Stop:
        for i in range(self.position + 1, len(self.stops)):
            if self.stops[i].phase == phase:
                self.position = i
                return self.current()
        raise ValueError(f"no recorded stop after this one is in phase {phase!r}")

    def interrupt(self) -> Stop:
        return self.current()

    def select_cpu(self, index: int) -> Stop:
        """The current recorded stop about CPU `index`: its recorded registers, mode, RIP, module and
        disassembly (recordings from before CPUs' disassembly was kept have none for another CPU)."""
        stop = self.stops[self.position]
        view = next((c for c in stop.cpus if c.index == index), None)
        if view is None:
            have = ", ".join(str(c.index) for c in stop.cpus) or "none recorded"
            shown = self.current()
            return shown.copy(problems=[*shown.problems, f"no CPU {index} at this stop (CPUs: {have})"])
        if index == stop.cpu:
            self._selected.pop(self.position, None)
            return stop
        selected = stop.copy(cpu=index, mode=view.mode, linear_rip=view.linear_rip, registers=dict(view.registers),
                             module=view.module, disassembly=list(view.disassembly))
        self._selected[self.position] = selected
        return selected

    def close(self) -> None:
        pass


__all__ = ["Recorder", "ReplaySession", "RecordingError", "check_recording", "iter_recording", "load_recording",
           "tree_record"]
