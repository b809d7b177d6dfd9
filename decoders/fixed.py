"""Fixed-size construct Structs read with one `struct.unpack_from`, for the hot loops.

The construct declarations in the `structs` modules stay the one spec-shaped table. `Fixed(struct)`
walks that same Struct once and derives a `struct` module format from its members (FormatField
integers, Int24ul, Bytes, EFI_GUID, Const, arrays and nested Structs of those), so no layout is
written twice. Reading a header is then one C call instead of construct's per-member parse (about
thirty times faster on a PE optional header), and its fields are added as `fields.add_fields` adds
them from a construct parse: same names, offsets, sizes, values and display text.

Errors are construct's, as `errors.parse_at` words them: a read short of the struct's size, or a
Const that does not match, is a DecodeError located at the struct's offset; `struct.error` never
escapes.
"""
from __future__ import annotations

import struct
import uuid
from typing import Any, Callable

import construct

from decoders import guids
from decoders.errors import DecodeError
from decoders.guids import GuidAdapter
from decoders.model import Field, Node

Display = str | Callable[[Any], str]

# Member kinds, by how a raw unpacked value becomes the value add_fields shows.
_INT, _BYTES, _GUID, _LIST, _DICTS = range(5)


class Fixed:
    """One fixed-size Struct: `parse(data, offset)` gives {dotted member name: value} in member
    order, as construct's parse would give them (nested Structs flattened to `A.B`); `add_fields`
    adds them to a Node as `fields.add_fields` does."""

    def __init__(self, struct_: construct.Struct, name: str | None = None):
        self.struct = struct_
        self.name = name or getattr(struct_, "name", None) or type(struct_).__name__
        fmt: list[str] = ["<"]
        # Per member: (dotted name, offset, size, kind, raw values it takes, extra); extra is the
        # Const value, the list length or the nested member names of an array of Structs.
        self.members: list[tuple[str, int, int, int, int, Any]] = []
        self._walk(struct_, "", 0, fmt)
        self.format = "".join(fmt)
        self._unpack = struct.Struct(self.format).unpack_from
        self.size = struct.calcsize(self.format)
        if self.size != struct_.sizeof():
            raise TypeError(f"{self.name}: derived format {self.format!r} is {self.size} bytes, "
                            f"construct says {struct_.sizeof()}")
        self.names = tuple(m[0] for m in self.members)
        self._prepare()

    # -- deriving the format -----------------------------------------------------------------
    def _walk(self, st: construct.Struct, prefix: str, pos: int, fmt: list[str]) -> int:
        for sc in st.subcons:
            if not isinstance(sc, construct.Renamed) or sc.name is None:
                raise TypeError(f"{self.name}: unnamed member {sc!r} is not supported")
            pos = self._member(prefix + sc.name, sc.subcon, pos, fmt)
        return pos

    def _member(self, name: str, sc: construct.Construct, pos: int, fmt: list[str]) -> int:
        if isinstance(sc, construct.Struct):
            return self._walk(sc, name + ".", pos, fmt)
        if isinstance(sc, construct.Array) and isinstance(sc.count, int):
            inner = sc.subcon
            if isinstance(inner, construct.Struct):
                sub = Fixed(inner, f"{self.name}.{name}")
                keys = tuple(m[0] for m in sub.members)
                if any(m[3] != _INT or m[4] != 1 for m in sub.members):
                    raise TypeError(f"{self.name}.{name}: arrays of Structs of integers only")
                fmt.append(sub.format[1:] * sc.count)
                self.members.append((name, pos, sub.size * sc.count, _DICTS, len(keys) * sc.count, keys))
                return pos + sub.size * sc.count
            code, size = _scalar(inner, f"{self.name}.{name}")
            fmt.append(f"{sc.count}{code}")
            self.members.append((name, pos, size * sc.count, _LIST, sc.count, None))
            return pos + size * sc.count
        if isinstance(sc, GuidAdapter):
            fmt.append("16s")
            self.members.append((name, pos, 16, _GUID, 1, None))
            return pos + 16
        if isinstance(sc, construct.Const):
            size = len(sc.value)
            fmt.append(f"{size}s")
            self.members.append((name, pos, size, _BYTES, 1, sc.value))
            return pos + size
        if isinstance(sc, construct.Bytes) and isinstance(sc.length, int):
            fmt.append(f"{sc.length}s")
            self.members.append((name, pos, sc.length, _BYTES, 1, None))
            return pos + sc.length
        if isinstance(sc, construct.BytesInteger) and sc.length == 3 and sc.swapped and not sc.signed:
            fmt.append("HB")   # Int24ul: low word, high byte
            self.members.append((name, pos, 3, _INT, 2, 24))
            return pos + 3
        code, size = _scalar(sc, f"{self.name}.{name}")
        fmt.append(code)
        self.members.append((name, pos, size, _INT, 1, None))
        return pos + size

    # -- reading -------------------------------------------------------------------------------
    def _prepare(self) -> None:
        """What parse and add_fields need per member, worked out once."""
        # Raw values that need more than a name (GUIDs, Int24 halves, arrays, Consts), by raw index,
        # last first so that merging a run of raw values keeps the earlier indices.
        fixups, i = [], 0
        for mname, _, _, kind, count, extra in self.members:
            if kind != _INT or count != 1 or extra is not None:
                if not (kind == _BYTES and extra is None):
                    fixups.append((i, mname, kind, count, extra))
            i += count
        self._fixups = tuple(reversed(fixups))
        # per `only`: (name, offset, size, is a GUID) of each member added, and each one's index
        self._fields: dict[tuple[str, ...] | None, tuple[tuple, dict[str, int]]] = {}

    def parse(self, data, offset: int = 0, what: str | None = None) -> dict[str, Any]:
        """The members at data[offset:], or DecodeError(offset, ...) as errors.parse_at raises it."""
        if offset < 0 or offset > len(data):
            name = what or self.name
            raise DecodeError(offset, f"{name}: offset past the end of a {len(data)}-byte buffer")
        if len(data) - offset < self.size:
            name = what or self.name
            raise DecodeError(offset, f"{name}: needs {self.size} bytes, {len(data) - offset} left")
        try:
            raw = self._unpack(data, offset)
        except struct.error:
            raise DecodeError(offset, f"{what or self.name}: StreamError") from None
        if not self._fixups:
            return dict(zip(self.names, raw))
        values = list(raw)
        for i, mname, kind, count, extra in self._fixups:
            if kind == _INT:     # Int24ul: low word, high byte
                values[i:i + 2] = [values[i] | values[i + 1] << 16]
            elif kind == _BYTES:  # a Const
                if values[i] != extra:
                    raise DecodeError(offset, f"{what or self.name}: ConstError", f"(parsing) -> {mname}")
            elif kind == _GUID:
                values[i] = uuid.UUID(bytes_le=values[i])
            elif kind == _LIST:
                values[i:i + count] = [values[i:i + count]]
            else:
                n = len(extra)
                values[i:i + count] = [[dict(zip(extra, values[j:j + n])) for j in range(i, i + count, n)]]
        return dict(zip(self.names, values))

    def _field_plan(self, only: tuple[str, ...] | None) -> tuple:
        plan = []
        for mname, rel, size, kind, _, _ in self.members:
            if only is not None and mname not in only:
                continue
            if kind == _DICTS:
                # construct's Containers carry its `_io` stream: not reproduced, so not shown.
                raise TypeError(f"{self.name}.{mname}: an array of Structs is read, not added as a field")
            plan.append((mname, rel, size, kind == _GUID))
        return tuple(plan), {p[0]: i for i, p in enumerate(plan)}

    def add_fields(self, node: Node, values: dict[str, Any], offset: int, *,
                   only: tuple[str, ...] | None = None, displays: dict[str, Display] | None = None) -> int:
        """Add the parsed members to `node` at absolute `offset`, as `fields.add_fields(node,
        struct, parsed, offset, only=..., displays=...)` does from a construct parse; returns the
        offset just past the struct."""
        try:
            found = self._fields.get(only)
        except TypeError:   # an unhashable `only` (a list): worked out each time
            found = self._field_plan(only)
        if found is None:
            found = self._fields[only] = self._field_plan(only)
        plan, at = found
        fields = node.fields
        start = len(fields)
        describe = guids.describe
        fields.extend([Field(mname, values[mname], offset + rel, size, describe(values[mname]) if guid else None)
                       for mname, rel, size, guid in plan])
        if displays:
            for mname, shown in displays.items():
                i = at.get(mname)
                if i is not None and shown is not None:
                    f = fields[start + i]
                    f.display = shown(f.value) if callable(shown) else shown
        return offset + self.size


def _scalar(sc: construct.Construct, where: str) -> tuple[str, int]:
    """The struct code and size of a little-endian integer member."""
    if isinstance(sc, construct.FormatField) and sc.fmtstr[0] in "<=" and sc.fmtstr[1:] in ("B", "H", "I", "L", "Q"):
        code = sc.fmtstr[1:]
        return code, struct.calcsize("<" + code)
    raise TypeError(f"{where}: {sc!r} is not a little-endian unsigned integer, bytes or EFI_GUID")
