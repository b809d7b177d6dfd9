"""Printing Node trees without the app: a text tree for people, JSON for scripts, both streamed.

Both writers walk the tree iteratively and write as they go, through one buffered sink that
encodes in 64 KiB chunks: a 50,000-node tree prints in well under 2 s, where a rich render per
node took about a millisecond each. The sink checks the output budget (decoders.budget,
`Limits.output_bytes`): past it, the text ends with a line saying so and the JSON closes every
open bracket, so what was printed still parses; the writer then returns False and the command
exits 1.

`children` (an iterable of Nodes) stands in for the root's own children: the page-table walk
feeds its leaves one by one, so 524,288 mappings are never built as one list.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator

# Annotations only (this module starts every command; typing and uuid cost start-up time).
IO = object

# json.dumps's own string encoder (ensure_ascii), from its C module: this module is imported after a
# decode, on the way to the output, and the json package itself is needed only for rare values.
try:
    from _json import encode_basestring_ascii as _encode_str
except ImportError:   # an interpreter without the accelerator: json.encoder's pure-Python one
    from json.encoder import encode_basestring_ascii as _encode_str

from decoders.model import Node, Severity, json_value

# Deeper nesting than this is summarised (a hostile tree can nest thousands deep; edk2's deepest,
# volumes in sections in volumes, is about 10 levels).
MAX_PRINT_DEPTH = 64
# Summaries whose fields are the point: printed even without --fields.
SUMMARY_KINDS = {"image-info", "mrtd", "replay-bank", "comparison", "memory-map"}
# The sink encodes and writes when this much text has gathered.
_CHUNK = 64 << 10
# Leaves written by one sink write (the output budget cuts between batches).
LEAF_BATCH = 256

# rich's tree guides, so the text reads as it did when rich drew it.
_TEE, _ELL, _BAR, _GAP = "├── ", "└── ", "│   ", "    "
# SGR codes (ECMA-48 8.3.117), used only on a terminal and never with NO_COLOR set (no-color.org).
_STYLES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}
_SEVERITY_STYLE = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
# Text from the input (an event's string, a UI name, a certificate subject) reaches the terminal in
# titles, fields and problems: its control characters (C0 but tab and newline, DEL, C1: ECMA-48
# escapes and controls), the Unicode line separators and the bidirectional overrides and isolates
# (Unicode UAX #9, which can make a line read in another order) are shown as U+FFFD, as the app's
# tree shows them. Newlines split a text into lines first.
_UNSAFE = {c: "\ufffd" for c in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0),
                                  0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]}


def _lines(text: str) -> list[str]:
    """`text` as terminal-safe lines."""
    return text.translate(_UNSAFE).split("\n")


def has_problems(root: Node, include_info: bool = False) -> bool:
    for _, p in root.all_problems():
        if include_info or p.severity is not Severity.INFO:
            return True
    return False


def use_color(out: IO[str]) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


class Sink:
    """Buffered output with the output budget: `write()` gathers text, encodes and writes it in
    chunks, and stops writing (setting `cut`) once `limit` bytes would be passed."""

    def __init__(self, out: IO[str] | None = None, limit: int | None = None):
        out = out or sys.stdout
        if limit is None:
            from decoders.budget import current

            limit = current().limits.output_bytes
        self.limit = limit
        # Bytes to the binary stream when there is one (the console's str layer is slower).
        self._binary = getattr(out, "buffer", None)
        self._text = out
        self._parts: list[str] = []
        self._pending = 0
        self.written = 0
        self.cut = False

    def write(self, text: str, force: bool = False) -> bool:
        """Queue `text` whole, or (when it would pass the budget) nothing: output is cut between
        pieces, never inside one. False once the budget is spent. `force` writes past the budget
        (closing brackets, the line saying where output stopped)."""
        if self.cut and not force:
            return False
        # Characters stand for bytes here (JSON is ASCII; titles nearly so); `written` is exact.
        if not force and self.written + self._pending + len(text) > self.limit:
            self.cut = True
            return False
        self._parts.append(text)
        self._pending += len(text)
        if self._pending >= _CHUNK:
            self._drain()
        return True

    def room(self) -> int:
        """Characters that still fit the budget."""
        return 0 if self.cut else self.limit - self.written - self._pending

    def _drain(self) -> None:
        data = "".join(self._parts)
        self._parts, self._pending = [], 0
        if not data:
            return
        if self._binary is not None:
            raw = data.encode("utf-8", "replace")
            self.written += len(raw)
            self._text.flush()
            self._binary.write(raw)
        else:
            self.written += len(data)
            self._text.write(data)

    def close(self, tail: str = "") -> None:
        """Write what is queued, then `tail` (closing brackets, the budget line) past the budget:
        a cut output must still end well-formed."""
        self.write(tail, force=True)
        self._drain()
        (self._binary or self._text).flush()


def _json(value) -> str:
    """`json.dumps(value, separators=(",", ":"))`, with the common types written directly."""
    t = type(value)
    if t is str:
        return _encode_str(value)
    if t is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    if t is bool:
        return "true" if value else "false"
    if isinstance(value, str):   # a subclass of str: json.dumps writes the text
        return _encode_str(value)
    if (t is list or t is tuple) and all(type(v) is int for v in value):
        return "[" + ",".join(map(int.__repr__, value)) + "]"
    import json

    return json.dumps(value, separators=(",", ":"))


def _json_value(value) -> str:
    """`_json(json_value(value))`: a field value as Field.to_json gives it, encoded."""
    t = type(value)
    if t is int:
        return int.__repr__(value)
    if t is str:
        return _encode_str(value)
    if t.__name__ == "UUID" and t.__module__ == "uuid":
        return f'"{value}"'   # hex digits and dashes: nothing to escape
    if t is bytes:
        return f'"{value.hex()}"'
    if t is dict and all(type(k) is str and type(v) is int for k, v in value.items()):
        return "{" + ",".join(f"{_encode_str(k)}:{int.__repr__(v)}" for k, v in value.items()) + "}"
    return _json(json_value(value))


# `{"name":<name>,"value":` by field name: a tree repeats a few hundred names thousands of times.
_FIELD_HEADS: dict[str, str] = {}
_MAX_FIELD_HEADS = 4096   # names from hostile input (variable names, indices) are not kept past this


def _node_json(node: Node) -> str:
    """The node's JSON without its children, ending in the opened `"children":[`: the text
    `json.dumps(node.to_json(), separators=(",", ":"))` starts with (Node.to_json puts "children"
    last). Written field by field, the common types inline: building the dicts for json.dumps and
    encoding them cost about three times as much, and the JSON writer's time is spent here."""
    enc = _encode_str
    space = node.space
    parts = [f'{{"kind":{_json(node.kind)},"title":{_json(node.title)},'
             f'"space":{_json(space.name if space else None)},'
             f'"offset":{_json(node.offset)},"size":{_json(node.size)}']
    address = node.address
    if address is not None:
        parts.append(f',"address":{_json(address)}')
    parts.append(',"fields":[')
    sep = ""
    heads = _FIELD_HEADS
    for f in node.fields:
        # Field.to_json: name, value, offset, size, then display when there is one. An int is
        # written by the f-string as json.dumps writes it (int.__repr__).
        name, value, offset, size, display = f.name, f.value, f.offset, f.size, f.display
        if type(name) is str:
            head = heads.get(name)
            if head is None:
                head = '{"name":' + enc(name) + ',"value":'
                if len(heads) < _MAX_FIELD_HEADS:
                    heads[name] = head
        else:
            head = '{"name":' + _json(name) + ',"value":'
        t = type(value)
        if t is not int:
            value = enc(value) if t is str else _json_value(value)
        if type(offset) is not int:
            offset = _json(offset)
        if type(size) is not int:
            size = _json(size)
        if display is None:
            parts.append(f'{sep}{head}{value},"offset":{offset},"size":{size}}}')
        else:
            display = enc(display) if type(display) is str else _json(display)
            parts.append(f'{sep}{head}{value},"offset":{offset},"size":{size},"display":{display}}}')
        sep = ","
    parts.append('],"problems":[')
    parts.append(",".join(f'{{"offset":{_json(p.offset)},"severity":{_json(p.severity.value)},'
                          f'"message":{_json(p.message)}}}' for p in node.problems))
    parts.append('],"children":[')
    return "".join(parts)


def _head_json(node: Node) -> str:
    """The node's JSON without its children, ending in the opened `"children":[`."""
    return _node_json(node)


def _leaf_json(node: Node) -> str:
    """A node without children, whole."""
    return _node_json(node) + "]}"


def write_json(root: Node, out: IO[str] | None = None, *, children: Iterable[Node | str] | None = None,
               limit: int | None = None, sink: Sink | None = None, end: str = "\n") -> bool:
    """Write `root` as JSON (the shape of Node.to_json), then `end`; False when the output budget
    cut it short (the JSON is still complete: every open bracket is closed). `children` may yield
    Nodes or JSON texts (one object each). Given a `sink`, the tree goes into it (one budget across
    several trees) and the caller closes it."""
    own = sink is None
    sink = sink or Sink(out, limit)
    head = _head_json(root)
    if not sink.write(head):
        sink.write(head, force=True)  # the root itself, past the budget: the output stays JSON
    # One iterator per open node; the top one's next child is written next. Leaves are written in
    # batches of LEAF_BATCH (one sink write each).
    stack: list[Iterator[Node | str]] = [iter(root.children if children is None else children)]
    first = [True]
    leaves: list[str] = []
    while stack and not sink.cut:
        child = next(stack[-1], None)
        if leaves and (child is None or isinstance(child, str) or child.children or len(leaves) >= LEAF_BATCH):
            text = ",".join(leaves)
            if len(text) + 1 > sink.room():  # near the budget: stop after the last leaf that fits
                room, pieces = sink.room(), []
                for piece in leaves:
                    room -= len(piece) + 1
                    if room < 0:
                        break
                    pieces.append(piece)
                text, sink.cut = ",".join(pieces), True
            leaves.clear()
            if text:
                sink.write(text if first[-1] else "," + text, force=True)
                first[-1] = False
            if sink.cut:
                break
        if child is None:
            if not sink.write("]}"):
                break
            stack.pop()
            first.pop()
            continue
        if isinstance(child, Node) and not child.children:
            leaves.append(_leaf_json(child))
            continue
        comma = "" if first[-1] else ","
        first[-1] = False
        if isinstance(child, str):  # a child already in JSON (leaves formatted without a Node each)
            if not sink.write(comma + child):
                break
            continue
        if not sink.write(comma + _head_json(child)):
            break
        stack.append(iter(child.children))
        first.append(True)
    if own:
        sink.close("]}" * len(stack) + end)
    else:
        sink.write("]}" * len(stack) + end, force=True)
    if sink.cut and own:
        print(f"fwinspect: {_budget_note(sink)}", file=sys.stderr)
    return not sink.cut


def _budget_note(sink: Sink) -> str:
    return f"output stopped after {sink.written:,} bytes; the budget is {sink.limit:,} bytes of output"


def _style(text: str, style: str, color: bool) -> str:
    if not color or not style or not text:
        return text
    return f"\x1b[{_STYLES[style]}m{text}\x1b[0m"


def _label_lines(node: Node, fields: bool, color: bool) -> list[str]:
    if node.space is None:
        where = f"  [{node.kind}"  # a computed node (a merged range, a replay): no bytes of its own
    else:
        where = f"  [{node.kind} @0x{node.offset:x}+0x{node.size:x}"
    address = node.address
    if address is not None and address != node.offset:
        where += f" addr 0x{address:x}"
    if node.space is not None and node.space.parent is not None:
        where += f" in {node.space.name}"
    title = _lines(node.title)
    lines = [_style(t, "bold" if node.children else "", color) for t in title]
    lines[-1] += _style(_lines(where + "]")[0], "dim", color)
    for p in node.problems:
        lines.extend(_style(line, _SEVERITY_STYLE[p.severity], color) for line in _lines(str(p)))
    if fields or node.kind in SUMMARY_KINDS:
        for f in node.fields:
            text = _lines(f.text)
            lines.append(_style(f"  {_lines(f.name)[0]} = ", "green", color) + text[0])
            lines.extend(text[1:])
    return lines


def print_tree(root: Node, *, fields: bool = False, out: IO[str] | None = None,
               children: Iterable[Node] | None = None, limit: int | None = None,
               color: bool | None = None) -> bool:
    """Write `root` as an indented tree, one node per line (its problems, and its fields when asked
    or when it is a summary, on the lines below). False when the output budget cut it short."""
    out = out or sys.stdout
    color = use_color(out) if color is None else color
    sink = Sink(out, limit)
    for line in _label_lines(root, fields, color):
        sink.write(line + "\n")
    # Each entry: the iterator over one open node's children, the guide prefix of its children, the
    # lookahead child (so the last child gets └──), and the depth.
    top = iter(root.children if children is None else children)
    stack: list[tuple[Iterator[Node], str, Node | None, int]] = [(top, "", next(top, None), 1)]
    while stack and not sink.cut:
        it, prefix, child, depth = stack.pop()
        if child is None:
            continue
        after = next(it, None)
        last = after is None
        stack.append((it, prefix, after, depth))
        lines = _label_lines(child, fields, color)
        sink.write(prefix + (_ELL if last else _TEE) + lines[0] + "\n")
        inner = prefix + (_GAP if last else _BAR)
        for line in lines[1:]:
            sink.write(inner + line + "\n")
        if not child.children:
            continue
        if depth >= MAX_PRINT_DEPTH:
            hidden = sum(1 for _ in child.walk()) - 1
            sink.write(f"{inner}{_ELL}… {hidden:,} nodes deeper than {MAX_PRINT_DEPTH} levels not shown\n")
            continue
        sub = iter(child.children)
        stack.append((sub, inner, next(sub, None), depth + 1))
    if sink.cut:
        sink.close(f"… {_budget_note(sink)}\n")
    else:
        sink.close()
    return not sink.cut


def problem_lines(root: Node) -> Iterator[str]:
    """One line per problem (INFO notes left out): severity, space, offset, node kind and title."""
    for node, p in root.all_problems():
        if p.severity is Severity.INFO:
            continue
        space = node.space.name if node.space else "-"
        offset = p.offset if p.offset is not None else node.offset
        yield " ".join(_lines(f"{p.severity.value} {space} 0x{offset:x} {node.kind} '{node.title}': {p.message}"))


def print_problems(root: Node, out: IO[str] | None = None) -> None:
    """The problems under `root`, one line each, to stderr (for --json, whose stdout is the tree)."""
    out = out or sys.stderr
    color = use_color(out)
    sink = Sink(out)
    for line in problem_lines(root):
        severity, _, rest = line.partition(" ")
        style = "red" if severity == "error" else "yellow"
        if not sink.write(_style(severity, style, color) + " " + rest + "\n"):
            break
    sink.close()
